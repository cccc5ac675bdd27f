// Definitions model: feature types, durations, canonical JSON and flattening.
#include <algorithm>
#include <cctype>
#include <sstream>

#include <arrow/api.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "common/json.h"
#include "stratalake/registry.h"
#include "stratalake/status.h"

namespace stratalake::registry {

namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

arrow::Status DefError(const std::string& msg) {
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError, msg);
}

}  // namespace

std::string SourceLocation::ToString() const {
  std::string out = file.empty() ? "<registry>" : file;
  if (line > 0) out += ":" + std::to_string(line);
  if (line > 0 && column > 0) out += ":" + std::to_string(column);
  return out;
}

const char* SourceTypeName(SourceType type) {
  switch (type) {
    case SourceType::kDelta:
      return "delta";
    case SourceType::kParquet:
      return "parquet";
    case SourceType::kPush:
      return "push";
    case SourceType::kKafka:
      return "kafka";
  }
  return "?";
}

template <typename T>
static const T* FindByName(const std::vector<T>& v, const std::string& name) {
  for (const auto& x : v) {
    if (x.name == name) return &x;
  }
  return nullptr;
}

const Entity* Definitions::FindEntity(const std::string& n) const {
  return FindByName(entities, n);
}
const Source* Definitions::FindSource(const std::string& n) const { return FindByName(sources, n); }
const FeatureView* Definitions::FindFeatureView(const std::string& n) const {
  return FindByName(feature_views, n);
}
const FeatureService* Definitions::FindFeatureService(const std::string& n) const {
  return FindByName(feature_services, n);
}
const Transformation* Definitions::FindTransformation(const std::string& n) const {
  return FindByName(transformations, n);
}
const RequestSource* Definitions::FindRequestSource(const std::string& n) const {
  return FindByName(request_sources, n);
}
const OnDemandFeatureView* Definitions::FindOnDemandFeatureView(const std::string& n) const {
  return FindByName(on_demand_feature_views, n);
}

const char* TransformModeName(TransformMode mode) {
  switch (mode) {
    case TransformMode::kFullRefresh:
      return "full_refresh";
    case TransformMode::kAppend:
      return "append";
    case TransformMode::kMerge:
      return "merge";
  }
  return "?";
}

const char* OnChangeName(OnChange on_change) {
  switch (on_change) {
    case OnChange::kFullRefresh:
      return "full_refresh";
    case OnChange::kKeys:
      return "keys";
    case OnChange::kPartitions:
      return "partitions";
    case OnChange::kFail:
      return "fail";
  }
  return "?";
}

// ---- types ------------------------------------------------------------------

arrow::Result<std::shared_ptr<arrow::DataType>> ParseFeatureType(const std::string& text) {
  std::string t = Lower(Trim(text));
  if (t.rfind("list<", 0) == 0 && t.back() == '>') {
    ARROW_ASSIGN_OR_RAISE(auto inner, ParseFeatureType(t.substr(5, t.size() - 6)));
    return arrow::list(inner);
  }
  if (t.rfind("decimal(", 0) == 0 && t.back() == ')') {
    std::string args = t.substr(8, t.size() - 9);
    auto comma = args.find(',');
    try {
      int p = std::stoi(args.substr(0, comma));
      int s = comma == std::string::npos ? 0 : std::stoi(args.substr(comma + 1));
      if (p >= 1 && p <= 38 && s >= 0 && s <= p) return arrow::decimal128(p, s);
    } catch (...) {
    }
    return DefError("invalid decimal type '" + text +
                    "': write decimal(P,S) with 1 <= P <= 38 and 0 <= S <= P");
  }
  static const std::map<std::string, std::shared_ptr<arrow::DataType>> kTypes = {
      {"int8", arrow::int8()},
      {"byte", arrow::int8()},
      {"int16", arrow::int16()},
      {"short", arrow::int16()},
      {"int32", arrow::int32()},
      {"int", arrow::int32()},
      {"integer", arrow::int32()},
      {"int64", arrow::int64()},
      {"long", arrow::int64()},
      {"bigint", arrow::int64()},
      {"float32", arrow::float32()},
      {"float", arrow::float32()},
      {"float64", arrow::float64()},
      {"double", arrow::float64()},
      {"bool", arrow::boolean()},
      {"boolean", arrow::boolean()},
      {"string", arrow::utf8()},
      {"str", arrow::utf8()},
      {"binary", arrow::binary()},
      {"bytes", arrow::binary()},
      {"date", arrow::date32()},
      {"timestamp", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC")},
      {"unixtimestamp", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC")},
  };
  auto it = kTypes.find(t);
  if (it != kTypes.end()) return it->second;
  return DefError("unknown type '" + text +
                  "': use one of int8, int16, int32, int64, float32, float64, bool, string, "
                  "binary, date, timestamp, decimal(P,S), list<T>");
}

std::string FeatureTypeName(const arrow::DataType& type) {
  switch (type.id()) {
    case arrow::Type::INT8:
      return "int8";
    case arrow::Type::INT16:
      return "int16";
    case arrow::Type::INT32:
      return "int32";
    case arrow::Type::INT64:
      return "int64";
    case arrow::Type::FLOAT:
      return "float32";
    case arrow::Type::DOUBLE:
      return "float64";
    case arrow::Type::BOOL:
      return "bool";
    case arrow::Type::STRING:
    case arrow::Type::LARGE_STRING:
    case arrow::Type::STRING_VIEW:
      return "string";
    case arrow::Type::BINARY:
    case arrow::Type::LARGE_BINARY:
      return "binary";
    case arrow::Type::DATE32:
    case arrow::Type::DATE64:
      return "date";
    case arrow::Type::TIMESTAMP:
      return "timestamp";
    case arrow::Type::DECIMAL128: {
      const auto& d = static_cast<const arrow::Decimal128Type&>(type);
      return "decimal(" + std::to_string(d.precision()) + "," + std::to_string(d.scale()) + ")";
    }
    case arrow::Type::LIST:
    case arrow::Type::LARGE_LIST:
      return "list<" + FeatureTypeName(*type.field(0)->type()) + ">";
    default:
      return type.ToString();
  }
}

// ---- window aggregations ------------------------------------------------------

const char* AggregationFunctionName(AggregationFunction f) {
  switch (f) {
    case AggregationFunction::kSum:
      return "sum";
    case AggregationFunction::kCount:
      return "count";
    case AggregationFunction::kMean:
      return "mean";
    case AggregationFunction::kMin:
      return "min";
    case AggregationFunction::kMax:
      return "max";
    case AggregationFunction::kStddev:
      return "stddev";
    case AggregationFunction::kLast:
      return "last";
    case AggregationFunction::kLastK:
      return "last_k";
    case AggregationFunction::kCountDistinct:
      return "count_distinct";
    case AggregationFunction::kPercentile:
      return "percentile";
  }
  return "sum";
}

arrow::Result<AggregationFunction> ParseAggregationFunction(const std::string& text) {
  std::string t = Lower(Trim(text));
  if (t == "avg") return AggregationFunction::kMean;
  if (t == "std") return AggregationFunction::kStddev;
  for (int i = 0; i <= static_cast<int>(AggregationFunction::kPercentile); ++i) {
    auto f = static_cast<AggregationFunction>(i);
    if (t == AggregationFunctionName(f)) return f;
  }
  return DefError("unknown aggregation function '" + text +
                  "' (use sum, count, mean, min, max, stddev, last, last_k, count_distinct or "
                  "percentile)");
}

std::shared_ptr<arrow::DataType> AggregationType(const Aggregation& a) {
  switch (a.function) {
    case AggregationFunction::kCount:
    case AggregationFunction::kCountDistinct:
      return arrow::int64();
    case AggregationFunction::kLastK:
      return arrow::list(arrow::float64());
    default:
      return arrow::float64();
  }
}

// ---- durations --------------------------------------------------------------

arrow::Result<int64_t> ParseDuration(const std::string& text) {
  std::string t = Lower(Trim(text));
  auto bad = [&] {
    return DefError("invalid duration '" + text +
                    "': write a number and a unit, e.g. 7d, 12h, 30m, 45s, 2w, or 0 for unlimited");
  };
  if (t.empty()) return bad();
  if (t == "0") return 0;
  int64_t total = 0;
  size_t i = 0;
  while (i < t.size()) {
    size_t j = i;
    while (j < t.size() && std::isdigit(static_cast<unsigned char>(t[j]))) ++j;
    if (j == i || j >= t.size() || j - i > 12) return bad();
    int64_t n = std::stoll(t.substr(i, j - i));
    int64_t unit = 0;
    switch (t[j]) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 86400;
        break;
      case 'w':
        unit = 7 * 86400;
        break;
      default:
        return bad();
    }
    total += n * unit;
    i = j + 1;
  }
  return total;
}

std::string FormatDuration(int64_t seconds) {
  if (seconds == 0) return "0";
  std::string out;
  int64_t s = seconds;
  for (auto [unit, suffix] :
       std::vector<std::pair<int64_t, char>>{{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}}) {
    if (s >= unit) {
      out += std::to_string(s / unit) + suffix;
      s %= unit;
    }
  }
  return out;
}

// ---- kinds ------------------------------------------------------------------

const char* ObjectKindName(ObjectKind kind) {
  switch (kind) {
    case ObjectKind::kEntity:
      return "entity";
    case ObjectKind::kSource:
      return "source";
    case ObjectKind::kFeatureView:
      return "feature_view";
    case ObjectKind::kFeatureService:
      return "feature_service";
    case ObjectKind::kRequestSource:
      return "request_source";
    case ObjectKind::kOnDemandFeatureView:
      return "on_demand_feature_view";
    case ObjectKind::kTransformation:
      return "transformation";
  }
  return "?";
}

arrow::Result<ObjectKind> ParseObjectKind(const std::string& text) {
  std::string t = Lower(text);
  std::replace(t.begin(), t.end(), '-', '_');
  if (t == "entity" || t == "entities") return ObjectKind::kEntity;
  if (t == "source" || t == "sources") return ObjectKind::kSource;
  if (t == "feature_view" || t == "feature_views" || t == "view") return ObjectKind::kFeatureView;
  if (t == "feature_service" || t == "feature_services" || t == "service") {
    return ObjectKind::kFeatureService;
  }
  if (t == "request_source" || t == "request_sources") return ObjectKind::kRequestSource;
  if (t == "on_demand_feature_view" || t == "on_demand_feature_views" || t == "on_demand_view" ||
      t == "odfv") {
    return ObjectKind::kOnDemandFeatureView;
  }
  if (t == "transformation" || t == "transformations") return ObjectKind::kTransformation;
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kObjectNotFound,
                   "unknown object kind '" + text +
                       "': use entity, source, feature_view, feature_service, request_source, "
                       "on_demand_feature_view or transformation");
}

// ---- canonical JSON -----------------------------------------------------------

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void Str(Writer& w, const std::string& s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}
void Key(Writer& w, const char* k) { w.Key(k); }

void WriteTags(Writer& w, const Tags& tags) {
  w.StartObject();
  for (const auto& [k, v] : tags) {
    Str(w, k);
    Str(w, v);
  }
  w.EndObject();
}

void WriteStringMap(Writer& w, const std::map<std::string, std::string>& m) { WriteTags(w, m); }

void WriteStrings(Writer& w, const std::vector<std::string>& v) {
  w.StartArray();
  for (const auto& s : v) Str(w, s);
  w.EndArray();
}

void WriteField(Writer& w, const Field& f, bool with_nullable) {
  w.StartObject();
  Key(w, "name");
  Str(w, f.name);
  Key(w, "type");
  Str(w, f.type ? FeatureTypeName(*f.type) : "");
  if (with_nullable) {
    Key(w, "nullable");
    w.Bool(f.nullable);
  }
  Key(w, "description");
  Str(w, f.description);
  Key(w, "tags");
  WriteTags(w, f.tags);
  w.EndObject();
}

void WriteFields(Writer& w, const std::vector<Field>& fields, bool with_nullable) {
  w.StartArray();
  for (const auto& f : fields) WriteField(w, f, with_nullable);
  w.EndArray();
}

// {table: [columns]} by table (the order they are written in does not count).
void WriteInputKeys(Writer& w, const std::vector<Transformation::InputKeys>& input_keys) {
  std::map<std::string, const std::vector<std::string>*> by_table;
  for (const auto& ik : input_keys) by_table[ik.table] = &ik.columns;
  w.StartObject();
  for (const auto& [table, columns] : by_table) {
    Key(w, table.c_str());
    WriteStrings(w, *columns);
  }
  w.EndObject();
}

// Where an object's "owner" stands against its "description" in its JSON.
enum class OwnerOrder { kAfterDescription, kBeforeDescription };

// The canonical JSON of registry object `o`: {"name", the members `members` writes, then
// "description", "owner" (in `order`) and "tags"}, the layout every kind shares. The text is
// stored and compared, so each kind's member order is fixed (feature views and on-demand
// views have always written owner first).
template <typename T, typename Fn>
std::string BuildObject(const T& o, Fn&& members,
                        OwnerOrder order = OwnerOrder::kAfterDescription) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  Key(w, "name");
  Str(w, o.name);
  members(w);
  if (order == OwnerOrder::kBeforeDescription) {
    Key(w, "owner");
    Str(w, o.owner);
  }
  Key(w, "description");
  Str(w, o.description);
  if (order == OwnerOrder::kAfterDescription) {
    Key(w, "owner");
    Str(w, o.owner);
  }
  Key(w, "tags");
  WriteTags(w, o.tags);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace

std::string ToCanonicalJson(const Entity& e) {
  return BuildObject(e, [&](Writer& w) {
    Key(w, "join_keys");
    WriteFields(w, e.join_keys, false);
  });
}

std::string ToCanonicalJson(const Source& s) {
  return BuildObject(s, [&](Writer& w) {
    Key(w, "type");
    Str(w, SourceTypeName(s.type));
    Key(w, "path");
    Str(w, s.path);
    Key(w, "timestamp_field");
    Str(w, s.timestamp_field);
    Key(w, "created_timestamp_field");
    Str(w, s.created_timestamp_field);
    Key(w, "field_mapping");
    WriteStringMap(w, s.field_mapping);
    Key(w, "schema");
    WriteFields(w, s.schema, true);
    Key(w, "checks");
    w.StartArray();
    for (const auto& c : s.checks) {
      w.StartObject();
      Key(w, "name");
      Str(w, c.name);
      Key(w, "expr");
      Str(w, c.expression);
      w.EndObject();
    }
    w.EndArray();
    Key(w, "partition_by");
    WriteStrings(w, s.partition_by);
    if (s.type == SourceType::kKafka) {  // only kafka sources: other sources' JSON is unchanged
      Key(w, "kafka");
      w.StartObject();
      Key(w, "brokers");
      Str(w, s.kafka.brokers);
      Key(w, "topic");
      Str(w, s.kafka.topic);
      Key(w, "format");
      Str(w, s.kafka.format);
      Key(w, "columns");
      WriteStringMap(w, s.kafka.columns);
      Key(w, "allowed_lateness");
      Str(w, FormatDuration(s.kafka.allowed_lateness_seconds));
      // Only when set: the JSON (and version) of a source without them is unchanged.
      if (!s.kafka.avro_schema.empty()) {
        Key(w, "avro_schema");
        Str(w, s.kafka.avro_schema);
      }
      if (!s.kafka.avro_schema_file.empty()) {
        Key(w, "avro_schema_file");
        Str(w, s.kafka.avro_schema_file);
      }
      w.EndObject();
    }
  });
}

std::string ToCanonicalJson(const FeatureView& v) {
  return BuildObject(
      v,
      [&](Writer& w) {
        Key(w, "entities");
        WriteStrings(w, v.entities);
        Key(w, "source");
        Str(w, v.source);
        Key(w, "features");
        WriteFields(w, v.features, false);
        if (!v.aggregations
                 .empty()) {  // only window views have the key: plain views' JSON is unchanged
          Key(w, "aggregations");
          w.StartArray();
          for (const auto& a : v.aggregations) {
            w.StartObject();
            Key(w, "name");
            Str(w, a.name);
            Key(w, "function");
            Str(w, AggregationFunctionName(a.function));
            Key(w, "column");
            Str(w, a.column);
            Key(w, "window");
            Str(w, FormatDuration(a.window_seconds));
            Key(w, "k");
            w.Int(a.k);
            Key(w, "percentile");
            w.Double(a.percentile);
            Key(w, "filter");
            Str(w, a.filter);
            w.EndObject();
          }
          w.EndArray();
        }
        Key(w, "ttl");
        Str(w, FormatDuration(v.ttl_seconds));
        Key(w, "online");
        w.Bool(v.online);
      },
      OwnerOrder::kBeforeDescription);
}

std::string ToCanonicalJson(const FeatureService& s) {
  return BuildObject(s, [&](Writer& w) {
    Key(w, "items");
    w.StartArray();
    for (const auto& it : s.items) {
      w.StartObject();
      Key(w, "name");  // flattening keys array elements by "name"
      Str(w, it.alias.empty() ? it.view : it.view + " as " + it.alias);
      Key(w, "view");
      Str(w, it.view);
      Key(w, "features");
      WriteStrings(w, it.features);
      Key(w, "alias");
      Str(w, it.alias);
      Key(w, "join_key_map");
      WriteStringMap(w, it.join_key_map);
      w.EndObject();
    }
    w.EndArray();
    Key(w, "includes");
    WriteStrings(w, s.includes);
  });
}

std::string ToCanonicalJson(const RequestSource& s) {
  return BuildObject(s, [&](Writer& w) {
    Key(w, "schema");
    WriteFields(w, s.schema, false);
  });
}

std::string ToCanonicalJson(const OnDemandFeatureView& v) {
  return BuildObject(
      v,
      [&](Writer& w) {
        Key(w, "sources");
        WriteStrings(w, v.sources);
        Key(w, "features");
        w.StartArray();
        for (const auto& f : v.features) {
          w.StartObject();
          Key(w, "name");
          Str(w, f.field.name);
          Key(w, "type");
          Str(w, f.field.type ? FeatureTypeName(*f.field.type) : "");
          Key(w, "expression");
          Str(w, f.expression);
          Key(w, "description");
          Str(w, f.field.description);
          Key(w, "tags");
          WriteTags(w, f.field.tags);
          w.EndObject();
        }
        w.EndArray();
      },
      OwnerOrder::kBeforeDescription);
}

namespace {

// A Python transformation's function (absent for SQL ones, whose form is unchanged):
// where it is, what it is handed, the tables it reads and its source text.
void WritePythonFunction(Writer& w, const Transformation& t) {
  Key(w, "python");
  Str(w, t.python_file + ":" + t.python_function);
  Key(w, "kind");
  Str(w, t.kind);
  Key(w, "inputs");
  WriteStrings(w, t.inputs);
  Key(w, "source");
  Str(w, t.python_source);
}

}  // namespace

std::string ToCanonicalJson(const Transformation& t) {
  return BuildObject(t, [&](Writer& w) {
    Key(w, "output");
    Str(w, t.output);
    Key(w, "mode");
    Str(w, TransformModeName(t.mode));
    Key(w, "keys");
    WriteStrings(w, t.keys);
    Key(w, "order_by");
    Str(w, t.order_by);
    Key(w, "on_change");
    Str(w, OnChangeName(t.on_change));
    if (!t.input_keys.empty()) {  // only when declared: other transformations' JSON is unchanged
      Key(w, "input_keys");
      WriteInputKeys(w, t.input_keys);
    }
    Key(w, "partition_by");
    WriteStrings(w, t.partition_by);
    Key(w, "schema");
    WriteFields(w, t.schema, true);
    Key(w, "sql");
    Str(w, t.sql);
    if (!t.python_file.empty()) WritePythonFunction(w, t);
  });
}

namespace {

arrow::Status Corrupt(const std::string& what) {
  return MakeError(arrow::StatusCode::IOError, ErrorKind::kCorruptLog,
                   "registry object is malformed: " + what);
}

std::string GetStr(const rapidjson::Value& o, const char* key) {
  if (!o.IsObject()) return "";
  auto it = o.FindMember(key);
  if (it == o.MemberEnd() || !it->value.IsString()) return "";
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

bool GetBool(const rapidjson::Value& o, const char* key, bool dflt) {
  auto it = o.FindMember(key);
  if (it == o.MemberEnd() || !it->value.IsBool()) return dflt;
  return it->value.GetBool();
}

std::map<std::string, std::string> GetMap(const rapidjson::Value& o, const char* key) {
  std::map<std::string, std::string> out;
  auto it = o.FindMember(key);
  if (it == o.MemberEnd() || !it->value.IsObject()) return out;
  for (auto m = it->value.MemberBegin(); m != it->value.MemberEnd(); ++m) {
    if (m->value.IsString()) out[m->name.GetString()] = m->value.GetString();
  }
  return out;
}

std::vector<std::string> GetStrings(const rapidjson::Value& o, const char* key) {
  std::vector<std::string> out;
  auto it = o.FindMember(key);
  if (it == o.MemberEnd() || !it->value.IsArray()) return out;
  for (const auto& v : it->value.GetArray()) {
    if (v.IsString()) out.push_back(v.GetString());
  }
  return out;
}

arrow::Result<std::vector<Field>> GetFields(const rapidjson::Value& o, const char* key) {
  std::vector<Field> out;
  auto it = o.FindMember(key);
  if (it == o.MemberEnd() || !it->value.IsArray()) return out;
  for (const auto& v : it->value.GetArray()) {
    Field f;
    f.name = GetStr(v, "name");
    ARROW_ASSIGN_OR_RAISE(f.type, ParseFeatureType(GetStr(v, "type")));
    f.nullable = GetBool(v, "nullable", true);
    f.description = GetStr(v, "description");
    f.tags = GetMap(v, "tags");
    out.push_back(std::move(f));
  }
  return out;
}

// WritePythonFunction's keys back (none for a SQL transformation).
void ReadPythonFunction(const rapidjson::Value& d, Transformation* t) {
  const std::string ref = GetStr(d, "python");
  const auto colon = ref.rfind(':');
  if (colon == std::string::npos) return;
  t->python_file = ref.substr(0, colon);
  t->python_function = ref.substr(colon + 1);
  t->kind = GetStr(d, "kind");
  t->inputs = GetStrings(d, "inputs");
  t->python_source = GetStr(d, "source");
}

}  // namespace

arrow::Status AddFromCanonicalJson(ObjectKind kind, const std::string& json, Definitions* defs) {
  rapidjson::Document d;
  if (!json::ParseJson(&d, json).ok() || !d.IsObject()) return Corrupt(json.substr(0, 80));
  switch (kind) {
    case ObjectKind::kEntity: {
      Entity e;
      e.name = GetStr(d, "name");
      ARROW_ASSIGN_OR_RAISE(e.join_keys, GetFields(d, "join_keys"));
      e.description = GetStr(d, "description");
      e.owner = GetStr(d, "owner");
      e.tags = GetMap(d, "tags");
      defs->entities.push_back(std::move(e));
      break;
    }
    case ObjectKind::kSource: {
      Source s;
      s.name = GetStr(d, "name");
      std::string type = GetStr(d, "type");
      s.type = type == "push"      ? SourceType::kPush
               : type == "kafka"   ? SourceType::kKafka
               : type == "parquet" ? SourceType::kParquet
                                   : SourceType::kDelta;
      s.path = GetStr(d, "path");
      s.timestamp_field = GetStr(d, "timestamp_field");
      s.created_timestamp_field = GetStr(d, "created_timestamp_field");
      s.field_mapping = GetMap(d, "field_mapping");
      ARROW_ASSIGN_OR_RAISE(s.schema, GetFields(d, "schema"));
      auto checks = d.FindMember("checks");
      if (checks != d.MemberEnd() && checks->value.IsArray()) {
        for (const auto& c : checks->value.GetArray()) {
          s.checks.push_back({GetStr(c, "name"), GetStr(c, "expr")});
        }
      }
      s.partition_by = GetStrings(d, "partition_by");
      auto kafka = d.FindMember("kafka");
      if (kafka != d.MemberEnd() && kafka->value.IsObject()) {
        const auto& k = kafka->value;
        s.kafka.brokers = GetStr(k, "brokers");
        s.kafka.topic = GetStr(k, "topic");
        s.kafka.format = GetStr(k, "format");
        s.kafka.columns = GetMap(k, "columns");
        ARROW_ASSIGN_OR_RAISE(s.kafka.allowed_lateness_seconds,
                              ParseDuration(GetStr(k, "allowed_lateness")));
        s.kafka.avro_schema = GetStr(k, "avro_schema");
        s.kafka.avro_schema_file = GetStr(k, "avro_schema_file");
      }
      s.description = GetStr(d, "description");
      s.owner = GetStr(d, "owner");
      s.tags = GetMap(d, "tags");
      defs->sources.push_back(std::move(s));
      break;
    }
    case ObjectKind::kFeatureView: {
      FeatureView v;
      v.name = GetStr(d, "name");
      v.entities = GetStrings(d, "entities");
      v.source = GetStr(d, "source");
      ARROW_ASSIGN_OR_RAISE(v.features, GetFields(d, "features"));
      auto aggs = d.FindMember("aggregations");
      if (aggs != d.MemberEnd() && aggs->value.IsArray()) {
        for (const auto& a : aggs->value.GetArray()) {
          Aggregation agg;
          agg.name = GetStr(a, "name");
          ARROW_ASSIGN_OR_RAISE(agg.function, ParseAggregationFunction(GetStr(a, "function")));
          agg.column = GetStr(a, "column");
          ARROW_ASSIGN_OR_RAISE(agg.window_seconds, ParseDuration(GetStr(a, "window")));
          auto k = a.FindMember("k");
          if (k != a.MemberEnd() && k->value.IsInt()) agg.k = k->value.GetInt();
          auto q = a.FindMember("percentile");
          if (q != a.MemberEnd() && q->value.IsNumber()) agg.percentile = q->value.GetDouble();
          agg.filter = GetStr(a, "filter");
          v.aggregations.push_back(std::move(agg));
        }
      }
      ARROW_ASSIGN_OR_RAISE(v.ttl_seconds, ParseDuration(GetStr(d, "ttl")));
      v.online = GetBool(d, "online", true);
      v.owner = GetStr(d, "owner");
      v.description = GetStr(d, "description");
      v.tags = GetMap(d, "tags");
      defs->feature_views.push_back(std::move(v));
      break;
    }
    case ObjectKind::kFeatureService: {
      FeatureService s;
      s.name = GetStr(d, "name");
      auto items = d.FindMember("items");
      if (items != d.MemberEnd() && items->value.IsArray()) {
        for (const auto& it : items->value.GetArray()) {
          FeatureServiceItem item;
          item.view = GetStr(it, "view");
          item.features = GetStrings(it, "features");
          item.alias = GetStr(it, "alias");
          item.join_key_map = GetMap(it, "join_key_map");
          s.items.push_back(std::move(item));
        }
      }
      s.includes = GetStrings(d, "includes");
      s.description = GetStr(d, "description");
      s.owner = GetStr(d, "owner");
      s.tags = GetMap(d, "tags");
      defs->feature_services.push_back(std::move(s));
      break;
    }
    case ObjectKind::kRequestSource: {
      RequestSource s;
      s.name = GetStr(d, "name");
      ARROW_ASSIGN_OR_RAISE(s.schema, GetFields(d, "schema"));
      s.description = GetStr(d, "description");
      s.owner = GetStr(d, "owner");
      s.tags = GetMap(d, "tags");
      defs->request_sources.push_back(std::move(s));
      break;
    }
    case ObjectKind::kOnDemandFeatureView: {
      OnDemandFeatureView v;
      v.name = GetStr(d, "name");
      v.sources = GetStrings(d, "sources");
      ARROW_ASSIGN_OR_RAISE(auto fields, GetFields(d, "features"));
      auto features = d.FindMember("features");
      for (size_t i = 0; i < fields.size(); ++i) {
        OnDemandFeature f;
        f.field = std::move(fields[i]);
        f.expression = GetStr(features->value[static_cast<rapidjson::SizeType>(i)], "expression");
        v.features.push_back(std::move(f));
      }
      v.owner = GetStr(d, "owner");
      v.description = GetStr(d, "description");
      v.tags = GetMap(d, "tags");
      defs->on_demand_feature_views.push_back(std::move(v));
      break;
    }
    case ObjectKind::kTransformation: {
      Transformation t;
      t.name = GetStr(d, "name");
      t.output = GetStr(d, "output");
      const std::string mode = GetStr(d, "mode");
      t.mode = mode == "append"  ? TransformMode::kAppend
               : mode == "merge" ? TransformMode::kMerge
                                 : TransformMode::kFullRefresh;
      t.keys = GetStrings(d, "keys");
      t.order_by = GetStr(d, "order_by");
      const std::string on_change = GetStr(d, "on_change");
      t.on_change = on_change == "keys"         ? OnChange::kKeys
                    : on_change == "partitions" ? OnChange::kPartitions
                    : on_change == "fail"       ? OnChange::kFail
                                                : OnChange::kFullRefresh;
      auto input_keys = d.FindMember("input_keys");
      if (input_keys != d.MemberEnd() && input_keys->value.IsObject()) {
        for (auto m = input_keys->value.MemberBegin(); m != input_keys->value.MemberEnd(); ++m) {
          Transformation::InputKeys ik;
          ik.table = m->name.GetString();
          ik.columns = GetStrings(input_keys->value, ik.table.c_str());
          t.input_keys.push_back(std::move(ik));
        }
      }
      t.partition_by = GetStrings(d, "partition_by");
      ARROW_ASSIGN_OR_RAISE(t.schema, GetFields(d, "schema"));
      t.sql = GetStr(d, "sql");
      ReadPythonFunction(d, &t);
      t.description = GetStr(d, "description");
      t.owner = GetStr(d, "owner");
      t.tags = GetMap(d, "tags");
      defs->transformations.push_back(std::move(t));
      break;
    }
  }
  return arrow::Status::OK();
}

namespace {

std::string ScalarText(const rapidjson::Value& v) {
  if (v.IsString()) return std::string(v.GetString(), v.GetStringLength());
  if (v.IsBool()) return v.GetBool() ? "true" : "false";
  if (v.IsInt64()) return std::to_string(v.GetInt64());
  if (v.IsNumber()) {
    std::ostringstream os;
    os << v.GetDouble();
    return os.str();
  }
  if (v.IsNull()) return "null";
  return "";
}

void Flatten(const rapidjson::Value& v, const std::string& prefix,
             std::map<std::string, std::string>* out) {
  if (v.IsObject()) {
    if (v.MemberCount() == 0 && !prefix.empty()) return;  // empty map: nothing to show
    for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
      std::string k = m->name.GetString();
      // In a map, a key to an empty list says something (input_keys: {bronze.tags: []}).
      if (!prefix.empty() && m->value.IsArray() && m->value.Empty()) {
        (*out)[prefix + "." + k] = "[]";
        continue;
      }
      Flatten(m->value, prefix.empty() ? k : prefix + "." + k, out);
    }
  } else if (v.IsArray()) {
    bool named = v.Size() > 0;
    for (const auto& e : v.GetArray()) {
      if (!e.IsObject() || !e.HasMember("name") || !e["name"].IsString()) named = false;
    }
    if (named) {
      for (const auto& e : v.GetArray()) {
        std::string base = prefix + "[" + e["name"].GetString() + "]";
        for (auto m = e.MemberBegin(); m != e.MemberEnd(); ++m) {
          std::string k = m->name.GetString();
          if (k == "name") continue;
          Flatten(m->value, base + "." + k, out);
        }
        if (e.MemberCount() == 1) (*out)[base] = "";
      }
    } else if (v.Size() > 0) {
      bool scalars = true;
      for (const auto& e : v.GetArray()) scalars = scalars && !e.IsObject() && !e.IsArray();
      if (scalars) {
        std::string joined;
        for (const auto& e : v.GetArray()) {
          if (!joined.empty()) joined += ", ";
          joined += ScalarText(e);
        }
        (*out)[prefix] = "[" + joined + "]";
      } else {
        int i = 0;
        for (const auto& e : v.GetArray())
          Flatten(e, prefix + "[" + std::to_string(i++) + "]", out);
      }
    }
  } else {
    std::string s = ScalarText(v);
    if (!s.empty()) (*out)[prefix] = s;
  }
}

}  // namespace

std::map<std::string, std::string> FlattenJson(const std::string& json) {
  std::map<std::string, std::string> out;
  rapidjson::Document d;
  if (!json::ParseJson(&d, json).ok()) return out;
  Flatten(d, "", &out);
  return out;
}

}  // namespace stratalake::registry
