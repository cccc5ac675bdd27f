"""Python transformations of the definition files (`python: FILE.py:FUNCTION`):
`plan`/`apply`/`transformations describe` and the SDK's get_transformation show them;
the CLI's `run --all` runs a pandas and a Polars function (in a subprocess) between
SQL transformations (SQL -> Python -> SQL) with exact rows and no-op re-runs; the SDK
runs them in its process; an edited function shows as changed in `plan` (its line
diff) and is recomputed in full; an exception names the definition's file:line and
writes nothing; a missing file or function, or an interpreter that cannot import
stratalake, is a clear error; incremental runs (merge on keys) equal a full refresh
after an append and an update. docs/pipelines.md, "Python transformations in the
definition files"."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

import stratalake
from conftest import BIN

UTC = dt.timezone.utc

PIPELINES = """\
transformations:
  - name: silver_orders
    output: silver.orders
    mode: merge
    keys: [order_id]
    order_by: updated_at
    on_change: keys
    sql: |
      SELECT order_id, customer_id, amount, updated_at
      FROM bronze.orders WHERE status <> 'test'
  - name: gold_totals
    output: gold.totals
    sql: SELECT customer_id, sum(cents) AS cents, count(*) AS orders FROM silver.scored GROUP BY ALL
  - name: silver_scored
    python: transformations/scoring.py:silver_scored
    inputs: [silver.orders]
    output: silver.scored
    mode: merge
    keys: [order_id]
    order_by: updated_at
    on_change: keys
  - name: gold_big
    python: transformations/scoring.py:gold_big
    kind: polars
    inputs: [silver.scored]
    output: gold.big
"""

SCORING = '''\
import polars as pl

FACTOR = 100


def silver_scored(orders):
    """pandas: each order's amount in cents, and whether it is big."""
    orders = orders.copy()
    orders["cents"] = (orders["amount"] * FACTOR).round().astype("int64")
    orders["big"] = orders["amount"] >= 10
    return orders[["order_id", "customer_id", "cents", "big", "updated_at"]]


def gold_big(scored):
    return (scored.filter(pl.col("big")).group_by("customer_id")
            .agg(pl.len().cast(pl.Int64).alias("big_orders")).sort("customer_id"))
'''


def bronze(rows):
    schema = pa.schema([("order_id", pa.int64()), ("customer_id", pa.int64()),
                        ("amount", pa.float64()), ("status", pa.string()),
                        ("updated_at", pa.timestamp("us", tz="UTC"))])
    return pa.Table.from_pylist([dict(zip(schema.names, r)) for r in rows], schema=schema)


def day(n: int) -> dt.datetime:
    return dt.datetime(2026, 1, n, tzinfo=UTC)


ENV = {**os.environ, "STRATALAKE_USER": "ada", "STRATALAKE_PYTHON": sys.executable}


def sl(repo: Path, *args: str, check: bool = True, env=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN), *args, "--repo", str(repo)], capture_output=True, text=True,
                          env=env or ENV)
    if check and proc.returncode != 0:
        raise AssertionError(f"stratalake {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    return proc


def rows(repo: Path, table: str, order: str):
    t = stratalake.DeltaTable(str(repo / "lake" / table)).to_pyarrow_table()
    return [tuple(r.values()) for r in t.sort_by(order).to_pylist()]


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    (root / "definitions").mkdir(parents=True)
    (root / "transformations").mkdir()
    (root / "stratalake.yaml").write_text(
        "project: shop\noffline_store: {path: lake}\ndefinitions: [definitions]\n")
    (root / "definitions" / "pipelines.yaml").write_text(PIPELINES)
    (root / "transformations" / "scoring.py").write_text(SCORING)
    stratalake.write_deltalake(str(root / "lake" / "bronze" / "orders"), bronze([
        (1, 10, 20.0, "placed", day(1)),
        (2, 10, 5.0, "placed", day(2)),
        (3, 20, 40.0, "test", day(2)),
        (4, 20, 12.5, "placed", day(3)),
    ]), mode="append")
    return root


FUNCTION_SOURCE = SCORING[SCORING.index("def silver_scored"):SCORING.index("\n\n\ndef gold_big")] + "\n"


def test_plan_apply_describe_and_the_sdk_show_python_transformations(repo: Path):
    out = sl(repo, "plan").stdout
    assert out == (
        "Registry version 0 -> 1: 4 to add, 0 to change, 0 to remove\n"
        "+ transformation silver_orders  definitions/pipelines.yaml:2:5\n"
        "+ transformation gold_totals  definitions/pipelines.yaml:11:5\n"
        "+ transformation silver_scored  definitions/pipelines.yaml:14:5\n"
        "+ transformation gold_big  definitions/pipelines.yaml:22:5\n"
        "Pipeline runs (`stratalake run --all`): 4 to run, 0 up to date\n"
        "  run silver_orders -> silver/orders (merge): never run\n"
        "  run silver_scored -> silver/scored (merge): never run\n"
        "  run gold_big -> gold/big (full_refresh): never run\n"
        "  run gold_totals -> gold/totals (full_refresh): never run\n")
    plan = json.loads(sl(repo, "plan", "--json").stdout)
    assert [(r["name"], r["inputs"], r["upstream"]) for r in plan["runs"]] == [
        ("silver_orders", ["bronze/orders"], []),
        ("silver_scored", ["silver/orders"], ["silver_orders"]),
        ("gold_big", ["silver/scored"], ["silver_scored"]),
        ("gold_totals", ["silver/scored"], ["silver_scored"]),
    ]
    sl(repo, "apply")
    listing = sl(repo, "transformations", "list").stdout
    assert "silver/scored, merge on order_id, on_change keys, python " \
           "transformations/scoring.py:silver_scored (pandas)" in listing
    assert "gold/big, full_refresh, python transformations/scoring.py:gold_big (polars)" in listing
    described = json.loads(sl(repo, "transformations", "describe", "silver_scored", "--json").stdout)
    assert (described["version"], described["spec"]["python"], described["spec"]["kind"],
            described["spec"]["inputs"]) == (
        1, "transformations/scoring.py:silver_scored", "pandas", ["silver/orders"])
    assert described["spec"]["source"] == FUNCTION_SOURCE

    store = stratalake.FeatureStore(repo)
    t = store.get_transformation("silver_scored")
    assert (t.python, t.kind, t.inputs, t.sql, t.output, t.mode, t.keys) == (
        "transformations/scoring.py:silver_scored", "pandas", ["silver/orders"], "",
        "silver/scored", "merge", ["order_id"])
    assert t.source == FUNCTION_SOURCE
    assert store.get_transformation("gold_big").kind == "polars"
    assert store.get_transformation("silver_orders").python == ""
    assert sorted(x.name for x in store.list_transformations()) == [
        "gold_big", "gold_totals", "silver_orders", "silver_scored"]


SCORED = [(1, 10, 2000, True, day(1)), (2, 10, 500, False, day(2)),
          (4, 20, 1250, True, day(3))]


def test_cli_runs_pandas_and_polars_functions_between_sql_ones(repo: Path):
    runs = json.loads(sl(repo, "run", "--all", "--json").stdout)
    assert [(r["name"], r["noop"], r["version"], r["rows"], r["inputs"]) for r in runs] == [
        ("silver_orders", False, 0, 3, {"bronze/orders": 0}),
        ("silver_scored", False, 0, 3, {"silver/orders": 0}),
        ("gold_big", False, 0, 2, {"silver/scored": 0}),
        ("gold_totals", False, 0, 2, {"silver/scored": 0}),
    ]
    assert rows(repo, "silver/scored", "order_id") == SCORED
    assert rows(repo, "gold/totals", "customer_id") == [(10, 2500, 2), (20, 1250, 1)]
    assert rows(repo, "gold/big", "customer_id") == [(10, 1), (20, 1)]
    # The run record names the transformation and its inputs, as for SQL.
    lineage = json.loads(sl(repo, "lineage", "silver.scored", "--json").stdout)
    assert [(e["transformation"], e["inputs"], e["read"]) for e in lineage] == [
        ("silver_scored", {"silver/orders": 0}, "all")]
    # Nothing changed: every run is a no-op, no new version.
    runs = json.loads(sl(repo, "run", "--all", "--json").stdout)
    assert [(r["noop"], r["version"]) for r in runs] == [(True, 0)] * 4
    # `run NAME` runs one, and what it names upstream runs first only when stale.
    assert json.loads(sl(repo, "run", "gold_big", "--json").stdout)[0]["noop"] is True


def test_sdk_runs_them_in_process(repo: Path, monkeypatch):
    # No interpreter for a subprocess: the SDK must not need one.
    monkeypatch.setenv("STRATALAKE_PYTHON", "/nonexistent/python")
    store = stratalake.FeatureStore(repo)
    runs = store.run(all=True)
    assert [(r["name"], r["version"], r["rows"]) for r in runs] == [
        ("silver_orders", 0, 3), ("silver_scored", 0, 3), ("gold_big", 0, 2),
        ("gold_totals", 0, 2)]
    assert rows(repo, "silver/scored", "order_id") == SCORED
    assert rows(repo, "gold/big", "customer_id") == [(10, 1), (20, 1)]
    # The CLI agrees that nothing is left to do (same fingerprints).
    runs = json.loads(sl(repo, "run", "--all", "--json").stdout)
    assert [r["noop"] for r in runs] == [True] * 4


def test_an_edited_function_shows_in_plan_and_recomputes_in_full(repo: Path):
    sl(repo, "apply")
    sl(repo, "run", "--all")
    scoring = repo / "transformations" / "scoring.py"
    scoring.write_text(SCORING.replace(
        '    orders["big"] = orders["amount"] >= 10\n',
        '    orders["big"] = orders["amount"] >= 15\n'))
    out = sl(repo, "plan").stdout
    assert out == (
        "Registry version 1 -> 2: 0 to add, 1 to change, 0 to remove\n"
        "~ transformation silver_scored  (v1 -> v2)  definitions/pipelines.yaml:14:5\n"
        "    ~ source:\n"
        "          def silver_scored(orders):\n"
        "              \"\"\"pandas: each order's amount in cents, and whether it is big.\"\"\"\n"
        "              orders = orders.copy()\n"
        "              orders[\"cents\"] = (orders[\"amount\"] * FACTOR).round().astype(\"int64\")\n"
        "        -     orders[\"big\"] = orders[\"amount\"] >= 10\n"
        "        +     orders[\"big\"] = orders[\"amount\"] >= 15\n"
        "              return orders[[\"order_id\", \"customer_id\", \"cents\", \"big\", \"updated_at\"]]\n"
        "Pipeline runs (`stratalake run --all`): 3 to run, 1 up to date\n"
        "  run silver_scored -> silver/scored (merge): query changed\n"
        "  run gold_big -> gold/big (full_refresh): upstream silver_scored runs first\n"
        "  run gold_totals -> gold/totals (full_refresh): upstream silver_scored runs first\n")
    sl(repo, "apply")
    v2 = json.loads(sl(repo, "transformations", "describe", "silver_scored", "--json").stdout)
    v1 = json.loads(sl(repo, "transformations", "describe", "silver_scored", "--version", "1",
                       "--json").stdout)
    assert (v1["version"], v2["version"], v2["versions"]) == (1, 2, 2)
    assert ">= 10" in v1["spec"]["source"] and ">= 15" in v2["spec"]["source"]
    runs = json.loads(sl(repo, "run", "--all", "--json").stdout)
    assert [(r["name"], r["noop"], r["detail"]) for r in runs] == [
        ("silver_orders", True, "up to date"),
        ("silver_scored", False, "replaced"),
        ("gold_big", False, "replaced"),
        ("gold_totals", False, "replaced"),
    ]
    assert runs[1]["rows"] == 3  # recomputed from the whole input
    assert rows(repo, "gold/big", "customer_id") == [(10, 1)]


def test_an_exception_names_the_definition_and_writes_nothing(repo: Path):
    sl(repo, "run", "--all")
    scored = stratalake.DeltaTable(str(repo / "lake" / "silver" / "scored"))
    before = scored.version()
    (repo / "transformations" / "scoring.py").write_text(SCORING.replace(
        '    orders = orders.copy()\n',
        '    raise ValueError(f"bad batch of {len(orders)} orders")\n'))
    proc = sl(repo, "run", "--all", check=False)
    assert proc.returncode != 0
    assert ("definitions/pipelines.yaml:15:13: transformation 'silver_scored': the function "
            "transformations/scoring.py:silver_scored failed: ValueError: bad batch of 3 orders"
            in proc.stderr)
    assert "Traceback" in proc.stderr  # the worker's, on standard error
    assert stratalake.DeltaTable(str(repo / "lake" / "silver" / "scored")).version() == before
    # From the SDK: the same message, chained to the function's exception.
    with pytest.raises(stratalake.StrataLakeError) as err:
        stratalake.FeatureStore(repo).run("silver_scored")
    assert "definitions/pipelines.yaml:15:13: transformation 'silver_scored'" in str(err.value)
    assert isinstance(err.value.__cause__, ValueError)
    assert stratalake.DeltaTable(str(repo / "lake" / "silver" / "scored")).version() == before


def test_missing_file_function_and_interpreter_are_clear_errors(repo: Path, tmp_path: Path):
    defs = repo / "definitions" / "pipelines.yaml"
    defs.write_text(PIPELINES.replace("scoring.py:gold_big", "scoring.py:gold_small"))
    proc = sl(repo, "plan", check=False)
    assert proc.returncode != 0
    assert ("definitions/pipelines.yaml:23:13: transformation 'gold_big': python file "
            "'transformations/scoring.py' defines no top-level function 'gold_small'"
            in proc.stderr)
    defs.write_text(PIPELINES.replace("transformations/scoring.py:silver_scored",
                                      "transformations/missing.py:silver_scored"))
    proc = sl(repo, "run", "--all", check=False)
    assert proc.returncode != 0
    assert ("definitions/pipelines.yaml:15:13: transformation 'silver_scored': python file "
            "'transformations/missing.py' does not exist" in proc.stderr)

    defs.write_text(PIPELINES)
    no_python = {**ENV, "STRATALAKE_PYTHON": str(tmp_path / "no-such-python")}
    proc = sl(repo, "run", "--all", check=False, env=no_python)
    assert proc.returncode != 0
    assert "cannot run the Python interpreter STRATALAKE_PYTHON=" in proc.stderr
    assert "or set STRATALAKE_PYTHON to a Python that can import it" in proc.stderr
    # An interpreter without the package (site-packages off).
    bare = tmp_path / "bare-python"
    bare.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "$@"\n')
    bare.chmod(0o755)
    proc = sl(repo, "run", "--all", check=False, env={**ENV, "STRATALAKE_PYTHON": str(bare)})
    assert proc.returncode != 0
    assert f"the Python interpreter STRATALAKE_PYTHON={bare} cannot import " \
           "stratalake.transform_worker: install the stratalake Python package" in proc.stderr
    # silver_orders (SQL) ran before the failure; the Python one wrote nothing.
    assert not (repo / "lake" / "silver" / "scored").exists()


def test_incremental_merge_on_keys_equals_a_full_refresh(repo: Path):
    sl(repo, "run", "--all")
    orders = str(repo / "lake" / "bronze" / "orders")
    # An append: a new order and a later version of order 2. silver_orders merges it
    # into silver.orders (rewriting the file that held order 2), so silver_scored
    # recomputes the two keys whose rows changed: its function sees only those rows.
    stratalake.write_deltalake(orders, bronze([
        (5, 30, 30.0, "placed", day(5)), (2, 10, 11.0, "paid", day(6))]), mode="append")
    runs = json.loads(sl(repo, "run", "--all", "--json").stdout)
    assert [(r["name"], r["detail"], r["rows"]) for r in runs[:2]] == [
        ("silver_orders", "merged: 1 inserted, 1 updated", 2),
        ("silver_scored", "recomputed 2 key(s)", 2)]
    # An update of bronze rows in place (a rewritten file): recomputed by key.
    stratalake.DeltaTable(orders).update({"amount": "amount + 1"}, predicate="order_id = 4")
    runs = json.loads(sl(repo, "run", "--all", "--json").stdout)
    assert [(r["name"], r["detail"]) for r in runs[:2]] == [
        ("silver_orders", "recomputed 1 key(s)"), ("silver_scored", "recomputed 1 key(s)")]
    incremental = {t: rows(repo, t, o) for t, o in [
        ("silver/scored", "order_id"), ("gold/totals", "customer_id"), ("gold/big", "customer_id")]}
    assert incremental["silver/scored"] == [
        (1, 10, 2000, True, day(1)), (2, 10, 1100, True, day(6)), (4, 20, 1350, True, day(3)),
        (5, 30, 3000, True, day(5))]
    sl(repo, "run", "--all", "--full-refresh")
    full = {t: rows(repo, t, o) for t, o in [
        ("silver/scored", "order_id"), ("gold/totals", "customer_id"), ("gold/big", "customer_id")]}
    assert incremental == full
