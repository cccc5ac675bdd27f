// The feature server: Feast-compatible HTTP/1.1 + JSON.
//
// Threads: `io_threads` event loops (server/http_loop.h: libevent readiness,
// http-parser framing), each with its own listening socket on the same port
// (SO_REUSEPORT, so the kernel spreads connections). Online reads and online pushes run inline on
// the loop that received them: they take microseconds, and nothing queues in user space. Work that
// takes longer — pushes that write the offline store, materialization — goes
// to a bounded queue served by background threads; when the queue is full the
// request is answered 503 at once, so overload never turns into unbounded
// latency. Offline pushes are committed in batches (all pushes waiting for the
// same source become one Delta commit) and acknowledged only after the commit.
//
// Endpoints (docs/serving.md): POST /get-online-features, POST /push,
// POST /materialize, POST /materialize-incremental, GET /health, GET /metrics.
// Errors are {"error": "..."} with 400 (bad input), 404 (unknown feature,
// view, service or path), 405, 413 (body over max_body_bytes), 503 (queue full
// or draining) or 500.
//
// Shutdown() (also on SIGTERM/SIGINT when handle_signals is set) stops
// accepting, lets queued and in-flight requests finish, then stops the loops.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <arrow/result.h>
#include <arrow/status.h>

#include "stratalake/online.h"
#include "stratalake/repo.h"

namespace stratalake::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 6566;     // 0 = any free port (see FeatureServer::port())
  int io_threads = 0;  // 0 = the CPUs this process may use (its affinity mask)
  size_t max_body_bytes = 8 << 20;
  int background_threads = 1;
  int max_queued = 64;          // background requests waiting; beyond -> 503
  int push_batch_wait_ms = 5;   // how long an offline push waits for others to batch with
  bool handle_signals = false;  // SIGTERM / SIGINT -> Shutdown()
  bool log_requests = false;
  // Each event loop polls without sleeping until this long after its last
  // request (HttpLoop::Options::busy_poll_us): lower latency for a core per
  // loop while busy. 0 = off.
  int busy_poll_us = 0;
  // 1..99: the event loops run at this SCHED_FIFO priority (common/realtime.h),
  // ahead of the kernel's housekeeping threads that otherwise take a CPU for
  // milliseconds; needs root, CAP_SYS_NICE or `ulimit -r`. Background threads
  // stay ordinary. Not with busy_poll_us (a loop that never sleeps would keep
  // its CPU from everything else). 0 = off.
  int realtime_priority = 0;
};

class FeatureServer {
 public:
  /// Opens the repository's online store and registry, binds and starts
  /// serving on background threads; returns once the port accepts connections.
  static arrow::Result<std::unique_ptr<FeatureServer>> Start(
      std::shared_ptr<repo::FeatureRepository> repo, const ServerOptions& options);
  /// As above with an already open store (tests, benchmarks).
  static arrow::Result<std::unique_ptr<FeatureServer>> Start(
      std::shared_ptr<repo::FeatureRepository> repo, std::shared_ptr<online::OnlineStore> store,
      const ServerOptions& options);
  ~FeatureServer();

  int port() const;
  /// Begins a graceful stop; thread-safe and returns at once.
  void Shutdown();
  /// Blocks until the server has stopped.
  arrow::Status Wait();

  struct Impl;

 private:
  explicit FeatureServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace stratalake::server
