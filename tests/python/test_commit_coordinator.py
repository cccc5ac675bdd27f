"""Commits on an S3-compatible server that ignores conditional writes
(docs/object-storage.md, "Commit coordinator"): a real server without them
(versitygw v1.0.14, started by `S3_NO_CONDITIONAL_WRITES=1 scripts/s3.sh`) is
refused unless the user opts in; allow_unsafe_commits serves one writer; the
commit coordinator in the registry database (SQLite or PostgreSQL) lets four
writer processes append at once without losing or doubling a commit, and a writer
killed between recording its commit and copying it into _delta_log/ is completed
by the next reader or writer."""
from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from conftest import BIN, ROOT, S3Server

SCRIPT = ROOT / "scripts" / "s3.sh"


@pytest.fixture(scope="module")
def legacy_s3(tmp_path_factory):
    """versitygw v1.0.14: answers 200 to a second PUT If-None-Match: * of a key."""
    d = tmp_path_factory.mktemp("s3-legacy")
    env = {**os.environ, "S3_NO_CONDITIONAL_WRITES": "1"}
    proc = subprocess.run(["bash", str(SCRIPT), "start", str(d)], capture_output=True, text=True,
                          env=env)
    if proc.returncode != 0:
        raise AssertionError(f"scripts/s3.sh start failed:\n{proc.stderr}")
    server = S3Server(proc.stdout.strip(), d / "data")
    try:
        yield server
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(d)], check=False, env=env)


def pg_database() -> str:
    """A fresh database on the test PostgreSQL server (scripts/run_tests.sh starts it)."""
    url = os.environ.get("STRATALAKE_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("STRATALAKE_REQUIRE_POSTGRES") == "1":
            raise AssertionError("STRATALAKE_TEST_POSTGRES_URL is not set")
        pytest.skip("no PostgreSQL server (scripts/run_tests.sh starts one)")
    name = "sl_coord_" + uuid.uuid4().hex[:12]
    subprocess.run(["psql", url, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return re.sub(r"/[^/?]*(\?|$)", f"/{name}\\1", url, count=1) if url.count("/") >= 3 else url + "/" + name


class Db:
    """The registry database the coordinator uses, read as the tests see it."""

    def __init__(self, uri: str):
        self.uri = uri

    def entries(self, table_uri: str) -> list[tuple[int, str, int]]:
        sql = ("SELECT version, temp_path, complete FROM sl_commit_log WHERE table_uri = '"
               + table_uri.replace("'", "''") + "' ORDER BY version")
        if self.uri.startswith("postgres"):
            out = subprocess.run(["psql", self.uri, "-At", "-F", "\t", "-c", sql], check=True,
                                 capture_output=True, text=True).stdout
            return [(int(v), t, int(c)) for v, t, c in (line.split("\t") for line in out.splitlines())]
        with sqlite3.connect(self.uri) as conn:
            return [(int(v), t, int(c)) for v, t, c in conn.execute(sql)]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> Db:
    if request.param == "sqlite":
        return Db(str(tmp_path / "registry.db"))
    return Db(pg_database())


def env_for(server: S3Server, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "STRATALAKE_S3_", "STRATALAKE_TEST_KILL"))}
    env.update(server.env)
    # The AWS SDK in Arrow asks GetObject for checksums in a spelling this old
    # versitygw refuses; asking only when required leaves the header out.
    env["AWS_RESPONSE_CHECKSUM_VALIDATION"] = "when_required"
    env["STRATALAKE_CACHE_DIR"] = str(server.data.parent / "cache")
    env.update(extra)
    return env


def sl(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"stratalake {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def table_uri(name: str) -> str:
    return f"s3://stratalake/{name}-{uuid.uuid4().hex[:10]}"


def log_dir(server: S3Server, uri: str) -> Path:
    return server.data / "stratalake" / uri[len("s3://stratalake/"):] / "_delta_log"


def write_input(tmp_path: Path, table: pa.Table) -> str:
    path = tmp_path / f"in-{uuid.uuid4().hex[:8]}.parquet"
    pq.write_table(table, path)
    return str(path)


def read_ours(env: dict, uri: str, tmp_path: Path) -> pa.Table:
    out = tmp_path / f"read-{uuid.uuid4().hex[:8]}.parquet"
    sl(env, "table", "read", uri, "--output", str(out))
    return pq.read_table(out)


def versions(env: dict, uri: str) -> list[int]:
    return sorted(h["version"] for h in json.loads(sl(env, "table", "history", uri, "--json").stdout))


# ---- without a coordinator -------------------------------------------------------

def test_a_server_without_conditional_writes_is_refused(legacy_s3, tmp_path):
    uri = table_uri("refused")
    proc = sl(env_for(legacy_s3), "table", "create", uri, "--schema", "a:long", check=False)
    assert proc.returncode != 0
    err = " ".join(proc.stderr.split())
    assert f"the object store at {legacy_s3.endpoint} ignores conditional writes (PUT If-None-Match: *)" in err
    assert ("set commit_coordinator: registry in the offline_store settings (safe with any number of "
            "writers: commits are decided in the registry database; storage option "
            "commit_coordinator=<database URI>) or allow_unsafe_commits: true (one writer only;") in err
    # Nothing was committed.
    assert not list(log_dir(legacy_s3, uri).glob("*.json"))


def test_allow_unsafe_commits_serves_one_writer(legacy_s3, tmp_path):
    env = env_for(legacy_s3, STRATALAKE_S3_ALLOW_UNSAFE_COMMITS="1")
    uri = table_uri("unsafe")
    sl(env, "table", "create", uri, "--schema", "a:long")
    for i in range(3):
        sl(env, "table", "write", uri, "--input", write_input(tmp_path, pa.table({"a": pa.array([i], pa.int64())})),
           "--mode", "append")
    assert sorted(read_ours(env, uri, tmp_path).column("a").to_pylist()) == [0, 1, 2]
    assert versions(env, uri) == [0, 1, 2, 3]


# ---- the coordinator ----------------------------------------------------------------

WRITER = r"""
import subprocess, sys
import pyarrow as pa, pyarrow.parquet as pq
bin_, uri, who, n, folder = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
for i in range(n):
    path = f"{folder}/{who}-{i}.parquet"
    pq.write_table(pa.table({"writer": [who], "i": pa.array([i], pa.int64())}), path)
    p = subprocess.run([bin_, "table", "write", uri, "--input", path, "--mode", "append"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"append {i} of {who} failed: {p.stderr}")
"""


def test_concurrent_writers_through_the_coordinator(legacy_s3, db, tmp_path):
    """4 processes x 25 appends: versions 0..100, each append in exactly one commit."""
    env = env_for(legacy_s3, STRATALAKE_S3_COMMIT_COORDINATOR=db.uri)
    uri = table_uri("race")
    sl(env, "table", "create", uri, "--schema", "writer:string,i:long")
    writers, n = ["a", "b", "c", "d"], 25
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(BIN), uri, who, str(n), str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for who in writers]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    total = len(writers) * n
    got = read_ours(env, uri, tmp_path)
    assert sorted(zip(got.column("writer").to_pylist(), got.column("i").to_pylist())) == \
        sorted([(w, i) for w in writers for i in range(n)])
    assert versions(env, uri) == list(range(total + 1))
    # Every version's commit file holds exactly one append, each append once.
    log = log_dir(legacy_s3, uri)
    seen = []
    for v in range(1, total + 1):
        actions = [json.loads(line) for line in (log / f"{v:020d}.json").read_text().splitlines()]
        adds = [a["add"]["path"] for a in actions if "add" in a]
        assert len(adds) == 1, (v, actions)
        seen += adds
    assert len(set(seen)) == total
    # The coordinator recorded every version once, all complete, and the
    # temporary objects are gone.
    assert [(v, c) for v, _, c in db.entries(uri)] == [(v, 1) for v in range(total + 1)]
    assert not list((log / ".tmp").glob("*"))
    # delta-rs (no coordinator: it only reads) sees the same table.
    assert DeltaTable(uri, storage_options=legacy_s3.delta_rs_options()).to_pyarrow_table().num_rows == total


def test_a_writer_killed_after_recording_its_commit_is_completed(legacy_s3, db, tmp_path):
    env = env_for(legacy_s3, STRATALAKE_S3_COMMIT_COORDINATOR=db.uri)
    uri = table_uri("killed")
    sl(env, "table", "write", uri, "--input", write_input(tmp_path, pa.table({"a": pa.array([0], pa.int64())})))
    log = log_dir(legacy_s3, uri)

    def killed_append(value: int) -> None:
        proc = sl({**env, "STRATALAKE_TEST_KILL_AFTER_COMMIT_ENTRY": "1"}, "table", "write", uri,
                  "--input", write_input(tmp_path, pa.table({"a": pa.array([value], pa.int64())})),
                  "--mode", "append", check=False)
        assert proc.returncode == -9, proc.stderr  # SIGKILL

    # Killed between the entry and the copy: version 1 is recorded, not in the log.
    killed_append(1)
    entries = db.entries(uri)
    assert [(v, c) for v, _, c in entries] == [(0, 1), (1, 0)]
    temp = entries[1][1]
    assert temp.startswith(uri[len("s3://"):] + "/_delta_log/.tmp/00000000000000000001.json.")
    assert (legacy_s3.data / temp).is_file()
    assert not (log / f"{1:020d}.json").exists()
    # A reader that does not know the coordinator sees version 0.
    assert DeltaTable(uri, storage_options=legacy_s3.delta_rs_options()).version() == 0
    # Our reader completes it first: the killed writer's append is committed.
    assert sorted(read_ours(env, uri, tmp_path).column("a").to_pylist()) == [0, 1]
    assert (log / f"{1:020d}.json").read_bytes() and not (legacy_s3.data / temp).exists()
    assert [(v, c) for v, _, c in db.entries(uri)] == [(0, 1), (1, 1)]
    assert DeltaTable(uri, storage_options=legacy_s3.delta_rs_options()).version() == 1

    # Killed again; this time the next writer completes version 2 and commits 3.
    killed_append(2)
    assert not (log / f"{2:020d}.json").exists()
    sl(env, "table", "write", uri, "--input", write_input(tmp_path, pa.table({"a": pa.array([3], pa.int64())})),
       "--mode", "append")
    assert [(v, c) for v, _, c in db.entries(uri)] == [(0, 1), (1, 1), (2, 1), (3, 1)]
    assert versions(env, uri) == [0, 1, 2, 3]
    theirs = DeltaTable(uri, storage_options=legacy_s3.delta_rs_options()).to_pyarrow_table()
    assert sorted(theirs.column("a").to_pylist()) == [0, 1, 2, 3]


def test_a_repository_commits_through_its_registry(legacy_s3, db, tmp_path):
    """stratalake.yaml: offline_store in the bucket with commit_coordinator: registry;
    the registry (SQLite file or PostgreSQL) holds the commits of every table."""
    repo = tmp_path / "shop"
    sl(os.environ.copy(), "init", str(repo), "--customers", "50")
    prefix = f"s3://stratalake/shop-{uuid.uuid4().hex[:8]}"
    config = repo / "stratalake.yaml"
    text = config.read_text()
    assert "offline_store: lake\n" in text
    assert "registry: .stratalake/registry.db\n" in text
    config.write_text(text.replace(
        "offline_store: lake\n",
        f"offline_store:\n  path: {prefix}\n  endpoint: {legacy_s3.endpoint}\n  region: us-east-1\n"
        "  access_key_id: stratalake\n  secret_access_key: stratalake-secret\n"
        "  commit_coordinator: registry\n").replace(
        "registry: .stratalake/registry.db\n", f"registry: {db.uri}\n"))
    env = {k: v for k, v in env_for(legacy_s3).items() if not k.startswith("AWS_")}
    sl(env, "apply", "--repo", str(repo))
    out = json.loads(sl(env, "ingest", "orders", str(repo / "data" / "orders.csv"), "--repo", str(repo),
                        "--json").stdout)
    assert out["rows_rejected"] == 0
    entries = db.entries(f"{prefix}/bronze/orders")
    assert entries and all(c == 1 for _, _, c in entries)
    assert [v for v, _, _ in entries] == list(range(len(entries)))
    orders = DeltaTable(f"{prefix}/bronze/orders", storage_options=legacy_s3.delta_rs_options())
    assert orders.version() == entries[-1][0]
    assert orders.to_pyarrow_table().num_rows == out["rows_written"]


def test_bad_coordinator_settings_are_refused(legacy_s3, tmp_path):
    env = env_for(legacy_s3, STRATALAKE_S3_COMMIT_COORDINATOR="mysql://nowhere/db")
    proc = sl(env, "table", "create", table_uri("bad"), "--schema", "a:long", check=False)
    assert proc.returncode != 0
    assert "commit coordinator 'mysql://nowhere/db' is not a database" in proc.stderr
