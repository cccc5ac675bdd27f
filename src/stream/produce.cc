// `stratalake stream produce` (lines of a file) and `stream produce-sample`:
// messages into a Kafka topic (tests, demos), optionally paced.
#include <arrow/util/base64.h>
#include <librdkafka/rdkafka.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>

#include "common/errors.h"
#include "stratalake/status.h"
#include "stratalake/stream.h"
#include "stream/kafka.h"

namespace stratalake::stream {

namespace {

// Delivery reports: count the messages the brokers refused.
std::atomic<int64_t> g_failed{0};
std::string g_first_error;  // written by the poll thread (ours) only

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  if (m->err) {
    if (g_failed.fetch_add(1) == 0) g_first_error = rd_kafka_err2str(m->err);
  }
}

// Creates `topic` with `partitions` partitions unless it exists.
arrow::Status EnsureTopic(rd_kafka_t* rk, const std::string& topic, int32_t partitions) {
  ARROW_ASSIGN_OR_RAISE(auto existing, TopicPartitions(rk, topic, 10000));
  if (!existing.empty()) return arrow::Status::OK();
  char err[512];
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), partitions, 1, err, sizeof(err));
  if (!nt) return arrow::Status::Invalid("cannot create topic '", topic, "': ", err);
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, nullptr, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 15000);
  arrow::Status st;
  if (!ev) {
    st = arrow::Status::IOError("creating topic '", topic, "' timed out");
  } else {
    const rd_kafka_CreateTopics_result_t* res = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t** results =
        res ? rd_kafka_CreateTopics_result_topics(res, &n) : nullptr;
    if (rd_kafka_event_error(ev)) {
      st = arrow::Status::IOError("cannot create topic '", topic,
                                  "': ", rd_kafka_event_error_string(ev));
    }
    for (size_t i = 0; i < n && st.ok(); ++i) {
      auto e = rd_kafka_topic_result_error(results[i]);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        st = arrow::Status::IOError("cannot create topic '", topic,
                                    "': ", rd_kafka_topic_result_error_string(results[i]));
      }
    }
    rd_kafka_event_destroy(ev);
  }
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  return st;
}

}  // namespace

arrow::Result<int64_t> ProduceMessages(
    const ProduceOptions& options,
    const std::function<bool(std::string* key, std::string* value)>& next) {
  if (options.brokers.empty()) {
    return UserError(ErrorKind::kDefinitionError, "produce: no brokers (give --brokers)");
  }
  if (options.topic.empty()) return UserError(ErrorKind::kDefinitionError, "produce: no --topic");
  if (options.partitions < 1) {
    return UserError(ErrorKind::kDefinitionError, "produce: --partitions must be at least 1");
  }
  if (!(options.messages_per_second >= 0)) {
    return UserError(ErrorKind::kDefinitionError, "produce: --rate must be 0 or more");
  }
  ARROW_ASSIGN_OR_RAISE(auto conf, MakeConf({{"bootstrap.servers", options.brokers},
                                             {"enable.idempotence", "true"},
                                             // EnsureTopic creates it with its partitions.
                                             {"allow.auto.create.topics", "false"},
                                             {"linger.ms", "5"},
                                             {"log_level", "3"}}));
  rd_kafka_conf_set_dr_msg_cb(conf.get(), OnDelivery);
  ARROW_ASSIGN_OR_RAISE(auto rk, MakeClient(std::move(conf), /*producer=*/true));
  ARROW_RETURN_NOT_OK(EnsureTopic(rk.get(), options.topic, options.partitions));
  g_failed = 0;
  int64_t produced = 0;
  std::string key, value;
  const auto started = std::chrono::steady_clock::now();
  while (next(&key, &value)) {
    if (options.messages_per_second > 0) {
      // Message i leaves no earlier than i / rate seconds after the first.
      const auto due = started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                     std::chrono::duration<double>(static_cast<double>(produced) /
                                                                   options.messages_per_second));
      for (auto now = std::chrono::steady_clock::now(); now < due;
           now = std::chrono::steady_clock::now()) {
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(due - now);
        rd_kafka_poll(rk.get(), static_cast<int>(std::clamp<int64_t>(wait.count(), 0, 50)));
      }
    }
    while (true) {
      rd_kafka_resp_err_t err =
          rd_kafka_producev(rk.get(), RD_KAFKA_V_TOPIC(options.topic.c_str()),
                            RD_KAFKA_V_VALUE(value.data(), value.size()),
                            RD_KAFKA_V_KEY(key.empty() ? nullptr : key.data(), key.size()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(rk.get(), 50);
        continue;
      }
      if (err) return arrow::Status::IOError("cannot produce to Kafka: ", rd_kafka_err2str(err));
      break;
    }
    ++produced;
    rd_kafka_poll(rk.get(), 0);
  }
  rd_kafka_resp_err_t err = rd_kafka_flush(rk.get(), 60000);
  if (err) return arrow::Status::IOError("Kafka did not acknowledge every message in 60 s");
  if (g_failed > 0) {
    return arrow::Status::IOError(g_failed.load(),
                                  " message(s) were refused by Kafka: ", g_first_error);
  }
  return produced;
}

arrow::Result<int64_t> ProduceLines(const ProduceOptions& options, const std::string& path) {
  if (options.base64 && !options.key_field.empty()) {
    return UserError(ErrorKind::kDefinitionError,
                     "produce: --key reads a JSON field, so it cannot go with --base64");
  }
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path);
    if (!file) return UserError(ErrorKind::kFileNotFound, "cannot read '" + path + "'");
    in = &file;
  }
  std::string line;
  int64_t line_no = 0;
  arrow::Status bad_line;  // the first line that is not base64 stops the producer
  ARROW_ASSIGN_OR_RAISE(
      int64_t produced, ProduceMessages(options, [&](std::string* key, std::string* value) {
        while (std::getline(*in, line)) {
          ++line_no;
          if (options.base64 && !line.empty() && line.back() == '\r') line.pop_back();
          if (line.empty()) continue;
          key->clear();
          if (options.base64) {
            std::string bytes = arrow::util::base64_decode(line);
            if (bytes.empty()) {
              bad_line =
                  UserError(ErrorKind::kDataRejected, "produce: line " + std::to_string(line_no) +
                                                          " of '" + path + "' is not base64");
              return false;
            }
            *value = std::move(bytes);
            return true;
          }
          if (!options.key_field.empty()) {
            rapidjson::Document d;
            d.Parse(line.data(), line.size());
            if (!d.HasParseError() && d.IsObject()) {
              auto it = d.FindMember(options.key_field.c_str());
              if (it != d.MemberEnd()) {
                if (it->value.IsString()) {
                  *key = it->value.GetString();
                } else if (it->value.IsInt64()) {
                  *key = std::to_string(it->value.GetInt64());
                }
              }
            }
          }
          *value = line;
          return true;
        }
        return false;
      }));
  ARROW_RETURN_NOT_OK(bad_line);
  return produced;
}

}  // namespace stratalake::stream
