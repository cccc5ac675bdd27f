// `stratalake serve`: the feature server (stratalake/server.h) until SIGTERM.
#include <pthread.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arrow/api.h>
#include "commands.h"
#include "stratalake/online.h"
#include "stratalake/registry.h"
#include "stratalake/repo.h"
#include "stratalake/server.h"
#include "stratalake/stream.h"

namespace stratalake::cli {

namespace {

arrow::Status CmdServe(const Args& a) {
  if (!a.positional.empty()) return UsageError("serve takes options only");
  server::ServerOptions o;
  o.host = a.Get("--host").value_or("127.0.0.1");
  ARROW_ASSIGN_OR_RAISE(int64_t port, IntOpt(a, "--port", 6566));
  if (port < 0 || port > 65535) return UsageError("--port must be 0..65535");
  o.port = static_cast<int>(port);
  ARROW_ASSIGN_OR_RAISE(int64_t threads, IntOpt(a, "--threads", 0));
  o.io_threads = static_cast<int>(threads);
  // A limit: a positive integer up to `most`.
  auto limit = [&](const char* key, int64_t dflt, int64_t most,
                   const char* unit) -> arrow::Result<int64_t> {
    ARROW_ASSIGN_OR_RAISE(const int64_t v, IntOpt(a, key, dflt));
    if (v < 1 || v > most) {
      return UsageError(std::string(key) + " must be 1.." + std::to_string(most) + " (" + unit +
                        ")");
    }
    return v;
  };
  constexpr int64_t kDay = 86400;
  constexpr int64_t kBig = int64_t{1} << 32;
  ARROW_ASSIGN_OR_RAISE(auto body_bytes, limit("--max-body-bytes", 8 << 20, kBig, "bytes"));
  o.max_body_bytes = static_cast<size_t>(body_bytes);
  ARROW_ASSIGN_OR_RAISE(auto entity_rows, limit("--max-entity-rows", 100000, kBig, "rows"));
  o.max_entity_rows = static_cast<size_t>(entity_rows);
  ARROW_ASSIGN_OR_RAISE(auto header_s, limit("--header-timeout-s", 10, kDay, "seconds"));
  o.header_timeout_s = static_cast<int>(header_s);
  ARROW_ASSIGN_OR_RAISE(auto body_s, limit("--body-timeout-s", 60, kDay, "seconds"));
  o.body_timeout_s = static_cast<int>(body_s);
  ARROW_ASSIGN_OR_RAISE(auto idle_s, limit("--idle-timeout-s", 120, kDay, "seconds"));
  o.idle_timeout_s = static_cast<int>(idle_s);
  ARROW_ASSIGN_OR_RAISE(auto write_s, limit("--write-timeout-s", 30, kDay, "seconds"));
  o.write_timeout_s = static_cast<int>(write_s);
  ARROW_ASSIGN_OR_RAISE(auto output_bytes,
                        limit("--max-connection-output-bytes", 1 << 20, kBig, "bytes"));
  o.max_connection_output_bytes = static_cast<size_t>(output_bytes);
  ARROW_ASSIGN_OR_RAISE(int64_t queued, IntOpt(a, "--max-queued", 64));
  o.max_queued = static_cast<int>(queued);
  if (o.max_queued < 0) return UsageError("--max-queued must be >= 0");
  ARROW_ASSIGN_OR_RAISE(const int64_t busy, IntOpt(a, "--busy-poll-us", 0));
  if (busy < 0 || busy > 1000000) {
    return UsageError("--busy-poll-us must be 0..1000000 (microseconds)");
  }
  o.busy_poll_us = static_cast<int>(busy);
  ARROW_ASSIGN_OR_RAISE(const int64_t rt, IntOpt(a, "--realtime-priority", 0));
  if (rt < 0 || rt > 99) {
    return UsageError("--realtime-priority must be 1..99 (SCHED_FIFO), or 0 for off");
  }
  o.realtime_priority = static_cast<int>(rt);
  o.log_requests = a.Has("--log-requests");
  o.handle_signals = true;
  const bool with_stream = a.Has("--stream") || a.Has("--stream-sources");
  stream::StreamOptions so;
  if (with_stream) {
    if (auto list = a.Get("--stream-sources")) so.sources = SplitCommas(*list);
    so.brokers = a.GetOr("--brokers", "");
    ARROW_ASSIGN_OR_RAISE(so.commit_interval_ms, IntOpt(a, "--commit-interval-ms", 1000));
    ARROW_ASSIGN_OR_RAISE(so.max_batch_rows, IntOpt(a, "--max-batch-rows", 50000));
    if (so.commit_interval_ms <= 0) return UsageError("--commit-interval-ms must be positive");
    if (so.max_batch_rows <= 0) return UsageError("--max-batch-rows must be positive");
  } else {
    for (const char* key : {"--brokers", "--commit-interval-ms", "--max-batch-rows"}) {
      if (a.Has(key)) return UsageError(std::string(key) + " is an option of --stream");
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto r, repo::FeatureRepository::Open(RepoDir(a)));
  std::shared_ptr<repo::FeatureRepository> shared(std::move(r));
  if (!with_stream) {
    ARROW_ASSIGN_OR_RAISE(auto server, server::FeatureServer::Start(shared, o));
    std::cout << "serving " << shared->config().project << " on http://" << o.host << ":"
              << server->port() << " (online store " << shared->config().online_store_type
              << "); stop with Ctrl-C or SIGTERM" << std::endl;
    ARROW_RETURN_NOT_OK(server->Wait());
    std::cout << "stopped" << std::endl;
    return arrow::Status::OK();
  }
  // The server and a stream in one process, sharing the online store: a streamed
  // event is served as soon as it is written, and /metrics has the stream's too.
  // SIGTERM/SIGINT blocked before any thread starts (RocksDB's, librdkafka's):
  // the server waits for them on its own thread (handle_signals), and a thread
  // that left them unblocked would take them and die of them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ARROW_ASSIGN_OR_RAISE(auto reg, shared->registry());
  ARROW_ASSIGN_OR_RAISE(auto state, reg->Load());
  ARROW_ASSIGN_OR_RAISE(std::unique_ptr<online::OnlineStore> opened,
                        online::OpenRepositoryStore(*shared));
  std::shared_ptr<online::OnlineStore> store(std::move(opened));
  struct Latest {
    std::mutex mu;
    std::string text;
  };
  auto latest = std::make_shared<Latest>();
  latest->text = stream::MetricsText({});
  o.extra_metrics = [latest] {
    std::lock_guard<std::mutex> lock(latest->mu);
    return latest->text;
  };
  so.on_status = [latest](const stream::StreamStats& st) {
    std::string text = stream::MetricsText(st);
    std::lock_guard<std::mutex> lock(latest->mu);
    latest->text = std::move(text);
  };
  std::atomic<bool> stop{false};
  so.stop = &stop;
  ARROW_ASSIGN_OR_RAISE(auto server, server::FeatureServer::Start(shared, store, o));
  arrow::Status stream_status;
  std::thread streamer([&] {
    auto result = stream::RunStream(*shared, *state, store.get(), so);
    if (!result.ok()) {
      stream_status = result.status();
      server->Shutdown();  // a server without its stream would serve stale features
    }
  });
  std::cout << "serving " << shared->config().project << " on http://" << o.host << ":"
            << server->port() << " (online store " << shared->config().online_store_type
            << ") and streaming its kafka sources; stop with Ctrl-C or SIGTERM" << std::endl;
  arrow::Status served = server->Wait();
  stop.store(true);  // commit what was read, then stop
  streamer.join();
  ARROW_RETURN_NOT_OK(stream_status);
  ARROW_RETURN_NOT_OK(served);
  std::cout << "stopped" << std::endl;
  return arrow::Status::OK();
}

}  // namespace

std::vector<Command> ServeCommands() {
  return {RepoCommand(
      "serve",
      "stratalake serve [--host 127.0.0.1] [--port 6566] [--threads N] [--max-body-bytes N] "
      "[--max-entity-rows N] [--header-timeout-s S] [--body-timeout-s S] [--idle-timeout-s S] "
      "[--write-timeout-s S] [--max-connection-output-bytes N] "
      "[--max-queued N] [--busy-poll-us US] [--realtime-priority P] [--log-requests] "
      "[--stream [--stream-sources S1,S2] [--brokers HOST:PORT] [--commit-interval-ms N] "
      "[--max-batch-rows N]] [--repo DIR]",
      "Run the feature server (Feast-compatible HTTP/JSON): POST /get-online-features, /push, "
      "/write-to-online-store, /materialize, /materialize-incremental; GET /health, /metrics. "
      "SIGTERM drains and stops. --log-requests also logs request fields it ignores. "
      "Limits (bad input or slow clients get an error and a close, never the server): "
      "--max-body-bytes (default 8388608; 413), --max-entity-rows: entity rows per "
      "/get-online-features request, and rows per /push or /write-to-online-store (default "
      "100000; 413), --header-timeout-s: a request's "
      "headers within S seconds of its first byte (default 10; 408), --body-timeout-s: its body "
      "within S seconds after the headers (default 60; 408), --idle-timeout-s: close idle "
      "connections (default 120), --write-timeout-s: close a connection whose client reads "
      "nothing of its answers for S seconds (default 30), --max-connection-output-bytes: unsent "
      "answers per connection before its further pipelined requests wait (default 1048576). "
      "/push and /materialize* need Content-Type: application/json (else 415). "
      "--busy-poll-us: each loop polls without sleeping until US microseconds after its last "
      "request (lower latency; a whole core per loop while busy: use fewer --threads than "
      "cores). --realtime-priority P (1..99): the loops run at SCHED_FIFO priority P, ahead of "
      "the kernel's housekeeping threads (needs root, CAP_SYS_NICE or ulimit -r; not with "
      "--busy-poll-us). --stream also runs `stratalake stream` in the same process (every kafka "
      "source, or --stream-sources), sharing the online store, and adds its metrics (lag per "
      "partition, rows/s, batch latency, quarantined) to /metrics; a stream error stops the "
      "server.",
      "stratalake serve --port 6566 --threads 1 --busy-poll-us 200",
      {"--host", "--port", "--threads", "--max-body-bytes", "--max-entity-rows",
       "--header-timeout-s", "--body-timeout-s", "--idle-timeout-s", "--write-timeout-s",
       "--max-connection-output-bytes", "--max-queued", "--busy-poll-us", "--realtime-priority",
       "--stream-sources", "--brokers", "--commit-interval-ms", "--max-batch-rows"},
      {"--log-requests", "--stream"}, CmdServe)};
}

}  // namespace stratalake::cli
