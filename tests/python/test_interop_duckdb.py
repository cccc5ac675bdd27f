"""Interoperability with DuckDB (its `delta` extension) and Polars.

(a) DuckDB's delta_scan reads StrataLake's tables at every version of their history
    (time travel with `version => v`): an unpartitioned and a partitioned table (a
    partition value with a space, a NULL partition), through create, append,
    overwrite, deletion-free merges (update + insert), update, delete, optimize
    (bin-pack and Z-order), and a copy vacuumed with no retention (its VACUUM START /
    VACUUM END commits); every version must hold exactly the rows a model computes
    here (and StrataLake's own read must agree).
(b) Polars' read_delta (every version) and scan_delta (with a filter) read the same
    tables, with the same expectation.
(c) Parquet that DuckDB writes (many types, NULLs) becomes a table through
    `stratalake table write` and reads back equal to DuckDB's own query result.

DuckDB runs with the delta extension of scripts/requirements-duckdb-delta.txt (installed
by bootstrap into .venv/duckdb-delta; it needs its own duckdb), loaded from the package's
file, with extension auto-install off: the test needs no network. DuckDB and Polars run
in a child interpreter that writes Arrow IPC files (deltalake, which Polars reads
through, can abort an interpreter at exit: delta-io/delta-rs#2184).
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from conftest import BIN, rows_of
from stratalake import DeltaTable, write_deltalake

ROOT = Path(__file__).resolve().parents[2]
DUCKDB_DELTA = ROOT / ".venv" / "duckdb-delta"
UTC = dt.timezone.utc

SCHEMA = pa.schema([
    ("id", pa.int64()), ("cat", pa.string()), ("score", pa.float64()),
    ("ts", pa.timestamp("us", "UTC")), ("day", pa.date32()), ("flag", pa.bool_()),
    ("amount", pa.decimal128(10, 2)), ("note", pa.string()),
])


def row(i: int, variant: int = 0) -> dict:
    return {"id": i, "cat": [None, "a", "c d", "b"][i % 4], "score": i * 1.5 + variant,
            "ts": dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(hours=i, minutes=variant),
            "day": dt.date(2024, 1, 1) + dt.timedelta(days=i % 5), "flag": i % 3 == 0,
            "amount": decimal.Decimal(f"{i}.{variant:02d}"), "note": None if i % 5 == 0 else f"n{i}-{variant}"}


def table(rs: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rs, SCHEMA)


class History:
    """A table written by StrataLake with the rows each version must hold."""

    def __init__(self, path: Path, partition_by: list[str] | None):
        self.path, self.partition_by = path, partition_by
        self.model: dict[int, dict] = {}
        self.versions: dict[int, list[dict]] = {}

    def committed(self):
        v = DeltaTable(self.path).version()
        self.versions[v] = [dict(r) for r in self.model.values()]

    def write(self, rs: list[dict], mode: str = "append"):
        write_deltalake(self.path, table(rs), mode=mode, partition_by=self.partition_by)
        if mode == "overwrite":
            self.model.clear()
        self.model.update({r["id"]: r for r in rs})
        self.committed()


def build(h: History):
    h.write([row(i) for i in range(1, 13)], mode="error")
    h.write([row(i) for i in range(13, 21)])
    d = DeltaTable(h.path)
    # A deletion-free merge: matched rows updated from the source, new rows inserted.
    src = [row(i, 1) for i in (2, 3, 7, 21, 22, 23)]
    d.merge(table(src), "target.id = source.id", source_alias="source", target_alias="target") \
        .when_matched_update_all().when_not_matched_insert_all().execute()
    h.model.update({r["id"]: r for r in src})
    h.committed()
    # A merge updating one column only, with a condition.
    d.merge(table([row(i, 2) for i in (4, 5, 6)]), "t.id = s.id", source_alias="s", target_alias="t") \
        .when_matched_update(updates={"score": "s.score + t.score"}, predicate="s.id > 4").execute()
    for i in (5, 6):
        h.model[i] = dict(h.model[i], score=h.model[i]["score"] + row(i, 2)["score"])
    h.committed()
    d.update(updates={"note": "'upd'"}, predicate="score > 20")
    for r in h.model.values():
        if r["score"] > 20:
            r["note"] = "upd"
    h.committed()
    d.delete("flag = true AND id > 10")
    h.model = {k: r for k, r in h.model.items() if not (r["flag"] and k > 10)}
    h.committed()
    d.optimize.compact()
    h.committed()
    d.optimize.z_order(["score"])
    h.committed()
    h.write([row(i, 3) for i in range(30, 34)])
    h.write([row(i, 4) for i in range(40, 46)], mode="overwrite")
    d.update_incremental()
    # VACUUM keeps the files of versions still readable here: retention 0 would delete
    # files of older versions, so it runs with the default retention (nothing to delete).
    d.vacuum(dry_run=False)


CHILD = r'''
import json, os, sys, glob
import pyarrow as pa, pyarrow.ipc as ipc
job = json.loads(sys.argv[1])
out = job["out"]
def save(name, t):
    t = pa.table(t)
    with ipc.new_file(os.path.join(out, name + ".arrow"), t.schema) as w:
        w.write_table(t)
if job["engine"] == "duckdb":
    import duckdb, duckdb_extension_delta
    ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__),
                                 "extensions", "*", "delta.duckdb_extension"))
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    con.load_extension(ext[0])
    save("_version", pa.table({"duckdb": [duckdb.__version__]}))
    for path, versions in job["tables"].items():
        for v in versions:
            q = f"SELECT * FROM delta_scan('{path}', version => {v})"
            save(f"{os.path.basename(path)}-{v}", con.sql(q).fetch_arrow_table())
        save(f"{os.path.basename(path)}-latest", con.sql(f"SELECT * FROM delta_scan('{path}')").fetch_arrow_table())
        save(f"{os.path.basename(path)}-filtered",
             con.sql(f"SELECT * FROM delta_scan('{path}') WHERE score > 60 AND cat = 'c d'").fetch_arrow_table())
elif job["engine"] == "polars":
    import polars as pl
    for path, versions in job["tables"].items():
        for v in versions:
            save(f"{os.path.basename(path)}-{v}", pl.read_delta(path, version=v).to_arrow())
        save(f"{os.path.basename(path)}-latest", pl.scan_delta(path).collect().to_arrow())
        save(f"{os.path.basename(path)}-filtered",
             pl.scan_delta(path).filter((pl.col("score") > 60) & (pl.col("cat") == "c d")).collect().to_arrow())
elif job["engine"] == "duckdb-write":
    import duckdb
    con = duckdb.connect()
    con.sql(job["sql"]).write_parquet(job["parquet"])
    save("expected", con.sql(job["sql"]).fetch_arrow_table())
sys.stdout.flush()
os._exit(0)
'''


def run_child(engine: str, out: Path, **job) -> dict[str, pa.Table]:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if engine == "duckdb":
        assert (DUCKDB_DELTA / "duckdb_extension_delta").is_dir(), (
            f"DuckDB's delta extension is not installed at {DUCKDB_DELTA}: run scripts/bootstrap.sh")
        env["PYTHONPATH"] = os.pathsep.join([str(DUCKDB_DELTA), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"engine": engine, "out": str(out), **job})],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"{engine} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return {p.stem: ipc.open_file(p).read_all() for p in out.glob("*.arrow")}


def expected(rs: list[dict]) -> pa.Table:
    return table(rs)


def problems_of(engine: str, h: History, got: dict[str, pa.Table]) -> list[str]:
    name = h.path.name
    problems = []

    def check(key: str, rs: list[dict]):
        t = got.get(key)
        if t is None:
            problems.append(f"{engine} {key}: no result")
            return
        if sorted(t.column_names) != sorted(SCHEMA.names):
            problems.append(f"{engine} {key}: columns {t.column_names}")
            return
        want = expected(rs)
        if rows_of(t.select(SCHEMA.names)) != rows_of(want):
            problems.append(f"{engine} {key}: {t.num_rows} rows, expected {want.num_rows}: "
                            f"{[r for r in rows_of(t.select(SCHEMA.names)) if r not in rows_of(want)][:3]}")

    for v, rs in h.versions.items():
        check(f"{name}-{v}", rs)
    latest = h.versions[max(h.versions)]
    check(f"{name}-latest", latest)
    check(f"{name}-filtered", [r for r in latest if r["score"] > 60 and r["cat"] == "c d"])
    return problems


def histories(tmp_path: Path) -> list[History]:
    hs = [History(tmp_path / "flat", None), History(tmp_path / "parted", ["cat"])]
    for h in hs:
        build(h)
    # A copy of the partitioned table vacuumed with no retention: the files of older
    # versions go and VACUUM START / VACUUM END commits follow; the versions from the
    # last write on must still read.
    vac = History(tmp_path / "vacuumed", ["cat"])
    shutil.copytree(hs[1].path, vac.path)
    last = max(hs[1].versions)
    vac.model = {r["id"]: r for r in hs[1].versions[last]}
    removed = DeltaTable(vac.path).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    assert removed and [c["operation"] for c in DeltaTable(vac.path).history(2)] == ["VACUUM END", "VACUUM START"]
    vac.versions = {v: hs[1].versions[last] for v in (last, last + 1, last + 2)}
    return hs + [vac]


def test_duckdb_and_polars_read_every_version(tmp_path):
    hs = histories(tmp_path)
    tables = {str(h.path): sorted(h.versions) for h in hs}
    problems = []
    for h in hs:  # StrataLake's own reads agree with the model first
        for v, rs in h.versions.items():
            if rows_of(DeltaTable(h.path, version=v).to_pyarrow_table().select(SCHEMA.names)) != rows_of(expected(rs)):
                problems.append(f"stratalake {h.path.name}-{v}")
    duck = run_child("duckdb", tmp_path / "out-duckdb", tables=tables)
    assert duck["_version"].column(0)[0].as_py() == "1.5.5"
    polars = run_child("polars", tmp_path / "out-polars", tables=tables)
    for h in hs:
        problems += problems_of("duckdb", h, duck)
        problems += problems_of("polars", h, polars)
    assert not problems, "\n".join(problems)
    # The histories did what they meant to: merges without deletes, a partition with a space.
    parted = DeltaTable(tmp_path / "parted")
    ops = [c["operation"] for c in parted.history()]
    assert ops.count("MERGE") == 2 and "OPTIMIZE" in ops and "DELETE" in ops
    assert any("cat=c d/" in p or "cat=c%20d/" in p for p in parted.files())
    assert len(tables[str(tmp_path / "parted")]) == 10
    assert [r for r in hs[1].versions[9] if r["score"] > 60 and r["cat"] == "c d"]  # the filter keeps rows


def test_duckdb_written_parquet_through_the_cli(tmp_path):
    parquet = tmp_path / "duck.parquet"
    sql = """
        SELECT i::BIGINT AS id, i::INTEGER AS i32, (i % 7)::SMALLINT AS i16, (i % 3)::TINYINT AS i8,
               (i * 0.25)::DOUBLE AS f64, (i * 0.5)::REAL AS f32,
               CASE WHEN i % 4 = 0 THEN NULL ELSE 'v' || i END AS s,
               (i % 2 = 0) AS b, DATE '2024-02-28' + i::INTEGER AS d,
               TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_microseconds(i * 1000003) AS ts,
               TIMESTAMP '2024-01-01 00:00:00' + to_seconds(i) AS ts_ntz,
               (i * 1.01)::DECIMAL(12, 2) AS dec, ('bin' || i)::BLOB AS bin,
               [i, i + 1] AS list, {'k': i, 'v': 's' || i} AS st
        FROM range(0, 50) t(i)
    """
    got = run_child("duckdb-write", tmp_path / "out", sql=sql, parquet=str(parquet))
    want = got["expected"]
    path = tmp_path / "from_duckdb"
    proc = subprocess.run([str(BIN), "table", "write", str(path), "--input", str(parquet), "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["version"] == 0
    back = DeltaTable(path).to_pyarrow_table()
    assert back.column_names == want.column_names
    assert rows_of(back) == rows_of(want)
    # Appending the same file again doubles every row.
    subprocess.run([str(BIN), "table", "write", str(path), "--input", str(parquet), "--mode", "append"],
                   check=True, capture_output=True)
    assert rows_of(DeltaTable(path).to_pyarrow_table()) == sorted(rows_of(want) * 2, key=repr)
