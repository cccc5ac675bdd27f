// The commit coordinator's database contract (SQLite here; PostgreSQL too when
// STRATALAKE_TEST_POSTGRES_URL names a server, required with
// STRATALAKE_REQUIRE_POSTGRES=1) and CoordinatedLogStore's protocol on the local
// filesystem: writer processes racing for versions, and an entry left
// incomplete (a writer that died after recording it) completed by the next
// listing. The tests against a real S3 server without conditional writes are
// tests/python/test_commit_coordinator.py.
#include "storage/commit_coordinator.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>
#include <string>

#include <arrow/filesystem/localfs.h>
#include <gtest/gtest.h>

#include "storage/coordinated_log_store.h"

namespace stratalake::delta {
namespace {

std::string TempDir() {
  auto dir =
      std::filesystem::temp_directory_path() /
      ("sl_coord_" + std::to_string(::getpid()) + "_" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

void CheckContract(CommitCoordinator& c) {
  const std::string t = "s3://bucket/t-" + std::to_string(std::random_device{}());
  auto none = c.Latest(t);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(c.PutIfAbsent(t, 0, "tmp/0").ok());
  auto again = c.PutIfAbsent(t, 0, "tmp/0b");
  EXPECT_TRUE(again.IsAlreadyExists()) << again.ToString();
  ASSERT_TRUE(c.PutIfAbsent(t, 1, "tmp/1").ok());
  // Another table's versions are its own.
  ASSERT_TRUE(c.PutIfAbsent(t + "x", 1, "other").ok());
  auto latest = c.Latest(t);
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->version, 1);
  EXPECT_EQ((*latest)->temp_path, "tmp/1");
  EXPECT_FALSE((*latest)->complete);
  ASSERT_TRUE(c.MarkComplete(t, 1).ok());
  auto one = c.Get(t, 1);
  ASSERT_TRUE(one.ok() && one->has_value());
  EXPECT_TRUE((*one)->complete);
  auto zero = c.Get(t, 0);
  ASSERT_TRUE(zero.ok() && zero->has_value());
  EXPECT_EQ((*zero)->temp_path, "tmp/0");
  EXPECT_FALSE((*zero)->complete);
  auto missing = c.Get(t, 7);
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST(CommitCoordinatorTest, SqliteKeepsOneEntryPerVersion) {
  auto c = OpenCommitCoordinator("sqlite://" + TempDir() + "/sub/registry.db");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  CheckContract(**c);
}

TEST(CommitCoordinatorTest, PostgresKeepsOneEntryPerVersion) {
  const char* url = std::getenv("STRATALAKE_TEST_POSTGRES_URL");
  if (url == nullptr || *url == '\0') {
    const char* require = std::getenv("STRATALAKE_REQUIRE_POSTGRES");
    if (require && std::string(require) == "1") FAIL() << "STRATALAKE_TEST_POSTGRES_URL is not set";
    GTEST_SKIP() << "needs STRATALAKE_TEST_POSTGRES_URL (scripts/postgres.sh start DIR)";
  }
  // The server's default database; table keys are random, so runs do not meet.
  auto c = OpenCommitCoordinator(url);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  CheckContract(**c);
}

TEST(CommitCoordinatorTest, UnknownSchemesAreRefused) {
  EXPECT_EQ(OpenCommitCoordinator("mysql://h/db").status().message(),
            "commit coordinator 'mysql://h/db' is not a database: use "
            "postgresql://user@host:5432/db, sqlite:///path/registry.db or a file path (in "
            "stratalake.yaml, 'registry' names the repository's registry)");
}

// One writer: commits `n` versions, each at the newest version it sees + 1,
// retrying on AlreadyExists. Returns the versions it won.
std::vector<int64_t> Commit(const std::string& root, const std::string& db, const std::string& who,
                            int n) {
  CoordinatedLogStore store(std::make_shared<arrow::fs::LocalFileSystem>(), root, db);
  std::vector<int64_t> won;
  for (int i = 0; i < n; ++i) {
    while (true) {
      auto listing = store.List();
      if (!listing.ok()) return {};
      int64_t next = listing->commits.empty() ? 0 : listing->commits.rbegin()->first + 1;
      auto st = store.PutIfAbsent(store.CommitPath(next), who + "-" + std::to_string(i) + "\n");
      if (st.ok()) {
        won.push_back(next);
        break;
      }
      if (!st.IsAlreadyExists()) return {};
    }
  }
  return won;
}

TEST(CoordinatedLogStoreTest, WriterProcessesNeverShareAVersion) {
  const std::string dir = TempDir();
  const std::string root = dir + "/t", db = dir + "/registry.db";
  std::filesystem::create_directories(root + "/_delta_log/.tmp");  // S3 needs no folders
  constexpr int kWriters = 4, kEach = 15;
  std::vector<pid_t> pids;
  for (int w = 0; w < kWriters; ++w) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto won = Commit(root, db, "w" + std::to_string(w), kEach);
      ::_exit(won.size() == kEach ? 0 : 1);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  // Versions 0..59, each holding one writer's commit, every commit once.
  CoordinatedLogStore store(std::make_shared<arrow::fs::LocalFileSystem>(), root, db);
  auto listing = store.List();
  ASSERT_TRUE(listing.ok()) << listing.status().ToString();
  ASSERT_EQ(listing->commits.size(), static_cast<size_t>(kWriters * kEach));
  std::set<std::string> commits;
  for (const auto& [v, f] : listing->commits) {
    auto text = store.Read(f.path);
    ASSERT_TRUE(text.ok());
    commits.insert(*text);
  }
  EXPECT_EQ(commits.size(), static_cast<size_t>(kWriters * kEach));
  EXPECT_EQ(listing->commits.rbegin()->first, kWriters * kEach - 1);
  auto coordinator = OpenCommitCoordinator(db);
  ASSERT_TRUE(coordinator.ok());
  for (int64_t v = 0; v < kWriters * kEach; ++v) {
    auto e = (*coordinator)->Get("s3://" + root, v);
    ASSERT_TRUE(e.ok() && e->has_value()) << v;
    EXPECT_TRUE((*e)->complete) << v;
  }
  EXPECT_TRUE(std::filesystem::is_empty(root + "/_delta_log/.tmp"));
  std::filesystem::remove_all(dir);
}

TEST(CoordinatedLogStoreTest, AnIncompleteEntryIsCompletedByTheNextListingOrCommit) {
  const std::string dir = TempDir();
  const std::string root = dir + "/t", db = dir + "/registry.db";
  std::filesystem::create_directories(root + "/_delta_log/.tmp");
  auto fs = std::make_shared<arrow::fs::LocalFileSystem>();
  CoordinatedLogStore store(fs, root, db);
  ASSERT_TRUE(store.PutIfAbsent(store.CommitPath(0), "zero\n").ok());
  // What a writer killed after its insert leaves: the temporary object and an
  // incomplete entry, no commit file.
  auto coordinator = OpenCommitCoordinator(db);
  ASSERT_TRUE(coordinator.ok());
  const std::string temp = root + "/_delta_log/.tmp/00000000000000000001.json.dead";
  ASSERT_TRUE(store.PutAtomic(temp, "one\n").ok());
  ASSERT_TRUE((*coordinator)->PutIfAbsent("s3://" + root, 1, temp).ok());
  // A writer that lost version 1 sees AlreadyExists, and the commit file is there.
  EXPECT_TRUE(store.PutIfAbsent(store.CommitPath(1), "mine\n").IsAlreadyExists());
  auto text = store.Read(store.CommitPath(1));
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "one\n");
  EXPECT_FALSE(std::filesystem::exists(temp));
  // Again, now completed by a listing.
  const std::string temp2 = root + "/_delta_log/.tmp/00000000000000000002.json.dead";
  ASSERT_TRUE(store.PutAtomic(temp2, "two\n").ok());
  ASSERT_TRUE((*coordinator)->PutIfAbsent("s3://" + root, 2, temp2).ok());
  auto listing = store.List();
  ASSERT_TRUE(listing.ok());
  EXPECT_EQ(listing->commits.size(), 3u);
  EXPECT_EQ(*store.Read(store.CommitPath(2)), "two\n");
  auto e = (*coordinator)->Get("s3://" + root, 2);
  ASSERT_TRUE(e.ok() && e->has_value());
  EXPECT_TRUE((*e)->complete);
  // A commit file written without the coordinator (before it was switched on)
  // is never overwritten.
  ASSERT_TRUE(fs->CreateDir(root + "/_delta_log").ok());
  ASSERT_TRUE(store.PutAtomic(store.CommitPath(3), "three\n").ok());
  EXPECT_TRUE(store.PutIfAbsent(store.CommitPath(3), "stale\n").IsAlreadyExists());
  EXPECT_EQ(*store.Read(store.CommitPath(3)), "three\n");
  // A checkpoint is put if absent too.
  const std::string cp = root + "/_delta_log/00000000000000000003.checkpoint.parquet";
  EXPECT_TRUE(store.PutIfAbsent(cp, "cp").ok());
  EXPECT_TRUE(store.PutIfAbsent(cp, "cp").IsAlreadyExists());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stratalake::delta
