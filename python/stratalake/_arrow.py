"""Arrow at the boundary: any Arrow-compatible input becomes an object with
``__arrow_c_stream__`` (without copying where the producer allows it), and engine
output becomes pyarrow."""
from __future__ import annotations

from typing import Any

import pyarrow as pa


def as_stream_capsule(data: Any, what: str = "data") -> Any:
    """The ``arrow_array_stream`` PyCapsule of ``data``.

    Accepts pyarrow Tables, RecordBatches and RecordBatchReaders; pandas and polars
    DataFrames; any object with ``__arrow_c_stream__`` (DuckDB results, ...) or
    ``__arrow_c_array__``; a dict of columns or a list of row dicts.
    """
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if hasattr(data, "__arrow_c_stream__"):
        return data.__arrow_c_stream__()
    mod = type(data).__module__.split(".")[0]
    if mod == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False).__arrow_c_stream__()
    if mod == "polars":
        return data.to_arrow().__arrow_c_stream__()
    if hasattr(data, "__arrow_c_array__"):
        return pa.record_batch(data).__arrow_c_stream__()
    if isinstance(data, dict):
        return pa.table(data).__arrow_c_stream__()
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return pa.Table.from_pylist(data).__arrow_c_stream__()
    raise TypeError(
        f"{what} must be a pyarrow Table/RecordBatch/RecordBatchReader, a pandas or polars "
        f"DataFrame, an object with __arrow_c_stream__ (e.g. a DuckDB result), a dict of "
        f"columns or a list of row dicts; got {type(data).__name__}")


def table_from_capsule(capsule: Any) -> pa.Table:
    """A pyarrow Table from an ``arrow_array_stream`` capsule (no copy)."""
    return pa.RecordBatchReader._import_from_c_capsule(capsule).read_all()


def reader_from_capsule(capsule: Any) -> pa.RecordBatchReader:
    return pa.RecordBatchReader._import_from_c_capsule(capsule)


def to_polars(table: pa.Table):
    """A polars DataFrame over ``table`` (polars must be installed)."""
    try:
        import polars as pl
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("to_polars() needs polars: pip install polars") from e
    return pl.from_arrow(table)
