"""Drives Feast's own Python SDK against two feature servers; run by test_feast_sdk.py.

Runs in Feast's virtualenv (scripts/feast_env.sh), never in ours:

    .venv-feast/bin/python tests/python/feast_sdk_driver.py CONFIG.json

CONFIG names the Feast repository (its registry, written by `feast apply`), the port of
`feast serve` on it and the port of `stratalake serve` on the StrataLake repository that
mirrors it, and the test's "now". The same client code talks to both servers through
Feast's remote online store (`online_store: {type: remote, path: ...}`); writes that
Feast's server cannot take from its own client (FeatureStore.push and
write_to_online_store send /write-to-online-store with an `event_timestamp` column,
which Feast's server looks up under the source's timestamp field and fails on) go to
Feast's side through its local store, the SQLite database `feast serve` reads.

Prints one JSON report on stdout: for each step, what each side's client returned
(OnlineResponse.to_dict(), to_df()'s dtypes and columns, whether the two frames are
equal), and for each error case the exception each side raised.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import warnings

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import pandas as pd  # noqa: E402
from feast import FeatureService, FeatureStore, RepoConfig  # noqa: E402
from feast.data_source import PushMode  # noqa: E402


def store(cfg: dict, online: dict) -> FeatureStore:
    return FeatureStore(config=RepoConfig(
        project=cfg["project"], provider="local", registry=cfg["registry"],
        online_store=online, offline_store={"type": "file"},
        entity_key_serialization_version=3, repo_path=cfg["feast_repo"]))


def remote(cfg: dict, port: int) -> FeatureStore:
    return store(cfg, {"type": "remote", "path": f"http://127.0.0.1:{port}"})


def frame_report(df: pd.DataFrame) -> dict:
    return {"columns": list(df.columns), "dtypes": {c: str(t) for c, t in df.dtypes.items()}}


def compare_read(name: str, ours: FeatureStore, feast: FeatureStore, report: dict, features,
                 entity_rows, **kw) -> None:
    """One get_online_features on both sides: to_dict() and to_df() of each, and whether
    the frames are equal exactly (Feast's server orders features at random: columns are
    matched by name)."""
    out = {}
    frames = {}
    for side, st in (("ours", ours), ("feast", feast)):
        fs = st.get_feature_service(features) if isinstance(features, str) else features
        resp = st.get_online_features(fs, entity_rows, **kw)
        out[side] = resp.to_dict()
        frames[side] = resp.to_df()
        out[side + "_df"] = frame_report(frames[side])
    try:
        pd.testing.assert_frame_equal(frames["ours"], frames["feast"], check_like=True,
                                      check_exact=True)
        out["df_equal"] = True
    except AssertionError as e:
        out["df_equal"] = str(e)
    report["reads"][name] = out


def caught(fn) -> list | None:
    try:
        fn()
    except Exception as e:  # the class is what the test checks
        return [type(e).__module__, type(e).__name__, str(e)]
    return None


def main() -> None:
    cfg = json.loads(open(sys.argv[1]).read())
    now = dt.datetime.fromisoformat(cfg["now"])
    ours = remote(cfg, cfg["ours_port"])
    feast = remote(cfg, cfg["feast_port"])
    local = store(cfg, {"type": "sqlite", "path": cfg["feast_online_db"]})
    report: dict = {"reads": {}, "errors": {}}
    feats = cfg["features"]
    rows = [{"customer_id": k} for k in cfg["keys"]]

    # 1. materialize(start, end): only the rows in the range.
    for st in (ours, feast):
        st.materialize(now - dt.timedelta(days=3), now - dt.timedelta(hours=20))
    compare_read("materialize", ours, feast, report, feats, rows)

    # 2. materialize_incremental(end): feature_views None (all), from where the last run ended.
    for st in (ours, feast):
        st.materialize_incremental(now)
    compare_read("incremental", ours, feast, report, feats, rows)
    compare_read("incremental_full_names", ours, feast, report, feats, rows,
                 full_feature_names=True)
    compare_read("service", ours, feast, report, "svc", rows)
    compare_read("service_full_names", ours, feast, report, "svc", rows,
                 full_feature_names=True, include_feature_view_version_metadata=True)
    compare_read("columnar_entities", ours, feast, report, feats,
                 {"customer_id": list(cfg["keys"])})

    # 3. push: ours through the remote store (/write-to-online-store), Feast's through its
    #    local store into the database its server reads.
    pushed = pd.DataFrame({"customer_id": [1, 2], "page": ["/cart", "/pay"], "dwell": [7, 9],
                           "event_ts": [now - dt.timedelta(minutes=30)] * 2})
    ours.push("clicks_push", pushed, to=PushMode.ONLINE)
    local.push("clicks_push", pushed, to=PushMode.ONLINE)
    compare_read("push", ours, feast, report, ["clicks:page", "clicks:dwell"], rows)

    # 4. write_to_online_store: a new key (7) and a newer row for key 1.
    written = pd.DataFrame({
        "customer_id": [7, 1], "i32": [70, 11], "i64": [7 * 10**12, 10**12 + 9],
        "f32": [7.25, 1.5], "f64": [7.125, None], "s": ["seven", "one"], "b": [True, False],
        "ts": [now - dt.timedelta(days=1, seconds=0.5), now - dt.timedelta(days=2)],
        "li": [[7, 70], [1]], "lf": [[0.25], [1.5, 2.5]], "ls": [["x", "y"], ["z"]],
        "event_ts": [now - dt.timedelta(minutes=10)] * 2,
        "created_ts": [now - dt.timedelta(minutes=5)] * 2})
    ours.write_to_online_store("stats", written)
    local.write_to_online_store("stats", written)
    compare_read("write_to_online_store", ours, feast, report, feats, rows + [{"customer_id": 7}])

    # An empty list: Feast's client cannot read one back from JSON, from either server.
    empty = written.iloc[:1].assign(customer_id=[8], li=[[]])
    ours.write_to_online_store("stats", empty)
    local.write_to_online_store("stats", empty)
    report["errors"]["empty_list"] = {
        side: caught(lambda: st.get_online_features(["stats:li"], [{"customer_id": 8}]))
        for side, st in (("ours", ours), ("feast", feast))}

    # 5. Errors: the exception each client raises. Unknown to both servers:
    e = report["errors"]
    for side, st in (("ours", ours), ("feast", feast)):
        e.setdefault("unknown_view", {})[side] = caught(
            lambda: st.get_online_features(["nope:x"], rows))
        e.setdefault("unknown_service", {})[side] = caught(
            lambda: st.get_online_features(FeatureService(name="nosvc", features=[]), rows))
        e.setdefault("materialize_unknown_view", {})[side] = caught(
            lambda: st.materialize(now - dt.timedelta(days=1), now, ["nope"]))
    # Known to Feast's registry (so the client sends the request) but not to StrataLake's:
    e["write_unknown_view"] = {"ours": caught(lambda: ours.write_to_online_store(
        "feast_only", pd.DataFrame({"customer_id": [1], "i64": [1], "event_ts": [now],
                                    "created_ts": [now]})))}
    e["push_unknown_view"] = {"ours": caught(lambda: ours.push(
        "feast_only_push", pd.DataFrame({"customer_id": [1], "page": ["/x"], "event_ts": [now]})))}
    # Feast's server answers these 500 (its client then retries and raises RetryError):
    e["unknown_feature"] = {"ours": caught(lambda: ours.get_online_features(["stats:nope"], rows))}
    e["missing_join_key"] = {"ours": caught(
        lambda: ours.get_online_features(["stats:i32"], [{"user": 1}]))}
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
