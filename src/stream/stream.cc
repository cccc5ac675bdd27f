// `stratalake stream`: Kafka topics into bronze Delta tables (exactly once), the
// online store (as events arrive) and dead-letter tables. See stratalake/stream.h
// and docs/streaming.md.
//
// One consumer per source, assigned every partition of its topic (no consumer
// group rebalancing: the positions come from the bronze table). Per partition,
// messages are decoded in offset order into accepted rows and dead letters;
// a commit round writes, per partition with pending messages whose last offset
// is L: first the dead letters (their own txn app id, version L; those at or
// below the dead-letter table's committed version are dropped, since a crash
// between the two commits re-reads them), then the accepted rows (txn app id
// TxnAppId(source, partition), version L). A start seeks each partition to the
// bronze version + 1, so a crash anywhere re-reads exactly what is not in bronze.
// Three threads per source overlap the work (docs/streaming.md, "The pipeline"):
// this one reads and decodes, an OnlineWriter writes the decoded rows online,
// and the commit thread commits a round once its rows are written online.
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <arrow/api.h>
#include <arrow/compute/api.h>

#include "common/errors.h"
#include "ingest/convert.h"
#include "stratalake/delta.h"
#include "stratalake/online.h"
#include "stratalake/registry.h"
#include "stratalake/repo.h"
#include "stratalake/status.h"
#include "stratalake/stream.h"
#include "stream/avro.h"
#include "stream/kafka.h"
#include "stream/metrics_server.h"

namespace stratalake::stream {

std::string TxnAppId(const std::string& source, int32_t partition) {
  return "stratalake-stream/" + source + "/" + std::to_string(partition);
}

namespace {

std::string DeadLetterAppId(const std::string& source, int32_t partition) {
  return TxnAppId(source, partition) + "/dead-letters";
}

// ${VAR} -> the environment's value (empty when unset).
std::string ExpandEnv(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '{') {
      size_t end = text.find('}', i);
      if (end != std::string::npos) {
        const char* v = std::getenv(text.substr(i + 2, end - i - 2).c_str());
        out += v ? v : "";
        i = end;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

// Seconds since the epoch -> ISO 8601 UTC with microseconds.
std::string SecondsToIso(double seconds) {
  int64_t micros = std::llround(seconds * 1e6);
  int64_t secs = micros >= 0 ? micros / 1000000 : -((-micros + 999999) / 1000000);
  int64_t frac = micros - secs * 1000000;
  time_t t = static_cast<time_t>(secs);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           static_cast<long long>(frac));
  return buf;
}

std::string JsonKind(const rapidjson::Value& v) {
  if (v.IsString()) return "a string";
  if (v.IsBool()) return "a boolean";
  if (v.IsNumber()) return "a number";
  if (v.IsArray()) return "an array";
  if (v.IsObject()) return "an object";
  return "null";
}

// What a column of `type` accepts from JSON: "" when `v` fits (and its text in
// *text), else why not.
std::string JsonToText(const rapidjson::Value& v, const arrow::DataType& type, std::string* text) {
  auto number_text = [&]() {
    if (v.IsInt64()) return std::to_string(v.GetInt64());
    if (v.IsUint64()) return std::to_string(v.GetUint64());
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    v.Accept(w);
    return std::string(sb.GetString(), sb.GetSize());
  };
  auto expected = [&](const char* what) {
    return std::string("expected ") + what + " for " + ingest::TypeLabel(type) + ", got " +
           JsonKind(v);
  };
  switch (type.id()) {
    case arrow::Type::INT8:
    case arrow::Type::INT16:
    case arrow::Type::INT32:
    case arrow::Type::INT64:
    case arrow::Type::UINT8:
    case arrow::Type::UINT16:
    case arrow::Type::UINT32:
    case arrow::Type::UINT64:
    case arrow::Type::FLOAT:
    case arrow::Type::DOUBLE:
    case arrow::Type::DECIMAL128:
    case arrow::Type::DECIMAL256:
      if (!v.IsNumber()) return expected("a number");
      *text = number_text();
      return "";
    case arrow::Type::BOOL:
      if (!v.IsBool()) return expected("true or false");
      *text = v.GetBool() ? "true" : "false";
      return "";
    case arrow::Type::STRING:
    case arrow::Type::LARGE_STRING:
    case arrow::Type::BINARY:
    case arrow::Type::LARGE_BINARY:
    case arrow::Type::DATE32:
      if (!v.IsString()) return expected("a string");
      text->assign(v.GetString(), v.GetStringLength());
      return "";
    case arrow::Type::TIMESTAMP:
      if (v.IsString()) {
        text->assign(v.GetString(), v.GetStringLength());
        return "";
      }
      if (v.IsNumber()) {
        *text = SecondsToIso(v.GetDouble());
        return "";
      }
      return expected("an ISO 8601 string or seconds since the epoch");
    default:
      return "columns of type " + ingest::TypeLabel(type) + " cannot be streamed yet";
  }
}

arrow::Result<std::shared_ptr<arrow::Array>> Int32Array(const std::vector<int32_t>& v) {
  arrow::Int32Builder b;
  ARROW_RETURN_NOT_OK(b.AppendValues(v));
  return b.Finish();
}
arrow::Result<std::shared_ptr<arrow::Array>> Int64Array(const std::vector<int64_t>& v) {
  arrow::Int64Builder b;
  ARROW_RETURN_NOT_OK(b.AppendValues(v));
  return b.Finish();
}

std::shared_ptr<arrow::Schema> DeadLetterSchema() {
  auto ts = arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
  return arrow::schema(
      {arrow::field("kafka_topic", arrow::utf8()), arrow::field("kafka_partition", arrow::int32()),
       arrow::field("kafka_offset", arrow::int64()), arrow::field("kafka_timestamp", ts),
       arrow::field("kafka_key", arrow::binary()), arrow::field("raw_value", arrow::binary()),
       arrow::field("reason", arrow::utf8()), arrow::field("quarantined_at", ts)});
}

struct DeadLetter {
  int64_t offset = 0;
  int64_t kafka_ts_ms = -1;
  std::optional<std::string> key;
  std::string value;
  std::string reason;
};

// A message as librdkafka returned it: decoded from its own buffer (no copy);
// only a dead letter copies its key and value.
struct RawMessage {
  KafkaMessage m;
  int64_t offset() const { return m->offset; }
  std::string_view value() const {
    return m->payload ? std::string_view(static_cast<const char*>(m->payload), m->len)
                      : std::string_view();
  }
  std::optional<std::string> key() const {
    if (!m->key) return std::nullopt;
    return std::string(static_cast<const char*>(m->key), m->key_len);
  }
  int64_t kafka_ts_ms() const {
    rd_kafka_timestamp_type_t tstype;
    return rd_kafka_message_timestamp(m.get(), &tstype);
  }
};

// Writes the decoded rows of a source online on its own thread, in the order
// they were decoded, while the polling thread reads and decodes the next
// messages (docs/streaming.md, "The pipeline"). At most kMaxQueuedRows rows
// wait (Push blocks beyond that, so memory stays bounded); the thread takes
// everything waiting at once and hands it to `write` as one call, so a backlog
// turns into larger multi-puts (the store keeps one write per key, the newer).
// A Delta commit of rows waits for them here first (WaitFor): online before
// durable, as when both ran on one thread. After a failed write every call
// returns that error and nothing more is written.
class OnlineWriter {
 public:
  using WriteFn = std::function<arrow::Status(const std::vector<std::shared_ptr<arrow::Table>>&)>;
  static constexpr int64_t kMaxQueuedRows = 65536;

  explicit OnlineWriter(WriteFn write) : write_(std::move(write)), thread_([this] { Run(); }) {}
  ~OnlineWriter() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  /// Queues `rows` (their messages read at `read_at`); returns its sequence
  /// number (1, 2, ...) or the writer's error.
  arrow::Result<int64_t> Push(std::shared_ptr<arrow::Table> rows,
                              std::chrono::steady_clock::time_point read_at) {
    std::unique_lock<std::mutex> lock(mu_);
    const int64_t n = rows->num_rows();
    cv_.wait(lock, [&] {
      return !status_.ok() || queued_rows_ == 0 || queued_rows_ + n <= kMaxQueuedRows;
    });
    ARROW_RETURN_NOT_OK(status_);
    queue_.push_back({std::move(rows), read_at});
    queued_rows_ += n;
    int64_t seq = ++pushed_;
    lock.unlock();
    cv_.notify_all();
    return seq;
  }

  /// The sequence number of the last Push (0: none).
  int64_t pushed() {
    std::lock_guard<std::mutex> lock(mu_);
    return pushed_;
  }

  /// Waits until everything up to `seq` is written; the writer's error if any.
  arrow::Status WaitFor(int64_t seq) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !status_.ok() || written_ >= seq; });
    return status_;
  }

  /// Rows written and the read -> written latency, into `totals`.
  void AddStats(StreamStats* totals) {
    std::lock_guard<std::mutex> lock(mu_);
    totals->online_rows += online_rows_;
    totals->online_latency.Merge(latency_);
  }

 private:
  struct Item {
    std::shared_ptr<arrow::Table> rows;
    std::chrono::steady_clock::time_point read_at;
  };

  void Run() {
    while (true) {
      std::vector<Item> items;
      bool failed = false;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;  // what is not written is not committed either
        failed = !status_.ok();
        items.assign(std::make_move_iterator(queue_.begin()),
                     std::make_move_iterator(queue_.end()));
        queue_.clear();
        queued_rows_ = 0;
      }
      cv_.notify_all();  // room for Push
      std::vector<std::shared_ptr<arrow::Table>> tables;
      int64_t rows = 0;
      for (const auto& it : items) {
        tables.push_back(it.rows);
        rows += it.rows->num_rows();
      }
      arrow::Status st = failed ? arrow::Status::OK() : write_(tables);
      auto done = std::chrono::steady_clock::now();
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (status_.ok() && st.ok()) {
          online_rows_ += rows;
          for (const auto& it : items) {
            latency_.Observe(std::chrono::duration<double>(done - it.read_at).count());
          }
        } else if (status_.ok()) {
          status_ = st.WithMessage("writing streamed rows online: ", st.message());
        }
        written_ += static_cast<int64_t>(items.size());
      }
      cv_.notify_all();
    }
  }

  WriteFn write_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  int64_t queued_rows_ = 0;
  int64_t pushed_ = 0;
  int64_t written_ = 0;
  arrow::Status status_;
  bool stop_ = false;
  int64_t online_rows_ = 0;
  LatencyHistogram latency_;
  std::thread thread_;  // last: starts when the members above exist
};

// The values of one column of a batch, as they are decoded. The common pairs of
// JSON and column type (integers, numbers, booleans, strings, timestamps as
// seconds) go straight into a typed builder; every other value goes through its
// text and ingestion's conversion (ingest::ConvertColumn) when the batch is
// finished, and replaces its placeholder. Both give the same value for the same
// JSON: the direct path takes only values whose text would convert exactly so.
class ColumnDecoder {
 public:
  ColumnDecoder(std::shared_ptr<arrow::DataType> type, int64_t rows) : type_(std::move(type)) {
    switch (type_->id()) {
      case arrow::Type::INT64:
        kind_ = Kind::kInt64;
        break;
      case arrow::Type::INT32:
        kind_ = Kind::kInt32;
        break;
      case arrow::Type::DOUBLE:
        kind_ = Kind::kDouble;
        break;
      case arrow::Type::BOOL:
        kind_ = Kind::kBool;
        break;
      case arrow::Type::STRING:
        kind_ = Kind::kString;
        break;
      case arrow::Type::TIMESTAMP: {
        const auto& t = static_cast<const arrow::TimestampType&>(*type_);
        kind_ = t.unit() == arrow::TimeUnit::MICRO && t.timezone() == "UTC" ? Kind::kMicros
                                                                            : Kind::kText;
        break;
      }
      default:
        kind_ = Kind::kText;
    }
    if (kind_ != Kind::kText) {
      direct_ = arrow::MakeBuilder(type_).ValueOr(nullptr);
      if (!direct_) kind_ = Kind::kText;
    }
    // Reserving is a hint: a failed allocation shows again at the first Append.
    if (direct_) (void)direct_->Reserve(rows);
    (void)is_text_.Reserve(rows);
  }

  arrow::Status AppendNull() {
    if (kind_ == Kind::kText) return text_.AppendNull();
    ARROW_RETURN_NOT_OK(is_text_.Append(false));
    return direct_->AppendNull();
  }

  /// Appends `v` (not null); *why says why its JSON type does not fit the
  /// column (then a null is appended).
  arrow::Status Append(const rapidjson::Value& v, std::string* why) {
    switch (kind_) {
      case Kind::kInt64:
        if (v.IsInt64()) return Direct<arrow::Int64Builder>(v.GetInt64());
        break;
      case Kind::kInt32:
        if (v.IsInt()) return Direct<arrow::Int32Builder>(v.GetInt());
        break;
      case Kind::kDouble:
        // The text of a number (its digits for integers, the shortest form that
        // reads back the same double otherwise) converts to this double.
        if (v.IsNumber()) return Direct<arrow::DoubleBuilder>(v.GetDouble());
        break;
      case Kind::kBool:
        if (v.IsBool()) return Direct<arrow::BooleanBuilder>(v.GetBool());
        break;
      case Kind::kString:
        if (v.IsString()) {
          return Direct<arrow::StringBuilder>(std::string_view(v.GetString(), v.GetStringLength()));
        }
        break;
      case Kind::kMicros:
        // Years 0001..9999, which SecondsToIso writes and the text path reads back.
        if (v.IsNumber()) {
          double s = v.GetDouble();
          if (s >= -62135596800.0 && s < 253402300800.0) {
            return Direct<arrow::TimestampBuilder>(std::llround(s * 1e6));
          }
        }
        break;
      case Kind::kText:
        break;
    }
    std::string text;
    *why = JsonToText(v, *type_, &text);
    if (!why->empty()) return AppendNull();
    if (kind_ == Kind::kText) return text_.Append(text);
    ARROW_RETURN_NOT_OK(is_text_.Append(true));
    ARROW_RETURN_NOT_OK(direct_->AppendNull());
    text_rows_.push_back(direct_->length() - 1);
    return text_.Append(text);
  }

  /// The column (of the declared type) and the values that did not convert.
  arrow::Result<ingest::ConvertedColumn> Finish() {
    std::shared_ptr<arrow::Array> text;
    ARROW_RETURN_NOT_OK(text_.Finish(&text));
    if (kind_ == Kind::kText) return ingest::ConvertColumn(text, type_);
    std::shared_ptr<arrow::Array> values;
    ARROW_RETURN_NOT_OK(direct_->Finish(&values));
    if (text_rows_.empty()) return ingest::ConvertedColumn{values, {}};
    ARROW_ASSIGN_OR_RAISE(auto conv, ingest::ConvertColumn(text, type_));
    for (auto& e : conv.errors) e.row = text_rows_[e.row];
    std::shared_ptr<arrow::Array> mask;
    ARROW_RETURN_NOT_OK(is_text_.Finish(&mask));
    ARROW_ASSIGN_OR_RAISE(auto merged, arrow::compute::ReplaceWithMask(values, mask, conv.values));
    conv.values = merged.make_array();
    return conv;
  }

 private:
  enum class Kind { kInt64, kInt32, kDouble, kBool, kString, kMicros, kText };

  template <typename Builder, typename T>
  arrow::Status Direct(T value) {
    ARROW_RETURN_NOT_OK(is_text_.Append(false));
    return static_cast<Builder*>(direct_.get())->Append(value);
  }

  std::shared_ptr<arrow::DataType> type_;
  Kind kind_ = Kind::kText;
  std::unique_ptr<arrow::ArrayBuilder> direct_;  // the typed values (placeholders: null)
  arrow::BooleanBuilder is_text_;                // per row: the value is in text_
  arrow::StringBuilder text_;                    // kText: every row; else the text values
  std::vector<int64_t> text_rows_;               // their rows
};

struct PartitionState {
  int32_t id = 0;
  int64_t next_offset = 0;           // next to read
  int64_t bronze_committed = -1;     // txn version in bronze (-1: none)
  int64_t dead_committed = -1;       // txn version in the dead-letter table
  std::optional<int64_t> watermark;  // newest accepted event time (micros)
  int64_t pending_last = -1;         // last offset decoded and not yet committed (-1: none)
  std::vector<std::shared_ptr<arrow::Table>> rows;  // accepted, decoded
  int64_t pending_rows = 0;
  std::vector<DeadLetter> dead;
  bool at_end = false;
  // When the first pending message was read (for the batch latency).
  std::chrono::steady_clock::time_point batch_started;
};

// One partition's pending messages, handed to a commit.
struct PartitionBatch {
  int32_t id = 0;
  int64_t last = -1;  // its last offset: the txn version of the commit
  std::vector<DeadLetter> dead;
  std::vector<std::shared_ptr<arrow::Table>> rows;
  std::chrono::steady_clock::time_point started;  // its first message read
};

// What a commit did; taken in on the stream's thread (SourceStream::Wait).
struct CommitResult {
  arrow::Status status;
  std::vector<std::pair<int32_t, int64_t>> dead_committed;    // partition, version
  std::vector<std::pair<int32_t, int64_t>> bronze_committed;  // partition, version
  int64_t quarantined = 0;
  int64_t rows_committed = 0;
  int64_t commits = 0;
  LatencyHistogram commit_latency;
  LatencyHistogram batch_latency;
  double seconds = 0;
};

class SourceStream {
 public:
  SourceStream(const repo::FeatureRepository& repo, const registry::RegistryState& state,
               const registry::Source& source, online::OnlineStore* store,
               const StreamOptions& options, std::shared_ptr<Clock> clock)
      : repo_(repo),
        state_(state),
        src_(source),
        store_(store),
        options_(options),
        clock_(std::move(clock)) {}

  arrow::Status Start();
  /// Reads what arrives within `timeout_ms` (at most a few thousand messages),
  /// decodes it and writes it online.
  arrow::Status Poll(int timeout_ms);
  /// Hands every partition's pending rows and dead letters to a commit on
  /// another thread (after waiting for the previous one), so that reading and
  /// online writes go on while Delta commits. A commit's error is returned by
  /// the next Commit() or Wait().
  arrow::Status Commit();
  /// Waits for the commit in flight, if any, and takes in what it committed.
  arrow::Status Wait();
  double last_commit_seconds() const { return last_commit_seconds_; }
  bool AtEnd() const {
    for (const auto& [id, p] : parts_) {
      if (!p.at_end) return false;
    }
    return !parts_.empty();
  }
  int64_t PendingRows() const {
    int64_t n = 0;
    for (const auto& [id, p] : parts_) n += p.pending_rows + static_cast<int64_t>(p.dead.size());
    return n;
  }
  /// Waits until the online writer wrote every row decoded so far.
  arrow::Status DrainOnline() {
    return online_ ? online_->WaitFor(online_->pushed()) : arrow::Status::OK();
  }
  void AddStatus(StreamStats* stats) const;
  StreamStats totals;

 private:
  arrow::Status Decode(PartitionState& p, std::vector<RawMessage> msgs,
                       std::chrono::steady_clock::time_point read_at);
  arrow::Status WriteOnline(const std::vector<std::shared_ptr<arrow::Table>>& tables) const;
  arrow::Status RecoverWatermarks();
  arrow::Status StartAvro();
  arrow::Status WriteBatches(std::vector<PartitionBatch> batches, CommitResult* out) const;
  arrow::Status CommitError(int32_t partition, int64_t last, const std::string& uri,
                            const arrow::Status& st) const;

  const repo::FeatureRepository& repo_;
  const registry::RegistryState& state_;
  const registry::Source& src_;
  online::OnlineStore* store_;
  const StreamOptions& options_;
  std::shared_ptr<Clock> clock_;

  std::string topic_;
  std::string bronze_uri_;
  std::string dead_uri_;
  std::shared_ptr<arrow::Schema> schema_;         // declared columns
  std::shared_ptr<arrow::Schema> bronze_schema_;  // and the partition and offset
  std::vector<std::string> json_fields_;          // per declared column
  std::optional<AvroRecordReader> avro_;          // format avro / avro-confluent
  bool avro_confluent_ = false;
  std::string ts_column_;
  std::vector<std::string> required_;  // join keys fed by views, event time
  std::vector<std::string> partition_by_;
  bool has_online_views_ = false;
  KafkaHandle rk_;
  KafkaQueue queue_;  // the consumer's queue (batch reads)
  std::map<int32_t, PartitionState> parts_;
  double last_commit_seconds_ = 0;
  // Writes decoded rows online (when views are served online); a commit waits
  // for the rows it commits to be written there.
  std::unique_ptr<OnlineWriter> online_;
  // Last: destroyed first, which waits for a commit still in flight (it uses
  // the members above).
  std::future<CommitResult> inflight_;
};

arrow::Status SourceStream::Start() {
  topic_ = src_.kafka.topic;
  std::string brokers = options_.brokers.empty() ? ExpandEnv(src_.kafka.brokers) : options_.brokers;
  if (brokers.empty()) {
    return UserError(ErrorKind::kDefinitionError,
                     "kafka source '" + src_.name + "': its brokers '" + src_.kafka.brokers +
                         "' expand to nothing; set the variable or give --brokers");
  }
  ARROW_ASSIGN_OR_RAISE(auto target, repo_.IngestTargetFor(src_));
  bronze_uri_ = target.table_uri;
  dead_uri_ = repo_.TableUri("quarantine/" + src_.name + "_dead_letters");
  partition_by_ = target.partition_by;
  schema_ = target.schema;
  if (!schema_ || schema_->num_fields() == 0) {
    return UserError(ErrorKind::kDefinitionError,
                     "kafka source '" + src_.name + "' has no declared schema");
  }
  bronze_schema_ = arrow::schema([&] {
    auto fields = schema_->fields();
    fields.push_back(arrow::field(kPartitionColumn, arrow::int32()));
    fields.push_back(arrow::field(kOffsetColumn, arrow::int64()));
    return fields;
  }());
  for (const auto& f : schema_->fields()) {
    auto it = src_.kafka.columns.find(f->name());
    json_fields_.push_back(it == src_.kafka.columns.end() ? f->name() : it->second);
    std::string ignored;
    rapidjson::Value probe;
    std::string why = JsonToText(probe, *f->type(), &ignored);
    if (why.find("cannot be streamed") != std::string::npos) {
      return UserError(ErrorKind::kDefinitionError,
                       "kafka source '" + src_.name + "': column '" + f->name() + "': " + why);
    }
  }
  if (src_.kafka.format == "avro" || src_.kafka.format == "avro-confluent") {
    ARROW_RETURN_NOT_OK(StartAvro());
  } else if (src_.kafka.format != "json" && !src_.kafka.format.empty()) {
    return UserError(ErrorKind::kDefinitionError, "kafka source '" + src_.name +
                                                      "': unknown format '" + src_.kafka.format +
                                                      "' (formats: json, avro, avro-confluent)");
  }
  ts_column_ =
      src_.timestamp_field.empty() ? repo_.config().default_timestamp_field : src_.timestamp_field;
  if (schema_->GetFieldIndex(ts_column_) < 0) {
    return UserError(ErrorKind::kDefinitionError, "kafka source '" + src_.name +
                                                      "': its timestamp field '" + ts_column_ +
                                                      "' is not a declared column");
  }
  // Required: the event time and the join keys of every view fed from the source
  // (stored names: field_mapping maps stored -> view names).
  std::set<std::string> required = {ts_column_};
  for (const auto& v : state_.defs.feature_views) {
    if (v.source != src_.name) continue;
    has_online_views_ = has_online_views_ || v.online;
    for (const auto& en : v.entities) {
      const auto* e = state_.defs.FindEntity(en);
      if (!e) continue;
      for (const auto& k : e->join_keys) {
        std::string stored = k.name;
        for (const auto& [from, to] : src_.field_mapping) {
          if (to == k.name) stored = from;
        }
        required.insert(stored);
      }
    }
  }
  for (const auto& f : schema_->fields()) {
    if (!f->nullable()) required.insert(f->name());
  }
  required_.assign(required.begin(), required.end());

  // Positions: from the bronze and dead-letter tables' txn versions.
  ARROW_ASSIGN_OR_RAISE(auto bronze, delta::DeltaTable::ForPath(bronze_uri_));
  ARROW_ASSIGN_OR_RAISE(auto dead, delta::DeltaTable::ForPath(dead_uri_));
  std::shared_ptr<const delta::Snapshot> bronze_snap, dead_snap;
  ARROW_ASSIGN_OR_RAISE(bool bronze_exists, bronze->Exists());
  if (bronze_exists) {
    ARROW_ASSIGN_OR_RAISE(bronze_snap, bronze->Latest());
  }
  ARROW_ASSIGN_OR_RAISE(bool dead_exists, dead->Exists());
  if (dead_exists) {
    ARROW_ASSIGN_OR_RAISE(dead_snap, dead->Latest());
  }

  ARROW_ASSIGN_OR_RAISE(auto conf, MakeConf({{"bootstrap.servers", brokers},
                                             {"group.id", "stratalake-stream-" + src_.name},
                                             {"enable.auto.commit", "false"},
                                             {"enable.auto.offset.store", "false"},
                                             {"enable.partition.eof", "true"},
                                             {"auto.offset.reset", "earliest"},
                                             // Larger fetches: fewer requests for the
                                             // broker (which shares the machine) to serve
                                             // per message; an idle topic still answers
                                             // at once (fetch.min.bytes 1).
                                             {"max.partition.fetch.bytes", "8388608"},
                                             {"fetch.max.bytes", "67108864"},
                                             {"queued.min.messages", "200000"},
                                             {"log_level", "3"}}));
  ARROW_ASSIGN_OR_RAISE(rk_, MakeClient(std::move(conf), /*producer=*/false));
  rd_kafka_poll_set_consumer(rk_.get());
  queue_.reset(rd_kafka_queue_get_consumer(rk_.get()));
  if (!queue_) return arrow::Status::IOError("kafka source '", src_.name, "': no consumer queue");
  // Wait for the topic (it may be created after the stream starts).
  std::vector<int32_t> ids;
  int64_t deadline = clock_->NowMillis() + 30000;
  bool said = false;
  while (true) {
    auto r = TopicPartitions(rk_.get(), topic_, 5000);
    if (r.ok() && !r->empty()) {
      ids = *r;
      break;
    }
    if (options_.stop && options_.stop->load()) return arrow::Status::OK();
    if (!r.ok() && clock_->NowMillis() > deadline) {
      return arrow::Status::IOError("kafka source '", src_.name, "': brokers ", brokers,
                                    " did not answer for 30 s: ", r.status().message());
    }
    if (r.ok() && !said) {
      std::cerr << "stream: waiting for topic '" << topic_ << "' to exist\n";
      said = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  KafkaPartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(ids.size())));
  for (int32_t id : ids) {
    PartitionState p;
    p.id = id;
    if (bronze_snap) {
      if (auto v = bronze_snap->AppTransactionVersion(TxnAppId(src_.name, id))) {
        p.bronze_committed = *v;
      }
    }
    if (dead_snap) {
      if (auto v = dead_snap->AppTransactionVersion(DeadLetterAppId(src_.name, id))) {
        p.dead_committed = *v;
      }
    }
    p.next_offset = p.bronze_committed + 1;
    rd_kafka_topic_partition_list_add(list.get(), topic_.c_str(), id)->offset =
        p.bronze_committed >= 0 ? p.bronze_committed + 1 : RD_KAFKA_OFFSET_BEGINNING;
    parts_[id] = std::move(p);
  }
  if (bronze_snap) ARROW_RETURN_NOT_OK(RecoverWatermarks());
  if (has_online_views_ && store_) {
    online_ = std::make_unique<OnlineWriter>(
        [this](const std::vector<std::shared_ptr<arrow::Table>>& tables) {
          return WriteOnline(tables);
        });
  }
  rd_kafka_resp_err_t err = rd_kafka_assign(rk_.get(), list.get());
  if (err) {
    return arrow::Status::IOError("cannot assign the partitions of '", topic_,
                                  "': ", rd_kafka_err2str(err));
  }
  return arrow::Status::OK();
}

// The record schema of an avro source, from the definition or its file; every
// declared column must have its field in it.
arrow::Status SourceStream::StartAvro() {
  std::string text = src_.kafka.avro_schema;
  std::string from = "its avro_schema";
  if (!src_.kafka.avro_schema_file.empty()) {
    std::filesystem::path path(src_.kafka.avro_schema_file);
    if (path.is_relative()) path = std::filesystem::path(repo_.config().root) / path;
    from = "its avro_schema_file " + path.string();
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      return UserError(ErrorKind::kDefinitionError, "kafka source '" + src_.name +
                                                        "': cannot read " + from +
                                                        " (paths are relative to the "
                                                        "repository root)");
    }
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  auto reader = AvroRecordReader::Parse(text);
  if (!reader.ok()) {
    return UserError(ErrorKind::kDefinitionError, "kafka source '" + src_.name + "': " + from +
                                                      ": " + reader.status().message());
  }
  for (int c = 0; c < schema_->num_fields(); ++c) {
    if (!reader->HasField(json_fields_[c])) {
      return UserError(ErrorKind::kDefinitionError,
                       "kafka source '" + src_.name + "': column '" + schema_->field(c)->name() +
                           "' reads field '" + json_fields_[c] + "', which " + from +
                           " does not have (its fields: " + reader->FieldNames() +
                           "); map it with kafka.columns");
    }
  }
  avro_ = std::move(*reader);
  avro_confluent_ = src_.kafka.format == "avro-confluent";
  return arrow::Status::OK();
}

// The lateness watermark of each partition is the newest event time among its
// accepted rows, i.e. the max of the time column in bronze per partition: the
// same after a restart as it was, so a message is judged late or not the same
// way every time it is read.
arrow::Status SourceStream::RecoverWatermarks() {
  ARROW_ASSIGN_OR_RAISE(auto bronze, delta::DeltaTable::Open(bronze_uri_));
  delta::ReadOptions ro;
  ro.columns = std::vector<std::string>{kPartitionColumn, ts_column_};
  ARROW_ASSIGN_OR_RAISE(auto reader, bronze->Scan(ro));
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(reader->ReadNext(&batch));
    if (!batch) break;
    auto part = std::static_pointer_cast<arrow::Int32Array>(batch->column(0));
    ARROW_ASSIGN_OR_RAISE(auto ts_col, arrow::compute::Cast(*batch->column(1), arrow::int64()));
    auto ts = std::static_pointer_cast<arrow::Int64Array>(ts_col);
    for (int64_t i = 0; i < batch->num_rows(); ++i) {
      if (part->IsNull(i) || ts->IsNull(i)) continue;
      auto it = parts_.find(part->Value(i));
      if (it == parts_.end()) continue;
      auto& w = it->second.watermark;
      w = std::max(w.value_or(INT64_MIN), ts->Value(i));
    }
  }
  return arrow::Status::OK();
}

arrow::Status SourceStream::Poll(int timeout_ms) {
  // Up to kMaxMessages: the first wait up to timeout_ms for one message, then
  // what librdkafka already holds, in batches (rd_kafka_consume_batch_queue).
  constexpr int64_t kMaxMessages = 5000;
  constexpr int kBatch = 1024;
  std::map<int32_t, std::vector<RawMessage>> got;
  int64_t n = 0;
  auto read_at = std::chrono::steady_clock::now();
  std::vector<rd_kafka_message_t*> batch(kBatch);
  bool first = true;
  while (n < kMaxMessages) {
    ssize_t count = 0;
    if (first) {
      first = false;
      batch[0] = rd_kafka_consumer_poll(rk_.get(), timeout_ms);
      if (!batch[0]) break;
      read_at = std::chrono::steady_clock::now();
      count = 1;
    } else {
      count = rd_kafka_consume_batch_queue(
          queue_.get(), 0, batch.data(),
          static_cast<size_t>(std::min<int64_t>(kBatch, kMaxMessages - n)));
      if (count <= 0) break;
    }
    for (ssize_t k = 0; k < count; ++k) {
      KafkaMessage m(batch[k]);
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        auto it = parts_.find(m->partition);
        if (it != parts_.end()) it->second.at_end = true;
        continue;
      }
      if (m->err) {
        // Transient (a broker away, a rebalance of leaders): librdkafka retries.
        std::cerr << "stream: kafka: " << rd_kafka_message_errstr(m.get()) << "\n";
        continue;
      }
      auto it = parts_.find(m->partition);
      if (it == parts_.end()) continue;
      it->second.at_end = false;
      got[m->partition].push_back(RawMessage{std::move(m)});
      ++n;
    }
  }
  totals.messages += n;
  if (n == 0) return arrow::Status::OK();
  for (auto& [id, msgs] : got) {
    if (msgs.empty()) continue;
    auto& p = parts_[id];
    if (p.pending_last < 0) p.batch_started = read_at;
    ARROW_RETURN_NOT_OK(Decode(p, std::move(msgs), read_at));
  }
  if (!online_) {
    totals.online_latency.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - read_at).count());
  }
  return arrow::Status::OK();
}

arrow::Status SourceStream::Decode(PartitionState& p, std::vector<RawMessage> msgs,
                                   std::chrono::steady_clock::time_point read_at) {
  const int ncols = schema_->num_fields();
  const int64_t n = static_cast<int64_t>(msgs.size());
  std::vector<std::optional<std::string>> reject(msgs.size());
  std::vector<std::unique_ptr<ColumnDecoder>> columns;
  for (const auto& f : schema_->fields()) {
    columns.push_back(std::make_unique<ColumnDecoder>(f->type(), n));
  }
  // 1. JSON: an object whose fields have the JSON types of their columns. One
  // parse per message into a pool on the stack, reset for the next one.
  char pool_buffer[16 << 10];
  rapidjson::MemoryPoolAllocator<> pool(pool_buffer, sizeof(pool_buffer));
  rapidjson::Document d(&pool);
  for (int64_t i = 0; i < n; ++i) {
    pool.Clear();
    int c = 0;
    if (avro_) {
      auto value = msgs[i].value();
      std::string why = avro_->Decode(reinterpret_cast<const uint8_t*>(value.data()), value.size(),
                                      avro_confluent_, &d);
      if (!why.empty()) reject[i] = "bad Avro: " + why;
    } else {
      auto value = msgs[i].value();
      d.Parse(value.data(), value.size());
    }
    if (reject[i]) {
      // not a datum of the schema
    } else if (d.HasParseError()) {
      reject[i] = std::string("bad JSON: ") + rapidjson::GetParseError_En(d.GetParseError()) +
                  " (at byte " + std::to_string(d.GetErrorOffset()) + ")";
    } else if (!d.IsObject()) {
      reject[i] = "bad JSON: the message is " + JsonKind(d) + ", not an object";
    } else {
      for (; c < ncols && !reject[i]; ++c) {
        const auto& field = json_fields_[c];
        auto it = d.FindMember(rapidjson::StringRef(field.data(), field.size()));
        if (it == d.MemberEnd() || it->value.IsNull()) {
          ARROW_RETURN_NOT_OK(columns[c]->AppendNull());
          continue;
        }
        std::string why;
        ARROW_RETURN_NOT_OK(columns[c]->Append(it->value, &why));
        if (!why.empty()) reject[i] = "wrong type: field '" + field + "': " + why;
      }
    }
    for (; c < ncols; ++c) ARROW_RETURN_NOT_OK(columns[c]->AppendNull());
  }
  // 2. Values: the column types (ingestion's conversion rules).
  arrow::ArrayVector typed(ncols);
  for (int c = 0; c < ncols; ++c) {
    ARROW_ASSIGN_OR_RAISE(auto conv, columns[c]->Finish());
    for (const auto& e : conv.errors) {
      if (!reject[e.row]) {
        reject[e.row] = "wrong type: field '" + json_fields_[c] + "': value '" +
                        ingest::Abbreviate(e.value) + "' is " + e.reason;
      }
    }
    typed[c] = conv.values;
  }
  // 3. Required values: the keys and the event time.
  for (const auto& name : required_) {
    int c = schema_->GetFieldIndex(name);
    for (size_t i = 0; i < msgs.size(); ++i) {
      if (!reject[i] && typed[c]->IsNull(i)) {
        reject[i] = name == ts_column_
                        ? "missing event time: no value for '" + json_fields_[c] + "'"
                        : "missing key: no value for '" + json_fields_[c] + "'";
      }
    }
  }
  // 4. Lateness, in offset order.
  int ts_c = schema_->GetFieldIndex(ts_column_);
  ARROW_ASSIGN_OR_RAISE(auto ts_datum, arrow::compute::Cast(*typed[ts_c], arrow::int64()));
  auto ts = std::static_pointer_cast<arrow::Int64Array>(ts_datum);
  int64_t lateness_us = src_.kafka.allowed_lateness_seconds * 1000000;
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (reject[i]) continue;
    int64_t t = ts->Value(i);
    if (p.watermark && t < *p.watermark - lateness_us) {
      reject[i] = "late: event time " + SecondsToIso(t / 1e6) + " is " +
                  registry::FormatDuration((*p.watermark - t) / 1000000) +
                  " before the newest event time of its partition (" +
                  SecondsToIso(*p.watermark / 1e6) + "); allowed lateness is " +
                  registry::FormatDuration(src_.kafka.allowed_lateness_seconds);
      continue;
    }
    p.watermark = std::max(p.watermark.value_or(INT64_MIN), t);
  }
  // 5. Split.
  arrow::BooleanBuilder keep_b;
  std::vector<int32_t> part_ids;
  std::vector<int64_t> offsets;
  for (size_t i = 0; i < msgs.size(); ++i) {
    ARROW_RETURN_NOT_OK(keep_b.Append(!reject[i]));
    if (reject[i]) {
      if (msgs[i].offset() > p.dead_committed) {
        p.dead.push_back({msgs[i].offset(), msgs[i].kafka_ts_ms(), msgs[i].key(),
                          std::string(msgs[i].value()), std::move(*reject[i])});
      }
    } else {
      part_ids.push_back(p.id);
      offsets.push_back(msgs[i].offset());
    }
  }
  p.pending_last = msgs.back().offset();
  p.next_offset = p.pending_last + 1;
  if (offsets.empty()) return arrow::Status::OK();
  std::shared_ptr<arrow::Array> keep;
  ARROW_RETURN_NOT_OK(keep_b.Finish(&keep));
  auto all = arrow::Table::Make(schema_, typed, static_cast<int64_t>(msgs.size()));
  ARROW_ASSIGN_OR_RAISE(auto filtered, arrow::compute::Filter(all, keep));
  auto rows = filtered.table();
  ARROW_ASSIGN_OR_RAISE(auto pa, Int32Array(part_ids));
  ARROW_ASSIGN_OR_RAISE(auto oa, Int64Array(offsets));
  ARROW_ASSIGN_OR_RAISE(
      rows, rows->AddColumn(rows->num_columns(), arrow::field(kPartitionColumn, arrow::int32()),
                            std::make_shared<arrow::ChunkedArray>(pa)));
  ARROW_ASSIGN_OR_RAISE(
      rows, rows->AddColumn(rows->num_columns(), arrow::field(kOffsetColumn, arrow::int64()),
                            std::make_shared<arrow::ChunkedArray>(oa)));
  // Online on the writer's thread, before the Delta commit of these rows.
  if (online_) ARROW_RETURN_NOT_OK(online_->Push(rows, read_at).status());
  p.pending_rows += rows->num_rows();
  p.rows.push_back(std::move(rows));
  return arrow::Status::OK();
}

// On the online writer's thread: `tables` are decoded rows (with the kafka
// partition and offset columns) in decoding order.
arrow::Status SourceStream::WriteOnline(
    const std::vector<std::shared_ptr<arrow::Table>>& tables) const {
  // Plain views: one multi-put for all of them (newer wins per key).
  ARROW_ASSIGN_OR_RAISE(auto all, arrow::ConcatenateTables(tables));
  ARROW_ASSIGN_OR_RAISE(all, all->RemoveColumn(all->num_columns() - 1));
  ARROW_ASSIGN_OR_RAISE(all, all->RemoveColumn(all->num_columns() - 1));
  ARROW_RETURN_NOT_OK(online::WriteStreamedRows(repo_, state_, store_, src_.name, all).status());
  // Window views' tiles (docs/windows.md): with the kafka ids, so a replay is
  // kept once; one call per decoded batch, as before the pipeline.
  for (const auto& t : tables) {
    ARROW_RETURN_NOT_OK(
        online::WriteStreamedWindowRows(repo_, state_, store_, src_.name, t).status());
  }
  return arrow::Status::OK();
}

arrow::Status SourceStream::Commit() {
  ARROW_RETURN_NOT_OK(Wait());
  std::vector<PartitionBatch> batches;
  for (auto& [id, p] : parts_) {
    if (p.pending_last < 0) continue;
    PartitionBatch b;
    b.id = id;
    b.last = p.pending_last;
    b.dead = std::move(p.dead);
    b.rows = std::move(p.rows);
    b.started = p.batch_started;
    batches.push_back(std::move(b));
    p.dead.clear();
    p.rows.clear();
    p.pending_rows = 0;
    p.pending_last = -1;
  }
  if (batches.empty()) return arrow::Status::OK();
  // The rows of these batches were pushed to the online writer up to `online`.
  const int64_t online = online_ ? online_->pushed() : 0;
  inflight_ =
      std::async(std::launch::async, [this, online, batches = std::move(batches)]() mutable {
        CommitResult result;
        auto t0 = std::chrono::steady_clock::now();
        // Online before durable: a crash after the commit does not read them again.
        result.status = online_ ? online_->WaitFor(online) : arrow::Status::OK();
        if (result.status.ok()) result.status = WriteBatches(std::move(batches), &result);
        result.seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        return result;
      });
  return arrow::Status::OK();
}

arrow::Status SourceStream::Wait() {
  if (!inflight_.valid()) return arrow::Status::OK();
  CommitResult r = inflight_.get();
  for (const auto& [id, last] : r.dead_committed) parts_[id].dead_committed = last;
  for (const auto& [id, last] : r.bronze_committed) parts_[id].bronze_committed = last;
  totals.quarantined += r.quarantined;
  totals.rows_committed += r.rows_committed;
  totals.commits += r.commits;
  totals.commit_latency.Merge(r.commit_latency);
  totals.batch_latency.Merge(r.batch_latency);
  last_commit_seconds_ = r.seconds;
  return r.status;
}

// A failed Delta commit, with what it was and what happens next.
arrow::Status SourceStream::CommitError(int32_t partition, int64_t last, const std::string& uri,
                                        const arrow::Status& st) const {
  return st.WithMessage("kafka source '", src_.name, "', partition ", partition,
                        ": cannot commit up to offset ", last, " to ", uri, ": ", st.message(),
                        " (the stream stopped; nothing after the last commit is in the table, "
                        "so the next start reads it again)");
}

// On the commit thread: reads only `batches` and what Start() set up.
arrow::Status SourceStream::WriteBatches(std::vector<PartitionBatch> batches,
                                         CommitResult* out) const {
  for (auto& b : batches) {
    const int32_t id = b.id;
    const int64_t last = b.last;
    if (!b.dead.empty()) {
      arrow::StringBuilder topic, reason;
      arrow::Int32Builder part;
      arrow::Int64Builder offset;
      auto ts_type = arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
      arrow::TimestampBuilder kts(ts_type, arrow::default_memory_pool());
      arrow::TimestampBuilder qts(ts_type, arrow::default_memory_pool());
      arrow::BinaryBuilder key, value;
      int64_t now_us = clock_->NowMillis() * 1000;
      for (const auto& d : b.dead) {
        ARROW_RETURN_NOT_OK(topic.Append(topic_));
        ARROW_RETURN_NOT_OK(part.Append(id));
        ARROW_RETURN_NOT_OK(offset.Append(d.offset));
        ARROW_RETURN_NOT_OK(d.kafka_ts_ms >= 0 ? kts.Append(d.kafka_ts_ms * 1000)
                                               : kts.AppendNull());
        ARROW_RETURN_NOT_OK(d.key ? key.Append(*d.key) : key.AppendNull());
        ARROW_RETURN_NOT_OK(value.Append(d.value));
        ARROW_RETURN_NOT_OK(reason.Append(d.reason));
        ARROW_RETURN_NOT_OK(qts.Append(now_us));
      }
      arrow::ArrayVector cols(8);
      ARROW_RETURN_NOT_OK(topic.Finish(&cols[0]));
      ARROW_RETURN_NOT_OK(part.Finish(&cols[1]));
      ARROW_RETURN_NOT_OK(offset.Finish(&cols[2]));
      ARROW_RETURN_NOT_OK(kts.Finish(&cols[3]));
      ARROW_RETURN_NOT_OK(key.Finish(&cols[4]));
      ARROW_RETURN_NOT_OK(value.Finish(&cols[5]));
      ARROW_RETURN_NOT_OK(reason.Finish(&cols[6]));
      ARROW_RETURN_NOT_OK(qts.Finish(&cols[7]));
      auto table = arrow::Table::Make(DeadLetterSchema(), cols);
      ARROW_ASSIGN_OR_RAISE(auto dead, delta::DeltaTable::ForPath(dead_uri_));
      delta::WriteOptions wo;
      wo.txn = delta::AppTransaction{DeadLetterAppId(src_.name, id), last, std::nullopt};
      auto t0 = std::chrono::steady_clock::now();
      auto written = dead->Write(table, wo);
      if (!written.ok()) return CommitError(id, last, dead_uri_, written.status());
      auto& r = *written;
      out->commit_latency.Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (!r.noop) {
        out->quarantined += table->num_rows();
        ++out->commits;
      }
      out->dead_committed.emplace_back(id, last);
    }
    // Always a bronze commit, also when only dead letters came since the last
    // one: an empty commit still moves the partition's txn version, so a
    // restart does not read them again.
    std::shared_ptr<arrow::Table> rows;
    if (b.rows.empty()) {
      ARROW_ASSIGN_OR_RAISE(rows, arrow::Table::MakeEmpty(bronze_schema_));
    } else {
      ARROW_ASSIGN_OR_RAISE(rows, arrow::ConcatenateTables(b.rows));
    }
    ARROW_ASSIGN_OR_RAISE(auto bronze, delta::DeltaTable::ForPath(bronze_uri_));
    delta::WriteOptions wo;
    wo.partition_by = partition_by_;
    wo.txn = delta::AppTransaction{TxnAppId(src_.name, id), last, std::nullopt};
    auto t0 = std::chrono::steady_clock::now();
    auto written = bronze->Write(rows, wo);
    if (!written.ok()) return CommitError(id, last, bronze_uri_, written.status());
    auto& r = *written;
    auto t1 = std::chrono::steady_clock::now();
    out->commit_latency.Observe(std::chrono::duration<double>(t1 - t0).count());
    out->batch_latency.Observe(std::chrono::duration<double>(t1 - b.started).count());
    if (r.noop) {
      return UserError(ErrorKind::kConcurrentTransaction,
                       "kafka source '" + src_.name + "', partition " + std::to_string(id) +
                           ": another writer already committed offset " + std::to_string(last) +
                           " to " + bronze_uri_ +
                           " (is a second `stratalake stream` running for this source?)");
    }
    out->rows_committed += rows->num_rows();
    ++out->commits;
    out->bronze_committed.emplace_back(id, last);
  }
  return arrow::Status::OK();
}

void SourceStream::AddStatus(StreamStats* stats) const {
  StreamStats own = totals;
  if (online_) online_->AddStats(&own);
  stats->messages += own.messages;
  stats->rows_committed += own.rows_committed;
  stats->quarantined += own.quarantined;
  stats->online_rows += own.online_rows;
  stats->commits += own.commits;
  stats->batch_latency.Merge(own.batch_latency);
  stats->commit_latency.Merge(own.commit_latency);
  stats->online_latency.Merge(own.online_latency);
  SourceStats mine;
  mine.source = src_.name;
  mine.messages = own.messages;
  mine.rows_committed = own.rows_committed;
  mine.quarantined = own.quarantined;
  mine.online_rows = own.online_rows;
  mine.commits = own.commits;
  stats->sources.push_back(std::move(mine));
  for (const auto& [id, p] : parts_) {
    PartitionStatus s;
    s.source = src_.name;
    s.partition = id;
    s.next_offset = p.next_offset;
    s.committed_offset = std::max(p.bronze_committed, p.dead_committed);
    int64_t low = 0, high = 0;
    if (rd_kafka_get_watermark_offsets(rk_.get(), topic_.c_str(), id, &low, &high) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        high >= 0) {
      s.end_offset = high;
    }
    stats->partitions.push_back(s);
  }
}

}  // namespace

void LatencyHistogram::Observe(double seconds) {
  int b = 0;
  while (b < kNumBounds && seconds > kBounds[b]) ++b;
  ++counts[b];
  ++count;
  sum += seconds;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int b = 0; b <= kNumBounds; ++b) counts[b] += other.counts[b];
  count += other.count;
  sum += other.sum;
}

double LatencyHistogram::Quantile(double q) const {
  if (count == 0) return 0;
  int64_t want = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(q * count)));
  int64_t cum = 0;
  for (int b = 0; b < kNumBounds; ++b) {
    cum += counts[b];
    if (cum >= want) return kBounds[b];
  }
  return std::numeric_limits<double>::infinity();
}

std::string MetricsText(const StreamStats& s) {
  std::string out;
  auto head = [&](const char* name, const char* type, const char* help) {
    out += std::string("# HELP stratalake_stream_") + name + " " + help +
           "\n# TYPE stratalake_stream_" + name + " " + type + "\n";
  };
  auto number = [](double v) {
    char num[64];
    snprintf(num, sizeof(num), "%.9g", v);
    return std::string(num);
  };
  auto per_source = [&](const char* name, const char* help, int64_t SourceStats::*field) {
    head(name, "counter", help);
    for (const auto& src : s.sources) {
      out += std::string("stratalake_stream_") + name + "{source=\"" + src.source + "\"} " +
             std::to_string(src.*field) + "\n";
    }
  };
  per_source("messages_total", "Kafka messages read.", &SourceStats::messages);
  per_source("rows_committed_total", "Rows appended to the bronze table.",
             &SourceStats::rows_committed);
  per_source("quarantined_total", "Messages appended to the dead-letter table.",
             &SourceStats::quarantined);
  per_source("online_rows_total", "Rows written to the online store.", &SourceStats::online_rows);
  per_source("commits_total", "Delta commits (bronze and dead letters).", &SourceStats::commits);
  auto per_partition = [&](const char* name, const char* help, auto value) {
    head(name, "gauge", help);
    for (const auto& p : s.partitions) {
      int64_t v = value(p);
      if (v < 0) continue;
      out += std::string("stratalake_stream_") + name + "{source=\"" + p.source +
             "\",partition=\"" + std::to_string(p.partition) + "\"} " + std::to_string(v) + "\n";
    }
  };
  per_partition("lag", "End offset minus the next offset to read.", [](const PartitionStatus& p) {
    return p.end_offset < 0 ? int64_t{-1} : std::max<int64_t>(0, p.end_offset - p.next_offset);
  });
  per_partition("committed_offset", "Last offset durable in the Delta tables.",
                [](const PartitionStatus& p) { return p.committed_offset; });
  head("rows_per_second", "gauge", "Messages read per second over the last second.");
  out += "stratalake_stream_rows_per_second " + number(s.rows_per_second) + "\n";
  head("last_commit_seconds", "gauge", "Duration of the last round of commits.");
  out += "stratalake_stream_last_commit_seconds " + number(s.last_commit_seconds) + "\n";
  auto histogram = [&](const char* name, const char* help, const LatencyHistogram& h) {
    head(name, "histogram", help);
    int64_t cum = 0;
    for (int b = 0; b <= LatencyHistogram::kNumBounds; ++b) {
      cum += h.counts[b];
      out += std::string("stratalake_stream_") + name + "_bucket{le=\"" +
             (b < LatencyHistogram::kNumBounds ? number(LatencyHistogram::kBounds[b])
                                               : std::string("+Inf")) +
             "\"} " + std::to_string(cum) + "\n";
    }
    out += std::string("stratalake_stream_") + name + "_sum " + number(h.sum) + "\n";
    out += std::string("stratalake_stream_") + name + "_count " + std::to_string(h.count) + "\n";
  };
  histogram("batch_latency_seconds",
            "Per micro-batch of a partition: first message read to durable in bronze.",
            s.batch_latency);
  histogram("commit_seconds", "Per Delta commit (bronze or dead letters): its duration.",
            s.commit_latency);
  histogram("online_latency_seconds",
            "Per decoded batch (a poll's messages of one partition): read to written online.",
            s.online_latency);
  return out;
}

arrow::Result<StreamStats> RunStream(const repo::FeatureRepository& repo,
                                     const registry::RegistryState& state,
                                     online::OnlineStore* store, const StreamOptions& options) {
  auto clock = options.clock ? options.clock : Clock::System();
  std::vector<const registry::Source*> sources;
  std::string kafka_names;
  for (const auto& s : state.defs.sources) {
    if (s.type == registry::SourceType::kKafka) {
      kafka_names += (kafka_names.empty() ? "" : ", ") + s.name;
      if (options.sources.empty()) sources.push_back(&s);
    }
  }
  for (const auto& name : options.sources) {
    const auto* s = state.defs.FindSource(name);
    if (!s || s->type != registry::SourceType::kKafka) {
      return UserError(ErrorKind::kObjectNotFound,
                       "no kafka source '" + name + "' in the registry (kafka sources: " +
                           (kafka_names.empty() ? "none" : kafka_names) +
                           "); declare it and run `stratalake apply`");
    }
    sources.push_back(s);
  }
  if (sources.empty()) {
    return UserError(ErrorKind::kObjectNotFound,
                     "the registry has no kafka sources; declare one (type: kafka) and run "
                     "`stratalake apply`");
  }
  if (options.commit_interval_ms <= 0 || options.max_batch_rows <= 0) {
    return arrow::Status::Invalid("the commit interval and max batch rows must be positive");
  }
  std::unique_ptr<MetricsServer> metrics;
  if (options.metrics_port >= 0) {
    ARROW_ASSIGN_OR_RAISE(metrics, MetricsServer::Start(options.metrics_port));
    if (options.on_metrics_port) options.on_metrics_port(metrics->port());
  }
  std::vector<std::unique_ptr<SourceStream>> streams;
  for (const auto* s : sources) {
    streams.push_back(std::make_unique<SourceStream>(repo, state, *s, store, options, clock));
    ARROW_RETURN_NOT_OK(streams.back()->Start());
  }
  int64_t rate_ms = clock->NowMillis();
  int64_t rate_messages = 0;
  double rate = 0;
  auto status = [&](double commit_seconds) {
    StreamStats st;
    for (const auto& s : streams) s->AddStatus(&st);
    st.last_commit_seconds = commit_seconds;
    int64_t now = clock->NowMillis();
    if (now - rate_ms >= 500) {
      rate = (st.messages - rate_messages) * 1000.0 / static_cast<double>(now - rate_ms);
      rate_ms = now;
      rate_messages = st.messages;
    }
    st.rows_per_second = rate;
    if (metrics) metrics->Publish(MetricsText(st));
    return st;
  };
  status(0);
  auto stopping = [&] { return options.stop && options.stop->load(); };
  int64_t last_commit = clock->NowMillis();
  int64_t last_status = last_commit;
  constexpr int64_t kTileGcIntervalMs = 60000;
  constexpr size_t kTileGcMaxDeletes = 10000;
  int64_t last_tile_gc = last_commit;
  bool has_window_views = false;
  for (const auto* s : sources) {
    for (const auto& v : state.defs.feature_views) {
      has_window_views =
          has_window_views || (store && v.source == s->name && v.online && !v.aggregations.empty());
    }
  }
  double commit_seconds = 0;
  auto commit_all = [&]() -> arrow::Status {
    for (auto& s : streams) ARROW_RETURN_NOT_OK(s->Commit());
    commit_seconds = 0;
    for (auto& s : streams) commit_seconds = std::max(commit_seconds, s->last_commit_seconds());
    last_commit = clock->NowMillis();
    return arrow::Status::OK();
  };
  while (!stopping()) {
    int per_source = std::max(1, 100 / static_cast<int>(streams.size()));
    for (auto& s : streams) ARROW_RETURN_NOT_OK(s->Poll(per_source));
    int64_t pending = 0;
    for (auto& s : streams) pending += s->PendingRows();
    int64_t now = clock->NowMillis();
    if (pending >= options.max_batch_rows || now - last_commit >= options.commit_interval_ms) {
      ARROW_RETURN_NOT_OK(commit_all());
    }
    // Tile GC for the window views (docs/windows.md): once a minute, a bounded
    // number of expired tiles per pass.
    if (has_window_views && now - last_tile_gc >= kTileGcIntervalMs) {
      // Not beside the online writers' tile writes.
      for (auto& s : streams) ARROW_RETURN_NOT_OK(s->DrainOnline());
      for (const auto* s : sources) {
        ARROW_RETURN_NOT_OK(
            online::CollectSourceWindowTiles(state, store, s->name, now * 1000, kTileGcMaxDeletes)
                .status());
      }
      last_tile_gc = now;
    }
    if (options.stop_at_end) {
      bool all = true;
      for (auto& s : streams) all = all && s->AtEnd();
      if (all) break;
    }
    if ((options.on_status || metrics) && now - last_status >= 1000) {
      auto st = status(commit_seconds);
      if (options.on_status) options.on_status(st);
      last_status = now;
    }
  }
  // Stop: commit what was read (SIGTERM, stop_at_end), and wait for it.
  ARROW_RETURN_NOT_OK(commit_all());
  for (auto& s : streams) ARROW_RETURN_NOT_OK(s->Wait());
  for (auto& s : streams) commit_seconds = std::max(commit_seconds, s->last_commit_seconds());
  StreamStats final_stats = status(commit_seconds);
  if (options.on_status) options.on_status(final_stats);
  return final_stats;
}

}  // namespace stratalake::stream
