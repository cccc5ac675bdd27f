// The log store for s3:// tables whose commits are decided by a commit
// coordinator in a database (commit_coordinator.h) rather than by conditional
// PUTs: safe with any number of writers on stores that ignore If-None-Match,
// as long as every writer of the table uses the same coordinator
// (docs/object-storage.md, "Commit coordinator").
//
// A commit of version N (PutIfAbsent of `_delta_log/NNN.json`):
//   1. if the table's newest entry in the coordinator is incomplete, repair it
//      (below);
//   2. fail with AlreadyExists if NNN.json exists (a version committed before
//      the coordinator was used, or by a stale writer);
//   3. write the commit to a temporary object `_delta_log/.tmp/NNN.json.UUID`;
//   4. insert (table, N, temporary object) into the coordinator, put-if-absent:
//      the one writer whose insert succeeds owns version N; the others repair
//      N and get AlreadyExists (the transaction's conflict path);
//   5. PUT NNN.json (the owner's bytes), mark the entry complete, remove the
//      temporary object.
// A writer that dies after step 4 leaves an incomplete entry: the next
// listing (every reader and writer of the table through this store lists the
// log first) or commit copies the temporary object to NNN.json and marks it
// complete ("repair"). Copies are idempotent: every copier writes the same
// bytes. Readers that do not use the coordinator (delta-rs, DuckDB) see
// version N once it has been copied.
//
// Thread-safety: immutable after construction and thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "storage/commit_coordinator.h"
#include "storage/log_store.h"

namespace stratalake::delta {

class CoordinatedLogStore final : public LogStore {
 public:
  /// `coordinator_uri`: the database (OpenCommitCoordinator), opened on first use.
  CoordinatedLogStore(std::shared_ptr<arrow::fs::FileSystem> fs, std::string table_root,
                      std::string coordinator_uri);

  /// Repairs the table's newest entry when it is incomplete, then lists.
  arrow::Result<LogListing> List() const override;
  arrow::Status PutIfAbsent(const std::string& path, std::string_view data) const override;
  arrow::Status PutAtomic(const std::string& path, std::string_view data) const override;
  arrow::Status SyncFile(const std::string& path) const override;
  arrow::Status SyncDir(const std::string& dir) const override;

 private:
  arrow::Result<std::shared_ptr<CommitCoordinator>> Coordinator() const;
  /// Copy an incomplete entry's temporary object to its commit file (unless
  /// the file is there), mark it complete and remove the temporary object.
  arrow::Status Repair(CommitCoordinator& coordinator, const CommitEntry& entry) const;
  arrow::Result<bool> Exists(const std::string& path) const;
  std::string table_uri() const { return "s3://" + root(); }

  std::string coordinator_uri_;
  mutable std::mutex mu_;
  mutable std::shared_ptr<CommitCoordinator> coordinator_;
};

}  // namespace stratalake::delta
