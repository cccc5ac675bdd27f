"""Interoperability with delta-rs (the `deltalake` package), both ways.

(a) Tables StrataLake writes (unpartitioned; partitioned by a string; partitioned by an
    int and a date) through create, append, overwrite, replaceWhere, merge (with and
    without a delete clause), delete, update, schema evolution, optimize (bin-pack and
    Z-order) and checkpoints are read by deltalake at every version and must equal both
    the rows computed here and StrataLake's own read; deltalake's files, statistics and
    history must agree with ours.
(b) Tables deltalake writes (append, overwrite, replaceWhere, delete, merge, update,
    schema evolution, compaction, Z-order, checkpoints), continued by StrataLake
    commits, are read by StrataLake at every version and must equal the computed rows.
"""
from __future__ import annotations

import datetime as dt
import urllib.parse
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from interop_util import (filtered_read_problems, sl_latest_problems, sl_version_problems, NOTE, UTC, SlWriter, Timeline, attempt, checkpoint_versions,
                          copy_without_commits_before, deltalake_read, diff_tables, eq, ge, gt,
                          last_checkpoint,
                          filtered, log_actions, lt, partition_str, plus, rows,
                          sl_files, sl_history, sl_read, times, to_table,
                          with_note)

T10 = dt.datetime(2024, 1, 1, 10, tzinfo=UTC)


# ---- (a) tables written by StrataLake -----------------------------------------------

def build_sl_unpartitioned(w: SlWriter):
    w.create()
    w.append(rows(range(1, 13)))
    w.append(rows(range(13, 21)))
    w.update("qty = 1", lambda r: eq(r["qty"], 1), "score = score * 2, amount = amount + 1",
             lambda r: {"score": times(r["score"], 2), "amount": plus(r["amount"], 1)})
    w.delete("flag = false AND ts < '2024-01-01T10:00:00Z'",
             lambda r: eq(r["flag"], False) and lt(r["ts"], T10))
    w.merge(rows(range(15, 26), 1))
    w.merge(rows([2, 4, 5, 6, 7, 8, 26, 27], 2), delete_when="source.flag = true",
            delete_pred=lambda t, s: eq(s["flag"], True))
    w.replace_where("id >= 20", lambda r: ge(r["id"], 20), rows(range(20, 24), 3))
    w.append_new_column(with_note(rows(range(40, 44))), NOTE)
    w.update("id < 10", lambda r: lt(r["id"], 10), "note = 'upd'", lambda r: {"note": "upd"})
    w.optimize()                                               # version 10: checkpoint
    w.append(with_note(rows(range(50, 56))))
    w.optimize("--zorder-by", "qty,ts")
    w.delete("id = 50", lambda r: eq(r["id"], 50))
    w.overwrite(with_note(rows(range(60, 67), 4)))
    w.append(with_note(rows(range(70, 73))))
    w.checkpoint()                                             # explicit, at version 15


def build_sl_by_string(w: SlWriter):
    w.create(partition_by=["cat"])
    w.append(rows(range(1, 13)))
    w.append(rows(range(13, 25)))
    w.delete("cat = 'a'", lambda r: eq(r["cat"], "a"))         # whole partitions
    w.delete("score > 20", lambda r: gt(r["score"], 20))       # rows inside files
    w.update("id = 5", lambda r: eq(r["id"], 5), "cat = 'zz'", lambda r: {"cat": "zz"})
    w.merge(rows(range(10, 31), 1))
    w.merge(rows([1, 2, 3, 5, 6, 7, 40], 2), delete_when="target.qty = 0",
            delete_pred=lambda t, s: eq(t["qty"], 0))
    w.replace_where("cat = 'b c'", lambda r: eq(r["cat"], "b c"),
                    rows(range(80, 85), 3, cat="b c"))
    w.append_new_column(with_note(rows(range(90, 94))), NOTE)
    w.optimize()                                               # version 10: checkpoint
    w.append(with_note(rows(range(94, 100))))
    w.optimize("--zorder-by", "id,score")
    w.overwrite(with_note(rows(range(100, 111), 5)))
    w.merge(with_note(rows(range(105, 116), 6)))
    w.checkpoint()                                             # explicit, at version 14


def build_sl_by_int_date(w: SlWriter):
    w.create(partition_by=["qty", "event_date"])
    w.append(rows(range(1, 21)))
    w.append(rows(range(21, 31)))
    w.delete("event_date = '2024-01-02'", lambda r: eq(r["event_date"], dt.date(2024, 1, 2)))
    w.update("event_date IS NULL", lambda r: r["event_date"] is None, "qty = 5",
             lambda r: {"qty": 5})
    w.merge(rows(range(25, 36), 1))
    w.replace_where("qty = 1 AND event_date >= '2024-01-03'",
                    lambda r: eq(r["qty"], 1) and ge(r["event_date"], dt.date(2024, 1, 3)),
                    rows(range(120, 126), 2, qty=1, event_date=dt.date(2024, 1, 4)))
    w.optimize()
    w.overwrite(rows(range(200, 211)))
    w.append(rows(range(211, 216)))
    w.delete("amount < 0", lambda r: lt(r["amount"], 0))      # version 10: checkpoint
    w.optimize("--zorder-by", "id")
    w.checkpoint()                                             # explicit, at version 11


SL_BUILDERS = {
    "unpartitioned": build_sl_unpartitioned,
    "by_string": build_sl_by_string,
    "by_int_date": build_sl_by_int_date,
}


@pytest.fixture(scope="module", params=sorted(SL_BUILDERS))
def sl_table(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"sl_{request.param}")
    inputs = root / "inputs"
    inputs.mkdir()
    tl = Timeline(root / "table")
    w = SlWriter(tl, inputs)
    SL_BUILDERS[request.param](w)
    tl.checkpoints = sorted(set(w.checkpoints))
    return tl


def dl_files(table: DeltaTable, partition_by) -> dict:
    """{decoded relative path: (size, partition values as strings)} as deltalake sees them."""
    if not table.file_uris():
        return {}  # get_add_actions panics on a table without files (deltalake 1.2.1)
    out = {}
    for r in pa.table(table.get_add_actions(flatten=True)).to_pylist():
        pv = {c: partition_str(r[f"partition.{c}"]) for c in partition_by}
        out[urllib.parse.unquote(r["path"])] = (r["size_bytes"], pv)
    return out


def dl_adds(table: DeltaTable) -> list[dict]:
    if not table.file_uris():
        return []
    return pa.table(table.get_add_actions(flatten=True)).to_pylist()


def test_deltalake_reads_every_version(sl_table, tmp_path):
    tl = sl_table
    assert DeltaTable(str(tl.path)).version() == tl.latest
    problems = []
    for v in tl.versions:
        theirs = deltalake_read(DeltaTable(str(tl.path), version=v))
        problems += diff_tables(theirs, tl.expected[v], f"deltalake v{v}")
        ours = sl_version_problems(tl, v, tmp_path, problems)
        if ours is None:
            continue
        if [(f.name, str(f.type), f.nullable) for f in ours.schema] != \
                [(f.name, str(f.type), f.nullable) for f in theirs.schema]:
            problems.append(f"v{v}: schemas differ: ours {ours.schema} theirs {theirs.schema}")
    assert not problems, "\n".join(problems)


def test_deltalake_sees_our_files(sl_table):
    tl = sl_table
    problems = []
    for v in tl.versions:
        table = DeltaTable(str(tl.path), version=v)
        theirs = dl_files(table, tl.partition_by)
        ours = sl_files(tl.path, v)
        if theirs != ours:
            problems.append(f"v{v}: deltalake files {sorted(theirs.items())} != ours "
                            f"{sorted(ours.items())}")
        # DeltaTable.file_uris() (files() is gone since deltalake 1.4): the same files,
        # as paths under the table's root.
        root = str(tl.path).rstrip("/") + "/"
        listed = sorted(urllib.parse.unquote(u[len(root):] if u.startswith(root) else u)
                        for u in table.file_uris())
        if listed != sorted(ours):
            problems.append(f"v{v}: DeltaTable.file_uris() {listed} != ours {sorted(ours)}")
        for f in ours:
            if not (tl.path / f).is_file():
                problems.append(f"v{v}: {f} is not on disk")
    assert not problems, "\n".join(problems)


def _floor_ms(v):
    if isinstance(v, dt.datetime):
        return v.replace(microsecond=v.microsecond // 1000 * 1000)
    return v


def test_deltalake_sees_our_statistics(sl_table):
    """numRecords, nullCount, minValues and maxValues of every file we wrote, as deltalake
    parses them, equal the data in the file (timestamps truncated to milliseconds)."""
    tl = sl_table
    seen = {}
    for v in tl.versions:
        schema = tl.expected[v].schema
        for r in dl_adds(DeltaTable(str(tl.path), version=v)):
            seen[r["path"]] = (r, schema)
    assert seen
    problems = []
    for path, (r, schema) in sorted(seen.items()):
        data = pq.ParquetFile(tl.path / urllib.parse.unquote(path)).read()
        if r["num_records"] != data.num_rows:
            problems.append(f"{path}: numRecords {r['num_records']} != {data.num_rows}")
        for f in schema:
            if f.name in tl.partition_by:
                continue
            if f.name not in data.column_names:
                # A file written before the column existed: its stats may not mention it.
                if r.get(f"null_count.{f.name}") not in (None, data.num_rows):
                    problems.append(f"{path}: nullCount.{f.name} = {r[f'null_count.{f.name}']}")
                continue
            col = data.column(f.name)
            if r.get(f"null_count.{f.name}") != col.null_count:
                problems.append(f"{path}: nullCount.{f.name} = {r.get(f'null_count.{f.name}')}"
                                f", data has {col.null_count}")
            if pa.types.is_boolean(f.type):
                continue  # no min/max for booleans (as in Spark)
            mm = pc.min_max(col).as_py()
            for key in ("min", "max"):
                want = _floor_ms(mm[key])
                if f"{key}.{f.name}" not in r:
                    problems.append(f"{path}: no {key}Values.{f.name} stat")
                    continue
                got = r[f"{key}.{f.name}"]
                if got != want:
                    problems.append(f"{path}: {key}Values.{f.name} = {got!r}, data {want!r}")
    assert not problems, "\n".join(problems)


def test_deltalake_history_sees_our_operations(sl_table):
    tl = sl_table
    theirs = {h["version"]: h["operation"] for h in DeltaTable(str(tl.path)).history()}
    assert theirs == tl.operations
    assert sl_history(tl.path) == tl.operations


def test_checkpoints_read_by_deltalake(sl_table, tmp_path):
    """The automatic checkpoint (every 10 commits) and the explicit one exist, and a copy
    of the table without the JSON commits before a checkpoint reads the same."""
    tl = sl_table
    assert checkpoint_versions(tl.path) == tl.checkpoints
    assert last_checkpoint(tl.path)["version"] == tl.checkpoints[-1]
    problems = []
    for c in tl.checkpoints:
        copy = copy_without_commits_before(tl.path, tmp_path / f"from_{c}", c)
        for v in range(c, tl.latest + 1):
            theirs = deltalake_read(DeltaTable(str(copy), version=v))
            problems += diff_tables(theirs, tl.expected[v], f"deltalake from checkpoint {c}, v{v}")
            ours = attempt(problems, f"stratalake read from checkpoint {c}, v{v}",
                           lambda: sl_read(copy, v, tmp_path))
            if ours is not None:
                problems += diff_tables(ours, tl.expected[v],
                                        f"stratalake from checkpoint {c}, v{v}")
        problems += diff_tables(deltalake_read(DeltaTable(str(copy))), tl.expected[tl.latest],
                                f"deltalake latest from checkpoint {c}")
        if dl_files(DeltaTable(str(copy)), tl.partition_by) != sl_files(tl.path):
            problems.append(f"checkpoint {c}: deltalake's files differ from ours")
    assert not problems, "\n".join(problems)


def test_optimize_commits(sl_table):
    """OPTIMIZE keeps the rows, marks its actions dataChange=false and leaves one file per
    partition (all test data is far below the target size)."""
    tl = sl_table
    optimizes = [v for v, op in tl.operations.items() if op == "OPTIMIZE"]
    assert len(optimizes) == 2
    for v in optimizes:
        actions = log_actions(tl.path, v)
        adds = [a["add"] for a in actions if "add" in a]
        removes = [a["remove"] for a in actions if "remove" in a]
        assert adds and removes
        assert all(a["dataChange"] is False for a in adds + removes), actions
        assert diff_tables(tl.expected[v], tl.expected[v - 1], "optimize") == []
        files = dl_files(DeltaTable(str(tl.path), version=v), tl.partition_by)
        partitions = {tuple(sorted(pv.items())) for _, pv in files.values()}
        assert len(files) == len(partitions), files


# ---- (b) tables written by deltalake, read by StrataLake -------------------------------

class DlWriter:
    """Runs deltalake writes on one table and records the expected versions; later
    StrataLake commits continue the same table."""

    def __init__(self, tl: Timeline, inputs: Path):
        self.tl = tl
        self.sl = SlWriter(tl, inputs)
        self.checkpoints: list[int] = []

    @property
    def p(self) -> str:
        return str(self.tl.path)

    def _record(self):
        v = DeltaTable(self.p).version()
        self.tl.record(v, None, "deltalake")  # operation names: compared with deltalake's

    def write(self, rs, mode, schema=None, **kw):
        write_deltalake(self.p, to_table(rs, schema or self.tl.model.schema), mode=mode, **kw)
        self._record()

    def create(self, rs, partition_by=()):
        self.tl.partition_by = list(partition_by)
        self.tl.model.append(rs)
        self.write(rs, "error", partition_by=list(partition_by) or None)

    def append(self, rs):
        self.tl.model.append(rs)
        self.write(rs, "append")

    def append_new_column(self, rs, field):
        self.tl.model.add_column(field)
        self.tl.model.append(rs)
        self.write(rs, "append", schema_mode="merge")

    def overwrite(self, rs):
        self.tl.model.overwrite(rs)
        self.write(rs, "overwrite")

    def replace_where(self, sql, pred, rs):
        self.tl.model.replace_where(pred, rs)
        self.write(rs, "overwrite", predicate=sql)

    def delete(self, sql, pred):
        self.tl.model.delete(pred)
        DeltaTable(self.p).delete(sql)
        self._record()

    def update(self, sql, pred, sets: dict, fn):
        self.tl.model.update(pred, fn)
        DeltaTable(self.p).update(updates=sets, predicate=sql)
        self._record()

    def merge(self, rs):
        self.tl.model.merge(rs)
        (DeltaTable(self.p).merge(to_table(rs, self.tl.model.schema), "t.id = s.id",
                                  source_alias="s", target_alias="t")
         .when_matched_update_all().when_not_matched_insert_all().execute())
        self._record()

    def compact(self):
        DeltaTable(self.p).optimize.compact()
        self._record()

    def z_order(self, cols):
        DeltaTable(self.p).optimize.z_order(cols)
        self._record()

    def checkpoint(self):
        DeltaTable(self.p).create_checkpoint()
        self.checkpoints.append(self.tl.latest)


def build_dl_unpartitioned(w: DlWriter):
    w.create(rows(range(1, 13)))
    w.append(rows(range(13, 21)))
    w.replace_where("id >= 15", lambda r: ge(r["id"], 15), rows(range(15, 19), 1))
    w.delete("flag = false", lambda r: eq(r["flag"], False))
    w.merge(rows(range(16, 26), 2))
    w.update("qty = 1", lambda r: eq(r["qty"], 1), {"score": "score * 2"},
             lambda r: {"score": times(r["score"], 2)})
    w.append_new_column(with_note(rows(range(30, 34))), NOTE)
    w.compact()
    w.checkpoint()                                             # at version 7
    w.append(with_note(rows(range(40, 46))))
    w.z_order(["qty", "ts"])
    w.overwrite(with_note(rows(range(50, 61), 3)))
    w.delete("amount < 0", lambda r: lt(r["amount"], 0))
    w.checkpoint()                                             # at version 11


def continue_dl_unpartitioned(w: SlWriter):
    w.append(with_note(rows(range(70, 76))))
    w.merge(with_note(rows(range(55, 73), 4)))
    w.update("id > 70", lambda r: gt(r["id"], 70), "note = 'sl'", lambda r: {"note": "sl"})
    w.delete("qty = 2", lambda r: eq(r["qty"], 2))


def build_dl_by_string(w: DlWriter):
    w.create(rows(range(1, 13)), partition_by=["cat"])
    w.append(rows(range(13, 25)))
    w.replace_where("cat = 'a'", lambda r: eq(r["cat"], "a"), rows(range(30, 34), 1, cat="a"))
    w.delete("score > 20", lambda r: gt(r["score"], 20))
    w.update("id = 5", lambda r: eq(r["id"], 5), {"cat": "'zz'"}, lambda r: {"cat": "zz"})
    w.merge(rows(range(10, 29), 2))
    w.compact()
    w.checkpoint()                                             # at version 6
    w.append(rows(range(40, 51)))


def continue_dl_by_string(w: SlWriter):
    w.delete("cat = 'ü'", lambda r: eq(r["cat"], "ü"))
    w.merge(rows(range(45, 56), 3))
    w.optimize()
    w.append(rows(range(60, 64)))                              # version 11


DL_BUILDERS = {"dl_unpartitioned": (build_dl_unpartitioned, continue_dl_unpartitioned),
               "dl_by_string": (build_dl_by_string, continue_dl_by_string)}


@pytest.fixture(scope="module", params=sorted(DL_BUILDERS))
def dl_table(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    tl = Timeline(root / "table")
    w = DlWriter(tl, root)
    DL_BUILDERS[request.param][0](w)
    tl.checkpoints = sorted(set(w.checkpoints))
    tl.name = request.param
    return tl


def test_stratalake_reads_deltalake_tables_every_version(dl_table, tmp_path):
    tl = dl_table
    problems = []
    for v in tl.versions:
        theirs = deltalake_read(DeltaTable(str(tl.path), version=v))
        problems += diff_tables(theirs, tl.expected[v], f"deltalake v{v} (the expectation)")
        sl_version_problems(tl, v, tmp_path, problems)
    problems += sl_latest_problems(tl)
    assert not problems, "\n".join(problems)


def test_stratalake_files_match_deltalake(dl_table):
    tl = dl_table
    problems = []
    for v in tl.versions:
        theirs = dl_files(DeltaTable(str(tl.path), version=v), tl.partition_by)
        ours = attempt(problems, f"stratalake files v{v}", lambda: sl_files(tl.path, v))
        if ours is not None and theirs != ours:
            problems.append(f"v{v}: ours {sorted(ours.items())} != deltalake's "
                            f"{sorted(theirs.items())}")
    assert not problems, "\n".join(problems)


def test_stratalake_history_of_deltalake_tables(dl_table):
    tl = dl_table
    theirs = {h["version"]: h["operation"] for h in DeltaTable(str(tl.path)).history()}
    ours = sl_history(tl.path)
    assert ours == theirs
    assert sorted(ours) == tl.versions


def test_stratalake_reads_deltalake_checkpoints(dl_table, tmp_path):
    tl = dl_table
    assert checkpoint_versions(tl.path) == tl.checkpoints
    assert last_checkpoint(tl.path)["version"] == tl.checkpoints[-1]
    problems = []
    for c in tl.checkpoints:
        copy = copy_without_commits_before(tl.path, tmp_path / f"from_{c}", c)
        for v in range(c, tl.latest + 1):
            ours = attempt(problems, f"stratalake read from checkpoint {c}, v{v}",
                           lambda: sl_read(copy, v, tmp_path))
            if ours is not None:
                problems += diff_tables(ours, tl.expected[v],
                                        f"stratalake from checkpoint {c}, v{v}")
    assert not problems, "\n".join(problems)


def test_stratalake_filters_on_deltalake_stats(dl_table, tmp_path):
    """StrataLake's file skipping uses the statistics deltalake wrote: filtered reads of
    the latest version return exactly the matching rows."""
    problems = filtered_read_problems(dl_table, tmp_path)
    assert not problems, "\n".join(problems)


def test_stratalake_continues_deltalake_table(dl_table, tmp_path):
    """StrataLake commits on a table deltalake wrote; both read every new version."""
    tl = dl_table.fork(tmp_path / "table")
    first = tl.latest + 1
    w = SlWriter(tl, tmp_path)
    DL_BUILDERS[tl.name][1](w)
    assert tl.latest > first
    problems = []
    for v in range(first, tl.latest + 1):
        theirs = deltalake_read(DeltaTable(str(tl.path), version=v))
        problems += diff_tables(theirs, tl.expected[v], f"deltalake v{v}")
        ours = sl_read(tl.path, v, tmp_path)
        problems += diff_tables(ours, tl.expected[v], f"stratalake v{v}")
        if dl_files(DeltaTable(str(tl.path), version=v), tl.partition_by) != sl_files(tl.path, v):
            problems.append(f"v{v}: deltalake's files differ from ours")
    assert not problems, "\n".join(problems)
    history = {h["version"]: h["operation"] for h in DeltaTable(str(tl.path)).history()}
    assert {v: history[v] for v in range(first, tl.latest + 1)} == \
        {v: tl.operations[v] for v in range(first, tl.latest + 1)}
    assert checkpoint_versions(tl.path) == sorted(set(tl.checkpoints + w.checkpoints))


