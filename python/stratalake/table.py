"""Delta tables: :class:`DeltaTable` and :func:`write_deltalake`, shaped like the
``deltalake`` (delta-rs) package so code written for it reads the same."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Literal, Mapping, Optional, Sequence, Union

import pyarrow as pa
import pyarrow.compute as pc

from . import _core
from ._arrow import as_stream_capsule, reader_from_capsule, table_from_capsule, to_pandas, to_polars
from ._errors import DefinitionError, UnsupportedFeatureError
from ._time import to_millis
from .schema import Field, Schema

# deltalake's filters: a conjunction [(column, op, value), ...] or a disjunction of
# conjunctions [[...], [...]] (DNF).
FilterLiteral = Any
FilterConjunctionType = List[tuple]
FilterDNFType = List[FilterConjunctionType]
FilterType = Union[FilterConjunctionType, FilterDNFType]
_FILTER_OPS = ("=", "==", "!=", "<", "<=", ">", ">=", "in", "not in")

PathLike = Union[str, "os.PathLike[str]"]
WriteMode = Literal["append", "overwrite", "error", "ignore"]


@dataclass(frozen=True)
class Metadata:
    """A table's metadata (the ``metaData`` action of its current version)."""
    id: str
    name: Optional[str]
    description: Optional[str]
    partition_columns: List[str]
    configuration: Dict[str, str]
    created_time: Optional[int]


@dataclass(frozen=True)
class ProtocolVersions:
    min_reader_version: int
    min_writer_version: int
    reader_features: Optional[List[str]] = None
    writer_features: Optional[List[str]] = None


def _sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return "TIMESTAMP '" + value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") + "'"
    if isinstance(value, dt.date):
        return "DATE '" + value.isoformat() + "'"
    return "'" + str(value).replace("'", "''") + "'"


def _use_storage_options(uri: str, storage_options: Optional[Mapping[str, str]]) -> None:
    """Register an s3:// table's settings (docs/object-storage.md): ours (endpoint,
    region, access_key_id, ...) or delta-rs's AWS_* names. Ignored for local tables,
    as deltalake does."""
    if storage_options and uri.startswith("s3://"):
        _core.set_object_store_options(uri, {str(k): str(v) for k, v in storage_options.items()})


class DeltaTable:
    """A Delta table at ``table_uri`` (a local path, ``file://`` or ``s3://`` URI),
    loaded at its latest version, or at ``version``, or as of ``timestamp``.
    ``storage_options`` are an ``s3://`` table's settings (endpoint, region, credentials;
    delta-rs's ``AWS_*`` names work too); without them the repository's, the ``AWS_*``
    environment's or the AWS profile's are used (docs/object-storage.md).

    >>> dt = DeltaTable("lake/orders")
    >>> dt.version(), dt.to_pandas().shape
    """

    def __init__(self, table_uri: PathLike, version: Optional[int] = None,
                 timestamp: Union[str, dt.datetime, int, None] = None,
                 storage_options: Optional[Mapping[str, str]] = None):
        if version is not None and timestamp is not None:
            raise DefinitionError("pass either version or timestamp, not both")
        _use_storage_options(os.fspath(table_uri), storage_options)
        self._table = _core.Table(os.fspath(table_uri))
        self._snapshot = self._table.snapshot(
            version=version, timestamp_ms=None if timestamp is None else to_millis(timestamp, "timestamp"))

    # ---- the loaded version ----
    @property
    def table_uri(self) -> str:
        return self._table.uri

    def version(self) -> int:
        """The loaded version."""
        return self._snapshot.version

    def load_as_version(self, version: Union[int, str, dt.datetime]) -> None:
        """Load another version (an int), or the version as of a time (ISO string or datetime)."""
        if isinstance(version, int):
            self._snapshot = self._table.snapshot(version=version)
        else:
            self._snapshot = self._table.snapshot(timestamp_ms=to_millis(version, "version"))

    def update_incremental(self) -> None:
        """Load the latest version."""
        self._snapshot = self._table.snapshot()

    def schema(self) -> Schema:
        """The table's schema (deltalake's :class:`~stratalake.schema.Schema`: ``.fields``,
        ``.to_json()``; ``.to_arrow()`` is the pyarrow Schema the table reads as)."""
        arrow = pa.Schema._import_from_c_capsule(self._snapshot.schema_capsule())
        d = json.loads(self._snapshot.metadata()["schema_string"])
        return Schema([Field._from_json(f) for f in d.get("fields", [])], arrow)

    def _arrow_schema(self) -> pa.Schema:
        return pa.Schema._import_from_c_capsule(self._snapshot.schema_capsule())

    def metadata(self) -> Metadata:
        m = self._snapshot.metadata()
        return Metadata(id=m["id"], name=m["name"], description=m["description"],
                        partition_columns=list(m["partition_columns"]),
                        configuration=dict(m["configuration"]), created_time=m["created_time"])

    def protocol(self) -> ProtocolVersions:
        m = self._snapshot.metadata()
        return ProtocolVersions(m["min_reader_version"], m["min_writer_version"],
                                m["reader_features"], m["writer_features"])

    def files(self, partition_filters: Optional[FilterType] = None) -> List[str]:
        """Paths of the live data files relative to the table (the log's paths,
        URL-decoded as deltalake returns them), in partitions matching
        ``partition_filters``."""
        return [_decoded(f["path"]) for f in self._live_files(partition_filters)]

    def file_uris(self, partition_filters: Optional[FilterType] = None) -> List[str]:
        """Where the live data files are: absolute local paths (or URIs for object
        stores), as they exist in storage."""
        root = self.table_uri.rstrip("/")
        out = []
        for p in self.files(partition_filters):
            if p.startswith("file://"):
                p = urllib.parse.unquote(urllib.parse.urlparse(p).path)
            out.append(p if "://" in p or p.startswith("/") else f"{root}/{p}")
        return out

    def _live_files(self, partition_filters: Optional[FilterType] = None) -> List[Dict[str, Any]]:
        files = self._snapshot.files()
        if not partition_filters:
            return files
        keep = _partition_matcher(partition_filters, self._arrow_schema(),
                                  self._snapshot.metadata()["partition_columns"])
        return [f for f in files if keep(f["partition_values"])]

    def get_add_actions(self) -> pa.Table:
        """One row per live file: path, size, modification time, partition values, stats."""
        files = self._snapshot.files()
        return pa.table({
            "path": [f["path"] for f in files],
            "size_bytes": pa.array([f["size"] for f in files], pa.int64()),
            "modification_time": pa.array([f["modification_time"] for f in files], pa.timestamp("ms", "UTC")),
            "partition_values": [f["partition_values"] or None for f in files],
            "stats": [f["stats"] or None for f in files],
            "has_deletion_vector": [f["deletion_vector"] for f in files],
        })

    def history(self, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        """Commit information, newest first (``operation``, ``operationParameters``, ...)."""
        return self._table.history(limit or 0)

    # ---- reading ----
    def to_pyarrow_table(self, partitions: Optional[FilterType] = None,
                         columns: Optional[Sequence[str]] = None, filesystem: Any = None,
                         filters: Union[FilterType, "pc.Expression", None] = None, *,
                         filter: Optional[str] = None) -> pa.Table:
        """Read the loaded version, as deltalake's ``to_pyarrow_table``: ``partitions``
        and ``filters`` are DNF filters (``[("x", ">", 5.0)]``, or a list of such
        lists OR-ed; ops ``= != < <= > >= in not in``), ``filters`` may also be a
        pyarrow compute Expression. ``filter`` (StrataLake's) is a predicate string
        such as ``"country = 'DE' AND amount > 10"``. Files whose partition values or
        statistics rule the filter out are skipped."""
        if filesystem is not None:
            raise UnsupportedFeatureError("filesystem=: StrataLake reads through its own "
                                          "filesystem; pass the table's URI instead")
        expr = filters if isinstance(filters, pc.Expression) else None
        predicate = self._predicate(partitions, None if expr is not None else filters, filter)
        cols = list(columns) if columns is not None else None
        if expr is not None and cols is not None:
            needed = cols + [c for c in self._arrow_schema().names if c not in cols]
            t = table_from_capsule(self._table.read(self._snapshot, needed, predicate))
            return t.filter(expr).select(cols)
        t = table_from_capsule(self._table.read(self._snapshot, cols, predicate))
        return t.filter(expr) if expr is not None else t

    def to_pyarrow_dataset(self, partitions: Optional[FilterType] = None, filesystem: Any = None,
                           parquet_read_options: Any = None, schema: Optional[pa.Schema] = None,
                           as_large_types: bool = False) -> Any:
        """A pyarrow ``FileSystemDataset`` of the loaded version's Parquet files, with
        partition values as fragment expressions (as deltalake builds it). Tables with
        deletion vectors or column mapping cannot be read as plain Parquet: use
        :meth:`to_pyarrow_table`."""
        import pyarrow.dataset as ds
        import pyarrow.fs as pafs
        if self._snapshot.metadata()["configuration"].get("delta.columnMapping.mode", "none") != "none":
            raise UnsupportedFeatureError("to_pyarrow_dataset: the table uses column mapping, so its "
                                          "Parquet files do not hold the logical column names; "
                                          "use to_pyarrow_table()")
        files = self._live_files(partitions)
        if any(f["deletion_vector"] for f in files):
            raise UnsupportedFeatureError("to_pyarrow_dataset: files have deletion vectors, which plain "
                                          "Parquet readers cannot apply; use to_pyarrow_table()")
        arrow = self._arrow_schema()
        root = self.table_uri.rstrip("/")
        if filesystem is None:
            filesystem, root = pafs.FileSystem.from_uri(root if "://" in root else "file://" + root)
        fmt = ds.ParquetFileFormat(read_options=parquet_read_options) if parquet_read_options \
            else ds.ParquetFileFormat()
        part_cols = self._snapshot.metadata()["partition_columns"]
        fragments = []
        for f in files:
            p = _decoded(f["path"])
            if "://" in p:
                p = urllib.parse.unquote(urllib.parse.urlparse(p).path)
            elif not p.startswith("/"):
                p = f"{root}/{p}"
            expr = None
            for c in part_cols:
                v = f["partition_values"].get(c)
                e = pc.field(c).is_null() if v is None else \
                    pc.field(c) == pa.scalar(_partition_scalar(v, arrow.field(c).type))
                expr = e if expr is None else expr & e
            fragments.append(fmt.make_fragment(p, filesystem=filesystem, partition_expression=expr)
                             if expr is not None else fmt.make_fragment(p, filesystem=filesystem))
        out_schema = schema if schema is not None else self.schema().to_arrow(as_large_types)
        return ds.FileSystemDataset(fragments, out_schema, fmt, filesystem)

    def _predicate(self, partitions: Optional[FilterType], filters: Optional[FilterType],
                   filter: Optional[str]) -> str:
        parts = [p for p in (_dnf_to_predicate(partitions, "partitions"),
                             _dnf_to_predicate(filters, "filters"), filter) if p]
        return " AND ".join(f"({p})" for p in parts)

    def to_batches(self, columns: Optional[Sequence[str]] = None,
                   filter: Optional[str] = None, *,
                   filters: Optional[FilterType] = None) -> pa.RecordBatchReader:
        """Stream the loaded version file by file (memory holds one file at a time)."""
        return reader_from_capsule(self._table.read_batches(
            self._snapshot, list(columns) if columns else None, self._predicate(None, filters, filter)))

    def to_pandas(self, partitions: Optional[FilterType] = None,
                  columns: Optional[Sequence[str]] = None, filesystem: Any = None,
                  filters: Union[FilterType, "pc.Expression", None] = None,
                  types_mapper: Any = None, *, filter: Optional[str] = None):
        """:meth:`to_pyarrow_table` as a pandas DataFrame (deltalake's signature)."""
        t = self.to_pyarrow_table(partitions, columns, filesystem, filters, filter=filter)
        return to_pandas(t, types_mapper=types_mapper) if types_mapper else to_pandas(t)

    def to_polars(self, columns: Optional[Sequence[str]] = None, filter: Optional[str] = None, *,
                  filters: Optional[FilterType] = None):
        return to_polars(self.to_pyarrow_table(columns=columns, filters=filters, filter=filter))

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self.to_batches().__arrow_c_stream__(requested_schema)

    # ---- changing ----
    def delete(self, predicate: Optional[str] = None, writer_properties: Any = None,
               post_commithook_properties: Any = None, commit_properties: Any = None) -> Dict[str, Any]:
        """Delete the rows matching ``predicate`` (all rows when None). Returns deltalake's
        metrics: num_deleted_rows, num_copied_rows, num_added_files, num_removed_files,
        execution_time_ms, scan_time_ms, rewrite_time_ms."""
        start = time.perf_counter()
        m = self._table.delete(predicate or "TRUE")["metrics"]
        self.update_incremental()
        return {"num_added_files": m.get("numAddedFiles", 0),
                "num_removed_files": m.get("numRemovedFiles", 0),
                "num_deleted_rows": m.get("numDeletedRows", 0),
                "num_copied_rows": m.get("numCopiedRows", 0),
                **_times(start, "execution_time_ms", "scan_time_ms", "rewrite_time_ms")}

    def update(self, updates: Optional[Mapping[str, str]] = None,
               new_values: Optional[Mapping[str, Any]] = None,
               predicate: Optional[str] = None, writer_properties: Any = None,
               error_on_type_mismatch: bool = True, post_commithook_properties: Any = None,
               commit_properties: Any = None) -> Dict[str, Any]:
        """Set columns on the rows matching ``predicate``: ``updates`` maps columns to
        expressions (``{"amount": "amount * 0.9"}``), ``new_values`` to Python values."""
        if bool(updates) == bool(new_values):
            raise DefinitionError("pass exactly one of updates (expressions) and new_values (values)")
        pairs = dict(updates) if updates else {k: _sql_literal(v) for k, v in new_values.items()}
        start = time.perf_counter()
        m = self._table.update(predicate or "", ", ".join(f"`{k}` = {v}" for k, v in pairs.items()))["metrics"]
        self.update_incremental()
        return {"num_added_files": m.get("numAddedFiles", 0),
                "num_removed_files": m.get("numRemovedFiles", 0),
                "num_updated_rows": m.get("numUpdatedRows", 0),
                "num_copied_rows": m.get("numCopiedRows", 0),
                **_times(start, "execution_time_ms", "scan_time_ms")}

    def merge(self, source: Any, predicate: Optional[str] = None,
              source_alias: Optional[str] = None, target_alias: Optional[str] = None,
              merge_schema: bool = False, error_on_type_mismatch: bool = True,
              writer_properties: Any = None, streamed_exec: bool = True,
              post_commithook_properties: Any = None, commit_properties: Any = None, *,
              on: Optional[Sequence[str]] = None) -> "TableMerger":
        """Start an upsert of ``source`` (any Arrow-compatible data) into this table.

        Rows match on key columns: ``on=["id"]``, or a predicate of equalities
        ``"target.id = source.id AND target.day = source.day"``. Add clauses, then
        ``execute()``. ``source_alias``/``target_alias`` name the two sides in the
        predicate, clause conditions and update expressions (default ``source`` and
        ``target``):

        >>> dt.merge(df, on=["id"]).when_matched_update_all().when_not_matched_insert_all().execute()
        >>> dt.merge(df, "t.id = s.id", source_alias="s", target_alias="t")
        """
        aliases = _Aliases(source_alias or "source", target_alias or "target")
        keys = list(on) if on else _keys_from_predicate(aliases.rewrite(predicate) if predicate else None)
        return TableMerger(self, as_stream_capsule(source, "source"), keys, merge_schema, aliases)

    def restore(self, target: Union[int, str, dt.datetime], *, ignore_missing_files: bool = False,
                protocol_downgrade_allowed: bool = False, commit_properties: Any = None) -> Dict[str, Any]:
        """Make the latest version's content that of ``target`` (a version, or a time).
        Returns deltalake's metrics: numRemovedFile, numRestoredFile."""
        if isinstance(target, int):
            r = self._table.restore(version=target)
        else:
            r = self._table.restore(timestamp_ms=to_millis(target, "target"))
        self.update_incremental()
        m = r["metrics"]
        return {"numRemovedFile": m.get("numRemovedFiles", 0),
                "numRestoredFile": m.get("numRestoredFiles", 0)}

    def vacuum(self, retention_hours: Optional[int] = None, dry_run: bool = True,
               enforce_retention_duration: bool = True, post_commithook_properties: Any = None,
               commit_properties: Any = None, full: bool = False,
               keep_versions: Optional[List[int]] = None) -> List[str]:
        """Delete files removed from the table longer ago than the retention period
        (default ``delta.deletedFileRetentionDuration``, 7 days). Dry run by default:
        returns the files that would be deleted, relative to the table (as deltalake).
        A real run records ``VACUUM START`` and ``VACUUM END`` commits when it deletes
        files."""
        if keep_versions:
            raise UnsupportedFeatureError("vacuum(keep_versions=...) is not supported")
        files = self._table.vacuum(retention_hours, dry_run, enforce_retention_duration)
        if not dry_run:
            self.update_incremental()
        root = self.table_uri.rstrip("/") + "/"
        return [f[len(root):] if f.startswith(root) else f for f in files]

    @property
    def optimize(self) -> "TableOptimizer":
        """``dt.optimize.compact()``, ``dt.optimize.z_order(["a", "b"])``, or ``dt.optimize(...)``."""
        return TableOptimizer(self)

    def set_properties(self, properties: Mapping[str, str]) -> Dict[str, Any]:
        r = self._table.set_properties(dict(properties))
        self.update_incremental()
        return r

    def __repr__(self) -> str:
        return f"DeltaTable({self.table_uri!r}, version={self.version()})"

    def _repr_html_(self) -> str:
        import html
        md = self._snapshot.metadata()
        schema = pa.Schema._import_from_c_capsule(self._snapshot.schema_capsule())
        cols = ", ".join(f"{f.name}: {f.type}" for f in schema)
        parts = f", partitioned by {', '.join(md['partition_columns'])}" if md["partition_columns"] else ""
        return (f"<b>DeltaTable</b> <code>{html.escape(self.table_uri)}</code> version "
                f"{self.version()}: {md['num_records']:,} rows in {len(self._snapshot.files()):,} files"
                f"{html.escape(parts)}<br><small>{html.escape(cols)}</small>")


def _keys_from_predicate(predicate: Optional[str]) -> List[str]:
    if not predicate:
        raise DefinitionError("merge needs the key columns: on=[...] or a predicate like "
                              "'target.id = source.id'")
    keys = []
    for part in predicate.replace(" and ", " AND ").split(" AND "):
        sides = [s.strip().strip("`") for s in part.split("=")]
        if len(sides) != 2:
            break
        a, b = sides
        names = {a.split(".", 1)[0]: a.split(".", 1)[-1], b.split(".", 1)[0]: b.split(".", 1)[-1]}
        if set(names) != {"source", "target"} or names["source"] != names["target"]:
            break
        keys.append(names["source"])
    else:
        return keys
    raise UnsupportedFeatureError(
        f"merge predicate {predicate!r}: only equalities of the same column on both sides are "
        "supported ('target.id = source.id AND ...'); put other conditions on the clauses")


class _Aliases:
    """Rewrites ``alias.column`` references of a merge into the engine's
    ``source.column`` / ``target.column`` (outside string literals)."""

    def __init__(self, source: str, target: str):
        if source == target:
            raise DefinitionError(f"source_alias and target_alias are both {source!r}; "
                                  "give the two sides different names")
        self.source, self.target = source, target
        names = "|".join(re.escape(a) for a in (source, target))
        self._ref = re.compile(r"(?<![\w.`])(`?)(" + names + r")\1\.")

    def rewrite(self, text: str) -> str:
        if (self.source, self.target) == ("source", "target"):
            return text
        out, pos = [], 0
        # Split on single-quoted literals ('' is an escaped quote) and only rewrite outside.
        for m in re.finditer(r"'(?:[^']|'')*'", text):
            out.append(self._sub(text[pos:m.start()]))
            out.append(m.group(0))
            pos = m.end()
        out.append(self._sub(text[pos:]))
        return "".join(out)

    def _sub(self, part: str) -> str:
        return self._ref.sub(lambda m: ("source." if m.group(2) == self.source else "target."), part)


@dataclass
class TableMerger:
    """Builder of a merge; clauses apply in the order added (the first matching one wins)."""
    _table: DeltaTable
    _source: Any
    _on: List[str]
    _merge_schema: bool
    _aliases: _Aliases = field(default_factory=lambda: _Aliases("source", "target"))
    _matched: List[tuple] = field(default_factory=list)
    _not_matched: List[str] = field(default_factory=list)

    def _expr(self, text: Optional[str]) -> str:
        return self._aliases.rewrite(text) if text else ""

    def when_matched_update(self, updates: Mapping[str, str], predicate: Optional[str] = None) -> "TableMerger":
        """Matched rows (and ``predicate``): set ``updates`` (column -> expression over
        ``source.x`` / ``target.x``, or the aliases given to ``merge``)."""
        assignments = ", ".join(f"`{k}` = {self._expr(v)}" for k, v in updates.items())
        self._matched.append(("update", self._expr(predicate), assignments))
        return self

    def when_matched_update_all(self, predicate: Optional[str] = None,
                                except_cols: Optional[List[str]] = None) -> "TableMerger":
        """Matched rows (and ``predicate``): take every column from the source."""
        if except_cols:
            raise UnsupportedFeatureError("when_matched_update_all(except_cols=...) is not supported; "
                                          "use when_matched_update with the columns to set")
        self._matched.append(("update_all", self._expr(predicate), ""))
        return self

    def when_matched_delete(self, predicate: Optional[str] = None) -> "TableMerger":
        self._matched.append(("delete", self._expr(predicate), ""))
        return self

    def when_not_matched_insert_all(self, predicate: Optional[str] = None,
                                    except_cols: Optional[List[str]] = None) -> "TableMerger":
        """Source rows with no match (and ``predicate``): insert them."""
        if except_cols:
            raise UnsupportedFeatureError("when_not_matched_insert_all(except_cols=...) is not supported")
        self._not_matched.append(self._expr(predicate))
        return self

    def when_not_matched_insert(self, updates: Optional[Mapping[str, str]] = None,
                                predicate: Optional[str] = None) -> "TableMerger":
        """Insert unmatched source rows. Only whole rows are inserted: ``updates`` may
        only map columns to the same source column."""
        for k, v in (updates or {}).items():
            if self._expr(v).strip().strip("`") not in (f"source.{k}", k):
                raise UnsupportedFeatureError(
                    f"when_not_matched_insert: {k} = {v}: inserts take the source row as it is; "
                    "compute the column in the source data instead")
        return self.when_not_matched_insert_all(predicate)

    def execute(self) -> Dict[str, Any]:
        """Run the merge as one commit; returns deltalake's metrics (num_source_rows,
        num_target_rows_inserted/updated/deleted/copied, num_output_rows,
        num_target_files_scanned/skipped_during_scan/added/removed and times)."""
        start = time.perf_counter()
        m = self._table._table.merge(self._source, self._on, self._matched, self._not_matched,
                                     self._merge_schema)["metrics"]
        self._table.update_incremental()
        ins, upd, cop = (m.get(k, 0) for k in ("numTargetRowsInserted", "numTargetRowsUpdated",
                                                "numTargetRowsCopied"))
        return {"num_source_rows": m.get("numSourceRows", 0),
                "num_target_rows_inserted": ins,
                "num_target_rows_updated": upd,
                "num_target_rows_deleted": m.get("numTargetRowsDeleted", 0),
                "num_target_rows_copied": cop,
                "num_output_rows": ins + upd + cop,
                "num_target_files_scanned": m.get("numTargetFilesScanned", 0),
                "num_target_files_skipped_during_scan": m.get("numTargetFilesSkippedDuringScan", 0),
                "num_target_files_added": m.get("numTargetFilesAdded", 0),
                "num_target_files_removed": m.get("numTargetFilesRemoved", 0),
                **_times(start, "execution_time_ms", "scan_time_ms", "rewrite_time_ms")}


class TableOptimizer:
    """``optimize.compact()`` (bin-packing) and ``optimize.z_order(columns)``."""

    def __init__(self, table: DeltaTable):
        self._table = table

    def compact(self, partition_filters: Union[FilterType, str, None] = None,
                target_size: Optional[int] = None, max_concurrent_tasks: Optional[int] = None,
                min_commit_interval: Any = None, writer_properties: Any = None,
                post_commithook_properties: Any = None,
                commit_properties: Any = None) -> Dict[str, Any]:
        """Bin-pack small files. Returns deltalake's metrics (numFilesAdded,
        numFilesRemoved, filesAdded/filesRemoved as JSON text of
        avg/max/min/totalFiles/totalSize, partitionsOptimized, numBatches,
        totalConsideredFiles, totalFilesSkipped, preserveInsertionOrder)."""
        return self._run(partition_filters, target_size, [])

    def z_order(self, columns: Iterable[str], partition_filters: Union[FilterType, str, None] = None,
                target_size: Optional[int] = None, max_concurrent_tasks: Optional[int] = None,
                max_spill_size: Optional[int] = None, min_commit_interval: Any = None,
                writer_properties: Any = None, post_commithook_properties: Any = None,
                commit_properties: Any = None) -> Dict[str, Any]:
        """Rewrite files sorted by the Z-order of ``columns``; metrics as ``compact``."""
        return self._run(partition_filters, target_size, list(columns))

    def __call__(self, where: Optional[str] = None, target_size: Optional[int] = None,
                 zorder_by: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        return self._run(where, target_size, list(zorder_by or []))

    def _run(self, partition_filters: Union[FilterType, str, None], target_size: Optional[int],
             zorder_by: List[str]) -> Dict[str, Any]:
        t = self._table
        t.update_incremental()
        if isinstance(partition_filters, str) or not partition_filters:
            where, considered = partition_filters or "", None
        else:
            where = _dnf_to_predicate(partition_filters, "partition_filters")
            considered = len(t._live_files(partition_filters))
        before = {f["path"]: f for f in t._snapshot.files()}
        t._table.optimize(where, target_size, zorder_by)
        t.update_incremental()
        after = {f["path"]: f for f in t._snapshot.files()}
        removed = [f for p, f in before.items() if p not in after]
        added = [f for p, f in after.items() if p not in before]
        if considered is None:  # no filter, or a predicate string: every live file
            considered = len(before)
        partitions = {json.dumps(f["partition_values"], sort_keys=True) for f in removed}
        return {"numFilesAdded": len(added), "numFilesRemoved": len(removed),
                "filesAdded": _size_stats(added), "filesRemoved": _size_stats(removed),
                "partitionsOptimized": 0 if zorder_by else len(partitions),
                "numBatches": len(removed),
                "totalConsideredFiles": considered,
                "totalFilesSkipped": considered - len(removed),
                "preserveInsertionOrder": True}


def _size_stats(files: List[Dict[str, Any]]) -> str:
    sizes = [f["size"] for f in files]
    return json.dumps({"avg": (sum(sizes) / len(sizes)) if sizes else 0.0,
                       "max": max(sizes, default=0), "min": min(sizes, default=0),
                       "totalFiles": len(sizes), "totalSize": sum(sizes)}, separators=(",", ":"))


def _times(start: float, *keys: str) -> Dict[str, int]:
    """deltalake's timing keys: the call's wall time in ms for execution_time_ms;
    the engine does not time its phases apart, so the others are 0."""
    ms = int((time.perf_counter() - start) * 1000)
    return {k: (ms if k == "execution_time_ms" else 0) for k in keys}


def _decoded(path: str) -> str:
    """A log path as deltalake's files() shows it: relative paths URL-decoded."""
    return path if "://" in path else urllib.parse.unquote(path)


def _partition_scalar(value: str, type_: pa.DataType) -> Any:
    """A partition value (text, as in the log) as a scalar of the column's type."""
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return pa.scalar(value, type_)
    if pa.types.is_boolean(type_):
        return pa.scalar(value.lower() == "true")
    if pa.types.is_timestamp(type_):
        t = dt.datetime.fromisoformat(value.replace(" ", "T").replace("Z", "+00:00"))
        if type_.tz and t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone.utc)
        return pa.scalar(t, type_)
    if pa.types.is_binary(type_):
        return pa.scalar(value.encode(), type_)
    return pa.array([value]).cast(type_)[0]


def _check_filter(f: Any, what: str) -> tuple:
    if not isinstance(f, (tuple, list)) or len(f) != 3 or not isinstance(f[0], str):
        raise DefinitionError(f"{what}: {f!r} is not a (column, op, value) tuple")
    col, op, value = f
    op = op.lower() if isinstance(op, str) else op
    if op not in _FILTER_OPS:
        raise DefinitionError(f"{what}: {f!r}: op must be one of {', '.join(_FILTER_OPS)}")
    if op in ("in", "not in") and (isinstance(value, (str, bytes)) or not isinstance(value, Iterable)):
        raise DefinitionError(f"{what}: {f!r}: '{op}' needs a list of values")
    return col, op, value


def _dnf(filters: FilterType, what: str) -> List[List[tuple]]:
    if not isinstance(filters, (list, tuple)):
        raise DefinitionError(f"{what} must be a list of (column, op, value) tuples, or a list of "
                              f"such lists (OR-ed), not {type(filters).__name__}")
    if filters and all(isinstance(c, list) for c in filters):
        return [[_check_filter(f, what) for f in conj] for conj in filters]
    return [[_check_filter(f, what) for f in filters]]


def _dnf_to_predicate(filters: Optional[FilterType], what: str) -> str:
    """deltalake's DNF filters as a predicate of StrataLake's expression language."""
    if filters is None:
        return ""
    if isinstance(filters, str):
        return filters
    ors = []
    for conj in _dnf(filters, what):
        ands = []
        for col, op, value in conj:
            ref = "`" + col.replace("`", "") + "`"
            if op in ("in", "not in"):
                values = list(value)
                if not values:
                    ands.append("FALSE" if op == "in" else "TRUE")
                    continue
                ands.append(f"{ref} {op.upper()} ({', '.join(_sql_literal(v) for v in values)})")
            elif value is None:
                ands.append(f"{ref} IS {'NOT ' if op == '!=' else ''}NULL")
            else:
                ands.append(f"{ref} {'=' if op == '==' else op} {_sql_literal(value)}")
        ors.append(" AND ".join(ands) if ands else "TRUE")
    return " OR ".join(f"({o})" for o in ors)


def _partition_matcher(filters: FilterType, schema: pa.Schema, partition_columns: List[str]):
    """A test of a file's partition values (text) against DNF filters on partition columns."""
    dnf = _dnf(filters, "partition_filters")
    for conj in dnf:
        for col, _, _ in conj:
            if col not in partition_columns:
                raise DefinitionError(f"partition filter on {col!r}: not a partition column "
                                      f"(partition columns: {', '.join(partition_columns) or 'none'})")

    def value_of(col: str, values: Dict[str, Optional[str]]) -> Any:
        v = values.get(col)
        return None if v is None else _partition_scalar(v, schema.field(col).type).as_py()

    def typed(col: str, v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, str) and not pa.types.is_string(schema.field(col).type):
            return _partition_scalar(v, schema.field(col).type).as_py()
        return v

    def test(col: str, op: str, want: Any, values: Dict[str, Optional[str]]) -> bool:
        have = value_of(col, values)
        if op in ("in", "not in"):
            wanted = [typed(col, w) for w in want]
            return (have in wanted) if op == "in" else (have is not None and have not in wanted)
        w = typed(col, want)
        if have is None or w is None:
            return (have is None and w is None) if op in ("=", "==") else \
                   (op == "!=" and (have is None) != (w is None))
        return {"=": have == w, "==": have == w, "!=": have != w, "<": have < w, "<=": have <= w,
                ">": have > w, ">=": have >= w}[op]

    return lambda values: any(all(test(c, o, v, values) for c, o, v in conj) for conj in dnf)


def write_deltalake(table_or_uri: Union[PathLike, DeltaTable], data: Any, *,
                    mode: WriteMode = "error", partition_by: Optional[Union[str, Sequence[str]]] = None,
                    schema_mode: Optional[Literal["merge", "overwrite"]] = None,
                    predicate: Optional[str] = None, configuration: Optional[Mapping[str, str]] = None,
                    name: Optional[str] = None, description: Optional[str] = None,
                    storage_options: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """Write ``data`` (any Arrow-compatible input) to a Delta table, creating it when missing.

    ``mode``: ``"error"`` (default, as in deltalake: fail if the table exists), ``"append"``,
    ``"overwrite"`` (with ``predicate``: replace only the matching rows) or ``"ignore"``
    (do nothing if it exists). ``schema_mode="merge"`` adds new columns;
    ``"overwrite"`` replaces the schema. ``storage_options``: as for :class:`DeltaTable`.
    Returns the commit (version, metrics).
    """
    uri = table_or_uri.table_uri if isinstance(table_or_uri, DeltaTable) else os.fspath(table_or_uri)
    _use_storage_options(uri, storage_options)
    if isinstance(partition_by, str):
        partition_by = [partition_by]
    if predicate and mode != "overwrite":
        raise DefinitionError("predicate (replaceWhere) needs mode='overwrite'")
    result = _core.Table(uri).write(
        as_stream_capsule(data), mode, list(partition_by) if partition_by else None, schema_mode,
        predicate, dict(configuration) if configuration else None, name, description)
    if isinstance(table_or_uri, DeltaTable):
        table_or_uri.update_incremental()
    return result
