"""Bad input through the real `stratalake` binary (issue 24): every case is a clear
error with an exact message and exit code, never an abort or a hang, and nothing
stored is lost. docs/feature-repository.md lists these messages under "Bad input"."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import BIN


def sl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def repo(tmp_path) -> Path:
    r = tmp_path / "shop"
    (r / "definitions").mkdir(parents=True)
    (r / "stratalake.yaml").write_text("project: shop\n")
    return r


def test_nested_list_in_definitions_is_an_error_not_an_abort(repo):
    (repo / "stratalake.yaml").write_text("project: shop\ndefinitions:\n  - definitions\n  - [a, b]\n")
    p = sl("plan", "--repo", str(repo))
    assert p.returncode == 1, p.stderr
    assert p.stderr == ("error: stratalake.yaml:4:5: every entry of 'definitions' must be a folder "
                        "or file path, not a list\n")


@pytest.mark.parametrize("yaml,message", [
    ("project: a\nproject: b\n",
     "stratalake.yaml:2:1: duplicate key 'project' (first at line 1); a key may appear once in a "
     "mapping: merge the two or remove one"),
    ("online_store: [1, 2]\n",
     "stratalake.yaml:1:15: 'online_store' must be a type (embedded or redis) or a mapping with "
     "'type' and 'path' or 'url', not a list"),
    ("defaults: [timestamp_field]\n",
     "stratalake.yaml:1:11: 'defaults' must be a mapping (e.g. 'timestamp_field: event_timestamp'), "
     "not a list"),
])
def test_wrong_config_values_name_the_line(repo, yaml, message):
    (repo / "stratalake.yaml").write_text(yaml)
    p = sl("plan", "--repo", str(repo))
    assert (p.returncode, p.stderr) == (1, f"error: {message}\n")


def test_a_second_entities_key_is_not_dropped(repo):
    (repo / "definitions" / "a.yaml").write_text(
        "entities:\n  - name: customer\n    join_keys: [{name: id, type: int64}]\n"
        "entities:\n  - name: seller\n    join_keys: [{name: id, type: int64}]\n")
    p = sl("plan", "--repo", str(repo))
    assert p.returncode == 1
    assert p.stderr == (
        "error: 1 problem in the feature definitions\n  definitions/a.yaml:4:1: duplicate key "
        "'entities' (first at line 1); a key may appear once in a mapping: merge the two or "
        "remove one\n")


@pytest.mark.parametrize("sub", ["describe", "recreate"])
def test_dataset_names_cannot_leave_the_datasets_folder(repo, sub):
    p = sl("datasets", sub, "../../stratalake", "--repo", str(repo))
    assert (p.returncode, p.stderr) == (
        1, "error: invalid dataset name '../../stratalake': use letters, digits, '_' and '-', "
           "starting with a letter\n")


def write_csv(path: Path, text: str) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_table_write_of_rows_longer_than_the_block_never_hangs(tmp_path):
    rows = ["a,b,c"] + [f"{i},{'x' * (1_500_000 if i % 2 == 0 else 10)},z" for i in range(6)]
    csv = write_csv(tmp_path / "long.csv", "\n".join(rows) + "\n")
    for i in range(8):  # the threaded reader hung in about 1 of 3 runs
        p = sl("table", "write", str(tmp_path / f"t{i}"), "--input", str(csv), "--json", timeout=60)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["metrics"]["numOutputRows"] == 6


def test_table_write_of_a_header_longer_than_the_block(tmp_path):
    cols = [f"c{i}_" + "n" * 1000 for i in range(1500)]  # a 1.5 MB header line
    csv = write_csv(tmp_path / "wide.csv", ",".join(cols) + "\n" + ",".join("1" for _ in cols) + "\n")
    p = sl("table", "write", str(tmp_path / "t"), "--input", str(csv), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["metrics"]["numOutputRows"] == 1


def test_input_errors_name_the_file(tmp_path):
    bad = write_csv(tmp_path / "bad.parquet", "not parquet")
    p = sl("table", "write", str(tmp_path / "t"), "--input", str(bad))
    assert (p.returncode, p.stderr) == (
        1, f"error: input '{bad}': Parquet magic bytes not found in footer. Either the file is "
           "corrupted or this is not a parquet file.\n")
    empty = write_csv(tmp_path / "empty.csv", "")
    p = sl("table", "write", str(tmp_path / "t"), "--input", str(empty))
    assert (p.returncode, p.stderr) == (
        1, f"error: input '{empty}': the file is empty: a CSV input needs a header line naming "
           "the columns\n")
    assert not (tmp_path / "t").exists()


def test_a_nul_in_a_column_name_is_an_error_naming_it(tmp_path):
    csv = write_csv(tmp_path / "nul.csv", b"id,a\x00b\n1,2\n")
    p = sl("table", "write", str(tmp_path / "t"), "--input", str(csv))
    assert (p.returncode, p.stderr) == (
        5, f"error: input '{csv}': column name 'a\\0b' holds a NUL character, which Delta column "
           "names cannot hold; rename the column\n")


def test_history_of_a_corrupt_newest_commit_exits_7(tmp_path):
    csv = write_csv(tmp_path / "ok.csv", "id\n1\n")
    table = tmp_path / "t"
    assert sl("table", "write", str(table), "--input", str(csv)).returncode == 0
    commit = table / "_delta_log" / "00000000000000000001.json"
    commit.write_text('{"commitInfo":{"timestamp":1,"operation":"WRITE"}}\n{"add":{"path":"x\n')
    p = sl("table", "history", str(table))
    assert p.returncode == 7, p.stderr
    assert p.stdout == ""
    assert p.stderr == (
        f"error: corrupt Delta log file '{commit}' line 2: invalid JSON at column 18: Missing a "
        "closing quotation mark in string. (the file may be truncated or not a Delta log file)\n")


def test_log_paths_outside_the_table(tmp_path):
    csv = write_csv(tmp_path / "ok.csv", "id\n1\n")
    table = tmp_path / "t"
    assert sl("table", "write", str(table), "--input", str(csv)).returncode == 0
    log = table / "_delta_log"
    commit = log / "00000000000000000001.json"
    add = {"partitionValues": {}, "size": 1, "modificationTime": 0, "dataChange": True}
    commit.write_text(json.dumps({"add": {"path": "../../secret.parquet", **add}}) + "\n")
    p = sl("table", "files", str(table))
    assert (p.returncode, p.stderr) == (
        7, f"error: corrupt Delta log at '{table}': data file '../../secret.parquet' named in "
           f"{commit} leaves the table folder (through '..')\n")
    commit.write_text(json.dumps({"add": {"path": "file://host/secret.parquet", **add}}) + "\n")
    p = sl("table", "files", str(table))
    assert (p.returncode, p.stderr) == (
        6, f"error: data file 'file://host/secret.parquet' named in {commit} is on the host "
           "'host': file:// URIs must name a local path (file:///path)\n")
    outside = tmp_path / "elsewhere.parquet"
    commit.write_text(json.dumps({"add": {"path": str(outside), **add}}) + "\n")
    p = sl("table", "files", str(table))
    assert (p.returncode, p.stderr) == (
        1, f"error: data file '{outside}' named in the log of version 1 is outside the table at "
           f"'{table}' (a shallow clone?); files outside a table are read only when it is opened "
           "with allow_external_paths (CLI: --allow-external-paths)\n")
    p = sl("table", "files", str(table), "--allow-external-paths", "--json")
    assert p.returncode == 0, p.stderr
    assert str(outside) in [f["path"] for f in json.loads(p.stdout)["files"]]


@pytest.mark.parametrize("target", ["../../outside", "/tmp/outside", "bronze//x", "s3://b/x"])
def test_ingest_table_paths_stay_below_the_offline_store(repo, tmp_path, target):
    csv = write_csv(tmp_path / "ok.csv", "id\n1\n")
    p = sl("ingest", target, str(csv), "--repo", str(repo))
    assert (p.returncode, p.stderr) == (
        1, f"error: table path '{target}' must name a folder below the offline store, such as "
           "bronze/raw (relative, without '.', '..' or empty parts)\n")
    assert not (tmp_path / "outside").exists()


def test_ingest_of_a_header_longer_than_the_block_and_of_a_too_long_row(repo, tmp_path):
    cols = [f"c{i}_" + "n" * 1000 for i in range(1500)]  # a 1.5 MB header line
    wide = write_csv(tmp_path / "wide.csv", ",".join(cols) + "\n" + ",".join("1" for _ in cols) + "\n")
    p = sl("ingest", "bronze/wide", str(wide), "--repo", str(repo), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["rows_written"] == 1
    rows = ["a,b"] + [f"{i},{'x' * 1_500_000}" for i in range(3)]
    long = write_csv(tmp_path / "long.csv", "\n".join(rows) + "\n")
    p = sl("ingest", "bronze/long", str(long), "--repo", str(repo))
    assert (p.returncode, p.stderr) == (
        1, f"error: reading '{long}': a row is longer than the CSV reader's block of 1048576 "
           "bytes (the block holds twice the header line); split the long values, or convert the "
           "file to Parquet or JSON lines\n")
    nul = write_csv(tmp_path / "nul.csv", b"id,a\x00b\n1,2\n")
    p = sl("ingest", "bronze/nul", str(nul), "--repo", str(repo))
    assert (p.returncode, p.stderr) == (
        1, f"error: reading '{nul}': column name 'a\\0b' in the header holds a NUL character, "
           "which Delta column names cannot hold; rename the column\n")
