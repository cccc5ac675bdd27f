"""Drop-in parity of stratalake.DeltaTable / write_deltalake with the `deltalake` package.

ONE program (`program(m, root)`, `m` being the module) runs against both packages, each
in its own interpreter, and every result is compared: the dicts that delete, update,
merge, optimize (compact, z_order) and restore return (their keys, value types, and
values except times), schemas (Delta JSON, fields, Arrow), the rows of every read
(to_pyarrow_table / to_pandas with DNF filters, to_pyarrow_dataset, time travel), the
operation names of the history (VACUUM START / VACUUM END included), and file lists
(how many, in which partition, existing on disk; vacuum's relative paths).

The values that cannot be the same are listed in VALUE_DIFFERENCES with the reason;
docs/python.md ("Differences from deltalake") keeps the same table for users.

deltalake's to_pyarrow_table() can abort the interpreter at exit (delta-io/delta-rs#2184):
the program's interpreter writes its results and leaves with os._exit(0).
"""
from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import pickle
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pyarrow as pa

HERE = Path(__file__).resolve().parent
TIMES = {"execution_time_ms", "scan_time_ms", "rewrite_time_ms"}

# (step, key): why the value differs (the key and its type are still compared).
VALUE_DIFFERENCES = {
    ("compact", "filesAdded"): "file sizes: the Parquet writers differ (totalFiles is compared)",
    ("compact", "filesRemoved"): "file sizes: the Parquet writers differ (totalFiles is compared)",
    ("z_order", "filesAdded"): "file sizes: the Parquet writers differ (totalFiles is compared)",
    ("z_order", "filesRemoved"): "file sizes: the Parquet writers differ (totalFiles is compared)",
    ("merge", "num_target_files_scanned"):
        "delta-rs scans every file; StrataLake skips files outside the source keys' range",
    ("merge", "num_target_files_skipped_during_scan"):
        "delta-rs scans every file; StrataLake skips files outside the source keys' range",
}


def _rows(table) -> list:
    """Rows as sorted JSON text (order is not significant), columns by name."""
    t = pa.table(table)
    t = t.select(sorted(t.column_names))
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in t.to_pylist())


def _metrics(d: dict) -> dict:
    return {"keys": sorted(d), "types": {k: type(v).__name__ for k, v in d.items()},
            "values": {k: v for k, v in d.items() if k not in TIMES}}


def _partition_dirs(paths) -> list:
    """The partition folder of each file (URL-decoded: delta-rs escapes it on disk)."""
    return sorted(urllib.parse.unquote(os.path.dirname(p)) for p in paths)


def program(m, root: Path) -> dict:
    """Every call that code written for deltalake makes, with its result."""
    R = {}
    p = str(root / "t")
    base = pa.table({"id": pa.array([1, 2, 3, 4], pa.int64()), "x": [1.0, 6.0, 7.0, 2.0],
                     "p": ["a", "a", "c d", "c d"]})
    m.write_deltalake(p, base, partition_by=["p"])
    m.write_deltalake(p, pa.table({"id": pa.array([5, 6], pa.int64()), "x": [9.5, 3.0],
                                   "p": ["a", "z"]}), mode="append")
    d = m.DeltaTable(p)
    R["version"] = d.version()
    s = d.schema()
    R["schema.to_json"] = json.loads(s.to_json())
    R["schema.fields"] = [(f.name, repr(f.type), f.type.type, f.nullable, f.metadata) for f in s.fields]
    R["schema.repr"] = repr(s)
    R["schema.to_arrow"] = pa.schema(s.to_arrow()).to_string()
    R["files"] = _partition_dirs(os.path.relpath(u, p) for u in d.file_uris())
    R["file_uris_exist"] = [os.path.isfile(u) for u in d.file_uris()]
    R["file_uris_absolute"] = [os.path.isabs(u) for u in d.file_uris()]

    # ---- reads with deltalake's DNF filters ----
    cases = {
        "all": {},
        "gt": {"filters": [("x", ">", 5.0)]},
        "ge_le": {"filters": [("id", ">=", 2), ("x", "<=", 7.0)]},
        "ne": {"filters": [("id", "!=", 2)]},
        "lt_eq": {"filters": [("x", "<", 6.0), ("id", "=", 4)]},
        "or": {"filters": [[("x", "<", 2.0)], [("p", "=", "c d")]]},
        "in": {"filters": [("p", "in", ["a", "z"])]},
        "not_in": {"filters": [("id", "not in", [1, 5])]},
        "columns": {"columns": ["id", "x"], "filters": [("x", ">", 5.0)]},
        "partitions": {"partitions": [("p", "=", "a")]},
    }
    for name, kw in cases.items():
        R[f"to_pyarrow_table.{name}"] = _rows(d.to_pyarrow_table(**kw))
        R[f"to_pandas.{name}"] = _rows(pa.Table.from_pandas(d.to_pandas(**kw), preserve_index=False))
    import pyarrow.compute as pc
    ds = d.to_pyarrow_dataset()
    R["to_pyarrow_dataset"] = _rows(ds.to_table())
    R["to_pyarrow_dataset.filter"] = _rows(ds.to_table(filter=(pc.field("x") > 5.0) & (pc.field("p") == "a")))
    R["to_pyarrow_dataset.partitions"] = _rows(d.to_pyarrow_dataset(partitions=[("p", "=", "c d")]).to_table())

    # ---- changes ----
    R["delete"] = _metrics(d.delete("x > 6.5"))
    R["delete.none"] = _metrics(d.delete("x > 100"))
    R["update"] = _metrics(d.update(updates={"x": "x + 1"}, predicate="id = 1"))
    R["update.new_values"] = _metrics(d.update(new_values={"x": 0.5}, predicate="id = 4"))
    src = pa.table({"id": pa.array([1, 4, 8], pa.int64()), "x": [10.0, 20.0, 30.0], "p": ["a", "c d", "z"]})
    R["merge"] = _metrics(
        d.merge(src, "t.id = s.id", source_alias="s", target_alias="t")
        .when_matched_update(updates={"x": "s.x + t.x"}, predicate="s.x > 15")
        .when_matched_update_all()
        .when_not_matched_insert_all(predicate="s.id > 5")
        .execute())
    R["merge.rows"] = _rows(d.to_pyarrow_table())
    R["merge.default_aliases"] = _metrics(
        d.merge(pa.table({"id": pa.array([8], pa.int64()), "x": [31.0], "p": ["z"]}),
                "target.id = source.id", source_alias="source", target_alias="target")
        .when_matched_delete().execute())
    for i in range(3):
        m.write_deltalake(p, pa.table({"id": pa.array([100 + i, 200 + i], pa.int64()),
                                       "x": [float(i), float(-i)], "p": ["a", "c d"]}), mode="append")
    d = m.DeltaTable(p)
    R["compact"] = _metrics(d.optimize.compact())
    R["compact.rows"] = _rows(d.to_pyarrow_table())
    R["compact.files"] = _partition_dirs(os.path.relpath(u, p) for u in d.file_uris())
    R["z_order"] = _metrics(d.optimize.z_order(["x"]))
    R["z_order.rows"] = _rows(d.to_pyarrow_table())
    R["restore"] = _metrics(d.restore(1))
    R["restore.rows"] = _rows(d.to_pyarrow_table())

    # ---- vacuum ----
    R["vacuum.kept"] = d.vacuum()  # everything removed is within the 7-day retention
    dry = d.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=True)
    R["vacuum.dry_run"] = _partition_dirs(dry)
    R["vacuum.relative"] = [not os.path.isabs(f) and os.path.isfile(os.path.join(p, f)) for f in dry]
    done = d.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    R["vacuum"] = _partition_dirs(done)
    R["vacuum.deleted"] = [not os.path.exists(os.path.join(p, f)) for f in done]
    d = m.DeltaTable(p)
    R["vacuum.rows"] = _rows(d.to_pyarrow_table())
    R["vacuum.again"] = d.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    history = d.history()
    R["history.operations"] = [h["operation"] for h in history]
    R["history.vacuum"] = [(h["operation"], sorted(h.get("operationParameters", {})),
                            sorted(h.get("operationMetrics", {})))
                           for h in history if h["operation"].startswith("VACUUM")]

    # ---- time travel: versions whose files are still there ----
    R["version.latest"] = d.version()
    R["time_travel"] = {v: _rows(m.DeltaTable(p, version=v).to_pyarrow_table())
                        for v in range(d.version() - 2, d.version() + 1)}
    return R


def _run(module: str, root: Path) -> dict:
    out = root / "results.pkl"
    proc = subprocess.run([sys.executable, __file__, module, str(root), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and out.exists(), (
        f"the program failed with {module} ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return pickle.loads(out.read_bytes())


def _diff(ours, theirs, step: str, problems: list):
    if isinstance(theirs, dict) and set(theirs) == {"keys", "types", "values"}:
        for part in ("keys", "types"):
            if ours[part] != theirs[part]:
                problems.append(f"{step}: {part} {ours[part]} != deltalake's {theirs[part]}")
        for k, v in theirs["values"].items():
            mine = ours["values"].get(k)
            if (step.split(".")[0], k) in VALUE_DIFFERENCES:
                if k in ("filesAdded", "filesRemoved"):
                    mine, v = json.loads(mine)["totalFiles"], json.loads(v)["totalFiles"]
                else:
                    continue
            if mine != v:
                problems.append(f"{step}: {k} = {mine!r}, deltalake {v!r}")
    elif step == "history.operations" and ours[-1:] == ["CREATE TABLE AS SELECT"]:
        # The table's first commit: StrataLake names it as Delta Spark does.
        _diff(ours[:-1] + ["WRITE"], theirs, step, problems)
    elif ours != theirs:
        problems.append(f"{step}: {ours!r}\n    != deltalake's {theirs!r}")


def test_same_program_same_results(tmp_path):
    (tmp_path / "deltalake").mkdir()
    (tmp_path / "stratalake").mkdir()
    theirs = _run("deltalake", tmp_path / "deltalake")
    ours = _run("stratalake", tmp_path / "stratalake")
    assert sorted(ours) == sorted(theirs)
    problems: list[str] = []
    for step in theirs:
        _diff(ours[step], theirs[step], step, problems)
    assert not problems, "\n".join(problems)
    # The program exercised what it meant to (guards against both sides doing nothing).
    assert theirs["merge"]["values"]["num_target_rows_updated"] == 2
    assert theirs["compact"]["values"]["numFilesRemoved"] > 0
    assert theirs["history.operations"][:2] == ["VACUUM END", "VACUUM START"]
    # Where the files-scanned counts differ, they still account for every target file.
    for step in ("merge", "merge.default_aliases"):
        o, t = ours[step]["values"], theirs[step]["values"]
        assert (o["num_target_files_scanned"] + o["num_target_files_skipped_during_scan"]
                == t["num_target_files_scanned"] + t["num_target_files_skipped_during_scan"]), step
    assert ours["merge.default_aliases"]["values"]["num_target_files_skipped_during_scan"] > 0
    assert all(theirs["file_uris_exist"]) and all(theirs["vacuum.relative"]) and theirs["vacuum"]


def test_difference_table_in_docs_lists_every_value_difference():
    doc = (HERE.parents[1] / "docs" / "python.md").read_text()
    section = doc.split("## Differences from deltalake", 1)[1].split("\n## ", 1)[0]
    for (_, key) in VALUE_DIFFERENCES:
        assert f"`{key}`" in section, key


if __name__ == "__main__":
    module, root, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    import warnings
    warnings.simplefilter("ignore")
    results = program(importlib.import_module(module), root)
    out.write_bytes(pickle.dumps(results))
    sys.stdout.flush()
    os._exit(0)
