#!/usr/bin/env python3
"""Online serving and materialization: StrataLake's feature server vs Feast's, and Redis.

A benchmark that prints numbers, never a pass/fail test:

    .venv/bin/python bench/serving_bench.py [--quick] [--out results.json]
        [--systems stratalake,stratalake-redis,feast-sqlite,feast-redis]
        [--keys 100000] [--rows-per-key 3] [--materialize-rows 5000000]
        [--rates 100,1000,5000,20000,0] [--duration 10] [--warmup 2] [--connections 32]
        [--pin-loadgen 1] [--loadgen-rt auto] [--rcvbuf 1048576] [--sysbuf-rates 1000]
        [--repeat 1]
        [--sl-threads 0] [--sl-busy-poll-us 0] [--server-rt-priority 0] [--feast-workers 2]
        [--quiet-wait 120] [--probe-seconds 3]

What one run does (docs/benchmarks.md, "Online serving", explains the results):

1. Generates (once; cached under bench/data/serving) a feature source as Parquet: one
   entity `customer_id` (int64), --keys keys with --rows-per-key rows each at distinct
   event times (plus a created timestamp), and 50 features (f00..f24 float64, i00..i24
   int64), rows shuffled; and a second, larger source for the throughput figure:
   --materialize-rows rows x 10 features over --materialize-keys keys.
2. StrataLake: writes a feature repository (stratalake.yaml + definitions), `apply`,
   `ingest` both sources, `materialize` each view into the embedded RocksDB store (timed;
   rows/s from the command's own figure and from its wall time). `stratalake-redis` is a
   second repository over the same Delta tables whose online store is a real redis-server
   (scripts/redis.sh), materialized the same way.
3. Feast (pip `feast`, in bench/.venv-feast, see --feast-python): a repository with a
   FileSource over the same Parquet file, the entity and a FeatureView with the same 50
   features; `feast apply`, `feast materialize` (timed) into SQLite, and again into the
   same redis-server (database 1).
4. For every system: starts its HTTP server (`stratalake serve --port 0`, or `feast serve`
   with --feast-workers gunicorn/uvicorn workers, no access log, no worker recycling),
   fetches the same sample of keys (plus unknown keys) and compares every value, status
   and event timestamp with a reference computed from the Parquet file (latest event
   time per key, ties to the latest created time); then runs bench/loadgen (built from
   bench/loadgen.cc; open loop, latency from the intended send time) at each rate of
   --rates (0 = saturation, closed loop) for two request shapes: 1 entity x 50 features
   and 100 entities x 50 features, each request for random keys (--bodies pre-generated
   request bodies, cycled). The server's CPU time (all its processes) is recorded per
   point.
5. `redis-benchmark -t get -n 200000` (and with -P 16) against the same redis-server, as
   the floor of a network round trip to a key-value store on this machine.
6. Prints the tables and writes everything as JSON (--out).

Everything runs on one machine: the load generator, the server (and Redis) compete for the
same cores. --pin-loadgen CPU pins the load generator (and redis-benchmark) to one CPU
with taskset, and --loadgen-rt runs them under SCHED_FIFO so that a busy server cannot
delay the client's own clock (it sleeps in epoll_wait between sends); the servers are not
pinned unless --pin-server is given. The machine may be shared: before each measurement
the driver waits (up to --quiet-wait s) for it to be idle, and every point records the CPU
used by the server, redis-server, the load generator and everything else (flagged `*`
in the table when other processes used more than 0.1 cores).

The stratalake and loadgen binaries are copied into the data folder at the start, so a
rebuild during the run does not change what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
KEY, TS, CREATED = "customer_id", "event_ts", "created_ts"
BASE_S = 1_780_272_000  # 2026-06-01T00:00:00Z
SPAN_S = 30 * 86_400    # event times fall in [BASE, BASE + 30 days)
MAT_START, MAT_END = "2026-05-01T00:00:00Z", "2026-08-01T00:00:00Z"  # covers all of it
N_FLOAT, N_INT = 25, 25  # the served view: f00..f24 float64, i00..i24 int64
M_FLOAT, M_INT = 5, 5    # the throughput view: m_f0..m_f4, m_i0..m_i4
VIEW, MVIEW = "bench", "mat"
SYSTEMS = ["stratalake", "stratalake-redis", "feast-sqlite", "feast-redis"]
SHAPES = [("1x50", 1), ("100x50", 100)]  # (name, entities per request); always 50 features


def log(msg: str) -> None:
    print(f"[serving_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def snapshot_binary(src: str, dest_dir: Path) -> str:
    """Copies a binary (stratalake, loadgen) once per run, so that a rebuild in the working
    tree during the run changes nothing; retries while the copy does not run (mid-link)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / Path(src).name
    for attempt in range(30):
        try:
            shutil.copy2(src, dest)
            if subprocess.run([str(dest), "--help"], capture_output=True,
                              timeout=30).returncode == 0:
                return str(dest)
        except (OSError, subprocess.SubprocessError):
            pass
        log(f"{src} is not runnable yet (being rebuilt?); retrying in 10 s")
        time.sleep(10)
    sys.exit(f"could not get a runnable copy of {src}")


def features() -> list[str]:
    return [f"f{i:02d}" for i in range(N_FLOAT)] + [f"i{i:02d}" for i in range(N_INT)]


def mat_features() -> list[str]:
    return [f"m_f{i}" for i in range(M_FLOAT)] + [f"m_i{i}" for i in range(M_INT)]


def run(cmd: list[str], timeout: float, cwd: Path | None = None, env: dict | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    """Runs a command, capturing its output; raises with the output's tail on failure."""
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        tail = (p.stderr.strip() or p.stdout.strip())[-2000:]
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} ... exited {p.returncode}: {tail}")
    return p


# ---- data ------------------------------------------------------------------------------


def generate_source(path: Path, keys: int, rows_per_key: int, n_float: int, n_int: int,
                    names: list[str], seed: int) -> None:
    """keys 1..K, each with rows_per_key rows at distinct event times (row j of a key in
    the j-th slice of the span), created = event + [0, 1 h); random doubles and int64s;
    rows shuffled so that file order says nothing about recency."""
    rng = np.random.default_rng(seed)
    n = keys * rows_per_key
    key = np.repeat(np.arange(1, keys + 1, dtype=np.int64), rows_per_key)
    slot = np.tile(np.arange(rows_per_key, dtype=np.int64), keys)
    width = SPAN_S // rows_per_key
    event_s = BASE_S + slot * width + rng.integers(0, width, n)
    created_s = event_s + rng.integers(0, 3600, n)
    perm = rng.permutation(n)
    cols: dict[str, pa.Array] = {KEY: pa.array(key[perm])}
    for name in names[:n_float]:
        cols[name] = pa.array(rng.standard_normal(n)[perm] * 1000.0)
    for name in names[n_float:n_float + n_int]:
        cols[name] = pa.array(rng.integers(-10**12, 10**12, n, dtype=np.int64)[perm])
    ts = pa.timestamp("us", tz="UTC")
    cols[TS] = pa.array(event_s[perm] * 1_000_000, type=pa.int64()).cast(ts)
    cols[CREATED] = pa.array(created_s[perm] * 1_000_000, type=pa.int64()).cast(ts)
    table = pa.table(cols)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, row_group_size=1_000_000)
    tmp.rename(path)


def ensure_data(d: Path, args) -> dict:
    d.mkdir(parents=True, exist_ok=True)
    info_path = d / "data.json"
    if info_path.exists():
        log(f"using cached data in {d}")
        return json.loads(info_path.read_text())
    t0 = time.perf_counter()
    log(f"generating {args.keys:,} keys x {args.rows_per_key} rows x 50 features ...")
    generate_source(d / "bench.parquet", args.keys, args.rows_per_key, N_FLOAT, N_INT,
                    features(), args.seed)
    mkeys = args.materialize_keys
    mrpk = max(1, args.materialize_rows // mkeys)
    log(f"generating {mkeys * mrpk:,} rows x 10 features over {mkeys:,} keys ...")
    generate_source(d / "mat.parquet", mkeys, mrpk, M_FLOAT, M_INT, mat_features(),
                    args.seed + 1)
    info = {"bench_rows": args.keys * args.rows_per_key, "bench_keys": args.keys,
            "mat_rows": mkeys * mrpk, "mat_keys": mkeys,
            "generate_seconds": round(time.perf_counter() - t0, 1)}
    info_path.write_text(json.dumps(info, indent=2))
    return info


def reference(parquet: Path, sample: list[int]) -> dict[int, dict]:
    """The expected online row of each sampled key: the latest event time, ties to the
    latest created time. Unknown keys are absent."""
    t = pq.read_table(parquet)
    key = t[KEY].to_numpy()
    want = np.isin(key, np.array(sample, dtype=np.int64))
    t = t.filter(pa.array(want))
    rows = t.to_pylist()
    best: dict[int, dict] = {}
    for r in rows:
        k = r[KEY]
        cur = best.get(k)
        if cur is None or (r[TS], r[CREATED]) > (cur[TS], cur[CREATED]):
            best[k] = r
    return best


# ---- processes -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of a process and its live descendants."""
    hz = os.sysconf("SC_CLK_TCK")
    parent, cpu = {}, {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parent[int(p.name)] = int(fields[1])
        cpu[int(p.name)] = (int(fields[11]) + int(fields[12])) / hz
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += [c for c, pp in parent.items() if pp == pid]
    return total


class Server:
    """A server process in its own session (so its workers can be stopped together)."""

    def __init__(self, name: str, cmd: list[str], cwd: Path, log_path: Path, port: int | None,
                 env: dict | None = None):
        self.name, self.cmd, self.cwd, self.log_path = name, cmd, cwd, log_path
        self.port = port
        self.env = env
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, ready_timeout: float) -> None:
        self._log = open(self.log_path, "w")
        # The port comes from our own first stdout line when it is not chosen up front.
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, text=True,
                                     stdout=subprocess.PIPE if self.port is None else self._log,
                                     stderr=self._log, start_new_session=True)
        deadline = time.monotonic() + ready_timeout
        if self.port is None:
            line = self._first_line(deadline)
            m = re.search(r"http://[^:/\s]+:(\d+)", line)
            if not m:
                raise RuntimeError(f"{self.name}: no port in its first line: {line!r}")
            self.port = int(m.group(1))
            threading.Thread(target=self._drain, daemon=True).start()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}; log: "
                                   f"{self.log_path.read_text()[-1500:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health",
                                            timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {ready_timeout:.0f} s; log: "
                           f"{self.log_path.read_text()[-1500:]}")

    def _first_line(self, deadline: float) -> str:
        assert self.proc and self.proc.stdout
        fd = self.proc.stdout.fileno()
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: no first line (exit {self.proc.poll()}); log: "
                                   f"{self.log_path.read_text()[-1500:]}")
            r, _, _ = select.select([fd], [], [], min(left, 0.5))
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    continue
                buf += chunk
        first, rest = buf.split(b"\n", 1)
        self._log.write(first.decode() + "\n" + rest.decode(errors="replace"))
        self._log.flush()
        return first.decode(errors="replace")

    def _drain(self) -> None:
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self._log.write(chunk.decode(errors="replace"))
            self._log.flush()

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.proc.pid) if self.proc else 0.0

    def stop(self) -> int | None:
        if not self.proc:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop within 20 s of SIGTERM; SIGKILL")
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        rc = self.proc.returncode
        if self._log:
            self._log.close()
        self.proc = None
        return rc


def post_json(port: int, path: str, body: dict, timeout: float = 30) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read())
        except ValueError:
            return e.code, {}


# ---- StrataLake --------------------------------------------------------------------------


def schema_yaml(names: list[str], n_float: int) -> str:
    lines = [f"      - {{name: {KEY}, type: int64, nullable: false}}"]
    lines += [f"      - {{name: {n}, type: {'float64' if i < n_float else 'int64'}}}"
              for i, n in enumerate(names)]
    lines += [f"      - {{name: {TS}, type: timestamp, nullable: false}}",
              f"      - {{name: {CREATED}, type: timestamp, nullable: false}}"]
    return "\n".join(lines)


def write_stratalake_repo(repo: Path, online: str, offline: str) -> None:
    """stratalake.yaml and one definitions file: the 50-feature view `bench` and the
    10-feature view `mat`, each over its own Delta source."""
    (repo / "definitions").mkdir(parents=True)
    (repo / "stratalake.yaml").write_text(
        "# Written by bench/serving_bench.py\n"
        "project: serving_bench\n"
        f"offline_store: {offline}\n"
        f"online_store: {online}\n"
        "registry: .stratalake/registry.db\n"
        "definitions:\n  - definitions\n")
    view_features = lambda names, nf: "\n".join(  # noqa: E731
        f"      - {{name: {n}, type: {'float64' if i < nf else 'int64'}}}"
        for i, n in enumerate(names))
    (repo / "definitions" / "bench.yaml").write_text(f"""\
entities:
  - name: customer
    join_keys:
      - {{name: {KEY}, type: int64}}
sources:
  - name: bench_src
    path: bronze/bench
    timestamp_field: {TS}
    created_timestamp_field: {CREATED}
    schema:
{schema_yaml(features(), N_FLOAT)}
  - name: mat_src
    path: bronze/mat
    timestamp_field: {TS}
    created_timestamp_field: {CREATED}
    schema:
{schema_yaml(mat_features(), M_FLOAT)}
feature_views:
  - name: {VIEW}
    entities: [customer]
    source: bench_src
    ttl: 0
    features:
{view_features(features(), N_FLOAT)}
  - name: {MVIEW}
    entities: [customer]
    source: mat_src
    ttl: 0
    features:
{view_features(mat_features(), M_FLOAT)}
""")


def stratalake_materialize(args, repo: Path, view: str) -> dict:
    quiet = settle(args.quiet_wait)
    t0 = time.perf_counter()
    p = run([args.bin, "materialize", MAT_START, MAT_END, "--views", view, "--repo", str(repo),
             "--json"], timeout=3600)
    wall = time.perf_counter() - t0
    out = json.loads(p.stdout)
    v = next(x for x in out["views"] if x["view"] == view)
    return {"view": view, "store": out.get("store"), "rows_read": v["rows_read"],
            "rows_written": v["rows_written"], "seconds": round(v["seconds"], 3),
            "wall_seconds": round(wall, 3),
            "rows_per_s": round(v["rows_read"] / v["seconds"]) if v["seconds"] else None,
            "rows_per_s_wall": round(v["rows_read"] / wall), "settle": quiet}


def setup_stratalake(args, d: Path, redis_url: str | None) -> dict:
    """Builds the embedded repository (and, with redis_url, the Redis one) from scratch and
    materializes both views into each; returns the timings."""
    res: dict = {}
    repo = d / "stratalake_repo"
    if repo.exists():
        shutil.rmtree(repo)
    write_stratalake_repo(repo, "{type: embedded, path: .stratalake/online}", "lake")
    run([args.bin, "apply", "--repo", str(repo)], timeout=120)
    for src, f in (("bench_src", "bench.parquet"), ("mat_src", "mat.parquet")):
        t0 = time.perf_counter()
        run([args.bin, "ingest", src, str(d / f), "--repo", str(repo), "--json"], timeout=3600)
        res[f"ingest_{src}_seconds"] = round(time.perf_counter() - t0, 2)
        log(f"stratalake: ingested {f} in {res[f'ingest_{src}_seconds']} s")
    res["materialize"] = {}
    for view in (VIEW, MVIEW):
        m = stratalake_materialize(args, repo, view)
        res["materialize"][f"rocksdb:{view}"] = m
        log(f"stratalake: materialized {view} into RocksDB: {m['rows_read']:,} rows in "
            f"{m['seconds']} s ({m['rows_per_s']:,} rows/s; wall {m['wall_seconds']} s)")
    res["online_dir_mb"] = round(sum(f.stat().st_size for f in (repo / ".stratalake/online")
                                     .rglob("*") if f.is_file()) / 2**20, 1)
    if redis_url:
        rrepo = d / "stratalake_redis_repo"
        if rrepo.exists():
            shutil.rmtree(rrepo)
        write_stratalake_repo(rrepo, f"{{type: redis, url: '{redis_url}'}}",
                              str(repo / "lake"))
        run([args.bin, "apply", "--repo", str(rrepo)], timeout=120)
        for view in (VIEW, MVIEW):
            m = stratalake_materialize(args, rrepo, view)
            res["materialize"][f"redis:{view}"] = m
            log(f"stratalake: materialized {view} into Redis: {m['rows_read']:,} rows in "
                f"{m['seconds']} s ({m['rows_per_s']:,} rows/s)")
    return res


# ---- Feast -------------------------------------------------------------------------------


def feast_available(py: str) -> tuple[bool, str]:
    if not os.access(py, os.X_OK):
        return False, (f"{py} not found; create it with: python3.11 -m venv bench/.venv-feast && "
                       "bench/.venv-feast/bin/pip install 'feast[redis]==0.67.0'")
    p = subprocess.run([py, "-c", "import feast, redis, uvicorn_worker; print(feast.__version__)"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return False, ("import feast/redis failed (bench/.venv-feast/bin/pip install "
                       "'feast[redis]==0.67.0'): " +
                       (p.stderr.strip().splitlines() or ["?"])[-1])
    return True, p.stdout.strip()


def feast_env() -> dict:
    env = dict(os.environ)
    env["FEAST_USAGE"] = "False"
    env["PYTHONWARNINGS"] = "ignore"
    return env


def setup_feast(args, d: Path, name: str, online_yaml: str) -> dict:
    """A Feast repository over the same Parquet file; apply and materialize (timed)."""
    repo = d / name
    if repo.exists():
        shutil.rmtree(repo)
    (repo / "data").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(
        "project: serving_bench\nprovider: local\nregistry: data/registry.db\n"
        f"online_store:\n{online_yaml}\n"
        "offline_store:\n  type: file\nentity_key_serialization_version: 3\n")
    fields = ",\n    ".join(
        f"Field(name='{n}', dtype={'Float64' if i < N_FLOAT else 'Int64'})"
        for i, n in enumerate(features()))
    (repo / "features.py").write_text(f"""\
# Written by bench/serving_bench.py: the same view as StrataLake's `{VIEW}`.
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

customer = Entity(name="customer", join_keys=["{KEY}"], value_type=ValueType.INT64)
source = FileSource(name="bench_src", path="{d / 'bench.parquet'}", timestamp_field="{TS}",
                    created_timestamp_column="{CREATED}")
{VIEW} = FeatureView(
    name="{VIEW}", entities=[customer], ttl=timedelta(0), online=True, source=source,
    schema=[
    {fields},
    ],
)
""")
    feast = str(Path(args.feast_python).parent / "feast")
    run([feast, "apply"], cwd=repo, env=feast_env(), timeout=600)
    quiet = settle(args.quiet_wait)
    t0 = time.perf_counter()
    run([feast, "materialize", MAT_START.rstrip("Z"), MAT_END.rstrip("Z")], cwd=repo,
        env=feast_env(), timeout=args.feast_materialize_timeout)
    wall = time.perf_counter() - t0
    return {"repo": str(repo), "rows_read": args.keys * args.rows_per_key,
            "keys_written": args.keys, "wall_seconds": round(wall, 2),
            "rows_per_s_wall": round(args.keys * args.rows_per_key / wall), "settle": quiet}


# ---- checks and load -------------------------------------------------------------------


def parse_ts(s) -> int | None:
    """ISO 8601 (Z or offset, optional fraction) -> epoch microseconds."""
    if s is None:
        return None
    if isinstance(s, (int, float)):
        return int(s * 1_000_000)
    dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(round(dt.timestamp() * 1_000_000))


def norm_value(v):
    """Feast writes some int64s as JSON strings; compare numbers as numbers."""
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v):
        return int(v)
    return v


def check_values(port: int, sample: list[int], ref: dict[int, dict]) -> dict:
    """Fetches all 50 features for the sample keys and compares them with the reference:
    values (exactly: floats must round-trip), statuses and event timestamps."""
    refs = [f"{VIEW}:{f}" for f in features()]
    mismatches, examples, checked = 0, [], 0
    kinds = {"value": 0, "status": 0, "event_timestamp": 0}
    for start in range(0, len(sample), 100):
        keys = sample[start:start + 100]
        code, resp = post_json(port, "/get-online-features",
                               {"features": refs, "entities": {KEY: keys}})
        if code != 200:
            return {"error": f"HTTP {code}: {json.dumps(resp)[:300]}", "mismatches": None}
        names = resp["metadata"]["feature_names"]
        results = resp["results"]
        if names[0] != KEY or len(results) != len(names):
            return {"error": f"unexpected layout: feature_names {names[:3]}...",
                    "mismatches": None}
        cols = {n: results[i] for i, n in enumerate(names)}
        for f in features():
            col = cols.get(f) or cols.get(f"{VIEW}__{f}")
            if col is None:
                return {"error": f"feature {f} missing from the response", "mismatches": None}
            for row, k in enumerate(keys):
                checked += 1
                r = ref.get(k)
                want = (r[f], "PRESENT", parse_ts(r[TS].isoformat())) if r else (
                    None, "NOT_FOUND", None)
                got_v, got_s = norm_value(col["values"][row]), col["statuses"][row]
                got_t = parse_ts(col["event_timestamps"][row]) if r else None
                if (got_v, got_s, got_t) != want:
                    mismatches += 1
                    for kind, a, b in (("value", got_v, want[0]), ("status", got_s, want[1]),
                                       ("event_timestamp", got_t, want[2])):
                        kinds[kind] += a != b
                    if len(examples) < 5:
                        examples.append({"key": k, "feature": f, "want": [want[0], want[1], want[2]],
                                         "got": [col["values"][row], got_s,
                                                 col["event_timestamps"][row]]})
    return {"values_checked": checked, "keys": len(sample), "mismatches": mismatches,
            "by_kind": kinds, "examples": examples}


def write_bodies(path: Path, n_bodies: int, entities: int, keys: int, seed: int) -> None:
    rng = random.Random(seed)
    refs = [f"{VIEW}:{f}" for f in features()]
    with open(path, "w") as f:
        for _ in range(n_bodies):
            ks = [rng.randint(1, keys) for _ in range(entities)]
            f.write(json.dumps({"features": refs, "entities": {KEY: ks}},
                               separators=(",", ":")) + "\n")


def taskset(cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus] if cpus and cpus != "none" else []


def cpu_list(spec: str) -> list[int]:
    """'0', '0,2' or '0-3' -> CPU numbers."""
    cpus: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        cpus += list(range(int(lo), int(hi or lo) + 1))
    return cpus


def client_prefix(args) -> list[str]:
    """How the load generator and redis-benchmark run: pinned to --pin-loadgen, and with
    --loadgen-rt under SCHED_FIFO, so that a busy server cannot delay the client's sends
    and clock readings (the client sleeps in epoll_wait between sends, so it never hogs
    the CPU)."""
    return [*(["chrt", "-f", "10"] if args.loadgen_rt else []), *taskset(args.pin_loadgen)]


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent not idle since boot (/proc/stat)."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def settle(max_wait: float) -> dict:
    """Waits (up to max_wait s) until the machine is nearly idle (under 0.25 cores busy
    over 2 s): it may be shared with other users. Returns what was seen."""
    t0 = time.perf_counter()
    while True:
        b0 = machine_busy_seconds()
        time.sleep(2 if max_wait > 0 else 0.2)
        busy = (machine_busy_seconds() - b0) / (2 if max_wait > 0 else 0.2)
        waited = time.perf_counter() - t0
        if busy < 0.25 or waited >= max_wait:
            return {"busy_cores_before": round(busy, 2), "waited_s": round(waited, 1)}


def machine_stalls(args) -> dict | None:
    """bench/stall_probe on every CPU for --probe-seconds: how much time this machine took
    away from a program that never sleeps (interrupts, kernel threads, the hypervisor)
    just before a point. A do-nothing server would have been stalled as long."""
    if args.probe_seconds <= 0:
        return None
    try:
        p = run([args.stall_probe, "--seconds", str(args.probe_seconds)],
                timeout=args.probe_seconds + 30)
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (RuntimeError, subprocess.TimeoutExpired, ValueError, IndexError) as e:
        return {"error": str(e)[:300]}


def stalls_text(st: dict | None) -> str:
    """'lost 12/9 ms/s, max 3.1 ms': per CPU, the time lost in gaps of 1 ms or more per
    second of probing, and the longest gap."""
    if not st or "cpus" not in st:
        return "-" if not st else "ERR"
    per_s = "/".join(f"{c['lost_ms_1ms'] / st['seconds']:.0f}" for c in st["cpus"])
    return f"{per_s} ms/s, max {max(c['max_ms'] for c in st['cpus']):.1f}"


def load_point(args, server: Server, bodies: Path, rate: int, label: str,
               redis_pid: int | None, rcvbuf: int | None = None) -> dict:
    """One loadgen run; adds where the machine's CPU went during it: the server (all its
    processes), redis-server (for Redis-backed systems), the load generator, and
    everything else (other users of the machine: noise)."""
    cmd = [*client_prefix(args), args.loadgen, "--port", str(server.port), "--bodies",
           str(bodies), "-R", str(rate), "-c", str(args.connections), "-t", str(args.threads),
           "-d", str(args.duration), "-w", str(args.warmup), "--timeout", str(args.timeout),
           "--rcvbuf", str(args.rcvbuf if rcvbuf is None else rcvbuf), "--label", label,
           "--quiet"]
    quiet = settle(args.quiet_wait)
    stalls = machine_stalls(args)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0, busy0, t0 = server.cpu_seconds(), machine_busy_seconds(), time.perf_counter()
    redis0 = tree_cpu_seconds(redis_pid) if redis_pid else 0.0
    try:
        p = run(cmd, timeout=args.warmup + args.duration + args.timeout + 60)
        res = json.loads(p.stdout.strip().splitlines()[-1])
    except (RuntimeError, subprocess.TimeoutExpired, ValueError, IndexError) as e:
        res = {"label": label, "rate": rate, "error": str(e)[:500]}
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    srv = server.cpu_seconds() - cpu0
    red = (tree_cpu_seconds(redis_pid) - redis0) if redis_pid else 0.0
    lg = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    busy = machine_busy_seconds() - busy0
    res["cores"] = {"server": round(srv / wall, 2), "redis": round(red / wall, 2),
                    "loadgen": round(lg / wall, 2),
                    "other": round(max(0.0, busy - srv - red - lg) / wall, 2)}
    res["settle"] = quiet
    if stalls is not None:
        res["machine_stalls"] = stalls
    if server.proc and server.proc.poll() is not None:
        res["server_exited"] = server.proc.returncode
    lat = (res.get("latency_ms") or {}) if res.get("completed") else {}
    log(f"  {label:<24} offered {rate or 'max':>6}  achieved {res.get('achieved_rps', 0):>9}"
        f"  p50 {lat.get('p50', '-'):>8}  p99 {lat.get('p99', '-'):>8}  p99.9 "
        f"{lat.get('p999', '-'):>8} ms  non2xx {res.get('non2xx', '-')}  errors "
        f"{sum(res.get('errors', {}).values()) if 'errors' in res else res.get('error')}"
        f"  unsent {res.get('unsent', '-')}  cores {res['cores']}"
        f"  machine stalls before: {stalls_text(stalls)}")
    return res


def repeated_point(args, server: Server, bodies: Path, rate: int, label: str,
                   redis_pid: int | None, rcvbuf: int | None = None) -> dict:
    """load_point --repeat times; the run with the median p99 is reported, and every run's
    figures are kept under "repeats" (this machine's noise moves a single run's p99 by 2-3x)."""
    runs = [load_point(args, server, bodies, rate, label, redis_pid, rcvbuf)
            for _ in range(max(1, args.repeat))]
    if len(runs) == 1:
        return runs[0]
    done = [r for r in runs if r.get("completed") and r.get("latency_ms")]
    if not done:
        return runs[-1]
    done.sort(key=lambda r: r["latency_ms"]["p99"])
    res = dict(done[len(done) // 2])
    res["repeats"] = [{"achieved_rps": r.get("achieved_rps"), "unsent": r.get("unsent"),
                       **{k: (r.get("latency_ms") or {}).get(k) for k in
                          ("p50", "p99", "p999", "max")},
                       "machine_stalls": stalls_text(r.get("machine_stalls"))} for r in runs]
    return res


def bench_server(args, name: str, server: Server, d: Path, sample: list[int], ref: dict,
                 redis_pid: int | None) -> dict:
    res: dict = {"system": name, "command": " ".join(server.cmd), "points": []}
    t0 = time.perf_counter()
    server.start(ready_timeout=180)
    res["startup_seconds"] = round(time.perf_counter() - t0, 2)
    log(f"{name}: serving on port {server.port} (ready in {res['startup_seconds']} s)")
    try:
        res["check"] = check_values(server.port, sample, ref)
        c = res["check"]
        log(f"{name}: value check: {c.get('values_checked', 0):,} values, mismatches "
            f"{c.get('mismatches')} {c.get('error', '')} {c.get('examples', [])[:2]}")
        # Prime: a short, unreported closed-loop run per shape, so that the first point
        # does not pay for cold caches, lazy imports or the first connections.
        for shape, _ in SHAPES:
            if args.prime > 0:
                run([args.loadgen, "--port", str(server.port), "--bodies",
                     str(d / f"bodies_{shape}.jsonl"), "-R", "0", "-c", str(args.connections),
                     "-d", str(args.prime), "-w", "0", "--timeout", str(args.timeout),
                     "--quiet"], timeout=args.prime + args.timeout + 60, check=False)
        for shape, _ in SHAPES:
            for rate in args.rates:
                res["points"].append(dict(shape=shape, **repeated_point(
                    args, server, d / f"bodies_{shape}.jsonl", rate, f"{name} {shape}",
                    redis_pid)))
                if server.proc.poll() is not None:
                    raise RuntimeError(f"{name} exited {server.proc.returncode} under load; "
                                       f"log: {server.log_path.read_text()[-1500:]}")
        # The large replies again with the clients' receive buffers left at the system
        # default (the delayed-ACK stalls the --rcvbuf help describes).
        if args.rcvbuf:
            for rate in args.sysbuf_rates:
                res["points"].append(dict(shape="100x50 sysbuf", **repeated_point(
                    args, server, d / "bodies_100x50.jsonl", rate, f"{name} 100x50 sysbuf",
                    redis_pid, rcvbuf=0)))
    finally:
        res["exit_code"] = server.stop()
        res["log_tail"] = server.log_path.read_text()[-1000:] if server.log_path.exists() else ""
    return res


def redis_benchmark(args, port: int) -> list[dict]:
    out = []
    for pipeline in (1, 16):
        cmd = [*client_prefix(args), "redis-benchmark", "-h", "127.0.0.1", "-p", str(port),
               "-t", "get", "-n", str(args.redis_requests), "-P", str(pipeline), "--csv"]
        quiet = settle(args.quiet_wait)
        p = run(cmd, timeout=300, check=False)
        rows = [line for line in p.stdout.splitlines() if line.startswith('"GET"')]
        if p.returncode != 0 or not rows:
            out.append({"pipeline": pipeline, "error": (p.stderr or p.stdout)[-300:]})
            continue
        # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
        # "p99_latency_ms","max_latency_ms"
        v = [x.strip('"') for x in rows[0].split(",")]
        out.append({"pipeline": pipeline, "clients": 50, "requests": args.redis_requests,
                    "rps": float(v[1]), "avg_ms": float(v[2]), "p50_ms": float(v[4]),
                    "p95_ms": float(v[5]), "p99_ms": float(v[6]), "max_ms": float(v[7]),
                    "command": " ".join(cmd), "settle": quiet})
        log(f"redis-benchmark GET -P {pipeline}: {v[1]} req/s, p50 {v[4]} ms, p99 {v[6]} ms")
    return out


# ---- report ------------------------------------------------------------------------------


def machine() -> str:
    model, mem = "unknown CPU", 0.0
    try:
        model = next(ln.split(":", 1)[1].strip() for ln in
                     Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name"))
        mem = int(next(ln for ln in Path("/proc/meminfo").read_text().splitlines()
                       if ln.startswith("MemTotal")).split()[1]) / 2**20
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores ({model}), {mem:.1f} GiB RAM, Linux {platform.release()}"


def fmt(v, digits: int = 2) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def print_tables(results: dict) -> None:
    print(f"\nMachine: {results['machine']}")
    print(f"Load generator: {results['loadgen']}")
    print("\nServing: latency from the intended send time (open loop); rate 'max' = closed "
          "loop (saturation).")
    hdr = (f"{'system':<17} {'shape':<13} {'offered':>7} {'achieved':>9} {'p50 ms':>8} "
           f"{'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8} {'non2xx':>6} {'errors':>6} "
           f"{'unsent':>7}  {'CPU cores: server/redis/loadgen/other':<30}  "
           f"{'machine stalls before (>=1 ms gaps, per CPU)':<30}")
    print(hdr)
    print("-" * len(hdr))
    for s in results["servers"]:
        for p in s.get("points", []):
            # No measured request completed: the server fell behind during the warm-up.
            lat = (p.get("latency_ms") or {}) if p.get("completed") else {}
            errs = sum(p["errors"].values()) if "errors" in p else "ERR"
            c = p.get("cores", {})
            cores = "/".join(f"{c.get(k, 0):.2f}" for k in ("server", "redis", "loadgen", "other"))
            print(f"{s['system']:<17} {p['shape']:<13} {fmt(p['rate'] or 'max'):>7} "
                  f"{fmt(p.get('achieved_rps'), 0):>9} {fmt(lat.get('p50'), 3):>8} "
                  f"{fmt(lat.get('p99'), 3):>8} {fmt(lat.get('p999'), 3):>9} "
                  f"{fmt(lat.get('max'), 1):>8} {fmt(p.get('non2xx')):>6} {fmt(errs):>6} "
                  f"{fmt(p.get('unsent')):>7}  {cores:<30}{'*' if c.get('other', 0) > 0.1 else ' '}"
                  f" {stalls_text(p.get('machine_stalls')):<30}"
                  + (f"  p99 of the runs: "
                     f"{'/'.join(fmt(r.get('p99'), 3) for r in p['repeats'])}"
                     + (f" (stalls before each: "
                        f"{' | '.join(r['machine_stalls'] for r in p['repeats'])})"
                        if any(r.get('machine_stalls', '-') != '-' for r in p['repeats'])
                        else "")
                     if p.get("repeats") else ""))
        if s.get("error"):
            print(f"{s['system']:<17} ERROR: {s['error'][:200]}")
    print("(* = other processes used more than 0.1 cores during the point: noisy)")
    print("(machine stalls: bench/stall_probe just before the point: per CPU, the time per "
          "second that a program\n which never sleeps lost in gaps of 1 ms or more, and the "
          "longest gap. At 10 ms/s, 1% of the requests\n arrive while that CPU is away for 1 ms "
          "or more, however little the server costs)")
    print("\nValue check (all 50 features of sampled keys, plus unknown keys, against the "
          "Parquet reference):")
    for s in results["servers"]:
        c = s.get("check", {})
        kinds = ", ".join(f"{k} {v}" for k, v in c.get("by_kind", {}).items() if v)
        print(f"  {s['system']:<17} {fmt(c.get('keys'))} keys, {fmt(c.get('values_checked'))} "
              f"values: {fmt(c.get('mismatches'))} mismatches"
              f"{' (' + kinds + ')' if kinds else ''} {c.get('error', '')}")
    print("\nMaterialization:")
    for name, m in results.get("materialize", {}).items():
        if "rows_per_s" in m:
            print(f"  {name:<24} {m['rows_read']:>10,} rows  {m['seconds']:>8.2f} s  "
                  f"{m['rows_per_s']:>12,} rows/s  (process wall {m['wall_seconds']:.2f} s: "
                  f"{m['rows_per_s_wall']:,} rows/s)")
        else:
            print(f"  {name:<24} {m['rows_read']:>10,} rows  {m['wall_seconds']:>8.2f} s  "
                  f"{m['rows_per_s_wall']:>12,} rows/s  (process wall)")
    if results.get("redis_benchmark"):
        print("\nredis-benchmark (GET, 50 clients), the floor:")
        for r in results["redis_benchmark"]:
            if "rps" in r:
                print(f"  -P {r['pipeline']:<3} {r['rps']:>12,.0f} req/s  p50 {r['p50_ms']:.3f} ms"
                      f"  p99 {r['p99_ms']:.3f} ms  max {r['max_ms']:.3f} ms")
            else:
                print(f"  -P {r['pipeline']:<3} ERROR {r['error']}")
    if results["notes"]:
        print("\nNotes:")
        for n in results["notes"]:
            print(f"- {n}")


# ---- driver ------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 10k keys, 200k materialization rows, 2 s per point")
    ap.add_argument("--systems", default=",".join(SYSTEMS),
                    help=f"comma-separated, from {','.join(SYSTEMS)}")
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--rows-per-key", type=int, default=3)
    ap.add_argument("--materialize-rows", type=int, default=5_000_000)
    ap.add_argument("--materialize-keys", type=int, default=1_000_000)
    ap.add_argument("--rates", default="100,1000,5000,20000,0",
                    help="offered requests/s per point; 0 = saturation (closed loop)")
    ap.add_argument("--duration", type=float, default=10, help="measured seconds per point")
    ap.add_argument("--warmup", type=float, default=2, help="unmeasured seconds per point")
    ap.add_argument("--timeout", type=float, default=10, help="loadgen per-request timeout (s)")
    ap.add_argument("--prime", type=float, default=3,
                    help="seconds of unreported closed-loop load per shape after a server starts")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="loadgen threads")
    ap.add_argument("--bodies", type=int, default=1000, help="pre-generated bodies per shape")
    ap.add_argument("--sample", type=int, default=200, help="keys in the value check")
    ap.add_argument("--pin-loadgen", default="1",
                    help="CPU list for taskset for loadgen and redis-benchmark ('none': off)")
    ap.add_argument("--loadgen-rt", choices=["auto", "yes", "no"], default="auto",
                    help="run the clients under SCHED_FIFO (chrt -f 10); auto: when permitted")
    ap.add_argument("--rcvbuf", type=int, default=1 << 20,
                    help="loadgen --rcvbuf: each client connection's SO_RCVBUF in bytes (0: the "
                         "system default, 128 KiB here). A 100 x 50 reply is 252 KB; with a "
                         "smaller receive window it arrives in several windows, and on Linux "
                         "loopback a window update now and then waits for the delayed-ACK "
                         "timer: 40-80 ms stalls that are the client's, not the server's")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per point; the table shows the run with the median p99 and "
                         "lists every run's p99")
    ap.add_argument("--sysbuf-rates", default="1000",
                    help="rates at which 100 x 50 is measured again with the system default "
                         "receive buffer ('' : none)")
    ap.add_argument("--pin-server", default="none",
                    help="CPU list for taskset for the servers and redis-server ('none': off; "
                         "pinned to one core, StrataLake saturates at ~29k/s and its p99 at "
                         "20k/s is worse, see docs/benchmarks.md)")
    ap.add_argument("--sl-threads", type=int, default=0,
                    help="stratalake serve --threads (0: one per CPU the server may use)")
    ap.add_argument("--sl-busy-poll-us", type=int, default=0,
                    help="stratalake serve --busy-poll-us (0: off); with it, --sl-threads 0 "
                         "means half the CPUs the server may use, each loop pinned to one")
    ap.add_argument("--server-rt-priority", type=int, default=0,
                    help="run the servers under test at this SCHED_FIFO priority, below the "
                         "load generator's 10 (1..9; 0: off): `stratalake serve "
                         "--realtime-priority P` (its event loops only), and `chrt -f P feast "
                         "serve` (every process and thread of Feast's server)")
    ap.add_argument("--feast-workers", type=int, default=0,
                    help="feast serve --workers (0: one per CPU the server may use)")
    ap.add_argument("--feast-python", default=str(REPO / "bench" / ".venv-feast" / "bin" / "python"))
    ap.add_argument("--feast-materialize-timeout", type=float, default=3600)
    ap.add_argument("--redis-requests", type=int, default=200_000)
    ap.add_argument("--quiet-wait", type=float, default=120,
                    help="before each measurement, wait up to this many seconds for the "
                         "machine to be idle (it may be shared); 0: do not wait")
    ap.add_argument("--probe-seconds", type=float, default=3,
                    help="before each point, bench/stall_probe spins this long on every CPU and "
                         "records how much time the machine took away (0: off)")
    ap.add_argument("--stall-probe", default=str(REPO / "build" / "bin" / "stall_probe"))
    ap.add_argument("--bin", default=str(REPO / "build" / "bin" / "stratalake"))
    ap.add_argument("--loadgen", default=str(REPO / "build" / "bin" / "loadgen"))
    ap.add_argument("--data-dir", default=str(REPO / "bench" / "data" / "serving"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if args.quick:
        args.keys, args.rows_per_key = 10_000, 2
        args.materialize_rows, args.materialize_keys = 200_000, 50_000
        args.duration, args.warmup, args.timeout, args.prime = 2, 0.5, 5, 1
        args.bodies, args.sample, args.redis_requests = 200, 50, 50_000
        args.quiet_wait = 0
        args.probe_seconds = min(args.probe_seconds, 1)
    args.rates = [int(float(r)) for r in args.rates.split(",")]
    args.sysbuf_rates = [int(float(r)) for r in args.sysbuf_rates.split(",") if r.strip()]
    server_cpus = (len(os.sched_getaffinity(0)) if args.pin_server == "none" else
                   len(cpu_list(args.pin_server)))
    if args.feast_workers <= 0:
        args.feast_workers = server_cpus
    if args.sl_threads <= 0:
        # One event loop per CPU the server may use (its affinity mask); busy-polling
        # loops each keep a core, so then half of them.
        args.sl_threads = max(1, server_cpus // 2) if args.sl_busy_poll_us > 0 else server_cpus
    if not 0 <= args.server_rt_priority <= 9:
        ap.error("--server-rt-priority must be 0..9: below the load generator's SCHED_FIFO 10")
    if args.server_rt_priority and args.sl_busy_poll_us:
        ap.error("--server-rt-priority and --sl-busy-poll-us cannot be combined (the server "
                 "refuses busy polling at a realtime priority)")
    if args.loadgen_rt == "auto":
        args.loadgen_rt = subprocess.run(["chrt", "-f", "10", "true"],
                                         capture_output=True).returncode == 0
    else:
        args.loadgen_rt = args.loadgen_rt == "yes"
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    for s in systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s} (known: {', '.join(SYSTEMS)})")
    for exe in (args.bin, args.loadgen) + ((args.stall_probe,) if args.probe_seconds > 0 else ()):
        if not os.access(exe, os.X_OK):
            sys.exit(f"{exe} not found; build it: cmake --build build --target "
                     f"{Path(exe).name}")

    notes: list[str] = []
    results: dict = {
        "machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "args": {k: v for k, v in vars(args).items()}, "notes": notes, "servers": [],
        "loadgen": (f"bench/loadgen, {args.connections} connections, {args.threads} thread(s), "
                    f"{args.warmup:g} s warm-up + {args.duration:g} s per point, "
                    + (f"pinned to CPU {args.pin_loadgen}" if args.pin_loadgen != "none" else
                       "not pinned")
                    + (", SCHED_FIFO (chrt -f 10)" if args.loadgen_rt else "")
                    + (f"; servers and redis-server pinned to CPU {args.pin_server}"
                       if args.pin_server != "none" else "; servers not pinned")),
    }
    d = Path(args.data_dir) / (f"k{args.keys}-r{args.rows_per_key}-m{args.materialize_rows}-"
                               f"mk{args.materialize_keys}-s{args.seed}")
    t_start = time.perf_counter()
    results["data"] = ensure_data(d, args)
    args.bin = snapshot_binary(args.bin, d / "bin")
    args.loadgen = snapshot_binary(args.loadgen, d / "bin")
    if args.probe_seconds > 0:
        args.stall_probe = snapshot_binary(args.stall_probe, d / "bin")
    results["stratalake_binary"] = {
        "copied_from": str(REPO / "build" / "bin" / "stratalake"),
        "git": run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], timeout=30,
                   check=False).stdout.strip(),
        "sha256": run(["sha256sum", args.bin], timeout=60, check=False).stdout.split(" ")[0]}
    for shape, n in SHAPES:
        write_bodies(d / f"bodies_{shape}.jsonl", args.bodies, n, args.keys, args.seed + n)
    rng = random.Random(args.seed)
    sample = sorted(rng.sample(range(1, args.keys + 1), min(args.sample, args.keys)))
    sample += [0, -5, args.keys + 1, args.keys + 10**9]  # unknown keys: NOT_FOUND
    ref = reference(d / "bench.parquet", sample)

    redis_dir = d / "redis"
    redis_url = None
    servers: list[Server] = []
    try:
        if any("redis" in s for s in systems):
            if redis_dir.exists():
                run([str(REPO / "scripts" / "redis.sh"), "stop", str(redis_dir)], timeout=60,
                    check=False)
            redis_url = run([str(REPO / "scripts" / "redis.sh"), "start", str(redis_dir)],
                            timeout=60).stdout.strip()
            log(f"redis-server at {redis_url}")
        redis_port = int(re.search(r":(\d+)", redis_url.split("//", 1)[1]).group(1)) \
            if redis_url else None
        redis_pid = int((redis_dir / "redis.pid").read_text()) if redis_url else None
        if redis_pid and args.pin_server != "none":  # Redis is part of the server side
            run(["taskset", "-a", "-pc", args.pin_server, str(redis_pid)], timeout=30)

        # Materialization and StrataLake's repositories.
        sl_redis = "stratalake-redis" in systems
        if "stratalake" in systems or sl_redis:
            sl = setup_stratalake(args, d, redis_url if sl_redis else None)
            results["stratalake_setup"] = sl
            results["materialize"] = {f"stratalake {k}": v for k, v in sl["materialize"].items()}
        feast_ok, feast_why = (False, "")
        if any(s.startswith("feast") for s in systems):
            feast_ok, feast_why = feast_available(args.feast_python)
            if not feast_ok:
                notes.append(f"feast: not available ({feast_why})")
            else:
                results["feast_version"] = feast_why

        sl_cmd = lambda repo: [*taskset(args.pin_server), args.bin, "serve", "--port", "0",  # noqa
                               "--repo", str(repo),
                               "--threads", str(args.sl_threads),
                               "--busy-poll-us", str(args.sl_busy_poll_us),
                               *(["--realtime-priority", str(args.server_rt_priority)]
                                 if args.server_rt_priority else [])]
        feast_rt = ["chrt", "-f", str(args.server_rt_priority)] if args.server_rt_priority else []
        feast_cmd = [*feast_rt, *taskset(args.pin_server),
                     str(Path(args.feast_python).parent / "feast"),
                     "serve", "-h", "127.0.0.1", "-p", "{port}", "-w", str(args.feast_workers),
                     "--no-access-log", "--max-requests", "0", "--keep-alive-timeout", "600"]
        for system in systems:
            res: dict = {"system": system}
            try:
                if system == "stratalake":
                    srv = Server(system, sl_cmd(d / "stratalake_repo"), d,
                                 d / f"{system}.log", None)
                elif system == "stratalake-redis":
                    srv = Server(system, sl_cmd(d / "stratalake_redis_repo"), d,
                                 d / f"{system}.log", None)
                else:
                    if not feast_ok:
                        continue
                    online = ("  type: sqlite\n  path: data/online.db" if system == "feast-sqlite"
                              else f"  type: redis\n  connection_string: "
                                   f"\"127.0.0.1:{redis_port},db=1\"")
                    log(f"{system}: feast apply + materialize ...")
                    m = setup_feast(args, d, system.replace("-", "_"), online)
                    results.setdefault("materialize", {})[f"{system} {VIEW}"] = m
                    log(f"{system}: materialized {m['rows_read']:,} rows ({m['keys_written']:,} "
                        f"keys) in {m['wall_seconds']} s")
                    port = free_port()
                    srv = Server(system, [c.replace("{port}", str(port)) for c in feast_cmd],
                                 Path(m["repo"]), d / f"{system}.log", port, env=feast_env())
                servers.append(srv)
                res = bench_server(args, system, srv, d, sample, ref,
                                   redis_pid if "redis" in system else None)
            except Exception as e:  # keep going with the other systems
                res["error"] = f"{type(e).__name__}: {e}"
                log(f"{system}: FAILED: {res['error'][:1500]}")
                notes.append(f"{system}: failed: {res['error'][:300]}")
            results["servers"].append(res)

        if redis_port:
            results["redis_benchmark"] = redis_benchmark(args, redis_port)
    finally:
        for srv in servers:
            srv.stop()
        if redis_url:
            run([str(REPO / "scripts" / "redis.sh"), "stop", str(redis_dir)], timeout=60,
                check=False)

    notes.append(f"{os.cpu_count()} cores for the load generator, the server under test and (for "
                 "the Redis rows) redis-server: "
                 + (f"the servers and redis-server on CPU {args.pin_server}, the load generator "
                    f"and redis-benchmark on CPU {args.pin_loadgen}. "
                    if args.pin_server != "none" else "shared (servers not pinned). ")
                 + "CPU cores = CPU seconds per wall second of the point: the server (all its "
                 "processes), redis-server, the load generator, and everything else on the "
                 "machine (kernel threads, other users: noise). Materialization is not pinned.")
    rt = args.server_rt_priority
    notes.append(f"stratalake serve: --threads {args.sl_threads} --busy-poll-us "
                 f"{args.sl_busy_poll_us}"
                 + (f" --realtime-priority {rt} (event loops at SCHED_FIFO {rt})" if rt else "")
                 + f"; feast serve: {args.feast_workers} gunicorn/uvicorn workers, no access log, "
                 "--max-requests 0 (no worker recycling)"
                 + (f", under chrt -f {rt} (every process and thread)" if rt else "")
                 + ("; redis-server at its ordinary priority." if rt else "."))
    results["total_seconds"] = round(time.perf_counter() - t_start, 1)
    print_tables(results)
    print(f"\nTotal bench time {results['total_seconds']:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2, default=str))
        log(f"results written to {args.out}")


if __name__ == "__main__":
    main()
