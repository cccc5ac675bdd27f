"""Deletion vectors StrataLake writes (delta.enableDeletionVectors=true), read by others.

A table of 4 data files goes through DELETE (a deletion vector on every file), a second
DELETE (the union with an existing vector), UPDATE, MERGE with a delete clause,
replaceWhere, a checkpoint and a DELETE after it. Every version is read by DuckDB's delta
extension (the one of scripts/requirements-duckdb-delta.txt, in a child interpreter as in
test_interop_duckdb.py), by Spark (conftest.py's `spark`) and by StrataLake, and each
must return exactly the rows a model computes here. delta-rs (deltalake 1.4.2) replays
our log to the same files and reads every version (before 1.4.2 it refused the data). The
deletes leave the data files in place: the files listed before the first DELETE are all
still live after it, with deletion vectors.

Spark-written deletion vectors (the dv-* tables of ../shared/conformance and the Spark
table of test_interop_spark.py) are read by test_conformance.py and
test_interop_spark.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet  # noqa: F401  (pa.parquet)
import pytest

from conftest import cli_json
from interop_util import deltalake_read
from stratalake import DeltaTable, write_deltalake

ROOT = Path(__file__).resolve().parents[2]
DUCKDB_DELTA = ROOT / ".venv" / "duckdb-delta"
SCHEMA = pa.schema([("id", pa.int64()), ("cat", pa.string()), ("score", pa.float64())])


def row(i: int, variant: int = 0) -> dict:
    return {"id": i, "cat": ["a", "b", None, "c d"][i % 4], "score": i * 0.5 + variant}


def table(rs) -> pa.Table:
    return pa.Table.from_pylist(list(rs), SCHEMA)


def canon(t: pa.Table) -> list[tuple]:
    t = t.select(SCHEMA.names).cast(SCHEMA)
    return sorted(tuple(r[n] for n in SCHEMA.names) for r in t.to_pylist())


class Model:
    def __init__(self, path: Path):
        self.path = path
        self.rows: dict[int, dict] = {}
        self.versions: dict[int, list[tuple]] = {}

    def committed(self):
        v = DeltaTable(self.path).version()
        self.versions[v] = canon(table(self.rows.values()))


def dv_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.startswith("deletion_vector_"))


@pytest.fixture(scope="module")
def dv_table(tmp_path_factory) -> Model:
    m = Model(tmp_path_factory.mktemp("dv") / "t")
    conf = {"delta.enableDeletionVectors": "true"}
    for lo in range(0, 1000, 250):
        rs = [row(i) for i in range(lo, lo + 250)]
        write_deltalake(m.path, table(rs), mode="error" if lo == 0 else "append",
                        configuration=conf if lo == 0 else None)
        m.rows.update({r["id"]: r for r in rs})
        m.committed()
    d = DeltaTable(m.path)
    assert d.protocol().min_reader_version == 3 and d.protocol().min_writer_version == 7
    files = set(d.files())
    assert len(files) == 4

    d.delete("id % 7 = 3")
    m.rows = {k: r for k, r in m.rows.items() if k % 7 != 3}
    m.committed()
    assert set(d.files()) == files, "a delete with deletion vectors must not rewrite files"
    assert len(dv_files(m.path)) == 1
    assert d.get_add_actions().column("has_deletion_vector").to_pylist() == [True] * 4

    d.delete("id >= 100 AND id < 120")  # the union with file 0's vector
    m.rows = {k: r for k, r in m.rows.items() if not 100 <= k < 120}
    m.committed()
    assert set(d.files()) == files

    d.update(updates={"cat": "'upd'"}, predicate="id % 11 = 0")
    for k, r in m.rows.items():
        if k % 11 == 0:
            r["cat"] = "upd"
    m.committed()

    src = [dict(row(i, 1), cat="del" if i in (2, 601) else "new") for i in (1, 2, 600, 601, 5000)]
    d.merge(table(src), on=["id"]).when_matched_delete("source.cat = 'del'") \
        .when_matched_update_all().when_not_matched_insert_all().execute()
    for r in src:
        if r["cat"] == "del":
            m.rows.pop(r["id"], None)
        else:
            m.rows[r["id"]] = r
    m.committed()

    new = [row(i, 9) for i in range(900, 910)]
    write_deltalake(m.path, table(new), mode="overwrite", predicate="id >= 900 AND id < 910")
    m.rows = {k: r for k, r in m.rows.items() if not 900 <= k < 910}
    m.rows.update({r["id"]: r for r in new})
    m.committed()
    for f in files:
        assert f in set(DeltaTable(m.path).files())

    cli_json("checkpoint", str(m.path))
    d.delete("id = 5 OR id = 999")  # after the checkpoint: replay from it
    m.rows.pop(5, None)
    m.rows.pop(999, None)
    m.committed()
    return m


def test_deltalake_replays_our_log(dv_table):
    """delta-rs (deltalake 1.4.2, scripts/requirements.txt) replays our log (the remove +
    add of the same path that attaches a vector) to the same files as ours at every
    version, and reads every version's rows. Before 1.4.2 its readers refused deletion
    vectors, with an error naming the feature."""
    import deltalake
    for v in dv_table.versions:
        theirs = sorted(os.path.basename(u) for u in
                        deltalake.DeltaTable(str(dv_table.path), version=v).file_uris())
        ours = sorted(os.path.basename(f) for f in DeltaTable(dv_table.path, version=v).files())
        assert theirs == ours, f"v{v}"
    latest = deltalake.DeltaTable(str(dv_table.path))
    assert "deletionVectors" in latest.protocol().reader_features
    if tuple(int(x) for x in deltalake.__version__.split(".")[:3]) < (1, 4, 2):
        with pytest.raises(Exception, match="(?i)deletion ?vectors"):
            deltalake_read(latest)
    else:
        for v, want in dv_table.versions.items():
            got = deltalake_read(deltalake.DeltaTable(str(dv_table.path), version=v))
            assert canon(got) == want, f"deltalake v{v}"


Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"


def dv_file_name(path_or_inline: str) -> str:
    """The file a 'u' descriptor names (no random prefix here): Z85 -> 16 bytes -> UUID."""
    out = b""
    for i in range(0, len(path_or_inline), 5):
        v = 0
        for c in path_or_inline[i:i + 5]:
            v = v * 85 + Z85.index(c)
        out += v.to_bytes(4, "big")
    h = out.hex()
    return f"deletion_vector_{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}.bin"


def live_vectors(path: Path) -> dict[str, dict]:
    """Replays the JSON commits: the deletionVector of every live add, by data file."""
    live: dict[str, dict | None] = {}
    for commit in sorted((path / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "remove" in action:
                live.pop(action["remove"]["path"], None)
            if "add" in action:
                live[action["add"]["path"]] = action["add"].get("deletionVector")
    return {p: dv for p, dv in live.items() if dv}


def test_vectors_in_the_log(dv_table):
    dvs = live_vectors(dv_table.path)
    assert dvs and all(dv["storageType"] == "u" and len(dv["pathOrInlineDv"]) == 20
                       for dv in dvs.values()), dvs
    # Every live vector's file exists, its size prefix matches, and the cardinalities add
    # up to the rows the data files hold beyond the live ones.
    for dv in dvs.values():
        data = (dv_table.path / dv_file_name(dv["pathOrInlineDv"])).read_bytes()
        assert data[0] == 1
        assert int.from_bytes(data[dv["offset"]:dv["offset"] + 4], "big") == dv["sizeInBytes"]
    total = sum(pa.parquet.read_metadata(dv_table.path / f).num_rows
                for f in DeltaTable(dv_table.path).files())
    assert total - sum(dv["cardinality"] for dv in dvs.values()) == \
        len(dv_table.versions[max(dv_table.versions)])


def test_stratalake_reads_every_version(dv_table):
    for v, want in dv_table.versions.items():
        assert canon(DeltaTable(dv_table.path, version=v).to_pyarrow_table()) == want, f"v{v}"


CHILD = r'''
import glob, json, os, sys
import pyarrow as pa, pyarrow.ipc as ipc
import duckdb, duckdb_extension_delta
job = json.loads(sys.argv[1])
ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__),
                             "extensions", "*", "delta.duckdb_extension"))
con = duckdb.connect(config={"autoinstall_known_extensions": False,
                             "autoload_known_extensions": False})
con.load_extension(ext[0])
for v in job["versions"]:
    t = con.sql(f"SELECT id, cat, score FROM delta_scan('{job['path']}', version => {v})").fetch_arrow_table()
    with ipc.new_file(os.path.join(job["out"], f"{v}.arrow"), t.schema) as w:
        w.write_table(t)
sys.stdout.flush()
os._exit(0)
'''


def test_duckdb_reads_our_deletion_vectors(dv_table, tmp_path):
    assert (DUCKDB_DELTA / "duckdb_extension_delta").is_dir(), (
        f"DuckDB's delta extension is not installed at {DUCKDB_DELTA}: run scripts/bootstrap.sh")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(DUCKDB_DELTA), env.get("PYTHONPATH", "")])
    job = {"path": str(dv_table.path), "out": str(tmp_path), "versions": list(dv_table.versions)}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(job)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"duckdb failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    problems = []
    for v, want in dv_table.versions.items():
        got = canon(ipc.open_file(tmp_path / f"{v}.arrow").read_all())
        if got != want:
            problems.append(f"duckdb v{v}: {len(got)} rows, expected {len(want)}")
    assert not problems, "\n".join(problems)


def test_spark_reads_our_deletion_vectors(dv_table, spark):
    problems = []
    for v, want in dv_table.versions.items():
        df = spark.read.format("delta").option("versionAsOf", v).load(str(dv_table.path))
        got = sorted((r["id"], r["cat"], r["score"]) for r in df.select("id", "cat", "score").collect())
        if got != want:
            problems.append(f"spark v{v}: {len(got)} rows, expected {len(want)}")
    assert not problems, "\n".join(problems)


def test_vacuum_keeps_live_vectors(dv_table, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(dv_table.path, copy)
    before = dv_files(copy)
    DeltaTable(copy).vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)
    live = {dv_file_name(dv["pathOrInlineDv"]) for dv in live_vectors(copy).values()}
    left = dv_files(copy)
    # Exactly the files live adds name are kept (one file per commit that wrote vectors).
    assert set(left) == live and len(left) < len(before), (before, left)
    latest = dv_table.versions[max(dv_table.versions)]
    assert canon(DeltaTable(copy).to_pyarrow_table()) == latest


SILVER = """\
transformations:
  - name: silver_orders
    output: silver.orders
    mode: merge
    keys: [order_id]
    order_by: ts
    on_change: keys
    sql: SELECT order_id, customer_id, amount, ts, status FROM bronze.orders WHERE status <> 'refunded'
"""


def test_keyed_pipeline_output_uses_deletion_vectors(tmp_path):
    """A keyed pipeline output is created with deletion vectors; incremental runs after a
    DELETE and an UPDATE of a bronze table that has them too recompute the changed keys
    by marking rows, and the output equals the query over the whole input."""
    import numpy as np
    from conftest import BIN
    repo = tmp_path / "shop"
    (repo / "definitions").mkdir(parents=True)
    (repo / "definitions" / "pipelines.yaml").write_text(SILVER)
    (repo / "stratalake.yaml").write_text(
        "project: shop\noffline_store: {path: lake}\ndefinitions: [definitions]\n")
    n = 4000
    rng = np.random.default_rng(1)
    orders = pa.table({
        "order_id": np.arange(n, dtype=np.int64), "customer_id": rng.integers(0, 100, n),
        "amount": rng.random(n),
        "ts": pa.array(1_767_225_600_000_000 + rng.integers(0, 10**9, n), pa.timestamp("us", tz="UTC")),
        "status": pa.array(np.array(["placed", "paid", "shipped", "refunded"])[rng.integers(0, 4, n)])})
    bronze = repo / "lake" / "bronze" / "orders"
    silver = repo / "lake" / "silver" / "orders"
    for i in range(4):
        write_deltalake(bronze, orders.slice(i * 1000, 1000), mode="append",
                        configuration={"delta.enableDeletionVectors": "true"} if i == 0 else None)

    def run() -> str:
        p = subprocess.run([str(BIN), "run", "silver_orders", "--json", "--repo", str(repo)],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)[0]["detail"]

    def check():
        got = DeltaTable(silver).to_pyarrow_table()
        want = [r for r in DeltaTable(bronze).to_pyarrow_table().to_pylist() if r["status"] != "refunded"]
        assert sorted(got.column("order_id").to_pylist()) == sorted(r["order_id"] for r in want)

    assert run() == "created"
    assert "deletionVectors" in DeltaTable(silver).protocol().writer_features
    silver_files = set(DeltaTable(silver).files())
    d = DeltaTable(bronze)
    d.delete("order_id % 97 = 3")
    assert run().startswith("recomputed")
    check()
    d.update(updates={"status": "'refunded'"}, predicate="order_id % 89 = 1")
    assert run().startswith("recomputed")
    check()
    assert silver_files <= set(DeltaTable(silver).files()), "silver's files were rewritten"
    assert dv_files(silver) and dv_files(bronze)


CHILD_SQL = r'''
import glob, json, os, sys
import pyarrow as pa, pyarrow.ipc as ipc
import duckdb, duckdb_extension_delta
job = json.loads(sys.argv[1])
ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__),
                             "extensions", "*", "delta.duckdb_extension"))
con = duckdb.connect(config={"autoinstall_known_extensions": False,
                             "autoload_known_extensions": False})
con.load_extension(ext[0])
t = con.sql(f"SELECT {job['columns']} FROM delta_scan('{job['path']}')").fetch_arrow_table()
with ipc.new_file(job["out"], t.schema) as w:
    w.write_table(t)
sys.stdout.flush()
os._exit(0)
'''


def test_incremental_output_with_deletion_vectors_equals_a_full_refresh_for_every_reader(
        tmp_path, spark):
    """A keyed output (created with deletion vectors) recomputed by key after a DELETE, an
    UPDATE and an append of its bronze input holds exactly the rows of the same query run
    with --full-refresh into another table, and delta-rs, DuckDB's delta extension and
    Spark read those rows from it, the replaced rows marked in deletion vectors."""
    import numpy as np
    from conftest import BIN
    repo = tmp_path / "shop"
    (repo / "definitions").mkdir(parents=True)
    full = SILVER.split("transformations:\n", 1)[1].replace(
        "name: silver_orders", "name: silver_orders_full").replace(
        "output: silver.orders", "output: silver.orders_full")
    (repo / "definitions" / "pipelines.yaml").write_text(SILVER + full)
    (repo / "stratalake.yaml").write_text(
        "project: shop\noffline_store: {path: lake}\ndefinitions: [definitions]\n")
    n = 4000
    rng = np.random.default_rng(2)

    def orders(lo, hi):
        k = hi - lo
        return pa.table({
            "order_id": np.arange(lo, hi, dtype=np.int64), "customer_id": rng.integers(0, 100, k),
            "amount": rng.random(k),
            "ts": pa.array(1_767_225_600_000_000 + rng.integers(0, 10**9, k),
                           pa.timestamp("us", tz="UTC")),
            "status": pa.array(np.array(["placed", "paid", "shipped", "refunded"])[
                rng.integers(0, 4, k)])})

    bronze = repo / "lake" / "bronze" / "orders"
    silver = repo / "lake" / "silver" / "orders"
    for i in range(4):
        write_deltalake(bronze, orders(i * 1000, (i + 1) * 1000), mode="append",
                        configuration={"delta.enableDeletionVectors": "true"} if i == 0 else None)

    def run(name, *extra) -> str:
        p = subprocess.run([str(BIN), "run", name, "--json", "--repo", str(repo), *extra],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)[0]["detail"]

    columns = ["order_id", "customer_id", "amount", "ts", "status"]

    def canon_rows(t: pa.Table) -> list[tuple]:
        t = t.select(columns)
        t = t.set_column(3, "ts", t.column("ts").cast(pa.int64()))  # microseconds
        return sorted(tuple(r[c] for c in columns) for r in t.to_pylist())

    def same_as_full():
        run("silver_orders_full", "--full-refresh")
        want = canon_rows(DeltaTable(repo / "lake" / "silver" / "orders_full").to_pyarrow_table())
        assert canon_rows(DeltaTable(silver).to_pyarrow_table()) == want
        return want

    assert run("silver_orders") == "created"
    assert "deletionVectors" in DeltaTable(silver).protocol().reader_features
    same_as_full()
    d = DeltaTable(bronze)
    d.delete("order_id % 53 = 5")
    assert run("silver_orders").startswith("recomputed")
    same_as_full()
    d.update(updates={"status": "'refunded'"}, predicate="order_id % 41 = 2")
    assert run("silver_orders").startswith("recomputed")
    same_as_full()
    write_deltalake(bronze, orders(4000, 4500), mode="append")
    assert run("silver_orders").startswith("merged")
    d.update(updates={"amount": "amount + 1"}, predicate="order_id % 37 = 0")
    assert run("silver_orders").startswith("recomputed")
    want = same_as_full()
    assert dv_files(silver), "the replaced rows were not marked in deletion vectors"

    import deltalake
    assert canon_rows(deltalake_read(deltalake.DeltaTable(str(silver)))) == want, "delta-rs"
    df = spark.read.format("delta").load(str(silver)).selectExpr(
        "order_id", "customer_id", "amount", "unix_micros(ts) AS ts", "status")
    assert canon_rows(pa.Table.from_pylist([r.asDict() for r in df.collect()])) == want, "spark"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(DUCKDB_DELTA), env.get("PYTHONPATH", "")])
    job = {"path": str(silver), "out": str(tmp_path / "duckdb.arrow"),
           "columns": ", ".join(columns)}
    proc = subprocess.run([sys.executable, "-c", CHILD_SQL, json.dumps(job)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"duckdb failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert canon_rows(ipc.open_file(tmp_path / "duckdb.arrow").read_all()) == want, "duckdb"
