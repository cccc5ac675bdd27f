// libFuzzer entry point for the feature server's request path, which reads
// untrusted bytes from the network: the input is what one client sends on one
// connection, given to an HttpLoop over a socketpair (framing: request line,
// headers, Content-Length and chunked bodies, pipelining, limits), and every
// request the loop frames is parsed the way the server does
// (server/feast_wire.h: /get-online-features, /push, /materialize*; the
// Content-Type check). Beyond not crashing, hanging or tripping a sanitizer:
// the connection ends once the client has sent everything and closed its side,
// and every answer body the client receives is a valid JSON object in valid
// UTF-8 — error messages quote client bytes, and those must come back escaped.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "common/json.h"
#include "server/feast_wire.h"
#include "server/http_loop.h"

namespace {

using stratalake::server::HttpLoop;
using stratalake::server::HttpRequest;
using stratalake::server::HttpResponse;

[[noreturn]] void Fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "fuzz_http: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

struct Harness {
  std::unique_ptr<HttpLoop> loop;
  std::vector<bool> heads;  // per dispatched request: a HEAD (its answer has no body)
  std::string reply;

  Harness() {
    HttpLoop::Options options;
    options.max_body_bytes = 1 << 20;
    options.max_output_bytes = 16 << 10;
    options.error_body = [](int, std::string_view message) {
      return stratalake::server::FeastErrorJson("FeastError", message);
    };
    auto made = HttpLoop::Make(-1, options,
                               [this](HttpLoop& l, HttpLoop::RequestId id, const HttpRequest& req) {
                                 Handle(l, id, req);
                               });
    if (!made.ok()) Fail("HttpLoop::Make", made.status().message());
    loop = std::move(*made);
  }

  void Handle(HttpLoop& l, HttpLoop::RequestId id, const HttpRequest& req) {
    using namespace stratalake::server;
    heads.push_back(req.method == HttpRequest::kHead);
    arrow::Status st;
    if (req.path == "/get-online-features") {
      stratalake::online::OnlineRequest parsed;
      RequestLimits limits;
      limits.max_entity_rows = 1000;
      OnlineRequestExtras extras;
      st = ParseOnlineRequest(req.body, limits, &parsed, &extras);
    } else if (req.path == "/write-to-online-store") {
      st = ParseWriteToOnlineRequest(req.body).status();
    } else if (req.path == "/push") {
      st = ParsePushRequest(req.body).status();
    } else if (req.path == "/materialize" || req.path == "/materialize-incremental") {
      st = ParseMaterializeRequest(req.body, req.path == "/materialize-incremental").status();
    } else if (!IsJsonContentType(req.content_type)) {
      st = arrow::Status::Invalid("not JSON: ", req.content_type, " at ", req.path);
    }
    HttpResponse r;
    r.code = st.ok() ? 200 : 400;
    reply = st.ok() ? "{}" : FeastErrorJson(FeastErrorClass(st), st.message());
    r.body = reply;
    l.Respond(id, r);
  }
};

// Checks the answers: status lines, headers, and a JSON body each.
void CheckAnswers(std::string_view out, const std::vector<bool>& heads) {
  size_t answer = 0;
  while (!out.empty()) {
    const size_t end = out.find("\r\n\r\n");
    if (end == std::string_view::npos) Fail("an answer without the end of its head", out);
    const std::string_view head = out.substr(0, end);
    out.remove_prefix(end + 4);
    if (head.substr(0, 9) != "HTTP/1.1 " && head.substr(0, 9) != "HTTP/1.0 ") {
      Fail("not a status line", head);
    }
    if (head.substr(9, 3) == "100") continue;  // 100 Continue: no body
    const size_t at = head.find("\r\nContent-Length: ");
    if (at == std::string_view::npos) Fail("no Content-Length", head);
    const size_t length = std::strtoull(head.data() + at + 18, nullptr, 10);
    const bool is_head = answer < heads.size() && heads[answer];
    ++answer;
    if (is_head) continue;
    if (out.size() < length) Fail("a body shorter than its Content-Length", head);
    const std::string_view body = out.substr(0, length);
    out.remove_prefix(length);
    rapidjson::Document d;
    // Valid UTF-8 JSON (an escaped NUL quoted from the request is fine).
    auto st = stratalake::json::ParseJson(&d, body);
    if (!st.ok()) Fail("an answer body that is not valid JSON", body);
    if (d.IsString()) {  // an error as Feast's server sends it: a JSON object in a string
      rapidjson::Document inner;
      st =
          stratalake::json::ParseJson(&inner, std::string_view(d.GetString(), d.GetStringLength()));
      if (!st.ok() || !inner.IsObject()) Fail("an error body that is not Feast's shape", body);
    } else if (!d.IsObject()) {
      Fail("an answer body that is neither an object nor Feast's error", body);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Harness* h = new Harness;
  h->heads.clear();
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  h->loop->AddConnection(fds[0]);
  const int client = fds[1];
  std::string out;
  char buf[65536];
  auto drain = [&] {
    while (true) {
      ssize_t n = read(client, buf, sizeof buf);
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        continue;
      }
      return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    }
  };
  size_t sent = 0;
  bool shut = false;
  bool closed = false;
  for (int i = 0; i < 100000 && !closed; ++i) {
    if (sent < size) {
      ssize_t n = write(client, data + sent, size - sent);
      if (n > 0) sent += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) sent = size;
    }
    if (sent == size && !shut) {
      shutdown(client, SHUT_WR);  // everything sent: the server sees the end
      shut = true;
    }
    h->loop->Poll();
    closed = drain();
  }
  close(client);
  if (!closed) Fail("the connection was neither answered nor closed", "");
  if (h->loop->connections() != 0) Fail("a connection left open", "");
  CheckAnswers(out, h->heads);
  return 0;
}
