// GenerateSampleTrades: the markets template's trades.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "stratalake/init.h"

namespace stratalake::repo {
namespace {

constexpr int64_t kDay = 86400;
constexpr int64_t kAnchor = 1796601600;  // 2026-12-07T00:00:00Z

std::vector<SampleTradeMessage> Trades(int64_t anchor_s, uint64_t seed = 42, int64_t minutes = 30) {
  SampleTradesOptions o;
  o.anchor_s = anchor_s;
  o.seed = seed;
  o.minutes = minutes;
  auto r = GenerateSampleTrades(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : std::vector<SampleTradeMessage>{};
}

TEST(SampleTrades, DeterministicAndAnchoredOnWholeDays) {
  auto a = Trades(kAnchor);
  auto b = Trades(kAnchor + 13 * 3600);  // the time of day does not matter
  ASSERT_GT(a.size(), 1000u);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].key, b[i].key);
    EXPECT_EQ(a[i].json, b[i].json);
  }
  // Two days later: the same trades with "2026-12-08" instead of "2026-12-06".
  auto c = Trades(kAnchor + 2 * kDay);
  ASSERT_EQ(a.size(), c.size());
  EXPECT_NE(a[0].json.find("\"ts\":\"2026-12-06T23:30:"), std::string::npos) << a[0].json;
  std::string shifted = a[0].json;
  shifted.replace(shifted.find("2026-12-06"), 10, "2026-12-08");
  EXPECT_EQ(c[0].json, shifted);
  // Another seed, other trades.
  EXPECT_NE(Trades(kAnchor, 7)[0].json, a[0].json);
}

TEST(SampleTrades, AnExactAnchorMovesTheSeriesToEndThere) {
  // --end-at: the same series as at midnight, ending just before 13:00:05 instead.
  auto a = Trades(kAnchor);
  SampleTradesOptions o;
  o.anchor_s = kAnchor + 13 * 3600 + 5;
  o.minutes = 30;
  o.exact_anchor = true;
  auto r = GenerateSampleTrades(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(a.size(), r->size());
  EXPECT_NE(a[0].json.find("\"ts\":\"2026-12-06T23:30:"), std::string::npos) << a[0].json;
  std::string moved = a[0].json;
  moved.replace(moved.find("2026-12-06T23:30:"), 17, "2026-12-07T12:30:");
  // Only the seconds change besides the hour: 5 s later.
  const size_t sec = moved.find("T12:30:") + 7;
  const int s = std::stoi(moved.substr(sec, 2)) + 5;
  ASSERT_LT(s, 60) << moved;
  moved.replace(sec, 2, (s < 10 ? "0" : "") + std::to_string(s));
  EXPECT_EQ((*r)[0].json, moved);
  EXPECT_EQ((*r)[0].key, a[0].key);
}

TEST(SampleTrades, QuotesSidesIdsAndTimes) {
  auto trades = Trades(kAnchor, 42, 120);
  std::map<std::string, int64_t> last_id;
  std::map<std::string, std::string> last_ts;
  std::string prev_ts;
  int buys = 0;
  for (const auto& m : trades) {
    rapidjson::Document d;
    d.Parse(m.json.c_str());
    ASSERT_FALSE(d.HasParseError()) << m.json;
    const std::string symbol = d["symbol"].GetString();
    EXPECT_EQ(symbol, m.key);
    EXPECT_TRUE(symbol == "BTCUSDT" || symbol == "ETHUSDT");
    EXPECT_EQ(d["trade_id"].GetInt64(), ++last_id[symbol]);  // 1, 2, ... per symbol
    const std::string ts = d["ts"].GetString();
    EXPECT_GE(ts, prev_ts);          // event-time order overall...
    EXPECT_GT(ts, last_ts[symbol]);  // ...strictly increasing per symbol
    EXPECT_GE(ts, "2026-12-06T22:00:00.000Z");
    EXPECT_LT(ts, "2026-12-07T00:00:00.000Z");
    prev_ts = last_ts[symbol] = ts;
    const double bid = d["bid"].GetDouble(), ask = d["ask"].GetDouble();
    const double price = d["price"].GetDouble();
    const std::string side = d["side"].GetString();
    EXPECT_LT(bid, ask);
    EXPECT_EQ(price, side == "buy" ? ask : bid) << m.json;
    EXPECT_GT(d["qty"].GetDouble(), 0);
    buys += side == "buy";
  }
  // Roughly balanced sides.
  EXPECT_GT(buys, static_cast<int>(trades.size() * 4 / 10));
  EXPECT_LT(buys, static_cast<int>(trades.size() * 6 / 10));
}

TEST(SampleTrades, RefusesADurationOutOfRange) {
  SampleTradesOptions o;
  o.anchor_s = kAnchor;
  for (int64_t minutes : {int64_t{0}, int64_t{7 * 24 * 60 + 1}}) {
    o.minutes = minutes;
    auto r = GenerateSampleTrades(o);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().IsInvalid());
    EXPECT_NE(r.status().message().find("sample trades cover 1 to 10080 minutes, got " +
                                        std::to_string(minutes)),
              std::string::npos);
  }
}

TEST(SampleTrades, InitRefusesAnUnknownTemplate) {
  InitOptions o;
  o.template_name = "fx";
  auto r = InitRepository(::testing::TempDir() + "/stratalake-unknown-template", o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "unknown template 'fx'; the templates are 'shop' (the default: an e-commerce shop) "
            "and 'markets' (trades for a trading model)");
}

}  // namespace
}  // namespace stratalake::repo
