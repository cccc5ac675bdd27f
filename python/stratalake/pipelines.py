"""Pipelines from Python: SQL over the repository's Delta tables and the
transformations of its definition files (docs/pipelines.md).

``FeatureStore.sql``, ``FeatureStore.run`` and ``FeatureStore.plan_runs`` call these."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Sequence

import pyarrow as pa

from . import _core
from ._arrow import table_from_capsule, to_polars


class SqlResult:
    """The result of :meth:`FeatureStore.sql`: an Arrow table, and the Delta version
    of each table the query read (``inputs``, e.g. ``{"bronze/orders": 3}``)."""

    def __init__(self, table: pa.Table, inputs: Dict[str, int]):
        self._table = table
        self.inputs = dict(inputs)

    def to_arrow(self) -> pa.Table:
        return self._table

    def to_pandas(self):
        return self._table.to_pandas()

    def to_df(self):
        return self.to_pandas()

    def to_polars(self):
        return to_polars(self._table)

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self._table.__arrow_c_stream__(requested_schema)

    def __len__(self) -> int:
        return self._table.num_rows

    def __repr__(self) -> str:
        return f"SqlResult({self._table.num_rows} rows, inputs={self.inputs})"


def run_sql(repo_path: str | os.PathLike, query: str) -> SqlResult:
    capsule, inputs = _core.run_sql(os.fspath(repo_path), query)
    return SqlResult(table_from_capsule(capsule), inputs)


def run_transformations(repo_path: str | os.PathLike, names: Sequence[str],
                        full_refresh: bool = False) -> List[Dict[str, Any]]:
    return _core.run_transformations(os.fspath(repo_path), list(names), full_refresh)


def plan_transformations(repo_path: str | os.PathLike,
                         names: Sequence[str]) -> List[Dict[str, Any]]:
    return _core.plan_transformations(os.fspath(repo_path), list(names))
