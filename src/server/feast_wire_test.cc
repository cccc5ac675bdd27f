#include "server/feast_wire.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include <arrow/api.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "stratalake/status.h"

namespace stratalake::server {
namespace {

TEST(ServerRequests, OnlineRequestIsParsedWithItsStrings) {
  online::OnlineRequest req;
  ASSERT_TRUE(ParseOnlineRequest(
                  R"({"features": ["v:f"], "entities": {"id": [1, "a", null]},
                      "full_feature_names": true})",
                  {}, &req)
                  .ok());
  EXPECT_EQ(req.features, std::vector<std::string>{"v:f"});
  ASSERT_EQ(req.entities.size(), 1u);
  EXPECT_EQ(req.entities[0].first, "id");
  EXPECT_EQ(req.entities[0].second,
            (std::vector<online::KeyScalar>{int64_t{1}, std::string("a"), std::monostate{}}));
  EXPECT_TRUE(req.full_feature_names);
}

TEST(ServerRequests, EntityRowsOverTheLimitAreACapacityError) {
  online::OnlineRequest req;
  RequestLimits limits;
  limits.max_entity_rows = 2;
  auto st =
      ParseOnlineRequest(R"({"features": ["v:f"], "entities": {"id": [1, 2, 3]}})", limits, &req);
  ASSERT_TRUE(st.IsCapacityError());
  EXPECT_EQ(st.message(),
            "entity 'id' has 3 values: over the limit of 2 entity rows per request (the server's "
            "--max-entity-rows); split the request");
}

TEST(ServerRequests, HostileBodiesAreInvalid) {
  online::OnlineRequest req;
  const std::string deep(100000, '[');
  auto st = ParseOnlineRequest(deep, {}, &req);
  ASSERT_TRUE(st.IsInvalid());
  EXPECT_EQ(
      st.message(),
      "JSON nested deeper than 256 levels at byte 256 (arrays and objects inside each other)");
  st = ParseOnlineRequest(R"({"entities": {"id": [1], "id": [2]}})", {}, &req);
  EXPECT_EQ(st.message(), "the JSON key \"id\" appears twice in one object; give each key once");
  EXPECT_TRUE(ParsePushRequest(deep).status().IsInvalid());
  EXPECT_TRUE(ParseMaterializeRequest(deep, true).status().IsInvalid());
  auto push = ParsePushRequest(R"({"push_source_name": "s\u0000x", "df": {"a": [1]}})");
  ASSERT_TRUE(push.status().IsInvalid());
  EXPECT_EQ(push.status().message(),
            "a JSON string holds a NUL character (\\u0000): \"s\\u0000x\"; names and values "
            "cannot contain NUL");
  EXPECT_TRUE(
      ParsePushRequest("{\"push_source_name\": \"\xff\", \"df\": {}}").status().IsInvalid());
}

TEST(ServerRequests, PushColumnsAreText) {
  auto push = ParsePushRequest(
      R"({"push_source_name": "clicks", "to": "offline", "df": {"id": [1, 2], "p": ["a", null]}})");
  ASSERT_TRUE(push.ok()) << push.status().ToString();
  EXPECT_EQ(push->source, "clicks");
  EXPECT_EQ(push->to, "offline");
  EXPECT_EQ(push->rows, 2);
  EXPECT_EQ(push->table->schema()->ToString(), "id: string\np: string");
  EXPECT_EQ(push->table->column(1)->null_count(), 1);
}

TEST(ServerRequests, ErrorJsonEscapesAnyBytes) {
  EXPECT_EQ(ErrorJson("bad \"x\"\n\xff"), "{\"error\":\"bad \\\"x\\\"\\u000a\xEF\xBF\xBD\"}");
  // Found by fuzz_http: a byte 0xF5..0xFF followed by two continuation bytes
  // was copied as if it began a 3-byte character.
  EXPECT_EQ(ErrorJson("\xff\x97\xb7"), "{\"error\":\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"}");
}

// Feast's client sends fields this server does not use; Feast's server ignores
// fields it does not know, and so does this one (the caller logs them).
TEST(ServerRequests, OnlineRequestIgnoresFieldsItDoesNotKnow) {
  online::OnlineRequest req;
  OnlineRequestExtras extras;
  ASSERT_TRUE(ParseOnlineRequest(
                  R"({"entities": {"id": [1]}, "full_feature_names": false,
                      "include_feature_view_version_metadata": true, "feature_service": null,
                      "features": ["v:f"], "x": {"nested": [1]}, "y": null})",
                  {}, &req, &extras)
                  .ok());
  EXPECT_EQ(req.features, std::vector<std::string>{"v:f"});
  EXPECT_EQ(req.feature_service, "");
  EXPECT_TRUE(extras.include_view_metadata);
  EXPECT_EQ(extras.ignored_fields, (std::vector<std::string>{"x", "y"}));
  // Known fields are still checked.
  auto st = ParseOnlineRequest(R"({"entities": {"id": [1]}, "features": ["v:f"],
                                   "include_feature_view_version_metadata": 1})",
                               {}, &req, &extras);
  EXPECT_EQ(st.message(), "\"include_feature_view_version_metadata\" must be true or false");
}

TEST(ServerRequests, MaterializeAcceptsWhatFeastsClientSends) {
  // FeatureStore.materialize_incremental(end): feature_views null = every view;
  // a datetime's isoformat() with an offset.
  auto inc = ParseMaterializeRequest(
      R"({"end_ts": "2026-08-01T10:00:00.250000+00:00", "feature_views": null,
          "full_feature_names": false, "other": 1})",
      true);
  ASSERT_TRUE(inc.ok()) << inc.status().ToString();
  EXPECT_TRUE(inc->incremental);
  EXPECT_TRUE(inc->views.empty());
  EXPECT_EQ(inc->end_us, 1785578400250000);
  // materialize(start, end, ["v"]) with naive times (UTC, as in Feast).
  std::vector<std::string> ignored;
  auto full = ParseMaterializeRequest(
      R"({"start_ts": "2026-08-01T00:00:00", "end_ts": "2026-08-01T10:00:00",
          "feature_views": ["v"], "disable_event_timestamp": false, "full_feature_names": false,
          "extra": true})",
      false, 0, &ignored);
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_EQ(*full->start_us, 1785542400000000);
  EXPECT_EQ(full->end_us, 1785578400000000);
  EXPECT_EQ(full->views, std::vector<std::string>{"v"});
  EXPECT_EQ(ignored, std::vector<std::string>{"extra"});
  // disable_event_timestamp: from the beginning of time to now.
  auto all = ParseMaterializeRequest(R"({"disable_event_timestamp": true})", false, 42);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_FALSE(all->start_us.has_value());
  EXPECT_EQ(all->end_us, 42);
  auto versioned =
      ParseMaterializeRequest(R"({"end_ts": "2026-08-01T00:00:00Z", "version": "v2"})", true);
  EXPECT_EQ(versioned.status().message(),
            "\"version\": feature view versions are not supported by this server; leave it out "
            "to materialize the current definition");
  EXPECT_TRUE(
      ParseMaterializeRequest(R"({"end_ts": "2026-08-01T00:00:00Z", "version": null})", true).ok());
}

TEST(ServerRequests, WriteToOnlineColumnsAreTypedFromTheirValues) {
  auto w = ParseWriteToOnlineRequest(R"({"feature_view_name": "stats",
      "allow_registry_cache": false,
      "df": {"id": [1, 2, 3], "f": [1, 2.5, null], "s": ["a", null, "c"], "b": [true, false, null],
             "li": [[1, 2], null, []], "ls": [["x"], ["y", null], null], "none": [null, null, null],
             "mixed": [1, "a", true], "event_timestamp": ["2026-08-01T00:00:00", "2026-08-01T00:00:01",
             "2026-08-01T00:00:02"], "created": [null, null, null]}})");
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->view, "stats");
  EXPECT_EQ(w->rows, 3);
  EXPECT_EQ(w->table->schema()->ToString(),
            "id: int64\nf: double\ns: string\nb: bool\nli: list<item: int64>\n"
            "ls: list<item: string>\nnone: string\nmixed: string\nevent_timestamp: string\n"
            "created: string");
  EXPECT_EQ(w->table->column(4)->ToString(),
            "[\n  [\n    [\n      1,\n      2\n    ],\n    null,\n    []\n  ]\n]");
  EXPECT_EQ(w->table->column(7)->ToString(),
            "[\n  [\n    \"1\",\n    \"a\",\n    \"true\"\n  ]\n]");
  std::vector<std::string> ignored;
  ASSERT_TRUE(ParseWriteToOnlineRequest(R"({"feature_view_name": "v", "df": {"a": [1]},
      "allow_registry_cache": false, "transform_on_write": true, "x": 1})",
                                        &ignored)
                  .ok());
  EXPECT_EQ(ignored, std::vector<std::string>{"x"});
  ignored.clear();
  ASSERT_TRUE(ParsePushRequest(R"({"push_source_name": "p", "df": {"a": [1]}, "y": 2,
      "allow_registry_cache": true})",
                               &ignored)
                  .ok());
  EXPECT_EQ(ignored, std::vector<std::string>{"y"});
  EXPECT_EQ(ParseWriteToOnlineRequest(R"({"df": {"a": [1]}})").status().message(),
            "\"feature_view_name\" (a string) is required");
  EXPECT_EQ(ParseWriteToOnlineRequest(R"({"feature_view_name": "v", "df": {"a": [[[1]]]}})")
                .status()
                .message(),
            "df column 'a' holds lists of lists or objects; values must be numbers, strings, "
            "booleans, null or lists of those");
  EXPECT_EQ(ParseWriteToOnlineRequest(R"({"feature_view_name": "v", "df": {"a": [1], "b": []}})")
                .status()
                .message(),
            "df columns differ in length ('b' has 0 values, others 1)");
}

// Feast's client (feast.errors.FeastError.from_error_detail) reads the body
// with response.json(), then json.loads() of that: a JSON string holding an object.
TEST(ServerErrors, BodiesAreFeastsShape) {
  const std::string body = FeastErrorJson("FeatureViewNotFoundException", "unknown \"v\"\n\xff");
  EXPECT_EQ(body, R"("{\"module\": \"feast.errors\", \"class\": \"FeatureViewNotFoundException\", )"
                  R"(\"message\": \"unknown \\\"v\\\"\\u000a)"
                  "\xEF\xBF\xBD"
                  R"(\"}")");
  rapidjson::Document outer, inner;
  outer.Parse(body.data(), body.size());
  ASSERT_TRUE(outer.IsString());
  inner.Parse(outer.GetString(), outer.GetStringLength());
  ASSERT_TRUE(inner.IsObject());
  EXPECT_STREQ(inner["module"].GetString(), "feast.errors");
  EXPECT_STREQ(inner["class"].GetString(), "FeatureViewNotFoundException");
  EXPECT_STREQ(inner["message"].GetString(), "unknown \"v\"\n\xEF\xBF\xBD");
}

TEST(ServerErrors, StatusesMapToFeastsExceptionClasses) {
  auto err = [](ErrorKind kind, const char* message) {
    return MakeError(arrow::StatusCode::Invalid, kind, message);
  };
  EXPECT_STREQ(FeastErrorClass(err(ErrorKind::kFeatureNotFound, "unknown feature view 'v' (...)")),
               "FeatureViewNotFoundException");
  EXPECT_STREQ(
      FeastErrorClass(err(ErrorKind::kFeatureNotFound, "unknown feature service 's' (...)")),
      "FeatureServiceNotFoundException");
  EXPECT_STREQ(FeastErrorClass(err(ErrorKind::kObjectNotFound, "unknown push source 'p' (...)")),
               "PushSourceNotFoundException");
  EXPECT_STREQ(FeastErrorClass(err(ErrorKind::kObjectNotFound, "unknown entity 'e'")),
               "EntityNotFoundException");
  EXPECT_STREQ(FeastErrorClass(err(ErrorKind::kFeatureNotFound,
                                   "feature view 'v' has no feature 'x' (features: a)")),
               "FeastObjectNotFoundException");
  EXPECT_STREQ(FeastErrorClass(err(ErrorKind::kSchemaMismatch, "unknown feature view 'v'")),
               "FeastError");
  EXPECT_STREQ(FeastErrorClass(arrow::Status::Invalid("bad")), "FeastError");
}

// Values as Feast's server writes them (feast/feature_server_utils.py).
TEST(ServerResponses, ValuesAreWrittenAsFeastsServerWritesThem) {
  auto le = [](auto v) {
    std::string b(sizeof v, '\0');
    std::memcpy(b.data(), &v, sizeof v);
    return b;
  };
  auto list = [](const arrow::DataType& type, std::vector<std::string> bytes) {
    std::vector<std::string_view> values(bytes.begin(), bytes.end());
    std::vector<online::FeatureStatus> statuses(bytes.size(), online::FeatureStatus::kPresent);
    std::string out;
    AppendFieldListJson(type, values, statuses, &out);
    return out;
  };
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(list(*arrow::float64(), {le(std::nan("")), le(inf), le(-inf), le(0.5)}),
            R"("NaN","Infinity","-Infinity",0.5)");
  EXPECT_EQ(list(*arrow::float32(), {le(std::numeric_limits<float>::quiet_NaN()), le(0.1f)}),
            R"("NaN",0.10000000149011612)");
  // Timestamps: whole seconds since the epoch, truncated toward zero like Python's int().
  EXPECT_EQ(list(*arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"),
                 {le(int64_t{1785542400999999}), le(int64_t{-1500000}), le(int64_t{0})}),
            "1785542400,-1,0");
  // Binary: base64 (the bytes are a LEB128 length, then the bytes).
  EXPECT_EQ(list(*arrow::binary(), {std::string("\x03\x00\xff\x01", 4)}), R"("AP8B")");
  // The readable form keeps RFC 3339 times.
  std::string readable;
  AppendFieldJson(*arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"), le(int64_t{1785542400999999}),
                  &readable);
  EXPECT_EQ(readable, R"("2026-08-01T00:00:00.999999Z")");
}

}  // namespace
}  // namespace stratalake::server
