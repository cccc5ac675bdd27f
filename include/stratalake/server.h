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
// Endpoints (docs/online-store.md): POST /get-online-features, POST /push,
// POST /write-to-online-store, POST /materialize, POST /materialize-incremental,
// GET /health, GET /metrics — what Feast's own Python SDK sends with
// `online_store: {type: remote}` (tests/python/test_feast_sdk.py).
// Request bodies are parsed strictly (server/feast_wire.h: nesting depth, UTF-8,
// duplicate keys, NUL); fields the server does not know are ignored, as
// Feast's server ignores them. /push, /write-to-online-store and /materialize*
// take Content-Type application/json only. Errors are Feast's: a JSON string
// holding {"module": "feast.errors", "class": "...", "message": "..."} (valid
// JSON whatever the client sent; Feast's client raises that class) with 400
// (bad input), 404 (unknown feature, view, service or path), 405, 408 (a
// request's head or body too slow), 413 (body over max_body_bytes, more than
// max_entity_rows), 415 (not JSON), 503 (queue full, draining, or at the
// open-file limit) or 500.
//
// Shutdown() (also on SIGTERM/SIGINT when handle_signals is set) stops
// accepting, lets queued and in-flight requests finish, then stops the loops.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "stratalake/online.h"
#include "stratalake/repo.h"

namespace stratalake::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 6566;     // 0 = any free port (see FeatureServer::port())
  int io_threads = 0;  // 0 = the CPUs this process may use (its affinity mask)
  size_t max_body_bytes = 8 << 20;
  // Entity rows one /get-online-features request may ask for, and rows one
  // /push or /write-to-online-store request may write; more -> 413.
  size_t max_entity_rows = 100000;
  // Connection limits (HttpLoop::Options), in seconds and bytes: a request's
  // head must arrive within header_timeout_s of its first byte, its body
  // within body_timeout_s of the head (else 408); an idle connection is closed
  // after idle_timeout_s, one whose client reads nothing of its answers for
  // write_timeout_s too; while more than max_connection_output_bytes of answers
  // wait on a connection, its further pipelined requests wait unread.
  int header_timeout_s = 10;
  int body_timeout_s = 60;
  int idle_timeout_s = 120;
  int write_timeout_s = 30;
  size_t max_connection_output_bytes = 1 << 20;
  int background_threads = 1;
  // Threads that write online pushes (synced writes; concurrent ones share an
  // fsync), so that the event loops never wait for the disk.
  int online_push_threads = 4;
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
  // More Prometheus text appended to GET /metrics, e.g. the metrics of a
  // stream that runs in the same process (`stratalake serve --stream`,
  // stream::MetricsText). Called on an event loop: it must be quick and
  // thread-safe. Null = none.
  std::function<std::string()> extra_metrics;
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

// ---- Feast's JSON layout, for front ends (the CLI's --json) ---------------------------
// (Defined with the rest of the wire format in src/server/feast_wire.cc.)

/// Appends the /get-online-features body: {"metadata": {"feature_names": [...]},
/// "results": [{"values": [...], "statuses": [...], "event_timestamps": [...]},
/// ...]}, one result per column (join keys echoed, "PRESENT" at the epoch).
/// Values in a readable form: numbers, booleans, strings (bytes as they are),
/// lists; timestamps as RFC 3339 strings with microseconds, dates as
/// "YYYY-MM-DD", decimals as strings; NaN, infinities and values that are not
/// PRESENT as null. (`stratalake get-online --json` prints this. The feature
/// server answers the same layout with the values in Feast's form —
/// timestamps as integer seconds, binary as base64, NaN as "NaN", integral
/// doubles as "2.0" — so that Feast's client reads Feast's types:
/// docs/online-store.md, "Feast's SDK".) Thread-safe; allocates only when
/// `out` grows (a reused buffer stays warm).
void AppendOnlineResponse(const online::OnlineResponse& response, std::string* out);

/// Appends one stored feature value (an OnlineResponse column's `values[r]`)
/// of `type` as JSON, in the readable form above.
void AppendFieldJson(const arrow::DataType& type, std::string_view bytes, std::string* out);

}  // namespace stratalake::server
