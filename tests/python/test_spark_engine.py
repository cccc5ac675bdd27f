"""The Spark engine (python/stratalake/spark.py) against the local engine on the oracle
cases of test_historical.py: ties (created time, then file, then row), TTL bounds, nulls,
duplicates, unknown keys, knowledge time, the exact output schema; the CLI's
`get-historical --engine spark` with a saved dataset (written by the executors) recreated
by the local engine; and materialization from Spark (Redis from the executors, the
embedded store through SST files they write) equal to a local one, byte for byte and
watermark included, full and incremental. The oracle's repository and rule cases are
oracle.py's, shared with test_historical.py.

One local[2] SparkSession (conftest.py's `spark`) serves every test."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import BIN
from stratalake import DeltaTable, FeatureStore

from oracle import RULE_CASES, T, UTC, config, make_repo, scores_schema, sl, write_parquet

SCORES = scores_schema(note=True)
write = write_parquet


@pytest.fixture
def repo(tmp_path) -> Path:
    """oracle.py's repository (scores with a `note`), plus rows for the ties of this engine:
    user 5 has two rows with the same (ts, created) in the first file and a third in a
    later file; user 6 a row with a created time and one without; a row with a null key."""
    r = make_repo(tmp_path, "sparky", note=True, extra_scores={
        "user_id": [5, 5, None, 7], "ts": [T(9), T(9), T(9), T(9)],
        "created": [None, None, T(9), T(9)], "score": [1.0, 1.1, 9.9, None],
        "note": ["first", "second", "nullkey", "null score"]})
    time.sleep(0.05)  # the second file's modificationTime is later
    sl("ingest", "scores", str(write(tmp_path / "s2.parquet", {
        # same (ts, created) as user 5's rows in the first file: the later file wins;
        # user 6: a null created time loses to any value.
        "user_id": [5, 6, 6], "ts": [T(9), T(9), T(9)], "created": [None, T(1), None],
        "score": [1.2, 6.1, 6.2], "note": ["third", "valued", "null created"],
    }, SCORES)), repo=r)
    return r


def oracle_entities() -> pa.Table:
    rows = [case for case, _ in RULE_CASES] + [
        (5, T(9, 30), 18),     # same ts and created in two files: the later file (third)
        (6, T(9, 30), 19),     # a null created time loses to a value (valued)
        (None, T(9, 30), 20),  # a null key matches nothing (not the null-key row)
        (1, None, 21),         # a null time matches nothing
        (7, T(9, 30), 22),     # a null feature value is a value (note kept, score null)
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
    assert got == [(10, 0.3, "b"), (11, 0.1, "a"), (12, 0.3, "b"), (13, 0.6, "f"),
                   (14, None, None), (15, None, None), (16, None, None), (10, 0.3, "b"),
                   (17, 0.9, "d"), (18, 1.2, "third"), (19, 6.1, "valued"), (20, None, None),
                   (21, None, None), (22, None, "null score")]
    assert [score for _, score, _ in got[:len(RULE_CASES)]] == [v for _, v in RULE_CASES]
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
    # Saved from Spark (its executors write the dataset's Delta table in place): read back
    # in the exact schema, and recreated identically by the local engine.
    store = FeatureStore(repo)
    job = FeatureStore(repo, engine="spark", spark=spark).get_historical_features(
        ents, features=["user_scores", "user_profile:tier"])
    manifest = job.save("types_v1")
    assert manifest["name"] == "types_v1" and manifest["rows"] == n
    assert store.get_saved_dataset("types_v1").to_arrow().equals(local)
    assert job.to_arrow().equals(local)  # the job's output is the dataset's table
    rec = store.recreate_saved_dataset("types_v1")
    assert rec.identical, rec.difference


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
    assert res["rows"] == 14 and res["engine"] == "spark"
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
    assert rec == {"name": "spark_v1", "rows": 14, "identical": True, "difference": ""}
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
            config("sparky") + f"online_store:\n  type: redis\n  url: {url}\n")
        FeatureStore(repo).teardown()  # keys a previous run left in the shared database
    return repo


def stored(repo: Path) -> list:
    """Every key and value the online store holds for the views, as bytes."""
    from stratalake import _core
    return _core.scan_online(str(repo), b"user_")


def seed(repo: Path) -> None:
    """Values in the store before a run: user 1's newer than any source row (kept), user
    2's older (replaced)."""
    s = FeatureStore(repo)
    s.write_to_online_store("user_scores", pa.table({
        "user_id": [1, 2], "event_timestamp": [T(23), T(0, 30)], "score": [42.0, 0.01],
        "note": ["pushed newer", "pushed older"]}))
    s.close()


def test_materialize_from_spark_equals_local(online_repo, spark):
    """Spark's executors write the winners (to Redis directly, or as SST files the driver
    ingests into the embedded store): the same bytes, statuses, event times and watermarks
    as a local run, also against values already stored (newer wins either way)."""
    repo = online_repo
    keys = [1, 2, 3, 4, 5, 6, 7]
    start, end = T(0), T(10)
    seed(repo)
    local = FeatureStore(repo)
    local.materialize(start, end, progress=False)
    local.close()
    want, want_marks = online_state(repo, keys)
    want_bytes = stored(repo)
    FeatureStore(repo).teardown()
    seed(repo)
    reports = FeatureStore(repo, engine="spark", spark=spark).materialize(start, end)
    assert sorted((r["view"], r["to_version"], r["engine"]) for r in reports) == [
        ("user_profile", 0, "spark"), ("user_scores", 1, "spark")]
    got, got_marks = online_state(repo, keys)
    assert got == want
    assert stored(repo) == want_bytes and len(want_bytes) == 8  # 6 + 2 keys
    times = dict(zip(keys, got["times"]["score"]))
    # the newer push kept, the older replaced
    assert (times[1], times[2]) == ("2026-06-01T23:00:00Z", "2026-06-01T09:30:00Z")
    assert got_marks == want_marks and len(got_marks) == 2
    # The watermark continues: an incremental run after it has nothing new to read.
    inc = FeatureStore(repo).materialize_incremental(T(10), progress=False)
    assert {v["view"]: (v["from_version"], v["to_version"]) for v in inc} == {
        "user_scores": (1, 1), "user_profile": (0, 0)}


def test_incremental_materialization_on_spark_equals_local(repo, spark, tmp_path):
    """materialize_incremental on Spark reads what the local engine reads (the files
    committed since the watermark in [end - TTL, end], rows of older files after the last
    end) and leaves the same bytes and watermark; rows deleted since the watermark send
    the view to the local engine, which repairs their keys."""
    local = FeatureStore(repo)
    local.materialize(T(0), T(10), ["user_scores"], progress=False)
    local.close()
    sl("ingest", "scores", str(write(tmp_path / "s3.parquet", {
        "user_id": [1, 3, 2, 4], "ts": [T(10, 30), T(10, 45), T(9, 45), T(13)],
        "created": [T(10, 30), T(10, 45), T(9, 45), T(13)], "score": [0.35, 0.75, 0.65, 4.0],
        "note": ["new, at the start", "new, in range", "new, before end - TTL", "new, later"],
    }, SCORES)), repo=repo)
    twin = tmp_path / "twin"  # the same repository, store and watermark: Spark runs there
    shutil.copytree(repo, twin)

    def step(end, engine, from_version):
        want_reports = FeatureStore(repo).materialize_incremental(end, ["user_scores"],
                                                                  progress=False)
        got_reports = FeatureStore(twin, engine="spark", spark=spark).materialize_incremental(
            end, ["user_scores"])
        (w,), (g,) = want_reports, got_reports
        assert (g["engine"], g["from_version"], g["to_version"]) == (engine, from_version,
                                                                     w["to_version"])
        assert g["rows_written"] == w["rows_written"]
        assert stored(twin) == stored(repo)
        assert online_state(twin, [1, 2, 3, 4])[1] == online_state(repo, [1, 2, 3, 4])[1]
        return w

    w = step(T(11, 30), "spark", 1)  # the new file in [10:30, 11:30]: users 1 and 3
    assert (w["incremental"], w["rows_written"]) == (True, 2)
    w = step(T(12, 30), "spark", 2)  # no new file: older rows after 11:30 (user 1's 12:00)
    assert (w["incremental"], w["rows_written"]) == (True, 1)
    for r in (repo, twin):  # rows deleted: an overwrite
        sl("ingest", "scores", str(write(tmp_path / "s4.parquet", {
            "user_id": [1], "ts": [T(12, 45)], "created": [T(12, 45)], "score": [0.5],
            "note": ["after the overwrite"]}, SCORES)), "--mode", "overwrite", repo=r)
    step(T(13), "local", 2)
