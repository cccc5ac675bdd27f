// Access to a table's `_delta_log/`: listing and classifying log files, reading
// them, and the put-if-absent primitive that makes commits atomic.
//
// Thread-safety: LogStore is immutable after construction and thread-safe.
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
  LogStore(std::shared_ptr<arrow::fs::FileSystem> fs, std::string table_root);

  const std::shared_ptr<arrow::fs::FileSystem>& fs() const { return fs_; }
  const std::string& root() const { return root_; }
  std::string log_dir() const { return root_ + "/_delta_log"; }
  std::string CommitPath(int64_t version) const;

  /// List and classify `_delta_log/`. An absent folder gives log_dir_exists=false.
  arrow::Result<LogListing> List() const;
  arrow::Result<std::string> Read(const std::string& path) const;
  /// The file's modification time in ms; local listings skip stat(), so it is
  /// read here on first need.
  arrow::Result<int64_t> ModificationTime(const LogFile& file) const;

  /// Create `path` holding `data` only if it does not exist; Status::AlreadyExists
  /// if it does. On a local filesystem the data is written and fsynced to a
  /// temporary file that is then link()ed into place (atomic, never check-then-write).
  arrow::Status PutIfAbsent(const std::string& path, std::string_view data) const;

  /// Overwrite `path` atomically (write + rename); used for _last_checkpoint.
  arrow::Status PutAtomic(const std::string& path, std::string_view data) const;

  bool is_local() const { return is_local_; }

 private:
  std::shared_ptr<arrow::fs::FileSystem> fs_;
  std::string root_;
  bool is_local_;
};

/// A new random UUID (version 4) as 8-4-4-4-12 lowercase hex.
std::string NewUuid();

}  // namespace stratalake::delta
