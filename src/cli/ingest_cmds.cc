// `stratalake ingest`: files into a source's Delta table (or a table path
// below the offline store), converted to the declared schema.
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "commands.h"
#include "stratalake/ingest.h"
#include "stratalake/registry.h"
#include "stratalake/repo.h"
#include "stratalake/status.h"

namespace stratalake::cli {

namespace {

arrow::Status CmdIngest(const Args& a) {
  if (a.positional.size() < 2)
    return UsageError("ingest needs a SOURCE (or table path) and at least one FILE");
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
    return UsageError("--mode must be append, overwrite or merge");
  }
  if (auto on = a.Get("--on")) {
    std::stringstream ss(*on);
    std::string k;
    while (std::getline(ss, k, ',')) {
      if (!k.empty()) o.merge_keys.push_back(k);
    }
  }
  if (o.mode == IngestMode::kMerge && o.merge_keys.empty())
    return UsageError("--mode merge needs --on KEYS");
  if (o.mode != IngestMode::kMerge && !o.merge_keys.empty())
    return UsageError("--on is only for --mode merge");
  o.quarantine = a.Has("--quarantine");
  o.format = a.Get("--format").value_or("");

  // The target: an applied source, else a source in the definition files, else a table path.
  ARROW_ASSIGN_OR_RAISE(IngestTarget target, r->ResolveIngestTarget(target_name));
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

}  // namespace

std::vector<Command> IngestCommands() {
  return {RepoCommand(
      "ingest",
      "stratalake ingest SOURCE_OR_TABLE FILE... [--mode append|overwrite|merge] [--on KEYS] "
      "[--quarantine] [--format csv|json|parquet] [--repo DIR] [--json]",
      "Load CSV, JSON-lines or Parquet files into a source's Delta table (or a table path "
      "below the offline store, e.g. bronze/raw), converting to the declared schema and "
      "enforcing its checks.",
      "stratalake ingest clicks data/clicks.jsonl --quarantine", {"--mode", "--on", "--format"},
      {"--quarantine"}, CmdIngest)};
}

}  // namespace stratalake::cli
