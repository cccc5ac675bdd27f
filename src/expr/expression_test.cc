#include "stratalake/expression.h"

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/compute/exec.h>
#include <arrow/compute/expression.h>
#include <arrow/compute/initialize.h>
#include <arrow/json/from_string.h>
#include <gtest/gtest.h>

namespace stratalake {
namespace {

namespace cp = arrow::compute;
using arrow::json::ArrayFromJSONString;

// Arrow 22 registers most compute kernels only in Initialize().
class ComputeEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { ASSERT_TRUE(cp::Initialize().ok()); }
};
[[maybe_unused]] ::testing::Environment* const kComputeEnvironment =
    ::testing::AddGlobalTestEnvironment(new ComputeEnvironment);

#define ASSERT_OK(expr)                      \
  do {                                       \
    const ::arrow::Status _st = (expr);      \
    ASSERT_TRUE(_st.ok()) << _st.ToString(); \
  } while (false)

#define SL_CONCAT_INNER(a, b) a##b
#define SL_CONCAT(a, b) SL_CONCAT_INNER(a, b)
// `lhs` may be a declaration, so it cannot be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define ASSERT_OK_AND_ASSIGN_IMPL(result, lhs, rexpr)     \
  auto result = (rexpr);                                  \
  ASSERT_TRUE(result.ok()) << result.status().ToString(); \
  lhs = std::move(result).ValueUnsafe()
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  ASSERT_OK_AND_ASSIGN_IMPL(SL_CONCAT(_result_, __LINE__), lhs, rexpr)
// NOLINTEND(bugprone-macro-parentheses)

std::shared_ptr<arrow::Array> FromJson(const std::shared_ptr<arrow::DataType>& type,
                                       const std::string& json) {
  auto array = ArrayFromJSONString(type, json);
  EXPECT_TRUE(array.ok()) << array.status().ToString();
  return array.ok() ? *array : nullptr;
}

// 2024-01-01T00:00:00Z in seconds since the epoch.
constexpr int64_t kNewYear2024 = 1704067200;

// Four rows; row 2 is null in nearly every column.
class ExpressionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto inner = arrow::struct_({arrow::field("x", arrow::utf8())});
    auto st = arrow::struct_({arrow::field("a", arrow::int32()), arrow::field("inner", inner)});
    auto source = arrow::struct_({arrow::field("x", arrow::utf8())});
    auto dict_type = arrow::dictionary(arrow::int32(), arrow::utf8());
    schema_ = arrow::schema({
        arrow::field("i32", arrow::int32()),
        arrow::field("i8", arrow::int8()),
        arrow::field("u64", arrow::uint64()),
        arrow::field("f64", arrow::float64()),
        arrow::field("f32", arrow::float32()),
        arrow::field("dec", arrow::decimal128(10, 2)),
        arrow::field("s", arrow::utf8()),
        arrow::field("b", arrow::boolean()),
        arrow::field("ts", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC")),
        arrow::field("ts_ms", arrow::timestamp(arrow::TimeUnit::MILLI)),
        arrow::field("ts_berlin", arrow::timestamp(arrow::TimeUnit::SECOND, "Europe/Berlin")),
        arrow::field("d", arrow::date32()),
        arrow::field("UserId", arrow::int64()),
        arrow::field("order total", arrow::float64()),
        arrow::field("source.id", arrow::int64()),
        arrow::field("source", source),
        arrow::field("st", st),
        arrow::field("dict", dict_type),
        arrow::field("ls", arrow::large_utf8()),
    });
    const int64_t s = kNewYear2024;
    const int64_t us = 1000000;
    std::vector<std::shared_ptr<arrow::Array>> columns = {
        FromJson(arrow::int32(), "[1, 2, null, 4]"),
        FromJson(arrow::int8(), "[1, -5, 100, null]"),
        FromJson(arrow::uint64(), "[0, 10, 18446744073709551615, null]"),
        FromJson(arrow::float64(), "[1.5, -2.0, null, 0.1]"),
        FromJson(arrow::float32(), "[0.1, 1.0, 2.5, null]"),
        FromJson(arrow::decimal128(10, 2), R"(["1.50", "2.00", null, "-3.25"])"),
        FromJson(arrow::utf8(), R"(["apple", "banana", null, "it's"])"),
        FromJson(arrow::boolean(), "[true, false, null, true]"),
        // 2024-01-01 00:00:00, 2024-01-01 12:30:00.5, null, 2023-12-31 23:59:59
        FromJson(schema_->field(8)->type(), "[" + std::to_string(s * us) + ", " +
                                                std::to_string((s + 45000) * us + 500000) +
                                                ", null, " + std::to_string((s - 1) * us) + "]"),
        // 2024-01-01 00:00:00, 2024-06-01 10:00:00, null, 2023-12-31 23:59:59.999
        FromJson(schema_->field(9)->type(), "[" + std::to_string(s * 1000) +
                                                ", 1717236000000, null, " +
                                                std::to_string(s * 1000 - 1) + "]"),
        FromJson(schema_->field(10)->type(),
                 "[" + std::to_string(s) + ", " + std::to_string(s + 3600) + ", null, 0]"),
        // 2024-01-01, 2024-01-02, null, 1970-01-01
        FromJson(arrow::date32(), "[19723, 19724, null, 0]"),
        FromJson(arrow::int64(), "[10, 20, 30, 40]"),
        FromJson(arrow::float64(), "[5, 15, null, 25]"),
        FromJson(arrow::int64(), "[1, 1, 2, 2]"),
        FromJson(source, R"([{"x": "a"}, {"x": "b"}, null, {"x": "a"}])"),
        FromJson(st, R"([{"a": 1, "inner": {"x": "p"}}, {"a": 2, "inner": {"x": "q"}}, null,
                         {"a": null, "inner": null}])"),
        nullptr,
        FromJson(arrow::large_utf8(), R"(["a", null, "b", "a"])"),
    };
    auto dict = arrow::json::DictArrayFromJSONString(dict_type, "[0, 1, null, 0]", R"(["x", "y"])");
    ASSERT_TRUE(dict.ok()) << dict.status().ToString();
    columns[17] = *dict;
    batch_ = arrow::RecordBatch::Make(schema_, 4, columns);
    ASSERT_OK(batch_->ValidateFull());
  }

  arrow::Result<std::shared_ptr<arrow::Array>> Evaluate(const cp::Expression& expr) {
    ARROW_ASSIGN_OR_RAISE(cp::Expression bound, expr.Bind(*schema_));
    ARROW_ASSIGN_OR_RAISE(cp::ExecBatch input, cp::MakeExecBatch(*schema_, arrow::Datum(batch_)));
    ARROW_ASSIGN_OR_RAISE(arrow::Datum out, cp::ExecuteScalarExpression(bound, input));
    if (out.is_scalar()) return arrow::MakeArrayFromScalar(*out.scalar(), batch_->num_rows());
    return out.make_array();
  }

  arrow::Result<std::shared_ptr<arrow::Array>> Evaluate(const std::string& text) {
    ARROW_ASSIGN_OR_RAISE(cp::Expression expr, ParseExpression(text, *schema_));
    return Evaluate(expr);
  }

  // Parses and evaluates `text` and checks the result, nulls included.
  void ExpectResult(const std::string& text, const std::shared_ptr<arrow::DataType>& type,
                    const std::string& expected_json) {
    SCOPED_TRACE(text);
    ASSERT_OK_AND_ASSIGN(std::shared_ptr<arrow::Array> actual, Evaluate(text));
    std::shared_ptr<arrow::Array> expected = FromJson(type, expected_json);
    ASSERT_NE(expected, nullptr);
    EXPECT_TRUE(actual->Equals(*expected))
        << "expected " << expected->type()->ToString() << " " << expected->ToString() << "\nactual "
        << actual->type()->ToString() << " " << actual->ToString();
  }

  void ExpectBool(const std::string& text, const std::string& expected_json) {
    ExpectResult(text, arrow::boolean(), expected_json);
  }

  // Checks that parsing fails with Invalid and a message containing every fragment.
  void ExpectParseError(const std::string& text, const std::vector<std::string>& fragments) {
    SCOPED_TRACE(text);
    auto result = ParseExpression(text, *schema_);
    ASSERT_FALSE(result.ok()) << "parsed as " << result->ToString();
    EXPECT_TRUE(result.status().IsInvalid()) << result.status().ToString();
    for (const std::string& fragment : fragments) {
      EXPECT_NE(result.status().message().find(fragment), std::string::npos)
          << "missing '" << fragment << "' in: " << result.status().message();
    }
  }

  void ExpectAssignmentError(const std::string& text, const std::vector<std::string>& fragments) {
    SCOPED_TRACE(text);
    auto result = ParseAssignments(text, *schema_);
    ASSERT_FALSE(result.ok());
    EXPECT_TRUE(result.status().IsInvalid()) << result.status().ToString();
    for (const std::string& fragment : fragments) {
      EXPECT_NE(result.status().message().find(fragment), std::string::npos)
          << "missing '" << fragment << "' in: " << result.status().message();
    }
  }

  std::shared_ptr<arrow::Schema> schema_;
  std::shared_ptr<arrow::RecordBatch> batch_;
};

TEST_F(ExpressionTest, ComparisonOperators) {
  ExpectBool("i32 = 2", "[false, true, null, false]");
  ExpectBool("i32 == 2", "[false, true, null, false]");
  ExpectBool("i32 != 2", "[true, false, null, true]");
  ExpectBool("i32 <> 2", "[true, false, null, true]");
  ExpectBool("i32 < 2", "[true, false, null, false]");
  ExpectBool("i32 <= 2", "[true, true, null, false]");
  ExpectBool("i32 > 2", "[false, false, null, true]");
  ExpectBool("i32 >= 2", "[false, true, null, true]");
  // Literal on the left, and column against column.
  ExpectBool("2 < i32", "[false, false, null, true]");
  ExpectBool("i32 < UserId", "[true, true, null, true]");
  ExpectBool("s = 'apple'", "[true, false, null, false]");
  ExpectBool("s = 'it''s'", "[false, false, null, true]");
  ExpectBool("s >= 'b'", "[false, true, null, true]");
  ExpectBool("b = TRUE", "[true, false, null, true]");
  ExpectBool("b", "[true, false, null, true]");
  ExpectBool("i32>=2 AND(i32<4)", "[false, true, null, false]");
}

TEST_F(ExpressionTest, Precedence) {
  // AND binds tighter than OR: row 0 is true only under i32 = 1 OR (... AND ...).
  ExpectBool("i32 = 1 OR i32 = 4 AND b = FALSE", "[true, false, null, false]");
  ExpectBool("(i32 = 1 OR i32 = 4) AND b = FALSE", "[false, false, null, false]");
  // NOT binds tighter than AND, looser than comparisons.
  ExpectBool("NOT b AND i32 > 1", "[false, true, null, false]");
  ExpectBool("NOT (b AND i32 > 1)", "[true, true, null, false]");
  ExpectBool("NOT i32 = 1", "[false, true, null, true]");
  ExpectBool("NOT NOT i32 = 1", "[true, false, null, false]");
  // Arithmetic: * before +, left-associative -.
  // 2 * 3 is computed in int64, which widens the sum.
  ExpectResult("i32 + 2 * 3", arrow::int64(), "[7, 8, null, 10]");
  ExpectResult("(i32 + 2) * 3", arrow::int32(), "[9, 12, null, 18]");
  ExpectResult("10 - i32 - 1", arrow::int32(), "[8, 7, null, 5]");
  ExpectBool("i32 + 1 > 2 * 2 - 1", "[false, false, null, true]");
  // Keywords are case-insensitive.
  ExpectBool("i32 between 2 and 4 or s is null", "[false, true, true, true]");
}

TEST_F(ExpressionTest, InAndNotIn) {
  ExpectBool("i32 IN (1, 4)", "[true, false, null, true]");
  ExpectBool("i32 NOT IN (1, 4)", "[false, true, null, false]");
  ExpectBool("i32 IN (-1, 2)", "[false, true, null, false]");
  ExpectBool("s IN ('apple', 'it''s')", "[true, false, null, true]");
  ExpectBool("s not in ('apple')", "[false, true, null, true]");
  // SQL semantics with a NULL in the list: no match means unknown.
  ExpectBool("i32 IN (1, NULL)", "[true, null, null, null]");
  ExpectBool("i32 NOT IN (1, NULL)", "[false, null, null, null]");
  // Values outside the column's domain cannot match but do not fail.
  ExpectBool("i8 IN (300, -5, 1.5)", "[false, true, false, null]");
  ExpectBool("dec IN (1.5, 1.505, 2)", "[true, true, null, false]");
  ExpectBool("d IN ('2024-01-02', DATE '1970-01-01')", "[false, true, null, true]");
  ExpectBool("ts IN ('2024-01-01')", "[true, false, null, false]");
  ExpectBool("i32 + 1 IN (2, 3)", "[true, true, null, false]");
  ExpectBool("NULL IN (1)", "[null, null, null, null]");
  ExpectParseError("s IN (1)", {"cannot compare column 's' (string) with literal 1"});
  ExpectParseError("i32 IN (i32)", {"expected a literal in the IN list"});
}

TEST_F(ExpressionTest, Between) {
  ExpectBool("i32 BETWEEN 2 AND 4", "[false, true, null, true]");
  ExpectBool("i32 NOT BETWEEN 2 AND 4", "[true, false, null, false]");
  // The BETWEEN's AND does not swallow the next conjunct.
  ExpectBool("i32 BETWEEN 1 AND 2 AND b", "[true, false, null, false]");
  ExpectBool("i32 BETWEEN 0 + 2 AND UserId / 10", "[false, true, null, true]");
  ExpectBool("ts BETWEEN '2024-01-01' AND '2024-01-01 12:00:00'", "[true, false, null, false]");
  ExpectBool("s BETWEEN 'a' AND 'b'", "[true, false, null, false]");
}

TEST_F(ExpressionTest, IsNull) {
  ExpectBool("i32 IS NULL", "[false, false, true, false]");
  ExpectBool("i32 IS NOT NULL", "[true, true, false, true]");
  ExpectBool("s is null or b", "[true, false, true, true]");
  ExpectBool("st IS NULL", "[false, false, true, false]");
  ExpectBool("st.a IS NULL", "[false, false, true, true]");
  ExpectBool("i32 + 1 IS NULL", "[false, false, true, false]");
  ExpectBool("NULL IS NULL", "[true, true, true, true]");
  ExpectParseError("i32 IS 5", {"unexpected '5' at position 7", "expected NULL after IS"});
}

TEST_F(ExpressionTest, Like) {
  ExpectBool("s LIKE 'a%'", "[true, false, null, false]");
  ExpectBool("s LIKE '_pple'", "[true, false, null, false]");
  ExpectBool("s NOT LIKE '%an%'", "[true, false, null, true]");
  ExpectBool("s LIKE 'it''s'", "[false, false, null, true]");
  ExpectBool("NOT s LIKE 'b%'", "[true, false, null, true]");
  ExpectParseError("s LIKE 5", {"expected a quoted pattern after LIKE"});
  ExpectParseError("i32 LIKE 'a%'", {"cannot evaluate 'i32 LIKE 'a%''", "match_like"});
}

TEST_F(ExpressionTest, NullSemantics) {
  ExpectBool("i32 = NULL", "[null, null, null, null]");
  ExpectBool("NULL <> i32", "[null, null, null, null]");
  ExpectBool("NULL = NULL", "[null, null, null, null]");
  ExpectBool("b AND NULL", "[null, false, null, null]");
  ExpectBool("b OR NULL", "[true, null, null, true]");
  ExpectBool("NULL AND FALSE", "[false, false, false, false]");
  ExpectBool("NULL OR TRUE", "[true, true, true, true]");
  ExpectBool("NOT NULL", "[null, null, null, null]");
  ExpectBool("NULL", "[null, null, null, null]");
  // Kleene logic over a null column value.
  ExpectBool("i32 > 1 OR b", "[true, true, null, true]");
  ExpectBool("i32 > 1 AND FALSE", "[false, false, false, false]");
  ExpectResult("i32 + NULL", arrow::int32(), "[null, null, null, null]");
}

TEST_F(ExpressionTest, TimestampLiterals) {
  ExpectBool("ts >= '2024-01-01'", "[true, true, null, false]");
  ExpectBool("ts > '2024-01-01T12:00:00Z'", "[false, true, null, false]");
  ExpectBool("ts = '2024-01-01 12:30:00.5'", "[false, true, null, false]");
  ExpectBool("ts = '2024-01-01 12:30:00.500000'", "[false, true, null, false]");
  // +02:00 two hours after midnight local is midnight UTC.
  ExpectBool("ts = '2024-01-01 02:00:00+02:00'", "[true, false, null, false]");
  ExpectBool("ts = '2023-12-31T19:00:00-0500'", "[true, false, null, false]");
  ExpectBool("ts >= TIMESTAMP '2024-01-01 00:00:00'", "[true, true, null, false]");
  ExpectBool("ts >= DATE '2024-01-01'", "[true, true, null, false]");
  ExpectBool("'2024-01-01' <= ts", "[true, true, null, false]");
  // Naive millisecond column: the string is read in the column's own unit.
  ExpectBool("ts_ms = '2023-12-31 23:59:59.999'", "[false, false, null, true]");
  ExpectBool("ts_ms > '2024-03-01'", "[false, true, null, false]");
  // A zoned column holds UTC instants; a naive string is taken as UTC.
  ExpectBool("ts_berlin = '2024-01-01 01:00:00'", "[false, true, null, false]");
  ExpectBool("ts_berlin = '2024-01-01 01:00:00+01:00'", "[true, false, null, false]");
  // TIMESTAMP literals on their own.
  ExpectBool("TIMESTAMP '2024-01-01 00:00:01' > TIMESTAMP '2024-01-01'",
             "[true, true, true, true]");

  ExpectParseError("ts_ms = '2024-01-01 00:00:00.0001'",
                   {"column 'ts_ms' (timestamp[ms])", "'2024-01-01 00:00:00.0001'", "more precise",
                    "at position 8"});
  ExpectParseError("ts > 'garbage'", {"cannot compare column 'ts' (timestamp[us, tz=UTC]) with "
                                      "literal 'garbage'",
                                      "expected 'YYYY-MM-DD"});
  ExpectParseError("ts > '2024-02-30'", {"day 30 is out of range"});
  ExpectParseError("ts > '2024-01-01 24:00:00'", {"time of day is out of range"});
  ExpectParseError("ts > 5", {"cannot compare column 'ts'", "expected a date/time string"});
  ExpectParseError("TIMESTAMP '2024-01-01 10'", {"invalid literal TIMESTAMP '2024-01-01 10'"});
}

TEST_F(ExpressionTest, DateLiterals) {
  ExpectBool("d = '2024-01-01'", "[true, false, null, false]");
  ExpectBool("d < DATE '2024-01-02'", "[true, false, null, true]");
  ExpectBool("d = '1970-01-01'", "[false, false, null, true]");
  ExpectParseError("d = '2024-13-01'", {"column 'd' (date32[day])", "month 13 is out of range"});
  ExpectParseError("d = '2024-01-01 10:00:00'", {"without a time of day"});
  ExpectParseError("DATE '2023-02-29' = d", {"invalid literal DATE '2023-02-29'", "day 29"});
  // A column called `date` needs no quoting: DATE starts a literal only before a string.
  auto schema = arrow::schema({arrow::field("date", arrow::date32())});
  ASSERT_OK_AND_ASSIGN(cp::Expression expr, ParseExpression("date = '2024-01-01'", *schema));
  EXPECT_EQ(ReferencedColumns(expr), std::vector<std::string>{"date"});
}

TEST_F(ExpressionTest, DecimalLiterals) {
  ExpectBool("dec = 1.5", "[true, false, null, false]");
  ExpectBool("dec = 2", "[false, true, null, false]");
  ExpectBool("dec = '2.00'", "[false, true, null, false]");
  ExpectBool("dec < -3.2", "[false, false, null, true]");
  ExpectBool("dec > -3.25", "[true, true, null, false]");
  // More digits than the column's scale: compared exactly, not rounded.
  ExpectBool("dec > 1.505", "[false, true, null, false]");
  ExpectBool("dec < 1.495", "[false, false, null, true]");
  ExpectBool("dec = 1.505", "[false, false, null, false]");
  ExpectResult("dec * 2", arrow::decimal128(12, 2), R"(["3.00", "4.00", null, "-6.50"])");
  ExpectResult("dec + 0.25", arrow::decimal128(11, 2), R"(["1.75", "2.25", null, "-3.00"])");
  ExpectParseError("dec = 'abc'",
                   {"cannot compare column 'dec' (decimal128(10, 2))", "literal 'abc'"});
}

TEST_F(ExpressionTest, NumericLiteralCoercion) {
  ExpectBool("i8 = 100", "[false, false, true, null]");
  ExpectBool("i8 > -6", "[true, true, true, null]");
  // Out of int8's range: still compared correctly rather than failing or wrapping.
  ExpectBool("i8 = 300", "[false, false, false, null]");
  ExpectBool("i8 < 300", "[true, true, true, null]");
  ExpectBool("i32 > 1.5", "[false, true, null, true]");
  ExpectBool("i32 = 2.0", "[false, true, null, false]");
  // 0.1 is read as float32 for a float32 column, so it equals the stored 0.1f.
  ExpectBool("f32 = 0.1", "[true, false, false, null]");
  ExpectBool("f64 = 0.1", "[false, false, null, true]");
  ExpectBool("f64 < 1e0", "[false, true, null, true]");
  ExpectBool("f64 > .5", "[true, false, null, false]");
  ExpectBool("u64 = 18446744073709551615", "[false, false, true, null]");
  // Compared exactly even where Arrow's own promotion (uint64 vs int64) would fail.
  ExpectBool("u64 > -1", "[true, true, true, null]");
  ExpectBool("u64 < 18446744073709551616", "[true, true, true, null]");
  ExpectBool("u64 IN (-1, 10, 18446744073709551616)", "[false, true, false, null]");
  // A fraction against an integer column compares in float64, not float32.
  ExpectBool("UserId > 19.5", "[false, true, true, true]");
  ExpectBool("UserId = -9223372036854775808", "[false, false, false, false]");
  ExpectBool("i32 = '2'", "[false, true, null, false]");
  ExpectParseError(
      "s = 5", {"cannot compare column 's' (string) with literal 5", "expected a quoted string"});
  ExpectParseError("b = 1", {"cannot compare column 'b' (bool) with literal 1"});
  ExpectParseError("i32 = 'abc'", {"cannot compare column 'i32' (int32) with literal 'abc'"});
  ExpectParseError("i32 > 1e999", {"numeric literal 1e999 is out of range"});
}

TEST_F(ExpressionTest, CaseInsensitiveColumns) {
  ExpectBool("userid = 10", "[true, false, false, false]");
  ExpectBool("USERID > 15", "[false, true, true, true]");
  ExpectBool("I32 = 1", "[true, false, null, false]");
  ASSERT_OK_AND_ASSIGN(cp::Expression expr, ParseExpression("userid = 10", *schema_));
  EXPECT_EQ(ReferencedColumns(expr), std::vector<std::string>{"UserId"});

  // An exact match wins; otherwise two case-insensitive matches are ambiguous.
  auto schema =
      arrow::schema({arrow::field("ab", arrow::int32()), arrow::field("Ab", arrow::int32()),
                     arrow::field("aB", arrow::int32())});
  ASSERT_OK_AND_ASSIGN(expr, ParseExpression("Ab = 1", *schema));
  EXPECT_EQ(ReferencedColumns(expr), std::vector<std::string>{"Ab"});
  auto ambiguous = ParseExpression("AB = 1", *schema);
  ASSERT_FALSE(ambiguous.ok());
  EXPECT_NE(ambiguous.status().message().find("column name 'AB' is ambiguous"), std::string::npos)
      << ambiguous.status().message();
}

TEST_F(ExpressionTest, BackQuotedNames) {
  ExpectBool("`order total` > 10", "[false, true, null, true]");
  ExpectBool("`ORDER TOTAL` > 10", "[false, true, null, true]");
  ExpectBool("`i32` = 1", "[true, false, null, false]");
  ASSERT_OK_AND_ASSIGN(cp::Expression expr, ParseExpression("`order total` > 10", *schema_));
  EXPECT_EQ(ReferencedColumns(expr), std::vector<std::string>{"order total"});

  auto schema = arrow::schema(
      {arrow::field("we`ird", arrow::int32()), arrow::field("and", arrow::boolean())});
  ASSERT_OK_AND_ASSIGN(expr, ParseExpression("`we``ird` = 1 AND `and`", *schema));
  EXPECT_EQ(ReferencedColumns(expr), (std::vector<std::string>{"we`ird", "and"}));
  auto keyword = ParseExpression("and = 1", *schema);
  ASSERT_FALSE(keyword.ok());
  EXPECT_NE(keyword.status().message().find("unexpected 'and' at position 0"), std::string::npos)
      << keyword.status().message();

  ExpectParseError("`i32 = 1", {"unterminated back-quoted name at position 0"});
  ExpectParseError("`` = 1", {"empty back-quoted name"});
}

TEST_F(ExpressionTest, DottedFlatNamesAndStructPaths) {
  // "source.id" is a flat column and wins over the struct `source`.
  ExpectBool("source.id = 1", "[true, true, false, false]");
  ExpectBool("`source.id` = 2", "[false, false, true, true]");
  // `source` has no "id" field, but "x" is reached through the struct.
  ExpectBool("source.x = 'a'", "[true, false, null, true]");
  ExpectBool("st.a = 1", "[true, false, null, null]");
  ExpectBool("ST.A >= 1", "[true, true, null, null]");
  ExpectBool("st.inner.x = 'q'", "[false, true, null, null]");
  ExpectBool("`st`.`inner`.x IN ('p')", "[true, false, null, null]");
  ExpectResult("st.a + 1", arrow::int32(), "[2, 3, null, null]");

  ASSERT_OK_AND_ASSIGN(cp::Expression expr, ParseExpression("source.id = 1", *schema_));
  EXPECT_EQ(ReferencedColumns(expr), std::vector<std::string>{"source.id"});
  ASSERT_OK_AND_ASSIGN(expr, ParseExpression("st.inner.x = 'q' AND source.x = 'a'", *schema_));
  EXPECT_EQ(ReferencedColumns(expr), (std::vector<std::string>{"st", "source"}));

  ExpectParseError("st.zz = 1", {"unknown field 'zz' in column 'st' (fields: a, inner)"});
  ExpectParseError("i32.x = 1", {"column 'i32' has type int32, not a struct"});
  ExpectParseError("nope.x = 1", {"unknown column 'nope.x' (columns: i32, i8,"});
  ExpectParseError("st. = 1", {"expected a field name after '.'"});
}

TEST_F(ExpressionTest, DictionaryColumns) {
  ExpectBool("dict = 'x'", "[true, false, null, true]");
  ExpectBool("dict IN ('y')", "[false, true, null, false]");
}

// Regression: Arrow 22's Bind crashes on a null large_string literal whenever it
// considers implicit casts, so such nulls must never reach it as literals.
TEST_F(ExpressionTest, LargeStringNulls) {
  ExpectBool("ls = 'a'", "[true, null, false, true]");
  ExpectBool("ls = NULL", "[null, null, null, null]");
  ExpectBool("ls IN ('b', NULL)", "[null, null, true, null]");
  ExpectParseError("NULL * ls", {"cannot evaluate 'NULL * ls'"});
  ExpectParseError("ls + NULL > 1", {"cannot evaluate 'ls + NULL'"});
  ASSERT_OK_AND_ASSIGN(std::vector<Assignment> assignments,
                       ParseAssignments("ls = NULL", *schema_));
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<arrow::Array> actual, Evaluate(assignments[0].value));
  EXPECT_TRUE(actual->Equals(*FromJson(arrow::large_utf8(), "[null, null, null, null]")))
      << actual->ToString();
}

TEST_F(ExpressionTest, Arithmetic) {
  // Integer literals take the column's type, as in SQL.
  ExpectResult("i32 + 1", arrow::int32(), "[2, 3, null, 5]");
  ExpectResult("i32 - 1", arrow::int32(), "[0, 1, null, 3]");
  ExpectResult("i32 * 2", arrow::int32(), "[2, 4, null, 8]");
  ExpectResult("i32 / 2", arrow::int32(), "[0, 1, null, 2]");
  ExpectResult("i32 % 3", arrow::int32(), "[1, 2, null, 1]");
  ExpectResult("i32 + UserId", arrow::int64(), "[11, 22, null, 44]");
  // Stays unsigned: casting to int64 would fail on the largest value.
  ExpectResult("u64 / 2", arrow::uint64(), "[0, 5, 9223372036854775807, null]");
  ExpectResult("-i32", arrow::int32(), "[-1, -2, null, -4]");
  ExpectResult("- -i32", arrow::int32(), "[1, 2, null, 4]");
  ExpectResult("i32 + i32", arrow::int32(), "[2, 4, null, 8]");
  ExpectResult("f64 * 2", arrow::float64(), "[3.0, -4.0, null, 0.2]");
  ExpectResult("UserId / 4.0", arrow::float64(), "[2.5, 5.0, 7.5, 10.0]");
  // Remainder keeps the dividend's sign, like C and SQL.
  ExpectResult("(0 - 7) % 3", arrow::int64(), "[-1, -1, -1, -1]");
  ExpectResult("UserId % -7", arrow::int64(), "[3, 6, 2, 5]");
  ExpectResult("7.5 % 2", arrow::float64(), "[1.5, 1.5, 1.5, 1.5]");
  ExpectResult("-7.5 % 2", arrow::float64(), "[-1.5, -1.5, -1.5, -1.5]");
  ExpectParseError("s % 2", {"'%' needs integer or floating-point operands, not string and int64"});

  // Checked kernels: overflow and division by zero are errors, not garbage.
  auto overflow = Evaluate("u64 + 1");
  ASSERT_FALSE(overflow.ok());
  EXPECT_NE(overflow.status().message().find("overflow"), std::string::npos)
      << overflow.status().message();
  auto divide_by_zero = Evaluate("i32 / 0");
  ASSERT_FALSE(divide_by_zero.ok());
  EXPECT_NE(divide_by_zero.status().message().find("divide by zero"), std::string::npos);

  ExpectParseError("i32 + 'x'", {"cannot evaluate 'i32 + 'x''", "add_checked", "at position 0"});
  ExpectParseError("(i32 + s) > 1 OR b", {"cannot evaluate 'i32 + s'", "at position 1"});
}

TEST_F(ExpressionTest, MathFunctions) {
  ExpectResult("sqrt(UserId * 10)", arrow::float64(),
               "[10.0, 14.142135623730951, 17.320508075688775, 20.0]");
  ExpectResult("abs(i8)", arrow::int8(), "[1, 5, 100, null]");
  ExpectResult("ABS(f64)", arrow::float64(), "[1.5, 2.0, null, 0.1]");
  ExpectResult("floor(f64)", arrow::float64(), "[1.0, -2.0, null, 0.0]");
  ExpectResult("ceil(f64)", arrow::float64(), "[2.0, -2.0, null, 1.0]");
  // SQL rounding: halves away from zero.
  ExpectResult("round(f64)", arrow::float64(), "[2.0, -2.0, null, 0.0]");
  ExpectResult("round(-2.5)", arrow::float64(), "[-3.0, -3.0, -3.0, -3.0]");
  ExpectResult("round(`order total` / 3, 2)", arrow::float64(), "[1.67, 5.0, null, 8.33]");
  ExpectResult("radians(180)", arrow::float64(),
               "[3.141592653589793, 3.141592653589793, 3.141592653589793, 3.141592653589793]");
  ExpectResult("degrees(0)", arrow::float64(), "[0.0, 0.0, 0.0, 0.0]");
  ExpectResult("cos(0) + sin(0)", arrow::float64(), "[1.0, 1.0, 1.0, 1.0]");
  ExpectResult("exp(0)", arrow::float64(), "[1.0, 1.0, 1.0, 1.0]");
  ExpectResult("ln(1) + log10(100) + log2(8)", arrow::float64(), "[5.0, 5.0, 5.0, 5.0]");
  ExpectResult("pow(2, i32)", arrow::float64(), "[2.0, 4.0, null, 16.0]");
  ExpectResult("atan2(0, 1)", arrow::float64(), "[0.0, 0.0, 0.0, 0.0]");
  ExpectResult("sign(i8)", arrow::int8(), "[1, -1, 1, null]");
  ExpectParseError("sqrt(s)", {"sqrt() needs a number, not 's' (string)", "at position 5"});
  ExpectParseError("sqrt(1, 2)", {"sqrt() takes 1 argument, not 2", "at position 0"});
  ExpectParseError("frobnicate(i32)", {"unknown function 'frobnicate'", "functions: abs"});
  ExpectParseError("round(f64, i32)", {"round()'s digits must be an integer literal"});
}

TEST_F(ExpressionTest, ConditionalFunctions) {
  ExpectResult("coalesce(f64, 0)", arrow::float64(), "[1.5, -2.0, 0.0, 0.1]");
  ExpectResult("coalesce(i32, UserId)", arrow::int64(), "[1, 2, 30, 4]");
  ExpectResult("coalesce(NULL, i32)", arrow::int32(), "[1, 2, null, 4]");
  ExpectResult("if(i32 > 1, 'big', 'small')", arrow::utf8(), R"(["small", "big", null, "big"])");
  ExpectResult("if(b, f64, NULL)", arrow::float64(), "[1.5, null, null, 0.1]");
  ExpectResult("nullif(i32, 2)", arrow::int32(), "[1, null, null, 4]");
  // nullif keeps a division by zero from failing the whole batch.
  ExpectResult("UserId / nullif(i32 - 1, 0)", arrow::int64(), "[null, 20, null, 13]");
  ExpectResult("greatest(i32, 3)", arrow::int32(), "[3, 3, 3, 4]");
  ExpectResult("least(f64, 1)", arrow::float64(), "[1.0, -2.0, 1.0, 0.1]");
  ExpectResult("CASE WHEN i32 >= 4 THEN 'high' WHEN i32 >= 2 THEN 'mid' ELSE 'low' END",
               arrow::utf8(), R"(["low", "mid", "low", "high"])");
  ExpectResult("case when f64 > 0 then f64 * 2 end", arrow::float64(), "[3.0, null, null, 0.2]");
  ExpectResult("CASE WHEN b THEN 1 ELSE NULL END", arrow::int64(), "[1, null, null, 1]");
  ExpectParseError("CASE WHEN i32 THEN 1 END", {"a WHEN condition must be true or false"});
  ExpectParseError("CASE WHEN b THEN 1", {"expected WHEN, ELSE or END"});
  ExpectParseError("if(b, 1)", {"if() takes 3 arguments, not 2"});
}

TEST_F(ExpressionTest, BucketAndHaversine) {
  ExpectResult("bucket(f64, 0, 1, 10)", arrow::int64(), "[2, 0, null, 1]");
  ExpectResult("bucket(UserId, 15, 30)", arrow::int64(), "[0, 1, 2, 2]");
  ExpectParseError("bucket(f64, 1, 0)", {"bucket() boundaries must be ascending"});
  ExpectParseError("bucket(f64, i32)", {"bucket() boundaries must be number literals"});
  // Paris -> London: about 343.5 km.
  ASSERT_OK_AND_ASSIGN(auto d, Evaluate("haversine(48.8566, 2.3522, 51.5074, -0.1278)"));
  ASSERT_EQ(d->type()->id(), arrow::Type::DOUBLE);
  const double km = static_cast<const arrow::DoubleArray&>(*d).Value(0);
  EXPECT_GT(km, 343.0);
  EXPECT_LT(km, 344.5);
  ExpectResult("haversine(f64, f64, f64, f64)", arrow::float64(), "[0.0, 0.0, null, 0.0]");
  ExpectResult("round(haversine(0, 0, 0, 180))", arrow::float64(),
               "[20015.0, 20015.0, 20015.0, 20015.0]");
}

TEST_F(ExpressionTest, ReferencedColumns) {
  ASSERT_OK_AND_ASSIGN(
      cp::Expression expr,
      ParseExpression("b AND i32 > USERID OR st.a = 1 AND i32 < 3 OR s LIKE 'a%' OR "
                      "f64 BETWEEN u64 AND 2 OR d IN ('2024-01-01')",
                      *schema_));
  EXPECT_EQ(ReferencedColumns(expr),
            (std::vector<std::string>{"b", "i32", "UserId", "st", "s", "f64", "u64", "d"}));
  ASSERT_OK_AND_ASSIGN(expr, ParseExpression("1 = 1", *schema_));
  EXPECT_TRUE(ReferencedColumns(expr).empty());
  // Works on expressions built elsewhere, bound or not.
  cp::Expression built = cp::call("add", {cp::field_ref("x"), cp::field_ref({"y", "z"})});
  EXPECT_EQ(ReferencedColumns(built), (std::vector<std::string>{"x", "y"}));
}

TEST_F(ExpressionTest, Assignments) {
  ASSERT_OK_AND_ASSIGN(
      std::vector<Assignment> assignments,
      ParseAssignments("i32 = i32 + 1, s = 'x', f64 = NULL, userid = 7, dec = dec * 2, "
                       "ts = '2024-02-01', `order total` = 1, b = i32 > 1, i8 = -i8",
                       *schema_));
  ASSERT_EQ(assignments.size(), 9u);
  const std::vector<std::string> names = {"i32", "s",           "f64", "UserId", "dec",
                                          "ts",  "order total", "b",   "i8"};
  // 2024-02-01 00:00:00 UTC in microseconds.
  const std::string feb1 = std::to_string((kNewYear2024 + int64_t{31} * 86400) * 1000000);
  const std::vector<std::string> expected = {
      "[2, 3, null, 5]",
      R"(["x", "x", "x", "x"])",
      "[null, null, null, null]",
      "[7, 7, 7, 7]",
      R"(["3.00", "4.00", null, "-6.50"])",
      "[" + feb1 + ", " + feb1 + ", " + feb1 + ", " + feb1 + "]",
      "[1, 1, 1, 1]",
      "[false, true, null, true]",
      "[-1, 5, -100, null]",
  };
  for (size_t i = 0; i < assignments.size(); ++i) {
    SCOPED_TRACE(names[i]);
    EXPECT_EQ(assignments[i].column, names[i]);
    const auto type = schema_->GetFieldByName(names[i])->type();
    ASSERT_OK_AND_ASSIGN(std::shared_ptr<arrow::Array> actual, Evaluate(assignments[i].value));
    EXPECT_TRUE(actual->type()->Equals(*type)) << actual->type()->ToString();
    auto expected_array = FromJson(type, expected[i]);
    ASSERT_NE(expected_array, nullptr);
    EXPECT_TRUE(actual->Equals(*expected_array)) << actual->ToString();
  }

  // Arithmetic on an int8 column stays int8 (Arrow keeps the literal narrow), and it
  // is checked.
  ASSERT_OK_AND_ASSIGN(assignments, ParseAssignments("i8 = i8 * 100", *schema_));
  auto overflow = Evaluate(assignments[0].value);
  ASSERT_FALSE(overflow.ok());
  EXPECT_NE(overflow.status().message().find("overflow"), std::string::npos)
      << overflow.status().message();

  ExpectAssignmentError(
      "i8 = 300",
      {"assignments 'i8 = 300': cannot assign literal 300 to column 'i8' (int8)", "at position 5"});
  ExpectAssignmentError("dec = 1.005", {"cannot assign literal 1.005 to column 'dec'"});
  ExpectAssignmentError("i32 = 1.5", {"cannot assign literal 1.5 to column 'i32'"});
  ExpectAssignmentError(
      "i32 = st",
      {"cannot assign 'st' (struct<a: int32, inner: struct<x: string>>) to column 'i32' (int32)"});
  ExpectAssignmentError("i32 = 1, I32 = 2", {"column 'i32' is assigned more than once"});
  ExpectAssignmentError("nope = 1", {"unknown column 'nope' (columns: i32, i8"});
  ExpectAssignmentError("st.a = 1", {"cannot assign to nested field 'st.a'"});
  ExpectAssignmentError("i32 = 1,",
                        {"unexpected end of input at position 8", "expected a column name"});
  ExpectAssignmentError("i32 1", {"unexpected '1' at position 4", "expected '='"});
  ExpectAssignmentError("i32 = 1 s = 2", {"unexpected 's' at position 8"});
  ExpectAssignmentError("", {"there are no assignments"});
  ExpectAssignmentError("i32 = nope", {"unknown column 'nope'"});
  ExpectAssignmentError("i32 = ", {"unexpected end of input"});
}

TEST_F(ExpressionTest, MalformedInput) {
  ExpectParseError("", {"filter '': the expression is empty at position 0"});
  ExpectParseError("   \t\n", {"the expression is empty"});
  ExpectParseError("s = 'abc", {"unterminated string literal at position 4"});
  ExpectParseError("i32 = 1 2", {"unexpected '2' at position 8"});
  ExpectParseError("i32 = 1)", {"unexpected ')' at position 7"});
  ExpectParseError("(i32 = 1", {"unexpected end of input at position 8", "expected ')'"});
  ExpectParseError("i32 =", {"unexpected end of input at position 5"});
  ExpectParseError("i32 = 1 = 2", {"unexpected '=' at position 8"});
  ExpectParseError("i32 NOT 5", {"expected IN, BETWEEN or LIKE after NOT"});
  ExpectParseError("i32 IN ()", {"unexpected ')' at position 8"});
  ExpectParseError("i32 IN (1,", {"unexpected end of input"});
  ExpectParseError("i32 IN 1", {"expected '(' after IN"});
  ExpectParseError("i32 IN (1 2)", {"expected ',' or ')' in the IN list"});
  ExpectParseError("i32 BETWEEN 1 OR 2", {"expected AND in BETWEEN"});
  ExpectParseError("i32 ! 1", {"unexpected character '!' at position 4"});
  ExpectParseError("s = \"x\"", {"unexpected '\"' at position 4", "single quotes"});
  ExpectParseError("i32 = 1abc", {"malformed number '1abc' at position 6"});
  ExpectParseError("i32 = 1.2.3", {"malformed number '1.2.3'"});
  ExpectParseError("i32 = \x01",
                   {"unexpected character '\\x01' at position 6", "filter 'i32 = \\x01'"});
  ExpectParseError("i32 AND", {"unexpected end of input at position 7"});
  ExpectParseError("OR i32", {"unexpected 'OR' at position 0"});
  ExpectParseError("*", {"unexpected '*' at position 0"});

  // The examples in the header, verbatim.
  auto schema =
      arrow::schema({arrow::field("a", arrow::int32()), arrow::field("b", arrow::int32()),
                     arrow::field("c", arrow::int32()), arrow::field("x", arrow::int32())});
  auto result = ParseExpression("x >> 1", *schema);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("filter 'x >> 1': unexpected '>' at position 3"),
            std::string::npos)
      << result.status().message();
  schema = arrow::schema({arrow::field("a", arrow::int32()), arrow::field("b", arrow::int32()),
                          arrow::field("c", arrow::int32())});
  result = ParseExpression("y = 1", *schema);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("filter 'y = 1': unknown column 'y' (columns: a, b, c)"),
            std::string::npos)
      << result.status().message();

  // Long input is shortened in the message.
  const std::string long_text = "i32 = 1 AND " + std::string(1000, 'z') + " = 1";
  auto long_result = ParseExpression(long_text, *schema_);
  ASSERT_FALSE(long_result.ok());
  EXPECT_LT(long_result.status().message().size(), 1000u);
  EXPECT_NE(long_result.status().message().find("...': unknown column 'zzz"), std::string::npos);
}

TEST_F(ExpressionTest, DeepNestingIsAnErrorNotACrash) {
  ExpectParseError(std::string(100000, '('), {"nested too deeply"});
  ExpectParseError(std::string(300, '(') + "i32 = 1" + std::string(300, ')'),
                   {"nested too deeply (more than 256 levels) at position 256"});
  std::string nots;
  for (int i = 0; i < 5000; ++i) nots += "NOT ";
  ExpectParseError(nots + "b", {"nested too deeply"});
  ExpectParseError(std::string(5000, '-') + "1", {"nested too deeply"});
  // A long left-deep arithmetic chain exceeds the tree height limit.
  std::string sum = "i32";
  for (int i = 0; i < 1000; ++i) sum += " + 1";
  ExpectParseError(sum + " > 0", {"nested too deeply (more than 512 levels)"});
  // BETWEEN repeats its operand; nesting it must not blow up exponentially.
  std::string between = "i32 BETWEEN 0 AND 1";
  for (int i = 0; i < 40; ++i) {
    between.insert(0, "(");
    between += ") BETWEEN FALSE AND TRUE";
  }
  ExpectParseError(between, {"too large"});

  // Within the limits, deep input works.
  ExpectBool(std::string(200, '(') + "i32 = 1" + std::string(200, ')'),
             "[true, false, null, false]");
  // Long generated OR chains are built balanced, so they stay shallow.
  std::string chain = "i32 = 0";
  for (int i = 0; i < 5000; ++i) chain += " OR i32 = " + std::to_string(i + 4);
  ExpectBool(chain, "[false, false, null, true]");
}

// Random token soup: every input must give a value or an Invalid status.
TEST_F(ExpressionTest, RandomInputNeverCrashes) {
  static const std::vector<std::string> kPieces = {"i32",
                                                   "s",
                                                   "st.a",
                                                   "`order total`",
                                                   "ts",
                                                   "dec",
                                                   "b",
                                                   "(",
                                                   ")",
                                                   "(",
                                                   ")",
                                                   ",",
                                                   ".",
                                                   "+",
                                                   "-",
                                                   "*",
                                                   "/",
                                                   "%",
                                                   "=",
                                                   "<>",
                                                   "<",
                                                   ">=",
                                                   "AND",
                                                   "OR",
                                                   "NOT",
                                                   "IN",
                                                   "BETWEEN",
                                                   "IS",
                                                   "NULL",
                                                   "LIKE",
                                                   "TRUE",
                                                   "1",
                                                   "-3",
                                                   "1.5",
                                                   "1e3",
                                                   "'a'",
                                                   "'2024-01-01'",
                                                   "DATE",
                                                   "TIMESTAMP",
                                                   "'",
                                                   "`",
                                                   "\"",
                                                   "!",
                                                   "\x7f",
                                                   "\xff",
                                                   " "};
  std::mt19937 rng(12345);
  for (int iteration = 0; iteration < 20000; ++iteration) {
    std::string text;
    const int length = static_cast<int>(rng() % 24);
    for (int k = 0; k < length; ++k) {
      text += kPieces[rng() % kPieces.size()];
      if (rng() % 2) text += ' ';
    }
    auto result = ParseExpression(text, *schema_);
    if (!result.ok()) {
      EXPECT_TRUE(result.status().IsInvalid()) << text << ": " << result.status().ToString();
      continue;
    }
    // Whatever parses must bind against the schema it was parsed for.
    EXPECT_TRUE(result->Bind(*schema_).ok()) << text;
    auto assignments = ParseAssignments("i32 = " + text, *schema_);
    if (!assignments.ok()) {
      EXPECT_TRUE(assignments.status().IsInvalid()) << text;
    }
  }
}

}  // namespace
}  // namespace stratalake
