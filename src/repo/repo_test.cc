// Tests of stratalake.yaml: every wrong value is an error naming the line
// (issue 24), and no yaml-cpp exception escapes LoadRepoConfig.
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "../../tests/test_util.h"
#include "stratalake/repo.h"
#include "stratalake/status.h"

namespace stratalake::repo {
namespace {

using stratalake::testing::TempDir;

// The error LoadRepoConfig gives for a stratalake.yaml holding `yaml`.
std::string ConfigError(const std::string& yaml) {
  TempDir dir;
  std::ofstream(dir.Join("stratalake.yaml")) << yaml;
  auto c = LoadRepoConfig(dir.path());
  if (c.ok()) return "(loaded)";
  EXPECT_TRUE(HasErrorKind(c.status(), ErrorKind::kDefinitionError)) << c.status().ToString();
  return c.status().message();
}

TEST(RepoConfig, Issue24ListInsideDefinitionsListIsAnErrorNotAnAbort) {
  EXPECT_EQ(ConfigError("project: shop\ndefinitions:\n  - definitions\n  - [a, b]\n"),
            "stratalake.yaml:4:5: every entry of 'definitions' must be a folder or file path, "
            "not a list");
  EXPECT_EQ(ConfigError("definitions:\n  - {a: b}\n"),
            "stratalake.yaml:2:5: every entry of 'definitions' must be a folder or file path, "
            "not a mapping");
  EXPECT_EQ(ConfigError("definitions: {a: b}\n"),
            "stratalake.yaml:1:14: 'definitions' must be a folder or a list of folders/files, "
            "not a mapping");
}

TEST(RepoConfig, Issue24DuplicateKeysAreErrors) {
  EXPECT_EQ(ConfigError("project: a\nregistry: r.db\nproject: b\n"),
            "stratalake.yaml:3:1: duplicate key 'project' (first at line 1); a key may appear "
            "once in a mapping: merge the two or remove one");
  EXPECT_EQ(ConfigError("online_store:\n  type: embedded\n  type: redis\n"),
            "stratalake.yaml:3:3: duplicate key 'type' (first at line 2); a key may appear "
            "once in a mapping: merge the two or remove one");
  EXPECT_EQ(ConfigError("[a]: 1\n"),
            "stratalake.yaml:1:1: a key must be a single name, not a list");
}

TEST(RepoConfig, Issue24WrongTypedValuesAreErrors) {
  EXPECT_EQ(ConfigError("online_store: [1, 2]\n"),
            "stratalake.yaml:1:15: 'online_store' must be a type (embedded or redis) or a "
            "mapping with 'type' and 'path' or 'url', not a list");
  EXPECT_EQ(ConfigError("defaults: [timestamp_field]\n"),
            "stratalake.yaml:1:11: 'defaults' must be a mapping (e.g. 'timestamp_field: "
            "event_timestamp'), not a list");
  EXPECT_EQ(ConfigError("defaults: ts\n"),
            "stratalake.yaml:1:11: 'defaults' must be a mapping (e.g. 'timestamp_field: "
            "event_timestamp'), not a single value");
  EXPECT_EQ(ConfigError("defaults:\n  timestamp: ts\n"),
            "stratalake.yaml:2:3: unknown defaults key 'timestamp' (known: timestamp_field)");
  EXPECT_EQ(ConfigError("offline_store: [lake]\n"),
            "stratalake.yaml:1:16: 'offline_store' must be a folder, an s3:// URI or a mapping "
            "with 'path', not a list");
  EXPECT_EQ(ConfigError("offline_store: {paht: lake}\n"),
            "stratalake.yaml:1:17: unknown offline_store key 'paht' (known: path, uri, endpoint, "
            "region, profile, access_key_id, secret_access_key, session_token, "
            "allow_unsafe_commits, commit_coordinator)");
  EXPECT_EQ(ConfigError("offline_store: {path: lake, endpoint: 'http://h:1'}\n"),
            "stratalake.yaml:1:16: 'offline_store' has endpoint, which only an s3:// offline "
            "store uses; remove it or make 'path' an s3:// URI");
  EXPECT_EQ(ConfigError("offline_store: {path: 's3://b/lake', allow_unsafe_commits: maybe}\n"),
            "stratalake.yaml:1:16: offline_store: storage option 'allow_unsafe_commits' must be "
            "true or false, not 'maybe'");
  EXPECT_EQ(ConfigError("offline_store: {}\n"),
            "stratalake.yaml:1:16: 'offline_store' needs 'path' (a folder or s3:// URI)");
  EXPECT_EQ(ConfigError("online_store: {type: redis, uri: x}\n"),
            "stratalake.yaml:1:29: unknown online_store key 'uri' (known: type, path, url, "
            "cluster)");
  EXPECT_EQ(ConfigError("online_store: {type: [redis]}\n"),
            "stratalake.yaml:1:22: 'online_store.type' must be a single value, not a list");
  EXPECT_EQ(ConfigError("project: [a]\n"),
            "stratalake.yaml:1:10: 'project' must be a single value, not a list");
  EXPECT_EQ(ConfigError("- project\n"),
            "stratalake.yaml: must be a mapping of settings (key: value lines)");
}

TEST(RepoConfig, GoodConfigStillLoads) {
  TempDir dir;
  std::ofstream(dir.Join("stratalake.yaml"))
      << "project: shop\noffline_store: {path: data/lake}\nonline_store: embedded\n"
         "defaults:\n  timestamp_field: ts\ndefinitions: [defs, more.yaml]\n";
  ASSERT_OK_AND_ASSIGN(auto c, LoadRepoConfig(dir.path()));
  EXPECT_EQ(c.project, "shop");
  EXPECT_EQ(c.offline_store, dir.Join("data/lake"));
  EXPECT_EQ(c.online_store_type, "embedded");
  EXPECT_EQ(c.default_timestamp_field, "ts");
  ASSERT_EQ(c.definitions.size(), 2u);
  EXPECT_EQ(c.definitions[1], dir.Join("more.yaml"));
}

TEST(RepoConfig, RedisClusterSeedsAndFlag) {
  TempDir dir;
  std::ofstream(dir.Join("stratalake.yaml"))
      << "project: shop\nonline_store:\n  type: redis\n  url: [redis://10.0.0.1:7000, "
         "'redis://:s3cret@10.0.0.2:7001']\n";
  ASSERT_OK_AND_ASSIGN(auto c, LoadRepoConfig(dir.path()));
  EXPECT_EQ(c.online_store_type, "redis");
  EXPECT_TRUE(c.online_store_cluster);
  EXPECT_EQ(c.online_store, "redis://10.0.0.1:7000,redis://:s3cret@10.0.0.2:7001");

  std::ofstream(dir.Join("stratalake.yaml"))
      << "project: shop\nonline_store: {type: redis, cluster: true, url: redis://h:7000}\n";
  ASSERT_OK_AND_ASSIGN(c, LoadRepoConfig(dir.path()));
  EXPECT_TRUE(c.online_store_cluster);
  EXPECT_EQ(c.online_store, "redis://h:7000");

  std::ofstream(dir.Join("stratalake.yaml"))
      << "project: shop\nonline_store: {type: redis, url: redis://h:6379/2}\n";
  ASSERT_OK_AND_ASSIGN(c, LoadRepoConfig(dir.path()));
  EXPECT_FALSE(c.online_store_cluster);

  EXPECT_EQ(ConfigError("online_store: {type: redis, cluster: yes please}\n"),
            "stratalake.yaml:1:38: 'online_store.cluster' must be true or false, not 'yes "
            "please'");
  EXPECT_EQ(ConfigError("online_store: {type: redis, cluster: false, url: [redis://a, "
                        "redis://b]}\n"),
            "stratalake.yaml:1:38: 'online_store.url' lists several nodes, which is a Redis "
            "Cluster; set 'cluster: true' (or give one URL)");
  EXPECT_EQ(ConfigError("online_store: {type: redis, url: []}\n"),
            "stratalake.yaml:1:34: 'online_store.url' is an empty list; give the Redis "
            "Cluster's nodes, e.g. [redis://10.0.0.1:7000]");
  EXPECT_EQ(ConfigError("online_store: {type: embedded, cluster: true}\n"),
            "stratalake.yaml:1:15: 'cluster' and a list of URLs are for type: redis, not "
            "'embedded'");
}

TEST(RepoConfig, Issue24DuplicateKeysInADefinitionFileNameTheFileAndLine) {
  TempDir dir;
  std::ofstream(dir.Join("stratalake.yaml")) << "project: shop\n";
  std::filesystem::create_directories(dir.Join("definitions"));
  std::ofstream(dir.Join("definitions/a.yaml"))
      << "entities:\n  - name: customer\n    join_keys: [{name: id, type: int64}]\n"
         "entities:\n  - name: seller\n    join_keys: [{name: id, type: int64}]\n";
  ASSERT_OK_AND_ASSIGN(auto r, FeatureRepository::Open(dir.path()));
  auto defs = r->LoadDefinitions();
  ASSERT_FALSE(defs.ok());
  EXPECT_EQ(defs.status().message(),
            "1 problem in the feature definitions\n  definitions/a.yaml:4:1: duplicate key "
            "'entities' (first at line 1); a key may appear once in a mapping: merge the two or "
            "remove one");
}

}  // namespace
}  // namespace stratalake::repo
