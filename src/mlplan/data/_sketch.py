"""Sketches for profiling a stream once a column has too many distinct values to count them
exactly: HyperLogLog for the distinct count and Misra–Gries for the most frequent values, both
fed a batch at a time with numpy (quantiles use Apache DataSketches' KLL, see
:mod:`mlplan.data._profile`).

Each states its error: HyperLogLog's relative standard error is 1.04/√m with m registers
(m = 2**16: 0.41 %); Misra–Gries undercounts each value by at most what it has subtracted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from mlplan.data._arrays import arrow_values, numpy_values
from mlplan.data._sql import sandboxed_duckdb

__all__ = [
    "FrequentValues",
    "HyperLogLog",
    "hash_numbers",
    "hash_values",
    "prepare_hashing",
    "rows_of",
]

_local = threading.local()
_shared: Any = None  # the DuckDB database strings are hashed with, opened on first use
_opening = threading.Lock()


def _mix(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser: every input bit flips about half the output bits
    (uint64). Runs of integers (ids) come out spread well enough for HyperLogLog, which
    SplitMix64's finaliser did not quite do (up to 1 % off on 2M ids in a row)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(33))
        x = x * np.uint64(0xFF51AFD7ED558CCD)
        x = x ^ (x >> np.uint64(33))
        x = x * np.uint64(0xC4CEB9FE1A85EC53)
        mixed: np.ndarray = x ^ (x >> np.uint64(33))
        return mixed


def hash_values(values: pa.Array) -> np.ndarray:
    """64-bit hashes of an Arrow array's non-missing values (numbers, times, strings), equal
    values hashing equally, vectorised: numbers by their bits, strings by DuckDB's ``hash()``
    (numpy would need a pass per byte), so they never become Python objects.

    Examples
    --------
    >>> import pyarrow as pa
    >>> h = hash_values(pa.array(["ab", "ba", "ab", ""]))
    >>> bool(h[0] == h[2]), bool(h[0] != h[1]), h.dtype.name
    (True, True, 'uint64')
    """
    values = values.drop_null()
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return _mix(_duckdb_hash(values))
    return hash_numbers(numpy_values(values))


def hash_numbers(numbers: np.ndarray) -> np.ndarray:
    """64-bit hashes of numbers (as :func:`hash_values` hashes them in Arrow).

    Examples
    --------
    >>> import numpy as np
    >>> h = hash_numbers(np.array([1.0, -0.0, 0.0]))
    >>> bool(h[1] == h[2]), bool(h[0] != h[1])
    (True, True)
    """
    if numbers.dtype.kind == "f":
        bits = (numbers.astype(np.float64) + 0.0).view(np.uint64)  # -0.0 and 0.0: one value
    else:
        bits = numbers.astype(np.int64).view(np.uint64)
    return _mix(bits)


def prepare_hashing() -> None:
    """Load DuckDB and open the database :func:`hash_values` hashes strings with (once a
    process): for a caller that has the time now, while a file is hashed (DuckDB takes
    0.1 s to load and open)."""
    _database()


def _database() -> Any:
    global _shared
    with _opening:
        if _shared is None:
            _shared = sandboxed_duckdb()
        return _shared


def _duckdb_hash(values: pa.Array) -> np.ndarray:
    con = getattr(_local, "duckdb", None)
    if con is None:  # a cursor a thread: a connection is not shared between threads
        con = _local.duckdb = _database().cursor()
    try:
        con.register("hashed", pa.table({"v": values}))
        hashed = con.sql("SELECT hash(v) FROM hashed").to_arrow_table().column(0)
    finally:
        con.unregister("hashed")
    return numpy_values(hashed).astype(np.uint64, copy=False)


class HyperLogLog:
    """Distinct values counted in 64 KiB, fed 64-bit hashes (:func:`hash_values`).

    Examples
    --------
    >>> import numpy as np, pyarrow as pa
    >>> hll = HyperLogLog()
    >>> hll.add(hash_values(pa.array(np.arange(300_000) % 100_000)))
    >>> abs(hll.estimate() - 100_000) < 3 * HyperLogLog.RELATIVE_ERROR * 100_000
    True
    """

    PRECISION = 16
    # The relative standard error, 1.04/sqrt(m).
    RELATIVE_ERROR: float = 1.04 / (1 << PRECISION) ** 0.5
    # Distinct values sampled (the smallest hashes) to tell whether any value repeats.
    SAMPLE = 1 << 16

    def __init__(self) -> None:
        self.registers = np.zeros(1 << self.PRECISION, dtype=np.uint8)
        self.repeats_seen = False
        self._sample = np.zeros(0, dtype=np.uint64)

    def add(self, hashes: np.ndarray, counts: np.ndarray | None = None) -> None:
        """Count the values these hashes stand for (distinct within the call; ``counts``:
        how often each occurred, to tell whether any value repeats).

        Whether a value repeats is judged exactly within each call and, across calls, on a
        uniform sample of the distinct values (the SAMPLE smallest hashes, every occurrence
        of each compared): an id repeated on a few rows in a thousand of a large column is
        caught, which a count within the estimate's error could not tell.
        """
        if hashes.size == 0:
            return
        width = 64 - self.PRECISION
        index = (hashes >> np.uint64(width)).astype(np.int64)
        rest = hashes & np.uint64((1 << width) - 1)  # 48 bits: exact as float64
        _, exponent = np.frexp(rest.astype(np.float64))  # the bit length (0 for 0)
        rank = (width - exponent + 1).astype(np.uint8)
        np.maximum.at(self.registers, index, rank)
        if self.repeats_seen:
            return
        if counts is not None and bool((counts > 1).any()):
            self.repeats_seen = True
            return
        if self._sample.size >= self.SAMPLE:
            hashes = hashes[hashes <= self._sample[-1]]
        # Sorted, a repeat sits beside its twin (np.unique hashes 64-bit values: 15x slower).
        merged = np.sort(np.concatenate([self._sample, hashes]))
        if bool((merged[1:] == merged[:-1]).any()):
            self.repeats_seen = True  # the sample is not needed again
            return
        self._sample = merged[: self.SAMPLE]

    def merge(self, other: HyperLogLog) -> None:
        """Count what ``other`` counted too: each register the larger of the two, which is
        what one sketch fed both streams holds. Repeats are told, as by :meth:`add`, on the
        union of the two samples (the SAMPLE smallest hashes of the union are among them).

        Examples
        --------
        >>> import numpy as np
        >>> one, two, both = HyperLogLog(), HyperLogLog(), HyperLogLog()
        >>> one.add(hash_numbers(np.arange(0, 6000))); two.add(hash_numbers(np.arange(4000, 9000)))
        >>> both.add(hash_numbers(np.arange(0, 9000)))
        >>> one.merge(two)
        >>> one.estimate() == both.estimate(), one.repeats_seen
        (True, True)
        """
        np.maximum(self.registers, other.registers, out=self.registers)
        if self.repeats_seen or other.repeats_seen:
            self.repeats_seen = True
            return
        merged = np.sort(np.concatenate([self._sample, other._sample]))
        if bool((merged[1:] == merged[:-1]).any()):
            self.repeats_seen = True
            return
        self._sample = merged[: self.SAMPLE]

    def estimate(self) -> float:
        """The distinct count (with small-range correction: linear counting)."""
        m = self.registers.size
        alpha = 0.7213 / (1 + 1.079 / m)
        raw = alpha * m * m / float(np.sum(np.ldexp(1.0, -self.registers.astype(np.int64))))
        zeros = int(np.count_nonzero(self.registers == 0))
        if raw <= 2.5 * m and zeros:
            return m * float(np.log(m / zeros))
        return raw


class FrequentValues:
    """The most frequent values of a stream (Misra–Gries, batch by batch): at most
    ``capacity`` values are kept; each kept count is at most :attr:`error` below the truth,
    and every value more frequent than :attr:`error` is kept.

    Values are told apart by their 64-bit hashes (:func:`hash_values`), in numpy; only the
    values it keeps are held (in Arrow, by ascending hash).

    Examples
    --------
    >>> import pyarrow as pa
    >>> top = FrequentValues(capacity=2)
    >>> top.add(pa.array(["a", "b", "c"]), np.array([5, 1, 1]))
    >>> top.values.to_pylist(), top.counts.tolist(), top.error
    (['a'], [4], 1)
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self.values: pa.Array | None = None
        self.hashes = np.zeros(0, dtype=np.uint64)  # ascending, one a kept value
        self.counts = np.zeros(0, dtype=np.int64)
        self.error = 0

    def add(self, values: pa.Array, counts: np.ndarray) -> None:
        """Count distinct ``values`` seen ``counts`` times each."""
        hashes = hash_values(values)
        order = np.argsort(hashes)
        self.add_hashed(
            hashes[order], counts[order], lambda at: values.take(arrow_values(order[at]))
        )

    def add_hashed(
        self, hashes: np.ndarray, counts: np.ndarray, values_at: Callable[[np.ndarray], pa.Array]
    ) -> None:
        """Count the distinct values whose ``hashes`` (ascending) are given, seen ``counts``
        times each; ``values_at(positions)`` gives the values at those positions of
        ``hashes``, asked only for the few newly kept.

        A batch with more than ``capacity`` values is cut first, with the same result: the
        floor subtracted is at least its (capacity+1)-th largest count, so its values counted
        no more often than that and not kept already would be dropped anyway (a column of
        nearly unique values then merges hardly anything).
        """
        least = 0
        chosen = np.arange(hashes.size)
        if hashes.size > self.capacity:
            least = int(np.partition(counts, -(self.capacity + 1))[-(self.capacity + 1)])
            keep = counts > least
            if least > 0:
                keep |= _members(hashes, self.hashes)
            chosen = np.flatnonzero(keep)
            hashes, counts = hashes[chosen], counts[chosen]
        known = _members(hashes, self.hashes)
        merged = self.counts.copy()  # the batch's values are distinct: one place each
        merged[np.searchsorted(self.hashes, hashes[known])] += counts[known]
        new = np.flatnonzero(~known)
        added = values_at(chosen[new])
        values = added if self.values is None else _concat(self.values, added)
        hashes = np.concatenate([self.hashes, hashes[new]])
        counts = np.concatenate([merged, counts[new]])
        order = np.argsort(hashes)
        floor = least
        if hashes.size > self.capacity:
            floor = max(
                floor, int(np.partition(counts, -(self.capacity + 1))[-(self.capacity + 1)])
            )
        if floor:
            order = order[counts[order] > floor]
            self.error += floor
        self.values = values.take(arrow_values(order))
        self.hashes, self.counts = hashes[order], counts[order] - floor

    def merge(self, other: FrequentValues) -> None:
        """Count what ``other`` counted too (Misra–Gries summaries merge: the kept counts
        added, then cut as a batch is); the errors add up, so :attr:`error` still bounds
        every kept count and every value more frequent than it is kept.

        Examples
        --------
        >>> import pyarrow as pa
        >>> one, two = FrequentValues(capacity=2), FrequentValues(capacity=2)
        >>> one.add(pa.array(["a", "b"]), np.array([5, 1]))
        >>> two.add(pa.array(["a", "c"]), np.array([2, 2]))
        >>> one.merge(two)
        >>> one.values.to_pylist(), one.counts.tolist(), one.error
        (['a', 'c'], [6, 1], 1)
        """
        if other.values is None:
            return
        kept = other.values
        self.add_hashed(other.hashes, other.counts, lambda at: kept.take(arrow_values(at)))
        self.error += other.error


def _members(hashes: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Whether each of ``hashes`` (ascending, distinct) is one of ``kept`` (ascending): the
    few kept are looked up among the many, not the other way round."""
    found = np.zeros(hashes.size, dtype=bool)
    if hashes.size and kept.size:
        at = np.searchsorted(hashes, kept)
        inside = at < hashes.size
        at, kept = at[inside], kept[inside]
        found[at[hashes[at] == kept]] = True
    return found


_LOW_BITS = 16


def rows_of(hashes: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """A row of ``hashes`` (one a row) holding each of ``wanted`` (ascending, each found).

    Only rows whose low bits are some wanted hash's are searched: a table of 65,536 flags
    sorts out nearly all the others at the cost of one look-up a row.

    Examples
    --------
    >>> import numpy as np
    >>> rows_of(np.array([7, 3, 7, 5], np.uint64), np.array([5, 7], np.uint64)).tolist()
    [3, 2]
    """
    found = np.zeros(wanted.size, dtype=np.int64)
    if wanted.size == 0:
        return found
    mask = np.uint64((1 << _LOW_BITS) - 1)
    flags = np.zeros(1 << _LOW_BITS, dtype=bool)
    flags[(wanted & mask).astype(np.intp)] = True
    rows = np.flatnonzero(flags[(hashes & mask).astype(np.intp)])
    at = np.minimum(np.searchsorted(wanted, hashes[rows]), wanted.size - 1)
    hit = wanted[at] == hashes[rows]
    found[at[hit]] = rows[hit]
    return found


def _concat(kept: pa.Array, added: pa.Array) -> pa.Array:
    return pa.concat_arrays([kept, added.cast(kept.type)]) if len(added) else kept
