// Object-store settings: where an s3:// URI's endpoint, region and credentials come
// from (call options, registered prefixes, the URI, the environment), the keys
// accepted, and the log store chosen. No server is contacted here; the tests against
// a real one are in tests/python/test_object_store.py.
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <arrow/filesystem/s3fs.h>
#include <gtest/gtest.h>

#include "storage/coordinated_log_store.h"
#include "storage/log_store.h"
#include "storage/object_store.h"
#include "storage/s3_log_store.h"
#include "stratalake/object_store.h"

namespace stratalake {
namespace {

// These tests start the AWS SDK (S3 filesystems); it must stop before the process exits.
class S3Finalizer : public ::testing::Environment {
 public:
  void TearDown() override { (void)arrow::fs::EnsureS3Finalized(); }
};
[[maybe_unused]] ::testing::Environment* const kS3Finalizer =
    ::testing::AddGlobalTestEnvironment(new S3Finalizer);

// Clears the AWS_* variables for one test and restores them after.
class ObjectStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* k : kVars) {
      const char* v = std::getenv(k);
      saved_.emplace_back(k, v ? std::optional<std::string>(v) : std::nullopt);
      ::unsetenv(k);
    }
    ::setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    ::setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
    ::setenv("AWS_EC2_METADATA_DISABLED", "true", 1);  // no instance-metadata lookups
  }
  void TearDown() override {
    for (const auto& [k, v] : saved_) {
      if (v) {
        ::setenv(k.c_str(), v->c_str(), 1);
      } else {
        ::unsetenv(k.c_str());
      }
    }
  }
  static constexpr const char* kVars[] = {"AWS_ENDPOINT_URL",
                                          "AWS_ENDPOINT_URL_S3",
                                          "AWS_REGION",
                                          "AWS_DEFAULT_REGION",
                                          "AWS_ACCESS_KEY_ID",
                                          "AWS_SECRET_ACCESS_KEY",
                                          "AWS_SESSION_TOKEN",
                                          "AWS_PROFILE",
                                          "STRATALAKE_S3_ALLOW_UNSAFE_COMMITS",
                                          "STRATALAKE_S3_COMMIT_COORDINATOR",
                                          "AWS_SHARED_CREDENTIALS_FILE",
                                          "AWS_CONFIG_FILE"};
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

S3Connection ConnectionFor(const std::string& uri, std::string* path,
                           const std::map<std::string, std::string>& options = {}) {
  auto fs = OpenFileSystem(uri, path, options);
  EXPECT_TRUE(fs.ok()) << fs.status().ToString();
  auto conn = S3ConnectionOf(**fs);
  EXPECT_TRUE(conn.ok()) << conn.status().ToString();
  return *conn;
}

TEST_F(ObjectStoreTest, KeysInOurSpellingAndDeltaRsSpelling) {
  auto a = ObjectStoreOptions::FromMap({{"endpoint", "http://h:1"},
                                        {"REGION", "eu-west-1"},
                                        {"access_key_id", "k"},
                                        {"secret_access_key", "s"},
                                        {"allow_unsafe_commits", "true"}});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->endpoint, "http://h:1");
  EXPECT_EQ(a->region, "eu-west-1");
  EXPECT_EQ(a->access_key_id, "k");
  EXPECT_EQ(a->allow_unsafe_commits, 1);
  auto b = ObjectStoreOptions::FromMap({{"AWS_ENDPOINT_URL", "http://h:2"},
                                        {"AWS_REGION", "r"},
                                        {"AWS_ALLOW_HTTP", "true"},
                                        {"AWS_S3_ALLOW_UNSAFE_RENAME", "false"},
                                        {"conditional_put", "etag"}});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->endpoint, "http://h:2");
  EXPECT_EQ(b->allow_unsafe_commits, 0);
  auto bad = ObjectStoreOptions::FromMap({{"endpont", "x"}});
  EXPECT_EQ(bad.status().message(),
            "unknown storage option 'endpont' (known: endpoint, region, profile, access_key_id, "
            "secret_access_key, session_token, allow_unsafe_commits, commit_coordinator, or "
            "their AWS_* names as delta-rs spells them)");
  auto not_bool = ObjectStoreOptions::FromMap({{"allow_unsafe_commits", "maybe"}});
  EXPECT_EQ(not_bool.status().message(),
            "storage option 'allow_unsafe_commits' must be true or false, not 'maybe'");
}

TEST_F(ObjectStoreTest, SettingsComeFromCallThenPrefixThenUriThenEnvironment) {
  ::setenv("AWS_ENDPOINT_URL", "http://env-host:9000", 1);
  ::setenv("AWS_ACCESS_KEY_ID", "env-key", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "env-secret", 1);
  std::string path;
  // The environment alone; region us-east-1 with an endpoint.
  S3Connection c = ConnectionFor("s3://bucket/a/t", &path);
  EXPECT_EQ(path, "bucket/a/t");
  EXPECT_EQ(c.endpoint_url, "http://env-host:9000");
  EXPECT_EQ(c.region, "us-east-1");
  EXPECT_EQ(c.access_key_id, "env-key");
  EXPECT_FALSE(c.allow_unsafe_commits);
  // The URI's query beats the environment.
  c = ConnectionFor("s3://bucket/a/t?endpoint_override=uri-host:1&scheme=http&region=r1", &path);
  EXPECT_EQ(path, "bucket/a/t");
  EXPECT_EQ(c.endpoint_url, "http://uri-host:1");
  EXPECT_EQ(c.region, "r1");
  // A registered prefix beats the URI; the longest prefix wins; "bucket/ab" is not
  // under "bucket/a".
  ObjectStoreOptions repo;
  repo.endpoint = "https://repo-host";
  repo.access_key_id = "repo-key";
  repo.secret_access_key = "repo-secret";
  ASSERT_TRUE(SetObjectStoreOptions("s3://bucket/a/", repo).ok());
  ObjectStoreOptions deeper;
  deeper.region = "deep-region";
  deeper.allow_unsafe_commits = 1;
  ASSERT_TRUE(SetObjectStoreOptions("s3://bucket/a/deep", deeper).ok());
  c = ConnectionFor("s3://bucket/a/t?endpoint_override=uri-host:1&scheme=http", &path);
  EXPECT_EQ(c.endpoint_url, "https://repo-host");
  EXPECT_EQ(c.access_key_id, "repo-key");
  c = ConnectionFor("s3://bucket/a/deep/t", &path);
  EXPECT_EQ(c.endpoint_url, "http://env-host:9000");  // not set by the deeper prefix
  EXPECT_EQ(c.region, "deep-region");
  EXPECT_TRUE(c.allow_unsafe_commits);
  c = ConnectionFor("s3://bucket/ab/t", &path);
  EXPECT_EQ(c.endpoint_url, "http://env-host:9000");
  // The call's options beat everything.
  c = ConnectionFor("s3://bucket/a/t", &path, {{"endpoint", "call-host:5"}, {"region", "r9"}});
  EXPECT_EQ(c.endpoint_url, "https://call-host:5");
  EXPECT_EQ(c.region, "r9");
  // Keys in the URI (Arrow's spelling).
  c = ConnectionFor("s3://uk:us@other/t", &path);
  EXPECT_EQ(path, "other/t");
  EXPECT_EQ(c.access_key_id, "uk");
  EXPECT_EQ(c.secret_access_key, "us");
}

TEST_F(ObjectStoreTest, BadUrisAndOptionsAreRefusedWithTheReason) {
  std::string path;
  EXPECT_EQ(OpenFileSystem("s3://b/t?endpoint=x", &path).status().message(),
            "'s3://b/t?endpoint=x': unknown query parameter 'endpoint' (known: "
            "endpoint_override, scheme, region, allow_unsafe_commits)");
  EXPECT_EQ(OpenFileSystem("s3:///t", &path).status().message(),
            "'s3:///t' names no bucket: write s3://BUCKET/PATH");
  EXPECT_EQ(OpenFileSystem("s3://b/t", &path, {{"endpoint", "ftp://h"}}).status().message(),
            "S3 endpoint 'ftp://h' must start with http:// or https://");
  EXPECT_EQ(OpenFileSystem("s3://b/t", &path, {{"access_key_id", "k"}, {"region", "r"}})
                .status()
                .message(),
            "S3 access key id 'k' has no secret access key: set secret_access_key (or "
            "AWS_SECRET_ACCESS_KEY) too");
  EXPECT_EQ(SetObjectStoreOptions("/local/lake", {}).message(),
            "object store options are for s3:// URIs, not '/local/lake'");
}

TEST_F(ObjectStoreTest, S3TablesGetTheConditionalPutStore) {
  std::string path;
  auto fs = OpenFileSystem("s3://bucket/t", &path, {{"endpoint", "http://127.0.0.1:1"}});
  ASSERT_TRUE(fs.ok());
  auto store = delta::MakeLogStore(*fs, path);
  EXPECT_NE(dynamic_cast<delta::S3LogStore*>(store.get()), nullptr);
  EXPECT_EQ(store->CommitPath(3), "bucket/t/_delta_log/00000000000000000003.json");
  // A commit coordinator (a database URI) gives the coordinated store, whatever
  // the server supports; "none" turns it off again.
  ::setenv("STRATALAKE_S3_COMMIT_COORDINATOR", "/tmp/never-opened.db", 1);
  fs = OpenFileSystem("s3://bucket/t", &path, {{"endpoint", "http://127.0.0.1:1"}});
  ASSERT_TRUE(fs.ok());
  EXPECT_EQ(S3ConnectionOf(**fs)->commit_coordinator, "/tmp/never-opened.db");
  EXPECT_NE(dynamic_cast<delta::CoordinatedLogStore*>(delta::MakeLogStore(*fs, path).get()),
            nullptr);
  fs = OpenFileSystem("s3://bucket/t", &path,
                      {{"endpoint", "http://127.0.0.1:1"}, {"commit_coordinator", "none"}});
  ASSERT_TRUE(fs.ok());
  EXPECT_NE(dynamic_cast<delta::S3LogStore*>(delta::MakeLogStore(*fs, path).get()), nullptr);
  EXPECT_EQ(ObjectStoreOptions::FromMap({{"commit_coordinator", "registry"}}).status().message(),
            "storage option commit_coordinator: 'registry' means a repository's registry "
            "database and is only understood in stratalake.yaml's offline_store; give the "
            "database itself (postgresql://user@host:5432/db, sqlite:///path/registry.db)");
  // Local paths keep the POSIX store.
  auto local = OpenFileSystem("/tmp/x", &path);
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(path, "/tmp/x");
  EXPECT_NE(dynamic_cast<delta::LocalLogStore*>(delta::MakeLogStore(*local, path).get()), nullptr);
}

}  // namespace
}  // namespace stratalake
