#!/usr/bin/env python3
"""Window-feature training sets: StrataLake vs DuckDB window SQL and Polars rolling.

A benchmark that prints numbers, never a pass/fail test:

    python3 bench/window_bench.py [--events 2000000] [--entities 1000000] [--keys 10000]
                                  [--days 2] [--bin build/bin/stratalake] [--runs 1]

One workload (NumPy, cached under bench/data): trade events (key, µs event time,
price float64, size int64) and entity rows (key, µs time) with 10% of their times copied
from an event (an event exactly at t) and 10% at an event's time + a window (an event
exactly at t - window, which is outside the window). Twelve features per entity row: count
of prices, sum of sizes, mean and stddev of prices over 5m, 1h and 24h windows
(t - window, t]. Every engine runs in its own subprocess (start, read, compute, write
Parquet) on the same files:

  stratalake  `stratalake get-historical` with one window feature view (docs/windows.md)
              over the events ingested into a Delta table
  duckdb      events and entity rows in one relation ordered per key by time (the
              ASOF-style union), one window per width:
              RANGE BETWEEN INTERVAL 'W - 1 µs' PRECEDING AND CURRENT ROW (= (t - W, t]
              on µs times), stddev_samp; entity rows kept in input order
  polars      the same union, LazyFrame.rolling(index_column=ts, period=W,
              closed="right", group_by=key) (= (t - W, t]), then the entity rows

Values are asserted equal: counts exactly, float sums/means/stddevs to a relative 1e-9
(the engines add in different orders), with the peers' empty-window conventions mapped to
ours (sum/mean over no value -> null). Each engine's time is its whole subprocess's wall
time and its peak RSS (wait4). A stall_probe reading (bench/stall_probe.cc) is taken
before the runs: the time the shared machine took away from a busy program.
docs/benchmarks.md ("Window features") has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pit_bench import run_measured, settle  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BASE_US = 1_780_272_000_000_000  # 2026-06-01T00:00:00Z
WINDOWS = [("5m", 300), ("1h", 3600), ("24h", 86400)]
# (feature prefix, function, column)
FUNCS = [("n", "count", "price"), ("vol", "sum", "size"), ("mean", "mean", "price"),
         ("std", "stddev", "price")]
FEATURES = [f"{p}_{w}" for w, _ in WINDOWS for p, _, _ in FUNCS]
ENGINES = ["stratalake", "duckdb", "polars"]


def log(msg: str) -> None:
    print(f"[window_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def generate(d: Path, events: int, entities: int, keys: int, days: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    span = days * 86400 * 1_000_000
    key = rng.integers(0, keys, events, dtype=np.int64)
    ts = rng.integers(0, span, events, dtype=np.int64)
    ts[: events // 5] -= ts[: events // 5] % 1_000_000  # whole seconds: ties
    order = np.argsort(ts, kind="stable")
    key, ts = key[order], ts[order]
    price = np.round(100 + np.cumsum(rng.standard_normal(events)) * 0.01, 6)
    size = rng.integers(1, 100, events, dtype=np.int64)
    nulls = rng.random(events) < 0.01
    pq.write_table(pa.table({
        "account_id": pa.array(key),
        "ts": pa.array(BASE_US + ts, type=pa.timestamp("us", tz="UTC")),
        "price": pa.array(np.where(nulls, 0, price), mask=nulls),
        "size": pa.array(size),
    }), d / "events.parquet", row_group_size=1 << 20)
    ekey = rng.integers(0, keys, entities, dtype=np.int64)
    ets = rng.integers(0, span + 86400 * 1_000_000, entities, dtype=np.int64)
    n10 = entities // 10
    pick = rng.integers(0, events, 2 * n10)
    ekey[:n10], ets[:n10] = key[pick[:n10]], ts[pick[:n10]]  # an event at exactly t
    w = np.array([s for _, s in WINDOWS], dtype=np.int64)[rng.integers(0, len(WINDOWS), n10)]
    ekey[n10:2 * n10] = key[pick[n10:]]
    ets[n10:2 * n10] = ts[pick[n10:]] + w * 1_000_000  # an event at exactly t - window
    perm = rng.permutation(entities)
    pq.write_table(pa.table({
        "account_id": pa.array(ekey[perm]),
        "event_timestamp": pa.array(BASE_US + ets[perm], type=pa.timestamp("us", tz="UTC")),
    }), d / "entities.parquet", row_group_size=1 << 20)


def ensure_repo(d: Path, binary: str) -> None:
    repo = d / "repo"
    if (repo / ".complete").exists():
        return
    if repo.exists():
        shutil.rmtree(repo)
    (repo / "definitions").mkdir(parents=True)
    (repo / "stratalake.yaml").write_text(
        "project: window_bench\noffline_store: lake\nregistry: .stratalake/registry.db\n"
        "definitions:\n  - definitions\n")
    aggs = "\n".join(f"      - {{name: {p}_{w}, function: {f}, column: {c}, window: {w}}}"
                     for w, _ in WINDOWS for p, f, c in FUNCS)
    (repo / "definitions" / "w.yaml").write_text(f"""entities:
  - name: account
    join_keys: [{{name: account_id, type: int64}}]
sources:
  - name: trades
    path: bronze/trades
    timestamp_field: ts
    schema:
      - {{name: account_id, type: int64, nullable: false}}
      - {{name: ts, type: timestamp, nullable: false}}
      - {{name: price, type: float64}}
      - {{name: size, type: int64}}
feature_views:
  - name: trade_windows
    entities: [account]
    source: trades
    online: false
    aggregations:
{aggs}
""")
    sl = lambda *a: subprocess.run([binary, *a, "--repo", str(repo)], check=True,  # noqa: E731
                                   capture_output=True, text=True)
    sl("apply", "--message", "window_bench")
    log("stratalake ingest trades")
    sl("ingest", "trades", str(d / "events.parquet"))
    (repo / ".complete").write_text("ok")


# ---- workers ------------------------------------------------------------------------


def worker_duckdb(d: Path, out: str) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    wins, sel = [], []
    for w, s in WINDOWS:
        wins.append(f"w{w} AS (PARTITION BY account_id ORDER BY ts RANGE BETWEEN "
                    f"INTERVAL '{s * 1_000_000 - 1} microseconds' PRECEDING AND CURRENT ROW)")
        sel += [f"count(price) OVER w{w} AS n_{w}", f"sum(size) OVER w{w} AS vol_{w}",
                f"avg(price) OVER w{w} AS mean_{w}", f"stddev_samp(price) OVER w{w} AS std_{w}"]
    q = f"""COPY (
      WITH u AS (
        SELECT account_id, ts, price, size, NULL::BIGINT AS rid
          FROM read_parquet('{d / "events.parquet"}')
        UNION ALL
        SELECT account_id, event_timestamp AS ts, NULL::DOUBLE, NULL::BIGINT, file_row_number
          FROM read_parquet('{d / "entities.parquet"}', file_row_number = true))
      SELECT account_id, ts AS event_timestamp, {", ".join(FEATURES)} FROM (
        SELECT rid, account_id, ts, {", ".join(sel)} FROM u WINDOW {", ".join(wins)}
      ) WHERE rid IS NOT NULL ORDER BY rid
    ) TO '{out}' (FORMAT parquet)"""
    con.execute(q)


def worker_polars(d: Path, out: str) -> None:
    import polars as pl

    ev = pl.scan_parquet(d / "events.parquet").with_columns(
        pl.lit(None, dtype=pl.UInt32).alias("rid"))
    en = pl.scan_parquet(d / "entities.parquet").with_row_index("rid").select(
        pl.col("account_id"), pl.col("event_timestamp").alias("ts"),
        pl.lit(None, dtype=pl.Float64).alias("price"), pl.lit(None, dtype=pl.Int64).alias("size"),
        pl.col("rid"))
    u = pl.concat([ev.select("account_id", "ts", "price", "size", "rid"), en]).sort(
        ["account_id", "ts"])
    parts = []
    for w, _ in WINDOWS:
        r = u.rolling(index_column="ts", period=w, closed="right", group_by="account_id").agg(
            pl.col("rid").last().alias("__last"),
            pl.col("price").count().alias(f"n_{w}"),
            pl.col("size").sum().alias(f"vol_{w}"),
            pl.col("price").mean().alias(f"mean_{w}"),
            pl.col("price").std().alias(f"std_{w}"))
        parts.append(r)
    # rolling gives one row per input row, in the input order: line them up.
    base = u.with_row_index("__i")
    cols = [base]
    for r in parts:
        cols.append(r.drop(["account_id", "ts", "__last"]))
    df = pl.concat([c for c in cols], how="horizontal").filter(pl.col("rid").is_not_null())
    df.sort("rid").select(["account_id", pl.col("ts").alias("event_timestamp"), *FEATURES]) \
        .collect().write_parquet(out)


def worker_main(argv: list[str]) -> None:
    engine, d, out = argv[0], Path(argv[1]), argv[2]
    {"duckdb": worker_duckdb, "polars": worker_polars}[engine](d, out)


# ---- comparing ------------------------------------------------------------------------


def compare(ref: pa.Table, other: pa.Table) -> dict:
    """Mismatches per feature of `other` against `ref` (StrataLake's output)."""
    bad = {}
    assert ref.num_rows == other.num_rows, (ref.num_rows, other.num_rows)
    for w, _ in WINDOWS:
        n_ref = ref.column(f"n_{w}").to_numpy(zero_copy_only=False)
        n_oth = other.column(f"n_{w}").fill_null(0).to_numpy(zero_copy_only=False)
        bad[f"n_{w}"] = int(np.count_nonzero(n_ref != n_oth))
        for p in ("vol", "mean", "std"):
            name = f"{p}_{w}"
            a = ref.column(name).to_numpy(zero_copy_only=False).astype(float)
            b = other.column(name).to_numpy(zero_copy_only=False).astype(float)
            # An empty window's sum: Polars 0, DuckDB and ours null (sizes are >= 1, so a
            # sum of 0 is an empty window).
            if p == "vol":
                b = np.where(b == 0, np.nan, b)
            both_nan = np.isnan(a) & np.isnan(b)
            close = np.isclose(a, b, rtol=1e-9, atol=1e-9)
            bad[name] = int(np.count_nonzero(~(both_nan | close)))
    return bad


def stall_reading(seconds: float) -> str:
    probe = REPO / "build" / "bin" / "stall_probe"
    if not probe.exists():
        return "stall_probe not built"
    p = subprocess.run([str(probe), "--seconds", str(seconds)], capture_output=True, text=True)
    try:
        st = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return "stall_probe failed"
    per_s = "/".join(f"{c['lost_ms_1ms'] / st['seconds']:.0f}" for c in st["cpus"])
    return (f"lost {per_s} ms/s per CPU in gaps >= 1 ms, max gap "
            f"{max(c['max_ms'] for c in st['cpus']):.1f} ms, steal {st.get('steal_ms', 0)} ms")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        worker_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--entities", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=1, help="runs per engine (best is reported)")
    ap.add_argument("--bin", default=str(REPO / "build" / "bin" / "stratalake"))
    ap.add_argument("--data", default=str(REPO / "bench" / "data"))
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--probe-seconds", type=float, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    d = Path(args.data) / f"window-e{args.events}-n{args.entities}-k{args.keys}-d{args.days}-s{args.seed}"
    if not (d / "entities.parquet").exists():
        d.mkdir(parents=True, exist_ok=True)
        log(f"generating {args.events:,} events, {args.entities:,} entity rows")
        generate(d, args.events, args.entities, args.keys, args.days, args.seed)
    ensure_repo(d, args.bin)
    out_dir = d / "out"
    out_dir.mkdir(exist_ok=True)
    stalls = stall_reading(args.probe_seconds)
    log(f"stall probe: {stalls}")
    results: dict[str, dict] = {}
    for eng in args.engines.split(","):
        out = out_dir / f"{eng}.parquet"
        if eng == "stratalake":
            cmd = [args.bin, "get-historical", "--repo", str(d / "repo"), "--entities",
                   str(d / "entities.parquet"), "--features", "trade_windows", "--output", str(out)]
        else:
            cmd = [sys.executable, str(Path(__file__).resolve()), "_worker", eng, str(d), str(out)]
        best = None
        for _ in range(args.runs):
            settle(20)
            r = run_measured(cmd, out_dir / f"{eng}.log", timeout=3600)
            if r["rc"] != 0:
                raise SystemExit(f"{eng} failed (rc {r['rc']}): " + (out_dir / f"{eng}.log").read_text()[-2000:])
            if best is None or r["seconds"] < best["seconds"]:
                best = r
        results[eng] = best
        log(f"{eng}: {best['seconds']:.2f} s, peak {best['peak_rss_mib']:.0f} MiB")
    ref = pq.read_table(out_dir / "stratalake.parquet") if "stratalake" in results else None
    mismatches = {}
    if ref is not None:
        for eng in results:
            if eng == "stratalake":
                continue
            mismatches[eng] = compare(ref, pq.read_table(out_dir / f"{eng}.parquet"))
    print(f"\nwindow features: {args.events:,} events, {args.entities:,} entity rows, "
          f"{args.keys:,} keys, {args.days} days; {len(FEATURES)} features "
          f"(count/sum/mean/stddev x 5m/1h/24h)")
    print(f"stall probe before the runs: {stalls}")
    print(f"{'engine':<12}{'seconds':>10}{'peak MiB':>10}{'cpu s':>8}{'other cpu':>10}  mismatching values")
    for eng, r in results.items():
        mm = "reference" if eng == "stratalake" else str(sum(mismatches[eng].values()))
        print(f"{eng:<12}{r['seconds']:>10.2f}{r['peak_rss_mib']:>10.0f}{r['cpu_seconds']:>8.1f}"
              f"{r['other_cpu_share']:>9.0%}  {mm}")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "mismatches": mismatches,
                                               "stalls": stalls}, indent=2))
    bad = {e: {f: n for f, n in m.items() if n} for e, m in mismatches.items()}
    bad = {e: m for e, m in bad.items() if m}
    assert not bad, f"values differ from StrataLake's: {bad}"


if __name__ == "__main__":
    main()
