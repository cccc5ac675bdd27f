#include "common/batch_queue.h"

#include <arrow/api.h>
#include <gtest/gtest.h>

namespace stratalake {
namespace {

std::shared_ptr<arrow::RecordBatch> Range(int64_t from, int64_t to) {
  arrow::Int64Builder b;
  for (int64_t i = from; i < to; ++i) EXPECT_TRUE(b.Append(i).ok());
  auto array = b.Finish().ValueOrDie();
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("x", arrow::int64())}), to - from,
                                  {array});
}

std::vector<int64_t> Values(const std::vector<std::shared_ptr<arrow::RecordBatch>>& parts) {
  std::vector<int64_t> out;
  for (const auto& p : parts) {
    const auto& a = static_cast<const arrow::Int64Array&>(*p->column(0));
    for (int64_t i = 0; i < a.length(); ++i) out.push_back(a.Value(i));
  }
  return out;
}

TEST(BatchQueueTest, TakesRowsAcrossAndWithinBatchesInOrder) {
  BatchQueue q;
  q.Push(Range(0, 3));
  q.Push(Range(3, 4));
  q.Push(Range(4, 9));
  EXPECT_EQ(q.rows(), 9);
  auto a = q.Take(2);  // within the first batch
  EXPECT_EQ(Values(a), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(q.rows(), 7);
  auto b = q.Take(4);  // the rest of the first, the second, part of the third
  EXPECT_EQ(Values(b), (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(b.size(), 3u);
  EXPECT_EQ(q.rows(), 3);
  auto c = q.Take(10);  // more than queued: what there is
  EXPECT_EQ(Values(c), (std::vector<int64_t>{6, 7, 8}));
  EXPECT_EQ(q.rows(), 0);
  EXPECT_TRUE(q.Take(1).empty());
  EXPECT_TRUE(q.Take(0).empty());
}

}  // namespace
}  // namespace stratalake
