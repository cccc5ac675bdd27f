"""Incremental runs by Delta version: on random histories of appends, updates and
deletes of a bronze table, every transformation run incrementally after each change
holds exactly the table a full refresh of the same definition gives, for each mode
(full_refresh, append, merge with latest-per-key deduplication) and each on_change
(full_refresh, keys, partitions), for SQL and for Python (pandas, Polars, pyarrow)
transformations. Also: lineage, Python transformations' errors and no-op re-runs, a
result that does not fit the feature views reading the table, and a run killed midway
through a key recomputation."""
from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pytest

import stratalake
from conftest import BIN

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)

# Each transformation X (incremental) has a twin X_full with the same query and mode,
# which the test runs with full_refresh=True: the two tables must be identical.
BODIES = {
    "agg": """
    sql: SELECT day, count(*) AS n, sum(val) AS total FROM bronze.events GROUP BY ALL""",
    "app_refresh": """
    mode: append
    sql: SELECT id, day, val * 2 AS v2, ts FROM bronze.events WHERE val % 3 <> 0""",
    "app_parts": """
    mode: append
    partition_by: [day]
    on_change: partitions
    sql: SELECT id, day, val, ts FROM bronze.events WHERE val > 5""",
    "merge_keys": """
    mode: merge
    keys: [id]
    order_by: ts
    on_change: keys
    sql: SELECT id, day, val, ts FROM bronze.events WHERE val <> 7""",
    "merge_refresh": """
    mode: merge
    keys: [id]
    order_by: ts
    sql: SELECT id, day, val, ts FROM bronze.events WHERE val <> 7""",
}


def definitions() -> str:
    out = "transformations:\n"
    for name, body in BODIES.items():
        for suffix in ("", "_full"):
            out += f"  - name: {name}{suffix}\n    output: silver.{name}{suffix}{body}\n"
    return out


# Python transformations: the same logic as SQL ones, in each frame library.
@stratalake.transformation(output="silver.py_merge", inputs=["bronze.events"], mode="merge",
                           keys=["id"], order_by="ts", on_change="keys")
def py_merge(events):  # pandas
    return events.loc[events["val"] != 7, ["id", "day", "val", "ts"]]


@stratalake.transformation(output="silver.py_append", inputs=["bronze.events"], mode="append",
                           kind="polars")
def py_append(events):
    import polars as pl
    return events.filter(pl.col("val") % 3 != 0).select(
        "id", "day", (pl.col("val") * 2).alias("v2"), "ts")


@stratalake.transformation(output="silver.py_agg", inputs=["bronze.events"], kind="pyarrow",
                           schema=[("day", "string", False), ("n", "int64", True),
                                   ("total", "int64", True)])
def py_agg(events: pa.Table) -> pa.Table:
    t = events.group_by("day").aggregate([("val", "count"), ("val", "sum")])
    return pa.table({"day": t["day"], "n": t["val_count"], "total": t["val_sum"]})


PY_TWINS = {py_merge: "merge_keys_full", py_append: "app_refresh_full", py_agg: "agg_full"}


def make_repo(root: Path) -> Path:
    (root / "definitions").mkdir(parents=True)
    (root / "stratalake.yaml").write_text(
        "project: shop\noffline_store: {path: lake}\ndefinitions: [definitions]\n")
    (root / "definitions" / "pipelines.yaml").write_text(definitions())
    return root


class History:
    """Random changes to bronze.events (partitioned by day). Event times are unique,
    so the latest row per key is well defined."""

    def __init__(self, repo: Path, seed: int):
        self.rng = random.Random(seed)
        self.path = str(repo / "lake" / "bronze" / "events")
        self.clock = 0
        self.log = []

    def append(self, n: int) -> None:
        rows = []
        for _ in range(n):
            self.clock += 1
            rows.append({"id": self.rng.randrange(25), "day": self.rng.choice(["d1", "d2", "d3"]),
                         "val": self.rng.randrange(20), "ts": T0 + dt.timedelta(seconds=self.clock)})
        schema = pa.schema([("id", pa.int64()), ("day", pa.string()), ("val", pa.int64()),
                            ("ts", pa.timestamp("us", tz="UTC"))])
        stratalake.write_deltalake(self.path, pa.Table.from_pylist(rows, schema=schema),
                                   mode="append", partition_by=["day"])
        self.log.append(f"append {n}")

    def step(self) -> None:
        op = self.rng.choice(["append", "append", "update", "delete", "delete_day"])
        table = stratalake.DeltaTable(self.path)
        if op == "append":
            self.append(self.rng.randrange(1, 8))
        elif op == "update":
            pred = f"id = {self.rng.randrange(25)} OR val = {self.rng.randrange(20)}"
            table.update({"val": "val + 1"}, predicate=pred)
            self.log.append(f"update {pred}")
        elif op == "delete":
            pred = f"id = {self.rng.randrange(25)}"
            table.delete(pred)
            self.log.append(f"delete {pred}")
        else:
            pred = f"day = '{self.rng.choice(['d1', 'd2', 'd3'])}' AND val < 6"
            table.delete(pred)
            self.log.append(f"delete {pred}")


def rows(store, table: str):
    result = store.sql(f"SELECT * FROM {table} ORDER BY ALL").to_arrow()
    return result.schema, result.to_pylist()


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_runs_equal_a_full_refresh_on_random_histories(tmp_path: Path, seed: int):
    repo = make_repo(tmp_path / "shop")
    store = stratalake.FeatureStore(repo)
    history = History(repo, seed)
    history.append(30)
    details = {name: set() for name in [*BODIES, *(f.name for f in PY_TWINS)]}
    incremental = [n for n in BODIES]
    for step in range(12):
        if step:
            history.step()
        runs = store.run(*incremental)
        runs += store.run(*PY_TWINS)
        store.run(*(f"{n}_full" for n in BODIES), full_refresh=True)
        for r in runs:
            details[r["name"]].add(r["detail"].split(" (")[0].split(":")[0])
        for name in BODIES:
            got, want = rows(store, f"silver.{name}"), rows(store, f"silver.{name}_full")
            assert got == want, f"seed {seed} step {step} {name} after {history.log}"
        for fn, twin in PY_TWINS.items():
            got, want = rows(store, fn.output), rows(store, f"silver.{twin}")
            assert got[1] == want[1], f"seed {seed} step {step} {fn.name} after {history.log}"
        # Re-running a finished run is a no-op that writes nothing.
        again = store.run(*incremental) + store.run(*PY_TWINS)
        assert all(r["noop"] for r in again), again
    # Each way of running incrementally happened (the histories are fixed by the seeds).
    assert "merged" in details["merge_keys"], details
    assert any(d.startswith("recomputed") and "key" in d for d in details["merge_keys"]), details
    assert "appended" in details["app_refresh"] and "replaced" in details["app_refresh"]
    assert any(d.startswith("recomputed") and "partition" in d for d in details["app_parts"])
    assert any(d.startswith("recomputed") and "key" in d for d in details["py_merge"])
    assert "merged" in details["merge_refresh"] and "replaced" in details["merge_refresh"]


def test_lineage_records_which_versions_produced_which(tmp_path: Path):
    repo = make_repo(tmp_path / "shop")
    (repo / "definitions" / "gold.yaml").write_text(
        "transformations:\n"
        "  - name: gold_days\n"
        "    output: gold.days\n"
        "    sql: SELECT day, count(*) AS ids FROM silver.merge_keys GROUP BY ALL\n")
    store = stratalake.FeatureStore(repo)
    history = History(repo, 7)
    history.append(10)
    store.run("merge_keys", "gold_days")
    history.append(3)
    first = store.sql("SELECT min(id) AS id FROM bronze.events").to_arrow().column(0)[0].as_py()
    stratalake.DeltaTable(history.path).delete(f"id = {first}")
    store.run("merge_keys", "gold_days")
    lineage = store.lineage("silver.merge_keys")
    assert [(e["version"], e["transformation"], e["operation"], e["inputs"], e["read"],
             e["since"]) for e in lineage] == [
        (1, "merge_keys", "WRITE", {"bronze/events": 2}, "keys", {"bronze/events": 0}),
        (0, "merge_keys", "CREATE TABLE AS SELECT", {"bronze/events": 0}, "all", {}),
    ]
    up = store.lineage("gold.days", upstream=True)
    assert [(e["table"], e["version"], e["inputs"]) for e in up] == [
        ("gold/days", 1, {"silver/merge_keys": 1}),
        ("silver/merge_keys", 1, {"bronze/events": 2}),
    ]
    cli = subprocess.run([str(BIN), "lineage", "gold.days", "--upstream", "--json", "--repo",
                          str(repo)], capture_output=True, text=True, check=True)
    assert [(e["table"], e["version"], e["inputs"]) for e in json.loads(cli.stdout)] == \
        [(e["table"], e["version"], e["inputs"]) for e in up]
    text = subprocess.run([str(BIN), "lineage", "gold.days", "--repo", str(repo)],
                          capture_output=True, text=True, check=True).stdout
    assert text.splitlines()[0].split() == ["TABLE@VERSION", "TRANSFORMATION", "OPERATION", "READ",
                                            "HOW"]
    assert "gold/days@1" in text and "silver/merge_keys@" in text


def test_python_transformation_errors_and_noop(tmp_path: Path):
    repo = make_repo(tmp_path / "shop")
    store = stratalake.FeatureStore(repo)
    History(repo, 5).append(12)

    @stratalake.transformation(output="gold.broken", inputs=["bronze.events"])
    def broken(events):
        raise ValueError("no such column: amount")

    with pytest.raises(stratalake.StrataLakeError) as info:
        store.run(broken)
    assert "transformation 'broken': the function failed: ValueError: no such column: amount" \
        in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)
    assert not (repo / "lake" / "gold" / "broken").exists()

    first = store.run(py_agg)[0]
    assert (first["detail"], first["inputs"]) == ("created", {"bronze/events": 0})
    assert store.run(py_agg)[0]["noop"]
    # The function is still callable as itself.
    assert py_agg(pa.table({"day": ["a", "a"], "val": [1, 2]})).to_pylist() == [
        {"day": "a", "n": 2, "total": 3}]
    with pytest.raises(ValueError, match="mode 'merge' needs keys"):
        stratalake.transformation(output="silver.x", inputs=["bronze.events"], mode="merge")(
            lambda e: e)


def test_result_must_fit_the_feature_views_that_read_it(tmp_path: Path):
    repo = make_repo(tmp_path / "shop")
    (repo / "definitions" / "views.yaml").write_text(
        "entities:\n"
        "  - name: item\n"
        "    join_keys: [{name: id, type: int64}]\n"
        "sources:\n"
        "  - name: daily\n"
        "    path: silver/agg\n"
        "    timestamp_field: ts\n"
        "feature_views:\n"
        "  - name: day_stats\n"
        "    entities: [item]\n"
        "    source: daily\n"
        "    features:\n"
        "      - {name: n, type: int64}\n"
        "      - {name: total, type: string}\n"
        "      - {name: missing, type: float64}\n")
    History(repo, 5).append(12)
    proc = subprocess.run([str(BIN), "run", "agg", "--repo", str(repo)], capture_output=True,
                          text=True)
    assert proc.returncode == 1
    assert proc.stderr == (
        "error: definitions/pipelines.yaml:2:5: transformation 'agg': its result does not match "
        "the feature views that read silver/agg:\n"
        "  feature view 'day_stats' (definitions/views.yaml:9:5) declares feature 'total' as "
        "string but the result's column 'total' is int64, which the 'backward' compatibility "
        "policy refuses\n"
        "  feature view 'day_stats' (definitions/views.yaml:9:5) reads feature 'missing' from "
        "column 'missing', which the result lacks (columns: day, n, total)\n"
        "cast the columns in the query (or declare them in its schema), or change the features' "
        "types\n"), proc.stderr
    assert not (repo / "lake" / "silver" / "agg").exists()


def assert_kills_leave_old_or_new(tmp_path: Path, pristine: Path, name: str, n: int):
    """`run NAME` on copies of `pristine`, whose silver.NAME has n rows and whose next
    run recomputes 5000 keys (deleting their rows), SIGKILLed at 0, 20, ..., 100% of
    the time a whole run takes: the table is the old one or the new one, never a mix,
    and a later run completes it."""
    query = f"SELECT count(*) AS n FROM silver.{name}"

    def count(repo: Path) -> int:
        return stratalake.FeatureStore(repo).sql(query).to_arrow().column(0)[0].as_py()

    timing = tmp_path / "timing"
    shutil.copytree(pristine, timing)
    t0 = time.monotonic()
    out = subprocess.run([str(BIN), "run", name, "--json", "--repo", str(timing)],
                         check=True, capture_output=True, text=True).stdout
    full = time.monotonic() - t0
    assert json.loads(out)[0]["detail"] == "recomputed 5000 key(s)"
    assert count(timing) == n - 5000
    for k in range(6):
        repo = tmp_path / f"kill{k}"
        shutil.copytree(pristine, repo)
        proc = subprocess.Popen([str(BIN), "run", name, "--repo", str(repo)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(full * k / 5)
        proc.kill()
        proc.wait()
        assert count(repo) in (n, n - 5000), f"kill {k}: half-written"
        subprocess.run([str(BIN), "run", name, "--repo", str(repo)], check=True,
                       capture_output=True)
        assert count(repo) == n - 5000


def test_killed_key_recomputation_leaves_the_table_as_it_was(tmp_path: Path):
    """SIGKILL `stratalake run` while it recomputes keys after deletes: the table is
    the old one or the new one, never a mix, and a later run completes it."""
    pristine = make_repo(tmp_path / "pristine")
    n = 100_000
    ids = pa.array(range(n), pa.int64())
    path = str(pristine / "lake" / "bronze" / "events")
    stratalake.write_deltalake(path, pa.table({
        "id": ids, "day": pa.array(["d1"] * n), "val": pa.array([0] * n, pa.int64()),
        "ts": pa.array([T0] * n, pa.timestamp("us", tz="UTC"))}), mode="append",
        partition_by=["day"])
    subprocess.run([str(BIN), "run", "merge_keys", "--repo", str(pristine)], check=True,
                   capture_output=True)
    stratalake.DeltaTable(path).delete("id < 5000")
    assert_kills_leave_old_or_new(tmp_path, pristine, "merge_keys", n)


# ---- Several inputs: bronze.events joined with / united with bronze.tags ---------
# bronze.tags(eid, day, w, tag, ts): its key column is `eid`, so the transformations
# keyed by `id` declare it in input_keys. Each has a `_full` twin as above.
MULTI = {
    # join + GROUP BY on the key
    "j_agg": """
    mode: merge
    keys: [id]
    on_change: keys
    input_keys: {bronze.tags: [eid]}
    sql: |
      SELECT e.id, count(*) AS n, sum(e.val * t.w) AS s, max(t.tag) AS tag
      FROM bronze.events e JOIN bronze.tags t ON e.id = t.eid GROUP BY e.id""",
    # a join that gives several rows per key (a merge without order_by)
    "j_rows": """
    mode: merge
    keys: [id]
    on_change: keys
    input_keys:
      bronze.tags: [eid]
    sql: |
      SELECT e.id, e.day, e.val, t.w, t.tag
      FROM bronze.events e LEFT JOIN bronze.tags t ON e.id = t.eid AND e.day = t.day
      WHERE e.val <> 7""",
    # a union, latest row per key across both tables
    "u_latest": """
    mode: merge
    keys: [id]
    order_by: ts
    on_change: keys
    input_keys: {bronze.tags: [eid]}
    sql: |
      SELECT id, day, val, ts, 'e' AS src FROM bronze.events
      UNION ALL SELECT eid AS id, day, w AS val, ts, tag AS src FROM bronze.tags""",
    # a join + GROUP BY per partition (day partitions both inputs and the output)
    "p_agg": """
    mode: append
    partition_by: [day]
    on_change: partitions
    sql: |
      SELECT e.day, count(*) AS n, sum(e.val * t.w) AS s
      FROM bronze.events e JOIN bronze.tags t ON e.id = t.eid AND e.day = t.day GROUP BY ALL""",
    # a union per partition
    "p_union": """
    mode: append
    partition_by: [day]
    on_change: partitions
    sql: |
      SELECT day, id, val FROM bronze.events WHERE val > 3
      UNION ALL SELECT day, eid AS id, w AS val FROM bronze.tags""",
    # tags map to no key: a change of them recomputes everything
    "j_nomap": """
    mode: merge
    keys: [id]
    on_change: keys
    input_keys: {bronze.tags: []}
    sql: |
      SELECT e.id, sum(e.val) AS s, count(t.w) AS tags
      FROM bronze.events e LEFT JOIN bronze.tags t ON t.w = e.val % 5 GROUP BY e.id""",
}


# A Python transformation over both tables, mapping tags by input_keys: j_agg's twin.
@stratalake.transformation(output="silver.py_j_agg", inputs=["bronze.events", "bronze.tags"],
                           mode="merge", keys=["id"], on_change="keys", kind="pyarrow",
                           input_keys={"bronze.tags": ["eid"]})
def py_j_agg(events: pa.Table, tags: pa.Table) -> pa.Table:
    import pyarrow.compute as pc
    j = events.join(tags, keys="id", right_keys="eid", join_type="inner", right_suffix="_t")
    j = j.append_column("vw", pc.multiply(j["val"], j["w"]))
    g = j.group_by("id").aggregate([("val", "count"), ("vw", "sum"), ("tag", "max")])
    return pa.table({"id": g["id"], "n": g["val_count"], "s": g["vw_sum"], "tag": g["tag_max"]})


def multi_repo(root: Path) -> Path:
    (root / "definitions").mkdir(parents=True)
    (root / "stratalake.yaml").write_text(
        "project: shop\noffline_store: {path: lake}\ndefinitions: [definitions]\n")
    out = "transformations:\n"
    for name, body in MULTI.items():
        for suffix in ("", "_full"):
            out += f"  - name: {name}{suffix}\n    output: silver.{name}{suffix}{body}\n"
    (root / "definitions" / "pipelines.yaml").write_text(out)
    return root


class TwoTables:
    """Random appends, updates and deletes of bronze.events and bronze.tags (both
    partitioned by day), one clock for both so that event times are unique."""

    def __init__(self, repo: Path, seed: int):
        self.events = History(repo, seed)
        self.rng = self.events.rng
        self.tags = str(repo / "lake" / "bronze" / "tags")
        self.log = self.events.log

    def append_tags(self, n: int) -> None:
        rows = []
        for _ in range(n):
            self.events.clock += 1
            rows.append({"eid": self.rng.randrange(25), "day": self.rng.choice(["d1", "d2", "d3"]),
                         "w": self.rng.randrange(5), "tag": self.rng.choice("abc"),
                         "ts": T0 + dt.timedelta(seconds=self.events.clock)})
        schema = pa.schema([("eid", pa.int64()), ("day", pa.string()), ("w", pa.int64()),
                            ("tag", pa.string()), ("ts", pa.timestamp("us", tz="UTC"))])
        stratalake.write_deltalake(self.tags, pa.Table.from_pylist(rows, schema=schema),
                                   mode="append", partition_by=["day"])
        self.log.append(f"tags: append {n}")

    def step(self) -> None:
        if self.rng.random() < 0.5:
            self.events.step()
            return
        op = self.rng.choice(["append", "append", "update", "delete", "delete_day"])
        table = stratalake.DeltaTable(self.tags)
        if op == "append":
            self.append_tags(self.rng.randrange(1, 8))
            return
        if op == "update":
            pred = f"eid = {self.rng.randrange(25)} OR w = {self.rng.randrange(5)}"
            table.update({"w": "w + 1"}, predicate=pred)
        elif op == "delete":
            pred = f"eid = {self.rng.randrange(25)}"
            table.delete(pred)
        else:
            pred = f"day = '{self.rng.choice(['d1', 'd2', 'd3'])}' AND w < 2"
            table.delete(pred)
        self.log.append(f"tags: {op} {pred}")


@pytest.mark.parametrize("seed", [3, 4])
def test_incremental_runs_over_several_tables_equal_a_full_refresh(tmp_path: Path, seed: int):
    repo = multi_repo(tmp_path / "shop")
    store = stratalake.FeatureStore(repo)
    history = TwoTables(repo, seed)
    history.events.append(30)
    history.append_tags(30)
    details = {name: [] for name in MULTI}
    for step in range(14):
        if step:
            history.step()
        runs = store.run(*MULTI) + store.run(py_j_agg)
        store.run(*(f"{n}_full" for n in MULTI), full_refresh=True)
        for r in runs:
            details.setdefault(r["name"], []).append(r["detail"])
        for name in MULTI:
            got, want = rows(store, f"silver.{name}"), rows(store, f"silver.{name}_full")
            assert got == want, f"seed {seed} step {step} {name} after {history.log}"
        got, want = rows(store, "silver.py_j_agg"), rows(store, "silver.j_agg_full")
        assert got[1] == want[1], f"seed {seed} step {step} py_j_agg after {history.log}"
        again = store.run(*MULTI) + store.run(py_j_agg)
        assert all(r["noop"] for r in again), again
    kinds = {n: {d.split(" (")[0].split(":")[0].split(" ", 2)[-1] if d.startswith("recomputed")
                 else d.split(" (")[0] for d in ds} for n, ds in details.items()}
    for name in ("j_agg", "j_rows", "u_latest", "py_j_agg"):
        assert "key(s)" in kinds[name], (name, details[name])
    for name in ("p_agg", "p_union"):
        assert "partition(s)" in kinds[name], (name, details[name])
    # Every change of the unmapped tags recomputed the whole table, saying why.
    assert any(d == "replaced (bronze/tags changed and its input_keys are [] (its rows map to "
               "no key))" for d in details["j_nomap"]), details["j_nomap"]
    assert "key(s)" in kinds["j_nomap"], details["j_nomap"]


def test_several_tables_plan_says_why_it_recomputes_everything(tmp_path: Path):
    repo = multi_repo(tmp_path / "shop")
    store = stratalake.FeatureStore(repo)
    history = TwoTables(repo, 9)
    history.events.append(10)
    history.append_tags(10)
    store.run("j_nomap", "j_agg")
    history.append_tags(2)
    plan = subprocess.run([str(BIN), "run", "j_nomap", "j_agg", "--plan", "--json", "--repo",
                           str(repo)], capture_output=True, text=True, check=True)
    reasons = {p["name"]: p["reason"] for p in json.loads(plan.stdout)}
    assert reasons == {
        "j_nomap": "bronze/tags changed: version 0 -> 1; recomputes the whole table: "
                   "bronze/tags changed and its input_keys are [] (its rows map to no key)",
        "j_agg": "bronze/tags changed: version 0 -> 1"}, reasons
    runs = {r["name"]: r for r in store.run("j_nomap", "j_agg")}
    assert runs["j_nomap"]["detail"].startswith("replaced (bronze/tags changed")
    assert runs["j_agg"]["detail"].startswith("recomputed ")
    lineage = store.lineage("silver.j_agg")
    assert (lineage[0]["read"], lineage[0]["since"]) == ("keys", {"bronze/tags": 0})


def test_killed_run_over_two_tables_leaves_the_table_as_it_was(tmp_path: Path):
    """SIGKILL `stratalake run` of a join recomputing keys after deletes in one input:
    the table is the old one or the new one, never a mix, and a later run completes it."""
    pristine = multi_repo(tmp_path / "pristine")
    n = 100_000
    ids = pa.array(range(n), pa.int64())
    ts = pa.array([T0] * n, pa.timestamp("us", tz="UTC"))
    stratalake.write_deltalake(str(pristine / "lake" / "bronze" / "events"), pa.table({
        "id": ids, "day": pa.array(["d1"] * n), "val": pa.array([1] * n, pa.int64()), "ts": ts}),
        mode="append", partition_by=["day"])
    tags = str(pristine / "lake" / "bronze" / "tags")
    stratalake.write_deltalake(tags, pa.table({
        "eid": ids, "day": pa.array(["d1"] * n), "w": pa.array([1] * n, pa.int64()),
        "tag": pa.array(["a"] * n), "ts": ts}), mode="append", partition_by=["day"])
    subprocess.run([str(BIN), "run", "j_agg", "--repo", str(pristine)], check=True,
                   capture_output=True)
    stratalake.DeltaTable(tags).delete("eid < 5000")
    assert_kills_leave_old_or_new(tmp_path, pristine, "j_agg", n)
