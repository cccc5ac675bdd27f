#include "server/http_loop.h"

#include <fcntl.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <ctime>

#include <event2/event.h>

#include "common/json.h"

namespace stratalake::server {

namespace {

// A growable byte buffer that does not zero what it grows into.
struct Buffer {
  std::unique_ptr<char[]> data;
  size_t cap = 0;
  size_t len = 0;

  void Reserve(size_t extra) {
    if (cap - len >= extra) return;
    size_t n = std::max(cap * 2, len + extra);
    auto d = std::make_unique<char[]>(n);
    if (len) std::memcpy(d.get(), data.get(), len);
    data = std::move(d);
    cap = n;
  }
  void Append(std::string_view s) {
    Reserve(s.size());
    if (!s.empty()) std::memcpy(data.get() + len, s.data(), s.size());
    len += s.size();
  }
  /// Drops the first `n` bytes.
  void Consume(size_t n) {
    if (n >= len) {
      len = 0;
      return;
    }
    std::memmove(data.get(), data.get() + n, len - n);
    len -= n;
  }
  void Release() {
    data.reset();
    cap = len = 0;
  }
};

constexpr size_t kReadChunk = 64 << 10;
// Bodies at least this large are written straight from the caller's buffer.
constexpr size_t kDirectWrite = 32 << 10;
// A connection's buffers larger than this are freed once empty: a burst of
// large requests must not leave every connection holding its peak.
constexpr size_t kKeepBytes = 64 << 10;
// Freeing a buffer this large asks for a malloc_trim (at most once a second).
constexpr size_t kTrimBytes = 4 << 20;
// A burst: the connections fell to half of a high-water mark at least this high.
constexpr size_t kTrimConnections = 256;
// A connection closed after an error reads (and drops) what the client still
// sends for at most this long, so that the answer is not destroyed by a reset.
constexpr int64_t kLingerMs = 5000;
constexpr int64_t kNever = INT64_MAX;
// Deadlines are checked once a second against a clock read then: one second
// more makes sure a deadline of N seconds never fires before N have passed.
constexpr int64_t kTickMs = 1000;
// At the descriptor limit with no spare to give up: pause accepting this long.
constexpr int kAcceptPauseMs = 100;
// The Content-Type value kept of a request (enough for any JSON media type).
constexpr size_t kMaxContentType = 128;

const char* Reason(int code) {
  switch (code) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

std::string JsonError(std::string_view message) {
  std::string out = "{\"error\":\"";
  json::AppendEscaped(message, &out);
  out += "\"}";
  return out;
}

bool IsSpace(char ch) { return ch == ' ' || ch == '\t'; }

}  // namespace

bool IsJsonContentType(std::string_view v) {
  while (!v.empty() && IsSpace(v.front())) v.remove_prefix(1);
  constexpr std::string_view kJson = "application/json";
  if (v.size() < kJson.size() || strncasecmp(v.data(), kJson.data(), kJson.size()) != 0) {
    return false;
  }
  v.remove_prefix(kJson.size());
  while (!v.empty() && IsSpace(v.front())) v.remove_prefix(1);
  return v.empty() || v.front() == ';';
}

struct HttpLoop::Conn {
  // Where a connection is, for its read deadline.
  enum Phase : uint8_t {
    kIdle,    // no request under way: idle timeout
    kHead,    // a request's first bytes came: header timeout
    kBody,    // its head is complete: body timeout
    kBusy,    // dispatched, answering: no deadline
    kLinger,  // closing, dropping input: linger deadline
  };

  HttpLoop* loop = nullptr;
  RequestId id = 0;
  int fd = -1;
  size_t max_body = 0;
  event* read_ev = nullptr;
  event* write_ev = nullptr;
  bool reading = false;        // read_ev is added
  bool write_pending = false;  // write_ev is added (the socket buffer was full)
  http_parser parser;
  Buffer in;  // input the parser has not taken yet: held only while parsing waits
  Buffer out;
  size_t out_pos = 0;  // bytes of `out` already written
  // The request being parsed.
  std::string url;
  std::string body;
  std::string field, value;
  std::string content_type;
  bool in_value = false;
  bool expect_continue = false;
  bool message_complete = false;
  bool too_large = false;
  // Deadlines, in milliseconds of the loop's clock.
  Phase phase = kIdle;
  bool phase_changed = false;  // set by the parser's callbacks; Parse() sets the deadline
  int64_t read_deadline = kNever;
  int64_t write_deadline = kNever;  // while write_pending
  // State between a request and its answer.
  bool awaiting = false;       // a request was dispatched and is not answered yet
  bool keep_alive = true;      // for the request being answered
  bool head = false;           // ... which is a HEAD request (no body in the answer)
  bool http10 = false;         // ... which came as HTTP/1.0
  bool closing = false;        // close once `out` is written; parse nothing more
  bool discard_input = false;  // closing on an error: the rest of the input is dropped
  bool lingering = false;      // closing: our side is shut down, the rest of the input is dropped
};

namespace {

using Conn = HttpLoop::Conn;

Conn* ConnOf(http_parser* p) { return static_cast<Conn*>(p->data); }

void SetPhase(Conn* c, Conn::Phase phase) {
  c->phase = phase;
  c->phase_changed = true;
}

void EndHeader(Conn* c) {
  if (c->field.size() == 6 && strncasecmp(c->field.data(), "expect", 6) == 0 &&
      strncasecmp(c->value.c_str(), "100-continue", 12) == 0) {
    c->expect_continue = true;
  } else if (c->field.size() == 12 && strncasecmp(c->field.data(), "content-type", 12) == 0) {
    c->content_type.assign(c->value, 0, kMaxContentType);
  }
}

int OnMessageBegin(http_parser* p) {
  Conn* c = ConnOf(p);
  c->url.clear();
  c->body.clear();
  c->field.clear();
  c->value.clear();
  c->content_type.clear();
  c->in_value = false;
  c->expect_continue = false;
  SetPhase(c, Conn::kHead);
  return 0;
}

int OnUrl(http_parser* p, const char* at, size_t len) {
  ConnOf(p)->url.append(at, len);
  return 0;
}

int OnHeaderField(http_parser* p, const char* at, size_t len) {
  Conn* c = ConnOf(p);
  if (c->in_value) {
    EndHeader(c);
    c->field.clear();
    c->value.clear();
    c->in_value = false;
  }
  if (c->field.size() < 64) c->field.append(at, len);  // only short names matter
  return 0;
}

int OnHeaderValue(http_parser* p, const char* at, size_t len) {
  Conn* c = ConnOf(p);
  c->in_value = true;
  if (c->value.size() < kMaxContentType) {
    c->value.append(at, std::min(len, kMaxContentType - c->value.size()));
  }
  return 0;
}

int OnHeadersComplete(http_parser* p) {
  Conn* c = ConnOf(p);
  if (c->in_value) EndHeader(c);
  if (p->content_length != ULLONG_MAX && p->content_length > c->max_body) {
    c->too_large = true;
    http_parser_pause(p, 1);
    return 0;
  }
  SetPhase(c, Conn::kBody);
  if (c->expect_continue) c->out.Append("HTTP/1.1 100 Continue\r\n\r\n");
  return 0;
}

int OnBody(http_parser* p, const char* at, size_t len) {
  Conn* c = ConnOf(p);
  if (c->body.size() + len > c->max_body) {  // chunked bodies have no length
    c->too_large = true;
    http_parser_pause(p, 1);
    return 0;
  }
  c->body.append(at, len);
  return 0;
}

int OnMessageComplete(http_parser* p) {
  Conn* c = ConnOf(p);
  c->message_complete = true;
  SetPhase(c, Conn::kBusy);
  http_parser_pause(p, 1);  // one request at a time: pipelined ones wait
  return 0;
}

http_parser_settings MakeSettings() {
  http_parser_settings s;
  http_parser_settings_init(&s);
  s.on_message_begin = OnMessageBegin;
  s.on_url = OnUrl;
  s.on_header_field = OnHeaderField;
  s.on_header_value = OnHeaderValue;
  s.on_headers_complete = OnHeadersComplete;
  s.on_body = OnBody;
  s.on_message_complete = OnMessageComplete;
  return s;
}

const http_parser_settings kSettings = MakeSettings();

bool IsTransient(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

}  // namespace

arrow::Result<std::unique_ptr<HttpLoop>> HttpLoop::Make(int listen_fd, Options options,
                                                        Handler handler) {
  std::unique_ptr<HttpLoop> loop(new HttpLoop(options, std::move(handler)));
  HttpLoop* raw = loop.get();
  loop->listen_fd_ = listen_fd;
  loop->start_ = std::chrono::steady_clock::now();
  loop->now_ms_ = loop->NowMs();
  loop->read_buffer_ = std::make_unique<char[]>(kReadChunk);
  loop->base_ = event_base_new();
  if (!loop->base_) return arrow::Status::OutOfMemory("libevent: event_base_new failed");
  loop->wake_ev_ = event_new(loop->base_, -1, EV_READ | EV_PERSIST, OnWake, raw);
  loop->tick_ev_ = event_new(loop->base_, -1, EV_PERSIST, OnTick, raw);
  if (!loop->wake_ev_ || !loop->tick_ev_) return arrow::Status::OutOfMemory("libevent");
  event_add(loop->wake_ev_, nullptr);
  const timeval tick{kTickMs / 1000, 0};
  event_add(loop->tick_ev_, &tick);
  if (listen_fd >= 0) {
    loop->accept_ev_ = event_new(loop->base_, listen_fd, EV_READ | EV_PERSIST, OnAccept, raw);
    loop->resume_accept_ev_ = evtimer_new(loop->base_, OnResumeAccept, raw);
    if (!loop->accept_ev_ || !loop->resume_accept_ev_) {
      return arrow::Status::OutOfMemory("libevent");
    }
    event_add(loop->accept_ev_, nullptr);
    loop->spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    const std::string body = loop->ErrorBody(
        503, "the server is at its limit of open connections (" + std::to_string(limit.rlim_cur) +
                 " open files, ulimit -n); retry later, or raise the server's limit");
    loop->full_reply_ =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" + body;
  }
  return loop;
}

HttpLoop::~HttpLoop() {
  while (!conns_.empty()) Close(conns_.begin()->second);
  if (accept_ev_) event_free(accept_ev_);
  if (resume_accept_ev_) event_free(resume_accept_ev_);
  if (wake_ev_) event_free(wake_ev_);
  if (tick_ev_) event_free(tick_ev_);
  if (listen_fd_ >= 0) close(listen_fd_);
  if (spare_fd_ >= 0) close(spare_fd_);
  if (base_) event_base_free(base_);
}

int64_t HttpLoop::NowMs() const {
  if (options_.clock) return options_.clock->NowMillis();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start_)
      .count();
}

void HttpLoop::Run() {
  if (options_.busy_poll_us <= 0) {
    event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY);
    return;
  }
  using Clock = std::chrono::steady_clock;
  const auto spin = std::chrono::microseconds(options_.busy_poll_us);
  auto last_event = Clock::now();
  while (true) {
    const uint64_t before = events_;
    const bool polling = Clock::now() - last_event < spin;
    // One iteration: a zero-timeout poll while polling, else a wait for the next event.
    event_base_loop(base_, polling ? EVLOOP_NONBLOCK : EVLOOP_ONCE);
    if (event_base_got_exit(base_) || event_base_got_break(base_)) return;
    if (events_ != before || !polling) last_event = Clock::now();
  }
}

void HttpLoop::Poll() { event_base_loop(base_, EVLOOP_NONBLOCK); }

void HttpLoop::Exit() { event_base_loopexit(base_, nullptr); }

void HttpLoop::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    posted_.push_back(std::move(fn));
  }
  event_active(wake_ev_, EV_READ, 0);
}

void HttpLoop::OnWake(int, short, void* arg) {
  auto* loop = static_cast<HttpLoop*>(arg);
  std::vector<std::function<void()>> work;
  {
    std::lock_guard<std::mutex> lock(loop->mu_);
    work.swap(loop->posted_);
  }
  for (auto& fn : work) fn();
}

void HttpLoop::OnTick(int, short, void* arg) { static_cast<HttpLoop*>(arg)->CheckDeadlines(); }

void HttpLoop::StopAccepting() {
  if (accept_ev_) {
    event_free(accept_ev_);
    accept_ev_ = nullptr;
  }
  if (resume_accept_ev_) evtimer_del(resume_accept_ev_);
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
  }
  if (spare_fd_ >= 0) {
    close(spare_fd_);
    spare_fd_ = -1;
  }
}

void HttpLoop::OnAccept(int, short, void* arg) { static_cast<HttpLoop*>(arg)->Accept(); }

void HttpLoop::OnResumeAccept(int, short, void* arg) {
  auto* loop = static_cast<HttpLoop*>(arg);
  if (loop->accept_ev_) event_add(loop->accept_ev_, nullptr);
}

void HttpLoop::Accept() {
  for (int i = 0; i < 64 && listen_fd_ >= 0; ++i) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if ((errno == EMFILE || errno == ENFILE) && ShedOne()) continue;
      // Out of memory, or of descriptors with no spare to give up: the
      // listening socket stays readable, so waiting on it would spin.
      event_del(accept_ev_);
      const timeval pause{0, kAcceptPauseMs * 1000};
      evtimer_add(resume_accept_ev_, &pause);
      return;
    }
    int one = 1;
    // Replies go out in one write; without this, a multi-segment one waits for
    // the client's delayed ACK.
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    AddConnection(fd);
  }
}

bool HttpLoop::ShedOne() {
  if (spare_fd_ < 0) spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (spare_fd_ < 0) return false;
  close(spare_fd_);
  spare_fd_ = -1;
  int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd >= 0) {
    // The client learns why at once, instead of waiting in the backlog.
    (void)send(fd, full_reply_.data(), full_reply_.size(), MSG_NOSIGNAL);
    char sink[4096];
    (void)recv(fd, sink, sizeof sink, MSG_DONTWAIT);  // a request already here: no reset
    close(fd);
  }
  spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd >= 0 && spare_fd_ >= 0;
}

void HttpLoop::AddConnection(int fd) {
  auto* c = new Conn;
  c->loop = this;
  c->id = next_id_++;
  c->fd = fd;
  c->max_body = options_.max_body_bytes;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  c->read_ev = event_new(base_, fd, EV_READ | EV_PERSIST, OnReadable, c);
  c->write_ev = event_new(base_, fd, EV_WRITE | EV_PERSIST, OnWritable, c);
  if (!c->read_ev || !c->write_ev) {
    if (c->read_ev) event_free(c->read_ev);
    if (c->write_ev) event_free(c->write_ev);
    close(fd);
    delete c;
    return;
  }
  c->read_deadline = now_ms_ + options_.idle_timeout_s * int64_t{1000} + kTickMs;
  conns_.emplace(c->id, c);
  high_water_ = std::max(high_water_, conns_.size());
  SetReading(c, true);
}

void HttpLoop::Close(Conn* c) {
  conns_.erase(c->id);
  event_free(c->read_ev);
  event_free(c->write_ev);
  close(c->fd);
  if (c->out.cap >= kTrimBytes || c->body.capacity() >= kTrimBytes) trim_wanted_ = true;
  delete c;
  if (high_water_ >= kTrimConnections && conns_.size() <= high_water_ / 2) trim_wanted_ = true;
}

void HttpLoop::SetReading(Conn* c, bool on) {
  if (on == c->reading) return;
  if (on) {
    event_add(c->read_ev, nullptr);
  } else {
    event_del(c->read_ev);
  }
  c->reading = on;
}

void HttpLoop::CheckDeadlines() {
  now_ms_ = NowMs();
  const int64_t now = now_ms_;
  for (auto it = conns_.begin(); it != conns_.end();) {
    Conn* c = it->second;
    ++it;  // `c` may be closed below; nothing else is
    if (c->write_pending && now >= c->write_deadline) {
      Close(c);  // the client takes nothing of its answers
      continue;
    }
    if (now < c->read_deadline) continue;
    switch (c->phase) {
      case Conn::kIdle:
        // With answers still going out, the write deadline governs; idle
        // afterwards, it is closed at the next check.
        if (!c->awaiting && c->out_pos == c->out.len) Close(c);
        break;
      case Conn::kHead:
        Fail(c, 408,
             "the request's head (request line and headers) did not arrive within " +
                 std::to_string(options_.header_timeout_s) +
                 " s of its first byte (the server's --header-timeout-s)");
        Drive(c);
        break;
      case Conn::kBody:
        Fail(c, 408,
             "the request's body did not arrive within " + std::to_string(options_.body_timeout_s) +
                 " s after its headers (the server's --body-timeout-s)");
        Drive(c);
        break;
      case Conn::kLinger:
        Close(c);
        break;
      case Conn::kBusy:
        c->read_deadline = kNever;
        break;
    }
  }
  if (trim_wanted_) {
    // A burst has gone, or a large buffer was freed: give the memory back
    // (glibc keeps freed heap memory otherwise). At most once per tick.
    trim_wanted_ = false;
    high_water_ = conns_.size();
#ifdef __GLIBC__
    malloc_trim(0);
#endif
  }
}

void HttpLoop::OnReadable(int fd, short, void* arg) {
  auto* c = static_cast<Conn*>(arg);
  HttpLoop* loop = c->loop;
  ++loop->events_;
  char* buf = loop->read_buffer_.get();
  ssize_t n = read(fd, buf, kReadChunk);
  if (n == 0 || (n < 0 && !IsTransient(errno))) {
    loop->Close(c);  // the client went away; an outstanding answer is dropped
    return;
  }
  if (n < 0) return;
  if (c->lingering) return;  // dropped until the client closes
  const auto got = static_cast<size_t>(n);
  if (c->in.len > 0) {
    c->in.Append(std::string_view(buf, got));  // behind what waits (Drive parses it)
  } else {
    // The usual case: parsed from the loop's buffer, nothing kept.
    const size_t used = loop->Parse(c, buf, got);
    if (used < got) c->in.Append(std::string_view(buf + used, got - used));
  }
  loop->Drive(c);
}

void HttpLoop::OnWritable(int, short, void* arg) {
  auto* c = static_cast<Conn*>(arg);
  c->loop->Drive(c);
}

size_t HttpLoop::Parse(Conn* c, const char* data, size_t len) {
  size_t pos = 0;
  while (pos < len && !c->awaiting && !c->closing &&
         c->out.len - c->out_pos <= options_.max_output_bytes) {
    const size_t avail = len - pos;
    const size_t n = http_parser_execute(&c->parser, &kSettings, data + pos, avail);
    pos += n;
    if (c->phase_changed) {
      c->phase_changed = false;
      const int64_t s = c->phase == Conn::kHead   ? options_.header_timeout_s
                        : c->phase == Conn::kBody ? options_.body_timeout_s
                                                  : -1;
      c->read_deadline = s < 0 ? kNever : now_ms_ + s * 1000 + kTickMs;
    }
    if (c->too_large) {
      Fail(c, 413,
           "request body over the limit of " + std::to_string(options_.max_body_bytes) +
               " bytes (the server's --max-body-bytes)");
      break;
    }
    if (c->message_complete) {
      c->message_complete = false;
      http_parser_pause(&c->parser, 0);
      Dispatch(c);
      continue;
    }
    http_errno err = HTTP_PARSER_ERRNO(&c->parser);
    if (err != HPE_OK) {
      Fail(c, 400, std::string("malformed HTTP request: ") + http_errno_description(err));
      break;
    }
    if (n < avail) {  // cannot happen without an error or a pause; never spin
      Fail(c, 400, "malformed HTTP request: the parser stopped");
      break;
    }
  }
  return c->discard_input ? len : pos;
}

bool HttpLoop::Drive(Conn* c) {
  while (true) {
    if (c->in.len > 0 && !c->awaiting && !c->closing &&
        c->out.len - c->out_pos <= options_.max_output_bytes) {
      const size_t used = Parse(c, c->in.data.get(), c->in.len);
      c->in.Consume(used);
      if (c->in.len == 0) c->in.Release();
    }
    if (!Flush(c)) return false;
    // Parse returns only when its input is used up or parsing must wait; a
    // flush may have ended the wait (the output went out).
    if (c->in.len == 0 || c->awaiting || c->closing ||
        c->out.len - c->out_pos > options_.max_output_bytes) {
      break;
    }
  }
  SetReading(c, c->lingering || (c->in.len == 0 && !c->awaiting && !c->closing &&
                                 c->out.len - c->out_pos <= options_.max_output_bytes));
  return true;
}

void HttpLoop::Dispatch(Conn* c) {
  HttpRequest req;
  switch (c->parser.method) {
    case HTTP_GET:
      req.method = HttpRequest::kGet;
      break;
    case HTTP_POST:
      req.method = HttpRequest::kPost;
      break;
    case HTTP_HEAD:
      req.method = HttpRequest::kHead;
      break;
    default:
      req.method = HttpRequest::kOther;
  }
  req.method_name = http_method_str(static_cast<http_method>(c->parser.method));
  std::string_view url = c->url;
  req.path = url.substr(0, url.find('?'));
  req.body = c->body;
  req.content_type = c->content_type;
  c->awaiting = true;
  c->keep_alive = http_should_keep_alive(&c->parser) != 0;
  c->head = req.method == HttpRequest::kHead;
  c->http10 = c->parser.http_major == 1 && c->parser.http_minor == 0;
  dispatching_ = c;
  handler_(*this, c->id, req);
  dispatching_ = nullptr;
  // Answered later: Parse stops here, and Drive stops reading until then.
}

void HttpLoop::AppendStatus(Conn* c, int code, std::string_view content_type, size_t content_length,
                            bool retry_after) {
  int64_t now = static_cast<int64_t>(time(nullptr));
  if (now != date_second_) {
    date_second_ = now;
    time_t t = static_cast<time_t>(now);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date_, sizeof date_, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  }
  char num[24];
  auto [end, ec] = std::to_chars(num, num + sizeof num, content_length);
  (void)ec;
  char code_text[4] = {static_cast<char>('0' + code / 100 % 10),
                       static_cast<char>('0' + code / 10 % 10), static_cast<char>('0' + code % 10),
                       0};
  Buffer& o = c->out;
  o.Reserve(256 + content_type.size());
  o.Append(c->http10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  o.Append(code_text);
  o.Append(" ");
  o.Append(Reason(code));
  o.Append("\r\nDate: ");
  o.Append(date_);
  o.Append("\r\nContent-Type: ");
  o.Append(content_type);
  o.Append("\r\nContent-Length: ");
  o.Append(std::string_view(num, static_cast<size_t>(end - num)));
  if (retry_after) o.Append("\r\nRetry-After: 1");
  if (!c->keep_alive) {
    o.Append("\r\nConnection: close");
  } else if (c->http10) {
    o.Append("\r\nConnection: keep-alive");
  }
  o.Append("\r\n\r\n");
}

void HttpLoop::Respond(RequestId id, const HttpResponse& r) {
  Conn* c = dispatching_ && dispatching_->id == id ? dispatching_ : nullptr;
  bool inline_answer = c != nullptr;
  if (!c) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;  // closed meanwhile
    c = it->second;
  }
  if (!c->awaiting) return;  // answered already
  c->awaiting = false;
  AppendStatus(c, r.code, r.content_type, r.body.size(), r.retry_after);
  if (!c->head && c->out_pos == 0 && c->out.len < 1024 && r.body.size() >= kDirectWrite) {
    // A large body with nothing else queued: write it from where it is (no copy
    // into `out`), and keep only what the socket did not take.
    iovec iov[2] = {{c->out.data.get(), c->out.len},
                    {const_cast<char*>(r.body.data()), r.body.size()}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
    size_t done = n > 0 ? static_cast<size_t>(n) : 0;  // errors: Flush sees them again
    size_t head_left = done < c->out.len ? c->out.len - done : 0;
    c->out.Consume(c->out.len - head_left);
    c->out.Append(r.body.substr(done > iov[0].iov_len ? done - iov[0].iov_len : 0));
  } else if (!c->head) {
    c->out.Append(r.body);
  }
  if (!c->keep_alive) c->closing = true;
  // Until the next request's first byte: the idle timeout.
  c->phase = Conn::kIdle;
  c->read_deadline = now_ms_ + options_.idle_timeout_s * int64_t{1000} + kTickMs;
  ReleaseBuffers(c);
  if (inline_answer) return;  // the read path goes on parsing, then flushes once
  // A late answer: send it, then serve requests that arrived meanwhile.
  Drive(c);
}

void HttpLoop::ReleaseBuffers(Conn* c) {
  // The request's copies: kept for the next request unless they are large.
  if (c->body.capacity() > kKeepBytes) {
    if (c->body.capacity() >= kTrimBytes) trim_wanted_ = true;
    std::string().swap(c->body);
  }
  if (c->url.capacity() > kKeepBytes) std::string().swap(c->url);
}

std::string HttpLoop::ErrorBody(int code, std::string_view message) const {
  return options_.error_body ? options_.error_body(code, message) : JsonError(message);
}

void HttpLoop::Fail(Conn* c, int code, const std::string& message) {
  c->keep_alive = false;
  c->head = false;
  c->awaiting = false;
  std::string body = ErrorBody(code, message);
  AppendStatus(c, code, "application/json", body.size(), false);
  c->out.Append(body);
  c->closing = true;
  c->discard_input = true;
  c->phase = Conn::kBusy;  // Flush sets the linger deadline
  c->read_deadline = kNever;
}

bool HttpLoop::Flush(Conn* c) {
  bool wrote = false;
  while (c->out_pos < c->out.len) {
    ssize_t n = send(c->fd, c->out.data.get() + c->out_pos, c->out.len - c->out_pos, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!c->write_pending) {
          event_add(c->write_ev, nullptr);
          c->write_pending = true;
          wrote = true;
        }
        // The client must take some of it within the write timeout.
        if (wrote) c->write_deadline = now_ms_ + options_.write_timeout_s * int64_t{1000} + kTickMs;
        return true;
      }
      Close(c);  // the client went away
      return false;
    }
    c->out_pos += static_cast<size_t>(n);
    wrote = true;
  }
  c->out.len = 0;
  c->out_pos = 0;
  if (c->out.cap > kKeepBytes) {
    if (c->out.cap >= kTrimBytes) trim_wanted_ = true;
    c->out.Release();
  }
  if (c->write_pending) {
    event_del(c->write_ev);
    c->write_pending = false;
    c->write_deadline = kNever;
  }
  if (c->closing && !c->awaiting && !c->lingering) {
    // Shut our side, then read until the client closes: closing with unread
    // input would reset the connection and could destroy the answer in flight.
    if (c->in.len > 0 || c->discard_input) {
      shutdown(c->fd, SHUT_WR);
      c->lingering = true;
      c->in.Release();
      c->phase = Conn::kLinger;
      c->read_deadline = now_ms_ + kLingerMs;
    } else {
      Close(c);
      return false;
    }
  }
  return true;
}

}  // namespace stratalake::server
