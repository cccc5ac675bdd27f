"""A notebook-style walkthrough: training set -> model -> online lookup.

    python examples/walkthrough.py [FOLDER]

Each "cell" below is what a data scientist would run in a notebook. The model is a tiny
logistic regression in NumPy (no extra dependencies); what matters is that the features
it is trained on and the features it is served come from the same definitions.
"""
from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

import stratalake
from stratalake import DeltaTable
FEATURES = ["customer_stats:orders_30d", "customer_stats:spend_30d",
            "customer_stats:clicks_7d", "customer_stats:days_since_last_order"]


def fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 500, lr: float = 0.1) -> np.ndarray:
    x = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ w))
        w -= lr * x.T @ (p - y) / len(y)
    return w


def predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.hstack([np.ones((len(x), 1)), x]) @ w))


def main(folder: Path) -> dict:
    # %% A repository with sample data
    store = stratalake.init(folder, customers=400)
    store.apply()
    for source, file in [("orders", "orders.csv"), ("customer_daily_stats", "customer_daily_stats.parquet"),
                         ("churn_labels", "churn_labels.parquet")]:
        store.ingest(source, folder / "data" / file)

    # %% Labels as a polars DataFrame (any Arrow-compatible frame works)
    labels = DeltaTable(folder / "lake" / "silver" / "churn_labels").to_polars()
    print("labels:", labels.shape)

    # %% Point-in-time-correct training set
    train = store.get_historical_features(entity_df=labels, features=FEATURES,
                                          timestamp_column="label_ts", progress=False).to_arrow()
    names = [f.split(":")[1] for f in FEATURES]
    x = np.column_stack([train.column(n).to_numpy(zero_copy_only=False).astype(float) for n in names])
    x = np.nan_to_num(x)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    y = train.column("churned").to_numpy(zero_copy_only=False).astype(float)

    # %% Train
    w = fit_logistic((x - mean) / std, y)
    accuracy = float(((predict(w, (x - mean) / std) > 0.5) == (y > 0.5)).mean())
    print(f"training accuracy: {accuracy:.3f}")

    # %% Serve: materialize, then score customers from the online store
    # The sample data ends yesterday (`init` anchors it on today), so the values are fresh.
    store.materialize(dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=365), "now",
                      feature_views=["customer_stats"], progress=False)
    customers = [1, 2, 3, 4, 5]
    online = store.get_online_features(FEATURES, entities={"customer_id": customers}).to_dict()
    statuses = store.get_online_features(FEATURES, entities={"customer_id": customers}).statuses()
    xo = np.nan_to_num(np.array([[online[n][i] if online[n][i] is not None else 0.0 for n in names]
                                 for i in range(len(customers))], dtype=float))
    scores = predict(w, (xo - mean) / std)
    for c, s, st in zip(customers, scores, statuses["spend_30d"]):
        print(f"customer {c}: churn score {s:.3f} ({st})")
    store.close()
    return {"accuracy": accuracy, "scores": scores.tolist(), "statuses": statuses}


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "shop")
