"""Feast's teardown: `FeatureStore.teardown()` and `stratalake teardown` remove the
feature views' online values and forget their watermarks; the Delta tables and the
definitions stay, and the next incremental materialization loads everything again."""
from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import pytest

import stratalake
from stratalake import DeltaTable, FeatureStore

from conftest import BIN


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "shop"
    store = stratalake.init(repo, customers=50)
    store.apply()
    store.ingest("customers", repo / "data" / "customers.csv")
    store.close()
    return repo


def _ages(store: FeatureStore, keys) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stratalake.StrataLakeWarning)
        return store.get_online_features(["customer_profile:age"],
                                         entity_rows=[{"customer_id": k} for k in keys]).to_dict()


def test_teardown_empties_the_online_store_and_a_rerun_reloads_it(tmp_path):
    repo = _repo(tmp_path)
    store = FeatureStore(repo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stratalake.StrataLakeWarning)
        store.materialize_incremental("now", progress=False)
    loaded = _ages(store, [1, 2, 3])
    assert None not in loaded["age"]
    customers = DeltaTable(repo / "lake" / "bronze" / "customers")
    version, rows = customers.version(), customers.to_pyarrow_table().num_rows

    torn = store.teardown()
    assert torn == [v.name for v in store.list_feature_views()]
    assert _ages(store, [1, 2, 3]) == {"customer_id": [1, 2, 3], "age": [None, None, None]}
    # The offline store and the registry are untouched.
    customers = DeltaTable(repo / "lake" / "bronze" / "customers")
    assert (customers.version(), customers.to_pyarrow_table().num_rows) == (version, rows)
    assert store.get_feature_view("customer_profile").name == "customer_profile"

    # The watermarks are gone: an incremental run reads every source again.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stratalake.StrataLakeWarning)
        again = {v["view"]: v for v in store.materialize_incremental("now", progress=False)}
    assert again["customer_profile"]["from_version"] == -1
    assert again["customer_profile"]["rows_written"] == rows
    assert _ages(store, [1, 2, 3]) == loaded
    store.close()


def test_teardown_of_some_views_and_unknown_views(tmp_path):
    repo = _repo(tmp_path)
    store = FeatureStore(repo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stratalake.StrataLakeWarning)
        store.materialize_incremental("now", progress=False)
    loaded = _ages(store, [4])
    assert store.teardown(["customer_stats"]) == ["customer_stats"]
    assert _ages(store, [4]) == loaded  # other views keep their values
    with pytest.raises(stratalake.FeatureNotFoundError, match="unknown feature view 'nope'"):
        store.teardown(["nope"])
    store.close()


def test_cli_teardown(tmp_path):
    repo = _repo(tmp_path)
    run = lambda *a: subprocess.run([str(BIN), *a, "--repo", str(repo)], capture_output=True,
                                    text=True)
    assert run("materialize-incremental", "now", "--json").returncode == 0
    res = run("teardown", "--views", "customer_profile", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["views"] == ["customer_profile"]
    got = run("get-online", "--features", "customer_profile:age", "--entity", "customer_id=1",
              "--json")
    assert got.returncode == 0, got.stderr
    body = json.loads(got.stdout)
    assert body["results"][1]["statuses"] == ["NOT_FOUND"]
    res = run("teardown")
    assert res.returncode == 0, res.stderr
    assert "the offline store is untouched" in res.stdout
    bad = run("teardown", "--views", "nope")
    assert bad.returncode != 0 and "unknown feature view 'nope'" in bad.stderr
