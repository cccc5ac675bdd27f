// on_demand_bench: what on-demand features add to an online request's CPU.
//
// A program that prints numbers, never a pass/fail test. It writes a small
// feature repository in a temporary folder (one entity, a stored view of five
// features over --keys keys, a request source and an on-demand view of six
// features: a ratio with nullif, haversine, bucket, CASE, coalesce + if, and
// round(ln(...))), materializes it into the embedded store and times, on one
// thread, OnlineService::Get for the same entity rows asking for
//   stored:    the five stored features;
//   on_demand: the five stored features and the six on-demand ones (which read
//              three stored features and four request fields),
// at 1 and 100 entity rows per request. The difference is the hot-path cost of
// evaluating the compiled expressions (compiled once per registry version).
//
//   on_demand_bench [--keys N] [--iters N] [--only stored_1|on_demand_1|stored_100|on_demand_100]
//
// Prints one JSON object: per shape, mean µs of thread CPU per request.
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <arrow/api.h>

#include "repo_fixtures.h"
#include "stratalake/delta.h"
#include "stratalake/online.h"
#include "stratalake/repo.h"

namespace {

using namespace stratalake;

double ThreadSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

const std::string kDefinitions = stratalake::fixtures::OnDemandDefinitions(
    "",
    R"yaml(      - {name: risk, type: string, expression: "CASE WHEN amount > 500 AND tier = 'silver' THEN 'high' WHEN amount > 100 THEN 'medium' ELSE 'low' END"}
      - {name: orders_plus, type: int64, expression: "coalesce(orders, 0) + if(channel = 'web', 1, 0)"}
      - {name: log_amount, type: float64, expression: "round(ln(abs(amount) + 1), 3)"}
)yaml");

template <typename T>
T Check(arrow::Result<T> r) {
  if (!r.ok()) {
    std::cerr << r.status().ToString() << "\n";
    std::exit(1);
  }
  return std::move(r).ValueUnsafe();
}

void Check(const arrow::Status& st) {
  if (!st.ok()) {
    std::cerr << st.ToString() << "\n";
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int64_t keys = 100000;
  int iters = 20000;
  std::string only;  // time one shape only, e.g. "on_demand_1" (for a profiler)
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--keys") keys = std::atoll(argv[i + 1]);
    if (a == "--iters") iters = std::atoi(argv[i + 1]);
    if (a == "--only") only = argv[i + 1];
  }
  const auto dir = std::filesystem::temp_directory_path() /
                   ("stratalake-on-demand-bench-" + std::to_string(std::random_device{}()));
  fixtures::WriteRepository(dir.string(), "b", kDefinitions);
  auto repo = Check(fixtures::OpenAndApply(dir.string(), "bench"));
  auto reg = Check(repo->registry());

  // One row per key.
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> amount(1, 900), lat(-80, 80), lon(-180, 180);
  arrow::Int64Builder id, orders;
  arrow::TimestampBuilder ts(arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"),
                             arrow::default_memory_pool());
  arrow::DoubleBuilder avg, hlat, hlon;
  arrow::StringBuilder tier;
  const int64_t t0 = fixtures::kT0;
  for (int64_t k = 0; k < keys; ++k) {
    Check(id.Append(k));
    Check(ts.Append(t0));
    Check(avg.Append(amount(rng)));
    Check(orders.Append(static_cast<int64_t>(rng() % 50)));
    Check(hlat.Append(lat(rng)));
    Check(hlon.Append(lon(rng)));
    Check(tier.Append(rng() % 2 ? "gold" : "silver"));
  }
  arrow::ArrayVector cols(7);
  Check(id.Finish(&cols[0]));
  Check(ts.Finish(&cols[1]));
  Check(avg.Finish(&cols[2]));
  Check(orders.Finish(&cols[3]));
  Check(hlat.Finish(&cols[4]));
  Check(hlon.Finish(&cols[5]));
  Check(tier.Finish(&cols[6]));
  auto schema = fixtures::OnDemandStatsSchema();
  auto table = Check(delta::DeltaTable::ForPath(repo->TableUri("gold/stats")));
  Check(table->Write(arrow::Table::Make(schema, cols, keys), delta::WriteOptions{}).status());
  auto store = std::shared_ptr<online::OnlineStore>(Check(online::OpenRepositoryStore(*repo)));
  online::MaterializeOptions mo;
  mo.end_us = t0 + 1;
  Check(online::Materialize(*repo, *store, mo).status());
  online::OnlineService service(reg, store, Clock::System());

  std::string out = "{\"keys\": " + std::to_string(keys) + ", \"iters\": " + std::to_string(iters);
  for (size_t rows : {size_t{1}, size_t{100}}) {
    for (bool on_demand : {false, true}) {
      const std::string shape =
          std::string(on_demand ? "on_demand_" : "stored_") + std::to_string(rows);
      if (!only.empty() && only != shape) continue;
      online::OnlineRequest req;
      req.features = {"stats"};
      if (on_demand) req.features.push_back("txn_features");
      std::vector<online::KeyScalar> ids, channels;
      arrow::DoubleBuilder a, la, lo;
      for (size_t r = 0; r < rows; ++r) {
        ids.emplace_back(static_cast<int64_t>(rng() % static_cast<uint64_t>(keys)));
        channels.emplace_back(std::string(r % 2 ? "web" : "app"));
        Check(a.Append(amount(rng)));
        Check(la.Append(lat(rng)));
        Check(lo.Append(lon(rng)));
      }
      req.entities = {{"customer_id", ids}};
      if (on_demand) {
        req.entities.emplace_back("channel", channels);
        req.request_data = {{"amount", Check(a.Finish())},
                            {"lat", Check(la.Finish())},
                            {"lon", Check(lo.Finish())}};
      }
      for (int i = 0; i < 200; ++i) Check(service.Get(req).status());  // warm: compiled, cached
      const double start = ThreadSeconds();
      for (int i = 0; i < iters; ++i) {
        auto resp = service.Get(req);
        if (!resp.ok()) Check(resp.status());
      }
      const double us = (ThreadSeconds() - start) * 1e6 / iters;
      char buf[128];
      std::snprintf(buf, sizeof buf, ", \"%s_%zu_rows_us\": %.2f",
                    on_demand ? "on_demand" : "stored", rows, us);
      out += buf;
    }
  }
  std::cout << out << "}\n";
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
