"""Tables on object storage: a real S3-compatible server (versitygw, started by
scripts/s3.sh) holds the tables. The Delta conformance corpus reads the same from s3://
as from disk; delta-rs reads and writes the same s3:// tables as we do; two writer
processes never both win a version; a writer killed during commits leaves a table that
both readers read whole; a feature repository whose offline store is in a bucket keeps
its tables, quarantine and saved datasets there (docs/object-storage.md)."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from conftest import BIN, assert_same_rows, run_cli
from test_conformance import NEGATIVE, POSITIVE, TRAPS_WITH_EXPECTED, expected_rows


def table_uri(name: str = "") -> str:
    return f"s3://stratalake/{name or 't'}-{uuid.uuid4().hex[:10]}"


def cli(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN), *args], capture_output=True, text=True,
                          env=env if env is not None else os.environ.copy())
    if check and proc.returncode != 0:
        raise AssertionError(f"stratalake {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def read_ours(uri: str, tmp_path: Path, *args: str) -> pa.Table:
    out = tmp_path / f"read-{uuid.uuid4().hex[:8]}.parquet"
    run_cli("read", uri, "--output", str(out), *args)
    return pq.read_table(out)


def write_input(tmp_path: Path, table: pa.Table) -> str:
    path = tmp_path / f"in-{uuid.uuid4().hex[:8]}.parquet"
    pq.write_table(table, path)
    return str(path)


# ---- the conformance corpus, read from the bucket ----------------------------

@pytest.fixture(scope="module")
def golden_s3(s3_server, golden) -> str:
    """The unpacked corpus copied into the bucket's folder (the server serves files
    placed there as objects); returns its s3:// prefix."""
    dest = s3_server.data / "stratalake" / "golden"
    if not dest.exists():
        shutil.copytree(golden, dest)
    return "s3://stratalake/golden"


@pytest.mark.parametrize("name", POSITIVE + TRAPS_WITH_EXPECTED)
def test_conformance_positive_on_s3(golden_s3, golden, name, tmp_path):
    expected = expected_rows(golden, name)
    remote = read_ours(f"{golden_s3}/{name}/delta", tmp_path)
    if expected is None:  # an empty latest snapshot
        assert remote.num_rows == 0
        return
    assert_same_rows(remote, expected)


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_conformance_negative_on_s3(golden_s3, name):
    code, message = NEGATIVE[name]
    proc = run_cli("read", f"{golden_s3}/{name}/delta", check=False)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr


# ---- our writes, delta-rs's writes, the same tables ---------------------------

def test_write_read_update_on_s3(s3_server, tmp_path):
    uri = table_uri("ops")
    rows = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["a", "b", "c"]})
    run_cli("write", uri, "--input", write_input(tmp_path, rows))
    more = pa.table({"id": pa.array([4], pa.int64()), "name": ["d"]})
    run_cli("write", uri, "--input", write_input(tmp_path, more), "--mode", "append")
    run_cli("delete", uri, "--where", "id = 2")
    run_cli("update", uri, "--where", "id = 3", "--set", "name='cc'")
    got = read_ours(uri, tmp_path).sort_by("id")
    assert got.to_pydict() == {"id": [1, 3, 4], "name": ["a", "cc", "d"]}
    hist = json.loads(run_cli("history", uri, "--json").stdout)
    assert [h["operation"] for h in sorted(hist, key=lambda h: h["version"])] == [
        "CREATE TABLE AS SELECT", "WRITE", "DELETE", "UPDATE"]
    # Time travel reads the first version back.
    v0 = read_ours(uri, tmp_path, "--version", "0").sort_by("id")
    assert v0.to_pydict() == rows.to_pydict()
    # The objects are in the bucket, where the server keeps them.
    key = uri[len("s3://stratalake/"):]
    assert (s3_server.data / "stratalake" / key / "_delta_log" / "00000000000000000003.json").is_file()


def test_delta_rs_reads_and_writes_our_s3_tables(s3_server, tmp_path):
    opts = s3_server.delta_rs_options()
    ours = table_uri("ours")
    rows = pa.table({"k": pa.array(range(100), pa.int64()), "v": [f"x{i}" for i in range(100)]})
    run_cli("write", ours, "--input", write_input(tmp_path, rows))
    dt = DeltaTable(ours, storage_options=opts)
    assert dt.version() == 0
    assert_same_rows(dt.to_pyarrow_table(), rows)
    # delta-rs appends to our table (a conditional PUT of version 1); we read it.
    extra = pa.table({"k": pa.array([100, 101], pa.int64()), "v": ["y", "z"]})
    write_deltalake(ours, extra, mode="append", storage_options=opts)
    assert_same_rows(read_ours(ours, tmp_path), pa.concat_tables([rows, extra]))
    # We append again (version 2); delta-rs sees all three commits.
    run_cli("write", ours, "--input", write_input(tmp_path, extra), "--mode", "append")
    dt = DeltaTable(ours, storage_options=opts)
    assert dt.version() == 2
    assert dt.to_pyarrow_table().num_rows == 104

    # A table delta-rs created, partitioned; we read it and merge into it.
    theirs = table_uri("theirs")
    part = pa.table({"day": ["d1", "d1", "d2"], "n": pa.array([1, 2, 3], pa.int64())})
    write_deltalake(theirs, part, partition_by=["day"], storage_options=opts)
    assert_same_rows(read_ours(theirs, tmp_path), part)
    src = pa.table({"day": ["d2", "d3"], "n": pa.array([3, 4], pa.int64())})
    run_cli("merge", theirs, "--source", write_input(tmp_path, src), "--on", "day,n", "--insert")
    back = DeltaTable(theirs, storage_options=opts).to_pyarrow_table()
    assert_same_rows(back, pa.table({"day": ["d1", "d1", "d2", "d3"], "n": pa.array([1, 2, 3, 4], pa.int64())}))


# ---- concurrent writers ----------------------------------------------------------

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


def test_two_writer_processes_never_both_win_a_version(s3_server, tmp_path):
    uri = table_uri("race")
    run_cli("create", uri, "--schema", "writer:string,i:long")
    n = 12
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(BIN), uri, who, str(n), str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for who in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    # Every append won exactly one version: 2n commits after the create, none lost
    # (a lost commit would lose its row), none doubled.
    got = read_ours(uri, tmp_path)
    assert sorted(zip(got.column("writer").to_pylist(), got.column("i").to_pylist())) == \
        sorted([(w, i) for w in ("a", "b") for i in range(n)])
    hist = json.loads(run_cli("history", uri, "--json").stdout)
    assert sorted(h["version"] for h in hist) == list(range(2 * n + 1))
    log = s3_server.data / "stratalake" / uri[len("s3://stratalake/"):] / "_delta_log"
    adds = []
    for v in range(1, 2 * n + 1):
        actions = [json.loads(line) for line in (log / f"{v:020d}.json").read_text().splitlines()]
        adds.append(sum(1 for a in actions if "add" in a))
    assert adds == [1] * (2 * n)
    # delta-rs agrees.
    assert DeltaTable(uri, storage_options=s3_server.delta_rs_options()).to_pyarrow_table().num_rows == 2 * n


def test_conflicting_writers_one_wins_the_other_gets_a_conflict(s3_server, tmp_path):
    """Two overwrites prepared against the same version: both PUT version 1; the
    store lets exactly one create it, the other reports the conflict."""
    uri = table_uri("conflict")
    run_cli("write", uri, "--input", write_input(tmp_path, pa.table({"x": pa.array([0], pa.int64())})))
    # Many tries so that the two commits really overlap at least sometimes; every
    # round must end with both rows-sets consistent: one overwrite won each version.
    for round_ in range(4):
        inputs = [write_input(tmp_path, pa.table({"x": pa.array([round_ * 10 + w], pa.int64())})) for w in (1, 2)]
        procs = [subprocess.Popen([str(BIN), "table", "write", uri, "--input", f, "--mode", "overwrite"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for f in inputs]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        for code, err in results:
            assert code in (0, 4), err  # 4: a commit conflict, reported as such
        winners = [i for i, (code, _) in enumerate(results) if code == 0]
        assert winners, results
        got = read_ours(uri, tmp_path).column("x").to_pylist()
        assert len(got) == 1 and got[0] in [round_ * 10 + 1 + w for w in winners]


# ---- a writer killed while committing --------------------------------------------

LOOPER = r"""
import subprocess, sys
import pyarrow as pa, pyarrow.parquet as pq
bin_, uri, folder = sys.argv[1], sys.argv[2], sys.argv[3]
i = 0
while True:
    path = f"{folder}/loop-{i}.parquet"
    pq.write_table(pa.table({"i": pa.array([i] * 1000, pa.int64())}), path)
    subprocess.run([bin_, "table", "write", uri, "--input", path, "--mode", "append"], capture_output=True)
    i += 1
"""


def test_writer_killed_during_commits_leaves_a_readable_table(s3_server, tmp_path):
    uri = table_uri("crash")
    run_cli("create", uri, "--schema", "i:long")
    rng = random.Random(7)
    for _ in range(4):
        p = subprocess.Popen([sys.executable, "-c", LOOPER, str(BIN), uri, str(tmp_path)],
                             start_new_session=True)
        time.sleep(rng.uniform(1.0, 2.5))
        os.killpg(p.pid, signal.SIGKILL)  # the loop and the CLI it runs, mid-write or mid-commit
        p.wait()
    got = read_ours(uri, tmp_path)
    hist = json.loads(run_cli("history", uri, "--json").stdout)
    versions = sorted(h["version"] for h in hist)
    assert versions == list(range(len(versions)))
    # Each committed append is whole: 1000 rows of one value, never a part.
    counts = {}
    for v in got.column("i").to_pylist():
        counts[v] = counts.get(v, 0) + 1
    assert set(counts.values()) <= {1000, 2000, 3000, 4000}  # each round restarts i at 0
    assert got.num_rows == 1000 * (len(versions) - 1)
    theirs = DeltaTable(uri, storage_options=s3_server.delta_rs_options())
    assert theirs.version() == versions[-1]
    assert theirs.to_pyarrow_table().num_rows == got.num_rows
    # The table takes new commits after the crashes.
    run_cli("write", uri, "--input", write_input(tmp_path, pa.table({"i": pa.array([-1], pa.int64())})),
            "--mode", "append")
    assert read_ours(uri, tmp_path).num_rows == got.num_rows + 1


# ---- settings -----------------------------------------------------------------------

def test_settings_come_from_the_uri_when_the_environment_has_none(s3_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    host = s3_server.endpoint[len("http://"):]
    uri = f"s3://stratalake-key:x@stratalake/{uuid.uuid4().hex[:8]}"
    bad = cli("table", "read", uri + f"?endpoint_override={host}&scheme=http", check=False, env=env)
    assert bad.returncode != 0
    uri = f"s3://stratalake:stratalake-secret@stratalake/u-{uuid.uuid4().hex[:8]}?endpoint_override={host}&scheme=http"
    rows = pa.table({"a": pa.array([1, 2], pa.int64())})
    cli("table", "write", uri, "--input", write_input(tmp_path, rows), env=env)
    out = tmp_path / "u.parquet"
    cli("table", "read", uri, "--output", str(out), env=env)
    assert pq.read_table(out).to_pydict() == {"a": [1, 2]}


def test_unknown_query_parameter_is_refused(s3_server):
    proc = run_cli("read", "s3://stratalake/x?endpoint=localhost:1", check=False)
    assert proc.returncode == 1
    assert "unknown query parameter 'endpoint' (known: endpoint_override, scheme, region, " \
           "allow_unsafe_commits)" in proc.stderr


# ---- a feature repository in a bucket ------------------------------------------

def test_repository_with_its_offline_store_in_a_bucket(s3_server, tmp_path):
    repo = tmp_path / "shop"
    cli("init", str(repo), "--customers", "100")
    prefix = f"s3://stratalake/shop-{uuid.uuid4().hex[:8]}"
    config = repo / "stratalake.yaml"
    text = config.read_text()
    assert "offline_store: lake\n" in text
    config.write_text(text.replace(
        "offline_store: lake\n",
        f"offline_store:\n  path: {prefix}\n  endpoint: {s3_server.endpoint}\n  region: us-east-1\n"
        "  access_key_id: stratalake\n  secret_access_key: stratalake-secret\n"))
    # The repository's settings alone reach the bucket.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}

    def sl(*args):
        return json.loads(cli(*args, "--repo", str(repo), "--json", env=env).stdout)

    sl("apply")
    for source, f in [("customers", "customers.csv"), ("orders", "orders.csv")]:
        assert sl("ingest", source, str(repo / "data" / f))["rows_rejected"] == 0
    rep = sl("ingest", "clicks", str(repo / "data" / "clicks.jsonl"), "--quarantine")
    assert rep["rows_rejected"] == 4
    tables = {t["name"]: t for t in sl("tables")}
    assert {"bronze/customers", "bronze/orders", "bronze/clicks", "quarantine/clicks"} <= set(tables)
    opts = s3_server.delta_rs_options()
    quarantined = DeltaTable(f"{prefix}/quarantine/clicks", storage_options=opts).to_pyarrow_table()
    assert sorted(quarantined.column("_line").to_pylist()) == [11, 101, 202, 303]
    orders = DeltaTable(f"{prefix}/bronze/orders", storage_options=opts).to_pyarrow_table()
    assert tables["bronze/orders"]["rows"] == orders.num_rows > 0
    # Nothing went to a local lake folder.
    assert not (repo / "lake").exists()


# ---- the read cache ------------------------------------------------------------------

def metrics(port: int) -> dict:
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    return {k: int(v) for k, v in (line.split() for line in text.splitlines()
                                   if line.startswith("stratalake_read_cache"))}


def test_read_cache_serves_remote_files_and_counts_on_metrics(s3_server, tmp_path):
    repo = tmp_path / "shop"
    cli("init", str(repo), "--customers", "100")
    prefix = f"s3://stratalake/cache-{uuid.uuid4().hex[:8]}"
    config = repo / "stratalake.yaml"
    config.write_text(config.read_text().replace("offline_store: lake\n", f"offline_store: {prefix}\n"))
    cache = tmp_path / "cache"
    env = {**os.environ, "STRATALAKE_CACHE_DIR": str(cache), "STRATALAKE_CACHE_SIZE": "64M"}
    cli("apply", "--repo", str(repo), env=env)
    for source, f in [("customers", "customers.csv"), ("orders", "orders.csv")]:
        cli("ingest", source, str(repo / "data" / f), "--repo", str(repo), env=env)
    assert not cache.exists() or not any(cache.iterdir())  # writes do not fill it
    server = subprocess.Popen([str(BIN), "serve", "--port", "0", "--repo", str(repo)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = server.stdout.readline()
        port = int(line.split("127.0.0.1:")[1].split()[0].rstrip("/"))
        before = metrics(port)
        assert before["stratalake_read_cache_max_bytes"] == 64 << 20
        assert (before["stratalake_read_cache_hits_total"], before["stratalake_read_cache_misses_total"]) == (0, 0)

        def materialize():
            import urllib.request
            req = urllib.request.Request(f"http://127.0.0.1:{port}/materialize",
                                         data=b'{"disable_event_timestamp": true}',
                                         headers={"Content-Type": "application/json"})
            return json.loads(urllib.request.urlopen(req, timeout=120).read())

        first = materialize()
        files = sum(v["files_read"] for v in first["views"])
        assert files >= 2
        # Readers are served as the bytes land; each cache file is written and renamed
        # into place just after, and the memory the bytes landed in is then given back.
        for _ in range(1000):
            m1 = metrics(port)
            if (not any(p.name.endswith(".part") for p in cache.iterdir())
                    and m1["stratalake_read_cache_fetch_memory_bytes"] == 0):
                break
            time.sleep(0.01)
        assert m1["stratalake_read_cache_fetch_memory_bytes"] == 0
        # Every data file was fetched once into the cache, and is the cache's content.
        cached = [p for p in cache.iterdir() if not p.name.startswith(".")]
        assert m1["stratalake_read_cache_misses_total"] == len(cached) == files
        assert m1["stratalake_read_cache_miss_bytes_total"] == m1["stratalake_read_cache_bytes"] == \
            sum(p.stat().st_size for p in cached)
        second = materialize()
        m2 = metrics(port)
        # The second run reads the same files from the local disk only.
        assert sum(v["files_read"] for v in second["views"]) == files
        assert m2["stratalake_read_cache_misses_total"] == m1["stratalake_read_cache_misses_total"]
        assert m2["stratalake_read_cache_hits_total"] >= m1["stratalake_read_cache_hits_total"] + files
        assert m2["stratalake_read_cache_hit_bytes_total"] > m1["stratalake_read_cache_hit_bytes_total"]
    finally:
        server.terminate()
        server.wait(timeout=60)
    # Another process finds the files already cached: no fetch for a table read.
    out = tmp_path / "orders.parquet"
    cli("table", "read", f"{prefix}/bronze/orders", "--output", str(out), env=env)
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == sorted(p.name for p in cached)


def test_a_bad_cache_size_is_refused(s3_server, tmp_path):
    uri = table_uri("badcache")
    run_cli("write", uri, "--input", write_input(tmp_path, pa.table({"a": pa.array([1], pa.int64())})))
    proc = cli("table", "read", uri, check=False, env={**os.environ, "STRATALAKE_CACHE_SIZE": "lots"})
    assert proc.returncode == 1
    assert "STRATALAKE_CACHE_SIZE='lots' is not a size: write bytes, or a number with K, M or G" in proc.stderr


def _table_with_files(s3_server, name: str, n_files: int) -> tuple[str, pa.Table, list[Path]]:
    """A table of `n_files` appends (one data file each) written by the SDK; its rows and
    its data files' paths in the server's folder."""
    import stratalake
    uri = table_uri(name)
    parts = []
    for i in range(n_files):
        part = pa.table({"k": pa.array(range(i * 50_000, (i + 1) * 50_000), pa.int64()),
                         "s": pa.array([f"row-{j}" for j in range(50_000)])})
        stratalake.write_deltalake(uri, part, mode="append")
        parts.append(part)
    folder = s3_server.data / uri[len("s3://"):]
    files = sorted(folder.glob("*.parquet"))
    assert len(files) == n_files
    return uri, pa.concat_tables(parts), files


def _wait_for_fetches(cache: Path) -> None:
    """Until no fetch writes into `cache` (its temporary files are dot files)."""
    for _ in range(600):
        if not any(p.name.startswith(".") for p in cache.iterdir()):
            return
        time.sleep(0.1)


def test_readers_of_files_being_fetched_share_the_fetch(s3_server, tmp_path):
    """Four threads read the same table at once through one process's cache: each file
    is fetched once (the readers that come while it is being fetched read it as it
    lands), every reader gets the whole table, and the cache holds each file once."""
    import threading
    import stratalake
    from stratalake import _core
    uri, expected, files = _table_with_files(s3_server, "shared", 4)
    cache = tmp_path / "cache"
    _core.configure_read_cache(str(cache), 64 << 20)
    try:
        before = _core.read_cache_stats()
        results: list = [None] * 4

        def read(i):
            results[i] = stratalake.DeltaTable(uri).to_pyarrow_table()

        threads = [threading.Thread(target=read, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in results:
            assert_same_rows(r, expected)
        after = _core.read_cache_stats()
        sizes = sum(f.stat().st_size for f in files)
        assert after["misses"] - before["misses"] == len(files)
        assert after["miss_bytes"] - before["miss_bytes"] == sizes
        assert after["hits"] - before["hits"] == 3 * len(files)
        _wait_for_fetches(cache)
        cached = sorted(p for p in cache.iterdir())
        assert len(cached) == len(files)
        assert sorted(p.read_bytes() for p in cached) == sorted(f.read_bytes() for f in files)
        assert _core.read_cache_stats()["bytes_cached"] == sizes
    finally:
        _core.configure_read_cache()  # back to the environment's settings


def test_a_failed_fetch_leaves_no_cache_entry(s3_server, tmp_path):
    """A data file missing from the bucket fails the read with the missing-file error and
    leaves nothing of it in the cache; once it is back, it is fetched and kept."""
    uri, expected, files = _table_with_files(s3_server, "failed", 3)
    cache = tmp_path / "cache"
    env = {**os.environ, "STRATALAKE_CACHE_DIR": str(cache), "STRATALAKE_CACHE_SIZE": "64M"}
    gone = files[1]
    saved = gone.read_bytes()
    gone.unlink()
    out = tmp_path / "out.parquet"
    proc = cli("read", uri, "--output", str(out), check=False, env=env)
    assert proc.returncode != 0
    assert f"{gone.name}' named by the Delta log does not exist" in proc.stderr, proc.stderr
    # (Temporary files are dot files; one of a fetch still running when the process
    # exited may remain, and is never read: file_cache_test.cc checks in one process
    # that a failed fetch removes its own.)
    cached = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert not any(p.name.endswith(gone.name) for p in cached)
    kept = {f.name: f.read_bytes() for f in files if f != gone}
    for p in cached:  # what was cached is whole
        assert p.read_bytes() == kept[p.name.split("-", 1)[1]]
    gone.write_bytes(saved)
    cli("read", uri, "--output", str(out), env=env)
    assert_same_rows(pq.read_table(out), expected)
    cached = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert sorted(p.read_bytes() for p in cached) == sorted(f.read_bytes() for f in files)


# ---- the Python SDK -------------------------------------------------------------------

def test_sdk_takes_delta_rs_storage_options(s3_server, tmp_path, monkeypatch):
    import stratalake
    # Only the storage options name the server: no AWS_* in the environment.
    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    opts = s3_server.delta_rs_options()
    uri = table_uri("sdk")
    rows = pa.table({"k": pa.array([1, 2, 3], pa.int64())})
    assert stratalake.write_deltalake(uri, rows, storage_options=opts)["version"] == 0
    dt = stratalake.DeltaTable(uri, storage_options=opts)
    assert dt.table_uri == uri
    stratalake.write_deltalake(dt, pa.table({"k": pa.array([4], pa.int64())}), mode="append")
    assert sorted(stratalake.DeltaTable(uri).to_pyarrow_table().column("k").to_pylist()) == [1, 2, 3, 4]
    # delta-rs reads what the SDK wrote, with the same dictionary.
    assert DeltaTable(uri, storage_options=opts).version() == 1
    with pytest.raises(Exception, match="unknown storage option 'endpont'"):
        stratalake.DeltaTable(table_uri("x"), storage_options={"endpont": "x"})
