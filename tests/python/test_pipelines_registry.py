"""Transformations in the registry, and `plan` showing what `run --all` would run:
`plan` on a fresh repository lists the transformations and the runs; a changed query
shows its diff line by line and marks the table stale; `apply` versions them,
`transformations list|describe` and the registry's history show the versions; `plan
--json` has exact contents; `run --all` runs exactly what `plan` listed; an output
that would not fit the feature view reading it is refused by `plan` and `apply` before
anything runs. Through the CLI and the Python SDK."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

import stratalake
from conftest import BIN

UTC = dt.timezone.utc

PIPELINES = """\
transformations:
  - name: gold_totals
    output: gold.customer_totals
    sql: |
      SELECT customer_id, sum(amount) AS spend, count(*) AS orders,
             max(updated_at) AS last_order
      FROM silver.orders
      GROUP BY ALL
  - name: silver_orders
    output: silver.orders
    mode: merge
    keys: [order_id]
    order_by: updated_at
    on_change: keys
    sql: |
      SELECT order_id, customer_id, amount, updated_at
      FROM bronze.orders
      WHERE status <> 'test'
"""


def bronze(rows):
    schema = pa.schema([("order_id", pa.int64()), ("customer_id", pa.int64()),
                        ("amount", pa.float64()), ("status", pa.string()),
                        ("updated_at", pa.timestamp("us", tz="UTC"))])
    return pa.Table.from_pylist([dict(zip(schema.names, r)) for r in rows], schema=schema)


def day(n: int) -> dt.datetime:
    return dt.datetime(2026, 1, n, tzinfo=UTC)


def sl(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN), *args, "--repo", str(repo)], capture_output=True, text=True,
                          env={**os.environ, "STRATALAKE_USER": "ada"})
    if check and proc.returncode != 0:
        raise AssertionError(f"stratalake {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    return proc


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    (root / "definitions").mkdir(parents=True)
    (root / "stratalake.yaml").write_text(
        "project: shop\noffline_store: {path: lake}\ndefinitions: [definitions]\n")
    (root / "definitions" / "pipelines.yaml").write_text(PIPELINES)
    stratalake.write_deltalake(str(root / "lake" / "bronze" / "orders"), bronze([
        (1, 10, 20.0, "placed", day(1)),
        (2, 10, 5.0, "placed", day(2)),
        (3, 20, 40.0, "test", day(2)),
    ]), mode="append")
    return root


def test_plan_lists_transformations_and_the_runs_then_apply_versions_them(repo: Path):
    out = sl(repo, "plan").stdout
    assert out == (
        "Registry version 0 -> 1: 2 to add, 0 to change, 0 to remove\n"
        "+ transformation gold_totals  definitions/pipelines.yaml:2:5\n"
        "+ transformation silver_orders  definitions/pipelines.yaml:9:5\n"
        "Pipeline runs (`stratalake run --all`): 2 to run, 0 up to date\n"
        "  run silver_orders -> silver/orders (merge): never run\n"
        "  run gold_totals -> gold/customer_totals (full_refresh): never run\n")
    plan = json.loads(sl(repo, "plan", "--json").stdout)
    assert plan["runs"] == [
        {"name": "silver_orders", "output": "silver/orders", "mode": "merge",
         "inputs": ["bronze/orders"], "upstream": [], "cause": "never_run",
         "reason": "never run"},
        {"name": "gold_totals", "output": "gold/customer_totals", "mode": "full_refresh",
         "inputs": ["silver/orders"], "upstream": ["silver_orders"], "cause": "never_run",
         "reason": "never run"},
    ]
    assert plan["up_to_date"] == [] and plan["incompatibilities"] == []
    assert [(c["kind"], c["name"], c["change"]) for c in plan["changes"]] == [
        ("transformation", "gold_totals", "add"), ("transformation", "silver_orders", "add")]
    assert {f["path"]: f["after"] for f in plan["changes"][1]["fields"]} == {
        "output": "silver/orders", "mode": "merge", "keys": "[order_id]",
        "order_by": "updated_at", "on_change": "keys",
        "sql": "SELECT order_id, customer_id, amount, updated_at\nFROM bronze.orders\n"
               "WHERE status <> 'test'\n"}

    sl(repo, "apply", "--message", "pipelines")
    listing = json.loads(sl(repo, "transformations", "list", "--json").stdout)
    assert listing == {"registry_version": 1, "objects": [
        {"name": "gold_totals", "version": 1, "summary": "gold/customer_totals, full_refresh"},
        {"name": "silver_orders", "version": 1,
         "summary": "silver/orders, merge on order_id, on_change keys"}]}
    # The registry holds them, so plan shows no registry change (the runs are still due).
    assert sl(repo, "plan").stdout.startswith(
        "No changes: the registry (version 1) matches the definitions.\n"
        "Pipeline runs (`stratalake run --all`): 2 to run, 0 up to date\n")

    # `run --all` runs exactly what plan listed, in its order.
    runs = json.loads(sl(repo, "run", "--all", "--json").stdout)
    assert [r["name"] for r in runs if not r["noop"]] == [r["name"] for r in plan["runs"]]
    assert json.loads(sl(repo, "plan", "--json").stdout)["runs"] == []
    assert sl(repo, "plan").stdout == (
        "No changes: the registry (version 1) matches the definitions.\n"
        "Pipeline runs (`stratalake run --all`): none to run, 2 up to date\n")


def test_changed_query_shows_a_diff_marks_the_table_stale_and_keeps_versions(repo: Path):
    sl(repo, "apply")
    sl(repo, "run", "--all")
    pipelines = repo / "definitions" / "pipelines.yaml"
    pipelines.write_text(PIPELINES.replace("count(*) AS orders", "count(DISTINCT order_id) AS orders"))
    out = sl(repo, "plan").stdout
    assert out == (
        "Registry version 1 -> 2: 0 to add, 1 to change, 0 to remove\n"
        "~ transformation gold_totals  (v1 -> v2)  definitions/pipelines.yaml:2:5\n"
        "    ~ sql:\n"
        "        - SELECT customer_id, sum(amount) AS spend, count(*) AS orders,\n"
        "        + SELECT customer_id, sum(amount) AS spend, count(DISTINCT order_id) AS orders,\n"
        "                 max(updated_at) AS last_order\n"
        "          FROM silver.orders\n"
        "          GROUP BY ALL\n"
        "Pipeline runs (`stratalake run --all`): 1 to run, 1 up to date\n"
        "  run gold_totals -> gold/customer_totals (full_refresh): query changed\n")
    plan = json.loads(sl(repo, "plan", "--json").stdout)
    assert [(r["name"], r["cause"]) for r in plan["runs"]] == [("gold_totals", "definition_changed")]
    assert plan["up_to_date"] == ["silver_orders"]

    # A mode change too, and new bronze rows: silver's input moved.
    pipelines.write_text(pipelines.read_text().replace("    on_change: keys\n", "    on_change: fail\n"))
    stratalake.write_deltalake(str(repo / "lake" / "bronze" / "orders"),
                               bronze([(4, 20, 3.0, "placed", day(3))]), mode="append")
    plan = json.loads(sl(repo, "plan", "--json").stdout)
    fields = {c["name"]: [(f["path"], f["before"], f["after"]) for f in c["fields"]]
              for c in plan["changes"]}
    assert fields["silver_orders"] == [("on_change", "keys", "fail")]
    assert [(r["name"], r["cause"], r["reason"]) for r in plan["runs"]] == [
        ("silver_orders", "inputs_changed", "bronze/orders changed: version 0 -> 1"),
        ("gold_totals", "definition_changed", "query changed")]
    sl(repo, "apply", "--message", "distinct orders")
    runs = json.loads(sl(repo, "run", "--all", "--json").stdout)
    assert [r["name"] for r in runs if not r["noop"]] == [r["name"] for r in plan["runs"]]

    described = json.loads(sl(repo, "transformations", "describe", "gold_totals", "--json").stdout)
    assert (described["version"], described["versions"], described["author"]) == (2, 2, "ada")
    assert "count(DISTINCT order_id)" in described["spec"]["sql"]
    old = json.loads(sl(repo, "transformations", "describe", "gold_totals", "--version", "1",
                        "--json").stdout)
    assert "count(*) AS orders" in old["spec"]["sql"] and old["registry_version"] == 1
    history = json.loads(sl(repo, "registry", "history", "transformation/gold_totals",
                            "--json").stdout)
    assert [(h["version"], h["registry_version"]) for h in history] == [(1, 1), (2, 2)]
    text = sl(repo, "transformations", "describe", "silver_orders").stdout
    assert text.startswith("transformation silver_orders  version 2 of 2  (registry version 2,")
    assert "on_change: fail" in text


def test_python_sdk_plans_lists_and_describes_transformations(repo: Path):
    store = stratalake.FeatureStore(repo)
    plan = store.plan()
    assert [(c["kind"], c["name"]) for c in plan.changes] == [
        ("transformation", "gold_totals"), ("transformation", "silver_orders")]
    assert [(r["name"], r["cause"]) for r in plan.runs] == [
        ("silver_orders", "never_run"), ("gold_totals", "never_run")]
    assert plan.up_to_date == []
    assert plan.text.endswith(
        "Pipeline runs (`stratalake run --all`): 2 to run, 0 up to date\n"
        "  run silver_orders -> silver/orders (merge): never run\n"
        "  run gold_totals -> gold/customer_totals (full_refresh): never run\n")
    assert store.apply("pipelines")["version"] == 1
    listed = store.list_transformations()
    assert [t.name for t in listed] == ["gold_totals", "silver_orders"]
    silver = store.get_transformation("silver_orders")
    assert isinstance(silver, stratalake.TransformationDefinition)
    assert (silver.output, silver.mode, silver.keys, silver.order_by, silver.on_change) == (
        "silver/orders", "merge", ["order_id"], "updated_at", "keys")
    assert silver.sql.startswith("SELECT order_id, customer_id")
    assert repr(silver) == ("TransformationDefinition(name='silver_orders', "
                            "output='silver/orders', mode='merge')")
    with pytest.raises(stratalake.ObjectNotFoundError):
        store.get_transformation("nope")
    runs = store.run(all=True)
    assert [r["name"] for r in runs if not r["noop"]] == ["silver_orders", "gold_totals"]
    plan = store.plan()
    assert (plan.runs, plan.up_to_date) == ([], ["silver_orders", "gold_totals"])


VIEWS = """\
entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
sources:
  - name: totals
    path: gold/customer_totals
    timestamp_field: last_order
    schema:   # the table does not exist yet
      - {name: customer_id, type: int64}
      - {name: spend, type: float64}
      - {name: orders, type: TYPE}
      - {name: last_order, type: timestamp}
feature_views:
  - name: customer_totals
    entities: [customer]
    source: totals
    features:
      - {name: spend, type: float64}
      - {name: orders, type: TYPE}
"""


def test_output_that_does_not_fit_its_feature_view_is_refused_at_plan_time(repo: Path):
    # The tables do not exist yet: the output schema is predicted from bronze's columns
    # through silver's prediction, without running anything.
    (repo / "definitions" / "views.yaml").write_text(VIEWS.replace("TYPE", "string"))
    problem = ("definitions/pipelines.yaml:2:5: transformation 'gold_totals': its result does "
               "not match the feature views that read gold/customer_totals:\n"
               "  feature view 'customer_totals' (definitions/views.yaml:14:5) declares feature "
               "'orders' as string but the result's column 'orders' is int64, which the "
               "'backward' compatibility policy refuses\n"
               "cast the columns in the query (or declare them in its schema), or change the "
               "features' types")
    proc = sl(repo, "plan", check=False)
    assert proc.returncode == 1
    assert ("! " + problem + "\nPipeline runs (`stratalake run --all`): 2 to run") in proc.stdout
    assert proc.stderr == ("error: 1 incompatible change(s) (marked '!' above): `apply` would "
                           "refuse them\n")
    assert json.loads(sl(repo, "plan", "--json", check=False).stdout)["incompatibilities"] == [
        problem]
    proc = sl(repo, "apply", check=False)
    assert proc.returncode == 1
    assert proc.stderr == ("error: 1 incompatible change(s); nothing was applied\n  " + problem +
                           "\n")
    store = stratalake.FeatureStore(repo)
    assert store.plan().incompatibilities == [problem]
    with pytest.raises(stratalake.IncompatibleChangeError):
        store.apply()
    assert store.registry_version == 0
    # A run refuses the same result with the same words.
    proc = sl(repo, "run", "--all", check=False)
    assert proc.returncode == 1 and proc.stderr == "error: " + problem + "\n"

    (repo / "definitions" / "views.yaml").write_text(VIEWS.replace("TYPE", "int64"))
    assert json.loads(sl(repo, "plan", "--json").stdout)["incompatibilities"] == []
    assert store.apply()["version"] == 1
