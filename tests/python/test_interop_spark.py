"""Interoperability with Apache Spark (pyspark 3.5 + delta-spark 3.3), both ways.

(a) A table StrataLake writes (partitioned by a string with NULL, space and non-ASCII
    values; every primitive type) through append, update, delete, merge (with a delete
    clause), replaceWhere, schema evolution, Z-order and bin-pack optimize and
    checkpoints is read by Spark at every version; Spark's files and history agree with
    ours, and Spark can append to and delete from it.
(b) A table Spark writes (partitionBy, append, replaceWhere, delete, update, merge,
    deletion vectors, OPTIMIZE, its own checkpoint, mergeSchema) is read by StrataLake at
    every version.

One local[2] SparkSession (conftest.py's `spark`) serves the whole test session; its Delta
jars come from Maven Central through Ivy on the first run.
"""
from __future__ import annotations

import datetime as dt
import urllib.parse

import pyarrow as pa
import pytest

from interop_util import (filtered_read_problems, sl_latest_problems, sl_version_problems, NOTE, UTC, SlWriter, Timeline, attempt, checkpoint_versions,
                          copy_without_commits_before, diff_tables, eq, filter_cases, filtered,
                          ge, gt, last_checkpoint, lt, plus, rows, sl_files, sl_history, sl_read,
                          times, with_note)
from conftest import cli_json

T10 = dt.datetime(2024, 1, 1, 10, tzinfo=UTC)
SPARK_TYPES = {"id": "bigint", "qty": "int", "score": "double", "cat": "string",
               "flag": "boolean", "event_date": "date", "ts": "timestamp",
               "amount": "decimal(10,2)", "note": "string"}


def spark_schema(schema: pa.Schema):
    from pyspark.sql import types as T
    conv = {"id": T.LongType(), "qty": T.IntegerType(), "score": T.DoubleType(),
            "cat": T.StringType(), "flag": T.BooleanType(), "event_date": T.DateType(),
            "ts": T.TimestampType(), "amount": T.DecimalType(10, 2), "note": T.StringType()}
    return T.StructType([T.StructField(f.name, conv[f.name], f.nullable) for f in schema])


def to_df(spark, rs, schema: pa.Schema):
    return spark.createDataFrame([tuple(r.get(f.name) for f in schema) for r in rs],
                                 spark_schema(schema))


def spark_version_df(spark, path, version):
    return spark.read.format("delta").option("versionAsOf", version).load(str(path))


def collect_spark(df, expected: pa.Schema, what: str, problems: list) -> pa.Table | None:
    """Spark rows as an Arrow table of the expected schema (timestamps as UTC instants);
    None (with a problem recorded) when the column names or Spark types differ."""
    got = [(f.name, f.dataType.simpleString()) for f in df.schema.fields]
    want = [(f.name, SPARK_TYPES[f.name]) for f in expected]
    if got != want:
        problems.append(f"{what}: Spark schema {got} != expected {want}")
        return None
    out = []
    for row in df.collect():
        d = row.asDict()
        for k, v in d.items():
            if isinstance(v, dt.datetime):  # Spark gives naive local times
                d[k] = v.astimezone(UTC)
        out.append(d)
    return pa.Table.from_pylist(out, schema=expected)


def spark_files(df, root) -> set:
    """Data files of a Spark DataFrame over a Delta table, as decoded relative paths."""
    prefix = str(root) + "/"
    out = set()
    for uri in df.inputFiles():
        path = urllib.parse.unquote(urllib.parse.urlparse(uri).path)
        assert path.startswith(prefix), (uri, prefix)
        out.add(path[len(prefix):])
    return out


def spark_history(spark, path) -> dict:
    from delta.tables import DeltaTable
    return {r["version"]: r["operation"]
            for r in DeltaTable.forPath(spark, str(path)).history().select(
                "version", "operation").collect()}


# ---- (a) StrataLake writes, Spark reads ---------------------------------------------

@pytest.fixture(scope="module")
def sl_table(tmp_path_factory):
    root = tmp_path_factory.mktemp("sl_for_spark")
    tl = Timeline(root / "table")
    w = SlWriter(tl, root)
    w.create(partition_by=["cat"])
    w.append(rows(range(1, 13)))
    w.append(rows(range(13, 25)))
    w.update("qty = 1", lambda r: eq(r["qty"], 1), "score = score * 2, amount = amount + 1",
             lambda r: {"score": times(r["score"], 2), "amount": plus(r["amount"], 1)})
    w.delete("flag = false AND ts < '2024-01-01T10:00:00Z'",
             lambda r: eq(r["flag"], False) and lt(r["ts"], T10))
    w.merge(rows(range(15, 30), 1))
    w.merge(rows([2, 4, 5, 6, 7, 8, 31], 2), delete_when="source.flag = true",
            delete_pred=lambda t, s: eq(s["flag"], True))
    w.replace_where("cat = 'b c'", lambda r: eq(r["cat"], "b c"),
                    rows(range(80, 85), 3, cat="b c"))
    w.append_new_column(with_note(rows(range(90, 95))), NOTE)
    w.optimize("--zorder-by", "id,ts")
    w.append(with_note(rows(range(95, 101))))                 # version 10: checkpoint
    w.optimize()
    w.checkpoint()                                             # explicit, at version 11
    tl.checkpoints = sorted(set(w.checkpoints))
    assert tl.checkpoints == [10, 11]
    return tl


def test_spark_reads_stratalake_table_every_version(spark, sl_table):
    tl = sl_table
    problems = []
    for v in tl.versions:
        got = collect_spark(spark_version_df(spark, tl.path, v), tl.expected[v].schema,
                          f"spark v{v}", problems)
        if got is not None:
            problems += diff_tables(got, tl.expected[v], f"spark v{v}")
    latest = spark.read.format("delta").load(str(tl.path))
    got = collect_spark(latest, tl.expected[tl.latest].schema, "spark latest", problems)
    if got is not None:
        problems += diff_tables(got, tl.expected[tl.latest], "spark latest")
    assert not problems, "\n".join(problems)


def test_spark_sees_our_files_and_history(spark, sl_table):
    tl = sl_table
    problems = []
    for v in tl.versions[1:]:  # Spark lists no files of the empty version 0
        theirs = spark_files(spark_version_df(spark, tl.path, v), tl.path)
        ours = set(sl_files(tl.path, v))
        if theirs != ours:
            problems.append(f"v{v}: Spark's files {sorted(theirs)} != ours {sorted(ours)}")
    assert not problems, "\n".join(problems)
    assert spark_history(spark, tl.path) == tl.operations


def test_spark_filters_on_our_stats(spark, sl_table):
    """Spark skips files by the statistics we wrote: filtered queries (one Spark job, a
    union of one filtered scan per predicate) return exactly the matching rows."""
    from pyspark.sql import functions as F
    tl = sl_table
    expected = tl.expected[tl.latest]
    cases = filter_cases(expected)
    df = spark.read.format("delta").load(str(tl.path))
    union = None
    for i, case in enumerate(cases):
        part = df.where(case["spark"]).select(F.lit(i).alias("case"), "id")
        union = part if union is None else union.unionAll(part)
    got = {}
    for r in union.collect():
        got.setdefault(r["case"], []).append(r["id"])
    problems = []
    for i, case in enumerate(cases):
        want = sorted(r["id"] for r in expected.to_pylist() if case["py"](r))
        if sorted(got.get(i, [])) != want:
            problems.append(f"{case['spark']}: Spark returned ids {sorted(got.get(i, []))}, "
                            f"expected {want}")
    assert not problems, "\n".join(problems)


def test_spark_reads_our_checkpoints(spark, sl_table, tmp_path):
    tl = sl_table
    assert checkpoint_versions(tl.path) == tl.checkpoints
    assert last_checkpoint(tl.path)["version"] == tl.checkpoints[-1]
    problems = []
    for c in tl.checkpoints:
        copy = copy_without_commits_before(tl.path, tmp_path / f"from_{c}", c)
        for v in range(c, tl.latest + 1):
            got = collect_spark(spark_version_df(spark, copy, v), tl.expected[v].schema,
                              f"spark from checkpoint {c}, v{v}", problems)
            if got is not None:
                problems += diff_tables(got, tl.expected[v], f"spark from checkpoint {c}, v{v}")
    assert not problems, "\n".join(problems)


def test_spark_writes_on_stratalake_table(spark, sl_table, tmp_path):
    """Spark appends to and deletes from our table; StrataLake reads the new versions."""
    from delta.tables import DeltaTable
    tl = sl_table.fork(tmp_path / "table")
    first = tl.latest + 1
    new = with_note(rows(range(200, 206), 5))
    tl.model.append(new)
    to_df(spark, new, tl.model.schema).write.format("delta").mode("append").save(str(tl.path))
    tl.record(first, "WRITE", "spark")
    DeltaTable.forPath(spark, str(tl.path)).delete("id >= 203 OR cat IS NULL")
    tl.model.delete(lambda r: ge(r["id"], 203) or r["cat"] is None)
    tl.record(first + 1, "DELETE", "spark")
    problems = []
    for v in (first, first + 1):
        ours = attempt(problems, f"stratalake read v{v}", lambda: sl_read(tl.path, v, tmp_path))
        if ours is not None:
            problems += diff_tables(ours, tl.expected[v], f"stratalake v{v}")
    assert not problems, "\n".join(problems)
    assert sl_history(tl.path) == tl.operations


# ---- (b) Spark writes, StrataLake reads ---------------------------------------------

class SparkWriter:
    def __init__(self, spark, tl: Timeline):
        self.spark = spark
        self.tl = tl

    @property
    def p(self) -> str:
        return str(self.tl.path)

    def dt(self):
        from delta.tables import DeltaTable
        return DeltaTable.forPath(self.spark, self.p)

    def record(self, operation):
        v = self.dt().history(1).collect()[0]["version"]
        self.tl.record(v, operation, "spark")

    def df(self, rs):
        return to_df(self.spark, rs, self.tl.model.schema)


@pytest.fixture(scope="module")
def spark_table(spark, tmp_path_factory):
    from pyspark.sql import functions as F
    root = tmp_path_factory.mktemp("spark_written")
    tl = Timeline(root / "table", partition_by=["cat"])
    w = SparkWriter(spark, tl)
    m = tl.model

    first = rows(range(1, 13))
    m.append(first)
    w.df(first).write.format("delta").partitionBy("cat").save(w.p)
    w.record("WRITE")
    more = rows(range(13, 25))
    m.append(more)
    w.df(more).write.format("delta").mode("append").save(w.p)
    w.record("WRITE")
    new_a = rows(range(30, 34), 1, cat="a")
    m.replace_where(lambda r: eq(r["cat"], "a"), new_a)
    w.df(new_a).write.format("delta").mode("overwrite").option("replaceWhere", "cat = 'a'") \
        .save(w.p)
    w.record("WRITE")
    m.delete(lambda r: gt(r["score"], 20))
    w.dt().delete("score > 20")
    w.record("DELETE")
    m.update(lambda r: eq(r["id"], 6), lambda r: {"cat": "zz"})
    w.dt().update("id = 6", {"cat": F.lit("zz")})
    w.record("UPDATE")
    src = rows(range(10, 29), 2)
    m.merge(src)
    (w.dt().alias("t").merge(w.df(src).alias("s"), "t.id = s.id")
     .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())
    w.record("MERGE")
    # From here on DELETE, UPDATE and MERGE write deletion vectors.
    spark.sql(f"ALTER TABLE delta.`{w.p}` SET TBLPROPERTIES "
              "('delta.enableDeletionVectors' = 'true')")
    w.record("SET TBLPROPERTIES")
    m.delete(lambda r: eq(r["qty"], 1))
    w.dt().delete("qty = 1")
    w.record("DELETE")
    m.update(lambda r: eq(r["flag"], True), lambda r: {"score": plus(r["score"], 1)})
    w.dt().update("flag = true", {"score": F.expr("score + 1")})
    w.record("UPDATE")
    src = rows([2, 3, 4, 12, 26, 40, 41], 3)
    m.merge(src, delete_when=lambda t, s: eq(s["flag"], True))
    (w.dt().alias("t").merge(w.df(src).alias("s"), "t.id = s.id")
     .whenMatchedDelete("s.flag = true").whenMatchedUpdateAll().whenNotMatchedInsertAll()
     .execute())
    w.record("MERGE")
    spark.sql(f"OPTIMIZE delta.`{w.p}`")                       # version 10: checkpoint
    w.record("OPTIMIZE")
    noted = with_note(rows(range(50, 56), 4))
    m.add_column(NOTE)
    m.append(noted)
    w.df(noted).write.format("delta").mode("append").option("mergeSchema", "true").save(w.p)
    w.record("WRITE")
    m.delete(lambda r: eq(r["id"], 52) or eq(r["id"], 40))
    w.dt().delete("id = 52 OR id = 40")
    w.record("DELETE")
    return tl


def test_stratalake_reads_spark_table_every_version(spark, spark_table, tmp_path):
    tl = spark_table
    problems = []
    for v in tl.versions:
        theirs = collect_spark(spark_version_df(spark, tl.path, v), tl.expected[v].schema,
                             f"spark v{v}", problems)
        if theirs is not None:
            problems += diff_tables(theirs, tl.expected[v], f"spark v{v} (the expectation)")
        sl_version_problems(tl, v, tmp_path, problems)
    problems += sl_latest_problems(tl)
    assert not problems, "\n".join(problems)


def test_stratalake_files_and_history_match_spark(spark, spark_table):
    tl = spark_table
    problems = []
    dv_versions = []
    for v in tl.versions:
        theirs = spark_files(spark_version_df(spark, tl.path, v), tl.path)
        files = attempt(problems, f"stratalake files v{v}",
                        lambda: cli_json("files", str(tl.path), "--version", str(v)))
        if files is None:
            continue
        ours = {urllib.parse.unquote(f["path"]) for f in files["files"]}
        if theirs != ours:
            problems.append(f"v{v}: ours {sorted(ours)} != Spark's {sorted(theirs)}")
        if any(f["has_deletion_vector"] for f in files["files"]):
            dv_versions.append(v)
    assert not problems, "\n".join(problems)
    # Deletion vectors exist from the first DELETE after enabling them until OPTIMIZE.
    assert dv_versions == [7, 8, 9, 12], dv_versions
    ours = sl_history(tl.path)
    assert ours == spark_history(spark, tl.path)
    assert ours == tl.operations


def test_stratalake_filters_on_spark_stats(spark_table, tmp_path):
    """StrataLake's file skipping uses the statistics Spark wrote (millisecond timestamp
    stats, INT96 timestamps, deletion vectors at the latest version)."""
    problems = filtered_read_problems(spark_table, tmp_path)
    assert not problems, "\n".join(problems)


def test_stratalake_reads_spark_checkpoint(spark_table, tmp_path):
    tl = spark_table
    assert checkpoint_versions(tl.path) == [10]
    assert last_checkpoint(tl.path)["version"] == 10
    copy = copy_without_commits_before(tl.path, tmp_path / "from_10", 10)
    problems = []
    for v in range(10, tl.latest + 1):
        ours = attempt(problems, f"stratalake read from checkpoint, v{v}",
                       lambda: sl_read(copy, v, tmp_path))
        if ours is not None:
            problems += diff_tables(ours, tl.expected[v], f"stratalake from checkpoint, v{v}")
    assert not problems, "\n".join(problems)


def test_stratalake_continues_spark_table(spark, spark_table, tmp_path):
    """StrataLake deletes, updates, merges, appends and optimizes on the table Spark wrote
    (files with deletion vectors, INT96 timestamps); Spark and StrataLake read every new
    version."""
    tl = spark_table.fork(tmp_path / "table")
    first = tl.latest + 1
    w = SlWriter(tl, tmp_path)
    w.delete("qty = 0", lambda r: eq(r["qty"], 0))
    w.update("flag = false", lambda r: eq(r["flag"], False), "score = score + 1000",
             lambda r: {"score": plus(r["score"], 1000)})
    w.merge(with_note(rows([3, 12, 26, 50, 51, 53, 300], 6)), delete_when="source.qty = 2",
            delete_pred=lambda t, s: eq(s["qty"], 2))
    w.append(with_note(rows(range(310, 313))))
    w.optimize()
    problems = []
    for v in range(first, tl.latest + 1):
        got = collect_spark(spark_version_df(spark, tl.path, v), tl.expected[v].schema,
                            f"spark v{v}", problems)
        if got is not None:
            problems += diff_tables(got, tl.expected[v], f"spark v{v}")
        ours = attempt(problems, f"stratalake read v{v}", lambda: sl_read(tl.path, v, tmp_path))
        if ours is not None:
            problems += diff_tables(ours, tl.expected[v], f"stratalake v{v}")
    assert not problems, "\n".join(problems)
    history = spark_history(spark, tl.path)
    assert {v: history[v] for v in range(first, tl.latest + 1)} == \
        {v: tl.operations[v] for v in range(first, tl.latest + 1)}
