"""Assigning rows to train, valid and test: seeded, stratified, grouped or by time.

Pure arrays in, codes out (0 train, 1 valid, 2 test); recording a split is
:func:`mlplan.data.split_dataset`'s job.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.errors import DataError, ParameterError

__all__ = ["assign_splits", "rare_classes"]


def assign_splits(
    table: pa.Table,
    *,
    test: float = 0.2,
    valid: float = 0.1,
    stratify: str | None = None,
    group: str | None = None,
    time: str | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Assign each row to 0 (train), 1 (valid) or 2 (test).

    Units (rows, or groups when ``group`` is given) are shuffled with ``seed`` within each
    stratum and cut at the cumulative row fractions; with ``time`` the oldest units train and
    the newest test. A group never spans two splits.

    Raises
    ------
    ParameterError
        A share outside [0, 1); shares that leave nothing to train on; ``stratify`` with
        ``time``.
    DataError
        A column that cannot split (missing groups or times, no classes to stratify by), or
        too few units for a share.

    Examples
    --------
    >>> import pyarrow as pa
    >>> t = pa.table({"y": [0, 1] * 50, "g": [i // 4 for i in range(100)]})
    >>> codes = assign_splits(t, test=0.2, valid=0.1, stratify="y", group="g", seed=7)
    >>> [int((codes == k).sum()) for k in range(3)]
    [68, 12, 20]
    """
    _check_shares(test, valid)
    if time is not None and stratify is not None:
        raise ParameterError(
            ("stratify", "time"),
            "{stratify} and {time} do not combine: a time split keeps the order "
            "of time, whatever the classes; drop one of them",
        )
    rng = np.random.default_rng(seed)
    _check_split_columns(table, stratify=stratify, group=group, time=time)
    unit_of_row, n_units = _units(table, group)
    stratum = _strata(table, stratify, unit_of_row, n_units, grouped=group is not None)
    # Order of units within each stratum: random, or by time.
    priority = (
        _first_times(table, time, unit_of_row, n_units) if time is not None else rng.random(n_units)
    )
    sizes = np.bincount(unit_of_row, minlength=n_units)
    unit_split = _cut(stratum, priority, sizes, test=test, valid=valid, by_time=time is not None)
    codes: np.ndarray = unit_split[unit_of_row]
    _check_every_split_has_rows(codes, test=test, valid=valid, units=n_units, grouped=bool(group))
    return codes


def _check_shares(test: float, valid: float) -> None:
    for name, value in (("test", test), ("valid", valid)):
        if not 0 <= value < 1:
            raise ParameterError(name, f"{{param}} must be in [0, 1). Got {value} instead.")
    if test + valid >= 1:
        raise ParameterError(
            ("test", "valid"),
            f"{{test}} + {{valid}} must leave rows to train on; got {test} + {valid}",
        )


def _check_split_columns(
    table: pa.Table, *, stratify: str | None, group: str | None, time: str | None
) -> None:
    for role, name in (("stratify", stratify), ("group", group), ("time", time)):
        if name is None:
            continue
        dtype = table.schema.field(name).type
        if pa.types.is_nested(dtype):
            raise DataError.about(
                role,
                f"{{param}} column {name!r} holds {dtype} values; it needs plain "
                "values (numbers, strings or dates)",
            )
    if stratify is not None:
        column = table.column(stratify)
        distinct = pc.count_distinct(column).as_py()
        if distinct > 20 and distinct > 0.5 * table.num_rows:
            raise DataError.about(
                "stratify",
                f"{{param}} column {stratify!r} has {distinct:,} distinct values in "
                f"{table.num_rows:,} rows: stratifying needs classes. Stratify by a class "
                "column, or bin this one into a new column first",
            )


def _units(table: pa.Table, group: str | None) -> tuple[np.ndarray, int]:
    """The unit of each row (every row, or every group of rows) and how many units there are."""
    if group is None:
        return np.arange(table.num_rows), table.num_rows
    keys = table.column(group)
    encoded = pc.dictionary_encode(
        keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    )
    unit_of_row = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    if (unit_of_row < 0).any():
        raise DataError(f"group column {group!r} has missing values; every row needs a group")
    return unit_of_row, len(encoded.dictionary)


def _strata(
    table: pa.Table, stratify: str | None, unit_of_row: np.ndarray, n_units: int, *, grouped: bool
) -> np.ndarray:
    """The stratum of each unit: the row's label, or a group's most frequent label."""
    if stratify is None:
        return np.zeros(n_units, dtype=np.int64)
    labels = pc.dictionary_encode(table.column(stratify).combine_chunks())
    label_codes = (
        pc.fill_null(labels.indices, len(labels.dictionary))
        .to_numpy(zero_copy_only=False)
        .astype(np.int64)
    )
    if not grouped:
        by_row: np.ndarray = label_codes
        return by_row
    width = len(labels.dictionary) + 1
    pair_counts = np.bincount(unit_of_row * width + label_codes, minlength=n_units * width).reshape(
        n_units, width
    )
    strata: np.ndarray = pair_counts.argmax(axis=1)
    return strata


def _first_times(table: pa.Table, time: str, unit_of_row: np.ndarray, n_units: int) -> np.ndarray:
    """Each unit's earliest time, as a rank (ties broken by row order)."""
    times = table.column(time).combine_chunks()
    if times.null_count:
        raise DataError(f"time column {time!r} has missing values; every row needs a time")
    order_key = pc.rank(times, sort_keys="ascending", tiebreaker="first").to_numpy()
    unit_time = np.full(n_units, np.iinfo(np.int64).max)
    np.minimum.at(unit_time, unit_of_row, order_key.astype(np.int64))
    return unit_time.astype(np.float64)


def _cut(
    stratum: np.ndarray,
    priority: np.ndarray,
    sizes: np.ndarray,
    *,
    test: float,
    valid: float,
    by_time: bool,
) -> np.ndarray:
    """Each unit's split: within each stratum, units in ``priority`` order are cut where the
    middle of their rows crosses the cumulative shares."""
    unit_split = np.zeros(len(stratum), dtype=np.int8)
    for s in np.unique(stratum):
        members = np.flatnonzero(stratum == s)
        members = members[np.argsort(priority[members], kind="stable")]
        member_sizes = sizes[members]
        total = member_sizes.sum()
        middle = (np.cumsum(member_sizes) - member_sizes / 2) / total
        if by_time:  # oldest train, then valid, newest test
            unit_split[members] = np.where(
                middle < 1 - test - valid, 0, np.where(middle < 1 - test, 1, 2)
            )
        else:
            unit_split[members] = np.where(middle < test, 2, np.where(middle < test + valid, 1, 0))
    return unit_split


def _check_every_split_has_rows(
    codes: np.ndarray, *, test: float, valid: float, units: int, grouped: bool
) -> None:
    for code, (name, share) in enumerate(
        (("train", 1 - test - valid), ("valid", valid), ("test", test))
    ):
        if share > 0 and not (codes == code).any():
            raise DataError(
                f"the {name} split is empty: {len(codes)} rows in {units} "
                f"{'groups' if grouped else 'rows'} are too few for a {share:.0%} {name} share; "
                "add data or change the shares"
            )


def rare_classes(table: pa.Table, column: str, *, minimum: int = 3) -> list[str]:
    """Warnings for classes of ``column`` with fewer than ``minimum`` rows: they cannot
    appear in every split."""
    counts = pc.value_counts(table.column(column)).to_pylist()
    return [
        f"class {str(c['values'])!r} of {column!r} has {c['counts']} row(s): too few to "
        "appear in train, valid and test"
        for c in counts
        if c["values"] is not None and c["counts"] < minimum
    ]
