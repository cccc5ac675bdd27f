#include "online/redis_common.h"

#include <pthread.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <map>
#include <optional>

#include "stratalake/status.h"

namespace stratalake::online::redis {

namespace {

// The Lua comparison both scripts use: true when `old` is empty or the first
// 16 bytes of `new` are >= those of `old`, compared as unsigned bytes.
constexpr std::string_view kNewerOrEqualLua = R"lua(
local function newer_or_equal(new, old)
  for j = 1, 16 do
    local x, y = string.byte(new, j), string.byte(old, j)
    if y == nil then return true end
    if x == nil then return false end
    if x ~= y then return x > y end
  end
  return true
end
)lua";

// KEYS[i] := ARGV[i] when nothing is stored or ARGV[i]'s first 16 bytes are
// >= the stored value's. Returns the number set.
constexpr std::string_view kNewerWinsBody = R"lua(
local applied = 0
for i = 1, #KEYS do
  local old = redis.call('GETRANGE', KEYS[i], 0, 15)
  if newer_or_equal(ARGV[i], old) then
    redis.call('SET', KEYS[i], ARGV[i])
    applied = applied + 1
  end
end
return applied
)lua";

// For each i: KEYS[i] := ARGV[2i] (or deleted when that is empty) when nothing
// is stored or the stored value's first 16 bytes are <= ARGV[2i-1] (KeyRepair).
// Returns the number changed.
constexpr std::string_view kRepairBody = R"lua(
local changed = 0
for i = 1, #KEYS do
  local old = redis.call('GETRANGE', KEYS[i], 0, 15)
  if newer_or_equal(ARGV[2 * i - 1], old) then
    if ARGV[2 * i] == '' then
      redis.call('DEL', KEYS[i])
    else
      redis.call('SET', KEYS[i], ARGV[2 * i])
    end
    changed = changed + 1
  end
end
return changed
)lua";

}  // namespace

const std::string& NewerWinsScript() {
  static const std::string script = std::string(kNewerOrEqualLua) + std::string(kNewerWinsBody);
  return script;
}

const std::string& RepairScript() {
  static const std::string script = std::string(kNewerOrEqualLua) + std::string(kRepairBody);
  return script;
}

SigpipeGuard::SigpipeGuard() {
  sigemptyset(&pipe_);
  sigaddset(&pipe_, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_, &old_mask_);
  sigset_t pending;
  sigpending(&pending);
  was_pending_ = sigismember(&pending, SIGPIPE) == 1;
}

// ---- URLs ------------------------------------------------------------------

std::string RedisUrl::Describe() const {
  if (unix_socket) return "unix://" + host + "?db=" + std::to_string(db);
  return "redis://" + HostPort() + "/" + std::to_string(db);
}

std::string RedisUrl::HostPort() const {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// `url` with its credentials (before the last '@', or a password= parameter)
// replaced by "***", for error messages.
std::string Redacted(std::string url) {
  size_t scheme = url.find("://");
  size_t at = url.rfind('@');
  if (scheme != std::string::npos && at != std::string::npos && at > scheme) {
    url = url.substr(0, scheme + 3) + "***" + url.substr(at);
  }
  if (size_t p = url.find("password="); p != std::string::npos) {
    size_t end = url.find('&', p);
    url = url.substr(0, p + 9) + "***" + (end == std::string::npos ? "" : url.substr(end));
  }
  return url;
}

arrow::Status UrlError(const std::string& url, const std::string& why) {
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError,
                   "invalid Redis online store URL '" + Redacted(url) + "': " + why +
                       "; use redis://[[user]:password@]host[:port][/db] or "
                       "unix:///path/to/redis.sock[?db=N] (online_store in stratalake.yaml)");
}

namespace {

std::optional<int> ParseInt(std::string_view s, int min, int max) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < min || v > max) {
    return std::nullopt;
  }
  return v;
}

std::optional<std::string> PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    unsigned v = 0;
    auto [end, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
    if (ec != std::errc() || end != s.data() + i + 3) return std::nullopt;
    out.push_back(static_cast<char>(v));
    i += 2;
  }
  return out;
}

}  // namespace

arrow::Result<RedisUrl> ParseRedisUrl(const std::string& url) {
  RedisUrl out;
  std::string_view rest(url);
  if (rest.starts_with("rediss://")) {
    return UrlError(url, "TLS (rediss://) is not supported; use redis:// on a trusted network");
  }
  if (rest.starts_with("unix://")) {
    rest.remove_prefix(7);
    out.unix_socket = true;
    std::string_view query;
    if (size_t q = rest.find('?'); q != std::string_view::npos) {
      query = rest.substr(q + 1);
      rest = rest.substr(0, q);
    }
    if (!rest.starts_with("/")) return UrlError(url, "the socket path must be absolute");
    out.host = std::string(rest);
    while (!query.empty()) {
      size_t amp = query.find('&');
      std::string_view param = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      size_t eq = param.find('=');
      std::string_view name = param.substr(0, eq);
      std::string_view value = eq == std::string_view::npos ? "" : param.substr(eq + 1);
      if (name == "db") {
        auto db = ParseInt(value, 0, 1 << 20);
        if (!db) return UrlError(url, "db must be a database number");
        out.db = *db;
      } else if (name == "password" || name == "user") {
        auto decoded = PercentDecode(value);
        if (!decoded) return UrlError(url, "bad percent-encoding in " + std::string(name));
        (name == "user" ? out.user : out.password) = *decoded;
      } else {
        return UrlError(
            url, "unknown parameter '" + std::string(name) + "' (known: db, user, password)");
      }
    }
    return out;
  }
  if (!rest.starts_with("redis://")) {
    return UrlError(url, "the scheme must be redis:// or unix://");
  }
  rest.remove_prefix(8);
  if (rest.find('?') != std::string_view::npos) {
    return UrlError(url, "query parameters are not supported (put the database after a slash)");
  }
  // The last '@' ends the credentials, so a password may hold '@' and '/'.
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      return UrlError(url, "put the password after a colon: redis://:password@host");
    }
    auto user = PercentDecode(userinfo.substr(0, colon));
    auto password = PercentDecode(userinfo.substr(colon + 1));
    if (!user || !password) return UrlError(url, "bad percent-encoding in the credentials");
    out.user = *user;
    out.password = *password;
  }
  size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  std::string_view port;
  if (hostport.starts_with("[")) {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) return UrlError(url, "unclosed '[' in the host");
    out.host = std::string(hostport.substr(1, close - 1));
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return UrlError(url, "expected ':port' after the IPv6 address");
      port = after.substr(1);
      if (port.empty()) return UrlError(url, "empty port");
    }
  } else {
    size_t colon = hostport.find(':');
    out.host = std::string(hostport.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = hostport.substr(colon + 1);
      if (port.empty()) return UrlError(url, "empty port");
    }
  }
  if (out.host.empty()) return UrlError(url, "no host");
  if (!port.empty()) {
    auto p = ParseInt(port, 1, 65535);
    if (!p) return UrlError(url, "the port must be a number from 1 to 65535");
    out.port = *p;
  }
  if (!path.empty()) {
    auto db = ParseInt(path, 0, 1 << 20);
    if (!db) return UrlError(url, "the path must be a database number, e.g. /0");
    out.db = *db;
  }
  return out;
}

std::string GlobEscape(std::string_view literal) {
  std::string out;
  out.reserve(literal.size() + 8);
  for (char c : literal) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// ---- connections -------------------------------------------------------------

namespace {

// `what` fails on the server: "connect to", "log in to", ...
arrow::Status ConnectError(std::string_view what, const std::string& where, std::string_view error,
                           bool reached = false) {
  return arrow::Status::IOError("cannot ", what, " ", where, ": ", error,
                                reached ? "; fix" : "; start redis-server or fix",
                                " online_store in stratalake.yaml");
}

}  // namespace

arrow::Result<ContextPtr> Connect(const RedisUrl& url, int connect_timeout_ms,
                                  const std::string& where) {
  timeval tv{};
  tv.tv_sec = connect_timeout_ms / 1000;
  tv.tv_usec = (connect_timeout_ms % 1000) * 1000;
  ContextPtr c(url.unix_socket ? redisConnectUnixWithTimeout(url.host.c_str(), tv)
                               : redisConnectWithTimeout(url.host.c_str(), url.port, tv));
  if (c == nullptr) {
    return arrow::Status::OutOfMemory("cannot allocate a Redis connection for ", where);
  }
  if (c->err != 0) return ConnectError("connect to", where, c->errstr);
  timeval command_timeout{};
  command_timeout.tv_sec = kCommandTimeoutSeconds;
  if (redisSetTimeout(c.get(), command_timeout) != REDIS_OK) {
    return ConnectError("connect to", where, c->errstr);
  }
  // AUTH, SELECT and a client name (so CLIENT LIST shows who is connected)
  // in one round trip.
  enum Step { kAuth, kSelect, kName };
  std::vector<Step> steps;
  if (!url.password.empty() || !url.user.empty()) steps.push_back(kAuth);
  if (url.db != 0) steps.push_back(kSelect);
  steps.push_back(kName);
  std::string db = std::to_string(url.db);
  std::string name = "stratalake-" + std::to_string(::getpid());
  arrow::Status status = RoundTrip(
      c.get(), 0, steps.size(),
      [&](size_t i, Command* cmd) {
        switch (steps[i]) {
          case kAuth:
            cmd->Add("AUTH");
            if (!url.user.empty()) cmd->Add(url.user);
            cmd->Add(url.password);
            break;
          case kSelect:
            cmd->Add("SELECT");
            cmd->Add(db);
            break;
          case kName:
            cmd->Add("CLIENT");
            cmd->Add("SETNAME");
            cmd->Add(name);
            break;
        }
      },
      [&](size_t i, const redisReply& r) -> arrow::Status {
        if (r.type != REDIS_REPLY_ERROR || steps[i] == kName) return arrow::Status::OK();
        if (steps[i] == kAuth) {
          return ConnectError(
              "log in to", where,
              "the server refused the user or password (" + std::string(ReplyText(r)) + ")",
              /*reached=*/true);
        }
        return ConnectError("select database " + db + " of", where,
                            "the server refused it (" + std::string(ReplyText(r)) + ")",
                            /*reached=*/true);
      },
      "connecting", where, /*pass_errors=*/true);
  if (!status.ok()) return status;
  return c;
}

arrow::Status ConnectionLost(redisContext* c, std::string_view what, const std::string& where) {
  if (c->err == 0) c->err = REDIS_ERR_OTHER;  // so the connection is not reused
  return arrow::Status::IOError("lost the connection to ", where, " while ", what, ": ", c->errstr,
                                "; check that redis-server is running");
}

arrow::Status Unexpected(const std::string& where, std::string_view command, const redisReply& r) {
  return arrow::Status::IOError(where, ": unexpected reply type ", r.type, " to ", command);
}

arrow::Status ReplyError(const std::string& where, std::string_view what, const redisReply& r) {
  std::string_view text = ReplyText(r);
  // A standalone client talking to a cluster node: say what to change.
  bool cluster = text.starts_with("MOVED ") || text.starts_with("ASK ") ||
                 text.starts_with("CROSSSLOT") || text.starts_with("CLUSTERDOWN");
  return arrow::Status::IOError(where, ": ", what, ": ", text,
                                cluster ? "; the server is a Redis Cluster node: set "
                                          "'cluster: true' under online_store in stratalake.yaml"
                                        : "");
}

arrow::Result<std::vector<KeyValue>> ScanningStore::Scan(std::string_view prefix) {
  std::map<std::string, std::string> found;  // byte order; SCAN's repeats merged
  ARROW_RETURN_NOT_OK(ForEachScanned(prefix, [&](std::string_view key, std::string&& value) {
    found[std::string(key)] = std::move(value);
  }));
  std::vector<KeyValue> out;
  out.reserve(found.size());
  for (auto& [key, value] : found) out.push_back({key, std::move(value)});
  return out;
}

arrow::Status ScanningStore::ScanVersions(std::string_view prefix, const VersionCallback& fn) {
  return ForEachScanned(prefix, [&](std::string_view key, std::string&& value) {
    if (value.size() >= kVersionPrefixSize) {
      fn(key, std::string_view(value).substr(0, kVersionPrefixSize));
    }
  });
}

}  // namespace stratalake::online::redis
