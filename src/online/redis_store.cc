// The Redis online store (hiredis, synchronous API).
//
// - Keys on the server are RedisOptions::key_prefix + key; values are stored
//   as plain strings, byte for byte (every command is sent with explicit
//   lengths, so keys and values may hold any bytes, 0x00 included).
// - "Newer wins" is applied atomically on the server by one Lua script (loaded
//   with SCRIPT LOAD, called with EVALSHA): for each pair it compares the first
//   16 bytes of the stored value with the new value's as unsigned bytes (Lua's
//   string `<` follows the server's locale, so it is not used) and SETs when
//   nothing is stored or new >= old. Writes go in calls of up to kPairsPerCall
//   pairs, kPipelineDepth calls per round trip, all on one connection, so the
//   pairs are applied in the order given. Repairs (materialization after
//   deletions) use a second script with the same comparison, sent with EVAL.
// - Durability is the server's: Write returns once Redis has applied the
//   writes; whether they survive a Redis crash depends on its persistence
//   settings (appendonly / appendfsync). Sync() has nothing to add.
// - A fixed pool of RedisOptions::pool_size connections (opened on first use)
//   serves concurrent callers. A call whose connection breaks (server restart,
//   idle timeout, network) reconnects once and repeats itself: every operation
//   is safe to repeat, Write included, because re-applying the same writes in
//   the same order under "newer wins" leaves the same values.
// - Needs Redis 4.0 or newer (UNLINK); Redis Cluster is not supported (MGET and
//   the script take keys from many slots).
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "online/codec.h"
#include "stratalake/online.h"
#include "stratalake/status.h"

namespace stratalake::online {

namespace {

// Pairs per script call, and a cap on their bytes, so one call stays short
// (the server runs nothing else while a script runs).
constexpr size_t kPairsPerCall = 1000;
constexpr size_t kBytesPerCall = size_t{1} << 20;
// Keys per MGET.
constexpr size_t kKeysPerMget = 1000;
// Commands sent before reading their replies.
constexpr size_t kPipelineDepth = 16;
// SCAN's COUNT hint: keys examined per page.
constexpr int kScanCount = 1000;
// Socket read/write timeout once connected, so a hung server fails calls
// instead of blocking them forever (RedisOptions has no setting for it).
constexpr int kCommandTimeoutSeconds = 30;

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

const std::string& NewerWinsScript() {
  static const std::string script = std::string(kNewerOrEqualLua) + std::string(kNewerWinsBody);
  return script;
}

const std::string& RepairScript() {
  static const std::string script = std::string(kNewerOrEqualLua) + std::string(kRepairBody);
  return script;
}

// Keys per repair script call (repairs are rare: EVAL, not a cached script).
constexpr size_t kRepairsPerCall = 500;

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextDeleter>;

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// One command's arguments, pointing into memory the caller keeps alive until
// the command is sent.
struct Command {
  std::vector<const char*> argv;
  std::vector<size_t> lens;

  void Clear() {
    argv.clear();
    lens.clear();
  }
  void Add(std::string_view arg) {
    argv.push_back(arg.data());
    lens.push_back(arg.size());
  }
};

std::string_view ReplyText(const redisReply& r) { return std::string_view(r.str, r.len); }

// hiredis sends with write(2), which raises SIGPIPE when the server has reset
// the connection; by default that ends the process. A library must neither die
// of it nor change the process's signal handling, so, as libpq does, SIGPIPE is
// blocked in this thread while talking to the server and one it raised is
// discarded (unless one was already pending, which is not ours to take).
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_mask_);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        timespec no_wait{};
        while (sigtimedwait(&pipe_, nullptr, &no_wait) < 0 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_mask_;
  bool was_pending_ = false;
};

// ---- URLs ------------------------------------------------------------------

struct RedisUrl {
  bool unix_socket = false;
  std::string host;  // without brackets; the socket's path for unix://
  int port = 6379;
  int db = 0;
  std::string user;  // empty: the default user
  std::string password;

  // Without the credentials.
  std::string Describe() const {
    if (unix_socket) return "unix://" + host + "?db=" + std::to_string(db);
    bool v6 = host.find(':') != std::string::npos;
    return "redis://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/" +
           std::to_string(db);
  }
};

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

// "*", "?", "[", "]" and "\" escaped, so `literal` matches only itself in a
// SCAN MATCH pattern.
std::string GlobEscape(std::string_view literal) {
  std::string out;
  out.reserve(literal.size() + 8);
  for (char c : literal) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// ---- the store ---------------------------------------------------------------

class RedisStore : public OnlineStore {
 public:
  static arrow::Result<std::unique_ptr<OnlineStore>> Open(const std::string& url,
                                                          const RedisOptions& options) {
    if (options.pool_size < 1) {
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError,
                       "Redis online store: pool_size must be at least 1, not " +
                           std::to_string(options.pool_size));
    }
    if (options.connect_timeout_ms < 1) {
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError,
                       "Redis online store: connect_timeout_ms must be positive, not " +
                           std::to_string(options.connect_timeout_ms));
    }
    ARROW_ASSIGN_OR_RAISE(RedisUrl parsed, ParseRedisUrl(url));
    std::unique_ptr<RedisStore> store(new RedisStore(std::move(parsed), options));
    // Connect now, so a wrong URL or a stopped server is reported by Open.
    ARROW_ASSIGN_OR_RAISE(ContextPtr first, store->Connect());
    ARROW_ASSIGN_OR_RAISE(store->script_sha_, store->LoadScript(first.get()));
    store->Give(std::move(first));
    return store;
  }

  arrow::Status Write(std::span<const KeyValue> writes, const WriteOptions& options) override {
    // options.bulk: Redis has no separate write path to skip.
    for (const auto& kv : writes) {
      if (kv.value.size() < kVersionPrefixSize) {
        return arrow::Status::Invalid("online store ", describe_, ": the value for a key of ",
                                      kv.key.size(), " bytes is ", kv.value.size(),
                                      " bytes, shorter than the ", kVersionPrefixSize,
                                      "-byte version prefix; nothing was written");
      }
    }
    if (writes.empty()) return arrow::Status::OK();
    // [begin, end) of `writes` for each script call.
    std::vector<std::pair<size_t, size_t>> calls;
    size_t begin = 0, bytes = 0;
    for (size_t i = 0; i < writes.size(); ++i) {
      bytes += writes[i].key.size() + writes[i].value.size();
      if (i + 1 - begin == kPairsPerCall || bytes >= kBytesPerCall || i + 1 == writes.size()) {
        calls.emplace_back(begin, i + 1);
        begin = i + 1;
        bytes = 0;
      }
    }
    return WithConnection([&](redisContext* c) { return WriteCalls(c, writes, calls); });
  }

  arrow::Status Repair(std::span<const KeyRepair> repairs) override {
    ARROW_RETURN_NOT_OK(CheckRepairs(repairs));
    if (repairs.empty()) return arrow::Status::OK();
    const size_t calls = (repairs.size() + kRepairsPerCall - 1) / kRepairsPerCall;
    return WithConnection([&](redisContext* c) -> arrow::Status {
      std::vector<std::string> keys;
      std::string numkeys;
      for (size_t window = 0; window < calls; window += kPipelineDepth) {
        ARROW_RETURN_NOT_OK(RoundTrip(
            c, window, std::min(calls, window + kPipelineDepth),
            [&](size_t call, Command* cmd) {
              size_t b = call * kRepairsPerCall;
              size_t e = std::min(repairs.size(), b + kRepairsPerCall);
              keys.clear();
              for (size_t i = b; i < e; ++i) keys.push_back(Key(repairs[i].key));
              numkeys = std::to_string(e - b);
              cmd->Add("EVAL");
              cmd->Add(RepairScript());
              cmd->Add(numkeys);
              for (const auto& k : keys) cmd->Add(k);
              for (size_t i = b; i < e; ++i) {
                cmd->Add(repairs[i].bound);
                cmd->Add(repairs[i].value);
              }
            },
            [&](size_t, const redisReply& r) -> arrow::Status {
              if (r.type == REDIS_REPLY_INTEGER) return arrow::Status::OK();
              if (r.type == REDIS_REPLY_ERROR) {
                return arrow::Status::IOError("Redis online store ", describe_,
                                              ": repairing: ", ReplyText(r),
                                              " (repairing again is safe)");
              }
              return Unexpected("the repair script", r);
            },
            "repairing", /*pass_errors=*/true));
      }
      return arrow::Status::OK();
    });
  }

  arrow::Status MultiGet(std::span<const std::string_view> keys,
                         std::vector<std::optional<std::string>>* values) override {
    values->assign(keys.size(), std::nullopt);
    if (keys.empty()) return arrow::Status::OK();
    return WithConnection([&](redisContext* c) -> arrow::Status {
      values->assign(keys.size(), std::nullopt);
      size_t calls = (keys.size() + kKeysPerMget - 1) / kKeysPerMget;
      std::vector<std::string> full;
      for (size_t window = 0; window < calls; window += kPipelineDepth) {
        size_t end = std::min(calls, window + kPipelineDepth);
        ARROW_RETURN_NOT_OK(RoundTrip(
            c, window, end,
            [&](size_t call, Command* cmd) {
              size_t first = call * kKeysPerMget;
              size_t last = std::min(keys.size(), first + kKeysPerMget);
              full.clear();
              full.reserve(last - first);
              for (size_t i = first; i < last; ++i) full.push_back(Key(keys[i]));
              cmd->Add("MGET");
              for (const auto& k : full) cmd->Add(k);
            },
            [&](size_t call, const redisReply& r) -> arrow::Status {
              size_t first = call * kKeysPerMget;
              size_t count = std::min(keys.size(), first + kKeysPerMget) - first;
              return StoreValues(r, count, values->data() + first);
            },
            "reading"));
      }
      return arrow::Status::OK();
    });
  }

  arrow::Status Sync() override {
    // Every write was acknowledged by the server when Write returned; durability
    // beyond that is the server's persistence configuration.
    return arrow::Status::OK();
  }

  arrow::Status DeletePrefix(std::string_view prefix) override {
    if (prefix.empty()) {
      // As the embedded store: deleting everything is never what a caller means
      // (with an empty key_prefix it would empty a shared database).
      return arrow::Status::Invalid("online store ", describe_, ": empty prefix to delete");
    }
    std::string pattern = GlobEscape(Key(prefix)) + "*";
    return WithConnection([&](redisContext* c) -> arrow::Status {
      // Each round trip unlinks the previous page's keys and asks for the next
      // page. Keys written while this runs may be kept.
      std::string cursor = "0";
      std::vector<std::string> page;
      bool first = true;
      while (first || cursor != "0" || !page.empty()) {
        bool scan = first || cursor != "0";
        first = false;
        std::vector<std::string> next_page;
        std::string next_cursor = "0";
        size_t commands = (page.empty() ? 0 : 1) + (scan ? 1 : 0);
        std::string count = std::to_string(kScanCount);
        ARROW_RETURN_NOT_OK(RoundTrip(
            c, 0, commands,
            [&](size_t i, Command* cmd) {
              if (i == 0 && !page.empty()) {
                cmd->Add("UNLINK");
                for (const auto& k : page) cmd->Add(k);
              } else {
                AddScan(cursor, pattern, count, cmd);
              }
            },
            [&](size_t i, const redisReply& r) -> arrow::Status {
              if (i == 0 && !page.empty()) {
                if (r.type != REDIS_REPLY_INTEGER) return Unexpected("UNLINK", r);
                return arrow::Status::OK();
              }
              return ReadScanPage(r, &next_cursor, &next_page);
            },
            "deleting keys"));
        page = std::move(next_page);
        cursor = std::move(next_cursor);
      }
      return arrow::Status::OK();
    });
  }

  arrow::Result<std::vector<KeyValue>> Scan(std::string_view prefix) override {
    std::map<std::string, std::string> found;  // byte order; SCAN's repeats merged
    ARROW_RETURN_NOT_OK(ForEachScanned(prefix, [&](std::string_view key, std::string&& value) {
      found[std::string(key)] = std::move(value);
    }));
    std::vector<KeyValue> out;
    out.reserve(found.size());
    for (auto& [key, value] : found) out.push_back({key, std::move(value)});
    return out;
  }

  arrow::Status ScanVersions(std::string_view prefix, const VersionCallback& fn) override {
    return ForEachScanned(prefix, [&](std::string_view key, std::string&& value) {
      if (value.size() >= kVersionPrefixSize) {
        fn(key, std::string_view(value).substr(0, kVersionPrefixSize));
      }
    });
  }

  std::string Describe() const override { return describe_; }

 private:
  // Calls fn(key without key_prefix, value) for every string key starting with
  // `prefix`: one SCAN page, then one MGET of its keys, at a time (memory stays
  // bounded). A key may be reported twice (SCAN's guarantee, or a reconnect).
  arrow::Status ForEachScanned(
      std::string_view prefix,
      const std::function<void(std::string_view key, std::string&& value)>& fn) {
    std::string full_prefix = Key(prefix);
    std::string pattern = GlobEscape(full_prefix) + "*";
    std::string count = std::to_string(kScanCount);
    return WithConnection([&](redisContext* c) -> arrow::Status {
      std::string cursor = "0";
      std::vector<std::string> keys;
      std::vector<std::optional<std::string>> values;
      do {
        std::string next = "0";
        keys.clear();
        ARROW_RETURN_NOT_OK(RoundTrip(
            c, 0, 1, [&](size_t, Command* cmd) { AddScan(cursor, pattern, count, cmd); },
            [&](size_t, const redisReply& r) { return ReadScanPage(r, &next, &keys); },
            "scanning"));
        cursor = std::move(next);
        if (keys.empty()) continue;
        values.assign(keys.size(), std::nullopt);
        ARROW_RETURN_NOT_OK(RoundTrip(
            c, 0, 1,
            [&](size_t, Command* cmd) {
              cmd->Add("MGET");
              for (const auto& k : keys) cmd->Add(k);
            },
            [&](size_t, const redisReply& r) { return StoreValues(r, keys.size(), values.data()); },
            "scanning"));
        for (size_t i = 0; i < keys.size(); ++i) {
          // Gone since SCAN listed it, or not a string (not ours).
          if (!values[i] || !keys[i].starts_with(full_prefix)) continue;
          fn(std::string_view(keys[i]).substr(options_.key_prefix.size()), std::move(*values[i]));
        }
      } while (cursor != "0");
      return arrow::Status::OK();
    });
  }

  RedisStore(RedisUrl url, const RedisOptions& options)
      : url_(std::move(url)), options_(options), describe_(url_.Describe()) {
    // Unopened slots first: Take() prefers connections already open.
    for (int i = 0; i < options_.pool_size - 1; ++i) idle_.emplace_back();
  }

  std::string Key(std::string_view key) const {
    std::string out;
    out.reserve(options_.key_prefix.size() + key.size());
    out.append(options_.key_prefix);
    out.append(key);
    return out;
  }

  // ---- connections ----

  // `what` fails on the server: "connect to", "log in to", ...
  arrow::Status ConnectError(std::string_view what, std::string_view error,
                             bool reached = false) const {
    return arrow::Status::IOError("cannot ", what, " the Redis online store at ", describe_, ": ",
                                  error, reached ? "; fix" : "; start redis-server or fix",
                                  " online_store in stratalake.yaml");
  }

  arrow::Result<ContextPtr> Connect() const {
    timeval tv{};
    tv.tv_sec = options_.connect_timeout_ms / 1000;
    tv.tv_usec = (options_.connect_timeout_ms % 1000) * 1000;
    ContextPtr c(url_.unix_socket ? redisConnectUnixWithTimeout(url_.host.c_str(), tv)
                                  : redisConnectWithTimeout(url_.host.c_str(), url_.port, tv));
    if (c == nullptr) {
      return arrow::Status::OutOfMemory("cannot allocate a Redis connection for ", describe_);
    }
    if (c->err != 0) return ConnectError("connect to", c->errstr);
    timeval command_timeout{};
    command_timeout.tv_sec = kCommandTimeoutSeconds;
    if (redisSetTimeout(c.get(), command_timeout) != REDIS_OK) {
      return ConnectError("connect to", c->errstr);
    }
    // AUTH, SELECT and a client name (so CLIENT LIST shows who is connected)
    // in one round trip.
    enum Step { kAuth, kSelect, kName };
    std::vector<Step> steps;
    if (!url_.password.empty() || !url_.user.empty()) steps.push_back(kAuth);
    if (url_.db != 0) steps.push_back(kSelect);
    steps.push_back(kName);
    std::string db = std::to_string(url_.db);
    std::string name = "stratalake-" + std::to_string(::getpid());
    arrow::Status status = RoundTrip(
        c.get(), 0, steps.size(),
        [&](size_t i, Command* cmd) {
          switch (steps[i]) {
            case kAuth:
              cmd->Add("AUTH");
              if (!url_.user.empty()) cmd->Add(url_.user);
              cmd->Add(url_.password);
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
                "log in to",
                "the server refused the user or password (" + std::string(ReplyText(r)) + ")",
                /*reached=*/true);
          }
          return ConnectError("select database " + db + " of",
                              "the server refused it (" + std::string(ReplyText(r)) + ")",
                              /*reached=*/true);
        },
        "connecting", /*pass_errors=*/true);
    if (!status.ok()) return status;
    return c;
  }

  // Takes a pool slot (an open connection, or nullptr for one to open),
  // waiting while every slot is in use.
  ContextPtr Take() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !idle_.empty(); });
    ContextPtr c = std::move(idle_.back());
    idle_.pop_back();
    return c;
  }

  void Give(ContextPtr c) {
    if (c != nullptr && c->err != 0) c.reset();  // broken: reopen on next use
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (c == nullptr) {
        idle_.insert(idle_.begin(), nullptr);
      } else {
        idle_.push_back(std::move(c));
      }
    }
    cv_.notify_one();
  }

  // Runs fn(connection) on a pooled connection; when the connection breaks,
  // reconnects once and runs fn again (fn must start from scratch each time).
  template <typename Fn>
  arrow::Status WithConnection(Fn&& fn) {
    struct Slot {
      RedisStore* store;
      ContextPtr c;
      ~Slot() { store->Give(std::move(c)); }
    } slot{this, Take()};
    for (int attempt = 0;; ++attempt) {
      if (slot.c == nullptr || slot.c->err != 0) {
        slot.c.reset();
        ARROW_ASSIGN_OR_RAISE(slot.c, Connect());
      }
      arrow::Status status = fn(slot.c.get());
      if (status.ok() || slot.c->err == 0 || attempt == 1) return status;
    }
  }

  // Sends commands [begin, end) (build(i, cmd) fills command i), then reads
  // their replies in order, passing each to handle(i, reply); error replies
  // become an IOError without reaching handle unless `pass_errors`. Reads every
  // reply even after an error, so the connection stays in step; returns the
  // first error.
  template <typename Build, typename Handle>
  arrow::Status RoundTrip(redisContext* c, size_t begin, size_t end, Build&& build, Handle&& handle,
                          std::string_view what, bool pass_errors = false) const {
    SigpipeGuard no_sigpipe;
    Command cmd;
    for (size_t i = begin; i < end; ++i) {
      cmd.Clear();
      build(i, &cmd);
      if (redisAppendCommandArgv(c, static_cast<int>(cmd.argv.size()), cmd.argv.data(),
                                 cmd.lens.data()) != REDIS_OK) {
        return ConnectionLost(c, what);
      }
    }
    arrow::Status first_error;
    for (size_t i = begin; i < end; ++i) {
      void* raw = nullptr;
      if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) return ConnectionLost(c, what);
      ReplyPtr reply(static_cast<redisReply*>(raw));
      if (!first_error.ok()) continue;
      if (reply->type == REDIS_REPLY_ERROR && !pass_errors) {
        first_error = arrow::Status::IOError("Redis online store ", describe_, ": ", what, ": ",
                                             ReplyText(*reply));
      } else {
        first_error = handle(i, *reply);
      }
    }
    return first_error;
  }

  arrow::Status ConnectionLost(redisContext* c, std::string_view what) const {
    if (c->err == 0) c->err = REDIS_ERR_OTHER;  // so the connection is not reused
    return arrow::Status::IOError("lost the connection to the Redis online store at ", describe_,
                                  " while ", what, ": ", c->errstr,
                                  "; check that redis-server is running");
  }

  arrow::Status Unexpected(std::string_view command, const redisReply& r) const {
    return arrow::Status::IOError("Redis online store ", describe_, ": unexpected reply type ",
                                  r.type, " to ", command);
  }

  // ---- commands ----

  // SCRIPT LOAD: returns the script's SHA1 for EVALSHA.
  arrow::Result<std::string> LoadScript(redisContext* c) const {
    std::string sha;
    ARROW_RETURN_NOT_OK(RoundTrip(
        c, 0, 1,
        [&](size_t, Command* cmd) {
          cmd->Add("SCRIPT");
          cmd->Add("LOAD");
          cmd->Add(NewerWinsScript());
        },
        [&](size_t, const redisReply& r) -> arrow::Status {
          if (r.type != REDIS_REPLY_STRING) return Unexpected("SCRIPT LOAD", r);
          sha.assign(ReplyText(r));
          return arrow::Status::OK();
        },
        "loading the write script"));
    return sha;
  }

  arrow::Status WriteCalls(redisContext* c, std::span<const KeyValue> writes,
                           const std::vector<std::pair<size_t, size_t>>& calls) {
    std::string sha = script_sha_;
    bool reloaded = false, use_eval = false;
    std::vector<std::string> keys;
    std::string numkeys;
    size_t next = 0;
    while (next < calls.size()) {
      size_t end = std::min(calls.size(), next + kPipelineDepth);
      std::optional<size_t> noscript;
      ARROW_RETURN_NOT_OK(RoundTrip(
          c, next, end,
          [&](size_t call, Command* cmd) {
            auto [b, e] = calls[call];
            keys.clear();
            for (size_t i = b; i < e; ++i) keys.push_back(Key(writes[i].key));
            numkeys = std::to_string(e - b);
            if (use_eval) {
              cmd->Add("EVAL");
              cmd->Add(NewerWinsScript());
            } else {
              cmd->Add("EVALSHA");
              cmd->Add(sha);
            }
            cmd->Add(numkeys);
            for (const auto& k : keys) cmd->Add(k);
            for (size_t i = b; i < e; ++i) cmd->Add(writes[i].value);
          },
          [&](size_t call, const redisReply& r) -> arrow::Status {
            if (r.type == REDIS_REPLY_INTEGER) return arrow::Status::OK();
            if (r.type == REDIS_REPLY_ERROR && ReplyText(r).starts_with("NOSCRIPT")) {
              if (!noscript) noscript = call;
              return arrow::Status::OK();
            }
            if (r.type == REDIS_REPLY_ERROR) {
              return arrow::Status::IOError("Redis online store ", describe_,
                                            ": writing: ", ReplyText(r),
                                            " (some of the writes may have been applied; "
                                            "writing them again is safe)");
            }
            return Unexpected("the write script", r);
          },
          "writing", /*pass_errors=*/true));
      if (!noscript) {
        next = end;
        continue;
      }
      // The server lost the script (restart, SCRIPT FLUSH). Calls after the
      // first that failed may have run (if another client reloaded it), so
      // repeat from there: repeating in order gives the same result.
      if (use_eval) {
        return arrow::Status::IOError("Redis online store ", describe_,
                                      ": EVAL of the write script answered NOSCRIPT");
      }
      if (!reloaded) {
        ARROW_ASSIGN_OR_RAISE(sha, LoadScript(c));
        reloaded = true;
      } else {
        use_eval = true;  // flushed again at once: stop depending on the cache
      }
      next = *noscript;
    }
    return arrow::Status::OK();
  }

  arrow::Status StoreValues(const redisReply& r, size_t count,
                            std::optional<std::string>* out) const {
    if (r.type != REDIS_REPLY_ARRAY || r.elements != count) return Unexpected("MGET", r);
    for (size_t i = 0; i < count; ++i) {
      const redisReply& e = *r.element[i];
      if (e.type == REDIS_REPLY_STRING) {
        out[i].emplace(e.str, e.len);
      } else if (e.type != REDIS_REPLY_NIL) {
        return Unexpected("MGET", e);
      }
    }
    return arrow::Status::OK();
  }

  static void AddScan(const std::string& cursor, const std::string& pattern,
                      const std::string& count, Command* cmd) {
    cmd->Add("SCAN");
    cmd->Add(cursor);
    cmd->Add("MATCH");
    cmd->Add(pattern);
    cmd->Add("COUNT");
    cmd->Add(count);
  }

  arrow::Status ReadScanPage(const redisReply& r, std::string* cursor,
                             std::vector<std::string>* keys) const {
    if (r.type != REDIS_REPLY_ARRAY || r.elements != 2 ||
        r.element[0]->type != REDIS_REPLY_STRING || r.element[1]->type != REDIS_REPLY_ARRAY) {
      return Unexpected("SCAN", r);
    }
    cursor->assign(ReplyText(*r.element[0]));
    const redisReply& page = *r.element[1];
    for (size_t i = 0; i < page.elements; ++i) {
      if (page.element[i]->type != REDIS_REPLY_STRING) return Unexpected("SCAN", r);
      keys->emplace_back(ReplyText(*page.element[i]));
    }
    return arrow::Status::OK();
  }

  const RedisUrl url_;
  const RedisOptions options_;
  const std::string describe_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ContextPtr> idle_;  // guarded by mu_: pool slots not in use
  std::string script_sha_;        // set by Open, then read-only
};

}  // namespace

arrow::Result<std::unique_ptr<OnlineStore>> OpenRedisStore(const std::string& url,
                                                           const RedisOptions& options) {
  return RedisStore::Open(url, options);
}

}  // namespace stratalake::online
