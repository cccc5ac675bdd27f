// Feature-repository commands: init, plan, apply, the object listings
// (entities, sources, feature-views, feature-services), registry and tables.
// Conventions: --repo DIR (default "."), --json for machine output, exit 0 on
// success, 1 on a user error (one-line message first, details after), 2 on a
// usage error; --help on every command prints its usage and an example.
#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/util/value_parsing.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "commands.h"
#include "stratalake/init.h"
#include "stratalake/registry.h"
#include "stratalake/repo.h"
#include "stratalake/status.h"
#include "stratalake/transform.h"

namespace stratalake::cli {

namespace {

using registry::ObjectKind;

std::string Author() {
  if (const char* u = std::getenv("STRATALAKE_USER")) return u;
  if (const char* u = std::getenv("USER")) return u;
  if (const struct passwd* pw = getpwuid(getuid())) return pw->pw_name;
  return "unknown";
}

// ---- init -------------------------------------------------------------------

arrow::Status CmdInit(const Args& a) {
  if (a.positional.size() != 1) return UsageError("init needs exactly one DIR");
  repo::InitOptions o;
  o.project = a.Get("--project").value_or("");
  o.template_name = a.GetOr("--template", "shop");
  ARROW_ASSIGN_OR_RAISE(o.customers, IntOpt(a, "--customers", 1000));
  ARROW_ASSIGN_OR_RAISE(int64_t seed, IntOpt(a, "--seed", 42));
  o.seed = static_cast<uint64_t>(seed);
  if (auto as_of = a.Get("--as-of")) {
    static const auto parser = arrow::TimestampParser::MakeISO8601();
    int64_t ms = 0;
    if (!(*parser)(as_of->data(), as_of->size(), arrow::TimeUnit::MILLI, &ms)) {
      return UsageError("--as-of '" + *as_of +
                        "' is not a date (e.g. 2026-09-01) or ISO 8601 time");
    }
    o.as_of_ms = ms;
  }
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
  if (o.template_name == "markets") {
    std::cout
        << "\nNext steps:\n"
        << "  cd " << a.positional[0] << "\n"
        << "  stratalake apply                                   # register the definitions\n"
        << "  stratalake ingest trades data/trades.jsonl         # the trades, without Kafka\n"
        << "  # or stream them: KAFKA_BROKERS=HOST:PORT stratalake stream produce-sample, then\n"
        << "  #   KAFKA_BROKERS=HOST:PORT stratalake stream --stop-at-end\n"
        << "  stratalake run --all                               # bronze -> silver -> gold\n"
        << "  stratalake sql \"SELECT * FROM gold.trade_labels\" --output labels.parquet\n"
        << "  stratalake get-historical --entities labels.parquet --timestamp-column ts "
           "--feature-service trade_model --output train.parquet\n";
    return arrow::Status::OK();
  }
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

// The registry plan's keys; with `pipelines`, its problems among the
// incompatibilities, then "runs" (what `run --all` would run, in order) and
// "up_to_date" (the transformations it would skip).
void WritePlanJson(JsonWriter& w, const registry::Plan& plan,
                   const transform::PipelinePlan* pipelines = nullptr) {
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
  if (pipelines) {
    for (const auto& i : pipelines->problems) JStr(w, i);
  }
  w.EndArray();
  if (pipelines) {
    w.Key("runs");
    w.StartArray();
    for (const auto& p : pipelines->runs) {
      if (p.stale) WritePlannedRun(w, p, /*with_stale=*/false);
    }
    w.EndArray();
    w.Key("up_to_date");
    w.StartArray();
    for (const auto& p : pipelines->runs) {
      if (!p.stale) JStr(w, p.name);
    }
    w.EndArray();
  }
  w.EndObject();
}

arrow::Status CmdPlan(const Args& a) {
  if (!a.positional.empty()) return UsageError("plan takes no arguments");
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto defs, r->LoadValidatedDefinitions());
  ARROW_ASSIGN_OR_RAISE(auto reg, r->registry());
  ARROW_ASSIGN_OR_RAISE(auto plan, reg->PlanChanges(defs, r->config().compatibility));
  ARROW_ASSIGN_OR_RAISE(auto pipelines, transform::PlanPipelines(*r, defs));
  if (a.Has("--json")) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    WritePlanJson(w, plan, &pipelines);
    Emit(buf);
  } else {
    std::cout << plan.ToString() << pipelines.ToString();
  }
  const size_t refused = plan.incompatibilities.size() + pipelines.problems.size();
  if (refused > 0) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kIncompatibleChange,
                     std::to_string(refused) +
                         " incompatible change(s) (marked '!' above): `apply` would refuse them");
  }
  return arrow::Status::OK();
}

arrow::Status CmdApply(const Args& a) {
  if (!a.positional.empty()) return UsageError("apply takes no arguments");
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto defs, r->LoadValidatedDefinitions());
  ARROW_ASSIGN_OR_RAISE(auto reg, r->registry());
  // Outputs that would not fit the feature views reading them are refused here
  // as a run would refuse them (the registry checks the rest).
  ARROW_ASSIGN_OR_RAISE(auto pipelines, transform::PlanPipelines(*r, defs));
  ARROW_RETURN_NOT_OK(pipelines.Refusal());
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
    case ObjectKind::kRequestSource: {
      const auto* rs = defs.FindRequestSource(name);
      for (const auto& f : rs->schema) {
        s += (s.empty() ? "" : ", ") + f.name + " " + registry::FeatureTypeName(*f.type);
      }
      return s;
    }
    case ObjectKind::kOnDemandFeatureView: {
      const auto* v = defs.FindOnDemandFeatureView(name);
      for (const auto& src : v->sources) s += (s.empty() ? "" : ",") + src;
      return "[" + s + "] " + std::to_string(v->features.size()) + " features, on demand";
    }
    case ObjectKind::kTransformation: {
      const auto* t = defs.FindTransformation(name);
      s = t->output + ", " + registry::TransformModeName(t->mode);
      if (!t->keys.empty()) {
        std::string keys;
        for (const auto& k : t->keys) keys += (keys.empty() ? "" : ",") + k;
        s += " on " + keys;
      }
      if (t->mode != registry::TransformMode::kFullRefresh) {
        s += ", on_change " + std::string(registry::OnChangeName(t->on_change));
      }
      if (!t->python_file.empty()) {
        s += ", python " + t->python_file + ":" + t->python_function + " (" + t->kind + ")";
      }
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
    case ObjectKind::kRequestSource:
      add(d.request_sources);
      break;
    case ObjectKind::kOnDemandFeatureView:
      add(d.on_demand_feature_views);
      break;
    case ObjectKind::kTransformation:
      add(d.transformations);
      break;
  }
  return out;
}

arrow::Result<std::shared_ptr<const registry::RegistryState>> LoadState(registry::Registry& reg,
                                                                        const Args& a) {
  std::optional<int64_t> v;
  if (a.Get("--registry-version")) {
    ARROW_ASSIGN_OR_RAISE(v, IntOpt(a, "--registry-version", 0));
  }
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
  std::string sub = a.positional.empty() ? "list" : a.positional[0];
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto reg, r->registry());
  ARROW_ASSIGN_OR_RAISE(auto state, LoadState(*reg, a));
  if (sub == "list") {
    if (a.positional.size() > 1) return UsageError("list takes no NAME");
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
    if (a.positional.size() != 2) return UsageError("describe needs exactly one NAME");
    std::optional<int64_t> v;
    if (a.Get("--version")) {
      ARROW_ASSIGN_OR_RAISE(v, IntOpt(a, "--version", 0));
    }
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
  return UsageError("unknown subcommand '" + sub + "' (use list or describe)");
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
                    ObjectKind::kFeatureService, ObjectKind::kRequestSource,
                    ObjectKind::kOnDemandFeatureView, ObjectKind::kTransformation}) {
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
  if (a.positional.empty())
    return UsageError("registry needs a subcommand: history, describe or show");
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
    if (a.positional.size() != 2) return UsageError("registry " + sub + " needs one OBJECT");
    ARROW_ASSIGN_OR_RAISE(auto state, reg->Load());
    ARROW_ASSIGN_OR_RAISE(auto obj, ResolveObject(*state, *reg, a.positional[1]));
    if (sub == "describe") {
      std::optional<int64_t> v;
      if (a.Get("--version")) {
        ARROW_ASSIGN_OR_RAISE(v, IntOpt(a, "--version", 0));
      }
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
    if (a.Get("--version")) {
      ARROW_ASSIGN_OR_RAISE(v, IntOpt(a, "--version", 0));
    }
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
      for (const auto& rs : state->defs.request_sources) {
        put(ObjectKind::kRequestSource, rs.name, registry::ToCanonicalJson(rs));
      }
      for (const auto& odfv : state->defs.on_demand_feature_views) {
        put(ObjectKind::kOnDemandFeatureView, odfv.name, registry::ToCanonicalJson(odfv));
      }
      for (const auto& t : state->defs.transformations) {
        put(ObjectKind::kTransformation, t.name, registry::ToCanonicalJson(t));
      }
      w.EndArray();
      w.EndObject();
      Emit(buf);
      return arrow::Status::OK();
    }
    std::vector<std::vector<std::string>> rows;
    for (auto kind : {ObjectKind::kEntity, ObjectKind::kSource, ObjectKind::kFeatureView,
                      ObjectKind::kFeatureService, ObjectKind::kRequestSource,
                      ObjectKind::kOnDemandFeatureView, ObjectKind::kTransformation}) {
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
  return UsageError("unknown registry subcommand '" + sub + "' (use history, describe or show)");
}

// ---- tables -------------------------------------------------------------------

arrow::Status CmdTables(const Args& a) {
  if (!a.positional.empty()) return UsageError("tables takes no arguments");
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

}  // namespace

std::vector<Command> RepoCommands() {
  const std::set<std::string> listing = {"--version", "--registry-version"};
  auto objects = [&](const std::string& name, ObjectKind kind, std::string usage,
                     std::string summary, std::string example) {
    return RepoCommand(name, std::move(usage), std::move(summary), std::move(example), listing, {},
                       [kind](const Args& a) { return CmdObjects(a, kind); });
  };
  return {
      RepoCommand("init",
                  "stratalake init DIR [--template shop|markets] [--project NAME] "
                  "[--customers N] [--seed N] [--as-of DATE]",
                  "Create a feature repository in DIR with a sample's definitions and generated "
                  "data ending before --as-of (default today): the e-commerce shop (default) or, "
                  "with --template markets, BTCUSDT/ETHUSDT trades from a kafka source with SQL "
                  "features and labels for a trading model.",
                  "stratalake init shop && cd shop && stratalake apply",
                  {"--project", "--customers", "--seed", "--as-of", "--template"}, {}, CmdInit),
      RepoCommand("plan", "stratalake plan [--repo DIR] [--json]",
                  "Validate the definitions and show what `apply` would change, field by field, "
                  "then the transformations `run --all` would run (in dependency order, and "
                  "why).",
                  "stratalake plan --repo shop", {}, {}, CmdPlan),
      RepoCommand("apply", "stratalake apply [--repo DIR] [--message TEXT] [--json]",
                  "Validate and commit the definitions as one new registry version (no version "
                  "when nothing changed).",
                  "stratalake apply --repo shop --message 'add clicks_30d'", {"--message"}, {},
                  CmdApply),
      objects("entities", ObjectKind::kEntity,
              "stratalake entities list|describe [NAME] [--version N] [--registry-version N] "
              "[--repo DIR] [--json]",
              "List entities, or describe one (optionally an older object version).",
              "stratalake entities describe customer"),
      objects("sources", ObjectKind::kSource,
              "stratalake sources list|describe [NAME] [--version N] [--registry-version N] "
              "[--repo DIR] [--json]",
              "List sources, or describe one.", "stratalake sources describe orders"),
      objects("feature-views", ObjectKind::kFeatureView,
              "stratalake feature-views list|describe [NAME] [--version N] [--registry-version N] "
              "[--repo DIR] [--json]",
              "List feature views, or describe one.",
              "stratalake feature-views describe customer_stats --version 1"),
      objects("feature-services", ObjectKind::kFeatureService,
              "stratalake feature-services list|describe [NAME] [--version N] "
              "[--registry-version N] [--repo DIR] [--json]",
              "List feature services, or describe one.",
              "stratalake feature-services describe churn_model"),
      objects("on-demand-feature-views", ObjectKind::kOnDemandFeatureView,
              "stratalake on-demand-feature-views list|describe [NAME] [--version N] "
              "[--registry-version N] [--repo DIR] [--json]",
              "List on-demand feature views (computed at request time), or describe one.",
              "stratalake on-demand-feature-views describe order_features"),
      objects("request-sources", ObjectKind::kRequestSource,
              "stratalake request-sources list|describe [NAME] [--version N] "
              "[--registry-version N] [--repo DIR] [--json]",
              "List request sources (request data for on-demand views), or describe one.",
              "stratalake request-sources describe order_request"),
      objects("transformations", ObjectKind::kTransformation,
              "stratalake transformations list|describe [NAME] [--version N] "
              "[--registry-version N] [--repo DIR] [--json]",
              "List the registered transformations (the SQL that `run` materializes into "
              "tables), or describe one (optionally an older version).",
              "stratalake transformations describe silver_orders --version 1"),
      RepoCommand("registry",
                  "stratalake registry history [OBJECT] | describe OBJECT [--version N] | show "
                  "[--version N] [--repo DIR] [--json]\n  OBJECT is NAME or KIND/NAME (e.g. "
                  "feature_view/customer_stats)",
                  "Registry versions; an object's version history; one object version; or "
                  "everything at a registry version.",
                  "stratalake registry history feature_view/customer_stats", {"--version"}, {},
                  CmdRegistry),
      RepoCommand("tables", "stratalake tables [--repo DIR] [--json]",
                  "List the Delta tables of the offline store (bronze, silver, gold, datasets, "
                  "quarantine) with version, rows, size and last commit.",
                  "stratalake tables --json", {}, {}, CmdTables),
  };
}

}  // namespace stratalake::cli
