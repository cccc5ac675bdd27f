// loadgen: an open-loop, fixed-rate HTTP/1.1 load generator (the part of wrk2 we need).
//
// A program that prints numbers, never a pass/fail test. bench/serving_bench.py drives it
// against `stratalake serve` and Feast's feature server; see docs/benchmarks.md.
//
//   loadgen --port N [--host 127.0.0.1] [--path /get-online-features]
//           (--body FILE | --bodies FILE) [-R RATE] [-c CONNECTIONS] [-t THREADS]
//           [-d SECONDS] [-w WARMUP_SECONDS] [--timeout SECONDS] [--rcvbuf BYTES]
//           [--label TEXT] [--quiet]
//
// It keeps C keep-alive connections open (nonblocking sockets, one epoll loop per thread)
// and POSTs JSON bodies: --body sends one file's content with every request, --bodies
// cycles through a file's lines (one JSON document per line, e.g. requests for random keys).
//
// The connections are opened one at a time, 1 ms apart, before the schedule starts (so
// that a pre-forked server whose workers share a listening socket, like gunicorn, spreads
// them over its workers), and are reopened when the server closes one.
//
// Open loop (-R RATE > 0). Request i has an *intended* send time, start + i / RATE: a fixed
// schedule that does not slow down when the server does. A request is sent at its intended
// time on the next idle connection, round robin (connections form a pool; HTTP pipelining
// is not used). When every connection is busy, due requests wait in the client and are
// sent as soon as a connection frees up. Latency is measured from the intended send time
// to the last byte of the response, so time spent waiting behind a slow response counts;
// this corrects the "coordinated omission" of closed-loop tools (wrk, ab), whose
// latencies hide a stalled server because a stalled server also stalls their request
// stream.
//
// Closed loop (-R 0, saturation): every connection sends its next request as soon as the
// previous response has arrived; latency is measured from the actual send time, and the
// achieved rate is the server's throughput at concurrency C.
//
// The first W seconds (-w) are a warm-up: those requests are sent but not measured. Then
// requests intended (open loop) or sent (closed loop) during the next D seconds (-d) are
// measured. After the schedule ends, responses still in flight are awaited up to
// --timeout seconds; a request without a response after --timeout seconds counts as a
// timeout (its connection is closed and reopened).
//
// --rcvbuf sets each connection's socket receive buffer (SO_RCVBUF, before connecting;
// the kernel doubles it and stops auto-tuning it). Without it the system default applies
// (net.ipv4.tcp_rmem, 128 KiB here): a reply larger than the receive window then arrives
// in several windows, and on Linux loopback a window update now and then waits for the
// delayed-ACK timer, stalling that reply by ~40-80 ms (docs/benchmarks.md measures both).
//
// Responses are framed by Content-Length (or chunked transfer encoding); any status
// other than 2xx counts in "non2xx" (and the first such response is quoted in the
// output). Connection errors (refused, reset, EOF with a request outstanding) count in
// "errors"; the connection is reopened and the request is not retried.
//
// Output: one line of JSON on stdout, e.g.
//   {"label":"...","mode":"open","rate":20000,"connections":32,"threads":1,
//    "warmup_s":2,"duration_s":10,"sent":..,"completed":..,"achieved_rps":19999.8,
//    "status_codes":{"200":..},"non2xx":0,"errors":{"connect":0,"read":0,"timeout":0},
//    "unsent":0,"late_1ms":0,"max_send_lag_ms":..,"mean_response_bytes":..,
//    "latency_ms":{"p50":..,"p90":..,"p99":..,"p999":..,"max":..,"mean":..}}
// where "completed" and the latencies are over the measured requests, "achieved_rps" is
// the responses received during the measured window divided by its length, "unsent" is
// how many scheduled requests the client never got to send (all connections busy until
// the end: the server could not keep up), "late_1ms" how many measured requests were
// sent more than 1 ms after their intended time and "max_send_lag_ms" the largest such
// delay (large values mean the server, or the load generator itself, fell behind).
// Percentiles are exact: every measured latency is kept and sorted. "latency_ms" is null
// when no measured request completed (the server fell behind during the warm-up).
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

constexpr int64_t kNsPerSec = 1'000'000'000;
constexpr int64_t kNsPerMs = 1'000'000;
constexpr size_t kReadChunk = 256 * 1024;  // bytes read per read() call
constexpr long kConnectGapNs = 1'000'000;  // between opening two connections

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * kNsPerSec + ts.tv_nsec;
}

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "loadgen: %s\n", message.c_str());
  std::exit(1);
}

// ---- options -------------------------------------------------------------------------

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string path = "/get-online-features";
  std::string body_file;    // --body: one request body
  std::string bodies_file;  // --bodies: one request body per line
  double rate = 0;          // requests per second over all connections; 0 = closed loop
  int connections = 16;
  int threads = 1;
  double duration_s = 10;
  double warmup_s = 2;
  double timeout_s = 10;
  int64_t rcvbuf = 0;  // SO_RCVBUF bytes; 0 = the system default
  std::string label;
  bool quiet = false;
};

[[noreturn]] void Usage(int code) {
  std::fprintf(code == 0 ? stdout : stderr,
               "usage: loadgen --port N [--host 127.0.0.1] [--path /get-online-features]\n"
               "               (--body FILE | --bodies FILE) [-R RATE] [-c CONNECTIONS]\n"
               "               [-t THREADS] [-d SECONDS] [-w WARMUP_SECONDS]\n"
               "               [--timeout SECONDS] [--rcvbuf BYTES] [--label TEXT] [--quiet]\n"
               "Open-loop HTTP/1.1 POST load at RATE requests/s (-R 0: closed loop, as fast\n"
               "as replies come back); latency from the intended send time. Prints one line\n"
               "of JSON. See the comment at the top of bench/loadgen.cc.\n");
  std::exit(code);
}

double ParseNumber(const char* flag, const char* text) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !std::isfinite(v) || v < 0) {
    Die(std::string("bad value for ") + flag + ": '" + text + "' (a number >= 0)");
  }
  return v;
}

Options ParseOptions(int argc, char** argv) {
  enum { kHost = 1000, kPath, kBody, kBodies, kTimeout, kRcvbuf, kLabel, kQuiet, kHelp };
  static const option kLong[] = {
      {"host", required_argument, nullptr, kHost},
      {"port", required_argument, nullptr, 'p'},
      {"path", required_argument, nullptr, kPath},
      {"body", required_argument, nullptr, kBody},
      {"bodies", required_argument, nullptr, kBodies},
      {"rate", required_argument, nullptr, 'R'},
      {"connections", required_argument, nullptr, 'c'},
      {"threads", required_argument, nullptr, 't'},
      {"duration", required_argument, nullptr, 'd'},
      {"warmup", required_argument, nullptr, 'w'},
      {"timeout", required_argument, nullptr, kTimeout},
      {"rcvbuf", required_argument, nullptr, kRcvbuf},
      {"label", required_argument, nullptr, kLabel},
      {"quiet", no_argument, nullptr, kQuiet},
      {"help", no_argument, nullptr, kHelp},
      {nullptr, 0, nullptr, 0},
  };
  Options o;
  int c;
  while ((c = getopt_long(argc, argv, "p:R:c:t:d:w:", kLong, nullptr)) != -1) {
    switch (c) {
      case kHost:
        o.host = optarg;
        break;
      case 'p':
        o.port = static_cast<int>(ParseNumber("--port", optarg));
        break;
      case kPath:
        o.path = optarg;
        break;
      case kBody:
        o.body_file = optarg;
        break;
      case kBodies:
        o.bodies_file = optarg;
        break;
      case 'R':
        o.rate = ParseNumber("-R", optarg);
        break;
      case 'c':
        o.connections = static_cast<int>(ParseNumber("-c", optarg));
        break;
      case 't':
        o.threads = static_cast<int>(ParseNumber("-t", optarg));
        break;
      case 'd':
        o.duration_s = ParseNumber("-d", optarg);
        break;
      case 'w':
        o.warmup_s = ParseNumber("-w", optarg);
        break;
      case kTimeout:
        o.timeout_s = ParseNumber("--timeout", optarg);
        break;
      case kRcvbuf:
        o.rcvbuf = static_cast<int64_t>(ParseNumber("--rcvbuf", optarg));
        if (o.rcvbuf > (int64_t{1} << 30)) Die("--rcvbuf must be at most 1 GiB");
        break;
      case kLabel:
        o.label = optarg;
        break;
      case kQuiet:
        o.quiet = true;
        break;
      case kHelp:
        Usage(0);
      default:
        Usage(2);
    }
  }
  if (optind != argc) Usage(2);
  if (o.port <= 0 || o.port > 65535) Die("--port is required (1-65535)");
  if (o.body_file.empty() == o.bodies_file.empty()) Die("give exactly one of --body, --bodies");
  if (o.threads < 1) Die("-t must be at least 1");
  if (o.connections < o.threads) Die("-c must be at least -t (every thread needs one)");
  if (o.duration_s <= 0) Die("-d must be > 0");
  if (o.timeout_s <= 0) Die("--timeout must be > 0");
  return o;
}

// The complete request messages (request line, headers and body), ready to write.
std::vector<std::string> BuildRequests(const Options& o) {
  std::vector<std::string> bodies;
  std::ifstream in(o.body_file.empty() ? o.bodies_file : o.body_file, std::ios::binary);
  if (!in) Die("cannot read " + (o.body_file.empty() ? o.bodies_file : o.body_file));
  if (!o.body_file.empty()) {
    std::stringstream ss;
    ss << in.rdbuf();
    bodies.push_back(ss.str());
  } else {
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) bodies.push_back(line);
    }
    if (bodies.empty()) Die(o.bodies_file + " has no bodies (one JSON document per line)");
  }
  std::vector<std::string> requests;
  requests.reserve(bodies.size());
  for (const std::string& body : bodies) {
    requests.push_back(
        "POST " + o.path + " HTTP/1.1\r\nHost: " + o.host + ":" + std::to_string(o.port) +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body);
  }
  return requests;
}

// ---- HTTP response framing -----------------------------------------------------------

// What is known about the response being received on a connection. The header block is
// parsed once, when its end has arrived; the body is then only counted (Content-Length)
// or walked chunk by chunk (chunked encoding).
struct ResponseParser {
  size_t header_len = 0;  // bytes up to and including the blank line; 0 = not yet
  int status = 0;
  int64_t content_length = -1;  // -1: not given
  bool chunked = false;
  bool close = false;    // "Connection: close": the server will close after it
  size_t chunk_pos = 0;  // chunked: offset of the next chunk-size line

  void Reset() { *this = ResponseParser(); }
};

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

enum class Parse { kNeedMore, kComplete, kBad };

// Looks for one complete response at the start of `buf`. On kComplete, *total is its
// length in bytes (headers and body).
Parse ParseResponse(const std::string& buf, ResponseParser& p, size_t* total) {
  if (p.header_len == 0) {
    size_t end = buf.find("\r\n\r\n");
    if (end == std::string::npos) return buf.size() > 64 * 1024 ? Parse::kBad : Parse::kNeedMore;
    p.header_len = end + 4;
    std::string_view head(buf.data(), end);
    // Status line: HTTP/1.1 200 OK
    size_t eol = head.find("\r\n");
    std::string_view status_line = head.substr(0, eol);
    if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/") return Parse::kBad;
    size_t sp = status_line.find(' ');
    if (sp == std::string_view::npos) return Parse::kBad;
    p.status = std::atoi(std::string(status_line.substr(sp + 1, 3)).c_str());
    if (p.status < 100 || p.status > 999) return Parse::kBad;
    // Header lines: Name: value
    size_t pos = eol == std::string_view::npos ? head.size() : eol + 2;
    while (pos < head.size()) {
      size_t next = head.find("\r\n", pos);
      if (next == std::string_view::npos) next = head.size();
      std::string_view line = head.substr(pos, next - pos);
      pos = next + 2;
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      std::string_view name = Trim(line.substr(0, colon));
      std::string_view value = Trim(line.substr(colon + 1));
      if (EqualsIgnoreCase(name, "content-length")) {
        p.content_length = std::strtoll(std::string(value).c_str(), nullptr, 10);
      } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
        p.chunked = value.find("chunked") != std::string_view::npos;
      } else if (EqualsIgnoreCase(name, "connection")) {
        p.close = EqualsIgnoreCase(value, "close");
      }
    }
    p.chunk_pos = p.header_len;
    // 1xx, 204 and 304 have no body.
    if ((p.status >= 100 && p.status < 200) || p.status == 204 || p.status == 304) {
      p.content_length = 0;
      p.chunked = false;
    }
    if (!p.chunked && p.content_length < 0) return Parse::kBad;  // we need framing
  }
  if (!p.chunked) {
    size_t need = p.header_len + static_cast<size_t>(p.content_length);
    if (buf.size() < need) return Parse::kNeedMore;
    *total = need;
    return Parse::kComplete;
  }
  // Chunked: size-line CRLF data CRLF ... 0 CRLF [trailers] CRLF
  while (true) {
    size_t eol = buf.find("\r\n", p.chunk_pos);
    if (eol == std::string::npos) return Parse::kNeedMore;
    char* end = nullptr;
    unsigned long long size = std::strtoull(buf.c_str() + p.chunk_pos, &end, 16);
    if (end == buf.c_str() + p.chunk_pos) return Parse::kBad;
    if (size == 0) {
      // Last chunk: skip optional trailer lines up to the empty line.
      size_t pos = eol + 2;
      while (true) {
        size_t line_end = buf.find("\r\n", pos);
        if (line_end == std::string::npos) return Parse::kNeedMore;
        if (line_end == pos) {
          *total = pos + 2;
          return Parse::kComplete;
        }
        pos = line_end + 2;
      }
    }
    size_t next = eol + 2 + static_cast<size_t>(size) + 2;
    if (buf.size() < next) return Parse::kNeedMore;
    p.chunk_pos = next;
  }
}

// ---- statistics ----------------------------------------------------------------------

struct Stats {
  std::vector<int64_t> latencies_ns;     // one per measured, completed request
  std::map<int, uint64_t> status_codes;  // measured responses by status
  uint64_t sent = 0;                     // measured requests written
  uint64_t completed = 0;                // measured requests answered
  uint64_t non2xx = 0;
  uint64_t in_window = 0;  // responses (measured or not) received inside the window
  uint64_t connect_errors = 0, read_errors = 0, timeouts = 0;
  uint64_t unsent = 0;    // scheduled (open loop) but never sent
  uint64_t late_1ms = 0;  // measured requests sent > 1 ms after their intended time
  int64_t max_send_lag_ns = 0;
  uint64_t response_bytes = 0;  // over measured responses
  std::string first_non2xx;     // the first non-2xx response, abridged

  void Merge(const Stats& o) {
    latencies_ns.insert(latencies_ns.end(), o.latencies_ns.begin(), o.latencies_ns.end());
    for (const auto& [code, n] : o.status_codes) status_codes[code] += n;
    sent += o.sent;
    completed += o.completed;
    non2xx += o.non2xx;
    in_window += o.in_window;
    connect_errors += o.connect_errors;
    read_errors += o.read_errors;
    timeouts += o.timeouts;
    unsent += o.unsent;
    late_1ms += o.late_1ms;
    max_send_lag_ns = std::max(max_send_lag_ns, o.max_send_lag_ns);
    response_bytes += o.response_bytes;
    if (first_non2xx.empty()) first_non2xx = o.first_non2xx;
  }
};

// ---- one event loop ------------------------------------------------------------------

// A keep-alive connection and the one request it may have outstanding.
struct Conn {
  enum State { kClosed, kConnecting, kIdle, kBusy };
  State state = kClosed;
  int fd = -1;
  bool want_write = false;  // EPOLLOUT registered
  const std::string* request = nullptr;
  size_t written = 0;           // bytes of *request written so far
  int64_t intended_ns = 0;      // when the request should have been sent
  int64_t sent_ns = 0;          // when its first byte was written
  bool measured = false;        // inside the measured window
  int64_t reconnect_at_ns = 0;  // kClosed: when to try again
  int64_t connect_ns = 0;       // kConnecting: when the connect started
  std::string in;               // received bytes not yet consumed
  ResponseParser parser;
};

// One thread's share of the load: its own connections, epoll set, schedule and stats.
class Worker {
 public:
  Worker(const Options& o, const sockaddr_in& addr, const std::vector<std::string>& requests,
         int index, int connections, double rate)
      : o_(o), addr_(addr), requests_(requests), index_(index), conns_(connections), rate_(rate) {}

  Stats& stats() { return stats_; }

  // Runs the whole test: warm-up, measured window, drain. `start_ns` is shared by all
  // threads so that their windows line up.
  void Run(int64_t start_ns) {
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // wake timers within ~1 us, not the 50 us default
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    timer_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (epoll_ < 0 || timer_ < 0) Die(std::string("epoll/timerfd: ") + std::strerror(errno));
    epoll_event tev{};
    tev.events = EPOLLIN;
    tev.data.u64 = kTimerTag;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, timer_, &tev);

    start_ns_ = start_ns;
    window_start_ns_ = start_ns + static_cast<int64_t>(o_.warmup_s * kNsPerSec);
    stop_ns_ = window_start_ns_ + static_cast<int64_t>(o_.duration_s * kNsPerSec);
    const int64_t timeout_ns = static_cast<int64_t>(o_.timeout_s * kNsPerSec);
    if (rate_ > 0) {
      // Threads interleave their schedules: thread i starts i/T of an interval late.
      phase_ns_ = static_cast<int64_t>(kNsPerSec / rate_ * index_ / o_.threads);
      // The first request due at or after the stop time is not sent.
      end_seq_ =
          static_cast<int64_t>(std::ceil((stop_ns_ - start_ns_ - phase_ns_) * rate_ / kNsPerSec));
    }
    std::vector<epoll_event> events(conns_.size() + 1);
    // Open the connections one at a time, kConnectGapNs apart. A pre-forked server whose
    // workers share one listening socket (gunicorn) would otherwise see them all arrive
    // at once, and the first worker to wake would accept every one of them.
    for (size_t i = 0; i < conns_.size(); ++i) {
      Connect(i);
      int64_t deadline = NowNs() + kNsPerSec;
      while (conns_[i].state == Conn::kConnecting && NowNs() < deadline) {
        int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 10);
        for (int e = 0; e < n; ++e) {
          if (events[e].data.u64 != kTimerTag) HandleEvent(events[e].data.u64, events[e].events);
        }
      }
      timespec gap{0, kConnectGapNs};
      nanosleep(&gap, nullptr);
    }

    int64_t last_timeout_scan = 0;
    while (true) {
      int64_t now = NowNs();
      if (now >= stop_ns_) {
        // Schedule over: wait for what is in flight, up to the timeout.
        if (BusyCount() == 0 || now >= stop_ns_ + timeout_ns) break;
      }
      Dispatch(now);
      ArmTimer(now);
      int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 5);
      if (n < 0 && errno != EINTR) Die(std::string("epoll_wait: ") + std::strerror(errno));
      for (int i = 0; i < n; ++i) {
        if (events[i].data.u64 == kTimerTag) {
          uint64_t expirations;
          ssize_t r = read(timer_, &expirations, sizeof expirations);
          (void)r;  // only clears the readiness
          continue;
        }
        HandleEvent(events[i].data.u64, events[i].events);
      }
      now = NowNs();
      if (now - last_timeout_scan > 5 * kNsPerMs) {
        last_timeout_scan = now;
        ScanTimeouts(now, timeout_ns);
      }
    }
    // Requests still outstanding after the drain period time out.
    for (size_t i = 0; i < conns_.size(); ++i) {
      if (conns_[i].state == Conn::kBusy) ++stats_.timeouts;
      Close(i);
    }
    if (rate_ > 0 && next_seq_ < end_seq_) {
      stats_.unsent = static_cast<uint64_t>(end_seq_ - next_seq_);
    }
    close(timer_);
    close(epoll_);
  }

 private:
  static constexpr uint64_t kTimerTag = ~uint64_t{0};

  int64_t Intended(int64_t seq) const {
    return start_ns_ + phase_ns_ +
           static_cast<int64_t>(static_cast<double>(seq) * kNsPerSec / rate_);
  }

  size_t BusyCount() const {
    size_t n = 0;
    for (const Conn& c : conns_) n += c.state == Conn::kBusy;
    return n;
  }

  void SetEvents(size_t i, bool want_write) {
    Conn& c = conns_[i];
    if (c.want_write == want_write) return;
    epoll_event ev{};
    ev.events = EPOLLIN | (want_write ? EPOLLOUT : 0u);
    ev.data.u64 = i;
    epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
    c.want_write = want_write;
  }

  // Starts a nonblocking connect; the connection becomes idle when it completes.
  void Connect(size_t i) {
    Conn& c = conns_[i];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) Die(std::string("socket: ") + std::strerror(errno));
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (o_.rcvbuf > 0) {
      int bytes = static_cast<int>(o_.rcvbuf);
      if (setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) != 0) {
        Die(std::string("SO_RCVBUF: ") + std::strerror(errno));
      }
    }
    c.in.clear();
    c.parser.Reset();
    c.request = nullptr;
    int r = connect(c.fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_);
    if (r < 0 && errno != EINPROGRESS) {
      ++stats_.connect_errors;
      close(c.fd);
      c.fd = -1;
      c.state = Conn::kClosed;
      c.reconnect_at_ns = NowNs() + 100 * kNsPerMs;
      return;
    }
    c.state = r == 0 ? Conn::kIdle : Conn::kConnecting;
    c.connect_ns = NowNs();
    epoll_event ev{};
    ev.events = EPOLLIN | (r == 0 ? 0u : EPOLLOUT);
    ev.data.u64 = i;
    c.want_write = r != 0;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev);
  }

  // Closes the socket; the connection is reopened by Dispatch when it is next needed.
  void Close(size_t i, int64_t retry_after_ns = 0) {
    Conn& c = conns_[i];
    if (c.fd >= 0) close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
    c.state = Conn::kClosed;
    c.want_write = false;
    c.request = nullptr;
    c.reconnect_at_ns = NowNs() + retry_after_ns;
  }

  // Sends every due request on an idle connection (open loop), or one request on every
  // idle connection (closed loop). Reopens closed connections whose back-off is over.
  void Dispatch(int64_t now) {
    for (size_t i = 0; i < conns_.size(); ++i) {
      Conn& c = conns_[i];
      if (c.state == Conn::kClosed && now >= c.reconnect_at_ns && now < stop_ns_) Connect(i);
    }
    if (now >= stop_ns_) return;
    // Round robin over the idle connections, so that every connection (and every server
    // worker or event loop behind them) gets its share even at low rates.
    for (size_t k = 0; k < conns_.size(); ++k) {
      size_t i = (next_conn_ + k) % conns_.size();
      if (conns_[i].state != Conn::kIdle) continue;
      int64_t intended;
      if (rate_ > 0) {
        if (next_seq_ >= end_seq_) return;
        intended = Intended(next_seq_);
        if (intended > now) return;
        ++next_seq_;
      } else {
        intended = now;
      }
      Send(i, intended, now);
      next_conn_ = i + 1;
      now = NowNs();
    }
  }

  void Send(size_t i, int64_t intended, int64_t now) {
    Conn& c = conns_[i];
    c.request = &requests_[request_index_];
    request_index_ = (request_index_ + 1) % requests_.size();
    c.written = 0;
    c.intended_ns = intended;
    c.sent_ns = now;
    c.measured = intended >= window_start_ns_ && intended < stop_ns_;
    c.state = Conn::kBusy;
    c.parser.Reset();
    if (c.measured) {
      ++stats_.sent;
      int64_t lag = now - intended;
      if (lag > kNsPerMs) ++stats_.late_1ms;
      stats_.max_send_lag_ns = std::max(stats_.max_send_lag_ns, lag);
    }
    Write(i);
  }

  void Write(size_t i) {
    Conn& c = conns_[i];
    while (c.written < c.request->size()) {
      ssize_t n =
          send(c.fd, c.request->data() + c.written, c.request->size() - c.written, MSG_NOSIGNAL);
      if (n > 0) {
        c.written += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        SetEvents(i, true);
        return;
      } else {
        ++stats_.read_errors;
        Close(i, 10 * kNsPerMs);
        return;
      }
    }
    SetEvents(i, false);
  }

  // Arms the timer for the next intended send time, if one is ahead (open loop only).
  void ArmTimer(int64_t now) {
    int64_t at = 0;
    if (rate_ > 0 && next_seq_ < end_seq_) {
      int64_t due = Intended(next_seq_);
      if (due > now) at = due;  // due now: sent when a connection frees up, no timer
    }
    if (at == armed_ns_) return;
    itimerspec its{};
    its.it_value.tv_sec = at / kNsPerSec;
    its.it_value.tv_nsec = at % kNsPerSec;
    timerfd_settime(timer_, TFD_TIMER_ABSTIME, &its, nullptr);  // at == 0 disarms
    armed_ns_ = at;
  }

  void HandleEvent(uint64_t i, uint32_t events) {
    Conn& c = conns_[i];
    if (c.state == Conn::kConnecting) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
        ++stats_.connect_errors;
        Close(i, 100 * kNsPerMs);
        return;
      }
      c.state = Conn::kIdle;
      SetEvents(i, false);
      return;
    }
    if ((events & EPOLLOUT) && c.state == Conn::kBusy) {
      Write(i);
      if (c.state != Conn::kBusy) return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) Read(i);
  }

  void Read(size_t i) {
    Conn& c = conns_[i];
    while (true) {
      ssize_t n = recv(c.fd, scratch_.data(), scratch_.size(), 0);
      if (n > 0) {
        c.in.append(scratch_.data(), static_cast<size_t>(n));
        if (static_cast<size_t>(n) < kReadChunk) break;  // drained for now
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      // EOF or error. Harmless on an idle connection (keep-alive timeout).
      if (c.state == Conn::kBusy) ++stats_.read_errors;
      Close(i, c.state == Conn::kBusy ? 10 * kNsPerMs : 0);
      return;
    }
    if (c.state != Conn::kBusy) {
      c.in.clear();  // unsolicited bytes
      return;
    }
    size_t total = 0;
    Parse r = ParseResponse(c.in, c.parser, &total);
    if (r == Parse::kNeedMore) return;
    if (r == Parse::kBad) {
      ++stats_.read_errors;
      if (stats_.first_non2xx.empty()) {
        stats_.first_non2xx = "unparseable response: " + c.in.substr(0, 200);
      }
      Close(i, 10 * kNsPerMs);
      return;
    }
    Complete(i, total);
  }

  void Complete(size_t i, size_t total) {
    Conn& c = conns_[i];
    int64_t now = NowNs();
    int status = c.parser.status;
    if (now >= window_start_ns_ && now < stop_ns_) ++stats_.in_window;
    if (c.measured) {
      ++stats_.completed;
      ++stats_.status_codes[status];
      stats_.response_bytes += total;
      stats_.latencies_ns.push_back(now - c.intended_ns);
      if (status < 200 || status > 299) {
        ++stats_.non2xx;
        if (stats_.first_non2xx.empty()) {
          stats_.first_non2xx =
              c.in.substr(0, c.in.find("\r\n")) + " " + c.in.substr(c.parser.header_len, 300);
        }
      }
    }
    bool close_after = c.parser.close;
    c.in.erase(0, total);
    c.parser.Reset();
    c.request = nullptr;
    c.state = Conn::kIdle;
    if (close_after) Close(i);
    // Closed loop: the next request goes out at once (open loop: when due).
    if (rate_ <= 0 && c.state == Conn::kIdle && now < stop_ns_) Send(i, now, now);
  }

  void ScanTimeouts(int64_t now, int64_t timeout_ns) {
    for (size_t i = 0; i < conns_.size(); ++i) {
      Conn& c = conns_[i];
      if (c.state == Conn::kBusy && now - c.sent_ns > timeout_ns) {
        ++stats_.timeouts;
        Close(i);
      } else if (c.state == Conn::kConnecting && now - c.connect_ns > timeout_ns) {
        ++stats_.connect_errors;
        Close(i, 100 * kNsPerMs);
      }
    }
  }

  const Options& o_;
  const sockaddr_in addr_;
  const std::vector<std::string>& requests_;
  const int index_;
  std::vector<Conn> conns_;
  const double rate_;  // this thread's requests per second; 0 = closed loop
  Stats stats_;
  int epoll_ = -1, timer_ = -1;
  int64_t start_ns_ = 0, window_start_ns_ = 0, stop_ns_ = 0, phase_ns_ = 0;
  int64_t next_seq_ = 0, end_seq_ = 0;  // open loop: next request to send, first not sent
  int64_t armed_ns_ = 0;
  size_t request_index_ = 0;
  size_t next_conn_ = 0;  // where Dispatch's round robin starts
  std::vector<char> scratch_ = std::vector<char>(kReadChunk);  // recv() buffer
};

// ---- output --------------------------------------------------------------------------

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    unsigned char u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string Ms(double ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", ns / kNsPerMs);
  return buf;
}

// The q-quantile of sorted samples (nearest rank: the smallest value with at least a
// fraction q of the samples at or below it).
double Quantile(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return static_cast<double>(sorted[rank - 1]);
}

std::string Report(const Options& o, Stats& s) {
  std::sort(s.latencies_ns.begin(), s.latencies_ns.end());
  double mean = 0;
  for (int64_t v : s.latencies_ns) mean += static_cast<double>(v);
  if (!s.latencies_ns.empty()) mean /= static_cast<double>(s.latencies_ns.size());
  std::ostringstream j;
  char num[64];
  j << "{\"label\":" << JsonString(o.label) << ",\"mode\":\"" << (o.rate > 0 ? "open" : "closed")
    << "\",\"rate\":" << o.rate << ",\"connections\":" << o.connections
    << ",\"threads\":" << o.threads << ",\"rcvbuf\":" << o.rcvbuf << ",\"warmup_s\":" << o.warmup_s
    << ",\"duration_s\":" << o.duration_s << ",\"sent\":" << s.sent
    << ",\"completed\":" << s.completed;
  std::snprintf(num, sizeof num, "%.1f", static_cast<double>(s.in_window) / o.duration_s);
  j << ",\"achieved_rps\":" << num << ",\"status_codes\":{";
  bool first = true;
  for (const auto& [code, n] : s.status_codes) {
    j << (first ? "" : ",") << "\"" << code << "\":" << n;
    first = false;
  }
  j << "},\"non2xx\":" << s.non2xx << ",\"errors\":{\"connect\":" << s.connect_errors
    << ",\"read\":" << s.read_errors << ",\"timeout\":" << s.timeouts << "},\"unsent\":" << s.unsent
    << ",\"late_1ms\":" << s.late_1ms
    << ",\"max_send_lag_ms\":" << Ms(static_cast<double>(s.max_send_lag_ns))
    << ",\"mean_response_bytes\":" << (s.completed ? s.response_bytes / s.completed : 0)
    << ",\"latency_ms\":";
  if (s.latencies_ns.empty()) {
    j << "null";  // nothing measured completed
  } else {
    j << "{\"p50\":" << Ms(Quantile(s.latencies_ns, 0.50))
      << ",\"p90\":" << Ms(Quantile(s.latencies_ns, 0.90))
      << ",\"p99\":" << Ms(Quantile(s.latencies_ns, 0.99))
      << ",\"p999\":" << Ms(Quantile(s.latencies_ns, 0.999))
      << ",\"max\":" << Ms(static_cast<double>(s.latencies_ns.back())) << ",\"mean\":" << Ms(mean)
      << "}";
  }
  if (!s.first_non2xx.empty()) j << ",\"first_non2xx\":" << JsonString(s.first_non2xx);
  j << "}";
  return j.str();
}

}  // namespace

int main(int argc, char** argv) {
  Options o = ParseOptions(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> requests = BuildRequests(o);

  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(o.host.c_str(), nullptr, &hints, &res); rc != 0 || res == nullptr) {
    Die("cannot resolve " + o.host + ": " + gai_strerror(rc));
  }
  sockaddr_in addr = *reinterpret_cast<sockaddr_in*>(res->ai_addr);
  addr.sin_port = htons(static_cast<uint16_t>(o.port));
  freeaddrinfo(res);

  // Split connections and rate evenly over the threads.
  std::vector<Worker> workers;
  workers.reserve(static_cast<size_t>(o.threads));
  for (int t = 0; t < o.threads; ++t) {
    int conns = o.connections / o.threads + (t < o.connections % o.threads ? 1 : 0);
    workers.emplace_back(o, addr, requests, t, conns, o.rate / o.threads);
  }
  // Start a little in the future, once every thread has opened its connections (one per
  // kConnectGapNs, see Worker::Run).
  int64_t start = NowNs() + 50 * kNsPerMs + (o.connections / o.threads + 1) * 2 * kConnectGapNs;
  std::vector<std::thread> threads;
  for (Worker& w : workers) threads.emplace_back([&w, start] { w.Run(start); });
  for (std::thread& t : threads) t.join();

  Stats total;
  for (Worker& w : workers) total.Merge(w.stats());
  std::string json = Report(o, total);
  std::printf("%s\n", json.c_str());
  if (!o.quiet) {
    std::fprintf(
        stderr,
        "loadgen %s: %s %.0f req/s x %.0f s on %d connections: achieved %.1f req/s, "
        "p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms, non2xx %llu, "
        "errors %llu, unsent %llu\n",
        o.label.c_str(), o.rate > 0 ? "open loop" : "closed loop", o.rate, o.duration_s,
        o.connections, static_cast<double>(total.in_window) / o.duration_s,
        Quantile(total.latencies_ns, 0.5) / kNsPerMs, Quantile(total.latencies_ns, 0.99) / kNsPerMs,
        Quantile(total.latencies_ns, 0.999) / kNsPerMs,
        total.latencies_ns.empty() ? 0.0
                                   : static_cast<double>(total.latencies_ns.back()) / kNsPerMs,
        static_cast<unsigned long long>(total.non2xx),
        static_cast<unsigned long long>(total.connect_errors + total.read_errors + total.timeouts),
        static_cast<unsigned long long>(total.unsent));
  }
  return 0;
}
