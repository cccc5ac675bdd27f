// Hand-written lexer and recursive-descent parser for StrataLake's expression
// language (see include/stratalake/expression.h for the grammar and semantics).
//
// The parser builds Arrow compute expressions directly. Each parsed piece is carried
// as an `Operand` that knows its Arrow type and whether it is a plain literal or a
// plain column, so that comparisons can convert the literal to the column's type
// before Arrow sees it (Arrow's implicit casts do not turn '2024-01-01' into a
// timestamp, and they narrow numeric literals in surprising ways), and so that type
// errors are reported at the text that caused them.

#include "stratalake/expression.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_set>
#include <utility>
#include <vector>

#include <arrow/array/builder_base.h>
#include <arrow/compute/api_scalar.h>
#include <arrow/compute/cast.h>
#include <arrow/compute/expression.h>
#include <arrow/compute/initialize.h>
#include <arrow/datum.h>
#include <arrow/result.h>
#include <arrow/scalar.h>
#include <arrow/status.h>
#include <arrow/type.h>
#include <arrow/util/decimal.h>

namespace stratalake {
namespace {

class UnknownColumnDetail : public arrow::StatusDetail {
 public:
  static constexpr const char* kTypeId = "stratalake::UnknownColumnDetail";
  const char* type_id() const override { return kTypeId; }
  std::string ToString() const override { return "unknown column"; }
};

namespace cp = arrow::compute;
using arrow::DataType;
using arrow::Result;
using arrow::Scalar;
using arrow::Status;

// The parser recurses once per '(', NOT and unary minus; capping that keeps hostile
// input such as "((((..." from overflowing the stack. A level costs at most about
// 1 KiB of stack in an optimized build (see the grammar section), so the cap needs
// well under 512 KiB.
constexpr int kMaxNestingDepth = 256;
// Arrow's Bind, Simplify and destructors recurse once per tree level, so the height
// of the built tree is capped too (AND/OR chains are built balanced to stay low).
constexpr int kMaxTreeDepth = 2 * kMaxNestingDepth;
// BETWEEN and % repeat their operands, so nesting them grows the tree exponentially
// while the text stays short; cap the tree size as well as its height.
constexpr int64_t kMaxTreeNodes = int64_t{1} << 18;
constexpr size_t kMaxEchoedChars = 200;
constexpr size_t kMaxListedNames = 50;

// ---------------------------------------------------------------------------
// Small text helpers (ASCII only: the grammar's keywords and digits are ASCII, and
// locale-dependent <cctype> must not change how a filter parses).

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Bytes >= 0x80 are accepted so that UTF-8 column names need no back quotes.
bool IsIdentifierStart(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_' || u >= 0x80;
}

bool IsIdentifierChar(char c) { return IsIdentifierStart(c) || IsDigit(c); }

char ToLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLowerAscii(a[i]) != ToLowerAscii(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// Quotes user text into an error message: control bytes are escaped so a message
// cannot garble a terminal or log line, and very long input is shortened.
std::string Echo(std::string_view text) {
  size_t cut = text.size();
  if (cut > kMaxEchoedChars) {
    cut = kMaxEchoedChars;
    // Do not split a UTF-8 sequence.
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(cut + 8);
  for (size_t i = 0; i < cut; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (cut < text.size()) out += "...";
  return out;
}

std::string ListNames(const arrow::FieldVector& fields) {
  if (fields.empty()) return "none";
  std::string out;
  for (size_t i = 0; i < fields.size() && i < kMaxListedNames; ++i) {
    if (i > 0) out += ", ";
    out += Echo(fields[i]->name());
  }
  if (fields.size() > kMaxListedNames) {
    out += ", ... (" + std::to_string(fields.size() - kMaxListedNames) + " more)";
  }
  return out;
}

std::string Join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += separator;
    out += parts[i];
  }
  return out;
}

// ---------------------------------------------------------------------------
// Date and time literals.

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t year, int64_t month, int64_t day) {
  year -= month <= 2 ? 1 : 0;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const int64_t year_of_era = year - era * 400;
  const int64_t day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

bool IsLeapYear(int64_t year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int64_t DaysInMonth(int64_t year, int64_t month) {
  static constexpr int64_t kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && IsLeapYear(year) ? 29 : kDays[month - 1];
}

// A parsed 'YYYY-MM-DD[( |T)HH:MM[:SS[.fffffffff]]][Z|(+|-)HH[:MM]]'.
struct DateTime {
  int64_t epoch_seconds = 0;  // UTC; a string without an offset is taken as UTC
  int64_t nanos = 0;          // fraction of the second, 0..999'999'999
  int fraction_digits = 0;
  bool has_time = false;
  bool has_offset = false;
};

constexpr std::string_view kDateTimeShape = "expected 'YYYY-MM-DD[ HH:MM:SS[.ffffff]][Z|+HH:MM]'";

Result<DateTime> ParseDateTime(std::string_view raw) {
  const std::string_view s = Trim(raw);
  size_t i = 0;
  auto read_digits = [&](int count, int64_t* out) {
    int64_t value = 0;
    for (int k = 0; k < count; ++k, ++i) {
      if (i >= s.size() || !IsDigit(s[i])) return false;
      value = value * 10 + (s[i] - '0');
    }
    *out = value;
    return true;
  };
  auto accept = [&](char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  };
  const auto invalid = [&]() { return Status::Invalid(kDateTimeShape); };

  int64_t year = 0, month = 0, day = 0;
  if (!read_digits(4, &year) || !accept('-') || !read_digits(2, &month) || !accept('-') ||
      !read_digits(2, &day)) {
    return invalid();
  }
  if (month < 1 || month > 12) return Status::Invalid("month ", month, " is out of range");
  if (day < 1 || day > DaysInMonth(year, month)) {
    return Status::Invalid("day ", day, " is out of range for ", year, "-", month);
  }

  DateTime out;
  int64_t hour = 0, minute = 0, second = 0;
  if (i < s.size() && (s[i] == ' ' || s[i] == 'T' || s[i] == 't')) {
    ++i;
    out.has_time = true;
    if (!read_digits(2, &hour) || !accept(':') || !read_digits(2, &minute)) return invalid();
    if (accept(':')) {
      if (!read_digits(2, &second)) return invalid();
      if (accept('.')) {
        while (i < s.size() && IsDigit(s[i])) {
          if (++out.fraction_digits > 9) {
            return Status::Invalid("at most 9 fractional second digits are supported");
          }
          out.nanos = out.nanos * 10 + (s[i] - '0');
          ++i;
        }
        if (out.fraction_digits == 0) return invalid();
        for (int k = out.fraction_digits; k < 9; ++k) out.nanos *= 10;
      }
    }
    if (hour > 23 || minute > 59 || second > 59) {
      return Status::Invalid("time of day is out of range");
    }
  }

  int64_t offset_seconds = 0;
  if (accept('Z') || accept('z')) {
    out.has_offset = true;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    const int64_t sign = s[i] == '-' ? -1 : 1;
    ++i;
    int64_t offset_hours = 0, offset_minutes = 0;
    if (!read_digits(2, &offset_hours)) return invalid();
    if (accept(':')) {
      if (!read_digits(2, &offset_minutes)) return invalid();
    } else if (i < s.size() && IsDigit(s[i])) {
      if (!read_digits(2, &offset_minutes)) return invalid();
    }
    if (offset_hours > 23 || offset_minutes > 59) {
      return Status::Invalid("UTC offset is out of range");
    }
    out.has_offset = true;
    offset_seconds = sign * (offset_hours * 3600 + offset_minutes * 60);
  }
  if (i != s.size()) return invalid();

  out.epoch_seconds =
      DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset_seconds;
  return out;
}

Result<int32_t> ParseDate(std::string_view text) {
  ARROW_ASSIGN_OR_RAISE(DateTime parsed, ParseDateTime(text));
  if (parsed.has_time || parsed.has_offset) {
    return Status::Invalid("expected a date 'YYYY-MM-DD' without a time of day");
  }
  // Years are four digits, so the day count always fits in int32.
  return static_cast<int32_t>(parsed.epoch_seconds / 86400);
}

Result<int64_t> ToTimestampUnit(const DateTime& parsed, arrow::TimeUnit::type unit) {
  int64_t per_second = 1;
  switch (unit) {
    case arrow::TimeUnit::SECOND:
      per_second = 1;
      break;
    case arrow::TimeUnit::MILLI:
      per_second = 1000;
      break;
    case arrow::TimeUnit::MICRO:
      per_second = 1000000;
      break;
    case arrow::TimeUnit::NANO:
      per_second = 1000000000;
      break;
  }
  const int64_t nanos_per_tick = 1000000000 / per_second;
  // Rounding would silently change which rows a comparison selects; refuse instead.
  if (parsed.nanos % nanos_per_tick != 0) {
    return Status::Invalid("the value is more precise than the column's unit (",
                           arrow::TimestampType(unit).ToString(), ")");
  }
  int64_t value = 0;
  if (__builtin_mul_overflow(parsed.epoch_seconds, per_second, &value) ||
      __builtin_add_overflow(value, parsed.nanos / nanos_per_tick, &value)) {
    return Status::Invalid("the value is out of range for ", arrow::TimestampType(unit).ToString());
  }
  return value;
}

// ---------------------------------------------------------------------------
// Literals.

struct Literal {
  enum class Kind { kInteger, kFloat, kString, kBoolean, kNull, kDate, kTimestamp };
  Kind kind = Kind::kNull;
  // Numbers keep their spelling (with a folded '-') so that decimal columns get the
  // exact value rather than a rounded double; strings and DATE/TIMESTAMP keep their
  // unescaped content so that they can be re-read in the column's type.
  std::string text;
  // The literal in its own type, used where there is no column to take a type from.
  std::shared_ptr<Scalar> scalar;
};

bool IsNumericKind(Literal::Kind kind) {
  return kind == Literal::Kind::kInteger || kind == Literal::Kind::kFloat;
}

bool IsNumericType(const DataType& type) {
  return arrow::is_integer(type.id()) || arrow::is_floating(type.id()) ||
         arrow::is_decimal(type.id());
}

// Dictionary-encoded columns compare by their values (Arrow decodes them), so
// literals take the value type.
std::shared_ptr<DataType> ValueType(const std::shared_ptr<DataType>& type) {
  if (type->id() == arrow::Type::DICTIONARY) {
    return static_cast<const arrow::DictionaryType&>(*type).value_type();
  }
  return type;
}

Result<std::shared_ptr<Scalar>> CastScalar(const std::shared_ptr<Scalar>& scalar,
                                           const std::shared_ptr<DataType>& type) {
  ARROW_ASSIGN_OR_RAISE(arrow::Datum cast,
                        cp::Cast(arrow::Datum(scalar), type, cp::CastOptions::Safe()));
  return cast.scalar();
}

// Reads `text` as an exact decimal of the given decimal type; fails rather than round.
Result<std::shared_ptr<Scalar>> DecimalFromText(std::string_view text,
                                                const std::shared_ptr<DataType>& type) {
  const auto& decimal_type = static_cast<const arrow::DecimalType&>(*type);
  arrow::Decimal256 value;
  int32_t precision = 0;
  int32_t scale = 0;
  ARROW_RETURN_NOT_OK(arrow::Decimal256::FromString(Trim(text), &value, &precision, &scale));
  if (precision - scale + decimal_type.scale() > arrow::Decimal256Type::kMaxPrecision) {
    return Status::Invalid("the value does not fit in ", type->ToString());
  }
  if (scale != decimal_type.scale()) {
    ARROW_ASSIGN_OR_RAISE(value, value.Rescale(scale, decimal_type.scale()));
  }
  if (!value.FitsInPrecision(decimal_type.precision())) {
    return Status::Invalid("the value does not fit in ", type->ToString());
  }
  auto wide = std::make_shared<arrow::Decimal256Scalar>(
      value, arrow::decimal256(decimal_type.precision(), decimal_type.scale()));
  if (type->id() == arrow::Type::DECIMAL256) return wide;
  return CastScalar(wide, type);
}

// The exact decimal a numeric spelling denotes, in the narrowest decimal type that
// holds it (used when a decimal column meets a literal with more digits than it has).
Result<std::shared_ptr<Scalar>> OwnDecimal(std::string_view text) {
  arrow::Decimal256 value;
  int32_t precision = 0;
  int32_t scale = 0;
  ARROW_RETURN_NOT_OK(arrow::Decimal256::FromString(Trim(text), &value, &precision, &scale));
  if (scale < 0) {
    precision -= scale;
    scale = 0;
  }
  precision = std::max({precision, scale, 1});
  if (precision > arrow::Decimal256Type::kMaxPrecision) {
    return Status::Invalid("the number has too many digits");
  }
  const auto type = precision <= arrow::Decimal128Type::kMaxPrecision
                        ? arrow::decimal128(precision, scale)
                        : arrow::decimal256(precision, scale);
  return DecimalFromText(text, type);
}

Result<std::shared_ptr<Scalar>> IntegerScalar(const std::string& text) {
  const char* first = text.data();
  const char* last = text.data() + text.size();
  int64_t signed_value = 0;
  if (auto [ptr, ec] = std::from_chars(first, last, signed_value);
      ec == std::errc() && ptr == last) {
    return std::make_shared<arrow::Int64Scalar>(signed_value);
  }
  uint64_t unsigned_value = 0;
  if (auto [ptr, ec] = std::from_chars(first, last, unsigned_value);
      ec == std::errc() && ptr == last) {
    return std::make_shared<arrow::UInt64Scalar>(unsigned_value);
  }
  auto decimal = OwnDecimal(text);
  if (!decimal.ok()) return Status::Invalid("integer literal ", text, " is out of range");
  return decimal;
}

Result<std::shared_ptr<Scalar>> FloatScalar(const std::string& text) {
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) {
    return Status::Invalid("numeric literal ", text, " is out of range");
  }
  if (ec != std::errc() || ptr != text.data() + text.size()) {
    return Status::Invalid("malformed number '", text, "'");
  }
  return std::make_shared<arrow::DoubleScalar>(value);
}

// The scalar a TIMESTAMP literal has on its own: microseconds unless it spells
// nanoseconds, and UTC-zoned only when it names an offset.
Result<std::shared_ptr<Scalar>> TimestampScalar(const std::string& text) {
  ARROW_ASSIGN_OR_RAISE(DateTime parsed, ParseDateTime(text));
  const auto unit = parsed.fraction_digits > 6 ? arrow::TimeUnit::NANO : arrow::TimeUnit::MICRO;
  ARROW_ASSIGN_OR_RAISE(int64_t value, ToTimestampUnit(parsed, unit));
  return std::make_shared<arrow::TimestampScalar>(
      value, parsed.has_offset ? arrow::timestamp(unit, "UTC") : arrow::timestamp(unit));
}

Result<std::shared_ptr<Scalar>> MakeLiteralScalar(Literal::Kind kind, const std::string& text,
                                                  bool boolean_value) {
  switch (kind) {
    case Literal::Kind::kInteger:
      return IntegerScalar(text);
    case Literal::Kind::kFloat:
      return FloatScalar(text);
    case Literal::Kind::kString:
      return std::make_shared<arrow::StringScalar>(text);
    case Literal::Kind::kBoolean:
      return std::make_shared<arrow::BooleanScalar>(boolean_value);
    case Literal::Kind::kNull:
      return std::make_shared<arrow::NullScalar>();
    case Literal::Kind::kDate: {
      ARROW_ASSIGN_OR_RAISE(int32_t days, ParseDate(text));
      return std::make_shared<arrow::Date32Scalar>(days);
    }
    case Literal::Kind::kTimestamp:
      return TimestampScalar(text);
  }
  return Status::Invalid("unknown literal kind");
}

// Converts `literal` to exactly `type`, or explains why it cannot. Only conversions
// that keep the value are made, so a comparison never changes meaning by rounding.
Result<std::shared_ptr<Scalar>> ConvertLiteral(const Literal& literal,
                                               const std::shared_ptr<DataType>& type) {
  using Kind = Literal::Kind;
  if (literal.kind == Kind::kNull) return arrow::MakeNullScalar(type);
  const std::shared_ptr<DataType> target = ValueType(type);
  const Kind kind = literal.kind;
  const bool is_text = kind == Kind::kString;
  switch (target->id()) {
    case arrow::Type::TIMESTAMP: {
      if (!is_text && kind != Kind::kDate && kind != Kind::kTimestamp) {
        return Status::Invalid("expected a date/time string such as '2024-01-01 12:00:00'");
      }
      ARROW_ASSIGN_OR_RAISE(DateTime parsed, ParseDateTime(literal.text));
      const auto& timestamp_type = static_cast<const arrow::TimestampType&>(*target);
      ARROW_ASSIGN_OR_RAISE(int64_t value, ToTimestampUnit(parsed, timestamp_type.unit()));
      return std::make_shared<arrow::TimestampScalar>(value, target);
    }
    case arrow::Type::DATE32:
    case arrow::Type::DATE64: {
      if (!is_text && kind != Kind::kDate) {
        return Status::Invalid("expected a date string such as '2024-01-01'");
      }
      ARROW_ASSIGN_OR_RAISE(int32_t days, ParseDate(literal.text));
      if (target->id() == arrow::Type::DATE32) {
        return std::make_shared<arrow::Date32Scalar>(days);
      }
      return std::make_shared<arrow::Date64Scalar>(int64_t{days} * 86400000);
    }
    case arrow::Type::DECIMAL32:
    case arrow::Type::DECIMAL64:
    case arrow::Type::DECIMAL128:
    case arrow::Type::DECIMAL256:
      if (!is_text && !IsNumericKind(kind)) return Status::Invalid("expected a number");
      return DecimalFromText(literal.text, target);
    case arrow::Type::BOOL:
      if (kind == Kind::kBoolean) return literal.scalar;
      if (is_text) return CastScalar(literal.scalar, target);
      return Status::Invalid("expected TRUE or FALSE");
    case arrow::Type::STRING:
    case arrow::Type::LARGE_STRING:
    case arrow::Type::STRING_VIEW:
    case arrow::Type::BINARY:
    case arrow::Type::LARGE_BINARY:
    case arrow::Type::BINARY_VIEW:
    case arrow::Type::FIXED_SIZE_BINARY:
      if (!is_text) return Status::Invalid("expected a quoted string");
      return CastScalar(literal.scalar, target);
    default:
      break;
  }
  if (arrow::is_integer(target->id()) || arrow::is_floating(target->id())) {
    if (!is_text && !IsNumericKind(kind)) return Status::Invalid("expected a number");
    if (kind == Kind::kFloat && arrow::is_integer(target->id())) {
      // Arrow's safe cast accepts 1.0 for an integer column but rejects 1.5, which
      // is what we want; only the message needs to be clearer.
      auto cast = CastScalar(literal.scalar, target);
      if (!cast.ok()) return Status::Invalid("the value is not a whole number in range");
      return cast;
    }
    return CastScalar(literal.scalar, target);
  }
  // Anything else (time of day, intervals, ...): whatever Arrow's safe cast supports.
  return CastScalar(literal.scalar, target);
}

// Arrow 22's Bind dereferences the value buffer of a large_string or large_binary
// literal when it looks for implicit casts (SmallestTypeFor), and the null scalar of
// those types has no buffer: it crashes. Such nulls are spelled cast(NULL) instead.
cp::Expression LiteralExpression(const std::shared_ptr<Scalar>& scalar) {
  const arrow::Type::type id = scalar->type->id();
  if (!scalar->is_valid && (id == arrow::Type::LARGE_STRING || id == arrow::Type::LARGE_BINARY)) {
    return cp::call("cast", {cp::literal(std::make_shared<arrow::NullScalar>())},
                    cp::CastOptions::Safe(scalar->type));
  }
  return cp::literal(scalar);
}

// ---------------------------------------------------------------------------
// Tokens.

enum class TokenKind {
  kEnd,
  kIdentifier,
  kQuotedIdentifier,
  kInteger,
  kFloat,
  kString,
  kLeftParen,
  kRightParen,
  kComma,
  kDot,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kPercent,
  kEqual,
  kNotEqual,
  kLess,
  kLessEqual,
  kGreater,
  kGreaterEqual,
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string text;  // identifier name, unescaped string content or number spelling
  size_t begin = 0;  // byte offsets into the input
  size_t end = 0;
};

const char* ComparisonFunction(TokenKind kind) {
  switch (kind) {
    case TokenKind::kEqual:
      return "equal";
    case TokenKind::kNotEqual:
      return "not_equal";
    case TokenKind::kLess:
      return "less";
    case TokenKind::kLessEqual:
      return "less_equal";
    case TokenKind::kGreater:
      return "greater";
    case TokenKind::kGreaterEqual:
      return "greater_equal";
    default:
      return nullptr;
  }
}

// Words that cannot name a column without back quotes. DATE and TIMESTAMP are not
// among them: they only start a literal when a quoted string follows, so columns
// called `date` or `timestamp` keep working unquoted.
bool IsReservedWord(std::string_view word) {
  static constexpr std::string_view kReserved[] = {"AND", "OR",   "NOT",  "IN",   "BETWEEN",
                                                   "IS",  "LIKE", "NULL", "TRUE", "FALSE"};
  for (std::string_view reserved : kReserved) {
    if (EqualsIgnoreCase(word, reserved)) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// The parser.

struct Span {
  size_t begin = 0;
  size_t end = 0;
};

// A parsed sub-expression plus what comparisons need to know about it.
struct Operand {
  cp::Expression expr;
  Span span;
  int depth = 1;      // height of `expr`
  int64_t nodes = 1;  // size of `expr` counted as a tree
  // The type Arrow's Bind will give `expr`, worked out as each node is built so that
  // type errors point at the text that caused them.
  std::shared_ptr<DataType> type;
  std::optional<Literal> literal;  // set while the operand is a bare literal
  std::string column_name;         // set while it is a bare column: schema spelling,
                                   // dotted for nested fields
};

class Parser {
 public:
  Parser(std::string_view text, const arrow::Schema& schema, std::string what)
      : text_(text), schema_(schema), what_(std::move(what)) {}

  Result<cp::Expression> ParseWholeExpression() {
    ARROW_RETURN_NOT_OK(Tokenize());
    if (Peek().kind == TokenKind::kEnd) return Error(0, "the expression is empty");
    Operand result;
    ARROW_RETURN_NOT_OK(ParseOr(&result));
    if (Peek().kind != TokenKind::kEnd) return Unexpected(Peek());
    // A bare NULL filter should still be a boolean expression.
    if (result.literal && result.literal->kind == Literal::Kind::kNull) {
      result.expr = cp::literal(arrow::MakeNullScalar(arrow::boolean()));
    }
    // Every node was type-checked as it was built; binding the whole once more is a
    // cheap guard that the result really binds against the schema it was parsed for.
    auto bound = result.expr.Bind(schema_);
    if (!bound.ok()) return Error(0, bound.status().message());
    return std::move(result.expr);
  }

  Result<std::vector<Assignment>> ParseAssignmentList() {
    ARROW_RETURN_NOT_OK(Tokenize());
    if (Peek().kind == TokenKind::kEnd) {
      return Error(0, "there are no assignments", "expected 'column = value'");
    }
    std::vector<Assignment> assignments;
    std::unordered_set<std::string> assigned;
    while (true) {
      const Token& target_token = Peek();
      ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Field> target, ParseAssignmentTarget());
      if (Peek().kind != TokenKind::kEqual) {
        return Unexpected(Peek(), "expected '=' after the column name");
      }
      Advance();
      Operand value;
      ARROW_RETURN_NOT_OK(ParseOr(&value));
      if (!assigned.insert(target->name()).second) {
        return Error(target_token.begin,
                     "column '" + Echo(target->name()) + "' is assigned more than once");
      }
      ARROW_ASSIGN_OR_RAISE(cp::Expression expr, CoerceAssignedValue(std::move(value), *target));
      assignments.push_back(Assignment{target->name(), std::move(expr)});
      if (Peek().kind == TokenKind::kEnd) break;
      if (Peek().kind != TokenKind::kComma) {
        return Unexpected(Peek(), "expected ',' between assignments");
      }
      Advance();
    }
    return assignments;
  }

 private:
  // --- errors --------------------------------------------------------------

  Status Error(size_t position, const std::string& message, const std::string& hint = "") const {
    std::string out =
        what_ + " '" + Echo(text_) + "': " + message + " at position " + std::to_string(position);
    if (!hint.empty()) out += " (" + hint + ")";
    return Status::Invalid(out);
  }

  std::string Source(Span span) const {
    return Echo(text_.substr(span.begin, span.end - span.begin));
  }

  std::string Describe(const Token& token) const {
    switch (token.kind) {
      case TokenKind::kEnd:
        return "end of input";
      case TokenKind::kString:
        return "string " + Source({token.begin, token.end});
      default:
        return "'" + Source({token.begin, token.end}) + "'";
    }
  }

  Status Unexpected(const Token& token, const std::string& hint = "") const {
    return Error(token.begin, "unexpected " + Describe(token), hint);
  }

  // Describes the non-literal side of a comparison for an error message.
  std::string DescribeOperand(const Operand& operand, const DataType& type) const {
    if (!operand.column_name.empty()) {
      return "column '" + Echo(operand.column_name) + "' (" + type.ToString() + ")";
    }
    return "'" + Source(operand.span) + "' (" + type.ToString() + ")";
  }

  // --- lexer ---------------------------------------------------------------

  Status Tokenize() {
    const size_t n = text_.size();
    size_t i = 0;
    while (true) {
      while (i < n && IsSpace(text_[i])) ++i;
      if (i >= n) {
        tokens_.push_back(Token{TokenKind::kEnd, "", n, n});
        return Status::OK();
      }
      const size_t start = i;
      const char c = text_[i];
      if (IsIdentifierStart(c)) {
        while (i < n && IsIdentifierChar(text_[i])) ++i;
        Push(TokenKind::kIdentifier, std::string(text_.substr(start, i - start)), start, i);
        continue;
      }
      // ".5" is a number unless it follows something a field access could apply to.
      const bool leading_dot_number =
          c == '.' && i + 1 < n && IsDigit(text_[i + 1]) &&
          (tokens_.empty() || (tokens_.back().kind != TokenKind::kIdentifier &&
                               tokens_.back().kind != TokenKind::kQuotedIdentifier &&
                               tokens_.back().kind != TokenKind::kRightParen));
      if (IsDigit(c) || leading_dot_number) {
        ARROW_RETURN_NOT_OK(LexNumber(&i));
        continue;
      }
      auto next_is = [&](char expected) { return i + 1 < n && text_[i + 1] == expected; };
      switch (c) {
        case '\'':
          ARROW_RETURN_NOT_OK(LexQuoted(&i, '\'', TokenKind::kString));
          continue;
        case '`':
          ARROW_RETURN_NOT_OK(LexQuoted(&i, '`', TokenKind::kQuotedIdentifier));
          continue;
        case '(':
          PushSymbol(TokenKind::kLeftParen, &i, 1);
          continue;
        case ')':
          PushSymbol(TokenKind::kRightParen, &i, 1);
          continue;
        case ',':
          PushSymbol(TokenKind::kComma, &i, 1);
          continue;
        case '.':
          PushSymbol(TokenKind::kDot, &i, 1);
          continue;
        case '+':
          PushSymbol(TokenKind::kPlus, &i, 1);
          continue;
        case '-':
          PushSymbol(TokenKind::kMinus, &i, 1);
          continue;
        case '*':
          PushSymbol(TokenKind::kStar, &i, 1);
          continue;
        case '/':
          PushSymbol(TokenKind::kSlash, &i, 1);
          continue;
        case '%':
          PushSymbol(TokenKind::kPercent, &i, 1);
          continue;
        case '=':
          PushSymbol(TokenKind::kEqual, &i, next_is('=') ? 2 : 1);
          continue;
        case '!':
          if (!next_is('=')) break;
          PushSymbol(TokenKind::kNotEqual, &i, 2);
          continue;
        case '<':
          if (next_is('=')) {
            PushSymbol(TokenKind::kLessEqual, &i, 2);
          } else if (next_is('>')) {
            PushSymbol(TokenKind::kNotEqual, &i, 2);
          } else {
            PushSymbol(TokenKind::kLess, &i, 1);
          }
          continue;
        case '>':
          PushSymbol(next_is('=') ? TokenKind::kGreaterEqual : TokenKind::kGreater, &i,
                     next_is('=') ? 2 : 1);
          continue;
        case '"':
          return Error(start, "unexpected '\"'",
                       "use single quotes for strings and back quotes for column names");
        default:
          break;
      }
      return Error(start, "unexpected character '" + Echo(text_.substr(start, 1)) + "'");
    }
  }

  void Push(TokenKind kind, std::string text, size_t begin, size_t end) {
    tokens_.push_back(Token{kind, std::move(text), begin, end});
  }

  void PushSymbol(TokenKind kind, size_t* i, size_t length) {
    Push(kind, "", *i, *i + length);
    *i += length;
  }

  Status LexNumber(size_t* i) {
    const size_t n = text_.size();
    const size_t start = *i;
    bool is_float = false;
    while (*i < n && IsDigit(text_[*i])) ++*i;
    if (*i + 1 < n && text_[*i] == '.' && IsDigit(text_[*i + 1])) {
      is_float = true;
      ++*i;
      while (*i < n && IsDigit(text_[*i])) ++*i;
    }
    if (*i < n && (text_[*i] == 'e' || text_[*i] == 'E')) {
      size_t j = *i + 1;
      if (j < n && (text_[j] == '+' || text_[j] == '-')) ++j;
      if (j < n && IsDigit(text_[j])) {
        is_float = true;
        *i = j;
        while (*i < n && IsDigit(text_[*i])) ++*i;
      }
    }
    // "1abc", "1.2.3" and "1." are typos, not a number followed by something else.
    if (*i < n && (IsIdentifierChar(text_[*i]) || text_[*i] == '.')) {
      size_t junk = *i;
      while (junk < n && (IsIdentifierChar(text_[junk]) || text_[junk] == '.')) ++junk;
      return Error(start, "malformed number '" + Echo(text_.substr(start, junk - start)) + "'");
    }
    std::string spelling(text_.substr(start, *i - start));
    // from_chars rejects a leading '.', which the lexer accepts.
    if (spelling.front() == '.') spelling.insert(0, "0");
    Push(is_float ? TokenKind::kFloat : TokenKind::kInteger, std::move(spelling), start, *i);
    return Status::OK();
  }

  // Reads a quote-delimited token; a doubled quote stands for one quote character.
  Status LexQuoted(size_t* i, char quote, TokenKind kind) {
    const size_t n = text_.size();
    const size_t start = *i;
    std::string content;
    ++*i;
    while (true) {
      if (*i >= n) {
        return Error(start, kind == TokenKind::kString ? "unterminated string literal"
                                                       : "unterminated back-quoted name");
      }
      if (text_[*i] == quote) {
        if (*i + 1 < n && text_[*i + 1] == quote) {
          content += quote;
          *i += 2;
          continue;
        }
        ++*i;
        break;
      }
      content += text_[*i];
      ++*i;
    }
    if (kind == TokenKind::kQuotedIdentifier && content.empty()) {
      return Error(start, "empty back-quoted name");
    }
    Push(kind, std::move(content), start, *i);
    return Status::OK();
  }

  // --- token cursor --------------------------------------------------------

  const Token& Peek(size_t ahead = 0) const {
    return tokens_[std::min(next_ + ahead, tokens_.size() - 1)];
  }

  const Token& Advance() {
    const Token& token = tokens_[next_];
    last_end_ = token.end;
    if (next_ + 1 < tokens_.size()) ++next_;
    return token;
  }

  static bool IsKeyword(const Token& token, std::string_view keyword) {
    return token.kind == TokenKind::kIdentifier && EqualsIgnoreCase(token.text, keyword);
  }

  bool AcceptKeyword(std::string_view keyword) {
    if (!IsKeyword(Peek(), keyword)) return false;
    Advance();
    return true;
  }

  // The counter is not unwound on error: any error abandons the whole parse.
  Status EnterNested(size_t position) {
    if (++nesting_ > kMaxNestingDepth) {
      return Error(position, "the expression is nested too deeply (more than " +
                                 std::to_string(kMaxNestingDepth) + " levels)");
    }
    return Status::OK();
  }

  void LeaveNested() { --nesting_; }

  // --- building ------------------------------------------------------------

  // The type Arrow gives function(args), found by binding a one-level stand-in: each
  // non-literal argument becomes a field of its known type. Literals stay literal
  // because Bind treats them specially (it narrows their types). This keeps typing
  // linear in the size of the expression instead of rebinding subtrees.
  static Result<std::shared_ptr<DataType>> InferCallType(
      const std::string& function, const std::vector<Operand>& args,
      const std::shared_ptr<cp::FunctionOptions>& options) {
    arrow::FieldVector fields;
    std::vector<cp::Expression> stand_ins;
    for (const Operand& arg : args) {
      if (arg.expr.literal() != nullptr) {
        stand_ins.push_back(arg.expr);
      } else {
        std::string name = std::to_string(fields.size());
        fields.push_back(arrow::field(name, arg.type));
        stand_ins.push_back(cp::field_ref(std::move(name)));
      }
    }
    ARROW_ASSIGN_OR_RAISE(
        cp::Expression bound,
        cp::call(function, std::move(stand_ins), options).Bind(*arrow::schema(std::move(fields))));
    return bound.type()->GetSharedPtr();
  }

  // The Make* builders are kept out of line: inlined into the recursive Parse*
  // functions, their locals would sit in every level's stack frame.
  [[gnu::noinline]] Result<Operand> MakeCall(
      std::string function, const std::vector<Operand>& args, Span span,
      std::shared_ptr<cp::FunctionOptions> options = nullptr) {
    Operand out;
    out.span = span;
    int depth = 0;
    int64_t nodes = 1;
    std::vector<cp::Expression> arguments;
    arguments.reserve(args.size());
    for (const Operand& arg : args) {
      depth = std::max(depth, arg.depth);
      nodes += arg.nodes;
      arguments.push_back(arg.expr);
    }
    out.depth = depth + 1;
    out.nodes = nodes;
    if (out.depth > kMaxTreeDepth) {
      return Error(span.begin, "the expression is nested too deeply (more than " +
                                   std::to_string(kMaxTreeDepth) + " levels)");
    }
    if (out.nodes > kMaxTreeNodes) {
      return Error(span.begin, "the expression is too large (more than " +
                                   std::to_string(kMaxTreeNodes) + " nodes)");
    }
    auto type = InferCallType(function, args, options);
    if (!type.ok()) {
      return Error(span.begin,
                   "cannot evaluate '" + Source(span) + "': " + type.status().message());
    }
    out.type = *std::move(type);
    out.expr = cp::call(std::move(function), std::move(arguments), std::move(options));
    return out;
  }

  [[gnu::noinline]] Result<Operand> MakeLiteral(Literal::Kind kind, std::string text, Span span,
                                                bool boolean_value = false) {
    auto scalar = MakeLiteralScalar(kind, text, boolean_value);
    if (!scalar.ok()) {
      return Error(span.begin,
                   "invalid literal " + Source(span) + ": " + scalar.status().message());
    }
    Operand out;
    out.span = span;
    out.expr = LiteralExpression(*scalar);
    out.type = (*scalar)->type;
    out.literal = Literal{kind, std::move(text), *std::move(scalar)};
    return out;
  }

  static void SetLiteralScalar(Operand* operand, std::shared_ptr<Scalar> scalar) {
    operand->expr = LiteralExpression(scalar);
    operand->type = scalar->type;
    operand->literal->scalar = std::move(scalar);
  }

  // Arrow's Bind narrows a numeric literal to the smallest type that holds it (4.0
  // becomes float32) and then computes in the common type, so `id / 4.0` on an int64
  // column would be evaluated in float32. Wrapping the literal in a cast keeps its
  // float64 type. Must be the last change made to the operand before it is used.
  static void PinLiteralType(Operand* operand) {
    operand->expr =
        cp::call("cast", {std::move(operand->expr)}, cp::CastOptions::Safe(operand->type));
    operand->depth += 1;
    operand->nodes += 1;
  }

  static bool IsFloatLiteral(const Operand& operand) {
    return operand.literal && operand.literal->kind == Literal::Kind::kFloat &&
           operand.literal->scalar->type->id() == arrow::Type::DOUBLE;
  }

  // NULL in a logical operator means "unknown boolean".
  static Operand AsBoolean(Operand operand) {
    if (operand.literal && operand.literal->kind == Literal::Kind::kNull) {
      SetLiteralScalar(&operand, arrow::MakeNullScalar(arrow::boolean()));
    }
    return operand;
  }

  // Gives the literal `target_side`'s type where it can be done exactly.
  Status CoerceLiteralTo(Operand* literal_side, const Operand& target_side) {
    const std::shared_ptr<DataType>& type = target_side.type;
    const Literal& literal = *literal_side->literal;
    auto converted = ConvertLiteral(literal, type);
    if (converted.ok()) {
      SetLiteralScalar(literal_side, *std::move(converted));
      return Status::OK();
    }
    if (IsNumericKind(literal.kind) && IsNumericType(*ValueType(type))) {
      // A number outside the column's domain (300 for int8, -1 for uint64, 1.005 for
      // decimal(10,2), 1.5 for int32) still compares meaningfully, so compare in a
      // type that holds both sides: an exact decimal for integers and decimals (Arrow
      // casts the column to match), float64 for a fraction against an integer.
      const bool integer_column = arrow::is_integer(ValueType(type)->id());
      if (literal.kind == Literal::Kind::kFloat && integer_column) {
        PinLiteralType(literal_side);
      } else {
        auto exact = OwnDecimal(literal.text);
        if (exact.ok()) SetLiteralScalar(literal_side, *std::move(exact));
      }
      return Status::OK();
    }
    return Error(literal_side->span.begin, "cannot compare " + DescribeOperand(target_side, *type) +
                                               " with literal " + Source(literal_side->span) +
                                               ": " + converted.status().message());
  }

  Status CoerceForComparison(Operand* lhs, Operand* rhs) {
    if (lhs->literal && !rhs->literal) return CoerceLiteralTo(lhs, *rhs);
    if (rhs->literal && !lhs->literal) return CoerceLiteralTo(rhs, *lhs);
    if (lhs->literal && rhs->literal) {
      using Kind = Literal::Kind;
      const Kind lhs_kind = lhs->literal->kind;
      const Kind rhs_kind = rhs->literal->kind;
      if (lhs_kind == Kind::kNull && rhs_kind == Kind::kNull) {
        *lhs = AsBoolean(std::move(*lhs));
        *rhs = AsBoolean(std::move(*rhs));
      } else if (lhs_kind != rhs_kind && (lhs_kind == Kind::kNull || lhs_kind == Kind::kString)) {
        return CoerceLiteralTo(lhs, *rhs);
      } else if (lhs_kind != rhs_kind && (rhs_kind == Kind::kNull || rhs_kind == Kind::kString)) {
        return CoerceLiteralTo(rhs, *lhs);
      }
    }
    return Status::OK();
  }

  [[gnu::noinline]] Result<Operand> MakeComparison(const char* function, Operand lhs, Operand rhs) {
    ARROW_RETURN_NOT_OK(CoerceForComparison(&lhs, &rhs));
    const Span span{lhs.span.begin, rhs.span.end};
    return MakeCall(function, {std::move(lhs), std::move(rhs)}, span);
  }

  // In arithmetic, NULL needs a type; an integer takes the other side's integer type
  // when it fits (so int32 + 1 stays int32, as in SQL); and a number next to a
  // decimal becomes a decimal of its own digits: a double would turn the computation
  // into floating point, and an int64 would be widened to decimal(19, 0), inflating
  // the result's precision past what Arrow allows.
  Status CoerceArithmeticLiteral(Operand* literal_side, const Operand& other) {
    const Literal::Kind kind = literal_side->literal->kind;
    if (kind != Literal::Kind::kNull && !IsNumericKind(kind)) return Status::OK();
    const std::shared_ptr<DataType>& type = other.type;
    if (kind == Literal::Kind::kNull) {
      SetLiteralScalar(literal_side, arrow::MakeNullScalar(type));
    } else if (kind == Literal::Kind::kInteger && arrow::is_integer(type->id())) {
      // Arrow would narrow the literal to a *signed* type, and uint64 + int8 is
      // computed in int64, failing for values above 2^63; take the column's type.
      auto converted = ConvertLiteral(*literal_side->literal, type);
      if (converted.ok()) SetLiteralScalar(literal_side, *std::move(converted));
    } else if (arrow::is_decimal(type->id())) {
      auto exact = OwnDecimal(literal_side->literal->text);
      if (exact.ok()) SetLiteralScalar(literal_side, *std::move(exact));
    }
    return Status::OK();
  }

  // Keeps a float64 literal from being narrowed (see PinLiteralType) unless the other
  // side is floating point already, where float32 math is what the column asks for.
  Status PinFloatLiteral(Operand* literal_side, const Operand& other) {
    if (!IsFloatLiteral(*literal_side)) return Status::OK();
    if (!other.literal && arrow::is_floating(other.type->id())) return Status::OK();
    PinLiteralType(literal_side);
    return Status::OK();
  }

  [[gnu::noinline]] Result<Operand> MakeArithmetic(TokenKind op, Operand lhs, Operand rhs) {
    if (lhs.literal && !rhs.literal) ARROW_RETURN_NOT_OK(CoerceArithmeticLiteral(&lhs, rhs));
    if (rhs.literal && !lhs.literal) ARROW_RETURN_NOT_OK(CoerceArithmeticLiteral(&rhs, lhs));
    ARROW_RETURN_NOT_OK(PinFloatLiteral(&lhs, rhs));
    ARROW_RETURN_NOT_OK(PinFloatLiteral(&rhs, lhs));
    const Span span{lhs.span.begin, rhs.span.end};
    switch (op) {
      case TokenKind::kPlus:
        return MakeCall("add_checked", {std::move(lhs), std::move(rhs)}, span);
      case TokenKind::kMinus:
        return MakeCall("subtract_checked", {std::move(lhs), std::move(rhs)}, span);
      case TokenKind::kStar:
        return MakeCall("multiply_checked", {std::move(lhs), std::move(rhs)}, span);
      case TokenKind::kSlash:
        return MakeCall("divide_checked", {std::move(lhs), std::move(rhs)}, span);
      default:
        return MakeRemainder(lhs, rhs, span);
    }
  }

  // Arrow has no remainder kernel, so a % b is spelled a - trunc(a / b) * b; integer
  // division already truncates toward zero, giving C/SQL remainder semantics.
  Result<Operand> MakeRemainder(const Operand& lhs, const Operand& rhs, Span span) {
    const std::shared_ptr<DataType> lhs_type = lhs.type;
    const std::shared_ptr<DataType> rhs_type = rhs.type;
    auto is_number = [](const DataType& type) {
      return arrow::is_integer(type.id()) || arrow::is_floating(type.id());
    };
    if (!is_number(*lhs_type) || !is_number(*rhs_type)) {
      return Error(span.begin, "'%' needs integer or floating-point operands, not " +
                                   lhs_type->ToString() + " and " + rhs_type->ToString());
    }
    ARROW_ASSIGN_OR_RAISE(Operand quotient, MakeCall("divide_checked", {lhs, rhs}, span));
    if (!arrow::is_integer(lhs_type->id()) || !arrow::is_integer(rhs_type->id())) {
      ARROW_ASSIGN_OR_RAISE(quotient, MakeCall("trunc", {std::move(quotient)}, span));
    }
    ARROW_ASSIGN_OR_RAISE(Operand product,
                          MakeCall("multiply_checked", {std::move(quotient), rhs}, span));
    return MakeCall("subtract_checked", {lhs, std::move(product)}, span);
  }

  // Builds a balanced tree so that long generated AND/OR chains stay shallow for
  // Arrow's recursive visitors (Kleene AND and OR are associative).
  Result<Operand> Combine(const char* function, std::vector<Operand>* terms, size_t begin,
                          size_t end) {
    if (end - begin == 1) return AsBoolean(std::move((*terms)[begin]));
    const size_t middle = begin + (end - begin) / 2;
    ARROW_ASSIGN_OR_RAISE(Operand left, Combine(function, terms, begin, middle));
    ARROW_ASSIGN_OR_RAISE(Operand right, Combine(function, terms, middle, end));
    const Span span{left.span.begin, right.span.end};
    return MakeCall(function, {std::move(left), std::move(right)}, span);
  }

  // --- grammar -------------------------------------------------------------
  //
  // Every level of parentheses, NOT or unary minus recurses through the Parse*
  // functions, so their stack frames are kept small: they fill an out-parameter
  // rather than return Result<Operand> (whose temporaries dominated the frames), and
  // building nodes happens in out-of-line Apply*/Make* helpers ([[gnu::noinline]]
  // stops the compiler from merging those locals back into every level's frame).

  Status ParseOr(Operand* out) {
    ARROW_RETURN_NOT_OK(ParseAnd(out));
    if (!IsKeyword(Peek(), "OR")) return Status::OK();
    return ParseOrRest(out);
  }

  [[gnu::noinline]] Status ParseOrRest(Operand* out) {
    std::vector<Operand> terms;
    terms.push_back(std::move(*out));
    while (AcceptKeyword("OR")) {
      ARROW_RETURN_NOT_OK(ParseAnd(&terms.emplace_back()));
    }
    ARROW_ASSIGN_OR_RAISE(*out, Combine("or_kleene", &terms, 0, terms.size()));
    return Status::OK();
  }

  Status ParseAnd(Operand* out) {
    ARROW_RETURN_NOT_OK(ParseNot(out));
    if (!IsKeyword(Peek(), "AND")) return Status::OK();
    return ParseAndRest(out);
  }

  [[gnu::noinline]] Status ParseAndRest(Operand* out) {
    std::vector<Operand> terms;
    terms.push_back(std::move(*out));
    while (AcceptKeyword("AND")) {
      ARROW_RETURN_NOT_OK(ParseNot(&terms.emplace_back()));
    }
    ARROW_ASSIGN_OR_RAISE(*out, Combine("and_kleene", &terms, 0, terms.size()));
    return Status::OK();
  }

  Status ParseNot(Operand* out) {
    if (IsKeyword(Peek(), "NOT")) return ParseNotRest(out);
    return ParsePredicate(out);
  }

  [[gnu::noinline]] Status ParseNotRest(Operand* out) {
    const size_t begin = Advance().begin;
    ARROW_RETURN_NOT_OK(EnterNested(begin));
    ARROW_RETURN_NOT_OK(ParseNot(out));
    LeaveNested();
    return ApplyNot(begin, out);
  }

  Status ParsePredicate(Operand* out) {
    ARROW_RETURN_NOT_OK(ParseAdditive(out));
    if (!StartsPredicateOperator(Peek())) return Status::OK();
    return ParsePredicateRest(out);
  }

  static bool StartsPredicateOperator(const Token& token) {
    return ComparisonFunction(token.kind) != nullptr || IsKeyword(token, "NOT") ||
           IsKeyword(token, "IN") || IsKeyword(token, "BETWEEN") || IsKeyword(token, "LIKE") ||
           IsKeyword(token, "IS");
  }

  [[gnu::noinline]] Status ParsePredicateRest(Operand* lhs) {
    if (const char* function = ComparisonFunction(Peek().kind)) {
      Advance();
      Operand rhs;
      ARROW_RETURN_NOT_OK(ParseAdditive(&rhs));
      return ApplyComparison(function, lhs, &rhs);
    }
    bool negated = false;
    if (IsKeyword(Peek(), "NOT")) {
      const Token& after = Peek(1);
      if (!IsKeyword(after, "IN") && !IsKeyword(after, "BETWEEN") && !IsKeyword(after, "LIKE")) {
        return Unexpected(after, "expected IN, BETWEEN or LIKE after NOT");
      }
      Advance();
      negated = true;
    }
    if (AcceptKeyword("IN")) {
      ARROW_RETURN_NOT_OK(ParseInList(lhs));
    } else if (AcceptKeyword("BETWEEN")) {
      ARROW_RETURN_NOT_OK(ParseBetween(lhs));
    } else if (AcceptKeyword("LIKE")) {
      ARROW_RETURN_NOT_OK(ParseLike(lhs));
    } else {
      Advance();  // IS
      const bool is_not = AcceptKeyword("NOT");
      if (!AcceptKeyword("NULL")) return Unexpected(Peek(), "expected NULL after IS");
      return ApplyCall(is_not ? "is_valid" : "is_null", Span{lhs->span.begin, last_end_}, lhs);
    }
    if (!negated) return Status::OK();
    return ApplyCall("invert", lhs->span, lhs);
  }

  // Replaces *operand with function(*operand).
  [[gnu::noinline]] Status ApplyCall(const char* function, Span span, Operand* operand,
                                     std::shared_ptr<cp::FunctionOptions> options = nullptr) {
    ARROW_ASSIGN_OR_RAISE(*operand,
                          MakeCall(function, {std::move(*operand)}, span, std::move(options)));
    return Status::OK();
  }

  [[gnu::noinline]] Status ApplyNot(size_t not_position, Operand* operand) {
    const Span span{not_position, operand->span.end};
    ARROW_ASSIGN_OR_RAISE(*operand, MakeCall("invert", {AsBoolean(std::move(*operand))}, span));
    return Status::OK();
  }

  // The operands are passed by pointer: by-value arguments would be temporaries in
  // the (recursive) caller's frame.
  [[gnu::noinline]] Status ApplyComparison(const char* function, Operand* lhs, Operand* rhs) {
    ARROW_ASSIGN_OR_RAISE(*lhs, MakeComparison(function, std::move(*lhs), std::move(*rhs)));
    return Status::OK();
  }

  [[gnu::noinline]] Status ApplyArithmetic(TokenKind op, Operand* lhs, Operand* rhs) {
    ARROW_ASSIGN_OR_RAISE(*lhs, MakeArithmetic(op, std::move(*lhs), std::move(*rhs)));
    return Status::OK();
  }

  [[gnu::noinline]] Status ApplyBetween(Operand* lhs, Operand* low, Operand* high) {
    ARROW_ASSIGN_OR_RAISE(*lhs, MakeBetween(std::move(*lhs), std::move(*low), std::move(*high)));
    return Status::OK();
  }

  // Reads `(literal, ...)` after IN; replaces *lhs with the is_in call.
  [[gnu::noinline]] Status ParseInList(Operand* lhs) {
    if (Peek().kind != TokenKind::kLeftParen) return Unexpected(Peek(), "expected '(' after IN");
    Advance();
    std::vector<Operand> items;
    while (true) {
      ARROW_ASSIGN_OR_RAISE(Operand item, ParseListLiteral());
      items.push_back(std::move(item));
      if (Peek().kind == TokenKind::kComma) {
        Advance();
        continue;
      }
      if (Peek().kind != TokenKind::kRightParen) {
        return Unexpected(Peek(), "expected ',' or ')' in the IN list");
      }
      Advance();
      break;
    }
    const Span span{lhs->span.begin, last_end_};
    const std::shared_ptr<DataType> type = lhs->type;
    if (type->id() == arrow::Type::NA) {
      // NULL IN (...) is NULL whatever the list holds.
      ARROW_ASSIGN_OR_RAISE(*lhs, MakeLiteral(Literal::Kind::kNull, "", span));
      *lhs = AsBoolean(std::move(*lhs));
      return Status::OK();
    }
    const std::shared_ptr<DataType> value_type = ValueType(type);
    std::unique_ptr<arrow::ArrayBuilder> builder;
    ARROW_ASSIGN_OR_RAISE(builder, arrow::MakeBuilder(value_type));
    for (const Operand& item : items) {
      const Literal& literal = *item.literal;
      auto converted = ConvertLiteral(literal, value_type);
      if (converted.ok()) {
        ARROW_RETURN_NOT_OK(builder->AppendScalar(**converted));
      } else if (!(IsNumericKind(literal.kind) && IsNumericType(*value_type))) {
        return Error(item.span.begin, "cannot compare " + DescribeOperand(*lhs, *type) +
                                          " with literal " + Source(item.span) + ": " +
                                          converted.status().message());
      }
      // Otherwise the number lies outside the column's domain (300 for int8, 1.5 for
      // an integer column) and can never be equal to a value: leave it out.
    }
    ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Array> value_set, builder->Finish());
    // INCONCLUSIVE gives SQL semantics: NULL input, or no match when the list holds a
    // NULL, yields NULL rather than false.
    auto options = std::make_shared<cp::SetLookupOptions>(arrow::Datum(value_set),
                                                          cp::SetLookupOptions::INCONCLUSIVE);
    return ApplyCall("is_in", span, lhs, std::move(options));
  }

  [[gnu::noinline]] Status ParseBetween(Operand* lhs) {
    Operand low;
    ARROW_RETURN_NOT_OK(ParseAdditive(&low));
    if (!AcceptKeyword("AND")) return Unexpected(Peek(), "expected AND in BETWEEN");
    Operand high;
    ARROW_RETURN_NOT_OK(ParseAdditive(&high));
    return ApplyBetween(lhs, &low, &high);
  }

  [[gnu::noinline]] Result<Operand> MakeBetween(Operand lhs, Operand low, Operand high) {
    const Span span{lhs.span.begin, high.span.end};
    ARROW_ASSIGN_OR_RAISE(Operand lower_ok, MakeComparison("greater_equal", lhs, std::move(low)));
    ARROW_ASSIGN_OR_RAISE(Operand upper_ok,
                          MakeComparison("less_equal", std::move(lhs), std::move(high)));
    return MakeCall("and_kleene", {std::move(lower_ok), std::move(upper_ok)}, span);
  }

  [[gnu::noinline]] Status ParseLike(Operand* lhs) {
    if (Peek().kind != TokenKind::kString) {
      return Unexpected(Peek(), "expected a quoted pattern after LIKE");
    }
    const Token& pattern = Advance();
    const Span span{lhs->span.begin, pattern.end};
    // Arrow's match_like treats '%' and '_' as wildcards and '\' as the escape.
    auto options = std::make_shared<cp::MatchSubstringOptions>(pattern.text);
    return ApplyCall("match_like", span, lhs, std::move(options));
  }

  Status ParseAdditive(Operand* out) {
    ARROW_RETURN_NOT_OK(ParseMultiplicative(out));
    if (Peek().kind != TokenKind::kPlus && Peek().kind != TokenKind::kMinus) {
      return Status::OK();
    }
    return ParseAdditiveRest(out);
  }

  [[gnu::noinline]] Status ParseAdditiveRest(Operand* lhs) {
    while (Peek().kind == TokenKind::kPlus || Peek().kind == TokenKind::kMinus) {
      const TokenKind op = Advance().kind;
      Operand rhs;
      ARROW_RETURN_NOT_OK(ParseMultiplicative(&rhs));
      ARROW_RETURN_NOT_OK(ApplyArithmetic(op, lhs, &rhs));
    }
    return Status::OK();
  }

  static bool IsMultiplicativeOperator(TokenKind kind) {
    return kind == TokenKind::kStar || kind == TokenKind::kSlash || kind == TokenKind::kPercent;
  }

  Status ParseMultiplicative(Operand* out) {
    ARROW_RETURN_NOT_OK(ParseUnary(out));
    if (!IsMultiplicativeOperator(Peek().kind)) return Status::OK();
    return ParseMultiplicativeRest(out);
  }

  [[gnu::noinline]] Status ParseMultiplicativeRest(Operand* lhs) {
    while (IsMultiplicativeOperator(Peek().kind)) {
      const TokenKind op = Advance().kind;
      Operand rhs;
      ARROW_RETURN_NOT_OK(ParseUnary(&rhs));
      ARROW_RETURN_NOT_OK(ApplyArithmetic(op, lhs, &rhs));
    }
    return Status::OK();
  }

  // Folds a minus into a numeric literal, so "x > -5" still compares with a literal
  // that can take x's type.
  Status NegateLiteral(Operand* operand, size_t minus_position) {
    Literal& literal = *operand->literal;
    if (!literal.text.empty() && literal.text.front() == '-') {
      literal.text.erase(0, 1);
    } else {
      literal.text.insert(0, "-");
    }
    operand->span.begin = minus_position;
    auto scalar = MakeLiteralScalar(literal.kind, literal.text, false);
    if (!scalar.ok()) {
      return Error(minus_position,
                   "invalid literal " + Source(operand->span) + ": " + scalar.status().message());
    }
    SetLiteralScalar(operand, *std::move(scalar));
    return Status::OK();
  }

  Status ParseUnary(Operand* out) {
    if (Peek().kind == TokenKind::kMinus) return ParseNegation(out);
    return ParsePrimary(out);
  }

  [[gnu::noinline]] Status ParseNegation(Operand* out) {
    const size_t begin = Advance().begin;
    ARROW_RETURN_NOT_OK(EnterNested(begin));
    ARROW_RETURN_NOT_OK(ParseUnary(out));
    LeaveNested();
    return ApplyNegation(begin, out);
  }

  [[gnu::noinline]] Status ApplyNegation(size_t minus_position, Operand* operand) {
    if (operand->literal && IsNumericKind(operand->literal->kind)) {
      return NegateLiteral(operand, minus_position);
    }
    if (operand->literal && operand->literal->kind == Literal::Kind::kNull) {
      operand->span.begin = minus_position;
      return Status::OK();
    }
    return ApplyCall("negate_checked", Span{minus_position, operand->span.end}, operand);
  }

  // An IN-list element: a literal, optionally with minus signs.
  Result<Operand> ParseListLiteral() {
    const size_t begin = Peek().begin;
    bool negate = false;
    while (Peek().kind == TokenKind::kMinus) {
      Advance();
      negate = !negate;
    }
    ARROW_ASSIGN_OR_RAISE(std::optional<Operand> literal, ParseLiteral());
    if (!literal) return Unexpected(Peek(), "expected a literal in the IN list");
    if (begin != literal->span.begin) {
      if (!IsNumericKind(literal->literal->kind)) {
        return Error(begin, "'-' needs a number", "in the IN list");
      }
      if (negate) ARROW_RETURN_NOT_OK(NegateLiteral(&*literal, begin));
      literal->span.begin = begin;
    }
    return *std::move(literal);
  }

  // Parses a literal if one starts here; nullopt (consuming nothing) otherwise.
  Result<std::optional<Operand>> ParseLiteral() {
    const Token& token = Peek();
    const Span span{token.begin, token.end};
    switch (token.kind) {
      case TokenKind::kInteger:
        Advance();
        return MakeLiteral(Literal::Kind::kInteger, token.text, span);
      case TokenKind::kFloat:
        Advance();
        return MakeLiteral(Literal::Kind::kFloat, token.text, span);
      case TokenKind::kString:
        Advance();
        return MakeLiteral(Literal::Kind::kString, token.text, span);
      case TokenKind::kIdentifier:
        break;
      default:
        return std::nullopt;
    }
    if (IsKeyword(token, "TRUE") || IsKeyword(token, "FALSE")) {
      Advance();
      return MakeLiteral(Literal::Kind::kBoolean, token.text, span, IsKeyword(token, "TRUE"));
    }
    if (IsKeyword(token, "NULL")) {
      Advance();
      return MakeLiteral(Literal::Kind::kNull, token.text, span);
    }
    const bool is_date = IsKeyword(token, "DATE");
    if ((is_date || IsKeyword(token, "TIMESTAMP")) && Peek(1).kind == TokenKind::kString) {
      Advance();
      const Token& value = Advance();
      return MakeLiteral(is_date ? Literal::Kind::kDate : Literal::Kind::kTimestamp, value.text,
                         Span{token.begin, value.end});
    }
    return std::nullopt;
  }

  Status ParsePrimary(Operand* out) {
    if (Peek().kind != TokenKind::kLeftParen) return ParseLeaf(out);
    const size_t begin = Advance().begin;
    ARROW_RETURN_NOT_OK(EnterNested(begin));
    ARROW_RETURN_NOT_OK(ParseOr(out));
    LeaveNested();
    if (Peek().kind != TokenKind::kRightParen) return Unexpected(Peek(), "expected ')'");
    Advance();
    out->span = Span{begin, last_end_};
    return Status::OK();
  }

  // A literal, a function call, a CASE expression or a column.
  [[gnu::noinline]] Status ParseLeaf(Operand* out) {
    ARROW_ASSIGN_OR_RAISE(std::optional<Operand> literal, ParseLiteral());
    if (literal) {
      *out = *std::move(literal);
      return Status::OK();
    }
    const Token& token = Peek();
    if (IsKeyword(token, "CASE") && IsKeyword(Peek(1), "WHEN")) return ParseCase(out);
    if (token.kind == TokenKind::kIdentifier && Peek(1).kind == TokenKind::kLeftParen &&
        !IsReservedWord(token.text)) {
      return ParseFunction(out);
    }
    switch (token.kind) {
      case TokenKind::kIdentifier:
        if (IsReservedWord(token.text)) {
          return Unexpected(token, "back-quote a column that has this name");
        }
        break;
      case TokenKind::kQuotedIdentifier:
        break;
      default:
        return Unexpected(token);
    }
    ARROW_ASSIGN_OR_RAISE(*out, ParseColumn());
    return Status::OK();
  }

  // --- functions and CASE -------------------------------------------------

  // Gives literal arguments of a function whose arguments share one type (coalesce,
  // if, CASE values, least/greatest) the type of the first non-literal one: NULL
  // becomes a typed null, numbers take it where they can exactly, and float
  // literals keep float64 (see PinLiteralType).
  Status HarmonizeLiterals(std::vector<Operand*> operands) {
    // The first non-literal operand gives the type; failing that, the first
    // literal that is not NULL (so CASE WHEN b THEN 1 ELSE NULL END is a number).
    const Operand* typed = nullptr;
    for (const Operand* o : operands) {
      if (!o->literal) {
        typed = o;
        break;
      }
    }
    for (const Operand* o : operands) {
      if (typed) break;
      if (o->literal->kind != Literal::Kind::kNull) typed = o;
    }
    for (Operand* o : operands) {
      if (!o->literal || o == typed) continue;
      if (typed) {
        const Literal::Kind kind = o->literal->kind;
        if (kind == Literal::Kind::kNull || (IsNumericKind(kind) && IsNumericType(*typed->type))) {
          auto converted = ConvertLiteral(*o->literal, typed->type);
          if (converted.ok()) {
            SetLiteralScalar(o, *std::move(converted));
            continue;
          }
        }
      } else if (o->literal->kind == Literal::Kind::kNull) {
        continue;
      }
      if (IsFloatLiteral(*o)) PinLiteralType(o);
    }
    return Status::OK();
  }

  // A number operand (integers are computed in float64 by the math functions).
  Status RequireNumber(const std::string& function, const Operand& arg) {
    if (arg.type->id() == arrow::Type::NA || IsNumericType(*arg.type)) return Status::OK();
    return Error(arg.span.begin, function + "() needs a number, not '" + Source(arg.span) + "' (" +
                                     arg.type->ToString() + ")");
  }

  Result<Operand> MakeFloat64(Operand arg) {
    if (arg.literal && arg.literal->kind == Literal::Kind::kNull) {
      SetLiteralScalar(&arg, arrow::MakeNullScalar(arrow::float64()));
      return arg;
    }
    if (arg.type->id() == arrow::Type::DOUBLE) return arg;
    const Span span = arg.span;
    return MakeCall("cast", {std::move(arg)}, span,
                    std::make_shared<cp::CastOptions>(cp::CastOptions::Safe(arrow::float64())));
  }

  Result<Operand> Float64Literal(double value, Span span) {
    Operand out;
    out.span = span;
    out.type = arrow::float64();
    out.expr = cp::literal(value);
    return out;
  }

  // f(float64(arg)) for a one-argument math function.
  Result<Operand> MakeMath(const char* function, Operand arg, Span span) {
    ARROW_ASSIGN_OR_RAISE(Operand x, MakeFloat64(std::move(arg)));
    return MakeCall(function, {std::move(x)}, span);
  }

  // Great-circle distance in kilometres between two (latitude, longitude) points
  // given in degrees (haversine formula, mean Earth radius 6371.0088 km).
  Result<Operand> MakeHaversine(std::vector<Operand> a, Span span) {
    constexpr double kRadians = 3.14159265358979323846 / 180.0;
    std::vector<Operand> r;
    for (Operand& x : a) {
      ARROW_ASSIGN_OR_RAISE(Operand f, MakeFloat64(std::move(x)));
      ARROW_ASSIGN_OR_RAISE(Operand k, Float64Literal(kRadians, span));
      ARROW_ASSIGN_OR_RAISE(Operand rad, MakeCall("multiply", {std::move(f), std::move(k)}, span));
      r.push_back(std::move(rad));
    }
    ARROW_ASSIGN_OR_RAISE(Operand half, Float64Literal(0.5, span));
    auto half_sin_squared = [&](const Operand& from, const Operand& to) -> Result<Operand> {
      ARROW_ASSIGN_OR_RAISE(Operand d, MakeCall("subtract", {to, from}, span));
      ARROW_ASSIGN_OR_RAISE(Operand h, MakeCall("multiply", {std::move(d), half}, span));
      ARROW_ASSIGN_OR_RAISE(Operand s, MakeCall("sin", {std::move(h)}, span));
      return MakeCall("multiply", {s, s}, span);
    };
    ARROW_ASSIGN_OR_RAISE(Operand dlat, half_sin_squared(r[0], r[2]));
    ARROW_ASSIGN_OR_RAISE(Operand dlon, half_sin_squared(r[1], r[3]));
    ARROW_ASSIGN_OR_RAISE(Operand c1, MakeCall("cos", {r[0]}, span));
    ARROW_ASSIGN_OR_RAISE(Operand c2, MakeCall("cos", {r[2]}, span));
    ARROW_ASSIGN_OR_RAISE(Operand cc, MakeCall("multiply", {std::move(c1), std::move(c2)}, span));
    ARROW_ASSIGN_OR_RAISE(Operand t, MakeCall("multiply", {std::move(cc), std::move(dlon)}, span));
    ARROW_ASSIGN_OR_RAISE(Operand sum, MakeCall("add", {std::move(dlat), std::move(t)}, span));
    // Rounding can take the sum a hair past 1 for antipodal points: asin(>1) is NaN.
    ARROW_ASSIGN_OR_RAISE(Operand one, Float64Literal(1.0, span));
    ARROW_ASSIGN_OR_RAISE(
        Operand capped,
        MakeCall("min_element_wise", {std::move(sum), std::move(one)}, span,
                 std::make_shared<cp::ElementWiseAggregateOptions>(/*skip_nulls=*/false)));
    ARROW_ASSIGN_OR_RAISE(Operand root, MakeCall("sqrt", {std::move(capped)}, span));
    ARROW_ASSIGN_OR_RAISE(Operand angle, MakeCall("asin", {std::move(root)}, span));
    ARROW_ASSIGN_OR_RAISE(Operand diameter, Float64Literal(2.0 * 6371.0088, span));
    return MakeCall("multiply", {std::move(diameter), std::move(angle)}, span);
  }

  // bucket(x, b1, ..., bn): how many of the ascending boundaries are <= x (0..n);
  // NULL when x is NULL.
  Result<Operand> MakeBucket(std::vector<Operand> a, Span span) {
    ARROW_RETURN_NOT_OK(RequireNumber("bucket", a[0]));
    std::optional<double> previous;
    std::optional<Operand> total;
    for (size_t i = 1; i < a.size(); ++i) {
      Operand& b = a[i];
      if (!b.literal || !IsNumericKind(b.literal->kind)) {
        return Error(b.span.begin,
                     "bucket() boundaries must be number literals, not '" + Source(b.span) + "'");
      }
      ARROW_ASSIGN_OR_RAISE(auto as_double, CastScalar(b.literal->scalar, arrow::float64()));
      const double value = static_cast<const arrow::DoubleScalar&>(*as_double).value;
      if (previous && !(value > *previous)) {
        return Error(b.span.begin, "bucket() boundaries must be ascending: " + Source(b.span) +
                                       " follows a boundary at least as large");
      }
      previous = value;
      ARROW_ASSIGN_OR_RAISE(Operand ge, MakeComparison("greater_equal", a[0], std::move(b)));
      ARROW_ASSIGN_OR_RAISE(
          Operand n,
          MakeCall("cast", {std::move(ge)}, span,
                   std::make_shared<cp::CastOptions>(cp::CastOptions::Safe(arrow::int64()))));
      if (!total) {
        total = std::move(n);
      } else {
        ARROW_ASSIGN_OR_RAISE(total, MakeCall("add", {std::move(*total), std::move(n)}, span));
      }
    }
    return *std::move(total);
  }

  Result<Operand> MakeFunction(const std::string& name, std::vector<Operand> a, Span name_span,
                               Span span) {
    const size_t n = a.size();
    auto arity = [&](size_t lo, size_t hi) -> Status {
      if (n >= lo && n <= hi) return Status::OK();
      std::string want = lo == hi         ? std::to_string(lo)
                         : hi == SIZE_MAX ? "at least " + std::to_string(lo)
                                          : std::to_string(lo) + " to " + std::to_string(hi);
      return Error(name_span.begin, name + "() takes " + want + " argument" +
                                        (lo == 1 && hi == 1 ? "" : "s") + ", not " +
                                        std::to_string(n));
    };
    static constexpr std::pair<std::string_view, const char*> kMath[] = {
        {"sqrt", "sqrt"}, {"sin", "sin"},     {"cos", "cos"},   {"tan", "tan"},
        {"asin", "asin"}, {"acos", "acos"},   {"atan", "atan"}, {"ln", "ln"},
        {"log", "ln"},    {"log10", "log10"}, {"log2", "log2"}, {"exp", "exp"}};
    for (const auto& [spelled, function] : kMath) {
      if (name != spelled) continue;
      ARROW_RETURN_NOT_OK(arity(1, 1));
      ARROW_RETURN_NOT_OK(RequireNumber(name, a[0]));
      return MakeMath(function, std::move(a[0]), span);
    }
    if (name == "radians" || name == "degrees") {
      ARROW_RETURN_NOT_OK(arity(1, 1));
      ARROW_RETURN_NOT_OK(RequireNumber(name, a[0]));
      constexpr double kPi = 3.14159265358979323846;
      ARROW_ASSIGN_OR_RAISE(Operand x, MakeFloat64(std::move(a[0])));
      ARROW_ASSIGN_OR_RAISE(Operand k,
                            Float64Literal(name == "radians" ? kPi / 180.0 : 180.0 / kPi, span));
      return MakeCall("multiply", {std::move(x), std::move(k)}, span);
    }
    if (name == "atan2" || name == "pow" || name == "power") {
      ARROW_RETURN_NOT_OK(arity(2, 2));
      ARROW_RETURN_NOT_OK(RequireNumber(name, a[0]));
      ARROW_RETURN_NOT_OK(RequireNumber(name, a[1]));
      ARROW_ASSIGN_OR_RAISE(Operand x, MakeFloat64(std::move(a[0])));
      ARROW_ASSIGN_OR_RAISE(Operand y, MakeFloat64(std::move(a[1])));
      return MakeCall(name == "atan2" ? "atan2" : "power", {std::move(x), std::move(y)}, span);
    }
    if (name == "abs" || name == "sign") {
      ARROW_RETURN_NOT_OK(arity(1, 1));
      ARROW_RETURN_NOT_OK(RequireNumber(name, a[0]));
      return MakeCall(name == "abs" ? "abs_checked" : "sign", {std::move(a[0])}, span);
    }
    if (name == "floor" || name == "ceil" || name == "ceiling" || name == "trunc") {
      ARROW_RETURN_NOT_OK(arity(1, 1));
      ARROW_RETURN_NOT_OK(RequireNumber(name, a[0]));
      const char* function = name == "floor" ? "floor" : name == "trunc" ? "trunc" : "ceil";
      return MakeMath(function, std::move(a[0]), span);
    }
    if (name == "round") {
      ARROW_RETURN_NOT_OK(arity(1, 2));
      ARROW_RETURN_NOT_OK(RequireNumber(name, a[0]));
      int64_t digits = 0;
      if (n == 2) {
        if (!a[1].literal || a[1].literal->kind != Literal::Kind::kInteger) {
          return Error(a[1].span.begin, "round()'s digits must be an integer literal, not '" +
                                            Source(a[1].span) + "'");
        }
        ARROW_ASSIGN_OR_RAISE(auto d, CastScalar(a[1].literal->scalar, arrow::int64()));
        digits = static_cast<const arrow::Int64Scalar&>(*d).value;
        if (digits < -18 || digits > 18) {
          return Error(a[1].span.begin, "round()'s digits must lie in -18..18");
        }
      }
      // SQL's rounding: halves away from zero.
      auto options =
          std::make_shared<cp::RoundOptions>(digits, cp::RoundMode::HALF_TOWARDS_INFINITY);
      ARROW_ASSIGN_OR_RAISE(Operand x, MakeFloat64(std::move(a[0])));
      return MakeCall("round", {std::move(x)}, span, std::move(options));
    }
    if (name == "coalesce" || name == "least" || name == "greatest") {
      ARROW_RETURN_NOT_OK(arity(1, SIZE_MAX));
      std::vector<Operand*> ptrs;
      for (Operand& o : a) ptrs.push_back(&o);
      ARROW_RETURN_NOT_OK(HarmonizeLiterals(ptrs));
      const char* function = name == "coalesce" ? "coalesce"
                             : name == "least"  ? "min_element_wise"
                                                : "max_element_wise";
      return MakeCall(function, a, span);
    }
    if (name == "nullif") {
      ARROW_RETURN_NOT_OK(arity(2, 2));
      Operand value = a[0];
      ARROW_ASSIGN_OR_RAISE(Operand same, MakeComparison("equal", a[0], a[1]));
      Operand null_value;
      null_value.span = span;
      null_value.type = value.type;
      null_value.expr = cp::literal(arrow::MakeNullScalar(value.type));
      return MakeCall("if_else", {std::move(same), std::move(null_value), std::move(value)}, span);
    }
    if (name == "if" || name == "iif") {
      ARROW_RETURN_NOT_OK(arity(3, 3));
      Operand condition = AsBoolean(std::move(a[0]));
      ARROW_RETURN_NOT_OK(HarmonizeLiterals({&a[1], &a[2]}));
      return MakeCall("if_else", {std::move(condition), std::move(a[1]), std::move(a[2])}, span);
    }
    if (name == "haversine") {
      ARROW_RETURN_NOT_OK(arity(4, 4));
      for (const Operand& o : a) ARROW_RETURN_NOT_OK(RequireNumber(name, o));
      return MakeHaversine(std::move(a), span);
    }
    if (name == "bucket") {
      ARROW_RETURN_NOT_OK(arity(2, SIZE_MAX));
      return MakeBucket(std::move(a), span);
    }
    return Error(name_span.begin, "unknown function '" + Echo(name) + "'",
                 "functions: abs, acos, asin, atan, atan2, bucket, ceil, coalesce, cos, degrees, "
                 "exp, floor, greatest, haversine, if, least, ln, log, log10, log2, nullif, pow, "
                 "radians, round, sign, sin, sqrt, tan, trunc");
  }

  // name '(' [expr (',' expr)*] ')'
  [[gnu::noinline]] Status ParseFunction(Operand* out) {
    const Token& name_token = Advance();
    std::string name;
    for (char c : name_token.text) name += ToLowerAscii(c);
    const Span name_span{name_token.begin, name_token.end};
    const size_t open = Advance().begin;  // '('
    ARROW_RETURN_NOT_OK(EnterNested(open));
    std::vector<Operand> args;
    if (Peek().kind != TokenKind::kRightParen) {
      while (true) {
        ARROW_RETURN_NOT_OK(ParseOr(&args.emplace_back()));
        if (Peek().kind == TokenKind::kComma) {
          Advance();
          continue;
        }
        if (Peek().kind != TokenKind::kRightParen) {
          return Unexpected(Peek(), "expected ',' or ')' in the arguments of " + name + "()");
        }
        break;
      }
    }
    Advance();  // ')'
    LeaveNested();
    ARROW_ASSIGN_OR_RAISE(
        *out, MakeFunction(name, std::move(args), name_span, Span{name_token.begin, last_end_}));
    return Status::OK();
  }

  // CASE WHEN cond THEN value [WHEN ...] [ELSE value] END
  [[gnu::noinline]] Status ParseCase(Operand* out) {
    const size_t begin = Advance().begin;  // CASE
    ARROW_RETURN_NOT_OK(EnterNested(begin));
    std::vector<Operand> conditions;
    std::vector<Operand> values;
    while (AcceptKeyword("WHEN")) {
      Operand& condition = conditions.emplace_back();
      ARROW_RETURN_NOT_OK(ParseOr(&condition));
      condition = AsBoolean(std::move(condition));
      if (condition.type->id() != arrow::Type::BOOL) {
        return Error(condition.span.begin, "a WHEN condition must be true or false, not '" +
                                               Source(condition.span) + "' (" +
                                               condition.type->ToString() + ")");
      }
      if (!AcceptKeyword("THEN")) return Unexpected(Peek(), "expected THEN");
      ARROW_RETURN_NOT_OK(ParseOr(&values.emplace_back()));
    }
    std::optional<Operand> otherwise;
    if (AcceptKeyword("ELSE")) {
      otherwise.emplace();
      ARROW_RETURN_NOT_OK(ParseOr(&*otherwise));
    }
    if (!AcceptKeyword("END")) return Unexpected(Peek(), "expected WHEN, ELSE or END");
    LeaveNested();
    const Span span{begin, last_end_};
    std::vector<Operand*> ptrs;
    for (Operand& v : values) ptrs.push_back(&v);
    if (otherwise) ptrs.push_back(&*otherwise);
    ARROW_RETURN_NOT_OK(HarmonizeLiterals(ptrs));
    std::vector<std::string> names;
    for (size_t i = 0; i < conditions.size(); ++i) names.push_back("c" + std::to_string(i));
    ARROW_ASSIGN_OR_RAISE(Operand conds, MakeCall("make_struct", conditions, span,
                                                  std::make_shared<cp::MakeStructOptions>(names)));
    std::vector<Operand> args{std::move(conds)};
    for (Operand& v : values) args.push_back(std::move(v));
    if (otherwise) args.push_back(std::move(*otherwise));
    ARROW_ASSIGN_OR_RAISE(*out, MakeCall("case_when", args, span));
    return Status::OK();
  }

  // Reads `name(.name)*` where any name may be back-quoted.
  Status ReadColumnPath(std::vector<std::string>* segments, bool* all_plain, Span* span) {
    const Token& first = Advance();
    span->begin = first.begin;
    segments->push_back(first.text);
    *all_plain = first.kind == TokenKind::kIdentifier;
    while (Peek().kind == TokenKind::kDot) {
      const Token& next = Peek(1);
      if (next.kind != TokenKind::kIdentifier && next.kind != TokenKind::kQuotedIdentifier) {
        return Unexpected(next, "expected a field name after '.'");
      }
      Advance();
      Advance();
      segments->push_back(next.text);
      *all_plain = *all_plain && next.kind == TokenKind::kIdentifier;
    }
    span->end = last_end_;
    return Status::OK();
  }

  // Exact match first, then a unique case-insensitive one; nullptr when none.
  Result<std::shared_ptr<arrow::Field>> FindField(const arrow::FieldVector& fields,
                                                  const std::string& name, size_t position) const {
    std::vector<std::shared_ptr<arrow::Field>> exact;
    std::vector<std::shared_ptr<arrow::Field>> folded;
    for (const auto& field : fields) {
      if (field->name() == name) {
        exact.push_back(field);
      } else if (EqualsIgnoreCase(field->name(), name)) {
        folded.push_back(field);
      }
    }
    if (exact.size() == 1) return exact.front();
    if (exact.size() > 1) {
      return Error(position, "column name '" + Echo(name) + "' is ambiguous: it occurs " +
                                 std::to_string(exact.size()) + " times");
    }
    if (folded.size() == 1) return folded.front();
    if (folded.size() > 1) {
      return Error(position, "column name '" + Echo(name) + "' is ambiguous: it matches " +
                                 ListNames(folded) + " case-insensitively");
    }
    return nullptr;
  }

  // A column the data does not have: marked so that callers can tell it from a
  // syntax error (IsUnknownColumnError).
  Status UnknownColumn(const std::vector<std::string>& segments, Span span) const {
    Status st = Error(span.begin, "unknown column '" + Echo(Join(segments, ".")) +
                                      "' (columns: " + ListNames(schema_.fields()) + ")");
    return st.WithDetail(std::make_shared<UnknownColumnDetail>());
  }

  Result<Operand> ParseColumn() {
    std::vector<std::string> segments;
    bool all_plain = false;
    Span span;
    ARROW_RETURN_NOT_OK(ReadColumnPath(&segments, &all_plain, &span));

    Operand out;
    out.span = span;
    // "source.id" in a merge condition is usually one flat column of the joined
    // schema, so that reading wins over a struct path.
    if (segments.size() > 1 && all_plain) {
      ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Field> flat,
                            FindField(schema_.fields(), Join(segments, "."), span.begin));
      if (flat) {
        out.expr = cp::field_ref(arrow::FieldRef(flat->name()));
        out.type = flat->type();
        out.column_name = flat->name();
        return out;
      }
    }
    ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Field> field,
                          FindField(schema_.fields(), segments.front(), span.begin));
    if (!field) return UnknownColumn(segments, span);
    std::vector<arrow::FieldRef> path{arrow::FieldRef(field->name())};
    std::string spelled = field->name();
    std::shared_ptr<DataType> type = field->type();
    for (size_t k = 1; k < segments.size(); ++k) {
      if (type->id() != arrow::Type::STRUCT) {
        return Error(span.begin, "column '" + Echo(spelled) + "' has type " + type->ToString() +
                                     ", not a struct, so it has no field '" + Echo(segments[k]) +
                                     "'");
      }
      ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Field> child,
                            FindField(type->fields(), segments[k], span.begin));
      if (!child) {
        return Error(span.begin, "unknown field '" + Echo(segments[k]) + "' in column '" +
                                     Echo(spelled) + "' (fields: " + ListNames(type->fields()) +
                                     ")");
      }
      path.emplace_back(child->name());
      spelled += "." + child->name();
      type = child->type();
    }
    arrow::FieldRef ref = path.size() == 1 ? path.front() : arrow::FieldRef(std::move(path));
    out.expr = cp::field_ref(std::move(ref));
    out.type = std::move(type);
    out.column_name = std::move(spelled);
    return out;
  }

  // --- assignments ---------------------------------------------------------

  Result<std::shared_ptr<arrow::Field>> ParseAssignmentTarget() {
    const Token& token = Peek();
    if (token.kind != TokenKind::kQuotedIdentifier &&
        (token.kind != TokenKind::kIdentifier || IsReservedWord(token.text))) {
      return Unexpected(token, "expected a column name");
    }
    std::vector<std::string> segments;
    bool all_plain = false;
    Span span;
    ARROW_RETURN_NOT_OK(ReadColumnPath(&segments, &all_plain, &span));
    if (segments.size() == 1 || all_plain) {
      ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Field> field,
                            FindField(schema_.fields(), Join(segments, "."), span.begin));
      if (field) return field;
    }
    if (segments.size() > 1) {
      ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Field> head,
                            FindField(schema_.fields(), segments.front(), span.begin));
      if (head && head->type()->id() == arrow::Type::STRUCT) {
        return Error(span.begin, "cannot assign to nested field '" + Echo(Join(segments, ".")) +
                                     "'; only top-level columns can be set");
      }
    }
    return UnknownColumn(segments, span);
  }

  Result<cp::Expression> CoerceAssignedValue(Operand value, const arrow::Field& target) {
    const std::shared_ptr<DataType>& type = target.type();
    const std::string column = "column '" + Echo(target.name()) + "' (" + type->ToString() + ")";
    if (value.literal) {
      auto converted = ConvertLiteral(*value.literal, type);
      if (converted.ok() && !(*converted)->type->Equals(*type)) {
        converted = CastScalar(*converted, type);  // e.g. into a dictionary column
      }
      if (!converted.ok()) {
        return Error(value.span.begin, "cannot assign literal " + Source(value.span) + " to " +
                                           column + ": " + converted.status().message());
      }
      return LiteralExpression(*converted);
    }
    if (value.type->Equals(*type)) return std::move(value.expr);
    // Arithmetic may widen (int32 + i64_column is int64); a safe cast brings the value
    // back to the column's type and fails at run time on overflow instead of wrapping.
    auto options = std::make_shared<cp::CastOptions>(cp::CastOptions::Safe(type));
    auto checked = InferCallType("cast", {value}, options);
    if (!checked.ok()) {
      return Error(value.span.begin, "cannot assign '" + Source(value.span) + "' (" +
                                         value.type->ToString() + ") to " + column + ": " +
                                         checked.status().message());
    }
    return cp::call("cast", {std::move(value.expr)}, std::move(options));
  }

  std::string_view text_;
  const arrow::Schema& schema_;
  std::string what_;
  std::vector<Token> tokens_;
  size_t next_ = 0;
  size_t last_end_ = 0;
  int nesting_ = 0;
};

// Arrow 22 registers most compute functions only in Initialize(); parsing needs them
// to type sub-expressions. A function-local static makes the one call thread-safe.
Status EnsureComputeInitialized() {
  static const Status status = cp::Initialize();
  return status;
}

}  // namespace

bool IsUnknownColumnError(const arrow::Status& status) {
  return !status.ok() && status.detail() != nullptr &&
         std::string(status.detail()->type_id()) == UnknownColumnDetail::kTypeId;
}

Result<cp::Expression> ParseExpression(std::string_view text, const arrow::Schema& schema) {
  ARROW_RETURN_NOT_OK(EnsureComputeInitialized());
  return Parser(text, schema, "filter").ParseWholeExpression();
}

Result<cp::Expression> ParseValueExpression(std::string_view text, const arrow::Schema& schema) {
  ARROW_RETURN_NOT_OK(EnsureComputeInitialized());
  return Parser(text, schema, "expression").ParseWholeExpression();
}

Result<std::vector<Assignment>> ParseAssignments(std::string_view text,
                                                 const arrow::Schema& schema) {
  ARROW_RETURN_NOT_OK(EnsureComputeInitialized());
  return Parser(text, schema, "assignments").ParseAssignmentList();
}

std::vector<std::string> ReferencedColumns(const cp::Expression& expr) {
  std::vector<std::string> names;
  std::unordered_set<std::string> seen;
  // An explicit stack: expressions may come from elsewhere and be arbitrarily deep.
  std::vector<const cp::Expression*> pending{&expr};
  while (!pending.empty()) {
    const cp::Expression* current = pending.back();
    pending.pop_back();
    if (const arrow::FieldRef* ref = current->field_ref()) {
      const arrow::FieldRef* head = ref;
      if (const auto* nested = ref->nested_refs(); nested != nullptr && !nested->empty()) {
        head = &nested->front();
      }
      if (const std::string* name = head->name(); name != nullptr && seen.insert(*name).second) {
        names.push_back(*name);
      }
    } else if (const cp::Expression::Call* call = current->call()) {
      // Pushed in reverse so that the leftmost argument is visited first.
      for (auto it = call->arguments.rbegin(); it != call->arguments.rend(); ++it) {
        pending.push_back(&*it);
      }
    }
  }
  return names;
}

}  // namespace stratalake
