"""Shared helpers of the interoperability tests (deltalake and Spark): deterministic test
rows, a Python model of what a table must hold at each version, and readers of
StrataLake's view of a table (rows, files, history) through the CLI."""
from __future__ import annotations

import copy
import datetime as dt
import decimal
import json
import os
import shutil
import urllib.parse
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from conftest import _norm, cli_json, run_cli

UTC = dt.timezone.utc

# Every primitive type the interop suites cover, nulls in every nullable column.
SCHEMA = pa.schema([
    pa.field("id", pa.int64(), nullable=False),
    pa.field("qty", pa.int32()),
    pa.field("score", pa.float64()),
    pa.field("cat", pa.string()),
    pa.field("flag", pa.bool_()),
    pa.field("event_date", pa.date32()),
    pa.field("ts", pa.timestamp("us", tz="UTC")),
    pa.field("amount", pa.decimal128(10, 2)),
])
SCHEMA_SPEC = ("id:long not null,qty:integer,score:double,cat:string,flag:boolean,"
               "event_date:date,ts:timestamp,amount:decimal(10,2)")
NOTE = pa.field("note", pa.string())  # the column schema evolution adds
# String partition values that need escaping in paths (space, non-ASCII) and NULL.
CATS = ["a", "b c", None, "ü"]


def make_row(i: int, variant: int = 0, **override) -> dict:
    """A deterministic row for id `i`; `variant` changes every non-key value."""
    k = i + 3 * variant
    row = dict(
        id=i,
        qty=None if k % 7 == 0 else k % 3,
        score=None if k % 5 == 0 else k * 1.25 + variant * 100,
        cat=CATS[k % 4],
        flag=None if k % 6 == 0 else k % 2 == 0,
        event_date=None if k % 9 == 0 else dt.date(2024, 1, 1) + dt.timedelta(days=k % 4),
        ts=None if k % 8 == 0 else
        dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(hours=k, microseconds=7 * k),
        amount=None if k % 10 == 0 else
        decimal.Decimal(k * 101 * (-1 if k % 4 == 3 else 1)).scaleb(-2),
    )
    if k % 11 == 0:  # before the epoch: stats and partition values of negative days/micros
        if row["ts"] is not None:
            row["ts"] = dt.datetime(1969, 12, 31, 23, tzinfo=UTC) + dt.timedelta(
                seconds=k, microseconds=3 * k)
        if row["event_date"] is not None:
            row["event_date"] = dt.date(1969, 12, 31) - dt.timedelta(days=k % 4)
    row.update(override)
    return row


def rows(ids, variant: int = 0, **override) -> list[dict]:
    return [make_row(i, variant, **override) for i in ids]


def with_note(rs: list[dict], fmt: str = "n{}") -> list[dict]:
    return [dict(r, note=fmt.format(r["id"])) for r in rs]


def to_table(rs: list[dict], schema: pa.Schema = SCHEMA) -> pa.Table:
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in rs], schema)


def write_input(dir_: Path, name: str, rs: list[dict], schema: pa.Schema = SCHEMA) -> str:
    path = Path(dir_) / f"{name}.parquet"
    pq.write_table(to_table(rs, schema), path)
    return str(path)


# ---- null-safe predicate helpers (SQL: a comparison with NULL is not true) ----------

def eq(v, x) -> bool:
    return v is not None and v == x


def gt(v, x) -> bool:
    return v is not None and v > x


def lt(v, x) -> bool:
    return v is not None and v < x


def ge(v, x) -> bool:
    return v is not None and v >= x


def le(v, x) -> bool:
    return v is not None and v <= x


class Model:
    """What a table must hold: rows keyed by id, and the schema."""

    def __init__(self, schema: pa.Schema = SCHEMA):
        self.schema = schema
        self.rows: dict[int, dict] = {}

    def _full(self, r: dict) -> dict:
        return {f.name: r.get(f.name) for f in self.schema}

    def append(self, rs):
        for r in rs:
            assert r["id"] not in self.rows, f"test bug: duplicate id {r['id']}"
            self.rows[r["id"]] = self._full(r)

    def overwrite(self, rs):
        self.rows = {}
        self.append(rs)

    def delete(self, pred):
        self.rows = {k: r for k, r in self.rows.items() if not pred(r)}

    def replace_where(self, pred, rs):
        assert all(pred(self._full(r)) for r in rs), "test bug: rows outside replaceWhere"
        self.delete(pred)
        self.append(rs)

    def update(self, pred, fn):
        for r in self.rows.values():
            if pred(r):
                r.update(fn(r))

    def merge(self, source, delete_when=None, update_all=True, insert=True):
        """Merge on id; delete_when(target, source) is tried first, then update-all."""
        for s in source:
            t = self.rows.get(s["id"])
            if t is not None:
                if delete_when is not None and delete_when(t, s):
                    del self.rows[s["id"]]
                elif update_all:
                    t.update({k: v for k, v in s.items() if k in t})
            elif insert:
                self.rows[s["id"]] = self._full(s)

    def add_column(self, field: pa.Field):
        self.schema = self.schema.append(field)
        for r in self.rows.values():
            r.setdefault(field.name, None)

    def table(self) -> pa.Table:
        return to_table(list(self.rows.values()), self.schema)


class Timeline:
    """The expected content of every version of one table, and which operation and
    writer made it."""

    def __init__(self, path: Path, schema: pa.Schema = SCHEMA, partition_by=()):
        self.path = Path(path)
        self.model = Model(schema)
        self.partition_by = list(partition_by)
        self.expected: dict[int, pa.Table] = {}
        self.operations: dict[int, str] = {}
        self.writers: dict[int, str] = {}
        self.checkpoints: list[int] = []  # versions with a checkpoint, set by the builders
        self.name = ""

    def record(self, version: int, operation: str, writer: str):
        assert version not in self.expected, f"version {version} recorded twice"
        if self.expected:
            assert version == max(self.expected) + 1, (
                f"expected the commit to be version {max(self.expected) + 1}, got {version}")
        self.expected[version] = self.model.table()
        self.operations[version] = operation
        self.writers[version] = writer

    def fork(self, path: Path) -> "Timeline":
        """A copy of the table (files and expectations) at `path`, to continue it apart."""
        shutil.copytree(self.path, path)
        twin = copy.deepcopy(self)
        twin.path = Path(path)
        return twin

    @property
    def latest(self) -> int:
        return max(self.expected)

    @property
    def versions(self) -> list[int]:
        return sorted(self.expected)


# ---- comparison -------------------------------------------------------------------

def deltalake_read(table) -> pa.Table:
    """All rows of a deltalake.DeltaTable, read by delta-rs's own (DataFusion) reader, in
    the table's schema. Its pyarrow-dataset path, to_pyarrow_table(), can abort the
    interpreter at exit (delta-io/delta-rs#2184), so the tests do not use it."""
    from deltalake import QueryBuilder

    target = pa.schema(table.schema().to_arrow())
    data = pa.table(QueryBuilder().register("t", table).execute("SELECT * FROM t").read_all())
    return data.select(target.names).cast(target)


def schema_sig(schema: pa.Schema) -> list:
    """Names and types (no metadata, no nullability: engines differ on the latter)."""
    return [(f.name, str(f.type)) for f in schema]


def norm_rows(table: pa.Table) -> list:
    names = table.column_names
    return sorted((tuple(_norm(r[n]) for n in names) for r in table.to_pylist()), key=repr)


def diff_tables(actual: pa.Table, expected: pa.Table, what: str) -> list[str]:
    """Differences between two tables (column names, types and rows, order ignored)."""
    problems = []
    if schema_sig(actual.schema) != schema_sig(expected.schema):
        problems.append(f"{what}: schema {schema_sig(actual.schema)} != expected "
                        f"{schema_sig(expected.schema)}")
        if sorted(actual.column_names) != sorted(expected.column_names):
            return problems
        actual = actual.select(expected.column_names)
    a, e = norm_rows(actual), norm_rows(expected)
    if a != e:
        missing = [r for r in e if r not in a]
        extra = [r for r in a if r not in e]
        problems.append(f"{what}: {len(a)} rows, expected {len(e)}; missing {missing[:5]}; "
                        f"unexpected {extra[:5]}")
    return problems


# ---- StrataLake through the CLI ---------------------------------------------------

def sl(*args: str):
    """Run a StrataLake CLI command with --json and parse its output."""
    return cli_json(*[str(a) for a in args])


def sl_commit(*args: str) -> int:
    out = sl(*args)
    assert out.get("noop") in (None, False), f"{args} committed nothing: {out}"
    return out["version"]


def sl_read(path, version: int | None, out_dir: Path) -> pa.Table:
    out = Path(out_dir) / f"sl_read_{os.getpid()}_{version}.parquet"
    args = ["read", str(path), "--output", str(out)]
    if version is not None:
        args += ["--version", str(version)]
    run_cli(*args)
    t = pq.read_table(out)
    out.unlink()
    return t


def sl_files(path, version: int | None = None) -> dict:
    """{decoded relative path: (size, partition values as strings)} of a version."""
    args = ["files", str(path)] + (["--version", str(version)] if version is not None else [])
    out = sl(*args)
    return {urllib.parse.unquote(f["path"]): (f["size"], dict(f["partition_values"]))
            for f in out["files"]}


def sl_history(path) -> dict:
    """{version: operation} from StrataLake's history."""
    return {h["version"]: h["operation"] for h in sl("history", str(path))}


def log_actions(path, version: int) -> list[dict]:
    text = (Path(path) / "_delta_log" / f"{version:020d}.json").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def partition_str(v) -> str | None:
    """A typed partition value as the Delta log spells it."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


def copy_without_commits_before(src: Path, dst: Path, version: int) -> Path:
    """A copy of a table whose JSON commits before `version` are gone, so readers
    must start from the checkpoint at `version`."""
    shutil.copytree(src, dst)
    for f in (dst / "_delta_log").glob("*.json"):
        if int(f.name.split(".")[0]) < version:
            f.unlink()
    return dst


def checkpoint_versions(path) -> list[int]:
    return sorted(int(f.name.split(".")[0])
                  for f in (Path(path) / "_delta_log").glob("*.checkpoint*.parquet"))


def last_checkpoint(path) -> dict:
    return json.loads((Path(path) / "_delta_log" / "_last_checkpoint").read_text())


def attempt(problems: list, what: str, fn):
    """Run fn(); a failing CLI call (AssertionError) is recorded as a problem, so that a
    test reports every failing version instead of stopping at the first."""
    try:
        return fn()
    except AssertionError as e:
        problems.append(f"{what}: {str(e).strip()}")
        return None


def plus(v, x):
    return None if v is None else v + x


def times(v, x):
    return None if v is None else v * x


class SlWriter:
    """Runs StrataLake CLI commits on one table and records the expected versions."""

    def __init__(self, tl: Timeline, inputs: Path):
        self.tl = tl
        self.inputs = inputs
        self.n = 0
        self.checkpoints: list[int] = []

    @property
    def p(self) -> str:
        return str(self.tl.path)

    def input(self, rs, schema=None) -> str:
        self.n += 1
        return write_input(self.inputs, f"in{self.n}", rs, schema or self.tl.model.schema)

    def commit(self, operation: str, *args):
        v = sl_commit(*args)
        self.tl.record(v, operation, "stratalake")
        if v % 10 == 0:
            self.checkpoints.append(v)  # delta.checkpointInterval defaults to 10
        return v

    def create(self, partition_by=()):
        args = ["create", self.p, "--schema", SCHEMA_SPEC]
        if partition_by:
            args += ["--partition-by", ",".join(partition_by)]
        self.tl.partition_by = list(partition_by)
        assert cli_json(*args) == {"version": 0}
        self.tl.record(0, "CREATE TABLE", "stratalake")

    def append(self, rs, *extra):
        self.tl.model.append(rs)
        return self.commit("WRITE", "write", self.p, "--input", self.input(rs), *extra)

    def append_new_column(self, rs, field):
        self.tl.model.add_column(field)
        self.tl.model.append(rs)
        return self.commit("WRITE", "write", self.p, "--input", self.input(rs), "--merge-schema")

    def overwrite(self, rs):
        self.tl.model.overwrite(rs)
        return self.commit("WRITE", "write", self.p, "--input", self.input(rs),
                           "--mode", "overwrite")

    def replace_where(self, sql, pred, rs):
        self.tl.model.replace_where(pred, rs)
        return self.commit("WRITE", "write", self.p, "--input", self.input(rs),
                           "--mode", "overwrite", "--where", sql)

    def delete(self, sql, pred):
        self.tl.model.delete(pred)
        return self.commit("DELETE", "delete", self.p, "--where", sql)

    def update(self, sql, pred, sets, fn):
        self.tl.model.update(pred, fn)
        return self.commit("UPDATE", "update", self.p, "--where", sql, "--set", sets)

    def merge(self, rs, delete_when=None, delete_pred=None):
        src = self.input(rs)
        self.tl.model.merge(rs, delete_when=delete_pred)
        args = ["merge", self.p, "--source", src, "--on", "id", "--update-all", "--insert"]
        if delete_when:
            args += ["--delete-when", delete_when]
        return self.commit("MERGE", *args)

    def optimize(self, *extra):
        return self.commit("OPTIMIZE", "optimize", self.p, *extra)

    def checkpoint(self):
        out = cli_json("checkpoint", self.p)
        assert out == {"checkpoint": self.tl.latest}
        self.checkpoints.append(self.tl.latest)


def filter_cases(expected: pa.Table) -> list[dict]:
    """Predicates whose results depend on correct data skipping: each with StrataLake's
    spelling ("sl"), Spark SQL's ("spark") and a Python row predicate ("py"). One exact
    timestamp equality per row checks the millisecond truncation of timestamp stats."""
    ts = lambda s: dt.datetime.fromisoformat(s)  # noqa: E731
    cases = [
        ("qty = 1", "qty = 1", lambda r: eq(r["qty"], 1)),
        ("qty IN (0, 2) AND amount < 0", "qty IN (0, 2) AND amount < 0",
         lambda r: r["qty"] in (0, 2) and lt(r["amount"], 0)),
        ("score > 20 AND score <= 30", "score > 20 AND score <= 30",
         lambda r: gt(r["score"], 20) and le(r["score"], 30)),
        ("cat = 'b c'", "cat = 'b c'", lambda r: eq(r["cat"], "b c")),
        ("cat IS NULL", "cat IS NULL", lambda r: r["cat"] is None),
        ("event_date = '2024-01-02'", "event_date = DATE '2024-01-02'",
         lambda r: eq(r["event_date"], dt.date(2024, 1, 2))),
        ("event_date < '1970-01-01'", "event_date < DATE '1970-01-01'",
         lambda r: lt(r["event_date"], dt.date(1970, 1, 1))),
        ("ts < '1970-01-01T00:00:00Z'", "ts < TIMESTAMP '1970-01-01 00:00:00'",
         lambda r: lt(r["ts"], ts("1970-01-01T00:00:00+00:00"))),
        ("ts >= '2024-01-01T20:00:00Z'", "ts >= TIMESTAMP '2024-01-01 20:00:00'",
         lambda r: ge(r["ts"], ts("2024-01-01T20:00:00+00:00"))),
        ("flag = true", "flag = true", lambda r: eq(r["flag"], True)),
        ("amount >= 10.5", "amount >= 10.5", lambda r: ge(r["amount"], decimal.Decimal("10.5"))),
    ]
    for value in sorted({r["ts"] for r in expected.to_pylist() if r["ts"] is not None}):
        iso = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
        cases.append((f"ts = '{iso}Z'", f"ts = TIMESTAMP '{iso.replace('T', ' ')}'",
                      lambda r, value=value: eq(r["ts"], value)))
    return [dict(sl=a, spark=b, py=c) for a, b, c in cases]


def filtered(expected: pa.Table, pred) -> pa.Table:
    return pa.Table.from_pylist([r for r in expected.to_pylist() if pred(r)],
                                schema=expected.schema)


def sl_read_filtered(path, where: str, out_dir: Path) -> pa.Table:
    out = Path(out_dir) / f"sl_filtered_{os.getpid()}.parquet"
    run_cli("read", str(path), "--filter", where, "--output", str(out))
    t = pq.read_table(out)
    out.unlink()
    return t


def filtered_read_problems(tl, tmp_path) -> list[str]:
    """Differences between StrataLake's filtered reads of the latest version of `tl` (a
    Timeline) and the matching rows of the model, over every case of filter_cases()."""
    expected = tl.expected[tl.latest]
    cli_json("describe", str(tl.path))  # fails fast when the table does not load at all
    problems = []
    for case in filter_cases(expected):
        got = attempt(problems, f"read --filter {case['sl']}",
                      lambda: sl_read_filtered(tl.path, case["sl"], tmp_path))
        if got is not None:
            problems += diff_tables(got, filtered(expected, case["py"]), f"filter {case['sl']}")
    return problems


def sl_version_problems(tl, v: int, tmp_path, problems: list):
    """Read version `v` of `tl` with StrataLake and add its differences from the model to
    `problems`; returns the table read (None when the read failed)."""
    ours = attempt(problems, f"stratalake read v{v}", lambda: sl_read(tl.path, v, tmp_path))
    if ours is not None:
        problems += diff_tables(ours, tl.expected[v], f"stratalake v{v}")
    return ours


def sl_latest_problems(tl) -> list[str]:
    """StrataLake's describe must report the model's latest version."""
    problems = []
    latest = attempt(problems, "describe", lambda: cli_json("describe", str(tl.path)))
    if latest is not None and latest["version"] != tl.latest:
        problems.append(f"describe: version {latest['version']}, expected {tl.latest}")
    return problems

