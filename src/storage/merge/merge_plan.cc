// MERGE, steps 1 and 3: what the merge works with (checks, the source in the
// target's types, schema evolution) and its WHEN MATCHED clauses bound.
#include <arrow/api.h>
#include <arrow/compute/api.h>

#include "storage/merge/merge.h"
#include "storage/schema.h"
#include "storage/table_internal.h"
#include "storage/table_read.h"
#include "stratalake/expression.h"

namespace stratalake::delta::merge {

namespace cp = arrow::compute;

arrow::Result<MergePlan> PlanMerge(std::shared_ptr<const Snapshot> snapshot_in,
                                   const std::shared_ptr<arrow::Table>& source_in,
                                   const MergeOptions& options) {
  MergePlan plan;
  plan.snapshot = std::move(snapshot_in);
  const auto& snapshot = plan.snapshot;
  ARROW_RETURN_NOT_OK(CheckWriteSupported(*snapshot));
  plan.has_update_or_delete = !options.when_matched.empty();
  if (plan.has_update_or_delete)
    ARROW_RETURN_NOT_OK(CheckAppendOnly(*snapshot, "MERGE with WHEN MATCHED"));
  if (options.on.empty()) return arrow::Status::Invalid("merge needs key columns (--on)");
  auto& schema = plan.schema;
  schema = snapshot->schema();
  auto& source = plan.source;
  ARROW_ASSIGN_OR_RAISE(source, ToStorageTypes(source_in));
  ARROW_ASSIGN_OR_RAISE(source, source->CombineChunks());
  Metadata& md = plan.md;
  md = snapshot->metadata();
  // Source columns must exist in the target (or be added with merge_schema).
  {
    arrow::FieldVector fields = schema->fields();
    for (const auto& f : source->schema()->fields()) {
      if (schema->GetFieldIndex(f->name()) >= 0) continue;
      if (!options.merge_schema) {
        return MakeError(arrow::StatusCode::Invalid, ErrorKind::kSchemaMismatch,
                         "merge source column '" + f->name() +
                             "' is not in the target schema; pass " +
                             Mention(Term::kMergeMergeSchema) + " to add it",
                         {Term::kMergeMergeSchema});
      }
      fields.push_back(arrow::field(f->name(), f->type(), true));
    }
    if (static_cast<int>(fields.size()) != schema->num_fields()) {
      schema = arrow::schema(fields);
      ARROW_ASSIGN_OR_RAISE(md.schema_string, SchemaToDeltaJson(*schema));
      plan.new_metadata = true;
    }
  }
  for (const auto& k : options.on) {
    if (schema->GetFieldIndex(k) < 0 || source->schema()->GetFieldIndex(k) < 0) {
      return arrow::Status::Invalid("merge key '", k,
                                    "' must be a column of both the source and the target");
    }
  }
  // Source rows in the target's types (full width, for inserts and update-all).
  auto& source_full = plan.source_full;
  ARROW_ASSIGN_OR_RAISE(source_full, ConformData(source, *schema));
  ARROW_ASSIGN_OR_RAISE(source_full, source_full->CombineChunks());
  return plan;
}

arrow::Result<MatchedClauses> BindMatchedClauses(const arrow::Schema& schema,
                                                 const std::vector<MatchedClause>& when_matched) {
  MatchedClauses out;
  // Combined view for clause conditions: target.c, c (= target), source.c.
  arrow::FieldVector combined_fields;
  for (const auto& f : schema.fields())
    combined_fields.push_back(f->WithName("target." + f->name()));
  for (const auto& f : schema.fields()) combined_fields.push_back(f->WithName(f->name()));
  for (const auto& f : schema.fields())
    combined_fields.push_back(f->WithName("source." + f->name()));
  out.combined_schema = arrow::schema(combined_fields);
  const auto& combined_schema = out.combined_schema;
  auto& clauses = out.clauses;
  for (const auto& c : when_matched) {
    BoundClause b;
    b.action = c.action;
    if (!c.condition.empty()) {
      ARROW_ASSIGN_OR_RAISE(b.condition, BindPredicate(c.condition, *combined_schema));
    }
    if (c.action == MatchedClause::Action::kUpdate) {
      ARROW_ASSIGN_OR_RAISE(auto sets, ParseAssignments(c.assignments, *combined_schema));
      for (auto& s : sets) {
        int idx = schema.GetFieldIndex(s.column);
        if (idx < 0) {
          return arrow::Status::Invalid("merge update sets '", s.column,
                                        "', which is not a target column");
        }
        ARROW_ASSIGN_OR_RAISE(auto bound, s.value.Bind(*combined_schema));
        b.sets.emplace_back(idx, std::move(bound));
      }
    }
    clauses.push_back(std::move(b));
  }
  return out;
}

}  // namespace stratalake::delta::merge
