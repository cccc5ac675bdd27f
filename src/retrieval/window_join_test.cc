// The offline window join (window_join.cc): in memory, spilled under a tiny
// memory budget (with oversized partitions split), matched in slices and on
// several threads, every value equals, bit for bit, the shared evaluator run
// the online way (Bucket::Finish per key and bucket, then Evaluate).
#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <gtest/gtest.h>

#include "retrieval/window.h"

namespace stratalake::retrieval::window {
namespace {

using registry::AggregationFunction;

constexpr int64_t kBase = 1780272000000000;  // 2026-06-01, µs

registry::FeatureView View() {
  registry::FeatureView v;
  v.name = "w";
  auto add = [&](std::string name, AggregationFunction f, std::string col, int64_t w,
                 std::string filter = "", int k = 0, double pct = 0) {
    registry::Aggregation a;
    a.name = std::move(name);
    a.function = f;
    a.column = std::move(col);
    a.window_seconds = w;
    a.filter = std::move(filter);
    a.k = k;
    a.percentile = pct;
    v.aggregations.push_back(a);
  };
  add("n_5m", AggregationFunction::kCount, "price", 300);
  add("sum_5m", AggregationFunction::kSum, "size", 300);
  add("mean_1h", AggregationFunction::kMean, "price", 3600);
  add("std_1h", AggregationFunction::kStddev, "price", 3600);
  add("min_1h", AggregationFunction::kMin, "price", 3600);
  add("max_5m", AggregationFunction::kMax, "price", 300);
  add("last_1h", AggregationFunction::kLast, "price", 3600);
  add("buy_1h", AggregationFunction::kSum, "size", 3600, "side = 'buy'");
  add("last3_5m", AggregationFunction::kLastK, "price", 300, "", 3);
  add("distinct_1h", AggregationFunction::kCountDistinct, "size", 3600);
  add("p90_1h", AggregationFunction::kPercentile, "price", 3600, "", 0, 0.9);
  return v;
}

struct Data {
  std::shared_ptr<arrow::Schema> schema;
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  std::shared_ptr<arrow::Table> entities;
};

// Random trades (ties, whole seconds and bucket ends, null prices, sides and
// keys, kafka events read twice) and entity rows (at event times and event
// times + a window, keys without events, null keys and times).
Data MakeData(bool string_keys, int events, int keys, int hot_events, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t span = int64_t{3} * 3600 * 1000000;
  auto key_of = [&](int64_t k) { return "key-" + std::to_string(k * 7919 % 100003); };
  arrow::Int64Builder ki;
  arrow::StringBuilder ks, side;
  arrow::TimestampBuilder ts(arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"),
                             arrow::default_memory_pool());
  arrow::DoubleBuilder price;
  arrow::Int64Builder size, part, off;
  std::vector<std::pair<int64_t, int64_t>> seen;  // (key, time)
  const int total = events + hot_events;
  for (int i = 0; i < total; ++i) {
    bool replay = i > 0 && rng() % 50 == 0;  // the previous event again (same kafka id)
    int64_t k = i < events ? static_cast<int64_t>(rng() % keys) : keys;  // the hot key last
    int64_t t = static_cast<int64_t>(rng() % span);
    switch (rng() % 4) {
      case 0:
        t -= t % 1000000;  // whole seconds
        break;
      case 1:
        t -= t % 5000000;  // bucket ends
        break;
      default:
        break;
    }
    double p = std::round((100 + static_cast<double>(rng() % 100000) / 7.0) * 1e6) / 1e6;
    int64_t s = static_cast<int64_t>(rng() % 100);
    int64_t kp = static_cast<int64_t>(rng() % 3), ko = i;
    if (replay) {
      // Appended below from the previous row's values.
      k = seen.back().first;
      t = seen.back().second;
      kp = -1;
    }
    seen.push_back({k, t});
    if (string_keys) {
      EXPECT_TRUE((rng() % 200 == 0 ? ks.AppendNull() : ks.Append(key_of(k))).ok());
    } else {
      EXPECT_TRUE((rng() % 200 == 0 ? ki.AppendNull() : ki.Append(k)).ok());
    }
    EXPECT_TRUE(ts.Append(kBase + t).ok());
    EXPECT_TRUE((rng() % 20 == 0 ? price.AppendNull() : price.Append(p)).ok());
    EXPECT_TRUE(size.Append(s).ok());
    EXPECT_TRUE(
        (rng() % 10 == 0 ? side.AppendNull() : side.Append(rng() % 2 ? "buy" : "sell")).ok());
    if (kp < 0) {
      // A replayed kafka event: the same partition and offset as the row before.
      EXPECT_TRUE(part.Append(part.GetValue(part.length() - 1)).ok());
      EXPECT_TRUE(off.Append(off.GetValue(off.length() - 1)).ok());
    } else {
      EXPECT_TRUE(part.Append(kp).ok());
      EXPECT_TRUE(off.Append(ko).ok());
    }
  }
  std::shared_ptr<arrow::Array> key, tsa, pa, sa, sd, pt, of;
  EXPECT_TRUE((string_keys ? ks.Finish(&key) : ki.Finish(&key)).ok());
  EXPECT_TRUE(ts.Finish(&tsa).ok());
  EXPECT_TRUE(price.Finish(&pa).ok());
  EXPECT_TRUE(size.Finish(&sa).ok());
  EXPECT_TRUE(side.Finish(&sd).ok());
  EXPECT_TRUE(part.Finish(&pt).ok());
  EXPECT_TRUE(off.Finish(&of).ok());
  Data d;
  d.schema = arrow::schema(
      {arrow::field("k", key->type()), arrow::field("ts", tsa->type()),
       arrow::field("price", arrow::float64()), arrow::field("size", arrow::int64()),
       arrow::field("side", arrow::utf8()), arrow::field("_kafka_partition", arrow::int64()),
       arrow::field("_kafka_offset", arrow::int64())});
  auto all = arrow::RecordBatch::Make(d.schema, total, {key, tsa, pa, sa, sd, pt, of});
  for (int64_t at = 0; at < total; at += 997) d.batches.push_back(all->Slice(at, 997));

  // Entity rows.
  const int rows = std::max(2000, total / 4);
  arrow::Int64Builder eki;
  arrow::StringBuilder eks;
  arrow::TimestampBuilder ets(arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"),
                              arrow::default_memory_pool());
  const int64_t windows[] = {300000000, 3600000000};
  for (int r = 0; r < rows; ++r) {
    int64_t k, t;
    switch (rng() % 5) {
      case 0:  // at an event's time
        std::tie(k, t) = seen[rng() % seen.size()];
        break;
      case 1:  // an event exactly at t - window (outside the window)
        std::tie(k, t) = seen[rng() % seen.size()];
        t += windows[rng() % 2];
        break;
      case 2:  // a key without events
        k = keys + 1 + static_cast<int64_t>(rng() % 5);
        t = static_cast<int64_t>(rng() % span);
        break;
      default:
        k = static_cast<int64_t>(rng() % (keys + 1));
        t = static_cast<int64_t>(rng() % (span + 3600000000));
    }
    bool null_key = rng() % 100 == 0;
    if (string_keys) {
      EXPECT_TRUE((null_key ? eks.AppendNull() : eks.Append(key_of(k))).ok());
    } else {
      EXPECT_TRUE((null_key ? eki.AppendNull() : eki.Append(k)).ok());
    }
    EXPECT_TRUE((rng() % 100 == 0 ? ets.AppendNull() : ets.Append(kBase + t)).ok());
  }
  std::shared_ptr<arrow::Array> ek, et;
  EXPECT_TRUE((string_keys ? eks.Finish(&ek) : eki.Finish(&ek)).ok());
  EXPECT_TRUE(ets.Finish(&et).ok());
  d.entities = arrow::Table::Make(
      arrow::schema({arrow::field("k", ek->type()), arrow::field("t", et->type())}), {ek, et});
  return d;
}

AsOfSpec Spec(const WindowSpec& w) {
  AsOfSpec s;
  s.left_keys = {"k"};
  s.left_time = "t";
  s.right_keys = {"k"};
  s.right_time = "ts";
  for (const auto& a : w.aggs) s.features.push_back(a.name);
  return s;
}

// The online way: per key, one Bucket per bucket index (Bucket::Finish), then Evaluate.
std::shared_ptr<arrow::Table> Reference(const WindowSpec& w, const Data& d) {
  const size_t C = w.num_channels;
  std::map<std::string, std::map<int64_t, Bucket>> tiles;
  for (const auto& batch : d.batches) {
    auto table = *arrow::Table::FromRecordBatches({batch});
    auto ev = *ComputeEvents(w, *table, /*id_columns=*/true);
    auto key = batch->column(0);
    auto ts = std::static_pointer_cast<arrow::TimestampArray>(batch->column(1));
    for (int64_t i = 0; i < batch->num_rows(); ++i) {
      if (key->IsNull(i)) continue;
      std::string k = key->GetScalar(i).ValueOrDie()->ToString();
      int64_t t = ts->Value(i);
      Bucket& b = tiles[k][BucketOf(t, w.bucket_us)];
      b.index = BucketOf(t, w.bucket_us);
      b.time.push_back(t);
      b.id.push_back(ev.id[i]);
      for (size_t c = 0; c < C; ++c) {
        b.value.push_back(ev.value[i * C + c]);
        b.valid.push_back(ev.valid[i * C + c]);
      }
    }
  }
  std::map<std::string, std::vector<BucketRef>> refs;
  for (auto& [k, buckets] : tiles) {
    for (auto& [index, b] : buckets) {
      b.Finish(C);
      refs[k].push_back(b.Ref());
    }
  }
  auto builders = *MakeBuilders(w);
  auto key = d.entities->column(0)->chunk(0);
  auto ts = std::static_pointer_cast<arrow::TimestampArray>(d.entities->column(1)->chunk(0));
  for (int64_t r = 0; r < d.entities->num_rows(); ++r) {
    if (key->IsNull(r) || ts->IsNull(r)) {
      for (auto& b : builders) EXPECT_TRUE(b->AppendNull().ok());
      continue;
    }
    auto it = refs.find(key->GetScalar(r).ValueOrDie()->ToString());
    if (it == refs.end()) {
      EXPECT_TRUE(Evaluate(w, nullptr, 0, ts->Value(r), &builders).ok());
    } else {
      EXPECT_TRUE(Evaluate(w, it->second.data(), it->second.size(), ts->Value(r), &builders).ok());
    }
  }
  arrow::FieldVector fields;
  arrow::ArrayVector arrays;
  for (size_t a = 0; a < w.aggs.size(); ++a) {
    std::shared_ptr<arrow::Array> arr;
    EXPECT_TRUE(builders[a]->Finish(&arr).ok());
    fields.push_back(arrow::field(w.aggs[a].name, arr->type()));
    arrays.push_back(arr);
  }
  return arrow::Table::Make(arrow::schema(fields), arrays, d.entities->num_rows());
}

struct JoinRun {
  std::shared_ptr<arrow::Table> table;
  AsOfStats stats;
};

// The join with `options`, matching the entity rows in `slices` slices.
JoinRun Join(const WindowSpec& w, const Data& d, AsOfOptions options, int slices = 1) {
  auto join = MakeWindowJoin(Spec(w), w, d.schema, /*id_columns=*/true, options);
  EXPECT_TRUE(join.ok()) << join.status().ToString();
  for (const auto& b : d.batches) {
    auto st = (*join)->AddRight(b);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  JoinRun out;
  if (slices == 1) {
    auto t = (*join)->Finish(*d.entities);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    out.table = *t;
  } else {
    const int64_t rows = d.entities->num_rows();
    std::vector<std::shared_ptr<arrow::Table>> parts;
    for (int s = 0; s < slices; ++s) {
      int64_t a = rows * s / slices, b = rows * (s + 1) / slices;
      auto t = (*join)->Match(*d.entities->Slice(a, b - a));
      EXPECT_TRUE(t.ok()) << t.status().ToString();
      parts.push_back(*t);
    }
    out.table = *arrow::ConcatenateTables(parts);
  }
  out.stats = (*join)->stats();
  return out;
}

void ExpectSame(const arrow::Table& want, const arrow::Table& got, const std::string& what) {
  ASSERT_EQ(want.num_columns(), got.num_columns()) << what;
  ASSERT_EQ(want.num_rows(), got.num_rows()) << what;
  for (int c = 0; c < want.num_columns(); ++c) {
    // Equals compares float64 values exactly (bit for bit but for -0.0 == 0.0).
    EXPECT_TRUE(want.column(c)->Equals(*got.column(c)))
        << what << ": column " << want.schema()->field(c)->name() << "\nwant "
        << want.column(c)->ToString().substr(0, 600) << "\ngot "
        << got.column(c)->ToString().substr(0, 600);
  }
}

class WindowJoinTest : public ::testing::TestWithParam<bool> {};

TEST_P(WindowJoinTest, SpilledSlicedAndThreadedJoinsEqualTheOnlineEvaluatorBitForBit) {
  const bool string_keys = GetParam();
  auto w = CompileWindows(View());
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  Data d = MakeData(string_keys, 12000, 300, 0, string_keys ? 7 : 11);
  auto want = Reference(*w, d);

  AsOfOptions mem;
  mem.memory_budget_bytes = int64_t{1} << 30;
  mem.num_threads = 1;
  JoinRun in_memory = Join(*w, d, mem);
  EXPECT_EQ(in_memory.stats.spilled_partitions, 0);
  ExpectSame(*want, *in_memory.table, "in memory, 1 thread");

  AsOfOptions mem4 = mem;
  mem4.num_threads = 4;
  ExpectSame(*want, *Join(*w, d, mem4, 3).table, "in memory, 4 threads, 3 slices");

  AsOfOptions tiny;
  tiny.memory_budget_bytes = 64 << 10;  // spills every 32 KiB of events
  tiny.num_threads = 2;
  JoinRun spilled = Join(*w, d, tiny);
  EXPECT_GT(spilled.stats.spilled_partitions, 64);
  EXPECT_GT(spilled.stats.spilled_bytes, 0);
  // Half the budget, plus the batch that went over it.
  EXPECT_LE(spilled.stats.peak_buffered_bytes, 128 << 10);
  ExpectSame(*want, *spilled.table, "spilled");
  ExpectSame(*want, *Join(*w, d, tiny, 4).table, "spilled, 4 slices");
}

INSTANTIATE_TEST_SUITE_P(Keys, WindowJoinTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "StringKeys" : "IntKeys"; });

TEST(WindowJoinSpillTest, AHotKeyPartitionIsSplitAndStillExact) {
  // One key with 8000 events: its partition (over 256 KiB) is split on further
  // key bits until the bits run out; the other keys' partitions are not.
  auto w = CompileWindows(View());
  ASSERT_TRUE(w.ok());
  Data d = MakeData(false, 6000, 200, 8000, 3);
  auto want = Reference(*w, d);
  AsOfOptions tiny;
  tiny.memory_budget_bytes = 64 << 10;
  tiny.num_threads = 2;
  JoinRun spilled = Join(*w, d, tiny);
  // The hot key's events were written again at every split (14 of them).
  const int64_t once = int64_t{14000} * static_cast<int64_t>(24 + 9 * w->num_channels);
  EXPECT_GT(spilled.stats.spilled_bytes, 3 * once);
  ExpectSame(*want, *spilled.table, "hot key, spilled");
}

TEST(WindowJoinSpillTest, AnUnwritableSpillFolderIsAnError) {
  auto w = CompileWindows(View());
  ASSERT_TRUE(w.ok());
  Data d = MakeData(false, 3000, 50, 0, 5);
  AsOfOptions bad;
  bad.memory_budget_bytes = 16 << 10;
  bad.spill_dir = "/proc/no-such-folder/spill";
  auto join = MakeWindowJoin(Spec(*w), *w, d.schema, true, bad);
  ASSERT_TRUE(join.ok());
  arrow::Status st;
  for (const auto& b : d.batches) {
    st = (*join)->AddRight(b);
    if (!st.ok()) break;
  }
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("/proc/no-such-folder"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace stratalake::retrieval::window
