// `stratalake init`: a new feature repository with a sample's definitions and
// generated data: the e-commerce shop (the default template) or the markets
// template (trades for a trading model). Implemented by the `stratalake_sample` library
// (src/sample/), which only what offers `init` links (the CLI, the SDK): the
// core library carries no demo data.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "stratalake/clock.h"

namespace stratalake::repo {

struct InitOptions {
  std::string project;  // default: the folder's name
  /// Which sample: "shop" (default; e-commerce orders, clicks, churn labels) or
  /// "markets" (BTCUSDT/ETHUSDT trades from a kafka source, SQL features and
  /// labels 10 s ahead). Anything else is an Invalid error naming the two.
  std::string template_name = "shop";
  /// The shop template's customer count.
  int64_t customers = 1000;
  uint64_t seed = 42;
  /// The sample data's anchor day (ms since the epoch, UTC; rounded down to
  /// midnight): the data covers the eight months before it and ends the day
  /// before, so that TTLs hold from then on. The same seed and anchor give
  /// byte-identical data. Default: today, by `clock`.
  std::optional<int64_t> as_of_ms;
  /// Where "today" comes from; null = Clock::System().
  std::shared_ptr<Clock> clock;
};

struct InitResult {
  std::string root;
  std::vector<std::string> files_written;  // relative to root
};

/// Creates a new repository in `dir` (created if missing; must not already
/// hold a stratalake.yaml): stratalake.yaml, definitions/*.yaml for the chosen
/// template, and generated sample data in data/ (see docs/sample-data.md).
arrow::Result<InitResult> InitRepository(const std::string& dir, const InitOptions& options);

/// The markets template's trades (docs/sample-data.md#trades).
struct SampleTradesOptions {
  uint64_t seed = 42;
  /// The anchor (s since the epoch, UTC; rounded down to midnight): the trades
  /// end just before it. The same seed and anchor give identical trades;
  /// another anchor moves every time by whole days.
  int64_t anchor_s = 0;
  /// How long before the anchor the trades start: 1 .. 10080 (a week).
  int64_t minutes = 120;
  /// End the trades just before anchor_s itself instead of its midnight: the
  /// same series, moved by (anchor_s - midnight) seconds (live-looking trades
  /// for window features read online "now").
  bool exact_anchor = false;
};

/// One trade as a Kafka message: key = its symbol, json = one JSON object
/// {"symbol","trade_id","ts" (ISO 8601, ms),"price","qty","side" ("buy"|"sell"),
///  "bid","ask"}, the fields the markets template's kafka source reads.
struct SampleTradeMessage {
  std::string key;
  std::string json;
};

/// BTCUSDT- and ETHUSDT-like trades: a random walk of the mid price with calm,
/// normal and volatile regimes (volatility, spread and trade rate move
/// together), buyer- or seller-initiated trades at the ask or the bid, skewed
/// sizes; per symbol, trade_id counts from 1 and times strictly increase. In
/// event-time order. Deterministic for a seed and anchor (integer arithmetic
/// only). Invalid error for `minutes` out of range.
arrow::Result<std::vector<SampleTradeMessage>> GenerateSampleTrades(
    const SampleTradesOptions& options);

}  // namespace stratalake::repo
