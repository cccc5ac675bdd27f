// How feature rows are stored in the online store (docs/online-store.md).
//
// Key:   <view name> 0x00 <join key values, in the view's entity order>
//        integer keys: 8 bytes big-endian with the sign bit flipped (the same
//        bytes for int8..int64, so the entity table's width does not matter);
//        string/binary keys: LEB128 length, then the bytes.
// Value: 16-byte version prefix (online.h), 1 format byte (1), 8-byte layout
//        fingerprint (little-endian), null bitmap (1 bit per feature, LSB
//        first), then each non-null feature in layout order:
//          bool/int8: 1 byte; int16: 2; int32, date32, float32: 4; int64,
//          timestamp (µs), float64: 8 — all little-endian; string/binary:
//          LEB128 length + bytes; decimal128: 16 bytes; list<T>: LEB128 count,
//          an item null bitmap, then the non-null items as above.
// Layout: the view's (feature name, type) list at write time, stored once per
//        fingerprint under the key 0x01 "layout" 0x00 <view> 0x00 <fingerprint>,
//        so values written before a schema change can still be read by name.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <arrow/result.h>
#include <arrow/type.h>

#include "common/time_text.h"

#include "stratalake/online.h"
#include "stratalake/registry.h"

namespace stratalake::online {

constexpr uint8_t kValueFormat = 1;
/// Bytes before the null bitmap: prefix + format + fingerprint.
constexpr size_t kValueHeaderSize = 16 + 1 + 8;

struct Layout {
  std::vector<std::string> names;
  std::vector<std::shared_ptr<arrow::DataType>> types;
  uint64_t fingerprint = 0;
  int Find(std::string_view name) const;  // -1 when absent
};

/// The layout of a view's features (in definition order).
Layout MakeLayout(const registry::FeatureView& view);
/// Layout from names and types (computes the fingerprint).
Layout MakeLayout(std::vector<std::string> names,
                  std::vector<std::shared_ptr<arrow::DataType>> types);
std::string LayoutKey(std::string_view view, uint64_t fingerprint);
std::string SerializeLayout(const Layout& layout);
arrow::Result<Layout> ParseLayout(std::string_view text);

/// "<view>\0": every key of the view starts with it.
std::string ViewKeyPrefix(std::string_view view);

/// Appends one join key value of `type` (the entity's declared join key type).
/// Errors say which key and what was expected.
arrow::Status AppendKey(const arrow::DataType& type, const KeyScalar& value, std::string* out);
/// Appends row `row` of `column` (an integer, string or binary array) as a key
/// value. Null keys: returns false (no key can match).
arrow::Result<bool> AppendKeyFromArray(const arrow::Array& column, int64_t row, std::string* out);

/// Encodes rows of feature columns (one array per layout entry, already of
/// the layout's types) into values.
class RowEncoder {
 public:
  explicit RowEncoder(const Layout& layout) : layout_(layout) {}
  /// Checks that every column has a supported type equal to the layout's.
  arrow::Status Validate(const std::vector<std::shared_ptr<arrow::Array>>& columns) const;
  void Encode(const std::vector<std::shared_ptr<arrow::Array>>& columns, int64_t row,
              int64_t event_us, std::optional<int64_t> created_us, std::string* out) const;

 private:
  const Layout& layout_;
};

/// Appends row `row` (not null) of `array` as one encoded field, as Encode does
/// (a type RowEncoder::Validate accepts).
void AppendFieldValue(const arrow::Array& array, int64_t row, std::string* out);

/// A stored value split into its parts: for each layout entry, its encoded
/// bytes (empty view + null flag when null).
struct DecodedValue {
  int64_t event_us = 0;
  uint64_t fingerprint = 0;
  std::vector<std::string_view> fields;
  std::vector<bool> null;
};

/// Splits `value` according to `layout` (whose fingerprint must match the
/// value's; see ValueFingerprint). Corrupt values are an error, never a crash.
arrow::Status DecodeValue(std::string_view value, const Layout& layout, DecodedValue* out);

/// Checks repairs before a store applies any: every bound is a version prefix
/// and every replacement is empty or starts with one.
arrow::Status CheckRepairs(std::span<const KeyRepair> repairs);
/// The layout fingerprint a value was written with.
arrow::Result<uint64_t> ValueFingerprint(std::string_view value);

/// Appends one encoded field to a builder of `type` (null when `null`).
arrow::Status AppendFieldToBuilder(const arrow::DataType& type, std::string_view bytes, bool null,
                                   arrow::ArrayBuilder* builder);

/// WriteToOnlineStore's encoding without the write: appends the view's layout
/// key (first) and one key/value per row of `data` to `writes`, with the same
/// column rules, conversions and errors.
arrow::Status EncodeOnlineWrite(const registry::RegistryState& state, const std::string& view,
                                const std::shared_ptr<arrow::Table>& data,
                                std::vector<KeyValue>* writes);

/// The key/value that records `view`'s layout (version prefix 0), written
/// before values encoded with it (Materialize, WriteToOnlineStore, ingests).
KeyValue LayoutWrite(const registry::FeatureView& view);

/// Encodes the rows of `data` — columns in the order: `num_keys` join keys,
/// the event time, the created time (when `has_created`), then the layout's
/// features — whose event time lies in [lo_us, hi_us] into key/value pairs
/// written to (*out)[*count], (*out)[*count + 1], ..., advancing *count. Pairs
/// already in `out` at those positions are overwritten in place, so a buffer
/// reused across calls keeps its strings' memory (no allocations once warm);
/// `out` only grows. Rows with a null key or time are skipped; features are
/// cast (safely) to the layout's types.
arrow::Status EncodeViewRows(const registry::FeatureView& view, const registry::Source& src,
                             const Layout& layout, size_t num_keys, bool has_created,
                             const arrow::Table& data, int64_t lo_us, int64_t hi_us,
                             std::vector<KeyValue>* out, size_t* count);

// ---- reading encoded fields ----------------------------------------------------------
// For code that renders stored values without the codec's other parts (the Feast
// wire format in server/feast_wire.cc; the fuzzer links it without this library).

/// A little-endian fixed-width value at `p` (x86-64 / arm64: a plain load).
template <typename T>
inline T ReadLE(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

/// Reads a LEB128 number from the front of `in` (advancing it); false if truncated.
inline bool ReadVarint(std::string_view* in, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift <= 63 && !in->empty(); shift += 7) {
    auto b = static_cast<unsigned char>(in->front());
    in->remove_prefix(1);
    result |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = result;
      return true;
    }
  }
  return false;
}

/// Fixed width of a scalar type's encoding; 0 = variable (string/binary/list); -1 = unsupported.
inline int FixedWidth(const arrow::DataType& t) {
  switch (t.id()) {
    case arrow::Type::BOOL:
    case arrow::Type::INT8:
      return 1;
    case arrow::Type::INT16:
      return 2;
    case arrow::Type::INT32:
    case arrow::Type::DATE32:
    case arrow::Type::FLOAT:
      return 4;
    case arrow::Type::INT64:
    case arrow::Type::TIMESTAMP:
    case arrow::Type::DOUBLE:
      return 8;
    case arrow::Type::DECIMAL128:
      return 16;
    case arrow::Type::STRING:
    case arrow::Type::BINARY:
    case arrow::Type::LARGE_STRING:
    case arrow::Type::LARGE_BINARY:
      return 0;
    case arrow::Type::LIST: {
      int inner = FixedWidth(*static_cast<const arrow::ListType&>(t).value_type());
      return inner < 0 || t.field(0)->type()->id() == arrow::Type::LIST ? -1 : 0;
    }
    default:
      return -1;
  }
}

/// Length of one encoded scalar of type `t` at the start of `in`; -1 if truncated.
inline int64_t ScalarLength(const arrow::DataType& t, std::string_view in) {
  int w = FixedWidth(t);
  if (w > 0) return static_cast<int64_t>(in.size()) >= w ? w : -1;
  std::string_view p = in;
  uint64_t len = 0;
  if (!ReadVarint(&p, &len) || len > p.size()) return -1;
  return static_cast<int64_t>(in.size() - p.size() + len);
}

/// The bytes of an encoded string/binary field (after its LEB128 length).
inline std::string_view ReadBytesField(std::string_view field) {
  uint64_t len = 0;
  ReadVarint(&field, &len);
  return field.substr(0, len);
}

}  // namespace stratalake::online
