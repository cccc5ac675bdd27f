"""The Python SDK as a data scientist meets it in a notebook (issue 23): a long-lived
FeatureStore sees later applies; several FeatureStore objects share the online store;
errors speak Python, not CLI flags, and raise the documented classes; Feast's habits
work (string and FeatureService feature arguments, typed definitions, lazy jobs,
write_to_online_store); polars LazyFrames are accepted; a typo'd source is an error;
results show themselves readably."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

import stratalake
from stratalake import DeltaTable, FeatureStore, write_deltalake

from conftest import BIN

UTC = dt.timezone.utc

# A second view with a feature named like one of customer_profile's (age), for the
# registry-reload and full-feature-name tests.
EXTRA_VIEW = """
  - name: customer_age
    entities: [customer]
    source: customers
    ttl: 0
    features:
      - {name: age, type: int32}
"""


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "shop"
    store = stratalake.init(repo, customers=50)
    store.apply()
    store.ingest("customers", repo / "data" / "customers.csv")
    store.close()
    return repo


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    return _repo(tmp_path_factory.mktemp("nb"))


def _add_view(repo: Path) -> None:
    with open(repo / "definitions" / "feature_views.yaml", "a") as f:
        f.write(EXTRA_VIEW)


# ---- item 5: a long-lived FeatureStore sees later applies ---------------------------------

def test_online_reads_see_an_apply_from_the_same_object(tmp_path):
    repo = _repo(tmp_path)
    store = FeatureStore(repo)
    store.materialize_incremental("now", progress=False)
    first = store.get_online_features(["customer_profile:age"], entity_rows=[{"customer_id": 1}])
    _add_view(repo)
    assert store.apply()["version"] == 2
    store.materialize_incremental("now", feature_views=["customer_age"], progress=False)
    got = store.get_online_features(["customer_age:age"], entity_rows=[{"customer_id": 1}])
    assert got.to_dict() == {"customer_id": [1], "age": first.to_dict()["age"]}
    store.close()


def test_online_reads_see_an_apply_from_another_process(tmp_path):
    repo = _repo(tmp_path)
    store = FeatureStore(repo)
    store.materialize_incremental("now", progress=False)
    store.get_online_features(["customer_profile:age"], entity_rows=[{"customer_id": 1}])
    _add_view(repo)
    subprocess.run([str(BIN), "apply", "--repo", str(repo)], check=True, capture_output=True)
    store.materialize_incremental("now", feature_views=["customer_age"], progress=False)
    got = store.get_online_features(["customer_age:age"], entity_rows=[{"customer_id": 1}])
    assert got.statuses()["age"] == ["PRESENT"]
    store.refresh_registry()  # explicit refresh: allowed, changes nothing here
    assert store.registry_version == 2
    store.close()


# ---- item 6: FeatureStore objects share the online store -----------------------------------

def test_two_feature_stores_in_one_process_share_the_online_store(shop):
    a = FeatureStore(shop)
    b = FeatureStore(shop)
    a.materialize_incremental("now", progress=False)
    rows = [{"customer_id": 1}, {"customer_id": 2}]
    expected = a.get_online_features(["customer_profile:country"], entity_rows=rows).to_dict()
    assert b.get_online_features(["customer_profile:country"], entity_rows=rows).to_dict() == expected
    a.close()  # b still holds the store
    assert b.get_online_features(["customer_profile:country"], entity_rows=rows).to_dict() == expected
    b.close()
    c = FeatureStore(shop)  # reopened after the last one let go
    assert c.get_online_features(["customer_profile:country"], entity_rows=rows).to_dict() == expected
    c.close()


def test_another_process_holding_the_store_is_a_typed_error(shop):
    FeatureStore(shop).materialize_incremental("now", progress=False)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, stratalake
            s = stratalake.FeatureStore({str(shop)!r})
            s.get_online_features(["customer_profile:country"], entity_rows=[{{"customer_id": 1}}])
            print("open", flush=True)
            sys.stdin.readline()
            s.close()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "open\n"
        store = FeatureStore(shop)
        with pytest.raises(stratalake.OnlineStoreLockedError) as e:
            store.get_online_features(["customer_profile:country"], entity_rows=[{"customer_id": 1}])
        assert f"is open in process {holder.pid} " in str(e.value)
        assert "FeatureStore.close()" in str(e.value)
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    assert store.get_online_features(["customer_profile:country"],
                                     entity_rows=[{"customer_id": 1}]).statuses() == {
        "customer_id": ["PRESENT"], "country": ["PRESENT"]}
    store.close()


def test_notebook_cells_run_out_of_order(tmp_path):
    """Cells of a notebook, run in the order people do: re-run, skipped, run again."""
    repo = _repo(tmp_path)
    cells = {
        "open": "store = stratalake.FeatureStore(repo)",
        "materialize": "report = store.materialize_incremental('now', progress=False)",
        "read": "resp = store.get_online_features(features, entity_rows=[{'customer_id': 3}])",
        "keep": "kept = store",
        "edit": "open(repo / 'definitions' / 'feature_views.yaml', 'a').write(extra); store.apply()",
    }
    ns = {"stratalake": stratalake, "repo": repo, "extra": EXTRA_VIEW,
          "features": ["customer_profile:segment"]}

    def run(*names: str) -> None:
        for n in names:
            exec(cells[n], ns)

    run("open", "materialize", "read")
    segment = ns["resp"].to_dict()["segment"]
    run("keep", "open", "read")  # a second FeatureStore while the first is still referenced
    assert ns["resp"].to_dict()["segment"] == segment
    run("edit")
    ns["features"] = ["customer_age:age"]
    run("materialize", "read")  # the new view, from the new object
    assert ns["resp"].statuses()["age"] == ["PRESENT"]
    exec("store = kept", ns)  # back to the first object: it sees the new view too
    run("read")
    assert ns["resp"].statuses()["age"] == ["PRESENT"]
    run("open", "open", "read")  # re-run twice; the old objects go away
    assert ns["resp"].statuses()["age"] == ["PRESENT"]
    ns["kept"].close()
    ns["store"].close()


# ---- item 7: errors in Python's words, of the documented classes -----------------------------

def _no_cli_flags(message: str) -> None:
    assert " --" not in message and "(--" not in message, message


def test_errors_name_python_parameters(shop, tmp_path):
    store = FeatureStore(shop)
    labels = pa.table({"customer_id": [1, 2], "ts": pa.array([dt.datetime(2026, 1, 1, tzinfo=UTC)] * 2)})
    with pytest.raises(stratalake.SchemaMismatchError) as e:
        store.get_historical_features(labels, ["customer_profile:age"], progress=False)
    assert str(e.value).endswith("name it with `timestamp_column=`")
    _no_cli_flags(str(e.value))

    with pytest.raises(stratalake.DataRejectedError) as e:
        store.ingest("clicks", shop / "data" / "clicks.jsonl")
    assert "fix these rows, or pass `quarantine=True` to load the good rows" in str(e.value)
    _no_cli_flags(str(e.value))

    with pytest.raises(stratalake.ObjectNotFoundError) as e:
        FeatureStore(tmp_path / "nowhere")
    assert str(e.value).endswith(
        "create one with `stratalake.init(DIR)` or pass `FeatureStore(repo_path=...)`")

    write_deltalake(tmp_path / "t", pa.table({"id": [1]}))
    with pytest.raises(stratalake.SchemaMismatchError) as e:
        write_deltalake(tmp_path / "t", pa.table({"id": [2], "extra": ["x"]}), mode="append")
    assert "pass `schema_mode=\"merge\"` to add it as a new nullable column" in str(e.value)
    with pytest.raises(stratalake.SchemaMismatchError) as e:
        (DeltaTable(tmp_path / "t").merge(pa.table({"id": [2], "extra": ["x"]}), "target.id = source.id")
         .when_not_matched_insert_all().execute())
    assert str(e.value).endswith("pass `merge_schema=True` to add it")

    with pytest.raises(stratalake.DefinitionError) as e:
        store.ingest("customers", shop / "data" / "customers.csv", mode="merge")
    assert str(e.value) == "merge mode needs key columns (`on=[...]`)"
    store.close()


def test_full_feature_names_error_speaks_python(tmp_path):
    repo = _repo(tmp_path)
    _add_view(repo)
    store = FeatureStore(repo)
    store.apply()
    store.materialize_incremental("now", progress=False)
    with pytest.raises(stratalake.DefinitionError) as e:
        store.get_online_features(["customer_profile:age", "customer_age:age"],
                                  entity_rows=[{"customer_id": 1}])
    assert str(e.value).endswith("pass `full_feature_names=True`")
    labels = pa.table({"customer_id": [1], "event_timestamp": pa.array([dt.datetime(2027, 1, 1, tzinfo=UTC)])})
    with pytest.raises(stratalake.DefinitionError) as e:
        store.get_historical_features(labels, ["customer_profile:age", "customer_age:age"], progress=False)
    assert str(e.value).endswith("pass `full_feature_names=True` or give one view an alias in a feature service")
    store.close()


def test_the_cli_keeps_its_own_words(shop):
    proc = subprocess.run([str(BIN), "ingest", "clicks", str(shop / "data" / "clicks.jsonl"), "--repo", str(shop)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "fix these rows, or pass --quarantine to load the good rows" in proc.stderr


def test_failures_raise_the_documented_subclasses(shop, tmp_path):
    write_deltalake(tmp_path / "t", pa.table({"id": [1, 2]}))
    with pytest.raises(stratalake.SchemaMismatchError):
        DeltaTable(tmp_path / "t").to_pyarrow_table(filter="nope > 1")
    store = FeatureStore(shop)
    ts = pa.array([dt.datetime(2026, 1, 1, tzinfo=UTC)])
    with pytest.raises(stratalake.SchemaMismatchError):
        store.get_historical_features(pa.table({"customer_id": [1.5], "event_timestamp": ts}),
                                      ["customer_profile:age"], progress=False).to_arrow()
    with pytest.raises(stratalake.SchemaMismatchError):
        store.get_historical_features(pa.table({"customer_id": ["1"], "event_timestamp": ts}),
                                      ["customer_profile:age"], progress=False).to_arrow()
    with pytest.raises(stratalake.DataFileNotFoundError) as e:
        store.ingest("customers", tmp_path / "missing.csv")
    assert isinstance(e.value, FileNotFoundError)
    assert str(e.value) == f"input file '{tmp_path / 'missing.csv'}' does not exist"
    store.close()


# ---- item 8: Feast's habits ----------------------------------------------------------------

def test_feature_arguments_as_feast_users_write_them(shop):
    store = FeatureStore(shop)
    store.materialize_incremental("now", progress=False)
    rows = [{"customer_id": 4}]
    one = store.get_online_features("customer_profile:country", entity_rows=rows).to_dict()
    assert one == store.get_online_features(["customer_profile:country"], entity_rows=rows).to_dict()
    service = store.get_feature_service("churn_model")
    by_name = store.get_online_features(feature_service="churn_model", entity_rows=rows).to_dict()
    assert store.get_online_features(service, entity_rows=rows).to_dict() == by_name
    assert store.get_online_features(feature_service=service, entity_rows=rows).to_dict() == by_name
    labels = pa.table({"customer_id": [4], "event_timestamp": pa.array([dt.datetime(2027, 1, 1, tzinfo=UTC)])})
    job = store.get_historical_features(labels, features=service, progress=False)
    assert job.feature_refs == store.get_historical_features(
        labels, feature_service="churn_model", progress=False).feature_refs
    with pytest.raises(stratalake.DefinitionError, match="pass the feature service once"):
        store.get_online_features(service, entity_rows=rows, feature_service="churn_model")
    with pytest.raises(TypeError, match="feature references such as 'view:feature'"):
        store.get_online_features([1], entity_rows=rows)
    store.close()


def test_definitions_are_typed_objects(shop):
    store = FeatureStore(shop)
    views = store.list_feature_views()
    assert all(isinstance(v, stratalake.FeatureView) for v in views)
    profile = store.get_feature_view("customer_profile")
    assert profile.name == "customer_profile" and profile.entities == ["customer"]
    assert profile.source == "customers" and profile.online is True
    assert [(f.name, f.dtype) for f in profile.features] == [
        ("country", "string"), ("segment", "string"), ("age", "int32")]
    assert profile.ttl == dt.timedelta(0)
    assert store.get_feature_view("customer_stats").ttl == dt.timedelta(days=2)
    assert repr(profile) == ("FeatureView(name='customer_profile', entities=['customer'], "
                             "source='customers', features=['country', 'segment', 'age'], "
                             "ttl='0', online=True)")
    assert profile["name"] == "customer_profile"  # the canonical JSON, as before
    assert isinstance(profile, dict) and json.loads(json.dumps(profile)) == profile.to_dict()
    assert profile.to_dict()["features"][2] == {"name": "age", "type": "int32", "description": "",
                                                "tags": {}}
    customer = store.get_entity("customer")
    assert isinstance(customer, stratalake.Entity)
    assert customer.join_keys == ["customer_id"] and customer.join_key == "customer_id"
    assert repr(customer) == "Entity(name='customer', join_keys=[customer_id: int64])"
    source = store.get_data_source("orders")
    assert isinstance(source, stratalake.DataSource)
    assert (source.type, source.path, source.timestamp_field) == ("delta", "bronze/orders", "order_ts")
    service = store.get_feature_service("churn_model")
    assert isinstance(service, stratalake.FeatureService)
    assert [p.view for p in service.feature_view_projections] == [
        "customer_profile", "customer_stats", "last_order"]
    assert repr(service) == ("FeatureService(name='churn_model', feature_views=['customer_profile', "
                             "'customer_stats:orders_30d,spend_30d,clicks_7d,days_since_last_order', "
                             "'last_order:amount'])")
    store.close()


def test_write_to_online_store(tmp_path):
    repo = _repo(tmp_path)
    store = FeatureStore(repo)
    when = dt.datetime.now(UTC).replace(microsecond=0)
    rows = pa.table({"customer_id": [900, 901], "updated_ts": pa.array([when, when]),
                     "country": ["NL", "BE"], "segment": ["vip", "consumer"], "age": [41, 52]})
    assert store.write_to_online_store("customer_profile", rows) == 2
    got = store.get_online_features(["customer_profile:country", "customer_profile:age"],
                                    entity_rows=[{"customer_id": 900}, {"customer_id": 901}])
    assert got.to_dict() == {"customer_id": [900, 901], "country": ["NL", "BE"], "age": [41, 52]}
    with pytest.raises(stratalake.SchemaMismatchError, match="lacks feature column 'age'"):
        store.write_to_online_store("customer_profile", rows.drop(["age"]))
    with pytest.raises(stratalake.FeatureNotFoundError, match="unknown feature view 'profile'"):
        store.write_to_online_store("profile", rows)
    store.close()


def test_historical_features_are_a_lazy_job(shop):
    store = FeatureStore(shop)
    labels = pa.table({"customer_id": [1, 2], "event_timestamp": pa.array([dt.datetime(2027, 1, 1, tzinfo=UTC)] * 2)})
    job = store.get_historical_features(labels, ["customer_profile:country"], progress=False)
    assert isinstance(job, stratalake.RetrievalJob)
    assert repr(job) == ("RetrievalJob(features=[customer_profile:country], registry_version=1; "
                         "not run yet: to_df(), to_arrow(), to_parquet() or save() runs it)")
    df = job.to_df()
    assert list(df.columns) == ["customer_id", "event_timestamp", "country"]
    assert repr(job).endswith("; 2 rows x 3 columns)")
    assert "<table>" in job._repr_html_() and "<th>country</th>" in job._repr_html_()
    store.close()


# ---- item 9: polars LazyFrames ---------------------------------------------------------------

def test_polars_lazy_frames_are_collected(shop, tmp_path):
    lazy = pl.LazyFrame({"id": [1, 2, 3]}).filter(pl.col("id") > 1)
    write_deltalake(tmp_path / "lazy", lazy)
    assert DeltaTable(tmp_path / "lazy").to_pyarrow_table().to_pydict() == {"id": [2, 3]}
    store = FeatureStore(shop)
    labels = pl.LazyFrame({"customer_id": [1, 2],
                           "event_timestamp": [dt.datetime(2027, 1, 1, tzinfo=UTC)] * 2})
    t = store.get_historical_features(labels, ["customer_profile:country"], progress=False).to_arrow()
    assert t.column_names == ["customer_id", "event_timestamp", "country"] and t.num_rows == 2
    store.close()


# ---- item 10: a typo'd source name -----------------------------------------------------------

def test_ingest_into_a_mistyped_source_is_an_error(shop):
    store = FeatureStore(shop)
    with pytest.raises(stratalake.ObjectNotFoundError) as e:
        store.ingest("order", shop / "data" / "orders.csv")
    assert "no source named 'order' in the registry or the definition files; did you mean 'orders'?" in str(e.value)
    assert not (shop / "lake" / "order").exists()
    report = store.ingest("bronze/raw_orders", shop / "data" / "orders.csv")  # an explicit table path
    assert report["table_uri"].endswith("lake/bronze/raw_orders") and report["rows_written"] > 0
    with pytest.raises(stratalake.DefinitionError, match="mode must be 'append', 'overwrite' or 'merge'"):
        store.ingest("orders", shop / "data" / "orders.csv", mode="apend")
    store.close()


# ---- item 11: notebook display --------------------------------------------------------------

def test_results_show_themselves(shop, tmp_path):
    store = FeatureStore(shop)
    store.materialize_incremental("now", progress=False)
    resp = store.get_online_features(["customer_profile:country"], entity_rows=[{"customer_id": 1}])
    country = resp.to_dict()["country"][0]
    assert repr(resp) == f"OnlineResponse(1 entity row: {{'customer_id': [1], 'country': [{country!r}]}})"
    assert f"<td>1</td><td>{country}</td>" in resp._repr_html_()
    write_deltalake(tmp_path / "t", pa.table({"id": [1, 2]}))
    html = DeltaTable(tmp_path / "t")._repr_html_()
    assert "version 0: 2 rows in 1 files" in html and "id: int64" in html
    store.close()


def test_missing_extras_name_the_extra(tmp_path):
    """to_pandas() / to_polars() without the package say which extra installs it."""
    code = textwrap.dedent(f"""
        import sys

        class NotInstalled:  # pandas and polars, as if not installed
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("pandas", "polars"):
                    raise ModuleNotFoundError(f"No module named {{name!r}}")

        sys.meta_path.insert(0, NotInstalled())
        import pyarrow as pa, stratalake
        stratalake.write_deltalake({str(tmp_path / "t")!r}, pa.table({{"id": [1]}}))
        for fn in ("to_pandas", "to_polars"):
            try:
                getattr(stratalake.DeltaTable({str(tmp_path / "t")!r}), fn)()
            except ImportError as e:
                print(e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "to_pandas() needs pandas, which is not installed: pip install 'stratalake[pandas]' (or pip install pandas)",
        "to_polars() needs polars, which is not installed: pip install 'stratalake[polars]' (or pip install polars)",
    ]
