#include "server/feast_wire.h"

#include <string>

#include <arrow/api.h>
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace stratalake::server
