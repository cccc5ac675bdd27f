#include "server/http_loop.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include <gtest/gtest.h>

namespace stratalake::server {
namespace {

TEST(HttpLoopContentType, JsonWithAnyCaseAndParameters) {
  EXPECT_TRUE(IsJsonContentType("application/json"));
  EXPECT_TRUE(IsJsonContentType("Application/JSON"));
  EXPECT_TRUE(IsJsonContentType(" application/json; charset=utf-8"));
  EXPECT_TRUE(IsJsonContentType("application/json ;charset=UTF-8"));
  EXPECT_FALSE(IsJsonContentType(""));
  EXPECT_FALSE(IsJsonContentType("text/plain"));
  EXPECT_FALSE(IsJsonContentType("application/jsonp"));
  EXPECT_FALSE(IsJsonContentType("application/json-patch+json"));
  EXPECT_FALSE(IsJsonContentType("application/json x"));
  EXPECT_FALSE(IsJsonContentType("application/x-www-form-urlencoded"));
}

// An HttpLoop serving one end of a socketpair; the test is the client on the
// other end, and time is a FakeClock.
class HttpLoopTest : public ::testing::Test {
 protected:
  void Start(HttpLoop::Options options, size_t reply_bytes, int server_sndbuf = 0) {
    clock_ = std::make_shared<FakeClock>(1000000);
    options.clock = clock_;
    reply_.assign(reply_bytes, 'x');
    auto loop = HttpLoop::Make(
        -1, options, [this](HttpLoop& loop, HttpLoop::RequestId id, const HttpRequest& req) {
          ++handled_;
          HttpResponse r;
          r.content_type = "text/plain";
          r.body = reply_;
          loop.Respond(id, r);
        });
    ASSERT_TRUE(loop.ok()) << loop.status().ToString();
    loop_ = std::move(*loop);
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    if (server_sndbuf > 0) {
      setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &server_sndbuf, sizeof server_sndbuf);
    }
    loop_->AddConnection(fds[0]);
    client_ = fds[1];
  }
  void TearDown() override {
    loop_.reset();
    if (client_ >= 0) close(client_);
  }

  void Send(const std::string& bytes) {
    ASSERT_EQ(write(client_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    loop_->Poll();
  }
  /// What the server sent so far (polling the loop in between); sets eof_.
  std::string Receive() {
    std::string got;
    for (int i = 0; i < 10000; ++i) {
      loop_->Poll();
      char buf[65536];
      ssize_t n = read(client_, buf, sizeof buf);
      if (n > 0) {
        got.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) eof_ = true;
      if (n == 0 || errno != EAGAIN) break;
      if (i > 10) break;  // nothing more after some idle polls
    }
    return got;
  }
  void Advance(int seconds) {
    clock_->Advance(seconds * int64_t{1000});
    loop_->CheckDeadlines();
  }

  std::shared_ptr<FakeClock> clock_;
  std::unique_ptr<HttpLoop> loop_;
  int client_ = -1;
  std::string reply_;
  int handled_ = 0;
  bool eof_ = false;
};

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string BodyOf(const std::string& response) {
  return response.substr(response.find("\r\n\r\n") + 4);
}

TEST_F(HttpLoopTest, AHeadThatTricklesIsAnswered408AtItsDeadline) {
  HttpLoop::Options o;
  o.header_timeout_s = 10;
  Start(o, 2);
  Send("GET /health HTTP/1.1\r\nX-Slow: a");
  for (int i = 0; i < 9; ++i) {  // a byte a second does not move the deadline
    Advance(1);
    Send("a");
  }
  EXPECT_EQ(Receive(), "");
  Advance(2);  // 11 s after the first byte (the deadline is checked once a second)
  std::string got = Receive();
  EXPECT_EQ(got.substr(0, got.find("\r\n")), "HTTP/1.1 408 Request Timeout");
  EXPECT_NE(got.find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_EQ(BodyOf(got),
            "{\"error\":\"the request's head (request line and headers) did not arrive within 10 s "
            "of its first byte (the server's --header-timeout-s)\"}");
  EXPECT_EQ(handled_, 0);
  // Lingering: what the client still sends is dropped until it closes (or the
  // linger deadline passes).
  Send("more");
  EXPECT_EQ(loop_->connections(), 1u);
  Advance(6);
  EXPECT_EQ(loop_->connections(), 0u);
}

TEST_F(HttpLoopTest, AnIdleConnectionIsClosedButAServedOneIsNot) {
  HttpLoop::Options o;
  o.idle_timeout_s = 5;
  Start(o, 2);
  Advance(4);
  Send("GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(Count(Receive(), "HTTP/1.1 200 OK"), 1u);
  Advance(5);  // 5 s after the answer: still within the idle timeout (+ a tick)
  EXPECT_EQ(loop_->connections(), 1u);
  Advance(2);
  EXPECT_EQ(loop_->connections(), 0u);
  Receive();
  EXPECT_TRUE(eof_);
}

TEST_F(HttpLoopTest, PipelinedRequestsWaitWhileAnswersBackUpThenAllAreAnswered) {
  HttpLoop::Options o;
  o.max_output_bytes = 32 << 10;
  Start(o, 10 << 10, /*server_sndbuf=*/16 << 10);
  std::string requests;
  for (int i = 0; i < 200; ++i) requests += "GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
  Send(requests);
  for (int i = 0; i < 20; ++i) loop_->Poll();
  // The client reads nothing: the server stops after the output limit and
  // what the socket holds, not after 200 answers (2 MB).
  EXPECT_GT(handled_, 0);
  EXPECT_LT(handled_, 20);
  // Once the client reads, the rest are answered, in order, on the same connection.
  std::string got;
  for (int i = 0; i < 1000 && Count(got, "HTTP/1.1 200 OK") < 200; ++i) got += Receive();
  EXPECT_EQ(handled_, 200);
  EXPECT_EQ(Count(got, "HTTP/1.1 200 OK"), 200u);
  EXPECT_EQ(got.size(), 200 * (got.find("\r\n\r\n") + 4 + (10 << 10)));
  EXPECT_FALSE(eof_);
}

TEST_F(HttpLoopTest, AClientThatReadsNothingIsClosedAfterTheWriteTimeout) {
  HttpLoop::Options o;
  o.write_timeout_s = 30;
  Start(o, 256 << 10, /*server_sndbuf=*/16 << 10);
  Send("GET /x HTTP/1.1\r\n\r\n");
  EXPECT_EQ(handled_, 1);
  Advance(30);
  EXPECT_EQ(loop_->connections(), 1u);
  Advance(2);
  EXPECT_EQ(loop_->connections(), 0u);
}

TEST_F(HttpLoopTest, ErrorsCloseWithAJsonBody) {
  HttpLoop::Options o;
  o.max_body_bytes = 10;
  Start(o, 2);
  Send("POST /x HTTP/1.1\r\nContent-Length: 11\r\n\r\n");
  std::string got = Receive();
  EXPECT_EQ(got.substr(0, got.find("\r\n")), "HTTP/1.1 413 Payload Too Large");
  EXPECT_EQ(BodyOf(got),
            "{\"error\":\"request body over the limit of 10 bytes (the server's "
            "--max-body-bytes)\"}");
  EXPECT_EQ(handled_, 0);
}

}  // namespace
}  // namespace stratalake::server
