// `stratalake init`: a new feature repository for the sample e-commerce shop.
#include <filesystem>
#include <fstream>

#include <arrow/api.h>

#include "sample/sample_data.h"
#include "stratalake/init.h"
#include "stratalake/repo.h"
#include "stratalake/status.h"

namespace stratalake::repo {

namespace fs = std::filesystem;

namespace {

const char* kConfigTemplate =
    R"YAML(# StrataLake feature repository. Docs: docs/feature-repository.md
project: {{PROJECT}}

# Offline store root: the Delta tables (bronze/, silver/, gold/, datasets/).
# A folder relative to this file, an absolute path, or s3://bucket/prefix.
offline_store: lake

# Online store for serving: embedded (a RocksDB folder) or redis.
online_store:
  type: embedded
  path: .stratalake/online

# The registry: an embedded SQLite file, or a PostgreSQL URL such as
# postgresql://user@host:5432/dbname (values may use ${ENV_VAR}).
registry: .stratalake/registry.db

# Which definition changes `apply` accepts: backward (default), forward, full, none.
compatibility: backward

defaults:
  timestamp_field: event_ts

# Folders (or files) holding the definition YAML files.
definitions:
  - definitions
)YAML";

const char* kEntities =
    R"YAML(# Entities: the things features describe, and the keys that identify them.
entities:
  - name: customer
    description: A registered customer of the shop.
    owner: growth-team@example.com
    join_keys:
      - {name: customer_id, type: int64}
)YAML";

const char* kSources =
    R"YAML(# Sources: where feature data lives. Paths are relative to the offline store root.
# `stratalake ingest SOURCE FILE...` loads files into a source's Delta table,
# converting to the declared schema and enforcing the checks.
sources:
  - name: customers
    description: Customer profiles. A later row corrects an earlier one.
    path: bronze/customers
    timestamp_field: updated_ts
    schema:
      - {name: customer_id, type: int64, nullable: false}
      - {name: name, type: string}
      - {name: email, type: string}
      - {name: country, type: string}
      - {name: segment, type: string}
      - {name: age, type: int32}
      - {name: signup_ts, type: timestamp}
      - {name: updated_ts, type: timestamp, nullable: false}
    checks:
      - {name: plausible_age, expr: "age BETWEEN 13 AND 120"}
      - "segment IN ('consumer', 'business', 'vip')"

  - name: orders
    description: Orders as they landed; late-arriving and corrected rows included.
    path: bronze/orders
    timestamp_field: order_ts
    created_timestamp_field: ingested_ts
    schema:
      - {name: order_id, type: int64, nullable: false}
      - {name: customer_id, type: int64, nullable: false}
      - {name: amount, type: float64}
      - {name: currency, type: string}
      - {name: status, type: string}
      - {name: order_ts, type: timestamp, nullable: false}
      - {name: ingested_ts, type: timestamp, nullable: false}
    checks:
      - {name: non_negative_amount, expr: "amount >= 0"}

  - name: clicks
    description: Click events from the web and mobile apps.
    path: bronze/clicks
    timestamp_field: event_ts
    schema:
      - {name: customer_id, type: int64, nullable: false}
      - {name: session_id, type: string}
      - {name: page, type: string}
      - {name: device, type: string}
      - {name: event_ts, type: timestamp, nullable: false}
      - {name: dwell_ms, type: int32}
    checks:
      - {name: non_negative_dwell, expr: "dwell_ms >= 0"}

  - name: customer_daily_stats
    description: Daily customer aggregates computed by the nightly pipeline.
    path: gold/customer_daily_stats
    timestamp_field: event_ts
    created_timestamp_field: computed_ts
    schema:
      - {name: customer_id, type: int64, nullable: false}
      - {name: event_ts, type: timestamp, nullable: false}
      - {name: orders_7d, type: int64}
      - {name: spend_7d, type: float64}
      - {name: orders_30d, type: int64}
      - {name: spend_30d, type: float64}
      - {name: clicks_7d, type: int64}
      - {name: avg_dwell_7d, type: float64}
      - {name: days_since_last_order, type: int32}
      - {name: computed_ts, type: timestamp}

  - name: churn_labels
    description: Whether a customer ordered nothing in the 30 days after label_ts.
    path: silver/churn_labels
    timestamp_field: label_ts
    schema:
      - {name: customer_id, type: int64, nullable: false}
      - {name: label_ts, type: timestamp, nullable: false}
      - {name: churned, type: bool}

  - name: clicks_stream
    type: push
    description: Live clicks pushed by the apps through the feature server.
    path: bronze/clicks_stream
    timestamp_field: event_ts
    schema:
      - {name: customer_id, type: int64, nullable: false}
      - {name: page, type: string}
      - {name: dwell_ms, type: int32}
      - {name: event_ts, type: timestamp, nullable: false}
)YAML";

const char* kFeatureViews =
    R"YAML(# Feature views: named, typed features read from a source, keyed by entities.
# ttl: how old a value may be and still be used (0 = unlimited). 7d, 12h, 30m.
feature_views:
  - name: customer_profile
    description: Slowly changing profile attributes.
    entities: [customer]
    source: customers
    ttl: 0
    owner: growth-team@example.com
    features:
      - {name: country, type: string, description: ISO 3166 country code}
      - {name: segment, type: string, description: "consumer, business or vip"}
      - {name: age, type: int32}

  - name: customer_stats
    description: Rolling order and click aggregates, refreshed daily.
    entities: [customer]
    source: customer_daily_stats
    ttl: 2d
    owner: growth-team@example.com
    tags: {tier: gold}
    features:
      - {name: orders_7d, type: int64, description: Orders in the last 7 days}
      - {name: spend_7d, type: float64, description: Spend (EUR) in the last 7 days}
      - {name: orders_30d, type: int64, description: Orders in the last 30 days}
      - {name: spend_30d, type: float64, description: Spend (EUR) in the last 30 days}
      - {name: clicks_7d, type: int64}
      - {name: avg_dwell_7d, type: float64}
      - {name: days_since_last_order, type: int32}

  - name: last_order
    description: The customer's most recent order (corrections win by ingested_ts).
    entities: [customer]
    source: orders
    ttl: 30d
    features:
      - {name: amount, type: float64}
      - {name: status, type: string}

  - name: live_clicks
    description: The latest click pushed by the apps.
    entities: [customer]
    source: clicks_stream
    ttl: 1h
    features:
      - {name: page, type: string}
      - {name: dwell_ms, type: int32}
)YAML";

const char* kFeatureServices =
    R"YAML(# Feature services: the versioned feature lists models are trained and served with.
feature_services:
  - name: churn_model
    description: Inputs of the churn model.
    owner: ml-team@example.com
    features:
      - customer_profile
      - customer_stats:orders_30d
      - customer_stats:spend_30d
      - customer_stats:clicks_7d
      - customer_stats:days_since_last_order
      - last_order:amount
)YAML";

const char* kPipelines =
    R"YAML(# Transformations: SQL from bronze to gold over the lake's tables (docs/pipelines.md).
# `stratalake run --all` materializes them in dependency order, one commit each;
# `stratalake run --all --plan` shows what would run and why.
transformations:
  - name: silver_orders
    description: One row per order; the latest correction (by ingestion time) wins.
    output: silver.orders
    mode: merge
    keys: [order_id]
    order_by: ingested_ts
    sql: SELECT * FROM bronze.orders

  - name: silver_clicks
    description: Click events without exact duplicates.
    output: silver.clicks
    sql: SELECT DISTINCT * FROM bronze.clicks

  - name: gold_customer_value
    description: Lifetime value, 30-day spend, 7-day clicks and spend rank per customer.
    output: gold.customer_value
    schema:
      - {name: customer_id, type: int64, nullable: false}
      - {name: orders, type: int64}
      - {name: lifetime_value, type: float64}
      - {name: spend_30d, type: float64}
      - {name: last_order_ts, type: timestamp}
      - {name: clicks_7d, type: int64}
      - {name: spend_rank, type: int64}
    sql: |
      WITH o AS (
        SELECT customer_id, count(*) AS orders, sum(amount) AS lifetime_value,
               coalesce(sum(amount) FILTER (WHERE order_ts >= (SELECT max(order_ts)
                        FROM silver.orders) - INTERVAL 30 DAY), 0) AS spend_30d,
               max(order_ts) AS last_order_ts
        FROM silver.orders
        WHERE status NOT IN ('cancelled', 'refunded')
        GROUP BY customer_id),
      c AS (
        SELECT customer_id, count(*) AS clicks_7d
        FROM silver.clicks
        WHERE event_ts >= (SELECT max(event_ts) FROM silver.clicks) - INTERVAL 7 DAY
        GROUP BY customer_id)
      SELECT o.*, coalesce(c.clicks_7d, 0) AS clicks_7d,
             rank() OVER (ORDER BY lifetime_value DESC) AS spend_rank
      FROM o LEFT JOIN c USING (customer_id)
      ORDER BY customer_id
)YAML";

const char* kGitignore = R"YAML(# Data written by StrataLake
lake/
.stratalake/
)YAML";

arrow::Status WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return arrow::Status::IOError("cannot write ", path.string());
  return arrow::Status::OK();
}

}  // namespace

arrow::Result<InitResult> InitRepository(const std::string& dir, const InitOptions& options) {
  std::error_code ec;
  fs::path root = fs::absolute(dir, ec).lexically_normal();
  if (!root.has_filename()) root = root.parent_path();
  if (fs::exists(root / "stratalake.yaml", ec)) {
    return MakeError(arrow::StatusCode::Invalid, ErrorKind::kOperationNotAllowed,
                     root.string() +
                         " already holds a feature repository (stratalake.yaml); choose another "
                         "folder");
  }
  fs::create_directories(root / "definitions", ec);
  if (ec) return arrow::Status::IOError("cannot create ", root.string(), ": ", ec.message());

  std::string project = options.project.empty() ? root.filename().string() : options.project;
  std::string config = kConfigTemplate;
  config.replace(config.find("{{PROJECT}}"), 11, project);

  InitResult result;
  result.root = root.string();
  auto write = [&](const std::string& rel, const std::string& text) -> arrow::Status {
    ARROW_RETURN_NOT_OK(WriteText(root / rel, text));
    result.files_written.push_back(rel);
    return arrow::Status::OK();
  };
  ARROW_RETURN_NOT_OK(write("stratalake.yaml", config));
  ARROW_RETURN_NOT_OK(write(".gitignore", kGitignore));
  ARROW_RETURN_NOT_OK(write("definitions/entities.yaml", kEntities));
  ARROW_RETURN_NOT_OK(write("definitions/sources.yaml", kSources));
  ARROW_RETURN_NOT_OK(write("definitions/feature_views.yaml", kFeatureViews));
  ARROW_RETURN_NOT_OK(write("definitions/feature_services.yaml", kFeatureServices));
  ARROW_RETURN_NOT_OK(write("definitions/pipelines.yaml", kPipelines));

  SampleDataOptions sample;
  sample.customers = options.customers;
  sample.seed = options.seed;
  const int64_t as_of_ms = options.as_of_ms ? *options.as_of_ms
                           : options.clock  ? options.clock->NowMillis()
                                            : Clock::System()->NowMillis();
  sample.anchor_s = as_of_ms >= 0 ? as_of_ms / 1000 : -((-as_of_ms + 999) / 1000);
  ARROW_ASSIGN_OR_RAISE(auto summary, WriteSampleData((root / "data").string(), sample));
  for (const auto& [file, rows] : summary) result.files_written.push_back("data/" + file);
  return result;
}

}  // namespace stratalake::repo
