#include "stratalake/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <arrow/api.h>
#include <event2/thread.h>

#include "common/json.h"
#include "common/parallel.h"
#include "common/realtime.h"
#include "online/codec.h"
#include "server/feast_wire.h"
#include "server/http_loop.h"
#include "stratalake/object_store.h"
#include "stratalake/status.h"

namespace stratalake::server {

namespace {

// ---- metrics -----------------------------------------------------------------

enum Endpoint {
  kGetOnline,
  kPush,
  kMaterialize,
  kMaterializeIncremental,
  kWriteToOnline,
  kHealth,
  kMetrics,
  kOther,
  kNumEndpoints
};
const char* const kEndpointNames[kNumEndpoints] = {
    "/get-online-features",   "/push",   "/materialize", "/materialize-incremental",
    "/write-to-online-store", "/health", "/metrics",     "other"};
constexpr std::array<int, 6> kCodes = {200, 400, 404, 500, 503, 0};  // 0 = any other
constexpr std::array<double, 12> kBucketsSeconds = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                    0.005,   0.01,   0.025,   0.1,    1,     10};

struct Metrics {
  std::atomic<uint64_t> requests[kNumEndpoints][kCodes.size()] = {};
  std::atomic<uint64_t> buckets[kNumEndpoints][kBucketsSeconds.size() + 1] = {};
  std::atomic<uint64_t> sum_ns[kNumEndpoints] = {};
  std::atomic<uint64_t> store_reads{0}, store_keys{0}, push_rows{0}, overload{0};
  std::atomic<uint64_t> materialize_rows{0}, materialize_runs{0};
  std::atomic<int64_t> materialize_running{0};

  void Record(Endpoint e, int code, std::chrono::steady_clock::duration d) {
    size_t c = kCodes.size() - 1;
    for (size_t i = 0; i + 1 < kCodes.size(); ++i) {
      if (kCodes[i] == code) c = i;
    }
    requests[e][c].fetch_add(1, std::memory_order_relaxed);
    double secs = std::chrono::duration<double>(d).count();
    size_t b = 0;
    while (b < kBucketsSeconds.size() && secs > kBucketsSeconds[b]) ++b;
    buckets[e][b].fetch_add(1, std::memory_order_relaxed);
    sum_ns[e].fetch_add(
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()),
        std::memory_order_relaxed);
  }

  std::string Prometheus(int64_t registry_version, int64_t registry_check_failures) const {
    std::string o;
    char line[512];
    o += "# HELP stratalake_requests_total HTTP requests by endpoint and status code.\n";
    o += "# TYPE stratalake_requests_total counter\n";
    for (int e = 0; e < kNumEndpoints; ++e) {
      for (size_t c = 0; c < kCodes.size(); ++c) {
        uint64_t n = requests[e][c].load();
        if (!n) continue;
        std::string code = kCodes[c] ? std::to_string(kCodes[c]) : "other";
        std::snprintf(line, sizeof line,
                      "stratalake_requests_total{endpoint=\"%s\",code=\"%s\"} %llu\n",
                      kEndpointNames[e], code.c_str(), static_cast<unsigned long long>(n));
        o += line;
      }
    }
    o += "# HELP stratalake_request_duration_seconds Time from request to reply.\n";
    o += "# TYPE stratalake_request_duration_seconds histogram\n";
    for (int e = 0; e < kNumEndpoints; ++e) {
      uint64_t cum = 0;
      for (size_t b = 0; b <= kBucketsSeconds.size(); ++b) {
        cum += buckets[e][b].load();
        if (b < kBucketsSeconds.size()) {
          std::snprintf(line, sizeof line,
                        "stratalake_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} "
                        "%llu\n",
                        kEndpointNames[e], kBucketsSeconds[b],
                        static_cast<unsigned long long>(cum));
        } else {
          std::snprintf(line, sizeof line,
                        "stratalake_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} "
                        "%llu\n",
                        kEndpointNames[e], static_cast<unsigned long long>(cum));
        }
        o += line;
      }
      std::snprintf(line, sizeof line,
                    "stratalake_request_duration_seconds_sum{endpoint=\"%s\"} %.9f\n"
                    "stratalake_request_duration_seconds_count{endpoint=\"%s\"} %llu\n",
                    kEndpointNames[e], static_cast<double>(sum_ns[e].load()) / 1e9,
                    kEndpointNames[e], static_cast<unsigned long long>(cum));
      o += line;
    }
    auto counter = [&](const char* name, const char* help, uint64_t v) {
      std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help,
                    name, name, static_cast<unsigned long long>(v));
      o += line;
    };
    auto gauge = [&](const char* name, const char* help, int64_t v) {
      std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name,
                    name, static_cast<long long>(v));
      o += line;
    };
    counter("stratalake_store_reads_total", "Online store multi-gets.", store_reads.load());
    counter("stratalake_store_keys_read_total", "Keys looked up in the online store.",
            store_keys.load());
    counter("stratalake_push_rows_total", "Rows accepted by /push.", push_rows.load());
    counter("stratalake_overload_rejections_total", "Requests answered 503 (queue full).",
            overload.load());
    counter("stratalake_materialize_runs_total", "Materialization runs finished.",
            materialize_runs.load());
    counter("stratalake_materialize_rows_written_total", "Rows written by materialization.",
            materialize_rows.load());
    gauge("stratalake_materialize_running", "Materialization runs in progress.",
          materialize_running.load());
    gauge("stratalake_registry_version", "Registry version being served.", registry_version);
    counter("stratalake_registry_check_failures_total",
            "Failed checks of the registry's head (the held version is served meanwhile).",
            static_cast<uint64_t>(registry_check_failures));
    // The read cache of remote data files (shared by everything in this process).
    ReadCacheStats cache = GetReadCacheStats();
    counter("stratalake_read_cache_hits_total", "Remote data files opened from the local cache.",
            cache.hits);
    counter("stratalake_read_cache_misses_total", "Remote data files fetched from the store.",
            cache.misses);
    counter("stratalake_read_cache_hit_bytes_total", "Bytes of the files opened from the cache.",
            cache.hit_bytes);
    counter("stratalake_read_cache_miss_bytes_total", "Bytes fetched from the store.",
            cache.miss_bytes);
    counter("stratalake_read_cache_evictions_total", "Files evicted from the cache.",
            cache.evictions);
    gauge("stratalake_read_cache_bytes", "Bytes held in the cache now.", cache.bytes_cached);
    gauge("stratalake_read_cache_max_bytes", "The cache's bound (0: off).", cache.max_bytes);
    gauge("stratalake_read_cache_fetch_memory_bytes",
          "Memory holding files being fetched into the cache now.", cache.fetch_memory_bytes);
    return o;
  }
};

// ---- helpers -------------------------------------------------------------------

int HttpCodeFor(const arrow::Status& st) {
  if (st.IsCapacityError()) return 413;  // a request over a limit (feast_wire.h)
  if (HasErrorKind(st, ErrorKind::kObjectNotFound) ||
      HasErrorKind(st, ErrorKind::kFeatureNotFound)) {
    return 404;
  }
  if (HasErrorKind(st, ErrorKind::kSchemaMismatch) ||
      HasErrorKind(st, ErrorKind::kDefinitionError) || HasErrorKind(st, ErrorKind::kDataRejected) ||
      st.IsInvalid() || st.IsTypeError() || st.IsNotImplemented()) {
    return 400;
  }
  return 500;
}

struct Reply {
  int code = 200;
  std::string body;
  const char* content_type = "application/json";
  bool in_scratch = false;  // the body is the loop's scratch buffer (no copy)
};

// Every error body is Feast's (feast_wire.h): Feast's client raises `cls`.
Reply ErrorReply(int code, const std::string& message, const char* cls = "FeastError") {
  return {code, FeastErrorJson(cls, message)};
}

// The server words the options the core's message mentions in its requests' JSON.
std::string ServerTerm(Term t) {
  if (t == Term::kFullFeatureNames) return "\"full_feature_names\": true";
  if (t == Term::kMaterialize) return "POST /materialize";
  return Mention(t);
}

Reply StatusReply(const arrow::Status& st) {
  return ErrorReply(HttpCodeFor(st), RewordMessage(st, ServerTerm), FeastErrorClass(st));
}

std::string ReportJson(const online::MaterializeReport& r) {
  std::string o = "{\"views\":[";
  for (size_t i = 0; i < r.views.size(); ++i) {
    const auto& v = r.views[i];
    if (i) o += ",";
    o += "{\"view\":";
    AppendJsonString(v.view, &o);
    o += ",\"source\":";
    AppendJsonString(v.source, &o);
    o += ",\"incremental\":" + std::string(v.incremental ? "true" : "false");
    o += ",\"from_version\":" + std::to_string(v.from_version);
    o += ",\"to_version\":" + std::to_string(v.to_version);
    o += ",\"files_read\":" + std::to_string(v.files_read);
    o += ",\"rows_read\":" + std::to_string(v.rows_read);
    o += ",\"rows_written\":" + std::to_string(v.rows_written);
    o += ",\"keys_repaired\":" + std::to_string(v.keys_repaired);
    o += ",\"repair_passes\":" + std::to_string(v.repair_passes);
    o += ",\"rebuilt\":" + std::string(v.rebuilt ? "true" : "false");
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.3f", v.seconds);
    o += ",\"seconds\":" + std::string(secs) + "}";
  }
  return o + "]}";
}

}  // namespace

// ---- the server ----------------------------------------------------------------

struct Loop;

// A request answered later, from a background thread, on its loop.
struct Pending {
  Loop* loop = nullptr;
  HttpLoop::RequestId id = 0;
  Endpoint endpoint = kOther;
  std::chrono::steady_clock::time_point started;
};

struct Loop {
  std::unique_ptr<HttpLoop> http;
  std::thread thread;
  std::string scratch;  // reply bodies built in place, reused across requests
};

// A reply larger than this does not keep its scratch buffer (a one-off large
// request must not hold its peak on every loop).
constexpr size_t kKeepScratch = 1 << 20;

struct PushJob {
  std::string source;
  std::shared_ptr<arrow::Table> data;
  online::PushTarget to;
  std::function<void(const arrow::Status&, const online::PushResult&)> done;
};

struct FeatureServer::Impl {
  ServerOptions options;
  std::shared_ptr<repo::FeatureRepository> repo;
  std::shared_ptr<online::OnlineStore> store;
  std::shared_ptr<registry::Registry> registry;
  std::unique_ptr<online::OnlineService> service;
  Metrics metrics;
  int port = 0;
  std::vector<std::unique_ptr<Loop>> loops;

  // Background work, bounded: materializations (bg_jobs) and online pushes
  // (online_jobs). An online push is a synced store write that waits for an
  // fsync (docs/online-store.md, "Durability"): it runs on threads of its own,
  // never on an event loop, and concurrent ones share one fsync (RocksDB's group
  // commit), so reads keep their latency while pushes wait for the disk.
  std::mutex bg_mu;
  std::condition_variable bg_cv;
  std::deque<std::function<void()>> bg_jobs;
  std::vector<std::thread> bg_threads;
  int bg_running = 0;
  std::deque<std::function<void()>> online_jobs;
  std::condition_variable online_cv;
  std::vector<std::thread> online_threads;
  int online_running = 0;
  // Offline pushes, batched per source.
  std::deque<PushJob> push_jobs;
  std::condition_variable push_cv;
  std::thread push_thread;
  bool push_busy = false;

  std::atomic<bool> draining{false};
  bool stopping_workers = false;  // under bg_mu
  std::thread signal_thread;
  std::thread drain_thread;
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopped = false;
  std::atomic<int> pending_replies{0};

  ~Impl();
  arrow::Status Init();
  void Handle(Loop* loop, HttpLoop::RequestId id, const HttpRequest& req);
  Reply GetOnline(Loop* loop, std::string_view body);
  arrow::Status OverRowLimit(int64_t rows, const char* endpoint) const;
  void HandlePush(Loop* loop, HttpLoop::RequestId id, std::string_view body,
                  std::chrono::steady_clock::time_point started);
  void HandleMaterialize(Loop* loop, HttpLoop::RequestId id, std::string_view body,
                         bool incremental, std::chrono::steady_clock::time_point started);
  void HandleWriteToOnline(Loop* loop, HttpLoop::RequestId id, std::string_view body,
                           std::chrono::steady_clock::time_point started);
  void LogIgnored(Endpoint e, const std::vector<std::string>& fields);
  void Send(Loop* loop, HttpLoop::RequestId id, const Reply& r, Endpoint e,
            std::chrono::steady_clock::time_point started);
  std::shared_ptr<Pending> Defer(Loop* loop, HttpLoop::RequestId id, Endpoint e,
                                 std::chrono::steady_clock::time_point started);
  void Complete(const std::shared_ptr<Pending>& p, Reply r);
  bool Enqueue(std::function<void()> job);
  bool EnqueueOnline(std::function<void()> job);
  bool EnqueuePush(PushJob job);
  void BackgroundWorker();
  void OnlineWorker();
  void PushWorker();
  void BeginShutdown();
  void DrainAndStop();
};

FeatureServer::Impl::~Impl() {
  for (auto& l : loops) {
    if (l->thread.joinable()) l->thread.join();
  }
  {
    std::lock_guard<std::mutex> lock(bg_mu);
    stopping_workers = true;
  }
  bg_cv.notify_all();
  push_cv.notify_all();
  online_cv.notify_all();
  for (auto& t : bg_threads) {
    if (t.joinable()) t.join();
  }
  for (auto& t : online_threads) {
    if (t.joinable()) t.join();
  }
  if (push_thread.joinable()) push_thread.join();
  if (drain_thread.joinable()) drain_thread.join();
  if (signal_thread.joinable()) {
    pthread_kill(signal_thread.native_handle(), SIGTERM);
    signal_thread.join();
  }
  loops.clear();  // closes the connections and sockets
}

void FeatureServer::Impl::Send(Loop* loop, HttpLoop::RequestId id, const Reply& r, Endpoint e,
                               std::chrono::steady_clock::time_point started) {
  HttpResponse resp;
  resp.code = r.code;
  resp.content_type = r.content_type;
  resp.body = r.in_scratch ? loop->scratch : r.body;
  resp.retry_after = r.code == 503;
  loop->http->Respond(id, resp);
  if (r.in_scratch && loop->scratch.capacity() > kKeepScratch) std::string().swap(loop->scratch);
  metrics.Record(e, r.code, std::chrono::steady_clock::now() - started);
  if (options.log_requests) {
    std::fprintf(stderr, "%s %d\n", kEndpointNames[e], r.code);
  }
}

std::shared_ptr<Pending> FeatureServer::Impl::Defer(Loop* loop, HttpLoop::RequestId id, Endpoint e,
                                                    std::chrono::steady_clock::time_point started) {
  auto p = std::make_shared<Pending>();
  p->loop = loop;
  p->id = id;
  p->endpoint = e;
  p->started = started;
  pending_replies.fetch_add(1);
  return p;
}

void FeatureServer::Impl::Complete(const std::shared_ptr<Pending>& p, Reply r) {
  p->loop->http->Post([this, p, r = std::move(r)] {
    Send(p->loop, p->id, r, p->endpoint, p->started);  // dropped if the client went away
    pending_replies.fetch_sub(1);
  });
}

bool FeatureServer::Impl::Enqueue(std::function<void()> job) {
  std::lock_guard<std::mutex> lock(bg_mu);
  if (static_cast<int>(bg_jobs.size()) >= options.max_queued) return false;
  bg_jobs.push_back(std::move(job));
  bg_cv.notify_one();
  return true;
}

bool FeatureServer::Impl::EnqueueOnline(std::function<void()> job) {
  std::lock_guard<std::mutex> lock(bg_mu);
  if (static_cast<int>(online_jobs.size()) >= options.max_queued) return false;
  online_jobs.push_back(std::move(job));
  online_cv.notify_one();
  return true;
}

void FeatureServer::Impl::OnlineWorker() {
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(bg_mu);
      online_cv.wait(lock, [&] { return stopping_workers || !online_jobs.empty(); });
      if (online_jobs.empty()) return;
      job = std::move(online_jobs.front());
      online_jobs.pop_front();
      ++online_running;
    }
    job();
    {
      std::lock_guard<std::mutex> lock(bg_mu);
      --online_running;
    }
    bg_cv.notify_all();  // DrainAndStop waits on bg_cv
  }
}

bool FeatureServer::Impl::EnqueuePush(PushJob job) {
  std::lock_guard<std::mutex> lock(bg_mu);
  if (static_cast<int>(push_jobs.size()) >= options.max_queued) return false;
  push_jobs.push_back(std::move(job));
  push_cv.notify_one();
  return true;
}

void FeatureServer::Impl::BackgroundWorker() {
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(bg_mu);
      bg_cv.wait(lock, [&] { return stopping_workers || !bg_jobs.empty(); });
      if (bg_jobs.empty()) return;
      job = std::move(bg_jobs.front());
      bg_jobs.pop_front();
      ++bg_running;
    }
    job();
    {
      std::lock_guard<std::mutex> lock(bg_mu);
      --bg_running;
    }
    bg_cv.notify_all();
  }
}

void FeatureServer::Impl::PushWorker() {
  while (true) {
    std::vector<PushJob> batch;
    {
      std::unique_lock<std::mutex> lock(bg_mu);
      push_cv.wait(lock, [&] { return stopping_workers || !push_jobs.empty(); });
      if (push_jobs.empty()) return;
      push_busy = true;
      // Give concurrent pushes a moment to join this commit.
      if (options.push_batch_wait_ms > 0 && push_jobs.size() < 64) {
        push_cv.wait_for(lock, std::chrono::milliseconds(options.push_batch_wait_ms),
                         [&] { return push_jobs.size() >= 64 || stopping_workers; });
      }
      while (!push_jobs.empty()) {
        batch.push_back(std::move(push_jobs.front()));
        push_jobs.pop_front();
      }
    }
    // Group by source; one Delta commit per source for the whole group.
    std::map<std::string, std::vector<PushJob*>> by_source;
    for (auto& j : batch) by_source[j.source].push_back(&j);
    for (auto& entry : by_source) {
      // Named, not a structured binding: the lambda below captures it (clang 14
      // cannot capture structured bindings).
      const std::string& source = entry.first;
      std::vector<PushJob*>& jobs = entry.second;
      auto state = service->registry_cache().Get();
      if (!state.ok()) {
        for (auto* j : jobs) j->done(state.status(), {});
        continue;
      }
      std::vector<std::shared_ptr<arrow::Table>> tables;
      for (auto* j : jobs) tables.push_back(j->data);
      arrow::ConcatenateTablesOptions co;
      co.unify_schemas = true;
      auto combined = arrow::ConcatenateTables(tables, co);
      arrow::Result<online::PushResult> r =
          combined.ok() ? online::Push(*repo, **state, store.get(), source, *combined,
                                       online::PushTarget::kOffline)
                        : arrow::Result<online::PushResult>(combined.status());
      // After the offline commit: the online part of online_and_offline pushes, then the reply.
      auto finish = [&](PushJob* j, arrow::Result<online::PushResult> offline) {
        arrow::Status st = offline.status();
        online::PushResult pr = offline.ok() ? *offline : online::PushResult{};
        pr.rows = j->data->num_rows();
        if (st.ok() && j->to == online::PushTarget::kOnlineAndOffline) {
          auto on = online::Push(*repo, **state, store.get(), source, j->data,
                                 online::PushTarget::kOnline);
          st = on.status();
          if (on.ok()) pr.views_written = on->views_written;
        }
        j->done(st, pr);
      };
      if (!r.ok() && jobs.size() > 1) {
        // One bad push must not fail the others: commit them one by one.
        for (auto* j : jobs) {
          finish(j, online::Push(*repo, **state, store.get(), source, j->data,
                                 online::PushTarget::kOffline));
        }
        continue;
      }
      for (auto* j : jobs) finish(j, r);
    }
    {
      std::lock_guard<std::mutex> lock(bg_mu);
      push_busy = false;
    }
    bg_cv.notify_all();
  }
}

Reply FeatureServer::Impl::GetOnline(Loop* loop, std::string_view body) {
  online::OnlineRequest req;
  RequestLimits limits;
  limits.max_entity_rows = options.max_entity_rows;
  OnlineRequestExtras extras;
  arrow::Status parsed = ParseOnlineRequest(body, limits, &req, &extras);
  if (!parsed.ok()) return StatusReply(parsed);
  if (!extras.ignored_fields.empty()) LogIgnored(kGetOnline, extras.ignored_fields);
  auto resp = service->Get(req);
  if (!resp.ok()) return StatusReply(resp.status());
  metrics.store_reads.fetch_add(1, std::memory_order_relaxed);
  metrics.store_keys.fetch_add(resp->rows, std::memory_order_relaxed);
  Reply r;
  r.in_scratch = true;
  loop->scratch.clear();
  AppendFeastResponse(*resp, extras.include_view_metadata, &loop->scratch);
  return r;
}

// Rows one write request may carry: the --max-entity-rows of reads (413 above it).
arrow::Status FeatureServer::Impl::OverRowLimit(int64_t rows, const char* endpoint) const {
  if (rows <= static_cast<int64_t>(options.max_entity_rows)) return arrow::Status::OK();
  return arrow::Status::CapacityError(endpoint, " has ", rows, " rows: over the limit of ",
                                      options.max_entity_rows,
                                      " rows per request (the server's --max-entity-rows); "
                                      "split the request");
}

void FeatureServer::Impl::HandlePush(Loop* loop, HttpLoop::RequestId id, std::string_view body,
                                     std::chrono::steady_clock::time_point started) {
  auto fail = [&](int code, const std::string& msg) {
    Send(loop, id, ErrorReply(code, msg), kPush, started);
  };
  std::vector<std::string> ignored;
  auto parsed = ParsePushRequest(body, &ignored);
  if (!ignored.empty()) LogIgnored(kPush, ignored);
  if (!parsed.ok()) return fail(HttpCodeFor(parsed.status()), parsed.status().message());
  if (auto over = OverRowLimit(parsed->rows, "/push"); !over.ok()) return fail(413, over.message());
  const std::string& source = parsed->source;
  auto target = online::ParsePushTarget(parsed->to);
  if (!target.ok()) return fail(400, target.status().message());
  const online::PushTarget to = *target;
  const int64_t rows = parsed->rows;
  std::shared_ptr<arrow::Table> table = parsed->table;
  if (to == online::PushTarget::kOnline) {
    auto state = service->registry_cache().Get();
    if (!state.ok()) return fail(500, state.status().message());
    auto pending = Defer(loop, id, kPush, started);
    bool queued = EnqueueOnline([this, pending, state = *state, source, table, rows] {
      auto r = online::Push(*repo, *state, store.get(), source, table, online::PushTarget::kOnline);
      if (!r.ok()) return Complete(pending, StatusReply(r.status()));
      metrics.push_rows.fetch_add(static_cast<uint64_t>(rows), std::memory_order_relaxed);
      Reply ok;
      ok.body = "{\"rows\":" + std::to_string(r->rows) +
                ",\"views_written\":" + std::to_string(r->views_written) + "}";
      Complete(pending, ok);
    });
    if (!queued) {
      metrics.overload.fetch_add(1);
      Complete(pending, ErrorReply(503, "too many pushes waiting for the online store; retry"));
    }
    return;
  }
  auto pending = Defer(loop, id, kPush, started);
  PushJob job;
  job.source = source;
  job.data = table;
  job.to = to;
  job.done = [this, pending](const arrow::Status& st, const online::PushResult& r) {
    if (!st.ok()) return Complete(pending, StatusReply(st));
    metrics.push_rows.fetch_add(static_cast<uint64_t>(r.rows), std::memory_order_relaxed);
    Reply ok;
    ok.body = "{\"rows\":" + std::to_string(r.rows) +
              ",\"views_written\":" + std::to_string(r.views_written) +
              ",\"delta_version\":" + std::to_string(r.delta_version.value_or(-1)) + "}";
    Complete(pending, ok);
  };
  if (!EnqueuePush(std::move(job))) {
    metrics.overload.fetch_add(1);
    Complete(pending, ErrorReply(503, "too many pushes waiting for the offline store; retry"));
  }
}

void FeatureServer::Impl::HandleMaterialize(Loop* loop, HttpLoop::RequestId id,
                                            std::string_view body, bool incremental,
                                            std::chrono::steady_clock::time_point started) {
  Endpoint e = incremental ? kMaterializeIncremental : kMaterialize;
  std::vector<std::string> ignored;
  auto parsed = ParseMaterializeRequest(body, incremental, 0, &ignored);
  if (!ignored.empty()) LogIgnored(e, ignored);
  if (!parsed.ok()) {
    return Send(loop, id, StatusReply(parsed.status()), e, started);
  }
  online::MaterializeOptions mo = std::move(*parsed);
  auto pending = Defer(loop, id, e, started);
  bool queued = Enqueue([this, pending, mo] {
    metrics.materialize_running.fetch_add(1);
    auto r = online::Materialize(*repo, *store, mo);
    metrics.materialize_running.fetch_sub(1);
    if (!r.ok()) return Complete(pending, StatusReply(r.status()));
    metrics.materialize_runs.fetch_add(1);
    for (const auto& v : r->views) {
      metrics.materialize_rows.fetch_add(static_cast<uint64_t>(v.rows_written));
    }
    Complete(pending, Reply{200, ReportJson(*r)});
  });
  if (!queued) {
    metrics.overload.fetch_add(1);
    Complete(pending, ErrorReply(503, "too many materializations queued; retry later"));
  }
}

void FeatureServer::Impl::LogIgnored(Endpoint e, const std::vector<std::string>& fields) {
  if (!options.log_requests) return;  // the server's debug log
  std::string names;
  for (const auto& f : fields) {
    names += names.empty() ? "\"" : ", \"";
    json::AppendEscaped(f, &names);
    names += "\"";
  }
  std::fprintf(stderr, "%s: ignored unknown field(s) %s\n", kEndpointNames[e], names.c_str());
}

// POST /write-to-online-store: rows for one feature view, as Feast's remote
// online store sends them (FeatureStore.push and write_to_online_store). A
// synced store write: on the online-push threads, never on the loop.
void FeatureServer::Impl::HandleWriteToOnline(Loop* loop, HttpLoop::RequestId id,
                                              std::string_view body,
                                              std::chrono::steady_clock::time_point started) {
  std::vector<std::string> ignored;
  auto parsed = ParseWriteToOnlineRequest(body, &ignored);
  if (!ignored.empty()) LogIgnored(kWriteToOnline, ignored);
  if (!parsed.ok()) return Send(loop, id, StatusReply(parsed.status()), kWriteToOnline, started);
  if (auto over = OverRowLimit(parsed->rows, "/write-to-online-store"); !over.ok()) {
    return Send(loop, id, StatusReply(over), kWriteToOnline, started);
  }
  auto state = service->registry_cache().Get();
  if (!state.ok()) return Send(loop, id, StatusReply(state.status()), kWriteToOnline, started);
  auto pending = Defer(loop, id, kWriteToOnline, started);
  bool queued = EnqueueOnline([this, pending, state = *state, request = std::move(*parsed)] {
    auto r = online::WriteToOnlineStore(*state, store.get(), request.view, request.table);
    if (!r.ok()) return Complete(pending, StatusReply(r.status()));
    metrics.push_rows.fetch_add(static_cast<uint64_t>(r->rows), std::memory_order_relaxed);
    Reply ok;
    ok.body = "{\"rows\":" + std::to_string(r->rows) + "}";
    Complete(pending, ok);
  });
  if (!queued) {
    metrics.overload.fetch_add(1);
    Complete(pending, ErrorReply(503, "too many writes waiting for the online store; retry"));
  }
}

void FeatureServer::Impl::Handle(Loop* loop, HttpLoop::RequestId id, const HttpRequest& req) {
  auto started = std::chrono::steady_clock::now();
  std::string_view path = req.path;
  std::string_view body = req.body;
  auto expect = [&](HttpRequest::Method want, Endpoint e) {
    if (req.method == want || (want == HttpRequest::kGet && req.method == HttpRequest::kHead)) {
      return true;
    }
    Send(loop, id,
         ErrorReply(405, std::string(kEndpointNames[e]) + " accepts " +
                             (want == HttpRequest::kGet ? "GET" : "POST") + " only, not " +
                             std::string(req.method_name)),
         e, started);
    return false;
  };
  // Endpoints that change state take JSON only: a web page can send a cross-site
  // POST without asking (a CORS "simple request") only as text/plain or a form.
  auto json_only = [&](Endpoint e) {
    if (IsJsonContentType(req.content_type)) return true;
    std::string got = "no Content-Type";
    if (!req.content_type.empty()) got = "Content-Type \"" + std::string(req.content_type) + "\"";
    Send(loop, id,
         ErrorReply(415, "POST " + std::string(kEndpointNames[e]) +
                             " takes a JSON body: send it with \"Content-Type: application/json\" "
                             "(got " +
                             got + ")"),
         e, started);
    return false;
  };
  if (path == "/get-online-features") {
    if (!expect(HttpRequest::kPost, kGetOnline)) return;
    return Send(loop, id, GetOnline(loop, body), kGetOnline, started);
  }
  if (path == "/push") {
    if (!expect(HttpRequest::kPost, kPush) || !json_only(kPush)) return;
    return HandlePush(loop, id, body, started);
  }
  if (path == "/write-to-online-store") {
    if (!expect(HttpRequest::kPost, kWriteToOnline) || !json_only(kWriteToOnline)) return;
    return HandleWriteToOnline(loop, id, body, started);
  }
  if (path == "/materialize" || path == "/materialize-incremental") {
    bool inc = path == "/materialize-incremental";
    const Endpoint e = inc ? kMaterializeIncremental : kMaterialize;
    if (!expect(HttpRequest::kPost, e) || !json_only(e)) return;
    return HandleMaterialize(loop, id, body, inc, started);
  }
  if (path == "/health") {
    if (!expect(HttpRequest::kGet, kHealth)) return;
    auto state = service->registry_cache().Get();
    if (!state.ok())
      return Send(loop, id, ErrorReply(503, state.status().message()), kHealth, started);
    Reply r;
    r.body = std::string("{\"status\":\"") + (draining ? "draining" : "ok") +
             "\",\"registry_version\":" + std::to_string((*state)->version);
    // Still serving the held version, but the registry's head could not be read.
    std::string registry_error = service->registry_cache().last_error();
    if (!registry_error.empty()) {
      r.body += ",\"registry_error\":\"";
      json::AppendEscaped(registry_error, &r.body);
      r.body += "\"";
    }
    r.body += "}";
    if (draining) r.code = 503;
    return Send(loop, id, r, kHealth, started);
  }
  if (path == "/metrics") {
    if (!expect(HttpRequest::kGet, kMetrics)) return;
    auto state = service->registry_cache().Get();
    Reply r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = metrics.Prometheus(state.ok() ? (*state)->version : -1,
                                service->registry_cache().failures());
    if (options.extra_metrics) r.body += options.extra_metrics();
    return Send(loop, id, r, kMetrics, started);
  }
  Send(loop, id,
       ErrorReply(404, "no endpoint " + std::string(path) +
                           " (endpoints: POST /get-online-features, POST /push, "
                           "POST /write-to-online-store, POST /materialize, "
                           "POST /materialize-incremental, GET /health, GET /metrics)"),
       kOther, started);
}

namespace {

arrow::Result<int> Listen(const std::string& host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return arrow::Status::IOError("socket: ", std::strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    close(fd);
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError,
                     "--host '" + host + "' is not an IPv4 address (e.g. 127.0.0.1 or 0.0.0.0)");
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::string err = std::strerror(errno);
    close(fd);
    return arrow::Status::IOError("cannot listen on ", host, ":", port, ": ", err,
                                  "; pick another --port");
  }
  if (listen(fd, 1024) != 0) {
    std::string err = std::strerror(errno);
    close(fd);
    return arrow::Status::IOError("listen: ", err);
  }
  return fd;
}

}  // namespace

arrow::Status FeatureServer::Impl::Init() {
  static std::once_flag threads_once;
  std::call_once(threads_once, [] { evthread_use_pthreads(); });
  if (options.realtime_priority != 0) {
    if (options.busy_poll_us > 0) {
      return arrow::Status::Invalid(
          "realtime priority and busy polling cannot be combined: a busy-polling loop never "
          "sleeps, so at a realtime priority it would keep the kernel's own threads off its CPU; "
          "choose one");
    }
    // Ask the kernel once, on a thread of its own, before anything starts: a
    // refusal is the caller's error, not a loop that silently runs ordinary.
    arrow::Status allowed;
    std::thread probe([&] { allowed = SetRealtimePriority(options.realtime_priority); });
    probe.join();
    ARROW_RETURN_NOT_OK(allowed);
  }
  ARROW_ASSIGN_OR_RAISE(registry, repo->registry());
  service = std::make_unique<online::OnlineService>(registry, store, Clock::System());
  ARROW_RETURN_NOT_OK(service->registry_cache().Get().status());
  // From here on a thread checks the registry's head; requests never wait on it.
  service->registry_cache().StartRefreshThread();
  // Busy-polling loops each keep a core: by default half the usable CPUs, the
  // rest left to the kernel, the store's background work and the clients.
  int n = options.io_threads > 0     ? options.io_threads
          : options.busy_poll_us > 0 ? std::max(1, UsableCpus() / 2)
                                     : UsableCpus();
  int bound_port = options.port;
  HttpLoop::Options http_options;
  http_options.max_body_bytes = options.max_body_bytes;
  http_options.idle_timeout_s = options.idle_timeout_s;
  http_options.header_timeout_s = options.header_timeout_s;
  http_options.body_timeout_s = options.body_timeout_s;
  http_options.write_timeout_s = options.write_timeout_s;
  http_options.max_output_bytes = options.max_connection_output_bytes;
  http_options.busy_poll_us = options.busy_poll_us;
  http_options.error_body = [](int, std::string_view message) {
    return FeastErrorJson("FeastError", message);
  };
  for (int i = 0; i < n; ++i) {
    auto loop = std::make_unique<Loop>();
    ARROW_ASSIGN_OR_RAISE(int fd, Listen(options.host, bound_port));
    if (bound_port == 0) {
      sockaddr_in addr{};
      socklen_t alen = sizeof addr;
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen);
      bound_port = ntohs(addr.sin_port);
    }
    Loop* lp = loop.get();
    ARROW_ASSIGN_OR_RAISE(
        loop->http, HttpLoop::Make(fd, http_options,
                                   [this, lp](HttpLoop&, HttpLoop::RequestId id,
                                              const HttpRequest& req) { Handle(lp, id, req); }));
    loops.push_back(std::move(loop));
  }
  port = bound_port;
  for (int i = 0; i < options.background_threads; ++i) {
    bg_threads.emplace_back([this] { BackgroundWorker(); });
  }
  push_thread = std::thread([this] { PushWorker(); });
  for (int i = 0; i < options.online_push_threads; ++i) {
    online_threads.emplace_back([this] { OnlineWorker(); });
  }
  // A busy-polling loop is pinned to a CPU of its own (the process's allowed
  // CPUs in order): moved between cores, it would spin where the clients or
  // the kernel need to run and queue behind them (docs/online-store.md).
  std::vector<int> cpus;
  if (options.busy_poll_us > 0) cpus = AllowedCpus();
  for (size_t i = 0; i < loops.size(); ++i) {
    Loop* lp = loops[i].get();
    const int cpu = cpus.empty() ? -1 : cpus[i % cpus.size()];
    const int priority = options.realtime_priority;
    lp->thread = std::thread([lp, cpu, priority] {
      if (cpu >= 0) PinToCpu(cpu);
      if (priority != 0) {
        auto st = SetRealtimePriority(priority);  // allowed a moment ago, in Init
        if (!st.ok()) std::fprintf(stderr, "stratalake serve: %s\n", st.ToString().c_str());
      }
      lp->http->Run();
    });
  }
  return arrow::Status::OK();
}

void FeatureServer::Impl::BeginShutdown() {
  if (draining.exchange(true)) return;
  // Stop accepting on every loop, then drain on a helper thread.
  for (auto& l : loops) {
    HttpLoop* http = l->http.get();
    http->Post([http] { http->StopAccepting(); });
  }
  drain_thread = std::thread([this] { DrainAndStop(); });
}

void FeatureServer::Impl::DrainAndStop() {
  // Wait for queued background work, batched pushes and deferred replies.
  {
    std::unique_lock<std::mutex> lock(bg_mu);
    bg_cv.wait(lock, [&] {
      return bg_jobs.empty() && bg_running == 0 && push_jobs.empty() && !push_busy &&
             online_jobs.empty() && online_running == 0;
    });
  }
  while (pending_replies.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  // Let replies just handed to the loops go out.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (auto& l : loops) l->http->Exit();
  (void)store->Sync();
  {
    std::lock_guard<std::mutex> lock(stop_mu);
    stopped = true;
  }
  stop_cv.notify_all();
}

FeatureServer::FeatureServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FeatureServer::~FeatureServer() {
  Shutdown();
  (void)Wait();
}

namespace {
// SIGTERM/SIGINT blocked in this thread and every thread started after it
// (RocksDB's and Arrow's included); the server's signal thread waits for them.
void BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}
}  // namespace

arrow::Result<std::unique_ptr<FeatureServer>> FeatureServer::Start(
    std::shared_ptr<repo::FeatureRepository> repo, const ServerOptions& options) {
  if (options.handle_signals) BlockStopSignals();
  ARROW_ASSIGN_OR_RAISE(auto store, online::OpenRepositoryStore(*repo));
  return Start(std::move(repo), std::shared_ptr<online::OnlineStore>(std::move(store)), options);
}

arrow::Result<std::unique_ptr<FeatureServer>> FeatureServer::Start(
    std::shared_ptr<repo::FeatureRepository> repo, std::shared_ptr<online::OnlineStore> store,
    const ServerOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->repo = std::move(repo);
  impl->store = std::move(store);
  if (options.handle_signals) BlockStopSignals();
  ARROW_RETURN_NOT_OK(impl->Init());
  Impl* raw = impl.get();
  if (options.handle_signals) {
    impl->signal_thread = std::thread([raw] {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGTERM);
      sigaddset(&set, SIGINT);
      int sig = 0;
      sigwait(&set, &sig);
      raw->BeginShutdown();
    });
  }
  return std::unique_ptr<FeatureServer>(new FeatureServer(std::move(impl)));
}

int FeatureServer::port() const { return impl_->port; }

void FeatureServer::Shutdown() { impl_->BeginShutdown(); }

arrow::Status FeatureServer::Wait() {
  std::unique_lock<std::mutex> lock(impl_->stop_mu);
  impl_->stop_cv.wait(lock, [&] { return impl_->stopped; });
  return arrow::Status::OK();
}

}  // namespace stratalake::server
