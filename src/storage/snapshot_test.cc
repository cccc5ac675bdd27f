// Log replay into a Snapshot: corrupt logs are errors naming the file and line;
// path reconciliation and Delta intervals.
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "../../tests/test_util.h"
#include "storage/snapshot.h"
#include "storage/table_test_util.h"
#include "stratalake/delta.h"
#include "stratalake/status.h"

namespace stratalake::delta {
namespace {

[[maybe_unused]] auto* const kEnv =
    ::testing::AddGlobalTestEnvironment(new stratalake::testing::ComputeEnvironment);

using table_test::Rows;

class SnapshotTest : public table_test::TableTest {};

TEST_F(SnapshotTest, OpenErrorsNameWhatIsWrong) {
  auto missing = DeltaTable::Open(dir_.Join("nope"));
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(HasErrorKind(missing.status(), ErrorKind::kTableNotFound));
  EXPECT_NE(missing.status().message().find("the path does not exist"), std::string::npos);
  Append(Rows("[1]", R"(["a"])", "[1]", R"(["x"])"));
  std::ofstream(dir_.Join("t/_delta_log/00000000000000000001.json")) << "{\"add\": {\"path\": tru";
  auto bad = table_->Latest();
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(HasErrorKind(bad.status(), ErrorKind::kCorruptLog));
  EXPECT_NE(bad.status().message().find("00000000000000000001.json' line 1: invalid JSON"),
            std::string::npos);
}

// Issue 24: a log line nested 150k levels deep crashed every reader (RapidJSON's
// recursive parser); it is a corrupt log naming the file, for reads and writes.
TEST_F(SnapshotTest, ALogLineNestedTooDeepIsACorruptLogNotACrash) {
  Append(Rows("[1]", R"(["a"])", "[1]", R"(["x"])"));
  std::ofstream(dir_.Join("t/_delta_log/00000000000000000001.json"))
      << "{\"add\": " << std::string(150000, '[') << "\n";
  const std::string expected =
      "corrupt Delta log file '" + dir_.Join("t/_delta_log/00000000000000000001.json") +
      "' line 1: JSON nested deeper than 256 levels at byte 263 (arrays and objects inside each "
      "other) (not a Delta log file)";
  auto read = table_->Read({});
  ASSERT_FALSE(read.ok());
  EXPECT_TRUE(HasErrorKind(read.status(), ErrorKind::kCorruptLog));
  EXPECT_EQ(read.status().message(), expected);
  auto write = table_->Write(Rows("[2]", R"(["b"])", "[2]", R"(["y"])"), {});
  ASSERT_FALSE(write.ok());
  EXPECT_EQ(write.status().message(), expected);
}

TEST(PathsTest, CanonicalPathsReconcileSpellings) {
  EXPECT_EQ(CanonicalFilePath("/t", "a%20b.parquet"), "/t/a b.parquet");
  EXPECT_EQ(CanonicalFilePath("/t", "file:/t/a%20b.parquet"), "/t/a b.parquet");
  EXPECT_EQ(CanonicalFilePath("/t", "file:///t/a b.parquet"), "/t/a b.parquet");
  EXPECT_EQ(CanonicalFilePath("/t", "/t/a b.parquet"), "/t/a b.parquet");
}

TEST(IntervalTest, ParsesDeltaIntervals) {
  EXPECT_EQ(ParseIntervalMs("interval 7 days").ValueOrDie(), 7 * 86400000LL);
  EXPECT_EQ(ParseIntervalMs("interval 1 hour").ValueOrDie(), 3600000LL);
  EXPECT_EQ(ParseIntervalMs("30 days").ValueOrDie(), 30 * 86400000LL);
  EXPECT_FALSE(ParseIntervalMs("soon").ok());
}

}  // namespace
}  // namespace stratalake::delta
