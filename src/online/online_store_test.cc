// OnlineStore contract tests, run against every backend: RocksDB (a folder in a
// temp folder), Redis (the server named by STRATALAKE_TEST_REDIS_URL, each
// test under its own key_prefix; skipped when unset unless
// STRATALAKE_REQUIRE_REDIS=1) and Redis Cluster (the seed nodes in
// STRATALAKE_TEST_REDIS_CLUSTER, the cluster's folder in
// STRATALAKE_TEST_REDIS_CLUSTER_DIR; skipped when unset unless
// STRATALAKE_REQUIRE_REDIS_CLUSTER=1). scripts/run_tests.sh starts a server with
// scripts/redis.sh and a cluster of 3 primaries with scripts/redis_cluster.sh,
// and sets them all.
#include "stratalake/online.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <latch>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "../../tests/test_util.h"
#include "stratalake/status.h"

namespace stratalake::online {
namespace {

using stratalake::testing::TempDir;

using KVs = std::vector<KeyValue>;

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

std::string Prefix(int64_t event_us, std::optional<int64_t> created_us) {
  std::string out;
  AppendVersionPrefix(event_us, created_us, &out);
  return out;
}

std::string Value(int64_t event_us, std::optional<int64_t> created_us, std::string_view payload) {
  return Prefix(event_us, created_us) + std::string(payload);
}

// Printable bytes: letters and digits as they are, everything else as \xHH.
std::string Printable(std::string_view bytes) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
        c == ':') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::vector<std::string> Rows(const std::vector<KeyValue>& kvs) {
  std::vector<std::string> out;
  out.reserve(kvs.size());
  for (const auto& kv : kvs) out.push_back(Printable(kv.key) + "=" + Printable(kv.value));
  return out;
}

std::vector<std::string> Rows(const std::map<std::string, std::string>& model,
                              std::string_view prefix = "") {
  std::vector<std::string> out;
  for (auto it = model.lower_bound(std::string(prefix));
       it != model.end() && it->first.starts_with(prefix); ++it) {
    out.push_back(Printable(it->first) + "=" + Printable(it->second));
  }
  return out;
}

std::string RandomHex() {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd());
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

bool RequireRedis() {
  const char* v = std::getenv("STRATALAKE_REQUIRE_REDIS");
  return v && std::string(v) == "1";
}

bool RequireRedisCluster() {
  const char* v = std::getenv("STRATALAKE_REQUIRE_REDIS_CLUSTER");
  return v && std::string(v) == "1";
}

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  size_t begin = 0;
  while (true) {
    size_t comma = s.find(',', begin);
    out.push_back(s.substr(begin, comma - begin));
    if (comma == std::string::npos) return out;
    begin = comma + 1;
  }
}

// The key the cluster store keeps for `key` (docs/online-store.md): "{TAG}" +
// prefix + key, TAG = 8 hex digits of FNV-1a 32 over the bytes after the first 0x00.
std::string ClusterKey(const std::string& prefix, const std::string& key) {
  size_t zero = key.find('\0');
  std::string entity = zero == std::string::npos ? key : key.substr(zero + 1);
  uint32_t h = 2166136261u;
  for (unsigned char c : entity) {
    h ^= c;
    h *= 16777619u;
  }
  char tag[16];
  std::snprintf(tag, sizeof(tag), "{%08x}", h);
  return tag + prefix + key;
}

// ---- a raw connection for what the store does not offer (cleanup, killing
// connections, flushing scripts) ----

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

class RedisAdmin {
 public:
  // `url`: redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N],
  // as the tests' server is given.
  explicit RedisAdmin(const std::string& url) {
    timeval tv{5, 0};
    db_ = "0";
    if (url.starts_with("unix://")) {
      std::string path = url.substr(7, url.find('?') - 7);
      if (size_t db = url.find("db="); db != std::string::npos) db_ = url.substr(db + 3);
      c_ = redisConnectUnixWithTimeout(path.c_str(), tv);
    } else {
      std::string rest = url.substr(url.find("://") + 3);
      std::string user, password;
      if (size_t at = rest.rfind('@'); at != std::string::npos) {
        size_t colon = rest.find(':');
        user = PercentDecoded(rest.substr(0, colon));
        password = PercentDecoded(rest.substr(colon + 1, at - colon - 1));
        rest = rest.substr(at + 1);
      }
      size_t slash = rest.find('/');
      std::string hostport = rest.substr(0, slash);
      if (slash != std::string::npos && slash + 1 < rest.size()) db_ = rest.substr(slash + 1);
      size_t colon = hostport.rfind(':');
      bool has_port = colon != std::string::npos && hostport.back() != ']';
      std::string host = has_port ? hostport.substr(0, colon) : hostport;
      int port = has_port ? std::stoi(hostport.substr(colon + 1)) : 6379;
      if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
      c_ = redisConnectWithTimeout(host.c_str(), port, tv);
      if (ok() && !password.empty()) {
        ReplyPtr auth = Run(user.empty() ? std::vector<std::string>{"AUTH", password}
                                         : std::vector<std::string>{"AUTH", user, password});
        if (auth == nullptr || auth->type == REDIS_REPLY_ERROR) auth_error_ = "AUTH failed";
      }
    }
    if (ok()) Run({"SELECT", db_});
  }
  ~RedisAdmin() {
    if (c_ != nullptr) redisFree(c_);
  }
  RedisAdmin(const RedisAdmin&) = delete;
  RedisAdmin& operator=(const RedisAdmin&) = delete;

  bool ok() const { return c_ != nullptr && c_->err == 0 && auth_error_.empty(); }
  std::string error() const {
    return c_ == nullptr ? "out of memory" : c_->err != 0 ? c_->errstr : auth_error_;
  }

  ReplyPtr Run(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    return ReplyPtr(static_cast<redisReply*>(
        redisCommandArgv(c_, static_cast<int>(argv.size()), argv.data(), lens.data())));
  }

  // Deletes every key matching `pattern` in `db` (a cluster node: db 0, one
  // key per UNLINK, as a page's keys lie in many slots).
  void DeleteKeys(const std::string& pattern, const std::string& db, bool cluster = false) {
    if (cluster) {
      for (const auto& key : Keys(pattern)) Run({"UNLINK", key});
    } else {
      Run({"SELECT", db});
      std::string cursor = "0";
      do {
        ReplyPtr page = Run({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
        if (page == nullptr || page->type != REDIS_REPLY_ARRAY) break;
        cursor.assign(page->element[0]->str, page->element[0]->len);
        std::vector<std::string> unlink = {"UNLINK"};
        const redisReply* keys = page->element[1];
        for (size_t i = 0; i < keys->elements; ++i) {
          unlink.emplace_back(keys->element[i]->str, keys->element[i]->len);
        }
        if (unlink.size() > 1) Run(unlink);
      } while (cursor != "0");
      Run({"SELECT", db_});
    }
  }

  // Every key matching `pattern` (this server's database).
  std::vector<std::string> Keys(const std::string& pattern) {
    std::vector<std::string> out;
    std::string cursor = "0";
    do {
      ReplyPtr page = Run({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
      if (page == nullptr || page->type != REDIS_REPLY_ARRAY) break;
      cursor.assign(page->element[0]->str, page->element[0]->len);
      const redisReply* keys = page->element[1];
      for (size_t i = 0; i < keys->elements; ++i) {
        out.emplace_back(keys->element[i]->str, keys->element[i]->len);
      }
    } while (cursor != "0");
    return out;
  }

  // A reply's text (status, string, error) or its integer, "" for anything else.
  std::string Text(const std::vector<std::string>& args) {
    ReplyPtr r = Run(args);
    if (r == nullptr) return "";
    if (r->type == REDIS_REPLY_INTEGER) return std::to_string(r->integer);
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
        r->type == REDIS_REPLY_ERROR) {
      return std::string(r->str, r->len);
    }
    return "";
  }

  // Closes every connection this process's stores opened (they are named
  // "stratalake-<pid>"); returns how many.
  int KillOurConnections() {
    ReplyPtr list = Run({"CLIENT", "LIST"});
    if (list == nullptr || list->type != REDIS_REPLY_STRING) return -1;
    std::string text(list->str, list->len);
    std::string name = "name=stratalake-" + std::to_string(::getpid()) + " ";
    int killed = 0;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      std::string line = text.substr(pos, end - pos);
      pos = end + 1;
      if (line.find(name) == std::string::npos) continue;
      std::string id = line.substr(3, line.find(' ') - 3);  // "id=N ..."
      ReplyPtr r = Run({"CLIENT", "KILL", "ID", id});
      if (r != nullptr && r->type == REDIS_REPLY_INTEGER) killed += static_cast<int>(r->integer);
    }
    return killed;
  }

  const std::string& db() const { return db_; }

 private:
  static std::string PercentDecoded(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%' && i + 2 < s.size()) {
        out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
        i += 2;
      } else {
        out.push_back(s[i]);
      }
    }
    return out;
  }

  redisContext* c_ = nullptr;
  std::string db_;
  std::string auth_error_;
};

// ---- the contract, on both backends ----

enum class Backend { kRocksDb, kRedis, kRedisCluster };

const char* BackendName(Backend backend) {
  switch (backend) {
    case Backend::kRocksDb:
      return "RocksDB";
    case Backend::kRedis:
      return "Redis";
    case Backend::kRedisCluster:
      return "RedisCluster";
  }
  return "?";
}

void PrintTo(Backend backend, std::ostream* os) { *os << BackendName(backend); }

std::string ParamName(const ::testing::TestParamInfo<Backend>& info) {
  return BackendName(info.param);
}

class OnlineStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kRocksDb) {
      path_ = dir_.Join("online");
      return;
    }
    key_prefix_ = "sl_test_" + RandomHex() + ":";
    if (GetParam() == Backend::kRedisCluster) {
      const char* seeds = std::getenv("STRATALAKE_TEST_REDIS_CLUSTER");
      if (seeds == nullptr || *seeds == '\0') {
        if (RequireRedisCluster()) {
          FAIL() << "STRATALAKE_REQUIRE_REDIS_CLUSTER=1 but STRATALAKE_TEST_REDIS_CLUSTER is "
                    "not set";
        }
        GTEST_SKIP() << "Redis Cluster tests need STRATALAKE_TEST_REDIS_CLUSTER (seed URLs; "
                        "`scripts/redis_cluster.sh start DIR` starts a cluster and prints them)";
      }
      url_ = seeds;
      for (const auto& seed : SplitCommas(url_)) {
        admins_.push_back(std::make_unique<RedisAdmin>(seed));
        ASSERT_TRUE(admins_.back()->ok())
            << "cannot connect to " << seed << ": " << admins_.back()->error();
      }
      return;
    }
    const char* url = std::getenv("STRATALAKE_TEST_REDIS_URL");
    if (url == nullptr || *url == '\0') {
      if (RequireRedis()) {
        FAIL() << "STRATALAKE_REQUIRE_REDIS=1 but STRATALAKE_TEST_REDIS_URL is not set";
      }
      GTEST_SKIP() << "Redis tests need STRATALAKE_TEST_REDIS_URL (a server's URL; "
                      "`scripts/redis.sh start DIR` starts one and prints it)";
    }
    url_ = url;
    // Every test under its own prefix (above), so tests (and test processes)
    // sharing the server do not see each other's keys.
    admin_ = std::make_unique<RedisAdmin>(url_);
    ASSERT_TRUE(admin_->ok()) << "cannot connect to " << url_ << ": " << admin_->error();
    admins_.push_back(std::make_unique<RedisAdmin>(url_));
  }

  void TearDown() override {
    if (GetParam() == Backend::kRedisCluster) {
      for (auto& admin : admins_) {
        if (admin->ok()) admin->DeleteKeys("{????????}" + key_prefix_ + "*", "0", true);
      }
      return;
    }
    if (admin_ != nullptr && admin_->ok()) {
      admin_->DeleteKeys(key_prefix_ + "*", admin_->db());
      for (const auto& db : other_dbs_) admin_->DeleteKeys(key_prefix_ + "*", db);
    }
  }

  arrow::Result<std::unique_ptr<OnlineStore>> Open(int pool_size = 4) {
    if (GetParam() == Backend::kRocksDb) return OpenRocksDbStore(path_);
    RedisOptions options;
    options.pool_size = pool_size;
    options.key_prefix = key_prefix_;
    options.cluster = GetParam() == Backend::kRedisCluster;
    return OpenRedisStore(url_, options);
  }

  // Closes this process's connections on every server (the cluster's nodes).
  int KillOurConnections() {
    int killed = 0;
    for (auto& admin : admins_) killed += admin->KillOurConnections();
    return killed;
  }

  TempDir dir_;
  std::string path_;  // RocksDB
  std::string url_;   // Redis
  std::string key_prefix_;
  std::unique_ptr<RedisAdmin> admin_;  // Redis
  // Redis: a second connection to the server; Redis Cluster: one per primary.
  std::vector<std::unique_ptr<RedisAdmin>> admins_;
  std::vector<std::string> other_dbs_;  // Redis databases besides the URL's that tests used
};

arrow::Status Get(OnlineStore* store, const std::vector<std::string>& keys,
                  std::vector<std::optional<std::string>>* values) {
  std::vector<std::string_view> views(keys.begin(), keys.end());
  return store->MultiGet(views, values);
}

TEST_P(OnlineStoreTest, NewerWinsAndEqualPrefixesTakeTheLaterWrite) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  const std::string key("user\0\x01", 6);
  ASSERT_OK(store->Write(KVs{{key, Value(10, 5, "a")}}, {}));
  ASSERT_OK(store->Write(KVs{{key, Value(9, 99, "older event")}}, {}));
  ASSERT_OK(store->Write(KVs{{key, Value(10, 4, "older created")}}, {}));
  ASSERT_OK(store->Write(KVs{{key, Value(10, std::nullopt, "null created")}}, {}));
  std::vector<std::optional<std::string>> values;
  ASSERT_OK(Get(store.get(), {key}, &values));
  EXPECT_EQ(values, (std::vector<std::optional<std::string>>{Value(10, 5, "a")}));

  ASSERT_OK(store->Write(KVs{{key, Value(10, 5, "same prefix, later")}}, {}));
  ASSERT_OK(store->Write(KVs{{key, Value(10, 6, "newer created")}}, {}));
  // Within one batch the later of two equal prefixes wins, too.
  ASSERT_OK(store->Write(
      KVs{{key, Value(11, 0, "x")}, {key, Value(11, 0, "y")}, {key, Value(10, 7, "z")}}, {}));
  ASSERT_OK(Get(store.get(), {key}, &values));
  EXPECT_EQ(values, (std::vector<std::optional<std::string>>{Value(11, 0, "y")}));

  // A value that is just the prefix is fine.
  ASSERT_OK(store->Write(KVs{{key, Prefix(12, 0)}}, {}));
  ASSERT_OK(Get(store.get(), {key}, &values));
  EXPECT_EQ(values, (std::vector<std::optional<std::string>>{Prefix(12, 0)}));
  EXPECT_EQ(PrefixEventMicros(*values[0]), 12);
}

TEST_P(OnlineStoreTest, ValueShorterThanThePrefixIsRejectedAndNothingIsWritten) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  for (const std::string& short_value :
       {std::string(), std::string(1, '\xff'), std::string(kVersionPrefixSize - 1, '\xff')}) {
    std::vector<KeyValue> writes = {
        {"a", Value(1, 1, "first")}, {"b", short_value}, {"c", Value(1, 1, "third")}};
    arrow::Status st = store->Write(writes, {});
    EXPECT_TRUE(st.IsInvalid()) << short_value.size() << " bytes: " << st.ToString();
    std::vector<std::optional<std::string>> values;
    ASSERT_OK(Get(store.get(), {"a", "b", "c"}, &values));
    EXPECT_EQ(values, (std::vector<std::optional<std::string>>(3))) << short_value.size();
  }
  ASSERT_OK_AND_ASSIGN(auto all, store->Scan(""));
  EXPECT_TRUE(all.empty()) << ::testing::PrintToString(Rows(all));
  ASSERT_OK(store->Write({}, {}));  // an empty batch is fine
}

TEST_P(OnlineStoreTest, KeysAndValuesAreBinarySafe) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  std::vector<KeyValue> writes = {
      {std::string("\0", 1), Value(1, 1, std::string("\0\0", 2))},
      {std::string("\0\0", 2), Value(1, 1, "\xff")},
      {std::string("v\0", 2), Value(kMin, std::nullopt, std::string("\r\n\0$", 4))},
      {std::string("v\0*", 3), Value(kMax, kMax, "*")},
      {"v\\[a]?", Value(-1, -1, "glob")},
      {"\xff\xfe", Value(0, 0, "")},
      {"", Value(2, 2, "empty key")},
  };
  ASSERT_OK(store->Write(writes, {}));
  std::vector<std::string> keys;
  for (const auto& kv : writes) keys.push_back(kv.key);
  keys.push_back(std::string("v\0\0", 3));  // missing
  std::vector<std::optional<std::string>> values;
  ASSERT_OK(Get(store.get(), keys, &values));
  ASSERT_EQ(values.size(), keys.size());
  for (size_t i = 0; i < writes.size(); ++i) {
    EXPECT_EQ(values[i], writes[i].value) << Printable(keys[i]);
  }
  EXPECT_EQ(values.back(), std::nullopt);

  std::map<std::string, std::string> model;
  for (const auto& kv : writes) model[kv.key] = kv.value;
  ASSERT_OK_AND_ASSIGN(auto all, store->Scan(""));
  EXPECT_EQ(Rows(all), Rows(model));
  ASSERT_OK_AND_ASSIGN(auto v0, store->Scan(std::string("v\0", 2)));
  EXPECT_EQ(Rows(v0), Rows(model, std::string("v\0", 2)));
  ASSERT_EQ(v0.size(), 2u);
  // Glob characters in a prefix are literal.
  ASSERT_OK_AND_ASSIGN(auto glob, store->Scan("v\\["));
  EXPECT_EQ(Rows(glob), Rows(model, "v\\["));
  ASSERT_OK_AND_ASSIGN(auto star, store->Scan(std::string("v\0*", 3)));
  EXPECT_EQ(star.size(), 1u);
  ASSERT_OK_AND_ASSIGN(auto none, store->Scan("*"));
  EXPECT_TRUE(none.empty()) << ::testing::PrintToString(Rows(none));
}

TEST_P(OnlineStoreTest, DeletePrefixRemovesOnlyKeysWithThePrefix) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  std::map<std::string, std::string> model;
  std::vector<KeyValue> writes;
  for (const std::string& view : {std::string("a"), std::string("a*"), std::string("ab"),
                                  std::string("a?"), std::string("a\\")}) {
    for (int i = 0; i < 3; ++i) {
      std::string key = view + std::string(1, '\0') + std::to_string(i);
      writes.push_back({key, Value(i, i, view)});
      model[key] = writes.back().value;
    }
  }
  ASSERT_OK(store->Write(writes, {}));
  for (const std::string& prefix :
       {std::string("a*"), std::string("a?\0", 3), std::string("a\\"), std::string("a\0", 2)}) {
    ASSERT_OK(store->DeletePrefix(prefix));
    std::erase_if(model, [&](const auto& kv) { return kv.first.starts_with(prefix); });
    ASSERT_OK_AND_ASSIGN(auto all, store->Scan(""));
    EXPECT_EQ(Rows(all), Rows(model)) << "after deleting " << Printable(prefix);
  }
  ASSERT_EQ(model.size(), 3u);  // "ab\0..." is left
  ASSERT_OK(store->DeletePrefix("nothing here"));
  // An empty prefix would delete everything (in Redis, every key of a shared
  // database when key_prefix is empty); both backends refuse it.
  EXPECT_TRUE(store->DeletePrefix("").IsInvalid());
  ASSERT_OK_AND_ASSIGN(auto all, store->Scan(""));
  EXPECT_EQ(all.size(), 3u);
}

TEST_P(OnlineStoreTest, ScanVersionsReportsEveryKeyOfThePrefixOnce) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  std::map<std::string, std::string> want;  // key -> version prefix
  std::vector<KeyValue> writes;
  // Enough keys for several SCAN pages on Redis; glob characters in the prefix.
  for (int i = 0; i < 2500; ++i) {
    std::string key = std::string("v*[1]\0", 6) + std::to_string(i);
    writes.push_back({key, Value(i, i % 3 ? std::optional<int64_t>(i) : std::nullopt, "x")});
    want[key] = writes.back().value.substr(0, kVersionPrefixSize);
  }
  writes.push_back({std::string("v*[1]", 5), Value(1, 1, "the bare prefix: not after it")});
  want[writes.back().key] = writes.back().value.substr(0, kVersionPrefixSize);
  writes.push_back({std::string("v*[2]\0", 6) + "1", Value(1, 1, "another view")});
  writes.push_back({std::string("v\0", 2) + "1", Value(1, 1, "another view")});
  ASSERT_OK(store->Write(writes, {}));
  std::map<std::string, std::string> got;
  ASSERT_OK(store->ScanVersions("v*[1]", [&](std::string_view key, std::string_view version) {
    got[std::string(key)] = std::string(version);  // Redis may repeat a key: same entry
  }));
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want);
  size_t none = 0;
  ASSERT_OK(store->ScanVersions("nothing", [&](std::string_view, std::string_view) { ++none; }));
  EXPECT_EQ(none, 0u);
}

TEST_P(OnlineStoreTest, LargeBatchesRoundTrip) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  // More keys than one script call / MGET takes, and more calls than one
  // pipelined round trip; a few values over the byte cap of one call.
  constexpr int kKeys = 20000;
  std::vector<KeyValue> writes;
  std::vector<std::string> keys;
  for (int i = 0; i < kKeys; ++i) {
    std::string key = std::string("big\0", 4) + std::to_string(i);
    std::string payload = i % 5000 == 7 ? std::string(700 << 10, static_cast<char>(i)) : key;
    writes.push_back({key, Value(i, std::nullopt, payload)});
    keys.push_back(key);
    if (i % 3 == 0) keys.push_back(std::string("big\0", 4) + "missing" + std::to_string(i));
  }
  ASSERT_OK(store->Write(writes, {}));
  std::vector<std::optional<std::string>> values;
  ASSERT_OK(Get(store.get(), keys, &values));
  ASSERT_EQ(values.size(), keys.size());
  size_t w = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].find("missing") != std::string::npos) {
      EXPECT_EQ(values[i], std::nullopt) << i;
    } else {
      ASSERT_EQ(values[i], writes[w].value) << i;
      ++w;
    }
  }
  ASSERT_OK_AND_ASSIGN(auto all, store->Scan(std::string("big\0", 4)));
  ASSERT_EQ(all.size(), static_cast<size_t>(kKeys));
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(),
                             [](const KeyValue& a, const KeyValue& b) { return a.key < b.key; }));
  ASSERT_OK(store->DeletePrefix("big"));
  ASSERT_OK_AND_ASSIGN(auto after, store->Scan(""));
  EXPECT_TRUE(after.empty()) << after.size() << " keys left";
}

// Random writes, reads, deletes and scans against a std::map that applies the
// same rule.
TEST_P(OnlineStoreTest, LargeBatchesWithRepeatedKeysKeepWhatMergingInOrderWould) {
  // Batches big enough to be written in key order, one write per key (RocksDB):
  // the result must be what applying every write in batch order gives.
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  constexpr uint64_t kSeed = 20261207;
  SCOPED_TRACE("seed " + std::to_string(kSeed));
  std::mt19937_64 rng(kSeed);
  std::map<std::string, std::string> model;
  for (int round = 0; round < 5; ++round) {
    KVs batch;
    for (int i = 0; i < 300; ++i) {
      std::string key = "k" + std::to_string(rng() % 17);
      // Few distinct versions, so that ties (the later wins) are common.
      int64_t event = static_cast<int64_t>(rng() % 4);
      std::optional<int64_t> created;
      if (rng() % 2) created = static_cast<int64_t>(rng() % 2);
      std::string value =
          Value(event, created, "r" + std::to_string(round) + "i" + std::to_string(i));
      auto it = model.find(key);
      if (it == model.end() ||
          std::memcmp(value.data(), it->second.data(), kVersionPrefixSize) >= 0) {
        model[key] = value;
      }
      batch.push_back({key, value});
    }
    ASSERT_OK(store->Write(batch, {}));
    std::vector<std::string> keys;
    std::vector<std::optional<std::string>> want;
    for (const auto& [k, v] : model) {
      keys.push_back(k);
      want.push_back(v);
    }
    std::vector<std::optional<std::string>> values;
    ASSERT_OK(Get(store.get(), keys, &values));
    ASSERT_EQ(values, want) << "round " << round;
  }
}

TEST_P(OnlineStoreTest, RandomOperationsMatchAModel) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  constexpr uint64_t kSeed = 20261121;
  SCOPED_TRACE("seed " + std::to_string(kSeed));
  std::mt19937_64 rng(kSeed);
  auto below = [&](size_t n) { return static_cast<size_t>(rng() % n); };

  // Keys from a small pool, so writes collide: views that share prefixes and
  // glob characters, join keys with 0x00 and 0xff bytes, empty join keys.
  const std::string alphabet(
      "\0\x01"
      "ab*?[]\\\xff",
      10);
  std::vector<std::string> pool = {""};
  for (const std::string& view : {std::string("v"), std::string("v1"), std::string("v*"),
                                  std::string("w[1]"), std::string("\\")}) {
    pool.push_back(view + std::string(1, '\0'));  // the empty join key
    for (int i = 0; i < 40; ++i) {
      std::string key = view + std::string(1, '\0');
      for (size_t n = below(5); n > 0; --n) key.push_back(alphabet[below(alphabet.size())]);
      pool.push_back(key);
    }
  }
  auto random_key = [&] {
    if (below(10) == 0) {  // a key nobody writes (most likely)
      std::string key;
      for (size_t n = below(8); n > 0; --n) key.push_back(alphabet[below(alphabet.size())]);
      return key;
    }
    return pool[below(pool.size())];
  };
  // Few distinct times, so equal prefixes are common.
  const std::vector<int64_t> times = {kMin, -1000, -1, 0, 1, 2, 1000, kMax};
  auto random_value = [&](int op) {
    int64_t event = times[below(times.size())];
    std::optional<int64_t> created;
    if (below(3) != 0) created = times[below(times.size())];
    std::string payload = std::to_string(op);
    for (size_t n = below(4); n > 0; --n) payload.push_back(alphabet[below(alphabet.size())]);
    return Value(event, created, payload);
  };
  auto random_prefix = [&] {
    std::string key = pool[1 + below(pool.size() - 1)];
    return key.substr(0, 1 + below(key.size()));  // never empty
  };

  std::map<std::string, std::string> model;
  constexpr int kOps = 4000;
  for (int op = 0; op < kOps; ++op) {
    SCOPED_TRACE("op " + std::to_string(op));
    size_t kind = below(100);
    if (kind < 50) {
      std::vector<KeyValue> writes(1 + below(30));
      for (auto& kv : writes) kv = {random_key(), random_value(op)};
      bool bulk = below(20) == 0;  // Sync() may flush to disk: keep it rare
      ASSERT_OK(store->Write(writes, WriteOptions{bulk}));
      if (bulk) ASSERT_OK(store->Sync());
      for (const auto& kv : writes) {
        auto it = model.find(kv.key);
        if (it == model.end() ||
            kv.value.compare(0, kVersionPrefixSize, it->second, 0, kVersionPrefixSize) >= 0) {
          model[kv.key] = kv.value;
        }
      }
    } else if (kind < 90) {
      std::vector<std::string> keys(below(40));
      for (auto& k : keys) k = random_key();
      std::vector<std::optional<std::string>> values;
      ASSERT_OK(Get(store.get(), keys, &values));
      ASSERT_EQ(values.size(), keys.size());
      for (size_t i = 0; i < keys.size(); ++i) {
        auto it = model.find(keys[i]);
        std::optional<std::string> expected;
        if (it != model.end()) expected = it->second;
        ASSERT_EQ(values[i], expected) << "key " << Printable(keys[i]);
      }
    } else if (kind < 95) {
      std::string prefix = random_prefix();
      SCOPED_TRACE("delete " + Printable(prefix));
      ASSERT_OK(store->DeletePrefix(prefix));
      std::erase_if(model, [&](const auto& kv) { return kv.first.starts_with(prefix); });
    } else {
      std::string prefix = below(3) == 0 ? "" : random_prefix();
      ASSERT_OK_AND_ASSIGN(auto found, store->Scan(prefix));
      ASSERT_EQ(Rows(found), Rows(model, prefix)) << "prefix " << Printable(prefix);
    }
  }
  ASSERT_OK_AND_ASSIGN(auto all, store->Scan(""));
  EXPECT_EQ(Rows(all), Rows(model));
  EXPECT_GT(model.size(), 20u);  // the test exercised something
}

// Bulk loads large enough to take the store's bulk path (RocksDB: sorted,
// de-duplicated SST files), with keys that collide, share long prefixes, are
// prefixes of each other or differ only far in, and tied version prefixes.
TEST_P(OnlineStoreTest, BulkLoadsMatchAModel) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  std::mt19937_64 rng(7);
  auto below = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  std::vector<std::string> pool;
  for (int i = 0; i < 3000; ++i) {
    std::string key = std::string("view\0", 5);
    switch (i % 4) {
      case 0:  // an 8-byte integer key
        for (int b = 7; b >= 0; --b) {
          key.push_back(static_cast<char>((static_cast<uint64_t>(i) >> (8 * b)) & 0xff));
        }
        break;
      case 1:  // short keys, some prefixes of others, zero bytes
        key += std::string(static_cast<size_t>(i % 7), '\0') + std::to_string(i % 50);
        break;
      case 2:  // long keys that differ only after 20 bytes
        key += std::string(24, 'k') + std::to_string(i);
        break;
      default:  // 0xff bytes
        key += std::string(static_cast<size_t>(1 + i % 3), '\xff') + std::to_string(i % 30);
    }
    pool.push_back(key);
  }
  const std::vector<int64_t> times = {-5, 0, 1, 2};
  std::map<std::string, std::string> model;
  for (int round = 0; round < 3; ++round) {
    std::vector<KeyValue> writes(6000);
    for (size_t i = 0; i < writes.size(); ++i) {
      std::optional<int64_t> created;
      if (below(2)) created = times[below(times.size())];
      writes[i] = {pool[below(pool.size())],
                   Value(times[below(times.size())], created,
                         std::to_string(round) + "/" + std::to_string(i))};
    }
    ASSERT_OK(store->Write(writes, WriteOptions{/*bulk=*/true}));
    ASSERT_OK(store->Sync());
    for (const auto& kv : writes) {  // newer wins; on equal prefixes the later write
      auto it = model.find(kv.key);
      if (it == model.end() ||
          kv.value.compare(0, kVersionPrefixSize, it->second, 0, kVersionPrefixSize) >= 0) {
        model[kv.key] = kv.value;
      }
    }
    ASSERT_OK_AND_ASSIGN(auto all, store->Scan(""));
    ASSERT_EQ(Rows(all), Rows(model)) << "round " << round;
  }
}

// A bulk load into a key range where nothing is stored yet (written as plain
// values by the RocksDB store) still follows the newer-wins rule against every
// later write, bulk or not, and against writes racing with it.
TEST_P(OnlineStoreTest, BulkLoadsIntoEmptyRangesStillFollowNewerWins) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  auto key = [](char range, int i) {
    return std::string(1, range) + std::string("\0", 1) + std::to_string(10000 + i);
  };
  constexpr int kKeys = 5000;  // above the store's bulk-load threshold
  std::map<std::string, std::string> model;
  auto load = [&](char range, int64_t event, const std::string& tag) {
    std::vector<KeyValue> writes;
    for (int i = 0; i < kKeys; ++i) writes.push_back({key(range, i), Value(event, 0, tag)});
    return writes;
  };
  auto apply = [&](const std::vector<KeyValue>& writes) {
    for (const auto& kv : writes) {
      auto it = model.find(kv.key);
      if (it == model.end() ||
          kv.value.compare(0, kVersionPrefixSize, it->second, 0, kVersionPrefixSize) >= 0) {
        model[kv.key] = kv.value;
      }
    }
  };
  // Range a: the first load, then older and newer single writes and an
  // overlapping bulk load whose versions interleave with the stored ones.
  auto first = load('a', 5, "first");
  ASSERT_OK(store->Write(first, WriteOptions{/*bulk=*/true}));
  apply(first);
  KVs singles = {{key('a', 1), Value(3, 0, "older")}, {key('a', 2), Value(7, 0, "newer")}};
  ASSERT_OK(store->Write(singles, {}));
  apply(singles);
  std::vector<KeyValue> mixed;
  for (int i = 0; i < kKeys; ++i) mixed.push_back({key('a', i), Value(i % 2 ? 4 : 6, 0, "mixed")});
  ASSERT_OK(store->Write(mixed, WriteOptions{/*bulk=*/true}));
  apply(mixed);
  // Range b: a bulk load racing with small writes to the same keys.
  std::vector<KeyValue> racing;
  std::thread writer([&] {
    for (int i = 0; i < kKeys; i += 7) {
      KVs one = {{key('b', i), Value(i % 3 == 0 ? 9 : 1, 0, "racer")}};
      if (!store->Write(one, {}).ok()) return;
      racing.push_back(one[0]);
    }
  });
  auto second = load('b', 5, "second");
  ASSERT_OK(store->Write(second, WriteOptions{/*bulk=*/true}));
  writer.join();
  apply(second);
  apply(racing);
  ASSERT_OK(store->Sync());
  ASSERT_OK_AND_ASSIGN(auto all, store->Scan(""));
  EXPECT_EQ(Rows(all), Rows(model));
  std::vector<std::string> keys = {key('a', 1), key('a', 2), key('a', 3), key('a', 4),
                                   key('b', 0), key('b', 7), key('b', 8)};
  std::vector<std::optional<std::string>> values;
  ASSERT_OK(Get(store.get(), keys, &values));
  for (size_t k = 0; k < keys.size(); ++k) EXPECT_EQ(values[k], model[keys[k]]) << keys[k];
  EXPECT_EQ(values[0], Value(5, 0, "first"));   // 5 beat the single 3 and the mixed 4
  EXPECT_EQ(values[1], Value(7, 0, "newer"));   // 7 beat the first 5 and the mixed 6
  EXPECT_EQ(values[2], Value(5, 0, "first"));   // 5 beat the mixed 4
  EXPECT_EQ(values[3], Value(6, 0, "mixed"));   // the mixed 6 beat the first 5
  EXPECT_EQ(values[4], Value(9, 0, "racer"));   // the racing write's 9 beat the load's 5
  EXPECT_EQ(values[5], Value(5, 0, "second"));  // the load's 5 beat the racing write's 1
}

TEST_P(OnlineStoreTest, RepairsReplaceOnlyValuesNoNewerThanTheirBound) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  // The deleted rows' newest prefix is (10, 5).
  const std::string bound = Prefix(10, 5);
  KVs stored = {{"deleted winner", Value(10, 5, "deleted")},
                {"older than bound", Value(9, 0, "stale")},
                {"pushed since", Value(10, 6, "newer push")},
                {"all rows deleted", Value(10, 5, "gone")},
                {"bulk loaded", Value(10, 5, "bulk")}};
  ASSERT_OK(store->Write(KVs(stored.begin(), stored.begin() + 4), {}));
  // A bulk-loaded (plain) value is repaired like a merged one.
  std::vector<KeyValue> bulk;
  for (int i = 0; i < 5000; ++i)
    bulk.push_back({"bulk " + std::to_string(10000 + i), Value(1, 0, "b")});
  bulk.push_back(stored[4]);
  ASSERT_OK(store->Write(bulk, WriteOptions{/*bulk=*/true}));
  ASSERT_OK(store->Sync());
  std::vector<KeyRepair> repairs = {{"deleted winner", bound, Value(8, 0, "previous row")},
                                    {"older than bound", bound, Value(7, 0, "recomputed")},
                                    {"pushed since", bound, Value(8, 0, "must not win")},
                                    {"all rows deleted", bound, ""},
                                    {"never stored", bound, Value(3, 0, "new")},
                                    {"never stored, none left", bound, ""},
                                    {"bulk loaded", bound, Value(4, 0, "repaired")}};
  ASSERT_OK(store->Repair(repairs));
  std::vector<std::string> keys;
  for (const auto& r : repairs) keys.push_back(r.key);
  std::vector<std::optional<std::string>> values;
  ASSERT_OK(Get(store.get(), keys, &values));
  EXPECT_EQ(values,
            (std::vector<std::optional<std::string>>{
                Value(8, 0, "previous row"), Value(7, 0, "recomputed"), Value(10, 6, "newer push"),
                std::nullopt, Value(3, 0, "new"), std::nullopt, Value(4, 0, "repaired")}));
  // Newer wins again afterwards: an older write is dropped, a newer one kept.
  ASSERT_OK(store->Write(
      KVs{{"deleted winner", Value(7, 0, "older")}, {"older than bound", Value(11, 0, "newest")}},
      {}));
  ASSERT_OK(Get(store.get(), {"deleted winner", "older than bound"}, &values));
  EXPECT_EQ(values, (std::vector<std::optional<std::string>>{Value(8, 0, "previous row"),
                                                             Value(11, 0, "newest")}));
  // Malformed repairs change nothing.
  std::vector<KeyRepair> bad = {{"deleted winner", bound, ""}, {"x", "short", ""}};
  EXPECT_TRUE(store->Repair(bad).IsInvalid());
  bad = {{"deleted winner", bound, ""}, {"x", bound, "short"}};
  EXPECT_TRUE(store->Repair(bad).IsInvalid());
  ASSERT_OK(Get(store.get(), {"deleted winner"}, &values));
  EXPECT_EQ(values[0], Value(8, 0, "previous row"));
  ASSERT_OK(store->Repair({}));
}

TEST_P(OnlineStoreTest, ConcurrentWritersEndWithTheNewestValue) {
  // Fewer connections than threads: callers wait for one.
  ASSERT_OK_AND_ASSIGN(auto store, Open(/*pool_size=*/3));
  constexpr int kThreads = 6;
  constexpr int kRounds = 100;
  constexpr int kKeys = 40;
  std::vector<std::string> keys;
  for (int k = 0; k < kKeys; ++k) keys.push_back(std::string("c\0", 2) + std::to_string(k));
  // Per thread: the value with the largest prefix it wrote, per key.
  std::vector<std::vector<std::string>> best(kThreads, std::vector<std::string>(kKeys));
  std::vector<std::string> errors(kThreads);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      start.arrive_and_wait();
      for (int r = 0; r < kRounds; ++r) {
        std::vector<KeyValue> writes;
        for (int k = 0; k < kKeys; ++k) {
          if (rng() % 2 == 0) continue;
          // Few event times, so the created time often decides; (t, r) makes
          // every prefix unique.
          int64_t event = static_cast<int64_t>(rng() % 4);
          int64_t created = static_cast<int64_t>(rng() % 1000) * 10000 + t * kRounds + r;
          writes.push_back({keys[k], Value(event, created, "t" + std::to_string(t))});
          if (best[t][k].empty() || writes.back().value.compare(0, 16, best[t][k], 0, 16) > 0) {
            best[t][k] = writes.back().value;
          }
        }
        arrow::Status st = store->Write(writes, {});
        if (!st.ok()) {
          errors[t] = st.ToString();
          return;
        }
        std::vector<std::optional<std::string>> values;
        st = Get(store.get(), keys, &values);
        if (!st.ok()) {
          errors[t] = st.ToString();
          return;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "thread " << t;
  std::vector<std::optional<std::string>> values;
  ASSERT_OK(Get(store.get(), keys, &values));
  for (int k = 0; k < kKeys; ++k) {
    std::string expected;
    for (int t = 0; t < kThreads; ++t) {
      if (expected.empty() || best[t][k].compare(0, 16, expected, 0, 16) > 0) {
        expected = best[t][k];
      }
    }
    if (expected.empty()) {
      EXPECT_EQ(values[k], std::nullopt) << "key " << k;
    } else {
      EXPECT_EQ(values[k], expected) << "key " << k;
    }
  }
}

TEST_P(OnlineStoreTest, DataSurvivesReopening) {
  {
    ASSERT_OK_AND_ASSIGN(auto store, Open());
    ASSERT_OK(store->Write(KVs{{"plain", Value(1, 1, "p")}}, {}));
    ASSERT_OK(store->Write(KVs{{"bulk", Value(2, 2, "b")}}, WriteOptions{/*bulk=*/true}));
    ASSERT_OK(store->Sync());
  }
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  std::vector<std::optional<std::string>> values;
  ASSERT_OK(Get(store.get(), {"plain", "bulk", "other"}, &values));
  EXPECT_EQ(values, (std::vector<std::optional<std::string>>{Value(1, 1, "p"), Value(2, 2, "b"),
                                                             std::nullopt}));
  // The rule still holds against values written before the reopen.
  ASSERT_OK(store->Write(KVs{{"plain", Value(0, 9, "older")}}, {}));
  ASSERT_OK(Get(store.get(), {"plain"}, &values));
  EXPECT_EQ(values[0], Value(1, 1, "p"));
}

TEST_P(OnlineStoreTest, DescribeNamesTheStore) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  if (GetParam() == Backend::kRocksDb) {
    EXPECT_EQ(store->Describe(), "rocksdb:" + path_);
    return;
  }
  if (GetParam() == Backend::kRedisCluster) {
    std::string want = "redis-cluster://";
    for (const auto& seed : SplitCommas(url_)) {
      want += (want.size() > 16 ? "," : "") + seed.substr(8);  // without redis://
    }
    EXPECT_EQ(store->Describe(), want);
    return;
  }
  // The URL as scripts/redis.sh prints it: redis://127.0.0.1:PORT/0.
  if (url_.find('@') == std::string::npos && url_.find("/", 8) != std::string::npos) {
    EXPECT_EQ(store->Describe(), url_);
  }
  EXPECT_TRUE(store->Describe().starts_with(url_.starts_with("unix:") ? "unix://" : "redis://"))
      << store->Describe();
  EXPECT_EQ(store->Describe().find('@'), std::string::npos) << store->Describe();
}

// ---- Redis only ----

// On both Redis backends.
class RedisOnlineStoreTest : public OnlineStoreTest {};
// On one Redis server only (databases).
class RedisServerOnlineStoreTest : public OnlineStoreTest {};

TEST_P(RedisOnlineStoreTest, ReconnectsWhenTheServerDropsConnections) {
  ASSERT_OK_AND_ASSIGN(auto store, Open(/*pool_size=*/2));
  ASSERT_OK(store->Write(KVs{{"k", Value(1, 1, "one")}}, {}));
  ASSERT_GE(KillOurConnections(), 1);
  // The next call finds its connection closed, reconnects and repeats itself.
  std::vector<std::optional<std::string>> values;
  ASSERT_OK(Get(store.get(), {"k"}, &values));
  EXPECT_EQ(values[0], Value(1, 1, "one"));
  ASSERT_GE(KillOurConnections(), 1);
  ASSERT_OK(store->Write(KVs{{"k", Value(2, 1, "two")}}, {}));
  ASSERT_GE(KillOurConnections(), 1);
  ASSERT_OK(store->DeletePrefix("x"));
  ASSERT_GE(KillOurConnections(), 1);
  ASSERT_OK_AND_ASSIGN(auto all, store->Scan(""));
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].value, Value(2, 1, "two"));
  // Megabytes to a closed connection: once the server has reset it, write(2)
  // fails with EPIPE and raises SIGPIPE, which must not end the process.
  ASSERT_GE(KillOurConnections(), 1);
  std::vector<KeyValue> big;
  for (int i = 0; i < 8000; ++i)
    big.push_back({"b" + std::to_string(i), Value(i, 0, std::string(1024, 'x'))});
  ASSERT_OK(store->Write(big, {}));
  std::vector<std::optional<std::string>> last;
  ASSERT_OK(Get(store.get(), {"b7999"}, &last));
  EXPECT_EQ(last[0], big.back().value);
}

TEST_P(RedisOnlineStoreTest, WritesAfterTheServerForgetsTheScript) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  ASSERT_OK(store->Write(KVs{{"k", Value(5, 5, "five")}}, {}));
  for (int i = 0; i < 2; ++i) {
    for (auto& admin : admins_) {
      ReplyPtr flushed = admin->Run({"SCRIPT", "FLUSH"});
      ASSERT_NE(flushed, nullptr);
      ASSERT_EQ(flushed->type, REDIS_REPLY_STATUS);
    }
    // Many calls in one round trip: the first NOSCRIPT one and those after it
    // are sent again once the script is back.
    std::vector<KeyValue> writes;
    for (int n = 0; n < 3000; ++n) writes.push_back({"n" + std::to_string(n), Value(n, i, "")});
    writes.push_back({"k", Value(4, 9, "older")});
    writes.push_back({"k", Value(5, 5, "same " + std::to_string(i))});
    ASSERT_OK(store->Write(writes, {}));
    std::vector<std::optional<std::string>> values;
    ASSERT_OK(Get(store.get(), {"k", "n2999"}, &values));
    EXPECT_EQ(values[0], Value(5, 5, "same " + std::to_string(i)));
    EXPECT_EQ(values[1], Value(2999, i, ""));
  }
}

TEST_P(RedisServerOnlineStoreTest, KeysLiveUnderTheKeyPrefixInTheUrlsDatabase) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  ASSERT_OK(store->Write(KVs{{std::string("k\0", 2), Value(1, 1, "v")}}, {}));
  ReplyPtr got = admin_->Run({"GET", key_prefix_ + std::string("k\0", 2)});
  ASSERT_NE(got, nullptr);
  ASSERT_EQ(got->type, REDIS_REPLY_STRING);
  EXPECT_EQ(std::string(got->str, got->len), Value(1, 1, "v"));

  // Another database of the same server: a different store.
  if (url_.find('@') != std::string::npos || !url_.ends_with("/0")) {
    GTEST_SKIP() << "the database test needs a URL like redis://host:port/0";
  }
  other_dbs_.push_back("1");
  RedisOptions options;
  options.key_prefix = key_prefix_;
  std::string url1 = url_.substr(0, url_.size() - 1) + "1";
  ASSERT_OK_AND_ASSIGN(auto store1, OpenRedisStore(url1, options));
  EXPECT_EQ(store1->Describe(), url1);
  ASSERT_OK_AND_ASSIGN(auto none, store1->Scan(""));
  EXPECT_TRUE(none.empty());
  ASSERT_OK(store1->Write(KVs{{std::string("k\0", 2), Value(2, 2, "db1")}}, {}));
  std::vector<std::optional<std::string>> values;
  ASSERT_OK(Get(store.get(), {std::string("k\0", 2)}, &values));
  EXPECT_EQ(values[0], Value(1, 1, "v"));
}

TEST_P(RedisOnlineStoreTest, WrongPasswordIsReportedWithoutTheSecret) {
  if (url_.find('@') != std::string::npos || !url_.starts_with("redis://")) {
    GTEST_SKIP() << "needs a URL without credentials";
  }
  std::string url = "redis://:hunter2@" + SplitCommas(url_)[0].substr(8);
  RedisOptions options;
  options.cluster = GetParam() == Backend::kRedisCluster;
  auto result = OpenRedisStore(url, options);
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(result.status().IsIOError()) << result.status().ToString();
  EXPECT_EQ(result.status().message().find("hunter2"), std::string::npos)
      << result.status().message();
  EXPECT_NE(result.status().message().find("log in"), std::string::npos)
      << result.status().message();
}

INSTANTIATE_TEST_SUITE_P(Backends, OnlineStoreTest,
                         ::testing::Values(Backend::kRocksDb, Backend::kRedis,
                                           Backend::kRedisCluster),
                         ParamName);

INSTANTIATE_TEST_SUITE_P(Backends, RedisOnlineStoreTest,
                         ::testing::Values(Backend::kRedis, Backend::kRedisCluster), ParamName);

INSTANTIATE_TEST_SUITE_P(Backends, RedisServerOnlineStoreTest, ::testing::Values(Backend::kRedis),
                         ParamName);

// ---- without a server ----

// A loopback port nothing listens on (bound, then released).
int UnusedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

TEST(RedisOnlineStoreOpenTest, UnreachableServerSaysWhatToDo) {
  int port = UnusedPort();
  ASSERT_NE(port, 0);
  std::string url = "redis://127.0.0.1:" + std::to_string(port) + "/0";
  auto result = OpenRedisStore(url);
  ASSERT_FALSE(result.ok());
  const auto& st = result.status();
  EXPECT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_NE(st.message().find(url), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("start redis-server or fix online_store in stratalake.yaml"),
            std::string::npos)
      << st.message();

  TempDir dir;
  auto unix_result = OpenRedisStore("unix://" + dir.Join("no.sock"));
  ASSERT_FALSE(unix_result.ok());
  EXPECT_NE(unix_result.status().message().find("unix://" + dir.Join("no.sock")), std::string::npos)
      << unix_result.status().message();
}

TEST(RedisOnlineStoreOpenTest, BadUrlsAndOptionsAreDefinitionErrors) {
  for (const char* url : {
           "",
           "http://127.0.0.1:6379",
           "redis://",
           "redis:///0",
           "redis://127.0.0.1:0/0",
           "redis://127.0.0.1:65536/0",
           "redis://127.0.0.1:port/0",
           "redis://127.0.0.1:/0",
           "redis://127.0.0.1:6379/zero",
           "redis://127.0.0.1:6379/0?timeout=1",
           "redis://[::1:6379/0",
           "redis://hunter2@127.0.0.1:6379/0",
           "redis://:bad%zzhunter2@127.0.0.1:6379/0",
           "rediss://127.0.0.1:6379/0",
           "unix://relative.sock",
           "unix:///tmp/redis.sock?db=x",
           "unix:///tmp/redis.sock?color=blue",
           "unix:///tmp/redis.sock?password=hunter2&db=x",
       }) {
    auto result = OpenRedisStore(url);
    ASSERT_FALSE(result.ok()) << url;
    EXPECT_TRUE(result.status().IsInvalid()) << url << ": " << result.status().ToString();
    EXPECT_TRUE(HasErrorKind(result.status(), ErrorKind::kDefinitionError)) << url;
    EXPECT_EQ(result.status().message().find("hunter2"), std::string::npos)
        << result.status().message();
  }
  RedisOptions no_pool;
  no_pool.pool_size = 0;
  EXPECT_TRUE(OpenRedisStore("redis://127.0.0.1:6379/0", no_pool).status().IsInvalid());
  RedisOptions no_timeout;
  no_timeout.connect_timeout_ms = 0;
  EXPECT_TRUE(OpenRedisStore("redis://127.0.0.1:6379/0", no_timeout).status().IsInvalid());
}

TEST(RocksDbOnlineStoreOpenTest, CreatesMissingParentFolders) {
  TempDir dir;
  std::string path = dir.Join("repo/.stratalake/online");
  ASSERT_OK_AND_ASSIGN(auto store, OpenRocksDbStore(path));
  EXPECT_TRUE(std::filesystem::is_directory(path));
  // Read-only opening does not create anything: it says to materialize first.
  auto missing = OpenRocksDbStore(dir.Join("other/.stratalake/online"), /*read_only=*/true);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("run `materialize` first"), std::string::npos)
      << missing.status().message();
  EXPECT_FALSE(std::filesystem::exists(dir.Join("other")));
}

// ---- Redis Cluster only ----

class RedisClusterStoreTest : public OnlineStoreTest {
 protected:
  std::vector<std::string> Seeds() const { return SplitCommas(url_); }

  // The index in admins_ of the primary that holds `full_key` (nullopt: none).
  std::optional<size_t> Holder(const std::string& full_key) {
    for (size_t i = 0; i < admins_.size(); ++i) {
      if (admins_[i]->Text({"EXISTS", full_key}) == "1") return i;
    }
    return std::nullopt;
  }

  std::vector<std::string> Strings(RedisAdmin& admin, const std::vector<std::string>& args) {
    ReplyPtr r = admin.Run(args);
    std::vector<std::string> out;
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY) return out;
    for (size_t i = 0; i < r->elements; ++i) {
      out.emplace_back(r->element[i]->str, r->element[i]->len);
    }
    return out;
  }
};

TEST_P(RedisClusterStoreTest, KeysOfOneEntityShareASlotAndEveryPrimaryHoldsSome) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  std::vector<KeyValue> writes;
  for (int e = 0; e < 300; ++e) {
    for (const std::string view : {"v", "w"}) {
      writes.push_back({view + std::string(1, '\0') + "e" + std::to_string(e),
                        Value(e, 0, view + std::to_string(e))});
    }
  }
  writes.push_back({"no zero byte", Value(1, 1, "whole key hashed")});
  ASSERT_OK(store->Write(writes, {}));
  // Each value is stored under its documented name on exactly one primary.
  std::vector<int> per_node(admins_.size());
  for (const auto& kv : writes) {
    std::string full = ClusterKey(key_prefix_, kv.key);
    int holders = 0;
    for (size_t n = 0; n < admins_.size(); ++n) {
      if (admins_[n]->Text({"GET", full}) == kv.value) {
        ++holders;
        ++per_node[n];
      }
    }
    EXPECT_EQ(holders, 1) << Printable(kv.key);
  }
  for (size_t n = 0; n < admins_.size(); ++n) EXPECT_GT(per_node[n], 0) << Seeds()[n];
  // Every view's key of one entity is in one slot; other entities spread.
  auto slot = [&](const std::string& key) {
    return admins_[0]->Text({"CLUSTER", "KEYSLOT", ClusterKey(key_prefix_, key)});
  };
  EXPECT_EQ(slot(std::string("v\0e7", 4)), slot(std::string("w\0e7", 4)));
  EXPECT_EQ(slot(std::string("v\0e7", 4)), slot(std::string("another view\0e7", 15)));
  EXPECT_NE(slot(std::string("v\0e7", 4)), slot(std::string("v\0e8", 4)));
  // One MultiGet reads from every node, in the order asked.
  std::vector<std::string> keys;
  std::vector<std::optional<std::string>> want;
  for (size_t i = 0; i < writes.size(); ++i) {
    keys.push_back(writes[writes.size() - 1 - i].key);
    want.push_back(writes[writes.size() - 1 - i].value);
    if (i % 10 == 0) {
      keys.push_back("missing" + std::to_string(i));
      want.push_back(std::nullopt);
    }
  }
  std::vector<std::optional<std::string>> values;
  ASSERT_OK(Get(store.get(), keys, &values));
  EXPECT_TRUE(values == want);
}

TEST_P(RedisClusterStoreTest, ReadsAndWritesFollowASlotMigration) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  std::map<std::string, std::string> model;
  auto write = [&](const std::vector<KeyValue>& writes) {
    ASSERT_OK(store->Write(writes, {}));
    for (const auto& kv : writes) {
      auto it = model.find(kv.key);
      if (it == model.end() ||
          kv.value.compare(0, kVersionPrefixSize, it->second, 0, kVersionPrefixSize) >= 0) {
        model[kv.key] = kv.value;
      }
    }
  };
  auto check = [&](const char* when) {
    std::vector<std::string> keys;
    for (const auto& [k, v] : model) keys.push_back(k);
    keys.push_back(std::string("v\0nobody", 8));
    std::vector<std::optional<std::string>> values;
    arrow::Status st = Get(store.get(), keys, &values);
    ASSERT_TRUE(st.ok()) << when << ": " << st.ToString();
    for (size_t i = 0; i + 1 < keys.size(); ++i) {
      EXPECT_EQ(values[i], model[keys[i]]) << when << ": " << Printable(keys[i]);
    }
    EXPECT_EQ(values.back(), std::nullopt) << when;
  };
  std::vector<KeyValue> first;
  for (int e = 0; e < 100; ++e) {
    for (const std::string view : {"v", "w"}) {
      first.push_back({view + std::string(1, '\0') + "e" + std::to_string(e), Value(1, 0, "one")});
    }
  }
  write(first);
  const std::string e0v("v\0e0", 4), e0w("w\0e0", 4), e0x("x\0e0", 4);
  const std::string slot = admins_[0]->Text({"CLUSTER", "KEYSLOT", ClusterKey(key_prefix_, e0v)});
  std::optional<size_t> src = Holder(ClusterKey(key_prefix_, e0v));
  ASSERT_TRUE(src.has_value());
  size_t dst = (*src + 1) % admins_.size();
  std::string src_id = admins_[*src]->Text({"CLUSTER", "MYID"});
  std::string dst_id = admins_[dst]->Text({"CLUSTER", "MYID"});
  std::string dst_hostport = Seeds()[dst].substr(8);  // redis://HOST:PORT
  std::string dst_host = dst_hostport.substr(0, dst_hostport.rfind(':'));
  std::string dst_port = dst_hostport.substr(dst_hostport.rfind(':') + 1);

  // Start moving the slot and move one of the entity's two keys: the slot is
  // split between the nodes (MGET of both answers TRYAGAIN, of the moved one ASK).
  ASSERT_EQ(admins_[dst]->Text({"CLUSTER", "SETSLOT", slot, "IMPORTING", src_id}), "OK");
  ASSERT_EQ(admins_[*src]->Text({"CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id}), "OK");
  ASSERT_EQ(admins_[*src]->Text(
                {"MIGRATE", dst_host, dst_port, ClusterKey(key_prefix_, e0v), "0", "5000"}),
            "OK");
  check("during the migration");
  // Writes during it: to the moved key, the one left, a new key of the slot
  // (created on the target), two to one key (the later wins on a tie).
  write({{e0v, Value(2, 0, "two")},
         {e0w, Value(2, 0, "two")},
         {e0x, Value(2, 0, "new")},
         {e0v, Value(2, 0, "two, later")},
         {std::string("v\0e1", 4), Value(2, 0, "elsewhere")}});
  check("after writes during the migration");
  ASSERT_EQ(admins_[dst]->Text({"ASKING"}), "OK");
  EXPECT_EQ(admins_[dst]->Text({"GET", ClusterKey(key_prefix_, e0x)}), Value(2, 0, "new"));
  EXPECT_EQ(admins_[*src]->Text({"EXISTS", ClusterKey(key_prefix_, e0w)}), "1");

  // Finish: move the rest and give the slot to the target. The store's map
  // still names the source, which now answers MOVED.
  for (const auto& key : Strings(*admins_[*src], {"CLUSTER", "GETKEYSINSLOT", slot, "1000"})) {
    ASSERT_EQ(admins_[*src]->Text({"MIGRATE", dst_host, dst_port, key, "0", "5000"}), "OK");
  }
  ASSERT_EQ(admins_[dst]->Text({"CLUSTER", "SETSLOT", slot, "NODE", dst_id}), "OK");
  ASSERT_EQ(admins_[*src]->Text({"CLUSTER", "SETSLOT", slot, "NODE", dst_id}), "OK");
  for (size_t n = 0; n < admins_.size(); ++n) {
    if (n != dst && n != *src) {
      ASSERT_EQ(admins_[n]->Text({"CLUSTER", "SETSLOT", slot, "NODE", dst_id}), "OK");
    }
  }
  EXPECT_EQ(admins_[*src]->Text({"GET", ClusterKey(key_prefix_, e0w)}).substr(0, 6), "MOVED ");
  check("after the migration");
  write({{e0w, Value(3, 0, "three")}, {std::string("y\0e0", 4), Value(3, 0, "newer")}});
  check("after writes since the migration");
  EXPECT_EQ(admins_[dst]->Text({"GET", ClusterKey(key_prefix_, e0w)}), Value(3, 0, "three"));
  ASSERT_OK_AND_ASSIGN(auto all, store->Scan(""));
  EXPECT_EQ(Rows(all), Rows(model));
  // A store opened now reads the same.
  ASSERT_OK_AND_ASSIGN(auto fresh, Open());
  ASSERT_OK_AND_ASSIGN(auto all2, fresh->Scan(""));
  EXPECT_EQ(Rows(all2), Rows(model));
}

TEST_P(RedisClusterStoreTest, KilledNodeFailsOnlyItsKeysDuringReadsThenRecovers) {
  const char* dir = std::getenv("STRATALAKE_TEST_REDIS_CLUSTER_DIR");
  if (dir == nullptr || *dir == '\0') {
    if (RequireRedisCluster()) {
      FAIL() << "STRATALAKE_REQUIRE_REDIS_CLUSTER=1 but STRATALAKE_TEST_REDIS_CLUSTER_DIR is "
                "not set";
    }
    GTEST_SKIP() << "needs STRATALAKE_TEST_REDIS_CLUSTER_DIR (the folder given to "
                    "scripts/redis_cluster.sh start) to kill and restart a node";
  }
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  std::vector<KeyValue> writes;
  std::vector<std::string> keys;
  for (int e = 0; e < 300; ++e) {
    keys.push_back(std::string("v\0", 2) + std::to_string(e));
    writes.push_back({keys.back(), Value(e, 0, "value " + std::to_string(e))});
  }
  ASSERT_OK(store->Write(writes, {}));

  // The victim: the last seed's node, found in the cluster's folder by port.
  const std::string victim_url = Seeds().back();
  const std::string port = victim_url.substr(victim_url.rfind(':') + 1);
  std::string node_dir;
  for (int n = 1; n <= 3; ++n) {
    std::string d = std::string(dir) + "/node" + std::to_string(n);
    std::ifstream in(d + "/port");
    std::string p;
    if (in >> p && p == port) node_dir = d;
  }
  ASSERT_FALSE(node_dir.empty()) << "no node of " << dir << " listens on port " << port;
  std::vector<bool> on_victim(keys.size());
  size_t victim_keys = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    on_victim[i] = admins_.back()->Text({"EXISTS", ClusterKey(key_prefix_, keys[i])}) == "1";
    victim_keys += on_victim[i];
  }
  ASSERT_GT(victim_keys, 0u);
  ASSERT_LT(victim_keys, keys.size());

  const char* server_env = std::getenv("REDIS_SERVER");
  const std::string server = server_env && *server_env ? server_env : "/usr/bin/redis-server";
  auto alive = [&] { return RedisAdmin(victim_url).ok(); };
  auto restart = [&] { return std::system((server + " " + node_dir + "/redis.conf").c_str()); };
  // Whatever happens below, the node is running again afterwards.
  struct Restarter {
    std::function<void()> fn;
    ~Restarter() { fn(); }
  } restarter{[&] {
    if (!alive()) restart();
  }};

  // Readers all along: keys of the other nodes always read right; the
  // victim's keys read right or fail.
  std::atomic<bool> stop{false};
  std::atomic<int> rounds{0}, rounds_with_errors{0}, wrong{0};
  std::string first_wrong;
  std::thread reader([&] {
    std::vector<std::string_view> views(keys.begin(), keys.end());
    while (!stop) {
      std::vector<std::optional<std::string>> values;
      std::vector<arrow::Status> errors;
      arrow::Status st = store->MultiGetEach(views, &values, &errors);
      bool any_error = false;
      for (size_t i = 0; st.ok() && i < keys.size(); ++i) {
        if (!errors[i].ok()) any_error = true;
        bool right = errors[i].ok() ? values[i] == writes[i].value : on_victim[i];
        if (!right && wrong++ == 0) {
          first_wrong = "key " + keys[i] + ": " + errors[i].ToString();
        }
      }
      if (!st.ok() && wrong++ == 0) first_wrong = st.ToString();
      rounds_with_errors += any_error;
      ++rounds;
    }
  });
  while (rounds < 3) std::this_thread::sleep_for(std::chrono::milliseconds(5));

  std::ifstream pid_file(node_dir + "/redis.pid");
  pid_t pid = 0;
  ASSERT_TRUE(pid_file >> pid) << node_dir;
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  while (alive()) std::this_thread::sleep_for(std::chrono::milliseconds(10));

  // While it is down: its keys fail, naming it; the others are read.
  std::vector<std::string_view> views(keys.begin(), keys.end());
  std::vector<std::optional<std::string>> values;
  std::vector<arrow::Status> errors;
  ASSERT_OK(store->MultiGetEach(views, &values, &errors));
  for (size_t i = 0; i < keys.size(); ++i) {
    if (on_victim[i]) {
      EXPECT_FALSE(errors[i].ok()) << keys[i];
      EXPECT_NE(errors[i].message().find("Redis Cluster node 127.0.0.1:" + port), std::string::npos)
          << errors[i].ToString();
      EXPECT_EQ(values[i], std::nullopt);
    } else {
      EXPECT_TRUE(errors[i].ok()) << keys[i] << ": " << errors[i].ToString();
      EXPECT_EQ(values[i], writes[i].value) << keys[i];
    }
  }
  // MultiGet of keys of the other nodes only works; with a victim key it
  // fails naming the node and how many keys.
  std::vector<std::string> others;
  std::string victim_key;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!on_victim[i]) others.push_back(keys[i]);
    if (on_victim[i] && victim_key.empty()) victim_key = keys[i];
  }
  ASSERT_OK(Get(store.get(), others, &values));
  arrow::Status st = Get(store.get(), {others[0], victim_key}, &values);
  EXPECT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_NE(st.message().find("127.0.0.1:" + port), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("1 of 2 keys could not be read"), std::string::npos) << st.ToString();
  // Writes likewise (another view, same entities: the same nodes).
  const std::string other_view("w\0", 2);
  ASSERT_OK(store->Write(KVs{{other_view + others[0].substr(2), Value(1, 0, "up")}}, {}));
  st = store->Write(KVs{{other_view + victim_key.substr(2), Value(1, 0, "down")}}, {});
  EXPECT_NE(st.message().find("127.0.0.1:" + port), std::string::npos) << st.ToString();
  while (rounds_with_errors == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));

  // Restarted (same port, node id, slots and data: nodes.conf and the
  // append-only file), it rejoins the cluster and every key reads again. The
  // wait's limit only stops a test that would hang.
  ASSERT_EQ(restart(), 0);
  bool recovered = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!recovered && std::chrono::steady_clock::now() < deadline) {
    ASSERT_OK(store->MultiGetEach(views, &values, &errors));
    recovered = true;
    for (size_t i = 0; i < keys.size(); ++i) {
      recovered = recovered && errors[i].ok() && values[i] == writes[i].value;
    }
    if (!recovered) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  int before = rounds;
  while (rounds < before + 3) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  stop = true;
  reader.join();
  EXPECT_TRUE(recovered) << errors[0].ToString();
  EXPECT_EQ(wrong, 0) << first_wrong;
  EXPECT_GT(rounds_with_errors, 0);
  ASSERT_OK(store->Write(KVs{{victim_key, Value(2000, 0, "after the restart")}}, {}));
  ASSERT_OK(Get(store.get(), {victim_key}, &values));
  EXPECT_EQ(values[0], Value(2000, 0, "after the restart"));
}

TEST_P(RedisClusterStoreTest, SeedsDownOrNotInAClusterAreReportedClearly) {
  RedisOptions cluster;
  cluster.cluster = true;
  cluster.key_prefix = key_prefix_;
  // A seed that is down is skipped.
  int port = UnusedPort();
  ASSERT_NE(port, 0);
  std::string dead = "redis://127.0.0.1:" + std::to_string(port);
  ASSERT_OK_AND_ASSIGN(auto store, OpenRedisStore(dead + "," + url_, cluster));
  ASSERT_OK(store->Write(KVs{{"k", Value(1, 1, "v")}}, {}));
  EXPECT_EQ(store->Describe().find("redis-cluster://127.0.0.1:" + std::to_string(port) + ","), 0u);
  // Only seeds that are down.
  auto none = OpenRedisStore(dead, cluster);
  ASSERT_FALSE(none.ok());
  EXPECT_TRUE(none.status().IsIOError()) << none.status().ToString();
  EXPECT_NE(none.status().message().find("cannot reach any seed node"), std::string::npos)
      << none.status().message();
  EXPECT_NE(none.status().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << none.status().message();
  // Bad seed lists.
  for (const std::string& bad : {url_ + ",", Seeds()[0] + "/1", std::string("unix:///tmp/r.sock"),
                                 "redis://:hunter2@" + Seeds()[0].substr(8) + "/2"}) {
    auto result = OpenRedisStore(bad, cluster);
    ASSERT_FALSE(result.ok()) << bad;
    EXPECT_TRUE(HasErrorKind(result.status(), ErrorKind::kDefinitionError))
        << bad << ": " << result.status().ToString();
    EXPECT_EQ(result.status().message().find("hunter2"), std::string::npos);
  }
  // Several URLs without cluster: true.
  auto several = OpenRedisStore(url_);
  ASSERT_FALSE(several.ok());
  EXPECT_NE(several.status().message().find("cluster: true"), std::string::npos)
      << several.status().message();
  // A one-server store pointed at a cluster node says what to change.
  RedisOptions single;
  single.key_prefix = key_prefix_;
  ASSERT_OK_AND_ASSIGN(auto wrong, OpenRedisStore(Seeds()[0], single));
  std::vector<std::string> keys;
  for (int i = 0; i < 20; ++i) keys.push_back("k" + std::to_string(i));
  std::vector<std::optional<std::string>> values;
  arrow::Status st = Get(wrong.get(), keys, &values);
  EXPECT_NE(st.message().find("set 'cluster: true' under online_store"), std::string::npos)
      << st.ToString();
  // A server that is not a cluster node, given as a cluster seed.
  const char* standalone = std::getenv("STRATALAKE_TEST_REDIS_URL");
  if (standalone != nullptr && *standalone != '\0') {
    std::string url = standalone;
    if (url.ends_with("/0")) url.resize(url.size() - 2);
    auto not_cluster = OpenRedisStore(url, cluster);
    ASSERT_FALSE(not_cluster.ok());
    EXPECT_TRUE(HasErrorKind(not_cluster.status(), ErrorKind::kDefinitionError))
        << not_cluster.status().ToString();
    EXPECT_NE(not_cluster.status().message().find("is not a Redis Cluster node"), std::string::npos)
        << not_cluster.status().message();
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, RedisClusterStoreTest, ::testing::Values(Backend::kRedisCluster),
                         ParamName);

// ---- the version prefix ----

TEST(OnlineVersionPrefixTest, ByteOrderIsEventThenCreatedOrder) {
  const std::vector<int64_t> times = {
      kMin, kMin + 1, -1'000'000'000'000'000, -256,     -2,  -1, 0, 1,
      255,  256,      1'000'000'000'000'000,  kMax - 1, kMax};
  std::vector<std::optional<int64_t>> created = {std::nullopt};
  created.insert(created.end(), times.begin(), times.end());
  struct Version {
    int64_t event;
    std::optional<int64_t> created;
    std::string prefix;
  };
  std::vector<Version> versions;
  for (int64_t e : times) {
    for (const auto& c : created) {
      versions.push_back({e, c, Prefix(e, c)});
      ASSERT_EQ(versions.back().prefix.size(), kVersionPrefixSize);
      EXPECT_EQ(PrefixEventMicros(versions.back().prefix), e);
    }
  }
  // nullopt sorts before every created time.
  auto order = [](const Version& v) {
    return std::make_tuple(v.event, v.created.has_value(), v.created.value_or(0));
  };
  for (const auto& a : versions) {
    for (const auto& b : versions) {
      bool null_vs_min = a.event == b.event &&
                         ((!a.created && b.created == kMin) || (!b.created && a.created == kMin));
      if (null_vs_min) {
        // 16 bytes cannot order nullopt strictly below kMin: they share a prefix.
        EXPECT_EQ(a.prefix, b.prefix);
        continue;
      }
      EXPECT_EQ(a.prefix < b.prefix, order(a) < order(b))
          << a.event << "/" << (a.created ? std::to_string(*a.created) : "null") << " vs "
          << b.event << "/" << (b.created ? std::to_string(*b.created) : "null");
      EXPECT_EQ(a.prefix == b.prefix, order(a) == order(b));
    }
  }
  // Appends; the rest of the value does not matter to PrefixEventMicros.
  std::string out = "x";
  AppendVersionPrefix(-5, 7, &out);
  EXPECT_EQ(out.size(), 1 + kVersionPrefixSize);
  EXPECT_EQ(PrefixEventMicros(Value(-5, 7, "payload")), -5);
}

}  // namespace
}  // namespace stratalake::online
