// Window view materialization after removes in the source: the keyed repair
// of `materialize-incremental` against a full rebuild (docs/windows.md,
// "Removes").
//
//   build/bin/window_repair_bench [EVENTS] [CHANGES] [KEYS] [dv]
//
// Writes EVENTS (default 1,000,000) random trades over one day for KEYS
// (10,000) keys into a Delta source (in 10 files), materializes the window
// view (count, sum, mean, stddev, max over 5m and 1h: 30 s buckets), then for
// each of three changes — CHANGES (1,000) rows deleted, CHANGES rows updated
// (one DELETE and one UPDATE whose predicate picks CHANGES random rows, so
// scattered over keys and time), and an OPTIMIZE of the files — times
// `materialize-incremental` (the keyed repair) and, on the same data, a full
// `materialize`, and checks that both leave the same tiles. With `dv` the
// source has deletion vectors (a DELETE marks rows instead of rewriting
// files). Prints CPU seconds (user + system of this process), wall seconds,
// their ratio and the load average. Tile GC is kept out (its clock is the
// data's start).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
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

// Trades with a unique id `seq` (first_seq, first_seq + 1, ...), so that a
// predicate can pick scattered rows.
std::shared_ptr<arrow::Table> Trades(std::mt19937_64* rng, int64_t first_seq, int64_t n, int keys) {
  arrow::Int64Builder seq, id, size;
  arrow::TimestampBuilder ts(arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"),
                             arrow::default_memory_pool());
  arrow::DoubleBuilder price;
  std::uniform_int_distribution<int> key(0, keys - 1);
  std::uniform_int_distribution<int64_t> day(0, kDay - 1);
  for (int64_t i = 0; i < n; ++i) {
    Check(seq.Append(first_seq + i), "append");
    Check(id.Append(key(*rng)), "append");
    Check(ts.Append(kT0 + day(*rng)), "append");
    Check(price.Append(static_cast<double>((*rng)() % 10000000) / 977.0), "append");
    Check(size.Append(static_cast<int64_t>((*rng)() % 100)), "append");
  }
  arrow::ArrayVector cols(5);
  Check(seq.Finish(&cols[0]), "finish");
  Check(id.Finish(&cols[1]), "finish");
  Check(ts.Finish(&cols[2]), "finish");
  Check(price.Finish(&cols[3]), "finish");
  Check(size.Finish(&cols[4]), "finish");
  auto schema = arrow::schema(
      {arrow::field("seq", arrow::int64()), arrow::field("account_id", arrow::int64()),
       arrow::field("ts", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC")),
       arrow::field("price", arrow::float64()), arrow::field("size", arrow::int64())});
  return arrow::Table::Make(schema, cols, n);
}

// "seq IN (...)" for `n` random ids below `events` not picked before.
std::string RandomRows(std::mt19937_64* rng, int64_t events, int64_t n, std::set<int64_t>* used) {
  std::string p = "seq IN (";
  for (int64_t i = 0; i < n;) {
    int64_t s = static_cast<int64_t>((*rng)() % static_cast<uint64_t>(events));
    if (!used->insert(s).second) continue;
    p += (i ? ", " : "") + std::to_string(s);
    ++i;
  }
  return p + ")";
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t events = argc > 1 ? std::atoll(argv[1]) : 1000000;
  const int64_t changes = argc > 2 ? std::atoll(argv[2]) : 1000;
  const int keys = argc > 3 ? std::atoi(argv[3]) : 10000;
  const bool dv = argc > 4 && std::strcmp(argv[4], "dv") == 0;
  auto dir = std::filesystem::temp_directory_path() /
             ("window_repair_bench_" + std::to_string(::getpid()));
  sl::fixtures::WriteRepository(dir.string(), "b", R"(entities:
  - name: account
    join_keys: [{name: account_id, type: int64}]
sources:
  - name: trades
    type: delta
    path: silver/trades
    timestamp_field: ts
    schema:
      - {name: seq, type: int64}
      - {name: account_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: price, type: float64}
      - {name: size, type: int64}
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
)");
  auto repo = sl::fixtures::OpenAndApply(dir.string(), "bench");
  Check(repo.status(), "open and apply");
  auto store = sl::online::OpenRepositoryStore(**repo);
  Check(store.status(), "store");
  auto table = sl::delta::DeltaTable::ForPath((*repo)->TableUri("silver/trades"));
  Check(table.status(), "table");
  std::mt19937_64 rng(1);
  for (int f = 0; f < 10; ++f) {
    sl::delta::WriteOptions wo;
    if (dv) wo.create.properties["delta.enableDeletionVectors"] = "true";
    Check((*table)->Write(Trades(&rng, f * (events / 10), events / 10, keys), wo).status(),
          "write");
  }
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
    std::printf("  %-24s %7.2f CPU-s %7.2f s wall  rows read %lld, tiles written %lld%s\n",
                incremental ? "materialize-incremental" : "materialize (full)", CpuSeconds() - cpu,
                s, static_cast<long long>(v.rows_read), static_cast<long long>(v.tiles_written),
                v.keyed_repair ? " (keyed repair)"
                : v.rebuilt    ? " (rebuilt)"
                               : "");
    if (incremental) std::printf("    %s\n", v.note.c_str());
    return CpuSeconds() - cpu;
  };
  std::printf("window_repair_bench: %lld events, %d keys, 1 day, 10 files%s; %lld rows changed\n",
              static_cast<long long>(events), keys, dv ? ", deletion vectors" : "",
              static_cast<long long>(changes));
  std::printf("load average before: %s\n", LoadAverage().c_str());
  materialize(false);  // the initial build
  std::set<int64_t> used;
  bool all_same = true;
  for (const char* change : {"delete", "update", "optimize"}) {
    std::printf("%s:\n", change);
    double cpu = CpuSeconds();
    if (std::strcmp(change, "delete") == 0) {
      Check((*table)->Delete(RandomRows(&rng, events, changes, &used)).status(), "delete");
    } else if (std::strcmp(change, "update") == 0) {
      Check(
          (*table)->Update(RandomRows(&rng, events, changes, &used), "price = price + 1").status(),
          "update");
    } else {
      Check((*table)->Optimize(sl::delta::OptimizeOptions{}).status(), "optimize");
    }
    std::printf("  (the %s itself: %.2f CPU-s)\n", change, CpuSeconds() - cpu);
    double inc = materialize(true);
    auto after_incremental = WindowTiles(**store, "w");
    double full = materialize(false);
    bool same = WindowTiles(**store, "w") == after_incremental;
    all_same = all_same && same;
    std::printf("  full / incremental CPU: %.1fx; tiles equal: %s; %zu tiles\n", full / inc,
                same ? "yes" : "NO", after_incremental.size());
  }
  std::printf("load average after: %s\n", LoadAverage().c_str());
  std::filesystem::remove_all(dir);
  return all_same ? 0 : 1;
}
