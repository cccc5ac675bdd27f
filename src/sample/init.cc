// `stratalake init`: a new feature repository for the sample e-commerce shop
// (template "shop") or for a trading model on market data (template "markets").
#include <cstring>
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

// Lines more than one template file repeats, spliced in for their {{NAME}} by
// Expand() (the config's {{PROJECT}} and {{TIMESTAMP_FIELD}} are per repository).
struct Piece {
  const char* name;
  const char* text;
};
const Piece kPieces[] = {
    {"{{ENTITIES_HEADER}}",
     "# Entities: the things features describe, and the keys that identify them."},
    {"{{FEATURE_SERVICES_HEADER}}",
     "# Feature services: the versioned feature lists models are trained and served with."},
    {"{{TRANSFORMATIONS_HEADER}}",
     R"YAML(# Transformations: SQL from bronze to gold over the lake's tables (docs/pipelines.md).
# `stratalake run --all` materializes them in dependency order, one commit each)YAML"},
    // The schema of gold/customer_daily_stats: its source's and its transformation's.
    {"{{CUSTOMER_DAILY_STATS_SCHEMA}}",
     R"YAML(      - {name: customer_id, type: int64, nullable: false}
      - {name: event_ts, type: timestamp, nullable: false}
      - {name: orders_7d, type: int64}
      - {name: spend_7d, type: float64}
      - {name: orders_30d, type: int64}
      - {name: spend_30d, type: float64}
      - {name: clicks_7d, type: int64}
      - {name: avg_dwell_7d, type: float64}
      - {name: days_since_last_order, type: int32}
      - {name: computed_ts, type: timestamp})YAML"},
    // The key columns every markets table starts with.
    {"{{TRADE_KEY_COLUMNS}}", R"YAML(      - {name: symbol, type: string, nullable: false}
      - {name: trade_id, type: int64, nullable: false}
      - {name: ts, type: timestamp, nullable: false})YAML"},
};

// `text` with every piece's {{NAME}} replaced by its text.
std::string Expand(std::string text) {
  for (const auto& piece : kPieces) {
    const std::string name = piece.name;
    for (size_t at = text.find(name); at != std::string::npos; at = text.find(name, at)) {
      text.replace(at, name.size(), piece.text);
      at += std::strlen(piece.text);
    }
  }
  return text;
}

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
  timestamp_field: {{TIMESTAMP_FIELD}}

# Folders (or files) holding the definition YAML files.
definitions:
  - definitions
)YAML";

const char* kEntities =
    R"YAML({{ENTITIES_HEADER}}
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
    description: Daily customer aggregates, computed from orders and clicks by gold_customer_daily_stats (pipelines.yaml).
    path: gold/customer_daily_stats
    timestamp_field: event_ts
    created_timestamp_field: computed_ts
    schema:
{{CUSTOMER_DAILY_STATS_SCHEMA}}

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
    R"YAML({{FEATURE_SERVICES_HEADER}}
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
    R"YAML({{TRANSFORMATIONS_HEADER}};
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
    description: One row per click (a page view of a session at a time); a click sent twice keeps one copy.
    output: silver.clicks
    mode: merge
    keys: [session_id, event_ts, page]
    order_by: event_ts
    sql: SELECT * FROM bronze.clicks

  - name: gold_customer_value
    description: Lifetime value, 30-day spend, 7-day clicks and click rate (per day), spend rank.
    output: gold.customer_value
    schema:
      - {name: customer_id, type: int64, nullable: false}
      - {name: orders, type: int64}
      - {name: lifetime_value, type: float64}
      - {name: spend_30d, type: float64}
      - {name: last_order_ts, type: timestamp}
      - {name: clicks_7d, type: int64}
      - {name: click_rate_7d, type: float64}
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
             coalesce(c.clicks_7d, 0) / 7 AS click_rate_7d,
             rank() OVER (ORDER BY lifetime_value DESC) AS spend_rank
      FROM o LEFT JOIN c USING (customer_id)
      ORDER BY customer_id

  # The daily aggregates customer_stats serves, point-in-time correct: each day's row
  # sees every order as it was known at that midnight (its latest version ingested by
  # then, from bronze: silver keeps only the latest), so a training set never sees a
  # correction before it happened. data/customer_daily_stats.parquet holds the same rows
  # (the generator's own computation; tests check that they are equal).
  - name: gold_customer_daily_stats
    description: Per customer and day, 7- and 30-day orders and spend, 7-day clicks and dwell.
    output: gold.customer_daily_stats
    schema:
{{CUSTOMER_DAILY_STATS_SCHEMA}}
    sql: |
      WITH days AS (
        SELECT unnest(generate_series(
                 date_trunc('day', min(order_ts)) + INTERVAL 1 DAY,
                 date_trunc('day', max(order_ts)) + INTERVAL 1 DAY, INTERVAL 1 DAY)) AS day_end
        FROM bronze.orders),
      grid AS (
        SELECT c.customer_id, d.day_end
        FROM (SELECT customer_id, min(signup_ts) AS signup_ts
              FROM bronze.customers GROUP BY customer_id) c
        JOIN days d ON c.signup_ts < d.day_end),
      known AS (
        SELECT g.customer_id, g.day_end, o.amount, o.status, o.order_ts
        FROM grid g JOIN bronze.orders o
          ON o.customer_id = g.customer_id AND o.ingested_ts <= g.day_end
        QUALIFY row_number() OVER (PARTITION BY g.customer_id, g.day_end, o.order_id
                                   ORDER BY o.ingested_ts DESC) = 1),
      ord AS (
        SELECT customer_id, day_end,
               count(*) FILTER (WHERE order_ts > day_end - INTERVAL 7 DAY) AS orders_7d,
               sum(round(amount * 100)) FILTER (WHERE order_ts > day_end - INTERVAL 7 DAY) AS cents_7d,
               count(*) FILTER (WHERE order_ts > day_end - INTERVAL 30 DAY) AS orders_30d,
               sum(round(amount * 100)) FILTER (WHERE order_ts > day_end - INTERVAL 30 DAY) AS cents_30d,
               max(order_ts) AS last_order_ts
        FROM known
        WHERE status NOT IN ('cancelled', 'refunded')
        GROUP BY ALL),
      clk AS (
        SELECT g.customer_id, g.day_end, count(*) AS clicks_7d, sum(c.dwell_ms) AS dwell_7d
        FROM grid g JOIN silver.clicks c
          ON c.customer_id = g.customer_id AND c.event_ts > g.day_end - INTERVAL 7 DAY
         AND c.event_ts <= g.day_end
        GROUP BY ALL)
      SELECT g.customer_id, g.day_end AS event_ts,
             coalesce(o.orders_7d, 0) AS orders_7d,
             coalesce(o.cents_7d, 0) / 100 AS spend_7d,
             coalesce(o.orders_30d, 0) AS orders_30d,
             coalesce(o.cents_30d, 0) / 100 AS spend_30d,
             coalesce(k.clicks_7d, 0) AS clicks_7d,
             k.dwell_7d / k.clicks_7d AS avg_dwell_7d,
             CAST(date_diff('second', o.last_order_ts, g.day_end) // 86400 AS INTEGER)
               AS days_since_last_order,
             g.day_end + INTERVAL 2 HOUR AS computed_ts
      FROM grid g
      LEFT JOIN ord o USING (customer_id, day_end)
      LEFT JOIN clk k USING (customer_id, day_end)
      ORDER BY event_ts, customer_id
)YAML";

// ---- the markets template ------------------------------------------------------

const char* kMarketsEntities =
    R"YAML({{ENTITIES_HEADER}}
entities:
  - name: symbol
    description: A traded instrument (BTCUSDT, ETHUSDT).
    owner: quant-team@example.com
    join_keys:
      - {name: symbol, type: string}
)YAML";

const char* kMarketsSources =
    R"YAML(# Sources. `trades` is a kafka source: `stratalake stream` appends its topic to
# bronze/trades exactly once and writes `last_trade` and the windows of
# `trade_activity` online as trades arrive
# (docs/streaming.md). Without a broker, `stratalake ingest trades data/trades.jsonl`
# loads the same trades. The gold sources are written by definitions/pipelines.yaml.
sources:
  - name: trades
    type: kafka
    description: Raw trades as the exchange reports them.
    path: bronze/trades
    timestamp_field: ts
    schema:
{{TRADE_KEY_COLUMNS}}
      - {name: price, type: float64}
      - {name: qty, type: float64}
      - {name: side, type: string}
      - {name: bid, type: float64}
      - {name: ask, type: float64}
    checks:
      - {name: positive_price, expr: "price > 0"}
      - "side IN ('buy', 'sell')"
    kafka:
      brokers: ${KAFKA_BROKERS}
      topic: trades
      format: json
      allowed_lateness: 30s

  - name: trade_features
    description: Per-trade signals (gold_trade_features in pipelines.yaml).
    path: gold/trade_features
    timestamp_field: ts
    schema:
{{TRADE_KEY_COLUMNS}}
      - {name: price, type: float64}
      - {name: volume, type: float64}
      - {name: ret_1, type: float64}
      - {name: ret_5, type: float64}
      - {name: price_lag5, type: float64}
      - {name: ret_1_lag5, type: float64}
      - {name: volume_ma30, type: float64}
      - {name: spread_bps, type: float64}
      - {name: spread_regime, type: string}

  - name: trade_windows
    description: Time-window aggregates per trade (gold_trade_windows in pipelines.yaml).
    path: gold/trade_windows
    timestamp_field: ts
    schema:
{{TRADE_KEY_COLUMNS}}
      - {name: trades_1m, type: int64}
      - {name: volume_1m, type: float64}
      - {name: vwap_1m, type: float64}
      - {name: imbalance_1m, type: float64}
      - {name: realized_vol_5m, type: float64}
      - {name: ret_1m, type: float64}
      - {name: ret_5m, type: float64}
      - {name: ret_1h, type: float64}

  - name: trade_labels
    description: What the model predicts, 10 seconds after each trade (gold_trade_labels).
    path: gold/trade_labels
    timestamp_field: ts
    schema:
{{TRADE_KEY_COLUMNS}}
      - {name: fut_ret_10s, type: float64}
      - {name: fut_direction, type: int32}
)YAML";

const char* kMarketsFeatureViews =
    R"YAML(# Feature views. The sample's trades end at today's midnight (UTC), so the TTLs are
# generous; a live model would use seconds.
feature_views:
  - name: last_trade
    description: The latest trade, online as soon as the stream reads it.
    entities: [symbol]
    source: trades
    ttl: 2d
    owner: quant-team@example.com
    features:
      - {name: trade_id, type: int64}
      - {name: price, type: float64}
      - {name: qty, type: float64}
      - {name: side, type: string}
      - {name: bid, type: float64}
      - {name: ask, type: float64}

  - name: trade_signals
    description: Returns, lags, volume, spread and its regime at each trade.
    entities: [symbol]
    source: trade_features
    ttl: 2d
    owner: quant-team@example.com
    tags: {tier: gold}
    features:
      - {name: price, type: float64}
      - {name: volume, type: float64, description: The trade's quantity}
      - {name: ret_1, type: float64, description: Return since the previous trade}
      - {name: ret_5, type: float64, description: Return over the last 5 trades}
      - {name: price_lag5, type: float64, description: The price 5 trades ago}
      - {name: ret_1_lag5, type: float64, description: ret_1 five trades ago}
      - {name: volume_ma30, type: float64, description: Mean quantity of the last 30 trades}
      - {name: spread_bps, type: float64, description: "(ask - bid) / mid in basis points"}
      - {name: spread_regime, type: string, description: "tight (< 0.5 bp), normal (< 2 bp) or wide"}

  # Time windows (t - w, t] at each trade, written as SQL (gold_trade_windows) because
  # VWAP, imbalance and returns combine columns; trade_activity below declares plain
  # window aggregations on `trades` itself instead.
  - name: trade_windows
    description: Trade count, volume, VWAP, imbalance, volatility and returns over time windows.
    entities: [symbol]
    source: trade_windows
    ttl: 2d
    owner: quant-team@example.com
    tags: {tier: gold}
    features:
      - {name: trades_1m, type: int64, description: Trades in the last minute}
      - {name: volume_1m, type: float64}
      - {name: vwap_1m, type: float64, description: "Volume-weighted average price, last minute"}
      - {name: imbalance_1m, type: float64, description: "(buy - sell) / total quantity, last minute"}
      - {name: realized_vol_5m, type: float64, description: "sqrt of the sum of squared trade returns, 5 minutes"}
      - {name: ret_1m, type: float64, description: Return since the last trade at or before t - 1m}
      - {name: ret_5m, type: float64}
      - {name: ret_1h, type: float64}

  # Window aggregations declared on the kafka source (docs/windows.md): `stratalake
  # stream` updates them online as each trade arrives, `get-historical` computes the
  # same values for a training row at any time t, over (t - window, t].
  - name: trade_activity
    description: Trade counts, volumes, price statistics and the last price over the last 1 and 5 minutes.
    entities: [symbol]
    source: trades
    owner: quant-team@example.com
    tags: {tier: bronze, serving: streaming}
    aggregations:
      - {name: trade_count_1m, function: count, column: price, window: 1m}
      - {name: trade_count_5m, function: count, column: price, window: 5m}
      - {name: qty_1m, function: sum, column: qty, window: 1m, description: Traded quantity}
      - {name: qty_5m, function: sum, column: qty, window: 5m}
      - {name: buy_qty_1m, function: sum, column: qty, window: 1m, filter: "side = 'buy'"}
      - {name: sell_qty_1m, function: sum, column: qty, window: 1m, filter: "side = 'sell'"}
      - {name: mean_price_1m, function: mean, column: price, window: 1m}
      - {name: price_std_5m, function: stddev, column: price, window: 5m}
      - {name: high_5m, function: max, column: price, window: 5m}
      - {name: low_5m, function: min, column: price, window: 5m}
      - {name: last_price_5m, function: last, column: price, window: 5m}
)YAML";

const char* kMarketsFeatureServices =
    R"YAML({{FEATURE_SERVICES_HEADER}}
feature_services:
  - name: trade_model
    description: Inputs of the 10-second direction model.
    owner: quant-team@example.com
    features:
      - trade_signals
      - trade_windows

  # The streamed window features on their own: trade_model's training rows are the
  # labels of batch-built gold tables, this one is read online while trades stream in.
  - name: trade_activity_live
    description: The window aggregations that `stratalake stream` keeps current.
    owner: quant-team@example.com
    features:
      - trade_activity
)YAML";

const char* kMarketsPipelines =
    R"YAML({{TRANSFORMATIONS_HEADER}}.
transformations:
  - name: silver_trades
    description: One row per trade (a trade read twice keeps its latest copy).
    output: silver.trades
    mode: merge
    keys: [symbol, trade_id]
    order_by: ts
    sql: |
      SELECT symbol, trade_id, ts, price, qty, side, bid, ask
      FROM bronze.trades

  - name: gold_trade_features
    description: Per-trade returns, a 5-trade lag, a 30-trade volume average, spread and regime.
    output: gold.trade_features
    sql: |
      WITH t AS (
        SELECT symbol, trade_id, ts, price, qty,
               price / lag(price) OVER (PARTITION BY symbol ORDER BY ts) - 1 AS ret_1,
               (ask - bid) / ((ask + bid) / 2) * 10000 AS spread_bps
        FROM silver.trades)
      SELECT symbol, trade_id, ts, price, qty AS volume, ret_1,
             price / lag(price, 5) OVER w - 1 AS ret_5,
             lag(price, 5) OVER w AS price_lag5,
             lag(ret_1, 5) OVER w AS ret_1_lag5,
             avg(qty) OVER (w ROWS BETWEEN 29 PRECEDING AND CURRENT ROW) AS volume_ma30,
             spread_bps,
             CASE WHEN spread_bps < 0.5 THEN 'tight'
                  WHEN spread_bps < 2 THEN 'normal'
                  ELSE 'wide' END AS spread_regime
      FROM t
      WINDOW w AS (PARTITION BY symbol ORDER BY ts)
      ORDER BY symbol, ts

  # Windows are (t - w, t] in event time: SQL's RANGE frame includes its start,
  # so each frame starts 1 microsecond after t - w.
  - name: gold_trade_windows
    description: Trade count, volume, VWAP, buy/sell imbalance, realized volatility, 1m/5m/1h returns.
    output: gold.trade_windows
    sql: |
      WITH t AS (
        SELECT symbol, trade_id, ts, price, qty,
               CASE side WHEN 'buy' THEN qty ELSE -qty END AS signed_qty,
               price / lag(price) OVER (PARTITION BY symbol ORDER BY ts) - 1 AS ret_1
        FROM silver.trades),
      w AS (
        SELECT symbol, trade_id, ts, price,
               count(*) OVER m1 AS trades_1m,
               sum(qty) OVER m1 AS volume_1m,
               sum(price * qty) OVER m1 / sum(qty) OVER m1 AS vwap_1m,
               sum(signed_qty) OVER m1 / sum(qty) OVER m1 AS imbalance_1m,
               sqrt(sum(ret_1 * ret_1) OVER m5) AS realized_vol_5m
        FROM t
        WINDOW m1 AS (PARTITION BY symbol ORDER BY ts
                      RANGE BETWEEN INTERVAL '59999999 microseconds' PRECEDING AND CURRENT ROW),
               m5 AS (PARTITION BY symbol ORDER BY ts
                      RANGE BETWEEN INTERVAL '299999999 microseconds' PRECEDING AND CURRENT ROW))
      SELECT w.symbol, w.trade_id, w.ts, trades_1m, volume_1m, vwap_1m, imbalance_1m,
             realized_vol_5m,
             w.price / p1m.price - 1 AS ret_1m,
             w.price / p5m.price - 1 AS ret_5m,
             w.price / p1h.price - 1 AS ret_1h
      FROM w
      ASOF LEFT JOIN silver.trades p1m
        ON w.symbol = p1m.symbol AND w.ts - INTERVAL 1 MINUTE >= p1m.ts
      ASOF LEFT JOIN silver.trades p5m
        ON w.symbol = p5m.symbol AND w.ts - INTERVAL 5 MINUTE >= p5m.ts
      ASOF LEFT JOIN silver.trades p1h
        ON w.symbol = p1h.symbol AND w.ts - INTERVAL 1 HOUR >= p1h.ts
      ORDER BY w.symbol, w.ts

  - name: gold_trade_labels
    description: The return 10 seconds after each trade (the last price at or before t + 10s).
    output: gold.trade_labels
    sql: |
      SELECT t.symbol, t.trade_id, t.ts,
             f.price / t.price - 1 AS fut_ret_10s,
             CAST(sign(f.price - t.price) AS INTEGER) AS fut_direction
      FROM silver.trades t
      ASOF JOIN silver.trades f ON t.symbol = f.symbol AND t.ts + INTERVAL 10 SECOND >= f.ts
      WHERE t.ts + INTERVAL 10 SECOND <= (SELECT max(ts) FROM silver.trades s
                                          WHERE s.symbol = t.symbol)
      ORDER BY t.symbol, t.ts
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
  if (options.template_name != "shop" && options.template_name != "markets") {
    return arrow::Status::Invalid("unknown template '", options.template_name,
                                  "'; the templates are 'shop' (the default: an e-commerce "
                                  "shop) and 'markets' (trades for a trading model)");
  }
  fs::create_directories(root / "definitions", ec);
  if (ec) return arrow::Status::IOError("cannot create ", root.string(), ": ", ec.message());

  std::string project = options.project.empty() ? root.filename().string() : options.project;
  const bool markets = options.template_name == "markets";
  std::string config = kConfigTemplate;
  config.replace(config.find("{{PROJECT}}"), 11, project);
  const std::string ts_field = markets ? "ts" : "event_ts";
  config.replace(config.find("{{TIMESTAMP_FIELD}}"), 19, ts_field);

  InitResult result;
  result.root = root.string();
  auto write = [&](const std::string& rel, const std::string& text) -> arrow::Status {
    ARROW_RETURN_NOT_OK(WriteText(root / rel, text));
    result.files_written.push_back(rel);
    return arrow::Status::OK();
  };
  const int64_t as_of_ms = options.as_of_ms ? *options.as_of_ms
                           : options.clock  ? options.clock->NowMillis()
                                            : Clock::System()->NowMillis();
  const int64_t anchor_s = as_of_ms >= 0 ? as_of_ms / 1000 : -((-as_of_ms + 999) / 1000);
  ARROW_RETURN_NOT_OK(write("stratalake.yaml", config));
  ARROW_RETURN_NOT_OK(write(".gitignore", kGitignore));
  if (markets) {
    ARROW_RETURN_NOT_OK(write("definitions/entities.yaml", Expand(kMarketsEntities)));
    ARROW_RETURN_NOT_OK(write("definitions/sources.yaml", Expand(kMarketsSources)));
    ARROW_RETURN_NOT_OK(write("definitions/feature_views.yaml", Expand(kMarketsFeatureViews)));
    ARROW_RETURN_NOT_OK(
        write("definitions/feature_services.yaml", Expand(kMarketsFeatureServices)));
    ARROW_RETURN_NOT_OK(write("definitions/pipelines.yaml", Expand(kMarketsPipelines)));
    SampleTradesOptions trades;
    trades.seed = options.seed;
    trades.anchor_s = anchor_s;
    ARROW_ASSIGN_OR_RAISE(auto messages, GenerateSampleTrades(trades));
    std::string jsonl;
    jsonl.reserve(messages.size() * 160);
    for (const auto& m : messages) (jsonl += m.json) += '\n';
    fs::create_directories(root / "data", ec);
    if (ec) return arrow::Status::IOError("cannot create ", (root / "data").string());
    ARROW_RETURN_NOT_OK(write("data/trades.jsonl", jsonl));
    return result;
  }
  ARROW_RETURN_NOT_OK(write("definitions/entities.yaml", Expand(kEntities)));
  ARROW_RETURN_NOT_OK(write("definitions/sources.yaml", Expand(kSources)));
  ARROW_RETURN_NOT_OK(write("definitions/feature_views.yaml", Expand(kFeatureViews)));
  ARROW_RETURN_NOT_OK(write("definitions/feature_services.yaml", Expand(kFeatureServices)));
  ARROW_RETURN_NOT_OK(write("definitions/pipelines.yaml", Expand(kPipelines)));

  SampleDataOptions sample;
  sample.customers = options.customers;
  sample.seed = options.seed;
  sample.anchor_s = anchor_s;
  ARROW_ASSIGN_OR_RAISE(auto summary, WriteSampleData((root / "data").string(), sample));
  for (const auto& [file, rows] : summary) result.files_written.push_back("data/" + file);
  return result;
}

}  // namespace stratalake::repo
