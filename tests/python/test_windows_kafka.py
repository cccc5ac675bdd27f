"""Window features through a real Kafka broker (docs/windows.md): random trades with
out-of-order and late (within allowed_lateness) event times are produced on three
partitions and streamed by `stratalake stream`, which is SIGKILLed once mid-run and
restarted (events written online but not yet committed are read again); then a
`materialize` backfill. After each step, the online window values read through the Python
CLI (`get-online`, the feature server's response) at "now" equal, exactly, a training set's for entity rows at that same instant (the
online values' event timestamp is the instant they were computed for).

`make test` starts the broker (STRATALAKE_TEST_KAFKA_BROKERS); run alone, the `brokers`
fixture of test_stream_kafka starts one."""
from __future__ import annotations

import datetime as dt
import json
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from conftest import BIN
from kafka_fixtures import write_kafka_repo
from test_stream_kafka import brokers, cli, produce, stream_env  # noqa: F401 (fixture)


KEYS = 8
FEATURES = ["n_2m", "sum_10m", "mean_2m", "std_10m", "max_10m", "last_2m", "buys_10m",
            "p50_10m", "last2_2m"]
SCHEMA = [("account_id", "int64"), ("ts", "timestamp"), ("price", "float64"), ("size", "int64"),
          ("side", "string")]
VIEWS = """\
feature_views:
  - name: trade_windows
    entities: [account]
    source: trades
    aggregations:
      - {name: n_2m, function: count, column: price, window: 2m}
      - {name: sum_10m, function: sum, column: price, window: 10m}
      - {name: mean_2m, function: mean, column: price, window: 2m}
      - {name: std_10m, function: stddev, column: price, window: 10m}
      - {name: max_10m, function: max, column: size, window: 10m}
      - {name: last_2m, function: last, column: price, window: 2m}
      - {name: buys_10m, function: sum, column: size, window: 10m, filter: "side = 'buy'"}
      - {name: p50_10m, function: percentile, column: price, window: 10m, percentile: 0.5}
      - {name: last2_2m, function: last_k, column: price, window: 2m, k: 2}
"""


def make_repo(path: Path, topic: str) -> Path:
    write_kafka_repo(path, project="windows", topic=topic, brokers_var="TEST_BROKERS",
                     lateness="1h", schema=SCHEMA, views=VIEWS)
    cli(path, "apply")
    return path


def trades(rng: random.Random, n: int, now_s: float) -> list[str]:
    """Trades with event times over the last 15 minutes, in random order (so most are
    out of order, and many later than newer ones already sent), prices with many digits."""
    out = []
    for _ in range(n):
        ts = now_s - rng.uniform(0, 900)
        if rng.random() < 0.2:
            ts = float(int(ts))  # whole seconds: ties
        out.append(json.dumps({
            "account_id": rng.randrange(KEYS), "ts": round(ts, 6),
            "price": None if rng.random() < 0.05 else round(rng.uniform(90, 110), 7),
            "size": rng.randrange(1, 50), "side": rng.choice(["buy", "sell"])}))
    return out


def check_online_equals_offline(repo: Path, tmp: Path) -> None:
    keys = list(range(KEYS + 1))  # the last key has no trades
    proc = subprocess.run([str(BIN), "get-online", "--features", "trade_windows", "--entity",
                           "account_id=" + ",".join(map(str, keys)), "--json", "--repo", str(repo)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    names = body["metadata"]["feature_names"]
    online = {n: r for n, r in zip(names, body["results"])}
    when = {t for f in FEATURES for t in online[f]["event_timestamps"]}
    assert len(when) == 1, when  # every value was computed for one instant: now
    at = dt.datetime.fromisoformat(when.pop().replace("Z", "+00:00"))
    entities = tmp / "entities.parquet"
    pq.write_table(pa.table({
        "account_id": pa.array(keys, pa.int64()),
        "event_timestamp": pa.array([at] * len(keys), pa.timestamp("us", tz="UTC"))}), entities)
    out = tmp / "training.parquet"
    if out.exists():
        out.unlink()
    cli(repo, "get-historical", "--entities", str(entities), "--features", "trade_windows",
        "--output", str(out))
    offline = pq.read_table(out)
    counted = 0
    for f in FEATURES:
        assert online[f]["values"] == offline.column(f).to_pylist(), f
        if f == "n_2m":
            counted = sum(online[f]["values"])
    assert counted > 0  # the windows were not all empty


def test_streamed_windows_equal_the_training_set(brokers, tmp_path):  # noqa: F811
    rng = random.Random(5)
    topic = f"windows-{uuid.uuid4().hex[:8]}"
    repo = make_repo(tmp_path / "repo", topic)
    now = time.time()
    produce(brokers, topic, trades(rng, 3000, now), tmp_path / "a.jsonl", partitions=3)
    # A consumer killed mid-run, then a restart that reads to the end.
    proc = subprocess.Popen([str(BIN), "stream", "--commit-interval-ms", "300", "--repo", str(repo)],
                            env=stream_env(brokers), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cli(repo, "stream", "--stop-at-end", "--commit-interval-ms", "300", env=stream_env(brokers))
    check_online_equals_offline(repo, tmp_path)
    # More trades, some older than everything so far (late, within the allowed lateness).
    produce(brokers, topic, trades(rng, 1000, now + 1), tmp_path / "b.jsonl", partitions=3)
    cli(repo, "stream", "--stop-at-end", "--commit-interval-ms", "300", env=stream_env(brokers))
    check_online_equals_offline(repo, tmp_path)
    # A materialize backfill over the streamed tiles.
    end = dt.datetime.now(dt.timezone.utc).isoformat()
    cli(repo, "materialize", "2026-01-01T00:00:00Z", end)
    check_online_equals_offline(repo, tmp_path)
