#include "storage/fault_injection_fs.h"

#include <cerrno>
#include <chrono>
#include <functional>
#include <random>
#include <set>

#include <arrow/buffer.h>
#include <arrow/io/interfaces.h>
#include <arrow/io/memory.h>
#include <arrow/util/io_util.h>

#include "common/os_error.h"

namespace stratalake::delta {

struct FaultInjectionFileSystem::Node {
  bool is_dir = false;
  std::string data;    // files: the bytes as the process sees them
  std::string synced;  // files: the bytes a power cut keeps
  std::map<std::string, std::shared_ptr<Node>> entries;         // folders: as seen
  std::map<std::string, std::shared_ptr<Node>> synced_entries;  // folders: kept at a cut
  int64_t mtime_ns = 0;
};

namespace {

using Node = FaultInjectionFileSystem::Node;

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (!part.empty() && part != ".") parts.push_back(std::move(part));
    start = end + 1;
  }
  return parts;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

arrow::Status NotFound(const std::string& path) {
  return arrow::internal::IOErrorFromErrno(ENOENT, "'", path, "' does not exist");
}

}  // namespace

class FaultInjectionFileSystem::Stream : public arrow::io::OutputStream {
 public:
  Stream(FaultInjectionFileSystem* fs, std::shared_ptr<Node> node, std::string path)
      : fs_(fs), node_(std::move(node)), path_(std::move(path)) {}
  ~Stream() override = default;

  arrow::Status Close() override {
    std::lock_guard<std::mutex> lock(fs_->mu_);
    if (closed_) return arrow::Status::OK();
    closed_ = true;
    return fs_->CheckPower("close", path_);
  }
  bool closed() const override { return closed_; }
  arrow::Result<int64_t> Tell() const override { return position_; }
  arrow::Status Write(const void* data, int64_t nbytes) override {
    std::lock_guard<std::mutex> lock(fs_->mu_);
    if (closed_) return arrow::Status::Invalid("write to closed file '", path_, "'");
    ARROW_RETURN_NOT_OK(fs_->Tick("write", path_));
    auto before = static_cast<int64_t>(node_->data.size());
    auto st = fs_->Append(*node_, path_, data, nbytes);
    position_ += static_cast<int64_t>(node_->data.size()) - before;
    return st;
  }

 private:
  FaultInjectionFileSystem* fs_;
  std::shared_ptr<Node> node_;
  std::string path_;
  int64_t position_ = 0;
  bool closed_ = false;
};

FaultInjectionFileSystem::FaultInjectionFileSystem() : root_(std::make_shared<Node>()) {
  root_->is_dir = true;
}

FaultInjectionFileSystem::~FaultInjectionFileSystem() = default;

std::shared_ptr<Node> FaultInjectionFileSystem::Find(const std::string& path) const {
  auto node = root_;
  for (const auto& part : Split(path)) {
    if (!node->is_dir) return nullptr;
    auto it = node->entries.find(part);
    if (it == node->entries.end()) return nullptr;
    node = it->second;
  }
  return node;
}

arrow::Result<std::shared_ptr<Node>> FaultInjectionFileSystem::ParentOf(const std::string& path,
                                                                        std::string* name) const {
  auto parts = Split(path);
  if (parts.empty()) return arrow::Status::Invalid("'", path, "' is the root folder");
  *name = parts.back();
  auto node = root_;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    auto it = node->entries.find(parts[i]);
    if (it == node->entries.end() || !it->second->is_dir) return NotFound(path);
    node = it->second;
  }
  return node;
}

arrow::Status FaultInjectionFileSystem::CheckPower(const std::string& what,
                                                   const std::string& path) const {
  if (power_off_) {
    return arrow::Status::IOError("simulated power cut: ", what, " '", path, "' failed");
  }
  return arrow::Status::OK();
}

arrow::Status FaultInjectionFileSystem::Tick(const std::string& what, const std::string& path) {
  ARROW_RETURN_NOT_OK(CheckPower(what, path));
  if (ops_left_ == 0) {
    power_off_ = true;
    return CheckPower(what, path);
  }
  if (ops_left_ > 0) --ops_left_;
  ++ops_;
  return arrow::Status::OK();
}

arrow::Status FaultInjectionFileSystem::Append(Node& file, const std::string& path,
                                               const void* data, int64_t n) {
  int64_t fits = space_left_ < 0 ? n : std::min(n, space_left_);
  file.data.append(static_cast<const char*>(data), static_cast<size_t>(fits));
  file.mtime_ns = NowNs();
  if (space_left_ >= 0) space_left_ -= fits;
  if (fits < n) {
    // As arrow's local files say it (the errno travels in the status detail).
    return arrow::internal::IOErrorFromErrno(ENOSPC, "Error writing bytes to file");
  }
  (void)path;
  return arrow::Status::OK();
}

arrow::Result<arrow::fs::FileInfo> FaultInjectionFileSystem::GetFileInfo(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  ARROW_RETURN_NOT_OK(CheckPower("stat", path));
  auto node = Find(path);
  if (!node) return arrow::fs::FileInfo(path, arrow::fs::FileType::NotFound);
  arrow::fs::FileInfo info(
      path, node->is_dir ? arrow::fs::FileType::Directory : arrow::fs::FileType::File);
  if (!node->is_dir) info.set_size(static_cast<int64_t>(node->data.size()));
  info.set_mtime(arrow::fs::TimePoint(std::chrono::nanoseconds(node->mtime_ns)));
  return info;
}

arrow::Result<arrow::fs::FileInfoVector> FaultInjectionFileSystem::GetFileInfo(
    const arrow::fs::FileSelector& select) {
  std::lock_guard<std::mutex> lock(mu_);
  ARROW_RETURN_NOT_OK(CheckPower("list", select.base_dir));
  arrow::fs::FileInfoVector out;
  auto node = Find(select.base_dir);
  if (!node) {
    if (select.allow_not_found) return out;
    return NotFound(select.base_dir);
  }
  if (!node->is_dir) {
    return arrow::internal::IOErrorFromErrno(ENOTDIR, "'", select.base_dir, "' is not a folder");
  }
  std::string base = select.base_dir;
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::function<void(const Node&, const std::string&, int32_t)> walk =
      [&](const Node& dir, const std::string& prefix, int32_t depth) {
        for (const auto& [name, child] : dir.entries) {
          arrow::fs::FileInfo info(prefix + "/" + name, child->is_dir
                                                            ? arrow::fs::FileType::Directory
                                                            : arrow::fs::FileType::File);
          if (!child->is_dir) info.set_size(static_cast<int64_t>(child->data.size()));
          info.set_mtime(arrow::fs::TimePoint(std::chrono::nanoseconds(child->mtime_ns)));
          out.push_back(std::move(info));
          if (child->is_dir && select.recursive && depth < select.max_recursion) {
            walk(*child, prefix + "/" + name, depth + 1);
          }
        }
      };
  walk(*node, base, 0);
  return out;
}

arrow::Status FaultInjectionFileSystem::CreateDir(const std::string& path, bool recursive) {
  std::lock_guard<std::mutex> lock(mu_);
  auto parts = Split(path);
  auto node = root_;
  for (size_t i = 0; i < parts.size(); ++i) {
    auto it = node->entries.find(parts[i]);
    if (it != node->entries.end()) {
      if (!it->second->is_dir) {
        return arrow::internal::IOErrorFromErrno(EEXIST, "'", path, "': a file is in the way");
      }
      node = it->second;
      continue;
    }
    if (!recursive && i + 1 < parts.size()) return NotFound(path);
    ARROW_RETURN_NOT_OK(Tick("mkdir", path));
    auto dir = std::make_shared<Node>();
    dir->is_dir = true;
    dir->mtime_ns = NowNs();
    node->entries[parts[i]] = dir;
    node = dir;
  }
  return arrow::Status::OK();
}

arrow::Status FaultInjectionFileSystem::DeleteDir(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string name;
  ARROW_ASSIGN_OR_RAISE(auto parent, ParentOf(path, &name));
  auto it = parent->entries.find(name);
  if (it == parent->entries.end() || !it->second->is_dir) return NotFound(path);
  ARROW_RETURN_NOT_OK(Tick("rmdir", path));
  parent->entries.erase(it);
  return arrow::Status::OK();
}

arrow::Status FaultInjectionFileSystem::DeleteDirContents(const std::string& path,
                                                          bool missing_dir_ok) {
  std::lock_guard<std::mutex> lock(mu_);
  auto node = Find(path);
  if (!node || !node->is_dir) return missing_dir_ok ? arrow::Status::OK() : NotFound(path);
  ARROW_RETURN_NOT_OK(Tick("empty folder", path));
  node->entries.clear();
  return arrow::Status::OK();
}

arrow::Status FaultInjectionFileSystem::DeleteRootDirContents() {
  return DeleteDirContents("/", false);
}

arrow::Status FaultInjectionFileSystem::DeleteFile(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string name;
  ARROW_ASSIGN_OR_RAISE(auto parent, ParentOf(path, &name));
  auto it = parent->entries.find(name);
  if (it == parent->entries.end() || it->second->is_dir) return NotFound(path);
  ARROW_RETURN_NOT_OK(Tick("unlink", path));
  parent->entries.erase(it);
  return arrow::Status::OK();
}

arrow::Status FaultInjectionFileSystem::Move(const std::string& src, const std::string& dest) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string from_name, to_name;
  ARROW_ASSIGN_OR_RAISE(auto from, ParentOf(src, &from_name));
  ARROW_ASSIGN_OR_RAISE(auto to, ParentOf(dest, &to_name));
  auto it = from->entries.find(from_name);
  if (it == from->entries.end()) return NotFound(src);
  ARROW_RETURN_NOT_OK(Tick("rename", src));
  auto node = it->second;
  from->entries.erase(it);
  to->entries[to_name] = node;
  return arrow::Status::OK();
}

arrow::Status FaultInjectionFileSystem::CopyFile(const std::string& src, const std::string& dest) {
  std::lock_guard<std::mutex> lock(mu_);
  auto node = Find(src);
  if (!node || node->is_dir) return NotFound(src);
  std::string name;
  ARROW_ASSIGN_OR_RAISE(auto parent, ParentOf(dest, &name));
  ARROW_RETURN_NOT_OK(Tick("copy", dest));
  auto copy = std::make_shared<Node>();
  copy->mtime_ns = NowNs();
  parent->entries[name] = copy;
  return Append(*copy, dest, node->data.data(), static_cast<int64_t>(node->data.size()));
}

arrow::Result<std::shared_ptr<arrow::io::InputStream>> FaultInjectionFileSystem::OpenInputStream(
    const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(auto file, OpenInputFile(path));
  return file;
}

arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> FaultInjectionFileSystem::OpenInputFile(
    const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  ARROW_RETURN_NOT_OK(CheckPower("open", path));
  auto node = Find(path);
  if (!node || node->is_dir) return NotFound(path);
  return std::make_shared<arrow::io::BufferReader>(arrow::Buffer::FromString(node->data));
}

arrow::Result<std::shared_ptr<arrow::io::OutputStream>> FaultInjectionFileSystem::OpenOutputStream(
    const std::string& path, const std::shared_ptr<const arrow::KeyValueMetadata>&) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string name;
  ARROW_ASSIGN_OR_RAISE(auto parent, ParentOf(path, &name));
  auto it = parent->entries.find(name);
  if (it != parent->entries.end() && it->second->is_dir) {
    return arrow::internal::IOErrorFromErrno(EISDIR, "'", path, "' is a folder");
  }
  ARROW_RETURN_NOT_OK(Tick("create", path));
  std::shared_ptr<Node> node;
  if (it != parent->entries.end()) {
    node = it->second;  // truncated in place, as O_TRUNC does
    node->data.clear();
  } else {
    node = std::make_shared<Node>();
    parent->entries[name] = node;
  }
  node->mtime_ns = NowNs();
  return std::make_shared<Stream>(this, node, path);
}

arrow::Result<std::shared_ptr<arrow::io::OutputStream>> FaultInjectionFileSystem::OpenAppendStream(
    const std::string& path, const std::shared_ptr<const arrow::KeyValueMetadata>&) {
  return arrow::Status::NotImplemented("append streams in the fault-injecting filesystem");
}

arrow::Status FaultInjectionFileSystem::SyncFile(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  auto node = Find(path);
  if (!node || node->is_dir) return NotFound(path);
  ARROW_RETURN_NOT_OK(Tick("sync", path));
  node->synced = node->data;
  return arrow::Status::OK();
}

arrow::Status FaultInjectionFileSystem::SyncDir(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  auto node = Find(path);
  if (!node || !node->is_dir) return NotFound(path);
  ARROW_RETURN_NOT_OK(Tick("sync folder", path));
  node->synced_entries = node->entries;
  return arrow::Status::OK();
}

arrow::Status FaultInjectionFileSystem::Link(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> lock(mu_);
  auto node = Find(from);
  if (!node || node->is_dir) return NotFound(from);
  std::string name;
  ARROW_ASSIGN_OR_RAISE(auto parent, ParentOf(to, &name));
  ARROW_RETURN_NOT_OK(Tick("link", to));
  if (parent->entries.count(name)) return arrow::Status::AlreadyExists("'", to, "' already exists");
  parent->entries[name] = node;
  return arrow::Status::OK();
}

void FaultInjectionFileSystem::FailAfterOps(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  ops_left_ = n;
}

bool FaultInjectionFileSystem::power_off() const {
  std::lock_guard<std::mutex> lock(mu_);
  return power_off_;
}

void FaultInjectionFileSystem::SetSpaceLimit(int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  space_left_ = bytes;
}

int64_t FaultInjectionFileSystem::ops() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ops_;
}

void FaultInjectionFileSystem::PowerCut(uint64_t seed) {
  std::lock_guard<std::mutex> lock(mu_);
  std::mt19937_64 rng(seed);
  std::function<void(Node&)> cut = [&](Node& dir) {
    std::set<std::string> names;
    for (const auto& e : dir.entries) names.insert(e.first);
    for (const auto& e : dir.synced_entries) names.insert(e.first);
    std::map<std::string, std::shared_ptr<Node>> kept;
    for (const auto& name : names) {
      auto live = dir.entries.count(name) ? dir.entries[name] : nullptr;
      auto durable = dir.synced_entries.count(name) ? dir.synced_entries[name] : nullptr;
      // An unsynced change may or may not have reached the disk.
      auto chosen = live == durable ? live : ((rng() & 1) ? live : durable);
      if (chosen) kept[name] = chosen;
    }
    dir.entries = kept;
    dir.synced_entries = kept;
    for (auto& [name, child] : kept) {
      if (child->is_dir) {
        cut(*child);
      } else {
        child->data = child->synced;
      }
    }
  };
  cut(*root_);
  power_off_ = false;
  ops_left_ = -1;
  space_left_ = -1;
}

std::vector<std::string> FaultInjectionFileSystem::AllFiles() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  std::function<void(const Node&, const std::string&)> walk = [&](const Node& dir,
                                                                  const std::string& prefix) {
    for (const auto& [name, child] : dir.entries) {
      if (child->is_dir) {
        walk(*child, prefix + "/" + name);
      } else {
        out.push_back(prefix + "/" + name);
      }
    }
  };
  walk(*root_, "");
  return out;
}

// ---- FaultInjectionLogStore ---------------------------------------------------

FaultInjectionLogStore::FaultInjectionLogStore(std::shared_ptr<FaultInjectionFileSystem> fs,
                                               std::string table_root)
    : LogStore(fs, std::move(table_root)), ffs_(*fs) {}

arrow::Status FaultInjectionLogStore::WriteSynced(const std::string& path,
                                                  std::string_view data) const {
  auto st = [&]() -> arrow::Status {
    ARROW_ASSIGN_OR_RAISE(auto out, ffs_.OpenOutputStream(path));
    auto written = out->Write(data.data(), static_cast<int64_t>(data.size()));
    auto closed = out->Close();
    ARROW_RETURN_NOT_OK(written);
    ARROW_RETURN_NOT_OK(closed);
    return ffs_.SyncFile(path);
  }();
  if (!st.ok()) {
    (void)ffs_.DeleteFile(path);
    return IoErrorOnPath(st, "cannot write", path);
  }
  return st;
}

arrow::Status FaultInjectionLogStore::PutIfAbsent(const std::string& path,
                                                  std::string_view data) const {
  std::string tmp = ParentDir(path) + "/." + NewUuid() + ".tmp";
  ARROW_RETURN_NOT_OK(WriteSynced(tmp, data));
  auto linked = ffs_.Link(tmp, path);
  (void)ffs_.DeleteFile(tmp);
  ARROW_RETURN_NOT_OK(linked);
  return SyncDir(ParentDir(path));
}

arrow::Status FaultInjectionLogStore::PutAtomic(const std::string& path,
                                                std::string_view data) const {
  std::string tmp = ParentDir(path) + "/." + NewUuid() + ".tmp";
  ARROW_RETURN_NOT_OK(WriteSynced(tmp, data));
  auto moved = ffs_.Move(tmp, path);
  if (!moved.ok()) {
    (void)ffs_.DeleteFile(tmp);
    return moved;
  }
  return SyncDir(ParentDir(path));
}

arrow::Status FaultInjectionLogStore::SyncFile(const std::string& path) const {
  return ffs_.SyncFile(path);
}

arrow::Status FaultInjectionLogStore::SyncDir(const std::string& dir) const {
  return ffs_.SyncDir(dir);
}

}  // namespace stratalake::delta
