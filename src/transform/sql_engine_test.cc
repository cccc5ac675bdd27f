// Tests of SqlEngine's table scans: Delta tables attached at a pinned version and
// read lazily by DuckDB (projection pushdown, row groups on several threads, the
// same rows as a plain read), readers drained once, errors of a source.
#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <thread>

#include <arrow/api.h>
#include <gtest/gtest.h>

#include "../../tests/test_util.h"
#include "stratalake/delta.h"
#include "stratalake/transform.h"

namespace stratalake::transform {
namespace {

using stratalake::testing::TableFromJson;
using stratalake::testing::TempDir;

// Rows of `t` as text, one "a|b|c" line per row, in the table's order.
std::vector<std::string> Rows(const arrow::Table& t) {
  std::vector<std::string> out;
  for (int64_t r = 0; r < t.num_rows(); ++r) {
    std::string line;
    for (int c = 0; c < t.num_columns(); ++c) {
      auto s = t.column(c)->GetScalar(r).ValueOrDie();
      line += (c ? "|" : "") + (s->is_valid ? s->ToString() : std::string("null"));
    }
    out.push_back(line);
  }
  return out;
}

// Every Arrow type a Delta table holds, with nulls, and a partition column.
std::shared_ptr<arrow::Schema> WideSchema() {
  return arrow::schema({
      arrow::field("id", arrow::int64()),
      arrow::field("flag", arrow::boolean()),
      arrow::field("small", arrow::int32()),
      arrow::field("amount", arrow::float64()),
      arrow::field("price", arrow::decimal128(10, 2)),
      arrow::field("name", arrow::utf8()),
      arrow::field("raw", arrow::binary()),
      arrow::field("day", arrow::date32()),
      arrow::field("ts", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC")),
      arrow::field("local_ts", arrow::timestamp(arrow::TimeUnit::MICRO)),
      arrow::field("tags", arrow::list(arrow::utf8())),
      arrow::field("point", arrow::struct_({arrow::field("x", arrow::float64()),
                                            arrow::field("y", arrow::float64())})),
      arrow::field("region", arrow::utf8()),
  });
}

std::shared_ptr<arrow::Table> WideRows(int first, const std::string& region) {
  const std::string ids = "[" + std::to_string(first) + ", " + std::to_string(first + 1) + ", " +
                          std::to_string(first + 2) + "]";
  return TableFromJson(
      WideSchema(),
      {ids, "[true, null, false]", "[1, 2, null]", "[1.5, null, -2.25]",
       R"(["12.34", "0.01", null])", R"(["a fairly long name beyond twelve bytes", null, "b"])",
       R"(["AQI=", "", null])", "[19000, null, 20000]",
       R"(["2026-01-01 00:00:00.000001", null, "2026-03-01 12:00:00"])",
       R"(["2026-01-01 00:00:00", "2026-01-02 00:00:00", null])", R"([["x", "y"], [], null])",
       R"([{"x": 1, "y": 2}, null, {"x": 3, "y": null}])",
       "[\"" + region + "\", \"" + region + "\", \"" + region + "\"]"});
}

class SqlScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Two partitions, three commits (three data files).
    Write(WideRows(0, "eu"));
    Write(WideRows(3, "us"));
    Write(WideRows(6, "eu"));
  }

  int64_t Write(const std::shared_ptr<arrow::Table>& rows,
                delta::WriteMode mode = delta::WriteMode::kAppend) {
    auto t = delta::DeltaTable::ForPath(dir_.Join("wide")).ValueOrDie();
    delta::WriteOptions wo;
    wo.mode = mode;
    wo.partition_by = {"region"};
    auto r = t->Write(rows, wo);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->version : -1;
  }

  std::shared_ptr<delta::DeltaTable> Table() {
    return delta::DeltaTable::Open(dir_.Join("wide")).ValueOrDie();
  }

  // An engine with the table attached as bronze.wide at `version` (latest when < 0).
  std::unique_ptr<SqlEngine> Attached(int64_t version = -1) {
    auto table = Table();
    auto snapshot = version < 0 ? table->Latest() : table->AtVersion(version);
    EXPECT_TRUE(snapshot.ok()) << snapshot.status().ToString();
    auto engine = SqlEngine::Open().ValueOrDie();
    auto st = engine->AttachDeltaTable("bronze", "wide", table, *snapshot);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return engine;
  }

  TempDir dir_;
};

TEST_F(SqlScanTest, AttachedDeltaTableGivesTheRowsOfAPlainReadOnlyTheColumnsUsed) {
  auto engine = Attached();
  // No pushdown: every column, compared with the storage layer's own read of the table
  // handed to DuckDB as one reader.
  ASSERT_OK_AND_ASSIGN(auto all, Table()->Read(delta::ReadOptions{}));
  ASSERT_OK(engine->LoadTable("plain", "wide", std::make_shared<arrow::TableBatchReader>(all)));
  ASSERT_OK_AND_ASSIGN(auto got, engine->Query("SELECT * FROM bronze.wide ORDER BY id"));
  ASSERT_OK_AND_ASSIGN(auto want, engine->Query("SELECT * FROM plain.wide ORDER BY id"));
  EXPECT_TRUE(got->schema()->Equals(*want->schema())) << got->schema()->ToString() << "\n"
                                                      << want->schema()->ToString();
  EXPECT_EQ(got->num_rows(), 9);
  EXPECT_EQ(Rows(*got), Rows(*want));
  EXPECT_EQ(Rows(*got)[0],
            "0|true|1|1.5|12.34|a fairly long name beyond twelve bytes|AQI=|2022-01-08|"
            "2026-01-01 00:00:00.000001Z|2026-01-01 00:00:00.000000|list<l: string>[x, y]|"
            "{x:double = 1, y:double = 2}|eu");

  // Projection pushdown: only the columns the query uses are read, with the same rows.
  const char* q =
      "SELECT id, name, tags, point.y AS y, region FROM %s WHERE amount IS NOT NULL ORDER BY id";
  auto sql = [&](const char* table) {
    std::string s = q;
    return s.replace(s.find("%s"), 2, table);
  };
  ASSERT_OK_AND_ASSIGN(auto pushed, engine->Query(sql("bronze.wide")));
  const auto scans = engine->Scans();
  ASSERT_OK_AND_ASSIGN(auto plain, engine->Query(sql("plain.wide")));
  EXPECT_EQ(Rows(*pushed), Rows(*plain));
  EXPECT_EQ(pushed->num_rows(), 6);
  ASSERT_FALSE(scans.empty());
  EXPECT_EQ(scans.back().table, "bronze.wide");
  EXPECT_EQ(std::set<std::string>(scans.back().columns.begin(), scans.back().columns.end()),
            (std::set<std::string>{"id", "amount", "name", "tags", "point", "region"}));
  EXPECT_EQ(scans.back().rows, 9);   // DuckDB filters; every file is read
  EXPECT_EQ(scans.back().parts, 3);  // one per data file

  // count(*) reads no column DuckDB sees, and still every row.
  ASSERT_OK_AND_ASSIGN(auto n, engine->Query("SELECT count(*) AS n FROM bronze.wide"));
  EXPECT_EQ(Rows(*n), (std::vector<std::string>{"9"}));
  EXPECT_LE(engine->Scans().back().columns.size(), 1u) << engine->Scans().back().columns[0];
  ASSERT_OK_AND_ASSIGN(auto ones, engine->Query("SELECT 1 AS one FROM bronze.wide LIMIT 2"));
  EXPECT_EQ(Rows(*ones), (std::vector<std::string>{"1", "1"}));

  // The partition column alone (its values come from the log, not the files).
  ASSERT_OK_AND_ASSIGN(
      auto regions,
      engine->Query("SELECT region, count(*) FROM bronze.wide GROUP BY ALL ORDER BY 1"));
  EXPECT_EQ(Rows(*regions), (std::vector<std::string>{"eu|6", "us|3"}));
}

TEST_F(SqlScanTest, AQueryReadsATableTwiceAndEveryScanReadsItAnew) {
  auto engine = Attached();
  ASSERT_OK_AND_ASSIGN(auto j, engine->Query(R"(
      WITH a AS (SELECT id, region FROM bronze.wide)
      SELECT count(*) AS pairs, (SELECT count(*) FROM a) AS rows
      FROM a JOIN bronze.wide b ON a.region = b.region)"));
  EXPECT_EQ(Rows(*j), (std::vector<std::string>{"45|9"}));  // 6*6 + 3*3 pairs
  int scans = 0;
  for (const auto& s : engine->Scans()) {
    EXPECT_EQ(s.table, "bronze.wide");
    EXPECT_EQ(s.rows, 9);
    ++scans;
  }
  EXPECT_GE(scans, 2);
  // The same query again gives the same rows (nothing was consumed).
  ASSERT_OK_AND_ASSIGN(auto again, engine->Query("SELECT sum(id) FROM bronze.wide"));
  EXPECT_EQ(Rows(*again), (std::vector<std::string>{"36"}));
}

TEST_F(SqlScanTest, TheTableStaysAtItsVersionWhileAnotherWriterCommits) {
  auto engine = Attached(1);  // the first two commits: ids 0..5
  ASSERT_OK_AND_ASSIGN(auto before, engine->Query("SELECT sum(id), count(*) FROM bronze.wide"));
  EXPECT_EQ(Rows(*before), (std::vector<std::string>{"15|6"}));
  // Another writer appends, deletes and overwrites; the attached version does not move.
  Write(WideRows(100, "us"));
  ASSERT_OK(Table()->Delete("id = 0").status());
  Write(WideRows(200, "eu"), delta::WriteMode::kOverwrite);
  ASSERT_OK_AND_ASSIGN(auto after, engine->Query("SELECT sum(id), count(*) FROM bronze.wide"));
  EXPECT_EQ(Rows(*after), Rows(*before));
  // While a query runs too: commits from another thread between and during scans.
  std::thread writer([&] {
    for (int i = 0; i < 5; ++i) Write(WideRows(300 + 3 * i, "us"));
  });
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK_AND_ASSIGN(auto during, engine->Query("SELECT sum(a.id), count(*) FROM bronze.wide a "
                                                    "JOIN bronze.wide b USING (id)"));
    EXPECT_EQ(Rows(*during), Rows(*before));
  }
  writer.join();
  // The latest version has the overwrite's rows and the appends after it.
  auto latest = Attached();
  ASSERT_OK_AND_ASSIGN(auto now, latest->Query("SELECT min(id), count(*) FROM bronze.wide"));
  EXPECT_EQ(Rows(*now), (std::vector<std::string>{"200|18"}));
}

TEST_F(SqlScanTest, DeletionVectorsAndRowGroupsOnSeveralThreads) {
  // 2.2M rows in one file: three row groups (1M rows each), read as three parts.
  constexpr int64_t kRows = 2'200'000;
  arrow::Int64Builder ids;
  ASSERT_OK(ids.Reserve(kRows));
  for (int64_t i = 0; i < kRows; ++i) ids.UnsafeAppend(i);
  ASSERT_OK_AND_ASSIGN(auto id_array, ids.Finish());
  // Strings, some longer than DuckDB inlines (12 bytes), every tenth null: sliced
  // into 2048-row chunks at every offset of the row groups.
  arrow::StringBuilder names;
  for (int64_t i = 0; i < kRows; ++i) {
    if (i % 10 == 9) {
      ASSERT_OK(names.AppendNull());
    } else {
      ASSERT_OK(
          names.Append(i % 2 ? "n" + std::to_string(i) : "a longer name " + std::to_string(i)));
    }
  }
  ASSERT_OK_AND_ASSIGN(auto name_array, names.Finish());
  auto big = arrow::Table::Make(
      arrow::schema({arrow::field("id", arrow::int64()), arrow::field("name", arrow::utf8())}),
      {id_array, name_array});
  auto table = delta::DeltaTable::ForPath(dir_.Join("big")).ValueOrDie();
  ASSERT_OK(table->Write(big, delta::WriteOptions{}).status());
  ASSERT_OK_AND_ASSIGN(table, delta::DeltaTable::Open(dir_.Join("big")));
  std::shared_ptr<delta::DeltaTable> shared(std::move(table));
  ASSERT_OK_AND_ASSIGN(auto snapshot, shared->Latest());
  ASSERT_OK_AND_ASSIGN(auto engine, SqlEngine::Open());
  ASSERT_OK(engine->AttachDeltaTable("bronze", "big", shared, snapshot));
  ASSERT_OK_AND_ASSIGN(auto agg, engine->Query("SELECT count(*), sum(id), count(DISTINCT id) FROM "
                                               "bronze.big WHERE id % 3 = 0"));
  EXPECT_EQ(Rows(*agg), (std::vector<std::string>{"733334|806667033333|733334"}));
  EXPECT_EQ(engine->Scans().back().parts, 3);
  // Rows in file order when the query does not say otherwise.
  ASSERT_OK_AND_ASSIGN(auto first, engine->Query("SELECT id FROM bronze.big LIMIT 3 OFFSET "
                                                 "1048575"));
  EXPECT_EQ(Rows(*first), (std::vector<std::string>{"1048575", "1048576", "1048577"}));
  ASSERT_OK_AND_ASSIGN(auto strings, engine->Query(R"(
      SELECT count(name), count(*) FILTER (WHERE name = CASE WHEN id % 2 = 1
                 THEN 'n' || id ELSE 'a longer name ' || id END),
             min(id) FILTER (WHERE name IS NULL)
      FROM bronze.big)"));
  EXPECT_EQ(Rows(*strings), (std::vector<std::string>{"1980000|1980000|9"}));
  ASSERT_OK_AND_ASSIGN(auto one,
                       engine->Query("SELECT name FROM bronze.big WHERE id IN (1048576, 2199999)"
                                     " ORDER BY id"));
  EXPECT_EQ(Rows(*one), (std::vector<std::string>{"a longer name 1048576", "null"}));

  // Rows deleted after the version attached are still there; at the next version
  // (a deletion vector or a rewrite) they are gone.
  ASSERT_OK(shared->Delete("id % 2 = 1").status());
  ASSERT_OK_AND_ASSIGN(auto still, engine->Query("SELECT count(*) FROM bronze.big"));
  EXPECT_EQ(Rows(*still), (std::vector<std::string>{"2200000"}));
  ASSERT_OK_AND_ASSIGN(auto latest, shared->Latest());
  ASSERT_OK(engine->AttachDeltaTable("silver", "big", shared, latest));
  ASSERT_OK_AND_ASSIGN(auto halved, engine->Query("SELECT count(*), max(id) FROM silver.big"));
  EXPECT_EQ(Rows(*halved), (std::vector<std::string>{"1100000|2199998"}));
}

// A reader that counts the batches it hands out and fails where told.
class CountingReader : public arrow::RecordBatchReader {
 public:
  CountingReader(std::shared_ptr<arrow::Table> table, int fail_at = -1)
      : table_(std::move(table)), reader_(*table_), fail_at_(fail_at) {
    reader_.set_chunksize(2);
  }
  std::shared_ptr<arrow::Schema> schema() const override { return table_->schema(); }
  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    if (calls_++ == fail_at_) return arrow::Status::IOError("the disk is on fire");
    return reader_.ReadNext(out);
  }
  int calls() const { return calls_; }

 private:
  std::shared_ptr<arrow::Table> table_;
  arrow::TableBatchReader reader_;
  int fail_at_;
  int calls_ = 0;
};

TEST_F(SqlScanTest, AReaderIsDrainedOnceAndItsErrorIsTheQuerysError) {
  ASSERT_OK_AND_ASSIGN(auto rows, Table()->Read(delta::ReadOptions{}));  // 9 rows
  ASSERT_OK_AND_ASSIGN(auto engine, SqlEngine::Open());
  auto reader = std::make_shared<CountingReader>(rows);
  ASSERT_OK(engine->LoadTable("bronze", "rows", reader));
  EXPECT_EQ(reader->calls(), 0);  // nothing is read before a query needs it
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(auto t, engine->Query("SELECT count(*), sum(a.id) FROM bronze.rows a "
                                               "JOIN bronze.rows b USING (id)"));
    EXPECT_EQ(Rows(*t), (std::vector<std::string>{"9|36"}));
  }
  EXPECT_EQ(reader->calls(), 7);  // 6 batches (3 files of 3 rows, by 2), then the end, once
  ASSERT_OK_AND_ASSIGN(auto ordered, engine->Query("SELECT id FROM bronze.rows"));
  EXPECT_EQ(Rows(*ordered),
            (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8"}));

  ASSERT_OK(engine->LoadTable("bronze", "broken", std::make_shared<CountingReader>(rows, 2)));
  auto bad = engine->Query("SELECT sum(id) FROM bronze.broken");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().IsIOError()) << bad.status().ToString();
  EXPECT_EQ(bad.status().message(), "the disk is on fire");
  // A query that does not read it is unaffected.
  ASSERT_OK_AND_ASSIGN(auto fine, engine->Query("SELECT count(*) FROM bronze.rows"));
  EXPECT_EQ(Rows(*fine), (std::vector<std::string>{"9"}));
}

TEST_F(SqlScanTest, AMissingDataFileFailsTheQueryWithTheStorageError) {
  auto engine = Attached();
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_.Join("wide"))) {
    if (entry.path().extension() == ".parquet" &&
        entry.path().parent_path().filename() == "region=us") {
      std::filesystem::remove(entry.path());
    }
  }
  auto bad = engine->Query("SELECT sum(id) FROM bronze.wide");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().IsIOError()) << bad.status().ToString();
}

}  // namespace
}  // namespace stratalake::transform
