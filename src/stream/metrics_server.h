// A minimal HTTP/1.0 responder for the stream's Prometheus metrics: one thread,
// blocking sockets on 127.0.0.1, GET /metrics answers the latest text, anything
// else 404. Enough for a scraper or curl; not a general server.
//
// Thread-safety: Publish may be called from any thread.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>

#include <arrow/result.h>

namespace stratalake::stream {

class MetricsServer {
 public:
  /// Listens on 127.0.0.1:`port` (0 = a free port) and starts serving.
  static arrow::Result<std::unique_ptr<MetricsServer>> Start(int port);
  /// Stops serving and joins the thread.
  ~MetricsServer();
  int port() const { return port_; }
  /// The text GET /metrics answers from now on.
  void Publish(std::string text);

 private:
  MetricsServer(int fd, int port);
  void Serve();

  int fd_;
  int port_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::string text_;
  std::thread thread_;
};

}  // namespace stratalake::stream
