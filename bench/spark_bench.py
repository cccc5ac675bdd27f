#!/usr/bin/env python3
"""The Spark engine's training set vs the local engine's, on the same data.

A benchmark that prints numbers, never a pass/fail test:

    .venv/bin/python bench/spark_bench.py [--entities N] [--features M] [--keys K]
                                          [--masters local[1],local[2]] [--json out.json]
    .venv/bin/python bench/spark_bench.py --case materialize [--features M] [--keys K] ...

It builds one feature repository (two feature views on two Delta sources, TTLs of 2 days
and none, created-time ties) in a temporary folder, then times, each in its own process:

  local        FeatureStore(repo).get_historical_features(entities).to_arrow()
  spark MASTER FeatureStore(repo, engine="spark").get_historical_features(...).to_delta(DIR)
               on a SparkSession with that master (local[1]: one executor core,
               local[2]: two); the session's start is timed apart from the job.

Every Spark output is read back in the exact output schema and compared with the local
engine's table (`equals`: same rows, order, values and types); a difference is printed
and the run exits 1.

`--case materialize`: each engine materializes both views of a fresh copy of the
repository into the embedded store (Spark: executors write SST files, the driver ingests
them); wall and CPU seconds (the process tree: Spark's JVM and Python workers included),
load average, and whether the stored bytes equal the local engine's (else exit 1).
docs/scale.md explains the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

BASE_US = 1_780_272_000_000_000  # 2026-06-01T00:00:00Z
DAY_US = 86_400_000_000

DEFS = """
entities:
  - name: user
    join_keys: [{name: user_id, type: int64}]
sources:
  - name: events
    path: bronze/events
    timestamp_field: ts
    created_timestamp_field: created
    schema:
      - {name: user_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: created, type: timestamp}
      - {name: clicks, type: int64}
      - {name: spend, type: float64}
  - name: profiles
    path: silver/profiles
    timestamp_field: ts
    schema:
      - {name: user_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: tier, type: string}
feature_views:
  - name: activity
    entities: [user]
    source: events
    ttl: 2d
    features: [{name: clicks, type: int64}, {name: spend, type: float64}]
  - name: profile
    entities: [user]
    source: profiles
    ttl: 0
    features: [{name: tier, type: string}]
"""
FEATURES = ["activity:clicks", "activity:spend", "profile:tier"]


def build(root: Path, n_ent: int, n_feat: int, keys: int, seed: int = 7) -> Path:
    from stratalake import FeatureStore
    rng = np.random.default_rng(seed)
    repo = root / "repo"
    (repo / "definitions").mkdir(parents=True)
    (repo / "stratalake.yaml").write_text("project: sparkbench\noffline_store: lake\n"
                                          "registry: registry.db\n")
    (repo / "definitions" / "defs.yaml").write_text(DEFS)
    store = FeatureStore(repo)
    store.apply()
    ts = BASE_US + rng.integers(0, 30 * DAY_US, n_feat)
    events = pa.table({
        "user_id": rng.integers(0, keys, n_feat),
        "ts": pa.array(ts, pa.timestamp("us", "UTC")),
        # ties on event time within a key are frequent: created breaks them
        "created": pa.array(ts + rng.integers(0, 3, n_feat) * 1_000_000, pa.timestamp("us", "UTC")),
        "clicks": rng.integers(0, 100, n_feat),
        "spend": rng.random(n_feat),
    })
    pq.write_table(events, root / "events.parquet")
    store.ingest("events", root / "events.parquet")
    n_prof = max(1, keys // 2)
    profiles = pa.table({
        "user_id": rng.integers(0, keys, n_prof),
        "ts": pa.array(BASE_US + rng.integers(0, 30 * DAY_US, n_prof), pa.timestamp("us", "UTC")),
        "tier": pa.array(rng.choice(["gold", "silver", "bronze"], n_prof)),
    })
    pq.write_table(profiles, root / "profiles.parquet")
    store.ingest("profiles", root / "profiles.parquet")
    ents = pa.table({
        "user_id": rng.integers(0, int(keys * 1.1), n_ent),
        "event_timestamp": pa.array(BASE_US + rng.integers(0, 32 * DAY_US, n_ent),
                                    pa.timestamp("us", "UTC")),
        "label": rng.integers(0, 2, n_ent),
    })
    pq.write_table(ents, root / "entities.parquet")
    store.close()
    return repo


def worker(args) -> None:
    """One engine in this process; prints a JSON line of timings."""
    from stratalake import FeatureStore
    ents = pq.read_table(args.entity_file)
    out = {"engine": args.worker, "master": args.master}
    if args.worker == "local":
        t = time.perf_counter()
        table = FeatureStore(args.repo).get_historical_features(
            ents, FEATURES, progress=False).to_arrow()
        out["seconds"] = time.perf_counter() - t
        pq.write_table(table, args.result)
    else:
        from stratalake.spark import read_output, spark_session
        t = time.perf_counter()
        spark = spark_session(args.master, conf={"spark.sql.shuffle.partitions": args.partitions,
                                                 "spark.driver.memory": "4g"})
        spark.range(1).count()
        out["session_seconds"] = time.perf_counter() - t
        job = FeatureStore(args.repo, engine="spark", spark=spark).get_historical_features(
            ents, FEATURES)
        t = time.perf_counter()
        p = job.to_delta(args.delta)
        out["seconds"] = time.perf_counter() - t
        table = pa.Table.from_batches(list(read_output(args.delta, p["schema"])), p["schema"])
        pq.write_table(table, args.result)
        spark.stop()
    print(json.dumps(out))


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and every live descendant (the Spark JVM and its
    Python workers), from /proc; processes that already exited are not counted."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict = {}
    stats: dict = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, 0.0)
        todo.extend(children.get(p, []))
    return total


def stored_digest(repo: str) -> tuple:
    """(keys, sha256) of every key and value in the online store (the exact bytes)."""
    import hashlib
    from stratalake import _core
    h, n = hashlib.sha256(), 0
    for prefix in (b"activity", b"profile"):
        for k, v in _core.scan_online(repo, prefix):
            h.update(len(k).to_bytes(4, "big") + k + len(v).to_bytes(4, "big") + v)
            n += 1
    return n, h.hexdigest()


def materialize_worker(args) -> None:
    """`--case materialize`: one engine materializes a fresh copy of the repository (both
    views, the whole month) into its embedded store; prints timings, CPU seconds of the
    process tree and a digest of the stored bytes."""
    import shutil
    from stratalake import FeatureStore
    repo = args.delta  # this worker's own copy: every engine starts from an empty store
    shutil.copytree(args.repo, repo)
    start, end = BASE_US // 1_000_000, (BASE_US + 31 * DAY_US) // 1_000_000
    import datetime as dt
    start = dt.datetime.fromtimestamp(start, dt.timezone.utc)
    end = dt.datetime.fromtimestamp(end, dt.timezone.utc)
    out = {"engine": args.worker, "master": args.master}
    if args.worker == "local":
        cpu, t = tree_cpu_seconds(os.getpid()), time.perf_counter()
        FeatureStore(repo).materialize(start, end, progress=False)
    else:
        from stratalake.spark import spark_session
        t = time.perf_counter()
        spark = spark_session(args.master, conf={"spark.sql.shuffle.partitions": args.partitions,
                                                 "spark.driver.memory": "4g"})
        spark.range(1).count()
        out["session_seconds"] = time.perf_counter() - t
        cpu, t = tree_cpu_seconds(os.getpid()), time.perf_counter()
        FeatureStore(repo, engine="spark", spark=spark).materialize(start, end)
    out["seconds"] = time.perf_counter() - t
    out["cpu_seconds"] = tree_cpu_seconds(os.getpid()) - cpu
    out["keys"], out["digest"] = stored_digest(repo)
    out["load"] = os.getloadavg()[0]
    print(json.dumps(out))
    os._exit(0)  # the Spark session goes with the process


def run(cmd) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=2_000_000)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--masters", default="local[1],local[2]")
    ap.add_argument("--partitions", default="8")
    ap.add_argument("--json")
    ap.add_argument("--case", choices=["historical", "materialize"], default="historical")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--master", help=argparse.SUPPRESS)
    ap.add_argument("--repo", help=argparse.SUPPRESS)
    ap.add_argument("--entity-file", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--delta", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        (materialize_worker if args.case == "materialize" else worker)(args)
        return
    if args.case == "materialize":
        materialize_main(args)
        return
    with tempfile.TemporaryDirectory(prefix="spark_bench_") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        repo = build(root, args.entities, args.features, args.keys)
        print(f"data: {args.entities:,} entity rows, 2 views ({args.features:,} + "
              f"{max(1, args.keys // 2):,} feature rows), {args.keys:,} keys "
              f"(built in {time.perf_counter() - t:.1f} s); {os.cpu_count()} CPUs")
        me = [sys.executable, __file__, "--repo", str(repo), "--entity-file",
              str(root / "entities.parquet"), "--partitions", args.partitions]
        results = [run(me + ["--worker", "local", "--result", str(root / "local.parquet")])]
        want = pq.read_table(root / "local.parquet")
        for i, master in enumerate(args.masters.split(",")):
            r = run(me + ["--worker", "spark", "--master", master, "--result",
                          str(root / f"spark{i}.parquet"), "--delta", str(root / f"out{i}")])
            got = pq.read_table(root / f"spark{i}.parquet")
            r["identical"] = got.equals(want)
            if not r["identical"]:
                print(f"{master}: the output differs from the local engine's")
            results.append(r)
        n = args.entities
        local_s = results[0]["seconds"]
        print(f"{'engine':<16} {'seconds':>8} {'rows/s':>12} {'us/row':>8} {'identical':>9}")
        for r in results:
            name = r["engine"] if r["engine"] == "local" else f"spark {r['master']}"
            print(f"{name:<16} {r['seconds']:8.2f} {n / r['seconds']:12,.0f} "
                  f"{1e6 * r['seconds'] / n:8.2f} {str(r.get('identical', '-')):>9}"
                  + (f"   (session start {r['session_seconds']:.1f} s)" if 'session_seconds' in r else ""))
        for r in results[1:]:
            print(f"cost of going distributed ({r['master']}): "
                  f"{1e6 * (r['seconds'] - local_s) / n:+.2f} us per entity row")
        if args.json:
            Path(args.json).write_text(json.dumps({"entities": n, "features": args.features,
                                                   "keys": args.keys, "results": results},
                                                  indent=2))
        if not all(r.get("identical", True) for r in results):
            sys.exit(1)


def materialize_main(args) -> None:
    """Local vs Spark materialization of the same repository into the embedded store."""
    with tempfile.TemporaryDirectory(prefix="spark_bench_") as tmp:
        root = Path(tmp)
        repo = build(root, 1, args.features, args.keys)
        print(f"data: 2 views ({args.features:,} + {max(1, args.keys // 2):,} feature rows), "
              f"{args.keys:,} keys; {os.cpu_count()} CPUs; load average before: "
              f"{os.getloadavg()[0]:.1f}")
        me = [sys.executable, __file__, "--case", "materialize", "--repo", str(repo),
              "--partitions", args.partitions]
        results = [run(me + ["--worker", "local", "--delta", str(root / "local")])]
        for i, master in enumerate(args.masters.split(",")):
            r = run(me + ["--worker", "spark", "--master", master, "--delta",
                          str(root / f"spark{i}")])
            r["identical"] = (r["keys"], r["digest"]) == (results[0]["keys"], results[0]["digest"])
            results.append(r)
        rows = args.features + max(1, args.keys // 2)
        print(f"{'engine':<16} {'seconds':>8} {'CPU-s':>7} {'rows/CPU-s':>11} {'keys':>8} "
              f"{'load':>5} {'identical':>9}")
        for r in results:
            name = r["engine"] if r["engine"] == "local" else f"spark {r['master']}"
            print(f"{name:<16} {r['seconds']:8.2f} {r['cpu_seconds']:7.1f} "
                  f"{rows / max(r['cpu_seconds'], 1e-9):11,.0f} {r['keys']:8,} {r['load']:5.1f} "
                  f"{str(r.get('identical', '-')):>9}"
                  + (f"   (session start {r['session_seconds']:.1f} s)" if 'session_seconds' in r else ""))
        for r in results[1:]:
            print(f"Spark {r['master']} / local: {r['seconds'] / results[0]['seconds']:.1f}x wall, "
                  f"{r['cpu_seconds'] / max(results[0]['cpu_seconds'], 1e-9):.1f}x CPU")
        if args.json:
            Path(args.json).write_text(json.dumps({"case": "materialize", "features": args.features,
                                                   "keys": args.keys, "results": results}, indent=2))
        if not all(r.get("identical", True) for r in results):
            print("a Spark run stored other bytes than the local engine")
            sys.exit(1)


if __name__ == "__main__":
    main()
