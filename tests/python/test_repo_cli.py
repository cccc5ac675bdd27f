"""End to end through the `stratalake` CLI: init, apply, ingest, edit, plan, apply,
history and both registry versions, against the embedded SQLite registry and a real
PostgreSQL server (started by scripts/run_tests.sh; its URL is in
STRATALAKE_TEST_POSTGRES_URL)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, QueryBuilder

from conftest import BIN

COMMANDS = ["init", "plan", "apply", "entities", "sources", "feature-views",
            "feature-services", "registry", "ingest", "tables"]


def sl(*args: str, repo: Path | None = None, env: dict | None = None, check: bool = True):
    cmd = [str(BIN), *args]
    if repo is not None:
        cmd += ["--repo", str(repo)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"stratalake {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def sl_json(*args: str, repo: Path | None = None, env: dict | None = None):
    return json.loads(sl(*args, "--json", repo=repo, env=env).stdout)


def pg_database() -> str:
    """A fresh database on the test PostgreSQL server; returns its URL."""
    url = os.environ.get("STRATALAKE_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("STRATALAKE_REQUIRE_POSTGRES") == "1":
            raise AssertionError("STRATALAKE_TEST_POSTGRES_URL is not set")
        pytest.skip("no PostgreSQL server (scripts/run_tests.sh starts one)")
    name = "sl_cli_" + uuid.uuid4().hex[:12]
    subprocess.run(["psql", url, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return re.sub(r"/[^/?]*(\?|$)", f"/{name}\\1", url, count=1) if url.count("/") >= 3 else url + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    if request.param == "sqlite":
        return {}
    return {"STRATALAKE_REGISTRY": pg_database()}


@pytest.fixture
def shop(tmp_path) -> Path:
    repo = tmp_path / "shop"
    out = sl("init", str(repo), "--customers", "200")
    assert "Created feature repository" in out.stdout
    return repo


def read_delta(path: Path) -> pa.Table:
    dt = DeltaTable(str(path))
    return QueryBuilder().register("t", dt).execute("select * from t").read_all()


def test_every_command_has_help_with_an_example():
    for cmd in COMMANDS:
        out = sl(cmd, "--help")
        assert out.stdout.startswith("usage: stratalake " + cmd), out.stdout
        assert "\nExample:\n  stratalake " in out.stdout, cmd


def test_usage_errors_exit_2_and_user_errors_exit_1(tmp_path):
    bad = sl("apply", "--frobnicate", "1", check=False)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: unknown option --frobnicate\n")
    missing = sl("plan", repo=tmp_path, check=False)
    assert missing.returncode == 1
    first = missing.stderr.splitlines()[0]
    assert first == (f"error: no feature repository at {tmp_path} (no stratalake.yaml); create one "
                     "with `stratalake init DIR` or pass --repo DIR")
    assert sl("init", check=False).returncode == 2


def test_init_refuses_an_existing_repository(shop):
    again = sl("init", str(shop), check=False)
    assert again.returncode == 1
    assert "already holds a feature repository" in again.stderr


def test_full_flow(shop, backend):
    env = backend
    # apply registers every definition as version 1; a second apply changes nothing.
    first = sl_json("apply", "--message", "initial", repo=shop, env=env)
    assert first["version"] == 1 and first["changed"] is True
    kinds = sorted((c["kind"], c["name"]) for c in first["plan"]["changes"])
    assert kinds == sorted([
        ("entity", "customer"),
        ("source", "customers"), ("source", "orders"), ("source", "clicks"),
        ("source", "customer_daily_stats"), ("source", "churn_labels"), ("source", "clicks_stream"),
        ("feature_view", "customer_profile"), ("feature_view", "customer_stats"),
        ("feature_view", "last_order"), ("feature_view", "live_clicks"),
        ("feature_service", "churn_model"),
        ("transformation", "silver_orders"), ("transformation", "silver_clicks"),
        ("transformation", "gold_customer_value"), ("transformation", "gold_customer_daily_stats"),
    ])
    again = sl_json("apply", repo=shop, env=env)
    assert again == {"version": 1, "changed": False,
                     "plan": {"base_version": 1, "changes": [], "incompatibilities": []}}

    # Ingest the sample data; the malformed click lines fail the load until --quarantine.
    for source, f in [("customers", "customers.csv"), ("orders", "orders.csv"),
                      ("customer_daily_stats", "customer_daily_stats.parquet"),
                      ("churn_labels", "churn_labels.parquet")]:
        rep = sl_json("ingest", source, str(shop / "data" / f), repo=shop, env=env)
        assert rep["rows_rejected"] == 0 and rep["version"] == 0 and rep["created"] is True
    clicks = str(shop / "data" / "clicks.jsonl")
    refused = sl("ingest", "clicks", clicks, repo=shop, env=env, check=False)
    assert refused.returncode == 1
    assert re.match(r"error: rejected 4 of \d+ rows of 'clicks' \(nothing was written\)", refused.stderr)
    assert not (shop / "lake" / "bronze" / "clicks" / "_delta_log").exists()
    rep = sl_json("ingest", "clicks", clicks, "--quarantine", repo=shop, env=env)
    assert rep["rows_rejected"] == 4
    assert [e["line"] for e in rep["examples"]] == [11, 101, 202, 303]
    assert rep["rows_written"] == rep["rows_read"] - 4
    quarantined = read_delta(shop / "lake" / "quarantine" / "clicks")
    assert sorted(quarantined.column("_line").to_pylist()) == [11, 101, 202, 303]

    tables = {t["name"]: t for t in sl_json("tables", repo=shop, env=env)}
    assert sorted(tables) == ["bronze/clicks", "bronze/customers", "bronze/orders",
                              "gold/customer_daily_stats", "quarantine/clicks", "silver/churn_labels"]
    orders = read_delta(shop / "lake" / "bronze" / "orders")
    assert tables["bronze/orders"]["rows"] == orders.num_rows
    assert tables["bronze/orders"]["version"] == 0
    assert orders.schema.field("order_ts").type == pa.timestamp("us", tz="UTC")
    with open(shop / "data" / "orders.csv") as f:
        assert orders.num_rows == sum(1 for _ in f) - 1

    # Edit a definition: plan shows the change field by field, apply makes version 2.
    views = shop / "definitions" / "feature_views.yaml"
    text = views.read_text()
    views.write_text(text.replace("    ttl: 2d\n", "    ttl: 3d\n").replace(
        "      - {name: days_since_last_order, type: int32}\n",
        "      - {name: days_since_last_order, type: int32}\n"
        "      - {name: computed_ts, type: timestamp, description: When the row was computed}\n"))
    plan = sl("plan", repo=shop, env=env).stdout
    assert plan.splitlines() == [
        "Registry version 1 -> 2: 0 to add, 1 to change, 0 to remove",
        "~ feature_view customer_stats  (v1 -> v2)  definitions/feature_views.yaml:15:5",
        "    + features[computed_ts]: timestamp",
        "    ~ ttl: 2d -> 3d",
        # Then what `run --all` would run: none has run (gold/customer_daily_stats was ingested).
        "Pipeline runs (`stratalake run --all`): 4 to run, 0 up to date",
        "  run silver_orders -> silver/orders (merge): never run",
        "  run silver_clicks -> silver/clicks (merge): never run",
        "  run gold_customer_value -> gold/customer_value (full_refresh): never run",
        "  run gold_customer_daily_stats -> gold/customer_daily_stats (full_refresh): never run",
    ]
    second = sl_json("apply", "--message", "ttl 3d", repo=shop, env=env)
    assert second["version"] == 2

    # Both versions load; the object keeps its history.
    v1 = sl_json("feature-views", "describe", "customer_stats", "--registry-version", "1", repo=shop, env=env)
    v2 = sl_json("feature-views", "describe", "customer_stats", repo=shop, env=env)
    assert (v1["version"], v1["spec"]["ttl"], len(v1["spec"]["features"])) == (1, "2d", 7)
    assert (v2["version"], v2["spec"]["ttl"], len(v2["spec"]["features"])) == (2, "3d", 8)
    hist = sl_json("registry", "history", "customer_stats", repo=shop, env=env)
    assert [(h["version"], h["registry_version"]) for h in hist] == [(1, 1), (2, 2)]
    versions = sl_json("registry", "history", repo=shop, env=env)
    assert [(v["version"], v["message"], v["changes"]) for v in versions] == [(1, "initial", 16), (2, "ttl 3d", 1)]
    show1 = sl_json("registry", "show", "--version", "1", repo=shop, env=env)
    assert len(show1["objects"]) == 16
    listed = sl_json("feature-views", "list", repo=shop, env=env)
    assert [(o["name"], o["version"]) for o in listed["objects"]] == [
        ("customer_profile", 1), ("customer_stats", 2), ("last_order", 1), ("live_clicks", 1)]

    # An incompatible edit is refused with the reason, and nothing is written.
    views.write_text(views.read_text().replace("      - {name: spend_7d, type: float64, description: Spend (EUR) in the last 7 days}\n", ""))
    refused = sl("apply", repo=shop, env=env, check=False)
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[0] == "error: 1 incompatible change(s); nothing was applied"
    assert "removing feature 'spend_7d' is not allowed under the 'backward' compatibility policy" in refused.stderr
    assert sl_json("registry", "history", repo=shop, env=env)[-1]["version"] == 2


def test_validation_errors_name_file_line_and_object(shop):
    views = shop / "definitions" / "feature_views.yaml"
    views.write_text(views.read_text().replace("    source: orders\n", "    source: purchases\n"))
    out = sl("plan", repo=shop, check=False)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "error: 1 problem in the feature definitions",
        "  definitions/feature_views.yaml:31:5: feature view 'last_order': unknown source "
        "'purchases' (defined sources: customers, orders, clicks, customer_daily_stats, "
        "churn_labels, clicks_stream)",
    ]


def test_concurrent_apply_from_two_processes(shop, backend):
    env = backend
    sl("apply", repo=shop, env=env)
    views = shop / "definitions" / "feature_views.yaml"
    original = views.read_text()
    procs = []
    # Each process sees its own copy of the repository with a different ttl.
    for i, ttl in enumerate(["4d", "5d"]):
        copy = shop.parent / f"copy{i}"
        subprocess.run(["cp", "-r", str(shop), str(copy)], check=True)
        (copy / "definitions" / "feature_views.yaml").write_text(original.replace("ttl: 2d", f"ttl: {ttl}"))
        # Both copies share the registry of the original repository.
        cfg = copy / "stratalake.yaml"
        if "STRATALAKE_REGISTRY" not in env:
            cfg.write_text(cfg.read_text().replace("registry: .stratalake/registry.db",
                                                   f"registry: {shop}/.stratalake/registry.db"))
        procs.append(subprocess.Popen([str(BIN), "apply", "--repo", str(copy)], env={**os.environ, **env},
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [(p.wait(), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes in ([0, 0], [0, 1]), results
    for rc, err in results:
        if rc == 1:
            assert "another apply committed registry version 2" in err
    versions = sl_json("registry", "history", repo=shop, env=env)
    expected = [1, 2] if codes == [0, 1] else [1, 2, 3]
    assert [v["version"] for v in versions] == expected
