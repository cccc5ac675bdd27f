// MERGE, steps 2 and 4: joining source rows to target rows by key (a hash
// grouping of the source keys, looked up with each target file's keys) and
// deciding, per matched target row, which WHEN MATCHED clause takes it.
#include <arrow/api.h>
#include <arrow/compute/api.h>

#include "storage/merge/merge.h"
#include "storage/scan.h"
#include "storage/table_internal.h"
#include "stratalake/expression.h"

namespace stratalake::delta::merge {

namespace cp = arrow::compute;

arrow::Result<SourceKeyIndex> IndexSourceKeys(const arrow::Table& source_full,
                                              const std::vector<std::string>& on) {
  SourceKeyIndex index;
  // Group source keys; a target row matches the source rows of its key's group.
  std::vector<arrow::TypeHolder> key_types;
  std::vector<arrow::Datum> source_keys;
  for (const auto& k : on) {
    auto col = source_full.GetColumnByName(k);
    key_types.emplace_back(col->type());
    source_keys.emplace_back(col->chunk(0));
  }
  ARROW_ASSIGN_OR_RAISE(index.grouper, cp::Grouper::Make(key_types));
  auto& grouper = index.grouper;
  int64_t n_source = source_full.num_rows();
  auto& source_group = index.group_of;
  source_group.resize(n_source);
  if (n_source > 0) {
    ARROW_ASSIGN_OR_RAISE(auto ids,
                          grouper->Consume(cp::ExecSpan(cp::ExecBatch(source_keys, n_source))));
    auto arr = ids.array_as<arrow::UInt32Array>();
    for (int64_t i = 0; i < n_source; ++i) source_group[i] = arr->Value(i);
  }
  // A key with a NULL never matches.
  auto& source_null_key = index.null_key;
  source_null_key.assign(n_source, false);
  for (const auto& k : on) {
    auto col = source_full.GetColumnByName(k)->chunk(0);
    for (int64_t i = 0; i < n_source; ++i)
      source_null_key[i] = source_null_key[i] || col->IsNull(i);
  }
  uint32_t n_groups = grouper->num_groups();
  auto& group_first = index.group_first;
  auto& group_count = index.group_count;
  group_first.assign(n_groups, -1);
  group_count.assign(n_groups, 0);
  for (int64_t i = 0; i < n_source; ++i) {
    if (source_null_key[i]) continue;
    auto g = source_group[i];
    if (group_first[g] < 0) group_first[g] = i;
    ++group_count[g];
  }
  index.group_matched.assign(n_groups, false);
  return index;
}

std::optional<cp::Expression> SourceKeyRange(const arrow::Table& source_full,
                                             const std::vector<std::string>& on,
                                             const arrow::Schema& target_schema) {
  // Skip target files whose key range cannot overlap the source's.
  std::optional<cp::Expression> key_filter;
  std::vector<cp::Expression> ranges;
  for (const auto& k : on) {
    auto col = source_full.GetColumnByName(k);
    if (col->null_count() == col->length() || col->length() == 0) continue;
    auto mm = cp::MinMax(col);
    if (!mm.ok()) continue;
    const auto& st = static_cast<const arrow::StructScalar&>(*mm->scalar());
    ranges.push_back(cp::and_(cp::greater_equal(cp::field_ref(k), cp::literal(st.value[0])),
                              cp::less_equal(cp::field_ref(k), cp::literal(st.value[1]))));
  }
  if (!ranges.empty()) {
    auto bound = cp::and_(ranges).Bind(target_schema);
    if (bound.ok()) key_filter = *bound;
  }
  return key_filter;
}

arrow::Result<std::shared_ptr<arrow::Table>> ReadTargetFile(arrow::fs::FileSystem& fs,
                                                            const MergePlan& plan,
                                                            const AddFile& file) {
  const auto& snapshot = plan.snapshot;
  auto fields = AllFields(*snapshot->schema());
  ARROW_ASSIGN_OR_RAISE(auto rows, ReadDataFile(fs, *snapshot, file, fields));
  ARROW_ASSIGN_OR_RAISE(rows, ConformData(rows, *plan.schema));  // added columns → nulls
  ARROW_ASSIGN_OR_RAISE(rows, rows->CombineChunks());
  return rows;
}

arrow::Result<TargetMatch> MatchTargetRows(const arrow::Table& rows,
                                           const std::vector<std::string>& on,
                                           SourceKeyIndex* index) {
  TargetMatch match;
  int64_t n = rows.num_rows();
  const auto& group_first = index->group_first;
  auto& group_matched = index->group_matched;
  std::vector<arrow::Datum> keys;
  for (const auto& k : on) keys.emplace_back(rows.GetColumnByName(k)->chunk(0));
  ARROW_ASSIGN_OR_RAISE(auto ids, index->grouper->Lookup(cp::ExecSpan(cp::ExecBatch(keys, n))));
  match.group_ids = ids.array_as<arrow::UInt32Array>();
  const auto& id_arr = match.group_ids;
  arrow::Int64Builder src_idx;
  ARROW_RETURN_NOT_OK(src_idx.Reserve(n));
  bool any_match = false;
  for (int64_t i = 0; i < n; ++i) {
    if (id_arr->IsNull(i) || group_first[id_arr->Value(i)] < 0) {
      src_idx.UnsafeAppendNull();
      continue;
    }
    auto g = id_arr->Value(i);
    group_matched[g] = true;
    any_match = true;
    src_idx.UnsafeAppend(group_first[g]);
  }
  match.any = any_match;
  ARROW_ASSIGN_OR_RAISE(match.source_row, src_idx.Finish());
  return match;
}

arrow::Result<ClauseOutcome> ApplyMatchedClauses(const MergePlan& plan,
                                                 const MatchedClauses& matched_clauses,
                                                 const std::shared_ptr<arrow::Table>& rows,
                                                 const TargetMatch& match) {
  const auto& schema = plan.schema;
  const auto& source = plan.source;
  const auto& clauses = matched_clauses.clauses;
  int64_t n = rows->num_rows();
  const auto& src_idx_arr = match.source_row;
  ARROW_ASSIGN_OR_RAISE(auto src_rows, cp::Take(plan.source_full, src_idx_arr));
  auto src_table = src_rows.table();
  arrow::ChunkedArrayVector ccols;
  for (const auto& c : rows->columns()) ccols.push_back(c);
  for (const auto& c : rows->columns()) ccols.push_back(c);
  for (const auto& c : src_table->columns()) ccols.push_back(c);
  auto combined = arrow::Table::Make(matched_clauses.combined_schema, ccols, n);
  // matched = source index is valid; decide the first clause per row.
  auto matched_arr = std::make_shared<arrow::ChunkedArray>(src_idx_arr);
  ARROW_ASSIGN_OR_RAISE(auto matched_d, cp::CallFunction("is_valid", {arrow::Datum(matched_arr)}));
  auto undecided = matched_d.chunked_array();
  ClauseOutcome out;
  auto& columns = out.columns;
  columns = rows->columns();
  auto& deleted = out.deleted;
  auto& touched = out.touched;
  for (const auto& clause : clauses) {
    std::shared_ptr<arrow::ChunkedArray> applies = undecided;
    if (clause.condition) {
      ARROW_ASSIGN_OR_RAISE(auto cond, EvaluatePredicate(*clause.condition, *combined));
      ARROW_ASSIGN_OR_RAISE(auto both, cp::And(undecided, cond));
      applies = both.chunked_array();
    }
    ARROW_ASSIGN_OR_RAISE(auto not_applies, cp::Invert(applies));
    ARROW_ASSIGN_OR_RAISE(auto rest, cp::And(undecided, not_applies));
    undecided = rest.chunked_array();
    if (touched) {
      ARROW_ASSIGN_OR_RAISE(auto t, cp::Or(touched, applies));
      touched = t.chunked_array();
    } else {
      touched = applies;
    }
    if (clause.action == MatchedClause::Action::kDelete) {
      if (deleted) {
        ARROW_ASSIGN_OR_RAISE(auto d, cp::Or(deleted, applies));
        deleted = d.chunked_array();
      } else {
        deleted = applies;
      }
      continue;
    }
    if (clause.action == MatchedClause::Action::kUpdateAll) {
      for (int c = 0; c < schema->num_fields(); ++c) {
        if (source->schema()->GetFieldIndex(schema->field(c)->name()) < 0) continue;
        ARROW_ASSIGN_OR_RAISE(auto chosen, cp::IfElse(applies, src_table->column(c), columns[c]));
        columns[c] = chosen.chunked_array();
      }
    } else {
      for (const auto& [idx, expr] : clause.sets) {
        ARROW_ASSIGN_OR_RAISE(auto value, EvaluateExpression(expr, *combined));
        ARROW_ASSIGN_OR_RAISE(auto chosen, cp::IfElse(applies, value, columns[idx]));
        columns[idx] = chosen.chunked_array();
      }
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto touched_count, cp::Sum(touched));
  out.n_touched = touched_count.scalar()->is_valid
                      ? static_cast<const arrow::UInt64Scalar&>(*touched_count.scalar()).value
                      : 0;
  return out;
}

arrow::Status CheckOneSourceRowPerTargetRow(const arrow::Table& rows, const TargetMatch& match,
                                            const SourceKeyIndex& index,
                                            const arrow::ChunkedArray& touched,
                                            const std::vector<std::string>& on) {
  const auto& id_arr = match.group_ids;
  const auto& group_first = index.group_first;
  const auto& group_count = index.group_count;
  int64_t n = rows.num_rows();
  // Delta's rule: a target row modified by several source rows is ambiguous.
  for (int64_t i = 0; i < n; ++i) {
    if (!id_arr->IsNull(i) && group_first[id_arr->Value(i)] >= 0 &&
        group_count[id_arr->Value(i)] > 1) {
      ARROW_ASSIGN_OR_RAISE(auto t, touched.GetScalar(i));
      if (static_cast<const arrow::BooleanScalar&>(*t).value) {
        return arrow::Status::Invalid(
            "merge failed: ", group_count[id_arr->Value(i)],
            " source rows match the same target row (key ",
            rows.GetColumnByName(on[0])->GetScalar(i).ValueOrDie()->ToString(),
            "); deduplicate the source on the merge keys");
      }
    }
  }
  return arrow::Status::OK();
}

}  // namespace stratalake::delta::merge
