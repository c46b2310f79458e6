"""The plan's slices on a table: which rows fall in each slice value.

One definition serves every stage: labels (HLP per slice), evaluation, rollout and monitoring
all call :func:`slice_masks`.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.data._sql import sandboxed_duckdb
from mlplan.errors import DataError
from mlplan.plan import SliceSpec

__all__ = ["MISSING", "all_slice_masks", "slice_masks", "slice_rows"]

MISSING = "(missing)"


def _column_codes(table: pa.Table, name: str) -> tuple[np.ndarray, list[str]]:
    column = table.column(name).combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    encoded = pc.dictionary_encode(column)
    values = [str(v) for v in encoded.dictionary.to_pylist()] + [MISSING]
    codes = pc.fill_null(encoded.indices, len(values) - 1).to_numpy(zero_copy_only=False)
    return codes.astype(np.int64), values


def _format_edge(value: float) -> str:
    return f"{value:g}"


def slice_masks(table: pa.Table, spec: SliceSpec) -> dict[str, np.ndarray]:
    """Each value of the slice ``spec`` → a boolean mask over the table's rows.

    Values are named ``column=value`` (``&`` between columns for combinations), bins
    ``column in [low, high)``, and a ``where`` slice by its name. Every row of a ``columns`` or
    ``bins`` slice falls in exactly one value: missing values in ``column=(missing)``, and
    values before the first edge or from the last one in the open-ended bins
    ``column < low`` and ``column >= high`` (each only when it holds rows).

    Raises
    ------
    DataError
        A column the table lacks (naming the close ones), or a filter that does not run.

    Examples
    --------
    >>> t = pa.table({"g": ["f", "m", "f"], "age": [20, 50, 70]})
    >>> sorted(slice_masks(t, SliceSpec(name="g", columns=["g"])))
    ['g=f', 'g=m']
    >>> {k: v.tolist() for k, v in slice_masks(t, SliceSpec(name="a", column="age",
    ...                                        bins=[18, 65, 120])).items()}
    {'age in [18, 65)': [True, True, False], 'age in [65, 120)': [False, False, True]}
    >>> t = pa.table({"age": [12, 30, None, 70]})
    >>> spec = SliceSpec(name="a", column="age", bins=[18, 65])
    >>> {k: v.nonzero()[0].tolist() for k, v in slice_masks(t, spec).items()}
    {'age < 18': [0], 'age in [18, 65)': [1], 'age >= 65': [3], 'age=(missing)': [2]}
    """

    _check_columns(table, spec)
    if spec.columns:
        return _combination_masks(table, spec.columns)
    if spec.bins:
        assert spec.column is not None  # the plan validates bins with a column
        return _bin_masks(table, spec.column, spec.bins)
    return {spec.name: _where_mask(table, spec)}


def slice_rows(table: pa.Table, spec: SliceSpec) -> dict[str, np.ndarray]:
    """Each value of the slice ``spec`` → the indices of its rows, ascending: what
    :func:`slice_masks` says, without a mask per value over every row (a slice of a hundred
    values over ten million rows is 80 MB of indices, not 1 GB of masks).

    Raises
    ------
    DataError
        As :func:`slice_masks`.

    Examples
    --------
    >>> t = pa.table({"g": ["f", "m", "f"], "age": [20, 50, 70]})
    >>> {k: v.tolist() for k, v in slice_rows(t, SliceSpec(name="g", columns=["g"])).items()}
    {'g=f': [0, 2], 'g=m': [1]}
    """
    _check_columns(table, spec)
    if spec.columns:
        return _combination_rows(table, spec.columns)
    return {value: np.flatnonzero(mask) for value, mask in slice_masks(table, spec).items()}


def _check_columns(table: pa.Table, spec: SliceSpec) -> None:
    for column in spec.referenced_columns:
        if column not in table.column_names:
            close = difflib.get_close_matches(column, table.column_names, n=2, cutoff=0.5)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            raise DataError(
                f"slice {spec.name!r} uses column {column!r}, which is not in the data{hint}"
            )


def _combination_masks(table: pa.Table, columns: list[str]) -> dict[str, np.ndarray]:
    """A mask per value (or combination of values, ``a=x & b=y``) present in the rows."""
    combined, named = _combination_codes(table, columns)
    out = {named(int(code)): combined == code for code in np.unique(combined)}
    return dict(sorted(out.items()))


def _combination_rows(table: pa.Table, columns: list[str]) -> dict[str, np.ndarray]:
    """The rows (ascending) of each value or combination present, in one sort."""
    combined, named = _combination_codes(table, columns)
    order = np.argsort(combined, kind="stable")
    ordered = combined[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    ends = np.append(starts[1:], len(order))
    out = {named(int(ordered[a])): order[a:b] for a, b in zip(starts, ends, strict=True)}
    return dict(sorted(out.items()))


def _combination_codes(
    table: pa.Table, columns: list[str]
) -> tuple[np.ndarray, Callable[[int], str]]:
    """Each row's combination of the columns' values as one code, and a code's name."""
    combined = np.zeros(table.num_rows, dtype=np.int64)
    parts: list[list[str]] = []
    for column in columns:
        codes, values = _column_codes(table, column)
        combined = combined * len(values) + codes
        parts.append([f"{column}={v}" for v in values])

    def named(code: int) -> str:
        names = []
        for values in reversed(parts):
            names.append(values[code % len(values)])
            code //= len(values)
        return " & ".join(reversed(names))

    return combined, named


def _bin_masks(table: pa.Table, column: str, bins: list[float]) -> dict[str, np.ndarray]:
    """A mask per bin ``[low, high)`` of consecutive edges; rows outside the edges and rows
    without a value get their own groups, so that none is left out silently."""
    values = pc.cast(table.column(column), pa.float64()).to_numpy(zero_copy_only=False)
    missing = np.isnan(values)
    out = {}
    with np.errstate(invalid="ignore"):
        below = values < bins[0]
        if below.any():
            out[f"{column} < {_format_edge(bins[0])}"] = below
        for low, high in itertools.pairwise(bins):
            label = f"{column} in [{_format_edge(low)}, {_format_edge(high)})"
            out[label] = (values >= low) & (values < high)
        above = values >= bins[-1]
    if above.any():
        out[f"{column} >= {_format_edge(bins[-1])}"] = above
    if missing.any():
        out[f"{column}={MISSING}"] = missing
    return out


def _where_mask(table: pa.Table, spec: SliceSpec) -> np.ndarray:
    """The rows where the slice's SQL filter holds (NULL counts as false)."""
    con = sandboxed_duckdb()
    try:
        con.register("data", table)
        result = con.execute(
            f"SELECT coalesce(({spec.where}), false) AS hit FROM data"
        ).fetchnumpy()
    except Exception as exc:  # duckdb raises many error types; all mean "this filter fails"
        raise DataError(
            f"slice {spec.name!r}: where {spec.where!r} does not run on the data: "
            f"{str(exc).splitlines()[0]}"
        ) from None
    finally:
        con.close()
    return np.asarray(result["hit"], dtype=bool)


def all_slice_masks(
    table: pa.Table, specs: Iterable[SliceSpec], *, skip_missing_columns: bool = False
) -> dict[str, dict[str, np.ndarray]]:
    """:func:`slice_masks` for every slice: slice name → value → mask."""
    out = {}
    for spec in specs:
        if skip_missing_columns and any(
            c not in table.column_names for c in spec.referenced_columns
        ):
            continue
        out[spec.name] = slice_masks(table, spec)
    return out
