#include "retrieval/asof_keys.h"

#include <cstring>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/util/hashing.h>

#include "retrieval/asof_memory.h"
#include "stratalake/status.h"

namespace stratalake::retrieval::asof {

namespace {

constexpr int64_t kMsPerDay = 86400000;

const arrow::DataType& ValueType(const arrow::DataType& type) {
  if (type.id() == arrow::Type::DICTIONARY) {
    return *static_cast<const arrow::DictionaryType&>(type).value_type();
  }
  return type;
}

// Dictionary keys are decoded and view types become their large counterparts, so
// the normalizing loops only see plain integers, dates and offset-based binaries.
arrow::Result<std::shared_ptr<arrow::ArrayData>> DecodeKeyColumn(
    const std::shared_ptr<arrow::ArrayData>& column) {
  std::shared_ptr<arrow::DataType> target;
  switch (column->type->id()) {
    case arrow::Type::DICTIONARY: {
      target = static_cast<const arrow::DictionaryType&>(*column->type).value_type();
      if (target->id() == arrow::Type::STRING_VIEW) target = arrow::large_utf8();
      if (target->id() == arrow::Type::BINARY_VIEW) target = arrow::large_binary();
      break;
    }
    case arrow::Type::STRING_VIEW:
      target = arrow::large_utf8();
      break;
    case arrow::Type::BINARY_VIEW:
      target = arrow::large_binary();
      break;
    default:
      return column;
  }
  ARROW_ASSIGN_OR_RAISE(auto cast, arrow::compute::Cast(*arrow::MakeArray(column), target));
  return cast->data();
}

template <typename T, int64_t kScale>
void ReadIntegers(const arrow::ArrayData& a, int64_t* out) {
  const T* v = a.GetValues<T>(1);
  for (int64_t i = 0; i < a.length; ++i) out[i] = static_cast<int64_t>(v[i]) * kScale;
}

// Integer and date key values as int64 (dates in milliseconds; uint64 by bit pattern).
void KeyValuesAsInt64(const arrow::ArrayData& a, int64_t* out) {
  switch (a.type->id()) {
    case arrow::Type::INT8:
      return ReadIntegers<int8_t, 1>(a, out);
    case arrow::Type::INT16:
      return ReadIntegers<int16_t, 1>(a, out);
    case arrow::Type::INT32:
      return ReadIntegers<int32_t, 1>(a, out);
    case arrow::Type::INT64:
      return ReadIntegers<int64_t, 1>(a, out);
    case arrow::Type::UINT8:
      return ReadIntegers<uint8_t, 1>(a, out);
    case arrow::Type::UINT16:
      return ReadIntegers<uint16_t, 1>(a, out);
    case arrow::Type::UINT32:
      return ReadIntegers<uint32_t, 1>(a, out);
    case arrow::Type::UINT64:
      return ReadIntegers<uint64_t, 1>(a, out);
    case arrow::Type::DATE32:
      return ReadIntegers<int32_t, kMsPerDay>(a, out);
    case arrow::Type::DATE64:
      return ReadIntegers<int64_t, 1>(a, out);
    default:
      break;
  }
}

// One int64 key column: reused as it is when it already is one.
arrow::Result<std::shared_ptr<arrow::ArrayData>> NormalizeIntegerKey(
    const std::shared_ptr<arrow::ArrayData>& column, const KeyColumnRule& rule) {
  const int64_t n = column->length;
  if (column->type->id() == arrow::Type::INT64 && !rule.reject_negative) return column;
  ARROW_ASSIGN_OR_RAISE(auto values, AllocateOutput(n * sizeof(int64_t)));
  auto* out = reinterpret_cast<int64_t*>(values->mutable_data());
  KeyValuesAsInt64(*column, out);
  const uint8_t* in_valid = column->GetValues<uint8_t>(0, 0);
  if (in_valid == nullptr && !rule.reject_negative) {
    return arrow::ArrayData::Make(arrow::int64(), n, {nullptr, std::move(values)}, 0);
  }
  ARROW_ASSIGN_OR_RAISE(auto bitmap, arrow::AllocateEmptyBitmap(n));
  uint8_t* bits = bitmap->mutable_data();
  int64_t nulls = 0;
  for (int64_t i = 0; i < n; ++i) {
    bool valid = KeyValid(in_valid, column->offset, i) && !(rule.reject_negative && out[i] < 0);
    if (valid) {
      bits[i >> 3] |= static_cast<uint8_t>(1u << (i & 7));
    } else {
      out[i] = 0;
      ++nulls;
    }
  }
  return arrow::ArrayData::Make(arrow::int64(), n, {std::move(bitmap), std::move(values)}, nulls);
}

// Several key columns as one large_binary: 8 little-endian bytes per integer or
// date, a 4-byte length and the bytes per bytes column. The encoding is
// prefix-free given the column classes, so equal encodings mean equal keys.
arrow::Result<std::shared_ptr<arrow::ArrayData>> EncodeCompositeKey(
    const std::vector<std::shared_ptr<arrow::ArrayData>>& columns,
    const std::vector<KeyColumnRule>& rules) {
  const int64_t n = columns.empty() ? 0 : columns[0]->length;
  std::vector<int64_t> offsets(n + 1, 0);  // lengths first, then offsets
  std::vector<uint8_t> valid(n, 1);
  std::vector<std::vector<int64_t>> ints(columns.size());
  for (size_t c = 0; c < columns.size(); ++c) {
    const auto& col = *columns[c];
    const uint8_t* in_valid = col.GetValues<uint8_t>(0, 0);
    for (int64_t i = 0; i < n; ++i) {
      if (!KeyValid(in_valid, col.offset, i)) valid[i] = 0;
    }
    if (rules[c].key_class == KeyClass::kBytes) {
      BinaryColumn bin = BinaryColumn::Of(col);
      for (int64_t i = 0; i < n; ++i) offsets[i + 1] += 4 + bin.Length(i);
    } else {
      ints[c].resize(n);
      KeyValuesAsInt64(col, ints[c].data());
      if (rules[c].reject_negative) {
        for (int64_t i = 0; i < n; ++i) {
          if (ints[c][i] < 0) valid[i] = 0;
        }
      }
      for (int64_t i = 0; i < n; ++i) offsets[i + 1] += 8;
    }
  }
  int64_t nulls = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!valid[i]) {
      offsets[i + 1] = 0;
      ++nulls;
    }
    offsets[i + 1] += offsets[i];
  }
  ARROW_ASSIGN_OR_RAISE(auto data, AllocateOutput(offsets[n]));
  uint8_t* out = data->mutable_data();
  std::vector<int64_t> cursor(offsets.begin(), offsets.end() - 1);
  for (size_t c = 0; c < columns.size(); ++c) {
    if (rules[c].key_class == KeyClass::kBytes) {
      BinaryColumn bin = BinaryColumn::Of(*columns[c]);
      for (int64_t i = 0; i < n; ++i) {
        if (!valid[i]) continue;
        std::string_view s = bin.Get(i);
        auto len = static_cast<uint32_t>(s.size());
        std::memcpy(out + cursor[i], &len, 4);
        if (!s.empty()) std::memcpy(out + cursor[i] + 4, s.data(), s.size());
        cursor[i] += 4 + static_cast<int64_t>(s.size());
      }
    } else {
      const int64_t* v = ints[c].data();
      for (int64_t i = 0; i < n; ++i) {
        if (!valid[i]) continue;
        std::memcpy(out + cursor[i], &v[i], 8);
        cursor[i] += 8;
      }
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto offsets_buf, AllocateOutput((n + 1) * sizeof(int64_t)));
  std::memcpy(offsets_buf->mutable_data(), offsets.data(), (n + 1) * sizeof(int64_t));
  std::shared_ptr<arrow::Buffer> bitmap;
  if (nulls > 0) {
    ARROW_ASSIGN_OR_RAISE(bitmap, arrow::AllocateEmptyBitmap(n));
    uint8_t* bits = bitmap->mutable_data();
    for (int64_t i = 0; i < n; ++i) {
      if (valid[i]) bits[i >> 3] |= static_cast<uint8_t>(1u << (i & 7));
    }
  }
  return arrow::ArrayData::Make(arrow::large_binary(), n,
                                {std::move(bitmap), std::move(offsets_buf), std::move(data)},
                                nulls);
}

template <int64_t kMul>
void ScaleUp(const int64_t* v, int64_t n, int64_t* out) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max() / kMul;
  constexpr int64_t kMin = (kNullTime + 1) / kMul;
  for (int64_t i = 0; i < n; ++i) {
    int64_t x = v[i];
    out[i] = x > kMax ? std::numeric_limits<int64_t>::max() : (x < kMin ? kNullTime + 1 : x * kMul);
  }
}

}  // namespace

arrow::Result<KeyClass> KeyClassOf(const arrow::DataType& type, const std::string& what) {
  switch (ValueType(type).id()) {
    case arrow::Type::INT8:
    case arrow::Type::INT16:
    case arrow::Type::INT32:
    case arrow::Type::INT64:
    case arrow::Type::UINT8:
    case arrow::Type::UINT16:
    case arrow::Type::UINT32:
    case arrow::Type::UINT64:
      return KeyClass::kInteger;
    case arrow::Type::DATE32:
    case arrow::Type::DATE64:
      return KeyClass::kDate;
    case arrow::Type::STRING:
    case arrow::Type::LARGE_STRING:
    case arrow::Type::STRING_VIEW:
    case arrow::Type::BINARY:
    case arrow::Type::LARGE_BINARY:
    case arrow::Type::BINARY_VIEW:
      return KeyClass::kBytes;
    default:
      return MakeError(arrow::StatusCode::TypeError, ErrorKind::kSchemaMismatch,
                       what + " has type " + type.ToString() +
                           "; key columns must be integers, strings, binary or dates");
  }
}

BinaryColumn BinaryColumn::Of(const arrow::ArrayData& array) {
  BinaryColumn col;
  static const uint8_t kEmpty[1] = {0};
  col.data = array.buffers[2] && array.buffers[2]->data() ? array.buffers[2]->data() : kEmpty;
  if (array.type->id() == arrow::Type::LARGE_STRING ||
      array.type->id() == arrow::Type::LARGE_BINARY) {
    col.offsets64 = array.GetValues<int64_t>(1);
  } else {
    col.offsets32 = array.GetValues<int32_t>(1);
  }
  return col;
}

bool IsTimeType(const arrow::DataType& type) {
  return type.id() == arrow::Type::TIMESTAMP || type.id() == arrow::Type::DATE32 ||
         type.id() == arrow::Type::DATE64;
}

bool UsesBytesLayout(const std::vector<KeyColumnRule>& rules) {
  return rules.size() != 1 || rules[0].key_class == KeyClass::kBytes;
}

arrow::Result<std::shared_ptr<arrow::ArrayData>> NormalizeKeys(
    const std::vector<std::shared_ptr<arrow::ArrayData>>& columns,
    const std::vector<KeyColumnRule>& rules) {
  std::vector<std::shared_ptr<arrow::ArrayData>> decoded(columns.size());
  for (size_t c = 0; c < columns.size(); ++c) {
    ARROW_ASSIGN_OR_RAISE(decoded[c], DecodeKeyColumn(columns[c]));
  }
  if (!UsesBytesLayout(rules)) return NormalizeIntegerKey(decoded[0], rules[0]);
  if (decoded.size() == 1) return decoded[0];
  return EncodeCompositeKey(decoded, rules);
}

std::shared_ptr<arrow::DataType> NormalizedKeyType(
    const std::vector<std::shared_ptr<arrow::DataType>>& types,
    const std::vector<KeyColumnRule>& rules) {
  if (!UsesBytesLayout(rules)) return arrow::int64();
  if (types.size() != 1) return arrow::large_binary();
  std::shared_ptr<arrow::DataType> t = types[0];
  if (t->id() == arrow::Type::DICTIONARY) {
    t = static_cast<const arrow::DictionaryType&>(*t).value_type();
  }
  if (t->id() == arrow::Type::STRING_VIEW) return arrow::large_utf8();
  if (t->id() == arrow::Type::BINARY_VIEW) return arrow::large_binary();
  return t;
}

void HashKeys(const arrow::ArrayData& keys, uint64_t* out) {
  const int64_t n = keys.length;
  if (keys.type->id() == arrow::Type::INT64) {
    const int64_t* v = keys.GetValues<int64_t>(1);
    for (int64_t i = 0; i < n; ++i) out[i] = Mix64(static_cast<uint64_t>(v[i]));
    return;
  }
  BinaryColumn bin = BinaryColumn::Of(keys);
  for (int64_t i = 0; i < n; ++i) {
    std::string_view s = bin.Get(i);
    out[i] = Mix64(arrow::internal::ComputeStringHash<0>(s.data(), static_cast<int64_t>(s.size())));
  }
}

void TimesToMicros(const arrow::ArrayData& times, int64_t* out) {
  const int64_t n = times.length;
  const int64_t* v64 = times.GetValues<int64_t>(1);
  switch (times.type->id()) {
    case arrow::Type::TIMESTAMP:
      switch (static_cast<const arrow::TimestampType&>(*times.type).unit()) {
        case arrow::TimeUnit::SECOND:
          ScaleUp<1000000>(v64, n, out);
          break;
        case arrow::TimeUnit::MILLI:
          ScaleUp<1000>(v64, n, out);
          break;
        case arrow::TimeUnit::MICRO:
          ScaleUp<1>(v64, n, out);
          break;
        case arrow::TimeUnit::NANO:
          for (int64_t i = 0; i < n; ++i) {
            int64_t q = v64[i] / 1000;
            out[i] = q - (v64[i] % 1000 < 0 ? 1 : 0);
          }
          break;
      }
      break;
    case arrow::Type::DATE32: {
      const int32_t* v32 = times.GetValues<int32_t>(1);
      constexpr int64_t kUsPerDay = 86400000000LL;
      constexpr int64_t kMaxDays = std::numeric_limits<int64_t>::max() / kUsPerDay;
      for (int64_t i = 0; i < n; ++i) {
        int64_t d = v32[i];
        out[i] = d > kMaxDays ? std::numeric_limits<int64_t>::max()
                              : (d < -kMaxDays ? kNullTime + 1 : d * kUsPerDay);
      }
      break;
    }
    case arrow::Type::DATE64:
      ScaleUp<1000>(v64, n, out);
      break;
    default:
      for (int64_t i = 0; i < n; ++i) out[i] = kNullTime;
      return;
  }
  const uint8_t* validity = times.GetValues<uint8_t>(0, 0);
  if (validity != nullptr && times.MayHaveNulls()) {
    for (int64_t i = 0; i < n; ++i) {
      if (!KeyValid(validity, times.offset, i)) out[i] = kNullTime;
    }
  }
}

}  // namespace stratalake::retrieval::asof
