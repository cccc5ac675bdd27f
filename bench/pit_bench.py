#!/usr/bin/env python3
"""Point-in-time (as-of) training-set retrieval: StrataLake vs DuckDB, Polars and Feast.

A benchmark that prints numbers, never a pass/fail test:

    .venv/bin/python bench/pit_bench.py [--scale full|small|tiny] [--engines ...]
                                        [--bin build/bin/stratalake] [--json out.json]
                                        [--peer-compression default|none]

It generates one workload with NumPy (an entity table and three feature sources, each
for one feature view with its own TTL), writes it once as Parquet into a cache folder
(bench/data, reused by later runs), loads the sources into a StrataLake feature
repository with `stratalake ingest` (Delta tables), and then runs every engine in its
own subprocess on the same data:

  stratalake  `stratalake get-historical --entities E --features fv_a,fv_b,fv_c --output O`
  duckdb      one query: an ASOF LEFT JOIN per view, TTL applied to the winner
  polars      LazyFrame.join_asof(by=key, strategy="backward", tolerance=ttl) per view
  feast       FeatureStore.get_historical_features with the local file (Dask) offline
              store, from its own virtualenv (bench/.venv-feast, see --feast-python)

Each engine's figure is the wall time of its whole subprocess (start, read the inputs,
join, write the result as Parquet: StrataLake uncompressed, DuckDB and Polars with their
default compression, or uncompressed too with --peer-compression none) and its peak RSS
(os.wait4's ru_maxrss). Every
output is checked row by row against an exact NumPy reference of the rules in
docs/training-datasets.md (event time <= entity time, >= entity time - ttl, latest
event time wins, ties to the latest created time; entity rows kept in order with their
duplicates), and the mismatching rows are counted per engine.

Feast's Dask store joins every entity row with every feature row of its key before
filtering (9 GB for the small scale), so it runs at --feast-scale (default: `small`
when the main scale is larger);
the other engines then run at that scale too, for a second, side-by-side table.
docs/benchmarks.md ("Point-in-time retrieval") explains the workload and the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
BASE_US = 1_780_272_000_000_000  # 2026-06-01T00:00:00Z in microseconds
DAY_S = 86_400

SCALES = {  # entity rows, feature rows per view, distinct keys
    "full": (10_000_000, 20_000_000, 1_000_000),
    "small": (1_000_000, 2_000_000, 100_000),
    "tiny": (100_000, 200_000, 10_000),
}
# (feature view, source, feature prefix, ttl seconds)
VIEWS = [("fv_a", "src_a", "a", 1 * DAY_S), ("fv_b", "src_b", "b", 7 * DAY_S),
         ("fv_c", "src_c", "c", 30 * DAY_S)]
N_FLOAT, N_INT = 6, 4  # features per view: a_f0..a_f5 float64, a_i0..a_i3 int64
KEY, ETS, TS, CREATED = "customer_id", "event_timestamp", "event_ts", "created_ts"
ENGINES = ["stratalake", "duckdb", "polars", "feast"]


def log(msg: str) -> None:
    print(f"[pit_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def feature_names(prefix: str) -> list[str]:
    return [f"{prefix}_f{i}" for i in range(N_FLOAT)] + [f"{prefix}_i{i}" for i in range(N_INT)]


# ---- workload -------------------------------------------------------------------


class Workload:
    """One generated data set in the cache: sizes, paths, and the reference answer."""

    def __init__(self, data_dir: Path, name: str, entities: int, rows: int, keys: int,
                 days: int, seed: int):
        self.name, self.entities, self.rows, self.keys, self.days, self.seed = (
            name, entities, rows, keys, days, seed)
        self.dir = data_dir / f"{name}-e{entities}-r{rows}-k{keys}-d{days}-s{seed}"
        self.entity_path = self.dir / "entities.parquet"
        self.repo = self.dir / "stratalake_repo"
        self.feast_repo = self.dir / "feast_repo"
        self.out_dir = self.dir / "out"

    def source_path(self, src: str) -> Path:
        return self.dir / f"{src}.parquet"

    def oracle_path(self, view: str) -> Path:
        return self.dir / f"expected_{view}.npy"

    def label(self) -> str:
        return (f"{self.name}: {self.entities:,} entity rows; 3 views x {self.rows:,} rows x "
                f"{N_FLOAT + N_INT} features; {self.keys:,} keys; {self.days} days")

    def spec(self) -> dict:
        """What a worker needs to know (JSON)."""
        return {
            "entities": str(self.entity_path), "key": KEY, "entity_ts": ETS,
            "entity_columns": [KEY, ETS, "label"],
            "views": [{"name": v, "source": s, "path": str(self.source_path(s)), "ts": TS,
                       "created": CREATED, "ttl_s": ttl, "features": feature_names(p)}
                      for v, s, p, ttl in VIEWS],
            "feast_repo": str(self.feast_repo),
        }

    # -- generation --

    def ensure(self) -> dict:
        marker, gen_marker = self.dir / "complete.json", self.dir / "generated.json"
        if marker.exists():
            log(f"using cached data in {self.dir}")
            return json.loads(marker.read_text())
        if gen_marker.exists():
            info = json.loads(gen_marker.read_text())
        else:
            if self.dir.exists():
                shutil.rmtree(self.dir)
            self.dir.mkdir(parents=True)
            t0 = time.perf_counter()
            info = self._generate()
            info["generate_seconds"] = round(time.perf_counter() - t0, 1)
            gen_marker.write_text(json.dumps(info, indent=2))
        t0 = time.perf_counter()
        info.update(self._reference())
        info["reference_seconds"] = round(time.perf_counter() - t0, 1)
        marker.write_text(json.dumps(info, indent=2))
        return info

    def _generate(self) -> dict:
        """Feature sources: keys uniform over [0, keys), event times whole seconds over
        `days` days, created = event time + [0, 1h) in microseconds. 2% of the rows repeat
        another row's (key, event time) with another created time (ties that only the
        created time breaks). Files are in event-time order (ties in random order).
        Entities: 91% random (key, time); 1% unknown keys; 2% exactly ttl after a feature
        row of the same key (the inclusive TTL bound), 2% at exactly a feature row's event
        time, 2% one second past a row's TTL; 2% exact copies of other entity rows'
        (key, time) (duplicates); then shuffled."""
        rng = np.random.default_rng(self.seed)
        span = self.days * DAY_S
        kt: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        info: dict = {"ties": {}}
        for view, src, prefix, _ in VIEWS:
            log(f"generating {src}: {self.rows:,} rows")
            n_tie = self.rows * 2 // 100
            n0 = self.rows - n_tie
            key = rng.integers(0, self.keys, n0, dtype=np.int64)
            ts = rng.integers(0, span, n0, dtype=np.int64)
            pick = rng.choice(n0, n_tie, replace=False)
            key = np.concatenate([key, key[pick]])
            ts = np.concatenate([ts, ts[pick]])
            del pick
            created = ts * 1_000_000 + rng.integers(0, 3_600_000_000, self.rows, dtype=np.int64)
            perm = rng.permutation(self.rows)
            order = perm[np.argsort(ts[perm], kind="stable")]
            del perm
            key, ts, created = key[order], ts[order], created[order]
            del order
            kt[view] = (key, ts)
            cols = {
                KEY: pa.array(key),
                TS: pa.array(BASE_US + ts * 1_000_000, type=pa.timestamp("us", tz="UTC")),
                CREATED: pa.array(BASE_US + created, type=pa.timestamp("us", tz="UTC")),
            }
            del created
            for i in range(N_FLOAT):
                cols[f"{prefix}_f{i}"] = pa.array(rng.standard_normal(self.rows))
            for i in range(N_INT):
                cols[f"{prefix}_i{i}"] = pa.array(rng.integers(0, 1_000_000, self.rows, dtype=np.int64))
            pq.write_table(pa.table(cols), self.source_path(src), row_group_size=1 << 20)
            del cols
            info["ties"][view] = n_tie

        log(f"generating entities: {self.entities:,} rows")
        n = self.entities
        parts = {"random": n * 91 // 100, "unknown_key": n // 100, "at_ttl_bound": n * 2 // 100,
                 "at_event_time": n * 2 // 100, "past_ttl_by_1s": n * 2 // 100}
        parts["duplicate"] = n - sum(parts.values())
        keys, tss = [rng.integers(0, self.keys, parts["random"], dtype=np.int64)], [
            rng.integers(0, span, parts["random"], dtype=np.int64)]
        keys.append(self.keys + rng.integers(0, max(1, self.keys // 10), parts["unknown_key"], dtype=np.int64))
        tss.append(rng.integers(0, span, parts["unknown_key"], dtype=np.int64))
        for kind, extra in (("at_ttl_bound", 0), ("at_event_time", None), ("past_ttl_by_1s", 1)):
            m = parts[kind]
            which = rng.integers(0, len(VIEWS), m)
            k_out, t_out = np.empty(m, np.int64), np.empty(m, np.int64)
            for vi, (view, _, _, ttl) in enumerate(VIEWS):
                sel = np.nonzero(which == vi)[0]
                j = rng.integers(0, self.rows, len(sel))
                k_out[sel] = kt[view][0][j]
                t_out[sel] = kt[view][1][j] + (0 if extra is None else ttl + extra)
            keys.append(k_out)
            tss.append(t_out)
        del kt
        key, ts = np.concatenate(keys), np.concatenate(tss)
        dup_of = rng.integers(0, len(key), parts["duplicate"])
        key, ts = np.concatenate([key, key[dup_of]]), np.concatenate([ts, ts[dup_of]])
        perm = rng.permutation(n)
        key, ts = key[perm], ts[perm]
        table = pa.table({
            KEY: pa.array(key),
            ETS: pa.array(BASE_US + ts * 1_000_000, type=pa.timestamp("us", tz="UTC")),
            "label": pa.array(rng.integers(0, 2, n, dtype=np.int64)),
        })
        pq.write_table(table, self.entity_path, row_group_size=1 << 20)
        info["entity_parts"] = parts
        return info

    def _reference(self) -> dict:
        """The exact answer, as NumPy: for each view and entity row, the index of the
        winning source row (or -1). Composite key (key << shift | time offset in whole
        seconds: all generated times are whole seconds), sorted
        with created time as the tie-breaker; the last row of each (key, time) run is the
        winner of that instant, and searchsorted finds the latest instant <= entity time."""
        log("computing the reference answer (NumPy)")
        ent = pq.read_table(self.entity_path, columns=[KEY, ETS])
        ekey = ent.column(KEY).to_numpy()
        ets = ent.column(ETS).cast(pa.int64()).to_numpy() - BASE_US
        del ent
        assert not np.any(ets % 1_000_000)
        ets //= 1_000_000
        info: dict = {"matched": {}, "exact_triple_ties": {}}
        for view, src, _, ttl in VIEWS:
            t = pq.read_table(self.source_path(src), columns=[KEY, TS, CREATED])
            key = t.column(KEY).to_numpy()
            ts = t.column(TS).cast(pa.int64()).to_numpy() - BASE_US
            created = t.column(CREATED).cast(pa.int64()).to_numpy()
            del t
            assert not np.any(ts % 1_000_000)
            ts //= 1_000_000
            shift = int(max(ts.max(), ets.max()) + 1).bit_length()
            assert int(max(key.max(), ekey.max())).bit_length() + shift <= 62, "composite key overflows"
            assert ts.min() >= 0 and ets.min() >= 0
            comp = (key << shift) | ts
            del key, ts
            order = np.lexsort((created, comp))
            cs, cr = comp[order], created[order]
            del comp, created
            same = cs[1:] == cs[:-1]
            info["exact_triple_ties"][view] = int(np.count_nonzero(same & (cr[1:] == cr[:-1])))
            last = np.append(~same, True)
            del same, cr
            cu, ou = cs[last], order[last]
            del cs, order, last
            ecomp = (ekey << shift) | ets
            pos = np.searchsorted(cu, ecomp, side="right") - 1
            ok = pos >= 0
            pos[~ok] = 0
            hit = cu[pos]
            ok &= (hit >> shift) == ekey
            ok &= (hit & ((1 << shift) - 1)) >= ets - ttl
            idx = np.where(ok, ou[pos], -1).astype(np.int64)
            np.save(self.oracle_path(view), idx)
            info["matched"][view] = int(np.count_nonzero(ok))
        return info

    # -- the StrataLake repository --

    def ensure_repo(self, binary: str) -> dict:
        marker = self.repo / ".bench-complete"
        if marker.exists():
            return json.loads(marker.read_text())
        if self.repo.exists():
            shutil.rmtree(self.repo)
        (self.repo / "definitions").mkdir(parents=True)
        (self.repo / "stratalake.yaml").write_text(
            "project: pit_bench\noffline_store: lake\nregistry: .stratalake/registry.db\n"
            "definitions:\n  - definitions\n")
        lines = ["entities:", "  - name: customer", "    join_keys:",
                 f"      - {{name: {KEY}, type: int64}}", "sources:"]
        for _, src, prefix, _ in VIEWS:
            lines += [f"  - name: {src}", f"    path: bronze/{src}", f"    timestamp_field: {TS}",
                      f"    created_timestamp_field: {CREATED}", "    schema:",
                      f"      - {{name: {KEY}, type: int64, nullable: false}}",
                      f"      - {{name: {TS}, type: timestamp, nullable: false}}",
                      f"      - {{name: {CREATED}, type: timestamp, nullable: false}}"]
            lines += [f"      - {{name: {f}, type: {'float64' if '_f' in f else 'int64'}}}"
                      for f in feature_names(prefix)]
        lines.append("feature_views:")
        for view, src, prefix, ttl in VIEWS:
            lines += [f"  - name: {view}", "    entities: [customer]", f"    source: {src}",
                      f"    ttl: {ttl // DAY_S}d", "    online: false", "    features:"]
            lines += [f"      - {{name: {f}, type: {'float64' if '_f' in f else 'int64'}}}"
                      for f in feature_names(prefix)]
        (self.repo / "definitions" / "pit.yaml").write_text("\n".join(lines) + "\n")
        sl = lambda *a: subprocess.run([binary, *a, "--repo", str(self.repo)], check=True,  # noqa: E731
                                       capture_output=True, text=True)
        sl("apply", "--message", "pit_bench")
        info = {"ingest_seconds": {}}
        for _, src, _, _ in VIEWS:
            log(f"stratalake ingest {src} ({self.rows:,} rows)")
            t0 = time.perf_counter()
            sl("ingest", src, str(self.source_path(src)))
            info["ingest_seconds"][src] = round(time.perf_counter() - t0, 1)
        marker.write_text(json.dumps(info))
        return info


# ---- running an engine -------------------------------------------------------------


def busy_seconds() -> float:
    try:
        v = list(map(int, Path("/proc/stat").read_text().splitlines()[0].split()[1:]))
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def settle(max_wait: float) -> float:
    """Flush dirty pages and wait (up to max_wait s) until the CPUs are mostly idle:
    the machine may be shared. Returns the busy share last seen."""
    os.sync()
    t_end = time.perf_counter() + max_wait
    while True:
        b0, t0 = busy_seconds(), time.perf_counter()
        time.sleep(1.0)
        busy = (busy_seconds() - b0) / ((time.perf_counter() - t0) * (os.cpu_count() or 1))
        if busy <= 0.25 or time.perf_counter() > t_end:
            return busy


# Runs one command and reports its rusage. A small launcher (python -S, a few MiB)
# forks it, so that the command's ru_maxrss does not start at the driver's RSS: Linux
# carries the RSS of the forked copy of the parent across exec into ru_maxrss.
LAUNCHER = r"""
import json, os, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.monotonic() - t0
with open(out, "w") as f:
    json.dump({"seconds": wall, "maxrss_kib": ru.ru_maxrss, "cpu_seconds": ru.ru_utime + ru.ru_stime,
               "rc": os.waitstatus_to_exitcode(status)}, f)
"""


def run_measured(cmd: list[str], log_path: Path, timeout: float) -> dict:
    """Runs cmd (through LAUNCHER, in its own session): wall seconds, peak RSS (MiB,
    wait4's ru_maxrss), CPU seconds, the share of the CPUs that other processes used
    meanwhile, and the exit code."""
    res_path = log_path.with_suffix(".rusage.json")
    res_path.unlink(missing_ok=True)
    with open(log_path, "w") as logf:
        c0 = busy_seconds()
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, str(res_path), *cmd],
                                stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            timed_out = True
        wall = time.perf_counter() - t0
    busy = busy_seconds() - c0
    if res_path.exists():
        r = json.loads(res_path.read_text())
    else:
        r = {"seconds": wall, "maxrss_kib": 0, "cpu_seconds": 0.0, "rc": proc.returncode or -9}
    foreign = max(0.0, busy - r["cpu_seconds"]) / max(1e-9, wall * (os.cpu_count() or 1))
    return {"seconds": r["seconds"], "peak_rss_mib": r["maxrss_kib"] / 1024, "cpu_seconds": r["cpu_seconds"],
            "other_cpu_share": foreign, "rc": r["rc"] if not timed_out else -9, "timed_out": timed_out}


def engine_command(engine: str, w: Workload, args, out: Path, spec_path: Path) -> list[str]:
    if engine == "stratalake":
        return [args.bin, "get-historical", "--repo", str(w.repo), "--entities", str(w.entity_path),
                "--features", ",".join(v for v, _, _, _ in VIEWS), "--output", str(out),
                *args.stratalake_args.split()]
    py = args.feast_python if engine == "feast" else sys.executable
    cmd = [py, str(Path(__file__).resolve()), "_worker", engine, str(spec_path), str(out)]
    if engine == "duckdb":
        cmd += ["--duckdb-ties", args.duckdb_ties]
    if engine in ("duckdb", "polars"):
        cmd += ["--compression", args.peer_compression]
    return cmd


def feast_available(py: str) -> tuple[bool, str]:
    if not os.access(py, os.X_OK):
        return False, (f"{py} not found; create it with: python3.11 -m venv bench/.venv-feast && "
                       "bench/.venv-feast/bin/pip install feast==0.67.0")
    p = subprocess.run([py, "-c", "import feast, dask; print(feast.__version__, dask.__version__)"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return False, "import feast failed: " + (p.stderr.strip().splitlines() or ["?"])[-1]
    return True, p.stdout.strip()


# ---- checking the results -------------------------------------------------------------


def _np(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(values as float64 or int64, null mask); NaN counts as null (pandas' null)."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    null = col.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_floating(col.type):
        vals = col.fill_null(0.0).to_numpy()
        null = null | np.isnan(vals)
    else:
        vals = col.fill_null(0).to_numpy().astype(np.int64)
    return vals, null


def compare(w: Workload, outputs: dict[str, Path]) -> dict[str, dict]:
    """Row-by-row comparison of every engine's output with the reference answer.
    Order-preserving engines are compared position by position; an output with a
    `__rid` column (Feast) is aligned by it. A row mismatches when an entity column or
    any feature differs (null vs value counts), or when it is missing."""
    ent = pq.read_table(w.entity_path)
    n = ent.num_rows
    res: dict[str, dict] = {}
    align: dict[str, np.ndarray] = {}
    bad: dict[str, np.ndarray] = {}
    for eng, path in outputs.items():
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        r: dict = {"rows": pf.metadata.num_rows, "per_view": {}, "examples": []}
        if "__rid" in names:
            rid = pq.read_table(path, columns=["__rid"]).column(0).to_numpy().astype(np.int64)
        else:
            rid = np.arange(pf.metadata.num_rows, dtype=np.int64)
        uniq = np.unique(rid[(rid >= 0) & (rid < n)])
        r["missing_rows"] = n - len(uniq)
        r["extra_rows"] = len(rid) - len(uniq)
        keep = np.ones(len(rid), bool)
        if r["extra_rows"]:  # keep the first occurrence of each entity row
            _, first = np.unique(rid, return_index=True)
            keep[:] = False
            keep[first] = True
            keep &= (rid >= 0) & (rid < n)
        align[eng] = np.nonzero(keep)[0]
        rid = rid[keep]
        r["_rid"] = rid
        mism = np.zeros(len(rid), bool)
        for c in (KEY, ETS, "label"):
            if c not in names:
                r.setdefault("missing_columns", []).append(c)
                mism[:] = True
                continue
            got, gn = _np(pq.read_table(path, columns=[c]).column(0))
            exp, en = _np(ent.column(c))
            mism |= (got[keep] != exp[rid]) | (gn[keep] != en[rid])
        r["entity_column_mismatches"] = int(mism.sum())
        bad[eng] = mism
        res[eng] = r
    for view, src, prefix, ttl in VIEWS:
        idx = np.load(w.oracle_path(view))
        has = idx >= 0
        safe = np.where(has, idx, 0)
        vbad = {e: np.zeros(len(res[e]["_rid"]), bool) for e in outputs}
        first: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # each engine's first feature
        for f in feature_names(prefix):
            src_vals, _ = _np(pq.read_table(w.source_path(src), columns=[f]).column(0))
            exp = src_vals[safe]
            del src_vals
            for eng, path in outputs.items():
                rid = res[eng]["_rid"]
                if f not in pq.ParquetFile(path).schema_arrow.names:
                    vbad[eng][:] = True
                    continue
                got, gn = _np(pq.read_table(path, columns=[f]).column(0))
                got, gn = got[align[eng]], gn[align[eng]]
                if f == feature_names(prefix)[0]:
                    first[eng] = (got, gn)
                e_has = has[rid]
                d = (gn == e_has) | (e_has & (got.astype(np.float64) != exp[rid].astype(np.float64)))
                vbad[eng] |= d
        for eng in outputs:
            res[eng]["per_view"][view] = int(vbad[eng].sum())
            bad[eng] |= vbad[eng]
            rid = res[eng]["_rid"]
            for j in np.nonzero(vbad[eng])[0][:3]:
                i = int(rid[j])
                got = None
                if eng in first and not first[eng][1][j]:
                    got = first[eng][0][j].item()
                res[eng]["examples"].append({
                    "view": view, "entity_row": i, KEY: int(ent.column(KEY)[i].as_py()),
                    ETS: ent.column(ETS)[i].as_py(), "expected_source_row": int(idx[i]),
                    "got_first_feature": got})
    for eng in outputs:
        r = res[eng]
        r["value_mismatches"] = int(bad[eng].sum())  # among the rows returned
        r["mismatches"] = r["value_mismatches"] + r["missing_rows"]
        del r["_rid"]
    return res


def describe_example(w: Workload, ex: dict) -> str:
    """A readable line for one mismatching row: what the engine returned, what was
    expected, and the source rows of that key around the entity time."""
    view = ex["view"]
    src, prefix, ttl = next((s, p, t) for v, s, p, t in VIEWS if v == view)
    f0 = f"{prefix}_f0"
    t = pq.read_table(w.source_path(src), columns=[KEY, TS, CREATED, f0],
                      filters=[(KEY, "=", ex[KEY])])
    t = t.sort_by([(TS, "ascending"), (CREATED, "ascending")])
    ets = ex[ETS]
    lo = ets.timestamp() - ttl - DAY_S
    hi = ets.timestamp() + DAY_S
    rows = [f"{r[TS]:%m-%d %H:%M:%S} (created {r[CREATED]:%m-%d %H:%M:%S.%f}) {f0}={r[f0]:.6f}"
            for r in t.to_pylist() if lo <= r[TS].timestamp() <= hi]
    exp = ex["expected_source_row"]
    exp_v = None
    if exp >= 0:
        exp_v = round(pq.read_table(w.source_path(src), columns=[f0]).column(0)[exp].as_py(), 6)
    got = ex.get("got_first_feature")
    got = None if got is None else round(got, 6)
    return (f"{view} (ttl {ttl // DAY_S}d), entity row {ex['entity_row']} ({KEY}={ex[KEY]}, "
            f"{ETS}={ets:%Y-%m-%d %H:%M:%S}): got {f0}={got}, expected {exp_v}; the key's source rows "
            f"from ttl+1d before to 1d after: {'; '.join(rows) or 'none'}")


# ---- workers (run as subprocesses) -------------------------------------------------


def worker_duckdb(spec: dict, out: str, ties: str, compression: str = "default") -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    key, ets = spec["key"], spec["entity_ts"]
    ecols = ", ".join(f"e.{c}" for c in spec["entity_columns"])
    sel, joins = [ecols], []
    for i, v in enumerate(spec["views"]):
        a = f"f{i}"
        cols = ", ".join([key, v["ts"], v["created"], *v["features"]])
        if ties == "struct":
            # The ASOF inequality on (event time, created): the latest event time, then the
            # latest created time, at or before (entity time, +infinity).
            rel = f"(SELECT {cols} FROM read_parquet('{v['path']}'))"
            cond = (f"{{'t': e.{ets}, 'c': 'infinity'::TIMESTAMPTZ}} >= "
                    f"{{'t': {a}.{v['ts']}, 'c': {a}.{v['created']}}}")
        elif ties == "none":
            rel = f"(SELECT {cols} FROM read_parquet('{v['path']}'))"
            cond = f"e.{ets} >= {a}.{v['ts']}"
        else:
            # Keep one row per (key, event time): the latest created; then a plain ASOF.
            rel = (f"(SELECT {cols} FROM read_parquet('{v['path']}') QUALIFY row_number() OVER "
                   f"(PARTITION BY {key}, {v['ts']} ORDER BY {v['created']} DESC) = 1)")
            cond = f"e.{ets} >= {a}.{v['ts']}"
        joins.append(f"ASOF LEFT JOIN {rel} {a} ON e.{key} = {a}.{key} AND {cond}")
        ttl = f"e.{ets} - INTERVAL '{v['ttl_s']} seconds'"
        sel += [f"CASE WHEN {a}.{v['ts']} >= {ttl} THEN {a}.{f} END AS {f}" for f in v["features"]]
    q = (f"COPY (SELECT {', '.join(sel)} FROM read_parquet('{spec['entities']}', file_row_number = true) e "
         f"{' '.join(joins)} ORDER BY e.file_row_number) TO '{out}' (FORMAT parquet"
         f"{', COMPRESSION uncompressed' if compression == 'none' else ''})")
    con.execute(q)


def worker_polars(spec: dict, out: str, compression: str = "default") -> None:
    import warnings
    from datetime import timedelta

    import polars as pl

    warnings.filterwarnings("ignore")  # "sortedness of columns cannot be checked when 'by' ..."
    key, ets = spec["key"], spec["entity_ts"]
    lf = pl.scan_parquet(spec["entities"]).with_row_index("__rid").sort(ets)
    for v in spec["views"]:
        # Sorted by (event time, created): "backward" takes the LAST row at or before the
        # entity time, i.e. the latest created among equal event times.
        f = pl.scan_parquet(v["path"]).select([key, v["ts"], v["created"], *v["features"]]) \
            .sort([v["ts"], v["created"]])
        lf = lf.join_asof(f, left_on=ets, right_on=v["ts"], by=key, strategy="backward",
                          tolerance=timedelta(seconds=v["ttl_s"])).drop([v["ts"], v["created"]])
    lf.sort("__rid").drop("__rid").collect().write_parquet(
        out, **({"compression": "uncompressed"} if compression == "none" else {}))


def worker_feast(spec: dict, out: str) -> None:
    import logging
    import warnings
    from datetime import timedelta

    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    repo = Path(spec["feast_repo"])
    if repo.exists():
        shutil.rmtree(repo)
    (repo / "data").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(
        "project: pit_bench\nprovider: local\nregistry: data/registry.db\n"
        "online_store:\n  type: sqlite\n  path: data/online.db\n"
        "offline_store:\n  type: file\nentity_key_serialization_version: 3\n")
    store = FeatureStore(repo_path=str(repo))
    customer = Entity(name="customer", join_keys=[spec["key"]], value_type=ValueType.INT64)
    views, refs = [], []
    for v in spec["views"]:
        src = FileSource(name=v["source"], path=v["path"], timestamp_field=v["ts"],
                         created_timestamp_column=v["created"])
        schema = [Field(name=spec["key"], dtype=Int64)] + [
            Field(name=f, dtype=Float64 if "_f" in f else Int64) for f in v["features"]]
        views.append(FeatureView(name=v["name"], entities=[customer], ttl=timedelta(seconds=v["ttl_s"]),
                                 schema=schema, source=src, online=False))
        refs += [f"{v['name']}:{f}" for f in v["features"]]
    store.apply([customer, *views])
    edf = pd.read_parquet(spec["entities"])
    edf["__rid"] = range(len(edf))  # Feast reorders rows: align by this
    job = store.get_historical_features(entity_df=edf, features=refs)
    table = job.to_arrow()
    pq.write_table(table, out)


def worker_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="pit_bench.py _worker")
    ap.add_argument("engine", choices=["duckdb", "polars", "feast"])
    ap.add_argument("spec")
    ap.add_argument("out")
    ap.add_argument("--duckdb-ties", default="struct")
    ap.add_argument("--compression", choices=["default", "none"], default="default")
    a = ap.parse_args(argv)
    spec = json.loads(Path(a.spec).read_text())
    if a.engine == "duckdb":
        worker_duckdb(spec, a.out, a.duckdb_ties, a.compression)
    elif a.engine == "polars":
        worker_polars(spec, a.out, a.compression)
    else:
        worker_feast(spec, a.out)


# ---- driver ---------------------------------------------------------------------------


def versions(feast_version: str | None) -> str:
    parts = [f"Python {platform.python_version()}", f"pyarrow {pa.__version__}"]
    for mod in ("duckdb", "polars"):
        try:
            parts.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            parts.append(f"{mod} missing")
    if feast_version:
        parts.append("feast/dask " + feast_version.replace(" ", "/"))
    return ", ".join(parts)


def machine() -> str:
    model, mem = "unknown CPU", 0.0
    try:
        model = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                     if l.startswith("model name"))
        mem = int(next(l for l in Path("/proc/meminfo").read_text().splitlines()
                       if l.startswith("MemTotal")).split()[1]) / MIB
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores ({model}), {mem:.1f} GiB RAM, Linux {platform.release()}"


def run_workload(w: Workload, engines: list[str], args, notes: list[str]) -> dict:
    info = w.ensure()
    res: dict = {"workload": w.label(), "data": info, "engines": {}}
    if "stratalake" in engines:
        try:
            res["repo"] = w.ensure_repo(args.bin)
        except subprocess.CalledProcessError as e:
            notes.append(f"stratalake ({w.name}): setting up the repository failed: "
                         f"{' '.join(e.cmd[:3])}: {(e.stderr or '').strip()[:300]}")
            engines = [x for x in engines if x != "stratalake"]
    w.out_dir.mkdir(exist_ok=True)
    spec_path = w.dir / "spec.json"
    spec_path.write_text(json.dumps(w.spec(), indent=1))
    outputs: dict[str, Path] = {}
    for eng in engines:
        out = w.out_dir / f"{eng}.parquet"
        runs = []
        for rep in range(args.reps):
            if out.exists():
                out.unlink()
            busy = settle(args.quiet_wait)
            log(f"{w.name}: {eng} (run {rep + 1}/{args.reps}; CPUs {busy:.0%} busy before)")
            m = run_measured(engine_command(eng, w, args, out, spec_path), w.out_dir / f"{eng}.log",
                             args.timeout)
            m["busy_before"] = busy
            runs.append(m)
            if m["rc"] != 0 or not out.exists():
                break
        last = runs[-1]
        if last["rc"] != 0 or not out.exists():
            tail = (w.out_dir / f"{eng}.log").read_text(errors="replace").strip().splitlines()[-3:]
            why = "timed out after %.0f s" % args.timeout if last["timed_out"] else \
                f"exit code {last['rc']}: " + " | ".join(tail)[-400:]
            notes.append(f"{eng} ({w.name}): failed, {why} (log: {w.out_dir / (eng + '.log')})")
            res["engines"][eng] = {"failed": why, **last}
            continue
        ok_runs = sorted(runs, key=lambda r: r["seconds"])
        med = ok_runs[len(ok_runs) // 2]
        res["engines"][eng] = {**med, "all_seconds": [r["seconds"] for r in runs]}
        outputs[eng] = out
        log(f"{w.name}: {eng}: {med['seconds']:.1f} s, peak RSS {med['peak_rss_mib']:.0f} MiB")
    if outputs:
        log(f"{w.name}: checking {', '.join(outputs)} against the reference")
        for eng, c in compare(w, outputs).items():
            res["engines"][eng].update(c)
            for ex in c["examples"][: args.examples]:
                try:
                    notes.append(f"{eng} ({w.name}) mismatch: " + describe_example(w, ex))
                except Exception as e:  # a diagnostic only
                    notes.append(f"{eng} ({w.name}) mismatch: {ex} ({e})")
    if not args.keep_outputs:
        for p in outputs.values():
            p.unlink(missing_ok=True)
    return res


def print_table(res: dict, engines: list[str]) -> None:
    print(f"\nWorkload {res['workload']}")
    d = res["data"]
    n = sum(d["entity_parts"].values())
    print("  matched (non-null) entity rows per view: " + ", ".join(
        f"{v} (ttl {ttl // DAY_S}d) {d['matched'][v] / n:.1%}" for v, _, _, ttl in VIEWS)
        + f"; (key, event time) ties per view: {d['ties']['fv_a']:,}")
    if res.get("repo"):
        print("  setup (not timed; when the repository was built): stratalake ingest " + ", ".join(
            f"{s} {t:.1f} s" for s, t in res["repo"]["ingest_seconds"].items()))
    hdr = ("engine", "seconds", "peak RSS MiB", "rows", "mismatches", "per view a/b/c", "notes")
    lines = []
    for eng in engines:
        r = res["engines"].get(eng)
        if r is None:
            continue
        if "failed" in r:
            lines.append((eng, "-", "-", "-", "-", "-", "FAILED: " + r["failed"][:80]))
            continue
        note = f"CPU {r['cpu_seconds']:.1f} s"
        if len(r.get("all_seconds", [])) > 1:
            note += "; runs " + "/".join(f"{s:.1f}" for s in r["all_seconds"])
        if r["other_cpu_share"] >= 0.05:
            note += f"; other processes used {r['other_cpu_share']:.0%} of the CPUs"
        if r.get("missing_rows"):
            note += (f"; {r['missing_rows']:,} entity rows missing, {r['value_mismatches']:,} of the "
                     f"rows returned differ")
        if r.get("extra_rows"):
            note += f"; {r['extra_rows']:,} extra rows"
        if r.get("entity_column_mismatches"):
            note += f"; {r['entity_column_mismatches']:,} rows with changed entity columns"
        pv = "/".join(f"{r['per_view'].get(v, 0):,}" for v, _, _, _ in VIEWS) if "per_view" in r else "-"
        lines.append((eng, f"{r['seconds']:.2f}", f"{r['peak_rss_mib']:,.0f}", f"{r.get('rows', 0):,}",
                      f"{r.get('mismatches', '?'):,}", pv, note))
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(hdr)]
    print("| " + " | ".join(h.ljust(widths[i]) for i, h in enumerate(hdr)) + " |")
    print("|" + "|".join("-" * (w + 1) + ("-" if i in (0, 6) else ":") for i, w in enumerate(widths)) + "|")
    for l in lines:
        print("| " + " | ".join(x.ljust(widths[i]) if i in (0, 6) else x.rjust(widths[i])
                                for i, x in enumerate(l)) + " |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        worker_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=list(SCALES), default="full",
                    help="full: 10M entity rows, 3 x 20M feature rows, 1M keys; small: 1/10; tiny: 1/100")
    ap.add_argument("--entities", type=int, help="entity rows (overrides --scale)")
    ap.add_argument("--rows", type=int, help="feature rows per view (overrides --scale)")
    ap.add_argument("--keys", type=int, help="distinct keys (overrides --scale)")
    ap.add_argument("--days", type=int, default=90, help="span of the event times")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma-separated: " + ",".join(ENGINES))
    ap.add_argument("--bin", default=str(REPO / "build" / "bin" / "stratalake"), help="the stratalake CLI")
    ap.add_argument("--stratalake-args", default="",
                    help="extra get-historical options, e.g. \"--memory-budget 200000000\" (forces spilling)")
    ap.add_argument("--feast-python", default=str(REPO / "bench" / ".venv-feast" / "bin" / "python"),
                    help="python of a virtualenv with feast (pip install feast==0.67.0)")
    ap.add_argument("--feast-scale", choices=["auto", "same", *SCALES], default="auto",
                    help="where Feast runs; auto: the main scale if it is at most small, else small "
                         "(the other engines then run there too)")
    ap.add_argument("--duckdb-ties", choices=["struct", "dedup", "none"], default="struct",
                    help="how DuckDB breaks (key, time) ties by created time: an ASOF on the struct "
                         "(time, created), a row_number() dedup first, or not at all (a plain ASOF "
                         "on time, which picks any of the tied rows)")
    ap.add_argument("--peer-compression", choices=["default", "none"], default="default",
                    help="the result Parquet's compression in DuckDB and Polars: their defaults "
                         "(Snappy, zstd), or none, as StrataLake writes it")
    ap.add_argument("--reps", type=int, default=1, help="runs per engine (the median is shown)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per engine run")
    ap.add_argument("--quiet-wait", type=float, default=30,
                    help="before each run, wait up to this long for the CPUs to be idle")
    ap.add_argument("--data-dir", default=str(REPO / "bench" / "data"), help="the Parquet cache")
    ap.add_argument("--keep-outputs", action="store_true", help="keep each engine's result Parquet")
    ap.add_argument("--examples", type=int, default=2, help="mismatch examples shown per engine")
    ap.add_argument("--json", help="also write all results to this file")
    args = ap.parse_args()

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for e in engines:
        if e not in ENGINES:
            raise SystemExit(f"unknown engine {e!r} (engines: {', '.join(ENGINES)})")
    args.bin = os.path.abspath(args.bin)
    notes: list[str] = []
    t_start = time.perf_counter()
    e, r, k = SCALES[args.scale]
    custom = any(x is not None for x in (args.entities, args.rows, args.keys))
    name = "custom" if custom else args.scale
    main_w = Workload(Path(args.data_dir), name, args.entities or e, args.rows or r, args.keys or k,
                      args.days, args.seed)
    if "stratalake" in engines and not os.access(args.bin, os.X_OK):
        notes.append(f"stratalake: not available ({args.bin} not found; ninja -C build stratalake)")
        engines.remove("stratalake")

    feast_version = None
    feast_w = None
    if "feast" in engines:
        ok, why = feast_available(args.feast_python)
        if not ok:
            notes.append(f"feast: not available ({why})")
            engines.remove("feast")
        else:
            feast_version = why
            fs = args.feast_scale
            if fs == "auto":
                fs = "same" if main_w.entities <= SCALES["small"][0] else "small"
            if fs != "same" and (custom or fs != args.scale):
                fe, fr, fk = SCALES[fs]
                feast_w = Workload(Path(args.data_dir), fs, fe, fr, fk, args.days, args.seed)
                notes.append(f"feast ran at the {fs} scale only ({fe:,} entity rows, 3 x {fr:,} "
                             f"feature rows): its Dask store joins every entity row with every feature "
                             f"row of the key before filtering; the other engines ran there too")
    main_engines = [x for x in engines if not (x == "feast" and feast_w)]
    results = {"machine": machine(), "versions": versions(feast_version), "args": vars(args), "runs": []}
    results["runs"].append(run_workload(main_w, main_engines, args, notes))
    if feast_w:
        results["runs"].append(run_workload(feast_w, engines, args, notes))
    results["total_seconds"] = time.perf_counter() - t_start
    results["notes"] = notes

    print()
    print(f"Machine: {results['machine']}")
    print(f"Versions: {results['versions']}")
    print("Each figure: wall seconds of the engine's whole subprocess (read Parquet/Delta, join, write "
          "the Parquet result) and its peak RSS; mismatches: result rows that differ from the exact "
          "reference in any value (plus missing entity rows).")
    for run in results["runs"]:
        print_table(run, engines)
    if notes:
        print("\nNotes:")
        for n_ in notes:
            print(f"- {n_}")
    print(f"\nTotal bench time {results['total_seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
