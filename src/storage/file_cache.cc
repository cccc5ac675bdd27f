#include "storage/file_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <list>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/io/file.h>
#include <arrow/util/future.h>

#include "storage/log_store.h"
#include "storage/object_store.h"
#include "stratalake/object_store.h"

namespace stratalake {

namespace {

namespace stdfs = std::filesystem;

constexpr int64_t kChunk = 8 << 20;  // bytes per range request of a fetch

arrow::Result<int64_t> ParseSize(const std::string& text) {
  if (text.empty()) return arrow::Status::Invalid("empty size");
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  std::string unit(end);
  int64_t mult = 1;
  if (unit == "" || unit == "B") {
  } else if (unit == "K" || unit == "KB" || unit == "KiB") {
    mult = 1 << 10;
  } else if (unit == "M" || unit == "MB" || unit == "MiB") {
    mult = 1 << 20;
  } else if (unit == "G" || unit == "GB" || unit == "GiB") {
    mult = 1LL << 30;
  } else {
    return arrow::Status::Invalid("STRATALAKE_CACHE_SIZE='", text,
                                  "' is not a size: write bytes, or a number with K, M or G");
  }
  if (v < 0) return arrow::Status::Invalid("STRATALAKE_CACHE_SIZE must not be negative");
  return static_cast<int64_t>(v * static_cast<double>(mult));
}

class Cache {
 public:
  arrow::Status Configure(const ReadCacheOptions& options) {
    std::lock_guard<std::mutex> lock(mu_);
    return ConfigureLocked(options);
  }

  arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> Open(arrow::fs::FileSystem& fs,
                                                                   const std::string& path,
                                                                   int64_t known_size) {
    std::string key, file;
    int64_t max_bytes = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!configured_) ARROW_RETURN_NOT_OK(ConfigureLocked(ReadCacheOptions{}));
      max_bytes = max_bytes_;
      if (max_bytes_ > 0) {
        key = KeyOf(fs, path);
        file = dir_ + "/" + key;
        auto it = index_.find(key);
        if (it != index_.end()) {
          auto mapped = arrow::io::MemoryMappedFile::Open(file, arrow::io::FileMode::READ);
          if (mapped.ok()) {
            lru_.splice(lru_.end(), lru_, it->second.pos);  // most recent last
            hits_++;
            hit_bytes_ += static_cast<uint64_t>(it->second.size);
            return std::shared_ptr<arrow::io::RandomAccessFile>(*mapped);
          }
          // Removed behind our back: forget it and fetch again.
          bytes_cached_ -= it->second.size;
          lru_.erase(it->second.pos);
          index_.erase(it);
        }
      }
    }
    std::shared_ptr<arrow::io::RandomAccessFile> remote;
    if (known_size > 0) {
      arrow::fs::FileInfo info(path, arrow::fs::FileType::File);
      info.set_size(known_size);
      ARROW_ASSIGN_OR_RAISE(remote, fs.OpenInputFile(info));
    } else {
      ARROW_ASSIGN_OR_RAISE(remote, fs.OpenInputFile(path));
    }
    ARROW_ASSIGN_OR_RAISE(int64_t size, remote->GetSize());
    {
      std::lock_guard<std::mutex> lock(mu_);
      misses_++;
      miss_bytes_ += static_cast<uint64_t>(size);
    }
    if (key.empty() || size > max_bytes / 4) return remote;  // off, or too large to keep
    auto fetched = Fetch(*remote, size, file);
    if (!fetched.ok()) return remote;  // a full or broken cache disk: read remotely
    std::lock_guard<std::mutex> lock(mu_);
    if (index_.find(key) == index_.end()) {
      lru_.push_back(key);
      index_[key] = Entry{size, std::prev(lru_.end())};
      bytes_cached_ += size;
      EvictLocked();
    }
    return *fetched;
  }

  ReadCacheStats Stats() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!configured_) (void)ConfigureLocked(ReadCacheOptions{});
    ReadCacheStats s;
    s.hits = hits_;
    s.misses = misses_;
    s.hit_bytes = hit_bytes_;
    s.miss_bytes = miss_bytes_;
    s.evictions = evictions_;
    s.bytes_cached = bytes_cached_;
    s.max_bytes = max_bytes_;
    return s;
  }

 private:
  struct Entry {
    int64_t size;
    std::list<std::string>::iterator pos;
  };

  arrow::Status ConfigureLocked(const ReadCacheOptions& options) {
    std::string dir = options.dir;
    const bool explicit_dir = !dir.empty();
    if (dir.empty()) {
      const char* env = std::getenv("STRATALAKE_CACHE_DIR");
      if (env && *env) {
        dir = env;
      } else {
        const char* xdg = std::getenv("XDG_CACHE_HOME");
        const char* home = std::getenv("HOME");
        dir = xdg && *xdg ? std::string(xdg) : std::string(home ? home : "/tmp") + "/.cache";
        dir += "/stratalake/files";
      }
    }
    int64_t max = options.max_bytes;
    if (max < 0) {
      const char* env = std::getenv("STRATALAKE_CACHE_SIZE");
      if (env && *env) {
        ARROW_ASSIGN_OR_RAISE(max, ParseSize(env));
      } else {
        max = 4LL << 30;
      }
    }
    configured_ = true;
    dir_ = dir;
    max_bytes_ = max;
    index_.clear();
    lru_.clear();
    bytes_cached_ = 0;
    if (max_bytes_ == 0) return arrow::Status::OK();
    std::error_code ec;
    stdfs::create_directories(dir_, ec);
    if (ec) {
      // No cache rather than no reads: remote files are then read remotely.
      max_bytes_ = 0;
      return explicit_dir ? arrow::Status::IOError("cannot create the read cache folder '", dir_,
                                                   "': ", ec.message())
                          : arrow::Status::OK();
    }
    // Files cached by earlier processes, oldest first.
    std::vector<std::tuple<stdfs::file_time_type, std::string, int64_t>> found;
    for (const auto& e : stdfs::directory_iterator(dir_, ec)) {
      std::string name = e.path().filename().string();
      if (!e.is_regular_file() || name.empty() || name[0] == '.') continue;
      found.emplace_back(e.last_write_time(), name, static_cast<int64_t>(e.file_size()));
    }
    std::sort(found.begin(), found.end());
    for (const auto& [t, name, size] : found) {
      lru_.push_back(name);
      index_[name] = Entry{size, std::prev(lru_.end())};
      bytes_cached_ += size;
    }
    EvictLocked();
    return arrow::Status::OK();
  }

  void EvictLocked() {
    while (bytes_cached_ > max_bytes_ && !lru_.empty()) {
      const std::string& victim = lru_.front();
      auto it = index_.find(victim);
      bytes_cached_ -= it->second.size;
      ::unlink((dir_ + "/" + victim).c_str());  // an open mapping stays valid
      index_.erase(it);
      lru_.pop_front();
      evictions_++;
    }
  }

  // A file name for (store, path): a hash plus the file's own name, so that
  // the folder stays readable.
  static std::string KeyOf(arrow::fs::FileSystem& fs, const std::string& path) {
    std::string store = fs.type_name();
    if (auto conn = S3ConnectionOf(fs); conn.ok()) store = conn->endpoint_url;
    size_t h = std::hash<std::string>{}(store + "\n" + path);
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016zx-", h);
    std::string base = path.substr(path.rfind('/') + 1);
    for (char& c : base) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) {
        c = '_';
      }
    }
    if (base.size() > 120) base.resize(120);
    return buf + base;
  }

  // Fetch the whole file with parallel range requests into `dest` (via a
  // temporary file renamed into place) and map it.
  arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> Fetch(
      arrow::io::RandomAccessFile& remote, int64_t size, const std::string& dest) {
    std::vector<arrow::Future<std::shared_ptr<arrow::Buffer>>> parts;
    for (int64_t off = 0; off < size; off += kChunk) {
      parts.push_back(remote.ReadAsync(off, std::min(kChunk, size - off)));
    }
    std::string tmp = ParentDir(dest) + "/." + delta::NewUuid() + ".part";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
      for (auto& p : parts) (void)p.status();
      return arrow::Status::IOError("cannot create '", tmp, "'");
    }
    arrow::Status st;
    for (auto& p : parts) {
      auto buf = p.result();
      if (!st.ok()) continue;
      if (!buf.ok()) {
        st = buf.status();
        continue;
      }
      const uint8_t* data = (*buf)->data();
      int64_t left = (*buf)->size();
      while (left > 0) {
        ssize_t n = ::write(fd, data, static_cast<size_t>(left));
        if (n < 0) {
          if (errno == EINTR) continue;
          st = arrow::Status::IOError("cannot write '", tmp, "'");
          break;
        }
        data += n;
        left -= n;
      }
    }
    ::close(fd);
    if (st.ok() && ::rename(tmp.c_str(), dest.c_str()) != 0) {
      st = arrow::Status::IOError("cannot rename into '", dest, "'");
    }
    if (!st.ok()) {
      ::unlink(tmp.c_str());
      return st;
    }
    ARROW_ASSIGN_OR_RAISE(auto mapped,
                          arrow::io::MemoryMappedFile::Open(dest, arrow::io::FileMode::READ));
    return std::shared_ptr<arrow::io::RandomAccessFile>(mapped);
  }

  static std::string ParentDir(const std::string& p) { return p.substr(0, p.rfind('/')); }

  std::mutex mu_;
  bool configured_ = false;
  std::string dir_;
  int64_t max_bytes_ = 0;
  std::list<std::string> lru_;  // least recently used first
  std::unordered_map<std::string, Entry> index_;
  int64_t bytes_cached_ = 0;
  uint64_t hits_ = 0, misses_ = 0, hit_bytes_ = 0, miss_bytes_ = 0, evictions_ = 0;
};

Cache& TheCache() {
  static auto* c = new Cache();
  return *c;
}

}  // namespace

arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenRemoteDataFile(
    arrow::fs::FileSystem& fs, const std::string& path, int64_t size) {
  return TheCache().Open(fs, path, size);
}

arrow::Status ConfigureReadCache(const ReadCacheOptions& options) {
  return TheCache().Configure(options);
}

ReadCacheStats GetReadCacheStats() { return TheCache().Stats(); }

}  // namespace stratalake
