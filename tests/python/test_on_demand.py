"""On-demand feature views end to end: definitions (plan, apply, listing, errors with
FILE:LINE:COL), the feature server with request data inside `entities` (Feast's way), the
CLI, and the Python SDK, online values equal to get_historical_features' for the same rows."""
from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import stratalake
from conftest import BIN
from test_serving import NOW, Server, make_shop, sl

ON_DEMAND = """request_sources:
  - name: order_request
    schema:
      - {name: order_amount, type: float64}
      - {name: lat, type: float64}
      - {name: lon, type: float64}
on_demand_feature_views:
  - name: order_features
    sources: [order_request, customer_profile]
    features:
      - {name: amount_per_year, type: float64, expression: "order_amount / nullif(age, 0)"}
      - {name: age_bucket, type: int64, expression: "bucket(age, 25, 40, 60)"}
      - {name: distance_km, type: float64, expression: "round(haversine(lat, lon, 52.52, 13.405), 3)"}
      - name: vip_big
        type: string
        expression: >-
          CASE WHEN segment = 'vip' AND order_amount > 100 THEN 'yes'
               WHEN order_amount IS NULL THEN NULL ELSE 'no' END
  - name: order_scores
    sources: [order_features]
    features:
      - {name: score, type: float64, expression: "coalesce(amount_per_year, 0) + age_bucket"}
feature_services:
  - name: order_model
    features: [customer_profile:segment, order_features, order_scores]
"""

FEATURES = ["customer_profile:age", "order_features", "order_scores:score"]
OUTPUTS = ["age", "amount_per_year", "age_bucket", "distance_km", "vip_big", "score"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    repo = make_shop(tmp_path_factory.mktemp("on_demand") / "shop")
    (repo / "definitions" / "on_demand.yaml").write_text(ON_DEMAND)
    sl("apply", repo=repo)
    sl("materialize", "2020-01-01T00:00:00Z", NOW, repo=repo)
    return repo


def request_rows(n: int, seed: int):
    rng = random.Random(seed)
    ids = [rng.randint(1, 220) for _ in range(n)]  # some beyond the 200 customers
    amounts = [None if rng.random() < 0.1 else round(rng.uniform(0, 500), 2) for _ in range(n)]
    lats = [rng.uniform(-80, 80) for _ in range(n)]
    lons = [rng.uniform(-180, 180) for _ in range(n)]
    return ids, amounts, lats, lons


def historical(repo: Path, ids, amounts, lats, lons, features, tmp_path: Path) -> dict:
    now = dt.datetime.strptime(NOW, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    store = stratalake.FeatureStore(repo)
    entity_df = pa.table({"customer_id": pa.array(ids, pa.int64()),
                          "event_timestamp": pa.array([now] * len(ids), pa.timestamp("us", "UTC")),
                          "order_amount": pa.array(amounts, pa.float64()),
                          "lat": pa.array(lats, pa.float64()), "lon": pa.array(lons, pa.float64())})
    return store.get_historical_features(entity_df, features, progress=False).to_arrow().to_pydict()


def test_plan_apply_and_listing_show_them(shop):
    out = sl("on-demand-feature-views", "list", repo=shop).stdout
    assert "order_features" in out and "order_scores" in out
    desc = json.loads(sl("on-demand-feature-views", "describe", "order_features", "--json",
                         repo=shop).stdout)
    assert "nullif(age, 0)" in json.dumps(desc)
    assert "order_request" in sl("request-sources", "list", repo=shop).stdout
    shown = sl("registry", "show", repo=shop).stdout
    assert "on_demand_feature_view" in shown and "request_source" in shown
    store = stratalake.FeatureStore(shop)
    views = {v.name: v for v in store.list_on_demand_feature_views()}
    assert set(views) == {"order_features", "order_scores"}
    assert views["order_features"].sources == ["order_request", "customer_profile"]
    assert views["order_features"].features[1].expression == "bucket(age, 25, 40, 60)"
    assert [f.name for f in store.get_request_source("order_request").schema] == [
        "order_amount", "lat", "lon"]


def test_definition_errors_name_file_line_and_column(shop, tmp_path):
    bad = tmp_path / "bad"
    subprocess.run(["cp", "-r", str(shop), str(bad)], check=True)
    (bad / "definitions" / "on_demand.yaml").write_text(
        ON_DEMAND.replace("order_amount / nullif(age, 0)", "order_amount / nullif(agee, 0)")
        .replace("sources: [order_features]", "sources: [order_features, order_scores]"))
    proc = sl("plan", repo=bad, check=False)
    assert proc.returncode != 0
    assert ("definitions/on_demand.yaml:11:60: on-demand feature view 'order_features' feature "
            "'amount_per_year': expression 'order_amount / nullif(agee, 0)': unknown column 'agee'"
            in proc.stderr), proc.stderr
    assert "its sources form a cycle (order_scores -> order_scores)" in proc.stderr or \
        "lists itself among its sources" in proc.stderr, proc.stderr


def test_server_sdk_and_historical_agree(shop, tmp_path):
    ids, amounts, lats, lons = request_rows(300, seed=5)
    server = Server(shop)
    try:
        status, resp = server.post("/get-online-features", {
            "features": FEATURES,
            "entities": {"customer_id": ids, "order_amount": amounts, "lat": lats, "lon": lons}})
    finally:
        assert server.stop() == 0
    assert status == 200, resp
    names = resp["metadata"]["feature_names"]
    assert names == ["customer_id", "age", "amount_per_year", "age_bucket", "distance_km",
                     "vip_big", "score"]
    http_values = {n: r["values"] for n, r in zip(names, resp["results"])}
    statuses = {n: r["statuses"] for n, r in zip(names, resp["results"])}
    assert set(statuses["vip_big"]) == {"PRESENT", "NULL_VALUE"}

    store = stratalake.FeatureStore(shop)
    rows = [{"customer_id": i, "order_amount": a, "lat": la, "lon": lo}
            for i, a, la, lo in zip(ids, amounts, lats, lons)]
    sdk = store.get_online_features(FEATURES, entity_rows=rows).to_dict()
    offline = historical(shop, ids, amounts, lats, lons, FEATURES, tmp_path)
    for name in OUTPUTS:
        assert sdk[name] == offline[name], name
        assert http_values[name] == offline[name], name
    assert offline["score"].count(None) < len(ids)  # computed, not all null

    # The CLI's get-historical reads the request fields from the entity file's columns.
    now = dt.datetime.strptime(NOW, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    pq.write_table(pa.table({"customer_id": pa.array(ids, pa.int64()),
                             "event_timestamp": pa.array([now] * len(ids), pa.timestamp("us", "UTC")),
                             "order_amount": pa.array(amounts, pa.float64()),
                             "lat": pa.array(lats, pa.float64()),
                             "lon": pa.array(lons, pa.float64())}), tmp_path / "entities.parquet")
    sl("get-historical", "--entities", str(tmp_path / "entities.parquet"), "--features",
       ",".join(FEATURES), "--output", str(tmp_path / "out.parquet"), repo=shop)
    cli = pq.read_table(tmp_path / "out.parquet").to_pydict()
    for name in OUTPUTS:
        assert cli[name] == offline[name], name

    # A feature service with on-demand views, full feature names.
    svc = store.get_online_features(feature_service="order_model", entity_rows=rows[:5],
                                    full_feature_names=True).to_dict()
    assert "order_features__vip_big" in svc and "order_scores__score" in svc


def test_cli_get_online_takes_request_fields_like_join_keys(shop):
    out = json.loads(sl("get-online", "--features", "order_features:amount_per_year",
                        "--entity", "customer_id=3,4", "--entity", "order_amount=100,12.5",
                        "--entity", "lat=0,0", "--entity", "lon=0,0", "--json", repo=shop).stdout)
    store = stratalake.FeatureStore(shop)
    sdk = store.get_online_features(["order_features:amount_per_year"], entities={
        "customer_id": [3, 4], "order_amount": [100.0, 12.5], "lat": [0.0, 0.0],
        "lon": [0.0, 0.0]}).to_dict()
    assert out["results"][-1]["values"] == sdk["amount_per_year"]
    missing = sl("get-online", "--features", "order_features", "--entity", "customer_id=3",
                 repo=shop, check=False)
    assert missing.returncode != 0
    assert "missing request field" in missing.stderr, missing.stderr
