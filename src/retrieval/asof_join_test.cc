// As-of join tests: golden cases (one per rule, input and expected output as
// tables), a randomized oracle against a brute-force reference that applies the
// rules of asof_join.h literally (in memory, spilling, 1 and 4 threads), a
// right side ~50x the memory budget, and the error messages.
#include "retrieval/asof_join.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <gtest/gtest.h>

#include "../../tests/test_util.h"
#include "retrieval/asof_runs.h"

namespace stratalake::retrieval {
namespace {

using stratalake::testing::TableFromJson;
using stratalake::testing::TempDir;

std::shared_ptr<arrow::DataType> TsS() { return arrow::timestamp(arrow::TimeUnit::SECOND); }

size_t CountEntries(const std::string& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

// Expects `actual` to hold exactly the columns of `expected`, value for value.
void ExpectTableEquals(const arrow::Table& expected, const arrow::Table& actual) {
  ASSERT_EQ(expected.num_columns(), actual.num_columns());
  ASSERT_EQ(expected.num_rows(), actual.num_rows());
  for (int c = 0; c < expected.num_columns(); ++c) {
    EXPECT_EQ(expected.field(c)->name(), actual.field(c)->name());
    EXPECT_TRUE(expected.column(c)->Equals(*actual.column(c)))
        << "column " << expected.field(c)->name()
        << "\nexpected: " << expected.column(c)->ToString()
        << "\nactual:   " << actual.column(c)->ToString();
  }
}

// ---------------------------------------------------------------------------------------
// Golden cases. Times are timestamp[s] (seconds since the epoch) so the tables read easily.

AsOfSpec SimpleSpec() {
  AsOfSpec spec;
  spec.left_keys = {"id"};
  spec.left_time = "ts";
  spec.right_keys = {"id"};
  spec.right_time = "ts";
  spec.features = {"v"};
  return spec;
}

std::shared_ptr<arrow::Table> Left(const std::string& ids, const std::string& ts) {
  return TableFromJson(
      arrow::schema({arrow::field("id", arrow::int64()), arrow::field("ts", TsS())}), {ids, ts});
}

std::shared_ptr<arrow::Table> Right(const std::string& ids, const std::string& ts,
                                    const std::string& v) {
  return TableFromJson(arrow::schema({arrow::field("id", arrow::int64()), arrow::field("ts", TsS()),
                                      arrow::field("v", arrow::utf8())}),
                       {ids, ts, v});
}

std::shared_ptr<arrow::Table> Expected(const std::string& v) {
  return TableFromJson(arrow::schema({arrow::field("v", arrow::utf8())}), {v});
}

TEST(AsOfJoinGolden, LatestAtOrBeforeWins) {
  auto right = Right("[1, 1, 1, 2]", "[10, 20, 30, 10]", R"(["a10", "a20", "a30", "b10"])");
  auto left = Left("[1, 1, 1, 1, 2]", "[9, 10, 25, 99, 15]");
  ASSERT_OK_AND_ASSIGN(auto out, AsOfJoinTables(*left, *right, SimpleSpec()));
  ExpectTableEquals(*Expected(R"([null, "a10", "a20", "a30", "b10"])"), *out);
}

TEST(AsOfJoinGolden, CreatedBreaksEventTimeTies) {
  auto right = TableFromJson(
      arrow::schema({arrow::field("id", arrow::int64()), arrow::field("ts", TsS()),
                     arrow::field("created", TsS()), arrow::field("v", arrow::utf8())}),
      {"[1, 1, 1, 2, 2]", "[10, 10, 10, 10, 10]", "[7, 9, 8, null, 1]",
       R"(["c7", "c9", "c8", "null-created", "c1"])"});
  auto left = Left("[1, 2]", "[10, 10]");
  AsOfSpec spec = SimpleSpec();
  spec.right_created = "created";
  ASSERT_OK_AND_ASSIGN(auto out, AsOfJoinTables(*left, *right, spec));
  // Largest created wins; a null created time is older than any value.
  ExpectTableEquals(*Expected(R"(["c9", "c1"])"), *out);
}

TEST(AsOfJoinGolden, ArrivalBreaksRemainingTies) {
  // Same event time, same (or no) created time: the row added last wins, also
  // across batches.
  auto schema = arrow::schema({arrow::field("id", arrow::int64()), arrow::field("ts", TsS()),
                               arrow::field("created", TsS()), arrow::field("v", arrow::utf8())});
  auto first = TableFromJson(
      schema, {"[1, 1, 2]", "[10, 10, 10]", "[5, 5, null]", R"(["first", "second", "x1"])"});
  auto second = TableFromJson(
      schema, {"[1, 2, 2]", "[10, 10, 10]", "[4, null, null]", R"(["older-created", "x2", "x3"])"});
  AsOfSpec spec = SimpleSpec();
  spec.right_created = "created";
  ASSERT_OK_AND_ASSIGN(auto join, AsOfJoin::Make(spec, schema));
  ASSERT_OK_AND_ASSIGN(auto b1, first->CombineChunksToBatch());
  ASSERT_OK_AND_ASSIGN(auto b2, second->CombineChunksToBatch());
  ASSERT_OK(join->AddRight(b1));
  ASSERT_OK(join->AddRight(b2));
  ASSERT_OK_AND_ASSIGN(auto out, join->Finish(*Left("[1, 2]", "[10, 11]")));
  ExpectTableEquals(*Expected(R"(["second", "x3"])"), *out);
}

TEST(AsOfJoinGolden, TtlBoundIsInclusive) {
  auto right = Right("[1, 2, 3]", "[100, 100, 100]", R"(["k1", "k2", "k3"])");
  // ttl 10 s: left 110 sees 100 (exactly left - ttl); left 111 does not.
  auto left = Left("[1, 2, 3]", "[110, 111, 100]");
  AsOfSpec spec = SimpleSpec();
  spec.ttl_us = 10'000'000;
  ASSERT_OK_AND_ASSIGN(auto out, AsOfJoinTables(*left, *right, spec));
  ExpectTableEquals(*Expected(R"(["k1", null, "k3"])"), *out);
}

TEST(AsOfJoinGolden, TtlOneMicrosecondOutside) {
  auto type = arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
  auto right =
      TableFromJson(arrow::schema({arrow::field("id", arrow::int64()), arrow::field("ts", type),
                                   arrow::field("v", arrow::utf8())}),
                    {"[1, 1]", "[1000000, 1000001]", R"(["at", "after"])"});
  auto left =
      TableFromJson(arrow::schema({arrow::field("id", arrow::int64()), arrow::field("ts", type)}),
                    {"[1, 1, 1]", "[1000000, 1000001, 1000002]"});
  AsOfSpec spec = SimpleSpec();
  spec.ttl_us = 1;
  ASSERT_OK_AND_ASSIGN(auto out, AsOfJoinTables(*left, *right, spec));
  // 1000002 - 1 = 1000001 is in range; at 1000002 "after" (1000001) is the latest anyway.
  ExpectTableEquals(*Expected(R"(["at", "after", "after"])"), *out);
  spec.ttl_us = 0;
  auto late =
      TableFromJson(arrow::schema({arrow::field("id", arrow::int64()), arrow::field("ts", type)}),
                    {"[1]", "[1000003]"});
  AsOfSpec tight = SimpleSpec();
  tight.ttl_us = 1;
  ASSERT_OK_AND_ASSIGN(out, AsOfJoinTables(*late, *right, tight));
  ExpectTableEquals(*Expected(R"([null])"), *out);  // 1000003 - 1 > 1000001
}

TEST(AsOfJoinGolden, NoMatchIsNull) {
  auto right = Right("[1]", "[10]", R"(["a"])");
  // Unknown key, too early, null time.
  auto left = Left("[2, 1, 1]", "[10, 9, null]");
  ASSERT_OK_AND_ASSIGN(auto out, AsOfJoinTables(*left, *right, SimpleSpec()));
  ExpectTableEquals(*Expected(R"([null, null, null])"), *out);
}

TEST(AsOfJoinGolden, LeftOrderAndDuplicatesPreserved) {
  auto right = Right("[3, 1, 2]", "[5, 5, 5]", R"(["c", "a", "b"])");
  auto left = Left("[2, 1, 2, 3, 2, 1]", "[9, 9, 9, 9, 4, 9]");
  ASSERT_OK_AND_ASSIGN(auto out, AsOfJoinTables(*left, *right, SimpleSpec()));
  ExpectTableEquals(*Expected(R"(["b", "a", "b", "c", null, "a"])"), *out);
}

TEST(AsOfJoinGolden, NullKeysNeverMatch) {
  auto right = Right("[null, 1, null]", "[5, 5, 1]", R"(["null-key", "a", "null-key2"])");
  auto left = Left("[null, 1]", "[9, 9]");
  ASSERT_OK_AND_ASSIGN(auto out, AsOfJoinTables(*left, *right, SimpleSpec()));
  ExpectTableEquals(*Expected(R"([null, "a"])"), *out);
}

TEST(AsOfJoinGolden, NullRightTimeNeverMatches) {
  auto right = Right("[1, 1]", "[5, null]", R"(["a", "null-time"])");
  auto left = Left("[1]", "[9]");
  ASSERT_OK_AND_ASSIGN(auto out, AsOfJoinTables(*left, *right, SimpleSpec()));
  ExpectTableEquals(*Expected(R"(["a"])"), *out);
}

TEST(AsOfJoinGolden, CompositeStringAndIntegerKeys) {
  auto right = TableFromJson(
      arrow::schema({arrow::field("user", arrow::utf8()), arrow::field("item", arrow::int32()),
                     arrow::field("ts", TsS()), arrow::field("v", arrow::utf8())}),
      {R"(["u1", "u1", "u2", "u1"])", "[7, 8, 7, 7]", "[1, 1, 1, 3]",
       R"(["u1-7", "u1-8", "u2-7", "u1-7-late"])"});
  auto left =
      TableFromJson(arrow::schema({arrow::field("u", arrow::large_utf8()),
                                   arrow::field("i", arrow::int64()), arrow::field("at", TsS())}),
                    {R"(["u1", "u2", "u1", "u2", null])", "[7, 7, 8, 8, 7]", "[2, 2, 2, 2, 2]"});
  AsOfSpec spec;
  spec.left_keys = {"u", "i"};
  spec.left_time = "at";
  spec.right_keys = {"user", "item"};
  spec.right_time = "ts";
  spec.features = {"v"};
  ASSERT_OK_AND_ASSIGN(auto out, AsOfJoinTables(*left, *right, spec));
  ExpectTableEquals(*Expected(R"(["u1-7", "u2-7", "u1-8", null, null])"), *out);
}

TEST(AsOfJoinGolden, DateLeftTimesAndMixedUnits) {
  // Left dates are midnight UTC; right times in milliseconds with a time zone.
  auto right = TableFromJson(
      arrow::schema(
          {arrow::field("id", arrow::int64()),
           arrow::field("ts", arrow::timestamp(arrow::TimeUnit::MILLI, "America/New_York")),
           arrow::field("v", arrow::utf8())}),
      {"[1, 1, 1]", "[86399999, 86400000, 86400001]", R"(["before", "midnight", "after"])"});
  auto left = TableFromJson(
      arrow::schema({arrow::field("id", arrow::int64()), arrow::field("ts", arrow::date32())}),
      {"[1, 1]", "[0, 1]"});
  ASSERT_OK_AND_ASSIGN(auto out, AsOfJoinTables(*left, *right, SimpleSpec()));
  ExpectTableEquals(*Expected(R"([null, "midnight"])"), *out);
}

TEST(AsOfJoinGolden, NoFeaturesKeepsRowCount) {
  auto right = Right("[1]", "[1]", R"(["a"])");
  auto left = Left("[1, 2]", "[1, 2]");
  AsOfSpec spec = SimpleSpec();
  spec.features = {};
  ASSERT_OK_AND_ASSIGN(auto out, AsOfJoinTables(*left, *right, spec));
  EXPECT_EQ(out->num_columns(), 0);
  EXPECT_EQ(out->num_rows(), 2);
}

TEST(AsOfJoinGolden, FeatureTypesAreKept) {
  auto schema = arrow::schema(
      {arrow::field("id", arrow::utf8()), arrow::field("ts", TsS()),
       arrow::field("f", arrow::float64()), arrow::field("b", arrow::boolean()),
       arrow::field("d", arrow::decimal128(10, 2)), arrow::field("l", arrow::list(arrow::int32())),
       arrow::field("bin", arrow::large_binary())});
  auto right =
      TableFromJson(schema, {R"(["x", "y"])", "[1, 1]", "[1.5, null]", "[true, false]",
                             R"(["1.25", "2.50"])", "[[1, 2], null]", R"(["YQ==", "Yg=="])"});
  auto left =
      TableFromJson(arrow::schema({arrow::field("id", arrow::utf8()), arrow::field("ts", TsS())}),
                    {R"(["y", "z", "x"])", "[5, 5, 5]"});
  AsOfSpec spec = SimpleSpec();
  spec.features = {"f", "b", "d", "l", "bin", "ts"};
  ASSERT_OK_AND_ASSIGN(auto out, AsOfJoinTables(*left, *right, spec));
  auto expected = TableFromJson(
      arrow::schema({arrow::field("f", arrow::float64()), arrow::field("b", arrow::boolean()),
                     arrow::field("d", arrow::decimal128(10, 2)),
                     arrow::field("l", arrow::list(arrow::int32())),
                     arrow::field("bin", arrow::large_binary()), arrow::field("ts", TsS())}),
      {"[null, null, 1.5]", "[false, null, true]", R"(["2.50", null, "1.25"])",
       "[null, null, [1, 2]]", R"(["Yg==", null, "YQ=="])", "[1, null, 1]"});
  ExpectTableEquals(*expected, *out);
}

// ---------------------------------------------------------------------------------------
// Randomized oracle.

enum class TimeKind { kSecond, kMilli, kMicroUtc, kNanoTz, kDate32 };

std::shared_ptr<arrow::DataType> TimeType(TimeKind k) {
  switch (k) {
    case TimeKind::kSecond:
      return arrow::timestamp(arrow::TimeUnit::SECOND);
    case TimeKind::kMilli:
      return arrow::timestamp(arrow::TimeUnit::MILLI);
    case TimeKind::kMicroUtc:
      return arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
    case TimeKind::kNanoTz:
      return arrow::timestamp(arrow::TimeUnit::NANO, "Asia/Kolkata");
    case TimeKind::kDate32:
      return arrow::date32();
  }
  return nullptr;
}

// The contract's conversion, written out: a UTC instant in microseconds
// (nanoseconds rounded down).
int64_t RefMicros(TimeKind k, int64_t raw) {
  switch (k) {
    case TimeKind::kSecond:
      return raw * 1000000;
    case TimeKind::kMilli:
      return raw * 1000;
    case TimeKind::kMicroUtc:
      return raw;
    case TimeKind::kNanoTz:
      return raw >= 0 ? raw / 1000 : -((-raw + 999) / 1000);
    case TimeKind::kDate32:
      return raw * 86400LL * 1000000;
  }
  return 0;
}

// A raw value in the unit of `k` near `seconds`, sometimes off by a unit or a
// fraction so that cross-unit comparisons and TTL edges get exercised.
int64_t RawTime(TimeKind k, int64_t seconds, std::mt19937_64& rng) {
  auto pick = [&](std::initializer_list<int64_t> v) { return *(v.begin() + rng() % v.size()); };
  switch (k) {
    case TimeKind::kSecond:
      return seconds;
    case TimeKind::kMilli:
      return seconds * 1000 + pick({0, 0, 0, 1, -1, 500});
    case TimeKind::kMicroUtc:
      return seconds * 1000000 + pick({0, 0, 0, 1, -1, 500000});
    case TimeKind::kNanoTz:
      return seconds * 1000000000 + pick({0, 0, 0, 1, 999, 1000, -1, -1000, -999});
    case TimeKind::kDate32:
      return seconds / 86400;
  }
  return 0;
}

// How the key columns look on each side.
enum class KeyMode {
  kInt64,           // int64 | int64
  kString,          // utf8 | utf8
  kIntString,       // (int64, utf8) | (int64, utf8)
  kInt32VsInt64,    // int32 | int64
  kSignedVsU64,     // int64 with -1 | uint64 with 2^64-1: never equal
  kLargeVsString,   // large_utf8 | utf8
  kStringVsView,    // utf8 | utf8_view
  kMixedComposite,  // (large_utf8, int32) | (utf8, int64)
  kDate,            // date32 | date32
  kCount
};

// One key value: null, a number or a string. Numbers compare by value.
struct KeyPart {
  bool null = false;
  bool is_string = false;
  __int128 number = 0;
  std::string text;
  bool operator==(const KeyPart& o) const {
    return null == o.null && is_string == o.is_string && number == o.number && text == o.text;
  }
};

struct Row {
  std::vector<KeyPart> key;
  std::optional<int64_t> time;     // raw, in the side's time unit
  std::optional<int64_t> created;  // raw milliseconds
  std::optional<std::string> s;    // a nullable string feature
  std::optional<bool> b;           // a nullable boolean feature
};

struct Case {
  KeyMode mode;
  TimeKind left_time, right_time;
  bool with_created;
  int64_t ttl_us;
  std::vector<Row> left, right;
  std::vector<int> right_batch_sizes;
  int left_chunks;
};

const char* const kStrings[] = {
    "a", "b", "", "ccc", "\xce\xb1\xce\xb2", "a\0b", "long-key-0123456789"};

KeyPart RandomPart(bool is_string, std::mt19937_64& rng, KeyMode mode, bool left_side) {
  KeyPart p;
  if (rng() % 10 == 0) {
    p.null = true;
    return p;
  }
  p.is_string = is_string;
  if (is_string) {
    size_t i = rng() % 7;
    p.text = i == 5 ? std::string("a\0b", 3) : std::string(kStrings[i]);
  } else if (mode == KeyMode::kSignedVsU64) {
    static const __int128 kLeft[] = {-1, 0, 1, 2};
    static const __int128 kRight[] = {0, 1, 2, static_cast<__int128>(~uint64_t{0})};
    p.number = left_side ? kLeft[rng() % 4] : kRight[rng() % 4];
  } else if (mode == KeyMode::kDate) {
    p.number = 19000 + static_cast<int64_t>(rng() % 3);
  } else {
    p.number = static_cast<int64_t>(rng() % 4) - (rng() % 8 == 0 ? 100 : 0);
  }
  return p;
}

std::vector<bool> StringParts(KeyMode mode, bool left_side) {
  switch (mode) {
    case KeyMode::kString:
    case KeyMode::kLargeVsString:
    case KeyMode::kStringVsView:
      return {true};
    case KeyMode::kIntString:
      return {false, true};
    case KeyMode::kMixedComposite:
      return {true, false};
    default:
      return {false};
  }
}

Case RandomCase(uint64_t seed) {
  std::mt19937_64 rng(seed);
  Case c;
  c.mode = static_cast<KeyMode>(rng() % static_cast<int>(KeyMode::kCount));
  const TimeKind kinds[] = {TimeKind::kSecond, TimeKind::kMilli, TimeKind::kMicroUtc,
                            TimeKind::kNanoTz};
  const bool dates = rng() % 5 == 0;
  c.left_time = dates ? TimeKind::kDate32 : kinds[rng() % 4];
  c.right_time = kinds[rng() % 4];
  c.with_created = rng() % 2 == 0;
  const int64_t kSec = 1000000;
  const int64_t ttls[] = {
      0, 0, 1, kSec, 3 * kSec, 3 * kSec + 1, 3 * kSec - 1, 86400 * kSec, 86400 * kSec + 1};
  c.ttl_us = ttls[rng() % 9];
  // Times: a few seconds around an origin (sometimes before 1970), or a few days
  // for date32 entity times.
  const int64_t origin = rng() % 3 == 0 ? -5 : 1700000000;
  auto seconds = [&]() -> int64_t {
    if (dates)
      return (19000 + static_cast<int64_t>(rng() % 4)) * 86400 +
             (static_cast<int64_t>(rng() % 5) - 2) * (rng() % 2 ? 1 : 43200);
    return origin + static_cast<int64_t>(rng() % 10);
  };
  const int nl = rng() % 8 == 0 ? 0 : static_cast<int>(rng() % 25);
  const int nr = rng() % 8 == 0 ? 0 : static_cast<int>(rng() % 40);
  auto make_row = [&](bool left_side) {
    Row r;
    for (bool is_string : StringParts(c.mode, left_side)) {
      r.key.push_back(RandomPart(is_string, rng, c.mode, left_side));
    }
    TimeKind k = left_side ? c.left_time : c.right_time;
    if (rng() % 12 != 0) r.time = RawTime(k, seconds(), rng);
    if (!left_side) {
      if (rng() % 4 != 0) r.created = static_cast<int64_t>(rng() % 3) * 1000;
      if (rng() % 5 != 0) r.s = "r" + std::to_string(rng() % 1000);
      if (rng() % 5 != 0) r.b = rng() % 2 == 0;
    }
    return r;
  };
  for (int i = 0; i < nl; ++i) {
    if (i > 0 && rng() % 6 == 0) {
      c.left.push_back(c.left[rng() % i]);  // an exact duplicate entity row
    } else {
      c.left.push_back(make_row(true));
    }
  }
  for (int i = 0; i < nr; ++i) c.right.push_back(make_row(false));
  int remaining = nr;
  while (remaining > 0) {
    int take = 1 + static_cast<int>(rng() % std::max(1, remaining));
    if (rng() % 3 == 0) take = remaining;
    c.right_batch_sizes.push_back(take);
    remaining -= take;
  }
  c.left_chunks = 1 + static_cast<int>(rng() % 3);
  return c;
}

// The reference: for each left row, the index of the right row the rules pick,
// or -1. Loops over every right row, literally.
std::vector<int> Reference(const Case& c) {
  std::vector<int> out;
  for (const Row& l : c.left) {
    int best = -1;
    bool key_null =
        std::any_of(l.key.begin(), l.key.end(), [](const KeyPart& p) { return p.null; });
    if (key_null || !l.time) {
      out.push_back(-1);
      continue;
    }
    const int64_t lt = RefMicros(c.left_time, *l.time);
    for (size_t j = 0; j < c.right.size(); ++j) {
      const Row& r = c.right[j];
      if (!r.time) continue;
      if (std::any_of(r.key.begin(), r.key.end(), [](const KeyPart& p) { return p.null; }))
        continue;
      if (!(r.key == l.key)) continue;
      const int64_t rt = RefMicros(c.right_time, *r.time);
      if (rt > lt) continue;
      if (c.ttl_us > 0 && rt < lt - c.ttl_us) continue;
      if (best < 0) {
        best = static_cast<int>(j);
        continue;
      }
      const Row& b = c.right[best];
      const int64_t bt = RefMicros(c.right_time, *b.time);
      if (rt != bt) {
        if (rt > bt) best = static_cast<int>(j);
        continue;
      }
      std::optional<int64_t> rc = c.with_created ? r.created : std::nullopt;
      std::optional<int64_t> bc = c.with_created ? b.created : std::nullopt;
      bool newer_created = rc.has_value() && (!bc.has_value() || *rc > *bc);
      bool same_created = rc == bc;
      if (newer_created || same_created) best = static_cast<int>(j);  // same: later arrival wins
    }
    out.push_back(best);
  }
  return out;
}

// The key column types per side.
std::vector<std::shared_ptr<arrow::DataType>> KeyTypes(KeyMode mode, bool left_side) {
  switch (mode) {
    case KeyMode::kInt64:
      return {arrow::int64()};
    case KeyMode::kString:
      return {arrow::utf8()};
    case KeyMode::kIntString:
      return {arrow::int64(), arrow::utf8()};
    case KeyMode::kInt32VsInt64:
      return {left_side ? arrow::int32() : arrow::int64()};
    case KeyMode::kSignedVsU64:
      return {left_side ? arrow::int64() : arrow::uint64()};
    case KeyMode::kLargeVsString:
      return {left_side ? arrow::large_utf8() : arrow::utf8()};
    case KeyMode::kStringVsView:
      return {left_side ? arrow::utf8() : arrow::utf8_view()};
    case KeyMode::kMixedComposite:
      return {left_side ? arrow::large_utf8() : arrow::utf8(),
              left_side ? arrow::int32() : arrow::int64()};
    case KeyMode::kDate:
      return {arrow::date32()};
    default:
      return {};
  }
}

std::shared_ptr<arrow::Array> BuildKeyColumn(const std::shared_ptr<arrow::DataType>& type,
                                             const std::vector<Row>& rows, size_t part) {
  std::unique_ptr<arrow::ArrayBuilder> builder;
  EXPECT_TRUE(arrow::MakeBuilder(arrow::default_memory_pool(), type, &builder).ok());
  for (const Row& r : rows) {
    const KeyPart& p = r.key[part];
    arrow::Status st;
    if (p.null) {
      st = builder->AppendNull();
    } else {
      switch (type->id()) {
        case arrow::Type::INT64:
          st = static_cast<arrow::Int64Builder&>(*builder).Append(static_cast<int64_t>(p.number));
          break;
        case arrow::Type::INT32:
          st = static_cast<arrow::Int32Builder&>(*builder).Append(static_cast<int32_t>(p.number));
          break;
        case arrow::Type::UINT64:
          st = static_cast<arrow::UInt64Builder&>(*builder).Append(static_cast<uint64_t>(p.number));
          break;
        case arrow::Type::DATE32:
          st = static_cast<arrow::Date32Builder&>(*builder).Append(static_cast<int32_t>(p.number));
          break;
        case arrow::Type::STRING:
          st = static_cast<arrow::StringBuilder&>(*builder).Append(p.text);
          break;
        case arrow::Type::LARGE_STRING:
          st = static_cast<arrow::LargeStringBuilder&>(*builder).Append(p.text);
          break;
        case arrow::Type::STRING_VIEW:
          st = static_cast<arrow::StringViewBuilder&>(*builder).Append(p.text);
          break;
        default:
          st = arrow::Status::NotImplemented("key type");
      }
    }
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  std::shared_ptr<arrow::Array> out;
  EXPECT_TRUE(builder->Finish(&out).ok());
  return out;
}

std::shared_ptr<arrow::Array> BuildTimes(const std::shared_ptr<arrow::DataType>& type,
                                         const std::vector<std::optional<int64_t>>& raw) {
  std::unique_ptr<arrow::ArrayBuilder> builder;
  EXPECT_TRUE(arrow::MakeBuilder(arrow::default_memory_pool(), type, &builder).ok());
  for (const auto& v : raw) {
    arrow::Status st;
    if (!v) {
      st = builder->AppendNull();
    } else if (type->id() == arrow::Type::DATE32) {
      st = static_cast<arrow::Date32Builder&>(*builder).Append(static_cast<int32_t>(*v));
    } else {
      st = static_cast<arrow::TimestampBuilder&>(*builder).Append(*v);
    }
    EXPECT_TRUE(st.ok());
  }
  std::shared_ptr<arrow::Array> out;
  EXPECT_TRUE(builder->Finish(&out).ok());
  return out;
}

std::shared_ptr<arrow::Array> BuildStrings(const std::vector<std::optional<std::string>>& v) {
  arrow::StringBuilder b;
  for (const auto& s : v) EXPECT_TRUE((s ? b.Append(*s) : b.AppendNull()).ok());
  return b.Finish().ValueOrDie();
}

std::shared_ptr<arrow::Array> BuildBools(const std::vector<std::optional<bool>>& v) {
  arrow::BooleanBuilder b;
  for (const auto& x : v) EXPECT_TRUE((x ? b.Append(*x) : b.AppendNull()).ok());
  return b.Finish().ValueOrDie();
}

std::shared_ptr<arrow::Array> BuildInts(const std::vector<std::optional<int64_t>>& v) {
  arrow::Int64Builder b;
  for (const auto& x : v) EXPECT_TRUE((x ? b.Append(*x) : b.AppendNull()).ok());
  return b.Finish().ValueOrDie();
}

// Splits `array` into `chunks` pieces at arbitrary points.
std::shared_ptr<arrow::ChunkedArray> Rechunk(const std::shared_ptr<arrow::Array>& array, int chunks,
                                             int salt) {
  arrow::ArrayVector pieces;
  int64_t n = array->length();
  int64_t at = 0;
  for (int c = 0; c < chunks - 1 && n > 0; ++c) {
    int64_t len = (n * (c + 1 + salt % 2)) / (chunks + 1) - at;
    if (len <= 0) continue;
    pieces.push_back(array->Slice(at, len));
    at += len;
  }
  pieces.push_back(array->Slice(at));
  return std::make_shared<arrow::ChunkedArray>(pieces, array->type());
}

struct Built {
  std::shared_ptr<arrow::Table> left;
  std::shared_ptr<arrow::Schema> right_schema;
  std::vector<std::shared_ptr<arrow::RecordBatch>> right_batches;
  AsOfSpec spec;
};

Built BuildCase(const Case& c) {
  Built out;
  auto lkt = KeyTypes(c.mode, true);
  auto rkt = KeyTypes(c.mode, false);
  arrow::FieldVector lf, rf;
  std::vector<std::shared_ptr<arrow::ChunkedArray>> lcols;
  arrow::ArrayVector rcols;
  for (size_t k = 0; k < lkt.size(); ++k) {
    std::string ln = "lk" + std::to_string(k), rn = "rk" + std::to_string(k);
    lf.push_back(arrow::field(ln, lkt[k]));
    rf.push_back(arrow::field(rn, rkt[k]));
    lcols.push_back(Rechunk(BuildKeyColumn(lkt[k], c.left, k), c.left_chunks, static_cast<int>(k)));
    rcols.push_back(BuildKeyColumn(rkt[k], c.right, k));
    out.spec.left_keys.push_back(ln);
    out.spec.right_keys.push_back(rn);
  }
  std::vector<std::optional<int64_t>> lt, rt, rc, v;
  std::vector<std::optional<std::string>> s;
  std::vector<std::optional<bool>> b;
  for (const Row& r : c.left) lt.push_back(r.time);
  for (size_t j = 0; j < c.right.size(); ++j) {
    rt.push_back(c.right[j].time);
    rc.push_back(c.right[j].created);
    v.push_back(static_cast<int64_t>(j));
    s.push_back(c.right[j].s);
    b.push_back(c.right[j].b);
  }
  lf.push_back(arrow::field("lt", TimeType(c.left_time)));
  lcols.push_back(Rechunk(BuildTimes(TimeType(c.left_time), lt), c.left_chunks, 7));
  lf.push_back(arrow::field("payload", arrow::int64()));
  std::vector<std::optional<int64_t>> payload;
  for (size_t i = 0; i < c.left.size(); ++i) payload.push_back(static_cast<int64_t>(i));
  lcols.push_back(std::make_shared<arrow::ChunkedArray>(BuildInts(payload)));
  out.left = arrow::Table::Make(arrow::schema(lf), lcols, static_cast<int64_t>(c.left.size()));

  rf.push_back(arrow::field("rt", TimeType(c.right_time)));
  rcols.push_back(BuildTimes(TimeType(c.right_time), rt));
  rf.push_back(arrow::field("rc", arrow::timestamp(arrow::TimeUnit::MILLI)));
  rcols.push_back(BuildTimes(arrow::timestamp(arrow::TimeUnit::MILLI), rc));
  rf.push_back(arrow::field("v", arrow::int64()));
  rcols.push_back(BuildInts(v));
  rf.push_back(arrow::field("s", arrow::utf8()));
  rcols.push_back(BuildStrings(s));
  rf.push_back(arrow::field("b", arrow::boolean()));
  rcols.push_back(BuildBools(b));
  out.right_schema = arrow::schema(rf);
  auto whole =
      arrow::RecordBatch::Make(out.right_schema, static_cast<int64_t>(c.right.size()), rcols);
  int64_t at = 0;
  for (int size : c.right_batch_sizes) {
    out.right_batches.push_back(whole->Slice(at, size));
    at += size;
  }
  out.spec.left_time = "lt";
  out.spec.right_time = "rt";
  if (c.with_created) out.spec.right_created = "rc";
  out.spec.ttl_us = c.ttl_us;
  out.spec.features = {"v", "s", "b", "rt"};
  return out;
}

struct Coverage {
  int64_t cases = 0, spilled_cases = 0, matched_rows = 0, unmatched_rows = 0;
};

// Runs one case with `options` and compares every output column with the reference.
// With `slices` > 0, the entity rows are matched in that many slices with
// Match (the spilled partitions are kept between them) and the results
// concatenated.
void CheckCase(uint64_t seed, const AsOfOptions& options, Coverage* coverage, int slices = 0) {
  SCOPED_TRACE("seed " + std::to_string(seed) + " threads " + std::to_string(options.num_threads) +
               " budget " + std::to_string(options.memory_budget_bytes));
  Case c = RandomCase(seed);
  Built built = BuildCase(c);
  std::vector<int> expected = Reference(c);

  ASSERT_OK_AND_ASSIGN(auto join, AsOfJoin::Make(built.spec, built.right_schema, options));
  for (const auto& batch : built.right_batches) ASSERT_OK(join->AddRight(batch));
  std::shared_ptr<arrow::Table> out;
  if (slices == 0) {
    ASSERT_OK_AND_ASSIGN(out, join->Finish(*built.left));
  } else {
    const int64_t n = built.left->num_rows();
    std::vector<std::shared_ptr<arrow::Table>> parts;
    for (int i = 0; i < slices; ++i) {
      int64_t from = n * i / slices;
      int64_t to = n * (i + 1) / slices;
      ASSERT_OK_AND_ASSIGN(auto part, join->Match(*built.left->Slice(from, to - from)));
      ASSERT_EQ(part->num_rows(), to - from);
      parts.push_back(part);
    }
    ASSERT_OK_AND_ASSIGN(out, arrow::ConcatenateTables(parts));
    if (!built.right_batches.empty()) {
      EXPECT_FALSE(join->AddRight(built.right_batches[0]).ok());
    }
    EXPECT_FALSE(join->Finish(*built.left).ok());
  }
  ASSERT_EQ(out->num_rows(), static_cast<int64_t>(c.left.size()));
  ++coverage->cases;
  if (join->stats().spilled_partitions > 0) ++coverage->spilled_cases;
  for (int j : expected) ++(j < 0 ? coverage->unmatched_rows : coverage->matched_rows);

  std::vector<std::optional<int64_t>> v, rt;
  std::vector<std::optional<std::string>> s;
  std::vector<std::optional<bool>> b;
  for (int j : expected) {
    v.push_back(j < 0 ? std::nullopt : std::optional<int64_t>(j));
    s.push_back(j < 0 ? std::nullopt : c.right[j].s);
    b.push_back(j < 0 ? std::nullopt : c.right[j].b);
    rt.push_back(j < 0 ? std::nullopt : c.right[j].time);
  }
  auto expected_table = arrow::Table::Make(
      arrow::schema({arrow::field("v", arrow::int64()), arrow::field("s", arrow::utf8()),
                     arrow::field("b", arrow::boolean()),
                     arrow::field("rt", TimeType(c.right_time))}),
      {BuildInts(v), BuildStrings(s), BuildBools(b), BuildTimes(TimeType(c.right_time), rt)});
  ExpectTableEquals(*expected_table, *out);
}

constexpr uint64_t kOracleSeed = 0x5EED0A50F;

TEST(AsOfJoinOracle, InMemory) {
  Coverage coverage;
  for (uint64_t i = 0; i < 2400; ++i) {
    AsOfOptions options;
    options.num_threads = i % 2 == 0 ? 1 : 4;
    CheckCase(kOracleSeed + i, options, &coverage);
    if (::testing::Test::HasFailure()) break;
  }
  EXPECT_EQ(coverage.spilled_cases, 0);
  EXPECT_GT(coverage.matched_rows, 5000);
  EXPECT_GT(coverage.unmatched_rows, 5000);
}

TEST(AsOfJoinOracle, SpillingWithTinyBudget) {
  TempDir dir;
  Coverage coverage;
  for (uint64_t i = 0; i < 400; ++i) {
    AsOfOptions options;
    options.num_threads = i % 2 == 0 ? 1 : 4;
    options.memory_budget_bytes = 1024;
    options.spill_dir = dir.path();
    CheckCase(kOracleSeed + 100000 + i, options, &coverage);
    if (::testing::Test::HasFailure()) break;
  }
  EXPECT_EQ(CountEntries(dir.path()), 0u) << "spill folders left behind";
  EXPECT_GT(coverage.spilled_cases, 250);
  EXPECT_GT(coverage.matched_rows, 800);
}

// Match on slices of the entity rows (the streaming retrieval's path) gives
// what Finish gives for the whole table, in memory and spilled.
TEST(AsOfJoinOracle, MatchInSlices) {
  TempDir dir;
  Coverage coverage;
  for (uint64_t i = 0; i < 600; ++i) {
    AsOfOptions options;
    options.num_threads = i % 2 == 0 ? 1 : 4;
    if (i % 3 != 0) options.memory_budget_bytes = 1024;
    options.spill_dir = dir.path();
    CheckCase(kOracleSeed + 200000 + i, options, &coverage, 1 + static_cast<int>(i % 4));
    if (::testing::Test::HasFailure()) break;
  }
  EXPECT_EQ(CountEntries(dir.path()), 0u) << "spill folders left behind";
  EXPECT_GT(coverage.spilled_cases, 250);
  EXPECT_GT(coverage.matched_rows, 800);
}

// Byte keys are represented by a 64-bit hash; a collision must not merge two
// keys. Collisions cannot be provoked through the API, so the runs are built
// by hand with every hash equal.
TEST(AsOfJoinRuns, HashCollisionsKeepKeysApart) {
  auto right_keys =
      arrow::json::ArrayFromJSONString(arrow::utf8(), R"(["b", "a", "b", "a", "c"])").ValueOrDie();
  auto left_keys =
      arrow::json::ArrayFromJSONString(arrow::large_utf8(), R"(["a", "b", "c", "d", "a"])")
          .ValueOrDie();
  asof::KeyBytes rb, lb;
  rb.AddChunk(*right_keys->data());
  lb.AddChunk(*left_keys->data());
  const uint64_t h = 0x8000000000000000ULL;
  // Right: b@1, a@2, b@3, a@4, c@9. Left: a@3, b@3, c@3, d@9, a@9.
  asof::RecVector<asof::RightRec> right = {
      {h, 1, 0, 0}, {h, 2, 0, 1}, {h, 3, 0, 2}, {h, 4, 0, 3}, {h, 9, 0, 4}};
  asof::RecVector<asof::LeftRec> left = {{h, 3, 0}, {h, 3, 1}, {h, 3, 2}, {h, 9, 3}, {h, 9, 4}};
  asof::RecVector<asof::RightRec> right_scratch;
  asof::RecVector<asof::LeftRec> left_scratch;
  auto sorted_right = asof::SortRun(std::span<asof::RightRec>(right), 1, &rb, &right_scratch);
  auto sorted_left = asof::SortRun(std::span<asof::LeftRec>(left), 1, &lb, &left_scratch);
  std::vector<int64_t> match(5, -1);
  asof::MergeAsOf(sorted_left, &lb, sorted_right, &rb, 0,
                  [&](uint64_t l, uint64_t r) { match[l] = static_cast<int64_t>(r); });
  EXPECT_EQ(match, (std::vector<int64_t>{1, 2, -1, -1, 3}));
}

// ---------------------------------------------------------------------------------------
// A right side far larger than the memory budget.

std::shared_ptr<arrow::Schema> BigSchema() {
  return arrow::schema({arrow::field("id", arrow::int64()),
                        arrow::field("ts", arrow::timestamp(arrow::TimeUnit::MICRO)),
                        arrow::field("created", arrow::timestamp(arrow::TimeUnit::MICRO)),
                        arrow::field("v", arrow::int64())});
}

// Feature rows start..start+n: id cycles over `entities`, times pseudo-random in a
// small range (so ties happen), v = row number.
std::shared_ptr<arrow::RecordBatch> BigBatch(int64_t start, int64_t n, int64_t entities) {
  arrow::Int64Builder id, v;
  arrow::TimestampBuilder ts(arrow::timestamp(arrow::TimeUnit::MICRO),
                             arrow::default_memory_pool());
  arrow::TimestampBuilder created(arrow::timestamp(arrow::TimeUnit::MICRO),
                                  arrow::default_memory_pool());
  for (int64_t i = start; i < start + n; ++i) {
    uint64_t h = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ULL;
    EXPECT_TRUE(id.Append((i * 7919) % entities).ok());
    EXPECT_TRUE(ts.Append(static_cast<int64_t>((h >> 40) % 1000)).ok());
    EXPECT_TRUE((h % 7 == 0 ? created.AppendNull() : created.Append((h >> 20) % 3)).ok());
    EXPECT_TRUE(v.Append(i).ok());
  }
  return arrow::RecordBatch::Make(BigSchema(), n,
                                  {id.Finish().ValueOrDie(), ts.Finish().ValueOrDie(),
                                   created.Finish().ValueOrDie(), v.Finish().ValueOrDie()});
}

std::shared_ptr<arrow::Table> BigLeft(int64_t n, int64_t entities) {
  arrow::Int64Builder id;
  arrow::TimestampBuilder ts(arrow::timestamp(arrow::TimeUnit::MICRO),
                             arrow::default_memory_pool());
  std::mt19937_64 rng(42);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_TRUE(id.Append(static_cast<int64_t>(rng() % (entities + 10))).ok());
    EXPECT_TRUE(ts.Append(static_cast<int64_t>(rng() % 1100)).ok());
  }
  return arrow::Table::Make(
      arrow::schema({arrow::field("id", arrow::int64()),
                     arrow::field("ts", arrow::timestamp(arrow::TimeUnit::MICRO))}),
      {id.Finish().ValueOrDie(), ts.Finish().ValueOrDie()});
}

AsOfSpec BigSpec() {
  AsOfSpec spec;
  spec.left_keys = {"id"};
  spec.left_time = "ts";
  spec.right_keys = {"id"};
  spec.right_time = "ts";
  spec.right_created = "created";
  spec.ttl_us = 400;
  spec.features = {"v"};
  return spec;
}

// Runs the big join: `rows` feature rows in batches of 65536.
arrow::Result<std::shared_ptr<arrow::Table>> RunBig(const arrow::Table& left, int64_t rows,
                                                    int64_t entities, const AsOfOptions& options,
                                                    AsOfStats* stats) {
  ARROW_ASSIGN_OR_RAISE(auto join, AsOfJoin::Make(BigSpec(), BigSchema(), options));
  for (int64_t at = 0; at < rows; at += 65536) {
    ARROW_RETURN_NOT_OK(
        join->AddRight(BigBatch(at, std::min<int64_t>(65536, rows - at), entities)));
  }
  ARROW_ASSIGN_OR_RAISE(auto out, join->Finish(left));
  *stats = join->stats();
  return out;
}

TEST(AsOfJoinSpill, RightFiftyTimesTheBudget) {
  const int64_t rows = 2'000'000, entities = 50'000;
  auto left = BigLeft(200'000, entities);
  TempDir dir;
  AsOfOptions small;
  small.memory_budget_bytes = 1 << 20;
  small.spill_dir = dir.path();
  small.num_threads = 2;
  AsOfStats spilled_stats, memory_stats;
  ASSERT_OK_AND_ASSIGN(auto spilled, RunBig(*left, rows, entities, small, &spilled_stats));
  // 64 first-level partitions, each too large for its share of the budget and split again.
  EXPECT_GT(spilled_stats.spilled_partitions, 64);
  EXPECT_GT(spilled_stats.partitions, 64);
  // Held at once: up to the budget plus one incoming batch (65536 rows of 32 bytes
  // plus ~48 bytes of bookkeeping each), never the whole right side.
  EXPECT_LE(spilled_stats.peak_buffered_bytes, small.memory_budget_bytes + 65536 * 80);
  EXPECT_GT(spilled_stats.spilled_bytes, 50 << 20);
  EXPECT_EQ(spilled_stats.right_rows, rows);
  EXPECT_EQ(CountEntries(dir.path()), 0u) << "spill folder not removed";

  AsOfOptions big;
  big.memory_budget_bytes = int64_t{4} << 30;
  ASSERT_OK_AND_ASSIGN(auto in_memory, RunBig(*left, rows, entities, big, &memory_stats));
  EXPECT_EQ(memory_stats.spilled_partitions, 0);
  ExpectTableEquals(*in_memory, *spilled);

  // Properties of a sample of rows, checked by brute force against the generator.
  auto v = std::static_pointer_cast<arrow::Int64Array>(spilled->column(0)->chunk(0));
  auto ids = std::static_pointer_cast<arrow::Int64Array>(left->column(0)->chunk(0));
  auto ts = std::static_pointer_cast<arrow::TimestampArray>(left->column(1)->chunk(0));
  auto all = BigBatch(0, rows, entities);
  auto rid = std::static_pointer_cast<arrow::Int64Array>(all->column(0));
  auto rts = std::static_pointer_cast<arrow::TimestampArray>(all->column(1));
  auto rcr = std::static_pointer_cast<arrow::TimestampArray>(all->column(2));
  int64_t matched = 0;
  for (int64_t i = 0; i < 40; ++i) {
    int64_t best = -1;
    for (int64_t j = 0; j < rows; ++j) {
      if (rid->Value(j) != ids->Value(i) || rts->Value(j) > ts->Value(i) ||
          rts->Value(j) < ts->Value(i) - 400) {
        continue;
      }
      if (best < 0 || rts->Value(j) > rts->Value(best) ||
          (rts->Value(j) == rts->Value(best) &&
           (rcr->IsValid(j) ? (rcr->IsNull(best) || rcr->Value(j) >= rcr->Value(best))
                            : rcr->IsNull(best)))) {
        best = j;
      }
    }
    if (best < 0) {
      EXPECT_TRUE(v->IsNull(i)) << "row " << i;
    } else {
      ++matched;
      EXPECT_TRUE(v->IsValid(i) && v->Value(i) == best) << "row " << i;
    }
  }
  EXPECT_GT(matched, 10);
}

TEST(AsOfJoinSpill, HotKeyCannotBeSplit) {
  // Every feature row has the same key: partitions cannot be split below the
  // budget; the join still completes and agrees with the in-memory one.
  const int64_t rows = 300'000;
  auto left = BigLeft(5'000, 1);
  TempDir dir;
  AsOfOptions small;
  small.memory_budget_bytes = 64 << 10;
  small.spill_dir = dir.path();
  AsOfStats s1, s2;
  ASSERT_OK_AND_ASSIGN(auto spilled, RunBig(*left, rows, 1, small, &s1));
  // One first-level partition, split once without effect, then joined whole.
  EXPECT_EQ(s1.spilled_partitions, 2);
  EXPECT_EQ(s1.partitions, 1);
  ASSERT_OK_AND_ASSIGN(auto in_memory, RunBig(*left, rows, 1, AsOfOptions{}, &s2));
  ExpectTableEquals(*in_memory, *spilled);
  EXPECT_EQ(CountEntries(dir.path()), 0u);
}

TEST(AsOfJoinSpill, FolderRemovedOnError) {
  TempDir dir;
  {
    AsOfOptions options;
    options.memory_budget_bytes = 1024;
    options.spill_dir = dir.path();
    ASSERT_OK_AND_ASSIGN(auto join, AsOfJoin::Make(BigSpec(), BigSchema(), options));
    ASSERT_OK(join->AddRight(BigBatch(0, 10000, 100)));
    EXPECT_EQ(CountEntries(dir.path()), 1u);  // the private folder
    auto bad_left =
        TableFromJson(arrow::schema({arrow::field("id", arrow::utf8()), arrow::field("ts", TsS())}),
                      {R"(["1"])", "[1]"});
    auto result = join->Finish(*bad_left);
    EXPECT_FALSE(result.ok());
  }
  EXPECT_EQ(CountEntries(dir.path()), 0u);
}

// ---------------------------------------------------------------------------------------
// Errors.

std::string ErrorOf(const arrow::Status& st) { return st.ToString(); }

TEST(AsOfJoinErrors, MissingRightColumn) {
  auto schema = Right("[]", "[]", "[]")->schema();
  AsOfSpec spec = SimpleSpec();
  spec.right_keys = {"nope"};
  auto r = AsOfJoin::Make(spec, schema);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ErrorOf(r.status()),
            "Invalid: right key column 'nope' is not in the feature schema (columns: id, ts, v)");
  spec = SimpleSpec();
  spec.features = {"v", "w"};
  EXPECT_EQ(ErrorOf(AsOfJoin::Make(spec, schema).status()),
            "Invalid: feature column 'w' is not in the feature schema (columns: id, ts, v)");
  spec = SimpleSpec();
  spec.right_created = "created";
  EXPECT_EQ(ErrorOf(AsOfJoin::Make(spec, schema).status()),
            "Invalid: right created column 'created' is not in the feature schema (columns: id, "
            "ts, v)");
}

TEST(AsOfJoinErrors, TimeColumnsMustBeTimes) {
  auto schema = Right("[]", "[]", "[]")->schema();
  AsOfSpec spec = SimpleSpec();
  spec.right_time = "v";
  EXPECT_EQ(ErrorOf(AsOfJoin::Make(spec, schema).status()),
            "Type error: right time column 'v' has type string; it must be a timestamp or a date");
  spec = SimpleSpec();
  spec.right_created = "id";
  EXPECT_EQ(ErrorOf(AsOfJoin::Make(spec, schema).status()),
            "Type error: right created column 'id' has type int64; it must be a timestamp or a "
            "date");
  ASSERT_OK_AND_ASSIGN(auto join, AsOfJoin::Make(SimpleSpec(), schema));
  auto left = TableFromJson(
      arrow::schema({arrow::field("id", arrow::int64()), arrow::field("ts", arrow::utf8())}),
      {"[1]", R"(["2024-01-01"])"});
  EXPECT_EQ(ErrorOf(join->Finish(*left).status()),
            "Type error: left time column 'ts' has type string; it must be a timestamp or a date");
}

TEST(AsOfJoinErrors, KeyCountMismatch) {
  auto schema = Right("[]", "[]", "[]")->schema();
  AsOfSpec spec = SimpleSpec();
  spec.left_keys = {"id", "region"};
  EXPECT_EQ(ErrorOf(AsOfJoin::Make(spec, schema).status()),
            "Invalid: as-of join has 2 left key column(s) (id, region) but 1 right key "
            "column(s) (id); keys are matched pairwise");
  spec.left_keys = {};
  spec.right_keys = {};
  EXPECT_EQ(ErrorOf(AsOfJoin::Make(spec, schema).status()),
            "Invalid: as-of join needs at least one key column pair");
}

TEST(AsOfJoinErrors, IncompatibleKeyTypes) {
  auto schema = Right("[]", "[]", "[]")->schema();
  ASSERT_OK_AND_ASSIGN(auto join, AsOfJoin::Make(SimpleSpec(), schema));
  auto left =
      TableFromJson(arrow::schema({arrow::field("id", arrow::utf8()), arrow::field("ts", TsS())}),
                    {R"(["1"])", "[1]"});
  EXPECT_EQ(ErrorOf(join->Finish(*left).status()),
            "Type error: left key column 'id' (string) cannot be compared with right key column "
            "'id' (int64). Detail: SchemaMismatch");
  auto dschema =
      TableFromJson(arrow::schema({arrow::field("id", arrow::float64()), arrow::field("ts", TsS()),
                                   arrow::field("v", arrow::utf8())}),
                    {"[]", "[]", "[]"})
          ->schema();
  EXPECT_EQ(ErrorOf(AsOfJoin::Make(SimpleSpec(), dschema).status()),
            "Type error: right key column 'id' has type double; key columns must be integers, "
            "strings, binary or dates. Detail: SchemaMismatch");
}

TEST(AsOfJoinErrors, MissingLeftColumn) {
  auto schema = Right("[]", "[]", "[]")->schema();
  ASSERT_OK_AND_ASSIGN(auto join, AsOfJoin::Make(SimpleSpec(), schema));
  auto left = TableFromJson(
      arrow::schema({arrow::field("entity", arrow::int64()), arrow::field("ts", TsS())}),
      {"[1]", "[1]"});
  EXPECT_EQ(ErrorOf(join->Finish(*left).status()),
            "Invalid: left key column 'id' is not in the entity table (columns: entity, ts)");
}

TEST(AsOfJoinErrors, SpecAndUsage) {
  auto schema = Right("[]", "[]", "[]")->schema();
  AsOfSpec spec = SimpleSpec();
  spec.ttl_us = -1;
  EXPECT_EQ(ErrorOf(AsOfJoin::Make(spec, schema).status()),
            "Invalid: ttl_us must be >= 0 (0 = unlimited), got -1");
  spec = SimpleSpec();
  spec.features = {"v", "v"};
  EXPECT_EQ(ErrorOf(AsOfJoin::Make(spec, schema).status()), "Invalid: feature 'v' is listed twice");

  ASSERT_OK_AND_ASSIGN(auto join, AsOfJoin::Make(SimpleSpec(), schema));
  auto wrong =
      TableFromJson(arrow::schema({arrow::field("id", arrow::int32()), arrow::field("ts", TsS()),
                                   arrow::field("v", arrow::utf8())}),
                    {"[1]", "[1]", R"(["a"])"});
  ASSERT_OK_AND_ASSIGN(auto batch, wrong->CombineChunksToBatch());
  EXPECT_EQ(ErrorOf(join->AddRight(batch)),
            "Type error: feature batch column 'id' has type int32 but the feature schema says "
            "int64");
  ASSERT_OK(join->Finish(*Left("[1]", "[1]")).status());
  EXPECT_EQ(ErrorOf(join->Finish(*Left("[1]", "[1]")).status()),
            "Invalid: Finish may be called only once");
  EXPECT_EQ(ErrorOf(join->AddRight(batch)), "Invalid: AddRight called after Finish");
}

}  // namespace
}  // namespace stratalake::retrieval
