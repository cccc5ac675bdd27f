"""StrataLake quickstart: a feature repository from Python, end to end.

    python examples/quickstart.py [FOLDER]

Creates a sample repository (`stratalake.init`, the same as `stratalake init`), registers its definitions,
loads the sample data, builds a point-in-time-correct training set, saves it, fills the
online store and reads feature vectors back.
"""
from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

import stratalake
from stratalake import DeltaTable


def main(folder: Path) -> None:
    # 1. A repository with sample data (definitions as YAML, data in data/).
    store = stratalake.init(folder, customers=300)
    print("applied:", store.apply(message="quickstart"))
    print("feature views:", [v.name for v in store.list_feature_views()])

    # 2. Load the sample files into the offline store (Delta tables).
    for source, file in [("customers", "customers.csv"), ("orders", "orders.csv"),
                         ("customer_daily_stats", "customer_daily_stats.parquet"),
                         ("churn_labels", "churn_labels.parquet")]:
        report = store.ingest(source, folder / "data" / file)
        print(f"ingested {report['rows_written']} rows into {source}")

    # 3. A training set: churn labels joined point-in-time with the churn_model features.
    labels = DeltaTable(folder / "lake" / "silver" / "churn_labels").to_pandas()
    job = store.get_historical_features(entity_df=labels, feature_service="churn_model",
                                        timestamp_column="label_ts", progress=False)
    train = job.to_pandas()
    print(f"training set: {len(train)} rows x {len(train.columns)} columns")
    print(train.head(3).to_string())
    manifest = job.save("quickstart_train")
    print("saved with registry version", manifest["registry_version"], "and sources",
          {s["source"]: s["version"] for s in manifest["sources"]})
    again = store.recreate_saved_dataset("quickstart_train")
    print("recreated identical:", again.identical)

    # 4. Online: materialize and read feature vectors.
    # The sample data covers the months up to yesterday (`init` anchors it on today).
    store.materialize(dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=365), "now", progress=False)
    online = store.get_online_features(["customer_profile:country", "customer_profile:segment"],
                                       entity_rows=[{"customer_id": 1}, {"customer_id": 2}])
    print("online:", online.to_dict())
    store.close()
    print("stratalake", stratalake.__version__, "quickstart done")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "shop"
    main(target)
