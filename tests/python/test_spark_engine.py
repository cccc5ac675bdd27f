"""The Spark engine (python/stratalake/spark.py) against the local engine on the oracle
cases of test_historical.py: ties (created time, then file, then row), TTL bounds, nulls,
duplicates, unknown keys, knowledge time, the exact output schema; the CLI's
`get-historical --engine spark` with a saved dataset recreated by the local engine; and
materialization from Spark equal to a local one, watermark included.

One local[2] SparkSession (conftest.py's `spark`) serves every test."""
from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import BIN
from stratalake import DeltaTable, FeatureStore

UTC = dt.timezone.utc


def T(h: int, m: int = 0, s: int = 0) -> dt.datetime:
    return dt.datetime(2026, 6, 1, h, m, s, tzinfo=UTC)


def sl(*args: str, repo: Path, check: bool = True):
    proc = subprocess.run([str(BIN), *args, "--repo", str(repo)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"stratalake {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


CONFIG = "project: sparky\noffline_store: lake\nregistry: registry.db\n"
DEFS = """
entities:
  - name: user
    join_keys: [{name: user_id, type: int64}]
sources:
  - name: scores
    path: bronze/scores
    timestamp_field: ts
    created_timestamp_field: created
    schema:
      - {name: user_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: created, type: timestamp}
      - {name: score, type: float64}
      - {name: note, type: string}
  - name: profiles
    path: silver/profiles
    timestamp_field: ts
    schema:
      - {name: user_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: tier, type: string}
      - {name: score, type: float64}
feature_views:
  - name: user_scores
    entities: [user]
    source: scores
    ttl: 1h
    features: [{name: score, type: float64}, {name: note, type: string}]
  - name: user_profile
    entities: [user]
    source: profiles
    ttl: 0
    features: [{name: tier, type: string}, {name: score, type: float64}]
feature_services:
  - name: model
    features: [user_scores, "user_profile:tier"]
"""
SCORES = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us", "UTC")),
                    ("created", pa.timestamp("us", "UTC")), ("score", pa.float64()),
                    ("note", pa.string())])
PROFILES = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us", "UTC")),
                      ("tier", pa.string()), ("score", pa.float64())])


def write(path: Path, rows: dict, schema: pa.Schema) -> Path:
    pq.write_table(pa.table(rows, schema=schema), path)
    return path


@pytest.fixture
def repo(tmp_path) -> Path:
    r = tmp_path / "repo"
    (r / "definitions").mkdir(parents=True)
    (r / "stratalake.yaml").write_text(CONFIG)
    (r / "definitions" / "defs.yaml").write_text(DEFS)
    sl("apply", repo=r)
    sl("ingest", "scores", str(write(tmp_path / "s1.parquet", {
        "user_id": [1, 1, 1, 1, 2, 2, 3, 5, 5, None],
        "ts": [T(9), T(10), T(10), T(12), T(8), T(9, 30), T(9), T(9), T(9), T(9)],
        "created": [T(9), T(10, 5), T(10, 1), T(12), T(8), T(9, 30), T(9), None, None, T(9)],
        "score": [0.1, 0.3, 0.2, 0.9, 0.5, None, 0.7, 1.0, 1.1, 9.9],
        "note": ["a", "b", "c", "d", "e", "f", None, "first", "second", "nullkey"],
    }, SCORES)), repo=r)
    time.sleep(0.05)  # the second file's modificationTime is later
    sl("ingest", "scores", str(write(tmp_path / "s2.parquet", {
        # same (ts, created) as user 5's rows in the first file: the later file wins;
        # user 6: a null created time loses to any value.
        "user_id": [5, 6, 6], "ts": [T(9), T(9), T(9)], "created": [None, T(1), None],
        "score": [1.2, 6.1, 6.2], "note": ["third", "valued", "null created"],
    }, SCORES)), repo=r)
    sl("ingest", "profiles", str(write(tmp_path / "p.parquet", {
        "user_id": [1, 2], "ts": [T(1), T(1)], "tier": ["gold", "silver"], "score": [5.0, 6.0],
    }, PROFILES)), repo=r)
    return r


def oracle_entities() -> pa.Table:
    rows = [
        (1, T(11), 10),        # two 10:00 rows tie -> larger created (0.3)
        (1, T(9, 59), 11),     # only 09:00 (0.1)
        (1, T(10), 12),        # equal time matches (inclusive)
        (2, T(10, 30), 13),    # exactly ttl old: inclusive -> 09:30 (score null, note f)
        (2, T(10, 30, 1), 14), # one second outside the TTL -> null
        (3, T(8), 15),         # only a future row -> null
        (4, T(12), 16),        # unknown key -> null, row kept
        (1, T(11), 10),        # duplicate entity rows kept
        (1, T(13), 17),        # 12:00 (0.9)
        (5, T(9, 30), 18),     # same ts and created in two files: the later file (third)
        (6, T(9, 30), 19),     # a null created time loses to a value (valued)
        (None, T(9, 30), 20),  # a null key matches nothing (not the null-key row)
        (1, None, 21),         # a null time matches nothing
    ]
    return pa.table({"user_id": [r[0] for r in rows], "event_timestamp": [r[1] for r in rows],
                     "label": [r[2] for r in rows]},
                    schema=pa.schema([("user_id", pa.int64()),
                                      ("event_timestamp", pa.timestamp("us", "UTC")),
                                      ("label", pa.int64())]))


def both(repo: Path, spark, entities, **kw) -> tuple[pa.Table, pa.Table]:
    local = FeatureStore(repo).get_historical_features(entities, progress=False, **kw).to_arrow()
    remote = FeatureStore(repo, engine="spark", spark=spark).get_historical_features(
        entities, **kw).to_arrow()
    return local, remote


def test_oracle_cases_identical_to_the_local_engine(repo, spark):
    ents = oracle_entities()
    local, remote = both(repo, spark, ents, features=["user_scores:score", "user_scores:note"])
    assert remote.schema == local.schema
    assert remote.equals(local)
    got = [(r["label"], r["score"], r["note"]) for r in remote.to_pylist()]
    assert got == [(10, 0.3, "b"), (11, 0.1, "a"), (12, 0.3, "b"), (13, None, "f"),
                   (14, None, None), (15, None, None), (16, None, None), (10, 0.3, "b"),
                   (17, 0.9, "d"), (18, 1.2, "third"), (19, 6.1, "valued"), (20, None, None),
                   (21, None, None)]
    # A feature service over two views (one without TTL), with full names.
    local, remote = both(repo, spark, ents, feature_service="model", full_feature_names=True)
    assert remote.column_names == local.column_names == [
        "user_id", "event_timestamp", "label", "user_scores__score", "user_scores__note",
        "user_profile__tier"]
    assert remote.equals(local)


def test_entity_types_and_order_are_kept(repo, spark):
    """Time zones, naive times, second units, dates, dictionaries, large strings and field
    metadata come back exactly as given, rows in input order, from either engine."""
    n = 40
    ents = pa.table({
        "user_id": pa.array([i % 7 for i in range(n)], pa.int64()),
        "event_timestamp": pa.array([T(8) + dt.timedelta(minutes=7 * i) for i in range(n)],
                                    pa.timestamp("s", "Europe/Berlin")),
        "naive": pa.array([dt.datetime(2026, 1, 1) + dt.timedelta(hours=i) for i in range(n)],
                          pa.timestamp("ns")),
        "day": pa.array([dt.date(2026, 6, 1)] * n, pa.date32()),
        "city": pa.array(["x", "y"] * (n // 2)).dictionary_encode(),
        "text": pa.array([f"t{i}" for i in range(n)], pa.large_string()),
    }).replace_schema_metadata({"origin": "labels"})
    ents = ents.cast(ents.schema.set(0, ents.schema.field(0).with_metadata({"k": "v"})))
    local, remote = both(repo, spark, ents, features=["user_scores", "user_profile:tier"])
    assert remote.schema.equals(local.schema, check_metadata=True)
    assert remote.equals(local)
    assert remote.column("text").to_pylist() == [f"t{i}" for i in range(n)]


def test_knowledge_time(repo, spark, tmp_path):
    ents = pa.table({"user_id": [1], "event_timestamp": [T(13)], "label": [1]})
    time.sleep(1.1)
    knowledge = dt.datetime.now(UTC)
    time.sleep(1.1)
    sl("ingest", "scores", str(write(tmp_path / "late.parquet", {
        "user_id": [1], "ts": [T(12)], "created": [T(12, 30)], "score": [0.95], "note": ["late"],
    }, SCORES)), repo=repo)
    local, remote = both(repo, spark, ents, features=["user_scores:score"], as_of=knowledge)
    assert remote.equals(local) and remote.column("score").to_pylist() == [0.9]
    local, remote = both(repo, spark, ents, features=["user_scores:score"])
    assert remote.equals(local) and remote.column("score").to_pylist() == [0.95]


def test_cli_engine_spark_writes_delta_and_saves_a_recreatable_dataset(repo, spark, tmp_path):
    ents = tmp_path / "ents.parquet"
    pq.write_table(oracle_entities(), ents)
    local_out = tmp_path / "local.parquet"
    sl("get-historical", "--entities", str(ents), "--feature-service", "model",
       "--output", str(local_out), repo=repo)
    out = tmp_path / "train_delta"
    res = json.loads(sl("get-historical", "--engine", "spark", "--entities", str(ents),
                        "--feature-service", "model", "--output", str(out), "--save-as",
                        "spark_v1", "--json", repo=repo).stdout)
    assert res["rows"] == 13 and res["engine"] == "spark"
    assert res["sources"] == {"profiles": 0, "scores": 1}
    assert res["dataset"]["name"] == "spark_v1"
    expected = pq.read_table(local_out)
    # The Delta table Spark wrote, read in order by StrataLake's reader.
    written = DeltaTable(str(out)).to_pyarrow_table()
    assert written.to_pylist() == expected.to_pylist()
    # The saved dataset: the local engine's rows and schema, recreated by the local engine
    # after the sources changed.
    store = FeatureStore(repo)
    assert store.get_saved_dataset("spark_v1").to_arrow().equals(expected)
    sl("ingest", "scores", str(write(tmp_path / "x.parquet", {
        "user_id": [1], "ts": [T(10, 59)], "created": [T(11)], "score": [0.5], "note": ["new"],
    }, SCORES)), repo=repo)
    rec = json.loads(sl("datasets", "recreate", "spark_v1", "--json", repo=repo).stdout)
    assert rec == {"name": "spark_v1", "rows": 13, "identical": True, "difference": ""}
    # Errors are the engine's, worded once.
    bad = sl("get-historical", "--engine", "spark", "--entities", str(ents), "--features",
             "user_scores:points", "--output", str(tmp_path / "bad"), repo=repo, check=False)
    assert bad.returncode == 1
    assert bad.stderr.splitlines()[-1].startswith(
        "error: feature view 'user_scores' has no feature 'points'")
    usage = sl("get-historical", "--engine", "spark", "--entities", str(ents), "--features",
               "user_scores", "--output", str(tmp_path / "o.parquet"), repo=repo, check=False)
    assert usage.returncode == 2 and "names the folder of a Delta table" in usage.stderr


def online_state(repo: Path, keys: list) -> tuple[dict, dict]:
    store = FeatureStore(repo)
    resp = store.get_online_features(["user_scores:score", "user_scores:note", "user_profile:tier"],
                                     entities={"user_id": keys})
    store.close()
    with sqlite3.connect(repo / "registry.db") as db:
        marks = {}
        for table, in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            cols = [c[1] for c in db.execute(f"PRAGMA table_info({table})")]
            if "key" in cols and "value" in cols:
                for k, v in db.execute(f"SELECT key, value FROM {table}"):
                    if str(k).startswith("materialize/"):
                        w = json.loads(v)
                        w.pop("updated_at_ms", None)
                        marks[k] = w
    return {"values": resp.to_dict(), "statuses": resp.statuses(),
            "times": resp.event_timestamps()}, marks


@pytest.fixture(params=["embedded", "redis"])
def online_repo(request, repo) -> Path:
    """The repository with its embedded online store, or with a Redis one (the executors
    write their partitions to it in parallel)."""
    if request.param == "redis":
        url = os.environ.get("STRATALAKE_TEST_REDIS_URL")
        if not url:
            if os.environ.get("STRATALAKE_REQUIRE_REDIS") == "1":
                raise AssertionError("STRATALAKE_REQUIRE_REDIS=1 but STRATALAKE_TEST_REDIS_URL is unset")
            pytest.skip("no Redis server (STRATALAKE_TEST_REDIS_URL)")
        (repo / "stratalake.yaml").write_text(
            CONFIG + f"online_store:\n  type: redis\n  url: {url}\n")
        FeatureStore(repo).teardown()  # keys a previous run left in the shared database
    return repo


def test_materialize_from_spark_equals_local(online_repo, spark):
    repo = online_repo
    keys = [1, 2, 3, 4, 5, 6]
    start, end = T(0), T(10)
    local = FeatureStore(repo)
    local.materialize(start, end, progress=False)
    local.close()
    want, want_marks = online_state(repo, keys)
    FeatureStore(repo).teardown()
    reports = FeatureStore(repo, engine="spark", spark=spark).materialize(start, end)
    assert sorted((r["view"], r["to_version"]) for r in reports) == [("user_profile", 0),
                                                                     ("user_scores", 1)]
    got, got_marks = online_state(repo, keys)
    assert got == want
    assert got_marks == want_marks and len(got_marks) == 2
    # The watermark continues: an incremental run after it has nothing new to read.
    inc = FeatureStore(repo).materialize_incremental(T(10), progress=False)
    assert {v["view"]: (v["from_version"], v["to_version"]) for v in inc} == {
        "user_scores": (1, 1), "user_profile": (0, 0)}
