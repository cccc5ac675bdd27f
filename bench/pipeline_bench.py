#!/usr/bin/env python3
"""Gold SQL over a bronze Delta table: `stratalake sql` (our Delta reader -> Arrow C
stream -> embedded DuckDB 1.5.6 -> Arrow) against DuckDB reading the table's Parquet
files directly (the `duckdb` wheel of scripts/requirements.txt) and Polars SQL over
the same files. A benchmark that prints numbers, never a pass/fail test:

    .venv/bin/python bench/pipeline_bench.py [--rows N] [--bin build/bin/stratalake]

Each figure is the best wall time of 3 runs of a whole subprocess (start, read, query,
write the result as Parquet). Every engine's result is compared with DuckDB's.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]

GOLD = """
SELECT customer_id, count(*) AS orders, sum(amount) AS spend,
       avg(amount) AS avg_amount, max(ts) AS last_order,
       rank() OVER (ORDER BY sum(amount) DESC) AS spend_rank
FROM {orders} GROUP BY customer_id ORDER BY customer_id
"""


def best(cmd, runs=3):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--bin", default=str(ROOT / "build" / "bin" / "stratalake"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    try:
        repo = work / "shop"
        repo.mkdir()
        (repo / "stratalake.yaml").write_text("project: shop\noffline_store: {path: lake}\n")
        rng = np.random.default_rng(7)
        n = args.rows
        table = pa.table({
            "order_id": np.arange(n, dtype=np.int64),
            "customer_id": rng.integers(0, 100_000, n),
            "amount": rng.random(n) * 100,
            "ts": pa.array(1_767_225_600_000_000 + rng.integers(0, 86_400_000_000 * 90, n),
                           pa.timestamp("us", tz="UTC")),
        })
        import stratalake
        path = repo / "lake" / "bronze" / "orders"
        stratalake.write_deltalake(str(path), table, mode="append")
        files = str(path / "*.parquet")
        out = {e: work / f"{e}.parquet" for e in ("stratalake", "duckdb", "polars")}
        py = sys.executable
        cmds = {
            "stratalake": [args.bin, "sql", GOLD.format(orders="bronze.orders"), "--repo",
                           str(repo), "--output", str(out["stratalake"])],
            "duckdb": [py, "-c", "import duckdb; duckdb.sql(%r).write_parquet(%r)" % (
                GOLD.format(orders=f"read_parquet('{files}')"), str(out["duckdb"]))],
            "polars": [py, "-c", "import polars as pl; pl.SQLContext(orders=pl.scan_parquet(%r))"
                       ".execute(%r).collect().write_parquet(%r)" % (
                           files, GOLD.format(orders="orders"), str(out["polars"]))],
        }
        ref = None
        print(f"{n:,} bronze rows, {len(list(path.glob('*.parquet')))} data file(s)")
        for engine, cmd in cmds.items():
            try:
                secs = best(cmd)
            except subprocess.CalledProcessError as e:
                print(f"{engine:>10}: failed: {e.stderr.decode()[-300:]}")
                continue
            got = pq.read_table(out[engine]).select(["customer_id", "orders", "spend_rank"])
            ref = got if ref is None else ref
            same = got.cast(ref.schema).equals(ref)
            print(f"{engine:>10}: {secs:.3f} s  (result {'matches' if same else 'DIFFERS'})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
