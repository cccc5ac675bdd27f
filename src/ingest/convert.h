// Value conversion for ingestion: input columns (text from CSV/JSON, typed columns
// from Parquet) to the target column types, value by value, so that one value that
// does not fit rejects one row and never the whole file. Also the type inference used
// when neither a declared schema nor a table exists.
//
// Thread-safety: the functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>
#include <arrow/type_fwd.h>

namespace stratalake::ingest {

/// One value that did not convert to its column's type.
struct CellError {
  int64_t row = 0;     // index in the converted array
  std::string value;   // the value as text
  std::string reason;  // e.g. "not a valid int64", "out of range for int8"
};

struct ConvertedColumn {
  std::shared_ptr<arrow::Array> values;  // of the target type; failed values are null
  std::vector<CellError> errors;         // in ascending row order
};

/// Convert `input` to `type`. Text is parsed: integers and floats (range-checked,
/// never wrapped), booleans (true/false/1/0/yes/no, any case), dates (YYYY-MM-DD),
/// timestamps (ISO 8601 with 'T' or ' ', optional fraction, 'Z' / ±hh[:mm] / none =
/// UTC, or a bare date = midnight UTC; digits finer than the unit are truncated) and
/// decimals (rescaled without loss). Outside string columns, leading and trailing
/// spaces are ignored and an empty value or a null token (null, NULL, NA, N/A, n/a,
/// #N/A) is null; in string columns text is kept as it is. Typed input is cast
/// (safely); when a cast fails, the column is converted value by value through its
/// text so that only the values that do not fit are errors.
arrow::Result<ConvertedColumn> ConvertColumn(const std::shared_ptr<arrow::Array>& input,
                                             const std::shared_ptr<arrow::DataType>& type);

/// Every value of `input` as text (a utf8 array; nulls stay null).
arrow::Result<std::shared_ptr<arrow::Array>> ValuesAsText(
    const std::shared_ptr<arrow::Array>& input);

/// The narrowest of int64, double, bool (true/false), date32, timestamp[us, UTC] and
/// utf8 that every non-null text value of `text` (a string array) converts to.
std::shared_ptr<arrow::DataType> InferTextType(const arrow::Array& text);

/// The type a column read from a typed file (Parquet) gets when the schema is
/// inferred: timestamps become timestamp[us, UTC], dictionaries their value type,
/// other types stay.
std::shared_ptr<arrow::DataType> InferredStorageType(const std::shared_ptr<arrow::DataType>& type);

/// A type that holds both `a` and `b` (for a column inferred from several files):
/// integers widen to int64, integers and floats to double, dates and timestamps to
/// timestamp, anything else to utf8.
std::shared_ptr<arrow::DataType> UnifyInferredTypes(const std::shared_ptr<arrow::DataType>& a,
                                                    const std::shared_ptr<arrow::DataType>& b);

/// The type's name in messages: "int64", "double", "boolean", "date", "timestamp",
/// "decimal(10, 2)", ...
std::string TypeLabel(const arrow::DataType& type);

/// `text` cut to at most `max_chars` bytes (on a UTF-8 boundary), with "..." when
/// cut; text that is not valid UTF-8 has its non-ASCII bytes replaced by '?'.
std::string Abbreviate(std::string_view text, size_t max_chars = 60);

}  // namespace stratalake::ingest
