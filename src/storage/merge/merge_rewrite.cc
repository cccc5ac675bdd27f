// MERGE, steps 4 and 5: rewriting the target files a clause touched, writing
// the inserted source rows, and the commit with Delta's MERGE parameters and
// metrics.
#include <arrow/api.h>
#include <arrow/compute/api.h>

#include "common/json.h"
#include "storage/deletion_vector_writer.h"
#include "storage/merge/merge.h"
#include "storage/scan.h"
#include "storage/table_internal.h"
#include "storage/table_read.h"
#include "storage/writer.h"
#include "stratalake/expression.h"

namespace stratalake::delta::merge {

namespace cp = arrow::compute;

arrow::Status RewriteFile(const MergePlan& plan, const AddFile& file,
                          const std::shared_ptr<arrow::Table>& rows, const ClauseOutcome& outcome,
                          const LogStore& store, int64_t now, Transaction* txn,
                          DeletionVectorWriter* dvs, MergeCounts* counts) {
  const auto& md = plan.md;
  const auto& deleted = outcome.deleted;
  int64_t n = rows->num_rows();
  auto new_rows = arrow::Table::Make(rows->schema(), outcome.columns, n);
  int64_t n_del = 0;
  if (deleted) {
    ARROW_ASSIGN_OR_RAISE(auto dc, cp::Sum(deleted));
    n_del = dc.scalar()->is_valid ? static_cast<const arrow::UInt64Scalar&>(*dc.scalar()).value : 0;
  }
  counts->deleted += n_del;
  counts->updated += outcome.n_touched - n_del;
  if (dvs != nullptr && outcome.n_touched < n) {
    // Deletion vectors: every row a clause took is marked deleted in the file;
    // only the new versions of updated rows are written.
    std::shared_ptr<arrow::ChunkedArray> updated = outcome.touched;
    if (n_del > 0) {
      ARROW_ASSIGN_OR_RAISE(auto not_deleted, cp::Invert(deleted));
      ARROW_ASSIGN_OR_RAISE(auto upd, cp::And(outcome.touched, not_deleted));
      updated = upd.chunked_array();
    }
    ARROW_ASSIGN_OR_RAISE(auto upd_rows, cp::Filter(new_rows, updated));
    auto updated_rows = upd_rows.table();
    ARROW_RETURN_NOT_OK(EnforceConstraints(md, *plan.schema, *updated_rows));
    ARROW_RETURN_NOT_OK(dvs->MarkDeleted(file, *outcome.touched));
    if (updated_rows->num_rows() > 0) {
      ARROW_ASSIGN_OR_RAISE(
          auto adds, WriteDataFiles(store, updated_rows, FileOptions(md, now, "snappy", 4 << 20)));
      for (auto& a : adds) txn->Add(std::move(a));
    }
    return arrow::Status::OK();
  }
  if (n_del > 0) {
    ARROW_ASSIGN_OR_RAISE(new_rows, FilterOut(new_rows, deleted));
  }
  counts->copied += n - outcome.n_touched;
  ARROW_RETURN_NOT_OK(EnforceConstraints(md, *plan.schema, *new_rows));
  txn->Remove(file, true);
  ARROW_ASSIGN_OR_RAISE(auto adds,
                        WriteDataFiles(store, new_rows, FileOptions(md, now, "snappy", 4 << 20)));
  for (auto& a : adds) txn->Add(std::move(a));
  return arrow::Status::OK();
}

arrow::Status InsertUnmatched(const MergePlan& plan, const SourceKeyIndex& index,
                              const std::vector<NotMatchedClause>& when_not_matched,
                              const LogStore& store, int64_t now, Transaction* txn,
                              MergeCounts* counts) {
  const auto& schema = plan.schema;
  const auto& source_full = plan.source_full;
  const auto& md = plan.md;
  int64_t n_source = source_full->num_rows();
  // Inserts: source rows whose key matched no target row.
  if (when_not_matched.empty() || n_source == 0) return arrow::Status::OK();
  arrow::BooleanBuilder unmatched_b;
  ARROW_RETURN_NOT_OK(unmatched_b.Reserve(n_source));
  for (int64_t i = 0; i < n_source; ++i) {
    unmatched_b.UnsafeAppend(index.null_key[i] || !index.group_matched[index.group_of[i]]);
  }
  ARROW_ASSIGN_OR_RAISE(auto unmatched_arr, unmatched_b.Finish());
  auto undecided = std::make_shared<arrow::ChunkedArray>(unmatched_arr);
  // Conditions see source columns as bare names and as source.c.
  arrow::FieldVector sf;
  arrow::ChunkedArrayVector sc;
  for (int c = 0; c < schema->num_fields(); ++c) {
    sf.push_back(schema->field(c));
    sc.push_back(source_full->column(c));
  }
  for (int c = 0; c < schema->num_fields(); ++c) {
    sf.push_back(schema->field(c)->WithName("source." + schema->field(c)->name()));
    sc.push_back(source_full->column(c));
  }
  auto src_view = arrow::Table::Make(arrow::schema(sf), sc, n_source);
  std::shared_ptr<arrow::ChunkedArray> insert;
  for (const auto& c : when_not_matched) {
    std::shared_ptr<arrow::ChunkedArray> applies = undecided;
    if (!c.condition.empty()) {
      ARROW_ASSIGN_OR_RAISE(auto bound, BindPredicate(c.condition, *src_view->schema()));
      ARROW_ASSIGN_OR_RAISE(auto cond, EvaluatePredicate(bound, *src_view));
      ARROW_ASSIGN_OR_RAISE(auto both, cp::And(undecided, cond));
      applies = both.chunked_array();
    }
    ARROW_ASSIGN_OR_RAISE(auto na, cp::Invert(applies));
    ARROW_ASSIGN_OR_RAISE(auto rest, cp::And(undecided, na));
    undecided = rest.chunked_array();
    if (insert) {
      ARROW_ASSIGN_OR_RAISE(auto o, cp::Or(insert, applies));
      insert = o.chunked_array();
    } else {
      insert = applies;
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto ins, cp::Filter(source_full, insert));
  auto ins_rows = ins.table();
  counts->inserted = ins_rows->num_rows();
  if (counts->inserted > 0) {
    ARROW_RETURN_NOT_OK(EnforceConstraints(md, *schema, *ins_rows));
    ARROW_ASSIGN_OR_RAISE(auto adds,
                          WriteDataFiles(store, ins_rows, FileOptions(md, now, "snappy", 4 << 20)));
    for (auto& a : adds) txn->Add(std::move(a));
  }
  return arrow::Status::OK();
}

arrow::Result<CommitResult> CommitMerge(const MergePlan& plan, const MergeOptions& options,
                                        const MergeCounts& counts, Transaction* txn) {
  const int64_t dv_files = counts.dvs_added + counts.dvs_updated;
  std::map<std::string, int64_t> metrics = {
      {"numSourceRows", plan.source_full->num_rows()},
      {"numTargetRowsInserted", counts.inserted},
      {"numTargetRowsUpdated", counts.updated},
      {"numTargetRowsDeleted", counts.deleted},
      {"numTargetRowsCopied", counts.copied},
      {"numTargetFilesAdded", static_cast<int64_t>(txn->adds().size()) - dv_files},
      {"numTargetFilesRemoved", static_cast<int64_t>(txn->removes().size()) - dv_files}};
  if (dv_files > 0) {
    metrics["numTargetDeletionVectorsAdded"] = counts.dvs_added;
    metrics["numTargetDeletionVectorsUpdated"] = counts.dvs_updated;
  }
  // Returned to the caller, not written to the log (the commit keeps Delta's names).
  auto result_metrics = metrics;
  result_metrics["numTargetFilesScanned"] = counts.files_scanned;
  result_metrics["numTargetFilesSkippedDuringScan"] = counts.files_skipped;
  if (txn->adds().empty() && txn->removes().empty() && !plan.new_metadata && !options.txn) {
    return CommitResult{plan.snapshot->version(), true, result_metrics};
  }
  std::string on;
  for (const auto& k : options.on)
    on += (on.empty() ? "" : " AND ") + ("target." + k + " = source." + k);
  std::vector<std::string> matched, not_matched;
  for (const auto& c : options.when_matched) {
    std::string a = c.action == MatchedClause::Action::kDelete ? "delete" : "update";
    matched.push_back("{\"actionType\":\"" + a + "\"" +
                      (c.condition.empty() ? "" : ",\"predicate\":" + JsonQuote(c.condition)) +
                      "}");
  }
  for (const auto& c : options.when_not_matched) {
    not_matched.push_back("{\"actionType\":\"insert\"" +
                          (c.condition.empty() ? "" : ",\"predicate\":" + JsonQuote(c.condition)) +
                          "}");
  }
  auto join = [](const std::vector<std::string>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + v[i];
    return s + "]";
  };
  if (options.txn) {
    AppTransaction t = *options.txn;
    t.last_updated = txn->now_ms();
    txn->SetAppTransaction(t);
  }
  ARROW_ASSIGN_OR_RAISE(auto version, txn->Commit("MERGE",
                                                  {{"predicate", JsonList({on})},
                                                   {"matchedPredicates", join(matched)},
                                                   {"notMatchedPredicates", join(not_matched)}},
                                                  metrics, options.user_metadata));
  return CommitResult{version, false, result_metrics};
}

}  // namespace stratalake::delta::merge
