// The read cache (file_cache.h) on a filesystem with latency: Arrow's
// SlowFileSystem over the local disk, so that a fetch is still in flight when
// a second reader comes. The S3 end to end tests are in
// tests/python/test_object_store.py.
#include "storage/file_cache.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <arrow/filesystem/localfs.h>
#include <arrow/util/future.h>
#include <gtest/gtest.h>

#include "../../tests/test_util.h"
#include "stratalake/object_store.h"

namespace stratalake {
namespace {

namespace stdfs = std::filesystem;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// Files in the cache folder: complete ones, and temporary ones of fetches.
struct Folder {
  std::vector<std::string> files;
  std::vector<std::string> parts;
  int64_t bytes = 0;
};
Folder ListCache(const std::string& dir) {
  Folder f;
  for (const auto& e : stdfs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name[0] == '.') {
      f.parts.push_back(name);
    } else {
      f.files.push_back(e.path().string());
      f.bytes += static_cast<int64_t>(e.file_size());
    }
  }
  return f;
}

// Waits (up to a minute) until no fetch writes into `dir`.
void WaitForFetches(const std::string& dir) {
  for (int i = 0; i < 6000 && !ListCache(dir).parts.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// Until the memory of fetches in flight is `bytes` (fetch threads let go of a
// finished fetch just after it is renamed into place).
void WaitForFetchMemory(int64_t bytes) {
  for (int i = 0; i < 500 && GetReadCacheStats().fetch_memory_bytes != bytes; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string ReadAll(arrow::io::RandomAccessFile& f, int64_t size) {
  auto buf = f.ReadAt(0, size);
  EXPECT_TRUE(buf.ok()) << buf.status().ToString();
  return buf.ok() ? (*buf)->ToString() : std::string();
}

class ReadCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stdfs::create_directories(dir_.Join("store"));
    slow_ = Slow(0.2);
  }
  // The local disk, with `latency` seconds (on average) before each read.
  static std::shared_ptr<arrow::fs::FileSystem> Slow(double latency) {
    return std::make_shared<arrow::fs::SlowFileSystem>(
        std::make_shared<arrow::fs::LocalFileSystem>(), latency, /*seed=*/7);
  }
  void TearDown() override { ASSERT_TRUE(ConfigureReadCache({dir_.Join("off"), 0}).ok()); }

  std::string Cache() const { return dir_.Join("cache"); }
  std::string Put(const std::string& name, const std::string& data) {
    std::string path = dir_.Join("store/" + name);
    WriteFile(path, data);
    return path;
  }

  testing::TempDir dir_;
  std::shared_ptr<arrow::fs::FileSystem> slow_;
};

TEST_F(ReadCacheTest, TwoReadersOfAFileBeingFetchedShareOneFetch) {
  ASSERT_TRUE(ConfigureReadCache({Cache(), 64 << 20}).ok());
  const std::string data = RandomBytes((5 << 20) + 12345, 1);
  const int64_t size = static_cast<int64_t>(data.size());
  const std::string path = Put("a.parquet", data);
  const ReadCacheStats before = GetReadCacheStats();

  // The first open starts the fetch and returns; the second joins it.
  auto a = OpenRemoteDataFile(*slow_, path, size);
  auto b = OpenRemoteDataFile(*slow_, path, size);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  ReadCacheStats s = GetReadCacheStats();
  EXPECT_EQ(s.misses - before.misses, 1u);
  EXPECT_EQ(s.hits - before.hits, 1u);
  EXPECT_EQ(s.miss_bytes - before.miss_bytes, static_cast<uint64_t>(size));

  // Both read at once: one the tail (where Parquet's footer is) asynchronously,
  // then all of it; the other all of it, from another thread.
  auto tail = (*a)->ReadAsync(arrow::io::IOContext(), size - 1000, 1000);
  std::string from_b;
  std::thread tb([&] { from_b = ReadAll(**b, size); });
  auto tail_buf = tail.result();
  ASSERT_TRUE(tail_buf.ok()) << tail_buf.status().ToString();
  EXPECT_EQ((*tail_buf)->ToString(), data.substr(data.size() - 1000));
  EXPECT_EQ(ReadAll(**a, size), data);
  tb.join();
  EXPECT_EQ(from_b, data);
  // Past the end: the bytes there are.
  auto past = (*a)->ReadAt(size - 10, 100);
  ASSERT_TRUE(past.ok());
  EXPECT_EQ((*past)->size(), 10);

  // The fetch ends with the file cached once, whole.
  WaitForFetches(Cache());
  Folder f = ListCache(Cache());
  ASSERT_EQ(f.files.size(), 1u);
  EXPECT_TRUE(f.parts.empty());
  std::ifstream in(f.files[0], std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), data);
  s = GetReadCacheStats();
  EXPECT_EQ(s.bytes_cached, size);

  // A third reader opens the cached copy: no fetch.
  auto c = OpenRemoteDataFile(*slow_, path, size);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(ReadAll(**c, size), data);
  ReadCacheStats after = GetReadCacheStats();
  EXPECT_EQ(after.misses, s.misses);
  EXPECT_EQ(after.hits, s.hits + 1);
}

TEST_F(ReadCacheTest, AFailedFetchLeavesNoCacheEntry) {
  ASSERT_TRUE(ConfigureReadCache({Cache(), 64 << 20}).ok());
  const std::string data = RandomBytes(3 << 20, 2);
  const std::string path = Put("b.parquet", data);
  const int64_t size = static_cast<int64_t>(data.size());

  // The log says the file is larger than the object is: the requests past its
  // end come back short, and the fetch fails.
  const int64_t claimed = size + (2 << 20);
  auto a = OpenRemoteDataFile(*slow_, path, claimed);
  auto b = OpenRemoteDataFile(*slow_, path, claimed);
  ASSERT_TRUE(a.ok() && b.ok());
  auto all = (*a)->ReadAt(0, claimed);
  ASSERT_FALSE(all.ok());
  EXPECT_NE(all.status().message().find("shorter"), std::string::npos) << all.status().ToString();
  // The reader that joined the fetch gets the same error.
  auto from_b = (*b)->ReadAt(0, claimed);
  ASSERT_FALSE(from_b.ok());
  EXPECT_EQ(from_b.status().message(), all.status().message());
  WaitForFetches(Cache());
  Folder f = ListCache(Cache());
  EXPECT_TRUE(f.files.empty());
  EXPECT_TRUE(f.parts.empty());
  EXPECT_EQ(GetReadCacheStats().bytes_cached, 0);

  // A file that is not there fails to open, and leaves nothing either.
  auto missing = OpenRemoteDataFile(*slow_, dir_.Join("store/missing.parquet"), 1 << 20);
  EXPECT_FALSE(missing.ok());

  // With its true size the next open fetches it again, and keeps it.
  const uint64_t misses = GetReadCacheStats().misses;
  auto c = OpenRemoteDataFile(*slow_, path, size);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(ReadAll(**c, size), data);
  EXPECT_EQ(GetReadCacheStats().misses, misses + 1);
  WaitForFetches(Cache());
  f = ListCache(Cache());
  ASSERT_EQ(f.files.size(), 1u);
  EXPECT_EQ(f.bytes, size);
}

TEST_F(ReadCacheTest, AFetchBeyondTheFetchMemoryLandsInItsCacheFile) {
  // Room in the fetch memory for one file of 5 MiB and a bit: the first fetch
  // lands in memory, the second (started while the first holds it) in its file.
  ReadCacheOptions o{Cache(), 64 << 20};
  o.fetch_memory = 6 << 20;
  ASSERT_TRUE(ConfigureReadCache(o).ok());
  WaitForFetchMemory(0);  // what earlier tests fetched is given back
  ASSERT_EQ(GetReadCacheStats().fetch_memory_bytes, 0);
  const std::string a_data = RandomBytes((5 << 20) + 12345, 3);
  const std::string b_data = RandomBytes((5 << 20) + 777, 4);
  const int64_t a_size = static_cast<int64_t>(a_data.size());
  const int64_t b_size = static_cast<int64_t>(b_data.size());
  const std::string a_path = Put("a.parquet", a_data);
  const std::string b_path = Put("b.parquet", b_data);
  {
    auto a = OpenRemoteDataFile(*slow_, a_path, a_size);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    // The memory rounded up to whole blocks of 4 KiB (O_DIRECT writes them).
    const int64_t a_memory = (a_size + 4095) / 4096 * 4096;
    EXPECT_EQ(GetReadCacheStats().fetch_memory_bytes, a_memory);
    auto b = OpenRemoteDataFile(*slow_, b_path, b_size);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    EXPECT_EQ(GetReadCacheStats().fetch_memory_bytes, a_memory);
    std::string from_b;
    std::thread tb([&] { from_b = ReadAll(**b, b_size); });
    EXPECT_EQ(ReadAll(**a, a_size), a_data);
    tb.join();
    EXPECT_EQ(from_b, b_data);
    WaitForFetches(Cache());
  }
  // The readers gone and the fetches over, the memory is given back (once the
  // fetch threads let go of the fetch), and both files are cached whole (the
  // one written with O_DIRECT cut to its size).
  WaitForFetchMemory(0);
  EXPECT_EQ(GetReadCacheStats().fetch_memory_bytes, 0);
  Folder f = ListCache(Cache());
  ASSERT_EQ(f.files.size(), 2u);
  EXPECT_EQ(f.bytes, a_size + b_size);
  for (const auto& [path, size, data] :
       {std::tuple(a_path, a_size, a_data), std::tuple(b_path, b_size, b_data)}) {
    auto cached = OpenRemoteDataFile(*slow_, path, size);
    ASSERT_TRUE(cached.ok());
    EXPECT_EQ(ReadAll(**cached, size), data);
  }

  // No fetch memory at all: every fetch lands in its file, and reads the same.
  o.dir = dir_.Join("cache2");
  o.fetch_memory = 0;
  ASSERT_TRUE(ConfigureReadCache(o).ok());
  auto c = OpenRemoteDataFile(*slow_, a_path, a_size);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(GetReadCacheStats().fetch_memory_bytes, 0);
  EXPECT_EQ(ReadAll(**c, a_size), a_data);
  WaitForFetches(dir_.Join("cache2"));
  Folder g = ListCache(dir_.Join("cache2"));
  ASSERT_EQ(g.files.size(), 1u);
  std::ifstream in(g.files[0], std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), a_data);
}

TEST_F(ReadCacheTest, ABadFetchMemorySettingIsRefused) {
  ::setenv("STRATALAKE_CACHE_FETCH_MEMORY", "lots", 1);
  arrow::Status st = ConfigureReadCache({Cache(), 64 << 20});
  ::unsetenv("STRATALAKE_CACHE_FETCH_MEMORY");
  ASSERT_TRUE(st.IsInvalid()) << st.ToString();
  EXPECT_EQ(st.message(),
            "STRATALAKE_CACHE_FETCH_MEMORY='lots' is not a size: write bytes, or a number with "
            "K, M or G");
}

TEST_F(ReadCacheTest, TheBoundHoldsWithFetchesInFlight) {
  // Room for four files of 1 MiB (the largest file cached is a quarter of it).
  const int64_t bound = 4 << 20;
  ASSERT_TRUE(ConfigureReadCache({Cache(), bound}).ok());
  slow_ = Slow(0.05);
  std::vector<std::string> datas, paths;
  for (int i = 0; i < 10; ++i) {
    datas.push_back(RandomBytes(1 << 20, 10 + i));
    paths.push_back(Put("f" + std::to_string(i) + ".parquet", datas.back()));
  }
  // All ten opened at once: at most four fetches fit; the others read remotely.
  std::vector<std::shared_ptr<arrow::io::RandomAccessFile>> files;
  for (const auto& p : paths) {
    auto f = OpenRemoteDataFile(*slow_, p, 1 << 20);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    files.push_back(*f);
    Folder now = ListCache(Cache());
    EXPECT_LE(now.bytes + static_cast<int64_t>(now.parts.size()) * (1 << 20), bound);
  }
  std::vector<std::string> got(files.size());
  std::vector<std::thread> readers;
  for (size_t i = 0; i < files.size(); ++i) {
    readers.emplace_back([&, i] { got[i] = ReadAll(*files[i], 1 << 20); });
  }
  for (auto& t : readers) t.join();
  for (size_t i = 0; i < files.size(); ++i) EXPECT_EQ(got[i], datas[i]) << i;
  WaitForFetches(Cache());
  Folder f = ListCache(Cache());
  EXPECT_LE(f.bytes, bound);
  EXPECT_GE(f.files.size(), 1u);
  EXPECT_LE(GetReadCacheStats().bytes_cached, bound);

  // Read one by one: each is cached in turn, the least recently used evicted.
  const uint64_t evictions = GetReadCacheStats().evictions;
  for (size_t i = 0; i < paths.size(); ++i) {
    auto file = OpenRemoteDataFile(*slow_, paths[i], 1 << 20);
    ASSERT_TRUE(file.ok());
    EXPECT_EQ(ReadAll(**file, 1 << 20), datas[i]);
    WaitForFetches(Cache());
    f = ListCache(Cache());
    EXPECT_LE(f.bytes, bound);
    EXPECT_TRUE(f.parts.empty());
  }
  ReadCacheStats s = GetReadCacheStats();
  EXPECT_GT(s.evictions, evictions);
  EXPECT_EQ(s.bytes_cached, bound);
  EXPECT_EQ(ListCache(Cache()).files.size(), 4u);
}

}  // namespace
}  // namespace stratalake
