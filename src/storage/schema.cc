#include "storage/schema.h"

#include <cstdio>

#include <arrow/api.h>
#include <arrow/compute/cast.h>
#include <arrow/util/key_value_metadata.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "common/json.h"
#include "common/time_units.h"
#include "stratalake/delta.h"
#include "stratalake/status.h"

namespace stratalake::delta {

namespace {

using rapidjson::Value;
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

arrow::Status SchemaError(const std::string& what) {
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kCorruptLog,
                   "invalid Delta schema: " + what);
}

std::string ToJson(const Value& v) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  v.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

arrow::Result<std::shared_ptr<arrow::DataType>> TypeFromJson(const Value& t);

arrow::Result<std::shared_ptr<arrow::Field>> FieldFromJson(const Value& f) {
  if (!f.IsObject() || !f.HasMember("name") || !f["name"].IsString() || !f.HasMember("type")) {
    return SchemaError("a field lacks 'name' or 'type'");
  }
  std::string name = f["name"].GetString();
  ARROW_ASSIGN_OR_RAISE(auto type, TypeFromJson(f["type"]));
  bool nullable = true;
  if (f.HasMember("nullable") && f["nullable"].IsBool()) nullable = f["nullable"].GetBool();
  std::shared_ptr<arrow::KeyValueMetadata> md;
  if (f.HasMember("metadata") && f["metadata"].IsObject() && f["metadata"].MemberCount() > 0) {
    md = std::make_shared<arrow::KeyValueMetadata>();
    md->Append(kDeltaFieldMetadataKey, ToJson(f["metadata"]));
    for (auto& m : f["metadata"].GetObject()) {
      std::string key = m.name.GetString();
      if (key == kPhysicalNameKey && m.value.IsString()) md->Append(key, m.value.GetString());
      if (key == kColumnIdKey && m.value.IsInt64()) {
        md->Append(key, std::to_string(m.value.GetInt64()));
        // Parquet field ids: lets id-mode files be matched by id.
        md->Append("PARQUET:field_id", std::to_string(m.value.GetInt64()));
      }
    }
  }
  return arrow::field(name, type, nullable, md);
}

arrow::Result<std::shared_ptr<arrow::DataType>> PrimitiveFromName(const std::string& n) {
  if (n == "string") return arrow::utf8();
  if (n == "long") return arrow::int64();
  if (n == "integer") return arrow::int32();
  if (n == "short") return arrow::int16();
  if (n == "byte") return arrow::int8();
  if (n == "float") return arrow::float32();
  if (n == "double") return arrow::float64();
  if (n == "boolean") return arrow::boolean();
  if (n == "binary") return arrow::binary();
  if (n == "date") return arrow::date32();
  if (n == "timestamp") return arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
  if (n == "timestamp_ntz") return arrow::timestamp(arrow::TimeUnit::MICRO);
  if (n.rfind("decimal", 0) == 0) {
    int p = 10, s = 0;
    if (n != "decimal" && std::sscanf(n.c_str(), "decimal(%d,%d)", &p, &s) != 2 &&
        std::sscanf(n.c_str(), "decimal(%d, %d)", &p, &s) != 2) {
      return SchemaError("bad decimal type '" + n + "'");
    }
    if (p < 1 || p > 38 || s < 0 || s > p) return SchemaError("bad decimal type '" + n + "'");
    return arrow::decimal128(p, s);
  }
  if (n == "void") return arrow::null();
  return MakeError(arrow::StatusCode::NotImplemented, ErrorKind::kUnsupportedFeature,
                   "Delta type '" + n + "' is not supported");
}

arrow::Result<std::shared_ptr<arrow::DataType>> TypeFromJson(const Value& t) {
  if (t.IsString()) return PrimitiveFromName(t.GetString());
  if (!t.IsObject() || !t.HasMember("type") || !t["type"].IsString()) {
    return SchemaError("a type is neither a name nor an object with 'type'");
  }
  std::string kind = t["type"].GetString();
  if (kind == "struct") {
    if (!t.HasMember("fields") || !t["fields"].IsArray())
      return SchemaError("struct without fields");
    arrow::FieldVector fields;
    for (auto& f : t["fields"].GetArray()) {
      ARROW_ASSIGN_OR_RAISE(auto field, FieldFromJson(f));
      fields.push_back(std::move(field));
    }
    return arrow::struct_(fields);
  }
  if (kind == "array") {
    if (!t.HasMember("elementType")) return SchemaError("array without elementType");
    ARROW_ASSIGN_OR_RAISE(auto elem, TypeFromJson(t["elementType"]));
    bool contains_null =
        !t.HasMember("containsNull") || !t["containsNull"].IsBool() || t["containsNull"].GetBool();
    return arrow::list(arrow::field("element", elem, contains_null));
  }
  if (kind == "map") {
    if (!t.HasMember("keyType") || !t.HasMember("valueType"))
      return SchemaError("map without key/value type");
    ARROW_ASSIGN_OR_RAISE(auto key, TypeFromJson(t["keyType"]));
    ARROW_ASSIGN_OR_RAISE(auto value, TypeFromJson(t["valueType"]));
    bool contains_null = !t.HasMember("valueContainsNull") || !t["valueContainsNull"].IsBool() ||
                         t["valueContainsNull"].GetBool();
    return arrow::map(key, arrow::field("value", value, contains_null));
  }
  return SchemaError("unknown type kind '" + kind + "'");
}

void WriteType(Writer& w, const arrow::DataType& type);

void WriteField(Writer& w, const arrow::Field& f) {
  w.StartObject();
  w.Key("name");
  w.String(f.name().c_str(), static_cast<rapidjson::SizeType>(f.name().size()));
  w.Key("type");
  WriteType(w, *f.type());
  w.Key("nullable");
  w.Bool(f.nullable());
  w.Key("metadata");
  std::string md_json = "{}";
  if (f.metadata()) {
    auto v = f.metadata()->Get(kDeltaFieldMetadataKey);
    if (v.ok()) md_json = *v;
  }
  w.RawValue(md_json.c_str(), md_json.size(), rapidjson::kObjectType);
  w.EndObject();
}

void WriteType(Writer& w, const arrow::DataType& type) {
  switch (type.id()) {
    case arrow::Type::STRUCT: {
      w.StartObject();
      w.Key("type");
      w.String("struct");
      w.Key("fields");
      w.StartArray();
      for (const auto& f : type.fields()) WriteField(w, *f);
      w.EndArray();
      w.EndObject();
      return;
    }
    case arrow::Type::LIST:
    case arrow::Type::LARGE_LIST: {
      const auto& vf = type.field(0);
      w.StartObject();
      w.Key("type");
      w.String("array");
      w.Key("elementType");
      WriteType(w, *vf->type());
      w.Key("containsNull");
      w.Bool(vf->nullable());
      w.EndObject();
      return;
    }
    case arrow::Type::MAP: {
      const auto& mt = static_cast<const arrow::MapType&>(type);
      w.StartObject();
      w.Key("type");
      w.String("map");
      w.Key("keyType");
      WriteType(w, *mt.key_type());
      w.Key("valueType");
      WriteType(w, *mt.item_type());
      w.Key("valueContainsNull");
      w.Bool(mt.item_field()->nullable());
      w.EndObject();
      return;
    }
    default: {
      std::string name = DeltaTypeName(type);
      w.String(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
    }
  }
}

}  // namespace

arrow::Result<std::shared_ptr<arrow::Schema>> SchemaFromDeltaJson(const std::string& json) {
  rapidjson::Document doc;
  arrow::Status parsed = json::ParseJson(&doc, json);
  if (!parsed.ok()) return SchemaError("schemaString is not valid JSON: " + parsed.message());
  ARROW_ASSIGN_OR_RAISE(auto type, TypeFromJson(doc));
  if (type->id() != arrow::Type::STRUCT) return SchemaError("schemaString is not a struct");
  return arrow::schema(type->fields());
}

arrow::Result<std::string> SchemaToDeltaJson(const arrow::Schema& schema) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("type");
  w.String("struct");
  w.Key("fields");
  w.StartArray();
  for (const auto& f : schema.fields()) WriteField(w, *f);
  w.EndArray();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::string DeltaTypeName(const arrow::DataType& type) {
  switch (type.id()) {
    case arrow::Type::STRING:
    case arrow::Type::LARGE_STRING:
    case arrow::Type::STRING_VIEW:
      return "string";
    case arrow::Type::INT64:
      return "long";
    case arrow::Type::INT32:
      return "integer";
    case arrow::Type::INT16:
      return "short";
    case arrow::Type::INT8:
      return "byte";
    case arrow::Type::FLOAT:
      return "float";
    case arrow::Type::DOUBLE:
      return "double";
    case arrow::Type::BOOL:
      return "boolean";
    case arrow::Type::BINARY:
    case arrow::Type::LARGE_BINARY:
      return "binary";
    case arrow::Type::DATE32:
      return "date";
    case arrow::Type::TIMESTAMP:
      return static_cast<const arrow::TimestampType&>(type).timezone().empty() ? "timestamp_ntz"
                                                                               : "timestamp";
    case arrow::Type::DECIMAL128: {
      const auto& d = static_cast<const arrow::DecimalType&>(type);
      return "decimal(" + std::to_string(d.precision()) + "," + std::to_string(d.scale()) + ")";
    }
    case arrow::Type::NA:
      return "void";
    case arrow::Type::STRUCT: {
      std::string s = "struct<";
      for (int i = 0; i < type.num_fields(); ++i) {
        if (i) s += ",";
        s += type.field(i)->name() + ":" + DeltaTypeName(*type.field(i)->type());
      }
      return s + ">";
    }
    case arrow::Type::LIST:
      return "array<" + DeltaTypeName(*type.field(0)->type()) + ">";
    case arrow::Type::MAP: {
      const auto& mt = static_cast<const arrow::MapType&>(type);
      return "map<" + DeltaTypeName(*mt.key_type()) + "," + DeltaTypeName(*mt.item_type()) + ">";
    }
    default:
      return type.ToString();
  }
}

std::string PhysicalName(const arrow::Field& field, const std::string& mapping_mode) {
  if (mapping_mode != "none" && field.metadata()) {
    auto v = field.metadata()->Get(kPhysicalNameKey);
    if (v.ok()) return *v;
  }
  return field.name();
}

std::optional<int64_t> ColumnId(const arrow::Field& field) {
  if (!field.metadata()) return std::nullopt;
  auto v = field.metadata()->Get(kColumnIdKey);
  if (!v.ok()) return std::nullopt;
  return std::stoll(*v);
}

arrow::Result<std::shared_ptr<arrow::Scalar>> ParsePartitionValue(
    const std::optional<std::string>& value, const std::shared_ptr<arrow::DataType>& type) {
  bool is_string = type->id() == arrow::Type::STRING || type->id() == arrow::Type::BINARY;
  if (!value || (value->empty() && !is_string)) return arrow::MakeNullScalar(type);
  if (value->empty()) return arrow::MakeNullScalar(type);  // Delta: "" is NULL for all types
  if (type->id() == arrow::Type::STRING) return arrow::MakeScalar(*value);
  if (type->id() == arrow::Type::BINARY) {
    return std::make_shared<arrow::BinaryScalar>(arrow::Buffer::FromString(*value));
  }
  auto str = arrow::MakeScalar(*value);
  if (type->id() == arrow::Type::TIMESTAMP) {
    // Partition timestamps are written without an offset ("2021-09-08 11:11:11") and
    // mean UTC instants; some writers add one. Parse naive first, then zoned.
    const auto& ts = static_cast<const arrow::TimestampType&>(*type);
    auto naive = arrow::compute::Cast(str, arrow::timestamp(arrow::TimeUnit::MICRO));
    if (!naive.ok())
      naive = arrow::compute::Cast(str, arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"));
    if (!naive.ok()) {
      return arrow::Status::Invalid("partition value '", *value, "' is not a timestamp");
    }
    int64_t micros = static_cast<const arrow::TimestampScalar&>(*naive->scalar()).value;
    return std::make_shared<arrow::TimestampScalar>(MicrosToUnit(ts.unit(), micros), type);
  }
  auto cast = arrow::compute::Cast(str, type);
  if (!cast.ok()) {
    return arrow::Status::Invalid("partition value '", *value, "' is not a valid ",
                                  DeltaTypeName(*type));
  }
  return cast->scalar();
}

arrow::Result<std::optional<std::string>> FormatPartitionValue(const arrow::Scalar& scalar) {
  if (!scalar.is_valid) return std::optional<std::string>();
  switch (scalar.type->id()) {
    case arrow::Type::STRING:
    case arrow::Type::LARGE_STRING:
    case arrow::Type::STRING_VIEW:
    case arrow::Type::BINARY:
    case arrow::Type::LARGE_BINARY: {
      const auto& b = static_cast<const arrow::BaseBinaryScalar&>(scalar);
      return std::optional<std::string>(b.value ? b.value->ToString() : "");
    }
    case arrow::Type::TIMESTAMP: {
      // Spark's form: "yyyy-MM-dd HH:mm:ss[.SSSSSS]" in UTC.
      const auto& ts = static_cast<const arrow::TimestampScalar&>(scalar);
      const auto& tt = static_cast<const arrow::TimestampType&>(*scalar.type);
      int64_t micros = ts.value;
      if (tt.unit() == arrow::TimeUnit::SECOND) micros *= 1000000;
      if (tt.unit() == arrow::TimeUnit::MILLI) micros *= 1000;
      if (tt.unit() == arrow::TimeUnit::NANO) micros /= 1000;
      int64_t secs = micros >= 0 ? micros / 1000000 : (micros - 999999) / 1000000;
      int64_t frac = micros - secs * 1000000;
      time_t t = static_cast<time_t>(secs);
      struct tm tm;
      gmtime_r(&t, &tm);
      char buf[64];
      std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
      std::string out = buf;
      if (frac != 0) {
        char fb[16];
        std::snprintf(fb, sizeof fb, ".%06lld", static_cast<long long>(frac));
        out += fb;
      }
      return std::optional<std::string>(out);
    }
    default:
      return std::optional<std::string>(scalar.ToString());
  }
}

arrow::Result<std::shared_ptr<arrow::DataType>> DeltaStorageType(
    const std::shared_ptr<arrow::DataType>& type) {
  using arrow::Type;
  auto unsupported = [&]() {
    return MakeError(arrow::StatusCode::TypeError, ErrorKind::kSchemaMismatch,
                     "type " + type->ToString() +
                         " cannot be stored in a Delta table; cast it to a supported type "
                         "(string, long, integer, short, byte, float, double, boolean, binary, "
                         "date, timestamp, decimal, struct, array, map)");
  };
  switch (type->id()) {
    case Type::STRING:
    case Type::LARGE_STRING:
    case Type::STRING_VIEW:
      return arrow::utf8();
    case Type::BINARY:
    case Type::LARGE_BINARY:
    case Type::BINARY_VIEW:
    case Type::FIXED_SIZE_BINARY:
      return arrow::binary();
    case Type::INT8:
    case Type::INT16:
    case Type::INT32:
    case Type::INT64:
    case Type::FLOAT:
    case Type::DOUBLE:
    case Type::BOOL:
    case Type::DATE32:
    case Type::NA:
      return type;
    case Type::UINT8:
      return arrow::int16();
    case Type::UINT16:
      return arrow::int32();
    case Type::UINT32:
      return arrow::int64();
    case Type::HALF_FLOAT:
      return arrow::float32();
    case Type::DATE64:
      return arrow::date32();
    case Type::TIMESTAMP: {
      const auto& ts = static_cast<const arrow::TimestampType&>(*type);
      return ts.timezone().empty() ? arrow::timestamp(arrow::TimeUnit::MICRO)
                                   : arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
    }
    case Type::DECIMAL32:
    case Type::DECIMAL64:
    case Type::DECIMAL128: {
      const auto& d = static_cast<const arrow::DecimalType&>(*type);
      return arrow::decimal128(d.precision(), d.scale());
    }
    case Type::DICTIONARY:
      return DeltaStorageType(static_cast<const arrow::DictionaryType&>(*type).value_type());
    case Type::STRUCT: {
      arrow::FieldVector fields;
      for (const auto& f : type->fields()) {
        ARROW_ASSIGN_OR_RAISE(auto t, DeltaStorageType(f->type()));
        fields.push_back(f->WithType(t));
      }
      return arrow::struct_(fields);
    }
    case Type::LIST:
    case Type::LARGE_LIST:
    case Type::LIST_VIEW:
    case Type::LARGE_LIST_VIEW:
    case Type::FIXED_SIZE_LIST: {
      const auto& vf = type->field(0);
      ARROW_ASSIGN_OR_RAISE(auto t, DeltaStorageType(vf->type()));
      return arrow::list(arrow::field("element", t, vf->nullable()));
    }
    case Type::MAP: {
      const auto& mt = static_cast<const arrow::MapType&>(*type);
      ARROW_ASSIGN_OR_RAISE(auto k, DeltaStorageType(mt.key_type()));
      ARROW_ASSIGN_OR_RAISE(auto v, DeltaStorageType(mt.item_type()));
      return arrow::map(k, arrow::field("value", v, mt.item_field()->nullable()));
    }
    default:
      return unsupported();
  }
}

arrow::Result<std::shared_ptr<arrow::Schema>> DeltaStorageSchema(const arrow::Schema& schema) {
  arrow::FieldVector fields;
  for (const auto& f : schema.fields()) {
    ARROW_ASSIGN_OR_RAISE(auto t, DeltaStorageType(f->type()));
    fields.push_back(f->WithType(t));
  }
  return arrow::schema(fields);
}

std::string EscapePartitionComponent(const std::string& s) {
  // Hadoop's FileUtils.escapePathName: control chars and "\"#%'*/:=?\\\x7F{[]^" etc.
  static const std::string kSpecial = "\"#%'*/:=?\\\x7f{}[]^";
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || kSpecial.find(static_cast<char>(c)) != std::string::npos) {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string UrlEncodePath(const std::string& path) {
  // Encode what a URI path may not hold; keep '/' separators.
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) ||
        std::string("-._~/!$&'()*+,;=:@").find(static_cast<char>(c)) != std::string::npos) {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string UrlDecode(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() + 0 && i + 2 <= s.size() - 1 + 0 &&
        std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

namespace {

// Splits at commas outside parentheses, trimming spaces around each part.
std::vector<std::string> SplitSpecList(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  for (char c : s) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  for (auto& x : out) {
    while (!x.empty() && x.front() == ' ') x.erase(0, 1);
    while (!x.empty() && x.back() == ' ') x.pop_back();
  }
  return out;
}

}  // namespace

arrow::Result<std::shared_ptr<arrow::Schema>> ParseSchemaSpec(const std::string& spec) {
  arrow::FieldVector fields;
  for (const auto& item : SplitSpecList(spec)) {
    auto colon = item.find(':');
    if (colon == std::string::npos) {
      return arrow::Status::Invalid("schema entry '", item, "' must look like name:type");
    }
    std::string name = item.substr(0, colon);
    std::string type = item.substr(colon + 1);
    bool nullable = true;
    auto nn = type.find(" not null");
    if (nn != std::string::npos) {
      nullable = false;
      type = type.substr(0, nn);
    }
    std::string json = "{\"type\":\"struct\",\"fields\":[{\"name\":\"x\",\"type\":\"" + type +
                       "\",\"nullable\":true,\"metadata\":{}}]}";
    auto parsed = SchemaFromDeltaJson(json);
    if (!parsed.ok()) {
      return arrow::Status::Invalid("column '", name, "': unknown type '", type,
                                    "' (use long, integer, short, byte, double, float, string, "
                                    "boolean, binary, date, timestamp, timestamp_ntz, "
                                    "decimal(p,s))");
    }
    fields.push_back(arrow::field(name, (*parsed)->field(0)->type(), nullable));
  }
  return arrow::schema(fields);
}

arrow::Result<int64_t> ParseTimestampText(const std::string& text) {
  bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  if (digits) {
    try {
      return static_cast<int64_t>(std::stoll(text));
    } catch (const std::exception&) {
      return arrow::Status::Invalid("bad timestamp '", text, "'");
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto scalar,
                        ParsePartitionValue(text, arrow::timestamp(arrow::TimeUnit::MILLI, "UTC")));
  if (!scalar->is_valid) return arrow::Status::Invalid("bad timestamp '", text, "'");
  return static_cast<const arrow::TimestampScalar&>(*scalar).value;
}

}  // namespace stratalake::delta
