// The steps of DeltaTable::Merge (internal to src/storage/). merge.cc runs them
// in this order, as one transaction:
//
//   1. PlanMerge (merge_plan.cc): checks, the source in the target's types, the
//      target schema after merge_schema.
//   2. IndexSourceKeys, SourceKeyRange (merge_match.cc): the source's key groups
//      and the key range that prunes target files.
//   then the transaction records what the merge read (the key range, the
//   candidate target files);
//   3. BindMatchedClauses (merge_plan.cc): WHEN MATCHED conditions and
//      assignments bound to the combined target/source view.
//   4. Per candidate target file (merge_match.cc): ReadTargetFile,
//      MatchTargetRows (which source row each target row joins),
//      ApplyMatchedClauses (the first clause that applies, per row),
//      CheckOneSourceRowPerTargetRow; then RewriteFile (merge_rewrite.cc).
//   5. InsertUnmatched, CommitMerge (merge_rewrite.cc).
//
// Semantics are Delta's: a key with a NULL never matches; the first WHEN
// MATCHED clause whose condition holds applies to a row, and a target row that
// several source rows would modify fails the merge; unmatched source rows are
// inserted by the first WHEN NOT MATCHED clause whose condition holds.
//
// Not thread-safe: one merge runs its steps on one thread (reads and writes of
// data files use Arrow's thread pools inside).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/compute/row/grouper.h>

#include "storage/actions.h"
#include "storage/deletion_vector_writer.h"
#include "storage/log_store.h"
#include "storage/snapshot.h"
#include "storage/transaction.h"
#include "stratalake/delta.h"

namespace stratalake::delta::merge {

// ---- merge_plan.cc ----------------------------------------------------------

/// What a merge works with, decided before any target file is read.
struct MergePlan {
  std::shared_ptr<const Snapshot> snapshot;   // the target as read
  bool has_update_or_delete = false;          // any WHEN MATCHED clause
  std::shared_ptr<arrow::Table> source;       // the source in storage types, one chunk
  std::shared_ptr<arrow::Schema> schema;      // the target's schema after the merge
  Metadata md;                                // the target's metadata after the merge
  bool new_metadata = false;                  // merge_schema added source columns
  std::shared_ptr<arrow::Table> source_full;  // the source in `schema`, one chunk
};

/// Checks the target accepts the merge (writable; not append-only when there
/// are WHEN MATCHED clauses), that keys are given and are columns of both sides,
/// and that source columns are target columns (or, with merge_schema, adds them
/// as nullable columns). Errors: kOperationNotAllowed, kSchemaMismatch, Invalid.
arrow::Result<MergePlan> PlanMerge(std::shared_ptr<const Snapshot> snapshot,
                                   const std::shared_ptr<arrow::Table>& source_in,
                                   const MergeOptions& options);

/// A WHEN MATCHED clause bound to the combined view.
struct BoundClause {
  MatchedClause::Action action;
  std::optional<arrow::compute::Expression> condition;
  std::vector<std::pair<int, arrow::compute::Expression>> sets;  // target column, value
};

/// The WHEN MATCHED clauses and the view their conditions and values see: every
/// target column as `target.c` and `c`, then every source column as `source.c`
/// (source columns in the target's schema).
struct MatchedClauses {
  std::shared_ptr<arrow::Schema> combined_schema;
  std::vector<BoundClause> clauses;  // in the order given
};

/// Binds `when_matched` to the combined view of `schema`; Invalid for a
/// condition or assignment that does not parse or bind, or an assignment to a
/// column the target lacks.
arrow::Result<MatchedClauses> BindMatchedClauses(const arrow::Schema& schema,
                                                 const std::vector<MatchedClause>& when_matched);

// ---- merge_match.cc ---------------------------------------------------------

/// The source rows grouped by key: a target row matches the group of its key.
/// Groups of keys with a NULL have no rows (such keys never match).
struct SourceKeyIndex {
  std::unique_ptr<arrow::compute::Grouper> grouper;
  std::vector<uint32_t> group_of;    // per source row
  std::vector<bool> null_key;        // per source row: a key column is NULL
  std::vector<int64_t> group_first;  // per group: its first source row, -1 if none
  std::vector<int64_t> group_count;  // per group: its source rows
  std::vector<bool> group_matched;   // per group: some target row matched it
};

/// Groups the `on` columns of `source_full` (one chunk).
arrow::Result<SourceKeyIndex> IndexSourceKeys(const arrow::Table& source_full,
                                              const std::vector<std::string>& on);

/// `min(k) <= k <= max(k)` over the source for every key column with a non-null
/// value, bound to `target_schema`; nullopt when no key gives a range (every
/// target file may match).
std::optional<arrow::compute::Expression> SourceKeyRange(const arrow::Table& source_full,
                                                         const std::vector<std::string>& on,
                                                         const arrow::Schema& target_schema);

/// The rows of target `file` in `plan.schema` (columns merge_schema added are
/// NULL), one chunk.
arrow::Result<std::shared_ptr<arrow::Table>> ReadTargetFile(arrow::fs::FileSystem& fs,
                                                            const MergePlan& plan,
                                                            const AddFile& file);

/// Which source row each target row joins.
struct TargetMatch {
  std::shared_ptr<arrow::UInt32Array> group_ids;  // per target row: its key's group, or null
  std::shared_ptr<arrow::Array> source_row;       // per target row: the group's first
                                                  // source row (int64), null when unmatched
  bool any = false;                               // some target row matched
};

/// Looks up the keys of `rows` (one chunk) in `index` and marks the groups
/// matched (`index->group_matched`).
arrow::Result<TargetMatch> MatchTargetRows(const arrow::Table& rows,
                                           const std::vector<std::string>& on,
                                           SourceKeyIndex* index);

/// One target file after its WHEN MATCHED clauses.
struct ClauseOutcome {
  arrow::ChunkedArrayVector columns;             // the rows with updates applied
  std::shared_ptr<arrow::ChunkedArray> deleted;  // rows a delete clause took; null if none
  std::shared_ptr<arrow::ChunkedArray> touched;  // rows some clause took
  int64_t n_touched = 0;
};

/// Applies `clauses` to the matched rows of `rows`: each matched row is taken
/// by the first clause whose condition holds (updates replace its values,
/// deletes mark it); other rows keep their values.
arrow::Result<ClauseOutcome> ApplyMatchedClauses(const MergePlan& plan,
                                                 const MatchedClauses& clauses,
                                                 const std::shared_ptr<arrow::Table>& rows,
                                                 const TargetMatch& match);

/// Invalid ("merge failed: N source rows match the same target row ...") when a
/// target row some clause took matched more than one source row.
arrow::Status CheckOneSourceRowPerTargetRow(const arrow::Table& rows, const TargetMatch& match,
                                            const SourceKeyIndex& index,
                                            const arrow::ChunkedArray& touched,
                                            const std::vector<std::string>& on);

// ---- merge_rewrite.cc -------------------------------------------------------

/// The row counts of a merge's metrics.
struct MergeCounts {
  int64_t updated = 0, deleted = 0, copied = 0, inserted = 0;
  // Target files read to find matches, and those the source keys' range ruled out.
  int64_t files_scanned = 0, files_skipped = 0;
  // Deletion vectors written on files without / with one before (a remove and an
  // add of the same file each, not counted as files added or removed).
  int64_t dvs_added = 0, dvs_updated = 0;
};

/// Replaces target `file` in `txn` by a file of its rows after `outcome`
/// (deleted rows left out), after checking the table's constraints on them
/// (kConstraintViolation); adds to `counts`. With `dvs` (the table writes
/// deletion vectors) and some rows untouched, the rows a clause took are marked
/// deleted in `dvs` instead and only the updated rows are written.
arrow::Status RewriteFile(const MergePlan& plan, const AddFile& file,
                          const std::shared_ptr<arrow::Table>& rows, const ClauseOutcome& outcome,
                          const LogStore& store, int64_t now_ms, Transaction* txn,
                          DeletionVectorWriter* dvs, MergeCounts* counts);

/// Writes the source rows that matched no target row and that a WHEN NOT
/// MATCHED clause takes (conditions see source columns as `c` and `source.c`)
/// and adds them to `txn`; nothing without such clauses or source rows.
arrow::Status InsertUnmatched(const MergePlan& plan, const SourceKeyIndex& index,
                              const std::vector<NotMatchedClause>& when_not_matched,
                              const LogStore& store, int64_t now_ms, Transaction* txn,
                              MergeCounts* counts);

/// Commits `txn` as operation MERGE with Delta's parameters and metrics; a noop
/// result at the read version when nothing changed.
arrow::Result<CommitResult> CommitMerge(const MergePlan& plan, const MergeOptions& options,
                                        const MergeCounts& counts, Transaction* txn);

}  // namespace stratalake::delta::merge
