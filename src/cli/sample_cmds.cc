// `stratalake stream produce-sample`: the markets template's generated trades
// (include/stratalake/init.h, GenerateSampleTrades) into a Kafka topic, paced.
#include <cstdlib>
#include <iostream>
#include <string>

#include <arrow/util/value_parsing.h>

#include "commands.h"
#include "stratalake/clock.h"
#include "stratalake/init.h"
#include "stratalake/stream.h"

namespace stratalake::cli {

arrow::Status CmdProduceSample(const Args& a) {
  if (a.positional.size() != 1) {
    return UsageError("stream produce-sample takes no FILE: it generates the trades");
  }
  stream::ProduceOptions o;
  o.brokers = a.GetOr("--brokers", "");
  for (const char* var : {"STRATALAKE_KAFKA_BROKERS", "KAFKA_BROKERS"}) {
    const char* env = std::getenv(var);
    if (o.brokers.empty() && env != nullptr) o.brokers = env;
  }
  if (o.brokers.empty()) {
    return UsageError("give --brokers (or set STRATALAKE_KAFKA_BROKERS or KAFKA_BROKERS)");
  }
  o.topic = a.GetOr("--topic", "trades");
  ARROW_ASSIGN_OR_RAISE(auto parts, IntOpt(a, "--partitions", 1));
  if (parts < 1 || parts > 1000) return UsageError("--partitions must be 1..1000");
  o.partitions = static_cast<int32_t>(parts);
  if (auto rate = a.Get("--rate")) {
    char* end = nullptr;
    o.messages_per_second = std::strtod(rate->c_str(), &end);
    if (rate->empty() || *end != '\0' || !(o.messages_per_second >= 0)) {
      return UsageError("--rate must be a number of messages per second (0 = no limit), not '" +
                        *rate + "'");
    }
  }
  repo::SampleTradesOptions t;
  ARROW_ASSIGN_OR_RAISE(int64_t seed, IntOpt(a, "--seed", 42));
  t.seed = static_cast<uint64_t>(seed);
  ARROW_ASSIGN_OR_RAISE(t.minutes, IntOpt(a, "--minutes", 120));
  int64_t as_of_ms = Clock::System()->NowMillis();
  if (auto as_of = a.Get("--as-of")) {
    static const auto parser = arrow::TimestampParser::MakeISO8601();
    if (!(*parser)(as_of->data(), as_of->size(), arrow::TimeUnit::MILLI, &as_of_ms)) {
      return UsageError("--as-of '" + *as_of +
                        "' is not a date (e.g. 2026-09-01) or ISO 8601 time");
    }
  }
  if (auto end_at = a.Get("--end-at")) {
    if (a.Has("--as-of")) return UsageError("give --as-of or --end-at, not both");
    static const auto parser = arrow::TimestampParser::MakeISO8601();
    if (*end_at != "now" &&
        !(*parser)(end_at->data(), end_at->size(), arrow::TimeUnit::MILLI, &as_of_ms)) {
      return UsageError("--end-at '" + *end_at +
                        "' is not 'now' or an ISO 8601 time (e.g. 2026-09-01T12:30:00Z)");
    }
    t.exact_anchor = true;
  }
  t.anchor_s = as_of_ms >= 0 ? as_of_ms / 1000 : -((-as_of_ms + 999) / 1000);
  ARROW_ASSIGN_OR_RAISE(auto trades, repo::GenerateSampleTrades(t));
  size_t i = 0;
  ARROW_ASSIGN_OR_RAISE(auto n,
                        stream::ProduceMessages(o, [&](std::string* key, std::string* value) {
                          if (i == trades.size()) return false;
                          *key = trades[i].key;
                          *value = std::move(trades[i].json);
                          ++i;
                          return true;
                        }));
  if (a.Has("--json")) {
    std::cout << "{\"produced\":" << n << "}\n";
  } else {
    std::cout << "produced " << n << " sample trades to " << o.topic << "\n";
  }
  return arrow::Status::OK();
}

}  // namespace stratalake::cli
