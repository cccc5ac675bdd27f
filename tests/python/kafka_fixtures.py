"""The Kafka set-up that tests/python/test_stream_kafka.py, test_windows_kafka.py and
bench/stream_bench.py share: a throwaway broker (scripts/kafka.sh) and a feature repository
with one kafka source `trades` (entity `account`).

The bench imports it with tests/python on sys.path (as bench/s3_bench.py does)."""
from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import textwrap
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "scripts" / "kafka.sh"

# The trades of test_stream_kafka and the bench: `price` is read from the field `px`.
TRADES_SCHEMA = [("account_id", "int64"), ("ts", "timestamp"), ("seq", "int64"),
                 ("price", "float64"), ("side", "string")]
TRADES_COLUMNS = {"price": "px"}
# The online view both read back: the last price and side per account.
LAST_TRADE_VIEW = """\
feature_views:
  - name: last_trade
    entities: [account]
    source: trades
    features:
      - {name: price, type: float64}
      - {name: side, type: string}
"""


def start_broker(folder: str | Path) -> str:
    """Starts a broker in `folder` (on a free port); its bootstrap address."""
    return subprocess.run(["bash", str(KAFKA_SH), "start", str(folder)], check=True,
                          capture_output=True, text=True).stdout.strip()


def restart_broker(folder: str | Path) -> None:
    subprocess.run(["bash", str(KAFKA_SH), "restart", str(folder)], check=True,
                   capture_output=True)


def stop_broker(folder: str | Path) -> None:
    subprocess.run(["bash", str(KAFKA_SH), "stop", str(folder)], check=False)


@contextlib.contextmanager
def running_broker(address: str = "", prefix: str = "kafka-test-") -> Iterator[str]:
    """`address` when given (a broker someone else runs, e.g. the suite's
    STRATALAKE_TEST_KAFKA_BROKERS), else a broker of its own for the duration."""
    if address:
        yield address
        return
    folder = tempfile.mkdtemp(prefix=prefix)
    try:
        yield start_broker(folder)
    finally:
        stop_broker(folder)


def suite_brokers() -> str:
    """The suite's broker (scripts/run_tests.sh exports it), or "" when run alone."""
    return os.environ.get("STRATALAKE_TEST_KAFKA_BROKERS", "")


def write_kafka_repo(path: Path, *, project: str, topic: str, brokers_var: str,
                     lateness: str, views: str, schema=TRADES_SCHEMA,
                     columns: dict[str, str] | None = None) -> Path:
    """Writes (does not apply) a repository at `path`: an embedded online store, entity
    `account` (join key account_id), kafka source `trades` (bronze/trades, event time `ts`,
    `schema` as (name, type) pairs, brokers from ${`brokers_var`}, fields `columns` maps,
    `lateness` allowed) and the feature views of `views` (YAML, from `feature_views:`)."""
    (path / "definitions").mkdir(parents=True)
    (path / "stratalake.yaml").write_text(textwrap.dedent(f"""\
        project: {project}
        offline_store: lake
        online_store: {{type: embedded, path: .stratalake/online}}
        registry: .stratalake/registry.db
        definitions: [definitions]
        """))
    fields = "".join(f"      - {{name: {n}, type: {t}}}\n" for n, t in schema)
    mapped = ""
    if columns:
        pairs = ", ".join(f"{k}: {v}" for k, v in columns.items())
        mapped = f"      columns: {{{pairs}}}\n"
    (path / "definitions" / "defs.yaml").write_text(
        "entities:\n"
        "  - name: account\n"
        "    join_keys: [{name: account_id, type: int64}]\n"
        "sources:\n"
        "  - name: trades\n"
        "    type: kafka\n"
        "    path: bronze/trades\n"
        "    timestamp_field: ts\n"
        "    schema:\n"
        f"{fields}"
        "    kafka:\n"
        f"      brokers: ${{{brokers_var}}}\n"
        f"      topic: {topic}\n"
        f"{mapped}"
        f"      allowed_lateness: {lateness}\n"
        f"{views}")
    return path
