// RegistryStore contract tests, run against both backends: SQLite (a file in a
// temp folder) and PostgreSQL (a fresh database per test on the server named by
// STRATALAKE_TEST_POSTGRES_URL; skipped when unset unless
// STRATALAKE_REQUIRE_POSTGRES=1). scripts/run_tests.sh starts a server with
// scripts/postgres.sh and sets both.
#include "registry/store.h"

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <latch>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

// libpq is on the link line through stratalake_core; its header sits in a
// postgresql/ subfolder on Debian, which the test target's include path lacks.
#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif

#include "../../tests/test_util.h"
#include "stratalake/status.h"

namespace stratalake::registry {
namespace {

using stratalake::testing::TempDir;

enum class Backend { kSqlite, kPostgres };

StoredObject Obj(std::string kind, std::string name, int64_t object_version, std::string spec,
                 bool deleted = false) {
  StoredObject o;
  o.kind = std::move(kind);
  o.name = std::move(name);
  o.object_version = object_version;
  o.deleted = deleted;
  o.spec = std::move(spec);
  return o;
}

StoredObject Deleted(std::string kind, std::string name, int64_t object_version) {
  return Obj(std::move(kind), std::move(name), object_version, "", /*deleted=*/true);
}

VersionRecord Rec(std::string author, std::string message, int64_t at_ms, int32_t changes) {
  VersionRecord r;
  r.author = std::move(author);
  r.message = std::move(message);
  r.committed_at_ms = at_ms;
  r.num_changes = changes;
  return r;
}

// "kind/name@object_version:registry_version[:deleted]=spec", for exact comparison.
std::vector<std::string> Rows(const std::vector<StoredObject>& objects) {
  std::vector<std::string> out;
  out.reserve(objects.size());
  for (const auto& o : objects) {
    out.push_back(o.kind + "/" + o.name + "@" + std::to_string(o.object_version) + ":" +
                  std::to_string(o.registry_version) + (o.deleted ? ":deleted" : "") + "=" +
                  o.spec);
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

// `url` (postgresql://...[/db][?params]) with its database replaced by `db`.
std::string WithDatabase(const std::string& url, const std::string& db) {
  size_t start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  size_t path = url.find_first_of("/?", start);
  if (path == std::string::npos) return url + "/" + db;
  size_t query = url.find('?', path);
  return url.substr(0, path) + "/" + db + (query == std::string::npos ? "" : url.substr(query));
}

// Runs one parameterless statement on `url`; returns libpq's error, or "" on success.
std::string AdminExec(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  std::string error;
  if (PQstatus(conn) != CONNECTION_OK) {
    error = PQerrorMessage(conn);
  } else {
    PGresult* res = PQexec(conn, sql.c_str());
    auto status = PQresultStatus(res);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      error = PQresultErrorMessage(res);
    }
    PQclear(res);
  }
  PQfinish(conn);
  return error;
}

bool RequirePostgres() {
  const char* v = std::getenv("STRATALAKE_REQUIRE_POSTGRES");
  return v && std::string(v) == "1";
}

void PrintTo(Backend backend, std::ostream* os) {
  *os << (backend == Backend::kSqlite ? "SQLite" : "PostgreSQL");
}

class RegistryStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kSqlite) {
      path_ = dir_.Join("nested/folder/registry.db");  // parents do not exist yet
      uri_ = path_;
      return;
    }
    const char* admin = std::getenv("STRATALAKE_TEST_POSTGRES_URL");
    if (admin == nullptr || *admin == '\0') {
      if (RequirePostgres()) {
        FAIL() << "STRATALAKE_REQUIRE_POSTGRES=1 but STRATALAKE_TEST_POSTGRES_URL is not set";
      }
      GTEST_SKIP() << "PostgreSQL tests need STRATALAKE_TEST_POSTGRES_URL (a server's URL; "
                      "`scripts/postgres.sh start DIR` starts one and prints it)";
    }
    admin_url_ = admin;
    // Our own random identifier; CREATE DATABASE takes no parameters.
    db_name_ = "sl_test_" + RandomHex();
    std::string error = AdminExec(admin_url_, "CREATE DATABASE " + db_name_);
    ASSERT_EQ(error, "") << "cannot create a test database on " << admin_url_;
    created_db_ = true;
    uri_ = WithDatabase(admin_url_, db_name_);
  }

  void TearDown() override {
    if (created_db_) {
      EXPECT_EQ(AdminExec(admin_url_, "DROP DATABASE IF EXISTS " + db_name_ + " WITH (FORCE)"), "");
    }
  }

  arrow::Result<std::unique_ptr<RegistryStore>> Open() { return OpenRegistryStore(uri_); }

  // Commits versions 1..3 of a small project:
  //   v1: entity user, source events, feature views b_stats and a_stats
  //   v2: a_stats changed, source events deleted
  //   v3: source events re-created, feature service scoring added
  void CommitSample(RegistryStore* store) {
    ASSERT_OK_AND_ASSIGN(auto v1, store->Commit(0, Rec("ann", "first", 1000, 4),
                                                {Obj("entity", "user", 1, R"({"e":1})"),
                                                 Obj("source", "events", 1, R"({"s":1})"),
                                                 Obj("feature_view", "b_stats", 1, R"({"b":1})"),
                                                 Obj("feature_view", "a_stats", 1, R"({"a":1})")}));
    EXPECT_EQ(v1.version, 1);
    ASSERT_OK_AND_ASSIGN(auto v2, store->Commit(1, Rec("bob", "second", 2000, 2),
                                                {Obj("feature_view", "a_stats", 2, R"({"a":2})"),
                                                 Deleted("source", "events", 2)}));
    EXPECT_EQ(v2.version, 2);
    ASSERT_OK_AND_ASSIGN(auto v3,
                         store->Commit(2, Rec("ann", "third", 3000, 2),
                                       {Obj("source", "events", 3, R"({"s":3})"),
                                        Obj("feature_service", "scoring", 1, R"({"fs":1})")}));
    EXPECT_EQ(v3.version, 3);
  }

  TempDir dir_;
  std::string path_;  // SQLite only
  std::string uri_;
  std::string admin_url_;
  std::string db_name_;
  bool created_db_ = false;
};

TEST_P(RegistryStoreTest, EmptyRegistryIsAtVersionZero) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  ASSERT_OK_AND_ASSIGN(auto head, store->HeadVersion());
  EXPECT_EQ(head, 0);
  ASSERT_OK_AND_ASSIGN(auto objects, store->ObjectsAt(0));
  EXPECT_TRUE(objects.empty());
  ASSERT_OK_AND_ASSIGN(auto versions, store->Versions());
  EXPECT_TRUE(versions.empty());
  ASSERT_OK_AND_ASSIGN(auto history, store->ObjectHistory("entity", "user"));
  EXPECT_TRUE(history.empty());
  for (int64_t v : {int64_t{-1}, int64_t{1}}) {
    auto st = store->ObjectsAt(v).status();
    EXPECT_TRUE(HasErrorKind(st, ErrorKind::kVersionNotFound)) << v << ": " << st.ToString();
  }
  if (GetParam() == Backend::kSqlite) {
    EXPECT_EQ(store->Describe(), "sqlite:" + path_);
  } else {
    EXPECT_EQ(store->Describe(), uri_);
  }
}

TEST_P(RegistryStoreTest, ObjectsAtEachVersion) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  ASSERT_NO_FATAL_FAILURE(CommitSample(store.get()));
  ASSERT_OK_AND_ASSIGN(auto head, store->HeadVersion());
  EXPECT_EQ(head, 3);

  ASSERT_OK_AND_ASSIGN(auto at0, store->ObjectsAt(0));
  EXPECT_TRUE(at0.empty());
  ASSERT_OK_AND_ASSIGN(auto at1, store->ObjectsAt(1));
  EXPECT_EQ(Rows(at1), (std::vector<std::string>{
                           R"(entity/user@1:1={"e":1})",
                           R"(feature_view/a_stats@1:1={"a":1})",
                           R"(feature_view/b_stats@1:1={"b":1})",
                           R"(source/events@1:1={"s":1})",
                       }));
  ASSERT_OK_AND_ASSIGN(auto at2, store->ObjectsAt(2));
  EXPECT_EQ(Rows(at2), (std::vector<std::string>{
                           R"(entity/user@1:1={"e":1})",
                           R"(feature_view/a_stats@2:2={"a":2})",
                           R"(feature_view/b_stats@1:1={"b":1})",
                       }));
  ASSERT_OK_AND_ASSIGN(auto at3, store->ObjectsAt(3));
  EXPECT_EQ(Rows(at3), (std::vector<std::string>{
                           R"(entity/user@1:1={"e":1})",
                           R"(feature_service/scoring@1:3={"fs":1})",
                           R"(feature_view/a_stats@2:2={"a":2})",
                           R"(feature_view/b_stats@1:1={"b":1})",
                           R"(source/events@3:3={"s":3})",
                       }));
  auto st = store->ObjectsAt(4).status();
  EXPECT_TRUE(HasErrorKind(st, ErrorKind::kVersionNotFound)) << st.ToString();
}

TEST_P(RegistryStoreTest, ObjectHistoryListsEveryRowOldestFirst) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  ASSERT_NO_FATAL_FAILURE(CommitSample(store.get()));
  ASSERT_OK_AND_ASSIGN(auto events, store->ObjectHistory("source", "events"));
  EXPECT_EQ(Rows(events), (std::vector<std::string>{
                              R"(source/events@1:1={"s":1})",
                              R"(source/events@2:2:deleted=)",
                              R"(source/events@3:3={"s":3})",
                          }));
  ASSERT_OK_AND_ASSIGN(auto user, store->ObjectHistory("entity", "user"));
  EXPECT_EQ(Rows(user), (std::vector<std::string>{R"(entity/user@1:1={"e":1})"}));
  // The kind is part of the identity.
  ASSERT_OK_AND_ASSIGN(auto other_kind, store->ObjectHistory("source", "user"));
  EXPECT_TRUE(other_kind.empty());
}

TEST_P(RegistryStoreTest, VersionsListsRecordsOldestFirst) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  ASSERT_NO_FATAL_FAILURE(CommitSample(store.get()));
  ASSERT_OK_AND_ASSIGN(auto versions, store->Versions());
  ASSERT_EQ(versions.size(), 3u);
  const char* authors[] = {"ann", "bob", "ann"};
  const char* messages[] = {"first", "second", "third"};
  const int32_t changes[] = {4, 2, 2};
  for (size_t i = 0; i < versions.size(); ++i) {
    EXPECT_EQ(versions[i].version, static_cast<int64_t>(i + 1));
    EXPECT_EQ(versions[i].committed_at_ms, 1000 * static_cast<int64_t>(i + 1));
    EXPECT_EQ(versions[i].author, authors[i]);
    EXPECT_EQ(versions[i].message, messages[i]);
    EXPECT_EQ(versions[i].num_changes, changes[i]);
  }
}

TEST_P(RegistryStoreTest, StaleBaseConflictsAndWritesNothing) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  ASSERT_OK(store->Commit(0, Rec("ann", "first", 1, 1), {Obj("entity", "user", 1, "{}")}).status());
  for (int64_t base : {int64_t{0}, int64_t{5}}) {
    auto result =
        store->Commit(base, Rec("bob", "stale", 2, 1), {Obj("entity", "driver", 1, "{}")});
    ASSERT_FALSE(result.ok()) << "base " << base;
    EXPECT_TRUE(HasErrorKind(result.status(), ErrorKind::kRegistryConflict))
        << result.status().ToString();
    EXPECT_NE(result.status().message().find("registry is now at version 1, planned against " +
                                             std::to_string(base)),
              std::string::npos)
        << result.status().message();
    EXPECT_NE(result.status().message().find("stratalake plan"), std::string::npos);
  }
  ASSERT_OK_AND_ASSIGN(auto head, store->HeadVersion());
  EXPECT_EQ(head, 1);
  ASSERT_OK_AND_ASSIGN(auto versions, store->Versions());
  EXPECT_EQ(versions.size(), 1u);
  ASSERT_OK_AND_ASSIGN(auto driver, store->ObjectHistory("entity", "driver"));
  EXPECT_TRUE(driver.empty());
  // The store is still usable after a conflict.
  ASSERT_OK_AND_ASSIGN(
      auto v2, store->Commit(1, Rec("bob", "fresh", 3, 1), {Obj("entity", "driver", 1, "{}")}));
  EXPECT_EQ(v2.version, 2);
}

TEST_P(RegistryStoreTest, DuplicateObjectVersionWritesNothing) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  ASSERT_OK(store->Commit(0, Rec("ann", "first", 1, 1), {Obj("entity", "user", 1, "{}")}).status());
  // The first row is fine; the second reuses (entity, user, 1): the whole commit fails.
  auto result = store->Commit(1, Rec("ann", "bad", 2, 2),
                              {Obj("entity", "driver", 1, "{}"), Obj("entity", "user", 1, "{}")});
  ASSERT_FALSE(result.ok());
  EXPECT_FALSE(HasErrorKind(result.status(), ErrorKind::kRegistryConflict));
  ASSERT_OK_AND_ASSIGN(auto head, store->HeadVersion());
  EXPECT_EQ(head, 1);
  ASSERT_OK_AND_ASSIGN(auto driver, store->ObjectHistory("entity", "driver"));
  EXPECT_TRUE(driver.empty());
  ASSERT_OK(store->Commit(1, Rec("ann", "good", 3, 1), {Obj("entity", "user", 2, "{}")}).status());
}

TEST_P(RegistryStoreTest, OrdersByKindThenNameBytewise) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  ASSERT_OK(store
                ->Commit(0, Rec("ann", "names", 1, 5),
                         {Obj("source", "ab", 1, "{}"), Obj("source", "a_b", 1, "{}"),
                          Obj("source", "B", 1, "{}"), Obj("entity", "z", 1, "{}"),
                          Obj("source", "a", 1, "{}")})
                .status());
  ASSERT_OK_AND_ASSIGN(auto objects, store->ObjectsAt(1));
  std::vector<std::string> names;
  names.reserve(objects.size());
  for (const auto& o : objects) names.push_back(o.kind + "/" + o.name);
  EXPECT_EQ(names, (std::vector<std::string>{"entity/z", "source/B", "source/a", "source/a_b",
                                             "source/ab"}));
}

TEST_P(RegistryStoreTest, SpecsAndTextRoundTripExactly) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  std::string spec =
      "{\"doc\":\"line1\\nline2 'quoted' \\\"x\\\" $1 ?1 ; DROP TABLE x; — ü 日本\"}";
  spec += std::string(100000, 'x');  // large specs are fine
  std::string name = "n'ame; --";
  ASSERT_OK(store
                ->Commit(0, Rec("O'Brien", "it's \"done\"\nnext line", 7, 1),
                         {Obj("feature_view", name, 1, spec)})
                .status());
  ASSERT_OK_AND_ASSIGN(auto objects, store->ObjectsAt(1));
  ASSERT_EQ(objects.size(), 1u);
  EXPECT_EQ(objects[0].name, name);
  EXPECT_EQ(objects[0].spec, spec);
  ASSERT_OK_AND_ASSIGN(auto versions, store->Versions());
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_EQ(versions[0].author, "O'Brien");
  EXPECT_EQ(versions[0].message, "it's \"done\"\nnext line");
}

TEST_P(RegistryStoreTest, ManyRowsInOneCommit) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  std::vector<StoredObject> rows;
  for (int i = 0; i < 2500; ++i) {  // more than one INSERT batch in PostgreSQL
    char name[16];
    std::snprintf(name, sizeof(name), "fv%05d", i);
    rows.push_back(Obj("feature_view", name, 1, "{}"));
  }
  ASSERT_OK(store->Commit(0, Rec("ann", "bulk", 1, 2500), rows).status());
  ASSERT_OK_AND_ASSIGN(auto objects, store->ObjectsAt(1));
  ASSERT_EQ(objects.size(), 2500u);
  EXPECT_EQ(objects.front().name, "fv00000");
  EXPECT_EQ(objects.back().name, "fv02499");
}

TEST_P(RegistryStoreTest, StateIsOverwrittenInPlace) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  ASSERT_OK_AND_ASSIGN(auto missing, store->GetState("watermark/fv"));
  EXPECT_FALSE(missing.has_value());
  ASSERT_OK(store->PutState("watermark/fv", "100", 1));
  ASSERT_OK(store->PutState("watermark/other", "7", 1));
  ASSERT_OK(store->PutState("watermark/fv", "200", 2));
  ASSERT_OK_AND_ASSIGN(auto fv, store->GetState("watermark/fv"));
  EXPECT_EQ(fv, std::optional<std::string>("200"));
  ASSERT_OK_AND_ASSIGN(auto other, store->GetState("watermark/other"));
  EXPECT_EQ(other, std::optional<std::string>("7"));
  ASSERT_OK(store->PutState("empty", "", 3));
  ASSERT_OK_AND_ASSIGN(auto empty, store->GetState("empty"));
  EXPECT_EQ(empty, std::optional<std::string>(""));
  // State is not versioned.
  ASSERT_OK_AND_ASSIGN(auto head, store->HeadVersion());
  EXPECT_EQ(head, 0);
}

TEST_P(RegistryStoreTest, ReopenSeesEverything) {
  {
    ASSERT_OK_AND_ASSIGN(auto store, Open());
    ASSERT_NO_FATAL_FAILURE(CommitSample(store.get()));
    ASSERT_OK(store->PutState("k", "v", 5));
  }
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  ASSERT_OK_AND_ASSIGN(auto head, store->HeadVersion());
  EXPECT_EQ(head, 3);
  ASSERT_OK_AND_ASSIGN(auto at3, store->ObjectsAt(3));
  EXPECT_EQ(at3.size(), 5u);
  ASSERT_OK_AND_ASSIGN(auto versions, store->Versions());
  EXPECT_EQ(versions.size(), 3u);
  ASSERT_OK_AND_ASSIGN(auto k, store->GetState("k"));
  EXPECT_EQ(k, std::optional<std::string>("v"));
  ASSERT_OK(
      store->Commit(3, Rec("ann", "after reopen", 4, 1), {Deleted("entity", "user", 2)}).status());
}

// Behaviour only the PostgreSQL backend has.
class PostgresRegistryStoreTest : public RegistryStoreTest {};

TEST_P(PostgresRegistryStoreTest, ReconnectsAfterTheServerDropsTheConnection) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  ASSERT_OK(store->Commit(0, Rec("ann", "first", 1, 0), {}).status());
  // The database name is our own random identifier.
  ASSERT_EQ(AdminExec(admin_url_,
                      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" +
                          db_name_ + "'"),
            "");
  // The call that finds the connection dead may fail; the next one reconnects.
  auto first = store->HeadVersion();
  if (!first.ok()) {
    EXPECT_TRUE(first.status().IsIOError()) << first.status().ToString();
  }
  ASSERT_OK_AND_ASSIGN(auto head, store->HeadVersion());
  EXPECT_EQ(head, 1);
}

TEST_P(RegistryStoreTest, ConcurrentOpensOfAFreshRegistry) {
  constexpr int kThreads = 8;
  std::latch start(kThreads);
  std::vector<arrow::Status> results(kThreads);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      auto store = Open();
      results[i] = store.ok() ? store.ValueUnsafe()->HeadVersion().status() : store.status();
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) EXPECT_TRUE(results[i].ok()) << results[i].ToString();
}

TEST_P(RegistryStoreTest, ConcurrentCommitsFromOneBaseHaveOneWinner) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 3;
  std::vector<std::unique_ptr<RegistryStore>> stores;  // one connection per thread
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_OK_AND_ASSIGN(auto store, Open());
    stores.push_back(std::move(store));
  }
  for (int round = 0; round < kRounds; ++round) {
    const int64_t base = round;
    std::latch start(kThreads);
    std::vector<arrow::Status> results(kThreads);
    std::vector<std::thread> threads;
    threads.reserve(kThreads);
    threads.reserve(kThreads);
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        std::string name = "r" + std::to_string(round) + "t" + std::to_string(i);
        start.arrive_and_wait();
        results[i] = stores[i]
                         ->Commit(base, Rec(name, "race", round, 1),
                                  {Obj("entity", name, 1, "{}"), Obj("source", name, 1, "{}")})
                         .status();
      });
    }
    for (auto& t : threads) t.join();
    int winner = -1, winners = 0, conflicts = 0;
    for (int i = 0; i < kThreads; ++i) {
      if (results[i].ok()) {
        ++winners;
        winner = i;
      } else if (HasErrorKind(results[i], ErrorKind::kRegistryConflict)) {
        ++conflicts;
      } else {
        ADD_FAILURE() << "thread " << i << ": " << results[i].ToString();
      }
    }
    ASSERT_EQ(winners, 1) << "round " << round;
    EXPECT_EQ(conflicts, kThreads - 1);
    ASSERT_OK_AND_ASSIGN(auto head, stores[0]->HeadVersion());
    EXPECT_EQ(head, base + 1);
    // Only the winner's rows are there, all in the new version.
    std::string name = "r" + std::to_string(round) + "t" + std::to_string(winner);
    ASSERT_OK_AND_ASSIGN(auto objects, stores[kThreads - 1]->ObjectsAt(base + 1));
    EXPECT_EQ(objects.size(), 2u * (round + 1));
    int in_this_round = 0;
    for (const auto& o : objects) {
      if (o.registry_version == base + 1) {
        ++in_this_round;
        EXPECT_EQ(o.name, name);
      }
    }
    EXPECT_EQ(in_this_round, 2);
    ASSERT_OK_AND_ASSIGN(auto versions, stores[1]->Versions());
    ASSERT_EQ(versions.size(), static_cast<size_t>(round + 1));
    EXPECT_EQ(versions.back().author, name);
  }
}

// Like the thread race, but across processes: SQLite's locks between processes
// (fcntl) are a different mechanism from those between connections in one.
TEST_P(RegistryStoreTest, ProcessesCommittingFromOneBaseHaveOneWinner) {
  constexpr int kProcesses = 6;
  {
    ASSERT_OK_AND_ASSIGN(auto store, Open());
    ASSERT_OK(
        store->Commit(0, Rec("ann", "first", 1, 1), {Obj("entity", "user", 1, "{}")}).status());
  }  // no connection is open across fork()
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  std::vector<pid_t> children;
  for (int i = 0; i < kProcesses; ++i) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Child: no gtest assertions; report through the exit code.
      close(go[1]);
      auto opened = Open();
      if (!opened.ok()) _exit(3);
      auto store = std::move(opened).ValueUnsafe();
      char c;
      while (read(go[0], &c, 1) < 0) {
      }  // EOF once the parent closes its end: everyone starts together
      std::string name = "p" + std::to_string(i);
      auto result = store->Commit(1, Rec(name, "race", 2, 1), {Obj("entity", name, 1, "{}")});
      int code = result.ok()                                                   ? 0
                 : HasErrorKind(result.status(), ErrorKind::kRegistryConflict) ? 1
                                                                               : 2;
      store.reset();
      _exit(code);
    }
    children.push_back(pid);
  }
  close(go[0]);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let them connect
  close(go[1]);
  int winners = 0, conflicts = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (pid_t pid : children) {
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        ADD_FAILURE() << "child " << pid << " hung";
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(WIFEXITED(status)) << "child " << pid << " status " << status;
    int code = WEXITSTATUS(status);
    if (code == 0) {
      ++winners;
    } else if (code == 1) {
      ++conflicts;
    } else {
      ADD_FAILURE() << "child " << pid << " exited with " << code;
    }
  }
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(conflicts, kProcesses - 1);
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  ASSERT_OK_AND_ASSIGN(auto head, store->HeadVersion());
  EXPECT_EQ(head, 2);
  ASSERT_OK_AND_ASSIGN(auto objects, store->ObjectsAt(2));
  EXPECT_EQ(objects.size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Backends, RegistryStoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
                         });

INSTANTIATE_TEST_SUITE_P(Backends, PostgresRegistryStoreTest, ::testing::Values(Backend::kPostgres),
                         [](const ::testing::TestParamInfo<Backend>&) { return "Postgres"; });

TEST(RegistryStoreUriTest, SqliteForms) {
  TempDir dir;
  for (const std::string& uri :
       {dir.Join("plain.db"), "sqlite://" + dir.Join("scheme.db"), "sqlite:" + dir.Join("d.db")}) {
    ASSERT_OK_AND_ASSIGN(auto store, OpenRegistryStore(uri));
    ASSERT_OK_AND_ASSIGN(auto head, store->HeadVersion());
    EXPECT_EQ(head, 0);
  }
  ASSERT_OK_AND_ASSIGN(auto store, OpenRegistryStore("sqlite://" + dir.Join("x.db")));
  EXPECT_EQ(store->Describe(), "sqlite:" + dir.Join("x.db"));
  // What Describe() prints opens the same registry.
  ASSERT_OK(store->Commit(0, Rec("a", "m", 1, 0), {}).status());
  ASSERT_OK_AND_ASSIGN(auto again, OpenRegistryStore(store->Describe()));
  ASSERT_OK_AND_ASSIGN(auto head, again->HeadVersion());
  EXPECT_EQ(head, 1);
}

TEST(RegistryStoreUriTest, RejectsUnknownSchemesWithoutEchoingCredentials) {
  auto result = OpenRegistryStore("mysql://root:hunter2@db/registry");
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("'mysql'"), std::string::npos)
      << result.status().message();
  EXPECT_EQ(result.status().message().find("hunter2"), std::string::npos);
  EXPECT_FALSE(OpenRegistryStore("").ok());
  EXPECT_FALSE(OpenRegistryStore("sqlite://").ok());
}

TEST(RegistryStoreUriTest, PostgresConnectErrorNamesUrlWithoutPassword) {
  // Port 1 on loopback refuses connections at once.
  auto result = OpenRegistryStore(
      "postgresql://alice:s3cret@127.0.0.1:1/registry?sslmode=disable&password=other");
  ASSERT_FALSE(result.ok());
  const std::string& message = result.status().message();
  EXPECT_TRUE(result.status().IsIOError()) << result.status().ToString();
  EXPECT_NE(message.find("postgresql://alice@127.0.0.1:1/registry?sslmode=disable"),
            std::string::npos)
      << message;
  EXPECT_EQ(message.find("s3cret"), std::string::npos) << message;
  EXPECT_EQ(message.find("other"), std::string::npos) << message;
  EXPECT_NE(message.find("refused"), std::string::npos) << message;  // libpq's own words
  EXPECT_NE(message.find("check that the server is running"), std::string::npos) << message;

  auto keyword_form = OpenPostgresStore("host=127.0.0.1 port=1 password='a b' dbname=x");
  ASSERT_FALSE(keyword_form.ok());
  EXPECT_EQ(keyword_form.status().message().find("a b"), std::string::npos)
      << keyword_form.status().message();
}

}  // namespace
}  // namespace stratalake::registry
