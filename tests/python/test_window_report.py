"""The tile fields of a window view's materialization report (docs/windows.md).

`FeatureStore.materialize_incremental` on a small window view, after a first run, a
DELETE, an UPDATE, an append and an OPTIMIZE of its source: each report gives the exact
tiles written, removed and repaired, the keyed repair (rows removed from the source are
repaired tile by tile) and its note; an OPTIMIZE changes no tile.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import textwrap
import time

import pyarrow as pa
import pyarrow.parquet as pq

import stratalake
from conftest import BIN

MINUTE_US = 60_000_000


def sl(repo, *args):
    return subprocess.run([str(BIN), *args, "--repo", str(repo)], check=True,
                          capture_output=True, text=True)


def table(*args):
    subprocess.run([str(BIN), "table", *args], check=True, capture_output=True, text=True)


def test_the_report_gives_the_tiles_written_removed_and_repaired(tmp_path):
    repo = tmp_path / "repo"
    (repo / "definitions").mkdir(parents=True)
    (repo / "stratalake.yaml").write_text(
        "project: tiles\noffline_store: lake\nonline_store:\n  type: embedded\n  path: online\n"
        "registry: registry.db\ndefinitions: [definitions]\n")
    # Windows of 10m and 1h: buckets of 1 minute, (k min, k + 1 min].
    (repo / "definitions" / "w.yaml").write_text(textwrap.dedent("""\
        entities:
          - name: account
            join_keys: [{name: account_id, type: int64}]
        sources:
          - name: trades
            path: silver/trades
            timestamp_field: ts
            schema:
              - {name: account_id, type: int64}
              - {name: ts, type: timestamp}
              - {name: price, type: float64}
        feature_views:
          - name: w
            entities: [account]
            source: trades
            aggregations:
              - {name: n_10m, function: count, column: price, window: 10m}
              - {name: sum_1h, function: sum, column: price, window: 1h}
        """))
    # Events of the last 20 minutes (tile GC, at the system clock, keeps the last hour).
    base = (time.time_ns() // 1000 // MINUTE_US - 20) * MINUTE_US

    def write(rows, name):
        pq.write_table(pa.table({
            "account_id": pa.array([r[0] for r in rows], pa.int64()),
            "ts": pa.array([base + r[1] for r in rows], pa.timestamp("us", "UTC")),
            "price": pa.array([r[2] for r in rows], pa.float64()),
        }), tmp_path / name)
        sl(repo, "ingest", "trades", str(tmp_path / name))

    sl(repo, "apply")
    s = 1_000_000
    # Account 1: three buckets; account 2: two events in one bucket; account 3: one
    # event at a bucket's end (5 min: bucket 4). Five tiles.
    write([(1, 30 * s, 1.0), (1, 90 * s, 2.0), (1, 150 * s, 3.0),
           (2, 30 * s, 4.0), (2, 40 * s, 5.0), (3, 300 * s, 6.0)], "a.parquet")
    store = stratalake.FeatureStore(str(repo))
    end = dt.datetime.fromtimestamp((base + 30 * MINUTE_US) / 1e6, dt.timezone.utc)
    source = str(repo / "lake" / "silver" / "trades")

    def run():
        views = store.materialize_incremental(end, progress=False)
        assert [v["view"] for v in views] == ["w"]
        return views[0]

    first = run()
    assert first["incremental"] is False and first["rebuilt"] is False
    assert first["tiles_written"] == 5
    assert (first["tiles_deleted"], first["tiles_collected"], first["tile_retries"]) == (0, 0, 0)
    assert (first["keyed_repair"], first["keys_repaired"], first["tiles_repaired"]) == (False, 0, 0)
    assert (first["rows_removed"], first["files_rewritten"], first["note"]) == (0, 0, "")

    # DELETE account 2: its one tile is recomputed from the source, and removed.
    table("delete", source, "--where", "account_id = 2")
    deleted = run()
    v = deleted["from_version"]
    assert deleted["incremental"] is True and deleted["rebuilt"] is False
    assert deleted["keyed_repair"] is True
    assert (deleted["keys_repaired"], deleted["tiles_repaired"]) == (1, 1)
    assert (deleted["tiles_written"], deleted["tiles_deleted"]) == (0, 1)
    assert deleted["rows_removed"] == 2  # the rewritten file's other rows cancel out
    assert deleted["note"] == (f"1 data file(s) removed since version {v}: 2 row(s) gone, "
                               "1 key(s) in 1 tile(s) recomputed from the source")

    # UPDATE one event of account 1: its tile only.
    table("update", source, "--set", "price = 20.0", "--where", "account_id = 1 AND price = 2.0")
    updated = run()
    assert updated["keyed_repair"] is True
    assert (updated["keys_repaired"], updated["tiles_repaired"], updated["rows_removed"]) == (1, 1, 1)
    assert (updated["tiles_written"], updated["tiles_deleted"]) == (1, 0)

    # An append (a new tile for account 3), then an OPTIMIZE: no tile changes.
    write([(3, 390 * s, 7.0)], "b.parquet")
    appended = run()
    assert (appended["incremental"], appended["keyed_repair"]) == (True, False)
    assert (appended["tiles_written"], appended["files_read"]) == (1, 1)
    table("optimize", source)
    optimized = run()
    assert optimized["incremental"] is True and optimized["rebuilt"] is False
    assert optimized["keyed_repair"] is False
    assert (optimized["files_rewritten"], optimized["tiles_written"], optimized["files_read"]) == (2, 0, 0)
    assert optimized["note"] == (
        f"2 data file(s) rewritten with the same rows since version {optimized['from_version']} "
        "(dataChange=false: OPTIMIZE): no tile changed")
    online = store.get_online_features(["w:n_10m", "w:sum_1h"],
                                       entities={"account_id": [1, 2, 3]}).to_dict()
    assert online["sum_1h"] == [24.0, None, 13.0]
