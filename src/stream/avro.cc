// Avro binary decoding (see avro.h). The encoding, from the Avro 1.11
// specification: int and long are zig-zag varints; float and double are
// little-endian IEEE 754; bytes and string are a long length and the bytes;
// enum is an int index; fixed is its bytes; a union is a long branch index and
// the branch's value; a record is its fields in order, nothing between.
#include "stream/avro.h"

#include <cstring>
#include <ctime>

namespace stratalake::stream {

namespace {

using Type = AvroRecordReader::Type;

arrow::Result<Type> ParseType(const rapidjson::Value& v, const std::string& where) {
  auto refuse = [&](const std::string& why) {
    return arrow::Status::Invalid("Avro schema: ", where, ": ", why);
  };
  Type t;
  if (v.IsArray()) {
    t.kind = Type::kUnion;
    for (const auto& b : v.GetArray()) {
      ARROW_ASSIGN_OR_RAISE(auto branch, ParseType(b, where));
      if (branch.kind == Type::kUnion) return refuse("a union inside a union");
      t.branches.push_back(std::move(branch));
    }
    if (t.branches.empty()) return refuse("an empty union");
    return t;
  }
  const rapidjson::Value* name = &v;
  if (v.IsObject()) {
    auto it = v.FindMember("type");
    if (it == v.MemberEnd()) return refuse("a type object without \"type\"");
    name = &it->value;
    if (name->IsObject() || name->IsArray()) return ParseType(*name, where);
  }
  if (!name->IsString()) return refuse("a type must be a name, an object or a union");
  const std::string n(name->GetString(), name->GetStringLength());
  if (n == "null") {
    t.kind = Type::kNull;
  } else if (n == "boolean") {
    t.kind = Type::kBool;
  } else if (n == "int") {
    t.kind = Type::kInt;
  } else if (n == "long") {
    t.kind = Type::kLong;
  } else if (n == "float") {
    t.kind = Type::kFloat;
  } else if (n == "double") {
    t.kind = Type::kDouble;
  } else if (n == "string") {
    t.kind = Type::kString;
  } else if (n == "bytes") {
    t.kind = Type::kBytes;
  } else if (n == "enum" && v.IsObject()) {
    t.kind = Type::kEnum;
    auto s = v.FindMember("symbols");
    if (s == v.MemberEnd() || !s->value.IsArray()) return refuse("an enum without \"symbols\"");
    for (const auto& sym : s->value.GetArray()) {
      if (!sym.IsString()) return refuse("enum symbols must be strings");
      t.symbols.emplace_back(sym.GetString(), sym.GetStringLength());
    }
  } else if (n == "fixed" && v.IsObject()) {
    t.kind = Type::kFixed;
    auto s = v.FindMember("size");
    if (s == v.MemberEnd() || !s->value.IsInt64() || s->value.GetInt64() < 0) {
      return refuse("a fixed without a \"size\"");
    }
    t.size = s->value.GetInt64();
  } else if (n == "record" || n == "array" || n == "map") {
    return refuse("type '" + n + "' inside a record cannot be streamed yet");
  } else {
    return refuse("unknown type '" + n +
                  "' (references to named types are not supported; write the type out)");
  }
  if (v.IsObject()) {
    auto lt = v.FindMember("logicalType");
    if (lt != v.MemberEnd() && lt->value.IsString()) {
      const std::string l = lt->value.GetString();
      // Unknown logical types are read as their underlying type (the spec says so).
      if (l == "date" && t.kind == Type::kInt) t.logical = Type::kDate;
      if (l == "timestamp-millis" && t.kind == Type::kLong) t.logical = Type::kTimestampMillis;
      if (l == "timestamp-micros" && t.kind == Type::kLong) t.logical = Type::kTimestampMicros;
    }
  }
  return t;
}

// Microseconds since the epoch -> "YYYY-MM-DDTHH:MM:SS.ffffffZ"; "" when the
// year is not 0001..9999.
std::string MicrosToIso(int64_t micros) {
  constexpr int64_t kMin = -62135596800LL * 1000000;  // 0001-01-01
  constexpr int64_t kMax = 253402300800LL * 1000000;  // 10000-01-01
  if (micros < kMin || micros >= kMax) return "";
  int64_t secs = micros >= 0 ? micros / 1000000 : -((-micros + 999999) / 1000000);
  int64_t frac = micros - secs * 1000000;
  time_t t = static_cast<time_t>(secs);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           static_cast<long long>(frac));
  return buf;
}

class Decoder {
 public:
  Decoder(const uint8_t* data, size_t size, rapidjson::Document::AllocatorType* alloc)
      : p_(data), begin_(data), end_(data + size), alloc_(alloc) {}

  // "" or why not.
  std::string Value(const Type& t, rapidjson::Value* out) {
    switch (t.kind) {
      case Type::kNull:
        out->SetNull();
        return "";
      case Type::kBool: {
        if (p_ >= end_) return Truncated();
        uint8_t b = *p_++;
        if (b > 1) return "a boolean byte is " + std::to_string(b) + ", not 0 or 1";
        out->SetBool(b == 1);
        return "";
      }
      case Type::kInt:
      case Type::kLong: {
        int64_t v = 0;
        if (auto why = Long(&v); !why.empty()) return why;
        if (t.kind == Type::kInt && (v < INT32_MIN || v > INT32_MAX)) {
          return "an int is " + std::to_string(v) + ", out of range";
        }
        if (t.logical == Type::kDate) {
          std::string iso = MicrosToIso(v * 86400LL * 1000000);
          if (iso.empty()) return "a date of " + std::to_string(v) + " days is out of range";
          out->SetString(iso.data(), 10, *alloc_);
          return "";
        }
        if (t.logical == Type::kTimestampMillis || t.logical == Type::kTimestampMicros) {
          const int64_t scale = t.logical == Type::kTimestampMillis ? 1000 : 1;
          std::string iso = (v > INT64_MAX / 1000 || v < INT64_MIN / 1000) && scale != 1
                                ? std::string()
                                : MicrosToIso(v * scale);
          if (iso.empty()) return "a timestamp of " + std::to_string(v) + " is out of range";
          out->SetString(iso.data(), static_cast<rapidjson::SizeType>(iso.size()), *alloc_);
          return "";
        }
        out->SetInt64(v);
        return "";
      }
      case Type::kFloat: {
        if (end_ - p_ < 4) return Truncated();
        float f = 0;
        std::memcpy(&f, p_, 4);  // little-endian, as this machine
        p_ += 4;
        out->SetDouble(static_cast<double>(f));
        return "";
      }
      case Type::kDouble: {
        if (end_ - p_ < 8) return Truncated();
        double d = 0;
        std::memcpy(&d, p_, 8);
        p_ += 8;
        out->SetDouble(d);
        return "";
      }
      case Type::kString:
      case Type::kBytes: {
        int64_t n = 0;
        if (auto why = Long(&n); !why.empty()) return why;
        if (n < 0) return "a length is negative (" + std::to_string(n) + ")";
        if (end_ - p_ < n) return Truncated();
        out->SetString(reinterpret_cast<const char*>(p_), static_cast<rapidjson::SizeType>(n),
                       *alloc_);
        p_ += n;
        return "";
      }
      case Type::kEnum: {
        int64_t i = 0;
        if (auto why = Long(&i); !why.empty()) return why;
        if (i < 0 || i >= static_cast<int64_t>(t.symbols.size())) {
          return "enum index " + std::to_string(i) + " is not one of its " +
                 std::to_string(t.symbols.size()) + " symbols";
        }
        const auto& s = t.symbols[i];
        out->SetString(s.data(), static_cast<rapidjson::SizeType>(s.size()), *alloc_);
        return "";
      }
      case Type::kFixed: {
        if (end_ - p_ < t.size) return Truncated();
        out->SetString(reinterpret_cast<const char*>(p_), static_cast<rapidjson::SizeType>(t.size),
                       *alloc_);
        p_ += t.size;
        return "";
      }
      case Type::kUnion: {
        int64_t i = 0;
        if (auto why = Long(&i); !why.empty()) return why;
        if (i < 0 || i >= static_cast<int64_t>(t.branches.size())) {
          return "union branch " + std::to_string(i) + " is not one of its " +
                 std::to_string(t.branches.size());
        }
        return Value(t.branches[i], out);
      }
    }
    return "an unknown type";
  }

  size_t offset() const { return static_cast<size_t>(p_ - begin_); }
  size_t left() const { return static_cast<size_t>(end_ - p_); }

 private:
  std::string Truncated() const {
    return "the datum ends too early (after " + std::to_string(end_ - begin_) + " bytes)";
  }
  std::string Long(int64_t* v) {
    uint64_t u = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (p_ >= end_) return Truncated();
      uint8_t b = *p_++;
      u |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *v = static_cast<int64_t>(u >> 1) ^ -static_cast<int64_t>(u & 1);
        return "";
      }
    }
    return "a varint is longer than 10 bytes";
  }

  const uint8_t* p_;
  const uint8_t* begin_;
  const uint8_t* end_;
  rapidjson::Document::AllocatorType* alloc_;
};

}  // namespace

arrow::Result<AvroRecordReader> AvroRecordReader::Parse(const std::string& schema_json) {
  rapidjson::Document d;
  d.Parse(schema_json.data(), schema_json.size());
  if (d.HasParseError()) {
    return arrow::Status::Invalid("Avro schema: not JSON (at byte ", d.GetErrorOffset(), ")");
  }
  if (!d.IsObject() || !d.HasMember("type") || !d["type"].IsString() ||
      std::string(d["type"].GetString()) != "record") {
    return arrow::Status::Invalid("Avro schema: must be a record ({\"type\": \"record\", ...})");
  }
  auto fields = d.FindMember("fields");
  if (fields == d.MemberEnd() || !fields->value.IsArray()) {
    return arrow::Status::Invalid("Avro schema: a record without \"fields\"");
  }
  AvroRecordReader r;
  for (const auto& f : fields->value.GetArray()) {
    if (!f.IsObject() || !f.HasMember("name") || !f["name"].IsString() || !f.HasMember("type")) {
      return arrow::Status::Invalid("Avro schema: a field needs \"name\" and \"type\"");
    }
    Field field;
    field.name = f["name"].GetString();
    ARROW_ASSIGN_OR_RAISE(field.type, ParseType(f["type"], "field '" + field.name + "'"));
    r.fields_.push_back(std::move(field));
  }
  return r;
}

std::string AvroRecordReader::Decode(const uint8_t* data, size_t size, bool confluent,
                                     rapidjson::Document* out) const {
  if (confluent) {
    if (size < 5 || data[0] != 0) {
      return size == 0
                 ? "an empty message, not Confluent's wire format"
                 : "not Confluent's wire format: it starts with byte " + std::to_string(data[0]) +
                       " (the magic byte is 0) or is shorter "
                       "than its 5-byte header";
    }
    data += 5;
    size -= 5;
  }
  out->SetObject();
  Decoder dec(data, size, &out->GetAllocator());
  for (const auto& f : fields_) {
    rapidjson::Value v;
    std::string why = dec.Value(f.type, &v);
    if (!why.empty()) return "field '" + f.name + "': " + why;
    out->AddMember(rapidjson::StringRef(f.name.data(), f.name.size()), v, out->GetAllocator());
  }
  if (dec.left() > 0) {
    return std::to_string(dec.left()) + " bytes after the record's end (at byte " +
           std::to_string(dec.offset()) + "): is the message of another schema?";
  }
  return "";
}

bool AvroRecordReader::HasField(const std::string& name) const {
  for (const auto& f : fields_) {
    if (f.name == name) return true;
  }
  return false;
}

std::string AvroRecordReader::FieldNames() const {
  std::string out;
  for (const auto& f : fields_) out += (out.empty() ? "" : ", ") + f.name;
  return out;
}

}  // namespace stratalake::stream
