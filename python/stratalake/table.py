"""Delta tables: :class:`DeltaTable` and :func:`write_deltalake`, shaped like the
``deltalake`` (delta-rs) package so code written for it reads the same."""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Literal, Mapping, Optional, Sequence, Union

import pyarrow as pa

from . import _core
from ._arrow import as_stream_capsule, reader_from_capsule, table_from_capsule, to_pandas, to_polars
from ._errors import DefinitionError, UnsupportedFeatureError
from ._time import to_millis

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


class DeltaTable:
    """A Delta table at ``table_uri`` (a local path, ``file://`` or ``s3://`` URI),
    loaded at its latest version, or at ``version``, or as of ``timestamp``.

    >>> dt = DeltaTable("lake/orders")
    >>> dt.version(), dt.to_pandas().shape
    """

    def __init__(self, table_uri: PathLike, version: Optional[int] = None,
                 timestamp: Union[str, dt.datetime, int, None] = None):
        if version is not None and timestamp is not None:
            raise DefinitionError("pass either version or timestamp, not both")
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

    def schema(self) -> pa.Schema:
        """The table's schema as a pyarrow Schema."""
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

    def files(self) -> List[str]:
        """Paths (relative to the table, as in the log) of the live data files."""
        return [f["path"] for f in self._snapshot.files()]

    def file_uris(self) -> List[str]:
        root = self.table_uri.rstrip("/")
        return [p if "://" in p or p.startswith("/") else f"{root}/{p}" for p in self.files()]

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
    def to_pyarrow_table(self, columns: Optional[Sequence[str]] = None,
                         filter: Optional[str] = None) -> pa.Table:
        """Read the loaded version. ``filter`` is a predicate such as
        ``"country = 'DE' AND amount > 10"``; files whose partition values or statistics
        rule it out are skipped."""
        return table_from_capsule(self._table.read(self._snapshot, list(columns) if columns else None,
                                                   filter or ""))

    def to_batches(self, columns: Optional[Sequence[str]] = None,
                   filter: Optional[str] = None) -> pa.RecordBatchReader:
        """Stream the loaded version file by file (memory holds one file at a time)."""
        return reader_from_capsule(self._table.read_batches(
            self._snapshot, list(columns) if columns else None, filter or ""))

    def to_pandas(self, columns: Optional[Sequence[str]] = None, filter: Optional[str] = None):
        return to_pandas(self.to_pyarrow_table(columns, filter))

    def to_polars(self, columns: Optional[Sequence[str]] = None, filter: Optional[str] = None):
        return to_polars(self.to_pyarrow_table(columns, filter))

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self.to_batches().__arrow_c_stream__(requested_schema)

    # ---- changing ----
    def delete(self, predicate: Optional[str] = None) -> Dict[str, Any]:
        """Delete the rows matching ``predicate`` (all rows when None); returns the commit metrics."""
        r = self._table.delete(predicate or "TRUE")
        self.update_incremental()
        return r

    def update(self, updates: Optional[Mapping[str, str]] = None,
               new_values: Optional[Mapping[str, Any]] = None,
               predicate: Optional[str] = None) -> Dict[str, Any]:
        """Set columns on the rows matching ``predicate``: ``updates`` maps columns to
        expressions (``{"amount": "amount * 0.9"}``), ``new_values`` to Python values."""
        if bool(updates) == bool(new_values):
            raise DefinitionError("pass exactly one of updates (expressions) and new_values (values)")
        pairs = dict(updates) if updates else {k: _sql_literal(v) for k, v in new_values.items()}
        r = self._table.update(predicate or "", ", ".join(f"`{k}` = {v}" for k, v in pairs.items()))
        self.update_incremental()
        return r

    def merge(self, source: Any, predicate: Optional[str] = None, *, on: Optional[Sequence[str]] = None,
              source_alias: str = "source", target_alias: str = "target",
              merge_schema: bool = False) -> "TableMerger":
        """Start an upsert of ``source`` (any Arrow-compatible data) into this table.

        Rows match on key columns: ``on=["id"]``, or a predicate of equalities
        ``"target.id = source.id AND target.day = source.day"``. Add clauses, then
        ``execute()``:

        >>> dt.merge(df, on=["id"]).when_matched_update_all().when_not_matched_insert_all().execute()
        """
        if (source_alias, target_alias) != ("source", "target"):
            raise UnsupportedFeatureError("merge conditions name the tables 'source' and 'target'; "
                                          "other aliases are not supported")
        keys = list(on) if on else _keys_from_predicate(predicate)
        return TableMerger(self, as_stream_capsule(source, "source"), keys, merge_schema)

    def restore(self, target: Union[int, str, dt.datetime]) -> Dict[str, Any]:
        """Make the latest version's content that of ``target`` (a version, or a time)."""
        if isinstance(target, int):
            r = self._table.restore(version=target)
        else:
            r = self._table.restore(timestamp_ms=to_millis(target, "target"))
        self.update_incremental()
        return r

    def vacuum(self, retention_hours: Optional[int] = None, dry_run: bool = True,
               enforce_retention_duration: bool = True) -> List[str]:
        """Delete files removed from the table longer ago than the retention period
        (default ``delta.deletedFileRetentionDuration``, 7 days). Dry run by default:
        returns the files that would be deleted."""
        return self._table.vacuum(retention_hours, dry_run, enforce_retention_duration)

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


@dataclass
class TableMerger:
    """Builder of a merge; clauses apply in the order added (the first matching one wins)."""
    _table: DeltaTable
    _source: Any
    _on: List[str]
    _merge_schema: bool
    _matched: List[tuple] = field(default_factory=list)
    _not_matched: List[str] = field(default_factory=list)

    def when_matched_update(self, updates: Mapping[str, str], predicate: Optional[str] = None) -> "TableMerger":
        """Matched rows (and ``predicate``): set ``updates`` (column -> expression over
        ``source.x`` / ``target.x``)."""
        assignments = ", ".join(f"`{k}` = {v}" for k, v in updates.items())
        self._matched.append(("update", predicate or "", assignments))
        return self

    def when_matched_update_all(self, predicate: Optional[str] = None) -> "TableMerger":
        """Matched rows (and ``predicate``): take every column from the source."""
        self._matched.append(("update_all", predicate or "", ""))
        return self

    def when_matched_delete(self, predicate: Optional[str] = None) -> "TableMerger":
        self._matched.append(("delete", predicate or "", ""))
        return self

    def when_not_matched_insert_all(self, predicate: Optional[str] = None) -> "TableMerger":
        """Source rows with no match (and ``predicate``): insert them."""
        self._not_matched.append(predicate or "")
        return self

    def when_not_matched_insert(self, updates: Optional[Mapping[str, str]] = None,
                                predicate: Optional[str] = None) -> "TableMerger":
        """Insert unmatched source rows. Only whole rows are inserted: ``updates`` may
        only map columns to the same source column."""
        for k, v in (updates or {}).items():
            if v.strip().strip("`") not in (f"source.{k}", k):
                raise UnsupportedFeatureError(
                    f"when_not_matched_insert: {k} = {v}: inserts take the source row as it is; "
                    "compute the column in the source data instead")
        return self.when_not_matched_insert_all(predicate)

    def execute(self) -> Dict[str, Any]:
        """Run the merge as one commit; returns the commit metrics."""
        r = self._table._table.merge(self._source, self._on, self._matched, self._not_matched,
                                     self._merge_schema)
        self._table.update_incremental()
        return r


class TableOptimizer:
    """``optimize.compact()`` (bin-packing) and ``optimize.z_order(columns)``."""

    def __init__(self, table: DeltaTable):
        self._table = table

    def compact(self, partition_filters: Optional[str] = None,
                target_size: Optional[int] = None) -> Dict[str, Any]:
        return self(where=partition_filters, target_size=target_size)

    def z_order(self, columns: Iterable[str], partition_filters: Optional[str] = None,
                target_size: Optional[int] = None) -> Dict[str, Any]:
        return self(where=partition_filters, target_size=target_size, zorder_by=list(columns))

    def __call__(self, where: Optional[str] = None, target_size: Optional[int] = None,
                 zorder_by: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        r = self._table._table.optimize(where or "", target_size, list(zorder_by or []))
        self._table.update_incremental()
        return r


def write_deltalake(table_or_uri: Union[PathLike, DeltaTable], data: Any, *,
                    mode: WriteMode = "error", partition_by: Optional[Union[str, Sequence[str]]] = None,
                    schema_mode: Optional[Literal["merge", "overwrite"]] = None,
                    predicate: Optional[str] = None, configuration: Optional[Mapping[str, str]] = None,
                    name: Optional[str] = None, description: Optional[str] = None) -> Dict[str, Any]:
    """Write ``data`` (any Arrow-compatible input) to a Delta table, creating it when missing.

    ``mode``: ``"error"`` (default, as in deltalake: fail if the table exists), ``"append"``,
    ``"overwrite"`` (with ``predicate``: replace only the matching rows) or ``"ignore"``
    (do nothing if it exists). ``schema_mode="merge"`` adds new columns;
    ``"overwrite"`` replaces the schema. Returns the commit (version, metrics).
    """
    uri = table_or_uri.table_uri if isinstance(table_or_uri, DeltaTable) else os.fspath(table_or_uri)
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
