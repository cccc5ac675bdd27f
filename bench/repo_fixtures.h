// Small feature repositories that the benches build and the tests checking the
// same features build too, in one place: their stratalake.yaml, the definitions
// they share, and the setup (write, open, apply). Header-only and public API
// only, since benches are front ends (scripts/check_layers.py); tests include it
// as "../../bench/repo_fixtures.h".
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <arrow/api.h>

#include "stratalake/registry.h"
#include "stratalake/repo.h"

namespace stratalake::fixtures {

constexpr int64_t kHour = 3600LL * 1000000;      // µs
constexpr int64_t kT0 = 1767225600LL * 1000000;  // 2026-01-01T00:00:00Z in µs

/// Writes `text` to `path`, creating its folder.
inline void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

/// Writes a feature repository into `dir`: stratalake.yaml (project `project`,
/// offline store lake/, an embedded online store in online/, registry
/// registry.db, definitions in definitions/) and `definitions` as
/// definitions/defs.yaml.
inline void WriteRepository(const std::string& dir, const std::string& project,
                            const std::string& definitions) {
  const std::filesystem::path root(dir);
  WriteFile((root / "stratalake.yaml").string(),
            "project: " + project +
                "\noffline_store: lake\nonline_store:\n  type: embedded\n  path: online\n"
                "registry: registry.db\ndefinitions: [definitions]\n");
  WriteFile((root / "definitions" / "defs.yaml").string(), definitions);
}

/// Opens the repository in `dir` and applies its definitions to its registry
/// (every change accepted), recorded as by `author`.
inline arrow::Result<std::unique_ptr<repo::FeatureRepository>> OpenAndApply(
    const std::string& dir, const std::string& author) {
  ARROW_ASSIGN_OR_RAISE(auto repo, repo::FeatureRepository::Open(dir));
  ARROW_ASSIGN_OR_RAISE(auto defs, repo->LoadValidatedDefinitions());
  ARROW_ASSIGN_OR_RAISE(auto reg, repo->registry());
  ARROW_RETURN_NOT_OK(reg->Apply(defs, registry::CompatibilityPolicy::kNone, author, "").status());
  return repo;
}

// ---- customer stats: src/online/materialize_test.cc, sst_ingest_test.cc -------

/// Entity `customer` (join key customer_id) and the start of delta source
/// `stats` (gold/stats at event_ts, ties broken by created_ts): its columns
/// customer_id, event_ts, created_ts, spend, then the lines `more_columns`.
inline std::string CustomerStatsDefinitions(const std::string& more_columns) {
  return R"(entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
sources:
  - name: stats
    type: delta
    path: gold/stats
    timestamp_field: event_ts
    created_timestamp_field: created_ts
    schema:
      - {name: customer_id, type: int64}
      - {name: event_ts, type: timestamp}
      - {name: created_ts, type: timestamp}
      - {name: spend, type: float64}
)" + more_columns;
}

// ---- on-demand features: bench/on_demand_bench.cc, src/online/on_demand_test.cc

/// Entity `customer`; source and feature view `stats` (avg_amount, orders,
/// home_lat, home_lon, tier by customer_id at event_ts; the view's ttl
/// `stats_ttl`, none when empty); request source `txn` (amount, lat, lon,
/// channel); and the on-demand view `txn_features` over both, up to its
/// features amount_ratio, distance_km and amount_bucket: `more` goes on with
/// its further features (and may then add more objects).
inline std::string OnDemandDefinitions(const std::string& stats_ttl, const std::string& more) {
  return std::string(R"yaml(entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
sources:
  - name: stats
    path: gold/stats
    timestamp_field: event_ts
    schema:
      - {name: customer_id, type: int64}
      - {name: event_ts, type: timestamp}
      - {name: avg_amount, type: float64}
      - {name: orders, type: int64}
      - {name: home_lat, type: float64}
      - {name: home_lon, type: float64}
      - {name: tier, type: string}
feature_views:
  - name: stats
    entities: [customer]
    source: stats
)yaml") + (stats_ttl.empty() ? "" : "    ttl: " + stats_ttl + "\n") +
         R"yaml(    features:
      - {name: avg_amount, type: float64}
      - {name: orders, type: int64}
      - {name: home_lat, type: float64}
      - {name: home_lon, type: float64}
      - {name: tier, type: string}
request_sources:
  - name: txn
    schema:
      - {name: amount, type: float64}
      - {name: lat, type: float64}
      - {name: lon, type: float64}
      - {name: channel, type: string}
on_demand_feature_views:
  - name: txn_features
    sources: [txn, stats]
    features:
      - {name: amount_ratio, type: float64, expression: "amount / nullif(avg_amount, 0)"}
      - {name: distance_km, type: float64, expression: "haversine(lat, lon, home_lat, home_lon)"}
      - {name: amount_bucket, type: int64, expression: "bucket(amount, 10, 100, 1000)"}
)yaml" + more;
}

/// The columns of gold/stats in OnDemandDefinitions().
inline std::shared_ptr<arrow::Schema> OnDemandStatsSchema() {
  return arrow::schema(
      {arrow::field("customer_id", arrow::int64()),
       arrow::field("event_ts", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC")),
       arrow::field("avg_amount", arrow::float64()), arrow::field("orders", arrow::int64()),
       arrow::field("home_lat", arrow::float64()), arrow::field("home_lon", arrow::float64()),
       arrow::field("tier", arrow::utf8())});
}

// ---- window aggregations: bench/window_materialize_bench.cc, src/online/window_test.cc

/// Entity `account` and the start of delta source `trades` (silver/trades at
/// ts): its columns account_id, ts, price, then the lines `more_columns`.
inline std::string AccountTradesDefinitions(const std::string& more_columns) {
  return R"(entities:
  - name: account
    join_keys: [{name: account_id, type: int64}]
sources:
  - name: trades
    type: delta
    path: silver/trades
    timestamp_field: ts
    schema:
      - {name: account_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: price, type: float64}
)" + more_columns;
}

}  // namespace stratalake::fixtures
