#include "storage/file_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <list>
#include <mutex>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/io/file.h>
#include <arrow/memory_pool.h>
#include <arrow/util/future.h>

#include "storage/log_store.h"
#include "storage/object_store.h"
#include "storage/s3_client.h"
#include "stratalake/object_store.h"

namespace stratalake {

namespace {

namespace stdfs = std::filesystem;

// Range requests in flight at once, over all fetches of the process.
constexpr int kFetchThreads = 8;
// A fetch splits a file into about this many range requests, each between
// kMinChunk and kMaxChunk bytes (the sizes AWS advises for range GETs; fewer,
// larger requests cost less CPU per byte than 1 MiB ones, here and in the
// server).
constexpr int64_t kChunksPerFile = 4;
constexpr int64_t kMinChunk = 4 << 20;
constexpr int64_t kMaxChunk = 8 << 20;
// A fetch receives its file into memory (readers are served from there) and
// writes it to the cache file from there, with O_DIRECT where the cache disk
// takes it: the page cache is not filled with a second copy, whose allocation
// and copy cost about as much CPU as receiving the bytes. The memory of the
// fetches in flight is bounded by ReadCacheOptions::fetch_memory; a fetch that does not fit
// receives straight into its cache file and is read through a mapping of it.
constexpr int64_t kDefaultFetchMemory = 512 << 20;
// O_DIRECT writes are made in multiples of this, from addresses aligned to it.
constexpr int64_t kDirectAlign = 4096;
// Temporary files older than this in the cache folder were left by a process
// that died while fetching; they are removed when the cache is configured.
constexpr auto kStalePart = std::chrono::hours(1);

// `text`, the value of the environment variable `name`, as a number of bytes.
arrow::Result<int64_t> ParseSize(const std::string& text, const char* name) {
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
    return arrow::Status::Invalid(name, "='", text,
                                  "' is not a size: write bytes, or a number with K, M or G");
  }
  if (v < 0) return arrow::Status::Invalid(name, " must not be negative");
  return static_cast<int64_t>(v * static_cast<double>(mult));
}

// `given` when set (>= 0), else the environment variable `name`, else `fallback`.
arrow::Result<int64_t> SizeSetting(int64_t given, const char* name, int64_t fallback) {
  if (given >= 0) return given;
  const char* env = std::getenv(name);
  if (env == nullptr || *env == '\0') return fallback;
  return ParseSize(env, name);
}

// A read-only shared mapping of a cache file being fetched; the buffers
// sliced from it keep it alive, and it is unmapped when the last goes.
class Mapping : public arrow::Buffer {
 public:
  Mapping(const uint8_t* data, int64_t size) : arrow::Buffer(data, size) {}
  ~Mapping() override { ::munmap(const_cast<uint8_t*>(data_), static_cast<size_t>(size_)); }
};

std::atomic<int64_t> fetch_memory{0};  // bytes of the FetchMemory alive
std::atomic<int64_t> fetch_memory_limit{kDefaultFetchMemory};

int64_t RoundUp(int64_t n, int64_t to) { return (n + to - 1) / to * to; }

// The memory a fetch receives its file into (from Arrow's memory pool, which
// reuses it from fetch to fetch; aligned to kDirectAlign and as long as the
// file rounded up to it, so that O_DIRECT may write whole blocks; the bytes
// past the file's end are never read); it lives while readers hold slices of
// it.
class FetchMemory : public arrow::MutableBuffer {
 public:
  // Null when the bound on fetch memory or the memory pool has no room.
  static std::shared_ptr<FetchMemory> Make(int64_t size) {
    const int64_t len = RoundUp(size, kDirectAlign);
    if (fetch_memory.fetch_add(len) + len > fetch_memory_limit.load()) {
      fetch_memory.fetch_sub(len);
      return nullptr;
    }
    auto buf = arrow::AllocateBuffer(len, kDirectAlign);
    if (!buf.ok()) {
      fetch_memory.fetch_sub(len);
      return nullptr;
    }
    return std::shared_ptr<FetchMemory>(new FetchMemory(std::move(*buf), size));
  }
  ~FetchMemory() override { fetch_memory.fetch_sub(buf_->size()); }

 private:
  FetchMemory(std::unique_ptr<arrow::Buffer> buf, int64_t size)
      : arrow::MutableBuffer(buf->mutable_data(), size), buf_(std::move(buf)) {}
  std::unique_ptr<arrow::Buffer> buf_;
};

// One file being fetched into the cache: range request by range request, its
// bytes land in memory (`memory`, then written from there into the temporary
// file that becomes the cached copy) or, when the fetch memory is spent,
// straight into that file; they are readable (from the memory, or a mapping of
// the file) as soon as they have landed. Fields below `state` are guarded by
// the Fetcher's mutex.
struct Fetch {
  std::string key;   // the cache's name for the file
  std::string tmp;   // the temporary file being written
  std::string dest;  // where it goes when complete
  uint64_t generation = 0;
  std::shared_ptr<arrow::io::RandomAccessFile> remote;
  int64_t size = 0;
  int64_t chunk = 0;
  int n_chunks = 0;
  int fd = -1;
  int direct_fd = -1;                   // the same file opened with O_DIRECT, or -1
  std::shared_ptr<FetchMemory> memory;  // where the bytes land, or null
  std::shared_ptr<arrow::Buffer> map;   // what readers slice: `memory` or a mapping

  enum : char { kPending, kRequested, kLanded };
  std::vector<char> state;
  std::deque<int> urgent;  // chunks a reader waits for, first come first
  int next = 0;            // position in the fetch order: the last chunk, then 0, 1, ...
  int in_flight = 0;
  int landed = 0;
  arrow::Status error;        // the first failed request; no more are made
  arrow::Status write_error;  // the first failed write of `memory` to the file
  bool done = false;          // every request has returned
  struct Waiter {
    int64_t pos, n;
    arrow::Future<std::shared_ptr<arrow::Buffer>> future;
  };
  std::vector<Waiter> waiters;

  bool Covered(int64_t pos, int64_t n) const {
    if (n <= 0) return true;
    for (int64_t c = pos / chunk; c <= (pos + n - 1) / chunk; ++c) {
      if (state[static_cast<size_t>(c)] != kLanded) return false;
    }
    return true;
  }
  std::shared_ptr<arrow::Buffer> Slice(int64_t pos, int64_t n) const {
    return arrow::SliceBuffer(map, pos, n);
  }
};

void FetchDone(const Fetch& f, bool ok);  // tells the cache (below)

// Runs the range requests of all fetches on kFetchThreads threads: chunks a
// reader is waiting for first, then the fetches in the order they started
// (the order a scan reads its files in), each in file order after its last
// chunk (where Parquet's footer is).
class Fetcher;
Fetcher& TheFetcher();

class Fetcher {
 public:
  void Start(const std::shared_ptr<Fetch>& f) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      // A process exiting waits for the files whose bytes have all landed to
      // be written into the cache (its readers may be done before that).
      static const bool drains = std::atexit([] { TheFetcher().Drain(); }) == 0;
      (void)drains;
      active_.push_back(f);
      while (threads_ < kFetchThreads) {
        std::thread([this] { Work(); }).detach();
        threads_++;
      }
    }
    work_cv_.notify_all();
  }

  arrow::Result<std::shared_ptr<arrow::Buffer>> Read(const std::shared_ptr<Fetch>& f, int64_t pos,
                                                     int64_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!f->Covered(pos, n)) {
      if (!f->error.ok()) return f->error;
      PrioritizeLocked(*f, pos, n);
      land_cv_.wait(lock, [&] { return f->Covered(pos, n) || !f->error.ok(); });
      if (!f->Covered(pos, n)) return f->error;
    }
    return f->Slice(pos, n);
  }

  arrow::Future<std::shared_ptr<arrow::Buffer>> ReadAsync(const std::shared_ptr<Fetch>& f,
                                                          int64_t pos, int64_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    if (f->Covered(pos, n))
      return arrow::Future<std::shared_ptr<arrow::Buffer>>::MakeFinished(f->Slice(pos, n));
    if (!f->error.ok())
      return arrow::Future<std::shared_ptr<arrow::Buffer>>::MakeFinished(f->error);
    auto future = arrow::Future<std::shared_ptr<arrow::Buffer>>::Make();
    f->waiters.push_back(Fetch::Waiter{pos, n, future});
    PrioritizeLocked(*f, pos, n);
    return future;
  }

  void Prioritize(const std::shared_ptr<Fetch>& f, int64_t pos, int64_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    PrioritizeLocked(*f, pos, n);
  }

 private:
  void PrioritizeLocked(Fetch& f, int64_t pos, int64_t n) {
    if (n <= 0 || !f.error.ok()) return;
    bool added = false;
    for (int64_t c = pos / f.chunk; c <= (pos + n - 1) / f.chunk; ++c) {
      if (f.state[static_cast<size_t>(c)] == Fetch::kPending) {
        f.urgent.push_back(static_cast<int>(c));
        added = true;
      }
    }
    if (added) work_cv_.notify_all();
  }

  // The next chunk to request, or false when there is none.
  bool PickLocked(std::shared_ptr<Fetch>* out, int* chunk) {
    for (auto& f : active_) {
      while (f->error.ok() && !f->urgent.empty()) {
        int c = f->urgent.front();
        f->urgent.pop_front();
        if (f->state[static_cast<size_t>(c)] == Fetch::kPending) {
          *out = f;
          *chunk = c;
          return true;
        }
      }
    }
    for (auto it = active_.begin(); it != active_.end();) {
      auto& f = *it;
      while (f->error.ok() && f->next < f->n_chunks) {
        int c = f->next == 0 ? f->n_chunks - 1 : f->next - 1;
        f->next++;
        if (f->state[static_cast<size_t>(c)] == Fetch::kPending) {
          *out = f;
          *chunk = c;
          return true;
        }
      }
      // Nothing left to request (its urgent list is empty too): forget it.
      it = active_.erase(it);
    }
    return false;
  }

  void Work() {
    // Without fetch memory, each request is written into the file with pwrite
    // as it arrives (S3) or received into this buffer first (other
    // filesystems): cheaper than receiving into a writable file mapping, whose
    // every page would fault twice (read, then make writable).
    std::vector<uint8_t> buf;
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      std::shared_ptr<Fetch> f;
      int c = 0;
      if (!PickLocked(&f, &c)) {
        work_cv_.wait(lock);
        continue;
      }
      f->state[static_cast<size_t>(c)] = Fetch::kRequested;
      f->in_flight++;
      lock.unlock();
      const int64_t off = c * f->chunk;
      const int64_t len = std::min(f->chunk, f->size - off);
      uint8_t* mem = f->memory ? f->memory->mutable_data() : nullptr;
      auto* s3 = dynamic_cast<S3DataFile*>(f->remote.get());
      arrow::Status st;
      if (s3 != nullptr) {
        // Copied from curl's buffer as the bytes arrive.
        int64_t at = off;
        st = s3->Stream(off, len, [&](const uint8_t* data, int64_t n) {
          if (at + n > off + len) {
            return arrow::Status::IOError("the store sent more bytes than the range asked for");
          }
          if (mem != nullptr) {
            std::memcpy(mem + at, data, static_cast<size_t>(n));
          } else {
            ARROW_RETURN_NOT_OK(WriteAll(f->fd, data, n, at, f->tmp));
          }
          at += n;
          return arrow::Status::OK();
        });
      } else {
        if (mem == nullptr) buf.resize(static_cast<size_t>(kMaxChunk));
        uint8_t* into = mem != nullptr ? mem + off : buf.data();
        auto got = f->remote->ReadAt(off, len, into);
        st = got.status();
        if (st.ok() && *got != len) {
          st = arrow::Status::IOError("the object is shorter (", off + *got,
                                      " bytes or fewer) than its size in the Delta log (", f->size,
                                      " bytes)");
        }
        if (st.ok() && mem == nullptr) st = WriteAll(f->fd, buf.data(), len, off, f->tmp);
      }
      Landed(f, c, st);
      if (st.ok() && mem != nullptr) {
        // Readers have the bytes; the writer thread makes the cached copy,
        // while this thread goes on to the next request.
        std::lock_guard<std::mutex> wlock(write_mu_);
        writes_.push_back(Write{f, off, len});
        if (!writer_) {
          std::thread([this] { WriteWork(); }).detach();
          writer_ = true;
        }
        write_cv_.notify_one();
      } else {
        Settled(f, arrow::Status::OK());
      }
      lock.lock();
    }
  }

  // Writes the landed bytes of fetches into their cache files, in the order
  // they landed. A failed write costs the cache its copy, not the readers
  // their bytes.
  void WriteWork() {
    std::unique_lock<std::mutex> lock(write_mu_);
    while (true) {
      if (writes_.empty()) {
        write_cv_.wait(lock);
        continue;
      }
      Write w = std::move(writes_.front());
      writes_.pop_front();
      lock.unlock();
      Settled(w.f, WriteChunk(*w.f, w.off, w.len));
      w.f.reset();
      lock.lock();
    }
  }

  // The bytes of a request have landed (or failed): wake the readers of them.
  void Landed(const std::shared_ptr<Fetch>& f, int c, const arrow::Status& st) {
    std::vector<std::pair<arrow::Future<std::shared_ptr<arrow::Buffer>>,
                          arrow::Result<std::shared_ptr<arrow::Buffer>>>>
        ready;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (st.ok()) {
        f->state[static_cast<size_t>(c)] = Fetch::kLanded;
        f->landed++;
        if (f->landed == f->n_chunks) unwritten_++;
      } else {
        f->state[static_cast<size_t>(c)] = Fetch::kPending;
        if (f->error.ok()) f->error = st;
        f->urgent.clear();
      }
      for (auto it = f->waiters.begin(); it != f->waiters.end();) {
        if (f->Covered(it->pos, it->n)) {
          ready.emplace_back(it->future, f->Slice(it->pos, it->n));
        } else if (!f->error.ok()) {
          ready.emplace_back(it->future, f->error);
        } else {
          ++it;
          continue;
        }
        it = f->waiters.erase(it);
      }
    }
    land_cv_.notify_all();
    for (auto& [future, result] : ready) future.MarkFinished(std::move(result));
  }

  // A request is over, its bytes written to the cache file (or not: `written`).
  void Settled(const std::shared_ptr<Fetch>& f, const arrow::Status& written) {
    bool finish = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      f->in_flight--;
      if (!written.ok() && f->write_error.ok()) f->write_error = written;
      if (!f->done && f->in_flight == 0 && (f->landed == f->n_chunks || !f->error.ok())) {
        f->done = true;
        finish = true;
        active_.remove(f);  // nothing more to request; its memory goes with its readers
      }
    }
    if (finish) {
      Finish(*f);
      if (f->landed == f->n_chunks) {
        std::lock_guard<std::mutex> lock(mu_);
        unwritten_--;
        drain_cv_.notify_all();
      }
    }
  }

  // Waits (10 s at most) until every file whose bytes have all landed is in
  // the cache (or given up); fetches still receiving bytes are left.
  void Drain() {
    std::unique_lock<std::mutex> lock(mu_);
    drain_cv_.wait_for(lock, std::chrono::seconds(10), [&] { return unwritten_ == 0; });
  }

  static arrow::Status WriteAll(int fd, const uint8_t* data, int64_t n, int64_t off,
                                const std::string& name) {
    while (n > 0) {
      ssize_t w = ::pwrite(fd, data, static_cast<size_t>(n), static_cast<off_t>(off));
      if (w < 0) {
        if (errno == EINTR) continue;
        return arrow::Status::IOError("cannot write the read cache file '", name,
                                      "': ", std::strerror(errno));
      }
      data += w;
      n -= w;
      off += w;
    }
    return arrow::Status::OK();
  }

  // Writes bytes [off, off + len) of the fetch memory into the cache file:
  // with O_DIRECT in whole blocks (what a file's last block holds past its
  // end is cut off: Finish truncates the file to its size), else through the
  // page cache.
  static arrow::Status WriteChunk(Fetch& f, int64_t off, int64_t len) {
    const uint8_t* data = f.memory->data() + off;
    if (f.direct_fd >= 0) {
      const int64_t n = RoundUp(len, kDirectAlign);
      int64_t done = 0;
      while (done < n) {
        ssize_t w = ::pwrite(f.direct_fd, data + done, static_cast<size_t>(n - done),
                             static_cast<off_t>(off + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0 || w % kDirectAlign != 0) break;  // the rest through the page cache
        done += w;
      }
      if (done >= len) return arrow::Status::OK();
      data += done;
      off += done;
      len -= done;
    }
    return WriteAll(f.fd, data, len, off, f.tmp);
  }

  // Every request has returned: the cache keeps the file, or throws it away.
  static void Finish(Fetch& f) {
    bool ok = f.error.ok() && f.write_error.ok();
    if (ok && f.direct_fd >= 0 && ::ftruncate(f.fd, static_cast<off_t>(f.size)) != 0) ok = false;
    if (f.direct_fd >= 0) ::close(f.direct_fd);
    f.direct_fd = -1;
    ::close(f.fd);
    f.fd = -1;
    f.remote.reset();
    FetchDone(f, ok);
  }

  std::mutex mu_;
  std::condition_variable work_cv_;   // a chunk may be there to request
  std::condition_variable land_cv_;   // a chunk has landed or failed
  std::condition_variable drain_cv_;  // a file whose bytes had all landed is done
  std::list<std::shared_ptr<Fetch>> active_;
  int unwritten_ = 0;  // fetches with all their bytes landed, not yet done
  int threads_ = 0;

  struct Write {
    std::shared_ptr<Fetch> f;
    int64_t off, len;
  };
  std::mutex write_mu_;  // guards the three below
  std::condition_variable write_cv_;
  std::deque<Write> writes_;
  bool writer_ = false;
};

Fetcher& TheFetcher() {
  static auto* f = new Fetcher();
  return *f;
}

// A cached file while it is being fetched: reads wait only for the range
// requests that cover them, and are served from the mapping without a copy.
class FetchingFile : public arrow::io::RandomAccessFile {
 public:
  explicit FetchingFile(std::shared_ptr<Fetch> f) : f_(std::move(f)) {}

  arrow::Status Close() override {
    closed_ = true;
    return arrow::Status::OK();
  }
  bool closed() const override { return closed_; }
  arrow::Result<int64_t> Tell() const override { return pos_; }
  arrow::Status Seek(int64_t pos) override {
    if (pos < 0) return arrow::Status::Invalid("negative position");
    pos_ = pos;
    return arrow::Status::OK();
  }
  arrow::Result<int64_t> GetSize() override { return f_->size; }

  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadAt(int64_t pos, int64_t n) override {
    ARROW_ASSIGN_OR_RAISE(n, Clamp(pos, n));
    return TheFetcher().Read(f_, pos, n);
  }
  arrow::Result<int64_t> ReadAt(int64_t pos, int64_t n, void* out) override {
    ARROW_ASSIGN_OR_RAISE(auto buf, ReadAt(pos, n));
    if (buf->size() > 0) std::memcpy(out, buf->data(), static_cast<size_t>(buf->size()));
    return buf->size();
  }
  arrow::Result<std::shared_ptr<arrow::Buffer>> Read(int64_t n) override {
    ARROW_ASSIGN_OR_RAISE(auto buf, ReadAt(pos_, n));
    pos_ += buf->size();
    return buf;
  }
  arrow::Result<int64_t> Read(int64_t n, void* out) override {
    ARROW_ASSIGN_OR_RAISE(int64_t got, ReadAt(pos_, n, out));
    pos_ += got;
    return got;
  }
  arrow::Future<std::shared_ptr<arrow::Buffer>> ReadAsync(const arrow::io::IOContext&, int64_t pos,
                                                          int64_t n) override {
    auto clamped = Clamp(pos, n);
    if (!clamped.ok()) {
      return arrow::Future<std::shared_ptr<arrow::Buffer>>::MakeFinished(clamped.status());
    }
    return TheFetcher().ReadAsync(f_, pos, *clamped);
  }
  arrow::Status WillNeed(const std::vector<arrow::io::ReadRange>& ranges) override {
    for (const auto& r : ranges) {
      auto n = Clamp(r.offset, r.length);
      if (n.ok()) TheFetcher().Prioritize(f_, r.offset, *n);
    }
    return arrow::Status::OK();
  }

 private:
  arrow::Result<int64_t> Clamp(int64_t pos, int64_t n) const {
    if (closed_) return arrow::Status::Invalid("operation on a closed file");
    if (pos < 0 || n < 0) return arrow::Status::Invalid("negative position or length");
    if (pos > f_->size) return arrow::Status::IOError("read past the end of the file");
    return std::min(n, f_->size - pos);
  }

  std::shared_ptr<Fetch> f_;
  int64_t pos_ = 0;
  bool closed_ = false;
};

// The file itself, read from its store: S3 objects by our own range GETs
// (s3_client.h), unless STRATALAKE_S3_DATA_READS=arrow asks for Arrow's S3
// client (to compare them); other filesystems through Arrow.
arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenRemote(arrow::fs::FileSystem& fs,
                                                                       const std::string& path,
                                                                       int64_t known_size) {
  static const bool arrow_reads = [] {
    const char* v = std::getenv("STRATALAKE_S3_DATA_READS");
    return v != nullptr && std::string(v) == "arrow";
  }();
  if (fs.type_name() == "s3" && !arrow_reads) {
    ARROW_ASSIGN_OR_RAISE(S3Connection conn, SignedS3Connection(fs));
    return S3DataFile::Open(std::move(conn), path, known_size);
  }
  if (known_size > 0) {
    arrow::fs::FileInfo info(path, arrow::fs::FileType::File);
    info.set_size(known_size);
    return fs.OpenInputFile(info);
  }
  return fs.OpenInputFile(path);
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
    std::string key, file, dir;
    int64_t max_bytes = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!configured_) ARROW_RETURN_NOT_OK(ConfigureLocked(ReadCacheOptions{}));
      max_bytes = max_bytes_;
      if (max_bytes_ > 0) {
        key = KeyOf(fs, path);
        dir = dir_;
        file = dir_ + "/" + key;
        if (auto hit = OpenCachedLocked(key, file)) return hit;
      }
    }
    ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::io::RandomAccessFile> remote,
                          OpenRemote(fs, path, known_size));
    // The add action's size is the file's (an object store's file trusts it).
    int64_t size = known_size;
    if (size <= 0) {
      ARROW_ASSIGN_OR_RAISE(size, remote->GetSize());
    }
    // Off, empty, or too large to keep: read remotely.
    if (key.empty() || size == 0 || size > max_bytes / 4) {
      CountMiss(size);
      return remote;
    }
    // The temporary file that becomes the cached copy, mapped for readers. Its
    // blocks are allocated first: a full disk fails here, not while fetching.
    auto f = std::make_shared<Fetch>();
    f->key = key;
    f->dest = file;
    f->tmp = dir + "/." + delta::NewUuid() + ".part";
    f->remote = remote;
    f->size = size;
    // Chunks start on kDirectAlign boundaries (O_DIRECT writes them).
    f->chunk =
        RoundUp(std::clamp((size + kChunksPerFile - 1) / kChunksPerFile, kMinChunk, kMaxChunk),
                kDirectAlign);
    f->n_chunks = static_cast<int>((size + f->chunk - 1) / f->chunk);
    f->state.assign(static_cast<size_t>(f->n_chunks), Fetch::kPending);
    if (!PrepareTemp(*f)) {
      CountMiss(size);
      return remote;  // a full or broken cache disk: read remotely
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Another thread may have cached it or started fetching it meanwhile.
      std::shared_ptr<arrow::io::RandomAccessFile> other;
      if (max_bytes_ == 0 || dir_ != dir) {
        other = remote;  // reconfigured meanwhile
      } else {
        other = OpenCachedLocked(key, file);
      }
      if (!other && !ReserveLocked(size)) other = remote;  // no room (fetches in flight)
      if (other) {
        if (other == remote) {
          misses_++;
          miss_bytes_ += static_cast<uint64_t>(size);
        }
        DiscardTemp(*f);
        return other;
      }
      misses_++;
      miss_bytes_ += static_cast<uint64_t>(size);
      f->generation = generation_;
      in_flight_[key] = f;
    }
    TheFetcher().Start(f);
    return std::make_shared<FetchingFile>(f);
  }

  // A fetch has ended, complete (ok) or not: move its file into place and
  // index it, or remove it (in one step, as seen from other threads).
  void Done(const Fetch& f, bool ok) {
    std::lock_guard<std::mutex> lock(mu_);
    if (f.generation != generation_) ok = false;  // reconfigured meanwhile
    if (ok && ::rename(f.tmp.c_str(), f.dest.c_str()) != 0) ok = false;
    if (!ok) ::unlink(f.tmp.c_str());  // an open mapping stays valid
    if (f.generation != generation_) return;
    in_flight_.erase(f.key);
    reserved_ -= f.size;
    if (ok && index_.find(f.key) == index_.end()) {
      lru_.push_back(f.key);
      index_[f.key] = Entry{f.size, std::prev(lru_.end())};
      bytes_cached_ += f.size;
      EvictLocked(0);
    }
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
    s.fetch_memory_bytes = fetch_memory.load();
    return s;
  }

 private:
  struct Entry {
    int64_t size;
    std::list<std::string>::iterator pos;
  };

  void CountMiss(int64_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    misses_++;
    miss_bytes_ += static_cast<uint64_t>(size);
  }

  // The cached copy of `key` (mapped), or the fetch of it in flight; null if neither.
  std::shared_ptr<arrow::io::RandomAccessFile> OpenCachedLocked(const std::string& key,
                                                                const std::string& file) {
    auto it = index_.find(key);
    if (it != index_.end()) {
      auto mapped = arrow::io::MemoryMappedFile::Open(file, arrow::io::FileMode::READ);
      if (mapped.ok()) {
        lru_.splice(lru_.end(), lru_, it->second.pos);  // most recent last
        hits_++;
        hit_bytes_ += static_cast<uint64_t>(it->second.size);
        return *mapped;
      }
      // Removed behind our back: forget it and fetch again.
      bytes_cached_ -= it->second.size;
      lru_.erase(it->second.pos);
      index_.erase(it);
    }
    auto fl = in_flight_.find(key);
    if (fl != in_flight_.end()) {
      hits_++;
      hit_bytes_ += static_cast<uint64_t>(fl->second->size);
      return std::make_shared<FetchingFile>(fl->second);
    }
    return nullptr;
  }

  // Room for `size` more bytes under the bound, counting the files being
  // fetched, evicting the least recently used files if need be.
  bool ReserveLocked(int64_t size) {
    if (reserved_ + size > max_bytes_) return false;
    EvictLocked(reserved_ + size);
    if (bytes_cached_ + reserved_ + size > max_bytes_) return false;
    reserved_ += size;
    return true;
  }

  static bool PrepareTemp(Fetch& f) {
    f.fd = ::open(f.tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (f.fd < 0) return false;
    if (::posix_fallocate(f.fd, 0, static_cast<off_t>(f.size)) != 0) {
      DiscardTemp(f);
      return false;
    }
    f.memory = FetchMemory::Make(f.size);
    if (f.memory) {
      f.map = f.memory;
#ifdef O_DIRECT
      // A filesystem without O_DIRECT (tmpfs) is written through the page cache.
      f.direct_fd = ::open(f.tmp.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
#endif
      return true;
    }
    void* p = ::mmap(nullptr, static_cast<size_t>(f.size), PROT_READ, MAP_SHARED, f.fd, 0);
    if (p == MAP_FAILED) {
      DiscardTemp(f);
      return false;
    }
    f.map = std::make_shared<Mapping>(static_cast<const uint8_t*>(p), f.size);
    return true;
  }

  static void DiscardTemp(Fetch& f) {
    f.map.reset();
    f.memory.reset();
    if (f.direct_fd >= 0) ::close(f.direct_fd);
    f.direct_fd = -1;
    if (f.fd >= 0) ::close(f.fd);
    f.fd = -1;
    ::unlink(f.tmp.c_str());
  }

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
    ARROW_ASSIGN_OR_RAISE(int64_t max,
                          SizeSetting(options.max_bytes, "STRATALAKE_CACHE_SIZE", 4LL << 30));
    ARROW_ASSIGN_OR_RAISE(
        int64_t fetch,
        SizeSetting(options.fetch_memory, "STRATALAKE_CACHE_FETCH_MEMORY", kDefaultFetchMemory));
    fetch_memory_limit = fetch;
    configured_ = true;
    generation_++;  // fetches in flight finish without entering the new index
    dir_ = dir;
    max_bytes_ = max;
    index_.clear();
    lru_.clear();
    in_flight_.clear();
    bytes_cached_ = 0;
    reserved_ = 0;
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
    const auto now = stdfs::file_time_type::clock::now();
    for (const auto& e : stdfs::directory_iterator(dir_, ec)) {
      std::string name = e.path().filename().string();
      if (!e.is_regular_file() || name.empty()) continue;
      if (name[0] == '.') {
        // A fetch's temporary file, left by a process that died while fetching.
        if (name.size() > 5 && name.compare(name.size() - 5, 5, ".part") == 0 &&
            now - e.last_write_time() > kStalePart) {
          ::unlink(e.path().c_str());
        }
        continue;
      }
      found.emplace_back(e.last_write_time(), name, static_cast<int64_t>(e.file_size()));
    }
    std::sort(found.begin(), found.end());
    for (const auto& [t, name, size] : found) {
      lru_.push_back(name);
      index_[name] = Entry{size, std::prev(lru_.end())};
      bytes_cached_ += size;
    }
    EvictLocked(0);
    return arrow::Status::OK();
  }

  // Evict least recently used files until `extra` more bytes fit under the bound.
  void EvictLocked(int64_t extra) {
    while (bytes_cached_ + extra > max_bytes_ && !lru_.empty()) {
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

  std::mutex mu_;
  bool configured_ = false;
  uint64_t generation_ = 0;
  std::string dir_;
  int64_t max_bytes_ = 0;
  std::list<std::string> lru_;  // least recently used first
  std::unordered_map<std::string, Entry> index_;
  std::unordered_map<std::string, std::shared_ptr<Fetch>> in_flight_;
  int64_t bytes_cached_ = 0;  // files in the index
  int64_t reserved_ = 0;      // files being fetched
  uint64_t hits_ = 0, misses_ = 0, hit_bytes_ = 0, miss_bytes_ = 0, evictions_ = 0;
};

Cache& TheCache() {
  static auto* c = new Cache();
  return *c;
}

void FetchDone(const Fetch& f, bool ok) { TheCache().Done(f, ok); }

}  // namespace

arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenRemoteDataFile(
    arrow::fs::FileSystem& fs, const std::string& path, int64_t size) {
  return TheCache().Open(fs, path, size);
}

bool ReadCacheEnabled() { return TheCache().Stats().max_bytes > 0; }

arrow::Status ConfigureReadCache(const ReadCacheOptions& options) {
  return TheCache().Configure(options);
}

ReadCacheStats GetReadCacheStats() { return TheCache().Stats(); }

}  // namespace stratalake
