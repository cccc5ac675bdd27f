#include "server/feast_wire.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <span>
#include <vector>

#include <arrow/api.h>
#include <arrow/util/base64.h>
#include <arrow/util/decimal.h>
#include <arrow/util/value_parsing.h>
#include <rapidjson/document.h>

#include "common/json.h"
#include "common/time_text.h"
#include "online/codec.h"
#include "stratalake/status.h"

namespace stratalake::server {

namespace {

std::string_view View(const rapidjson::Value& v) {
  return std::string_view(v.GetString(), v.GetStringLength());
}

arrow::Status Bad(std::string message) { return arrow::Status::Invalid(std::move(message)); }

arrow::Result<int64_t> ParseIsoMicros(std::string_view text) {
  static const auto parser = arrow::TimestampParser::MakeISO8601();
  int64_t us = 0;
  if ((*parser)(text.data(), text.size(), arrow::TimeUnit::MICRO, &us)) return us;
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError,
                   "'" + std::string(text.substr(0, 100)) +
                       "' is not an ISO 8601 time (e.g. 2026-08-01T00:00:00Z)");
}

// A JSON value of a push column -> text for ingestion's converters.
bool JsonToText(const rapidjson::Value& v, std::string* out) {
  char buf[40];
  if (v.IsString()) {
    out->assign(v.GetString(), v.GetStringLength());
  } else if (v.IsInt64()) {
    *out = std::to_string(v.GetInt64());
  } else if (v.IsUint64()) {
    *out = std::to_string(v.GetUint64());
  } else if (v.IsDouble()) {
    std::snprintf(buf, sizeof buf, "%.17g", v.GetDouble());
    *out = buf;
  } else if (v.IsBool()) {
    *out = v.GetBool() ? "true" : "false";
  } else {
    return false;
  }
  return true;
}

const rapidjson::Value* Member(const rapidjson::Value& object, const char* name) {
  auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

// Appends to `ignored` (when given) the names of `object`'s members not in `known`.
void NoteIgnored(const rapidjson::Value& object, std::initializer_list<std::string_view> known,
                 std::vector<std::string>* ignored) {
  if (!ignored) return;
  for (const auto& m : object.GetObject()) {
    const std::string_view name = View(m.name);
    if (std::find(known.begin(), known.end(), name) == known.end()) ignored->emplace_back(name);
  }
}

}  // namespace

std::string ErrorJson(std::string_view message) {
  std::string o = "{\"error\":\"";
  json::AppendEscaped(message, &o);
  o += "\"}";
  return o;
}

const char* FeastErrorClass(const arrow::Status& status) {
  const std::string& m = status.message();
  auto starts = [&](std::string_view prefix) { return m.rfind(prefix, 0) == 0; };
  if (HasErrorKind(status, ErrorKind::kFeatureNotFound) ||
      HasErrorKind(status, ErrorKind::kObjectNotFound)) {
    if (starts("unknown feature view '")) return "FeatureViewNotFoundException";
    if (starts("unknown feature service '")) return "FeatureServiceNotFoundException";
    if (starts("unknown push source '")) return "PushSourceNotFoundException";
    if (starts("unknown entity '")) return "EntityNotFoundException";
    return "FeastObjectNotFoundException";
  }
  return "FeastError";
}

std::string FeastErrorJson(std::string_view cls, std::string_view message) {
  // The inner document as Python's json.dumps writes it (", " and ": "), then
  // that text as a JSON string, as FastAPI's JSONResponse sends it.
  std::string inner = "{\"module\": \"feast.errors\", \"class\": \"";
  json::AppendEscaped(cls, &inner);
  inner += "\", \"message\": \"";
  json::AppendEscaped(message, &inner);
  inner += "\"}";
  std::string o = "\"";
  json::AppendEscaped(inner, &o);
  o += "\"";
  return o;
}

arrow::Status ParseOnlineRequest(std::string_view body, const RequestLimits& limits,
                                 online::OnlineRequest* req, OnlineRequestExtras* extras) {
  // The parse allocates from per-thread buffers (malloc only for large requests).
  thread_local char value_buffer[64 << 10];
  thread_local char stack_buffer[16 << 10];
  rapidjson::MemoryPoolAllocator<> value_alloc(value_buffer, sizeof value_buffer);
  rapidjson::MemoryPoolAllocator<> stack_alloc(stack_buffer, sizeof stack_buffer);
  rapidjson::GenericDocument<rapidjson::UTF8<>, rapidjson::MemoryPoolAllocator<>,
                             rapidjson::MemoryPoolAllocator<>>
      d(&value_alloc, sizeof stack_buffer, &stack_alloc);
  ARROW_RETURN_NOT_OK(json::ParseJson(&d, body, json::Strict()));
  if (!d.IsObject()) return Bad("the request body must be a JSON object");
  for (const auto& member : d.GetObject()) {
    const auto* m = &member;
    const std::string_view key = View(m->name);
    const rapidjson::Value& v = m->value;
    if (key == "features") {
      if (v.IsNull()) continue;  // absent
      if (!v.IsArray()) return Bad("\"features\" must be a list of \"view:feature\"");
      for (const auto& f : v.GetArray()) {
        if (!f.IsString()) return Bad("\"features\" must be a list of strings");
        req->features.emplace_back(View(f));
      }
    } else if (key == "feature_service") {
      if (v.IsNull()) continue;  // absent (Feast's client sends null)
      if (!v.IsString()) return Bad("\"feature_service\" must be a string");
      req->feature_service.assign(View(v));
    } else if (key == "full_feature_names") {
      if (!v.IsBool()) return Bad("\"full_feature_names\" must be true or false");
      req->full_feature_names = v.GetBool();
    } else if (key == "entities") {
      if (!v.IsObject()) {
        return Bad("\"entities\" must be an object: {\"join_key\": [values...]}");
      }
      for (const auto& entity : v.GetObject()) {
        const auto* e = &entity;
        std::string name(View(e->name));
        if (!e->value.IsArray()) return Bad("entity '" + name + "' must be a list of values");
        const size_t rows = e->value.Size();
        if (rows > limits.max_entity_rows) {
          return arrow::Status::CapacityError(
              "entity '", name, "' has ", rows, " values: over the limit of ",
              limits.max_entity_rows,
              " entity rows per request (the server's --max-entity-rows); split the request");
        }
        // Request data for on-demand features (Feast sends it inside `entities`):
        // a column with a fractional number or a boolean becomes a typed array.
        bool numbers = false, bools = false;
        for (const auto& x : e->value.GetArray()) {
          numbers = numbers || (x.IsNumber() && !x.IsInt64());
          bools = bools || x.IsBool();
        }
        if (numbers || bools) {
          std::shared_ptr<arrow::Array> array;
          if (numbers && !bools) {
            arrow::DoubleBuilder b;
            for (const auto& x : e->value.GetArray()) {
              if (x.IsNull()) {
                ARROW_RETURN_NOT_OK(b.AppendNull());
              } else if (x.IsNumber()) {
                ARROW_RETURN_NOT_OK(b.Append(x.GetDouble()));
              } else {
                return Bad("entity '" + name + "' mixes numbers with other values");
              }
            }
            ARROW_ASSIGN_OR_RAISE(array, b.Finish());
          } else {
            arrow::BooleanBuilder b;
            for (const auto& x : e->value.GetArray()) {
              if (x.IsNull()) {
                ARROW_RETURN_NOT_OK(b.AppendNull());
              } else if (x.IsBool()) {
                ARROW_RETURN_NOT_OK(b.Append(x.GetBool()));
              } else {
                return Bad("entity '" + name + "' mixes true/false with other values");
              }
            }
            ARROW_ASSIGN_OR_RAISE(array, b.Finish());
          }
          req->request_data.emplace_back(std::move(name), std::move(array));
          continue;
        }
        std::vector<online::KeyScalar> values;
        values.reserve(rows);
        for (const auto& x : e->value.GetArray()) {
          if (x.IsInt64()) {
            values.emplace_back(x.GetInt64());
          } else if (x.IsString()) {
            values.emplace_back(std::string(View(x)));
          } else if (x.IsNull()) {
            values.emplace_back(std::monostate{});
          } else {
            return Bad("entity '" + name + "' has a value that is neither an integer nor a string");
          }
        }
        req->entities.emplace_back(std::move(name), std::move(values));
      }
    } else if (key == "include_feature_view_version_metadata") {
      if (!v.IsBool()) {
        return Bad("\"include_feature_view_version_metadata\" must be true or false");
      }
      if (extras) extras->include_view_metadata = v.GetBool();
    } else if (extras) {
      // Feast's server ignores fields it does not know; so does this one.
      extras->ignored_fields.emplace_back(key);
    }
  }
  return arrow::Status::OK();
}

arrow::Result<PushRequest> ParsePushRequest(std::string_view body,
                                            std::vector<std::string>* ignored) {
  rapidjson::Document d;
  ARROW_RETURN_NOT_OK(json::ParseJson(&d, body, json::Strict()));
  if (!d.IsObject()) return Bad("the request body must be a JSON object");
  NoteIgnored(d, {"push_source_name", "df", "to", "allow_registry_cache", "transform_on_write"},
              ignored);
  const rapidjson::Value* source = Member(d, "push_source_name");
  if (!source || !source->IsString()) return Bad("\"push_source_name\" (a string) is required");
  const rapidjson::Value* df = Member(d, "df");
  if (!df || !df->IsObject()) {
    return Bad("\"df\" is required: an object of columns, {\"column\": [values...]}");
  }
  PushRequest out;
  out.source.assign(View(*source));
  if (const rapidjson::Value* to = Member(d, "to")) {
    if (!to->IsString()) return Bad("\"to\" must be a string");
    out.to.assign(View(*to));
  }
  // Columns as text; the push source's declared types convert them.
  arrow::FieldVector fields;
  arrow::ArrayVector arrays;
  int64_t rows = -1;
  std::string text;
  for (const auto& column : df->GetObject()) {
    const auto* m = &column;
    std::string name(View(m->name));
    if (!m->value.IsArray()) return Bad("df column '" + name + "' must be a list");
    const auto n = static_cast<int64_t>(m->value.Size());
    if (rows >= 0 && n != rows) {
      return Bad("df columns differ in length ('" + name + "' has " + std::to_string(n) +
                 " values, others " + std::to_string(rows) + ")");
    }
    rows = n;
    arrow::StringBuilder b;
    ARROW_RETURN_NOT_OK(b.Reserve(n));
    for (const auto& v : m->value.GetArray()) {
      if (v.IsNull()) {
        ARROW_RETURN_NOT_OK(b.AppendNull());
      } else if (JsonToText(v, &text)) {
        ARROW_RETURN_NOT_OK(b.Append(text));
      } else {
        return Bad("df column '" + name +
                   "' holds a list or object; values must be numbers, strings, booleans or null");
      }
    }
    std::shared_ptr<arrow::Array> arr;
    ARROW_RETURN_NOT_OK(b.Finish(&arr));
    fields.push_back(arrow::field(name, arrow::utf8()));
    arrays.push_back(std::move(arr));
  }
  if (rows < 0) return Bad("\"df\" has no columns");
  out.rows = rows;
  out.table = arrow::Table::Make(arrow::schema(fields), arrays, rows);
  return out;
}

namespace {

// What kind of values a JSON list holds (its nulls aside).
enum class JsonKind { kNone, kInt, kNumber, kBool, kString, kList, kMixed };

JsonKind KindOf(const rapidjson::Value& v) {
  if (v.IsInt64()) return JsonKind::kInt;
  if (v.IsNumber()) return JsonKind::kNumber;  // doubles, and integers past int64
  if (v.IsBool()) return JsonKind::kBool;
  if (v.IsString()) return JsonKind::kString;
  if (v.IsArray()) return JsonKind::kList;
  return JsonKind::kMixed;  // an object
}

JsonKind Widen(JsonKind a, JsonKind b) {
  if (a == JsonKind::kNone || a == b) return b;
  if ((a == JsonKind::kInt && b == JsonKind::kNumber) ||
      (a == JsonKind::kNumber && b == JsonKind::kInt)) {
    return JsonKind::kNumber;
  }
  return JsonKind::kMixed;
}

// A JSON list's values as one Arrow array typed from them (ParseWriteToOnlineRequest).
// `items` are the values: for a list column, the elements of every row's list.
arrow::Result<std::shared_ptr<arrow::Array>> JsonValuesToArrow(
    std::span<const rapidjson::Value* const> items, const std::string& column) {
  JsonKind kind = JsonKind::kNone;
  for (const auto* v : items) {
    if (!v->IsNull()) kind = Widen(kind, KindOf(*v));
  }
  switch (kind) {
    case JsonKind::kInt: {
      arrow::Int64Builder b;
      ARROW_RETURN_NOT_OK(b.Reserve(static_cast<int64_t>(items.size())));
      for (const auto* v : items) {
        if (v->IsNull()) {
          b.UnsafeAppendNull();
        } else {
          b.UnsafeAppend(v->GetInt64());
        }
      }
      return b.Finish();
    }
    case JsonKind::kNumber: {
      arrow::DoubleBuilder b;
      ARROW_RETURN_NOT_OK(b.Reserve(static_cast<int64_t>(items.size())));
      for (const auto* v : items) {
        if (v->IsNull()) {
          b.UnsafeAppendNull();
        } else {
          b.UnsafeAppend(v->GetDouble());
        }
      }
      return b.Finish();
    }
    case JsonKind::kBool: {
      arrow::BooleanBuilder b;
      ARROW_RETURN_NOT_OK(b.Reserve(static_cast<int64_t>(items.size())));
      for (const auto* v : items) {
        if (v->IsNull()) {
          b.UnsafeAppendNull();
        } else {
          b.UnsafeAppend(v->GetBool());
        }
      }
      return b.Finish();
    }
    case JsonKind::kList: {
      std::vector<const rapidjson::Value*> elements;
      arrow::TypedBufferBuilder<int32_t> offsets;
      arrow::TypedBufferBuilder<bool> valid;
      ARROW_RETURN_NOT_OK(offsets.Append(0));
      int64_t nulls = 0;
      for (const auto* v : items) {
        if (v->IsNull()) {
          ++nulls;
          ARROW_RETURN_NOT_OK(valid.Append(false));
        } else {
          for (const auto& e : v->GetArray()) {
            if (e.IsArray() || e.IsObject()) {
              return Bad("df column '" + column +
                         "' holds lists of lists or objects; values must be numbers, strings, "
                         "booleans, null or lists of those");
            }
            elements.push_back(&e);
          }
          ARROW_RETURN_NOT_OK(valid.Append(true));
        }
        if (elements.size() > static_cast<size_t>(INT32_MAX)) {
          return Bad("df column '" + column + "' holds too many list elements");
        }
        ARROW_RETURN_NOT_OK(offsets.Append(static_cast<int32_t>(elements.size())));
      }
      ARROW_ASSIGN_OR_RAISE(auto values, JsonValuesToArrow(elements, column));
      ARROW_ASSIGN_OR_RAISE(auto offset_buf, offsets.Finish());
      ARROW_ASSIGN_OR_RAISE(auto valid_buf, valid.Finish());
      return std::static_pointer_cast<arrow::Array>(std::make_shared<arrow::ListArray>(
          arrow::list(values->type()), static_cast<int64_t>(items.size()), offset_buf, values,
          nulls ? valid_buf : nullptr, nulls));
    }
    default: {  // strings, all nulls, or a mix: as text (the view's types convert it)
      arrow::StringBuilder b;
      ARROW_RETURN_NOT_OK(b.Reserve(static_cast<int64_t>(items.size())));
      std::string text;
      for (const auto* v : items) {
        if (v->IsNull()) {
          ARROW_RETURN_NOT_OK(b.AppendNull());
        } else if (JsonToText(*v, &text)) {
          ARROW_RETURN_NOT_OK(b.Append(text));
        } else {
          return Bad("df column '" + column +
                     "' mixes lists or objects with other values; values must be numbers, "
                     "strings, booleans, null or lists of those");
        }
      }
      return b.Finish();
    }
  }
}

}  // namespace

arrow::Result<WriteToOnlineRequest> ParseWriteToOnlineRequest(std::string_view body,
                                                              std::vector<std::string>* ignored) {
  rapidjson::Document d;
  ARROW_RETURN_NOT_OK(json::ParseJson(&d, body, json::Strict()));
  if (!d.IsObject()) return Bad("the request body must be a JSON object");
  NoteIgnored(d, {"feature_view_name", "df", "allow_registry_cache", "transform_on_write"},
              ignored);
  const rapidjson::Value* view = Member(d, "feature_view_name");
  if (!view || !view->IsString()) return Bad("\"feature_view_name\" (a string) is required");
  const rapidjson::Value* df = Member(d, "df");
  if (!df || !df->IsObject()) {
    return Bad("\"df\" is required: an object of columns, {\"column\": [values...]}");
  }
  WriteToOnlineRequest out;
  out.view.assign(View(*view));
  arrow::FieldVector fields;
  arrow::ArrayVector arrays;
  int64_t rows = -1;
  std::vector<const rapidjson::Value*> items;
  for (const auto& column : df->GetObject()) {
    std::string name(View(column.name));
    if (!column.value.IsArray()) return Bad("df column '" + name + "' must be a list");
    const auto n = static_cast<int64_t>(column.value.Size());
    if (rows >= 0 && n != rows) {
      return Bad("df columns differ in length ('" + name + "' has " + std::to_string(n) +
                 " values, others " + std::to_string(rows) + ")");
    }
    rows = n;
    items.clear();
    for (const auto& v : column.value.GetArray()) items.push_back(&v);
    ARROW_ASSIGN_OR_RAISE(auto array, JsonValuesToArrow(items, name));
    fields.push_back(arrow::field(name, array->type()));
    arrays.push_back(std::move(array));
  }
  if (rows < 0) return Bad("\"df\" has no columns");
  out.rows = rows;
  out.table = arrow::Table::Make(arrow::schema(fields), arrays, rows);
  return out;
}

arrow::Result<online::MaterializeOptions> ParseMaterializeRequest(
    std::string_view body, bool incremental, int64_t now_us, std::vector<std::string>* ignored) {
  rapidjson::Document d;
  ARROW_RETURN_NOT_OK(json::ParseJson(&d, body, json::Strict()));
  if (!d.IsObject()) {
    return Bad(
        "the body must be a JSON object like {\"start_ts\": \"...\", \"end_ts\": \"...\", "
        "\"feature_views\": [...]}");
  }
  online::MaterializeOptions mo;
  mo.incremental = incremental;
  for (const auto& member : d.GetObject()) {
    const std::string_view key = View(member.name);
    const rapidjson::Value& v = member.value;
    if (key == "end_ts" || key == "start_ts" || key == "feature_views") continue;  // below
    if (key == "disable_event_timestamp" && !incremental) {
      if (!v.IsBool()) return Bad("\"disable_event_timestamp\" must be true or false");
    } else if (key == "full_feature_names") {
      if (!v.IsBool()) return Bad("\"full_feature_names\" must be true or false");
    } else if (key == "version") {
      if (!v.IsNull()) {
        return Bad(
            "\"version\": feature view versions are not supported by this server; leave it out "
            "to materialize the current definition");
      }
    } else if (ignored) {
      ignored->emplace_back(key);
    }
  }
  const rapidjson::Value* disable = Member(d, "disable_event_timestamp");
  if (!incremental && disable && disable->IsBool() && disable->GetBool()) {
    // Feast: everything from 1970-01-01 up to now.
    if (now_us == 0) {
      now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    }
    mo.end_us = now_us;
  } else {
    const rapidjson::Value* end = Member(d, "end_ts");
    if (!end || !end->IsString()) return Bad("\"end_ts\" (an ISO 8601 time) is required");
    auto end_us = ParseIsoMicros(View(*end));
    if (!end_us.ok()) return Bad("end_ts: " + end_us.status().message());
    mo.end_us = *end_us;
    if (!incremental) {
      const rapidjson::Value* start = Member(d, "start_ts");
      if (!start || !start->IsString()) {
        return Bad("\"start_ts\" (an ISO 8601 time) is required");
      }
      auto start_us = ParseIsoMicros(View(*start));
      if (!start_us.ok()) return Bad("start_ts: " + start_us.status().message());
      mo.start_us = *start_us;
    }
  }
  if (const rapidjson::Value* views = Member(d, "feature_views"); views && !views->IsNull()) {
    // null (what Feast's client sends for "all") and absent both mean every view.
    if (!views->IsArray()) return Bad("\"feature_views\" must be a list");
    for (const auto& v : views->GetArray()) {
      if (!v.IsString()) return Bad("\"feature_views\" must be a list of names");
      mo.views.emplace_back(View(v));
    }
  }
  return mo;
}

// ---- responses ------------------------------------------------------------------------

namespace {

using online::FeatureStatus;
using online::ReadLE;
using online::ReadVarint;
using online::ScalarLength;

// JSON has no NaN or infinities: Feast's server writes them as the protobuf
// JSON mapping's strings; the readable form (AppendFieldJson) as null.
std::string_view NonFiniteText(double d, bool feast) {
  if (!feast) return "null";
  if (std::isnan(d)) return "\"NaN\"";
  return d > 0 ? "\"Infinity\"" : "\"-Infinity\"";
}

// Writes `d` at p (at most 26 chars): the shortest text that reads back as the
// same double, with ".0" added where that text would read as an integer ("2"),
// so that JSON readers that type numbers by their text (Python's json, which
// Feast's client uses) get a float, as from Feast's server ("2.0").
char* WriteDouble(double d, char* p) {
  char* end = std::to_chars(p, p + 24, d).ptr;
  for (const char* c = p; c < end; ++c) {
    if (*c == '.' || *c == 'e') return end;
  }
  std::memcpy(end, ".0", 2);
  return end + 2;
}

void AppendDouble(double d, bool feast, std::string* out) {
  if (!std::isfinite(d)) {
    out->append(NonFiniteText(d, feast));
    return;
  }
  char buf[32];
  char* end = feast ? WriteDouble(d, buf) : std::to_chars(buf, buf + sizeof buf, d).ptr;
  out->append(buf, static_cast<size_t>(end - buf));
}

template <typename T>
void AppendInt(T v, std::string* out) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, static_cast<size_t>(r.ptr - buf));
}

void AppendScalarJson(const arrow::DataType& t, std::string_view b, bool feast, std::string* out) {
  char buf[64];
  switch (t.id()) {
    case arrow::Type::BOOL:
      out->append(b[0] ? "true" : "false");
      return;
    case arrow::Type::INT8:
      AppendInt(ReadLE<int8_t>(b.data()), out);
      return;
    case arrow::Type::INT16:
      AppendInt(ReadLE<int16_t>(b.data()), out);
      return;
    case arrow::Type::INT32:
      AppendInt(ReadLE<int32_t>(b.data()), out);
      return;
    case arrow::Type::INT64:
      AppendInt(ReadLE<int64_t>(b.data()), out);
      return;
    case arrow::Type::FLOAT:
      AppendDouble(ReadLE<float>(b.data()), feast, out);
      return;
    case arrow::Type::DOUBLE:
      AppendDouble(ReadLE<double>(b.data()), feast, out);
      return;
    case arrow::Type::TIMESTAMP:
      if (feast) {  // Feast's UnixTimestamp: whole seconds, as Python's int() truncates
        AppendInt(ReadLE<int64_t>(b.data()) / 1000000, out);
        return;
      }
      out->push_back('"');
      AppendRfc3339Micros(ReadLE<int64_t>(b.data()), out);
      out->push_back('"');
      return;
    case arrow::Type::DATE32: {
      time_t secs = static_cast<time_t>(ReadLE<int32_t>(b.data())) * 86400;
      struct tm tm;
      gmtime_r(&secs, &tm);
      std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
      AppendJsonString(buf, out);
      return;
    }
    case arrow::Type::DECIMAL128: {
      arrow::Decimal128 d(reinterpret_cast<const uint8_t*>(b.data()));
      AppendJsonString(d.ToString(static_cast<const arrow::Decimal128Type&>(t).scale()), out);
      return;
    }
    case arrow::Type::BINARY:
    case arrow::Type::LARGE_BINARY:
      if (feast) {  // as Feast's server: base64 (RFC 4648)
        out->push_back('"');
        out->append(arrow::util::base64_encode(online::ReadBytesField(b)));
        out->push_back('"');
        return;
      }
      AppendJsonString(online::ReadBytesField(b), out);
      return;
    case arrow::Type::STRING:
    case arrow::Type::LARGE_STRING:
      AppendJsonString(online::ReadBytesField(b), out);
      return;
    default:
      out->append("null");
  }
}

void AppendKeyJson(const online::KeyScalar& k, std::string* out) {
  if (const auto* i = std::get_if<int64_t>(&k)) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, *i);
    (void)ec;
    out->append(buf, static_cast<size_t>(end - buf));
  } else if (const auto* s = std::get_if<std::string>(&k)) {
    AppendJsonString(*s, out);
  } else {
    out->append("null");
  }
}

// A JSON list of quoted strings formatted from `values`, kept and reused while
// the next call passes equal values (AppendOnlineResponse).
struct QuotedList {
  std::span<const std::byte> last;  // the values `text` was formatted from
  bool valid = false;
  std::string text;
  template <typename T, typename Format>
  const std::string& Get(std::span<const T> values, Format format) {
    auto bytes = std::as_bytes(values);
    if (!valid || bytes.size() != last.size() ||
        std::memcmp(bytes.data(), last.data(), bytes.size()) != 0) {
      text.clear();
      for (size_t r = 0; r < values.size(); ++r) {
        text.append(r ? ",\"" : "\"");
        format(values[r], &text);
        text.push_back('"');
      }
      last = bytes;
      valid = true;
    }
    return text;
  }
};

}  // namespace

void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

namespace {

void AppendValueJson(const arrow::DataType& type, std::string_view bytes, bool feast,
                     std::string* out) {
  if (type.id() != arrow::Type::LIST) {
    AppendScalarJson(type, bytes, feast, out);
    return;
  }
  const arrow::DataType& item = *static_cast<const arrow::ListType&>(type).value_type();
  std::string_view p = bytes;
  uint64_t n = 0;
  ReadVarint(&p, &n);
  std::string_view bitmap = p.substr(0, (n + 7) / 8);
  p.remove_prefix(bitmap.size());
  out->push_back('[');
  for (uint64_t k = 0; k < n; ++k) {
    if (k) out->push_back(',');
    if (static_cast<unsigned char>(bitmap[k / 8]) & (1 << (k % 8))) {
      out->append("null");
      continue;
    }
    int64_t l = ScalarLength(item, p);
    AppendScalarJson(item, p.substr(0, static_cast<size_t>(l)), feast, out);
    p.remove_prefix(static_cast<size_t>(l));
  }
  out->push_back(']');
}

// Writes the elements of a list whose fields `write(bytes, p)` formats into at
// most `width` chars at p (returning the end); nulls as null.
template <typename Write>
void WriteListElements(std::span<const std::string_view> values,
                       std::span<const FeatureStatus> statuses, size_t width, Write write,
                       std::string* out) {
  const size_t at = out->size();
  out->resize(at + values.size() * (std::max<size_t>(width, 4) + 1));
  char* const begin = out->data();
  char* p = begin + at;
  for (size_t r = 0; r < values.size(); ++r) {
    if (r) *p++ = ',';
    if (statuses[r] != FeatureStatus::kPresent) {
      std::memcpy(p, "null", 4);
      p += 4;
    } else {
      p = write(values[r].data(), p);
    }
  }
  out->resize(static_cast<size_t>(p - begin));
}

template <typename T>
char* WriteInt(const char* bytes, char* p) {
  return std::to_chars(p, p + 24, ReadLE<T>(bytes)).ptr;
}

template <typename T, bool kFeast>
char* WriteFloat(const char* bytes, char* p) {
  double d = ReadLE<T>(bytes);
  if (!std::isfinite(d)) {  // JSON has no NaN/Infinity
    std::string_view text = NonFiniteText(d, kFeast);
    std::memcpy(p, text.data(), text.size());
    return p + text.size();
  }
  return kFeast ? WriteDouble(d, p) : std::to_chars(p, p + 24, d).ptr;
}

}  // namespace

void AppendFieldJson(const arrow::DataType& type, std::string_view bytes, std::string* out) {
  AppendValueJson(type, bytes, /*feast=*/false, out);
}

void AppendFieldListJson(const arrow::DataType& type, std::span<const std::string_view> values,
                         std::span<const FeatureStatus> statuses, std::string* out, bool feast) {
  // Widest texts: int64 "-9223372036854775808" (20), double
  // "-2.2250738585072014e-308" (24; an integral one gets ".0": 26 reserved).
  switch (type.id()) {
    case arrow::Type::BOOL:
      return WriteListElements(
          values, statuses, 5,
          [](const char* b, char* p) {
            if (b[0]) {
              std::memcpy(p, "true", 4);
              return p + 4;
            }
            std::memcpy(p, "false", 5);
            return p + 5;
          },
          out);
    case arrow::Type::INT8:
      return WriteListElements(values, statuses, 4, WriteInt<int8_t>, out);
    case arrow::Type::INT16:
      return WriteListElements(values, statuses, 6, WriteInt<int16_t>, out);
    case arrow::Type::INT32:
      return WriteListElements(values, statuses, 11, WriteInt<int32_t>, out);
    case arrow::Type::INT64:
      return WriteListElements(values, statuses, 20, WriteInt<int64_t>, out);
    case arrow::Type::FLOAT:
      return feast ? WriteListElements(values, statuses, 26, WriteFloat<float, true>, out)
                   : WriteListElements(values, statuses, 26, WriteFloat<float, false>, out);
    case arrow::Type::DOUBLE:
      return feast ? WriteListElements(values, statuses, 26, WriteFloat<double, true>, out)
                   : WriteListElements(values, statuses, 26, WriteFloat<double, false>, out);
    default:
      for (size_t r = 0; r < values.size(); ++r) {
        if (r) out->push_back(',');
        if (statuses[r] == FeatureStatus::kPresent) {
          AppendValueJson(type, values[r], feast, out);
        } else {
          out->append("null");
        }
      }
  }
}

void AppendOnlineResponse(const online::OnlineResponse& resp, std::string* out) {
  AppendResponse(resp, /*feast=*/false, /*view_metadata=*/false, out);
}

void AppendFeastResponse(const online::OnlineResponse& resp, bool view_metadata, std::string* out) {
  AppendResponse(resp, /*feast=*/true, view_metadata, out);
}

void AppendResponse(const online::OnlineResponse& resp, bool feast, bool view_metadata,
                    std::string* out) {
  using namespace std::string_view_literals;
  const auto& columns = resp.columns;
  const size_t rows = resp.rows;
  out->append("{\"metadata\":{\"feature_names\":["sv);
  for (size_t c = 0; c < columns.size(); ++c) {
    if (c) out->push_back(',');
    AppendJsonString(columns[c].name, out);
  }
  out->push_back(']');
  if (view_metadata) {  // each view answered once, in order (Feast leaves out version 0)
    out->append(",\"feature_view_metadata\":["sv);
    std::string_view last;
    bool first = true;
    for (const auto& col : columns) {
      if (col.is_join_key || col.view == last) continue;
      out->append(first ? "{\"name\":"sv : ",{\"name\":"sv);
      AppendJsonString(col.view, out);
      out->push_back('}');
      last = col.view;
      first = false;
    }
    out->push_back(']');
  }
  out->append("},\"results\":["sv);
  // The features of one view share their rows' statuses and times (all but
  // NULL_VALUE): each list is formatted once per distinct run of columns.
  QuotedList statuses_list, times_list;
  for (size_t c = 0; c < columns.size(); ++c) {
    const online::OnlineColumn& col = columns[c];
    if (c) out->push_back(',');
    out->append("{\"values\":["sv);
    if (col.is_join_key) {
      for (size_t r = 0; r < rows; ++r) {
        if (r) out->push_back(',');
        AppendKeyJson((*col.keys)[r], out);
      }
    } else {
      AppendFieldListJson(*col.type, col.values, col.statuses, out, feast);
    }
    out->append("],\"statuses\":["sv);
    if (col.is_join_key) {
      for (size_t r = 0; r < rows; ++r) out->append(r ? ",\"PRESENT\""sv : "\"PRESENT\""sv);
    } else {
      out->append(statuses_list.Get(
          std::span<const FeatureStatus>(col.statuses),
          [](FeatureStatus st, std::string* o) { o->append(online::FeatureStatusName(st)); }));
    }
    out->append("],\"event_timestamps\":["sv);
    if (col.is_join_key) {
      for (size_t r = 0; r < rows; ++r) {
        out->append(r ? ",\"1970-01-01T00:00:00Z\""sv : "\"1970-01-01T00:00:00Z\""sv);
      }
    } else {
      out->append(times_list.Get(std::span<const int64_t>(col.event_us), AppendRfc3339Micros));
    }
    out->append("]}"sv);
  }
  out->push_back(']');
  // Keys that could not be read (a store node down): why, per view. Only this
  // kind: the others (a view never materialized) are Feast's answers as they are.
  bool first = true;
  for (const Warning& w : resp.warnings) {
    if (w.code != Warning::Code::kStoreUnavailable) continue;
    out->append(first ? ",\"warnings\":[{\"code\":"sv : ",{\"code\":"sv);
    AppendJsonString(WarningCodeName(w.code), out);
    out->append(",\"view\":"sv);
    AppendJsonString(w.view, out);
    out->append(",\"keys\":"sv);
    out->append(std::to_string(w.keys));
    out->append(",\"detail\":\""sv);
    json::AppendEscaped(w.detail, out);
    out->append("\"}"sv);
    first = false;
  }
  if (!first) out->push_back(']');
  out->push_back('}');
}

}  // namespace stratalake::server
