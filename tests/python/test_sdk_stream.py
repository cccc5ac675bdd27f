"""The SDK's retrieval and online paths: training sets stream through the CLI's entry point
within a memory budget, and online responses come back as typed Arrow columns that the SDK
shows exactly as the feature server's JSON has them."""
from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stratalake import FeatureStore

from conftest import BIN

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("stream") / "shop"
    subprocess.run([str(BIN), "init", str(repo), "--customers", "300", "--as-of", "2026-09-01"],
                   check=True, capture_output=True)  # the data the entity times below are drawn around
    store = FeatureStore(repo_path=repo)
    store.apply(message="stream test")
    for source, file in [("customers", "customers.csv"), ("orders", "orders.csv"),
                         ("customer_daily_stats", "customer_daily_stats.parquet")]:
        store.ingest(source, repo / "data" / file)
    store.close()
    return repo


def entity_rows(n: int, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    start = int(dt.datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1e6)
    return pa.table({
        "customer_id": pa.array(rng.integers(1, 400, n), pa.int64()),  # 300 exist: matches and misses
        "event_timestamp": pa.array(start + rng.integers(0, 300 * 86400 * 10**6, n),
                                    pa.timestamp("us", "UTC")),
        "row": pa.array(np.arange(n), pa.int64()),
    })


def test_a_training_set_over_the_budget_streams_to_parquet(shop, tmp_path):
    entities = entity_rows(30_000)
    pq.write_table(entities, tmp_path / "entities.parquet", row_group_size=5_000)
    store = FeatureStore(shop)
    whole = store.get_historical_features(entities, feature_service="churn_model", progress=False)
    whole.to_parquet(tmp_path / "whole.parquet")
    # 1 MiB: the entity rows and their output are read, joined and written in slices.
    job = store.get_historical_features(tmp_path / "entities.parquet", feature_service="churn_model",
                                        memory_budget=1 << 20, progress=False)
    assert job.registry_version == 1 and "spend_30d" in " ".join(job.feature_refs)
    job.to_parquet(tmp_path / "streamed.parquet")
    assert not (tmp_path / "streamed.parquet.partial").exists()
    streamed = pq.read_table(tmp_path / "streamed.parquet")
    assert streamed.num_rows == 30_000
    assert streamed.equals(pq.read_table(tmp_path / "whole.parquet"))
    assert streamed.column("row").to_pylist() == list(range(30_000))  # input order
    # One row group per slice (the in-memory path writes one piece).
    assert pq.ParquetFile(tmp_path / "streamed.parquet").num_row_groups > 1
    assert pq.ParquetFile(tmp_path / "whole.parquet").num_row_groups == 1
    # The same job again, into memory: the same rows (versions pinned by the first run).
    assert job.to_arrow().equals(streamed)
    assert {s["source"] for s in job.sources} >= {"customer_daily_stats"}


def test_a_streamed_training_set_keeps_memory_bounded(shop, tmp_path):
    """Peak RSS of a process that writes a 1.2M-row training set to Parquet: streamed within
    a 16 MiB budget it stays well below the in-memory retrieval's peak."""
    entities = entity_rows(1_200_000, seed=5)
    pq.write_table(entities, tmp_path / "entities.parquet", row_group_size=100_000)
    script = textwrap.dedent(f"""
        import sys
        from stratalake import FeatureStore
        store = FeatureStore({str(shop)!r})
        budget = int(sys.argv[1])
        job = store.get_historical_features({str(tmp_path / 'entities.parquet')!r},
                                            feature_service="churn_model",
                                            memory_budget=budget or None, progress=False)
        job.to_parquet(sys.argv[2])
        # VmHWM: this process's own peak. (ru_maxrss is not: Linux carries the
        # parent's peak across fork and exec, so a large pytest process would
        # set both runs' figure.)
        print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")))
    """)

    def peak_kib(budget: int, out: str) -> int:
        proc = subprocess.run([sys.executable, "-c", script, str(budget), str(tmp_path / out)],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return int(proc.stdout.split()[-1])

    whole = peak_kib(0, "whole.parquet")
    streamed = peak_kib(16 << 20, "streamed.parquet")
    assert pq.read_table(tmp_path / "streamed.parquet").equals(pq.read_table(tmp_path / "whole.parquet"))
    output_kib = pq.read_table(tmp_path / "whole.parquet").nbytes // 1024
    assert whole - streamed > output_kib // 2, (whole, streamed, output_kib)


def test_saving_a_job_streams_into_the_dataset(shop, tmp_path):
    store = FeatureStore(shop)
    entities = entity_rows(10_000, seed=8)
    pq.write_table(entities, tmp_path / "e.parquet", row_group_size=2_000)
    job = store.get_historical_features(tmp_path / "e.parquet", feature_service="churn_model",
                                        memory_budget=1 << 20, progress=False)
    manifest = job.save("streamed_set")
    assert manifest["rows"] == 10_000
    again = store.recreate_saved_dataset("streamed_set")
    assert again.identical, again.difference
    expected = store.get_historical_features(entities, feature_service="churn_model", progress=False)
    assert store.get_saved_dataset("streamed_set").to_arrow().sort_by("row").equals(
        expected.to_arrow().sort_by("row"))


# ---- online: typed columns, shown as the server's JSON ----------------------------------------

TYPES = {"b": "bool", "i8": "int8", "i16": "int16", "i32": "int32", "i64": "int64",
         "f32": "float32", "f64": "float64", "s": "string", "bin": "binary", "day": "date",
         "ts": "timestamp", "dec": "decimal(10,2)", "lf": "list<float64>", "ls": "list<string>"}


@pytest.fixture(scope="module")
def typed(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("typed") / "r"
    (repo / "definitions").mkdir(parents=True)
    (repo / "stratalake.yaml").write_text(
        "project: t\noffline_store: lake\nonline_store:\n  type: embedded\n  path: online\n"
        "registry: r.db\ndefinitions: [definitions]\n")
    schema = "".join(f"      - {{name: {n}, type: '{t}'}}\n" for n, t in TYPES.items())
    (repo / "definitions" / "d.yaml").write_text(
        "entities: [{name: u, join_keys: [{name: user_id, type: int64}]}]\n"
        "sources:\n  - name: p\n    type: push\n    path: bronze/p\n    timestamp_field: event_ts\n"
        "    schema:\n      - {name: user_id, type: int64}\n      - {name: event_ts, type: timestamp}\n"
        + schema +
        "feature_views:\n  - name: all\n    entities: [u]\n    source: p\n    ttl: 0\n    features:\n"
        + schema.replace("      - ", "      - "))
    with FeatureStore(repo) as store:
        store.apply()
        t0 = dt.datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
        store.push("p", pa.table({
            "user_id": pa.array([1, 2, 4], pa.int64()),
            "event_ts": pa.array([t0, t0.replace(microsecond=0), t0], pa.timestamp("us", "UTC")),
            "b": [True, None, False], "i8": pa.array([-128, None, 7], pa.int8()),
            "i16": pa.array([32767, None, 0], pa.int16()), "i32": pa.array([-5, None, 1], pa.int32()),
            "i64": [2**63 - 1, None, -(2**53) - 1],
            "f32": pa.array([0.1, None, float("inf")], pa.float32()), "f64": [float("nan"), None, 5e-324],
            "s": ['a"b\\c\n\u00e9\u2028\x01', None, ""], "bin": [b"raw", None, b""],
            "day": pa.array([dt.date(2026, 2, 28), None, dt.date(1969, 12, 31)], pa.date32()),
            "ts": pa.array([dt.datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=UTC), None,
                            dt.datetime(1960, 1, 1, tzinfo=UTC)], pa.timestamp("us", "UTC")),
            "dec": pa.array([__import__("decimal").Decimal("-12.30"), None,
                             __import__("decimal").Decimal("0.01")], pa.decimal128(10, 2)),
            "lf": [[1.25, None, float("nan")], None, []], "ls": [["x", None], None, ["\u00fc"]],
        }), to="online")
    return repo


def test_online_results_are_the_servers_json_to_the_value(typed):
    entities = {"user_id": [1, 2, 3, None, 4]}
    with FeatureStore(typed) as store:
        resp = store.get_online_features(["all"], entities=entities)
        got = resp.to_json()
        table = resp.to_arrow()
        dict_ = resp.to_dict()
        statuses = resp.statuses()
        times = resp.event_timestamps()
    cli = subprocess.run([str(BIN), "get-online", "--repo", str(typed), "--features", "all", "--entity",
                          "user_id=1,2,3", "--json"], capture_output=True, text=True, check=True)
    server = json.loads(cli.stdout)
    # The CLI cannot pass a null key: compare rows 0..2 with it, the rest by rule.
    def rows(doc, n):
        return {"metadata": doc["metadata"],
                "results": [{k: v[:n] for k, v in r.items()} for r in doc["results"]]}
    assert json.dumps(rows(got, 3), sort_keys=True) == json.dumps(rows(server, 3), sort_keys=True)
    assert got["metadata"]["feature_names"] == ["user_id", *TYPES]
    assert dict_["user_id"] == [1, 2, 3, None, 4]
    assert statuses["i64"] == ["PRESENT", "NULL_VALUE", "NOT_FOUND", "NOT_FOUND", "PRESENT"]
    assert times["user_id"] == ["1970-01-01T00:00:00Z"] * 5
    assert times["s"][0] == "2026-03-01T12:00:00.250000Z" and times["s"][1] == "2026-03-01T12:00:00Z"
    assert dict_["i64"][0] == 2**63 - 1 and type(dict_["i64"][0]) is int
    assert dict_["f64"][0] is None and dict_["f32"][2] is None and math.isclose(dict_["f32"][0], 0.1, rel_tol=1e-7)
    assert dict_["ts"] == ["1999-12-31T23:59:59.000001Z", None, None, None, "1960-01-01T00:00:00Z"]
    assert dict_["day"] == ["2026-02-28", None, None, None, "1969-12-31"]
    assert dict_["dec"] == ["-12.30", None, None, None, "0.01"]
    assert dict_["lf"] == [[1.25, None, None], None, None, None, []]
    assert dict_["bin"] == ["raw", None, None, None, ""]
    assert table.schema.field("dec").type == pa.decimal128(10, 2)
    assert table.schema.field("ts").type == pa.timestamp("us", "UTC")
    assert table.column("i8").to_pylist() == [-128, None, None, None, 7]
