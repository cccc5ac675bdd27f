// `stratalake stream [SOURCE...]` (Kafka into bronze Delta tables and the online
// store) and `stratalake stream produce` (lines of a file into a topic).
#include <unistd.h>
#include <csignal>
#include <iostream>

#include "commands.h"
#include "stratalake/online.h"
#include "stratalake/registry.h"
#include "stratalake/repo.h"
#include "stratalake/stream.h"

namespace stratalake::cli {

namespace {

std::atomic<bool> g_stop{false};

extern "C" void OnStopSignal(int) { g_stop.store(true); }

std::string StatusLine(const stream::StreamStats& s, int64_t elapsed_ms) {
  int64_t lag = 0;
  bool known = true;
  for (const auto& p : s.partitions) {
    if (p.end_offset < 0) {
      known = false;
    } else {
      lag += std::max<int64_t>(0, p.end_offset - p.next_offset);
    }
  }
  double secs = std::max<double>(1e-3, elapsed_ms / 1000.0);
  char buf[256];
  snprintf(buf, sizeof(buf),
           "read %lld  committed %lld  quarantined %lld  online %lld  lag %s  %.0f rows/s  "
           "last commit %.0f ms  batch p99 %.0f ms",
           static_cast<long long>(s.messages), static_cast<long long>(s.rows_committed),
           static_cast<long long>(s.quarantined), static_cast<long long>(s.online_rows),
           known ? std::to_string(lag).c_str() : "?",
           s.rows_per_second > 0 ? s.rows_per_second : s.messages / secs,
           s.last_commit_seconds * 1000, s.batch_latency.Quantile(0.99) * 1000);
  return buf;
}

arrow::Status CmdProduce(const Args& a) {
  if (a.positional.size() != 2) return UsageError("stream produce takes FILE.jsonl (or -)");
  stream::ProduceOptions o;
  o.brokers = a.GetOr("--brokers", "");
  if (o.brokers.empty()) {
    const char* env = std::getenv("STRATALAKE_KAFKA_BROKERS");
    o.brokers = env ? env : "";
  }
  if (o.brokers.empty()) return UsageError("give --brokers (or set STRATALAKE_KAFKA_BROKERS)");
  o.topic = a.GetOr("--topic", "");
  if (o.topic.empty()) return UsageError("stream produce needs --topic");
  ARROW_ASSIGN_OR_RAISE(auto parts, IntOpt(a, "--partitions", 1));
  o.partitions = static_cast<int32_t>(parts);
  o.key_field = a.GetOr("--key", "");
  o.base64 = a.Has("--base64");
  if (o.base64 && !o.key_field.empty()) return UsageError("--key cannot go with --base64");
  ARROW_ASSIGN_OR_RAISE(auto n, stream::ProduceLines(o, a.positional[1]));
  if (a.Has("--json")) {
    std::cout << "{\"produced\":" << n << "}\n";
  } else {
    std::cout << "produced " << n << " messages to " << o.topic << "\n";
  }
  return arrow::Status::OK();
}

arrow::Status CmdStream(const Args& a) {
  if (!a.positional.empty() && a.positional[0] == "produce") return CmdProduce(a);
  if (!a.positional.empty() && a.positional[0] == "produce-sample") return CmdProduceSample(a);
  stream::StreamOptions o;
  o.sources = a.positional;
  o.brokers = a.GetOr("--brokers", "");
  ARROW_ASSIGN_OR_RAISE(o.commit_interval_ms, IntOpt(a, "--commit-interval-ms", 1000));
  ARROW_ASSIGN_OR_RAISE(o.max_batch_rows, IntOpt(a, "--max-batch-rows", 50000));
  if (o.commit_interval_ms <= 0) return UsageError("--commit-interval-ms must be positive");
  if (o.max_batch_rows <= 0) return UsageError("--max-batch-rows must be positive");
  o.stop_at_end = a.Has("--stop-at-end");
  if (a.Has("--metrics-port")) {
    ARROW_ASSIGN_OR_RAISE(auto port, IntOpt(a, "--metrics-port", -1));
    if (port < 0 || port > 65535) return UsageError("--metrics-port must be 0..65535");
    o.metrics_port = static_cast<int>(port);
    o.on_metrics_port = [](int p) {
      std::cerr << "stream: metrics on http://127.0.0.1:" << p << "/metrics\n";
    };
  }
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  ARROW_ASSIGN_OR_RAISE(auto reg, r->registry());
  ARROW_ASSIGN_OR_RAISE(auto state, reg->Load());
  ARROW_ASSIGN_OR_RAISE(auto store, online::OpenRepositoryStore(*r));
  g_stop.store(false);
  std::signal(SIGTERM, OnStopSignal);
  std::signal(SIGINT, OnStopSignal);
  o.stop = &g_stop;
  bool tty = isatty(STDERR_FILENO) && !a.Has("--json");
  auto started = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 started)
        .count();
  };
  if (tty) {
    o.on_status = [&](const stream::StreamStats& s) {
      std::cerr << "\r\x1b[2K" << StatusLine(s, elapsed()) << std::flush;
    };
  }
  auto result = stream::RunStream(*r, *state, store.get(), o);
  if (tty) std::cerr << "\n";
  ARROW_RETURN_NOT_OK(result.status());
  stream::StreamStats s = *result;
  s.rows_per_second = 0;  // the summary gives the average
  if (a.Has("--json")) {
    std::cout << "{\"messages\":" << s.messages << ",\"rows_committed\":" << s.rows_committed
              << ",\"quarantined\":" << s.quarantined << ",\"online_rows\":" << s.online_rows
              << ",\"commits\":" << s.commits << "}\n";
  } else {
    std::cout << "stream stopped: " << StatusLine(s, elapsed()) << "\n";
  }
  return arrow::Status::OK();
}

}  // namespace

std::vector<Command> StreamCommands() {
  return {
      RepoCommand(
          "stream",
          "stratalake stream [SOURCE...] [--brokers HOST:PORT] [--commit-interval-ms N] "
          "[--max-batch-rows N] [--stop-at-end] [--metrics-port N] [--repo DIR] [--json]\n"
          "       stratalake stream produce FILE.jsonl|- --topic T [--brokers HOST:PORT] "
          "[--partitions N] [--key FIELD | --base64]\n"
          "       stratalake stream produce-sample [--topic trades] [--brokers HOST:PORT] "
          "[--partitions N] [--rate MSGS_PER_S] [--minutes N] [--seed N] [--as-of DATE | --end-at "
          "TIME|now]",
          "Consume the Kafka topics of kafka sources (default: all): every micro-batch is "
          "appended to the source's bronze Delta table exactly once (its offsets are in the "
          "same commit), every event is written to the online store as it arrives, and "
          "malformed or late messages go to quarantine/<source>_dead_letters. Runs until "
          "SIGTERM or Ctrl-C (then commits what it read), or with --stop-at-end until every "
          "partition is read to its end. --metrics-port serves Prometheus metrics (lag per "
          "partition, rows/s, batch and commit latency histograms, quarantined per source) on "
          "127.0.0.1 (`stratalake serve --stream` puts them on the feature server's /metrics). "
          "On a terminal a status line on stderr shows the same, live. `stream produce` sends each "
          "line of a file as one message (--base64: each line is the message's bytes in base64, "
          "e.g. Avro; brokers also from STRATALAKE_KAFKA_BROKERS). `stream produce-sample` sends "
          "the markets template's generated trades (keyed by symbol), at --rate per second.",
          "stratalake stream trades --brokers 127.0.0.1:9092",
          {"--brokers", "--commit-interval-ms", "--max-batch-rows", "--metrics-port", "--topic",
           "--partitions", "--key", "--rate", "--minutes", "--seed", "--as-of", "--end-at"},
          {"--stop-at-end", "--base64"}, CmdStream),
  };
}

}  // namespace stratalake::cli
