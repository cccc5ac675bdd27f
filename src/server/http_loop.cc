#include "server/http_loop.h"

#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstring>
#include <ctime>

#include <event2/event.h>

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
};

constexpr size_t kReadChunk = 64 << 10;
// Bodies at least this large are written straight from the caller's buffer.
constexpr size_t kDirectWrite = 32 << 10;

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
    case 413:
      return "Payload Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

std::string JsonError(const std::string& message) {
  std::string out = "{\"error\":\"";
  for (char ch : message) {
    if (ch == '"' || ch == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out.push_back(' ');
    } else {
      out.push_back(ch);
    }
  }
  return out + "\"}";
}

}  // namespace

struct HttpLoop::Conn {
  HttpLoop* loop = nullptr;
  RequestId id = 0;
  int fd = -1;
  size_t max_body = 0;
  event* read_ev = nullptr;
  event* write_ev = nullptr;
  bool write_pending = false;  // write_ev is added (the socket buffer was full)
  http_parser parser;
  Buffer in;
  size_t in_pos = 0;  // bytes of `in` already given to the parser
  Buffer out;
  size_t out_pos = 0;  // bytes of `out` already written
  // The request being parsed.
  std::string url;
  std::string body;
  std::string field, value;
  bool in_value = false;
  bool expect_continue = false;
  bool message_complete = false;
  bool too_large = false;
  // State between a request and its answer.
  bool awaiting = false;   // a request was dispatched and is not answered yet
  bool keep_alive = true;  // for the request being answered
  bool head = false;       // ... which is a HEAD request (no body in the answer)
  bool http10 = false;     // ... which came as HTTP/1.0
  bool closing = false;    // close once `out` is written; read nothing more
  bool lingering = false;  // closing: our side is shut down, the rest of the input is discarded
};

namespace {

using Conn = HttpLoop::Conn;

Conn* ConnOf(http_parser* p) { return static_cast<Conn*>(p->data); }

void EndHeader(Conn* c) {
  if (c->field.size() == 6 && strncasecmp(c->field.data(), "expect", 6) == 0 &&
      strncasecmp(c->value.c_str(), "100-continue", 12) == 0) {
    c->expect_continue = true;
  }
}

int OnMessageBegin(http_parser* p) {
  Conn* c = ConnOf(p);
  c->url.clear();
  c->body.clear();
  c->field.clear();
  c->value.clear();
  c->in_value = false;
  c->expect_continue = false;
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
  if (c->value.size() < 64) c->value.append(at, len);
  return 0;
}

int OnMessageComplete(http_parser* p) {
  ConnOf(p)->message_complete = true;
  http_parser_pause(p, 1);  // one request at a time: pipelined ones wait in `in`
  return 0;
}

}  // namespace

namespace {

int OnHeadersComplete(http_parser* p) {
  Conn* c = ConnOf(p);
  if (c->in_value) EndHeader(c);
  if (p->content_length != ULLONG_MAX && p->content_length > c->max_body) {
    c->too_large = true;
    http_parser_pause(p, 1);
    return 0;
  }
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

}  // namespace

arrow::Result<std::unique_ptr<HttpLoop>> HttpLoop::Make(int listen_fd, Options options,
                                                        Handler handler) {
  std::unique_ptr<HttpLoop> loop(new HttpLoop(options, std::move(handler)));
  loop->listen_fd_ = listen_fd;
  loop->base_ = event_base_new();
  if (!loop->base_) return arrow::Status::OutOfMemory("libevent: event_base_new failed");
  HttpLoop* raw = loop.get();
  loop->accept_ev_ = event_new(loop->base_, listen_fd, EV_READ | EV_PERSIST, OnAccept, raw);
  loop->wake_ev_ = event_new(loop->base_, -1, EV_READ | EV_PERSIST, OnWake, raw);
  if (!loop->accept_ev_ || !loop->wake_ev_) return arrow::Status::OutOfMemory("libevent");
  event_add(loop->accept_ev_, nullptr);
  event_add(loop->wake_ev_, nullptr);
  // One shared timeout queue for every connection's idle timer: O(1) to re-arm.
  timeval idle{options.idle_timeout_s, 0};
  loop->idle_timeout_ = event_base_init_common_timeout(loop->base_, &idle);
  return loop;
}

HttpLoop::~HttpLoop() {
  while (!conns_.empty()) Close(conns_.begin()->second);
  if (accept_ev_) event_free(accept_ev_);
  if (wake_ev_) event_free(wake_ev_);
  if (listen_fd_ >= 0) close(listen_fd_);
  if (base_) event_base_free(base_);
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

void HttpLoop::StopAccepting() {
  if (accept_ev_) {
    event_free(accept_ev_);
    accept_ev_ = nullptr;
  }
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
  }
}

void HttpLoop::OnAccept(int, short, void* arg) { static_cast<HttpLoop*>(arg)->Accept(); }

void HttpLoop::Accept() {
  for (int i = 0; i < 64 && listen_fd_ >= 0; ++i) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a transient error (EMFILE...): try on the next wake-up
    int one = 1;
    // Replies go out in one write; without this, a multi-segment one waits for
    // the client's delayed ACK.
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
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
      continue;
    }
    event_add(c->read_ev, idle_timeout_);
    conns_.emplace(c->id, c);
  }
}

void HttpLoop::Close(Conn* c) {
  conns_.erase(c->id);
  event_free(c->read_ev);
  event_free(c->write_ev);
  close(c->fd);
  delete c;
}

void HttpLoop::OnReadable(int fd, short what, void* arg) {
  auto* c = static_cast<Conn*>(arg);
  HttpLoop* loop = c->loop;
  ++loop->events_;
  if (what & EV_TIMEOUT) {
    if (!c->awaiting && c->out.len == 0) loop->Close(c);
    return;
  }
  if (c->lingering) {  // discard what the client still sends until it closes
    char sink[16 << 10];
    ssize_t n = read(fd, sink, sizeof sink);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      loop->Close(c);
    }
    return;
  }
  c->in.Reserve(kReadChunk);
  ssize_t n = read(fd, c->in.data.get() + c->in.len, c->in.cap - c->in.len);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    loop->Close(c);  // the client went away; an outstanding answer is dropped
    return;
  }
  if (n < 0) return;
  c->in.len += static_cast<size_t>(n);
  loop->ProcessInput(c);
  loop->Flush(c);
}

void HttpLoop::OnWritable(int, short, void* arg) {
  auto* c = static_cast<Conn*>(arg);
  c->loop->Flush(c);
}

void HttpLoop::ProcessInput(Conn* c) {
  while (!c->awaiting && !c->closing && c->in_pos < c->in.len) {
    size_t avail = c->in.len - c->in_pos;
    size_t n = http_parser_execute(&c->parser, &kSettings, c->in.data.get() + c->in_pos, avail);
    c->in_pos += n;
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
    if (n < avail) break;  // cannot happen without an error or a pause; never spin
  }
  // Keep only what the parser has not seen (a request cut by the read).
  if (c->in_pos > 0 && (c->in_pos == c->in.len || c->in_pos >= kReadChunk)) {
    c->in.Consume(c->in_pos);
    c->in_pos = 0;
  }
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
  c->awaiting = true;
  c->keep_alive = http_should_keep_alive(&c->parser) != 0;
  c->head = req.method == HttpRequest::kHead;
  c->http10 = c->parser.http_major == 1 && c->parser.http_minor == 0;
  dispatching_ = c;
  handler_(*this, c->id, req);
  dispatching_ = nullptr;
  // Answered later: read nothing more from this client until then.
  if (c->awaiting) event_del(c->read_ev);
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
    ssize_t n = writev(c->fd, iov, 2);
    size_t done = n > 0 ? static_cast<size_t>(n) : 0;  // errors: Flush sees them again
    size_t head_left = done < c->out.len ? c->out.len - done : 0;
    c->out.Consume(c->out.len - head_left);
    c->out.Append(r.body.substr(done > iov[0].iov_len ? done - iov[0].iov_len : 0));
  } else if (!c->head) {
    c->out.Append(r.body);
  }
  if (!c->keep_alive) c->closing = true;
  if (inline_answer) return;  // the read path goes on parsing, then flushes once
  // A late answer: send it, then serve requests that arrived meanwhile.
  event_add(c->read_ev, idle_timeout_);
  ProcessInput(c);
  Flush(c);
}

void HttpLoop::Fail(Conn* c, int code, const std::string& message) {
  c->keep_alive = false;
  c->head = false;
  std::string body = JsonError(message);
  AppendStatus(c, code, "application/json", body.size(), false);
  c->out.Append(body);
  c->closing = true;
}

void HttpLoop::Flush(Conn* c) {
  while (c->out_pos < c->out.len) {
    ssize_t n = write(c->fd, c->out.data.get() + c->out_pos, c->out.len - c->out_pos);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!c->write_pending) {
          event_add(c->write_ev, nullptr);
          c->write_pending = true;
        }
        return;
      }
      Close(c);  // the client went away
      return;
    }
    c->out_pos += static_cast<size_t>(n);
  }
  c->out.len = 0;
  c->out_pos = 0;
  if (c->write_pending) {
    event_del(c->write_ev);
    c->write_pending = false;
  }
  if (c->closing && !c->awaiting && !c->lingering) {
    // Shut our side, then read until the client closes: closing with unread
    // input would reset the connection and could destroy the answer in flight.
    if (c->in_pos < c->in.len || c->too_large) {
      shutdown(c->fd, SHUT_WR);
      c->lingering = true;
      c->in.len = c->in_pos = 0;
    } else {
      Close(c);
    }
  }
}

}  // namespace stratalake::server
