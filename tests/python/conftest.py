"""Shared fixtures: the CLI binary, the unpacked conformance corpus, and row comparison."""
from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import os
import subprocess
import tarfile  # noqa: F401  (zstd archives are unpacked with the tar command)
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "conformance" / "delta-golden"
BIN = Path(os.environ.get("STRATALAKE_BIN", ROOT / "build" / "bin" / "stratalake"))


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN), "table", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"stratalake {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def cli_json(*args: str):
    return json.loads(run_cli(*args, "--json").stdout)


@pytest.fixture(scope="session")
def golden(tmp_path_factory) -> Path:
    """The conformance corpus, unpacked once per test session."""
    if not CORPUS.is_dir():
        raise AssertionError(f"conformance corpus not found at {CORPUS}")
    out = tmp_path_factory.mktemp("golden")
    for archive in sorted(CORPUS.glob("*.tar.zst")):
        subprocess.run(["tar", "--zstd", "-xf", str(archive), "-C", str(out)], check=True)
    return out


def _norm(v):
    """A comparable, hashable form of a Python value from Arrow's to_pylist()."""
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return ("ts", v.isoformat())
    if isinstance(v, dt.date):
        return ("date", v.isoformat())
    if isinstance(v, decimal.Decimal):
        return ("dec", str(v.normalize()) if v == v else "nan")
    if isinstance(v, float):
        return ("f", "nan" if math.isnan(v) else repr(v))
    if isinstance(v, bytes):
        return ("b", v.hex())
    if isinstance(v, dict):
        return ("d", tuple(sorted((k, _norm(x)) for k, x in v.items())))
    if isinstance(v, (list, tuple)):
        return ("l", tuple(_norm(x) for x in v))
    return ("v", repr(v))


def rows_of(table: pa.Table) -> list:
    """Rows as sorted normalized tuples (row order is not significant)."""
    names = table.column_names
    rows = [tuple(_norm(r[n]) for n in names) for r in table.to_pylist()]
    return sorted(rows, key=repr)


def read_parquet_dir(path: Path) -> pa.Table:
    files = sorted(p for p in path.rglob("*.parquet") if not p.name.startswith((".", "_")))
    tables = [pq.read_table(f) for f in files]
    return pa.concat_tables(tables, promote_options="permissive") if tables else None


def assert_same_rows(actual: pa.Table, expected: pa.Table):
    assert sorted(actual.column_names) == sorted(expected.column_names), (
        actual.column_names, expected.column_names)
    actual = actual.select(expected.column_names)
    assert actual.num_rows == expected.num_rows
    assert rows_of(actual) == rows_of(expected)


class S3Server:
    """A running scripts/s3.sh server (versitygw) with one bucket, "stratalake"."""

    def __init__(self, endpoint: str, data: Path):
        self.endpoint = endpoint
        self.data = data  # the bucket folders (the POSIX backend's root)
        self.env = {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1",
                    "AWS_ACCESS_KEY_ID": "stratalake", "AWS_SECRET_ACCESS_KEY": "stratalake-secret"}

    def delta_rs_options(self) -> dict:
        """storage_options for deltalake (delta-rs) on this server."""
        return {**self.env, "AWS_ALLOW_HTTP": "true", "conditional_put": "etag"}


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """A real S3-compatible server for the module (scripts/s3.sh); its AWS_* settings
    are in os.environ while it runs (and only then), so the CLI and the SDK reach it."""
    d = tmp_path_factory.mktemp("s3")
    script = ROOT / "scripts" / "s3.sh"
    proc = subprocess.run(["bash", str(script), "start", str(d)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"scripts/s3.sh start failed:\n{proc.stderr}")
    server = S3Server(proc.stdout.strip(), d / "data")
    # The read cache of the processes these tests start: in the test's folder.
    cache_env = {"STRATALAKE_CACHE_DIR": str(d / "cache")}
    saved = {k: os.environ.get(k) for k in [*server.env, *cache_env]}
    os.environ.update(server.env)
    os.environ.update(cache_env)
    try:
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        subprocess.run(["bash", str(script), "stop", str(d)], check=False)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local[2] SparkSession with delta-spark for the whole test session (the Spark
    interop tests and the Spark engine's); its Delta jars come from Maven Central through
    Ivy on the first run."""
    import sys
    os.environ["PYSPARK_PYTHON"] = sys.executable  # Python workers from this venv
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    builder = (SparkSession.builder.master("local[2]").appName("stratalake-tests")
               .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
               .config("spark.sql.catalog.spark_catalog",
                       "org.apache.spark.sql.delta.catalog.DeltaCatalog")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.driver.memory", "2g")
               .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("warehouse")))
               # Log replay in 2 tasks instead of 50: the tables here are tiny.
               .config("spark.databricks.delta.snapshotPartitions", "2"))
    session = configure_spark_with_delta_pip(builder).getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
