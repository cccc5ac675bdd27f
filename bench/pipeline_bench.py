#!/usr/bin/env python3
"""Gold SQL over a bronze Delta table: `stratalake sql` (our Delta reader -> Arrow C
stream -> embedded DuckDB 1.5.6 -> Arrow) against DuckDB reading the table's Parquet
files directly (the `duckdb` wheel of scripts/requirements.txt), Polars SQL over the
same files, and Spark + delta-spark (pyspark 3.5.5, delta-spark 3.3.2) on the same Delta
table. Then incremental runs of a silver merge (dedupe latest per key) after changes
of growing size, against the full run, and of a merge over a join of two tables
(`--multi-only` runs just that one, `--multi-rows N` sizes it). A benchmark that prints numbers, never a
pass/fail test:

    .venv/bin/python bench/pipeline_bench.py [--rows N] [--bin build/bin/stratalake] [--no-spark]
        [--sql-only]

Each figure of the first part is the best wall time and the least CPU time
(user + system) of 3 runs of a whole subprocess
(start, read, query, write the result as Parquet), except Spark's: its JVM and session
start once (printed apart) and the figure is the best of 3 queries in that session
(read the Delta table, query, write Parquet). Every engine's result is compared with
DuckDB's. The bronze table has two string columns the query does not read, so the
projection pushdown into our reader shows.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import json

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
    """(wall, CPU) seconds of the run with the least CPU time: on a shared machine
    CPU-seconds (user + system of the subprocess) are the steadier figure."""
    runs_seen = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        runs_seen.append((cpu, wall))
    cpu, wall = min(runs_seen)
    return min(w for _, w in runs_seen), cpu


def spark_bench(path: Path, work: Path, ref) -> None:
    """The same SQL in Spark + delta-spark on the same Delta table (local[2])."""
    import os
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession
    t0 = time.perf_counter()
    builder = (SparkSession.builder.master("local[2]").appName("pipeline-bench")
               .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
               .config("spark.sql.catalog.spark_catalog",
                       "org.apache.spark.sql.delta.catalog.DeltaCatalog")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.memory", "4g")
               .config("spark.sql.warehouse.dir", str(work / "warehouse")))
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    start = time.perf_counter() - t0
    out = work / "spark_out"
    query = GOLD.format(orders=f"delta.`{path}`")
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        spark.sql(query).coalesce(1).write.mode("overwrite").parquet(str(out))
        times.append(time.perf_counter() - t0)
    got = pq.read_table(out).select(["customer_id", "orders", "spend_rank"]).sort_by("customer_id")
    same = ref is not None and got.cast(ref.schema).equals(ref)
    print(f"{'spark':>10}: {min(times):.3f} s  (result {'matches' if same else 'DIFFERS'}; "
          f"JVM + session start {start:.1f} s not included)")
    spark.stop()


SILVER = """\
transformations:
  - name: silver_orders
    output: silver.orders
    mode: merge
    keys: [order_id]
    order_by: ts
    on_change: keys
    sql: SELECT order_id, customer_id, amount, ts, status FROM bronze.orders WHERE status <> 'refunded'
"""


def incremental_bench(binary: str, repo: Path, table: pa.Table, rng) -> None:
    """The silver merge's first (full) run, then runs after appends and deletes of
    growing size: the cost follows the change, not the table."""
    import stratalake
    (repo / "definitions").mkdir(exist_ok=True)
    (repo / "definitions" / "pipelines.yaml").write_text(SILVER)
    cfg = repo / "stratalake.yaml"
    cfg.write_text("project: shop\noffline_store: {path: lake}\ndefinitions: [definitions]\n")
    path = str(repo / "lake" / "bronze" / "orders")
    n = table.num_rows

    def run(*extra):
        t0 = time.perf_counter()
        proc = subprocess.run([binary, "run", "silver_orders", "--json", "--repo", str(repo),
                               *extra], check=True, capture_output=True, text=True)
        return time.perf_counter() - t0, json.loads(proc.stdout)[0]

    secs, r = run()
    print(f"\nsilver merge over {n:,} bronze rows (stratalake run, whole subprocess):")
    print(f"  {'first run (full)':<34} {secs:7.3f} s  {r['rows']:>10,} rows  {r['detail']}")
    next_id = n
    for frac in (0.0001, 0.001, 0.01, 0.1):
        k = max(1, int(n * frac))
        new = table.slice(0, k).set_column(0, "order_id", pa.array(
            np.arange(next_id, next_id + k, dtype=np.int64)))
        next_id += k
        stratalake.write_deltalake(path, new, mode="append")
        secs, r = run()
        print(f"  {'append ' + format(k, ',') + ' rows':<34} {secs:7.3f} s  {r['rows']:>10,} rows  "
              f"{r['detail']}")
    # Deletes of recent rows touch the small files the appends wrote: the keys they
    # held are recomputed. Deletes scattered over the whole table rewrite every file
    # of it: the run recomputes everything (cheaper than diffing the files).
    for label, lo, hi, k in (("recent", n, next_id, 1000), ("recent", n, next_id, 10000),
                             ("scattered", 0, n, 1000)):
        ids = rng.choice(np.arange(lo, hi), size=k, replace=False)
        stratalake.DeltaTable(path).delete(f"order_id IN ({', '.join(map(str, ids))})")
        secs, r = run()
        what = f"delete {k:,} {label} rows"
        print(f"  {what:<34} {secs:7.3f} s  {r['rows']:>10,} rows  {r['detail']}")
    secs, r = run()
    print(f"  {'re-run, nothing changed':<34} {secs:7.3f} s  {r['detail']}")
    secs, r = run("--full-refresh")
    print(f"  {'--full-refresh':<34} {secs:7.3f} s  {r['rows']:>10,} rows  {r['detail']}")


MULTI = """\
transformations:
  - name: silver_paid
    output: silver.paid
    mode: merge
    keys: [order_id]
    on_change: keys
    sql: |
      SELECT o.order_id, o.customer_id, o.amount, sum(p.paid) AS paid, count(p.paid) AS payments
      FROM bronze.orders o LEFT JOIN bronze.payments p ON p.order_id = o.order_id
      GROUP BY ALL
"""


def multi_bench(binary: str, work: Path, n: int, rng) -> None:
    """A merge over a join of two tables (orders and their payments, n rows each, join +
    GROUP BY on the key): the first (full) run, then runs after changes of both inputs
    of growing size. Each figure is one `stratalake run` subprocess: its CPU seconds
    (user + sys, from getrusage of the children), the ratio to the full run's, and the
    1-minute load average when it finished."""
    import os
    import resource
    import stratalake
    repo = work / "multi"
    (repo / "definitions").mkdir(parents=True)
    (repo / "stratalake.yaml").write_text(
        "project: shop\noffline_store: {path: lake}\ndefinitions: [definitions]\n")
    (repo / "definitions" / "pipelines.yaml").write_text(MULTI)
    orders_path = str(repo / "lake" / "bronze" / "orders")
    payments_path = str(repo / "lake" / "bronze" / "payments")

    def orders(lo, hi):
        k = hi - lo
        return pa.table({"order_id": np.arange(lo, hi, dtype=np.int64),
                         "customer_id": rng.integers(0, 100_000, k),
                         "amount": rng.random(k) * 100})

    def payments(ids):
        return pa.table({"order_id": pa.array(ids, pa.int64()),
                         "paid": rng.random(len(ids)) * 100,
                         "method": pa.array(np.array(["card", "cash", "wire"])[
                             rng.integers(0, 3, len(ids))])})

    stratalake.write_deltalake(orders_path, orders(0, n), mode="append")
    stratalake.write_deltalake(payments_path, payments(np.arange(n)), mode="append")

    def run(*extra):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([binary, "run", "silver_paid", "--json", "--repo", str(repo),
                               *extra], check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return cpu, wall, json.loads(proc.stdout)[0]

    full_cpu, wall, r = run()
    dv = "deletionVectors" in (repo / "lake" / "silver" / "paid" / "_delta_log" /
                               "00000000000000000000.json").read_text()
    print(f"\nmerge over a join of two {n:,}-row tables (orders LEFT JOIN payments, GROUP BY "
          f"order_id; stratalake run, whole subprocess; output "
          f"{'with' if dv else 'without'} deletion vectors):")
    # The floor: DuckDB (the duckdb wheel) running the same SQL over the same Parquet
    # files, writing its result as Parquet, in a whole subprocess like ours.
    sql = MULTI.split("sql: |\n", 1)[1]
    sql = sql.replace("bronze.orders", f"read_parquet('{orders_path}/*.parquet')").replace(
        "bronze.payments", f"read_parquet('{payments_path}/*.parquet')")
    d_wall, d_cpu = best([sys.executable, "-c", "import duckdb; duckdb.sql(%r).write_parquet(%r)"
                          % (sql, str(work / "multi_duckdb.parquet"))])
    print(f"  {'change':<44} {'CPU s':>7} {'vs full':>8} {'wall s':>7} {'load':>5}  detail")

    def show(label, cpu, wall, r):
        print(f"  {label:<44} {cpu:7.2f} {cpu / full_cpu:7.3f}x {wall:7.2f} "
              f"{os.getloadavg()[0]:5.1f}  {r['detail']}")

    show("first run (full)", full_cpu, wall, r)
    print(f"  {'DuckDB, same SQL on the Parquet files':<44} {d_cpu:7.2f} {d_cpu / full_cpu:7.3f}x "
          f"{d_wall:7.2f} {os.getloadavg()[0]:5.1f}  (least CPU of 3)")
    next_id = n
    for k in (1000, 10_000, 100_000):
        ids = np.arange(next_id, next_id + k)
        stratalake.write_deltalake(orders_path, orders(next_id, next_id + k), mode="append")
        stratalake.write_deltalake(payments_path, payments(ids), mode="append")
        next_id += k
        show(f"append {k:,} orders + {k:,} payments", *run())
    for k in (1000, 10_000):
        stratalake.DeltaTable(payments_path).update({"paid": "paid + 1"},
                                                    predicate=f"order_id < {n + k}"
                                                    f" AND order_id >= {n}")
        show(f"update {k:,} recent payments", *run())
    recent = np.arange(n, n + 1000)
    stratalake.DeltaTable(payments_path).delete(
        f"order_id IN ({', '.join(map(str, recent[:1000:2]))})")
    show("delete 500 recent payments", *run())
    stratalake.write_deltalake(payments_path, payments(rng.integers(0, n, 1000)), mode="append")
    show("append 1,000 payments of old orders", *run())
    scattered = rng.choice(np.arange(n), size=1000, replace=False)
    stratalake.DeltaTable(payments_path).update(
        {"paid": "paid + 1"}, predicate=f"order_id IN ({', '.join(map(str, scattered))})")
    show("update 1,000 scattered payments", *run())
    show("re-run, nothing changed", *run())
    show("--full-refresh", *run("--full-refresh"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--bin", default=str(ROOT / "build" / "bin" / "stratalake"))
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--multi-rows", type=int, default=1_000_000,
                    help="rows of each input of the two-table incremental case")
    ap.add_argument("--multi-only", action="store_true",
                    help="run only the two-table incremental case")
    ap.add_argument("--baseline-bin", help="another stratalake binary to time beside --bin "
                    "(e.g. the main branch's build), as engine 'baseline'")
    ap.add_argument("--sql-only", action="store_true",
                    help="only the gold query of the first part (no Spark, no incremental runs)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    if args.multi_only:
        try:
            multi_bench(args.bin, work, args.multi_rows, np.random.default_rng(7))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return 0
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
            "status": pa.array(np.array(["placed", "paid", "shipped", "refunded"])[
                rng.integers(0, 4, n)]),
            "note": pa.array(np.char.add("order note ", np.arange(n).astype(str))),
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
        if args.baseline_bin:
            out["baseline"] = work / "baseline.parquet"
            cmds["baseline"] = [args.baseline_bin, *cmds["stratalake"][1:-1], str(out["baseline"])]
        ref = None
        print(f"{n:,} bronze rows, {len(list(path.glob('*.parquet')))} data file(s); "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'':>10}  {'wall':>8} {'CPU':>8}  (best of 3 each)")
        figures = {}
        for engine, cmd in cmds.items():
            try:
                secs, cpu = best(cmd)
            except subprocess.CalledProcessError as e:
                print(f"{engine:>10}: failed: {e.stderr.decode()[-300:]}")
                continue
            figures[engine] = (secs, cpu)
            got = pq.read_table(out[engine]).select(["customer_id", "orders", "spend_rank"])
            ref = got if ref is None else ref
            same = got.cast(ref.schema).equals(ref)
            print(f"{engine:>10}: {secs:7.3f}s {cpu:7.3f}s  "
                  f"(result {'matches' if same else 'DIFFERS'})")
        if "duckdb" in figures:
            d_wall, d_cpu = figures["duckdb"]
            for engine, (w, c) in figures.items():
                print(f"{engine:>10}: {w / d_wall:.2f}x DuckDB's wall, {c / d_cpu:.2f}x its CPU")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        if args.sql_only:
            return 0
        if not args.no_spark:
            spark_bench(path, work, ref)
        incremental_bench(args.bin, repo, table, rng)
        multi_bench(args.bin, work, args.multi_rows, rng)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
