#!/usr/bin/env python3
"""Tables on an S3-compatible server vs the local disk, with and without the read
cache, and delta-rs (the `deltalake` package) on the same S3 tables, in one run.

A benchmark that prints numbers, never a pass/fail test:

    .venv/bin/python bench/s3_bench.py [--bin build/bin/delta_bench] [--rows 2000000]
                                       [--reps 3] [--endpoint URL] [--workdir DIR]
                                       [--arrow-client] [--wan RTT_MS,MBPS]

Without --endpoint it starts the project's server (scripts/s3.sh: versitygw on
127.0.0.1, its data on the local disk) and stops it at the end. StrataLake runs through
the `delta_bench` binary (bench/delta_bench.cc; it times itself around the public C++
API calls only), delta-rs in-process. The same data (bench/delta_bench.py's generator)
is written by both engines to the local disk and to the bucket; each engine's S3 table is
scanned by both. StrataLake's S3 scans are measured with the read cache off
(STRATALAKE_CACHE_SIZE=0), cold (an empty cache folder: every file fetched into it while
it is read) and warm (the files already cached), each timed after one untimed scan in the
same process (as the local scans are, and as delta-rs runs in this warm process); the
first scan of a fresh process is reported too ("first scan"), beside delta-rs' first scan
in a fresh Python process (its imports done before the clock starts); both local tables are
scanned by both engines. Data files on S3 are read by our libcurl range GETs
(src/storage/s3_client.cc); --arrow-client adds the uncached and cold scans through Arrow's
S3 client (the AWS SDK, STRATALAKE_S3_DATA_READS=arrow), to compare the two in one run.
--wan puts a wide-area network between both engines and the server: every connection
goes through bench/wan_proxy (built with Go), which adds RTT_MS of round-trip delay and
caps each connection at MBPS megabytes per second each way, as a single connection to a
remote object store is; scans are then network-bound only if they keep enough requests
in flight. Scan repetitions interleave the engines. Each case prints the median wall and
CPU seconds (all threads) of --reps and the 1-minute load average, then the ratios
ours / delta-rs; docs/benchmarks.md ("Object storage") explains them.
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
    ap.add_argument("--wan", help="RTT_MS,MBPS: route S3 traffic through bench/wan_proxy")
    ap.add_argument("--arrow-client", action="store_true",
                    help="also scan S3 without the cache and cold through Arrow's S3 client")
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
    proxy = None
    if a.wan:
        rtt_ms, mbps = (float(x) for x in a.wan.split(","))
        exe = work / "wan_proxy"
        subprocess.run(["go", "build", "-o", str(exe), "."], cwd=REPO / "bench" / "wan_proxy",
                       check=True)
        target = a.endpoint.split("://", 1)[1].rstrip("/")
        proxy = subprocess.Popen([str(exe), "-target", target, "-rtt", f"{rtt_ms}ms",
                                  "-mbps", str(mbps)], stdout=subprocess.PIPE, text=True)
        a.endpoint = "http://" + proxy.stdout.readline().strip()
        env["AWS_ENDPOINT_URL"] = a.endpoint
        print(f"through wan_proxy: {rtt_ms:g} ms round trip, {mbps:g} MB/s per connection")
    rs_opts = {k: env[k] for k in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID",
                                   "AWS_SECRET_ACCESS_KEY")}
    rs_opts.update({"AWS_ALLOW_HTTP": "true", "conditional_put": "etag"})
    results: dict = {"machine": machine(), "rows": a.rows, "endpoint": a.endpoint, "wan": a.wan,
                     "runs": {}}

    def note(key, runs):
        """runs: (wall s, CPU s) per repetition; also the 1-minute load average now."""
        walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
        load = os.getloadavg()[0]
        results["runs"][key] = {"median_s": statistics.median(walls), "all_s": walls,
                                "median_cpu_s": statistics.median(cpus), "load_avg_1m": load}
        print(f"{key:48s} {statistics.median(walls):8.3f} s  CPU {statistics.median(cpus):6.3f} s  "
              f"load {load:5.1f}  (of {', '.join(f'{w:.3f}' for w in walls)})", flush=True)

    def ours(line):
        return (line["seconds"], line["cpu_seconds"])

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
                walls.append(ours(line))
                if target == "s3":
                    ours_s3.append(uri)
            note(f"write stratalake {target}", walls)
            walls = []
            for r in range(a.reps):
                uri = (str(work / f"theirs-{r}") if target == "local"
                       else f"s3://{a.bucket}/bench-theirs-{uuid.uuid4().hex[:8]}")
                opts = rs_opts if target == "s3" else None
                wall, cpu, _ = timed(lambda: write_deltalake(
                    uri, data, storage_options=opts, writer_properties=WriterProperties(compression="SNAPPY"),
                    target_file_size=target_size))
                walls.append((wall, cpu))
                if target == "s3":
                    theirs_s3.append(uri)
            note(f"write delta-rs {target}", walls)

        # ---- scans ----
        # Repetitions interleave the engines (ours, then delta-rs, per repetition), so
        # that a load that changes during the run weighs on both alike.
        def rs_scan(table, opts):
            wall, cpu, t = timed(lambda: DeltaTable(table, storage_options=opts).to_pyarrow_table())
            assert t.num_rows == a.rows
            return (wall, cpu)

        def rs_first_scan(table, opts):
            """delta-rs' first scan in a fresh Python process (the imports done first, only
            the scan timed), to set beside our first scan of a fresh process."""
            code = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
                    "from delta_bench import timed; from deltalake import DeltaTable; "
                    "opts = json.loads(sys.argv[3]); "
                    "wall, cpu, t = timed(lambda: DeltaTable(sys.argv[2], storage_options=opts)"
                    ".to_pyarrow_table()); "
                    "print(json.dumps([wall, cpu, t.num_rows]), flush=True); "
                    "import os; os._exit(0)")
            proc = subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parent),
                                   table, json.dumps(opts)], capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
                raise SystemExit("delta-rs' first scan failed")
            wall, cpu, rows = json.loads(proc.stdout.strip().splitlines()[-1])
            assert rows == a.rows
            return (wall, cpu)

        for name, table in (("ours' table", str(work / "ours-0")), ("delta-rs' table", str(work / "theirs-0"))):
            mine, theirs = [], []
            for r in range(a.reps):
                lines = run_bin(a.bin, ["scan", table, "--reps", 1, "--warmup", 1], env)
                mine.append(ours([x for x in lines if x["rep"] >= 0][0]))
                theirs.append(rs_scan(table, None))
            note(f"scan stratalake local ({name})", mine)
            note(f"scan delta-rs local ({name})", theirs)
        for name, table in (("ours' table", ours_s3[0]), ("delta-rs' table", theirs_s3[0])):
            off = {**env, "STRATALAKE_CACHE_SIZE": "0"}
            cases = {k: [] for k in ("no cache", "cold cache", "warm cache", "no cache, first scan",
                                     "cold cache, first scan", "no cache, arrow client",
                                     "cold cache, arrow client")}
            theirs, theirs_first = [], []

            def cached(extra):
                cache = work / f"cache-{uuid.uuid4().hex[:8]}"
                return {**env, **extra, "STRATALAKE_CACHE_DIR": str(cache),
                        "STRATALAKE_CACHE_SIZE": "8G"}, cache

            for r in range(a.reps):
                # A warm process (one untimed scan first, as for the local scans; delta-rs
                # runs in this warm process), and the first scan of a fresh process.
                lines = run_bin(a.bin, ["scan", table, "--warmup", 1], off)
                cases["no cache, first scan"].append(ours(lines[0]))
                cases["no cache"].append(ours(lines[1]))
                on, cache = cached({})
                lines = run_bin(a.bin, ["scan", table, "--warmup", 1, "--cold-cache", cache], on)
                cases["cold cache, first scan"].append(ours(lines[0]))
                cases["cold cache"].append(ours(lines[1]))
                lines = run_bin(a.bin, ["scan", table, "--warmup", 1], on)  # the cache filled
                cases["warm cache"].append(ours(lines[1]))
                shutil.rmtree(cache, ignore_errors=True)
                if a.arrow_client:
                    sdk = {"STRATALAKE_S3_DATA_READS": "arrow"}
                    lines = run_bin(a.bin, ["scan", table, "--warmup", 1], {**off, **sdk})
                    cases["no cache, arrow client"].append(ours(lines[1]))
                    on, cache = cached(sdk)
                    lines = run_bin(a.bin, ["scan", table, "--warmup", 1, "--cold-cache", cache], on)
                    cases["cold cache, arrow client"].append(ours(lines[1]))
                    shutil.rmtree(cache, ignore_errors=True)
                theirs.append(rs_scan(table, rs_opts))
                theirs_first.append(rs_first_scan(table, rs_opts))
            for mode, runs_ in cases.items():
                if runs_:
                    note(f"scan stratalake s3, {mode} ({name})", runs_)
            note(f"scan delta-rs s3 ({name})", theirs)
            note(f"scan delta-rs s3, first scan ({name})", theirs_first)
        # Ours against delta-rs, case by case (wall-clock and CPU ratios; < 1: we are faster).
        print("ratios, stratalake / delta-rs (wall, CPU):")
        runs = results["runs"]
        pairs = [("write local", "write stratalake local", "write delta-rs local"),
                 ("write s3", "write stratalake s3", "write delta-rs s3")]
        for name in ("ours' table", "delta-rs' table"):
            pairs.append((f"scan local ({name})", f"scan stratalake local ({name})", f"scan delta-rs local ({name})"))
            modes = ["no cache", "cold cache", "warm cache", "no cache, first scan",
                     "cold cache, first scan"]
            if a.arrow_client:
                modes += ["no cache, arrow client", "cold cache, arrow client"]
            for mode in modes:
                pairs.append((f"scan s3 {mode} ({name})", f"scan stratalake s3, {mode} ({name})",
                              f"scan delta-rs s3 ({name})"))
            # First scans of fresh processes, like for like.
            for mode in ("no cache, first scan", "cold cache, first scan"):
                pairs.append((f"scan s3 {mode} vs theirs ({name})",
                              f"scan stratalake s3, {mode} ({name})",
                              f"scan delta-rs s3, first scan ({name})"))
        results["ratios"] = {}
        for label, mine, theirs in pairs:
            w = runs[mine]["median_s"] / runs[theirs]["median_s"]
            c = runs[mine]["median_cpu_s"] / runs[theirs]["median_cpu_s"]
            results["ratios"][label] = {"wall": w, "cpu": c}
            print(f"  {label:40s} wall {w:5.2f}  CPU {c:5.2f}")
        print(f"(files per table: about {nfiles})")
    finally:
        if proxy is not None:
            proxy.kill()
        if server_dir is not None:
            subprocess.run(["bash", str(REPO / "scripts" / "s3.sh"), "stop", str(server_dir)], check=False)
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    # deltalake's runtime aborts in its thread teardown at interpreter exit ("terminate
    # called without an active exception"); everything is written by now.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
