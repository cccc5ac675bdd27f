"""Pipelines end to end: bronze -> silver (dedupe, merge mode) -> gold (window
functions) through the `stratalake run` / `stratalake sql` CLI and the Python SDK,
with exact rows, no-op re-runs, an incremental run and a failing query."""
from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import stratalake
from conftest import BIN

UTC = dt.timezone.utc

PIPELINES = """\
transformations:
  - name: gold_customer
    output: gold.customer_orders
    sql: |
      SELECT customer_id, order_id, amount,
             sum(amount) OVER w AS running_spend,
             lag(amount) OVER w AS prev_amount,
             rank() OVER (ORDER BY amount DESC) AS amount_rank
      FROM silver.orders
      WINDOW w AS (PARTITION BY customer_id ORDER BY updated_at
                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
  - name: gold_totals
    output: gold.customer_totals
    schema:
      - {name: customer_id, type: int64, nullable: false}
      - {name: spend, type: float64}
      - {name: orders, type: int64}
      - {name: last_order, type: timestamp}
    sql: >
      SELECT customer_id, sum(amount) AS spend, count(*) AS orders,
             max(updated_at) AS last_order
      FROM silver.orders GROUP BY ALL
  - name: silver_orders
    output: silver.orders
    mode: merge
    keys: [order_id]
    order_by: updated_at
    sql: |
      SELECT order_id, customer_id, amount, status, updated_at
      FROM bronze.orders WHERE status <> 'test'
"""


def ts(day: int) -> dt.datetime:
    return dt.datetime(2026, 1, day, tzinfo=UTC) if day > 0 else dt.datetime(2025, 12, 31, tzinfo=UTC)


def bronze(rows):
    schema = pa.schema([("order_id", pa.int64()), ("customer_id", pa.int64()),
                        ("amount", pa.float64()), ("status", pa.string()),
                        ("updated_at", pa.timestamp("us", tz="UTC"))])
    return pa.Table.from_pylist([dict(zip(schema.names, r)) for r in rows], schema=schema)


def sl(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN), *args, "--repo", str(repo)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"stratalake {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    return proc


def sql_rows(repo: Path, tmp: Path, query: str):
    out = tmp / "result.parquet"
    sl(repo, "sql", query, "--output", str(out))
    return [tuple(r.values()) for r in pq.read_table(out).to_pylist()]


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    (root / "definitions").mkdir(parents=True)
    (root / "stratalake.yaml").write_text(
        "project: shop\noffline_store: {path: lake}\ndefinitions: [definitions]\n")
    (root / "definitions" / "pipelines.yaml").write_text(PIPELINES)
    stratalake.write_deltalake(str(root / "lake" / "bronze" / "orders"), bronze([
        (1, 10, 20.0, "placed", ts(1)),
        (2, 10, 5.0, "placed", ts(2)),
        (1, 10, 25.0, "paid", ts(3)),  # a later version of order 1
        (3, 20, 40.0, "placed", ts(2)),
        (4, 20, 1.0, "test", ts(4)),   # filtered out
    ]), mode="append")
    return root


def test_bronze_silver_gold_pipeline(repo: Path, tmp_path: Path):
    plan = json.loads(sl(repo, "run", "--all", "--plan", "--json").stdout)
    assert [(p["name"], p["stale"], p["reason"]) for p in plan] == [
        ("silver_orders", True, "never run"),
        ("gold_customer", True, "never run"),
        ("gold_totals", True, "never run"),
    ]
    assert plan[1]["upstream"] == ["silver_orders"] and plan[1]["inputs"] == ["silver/orders"]

    runs = json.loads(sl(repo, "run", "--all", "--json").stdout)
    assert [(r["name"], r["noop"], r["version"], r["rows"], r["inputs"]) for r in runs] == [
        ("silver_orders", False, 0, 3, {"bronze/orders": 0}),
        ("gold_customer", False, 0, 3, {"silver/orders": 0}),
        ("gold_totals", False, 0, 2, {"silver/orders": 0}),
    ]
    assert sql_rows(repo, tmp_path, "SELECT order_id, customer_id, amount, status FROM silver.orders "
                                    "ORDER BY order_id") == [
        (1, 10, 25.0, "paid"), (2, 10, 5.0, "placed"), (3, 20, 40.0, "placed")]
    gold = "SELECT * FROM gold.customer_orders ORDER BY customer_id, running_spend"
    assert sql_rows(repo, tmp_path, gold) == [
        (10, 2, 5.0, 5.0, None, 3), (10, 1, 25.0, 30.0, 5.0, 2), (20, 3, 40.0, 40.0, None, 1)]
    totals = "SELECT * FROM gold.customer_totals ORDER BY customer_id"
    assert sql_rows(repo, tmp_path, totals) == [(10, 30.0, 2, ts(3)), (20, 40.0, 1, ts(2))]

    # Nothing changed: every run is a no-op and no table gets a new version.
    runs = json.loads(sl(repo, "run", "--all", "--json").stdout)
    assert [(r["noop"], r["version"]) for r in runs] == [(True, 0), (True, 0), (True, 0)]

    # New bronze rows, through the Python SDK: order 2 paid later, a new order 5 and a
    # stale copy of order 3 (older than silver's row: ignored by the merge).
    stratalake.write_deltalake(str(repo / "lake" / "bronze" / "orders"), bronze([
        (2, 10, 7.0, "paid", ts(5)),
        (5, 30, 12.0, "placed", ts(5)),
        (3, 20, 99.0, "placed", ts(0)),
    ]), mode="append")
    store = stratalake.FeatureStore(repo)
    assert [(p["name"], p["reason"]) for p in store.plan_runs()] == [
        ("silver_orders", "bronze/orders changed: version 0 -> 1"),
        ("gold_customer", "upstream silver_orders runs first"),
        ("gold_totals", "upstream silver_orders runs first"),
    ]
    runs = store.run(all=True)
    assert [(r["name"], r["noop"], r["version"], r["detail"]) for r in runs] == [
        ("silver_orders", False, 1, "merged: 1 inserted, 1 updated"),
        ("gold_customer", False, 1, "replaced"),
        ("gold_totals", False, 1, "replaced"),
    ]
    assert runs[0]["rows"] == 3  # only the rows bronze gained were read
    result = store.sql(gold)
    assert result.inputs == {"gold/customer_orders": 1}
    assert [tuple(r.values()) for r in result.to_arrow().to_pylist()] == [
        (10, 1, 25.0, 25.0, None, 2), (10, 2, 7.0, 32.0, 25.0, 4),
        (20, 3, 40.0, 40.0, None, 1), (30, 5, 12.0, 12.0, None, 3)]
    df = store.sql(totals).to_pandas()
    assert df["customer_id"].tolist() == [10, 20, 30]
    assert df["spend"].tolist() == [32.0, 40.0, 12.0]
    assert df["orders"].tolist() == [2, 1, 1]
    assert [str(t) for t in df["last_order"]] == [
        "2026-01-05 00:00:00+00:00", "2026-01-02 00:00:00+00:00", "2026-01-05 00:00:00+00:00"]
    # The declared schema is the table's.
    schema = stratalake.DeltaTable(str(repo / "lake" / "gold" / "customer_totals")).schema().to_arrow()
    assert str(schema) == ("customer_id: int64 not null\nspend: double\norders: int64\n"
                           "last_order: timestamp[us, tz=UTC]")


def test_failing_query_names_the_definition_file_and_line(repo: Path):
    (repo / "definitions" / "broken.yaml").write_text(
        "transformations:\n"
        "  - name: bad\n"
        "    output: gold.bad\n"
        "    sql: SELECT nope FROM bronze.orders\n")
    proc = sl(repo, "run", "bad", check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        "error: definitions/broken.yaml:4:10: transformation 'bad': the query failed: Binder "
        "Error: Referenced column \"nope\" not found"), proc.stderr
    assert not (repo / "lake" / "gold").exists()
    proc = sl(repo, "sql", "SELECT * FROM gold.nothing", check=False)
    assert proc.returncode == 1
    assert "(tables of this repository: bronze.orders; name them LAYER.TABLE" in proc.stderr
    proc = sl(repo, "run", check=False)
    assert proc.returncode == 2
    assert "run takes transformation names or --all (not both)" in proc.stderr


KILL_PIPELINE = """\
transformations:
  - name: silver_orders
    output: silver.orders
    mode: merge
    keys: [order_id]
    order_by: updated_at
    sql: SELECT order_id, amount, updated_at FROM bronze.orders
"""


def test_killed_run_leaves_the_table_as_it_was(tmp_path: Path):
    """SIGKILL `stratalake run` at delays spread over a run's duration: whatever the kill
    interrupts, silver.orders is either exactly what it was or the complete result, and a
    later run finishes the work."""
    pristine = tmp_path / "pristine"
    (pristine / "definitions").mkdir(parents=True)
    (pristine / "stratalake.yaml").write_text(
        "project: shop\noffline_store: {path: lake}\ndefinitions: [definitions]\n")
    (pristine / "definitions" / "pipelines.yaml").write_text(KILL_PIPELINE)
    n = 200_000
    schema = pa.schema([("order_id", pa.int64()), ("amount", pa.int64()),
                        ("updated_at", pa.timestamp("us", tz="UTC"))])
    ids = pa.array(range(n), pa.int64())
    bronze_path = str(pristine / "lake" / "bronze" / "orders")
    stratalake.write_deltalake(bronze_path, pa.table(
        [ids, ids, pa.array([ts(1)] * n, schema.field(2).type)], schema=schema), mode="append")
    sl(pristine, "run", "--all")
    # Every order changes: the next run rewrites every file of silver.orders.
    stratalake.write_deltalake(bronze_path, pa.table(
        [ids, pa.array(range(1, n + 1), pa.int64()), pa.array([ts(2)] * n, schema.field(2).type)],
        schema=schema), mode="append")
    totals = "SELECT count(*) AS n, sum(amount) AS total FROM silver.orders"
    before = (n, n * (n - 1) // 2)
    after = (n, n * (n + 1) // 2)

    def state(repo: Path):
        return tuple(stratalake.FeatureStore(repo).sql(totals).to_arrow().to_pylist()[0].values())

    assert state(pristine) == before
    timing = tmp_path / "timing"
    shutil.copytree(pristine, timing)
    t0 = time.monotonic()
    sl(timing, "run", "--all")
    full = time.monotonic() - t0
    assert state(timing) == after

    outcomes = []
    for k in range(8):
        repo = tmp_path / f"kill{k}"
        shutil.copytree(pristine, repo)
        proc = subprocess.Popen([str(BIN), "run", "--all", "--repo", str(repo)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(full * k / 7)
        proc.kill()
        proc.wait()
        got = state(repo)
        assert got in (before, after), f"kill {k}: silver.orders half-written: {got}"
        outcomes.append(got == after)
        # A later run completes the work (or finds it done).
        sl(repo, "run", "--all")
        assert state(repo) == after
        version = stratalake.DeltaTable(str(repo / "lake" / "silver" / "orders")).version()
        assert version == 1
    print("killed runs that had committed:", outcomes, "full run %.2fs" % full)


def test_init_sample_pipelines_match_pandas(tmp_path: Path):
    """`stratalake init`'s pipelines.yaml on its sample data: silver keeps the latest
    correction of each order, gold's lifetime value and rank match pandas (the daily stats
    are checked in test_samples.py)."""
    repo = tmp_path / "shop"
    subprocess.run([str(BIN), "init", str(repo), "--customers", "40"], check=True,
                   capture_output=True)
    sl(repo, "ingest", "customers", str(repo / "data" / "customers.csv"))
    sl(repo, "ingest", "orders", str(repo / "data" / "orders.csv"))
    sl(repo, "ingest", "clicks", str(repo / "data" / "clicks.jsonl"), "--quarantine")
    runs = json.loads(sl(repo, "run", "--all", "--json").stdout)
    assert [r["name"] for r in runs] == ["silver_orders", "silver_clicks", "gold_customer_value",
                                         "gold_customer_daily_stats"]
    bronze_df = stratalake.DeltaTable(str(repo / "lake" / "bronze" / "orders")).to_pandas()
    latest = (bronze_df.sort_values(["order_id", "ingested_ts"])
              .groupby("order_id", as_index=False).tail(1))
    store = stratalake.FeatureStore(repo)
    silver = store.sql("SELECT order_id, amount, status FROM silver.orders ORDER BY order_id")
    silver_df = silver.to_pandas()
    assert silver_df["order_id"].tolist() == sorted(latest["order_id"].tolist())
    latest = latest.sort_values("order_id").reset_index(drop=True)
    assert silver_df["status"].tolist() == latest["status"].tolist()
    assert silver_df["amount"].tolist() == latest["amount"].tolist()
    kept = latest[~latest["status"].isin(["cancelled", "refunded"])]
    ltv = kept.groupby("customer_id")["amount"].sum()
    gold = store.sql("SELECT customer_id, orders, lifetime_value, spend_rank "
                     "FROM gold.customer_value ORDER BY customer_id").to_pandas()
    assert gold["customer_id"].tolist() == ltv.index.tolist()
    assert gold["orders"].tolist() == kept.groupby("customer_id").size().tolist()
    assert gold["lifetime_value"].round(6).tolist() == ltv.round(6).tolist()
    assert gold["spend_rank"].tolist() == ltv.rank(method="min", ascending=False).astype(int).tolist()
    runs = json.loads(sl(repo, "run", "--all", "--json").stdout)
    assert [r["noop"] for r in runs] == [True, True, True, True]
