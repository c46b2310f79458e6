"""Profiles of tabular data: per column its type, missing values, distinct count, distribution
and top values.

Vectorised over Arrow buffers: numeric columns are sorted once (numpy's SIMD sort), which gives
exact quantiles, distinct count, extremes and top values in one pass over the sorted copy;
string columns are dictionary-encoded (free when Parquet already stores them so) and counted with
``bincount``. Columns are profiled in parallel threads; numpy and Arrow release the GIL.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["QUANTILES", "ColumnKind", "column_kind", "profile_table"]

ColumnKind = Literal["numeric", "boolean", "categorical", "text", "datetime", "other"]
QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
TOP_K = 10
# Top values are listed for non-numeric columns, and for numeric ones with few distinct values.
_FEW_DISTINCT = 50


def column_kind(dtype: pa.DataType) -> ColumnKind:
    """The profile kind of an Arrow type (text is told from categorical later, by the data).

    Examples
    --------
    >>> import pyarrow as pa
    >>> column_kind(pa.float32()), column_kind(pa.dictionary(pa.int32(), pa.string()))
    ('numeric', 'categorical')
    """
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numeric"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "categorical"
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype) or pa.types.is_time(dtype):
        return "datetime"
    return "other"


def profile_table(table: pa.Table, *, threads: int | None = None) -> dict[str, Any]:
    """Profile every column of ``table``.

    Returns
    -------
    dict
        ``{"rows": n, "columns": {name: {...}}}``; each column has ``type``, ``kind``, ``count``,
        ``missing`` (nulls, and NaN for floats), ``missing_ratio``, ``distinct`` and, by kind,
        ``min``/``max``/``mean``/``std`` (sample)/``quantiles`` (exact, linear interpolation),
        ``length`` (string lengths) and ``top`` (most frequent values with counts, ties by value).

    Examples
    --------
    >>> import pyarrow as pa
    >>> p = profile_table(pa.table({"x": [1.0, 2.0, None], "c": ["a", "a", "b"]}))
    >>> p["columns"]["x"]["missing"], p["columns"]["x"]["mean"], p["columns"]["c"]["top"][0]
    (1, 1.5, {'value': 'a', 'count': 2})
    """
    rows = table.num_rows
    jobs: list[Callable[[], dict[str, Any]]] = [
        _job(field, table.column(i), rows) for i, field in enumerate(table.schema)
    ]
    workers = max(1, min(threads or os.cpu_count() or 1, len(jobs)))
    if workers == 1:
        results = [job() for job in jobs]
    else:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda job: job(), jobs))
    return {"rows": rows, "columns": dict(zip(table.column_names, results, strict=True))}


def _job(field: pa.Field, column: pa.ChunkedArray, rows: int) -> Callable[[], dict[str, Any]]:
    kind = column_kind(field.type)

    def run() -> dict[str, Any]:
        base: dict[str, Any] = {"type": str(field.type), "kind": kind}
        summarise = {
            "numeric": _numeric,
            "categorical": _categorical,
            "boolean": _boolean,
            "datetime": _datetime,
        }.get(kind)
        if summarise is not None:
            try:
                return base | summarise(column, rows)
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
                pass  # a type Arrow cannot aggregate: counted like any other column
        return {"type": str(field.type), "kind": "other"} | _counts(
            rows - column.null_count, rows, distinct=None
        )

    return run


def _counts(count: int, rows: int, *, distinct: int | None) -> dict[str, Any]:
    missing = rows - count
    return {
        "count": count,
        "missing": missing,
        "missing_ratio": missing / rows if rows else 0.0,
        "distinct": distinct,
    }


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _present_values(column: pa.ChunkedArray) -> np.ndarray:
    """The column's non-missing values as a fresh numpy array (floats' NaN dropped)."""
    dtype = column.type
    if pa.types.is_decimal(dtype):
        column = pc.cast(column, pa.float64())
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if array.null_count:
        array = pc.drop_null(array)
    values = np.array(array.to_numpy(zero_copy_only=False), copy=True)
    if values.dtype.kind == "f":
        values = values[~np.isnan(values)] if np.isnan(values).any() else values
    return values


def _runs(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of a sorted array and how often each occurs."""
    starts = np.flatnonzero(np.concatenate(([True], sorted_values[1:] != sorted_values[:-1])))
    counts = np.diff(np.append(starts, sorted_values.size))
    return sorted_values[starts], counts


def _top(values: np.ndarray, counts: np.ndarray) -> list[dict[str, Any]]:
    """The TOP_K most frequent values, ties broken by value (``values`` sorted ascending)."""
    order = np.argsort(-counts, kind="stable")[:TOP_K]
    return [{"value": _json(values[i]), "count": int(counts[i])} for i in order]


def _numeric(column: pa.ChunkedArray, rows: int) -> dict[str, Any]:
    values = _present_values(column)
    n = values.size
    if n == 0:
        return _counts(0, rows, distinct=0) | {
            "min": None,
            "max": None,
            "mean": None,
            "std": None,
            "quantiles": {str(q): None for q in QUANTILES},
        }
    values.sort()
    distinct_values, counts = _runs(values)
    as_float = values.astype(np.float64, copy=False)
    positions = np.asarray(QUANTILES) * (n - 1)
    low = np.floor(positions).astype(np.int64)
    high = np.minimum(low + 1, n - 1)
    quantiles = as_float[low] + (as_float[high] - as_float[low]) * (positions - low)
    out = _counts(n, rows, distinct=int(distinct_values.size)) | {
        "min": _json(values[0]),
        "max": _json(values[-1]),
        "mean": _json(float(as_float.mean())),
        "std": _json(float(as_float.std(ddof=1))) if n > 1 else None,
        "quantiles": {str(q): _json(float(v)) for q, v in zip(QUANTILES, quantiles, strict=True)},
    }
    if distinct_values.size <= _FEW_DISTINCT:
        out["top"] = _top(distinct_values, counts)
    return out


def _categorical(column: pa.ChunkedArray, rows: int) -> dict[str, Any]:
    if pa.types.is_dictionary(column.type) and column.num_chunks > 1:
        # Unifying many chunks' dictionaries grows with chunks x values (minutes for a column
        # of e-mails): decoded and encoded again once instead.
        column = pc.cast(column, column.type.value_type)
    if pa.types.is_dictionary(column.type):
        encoded = column.chunk(0) if column.num_chunks else pa.array([], column.type)
    else:
        encoded = pc.dictionary_encode(column.combine_chunks())
    dictionary, indices = encoded.dictionary, encoded.indices
    present = pc.drop_null(indices).to_numpy()
    counts = (
        np.bincount(present, minlength=len(dictionary))
        if present.size
        else np.zeros(len(dictionary), dtype=np.int64)
    )
    used = np.flatnonzero(counts)
    count = int(present.size)
    out = _counts(count, rows, distinct=int(used.size))
    if used.size == 0:
        return out | {"length": {"min": None, "max": None, "mean": None}, "top": []}
    # In Arrow, not Python: a column of names or e-mails has as many values as rows. The used
    # values are sorted (UTF-8 bytes sort as code points do) so ties in the top list break by
    # value, as elsewhere; only the top values become Python strings.
    values = dictionary.take(pa.array(used))
    order = pc.sort_indices(values).to_numpy()
    used_counts = counts[used][order]
    lengths = pc.utf8_length(values).to_numpy(zero_copy_only=False)[order].astype(np.int64)
    mean_length = float((lengths * used_counts).sum() / count)
    out["length"] = {"min": int(lengths.min()), "max": int(lengths.max()), "mean": mean_length}
    top = np.argsort(-used_counts, kind="stable")[:TOP_K]
    top_values = values.take(pa.array(order[top])).to_pylist()
    out["top"] = [
        {"value": value, "count": int(used_counts[i])}
        for value, i in zip(top_values, top, strict=True)
    ]
    if out["distinct"] / count > 0.5 and mean_length >= 20:
        out["kind"] = "text"
    return out


def _boolean(column: pa.ChunkedArray, rows: int) -> dict[str, Any]:
    count = len(column) - column.null_count
    trues = int(pc.sum(column).as_py() or 0)
    top = sorted(((trues, True), (count - trues, False)), key=lambda t: (-t[0], t[1]))
    return _counts(count, rows, distinct=sum(1 for n, _ in top if n)) | {
        "mean": trues / count if count else None,
        "top": [{"value": v, "count": n} for n, v in top if n],
    }


def _datetime(column: pa.ChunkedArray, rows: int) -> dict[str, Any]:
    count = len(column) - column.null_count
    if count == 0:
        return _counts(0, rows, distinct=0) | {"min": None, "max": None}
    extremes = pc.min_max(column)
    distinct = pc.count_distinct(column, mode="only_valid").as_py()
    return _counts(count, rows, distinct=distinct) | {
        "min": str(extremes["min"].as_py()),
        "max": str(extremes["max"].as_py()),
    }
