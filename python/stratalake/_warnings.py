"""The engine's warnings (a code and the view / source it concerns) in the SDK's words,
raised through :mod:`warnings` as :class:`~stratalake.StrataLakeWarning`."""
from __future__ import annotations

import warnings
from typing import Any, Dict, Iterable

from ._errors import StrataLakeWarning


def _fill(w: Dict[str, Any]) -> str:
    if w["push_source"]:
        return f"store.push({w['source']!r}, df, to='online_and_offline')"
    return f"store.ingest({w['source']!r}, 'FILE')"


def warning_text(w: Dict[str, Any]) -> str:
    """The message of one engine warning."""
    code = w["code"]
    if code == "source_missing":
        return (f"feature view {w['view']!r} has no data: source {w['source']!r} has no table "
                f"yet; load it with {_fill(w)}")
    if code == "source_empty":
        return (f"feature view {w['view']!r} has no data: source {w['source']!r} has no rows; "
                f"load it with {_fill(w)}")
    if code == "all_features_null":
        if w["rows_read"] == 0:
            return ("every feature is null in every row: the sources have no rows in the entity "
                    "rows' time range; load data with store.ingest(source, 'FILE'), or check "
                    "timestamp_column and the entity times")
        return ("every feature is null in every row: no feature row matched the entity keys at "
                "the entity times (within the views' ttl); check the join key values, "
                "timestamp_column and the entity times")
    if code == "not_materialized":
        if w["push_source"]:
            return (f"feature view {w['view']!r} has nothing in the online store: push rows with "
                    f"store.push({w['source']!r}, df)")
        return (f"feature view {w['view']!r} has nothing in the online store: run "
                "store.materialize(start_date, end_date) (or store.materialize_incremental('now'))")
    if code == "store_unavailable":
        return (f"{w['keys']} key(s) of feature view {w['view']!r} could not be read (status "
                f"UNAVAILABLE): {w['detail']}; the other keys were read. Bring the store node "
                "back, or retry")
    return f"{code}: {w['view']} {w['source']}"


def warn_all(engine_warnings: Iterable[Dict[str, Any]], stacklevel: int = 3) -> None:
    """``warnings.warn`` each engine warning as a StrataLakeWarning (stacklevel: the caller of
    the public method that got them)."""
    for w in engine_warnings:
        warnings.warn(warning_text(w), StrataLakeWarning, stacklevel=stacklevel + 1)
