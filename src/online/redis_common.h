// Internals shared by the Redis online stores (redis_store.cc: one server;
// redis_cluster.cc: Redis Cluster): hiredis handles, the newer-wins Lua
// scripts, URL parsing, SIGPIPE handling and one pipelined round trip.
#pragma once

#include <hiredis/hiredis.h>
#include <signal.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

#include "stratalake/online.h"

namespace stratalake::online::redis {

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
// Keys per repair script call (repairs are rare: EVAL, not a cached script).
constexpr size_t kRepairsPerCall = 500;

// The newer-wins write script: KEYS[i] := ARGV[i] when nothing is stored or
// ARGV[i]'s first 16 bytes are >= the stored value's (as unsigned bytes).
// Returns the number set.
const std::string& NewerWinsScript();
// The repair script (KeyRepair): KEYS[i] := ARGV[2i] (deleted when empty) when
// nothing is stored or the stored prefix is <= ARGV[2i-1]. Returns the number changed.
const std::string& RepairScript();

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

inline std::string_view ReplyText(const redisReply& r) { return std::string_view(r.str, r.len); }

// hiredis sends with write(2), which raises SIGPIPE when the server has reset
// the connection; by default that ends the process. A library must neither die
// of it nor change the process's signal handling, so, as libpq does, SIGPIPE is
// blocked in this thread while talking to the server and one it raised is
// discarded (unless one was already pending, which is not ours to take).
class SigpipeGuard {
 public:
  SigpipeGuard();
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
  std::string Describe() const;
  // "host:port" ("[v6]:port").
  std::string HostPort() const;
};

// `url` with its credentials replaced by "***", for error messages.
std::string Redacted(std::string url);
// An Invalid kDefinitionError saying what is wrong with `url` and the forms accepted.
arrow::Status UrlError(const std::string& url, const std::string& why);
// redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N][&user=..][&password=..].
arrow::Result<RedisUrl> ParseRedisUrl(const std::string& url);

// "*", "?", "[", "]" and "\" escaped, so `literal` matches only itself in a
// SCAN MATCH pattern.
std::string GlobEscape(std::string_view literal);

// ---- connections -------------------------------------------------------------

// Opens a connection to `url` (its host and port, or socket): the command
// timeout, AUTH, SELECT (db != 0) and CLIENT SETNAME stratalake-<pid>, in one
// round trip. Errors are IOErrors "cannot connect to <where>: ..." (or "log in
// to", "select database N of"), ending with what to do.
arrow::Result<ContextPtr> Connect(const RedisUrl& url, int connect_timeout_ms,
                                  const std::string& where);

// Marks `c` broken (so it is not reused) and returns "lost the connection to
// <where> while <what>: ...".
arrow::Status ConnectionLost(redisContext* c, std::string_view what, const std::string& where);

// An IOError for a reply of an unexpected type.
arrow::Status Unexpected(const std::string& where, std::string_view command, const redisReply& r);

// Sends commands [begin, end) (build(i, cmd) fills command i), then reads
// their replies in order, passing each to handle(i, reply); error replies
// become an IOError "<where>: <what>: <reply>" without reaching handle unless
// `pass_errors`. Reads every reply even after an error, so the connection stays
// in step; returns the first error.
arrow::Status ReplyError(const std::string& where, std::string_view what, const redisReply& r);

template <typename Build, typename Handle>
arrow::Status RoundTrip(redisContext* c, size_t begin, size_t end, Build&& build, Handle&& handle,
                        std::string_view what, const std::string& where, bool pass_errors = false) {
  SigpipeGuard no_sigpipe;
  Command cmd;
  for (size_t i = begin; i < end; ++i) {
    cmd.Clear();
    build(i, &cmd);
    if (redisAppendCommandArgv(c, static_cast<int>(cmd.argv.size()), cmd.argv.data(),
                               cmd.lens.data()) != REDIS_OK) {
      return ConnectionLost(c, what, where);
    }
  }
  arrow::Status first_error;
  for (size_t i = begin; i < end; ++i) {
    void* raw = nullptr;
    if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) return ConnectionLost(c, what, where);
    ReplyPtr reply(static_cast<redisReply*>(raw));
    if (!first_error.ok()) continue;
    if (reply->type == REDIS_REPLY_ERROR && !pass_errors) {
      first_error = ReplyError(where, what, *reply);
    } else {
      first_error = handle(i, *reply);
    }
  }
  return first_error;
}

// The Scan and ScanVersions of a Redis store, written once over the one thing
// that differs between one server and a cluster: how keys under a prefix are
// enumerated (ForEachScanned, which may report a key twice, as SCAN may).
class ScanningStore : public OnlineStore {
 public:
  arrow::Result<std::vector<KeyValue>> Scan(std::string_view prefix) override;
  arrow::Status ScanVersions(std::string_view prefix, const VersionCallback& fn) override;

 protected:
  using ScannedFn = std::function<void(std::string_view key, std::string&& value)>;
  // Calls fn(key without any tag or key_prefix, value) for every string key
  // starting with `prefix`.
  virtual arrow::Status ForEachScanned(std::string_view prefix, const ScannedFn& fn) = 0;
};

}  // namespace stratalake::online::redis

namespace stratalake::online {
// The Redis Cluster store (redis_cluster.cc): `seeds` is one or more
// comma-separated redis:// URLs of cluster nodes.
arrow::Result<std::unique_ptr<OnlineStore>> OpenRedisClusterStore(const std::string& seeds,
                                                                  const RedisOptions& options);
}  // namespace stratalake::online
