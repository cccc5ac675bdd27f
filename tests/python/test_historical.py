"""Point-in-time retrieval through the CLI: one readable golden case per rule, knowledge
time (--as-of), and saved datasets recreated exactly after the sources changed."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv  # noqa: F401  (pa.csv)
import pyarrow.parquet as pq
import pytest

from conftest import BIN
from oracle import (ENTITIES, PROFILES, RULE_CASES, UTC, T, make_repo, scores_schema, sl,
                    write_parquet)

SCORES = scores_schema()


@pytest.fixture
def repo(tmp_path) -> Path:
    return make_repo(tmp_path, "golden")


def entities(tmp_path: Path, rows: list[tuple[int, dt.datetime, int]]) -> Path:
    return write_parquet(tmp_path / f"entities_{len(rows)}_{time.time_ns()}.parquet", {
        "user_id": [r[0] for r in rows], "event_timestamp": [r[1] for r in rows],
        "label": [r[2] for r in rows]}, ENTITIES)


def historical(repo: Path, ents: Path, *args: str) -> list[dict]:
    out = ents.with_suffix(".out.parquet")
    sl("get-historical", "--entities", str(ents), "--output", str(out), *args, repo=repo)
    return pq.read_table(out).to_pylist()


def test_point_in_time_rules(repo, tmp_path):
    ents = entities(tmp_path, [case for case, _ in RULE_CASES])  # oracle.py: one per rule
    rows = historical(repo, ents, "--features", "user_scores:score")
    assert [(r["user_id"], r["label"], r["score"]) for r in rows] == [
        (1, 10, 0.3), (1, 11, 0.1), (1, 12, 0.3), (2, 13, 0.6), (2, 14, None),
        (3, 15, None), (4, 16, None), (1, 10, 0.3), (1, 17, 0.9)]
    assert [r["score"] for r in rows] == [score for _, score in RULE_CASES]
    assert list(rows[0].keys()) == ["user_id", "event_timestamp", "label", "score"]


def test_name_collision_and_full_feature_names(repo, tmp_path):
    ents = entities(tmp_path, [(1, T(11), 1), (2, T(11), 2)])
    clash = sl("get-historical", "--entities", str(ents), "--output", str(tmp_path / "x.parquet"),
               "--features", "user_scores:score,user_profile:score", repo=repo, check=False)
    assert clash.returncode == 1
    assert clash.stderr.splitlines()[0] == (
        "error: output column 'score' would hold both feature 'user_scores:score' and feature "
        "'user_profile:score'; pass --full-feature-names or give one view an alias in a "
        "feature service")
    rows = historical(repo, ents, "--features", "user_scores:score,user_profile", "--full-feature-names")
    assert rows == [
        {"user_id": 1, "event_timestamp": T(11), "label": 1, "user_scores__score": 0.3,
         "user_profile__tier": "gold", "user_profile__score": 5.0},
        {"user_id": 2, "event_timestamp": T(11), "label": 2, "user_scores__score": None,
         "user_profile__tier": "silver", "user_profile__score": 6.0},
    ]


def test_feature_service_and_errors(repo, tmp_path):
    ents = entities(tmp_path, [(2, T(9, 45), 1)])
    rows = historical(repo, ents, "--feature-service", "model")
    assert rows == [{"user_id": 2, "event_timestamp": T(9, 45), "label": 1, "score": 0.6, "tier": "silver"}]
    bad = sl("get-historical", "--entities", str(ents), "--output", str(tmp_path / "y.parquet"),
             "--features", "user_scores:points", repo=repo, check=False)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: feature view 'user_scores' has no feature 'points' (features: score)")
    str_keys = write_parquet(tmp_path / "str_keys.parquet", {
        "user_id": ["2"], "event_timestamp": [T(9, 45)]},
        pa.schema([("user_id", pa.string()), ("event_timestamp", pa.timestamp("us", "UTC"))]))
    wrong = sl("get-historical", "--entities", str(str_keys), "--output", str(tmp_path / "z.parquet"),
               "--features", "user_scores", repo=repo, check=False)
    assert wrong.returncode == 1
    assert wrong.stderr.splitlines()[0] == (
        "error: feature view 'user_scores': left key column 'user_id' (string) cannot be compared "
        "with right key column 'user_id' (int64) (left = the entity table, right = source 'scores'); "
        "convert the entity column to the key's type")
    missing = sl("get-historical", "--entities", str(ents), "--output", str(tmp_path / "y.parquet"),
                 "--features", "user_scores", "--timestamp-column", "ts", repo=repo, check=False)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: the entity table has no timestamp column 'ts'")


def test_as_of_excludes_rows_that_arrived_later(repo, tmp_path):
    ents = entities(tmp_path, [(1, T(13), 1)])
    time.sleep(1.1)
    knowledge = dt.datetime.now(UTC)
    time.sleep(1.1)
    # A late correction for 12:00 arrives after the knowledge time.
    late = write_parquet(tmp_path / "late.parquet", {
        "user_id": [1], "ts": [T(12)], "created": [T(12, 30)], "score": [0.95]}, SCORES)
    sl("ingest", "scores", str(late), repo=repo)
    now = historical(repo, ents, "--features", "user_scores:score")
    assert now[0]["score"] == 0.95
    then = historical(repo, ents, "--features", "user_scores:score", "--as-of",
                      knowledge.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    assert then[0]["score"] == 0.9


def test_saved_dataset_is_recreated_exactly_after_sources_change(repo, tmp_path):
    ents = entities(tmp_path, [(1, T(11), 1), (2, T(10), 2), (3, T(9), 3), (1, T(13), 4)])
    out = tmp_path / "train.parquet"
    res = json.loads(sl("get-historical", "--entities", str(ents), "--feature-service", "model",
                        "--output", str(out), "--save-as", "train_v1", "--json", repo=repo).stdout)
    assert res["dataset"]["name"] == "train_v1"
    assert res["dataset"]["sources"] == {"profiles": 0, "scores": 0}
    saved = pq.read_table(out)
    # The sources change: an append, a merge and an overwrite.
    extra = write_parquet(tmp_path / "extra.parquet", {
        "user_id": [1, 3], "ts": [T(10, 59), T(8, 59)], "created": [T(11), T(9)], "score": [0.5, 0.4]}, SCORES)
    sl("ingest", "scores", str(extra), repo=repo)
    fix = write_parquet(tmp_path / "fix.parquet", {
        "user_id": [1], "ts": [T(1)], "tier": ["platinum"], "score": [7.0]}, PROFILES)
    sl("ingest", "profiles", str(fix), "--mode", "merge", "--on", "user_id", repo=repo)
    fresh = historical(repo, ents, "--feature-service", "model")
    assert fresh != saved.to_pylist()  # the new data changes a fresh retrieval
    sl("ingest", "scores", str(extra), "--mode", "overwrite", repo=repo)

    rec = json.loads(sl("datasets", "recreate", "train_v1", "--json", repo=repo).stdout)
    assert rec == {"name": "train_v1", "rows": 4, "identical": True, "difference": ""}
    listed = json.loads(sl("datasets", "list", "--json", repo=repo).stdout)
    assert [d["name"] for d in listed] == ["train_v1"]
    desc = json.loads(sl("datasets", "describe", "train_v1", "--json", repo=repo).stdout)
    assert desc["registry_version"] == 1 and desc["rows"] == 4
    assert desc["features"] == ["user_scores:score", "user_profile:tier"]

    # After VACUUM removed the files of the pinned version, recreate says so.
    subprocess.run([str(BIN), "table", "vacuum", str(repo / "lake" / "bronze" / "scores"),
                    "--retention-hours", "0", "--force"], check=True, capture_output=True)
    gone = sl("datasets", "recreate", "train_v1", repo=repo, check=False)
    assert gone.returncode == 1
    assert gone.stderr.startswith("error: dataset 'train_v1' cannot be recreated: a source version "
                                  "it was built from is no longer readable")


def test_a_tiny_memory_budget_gives_the_same_rows(repo, tmp_path):
    # Enough feature rows that a 4 KiB budget makes the join spill to disk.
    n = 20_000
    many = write_parquet(tmp_path / "many.parquet", {
        "user_id": [i % 500 for i in range(n)],
        "ts": [T(0, 0, 0, day=2) + dt.timedelta(seconds=7 * i) for i in range(n)],
        "created": [T(0, 0, 0, day=2) + dt.timedelta(seconds=7 * i + (i % 3)) for i in range(n)],
        "score": [float(i) for i in range(n)],
    }, SCORES)
    sl("ingest", "scores", str(many), repo=repo)
    ents = entities(tmp_path, [(i % 600, T(0, 0, 0, day=2) + dt.timedelta(seconds=13 * i), i)
                               for i in range(3_000)])
    normal = historical(repo, ents, "--features", "user_scores:score")
    tiny = historical(repo, ents, "--features", "user_scores:score", "--memory-budget", "4096")
    assert tiny == normal
    assert sum(r["score"] is not None for r in normal) > 1_000


def test_tiny_memory_budget_streams_the_same_rows(repo, tmp_path):
    """With a --memory-budget far below the entity rows and the output, get-historical
    streams (entity slices in input order, feature sides spilled) and writes exactly the
    rows of the unbounded run: same order, duplicates kept, nulls where nothing matches."""
    import random
    rng = random.Random(4)
    n_feat = 60000
    more = write_parquet(tmp_path / "more_scores.parquet", {
        "user_id": [rng.randrange(2000) for _ in range(n_feat)],
        "ts": [T(0) + dt.timedelta(minutes=rng.randrange(48 * 60)) for _ in range(n_feat)],
        "created": [T(0) + dt.timedelta(minutes=rng.randrange(60)) for _ in range(n_feat)],
        "score": [rng.random() for _ in range(n_feat)],
    }, SCORES)
    sl("ingest", "scores", str(more), repo=repo)
    n = 220000
    ids, times = [], []
    for i in range(n):
        if i and rng.randrange(30) == 0:  # duplicate rows
            ids.append(ids[-1])
            times.append(times[-1])
        else:
            ids.append(rng.randrange(2100))
            times.append(T(0) + dt.timedelta(minutes=rng.randrange(50 * 60)))
    ents = write_parquet(tmp_path / "big_entities.parquet", {
        "user_id": ids, "event_timestamp": times, "label": list(range(n))}, ENTITIES)
    pq.write_table(pq.read_table(ents), ents, row_group_size=20000)
    csv_ents = tmp_path / "big_entities.csv"
    pa.csv.write_csv(pq.read_table(ents), csv_ents)
    feats = ("--features", "user_scores:score,user_profile:tier,user_profile:score",
             "--full-feature-names")
    for src, suffix in ((ents, ".parquet"), (csv_ents, ".csv")):
        outs = {}
        for budget in (None, "300000"):
            out = tmp_path / f"out_{budget}_{src.stem}{suffix}"
            args = ["get-historical", "--entities", str(src), "--output", str(out), *feats, "--json"]
            if budget:
                args += ["--memory-budget", budget]
            res = json.loads(sl(*args, repo=repo).stdout)
            assert res["rows"] == n
            outs[budget] = pq.read_table(out) if suffix == ".parquet" else pa.csv.read_csv(out)
            assert not Path(str(out) + ".partial").exists()
        unbounded, bounded = outs[None], outs["300000"]
        assert bounded.num_rows == n
        assert bounded.equals(unbounded), src
        assert bounded.column("label").to_pylist() == list(range(n))
        score = bounded.column("user_scores__score")
        assert n // 10 < score.null_count < n - n // 10
    # Parquet: the bounded output has many row groups (one or more per slice).
    assert pq.ParquetFile(tmp_path / "out_300000_big_entities.parquet").num_row_groups > 10


def test_save_as_streams_within_a_tiny_budget_and_recreates(repo, tmp_path):
    """--save-as with a --memory-budget far below the output writes the dataset piece by
    piece (one Delta commit over many files): the same rows and the same entity hash as an
    unbounded save, and `datasets recreate` streams within a budget too."""
    import random
    rng = random.Random(9)
    n = 60000
    ents = write_parquet(tmp_path / "ents.parquet", {
        "user_id": [rng.randrange(4) for _ in range(n)],
        "event_timestamp": [T(8) + dt.timedelta(seconds=rng.randrange(6 * 3600)) for _ in range(n)],
        "label": list(range(n))}, ENTITIES)
    pq.write_table(pq.read_table(ents), ents, row_group_size=5000)
    feats = ("--features", "user_scores:score,user_profile:tier", "--json")
    saved = {}
    for name, budget in (("whole", None), ("pieces", "300000")):
        out = tmp_path / f"{name}.parquet"
        args = ["get-historical", "--entities", str(ents), "--output", str(out), "--save-as", name,
                *feats]
        if budget:
            args += ["--memory-budget", budget]
        res = json.loads(sl(*args, repo=repo).stdout)
        assert res["rows"] == n and res["dataset"]["rows"] == n
        saved[name] = (res["dataset"], pq.read_table(out))
    (whole, whole_out), (pieces, pieces_out) = saved["whole"], saved["pieces"]
    assert pieces_out.equals(whole_out)
    assert pieces["entity_hash"] == whole["entity_hash"]
    manifest = json.loads((repo / "lake" / "datasets" / "pieces.manifest.json").read_text())
    assert manifest["entity_hash_version"] == 2 and manifest["table_version"] == 0
    files = json.loads(subprocess.run(
        [str(BIN), "table", "files", str(repo / "lake" / "datasets" / "pieces"), "--json"],
        check=True, capture_output=True, text=True).stdout)
    assert len(files["files"] if isinstance(files, dict) else files) > 3
    for name in ("whole", "pieces"):
        table = subprocess.run(
            [str(BIN), "table", "read", str(repo / "lake" / "datasets" / name), "--output",
             str(tmp_path / f"{name}_table.parquet")], check=True, capture_output=True)
        assert table.returncode == 0
        assert pq.read_table(tmp_path / f"{name}_table.parquet").equals(whole_out)
    rec_out = tmp_path / "recreated.parquet"
    rec = json.loads(sl("datasets", "recreate", "pieces", "--memory-budget", "300000", "--output",
                        str(rec_out), "--json", repo=repo).stdout)
    assert rec == {"name": "pieces", "rows": n, "identical": True, "difference": ""}
    assert pq.read_table(rec_out).equals(whole_out)
    assert pq.ParquetFile(rec_out).num_row_groups > 3  # streamed: a row group per slice
    # The name is taken now; nothing of the refused save is written.
    again = sl("get-historical", "--entities", str(ents), "--save-as", "pieces", *feats,
               repo=repo, check=False)
    assert again.returncode == 1 and "dataset 'pieces' already exists" in again.stderr
