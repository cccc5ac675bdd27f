// The feature-repository commands of the `stratalake` CLI:
//   init, plan, apply, entities, sources, feature-views, feature-services,
//   registry, ingest, tables.
// Conventions: --repo DIR (default "."), --json for machine output, exit 0 on
// success, 1 on a user error (one-line message first, details after), 2 on a
// usage error; --help on every command prints its usage and an example.
#include "cli/repo_cli.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/csv/api.h>
#include <arrow/io/api.h>
#include <arrow/ipc/writer.h>
#include <arrow/util/value_parsing.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/writer.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <yaml-cpp/yaml.h>

#include "common/background_output.h"
#include "common/direct_output.h"
#include "online/codec.h"
#include "server/feature_server.h"
#include "stratalake/ingest.h"
#include "stratalake/online.h"
#include "stratalake/registry.h"
#include "stratalake/init.h"
#include "stratalake/repo.h"
#include "stratalake/retrieval.h"
#include "stratalake/status.h"

namespace stratalake::cli {

namespace {

using registry::ObjectKind;

struct Usage {
  std::string message;
};

struct CommandHelp {
  const char* usage;
  const char* summary;
  const char* example;
};

const std::map<std::string, CommandHelp> kHelp = {
    {"init",
     {"stratalake init DIR [--project NAME] [--customers N] [--seed N]",
      "Create a feature repository in DIR with sample shop data and definitions.",
      "stratalake init shop && cd shop && stratalake apply"}},
    {"plan",
     {"stratalake plan [--repo DIR] [--json]",
      "Validate the definitions and show what `apply` would change, field by field.",
      "stratalake plan --repo shop"}},
    {"apply",
     {"stratalake apply [--repo DIR] [--message TEXT] [--json]",
      "Validate and commit the definitions as one new registry version (no version when "
      "nothing changed).",
      "stratalake apply --repo shop --message 'add clicks_30d'"}},
    {"entities",
     {"stratalake entities list|describe [NAME] [--version N] [--registry-version N] [--repo DIR] "
      "[--json]",
      "List entities, or describe one (optionally an older object version).",
      "stratalake entities describe customer"}},
    {"sources",
     {"stratalake sources list|describe [NAME] [--version N] [--registry-version N] [--repo DIR] "
      "[--json]",
      "List sources, or describe one.", "stratalake sources describe orders"}},
    {"feature-views",
     {"stratalake feature-views list|describe [NAME] [--version N] [--registry-version N] "
      "[--repo DIR] [--json]",
      "List feature views, or describe one.",
      "stratalake feature-views describe customer_stats --version 1"}},
    {"feature-services",
     {"stratalake feature-services list|describe [NAME] [--version N] [--registry-version N] "
      "[--repo DIR] [--json]",
      "List feature services, or describe one.",
      "stratalake feature-services describe churn_model"}},
    {"registry",
     {"stratalake registry history [OBJECT] | describe OBJECT [--version N] | show [--version N] "
      "[--repo DIR] [--json]\n  OBJECT is NAME or KIND/NAME (e.g. feature_view/customer_stats)",
      "Registry versions; an object's version history; one object version; or everything "
      "at a registry version.",
      "stratalake registry history feature_view/customer_stats"}},
    {"ingest",
     {"stratalake ingest SOURCE_OR_TABLE FILE... [--mode append|overwrite|merge] [--on KEYS] "
      "[--quarantine] [--format csv|json|parquet] [--repo DIR] [--json]",
      "Load CSV, JSON-lines or Parquet files into a source's Delta table (or a table path "
      "below the offline store, e.g. bronze/raw), converting to the declared schema and "
      "enforcing its checks.",
      "stratalake ingest clicks data/clicks.jsonl --quarantine"}},
    {"get-historical",
     {"stratalake get-historical --entities FILE(.parquet|.csv) (--features view:f,view2 | "
      "--feature-service NAME) [--full-feature-names] [--as-of TS] [--timestamp-column C] "
      "--output FILE(.parquet|.csv) [--save-as NAME] [--memory-budget BYTES] [--repo DIR] [--json]",
      "Build a point-in-time-correct training set: for each entity row, the latest feature "
      "values at or before its timestamp (within each view's TTL), optionally as the offline "
      "store knew them at --as-of, and optionally saved as a reproducible dataset.",
      "stratalake get-historical --entities data/churn_labels.parquet --timestamp-column "
      "label_ts --feature-service churn_model --output train.parquet --save-as churn_2026_08"}},
    {"datasets",
     {"stratalake datasets list | describe NAME | recreate NAME [--output FILE] "
      "[--memory-budget BYTES] [--repo DIR] [--json]",
      "Saved training datasets: list them, show a manifest (registry version, source Delta "
      "versions, entity hash), or rebuild one from its pinned versions and compare it with "
      "the saved rows.",
      "stratalake datasets recreate churn_2026_08"}},
    {"materialize",
     {"stratalake materialize START END [--views V1,V2] [--repo DIR] [--json]",
      "Load the latest feature values with event times in [START, END] (ISO 8601) from each "
      "online feature view's source into the online store, and record a watermark.",
      "stratalake materialize 2026-01-01T00:00:00Z 2026-09-01T00:00:00Z"}},
    {"materialize-incremental",
     {"stratalake materialize-incremental END|now [--views V1,V2] [--repo DIR] [--json]",
      "Materialize what changed since each view's watermark: the commits made since the last "
      "run (only their files are read) and rows after the last END.",
      "stratalake materialize-incremental now"}},
    {"get-online",
     {"stratalake get-online (--features view:f,view2 | --feature-service NAME) --entity "
      "KEY=V1,V2 [--entity KEY2=...] [--full-feature-names] [--repo DIR] [--json]",
      "Read feature vectors from the online store (the JSON is the feature server's response).",
      "stratalake get-online --feature-service churn_model --entity customer_id=1001,1002"}},
    {"push",
     {"stratalake push SOURCE FILE(.parquet|.csv) [--to online|offline|online_and_offline] "
      "[--repo DIR] [--json]",
      "Write rows to a push source: online (every online view on it) and/or appended to its "
      "Delta table.",
      "stratalake push clicks_stream new_clicks.csv --to online_and_offline"}},
    {"serve",
     {"stratalake serve [--host 127.0.0.1] [--port 6566] [--threads N] [--max-body-bytes N] "
      "[--max-entity-rows N] [--header-timeout-s S] [--body-timeout-s S] [--idle-timeout-s S] "
      "[--write-timeout-s S] [--max-connection-output-bytes N] "
      "[--max-queued N] [--busy-poll-us US] [--realtime-priority P] [--log-requests] [--repo DIR]",
      "Run the feature server (Feast-compatible HTTP/JSON): POST /get-online-features, /push, "
      "/materialize, /materialize-incremental; GET /health, /metrics. SIGTERM drains and stops. "
      "Limits (bad input or slow clients get an error and a close, never the server): "
      "--max-body-bytes (default 8388608; 413), --max-entity-rows: entity rows per "
      "/get-online-features request (default 100000; 413), --header-timeout-s: a request's "
      "headers within S seconds of its first byte (default 10; 408), --body-timeout-s: its body "
      "within S seconds after the headers (default 60; 408), --idle-timeout-s: close idle "
      "connections (default 120), --write-timeout-s: close a connection whose client reads "
      "nothing of its answers for S seconds (default 30), --max-connection-output-bytes: unsent "
      "answers per connection before its further pipelined requests wait (default 1048576). "
      "/push and /materialize* need Content-Type: application/json (else 415). "
      "--busy-poll-us: each loop polls without sleeping until US microseconds after its last "
      "request (lower latency; a whole core per loop while busy: use fewer --threads than "
      "cores). --realtime-priority P (1..99): the loops run at SCHED_FIFO priority P, ahead of "
      "the kernel's housekeeping threads (needs root, CAP_SYS_NICE or ulimit -r; not with "
      "--busy-poll-us).",
      "stratalake serve --port 6566 --threads 1 --busy-poll-us 200"}},
    {"tables",
     {"stratalake tables [--repo DIR] [--json]",
      "List the Delta tables of the offline store (bronze, silver, gold, datasets, "
      "quarantine) with version, rows, size and last commit.",
      "stratalake tables --json"}},
};

std::string HelpText(const std::string& cmd) {
  const auto& h = kHelp.at(cmd);
  return std::string("usage: ") + h.usage + "\n\n" + h.summary + "\n\nExample:\n  " + h.example +
         "\n";
}

struct Args {
  std::string command;
  std::vector<std::string> positional;
  std::map<std::string, std::string> opts;
  std::set<std::string> flags;
  std::vector<std::string> entity_args;  // --entity may repeat
  bool Has(const std::string& k) const { return opts.count(k) || flags.count(k); }
  std::optional<std::string> Get(const std::string& k) const {
    auto it = opts.find(k);
    if (it == opts.end()) return std::nullopt;
    return it->second;
  }
};

const std::set<std::string> kFlags = {"--json", "--quarantine", "--full-feature-names",
                                      "--help", "-h",           "--log-requests"};

Args Parse(const std::vector<std::string>& argv) {
  Args a;
  a.command = argv.at(0);
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& s = argv[i];
    if (s.rfind("-", 0) == 0 && s.size() > 1) {
      auto eq = s.find('=');
      if (eq != std::string::npos) {
        a.opts[s.substr(0, eq)] = s.substr(eq + 1);
        if (s.substr(0, eq) == "--entity") a.entity_args.push_back(s.substr(eq + 1));
      } else if (kFlags.count(s)) {
        a.flags.insert(s == "-h" ? "--help" : s);
      } else if (s == "--entity" && i + 1 < argv.size()) {
        a.entity_args.push_back(argv[++i]);
        a.opts[s] = argv[i];
      } else if (i + 1 < argv.size()) {
        a.opts[s] = argv[++i];
      } else {
        throw Usage{"option " + s + " needs a value"};
      }
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

void Allow(const Args& a, std::set<std::string> allowed) {
  allowed.insert({"--json", "--help", "--repo"});
  for (const auto& [k, v] : a.opts) {
    if (!allowed.count(k)) throw Usage{"unknown option " + k};
  }
  for (const auto& f : a.flags) {
    if (!allowed.count(f)) throw Usage{"unknown option " + f};
  }
}

int64_t IntOpt(const Args& a, const std::string& key, int64_t dflt) {
  auto v = a.Get(key);
  if (!v) return dflt;
  try {
    size_t pos = 0;
    int64_t n = std::stoll(*v, &pos);
    if (pos == v->size()) return n;
  } catch (...) {
  }
  throw Usage{key + " must be an integer, not '" + *v + "'"};
}

std::string UtcTime(int64_t ms) {
  time_t t = static_cast<time_t>(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string HumanBytes(int64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

// Prints rows as an aligned text table.
void PrintRows(const std::vector<std::string>& header,
               const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w(header.size());
  for (size_t i = 0; i < header.size(); ++i) w[i] = header[i].size();
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (size_t i = 0; i < r.size(); ++i) {
      s += r[i];
      if (i + 1 < r.size()) s += std::string(w[i] - r[i].size() + 2, ' ');
    }
    std::cout << s << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
}

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void JStr(JsonWriter& w, const std::string& s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

// Writes canonical JSON text as a nested value.
void JRaw(JsonWriter& w, const std::string& json) {
  w.RawValue(json.data(), json.size(), rapidjson::kObjectType);
}

void Emit(const rapidjson::StringBuffer& buf) { std::cout << buf.GetString() << "\n"; }

bool IsEmptyValue(const YAML::Node& v) {
  return v.IsNull() || (v.IsScalar() && v.Scalar().empty()) ||
         ((v.IsMap() || v.IsSequence()) && v.size() == 0);
}

// Emits `n` in block style, leaving out empty strings, maps and lists (defaults).
void EmitForDisplay(const YAML::Node& n, YAML::Emitter& out) {
  if (n.IsMap()) {
    out << YAML::BeginMap;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (IsEmptyValue(it->second)) continue;
      out << YAML::Key << it->first.Scalar() << YAML::Value;
      EmitForDisplay(it->second, out);
    }
    out << YAML::EndMap;
  } else if (n.IsSequence()) {
    bool scalars = true;
    for (const auto& e : n) scalars = scalars && e.IsScalar();
    if (scalars) out << YAML::Flow;
    out << YAML::BeginSeq;
    for (const auto& e : n) EmitForDisplay(e, out);
    out << YAML::EndSeq;
  } else {
    out << n.Scalar();
  }
}

// Canonical JSON -> YAML for humans.
std::string JsonToYaml(const std::string& json) {
  try {
    YAML::Emitter out;
    EmitForDisplay(YAML::Load(json), out);
    return std::string(out.c_str()) + "\n";
  } catch (const YAML::Exception&) {
    return json + "\n";
  }
}

std::string RepoDir(const Args& a) { return a.Get("--repo").value_or("."); }

std::string Author() {
  if (const char* u = std::getenv("STRATALAKE_USER")) return u;
  if (const char* u = std::getenv("USER")) return u;
  if (const struct passwd* pw = getpwuid(getuid())) return pw->pw_name;
  return "unknown";
}

// ---- init -------------------------------------------------------------------

arrow::Status CmdInit(const Args& a) {
  Allow(a, {"--project", "--customers", "--seed"});
  if (a.positional.size() != 1) throw Usage{"init needs exactly one DIR"};
  repo::InitOptions o;
  o.project = a.Get("--project").value_or("");
  o.customers = IntOpt(a, "--customers", 1000);
  o.seed = static_cast<uint64_t>(IntOpt(a, "--seed", 42));
  ARROW_ASSIGN_OR_RAISE(auto result, repo::InitRepository(a.positional[0], o));
  if (a.Has("--json")) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("root");
    JStr(w, result.root);
    w.Key("files");
    w.StartArray();
    for (const auto& f : result.files_written) JStr(w, f);
    w.EndArray();
    w.EndObject();
    Emit(buf);
    return arrow::Status::OK();
  }
  std::cout << "Created feature repository " << result.root << "\n";
  for (const auto& f : result.files_written) std::cout << "  " << f << "\n";
  std::cout
      << "\nNext steps:\n"
      << "  cd " << a.positional[0] << "\n"
      << "  stratalake apply                                   # register the definitions\n"
      << "  stratalake ingest customers data/customers.csv     # load sample data into bronze\n"
      << "  stratalake ingest orders data/orders.csv\n"
      << "  stratalake ingest clicks data/clicks.jsonl --quarantine\n"
      << "  stratalake ingest customer_daily_stats data/customer_daily_stats.parquet\n"
      << "  stratalake ingest churn_labels data/churn_labels.parquet\n"
      << "  stratalake tables\n";
  return arrow::Status::OK();
}

// ---- plan / apply -----------------------------------------------------------

void WritePlanJson(JsonWriter& w, const registry::Plan& plan) {
  w.StartObject();
  w.Key("base_version");
  w.Int64(plan.base_version);
  w.Key("changes");
  w.StartArray();
  for (const auto& c : plan.changes) {
    w.StartObject();
    w.Key("kind");
    JStr(w, registry::ObjectKindName(c.kind));
    w.Key("name");
    JStr(w, c.name);
    w.Key("change");
    JStr(w, registry::ChangeTypeName(c.type));
    w.Key("from_version");
    w.Int64(c.from_version);
    w.Key("location");
    JStr(w, c.loc.file.empty() ? "" : c.loc.ToString());
    w.Key("fields");
    w.StartArray();
    for (const auto& f : c.fields) {
      w.StartObject();
      w.Key("path");
      JStr(w, f.path);
      w.Key("before");
      f.before ? JStr(w, *f.before) : (void)w.Null();
      w.Key("after");
      f.after ? JStr(w, *f.after) : (void)w.Null();
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.Key("incompatibilities");
  w.StartArray();
  for (const auto& i : plan.incompatibilities) JStr(w, i);
  w.EndArray();
  w.EndObject();
}

arrow::Status CmdPlan(const Args& a) {
  Allow(a, {});
  if (!a.positional.empty()) throw Usage{"plan takes no arguments"};
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto defs, r->LoadValidatedDefinitions());
  ARROW_ASSIGN_OR_RAISE(auto reg, r->registry());
  ARROW_ASSIGN_OR_RAISE(auto plan, reg->PlanChanges(defs, r->config().compatibility));
  if (a.Has("--json")) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    WritePlanJson(w, plan);
    Emit(buf);
  } else {
    std::cout << plan.ToString();
  }
  if (!plan.incompatibilities.empty()) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kIncompatibleChange,
                     std::to_string(plan.incompatibilities.size()) +
                         " incompatible change(s) (marked '!' above): `apply` would refuse them");
  }
  return arrow::Status::OK();
}

arrow::Status CmdApply(const Args& a) {
  Allow(a, {"--message"});
  if (!a.positional.empty()) throw Usage{"apply takes no arguments"};
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto defs, r->LoadValidatedDefinitions());
  ARROW_ASSIGN_OR_RAISE(auto reg, r->registry());
  ARROW_ASSIGN_OR_RAISE(auto result, reg->Apply(defs, r->config().compatibility, Author(),
                                                a.Get("--message").value_or("")));
  if (a.Has("--json")) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("version");
    w.Int64(result.version);
    w.Key("changed");
    w.Bool(result.changed);
    w.Key("plan");
    WritePlanJson(w, result.plan);
    w.EndObject();
    Emit(buf);
    return arrow::Status::OK();
  }
  if (!result.changed) {
    std::cout << "No changes: registry stays at version " << result.version << ".\n";
    return arrow::Status::OK();
  }
  std::cout << result.plan.ToString();
  std::cout << "Applied: registry version " << result.version << " (" << reg->Describe() << ")\n";
  return arrow::Status::OK();
}

// ---- object listing / describe ------------------------------------------------

std::string Summary(const registry::Definitions& defs, ObjectKind kind, const std::string& name) {
  std::string s;
  switch (kind) {
    case ObjectKind::kEntity: {
      const auto* e = defs.FindEntity(name);
      for (const auto& k : e->join_keys) {
        s += (s.empty() ? "" : ", ") + k.name + " " + registry::FeatureTypeName(*k.type);
      }
      return s;
    }
    case ObjectKind::kSource: {
      const auto* src = defs.FindSource(name);
      return std::string(registry::SourceTypeName(src->type)) + "  " + src->path;
    }
    case ObjectKind::kFeatureView: {
      const auto* v = defs.FindFeatureView(name);
      for (const auto& e : v->entities) s += (s.empty() ? "" : ",") + e;
      return "[" + s + "] " + v->source + ", " + std::to_string(v->features.size()) +
             " features, ttl " + registry::FormatDuration(v->ttl_seconds) +
             (v->online ? ", online" : "");
    }
    case ObjectKind::kFeatureService: {
      const auto* fs = defs.FindFeatureService(name);
      for (const auto& it : fs->items) {
        s += (s.empty() ? "" : ", ") + it.view +
             (it.features.empty() ? "" : "(" + std::to_string(it.features.size()) + ")");
      }
      for (const auto& inc : fs->includes) s += (s.empty() ? "" : ", ") + std::string("+") + inc;
      return s;
    }
  }
  return s;
}

std::vector<std::string> NamesOf(const registry::Definitions& d, ObjectKind kind) {
  std::vector<std::string> out;
  auto add = [&](const auto& v) {
    for (const auto& x : v) out.push_back(x.name);
  };
  switch (kind) {
    case ObjectKind::kEntity:
      add(d.entities);
      break;
    case ObjectKind::kSource:
      add(d.sources);
      break;
    case ObjectKind::kFeatureView:
      add(d.feature_views);
      break;
    case ObjectKind::kFeatureService:
      add(d.feature_services);
      break;
  }
  return out;
}

arrow::Result<std::shared_ptr<const registry::RegistryState>> LoadState(registry::Registry& reg,
                                                                        const Args& a) {
  std::optional<int64_t> v;
  if (a.Get("--registry-version")) v = IntOpt(a, "--registry-version", 0);
  ARROW_ASSIGN_OR_RAISE(auto state, reg.Load(v));
  if (state->version == 0) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kObjectNotFound,
                     "the registry is empty; run `stratalake apply` first");
  }
  return state;
}

arrow::Status DescribeObject(registry::Registry& reg, ObjectKind kind, const std::string& name,
                             std::optional<int64_t> object_version, int64_t at_registry_version,
                             bool json) {
  ARROW_ASSIGN_OR_RAISE(auto history, reg.History(kind, name));
  const registry::ObjectVersionInfo* pick = nullptr;
  for (const auto& h : history) {
    if (object_version ? h.object_version == *object_version
                       : h.registry_version <= at_registry_version) {
      pick = &h;
    }
  }
  if (!pick) {
    return MakeError(
        arrow::StatusCode::KeyError, ErrorKind::kVersionNotFound,
        std::string(registry::ObjectKindName(kind)) + " '" + name + "' has no version " +
            (object_version ? std::to_string(*object_version) : "at that registry version") +
            " (versions 1.." + std::to_string(history.back().object_version) + ")");
  }
  if (pick->deleted && !object_version) {
    return MakeError(arrow::StatusCode::KeyError, ErrorKind::kObjectNotFound,
                     std::string(registry::ObjectKindName(kind)) + " '" + name +
                         "' was removed in registry version " +
                         std::to_string(pick->registry_version) +
                         "; pass --version N to see an older version");
  }
  if (json) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("kind");
    JStr(w, registry::ObjectKindName(kind));
    w.Key("name");
    JStr(w, name);
    w.Key("version");
    w.Int64(pick->object_version);
    w.Key("registry_version");
    w.Int64(pick->registry_version);
    w.Key("committed_at");
    JStr(w, UtcTime(pick->committed_at_ms));
    w.Key("author");
    JStr(w, pick->author);
    w.Key("deleted");
    w.Bool(pick->deleted);
    w.Key("spec");
    if (pick->deleted) {
      w.Null();
    } else {
      JRaw(w, pick->spec);
    }
    w.Key("versions");
    w.Int64(history.back().object_version);
    w.EndObject();
    Emit(buf);
    return arrow::Status::OK();
  }
  std::cout << registry::ObjectKindName(kind) << " " << name << "  version " << pick->object_version
            << " of " << history.back().object_version << "  (registry version "
            << pick->registry_version << ", " << UtcTime(pick->committed_at_ms) << " by "
            << pick->author << ")\n";
  if (pick->deleted) {
    std::cout << "(removed)\n";
  } else {
    std::cout << JsonToYaml(pick->spec);
  }
  return arrow::Status::OK();
}

arrow::Status CmdObjects(const Args& a, ObjectKind kind) {
  Allow(a, {"--version", "--registry-version"});
  std::string sub = a.positional.empty() ? "list" : a.positional[0];
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto reg, r->registry());
  ARROW_ASSIGN_OR_RAISE(auto state, LoadState(*reg, a));
  if (sub == "list") {
    if (a.positional.size() > 1) throw Usage{"list takes no NAME"};
    auto names = NamesOf(state->defs, kind);
    if (a.Has("--json")) {
      rapidjson::StringBuffer buf;
      JsonWriter w(buf);
      w.StartObject();
      w.Key("registry_version");
      w.Int64(state->version);
      w.Key("objects");
      w.StartArray();
      for (const auto& n : names) {
        w.StartObject();
        w.Key("name");
        JStr(w, n);
        w.Key("version");
        w.Int64(state->ObjectVersion(kind, n));
        w.Key("summary");
        JStr(w, Summary(state->defs, kind, n));
        w.EndObject();
      }
      w.EndArray();
      w.EndObject();
      Emit(buf);
      return arrow::Status::OK();
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& n : names) {
      rows.push_back(
          {n, "v" + std::to_string(state->ObjectVersion(kind, n)), Summary(state->defs, kind, n)});
    }
    PrintRows({"NAME", "VERSION", "DETAILS"}, rows);
    std::cout << "(" << rows.size() << " " << registry::ObjectKindName(kind)
              << "(s) at registry version " << state->version << ")\n";
    return arrow::Status::OK();
  }
  if (sub == "describe") {
    if (a.positional.size() != 2) throw Usage{"describe needs exactly one NAME"};
    std::optional<int64_t> v;
    if (a.Get("--version")) v = IntOpt(a, "--version", 0);
    const std::string& name = a.positional[1];
    auto names = NamesOf(state->defs, kind);
    if (!v && std::find(names.begin(), names.end(), name) == names.end()) {
      std::string known;
      for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
      return MakeError(arrow::StatusCode::KeyError, ErrorKind::kObjectNotFound,
                       std::string("no ") + registry::ObjectKindName(kind) + " named '" + name +
                           "' at registry version " + std::to_string(state->version) +
                           " (known: " + known + ")");
    }
    return DescribeObject(*reg, kind, name, v, state->version, a.Has("--json"));
  }
  throw Usage{"unknown subcommand '" + sub + "' (use list or describe)"};
}

// Resolves OBJECT ("kind/name" or a name unique across kinds) in `state`.
arrow::Result<std::pair<ObjectKind, std::string>> ResolveObject(
    const registry::RegistryState& state, registry::Registry& reg, const std::string& spec) {
  auto slash = spec.find('/');
  if (slash != std::string::npos) {
    ARROW_ASSIGN_OR_RAISE(auto kind, registry::ParseObjectKind(spec.substr(0, slash)));
    return std::make_pair(kind, spec.substr(slash + 1));
  }
  std::vector<ObjectKind> hits;
  for (auto kind : {ObjectKind::kEntity, ObjectKind::kSource, ObjectKind::kFeatureView,
                    ObjectKind::kFeatureService}) {
    auto h = reg.History(kind, spec);
    if (h.ok()) hits.push_back(kind);
  }
  if (hits.empty()) {
    return MakeError(arrow::StatusCode::KeyError, ErrorKind::kObjectNotFound,
                     "no object named '" + spec + "' was ever applied to the registry");
  }
  if (hits.size() > 1) {
    std::string kinds;
    for (auto k : hits)
      kinds += (kinds.empty() ? "" : ", ") + std::string(registry::ObjectKindName(k)) + "/" + spec;
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kObjectNotFound,
                     "'" + spec + "' names several objects; write one of: " + kinds);
  }
  return std::make_pair(hits[0], spec);
}

arrow::Status CmdRegistry(const Args& a) {
  Allow(a, {"--version"});
  if (a.positional.empty()) throw Usage{"registry needs a subcommand: history, describe or show"};
  const std::string& sub = a.positional[0];
  bool json = a.Has("--json");
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto reg, r->registry());
  if (sub == "history" && a.positional.size() == 1) {
    ARROW_ASSIGN_OR_RAISE(auto versions, reg->Versions());
    if (json) {
      rapidjson::StringBuffer buf;
      JsonWriter w(buf);
      w.StartArray();
      for (const auto& v : versions) {
        w.StartObject();
        w.Key("version");
        w.Int64(v.version);
        w.Key("committed_at");
        JStr(w, UtcTime(v.committed_at_ms));
        w.Key("author");
        JStr(w, v.author);
        w.Key("message");
        JStr(w, v.message);
        w.Key("changes");
        w.Int(v.num_changes);
        w.EndObject();
      }
      w.EndArray();
      Emit(buf);
      return arrow::Status::OK();
    }
    std::vector<std::vector<std::string>> rows;
    for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
      rows.push_back({std::to_string(it->version), UtcTime(it->committed_at_ms), it->author,
                      std::to_string(it->num_changes), it->message});
    }
    PrintRows({"VERSION", "COMMITTED", "AUTHOR", "CHANGES", "MESSAGE"}, rows);
    std::cout << "(registry: " << reg->Describe() << ")\n";
    return arrow::Status::OK();
  }
  if (sub == "history" || sub == "describe") {
    if (a.positional.size() != 2) throw Usage{"registry " + sub + " needs one OBJECT"};
    ARROW_ASSIGN_OR_RAISE(auto state, reg->Load());
    ARROW_ASSIGN_OR_RAISE(auto obj, ResolveObject(*state, *reg, a.positional[1]));
    if (sub == "describe") {
      std::optional<int64_t> v;
      if (a.Get("--version")) v = IntOpt(a, "--version", 0);
      return DescribeObject(*reg, obj.first, obj.second, v, state->version, json);
    }
    ARROW_ASSIGN_OR_RAISE(auto history, reg->History(obj.first, obj.second));
    if (json) {
      rapidjson::StringBuffer buf;
      JsonWriter w(buf);
      w.StartArray();
      for (const auto& h : history) {
        w.StartObject();
        w.Key("version");
        w.Int64(h.object_version);
        w.Key("registry_version");
        w.Int64(h.registry_version);
        w.Key("committed_at");
        JStr(w, UtcTime(h.committed_at_ms));
        w.Key("author");
        JStr(w, h.author);
        w.Key("deleted");
        w.Bool(h.deleted);
        w.Key("spec");
        if (h.deleted) {
          w.Null();
        } else {
          JRaw(w, h.spec);
        }
        w.EndObject();
      }
      w.EndArray();
      Emit(buf);
      return arrow::Status::OK();
    }
    std::vector<std::vector<std::string>> rows;
    std::string prev;
    for (const auto& h : history) {
      std::string change;
      if (h.deleted) {
        change = "removed";
      } else if (prev.empty()) {
        change = "created";
      } else {
        auto a1 = registry::FlattenJson(prev), b1 = registry::FlattenJson(h.spec);
        std::set<std::string> paths;
        for (auto& [p, v] : a1) paths.insert(p);
        for (auto& [p, v] : b1) paths.insert(p);
        for (const auto& p : paths) {
          auto x = a1.find(p);
          auto y = b1.find(p);
          bool differs = (x == a1.end()) != (y == b1.end()) ||
                         (x != a1.end() && y != b1.end() && x->second != y->second);
          if (differs) change += (change.empty() ? "" : ", ") + p;
        }
      }
      prev = h.deleted ? "" : h.spec;
      rows.push_back({"v" + std::to_string(h.object_version), std::to_string(h.registry_version),
                      UtcTime(h.committed_at_ms), h.author, change});
    }
    PrintRows({"VERSION", "REGISTRY", "COMMITTED", "AUTHOR", "CHANGED"}, rows);
    return arrow::Status::OK();
  }
  if (sub == "show") {
    std::optional<int64_t> v;
    if (a.Get("--version")) v = IntOpt(a, "--version", 0);
    ARROW_ASSIGN_OR_RAISE(auto state, reg->Load(v));
    if (json) {
      rapidjson::StringBuffer buf;
      JsonWriter w(buf);
      w.StartObject();
      w.Key("version");
      w.Int64(state->version);
      w.Key("objects");
      w.StartArray();
      auto put = [&](ObjectKind k, const std::string& name, const std::string& spec) {
        w.StartObject();
        w.Key("kind");
        JStr(w, registry::ObjectKindName(k));
        w.Key("name");
        JStr(w, name);
        w.Key("version");
        w.Int64(state->ObjectVersion(k, name));
        w.Key("spec");
        JRaw(w, spec);
        w.EndObject();
      };
      for (const auto& e : state->defs.entities)
        put(ObjectKind::kEntity, e.name, registry::ToCanonicalJson(e));
      for (const auto& s : state->defs.sources)
        put(ObjectKind::kSource, s.name, registry::ToCanonicalJson(s));
      for (const auto& fv : state->defs.feature_views) {
        put(ObjectKind::kFeatureView, fv.name, registry::ToCanonicalJson(fv));
      }
      for (const auto& fs : state->defs.feature_services) {
        put(ObjectKind::kFeatureService, fs.name, registry::ToCanonicalJson(fs));
      }
      w.EndArray();
      w.EndObject();
      Emit(buf);
      return arrow::Status::OK();
    }
    std::vector<std::vector<std::string>> rows;
    for (auto kind : {ObjectKind::kEntity, ObjectKind::kSource, ObjectKind::kFeatureView,
                      ObjectKind::kFeatureService}) {
      for (const auto& n : NamesOf(state->defs, kind)) {
        rows.push_back({registry::ObjectKindName(kind), n,
                        "v" + std::to_string(state->ObjectVersion(kind, n)),
                        Summary(state->defs, kind, n)});
      }
    }
    PrintRows({"KIND", "NAME", "VERSION", "DETAILS"}, rows);
    std::cout << "(registry version " << state->version << ")\n";
    return arrow::Status::OK();
  }
  throw Usage{"unknown registry subcommand '" + sub + "' (use history, describe or show)"};
}

// ---- ingest -------------------------------------------------------------------

arrow::Status CmdIngest(const Args& a) {
  Allow(a, {"--mode", "--on", "--quarantine", "--format"});
  if (a.positional.size() < 2)
    throw Usage{"ingest needs a SOURCE (or table path) and at least one FILE"};
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  const std::string& target_name = a.positional[0];
  std::vector<std::string> files(a.positional.begin() + 1, a.positional.end());

  IngestOptions o;
  std::string mode = a.Get("--mode").value_or("append");
  if (mode == "append") {
    o.mode = IngestMode::kAppend;
  } else if (mode == "overwrite") {
    o.mode = IngestMode::kOverwrite;
  } else if (mode == "merge") {
    o.mode = IngestMode::kMerge;
  } else {
    throw Usage{"--mode must be append, overwrite or merge"};
  }
  if (auto on = a.Get("--on")) {
    std::stringstream ss(*on);
    std::string k;
    while (std::getline(ss, k, ',')) {
      if (!k.empty()) o.merge_keys.push_back(k);
    }
  }
  if (o.mode == IngestMode::kMerge && o.merge_keys.empty())
    throw Usage{"--mode merge needs --on KEYS"};
  if (o.mode != IngestMode::kMerge && !o.merge_keys.empty())
    throw Usage{"--on is only for --mode merge"};
  o.quarantine = a.Has("--quarantine");
  o.format = a.Get("--format").value_or("");

  // The target: an applied source, else a source in the definition files, else a table path.
  IngestTarget target;
  const registry::Source* source = nullptr;
  std::shared_ptr<const registry::RegistryState> state;
  registry::Definitions local;
  ARROW_ASSIGN_OR_RAISE(auto reg, r->registry());
  ARROW_ASSIGN_OR_RAISE(state, reg->Load());
  source = state->defs.FindSource(target_name);
  if (!source) {
    auto defs = r->LoadDefinitions();
    if (defs.ok()) {
      local = std::move(*defs);
      source = local.FindSource(target_name);
    }
  }
  if (source) {
    ARROW_ASSIGN_OR_RAISE(target, r->IngestTargetFor(*source));
  } else if (target_name.find('/') != std::string::npos) {
    // The table path becomes a folder below the offline store: it must stay there.
    bool below = target_name[0] != '/' && target_name.find("://") == std::string::npos;
    for (size_t i = 0; below && i <= target_name.size();) {
      size_t j = std::min(target_name.find('/', i), target_name.size());
      std::string seg = target_name.substr(i, j - i);
      below = !seg.empty() && seg != "." && seg != "..";
      i = j + 1;
    }
    if (!below) {
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError,
                       "table path '" + target_name +
                           "' must name a folder below the offline store, such as bronze/raw "
                           "(relative, without '.', '..' or empty parts)");
    }
    target.name = target_name;
    target.table_uri = r->TableUri(target_name);
    target.quarantine_uri = r->TableUri("quarantine/" + target_name);
  } else {
    return MakeError(arrow::StatusCode::KeyError, ErrorKind::kObjectNotFound,
                     "no source named '" + target_name +
                         "' in the registry or the definition files; name a source, or a table "
                         "path below the offline store such as bronze/" +
                         target_name);
  }
  ARROW_ASSIGN_OR_RAISE(auto report, Ingest(target, files, o));
  if (a.Has("--json")) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("table");
    JStr(w, report.table_uri);
    w.Key("version");
    w.Int64(report.version);
    w.Key("created");
    w.Bool(report.created);
    w.Key("files");
    w.Int64(report.files);
    w.Key("rows_read");
    w.Int64(report.rows_read);
    w.Key("rows_written");
    w.Int64(report.rows_written);
    w.Key("rows_rejected");
    w.Int64(report.rows_rejected);
    w.Key("reasons");
    w.StartObject();
    for (const auto& [reason, n] : report.reason_counts) {
      JStr(w, reason);
      w.Int64(n);
    }
    w.EndObject();
    w.Key("examples");
    w.StartArray();
    for (const auto& e : report.examples) {
      w.StartObject();
      w.Key("file");
      JStr(w, e.file);
      w.Key("line");
      w.Int64(e.line);
      w.Key("column");
      JStr(w, e.column);
      w.Key("value");
      JStr(w, e.value);
      w.Key("reason");
      JStr(w, e.reason);
      w.EndObject();
    }
    w.EndArray();
    w.Key("ignored_columns");
    w.StartArray();
    for (const auto& c : report.ignored_columns) JStr(w, c);
    w.EndArray();
    w.Key("quarantine_table");
    JStr(w, report.quarantine_uri);
    w.Key("quarantine_version");
    w.Int64(report.quarantine_version);
    w.EndObject();
    Emit(buf);
    return arrow::Status::OK();
  }
  std::cout << report.ToString();
  if (!report.ToString().empty() && report.ToString().back() != '\n') std::cout << "\n";
  return arrow::Status::OK();
}

// ---- tables -------------------------------------------------------------------

arrow::Status CmdTables(const Args& a) {
  Allow(a, {});
  if (!a.positional.empty()) throw Usage{"tables takes no arguments"};
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto tables, r->ListTables());
  if (a.Has("--json")) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartArray();
    for (const auto& t : tables) {
      w.StartObject();
      w.Key("name");
      JStr(w, t.name);
      w.Key("uri");
      JStr(w, t.uri);
      w.Key("version");
      w.Int64(t.version);
      w.Key("rows");
      w.Int64(t.rows);
      w.Key("bytes");
      w.Int64(t.bytes);
      w.Key("files");
      w.Int64(t.files);
      w.Key("last_commit");
      JStr(w, UtcTime(t.last_commit_ms));
      w.Key("last_operation");
      JStr(w, t.last_operation);
      w.EndObject();
    }
    w.EndArray();
    Emit(buf);
    return arrow::Status::OK();
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : tables) {
    rows.push_back({t.name, std::to_string(t.version), t.rows < 0 ? "?" : std::to_string(t.rows),
                    HumanBytes(t.bytes), std::to_string(t.files), UtcTime(t.last_commit_ms),
                    t.last_operation});
  }
  PrintRows({"TABLE", "VERSION", "ROWS", "SIZE", "FILES", "LAST COMMIT", "OPERATION"}, rows);
  std::cout << "(" << tables.size() << " table(s) under " << r->config().offline_store << ")\n";
  return arrow::Status::OK();
}

// ---- training datasets ----------------------------------------------------------

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

arrow::Result<std::shared_ptr<arrow::Table>> ReadTableFile(const std::string& path) {
  auto opened = arrow::io::ReadableFile::Open(path);
  if (!opened.ok()) {
    return MakeError(arrow::StatusCode::IOError, ErrorKind::kObjectNotFound,
                     "cannot open '" + path + "': " + opened.status().message());
  }
  auto file = *opened;
  if (EndsWith(path, ".parquet")) {
    ARROW_ASSIGN_OR_RAISE(auto reader,
                          parquet::arrow::OpenFile(file, arrow::default_memory_pool()));
    std::shared_ptr<arrow::Table> t;
    ARROW_RETURN_NOT_OK(reader->ReadTable(&t));
    return t;
  }
  if (EndsWith(path, ".csv")) {
    auto convert = arrow::csv::ConvertOptions::Defaults();
    convert.timestamp_parsers = {arrow::TimestampParser::MakeISO8601()};
    ARROW_ASSIGN_OR_RAISE(
        auto reader, arrow::csv::TableReader::Make(arrow::io::default_io_context(), file,
                                                   arrow::csv::ReadOptions::Defaults(),
                                                   arrow::csv::ParseOptions::Defaults(), convert));
    return reader->Read();
  }
  throw Usage{"'" + path + "' must end in .parquet or .csv"};
}

// A Parquet file read row group by row group (owns its file reader).
class ParquetBatchReader final : public arrow::RecordBatchReader {
 public:
  ParquetBatchReader(std::unique_ptr<parquet::arrow::FileReader> file,
                     std::unique_ptr<arrow::RecordBatchReader> batches)
      : file_(std::move(file)), batches_(std::move(batches)) {}
  std::shared_ptr<arrow::Schema> schema() const override { return batches_->schema(); }
  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* batch) override {
    return batches_->ReadNext(batch);
  }

 private:
  std::unique_ptr<parquet::arrow::FileReader> file_;  // outlives batches_
  std::unique_ptr<arrow::RecordBatchReader> batches_;
};

// The entity rows of a .parquet or .csv file, readable again and again without
// holding them all: Parquet in batches, CSV in blocks. (A streamed CSV file
// takes its column types from its first block, 1 MiB; small ones are read whole
// as before, where a later block can still widen a type.)
arrow::Result<retrieval::EntityReaderFactory> EntityFileReader(const std::string& path) {
  if (!EndsWith(path, ".parquet") && !EndsWith(path, ".csv")) {
    throw Usage{"'" + path + "' must end in .parquet or .csv"};
  }
  auto open_file = [path]() -> arrow::Result<std::shared_ptr<arrow::io::ReadableFile>> {
    auto opened = arrow::io::ReadableFile::Open(path);
    if (!opened.ok()) {
      return MakeError(arrow::StatusCode::IOError, ErrorKind::kObjectNotFound,
                       "cannot open '" + path + "': " + opened.status().message());
    }
    return *opened;
  };
  ARROW_RETURN_NOT_OK(open_file().status());
  if (EndsWith(path, ".parquet")) {
    return [open_file]() -> arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> {
      ARROW_ASSIGN_OR_RAISE(auto file, open_file());
      ARROW_ASSIGN_OR_RAISE(auto reader,
                            parquet::arrow::OpenFile(file, arrow::default_memory_pool()));
      reader->set_use_threads(true);  // decode the columns of each batch in parallel
      ARROW_ASSIGN_OR_RAISE(auto batches, reader->GetRecordBatchReader());
      return std::make_shared<ParquetBatchReader>(std::move(reader), std::move(batches));
    };
  }
  return [open_file]() -> arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> {
    ARROW_ASSIGN_OR_RAISE(auto file, open_file());
    auto convert = arrow::csv::ConvertOptions::Defaults();
    convert.timestamp_parsers = {arrow::TimestampParser::MakeISO8601()};
    ARROW_ASSIGN_OR_RAISE(
        auto reader, arrow::csv::StreamingReader::Make(
                         arrow::io::default_io_context(), file, arrow::csv::ReadOptions::Defaults(),
                         arrow::csv::ParseOptions::Defaults(), convert));
    return std::static_pointer_cast<arrow::RecordBatchReader>(reader);
  };
}

// The output file of a streamed retrieval, written under a temporary name and
// renamed into place by Close (an error leaves no output file behind).
class OutputFileSink final : public retrieval::HistoricalSink {
 public:
  explicit OutputFileSink(std::string path) : path_(std::move(path)), partial_(path_ + ".partial") {
    if (!EndsWith(path_, ".parquet") && !EndsWith(path_, ".csv")) {
      throw Usage{"--output '" + path_ + "' must end in .parquet or .csv"};
    }
  }
  ~OutputFileSink() override {
    if (!closed_) {
      if (out_) (void)out_->Close();
      std::remove(partial_.c_str());
    }
  }

  arrow::Status Begin(const std::shared_ptr<arrow::Schema>& schema) override {
    // Around the page cache where the file system allows (common/direct_output.h):
    // a training set is written once, and caching it costs more than writing it.
    const char* direct = std::getenv("STRATALAKE_DIRECT_IO");
    ARROW_ASSIGN_OR_RAISE(
        std::shared_ptr<arrow::io::OutputStream> file,
        DirectFileOutputStream::Open(partial_, !(direct && std::string(direct) == "0")));
    if (EndsWith(path_, ".csv")) {
      // (Not through a BackgroundOutputStream: Arrow's CSV writer hands its
      // reused encoding buffer to Write, so it must be written before it returns.)
      out_ = std::move(file);
      ARROW_ASSIGN_OR_RAISE(csv_, arrow::csv::MakeCSVWriter(out_, schema));
      return arrow::Status::OK();
    }
    // Finished row groups are copied into the file while the next one is
    // encoded (Parquet hands over each finished column chunk's buffer and
    // never touches it again).
    out_ = std::make_shared<BackgroundOutputStream>(std::move(file), kMaxPendingBytes);
    // Encode columns on all cores: the output of a big retrieval is wide and
    // long. (Parquet honours use_threads only for buffered row groups, that is
    // through WriteRecordBatch; WriteTable encodes one column after another.)
    auto props = parquet::WriterProperties::Builder()
                     .max_row_group_length(kRowGroupRows)
                     ->dictionary_pagesize_limit(128 << 10)
                     ->build();
    auto arrow_props = parquet::ArrowWriterProperties::Builder().set_use_threads(true)->build();
    ARROW_ASSIGN_OR_RAISE(
        parquet_, parquet::arrow::FileWriter::Open(*schema, arrow::default_memory_pool(), out_,
                                                   props, arrow_props));
    return arrow::Status::OK();
  }
  arrow::Status Write(const std::shared_ptr<arrow::Table>& rows) override {
    if (csv_) return csv_->WriteTable(*rows);
    // Each call's rows start a row group of their own: the previous call's
    // encoded pages are written out now (Close writes the last ones), so a
    // streamed retrieval holds at most one slice's encoded output.
    if (wrote_rows_) ARROW_RETURN_NOT_OK(parquet_->NewBufferedRowGroup());
    arrow::TableBatchReader batches(*rows);
    batches.set_chunksize(kRowGroupRows);
    while (true) {
      std::shared_ptr<arrow::RecordBatch> batch;
      ARROW_RETURN_NOT_OK(batches.ReadNext(&batch));
      if (!batch) return arrow::Status::OK();
      ARROW_RETURN_NOT_OK(parquet_->WriteRecordBatch(*batch));
      wrote_rows_ = true;
    }
  }
  arrow::Status Close() {
    if (csv_) ARROW_RETURN_NOT_OK(csv_->Close());
    if (parquet_) ARROW_RETURN_NOT_OK(parquet_->Close());
    ARROW_RETURN_NOT_OK(out_->Close());
    if (std::rename(partial_.c_str(), path_.c_str()) != 0) {
      return arrow::Status::IOError("cannot rename '", partial_, "' to '", path_, "'");
    }
    closed_ = true;
    return arrow::Status::OK();
  }

 private:
  static constexpr int64_t kRowGroupRows = int64_t{1} << 20;
  static constexpr int64_t kMaxPendingBytes = int64_t{64} << 20;

  std::string path_;
  std::string partial_;
  std::shared_ptr<arrow::io::OutputStream> out_;
  std::shared_ptr<arrow::ipc::RecordBatchWriter> csv_;
  std::unique_ptr<parquet::arrow::FileWriter> parquet_;
  bool wrote_rows_ = false;
  bool closed_ = false;
};

// Hands a streamed retrieval's output to each of its sinks (null ones skipped).
class TeeSink : public retrieval::HistoricalSink {
 public:
  explicit TeeSink(std::vector<retrieval::HistoricalSink*> sinks) : sinks_(std::move(sinks)) {}
  arrow::Status Begin(const std::shared_ptr<arrow::Schema>& schema) override {
    for (auto* s : sinks_) {
      if (s) ARROW_RETURN_NOT_OK(s->Begin(schema));
    }
    return arrow::Status::OK();
  }
  arrow::Status Write(const std::shared_ptr<arrow::Table>& rows) override {
    for (auto* s : sinks_) {
      if (s) ARROW_RETURN_NOT_OK(s->Write(rows));
    }
    return arrow::Status::OK();
  }

 private:
  std::vector<retrieval::HistoricalSink*> sinks_;
};

arrow::Result<int64_t> ParseTimeArg(const std::string& text) {
  // Parse at nanosecond precision (any fraction is accepted), keep milliseconds.
  static const auto parser = arrow::TimestampParser::MakeISO8601();
  int64_t ns = 0;
  if ((*parser)(text.data(), text.size(), arrow::TimeUnit::NANO, &ns)) {
    return ns >= 0 ? ns / 1000000 : -((-ns + 999999) / 1000000);
  }
  throw Usage{"--as-of '" + text + "' is not an ISO 8601 time (e.g. 2026-08-01T00:00:00Z)"};
}

void WriteManifestJson(JsonWriter& w, const retrieval::DatasetManifest& m) {
  w.StartObject();
  w.Key("name");
  JStr(w, m.name);
  w.Key("table");
  JStr(w, m.table_uri);
  w.Key("table_version");
  w.Int64(m.table_version);
  w.Key("created_at");
  JStr(w, UtcTime(m.created_at_ms));
  w.Key("registry_version");
  w.Int64(m.registry_version);
  w.Key("feature_service");
  JStr(w, m.feature_service);
  w.Key("features");
  w.StartArray();
  for (const auto& f : m.feature_refs) JStr(w, f);
  w.EndArray();
  w.Key("as_of");
  m.as_of_ms ? JStr(w, UtcTime(*m.as_of_ms)) : (void)w.Null();
  w.Key("rows");
  w.Int64(m.rows);
  w.Key("entity_hash");
  JStr(w, m.entity_hash);
  w.Key("sources");
  w.StartObject();
  for (const auto& s : m.sources) {
    JStr(w, s.source);
    w.Int64(s.version);
  }
  w.EndObject();
  w.EndObject();
}

arrow::Status CmdGetHistorical(const Args& a) {
  Allow(a, {"--entities", "--features", "--feature-service", "--full-feature-names", "--as-of",
            "--timestamp-column", "--output", "--save-as", "--memory-budget"});
  if (!a.positional.empty()) throw Usage{"get-historical takes options only"};
  auto entities = a.Get("--entities");
  auto output = a.Get("--output");
  if (!entities) throw Usage{"--entities FILE is required"};
  if (!output && !a.Get("--save-as")) throw Usage{"--output FILE (or --save-as NAME) is required"};
  if (a.Get("--features").has_value() == a.Get("--feature-service").has_value()) {
    throw Usage{"pass exactly one of --features and --feature-service"};
  }
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  retrieval::HistoricalRequest req;
  req.timestamp_column = a.Get("--timestamp-column").value_or("");
  if (auto f = a.Get("--features")) {
    std::stringstream ss(*f);
    std::string x;
    while (std::getline(ss, x, ',')) {
      if (!x.empty()) req.features.push_back(x);
    }
  }
  req.feature_service = a.Get("--feature-service").value_or("");
  req.full_feature_names = a.Has("--full-feature-names");
  if (auto t = a.Get("--as-of")) {
    ARROW_ASSIGN_OR_RAISE(int64_t ms, ParseTimeArg(*t));
    req.as_of_ms = ms;
  }
  req.memory_budget_bytes = IntOpt(a, "--memory-budget", 0);
  req.progress = !a.Has("--json");
  // Stream: the entity rows and the output stay within the memory budget, and
  // go to the output file, the saved dataset, or both.
  const int64_t budget =
      req.memory_budget_bytes > 0 ? req.memory_budget_bytes : retrieval::DefaultMemoryBudget();
  std::error_code size_error;
  auto size = std::filesystem::file_size(*entities, size_error);
  if (EndsWith(*entities, ".csv") && !size_error && static_cast<int64_t>(size) <= budget / 2) {
    ARROW_ASSIGN_OR_RAISE(req.entities, ReadTableFile(*entities));
  } else {
    ARROW_ASSIGN_OR_RAISE(req.open_entities, EntityFileReader(*entities));
  }
  std::unique_ptr<retrieval::DatasetWriter> dataset;
  if (auto name = a.Get("--save-as")) {
    ARROW_ASSIGN_OR_RAISE(dataset, retrieval::DatasetWriter::Open(*r, *name, req));
  }
  std::optional<OutputFileSink> file;
  if (output) file.emplace(*output);
  TeeSink sink({file ? &*file : nullptr, dataset.get()});
  ARROW_ASSIGN_OR_RAISE(auto result, retrieval::GetHistoricalFeatures(*r, req, &sink));
  if (file) ARROW_RETURN_NOT_OK(file->Close());
  std::optional<retrieval::DatasetManifest> saved;
  if (dataset) {
    ARROW_ASSIGN_OR_RAISE(saved, dataset->Finish(result));
  }
  if (a.Has("--json")) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("rows");
    w.Int64(result.rows);
    w.Key("columns");
    w.StartArray();
    for (const auto& n : result.schema->field_names()) JStr(w, n);
    w.EndArray();
    w.Key("registry_version");
    w.Int64(result.registry_version);
    w.Key("sources");
    w.StartObject();
    for (const auto& s : result.sources) {
      JStr(w, s.source);
      w.Int64(s.version);
    }
    w.EndObject();
    w.Key("output");
    output ? JStr(w, *output) : (void)w.Null();
    w.Key("dataset");
    if (saved) {
      WriteManifestJson(w, *saved);
    } else {
      w.Null();
    }
    w.EndObject();
    Emit(buf);
    return arrow::Status::OK();
  }
  std::cout << "training set: " << result.rows << " rows, " << result.schema->num_fields()
            << " columns (registry version " << result.registry_version << ")\n";
  for (const auto& s : result.sources) {
    std::cout << "  source " << s.source << ": Delta version " << s.version << ", " << s.files_read
              << " of " << s.files_total << " files, " << s.rows_read << " rows read\n";
  }
  if (output) std::cout << "written to " << *output << "\n";
  if (saved) {
    std::cout << "saved as dataset '" << saved->name << "' (" << saved->table_uri << ")\n";
  }
  return arrow::Status::OK();
}

arrow::Status CmdDatasets(const Args& a) {
  Allow(a, {"--output", "--memory-budget"});
  if (a.positional.empty()) throw Usage{"datasets needs a subcommand: list, describe or recreate"};
  const std::string& sub = a.positional[0];
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  bool json = a.Has("--json");
  if (sub == "list") {
    ARROW_ASSIGN_OR_RAISE(auto all, retrieval::ListDatasets(*r));
    if (json) {
      rapidjson::StringBuffer buf;
      JsonWriter w(buf);
      w.StartArray();
      for (const auto& m : all) WriteManifestJson(w, m);
      w.EndArray();
      Emit(buf);
      return arrow::Status::OK();
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& m : all) {
      rows.push_back({m.name, std::to_string(m.rows), std::to_string(m.registry_version),
                      m.feature_service.empty()
                          ? std::to_string(m.feature_refs.size()) + " features"
                          : m.feature_service,
                      UtcTime(m.created_at_ms)});
    }
    PrintRows({"NAME", "ROWS", "REGISTRY", "FEATURES", "CREATED"}, rows);
    return arrow::Status::OK();
  }
  if (a.positional.size() != 2) throw Usage{"datasets " + sub + " needs a NAME"};
  const std::string& name = a.positional[1];
  if (sub == "describe") {
    ARROW_ASSIGN_OR_RAISE(auto m, retrieval::LoadDatasetManifest(*r, name));
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    WriteManifestJson(w, m);
    if (json) {
      Emit(buf);
    } else {
      std::cout << JsonToYaml(buf.GetString());
    }
    return arrow::Status::OK();
  }
  if (sub == "recreate") {
    std::optional<OutputFileSink> file;
    if (auto out = a.Get("--output")) file.emplace(*out);
    ARROW_ASSIGN_OR_RAISE(auto rec, retrieval::RecreateDataset(*r, name, file ? &*file : nullptr,
                                                               IntOpt(a, "--memory-budget", 0)));
    if (file) ARROW_RETURN_NOT_OK(file->Close());
    if (json) {
      rapidjson::StringBuffer buf;
      JsonWriter w(buf);
      w.StartObject();
      w.Key("name");
      JStr(w, name);
      w.Key("rows");
      w.Int64(rec.rows);
      w.Key("identical");
      w.Bool(rec.identical);
      w.Key("difference");
      JStr(w, rec.difference);
      w.EndObject();
      Emit(buf);
    } else if (rec.identical) {
      std::cout << "recreated dataset '" << name << "': " << rec.rows
                << " rows, identical to the saved rows\n";
    }
    if (!rec.identical) {
      return MakeError(
          arrow::StatusCode::Invalid, ErrorKind::kSchemaMismatch,
          "recreated dataset '" + name + "' differs from the saved rows: " + rec.difference);
    }
    return arrow::Status::OK();
  }
  throw Usage{"unknown datasets subcommand '" + sub + "' (use list, describe or recreate)"};
}

// ---- online store -----------------------------------------------------------

arrow::Result<int64_t> ParseTimeMicros(const std::string& what, const std::string& text) {
  if (text == "now") return Clock::System()->NowMillis() * 1000;
  static const auto parser = arrow::TimestampParser::MakeISO8601();
  int64_t us = 0;
  if ((*parser)(text.data(), text.size(), arrow::TimeUnit::MICRO, &us)) return us;
  throw Usage{what + " '" + text + "' is not an ISO 8601 time (e.g. 2026-08-01T00:00:00Z) or now"};
}

std::vector<std::string> SplitCommas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string x;
  while (std::getline(ss, x, ',')) {
    if (!x.empty()) out.push_back(x);
  }
  return out;
}

arrow::Status CmdMaterialize(const Args& a, bool incremental) {
  Allow(a, {"--views"});
  online::MaterializeOptions mo;
  mo.incremental = incremental;
  if (incremental) {
    if (a.positional.size() != 1) throw Usage{"materialize-incremental takes END (or now)"};
    ARROW_ASSIGN_OR_RAISE(mo.end_us, ParseTimeMicros("END", a.positional[0]));
  } else {
    if (a.positional.size() != 2) throw Usage{"materialize takes START and END"};
    ARROW_ASSIGN_OR_RAISE(auto start, ParseTimeMicros("START", a.positional[0]));
    mo.start_us = start;
    ARROW_ASSIGN_OR_RAISE(mo.end_us, ParseTimeMicros("END", a.positional[1]));
  }
  if (auto v = a.Get("--views")) mo.views = SplitCommas(*v);
  mo.progress = !a.Has("--json");
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto store, online::OpenRepositoryStore(*r));
  ARROW_ASSIGN_OR_RAISE(auto report, online::Materialize(*r, *store, mo));
  if (a.Has("--json")) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("store");
    JStr(w, store->Describe());
    w.Key("views");
    w.StartArray();
    for (const auto& v : report.views) {
      w.StartObject();
      w.Key("view");
      JStr(w, v.view);
      w.Key("source");
      JStr(w, v.source);
      w.Key("incremental");
      w.Bool(v.incremental);
      w.Key("from_version");
      w.Int64(v.from_version);
      w.Key("to_version");
      w.Int64(v.to_version);
      w.Key("files_read");
      w.Int64(v.files_read);
      w.Key("files_total");
      w.Int64(v.files_total);
      w.Key("rows_read");
      w.Int64(v.rows_read);
      w.Key("rows_written");
      w.Int64(v.rows_written);
      w.Key("keys_repaired");
      w.Int64(v.keys_repaired);
      w.Key("repair_passes");
      w.Int64(v.repair_passes);
      w.Key("rebuilt");
      w.Bool(v.rebuilt);
      w.Key("seconds");
      w.Double(v.seconds);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    Emit(buf);
    return arrow::Status::OK();
  }
  std::cout << "materialized into " << store->Describe() << " up to "
            << online::FormatTimestampMicros(mo.end_us) << ":\n";
  for (const auto& v : report.views) {
    char rate[64] = "";
    if (v.seconds > 0) {
      std::snprintf(rate, sizeof rate, ", %.0f rows/s",
                    static_cast<double>(v.rows_written) / v.seconds);
    }
    std::cout << "  " << v.view << ": " << v.rows_written << " rows from source " << v.source;
    if (v.to_version < 0) {
      std::cout << " (no table yet)\n";
      continue;
    }
    std::cout << " version " << v.to_version;
    if (v.incremental) std::cout << " (incremental since version " << v.from_version << ")";
    if (v.rebuilt)
      std::cout << " (rebuilt: rows deleted since the last run could not be known, so every stored "
                   "key was checked against a full read)";
    std::cout << ", " << v.files_read << " of " << v.files_total << " files";
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.2f", v.seconds);
    std::cout << ", " << secs << " s" << rate << "\n";
    if (v.keys_repaired > 0) {
      std::cout << "    " << v.keys_repaired << (v.keys_repaired == 1 ? " key" : " keys")
                << " whose latest rows were deleted since the last run: set to "
                << (v.keys_repaired == 1 ? "its value" : "their values")
                << " in the source as it is now"
                << (v.repair_passes > 0
                        ? " (" + std::to_string(v.repair_passes) +
                              " passes over the keys of the removed rows: too many to track "
                              "during the writes)"
                        : std::string())
                << "\n";
    }
  }
  return arrow::Status::OK();
}

arrow::Status CmdGetOnline(const Args& a) {
  Allow(a, {"--features", "--feature-service", "--entity", "--full-feature-names"});
  if (!a.positional.empty()) throw Usage{"get-online takes options only"};
  if (a.Get("--features").has_value() == a.Get("--feature-service").has_value()) {
    throw Usage{"pass exactly one of --features and --feature-service"};
  }
  if (a.entity_args.empty()) throw Usage{"--entity KEY=V1,V2 is required"};
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto reg, r->registry());
  ARROW_ASSIGN_OR_RAISE(auto state, reg->Load());
  online::OnlineRequest req;
  if (auto f = a.Get("--features")) req.features = SplitCommas(*f);
  req.feature_service = a.Get("--feature-service").value_or("");
  req.full_feature_names = a.Has("--full-feature-names");
  for (const auto& e : a.entity_args) {
    auto eq = e.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Usage{"--entity wants KEY=V1,V2, not '" + e + "'"};
    std::string key = e.substr(0, eq);
    // The join key's declared type decides how the values are read.
    bool integer = false;
    for (const auto& ent : state->defs.entities) {
      for (const auto& k : ent.join_keys) {
        if (k.name == key && k.type && arrow::is_integer(k.type->id())) integer = true;
      }
    }
    std::vector<online::KeyScalar> values;
    for (const auto& v : SplitCommas(e.substr(eq + 1))) {
      if (!integer) {
        values.emplace_back(v);
        continue;
      }
      try {
        size_t pos = 0;
        int64_t n = std::stoll(v, &pos);
        if (pos != v.size()) throw std::invalid_argument(v);
        values.emplace_back(n);
      } catch (const std::exception&) {
        throw Usage{"join key " + key + " is an integer; '" + v + "' is not"};
      }
    }
    req.entities.emplace_back(key, std::move(values));
  }
  // Read-only: works beside a running `stratalake serve`.
  ARROW_ASSIGN_OR_RAISE(auto store, online::OpenRepositoryStore(*r, /*read_only=*/true));
  online::OnlineService service(reg, std::shared_ptr<online::OnlineStore>(std::move(store)),
                                Clock::System());
  ARROW_ASSIGN_OR_RAISE(auto resp, service.Get(req));
  if (a.Has("--json")) {
    std::string out;
    resp.AppendJson(&out);
    std::cout << out << "\n";
    return arrow::Status::OK();
  }
  std::vector<std::string> header;
  for (const auto& c : resp.columns) header.push_back(c.name);
  std::vector<std::vector<std::string>> rows(resp.rows);
  for (size_t i = 0; i < resp.rows; ++i) {
    for (const auto& c : resp.columns) {
      std::string cell;
      if (c.is_join_key) {
        const auto& k = (*c.keys)[i];
        if (const auto* n = std::get_if<int64_t>(&k)) cell = std::to_string(*n);
        if (const auto* s = std::get_if<std::string>(&k)) cell = *s;
      } else if (c.statuses[i] == online::FeatureStatus::kPresent) {
        online::AppendFieldJson(*c.type, c.values[i], &cell);
        if (cell.size() >= 2 && cell.front() == '"' && cell.back() == '"') {
          cell = cell.substr(1, cell.size() - 2);
        }
      } else {
        cell = online::FeatureStatusName(c.statuses[i]);
      }
      rows[i].push_back(cell);
    }
  }
  PrintRows(header, rows);
  return arrow::Status::OK();
}

arrow::Status CmdPush(const Args& a) {
  Allow(a, {"--to"});
  if (a.positional.size() != 2) throw Usage{"push takes SOURCE and FILE"};
  ARROW_ASSIGN_OR_RAISE(auto to, online::ParsePushTarget(a.Get("--to").value_or("online")));
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto reg, r->registry());
  ARROW_ASSIGN_OR_RAISE(auto state, reg->Load());
  ARROW_ASSIGN_OR_RAISE(auto data, ReadTableFile(a.positional[1]));
  std::unique_ptr<online::OnlineStore> store;
  if (to != online::PushTarget::kOffline) {
    ARROW_ASSIGN_OR_RAISE(store, online::OpenRepositoryStore(*r));
  }
  ARROW_ASSIGN_OR_RAISE(auto res, online::Push(*r, *state, store.get(), a.positional[0], data, to));
  if (a.Has("--json")) {
    std::cout << "{\"rows\":" << res.rows << ",\"views_written\":" << res.views_written
              << ",\"delta_version\":" << res.delta_version.value_or(-1) << "}\n";
    return arrow::Status::OK();
  }
  std::cout << "pushed " << res.rows << " rows to " << a.positional[0];
  if (to != online::PushTarget::kOffline)
    std::cout << " (online: " << res.views_written << " views)";
  if (res.delta_version) std::cout << " (offline: Delta version " << *res.delta_version << ")";
  std::cout << "\n";
  return arrow::Status::OK();
}

arrow::Status CmdServe(const Args& a) {
  Allow(a, {"--host", "--port", "--threads", "--max-body-bytes", "--max-entity-rows",
            "--header-timeout-s", "--body-timeout-s", "--idle-timeout-s", "--write-timeout-s",
            "--max-connection-output-bytes", "--max-queued", "--busy-poll-us",
            "--realtime-priority", "--log-requests"});
  if (!a.positional.empty()) throw Usage{"serve takes options only"};
  server::ServerOptions o;
  o.host = a.Get("--host").value_or("127.0.0.1");
  o.port = static_cast<int>(IntOpt(a, "--port", 6566));
  if (o.port < 0 || o.port > 65535) throw Usage{"--port must be 0..65535"};
  o.io_threads = static_cast<int>(IntOpt(a, "--threads", 0));
  // A limit: a positive integer up to `most`.
  auto limit = [&](const char* key, int64_t dflt, int64_t most, const char* unit) {
    const int64_t v = IntOpt(a, key, dflt);
    if (v < 1 || v > most) {
      throw Usage{std::string(key) + " must be 1.." + std::to_string(most) + " (" + unit + ")"};
    }
    return v;
  };
  constexpr int64_t kDay = 86400;
  o.max_body_bytes =
      static_cast<size_t>(limit("--max-body-bytes", 8 << 20, int64_t{1} << 32, "bytes"));
  o.max_entity_rows =
      static_cast<size_t>(limit("--max-entity-rows", 100000, int64_t{1} << 32, "rows"));
  o.header_timeout_s = static_cast<int>(limit("--header-timeout-s", 10, kDay, "seconds"));
  o.body_timeout_s = static_cast<int>(limit("--body-timeout-s", 60, kDay, "seconds"));
  o.idle_timeout_s = static_cast<int>(limit("--idle-timeout-s", 120, kDay, "seconds"));
  o.write_timeout_s = static_cast<int>(limit("--write-timeout-s", 30, kDay, "seconds"));
  o.max_connection_output_bytes = static_cast<size_t>(
      limit("--max-connection-output-bytes", 1 << 20, int64_t{1} << 32, "bytes"));
  o.max_queued = static_cast<int>(IntOpt(a, "--max-queued", 64));
  if (o.max_queued < 0) throw Usage{"--max-queued must be >= 0"};
  const int64_t busy = IntOpt(a, "--busy-poll-us", 0);
  if (busy < 0 || busy > 1000000) throw Usage{"--busy-poll-us must be 0..1000000 (microseconds)"};
  o.busy_poll_us = static_cast<int>(busy);
  const int64_t rt = IntOpt(a, "--realtime-priority", 0);
  if (rt < 0 || rt > 99)
    throw Usage{"--realtime-priority must be 1..99 (SCHED_FIFO), or 0 for off"};
  o.realtime_priority = static_cast<int>(rt);
  o.log_requests = a.Has("--log-requests");
  o.handle_signals = true;
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  std::shared_ptr<repo::FeatureRepository> shared(std::move(r));
  ARROW_ASSIGN_OR_RAISE(auto server, server::FeatureServer::Start(shared, o));
  std::cout << "serving " << shared->config().project << " on http://" << o.host << ":"
            << server->port() << " (online store " << shared->config().online_store_type
            << "); stop with Ctrl-C or SIGTERM" << std::endl;
  ARROW_RETURN_NOT_OK(server->Wait());
  std::cout << "stopped" << std::endl;
  return arrow::Status::OK();
}

arrow::Status Dispatch(const Args& a) {
  const std::string& c = a.command;
  if (c == "init") return CmdInit(a);
  if (c == "plan") return CmdPlan(a);
  if (c == "apply") return CmdApply(a);
  if (c == "entities") return CmdObjects(a, ObjectKind::kEntity);
  if (c == "sources") return CmdObjects(a, ObjectKind::kSource);
  if (c == "feature-views") return CmdObjects(a, ObjectKind::kFeatureView);
  if (c == "feature-services") return CmdObjects(a, ObjectKind::kFeatureService);
  if (c == "registry") return CmdRegistry(a);
  if (c == "ingest") return CmdIngest(a);
  if (c == "tables") return CmdTables(a);
  if (c == "get-historical") return CmdGetHistorical(a);
  if (c == "datasets") return CmdDatasets(a);
  if (c == "materialize") return CmdMaterialize(a, false);
  if (c == "materialize-incremental") return CmdMaterialize(a, true);
  if (c == "get-online") return CmdGetOnline(a);
  if (c == "push") return CmdPush(a);
  if (c == "serve") return CmdServe(a);
  throw Usage{"unknown command " + c};
}

}  // namespace

bool IsRepoCommand(const std::string& command) { return kHelp.count(command) > 0; }

std::string RepoCommandsUsage() {
  std::string out;
  for (const char* c :
       {"init", "plan", "apply", "entities", "sources", "feature-views", "feature-services",
        "registry", "ingest", "tables", "get-historical", "datasets", "materialize",
        "materialize-incremental", "get-online", "push", "serve"}) {
    out += std::string("  ") + kHelp.at(c).usage + "\n";
  }
  return out;
}

int RunRepoCommand(const std::vector<std::string>& argv) {
  const std::string& cmd = argv.at(0);
  try {
    Args a = Parse(argv);
    if (a.Has("--help")) {
      std::cout << HelpText(cmd);
      return 0;
    }
    arrow::Status st = Dispatch(a);
    if (!st.ok()) {
      std::cerr << "error: " << st.message() << "\n";
      return 1;
    }
    return 0;
  } catch (const Usage& u) {
    std::cerr << "error: " << u.message << "\n\n" << HelpText(cmd);
    return 2;
  } catch (const std::exception& e) {
    // The last boundary: a library that throws must not abort the process.
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace stratalake::cli
