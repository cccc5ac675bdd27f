// One optimistic transaction: collects actions against a read snapshot and
// commits them as the next log version with put-if-absent. When another writer
// won the race, the winning commits are checked against what this transaction
// read (Delta's WriteSerializable conflict rules); without a conflict the commit
// is retried at the next version, otherwise a specific conflict error is returned.
//
// Not thread-safe: one thread builds and commits a transaction.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <arrow/compute/expression.h>
#include <arrow/result.h>

#include "storage/actions.h"
#include "storage/log_store.h"
#include "stratalake/clock.h"
#include "stratalake/delta.h"

namespace stratalake::delta {

class Transaction {
 public:
  /// `read_snapshot` is null when the transaction creates the table.
  Transaction(const LogStore& store, std::shared_ptr<const Snapshot> read_snapshot,
              std::shared_ptr<Clock> clock);

  void SetMetadata(Metadata metadata) { metadata_ = std::move(metadata); }
  void SetProtocol(Protocol protocol) { protocol_ = std::move(protocol); }
  void Add(AddFile add) { adds_.push_back(std::move(add)); }
  void Remove(const AddFile& file, bool data_change);
  void SetAppTransaction(AppTransaction txn) { txn_ = std::move(txn); }

  /// What this transaction read, for conflict detection: the whole table, or the
  /// rows matching `predicate` (bound to the table schema); and the files it read.
  void ReadWholeTable() { read_whole_table_ = true; }
  void ReadPredicate(arrow::compute::Expression bound) { read_predicate_ = std::move(bound); }
  void ReadFiles(const std::vector<AddFile>& files);

  int64_t now_ms() const { return clock_->NowMillis(); }
  const std::vector<AddFile>& adds() const { return adds_; }
  const std::vector<RemoveFile>& removes() const { return removes_; }

  /// Commit; returns the version written. `parameters` values are JSON text.
  arrow::Result<int64_t> Commit(const std::string& operation,
                                const std::vector<std::pair<std::string, std::string>>& parameters,
                                const std::map<std::string, int64_t>& metrics,
                                const std::optional<std::string>& user_metadata = std::nullopt);

 private:
  arrow::Status CheckConflicts(const LogActions& winner, int64_t version) const;
  std::string Serialize(int64_t read_version, const std::string& operation,
                        const std::vector<std::pair<std::string, std::string>>& parameters,
                        const std::map<std::string, int64_t>& metrics,
                        const std::optional<std::string>& user_metadata) const;
  bool IsBlindAppend() const;
  void PostCommit(int64_t version) const;

  const LogStore& store_;
  std::shared_ptr<const Snapshot> read_snapshot_;
  std::shared_ptr<Clock> clock_;
  std::optional<Metadata> metadata_;
  std::optional<Protocol> protocol_;
  std::optional<AppTransaction> txn_;
  std::vector<AddFile> adds_;
  std::vector<RemoveFile> removes_;
  bool read_whole_table_ = false;
  std::optional<arrow::compute::Expression> read_predicate_;
  std::set<std::string> read_files_;     // canonical paths
  std::set<std::string> removed_files_;  // canonical paths
};

/// Delete log files that delta.logRetentionDuration (default 30 days) has expired:
/// commits and checkpoints older than the newest checkpoint that is itself at or
/// before the last expired commit, so every retained version still loads.
/// Returns the number of files deleted.
arrow::Result<int64_t> CleanupExpiredLogFiles(const LogStore& store, const Snapshot& latest,
                                              int64_t now_ms);

}  // namespace stratalake::delta
