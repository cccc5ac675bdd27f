#include "online/codec.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>

#include <arrow/api.h>
#include <arrow/util/decimal.h>

#include "common/time_units.h"
#include "stratalake/online.h"

namespace stratalake::online {

namespace {

uint64_t Flip(int64_t v) { return static_cast<uint64_t>(v) ^ (uint64_t{1} << 63); }

void AppendBigEndian(uint64_t v, std::string* out) {
  char b[8];
  for (int i = 7; i >= 0; --i) {
    b[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  out->append(b, 8);
}

uint64_t ReadBigEndian(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

template <typename T>
void AppendLE(T v, std::string* out) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));  // x86-64 / arm64: little-endian
}

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

uint64_t Fnv1a(std::string_view s, uint64_t h = 1469598103934665603ULL) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

// Appends element `i` of a non-list array (valid at i).
void AppendScalar(const arrow::Array& a, int64_t i, std::string* out) {
  switch (a.type_id()) {
    case arrow::Type::BOOL:
      out->push_back(static_cast<const arrow::BooleanArray&>(a).Value(i) ? 1 : 0);
      break;
    case arrow::Type::INT8:
      AppendLE(static_cast<const arrow::Int8Array&>(a).Value(i), out);
      break;
    case arrow::Type::INT16:
      AppendLE(static_cast<const arrow::Int16Array&>(a).Value(i), out);
      break;
    case arrow::Type::INT32:
      AppendLE(static_cast<const arrow::Int32Array&>(a).Value(i), out);
      break;
    case arrow::Type::DATE32:
      AppendLE(static_cast<const arrow::Date32Array&>(a).Value(i), out);
      break;
    case arrow::Type::FLOAT:
      AppendLE(static_cast<const arrow::FloatArray&>(a).Value(i), out);
      break;
    case arrow::Type::INT64:
      AppendLE(static_cast<const arrow::Int64Array&>(a).Value(i), out);
      break;
    case arrow::Type::DOUBLE:
      AppendLE(static_cast<const arrow::DoubleArray&>(a).Value(i), out);
      break;
    case arrow::Type::TIMESTAMP: {
      const auto& t = static_cast<const arrow::TimestampType&>(*a.type());
      AppendLE(UnitToMicros(t.unit(), static_cast<const arrow::TimestampArray&>(a).Value(i)), out);
      break;
    }
    case arrow::Type::DECIMAL128:
      out->append(
          reinterpret_cast<const char*>(static_cast<const arrow::Decimal128Array&>(a).GetValue(i)),
          16);
      break;
    case arrow::Type::STRING:
    case arrow::Type::BINARY: {
      auto v = static_cast<const arrow::BinaryArray&>(a).GetView(i);
      AppendVarint(v.size(), out);
      out->append(v.data(), v.size());
      break;
    }
    case arrow::Type::LARGE_STRING:
    case arrow::Type::LARGE_BINARY: {
      auto v = static_cast<const arrow::LargeBinaryArray&>(a).GetView(i);
      AppendVarint(v.size(), out);
      out->append(v.data(), v.size());
      break;
    }
    default:
      break;  // rejected by Validate
  }
}

void AppendValue(const arrow::Array& a, int64_t i, std::string* out) {
  if (a.type_id() != arrow::Type::LIST) {
    AppendScalar(a, i, out);
    return;
  }
  const auto& list = static_cast<const arrow::ListArray&>(a);
  int64_t start = list.value_offset(i);
  int64_t n = list.value_length(i);
  const arrow::Array& items = *list.values();
  AppendVarint(static_cast<uint64_t>(n), out);
  size_t bitmap_at = out->size();
  out->append(static_cast<size_t>((n + 7) / 8), '\0');
  for (int64_t k = 0; k < n; ++k) {
    if (items.IsNull(start + k)) {
      (*out)[bitmap_at + k / 8] = static_cast<char>((*out)[bitmap_at + k / 8] | (1 << (k % 8)));
    } else {
      AppendScalar(items, start + k, out);
    }
  }
}

int64_t FieldLength(const arrow::DataType& t, std::string_view in) {
  if (t.id() != arrow::Type::LIST) return ScalarLength(t, in);
  const arrow::DataType& item = *static_cast<const arrow::ListType&>(t).value_type();
  std::string_view p = in;
  uint64_t n = 0;
  if (!ReadVarint(&p, &n) || (n + 7) / 8 > p.size()) return -1;
  std::string_view bitmap = p.substr(0, (n + 7) / 8);
  p.remove_prefix(bitmap.size());
  for (uint64_t k = 0; k < n; ++k) {
    if (static_cast<unsigned char>(bitmap[k / 8]) & (1 << (k % 8))) continue;
    int64_t l = ScalarLength(item, p);
    if (l < 0) return -1;
    p.remove_prefix(static_cast<size_t>(l));
  }
  return static_cast<int64_t>(in.size() - p.size());
}

}  // namespace

void AppendVersionPrefix(int64_t event_us, std::optional<int64_t> created_us, std::string* out) {
  AppendBigEndian(Flip(event_us), out);
  AppendBigEndian(created_us ? Flip(*created_us) : 0, out);
}

arrow::Status CheckRepairs(std::span<const KeyRepair> repairs) {
  for (const auto& r : repairs) {
    if (r.bound.size() != kVersionPrefixSize ||
        (!r.value.empty() && r.value.size() < kVersionPrefixSize)) {
      return arrow::Status::Invalid("online store: a repair of a key of ", r.key.size(),
                                    " bytes has a ", r.bound.size(), "-byte bound and a ",
                                    r.value.size(), "-byte value (the bound must be a ",
                                    kVersionPrefixSize,
                                    "-byte version prefix, the value empty or at least that "
                                    "long); nothing was changed");
    }
  }
  return arrow::Status::OK();
}

int64_t PrefixEventMicros(std::string_view value) {
  return static_cast<int64_t>(ReadBigEndian(value.data()) ^ (uint64_t{1} << 63));
}

int Layout::Find(std::string_view name) const {
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return static_cast<int>(i);
  }
  return -1;
}

Layout MakeLayout(std::vector<std::string> names,
                  std::vector<std::shared_ptr<arrow::DataType>> types) {
  Layout l;
  l.names = std::move(names);
  l.types = std::move(types);
  l.fingerprint = Fnv1a(SerializeLayout(l));
  return l;
}

Layout MakeLayout(const registry::FeatureView& view) {
  std::vector<std::string> names;
  std::vector<std::shared_ptr<arrow::DataType>> types;
  for (const auto& f : view.features) {
    names.push_back(f.name);
    types.push_back(f.type);
  }
  return MakeLayout(std::move(names), std::move(types));
}

std::string SerializeLayout(const Layout& layout) {
  std::string out;
  for (size_t i = 0; i < layout.names.size(); ++i) {
    out += layout.names[i];
    out += ' ';
    out += registry::FeatureTypeName(*layout.types[i]);
    out += '\n';
  }
  return out;
}

arrow::Result<Layout> ParseLayout(std::string_view text) {
  std::vector<std::string> names;
  std::vector<std::shared_ptr<arrow::DataType>> types;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) {
      return arrow::Status::Invalid("online store: corrupt layout line '", line, "'");
    }
    names.emplace_back(line.substr(0, sp));
    ARROW_ASSIGN_OR_RAISE(auto t, registry::ParseFeatureType(std::string(line.substr(sp + 1))));
    types.push_back(t);
  }
  return MakeLayout(std::move(names), std::move(types));
}

std::string LayoutKey(std::string_view view, uint64_t fingerprint) {
  std::string k("\x01layout", 7);
  k.push_back('\0');
  k.append(view);
  k.push_back('\0');
  AppendBigEndian(fingerprint, &k);
  return k;
}

std::string ViewKeyPrefix(std::string_view view) {
  std::string k(view);
  k.push_back('\0');
  return k;
}

arrow::Status AppendKey(const arrow::DataType& type, const KeyScalar& value, std::string* out) {
  bool is_int = arrow::is_integer(type.id());
  bool is_str = type.id() == arrow::Type::STRING || type.id() == arrow::Type::LARGE_STRING ||
                type.id() == arrow::Type::BINARY || type.id() == arrow::Type::LARGE_BINARY;
  if (is_int) {
    if (const auto* v = std::get_if<int64_t>(&value)) {
      AppendBigEndian(Flip(*v), out);
      return arrow::Status::OK();
    }
  } else if (is_str) {
    if (const auto* v = std::get_if<std::string>(&value)) {
      AppendVarint(v->size(), out);
      out->append(*v);
      return arrow::Status::OK();
    }
  } else {
    return arrow::Status::NotImplemented("join keys of type ", type.ToString(),
                                         " are not supported online (use an integer or string)");
  }
  const char* got = std::holds_alternative<std::monostate>(value) ? "null"
                    : std::holds_alternative<int64_t>(value)      ? "an integer"
                                                                  : "a string";
  return arrow::Status::TypeError("expected ", is_int ? "an integer" : "a string", " (",
                                  registry::FeatureTypeName(type), "), got ", got);
}

arrow::Result<bool> AppendKeyFromArray(const arrow::Array& column, int64_t row, std::string* out) {
  if (column.IsNull(row)) return false;
  switch (column.type_id()) {
    case arrow::Type::INT8:
      AppendBigEndian(Flip(static_cast<const arrow::Int8Array&>(column).Value(row)), out);
      return true;
    case arrow::Type::INT16:
      AppendBigEndian(Flip(static_cast<const arrow::Int16Array&>(column).Value(row)), out);
      return true;
    case arrow::Type::INT32:
      AppendBigEndian(Flip(static_cast<const arrow::Int32Array&>(column).Value(row)), out);
      return true;
    case arrow::Type::INT64:
      AppendBigEndian(Flip(static_cast<const arrow::Int64Array&>(column).Value(row)), out);
      return true;
    case arrow::Type::UINT8:
    case arrow::Type::UINT16:
    case arrow::Type::UINT32:
    case arrow::Type::UINT64: {
      auto s = column.GetScalar(row);
      if (!s.ok()) return s.status();
      auto c = (*s)->CastTo(arrow::int64());
      if (!c.ok()) return c.status();
      AppendBigEndian(Flip(static_cast<const arrow::Int64Scalar&>(**c).value), out);
      return true;
    }
    case arrow::Type::STRING:
    case arrow::Type::BINARY: {
      auto v = static_cast<const arrow::BinaryArray&>(column).GetView(row);
      AppendVarint(v.size(), out);
      out->append(v.data(), v.size());
      return true;
    }
    case arrow::Type::LARGE_STRING:
    case arrow::Type::LARGE_BINARY: {
      auto v = static_cast<const arrow::LargeBinaryArray&>(column).GetView(row);
      AppendVarint(v.size(), out);
      out->append(v.data(), v.size());
      return true;
    }
    default:
      return arrow::Status::NotImplemented("join key column of type ", column.type()->ToString(),
                                           " cannot be stored online (use an integer or string)");
  }
}

arrow::Status RowEncoder::Validate(
    const std::vector<std::shared_ptr<arrow::Array>>& columns) const {
  if (columns.size() != layout_.names.size()) {
    return arrow::Status::Invalid("online store: ", columns.size(),
                                  " feature columns for a layout of ", layout_.names.size());
  }
  for (size_t i = 0; i < columns.size(); ++i) {
    if (FixedWidth(*layout_.types[i]) < 0) {
      return arrow::Status::NotImplemented("feature '", layout_.names[i], "' has type ",
                                           layout_.types[i]->ToString(),
                                           ", which the online store does not support yet");
    }
    if (!columns[i]->type()->Equals(*layout_.types[i])) {
      return arrow::Status::TypeError("feature '", layout_.names[i], "' is ",
                                      columns[i]->type()->ToString(), " in the data but ",
                                      layout_.types[i]->ToString(), " in the feature view");
    }
  }
  return arrow::Status::OK();
}

void RowEncoder::Encode(const std::vector<std::shared_ptr<arrow::Array>>& columns, int64_t row,
                        int64_t event_us, std::optional<int64_t> created_us,
                        std::string* out) const {
  AppendVersionPrefix(event_us, created_us, out);
  out->push_back(static_cast<char>(kValueFormat));
  AppendLE(layout_.fingerprint, out);
  size_t bitmap_at = out->size();
  size_t n = columns.size();
  out->append((n + 7) / 8, '\0');
  for (size_t i = 0; i < n; ++i) {
    const arrow::Array& a = *columns[i];
    if (a.IsNull(row)) {
      (*out)[bitmap_at + i / 8] = static_cast<char>((*out)[bitmap_at + i / 8] | (1 << (i % 8)));
    } else {
      AppendValue(a, row, out);
    }
  }
}

void AppendFieldValue(const arrow::Array& array, int64_t row, std::string* out) {
  AppendValue(array, row, out);
}

arrow::Result<uint64_t> ValueFingerprint(std::string_view value) {
  if (value.size() < kValueHeaderSize || static_cast<uint8_t>(value[16]) != kValueFormat) {
    return arrow::Status::Invalid("online store: corrupt value (", value.size(), " bytes)");
  }
  return ReadLE<uint64_t>(value.data() + 17);
}

arrow::Status DecodeValue(std::string_view value, const Layout& layout, DecodedValue* out) {
  ARROW_ASSIGN_OR_RAISE(out->fingerprint, ValueFingerprint(value));
  if (out->fingerprint != layout.fingerprint) {
    return arrow::Status::Invalid("online store: value written with another layout");
  }
  out->event_us = PrefixEventMicros(value);
  size_t n = layout.names.size();
  std::string_view p = value.substr(kValueHeaderSize);
  if (p.size() < (n + 7) / 8) return arrow::Status::Invalid("online store: truncated value");
  std::string_view bitmap = p.substr(0, (n + 7) / 8);
  p.remove_prefix(bitmap.size());
  out->fields.assign(n, std::string_view());
  out->null.assign(n, false);
  for (size_t i = 0; i < n; ++i) {
    if (static_cast<unsigned char>(bitmap[i / 8]) & (1 << (i % 8))) {
      out->null[i] = true;
      continue;
    }
    int64_t len = FieldLength(*layout.types[i], p);
    if (len < 0) return arrow::Status::Invalid("online store: truncated value");
    out->fields[i] = p.substr(0, static_cast<size_t>(len));
    p.remove_prefix(static_cast<size_t>(len));
  }
  return arrow::Status::OK();
}

namespace {

arrow::Status AppendScalarToBuilder(const arrow::DataType& t, std::string_view b,
                                    arrow::ArrayBuilder* builder) {
  switch (t.id()) {
    case arrow::Type::BOOL:
      return static_cast<arrow::BooleanBuilder*>(builder)->Append(b[0] != 0);
    case arrow::Type::INT8:
      return static_cast<arrow::Int8Builder*>(builder)->Append(ReadLE<int8_t>(b.data()));
    case arrow::Type::INT16:
      return static_cast<arrow::Int16Builder*>(builder)->Append(ReadLE<int16_t>(b.data()));
    case arrow::Type::INT32:
      return static_cast<arrow::Int32Builder*>(builder)->Append(ReadLE<int32_t>(b.data()));
    case arrow::Type::DATE32:
      return static_cast<arrow::Date32Builder*>(builder)->Append(ReadLE<int32_t>(b.data()));
    case arrow::Type::FLOAT:
      return static_cast<arrow::FloatBuilder*>(builder)->Append(ReadLE<float>(b.data()));
    case arrow::Type::INT64:
      return static_cast<arrow::Int64Builder*>(builder)->Append(ReadLE<int64_t>(b.data()));
    case arrow::Type::DOUBLE:
      return static_cast<arrow::DoubleBuilder*>(builder)->Append(ReadLE<double>(b.data()));
    case arrow::Type::TIMESTAMP: {
      // Stored as µs; the builder's unit is the feature's.
      int64_t us = ReadLE<int64_t>(b.data());
      int64_t v = MicrosToUnit(static_cast<const arrow::TimestampType&>(t).unit(), us);
      return static_cast<arrow::TimestampBuilder*>(builder)->Append(v);
    }
    case arrow::Type::DECIMAL128:
      return static_cast<arrow::Decimal128Builder*>(builder)->Append(
          arrow::Decimal128(reinterpret_cast<const uint8_t*>(b.data())));
    case arrow::Type::STRING:
    case arrow::Type::BINARY: {
      std::string_view p = b;
      uint64_t len = 0;
      ReadVarint(&p, &len);
      return static_cast<arrow::BinaryBuilder*>(builder)->Append(p.substr(0, len));
    }
    case arrow::Type::LARGE_STRING:
    case arrow::Type::LARGE_BINARY: {
      std::string_view p = b;
      uint64_t len = 0;
      ReadVarint(&p, &len);
      return static_cast<arrow::LargeBinaryBuilder*>(builder)->Append(p.substr(0, len));
    }
    default:
      return arrow::Status::NotImplemented("online type ", t.ToString());
  }
}

}  // namespace

arrow::Status AppendFieldToBuilder(const arrow::DataType& type, std::string_view bytes, bool null,
                                   arrow::ArrayBuilder* builder) {
  if (null) return builder->AppendNull();
  if (type.id() != arrow::Type::LIST) return AppendScalarToBuilder(type, bytes, builder);
  auto* lb = static_cast<arrow::ListBuilder*>(builder);
  const arrow::DataType& item = *static_cast<const arrow::ListType&>(type).value_type();
  ARROW_RETURN_NOT_OK(lb->Append());
  std::string_view p = bytes;
  uint64_t n = 0;
  ReadVarint(&p, &n);
  std::string_view bitmap = p.substr(0, (n + 7) / 8);
  p.remove_prefix(bitmap.size());
  for (uint64_t k = 0; k < n; ++k) {
    if (static_cast<unsigned char>(bitmap[k / 8]) & (1 << (k % 8))) {
      ARROW_RETURN_NOT_OK(lb->value_builder()->AppendNull());
      continue;
    }
    int64_t l = ScalarLength(item, p);
    ARROW_RETURN_NOT_OK(
        AppendScalarToBuilder(item, p.substr(0, static_cast<size_t>(l)), lb->value_builder()));
    p.remove_prefix(static_cast<size_t>(l));
  }
  return arrow::Status::OK();
}

}  // namespace stratalake::online
