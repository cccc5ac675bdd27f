#include "common/direct_output.h"

#include <sys/vfs.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "../../tests/test_util.h"

namespace stratalake {
namespace {

using testing::TempDir;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Whether `dir` is on a file system known to take O_DIRECT (ext4, xfs, btrfs).
bool TakesDirectIo(const std::string& dir) {
  struct statfs fs;
  if (::statfs(dir.c_str(), &fs) != 0) return false;
  const auto type = static_cast<unsigned long>(fs.f_type);
  return type == 0xEF53UL || type == 0x58465342UL || type == 0x9123683EUL;
}

std::string Bytes(std::mt19937_64* rng, int64_t n) {
  std::string s(static_cast<size_t>(n), '\0');
  for (auto& c : s) c = static_cast<char>((*rng)() & 0xFF);
  return s;
}

// Writes pieces of the given sizes, checks Tell, closes, and compares the file.
void WriteAndCheck(const std::string& path, bool direct, const std::vector<int64_t>& sizes,
                   bool flush_each = false) {
  std::mt19937_64 rng(7);
  ASSERT_OK_AND_ASSIGN(auto out, DirectFileOutputStream::Open(path, direct));
  std::string expected;
  for (int64_t n : sizes) {
    std::string piece = Bytes(&rng, n);
    expected += piece;
    ASSERT_OK(out->Write(piece.data(), n));
    ASSERT_EQ(*out->Tell(), static_cast<int64_t>(expected.size()));
    if (flush_each) ASSERT_OK(out->Flush());
  }
  ASSERT_OK(out->Close());
  EXPECT_TRUE(out->closed());
  const std::string got = ReadFile(path);
  ASSERT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected) << "file contents differ";
}

TEST(DirectFileOutputStreamTest, WritesExactlyTheBytesGivenWhateverTheirSizes) {
  TempDir dir;
  constexpr int64_t kStage = DirectFileOutputStream::kStageBytes;
  constexpr int64_t kAlign = DirectFileOutputStream::kAlign;
  const std::vector<std::vector<int64_t>> cases = {
      {},                                   // an empty file
      {1},                                  // less than a block
      {kAlign},                             // exactly one block
      {kAlign + 1},                         // a block and a byte
      {kStage},                             // exactly the staging buffer
      {kStage - 1, 1, 1},                   // across its end by one byte
      {3 * kStage + 12345},                 // one write over several buffers
      {100, kStage, 7, 2 * kStage - 3, 9},  // mixed
  };
  for (bool direct : {true, false}) {
    for (size_t i = 0; i < cases.size(); ++i) {
      SCOPED_TRACE("case " + std::to_string(i) + (direct ? " direct" : " buffered"));
      WriteAndCheck(dir.Join("f" + std::to_string(i)), direct, cases[i]);
    }
  }
}

TEST(DirectFileOutputStreamTest, FlushKeepsOnlyAPartialBlockStaged) {
  TempDir dir;
  const std::string path = dir.Join("flushed");
  ASSERT_OK_AND_ASSIGN(auto out, DirectFileOutputStream::Open(path));
  std::string data(3 * DirectFileOutputStream::kAlign + 10, 'x');
  ASSERT_OK(out->Write(data.data(), static_cast<int64_t>(data.size())));
  ASSERT_OK(out->Flush());
  // Whole blocks are in the file now; the rest waits for Close (or, when
  // writes go through the page cache, is there too).
  const int64_t on_disk = static_cast<int64_t>(ReadFile(path).size());
  EXPECT_EQ(on_disk,
            out->direct() ? 3 * DirectFileOutputStream::kAlign : static_cast<int64_t>(data.size()));
  WriteAndCheck(dir.Join("many"), true, {5000, 3, 70000, 1, 4096, 8191}, /*flush_each=*/true);
  ASSERT_OK(out->Close());
  EXPECT_EQ(ReadFile(path), data);
}

TEST(DirectFileOutputStreamTest, BypassesThePageCacheWhereTheFileSystemAllowsIt) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto out, DirectFileOutputStream::Open(dir.Join("d")));
  if (TakesDirectIo(dir.path())) {
    EXPECT_TRUE(out->direct());
  }
  ASSERT_OK(out->Close());
  ASSERT_OK_AND_ASSIGN(auto plain, DirectFileOutputStream::Open(dir.Join("p"), false));
  EXPECT_FALSE(plain->direct());
  ASSERT_OK(plain->Close());
}

TEST(DirectFileOutputStreamTest, WritesTheSameOnTmpfs) {
  // tmpfs refuses O_DIRECT at open before Linux 6.6 (the stream then writes
  // through the cache) and accepts it since: the bytes are the same either way.
  const std::string path =
      "/dev/shm/stratalake-direct-output-test-" + std::to_string(std::random_device{}());
  WriteAndCheck(path, true, {10, DirectFileOutputStream::kStageBytes + 5, 4095});
  std::remove(path.c_str());
}

TEST(DirectFileOutputStreamTest, ErrorsNameTheFile) {
  TempDir dir;
  const std::string path = dir.Join("no/such/folder/out.parquet");
  auto opened = DirectFileOutputStream::Open(path);
  ASSERT_FALSE(opened.ok());
  EXPECT_TRUE(opened.status().IsIOError());
  EXPECT_NE(opened.status().message().find(path), std::string::npos) << opened.status();

  ASSERT_OK_AND_ASSIGN(auto out, DirectFileOutputStream::Open(dir.Join("closed")));
  ASSERT_OK(out->Close());
  ASSERT_OK(out->Close());  // closing twice is harmless
  auto st = out->Write("x", 1);
  EXPECT_TRUE(st.IsInvalid()) << st;
  EXPECT_TRUE(out->Flush().IsInvalid());
}

}  // namespace
}  // namespace stratalake
