"""The point-in-time oracle shared by test_historical.py (the local engine through the CLI)
and test_spark_engine.py (the Spark engine against the local one): the repository (a
scores view with a 1h TTL and created times, a profiles view without TTL, a feature
service over both), its source rows, and the entity rows of one readable case per rule
with the score each must get."""
from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Optional

import pyarrow as pa
import pyarrow.parquet as pq

from conftest import BIN

UTC = dt.timezone.utc


def T(h: int, m: int = 0, s: int = 0, day: int = 1) -> dt.datetime:
    return dt.datetime(2026, 6, day, h, m, s, tzinfo=UTC)


def sl(*args: str, repo: Path, check: bool = True):
    proc = subprocess.run([str(BIN), *args, "--repo", str(repo)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"stratalake {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def write_parquet(path: Path, rows: dict, schema: pa.Schema) -> Path:
    pq.write_table(pa.table(rows, schema=schema), path)
    return path


def config(project: str) -> str:
    return f"project: {project}\noffline_store: lake\nregistry: registry.db\n"


def defs(note: bool = False) -> str:
    """The definitions; `note`: the scores source and view also have a string `note`."""
    note_col = "      - {name: note, type: string}\n" if note else ""
    note_feat = ", {name: note, type: string}" if note else ""
    return f"""
entities:
  - name: user
    join_keys: [{{name: user_id, type: int64}}]
sources:
  - name: scores
    path: bronze/scores
    timestamp_field: ts
    created_timestamp_field: created
    schema:
      - {{name: user_id, type: int64}}
      - {{name: ts, type: timestamp}}
      - {{name: created, type: timestamp}}
      - {{name: score, type: float64}}
{note_col}  - name: profiles
    path: silver/profiles
    timestamp_field: ts
    schema:
      - {{name: user_id, type: int64}}
      - {{name: ts, type: timestamp}}
      - {{name: tier, type: string}}
      - {{name: score, type: float64}}
feature_views:
  - name: user_scores
    entities: [user]
    source: scores
    ttl: 1h
    features: [{{name: score, type: float64}}{note_feat}]
  - name: user_profile
    entities: [user]
    source: profiles
    ttl: 0
    features: [{{name: tier, type: string}}, {{name: score, type: float64}}]
feature_services:
  - name: model
    features: [user_scores, "user_profile:tier"]
"""


def scores_schema(note: bool = False) -> pa.Schema:
    fields = [("user_id", pa.int64()), ("ts", pa.timestamp("us", "UTC")),
              ("created", pa.timestamp("us", "UTC")), ("score", pa.float64())]
    return pa.schema(fields + ([("note", pa.string())] if note else []))


PROFILES = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us", "UTC")),
                      ("tier", pa.string()), ("score", pa.float64())])
ENTITIES = pa.schema([("user_id", pa.int64()), ("event_timestamp", pa.timestamp("us", "UTC")),
                      ("label", pa.int64())])

# The scores every rule case reads: user 1 has two 10:00 rows (the larger created time
# wins), user 2 a row exactly one TTL before 10:30, user 3 only a row after 08:00.
SCORES_ROWS = {
    "user_id": [1, 1, 1, 1, 2, 2, 3],
    "ts": [T(9), T(10), T(10), T(12), T(8), T(9, 30), T(9)],
    "created": [T(9), T(10, 5), T(10, 1), T(12), T(8), T(9, 30), T(9)],
    "score": [0.1, 0.3, 0.2, 0.9, 0.5, 0.6, 0.7],
}
NOTES = ["a", "b", "c", "d", "e", "f", None]
PROFILES_ROWS = {"user_id": [1, 2], "ts": [T(1), T(1)], "tier": ["gold", "silver"],
                 "score": [5.0, 6.0]}

# (user_id, entity time, label) -> the user_scores:score it must get.
RULE_CASES = [
    ((1, T(11), 10), 0.3),         # latest at or before 11:00 is 10:00; two rows tie -> larger created
    ((1, T(9, 59), 11), 0.1),      # only the 09:00 row is at or before, and within 1h
    ((1, T(10, 0), 12), 0.3),      # event time equal to the entity time matches (inclusive)
    ((2, T(10, 30), 13), 0.6),     # 09:30 is exactly ttl=1h old: inclusive
    ((2, T(10, 30, 1), 14), None), # one second outside the TTL -> null
    ((3, T(8), 15), None),         # only a future row -> null
    ((4, T(12), 16), None),        # unknown key -> null, row kept
    ((1, T(11), 10), 0.3),         # duplicate entity rows are kept as they are
    ((1, T(13), 17), 0.9),         # the 12:00 row
]


def make_repo(tmp_path: Path, project: str, *, note: bool = False,
              extra_scores: Optional[dict] = None) -> Path:
    """The applied repository with the scores (plus `extra_scores`' rows, in the same
    file, after them) and the profiles ingested, one commit each."""
    r = tmp_path / "repo"
    (r / "definitions").mkdir(parents=True)
    (r / "stratalake.yaml").write_text(config(project))
    (r / "definitions" / "defs.yaml").write_text(defs(note))
    sl("apply", repo=r)
    rows = {k: list(v) for k, v in SCORES_ROWS.items()}
    if note:
        rows["note"] = list(NOTES)
    for k, v in (extra_scores or {}).items():
        rows[k] += v
    sl("ingest", "scores", str(write_parquet(tmp_path / "scores.parquet", rows,
                                             scores_schema(note))), repo=r)
    sl("ingest", "profiles", str(write_parquet(tmp_path / "profiles.parquet", PROFILES_ROWS,
                                               PROFILES)), repo=r)
    return r
