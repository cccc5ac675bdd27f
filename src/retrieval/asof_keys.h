// Key and time normalization for the as-of join: any supported key columns become
// one comparable column plus a 64-bit hash per row, and any timestamp or date
// column becomes int64 microseconds UTC. Internal to src/retrieval.
//
// Thread-safety: the functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

namespace stratalake::retrieval::asof {

/// A time that never matches: null times (and nothing else) take this value;
/// converted times are clamped to be greater.
inline constexpr int64_t kNullTime = std::numeric_limits<int64_t>::min();

/// What a key column is compared as. Columns of the same class are comparable
/// whatever their width or encoding; different classes never are.
enum class KeyClass {
  kInteger,  // int8..int64, uint8..uint64: compared by numeric value
  kDate,     // date32, date64: compared as days/milliseconds since the epoch
  kBytes,    // string, large_string, string_view, binary, large_binary, binary_view
};

/// The class of a supported key type (dictionary types by their value type), or
/// an error naming `what` (e.g. "right key column 'id'").
arrow::Result<KeyClass> KeyClassOf(const arrow::DataType& type, const std::string& what);

/// Whether `type` is a timestamp (any unit, with or without time zone), date32 or date64.
bool IsTimeType(const arrow::DataType& type);

/// How one key column is normalized. `reject_negative` / `reject_above_int64`
/// make values that cannot equal any value of the other side's column null
/// (a signed column against uint64 and vice versa): they would otherwise alias
/// through the shared int64 representation.
struct KeyColumnRule {
  KeyClass key_class = KeyClass::kInteger;
  bool reject_negative = false;
  bool reject_above_int64 = false;
};

/// Whether keys with these rules normalize to bytes (true) or to int64 (false:
/// exactly one integer or date column).
bool UsesBytesLayout(const std::vector<KeyColumnRule>& rules);

/// The key columns of one batch as one column: int64 (one integer/date column;
/// dates as milliseconds) or a binary-like column (one bytes column as it is;
/// several columns encoded as large_binary: 8 little-endian bytes per integer
/// or date, a 4-byte length and the bytes per bytes column). A row with a null
/// (or rejected) key value is null.
arrow::Result<std::shared_ptr<arrow::ArrayData>> NormalizeKeys(
    const std::vector<std::shared_ptr<arrow::ArrayData>>& columns,
    const std::vector<KeyColumnRule>& rules);

/// The type NormalizeKeys returns for right-hand key columns of these types.
std::shared_ptr<arrow::DataType> NormalizedKeyType(
    const std::vector<std::shared_ptr<arrow::DataType>>& types,
    const std::vector<KeyColumnRule>& rules);

/// A 64-bit hash of every row of a normalized key column (int64 or binary-like)
/// into `out`. Values for null rows are unspecified. For int64 keys the hash is
/// a bijection, so equal hashes mean equal keys.
void HashKeys(const arrow::ArrayData& keys, uint64_t* out);

/// One row of a normalized key column is valid (not null).
inline bool KeyValid(const uint8_t* validity, int64_t offset, int64_t i) {
  return validity == nullptr || ((validity[(offset + i) >> 3] >> ((offset + i) & 7)) & 1);
}

/// Raw access to a string/binary column (32- or 64-bit offsets); no views.
struct BinaryColumn {
  const uint8_t* data = nullptr;
  const int32_t* offsets32 = nullptr;  // with the array offset applied
  const int64_t* offsets64 = nullptr;  // (exactly one of the two is set)

  static BinaryColumn Of(const arrow::ArrayData& array);

  int64_t Length(int64_t i) const {
    return offsets32 ? offsets32[i + 1] - offsets32[i] : offsets64[i + 1] - offsets64[i];
  }
  std::string_view Get(int64_t i) const {
    int64_t begin = offsets32 ? offsets32[i] : offsets64[i];
    return {reinterpret_cast<const char*>(data) + begin, static_cast<size_t>(Length(i))};
  }
};

/// The murmur3 64-bit finalizer: a bijection with good avalanche.
inline uint64_t Mix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

/// Converts a timestamp (any unit; time zones are irrelevant to the instant),
/// date32 or date64 column to microseconds since the epoch UTC into `out`.
/// Nanoseconds are floored to microseconds; values beyond the int64 microsecond
/// range saturate; nulls become kNullTime.
void TimesToMicros(const arrow::ArrayData& times, int64_t* out);

}  // namespace stratalake::retrieval::asof
