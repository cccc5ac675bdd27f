#!/usr/bin/env python3
"""StrataLake vs delta-rs (the `deltalake` package), on the same data, in one run.

A benchmark that prints numbers, never a pass/fail test. Run by `make bench`:

    .venv/bin/python bench/delta_bench.py [--bin build/bin/delta_bench] [--rows 10000000]
                                          [--reps 3] [--commits 10000] [--workdir DIR]

It generates the data once (pyarrow, seeded), then for each measurement runs
StrataLake through the `delta_bench` binary (a subprocess that times itself around
the public C++ API calls only) and delta-rs in-process (time.perf_counter around the
deltalake calls only). Every figure is the median of --reps repetitions (snapshot
loads: of --snapshot-reps) after --warmup untimed ones, with wall and CPU seconds.
Both writers get the data already in memory, write snappy-compressed Parquet and are
given file-size settings that produce about the same number of files. Scans are run
by both engines over both engines' tables. Before each measurement dirty pages are
flushed and the driver waits for the CPUs to be idle; measurements during which other
processes used the CPUs are flagged. Results are printed as a side-by-side table (and
written as JSON with --json); docs/benchmarks.md explains them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

import deltalake
from deltalake import DeltaTable, QueryBuilder, WriterProperties, write_deltalake

REPO = Path(__file__).resolve().parent.parent
MB = 1e6


# ---- data ---------------------------------------------------------------------


def generate(n: int, seed: int) -> pa.Table:
    """id int64 (0..n-1, sorted), ts timestamp[us, UTC], f0..f7 double,
    s0 low-cardinality string ('cat-17'), s1 16-char random string."""
    rng = np.random.default_rng(seed)
    cols = {"id": pa.array(np.arange(n, dtype=np.int64))}
    base = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z in microseconds
    ts = base + np.arange(n, dtype=np.int64) * 1000 + rng.integers(0, 1000, n)
    cols["ts"] = pa.array(ts, type=pa.timestamp("us", tz="UTC"))
    for i in range(8):
        cols[f"f{i}"] = pa.array(rng.standard_normal(n))
    cats = pa.array([f"cat-{k}" for k in range(100)])
    idx = pa.array(rng.integers(0, 100, n, dtype=np.int32))
    cols["s0"] = pa.DictionaryArray.from_arrays(idx, cats).cast(pa.string())
    alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)
    chars = alphabet[rng.integers(0, len(alphabet), (n, 16), dtype=np.uint8)]
    offsets = np.arange(0, 16 * (n + 1), 16, dtype=np.int32)
    cols["s1"] = pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes())
    )
    return pa.table(cols).combine_chunks()


# ---- helpers --------------------------------------------------------------------


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return {
        "nproc": nproc,
        "cpu": model,
        "mem_gib": mem_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "deltalake": deltalake.__version__,
        "pyarrow": pa.__version__,
    }


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def run_bin(binary: str, *args) -> list[dict]:
    """Run delta_bench; its JSON lines, warm-up repetitions (rep < 0) left out."""
    cmd = [binary, *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"delta_bench failed ({proc.returncode}): {' '.join(cmd)}")
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return [r for r in lines if r.get("rep", 0) >= 0]


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return ru.ru_utime + ru.ru_stime


def timed(fn):
    """(wall seconds, CPU seconds, result) of fn()."""
    c0, t0 = cpu_seconds(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, cpu_seconds() - c0, out


def repeat(fn, reps: int, warmup: int, check=None) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of `reps` timed calls after `warmup` untimed ones."""
    walls, cpus = [], []
    for i in range(warmup + reps):
        wall, cpu, out = timed(fn)
        if check:
            check(out)
        del out
        if i >= warmup:
            walls.append(wall)
            cpus.append(cpu)
    return walls, cpus


def busy_fraction(interval: float = 1.0) -> float:
    """Share of all CPUs busy over `interval` seconds (from /proc/stat)."""
    def sample():
        f = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        v = list(map(int, f))
        return sum(v), v[3] + v[4]  # total, idle + iowait
    try:
        t0, i0 = sample()
        time.sleep(interval)
        t1, i1 = sample()
        return 1.0 - (i1 - i0) / max(1, t1 - t0)
    except (OSError, ValueError, IndexError):
        return 0.0


class Interference:
    """CPU time that other processes used while a block ran, as a share of all CPUs
    over its wall time (from /proc/stat, minus this process and its children)."""

    def __enter__(self):
        self.share = 0.0
        self.j0, self.o0, self.t0 = self._busy(), self._own(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t0
        foreign = (self._busy() - self.j0) - (self._own() - self.o0)
        self.share = max(0.0, foreign) / max(1e-9, wall * (os.cpu_count() or 1))
        return False

    @staticmethod
    def _busy() -> float:
        try:
            v = list(map(int, Path("/proc/stat").read_text().splitlines()[0].split()[1:]))
            return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return 0.0

    @staticmethod
    def _own() -> float:
        a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def settle(max_wait: float, record: list) -> None:
    """Flush dirty pages, then wait (up to max_wait s) until other processes leave the
    CPUs mostly idle: this machine may be shared. Records what was seen."""
    os.sync()
    t0 = time.perf_counter()
    busy = busy_fraction()
    while busy > 0.25 and time.perf_counter() - t0 < max_wait:
        busy = busy_fraction()
    record.append(round(busy, 2))


def table_files(path: str) -> tuple[int, int]:
    """(files, bytes) of the latest version, read with delta-rs from the log."""
    adds = pa.table(DeltaTable(path).get_add_actions(flatten=True))
    return adds.num_rows, sum(adds.column("size_bytes").to_pylist())


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- delta-rs side -----------------------------------------------------------------


def dr_write(data: pa.Table, path: str, target_file_size: int | None, reps: int,
             warmup: int = 0) -> tuple[list[float], list[float]]:
    props = WriterProperties(compression="SNAPPY")
    walls, cpus = [], []
    for i in range(warmup + reps):
        shutil.rmtree(path, ignore_errors=True)
        os.sync()  # do not charge this run for the previous one's dirty pages
        wall, cpu, _ = timed(
            lambda: write_deltalake(
                path, data, mode="error", writer_properties=props, target_file_size=target_file_size
            )
        )
        if i >= warmup:
            walls.append(wall)
            cpus.append(cpu)
    return walls, cpus


def dr_scan_pyarrow(path: str, filters=None) -> pa.Table:
    return DeltaTable(path).to_pyarrow_table(filters=filters)


def dr_scan_datafusion(path: str, where: str = "") -> pa.Table:
    sql = "SELECT * FROM t" + (f" WHERE {where}" if where else "")
    reader = QueryBuilder().register("t", DeltaTable(path)).execute(sql)
    return pa.RecordBatchReader.from_stream(reader).read_all()


def dr_files_scanned_datafusion(path: str, where: str) -> int | None:
    reader = QueryBuilder().register("t", DeltaTable(path)).execute(
        f"EXPLAIN ANALYZE SELECT * FROM t WHERE {where}"
    )
    text = "\n".join(pa.RecordBatchReader.from_stream(reader).read_all().column("plan").to_pylist())
    m = re.search(r"files_scanned=(\d+)", text)
    return int(m.group(1)) if m else None


def dr_files_scanned_pyarrow(path: str, lo: int, hi: int) -> int:
    dset = DeltaTable(path).to_pyarrow_dataset()
    expr = (pads.field("id") >= lo) & (pads.field("id") < hi)
    return len(list(dset.get_fragments(filter=expr)))


# ---- main -------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(REPO / "build" / "bin" / "delta_bench"),
                    help="the delta_bench binary (default: build/bin/delta_bench)")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per measurement (median)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed repetitions before them")
    ap.add_argument("--snapshot-reps", type=int, default=5)
    ap.add_argument("--commits", type=int, default=10_000, help="commits of the snapshot tables")
    ap.add_argument("--selective-files", type=int, default=40,
                    help="files of the table for the selective scan")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--quiet-wait", type=float, default=60.0,
                    help="before each measurement, wait up to this many seconds for other "
                         "processes to leave the CPUs idle")
    ap.add_argument("--workdir", default=None, help="where tables go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the workdir")
    ap.add_argument("--json", default=None, help="also write all results to this file")
    args = ap.parse_args()

    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"{binary} not found: build it (make, or cmake --build ... --target delta_bench)")
    wd = Path(args.workdir or tempfile.mkdtemp(prefix="stratalake-bench-"))
    wd.mkdir(parents=True, exist_ok=True)
    reps, warmup = args.reps, args.warmup
    rw = ["--reps", reps, "--warmup", warmup]
    info = machine()
    busy: list[float] = []  # CPU busy share seen before each measurement
    results: dict = {"machine": info, "args": vars(args)}
    rows: list[tuple[str, str, str, str]] = []  # (measure, stratalake, delta-rs, notes)
    t_start = time.perf_counter()

    def secs(lines, key="seconds"):
        return [r[key] for r in lines]

    def noise(*blocks) -> str:
        """A warning for figures taken while other processes used the CPUs."""
        shares = [b.share for b in blocks]
        if max(shares) < 0.05:
            return ""
        return " [other processes used " + " / ".join(f"{x:.0%}" for x in shares) + " of the CPUs]"

    try:
        # ---- data ------------------------------------------------------------
        log(f"generating {args.rows:,} rows (seed {args.seed})")
        data = generate(args.rows, args.seed)
        src = wd / "source.parquet"
        pq.write_table(data, src, compression="none", row_group_size=1 << 20)
        n = data.num_rows
        mem_mb = data.nbytes / MB
        results["data"] = {"rows": n, "in_memory_mb": mem_mb}

        # ---- 1. write ----------------------------------------------------------
        # delta-rs cuts files at its default target_file_size (100 MiB, ~1.1M rows
        # here); StrataLake cuts by rows: 2^20 rows per file gives the same count.
        sl_table, dr_table = wd / "sl_write", wd / "dr_write"
        log("write: stratalake")
        settle(args.quiet_wait, busy)
        with Interference() as i_sl:
            sl = run_bin(binary, "write", src, sl_table, *rw,
                         "--max-rows-per-file", 1 << 20, "--compression", "snappy")
        sl_w, sl_cpu = median(secs(sl)), median(secs(sl, "cpu_seconds"))
        sl_files, sl_bytes = sl[-1]["files"], sl[-1]["bytes"]
        log("write: delta-rs")
        settle(args.quiet_wait, busy)
        with Interference() as i_dr:
            dr_walls, dr_cpus = dr_write(data, str(dr_table), None, reps, warmup)
        dr_w, dr_cpu = median(dr_walls), median(dr_cpus)
        dr_files, dr_bytes = table_files(str(dr_table))
        results["write"] = {
            "stratalake": {"seconds": secs(sl), "cpu_seconds": secs(sl, "cpu_seconds"),
                           "files": sl_files, "bytes": sl_bytes},
            "delta-rs": {"seconds": dr_walls, "cpu_seconds": dr_cpus, "files": dr_files, "bytes": dr_bytes},
            "interference": [i_sl.share, i_dr.share],
        }
        rows += [
            (f"write {n / 1e6:g}M rows: seconds", f"{sl_w:.2f}", f"{dr_w:.2f}",
             f"CPU seconds: {sl_cpu:.1f} vs {dr_cpu:.1f}" + noise(i_sl, i_dr)),
            ("write: rows/s", f"{n / sl_w / 1e6:.2f} M", f"{n / dr_w / 1e6:.2f} M", ""),
            ("write: MB/s (Arrow in-memory size)", f"{mem_mb / sl_w:.0f}", f"{mem_mb / dr_w:.0f}",
             f"{mem_mb:.0f} MB in memory"),
            ("write: MB/s (Parquet written)", f"{sl_bytes / MB / sl_w:.0f}", f"{dr_bytes / MB / dr_w:.0f}",
             f"{sl_bytes / MB:.0f} vs {dr_bytes / MB:.0f} MB on disk, snappy both"),
            ("write: files / average file MB", f"{sl_files} / {sl_bytes / sl_files / MB:.0f}",
             f"{dr_files} / {dr_bytes / dr_files / MB:.0f}", ""),
        ]

        # ---- 2. full scan --------------------------------------------------------
        def full(t):
            assert t.num_rows == n and t.num_columns == 12, (t.num_rows, t.num_columns)

        results["scan"] = {}
        for label, path in (("StrataLake-written", sl_table), ("delta-rs-written", dr_table)):
            log(f"full scan of the {label} table: stratalake")
            settle(args.quiet_wait, busy)
            with Interference() as i_sl:
                sl = run_bin(binary, "scan", path, *rw)
            assert all(r["rows"] == n for r in sl), sl
            log(f"full scan of the {label} table: delta-rs")
            settle(args.quiet_wait, busy)
            with Interference() as i_pa:
                pa_w, pa_c = repeat(lambda: dr_scan_pyarrow(str(path)), reps, warmup, full)
            settle(args.quiet_wait, busy)
            with Interference() as i_df:
                df_w, df_c = repeat(lambda: dr_scan_datafusion(str(path)), reps, warmup, full)
            sl_s, pa_s, df_s = median(secs(sl)), median(pa_w), median(df_w)
            results["scan"][label] = {
                "stratalake": {"seconds": secs(sl), "cpu_seconds": secs(sl, "cpu_seconds")},
                "delta-rs to_pyarrow_table": {"seconds": pa_w, "cpu_seconds": pa_c},
                "delta-rs QueryBuilder": {"seconds": df_w, "cpu_seconds": df_c},
                "interference": [i_sl.share, i_pa.share, i_df.share],
            }
            best, best_c, i_best = (pa_s, median(pa_c), i_pa) if pa_s < df_s else (df_s, median(df_c), i_df)
            rows += [
                (f"full scan, {label} table: seconds", f"{sl_s:.2f}", f"{best:.2f}",
                 f"delta-rs: to_pyarrow_table {pa_s:.2f}, QueryBuilder {df_s:.2f}; "
                 f"CPU seconds {median(secs(sl, 'cpu_seconds')):.1f} vs {best_c:.1f}" + noise(i_sl, i_best)),
                (f"full scan, {label} table: rows/s", f"{n / sl_s / 1e6:.2f} M", f"{n / best / 1e6:.2f} M", ""),
            ]

        # ---- 3. selective scan ------------------------------------------------------
        k = args.selective_files
        sl_sel, dr_sel = wd / "sl_sorted", wd / "dr_sorted"
        log(f"selective: writing {k}-file tables sorted by id (not timed)")
        run_bin(binary, "write", src, sl_sel, "--max-rows-per-file", -(-n // k), "--compression", "snappy")
        # delta-rs sizes files by bytes: aim at 1/k of the table's size (slightly less,
        # so that the k-th file does not spill into a tiny (k+1)-th one).
        target = int(dr_bytes / k * 0.995)
        for _ in range(3):
            dr_write(data, str(dr_sel), target, 1)
            got = table_files(str(dr_sel))[0]
            if abs(got - k) <= max(1, k // 20):
                break
            target = int(target * got / k)
        del data  # not needed any more
        sel_files = {"StrataLake-written": table_files(str(sl_sel))[0],
                     "delta-rs-written": table_files(str(dr_sel))[0]}
        width = min(100_000, max(1, n // 20))  # 100,000 rows at the default 10M
        lo = n * 61 // 100 + min(12_345, n // 100)
        hi = lo + width
        where = f"id >= {lo} AND id < {hi}"

        def sel(t):
            assert t.num_rows == hi - lo, t.num_rows

        results["selective"] = {"filter": where}
        for label, path in (("StrataLake-written", sl_sel), ("delta-rs-written", dr_sel)):
            log(f"selective scan of the {label} table")
            settle(args.quiet_wait, busy)
            with Interference() as i_sl:
                sl = run_bin(binary, "selective", path, lo, hi, *rw)
            assert all(r["rows"] == hi - lo for r in sl), sl
            settle(args.quiet_wait, busy)
            with Interference() as i_dr:
                pa_w, pa_c = repeat(lambda: dr_scan_pyarrow(str(path), [("id", ">=", lo), ("id", "<", hi)]),
                                    reps, warmup, sel)
                df_w, df_c = repeat(lambda: dr_scan_datafusion(str(path), where), reps, warmup, sel)
            sl_s, pa_s, df_s = median(secs(sl)), median(pa_w), median(df_w)
            pa_files = dr_files_scanned_pyarrow(str(path), lo, hi)
            df_files = dr_files_scanned_datafusion(str(path), where)
            total = sel_files[label]
            results["selective"][label] = {
                "stratalake": {"seconds": secs(sl), "cpu_seconds": secs(sl, "cpu_seconds"),
                               "files_read": sl[0]["files_read"]},
                "delta-rs to_pyarrow_table": {"seconds": pa_w, "cpu_seconds": pa_c, "files_read": pa_files},
                "delta-rs QueryBuilder": {"seconds": df_w, "cpu_seconds": df_c, "files_read": df_files},
                "total_files": total,
                "interference": [i_sl.share, i_dr.share],
            }
            best = min(pa_s, df_s)
            best_files = df_files if df_s <= pa_s else pa_files
            rows += [
                (f"selective scan, {label} table ({total} files): ms", f"{sl_s * 1000:.0f}",
                 f"{best * 1000:.0f}",
                 f"delta-rs: to_pyarrow_table {pa_s * 1000:.0f}, QueryBuilder {df_s * 1000:.0f}"
                 + noise(i_sl, i_dr)),
                (f"selective scan, {label} table: files read", f"{sl[0]['files_read']} of {sl[0]['total_files']}",
                 f"{best_files} of {total}", f"to_pyarrow_table {pa_files}, QueryBuilder {df_files}"),
            ]

        # ---- 4. snapshot load ----------------------------------------------------------
        results["snapshot"] = {}
        for label, extra in (("checkpoint every 10 commits", []),
                             ("no checkpoint (pure JSON replay)", ["--checkpoint-interval", 1_000_000])):
            path = wd / ("snap_cp" if not extra else "snap_nocp")
            log(f"snapshot: creating {args.commits:,} commits, {label} (not timed)")
            made = run_bin(binary, "make-commits", path, args.commits, *extra)[-1]
            log(f"snapshot: loading, {label}")
            settle(args.quiet_wait, busy)
            with Interference() as i_sl:
                sl = run_bin(binary, "snapshot", path, "--reps", args.snapshot_reps, "--warmup", warmup)
            settle(args.quiet_wait, busy)

            def check(dt):
                assert dt.version() == args.commits

            with Interference() as i_dr:
                dr_w, dr_c = repeat(lambda: DeltaTable(str(path)), args.snapshot_reps, warmup, check)
            sl_s, dr_s = median(secs(sl)), median(dr_w)
            sl_list = median(secs(sl, "list_seconds"))
            results["snapshot"][label] = {
                "stratalake": {"seconds": secs(sl), "cpu_seconds": secs(sl, "cpu_seconds"),
                               "list_seconds": secs(sl, "list_seconds")},
                "delta-rs": {"seconds": dr_w, "cpu_seconds": dr_c},
                "create_seconds": made["seconds"], "files": made["files"],
                "interference": [i_sl.share, i_dr.share],
            }
            rows.append((f"snapshot load, {args.commits:,} commits, {label}: ms",
                         f"{sl_s * 1000:.0f}", f"{dr_s * 1000:.0f}",
                         f"StrataLake's log listing alone: {sl_list * 1000:.0f} ms" + noise(i_sl, i_dr)))
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(wd, ignore_errors=True)

    # ---- report ----------------------------------------------------------------------
    results["rows"] = rows
    results["busy_before_measurements"] = busy
    results["total_seconds"] = time.perf_counter() - t_start
    print()
    print(f"Machine: {info['nproc']} cores ({info['cpu']}), {info['mem_gib']} GiB RAM, Linux {info['kernel']}")
    print(f"deltalake {info['deltalake']} (delta-rs), pyarrow {info['pyarrow']}, Python {info['python']}")
    print(f"Data: {n:,} rows, {mem_mb:.0f} MB in Arrow memory. Each figure: median of {reps} timed runs "
          f"({args.snapshot_reps} for snapshot loads) after {warmup} warm-up run(s).")
    print(f"CPU busy (other processes) just before each measurement: {busy}; "
          f"total bench time {results['total_seconds']:.0f} s")
    print("Notes in [brackets] flag measurements during which other processes used the CPUs "
          "(StrataLake / delta-rs); such figures are less reliable.")
    print()
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len("StrataLake"), *(len(r[1]) for r in rows))
    w2 = max(len("delta-rs"), *(len(r[2]) for r in rows))
    print(f"| {'measure':<{w0}} | {'StrataLake':>{w1}} | {'delta-rs':>{w2}} | notes")
    print(f"|{'-' * (w0 + 2)}|{'-' * (w1 + 1)}:|{'-' * (w2 + 1)}:|------")
    for m, a, b, note in rows:
        print(f"| {m:<{w0}} | {a:>{w1}} | {b:>{w2}} | {note}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
