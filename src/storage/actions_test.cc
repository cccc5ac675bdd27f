// Log actions ⇄ newline-delimited JSON: round trips, and malformed, nested,
// empty or out-of-range input refused with the file and line.
#include <string>

#include <gtest/gtest.h>

#include "../../tests/test_util.h"
#include "storage/actions.h"
#include "stratalake/status.h"

namespace stratalake::delta {
namespace {

TEST(ActionsTest, NestingIsLimitedBeforeParsing) {
  // 256 levels parse (and fail as Delta, not as JSON); 257 are refused up front.
  auto ok_depth =
      ParseLogJson(std::string(255, '[') + "{}" + std::string(255, ']') + "\n", "03.json");
  EXPECT_EQ(ok_depth.status().message(),
            "corrupt Delta log file '03.json' line 1: line is not a JSON object");
  auto deep = ParseLogJson(std::string(257, '['), "03.json");
  EXPECT_EQ(deep.status().message(),
            "corrupt Delta log file '03.json' line 1: JSON nested deeper than 256 levels at byte "
            "256 (arrays and objects inside each other) (not a Delta log file)");
  // Brackets inside strings do not count.
  auto in_string =
      ParseLogJson("{\"commitInfo\":{\"x\":\"" + std::string(1000, '[') + "\"}}\n", "04.json");
  EXPECT_TRUE(in_string.ok()) << in_string.status().ToString();
  // Invalid UTF-8 is refused, not carried into paths and messages.
  auto bad_utf8 = ParseLogJson("{\"commitInfo\":{\"x\":\"\xff\"}}\n", "05.json");
  EXPECT_EQ(bad_utf8.status().message(),
            "corrupt Delta log file '05.json' line 1: invalid JSON at column 21: Invalid encoding "
            "in string. (the file may be truncated or not a Delta log file)");
}

TEST(ActionsTest, SerializedActionsParseBack) {
  AddFile a;
  a.path = "p=1/part%20x.parquet";
  a.partition_values = {{"p", "1"}, {"q", std::nullopt}};
  a.size = 10;
  a.modification_time = 5;
  a.stats = R"({"numRecords":3})";
  a.deletion_vector = DeletionVector{"u", "ab^-aqEH.-t@S}K{vb[*k^", 1, 36, 2};
  RemoveFile r;
  r.path = "old.parquet";
  r.deletion_timestamp = 7;
  Metadata md;
  md.id = "id";
  md.schema_string = R"({"type":"struct","fields":[]})";
  md.partition_columns = {"p"};
  md.configuration = {{"k", "v"}};
  Protocol p{3, 7, std::vector<std::string>{"deletionVectors"},
             std::vector<std::string>{"deletionVectors"}};
  std::string log = SerializeProtocol(p) + "\n" + SerializeMetadata(md) + "\n" + SerializeAdd(a) +
                    "\n" + SerializeRemove(r) + "\n" + SerializeTxn({"app", 4, 9}) + "\n";
  ASSERT_OK_AND_ASSIGN(auto parsed, ParseLogJson(log, "mem"));
  ASSERT_TRUE(parsed.protocol && parsed.metadata);
  EXPECT_EQ(*parsed.protocol, p);
  EXPECT_EQ(*parsed.metadata, md);
  ASSERT_EQ(parsed.adds.size(), 1u);
  EXPECT_EQ(parsed.adds[0].path, a.path);
  EXPECT_EQ(parsed.adds[0].partition_values, a.partition_values);
  EXPECT_EQ(parsed.adds[0].deletion_vector, a.deletion_vector);
  EXPECT_EQ(parsed.adds[0].stats, a.stats);
  ASSERT_EQ(parsed.removes.size(), 1u);
  EXPECT_EQ(parsed.removes[0].deletion_timestamp, 7);
  ASSERT_EQ(parsed.txns.size(), 1u);
  EXPECT_EQ(parsed.txns[0].version, 4);
}

TEST(ActionsTest, MalformedLinesNameFileAndLine) {
  auto r = ParseLogJson("{\"commitInfo\":{}}\n{\"add\":{\"size\":1}}\n", "00.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "corrupt Delta log file '00.json' line 2: add action has no string field 'path'");
  auto t = ParseLogJson("[1,2]\n", "01.json");
  EXPECT_EQ(t.status().message(),
            "corrupt Delta log file '01.json' line 1: line is not a JSON object");
}

// Regressions found by tests/python/test_reliability.py and the log fuzzer.
TEST(ActionsTest, EmptyOrBlankCommitsAreCorrupt) {
  for (std::string text : {"", "\n\n  \n"}) {
    auto r = ParseLogJson(text, "02.json");
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(HasErrorKind(r.status(), ErrorKind::kCorruptLog));
    EXPECT_NE(r.status().message().find("'02.json': it holds no actions"), std::string::npos);
  }
}

TEST(ActionsTest, TrailingContentOnALineIsAnError) {
  auto r = ParseLogJson(R"({"txn":{"appId":"a","version":1}}GARBAGE)", "03.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'03.json' line 1: invalid JSON"), std::string::npos);
  auto two = ParseLogJson(R"({"txn":{"appId":"a","version":1}}{"txn":{"appId":"b","version":1}})",
                          "04.json");
  EXPECT_FALSE(two.ok());
}

TEST(ActionsTest, OutOfRangeNumbersAreRejectedNotWrapped) {
  auto r = ParseLogJson(
      R"({"add":{"path":"a","partitionValues":{},"size":1e300,"modificationTime":1,"dataChange":true}})",
      "05.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("add action has no integer field 'size'"), std::string::npos);
  auto big = ParseLogJson(
      R"({"add":{"path":"a","partitionValues":{},"size":18446744073709551615,"modificationTime":1,"dataChange":true}})",
      "06.json");
  EXPECT_FALSE(big.ok());
}

}  // namespace
}  // namespace stratalake::delta
