// Training data: `stratalake get-historical` and `stratalake datasets`. The
// entity files and output files are the retrieval layer's (stratalake/retrieval.h).
#include <filesystem>
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
#include "stratalake/repo.h"
#include "stratalake/retrieval.h"
#include "stratalake/status.h"
#include "warnings.h"

namespace stratalake::cli {

namespace {

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

// The --output file's sink (a usage error unless it ends in .parquet or .csv).
arrow::Result<std::unique_ptr<retrieval::FileSink>> OpenOutput(const std::string& path) {
  if (!retrieval::IsTableFileName(path)) {
    return UsageError("--output '" + path + "' must end in .parquet or .csv");
  }
  return retrieval::OpenFileSink(path);
}

arrow::Result<int64_t> ParseTimeArg(const std::string& text) {
  // Parse at nanosecond precision (any fraction is accepted), keep milliseconds.
  static const auto parser = arrow::TimestampParser::MakeISO8601();
  int64_t ns = 0;
  if ((*parser)(text.data(), text.size(), arrow::TimeUnit::NANO, &ns)) {
    return ns >= 0 ? ns / 1000000 : -((-ns + 999999) / 1000000);
  }
  return UsageError("--as-of '" + text + "' is not an ISO 8601 time (e.g. 2026-08-01T00:00:00Z)");
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

// --engine spark: the same request as a job of the Spark engine, which writes
// the training set as the Delta table --output (a folder) and/or saves it.
arrow::Status SparkGetHistorical(const Args& a, const repo::FeatureRepository& r,
                                 const retrieval::HistoricalRequest& req,
                                 const std::string& entities,
                                 const std::optional<std::string>& output) {
  if (output && retrieval::IsTableFileName(*output)) {
    return UsageError(
        "with --engine spark, --output names the folder of a Delta table (the "
        "training set is written as one), not '" +
        *output + "'");
  }
  if (req.memory_budget_bytes > 0) {
    return UsageError(
        "--memory-budget is the local engine's; Spark's memory is its own "
        "configuration (spark.executor.memory)");
  }
  std::error_code ec;
  auto absolute = [&](const std::string& p) { return std::filesystem::absolute(p, ec).string(); };
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("command");
  JStr(w, "get-historical");
  w.Key("repo");
  JStr(w, r.config().root);
  w.Key("entities");
  JStr(w, absolute(entities));
  w.Key("output");
  JStr(w, output ? absolute(*output) : "");
  w.Key("save_as");
  JStr(w, a.Get("--save-as").value_or(""));
  w.Key("features");
  w.StartArray();
  for (const auto& f : req.features) JStr(w, f);
  w.EndArray();
  w.Key("feature_service");
  JStr(w, req.feature_service);
  w.Key("full_feature_names");
  w.Bool(req.full_feature_names);
  w.Key("as_of_ms");
  req.as_of_ms ? (void)w.Int64(*req.as_of_ms) : (void)w.Null();
  w.Key("timestamp_column");
  JStr(w, req.timestamp_column);
  w.Key("master");
  JStr(w, a.Get("--spark-master").value_or(""));
  w.EndObject();
  return RunSparkJob(a, buf.GetString());
}

arrow::Status CmdGetHistorical(const Args& a) {
  if (!a.positional.empty()) return UsageError("get-historical takes options only");
  auto entities = a.Get("--entities");
  auto output = a.Get("--output");
  if (!entities) return UsageError("--entities FILE is required");
  if (!output && !a.Get("--save-as"))
    return UsageError("--output FILE (or --save-as NAME) is required");
  if (a.Get("--features").has_value() == a.Get("--feature-service").has_value()) {
    return UsageError("pass exactly one of --features and --feature-service");
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
  ARROW_ASSIGN_OR_RAISE(req.memory_budget_bytes, IntOpt(a, "--memory-budget", 0));
  req.progress = !a.Has("--json");
  const std::string engine = a.Get("--engine").value_or("local");
  if (engine == "spark") return SparkGetHistorical(a, *r, req, *entities, output);
  if (engine != "local") {
    return UsageError("--engine must be local or spark, not '" + engine + "'");
  }
  // Streamed: the retrieval decides from the rows it reads whether to hold
  // them, and the output goes to the output file, the saved dataset, or both.
  if (!retrieval::IsTableFileName(*entities)) {
    return UsageError("'" + *entities + "' must end in .parquet or .csv");
  }
  ARROW_ASSIGN_OR_RAISE(req.open_entities,
                        retrieval::EntityFileReader(*entities, req.memory_budget_bytes));
  std::unique_ptr<retrieval::DatasetWriter> dataset;
  if (auto name = a.Get("--save-as")) {
    ARROW_ASSIGN_OR_RAISE(dataset, retrieval::DatasetWriter::Open(*r, *name, req));
  }
  std::unique_ptr<retrieval::FileSink> file;
  if (output) {
    ARROW_ASSIGN_OR_RAISE(file, OpenOutput(*output));
  }
  TeeSink sink({file.get(), dataset.get()});
  ARROW_ASSIGN_OR_RAISE(auto result, retrieval::GetHistoricalFeatures(*r, req, &sink));
  if (file) ARROW_RETURN_NOT_OK(file->Close());
  std::optional<retrieval::DatasetManifest> saved;
  if (dataset) {
    ARROW_ASSIGN_OR_RAISE(saved, dataset->Finish(result));
  }
  PrintWarnings(result.warnings);
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
    w.Key("warnings");
    WriteWarningsJson(w, result.warnings);
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
  if (a.positional.empty())
    return UsageError("datasets needs a subcommand: list, describe or recreate");
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
  if (a.positional.size() != 2) return UsageError("datasets " + sub + " needs a NAME");
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
    std::unique_ptr<retrieval::FileSink> file;
    if (auto out = a.Get("--output")) {
      ARROW_ASSIGN_OR_RAISE(file, OpenOutput(*out));
    }
    ARROW_ASSIGN_OR_RAISE(int64_t budget, IntOpt(a, "--memory-budget", 0));
    ARROW_ASSIGN_OR_RAISE(auto rec, retrieval::RecreateDataset(*r, name, file.get(), budget));
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
  return UsageError("unknown datasets subcommand '" + sub + "' (use list, describe or recreate)");
}

}  // namespace

std::vector<Command> RetrievalCommands() {
  return {
      RepoCommand(
          "get-historical",
          "stratalake get-historical --entities FILE(.parquet|.csv) (--features view:f,view2 | "
          "--feature-service NAME) [--full-feature-names] [--as-of TS] [--timestamp-column C] "
          "--output FILE(.parquet|.csv) [--save-as NAME] [--memory-budget BYTES] [--repo DIR] "
          "[--engine local|spark [--spark-master URL] [--spark-python PY]] [--json]",
          "Build a point-in-time-correct training set: for each entity row, the latest feature "
          "values at or before its timestamp (within each view's TTL), optionally as the "
          "offline store knew them at --as-of, and optionally saved as a reproducible dataset.",
          "stratalake get-historical --entities data/churn_labels.parquet --timestamp-column "
          "label_ts --feature-service churn_model --output train.parquet --save-as churn_2026_08",
          {"--entities", "--features", "--feature-service", "--as-of", "--timestamp-column",
           "--output", "--save-as", "--memory-budget", "--engine", "--spark-master",
           "--spark-python"},
          {"--full-feature-names"}, CmdGetHistorical),
      RepoCommand("datasets",
                  "stratalake datasets list | describe NAME | recreate NAME [--output FILE] "
                  "[--memory-budget BYTES] [--repo DIR] [--json]",
                  "Saved training datasets: list them, show a manifest (registry version, source "
                  "Delta versions, entity hash), or rebuild one from its pinned versions and "
                  "compare it with the saved rows.",
                  "stratalake datasets recreate churn_2026_08", {"--output", "--memory-budget"}, {},
                  CmdDatasets),
  };
}

}  // namespace stratalake::cli
