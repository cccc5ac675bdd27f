"""The exact shape of a training set (issue 19, item 5) from every front end: entity columns
exactly as given (types, time zones, units, dictionaries, metadata, nullability), then the
features in request order; and the warnings about empty sources (issue 23, item 3)."""
from __future__ import annotations

import base64
import datetime as dt
import subprocess
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import stratalake
from stratalake import FeatureStore

from conftest import BIN

UTC = dt.timezone.utc
FEATURES = ["customer_stats:spend_30d", "customer_profile:country", "last_order:amount",
            "customer_stats:orders_7d"]
IN_ORDER = ["spend_30d", "country", "amount", "orders_7d"]


def sl(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN), *args, "--repo", str(repo)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"stratalake {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    return proc


def init(path: Path) -> Path:
    subprocess.run([str(BIN), "init", str(path), "--customers", "40", "--as-of", "2026-09-01"],
                   check=True, capture_output=True)
    sl(path, "apply")
    return path


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    repo = init(tmp_path_factory.mktemp("shape") / "shop")
    for source, file in [("customers", "customers.csv"), ("orders", "orders.csv"),
                         ("customer_daily_stats", "customer_daily_stats.parquet")]:
        sl(repo, "ingest", source, str(repo / "data" / file))
    return repo


def exotic_entities() -> pa.Table:
    """Entity columns of the types that lose something on a careless round trip."""
    base = dt.datetime(2026, 8, 10, 12, 0, tzinfo=UTC)
    n = 6
    times = [base + dt.timedelta(days=i) for i in range(n)]
    schema = pa.schema([
        pa.field("customer_id", pa.int64(), nullable=False),
        pa.field("event_timestamp", pa.timestamp("us", tz="Europe/Berlin"), metadata={"origin": "labels v2"}),
        pa.field("ts_ms", pa.timestamp("ms", tz="UTC")),
        pa.field("ts_ns", pa.timestamp("ns")),
        pa.field("ts_s", pa.timestamp("s", tz="America/New_York")),
        pa.field("day", pa.date32()),
        pa.field("note", pa.large_string()),
        pa.field("channel", pa.dictionary(pa.int32(), pa.string())),
        pa.field("label", pa.bool_()),
    ], metadata={"dataset": "exotic"})
    return pa.table({
        "customer_id": pa.array(range(1, n + 1), pa.int64()),
        "event_timestamp": pa.array(times, pa.timestamp("us", tz="Europe/Berlin")),
        "ts_ms": pa.array(times, pa.timestamp("ms", tz="UTC")),
        "ts_ns": pa.array([t.replace(tzinfo=None) for t in times], pa.timestamp("ns")),
        "ts_s": pa.array(times, pa.timestamp("s", tz="America/New_York")),
        "day": pa.array([t.date() for t in times], pa.date32()),
        "note": pa.array(["a", None, "c", "d", "e", "f"], pa.large_string()),
        "channel": pa.array(["web", "app", "web", "app", "web", "web"]).dictionary_encode(),
        "label": pa.array([True, False] * 3),
    }, schema=schema)


def assert_entity_part_exact(table: pa.Table, entities: pa.Table) -> None:
    n = entities.num_columns
    assert table.column_names == entities.column_names + IN_ORDER
    for i in range(n):
        assert table.schema.field(i).equals(entities.schema.field(i), check_metadata=True), (
            table.schema.field(i), entities.schema.field(i))
        assert table.column(i).equals(entities.column(i)), entities.schema.field(i).name
    assert (table.schema.metadata or {}).get(b"dataset") == b"exotic"


def read_parquet_exactly(path: Path) -> pa.Table:
    """A Parquet file in the Arrow schema its writer stored (ARROW:schema): pyarrow reads a
    second-unit timestamp back as milliseconds, since Parquet has no seconds."""
    stored = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(
        pq.read_metadata(path).metadata[b"ARROW:schema"])))
    return pq.read_table(path).cast(stored)


def test_sdk_columns_are_the_entities_as_given_then_the_features_in_request_order(shop, tmp_path):
    store = FeatureStore(shop)
    entities = exotic_entities()
    job = store.get_historical_features(entities, FEATURES, progress=False)
    assert job.feature_refs == FEATURES
    table = job.to_arrow()
    assert_entity_part_exact(table, entities)
    assert table.column("spend_30d").null_count < table.num_rows  # the features are there
    # Streamed within a small budget: the same.
    small = store.get_historical_features(entities, FEATURES, memory_budget=1024, progress=False)
    small.to_parquet(tmp_path / "small.parquet")
    back = read_parquet_exactly(tmp_path / "small.parquet")
    assert_entity_part_exact(back, entities)
    assert back.equals(table)


def test_cli_parquet_and_csv_keep_the_order_and_the_entity_columns(shop, tmp_path):
    entities = exotic_entities()
    pq.write_table(entities, tmp_path / "entities.parquet", store_schema=True)
    sl(shop, "get-historical", "--entities", str(tmp_path / "entities.parquet"),
       "--features", ",".join(FEATURES), "--output", str(tmp_path / "out.parquet"))
    cli = read_parquet_exactly(tmp_path / "out.parquet")
    assert_entity_part_exact(cli, entities)
    sdk = FeatureStore(shop).get_historical_features(entities, FEATURES, progress=False).to_arrow()
    assert cli.schema.equals(sdk.schema, check_metadata=True) and cli.equals(sdk)
    # What any Parquet reader sees: the time zone is kept (it was turned into UTC before).
    plain = pq.read_table(tmp_path / "out.parquet")
    assert str(plain.schema.field("event_timestamp").type) == "timestamp[us, tz=Europe/Berlin]"

    sl(shop, "get-historical", "--entities", str(tmp_path / "entities.parquet"),
       "--features", ",".join(FEATURES), "--output", str(tmp_path / "out.csv"))
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == ('"customer_id","event_timestamp","ts_ms","ts_ns","ts_s","day","note",'
                        '"channel","label","spend_30d","country","amount","orders_7d"')
    # Times in their own zones: 12:00 UTC is 14:00 in Berlin (summer), 08:00 in New York.
    assert lines[1].startswith('1,2026-08-10 14:00:00.000000+0200,2026-08-10 12:00:00.000Z,'
                               '2026-08-10 12:00:00.000000000,2026-08-10 08:00:00-0400,2026-08-10,'
                               '"a","web",true,'), lines[1]


def test_a_feature_service_keeps_its_declared_order(shop):
    store = FeatureStore(shop)
    entities = exotic_entities().select(["customer_id", "event_timestamp"])
    job = store.get_historical_features(entities, feature_service="churn_model", progress=False)
    declared = ["customer_profile:country", "customer_profile:segment", "customer_profile:age",
                "customer_stats:orders_30d", "customer_stats:spend_30d", "customer_stats:clicks_7d",
                "customer_stats:days_since_last_order", "last_order:amount"]
    assert job.feature_refs == declared
    assert job.to_arrow().column_names == ["customer_id", "event_timestamp"] + [
        f.split(":")[1] for f in declared]


def test_saved_datasets_give_back_the_exact_schema(shop):
    store = FeatureStore(shop)
    entities = exotic_entities()
    job = store.get_historical_features(entities, FEATURES, progress=False)
    table = job.to_arrow()
    manifest = job.save("exotic_shape")
    assert manifest["feature_refs"] == FEATURES and "arrow_schema" in manifest
    saved = store.get_saved_dataset("exotic_shape").to_arrow()
    assert saved.schema.equals(table.schema, check_metadata=True) and saved.equals(table)
    again = store.recreate_saved_dataset("exotic_shape")
    assert again.identical, again.difference
    assert again.table.schema.equals(table.schema, check_metadata=True)
    recreated = sl(shop, "datasets", "recreate", "exotic_shape")
    assert "identical" in recreated.stdout


def test_empty_sources_warn_with_what_to_run(tmp_path):
    repo = init(tmp_path / "empty")
    entities = pa.table({"customer_id": pa.array([1, 2], pa.int64()),
                         "event_timestamp": pa.array([dt.datetime(2026, 8, 1, tzinfo=UTC)] * 2)})
    pq.write_table(entities, tmp_path / "entities.parquet")
    cli = sl(repo, "get-historical", "--entities", str(tmp_path / "entities.parquet"), "--features",
             "customer_stats:spend_30d,last_order:amount", "--output", str(tmp_path / "out.parquet"))
    assert cli.stderr.splitlines() == [
        "warning: feature view 'customer_stats' has no data: source 'customer_daily_stats' has no "
        "table yet; load it with `stratalake ingest customer_daily_stats FILE`",
        "warning: feature view 'last_order' has no data: source 'orders' has no table yet; load it "
        "with `stratalake ingest orders FILE`",
        "warning: every feature is null in every row: the sources have no rows in the entity rows' "
        "time range; load data with `stratalake ingest SOURCE FILE`, or check --timestamp-column "
        "and the entity times",
    ]
    mat = sl(repo, "materialize", "2026-01-01T00:00:00Z", "2026-09-01T00:00:00Z",
             "--views", "customer_stats")
    assert mat.stderr.splitlines() == [
        "warning: feature view 'customer_stats' has no data: source 'customer_daily_stats' has no "
        "table yet; load it with `stratalake ingest customer_daily_stats FILE`"]
    online = sl(repo, "get-online", "--features", "customer_profile:country", "--entity",
                "customer_id=1,2")
    assert online.stderr.splitlines() == [
        "warning: feature view 'customer_profile' has nothing in the online store: run "
        "`stratalake materialize START END` (or `stratalake materialize-incremental now`)"]

    with FeatureStore(repo) as store:
        with pytest.warns(stratalake.StrataLakeWarning) as caught:
            t = store.get_historical_features(entities, ["customer_stats:spend_30d"],
                                              progress=False).to_arrow()
        assert t.column("spend_30d").null_count == 2
        assert [str(w.message) for w in caught] == [
            "feature view 'customer_stats' has no data: source 'customer_daily_stats' has no table "
            "yet; load it with store.ingest('customer_daily_stats', 'FILE')",
            "every feature is null in every row: the sources have no rows in the entity rows' time "
            "range; load data with store.ingest(source, 'FILE'), or check timestamp_column and the "
            "entity times"]
        assert caught[0].filename == __file__  # points at the caller's line
        with pytest.warns(stratalake.StrataLakeWarning, match=r"store\.materialize\(start_date"):
            store.get_online_features(["customer_profile:country"], entities={"customer_id": [1]})
        with pytest.warns(stratalake.StrataLakeWarning,
                          match=r"source 'customers' has no table yet; load it with "
                                r"store\.ingest\('customers', 'FILE'\)"):
            store.materialize("2026-01-01", "2026-09-01", feature_views=["customer_profile"],
                              progress=False)
        # Loaded and materialized: no warnings.
        store.ingest("customers", repo / "data" / "customers.csv")
        with warnings.catch_warnings():
            warnings.simplefilter("error", stratalake.StrataLakeWarning)
            store.materialize("2026-01-01", "2026-09-01", feature_views=["customer_profile"],
                              progress=False)
            got = store.get_online_features(["customer_profile:country"],
                                            entities={"customer_id": [1, 999999]})
            assert got.statuses()["country"] == ["PRESENT", "NOT_FOUND"]
            store.get_historical_features(entities, ["customer_profile:country"],
                                          progress=False).to_arrow()
