// DeltaTable::Delete and DeltaTable::Update, and the rewrite plan they share
// with replaceWhere: which files a predicate touches, removed whole or
// rewritten with the rows that stay.
#include <algorithm>
#include <set>

#include <arrow/api.h>
#include <arrow/compute/api.h>

#include "common/json.h"
#include "storage/deletion_vector_writer.h"
#include "storage/scan.h"
#include "storage/snapshot.h"
#include "storage/stats.h"
#include "storage/table_internal.h"
#include "storage/table_read.h"
#include "storage/transaction.h"
#include "storage/writer.h"
#include "stratalake/delta.h"
#include "stratalake/expression.h"

namespace stratalake::delta {

namespace cp = arrow::compute;

arrow::Result<RewritePlan> PlanRewrite(arrow::fs::FileSystem& fs, const Snapshot& snapshot,
                                       const std::optional<cp::Expression>& pred,
                                       bool predicate_columns_only) {
  RewritePlan plan;
  ARROW_ASSIGN_OR_RAISE(auto scan, PlanFiles(snapshot, pred));
  plan.candidates = scan.files;
  std::set<std::string> columns;
  if (pred) {
    for (const auto& ref : cp::FieldsInExpression(*pred)) {
      if (ref.name()) columns.insert(*ref.name());
    }
  }
  const auto& pcols = snapshot.metadata().partition_columns;
  bool partition_only = !columns.empty();
  for (const auto& c : columns) {
    if (std::find(pcols.begin(), pcols.end(), c) == pcols.end()) partition_only = false;
  }
  auto fields = AllFields(*snapshot.schema());
  std::optional<cp::Expression> row_pred = pred;
  if (predicate_columns_only && pred) {
    ARROW_ASSIGN_OR_RAISE(auto cols, PlanColumns(snapshot, {}, pred));
    if (!cols.needed.empty()) {
      fields = cols.needed;
      row_pred = cols.row_filter;
    }
  }
  for (const auto& file : plan.candidates) {
    if (!pred) {
      plan.remove_whole.push_back(file);
      plan.matched_rows += StatsNumRecords(file.stats).value_or(0);
      continue;
    }
    if (partition_only) {
      ARROW_ASSIGN_OR_RAISE(auto g, FileGuarantee(snapshot, file, columns));
      ARROW_ASSIGN_OR_RAISE(auto s, cp::SimplifyWithGuarantee(*pred, g));
      if (IsTrue(s)) {
        auto n = StatsNumRecords(file.stats);
        if (n && !file.deletion_vector) {
          plan.remove_whole.push_back(file);
          plan.matched_rows += *n;
          continue;
        }
      }
    }
    ARROW_ASSIGN_OR_RAISE(auto rows, ReadDataFile(fs, snapshot, file, fields));
    ARROW_ASSIGN_OR_RAISE(auto mask, EvaluatePredicate(*row_pred, *rows));
    ARROW_ASSIGN_OR_RAISE(auto count, cp::Sum(mask));
    int64_t matched = count.scalar()->is_valid
                          ? static_cast<const arrow::UInt64Scalar&>(*count.scalar()).value
                          : 0;
    if (matched == 0) continue;
    plan.matched_rows += matched;
    if (matched == rows->num_rows()) {
      plan.remove_whole.push_back(file);
      continue;
    }
    plan.partial.emplace_back(file, rows);
    plan.masks.push_back(mask.get() ? mask : nullptr);
  }
  return plan;
}

arrow::Result<std::shared_ptr<arrow::Table>> FilterOut(
    const std::shared_ptr<arrow::Table>& rows, const std::shared_ptr<arrow::ChunkedArray>& mask) {
  ARROW_ASSIGN_OR_RAISE(auto inv, cp::CallFunction("invert", {arrow::Datum(mask)}));
  ARROW_ASSIGN_OR_RAISE(auto kept, cp::Filter(rows, inv));
  return kept.table();
}

arrow::Result<CommitResult> DeltaTable::Delete(const std::string& predicate) {
  auto& impl = *impl_;
  ARROW_ASSIGN_OR_RAISE(auto snapshot, Latest());
  ARROW_RETURN_NOT_OK(CheckWriteSupported(*snapshot));
  ARROW_RETURN_NOT_OK(CheckAppendOnly(*snapshot, "DELETE"));
  std::optional<cp::Expression> pred;
  if (!predicate.empty()) {
    ARROW_ASSIGN_OR_RAISE(pred, BindPredicate(predicate, *snapshot->schema()));
  }
  int64_t now = impl.clock->NowMillis();
  Transaction txn(*impl.store, snapshot, impl.clock);
  if (pred)
    txn.ReadPredicate(*pred);
  else
    txn.ReadWholeTable();
  // With deletion vectors, files keeping some rows get their deleted rows marked
  // instead of being rewritten, so only the predicate's columns are read.
  const bool use_dvs = WritesDeletionVectors(*snapshot);
  ARROW_ASSIGN_OR_RAISE(auto plan, PlanRewrite(*impl.fs, *snapshot, pred, use_dvs));
  txn.ReadFiles(plan.candidates);
  if (plan.remove_whole.empty() && plan.partial.empty()) {
    return CommitResult{snapshot->version(), true, {{"numDeletedRows", 0}}};
  }
  const auto& md = snapshot->metadata();
  int64_t copied = 0;
  DeletionVectorWriter dvs(*impl.store, snapshot);
  for (const auto& f : plan.remove_whole) txn.Remove(f, true);
  for (size_t i = 0; i < plan.partial.size(); ++i) {
    if (use_dvs) {
      ARROW_RETURN_NOT_OK(dvs.MarkDeleted(plan.partial[i].first, *plan.masks[i]));
      continue;
    }
    txn.Remove(plan.partial[i].first, true);
    ARROW_ASSIGN_OR_RAISE(auto kept, FilterOut(plan.partial[i].second, plan.masks[i]));
    copied += kept->num_rows();
    ARROW_ASSIGN_OR_RAISE(
        auto adds, WriteDataFiles(*impl.store, kept, FileOptions(md, now, "snappy", 4 << 20)));
    for (auto& a : adds) txn.Add(std::move(a));
  }
  std::map<std::string, int64_t> metrics = {
      {"numDeletedRows", plan.matched_rows},
      {"numRemovedFiles", static_cast<int64_t>(txn.removes().size())},
      {"numAddedFiles", static_cast<int64_t>(txn.adds().size())},
      {"numCopiedRows", copied}};
  if (use_dvs) {
    metrics["numDeletionVectorsAdded"] = static_cast<int64_t>(dvs.size()) - dvs.updated();
    metrics["numDeletionVectorsUpdated"] = dvs.updated();
    ARROW_RETURN_NOT_OK(dvs.Finish(&txn).status());
  }
  ARROW_ASSIGN_OR_RAISE(
      auto version,
      txn.Commit("DELETE", {{"predicate", JsonList({predicate.empty() ? "true" : predicate})}},
                 metrics));
  return CommitResult{version, false, metrics};
}

arrow::Result<CommitResult> DeltaTable::Update(const std::string& predicate,
                                               const std::string& assignments) {
  auto& impl = *impl_;
  ARROW_ASSIGN_OR_RAISE(auto snapshot, Latest());
  ARROW_RETURN_NOT_OK(CheckWriteSupported(*snapshot));
  ARROW_RETURN_NOT_OK(CheckAppendOnly(*snapshot, "UPDATE"));
  const auto& schema = *snapshot->schema();
  std::optional<cp::Expression> pred;
  if (!predicate.empty()) {
    ARROW_ASSIGN_OR_RAISE(pred, BindPredicate(predicate, schema));
  }
  ARROW_ASSIGN_OR_RAISE(auto sets, ParseAssignments(assignments, schema));
  if (sets.empty()) return arrow::Status::Invalid("update needs at least one assignment (--set)");
  std::vector<std::pair<int, cp::Expression>> bound_sets;
  for (auto& a : sets) {
    int idx = schema.GetFieldIndex(a.column);
    ARROW_ASSIGN_OR_RAISE(auto b, a.value.Bind(schema));
    bound_sets.emplace_back(idx, std::move(b));
  }
  int64_t now = impl.clock->NowMillis();
  Transaction txn(*impl.store, snapshot, impl.clock);
  if (pred)
    txn.ReadPredicate(*pred);
  else
    txn.ReadWholeTable();
  ARROW_ASSIGN_OR_RAISE(auto scan, PlanFiles(*snapshot, pred));
  txn.ReadFiles(scan.files);
  auto fields = AllFields(schema);
  int64_t updated = 0, copied = 0;
  const auto& md = snapshot->metadata();
  const bool use_dvs = WritesDeletionVectors(*snapshot);
  DeletionVectorWriter dvs(*impl.store, snapshot);
  for (const auto& file : scan.files) {
    ARROW_ASSIGN_OR_RAISE(auto rows, ReadDataFile(*impl.fs, *snapshot, file, fields));
    std::shared_ptr<arrow::ChunkedArray> mask;
    if (pred) {
      ARROW_ASSIGN_OR_RAISE(mask, EvaluatePredicate(*pred, *rows));
    } else {
      ARROW_ASSIGN_OR_RAISE(
          auto all, arrow::MakeArrayFromScalar(arrow::BooleanScalar(true), rows->num_rows()));
      mask = std::make_shared<arrow::ChunkedArray>(all);
    }
    ARROW_ASSIGN_OR_RAISE(auto count, cp::Sum(mask));
    int64_t n = count.scalar()->is_valid
                    ? static_cast<const arrow::UInt64Scalar&>(*count.scalar()).value
                    : 0;
    if (n == 0) continue;
    updated += n;
    copied += rows->num_rows() - n;
    auto columns = rows->columns();
    for (const auto& [idx, expr] : bound_sets) {
      ARROW_ASSIGN_OR_RAISE(auto value, EvaluateExpression(expr, *rows));
      ARROW_ASSIGN_OR_RAISE(auto chosen, cp::IfElse(mask, value, rows->column(idx)));
      columns[idx] = chosen.chunked_array();
    }
    auto updated_rows = arrow::Table::Make(rows->schema(), columns, rows->num_rows());
    if (use_dvs && n < rows->num_rows()) {
      // The old versions of the updated rows are marked deleted; only the new
      // versions are written.
      copied -= rows->num_rows() - n;
      ARROW_ASSIGN_OR_RAISE(auto only_updated, cp::Filter(updated_rows, mask));
      updated_rows = only_updated.table();
      ARROW_RETURN_NOT_OK(EnforceConstraints(md, schema, *updated_rows));
      ARROW_RETURN_NOT_OK(dvs.MarkDeleted(file, *mask));
      ARROW_ASSIGN_OR_RAISE(auto adds, WriteDataFiles(*impl.store, updated_rows,
                                                      FileOptions(md, now, "snappy", 4 << 20)));
      for (auto& a : adds) txn.Add(std::move(a));
      continue;
    }
    ARROW_RETURN_NOT_OK(EnforceConstraints(md, schema, *updated_rows));
    txn.Remove(file, true);
    ARROW_ASSIGN_OR_RAISE(auto adds, WriteDataFiles(*impl.store, updated_rows,
                                                    FileOptions(md, now, "snappy", 4 << 20)));
    for (auto& a : adds) txn.Add(std::move(a));
  }
  if (txn.removes().empty() && dvs.size() == 0)
    return CommitResult{snapshot->version(), true, {{"numUpdatedRows", 0}}};
  std::map<std::string, int64_t> metrics = {
      {"numUpdatedRows", updated},
      {"numCopiedRows", copied},
      {"numRemovedFiles", static_cast<int64_t>(txn.removes().size())},
      {"numAddedFiles", static_cast<int64_t>(txn.adds().size())}};
  if (use_dvs) {
    metrics["numDeletionVectorsAdded"] = static_cast<int64_t>(dvs.size()) - dvs.updated();
    metrics["numDeletionVectorsUpdated"] = dvs.updated();
    ARROW_RETURN_NOT_OK(dvs.Finish(&txn).status());
  }
  ARROW_ASSIGN_OR_RAISE(
      auto version, txn.Commit("UPDATE",
                               {{"predicate", JsonList({predicate.empty() ? "true" : predicate})},
                                {"set", JsonQuote(assignments)}},
                               metrics));
  return CommitResult{version, false, metrics};
}

}  // namespace stratalake::delta
