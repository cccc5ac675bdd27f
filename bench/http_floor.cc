// http_floor: the latency floor of an HTTP server on this machine — a server that
// does nothing but answer.
//
// A program that prints numbers, never a pass/fail test. It answers every HTTP/1.1
// request on its keep-alive connections with the same canned 200 reply of --reply-bytes
// (a JSON body), using the cheapest loop there is: nonblocking sockets, one epoll loop per
// thread (SO_REUSEPORT listeners), one read and one write per request. Run bench/loadgen
// against it at a fixed rate, as against `stratalake serve`, and the latencies it gets
// are what loopback, the scheduler and the machine leave to any server at that rate:
// if this server cannot keep a p99 under 1 ms, no feature server on the machine can.
// docs/benchmarks.md ("The machine's floor") has the figures.
//
//   http_floor --port N [--threads T] [--reply-bytes B] [--seconds S]
//
// It stops after S seconds (default 60) or on SIGINT/SIGTERM. Requests are framed by
// Content-Length; pipelined requests are answered in order.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop = true; }

struct Conn {
  std::string in;
};

// Bytes of the first complete request in `in` (headers and Content-Length body), or 0.
size_t RequestSize(const std::string& in) {
  const size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  size_t body = 0;
  for (size_t pos = 0; pos < end;) {
    size_t eol = in.find("\r\n", pos);
    if (eol == std::string::npos || eol > end) eol = end;
    if (eol - pos > 15 && strncasecmp(in.data() + pos, "content-length:", 15) == 0) {
      body = std::strtoull(in.c_str() + pos + 15, nullptr, 10);
    }
    pos = eol + 2;
  }
  return in.size() >= end + 4 + body ? end + 4 + body : 0;
}

int Listen(int port) {
  // Loopback only; every loop binds the same port (SO_REUSEPORT spreads connections).
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  for (int option : {SO_REUSEADDR, SO_REUSEPORT}) {
    const int on = 1;
    setsockopt(fd, SOL_SOCKET, option, &on, sizeof on);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 1024) != 0) {
    std::perror("http_floor: bind/listen");
    std::exit(1);
  }
  return fd;
}

void Loop(int port, const std::string& reply, int spin_us) {
  const int lfd = Listen(port);
  const int ep = epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  std::unordered_map<int, Conn> conns;
  std::vector<epoll_event> events(256);
  std::vector<char> buf(1 << 16);
  auto last = std::chrono::steady_clock::now();
  while (!g_stop) {
    // With --spin-us, poll without sleeping until that long after the last event.
    const bool spin =
        spin_us > 0 && std::chrono::steady_clock::now() - last < std::chrono::microseconds(spin_us);
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), spin ? 0 : 100);
    if (n > 0 && spin_us > 0) last = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == lfd) {
        int c;
        while ((c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK)) >= 0) {
          int one = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event cev{};
          cev.events = EPOLLIN;
          cev.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
          conns[c];
        }
        continue;
      }
      Conn& conn = conns[fd];
      const ssize_t r = read(fd, buf.data(), buf.size());
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN) continue;
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
        close(fd);
        conns.erase(fd);
        continue;
      }
      conn.in.append(buf.data(), static_cast<size_t>(r));
      std::string out;
      for (size_t size; (size = RequestSize(conn.in)) > 0;) {
        conn.in.erase(0, size);
        out += reply;
      }
      // Replies this small fit the socket buffer: one write (a short one closes).
      if (!out.empty() && write(fd, out.data(), out.size()) != static_cast<ssize_t>(out.size())) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
        close(fd);
        conns.erase(fd);
      }
    }
  }
  for (auto& [fd, c] : conns) close(fd);
  close(lfd);
  close(ep);
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, threads = 1, seconds = 60, spin_us = 0;
  size_t reply_bytes = 3000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--port") {
      port = std::atoi(argv[i + 1]);
    } else if (a == "--threads") {
      threads = std::atoi(argv[i + 1]);
    } else if (a == "--reply-bytes") {
      reply_bytes = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (a == "--spin-us") {
      spin_us = std::atoi(argv[i + 1]);
    } else if (a == "--seconds") {
      seconds = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(stderr, "http_floor: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (port <= 0 || threads <= 0 || reply_bytes < 2) {
    std::fprintf(stderr,
                 "usage: http_floor --port N [--threads T] [--reply-bytes B] [--seconds S]\n");
    return 2;
  }
  std::string body = "{" + std::string(reply_bytes - 2, ' ') + "}";
  const std::string reply =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  signal(SIGPIPE, SIG_IGN);
  std::vector<std::thread> loops;
  for (int t = 0; t < threads; ++t) loops.emplace_back(Loop, port, reply, spin_us);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!g_stop && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  g_stop = true;
  for (auto& t : loops) t.join();
  return 0;
}
