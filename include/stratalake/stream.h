// Streaming ingestion: `stratalake stream` reads the Kafka topics of kafka sources
// (registry.h, KafkaOptions) and
//   - appends micro-batches to each source's bronze Delta table EXACTLY ONCE: the
//     batch of one partition and its last offset are one Delta commit (a `txn`
//     action, app id "stratalake-stream/<source>/<partition>", version = the last
//     offset), and a start seeks every partition to the offset after its committed
//     version — Kafka's own committed offsets are never used;
//   - writes every decoded event to the online store as it arrives (online::Push,
//     newer wins), before it is durable offline;
//   - quarantines malformed and late messages in the dead-letter Delta table
//     "quarantine/<source>_dead_letters" (raw bytes, topic, partition, offset,
//     reason), also exactly once, and goes on.
// docs/streaming.md describes the design.
//
// Thread-safety: RunStream and ProduceJsonLines run on the caller's thread; the
// `stop` flag may be set from any thread or a signal handler.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

#include "stratalake/clock.h"

namespace stratalake {
namespace repo {
class FeatureRepository;
}
namespace registry {
struct RegistryState;
}
namespace online {
class OnlineStore;
}
}  // namespace stratalake

namespace stratalake::stream {

/// The columns every bronze table of a kafka source gets besides its declared ones.
inline constexpr const char* kPartitionColumn = "_kafka_partition";  // int32
inline constexpr const char* kOffsetColumn = "_kafka_offset";        // int64

/// The app id of a partition's committed offsets in its bronze table.
std::string TxnAppId(const std::string& source, int32_t partition);

struct PartitionStatus {
  std::string source;
  int32_t partition = 0;
  int64_t next_offset = 0;        // the next offset to read
  int64_t committed_offset = -1;  // last offset durable in the bronze table (-1: none)
  int64_t end_offset = -1;        // the partition's high watermark when last known (-1: unknown)
};

/// A Prometheus-style histogram of durations in seconds (cumulative buckets
/// are computed when written out).
struct LatencyHistogram {
  /// Upper bounds of the buckets, in seconds; one more bucket holds the rest.
  static constexpr double kBounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5,   1,     2.5,  5,     10,   30,  60};
  static constexpr int kNumBounds = sizeof(kBounds) / sizeof(kBounds[0]);
  int64_t counts[kNumBounds + 1] = {};  // per bucket (not cumulative)
  int64_t count = 0;
  double sum = 0;
  void Observe(double seconds);
  void Merge(const LatencyHistogram& other);
  /// The upper bound of the bucket that holds quantile `q` (0..1); 0 when empty.
  double Quantile(double q) const;
};

struct SourceStats {
  std::string source;
  int64_t messages = 0;        // read from Kafka
  int64_t rows_committed = 0;  // appended to the bronze table
  int64_t quarantined = 0;     // appended to the dead-letter table
  int64_t online_rows = 0;     // written to the online store
  int64_t commits = 0;         // Delta commits (bronze and dead letters)
};

struct StreamStats {
  int64_t messages = 0;            // read from Kafka
  int64_t rows_committed = 0;      // appended to bronze tables
  int64_t quarantined = 0;         // appended to dead-letter tables
  int64_t online_rows = 0;         // written to the online store
  int64_t commits = 0;             // Delta commits (bronze and dead letters)
  double last_commit_seconds = 0;  // how long the last round of commits took
  double rows_per_second = 0;      // messages read per second over the last status interval
  /// Per micro-batch of a partition: from when its first message was read to
  /// when it was durable in the bronze table (the offline staleness the
  /// commit interval buys).
  LatencyHistogram batch_latency;
  /// Per Delta commit (bronze or dead letters): how long the commit took.
  LatencyHistogram commit_latency;
  /// Per poll: from reading messages to their rows being written online.
  LatencyHistogram online_latency;
  std::vector<SourceStats> sources;
  std::vector<PartitionStatus> partitions;
};

/// `stats` as Prometheus text (exposition format 0.0.4), every name prefixed
/// stratalake_stream_: per source the counters messages_total,
/// rows_committed_total, quarantined_total, online_rows_total and commits_total
/// ({source="..."}); per partition the gauges lag (end offset minus the next
/// offset to read) and committed_offset ({source, partition}); the gauges
/// rows_per_second and last_commit_seconds; the histograms
/// batch_latency_seconds, commit_seconds and online_latency_seconds. What
/// `--metrics-port` serves and what `stratalake serve --stream` appends to the
/// feature server's /metrics.
std::string MetricsText(const StreamStats& stats);

struct StreamOptions {
  /// Kafka sources to stream; empty = every kafka source of the registry.
  std::vector<std::string> sources;
  /// Overrides every source's brokers (e.g. a test broker); empty = the definitions'.
  std::string brokers;
  /// Commit each partition's pending rows at least this often...
  int64_t commit_interval_ms = 1000;
  /// ...and as soon as this many rows (and dead letters) are pending.
  int64_t max_batch_rows = 50000;
  /// Return (after committing) once every partition has been read to its end.
  bool stop_at_end = false;
  /// Set (from any thread or a signal handler) to commit what was read and return.
  const std::atomic<bool>* stop = nullptr;
  /// Called about once a second, and once at the end.
  std::function<void(const StreamStats&)> on_status;
  /// Serve Prometheus metrics (GET /metrics: MetricsText) on 127.0.0.1:PORT
  /// while streaming, updated about once a second; 0 = a free port; -1
  /// (default) = none. `on_metrics_port` is told the port.
  int metrics_port = -1;
  std::function<void(int port)> on_metrics_port;
  std::shared_ptr<Clock> clock;  // null = Clock::System()
};

/// Streams until `options.stop` is set (or, with stop_at_end, until caught up).
/// Every acknowledged message is committed before it returns OK. Errors: no or
/// unknown kafka sources (kObjectNotFound), brokers that cannot be reached for
/// 30 s, a Delta commit that fails (nothing of that batch is lost: the next
/// start reads it again).
arrow::Result<StreamStats> RunStream(const repo::FeatureRepository& repo,
                                     const registry::RegistryState& state,
                                     online::OnlineStore* store, const StreamOptions& options);

struct ProduceOptions {
  std::string brokers;
  std::string topic;
  /// When the topic does not exist it is created with this many partitions.
  int32_t partitions = 1;
  /// A JSON field whose value becomes the message key (same key, same partition);
  /// empty: no key (messages spread over the partitions).
  std::string key_field;
  /// Send at most this many messages per second (message i leaves i / rate
  /// seconds after the first); 0 = as fast as the client can.
  double messages_per_second = 0;
  /// Each line is the message's bytes in base64 (binary messages: Avro);
  /// not with key_field.
  bool base64 = false;
};

/// Produces the messages `next` gives (it sets the key, "" = none, and the
/// value, and returns false after the last) in order, paced by
/// messages_per_second; waits until every message is acknowledged. Returns how
/// many were produced. `key_field` is not used.
arrow::Result<int64_t> ProduceMessages(
    const ProduceOptions& options,
    const std::function<bool(std::string* key, std::string* value)>& next);

/// Produces every non-empty line of `path` ("-" = stdin) as one message, as it
/// is (a line that is not JSON is sent too: tests use that for dead letters);
/// waits until every message is acknowledged. Returns how many were produced.
arrow::Result<int64_t> ProduceLines(const ProduceOptions& options, const std::string& path);

}  // namespace stratalake::stream
