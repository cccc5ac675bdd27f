// Checkpoints written every delta.checkpointInterval commits and loaded in place
// of the commits they cover; log cleanup keeps every retained version loadable.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "../../tests/test_util.h"
#include "storage/checkpoint.h"
#include "storage/table_test_util.h"
#include "stratalake/delta.h"
#include "stratalake/status.h"

namespace stratalake::delta {
namespace {

[[maybe_unused]] auto* const kEnv =
    ::testing::AddGlobalTestEnvironment(new stratalake::testing::ComputeEnvironment);

using table_test::Rows;

class CheckpointTest : public table_test::TableTest {};

TEST_F(CheckpointTest, CheckpointsEveryTenCommitsAndLoadsFromThem) {
  for (int i = 0; i < 12; ++i) {
    Append(Rows("[" + std::to_string(i) + "]", R"(["n"])", "[1]", R"(["x"])"));
  }
  EXPECT_TRUE(
      std::filesystem::exists(dir_.Join("t/_delta_log/00000000000000000010.checkpoint.parquet")));
  EXPECT_TRUE(std::filesystem::exists(dir_.Join("t/_delta_log/_last_checkpoint")));
  // Remove the commits the checkpoint covers: the table must still load.
  for (int v = 0; v <= 10; ++v) {
    char name[64];
    std::snprintf(name, sizeof name, "t/_delta_log/%020d.json", v);
    std::filesystem::remove(dir_.Join(name));
  }
  EXPECT_EQ(ReadAll().size(), 12u);
  auto old = table_->AtVersion(3);
  ASSERT_FALSE(old.ok());
  EXPECT_TRUE(HasErrorKind(old.status(), ErrorKind::kVersionNotFound));
}

TEST_F(CheckpointTest, LogCleanupKeepsEveryRetainedVersionLoadable) {
  for (int i = 0; i < 25; ++i)
    Append(Rows("[" + std::to_string(i) + "]", R"(["n"])", "[1]", R"(["x"])"));
  clock_->Set(std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count() +
              31LL * 86400000);
  // A temporary commit file left by a writer that was killed before link().
  std::ofstream(dir_.Join("t/_delta_log/.dead-writer.tmp")) << "{";
  ASSERT_OK_AND_ASSIGN(auto deleted, table_->CleanupLog());
  // Commits 0..19 precede the newest checkpoint (20) and are expired; checkpoint 10
  // too; and the stale temporary file.
  EXPECT_EQ(deleted, 22);
  EXPECT_FALSE(std::filesystem::exists(dir_.Join("t/_delta_log/.dead-writer.tmp")));
  EXPECT_FALSE(std::filesystem::exists(dir_.Join("t/_delta_log/00000000000000000019.json")));
  EXPECT_TRUE(std::filesystem::exists(dir_.Join("t/_delta_log/00000000000000000020.json")));
  EXPECT_EQ(ReadAll().size(), 25u);
  EXPECT_EQ(ReadAll(20).size(), 21u);
}

}  // namespace
}  // namespace stratalake::delta
