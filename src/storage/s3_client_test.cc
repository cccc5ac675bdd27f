// The libcurl range reads of S3 data files (s3_client.h) against a real
// S3-compatible server: versitygw, started by scripts/s3.sh for the suite (its
// binary is built by scripts/bootstrap.sh).
#include "storage/s3_client.h"

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <tuple>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/io/interfaces.h>
#include <arrow/util/future.h>
#include <gtest/gtest.h>

#include "../../tests/test_util.h"
#include "storage/object_store.h"
#include "storage/table_test_util.h"
#include "stratalake/delta.h"
#include "stratalake/object_store.h"

namespace stratalake {
namespace {

using stratalake::testing::SortedRows;
using stratalake::testing::TempDir;

// A versitygw server of its own (scripts/s3.sh), stopped when destroyed.
class Server {
 public:
  explicit Server(std::string dir) : dir_(std::move(dir)) {
    // stdout is the endpoint alone; stderr (retries on a taken port, errors) goes to a file.
    const std::string log = dir_ + ".log";
    std::string cmd = Script() + " start " + dir_ + " 2>" + log;
    FILE* p = ::popen(cmd.c_str(), "r");
    char line[512];
    std::string last;
    while (p != nullptr && std::fgets(line, sizeof line, p) != nullptr) last = line;
    int rc = p != nullptr ? ::pclose(p) : -1;
    while (!last.empty() && (last.back() == '\n' || last.back() == '\r')) last.pop_back();
    if (rc == 0 && last.rfind("http://", 0) == 0) {
      endpoint_ = last;
    } else {
      std::ifstream in(log);
      error_ = last + "\n" + std::string(std::istreambuf_iterator<char>(in), {});
    }
  }
  ~Server() { Stop(); }

  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    std::string cmd = Script() + " stop " + dir_ + " >/dev/null 2>&1";
    (void)std::system(cmd.c_str());
  }

  const std::string& endpoint() const { return endpoint_; }
  const std::string& error() const { return error_; }

  std::map<std::string, std::string> Options() const {
    return {{"endpoint", endpoint_},
            {"region", "us-east-1"},
            {"access_key_id", "stratalake"},
            {"secret_access_key", "stratalake-secret"}};
  }

 private:
  static std::string Script() {
    return std::string("bash ") + STRATALAKE_SOURCE_DIR + "/scripts/s3.sh";
  }
  std::string dir_;
  std::string endpoint_;
  std::string error_;
  bool stopped_ = false;
};

// Byte i of the test object.
uint8_t Pattern(int64_t i) { return static_cast<uint8_t>((i * 7 + i / 251) % 251); }

class S3ClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    server_ = new Server(dir_->Join("s3"));
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
    server_ = nullptr;
    dir_ = nullptr;
  }

  void SetUp() override {
    ASSERT_FALSE(server_->endpoint().empty()) << "scripts/s3.sh start failed: " << server_->error();
    std::string path;
    auto fs = OpenFileSystem("s3://stratalake/objects", &path, server_->Options());
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    fs_ = *fs;
    auto conn = SignedS3Connection(*fs_);
    ASSERT_TRUE(conn.ok()) << conn.status().ToString();
    conn_ = *conn;
  }

  void TearDown() override { ASSERT_TRUE(ConfigureReadCache({dir_->Join("off"), 0}).ok()); }

  // Puts an object of `size` Pattern bytes at "stratalake/objects/NAME".
  std::string Put(const std::string& name, int64_t size) {
    std::string path = "stratalake/objects/" + name;
    std::string data(static_cast<size_t>(size), '\0');
    for (int64_t i = 0; i < size; ++i) data[static_cast<size_t>(i)] = static_cast<char>(Pattern(i));
    auto out = fs_->OpenOutputStream(path);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_TRUE((*out)->Write(data.data(), size).ok());
    EXPECT_TRUE((*out)->Close().ok());
    return path;
  }

  // Bytes [offset, offset + length) of `path` through S3GetRange.
  arrow::Result<std::string> Get(const S3Connection& conn, const std::string& path, int64_t offset,
                                 int64_t length) {
    std::string got;
    ARROW_RETURN_NOT_OK(S3GetRange(conn, path, offset, length, [&](const uint8_t* d, int64_t n) {
      got.append(reinterpret_cast<const char*>(d), static_cast<size_t>(n));
      return arrow::Status::OK();
    }));
    return got;
  }

  static void ExpectPattern(const std::string& got, int64_t offset, int64_t length) {
    ASSERT_EQ(static_cast<int64_t>(got.size()), length);
    for (int64_t i = 0; i < length; ++i) {
      ASSERT_EQ(static_cast<uint8_t>(got[static_cast<size_t>(i)]), Pattern(offset + i))
          << "byte " << offset + i;
    }
  }

  static TempDir* dir_;
  static Server* server_;
  std::shared_ptr<arrow::fs::FileSystem> fs_;
  S3Connection conn_;
};

TempDir* S3ClientTest::dir_ = nullptr;
Server* S3ClientTest::server_ = nullptr;

TEST_F(S3ClientTest, RangesAreExact) {
  const int64_t size = 3 * 1024 * 1024 + 17;
  std::string path = Put("ranges.bin", size);
  for (auto [off, len] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 1}, {size - 1, 1}, {0, size}, {1000, 2 * 1024 * 1024}, {size - 5000, 5000}}) {
    auto got = Get(conn_, path, off, len);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ExpectPattern(*got, off, len);
  }
  auto size_of = S3ObjectSize(conn_, path);
  ASSERT_TRUE(size_of.ok()) << size_of.status().ToString();
  EXPECT_EQ(*size_of, size);

  // A range starting past the end is refused, naming the object and the range.
  auto past = Get(conn_, path, size + 10, 5);
  ASSERT_FALSE(past.ok());
  EXPECT_TRUE(past.status().IsIOError());
  EXPECT_NE(past.status().message().find("past the end of the object (HTTP 416"), std::string::npos)
      << past.status().ToString();
  EXPECT_NE(past.status().message().find("'s3://" + path + "'"), std::string::npos);
  // One that runs past it: the object is shorter than asked for.
  auto longer = Get(conn_, path, size - 10, 20);
  ASSERT_FALSE(longer.ok());
  EXPECT_NE(longer.status().message().find("is shorter than expected"), std::string::npos)
      << longer.status().ToString();
}

TEST_F(S3ClientTest, DataFileReadsLikeAnArrowFile) {
  const int64_t size = 1024 * 1024 + 3;
  std::string path = Put("file.bin", size);
  // Without a size it asks the store (HEAD).
  auto file = S3DataFile::Open(conn_, path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(*(*file)->GetSize(), size);
  auto whole = (*file)->ReadAt(0, size);
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  ExpectPattern((*whole)->ToString(), 0, size);
  // Reads past the end are clamped; one starting past it is refused.
  auto tail = (*file)->ReadAt(size - 10, 100);
  ASSERT_TRUE(tail.ok());
  ExpectPattern((*tail)->ToString(), size - 10, 10);
  auto past = (*file)->ReadAt(size + 1, 1);
  ASSERT_FALSE(past.ok());
  EXPECT_NE(past.status().message().find("past the end of the file"), std::string::npos)
      << past.status().ToString();
  // Sequential reads and asynchronous ones.
  ASSERT_TRUE((*file)->Seek(size - 3).ok());
  auto last = (*file)->Read(10);
  ASSERT_TRUE(last.ok());
  ExpectPattern((*last)->ToString(), size - 3, 3);
  auto later = (*file)->ReadAsync(arrow::io::default_io_context(), 77, 4096).result();
  ASSERT_TRUE(later.ok());
  ExpectPattern((*later)->ToString(), 77, 4096);
}

TEST_F(S3ClientTest, LargeAsynchronousReadsAreSplitIntoConcurrentRequests) {
  // Three requests (8 MiB, 8 MiB, the rest) for one read, landing in one buffer.
  const int64_t size = 2 * S3DataFile::kReadPart + 54321;
  std::string path = Put("large.bin", size);
  auto file = S3DataFile::Open(conn_, path, size);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  for (auto [off, len] : std::vector<std::pair<int64_t, int64_t>>{
           {0, size},
           {100, size - 300},
           {S3DataFile::kReadPart - 1, S3DataFile::kReadPart + 2},
           {size - 10, 100},
           {5, 0}}) {
    auto got = (*file)->ReadAsync(arrow::io::default_io_context(), off, len).result();
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ExpectPattern((*got)->ToString(), off, std::min(len, size - off));
  }
  // A failing request fails the read, whose other requests still finish.
  auto gone = S3DataFile::Open(conn_, "stratalake/objects/not-there.bin", size);
  ASSERT_TRUE(gone.ok());
  auto failed = (*gone)->ReadAsync(arrow::io::default_io_context(), 0, size).result();
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("does not exist"), std::string::npos)
      << failed.status().ToString();
}

TEST_F(S3ClientTest, UploadsWriteWholeObjectsOrNone) {
  auto read_back = [&](const std::string& path) -> arrow::Result<std::string> {
    ARROW_ASSIGN_OR_RAISE(int64_t size, S3ObjectSize(conn_, path));
    return Get(conn_, path, 0, size);
  };
  auto write = [&](const std::string& path, int64_t size, int64_t step) {
    auto out = S3UploadStream::Open(conn_, path);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    std::string data(static_cast<size_t>(size), '\0');
    for (int64_t i = 0; i < size; ++i) data[static_cast<size_t>(i)] = static_cast<char>(Pattern(i));
    for (int64_t at = 0; at < size; at += step) {
      auto st = (*out)->Write(data.data() + at, std::min(step, size - at));
      EXPECT_TRUE(st.ok()) << st.ToString();
      if (!st.ok()) break;
    }
    EXPECT_EQ(*(*out)->Tell(), size);
    return *out;
  };
  // Within one part (one PUT), an empty file, and three parts written in odd pieces.
  for (auto [name, size, step] : std::vector<std::tuple<std::string, int64_t, int64_t>>{
           {"small.bin", 100000, 777},
           {"empty.bin", 0, 1},
           {"parts.bin", 2 * S3UploadStream::kUploadPart + 12345, 1000003}}) {
    std::string path = "stratalake/objects/up-" + name;
    auto out = write(path, size, step);
    // Not there before Close.
    EXPECT_FALSE(S3ObjectSize(conn_, path).ok()) << name;
    auto closed = out->Close();
    ASSERT_TRUE(closed.ok()) << closed.ToString();
    EXPECT_TRUE(out->closed());
    auto got = read_back(path);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ExpectPattern(*got, 0, size);
  }
  // Aborted after a part went up, or dropped unclosed: no object.
  const std::string aborted = "stratalake/objects/up-aborted.bin";
  auto out = write(aborted, S3UploadStream::kUploadPart + 10, 4096);
  ASSERT_TRUE(out->Abort().ok());
  EXPECT_FALSE(S3ObjectSize(conn_, aborted).ok());
  const std::string dropped = "stratalake/objects/up-dropped.bin";
  write(dropped, S3UploadStream::kUploadPart + 10, 4096).reset();
  EXPECT_FALSE(S3ObjectSize(conn_, dropped).ok());

  // A bucket that does not exist: the error names the object and the request.
  auto bad = S3UploadStream::Open(conn_, "no-such-bucket/x/y.bin");
  ASSERT_TRUE(bad.ok());
  std::string small(1000, 'x');
  ASSERT_TRUE((*bad)->Write(small.data(), 1000).ok());
  auto failed = (*bad)->Close();
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("cannot write 's3://no-such-bucket/x/y.bin'"), std::string::npos)
      << failed.ToString();
  EXPECT_NE(failed.message().find("NoSuchBucket"), std::string::npos) << failed.ToString();
  // Every upload is over: no part waits or holds the process's upload memory.
  EXPECT_EQ(S3UploadStream::PendingBytes(), 0);
}

TEST_F(S3ClientTest, ErrorsSayWhatIsWrong) {
  auto missing = S3DataFile::Open(conn_, "stratalake/objects/no-such-object.parquet");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "object 's3://stratalake/objects/no-such-object.parquet' (at " + server_->endpoint() +
                ") does not exist (HTTP 404)");
  auto missing_get = Get(conn_, "stratalake/objects/no-such-object.parquet", 0, 10);
  ASSERT_FALSE(missing_get.ok());
  EXPECT_NE(missing_get.status().message().find("does not exist (HTTP 404 NoSuchKey"),
            std::string::npos)
      << missing_get.status().ToString();

  std::string path = Put("secret.bin", 1000);
  S3Connection wrong = conn_;
  wrong.secret_access_key = "not-the-secret";
  auto denied = Get(wrong, path, 0, 10);
  ASSERT_FALSE(denied.ok());
  EXPECT_TRUE(denied.status().IsIOError());
  EXPECT_NE(denied.status().message().find("cannot read 's3://" + path + "' (at " +
                                           server_->endpoint() + "): HTTP 403"),
            std::string::npos)
      << denied.status().ToString();
  EXPECT_NE(denied.status().message().find("check the credentials"), std::string::npos);
}

// A table of several files, written to the bucket and to the local disk.
std::shared_ptr<arrow::Table> SomeRows(int n, int from) {
  std::string ids = "[", names = "[", scores = "[", days = "[";
  for (int i = 0; i < n; ++i) {
    std::string sep = i ? "," : "";
    ids += sep + std::to_string(from + i);
    names += sep + "\"name-" + std::to_string((from + i) * 31 % 1000) + "\"";
    scores += sep + std::to_string((from + i) % 97) + ".5";
    days += sep + "\"2026-12-0" + std::to_string(1 + (from + i) % 7) + "\"";
  }
  return delta::table_test::Rows(ids + "]", names + "]", scores + "]", days + "]");
}

arrow::Result<std::unique_ptr<delta::DeltaTable>> WriteTable(
    const std::string& uri, const std::map<std::string, std::string>& opts) {
  delta::TableOpenOptions o;
  o.storage_options = opts;
  ARROW_ASSIGN_OR_RAISE(auto table, delta::DeltaTable::ForPath(uri, o));
  for (int f = 0; f < 4; ++f) {
    ARROW_RETURN_NOT_OK(table->Write(SomeRows(20000, f * 20000), delta::WriteOptions{}).status());
  }
  return table;
}

TEST_F(S3ClientTest, AnS3TableScansLikeTheLocalOneWithAndWithoutTheCache) {
  auto local = WriteTable(dir_->Join("local"), {});
  ASSERT_TRUE(local.ok()) << local.status().ToString();
  auto remote = WriteTable("s3://stratalake/scan-table", server_->Options());
  ASSERT_TRUE(remote.ok()) << remote.status().ToString();
  auto expected = (*local)->Read({});
  ASSERT_TRUE(expected.ok());
  ASSERT_EQ((*expected)->num_rows(), 80000);
  const auto want = SortedRows(*expected);

  auto read = [&]() {
    delta::TableOpenOptions o;
    o.storage_options = server_->Options();
    auto t = delta::DeltaTable::ForPath("s3://stratalake/scan-table", o);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    auto rows = (*t)->Read({});
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    return rows.ok() ? SortedRows(*rows) : std::vector<std::string>{};
  };
  // Without the cache, then cold (fetched into it while read), then warm.
  ASSERT_TRUE(ConfigureReadCache({dir_->Join("off"), 0}).ok());
  EXPECT_EQ(read(), want);
  ASSERT_TRUE(ConfigureReadCache({dir_->Join("cache"), 1 << 30}).ok());
  const ReadCacheStats before = GetReadCacheStats();  // counts of the process so far
  EXPECT_EQ(read(), want);
  ReadCacheStats cold = GetReadCacheStats();
  EXPECT_EQ(cold.hits - before.hits, 0u);
  EXPECT_EQ(cold.misses - before.misses, 4u);
  EXPECT_EQ(read(), want);
  ReadCacheStats warm = GetReadCacheStats();
  EXPECT_EQ(warm.hits - before.hits, 4u);
  EXPECT_EQ(warm.misses - before.misses, 4u);
  EXPECT_EQ(warm.bytes_cached, static_cast<int64_t>(cold.miss_bytes - before.miss_bytes));
}

TEST_F(S3ClientTest, AServerGoneMidScanGivesAClearError) {
  TempDir own;
  Server server(own.Join("s3"));
  ASSERT_FALSE(server.endpoint().empty()) << server.error();
  auto table = WriteTable("s3://stratalake/gone", server.Options());
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  std::string path;
  auto fs = OpenFileSystem("s3://stratalake/gone", &path, server.Options());
  ASSERT_TRUE(fs.ok());
  auto conn = SignedS3Connection(**fs);
  ASSERT_TRUE(conn.ok());

  // A large object: the server is stopped after its first bytes have arrived.
  std::string big = "stratalake/gone/big.bin";
  {
    std::string data(32 << 20, 'x');
    auto out = (*fs)->OpenOutputStream(big);
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE((*out)->Write(data.data(), static_cast<int64_t>(data.size())).ok());
    ASSERT_TRUE((*out)->Close().ok());
  }
  // The log is read while the server runs; its data files are read after it stopped.
  delta::TableOpenOptions o;
  o.storage_options = server.Options();
  auto reader = delta::DeltaTable::ForPath("s3://stratalake/gone", o);
  ASSERT_TRUE(reader.ok());
  auto snapshot = (*reader)->Load({});
  ASSERT_TRUE(snapshot.ok()) << snapshot.status().ToString();

  int64_t received = 0;
  arrow::Status st = S3GetRange(*conn, big, 0, 32 << 20, [&](const uint8_t*, int64_t n) {
    if (received == 0) server.Stop();
    received += n;
    return arrow::Status::OK();
  });
  EXPECT_LT(received, 32 << 20);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(st.IsIOError());
  EXPECT_NE(st.message().find("cannot read 's3://" + big + "' (at " + server.endpoint() + "): "),
            std::string::npos)
      << st.ToString();
  EXPECT_NE(st.message().find("(5 attempts); is the server running and reachable?"),
            std::string::npos)
      << st.ToString();

  // A scan, without the cache and with a cold one: an error naming the data file.
  for (int64_t bound : {int64_t{0}, int64_t{1} << 30}) {
    ASSERT_TRUE(ConfigureReadCache({own.Join("cache"), bound}).ok());
    auto rows = (*reader)->Read(**snapshot, {});
    ASSERT_FALSE(rows.ok()) << "cache bound " << bound;
    EXPECT_NE(rows.status().message().find("cannot read data file 'stratalake/gone/part-"),
              std::string::npos)
        << rows.status().ToString();
    EXPECT_NE(rows.status().message().find("is the server running and reachable?"),
              std::string::npos)
        << rows.status().ToString();
  }
}

}  // namespace
}  // namespace stratalake
