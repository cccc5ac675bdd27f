"""Registered definitions as typed objects: what ``FeatureStore.list_*`` and ``get_*``
return. Attributes read like Feast's (``view.name``, ``view.features``,
``entity.join_keys``, ``view.ttl``); item access (``view["name"]``) still reads the
registry's canonical JSON: each object is a dict of it, with attributes."""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Dict, List, Optional

__all__ = ["Field", "Entity", "DataSource", "FeatureView", "FeatureService",
           "FeatureViewProjection", "Aggregation", "RequestSource", "OnDemandFeature",
           "OnDemandFeatureView", "TransformationDefinition"]


class _Definition(dict):
    """One registry object: attributes, over the dict of its canonical JSON (so
    ``obj["name"]``, ``json.dumps(obj)`` and ``isinstance(obj, dict)`` work as before)."""

    def to_dict(self) -> Dict[str, Any]:
        """The registry's canonical JSON of this object (a plain dict)."""
        return dict(self)

    @property
    def name(self) -> str:
        return self["name"]

    @property
    def description(self) -> str:
        return self.get("description", "")

    @property
    def owner(self) -> str:
        return self.get("owner", "")

    @property
    def tags(self) -> Dict[str, str]:
        return dict(self.get("tags", {}))

    def _fields_repr(self) -> str:  # pragma: no cover - every subclass defines it
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}{self._fields_repr()})"


class Field(_Definition):
    """A typed column: a feature, an entity's join key or a declared source column.
    ``dtype`` is StrataLake's type name (``int64``, ``string``, ``list<float64>``, ...)."""

    @property
    def dtype(self) -> str:
        return self["type"]

    @property
    def nullable(self) -> bool:
        return self.get("nullable", True)

    def _fields_repr(self) -> str:
        return f", dtype={self.dtype!r}"


class Entity(_Definition):
    """An entity: what features describe, identified by its join keys."""

    @property
    def join_keys(self) -> List[str]:
        """The join key names (Feast's ``Entity.join_keys``)."""
        return [k["name"] for k in self["join_keys"]]

    @property
    def join_key(self) -> str:
        """The first join key (Feast's ``Entity.join_key``)."""
        return self.join_keys[0]

    @property
    def join_key_fields(self) -> List[Field]:
        """The join keys with their types."""
        return [Field(k) for k in self["join_keys"]]

    def _fields_repr(self) -> str:
        keys = ", ".join(f"{f.name}: {f.dtype}" for f in self.join_key_fields)
        return f", join_keys=[{keys}]"


class DataSource(_Definition):
    """A source of feature rows: a Delta table (``type`` ``"delta"``), Parquet files
    (``"parquet"``) or a push source (``"push"``)."""

    @property
    def type(self) -> str:
        return self["type"]

    @property
    def path(self) -> str:
        """The table (relative to the offline store) or the files."""
        return self["path"]

    @property
    def timestamp_field(self) -> str:
        return self.get("timestamp_field", "")

    @property
    def created_timestamp_column(self) -> str:
        return self.get("created_timestamp_field", "")

    @property
    def field_mapping(self) -> Dict[str, str]:
        return dict(self.get("field_mapping", {}))

    @property
    def schema(self) -> List[Field]:
        """The declared columns (empty when the source declares none)."""
        return [Field(f) for f in self.get("schema", [])]

    @property
    def partition_by(self) -> List[str]:
        return list(self.get("partition_by", []))

    def _fields_repr(self) -> str:
        return f", type={self.type!r}, path={self.path!r}, timestamp_field={self.timestamp_field!r}"


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h|d|w)")
_UNIT = {"us": "microseconds", "ms": "milliseconds", "s": "seconds", "m": "minutes",
         "h": "hours", "d": "days", "w": "weeks"}


def _duration(text: str) -> Optional[dt.timedelta]:
    """"2d", "1h30m", "90s", "0" -> a timedelta; None for text of another form."""
    if text in ("", "0"):
        return dt.timedelta(0)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum((dt.timedelta(**{_UNIT[u]: float(n)}) for n, u in parts), dt.timedelta(0))


class Aggregation(_Definition):
    """One window aggregation of a feature view (docs/windows.md): ``function`` over
    the values of source column ``column`` of the same entity key whose event time
    lies in ``(t - window, t]``, for the rows where ``filter`` holds. It produces the
    view's feature of the same name."""

    @property
    def function(self) -> str:
        """sum, count, mean, min, max, stddev, last, last_k, count_distinct or percentile."""
        return self["function"]

    @property
    def column(self) -> str:
        return self["column"]

    @property
    def window(self) -> Optional[dt.timedelta]:
        return _duration(str(self.get("window", "0")))

    @property
    def filter(self) -> str:
        """A predicate over source columns ("" = every row)."""
        return self.get("filter", "")

    @property
    def k(self) -> int:
        """last_k: how many of the newest values."""
        return int(self.get("k", 0))

    @property
    def percentile(self) -> float:
        """percentile: the quantile (0.5 = median)."""
        return float(self.get("percentile", 0.0))

    def _fields_repr(self) -> str:
        return (f", function={self.function!r}, column={self.column!r}, "
                f"window={self.get('window')!r}, filter={self.filter!r}")


class FeatureView(_Definition):
    """A group of features of one or more entities, read from one source."""

    @property
    def entities(self) -> List[str]:
        return list(self["entities"])

    @property
    def source(self) -> str:
        """The name of the source (:meth:`FeatureStore.get_data_source` gives it whole)."""
        return self["source"]

    @property
    def features(self) -> List[Field]:
        return [Field(f) for f in self["features"]]

    @property
    def schema(self) -> List[Field]:
        """Feast's name for :attr:`features`."""
        return self.features

    @property
    def ttl(self) -> Optional[dt.timedelta]:
        """How old a value may be when read (``timedelta(0)``: no limit); None when the
        registry's text is not a plain duration (see ``view["ttl"]``)."""
        return _duration(str(self.get("ttl", "0")))

    @property
    def online(self) -> bool:
        return bool(self.get("online", True))

    @property
    def aggregations(self) -> List[Aggregation]:
        """The window aggregations (empty for a plain view); each is also a feature."""
        return [Aggregation(a) for a in self.get("aggregations", [])]

    def _fields_repr(self) -> str:
        return (f", entities={self.entities!r}, source={self.source!r}, "
                f"features={[f.name for f in self.features]!r}, ttl={self.get('ttl', '0')!r}, "
                f"online={self.online!r}")


class FeatureViewProjection(_Definition):
    """One item of a feature service: a view (all its features, or some), maybe
    under an alias."""

    @property
    def view(self) -> str:
        return self["view"]

    @property
    def features(self) -> List[str]:
        """The features taken (empty: every feature of the view)."""
        return list(self.get("features", []))

    @property
    def alias(self) -> str:
        return self.get("alias", "")

    def _fields_repr(self) -> str:
        return f", view={self.view!r}, features={self.features or 'all'!r}"


class FeatureService(_Definition):
    """A named set of features (a model's inputs). Pass it as ``features=`` or
    ``feature_service=`` to ``get_historical_features`` / ``get_online_features``."""

    @property
    def feature_view_projections(self) -> List[FeatureViewProjection]:
        return [FeatureViewProjection(i) for i in self.get("items", [])]

    @property
    def includes(self) -> List[str]:
        """Names of feature services whose features this one includes."""
        return list(self.get("includes", []))

    def _fields_repr(self) -> str:
        items = [p.view if not p.features else f"{p.view}:{','.join(p.features)}"
                 for p in self.feature_view_projections]
        return f", feature_views={items!r}" + (f", includes={self.includes!r}" if self.includes else "")


class RequestSource(_Definition):
    """Request data: fields a caller passes with each request, read by on-demand
    feature views (Feast's ``RequestSource``). Online they come beside the join keys;
    ``get_historical_features`` reads them from the entity table's columns."""

    @property
    def schema(self) -> List[Field]:
        return [Field(f) for f in self["schema"]]

    def _fields_repr(self) -> str:
        return f", schema={[(f.name, f.dtype) for f in self.schema]!r}"


class OnDemandFeature(Field):
    """A feature of an on-demand view: name, type and the expression that computes it."""

    @property
    def expression(self) -> str:
        return self["expression"]

    def _fields_repr(self) -> str:
        return f", dtype={self.dtype!r}, expression={self.expression!r}"


class OnDemandFeatureView(_Definition):
    """Features computed at request time from request data and other views' features
    (Feast's ``OnDemandFeatureView``), with StrataLake expressions evaluated in the
    engine, identically online and in ``get_historical_features``."""

    @property
    def sources(self) -> List[str]:
        """Names of the request sources and feature views its expressions read."""
        return list(self["sources"])

    @property
    def features(self) -> List[OnDemandFeature]:
        return [OnDemandFeature(f) for f in self["features"]]

    @property
    def schema(self) -> List[OnDemandFeature]:
        """Feast's name for :attr:`features`."""
        return self.features

    def _fields_repr(self) -> str:
        return f", sources={self.sources!r}, features={[f.name for f in self.features]!r}"


class TransformationDefinition(_Definition):
    """A registered transformation (the ``transformations:`` of the definition files):
    SQL over the repository's tables that ``stratalake run`` / :meth:`FeatureStore.run`
    materializes into ``output`` (docs/pipelines.md), or a Python function of the
    repository's files (``python: FILE.py:FUNCTION``; :attr:`python`, :attr:`kind`,
    :attr:`inputs`, :attr:`source`). Not to be confused with
    :class:`stratalake.Transformation`, a Python function run through the SDK from
    code, which the registry does not hold."""

    @property
    def sql(self) -> str:
        """The query ("" for a Python transformation)."""
        return self["sql"]

    @property
    def python(self) -> str:
        """``FILE.py:FUNCTION`` of a Python transformation ("" for SQL ones)."""
        return self.get("python", "")

    @property
    def kind(self) -> str:
        """What a Python transformation's function is handed: pandas, polars or
        arrow ("" for SQL ones)."""
        return self.get("kind", "")

    @property
    def inputs(self) -> List[str]:
        """The tables a Python transformation reads, in the order its function
        takes them (empty for SQL ones, which read the tables their SQL names)."""
        return list(self.get("inputs", []))

    @property
    def source(self) -> str:
        """A Python transformation's function source, as the registry versions it."""
        return self.get("source", "")

    @property
    def output(self) -> str:
        """The table it writes, as a path below the offline store (``"silver/orders"``)."""
        return self["output"]

    @property
    def mode(self) -> str:
        """full_refresh, append or merge."""
        return self["mode"]

    @property
    def keys(self) -> List[str]:
        """merge: the columns that identify a row."""
        return list(self.get("keys", []))

    @property
    def order_by(self) -> str:
        """merge: the column whose latest value wins per key ("" if none)."""
        return self.get("order_by", "")

    @property
    def on_change(self) -> str:
        """What an incremental run does when input rows were updated or deleted:
        full_refresh, keys, partitions or fail."""
        return self.get("on_change", "full_refresh")

    @property
    def partition_by(self) -> List[str]:
        return list(self.get("partition_by", []))

    @property
    def schema(self) -> List[Field]:
        """The declared output columns (empty when none are declared)."""
        return [Field(f) for f in self.get("schema", [])]

    def _fields_repr(self) -> str:
        python = f", python={self.python!r}, kind={self.kind!r}" if self.python else ""
        return f", output={self.output!r}, mode={self.mode!r}{python}"
