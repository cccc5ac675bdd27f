// The markets template's trades: BTCUSDT- and ETHUSDT-like trades from a
// random walk with volatility regimes (include/stratalake/init.h,
// GenerateSampleTrades; docs/sample-data.md describes the model).
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <arrow/api.h>

#include "sample/rng.h"
#include "stratalake/init.h"

namespace stratalake::repo {
namespace {

constexpr int64_t kSecondsPerDay = 86400;
constexpr int64_t kMaxMinutes = 7 * 24 * 60;

// Per symbol: where the walk starts and how big its trades are. Prices are in
// ticks of 0.01 USDT, quantities in lots of 0.00001 of the base asset.
struct Symbol {
  const char* name;
  int64_t start_ticks;
  int64_t qty_base_lots;  // the median quantity is a few times this
  int64_t mean_gap_ms;    // between trades in the normal regime
};
constexpr Symbol kSymbols[] = {{"BTCUSDT", 6500000, 120, 400}, {"ETHUSDT", 340000, 2500, 600}};

// The regimes: calm, normal, volatile. Per trade, the mid price moves by about
// vol_ppm millionths of itself (standard deviation); the spread is drawn in
// hundredths of a basis point; trades come faster when it is volatile.
struct Regime {
  int64_t vol_ppm;
  int64_t spread_lo, spread_hi;  // (ask - bid) / mid in 0.01 bp
  int64_t gap_permille;          // the mean gap, relative to the symbol's
};
constexpr Regime kRegimes[] = {{12, 20, 60, 1600}, {30, 60, 200, 1000}, {90, 200, 600, 400}};

struct Trade {
  int symbol;
  int64_t trade_id;
  int64_t ts_ms;
  int64_t price, bid, ask;  // ticks
  int64_t qty;              // lots
  bool buy;
};

void AppendFixed(int64_t v, int64_t scale, int digits, std::string* out) {
  char buf[48];
  int n = std::snprintf(buf, sizeof buf, "%lld.%0*lld", static_cast<long long>(v / scale), digits,
                        static_cast<long long>(v % scale));
  out->append(buf, static_cast<size_t>(n));
}

// "2026-09-01T13:05:09.123Z".
void AppendMillis(int64_t ms, std::string* out) {
  int64_t days = ms / (kSecondsPerDay * 1000);
  int64_t rem = ms % (kSecondsPerDay * 1000);
  if (rem < 0) {
    rem += kSecondsPerDay * 1000;
    --days;
  }
  const int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  const int64_t secs = rem / 1000;
  char buf[40];
  int n =
      std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03lldZ",
                    static_cast<long long>(y), static_cast<long long>(m), static_cast<long long>(d),
                    static_cast<long long>(secs / 3600), static_cast<long long>(secs / 60 % 60),
                    static_cast<long long>(secs % 60), static_cast<long long>(rem % 1000));
  out->append(buf, static_cast<size_t>(n));
}

// One symbol's trades in [start_ms, end_ms), strictly increasing in time.
void Walk(int index, uint64_t seed, int64_t start_ms, int64_t end_ms, std::vector<Trade>* out) {
  const Symbol& sym = kSymbols[index];
  Rng rng(seed, 10 + static_cast<uint64_t>(index));
  int regime = 1;
  int64_t mid = sym.start_ticks;
  int64_t t = start_ms;
  int64_t id = 0;
  for (;;) {
    const Regime& r = kRegimes[regime];
    // Gaps: mostly uniform around the regime's mean, sometimes a burst of
    // trades a few milliseconds apart (an order sweeping the book).
    const int64_t mean = sym.mean_gap_ms * r.gap_permille / 1000;
    t += rng.Chance(150000) ? rng.Uniform(1, 20) : rng.Uniform(1, 2 * mean);
    if (t >= end_ms) break;
    // The mid moves by an Irwin-Hall draw (sum of 4 uniforms, sd ~1155) scaled
    // to vol_ppm millionths of the price.
    int64_t z = 0;
    for (int i = 0; i < 4; ++i) z += rng.Uniform(-1000, 1000);
    const int64_t delta = mid * z / 1155 * r.vol_ppm / 1000000;
    mid = std::max<int64_t>(mid + delta, 100);
    const int64_t spread =
        std::max<int64_t>(1, mid * rng.Uniform(r.spread_lo, r.spread_hi) / 1000000);
    Trade tr;
    tr.symbol = index;
    tr.trade_id = ++id;
    tr.ts_ms = t;
    tr.bid = mid - spread / 2;
    tr.ask = tr.bid + spread;
    // Aggressive buyers lift the ask and push the price up, sellers hit the bid.
    tr.buy = delta > 0 ? rng.Chance(700000) : delta < 0 ? rng.Chance(300000) : rng.Chance(500000);
    tr.price = tr.buy ? tr.ask : tr.bid;
    tr.qty = rng.Skewed(sym.qty_base_lots, 1, sym.qty_base_lots * 400);
    out->push_back(tr);
    // Regimes persist for minutes: a switch to a neighbouring regime with
    // probability 1/1600 per trade.
    if (rng.Chance(625)) regime = regime == 1 ? (rng.Chance(500000) ? 0 : 2) : 1;
  }
}

}  // namespace

arrow::Result<std::vector<SampleTradeMessage>> GenerateSampleTrades(
    const SampleTradesOptions& options) {
  if (options.minutes < 1 || options.minutes > kMaxMinutes) {
    return arrow::Status::Invalid("sample trades cover 1 to ", kMaxMinutes, " minutes, got ",
                                  options.minutes, "; choose a duration in that range");
  }
  const int64_t anchor =
      options.exact_anchor
          ? options.anchor_s
          : options.anchor_s -
                ((options.anchor_s % kSecondsPerDay) + kSecondsPerDay) % kSecondsPerDay;
  const int64_t end_ms = anchor * 1000;
  const int64_t start_ms = end_ms - options.minutes * 60 * 1000;
  std::vector<Trade> trades;
  for (int i = 0; i < static_cast<int>(std::size(kSymbols)); ++i) {
    Walk(i, options.seed, start_ms, end_ms, &trades);
  }
  std::stable_sort(trades.begin(), trades.end(),
                   [](const Trade& a, const Trade& b) { return a.ts_ms < b.ts_ms; });
  std::vector<SampleTradeMessage> out;
  out.reserve(trades.size());
  for (const Trade& t : trades) {
    SampleTradeMessage m;
    m.key = kSymbols[t.symbol].name;
    std::string& j = m.json;
    j.reserve(160);
    j += "{\"symbol\":\"";
    j += m.key;
    j += "\",\"trade_id\":";
    j += std::to_string(t.trade_id);
    j += ",\"ts\":\"";
    AppendMillis(t.ts_ms, &j);
    j += "\",\"price\":";
    AppendFixed(t.price, 100, 2, &j);
    j += ",\"qty\":";
    AppendFixed(t.qty, 100000, 5, &j);
    j += ",\"side\":\"";
    j += t.buy ? "buy" : "sell";
    j += "\",\"bid\":";
    AppendFixed(t.bid, 100, 2, &j);
    j += ",\"ask\":";
    AppendFixed(t.ask, 100, 2, &j);
    j += "}";
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace stratalake::repo
