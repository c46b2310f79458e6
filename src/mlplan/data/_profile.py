"""Profiles of tabular data: per column its type, missing values, distinct count, distribution
and top values, computed from a stream of record batches in memory bounded by the batch.

Counts, missing values, extremes, mean, standard deviation and string lengths are always
exact. Distinct values are kept with their counts (numbers in numpy, strings in Arrow: never
Python objects) while a column has at most :data:`EXACT_DISTINCT` of them, which gives exact
quantiles, distinct counts and top values; a column with more switches to sketches, and its
profile says so under ``sketched`` with each one's error bound: quantiles from a KLL sketch
(Apache DataSketches), the distinct count from HyperLogLog, top values from Misra–Gries (see
:mod:`mlplan.data._sketch`). Columns are profiled in parallel threads within a batch; numpy
and Arrow release the GIL.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.data._arrays import arrow_values, numpy_values
from mlplan.data._sketch import (
    FrequentValues,
    HyperLogLog,
    hash_numbers,
    hash_values,
    rows_of,
)

__all__ = [
    "EXACT_DISTINCT",
    "QUANTILES",
    "ColumnKind",
    "Profiler",
    "column_kind",
    "profile_table",
]

ColumnKind = Literal["numeric", "boolean", "categorical", "text", "datetime", "other"]
QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
TOP_K = 10
# Top values are listed for non-numeric columns, and for numeric ones with few distinct values.
_FEW_DISTINCT = 50
# Distinct values a column keeps exactly (with their counts) before it switches to sketches.
EXACT_DISTINCT = 1 << 16
# KLL's k: a normalised rank error of 0.14 % (99 % confidence), about 40 KB a column.
_KLL_K = 2000


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
    """Profile every column of ``table`` (a :class:`Profiler` fed its batches).

    Returns
    -------
    dict
        ``{"rows": n, "columns": {name: {...}}}``; each column has ``type``, ``kind``, ``count``,
        ``missing`` (nulls, and NaN for floats), ``missing_ratio``, ``distinct`` and, by kind,
        ``min``/``max``/``mean``/``std`` (sample)/``quantiles`` (linear interpolation),
        ``length`` (string lengths) and ``top`` (most frequent values with counts, ties by
        value); ``sketched`` where a column had too many distinct values to count exactly.

    Examples
    --------
    >>> import pyarrow as pa
    >>> p = profile_table(pa.table({"x": [1.0, 2.0, None], "c": ["a", "a", "b"]}))
    >>> p["columns"]["x"]["missing"], p["columns"]["x"]["mean"], p["columns"]["c"]["top"][0]
    (1, 1.5, {'value': 'a', 'count': 2})
    """
    profiler = Profiler(table.schema, threads=threads)
    profiler.add_all(table.to_batches())
    return profiler.finish()


class Profiler:
    """A profile built a record batch at a time: memory is bounded by the batch and by
    :data:`EXACT_DISTINCT` values a column, whatever the number of rows.

    Examples
    --------
    >>> import pyarrow as pa
    >>> profiler = Profiler(pa.schema([("x", pa.int64())]))
    >>> for part in ([1, 2], [2, None]):
    ...     profiler.add(pa.record_batch([pa.array(part, pa.int64())], names=["x"]))
    >>> column = profiler.finish()["columns"]["x"]
    >>> column["count"], column["distinct"], column["quantiles"]["0.5"]
    (3, 2, 2.0)
    """

    def __init__(
        self, schema: pa.Schema, *, threads: int | None = None, private: Iterable[str] = ()
    ) -> None:
        self.schema = schema
        self.rows = 0
        hidden = set(private)
        self._columns = [_accumulator(field, field.name in hidden) for field in schema]
        workers = max(1, min(threads or os.cpu_count() or 1, len(self._columns)))
        self._pool = ThreadPoolExecutor(workers) if workers > 1 else None

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Count one batch (its schema is the profiler's)."""
        self.rows += batch.num_rows
        columns = [batch.column(i) for i in range(batch.num_columns)]
        if self._pool is None:
            for accumulator, column in zip(self._columns, columns, strict=True):
                accumulator.add(column)
        else:
            list(self._pool.map(_Column.add, self._columns, columns))

    def add_all(self, batches: Iterable[pa.RecordBatch]) -> None:
        """Count every batch."""
        for batch in batches:
            self.add(batch)

    def merge(self, other: Profiler) -> None:
        """Count what ``other`` counted too, as if its batches had been added after this
        profiler's (the order tells whether a column's values only ever increase): partial
        profiles of a file's blocks, made apart, merged in the file's order.

        Exact parts come out as one profiler fed every batch gives them: counts, extremes,
        distinct values, quantiles and top values while a column's distinct values fit, and
        a HyperLogLog's registers; mean and standard deviation up to float rounding. Past
        that, a merged KLL or Misra–Gries sketch keeps the bound its profile states.

        Examples
        --------
        >>> import pyarrow as pa
        >>> schema = pa.schema([("x", pa.int64())])
        >>> one, two = Profiler(schema, threads=1), Profiler(schema, threads=1)
        >>> one.add(pa.table({"x": [1, 2]})); two.add(pa.table({"x": [2, None]}))
        >>> one.merge(two)
        >>> column = one.finish()["columns"]["x"]
        >>> column["count"], column["distinct"], column["quantiles"]["0.5"]
        (3, 2, 2.0)
        """
        if [f.name for f in other.schema] != [f.name for f in self.schema]:
            raise ValueError("profiles of different columns cannot be merged")
        self.rows += other.rows
        for mine, theirs in zip(self._columns, other._columns, strict=True):
            mine.merge(theirs)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without its threads (a partial profile sent between processes)."""
        state = dict(self.__dict__)
        state["_pool"] = None
        return state

    def close(self) -> None:
        """Stop the threads (a profile abandoned: its read starts again)."""
        if self._pool is not None:
            self._pool.shutdown()

    def finish(self) -> dict[str, Any]:
        """The profile of every row added (``{"rows": n, "columns": {...}}``)."""
        self.close()
        columns = {
            field.name: accumulator.finish(self.rows)
            for field, accumulator in zip(self.schema, self._columns, strict=True)
        }
        return {"rows": self.rows, "columns": columns}


def _accumulator(field: pa.Field, private: bool) -> _Column:
    kind = column_kind(field.type)
    if kind == "numeric":
        return _Numeric(field)
    if kind == "categorical":
        return _Strings(field, private=private)
    if kind == "boolean":
        return _Boolean(field)
    if kind == "datetime":
        return _Datetime(field)
    return _Column(field)


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


def _top(values: np.ndarray, counts: np.ndarray) -> list[dict[str, Any]]:
    """The TOP_K most frequent values, ties broken by value (``values`` sorted ascending)."""
    order = np.argsort(-counts, kind="stable")[:TOP_K]
    return [{"value": _json(values[i]), "count": int(counts[i])} for i in order]


def _hll_note(hll: HyperLogLog) -> dict[str, Any]:
    """A sketched distinct count's note: its bound (two standard errors, about 95 %) and
    whether a value was seen twice (see :meth:`HyperLogLog.add`)."""
    return {
        "method": "HyperLogLog",
        "relative_error": round(2.0 * HyperLogLog.RELATIVE_ERROR, 4),
        "repeats_seen": hll.repeats_seen,
    }


class _Column:
    """Any column: values counted; a type Arrow cannot aggregate ends here too."""

    def __init__(self, field: pa.Field) -> None:
        self.field = field
        self.count = 0
        self.failed = False  # Arrow could not aggregate this column: counted only

    def add(self, column: pa.Array | pa.ChunkedArray) -> None:
        self.count += len(column) - column.null_count
        if not self.failed:
            try:
                self._add(column)
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
                self.failed = True

    def _add(self, column: pa.Array | pa.ChunkedArray) -> None:
        pass

    def merge(self, other: _Column) -> None:
        """Count what ``other`` (the same column's, counted after this one) counted."""
        self.count += other.count
        if other.failed:
            self.failed = True
        if not self.failed:
            self._merge(other)

    def _merge(self, other: Any) -> None:
        pass

    def finish(self, rows: int) -> dict[str, Any]:
        if self.failed or type(self) is _Column:
            return {"type": str(self.field.type), "kind": "other"} | _counts(
                self.count, rows, distinct=None
            )
        return {"type": str(self.field.type), "kind": column_kind(self.field.type)} | self._finish(
            rows
        )

    def _finish(self, rows: int) -> dict[str, Any]:
        raise NotImplementedError


class _Distinct:
    """Distinct values with their counts (a numpy array), exactly while there are at most
    EXACT_DISTINCT, then a HyperLogLog. Values that only ever increase (ids in order) stay
    counted exactly: each is new."""

    def __init__(self) -> None:
        self.values: np.ndarray | None = None
        self.counts = np.zeros(0, dtype=np.int64)
        self.hll: HyperLogLog | None = None
        self.seen = 0
        self.increasing = True
        self.first: Any = None
        self.last: Any = None

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        if self.first is None:
            self.first = values[0]
        self.seen += values.size
        if self.increasing:
            self.increasing = bool(
                (self.last is None or values[0] > self.last) and np.all(values[1:] > values[:-1])
            )
            self.last = values[-1]
        if self.hll is not None:
            if self.increasing:  # each value new
                self.hll.add(hash_numbers(values))
            else:
                found, counts = np.unique(values, return_counts=True)
                self.hll.add(hash_numbers(found), counts)
            return
        if self.increasing:  # sorted, each value new
            found, counts = values, np.ones(values.size, dtype=np.int64)
        else:
            found, counts = np.unique(values, return_counts=True)
        if self.values is not None and self.values.size and self.increasing:
            found = np.concatenate([self.values, found])  # every value above those before
            counts = np.concatenate([self.counts, counts])
        elif self.values is not None and self.values.size:
            merged, inverse = np.unique(np.concatenate([self.values, found]), return_inverse=True)
            counts = np.bincount(
                inverse, weights=np.concatenate([self.counts, counts]), minlength=merged.size
            ).astype(np.int64)
            found = merged
        self.values, self.counts = found, counts
        if found.size > EXACT_DISTINCT:
            self.hll = HyperLogLog()
            self.hll.add(hash_numbers(found), counts)

    def merge(self, other: _Distinct) -> None:
        """What ``other`` counted after these values: exact values merged while they fit
        (the union switching to HyperLogLog past EXACT_DISTINCT, as :meth:`add` does),
        else the registers merged, an exact side's values hashed in."""
        if other.seen == 0:
            return
        if self.seen == 0:
            self.__dict__.update(other.__dict__)
            return
        self.increasing = self.increasing and other.increasing and bool(other.first > self.last)
        self.last = other.last
        self.seen += other.seen
        if self.hll is None and other.hll is None:
            assert self.values is not None and other.values is not None
            merged, inverse = np.unique(
                np.concatenate([self.values, other.values]), return_inverse=True
            )
            self.counts = np.bincount(
                inverse, weights=np.concatenate([self.counts, other.counts]), minlength=merged.size
            ).astype(np.int64)
            self.values = merged
            if merged.size > EXACT_DISTINCT:
                self.hll = HyperLogLog()
                self.hll.add(hash_numbers(merged), self.counts)
            return
        if self.hll is None:
            assert self.values is not None
            self.hll = HyperLogLog()
            self.hll.add(hash_numbers(self.values), self.counts)
        if other.hll is not None:
            self.hll.merge(other.hll)
        else:
            assert other.values is not None
            self.hll.add(hash_numbers(other.values), other.counts)

    @property
    def exact(self) -> bool:
        return self.hll is None or self.increasing

    def distinct(self) -> int:
        if self.hll is not None:
            return self.seen if self.increasing else min(round(self.hll.estimate()), self.seen)
        return 0 if self.values is None else int(self.values.size)


class _Numeric(_Column):
    """Numbers: exact count, extremes, mean and standard deviation (merged batch by batch);
    quantiles, distinct count and top values exact while the distinct values fit."""

    def __init__(self, field: pa.Field) -> None:
        super().__init__(field)
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0  # the sum of squared deviations from the mean
        self.low: Any = None
        self.high: Any = None
        self.distinct = _Distinct()
        self.kll: Any = None

    def _add(self, column: pa.Array | pa.ChunkedArray) -> None:
        values = _present_values(column)
        n = values.size
        if n == 0:
            return
        as_float = values.astype(np.float64, copy=False)
        mean = float(as_float.mean())
        m2 = float(np.square(as_float - mean).sum())
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total
        low, high = values.min(), values.max()
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)
        if self.kll is not None:
            # The sketch takes a writable array only (Arrow's are read-only views).
            self.kll.update(as_float if as_float.flags.writeable else as_float.copy())
            self.distinct.add(values)
            return
        self.distinct.add(values)
        if self.distinct.hll is not None:  # just switched: what was counted goes into the sketch
            self.kll = _kll_of(self.distinct.values, self.distinct.counts)
            self.distinct.values, self.distinct.counts = None, np.zeros(0, np.int64)

    def _merge(self, other: _Numeric) -> None:
        if other.n:
            total = self.n + other.n
            delta = other.mean - self.mean
            self.mean += delta * other.n / total
            self.m2 += other.m2 + delta * delta * self.n * other.n / total
            self.n = total
            self.low = other.low if self.low is None else min(self.low, other.low)
            self.high = other.high if self.high is None else max(self.high, other.high)
        if self.kll is None and other.kll is None:
            self.distinct.merge(other.distinct)
            if self.distinct.hll is not None:  # the union is past exact: into the sketch
                self.kll = _kll_of(self.distinct.values, self.distinct.counts)
                self.distinct.values, self.distinct.counts = None, np.zeros(0, np.int64)
            return
        if self.kll is None:
            self.kll = _kll_of(self.distinct.values, self.distinct.counts)
        if other.kll is not None:
            self.kll.merge(other.kll)
        elif other.distinct.values is not None:
            _feed_kll(self.kll, other.distinct.values, other.distinct.counts)
        self.distinct.merge(other.distinct)
        self.distinct.values, self.distinct.counts = None, np.zeros(0, np.int64)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled with its KLL sketch as DataSketches serialises it."""
        state = dict(self.__dict__)
        if self.kll is not None:
            state["kll"] = self.kll.serialize()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state["kll"] is not None:
            import datasketches

            state["kll"] = datasketches.kll_doubles_sketch.deserialize(state["kll"])
        self.__dict__.update(state)

    def _finish(self, rows: int) -> dict[str, Any]:
        n = self.n
        if n == 0:
            return _counts(0, rows, distinct=0) | {
                "min": None,
                "max": None,
                "mean": None,
                "std": None,
                "quantiles": {str(q): None for q in QUANTILES},
            }
        out = _counts(n, rows, distinct=self.distinct.distinct()) | {
            "min": _json(self.low),
            "max": _json(self.high),
            "mean": _json(self.mean),
            "std": _json(math.sqrt(self.m2 / (n - 1))) if n > 1 else None,
        }
        if self.kll is not None:
            quantiles = [float(v) for v in self.kll.get_quantiles(list(QUANTILES))]
            out["quantiles"] = {str(q): _json(v) for q, v in zip(QUANTILES, quantiles, strict=True)}
            out["sketched"] = {
                "quantiles": {
                    "method": "KLL",
                    "rank_error": round(
                        float(type(self.kll).get_normalized_rank_error(_KLL_K, False)), 5
                    ),
                }
            }
            if self.distinct.hll is not None and not self.distinct.exact:
                out["sketched"]["distinct"] = _hll_note(self.distinct.hll)
            return out
        values, counts = self.distinct.values, self.distinct.counts
        assert values is not None
        out["quantiles"] = _exact_quantiles(values, counts, n)
        if values.size <= _FEW_DISTINCT:
            out["top"] = _top(values, counts)
        return out


def _kll_of(values: np.ndarray | None, counts: np.ndarray) -> Any:
    """A KLL sketch of ``values`` counted ``counts`` times each (none: empty)."""
    import datasketches

    kll = datasketches.kll_doubles_sketch(_KLL_K)
    if values is not None:
        _feed_kll(kll, values, counts)
    return kll


def _feed_kll(kll: Any, values: np.ndarray, counts: np.ndarray) -> None:
    """Each value into the sketch as often as it was counted, a million at a time."""
    start = 0
    ends = np.cumsum(counts)
    while start < values.size:
        stop = int(np.searchsorted(ends, (ends[start - 1] if start else 0) + 1_000_000)) + 1
        stop = min(max(stop, start + 1), values.size)
        kll.update(np.repeat(values[start:stop].astype(np.float64), counts[start:stop]))
        start = stop


def _exact_quantiles(values: np.ndarray, counts: np.ndarray, n: int) -> dict[str, Any]:
    """QUANTILES of ``n`` values given sorted distinct ``values`` and their ``counts``, with
    linear interpolation between the two values around each position."""
    ends = np.cumsum(counts)  # ends[i]: how many values are <= values[i]
    positions = np.asarray(QUANTILES) * (n - 1)
    low = np.floor(positions).astype(np.int64)
    high = np.minimum(low + 1, n - 1)
    as_float = values.astype(np.float64, copy=False)
    low_value = as_float[np.searchsorted(ends, low, side="right")]
    high_value = as_float[np.searchsorted(ends, high, side="right")]
    quantiles = low_value + (high_value - low_value) * (positions - low)
    return {str(q): _json(float(v)) for q, v in zip(QUANTILES, quantiles, strict=True)}


def _present_values(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The column's non-missing values as numpy (floats' NaN dropped, -0.0 made 0.0)."""
    if pa.types.is_decimal(column.type):
        column = pc.cast(column, pa.float64())
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if column.null_count:
        column = pc.drop_null(column)
    values = numpy_values(column)
    if values.dtype.kind == "f":
        nan = np.isnan(values)
        if nan.any():
            values = values[~nan]
        values = values + values.dtype.type(0)  # -0.0 is 0.0: one value, shown one way
    return values


class _Strings(_Column):
    """Strings, kept in Arrow: each batch's values counted (a hash table in Arrow), merged into
    the column's distinct values while they fit; then each batch is counted by its rows'
    64-bit hashes into the sketches. A ``private`` column's (personal data) top values are
    counted but never read out: their values are None."""

    def __init__(self, field: pa.Field, *, private: bool = False) -> None:
        super().__init__(field)
        self.private = private
        self.values: pa.Array | None = None
        self.counts = np.zeros(0, dtype=np.int64)
        self.length_min: int | None = None
        self.length_max: int | None = None
        self.length_sum = 0
        self.frequent: FrequentValues | None = None
        self.hll: HyperLogLog | None = None

    def _add(self, column: pa.Array | pa.ChunkedArray) -> None:
        if pa.types.is_dictionary(column.type):
            column = pc.cast(column, column.type.value_type)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if column.null_count:
            column = pc.drop_null(column)
        if len(column) == 0:
            return
        if self.hll is not None:
            self._add_sketched(column)
            return
        encoded = pc.dictionary_encode(column)
        found = encoded.dictionary
        counts = np.bincount(numpy_values(encoded.indices), minlength=len(found))
        lengths = numpy_values(pc.utf8_length(found)).astype(np.int64)
        self._lengths(int(lengths.min()), int(lengths.max()), int((lengths * counts).sum()))
        if self.values is not None:
            merged = pc.dictionary_encode(pa.concat_arrays([self.values, found]))
            counts = np.bincount(
                numpy_values(merged.indices),
                weights=np.concatenate([self.counts, counts]),
                minlength=len(merged.dictionary),
            ).astype(np.int64)
            found = merged.dictionary
        self.values, self.counts = found, counts
        if len(found) > EXACT_DISTINCT:
            self._sketch_values()

    def _add_sketched(self, column: pa.Array) -> None:
        """A batch counted into the sketches, by each row's hash: sorting 64-bit hashes in
        numpy finds the batch's distinct values (and their counts) 3x as fast as Arrow's
        hash table on the strings, and the values themselves are taken only for the few
        frequent ones kept."""
        assert self.hll is not None and self.frequent is not None
        lengths = numpy_values(pc.utf8_length(column))
        self._lengths(int(lengths.min()), int(lengths.max()), int(lengths.sum(dtype=np.int64)))
        hashes = hash_values(column)
        ordered = np.sort(hashes)
        starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
        found = ordered[starts]
        counts = np.diff(np.append(starts, ordered.size))
        self.hll.add(found, counts)
        self.frequent.add_hashed(
            found, counts, lambda at: column.take(arrow_values(rows_of(hashes, found[at])))
        )

    def _merge(self, other: _Strings) -> None:
        if other.length_min is not None and other.length_max is not None:
            self._lengths(other.length_min, other.length_max, other.length_sum)
        if self.hll is None and other.hll is None:
            if other.values is None:
                return
            if self.values is None:
                self.values, self.counts = other.values, other.counts
                return
            merged = pc.dictionary_encode(pa.concat_arrays([self.values, other.values]))
            counts = np.bincount(
                numpy_values(merged.indices),
                weights=np.concatenate([self.counts, other.counts]),
                minlength=len(merged.dictionary),
            ).astype(np.int64)
            self.values, self.counts = merged.dictionary, counts
            if len(self.values) > EXACT_DISTINCT:  # as _add switches
                self._sketch_values()
            return
        if self.hll is None:
            self._sketch_values()
        assert self.hll is not None and self.frequent is not None
        if other.hll is not None and other.frequent is not None:
            self.hll.merge(other.hll)
            self.frequent.merge(other.frequent)
        elif other.values is not None:
            self.hll.add(hash_values(other.values), other.counts)
            self.frequent.add(other.values, other.counts)

    def _sketch_values(self) -> None:
        """The exact values counted into fresh sketches, which count from now on."""
        self.hll, self.frequent = HyperLogLog(), FrequentValues()
        if self.values is not None and len(self.values):
            self.hll.add(hash_values(self.values), self.counts)
            self.frequent.add(self.values, self.counts)
        self.values, self.counts = None, np.zeros(0, np.int64)

    def _lengths(self, low: int, high: int, total: int) -> None:
        self.length_min = low if self.length_min is None else min(self.length_min, low)
        self.length_max = high if self.length_max is None else max(self.length_max, high)
        self.length_sum += total

    def _finish(self, rows: int) -> dict[str, Any]:
        count = self.count
        if count == 0:
            return _counts(0, rows, distinct=0) | {
                "length": {"min": None, "max": None, "mean": None},
                "top": [],
            }
        mean_length = self.length_sum / count
        if self.hll is not None:
            assert self.frequent is not None and self.frequent.values is not None
            values, counts = self.frequent.values, self.frequent.counts
            distinct = min(round(self.hll.estimate()), count)
        else:
            assert self.values is not None
            values, counts = self.values, self.counts
            distinct = len(values)
        out = _counts(count, rows, distinct=distinct) | {
            "length": {"min": self.length_min, "max": self.length_max, "mean": mean_length},
            "top": _string_top(values, counts, private=self.private),
        }
        if self.hll is not None:
            assert self.frequent is not None
            out["sketched"] = {
                "distinct": _hll_note(self.hll),
                "top": {"method": "Misra-Gries", "count_error": self.frequent.error},
            }
        if distinct / count > 0.5 and mean_length >= 20:
            out["kind"] = "text"
        return out


def _string_top(values: pa.Array, counts: np.ndarray, *, private: bool) -> list[dict[str, Any]]:
    """The TOP_K most frequent strings, ties broken by value; only they become Python
    strings, and not even they when ``private`` (None instead). Among values tied at the
    last count, the smallest are found in Arrow."""
    if len(values) > TOP_K:
        floor = int(np.partition(counts, -TOP_K)[-TOP_K])
        above = np.flatnonzero(counts > floor)
        tied = np.flatnonzero(counts == floor)
        need = TOP_K - above.size
        if tied.size > need:
            smallest = pc.select_k_unstable(
                values.take(arrow_values(tied)), need, sort_keys=[("dummy", "ascending")]
            )
            tied = tied[numpy_values(smallest)]
        keep = np.concatenate([above, tied])
        values, counts = values.take(arrow_values(keep)), counts[keep]
    order = numpy_values(pc.sort_indices(values))  # UTF-8 bytes sort as code points do
    ranked = order[np.argsort(-counts[order], kind="stable")]
    strings = [None] * ranked.size if private else values.take(arrow_values(ranked)).to_pylist()
    return [
        {"value": value, "count": int(counts[i])} for value, i in zip(strings, ranked, strict=True)
    ]


class _Boolean(_Column):
    def __init__(self, field: pa.Field) -> None:
        super().__init__(field)
        self.trues = 0

    def _add(self, column: pa.Array | pa.ChunkedArray) -> None:
        self.trues += int(pc.sum(column).as_py() or 0)

    def _merge(self, other: _Boolean) -> None:
        self.trues += other.trues

    def _finish(self, rows: int) -> dict[str, Any]:
        count = self.count
        top = sorted(((self.trues, True), (count - self.trues, False)), key=lambda t: (-t[0], t[1]))
        return _counts(count, rows, distinct=sum(1 for n, _ in top if n)) | {
            "mean": self.trues / count if count else None,
            "top": [{"value": v, "count": n} for n, v in top if n],
        }


class _Datetime(_Column):
    def __init__(self, field: pa.Field) -> None:
        super().__init__(field)
        self.low: Any = None
        self.high: Any = None
        self.distinct = _Distinct()

    def _add(self, column: pa.Array | pa.ChunkedArray) -> None:
        if len(column) == column.null_count:
            return
        extremes = pc.min_max(column)
        low, high = extremes["min"].as_py(), extremes["max"].as_py()
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)
        present = pc.drop_null(column)
        width = (
            pa.int32()
            if pa.types.is_date32(column.type) or column.type.bit_width == 32
            else pa.int64()
        )
        self.distinct.add(numpy_values(present.cast(width)))

    def _merge(self, other: _Datetime) -> None:
        if other.low is not None:
            self.low = other.low if self.low is None else min(self.low, other.low)
            self.high = other.high if self.high is None else max(self.high, other.high)
        self.distinct.merge(other.distinct)

    def _finish(self, rows: int) -> dict[str, Any]:
        if self.count == 0:
            return _counts(0, rows, distinct=0) | {"min": None, "max": None}
        out = _counts(self.count, rows, distinct=self.distinct.distinct()) | {
            "min": str(self.low),
            "max": str(self.high),
        }
        if self.distinct.hll is not None and not self.distinct.exact:
            out["sketched"] = {"distinct": _hll_note(self.distinct.hll)}
        return out
