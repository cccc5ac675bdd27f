// What `stratalake plan` shows of the pipelines: the runs `run --all` would do
// (PlanRuns) and, before anything runs, the output schema each transformation
// would write checked against the feature views that read its table.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <arrow/api.h>

#include "stratalake/delta.h"
#include "stratalake/status.h"
#include "stratalake/transform.h"

namespace stratalake::transform {

arrow::Result<std::shared_ptr<arrow::Schema>> PredictOutputSchema(
    const repo::FeatureRepository& repo, const registry::Transformation& t,
    const std::map<std::string, std::shared_ptr<arrow::Schema>>& planned) {
  if (!t.schema.empty()) {
    // A run conforms its result to the declared schema (or fails).
    arrow::FieldVector fields;
    for (const auto& f : t.schema) {
      if (!f.type) return nullptr;
      fields.push_back(arrow::field(f.name, f.type, f.nullable));
    }
    return arrow::schema(std::move(fields));
  }
  if (t.sql.empty()) return nullptr;
  // DuckDB types a result from the query and its inputs' types, not their rows:
  // the query over empty tables of the inputs' columns has the schema of a run's.
  ARROW_ASSIGN_OR_RAISE(auto engine, SqlEngine::Open());
  for (const auto& path : ReferencedTables(t.sql)) {
    std::shared_ptr<arrow::Schema> schema;
    auto table = delta::DeltaTable::Open(repo.TableUri(path));
    if (table.ok()) {
      ARROW_ASSIGN_OR_RAISE(auto snapshot, (*table)->Latest());
      schema = snapshot->schema();
    } else if (HasErrorKind(table.status(), ErrorKind::kTableNotFound)) {
      auto it = planned.find(path);
      if (it == planned.end()) return nullptr;
      schema = it->second;
    } else {
      return table.status();
    }
    // The columns a run hands DuckDB (projection pushdown).
    arrow::FieldVector fields;
    for (const auto& name : ProjectedColumns(t.sql, *schema)) {
      fields.push_back(schema->GetFieldByName(name));
    }
    ARROW_ASSIGN_OR_RAISE(auto empty,
                          arrow::RecordBatchReader::Make({}, arrow::schema(std::move(fields))));
    const auto slash = path.find('/');
    if (!engine->LoadTable(path.substr(0, slash), path.substr(slash + 1), empty).ok()) {
      return nullptr;  // a column type DuckDB cannot take: the run will say so
    }
  }
  auto result = engine->Query(t.sql);
  if (!result.ok()) return nullptr;  // the run will say what is wrong
  return (*result)->schema();
}

arrow::Result<PipelinePlan> PlanPipelines(const repo::FeatureRepository& repo,
                                          const registry::Definitions& defs) {
  PipelinePlan plan;
  ARROW_ASSIGN_OR_RAISE(plan.runs, PlanRuns(repo, defs));
  std::map<std::string, std::shared_ptr<arrow::Schema>> planned;  // table -> predicted schema
  for (const auto& run : plan.runs) {
    const registry::Transformation* t = defs.FindTransformation(run.name);
    ARROW_ASSIGN_OR_RAISE(auto schema, PredictOutputSchema(repo, *t, planned));
    if (!schema) continue;
    planned[t->output] = schema;
    auto st = CheckOutputSchema(repo, defs, *t, *schema);
    if (!st.ok()) plan.problems.push_back(st.message());
  }
  return plan;
}

std::string PipelinePlan::ToString() const {
  if (runs.empty()) return "";
  std::string out;
  for (const auto& p : problems) out += "! " + p + "\n";
  int stale = 0;
  for (const auto& r : runs) stale += r.stale;
  out += "Pipeline runs (`stratalake run --all`): " +
         (stale ? std::to_string(stale) + " to run" : std::string("none to run")) + ", " +
         std::to_string(runs.size() - stale) + " up to date\n";
  for (const auto& r : runs) {
    if (!r.stale) continue;
    out += "  run " + r.name + " -> " + r.output + " (" + registry::TransformModeName(r.mode) +
           "): " + r.reason + "\n";
  }
  return out;
}

arrow::Status PipelinePlan::Refusal() const {
  if (problems.empty()) return arrow::Status::OK();
  std::string msg =
      std::to_string(problems.size()) + " incompatible change(s); nothing was applied";
  for (const auto& p : problems) msg += "\n  " + p;
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kIncompatibleChange, msg);
}

}  // namespace stratalake::transform
