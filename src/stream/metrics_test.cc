// The stream's Prometheus text and latency histograms (stratalake/stream.h).
#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "stratalake/stream.h"

namespace stratalake::stream {
namespace {

TEST(LatencyHistogram, BucketsCountSumAndQuantiles) {
  LatencyHistogram h;
  EXPECT_EQ(h.Quantile(0.99), 0);
  h.Observe(0.0005);  // <= 1 ms
  h.Observe(0.001);   // exactly on a bound: in that bucket
  h.Observe(0.2);     // <= 0.25 s
  h.Observe(120);     // beyond the last bound
  EXPECT_EQ(h.count, 4);
  EXPECT_DOUBLE_EQ(h.sum, 0.0005 + 0.001 + 0.2 + 120);
  EXPECT_EQ(h.counts[0], 2);
  EXPECT_EQ(h.counts[6], 1);  // kBounds[6] = 0.25
  EXPECT_EQ(h.counts[LatencyHistogram::kNumBounds], 1);
  EXPECT_EQ(h.Quantile(0.5), 0.001);
  EXPECT_EQ(h.Quantile(0.75), 0.25);
  EXPECT_EQ(h.Quantile(1.0), std::numeric_limits<double>::infinity());
  LatencyHistogram other;
  other.Observe(0.003);
  h.Merge(other);
  EXPECT_EQ(h.count, 5);
  EXPECT_EQ(h.counts[1], 1);  // kBounds[1] = 0.005
}

TEST(StreamMetrics, PrometheusTextPerSourceAndPartition) {
  StreamStats s;
  s.sources.push_back({"trades", 10, 8, 2, 8, 3});
  s.sources.push_back({"quotes", 5, 5, 0, 0, 1});
  PartitionStatus p;
  p.source = "trades";
  p.partition = 1;
  p.next_offset = 7;
  p.committed_offset = 6;
  p.end_offset = 9;
  s.partitions.push_back(p);
  PartitionStatus unknown;  // end offset not known: no lag sample; none committed: no offset
  unknown.source = "quotes";
  s.partitions.push_back(unknown);
  s.rows_per_second = 1234.5;
  s.last_commit_seconds = 0.25;
  s.batch_latency.Observe(0.3);
  s.batch_latency.Observe(0.7);
  std::string text = MetricsText(s);
  EXPECT_NE(text.find("# TYPE stratalake_stream_messages_total counter\n"
                      "stratalake_stream_messages_total{source=\"trades\"} 10\n"
                      "stratalake_stream_messages_total{source=\"quotes\"} 5\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("stratalake_stream_quarantined_total{source=\"trades\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("stratalake_stream_lag{source=\"trades\",partition=\"1\"} 2\n"),
            std::string::npos);
  EXPECT_EQ(text.find("stratalake_stream_lag{source=\"quotes\""), std::string::npos);
  EXPECT_NE(text.find("stratalake_stream_committed_offset{source=\"trades\",partition=\"1\"} 6\n"),
            std::string::npos);
  EXPECT_EQ(text.find("stratalake_stream_committed_offset{source=\"quotes\""), std::string::npos);
  EXPECT_NE(text.find("stratalake_stream_rows_per_second 1234.5\n"), std::string::npos);
  EXPECT_NE(text.find("stratalake_stream_last_commit_seconds 0.25\n"), std::string::npos);
  // Cumulative buckets, +Inf = count.
  EXPECT_NE(text.find("# TYPE stratalake_stream_batch_latency_seconds histogram\n"),
            std::string::npos);
  EXPECT_NE(text.find("stratalake_stream_batch_latency_seconds_bucket{le=\"0.25\"} 0\n"
                      "stratalake_stream_batch_latency_seconds_bucket{le=\"0.5\"} 1\n"
                      "stratalake_stream_batch_latency_seconds_bucket{le=\"1\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("stratalake_stream_batch_latency_seconds_bucket{le=\"+Inf\"} 2\n"
                      "stratalake_stream_batch_latency_seconds_sum 1\n"
                      "stratalake_stream_batch_latency_seconds_count 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("stratalake_stream_commit_seconds_count 0\n"), std::string::npos);
  EXPECT_NE(text.find("stratalake_stream_online_latency_seconds_count 0\n"), std::string::npos);
}

}  // namespace
}  // namespace stratalake::stream
