"""Python SDK overhead: the same table scan and training-set retrieval from Python
(stratalake package) and from the C++ CLI, side by side.

    .venv/bin/python bench/python_bench.py [--rows 5000000] [--entities 1000000] [--repeat 3]

The SDK passes tables to pyarrow without copies and runs the engine with the GIL
released, so the two columns should be within noise of each other; the CLI also pays
for writing its output file, the SDK for nothing but handing the table over.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import stratalake
from stratalake import DeltaTable, FeatureStore, write_deltalake

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "build" / "bin" / "stratalake"


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=5_000_000, help="feature rows")
    ap.add_argument("--entities", type=int, default=1_000_000, help="entity rows")
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sl-pybench-"))
    try:
        rng = np.random.default_rng(7)
        n = args.rows
        t0 = 1_767_225_600_000_000
        feats = pa.table({
            "user_id": rng.integers(0, args.keys, n),
            "ts": pa.array(t0 + rng.integers(0, 90 * 86_400_000_000, n), pa.timestamp("us", "UTC")),
            **{f"f{i}": rng.random(n) for i in range(5)},
            **{f"g{i}": rng.integers(0, 1000, n) for i in range(5)},
        })
        repo = work / "repo"
        (repo / "definitions").mkdir(parents=True)
        (repo / "stratalake.yaml").write_text(
            "project: pybench\noffline_store: lake\nregistry: registry.db\ndefinitions: [definitions]\n")
        cols = "".join(f"      - {{name: f{i}, type: float64}}\n" for i in range(5)) + \
            "".join(f"      - {{name: g{i}, type: int64}}\n" for i in range(5))
        (repo / "definitions" / "d.yaml").write_text(
            "entities: [{name: user, join_keys: [{name: user_id, type: int64}]}]\n"
            "sources:\n  - name: s\n    path: gold/s\n    timestamp_field: ts\n    schema:\n"
            "      - {name: user_id, type: int64}\n      - {name: ts, type: timestamp}\n" + cols +
            "feature_views:\n  - name: v\n    entities: [user]\n    source: s\n    ttl: 30d\n"
            "    features:\n" + cols)
        write_deltalake(repo / "lake" / "gold" / "s", feats)
        store = FeatureStore(repo)
        store.apply()
        entities = pa.table({
            "user_id": rng.integers(0, args.keys, args.entities),
            "event_timestamp": pa.array(t0 + rng.integers(0, 90 * 86_400_000_000, args.entities),
                                        pa.timestamp("us", "UTC")),
            "label": rng.integers(0, 2, args.entities),
        })
        pq.write_table(entities, work / "entities.parquet")
        table = repo / "lake" / "gold" / "s"

        scan_py = best_of(args.repeat, lambda: DeltaTable(table).to_pyarrow_table())
        scan_cli = best_of(args.repeat, lambda: subprocess.run(
            [str(CLI), "table", "read", str(table), "--output", str(work / "scan.parquet")],
            check=True, capture_output=True))
        feature_list = [f"v:f{i}" for i in range(5)] + [f"v:g{i}" for i in range(5)]
        pit_py = best_of(args.repeat, lambda: store.get_historical_features(
            entities, feature_list, progress=False).to_arrow())
        pit_cli = best_of(args.repeat, lambda: subprocess.run(
            [str(CLI), "get-historical", "--repo", str(repo), "--entities", str(work / "entities.parquet"),
             "--features", ",".join(feature_list), "--output", str(work / "train.parquet")],
            check=True, capture_output=True))
        # The CLI's share that is file output, measured separately.
        result = store.get_historical_features(entities, feature_list, progress=False).to_arrow()
        write_out = best_of(args.repeat, lambda: pq.write_table(result, work / "w.parquet"))

        print(f"stratalake {stratalake.__version__}; {n:,} feature rows x 10 features, "
              f"{args.entities:,} entity rows; best of {args.repeat}")
        print(f"{'operation':<42}{'Python SDK':>12}{'C++ CLI':>12}")
        print(f"{'scan the whole table':<42}{scan_py:>11.2f}s{scan_cli:>11.2f}s  (CLI includes writing Parquet)")
        print(f"{'point-in-time training set':<42}{pit_py:>11.2f}s{pit_cli:>11.2f}s  (CLI includes writing Parquet)")
        print(f"{'  of which writing the result as Parquet':<42}{'':>12}{write_out:>11.2f}s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
