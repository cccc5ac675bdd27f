#include "storage/log_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>

#include <arrow/buffer.h>
#include <arrow/io/interfaces.h>

#include "common/os_error.h"
#include "storage/coordinated_log_store.h"
#include "storage/object_store.h"
#include "storage/s3_log_store.h"
#include "stratalake/status.h"

namespace stratalake::delta {

namespace {

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

arrow::Status ErrnoError(const std::string& what, const std::string& path) {
  int err = errno;
  std::string hint = err == ENOSPC || err == EDQUOT
                         ? "; free space on that disk (or raise the quota) and retry"
                         : "";
  return arrow::Status::IOError(what, " '", path, "': ", ErrnoText(err), hint);
}

// Write all of `data` to a new file and, when `sync`, fsync it. On an error the
// file is removed.
arrow::Status WriteNewLocalFile(const std::string& path, std::string_view data, bool sync) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot create", path);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      auto st = ErrnoError("cannot write", path);
      ::close(fd);
      ::unlink(path.c_str());
      return st;
    }
    done += static_cast<size_t>(n);
  }
  if (sync && ::fsync(fd) != 0) {
    auto st = ErrnoError("cannot sync", path);
    ::close(fd);
    ::unlink(path.c_str());
    return st;
  }
  ::close(fd);
  return arrow::Status::OK();
}

// fsync an existing file or folder by path. fsync through any descriptor of a
// file writes back all of its dirty pages, so a read-only one does.
arrow::Status FsyncPath(const std::string& path, bool dir) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
  if (fd < 0) return ErrnoError(dir ? "cannot open folder to sync" : "cannot open to sync", path);
  int rc;
  do {
    rc = ::fsync(fd);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    auto st = ErrnoError(dir ? "cannot sync folder" : "cannot sync", path);
    ::close(fd);
    return st;
  }
  ::close(fd);
  return arrow::Status::OK();
}

}  // namespace

std::string ParentDir(const std::string& path) {
  auto pos = path.rfind('/');
  if (pos == std::string::npos) return ".";
  return pos == 0 ? "/" : path.substr(0, pos);
}

std::string NewUuid() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t a = rng(), b = rng();
  a = (a & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;  // version 4
  b = (b & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;  // variant 1
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xFFFF), static_cast<unsigned>(a & 0xFFFF),
                static_cast<unsigned>(b >> 48),
                static_cast<unsigned long long>(b & 0xFFFFFFFFFFFFULL));
  return buf;
}

LogStore::LogStore(std::shared_ptr<arrow::fs::FileSystem> fs, std::string table_root)
    : fs_(std::move(fs)), root_(std::move(table_root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

LocalLogStore::LocalLogStore(std::shared_ptr<arrow::fs::FileSystem> fs, std::string table_root,
                             bool sync)
    : LogStore(std::move(fs), std::move(table_root)), sync_(sync) {}

ObjectStoreLogStore::ObjectStoreLogStore(std::shared_ptr<arrow::fs::FileSystem> fs,
                                         std::string table_root)
    : LogStore(std::move(fs), std::move(table_root)) {}

std::unique_ptr<LogStore> MakeLogStore(std::shared_ptr<arrow::fs::FileSystem> fs,
                                       std::string table_root, bool sync) {
  if (fs->type_name() == "local") {
    return std::make_unique<LocalLogStore>(std::move(fs), std::move(table_root), sync);
  }
  if (fs->type_name() == "s3") {
    if (auto conn = S3ConnectionOf(*fs); conn.ok()) {
      if (!conn->commit_coordinator.empty()) {
        return std::make_unique<CoordinatedLogStore>(std::move(fs), std::move(table_root),
                                                     conn->commit_coordinator);
      }
      return std::make_unique<S3LogStore>(std::move(fs), std::move(table_root), *conn);
    }
  }
  return std::make_unique<ObjectStoreLogStore>(std::move(fs), std::move(table_root));
}

std::string LogStore::CommitPath(int64_t version) const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020lld.json", static_cast<long long>(version));
  return log_dir() + "/" + buf;
}

namespace {

arrow::Status LogDirIsAFile(const std::string& root, const std::string& log_dir) {
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kTableNotFound,
                   "no Delta table at '" + root + "': '" + log_dir + "' is a file, not a folder");
}

// Names of the regular files in a local folder, without stat()ing each one (a log
// with 10,000 commits has 11,000 entries; only a few need their times).
arrow::Result<std::optional<std::vector<std::string>>> LocalFileNames(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return std::optional<std::vector<std::string>>();
    if (errno == ENOTDIR) return arrow::Status::Invalid("not a directory");
    return ErrnoError("cannot list", dir);
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_type == DT_REG || e->d_type == DT_UNKNOWN || e->d_type == DT_LNK)
      names.emplace_back(e->d_name);
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) {
    errno = err;
    return ErrnoError("cannot list", dir);
  }
  return std::optional<std::vector<std::string>>(std::move(names));
}

}  // namespace

arrow::Result<int64_t> LogStore::ModificationTime(const LogFile& file) const {
  if (file.mtime_ms >= 0) return file.mtime_ms;
  ARROW_ASSIGN_OR_RAISE(auto info, fs_->GetFileInfo(file.path));
  if (info.type() == arrow::fs::FileType::NotFound) {
    return MakeError(arrow::StatusCode::IOError, ErrorKind::kCorruptLog,
                     "Delta log file '" + file.path + "' disappeared while reading the log");
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(info.mtime().time_since_epoch())
      .count();
}

arrow::Result<LogListing> LocalLogStore::List() const {
  LogListing out;
  auto names = LocalFileNames(log_dir());
  if (!names.ok()) {
    if (names.status().message() == "not a directory") return LogDirIsAFile(root(), log_dir());
    return names.status();
  }
  if (!*names) return out;  // no _delta_log
  out.log_dir_exists = true;
  std::vector<std::pair<std::string, int64_t>> entries;
  for (auto& n : **names) entries.emplace_back(std::move(n), -1);
  Classify(entries, &out);
  return out;
}

arrow::Result<LogListing> LogStore::List() const {
  LogListing out;
  ARROW_ASSIGN_OR_RAISE(auto dir_info, fs_->GetFileInfo(log_dir()));
  if (dir_info.type() == arrow::fs::FileType::File) return LogDirIsAFile(root_, log_dir());
  out.log_dir_exists = dir_info.IsDirectory();
  if (!out.log_dir_exists) return out;
  arrow::fs::FileSelector sel;
  sel.base_dir = log_dir();
  sel.allow_not_found = true;
  ARROW_ASSIGN_OR_RAISE(auto infos, fs_->GetFileInfo(sel));
  // (name, mtime in ms)
  std::vector<std::pair<std::string, int64_t>> entries;
  for (const auto& info : infos) {
    if (!info.IsFile()) continue;
    entries.emplace_back(info.base_name(), std::chrono::duration_cast<std::chrono::milliseconds>(
                                               info.mtime().time_since_epoch())
                                               .count());
  }
  Classify(entries, &out);
  return out;
}

void LogStore::Classify(const std::vector<std::pair<std::string, int64_t>>& entries,
                        LogListing* listing) const {
  LogListing& out = *listing;
  for (const auto& [name, mtime] : entries) {
    if (name.size() < 21 || !AllDigits(std::string_view(name).substr(0, 20)) || name[20] != '.') {
      continue;
    }
    LogFile f;
    f.version = std::stoll(name.substr(0, 20));
    f.path = log_dir() + "/" + name;
    f.mtime_ms = mtime;
    std::string_view rest = std::string_view(name).substr(21);
    if (rest == "json") {
      f.kind = LogFile::Kind::kCommit;
      out.commits[f.version] = f;
    } else if (rest == "checkpoint.parquet") {
      f.kind = LogFile::Kind::kCheckpoint;
      out.checkpoints[f.version].push_back(f);
    } else if (rest.rfind("checkpoint.", 0) == 0) {
      std::string_view tail = rest.substr(11);
      // Multi-part: checkpoint.<part:10>.<parts:10>.parquet
      if (tail.size() == 10 + 1 + 10 + 8 && AllDigits(tail.substr(0, 10)) &&
          AllDigits(tail.substr(11, 10)) && tail.substr(21) == ".parquet") {
        f.kind = LogFile::Kind::kMultiPartCheckpoint;
        f.part = std::stoi(std::string(tail.substr(0, 10)));
        f.num_parts = std::stoi(std::string(tail.substr(11, 10)));
        out.checkpoints[f.version].push_back(f);
      } else if (tail.size() > 5 && (tail.ends_with(".json") || tail.ends_with(".parquet"))) {
        f.kind = LogFile::Kind::kV2Checkpoint;  // checkpoint.<uuid>.(json|parquet)
        out.checkpoints[f.version].push_back(f);
      }
    }
    // .crc, compacted logs and temporary files are ignored.
  }
}

arrow::Result<std::string> LogStore::Read(const std::string& path) const {
  auto file = fs_->OpenInputFile(path);
  if (!file.ok()) {
    return MakeError(arrow::StatusCode::IOError, ErrorKind::kCorruptLog,
                     "cannot open Delta log file '" + path + "': " + file.status().message());
  }
  ARROW_ASSIGN_OR_RAISE(auto size, (*file)->GetSize());
  ARROW_ASSIGN_OR_RAISE(auto buf, (*file)->ReadAt(0, size));
  return buf->ToString();
}

arrow::Status LocalLogStore::PutIfAbsent(const std::string& path, std::string_view data) const {
  std::string tmp = ParentDir(path) + "/." + NewUuid() + ".tmp";
  ARROW_RETURN_NOT_OK(WriteNewLocalFile(tmp, data, sync_));
  int rc = ::link(tmp.c_str(), path.c_str());
  int err = errno;
  ::unlink(tmp.c_str());
  if (rc != 0) {
    if (err == EEXIST) return arrow::Status::AlreadyExists("'", path, "' already exists");
    errno = err;
    return ErrnoError("cannot commit", path);
  }
  // The new entry must be on disk before the commit is acknowledged.
  return SyncDir(ParentDir(path));
}

arrow::Status LocalLogStore::PutAtomic(const std::string& path, std::string_view data) const {
  std::string tmp = ParentDir(path) + "/." + NewUuid() + ".tmp";
  ARROW_RETURN_NOT_OK(WriteNewLocalFile(tmp, data, sync_));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto st = ErrnoError("cannot rename into", path);
    ::unlink(tmp.c_str());
    return st;
  }
  return SyncDir(ParentDir(path));
}

arrow::Status LocalLogStore::SyncFile(const std::string& path) const {
  return sync_ ? FsyncPath(path, false) : arrow::Status::OK();
}

arrow::Status LocalLogStore::SyncDir(const std::string& dir) const {
  return sync_ ? FsyncPath(dir, true) : arrow::Status::OK();
}

arrow::Status ObjectStoreLogStore::PutIfAbsent(const std::string& path,
                                               std::string_view data) const {
  // No conditional put in arrow::fs yet; check-then-write is racy and is replaced
  // by a conditional PUT in the object-store issue.
  ARROW_ASSIGN_OR_RAISE(auto info, fs()->GetFileInfo(path));
  if (info.type() != arrow::fs::FileType::NotFound) {
    return arrow::Status::AlreadyExists("'", path, "' already exists");
  }
  return PutAtomic(path, data);
}

arrow::Status ObjectStoreLogStore::PutAtomic(const std::string& path, std::string_view data) const {
  auto st = [&]() -> arrow::Status {
    ARROW_ASSIGN_OR_RAISE(auto out, fs()->OpenOutputStream(path));
    ARROW_RETURN_NOT_OK(out->Write(data.data(), static_cast<int64_t>(data.size())));
    return out->Close();
  }();
  return IoErrorOnPath(st, "cannot write", path);
}

arrow::Status ObjectStoreLogStore::SyncFile(const std::string&) const {
  return arrow::Status::OK();
}

arrow::Status ObjectStoreLogStore::SyncDir(const std::string&) const { return arrow::Status::OK(); }

}  // namespace stratalake::delta
