#include "retrieval/asof_memory.h"

#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include <arrow/buffer.h>
#include <gtest/gtest.h>

namespace stratalake::retrieval::asof {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

TEST(BlockReuseTest, FreedBlocksAreUnmappedWithoutAScope) {
  ASSERT_EQ(ReusableBytes(), 0u);
  void* p = AllocateLarge(8 * kMiB);
  std::memset(p, 1, 8 * kMiB);
  FreeLarge(p, 8 * kMiB);
  EXPECT_EQ(ReusableBytes(), 0u);
}

TEST(BlockReuseTest, AScopeKeepsFreedBlocksAndSplitsThem) {
  {
    BlockReuse reuse(64 * kMiB);
    auto* a = static_cast<uint8_t*>(AllocateLarge(10 * kMiB));
    std::memset(a, 7, 10 * kMiB);
    FreeLarge(a, 10 * kMiB);
    EXPECT_EQ(ReusableBytes(), 10 * kMiB);
    // A smaller request takes the front of the kept block (rounded to 2 MiB);
    // the rest stays kept and serves the next one.
    auto* b = static_cast<uint8_t*>(AllocateLarge(5 * kMiB));
    EXPECT_EQ(b, a);
    EXPECT_EQ(ReusableBytes(), 4 * kMiB);
    auto* c = static_cast<uint8_t*>(AllocateLarge(4 * kMiB));
    EXPECT_EQ(c, a + 6 * kMiB);
    EXPECT_EQ(ReusableBytes(), 0u);
    EXPECT_EQ(c[0], 7);  // reused memory is not cleared: callers write it in full
    FreeLarge(b, 5 * kMiB);
    FreeLarge(c, 4 * kMiB);
    EXPECT_EQ(ReusableBytes(), 10 * kMiB);
  }
  EXPECT_EQ(ReusableBytes(), 0u);  // the last scope gives everything back
}

TEST(BlockReuseTest, KeptBytesStayWithinTheLimit) {
  BlockReuse reuse(8 * kMiB);
  void* a = AllocateLarge(6 * kMiB);
  void* b = AllocateLarge(6 * kMiB);
  FreeLarge(a, 6 * kMiB);
  FreeLarge(b, 6 * kMiB);  // would exceed 8 MiB: unmapped
  EXPECT_EQ(ReusableBytes(), 6 * kMiB);
  // A request that no kept block fits is mapped afresh and releases as many
  // kept bytes, so that keeping blocks never raises the peak.
  void* c = AllocateLarge(16 * kMiB);
  EXPECT_EQ(ReusableBytes(), 0u);
  FreeLarge(c, 16 * kMiB);  // over the limit: unmapped
  EXPECT_EQ(ReusableBytes(), 0u);
}

TEST(BlockReuseTest, TheLargestLiveScopeApplies) {
  auto outer = std::make_unique<BlockReuse>(4 * kMiB);
  {
    BlockReuse inner(32 * kMiB);
    void* small = AllocateLarge(4 * kMiB);
    void* large = AllocateLarge(16 * kMiB);
    FreeLarge(small, 4 * kMiB);
    FreeLarge(large, 16 * kMiB);
    EXPECT_EQ(ReusableBytes(), 20 * kMiB);
  }
  // Trimmed to the outer scope's limit, largest blocks first.
  EXPECT_EQ(ReusableBytes(), 4 * kMiB);
  outer.reset();
  EXPECT_EQ(ReusableBytes(), 0u);
}

TEST(BlockReuseTest, OutputBuffersReturnTheirBlocks) {
  BlockReuse reuse(64 * kMiB);
  {
    auto buf = AllocateOutput(12 * kMiB);
    ASSERT_TRUE(buf.ok());
    std::memset((*buf)->mutable_data(), 3, 12 * kMiB);
  }
  EXPECT_EQ(ReusableBytes(), 12 * kMiB);
  // Threads allocate and free concurrently from the kept blocks.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([] {
      for (int i = 0; i < 50; ++i) FreeLarge(AllocateLarge((4 + i % 3) * kMiB), (4 + i % 3) * kMiB);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(ReusableBytes(), 64 * kMiB);
}

}  // namespace
}  // namespace stratalake::retrieval::asof
