"""Arrow at the boundary: any Arrow-compatible input becomes an object with
``__arrow_c_stream__`` (without copying where the producer allows it), and engine
output becomes pyarrow."""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from ._errors import SchemaMismatchError


def as_stream_capsule(data: Any, what: str = "data") -> Any:
    """The ``arrow_array_stream`` PyCapsule of ``data``.

    Accepts pyarrow Tables, RecordBatches and RecordBatchReaders; pandas and polars
    DataFrames; any object with ``__arrow_c_stream__`` (DuckDB results, ...) or
    ``__arrow_c_array__``; a dict of columns or a list of row dicts.
    """
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if type(data).__module__.split(".")[0] == "polars" and type(data).__name__ == "LazyFrame":
        # A query plan, not rows: run it (polars' streaming engine keeps its memory
        # bounded while it runs; the result is handed over without a copy).
        data = _collect_lazy(data)
    if isinstance(data, (pa.Table, pa.RecordBatchReader)):
        _check_names(data.schema.names)
    if hasattr(data, "__arrow_c_stream__"):
        return data.__arrow_c_stream__()
    mod = type(data).__module__.split(".")[0]
    if mod == "pandas":
        _check_names(data.columns)
        return pa.Table.from_pandas(data, preserve_index=False).__arrow_c_stream__()
    if mod == "polars":
        _check_names(data.columns)
        return data.to_arrow().__arrow_c_stream__()
    if hasattr(data, "__arrow_c_array__"):
        batch = pa.record_batch(data)
        _check_names(batch.schema.names)
        return batch.__arrow_c_stream__()
    if isinstance(data, dict):
        _check_names(data)
        return _table_from_columns(data, what).__arrow_c_stream__()
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        # Every key of every row is a column (pyarrow's from_pylist would keep only
        # the first row's keys and drop the others without a word).
        names = list(dict.fromkeys(k for r in data for k in r))
        _check_names(names)
        return _table_from_columns({n: [r.get(n) for r in data] for n in names},
                                   what).__arrow_c_stream__()
    raise TypeError(
        f"{what} must be a pyarrow Table/RecordBatch/RecordBatchReader, a pandas or polars "
        f"DataFrame, an object with __arrow_c_stream__ (e.g. a DuckDB result), a dict of "
        f"columns or a list of row dicts; got {type(data).__name__}")


_CONVERSION_ERRORS = (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError)


def _check_names(names) -> None:
    """A NUL in a column name would be cut off by the Arrow C interface (its names
    are C strings), so the column would silently lose the rest of its name."""
    for name in names:
        if isinstance(name, str) and "\0" in name:
            shown = name.replace("\0", "\\0")
            raise SchemaMismatchError(
                f"column name '{shown}' holds a NUL character, which Delta column names "
                "cannot hold; rename the column")


def _table_from_columns(columns: dict, what: str) -> pa.Table:
    try:
        return pa.table(columns)
    except _CONVERSION_ERRORS:
        _name_the_column(columns, what)
        raise


def _name_the_column(columns: dict, what: str) -> None:
    """Re-raises a value conversion error of pyarrow (which names no column) with
    the name of the first column whose values do not convert; the same class."""
    for name, values in columns.items():
        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            continue
        try:
            pa.array(values)
        except _CONVERSION_ERRORS as e:
            hint = ""
            if isinstance(e, OverflowError):
                hint = ("; a Delta long holds -2**63 to 2**63-1: store larger values as "
                        "decimal or string")
            raise type(e)(f"{what}: column {name!r}: {e}{hint}") from e


def table_from_capsule(capsule: Any) -> pa.Table:
    """A pyarrow Table from an ``arrow_array_stream`` capsule (no copy)."""
    return pa.RecordBatchReader._import_from_c_capsule(capsule).read_all()


def reader_from_capsule(capsule: Any) -> pa.RecordBatchReader:
    return pa.RecordBatchReader._import_from_c_capsule(capsule)


def _collect_lazy(frame: Any) -> Any:
    try:
        return frame.collect(engine="streaming")
    except TypeError:  # polars before 1.23 has no engine= here
        return frame.collect()


def require(module: str, extra: str, what: str) -> Any:
    """Imports an optional dependency, or raises an ImportError that says which extra
    of the package installs it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{what} needs {module}, which is not installed: "
                          f"pip install 'stratalake[{extra}]' (or pip install {module})") from e


def to_pandas(table: pa.Table, what: str = "to_pandas()", **kwargs: Any):
    """A pandas DataFrame of ``table`` (pandas must be installed); ``kwargs`` go to
    ``pyarrow.Table.to_pandas``."""
    require("pandas", "pandas", what)
    return table.to_pandas(**kwargs)


def to_polars(table: pa.Table, what: str = "to_polars()"):
    """A polars DataFrame over ``table`` (polars must be installed)."""
    pl = require("polars", "polars", what)
    return pl.from_arrow(table)


def html_table(table: pa.Table, caption: str, max_rows: int = 10) -> str:
    """An HTML table of the first rows of ``table`` (for notebooks; needs no pandas)."""
    import html
    head = table.slice(0, max_rows).to_pylist()
    names = table.column_names
    out = [f"<table><caption style='text-align:left'>{html.escape(caption)}</caption><thead><tr>"]
    out += [f"<th>{html.escape(str(n))}</th>" for n in names]
    out.append("</tr></thead><tbody>")
    for row in head:
        out.append("<tr>" + "".join(f"<td>{html.escape(str(row[n]))}</td>" for n in names) + "</tr>")
    if table.num_rows > max_rows:
        out.append(f"<tr><td colspan='{len(names)}'>... {table.num_rows - max_rows:,} more rows</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)
