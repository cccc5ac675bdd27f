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
// closed; a malformed request gets 400 and a close.
//
// Limits, so that no client can hold the loop or its memory (docs/online-store.md,
// "Limits and bad input"):
//  - deadlines: a request's head must arrive within `header_timeout_s` of its
//    first byte and its body within `body_timeout_s` of the head (else 408 and
//    a close); a connection with no request under way is closed after
//    `idle_timeout_s`; one whose client takes no byte of a pending answer for
//    `write_timeout_s` is closed. Deadlines are checked once a second, so one
//    of N seconds fires after N to N+2 seconds.
//  - memory: a connection holds no input buffer while idle (reads go to a
//    buffer of the loop; only what the parser could not take yet is kept), and
//    while more than `max_output_bytes` of answers wait to be sent, further
//    pipelined requests are neither read nor parsed. Large buffers are given
//    back when no longer needed, and memory to the system (malloc_trim) after
//    a burst of connections has gone.
//  - descriptors: at the process's open-file limit the loop keeps serving the
//    connections it has; a spare descriptor lets it accept and close new ones
//    with a 503 instead of spinning on a listening socket that stays readable.
//
// Threads: everything runs on the thread that calls Run(), except Post() and
// Exit(), which may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <arrow/result.h>

#include "stratalake/clock.h"

struct event;
struct event_base;

namespace stratalake::server {

struct HttpRequest {
  enum Method { kGet, kPost, kHead, kOther };
  Method method = kOther;
  std::string_view method_name;  // "GET", "POST", ...
  std::string_view path;         // the URL without its query string
  std::string_view body;         // valid until the request is answered
  /// The Content-Type header's value as sent (at most its first 128 bytes);
  /// empty when there is none.
  std::string_view content_type;
};

/// True for "application/json", any case, optionally with parameters
/// ("application/json; charset=utf-8"); false for anything else, an empty
/// value included.
bool IsJsonContentType(std::string_view value);

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
    /// Largest request body; beyond it 413 and a close. Default: 8 MiB.
    size_t max_body_bytes = 8 << 20;
    /// A connection with no request under way is closed after this many
    /// seconds. Default: 120.
    int idle_timeout_s = 120;
    /// A request's head (request line and headers) must be complete this many
    /// seconds after its first byte, else 408 and a close. Default: 10.
    int header_timeout_s = 10;
    /// A request's body must be complete this many seconds after its head,
    /// else 408 and a close. Default: 60.
    int body_timeout_s = 60;
    /// A connection whose client takes no byte of a pending answer for this
    /// many seconds is closed. Default: 30.
    int write_timeout_s = 30;
    /// Answers waiting to be sent on one connection: while more than this is
    /// queued, its further pipelined requests are neither read nor parsed (one
    /// answer larger than this is still sent whole). Default: 1 MiB.
    size_t max_output_bytes = 1 << 20;
    // Busy polling: after any event, Run() polls without sleeping (epoll_wait
    // with a zero timeout) until this many microseconds pass without one, and
    // only then waits in the kernel. A loop that keeps its core spinning
    // answers without the sleep and wake-up of each request (on a VM: an
    // idle exit and an interrupt), at the price of that core: one busy loop
    // uses a whole CPU while requests come faster than this. 0 = off.
    int busy_poll_us = 0;
    /// The time deadlines are measured in; null = the monotonic clock. Tests
    /// pass a FakeClock and call CheckDeadlines().
    std::shared_ptr<Clock> clock;
    /// The body (application/json) of the errors the loop answers itself
    /// (400 malformed HTTP, 408, 413, 503 at the open-file limit) for an HTTP
    /// status and a message; null = {"error": "<message>"}.
    std::function<std::string(int code, std::string_view message)> error_body;
  };

  /// Takes ownership of `listen_fd` (a bound, listening, non-blocking socket;
  /// -1 for none: then only AddConnection() brings connections).
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
  /// Runs the callbacks of the events ready now, without waiting. For tests
  /// and the fuzzer, in place of Run().
  void Poll();
  /// Serves `fd`, a connected non-blocking stream socket, as if it had been
  /// accepted (takes ownership). Loop thread only. Tests and the fuzzer use it
  /// with a socketpair.
  void AddConnection(int fd);
  /// Answers or closes the connections past a deadline. Loop thread only.
  /// Run() calls it once a second; tests call it after moving their FakeClock.
  void CheckDeadlines();
  /// Open connections. Loop thread only.
  size_t connections() const { return conns_.size(); }
  /// Makes Run() return after the current iteration. Thread-safe.
  void Exit();

  struct Conn;

 private:
  HttpLoop(Options options, Handler handler) : options_(options), handler_(std::move(handler)) {}
  static void OnAccept(int fd, short what, void* arg);
  static void OnReadable(int fd, short what, void* arg);
  static void OnWritable(int fd, short what, void* arg);
  static void OnWake(int fd, short what, void* arg);
  static void OnTick(int fd, short what, void* arg);
  static void OnResumeAccept(int fd, short what, void* arg);
  int64_t NowMs() const;
  void Accept();
  bool ShedOne();
  /// Feeds `data` to the connection's parser, dispatching complete requests
  /// while it may; returns the bytes the parser took.
  size_t Parse(Conn* c, const char* data, size_t len);
  /// Parses held input, writes queued output and reads on only when both
  /// allow it. False when `c` was closed (and freed).
  bool Drive(Conn* c);
  void Dispatch(Conn* c);
  /// Writes what `out` holds. False when `c` was closed (and freed).
  bool Flush(Conn* c);
  void SetReading(Conn* c, bool on);
  void Close(Conn* c);
  void AppendStatus(Conn* c, int code, std::string_view content_type, size_t content_length,
                    bool retry_after);
  void Fail(Conn* c, int code, const std::string& message);
  std::string ErrorBody(int code, std::string_view message) const;
  void ReleaseBuffers(Conn* c);

  Options options_;
  Handler handler_;
  uint64_t events_ = 0;  // callbacks run: Run() polls on while this moves
  event_base* base_ = nullptr;
  event* accept_ev_ = nullptr;
  event* resume_accept_ev_ = nullptr;  // accepting paused for a moment (out of memory...)
  event* wake_ev_ = nullptr;
  event* tick_ev_ = nullptr;  // once a second: CheckDeadlines()
  int listen_fd_ = -1;
  int spare_fd_ = -1;       // given up at the descriptor limit to accept and refuse one client
  std::string full_reply_;  // the 503 those clients get
  uint64_t next_id_ = 1;
  std::unordered_map<RequestId, Conn*> conns_;
  Conn* dispatching_ = nullptr;          // the connection whose handler call is running
  std::unique_ptr<char[]> read_buffer_;  // every read() goes here first
  // Milliseconds on the deadline clock, as of the last CheckDeadlines() (so
  // the request path reads no clock).
  int64_t now_ms_ = 0;
  std::chrono::steady_clock::time_point start_;
  // Giving memory back after bursts: the most connections open since the last
  // trim, and whether large buffers were freed since.
  size_t high_water_ = 0;
  bool trim_wanted_ = false;
  std::mutex mu_;
  std::vector<std::function<void()>> posted_;
  // The Date header, formatted once per second.
  int64_t date_second_ = -1;
  char date_[40] = {};
};

}  // namespace stratalake::server
