"""A Feast repository written for the Feast compatibility tests.

`write_repo(dir, offline_store_yaml)` writes feature_store.yaml, the Python
definitions (feature_repo.py, loaded by Feast's own loader) and their Parquet
data: two entities (an int64 and a string key), two FileSources with created
timestamps, two feature views with TTLs, feature services (one with an alias,
one over an on-demand view), and what StrataLake cannot convert (an on-demand
feature view over a request source). The data are written with pyarrow so that
both virtualenvs read the same files.
"""
from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 6, 1, tzinfo=UTC)

DEFINITIONS = '''
from datetime import timedelta

import pandas as pd
from feast import (Entity, FeatureService, FeatureView, Field, FileSource,
                   RequestSource, ValueType)
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64,
                description="A driver.", tags={"team": "rides"})
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)

driver_stats_source = FileSource(
    name="driver_stats_source",
    path="data/driver_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
customer_source = FileSource(
    name="customer_source",
    path="data/customer_profile.parquet",
    timestamp_field="event_timestamp",
)

driver_hourly_stats = FeatureView(
    name="driver_hourly_stats",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="conv_rate", dtype=Float64, description="Conversion rate."),
        Field(name="acc_rate", dtype=Float64),
        Field(name="avg_daily_trips", dtype=Int64),
    ],
    online=True,
    source=driver_stats_source,
    tags={"tier": "gold"},
    owner="rides@example.com",
)
customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(hours=36),
    schema=[
        Field(name="customer_id", dtype=String),
        Field(name="current_balance", dtype=Float64),
        Field(name="segment", dtype=String),
    ],
    online=False,
    source=customer_source,
)

driver_activity = FeatureService(
    name="driver_activity",
    features=[driver_hourly_stats[["conv_rate", "avg_daily_trips"]], customer_profile],
)
driver_aliased = FeatureService(
    name="driver_aliased",
    features=[driver_hourly_stats[["acc_rate"]].with_name("drv")],
)

# What StrataLake cannot convert: request-time Python over a request source.
trip_request = RequestSource(name="trip_request", schema=[Field(name="distance", dtype=Float64)])


@on_demand_feature_view(
    sources=[driver_hourly_stats, trip_request],
    schema=[Field(name="expected_conversions", dtype=Float64)],
)
def trip_estimate(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["expected_conversions"] = inputs["conv_rate"] * inputs["distance"]
    return out


estimate_service = FeatureService(name="estimate_service", features=[trip_estimate])
'''


def write_data(data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    ts = pa.timestamp("us", tz="UTC")
    rows = {"driver_id": [], "event_timestamp": [], "created": [], "conv_rate": [],
            "acc_rate": [], "avg_daily_trips": []}
    for d in (1001, 1002, 1003):
        for h in range(0, 72, 6):
            t = T0 + dt.timedelta(hours=h)
            rows["driver_id"].append(d)
            rows["event_timestamp"].append(t)
            rows["created"].append(t + dt.timedelta(minutes=5))
            rows["conv_rate"].append(round(0.01 * d % 1 + h / 1000, 6))
            rows["acc_rate"].append(round(0.5 + h / 200, 6))
            rows["avg_daily_trips"].append(d % 100 + h)
    # A correction: the same event time written again later wins.
    rows["driver_id"].append(1001)
    rows["event_timestamp"].append(T0 + dt.timedelta(hours=12))
    rows["created"].append(T0 + dt.timedelta(hours=20))
    rows["conv_rate"].append(0.999)
    rows["acc_rate"].append(0.111)
    rows["avg_daily_trips"].append(-1)
    pq.write_table(pa.table({
        "driver_id": pa.array(rows["driver_id"], pa.int64()),
        "event_timestamp": pa.array(rows["event_timestamp"], ts),
        "created": pa.array(rows["created"], ts),
        "conv_rate": pa.array(rows["conv_rate"], pa.float64()),
        "acc_rate": pa.array(rows["acc_rate"], pa.float64()),
        "avg_daily_trips": pa.array(rows["avg_daily_trips"], pa.int64()),
    }), data / "driver_stats.parquet")
    cust = {"customer_id": [], "event_timestamp": [], "current_balance": [], "segment": []}
    for i, c in enumerate(("c1", "c2", "c3")):
        for day in range(0, 3):
            cust["customer_id"].append(c)
            cust["event_timestamp"].append(T0 + dt.timedelta(days=day, hours=i))
            cust["current_balance"].append(100.0 * (i + 1) + day)
            cust["segment"].append(["bronze", "silver", "gold"][(i + day) % 3])
    pq.write_table(pa.table({
        "customer_id": pa.array(cust["customer_id"], pa.string()),
        "event_timestamp": pa.array(cust["event_timestamp"], ts),
        "current_balance": pa.array(cust["current_balance"], pa.float64()),
        "segment": pa.array(cust["segment"], pa.string()),
    }), data / "customer_profile.parquet")


def write_feature_store_yaml(repo: Path, offline_store_yaml: str) -> None:
    (repo / "feature_store.yaml").write_text(textwrap.dedent(f"""\
        project: feast_shop
        registry: data/registry.db
        provider: local
        online_store:
          type: sqlite
          path: data/online.db
        entity_key_serialization_version: 3
        """) + offline_store_yaml)


def write_repo(repo: Path, offline_store_yaml: str = "offline_store:\n  type: file\n") -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    write_data(repo / "data")
    (repo / "feature_repo.py").write_text(DEFINITIONS)
    write_feature_store_yaml(repo, offline_store_yaml)
    return repo
