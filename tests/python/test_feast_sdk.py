"""Feast's own Python SDK against `stratalake serve`: the contract, tested.

One Feast repository (a FileSource over a Parquet file, a push source, an extra view and
push source that only Feast knows) and a StrataLake repository with the same
definitions over the same file. Feast's SDK (0.67, in its own virtualenv:
scripts/feast_env.sh) runs tests/python/feast_sdk_driver.py, which points two
FeatureStores with `online_store: {type: remote}` at `stratalake serve` and at
`feast serve` and does the same with each: materialize, materialize_incremental,
get_online_features (a feature list, a feature service, full feature names),
push, write_to_online_store, and calls that fail. The test asserts that
OnlineResponse.to_dict() and to_df() (values and dtypes) are exactly Feast's, that
the values are the ones the data says, and which exception classes the client raises.
Times are relative to now.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import BIN

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("feast_sdk_driver.py")
KEYS = [1, 2, 3, 4, 5, 99]
FEATURES = ["i32", "i64", "f32", "f64", "s", "b", "ts", "li", "lf", "ls"]
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

STATS_SCHEMA = pa.schema([
    ("customer_id", pa.int64()), ("i32", pa.int32()), ("i64", pa.int64()),
    ("f32", pa.float32()), ("f64", pa.float64()), ("s", pa.string()), ("b", pa.bool_()),
    ("ts", pa.timestamp("us", "UTC")), ("li", pa.list_(pa.int64())),
    ("lf", pa.list_(pa.float64())), ("ls", pa.list_(pa.string())),
    ("event_ts", pa.timestamp("us", "UTC")), ("created_ts", pa.timestamp("us", "UTC"))])
CLICKS_SCHEMA = pa.schema([("customer_id", pa.int64()), ("page", pa.string()),
                           ("dwell", pa.int32()), ("event_ts", pa.timestamp("us", "UTC"))])


def ago(hours: float = 0, minutes: float = 0) -> dt.datetime:
    return NOW - dt.timedelta(hours=hours, minutes=minutes)


def stats_rows() -> list[dict]:
    """Rows 30, 10 and 3 hours old per key (key 3 has none 30 h old); key 2 has two rows
    at one event time, the later created one wins; nulls in the newest rows of 4 and 5."""
    rows = []
    for k in range(1, 6):
        for j, h in enumerate([30, 10, 3]):
            if k == 3 and h == 30:
                continue
            rows.append(dict(
                customer_id=k, i32=k * 10 + j, i64=k * 10**12 + j, f32=k + 0.1 * j,
                f64=k / 3 + j, s=f"s{k}-{j}", b=(k + j) % 2 == 0,
                ts=ago(h + 100) + dt.timedelta(microseconds=750_000),
                li=[k, j], lf=[k * 0.5, j * 1.0], ls=[f"a{k}", "b"],
                event_ts=ago(h), created_ts=ago(h)))
    [newest2] = [r for r in rows if r["customer_id"] == 2 and r["event_ts"] == ago(3)]
    rows.append(dict(newest2, i32=999, s="later", created_ts=ago(3) + dt.timedelta(minutes=1)))
    for r in rows:
        if r["customer_id"] == 4 and r["event_ts"] == ago(3):
            r["i32"] = None
        if r["customer_id"] == 5 and r["event_ts"] == ago(3):
            r["f64"] = None
            r["s"] = None
    return rows


CLICKS = [dict(customer_id=1, page="/home", dwell=3, event_ts=ago(50)),
          dict(customer_id=3, page="/docs", dwell=4, event_ts=ago(2))]


def feast_value(name: str, v):
    """A value as Feast's client reads it from a feature server's JSON."""
    if v is None:
        return None
    if name == "ts":
        return int(v.timestamp())  # UnixTimestamp: whole seconds
    if name == "f32":
        return float(pa.array([v], pa.float32())[0].as_py())
    return v


def expected(rows: list[dict], lo: dt.datetime, hi: dt.datetime, keys, features) -> dict:
    """to_dict() of an online read: per key the newest row in [lo, hi] by (event time,
    created time); None for keys without one."""
    best: dict = {}
    for r in rows:
        if lo <= r["event_ts"] <= hi:
            cur = best.get(r["customer_id"])
            if cur is None or (r["event_ts"], r["created_ts"]) >= (cur["event_ts"], cur["created_ts"]):
                best[r["customer_id"]] = r
    out = {"customer_id": list(keys)}
    for f in features:
        out[f] = [feast_value(f, best[k][f]) if k in best else None for k in keys]
    return out


# ---- the two repositories --------------------------------------------------------------

STRATALAKE_DEFS = """
entities:
  - name: customer
    join_keys:
      - {{name: customer_id, type: int64}}
sources:
  - name: stats_src
    path: silver/stats
    timestamp_field: event_ts
    created_timestamp_field: created_ts
    schema:
      - {{name: customer_id, type: int64, nullable: false}}
      - {{name: i32, type: int32}}
      - {{name: i64, type: int64}}
      - {{name: f32, type: float32}}
      - {{name: f64, type: float64}}
      - {{name: s, type: string}}
      - {{name: b, type: bool}}
      - {{name: ts, type: timestamp}}
      - {{name: li, type: list<int64>}}
      - {{name: lf, type: list<float64>}}
      - {{name: ls, type: list<string>}}
      - {{name: event_ts, type: timestamp, nullable: false}}
      - {{name: created_ts, type: timestamp}}
  - name: clicks_push
    type: push
    path: bronze/clicks
    timestamp_field: event_ts
    schema:
      - {{name: customer_id, type: int64, nullable: false}}
      - {{name: page, type: string}}
      - {{name: dwell, type: int32}}
      - {{name: event_ts, type: timestamp, nullable: false}}
feature_views:
  - name: stats
    entities: [customer]
    source: stats_src
    ttl: 7d
    features:
      - {{name: i32, type: int32}}
      - {{name: i64, type: int64}}
      - {{name: f32, type: float32}}
      - {{name: f64, type: float64}}
      - {{name: s, type: string}}
      - {{name: b, type: bool}}
      - {{name: ts, type: timestamp}}
      - {{name: li, type: list<int64>}}
      - {{name: lf, type: list<float64>}}
      - {{name: ls, type: list<string>}}
  - name: clicks
    entities: [customer]
    source: clicks_push
    ttl: 7d
    features:
      - {{name: page, type: string}}
      - {{name: dwell, type: int32}}
feature_services:
  - name: svc
    features:
      - stats:i64
      - stats:s
      - stats:ts
      - clicks
"""

FEAST_DEFS = """
from datetime import timedelta
from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Array, Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp

customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
src = FileSource(name="stats_src", path="{parquet}", timestamp_field="event_ts",
                 created_timestamp_column="created_ts")
stats = FeatureView(name="stats", entities=[customer], ttl=timedelta(days=7), source=src,
                    online=True, schema=[
    Field(name="i32", dtype=Int32), Field(name="i64", dtype=Int64),
    Field(name="f32", dtype=Float32), Field(name="f64", dtype=Float64),
    Field(name="s", dtype=String), Field(name="b", dtype=Bool),
    Field(name="ts", dtype=UnixTimestamp), Field(name="li", dtype=Array(Int64)),
    Field(name="lf", dtype=Array(Float64)), Field(name="ls", dtype=Array(String))])
clicks_push = PushSource(name="clicks_push", batch_source=FileSource(
    name="clicks_batch", path="{clicks}", timestamp_field="event_ts"))
clicks = FeatureView(name="clicks", entities=[customer], ttl=timedelta(days=7),
                     source=clicks_push, online=True,
                     schema=[Field(name="page", dtype=String), Field(name="dwell", dtype=Int32)])
svc = FeatureService(name="svc", features=[stats[["i64", "s", "ts"]], clicks])

# Only in Feast's registry: the client sends requests for them, StrataLake's server refuses.
feast_only = FeatureView(name="feast_only", entities=[customer], ttl=timedelta(days=7),
                         source=src, online=True, schema=[Field(name="i64", dtype=Int64)])
feast_only_push = PushSource(name="feast_only_push", batch_source=FileSource(
    name="feast_only_batch", path="{clicks}", timestamp_field="event_ts"))
feast_only_pushed = FeatureView(name="feast_only_pushed", entities=[customer],
                                ttl=timedelta(days=7), source=feast_only_push, online=True,
                                schema=[Field(name="page", dtype=String)])
"""


def feast_python() -> str:
    """Feast's SDK, in the virtualenv scripts/feast_env.sh makes (bootstrap runs it)."""
    out = subprocess.run(["bash", str(ROOT / "scripts" / "feast_env.sh")], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def feast_env() -> dict:
    env = dict(os.environ, FEAST_USAGE="False", PYTHONWARNINGS="ignore")
    env.pop("PYTHONPATH", None)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sl(*args: str, repo: Path) -> None:
    p = subprocess.run([str(BIN), *args, "--repo", str(repo)], capture_output=True, text=True)
    assert p.returncode == 0, f"stratalake {' '.join(args)}: {p.stderr}"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("feast_sdk")
    pq.write_table(pa.Table.from_pylist(stats_rows(), schema=STATS_SCHEMA), d / "stats.parquet")
    pq.write_table(pa.Table.from_pylist(CLICKS, schema=CLICKS_SCHEMA), d / "clicks.parquet")

    # StrataLake: the same definitions; its Delta tables hold the rows of Feast's files.
    sl_repo = d / "stratalake"
    (sl_repo / "definitions").mkdir(parents=True)
    (sl_repo / "stratalake.yaml").write_text(
        "project: fx\noffline_store: lake\nonline_store:\n  type: embedded\n"
        "  path: .stratalake/online\nregistry: .stratalake/registry.db\n"
        "definitions:\n  - definitions\n")
    (sl_repo / "definitions" / "repo.yaml").write_text(STRATALAKE_DEFS.format())
    sl("apply", repo=sl_repo)
    sl("ingest", "stats_src", str(d / "stats.parquet"), repo=sl_repo)
    sl("ingest", "clicks_push", str(d / "clicks.parquet"), repo=sl_repo)

    # Feast: feast apply, then feast serve on its SQLite online store.
    py = feast_python()
    feast_repo = d / "feast"
    (feast_repo / "data").mkdir(parents=True)
    online_db = feast_repo / "data" / "online.db"
    (feast_repo / "feature_store.yaml").write_text(
        f"project: fx\nprovider: local\nregistry: {feast_repo / 'data' / 'registry.db'}\n"
        f"online_store:\n  type: sqlite\n  path: {online_db}\n"
        "offline_store:\n  type: file\nentity_key_serialization_version: 3\n")
    (feast_repo / "definitions.py").write_text(
        FEAST_DEFS.format(parquet=d / "stats.parquet", clicks=d / "clicks.parquet"))
    feast_cli = str(Path(py).parent / "feast")
    p = subprocess.run([feast_cli, "apply"], cwd=feast_repo, env=feast_env(), capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr

    feast_port = free_port()
    feast_log = open(d / "feast_serve.log", "w")
    feast_srv = subprocess.Popen([feast_cli, "serve", "-h", "127.0.0.1", "-p", str(feast_port),
                                  "--workers", "1"], cwd=feast_repo, env=feast_env(),
                                 stdout=feast_log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    ours = subprocess.Popen([str(BIN), "serve", "--port", "0", "--log-requests", "--repo",
                             str(sl_repo)], stdout=subprocess.PIPE, stderr=open(d / "sl.log", "w"),
                            text=True)
    try:
        line = ours.stdout.readline()
        assert "http://" in line, f"stratalake serve did not start: {line}"
        ours_port = int(line.split("http://")[1].split()[0].rsplit(":", 1)[1])
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{feast_port}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert feast_srv.poll() is None, (d / "feast_serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "feast serve did not start within 240 s"
            time.sleep(0.5)
        config = {"project": "fx", "registry": str(feast_repo / "data" / "registry.db"),
                  "feast_repo": str(feast_repo), "feast_online_db": str(online_db),
                  "feast_port": feast_port, "ours_port": ours_port, "now": NOW.isoformat(),
                  "keys": KEYS, "features": [f"stats:{f}" for f in FEATURES]}
        (d / "config.json").write_text(json.dumps(config))
        run = subprocess.run([py, str(DRIVER), str(d / "config.json")], env=feast_env(),
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-5000:]
        result = json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        os.killpg(feast_srv.pid, signal.SIGTERM)
        ours.send_signal(signal.SIGTERM)
        assert ours.wait(timeout=60) == 0
        try:
            feast_srv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(feast_srv.pid, signal.SIGKILL)
            feast_srv.wait()
        feast_log.close()
        ours.stdout.close()
    result["stratalake_log"] = (d / "sl.log").read_text()
    return result


def exact(x) -> str:
    """Equality that tells 1 from 1.0 and True from 1."""
    return json.dumps(x, sort_keys=True)


READS = ["materialize", "incremental", "incremental_full_names", "service", "service_full_names",
         "columnar_entities", "push", "write_to_online_store"]


@pytest.mark.parametrize("step", READS)
def test_responses_are_exactly_feasts(report, step):
    """to_dict() the same values of the same Python types; to_df() equal frames with the
    same dtypes (Feast's server orders features at random; StrataLake's keeps the order
    asked for)."""
    r = report["reads"][step]
    assert exact(r["ours"]) == exact(r["feast"])
    assert r["df_equal"] is True, r["df_equal"]
    assert r["ours_df"]["dtypes"] == r["feast_df"]["dtypes"]
    assert sorted(r["ours_df"]["columns"]) == sorted(r["feast_df"]["columns"])


def test_materialize_reads_only_its_range(report):
    want = expected(stats_rows(), ago(72), ago(20), KEYS, FEATURES)
    assert exact(report["reads"]["materialize"]["ours"]) == exact(want)
    assert report["reads"]["materialize"]["ours_df"]["columns"] == ["customer_id", *FEATURES]


def test_incremental_and_full_names_and_dtypes(report):
    want = expected(stats_rows(), ago(72), NOW, KEYS, FEATURES)
    assert exact(report["reads"]["incremental"]["ours"]) == exact(want)
    assert want["i32"][1] == 999 and want["s"][1] == "later"  # the later created row won
    full = report["reads"]["incremental_full_names"]["ours_df"]
    assert full["columns"] == ["customer_id", *[f"stats__{f}" for f in FEATURES]]
    # What pandas makes of the JSON values, on both sides: nulls turn integers into floats.
    assert report["reads"]["incremental"]["ours_df"]["dtypes"] == {
        "customer_id": "int64", "i32": "float64", "i64": "float64", "f32": "float64",
        "f64": "float64", "s": "object", "b": "object", "ts": "float64", "li": "object",
        "lf": "object", "ls": "object"}


def test_feature_service(report):
    got = report["reads"]["service_full_names"]["ours"]
    assert report["reads"]["service_full_names"]["ours_df"]["columns"] == [
        "customer_id", "stats__i64", "stats__s", "stats__ts", "clicks__page", "clicks__dwell"]
    assert got["clicks__page"] == ["/home", None, "/docs", None, None, None]


def test_push_through_the_remote_store(report):
    got = report["reads"]["push"]["ours"]
    assert got == {"customer_id": KEYS, "page": ["/cart", "/pay", "/docs", None, None, None],
                   "dwell": [7, 9, 4, None, None, None]}


def test_write_to_online_store(report):
    got = report["reads"]["write_to_online_store"]["ours"]
    assert got["customer_id"] == KEYS + [7]
    assert [got[f][-1] for f in FEATURES] == [
        70, 7 * 10**12, 7.25, 7.125, "seven", True,
        int((NOW - dt.timedelta(days=1, seconds=0.5)).timestamp()), [7, 70], [0.25], ["x", "y"]]
    assert [got[f][0] for f in ["i32", "f64", "s", "li"]] == [11, None, "one", [1]]


def test_errors_raise_feasts_exception_classes(report):
    e = report["errors"]
    for case, cls in [("unknown_view", "FeatureViewNotFoundException"),
                      ("unknown_service", "FeatureServiceNotFoundException")]:
        assert e[case]["ours"][:2] == ["feast.errors", cls], e[case]
        assert e[case]["feast"][:2] == ["feast.errors", cls], e[case]
    assert "unknown feature view 'nope'" in e["unknown_view"]["ours"][2]
    assert "unknown feature service 'nosvc'" in e["unknown_service"]["ours"][2]
    for case in ["write_unknown_view", "push_unknown_view"]:
        assert e[case]["ours"][:2] == ["feast.errors", "FeatureViewNotFoundException"], e[case]
    assert "unknown feature view 'feast_only'" in e["write_unknown_view"]["ours"][2]
    assert "unknown feature view 'feast_only_pushed'" in e["push_unknown_view"]["ours"][2]
    assert e["unknown_feature"]["ours"][:2] == ["feast.errors", "FeastObjectNotFoundException"]
    assert "has no feature 'nope'" in e["unknown_feature"]["ours"][2]
    assert e["missing_join_key"]["ours"][:2] == ["feast.errors", "FeastError"]
    assert "missing join key 'customer_id'" in e["missing_join_key"]["ours"][2]
    # Feast's client cannot type an empty list from JSON, whichever server sent it.
    for side in ["ours", "feast"]:
        assert e["empty_list"][side][:2] == ["builtins", "TypeError"], e["empty_list"]
        assert "Couldn't infer value type from empty value" in e["empty_list"][side][2]
    # materialize: Feast's client raises RuntimeError with the server's body, on both sides.
    for side in ["ours", "feast"]:
        got = e["materialize_unknown_view"][side]
        assert got[:2] == ["builtins", "RuntimeError"] and "(404)" in got[2], got
        assert "FeatureViewNotFoundException" in got[2], got

