// Window aggregations: the promise of docs/windows.md, on random data. For every
// key and time t, the online value at t (OnlineService with the clock pinned at
// t, from tiles built by materialize, by the stream's hook with late,
// out-of-order and replayed events, and by both) equals the offline value for
// an entity row at t (GetHistoricalFeatures), exactly.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <arrow/api.h>
#include <gtest/gtest.h>

#include "../../bench/repo_fixtures.h"
#include "../../tests/test_util.h"
#include "online/codec.h"
#include "online/window_tiles.h"
#include "retrieval/window.h"
#include "stratalake/delta.h"
#include "stratalake/online.h"
#include "stratalake/repo.h"
#include "stratalake/retrieval.h"
#include "stratalake/status.h"

namespace stratalake::online {
namespace {

using stratalake::testing::TempDir;

constexpr int64_t kSec = 1000000;
constexpr int64_t kT0 = fixtures::kT0;  // 2026-01-01T00:00:00Z in µs
constexpr int kKeys = 12;
constexpr int64_t kSpan = 3 * 3600 * kSec;  // events within [kT0, kT0 + 3h]

using fixtures::WriteFile;

// Every function, windows of 90s, 5m and 1h (buckets of 5s), a filter.
const char* kAggregations = R"(    aggregations:
      - {name: n_5m, function: count, column: price, window: 5m}
      - {name: sum_1h, function: sum, column: price, window: 1h}
      - {name: mean_5m, function: mean, column: price, window: 5m}
      - {name: min_90s, function: min, column: price, window: 90s}
      - {name: max_1h, function: max, column: size, window: 1h}
      - {name: std_1h, function: stddev, column: price, window: 1h}
      - {name: last_5m, function: last, column: price, window: 5m}
      - {name: last3_5m, function: last_k, column: price, window: 5m, k: 3}
      - {name: distinct_1h, function: count_distinct, column: size, window: 1h}
      - {name: p90_5m, function: percentile, column: price, window: 5m, percentile: 0.9}
      - {name: buy_sum_5m, function: sum, column: size, window: 5m, filter: "side = 'buy'"}
      - {name: sides_90s, function: count, column: side, window: 90s}
)";

std::string Definitions() {
  return fixtures::AccountTradesDefinitions(R"(      - {name: size, type: int64}
      - {name: side, type: string}
  - name: ticks
    type: kafka
    path: bronze/ticks
    timestamp_field: ts
    kafka: {brokers: "localhost:9092", topic: ticks}
    schema:
      - {name: account_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: price, type: float64}
      - {name: size, type: int64}
      - {name: side, type: string}
feature_views:
  - name: trade_windows
    entities: [account]
    source: trades
)") + kAggregations +
         R"(  - name: tick_windows
    entities: [account]
    source: ticks
)" + kAggregations;
}

std::shared_ptr<arrow::Schema> TradeSchema(bool kafka) {
  arrow::FieldVector f = {arrow::field("account_id", arrow::int64()),
                          arrow::field("ts", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC")),
                          arrow::field("price", arrow::float64()),
                          arrow::field("size", arrow::int64()),
                          arrow::field("side", arrow::utf8())};
  if (kafka) {
    f.push_back(arrow::field("_kafka_partition", arrow::int32()));
    f.push_back(arrow::field("_kafka_offset", arrow::int64()));
  }
  return arrow::schema(f);
}

// Random trades: times at µs resolution, many on whole seconds and bucket ends
// (so windows start and end exactly on events), ties, null prices and sides,
// prices with many significant digits (float sums depend on their order).
std::shared_ptr<arrow::Table> RandomTrades(std::mt19937_64* rng, int rows, bool kafka) {
  arrow::Int64Builder id, size, offset;
  arrow::Int32Builder partition;
  arrow::TimestampBuilder ts(arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"),
                             arrow::default_memory_pool());
  arrow::DoubleBuilder price;
  arrow::StringBuilder side;
  std::uniform_int_distribution<int> key(0, kKeys - 1), coin(0, 9);
  std::uniform_int_distribution<int64_t> when(0, kSpan);
  std::vector<int64_t> next_offset(3, 0);
  for (int i = 0; i < rows; ++i) {
    (void)id.Append(key(*rng));
    int64_t t = when(*rng);
    int c = coin(*rng);
    if (c < 3) t -= t % kSec;         // whole seconds
    if (c == 3) t -= t % (5 * kSec);  // bucket ends
    (void)ts.Append(kT0 + t);
    if (coin(*rng) == 0) {
      (void)price.AppendNull();
    } else {
      (void)price.Append(static_cast<double>((*rng)() % 10000000) / 977.0 - 3000.0);
    }
    (void)size.Append(static_cast<int64_t>((*rng)() % 20));
    int s = coin(*rng);
    if (s == 0) {
      (void)side.AppendNull();
    } else {
      (void)side.Append(s < 5 ? "buy" : "sell");
    }
    if (kafka) {
      int p = static_cast<int>((*rng)() % 3);
      (void)partition.Append(p);
      (void)offset.Append(next_offset[p]++);
    }
  }
  arrow::ArrayVector cols(5);
  (void)id.Finish(&cols[0]);
  (void)ts.Finish(&cols[1]);
  (void)price.Finish(&cols[2]);
  (void)size.Finish(&cols[3]);
  (void)side.Finish(&cols[4]);
  if (kafka) {
    cols.resize(7);
    (void)partition.Finish(&cols[5]);
    (void)offset.Finish(&cols[6]);
  }
  return arrow::Table::Make(TradeSchema(kafka), cols, rows);
}

// Rows [from, to) of `t` in the order `order`.
std::shared_ptr<arrow::Table> Take(const std::shared_ptr<arrow::Table>& t,
                                   const std::vector<int64_t>& order, size_t from, size_t to) {
  arrow::Int64Builder b;
  for (size_t i = from; i < to; ++i) (void)b.Append(order[i]);
  std::shared_ptr<arrow::Array> idx;
  (void)b.Finish(&idx);
  auto r = arrow::compute::Take(t, idx);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r->table();
}

class WindowTest : public ::testing::Test {
 protected:
  void SetUp() override { fixtures::WriteRepository(dir_.path(), "t", Definitions()); }

  void Apply() {
    ASSERT_OK_AND_ASSIGN(repo_, fixtures::OpenAndApply(dir_.path(), "test"));
    ASSERT_OK_AND_ASSIGN(auto s, OpenRepositoryStore(*repo_));
    store_ = std::shared_ptr<OnlineStore>(std::move(s));
  }

  void Append(const std::string& path, const std::shared_ptr<arrow::Table>& t) {
    ASSERT_OK_AND_ASSIGN(auto table, delta::DeltaTable::ForPath(repo_->TableUri(path)));
    ASSERT_OK(table->Write(t, delta::WriteOptions{}).status());
  }

  // Times to check: random ms, whole seconds, bucket ends, and the times of
  // events (so an event sits exactly at t, or at t - window for the windows).
  std::vector<int64_t> CheckTimes(std::mt19937_64* rng, const arrow::Table& trades) {
    std::vector<int64_t> out = {kT0 - kSec, kT0, kT0 + kSpan + 2 * 3600 * kSec};
    std::uniform_int_distribution<int64_t> when(0, kSpan + 600 * kSec);
    for (int i = 0; i < 6; ++i) out.push_back(kT0 + when(*rng) / 1000 * 1000);
    for (int i = 0; i < 3; ++i) out.push_back(kT0 + when(*rng) / (5 * kSec) * (5 * kSec));
    auto ts = std::static_pointer_cast<arrow::TimestampArray>(trades.column(1)->chunk(0));
    for (int i = 0; i < 4; ++i) {
      int64_t t = ts->Value(static_cast<int64_t>((*rng)() % ts->length()));
      t -= t % 1000;  // the clock has ms resolution
      for (int64_t w : {int64_t{0}, 90 * kSec, 300 * kSec, 3600 * kSec}) out.push_back(t + w);
    }
    return out;
  }

  // Online at each t == offline for an entity row at t, for every key.
  void ExpectOnlineEqualsOffline(const std::string& view, const std::vector<int64_t>& times) {
    ASSERT_OK_AND_ASSIGN(auto reg, repo_->registry());
    auto clock = std::make_shared<FakeClock>(0);
    OnlineService service(reg, store_, clock);
    // Offline: one entity row per (key, t).
    arrow::Int64Builder ids;
    arrow::TimestampBuilder ts(arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"),
                               arrow::default_memory_pool());
    for (int64_t t : times) {
      for (int k = 0; k < kKeys + 1; ++k) {  // key kKeys has no events
        ASSERT_OK(ids.Append(k));
        ASSERT_OK(ts.Append(t));
      }
    }
    std::shared_ptr<arrow::Array> ida, tsa;
    ASSERT_OK(ids.Finish(&ida));
    ASSERT_OK(ts.Finish(&tsa));
    retrieval::HistoricalRequest hreq;
    hreq.entities =
        arrow::Table::Make(arrow::schema({arrow::field("account_id", arrow::int64()),
                                          arrow::field("event_timestamp", tsa->type())}),
                           {ida, tsa});
    hreq.features = {view};
    ASSERT_OK_AND_ASSIGN(auto offline, retrieval::GetHistoricalFeatures(*repo_, hreq));
    ASSERT_EQ(offline.table->num_rows(), static_cast<int64_t>(times.size()) * (kKeys + 1));
    int64_t nonzero_counts = 0;
    for (size_t i = 0; i < times.size(); ++i) {
      clock->Set(times[i] / 1000);
      OnlineRequest req;
      req.features = {view};
      std::vector<KeyScalar> keys;
      for (int k = 0; k < kKeys + 1; ++k) keys.emplace_back(int64_t{k});
      req.entities.emplace_back("account_id", keys);
      ASSERT_OK_AND_ASSIGN(auto resp, service.Get(req));
      ASSERT_OK_AND_ASSIGN(auto online, resp.ToTable());
      auto slice = offline.table->Slice(static_cast<int64_t>(i) * (kKeys + 1), kKeys + 1);
      for (int c = 1; c < online->num_columns(); ++c) {
        const std::string name = online->field(c)->name();
        auto on = online->column(c);
        auto off = slice->GetColumnByName(name);
        ASSERT_TRUE(off) << name;
        EXPECT_TRUE(on->Equals(*off))
            << view << ":" << name << " at t = " << FormatRfc3339Micros(times[i])
            << "\nonline:  " << on->ToString() << "\noffline: " << off->ToString();
        if (name == "n_5m") {
          for (const auto& chunk : on->chunks()) {
            auto a = std::static_pointer_cast<arrow::Int64Array>(chunk);
            for (int64_t r = 0; r < a->length(); ++r) nonzero_counts += a->Value(r) > 0;
          }
        }
      }
    }
    EXPECT_GT(nonzero_counts, 20);  // the data did fill windows
  }

  // Tile GC runs at `gc_now_` (the data's start by default: nothing expires).
  arrow::Status Materialize(std::optional<int64_t> start, int64_t end) {
    return MaterializeView(start, end, false).status();
  }
  arrow::Result<ViewMaterialization> MaterializeView(std::optional<int64_t> start, int64_t end,
                                                     bool incremental,
                                                     const std::string& view = "") {
    MaterializeOptions o;
    o.start_us = start;
    o.end_us = end;
    o.incremental = incremental;
    o.clock = std::make_shared<FakeClock>(gc_now_ / 1000);
    if (!view.empty()) o.views = {view};
    ARROW_ASSIGN_OR_RAISE(auto r, online::Materialize(*repo_, *store_, o));
    for (const auto& v : r.views) {
      if (v.view == (view.empty() ? "trade_windows" : view)) return v;
    }
    return arrow::Status::Invalid("no report for the view");
  }

  // Every stored tile of `view`: key -> its events as EncodeTile wrote them
  // (without the version prefix and the writers' header).
  std::map<std::string, std::string> TileEvents(const std::string& view) {
    std::map<std::string, std::string> out;
    auto all = store_->Scan(std::string(view) + std::string(1, '\0'));
    EXPECT_TRUE(all.ok()) << all.status().ToString();
    if (!all.ok()) return out;
    for (const auto& kv : *all) {
      std::string_view v(kv.value);
      v.remove_prefix(kVersionPrefixSize);
      if (!v.empty() && v[0] == 'H') {
        size_t n = static_cast<uint8_t>(v[25]);
        v.remove_prefix(26 + 8 * n);
      }
      out[kv.key] = std::string(v);
    }
    return out;
  }
  std::map<std::string, std::string> StoredValues(const std::string& view) {
    std::map<std::string, std::string> out;
    auto all = store_->Scan(std::string(view) + std::string(1, '\0'));
    EXPECT_TRUE(all.ok()) << all.status().ToString();
    if (all.ok()) {
      for (auto& kv : *all) out[kv.key] = std::move(kv.value);
    }
    return out;
  }

  void RaceStreamAndMaterialize(const char* redis_url = nullptr);

  // A stream racing the test: from row 1000 of `bronze` in `order`, 50 rows at a
  // time, to the online store first, then every other batch committed to
  // bronze/ticks at once and the others held, for the test to commit after
  // the race.
  struct RacingStream {
    std::atomic<bool> done{false};
    arrow::Status status;
    std::vector<std::shared_ptr<arrow::Table>> held;
    std::thread thread;
  };
  void StartRacingStream(RacingStream* s, const std::shared_ptr<arrow::Table>& bronze,
                         const std::vector<int64_t>& order, const registry::RegistryState& state) {
    s->thread = std::thread([this, s, bronze, &order, &state] {
      for (size_t from = 1000, n = 0; from < order.size() && s->status.ok(); from += 50, ++n) {
        auto batch = Take(bronze, order, from, std::min(order.size(), from + 50));
        s->status = WriteStreamedWindowRows(*repo_, state, store_.get(), "ticks", batch).status();
        if (!s->status.ok()) break;
        if (n % 2 == 1) {
          s->held.push_back(batch);
          continue;
        }
        auto table = delta::DeltaTable::ForPath(repo_->TableUri("bronze/ticks"));
        s->status =
            table.ok() ? (*table)->Write(batch, delta::WriteOptions{}).status() : table.status();
      }
      s->done = true;
    });
  }

  TempDir dir_;
  int64_t gc_now_ = kT0;
  std::shared_ptr<repo::FeatureRepository> repo_;
  std::shared_ptr<OnlineStore> store_;
};

TEST_F(WindowTest, MaterializedTilesEqualTheTrainingSetAtEveryTime) {
  std::mt19937_64 rng(7);
  Apply();
  auto trades = RandomTrades(&rng, 3000, false);
  Append("silver/trades", trades);
  ASSERT_OK(Materialize(std::nullopt, kT0 + kSpan));
  auto times = CheckTimes(&rng, *trades);
  ExpectOnlineEqualsOffline("trade_windows", times);
  // A backfill of a range that was already materialized, and a later batch.
  auto more = RandomTrades(&rng, 800, false);
  Append("silver/trades", more);
  ASSERT_OK(Materialize(kT0 + 3600 * kSec, kT0 + kSpan));
  ASSERT_OK(Materialize(std::nullopt, kT0 + 3600 * kSec - 1));
  ExpectOnlineEqualsOffline("trade_windows", times);
  // Materializing again changes nothing.
  ASSERT_OK(Materialize(std::nullopt, kT0 + kSpan));
  ExpectOnlineEqualsOffline("trade_windows", times);
}

TEST_F(WindowTest, StreamedTilesWithLateReplayedEventsAndBackfillsEqualTheTrainingSet) {
  std::mt19937_64 rng(11);
  Apply();
  auto bronze = RandomTrades(&rng, 3000, true);
  Append("bronze/ticks", bronze);
  ASSERT_OK_AND_ASSIGN(auto reg, repo_->registry());
  ASSERT_OK_AND_ASSIGN(auto state, reg->Load());
  // The stream's hook gets the events out of order (shuffled: late ones
  // included), in batches, and after a "restart" some batches a second time.
  std::vector<int64_t> order(static_cast<size_t>(bronze->num_rows()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::shuffle(order.begin(), order.end(), rng);
  const size_t half = order.size() / 2;
  for (size_t from = 0; from < half; from += 250) {
    auto batch = Take(bronze, order, from, std::min(half, from + 250));
    ASSERT_OK(WriteStreamedWindowRows(*repo_, *state, store_.get(), "ticks", batch).status());
  }
  // A batch replayed after a restart (it was pushed online, not yet committed).
  ASSERT_OK(WriteStreamedWindowRows(*repo_, *state, store_.get(), "ticks",
                                    Take(bronze, order, half - 400, half))
                .status());
  // A backfill by materialize meanwhile (the bronze table holds every event).
  ASSERT_OK(Materialize(std::nullopt, kT0 + 3600 * kSec));
  for (size_t from = half; from < order.size(); from += 300) {
    auto batch = Take(bronze, order, from, std::min(order.size(), from + 300));
    ASSERT_OK(WriteStreamedWindowRows(*repo_, *state, store_.get(), "ticks", batch).status());
  }
  ASSERT_OK(
      WriteStreamedWindowRows(*repo_, *state, store_.get(), "ticks", Take(bronze, order, 0, 500))
          .status());
  auto times = CheckTimes(&rng, *bronze);
  ExpectOnlineEqualsOffline("tick_windows", times);
  // A full materialize over the streamed tiles keeps them equal.
  ASSERT_OK(Materialize(std::nullopt, kT0 + kSpan));
  ExpectOnlineEqualsOffline("tick_windows", times);
}

// Only the source's appends since the last run are read and folded into their
// tiles: late and out-of-order events, events after the last run's end, and
// rows of older files after that end. The tiles equal a full rebuild's, event
// for event, and online == offline.
TEST_F(WindowTest, IncrementalMaterializeEqualsAFullRebuildAndTheTrainingSet) {
  std::mt19937_64 rng(23);
  Apply();
  auto trades = RandomTrades(&rng, 2000, false);
  Append("silver/trades", trades);
  const int64_t end1 = kT0 + 2 * 3600 * kSec;
  ASSERT_OK_AND_ASSIGN(auto first, MaterializeView(std::nullopt, end1, true));
  EXPECT_FALSE(first.incremental);  // no watermark yet: a full run
  // More events all over the span (late ones far behind the end, out of
  // order, some after the end), in two commits.
  auto more = RandomTrades(&rng, 600, false);
  Append("silver/trades", more);
  auto more2 = RandomTrades(&rng, 400, false);
  Append("silver/trades", more2);
  ASSERT_OK_AND_ASSIGN(auto second, MaterializeView(std::nullopt, kT0 + kSpan, true));
  EXPECT_TRUE(second.incremental);
  EXPECT_FALSE(second.rebuilt);
  EXPECT_EQ(second.from_version, first.to_version);
  EXPECT_EQ(second.to_version, first.to_version + 2);
  // The two new files, and the first file's rows after the first end.
  EXPECT_EQ(second.files_read, 3);
  auto incremental_tiles = TileEvents("trade_windows");
  EXPECT_GT(incremental_tiles.size(), 1000u);
  auto times = CheckTimes(&rng, *trades);
  ExpectOnlineEqualsOffline("trade_windows", times);
  // Nothing new: a no-op (no read, no write).
  auto before = StoredValues("trade_windows");
  ASSERT_OK_AND_ASSIGN(auto third, MaterializeView(std::nullopt, kT0 + kSpan, true));
  EXPECT_TRUE(third.incremental);
  EXPECT_EQ(third.rows_read, 0);
  EXPECT_EQ(third.tiles_written, 0);
  EXPECT_EQ(StoredValues("trade_windows"), before);
  // A full rebuild writes the same events into the same tiles.
  ASSERT_OK(Materialize(std::nullopt, kT0 + kSpan));
  EXPECT_EQ(TileEvents("trade_windows"), incremental_tiles);
  // A backfill of a middle range over new rows, more rows, an incremental
  // run: the backfilled rows are not added twice.
  Append("silver/trades", RandomTrades(&rng, 300, false));
  ASSERT_OK(Materialize(kT0 + 3600 * kSec, kT0 + 2 * 3600 * kSec));
  Append("silver/trades", RandomTrades(&rng, 300, false));
  ASSERT_OK_AND_ASSIGN(auto fourth, MaterializeView(std::nullopt, kT0 + kSpan, true));
  EXPECT_TRUE(fourth.incremental);
  auto after_backfill = TileEvents("trade_windows");
  ExpectOnlineEqualsOffline("trade_windows", times);
  ASSERT_OK(Materialize(std::nullopt, kT0 + kSpan));
  EXPECT_EQ(TileEvents("trade_windows"), after_backfill);
}

// An incremental run that stopped after writing tiles but before recording
// its watermark is run again: the tiles it wrote are not counted twice.
TEST_F(WindowTest, AnIncrementalRunRepeatedAfterACrashCountsEventsOnce) {
  std::mt19937_64 rng(29);
  Apply();
  auto trades = RandomTrades(&rng, 1500, false);
  Append("silver/trades", trades);
  ASSERT_OK_AND_ASSIGN(auto first, MaterializeView(std::nullopt, kT0 + kSpan / 2, true));
  Append("silver/trades", RandomTrades(&rng, 500, false));
  // The crashed run: tiles written, watermark not moved.
  ASSERT_OK_AND_ASSIGN(auto state, repo_->registry().ValueOrDie()->Load());
  const auto* view = state->defs.FindFeatureView("trade_windows");
  const auto* src = state->defs.FindSource("trades");
  ASSERT_OK_AND_ASSIGN(
      auto crashed,
      MaterializeWindowView(*repo_, *store_, state->defs, *view, *src, std::nullopt, kT0 + kSpan,
                            std::make_pair(first.to_version, kT0 + kSpan / 2), kT0));
  EXPECT_TRUE(crashed.incremental);
  EXPECT_GT(crashed.tiles_written, 0);
  // One more commit, then the run again from the old watermark.
  Append("silver/trades", RandomTrades(&rng, 300, false));
  ASSERT_OK_AND_ASSIGN(auto again, MaterializeView(std::nullopt, kT0 + kSpan, true));
  EXPECT_TRUE(again.incremental);
  EXPECT_EQ(again.from_version, first.to_version);
  auto tiles = TileEvents("trade_windows");
  ExpectOnlineEqualsOffline("trade_windows", CheckTimes(&rng, *trades));
  ASSERT_OK(Materialize(std::nullopt, kT0 + kSpan));
  EXPECT_EQ(TileEvents("trade_windows"), tiles);
}

// Rows deleted or updated in the source since the last run (files removed,
// rewritten without deletion vectors): only the tiles of the two keys are
// recomputed, the report says so, and tiles left without events are removed.
TEST_F(WindowTest, DeletesAndUpdatesInTheSourceRepairOnlyTheirKeys) {
  std::mt19937_64 rng(31);
  Apply();
  auto trades = RandomTrades(&rng, 2000, false);
  Append("silver/trades", trades);
  Append("silver/trades", RandomTrades(&rng, 500, false));
  ASSERT_OK(MaterializeView(std::nullopt, kT0 + kSpan, true).status());
  ASSERT_OK_AND_ASSIGN(auto table, delta::DeltaTable::ForPath(repo_->TableUri("silver/trades")));
  ASSERT_OK(table->Delete("account_id = 3").status());
  ASSERT_OK(table->Update("account_id = 5", "price = price * 2").status());
  Append("silver/trades", RandomTrades(&rng, 200, false));
  ASSERT_OK_AND_ASSIGN(auto r, MaterializeView(std::nullopt, kT0 + kSpan, true));
  EXPECT_TRUE(r.incremental);
  EXPECT_FALSE(r.rebuilt);
  EXPECT_TRUE(r.keyed_repair);
  EXPECT_EQ(r.keys_repaired, 2);  // accounts 3 and 5
  EXPECT_GT(r.tiles_repaired, 0);
  EXPECT_NE(r.note.find("removed since version"), std::string::npos) << r.note;
  // Account 3's tiles: only those of the new rows.
  int64_t three = 0;
  ASSERT_OK_AND_ASSIGN(auto last, table->Latest());
  {
    delta::ReadOptions ro;
    ro.filter = "account_id = 3";
    ASSERT_OK_AND_ASSIGN(auto rows, table->Read(*last, ro));
    std::set<int64_t> buckets;
    auto ts = rows->GetColumnByName("ts");
    for (const auto& c : ts->chunks()) {
      auto a = std::static_pointer_cast<arrow::TimestampArray>(c);
      for (int64_t i = 0; i < a->length(); ++i)
        buckets.insert(retrieval::window::BucketOf(a->Value(i), 5 * kSec));
    }
    std::string prefix = std::string("trade_windows") + std::string(1, '\0');
    for (const auto& [k, v] : TileEvents("trade_windows")) {
      std::string key3 = prefix;
      ASSERT_OK(AppendKey(*arrow::int64(), KeyScalar(int64_t{3}), &key3));
      three += k.compare(0, key3.size(), key3) == 0;
    }
    EXPECT_EQ(three, static_cast<int64_t>(buckets.size()));
  }
  auto tiles = TileEvents("trade_windows");
  ExpectOnlineEqualsOffline("trade_windows", CheckTimes(&rng, *trades));
  ASSERT_OK(Materialize(std::nullopt, kT0 + kSpan));
  EXPECT_EQ(TileEvents("trade_windows"), tiles);
}

// Tile GC removes tiles that end before now - longest window - lateness: the
// store shrinks and no read at now or later changes.
TEST_F(WindowTest, TileGcShrinksTheStoreAndNeverChangesAReadAtNow) {
  std::mt19937_64 rng(37);
  Apply();
  auto trades = RandomTrades(&rng, 3000, false);
  Append("silver/trades", trades);
  ASSERT_OK(Materialize(std::nullopt, kT0 + kSpan));
  const auto before = TileEvents("trade_windows");
  const size_t all = before.size();
  const int64_t now = kT0 + 2 * 3600 * kSec + 1234 * 1000;
  auto bucket_of_key = [](const std::string& k) {
    uint64_t b = 0;
    for (size_t i = k.size() - 8; i < k.size(); ++i) b = (b << 8) | static_cast<uint8_t>(k[i]);
    return static_cast<int64_t>(b ^ (uint64_t{1} << 63));
  };
  // The horizon: now - 1h (the longest window; a delta source has no lateness).
  size_t live = 0;
  for (const auto& [k, v] : before) live += (bucket_of_key(k) + 1) * 5 * kSec > now - 3600 * kSec;
  ASSERT_GT(live, 0u);
  ASSERT_LT(live, all);
  std::vector<int64_t> times = {now, now + 1000, now + 5 * kSec, now + 17 * kSec + 1000};
  for (int i = 1; i <= 12; ++i) times.push_back(now + i * 7 * 60 * kSec + i * 1000);
  ExpectOnlineEqualsOffline("trade_windows", times);
  // The stream's pass: bounded.
  ASSERT_OK_AND_ASSIGN(auto state, repo_->registry().ValueOrDie()->Load());
  ASSERT_OK_AND_ASSIGN(int64_t some,
                       CollectSourceWindowTiles(*state, store_.get(), "trades", now, 10));
  EXPECT_EQ(some, 10);
  EXPECT_EQ(TileEvents("trade_windows").size(), all - 10);
  ExpectOnlineEqualsOffline("trade_windows", times);
  // materialize's pass: every expired tile.
  gc_now_ = now;
  ASSERT_OK_AND_ASSIGN(auto r, MaterializeView(std::nullopt, kT0 + kSpan, true));
  EXPECT_EQ(r.tiles_collected, static_cast<int64_t>(all - 10 - live));
  auto left = TileEvents("trade_windows");
  EXPECT_EQ(left.size(), live);
  for (const auto& [k, v] : left) {
    EXPECT_GT((bucket_of_key(k) + 1) * 5 * kSec, now - 3600 * kSec);
    EXPECT_EQ(v, before.at(k));  // kept tiles are untouched
  }
  ExpectOnlineEqualsOffline("trade_windows", times);
  ASSERT_OK_AND_ASSIGN(int64_t none,
                       CollectSourceWindowTiles(*state, store_.get(), "trades", now, 10));
  EXPECT_EQ(none, 0);
}

// The stream writes a window view's tiles while materialize runs again and
// again on the same view (full and incremental runs): no event is lost or
// counted twice (tile updates are compare-and-set, kafka events deduplicated
// by id). Half of the streamed batches reach bronze only after the race, so
// an event a materialize run overwrote could not come back from the source:
// online == offline right after the race shows none was lost.
// Run on the embedded store (RocksDB) and on Redis (its Lua compare-and-set).
void WindowTest::RaceStreamAndMaterialize(const char* redis_url) {
  std::mt19937_64 rng(41);
  Apply();
  if (redis_url) {
    RedisOptions ro;
    ro.key_prefix = "window_test_" + std::to_string(::getpid()) + "_" +
                    std::to_string(std::random_device{}()) + ":";
    ASSERT_OK_AND_ASSIGN(auto redis, OpenRedisStore(redis_url, ro));
    store_ = std::shared_ptr<OnlineStore>(std::move(redis));
  }
  auto bronze = RandomTrades(&rng, 3000, true);
  std::vector<int64_t> order(static_cast<size_t>(bronze->num_rows()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::shuffle(order.begin(), order.end(), rng);
  Append("bronze/ticks", Take(bronze, order, 0, 1000));
  ASSERT_OK_AND_ASSIGN(auto reg, repo_->registry());
  ASSERT_OK_AND_ASSIGN(auto state, reg->Load());
  ASSERT_OK(MaterializeView(std::nullopt, kT0 + kSpan, true, "tick_windows").status());
  RacingStream stream;
  StartRacingStream(&stream, bronze, order, *state);
  int runs = 0, incremental = 0;
  while (!stream.done) {
    // Full runs (every tile of the range rewritten) and incremental ones.
    auto r = MaterializeView(std::nullopt, kT0 + kSpan, runs % 2 == 1, "tick_windows");
    if (!r.ok()) {
      ADD_FAILURE() << r.status().ToString();
      break;
    }
    ++runs;
    incremental += r->incremental;
  }
  stream.thread.join();
  ASSERT_OK(stream.status);
  EXPECT_GT(runs, 1);
  for (const auto& batch : stream.held) Append("bronze/ticks", batch);
  auto times = CheckTimes(&rng, *bronze);
  ExpectOnlineEqualsOffline("tick_windows", times);
  // Then materialize: the tiles equal a full rebuild's.
  ASSERT_OK(MaterializeView(std::nullopt, kT0 + kSpan, true, "tick_windows").status());
  ExpectOnlineEqualsOffline("tick_windows", times);
  auto tiles = TileEvents("tick_windows");
  EXPECT_GT(tiles.size(), 1000u);
  ASSERT_OK(MaterializeView(std::nullopt, kT0 + kSpan, false, "tick_windows").status());
  EXPECT_EQ(TileEvents("tick_windows"), tiles);
  if (redis_url)
    ASSERT_OK(store_->DeletePrefix(std::string("tick_windows") + std::string(1, '\0')));
}

TEST_F(WindowTest, StreamAndMaterializeWritingOneViewAtOnceLoseNothing) {
  RaceStreamAndMaterialize();
}

TEST_F(WindowTest, StreamAndMaterializeWritingOneViewAtOnceLoseNothingOnRedis) {
  const char* url = std::getenv("STRATALAKE_TEST_REDIS_URL");
  if (!url || !*url) {
    const char* require = std::getenv("STRATALAKE_REQUIRE_REDIS");
    if (require && std::string(require) == "1") {
      FAIL() << "STRATALAKE_REQUIRE_REDIS=1 but STRATALAKE_TEST_REDIS_URL is not set";
    }
    GTEST_SKIP() << "needs STRATALAKE_TEST_REDIS_URL (scripts/run_tests.sh starts a server)";
  }
  RaceStreamAndMaterialize(url);
}

// ---- Removes repaired tile by tile (docs/windows.md, "Removes") ----

// Every tile of `view` in `store`: key -> its events as EncodeTile wrote them
// (without the version prefix and the writers' header), as TileEvents.
std::map<std::string, std::string> EventsOf(OnlineStore& store, const std::string& view) {
  std::map<std::string, std::string> out;
  auto all = store.Scan(std::string(view) + std::string(1, '\0'));
  EXPECT_TRUE(all.ok()) << all.status().ToString();
  if (!all.ok()) return out;
  for (const auto& kv : *all) {
    std::string_view v(kv.value);
    v.remove_prefix(kVersionPrefixSize);
    if (!v.empty() && v[0] == 'H') {
      size_t n = static_cast<uint8_t>(v[25]);
      v.remove_prefix(26 + 8 * n);
    }
    out[kv.key] = std::string(v);
  }
  return out;
}

// A real store whose Repair calls fail after the first `ok_calls`: a run
// stopped midway through its tile writes (a crash).
class CrashingStore : public OnlineStore {
 public:
  CrashingStore(std::shared_ptr<OnlineStore> base, int ok_calls)
      : base_(std::move(base)), ok_calls_(ok_calls) {}
  arrow::Status Write(std::span<const KeyValue> w, const WriteOptions& o) override {
    return base_->Write(w, o);
  }
  arrow::Status MultiGet(std::span<const std::string_view> k,
                         std::vector<std::optional<std::string>>* v) override {
    return base_->MultiGet(k, v);
  }
  arrow::Status Repair(std::span<const KeyRepair> r) override {
    if (calls_++ >= ok_calls_) return arrow::Status::IOError("injected crash");
    return base_->Repair(r);
  }
  arrow::Status Sync() override { return base_->Sync(); }
  arrow::Status DeletePrefix(std::string_view p) override { return base_->DeletePrefix(p); }
  arrow::Result<std::vector<KeyValue>> Scan(std::string_view p) override { return base_->Scan(p); }
  arrow::Status ScanVersions(std::string_view p, const VersionCallback& fn) override {
    return base_->ScanVersions(p, fn);
  }
  std::string Describe() const override { return "crashing " + base_->Describe(); }

 private:
  std::shared_ptr<OnlineStore> base_;
  int ok_calls_;
  int calls_ = 0;
};

// A predicate on one account over 20 minutes from `t`.
std::string KeyAndTimes(int key, int64_t t) {
  return "account_id = " + std::to_string(key) + " AND ts >= TIMESTAMP '" + FormatRfc3339Micros(t) +
         "' AND ts <= TIMESTAMP '" + FormatRfc3339Micros(t + 1200 * kSec) + "'";
}

// A random history of appends, deletes, updates, merges, OPTIMIZEs and
// deletes by deletion vector on the source: after each step the incremental
// run repairs only the tiles of the one key it touched (an OPTIMIZE none),
// and the tiles equal, event for event, a full rebuild's in another store;
// online == offline.
TEST_F(WindowTest, RandomHistoriesOfRemovesRepairOnlyTheirTilesLikeAFullRebuild) {
  std::mt19937_64 rng(43);
  Apply();
  auto trades = RandomTrades(&rng, 1500, false);
  Append("silver/trades", trades);
  Append("silver/trades", RandomTrades(&rng, 500, false));
  ASSERT_OK(MaterializeView(std::nullopt, kT0 + kSpan, true).status());
  ASSERT_OK_AND_ASSIGN(auto table, delta::DeltaTable::ForPath(repo_->TableUri("silver/trades")));
  ASSERT_OK_AND_ASSIGN(auto full, OpenRocksDbStore(dir_.Join("full_rebuild")));
  ASSERT_OK_AND_ASSIGN(auto state, repo_->registry().ValueOrDie()->Load());
  const auto* view = state->defs.FindFeatureView("trade_windows");
  const auto* src = state->defs.FindSource("trades");
  const auto times = CheckTimes(&rng, *trades);
  enum Op { kAppend, kDelete, kUpdate, kMerge, kOptimize, kDvDelete };
  const char* names[] = {"append", "delete", "update", "merge", "optimize", "dv delete"};
  std::vector<Op> ops = {kAppend, kDelete,   kUpdate, kMerge,  kOptimize, kDvDelete, kDelete,
                         kUpdate, kDvDelete, kMerge,  kAppend, kOptimize, kDvDelete, kUpdate};
  std::shuffle(ops.begin(), ops.end(), rng);
  bool dvs = false;
  int64_t repairs = 0;
  for (size_t step = 0; step < ops.size(); ++step) {
    const Op op = ops[step];
    const int key = static_cast<int>(rng() % kKeys);
    const int64_t t = kT0 + static_cast<int64_t>(rng() % static_cast<uint64_t>(kSpan));
    const std::string where = KeyAndTimes(key, t);
    SCOPED_TRACE("step " + std::to_string(step) + ": " + names[op] + " " + where);
    bool changed = true;
    if (op == kDvDelete && !dvs) {
      ASSERT_OK(table->SetProperties({{"delta.enableDeletionVectors", "true"}}).status());
      dvs = true;
    }
    if (op == kAppend) {
      Append("silver/trades", RandomTrades(&rng, 200, false));
    } else if (op == kDelete || op == kDvDelete) {
      ASSERT_OK_AND_ASSIGN(auto c, table->Delete(where));
      changed = !c.noop;
    } else if (op == kUpdate) {
      ASSERT_OK_AND_ASSIGN(auto c, table->Update(where, "price = price + 1.5, size = size + 1"));
      changed = !c.noop;
    } else if (op == kMerge) {
      // The key's rows of the range (one per time) with new prices, and new
      // rows of the key: updated where matched, inserted otherwise.
      ASSERT_OK_AND_ASSIGN(auto snap, table->Latest());
      delta::ReadOptions ro;
      ro.filter = where;
      ASSERT_OK_AND_ASSIGN(auto rows, table->Read(*snap, ro));
      ASSERT_OK_AND_ASSIGN(rows, rows->CombineChunks());
      auto ts = std::static_pointer_cast<arrow::TimestampArray>(rows->column(1)->chunk(0));
      std::set<int64_t> seen;
      std::vector<int64_t> order;
      for (int64_t i = 0; i < rows->num_rows(); ++i) {
        if (seen.insert(ts->Value(i)).second) order.push_back(i);
      }
      auto fresh = RandomTrades(&rng, 20, false);
      ASSERT_OK_AND_ASSIGN(auto fresh_key, arrow::MakeArrayFromScalar(arrow::Int64Scalar(key), 20));
      ASSERT_OK_AND_ASSIGN(
          fresh,
          fresh->SetColumn(0, fresh->field(0), std::make_shared<arrow::ChunkedArray>(fresh_key)));
      arrow::ConcatenateTablesOptions unify;
      unify.unify_schemas = true;
      ASSERT_OK_AND_ASSIGN(auto source, arrow::ConcatenateTables(
                                            {Take(rows, order, 0, order.size()), fresh}, unify));
      delta::MergeOptions mo;
      mo.on = {"account_id", "ts"};
      mo.when_matched.push_back({delta::MatchedClause::Action::kUpdate, "",
                                 "price = source.price * 3 + 1, size = source.size + 2"});
      mo.when_not_matched.push_back({""});
      ASSERT_OK(table->Merge(source, mo).status());
      changed = !order.empty();  // rows updated (else only inserts)
    } else {
      delta::OptimizeOptions oo;
      ASSERT_OK_AND_ASSIGN(auto c, table->Optimize(oo));
      changed = !c.noop;
    }
    ASSERT_OK_AND_ASSIGN(auto r, MaterializeView(std::nullopt, kT0 + kSpan, true));
    SCOPED_TRACE(r.note);
    EXPECT_TRUE(r.incremental);
    EXPECT_FALSE(r.rebuilt);
    if (op == kOptimize) {
      EXPECT_EQ(r.files_rewritten > 0, changed);
      EXPECT_FALSE(r.keyed_repair);
      EXPECT_EQ(r.tiles_written, 0);  // the same rows in other files: no tile changed
      EXPECT_EQ(r.files_read, 0);
    } else if (op != kAppend && changed) {
      EXPECT_TRUE(r.keyed_repair);
      EXPECT_EQ(r.keys_repaired, 1);  // only the key of the predicate
      EXPECT_GT(r.tiles_repaired, 0);
      EXPECT_LE(r.tiles_repaired, 1200 / 5 + 2);  // only the buckets of its 20 minutes
      repairs += r.keyed_repair;
    } else {
      EXPECT_EQ(r.keys_repaired, 0);
    }
    ASSERT_OK(full->DeletePrefix(std::string("trade_windows") + std::string(1, '\0')));
    ASSERT_OK(MaterializeWindowView(*repo_, *full, state->defs, *view, *src, std::nullopt,
                                    kT0 + kSpan, std::nullopt, kT0)
                  .status());
    EXPECT_EQ(TileEvents("trade_windows"), EventsOf(*full, "trade_windows"));
    if (step % 4 == 3) ExpectOnlineEqualsOffline("trade_windows", times);
  }
  EXPECT_GE(repairs, 6);
  ExpectOnlineEqualsOffline("trade_windows", times);
}

// Beyond the limits (more keys than max_window_repair_keys, or most of the
// table's rows removed) the view is rebuilt, and the report says why.
TEST_F(WindowTest, RemovesBeyondTheLimitsRebuildTheViewAndSaySo) {
  std::mt19937_64 rng(47);
  Apply();
  auto trades = RandomTrades(&rng, 2000, false);
  Append("silver/trades", trades);
  ASSERT_OK(MaterializeView(std::nullopt, kT0 + kSpan, true).status());
  ASSERT_OK_AND_ASSIGN(auto table, delta::DeltaTable::ForPath(repo_->TableUri("silver/trades")));
  ASSERT_OK(table->Delete("account_id < 6 AND size = 3").status());
  MaterializeOptions o;
  o.end_us = kT0 + kSpan;
  o.incremental = true;
  o.clock = std::make_shared<FakeClock>(kT0 / 1000);
  o.max_window_repair_keys = 5;
  o.views = {"trade_windows"};
  ASSERT_OK_AND_ASSIGN(auto report, online::Materialize(*repo_, *store_, o));
  ASSERT_EQ(report.views.size(), 1u);
  const auto& r = report.views[0];
  EXPECT_TRUE(r.rebuilt);
  EXPECT_FALSE(r.keyed_repair);
  EXPECT_FALSE(r.incremental);
  EXPECT_NE(r.note.find("with rows of 6 keys (more than 5 to repair one by one): the view was "
                        "rebuilt"),
            std::string::npos)
      << r.note;
  auto tiles = TileEvents("trade_windows");
  ExpectOnlineEqualsOffline("trade_windows", CheckTimes(&rng, *trades));
  ASSERT_OK(Materialize(std::nullopt, kT0 + kSpan));
  EXPECT_EQ(TileEvents("trade_windows"), tiles);
  // Most of the table deleted: rebuilt.
  ASSERT_OK(table->Delete("size > 4").status());
  ASSERT_OK_AND_ASSIGN(auto r2, MaterializeView(std::nullopt, kT0 + kSpan, true));
  EXPECT_TRUE(r2.rebuilt);
  EXPECT_NE(r2.note.find("(most of the table rewritten): the view was rebuilt"), std::string::npos)
      << r2.note;
  tiles = TileEvents("trade_windows");
  ASSERT_OK(Materialize(std::nullopt, kT0 + kSpan));
  EXPECT_EQ(TileEvents("trade_windows"), tiles);
}

// A keyed repair stopped midway (its first batch of tile writes landed, the
// next failed): the next run at the same source version finishes it; one
// stopped midway after which the source moved on is followed by a rebuild.
// Either way the tiles equal a full rebuild's and online == offline.
TEST_F(WindowTest, AKeyedRepairStoppedMidwayIsFinishedByTheNextRun) {
  std::mt19937_64 rng(53);
  Apply();
  auto trades = RandomTrades(&rng, 2000, false);
  Append("silver/trades", trades);
  ASSERT_OK(MaterializeView(std::nullopt, kT0 + kSpan, true).status());
  ASSERT_OK_AND_ASSIGN(auto table, delta::DeltaTable::ForPath(repo_->TableUri("silver/trades")));
  const auto times = CheckTimes(&rng, *trades);
  auto crash = [&](int ok_calls) {
    auto crashing = std::make_shared<CrashingStore>(store_, ok_calls);
    MaterializeOptions o;
    o.end_us = kT0 + kSpan;
    o.incremental = true;
    o.clock = std::make_shared<FakeClock>(kT0 / 1000);
    auto r = online::Materialize(*repo_, *crashing, o);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("injected crash"), std::string::npos)
        << r.status().ToString();
  };
  // A delete, an update and new rows: the repaired tiles land, the folded
  // ones do not.
  ASSERT_OK(table->Delete(KeyAndTimes(2, kT0 + 600 * kSec)).status());
  ASSERT_OK(table->Update(KeyAndTimes(7, kT0 + 4000 * kSec), "price = price - 2").status());
  Append("silver/trades", RandomTrades(&rng, 300, false));
  crash(1);
  ASSERT_OK_AND_ASSIGN(auto again, MaterializeView(std::nullopt, kT0 + kSpan, true));
  EXPECT_TRUE(again.keyed_repair) << again.note;
  EXPECT_EQ(again.keys_repaired, 2);
  auto tiles = TileEvents("trade_windows");
  ExpectOnlineEqualsOffline("trade_windows", times);
  ASSERT_OK(Materialize(std::nullopt, kT0 + kSpan));
  EXPECT_EQ(TileEvents("trade_windows"), tiles);
  // Stopped midway, then another delete and more rows before the next run:
  // the tiles may hold rows of a version the next run does not read, so it
  // rebuilds and says why.
  ASSERT_OK(table->Delete(KeyAndTimes(4, kT0 + 7000 * kSec)).status());
  Append("silver/trades", RandomTrades(&rng, 300, false));
  crash(1);
  ASSERT_OK(table->Delete(KeyAndTimes(9, kT0 + 2000 * kSec)).status());
  Append("silver/trades", RandomTrades(&rng, 100, false));
  ASSERT_OK_AND_ASSIGN(auto after, MaterializeView(std::nullopt, kT0 + kSpan, true));
  EXPECT_TRUE(after.rebuilt);
  EXPECT_NE(after.note.find("did not finish"), std::string::npos) << after.note;
  tiles = TileEvents("trade_windows");
  ExpectOnlineEqualsOffline("trade_windows", times);
  ASSERT_OK(Materialize(std::nullopt, kT0 + kSpan));
  EXPECT_EQ(TileEvents("trade_windows"), tiles);
}

// The stream writes a kafka view's tiles while deletes on its bronze table
// (of rows loaded without kafka offsets) are repaired key by key, again and
// again: tile writes are compare-and-set, so no streamed event is lost;
// afterwards online == offline and the tiles equal a full rebuild's.
TEST_F(WindowTest, TheStreamRacingKeyedRepairsLosesNothing) {
  std::mt19937_64 rng(59);
  Apply();
  auto bronze = RandomTrades(&rng, 3000, true);
  std::vector<int64_t> order(static_cast<size_t>(bronze->num_rows()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::shuffle(order.begin(), order.end(), rng);
  // 1000 rows loaded in bulk (no kafka partition and offset: plain rows).
  auto loaded = Take(bronze, order, 0, 1000);
  ASSERT_OK_AND_ASSIGN(auto no_partition,
                       arrow::MakeArrayOfNull(arrow::int32(), loaded->num_rows()));
  ASSERT_OK_AND_ASSIGN(auto no_offset, arrow::MakeArrayOfNull(arrow::int64(), loaded->num_rows()));
  ASSERT_OK_AND_ASSIGN(
      loaded,
      loaded->SetColumn(5, loaded->field(5), std::make_shared<arrow::ChunkedArray>(no_partition)));
  ASSERT_OK_AND_ASSIGN(loaded, loaded->SetColumn(6, loaded->field(6),
                                                 std::make_shared<arrow::ChunkedArray>(no_offset)));
  Append("bronze/ticks", loaded);
  ASSERT_OK_AND_ASSIGN(auto reg, repo_->registry());
  ASSERT_OK_AND_ASSIGN(auto state, reg->Load());
  ASSERT_OK(MaterializeView(std::nullopt, kT0 + kSpan, true, "tick_windows").status());
  RacingStream stream;
  StartRacingStream(&stream, bronze, order, *state);
  ASSERT_OK_AND_ASSIGN(auto table, delta::DeltaTable::ForPath(repo_->TableUri("bronze/ticks")));
  int repairs = 0;
  for (int i = 0; !stream.done || repairs < 3; ++i) {
    const int key = static_cast<int>(rng() % kKeys);
    const int64_t t = kT0 + static_cast<int64_t>(rng() % static_cast<uint64_t>(kSpan));
    auto c = table->Delete(KeyAndTimes(key, t) + " AND _kafka_offset IS NULL");
    if (!c.ok()) continue;  // a conflict with the stream's commit: again
    auto r = MaterializeView(std::nullopt, kT0 + kSpan, true, "tick_windows");
    if (!r.ok()) {
      ADD_FAILURE() << r.status().ToString();
      break;
    }
    EXPECT_FALSE(r->rebuilt) << r->note;
    repairs += r->keyed_repair;
    if (i > 200) break;
  }
  stream.thread.join();
  ASSERT_OK(stream.status);
  EXPECT_GE(repairs, 3);
  for (const auto& batch : stream.held) Append("bronze/ticks", batch);
  auto times = CheckTimes(&rng, *bronze);
  ASSERT_OK(MaterializeView(std::nullopt, kT0 + kSpan, true, "tick_windows").status());
  ExpectOnlineEqualsOffline("tick_windows", times);
  auto tiles = TileEvents("tick_windows");
  ASSERT_OK(MaterializeView(std::nullopt, kT0 + kSpan, false, "tick_windows").status());
  EXPECT_EQ(TileEvents("tick_windows"), tiles);
}

TEST_F(WindowTest, TheBucketDividesEveryWindow) {
  using retrieval::window::ChooseBucketSeconds;
  EXPECT_EQ(ChooseBucketSeconds({90, 300, 3600}), 5);
  EXPECT_EQ(ChooseBucketSeconds({300}), 30);
  EXPECT_EQ(ChooseBucketSeconds({3600, 86400}), 300);
  EXPECT_EQ(ChooseBucketSeconds({7 * 86400}), 3600 * 12);
  EXPECT_EQ(ChooseBucketSeconds({7}), 1);
}

// Definitions of view `w` on `trades` (account_id, ts, price, side), up to its
// aggregations.
const std::string kBadHead =
    fixtures::AccountTradesDefinitions(R"(      - {name: side, type: string}
feature_views:
  - name: w
    entities: [account]
    source: trades
    aggregations:
)");

TEST_F(WindowTest, BadAggregationsAreReportedWithTheirPlace) {
  WriteFile(dir_.Join("definitions/defs.yaml"),
            kBadHead + R"(      - {name: a, function: median, column: price, window: 5m}
      - {name: d, function: last_k, column: price, window: 5m}
      - {name: e, function: sum, column: price, window: 0}
)");
  ASSERT_OK_AND_ASSIGN(repo_, repo::FeatureRepository::Open(dir_.path()));
  auto defs = repo_->LoadValidatedDefinitions();
  ASSERT_FALSE(defs.ok());
  const std::string msg = defs.status().message();
  EXPECT_NE(msg.find("definitions/defs.yaml:19:29: feature view 'w' aggregation 'a': unknown "
                     "aggregation function 'median'"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("definitions/defs.yaml:21:57: feature view 'w' aggregation 'e': the window "
                     "must be longer than 0"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("definitions/defs.yaml:20:9: feature view 'w' aggregation 'd': last_k needs "
                     "'k'"),
            std::string::npos)
      << msg;
  // Problems found against the source's columns.
  std::string defs_text = kBadHead + R"(      - {name: b, function: sum, column: side, window: 5m}
      - {name: c, function: sum, column: nope, window: 5m}
      - {name: f, function: sum, column: price, window: 5m, filter: "side >> 1"}
)";
  WriteFile(dir_.Join("definitions/defs.yaml"), defs_text);
  auto defs2 = repo_->LoadValidatedDefinitions();
  ASSERT_FALSE(defs2.ok());
  const std::string msg2 = defs2.status().message();
  for (const char* want :
       {"definitions/defs.yaml:19:9: feature view 'w' aggregation 'b': sum needs a numeric "
        "column, but 'side' is string",
        "definitions/defs.yaml:20:9: feature view 'w' aggregation 'c': no column 'nope' in "
        "source 'trades'",
        "definitions/defs.yaml:21:9: feature view 'w' aggregation 'f': filter `side >> 1` is "
        "not valid"}) {
    EXPECT_NE(msg2.find(want), std::string::npos) << want << "\n" << msg2;
  }
}

}  // namespace
}  // namespace stratalake::online
