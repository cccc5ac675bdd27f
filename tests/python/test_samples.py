"""The samples of `stratalake init`: the markets template (trades, SQL features, labels 10 s
ahead, a training set) checked against an oracle written independently here with pandas
and numpy from data/trades.jsonl, its Kafka path (`stream produce-sample` -> `stream` ->
the same bronze rows), its streamed window aggregations (trade_activity: online at an
instant == the training set at that instant == pandas), and the shop's gold.customer_daily_stats computed by its SQL
transformation equal to the generator's own Parquet file.

Float columns that aggregate many values (moving averages, window sums, VWAP, volatility)
are compared to a relative 1e-9: DuckDB's window aggregates add in segment-tree order,
not row order, so the last bits can differ from any sequential sum. Everything else
(row sets, keys, times, prices, returns, lags, spreads, regimes, counts, as-of picks,
labels) is compared exactly.

The Kafka test uses STRATALAKE_TEST_KAFKA_BROKERS (`make test` starts a broker) or starts
one with scripts/kafka.sh."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import stratalake
from conftest import BIN
from kafka_fixtures import running_broker, suite_brokers

AS_OF = "2026-12-07"
EXACT = ["price", "volume", "ret_1", "ret_5", "price_lag5", "ret_1_lag5", "spread_bps",
         "spread_regime", "trades_1m", "ret_1m", "ret_5m", "ret_1h"]
CLOSE = ["volume_ma30", "volume_1m", "vwap_1m", "imbalance_1m", "realized_vol_5m"]


def sl(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN), *args, "--repo", str(repo)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"stratalake {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    return proc


def init_markets(path: Path, *extra: str) -> Path:
    subprocess.run([str(BIN), "init", str(path), "--template", "markets", "--as-of", AS_OF,
                    *extra], check=True, capture_output=True, text=True)
    return path


def read_trades(path: Path) -> pd.DataFrame:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    df = pd.DataFrame(rows)
    df["ts"] = pd.to_datetime(df["ts"], utc=True).astype("datetime64[us, UTC]")
    return df


def oracle(trades: pd.DataFrame) -> pd.DataFrame:
    """Per trade: the features of trade_signals and trade_windows, and the label."""
    out = []
    for symbol, g in trades.groupby("symbol", sort=True):
        g = g.sort_values("ts").reset_index(drop=True)
        ts = g["ts"].astype("int64").to_numpy()  # µs since the epoch
        assert (np.diff(ts) > 0).all()  # the generator's promise: strictly increasing
        price, qty = g["price"].to_numpy(), g["qty"].to_numpy()
        n = len(g)
        f = pd.DataFrame({"symbol": symbol, "trade_id": g["trade_id"], "ts": g["ts"]})
        f["price"] = price
        f["volume"] = qty
        prev = np.r_[np.nan, price[:-1]]
        ret_1 = price / prev - 1
        f["ret_1"] = ret_1
        lag5 = np.r_[[np.nan] * 5, price[:-5]]
        f["ret_5"] = price / lag5 - 1
        f["price_lag5"] = lag5
        f["ret_1_lag5"] = np.r_[[np.nan] * 5, ret_1[:-5]]
        f["volume_ma30"] = [qty[max(0, i - 29):i + 1].mean() for i in range(n)]
        ask, bid = g["ask"].to_numpy(), g["bid"].to_numpy()
        spread = (ask - bid) / ((ask + bid) / 2) * 10000
        f["spread_bps"] = spread
        f["spread_regime"] = np.where(spread < 0.5, "tight", np.where(spread < 2, "normal", "wide"))
        us = 1_000_000
        # (t - w, t]: the first trade after t - w through the trade itself.
        lo1 = np.searchsorted(ts, ts - 60 * us, side="right")
        lo5 = np.searchsorted(ts, ts - 300 * us, side="right")
        f["trades_1m"] = np.arange(n) + 1 - lo1
        signed = np.where(g["side"].to_numpy() == "buy", qty, -qty)
        vol1 = [qty[lo1[i]:i + 1].sum() for i in range(n)]
        f["volume_1m"] = vol1
        f["vwap_1m"] = [(price[lo1[i]:i + 1] * qty[lo1[i]:i + 1]).sum() / vol1[i] for i in range(n)]
        f["imbalance_1m"] = [signed[lo1[i]:i + 1].sum() / vol1[i] for i in range(n)]
        sq = np.nan_to_num(ret_1 * ret_1)  # SQL's sum skips the first trade's null...
        f["realized_vol_5m"] = [np.sqrt(sq[lo5[i]:i + 1].sum()) if i > 0 else np.nan
                                for i in range(n)]  # ...and is null when all are
        for name, secs in [("ret_1m", 60), ("ret_5m", 300), ("ret_1h", 3600)]:
            j = np.searchsorted(ts, ts - secs * us, side="right") - 1  # last at or before
            f[name] = np.where(j >= 0, price / price[np.maximum(j, 0)] - 1, np.nan)
        k = np.searchsorted(ts, ts + 10 * us, side="right") - 1
        f["fut_ret_10s"] = price[k] / price - 1
        f["fut_direction"] = np.sign(price[k] - price).astype(np.int32)
        f["labelled"] = ts + 10 * us <= ts[-1]
        out.append(f)
    return pd.concat(out, ignore_index=True)


def online_rows(response: dict) -> dict:
    """The feature server's JSON as {symbol: {feature: value}}."""
    names = response["metadata"]["feature_names"]
    columns = [r["values"] for r in response["results"]]
    return {row[0]: dict(zip(names, row)) for row in zip(*columns)}


def assert_columns(got: pd.DataFrame, want: pd.DataFrame, exact, close):
    for c in exact:
        a, b = got[c].to_numpy(dtype=object), want[c].to_numpy(dtype=object)
        bad = [i for i in range(len(a)) if not (a[i] == b[i] or (pd.isna(a[i]) and pd.isna(b[i])))]
        assert not bad, f"{c}: {len(bad)} rows differ, first {bad[0]}: {a[bad[0]]!r} != {b[bad[0]]!r}"
    for c in close:
        a, b = got[c].to_numpy(dtype=float), want[c].to_numpy(dtype=float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), c
        m = ~np.isnan(a)
        np.testing.assert_allclose(a[m], b[m], rtol=1e-9, atol=0, err_msg=c)


def test_markets_init_is_deterministic_and_anchored(tmp_path: Path):
    a = init_markets(tmp_path / "a")
    b = init_markets(tmp_path / "b")
    c = init_markets(tmp_path / "c", "--as-of", "2026-12-09T15:00:00Z")
    text = (a / "data" / "trades.jsonl").read_text()
    assert text == (b / "data" / "trades.jsonl").read_text()
    ta, tc = read_trades(a / "data" / "trades.jsonl"), read_trades(c / "data" / "trades.jsonl")
    # Another anchor day: the same trades, two days later.
    assert (tc["ts"] - ta["ts"] == pd.Timedelta(days=2)).all()
    assert tc.drop(columns="ts").equals(ta.drop(columns="ts"))
    # Two hours of trades ending just before the anchor's midnight, in time order.
    assert ta["ts"].min() >= pd.Timestamp("2026-12-06T22:00:00Z")
    assert ta["ts"].max() < pd.Timestamp("2026-12-07T00:00:00Z")
    assert ta["ts"].is_monotonic_increasing
    assert sorted(ta["symbol"].unique()) == ["BTCUSDT", "ETHUSDT"]
    for _, g in ta.groupby("symbol"):
        assert g["trade_id"].tolist() == list(range(1, len(g) + 1))
    assert set(ta["side"]) == {"buy", "sell"}
    assert ((ta["bid"] < ta["ask"]) & ((ta["price"] == ta["bid"]) | (ta["price"] == ta["ask"]))).all()
    assert (ta["price"] == ta["ask"]).eq(ta["side"] == "buy").all()
    assert len(ta) == 41997  # seed 42
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert files == [".gitignore", "data/trades.jsonl", "definitions/entities.yaml",
                     "definitions/feature_services.yaml", "definitions/feature_views.yaml",
                     "definitions/pipelines.yaml", "definitions/sources.yaml", "stratalake.yaml"]
    # The same from Python; and an unknown template is a clear error (nothing created).
    store = stratalake.init(tmp_path / "py", template="markets", seed=7)
    assert store.project == "py"
    assert (tmp_path / "py" / "data" / "trades.jsonl").read_text() != ""
    with pytest.raises(stratalake.StrataLakeError, match="unknown template 'fx'; the templates "
                       "are 'shop'"):
        stratalake.init(tmp_path / "fx", template="fx")
    assert not (tmp_path / "fx").exists()
    bad = subprocess.run([str(BIN), "init", str(tmp_path / "fx"), "--template", "fx"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown template 'fx'" in bad.stderr


def test_markets_pipelines_and_training_set_match_the_oracle(tmp_path: Path):
    repo = init_markets(tmp_path / "markets")
    sl(repo, "apply")
    sl(repo, "ingest", "trades", str(repo / "data" / "trades.jsonl"))
    runs = json.loads(sl(repo, "run", "--all", "--json").stdout)
    assert [r["name"] for r in runs] == ["silver_trades", "gold_trade_features",
                                         "gold_trade_windows", "gold_trade_labels"]
    want = oracle(read_trades(repo / "data" / "trades.jsonl"))
    assert [r["rows"] for r in runs] == [len(want)] * 3 + [int(want["labelled"].sum())]

    store = stratalake.FeatureStore(repo)
    labels = store.sql("SELECT symbol, ts, fut_ret_10s, fut_direction FROM gold.trade_labels "
                       "ORDER BY symbol, ts").to_pandas()
    lw = want[want["labelled"]].reset_index(drop=True)
    assert labels["symbol"].tolist() == lw["symbol"].tolist()
    assert (labels["ts"].to_numpy() == lw["ts"].to_numpy()).all()
    assert labels["fut_ret_10s"].tolist() == lw["fut_ret_10s"].tolist()
    assert labels["fut_direction"].tolist() == lw["fut_direction"].tolist()

    # The training set: labels as the entity rows, the trade_model service's features
    # point-in-time (each label row gets its own trade's features).
    entity = tmp_path / "labels.parquet"
    sl(repo, "sql", "SELECT symbol, ts, fut_ret_10s FROM gold.trade_labels", "--output",
       str(entity))
    out = tmp_path / "train.parquet"
    sl(repo, "get-historical", "--entities", str(entity), "--timestamp-column", "ts",
       "--feature-service", "trade_model", "--output", str(out))
    train = pq.read_table(out).to_pandas()
    assert train.columns.tolist() == ["symbol", "ts", "fut_ret_10s", "price", "volume", "ret_1",
                                      "ret_5", "price_lag5", "ret_1_lag5", "volume_ma30",
                                      "spread_bps", "spread_regime", "trades_1m", "volume_1m",
                                      "vwap_1m", "imbalance_1m", "realized_vol_5m", "ret_1m",
                                      "ret_5m", "ret_1h"]
    train = train.sort_values(["symbol", "ts"]).reset_index(drop=True)
    assert train["symbol"].tolist() == lw["symbol"].tolist()
    assert (train["ts"].to_numpy() == lw["ts"].to_numpy()).all()
    assert train["fut_ret_10s"].tolist() == lw["fut_ret_10s"].tolist()
    assert_columns(train, lw, EXACT, CLOSE)
    # The sample is not degenerate: every regime occurs, the 1h return exists late on.
    assert set(train["spread_regime"]) == {"tight", "normal", "wide"}
    assert train["ret_1h"].notna().sum() > 10000 and train["ret_1h"].isna().sum() > 10000

    # Re-running is a no-op; the Python SDK's run says so too.
    assert [r["noop"] for r in store.run(all=True)] == [True] * 4


@pytest.fixture(scope="module")
def brokers():
    with running_broker(suite_brokers()) as address:
        yield address


def test_markets_stream_produce_sample(tmp_path: Path, brokers: str):
    """produce-sample -> Kafka -> stream: bronze holds exactly data/trades.jsonl's trades,
    last_trade online is each symbol's last trade, and the pipelines run on it."""
    repo = init_markets(tmp_path / "markets")
    topic = f"trades-{os.getpid()}-{tmp_path.name}"[-200:]
    sources = repo / "definitions" / "sources.yaml"
    sources.write_text(sources.read_text().replace("topic: trades", f"topic: {topic}"))
    env = dict(os.environ, KAFKA_BROKERS=brokers)
    run = lambda *a: subprocess.run([str(BIN), *a, "--repo", str(repo)], env=env, check=True,
                                    capture_output=True, text=True)
    run("apply")
    bad = subprocess.run([str(BIN), "stream", "produce-sample", "--rate", "fast", "--brokers",
                          brokers], capture_output=True, text=True)
    assert bad.returncode != 0
    assert "--rate must be a number of messages per second (0 = no limit), not 'fast'" in bad.stderr
    produced = subprocess.run([str(BIN), "stream", "produce-sample", "--topic", topic,
                               "--partitions", "2", "--as-of", AS_OF, "--json"], env=env,
                              check=True, capture_output=True, text=True)
    trades = read_trades(repo / "data" / "trades.jsonl")
    assert json.loads(produced.stdout) == {"produced": len(trades)}
    stats = json.loads(run("stream", "--stop-at-end", "--json").stdout)
    assert stats["rows_committed"] == len(trades) and stats["quarantined"] == 0

    bronze = stratalake.FeatureStore(repo).sql(
        "SELECT symbol, trade_id, ts, price, qty, side, bid, ask FROM bronze.trades "
        "ORDER BY ts, symbol").to_pandas()
    want = trades.sort_values(["ts", "symbol"]).reset_index(drop=True)
    for c in ["symbol", "trade_id", "price", "qty", "side", "bid", "ask"]:
        assert bronze[c].tolist() == want[c].tolist(), c
    assert (bronze["ts"].to_numpy() == want["ts"].to_numpy()).all()

    online = json.loads(run("get-online", "--features", "last_trade", "--entity",
                            "symbol=BTCUSDT,ETHUSDT", "--json").stdout)
    last = want.groupby("symbol").tail(1).set_index("symbol")
    got = online_rows(online)
    for symbol in ["BTCUSDT", "ETHUSDT"]:
        assert got[symbol]["trade_id"] == int(last.loc[symbol, "trade_id"])
        assert got[symbol]["price"] == float(last.loc[symbol, "price"])
        assert got[symbol]["side"] == last.loc[symbol, "side"]

    runs = json.loads(run("run", "--all", "--json").stdout)
    assert [r["rows"] for r in runs[:3]] == [len(trades)] * 3


ACTIVITY = ["trade_count_1m", "trade_count_5m", "qty_1m", "qty_5m", "buy_qty_1m", "sell_qty_1m",
            "mean_price_1m", "price_std_5m", "high_5m", "low_5m", "last_price_5m"]


def activity_oracle(trades: pd.DataFrame, symbol: str, at: pd.Timestamp) -> dict:
    """trade_activity's values for `symbol` at `at`, over (at - window, at], from pandas."""
    g = trades[trades["symbol"] == symbol].sort_values("ts")
    w1 = g[(g["ts"] > at - pd.Timedelta(minutes=1)) & (g["ts"] <= at)]
    w5 = g[(g["ts"] > at - pd.Timedelta(minutes=5)) & (g["ts"] <= at)]
    return {"trade_count_1m": len(w1), "trade_count_5m": len(w5),
            "qty_1m": float(w1["qty"].sum()) if len(w1) else None,
            "qty_5m": float(w5["qty"].sum()) if len(w5) else None,
            "buy_qty_1m": float(w1.loc[w1["side"] == "buy", "qty"].sum())
            if (w1["side"] == "buy").any() else None,
            "sell_qty_1m": float(w1.loc[w1["side"] == "sell", "qty"].sum())
            if (w1["side"] == "sell").any() else None,
            "mean_price_1m": float(w1["price"].mean()) if len(w1) else None,
            "price_std_5m": float(w5["price"].std(ddof=1)) if len(w5) > 1 else None,
            "high_5m": float(w5["price"].max()) if len(w5) else None,
            "low_5m": float(w5["price"].min()) if len(w5) else None,
            "last_price_5m": float(w5["price"].iloc[-1]) if len(w5) else None}


def test_markets_trade_activity_streamed_online_equals_training_set_and_pandas(
        tmp_path: Path, brokers: str):
    """trade_activity (window aggregations on the kafka source): 15 minutes of the sample's
    trades ending a second ago (`produce-sample --end-at`), streamed; `get-online` at the instant it
    reports (the pinned now) equals, exactly, `get-historical` for entity rows at that
    instant, and pandas over (t - window, t] (counts, min, max and last exactly; sums,
    means and standard deviations to 1e-9: numpy adds in another order)."""
    repo = init_markets(tmp_path / "markets")
    topic = f"activity-{os.getpid()}-{tmp_path.name}"[-200:]
    sources = repo / "definitions" / "sources.yaml"
    sources.write_text(sources.read_text().replace("topic: trades", f"topic: {topic}"))
    env = dict(os.environ, KAFKA_BROKERS=brokers)
    run = lambda *a: subprocess.run([str(BIN), *a, "--repo", str(repo)], env=env, check=True,
                                    capture_output=True, text=True)
    run("apply")
    # `produce-sample --end-at T --minutes 15`: the first 15 minutes of data/trades.jsonl's
    # series, moved to end just before T (a second ago).
    now = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(seconds=1)
    produced = subprocess.run([str(BIN), "stream", "produce-sample", "--topic", topic,
                               "--brokers", brokers, "--partitions", "2", "--minutes", "15",
                               "--end-at", now.strftime("%Y-%m-%dT%H:%M:%SZ"), "--json"],
                              check=True, capture_output=True, text=True)
    start = pd.Timestamp(AS_OF, tz="UTC") - pd.Timedelta(minutes=120)
    trades = read_trades(repo / "data" / "trades.jsonl")
    trades = trades[trades["ts"] < start + pd.Timedelta(minutes=15)].reset_index(drop=True)
    trades["ts"] = trades["ts"] + (now - pd.Timedelta(minutes=15) - start)
    assert json.loads(produced.stdout) == {"produced": len(trades)}
    stats = json.loads(run("stream", "--stop-at-end", "--json").stdout.strip().splitlines()[-1])
    assert stats["rows_committed"] == len(trades) and stats["quarantined"] == 0

    symbols = ["BTCUSDT", "ETHUSDT", "XRPUSDT"]  # the last has no trades: empty windows
    body = json.loads(run("get-online", "--feature-service", "trade_activity_live", "--entity",
                          "symbol=" + ",".join(symbols), "--json").stdout)
    names = body["metadata"]["feature_names"]
    assert names == ["symbol"] + ACTIVITY
    when = {t for r in body["results"][1:] for t in r["event_timestamps"]}
    assert len(when) == 1, when  # every value was computed for one instant: the pinned now
    at = pd.Timestamp(when.pop())
    assert now <= at
    online = online_rows(body)

    entities = tmp_path / "at.parquet"
    pd.DataFrame({"symbol": symbols, "ts": [at] * len(symbols)}).astype(
        {"ts": "datetime64[us, UTC]"}).to_parquet(entities)
    out = tmp_path / "offline.parquet"
    sl(repo, "get-historical", "--entities", str(entities), "--timestamp-column", "ts",
       "--feature-service", "trade_activity_live", "--output", str(out))
    offline = {r["symbol"]: r for r in pq.read_table(out).to_pylist()}
    for symbol in symbols:
        want = activity_oracle(trades, symbol, at)
        for f in ACTIVITY:
            got = online[symbol][f]
            assert got == offline[symbol][f], (symbol, f, got, offline[symbol][f])
            if f.startswith(("trade_count", "high", "low", "last")) or want[f] is None:
                assert got == want[f], (symbol, f, got, want[f])
            else:
                assert got == pytest.approx(want[f], rel=1e-9, abs=0), (symbol, f)
    for symbol in symbols[:2]:  # the windows were not empty
        assert online[symbol]["trade_count_1m"] > 10
        assert online[symbol]["buy_qty_1m"] > 0 and online[symbol]["sell_qty_1m"] > 0
    assert online["XRPUSDT"]["trade_count_5m"] == 0 and online["XRPUSDT"]["qty_5m"] is None


def test_shop_daily_stats_pipeline_equals_the_generated_file(tmp_path: Path):
    """gold_customer_daily_stats (SQL over bronze orders, bronze customers and silver
    clicks) computes exactly the rows the generator writes to customer_daily_stats.parquet,
    and customer_stats serves them."""
    repo = tmp_path / "shop"
    subprocess.run([str(BIN), "init", str(repo), "--customers", "150", "--as-of", "2026-09-01"],
                   check=True, capture_output=True)
    sl(repo, "apply")
    sl(repo, "ingest", "customers", str(repo / "data" / "customers.csv"))
    sl(repo, "ingest", "orders", str(repo / "data" / "orders.csv"))
    sl(repo, "ingest", "clicks", str(repo / "data" / "clicks.jsonl"), "--quarantine")
    runs = json.loads(sl(repo, "run", "--all", "--json").stdout)
    assert [r["name"] for r in runs] == ["silver_orders", "silver_clicks", "gold_customer_value",
                                         "gold_customer_daily_stats"]
    got = stratalake.DeltaTable(str(repo / "lake" / "gold" / "customer_daily_stats")).to_pyarrow_table()
    want = pq.read_table(repo / "data" / "customer_daily_stats.parquet")
    assert got.num_rows == want.num_rows > 0
    assert got.schema.names == want.schema.names
    for name in want.schema.names:
        assert got[name].to_pylist() == want[name].to_pylist(), name
    # The feature view on it: a point-in-time value is the pipeline's row of that midnight.
    row = want.slice(want.num_rows // 2, 1).to_pylist()[0]
    job = stratalake.FeatureStore(repo).get_historical_features(
        pd.DataFrame({"customer_id": [row["customer_id"]], "event_timestamp": [row["event_ts"]]}),
        ["customer_stats:spend_30d", "customer_stats:clicks_7d"])
    df = job.to_pandas()
    assert df["spend_30d"].tolist() == [row["spend_30d"]]
    assert df["clicks_7d"].tolist() == [row["clicks_7d"]]
