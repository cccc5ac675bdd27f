"""`stratalake stream` against a real Apache Kafka broker (scripts/kafka.sh): exactly-once
appends to the bronze Delta table across SIGKILLs of the consumer while a producer writes,
dead letters with their reasons, online values, and a clean stop on SIGTERM.

`make test` (scripts/run_tests.sh) starts the broker and exports its address in
STRATALAKE_TEST_KAFKA_BROKERS; run alone, this module starts (and stops) one itself."""
from __future__ import annotations

import base64
import collections
import datetime as dt
import json
import os
import pty
import socket
import struct
import urllib.request
import random
import re
import select
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import BIN
from kafka_fixtures import (LAST_TRADE_VIEW, TRADES_COLUMNS, restart_broker, running_broker,
                            start_broker, stop_broker, suite_brokers, write_kafka_repo)


@pytest.fixture(scope="module")
def brokers():
    with running_broker(suite_brokers()) as address:
        yield address


def make_repo(path: Path, topic: str, lateness: str = "1m") -> Path:
    write_kafka_repo(path, project="trades", topic=topic, brokers_var="TEST_BROKERS",
                     lateness=lateness, columns=TRADES_COLUMNS, views=LAST_TRADE_VIEW)
    cli(path, "apply")
    return path


def cli(repo: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN), *args, "--repo", str(repo)], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 0, f"stratalake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def get_online(repo: Path, entities: str) -> list[dict] | None:
    """The online values of last_trade, or None while the stream has not opened the store."""
    proc = subprocess.run([str(BIN), "get-online", "--features", "last_trade", "--entity",
                           entities, "--json", "--repo", str(repo)], capture_output=True,
                          text=True)
    if proc.returncode != 0 and "has not been written yet" in proc.stderr:
        return None
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["results"]


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def produce(brokers: str, topic: str, lines: list[str], path: Path, partitions: int = 1) -> None:
    path.write_text("".join(line + "\n" for line in lines))
    proc = subprocess.run([str(BIN), "stream", "produce", str(path), "--topic", topic,
                           "--brokers", brokers, "--partitions", str(partitions), "--key",
                           "account_id", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"produced": sum(1 for line in lines if line)}


def stream_env(brokers: str) -> dict:
    return {**os.environ, "TEST_BROKERS": brokers}


def run_to_end(repo: Path, brokers: str) -> dict:
    proc = cli(repo, "stream", "--stop-at-end", "--commit-interval-ms", "200", "--json",
               env=stream_env(brokers))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def read_table(repo: Path, name: str, tmp: Path) -> list[dict]:
    out = tmp / (name.replace("/", "_") + ".parquet")
    subprocess.run([str(BIN), "table", "read", str(repo / "lake" / name), "--output", str(out)],
                   check=True, capture_output=True)
    return pq.read_table(out).to_pylist()


def trade(i: int, seconds: int | None = None) -> str:
    ts = 1_767_225_600 + (i if seconds is None else seconds)  # 2026-01-01 + i s
    return json.dumps({"account_id": i % 50, "ts": ts, "seq": i, "px": 100.0 + i,
                       "side": "buy" if i % 2 else "sell"})


def test_exactly_once_across_sigkill_while_producing(brokers, tmp_path):
    """20 SIGKILLs of the consumer at random points (start-up, reading, committing) while
    20,000 messages arrive in 40 batches over 3 partitions: afterwards bronze holds each
    message exactly once, at its offset. The kill points, commit intervals and batch sizes
    come from a seed that is printed (and in every assertion message); rerun a failure with
    STRATALAKE_TEST_SEED=<seed>."""
    seed = int(os.environ.get("STRATALAKE_TEST_SEED") or random.randrange(1 << 32))
    print(f"exactly-once seed: {seed} (rerun with STRATALAKE_TEST_SEED={seed})")
    why = f"seed {seed}"
    topic = "trades-" + uuid.uuid4().hex[:8]
    repo = make_repo(tmp_path / "repo", topic)
    n, batches = 20_000, 40
    per = n // batches
    produce(brokers, topic, [trade(i) for i in range(per)], tmp_path / "b0.jsonl", partitions=3)
    rng = random.Random(seed)
    pauses = [rng.uniform(0.0, 0.3) for _ in range(1, batches)]

    def producer():
        for b in range(1, batches):
            produce(brokers, topic, [trade(i) for i in range(b * per, (b + 1) * per)],
                    tmp_path / f"b{b}.jsonl")
            time.sleep(pauses[b - 1])

    t = threading.Thread(target=producer)
    t.start()
    kills = 0
    try:
        while kills < 20:
            proc = subprocess.Popen([str(BIN), "stream", "--commit-interval-ms",
                                     str(rng.choice([20, 50, 100, 300])), "--max-batch-rows",
                                     str(rng.choice([100, 200, 1000, 5000])), "--repo", str(repo)],
                                    env=stream_env(brokers), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
            time.sleep(rng.uniform(0.05, 1.2))
            assert proc.poll() is None, f"{why}: {proc.stderr.read().decode()}"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
    finally:
        t.join()
    stats = run_to_end(repo, brokers)
    assert stats["quarantined"] == 0, why
    rows = read_table(repo, "bronze/trades", tmp_path)
    seqs = sorted(r["seq"] for r in rows)
    missing = sorted(set(range(n)) - set(seqs))[:10]
    twice = sorted(s for s, k in collections.Counter(seqs).items() if k > 1)[:10]
    assert seqs == list(range(n)), f"{why}: missing {missing}, twice {twice}"  # exactly once
    by_partition: dict[int, list[int]] = {}
    for r in rows:
        by_partition.setdefault(r["_kafka_partition"], []).append(r["_kafka_offset"])
    assert sorted(by_partition) == [0, 1, 2], why
    for offsets in by_partition.values():
        # each offset once, none skipped
        assert sorted(offsets) == list(range(len(offsets))), why
    # A restart with nothing new commits nothing.
    again = run_to_end(repo, brokers)
    assert again["rows_committed"] == 0 and again["messages"] == 0, why
    assert len(read_table(repo, "bronze/trades", tmp_path)) == n, why


def committed_rows(repo: Path) -> int:
    """The rows the bronze table's Delta log says were committed (numOutputRows)."""
    log = repo / "lake" / "bronze" / "trades" / "_delta_log"
    total = 0
    if log.is_dir():
        for f in log.glob("*.json"):
            for line in f.read_text().splitlines():
                info = json.loads(line).get("commitInfo")
                if info:
                    total += int(info.get("operationMetrics", {}).get("numOutputRows", 0))
    return total


def test_a_failed_commit_stops_the_stream_and_a_restart_loses_nothing(brokers, tmp_path):
    """The Delta commit runs on its own thread while the next messages are read and written
    online on others (docs/streaming.md, "The pipeline"). When a commit fails (here: the bronze
    table's _delta_log folder is replaced by a file), the stream stops with that error and a
    non-zero exit; once the folder is back, a restart commits every message exactly once (the
    failed batch included) and the online values are the last ones."""
    topic = "fail-" + uuid.uuid4().hex[:8]
    repo = make_repo(tmp_path / "repo", topic)
    produce(brokers, topic, [trade(i) for i in range(1000)], tmp_path / "a.jsonl", partitions=2)
    proc = subprocess.Popen([str(BIN), "stream", "--commit-interval-ms", "100", "--json",
                             "--repo", str(repo)], env=stream_env(brokers),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 90
        while committed_rows(repo) < 1000:
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() < deadline, committed_rows(repo)
            time.sleep(0.1)
        assert committed_rows(repo) == 1000
        log = repo / "lake" / "bronze" / "trades" / "_delta_log"
        log.rename(log.with_name("_delta_log.away"))
        log.write_text("not a folder\n")
        produce(brokers, topic, [trade(i) for i in range(1000, 1500)], tmp_path / "b.jsonl")
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, (out, err)
    assert "kafka source 'trades', partition " in err, err
    assert "_delta_log" in err and "the stream stopped; nothing after the last commit" in err, err
    log.unlink()
    log.with_name("_delta_log.away").rename(log)
    assert committed_rows(repo) == 1000  # nothing of the failed batch
    stats = run_to_end(repo, brokers)
    assert stats["messages"] == 500 and stats["rows_committed"] == 500, stats
    rows = read_table(repo, "bronze/trades", tmp_path)
    assert sorted(r["seq"] for r in rows) == list(range(1500))  # exactly once
    # trade(i): account i % 50, price 100 + i: the last of account 7 is message 1457.
    results = get_online(repo, "account_id=7")
    assert results[1]["values"] == [100.0 + 1457]


def test_dead_letters_keep_the_message_and_say_why(brokers, tmp_path):
    topic = "dead-" + uuid.uuid4().hex[:8]
    repo = make_repo(tmp_path / "repo", topic, lateness="1m")
    lines = [
        trade(1, seconds=600),                                              # 0 ok
        "not json {",                                                       # 1 bad JSON
        "[1, 2]",                                                           # 2 not an object
        json.dumps({"account_id": "seven", "ts": 1_767_225_700, "px": 1.0}),  # 3 wrong type
        json.dumps({"account_id": 7, "ts": "yesterday", "px": 1.0}),        # 4 bad timestamp
        json.dumps({"ts": 1_767_225_700, "px": 1.0}),                       # 5 no key
        json.dumps({"account_id": 7, "px": 1.0}),                           # 6 no time
        trade(1, seconds=600 - 61),                                         # 7 late by 61 s
        trade(1, seconds=600 - 60),                                         # 8 late by 60 s: ok
        json.dumps({"account_id": 7, "ts": 1_767_225_700, "px": "1.5"}),    # 9 px a string
        trade(2, seconds=700),                                              # 10 ok
        "",                                                                 # (not sent)
        "{}",                                                               # 11 no time, no key
    ]
    produce(brokers, topic, lines, tmp_path / "in.jsonl")
    stats = run_to_end(repo, brokers)
    # One commit of dead letters, one of rows (each with the partition's last offset).
    assert stats == {"messages": 12, "rows_committed": 3, "quarantined": 9, "online_rows": 3,
                     "commits": 2}
    dead = sorted(read_table(repo, "quarantine/trades_dead_letters", tmp_path),
                  key=lambda r: r["kafka_offset"])
    assert [r["kafka_offset"] for r in dead] == [1, 2, 3, 4, 5, 6, 7, 9, 11]
    assert all(r["kafka_topic"] == topic and r["kafka_partition"] == 0 for r in dead)
    assert [r["raw_value"] for r in dead] == \
        [lines[i].encode() for i in [1, 2, 3, 4, 5, 6, 7, 9, 12]]
    reasons = [r["reason"] for r in dead]
    assert reasons[0].startswith("bad JSON: ")
    assert reasons[1] == "bad JSON: the message is an array, not an object"
    assert reasons[2] == "wrong type: field 'account_id': expected a number for int64, got a string"
    assert reasons[3] == "wrong type: field 'ts': value 'yesterday' is not a valid timestamp"
    assert reasons[4] == "missing key: no value for 'account_id'"
    assert reasons[5] == "missing event time: no value for 'ts'"
    assert reasons[6] == ("late: event time 2026-01-01T00:08:59.000000Z is 1m1s before the newest "
                          "event time of its partition (2026-01-01T00:10:00.000000Z); allowed "
                          "lateness is 1m")
    assert reasons[7] == "wrong type: field 'px': expected a number for double, got a string"
    assert reasons[8] == "missing key: no value for 'account_id'"  # keys are checked first
    assert sorted(r["_kafka_offset"] for r in read_table(repo, "bronze/trades", tmp_path)) == \
        [0, 8, 10]
    # A restart reads nothing again, not even the trailing dead letter: the rows' commit
    # carries the partition's last offset, 11.
    assert run_to_end(repo, brokers)["messages"] == 0
    # A message that only dead letters follow: an empty bronze commit moves the position.
    produce(brokers, topic, ["still not json"], tmp_path / "more.jsonl")
    assert run_to_end(repo, brokers) == {"messages": 1, "rows_committed": 0, "quarantined": 1,
                                         "online_rows": 0, "commits": 2}
    assert run_to_end(repo, brokers)["messages"] == 0
    assert len(read_table(repo, "quarantine/trades_dead_letters", tmp_path)) == 10
    assert len(read_table(repo, "bronze/trades", tmp_path)) == 3


def test_values_decode_as_ingestion_converts_them(brokers, tmp_path):
    """Common JSON values go straight into typed columns, the rest through their text and
    ingestion's conversion, in one batch: both give the values (and the reasons) that the
    text path alone gave before (checked against it when the direct path was added)."""
    topic = "values-" + uuid.uuid4().hex[:8]
    repo = make_repo(tmp_path / "repo", topic, lateness="1000000d")
    lines = [
        '{"account_id": 1, "ts": 1767225600.5, "seq": 1, "px": 5, "side": "buy"}',
        '{"account_id": 2, "ts": "2026-01-01T00:00:01.25Z", "seq": 2, "px": 1.1, "side": "s"}',
        '{"account_id": 3, "ts": 1767225602, "seq": 3.0, "px": 1, "side": ""}',
        '{"account_id": 4, "ts": "2026-01-01 00:00:03", "seq": -9223372036854775808, '
        '"px": 0.1e-300, "side": "\\u00e9"}',
        '{"account_id": 5, "ts": 1767225604, "seq": 18446744073709551615, "px": 1}',
        '{"account_id": 6, "ts": "NA", "seq": 6, "px": 1e308, "side": "x"}',
        '{"account_id": 7.5, "ts": 1767225606, "seq": 7, "px": 2, "side": "x"}',
        '{"account_id": 8, "ts": 1767225607.123456789, "seq": 8, "px": 3.141592653589793238}',
        '{"account_id": 9, "ts": -1.5, "seq": 9, "px": 12345678901234567890, "side": "x"}',
        '{"account_id": 12, "ts": "2026-01-01T00:00:12+01:00", "seq": 1e3, "px": 1}',
    ]
    produce(brokers, topic, lines, tmp_path / "in.jsonl")
    assert run_to_end(repo, brokers)["rows_committed"] == 5
    utc = dt.timezone.utc
    rows = sorted(read_table(repo, "bronze/trades", tmp_path), key=lambda r: r["_kafka_offset"])
    assert [(r["account_id"], r["ts"], r["seq"], r["price"], r["side"]) for r in rows] == [
        (1, dt.datetime(2026, 1, 1, 0, 0, 0, 500000, utc), 1, 5.0, "buy"),
        (2, dt.datetime(2026, 1, 1, 0, 0, 1, 250000, utc), 2, 1.1, "s"),
        (4, dt.datetime(2026, 1, 1, 0, 0, 3, tzinfo=utc), -9223372036854775808,
         9.999999999999999e-302, "\u00e9"),
        (8, dt.datetime(2026, 1, 1, 0, 0, 7, 123457, utc), 8, 3.141592653589793, None),
        (9, dt.datetime(1969, 12, 31, 23, 59, 58, 500000, utc), 9, 1.2345678901234567e19, "x"),
    ]
    dead = sorted(read_table(repo, "quarantine/trades_dead_letters", tmp_path),
                  key=lambda r: r["kafka_offset"])
    assert [(r["kafka_offset"], r["reason"]) for r in dead] == [
        (2, "wrong type: field 'seq': value '3.0' is not a valid int64"),
        (4, "wrong type: field 'seq': value '18446744073709551615' is out of range for int64"),
        (5, "missing event time: no value for 'ts'"),
        (6, "wrong type: field 'account_id': value '7.5' is not a valid int64"),
        (9, "wrong type: field 'seq': value '1000.0' is not a valid int64"),
    ]


def avro_long(v: int) -> bytes:
    """Avro's zig-zag varint (written here from the specification: no Avro library in
    the test environment)."""
    u = (v << 1) ^ (v >> 63)
    out = bytearray()
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


AVRO_TRADE = {"type": "record", "name": "Trade", "fields": [
    {"name": "account_id", "type": "long"},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "seq", "type": "long"},
    {"name": "px", "type": "double"},
    {"name": "side", "type": ["null", "string"]}]}


def avro_trade(i: int) -> bytes:
    side = b"buy" if i % 2 else b"sell"
    return (avro_long(i % 50) + avro_long((1_767_225_600 + i) * 1_000_000 + 250) +
            avro_long(i) + struct.pack("<d", 100.0 + i) + avro_long(1) + avro_long(len(side)) +
            side)


@pytest.mark.parametrize("framing", ["avro", "avro-confluent"])
def test_avro_messages_with_a_schema_file(brokers, tmp_path, framing):
    """format: avro (a bare datum) and avro-confluent (after Confluent's 5-byte header), the
    record schema in a file of the repository: rows as from JSON, bad data to dead letters."""
    topic = "avro-" + uuid.uuid4().hex[:8]
    repo = make_repo(tmp_path / "repo", topic)
    (repo / "schemas").mkdir()
    (repo / "schemas" / "trade.avsc").write_text(json.dumps(AVRO_TRADE))
    defs = repo / "definitions" / "defs.yaml"
    defs.write_text(defs.read_text().replace(
        "      columns: {price: px}\n",
        f"      columns: {{price: px}}\n      format: {framing}\n"
        "      avro_schema_file: schemas/trade.avsc\n"))
    cli(repo, "apply")
    header = b"\0\0\0\0\x07" if framing == "avro-confluent" else b""
    messages = [header + avro_trade(i) for i in range(20)]
    messages.insert(5, header + avro_trade(99)[:-2])           # offset 5: truncated
    messages.insert(9, header + avro_trade(98) + b"\x00")      # offset 9: a byte too many
    lines = tmp_path / "in.b64"
    lines.write_text("".join(base64.b64encode(m).decode() + "\n" for m in messages))
    proc = subprocess.run([str(BIN), "stream", "produce", str(lines), "--base64", "--topic", topic,
                           "--brokers", brokers, "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"produced": 22}
    assert run_to_end(repo, brokers) == {"messages": 22, "rows_committed": 20, "quarantined": 2,
                                         "online_rows": 20, "commits": 2}
    rows = sorted(read_table(repo, "bronze/trades", tmp_path), key=lambda r: r["seq"])
    utc = dt.timezone.utc
    assert [(r["account_id"], r["ts"], r["seq"], r["price"], r["side"]) for r in rows] == [
        (i % 50, dt.datetime(2026, 1, 1, tzinfo=utc) + dt.timedelta(seconds=i, microseconds=250),
         i, 100.0 + i, "buy" if i % 2 else "sell") for i in range(20)]
    dead = sorted(read_table(repo, "quarantine/trades_dead_letters", tmp_path),
                  key=lambda r: r["kafka_offset"])
    n = len(header) + len(avro_trade(98))
    assert [(r["kafka_offset"], r["reason"], r["raw_value"]) for r in dead] == [
        (5, f"bad Avro: field 'side': the datum ends too early (after "
            f"{len(avro_trade(99)) - 2} bytes)", messages[5]),
        (9, f"bad Avro: 1 bytes after the record's end (at byte {n - len(header)}): is the "
            "message of another schema?", messages[9]),
    ]
    assert get_online(repo, "account_id=19")[1]["values"] == [119.0]
    # A column whose field the schema lacks is refused at start, with the fields named.
    (repo / "schemas" / "trade.avsc").write_text(json.dumps(
        {**AVRO_TRADE, "fields": [f for f in AVRO_TRADE["fields"] if f["name"] != "seq"]}))
    proc = subprocess.run([str(BIN), "stream", "--stop-at-end", "--repo", str(repo)],
                          capture_output=True, text=True, env=stream_env(brokers))
    assert proc.returncode != 0
    assert ("kafka source 'trades': column 'seq' reads field 'seq', which its avro_schema_file "
            f"{repo / 'schemas' / 'trade.avsc'} does not have (its fields: account_id, ts, px, "
            "side); map it with kafka.columns") in proc.stderr


def test_online_values_and_a_clean_stop_on_sigterm(brokers, tmp_path):
    """Events are online while the stream runs (newest event time wins); SIGTERM commits what
    was read and exits 0."""
    topic = "online-" + uuid.uuid4().hex[:8]
    repo = make_repo(tmp_path / "repo", topic)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        metrics_port = s.getsockname()[1]
    proc = subprocess.Popen([str(BIN), "stream", "trades", "--commit-interval-ms", "60000",
                             "--metrics-port", str(metrics_port), "--json", "--repo", str(repo)],
                            env=stream_env(brokers),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = [json.dumps({"account_id": a, "ts": 1_767_225_600 + s, "seq": s, "px": p,
                         "side": side})
             for a, s, p, side in [(1, 10, 1.5, "buy"), (2, 20, 2.5, "sell"),
                                   (1, 30, 3.5, "sell"), (1, 25, 9.9, "buy")]]
    produce(brokers, topic, lines, tmp_path / "in.jsonl")

    def online():
        return get_online(repo, "account_id=1,2,3")

    def done(results):
        return results is not None and results[1]["values"] == [3.5, 2.5, None]

    deadline = time.time() + 30
    while not done(online()):
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, online()
        time.sleep(0.2)
    results = online()
    assert results[1]["values"] == [3.5, 2.5, None]  # account 1: event at +30 s, not +25 s
    assert results[2]["values"] == ["sell", "sell", None]
    # Nothing is durable yet (the commit interval is a minute)...
    assert not (repo / "lake" / "bronze" / "trades" / "_delta_log").exists()
    # ...which the metrics say too: 4 read, none committed, nothing left to read.
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    while 'stratalake_stream_messages_total{source="trades"} 4\n' not in (text := fetch(url)):
        assert time.time() < deadline, text
        time.sleep(0.2)
    assert 'stratalake_stream_rows_committed_total{source="trades"} 0\n' in text
    assert 'stratalake_stream_online_rows_total{source="trades"} 4\n' in text
    assert 'stratalake_stream_quarantined_total{source="trades"} 0\n' in text
    assert 'stratalake_stream_lag{source="trades",partition="0"} 0\n' in text
    assert "# TYPE stratalake_stream_rows_per_second gauge\n" in text
    # Nothing committed yet: no batch latency; the online write latency of the polls.
    assert "stratalake_stream_batch_latency_seconds_count 0\n" in text
    assert 'stratalake_stream_batch_latency_seconds_bucket{le="+Inf"} 0\n' in text
    assert "# TYPE stratalake_stream_online_latency_seconds histogram\n" in text
    assert_prometheus(text)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["rows_committed"] == 4
    # ...and after the stop every acknowledged message is.
    rows = read_table(repo, "bronze/trades", tmp_path)
    assert sorted(r["seq"] for r in rows) == [10, 20, 25, 30]
    assert run_to_end(repo, brokers)["messages"] == 0


def assert_prometheus(text: str) -> None:
    """Every line of `text` is a comment (# HELP / # TYPE) or a sample `name{labels} value`
    of a declared metric, and histogram buckets are cumulative and end in +Inf = _count."""
    declared: dict[str, str] = {}
    buckets: dict[str, list[float]] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            declared[name] = kind
            continue
        if line.startswith("# HELP "):
            continue
        m = re.fullmatch(r'([a-z_:][a-z0-9_:]*)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (\S+)',
                         line)
        assert m, f"not a Prometheus sample: {line!r}"
        name, value = m.group(1), float(m.group(4))
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in declared or declared.get(base) == "histogram", f"undeclared: {line!r}"
        # One histogram per set of labels other than le.
        labels = re.sub(r',?le="[^"]*"', "", m.group(2) or "").replace("{,", "{")
        series = base + ("" if labels == "{}" else labels)
        if name.endswith("_bucket") and declared.get(base) == "histogram":
            assert 'le="' in (m.group(2) or ""), line
            buckets.setdefault(series, []).append(value)
        if name.endswith("_count") and declared.get(base) == "histogram":
            counts[series] = value
    assert buckets, "no histograms"
    for series, values in buckets.items():
        assert values == sorted(values), f"{series}: buckets not cumulative: {values}"
        assert values[-1] == counts[series], series


def test_serve_with_the_stream_inside_serves_it_and_its_metrics(brokers, tmp_path):
    """`stratalake serve --stream`: one process serves /get-online-features and runs the
    stream; the server's /metrics has the server's metrics and the stream's."""
    topic = "serve-" + uuid.uuid4().hex[:8]
    repo = make_repo(tmp_path / "repo", topic)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(BIN), "serve", "--port", str(port), "--stream",
                             "--commit-interval-ms", "100", "--repo", str(repo)],
                            env=stream_env(brokers), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = [trade(i) for i in range(100)] + ["not json"]
        produce(brokers, topic, lines, tmp_path / "in.jsonl", partitions=2)

        def post_online() -> list | None:
            body = json.dumps({"features": ["last_trade:price"],
                               "entities": {"account_id": [49, 7]}}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features", body,
                                         {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return json.loads(r.read())["results"][1]["values"]
            except OSError:
                return None

        deadline = time.time() + 60
        url = f"http://127.0.0.1:{port}/metrics"
        while True:
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() < deadline, post_online()
            values = post_online()
            if values is not None and None not in values and \
                    [float(v) for v in values] == [199.0, 157.0]:
                text = fetch(url)
                if 'stratalake_stream_rows_committed_total{source="trades"} 100\n' in text and \
                        'stratalake_stream_quarantined_total{source="trades"} 1\n' in text:
                    break
            time.sleep(0.2)
        # The server's own metrics and the stream's, in one valid exposition.
        assert "# TYPE stratalake_requests_total counter\n" in text
        assert 'stratalake_stream_messages_total{source="trades"} 101\n' in text
        assert 'stratalake_stream_online_rows_total{source="trades"} 100\n' in text
        assert 'stratalake_stream_lag{source="trades",partition="0"} 0\n' in text
        assert 'stratalake_stream_lag{source="trades",partition="1"} 0\n' in text
        count = re.search(r"^stratalake_stream_batch_latency_seconds_count (\d+)$", text, re.M)
        assert count and int(count.group(1)) >= 1, text
        assert_prometheus(text)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    rows = read_table(repo, "bronze/trades", tmp_path)
    assert sorted(r["seq"] for r in rows) == list(range(100))


def test_a_live_status_line_on_a_terminal_only(brokers, tmp_path):
    """On a terminal the stream redraws one status line on stderr (read, committed,
    quarantined, online, lag, rows/s, last commit, batch p99); elsewhere it prints none."""
    topic = "tty-" + uuid.uuid4().hex[:8]
    repo = make_repo(tmp_path / "repo", topic)
    produce(brokers, topic, [trade(i) for i in range(50)] + ["oops"], tmp_path / "in.jsonl")
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([str(BIN), "stream", "--commit-interval-ms", "100", "--repo",
                             str(repo)], env=stream_env(brokers), stdout=subprocess.PIPE,
                            stderr=terminal, stdin=subprocess.DEVNULL)
    os.close(terminal)
    seen = b""
    want = re.compile(rb"\r\x1b\[2Kread 51  committed 50  quarantined 1  online 50  lag 0  "
                      rb"\d+ rows/s  last commit \d+ ms  batch p99 \d+ ms")
    try:
        deadline = time.time() + 60
        while not want.search(seen):
            assert proc.poll() is None and time.time() < deadline, seen
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                seen += os.read(controller, 4096)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        os.close(controller)
    assert proc.returncode == 0
    assert out.decode().startswith("stream stopped: read 51  committed 50  quarantined 1")
    # Not a terminal: no status line, only the summary.
    again = subprocess.run([str(BIN), "stream", "--stop-at-end", "--repo", str(repo)],
                           env=stream_env(brokers), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "\x1b[2K" not in again.stderr and "rows/s" not in again.stderr
    assert again.stdout.startswith("stream stopped: read 0  committed 0")


def test_bad_definitions_and_unknown_sources_are_clear_errors(brokers, tmp_path):
    topic = "defs-" + uuid.uuid4().hex[:8]
    repo = make_repo(tmp_path / "repo", topic)
    proc = subprocess.run([str(BIN), "stream", "nope", "--repo", str(repo)], capture_output=True,
                          text=True, env=stream_env(brokers))
    assert proc.returncode != 0
    assert "no kafka source 'nope' in the registry (kafka sources: trades)" in proc.stderr
    # Inside the server: the stream's error stops the server and is its exit status.
    proc = subprocess.run([str(BIN), "serve", "--port", "0", "--stream-sources", "nope",
                           "--repo", str(repo)], capture_output=True, text=True,
                          env=stream_env(brokers), timeout=60)
    assert proc.returncode != 0
    assert "no kafka source 'nope' in the registry (kafka sources: trades)" in proc.stderr
    proc = subprocess.run([str(BIN), "serve", "--port", "0", "--brokers", "x:1", "--repo",
                           str(repo)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "--brokers is an option of --stream" in proc.stderr
    bad = tmp_path / "bad"
    make_repo(bad, topic)
    defs = (bad / "definitions" / "defs.yaml").read_text()
    (bad / "definitions" / "defs.yaml").write_text(
        defs.replace("allowed_lateness: 1m", "allowed_lateness: soon\n      formt: json"))
    proc = subprocess.run([str(BIN), "plan", "--repo", str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "definitions/defs.yaml:20:7: source 'trades' kafka: unknown key 'formt'" in proc.stderr
    assert "definitions/defs.yaml:19:25: source 'trades' kafka:" in proc.stderr


def test_a_broker_restart_loses_nothing(tmp_path):
    """The broker (its own, not the suite's) restarts while the stream runs and while a
    producer writes: the consumer reconnects by itself, and every message before, during and
    after the restart is committed exactly once by the same process."""
    folder = tmp_path / "kafka"
    brokers = start_broker(folder)
    try:
        topic = "restart-" + uuid.uuid4().hex[:8]
        repo = make_repo(tmp_path / "repo", topic)
        produce(brokers, topic, [trade(i) for i in range(2000)], tmp_path / "a.jsonl",
                partitions=2)
        proc = subprocess.Popen([str(BIN), "stream", "--commit-interval-ms", "200", "--json",
                                 "--repo", str(repo)], env=stream_env(brokers),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def online_seq_price(account: int):
            results = get_online(repo, f"account_id={account}")
            return None if results is None else results[1]["values"][0]

        def wait_for_price(account: int, price: float):
            deadline = time.time() + 90
            while online_seq_price(account) != price:
                assert proc.poll() is None, proc.stderr.read()
                assert time.time() < deadline, online_seq_price(account)
                time.sleep(0.2)

        wait_for_price(49, 100.0 + 1999)  # the last message of the first batch
        # One producer (it connects now, while the broker is up) writes 4,000 more messages
        # in 40 slices over about 4 s; the broker restarts in the middle of them. The
        # producer is idempotent and retries, so each is in the topic once.
        producer = subprocess.Popen([str(BIN), "stream", "produce", "-", "--topic", topic,
                                     "--brokers", brokers, "--key", "account_id", "--json"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)

        def write_slices():
            for k in range(40):
                producer.stdin.write("".join(trade(i) + "\n"
                                             for i in range(2000 + k * 100, 2100 + k * 100)))
                producer.stdin.flush()
                time.sleep(0.1)

        writer = threading.Thread(target=write_slices)
        writer.start()
        time.sleep(1.0)
        restart_broker(folder)
        writer.join()
        out, err = producer.communicate(timeout=120)  # closes its stdin: the end
        assert producer.returncode == 0, err
        assert json.loads(out) == {"produced": 4000}
        wait_for_price(49, 100.0 + 5999)  # read after the restart, by the same process
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["rows_committed"] == 6000
        rows = read_table(repo, "bronze/trades", tmp_path)
        assert sorted(r["seq"] for r in rows) == list(range(6000))
    finally:
        stop_broker(folder)
