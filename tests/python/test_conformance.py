"""The Delta reader conformance corpus (../shared/conformance/delta-golden): 89 tables
written by Spark. Positive cases must read exactly the expected rows; special cases must
show the stated facts; negative cases must fail with a clear, specific error."""
from __future__ import annotations

import datetime as dt
import urllib.parse

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import assert_same_rows, cli_json, read_parquet_dir, run_cli

POSITIVE = """
124-decimal-decode-bug 125-iterator-bug basic-decimal-table basic-decimal-table-legacy
basic-with-inserts-deletes-checkpoint basic-with-inserts-merge
basic-with-inserts-overwrite-restore basic-with-inserts-updates
basic-with-vacuum-protocol-check-feature corrupted-last-checkpoint-kernel
data-reader-array-complex-objects data-reader-array-primitives
data-reader-date-types-America data-reader-date-types-Asia data-reader-date-types-Etc
data-reader-date-types-Iceland data-reader-date-types-Jst data-reader-date-types-Pst
data-reader-date-types-utc data-reader-escaped-chars data-reader-map
data-reader-nested-struct data-reader-nullable-field-invalid-schema-key
data-reader-primitives data-reader-timestamp_ntz data-reader-timestamp_ntz-id-mode
data-reader-timestamp_ntz-name-mode data-skipping-basic-stats-all-types
data-skipping-basic-stats-all-types-checkpoint
data-skipping-basic-stats-all-types-columnmapping-name
data-skipping-change-stats-collected-across-versions
data-skipping-partition-and-data-column decimal-various-scale-precision
deltalog-getChanges dv-partitioned-with-checkpoint dv-with-columnmapping
kernel-timestamp-int96 kernel-timestamp-pst kernel-timestamp-timestamp_micros
kernel-timestamp-timestamp_millis log-replay-dv-key-cases
log-replay-latest-metadata-protocol log-replay-special-characters
log-replay-special-characters-a multi-part-checkpoint only-checkpoint-files
parquet-decimal-dictionaries parquet-decimal-dictionaries-v2 parquet-decimal-type
snapshot-data0 snapshot-data1 snapshot-data2 snapshot-data2-deleted snapshot-data3
snapshot-repartitioned snapshot-vacuumed table-with-columnmapping-mode-name
table-with-columnmapping-mode-id time-travel-partition-changes-a
time-travel-partition-changes-b time-travel-schema-changes-a
time-travel-schema-changes-b time-travel-start time-travel-start-start20
time-travel-start-start20-start40 v2-checkpoint-json v2-checkpoint-parquet
""".split()

# Known traps (docs/delta.md lists them with their status).
TRAPS_WITH_EXPECTED = """
data-reader-partition-values data-skipping-basic-stats-all-types-columnmapping-id
parquet-all-types parquet-all-types-legacy-format
""".split()

NEGATIVE = {
    "deltalog-invalid-protocol-version": (6, "requires Delta reader version"),
    "deltalog-state-reconstruction-from-checkpoint-missing-metadata": (7, "no metaData action"),
    "deltalog-state-reconstruction-from-checkpoint-missing-protocol": (7, "no protocol action"),
    "deltalog-state-reconstruction-without-metadata": (7, "no metaData action"),
    "deltalog-state-reconstruction-without-protocol": (7, "no protocol action"),
    "no-delta-log-folder": (3, "no Delta table at"),
    "versions-not-contiguous": (7, "versions are not contiguous"),
}


def read_all(golden, name, tmp_path):
    out = tmp_path / f"{name}.parquet"
    run_cli("read", str(golden / name / "delta"), "--output", str(out))
    return pq.read_table(out)


def expected_rows(golden, name):
    """The table's expected/ rows (None for an empty latest snapshot)."""
    expected = read_parquet_dir(golden / name / "expected")
    if name == "data-reader-partition-values":
        # The corpus README: the as_timestamp partition value "2021-09-08 11:11:11" is the
        # UTC instant 2021-09-08T11:11:11+00:00 (expected/ holds a session-time-zone shift).
        col = expected.column("as_timestamp")
        fixed = pa.array([None if v is None else dt.datetime(2021, 9, 8, 11, 11, 11, tzinfo=dt.timezone.utc)
                          for v in col.to_pylist()], col.type)
        expected = expected.set_column(expected.schema.get_field_index("as_timestamp"),
                                       "as_timestamp", fixed)
    return expected


@pytest.mark.parametrize("name", POSITIVE + TRAPS_WITH_EXPECTED)
def test_positive(golden, name, tmp_path):
    expected = expected_rows(golden, name)
    actual = read_all(golden, name, tmp_path)
    if expected is None:  # an empty latest snapshot
        assert actual.num_rows == 0
        return
    assert_same_rows(actual, expected)


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_negative(golden, name):
    code, message = NEGATIVE[name]
    proc = run_cli("read", str(golden / name / "delta"), check=False)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert proc.stderr.startswith("error: ")


def test_checkpoint_table(golden):
    d = cli_json("describe", str(golden / "checkpoint" / "delta"))
    assert d["version"] == 14
    assert d["num_files"] == 1


def test_get_changes_app_transactions(golden):
    d = cli_json("describe", str(golden / "deltalog-getChanges" / "delta"))
    assert d["app_transactions"].get("fakeAppId") == 3
    assert "nonExistentAppId" not in d["app_transactions"]


@pytest.mark.parametrize("name", ["canonicalized-paths-normal-a", "canonicalized-paths-normal-b",
                                  "canonicalized-paths-special-a", "canonicalized-paths-special-b"])
def test_canonicalized_paths(golden, name):
    f = cli_json("files", str(golden / name / "delta"))
    assert f["version"] == 1
    assert f["files"] == []


def test_delete_re_add_same_file(golden):
    f = cli_json("files", str(golden / "delete-re-add-same-file-different-transactions" / "delta"))
    by_name = {x["path"].rsplit("/", 1)[-1]: x for x in f["files"]}
    assert sorted(by_name) == ["bar", "foo"]
    assert by_name["foo"]["modification_time"] == 1700000000000


def test_special_characters_b(golden):
    f = cli_json("files", str(golden / "log-replay-special-characters-b" / "delta"))
    names = [urllib.parse.unquote(x["path"]).rsplit("/", 1)[-1] for x in f["files"]]
    assert names == ["special p@#h"]


def test_commit_info_history(golden):
    h = cli_json("history", str(golden / "deltalog-commit-info" / "delta"))
    assert len(h) == 1
    assert h[0]["operation"] == "WRITE"
    assert h[0]["timestamp"] == 1540415658000
    assert h[0]["commitInfo"]["userMetadata"] == "foo"


def test_absolute_paths_without_metadata(golden):
    # This log has no metaData action at all, which the protocol requires; we refuse it
    # with the same error as the without-metadata negative case (docs/delta.md).
    proc = run_cli("files", str(golden / "data-reader-absolute-paths-escaped-chars" / "delta"), check=False)
    assert proc.returncode == 7, proc.stderr
    assert "no metaData action" in proc.stderr


@pytest.mark.parametrize("name", ["update-deleted-directory"])
def test_missing_data_files(golden, name):
    table = golden / name / "delta"
    f = cli_json("files", str(table))
    assert len(f["files"]) > 0
    proc = run_cli("read", str(table), check=False)
    assert proc.returncode == 7, proc.stderr
    assert "does not exist" in proc.stderr


def test_hive_layout_is_not_a_delta_table(golden):
    proc = run_cli("read", str(golden / "hive"), check=False)
    assert proc.returncode == 3, proc.stderr
    assert "no Delta table at" in proc.stderr
