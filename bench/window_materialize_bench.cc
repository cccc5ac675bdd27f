// Window view materialization: a full rebuild against an incremental run
// (docs/windows.md, "Incremental materialize").
//
//   build/bin/window_materialize_bench [EVENTS] [APPEND] [KEYS]
//
// Writes EVENTS (default 1,000,000) random trades over one day for KEYS (100)
// keys into a Delta source, materializes the window view (count, sum, mean,
// stddev, max over 5m and 1h: 30 s buckets), appends APPEND (10,000) more
// events (90% in the last hour, out of order; 10% late, anywhere in the day),
// then times `materialize-incremental` and, on the same data, a full
// `materialize`. Prints CPU seconds (user + system of this process) and wall
// seconds for each, their ratio, the load average, and checks that both leave
// the same tiles. Tile GC is kept out of the measurement (its clock is the
// data's start).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>

#include <arrow/api.h>

#include "bench_util.h"
#include "repo_fixtures.h"
#include "stratalake/clock.h"
#include "stratalake/delta.h"
#include "stratalake/online.h"
#include "stratalake/registry.h"
#include "stratalake/repo.h"

namespace sl = stratalake;
using sl::bench::Check;
using sl::bench::CpuSeconds;
using sl::bench::LoadAverage;
using sl::bench::WindowTiles;

namespace {

constexpr int64_t kSec = 1000000;
constexpr int64_t kT0 = sl::fixtures::kT0;  // 2026-01-01
constexpr int64_t kDay = 86400 * kSec;

std::shared_ptr<arrow::Table> Trades(std::mt19937_64* rng, int64_t n, int keys, bool late_mix) {
  arrow::Int64Builder id, size;
  arrow::TimestampBuilder ts(arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"),
                             arrow::default_memory_pool());
  arrow::DoubleBuilder price;
  std::uniform_int_distribution<int> key(0, keys - 1), coin(0, 9);
  std::uniform_int_distribution<int64_t> day(0, kDay - 1), hour(kDay - 3600 * kSec, kDay - 1);
  for (int64_t i = 0; i < n; ++i) {
    Check(id.Append(key(*rng)), "append");
    int64_t t = late_mix && coin(*rng) != 0 ? hour(*rng) : day(*rng);
    Check(ts.Append(kT0 + t), "append");
    Check(price.Append(static_cast<double>((*rng)() % 10000000) / 977.0), "append");
    Check(size.Append(static_cast<int64_t>((*rng)() % 100)), "append");
  }
  arrow::ArrayVector cols(4);
  Check(id.Finish(&cols[0]), "finish");
  Check(ts.Finish(&cols[1]), "finish");
  Check(price.Finish(&cols[2]), "finish");
  Check(size.Finish(&cols[3]), "finish");
  auto schema = arrow::schema({arrow::field("account_id", arrow::int64()),
                               arrow::field("ts", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC")),
                               arrow::field("price", arrow::float64()),
                               arrow::field("size", arrow::int64())});
  return arrow::Table::Make(schema, cols, n);
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t events = argc > 1 ? std::atoll(argv[1]) : 1000000;
  const int64_t append = argc > 2 ? std::atoll(argv[2]) : 10000;
  const int keys = argc > 3 ? std::atoi(argv[3]) : 100;
  auto dir = std::filesystem::temp_directory_path() /
             ("window_materialize_bench_" + std::to_string(::getpid()));
  sl::fixtures::WriteRepository(
      dir.string(), "b", sl::fixtures::AccountTradesDefinitions(R"(      - {name: size, type: int64}
feature_views:
  - name: w
    entities: [account]
    source: trades
    aggregations:
      - {name: n_5m, function: count, column: price, window: 5m}
      - {name: sum_1h, function: sum, column: size, window: 1h}
      - {name: mean_5m, function: mean, column: price, window: 5m}
      - {name: std_1h, function: stddev, column: price, window: 1h}
      - {name: max_1h, function: max, column: price, window: 1h}
)"));
  auto repo = sl::fixtures::OpenAndApply(dir.string(), "bench");
  Check(repo.status(), "open and apply");
  auto store = sl::online::OpenRepositoryStore(**repo);
  Check(store.status(), "store");
  auto table = sl::delta::DeltaTable::ForPath((*repo)->TableUri("silver/trades"));
  Check(table.status(), "table");
  std::mt19937_64 rng(1);
  Check((*table)->Write(Trades(&rng, events, keys, false), sl::delta::WriteOptions{}).status(),
        "write");
  auto materialize = [&](bool incremental) {
    sl::online::MaterializeOptions o;
    o.end_us = kT0 + kDay;
    o.incremental = incremental;
    o.clock = std::make_shared<sl::FakeClock>(kT0 / 1000);  // no tile expires
    double cpu = CpuSeconds();
    auto wall = std::chrono::steady_clock::now();
    auto r = sl::online::Materialize(**repo, **store, o);
    Check(r.status(), "materialize");
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count();
    const auto& v = r->views.at(0);
    std::printf("  %-24s %8.2f CPU-s %8.2f s wall  rows read %lld, tiles written %lld%s\n",
                incremental ? "materialize-incremental" : "materialize (full)", CpuSeconds() - cpu,
                s, static_cast<long long>(v.rows_read), static_cast<long long>(v.tiles_written),
                v.incremental ? " (incremental)" : "");
    return CpuSeconds() - cpu;
  };
  std::printf("window_materialize_bench: %lld events, %d keys, 1 day; append %lld\n",
              static_cast<long long>(events), keys, static_cast<long long>(append));
  std::printf("load average before: %s\n", LoadAverage().c_str());
  materialize(false);  // the initial build
  Check((*table)->Write(Trades(&rng, append, keys, true), sl::delta::WriteOptions{}).status(),
        "append");
  double inc = materialize(true);
  auto after_incremental = WindowTiles(**store, "w");
  double full = materialize(false);
  bool same = WindowTiles(**store, "w") == after_incremental;
  std::printf("full / incremental CPU: %.1fx; tiles equal: %s; %zu tiles\n", full / inc,
              same ? "yes" : "NO", after_incremental.size());
  std::printf("load average after: %s\n", LoadAverage().c_str());
  std::filesystem::remove_all(dir);
  return same ? 0 : 1;
}
