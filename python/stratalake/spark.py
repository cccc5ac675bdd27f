"""The Spark engine: point-in-time training sets and materialization on a Spark cluster
(pyspark + delta-spark), for data larger than one machine.

The rules are the local engine's (docs/training-datasets.md), planned by the engine
itself (``_core.plan_historical``: the same feature resolution, names, join keys, TTLs
and source Delta versions as ``get_historical_features``); Spark only computes them:

* every view's source is read by delta-spark at the planned version, with the tie-break
  columns of the local engine: event time, created time (null lowest), the file's
  ``modificationTime`` in the Delta log, its path, the row's index in the file;
* entity rows and feature rows of a view are unioned, partitioned by join key and ordered
  by (time, feature rows before entity rows, tie-breaks): the winner of an entity row is
  the last feature row before it (one shuffle per view, no range join), then the TTL is
  checked against the winner's time;
* the output keeps the entity rows' input order (a row number taken from the input) and is
  written as a Delta table ordered by it.

``docs/scale.md`` describes the plan and its measured cost.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.parquet as pq

from . import _core
from ._errors import DefinitionError

ROW = "__sl_row"
DEFAULT_MASTER = "local[*]"


# ---- the session ------------------------------------------------------------------------

def spark_session(master: Optional[str] = None, app_name: str = "stratalake",
                  conf: Optional[Dict[str, str]] = None):
    """The active SparkSession if there is one, else a new one with Delta configured.

    ``master``: the argument, else ``$STRATALAKE_SPARK_MASTER``, else Spark's own
    configuration (``spark-submit --master``, ``spark-defaults.conf``), else ``local[*]``.
    Extra settings: ``conf`` and ``$STRATALAKE_SPARK_CONF`` (``key=value`` pairs separated
    by ``;``). Delta's jars come from Maven Central through Ivy (``delta-spark``'s
    ``configure_spark_with_delta_pip``) unless ``spark.jars.packages`` is set already."""
    from pyspark.sql import SparkSession
    active = SparkSession.getActiveSession()
    if active is not None:
        _session_utc(active)
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    master = master or os.environ.get("STRATALAKE_SPARK_MASTER")
    if master:
        builder = builder.master(master)
    elif not os.environ.get("SPARK_HOME") and "MASTER" not in os.environ:
        builder = builder.master(DEFAULT_MASTER)
    settings = {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
    }
    for item in os.environ.get("STRATALAKE_SPARK_CONF", "").split(";"):
        if item.strip():
            key, _, value = item.partition("=")
            settings[key.strip()] = value.strip()
    settings.update(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    if "spark.jars.packages" not in settings:
        from delta import configure_spark_with_delta_pip
        builder = configure_spark_with_delta_pip(builder)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    _session_utc(session)
    return session


def _session_utc(spark) -> None:
    # Naive timestamps are UTC (rule 7); Spark reads and casts them in the session zone.
    spark.conf.set("spark.sql.session.timeZone", "UTC")


# ---- entity rows ------------------------------------------------------------------------

def _spark_ready(table: pa.Table) -> pa.Table:
    """Entity columns in types Spark reads from Parquet: timestamps as UTC microseconds,
    dictionaries decoded, large strings and binaries as plain ones (the output is cast back
    to the exact input schema at the end)."""
    cols, fields = [], []
    for f, col in zip(table.schema, table.columns):
        t = f.type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if pa.types.is_timestamp(t):
            t = pa.timestamp("us", "UTC")
        elif pa.types.is_date64(t):
            t = pa.date32()
        elif pa.types.is_large_string(t):
            t = pa.string()
        elif pa.types.is_large_binary(t):
            t = pa.binary()
        if t != f.type:
            col = col.cast(t, safe=False) if not pa.types.is_dictionary(f.type) else \
                col.cast(f.type.value_type).cast(t, safe=False)
        cols.append(col)
        fields.append(pa.field(f.name, t))
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


class _Entities:
    """The entity rows as a Spark DataFrame with a ROW column (input order), and their
    exact Arrow schema."""

    def __init__(self, spark, schema: pa.Schema, df, tmp: Optional[str] = None):
        self.spark, self.schema, self.df, self.tmp = spark, schema, df, tmp

    def close(self) -> None:
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _input_order():
    """A sortable key of a row's place in its input: the file's path, the split's start in
    the file, then the row's id within the task (increasing in file order within a split).
    (Delta's reader has no `_metadata.row_index`; this works for Delta and Parquet alike.)"""
    from pyspark.sql import functions as F
    return F.struct(F.col("_metadata.file_path").alias("p"),
                    F.col("_metadata.file_block_start").alias("b"),
                    F.monotonically_increasing_id().alias("i"))


def _parquet_entities(spark, path: str, schema: pa.Schema, tmp: Optional[str] = None) -> _Entities:
    # Sorted by ROW at the end: a distributed sort, no single partition holds every row.
    df = spark.read.parquet(path).withColumn(ROW, _input_order())
    return _Entities(spark, schema, df, tmp)


def load_entities(spark, entities: Any, scratch: str) -> _Entities:
    """A Parquet path (file or folder, read by Spark where it is), or any Arrow-compatible
    table (written to a Parquet file under ``scratch`` first, so that executors can read it)."""
    if isinstance(entities, (str, os.PathLike)):
        path = os.fspath(entities)
        if path.endswith(".csv"):
            import pyarrow.csv as pcsv
            entities = pcsv.read_csv(path)
        elif path.endswith(".parquet") or os.path.isdir(path):
            schema = pq.read_schema(path) if os.path.isfile(path) else \
                pq.ParquetDataset(path).schema
            if all(_spark_ready(pa.Table.from_batches([], schema)).schema.field(i).type == f.type
                   for i, f in enumerate(schema)):
                return _parquet_entities(spark, path, schema)
            entities = pq.read_table(path)
        else:
            raise DefinitionError(f"entities {path!r}: a path must name a .parquet or .csv file "
                                  "(or a folder of Parquet files)")
    if not isinstance(entities, pa.Table):
        from ._arrow import as_stream_capsule, table_from_capsule
        entities = table_from_capsule(as_stream_capsule(entities, "entity_df"))
    os.makedirs(scratch, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="entities-", dir=scratch)
    pq.write_table(_spark_ready(entities), os.path.join(tmp, "part-0.parquet"))
    return _parquet_entities(spark, tmp, entities.schema, tmp)


# ---- the point-in-time join -------------------------------------------------------------

def plan(repo: str, schema: pa.Schema, features: Sequence[str] = (), feature_service: str = "",
         full_feature_names: bool = False, as_of_ms: Optional[int] = None,
         timestamp_column: str = "event_timestamp", registry_version: Optional[int] = None,
         source_versions: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
    """The engine's plan for a retrieval (raises the errors the local engine raises before
    reading any data)."""
    from ._arrow import table_from_capsule
    p = _core.plan_historical(repo, pa.Table.from_batches([], schema).__arrow_c_stream__(),
                              timestamp_column, list(features), feature_service,
                              full_feature_names, as_of_ms, registry_version,
                              dict(source_versions or {}))
    p["schema"] = table_from_capsule(p["schema"]).schema
    return p


def _micros(col):
    from pyspark.sql import functions as F
    return F.unix_micros(col.cast("timestamp"))


_NUMERIC = ("byte", "short", "int", "bigint", "long", "float", "double", "decimal")


def _check_key_types(ent_df, src_df, view: Dict[str, Any]) -> None:
    """The local engine's error for keys that cannot be compared (a string with a number)."""
    et = dict((f.name, f.dataType.simpleString()) for f in ent_df.schema.fields)
    st = dict((f.name, f.dataType.simpleString()) for f in src_df.schema.fields)
    for ek, sk in zip(view["entity_keys"], view["source_keys"]):
        a, b = et[ek], st[sk]
        if (a.startswith(_NUMERIC)) != (b.startswith(_NUMERIC)) or \
                (not a.startswith(_NUMERIC) and a != b):
            raise DefinitionError(
                f"feature view {view['view']!r}: entity column {ek!r} ({a}) cannot be compared "
                f"with source column {sk!r} ({b}) of source {view['source']!r}; convert the "
                "entity column to the key's type")


def _join_view(spark, rows, view: Dict[str, Any], ts_col: str, outputs: List[str],
               time_range: Optional[Tuple[int, int]]):
    """Adds the view's feature columns (named by `outputs`) to `rows` (which hold ROW,
    __sl_t — the entity time in µs — and the entity and earlier feature columns)."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window
    ttl = int(view["ttl_us"])
    if view["version"] < 0:  # no table (as of then): no feature rows
        out = rows
        for name, f in zip(outputs, view["features"]):
            out = out.withColumn(name, F.lit(None))
        return out, None
    src = (spark.read.format("delta").option("versionAsOf", int(view["version"]))
           .load(view["table_uri"]))
    _check_key_types(rows, src, view)
    keys = [f"__sl_k{i}" for i in range(len(view["source_keys"]))]
    created = view["created_column"]
    feats = src.select(
        *[F.col(f"`{k}`").alias(n) for k, n in zip(view["source_keys"], keys)],
        _micros(F.col(f"`{view['time_column']}`")).alias("__sl_t"),
        F.lit(0).alias("__sl_kind"),
        (F.coalesce(_micros(F.col(f"`{created}`")), F.lit(-(1 << 63)).cast("long"))
         if created else F.lit(0).cast("long")).alias("__sl_c"),
        F.col("_metadata.file_modification_time").alias("__sl_m"),
        _input_order().alias("__sl_i"),
        F.struct(_micros(F.col(f"`{view['time_column']}`")).alias("t"),
                 *[F.col(f"`{c}`").alias(f"f{j}") for j, c in enumerate(view["features"])])
        .alias("__sl_w"))
    feats = feats.where(F.col("__sl_t").isNotNull())
    for k in keys:
        feats = feats.where(F.col(k).isNotNull())
    if time_range is not None:  # rows outside the entity rows' time range never match
        lo, hi = time_range
        feats = feats.where(F.col("__sl_t") <= F.lit(hi))
        if ttl > 0:
            feats = feats.where(F.col("__sl_t") >= F.lit(lo - ttl))
    ents = rows.select(
        *[F.col(f"`{k}`").alias(n) for k, n in zip(view["entity_keys"], keys)],
        F.col("__sl_t"), F.lit(1).alias("__sl_kind"), F.struct("*").alias("__sl_e"))
    both = feats.unionByName(ents, allowMissingColumns=True)
    w = (Window.partitionBy(*keys)
         .orderBy(F.col("__sl_t").asc_nulls_first(), "__sl_kind", "__sl_c", "__sl_m", "__sl_i")
         .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    both = both.withColumn("__sl_win", F.last("__sl_w", ignorenulls=True).over(w))
    hit = F.col("__sl_win").isNotNull() & F.col("__sl_t").isNotNull()
    if ttl > 0:
        hit = hit & (F.col("__sl_win.t") >= F.col("__sl_t") - F.lit(ttl))
    joined = both.where(F.col("__sl_kind") == 1).select(
        "__sl_e.*", *[F.when(hit, F.col(f"__sl_win.f{j}")).alias(name)
                      for j, name in enumerate(outputs)])
    return joined, src


def historical(spark, repo: str, entities: Any, output: str, *, features: Sequence[str] = (),
               feature_service: str = "", full_feature_names: bool = False,
               as_of_ms: Optional[int] = None, timestamp_column: str = "event_timestamp",
               registry_version: Optional[int] = None,
               source_versions: Optional[Dict[str, int]] = None,
               save_as: str = "") -> Dict[str, Any]:
    """Runs the retrieval on Spark and writes the training set as the Delta table `output`
    (which must not exist). Returns the plan with "rows", "output" and "warnings".

    ``save_as``: also save it as dataset NAME: the executors write the dataset's Delta
    table in place (datasets/NAME; no row goes through the driver), then the driver
    records its manifest (pinned registry and source versions, entity hash, exact
    schema) as a local save does, so ``datasets recreate`` rebuilds it; the result has
    "dataset" (the manifest). ``output`` may then be empty: the dataset's table is the
    output."""
    from pyspark.sql import functions as F
    _session_utc(spark)
    repo = os.path.abspath(repo)
    cfg = _core.Store(repo).config()
    scratch = os.path.join(cfg["offline_store"], ".spark", uuid.uuid4().hex)
    ents = load_entities(spark, entities, scratch)
    try:
        p = plan(repo, ents.schema, features, feature_service, full_feature_names, as_of_ms,
                 timestamp_column, registry_version, source_versions)
        if output and os.path.exists(os.path.join(output, "_delta_log")):
            raise DefinitionError(f"output {output!r} already holds a Delta table; choose "
                                  "another path")
        dataset_uri = _core.dataset_table_uri(repo, save_as) if save_as else ""
        targets = [t for t in (output, dataset_uri) if t]
        if not targets:
            raise DefinitionError("historical: give an output path or a dataset name (save_as)")
        ts = p["timestamp_column"]
        rows = ents.df.withColumn("__sl_t", _micros(F.col(f"`{ts}`")))
        rng = rows.agg(F.min("__sl_t"), F.max("__sl_t")).first()
        time_range = None if rng[0] is None else (int(rng[0]), int(rng[1]))
        # Feature columns get private names until the end (they may repeat entity names
        # only when the plan allowed it, which it never does).
        names: Dict[Tuple[int, int], str] = {}
        for vi, view in enumerate(p["views"]):
            outs = [f"__sl_f{vi}_{j}" for j in range(len(view["features"]))]
            for j, o in enumerate(outs):
                names[(vi, j)] = o
            rows, _ = _join_view(spark, rows, view, ts, outs, time_range)
        entity_cols = [f"`{f.name}`" for f in ents.schema]
        out = rows.orderBy(ROW).select(
            *entity_cols,
            *[F.col(names[(v, j)]).alias(p["views"][v]["output_names"][j]) for v, j in p["order"]])
        # Spark writes naive timestamps as TIMESTAMP_NTZ (a table feature the local readers
        # of saved datasets need not know): stored as UTC instants like the local engine's.
        for f in out.schema.fields:
            if f.dataType.simpleString() == "timestamp_ntz":
                out = out.withColumn(f.name, F.col(f"`{f.name}`").cast("timestamp"))
        if len(targets) > 1:
            out = out.persist()  # computed once, written twice
        written = []
        try:
            for target in targets:
                out.write.format("delta").mode("errorifexists").save(target)
                written.append(target)
        except BaseException:
            if dataset_uri in written:
                _remove_table(dataset_uri)
            raise
        finally:
            if len(targets) > 1:
                out.unpersist()
        output = targets[0]
        feature_names = [p["views"][v]["output_names"][j] for v, j in p["order"]]
        counts = _stats_counts(output, feature_names)
        if counts is None:  # no statistics for some column: count with Spark
            row = spark.read.format("delta").load(output).agg(
                F.count(F.lit(1)).alias("rows"),
                *[F.count(F.col(f"`{n}`")).alias(f"c{i}") for i, n in enumerate(feature_names)]
            ).first()
            counts = (int(row["rows"]), [int(row[f"c{i}"]) for i in range(len(feature_names))])
        p["rows"] = counts[0]
        p["output"] = output
        warnings = list(p["warnings"])
        if p["rows"] and feature_names and not any(counts[1]):
            warnings.append({"code": "all_features_null", "view": "", "source": "",
                             "push_source": False, "rows_read": _rows_read(spark, p)})
        p["warnings"] = warnings
        if save_as:
            try:
                p["dataset"] = _core.register_dataset(
                    repo, save_as, pa.Table.from_batches([], p["schema"]).__arrow_c_stream__(),
                    int(p["rows"]), timestamp_column, list(features), feature_service,
                    full_feature_names, as_of_ms, int(p["registry_version"]),
                    list(p["feature_refs"]),
                    {s["source"]: int(s["version"]) for s in p["sources"]},
                    {s["source"]: s["table_uri"] for s in p["sources"]})
            except BaseException:
                _remove_table(dataset_uri)
                raise
        return p
    finally:
        ents.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _stats_counts(output: str, columns: Sequence[str]) -> Optional[Tuple[int, List[int]]]:
    """(rows, non-null values per column) from the Delta log's file statistics (no scan);
    None when a file has no statistics for one of the columns."""
    import json
    from .table import DeltaTable
    rows, values = 0, [0] * len(columns)
    for text in DeltaTable(output).get_add_actions().column("stats").to_pylist():
        if not text:
            return None
        st = json.loads(text)
        n, nulls = int(st.get("numRecords", -1)), st.get("nullCount", {})
        if n < 0 or any(c not in nulls for c in columns):
            return None
        rows += n
        for i, c in enumerate(columns):
            values[i] += n - int(nulls[c])
    return rows, values


def _rows_read(spark, p: Dict[str, Any]) -> int:
    n = 0
    for s in p["sources"]:
        if s["version"] >= 0:
            n += spark.read.format("delta").option("versionAsOf", int(s["version"])).load(
                s["table_uri"]).count()
    return n


def read_output(path: str, schema: pa.Schema) -> Iterable[pa.RecordBatch]:
    """The Delta table the Spark engine wrote, a batch at a time, in the plan's exact schema
    (time zones, units, dictionaries, large types, nullability and metadata)."""
    from .table import DeltaTable
    for batch in DeltaTable(path).to_batches():
        yield cast_batch(batch, schema)


def cast_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    cols = []
    for f in schema:
        col = batch.column(batch.schema.get_field_index(f.name))
        if col.type != f.type:
            if pa.types.is_dictionary(f.type):
                col = col.cast(f.type.value_type, safe=False).dictionary_encode()
                if col.type != f.type:
                    col = col.cast(f.type)
            else:
                col = col.cast(f.type, safe=False)
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def _remove_table(uri: str) -> None:
    """Removes a Delta table this job wrote (a dataset that could not be registered)."""
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    if os.path.isabs(path):
        shutil.rmtree(path, ignore_errors=True)


# ---- materialization --------------------------------------------------------------------

def materialize(spark, repo: str, start_us: Optional[int], end_us: int,
                views: Sequence[str] = (), incremental: bool = False) -> List[Dict[str, Any]]:
    """Materializes online feature views from Spark: every view's source is read at its
    latest version, reduced to the winning row per key in [start, end] (the local engine's
    order: event time, created time, file modificationTime, path, row), and the winners are
    written to the online store by the executors, a partition each: to a Redis store
    directly (newer wins on the server); for the embedded store, as one SST file per
    partition (encoded as the store encodes a write, entries as merge operands), which the
    driver ingests in one atomic step (newer wins against values already stored). Then each
    view's watermark is recorded as a local ``materialize`` records it.

    ``incremental``: as ``materialize_incremental``: ``start_us`` None means the view's TTL
    before the end (or everything), and a view with a current watermark reads only the
    files committed since it plus rows of older files after its end; the watermark's end
    becomes the later of the two ends. A view whose source lost rows since its watermark
    (DELETE, UPDATE, overwrite) runs on the local engine instead, which repairs the keys
    those rows held."""
    from pyspark.sql import functions as F
    _session_utc(spark)
    repo = os.path.abspath(repo)
    store = _core.Store(repo)
    cfg = store.config()
    online = {o["name"]: o for o in store.objects("feature_view", None)}
    if views:
        for v in views:
            if v not in online:
                raise DefinitionError(f"unknown feature view {v!r} (feature views: "
                                      f"{', '.join(online)})")
        names = list(views)
    else:
        names = [n for n, o in online.items() if o.get("online", True)]
    entities = {e["name"]: e for e in store.objects("entity", None)}
    reports = []
    for name in names:
        v = online[name]
        keys = [k["name"] for en in v.get("entities", []) for k in entities[en]["join_keys"]]
        schema = pa.schema([(k, pa.int64()) for k in keys] + [("event_timestamp", pa.timestamp("us"))])
        p = plan(repo, schema, [name])
        view = p["views"][0]
        report = {"view": name, "source": view["source"], "to_version": view["version"],
                  "incremental": False, "from_version": -1, "engine": "spark",
                  "rows_read": 0, "rows_written": 0, "keys_written": 0}
        if view["version"] < 0:
            reports.append(report)
            continue
        version = int(view["version"])
        lo = start_us
        if incremental and start_us is None and int(view["ttl_us"]) > 0:
            lo = end_us - int(view["ttl_us"])
        since = _since_watermark(spark, repo, name, view, version, incremental)
        if since == "local":
            # Rows were deleted since the last run: the local engine repairs their keys.
            out, _ = store.materialize(start_us, end_us, [name], incremental, None)
            reports.append(dict(out[0], engine="local", keys_written=out[0]["rows_written"]))
            continue
        end_mark = end_us
        src = (spark.read.format("delta").option("versionAsOf", version).load(view["table_uri"]))
        t = _micros(F.col(f"`{view['time_column']}`"))

        def in_range(low):
            c = t <= F.lit(end_us)
            return c if low is None else c & (t >= F.lit(low))
        if since is None:
            rows = src.where(in_range(lo))
        else:
            wm, new_files = since
            report["incremental"], report["from_version"] = True, int(wm["source_version"])
            end_mark = max(end_us, int(wm["end_us"]))
            cond = _file_key(F.col("_metadata.file_path")).isin(list(new_files)) & in_range(lo)
            if int(wm["end_us"]) < end_us:
                old_lo = int(wm["end_us"]) + 1 if lo is None else max(lo, int(wm["end_us"]) + 1)
                cond = cond | in_range(old_lo)
            rows = src.where(cond)
        created = view["created_column"]
        order = F.struct(
            t.alias("t"),
            (F.coalesce(_micros(F.col(f"`{created}`")), F.lit(-(1 << 63)).cast("long"))
             if created else F.lit(0).cast("long")).alias("c"),
            F.col("_metadata.file_modification_time").alias("m"),
            _input_order().alias("i"))
        payload = F.struct(
            *[F.col(f"`{c}`").alias(o) for c, o in zip(view["features"], view["output_names"])],
            F.col(f"`{view['time_column']}`").cast("timestamp").alias("event_timestamp"),
            *([F.col(f"`{created}`").cast("timestamp").alias("created_timestamp")] if created else []))
        key_cols = [F.col(f"`{k}`").alias(n) for k, n in zip(view["source_keys"], view["entity_keys"])]
        rows = rows.select(*key_cols, order.alias("__sl_o"), payload.alias("__sl_v"))
        for k in view["entity_keys"]:
            rows = rows.where(F.col(f"`{k}`").isNotNull())
        rows = rows.cache()
        report["rows_read"] = rows.count()
        winners = (rows.groupBy(*view["entity_keys"])
                   .agg(F.max_by("__sl_v", "__sl_o").alias("__sl_v"))
                   .select(*view["entity_keys"], "__sl_v.*"))
        if cfg["online_store_type"] == "redis":
            written = winners.mapInArrow(_partition_writer(repo, name), "written long")
            report["keys_written"] = int(written.agg(F.sum("written")).first()[0] or 0)
        else:
            report["keys_written"] = _ingest_sst(winners, repo, name, cfg)
        rows.unpersist()
        report["rows_written"] = report["rows_read"]
        _core.record_materialization(repo, name, version, int(end_mark),
                                     int(report["rows_written"]))
        reports.append(report)
    return reports


def _file_key(path):
    """A data file's path as Spark's ``_metadata.file_path`` and ``inputFiles()`` both give
    it, without the scheme (``file:/x`` and ``file:///x`` are one file)."""
    from pyspark.sql import functions as F
    return F.regexp_replace(path, "^[a-zA-Z][a-zA-Z0-9+.-]*:/+", "/")


def _file_keys(paths: Iterable[str]) -> set:
    import re
    return {re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*:/+", "/", p) for p in paths}


def _since_watermark(spark, repo: str, name: str, view: Dict[str, Any], version: int,
                     incremental: bool):
    """What the view's watermark says about this run, as the local engine decides it:
    None: read the range in full; "local": rows were removed from the source since the
    watermark (or its version cannot be read), so the local engine runs the view (it
    repairs the deleted keys); else (watermark, files committed since it) for an
    incremental read."""
    wm = _core.materialization_watermark(repo, name)
    if wm is None or wm["source"] != view["source"] or int(wm["source_version"]) > version:
        return None
    old_version = int(wm["source_version"])
    if old_version == version:
        return (wm, set()) if incremental and wm["current"] else None
    try:
        old = _file_keys(spark.read.format("delta").option("versionAsOf", old_version)
                         .load(view["table_uri"]).inputFiles())
    except Exception:  # noqa: BLE001 - log cleaned up past the watermark
        return "local"
    new = _file_keys(spark.read.format("delta").option("versionAsOf", version)
                     .load(view["table_uri"]).inputFiles())
    if old - new:
        return "local"
    if not (incremental and wm["current"]):
        return None
    return wm, new - old


def _ingest_sst(winners, repo: str, view: str, cfg: Dict[str, Any]) -> int:
    """Every partition of `winners` (one row per key, so no key is in two files) written as
    an SST file beside the embedded store, then all of them ingested in one step."""
    from pyspark.sql import functions as F
    folder = os.path.join(os.path.dirname(os.path.abspath(cfg["online_store"])),
                          "spark-sst-" + uuid.uuid4().hex)
    os.makedirs(folder, exist_ok=True)
    try:
        files = (winners.mapInArrow(_sst_writer(repo, view, folder), "path string, keys long")
                 .where(F.col("keys") > 0).collect())
        _core.ingest_online_sst(repo, view, [r["path"] for r in files])
        return sum(int(r["keys"]) for r in files)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _sst_writer(repo: str, view: str, folder: str):
    def write(batches):
        import uuid as _uuid
        from stratalake import _core as core
        path = os.path.join(folder, _uuid.uuid4().hex + ".sst")
        w = core.OnlineSstWriter(repo, view, path)
        for b in batches:
            if b.num_rows:
                w.add(pa.Table.from_batches([b]).__arrow_c_stream__())
        keys = w.finish()
        yield pa.RecordBatch.from_pydict({"path": [path], "keys": [keys]},
                                         schema=pa.schema([("path", pa.string()),
                                                           ("keys", pa.int64())]))
    return write


def _partition_writer(repo: str, view: str):
    def write(batches):
        from stratalake import _core as core
        s = core.Store(repo)
        n = 0
        try:
            for b in batches:
                if b.num_rows:
                    n += s.write_online(view, pa.Table.from_batches([b]).__arrow_c_stream__())
        finally:
            s.close()
        yield pa.RecordBatch.from_pydict({"written": [n]}, schema=pa.schema([("written", pa.int64())]))
    return write


# ---- the CLI's job: python -m stratalake.spark ------------------------------------------

def main(argv: Optional[Sequence[str]] = None) -> int:
    """``stratalake get-historical --engine spark`` and ``stratalake materialize --engine
    spark`` run this (the CLI hands over its parsed arguments as JSON)."""
    import json
    import warnings as _w
    from ._warnings import warning_text
    args = json.loads((argv or sys.argv[1:])[0])
    try:
        if args["command"] == "get-historical" and args["entities"].endswith(".parquet"):
            # The request's errors before Spark starts (it takes seconds to).
            plan(args["repo"], pq.read_schema(args["entities"]), args.get("features", []),
                 args.get("feature_service", ""), bool(args.get("full_feature_names")),
                 args.get("as_of_ms"), args.get("timestamp_column") or "event_timestamp")
        if args["command"] == "get-historical" and args.get("save_as"):
            _core.dataset_table_uri(args["repo"], args["save_as"])  # a free name, checked now
        spark = spark_session(args.get("master") or None)
        if args["command"] == "get-historical":
            output = args.get("output") or ""
            name = args.get("save_as") or ""
            p = historical(spark, args["repo"], args["entities"], output,
                           features=args.get("features", []),
                           feature_service=args.get("feature_service", ""),
                           full_feature_names=bool(args.get("full_feature_names")),
                           as_of_ms=args.get("as_of_ms"),
                           timestamp_column=args.get("timestamp_column") or "event_timestamp",
                           save_as=name)
            result = {"rows": p["rows"], "output": output, "registry_version": p["registry_version"],
                      "features": p["feature_refs"], "engine": "spark",
                      "sources": {s["source"]: s["version"] for s in p["sources"]},
                      "warnings": [dict(w, message=warning_text(w)) for w in p["warnings"]]}
            if name:
                result["dataset"] = p["dataset"]
        elif args["command"] == "materialize":
            result = {"views": materialize(spark, args["repo"], args.get("start_us"),
                                           args["end_us"], args.get("views", []),
                                           bool(args.get("incremental")))}
        else:
            raise DefinitionError(f"unknown command {args['command']!r}")
        result["summary"] = _summary(args["command"], result)
        print(json.dumps(result, default=str))
        return 0
    except Exception as e:  # noqa: BLE001 - the CLI prints the message as its error
        _w.filterwarnings("ignore")
        print(json.dumps({"error": str(e)}))
        return 1


def _summary(command: str, result: Dict[str, Any]) -> str:
    if command == "materialize":
        return "".join(f"{v['view']}: {v['rows_read']} rows in range, {v['keys_written']} keys "
                       f"written (source version {v['to_version']}"
                       f"{', incremental from ' + str(v['from_version']) if v['incremental'] else ''}"
                       f", {'Spark' if v['engine'] == 'spark' else 'local engine: rows were deleted'})\n"
                       for v in result["views"])
    text = (f"training set: {result['rows']} rows (registry version "
            f"{result['registry_version']}, Spark engine)\n")
    for name, version in result["sources"].items():
        text += f"  source {name}: Delta version {version}\n"
    if result["output"]:
        text += f"written to {result['output']} (a Delta table)\n"
    if "dataset" in result:
        text += f"saved as dataset '{result['dataset']['name']}' ({result['dataset']['table_uri']})\n"
    return text


if __name__ == "__main__":
    sys.exit(main())
