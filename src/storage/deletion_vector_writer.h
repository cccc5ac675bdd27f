// Writing deletion vectors for one commit (PROTOCOL.md "Deletion Vectors"):
// DELETE, UPDATE and MERGE on a table with delta.enableDeletionVectors=true mark
// the rows they take out of a data file in a deletion vector instead of
// rewriting the file. The new deletion vectors of one commit go into one file,
// `deletion_vector_<uuid>.bin` in the table root, written and synced before the
// commit; per data file the commit then holds a `remove` of the file as it was
// (with its old deletion vector, if any) and an `add` of the same path with the
// new one, which is the union of the old and the newly deleted rows.
//
// A crash before the commit leaves the table as it was: the new DV file is
// unreferenced and VACUUM deletes it once it is older than the retention.
//
// Not thread-safe: one operation uses one writer on one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <arrow/chunked_array.h>
#include <arrow/result.h>

#include "storage/log_store.h"
#include "storage/transaction.h"
#include "stratalake/delta.h"

namespace stratalake::delta {

/// Whether DELETE, UPDATE and MERGE on `snapshot` write deletion vectors: the
/// table property delta.enableDeletionVectors is "true" and the protocol lists
/// the writer feature deletionVectors.
bool WritesDeletionVectors(const Snapshot& snapshot);

class DeletionVectorWriter {
 public:
  DeletionVectorWriter(const LogStore& store, std::shared_ptr<const Snapshot> snapshot);

  /// Marks rows of `file` (a live file of the snapshot) deleted. `deleted` has
  /// one entry per row ReadDataFile returns for the file (its current deletion
  /// vector applied), true for a row to delete; nulls count as false. Invalid
  /// when the lengths disagree or the file was already marked in this writer.
  arrow::Status MarkDeleted(const AddFile& file, const arrow::ChunkedArray& deleted);

  /// Files marked so far.
  size_t size() const { return pending_.size(); }
  /// Of those, files that had a deletion vector before.
  int64_t updated() const { return updated_; }

  /// Writes the deletion vector file (durably) and records, per marked file, a
  /// remove of it and an add of it with its new deletion vector in `txn`.
  /// Nothing when no file was marked. On an error the DV file is removed.
  /// Returns the bytes written.
  arrow::Result<int64_t> Finish(Transaction* txn);

 private:
  struct Pending {
    AddFile file;
    std::vector<uint64_t> rows;  // physical row indexes, old and new, ascending
  };
  const LogStore& store_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::vector<Pending> pending_;
  int64_t updated_ = 0;
};

}  // namespace stratalake::delta
