#!/usr/bin/env bash
# The end-to-end demo on the embedded default (a local folder, no servers):
#  1. a feature repository: `stratalake init` in a temporary folder, apply the
#     definitions to the registry, ingest the sample data into bronze/silver
#     Delta tables (quarantining malformed rows), run the SQL pipelines bronze ->
#     silver -> gold, edit a definition, plan, apply,
#     look at both registry versions, build and save a point-in-time-correct
#     training set and recreate it exactly after new data arrived, materialize
#     the online store (and repair it after a DELETE), push live rows, and query
#     the feature server over HTTP;
#  2. the Delta engine: create, write, update, merge, time-travel, optimize and
#     vacuum a table, then show that delta-rs (the `deltalake` package) reads it;
#  3. a trading model on streamed market data: `stratalake init --template
#     markets`, a real Kafka broker (scripts/kafka.sh), generated trades produced
#     to its topic (`stream produce-sample`), `stratalake stream` writing them
#     online and exactly once to bronze while they arrive, a clean stop and a
#     restart, dead letters, SQL pipelines to gold features and labels, a
#     training set, and online == offline.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
S="$root/build/bin/stratalake"
work="$root/demo-data"
rm -rf "$work" && mkdir -p "$work"
table="$work/orders"
step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

printf '\n\033[1m######## Part 1: a feature repository ########\033[0m\n'
repo="$(mktemp -d)/shop"
step "create a feature repository with generated e-commerce sample data" "$S" init "$repo"
cd "$repo"
step "its configuration" cat stratalake.yaml
step "validate the definitions and see what apply would register" "$S" plan
step "apply: one atomic registry version" "$S" apply --message "initial definitions"
step "ingest customers (CSV) into bronze, typed by the declared schema" "$S" ingest customers data/customers.csv
step "ingest orders (CSV, with late-arriving and corrected rows)" "$S" ingest orders data/orders.csv
step "clicks (JSON lines) hold 4 malformed rows: the load is refused, nothing is written" \
  bash -c "'$S' ingest clicks data/clicks.jsonl || true"
step "with --quarantine the good rows load and the bad ones go to a quarantine table" \
  "$S" ingest clicks data/clicks.jsonl --quarantine
step "ingest the churn labels (Parquet) into silver" "$S" ingest churn_labels data/churn_labels.parquet
step "pipelines: what would run, bronze -> silver -> gold (definitions/pipelines.yaml)" \
  "$S" run --all --plan
step "run them: one Delta commit each, in dependency order (gold.customer_daily_stats feeds customer_stats)" "$S" run --all
step "SQL over the lake: the top customers by lifetime value" \
  "$S" sql "SELECT customer_id, lifetime_value, clicks_7d, spend_rank FROM gold.customer_value ORDER BY spend_rank LIMIT 5"
step "the offline store's tables" "$S" tables
step "the registered feature views" "$S" feature-views list
step "edit a definition: customer_stats ttl 2d -> 3d" sed -i 's/    ttl: 2d/    ttl: 3d/' definitions/feature_views.yaml
step "plan shows the change field by field" "$S" plan
step "apply it as registry version 2" "$S" apply --message "customer_stats: ttl 3d"
step "registry history" "$S" registry history
step "customer_stats as registry version 1 knew it" "$S" feature-views describe customer_stats --registry-version 1
step "a point-in-time-correct training set: churn labels joined with the churn_model features" \
  "$S" get-historical --entities data/churn_labels.parquet --timestamp-column label_ts \
  --feature-service churn_model --output train.parquet --save-as churn_train
step "a few of its rows" "$S" table read lake/datasets/churn_train --limit 5
step "the saved dataset's manifest pins the registry version and every source's Delta version" \
  "$S" datasets describe churn_train
step "new data arrives: the orders are loaded again (a second append to bronze/orders)" \
  "$S" ingest orders data/orders.csv
step "recreate the saved dataset: identical to the saved rows despite the new data" \
  "$S" datasets recreate churn_train
step "materialize the latest feature values into the online store (embedded RocksDB)" \
  "$S" materialize "$(date -u -d '1 year ago' +%Y-%m-%dT00:00:00Z)" now
step "materialize-incremental reads only what was committed since (nothing here)" \
  "$S" materialize-incremental now
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
printf 'customer_id,page,dwell_ms,event_ts\n17,/cart,5200,%s\n42,/checkout,800,%s\n' "$now" "$now" > live_clicks.csv
step "push live clicks: online for serving, and appended to the push source's Delta table" \
  "$S" push clicks_stream live_clicks.csv --to online_and_offline
step "read feature vectors from the CLI (the sample data ends yesterday: values within their TTL)" \
  "$S" get-online --feature-service churn_model --entity customer_id=17,42,99999
step "customer 42 asks to be forgotten: a Delta DELETE on the customers source" \
  "$S" table delete lake/bronze/customers --where "customer_id = 42"
step "materialize-incremental repairs the keys whose rows were deleted" \
  "$S" materialize-incremental now --views customer_profile
step "customer 42's profile is gone online too (NOT_FOUND), as in a training set now" \
  "$S" get-online --features customer_profile:country,customer_profile:segment --entity customer_id=17,42
# The feature server on a free local port; its first line names the port.
"$S" serve --port 0 > serve.log 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "http://" serve.log && break; sleep 0.1; done
port="$(grep -o '127.0.0.1:[0-9]*' serve.log | head -1 | cut -d: -f2)"
printf '\n\033[1m== the feature server (Feast-compatible HTTP/JSON)\033[0m\n'; head -1 serve.log
step "GET /health" curl -s "http://127.0.0.1:$port/health"
echo
cat > request.json <<'JSON'
{"features": ["customer_profile:country", "customer_profile:segment", "customer_stats:spend_30d",
              "live_clicks:page", "live_clicks:dwell_ms"],
 "entities": {"customer_id": [17, 42, 99999]}}
JSON
cat > show.py <<'PY'
import json, sys
r = json.load(sys.stdin)
names = r["metadata"]["feature_names"]
for row in range(len(r["results"][0]["values"])):
    print("  " + ", ".join(f"{n}={res['values'][row]!r} ({res['statuses'][row]})"
                           for n, res in zip(names, r["results"])))
PY
step "POST /get-online-features (request.json), response shown row by row" \
  bash -c "curl -s http://127.0.0.1:$port/get-online-features -d @request.json | '$root/.venv/bin/python' show.py"
step "POST /get-online-features with an unknown feature: a clear 404" \
  curl -s -w ' (HTTP %{http_code})\n' "http://127.0.0.1:$port/get-online-features" \
  -d '{"features": ["customer_profile:height"], "entities": {"customer_id": [17]}}'
step "GET /metrics (Prometheus text, excerpt)" \
  bash -c "curl -s http://127.0.0.1:$port/metrics | grep -E '^stratalake_(requests_total|store_keys_read_total|registry_version)'"
kill -TERM "$server_pid"; wait "$server_pid" || true; trap - EXIT
printf 'server stopped (SIGTERM drains in-flight requests)\n'
step "removing a feature breaks the backward-compatibility policy: apply refuses" \
  bash -c "sed -i '/spend_7d/d' definitions/feature_views.yaml && ('$S' apply || true)"
cd "$root"
printf '\nFeature repository left at %s\n' "$repo"

printf '\n\033[1m######## Part 2: the Delta engine ########\033[0m\n'

.venv/bin/python - "$work" <<'PY'
import sys, pyarrow as pa, pyarrow.parquet as pq, datetime as dt
work = sys.argv[1]
ts = lambda d, h: dt.datetime(2024, 1, d, h, tzinfo=dt.timezone.utc)
pq.write_table(pa.table({
    "order_id": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
    "customer": ["ada", "bob", "ada", "cy", "bob", "dee"],
    "country": ["DE", "US", "DE", "FR", "US", "FR"],
    "amount": [12.5, 80.0, 7.25, 42.0, 19.9, 5.0],
    "ts": pa.array([ts(1, 9), ts(1, 12), ts(2, 8), ts(2, 17), ts(3, 10), ts(3, 11)]),
}), f"{work}/orders_day1.parquet")
pq.write_table(pa.table({
    "order_id": pa.array([5, 7], pa.int64()),
    "customer": ["bob", "eve"],
    "country": ["US", "DE"],
    "amount": [25.0, 60.0],
    "ts": pa.array([ts(3, 10), ts(4, 9)]),
}), f"{work}/orders_fix.parquet")
pq.write_table(pa.table({
    "order_id": pa.array([8], pa.int64()),
    "customer": ["mal"],
    "country": ["US"],
    "amount": [-3.0],
    "ts": pa.array([ts(5, 9)]),
}), f"{work}/orders_bad.parquet")
PY

step "create a table partitioned by country, with a CHECK constraint" \
  "$S" table create "$table" --schema "order_id:long not null,customer:string,country:string,amount:double,ts:timestamp" \
  --partition-by country --property delta.constraints.positive_amount="amount > 0" --description "demo orders"
step "append the first day's orders" "$S" table write "$table" --input "$work/orders_day1.parquet"
step "read them back" "$S" table read "$table"
step "a selective read: partition pruning and statistics skip files" \
  "$S" table files "$table" --filter "country = 'DE' AND amount > 10"
step "update: 10% discount for ada" "$S" table update "$table" --where "customer = 'ada'" --set "amount = amount * 0.9"
step "merge (upsert) a correction for order 5 and a new order 7" \
  "$S" table merge "$table" --source "$work/orders_fix.parquet" --on order_id --update-all --insert
step "delete the small orders" "$S" table delete "$table" --where "amount < 6"
step "a write that breaks the CHECK constraint is refused (and nothing is committed)" \
  bash -c "$S table write '$table' --input '$work/orders_bad.parquet' || true"
step "history" "$S" table history "$table"
step "time travel: the table as of version 1" "$S" table read "$table" --version 1
step "compact small files (OPTIMIZE, Z-ordered by customer)" "$S" table optimize "$table" --zorder-by customer
step "restore version 2" "$S" table restore "$table" --version 2
step "vacuum: a dry run with the 7-day default retention keeps everything" "$S" table vacuum "$table" --dry-run
step "vacuum below the retention threshold is refused without --force" \
  bash -c "$S table vacuum '$table' --retention-hours 0 || true"
step "forced vacuum with 0 hours retention deletes unreferenced files" "$S" table vacuum "$table" --retention-hours 0 --force
step "the latest version still reads" "$S" table read "$table"
step "delta-rs (the deltalake package) reads the same table" \
  .venv/bin/python -c "import deltalake; t = deltalake.DeltaTable('$table'); import pyarrow as pa; n = pa.table(deltalake.QueryBuilder().register('t', t).execute('SELECT count(*) AS n FROM t').read_all())['n'][0].as_py(); print('deltalake sees version', t.version(), 'with', n, 'rows')"
printf '\nDemo table left at %s\n' "$table"

printf '\n\033[1m######## Part 3: a trading model on streamed market data ########\033[0m\n'
# A real broker (Apache Kafka in KRaft mode, scripts/kafka.sh), stopped however the demo ends.
kafka_dir="$(mktemp -d)"
trap '"$root/scripts/kafka.sh" stop "$kafka_dir" || true' EXIT
step "start a throwaway Kafka broker" "$root/scripts/kafka.sh" start "$kafka_dir"
brokers="127.0.0.1:$(cat "$kafka_dir/port")"
srepo="$work/markets"
step "a repository for a trading model: generated BTCUSDT/ETHUSDT trades, a kafka source, SQL features" \
  "$S" init "$srepo" --template markets
cd "$srepo"
export KAFKA_BROKERS="$brokers"
step "the kafka source: its topic lands in bronze/trades, last_trade goes online as trades arrive" \
  sed -n '/- name: trades/,/allowed_lateness/p' definitions/sources.yaml
step "apply" "$S" apply
# The producer creates the topic, then sends the trades at 10,000 a second; the
# stream starts a moment later and reads them as they come.
"$S" stream produce-sample --rate 10000 --partitions 2 >produce.out 2>&1 &
producer_pid=$!
trap 'kill "$producer_pid" "${stream_pid:-}" 2>/dev/null || true; "$root/scripts/kafka.sh" stop "$kafka_dir" || true' EXIT
printf '\n\033[1m== produce the trades (stream produce-sample --rate 10000) and stream them\033[0m\n'
sleep 1
"$S" stream --commit-interval-ms 500 >stream.out 2>stream.err &
stream_pid=$!
sleep 1.5
step "while the trades stream in: the latest trade per symbol, online" \
  "$S" get-online --features last_trade --entity symbol=BTCUSDT,ETHUSDT
sleep 1
step "a second later: newer trades" \
  "$S" get-online --features last_trade --entity symbol=BTCUSDT,ETHUSDT
wait "$producer_pid"
cat produce.out
step "stop the stream with SIGTERM: it commits what it read, then exits" kill -TERM "$stream_pid"
wait "$stream_pid"
cat stream.out
step "a restart reads what was left and stops at the end (exactly once: positions are in bronze's commits)" \
  "$S" stream --stop-at-end
step "two malformed messages" bash -c \
  "printf '%s\n' '{\"symbol\": \"BTCUSDT\", \"ts\": oops}' '{\"symbol\": \"ETHUSDT\", \"trade_id\": 1, \"ts\": \"2026-01-01T00:00:00Z\", \"price\": \"a lot\"}' | '$S' stream produce - --topic trades --brokers '$brokers'"
step "the stream quarantines them with their raw bytes and reasons" "$S" stream --stop-at-end
"$S" table read lake/quarantine/trades_dead_letters --columns kafka_partition,kafka_offset,reason
step "bronze -> silver -> gold (definitions/pipelines.yaml): returns, lags, spreads, windows, labels" \
  "$S" run --all
step "features per trade: returns, the 5-trade lag, the 30-trade volume average, spread and its regime" \
  "$S" sql "SELECT symbol, trade_id, price, ret_1, price_lag5, volume_ma30, spread_bps, spread_regime FROM gold.trade_features WHERE trade_id > 5 ORDER BY ts DESC LIMIT 4"
step "labels: the return 10 seconds after each trade" \
  "$S" sql "SELECT symbol, ts, fut_ret_10s FROM gold.trade_labels" --output labels.parquet
step "a training set: the labels joined point-in-time with the trade_model service" \
  "$S" get-historical --entities labels.parquet --timestamp-column ts \
  --feature-service trade_model --output train.parquet
"$root/.venv/bin/python" -c "import pyarrow.parquet as pq; print(pq.read_table('train.parquet').to_pandas().sample(4, random_state=1).T.to_string())"
step "materialize the gold features into the online store" \
  "$S" materialize "$(date -u -d '3 days ago' +%Y-%m-%dT00:00:00Z)" now
# Offline at the end of the data vs online now: the same values, feature by feature.
"$S" get-online --feature-service trade_model --entity symbol=BTCUSDT,ETHUSDT --json >online.json
"$S" get-online --features last_trade --entity symbol=BTCUSDT,ETHUSDT --json >online_last.json
"$root/.venv/bin/python" - "$(date -u +%Y-%m-%dT00:00:00Z)" <<'PY'
import sys, pyarrow as pa, pyarrow.parquet as pq, datetime as dt
end = dt.datetime.fromisoformat(sys.argv[1].replace("Z", "+00:00"))
pq.write_table(pa.table({"symbol": ["BTCUSDT", "ETHUSDT"],
                         "ts": pa.array([end, end], pa.timestamp("us", tz="UTC"))}), "at_end.parquet")
PY
"$S" get-historical --entities at_end.parquet --timestamp-column ts --feature-service trade_model \
  --output offline.parquet >/dev/null
cat > agree.py <<'PY'
import json, pyarrow.parquet as pq
def online(path):
    r = json.load(open(path))
    names = r["metadata"]["feature_names"]
    return [dict(zip(names, row)) for row in zip(*[x["values"] for x in r["results"]])]
offline = pq.read_table("offline.parquet").to_pylist()
checked = 0
for on, off in zip(online("online.json"), offline):
    for name, value in on.items():
        assert value == off[name], (on["symbol"], name, value, off[name])
        checked += 1
print(f"online == offline: {checked} values of trade_model for BTCUSDT and ETHUSDT agree")
for row in online("online_last.json"):
    print(f"  {row['symbol']}: last trade {row['trade_id']} at {row['price']} ({row['side']}), streamed online")
PY
step "online (served now) and offline (a training row at the end of the data) agree" \
  "$root/.venv/bin/python" agree.py
# Window features computed by the stream itself: trade_activity declares aggregations
# on the kafka source (docs/windows.md), kept online in tiles as trades arrive. The
# sample ends at midnight, so send 10 more minutes of the series, ending now.
step "trade_activity: window aggregations declared on the kafka source" \
  sed -n '/- name: trade_activity/,/last_price_5m/p' definitions/feature_views.yaml
"$S" stream --commit-interval-ms 300 >stream_live.out 2>stream_live.err &
stream_pid=$!
live_end="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
live_start="$(date -u -d "$live_end - 10 minutes" '+%Y-%m-%d %H:%M:%S')"
step "while the stream runs: 10 minutes of trades ending now (produce-sample --end-at)" \
  "$S" stream produce-sample --end-at "$live_end" --minutes 10 | tee live_produced.txt
live_n="$(sed -n 's/^produced \([0-9]*\) sample trades.*/\1/p' live_produced.txt)"
# Wait until the stream has committed them all to bronze (it writes the tiles before it
# commits), so that the training set below sees the same trades as the online store.
for _ in $(seq 1 200); do
  "$S" sql "SELECT count(*) AS n FROM bronze.trades WHERE ts >= TIMESTAMPTZ '$live_start+00'" \
    --output live_n.csv >/dev/null
  [ "$(tail -n 1 live_n.csv)" = "$live_n" ] && break
  sleep 0.25
done
step "the stream still running: trade_activity online, now (the service trade_activity_live)" \
  "$S" get-online --feature-service trade_activity_live --entity symbol=BTCUSDT,ETHUSDT
"$S" get-online --feature-service trade_activity_live --entity symbol=BTCUSDT,ETHUSDT --json >live.json
# A training row for each symbol at the instant those values were computed for.
"$root/.venv/bin/python" - <<'PY'
import json, pyarrow as pa, pyarrow.parquet as pq, datetime as dt
r = json.load(open("live.json"))
when = {t for x in r["results"][1:] for t in x["event_timestamps"]}
assert len(when) == 1, when
at = dt.datetime.fromisoformat(when.pop().replace("Z", "+00:00"))
pq.write_table(pa.table({"symbol": ["BTCUSDT", "ETHUSDT"],
                         "ts": pa.array([at, at], pa.timestamp("us", tz="UTC"))}), "at_live.parquet")
PY
"$S" get-historical --entities at_live.parquet --timestamp-column ts \
  --feature-service trade_activity_live --output live_offline.parquet >/dev/null
cat > agree_live.py <<'PY'
import json, pyarrow.parquet as pq
r = json.load(open("live.json"))
names = r["metadata"]["feature_names"]
online = [dict(zip(names, row)) for row in zip(*[x["values"] for x in r["results"]])]
at = r["results"][1]["event_timestamps"][0]
offline = pq.read_table("live_offline.parquet").to_pylist()
checked = 0
for on, off in zip(online, offline):
    assert on["trade_count_1m"] > 0, on
    for name, value in on.items():
        assert value == off[name], (on["symbol"], name, value, off[name])
        checked += 1
print(f"at {at}: online == training set, {checked} values, bit for bit")
for on in online:
    print(f"  {on['symbol']}: {on['trade_count_1m']} trades in the last minute, "
          f"buy {on['buy_qty_1m']:.5f} / sell {on['sell_qty_1m']:.5f}, "
          f"5m range {on['low_5m']:.2f}..{on['high_5m']:.2f}, last {on['last_price_5m']:.2f}")
PY
step "the same instant offline (get-historical for a row at that time): equal to the last bit" \
  "$root/.venv/bin/python" agree_live.py
step "stop the stream" kill -TERM "$stream_pid"
wait "$stream_pid"
cd "$root"
"$root/scripts/kafka.sh" stop "$kafka_dir"
trap - EXIT
