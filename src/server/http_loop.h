// One HTTP/1.1 server event loop: libevent's event_base for readiness and
// timers, the nodejs http-parser (Debian's libhttp-parser) for the protocol,
// and connection buffers of our own, so that a keep-alive request costs one
// read() and one write() — no per-request allocations, epoll_ctl calls or
// FIONREAD probes (what libevent's evhttp spent; docs/online-store.md).
//
// Protocol: HTTP/1.0 and 1.1 requests with Content-Length or chunked bodies,
// keep-alive (HTTP/1.1 by default, HTTP/1.0 with "Connection: keep-alive"),
// pipelining (requests on one connection are answered in order; the next one
// is parsed only after the previous one was answered), "Expect: 100-continue".
// A body over `max_body_bytes` is answered 413 at once and the connection is
// closed; a malformed request gets 400 and a close. Connections idle for
// `idle_timeout_s` with no request outstanding are closed.
//
// Threads: everything runs on the thread that calls Run(), except Post() and
// Exit(), which may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <arrow/result.h>

struct event;
struct event_base;

namespace stratalake::server {

struct HttpRequest {
  enum Method { kGet, kPost, kHead, kOther };
  Method method = kOther;
  std::string_view method_name;  // "GET", "POST", ...
  std::string_view path;         // the URL without its query string
  std::string_view body;         // valid until the request is answered
};

struct HttpResponse {
  int code = 200;
  std::string_view content_type = "application/json";
  std::string_view body;
  bool retry_after = false;  // adds "Retry-After: 1" (503s)
};

class HttpLoop {
 public:
  /// Identifies a request awaiting its answer (one per connection at a time).
  using RequestId = uint64_t;
  /// Called on the loop thread for every complete request. The handler answers
  /// with Respond(id, ...) before it returns, or later from the loop thread
  /// (other threads Post() the call); until then the connection reads nothing more.
  using Handler = std::function<void(HttpLoop&, RequestId, const HttpRequest&)>;

  struct Options {
    size_t max_body_bytes = 8 << 20;
    int idle_timeout_s = 120;
    // Busy polling: after any event, Run() polls without sleeping (epoll_wait
    // with a zero timeout) until this many microseconds pass without one, and
    // only then waits in the kernel. A loop that keeps its core spinning
    // answers without the sleep and wake-up of each request (on a VM: an
    // idle exit and an interrupt), at the price of that core: one busy loop
    // uses a whole CPU while requests come faster than this. 0 = off.
    int busy_poll_us = 0;
  };

  /// Takes ownership of `listen_fd` (a bound, listening, non-blocking socket).
  static arrow::Result<std::unique_ptr<HttpLoop>> Make(int listen_fd, Options options,
                                                       Handler handler);
  ~HttpLoop();
  HttpLoop(const HttpLoop&) = delete;
  HttpLoop& operator=(const HttpLoop&) = delete;

  /// Answers request `id`. Loop thread only. Does nothing when the client has
  /// gone away in the meantime (the connection was closed).
  void Respond(RequestId id, const HttpResponse& response);

  /// Runs `fn` on the loop thread soon. Thread-safe.
  void Post(std::function<void()> fn);
  /// Closes the listening socket: no new connections. Loop thread only.
  void StopAccepting();
  /// Serves until Exit(). Returns on the calling thread.
  void Run();
  /// Makes Run() return after the current iteration. Thread-safe.
  void Exit();

  struct Conn;

 private:
  HttpLoop(Options options, Handler handler) : options_(options), handler_(std::move(handler)) {}
  static void OnAccept(int fd, short what, void* arg);
  static void OnReadable(int fd, short what, void* arg);
  static void OnWritable(int fd, short what, void* arg);
  static void OnWake(int fd, short what, void* arg);
  void Accept();
  void ProcessInput(Conn* c);
  void Dispatch(Conn* c);
  void Flush(Conn* c);
  void Close(Conn* c);
  void AppendStatus(Conn* c, int code, std::string_view content_type, size_t content_length,
                    bool retry_after);
  void Fail(Conn* c, int code, const std::string& message);

  Options options_;
  Handler handler_;
  uint64_t events_ = 0;  // callbacks run: Run() polls on while this moves
  event_base* base_ = nullptr;
  event* accept_ev_ = nullptr;
  event* wake_ev_ = nullptr;
  int listen_fd_ = -1;
  const struct timeval* idle_timeout_ = nullptr;  // libevent common timeout
  uint64_t next_id_ = 1;
  std::unordered_map<RequestId, Conn*> conns_;
  Conn* dispatching_ = nullptr;  // the connection whose handler call is running
  std::mutex mu_;
  std::vector<std::function<void()>> posted_;
  // The Date header, formatted once per second.
  int64_t date_second_ = -1;
  char date_[40] = {};
};

}  // namespace stratalake::server
