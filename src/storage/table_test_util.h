// For the storage tests: a DeltaTable at a fresh temporary path with a fake
// clock (TableTest), its four-column schema and rows from JSON. Used by the
// unit tests beside the code (src/storage/*_test.cc) and the end-to-end
// DeltaTable tests (tests/delta_table_test.cc).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "../../tests/test_util.h"
#include "stratalake/clock.h"
#include "stratalake/delta.h"

namespace stratalake::delta::table_test {

/// id int64 NOT NULL, name utf8, score float64, day utf8.
inline std::shared_ptr<arrow::Schema> Schema() {
  return arrow::schema(
      {arrow::field("id", arrow::int64(), false), arrow::field("name", arrow::utf8()),
       arrow::field("score", arrow::float64()), arrow::field("day", arrow::utf8())});
}

/// Rows of Schema(), one JSON array per column.
inline std::shared_ptr<arrow::Table> Rows(const std::string& ids, const std::string& names,
                                          const std::string& scores, const std::string& days) {
  return stratalake::testing::TableFromJson(Schema(), {ids, names, scores, days});
}

/// A table at `dir_.Join("t")` (not created yet) whose clock is `clock_`
/// (1700000000000 ms at the start).
class TableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_ = std::make_shared<FakeClock>(1700000000000);
    TableOpenOptions o;
    o.clock = clock_;
    auto t = DeltaTable::ForPath(dir_.Join("t"), o);
    ASSERT_TRUE(t.ok());
    table_ = std::move(*t);
  }

  /// The rows of `version` (latest when unset) matching `filter`, sorted (SortedRows).
  std::vector<std::string> ReadAll(std::optional<int64_t> version = std::nullopt,
                                   const std::string& filter = "") {
    ReadOptions ro;
    ro.version = version;
    ro.filter = filter;
    auto rows = table_->Read(ro);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    return rows.ok() ? stratalake::testing::SortedRows(*rows) : std::vector<std::string>{};
  }

  /// Write `data` (append unless `wo` says otherwise); a failure fails the test.
  CommitResult Append(const std::shared_ptr<arrow::Table>& data, WriteOptions wo = {}) {
    auto r = table_->Write(data, wo);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : CommitResult{};
  }

  stratalake::testing::TempDir dir_;
  std::shared_ptr<FakeClock> clock_;
  std::unique_ptr<DeltaTable> table_;
};

}  // namespace stratalake::delta::table_test
