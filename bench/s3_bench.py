#!/usr/bin/env python3
"""Tables on an S3-compatible server vs the local disk, with and without the read
cache, and delta-rs (the `deltalake` package) on the same S3 tables, in one run.

A benchmark that prints numbers, never a pass/fail test:

    .venv/bin/python bench/s3_bench.py [--bin build/bin/delta_bench] [--rows 2000000]
                                       [--reps 3] [--endpoint URL] [--workdir DIR]

Without --endpoint it starts the project's server (scripts/s3.sh: versitygw on
127.0.0.1, its data on the local disk) and stops it at the end. StrataLake runs through
the `delta_bench` binary (bench/delta_bench.cc; it times itself around the public C++
API calls only), delta-rs in-process. The same data (bench/delta_bench.py's generator)
is written by both engines to the local disk and to the bucket; each engine's S3 table is
scanned by both. StrataLake's S3 scans are measured with the read cache off
(STRATALAKE_CACHE_SIZE=0), cold (an empty cache folder: every file fetched into it) and
warm (the files already cached). Figures are medians of --reps; docs/benchmarks.md
("Object storage") explains them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pyarrow.parquet as pq
from deltalake import DeltaTable, WriterProperties, write_deltalake

sys.path.insert(0, str(Path(__file__).resolve().parent))
from delta_bench import generate, machine, timed  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def run_bin(binary: str, args: list, env: dict) -> list[dict]:
    proc = subprocess.run([binary, *map(str, args)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"delta_bench failed ({proc.returncode}): {' '.join(map(str, args))}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=str(REPO / "build" / "bin" / "delta_bench"))
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-rows-per-file", type=int, default=250_000)
    ap.add_argument("--endpoint", help="an S3 endpoint whose AWS_* settings are in the environment")
    ap.add_argument("--bucket", default="stratalake")
    ap.add_argument("--workdir")
    ap.add_argument("--json", help="write the results here too")
    a = ap.parse_args()

    work = Path(a.workdir or tempfile.mkdtemp(prefix="s3bench-"))
    work.mkdir(parents=True, exist_ok=True)
    server_dir = None
    env = os.environ.copy()
    if a.endpoint is None:
        server_dir = work / "server"
        out = subprocess.run(["bash", str(REPO / "scripts" / "s3.sh"), "start", str(server_dir)],
                             capture_output=True, text=True, check=True)
        a.endpoint = out.stdout.strip()
        env.update({"AWS_ENDPOINT_URL": a.endpoint, "AWS_REGION": "us-east-1",
                    "AWS_ACCESS_KEY_ID": "stratalake", "AWS_SECRET_ACCESS_KEY": "stratalake-secret"})
    rs_opts = {k: env[k] for k in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID",
                                   "AWS_SECRET_ACCESS_KEY")}
    rs_opts.update({"AWS_ALLOW_HTTP": "true", "conditional_put": "etag"})
    results: dict = {"machine": machine(), "rows": a.rows, "endpoint": a.endpoint, "runs": {}}

    def note(key, walls):
        results["runs"][key] = {"median_s": statistics.median(walls), "all_s": walls}
        print(f"{key:48s} {statistics.median(walls):8.3f} s  (of {', '.join(f'{w:.3f}' for w in walls)})",
              flush=True)

    try:
        data = generate(a.rows, 42)
        src = work / "src.parquet"
        pq.write_table(data, src)
        print(f"{a.rows} rows, {data.nbytes / 1e6:.0f} MB in memory; endpoint {a.endpoint}")
        nfiles = max(1, a.rows // a.max_rows_per_file)
        # delta-rs sizes files by bytes: about the same number of files as ours.
        target_size = max(1, int(data.nbytes * 0.45 / nfiles))

        # ---- writes ----
        ours_s3, theirs_s3 = [], []
        for target in ("local", "s3"):
            walls = []
            for r in range(a.reps):
                uri = (str(work / f"ours-{r}") if target == "local"
                       else f"s3://{a.bucket}/bench-ours-{uuid.uuid4().hex[:8]}")
                line = run_bin(a.bin, ["write", src, uri, "--max-rows-per-file", a.max_rows_per_file], env)[0]
                walls.append(line["seconds"])
                if target == "s3":
                    ours_s3.append(uri)
            note(f"write stratalake {target}", walls)
            walls = []
            for r in range(a.reps):
                uri = (str(work / f"theirs-{r}") if target == "local"
                       else f"s3://{a.bucket}/bench-theirs-{uuid.uuid4().hex[:8]}")
                opts = rs_opts if target == "s3" else None
                wall, _, _ = timed(lambda: write_deltalake(
                    uri, data, storage_options=opts, writer_properties=WriterProperties(compression="SNAPPY"),
                    target_file_size=target_size))
                walls.append(wall)
                if target == "s3":
                    theirs_s3.append(uri)
            note(f"write delta-rs {target}", walls)

        # ---- scans ----
        local_ours = str(work / "ours-0")
        lines = run_bin(a.bin, ["scan", local_ours, "--reps", a.reps, "--warmup", 1], env)
        note("scan stratalake local (ours' table)", [x["seconds"] for x in lines if x["rep"] >= 0])
        for name, table in (("ours' table", ours_s3[0]), ("delta-rs' table", theirs_s3[0])):
            off = {**env, "STRATALAKE_CACHE_SIZE": "0"}
            lines = run_bin(a.bin, ["scan", table, "--reps", a.reps], off)
            note(f"scan stratalake s3, no cache ({name})", [x["seconds"] for x in lines])
            cold, warm = [], []
            for r in range(a.reps):
                cache = work / f"cache-{uuid.uuid4().hex[:8]}"
                on = {**env, "STRATALAKE_CACHE_DIR": str(cache), "STRATALAKE_CACHE_SIZE": "8G"}
                lines = run_bin(a.bin, ["scan", table, "--reps", 2], on)
                cold.append(lines[0]["seconds"])
                warm.append(lines[1]["seconds"])
                shutil.rmtree(cache, ignore_errors=True)
            note(f"scan stratalake s3, cold cache ({name})", cold)
            note(f"scan stratalake s3, warm cache ({name})", warm)
            walls = []
            for r in range(a.reps):
                wall, _, t = timed(lambda: DeltaTable(table, storage_options=rs_opts).to_pyarrow_table())
                assert t.num_rows == a.rows
                walls.append(wall)
            note(f"scan delta-rs s3 ({name})", walls)
        walls = []
        for r in range(a.reps):
            wall, _, t = timed(lambda: DeltaTable(str(work / "theirs-0")).to_pyarrow_table())
            walls.append(wall)
        note("scan delta-rs local (delta-rs' table)", walls)
        print(f"(files per table: about {nfiles})")
    finally:
        if server_dir is not None:
            subprocess.run(["bash", str(REPO / "scripts" / "s3.sh"), "stop", str(server_dir)], check=False)
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
