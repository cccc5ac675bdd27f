// DeltaTable::Merge: the steps of merge.h in order, as one transaction.
#include "storage/merge/merge.h"

#include "storage/deletion_vector_writer.h"

#include "storage/scan.h"
#include "storage/table_internal.h"
#include "storage/transaction.h"

namespace stratalake::delta {

arrow::Result<CommitResult> DeltaTable::Merge(const std::shared_ptr<arrow::Table>& source_in,
                                              const MergeOptions& options) {
  auto& impl = *impl_;
  ARROW_ASSIGN_OR_RAISE(auto snapshot, Latest());
  ARROW_ASSIGN_OR_RAISE(auto plan, merge::PlanMerge(snapshot, source_in, options));
  ARROW_ASSIGN_OR_RAISE(auto index, merge::IndexSourceKeys(*plan.source_full, options.on));
  auto key_filter = merge::SourceKeyRange(*plan.source_full, options.on, *snapshot->schema());
  int64_t n_source = plan.source_full->num_rows();

  int64_t now = impl.clock->NowMillis();
  Transaction txn(*impl.store, snapshot, impl.clock);
  if (plan.new_metadata) {
    txn.SetMetadata(plan.md);
    if (auto up = ProtocolUpgrade(snapshot->protocol(),
                                  ProtocolFor(*plan.schema, plan.md.configuration))) {
      txn.SetProtocol(*up);
    }
  }
  if (key_filter)
    txn.ReadPredicate(*key_filter);
  else
    txn.ReadWholeTable();
  // Target files that may hold a source key: read to find matches, and
  // rewritten where a WHEN MATCHED clause takes rows.
  std::vector<AddFile> candidates;
  if (n_source > 0) {
    ARROW_ASSIGN_OR_RAISE(auto files, PlanFiles(*snapshot, key_filter));
    candidates = files.files;
  }
  txn.ReadFiles(candidates);
  ARROW_ASSIGN_OR_RAISE(auto clauses,
                        merge::BindMatchedClauses(*plan.schema, options.when_matched));

  const bool use_dvs = WritesDeletionVectors(*snapshot);
  DeletionVectorWriter dvs(*impl.store, snapshot);
  merge::MergeCounts counts;
  counts.files_scanned = static_cast<int64_t>(candidates.size());
  counts.files_skipped = static_cast<int64_t>(snapshot->files().size() - candidates.size());
  for (const auto& file : candidates) {
    ARROW_ASSIGN_OR_RAISE(auto rows, merge::ReadTargetFile(*impl.fs, plan, file));
    if (rows->num_rows() == 0 || n_source == 0) continue;
    ARROW_ASSIGN_OR_RAISE(auto match, merge::MatchTargetRows(*rows, options.on, &index));
    if (!match.any || clauses.clauses.empty()) continue;
    ARROW_ASSIGN_OR_RAISE(auto outcome, merge::ApplyMatchedClauses(plan, clauses, rows, match));
    if (outcome.n_touched == 0) continue;
    ARROW_RETURN_NOT_OK(
        merge::CheckOneSourceRowPerTargetRow(*rows, match, index, *outcome.touched, options.on));
    ARROW_RETURN_NOT_OK(merge::RewriteFile(plan, file, rows, outcome, *impl.store, now, &txn,
                                           use_dvs ? &dvs : nullptr, &counts));
  }
  ARROW_RETURN_NOT_OK(merge::InsertUnmatched(plan, index, options.when_not_matched, *impl.store,
                                             now, &txn, &counts));
  if (use_dvs) {
    counts.dvs_added = static_cast<int64_t>(dvs.size()) - dvs.updated();
    counts.dvs_updated = dvs.updated();
    ARROW_RETURN_NOT_OK(dvs.Finish(&txn).status());
  }
  return merge::CommitMerge(plan, options, counts, &txn);
}

}  // namespace stratalake::delta
