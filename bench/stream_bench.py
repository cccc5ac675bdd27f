#!/usr/bin/env python3
"""Streaming ingest from Kafka: sustained rows/s into Delta + the online store, and freshness.

A benchmark that prints numbers, never a pass/fail test:

    .venv/bin/python bench/stream_bench.py [--messages 1000000] [--partitions 2]
        [--accounts 100000] [--probes 40] [--intervals 250,1000,5000] [--load-rate 50000]
        [--load-seconds 10]
        [--brokers HOST:PORT] [--probe-seconds 3] [--out results.json]

What one run does (docs/benchmarks.md, "Streaming ingest from Kafka", explains the results):

1. Starts a broker with scripts/kafka.sh (unless --brokers), and writes a feature repository
   with one kafka source (5 columns: account_id, ts, seq, price, side) feeding one online
   feature view (`last_trade`: price, side per account), `apply`.
2. Ingest: produces --messages JSON trades over --accounts accounts into a topic of
   --partitions partitions (`stratalake stream produce`, timed), then runs
   `stratalake stream --stop-at-end --metrics-port` over that backlog and scrapes
   /metrics every 100 ms: the sustained rate is the slope of messages_total over the
   middle 80% of the run (start-up and the last commit excluded; each count at the first
   scrape that saw it, since the stream publishes about once a second); the wall time includes
   everything; the CPU time of the stream process (all threads) gives messages per CPU
   second, the figure that the machine's other load disturbs least; the broker's CPU time
   over the same run (from /proc, when the bench started the broker or --broker-pid names
   it) and the load average before and after are printed beside it. Then checks the
   bronze table has every message once and the online store
   the latest price of a sample of accounts.
3. Freshness: `stratalake serve --stream` (the server and the stream in one process, sharing
   the online store) on a fresh one-partition topic; a probe keeps one
   `stratalake stream produce -` open and, --probes times per commit interval of
   --intervals, writes one event with a new account and a known price, then polls
   POST /get-online-features until the value is served (online freshness: produce ->
   visible) and reads the bronze table's Delta log until the partition's txn version covers
   the event's offset (offline freshness: produce -> durable). The probe is the topic's only
   writer, so event k has offset k. Probes are spaced randomly (seed printed).
4. Online freshness under load: the same probe while a second producer writes
   --load-rate trades/s for --load-seconds into the same topic (online only: the load's
   offsets are not known). A probe event queues behind the load, so this includes the
   stream's lag.
5. bench/stall_probe (if built) runs --probe-seconds before each part: the time per second
   this machine took the CPUs away, the floor under every figure.

The run ends with a `summary:` block: every figure above (sustained and wall rate, CPU
seconds of the stream and the broker, load average, online/offline freshness p50/p99).

Everything runs on one machine: the broker (a JVM), the producer, the stream and the probe
share its cores.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import resource
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "python"))
from kafka_fixtures import (LAST_TRADE_VIEW, TRADES_COLUMNS, start_broker,  # noqa: E402
                            stop_broker, write_kafka_repo)
BASE_TS = 1_767_225_600  # 2026-01-01T00:00:00Z


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_repo(path: Path, topic: str) -> None:
    write_kafka_repo(path, project="streambench", topic=topic, brokers_var="BENCH_BROKERS",
                     lateness="1h", columns=TRADES_COLUMNS, views=LAST_TRADE_VIEW)


def cli(bin_: str, *args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([bin_, *args], capture_output=True, text=True, env=env, **kw)
    if proc.returncode != 0:
        sys.exit(f"stratalake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def stall_probe(args) -> dict | None:
    exe = Path(args.stall_probe)
    if args.probe_seconds <= 0 or not exe.exists():
        return None
    out = subprocess.run([str(exe), "--seconds", str(args.probe_seconds)], capture_output=True,
                         text=True).stdout.strip()
    try:
        probe = json.loads(out.splitlines()[-1])
    except (ValueError, IndexError):
        return None
    secs = probe["seconds"]
    line = ", ".join(f"CPU {c['cpu']}: {c['lost_ms_1ms'] / secs:.1f} ms/s lost in gaps >= 1 ms, "
                     f"longest {c['max_ms']:.1f} ms" for c in probe["cpus"])
    print(f"  stall probe ({secs} s): {line}; steal {probe.get('steal_ms', 0)} ms")
    return probe


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + sys, all threads) process `pid` has used so far; None if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(text: str, name: str) -> float:
    total = 0.0
    for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M):
        total += float(m.group(1))
    return total


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def trade_line(seq: int, account: int, price: float, ts: float) -> str:
    return (f'{{"account_id":{account},"ts":{ts:.6f},"seq":{seq},"px":{price},'
            f'"side":"{"buy" if seq % 2 else "sell"}"}}')


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


# ---- 2. sustained ingest -------------------------------------------------------------------

def ingest(args, brokers: str, work: Path) -> dict:
    print(f"ingest: {args.messages:,} messages, {args.partitions} partitions, "
          f"{args.accounts:,} accounts")
    topic = "bench-" + uuid.uuid4().hex[:8]
    repo = work / "ingest"
    make_repo(repo, topic)
    env = {**os.environ, "BENCH_BROKERS": brokers}
    cli(args.bin, "apply", "--repo", str(repo))
    rng = random.Random(args.seed)
    data = work / "trades.jsonl"
    last_price: dict[int, float] = {}
    with open(data, "w") as f:
        for i in range(args.messages):
            a = rng.randrange(args.accounts)
            price = round(100 + rng.gauss(0, 5), 4)
            last_price[a] = price  # timestamps grow with i: the last one wins
            f.write(trade_line(i, a, price, BASE_TS + i / 1000) + "\n")
    t0 = time.perf_counter()
    cli(args.bin, "stream", "produce", str(data), "--topic", topic, "--brokers", brokers,
        "--partitions", str(args.partitions), "--json")
    produce_s = time.perf_counter() - t0
    print(f"  produced in {produce_s:.2f} s ({args.messages / produce_s:,.0f} messages/s)")
    probe = stall_probe(args)
    port = free_port()
    samples: list[tuple[float, float]] = []
    load_before = os.getloadavg()[0]
    broker0 = process_cpu(args.broker_pid) if args.broker_pid else None
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen([args.bin, "stream", "--stop-at-end", "--json", "--metrics-port",
                             str(port), "--commit-interval-ms", str(args.commit_interval_ms),
                             "--repo", str(repo)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:
        try:
            text = fetch(f"http://127.0.0.1:{port}/metrics")
            samples.append((time.perf_counter() - t0,
                            metric(text, "stratalake_stream_messages_total")))
        except OSError:
            pass
        time.sleep(0.1)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    broker1 = process_cpu(args.broker_pid) if args.broker_pid else None
    broker_cpu = broker1 - broker0 if broker0 is not None and broker1 is not None else None
    load_after = os.getloadavg()[0]
    if proc.returncode != 0:
        sys.exit(f"stream failed:\n{err}")
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["rows_committed"] == args.messages, stats
    # The slope over the middle 80% of the messages (by count). The stream publishes its
    # counters about once a second and they are scraped every 100 ms: each count is taken
    # at the first scrape that saw it (a later scrape of the same count would stretch the
    # span by up to a second and understate the rate).
    lo, hi = 0.1 * args.messages, 0.9 * args.messages
    firsts: list[tuple[float, float]] = []
    for t, n in samples:
        if not firsts or n != firsts[-1][1]:
            firsts.append((t, n))
    mid = [(t, n) for t, n in firsts if lo <= n <= hi]
    sustained = None
    if len(mid) >= 2 and mid[-1][0] > mid[0][0]:
        sustained = (mid[-1][1] - mid[0][1]) / (mid[-1][0] - mid[0][0])
    # Checks: bronze has every message once; the online store the latest price.
    pq_out = work / "bronze.parquet"
    cli(args.bin, "table", "read", str(repo / "lake" / "bronze" / "trades"), "--output",
        str(pq_out))
    import pyarrow.parquet as pq
    seqs = pq.read_table(pq_out, columns=["seq"]).column("seq").to_pylist()
    assert sorted(seqs) == list(range(args.messages)), "bronze does not hold every message once"
    sample = sorted(rng.sample(sorted(last_price), 50))
    got = json.loads(cli(args.bin, "get-online", "--features", "last_trade", "--entity",
                         "account_id=" + ",".join(map(str, sample)), "--json", "--repo",
                         str(repo)).stdout)["results"][1]["values"]
    assert got == [last_price[a] for a in sample], "online values differ"
    res = {"messages": args.messages, "partitions": args.partitions,
           "produce_seconds": produce_s, "wall_seconds": wall,
           "wall_rate": args.messages / wall, "sustained_rate": sustained,
           "commits": stats["commits"], "cpu_seconds": cpu, "rate_per_cpu_second":
           args.messages / cpu, "broker_cpu_seconds": broker_cpu,
           "load_average": [load_before, load_after], "samples": samples, "stall_probe": probe}
    print(f"  stream --stop-at-end: {wall:.2f} s wall ({args.messages / wall:,.0f} messages/s "
          f"including start-up), sustained {sustained or 0:,.0f} messages/s "
          f"(middle 80%), {stats['commits']} commits; bronze exact, online values checked")
    print(f"  the stream process used {cpu:.2f} CPU s (user + sys, all its threads): "
          f"{args.messages / cpu:,.0f} messages per CPU second")
    if broker_cpu is not None:
        print(f"  the broker used {broker_cpu:.2f} CPU s meanwhile "
              f"({args.messages / broker_cpu:,.0f} messages per broker CPU second)")
    print(f"  load average (1 min) {load_before:.2f} before, {load_after:.2f} after")
    return res


# ---- 3, 4. freshness ------------------------------------------------------------------------

class Probe:
    """One server with its stream on a one-partition topic, and one open producer."""

    def __init__(self, args, brokers: str, work: Path, interval_ms: int, name: str):
        self.args = args
        self.topic = "fresh-" + uuid.uuid4().hex[:8]
        self.brokers = brokers
        self.repo = work / name
        make_repo(self.repo, self.topic)
        env = {**os.environ, "BENCH_BROKERS": brokers}
        cli(args.bin, "apply", "--repo", str(self.repo))
        # Create the topic with one partition (and the source's bronze position) first.
        seed = work / f"{name}-seed.jsonl"
        seed.write_text(trade_line(0, 0, 1.5, BASE_TS) + "\n")
        cli(args.bin, "stream", "produce", str(seed), "--topic", self.topic, "--brokers",
            brokers, "--partitions", "1")
        self.offset = 1  # the next offset of the topic
        self.port = free_port()
        self.server = subprocess.Popen(
            [args.bin, "serve", "--port", str(self.port), "--stream", "--commit-interval-ms",
             str(interval_ms), "--repo", str(self.repo)], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.conn = None
        deadline = time.time() + 60
        while True:
            try:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                if self.online(0) == 1.5:
                    break
            except OSError:
                pass
            if self.server.poll() is not None or time.time() > deadline:
                sys.exit(f"serve --stream did not come up:\n{self.server.stderr.read()}")
            time.sleep(0.1)
        self.producer = subprocess.Popen(
            [args.bin, "stream", "produce", "-", "--topic", self.topic, "--brokers", brokers],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.log = self.repo / "lake" / "bronze" / "trades" / "_delta_log"
        self.log_seen: set[str] = set()
        self.durable = -1  # the partition's txn version in bronze

    def online(self, account: int):
        body = json.dumps({"features": ["last_trade:price"],
                           "entities": {"account_id": [account]}})
        self.conn.request("POST", "/get-online-features", body,
                          {"Content-Type": "application/json"})
        reply = json.loads(self.conn.getresponse().read())
        v = reply["results"][1]["values"][0]
        return None if v is None else float(v)

    def read_log(self) -> int:
        if self.log.exists():
            for name in sorted(os.listdir(self.log)):
                if not name.endswith(".json") or name in self.log_seen:
                    continue
                self.log_seen.add(name)
                for line in (self.log / name).read_text().splitlines():
                    txn = json.loads(line).get("txn")
                    if txn and txn["appId"] == "stratalake-stream/trades/0":
                        self.durable = max(self.durable, txn["version"])
        return self.durable

    def send(self, account: int, price: float) -> int:
        self.producer.stdin.write(trade_line(self.offset, account, price, time.time()) + "\n")
        self.producer.stdin.flush()
        self.offset += 1
        return self.offset - 1

    def measure(self, k: int, offline: bool) -> tuple[float, float | None]:
        account = 10_000_000 + k
        price = k + 0.25
        t0 = time.perf_counter()
        offset = self.send(account, price)
        while self.online(account) != price:
            if time.perf_counter() - t0 > 60:
                sys.exit(f"probe {k} not online after 60 s")
            time.sleep(0.0005)
        online_s = time.perf_counter() - t0
        if not offline:
            return online_s, None
        while self.read_log() < offset:
            if time.perf_counter() - t0 > 120:
                sys.exit(f"probe {k} not durable after 120 s")
            time.sleep(0.002)
        return online_s, time.perf_counter() - t0

    def metrics(self) -> str:
        self.conn.request("GET", "/metrics")
        return self.conn.getresponse().read().decode()

    def close(self) -> None:
        self.producer.communicate(timeout=120)  # closes its stdin
        self.server.terminate()
        self.server.communicate(timeout=60)


def freshness(args, brokers: str, work: Path, interval_ms: int, rng: random.Random) -> dict:
    probes = args.probes if interval_ms < 5000 else max(5, args.probes // 4)
    print(f"freshness: commit interval {interval_ms} ms, {probes} probes")
    probe_reading = stall_probe(args)
    p = Probe(args, brokers, work, interval_ms, f"fresh-{interval_ms}")
    try:
        online, offline = [], []
        for k in range(probes):
            time.sleep(rng.uniform(0.01, 0.2))
            on, off = p.measure(k, offline=True)
            online.append(on)
            offline.append(off)
        text = p.metrics()
        assert "stratalake_stream_batch_latency_seconds_count" in text, text
    finally:
        p.close()
    res = {"interval_ms": interval_ms, "online": online, "offline": offline,
           "stall_probe": probe_reading}
    print(f"  online  p50 {1000 * statistics.median(online):7.1f} ms  p99 "
          f"{1000 * percentile(online, 0.99):7.1f} ms  max {1000 * max(online):7.1f} ms")
    print(f"  offline p50 {1000 * statistics.median(offline):7.1f} ms  p99 "
          f"{1000 * percentile(offline, 0.99):7.1f} ms  max {1000 * max(offline):7.1f} ms")
    return res


def freshness_under_load(args, brokers: str, work: Path, rng: random.Random) -> dict:
    total = args.load_rate * args.load_seconds
    print(f"online freshness under load: {args.load_rate:,} messages/s for {args.load_seconds} s "
          f"into the same topic")
    probe_reading = stall_probe(args)
    p = Probe(args, brokers, work, 1000, "loaded")
    # The load: one more producer fed at --load-rate, 100 slices a second.
    slice_n = max(1, args.load_rate // 100)
    slices = ["".join(trade_line(i, rng.randrange(args.accounts), 100.5, BASE_TS + i / 1000)
                      + "\n" for i in range(k * slice_n, (k + 1) * slice_n))
              for k in range(min(total // slice_n, 200))]
    load = subprocess.Popen([args.bin, "stream", "produce", "-", "--topic", p.topic,
                             "--brokers", brokers], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    done = threading.Event()
    behind = [0.0]

    def feed():
        start = time.perf_counter()
        for k in range(total // slice_n):
            due = start + k / 100
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            else:
                behind[0] = max(behind[0], now - due)
            load.stdin.write(slices[k % len(slices)])
            load.stdin.flush()
        done.set()

    online: list[float] = []
    feeder = threading.Thread(target=feed)
    try:
        t0 = time.perf_counter()
        feeder.start()
        k = 0
        while not done.is_set():
            time.sleep(rng.uniform(0.01, 0.1))
            on, _ = p.measure(100_000 + k, offline=False)
            online.append(on)
            k += 1
        load_s = time.perf_counter() - t0
        feeder.join()
        load.communicate(timeout=120)
        text = p.metrics()
    finally:
        p.close()
    res = {"load_rate": args.load_rate, "load_seconds": load_s, "feeder_behind_s": behind[0],
           "online": online, "stall_probe": probe_reading,
           "batch_latency_count": metric(text, "stratalake_stream_batch_latency_seconds_count")}
    print(f"  {total:,} messages fed in {load_s:.2f} s (the feeder was at most "
          f"{behind[0] * 1000:.0f} ms behind its schedule); {len(online)} probes: online p50 "
          f"{1000 * statistics.median(online):.1f} ms  p99 {1000 * percentile(online, 0.99):.1f} "
          f"ms  max {1000 * max(online):.1f} ms")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=str(REPO / "build" / "bin" / "stratalake"))
    ap.add_argument("--brokers", default="")
    ap.add_argument("--broker-pid", type=int, default=0,
                    help="with --brokers: the broker's pid, to report its CPU time")
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--commit-interval-ms", type=int, default=1000,
                    help="of the ingest run")
    ap.add_argument("--probes", type=int, default=40)
    ap.add_argument("--intervals", default="250,1000,5000",
                    help="commit intervals (ms) of the freshness runs; empty: none")
    ap.add_argument("--load-rate", type=int, default=50_000,
                    help="messages/s produced during the freshness-under-load run; 0: none")
    ap.add_argument("--load-seconds", type=int, default=10)
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--probe-seconds", type=int, default=3)
    ap.add_argument("--stall-probe", default=str(REPO / "build" / "bin" / "stall_probe"))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 32)
    print(f"seed {args.seed}")
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    kafka_dir = None
    brokers = args.brokers
    if not brokers:
        kafka_dir = work / "kafka"
        brokers = start_broker(kafka_dir)
        args.broker_pid = int((kafka_dir / "kafka.pid").read_text())
    results: dict = {"seed": args.seed, "brokers": brokers}
    try:
        if not args.skip_ingest:
            results["ingest"] = ingest(args, brokers, work)
        results["freshness"] = [freshness(args, brokers, work, int(ms), rng)
                                for ms in args.intervals.split(",") if ms]
        if args.load_rate > 0:
            results["under_load"] = freshness_under_load(args, brokers, work, rng)
    finally:
        if kafka_dir:
            stop_broker(kafka_dir)
        shutil.rmtree(work, ignore_errors=True)
    summary(results)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


def summary(results: dict) -> None:
    """Every figure of the run on a few lines (what docs/benchmarks.md quotes)."""
    print("summary:")
    ing = results.get("ingest")
    if ing:
        broker = ing["broker_cpu_seconds"]
        sustained = ing["sustained_rate"]
        print(f"  ingest {ing['messages']:,} messages: sustained "
              + (f"{sustained:,.0f} msg/s" if sustained
                 else "n/a (too short a run: more --messages)")
              + f", wall {ing['wall_rate']:,.0f} msg/s; "
              f"stream {ing['cpu_seconds']:.2f} CPU s ({ing['rate_per_cpu_second']:,.0f} msg per "
              f"CPU s); broker "
              + (f"{broker:.2f} CPU s" if broker is not None else "CPU unknown (--broker-pid)")
              + f"; load average {ing['load_average'][0]:.2f} / {ing['load_average'][1]:.2f}")
    for f in results.get("freshness", []):
        on, off = f["online"], f["offline"]
        print(f"  freshness, commit interval {f['interval_ms']} ms: online p50/p99 "
              f"{1000 * statistics.median(on):.1f}/{1000 * percentile(on, 0.99):.1f} ms, "
              f"offline p50/p99 {1000 * statistics.median(off):.1f}/"
              f"{1000 * percentile(off, 0.99):.1f} ms")
    load = results.get("under_load")
    if load:
        on = load["online"]
        print(f"  online freshness under load: p50/p99 {1000 * statistics.median(on):.1f}/"
              f"{1000 * percentile(on, 0.99):.1f} ms ({len(on)} probes)")


if __name__ == "__main__":
    main()
