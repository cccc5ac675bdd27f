// Access to a table's storage: listing and reading `_delta_log/`, the
// put-if-absent primitive that makes commits atomic, and the durability hooks
// ("this file / this folder must survive a power cut") that every write calls
// before a commit is acknowledged.
//
// LogStore is an interface with five implementations: LocalLogStore (POSIX:
// link() for put-if-absent, fsync for durability), S3LogStore (s3_log_store.h:
// conditional PUT for put-if-absent), CoordinatedLogStore
// (coordinated_log_store.h: a commit coordinator in a database), ObjectStoreLogStore (any other
// arrow::fs::FileSystem: an object is durable once its upload returns; no
// atomic put-if-absent) and, for tests, FaultInjectionLogStore (fault_injection_fs.h).
//
// The durability contract (docs/delta.md, "Durability"): a commit is acknowledged
// only after (1) every data file it adds was synced (SyncFile) and every folder
// an entry was created in was synced (SyncDir), then (2) the commit file was
// written, synced and linked into `_delta_log/`, and `_delta_log/` synced.
//
// Thread-safety: every LogStore is immutable after construction and thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/filesystem/filesystem.h>
#include <arrow/result.h>

namespace stratalake::delta {

struct LogFile {
  enum class Kind { kCommit, kCheckpoint, kMultiPartCheckpoint, kV2Checkpoint };
  Kind kind = Kind::kCommit;
  int64_t version = 0;
  std::string path;             // filesystem path
  int64_t mtime_ms = -1;        // -1 until read: see LogStore::ModificationTime
  int part = 0, num_parts = 0;  // multi-part checkpoints
};

struct LogListing {
  std::map<int64_t, LogFile> commits;                   // by version
  std::map<int64_t, std::vector<LogFile>> checkpoints;  // by version, all kinds
  bool log_dir_exists = false;
};

class LogStore {
 public:
  virtual ~LogStore() = default;

  /// The filesystem data files are written and read through.
  const std::shared_ptr<arrow::fs::FileSystem>& fs() const { return fs_; }
  const std::string& root() const { return root_; }
  std::string log_dir() const { return root_ + "/_delta_log"; }
  std::string CommitPath(int64_t version) const;

  /// List and classify `_delta_log/`. An absent folder gives log_dir_exists=false.
  virtual arrow::Result<LogListing> List() const;
  arrow::Result<std::string> Read(const std::string& path) const;
  /// The file's modification time in ms; local listings skip stat(), so it is
  /// read here on first need.
  arrow::Result<int64_t> ModificationTime(const LogFile& file) const;

  /// Create `path` holding `data` only if it does not exist; Status::AlreadyExists
  /// if it does. Durable when it returns OK (the file and its folder entry).
  virtual arrow::Status PutIfAbsent(const std::string& path, std::string_view data) const = 0;

  /// Overwrite `path` atomically and durably; used for _last_checkpoint.
  virtual arrow::Status PutAtomic(const std::string& path, std::string_view data) const = 0;

  /// Make the content of the closed file at `path` survive a power cut.
  virtual arrow::Status SyncFile(const std::string& path) const = 0;
  /// Make the entries created, renamed or removed in folder `dir` survive a power cut.
  virtual arrow::Status SyncDir(const std::string& dir) const = 0;

 protected:
  LogStore(std::shared_ptr<arrow::fs::FileSystem> fs, std::string table_root);
  /// Classify (name, mtime in ms or -1) entries of `_delta_log/` into `out`.
  void Classify(const std::vector<std::pair<std::string, int64_t>>& entries, LogListing* out) const;

 private:
  std::shared_ptr<arrow::fs::FileSystem> fs_;
  std::string root_;
};

/// A table on a local (POSIX) filesystem. PutIfAbsent writes and fsyncs a
/// temporary file, link()s it into place (atomic, never check-then-write) and
/// fsyncs the folder; SyncFile and SyncDir are fsync.
class LocalLogStore final : public LogStore {
 public:
  /// `sync` false skips every fsync: only for benchmarks that measure what
  /// syncing costs; acknowledged commits may then be lost at a power cut.
  /// Default: true.
  LocalLogStore(std::shared_ptr<arrow::fs::FileSystem> fs, std::string table_root,
                bool sync = true);

  arrow::Result<LogListing> List() const override;
  arrow::Status PutIfAbsent(const std::string& path, std::string_view data) const override;
  arrow::Status PutAtomic(const std::string& path, std::string_view data) const override;
  arrow::Status SyncFile(const std::string& path) const override;
  arrow::Status SyncDir(const std::string& dir) const override;

 private:
  bool sync_;
};

/// A table on a non-local arrow filesystem other than S3 (S3 has S3LogStore): an
/// object is durable once its upload returned, so SyncFile and SyncDir do nothing.
/// PutIfAbsent is check-then-write: safe with one writer only.
class ObjectStoreLogStore final : public LogStore {
 public:
  ObjectStoreLogStore(std::shared_ptr<arrow::fs::FileSystem> fs, std::string table_root);

  arrow::Status PutIfAbsent(const std::string& path, std::string_view data) const override;
  arrow::Status PutAtomic(const std::string& path, std::string_view data) const override;
  arrow::Status SyncFile(const std::string& path) const override;
  arrow::Status SyncDir(const std::string& dir) const override;
};

/// The store for `fs`: LocalLogStore (syncing as `sync` says) for a local
/// filesystem; for S3, CoordinatedLogStore (coordinated_log_store.h) when its
/// connection names a commit coordinator, else S3LogStore (s3_log_store.h:
/// conditional PUTs); ObjectStoreLogStore otherwise.
std::unique_ptr<LogStore> MakeLogStore(std::shared_ptr<arrow::fs::FileSystem> fs,
                                       std::string table_root, bool sync = true);

/// The folder part of `path` ("/" for "/x", "." for "x").
std::string ParentDir(const std::string& path);

/// A new random UUID (version 4) as 8-4-4-4-12 lowercase hex.
std::string NewUuid();

}  // namespace stratalake::delta
