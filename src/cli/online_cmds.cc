// The online store: `stratalake materialize`, `materialize-incremental`,
// `get-online` (the JSON is the feature server's) and `push`.
#include <cstdio>
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
#include "stratalake/clock.h"
#include "stratalake/online.h"
#include "stratalake/registry.h"
#include "stratalake/repo.h"
#include "stratalake/retrieval.h"
#include "stratalake/server.h"
#include "stratalake/status.h"
#include "warnings.h"

namespace stratalake::cli {

namespace {

arrow::Result<int64_t> ParseTimeMicros(const std::string& what, const std::string& text) {
  if (text == "now") return Clock::System()->NowMillis() * 1000;
  static const auto parser = arrow::TimestampParser::MakeISO8601();
  int64_t us = 0;
  if ((*parser)(text.data(), text.size(), arrow::TimeUnit::MICRO, &us)) return us;
  return UsageError(what + " '" + text +
                    "' is not an ISO 8601 time (e.g. 2026-08-01T00:00:00Z) or now");
}

arrow::Status CmdMaterialize(const Args& a, bool incremental) {
  online::MaterializeOptions mo;
  mo.incremental = incremental;
  if (incremental) {
    if (a.positional.size() != 1) return UsageError("materialize-incremental takes END (or now)");
    ARROW_ASSIGN_OR_RAISE(mo.end_us, ParseTimeMicros("END", a.positional[0]));
  } else {
    if (a.positional.size() != 2) return UsageError("materialize takes START and END");
    ARROW_ASSIGN_OR_RAISE(auto start, ParseTimeMicros("START", a.positional[0]));
    mo.start_us = start;
    ARROW_ASSIGN_OR_RAISE(mo.end_us, ParseTimeMicros("END", a.positional[1]));
  }
  if (auto v = a.Get("--views")) mo.views = SplitCommas(*v);
  mo.progress = !a.Has("--json");
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  if (auto engine = a.Get("--engine"); engine && *engine != "local") {
    if (*engine != "spark") {
      return UsageError("--engine must be local or spark, not '" + *engine + "'");
    }
    rapidjson::StringBuffer buf;  // the Spark engine's job (spark_cmd.cc)
    JsonWriter w(buf);
    w.StartObject();
    w.Key("command");
    JStr(w, "materialize");
    w.Key("repo");
    JStr(w, r->config().root);
    w.Key("start_us");
    if (mo.start_us) {
      w.Int64(*mo.start_us);
    } else {
      w.Null();
    }
    w.Key("incremental");
    w.Bool(incremental);
    w.Key("end_us");
    w.Int64(mo.end_us);
    w.Key("views");
    w.StartArray();
    for (const auto& v : mo.views) JStr(w, v);
    w.EndArray();
    w.Key("master");
    JStr(w, a.Get("--spark-master").value_or(""));
    w.EndObject();
    return RunSparkJob(a, buf.GetString());
  }
  ARROW_ASSIGN_OR_RAISE(auto store, online::OpenRepositoryStore(*r));
  ARROW_ASSIGN_OR_RAISE(auto report, online::Materialize(*r, *store, mo));
  PrintWarnings(report.warnings);
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
      w.Key("tiles_written");
      w.Int64(v.tiles_written);
      w.Key("tiles_collected");
      w.Int64(v.tiles_collected);
      w.Key("tiles_deleted");
      w.Int64(v.tiles_deleted);
      w.Key("tile_retries");
      w.Int64(v.tile_retries);
      w.Key("keyed_repair");
      w.Bool(v.keyed_repair);
      w.Key("tiles_repaired");
      w.Int64(v.tiles_repaired);
      w.Key("rows_removed");
      w.Int64(v.rows_removed);
      w.Key("files_rewritten");
      w.Int64(v.files_rewritten);
      w.Key("note");
      JStr(w, v.note);
      w.Key("seconds");
      w.Double(v.seconds);
      w.EndObject();
    }
    w.EndArray();
    w.Key("warnings");
    WriteWarningsJson(w, report.warnings);
    w.EndObject();
    Emit(buf);
    return arrow::Status::OK();
  }
  std::cout << "materialized into " << store->Describe() << " up to "
            << FormatRfc3339Micros(mo.end_us) << ":\n";
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
    if (v.rebuilt && !v.note.empty()) {
      std::cout << " (rebuilt: " << v.note << ")";
    } else if (v.rebuilt) {
      std::cout << " (rebuilt: rows deleted since the last run could not be known, so every stored "
                   "key was checked against a full read)";
    } else if (!v.note.empty()) {
      std::cout << " (" << v.note << ")";
    }
    std::cout << ", " << v.files_read << " of " << v.files_total << " files";
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.2f", v.seconds);
    std::cout << ", " << secs << " s" << rate << "\n";
    if (v.tiles_written > 0 || v.tiles_collected > 0 || v.tiles_deleted > 0) {
      std::cout << "    window tiles: " << v.tiles_written << " written, " << v.tiles_deleted
                << " emptied, " << v.tiles_collected << " expired removed";
      if (v.keyed_repair) std::cout << "; " << v.tiles_repaired << " repaired";
      std::cout << "\n";
    }
    if (v.keys_repaired > 0 && !v.keyed_repair) {
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
  if (!a.positional.empty()) return UsageError("get-online takes options only");
  if (a.Get("--features").has_value() == a.Get("--feature-service").has_value()) {
    return UsageError("pass exactly one of --features and --feature-service");
  }
  if (a.GetAll("--entity").empty()) return UsageError("--entity KEY=V1,V2 is required");
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto reg, r->registry());
  ARROW_ASSIGN_OR_RAISE(auto state, reg->Load());
  online::OnlineRequest req;
  if (auto f = a.Get("--features")) req.features = SplitCommas(*f);
  req.feature_service = a.Get("--feature-service").value_or("");
  req.full_feature_names = a.Has("--full-feature-names");
  for (const auto& e : a.GetAll("--entity")) {
    auto eq = e.find('=');
    if (eq == std::string::npos || eq == 0)
      return UsageError("--entity wants KEY=V1,V2, not '" + e + "'");
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
      auto n = ParseInteger(v);
      if (!n) return UsageError("join key " + key + " is an integer; '" + v + "' is not");
      values.emplace_back(*n);
    }
    req.entities.emplace_back(key, std::move(values));
  }
  // Read-only: works beside a running `stratalake serve`.
  ARROW_ASSIGN_OR_RAISE(auto store, online::OpenRepositoryStore(*r, /*read_only=*/true));
  online::OnlineService service(reg, std::shared_ptr<online::OnlineStore>(std::move(store)),
                                Clock::System());
  ARROW_ASSIGN_OR_RAISE(auto resp, service.Get(req));
  PrintWarnings(resp.warnings);
  if (a.Has("--json")) {
    std::string out;
    server::AppendOnlineResponse(resp, &out);
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
        server::AppendFieldJson(*c.type, c.values[i], &cell);
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
  if (a.positional.size() != 2) return UsageError("push takes SOURCE and FILE");
  ARROW_ASSIGN_OR_RAISE(auto to, online::ParsePushTarget(a.Get("--to").value_or("online")));
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto reg, r->registry());
  ARROW_ASSIGN_OR_RAISE(auto state, reg->Load());
  if (!retrieval::IsTableFileName(a.positional[1])) {
    return UsageError("'" + a.positional[1] + "' must end in .parquet or .csv");
  }
  ARROW_ASSIGN_OR_RAISE(auto data, retrieval::ReadTableFile(a.positional[1]));
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

arrow::Status CmdTeardown(const Args& a) {
  if (!a.positional.empty()) return UsageError("teardown takes no arguments (--views V1,V2)");
  std::vector<std::string> views;
  if (auto v = a.Get("--views")) views = SplitCommas(*v);
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto store, online::OpenRepositoryStore(*r));
  ARROW_ASSIGN_OR_RAISE(auto report, online::Teardown(*r, *store, views));
  if (a.Has("--json")) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("store");
    JStr(w, store->Describe());
    w.Key("views");
    w.StartArray();
    for (const auto& v : report.views) JStr(w, v);
    w.EndArray();
    w.EndObject();
    std::cout << buf.GetString() << "\n";
    return arrow::Status::OK();
  }
  for (const auto& v : report.views) {
    std::cout << "removed feature view '" << v << "' from the online store\n";
  }
  std::cout << "the offline store is untouched; `stratalake materialize-incremental now` "
               "loads the online store again\n";
  return arrow::Status::OK();
}

}  // namespace

std::vector<Command> OnlineCommands() {
  return {
      RepoCommand("materialize",
                  "stratalake materialize START END [--views V1,V2] [--engine local|spark "
                  "[--spark-master URL] [--spark-python PY]] [--repo DIR] [--json]",
                  "Load the latest feature values with event times in [START, END] (ISO 8601) "
                  "from each online feature view's source into the online store, and record a "
                  "watermark.",
                  "stratalake materialize 2026-01-01T00:00:00Z 2026-09-01T00:00:00Z",
                  {"--views", "--engine", "--spark-master", "--spark-python"}, {},
                  [](const Args& a) { return CmdMaterialize(a, false); }),
      RepoCommand("materialize-incremental",
                  "stratalake materialize-incremental END|now [--views V1,V2] [--engine "
                  "local|spark [--spark-master URL] [--spark-python PY]] [--repo DIR] [--json]",
                  "Materialize what changed since each view's watermark: the commits made since "
                  "the last run (only their files are read) and rows after the last END.",
                  "stratalake materialize-incremental now",
                  {"--views", "--engine", "--spark-master", "--spark-python"}, {},
                  [](const Args& a) { return CmdMaterialize(a, true); }),
      RepoCommand("teardown", "stratalake teardown [--views V1,V2] [--repo DIR] [--json]",
                  "Remove the feature views' values from the online store and forget their "
                  "watermarks (Feast's teardown); Delta tables and definitions stay.",
                  "stratalake teardown --views customer_stats", {"--views"}, {}, CmdTeardown),
      RepoCommand("get-online",
                  "stratalake get-online (--features view:f,view2 | --feature-service NAME) "
                  "--entity KEY=V1,V2 [--entity KEY2=...] [--full-feature-names] [--repo DIR] "
                  "[--json]",
                  "Read feature vectors from the online store (the JSON is the feature server's "
                  "response).",
                  "stratalake get-online --feature-service churn_model --entity "
                  "customer_id=1001,1002",
                  {"--features", "--feature-service", "--entity"}, {"--full-feature-names"},
                  CmdGetOnline),
      RepoCommand("push",
                  "stratalake push SOURCE FILE(.parquet|.csv) [--to online|offline|"
                  "online_and_offline] [--repo DIR] [--json]",
                  "Write rows to a push source: online (every online view on it) and/or "
                  "appended to its Delta table.",
                  "stratalake push clicks_stream new_clicks.csv --to online_and_offline", {"--to"},
                  {}, CmdPush),
  };
}

}  // namespace stratalake::cli
