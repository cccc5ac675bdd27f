"""`stratalake import-feast`: a Feast repository (feast_compat/example_repo.py),
loaded by Feast's own loader in .venv-feast, becomes StrataLake definitions that
`plan` and `apply` accept; what cannot be converted is reported with reasons."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BIN, ROOT

sys.path.insert(0, str(Path(__file__).parent / "feast_compat"))
import example_repo  # noqa: E402


def feast_python() -> str:
    out = subprocess.run(["bash", str(ROOT / "scripts" / "feast_env.sh")], check=True,
                         capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=cwd)


def ok(*args: str, cwd=None) -> subprocess.CompletedProcess:
    proc = run(*args, cwd=cwd)
    assert proc.returncode == 0, f"stratalake {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def spec(repo: Path, kind: str, name: str) -> dict:
    out = json.loads(ok(kind, "describe", name, "--repo", str(repo), "--json").stdout)
    return out.get("spec", out)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    base = tmp_path_factory.mktemp("import_feast")
    feast_repo = example_repo.write_repo(base / "feast_repo")
    out = base / "ours"
    report = json.loads(ok("import-feast", str(feast_repo), "--out", str(out), "--feast-python",
                           feast_python(), "--json").stdout)
    return {"base": base, "feast_repo": feast_repo, "out": out, "report": report}


def test_report_lists_what_was_and_was_not_converted(imported):
    r = imported["report"]
    assert r["project"] == "feast_shop"
    assert r["converted"] == {"entities": 2, "sources": 2, "feature_views": 2,
                              "feature_services": 2}
    skipped = {(s["kind"], s["name"]): s["reason"] for s in r["skipped"]}
    assert skipped == {
        ("source", "trip_request"): "a request source of Python on-demand feature views "
                                    "(declare it under request_sources and write the views as "
                                    "expressions: docs/feature-repository.md)",
        ("feature_view", "trip_estimate"): "an on-demand feature view in Python, which "
                                           "StrataLake does not run (rewrite it as expressions "
                                           "under on_demand_feature_views: "
                                           "docs/feature-repository.md)",
        ("feature_service", "estimate_service"): "feature view 'trip_estimate' was not converted",
    }
    # The Parquet files of the FileSources, ingested into the converted Delta sources.
    out = imported["out"]
    assert r["data"] == [
        {"source": "customer_source", "table": str(out / "lake" / "bronze" / "customer_source"),
         "rows": 9, "files": 1},
        {"source": "driver_stats_source",
         "table": str(out / "lake" / "bronze" / "driver_stats_source"), "rows": 37, "files": 1}]
    assert r["notes"] == []


def test_plan_and_apply_give_the_feast_definitions(imported):
    out, feast_repo = imported["out"], imported["feast_repo"]
    plan = ok("plan", "--repo", str(out)).stdout
    assert "8 to add" in plan, plan
    ok("apply", "--repo", str(out))
    assert ok("plan", "--repo", str(out)).stdout.startswith("No changes: the registry (version 1)")

    driver = spec(out, "entities", "driver")
    assert [(k["name"], k["type"]) for k in driver["join_keys"]] == [("driver_id", "int64")]
    assert driver["description"] == "A driver." and driver["tags"] == {"team": "rides"}
    assert [(k["name"], k["type"]) for k in spec(out, "entities", "customer")["join_keys"]] == [
        ("customer_id", "string")]

    src = spec(out, "sources", "driver_stats_source")
    assert src["type"] == "delta" and src["path"] == "bronze/driver_stats_source"
    assert src["timestamp_field"] == "event_timestamp"
    assert src["created_timestamp_field"] == "created"

    fv = spec(out, "feature-views", "driver_hourly_stats")
    assert fv["entities"] == ["driver"] and fv["source"] == "driver_stats_source"
    assert fv["ttl"] == "1d" and fv["online"] is True
    assert [(f["name"], f["type"]) for f in fv["features"]] == [
        ("conv_rate", "float64"), ("acc_rate", "float64"), ("avg_daily_trips", "int64")]
    assert fv["owner"] == "rides@example.com" and fv["tags"] == {"tier": "gold"}
    cp = spec(out, "feature-views", "customer_profile")
    assert cp["ttl"] == "1d12h" and cp["online"] is False

    svc = spec(out, "feature-services", "driver_activity")
    assert [(i["view"], i["features"], i["alias"]) for i in svc["items"]] == [
        ("driver_hourly_stats", ["conv_rate", "avg_daily_trips"], ""),
        ("customer_profile", ["current_balance", "segment"], "")]
    aliased = spec(out, "feature-services", "driver_aliased")["items"]
    assert [(i["view"], i["alias"], i["features"]) for i in aliased] == [
        ("driver_hourly_stats", "drv", ["acc_rate"])]


def test_existing_output_needs_force_and_feasts_python_is_found_beside_the_build(
        imported, tmp_path):
    args = ["import-feast", str(imported["feast_repo"]), "--out", str(imported["out"])]
    proc = run(*args)
    assert proc.returncode == 1
    assert proc.stderr == (f"error: '{imported['out'] / 'stratalake.yaml'}' exists; choose "
                           "another --out folder or pass --force to overwrite it\n")
    # No --feast-python: .venv-feast beside the checkout that built the binary.
    if Path(BIN).resolve().parents[2] != ROOT:
        pytest.fail("this test needs the binary of this checkout (build/bin/stratalake)")
    proc = ok(*args, "--force", cwd=str(tmp_path))
    assert "converted Feast project feast_shop into" in proc.stdout
    assert "not converted: feature_view trip_estimate: an on-demand feature view" in proc.stdout
    assert ok("plan", "--repo", str(imported["out"])).stdout.startswith(
        "No changes: the registry (version 1)")


def test_bad_input_is_a_clear_error(imported, tmp_path):
    proc = run("import-feast", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr == (f"error: '{tmp_path}' is not a Feast repository: it has no "
                           "feature_store.yaml\n")
    proc = run("import-feast", str(imported["feast_repo"]), "--feast-python", "/nonexistent/py")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --feast-python '/nonexistent/py' is not an executable")
    broken = example_repo.write_repo(tmp_path / "broken")
    (broken / "feature_repo.py").write_text("this is not python(\n")
    # From an installed CLI (the driver is inside the binary), Feast's python from the
    # environment.
    build = Path(BIN).resolve().parents[1]
    subprocess.run(["cmake", "--install", str(build), "--component", "cli", "--prefix",
                    str(tmp_path / "inst")], check=True, capture_output=True)
    installed = tmp_path / "inst" / "bin" / "stratalake"
    proc = subprocess.run([str(installed), "import-feast", str(broken), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "STRATALAKE_FEAST_PYTHON": feast_python()})
    assert proc.returncode == 1
    assert "error: Feast could not load" in proc.stderr
    assert proc.stderr.strip().endswith("(exit 1; its error is above)")
