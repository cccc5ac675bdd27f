#include "common/background_output.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <arrow/io/memory.h>
#include <gtest/gtest.h>

namespace stratalake {
namespace {

// A sink that records what it is given, slowly, and fails on request.
class SlowSink final : public arrow::io::OutputStream {
 public:
  arrow::Status Write(const void* data, int64_t nbytes) override {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (fail_at_ >= 0 && static_cast<int64_t>(bytes_.size()) + nbytes > fail_at_) {
      return arrow::Status::IOError("disk full");
    }
    bytes_.append(static_cast<const char*>(data), static_cast<size_t>(nbytes));
    ++writes_;
    return arrow::Status::OK();
  }
  arrow::Status Flush() override {
    ++flushes_;
    return arrow::Status::OK();
  }
  arrow::Status Close() override {
    closed_ = true;
    return arrow::Status::OK();
  }
  bool closed() const override { return closed_; }
  arrow::Result<int64_t> Tell() const override { return static_cast<int64_t>(bytes_.size()); }

  std::string bytes_;
  std::atomic<int> writes_{0};
  int flushes_ = 0;
  int64_t fail_at_ = -1;
  bool closed_ = false;
};

std::shared_ptr<arrow::Buffer> Text(const std::string& s) { return arrow::Buffer::FromString(s); }

TEST(BackgroundOutputStreamTest, WritesEverythingInOrder) {
  auto sink = std::make_shared<SlowSink>();
  BackgroundOutputStream out(sink, /*max_pending_bytes=*/16);
  std::string expected;
  for (int i = 0; i < 200; ++i) {
    std::string piece = "piece-" + std::to_string(i) + ";";
    expected += piece;
    if (i % 3 == 0) {
      ASSERT_TRUE(out.Write(piece.data(), static_cast<int64_t>(piece.size())).ok());
      piece.assign(piece.size(), 'X');  // the caller's memory may change right away
    } else {
      ASSERT_TRUE(out.Write(Text(piece)).ok());
    }
    ASSERT_EQ(*out.Tell(), static_cast<int64_t>(expected.size()));
  }
  ASSERT_TRUE(out.Write(Text(std::string(100, 'L'))).ok());  // larger than the queue limit
  expected += std::string(100, 'L');
  ASSERT_TRUE(out.Flush().ok());
  EXPECT_EQ(sink->bytes_, expected);
  EXPECT_EQ(sink->flushes_, 1);
  ASSERT_TRUE(out.Close().ok());
  EXPECT_TRUE(sink->closed_);
  EXPECT_TRUE(out.closed());
  EXPECT_FALSE(out.Write(Text("late")).ok());
}

TEST(BackgroundOutputStreamTest, AFailedWriteIsReportedAndStopsLaterWrites) {
  auto sink = std::make_shared<SlowSink>();
  sink->fail_at_ = 10;
  BackgroundOutputStream out(sink, /*max_pending_bytes=*/1 << 20);
  ASSERT_TRUE(out.Write(Text("12345")).ok());
  ASSERT_TRUE(out.Write(Text("67890abc")).ok());  // fails on the thread
  arrow::Status later = out.Flush();
  EXPECT_TRUE(later.IsIOError()) << later.ToString();
  EXPECT_NE(later.message().find("disk full"), std::string::npos);
  EXPECT_TRUE(out.Write(Text("more")).IsIOError());
  EXPECT_TRUE(out.Close().IsIOError());
  EXPECT_EQ(sink->bytes_, "12345");
  EXPECT_TRUE(sink->closed_);
}

TEST(BackgroundOutputStreamTest, DestructionWritesWhatIsQueued) {
  auto sink = std::make_shared<SlowSink>();
  {
    BackgroundOutputStream out(sink, 1 << 20);
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(out.Write(Text("ab")).ok());
  }
  EXPECT_EQ(sink->bytes_.size(), 100u);
  EXPECT_TRUE(sink->closed_);
}

}  // namespace
}  // namespace stratalake
