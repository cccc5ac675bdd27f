#include "ingest/convert.h"

#include <algorithm>
#include <cctype>
#include <string>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/util/bit_util.h>
#include <arrow/util/decimal.h>
#include <arrow/util/utf8.h>
#include <arrow/util/value_parsing.h>

#include "common/time_units.h"

namespace stratalake::ingest {
namespace {

namespace cp = arrow::compute;

bool IsText(const arrow::DataType& t) {
  return t.id() == arrow::Type::STRING || t.id() == arrow::Type::LARGE_STRING ||
         t.id() == arrow::Type::STRING_VIEW;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Text that means "no value" in a non-string column (a subset of Arrow's CSV
// defaults; "NaN" is left to parse as a float).
bool IsNullToken(std::string_view s) {
  s = Trim(s);
  return s.empty() || s == "null" || s == "NULL" || s == "Null" || s == "NA" || s == "N/A" ||
         s == "n/a" || s == "#N/A";
}

bool EqualsLower(std::string_view s, std::string_view lower) {
  return s.size() == lower.size() &&
         std::equal(s.begin(), s.end(), lower.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         });
}

bool ParseBool(std::string_view s, bool* out) {
  for (auto t : {"true", "1", "yes"}) {
    if (EqualsLower(s, t)) return *out = true, true;
  }
  for (auto f : {"false", "0", "no"}) {
    if (EqualsLower(s, f)) return *out = false, true;
  }
  return false;
}

// ISO 8601 through Arrow's parser; digits finer than `unit` are dropped (Arrow's
// parser refuses them) rather than rejecting the value.
bool ParseTimestamp(std::string_view s, arrow::TimeUnit::type unit, int64_t* out) {
  if (arrow::internal::ParseTimestampISO8601(s.data(), s.size(), unit, out)) return true;
  if (s.size() <= 20 || s[19] != '.') return false;
  size_t digits = 0;
  while (20 + digits < s.size() && std::isdigit(static_cast<unsigned char>(s[20 + digits]))) {
    ++digits;
  }
  size_t keep = unit == arrow::TimeUnit::SECOND  ? 0
                : unit == arrow::TimeUnit::MILLI ? 3
                : unit == arrow::TimeUnit::MICRO ? 6
                                                 : 9;
  if (digits <= keep) return false;
  std::string cut(s.substr(0, keep == 0 ? 19 : 20 + keep));
  cut += s.substr(20 + digits);
  return arrow::internal::ParseTimestampISO8601(cut.data(), cut.size(), unit, out);
}

bool LooksLikeInteger(std::string_view s) {
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) s.remove_prefix(1);
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c));
  });
}

// Appends each value of `text` to `builder` through `parse(trimmed, builder, reason)`;
// nulls and null tokens become nulls, failures nulls plus a CellError.
template <typename Builder, typename Parse>
arrow::Status ParseEach(const arrow::StringArray& text, Builder* builder,
                        std::vector<CellError>* errors, Parse&& parse) {
  ARROW_RETURN_NOT_OK(builder->Reserve(text.length()));
  for (int64_t i = 0; i < text.length(); ++i) {
    if (text.IsNull(i)) {
      ARROW_RETURN_NOT_OK(builder->AppendNull());
      continue;
    }
    std::string_view v = text.GetView(i);
    if (IsNullToken(v)) {
      ARROW_RETURN_NOT_OK(builder->AppendNull());
      continue;
    }
    std::string reason;
    ARROW_ASSIGN_OR_RAISE(bool ok, parse(Trim(v), builder, &reason));
    if (!ok) {
      ARROW_RETURN_NOT_OK(builder->AppendNull());
      errors->push_back({i, std::string(v), std::move(reason)});
    }
  }
  return arrow::Status::OK();
}

template <typename T>
arrow::Status ParseIntegers(const arrow::StringArray& text, const arrow::DataType& type,
                            arrow::ArrayBuilder* b, std::vector<CellError>* errors) {
  auto* builder = static_cast<arrow::NumericBuilder<T>*>(b);
  const std::string label = TypeLabel(type);
  return ParseEach(text, builder, errors,
                   [&](std::string_view s, arrow::NumericBuilder<T>* out,
                       std::string* reason) -> arrow::Result<bool> {
                     typename T::c_type v;
                     if (arrow::internal::ParseValue<T>(s.data(), s.size(), &v)) {
                       out->UnsafeAppend(v);
                       return true;
                     }
                     *reason =
                         LooksLikeInteger(s) ? "out of range for " + label : "not a valid " + label;
                     return false;
                   });
}

template <typename T>
arrow::Status ParseFloats(const arrow::StringArray& text, const arrow::DataType& type,
                          arrow::ArrayBuilder* b, std::vector<CellError>* errors) {
  auto* builder = static_cast<arrow::NumericBuilder<T>*>(b);
  const std::string label = TypeLabel(type);
  return ParseEach(text, builder, errors,
                   [&](std::string_view s, arrow::NumericBuilder<T>* out,
                       std::string* reason) -> arrow::Result<bool> {
                     typename T::c_type v;
                     if (arrow::internal::ParseValue<T>(s.data(), s.size(), &v)) {
                       out->UnsafeAppend(v);
                       return true;
                     }
                     *reason = "not a valid " + label;
                     return false;
                   });
}

template <typename DecimalType, typename Decimal>
arrow::Status ParseDecimals(const arrow::StringArray& text, const arrow::DataType& type,
                            arrow::ArrayBuilder* b, std::vector<CellError>* errors) {
  using Builder = typename arrow::TypeTraits<DecimalType>::BuilderType;
  auto* builder = static_cast<Builder*>(b);
  const auto& dt = static_cast<const arrow::DecimalType&>(type);
  const std::string label = TypeLabel(type);
  return ParseEach(
      text, builder, errors,
      [&](std::string_view s, Builder* out, std::string* reason) -> arrow::Result<bool> {
        Decimal v;
        int32_t precision = 0, scale = 0;
        if (!Decimal::FromString(s, &v, &precision, &scale).ok()) {
          *reason = "not a valid " + label;
          return false;
        }
        if (scale != dt.scale()) {
          auto rescaled = v.Rescale(scale, dt.scale());
          if (!rescaled.ok()) {
            *reason = "does not fit " + label;
            return false;
          }
          v = *rescaled;
        }
        if (!v.FitsInPrecision(dt.precision())) {
          *reason = "does not fit " + label;
          return false;
        }
        ARROW_RETURN_NOT_OK(out->Append(v));
        return true;
      });
}

// Any other target type: Arrow's cast of each value on its own.
arrow::Status ParseGeneric(const arrow::StringArray& text,
                           const std::shared_ptr<arrow::DataType>& type, arrow::ArrayBuilder* b,
                           std::vector<CellError>* errors) {
  const std::string label = TypeLabel(*type);
  return ParseEach(text, b, errors,
                   [&](std::string_view s, arrow::ArrayBuilder* out,
                       std::string* reason) -> arrow::Result<bool> {
                     auto one = arrow::MakeScalar(std::string(s));
                     auto cast = cp::Cast(arrow::Datum(one), type, cp::CastOptions::Safe(type));
                     if (!cast.ok()) {
                       *reason = "not a valid " + label;
                       return false;
                     }
                     ARROW_RETURN_NOT_OK(out->AppendScalar(*cast->scalar()));
                     return true;
                   });
}

// Value-by-value conversion of text.
arrow::Result<ConvertedColumn> ParseText(const arrow::StringArray& text,
                                         const std::shared_ptr<arrow::DataType>& type) {
  std::unique_ptr<arrow::ArrayBuilder> builder;
  ARROW_ASSIGN_OR_RAISE(builder, arrow::MakeBuilder(type));
  ConvertedColumn out;
  auto* errors = &out.errors;
  using arrow::Type;
  switch (type->id()) {
    case Type::INT8:
      ARROW_RETURN_NOT_OK(ParseIntegers<arrow::Int8Type>(text, *type, builder.get(), errors));
      break;
    case Type::INT16:
      ARROW_RETURN_NOT_OK(ParseIntegers<arrow::Int16Type>(text, *type, builder.get(), errors));
      break;
    case Type::INT32:
      ARROW_RETURN_NOT_OK(ParseIntegers<arrow::Int32Type>(text, *type, builder.get(), errors));
      break;
    case Type::INT64:
      ARROW_RETURN_NOT_OK(ParseIntegers<arrow::Int64Type>(text, *type, builder.get(), errors));
      break;
    case Type::UINT8:
      ARROW_RETURN_NOT_OK(ParseIntegers<arrow::UInt8Type>(text, *type, builder.get(), errors));
      break;
    case Type::UINT16:
      ARROW_RETURN_NOT_OK(ParseIntegers<arrow::UInt16Type>(text, *type, builder.get(), errors));
      break;
    case Type::UINT32:
      ARROW_RETURN_NOT_OK(ParseIntegers<arrow::UInt32Type>(text, *type, builder.get(), errors));
      break;
    case Type::UINT64:
      ARROW_RETURN_NOT_OK(ParseIntegers<arrow::UInt64Type>(text, *type, builder.get(), errors));
      break;
    case Type::FLOAT:
      ARROW_RETURN_NOT_OK(ParseFloats<arrow::FloatType>(text, *type, builder.get(), errors));
      break;
    case Type::DOUBLE:
      ARROW_RETURN_NOT_OK(ParseFloats<arrow::DoubleType>(text, *type, builder.get(), errors));
      break;
    case Type::BOOL: {
      auto* b = static_cast<arrow::BooleanBuilder*>(builder.get());
      ARROW_RETURN_NOT_OK(ParseEach(text, b, errors,
                                    [](std::string_view s, arrow::BooleanBuilder* o,
                                       std::string* reason) -> arrow::Result<bool> {
                                      bool v = false;
                                      if (!ParseBool(s, &v)) {
                                        *reason = "not a valid boolean";
                                        return false;
                                      }
                                      o->UnsafeAppend(v);
                                      return true;
                                    }));
      break;
    }
    case Type::DATE32: {
      auto* b = static_cast<arrow::Date32Builder*>(builder.get());
      ARROW_RETURN_NOT_OK(
          ParseEach(text, b, errors,
                    [](std::string_view s, arrow::Date32Builder* o,
                       std::string* reason) -> arrow::Result<bool> {
                      int32_t v = 0;
                      if (!arrow::internal::ParseValue<arrow::Date32Type>(s.data(), s.size(), &v)) {
                        *reason = "not a valid date";
                        return false;
                      }
                      o->UnsafeAppend(v);
                      return true;
                    }));
      break;
    }
    case Type::TIMESTAMP: {
      auto unit = static_cast<const arrow::TimestampType&>(*type).unit();
      auto* b = static_cast<arrow::TimestampBuilder*>(builder.get());
      ARROW_RETURN_NOT_OK(ParseEach(text, b, errors,
                                    [unit](std::string_view s, arrow::TimestampBuilder* o,
                                           std::string* reason) -> arrow::Result<bool> {
                                      int64_t v = 0;
                                      if (!ParseTimestamp(s, unit, &v)) {
                                        *reason = "not a valid timestamp";
                                        return false;
                                      }
                                      o->UnsafeAppend(v);
                                      return true;
                                    }));
      break;
    }
    case Type::DECIMAL128:
      ARROW_RETURN_NOT_OK((ParseDecimals<arrow::Decimal128Type, arrow::Decimal128>(
          text, *type, builder.get(), errors)));
      break;
    case Type::DECIMAL256:
      ARROW_RETURN_NOT_OK((ParseDecimals<arrow::Decimal256Type, arrow::Decimal256>(
          text, *type, builder.get(), errors)));
      break;
    default:
      ARROW_RETURN_NOT_OK(ParseGeneric(text, type, builder.get(), errors));
      break;
  }
  ARROW_ASSIGN_OR_RAISE(out.values, builder->Finish());
  return out;
}

arrow::Result<std::shared_ptr<arrow::StringArray>> AsUtf8(
    const std::shared_ptr<arrow::Array>& text) {
  if (text->type_id() == arrow::Type::STRING) {
    return std::static_pointer_cast<arrow::StringArray>(text);
  }
  ARROW_ASSIGN_OR_RAISE(auto casted, cp::Cast(*text, arrow::utf8()));
  return std::static_pointer_cast<arrow::StringArray>(casted);
}

// The same strings with null tokens made null (for the whole-column fast path).
arrow::Result<std::shared_ptr<arrow::StringArray>> NullTokensToNull(
    const std::shared_ptr<arrow::StringArray>& text) {
  bool any = false;
  for (int64_t i = 0; i < text->length() && !any; ++i) {
    any = text->IsValid(i) && IsNullToken(text->GetView(i));
  }
  if (!any) return text;
  const int64_t offset = text->offset();
  ARROW_ASSIGN_OR_RAISE(auto bitmap, arrow::AllocateEmptyBitmap(offset + text->length()));
  for (int64_t i = 0; i < text->length(); ++i) {
    if (text->IsValid(i) && !IsNullToken(text->GetView(i))) {
      arrow::bit_util::SetBit(bitmap->mutable_data(), offset + i);
    }
  }
  auto data = text->data()->Copy();
  data->buffers[0] = std::move(bitmap);
  data->null_count = arrow::kUnknownNullCount;
  return std::static_pointer_cast<arrow::StringArray>(arrow::MakeArray(data));
}

}  // namespace

std::string TypeLabel(const arrow::DataType& type) {
  switch (type.id()) {
    case arrow::Type::FLOAT:
      return "float";
    case arrow::Type::DOUBLE:
      return "double";
    case arrow::Type::BOOL:
      return "boolean";
    case arrow::Type::DATE32:
    case arrow::Type::DATE64:
      return "date";
    case arrow::Type::TIMESTAMP:
      return "timestamp";
    case arrow::Type::STRING:
    case arrow::Type::LARGE_STRING:
    case arrow::Type::STRING_VIEW:
      return "string";
    case arrow::Type::DECIMAL128:
    case arrow::Type::DECIMAL256: {
      const auto& d = static_cast<const arrow::DecimalType&>(type);
      return "decimal(" + std::to_string(d.precision()) + ", " + std::to_string(d.scale()) + ")";
    }
    default:
      return type.ToString();
  }
}

std::string Abbreviate(std::string_view text, size_t max_chars) {
  std::string out;
  if (text.size() <= max_chars) {
    out = std::string(text);
  } else {
    size_t n = max_chars;
    // Do not cut a UTF-8 sequence: back up over continuation bytes.
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
    out = std::string(text.substr(0, n)) + "...";
  }
  // Messages and the quarantine's text columns must stay valid UTF-8 (a JSON line
  // with broken encoding is quoted here).
  arrow::util::InitializeUTF8();
  if (!arrow::util::ValidateUTF8(out)) {
    for (auto& c : out) {
      if (static_cast<unsigned char>(c) >= 0x80) c = '?';
    }
  }
  return out;
}

arrow::Result<std::shared_ptr<arrow::Array>> ValuesAsText(
    const std::shared_ptr<arrow::Array>& input) {
  if (input->type_id() == arrow::Type::STRING) return input;
  auto casted = cp::Cast(*input, arrow::utf8());
  if (casted.ok()) return *casted;
  // Types Arrow cannot cast to text (structs, lists, ...): their printed form.
  arrow::StringBuilder builder;
  ARROW_RETURN_NOT_OK(builder.Reserve(input->length()));
  for (int64_t i = 0; i < input->length(); ++i) {
    if (input->IsNull(i)) {
      ARROW_RETURN_NOT_OK(builder.AppendNull());
      continue;
    }
    ARROW_ASSIGN_OR_RAISE(auto scalar, input->GetScalar(i));
    ARROW_RETURN_NOT_OK(builder.Append(scalar->ToString()));
  }
  return builder.Finish();
}

arrow::Result<ConvertedColumn> ConvertColumn(const std::shared_ptr<arrow::Array>& input,
                                             const std::shared_ptr<arrow::DataType>& type) {
  if (input->type()->Equals(*type)) return ConvertedColumn{input, {}};
  if (input->type_id() == arrow::Type::DICTIONARY) {
    const auto& value_type = static_cast<const arrow::DictionaryType&>(*input->type()).value_type();
    ARROW_ASSIGN_OR_RAISE(auto decoded, cp::Cast(*input, value_type));
    return ConvertColumn(decoded, type);
  }
  if (IsText(*input->type())) {
    if (IsText(*type)) {
      ARROW_ASSIGN_OR_RAISE(auto casted, cp::Cast(*input, type));
      return ConvertedColumn{casted, {}};
    }
    ARROW_ASSIGN_OR_RAISE(auto text, AsUtf8(input));
    ARROW_ASSIGN_OR_RAISE(auto nulled, NullTokensToNull(text));
    // Fast path: the whole column at once. Arrow's cast accepts a subset of what
    // ParseText accepts and reads it the same way, so falling back changes no value.
    auto fast = cp::Cast(*nulled, type, cp::CastOptions::Safe(type));
    if (fast.ok()) return ConvertedColumn{*fast, {}};
    return ParseText(*text, type);
  }
  auto fast = cp::Cast(*input, type, cp::CastOptions::Safe(type));
  if (fast.ok()) return ConvertedColumn{*fast, {}};
  // Value by value through the text form, so that only the values that do not fit
  // (an int64 over int8's range, a fraction for an integer) are errors.
  ARROW_ASSIGN_OR_RAISE(auto as_text, ValuesAsText(input));
  ARROW_ASSIGN_OR_RAISE(auto text, AsUtf8(as_text));
  return ParseText(*text, type);
}

std::shared_ptr<arrow::DataType> InferTextType(const arrow::Array& array) {
  if (!IsText(*array.type())) return InferredStorageType(array.type());
  auto utf8 = cp::Cast(array, arrow::utf8());
  if (!utf8.ok()) return arrow::utf8();
  const auto& text = static_cast<const arrow::StringArray&>(**utf8);
  bool is_int = true, is_double = true, is_bool = true, is_date = true, is_ts = true;
  bool any = false;
  for (int64_t i = 0; i < text.length(); ++i) {
    if (text.IsNull(i) || IsNullToken(text.GetView(i))) continue;
    any = true;
    std::string_view s = Trim(text.GetView(i));
    int64_t iv;
    double dv;
    int32_t date;
    is_int = is_int && arrow::internal::ParseValue<arrow::Int64Type>(s.data(), s.size(), &iv);
    is_double =
        is_double && arrow::internal::ParseValue<arrow::DoubleType>(s.data(), s.size(), &dv);
    is_bool = is_bool && (EqualsLower(s, "true") || EqualsLower(s, "false"));
    is_date = is_date && arrow::internal::ParseValue<arrow::Date32Type>(s.data(), s.size(), &date);
    is_ts = is_ts && ParseTimestamp(s, arrow::TimeUnit::MICRO, &iv);
    if (!(is_int || is_double || is_bool || is_date || is_ts)) return arrow::utf8();
  }
  if (!any) return arrow::utf8();
  if (is_int) return arrow::int64();
  if (is_double) return arrow::float64();
  if (is_bool) return arrow::boolean();
  if (is_date) return arrow::date32();
  if (is_ts) return arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
  return arrow::utf8();
}

std::shared_ptr<arrow::DataType> InferredStorageType(const std::shared_ptr<arrow::DataType>& type) {
  switch (type->id()) {
    case arrow::Type::TIMESTAMP:
      return arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
    case arrow::Type::DICTIONARY:
      return InferredStorageType(static_cast<const arrow::DictionaryType&>(*type).value_type());
    case arrow::Type::LARGE_STRING:
    case arrow::Type::STRING_VIEW:
    case arrow::Type::NA:
      return arrow::utf8();
    default:
      return type;
  }
}

std::shared_ptr<arrow::DataType> UnifyInferredTypes(const std::shared_ptr<arrow::DataType>& a,
                                                    const std::shared_ptr<arrow::DataType>& b) {
  if (a->Equals(*b)) return a;
  auto ida = a->id(), idb = b->id();
  auto is_float = [](arrow::Type::type id) {
    return id == arrow::Type::FLOAT || id == arrow::Type::DOUBLE;
  };
  if (IsIntegerType(ida) && IsIntegerType(idb)) return arrow::int64();
  if ((IsIntegerType(ida) || is_float(ida)) && (IsIntegerType(idb) || is_float(idb))) {
    return arrow::float64();
  }
  auto is_time = [](arrow::Type::type id) {
    return id == arrow::Type::DATE32 || id == arrow::Type::TIMESTAMP;
  };
  if (is_time(ida) && is_time(idb)) return arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
  return arrow::utf8();
}

}  // namespace stratalake::ingest
