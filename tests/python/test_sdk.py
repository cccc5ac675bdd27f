"""The Python SDK: every public function, with pyarrow, pandas, polars and DuckDB inputs;
round trips with the deltalake package; errors raise the documented classes; the examples
run; the GIL is released; Ctrl-C stops long calls."""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable as RsDeltaTable
from deltalake import write_deltalake as rs_write

import stratalake
from stratalake import DeltaTable, FeatureStore, write_deltalake

from conftest import BIN

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc


def orders(n: int = 6, start: int = 1) -> pa.Table:
    return pa.table({
        "id": pa.array(range(start, start + n), pa.int64()),
        "country": pa.array(["DE", "US", "FR"] * (n // 3) + ["DE"] * (n % 3)),
        "amount": pa.array([float(i) * 1.5 for i in range(n)]),
        "ts": pa.array([dt.datetime(2026, 1, 1 + i % 28, tzinfo=UTC) for i in range(n)],
                       pa.timestamp("us", "UTC")),
    })


def duck(table: pa.Table, sql: str):
    """A DuckDB relation (which speaks __arrow_c_stream__) over `table` registered as t."""
    con = duckdb.connect()
    con.register("t", table)
    return con.sql(sql)


def rows(t: pa.Table, key: str = "id") -> list:
    return sorted(t.to_pylist(), key=lambda r: r[key])


# ---- tables ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["pyarrow", "pandas", "polars", "duckdb", "batch", "reader", "dict"])
def test_write_accepts_every_arrow_compatible_input(tmp_path, kind):
    t = orders()
    data = {"pyarrow": lambda: t, "pandas": lambda: t.to_pandas(), "polars": lambda: pl.from_arrow(t),
            "duckdb": lambda: duck(t, "SELECT * FROM t"), "batch": lambda: t.to_batches()[0],
            "reader": lambda: pa.RecordBatchReader.from_batches(t.schema, t.to_batches()),
            "dict": lambda: t.to_pydict()}[kind]()
    r = write_deltalake(tmp_path / "t", data)
    assert r["version"] == 0
    back = DeltaTable(tmp_path / "t").to_pyarrow_table()
    assert rows(back.select(["id", "country", "amount"])) == rows(t.select(["id", "country", "amount"]))


def test_reads_as_pyarrow_pandas_polars_and_batches(tmp_path):
    write_deltalake(tmp_path / "t", orders(30), partition_by=["country"])
    d = DeltaTable(tmp_path / "t")
    assert d.to_pyarrow_table().num_rows == 30
    assert isinstance(d.to_pandas(), pd.DataFrame) and len(d.to_pandas()) == 30
    assert isinstance(d.to_polars(), pl.DataFrame) and d.to_polars().height == 30
    reader = d.to_batches(columns=["id", "amount"], filter="country = 'DE'")
    assert isinstance(reader, pa.RecordBatchReader)
    got = reader.read_all()
    assert got.column_names == ["id", "amount"]
    assert got.num_rows == 10
    assert d.to_pyarrow_table(filter="amount > 30").num_rows == 9
    assert pl.DataFrame(d).height == 30  # DeltaTable itself speaks __arrow_c_stream__
    assert d.schema().to_arrow().field("ts").type == pa.timestamp("us", "UTC")
    assert d.metadata().partition_columns == ["country"]
    assert len(d.files()) == 3 and d.get_add_actions().num_rows == 3


def test_modes_schema_evolution_and_replace_where(tmp_path):
    p = tmp_path / "t"
    write_deltalake(p, orders(3))
    with pytest.raises(stratalake.TableAlreadyExistsError):
        write_deltalake(p, orders(3))
    assert write_deltalake(p, orders(3), mode="ignore")["noop"] is True
    write_deltalake(p, orders(3, start=10), mode="append")
    assert DeltaTable(p).to_pyarrow_table().num_rows == 6
    wider = orders(2, start=20).append_column("vip", pa.array([True, False]))
    with pytest.raises(stratalake.SchemaMismatchError):
        write_deltalake(p, wider, mode="append")
    write_deltalake(p, wider, mode="append", schema_mode="merge")
    assert "vip" in DeltaTable(p).schema().to_arrow().names
    write_deltalake(p, orders(1, start=99).append_column("vip", pa.array([None], pa.bool_())),
                    mode="overwrite", predicate="id >= 20")
    assert sorted(DeltaTable(p).to_pandas()["id"]) == [1, 2, 3, 10, 11, 12, 99]
    with pytest.raises(stratalake.DefinitionError):
        write_deltalake(p, orders(1), mode="append", predicate="id > 1")
    with pytest.raises(ValueError):
        write_deltalake(p, orders(1), mode="upsert")


def test_history_time_travel_and_restore(tmp_path):
    p = tmp_path / "t"
    write_deltalake(p, orders(3))
    time.sleep(0.02)  # commit times have millisecond resolution: keep the two apart
    write_deltalake(p, orders(3, start=4), mode="append")
    d = DeltaTable(p)
    assert d.version() == 1
    h = d.history()
    assert [c["version"] for c in h] == [1, 0] and h[0]["operation"] == "WRITE"
    assert DeltaTable(p, version=0).to_pyarrow_table().num_rows == 3
    d.load_as_version(0)
    assert d.to_pyarrow_table().num_rows == 3
    d.update_incremental()
    assert d.version() == 1
    t0 = h[1]["timestamp"]
    assert DeltaTable(p, timestamp=t0).version() == 0
    d.restore(0)
    assert d.version() == 2 and d.to_pyarrow_table().num_rows == 3
    with pytest.raises(stratalake.VersionNotFoundError):
        DeltaTable(p, version=42)


def test_merge_update_delete(tmp_path):
    p = tmp_path / "t"
    write_deltalake(p, orders(6))
    d = DeltaTable(p)
    src = pd.DataFrame({"id": [1, 2, 100], "country": ["XX", "YY", "ZZ"], "amount": [0.0, -1.0, 5.0],
                        "ts": pd.to_datetime(["2026-02-01"] * 3, utc=True)})
    m = (d.merge(src, "target.id = source.id")
         .when_matched_delete("source.amount < 0")
         .when_matched_update({"country": "source.country"})
         .when_not_matched_insert_all()
         .execute())
    assert d.version() == 1
    assert (m["num_source_rows"], m["num_target_rows_inserted"], m["num_target_rows_updated"],
            m["num_target_rows_deleted"]) == (3, 1, 1, 1)
    got = {r["id"]: r["country"] for r in d.to_pyarrow_table().to_pylist()}
    assert got[1] == "XX" and 2 not in got and got[100] == "ZZ"
    d.merge(pl.DataFrame({"id": [3], "country": ["Q"], "amount": [9.0]}).with_columns(
        pl.lit(dt.datetime(2026, 3, 1, tzinfo=UTC)).alias("ts")), on=["id"]).when_matched_update_all().execute()
    assert {r["id"]: r["country"] for r in d.to_pyarrow_table().to_pylist()}[3] == "Q"
    d.update(updates={"amount": "amount * 2"}, predicate="id = 4")
    d.update(new_values={"country": "NEW"}, predicate="id = 5")
    d.delete("id = 6")
    by_id = {r["id"]: r for r in d.to_pyarrow_table().to_pylist()}
    assert by_id[4]["amount"] == 9.0 and by_id[5]["country"] == "NEW" and 6 not in by_id
    with pytest.raises(stratalake.UnsupportedFeatureError):
        d.merge(src, "target.id > source.id")
    with pytest.raises(stratalake.DefinitionError):
        d.update(predicate="id = 1")


def test_optimize_and_vacuum(tmp_path):
    p = tmp_path / "t"
    for i in range(4):
        write_deltalake(p, orders(3, start=10 * i), mode="append")
    d = DeltaTable(p)
    assert len(d.files()) == 4
    m = d.optimize.compact()
    assert len(d.files()) == 1 and d.version() == 4
    assert (m["numFilesRemoved"], m["numFilesAdded"], m["totalConsideredFiles"]) == (4, 1, 4)
    d.optimize.z_order(["amount"])
    assert d.vacuum() == []  # the removed files are within the 7-day retention
    removed = d.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    assert len(removed) >= 4 and not any(f.startswith("/") for f in removed)
    assert [c["operation"] for c in d.history(2)] == ["VACUUM END", "VACUUM START"]
    assert d.to_pyarrow_table().num_rows == 12
    with pytest.raises(stratalake.OperationNotAllowedError):
        d.vacuum(retention_hours=0)


def test_round_trips_with_deltalake(tmp_path):
    write_deltalake(tmp_path / "ours", orders(9), partition_by=["country"])
    theirs = RsDeltaTable(str(tmp_path / "ours"))
    assert theirs.version() == 0
    assert sorted(theirs.to_pyarrow_dataset().to_table().column("id").to_pylist()) == list(range(1, 10))
    rs_write(str(tmp_path / "rs"), orders(5))
    rs_write(str(tmp_path / "rs"), orders(2, start=50), mode="append")
    back = DeltaTable(tmp_path / "rs")
    assert back.version() == 1
    assert sorted(back.to_pandas()["id"]) == [1, 2, 3, 4, 5, 50, 51]


def test_issue24_an_integer_overflow_names_the_column(tmp_path):
    want = ("data: column 'big': Python int too large to convert to C long; a Delta long holds "
            "-2**63 to 2**63-1: store larger values as decimal or string")
    with pytest.raises(OverflowError) as e:
        write_deltalake(tmp_path / "t", {"id": [1, 2], "big": [1, 2**64]})
    assert str(e.value) == want
    with pytest.raises(OverflowError) as e:
        write_deltalake(tmp_path / "t", [{"id": 1}, {"id": 2, "big": 2**64}])  # not in row 1
    assert str(e.value) == want
    assert not (tmp_path / "t").exists()


def test_issue24_a_nul_in_a_column_name_is_an_error_naming_it(tmp_path):
    with pytest.raises(stratalake.SchemaMismatchError) as e:
        write_deltalake(tmp_path / "t", pa.table({"id": [1], "a\0b": [2]}))
    assert str(e.value) == ("column name 'a\\0b' holds a NUL character, which Delta column names "
                            "cannot hold; rename the column")
    assert not (tmp_path / "t").exists()


def test_table_errors_are_specific(tmp_path):
    with pytest.raises(stratalake.TableNotFoundError) as e:
        DeltaTable(tmp_path / "nope")
    assert "nope" in str(e.value)
    assert issubclass(stratalake.TableNotFoundError, stratalake.StrataLakeError)
    with pytest.raises(TypeError, match="pandas or polars DataFrame"):
        write_deltalake(tmp_path / "t", 42)
    write_deltalake(tmp_path / "c", orders(3), configuration={"delta.constraints.pos": "amount >= 0"})
    bad = orders(1).set_column(2, "amount", pa.array([-1.0]))
    with pytest.raises(stratalake.ConstraintViolationError):
        write_deltalake(tmp_path / "c", bad, mode="append")
    assert DeltaTable(tmp_path / "c").version() == 0


def test_the_gil_is_released_during_engine_calls(tmp_path):
    big = pa.table({"id": pa.array(range(3_000_000), pa.int64()),
                    "x": pa.array([1.0] * 3_000_000)})
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    started = len(ticks)
    write_deltalake(tmp_path / "big", big)
    DeltaTable(tmp_path / "big").to_pyarrow_table()
    stop.set()
    t.join()
    assert len(ticks) - started > 20  # the ticker ran while the engine worked


# ---- feature store --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("sdk") / "shop"
    subprocess.run([str(BIN), "init", str(repo), "--customers", "300"], check=True, capture_output=True)
    store = FeatureStore(repo_path=repo)
    store.apply(message="sdk test")
    for source, file in [("customers", "customers.csv"), ("orders", "orders.csv"),
                         ("customer_daily_stats", "customer_daily_stats.parquet"),
                         ("churn_labels", "churn_labels.parquet")]:
        store.ingest(source, repo / "data" / file)
    store.close()
    return repo


def test_definitions_and_plan(shop):
    store = FeatureStore(shop)
    assert store.registry_version == 1
    assert store.plan().empty and store.apply()["changed"] is False
    assert [v["name"] for v in store.list_feature_views()] == [
        "customer_profile", "customer_stats", "last_order", "live_clicks"]
    assert store.get_feature_view("customer_stats")["ttl"] == "2d"
    assert store.get_entity("customer")["join_keys"][0]["name"] == "customer_id"
    assert store.get_feature_service("churn_model")["name"] == "churn_model"
    assert {s["name"] for s in store.list_sources()} >= {"orders", "clicks_stream"}
    with pytest.raises(stratalake.ObjectNotFoundError, match="no feature view named 'nope'"):
        store.get_feature_view("nope")


@pytest.mark.parametrize("kind", ["pandas", "polars", "pyarrow", "duckdb"])
def test_historical_features_from_any_frame(shop, kind):
    store = FeatureStore(shop)
    labels = DeltaTable(shop / "lake" / "silver" / "churn_labels").to_pyarrow_table().slice(0, 200)
    frame = {"pandas": labels.to_pandas(), "polars": pl.from_arrow(labels), "pyarrow": labels,
             "duckdb": duck(labels, "SELECT * FROM t")}[kind]
    job = store.get_historical_features(entity_df=frame, feature_service="churn_model",
                                        timestamp_column="label_ts", progress=False)
    t = job.to_arrow()
    assert t.num_rows == 200
    assert t.column_names[:len(labels.column_names)] == labels.column_names
    assert "spend_30d" in t.column_names and "country" in t.column_names
    assert job.registry_version == 1
    assert {s["source"] for s in job.sources} == {"customers", "customer_daily_stats", "orders"}
    assert isinstance(job.to_pandas(), pd.DataFrame) and isinstance(job.to_polars(), pl.DataFrame)


def test_historical_features_agree_with_the_cli(shop, tmp_path):
    store = FeatureStore(shop)
    labels = DeltaTable(shop / "lake" / "silver" / "churn_labels").to_pyarrow_table()
    job = store.get_historical_features(labels, ["customer_stats:spend_30d", "last_order:amount"],
                                        timestamp_column="label_ts", full_feature_names=True,
                                        progress=False)
    job.to_parquet(tmp_path / "sdk.parquet")
    pq.write_table(labels, tmp_path / "labels.parquet")
    subprocess.run([str(BIN), "get-historical", "--repo", str(shop), "--entities",
                    str(tmp_path / "labels.parquet"), "--timestamp-column", "label_ts", "--features",
                    "customer_stats:spend_30d,last_order:amount", "--full-feature-names", "--output",
                    str(tmp_path / "cli.parquet")], check=True, capture_output=True)
    assert pq.read_table(tmp_path / "sdk.parquet").equals(pq.read_table(tmp_path / "cli.parquet"))
    assert "customer_stats__spend_30d" in job.to_arrow().column_names


def test_saved_datasets_recreate_identically(shop):
    store = FeatureStore(shop)
    labels = DeltaTable(shop / "lake" / "silver" / "churn_labels").to_pandas().head(100)
    job = store.get_historical_features(labels, feature_service="churn_model",
                                        timestamp_column="label_ts", progress=False)
    manifest = job.save("sdk_train")
    assert manifest["rows"] == 100 and manifest["registry_version"] == 1
    saved = store.get_saved_dataset("sdk_train")
    assert saved.to_arrow().num_rows == 100
    assert "sdk_train" in [d["name"] for d in store.list_saved_datasets()]
    again = store.recreate_saved_dataset("sdk_train")
    assert again.identical and again.difference == ""
    with pytest.raises(stratalake.ObjectNotFoundError):
        store.get_saved_dataset("nope")


def test_feature_errors(shop):
    store = FeatureStore(shop)
    labels = pd.DataFrame({"customer_id": [1], "event_timestamp": pd.to_datetime(["2026-05-01"], utc=True)})
    with pytest.raises(stratalake.FeatureNotFoundError, match="has no feature 'nope'"):
        store.get_historical_features(labels, ["customer_stats:nope"], progress=False)
    with pytest.raises(stratalake.FeatureNotFoundError, match="unknown feature service"):
        store.get_historical_features(labels, feature_service="nope", progress=False)
    with pytest.raises(stratalake.SchemaMismatchError, match="no timestamp column 'when'"):
        store.get_historical_features(labels, ["customer_stats:spend_30d"], timestamp_column="when",
                                      progress=False)
    with pytest.raises(stratalake.DefinitionError):
        store.get_online_features(["customer_profile:country"])
    with pytest.raises(stratalake.DefinitionError, match="not bool"):
        store.get_online_features(["customer_profile:country"], entities={"customer_id": [True]})


def test_materialize_online_and_push(shop):
    with FeatureStore(shop) as store:
        report = store.materialize(dt.datetime(2026, 1, 1), "now", progress=False)
        assert {r["view"] for r in report} == {"customer_profile", "customer_stats", "last_order", "live_clicks"}
        inc = store.materialize_incremental("now", feature_views=["customer_profile"], progress=False)
        assert inc[0]["incremental"] and inc[0]["files_read"] == 0
        resp = store.get_online_features(["customer_profile:country", "customer_profile:age"],
                                         entity_rows=[{"customer_id": 1}, {"customer_id": 999999}])
        d = resp.to_dict()
        assert d["customer_id"] == [1, 999999] and d["country"][1] is None
        assert resp.statuses()["country"] == ["PRESENT", "NOT_FOUND"]
        assert resp.to_arrow().schema.field("age").type == pa.int32()
        assert list(resp.to_pandas().columns) == ["customer_id", "country", "age"]
        now = dt.datetime.now(UTC)
        pushed = store.push("clicks_stream", pd.DataFrame({
            "customer_id": [7], "page": ["/sdk"], "dwell_ms": [12], "event_ts": [now]}), to="online_and_offline")
        assert pushed["rows"] == 1 and pushed["delta_version"] == 0
        got = store.get_online_features(["live_clicks:page"], entities={"customer_id": [7]},
                                        full_feature_names=True).to_dict()
        assert got["live_clicks__page"] == ["/sdk"]
        with pytest.raises(stratalake.DataRejectedError):
            store.push("clicks_stream", {"customer_id": ["x"], "event_ts": [now.isoformat()]})


def test_examples_run(tmp_path):
    for example in ["quickstart.py", "walkthrough.py"]:
        proc = subprocess.run([sys.executable, str(ROOT / "examples" / example), str(tmp_path / example)],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        assert "StrataLakeWarning" not in proc.stderr, proc.stderr
        if example == "walkthrough.py":
            # Issue 23: the sample data ends yesterday, so every customer is scored on fresh
            # features, whatever today is (not on zeros, OUTSIDE_MAX_AGE).
            scores = [line for line in proc.stdout.splitlines() if "churn score" in line]
            assert len(scores) == 5 and all(line.endswith("(PRESENT)") for line in scores), proc.stdout
    assert "quickstart done" in subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), str(tmp_path / "again")],
        capture_output=True, text=True).stdout


def test_ctrl_c_stops_a_long_call(tmp_path):
    script = tmp_path / "long.py"
    script.write_text(f"""
import sys, time
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
from stratalake import FeatureStore
repo = {str(tmp_path / 'r')!r}
import os, pathlib
p = pathlib.Path(repo); (p / "definitions").mkdir(parents=True)
(p / "stratalake.yaml").write_text("project: c\\noffline_store: lake\\nonline_store:\\n  type: embedded\\n  path: online\\nregistry: r.db\\ndefinitions: [definitions]\\n")
(p / "definitions" / "d.yaml").write_text('''
entities: [{{name: u, join_keys: [{{name: user_id, type: int64}}]}}]
sources:
  - {{name: s, path: gold/s, timestamp_field: ts, schema: [{{name: user_id, type: int64}}, {{name: ts, type: timestamp}}, {{name: x, type: float64}}]}}
feature_views:
  - {{name: v, entities: [u], source: s, ttl: 0, features: [{{name: x, type: float64}}]}}
''')
store = FeatureStore(repo)
store.apply()
rng = np.random.default_rng(1)
for i in range(40):
    n = 200_000
    pq.write_table(pa.table({{"user_id": rng.integers(0, 10**6, n), "ts": pa.array(rng.integers(0, 10**15, n), pa.timestamp("us", "UTC")), "x": rng.random(n)}}), p / f"f{{i}}.parquet")
    store.ingest("s", p / f"f{{i}}.parquet")
print("ready", flush=True)
t0 = time.time()
try:
    for _ in range(100):
        store.materialize("1970-01-01", "2100-01-01", progress=False)
    print("finished", flush=True)
except KeyboardInterrupt:
    print(f"interrupted after {{time.time() - t0:.1f}}s", flush=True)
""")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.startswith("interrupted after"), out + err
