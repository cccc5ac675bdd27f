#include "common/json.h"

#include <string>

#include <gtest/gtest.h>

namespace stratalake::json {
namespace {

using Doc = rapidjson::Document;

std::string Error(std::string_view text, const ParseOptions& options = ParseOptions()) {
  Doc d;
  arrow::Status st = ParseJson(&d, text, options);
  return st.ok() ? "OK" : st.message();
}

TEST(JsonTest, NestingBeyondTheLimitIsRefusedBeforeParsing) {
  // 150k '[' (the body that crashed the feature server) is refused at the first level too many.
  EXPECT_EQ(Error(std::string(150000, '[')),
            "JSON nested deeper than 256 levels at byte 256 (arrays and objects inside each "
            "other)");
  EXPECT_EQ(Error(std::string(256, '[') + std::string(256, ']')), "OK");
  ParseOptions shallow;
  shallow.max_depth = 2;
  EXPECT_EQ(Error(R"({"a": [1, {"b": 2}]})", shallow),
            "JSON nested deeper than 2 levels at byte 10 (arrays and objects inside each other)");
  // Brackets in strings, escaped quotes included, do not count.
  EXPECT_EQ(Error(R"({"a": "[[[\"[[[{{{"})", shallow), "OK");
}

TEST(JsonTest, ParseErrorsAndInvalidUtf8NameTheByte) {
  EXPECT_EQ(Error(R"({"a": tru})"), "malformed JSON at byte 9: Invalid value.");
  EXPECT_EQ(Error("{\"a\": \"\xff\"}"), "malformed JSON at byte 7: Invalid encoding in string.");
}

TEST(JsonTest, StrictRefusesDuplicateKeysAtAnyDepth) {
  EXPECT_EQ(Error(R"({"a": 1, "a": 2})"), "OK");  // default: RapidJSON keeps both
  EXPECT_EQ(Error(R"({"entities": {"customer_id": [17], "customer_id": [42]}})", Strict()),
            "the JSON key \"customer_id\" appears twice in one object; give each key once");
  EXPECT_EQ(Error(R"([{"x": 1}, {"y": 1, "z": 2, "y": 3}])", Strict()),
            "the JSON key \"y\" appears twice in one object; give each key once");
  EXPECT_EQ(Error(R"({"a": {"k": 1}, "b": {"k": 1}})", Strict()), "OK");
  // Objects with many keys are checked by sorting them.
  std::string many = "{";
  for (int i = 0; i < 40; ++i)
    many += "\"k" + std::to_string(i) + "\": " + std::to_string(i) + ", ";
  EXPECT_EQ(Error(many + "\"k40\": 0}", Strict()), "OK");
  EXPECT_EQ(Error(many + "\"k17\": 0}", Strict()),
            "the JSON key \"k17\" appears twice in one object; give each key once");
}

TEST(JsonTest, StrictRefusesNulInStringsAndKeys) {
  EXPECT_EQ(Error(R"({"features": ["v:a\u0000b"]})", Strict()),
            "a JSON string holds a NUL character (\\u0000): \"v:a\\u0000b\"; names and values "
            "cannot contain NUL");
  EXPECT_EQ(Error(R"({"a\u0000": 1})", Strict()),
            "a JSON key holds a NUL character (\\u0000): \"a\\u0000\"; names and values cannot "
            "contain NUL");
  EXPECT_EQ(Error(R"({"a": "\u0000"})"), "OK");
}

TEST(JsonTest, AppendEscapedAlwaysGivesValidJsonText) {
  std::string out;
  AppendEscaped("a\"b\\c\n\x01", &out);
  EXPECT_EQ(out, "a\\\"b\\\\c\\u000a\\u0001");
  out.clear();
  // Well-formed multi-byte UTF-8 is kept; stray, truncated, overlong and surrogate
  // sequences become U+FFFD, one per byte that starts nothing valid.
  AppendEscaped("\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", &out);
  EXPECT_EQ(out, "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  out.clear();
  AppendEscaped("x\xff\xc3", &out);
  EXPECT_EQ(out, "x\xef\xbf\xbd\xef\xbf\xbd");
  out.clear();
  AppendEscaped("\xc0\xaf\xed\xa0\x80", &out);  // overlong '/', a UTF-16 surrogate
  std::string five;
  for (int i = 0; i < 5; ++i) five += "\xef\xbf\xbd";
  EXPECT_EQ(out, five);
  Doc d;
  std::string wrapped = "\"" + out + "\"";
  EXPECT_TRUE(ParseJson(&d, wrapped).ok()) << wrapped;
}

}  // namespace
}  // namespace stratalake::json
