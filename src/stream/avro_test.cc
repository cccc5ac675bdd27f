// Avro binary decoding (stream/avro.h) on hand-encoded data.
#include "stream/avro.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "../../tests/test_util.h"

namespace stratalake::stream {
namespace {

// Zig-zag varint.
std::string Long(int64_t v) {
  uint64_t u = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  std::string out;
  while (u >= 0x80) {
    out.push_back(static_cast<char>((u & 0x7f) | 0x80));
    u >>= 7;
  }
  out.push_back(static_cast<char>(u));
  return out;
}

std::string Str(const std::string& s) { return Long(static_cast<int64_t>(s.size())) + s; }

std::string Double(double d) {
  std::string out(8, '\0');
  std::memcpy(out.data(), &d, 8);
  return out;
}

std::string Json(const rapidjson::Document& d) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  d.Accept(w);
  return sb.GetString();
}

constexpr const char* kSchema = R"({"type": "record", "name": "Trade", "fields": [
  {"name": "account_id", "type": "long"},
  {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
  {"name": "px", "type": "double"},
  {"name": "side", "type": ["null", {"type": "enum", "name": "Side", "symbols": ["buy", "sell"]}]},
  {"name": "day", "type": {"type": "int", "logicalType": "date"}},
  {"name": "ok", "type": "boolean"},
  {"name": "note", "type": ["null", "string"]}]})";

TEST(AvroRecordReader, DecodesEveryFieldAsJson) {
  ASSERT_OK_AND_ASSIGN(auto r, AvroRecordReader::Parse(kSchema));
  std::string datum = Long(-7) + Long(1767225600123456) + Double(101.25) + Long(1) + Long(1) +
                      Long(20454) + std::string(1, '\1') + Long(1) + Str("hé");
  rapidjson::Document d;
  EXPECT_EQ(r.Decode(reinterpret_cast<const uint8_t*>(datum.data()), datum.size(), false, &d), "");
  EXPECT_EQ(Json(d),
            R"({"account_id":-7,"ts":"2026-01-01T00:00:00.123456Z","px":101.25,"side":"sell",)"
            R"("day":"2026-01-01","ok":true,"note":"hé"})");
  // Confluent's framing: magic byte 0 and a schema id before the same datum.
  std::string framed = std::string("\0\0\0\0\x2a", 5) + datum;
  EXPECT_EQ(r.Decode(reinterpret_cast<const uint8_t*>(framed.data()), framed.size(), true, &d), "");
  EXPECT_EQ(d["account_id"].GetInt64(), -7);
  EXPECT_EQ(r.Decode(reinterpret_cast<const uint8_t*>(datum.data()), datum.size(), true, &d),
            "not Confluent's wire format: it starts with byte 13 (the magic byte is 0) or is "
            "shorter than its 5-byte header");
  // Null branches.
  std::string nulls =
      Long(1) + Long(0) + Double(1) + Long(0) + Long(0) + std::string(1, '\0') + Long(0);
  EXPECT_EQ(r.Decode(reinterpret_cast<const uint8_t*>(nulls.data()), nulls.size(), false, &d), "");
  EXPECT_TRUE(d["side"].IsNull());
  EXPECT_TRUE(d["note"].IsNull());
}

TEST(AvroRecordReader, BadDataSaysWhere) {
  ASSERT_OK_AND_ASSIGN(auto r, AvroRecordReader::Parse(kSchema));
  rapidjson::Document d;
  auto decode = [&](const std::string& s) {
    return r.Decode(reinterpret_cast<const uint8_t*>(s.data()), s.size(), false, &d);
  };
  std::string good =
      Long(1) + Long(0) + Double(1) + Long(0) + Long(0) + std::string(1, '\0') + Long(0);
  EXPECT_EQ(decode(good.substr(0, 5)), "field 'px': the datum ends too early (after 5 bytes)");
  EXPECT_EQ(decode(good + "xy"),
            "2 bytes after the record's end (at byte 14): is the message of another schema?");
  std::string bad_enum = Long(1) + Long(0) + Double(1) + Long(1) + Long(5);
  EXPECT_EQ(decode(bad_enum), "field 'side': enum index 5 is not one of its 2 symbols");
  std::string bad_union = Long(1) + Long(0) + Double(1) + Long(2);
  EXPECT_EQ(decode(bad_union), "field 'side': union branch 2 is not one of its 2");
}

TEST(AvroRecordReader, SchemasThatCannotBeReadSayWhy) {
  auto problem = [](const std::string& schema) {
    return AvroRecordReader::Parse(schema).status().message();
  };
  EXPECT_EQ(problem("{"), "Avro schema: not JSON (at byte 1)");
  EXPECT_EQ(problem(R"({"type": "long"})"),
            "Avro schema: must be a record ({\"type\": \"record\", ...})");
  EXPECT_EQ(problem(R"({"type": "record", "fields": [{"name": "a", "type": "array"}]})"),
            "Avro schema: field 'a': type 'array' inside a record cannot be streamed yet");
  EXPECT_EQ(problem(R"({"type": "record", "fields": [{"name": "a", "type": "Side"}]})"),
            "Avro schema: field 'a': unknown type 'Side' (references to named types are not "
            "supported; write the type out)");
}

}  // namespace
}  // namespace stratalake::stream
