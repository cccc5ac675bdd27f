"""The offline window join under a small memory budget (docs/windows.md "Offline").

`stratalake get-historical` on a window view with `--memory-budget 65536` (the events
spill to disk, the entity rows are matched in slices) writes the same values, bit for
bit, as without a budget; counts and integer sums also equal a brute-force answer.
"""

from __future__ import annotations

import subprocess
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from conftest import BIN

BASE_US = 1_780_272_000_000_000  # 2026-06-01T00:00:00Z


def cli(repo, *args):
    return subprocess.run([str(BIN), *args, "--repo", str(repo)], check=True,
                          capture_output=True, text=True)


def test_a_spilled_window_join_equals_the_in_memory_one(tmp_path):
    rng = np.random.default_rng(3)
    n, keys, rows = 40_000, 500, 8_000
    span = 6 * 3600 * 1_000_000
    key = rng.integers(0, keys, n)
    ts = rng.integers(0, span, n)
    ts[: n // 4] -= ts[: n // 4] % 1_000_000  # ties on whole seconds
    price = np.round(100 + rng.standard_normal(n), 6)
    size = rng.integers(1, 100, n)
    nulls = rng.random(n) < 0.02
    pq.write_table(pa.table({
        "account_id": pa.array(key),
        "ts": pa.array(BASE_US + ts, type=pa.timestamp("us", tz="UTC")),
        "price": pa.array(np.where(nulls, 0, price), mask=nulls),
        "size": pa.array(size),
    }), tmp_path / "events.parquet")
    ekey = rng.integers(0, keys + 10, rows)  # some keys without events
    ets = rng.integers(0, span + 3600 * 1_000_000, rows)
    pick = rng.integers(0, n, rows // 5)
    ekey[: rows // 5], ets[: rows // 5] = key[pick], ts[pick]  # an event exactly at t
    pq.write_table(pa.table({
        "account_id": pa.array(ekey),
        "event_timestamp": pa.array(BASE_US + ets, type=pa.timestamp("us", tz="UTC")),
    }), tmp_path / "entities.parquet")

    repo = tmp_path / "repo"
    (repo / "definitions").mkdir(parents=True)
    (repo / "stratalake.yaml").write_text(
        "project: spill\noffline_store: lake\nregistry: .stratalake/registry.db\n"
        "definitions:\n  - definitions\n")
    (repo / "definitions" / "w.yaml").write_text(textwrap.dedent("""\
        entities:
          - name: account
            join_keys: [{name: account_id, type: int64}]
        sources:
          - name: trades
            path: bronze/trades
            timestamp_field: ts
            schema:
              - {name: account_id, type: int64, nullable: false}
              - {name: ts, type: timestamp, nullable: false}
              - {name: price, type: float64}
              - {name: size, type: int64}
        feature_views:
          - name: w
            entities: [account]
            source: trades
            online: false
            aggregations:
              - {name: n_5m, function: count, column: price, window: 5m}
              - {name: vol_1h, function: sum, column: size, window: 1h}
              - {name: mean_1h, function: mean, column: price, window: 1h}
              - {name: std_1h, function: stddev, column: price, window: 1h}
              - {name: p50_5m, function: percentile, column: price, window: 5m, percentile: 0.5}
        """))
    cli(repo, "apply", "--message", "spill")
    cli(repo, "ingest", "trades", str(tmp_path / "events.parquet"))

    def historical(out, *extra):
        cli(repo, "get-historical", "--entities", str(tmp_path / "entities.parquet"),
            "--features", "w", "--output", str(out), *extra)
        return pq.read_table(out)

    in_memory = historical(tmp_path / "a.parquet")
    spilled = historical(tmp_path / "b.parquet", "--memory-budget", "65536")
    assert spilled.num_rows == rows
    for name in ["n_5m", "vol_1h", "mean_1h", "std_1h", "p50_5m"]:
        assert spilled.column(name).equals(in_memory.column(name)), name

    # Brute force for the exact ones: count over (t - 5m, t], integer sum over (t - 1h, t].
    t_all = BASE_US + ts
    for r in range(0, rows, 97):
        k, t = ekey[r], BASE_US + ets[r]
        mine = key == k
        in5 = mine & (t_all > t - 300_000_000) & (t_all <= t)
        in60 = mine & (t_all > t - 3_600_000_000) & (t_all <= t)
        assert spilled.column("n_5m")[r].as_py() == int(np.count_nonzero(in5 & ~nulls))
        want = int(size[in60].sum()) if in60.any() else None
        got = spilled.column("vol_1h")[r].as_py()
        assert (got if got is None else int(got)) == want, r
