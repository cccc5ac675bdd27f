"""Pipelines from Python: SQL over the repository's Delta tables and the
transformations of its definition files (docs/pipelines.md).

``FeatureStore.sql``, ``FeatureStore.run`` and ``FeatureStore.plan_runs`` call these."""
from __future__ import annotations

import functools
import hashlib
import inspect
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

import pyarrow as pa

from . import _core
from ._arrow import as_stream_capsule, table_from_capsule, to_polars


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
    # Python transformations of the definition files run here, in this process.
    raised: List[BaseException] = []

    def call(spec: Dict[str, Any], capsules: List[Any]) -> Any:
        try:
            result = call_registered_function(spec, [table_from_capsule(c) for c in capsules])
            return as_stream_capsule(result, f"the result of {spec['name']}")
        except BaseException as e:  # handed back to the engine as its error text
            raised.append(e)
            return f"{type(e).__name__}: {e}"

    try:
        return _core.run_transformations(os.fspath(repo_path), list(names), full_refresh, call)
    except Exception as e:
        if raised:
            raise e from raised[0]
        raise


def plan_transformations(repo_path: str | os.PathLike,
                         names: Sequence[str]) -> List[Dict[str, Any]]:
    return _core.plan_transformations(os.fspath(repo_path), list(names))


def lineage(repo_path: str | os.PathLike, table: str, upstream: bool = False) -> List[Dict[str, Any]]:
    return _core.lineage(os.fspath(repo_path), table, upstream)


# ---- Python transformations ----------------------------------------------------

def _frame(table: pa.Table, kind: str) -> Any:
    if kind == "pandas":
        return table.to_pandas()
    if kind == "polars":
        return to_polars(table)
    return table


def _result_table(result: Any, name: str) -> pa.Table:
    if type(result).__module__.split(".")[0] == "pandas":
        # pandas' own __arrow_c_stream__ would carry its index as a column.
        return pa.Table.from_pandas(result, preserve_index=False)
    if isinstance(result, pa.Table):
        return result
    return table_from_capsule(as_stream_capsule(result, f"the result of {name}"))


def load_registered_function(root: str, file: str, function: str) -> Callable:
    """The function ``function`` of ``file`` (relative to the repository folder
    ``root``), for a transformation of the definition files (``python:
    FILE.py:FUNCTION``). The file is executed afresh on every call (as a module
    named after its path, with ``root`` first on ``sys.path``), so that a run
    sees the source the registry fingerprinted. A decorated
    :class:`Transformation` gives its function."""
    import importlib.util
    import sys
    path = os.path.join(root, file)
    if root not in sys.path:
        sys.path.insert(0, root)
    module_name = "_stratalake_transform_" + "".join(
        c if c.isalnum() else "_" for c in os.path.splitext(file)[0])
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {file} (in {root})")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # as an import would (dataclasses, pickle need it)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    fn = getattr(module, function, None)
    if fn is None:
        raise AttributeError(f"{file} defines no function {function!r}")
    if isinstance(fn, Transformation):
        fn = fn.fn
    if not callable(fn):
        raise TypeError(f"{file}:{function} is a {type(fn).__name__}, not a function")
    return fn


def call_registered_function(spec: Dict[str, Any], tables: Sequence[pa.Table]) -> pa.Table:
    """Runs the function of a transformation of the definition files on its
    inputs (in declared order) and returns its result as a pyarrow Table. ``spec``
    holds root, file, function, kind and name (the CLI's worker,
    stratalake.transform_worker, and :meth:`FeatureStore.run` call this)."""
    fn = load_registered_function(spec["root"], spec["file"], spec["function"])
    kind = spec.get("kind") or "pandas"
    result = fn(*[_frame(t, kind) for t in tables])
    return _result_table(result, spec["name"])


_KINDS = ("pandas", "polars", "pyarrow")
_MODES = ("full_refresh", "append", "merge")
_ON_CHANGE = ("full_refresh", "keys", "partitions", "fail")


def _fingerprint(fn: Callable, kind: str) -> str:
    """What decides the function's result besides its inputs: its code (source
    when available, else its bytecode and constants) and the frame it is handed."""
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        text = repr((code.co_code, code.co_consts)) if code else repr(fn)
    return hashlib.sha256(f"{kind}\x1f{text}".encode()).hexdigest()[:16]


class Transformation:
    """A transformation computed by a Python function (pandas, Polars or pyarrow)
    instead of SQL, with the inputs, modes and guarantees of SQL transformations
    (docs/pipelines.md, "Python transformations"): each table in ``inputs`` is read
    at one pinned version (all of it, or on an incremental run what changed) and
    handed to ``fn`` positionally, as a ``kind`` frame; ``fn`` returns the rows
    (any Arrow-compatible frame), which land in ``output`` as one Delta commit.

    Made by the :func:`transformation` decorator, or directly; run with
    :meth:`FeatureStore.run` or :meth:`run`. Calling it calls ``fn``."""

    def __init__(self, fn: Callable, *, output: str, inputs: Sequence[str],
                 name: Optional[str] = None, mode: str = "full_refresh",
                 keys: Optional[Sequence[str]] = None, order_by: Optional[str] = None,
                 on_change: Optional[str] = None, partition_by: Optional[Sequence[str]] = None,
                 schema: Optional[Any] = None, kind: str = "pandas", description: str = "",
                 input_keys: Optional[Dict[str, Sequence[str]]] = None):
        if not callable(fn):
            raise TypeError(f"transformation needs a function; got {type(fn).__name__}")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not inputs:
            raise ValueError("transformation: name the tables it reads (inputs=['bronze.orders'])")
        if kind not in _KINDS:
            raise ValueError(f"transformation: unknown kind {kind!r} (use {', '.join(_KINDS)})")
        if mode not in _MODES:
            raise ValueError(f"transformation: unknown mode {mode!r} (use {', '.join(_MODES)})")
        if on_change is not None and on_change not in _ON_CHANGE:
            raise ValueError(f"transformation: unknown on_change {on_change!r} "
                             f"(use {', '.join(_ON_CHANGE)})")
        if mode == "merge" and not keys:
            raise ValueError("transformation: mode 'merge' needs keys (the columns that identify a row)")
        if on_change == "keys" and mode != "merge":
            raise ValueError("transformation: on_change 'keys' applies to mode 'merge' only")
        if on_change == "partitions" and not partition_by:
            raise ValueError("transformation: on_change 'partitions' needs partition_by")
        self.fn = fn
        self.name = name or fn.__name__
        self.output = output
        self.inputs = list(inputs)
        self.mode = mode
        self.keys = list(keys or [])
        self.order_by = order_by or ""
        self.on_change = on_change or "full_refresh"
        self.partition_by = list(partition_by or [])
        self.kind = kind
        self.description = description
        if input_keys and on_change not in ("keys", "partitions"):
            raise ValueError("transformation: input_keys applies to on_change 'keys' or "
                             "'partitions'")
        self.input_keys = {t: [c] if isinstance(c, str) else list(c)
                           for t, c in (input_keys or {}).items()}
        if isinstance(schema, dict):
            schema = [(n, t, True) for n, t in schema.items()]
        self.schema = [tuple(f) if len(f) == 3 else (f[0], f[1], True) for f in (schema or [])]
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def _spec(self) -> Dict[str, Any]:
        try:
            file = os.path.relpath(inspect.getsourcefile(self.fn) or "")
            line = inspect.getsourcelines(self.fn)[1]
        except (OSError, TypeError, ValueError):
            file, line = f"<python function {self.name}>", 0
        return {"name": self.name, "file": file, "line": line,
                "output": self.output, "inputs": self.inputs,
                "mode": self.mode, "keys": self.keys, "order_by": self.order_by,
                "on_change": self.on_change, "partition_by": self.partition_by,
                "schema": self.schema, "description": self.description,
                "input_keys": self.input_keys,
                "fingerprint": _fingerprint(self.fn, self.kind)}

    def _frame(self, table: pa.Table) -> Any:
        if self.kind == "pandas":
            return table.to_pandas()
        if self.kind == "polars":
            return to_polars(table)
        return table

    def run(self, store: Any, full_refresh: bool = False) -> Dict[str, Any]:
        """Run it against ``store`` (a FeatureStore or a repository folder); returns
        the run's dict (name, output, noop, version, rows, inputs, detail)."""
        repo_path = getattr(store, "repo_path", store)
        raised: List[BaseException] = []
        names = [i if "/" in i else i.replace(".", "/", 1) for i in self.inputs]

        def call(capsules: Dict[str, Any]) -> Any:
            try:
                frames = [self._frame(table_from_capsule(capsules[n])) for n in names]
                result = self.fn(*frames)
                if type(result).__module__.split(".")[0] == "pandas":
                    # pandas' own __arrow_c_stream__ would carry its index as a column.
                    result = pa.Table.from_pandas(result, preserve_index=False)
                return as_stream_capsule(result, f"the result of {self.name}")
            except BaseException as e:  # handed back to the engine as its error text
                raised.append(e)
                return f"{type(e).__name__}: {e}"

        try:
            return _core.run_function_transformation(os.fspath(repo_path), self._spec(), call,
                                                     full_refresh)
        except Exception as e:
            if raised:
                raise e from raised[0]
            raise

    def __repr__(self) -> str:
        return (f"Transformation({self.name!r}, output={self.output!r}, inputs={self.inputs!r}, "
                f"mode={self.mode!r}, kind={self.kind!r})")


def transformation(output: str, inputs: Sequence[str], **options: Any) -> Callable[[Callable], Transformation]:
    """Decorator: ``@stratalake.transformation(output="silver.orders",
    inputs=["bronze.orders"], mode="merge", keys=["order_id"], order_by="updated_at")``
    over ``def silver_orders(orders: pd.DataFrame) -> pd.DataFrame``. Options are
    those of :class:`Transformation` (name, mode, keys, order_by, on_change,
    partition_by, input_keys, schema, kind='pandas'|'polars'|'pyarrow', description)."""
    def wrap(fn: Callable) -> Transformation:
        return Transformation(fn, output=output, inputs=inputs, **options)
    return wrap
