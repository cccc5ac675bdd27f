#include "storage/stats.h"

#include <cmath>
#include <cstdio>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "common/json.h"
#include "storage/schema.h"

namespace stratalake::delta {

namespace {

namespace cp = arrow::compute;
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr size_t kStringPrefix = 32;

// Truncate a UTF-8 string to `n` code points.
std::string Utf8Prefix(std::string_view s, size_t n, bool* truncated) {
  size_t cps = 0, i = 0;
  while (i < s.size()) {
    if (cps == n) {
      *truncated = true;
      return std::string(s.substr(0, i));
    }
    unsigned char c = static_cast<unsigned char>(s[i]);
    i += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    ++cps;
  }
  *truncated = false;
  return std::string(s);
}

std::string FormatTimestamp(int64_t v, arrow::TimeUnit::type unit, bool utc) {
  int64_t ms;
  switch (unit) {
    case arrow::TimeUnit::SECOND:
      ms = v * 1000;
      break;
    case arrow::TimeUnit::MILLI:
      ms = v;
      break;
    case arrow::TimeUnit::MICRO:
      ms = v >= 0 ? v / 1000 : (v - 999) / 1000;
      break;
    default:
      ms = v >= 0 ? v / 1000000 : (v - 999999) / 1000000;
      break;
  }
  int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  int64_t frac = ms - secs * 1000;
  time_t t = static_cast<time_t>(secs);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[80];
  std::snprintf(out, sizeof out, "%s.%03lld%s", buf, static_cast<long long>(frac), utc ? "Z" : "");
  return out;
}

// Write a min or max scalar as Delta stats JSON; false when the type has no stats.
bool WriteStatValue(Writer& w, const arrow::Scalar& s, bool is_max) {
  if (!s.is_valid) return false;
  switch (s.type->id()) {
    case arrow::Type::INT8:
      w.Int(static_cast<const arrow::Int8Scalar&>(s).value);
      return true;
    case arrow::Type::INT16:
      w.Int(static_cast<const arrow::Int16Scalar&>(s).value);
      return true;
    case arrow::Type::INT32:
      w.Int(static_cast<const arrow::Int32Scalar&>(s).value);
      return true;
    case arrow::Type::INT64:
      w.Int64(static_cast<const arrow::Int64Scalar&>(s).value);
      return true;
    case arrow::Type::FLOAT: {
      double d = static_cast<const arrow::FloatScalar&>(s).value;
      if (!std::isfinite(d)) return false;
      w.Double(d);
      return true;
    }
    case arrow::Type::DOUBLE: {
      double d = static_cast<const arrow::DoubleScalar&>(s).value;
      if (!std::isfinite(d)) return false;
      w.Double(d);
      return true;
    }
    case arrow::Type::STRING: {
      auto v = static_cast<const arrow::StringScalar&>(s).view();
      bool truncated = false;
      std::string out = Utf8Prefix(v, kStringPrefix, &truncated);
      if (truncated && is_max) out += "\xEF\xBF\xBF";  // U+FFFF tie-breaker, as Spark does
      w.String(out.c_str(), static_cast<rapidjson::SizeType>(out.size()));
      return true;
    }
    case arrow::Type::DATE32: {
      std::string d = s.ToString();
      w.String(d.c_str());
      return true;
    }
    case arrow::Type::TIMESTAMP: {
      const auto& tt = static_cast<const arrow::TimestampType&>(*s.type);
      std::string t = FormatTimestamp(static_cast<const arrow::TimestampScalar&>(s).value,
                                      tt.unit(), !tt.timezone().empty());
      w.String(t.c_str());
      return true;
    }
    case arrow::Type::DECIMAL128: {
      std::string d = s.ToString();
      w.RawValue(d.c_str(), d.size(), rapidjson::kNumberType);
      return true;
    }
    default:
      return false;
  }
}

bool HasMinMax(const arrow::DataType& t) {
  switch (t.id()) {
    case arrow::Type::INT8:
    case arrow::Type::INT16:
    case arrow::Type::INT32:
    case arrow::Type::INT64:
    case arrow::Type::FLOAT:
    case arrow::Type::DOUBLE:
    case arrow::Type::STRING:
    case arrow::Type::DATE32:
    case arrow::Type::TIMESTAMP:
    case arrow::Type::DECIMAL128:
      return true;
    default:
      return false;
  }
}

struct LeafStats {
  std::vector<std::string> path;
  int64_t null_count = 0;
  std::shared_ptr<arrow::Scalar> min, max;
};

arrow::Status CollectLeaves(const std::vector<std::string>& path,
                            const std::shared_ptr<arrow::ChunkedArray>& col, int* budget,
                            std::vector<LeafStats>* out) {
  if (*budget == 0) return arrow::Status::OK();
  const auto& type = *col->type();
  if (type.id() == arrow::Type::STRUCT) {
    for (int i = 0; i < type.num_fields(); ++i) {
      arrow::ArrayVector children;
      for (const auto& chunk : col->chunks()) {
        ARROW_ASSIGN_OR_RAISE(auto child,
                              static_cast<const arrow::StructArray&>(*chunk).GetFlattenedField(i));
        children.push_back(child);
      }
      auto child_path = path;
      child_path.push_back(type.field(i)->name());
      ARROW_RETURN_NOT_OK(CollectLeaves(
          child_path, std::make_shared<arrow::ChunkedArray>(children, type.field(i)->type()),
          budget, out));
    }
    return arrow::Status::OK();
  }
  if (*budget > 0) --*budget;
  LeafStats leaf;
  leaf.path = path;
  leaf.null_count = col->null_count();
  if (HasMinMax(type) && leaf.null_count < col->length()) {
    ARROW_ASSIGN_OR_RAISE(auto mm, cp::MinMax(col, cp::ScalarAggregateOptions(true, 0)));
    const auto& st = static_cast<const arrow::StructScalar&>(*mm.scalar());
    leaf.min = st.value[0];
    leaf.max = st.value[1];
  }
  out->push_back(std::move(leaf));
  return arrow::Status::OK();
}

// Emit {"a": v, "s": {"b": v}} for leaves whose value `get` provides.
template <typename Get>
void WriteNested(Writer& w, const std::vector<LeafStats>& leaves, size_t depth, size_t begin,
                 size_t end, Get get) {
  w.StartObject();
  size_t i = begin;
  while (i < end) {
    const auto& name = leaves[i].path[depth];
    size_t j = i + 1;
    while (j < end && leaves[j].path.size() > depth + 1 && leaves[i].path.size() > depth + 1 &&
           leaves[j].path[depth] == name) {
      ++j;
    }
    if (leaves[i].path.size() > depth + 1) {
      w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
      WriteNested(w, leaves, depth + 1, i, j, get);
    } else {
      rapidjson::StringBuffer tmp;
      Writer tw(tmp);
      if (get(leaves[i], tw)) {
        w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
        w.RawValue(tmp.GetString(), tmp.GetSize(), rapidjson::kObjectType);
      }
    }
    i = j;
  }
  w.EndObject();
}

// A stats JSON value as a scalar of `type`; nullptr when unusable.
std::shared_ptr<arrow::Scalar> StatScalar(const rapidjson::Value& v,
                                          const std::shared_ptr<arrow::DataType>& type,
                                          bool is_max) {
  switch (type->id()) {
    case arrow::Type::INT8:
    case arrow::Type::INT16:
    case arrow::Type::INT32:
    case arrow::Type::INT64: {
      if (!v.IsInt64()) return nullptr;
      auto s = cp::Cast(arrow::Datum(std::make_shared<arrow::Int64Scalar>(v.GetInt64())), type);
      return s.ok() ? s->scalar() : nullptr;
    }
    case arrow::Type::FLOAT:
    case arrow::Type::DOUBLE: {
      if (!v.IsNumber()) return nullptr;
      auto s = cp::Cast(arrow::Datum(std::make_shared<arrow::DoubleScalar>(v.GetDouble())), type);
      return s.ok() ? s->scalar() : nullptr;
    }
    case arrow::Type::STRING:
      if (!v.IsString()) return nullptr;
      return arrow::MakeScalar(std::string(v.GetString(), v.GetStringLength()));
    case arrow::Type::DATE32: {
      if (!v.IsString()) return nullptr;
      auto s = cp::Cast(arrow::Datum(arrow::MakeScalar(std::string(v.GetString()))), type);
      return s.ok() ? s->scalar() : nullptr;
    }
    case arrow::Type::TIMESTAMP: {
      if (!v.IsString()) return nullptr;
      auto parsed = ParsePartitionValue(std::string(v.GetString()), type);
      if (!parsed.ok() || !(*parsed)->is_valid) return nullptr;
      auto ts = std::static_pointer_cast<arrow::TimestampScalar>(*parsed);
      if (is_max) {
        // Stats are truncated to milliseconds: widen the max by 1 ms.
        const auto& tt = static_cast<const arrow::TimestampType&>(*type);
        int64_t one_ms = tt.unit() == arrow::TimeUnit::NANO    ? 1000000
                         : tt.unit() == arrow::TimeUnit::MICRO ? 1000
                         : tt.unit() == arrow::TimeUnit::MILLI ? 1
                                                               : 1;
        return std::make_shared<arrow::TimestampScalar>(ts->value + one_ms, type);
      }
      return ts;
    }
    default:
      return nullptr;  // decimals, booleans, binary: no skipping
  }
}

const rapidjson::Value* Member(const rapidjson::Value& obj, const char* a, const std::string& b) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(a);
  if (it == obj.MemberEnd() || !it->value.IsObject()) return nullptr;
  auto jt = it->value.FindMember(b.c_str());
  if (jt == it->value.MemberEnd()) return nullptr;
  return &jt->value;
}

}  // namespace

arrow::Result<std::string> CollectStats(const arrow::Table& data, int num_indexed_cols) {
  std::vector<LeafStats> leaves;
  int budget = num_indexed_cols;
  for (int i = 0; i < data.num_columns(); ++i) {
    ARROW_RETURN_NOT_OK(CollectLeaves({data.field(i)->name()}, data.column(i), &budget, &leaves));
  }
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("numRecords");
  w.Int64(data.num_rows());
  w.Key("minValues");
  WriteNested(w, leaves, 0, 0, leaves.size(), [](const LeafStats& l, Writer& out) {
    return l.min && WriteStatValue(out, *l.min, false);
  });
  w.Key("maxValues");
  WriteNested(w, leaves, 0, 0, leaves.size(), [](const LeafStats& l, Writer& out) {
    return l.max && WriteStatValue(out, *l.max, true);
  });
  w.Key("nullCount");
  WriteNested(w, leaves, 0, 0, leaves.size(), [](const LeafStats& l, Writer& out) {
    out.Int64(l.null_count);
    return true;
  });
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::optional<int64_t> StatsNumRecords(const std::string& stats) {
  if (stats.empty()) return std::nullopt;
  rapidjson::Document doc;
  if (!json::ParseJson(&doc, stats).ok() || !doc.IsObject()) return std::nullopt;
  auto it = doc.FindMember("numRecords");
  if (it == doc.MemberEnd() || !it->value.IsInt64()) return std::nullopt;
  return it->value.GetInt64();
}

arrow::Result<cp::Expression> FileGuarantee(const Snapshot& snapshot, const AddFile& file,
                                            const std::set<std::string>& columns) {
  const auto& schema = *snapshot.schema();
  const std::string mode = snapshot.ColumnMappingMode();
  const auto& pcols = snapshot.metadata().partition_columns;
  std::vector<cp::Expression> terms;
  rapidjson::Document doc;
  bool parsed = false;
  int64_t num_records = -1;
  for (const auto& name : columns) {
    auto field = schema.GetFieldByName(name);
    if (!field) continue;
    std::string phys = PhysicalName(*field, mode);
    auto ref = cp::field_ref(name);
    if (std::find(pcols.begin(), pcols.end(), name) != pcols.end()) {
      auto it = file.partition_values.find(phys);
      if (it == file.partition_values.end()) continue;
      auto value = ParsePartitionValue(it->second, field->type());
      if (!value.ok()) continue;
      if (!(*value)->is_valid) {
        terms.push_back(cp::is_null(ref));
      } else {
        terms.push_back(cp::equal(ref, cp::literal(*value)));
      }
      continue;
    }
    if (file.stats.empty()) continue;
    if (!parsed) {
      parsed = true;
      if (!json::ParseJson(&doc, file.stats).ok() || !doc.IsObject()) return cp::literal(true);
      auto it = doc.FindMember("numRecords");
      if (it != doc.MemberEnd() && it->value.IsInt64()) num_records = it->value.GetInt64();
    }
    const rapidjson::Value* nulls = Member(doc, "nullCount", phys);
    int64_t null_count = nulls && nulls->IsInt64() ? nulls->GetInt64() : -1;
    if (num_records >= 0 && null_count == num_records && !file.deletion_vector) {
      terms.push_back(cp::is_null(ref));
      continue;
    }
    const rapidjson::Value* mn = Member(doc, "minValues", phys);
    const rapidjson::Value* mx = Member(doc, "maxValues", phys);
    if (!mn || !mx) continue;
    auto lo = StatScalar(*mn, field->type(), false);
    auto hi = StatScalar(*mx, field->type(), true);
    if (!lo || !hi) continue;
    cp::Expression range =
        cp::and_(cp::greater_equal(ref, cp::literal(lo)), cp::less_equal(ref, cp::literal(hi)));
    if (null_count != 0) range = cp::or_(range, cp::is_null(ref));
    terms.push_back(std::move(range));
  }
  if (terms.empty()) return cp::literal(true);
  return cp::and_(terms);
}

}  // namespace stratalake::delta
