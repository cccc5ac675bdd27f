// RAII over librdkafka's C API (Debian's librdkafka-dev): handles, configuration,
// messages, metadata and partition lists are freed by their owners.
//
// Thread-safety: a Kafka handle is thread-safe (librdkafka's guarantee); the
// other wrappers are not.
#pragma once

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>

namespace stratalake::stream {

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const {
    if (rk) rd_kafka_destroy(rk);
  }
  void operator()(rd_kafka_message_t* m) const {
    if (m) rd_kafka_message_destroy(m);
  }
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    if (l) rd_kafka_topic_partition_list_destroy(l);
  }
  void operator()(rd_kafka_conf_t* c) const {
    if (c) rd_kafka_conf_destroy(c);
  }
  void operator()(rd_kafka_topic_t* t) const {
    if (t) rd_kafka_topic_destroy(t);
  }
  void operator()(const rd_kafka_metadata_t* md) const {
    if (md) rd_kafka_metadata_destroy(md);
  }
  void operator()(rd_kafka_queue_t* q) const {
    if (q) rd_kafka_queue_destroy(q);
  }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaDeleter>;
using KafkaMessage = std::unique_ptr<rd_kafka_message_t, KafkaDeleter>;
using KafkaPartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, KafkaDeleter>;
using KafkaConf = std::unique_ptr<rd_kafka_conf_t, KafkaDeleter>;
using KafkaTopic = std::unique_ptr<rd_kafka_topic_t, KafkaDeleter>;
using KafkaMetadata = std::unique_ptr<const rd_kafka_metadata_t, KafkaDeleter>;
using KafkaQueue = std::unique_ptr<rd_kafka_queue_t, KafkaDeleter>;

/// A configuration with `settings` (name, value) applied; an unknown name or a
/// bad value is an error that names it.
arrow::Result<KafkaConf> MakeConf(const std::vector<std::pair<std::string, std::string>>& settings);

/// A consumer (`producer` false) or producer on `conf` (which it takes).
arrow::Result<KafkaHandle> MakeClient(KafkaConf conf, bool producer);

/// The partition ids of `topic`, sorted; an empty list when the topic does not
/// exist (yet). Errors when the brokers do not answer within `timeout_ms`.
arrow::Result<std::vector<int32_t>> TopicPartitions(rd_kafka_t* rk, const std::string& topic,
                                                    int timeout_ms);

}  // namespace stratalake::stream
