// Log replay into a Snapshot: corrupt logs are errors naming the file and line;
// path reconciliation and Delta intervals; data file paths named by the log stay
// inside the table (issue 24): ".." escapes are a corrupt log, unknown schemes
// unsupported, absolute paths outside the table refused unless the table was
// opened with allow_external_paths.
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

using stratalake::testing::TempDir;

constexpr const char* kLog = "_delta_log/00000000000000000001.json";

// "" when allowed, else "KIND: message".
std::string Check(const std::string& path, ExternalPaths external = ExternalPaths::kRefuse,
                  bool local = true, const std::string& root = "/t") {
  auto st = CheckDataFilePath(root, local, path, external, kLog);
  if (st.ok()) return "";
  const auto* d = GetErrorDetail(st);
  std::string kind = !d                                             ? "?"
                     : d->kind() == ErrorKind::kCorruptLog          ? "corrupt"
                     : d->kind() == ErrorKind::kUnsupportedFeature  ? "unsupported"
                     : d->kind() == ErrorKind::kOperationNotAllowed ? "not allowed"
                                                                    : "other";
  return kind + ": " + st.message();
}

TEST(DataFilePath, Issue24RelativePathsMustStayInsideTheTable) {
  EXPECT_EQ(Check("a/b.parquet"), "");
  EXPECT_EQ(Check("p=1/../b.parquet"), "");
  EXPECT_EQ(Check("ts=2024-01-01%2010%3A00%3A00/part-0.parquet"), "");
  EXPECT_EQ(Check("../x.parquet"),
            "corrupt: corrupt Delta log at '/t': data file '../x.parquet' named in " +
                std::string(kLog) + " leaves the table folder (through '..')");
  EXPECT_EQ(Check("a/../../x.parquet").rfind("corrupt: ", 0), 0u);
  EXPECT_EQ(Check("%2E%2E/%2E%2E/etc/passwd").rfind("corrupt: ", 0), 0u);
  // Even when external files are allowed: a relative path is the table's own.
  EXPECT_EQ(Check("../x.parquet", ExternalPaths::kAllow).rfind("corrupt: ", 0), 0u);
}

TEST(DataFilePath, Issue24AbsolutePathsOutsideTheTableNeedTheOption) {
  EXPECT_EQ(Check("/t/a.parquet"), "");
  EXPECT_EQ(Check("file:///t/a.parquet"), "");
  EXPECT_EQ(Check("file:/t/a.parquet"), "");
  EXPECT_EQ(Check("file://localhost/t/a.parquet"), "");
  EXPECT_EQ(Check("/other/a.parquet"),
            "not allowed: data file '/other/a.parquet' named in " + std::string(kLog) +
                " is outside the table at '/t' (a shallow clone?); files outside a table are "
                "read only when it is opened with allow_external_paths (CLI: "
                "--allow-external-paths)");
  EXPECT_EQ(Check("/t/../etc/passwd").rfind("not allowed: ", 0), 0u);
  EXPECT_EQ(Check("/tt/a.parquet").rfind("not allowed: ", 0), 0u);
  EXPECT_EQ(Check("/other/a.parquet", ExternalPaths::kAllow), "");
  EXPECT_EQ(Check("file:///other/a.parquet", ExternalPaths::kAllow), "");
}

TEST(DataFilePath, Issue24UnknownSchemesAndRemoteHostsAreErrors) {
  EXPECT_EQ(Check("file://host/t/a.parquet", ExternalPaths::kAllow),
            "unsupported: data file 'file://host/t/a.parquet' named in " + std::string(kLog) +
                " is on the host 'host': file:// URIs must name a local path (file:///path)");
  EXPECT_EQ(Check("s3://bucket/a.parquet", ExternalPaths::kAllow),
            "unsupported: data file 's3://bucket/a.parquet' named in " + std::string(kLog) +
                " uses the URI scheme 's3', which the table's local filesystem cannot read");
  EXPECT_EQ(Check("abfss://c@acct/a.parquet", ExternalPaths::kAllow).rfind("unsupported: ", 0), 0u);
  // A table on S3 (root without the scheme, as the S3 filesystem names it).
  EXPECT_EQ(Check("s3://bucket/t/a.parquet", ExternalPaths::kRefuse, false, "bucket/t"), "");
  EXPECT_EQ(Check("s3://other/a.parquet", ExternalPaths::kRefuse, false, "bucket/t")
                .rfind("not allowed: ", 0),
            0u);
  EXPECT_EQ(Check("s3://other/a.parquet", ExternalPaths::kAllow, false, "bucket/t"), "");
  EXPECT_EQ(Check("gs://bucket/t/a.parquet", ExternalPaths::kAllow, false, "bucket/t"),
            "unsupported: data file 'gs://bucket/t/a.parquet' named in " + std::string(kLog) +
                " uses the URI scheme 'gs', which the table's S3 filesystem cannot read");
  EXPECT_EQ(Check("file:///t/a.parquet", ExternalPaths::kAllow, false, "bucket/t"),
            "unsupported: data file 'file:///t/a.parquet' named in " + std::string(kLog) +
                " is a local file, but the table is on S3");
}

class LogPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CreateOptions co;
    co.schema = arrow::schema({arrow::field("id", arrow::int64())});
    ASSERT_OK(DeltaTable::Create(root(), co).status());
  }
  std::string root() const { return dir_.Join("t"); }
  void AddCommit(const std::string& path) {
    std::ofstream(dir_.Join("t/_delta_log/00000000000000000001.json"))
        << "{\"add\":{\"path\":\"" << path
        << "\",\"partitionValues\":{},\"size\":1,\"modificationTime\":0,\"dataChange\":true}}\n";
  }
  TempDir dir_;
};

TEST_F(LogPathTest, Issue24ADotDotPathIsACorruptLogNamingThePath) {
  AddCommit("../../outside.parquet");
  ASSERT_OK_AND_ASSIGN(auto table, DeltaTable::Open(root()));
  auto snap = table->Latest();
  ASSERT_FALSE(snap.ok());
  EXPECT_TRUE(HasErrorKind(snap.status(), ErrorKind::kCorruptLog));
  EXPECT_EQ(snap.status().message(),
            "corrupt Delta log at '" + table->root() +
                "': data file '../../outside.parquet' named in " + table->root() +
                "/_delta_log/00000000000000000001.json leaves the table folder (through '..')");
  // The version before it still loads.
  ASSERT_OK(table->AtVersion(0).status());
}

TEST_F(LogPathTest, Issue24AnExternalFileNeedsAllowExternalPaths) {
  AddCommit(dir_.Join("elsewhere/x.parquet"));
  ASSERT_OK_AND_ASSIGN(auto table, DeltaTable::Open(root()));
  auto snap = table->Latest();
  ASSERT_FALSE(snap.ok());
  EXPECT_TRUE(HasErrorKind(snap.status(), ErrorKind::kOperationNotAllowed));
  EXPECT_EQ(snap.status().message(),
            "data file '" + dir_.Join("elsewhere/x.parquet") +
                "' named in the log of version 1 is outside the table at '" + table->root() +
                "' (a shallow clone?); files outside a table are read only when it is opened "
                "with allow_external_paths (CLI: --allow-external-paths)");
  TableOpenOptions allow;
  allow.allow_external_paths = true;
  ASSERT_OK_AND_ASSIGN(auto allowed, DeltaTable::Open(root(), allow));
  ASSERT_OK_AND_ASSIGN(auto s, allowed->Latest());
  ASSERT_EQ(s->files().size(), 1u);
}

}  // namespace
}  // namespace stratalake::delta
