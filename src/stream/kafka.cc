#include "stream/kafka.h"

#include <algorithm>

#include <arrow/status.h>

namespace stratalake::stream {

arrow::Result<KafkaConf> MakeConf(
    const std::vector<std::pair<std::string, std::string>>& settings) {
  KafkaConf conf(rd_kafka_conf_new());
  char err[512];
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), err, sizeof(err)) !=
        RD_KAFKA_CONF_OK) {
      return arrow::Status::Invalid("Kafka setting ", name, "=", value, ": ", err);
    }
  }
  return conf;
}

arrow::Result<KafkaHandle> MakeClient(KafkaConf conf, bool producer) {
  char err[512];
  rd_kafka_t* rk =
      rd_kafka_new(producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER, conf.get(), err, sizeof(err));
  if (!rk) return arrow::Status::IOError("cannot create a Kafka client: ", err);
  conf.release();  // rd_kafka_new took it
  return KafkaHandle(rk);
}

arrow::Result<std::vector<int32_t>> TopicPartitions(rd_kafka_t* rk, const std::string& topic,
                                                    int timeout_ms) {
  KafkaTopic t(rd_kafka_topic_new(rk, topic.c_str(), nullptr));
  if (!t) return arrow::Status::Invalid("bad Kafka topic name '", topic, "'");
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, t.get(), &md, timeout_ms);
  KafkaMetadata owned(md);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return arrow::Status::IOError("cannot read the metadata of Kafka topic '", topic,
                                  "': ", rd_kafka_err2str(err));
  }
  std::vector<int32_t> out;
  for (int i = 0; i < md->topic_cnt; ++i) {
    const auto& tm = md->topics[i];
    if (topic != tm.topic || tm.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    for (int p = 0; p < tm.partition_cnt; ++p) out.push_back(tm.partitions[p].id);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace stratalake::stream
