// Helpers for the engine tests: temporary tables, tables from JSON, assertions.
#pragma once

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/compute/initialize.h>
#include <arrow/json/from_string.h>
#include <gtest/gtest.h>

#define ASSERT_OK(expr)                                       \
  do {                                                        \
    auto _st = (expr);                                        \
    ASSERT_TRUE(_st.ok()) << #expr << ": " << _st.ToString(); \
  } while (0)

#define SL_CONCAT_INNER(a, b) a##b
#define SL_CONCAT(a, b) SL_CONCAT_INNER(a, b)
#define ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, expr)                    \
  auto tmp = (expr);                                                 \
  ASSERT_TRUE(tmp.ok()) << #expr << ": " << tmp.status().ToString(); \
  lhs = std::move(tmp).ValueUnsafe();
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL(SL_CONCAT(_res_, __LINE__), lhs, expr)

namespace stratalake::testing {

/// A fresh directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("stratalake-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }
  std::string Join(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

/// A table from one JSON array per column, e.g. ({field("id", int64())}, {"[1, 2]"}).
inline std::shared_ptr<arrow::Table> TableFromJson(const std::shared_ptr<arrow::Schema>& schema,
                                                   const std::vector<std::string>& columns) {
  arrow::ArrayVector arrays;
  for (int i = 0; i < schema->num_fields(); ++i) {
    auto arr = arrow::json::ArrayFromJSONString(schema->field(i)->type(), columns[i]);
    EXPECT_TRUE(arr.ok()) << arr.status().ToString();
    arrays.push_back(*arr);
  }
  return arrow::Table::Make(schema, arrays);
}

/// The table sorted by its first column, as one JSON-ish string per row, for exact comparison.
inline std::vector<std::string> SortedRows(const std::shared_ptr<arrow::Table>& table) {
  std::vector<std::string> rows;
  for (int64_t r = 0; r < table->num_rows(); ++r) {
    std::string row;
    for (int c = 0; c < table->num_columns(); ++c) {
      auto s = table->column(c)->GetScalar(r).ValueOrDie();
      row += (c ? "|" : "") + (s->is_valid ? s->ToString() : std::string("null"));
    }
    rows.push_back(row);
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

class ComputeEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { ASSERT_TRUE(arrow::compute::Initialize().ok()); }
};

}  // namespace stratalake::testing
