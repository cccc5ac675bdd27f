#include "storage/transaction.h"

#include <iostream>

#include <arrow/compute/api.h>

#include "storage/checkpoint.h"
#include "storage/snapshot.h"
#include "storage/stats.h"
#include "stratalake/status.h"

namespace stratalake::delta {

namespace cp = arrow::compute;

namespace {
constexpr int kMaxCommitAttempts = 10000;
// A temporary commit file this old belongs to a writer that died (commits take ms).
constexpr int64_t kStaleTempFileMs = 3600 * 1000;

arrow::Status Conflict(ErrorKind kind, int64_t version, const std::string& what) {
  return MakeError(arrow::StatusCode::Invalid, kind,
                   std::string(ErrorKindName(kind)) + ": a concurrent commit (version " +
                       std::to_string(version) + ") " + what +
                       "; reload the table and retry the operation");
}
}  // namespace

Transaction::Transaction(const LogStore& store, std::shared_ptr<const Snapshot> read_snapshot,
                         std::shared_ptr<Clock> clock)
    : store_(store), read_snapshot_(std::move(read_snapshot)), clock_(std::move(clock)) {}

void Transaction::Remove(const AddFile& file, bool data_change) {
  RemoveFile r;
  r.path = file.path;
  r.deletion_timestamp = clock_->NowMillis();
  r.data_change = data_change;
  r.extended_file_metadata = true;
  r.partition_values = file.partition_values;
  r.size = file.size;
  r.deletion_vector = file.deletion_vector;
  r.base_row_id = file.base_row_id;
  r.default_row_commit_version = file.default_row_commit_version;
  r.stats = file.stats;
  removed_files_.insert(CanonicalFilePath(store_.root(), file.path));
  removes_.push_back(std::move(r));
}

void Transaction::ReadFiles(const std::vector<AddFile>& files) {
  for (const auto& f : files) read_files_.insert(CanonicalFilePath(store_.root(), f.path));
}

bool Transaction::IsBlindAppend() const {
  return !read_whole_table_ && !read_predicate_ && read_files_.empty() && removes_.empty();
}

std::string Transaction::Serialize(int64_t read_version, const std::string& operation,
                                   const std::vector<std::pair<std::string, std::string>>& params,
                                   const std::map<std::string, int64_t>& metrics,
                                   const std::optional<std::string>& user_metadata) const {
  CommitInfoToWrite ci;
  ci.timestamp = clock_->NowMillis();
  ci.operation = operation;
  ci.parameters = params;
  ci.metrics = metrics;
  ci.user_metadata = user_metadata;
  if (read_version >= 0) ci.read_version = read_version;
  ci.is_blind_append = IsBlindAppend();
  ci.isolation_level = "WriteSerializable";
  ci.txn_id = NewUuid();
  std::string out = SerializeCommitInfo(ci);
  out += '\n';
  if (protocol_) out += SerializeProtocol(*protocol_) + '\n';
  if (metadata_) out += SerializeMetadata(*metadata_) + '\n';
  if (txn_) out += SerializeTxn(*txn_) + '\n';
  for (const auto& r : removes_) out += SerializeRemove(r) + '\n';
  for (const auto& a : adds_) out += SerializeAdd(a) + '\n';
  return out;
}

arrow::Status Transaction::CheckConflicts(const LogActions& winner, int64_t version) const {
  if (winner.protocol) {
    return Conflict(ErrorKind::kProtocolChanged, version, "changed the table's protocol");
  }
  if (winner.metadata) {
    return Conflict(ErrorKind::kMetadataChanged, version,
                    "changed the table's metadata (schema, partitioning or properties)");
  }
  if (txn_) {
    for (const auto& t : winner.txns) {
      if (t.app_id == txn_->app_id) {
        return Conflict(ErrorKind::kConcurrentTransaction, version,
                        "committed for the same application id '" + t.app_id + "'");
      }
    }
  }
  bool winner_blind = winner.commit_info && winner.commit_info->is_blind_append.value_or(false);
  if ((read_whole_table_ || read_predicate_) && !winner_blind && read_snapshot_) {
    std::set<std::string> columns;
    if (read_predicate_) {
      for (const auto& ref : cp::FieldsInExpression(*read_predicate_)) {
        if (ref.name()) columns.insert(*ref.name());
      }
    }
    for (const auto& add : winner.adds) {
      if (!add.data_change) continue;
      bool may_match = true;
      if (read_predicate_ && !read_whole_table_) {
        ARROW_ASSIGN_OR_RAISE(auto g, FileGuarantee(*read_snapshot_, add, columns));
        ARROW_ASSIGN_OR_RAISE(auto s, cp::SimplifyWithGuarantee(*read_predicate_, g));
        if (s.literal() && s.literal()->is_scalar()) {
          const auto& sc = *s.literal()->scalar();
          if (!sc.is_valid || (sc.type->id() == arrow::Type::BOOL &&
                               !static_cast<const arrow::BooleanScalar&>(sc).value)) {
            may_match = false;
          }
        }
      }
      if (may_match) {
        return Conflict(ErrorKind::kConcurrentAppend, version,
                        "added data file '" + add.path + "' that this operation should have read");
      }
    }
  }
  for (const auto& r : winner.removes) {
    if (!r.data_change) {
      // A compaction rewrote files we read: the data is unchanged but our removes of
      // those files would resurrect nothing; still a conflict if we remove them too.
    }
    std::string key = CanonicalFilePath(store_.root(), r.path);
    if (removed_files_.count(key)) {
      return Conflict(ErrorKind::kConcurrentDeleteDelete, version,
                      "removed file '" + r.path + "' that this operation also removes");
    }
    if (read_files_.count(key)) {
      return Conflict(ErrorKind::kConcurrentDeleteRead, version,
                      "removed file '" + r.path + "' that this operation read");
    }
  }
  return arrow::Status::OK();
}

arrow::Result<int64_t> Transaction::Commit(
    const std::string& operation,
    const std::vector<std::pair<std::string, std::string>>& parameters,
    const std::map<std::string, int64_t>& metrics,
    const std::optional<std::string>& user_metadata) {
  int64_t read_version = read_snapshot_ ? read_snapshot_->version() : -1;
  int64_t attempt = read_version + 1;
  if (!read_snapshot_) {
    // A new table: `_delta_log` (and the data files' folders) in the root and the
    // root in its parent must be on disk before the first commit is acknowledged.
    // Folders above the parent are taken as already durable.
    ARROW_RETURN_NOT_OK(store_.SyncDir(store_.root()));
    ARROW_RETURN_NOT_OK(store_.SyncDir(ParentDir(store_.root())));
  }
  for (int tries = 0; tries < kMaxCommitAttempts; ++tries) {
    std::string content = Serialize(read_version, operation, parameters, metrics, user_metadata);
    auto st = store_.PutIfAbsent(store_.CommitPath(attempt), content);
    if (st.ok()) {
      PostCommit(attempt);
      return attempt;
    }
    if (!st.IsAlreadyExists()) return st;
    if (!read_snapshot_) {
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kTableAlreadyExists,
                       "another writer created the table at '" + store_.root() +
                           "' concurrently; retry the write, which will now append to it");
    }
    // Lost the race: check every commit that won since our last attempt.
    ARROW_ASSIGN_OR_RAISE(auto listing, store_.List());
    int64_t latest = listing.commits.empty() ? attempt : listing.commits.rbegin()->first;
    for (int64_t v = attempt; v <= latest; ++v) {
      auto it = listing.commits.find(v);
      if (it == listing.commits.end()) continue;
      ARROW_ASSIGN_OR_RAISE(auto text, store_.Read(it->second.path));
      ARROW_ASSIGN_OR_RAISE(auto winner, ParseLogJson(text, it->second.path));
      ARROW_RETURN_NOT_OK(CheckConflicts(winner, v));
    }
    attempt = latest + 1;
  }
  return arrow::Status::IOError("could not commit to '", store_.root(), "' after ",
                                kMaxCommitAttempts, " attempts");
}

void Transaction::PostCommit(int64_t version) const {
  // Checkpoint every delta.checkpointInterval commits. A failed checkpoint never
  // fails the commit: readers fall back to the previous checkpoint and the JSON log.
  const Metadata* md =
      metadata_ ? &*metadata_ : (read_snapshot_ ? &read_snapshot_->metadata() : nullptr);
  int64_t interval = 10;
  bool cleanup = true;
  if (md) {
    interval = std::max<int64_t>(1, IntProperty(*md, "delta.checkpointInterval", 10));
    auto c = md->configuration.find("delta.enableExpiredLogCleanup");
    if (c != md->configuration.end()) cleanup = c->second != "false";
  }
  if (version == 0 || version % interval != 0) return;
  auto listing = store_.List();
  if (!listing.ok()) return;
  auto snap = SnapshotBuilder::Load(store_, *listing, version);
  if (!snap.ok()) return;
  if ((*snap)->protocol().writer_features &&
      std::find((*snap)->protocol().writer_features->begin(),
                (*snap)->protocol().writer_features->end(),
                "v2Checkpoint") != (*snap)->protocol().writer_features->end()) {
    return;  // classic checkpoints are not allowed for v2Checkpoint tables
  }
  auto st = WriteCheckpoint(store_, **snap, clock_->NowMillis());
  if (!st.ok()) {
    std::cerr << "warning: checkpoint of version " << version
              << " failed: " << st.status().ToString() << "\n";
    return;
  }
  if (cleanup) {
    auto cleaned = CleanupExpiredLogFiles(store_, **snap, clock_->NowMillis());
    if (!cleaned.ok()) {
      std::cerr << "warning: log cleanup failed: " << cleaned.status().ToString() << "\n";
    }
  }
}

arrow::Result<int64_t> CleanupExpiredLogFiles(const LogStore& store, const Snapshot& latest,
                                              int64_t now_ms) {
  ARROW_ASSIGN_OR_RAISE(int64_t retention, ParseIntervalMs(latest.Property(
                                               "delta.logRetentionDuration", "interval 30 days")));
  int64_t cutoff = now_ms - retention;
  ARROW_ASSIGN_OR_RAISE(auto listing, store.List());
  int64_t last_expired = -1;
  for (const auto& [v, f] : listing.commits) {
    if (v > latest.version()) break;
    ARROW_ASSIGN_OR_RAISE(int64_t mtime, store.ModificationTime(f));
    if (mtime > cutoff) break;  // commits are written in order: the rest are newer
    last_expired = v;
  }
  int64_t keep_from = -1;  // newest checkpoint at or before last_expired + 1
  for (const auto& [v, files] : listing.checkpoints) {
    if (v <= last_expired + 1 && v <= latest.version()) keep_from = v;
  }
  int64_t deleted = 0;
  // Temporary files of writers that died between writing and linking a commit.
  arrow::fs::FileSelector sel;
  sel.base_dir = store.log_dir();
  ARROW_ASSIGN_OR_RAISE(auto infos, store.fs()->GetFileInfo(sel));
  for (const auto& info : infos) {
    const std::string name = info.base_name();
    int64_t mtime =
        std::chrono::duration_cast<std::chrono::milliseconds>(info.mtime().time_since_epoch())
            .count();
    if (info.IsFile() && name.starts_with(".") && name.ends_with(".tmp") &&
        mtime < now_ms - kStaleTempFileMs) {
      ARROW_RETURN_NOT_OK(store.fs()->DeleteFile(info.path()));
      ++deleted;
    }
  }
  if (keep_from <= 0) return deleted;
  for (const auto& [v, f] : listing.commits) {
    if (v >= keep_from) break;
    ARROW_ASSIGN_OR_RAISE(int64_t mtime, store.ModificationTime(f));
    if (mtime <= cutoff) {
      ARROW_RETURN_NOT_OK(store.fs()->DeleteFile(f.path));
      ++deleted;
    }
  }
  for (const auto& [v, files] : listing.checkpoints) {
    if (v >= keep_from) continue;
    for (const auto& f : files) {
      ARROW_RETURN_NOT_OK(store.fs()->DeleteFile(f.path));
      ++deleted;
    }
  }
  return deleted;
}

}  // namespace stratalake::delta
