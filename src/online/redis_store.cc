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
// - Needs Redis 4.0 or newer (UNLINK). Redis Cluster (RedisOptions::cluster)
//   is redis_cluster.cc's store: MGET and the script take keys from many slots
//   here.
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
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
#include "online/redis_common.h"
#include "stratalake/online.h"
#include "stratalake/status.h"

namespace stratalake::online {

namespace {

using namespace redis;  // NOLINT: this file is its implementation

// ---- the store ---------------------------------------------------------------

class RedisStore : public redis::ScanningStore {
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

  std::string Describe() const override { return describe_; }

 private:
  // Calls fn(key without key_prefix, value) for every string key starting with
  // `prefix`: one SCAN page, then one MGET of its keys, at a time (memory stays
  // bounded). A key may be reported twice (SCAN's guarantee, or a reconnect).
  arrow::Status ForEachScanned(std::string_view prefix, const ScannedFn& fn) override {
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
      : url_(std::move(url)),
        options_(options),
        describe_(url_.Describe()),
        where_("the Redis online store at " + describe_) {
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

  arrow::Result<ContextPtr> Connect() const {
    return redis::Connect(url_, options_.connect_timeout_ms, where_);
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

  template <typename Build, typename Handle>
  arrow::Status RoundTrip(redisContext* c, size_t begin, size_t end, Build&& build, Handle&& handle,
                          std::string_view what, bool pass_errors = false) const {
    return redis::RoundTrip(c, begin, end, std::forward<Build>(build), std::forward<Handle>(handle),
                            what, where_, pass_errors);
  }

  arrow::Status Unexpected(std::string_view command, const redisReply& r) const {
    return redis::Unexpected(where_, command, r);
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
  const std::string where_;  // for messages: "the Redis online store at redis://..."

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ContextPtr> idle_;  // guarded by mu_: pool slots not in use
  std::string script_sha_;        // set by Open, then read-only
};

}  // namespace

arrow::Result<std::unique_ptr<OnlineStore>> OpenRedisStore(const std::string& url,
                                                           const RedisOptions& options) {
  if (options.cluster) return OpenRedisClusterStore(url, options);
  if (url.find(',') != std::string::npos && url.starts_with("redis://")) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError,
                     "Redis online store '" + Redacted(url) +
                         "': several URLs are seed nodes of a Redis Cluster; set 'cluster: "
                         "true' under online_store in stratalake.yaml (or give one URL)");
  }
  return RedisStore::Open(url, options);
}

}  // namespace stratalake::online
