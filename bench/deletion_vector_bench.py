#!/usr/bin/env python3
"""DELETE / UPDATE / MERGE of 1k rows of a 1M-row Delta table in N files, with deletion
vectors (delta.enableDeletionVectors=true) against the rewrite path (the same table
without the property). A benchmark that prints numbers, never a pass/fail test:

    .venv/bin/python bench/deletion_vector_bench.py [--rows 1000000] [--files 20] \
        [--repeat 3] [--bin build/bin/stratalake]

Each operation runs as one `stratalake table ...` subprocess on a fresh copy of the
table (copying is not measured). Reported per operation: CPU seconds of the subprocess
(user + system, from getrusage of the child; the best of --repeat runs), bytes the
operation wrote into the table folder (new data files, deletion vector files and the
commit), and the CPU seconds of a full read of the result (the cost deletion vectors
move to readers). The load average is printed: the machine may be shared.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(binary: str, *args: str) -> float:
    before = child_cpu()
    subprocess.run([binary, "table", *args], check=True, capture_output=True)
    return child_cpu() - before


def listing(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_size for p in path.rglob("*") if p.is_file()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bin", default=str(ROOT / "build" / "bin" / "stratalake"))
    args = ap.parse_args()
    n, binary = args.rows, args.bin
    work = Path(tempfile.mkdtemp(prefix="dv-bench-"))
    try:
        rng = np.random.default_rng(7)
        data = pa.table({
            "id": np.arange(n, dtype=np.int64),
            "customer_id": rng.integers(0, 100_000, n),
            "amount": rng.random(n) * 100,
            "status": pa.array(np.array(["placed", "paid", "shipped", "refunded"])[
                rng.integers(0, 4, n)]),
            "note": pa.array(np.char.add("order note ", np.arange(n).astype(str))),
        })
        src = work / "in.parquet"
        pq.write_table(data, src)
        k = 1000
        scattered = rng.choice(n, size=k, replace=False)
        merge_src = work / "merge.parquet"
        m = data.take(pa.array(np.sort(scattered)))
        m = m.set_column(2, "amount", pa.compute.multiply(m.column("amount"), 2.0))
        pq.write_table(m, merge_src)
        lo = n // 2
        ops = {
            f"delete {k:,} scattered rows (id % {n // k} = 7)":
                ["delete", "--where", f"id % {n // k} = 7"],
            f"delete {k:,} clustered rows (one file)":
                ["delete", "--where", f"id >= {lo} AND id < {lo + k}"],
            f"update {k:,} clustered rows": ["update", "--set", "amount = amount + 1",
                                             "--where", f"id >= {lo} AND id < {lo + k}"],
            f"merge {k:,} scattered keys (update)":
                ["merge", "--source", str(merge_src), "--on", "id", "--update-all"],
        }
        tables = {}
        for label, props in (("rewrite", []), ("dv", ["--property", "delta.enableDeletionVectors=true"])):
            path = work / label
            subprocess.run([binary, "table", "create", str(path), "--schema",
                            "id:long,customer_id:long,amount:double,status:string,note:string",
                            *props], check=True, capture_output=True)
            subprocess.run([binary, "table", "write", str(path), "--input", str(src),
                            "--max-rows-per-file", str(-(-n // args.files))],
                           check=True, capture_output=True)
            tables[label] = path
        nfiles = len(list(tables["dv"].glob("*.parquet")))
        size = sum(p.stat().st_size for p in tables["dv"].glob("*.parquet"))
        print(f"{n:,} rows in {nfiles} files ({size / 1e6:.1f} MB); load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{'operation':<44} {'path':<8} {'CPU s':>7} {'written':>12} {'read CPU s':>10}")
        for what, op in ops.items():
            res = {}
            for label, path in tables.items():
                best_cpu, written, read_cpu = None, 0, None
                for _ in range(args.repeat):
                    copy = work / f"copy-{label}"
                    shutil.rmtree(copy, ignore_errors=True)
                    shutil.copytree(path, copy)
                    before = listing(copy)
                    cpu = run(binary, op[0], str(copy), *op[1:])
                    after = listing(copy)
                    written = sum(s for f, s in after.items() if f not in before)
                    best_cpu = cpu if best_cpu is None else min(best_cpu, cpu)
                    rc = run(binary, "read", str(copy), "--output", str(work / "out.parquet"))
                    read_cpu = rc if read_cpu is None else min(read_cpu, rc)
                res[label] = (best_cpu, written, read_cpu)
                print(f"{what:<44} {label:<8} {best_cpu:7.3f} {written:>12,} {read_cpu:10.3f}")
            r, d = res["rewrite"], res["dv"]
            print(f"{'':<44} {'dv/rw':<8} {d[0] / r[0]:7.3f} {d[1] / max(r[1], 1):12.4f} "
                  f"{d[2] / r[2]:10.3f}")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
