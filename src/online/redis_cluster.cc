// The Redis Cluster online store (hiredis, synchronous API).
//
// - Keys on the server are "{TAG}" + RedisOptions::key_prefix + key, where TAG
//   is 8 hex digits of the 32-bit FNV-1a hash of the key's bytes after its
//   first 0x00 (the encoded entity, codec.h; the whole key when it has no
//   0x00). Redis hashes only what is between the braces, so every view's value
//   of one entity lives in one hash slot (one MGET reads them), and the slot is
//   CRC16(TAG) mod 16384, known without asking the server.
// - The slot map (which primary serves each of the 16384 slots) is read with
//   CLUSTER SLOTS from the seed nodes at Open and from any known node when a
//   reply says it is stale. A MOVED reply updates the slot's entry, asks for a
//   fresh map and sends the command again; an ASK reply (a slot being migrated)
//   sends it once to the node named, after ASKING, key by key (a multi-key
//   command on a slot in migration may be answered TRYAGAIN; one key never is).
// - Every operation groups its keys by slot, one command per slot (MGET, or the
//   newer-wins script of redis_store.cc, whose keys must share a slot), then
//   sends each node its commands pipelined, every node's before reading any
//   reply, so the nodes work in parallel while one thread waits. Writes to one
//   slot keep their order: when a command is sent again (redirect, lost
//   connection), every later command of its slot is sent again after it, which
//   under "newer wins" leaves the same values.
// - A node that cannot be reached fails only the keys of its slots: after one
//   retry (a fresh slot map, a new connection) their error names the node.
//   MultiGetEach reports it per key; MultiGet, Write and the rest fail the call
//   with that error. A node that comes back is used again by the next call.
// - Connections: RedisOptions::pool_size per node, opened on first use. An
//   operation holds at most one connection per node and takes them in address
//   order, so concurrent callers cannot deadlock.
// - Scan, ScanVersions and DeletePrefix run SCAN on every primary (keys that
//   migrate meanwhile may be missed or reported twice, as SCAN's own guarantee).
#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "online/codec.h"
#include "online/redis_common.h"
#include "stratalake/online.h"
#include "stratalake/status.h"

namespace stratalake::online {

namespace {

using namespace redis;  // NOLINT: this file is its implementation

constexpr int kSlots = 16384;
// Redirects one command may follow before its keys fail.
constexpr int kMaxRedirects = 8;
// Commands sent to one node before reading their replies.
constexpr size_t kCallsPerWave = 512;
// Bytes of tag in a stored key: "{" 8 hex digits "}".
constexpr size_t kTagSize = 10;

// CRC16-CCITT (XMODEM), Redis Cluster's key hash.
uint16_t Crc16(std::string_view s) {
  uint16_t crc = 0;
  for (unsigned char c : s) {
    crc = static_cast<uint16_t>(crc ^ (static_cast<uint16_t>(c) << 8));
    for (int i = 0; i < 8; ++i) {
      crc = static_cast<uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
    }
  }
  return crc;
}

// The slot Redis assigns `key`: CRC16 of the first non-empty {...} part, or
// of the whole key.
int KeySlot(std::string_view key) {
  size_t open = key.find('{');
  if (open != std::string_view::npos) {
    size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return Crc16(key) & (kSlots - 1);
}

// "{TAG}": the hash of the key's entity part (see the file comment).
void AppendTag(std::string_view key, std::string* out) {
  size_t zero = key.find('\0');
  std::string_view entity = zero == std::string_view::npos ? key : key.substr(zero + 1);
  uint32_t h = 2166136261u;
  for (unsigned char c : entity) {
    h ^= c;
    h *= 16777619u;
  }
  static const char kHex[] = "0123456789abcdef";
  out->push_back('{');
  for (int shift = 28; shift >= 0; shift -= 4) out->push_back(kHex[(h >> shift) & 15]);
  out->push_back('}');
}

// One primary of the cluster and its connection pool.
struct Node {
  RedisUrl url;       // host and port, the seeds' credentials, database 0
  std::string addr;   // "host:port"
  std::string where;  // for messages: "Redis Cluster node ADDR (online store ...)"
  std::mutex mu;
  std::condition_variable cv;
  std::vector<ContextPtr> idle;  // guarded by mu: pool slots not in use (nullptr: to open)
};

// One command of an operation: items (keys, pairs, repairs) of one slot.
struct Call {
  int slot = 0;
  uint32_t seq = 0;             // order among its slot's calls (writes apply in this order)
  std::vector<uint32_t> items;  // indices into the operation's keys/pairs
  Node* ask = nullptr;          // ASK redirect: send ASKING first, to this node
  int redirects = 0;
  int lost = 0;       // connection failures seen
  bool eval = false;  // the node lost the script: send it whole (EVAL)
};

class ClusterStore : public redis::ScanningStore {
 public:
  static arrow::Result<std::unique_ptr<OnlineStore>> Open(const std::string& seeds,
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
    std::vector<RedisUrl> parsed;
    std::string_view rest(seeds);
    while (true) {
      size_t comma = rest.find(',');
      std::string one(rest.substr(0, comma));
      while (!one.empty() && one.front() == ' ') one.erase(0, 1);
      while (!one.empty() && one.back() == ' ') one.pop_back();
      if (one.empty()) {
        return UrlError(seeds,
                        "empty seed node in the list (give redis://host:port URLs "
                        "separated by commas)");
      }
      ARROW_ASSIGN_OR_RAISE(RedisUrl url, ParseRedisUrl(one));
      if (url.unix_socket) {
        return UrlError(one,
                        "a Redis Cluster is reached over TCP: give its nodes as "
                        "redis://host:port");
      }
      if (url.db != 0) {
        return UrlError(one,
                        "Redis Cluster has only database 0; drop the /" + std::to_string(url.db));
      }
      parsed.push_back(std::move(url));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    std::unique_ptr<ClusterStore> store(new ClusterStore(std::move(parsed), options));
    ARROW_RETURN_NOT_OK(store->Refresh(/*at_open=*/true));
    // The script's SHA1 is the same on every node; a node without it answers
    // NOSCRIPT and gets the script itself.
    Node* any = nullptr;
    {
      std::shared_lock lock(store->map_mu_);
      for (Node* n : store->slots_) {
        if (n != nullptr) {
          any = n;
          break;
        }
      }
    }
    if (any == nullptr) {
      return arrow::Status::IOError("the Redis Cluster online store ", store->describe_,
                                    " has no hash slots assigned to any node; create the "
                                    "cluster first (redis-cli --cluster create ...)");
    }
    ARROW_RETURN_NOT_OK(store->OnNode(any, [&](redisContext* c) -> arrow::Status {
      return RoundTrip(
          c, 0, 1,
          [&](size_t, Command* cmd) {
            cmd->Add("SCRIPT");
            cmd->Add("LOAD");
            cmd->Add(NewerWinsScript());
          },
          [&](size_t, const redisReply& r) -> arrow::Status {
            if (r.type != REDIS_REPLY_STRING) return Unexpected(any->where, "SCRIPT LOAD", r);
            store->script_sha_.assign(ReplyText(r));
            return arrow::Status::OK();
          },
          "loading the write script", any->where);
    }));
    return store;
  }

  arrow::Status Write(std::span<const KeyValue> writes, const WriteOptions&) override {
    for (const auto& kv : writes) {
      if (kv.value.size() < kVersionPrefixSize) {
        return arrow::Status::Invalid("online store ", describe_, ": the value for a key of ",
                                      kv.key.size(), " bytes is ", kv.value.size(),
                                      " bytes, shorter than the ", kVersionPrefixSize,
                                      "-byte version prefix; nothing was written");
      }
    }
    if (writes.empty()) return arrow::Status::OK();
    std::vector<std::string> full(writes.size());
    std::vector<int> slots(writes.size());
    for (size_t i = 0; i < writes.size(); ++i) {
      full[i] = Key(writes[i].key);
      slots[i] = KeySlot(std::string_view(full[i]).substr(0, kTagSize));
    }
    std::vector<Call> calls = Group(
        slots, kPairsPerCall, [&](uint32_t i) { return full[i].size() + writes[i].value.size(); });
    arrow::Status first_error;
    std::string numkeys;
    ARROW_RETURN_NOT_OK(Execute(
        std::move(calls), /*ordered=*/true, "writing",
        [&](const Call& call, Command* cmd) {
          numkeys = std::to_string(call.items.size());
          if (call.eval) {
            cmd->Add("EVAL");
            cmd->Add(NewerWinsScript());
          } else {
            cmd->Add("EVALSHA");
            cmd->Add(script_sha_);
          }
          cmd->Add(numkeys);
          for (uint32_t i : call.items) cmd->Add(full[i]);
          for (uint32_t i : call.items) cmd->Add(writes[i].value);
        },
        [&](const Call&, const redisReply& r, const Node& node) -> arrow::Status {
          if (r.type == REDIS_REPLY_INTEGER) return arrow::Status::OK();
          return Unexpected(node.where, "the write script", r);
        },
        [&](const Call&, const arrow::Status& st) {
          if (first_error.ok()) first_error = st;
        }));
    if (!first_error.ok()) {
      return first_error.WithMessage(first_error.message(),
                                     " (some of the writes may have been applied; writing them "
                                     "again is safe)");
    }
    return arrow::Status::OK();
  }

  arrow::Status Repair(std::span<const KeyRepair> repairs) override {
    ARROW_RETURN_NOT_OK(CheckRepairs(repairs));
    if (repairs.empty()) return arrow::Status::OK();
    std::vector<std::string> full(repairs.size());
    std::vector<int> slots(repairs.size());
    for (size_t i = 0; i < repairs.size(); ++i) {
      full[i] = Key(repairs[i].key);
      slots[i] = KeySlot(std::string_view(full[i]).substr(0, kTagSize));
    }
    std::vector<Call> calls = Group(slots, kRepairsPerCall, [&](uint32_t i) {
      return full[i].size() + repairs[i].value.size();
    });
    arrow::Status first_error;
    std::string numkeys;
    ARROW_RETURN_NOT_OK(Execute(
        std::move(calls), /*ordered=*/true, "repairing",
        [&](const Call& call, Command* cmd) {
          numkeys = std::to_string(call.items.size());
          cmd->Add("EVAL");
          cmd->Add(RepairScript());
          cmd->Add(numkeys);
          for (uint32_t i : call.items) cmd->Add(full[i]);
          for (uint32_t i : call.items) {
            cmd->Add(repairs[i].bound);
            cmd->Add(repairs[i].value);
          }
        },
        [&](const Call&, const redisReply& r, const Node& node) -> arrow::Status {
          if (r.type == REDIS_REPLY_INTEGER) return arrow::Status::OK();
          return Unexpected(node.where, "the repair script", r);
        },
        [&](const Call&, const arrow::Status& st) {
          if (first_error.ok()) first_error = st;
        }));
    if (!first_error.ok()) {
      return first_error.WithMessage(first_error.message(), " (repairing again is safe)");
    }
    return arrow::Status::OK();
  }

  arrow::Status MultiGet(std::span<const std::string_view> keys,
                         std::vector<std::optional<std::string>>* values) override {
    std::vector<arrow::Status> errors;
    ARROW_RETURN_NOT_OK(MultiGetEach(keys, values, &errors));
    size_t failed = 0;
    const arrow::Status* first = nullptr;
    for (const auto& st : errors) {
      if (st.ok()) continue;
      if (first == nullptr) first = &st;
      ++failed;
    }
    if (first == nullptr) return arrow::Status::OK();
    return first->WithMessage(first->message(), " (", failed, " of ", keys.size(),
                              " keys could not be read)");
  }

  arrow::Status MultiGetEach(std::span<const std::string_view> keys,
                             std::vector<std::optional<std::string>>* values,
                             std::vector<arrow::Status>* errors) override {
    values->assign(keys.size(), std::nullopt);
    errors->assign(keys.size(), arrow::Status::OK());
    if (keys.empty()) return arrow::Status::OK();
    std::vector<std::string> full(keys.size());
    std::vector<int> slots(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      full[i] = Key(keys[i]);
      slots[i] = KeySlot(std::string_view(full[i]).substr(0, kTagSize));
    }
    std::vector<Call> calls = Group(slots, kKeysPerMget, [](uint32_t) { return size_t{0}; });
    return Execute(
        std::move(calls), /*ordered=*/false, "reading",
        [&](const Call& call, Command* cmd) {
          cmd->Add("MGET");
          for (uint32_t i : call.items) cmd->Add(full[i]);
        },
        [&](const Call& call, const redisReply& r, const Node& node) -> arrow::Status {
          if (r.type != REDIS_REPLY_ARRAY || r.elements != call.items.size()) {
            return Unexpected(node.where, "MGET", r);
          }
          for (size_t j = 0; j < r.elements; ++j) {
            const redisReply& e = *r.element[j];
            if (e.type == REDIS_REPLY_STRING) {
              (*values)[call.items[j]].emplace(e.str, e.len);
            } else if (e.type != REDIS_REPLY_NIL) {
              return Unexpected(node.where, "MGET", e);
            }
          }
          return arrow::Status::OK();
        },
        [&](const Call& call, const arrow::Status& st) {
          for (uint32_t i : call.items) {
            (*errors)[i] = st;
            (*values)[i].reset();
          }
        });
  }

  arrow::Status Sync() override { return arrow::Status::OK(); }

  arrow::Status DeletePrefix(std::string_view prefix) override {
    if (prefix.empty()) {
      return arrow::Status::Invalid("online store ", describe_, ": empty prefix to delete");
    }
    return ForEachNodeScan(
        prefix,
        [&](redisContext* c, Node* node, const std::vector<std::string>& keys) -> arrow::Status {
          // One key per UNLINK: the keys of a page lie in many slots. A key that
          // migrated meanwhile answers MOVED and is left (SCAN's own guarantee).
          return RoundTrip(
              c, 0, keys.size(),
              [&](size_t i, Command* cmd) {
                cmd->Add("UNLINK");
                cmd->Add(keys[i]);
              },
              [&](size_t, const redisReply& r) -> arrow::Status {
                if (r.type == REDIS_REPLY_INTEGER || IsRedirect(r)) return arrow::Status::OK();
                if (r.type == REDIS_REPLY_ERROR) return ReplyError(node->where, "deleting keys", r);
                return Unexpected(node->where, "UNLINK", r);
              },
              "deleting keys", node->where, /*pass_errors=*/true);
        });
  }

  std::string Describe() const override { return describe_; }

 private:
  ClusterStore(std::vector<RedisUrl> seeds, const RedisOptions& options)
      : seeds_(std::move(seeds)), options_(options), slots_(kSlots, nullptr) {
    describe_ = "redis-cluster://";
    for (size_t i = 0; i < seeds_.size(); ++i) {
      describe_ += (i ? "," : "") + seeds_[i].HostPort();
    }
  }

  std::string Key(std::string_view key) const {
    std::string out;
    out.reserve(kTagSize + options_.key_prefix.size() + key.size());
    AppendTag(key, &out);
    out.append(options_.key_prefix);
    out.append(key);
    return out;
  }

  static bool IsRedirect(const redisReply& r) {
    if (r.type != REDIS_REPLY_ERROR) return false;
    std::string_view t = ReplyText(r);
    return t.starts_with("MOVED ") || t.starts_with("ASK ");
  }

  // ---- nodes and the slot map ----

  // The node at host:port, made on first sight (never removed, so Node*
  // stays valid for the store's life).
  Node* GetNode(const std::string& host, int port) {
    RedisUrl url = seeds_.front();  // credentials
    url.host = host;
    url.port = port;
    url.db = 0;
    std::string addr = url.HostPort();
    std::lock_guard<std::mutex> lock(nodes_mu_);
    auto& slot = nodes_[addr];
    if (slot == nullptr) {
      slot = std::make_unique<Node>();
      slot->url = std::move(url);
      slot->addr = addr;
      slot->where = "Redis Cluster node " + addr + " (online store " + describe_ + ")";
      for (int i = 0; i < options_.pool_size; ++i) slot->idle.emplace_back();
    }
    return slot.get();
  }

  // "host:port" from a MOVED/ASK reply ("[v6]:port" or "v6:port" too).
  Node* NodeAt(std::string_view addr) {
    size_t colon = addr.rfind(':');
    if (colon == std::string_view::npos) return nullptr;
    std::string host(addr.substr(0, colon));
    if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    int port = 0;
    for (char ch : addr.substr(colon + 1)) {
      if (ch < '0' || ch > '9') return nullptr;
      port = port * 10 + (ch - '0');
      if (port > 65535) return nullptr;
    }
    if (port == 0) return nullptr;
    return GetNode(host, port);
  }

  ContextPtr Take(Node* node) {
    std::unique_lock<std::mutex> lock(node->mu);
    node->cv.wait(lock, [&] { return !node->idle.empty(); });
    ContextPtr c = std::move(node->idle.back());
    node->idle.pop_back();
    return c;
  }

  void Give(Node* node, ContextPtr c) {
    if (c != nullptr && c->err != 0) c.reset();  // broken: reopen on next use
    {
      std::lock_guard<std::mutex> lock(node->mu);
      if (c == nullptr) {
        node->idle.insert(node->idle.begin(), nullptr);
      } else {
        node->idle.push_back(std::move(c));
      }
    }
    node->cv.notify_one();
  }

  // Runs fn(connection) on one of `node`'s connections; when it breaks,
  // reconnects once and runs fn again.
  template <typename Fn>
  arrow::Status OnNode(Node* node, Fn&& fn) {
    struct Slot {
      ClusterStore* store;
      Node* node;
      ContextPtr c;
      ~Slot() { store->Give(node, std::move(c)); }
    } slot{this, node, Take(node)};
    for (int attempt = 0;; ++attempt) {
      if (slot.c == nullptr || slot.c->err != 0) {
        slot.c.reset();
        ARROW_ASSIGN_OR_RAISE(slot.c, Connect(node->url, options_.connect_timeout_ms, node->where));
      }
      arrow::Status status = fn(slot.c.get());
      if (status.ok() || slot.c->err == 0 || attempt == 1) return status;
    }
  }

  // Reads the slot map (CLUSTER SLOTS) from the first node that answers: the
  // nodes of the current map, then the seeds.
  arrow::Status Refresh(bool at_open = false) {
    std::vector<Node*> candidates;
    {
      std::shared_lock lock(map_mu_);
      std::set<Node*> seen;
      for (Node* n : slots_) {
        if (n != nullptr && seen.insert(n).second) candidates.push_back(n);
      }
    }
    for (const auto& seed : seeds_) candidates.push_back(GetNode(seed.host, seed.port));
    std::string errors;
    std::set<Node*> tried;
    for (Node* node : candidates) {
      if (!tried.insert(node).second) continue;
      std::vector<std::pair<std::pair<int, int>, Node*>> ranges;
      arrow::Status st = OnNode(node, [&](redisContext* c) -> arrow::Status {
        ranges.clear();
        return RoundTrip(
            c, 0, 1,
            [&](size_t, Command* cmd) {
              cmd->Add("CLUSTER");
              cmd->Add("SLOTS");
            },
            [&](size_t, const redisReply& r) -> arrow::Status {
              if (r.type == REDIS_REPLY_ERROR) {
                std::string_view text = ReplyText(r);
                if (text.find("cluster support disabled") != std::string_view::npos) {
                  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError,
                                   node->url.Describe() +
                                       " is not a Redis Cluster node (cluster support is "
                                       "disabled there): remove 'cluster: true' from "
                                       "online_store in stratalake.yaml, or give the "
                                       "cluster's nodes");
                }
                return ReplyError(node->where, "reading the slot map (CLUSTER SLOTS)", r);
              }
              return ParseSlots(r, *node, &ranges);
            },
            "reading the slot map", node->where, /*pass_errors=*/true);
      });
      if (st.ok()) {
        std::unique_lock lock(map_mu_);
        std::fill(slots_.begin(), slots_.end(), nullptr);
        for (const auto& [range, n] : ranges) {
          for (int s = range.first; s <= range.second; ++s) slots_[s] = n;
        }
        return arrow::Status::OK();
      }
      if (HasErrorKind(st, ErrorKind::kDefinitionError)) return st;
      if (!errors.empty()) errors += "; ";
      errors += st.message();
    }
    if (!at_open) return arrow::Status::IOError("no node of ", describe_, " answered: ", errors);
    return arrow::Status::IOError("cannot reach any seed node of the Redis Cluster online store ",
                                  describe_, ": ", errors);
  }

  arrow::Status ParseSlots(const redisReply& r, const Node& asked,
                           std::vector<std::pair<std::pair<int, int>, Node*>>* ranges) {
    if (r.type != REDIS_REPLY_ARRAY) return Unexpected(asked.where, "CLUSTER SLOTS", r);
    for (size_t i = 0; i < r.elements; ++i) {
      const redisReply& e = *r.element[i];
      if (e.type != REDIS_REPLY_ARRAY || e.elements < 3 ||
          e.element[0]->type != REDIS_REPLY_INTEGER || e.element[1]->type != REDIS_REPLY_INTEGER ||
          e.element[2]->type != REDIS_REPLY_ARRAY || e.element[2]->elements < 2 ||
          e.element[2]->element[0]->type != REDIS_REPLY_STRING ||
          e.element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
        return Unexpected(asked.where, "CLUSTER SLOTS", e);
      }
      long long first = e.element[0]->integer, last = e.element[1]->integer;
      if (first < 0 || last >= kSlots || first > last) {
        return arrow::Status::IOError(asked.where, ": CLUSTER SLOTS gave the range ", first, "-",
                                      last);
      }
      std::string host(ReplyText(*e.element[2]->element[0]));
      // An empty or "?" host: the node does not know its address; it is the
      // one that answered when it speaks of itself.
      if (host.empty() || host == "?") host = asked.url.host;
      Node* n = GetNode(host, static_cast<int>(e.element[2]->element[1]->integer));
      ranges->push_back({{static_cast<int>(first), static_cast<int>(last)}, n});
    }
    return arrow::Status::OK();
  }

  // ---- running commands ----

  // Calls for items with slots `slots`: one per slot (items in their order),
  // split at `max_items` items or kBytesPerCall bytes (bytes(i)), ordered by slot.
  template <typename Bytes>
  static std::vector<Call> Group(const std::vector<int>& slots, size_t max_items, Bytes&& bytes) {
    std::vector<uint32_t> order(slots.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](uint32_t a, uint32_t b) { return slots[a] < slots[b]; });
    std::vector<Call> calls;
    size_t call_bytes = 0;
    for (uint32_t i : order) {
      size_t b = bytes(i);
      if (calls.empty() || calls.back().slot != slots[i] ||
          calls.back().items.size() >= max_items ||
          (call_bytes + b > kBytesPerCall && !calls.back().items.empty())) {
        uint32_t seq = !calls.empty() && calls.back().slot == slots[i] ? calls.back().seq + 1 : 0;
        calls.push_back(Call{});
        calls.back().slot = slots[i];
        calls.back().seq = seq;
        call_bytes = 0;
      }
      calls.back().items.push_back(i);
      call_bytes += b;
    }
    return calls;
  }

  // Sends `calls` to the nodes that serve their slots, following redirects,
  // and passes each reply to handle(call, reply, node) (a non-OK result fails
  // the call); fail(call, status) is told of every call that failed for good.
  // `ordered`: a call sent again makes every later call of its slot be sent
  // again after it. Returns an error only when nothing could be tried.
  template <typename Build, typename Handle, typename Fail>
  arrow::Status Execute(std::vector<Call> pending, bool ordered, std::string_view what,
                        Build&& build, Handle&& handle, Fail&& fail) {
    SigpipeGuard no_sigpipe;
    Command cmd;
    while (!pending.empty()) {
      if (stale_.exchange(false)) {
        arrow::Status st = Refresh();
        if (!st.ok()) stale_ = true;  // keep the map; try again next time
      }
      // Route: node -> calls, nodes in address order (see Take()).
      std::map<std::string, std::pair<Node*, std::vector<size_t>>> routes;
      {
        std::shared_lock lock(map_mu_);
        for (size_t i = 0; i < pending.size(); ++i) {
          Node* node = pending[i].ask != nullptr ? pending[i].ask : slots_[pending[i].slot];
          if (node == nullptr) {
            fail(pending[i],
                 arrow::Status::IOError("online store ", describe_, ": no node serves hash slot ",
                                        pending[i].slot,
                                        " (the cluster does not cover every slot; see `redis-cli "
                                        "--cluster check`)"));
            continue;
          }
          auto& route = routes[node->addr];
          route.first = node;
          route.second.push_back(i);
        }
      }
      std::vector<Call> next;
      std::vector<char> resent(pending.size(), 0);  // sent again in `next`
      std::vector<char> failed(pending.size(), 0);
      bool tryagain = false;
      auto again = [&](size_t i, Call call) {
        resent[i] = 1;
        next.push_back(std::move(call));
      };
      // A call that lost its connection: once more with a new connection and
      // a fresh slot map, then its keys fail with the node's error.
      auto lost = [&](size_t i, const arrow::Status& st) {
        if (pending[i].lost == 0) {
          Call call = pending[i];
          ++call.lost;
          call.ask = nullptr;
          stale_ = true;
          again(i, std::move(call));
        } else {
          failed[i] = 1;
          fail(pending[i], st);
        }
      };

      struct Open {
        Node* node;
        ContextPtr c;
        std::vector<size_t> calls;
        size_t sent = 0;  // calls[0, sent) sent
        size_t read = 0;  // calls[0, read) answered
        bool broken = false;
      };
      std::vector<Open> open;
      for (auto& [addr, route] : routes) {
        Open o{route.first, Take(route.first), std::move(route.second)};
        if (o.c == nullptr || o.c->err != 0) {
          o.c.reset();
          auto c = Connect(o.node->url, options_.connect_timeout_ms, o.node->where);
          if (!c.ok()) {
            for (size_t i : o.calls) lost(i, c.status());
            Give(o.node, nullptr);
            continue;
          }
          o.c = std::move(*c);
        }
        open.push_back(std::move(o));
      }
      // Waves: up to kCallsPerWave commands to every node, then every reply.
      bool more = true;
      while (more) {
        more = false;
        for (auto& o : open) {
          if (o.broken || o.sent == o.calls.size()) continue;
          size_t end = std::min(o.calls.size(), o.sent + kCallsPerWave);
          bool ok = true;
          for (size_t k = o.sent; k < end && ok; ++k) {
            const Call& call = pending[o.calls[k]];
            if (call.ask != nullptr) {
              const char* asking = "ASKING";
              size_t len = 6;
              ok = redisAppendCommandArgv(o.c.get(), 1, &asking, &len) == REDIS_OK;
            }
            cmd.Clear();
            build(call, &cmd);
            ok = ok && redisAppendCommandArgv(o.c.get(), static_cast<int>(cmd.argv.size()),
                                              cmd.argv.data(), cmd.lens.data()) == REDIS_OK;
          }
          int done = 0;
          while (ok && !done) ok = redisBufferWrite(o.c.get(), &done) == REDIS_OK;
          o.sent = end;
          if (!ok) {
            arrow::Status st = ConnectionLost(o.c.get(), what, o.node->where);
            for (size_t k = o.read; k < o.calls.size(); ++k) lost(o.calls[k], st);
            o.broken = true;
          }
        }
        for (auto& o : open) {
          if (o.broken) continue;
          for (; o.read < o.sent; ++o.read) {
            size_t i = o.calls[o.read];
            const Call& call = pending[i];
            ReplyPtr reply;
            bool ok = true;
            for (int part = call.ask != nullptr ? 0 : 1; part < 2 && ok; ++part) {
              void* raw = nullptr;
              ok = redisGetReply(o.c.get(), &raw) == REDIS_OK && raw != nullptr;
              reply.reset(static_cast<redisReply*>(raw));
            }
            if (!ok) {
              arrow::Status st = ConnectionLost(o.c.get(), what, o.node->where);
              for (size_t k = o.read; k < o.calls.size(); ++k) lost(o.calls[k], st);
              o.broken = true;
              break;
            }
            if (reply->type != REDIS_REPLY_ERROR) {
              arrow::Status st = handle(call, *reply, *o.node);
              if (!st.ok()) {
                failed[i] = 1;
                fail(call, st);
              }
              continue;
            }
            std::string_view text = ReplyText(*reply);
            bool moved = text.starts_with("MOVED "), ask = text.starts_with("ASK ");
            if (moved || ask) {
              // "MOVED <slot> <host>:<port>"
              size_t space = text.rfind(' ');
              Node* target = NodeAt(text.substr(space + 1));
              if (target == nullptr || call.redirects >= kMaxRedirects) {
                failed[i] = 1;
                fail(call, arrow::Status::IOError(o.node->where, ": ", what, ": ", text,
                                                  target == nullptr ? " (unreadable redirect)"
                                                                    : " (too many redirects)"));
                continue;
              }
              if (moved) {
                {
                  std::unique_lock lock(map_mu_);
                  slots_[call.slot] = target;
                }
                stale_ = true;
                Call c = call;
                ++c.redirects;
                c.ask = nullptr;
                again(i, std::move(c));
              } else {
                // One key per command, so none can be answered TRYAGAIN.
                resent[i] = 1;
                for (uint32_t item : call.items) {
                  Call c = call;
                  c.items = {item};
                  ++c.redirects;
                  c.ask = target;
                  next.push_back(std::move(c));
                }
              }
            } else if (text.starts_with("TRYAGAIN")) {
              // A multi-key command on a slot in migration: its keys one by one.
              tryagain = true;
              resent[i] = 1;
              for (uint32_t item : call.items) {
                Call c = call;
                c.items = {item};
                ++c.redirects;
                c.ask = nullptr;
                next.push_back(std::move(c));
              }
            } else if (text.starts_with("NOSCRIPT") && !call.eval) {
              Call c = call;
              c.eval = true;
              again(i, std::move(c));
            } else {
              failed[i] = 1;
              fail(call, arrow::Status::IOError(o.node->where, ": ", what, ": ", text));
            }
          }
          if (!o.broken && o.sent < o.calls.size()) more = true;
        }
      }
      for (auto& o : open) Give(o.node, std::move(o.c));

      if (ordered && !next.empty()) {
        // Every call of a slot after its first one sent again goes again too.
        std::map<int, uint32_t> first_again;
        for (const Call& c : next) {
          auto [it, inserted] = first_again.emplace(c.slot, c.seq);
          if (!inserted) it->second = std::min(it->second, c.seq);
        }
        for (size_t i = 0; i < pending.size(); ++i) {
          if (resent[i] || failed[i]) continue;
          auto it = first_again.find(pending[i].slot);
          if (it != first_again.end() && pending[i].seq > it->second) {
            next.push_back(pending[i]);
          }
        }
        std::stable_sort(next.begin(), next.end(), [](const Call& a, const Call& b) {
          return a.slot != b.slot ? a.slot < b.slot : a.seq < b.seq;
        });
      }
      pending = std::move(next);
      if (tryagain) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return arrow::Status::OK();
  }

  // fn(connection, node, keys) for each page of keys starting with
  // key_prefix + prefix on every primary (full keys, tag included).
  template <typename Fn>
  arrow::Status ForEachNodeScan(std::string_view prefix, Fn&& fn) {
    if (stale_.exchange(false)) ARROW_RETURN_NOT_OK(Refresh());
    std::vector<Node*> primaries;
    {
      std::shared_lock lock(map_mu_);
      std::set<Node*> seen;
      for (Node* n : slots_) {
        if (n != nullptr && seen.insert(n).second) primaries.push_back(n);
      }
    }
    std::string pattern = "{????????}" + GlobEscape(options_.key_prefix) + GlobEscape(prefix) + "*";
    std::string count = std::to_string(kScanCount);
    for (Node* node : primaries) {
      ARROW_RETURN_NOT_OK(OnNode(node, [&](redisContext* c) -> arrow::Status {
        std::string cursor = "0";
        std::vector<std::string> keys;
        do {
          std::string next = "0";
          keys.clear();
          ARROW_RETURN_NOT_OK(RoundTrip(
              c, 0, 1,
              [&](size_t, Command* cmd) {
                cmd->Add("SCAN");
                cmd->Add(cursor);
                cmd->Add("MATCH");
                cmd->Add(pattern);
                cmd->Add("COUNT");
                cmd->Add(count);
              },
              [&](size_t, const redisReply& r) -> arrow::Status {
                if (r.type != REDIS_REPLY_ARRAY || r.elements != 2 ||
                    r.element[0]->type != REDIS_REPLY_STRING ||
                    r.element[1]->type != REDIS_REPLY_ARRAY) {
                  return Unexpected(node->where, "SCAN", r);
                }
                next.assign(ReplyText(*r.element[0]));
                const redisReply& page = *r.element[1];
                for (size_t i = 0; i < page.elements; ++i) {
                  if (page.element[i]->type != REDIS_REPLY_STRING) {
                    return Unexpected(node->where, "SCAN", r);
                  }
                  keys.emplace_back(ReplyText(*page.element[i]));
                }
                return arrow::Status::OK();
              },
              "scanning", node->where));
          cursor = std::move(next);
          if (!keys.empty()) ARROW_RETURN_NOT_OK(fn(c, node, keys));
        } while (cursor != "0");
        return arrow::Status::OK();
      }));
    }
    return arrow::Status::OK();
  }

  // Calls fn(key without tag and key_prefix, value) for every string key
  // starting with `prefix`; a key may be reported twice.
  arrow::Status ForEachScanned(std::string_view prefix, const ScannedFn& fn) override {
    const std::string full_prefix = options_.key_prefix + std::string(prefix);
    return ForEachNodeScan(
        prefix,
        [&](redisContext* c, Node* node, const std::vector<std::string>& keys) -> arrow::Status {
          // One GET per key: a page's keys lie in many slots.
          return RoundTrip(
              c, 0, keys.size(),
              [&](size_t i, Command* cmd) {
                cmd->Add("GET");
                cmd->Add(keys[i]);
              },
              [&](size_t i, const redisReply& r) -> arrow::Status {
                // Gone or migrated since SCAN listed it, or not a string (not ours).
                if (r.type != REDIS_REPLY_STRING) {
                  if (r.type == REDIS_REPLY_NIL || IsRedirect(r)) return arrow::Status::OK();
                  if (r.type == REDIS_REPLY_ERROR && ReplyText(r).starts_with("WRONGTYPE")) {
                    return arrow::Status::OK();
                  }
                  if (r.type == REDIS_REPLY_ERROR) return ReplyError(node->where, "scanning", r);
                  return Unexpected(node->where, "GET", r);
                }
                std::string_view key(keys[i]);
                if (key.size() < kTagSize || key[0] != '{' || key[kTagSize - 1] != '}' ||
                    !key.substr(kTagSize).starts_with(full_prefix)) {
                  return arrow::Status::OK();
                }
                fn(key.substr(kTagSize + options_.key_prefix.size()), std::string(r.str, r.len));
                return arrow::Status::OK();
              },
              "scanning", node->where, /*pass_errors=*/true);
        });
  }

  const std::vector<RedisUrl> seeds_;
  const RedisOptions options_;
  std::string describe_;    // set by the constructor, then read-only
  std::string script_sha_;  // set by Open, then read-only

  std::mutex nodes_mu_;
  std::map<std::string, std::unique_ptr<Node>> nodes_;  // guarded by nodes_mu_, by address

  std::shared_mutex map_mu_;
  std::vector<Node*> slots_;        // guarded by map_mu_: the primary of each slot (nullptr: none)
  std::atomic<bool> stale_{false};  // a reply said the map is out of date
};

}  // namespace

arrow::Result<std::unique_ptr<OnlineStore>> OpenRedisClusterStore(const std::string& seeds,
                                                                  const RedisOptions& options) {
  return ClusterStore::Open(seeds, options);
}

}  // namespace stratalake::online
