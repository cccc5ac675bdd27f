"""The feature store: definitions, training sets, the online store — shaped like
Feast's ``FeatureStore`` so its users find their way at once."""
from __future__ import annotations

import getpass
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, TypedDict, Union

import pyarrow as pa
import pyarrow.parquet as pq

from . import _core
from ._arrow import as_stream_capsule, html_table, table_from_capsule, to_pandas, to_polars
from ._errors import DefinitionError, ObjectNotFoundError
from .definitions import (DataSource, Entity, FeatureService, FeatureView, OnDemandFeatureView,
                          RequestSource, TransformationDefinition)
from ._progress import Progress
from ._time import TimeLike, to_micros, to_millis
from ._warnings import warn_all

PathLike = Union[str, "os.PathLike[str]"]


class ApplyResult(TypedDict):
    """What :meth:`FeatureStore.apply` did."""
    version: int   # the registry version now current
    changed: bool  # False: the definitions were already registered
    plan: str      # the changes, as `plan()` shows them


class IngestReport(TypedDict):
    """What :meth:`FeatureStore.ingest` loaded."""
    table_uri: str
    rows_read: int
    rows_written: int
    rows_rejected: int  # kept in the quarantine table (quarantine=True)
    version: int        # the Delta commit
    summary: str        # one line for people


class ViewMaterialization(TypedDict):
    """One feature view's part of a materialization."""
    view: str
    source: str
    incremental: bool
    from_version: int
    to_version: int
    files_read: int
    files_total: int
    rows_read: int
    rows_written: int
    keys_repaired: int
    repair_passes: int
    rebuilt: bool           # read in full (rows removed beyond what keyed repair takes, ...)
    # Window views (docs/windows.md); 0 / False / "" for other views:
    tiles_written: int      # tiles written (folded, repaired or rebuilt)
    tiles_deleted: int      # tiles removed because their rows are gone from the source
    tiles_collected: int    # expired tiles removed by tile GC
    tile_retries: int       # tile writes redone because the stream or push changed the tile
    keyed_repair: bool      # rows removed since the last run repaired tile by tile
    tiles_repaired: int     # tiles recomputed from the source (keys_repaired: their keys)
    rows_removed: int       # removed rows not rewritten unchanged
    files_rewritten: int    # files rewritten with the same rows (OPTIMIZE): no tile changed
    note: str               # why a run was rebuilt, or what the repair did
    seconds: float


class PushResult(TypedDict):
    """What :meth:`FeatureStore.push` wrote."""
    rows: int
    views_written: int             # online views fed by the source
    delta_version: Optional[int]   # the offline commit, when written offline


@dataclass(frozen=True)
class Plan:
    """What ``apply`` would change, then what ``run(all=True)`` would run: ``runs`` lists
    the stale transformations in dependency order (name, output, mode, inputs, upstream,
    cause, reason), ``up_to_date`` the names of the others."""
    text: str
    base_version: int
    changes: List[Dict[str, Any]]
    incompatibilities: List[str]
    runs: List[Dict[str, Any]] = field(default_factory=list)
    up_to_date: List[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes

    def __str__(self) -> str:
        return self.text


class _ArrowResult:
    """Conversions for results that have a ``to_arrow()``."""

    def to_arrow(self) -> pa.Table:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def to_pandas(self):
        """The rows as a pandas DataFrame (needs ``pip install 'stratalake[pandas]'``)."""
        return to_pandas(self.to_arrow())

    def to_df(self):
        """Feast's name for :meth:`to_pandas`."""
        return self.to_pandas()

    def to_polars(self):
        """The rows as a polars DataFrame (needs ``pip install 'stratalake[polars]'``)."""
        return to_polars(self.to_arrow())


class RetrievalJob(_ArrowResult):
    """A point-in-time retrieval, checked against the registry and run when its rows are
    asked for: :meth:`to_parquet` streams them into the file as they are computed (memory
    bounded by ``memory_budget``); :meth:`to_arrow` (and the conversions) collects them
    once; :meth:`save` streams them into a saved dataset. The first run pins the registry
    and source versions it read, so every later result has the same rows."""

    def __init__(self, store: "FeatureStore", retrieval: Any, progress: bool = True):
        self._store = store
        self._retrieval = retrieval
        self._progress = progress
        self._table: Optional[pa.Table] = None

    def _run(self, fn: Any, *args: Any) -> Any:
        bar = Progress(self._progress)
        try:
            out = fn(self._retrieval, *args, bar)
        finally:
            bar.close()
        warn_all(self._retrieval.warnings())
        return out

    def to_arrow(self) -> pa.Table:
        if self._table is None:
            self._table = table_from_capsule(self._run(self._store._core.historical_table))
        return self._table

    def to_parquet(self, path: PathLike, **kwargs: Any) -> None:
        """Write the rows to a Parquet file as they are computed (under ``PATH.partial``,
        renamed into place when complete). With keyword arguments, or once :meth:`to_arrow`
        has collected the rows, ``pyarrow.parquet.write_table`` writes them instead."""
        if kwargs or self._table is not None:
            pq.write_table(self.to_arrow(), os.fspath(path), **kwargs)
            return
        self._run(self._store._core.historical_to_parquet, os.fspath(path))

    def save(self, name: str) -> Dict[str, Any]:
        """Save as a reproducible dataset (a Delta table under ``datasets/`` plus a manifest
        pinning the registry version and every source's Delta version); returns the manifest."""
        return self._run(self._store._core.save_dataset, name)

    @property
    def registry_version(self) -> int:
        return self._retrieval.registry_version

    @property
    def feature_refs(self) -> List[str]:
        return list(self._retrieval.feature_refs)

    @property
    def sources(self) -> List[Dict[str, Any]]:
        """Every source read: its Delta version, files and rows read (runs the retrieval
        into memory if it has not run yet)."""
        if not self._retrieval.ran:
            self.to_arrow()
        return self._retrieval.sources()

    def _state(self) -> str:
        if self._table is not None:
            return f"{self._table.num_rows:,} rows x {self._table.num_columns} columns"
        return "not run yet: to_df(), to_arrow(), to_parquet() or save() runs it"

    def __repr__(self) -> str:
        refs = self.feature_refs
        shown = ", ".join(refs[:6]) + (f", ... ({len(refs)} features)" if len(refs) > 6 else "")
        return (f"RetrievalJob(features=[{shown}], registry_version={self.registry_version}; "
                f"{self._state()})")

    def _repr_html_(self) -> str:
        import html
        if self._table is not None:
            return html_table(self._table, f"RetrievalJob (registry version "
                              f"{self.registry_version}): {self._state()}")
        return f"<pre>{html.escape(repr(self))}</pre>"


class SparkRetrievalJob(_ArrowResult):
    """A point-in-time retrieval run by the Spark engine (``engine="spark"``; see
    ``stratalake.spark`` and docs/scale.md): the same rules and output as
    :class:`RetrievalJob`. Spark writes the training set as a Delta table —
    :meth:`to_delta` names it; the other outputs read it back in the exact output schema."""

    def __init__(self, store: "FeatureStore", spark: Any, entity_df: Any, kwargs: Dict[str, Any]):
        from . import spark as engine
        self._store, self._spark, self._entities, self._kwargs = store, spark, entity_df, kwargs
        self._engine = engine
        self._result: Optional[Dict[str, Any]] = None
        self._table: Optional[pa.Table] = None
        self._scratch: Optional[str] = None

    def to_delta(self, path: PathLike) -> Dict[str, Any]:
        """Run on Spark and write the training set as the Delta table ``path`` (which must
        not exist yet); returns the plan with ``rows`` (and the versions read)."""
        if self._result is not None:
            raise DefinitionError("this retrieval already ran; start another to write elsewhere")
        self._result = self._engine.historical(self._spark, self._store.repo_path, self._entities,
                                               os.path.abspath(os.fspath(path)), **self._kwargs)
        warn_all(self._result["warnings"], stacklevel=2)
        return self._result

    def _output(self) -> str:
        if self._result is None:
            import uuid
            self._scratch = os.path.join(self._store.config["offline_store"], ".spark",
                                         "out-" + uuid.uuid4().hex)
            self.to_delta(self._scratch)
        return self._result["output"]

    def to_arrow(self) -> pa.Table:
        if self._table is None:
            out = self._output()
            schema = self._result["schema"]
            self._table = pa.Table.from_batches(list(self._engine.read_output(out, schema)), schema)
        return self._table

    def to_parquet(self, path: PathLike, **kwargs: Any) -> None:
        pq.write_table(self.to_arrow(), os.fspath(path), **kwargs)

    def save(self, name: str) -> Dict[str, Any]:
        """Save as a reproducible dataset, exactly as a local retrieval's ``save``: the
        manifest pins the registry and source versions Spark read, so
        :meth:`FeatureStore.recreate_saved_dataset` rebuilds it. Spark's executors write the
        dataset's Delta table in place (no row goes through this process): run first, the
        retrieval runs straight into it; run already, it runs again, pinned to the versions
        it read, into the dataset."""
        k = dict(self._kwargs)
        if self._result is None:
            self._result = self._engine.historical(self._spark, self._store.repo_path,
                                                   self._entities, "", save_as=name, **k)
            warn_all(self._result["warnings"], stacklevel=2)
            return self._result["dataset"]
        k["registry_version"] = int(self._result["registry_version"])
        k["source_versions"] = {s["source"]: int(s["version"]) for s in self._result["sources"]}
        again = self._engine.historical(self._spark, self._store.repo_path, self._entities, "",
                                        save_as=name, **k)
        return again["dataset"]

    @property
    def registry_version(self) -> int:
        return int(self._result["registry_version"]) if self._result else \
            self._store.registry_version

    @property
    def feature_refs(self) -> List[str]:
        self._output()
        return list(self._result["feature_refs"])

    @property
    def sources(self) -> List[Dict[str, Any]]:
        self._output()
        return list(self._result["sources"])

    def __del__(self) -> None:
        if self._scratch:
            import shutil
            shutil.rmtree(self._scratch, ignore_errors=True)

    def __repr__(self) -> str:
        state = "not run yet" if self._result is None else f"{self._result['rows']:,} rows"
        return f"SparkRetrievalJob({state})"


def _micros(arr: pa.Array) -> List[Optional[int]]:
    """A timestamp array's values as µs since the epoch (the online store's precision)."""
    unit = arr.type.unit
    raw = arr.cast(pa.int64()).to_pylist()
    if unit == "us":
        return raw
    if unit == "ns":
        return [None if v is None else v // 1000 for v in raw]
    scale = 1_000_000 if unit == "s" else 1000
    return [None if v is None else v * scale for v in raw]


def _civil_from_days(z: int):
    """Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant)."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def _rfc3339(us: int) -> str:
    """µs since the epoch as the feature server writes it: "2026-01-01T00:00:00.000001Z"
    (the fraction omitted when 0)."""
    secs, frac = divmod(us, 1_000_000)
    days, sod = divmod(secs, 86400)
    y, m, d = _civil_from_days(days)
    year = f"{y:04d}" if 0 <= y <= 9999 else str(y)
    text = f"{year}-{m:02d}-{d:02d}T{sod // 3600:02d}:{sod // 60 % 60:02d}:{sod % 60:02d}"
    return text + (f".{frac:06d}Z" if frac else "Z")


def _json_values(arr: pa.Array) -> List[Any]:
    """An Arrow array's values as the feature server's JSON has them, once parsed: numbers,
    booleans, strings, lists; timestamps as RFC 3339 text, dates as "YYYY-MM-DD",
    decimals as strings; NaN and infinities as None."""
    t = arr.type
    if pa.types.is_timestamp(t):
        cache: Dict[int, str] = {}
        out: List[Any] = []
        for us in _micros(arr):
            if us is None:
                out.append(None)
            else:
                text = cache.get(us)
                if text is None:
                    text = cache[us] = _rfc3339(us)
                out.append(text)
        return out
    if pa.types.is_date32(t):
        out = []
        for days in arr.cast(pa.int32()).to_pylist():
            if days is None:
                out.append(None)
            else:  # as C's strftime("%Y-%m-%d") writes it
                y, m, d = _civil_from_days(days)
                out.append(f"{y}-{m:02d}-{d:02d}")
        return out
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        items = _json_values(arr.values)
        offsets = arr.offsets.to_pylist()
        valid = arr.is_valid().to_pylist()
        return [items[offsets[i]:offsets[i + 1]] if valid[i] else None for i in range(len(arr))]
    values = arr.to_pylist()
    if pa.types.is_floating(t):
        return [v if v is not None and math.isfinite(v) else None for v in values]
    if pa.types.is_decimal(t):
        return [None if v is None else str(v) for v in values]
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return [None if v is None else v.decode("utf-8", "replace") for v in values]
    return values


class OnlineResponse(_ArrowResult):
    """Feature vectors from the online store: typed Arrow columns from the engine, shown
    as Feast shows them (``to_dict``, ``statuses``, ``event_timestamps``, ``to_json``)."""

    def __init__(self, entities: List[tuple], values: Any, statuses: Any, times: Any):
        self._keys = dict(entities)  # join key values as given: echoed as they are
        self._table = table_from_capsule(values)
        self._statuses = table_from_capsule(statuses)
        self._times = table_from_capsule(times)
        self._json: Optional[Dict[str, Any]] = None

    @property
    def feature_names(self) -> List[str]:
        return list(self._table.column_names)

    def _results(self) -> List[Dict[str, List[Any]]]:
        cache: Dict[int, str] = {}

        def times(col: pa.ChunkedArray) -> List[str]:
            out = []
            for us in col.combine_chunks().cast(pa.int64()).to_pylist():
                text = cache.get(us)
                if text is None:
                    text = cache[us] = _rfc3339(us)
                out.append(text)
            return out

        results = []
        for i, name in enumerate(self._table.column_names):
            if i < len(self._keys):
                values = list(self._keys[name])
            else:
                values = _json_values(self._table.column(i).combine_chunks())
            results.append({"values": values, "statuses": self._statuses.column(i).to_pylist(),
                            "event_timestamps": times(self._times.column(i))})
        return results

    def to_dict(self) -> Dict[str, List[Any]]:
        """``{name: [value per entity row]}`` (join keys first), like Feast's."""
        return {n: r["values"] for n, r in zip(self.feature_names, self.to_json()["results"])}

    def statuses(self) -> Dict[str, List[str]]:
        """``PRESENT``, ``NULL_VALUE``, ``NOT_FOUND``, ``OUTSIDE_MAX_AGE`` or ``UNAVAILABLE`` (a
        store node down) per value."""
        return {n: r["statuses"] for n, r in zip(self.feature_names, self.to_json()["results"])}

    def event_timestamps(self) -> Dict[str, List[str]]:
        return {n: r["event_timestamps"] for n, r in zip(self.feature_names, self.to_json()["results"])}

    def to_json(self) -> Dict[str, Any]:
        """The feature server's response body (Feast's format), built from the typed
        columns on first use."""
        if self._json is None:
            self._json = {"metadata": {"feature_names": self.feature_names},
                          "results": self._results()}
        return self._json

    def to_arrow(self) -> pa.Table:
        """One column per name, features in their views' Arrow types."""
        return self._table

    def __repr__(self) -> str:
        rows = self._table.num_rows
        return f"OnlineResponse({rows} entity row{'s' if rows != 1 else ''}: {self.to_dict()!r})"

    def _repr_html_(self) -> str:
        return html_table(self._table, f"OnlineResponse: {self._table.num_rows} entity rows")


@dataclass(frozen=True)
class SavedDataset(_ArrowResult):
    """A saved training set: its manifest and its rows."""
    name: str
    manifest: Dict[str, Any]

    _core: Any = field(default=None, repr=False, compare=False)

    def to_arrow(self) -> pa.Table:
        """The saved rows, in the exact schema the retrieval gave them (time zones, units,
        dictionaries and field metadata included)."""
        if self._core is not None:
            return table_from_capsule(self._core.read_dataset(self.name))
        from .table import DeltaTable
        return DeltaTable(self.manifest["table_uri"], version=self.manifest["table_version"]).to_pyarrow_table()


@dataclass(frozen=True)
class RecreatedDataset:
    """A saved dataset rebuilt from its pinned versions, compared with the saved rows."""
    name: str
    table: pa.Table
    identical: bool
    difference: str

    def to_arrow(self) -> pa.Table:
        return self.table

    def to_pandas(self):
        return to_pandas(self.table)


FeaturesArg = Union[str, Sequence[str], FeatureService, None]


def _feature_request(features: FeaturesArg, feature_service: Any) -> tuple:
    """(feature refs, feature service name) from the ways Feast's users write them:
    ``features=["view:feature", ...]``, ``features="view:feature"`` (one reference),
    ``features=store.get_feature_service("name")``, ``feature_service="name"`` or
    ``feature_service=<FeatureService>``."""
    if isinstance(features, FeatureService):
        if feature_service is not None:
            raise DefinitionError("pass the feature service once: as features= or as feature_service=")
        return [], features.name
    if isinstance(features, str):
        features = [features]
    refs = list(features or [])
    for r in refs:
        if not isinstance(r, str):
            raise TypeError(f"features= takes feature references such as 'view:feature' (or a "
                            f"FeatureService); got {type(r).__name__} {r!r}")
    if feature_service is not None and not isinstance(feature_service, str):
        name = getattr(feature_service, "name", None)
        if not isinstance(name, str):
            raise TypeError(f"feature_service= takes a name or a FeatureService; got "
                            f"{type(feature_service).__name__}")
        feature_service = name
    return refs, feature_service or ""


def _entity_columns(entity_rows: Optional[Sequence[Mapping[str, Any]]],
                    entities: Optional[Mapping[str, Sequence[Any]]],
                    request_data: Optional[Dict[str, List[Any]]] = None) -> List[tuple]:
    """Join key columns as (name, values). With ``request_data`` (a dict), columns holding
    floats or booleans (request data for on-demand feature views, which Feast passes
    among the entities) go there instead of being refused."""
    if (entity_rows is None) == (entities is None):
        raise DefinitionError("pass exactly one of entity_rows=[{key: value}, ...] and "
                              "entities={key: [values]}")
    if entity_rows is not None:
        names: List[str] = []
        for row in entity_rows:
            for k in row:
                if k not in names:
                    names.append(k)
        entities = {n: [row.get(n) for row in entity_rows] for n in names}
    out = []
    for name, values in entities.items():
        col = []
        values = values.tolist() if hasattr(values, "tolist") else list(values)
        if request_data is not None and any(
                isinstance(v, (bool, float)) for v in values if v is not None):
            request_data[name] = values
            continue
        for v in values:
            if v is None or isinstance(v, str):
                col.append(v)
            elif isinstance(v, bool):
                raise DefinitionError(f"entity {name!r}: join key values must be integers or strings, not bool")
            elif isinstance(v, int) or hasattr(v, "__index__"):
                col.append(int(v))
            else:
                raise DefinitionError(f"entity {name!r}: join key values must be integers or strings, "
                                      f"not {type(v).__name__}")
        out.append((name, col))
    return out


def init(path: PathLike, project: Optional[str] = None, *, customers: int = 1000,
         seed: int = 42, template: str = "shop") -> "FeatureStore":
    """Create a feature repository in ``path`` (created if missing; it must not hold a
    ``stratalake.yaml`` yet) with a sample's definitions and generated sample data in
    ``data/`` — what ``stratalake init [--template markets]`` does — and return its
    :class:`FeatureStore`. ``template``: ``"shop"`` (e-commerce; ``customers`` sets its
    size) or ``"markets"`` (BTCUSDT/ETHUSDT trades, a kafka source, SQL features, labels).

    >>> store = stratalake.init("shop")
    >>> store.apply()
    >>> markets = stratalake.init("markets", template="markets")
    """
    _core.init(os.fspath(path), project or "", customers, seed, template)
    return FeatureStore(path)


class FeatureStore:
    """A feature repository (a folder with ``stratalake.yaml``), its registry, offline
    store and online store.

    >>> store = FeatureStore(repo_path="shop")
    >>> store.apply()
    >>> job = store.get_historical_features(entity_df=labels, feature_service="churn_model")
    >>> train = job.to_pandas()
    """

    def __init__(self, repo_path: PathLike = ".", engine: str = "local", spark: Any = None):
        """``engine``: ``"local"`` (this machine) or ``"spark"`` (training sets and
        materialization on Spark: ``spark`` is the SparkSession, default the active one or a
        new one from ``$STRATALAKE_SPARK_MASTER`` / Spark's configuration; docs/scale.md)."""
        if engine not in ("local", "spark"):
            raise DefinitionError(f"engine must be 'local' or 'spark', not {engine!r}")
        self._core = _core.Store(os.fspath(repo_path))
        self._engine = engine
        self._spark = spark

    def _spark_session(self) -> Any:
        if self._spark is None:
            from .spark import spark_session
            self._spark = spark_session()
        return self._spark

    def _pick_engine(self, engine: Optional[str]) -> str:
        engine = engine or self._engine
        if engine not in ("local", "spark"):
            raise DefinitionError(f"engine must be 'local' or 'spark', not {engine!r}")
        return engine

    @property
    def repo_path(self) -> str:
        return self._core.root

    @property
    def project(self) -> str:
        return self._core.project

    @property
    def config(self) -> Dict[str, str]:
        return self._core.config()

    # ---- definitions ----
    def plan(self) -> Plan:
        """Validate the definitions and show what :meth:`apply` would change, field by field,
        and the transformations ``run(all=True)`` would run (in dependency order, and why).
        Output schemas that would not fit the feature views reading them are among the
        incompatibilities."""
        text, base, changes, incompatibilities = self._core.plan()
        runs_text, problems, runs = _core.plan_pipelines(self.repo_path)
        stale = [{k: v for k, v in r.items() if k != "stale"} for r in runs if r["stale"]]
        return Plan(text + runs_text, base, changes, list(incompatibilities) + list(problems),
                    stale, [r["name"] for r in runs if not r["stale"]])

    def apply(self, message: str = "") -> ApplyResult:
        """Validate the definitions and register them as one new registry version (none when
        nothing changed). Raises DefinitionError (every problem, with file:line) or
        IncompatibleChangeError."""
        try:
            author = getpass.getuser()
        except Exception:  # pragma: no cover - no user database
            author = "unknown"
        # Transformation outputs that would not fit the views reading them: refused first.
        _core.plan_pipelines(self.repo_path, refuse=True)
        return self._core.apply(author, message)

    @property
    def registry_version(self) -> int:
        return self._core.registry_version()

    _TYPES = {"entity": Entity, "source": DataSource, "feature_view": FeatureView,
              "feature_service": FeatureService, "request_source": RequestSource,
              "on_demand_feature_view": OnDemandFeatureView,
              "transformation": TransformationDefinition}

    def _objects(self, kind: str, registry_version: Optional[int]) -> List[Any]:
        cls = self._TYPES[kind]
        return [cls(o) for o in self._core.objects(kind, registry_version)]

    def _object(self, kind: str, name: str, registry_version: Optional[int]) -> Any:
        objects = self._objects(kind, registry_version)
        for o in objects:
            if o.name == name:
                return o
        names = [o.name for o in objects]
        raise ObjectNotFoundError(f"no {kind.replace('_', ' ')} named {name!r} (there are: {', '.join(names)})")

    def list_entities(self, registry_version: Optional[int] = None) -> List[Entity]:
        """Every registered entity (at ``registry_version``; default: the latest)."""
        return self._objects("entity", registry_version)

    def list_sources(self, registry_version: Optional[int] = None) -> List[DataSource]:
        """Every registered source (Delta, Parquet and push sources)."""
        return self._objects("source", registry_version)

    def list_data_sources(self, registry_version: Optional[int] = None) -> List[DataSource]:
        """Feast's name for :meth:`list_sources`."""
        return self.list_sources(registry_version)

    def list_feature_views(self, registry_version: Optional[int] = None) -> List[FeatureView]:
        """Every registered feature view."""
        return self._objects("feature_view", registry_version)

    def list_feature_services(self, registry_version: Optional[int] = None) -> List[FeatureService]:
        """Every registered feature service."""
        return self._objects("feature_service", registry_version)

    def list_on_demand_feature_views(
            self, registry_version: Optional[int] = None) -> List[OnDemandFeatureView]:
        """Every registered on-demand feature view (computed at request time)."""
        return self._objects("on_demand_feature_view", registry_version)

    def list_request_sources(self, registry_version: Optional[int] = None) -> List[RequestSource]:
        """Every registered request source (request data of on-demand feature views)."""
        return self._objects("request_source", registry_version)

    def list_transformations(
            self, registry_version: Optional[int] = None) -> List[TransformationDefinition]:
        """Every registered transformation (the SQL, or Python functions named by
        ``python: FILE.py:FUNCTION``, of the definition files that :meth:`run`
        materializes), as registered by :meth:`apply`."""
        return self._objects("transformation", registry_version)

    def get_transformation(self, name: str,
                           registry_version: Optional[int] = None) -> TransformationDefinition:
        """The registered transformation ``name``; ObjectNotFoundError if none."""
        return self._object("transformation", name, registry_version)

    def get_on_demand_feature_view(self, name: str,
                                   registry_version: Optional[int] = None) -> OnDemandFeatureView:
        """The on-demand feature view ``name``; ObjectNotFoundError if none."""
        return self._object("on_demand_feature_view", name, registry_version)

    def get_request_source(self, name: str,
                           registry_version: Optional[int] = None) -> RequestSource:
        """The request source ``name``; ObjectNotFoundError if none."""
        return self._object("request_source", name, registry_version)

    def get_entity(self, name: str, registry_version: Optional[int] = None) -> Entity:
        """The entity ``name``; ObjectNotFoundError (naming those that exist) if none."""
        return self._object("entity", name, registry_version)

    def get_source(self, name: str, registry_version: Optional[int] = None) -> DataSource:
        """The source ``name``; ObjectNotFoundError if none."""
        return self._object("source", name, registry_version)

    def get_data_source(self, name: str, registry_version: Optional[int] = None) -> DataSource:
        """Feast's name for :meth:`get_source`."""
        return self.get_source(name, registry_version)

    def get_feature_view(self, name: str, registry_version: Optional[int] = None) -> FeatureView:
        """The feature view ``name``; ObjectNotFoundError if none."""
        return self._object("feature_view", name, registry_version)

    def get_feature_service(self, name: str, registry_version: Optional[int] = None) -> FeatureService:
        """The feature service ``name``; pass it as ``features=`` or ``feature_service=``.
        ObjectNotFoundError if none."""
        return self._object("feature_service", name, registry_version)

    def refresh_registry(self) -> None:
        """Re-read the registry now. Rarely needed: every call reads the registry's
        latest version (online reads check it before each call)."""
        self._core.refresh_registry()

    # ---- data ----
    def ingest(self, source: str, files: Union[PathLike, Sequence[PathLike]], mode: str = "append",
               on: Optional[Sequence[str]] = None, quarantine: bool = False,
               format: Optional[str] = None) -> IngestReport:
        """Load CSV / JSON-lines / Parquet files into a source's Delta table, typed by its
        declared schema (see ``stratalake ingest``). ``source`` names a source (applied, or
        in the definition files), or a table path below the offline store with a ``/``
        (``"bronze/raw_events"``); any other name is ObjectNotFoundError naming the closest
        sources, so a typo never creates a new table. ``mode``: ``"append"``,
        ``"overwrite"`` or ``"merge"`` (upsert by the key columns ``on``)."""
        if mode not in ("append", "overwrite", "merge"):
            raise DefinitionError(f"mode must be 'append', 'overwrite' or 'merge', not {mode!r}")
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        return self._core.ingest(source, [os.fspath(f) for f in files], mode, list(on or []),
                                 quarantine, format or "")

    # ---- training sets ----
    def get_historical_features(self, entity_df: Any, features: FeaturesArg = None, *,
                                feature_service: Union[str, FeatureService, None] = None,
                                full_feature_names: bool = False,
                                as_of: Optional[TimeLike] = None,
                                timestamp_column: str = "event_timestamp",
                                registry_version: Optional[int] = None,
                                memory_budget: Optional[int] = None,
                                progress: bool = True,
                                engine: Optional[str] = None) -> RetrievalJob:
        """Point-in-time-correct features for every row of ``entity_df`` (pandas, polars,
        pyarrow, DuckDB, ...: join keys, ``timestamp_column``, any other columns kept).

        For each row and feature view: the latest feature row at or before the row's time
        (within the view's TTL); ties go to the latest created time. ``as_of`` reads every
        source as the offline store knew it then (no late data or corrections leak in).
        Ctrl-C stops the retrieval cleanly. See docs/training-datasets.md.

        Returns a lazy :class:`RetrievalJob` (checked now, run by ``to_df()``,
        ``to_arrow()``, ``to_parquet()`` or ``save()``), as Feast does.
        """
        refs, service = _feature_request(features, feature_service)
        if self._pick_engine(engine) == "spark":
            if memory_budget:
                raise DefinitionError("memory_budget is the local engine's; Spark's memory is "
                                      "its own configuration (spark.executor.memory)")
            from . import spark as spark_engine
            as_of_ms = None if as_of is None else to_millis(as_of, "as_of")
            kwargs = dict(features=refs, feature_service=service,
                          full_feature_names=full_feature_names, as_of_ms=as_of_ms,
                          timestamp_column=timestamp_column, registry_version=registry_version)
            session = self._spark_session()
            job = SparkRetrievalJob(self, session, entity_df, kwargs)
            # Checked now, as a local retrieval is (every error that needs no data).
            ents = entity_df
            if not isinstance(ents, (str, os.PathLike)):
                ents = table_from_capsule(as_stream_capsule(entity_df, "entity_df"))
                job._entities = ents
                schema = ents.schema
            else:
                schema = pq.read_schema(os.fspath(ents))
            spark_engine.plan(self.repo_path, schema, refs, service, full_feature_names,
                              as_of_ms, timestamp_column, registry_version)
            return job  # type: ignore[return-value]
        capsule, path = None, ""
        if isinstance(entity_df, (str, os.PathLike)):
            path = os.fspath(entity_df)
            if not path.endswith(".parquet"):
                raise DefinitionError(f"entity_df {path!r}: a path must name a .parquet file")
        else:
            capsule = as_stream_capsule(entity_df, "entity_df")
        r = self._core.get_historical(
            capsule, path, timestamp_column, refs, service, full_feature_names, None if as_of is None else to_millis(as_of, "as_of"),
            registry_version, memory_budget or 0)
        return RetrievalJob(self, r, progress)

    def get_saved_dataset(self, name: str) -> SavedDataset:
        return SavedDataset(name, self._core.describe_dataset(name), self._core)

    def list_saved_datasets(self) -> List[Dict[str, Any]]:
        return self._core.list_datasets()

    def recreate_saved_dataset(self, name: str) -> RecreatedDataset:
        """Rebuild a saved dataset from its pinned registry and source versions and compare it
        with the saved rows (VersionNotFoundError if VACUUM removed a pinned version's files)."""
        capsule, identical, difference = self._core.recreate_dataset(name)
        return RecreatedDataset(name, table_from_capsule(capsule), identical, difference)

    # ---- the online store ----
    def materialize(self, start_date: TimeLike, end_date: TimeLike,
                    feature_views: Optional[Sequence[str]] = None, progress: bool = True,
                    engine: Optional[str] = None) -> List[Any]:
        """Load the latest values with event times in [start_date, end_date] into the online store.
        With ``engine="spark"`` Spark reduces each source to its latest row per key and its
        executors write them (to Redis directly; for the embedded store as SST files that are
        ingested at the end, newer wins), then records the same watermark as a local run;
        returns one dict per view (view, source, to_version, rows_read, rows_written,
        keys_written, incremental, from_version, engine)."""
        if self._pick_engine(engine) == "spark":
            from . import spark as spark_engine
            return spark_engine.materialize(
                self._spark_session(), self.repo_path, to_micros(start_date, "start_date"),
                to_micros(end_date, "end_date"), list(feature_views or []))
        bar = Progress(progress)
        try:
            views, engine_warnings = self._core.materialize(
                to_micros(start_date, "start_date"), to_micros(end_date, "end_date"),
                list(feature_views or []), False, bar)
        finally:
            bar.close()
        warn_all(engine_warnings, stacklevel=2)
        return views

    def materialize_incremental(self, end_date: TimeLike, feature_views: Optional[Sequence[str]] = None,
                                progress: bool = True,
                                engine: Optional[str] = None) -> List[ViewMaterialization]:
        """Materialize what was committed since each view's last run (its watermark). With
        ``engine="spark"`` Spark reads the same files and rows (the same start and end rule)
        and writes as ``materialize(engine="spark")`` does."""
        if self._pick_engine(engine) == "spark":
            from . import spark as spark_engine
            return spark_engine.materialize(  # type: ignore[return-value]
                self._spark_session(), self.repo_path, None, to_micros(end_date, "end_date"),
                list(feature_views or []), incremental=True)
        bar = Progress(progress)
        try:
            views, engine_warnings = self._core.materialize(
                None, to_micros(end_date, "end_date"), list(feature_views or []), True, bar)
        finally:
            bar.close()
        warn_all(engine_warnings, stacklevel=2)
        return views

    def get_online_features(self, features: FeaturesArg = None,
                            entity_rows: Optional[Sequence[Mapping[str, Any]]] = None, *,
                            entities: Optional[Mapping[str, Sequence[Any]]] = None,
                            feature_service: Union[str, FeatureService, None] = None,
                            full_feature_names: bool = False) -> OnlineResponse:
        """The latest feature values for entity keys: ``entity_rows=[{"customer_id": 1}]`` or
        ``entities={"customer_id": [1, 2]}``. A value older than its view's TTL comes back
        null with status ``OUTSIDE_MAX_AGE``. Request data for on-demand feature views
        goes beside the join keys (``{"customer_id": 1, "amount": 12.5}``), as in Feast;
        on-demand features are computed in the engine, as ``get_historical_features``
        computes them from the entity table's columns of the same names."""
        refs, service = _feature_request(features, feature_service)
        request: Dict[str, List[Any]] = {}
        columns = _entity_columns(entity_rows, entities, request)
        capsule = None
        if request:
            # Floats and booleans are request data, never join keys.
            keys = {k for e in self.list_entities() for k in e.join_keys}
            for name, values in request.items():
                if name in keys:
                    bad = next(v for v in values if isinstance(v, (bool, float)))
                    raise DefinitionError(f"entity {name!r}: join key values must be integers "
                                          f"or strings, not {type(bad).__name__}")
            capsule = as_stream_capsule(pa.table({n: pa.array(v) for n, v in request.items()}),
                                        "request data")
        values, statuses, times, engine_warnings = self._core.get_online(
            refs, service, columns, full_feature_names, capsule)
        warn_all(engine_warnings, stacklevel=2)
        return OnlineResponse(columns, values, statuses, times)

    def push(self, push_source_name: str, df: Any, to: str = "online") -> PushResult:
        """Write rows to a push source: ``to="online"``, ``"offline"`` (appended to its Delta
        table) or ``"online_and_offline"``."""
        return self._core.push(push_source_name, as_stream_capsule(df, "df"), to)

    def write_to_online_store(self, feature_view_name: str, df: Any) -> int:
        """Write rows of one feature view straight to the online store, as
        materialization would (Feast's method of this name): ``df`` (any Arrow-compatible
        input) holds the view's join keys, every feature of the view, and the event time
        as ``event_timestamp`` (Feast's name) or the source's timestamp column; optionally
        the created time. All or nothing; newer wins. Only the online store is written.
        Returns the rows written."""
        return self._core.write_online(feature_view_name, as_stream_capsule(df, "df"))

    def teardown(self, feature_views: Optional[Sequence[str]] = None) -> List[str]:
        """Feast's ``teardown``: remove the feature views' values from the online store
        (every feature view, or ``feature_views``) and forget their materialization
        watermarks, so the next :meth:`materialize_incremental` loads them from the
        start. The Delta tables and the registered definitions stay. Returns the views
        torn down."""
        return self._core.teardown(list(feature_views or []))

    def close(self) -> None:
        """Let go of the online store. FeatureStore objects of one process share it (it
        closes when the last lets it go; another process may then open the embedded
        store)."""
        self._core.close()

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- pipelines (stratalake/pipelines.py, docs/pipelines.md) ----

    def sql(self, query: str) -> "SqlResult":
        """Run SQL (DuckDB's dialect) over the repository's Delta tables, named
        ``layer.table`` (``bronze.orders``); each named table is read at its latest
        version. ``.to_arrow()`` / ``.to_pandas()`` give the rows, ``.inputs`` the versions."""
        from .pipelines import run_sql
        return run_sql(self.repo_path, query)

    def run(self, *names: Any, all: bool = False,
            full_refresh: bool = False) -> List[Dict[str, Any]]:
        """Materialize transformations (``names``, or every one with ``all=True``) into
        their Delta tables in dependency order, one commit each; unchanged ones are no-ops.
        A name may also be a Python :class:`~stratalake.Transformation` (made with
        ``@stratalake.transformation``): those run after the named definitions, in the
        order given. Python transformations of the definition files (``python:
        FILE.py:FUNCTION``) run in this process, in dependency order with the SQL ones.
        Returns one dict per transformation (name, output, noop, version, rows, inputs,
        detail)."""
        from .pipelines import Transformation, run_transformations
        if bool(names) == all:
            raise ValueError("run() takes transformation names or all=True (not both)")
        defined = [n for n in names if not isinstance(n, Transformation)]
        functions = [n for n in names if isinstance(n, Transformation)]
        out = run_transformations(self.repo_path, defined, full_refresh) if defined or all else []
        return out + [f.run(self, full_refresh=full_refresh) for f in functions]

    def lineage(self, table: str, upstream: bool = False) -> List[Dict[str, Any]]:
        """Which tables at which versions produced each version of ``table``
        (``"gold.customer_value"``) that a transformation wrote, newest first: dicts
        of table, version, timestamp_ms, operation, transformation, query, inputs
        ({table: version read}), read ("all", "new_rows", "keys", "partitions") and
        since. ``upstream=True``: the latest version's lineage and, recursively, that
        of every input version it read."""
        from .pipelines import lineage
        return lineage(self.repo_path, table, upstream)

    def plan_runs(self, *names: str) -> List[Dict[str, Any]]:
        """What :meth:`run` would do (every transformation when no name is given), in
        dependency order: name, output, mode, inputs, upstream, stale, reason."""
        from .pipelines import plan_transformations
        return plan_transformations(self.repo_path, names)

    def __repr__(self) -> str:
        return f"FeatureStore(repo_path={self.repo_path!r}, project={self.project!r})"
