// sql, run: SQL over the repository's Delta tables and the transformations of
// its definitions (docs/pipelines.md).
#include <iostream>

#include <arrow/api.h>
#include <arrow/csv/api.h>
#include <arrow/io/api.h>
#include <parquet/arrow/writer.h>

#include "commands.h"
#include "stratalake/repo.h"
#include "stratalake/transform.h"

namespace stratalake::cli {

namespace {

void Emit(const rapidjson::StringBuffer& buf) { std::cout << buf.GetString() << "\n"; }

arrow::Status WriteResult(const arrow::Table& table, const std::string& path) {
  auto ends = [&](const std::string& suffix) {
    return path.size() >= suffix.size() &&
           path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (!ends(".csv") && !ends(".parquet")) {
    return UsageError("--output '" + path + "' must end in .parquet or .csv");
  }
  ARROW_ASSIGN_OR_RAISE(auto out, arrow::io::FileOutputStream::Open(path));
  if (ends(".csv")) {
    ARROW_RETURN_NOT_OK(
        arrow::csv::WriteCSV(table, arrow::csv::WriteOptions::Defaults(), out.get()));
  } else {
    ARROW_RETURN_NOT_OK(
        parquet::arrow::WriteTable(table, arrow::default_memory_pool(), out, 1 << 20));
  }
  return out->Close();
}

arrow::Status PrintResult(const arrow::Table& table, int64_t limit) {
  std::vector<std::string> header = table.ColumnNames();
  std::vector<std::vector<std::string>> rows;
  const int64_t n = std::min(limit, table.num_rows());
  for (int64_t r = 0; r < n; ++r) {
    std::vector<std::string> row;
    for (int c = 0; c < table.num_columns(); ++c) {
      ARROW_ASSIGN_OR_RAISE(auto s, table.column(c)->GetScalar(r));
      row.push_back(s->is_valid ? s->ToString() : "NULL");
    }
    rows.push_back(std::move(row));
  }
  PrintRows(header, rows);
  std::cout << "(" << table.num_rows() << " row" << (table.num_rows() == 1 ? "" : "s");
  if (n < table.num_rows()) std::cout << ", " << n << " shown; --limit N shows more";
  std::cout << ")\n";
  return arrow::Status::OK();
}

arrow::Status CmdSql(const Args& a) {
  if (a.positional.size() != 1) {
    return UsageError("sql takes one query (quote it: stratalake sql \"SELECT ...\")");
  }
  ARROW_ASSIGN_OR_RAISE(int64_t limit, IntOpt(a, "--limit", 50));
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto result, transform::RunSql(*r, a.positional[0]));
  if (auto out = a.Get("--output")) {
    ARROW_RETURN_NOT_OK(WriteResult(*result.table, *out));
    std::cout << "wrote " << result.table->num_rows() << " rows to " << *out << "\n";
    return arrow::Status::OK();
  }
  return PrintResult(*result.table, limit);
}

void WriteInputs(JsonWriter& w, const std::map<std::string, int64_t>& inputs) {
  w.Key("inputs");
  w.StartObject();
  for (const auto& [path, v] : inputs) {
    w.Key(path.c_str());
    w.Int64(v);
  }
  w.EndObject();
}

void PrintRun(const transform::RunResult& x) {
  std::string inputs;
  for (const auto& [path, v] : x.inputs) {
    inputs += (inputs.empty() ? "" : ", ") + path + "@" + std::to_string(v);
  }
  if (x.noop) {
    std::cout << x.name << ": up to date (" << x.output << " version " << x.version << "; read "
              << inputs << ")" << std::endl;
  } else {
    std::cout << x.name << ": " << x.detail << " " << x.output << " version " << x.version << " ("
              << x.rows << " rows from " << inputs << ")" << std::endl;
  }
}

}  // namespace

void WritePlannedRun(JsonWriter& w, const transform::PlannedRun& p, bool with_stale) {
  w.StartObject();
  w.Key("name");
  JStr(w, p.name);
  w.Key("output");
  JStr(w, p.output);
  w.Key("mode");
  JStr(w, registry::TransformModeName(p.mode));
  w.Key("inputs");
  w.StartArray();
  for (const auto& i : p.inputs) JStr(w, i);
  w.EndArray();
  w.Key("upstream");
  w.StartArray();
  for (const auto& u : p.upstream) JStr(w, u);
  w.EndArray();
  if (with_stale) {
    w.Key("stale");
    w.Bool(p.stale);
  }
  w.Key("cause");
  JStr(w, p.cause);
  w.Key("reason");
  JStr(w, p.reason);
  w.EndObject();
}

namespace {

arrow::Status CmdRun(const Args& a) {
  const bool all = a.Has("--all");
  if (all == !a.positional.empty()) {
    return UsageError("run takes transformation names or --all (not both)");
  }
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto defs, r->LoadDefinitions());
  if (a.Has("--plan")) {
    ARROW_ASSIGN_OR_RAISE(auto plan, transform::PlanRuns(*r, defs, a.positional));
    if (a.Has("--json")) {
      rapidjson::StringBuffer buf;
      JsonWriter w(buf);
      w.StartArray();
      for (const auto& p : plan) WritePlannedRun(w, p, /*with_stale=*/true);
      w.EndArray();
      Emit(buf);
      return arrow::Status::OK();
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : plan) {
      std::string inputs;
      for (const auto& i : p.inputs) inputs += (inputs.empty() ? "" : ", ") + i;
      rows.push_back({p.stale ? "run" : "skip", p.name, p.output,
                      registry::TransformModeName(p.mode), inputs, p.reason});
    }
    PrintRows({"ACTION", "TRANSFORMATION", "OUTPUT", "MODE", "READS", "WHY"}, rows);
    return arrow::Status::OK();
  }
  transform::RunOptions options;
  options.full_refresh = a.Has("--full-refresh");
  if (!a.Has("--json")) {
    // One line per transformation as it finishes, so that what ran before a failure shows.
    ARROW_ASSIGN_OR_RAISE(auto plan, transform::PlanRuns(*r, defs, a.positional));
    for (const auto& p : plan) {
      ARROW_ASSIGN_OR_RAISE(auto x, transform::RunTransformation(*r, defs, p.name, options));
      PrintRun(x);
    }
    return arrow::Status::OK();
  }
  ARROW_ASSIGN_OR_RAISE(auto results, transform::RunPipeline(*r, defs, a.positional, options));
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartArray();
  for (const auto& x : results) {
    w.StartObject();
    w.Key("name");
    JStr(w, x.name);
    w.Key("output");
    JStr(w, x.output);
    w.Key("noop");
    w.Bool(x.noop);
    w.Key("version");
    w.Int64(x.version);
    w.Key("rows");
    w.Int64(x.rows);
    w.Key("detail");
    JStr(w, x.detail);
    WriteInputs(w, x.inputs);
    w.EndObject();
  }
  w.EndArray();
  Emit(buf);
  return arrow::Status::OK();
}

arrow::Status CmdLineage(const Args& a) {
  if (a.positional.size() != 1) {
    return UsageError("lineage takes one table (LAYER.TABLE, e.g. gold.customer_value)");
  }
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto entries, transform::Lineage(*r, a.positional[0], a.Has("--upstream")));
  auto versions = [](const std::map<std::string, int64_t>& m) {
    std::string s;
    for (const auto& [t, v] : m) s += (s.empty() ? "" : ", ") + t + "@" + std::to_string(v);
    return s;
  };
  if (a.Has("--json")) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartArray();
    for (const auto& e : entries) {
      w.StartObject();
      w.Key("table");
      JStr(w, e.table);
      w.Key("version");
      w.Int64(e.version);
      w.Key("timestamp_ms");
      w.Int64(e.timestamp_ms);
      w.Key("operation");
      JStr(w, e.operation);
      w.Key("transformation");
      JStr(w, e.transformation);
      w.Key("query");
      JStr(w, e.query);
      w.Key("read");
      JStr(w, e.read);
      WriteInputs(w, e.inputs);
      w.Key("since");
      w.StartObject();
      for (const auto& [t, v] : e.since) {
        w.Key(t.c_str());
        w.Int64(v);
      }
      w.EndObject();
      w.EndObject();
    }
    w.EndArray();
    Emit(buf);
    return arrow::Status::OK();
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : entries) {
    std::string read = e.read;
    if (!e.since.empty()) read += " since " + versions(e.since);
    rows.push_back({e.table + "@" + std::to_string(e.version), e.transformation, e.operation,
                    versions(e.inputs), read});
  }
  PrintRows({"TABLE@VERSION", "TRANSFORMATION", "OPERATION", "READ", "HOW"}, rows);
  return arrow::Status::OK();
}

}  // namespace

std::vector<Command> PipelineCommands() {
  return {
      RepoCommand(
          "sql", "stratalake sql QUERY [--repo DIR] [--output FILE(.parquet|.csv)] [--limit N]",
          "Run a SQL query (DuckDB's dialect) over the repository's Delta tables, named "
          "LAYER.TABLE (bronze.orders, silver.clicks, gold.customer_daily). Only the "
          "tables the query names are read, each at its latest version.",
          "stratalake sql \"SELECT customer_id, sum(amount) FROM bronze.orders GROUP BY 1\"",
          {"--output", "--limit"}, {}, CmdSql),
      RepoCommand("run",
                  "stratalake run NAME... | --all [--plan] [--full-refresh] [--repo DIR] [--json]",
                  "Materialize transformations (the `transformations:` of the definition files) "
                  "into their Delta tables, each as one commit, in dependency order. A "
                  "transformation whose query and input versions did not change since its last "
                  "run is skipped. --plan shows what would run and why, without running.",
                  "stratalake run --all --plan", {},
                  {"--all", "--plan", "--full-refresh", "--json"}, CmdRun),
      RepoCommand("lineage", "stratalake lineage LAYER.TABLE [--upstream] [--repo DIR] [--json]",
                  "Which tables at which versions produced each version of a table that "
                  "transformations wrote (newest first), read from the commits' run records. "
                  "--upstream follows the inputs back: the versions that produced the table's "
                  "latest version, recursively.",
                  "stratalake lineage gold.customer_value --upstream", {}, {"--upstream", "--json"},
                  CmdLineage),
  };
}

}  // namespace stratalake::cli
