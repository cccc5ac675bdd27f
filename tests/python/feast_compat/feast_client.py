"""Run in Feast's own virtualenv (.venv-feast) by test_feast_offline.py.

usage: python feast_client.py REPO ENTITIES.parquet CASES.json OUTDIR

Applies the Feast repository REPO (its offline store is the remote one, i.e.
StrataLake's `serve-offline`), then for every case runs Feast's
FeatureStore.get_historical_features(entity_df, features=... or a
FeatureService, full_feature_names=...) and writes .to_arrow() to
OUTDIR/NAME.arrow.parquet; .to_df() is compared with pandas against the CLI's
output OUTDIR/NAME.cli.parquet. Then materializes a view into Feast's online
store (its offline reads served by StrataLake) and reads it back, and tries a
call StrataLake does not serve.
Prints a JSON report on stdout.
"""
import json
import sys
import traceback
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureStore
from feast.repo_config import load_repo_config
from feast.repo_operations import apply_total


def main():
    repo, entities, cases, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
    config = load_repo_config(repo, repo / "feature_store.yaml")
    sys.path.insert(0, str(repo.resolve()))  # as `feast apply` does, to import the definitions
    apply_total(config, repo, skip_source_validation=False)  # validates sources over Flight
    store = FeatureStore(repo_path=str(repo))
    entity_df = pd.read_parquet(entities)
    report = {"cases": {}, "errors": {}}
    for case in json.loads(Path(cases).read_text()):
        features = (store.get_feature_service(case["feature_service"])
                    if "feature_service" in case else case["features"])
        job = store.get_historical_features(entity_df=entity_df, features=features,
                                            full_feature_names=case["full_feature_names"])
        table = job.to_arrow()
        pq.write_table(table, out / (case["name"] + ".arrow.parquet"))
        df = job.to_df()
        cli = pd.read_parquet(out / (case["name"] + ".cli.parquet"))
        try:
            pd.testing.assert_frame_equal(df, cli, check_exact=True)
            df_equal = "equal"
        except AssertionError as e:
            df_equal = str(e)
        report["cases"][case["name"]] = {"columns": list(df.columns), "rows": len(df),
                                         "df": df_equal}

    def error_of(name, f):
        try:
            f()
            report["errors"][name] = None
        except Exception as e:  # noqa: BLE001
            report["errors"][name] = "%s: %s" % (type(e).__name__, e)

    feats = ["driver_hourly_stats:conv_rate"]
    error_of("entity_df_sql", lambda: store.get_historical_features(
        entity_df="SELECT 1", features=feats).to_df())
    # Feast's materialization reads through pull_all_from_table_or_query.
    store.materialize(start_date=pd.Timestamp("2026-06-01", tz="UTC").to_pydatetime(),
                      end_date=pd.Timestamp("2026-06-04", tz="UTC").to_pydatetime(),
                      feature_views=["driver_hourly_stats"])
    report["online"] = store.get_online_features(
        features=["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips"],
        entity_rows=[{"driver_id": 1001}, {"driver_id": 1002}, {"driver_id": 9999}]).to_dict()
    print(json.dumps(report))


try:
    main()
except Exception:
    traceback.print_exc()
    sys.exit(1)
