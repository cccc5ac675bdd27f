// Ingestion tests: CSV, JSON lines and Parquet into Delta tables, with type
// conversion, rejection (line numbers and reasons), checks, quarantine and the write
// modes. Each test states its input and the exact outcome.
#include "stratalake/ingest.h"

#include <fstream>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/io/file.h>
#include <gtest/gtest.h>
#include <parquet/arrow/writer.h>

#include "../../tests/test_util.h"
#include "stratalake/delta.h"
#include "stratalake/status.h"

namespace stratalake {
namespace {

namespace cp = arrow::compute;
using stratalake::testing::SortedRows;
using stratalake::testing::TableFromJson;
using stratalake::testing::TempDir;

[[maybe_unused]] auto* const kEnv =
    ::testing::AddGlobalTestEnvironment(new stratalake::testing::ComputeEnvironment);

// 2026-06-01T00:00:00Z in microseconds, and one hour.
constexpr int64_t kJune1 = 1780272000000000;
constexpr int64_t kHour = 3600000000;
constexpr int64_t kNowMs = 1780308000000;  // the fake clock: 2026-06-01T10:00:00Z

std::shared_ptr<arrow::DataType> Ts() { return arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"); }

// id int64 NOT NULL, ts timestamp, active bool, note string.
std::shared_ptr<arrow::Schema> EventSchema() {
  return arrow::schema({arrow::field("id", arrow::int64(), false), arrow::field("ts", Ts()),
                        arrow::field("active", arrow::boolean()),
                        arrow::field("note", arrow::utf8())});
}

class IngestTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& content) {
    std::ofstream out(dir_.Join(name), std::ios::binary);
    out << content;
    return dir_.Join(name);
  }

  std::string WriteParquet(const std::string& name, const std::shared_ptr<arrow::Table>& table) {
    auto out = arrow::io::FileOutputStream::Open(dir_.Join(name));
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    auto st = parquet::arrow::WriteTable(*table, arrow::default_memory_pool(), *out, 2);
    EXPECT_TRUE(st.ok()) << st.ToString();
    EXPECT_TRUE((*out)->Close().ok());
    return dir_.Join(name);
  }

  IngestTarget Target(std::shared_ptr<arrow::Schema> schema = EventSchema()) {
    IngestTarget t;
    t.name = "events";
    t.table_uri = dir_.Join("table");
    t.schema = std::move(schema);
    t.quarantine_uri = dir_.Join("quarantine");
    return t;
  }

  IngestOptions Options(bool quarantine = false) {
    IngestOptions o;
    o.quarantine = quarantine;
    o.clock = clock_;
    return o;
  }

  std::shared_ptr<arrow::Table> Read(const std::string& uri, const std::string& sort_key = "") {
    auto table = delta::DeltaTable::Open(uri);
    EXPECT_TRUE(table.ok()) << table.status().ToString();
    if (!table.ok()) return nullptr;
    auto rows = (*table)->Read(delta::ReadOptions{});
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    if (sort_key.empty()) return *rows;
    auto idx = cp::SortIndices(arrow::Datum(*rows), cp::SortOptions({cp::SortKey(sort_key)}));
    EXPECT_TRUE(idx.ok()) << idx.status().ToString();
    return cp::Take(arrow::Datum(*rows), *idx).ValueOrDie().table();
  }

  int64_t Version(const std::string& uri) {
    auto table = delta::DeltaTable::Open(uri);
    if (!table.ok()) return -1;
    auto snap = (*table)->Latest();
    return snap.ok() ? (*snap)->version() : -1;
  }

  static std::vector<std::string> Strings(const std::shared_ptr<arrow::Table>& t,
                                          const std::string& column) {
    std::vector<std::string> out;
    auto col = t->GetColumnByName(column);
    EXPECT_NE(col, nullptr) << column;
    if (!col) return out;
    for (int64_t r = 0; r < col->length(); ++r) {
      auto s = col->GetScalar(r).ValueOrDie();
      out.push_back(s->is_valid ? s->ToString() : "null");
    }
    return out;
  }

  static std::vector<int64_t> Micros(const std::shared_ptr<arrow::Table>& t,
                                     const std::string& column) {
    std::vector<int64_t> out;
    auto col = t->GetColumnByName(column);
    EXPECT_NE(col, nullptr) << column;
    if (!col) return out;
    for (int64_t r = 0; r < col->length(); ++r) {
      auto s = col->GetScalar(r).ValueOrDie();
      out.push_back(s->is_valid ? static_cast<const arrow::TimestampScalar&>(*s).value : -1);
    }
    return out;
  }

  TempDir dir_;
  std::shared_ptr<FakeClock> clock_ = std::make_shared<FakeClock>(kNowMs);
};

// ---- conversion -----------------------------------------------------------------

TEST_F(IngestTest, CsvConvertsEveryValueToTheDeclaredTypes) {
  auto schema = arrow::schema(
      {arrow::field("id", arrow::int64(), false), arrow::field("small", arrow::int8()),
       arrow::field("ts", Ts()), arrow::field("day", arrow::date32()),
       arrow::field("ok", arrow::boolean()), arrow::field("price", arrow::decimal128(10, 2)),
       arrow::field("score", arrow::float32()), arrow::field("name", arrow::utf8()),
       arrow::field("ts_ms", arrow::timestamp(arrow::TimeUnit::MILLI, "UTC"))});
  auto csv = Write("events.csv",
                   "id,small,ts,day,ok,price,score,name,ts_ms\n"
                   "1,-5,2026-06-01T10:00:00Z,2026-06-01,true,12.5,1.5,alice,2026-06-01\n"
                   "2,127,2026-06-01T10:00:00+02:00,2026-01-31,FALSE,0.01,-2,\"bob, jr\",\n"
                   "3,,2026-06-01 10:00:00.123456,2026-02-28,yes,3,,,\n"
                   "4, 0 ,2026-06-01,2026-12-31,0,-7.25,1e3,\"say \"\"hi\"\"\",\n"
                   "5,NULL,2026-06-01T10:00:00.5-05:30,2026-06-02,No,100,0.25,x,"
                   "2026-06-01T00:00:00.123456789Z\n"
                   "6,1,2026-06-01T00:00:00.123456789+0000,2026-06-03,1,0,0,y,\n");
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(schema), {csv}, Options()));
  EXPECT_EQ(report.rows_read, 6);
  EXPECT_EQ(report.rows_written, 6);
  EXPECT_EQ(report.rows_rejected, 0);
  EXPECT_EQ(report.version, 0);
  EXPECT_TRUE(report.created);

  auto t = Read(Target().table_uri, "id");
  ASSERT_EQ(t->num_rows(), 6);
  EXPECT_EQ(Strings(t, "small"), (std::vector<std::string>{"-5", "127", "null", "0", "null", "1"}));
  EXPECT_EQ(Micros(t, "ts"),
            (std::vector<int64_t>{
                kJune1 + 10 * kHour, kJune1 + 8 * kHour, kJune1 + 10 * kHour + 123456, kJune1,
                kJune1 + 15 * kHour + 30 * 60000000LL + 500000, kJune1 + 123456}));
  EXPECT_EQ(Strings(t, "day"),
            (std::vector<std::string>{"2026-06-01", "2026-01-31", "2026-02-28", "2026-12-31",
                                      "2026-06-02", "2026-06-03"}));
  EXPECT_EQ(Strings(t, "ok"),
            (std::vector<std::string>{"true", "false", "true", "false", "false", "true"}));
  EXPECT_EQ(Strings(t, "price"),
            (std::vector<std::string>{"12.50", "0.01", "3.00", "-7.25", "100.00", "0.00"}));
  EXPECT_EQ(Strings(t, "score"),
            (std::vector<std::string>{"1.5", "-2", "null", "1000", "0.25", "0"}));
  // Text stays as written: an empty field is an empty string, quotes are undone.
  EXPECT_EQ(Strings(t, "name"),
            (std::vector<std::string>{"alice", "bob, jr", "", "say \"hi\"", "x", "y"}));
  // Stored as the table stores timestamps (microseconds); the millisecond column
  // truncated the nanoseconds to 123 ms.
  EXPECT_EQ(Micros(t, "ts_ms"), (std::vector<int64_t>{kJune1, -1, -1, -1, kJune1 + 123000, -1}));
}

TEST_F(IngestTest, JsonLinesConvertStringsNumbersBooleansAndNestedValues) {
  auto schema = arrow::schema(
      {arrow::field("id", arrow::int64(), false), arrow::field("ts", Ts()),
       arrow::field("amount", arrow::float64()), arrow::field("active", arrow::boolean()),
       arrow::field("name", arrow::utf8()), arrow::field("meta", arrow::utf8()),
       arrow::field("big", arrow::decimal128(30, 0))});
  auto json = Write(
      "events.jsonl",
      "{\"id\": 1, \"ts\": \"2026-06-01T10:00:00-07:00\", \"amount\": 12.5, \"active\": true, "
      "\"name\": \"a\", \"meta\": {\"k\": [1, 2.5, \"x\"]}, \"big\": 123456789012345678901234}\n"
      "\n"
      "{\"id\": \"2\", \"ts\": \"2026-06-01\", \"amount\": \"3\", \"active\": \"no\", "
      "\"name\": null, \"meta\": 7}\r\n"
      "{\"id\": 3}");
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(schema), {json}, Options()));
  EXPECT_EQ(report.rows_read, 3);
  EXPECT_EQ(report.rows_written, 3);
  auto t = Read(Target().table_uri, "id");
  EXPECT_EQ(Micros(t, "ts"), (std::vector<int64_t>{kJune1 + 17 * kHour, kJune1, -1}));
  EXPECT_EQ(Strings(t, "amount"), (std::vector<std::string>{"12.5", "3", "null"}));
  EXPECT_EQ(Strings(t, "active"), (std::vector<std::string>{"true", "false", "null"}));
  EXPECT_EQ(Strings(t, "name"), (std::vector<std::string>{"a", "null", "null"}));
  EXPECT_EQ(Strings(t, "meta"), (std::vector<std::string>{"{\"k\":[1,2.5,\"x\"]}", "7", "null"}));
  EXPECT_EQ(Strings(t, "big"),
            (std::vector<std::string>{"123456789012345678901234", "null", "null"}));
}

TEST_F(IngestTest, ParquetColumnsAreCastToTheDeclaredTypes) {
  auto in_schema =
      arrow::schema({arrow::field("id", arrow::int32()),
                     arrow::field("ts", arrow::timestamp(arrow::TimeUnit::MILLI)),
                     arrow::field("active", arrow::utf8()), arrow::field("note", arrow::int64())});
  auto file =
      WriteParquet("events.parquet",
                   TableFromJson(in_schema, {"[1, 2, 3]", "[1780272000000, 1780272000001, null]",
                                             "[\"true\", \"no\", null]", "[10, null, 30]"}));
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(), {file}, Options()));
  EXPECT_EQ(report.rows_read, 3);
  EXPECT_EQ(report.rows_written, 3);
  auto t = Read(Target().table_uri, "id");
  EXPECT_EQ(Strings(t, "id"), (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_EQ(Micros(t, "ts"), (std::vector<int64_t>{kJune1, kJune1 + 1000, -1}));
  EXPECT_EQ(Strings(t, "active"), (std::vector<std::string>{"true", "false", "null"}));
  EXPECT_EQ(Strings(t, "note"), (std::vector<std::string>{"10", "null", "30"}));
}

TEST_F(IngestTest, ParquetRejectsOnlyTheRowsWhoseValuesDoNotFit) {
  auto schema =
      arrow::schema({arrow::field("id", arrow::int64(), false),
                     arrow::field("small", arrow::int8()), arrow::field("count", arrow::int64())});
  auto in_schema =
      arrow::schema({arrow::field("id", arrow::int64()), arrow::field("small", arrow::int64()),
                     arrow::field("count", arrow::utf8())});
  auto file =
      WriteParquet("in.parquet", TableFromJson(in_schema, {"[1, 2, 3, 4]", "[1, 300, -128, 5]",
                                                           "[\"10\", \"20\", \"x\", \"40\"]"}));
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(schema), {file}, Options(true)));
  EXPECT_EQ(report.rows_read, 4);
  EXPECT_EQ(report.rows_written, 2);
  EXPECT_EQ(report.rows_rejected, 2);
  ASSERT_EQ(report.examples.size(), 2u);
  EXPECT_EQ(report.examples[0].line, 2);
  EXPECT_EQ(report.examples[0].column, "small");
  EXPECT_EQ(report.examples[0].value, "300");
  EXPECT_EQ(report.examples[0].reason, "out of range for int8");
  EXPECT_EQ(report.examples[1].line, 3);
  EXPECT_EQ(report.examples[1].column, "count");
  EXPECT_EQ(report.examples[1].reason, "not a valid int64");
  EXPECT_EQ(SortedRows(Read(Target().table_uri)), (std::vector<std::string>{"1|1|10", "4|5|40"}));
}

TEST_F(IngestTest, NarrowingAndPrecisionLossAreRejectedNeverWrapped) {
  auto schema =
      arrow::schema({arrow::field("id", arrow::int64(), false), arrow::field("tiny", arrow::int8()),
                     arrow::field("price", arrow::decimal128(5, 2))});
  auto csv = Write("n.csv",
                   "id,tiny,price\n"
                   "1,127,999.99\n"
                   "2,128,1\n"
                   "3,1.5,1\n"
                   "4,1,1.234\n"
                   "5,1,1000\n"
                   "99999999999999999999,1,1\n");
  auto result = Ingest(Target(schema), {csv}, Options(true));
  ASSERT_OK_AND_ASSIGN(auto report, result);
  EXPECT_EQ(report.rows_written, 1);
  EXPECT_EQ(report.reason_counts,
            (std::map<std::string, int64_t>{{"column id: out of range for int64", 1},
                                            {"column price: does not fit decimal(5, 2)", 2},
                                            {"column tiny: not a valid int8", 1},
                                            {"column tiny: out of range for int8", 1}}));
  EXPECT_EQ(SortedRows(Read(Target().table_uri)), (std::vector<std::string>{"1|127|999.99"}));
}

// ---- rejection ----------------------------------------------------------------------

TEST_F(IngestTest, BadValuesFailTheLoadWithLineNumbersAndReasons) {
  // Line 3 is blank and the record at line 5 spans two lines, so the file's
  // line numbers differ from the record numbers.
  auto csv = Write("events.csv",
                   "id,ts,active,note\n"
                   "1,2026-06-01T00:00:00Z,true,ok\n"
                   "\n"
                   "abc,2026-06-01T00:00:00Z,true,ok\n"
                   "3,not-a-time,true,\"two\n"
                   "lines\"\n"
                   "4,2026-06-01,maybe,ok\n"
                   "5,2026-13-01,no,ok\n"
                   "6,2026-06-01,false,ok\n");
  auto result = Ingest(Target(), {csv}, Options());
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(HasErrorKind(result.status(), ErrorKind::kDataRejected));
  EXPECT_EQ(result.status().message(),
            "rejected 4 of 6 rows of 'events' (nothing was written):\n"
            "  " +
                csv +
                ":4 column id: 'abc' is not a valid int64\n"
                "  " +
                csv +
                ":5 column ts: 'not-a-time' is not a valid timestamp\n"
                "  " +
                csv +
                ":7 column active: 'maybe' is not a valid boolean\n"
                "  " +
                csv +
                ":8 column ts: '2026-13-01' is not a valid timestamp\n"
                "fix these rows, or pass `quarantine` to load the good rows and keep the rejected "
                "ones in " +
                Target().quarantine_uri);
  EXPECT_EQ(Version(Target().table_uri), -1);  // not created
  EXPECT_EQ(Version(Target().quarantine_uri), -1);
}

TEST_F(IngestTest, ManyRejectionsShowTheFirstExamplesAndCountsByReason) {
  std::string content = "id,ts,active,note\n";
  for (int i = 0; i < 10; ++i) content += "x" + std::to_string(i) + ",,true,\n";
  content += "1,,bad,\n";
  auto csv = Write("events.csv", content);
  IngestOptions o = Options();
  o.max_examples = 2;
  auto result = Ingest(Target(), {csv}, o);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(),
            "rejected 11 of 11 rows of 'events' (nothing was written):\n"
            "  " +
                csv +
                ":2 column id: 'x0' is not a valid int64\n"
                "  " +
                csv +
                ":3 column id: 'x1' is not a valid int64\n"
                "  ... and 9 more\n"
                "by reason:\n"
                "  1  column active: not a valid boolean\n"
                "  10  column id: not a valid int64\n"
                "fix these rows, or pass `quarantine` to load the good rows and keep the rejected "
                "ones in " +
                Target().quarantine_uri);
}

TEST_F(IngestTest, JsonLineThatIsNotJsonRejectsOneRow) {
  auto json = Write("events.jsonl",
                    "{\"id\": 1, \"ts\": \"2026-06-01T00:00:00Z\"}\n"
                    "{\"id\": 2, \"ts\": \n"
                    "\n"
                    "[1, 2]\n"
                    "{\"id\": 3, \"ts\": \"2026-06-01T01:00:00Z\", \"extra\": 1}\n");
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(), {json}, Options(true)));
  EXPECT_EQ(report.rows_read, 4);
  EXPECT_EQ(report.rows_written, 2);
  EXPECT_EQ(report.rows_rejected, 2);
  ASSERT_EQ(report.examples.size(), 2u);
  EXPECT_EQ(report.examples[0].line, 2);
  EXPECT_EQ(report.examples[0].reason, "not valid JSON");
  EXPECT_EQ(report.examples[0].value, "{\"id\": 2, \"ts\": ");
  EXPECT_EQ(report.examples[1].line, 4);
  EXPECT_EQ(report.examples[1].reason, "not a JSON object");
  EXPECT_EQ(report.ignored_columns, (std::vector<std::string>{"extra"}));
  auto t = Read(Target().table_uri, "id");
  EXPECT_EQ(Micros(t, "ts"), (std::vector<int64_t>{kJune1, kJune1 + kHour}));
  // The unreadable lines are quarantined with their input columns null.
  auto q = Read(Target().quarantine_uri, "_line");
  EXPECT_EQ(q->schema()->field_names(),
            (std::vector<std::string>{"id", "ts", "extra", "_source_file", "_line", "_reason",
                                      "_ingested_at"}));
  EXPECT_EQ(Strings(q, "id"), (std::vector<std::string>{"null", "null"}));
  EXPECT_EQ(Strings(q, "_line"), (std::vector<std::string>{"2", "4"}));
  EXPECT_EQ(Strings(q, "_reason"),
            (std::vector<std::string>{"not valid JSON ({\"id\": 2, \"ts\": )",
                                      "not a JSON object ([1, 2])"}));
}

// Issue 24: a line nested 150k levels deep crashed the reader (RapidJSON's
// recursive parser); it is one rejected row, and the other lines load.
TEST_F(IngestTest, JsonLineNestedTooDeepRejectsOneRow) {
  auto json = Write("events.jsonl", "{\"id\": 1, \"ts\": \"2026-06-01T00:00:00Z\"}\n{\"id\": " +
                                        std::string(150000, '[') +
                                        "\n{\"id\": 2, \"ts\": \"2026-06-01T01:00:00Z\"}\n");
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(), {json}, Options(true)));
  EXPECT_EQ(report.rows_read, 3);
  EXPECT_EQ(report.rows_written, 2);
  EXPECT_EQ(report.rows_rejected, 1);
  ASSERT_EQ(report.examples.size(), 1u);
  EXPECT_EQ(report.examples[0].line, 2);
  EXPECT_EQ(report.examples[0].reason, "JSON nested deeper than 256 levels");
  auto t = Read(Target().table_uri, "id");
  EXPECT_EQ(Micros(t, "ts"), (std::vector<int64_t>{kJune1, kJune1 + kHour}));
}

TEST_F(IngestTest, ReadJsonLinesFileRefusesNestingNamingTheLine) {
  auto ok = Write("ok.json", "{\"id\": 1, \"v\": [1, 2]}\n{\"id\": 2, \"v\": [3]}\n");
  ASSERT_OK_AND_ASSIGN(auto table, ReadJsonLinesFile(ok));
  EXPECT_EQ(table->num_rows(), 2);
  EXPECT_EQ(table->schema()->field_names(), (std::vector<std::string>{"id", "v"}));
  auto deep = Write("deep.json", "{\"id\": 1}\n" + std::string(150000, '[') + "\n");
  auto r = ReadJsonLinesFile(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "input '" + deep +
                "' line 2: JSON nested deeper than 256 levels at byte 256 (arrays and objects "
                "inside each other)");
  auto missing = ReadJsonLinesFile(deep + ".nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().IsIOError());
}

TEST_F(IngestTest, CsvRecordWithTheWrongNumberOfFieldsRejectsOneRow) {
  auto csv = Write("events.csv",
                   "id,ts,active,note\n"
                   "1,2026-06-01,true,a\n"
                   "2,2026-06-01,true,a,extra\n"
                   "3,2026-06-01\n"
                   "4,2026-06-01,false,\"x,y\"\n");
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(), {csv}, Options(true)));
  EXPECT_EQ(report.rows_read, 4);
  EXPECT_EQ(report.rows_written, 2);
  EXPECT_EQ(report.reason_counts,
            (std::map<std::string, int64_t>{{"expected 4 fields, found 2", 1},
                                            {"expected 4 fields, found 5", 1}}));
  ASSERT_EQ(report.examples.size(), 2u);
  EXPECT_EQ(report.examples[0].line, 3);
  EXPECT_EQ(report.examples[0].value, "2,2026-06-01,true,a,extra");
  EXPECT_EQ(report.examples[1].line, 4);
  EXPECT_EQ(Strings(Read(Target().table_uri, "id"), "note"),
            (std::vector<std::string>{"a", "x,y"}));
}

TEST_F(IngestTest, CsvWithByteOrderMarkAndCrLfLineEnds) {
  // Lines: 1 header, 2 row, 3 blank, 4-5 one record, 6 too many fields, 7 too few
  // (the last record, without a line break).
  auto csv = Write("crlf.csv", "\xEF\xBB\xBFid,note\r\n1,a\r\n\r\n2,\"x\r\ny\"\r\n3,b,c\r\n4");
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(), {csv}, Options(true)));
  EXPECT_EQ(report.rows_read, 4);
  EXPECT_EQ(report.rows_written, 2);
  ASSERT_EQ(report.examples.size(), 2u);
  EXPECT_EQ(report.examples[0].line, 6);
  EXPECT_EQ(report.examples[0].reason, "expected 2 fields, found 3");
  EXPECT_EQ(report.examples[1].line, 7);
  EXPECT_EQ(report.examples[1].reason, "expected 2 fields, found 1");
  EXPECT_EQ(Strings(Read(Target().table_uri, "id"), "note"),
            (std::vector<std::string>{"a", "x\r\ny"}));
}

TEST_F(IngestTest, TextThatIsNotUtf8RejectsOneRow) {
  auto csv = Write("a.csv", "id,note\n1,\xff\xfe\n2,ok\n");
  auto json = Write("b.jsonl", "{\"id\": 3, \"note\": \"\xff\"}\n{\"id\": 4}\n");
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(), {csv, json}, Options(true)));
  EXPECT_EQ(report.rows_read, 4);
  EXPECT_EQ(report.rows_written, 2);
  EXPECT_EQ(report.reason_counts,
            (std::map<std::string, int64_t>{{"column note is not valid UTF-8", 1},
                                            {"not valid JSON", 1}}));
  auto q = Read(Target().quarantine_uri, "_source_file");
  // Messages and the quarantine stay valid UTF-8.
  EXPECT_EQ(Strings(q, "_reason"),
            (std::vector<std::string>{"column note is not valid UTF-8 (?"
                                      "?)",
                                      "not valid JSON ({\"id\": 3, \"note\": \"?\"})"}));
  EXPECT_EQ(Strings(Read(Target().table_uri, "id"), "id"), (std::vector<std::string>{"2", "4"}));
}

TEST_F(IngestTest, NullInNotNullColumnIsRejected) {
  auto csv = Write("a.csv", "id,note\n,first\n2,second\nNA,third\n");
  auto json = Write("b.jsonl", "{\"note\": \"no id\"}\n{\"id\": null}\n{\"id\": 7}\n");
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(), {csv, json}, Options(true)));
  EXPECT_EQ(report.rows_read, 6);
  EXPECT_EQ(report.rows_written, 2);
  EXPECT_EQ(report.reason_counts, (std::map<std::string, int64_t>{{"column id is NOT NULL", 4}}));
  ASSERT_EQ(report.examples.size(), 4u);
  EXPECT_EQ(report.examples[0].file, csv);
  EXPECT_EQ(report.examples[0].line, 2);
  EXPECT_EQ(report.examples[0].column, "id");
  EXPECT_EQ(report.examples[0].value, "");
  EXPECT_EQ(report.examples[1].line, 4);
  EXPECT_EQ(report.examples[2].file, json);
  EXPECT_EQ(report.examples[2].line, 1);
  EXPECT_EQ(report.examples[3].line, 2);
  EXPECT_EQ(Strings(Read(Target().table_uri, "id"), "id"), (std::vector<std::string>{"2", "7"}));
}

TEST_F(IngestTest, RowsWhereACheckIsNotTrueAreRejected) {
  auto schema = arrow::schema({arrow::field("id", arrow::int64(), false),
                               arrow::field("amount", arrow::float64()),
                               arrow::field("name", arrow::utf8())});
  IngestTarget target = Target(schema);
  target.checks = {"amount >= 0", "name != ''"};
  target.check_names = {"", "name_present"};
  auto csv = Write("c.csv",
                   "id,amount,name\n"
                   "1,5,a\n"
                   "2,-1,b\n"
                   "3,,c\n"
                   "4,1,\n"
                   "5,x,d\n");
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(target, {csv}, Options(true)));
  EXPECT_EQ(report.rows_written, 1);
  EXPECT_EQ(report.rows_rejected, 4);
  // NULL fails a check; a value that did not convert is not judged by checks.
  EXPECT_EQ(report.reason_counts,
            (std::map<std::string, int64_t>{{"check `amount >= 0` failed", 2},
                                            {"check `name_present` failed", 1},
                                            {"column amount: not a valid double", 1}}));
  auto q = Read(target.quarantine_uri, "_line");
  EXPECT_EQ(
      Strings(q, "_reason"),
      (std::vector<std::string>{
          "check `amount >= 0` failed (amount=-1)", "check `amount >= 0` failed (amount=NULL)",
          "check `name_present` failed (name=)", "column amount: 'x' is not a valid double"}));
  EXPECT_EQ(SortedRows(Read(target.table_uri)), (std::vector<std::string>{"1|5|a"}));
}

TEST_F(IngestTest, TableCheckConstraintsRejectRows) {
  auto schema = arrow::schema(
      {arrow::field("id", arrow::int64(), false), arrow::field("amount", arrow::float64())});
  delta::CreateOptions create;
  create.schema = schema;
  create.properties["delta.constraints.positive"] = "amount > 0";
  ASSERT_OK(delta::DeltaTable::Create(Target().table_uri, create).status());
  auto csv = Write("c.csv", "id,amount\n1,5\n2,-1\n");
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(nullptr), {csv}, Options(true)));
  EXPECT_EQ(report.rows_written, 1);
  EXPECT_EQ(report.reason_counts, (std::map<std::string, int64_t>{{"check `positive` failed", 1}}));
  EXPECT_EQ(SortedRows(Read(Target().table_uri)), (std::vector<std::string>{"1|5"}));
}

TEST_F(IngestTest, InputColumnsNotInTheSchemaAreIgnoredAndListed) {
  auto csv = Write("a.csv", "zeta,id,note,alpha\nz,1,x,a\n");
  auto json = Write("b.jsonl", "{\"id\": 2, \"beta\": 1, \"zeta\": 2}\n");
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(), {csv, json}, Options()));
  EXPECT_EQ(report.ignored_columns, (std::vector<std::string>{"zeta", "alpha", "beta"}));
  auto t = Read(Target().table_uri, "id");
  EXPECT_EQ(t->schema()->field_names(), (std::vector<std::string>{"id", "ts", "active", "note"}));
}

TEST_F(IngestTest, ColumnsMissingFromTheInputAreNull) {
  auto csv = Write("a.csv", "note,id\nhello,1\n");
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(), {csv}, Options()));
  EXPECT_EQ(report.rows_written, 1);
  EXPECT_EQ(SortedRows(Read(Target().table_uri)), (std::vector<std::string>{"1|null|null|hello"}));
}

// ---- writing ------------------------------------------------------------------------

TEST_F(IngestTest, RejectionWithoutQuarantineLeavesTheTableUnchanged) {
  ASSERT_OK(Ingest(Target(), {Write("a.csv", "id,note\n1,a\n")}, Options()).status());
  ASSERT_EQ(Version(Target().table_uri), 0);
  auto result = Ingest(Target(), {Write("b.csv", "id,note\n2,b\nx,c\n")}, Options());
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(HasErrorKind(result.status(), ErrorKind::kDataRejected));
  EXPECT_EQ(Version(Target().table_uri), 0);
  EXPECT_EQ(SortedRows(Read(Target().table_uri)), (std::vector<std::string>{"1|null|null|a"}));
  EXPECT_EQ(Version(Target().quarantine_uri), -1);
}

TEST_F(IngestTest, QuarantineLoadsGoodRowsAndKeepsRejectedRowsAsText) {
  auto csv = Write("events.csv",
                   "id,ts,active,note,extra\n"
                   "1,2026-06-01T00:00:00Z,true,ok,e1\n"
                   "2,yesterday,maybe,bad,e2\n"
                   "3,2026-06-01T02:00:00+01:00,no,ok,e3\n");
  auto json = Write("more.jsonl",
                    "{\"id\": 4, \"ts\": \"2026-06-01\", \"other\": 1}\n"
                    "{\"id\": \"four\", \"other\": {\"a\": 1}}\n");
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(), {csv, json}, Options(true)));
  EXPECT_EQ(report.rows_read, 5);
  EXPECT_EQ(report.rows_written, 3);
  EXPECT_EQ(report.rows_rejected, 2);
  EXPECT_EQ(report.version, 0);
  EXPECT_EQ(report.quarantine_uri, Target().quarantine_uri);
  EXPECT_EQ(report.quarantine_version, 0);
  EXPECT_EQ(report.reason_counts,
            (std::map<std::string, int64_t>{{"column active: not a valid boolean", 1},
                                            {"column id: not a valid int64", 1},
                                            {"column ts: not a valid timestamp", 1}}));

  auto t = Read(Target().table_uri, "id");
  EXPECT_EQ(Strings(t, "id"), (std::vector<std::string>{"1", "3", "4"}));
  EXPECT_EQ(Micros(t, "ts"), (std::vector<int64_t>{kJune1, kJune1 + kHour, kJune1}));

  auto q = Read(Target().quarantine_uri, "_source_file");
  auto ts = Ts();
  EXPECT_TRUE(q->schema()->Equals(*arrow::schema(
      {arrow::field("id", arrow::utf8()), arrow::field("ts", arrow::utf8()),
       arrow::field("active", arrow::utf8()), arrow::field("note", arrow::utf8()),
       arrow::field("extra", arrow::utf8()), arrow::field("other", arrow::utf8()),
       arrow::field("_source_file", arrow::utf8()), arrow::field("_line", arrow::int64()),
       arrow::field("_reason", arrow::utf8()), arrow::field("_ingested_at", ts)})))
      << q->schema()->ToString();
  EXPECT_EQ(Strings(q, "id"), (std::vector<std::string>{"2", "four"}));
  EXPECT_EQ(Strings(q, "ts"), (std::vector<std::string>{"yesterday", "null"}));
  EXPECT_EQ(Strings(q, "active"), (std::vector<std::string>{"maybe", "null"}));
  EXPECT_EQ(Strings(q, "extra"), (std::vector<std::string>{"e2", "null"}));
  EXPECT_EQ(Strings(q, "other"), (std::vector<std::string>{"null", "{\"a\":1}"}));
  EXPECT_EQ(Strings(q, "_source_file"), (std::vector<std::string>{csv, json}));
  EXPECT_EQ(Strings(q, "_line"), (std::vector<std::string>{"3", "2"}));
  EXPECT_EQ(Strings(q, "_reason"),
            (std::vector<std::string>{"column ts: 'yesterday' is not a valid timestamp; column "
                                      "active: 'maybe' is not a valid boolean",
                                      "column id: 'four' is not a valid int64"}));
  EXPECT_EQ(Micros(q, "_ingested_at"), (std::vector<int64_t>{kNowMs * 1000, kNowMs * 1000}));
}

TEST_F(IngestTest, ZeroGoodRowsAppendWritesOnlyTheQuarantine) {
  auto csv = Write("a.csv", "id,note\nx,a\n");
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(), {csv}, Options(true)));
  EXPECT_EQ(report.version, -1);
  EXPECT_FALSE(report.created);
  EXPECT_EQ(report.rows_written, 0);
  EXPECT_EQ(report.quarantine_version, 0);
  EXPECT_EQ(Version(Target().table_uri), -1);
  EXPECT_EQ(Read(Target().quarantine_uri)->num_rows(), 1);
}

TEST_F(IngestTest, OverwriteReplacesTheTableContents) {
  ASSERT_OK(Ingest(Target(), {Write("a.csv", "id,note\n1,a\n2,b\n")}, Options()).status());
  IngestOptions o = Options();
  o.mode = IngestMode::kOverwrite;
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(), {Write("b.csv", "id,note\n3,c\n")}, o));
  EXPECT_EQ(report.version, 1);
  EXPECT_FALSE(report.created);
  EXPECT_EQ(SortedRows(Read(Target().table_uri)), (std::vector<std::string>{"3|null|null|c"}));
}

TEST_F(IngestTest, MergeUpdatesMatchingKeysAndInsertsTheRest) {
  ASSERT_OK(Ingest(Target(), {Write("a.csv", "id,note\n1,a\n2,b\n")}, Options()).status());
  IngestOptions o = Options();
  o.mode = IngestMode::kMerge;
  o.merge_keys = {"id"};
  ASSERT_OK_AND_ASSIGN(auto report,
                       Ingest(Target(), {Write("b.csv", "id,active,note\n2,true,B\n3,,c\n")}, o));
  EXPECT_EQ(report.version, 1);
  EXPECT_EQ(report.rows_written, 2);
  EXPECT_EQ(SortedRows(Read(Target().table_uri)),
            (std::vector<std::string>{"1|null|null|a", "2|null|true|B", "3|null|null|c"}));
}

TEST_F(IngestTest, MergeIntoAMissingTableCreatesIt) {
  IngestOptions o = Options();
  o.mode = IngestMode::kMerge;
  o.merge_keys = {"id"};
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(), {Write("a.csv", "id,note\n1,a\n")}, o));
  EXPECT_EQ(report.version, 0);
  EXPECT_TRUE(report.created);
  EXPECT_EQ(SortedRows(Read(Target().table_uri)), (std::vector<std::string>{"1|null|null|a"}));
}

TEST_F(IngestTest, MergeNeedsKeysThatAreColumns) {
  IngestOptions o = Options();
  o.mode = IngestMode::kMerge;
  auto csv = Write("a.csv", "id,note\n1,a\n");
  auto no_keys = Ingest(Target(), {csv}, o);
  ASSERT_FALSE(no_keys.ok());
  EXPECT_EQ(no_keys.status().message(), "merge mode needs key columns (`merge_keys`)");
  o.merge_keys = {"key"};
  auto bad_key = Ingest(Target(), {csv}, o);
  ASSERT_FALSE(bad_key.ok());
  EXPECT_EQ(bad_key.status().message(),
            "merge key 'key' is not a column of 'events' (columns: id, ts, active, note)");
}

TEST_F(IngestTest, AllFilesLandInOneCommit) {
  auto csv = Write("a.csv", "id,note\n1,csv\n");
  auto json = Write("b.json", "{\"id\": 2, \"note\": \"json\"}\n");
  auto parquet =
      WriteParquet("c.parquet", TableFromJson(arrow::schema({arrow::field("id", arrow::int64()),
                                                             arrow::field("note", arrow::utf8())}),
                                              {"[3, 4]", "[\"pq\", \"pq\"]"}));
  IngestTarget target = Target();
  target.partition_by = {"note"};
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(target, {csv, json, parquet}, Options()));
  EXPECT_EQ(report.files, 3);
  EXPECT_EQ(report.rows_written, 4);
  EXPECT_EQ(report.version, 0);
  ASSERT_OK_AND_ASSIGN(auto table, delta::DeltaTable::Open(target.table_uri));
  ASSERT_OK_AND_ASSIGN(auto history, table->History());
  EXPECT_EQ(history.size(), 1u);
  ASSERT_OK_AND_ASSIGN(auto snapshot, table->Latest());
  EXPECT_EQ(snapshot->metadata().partition_columns, (std::vector<std::string>{"note"}));
  EXPECT_EQ(Strings(Read(target.table_uri, "id"), "note"),
            (std::vector<std::string>{"csv", "json", "pq", "pq"}));
}

// ---- schemas ------------------------------------------------------------------------

TEST_F(IngestTest, SchemaIsInferredWhenNoneIsDeclaredAndTheTableIsMissing) {
  auto csv = Write("a.csv",
                   "id,score,ok,day,ts,name,mixed\n"
                   "1,1.5,true,2026-06-01,2026-06-01T01:00:00Z,a,1\n"
                   "2,2,FALSE,2026-06-02,2026-06-01 02:00:00,,x\n");
  auto json = Write("b.jsonl", "{\"id\": 3, \"score\": 4, \"extra\": true, \"mixed\": 2}\n");
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(nullptr), {csv, json}, Options()));
  EXPECT_TRUE(report.created);
  EXPECT_EQ(report.rows_written, 3);
  EXPECT_TRUE(report.ignored_columns.empty());
  auto t = Read(Target().table_uri, "id");
  EXPECT_TRUE(t->schema()->Equals(*arrow::schema(
      {arrow::field("id", arrow::int64()), arrow::field("score", arrow::float64()),
       arrow::field("ok", arrow::boolean()), arrow::field("day", arrow::date32()),
       arrow::field("ts", Ts()), arrow::field("name", arrow::utf8()),
       arrow::field("mixed", arrow::utf8()), arrow::field("extra", arrow::boolean())})))
      << t->schema()->ToString();
  EXPECT_EQ(Micros(t, "ts"), (std::vector<int64_t>{kJune1 + kHour, kJune1 + 2 * kHour, -1}));
  EXPECT_EQ(Strings(t, "mixed"), (std::vector<std::string>{"1", "x", "2"}));
}

TEST_F(IngestTest, ExistingTableSchemaIsTheTargetWhenNoneIsDeclared) {
  auto schema = arrow::schema({arrow::field("id", arrow::int32(), false), arrow::field("ts", Ts()),
                               arrow::field("v", arrow::int16())});
  delta::CreateOptions create;
  create.schema = schema;
  ASSERT_OK(delta::DeltaTable::Create(Target().table_uri, create).status());
  auto csv = Write("a.csv", "id,ts,v,w\n1,2026-06-01T01:00:00+01:00,7,x\n,2026-06-01,40000,y\n");
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(nullptr), {csv}, Options(true)));
  EXPECT_FALSE(report.created);
  EXPECT_EQ(report.version, 1);
  EXPECT_EQ(report.ignored_columns, (std::vector<std::string>{"w"}));
  EXPECT_EQ(report.reason_counts,
            (std::map<std::string, int64_t>{{"column id is NOT NULL", 1},
                                            {"column v: out of range for int16", 1}}));
  auto t = Read(Target().table_uri);
  EXPECT_TRUE(t->schema()->field(0)->type()->Equals(arrow::int32()));
  EXPECT_EQ(Micros(t, "ts"), (std::vector<int64_t>{kJune1}));
  EXPECT_EQ(Strings(t, "v"), (std::vector<std::string>{"7"}));
}

TEST_F(IngestTest, EmptyFilesLoadNothing) {
  ASSERT_OK(Ingest(Target(), {Write("a.csv", "id,note\n1,a\n")}, Options()).status());
  auto empty_csv = Write("empty.csv", "");
  auto header_only = Write("header.csv", "id,note\n");
  auto blank_csv = Write("blank.csv", "\n\r\n");
  auto empty_json = Write("empty.jsonl", "\n\n");
  ASSERT_OK_AND_ASSIGN(
      auto report, Ingest(Target(), {empty_csv, header_only, blank_csv, empty_json}, Options()));
  EXPECT_EQ(report.rows_read, 0);
  EXPECT_EQ(report.rows_written, 0);
  EXPECT_EQ(report.version, -1);
  EXPECT_EQ(Version(Target().table_uri), 0);
  // Nor is a table created from an empty file.
  IngestTarget other = Target(nullptr);
  other.table_uri = dir_.Join("other");
  ASSERT_OK_AND_ASSIGN(auto report2, Ingest(other, {empty_csv}, Options()));
  EXPECT_EQ(report2.version, -1);
  EXPECT_EQ(Version(other.table_uri), -1);
}

TEST_F(IngestTest, LineNumbersStayExactAcrossManyBatches) {
  // ~6 MB, so Arrow reads it in several blocks; a quoted line break early on shifts
  // every later line by one.
  std::string content = "id,ts,active,note\n1,2026-06-01,true,\"a\r\nb\"\r\n";
  for (int i = 2; i <= 200000; ++i) {
    content += std::to_string(i) + ",2026-06-01T00:00:00Z,true,some text to make it long\n";
  }
  content += "bad,2026-06-01,true,x\n";
  for (int i = 0; i < 1000; ++i) content += "7,2026-06-01,true,x\n";
  auto csv = Write("big.csv", content);
  auto result = Ingest(Target(), {csv}, Options());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message().substr(0, result.status().message().find('\n', 80)),
            "rejected 1 of 201001 rows of 'events' (nothing was written):\n  " + csv +
                ":200003 column id: 'bad' is not a valid int64");
}

// ---- errors -------------------------------------------------------------------------

TEST_F(IngestTest, UnknownExtensionIsAClearError) {
  auto txt = Write("data.txt", "id\n1\n");
  auto result = Ingest(Target(), {txt}, Options());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(),
            "cannot tell the format of '" + txt +
                "' from its extension '.txt'; name it .csv, .json, .jsonl, .ndjson or .parquet, "
                "or pass the format (--format csv|json|parquet)");
  IngestOptions o = Options();
  o.format = "csv";
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(), {txt}, o));
  EXPECT_EQ(report.rows_written, 1);
}

TEST_F(IngestTest, MissingFileIsAClearErrorNamingThePath) {
  auto good = Write("a.csv", "id\n1\n");
  auto missing = dir_.Join("nope.csv");
  auto result = Ingest(Target(), {good, missing}, Options());
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(result.status().IsIOError());
  EXPECT_EQ(result.status().message(), "input file '" + missing + "' does not exist");
  EXPECT_EQ(Version(Target().table_uri), -1);
}

TEST_F(IngestTest, ReportToStringSummarizes) {
  auto csv = Write("a.csv", "id,note,x\n1,a,1\nbad,b,2\n");
  ASSERT_OK_AND_ASSIGN(auto report, Ingest(Target(), {csv}, Options(true)));
  EXPECT_EQ(report.ToString(), "loaded 1 of 2 rows from 1 file into " + Target().table_uri +
                                   " (version 0, table created)\n"
                                   "rejected 1 row, kept in " +
                                   Target().quarantine_uri +
                                   " (version 0)\n"
                                   "ignored columns: x\n"
                                   "by reason:\n"
                                   "  1  column id: not a valid int64\n"
                                   "examples:\n"
                                   "  " +
                                   csv + ":3 column id: 'bad' is not a valid int64\n");
}

}  // namespace
}  // namespace stratalake
