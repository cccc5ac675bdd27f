#include "server/requests.h"

#include <cstdio>
#include <vector>

#include <arrow/api.h>
#include <arrow/util/value_parsing.h>
#include <rapidjson/document.h>

#include "common/json.h"
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

}  // namespace

std::string ErrorJson(std::string_view message) {
  std::string o = "{\"error\":\"";
  json::AppendEscaped(message, &o);
  o += "\"}";
  return o;
}

arrow::Status ParseOnlineRequest(std::string_view body, const RequestLimits& limits,
                                 online::OnlineRequest* req) {
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
      if (!v.IsArray()) return Bad("\"features\" must be a list of \"view:feature\"");
      for (const auto& f : v.GetArray()) {
        if (!f.IsString()) return Bad("\"features\" must be a list of strings");
        req->features.emplace_back(View(f));
      }
    } else if (key == "feature_service") {
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
    } else {
      return Bad("unknown field \"" + std::string(key) +
                 "\" (expected features or feature_service, entities, full_feature_names)");
    }
  }
  return arrow::Status::OK();
}

arrow::Result<PushRequest> ParsePushRequest(std::string_view body) {
  rapidjson::Document d;
  ARROW_RETURN_NOT_OK(json::ParseJson(&d, body, json::Strict()));
  if (!d.IsObject()) return Bad("the request body must be a JSON object");
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

arrow::Result<online::MaterializeOptions> ParseMaterializeRequest(std::string_view body,
                                                                  bool incremental) {
  rapidjson::Document d;
  ARROW_RETURN_NOT_OK(json::ParseJson(&d, body, json::Strict()));
  if (!d.IsObject()) {
    return Bad(
        "the body must be a JSON object like {\"start_ts\": \"...\", \"end_ts\": \"...\", "
        "\"feature_views\": [...]}");
  }
  online::MaterializeOptions mo;
  mo.incremental = incremental;
  const rapidjson::Value* end = Member(d, "end_ts");
  if (!end || !end->IsString()) return Bad("\"end_ts\" (an ISO 8601 time) is required");
  auto end_us = ParseIsoMicros(View(*end));
  if (!end_us.ok()) return Bad("end_ts: " + end_us.status().message());
  mo.end_us = *end_us;
  if (!incremental) {
    const rapidjson::Value* start = Member(d, "start_ts");
    if (!start || !start->IsString()) return Bad("\"start_ts\" (an ISO 8601 time) is required");
    auto start_us = ParseIsoMicros(View(*start));
    if (!start_us.ok()) return Bad("start_ts: " + start_us.status().message());
    mo.start_us = *start_us;
  }
  if (const rapidjson::Value* views = Member(d, "feature_views")) {
    if (!views->IsArray()) return Bad("\"feature_views\" must be a list");
    for (const auto& v : views->GetArray()) {
      if (!v.IsString()) return Bad("\"feature_views\" must be a list of names");
      mo.views.emplace_back(View(v));
    }
  }
  return mo;
}

}  // namespace stratalake::server
