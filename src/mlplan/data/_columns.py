"""Columns that a plan or a caller names, checked against the data: an error names the
column, where it was looked for, the close names and the columns there are; and the columns
that only identify rows (ids, row numbers), which are never features nor compared as data."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from mlplan.errors import DataError

__all__ = [
    "check_columns",
    "close_hint",
    "entity_columns",
    "entity_reason",
    "id_columns",
    "id_reason",
    "name_words",
    "unique_per_row",
]

_ID_NAMES = re.compile(r"^(id|uuid|guid|key|.*_id|.*_key|.*_uuid)$", re.IGNORECASE)
# What exports call the row number or row names: R's write.csv ("" or "rownames"), pandas'
# to_csv ("Unnamed: 0", "index", "level_0"), readr ("...1").
_ROW_NUMBER_NAMES = re.compile(
    r"^(|rownames|row\.names|row_?names?|unnamed: ?\d+|index|level_\d+|\.\.\.\d+|row|rownum|"
    r"row_?(num|number|no|nr|index|idx)|idx|obs)$",
    re.IGNORECASE,
)
# Below this many rows a unique, gap-free run of integers is too likely by chance (a count, a
# small grid) to call it a row number without the name saying so.
_SEQUENCE_MIN_ROWS = 20


def name_words(name: str) -> list[str]:
    """The lower-case words of a column name, split at case changes and punctuation.

    Examples
    --------
    >>> name_words("raceEthnicity"), name_words("loan_default"), name_words("SalePrice")
    (['race', 'ethnicity'], ['loan', 'default'], ['sale', 'price'])
    """
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def close_hint(name: str, options: list[str]) -> str:
    """`` (did you mean 'a' or 'b'?)`` for the names close to ``name``, else nothing.

    Examples
    --------
    >>> close_hint("churn", ["churned", "region"])
    " (did you mean 'churned'?)"
    """
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def check_columns(what: str, names: list[str] | None, columns: list[str], where: str) -> None:
    """Raise :class:`DataError` for the first of ``names`` that is not one of ``columns``."""
    for column in names or []:
        if column not in columns:
            raise DataError(
                f"{where}: {what} {column!r} is not a column of the data"
                f"{close_hint(column, columns)} "
                f"(columns: {', '.join(columns[:12])}{'…' if len(columns) > 12 else ''})"
            )


def id_reason(name: str, column: Mapping[str, Any], rows: int) -> str | None:
    """Why a column is an id or a row number rather than data, from its profile; else None.

    A column is one when its values are unique per row, none missing, and either its name
    says so (``customer_id``, ``uuid``; ``rownames``, ``Unnamed: 0``, ``index``) or it is a
    gap-free run of integers (what an R or pandas export adds as the row number).

    Examples
    --------
    >>> id_reason("Unnamed: 0", {"type": "int64", "distinct": 3, "missing": 0, "min": 0,
    ...     "max": 2}, 3)
    'row number (unique per row; the name an export gives it)'
    >>> id_reason("x", {"type": "int64", "distinct": 50, "missing": 0, "min": 1, "max": 50}, 50)
    'row number (1 to 50, unique and without gaps)'
    >>> id_reason("age", {"type": "int64", "distinct": 40, "missing": 0, "min": 18,
    ...     "max": 90}, 50) is None
    True
    """
    if rows < 2 or column.get("missing") or not unique_per_row(column, rows):
        return None
    if _ID_NAMES.match(name):
        return "unique per row"
    if _ROW_NUMBER_NAMES.match(name):
        return "row number (unique per row; the name an export gives it)"
    low, high = column.get("min"), column.get("max")
    if (
        rows >= _SEQUENCE_MIN_ROWS
        and str(column.get("type", "")).startswith(("int", "uint"))
        and isinstance(low, int)
        and isinstance(high, int)
        and high - low == rows - 1
    ):
        return f"row number ({low} to {high}, unique and without gaps)"
    return None


def unique_per_row(column: Mapping[str, Any], rows: int) -> bool:
    """Whether a profiled column has a different value on each of ``rows`` rows: its distinct
    count says so, exactly, or within the stated error of a sketched count (a column too
    large to count exactly, see :mod:`mlplan.data._profile`) with no value seen twice.

    Examples
    --------
    >>> unique_per_row({"distinct": 10}, 10), unique_per_row({"distinct": 9}, 10)
    (True, False)
    >>> sketch = {"relative_error": 0.01, "repeats_seen": False}
    >>> unique_per_row({"distinct": 1_995_000, "sketched": {"distinct": sketch}}, 2_000_000)
    True
    """
    distinct = column.get("distinct") or 0
    if distinct == rows:
        return True
    sketch = column.get("sketched", {}).get("distinct", {})
    bound = sketch.get("relative_error")
    if bound is None or sketch.get("repeats_seen", True):
        return False  # a value seen twice: an entity's id, not a row's
    return bool(abs(distinct - rows) <= bound * rows)


def entity_reason(name: str, column: Mapping[str, Any], rows: int) -> str | None:
    """Why a column that is no per-row id still only names things, from its name and profile;
    else None: an entity id (``customer_id`` repeated over a customer's rows), whose numbers
    are labels, not amounts; or a text with a value on (nearly) every row, which a model could
    only memorise.

    Examples
    --------
    >>> entity_reason("customer_id", {"kind": "numeric", "distinct": 400, "count": 1200}, 1200)
    "an entity's id by its name (400 values over 1,200 rows): numbers that name things, not amounts"
    >>> entity_reason("ticket", {"kind": "categorical", "distinct": 990, "count": 1000}, 1000)
    'a value on nearly every row (990 distinct in 1,000): nothing to learn that carries over'
    >>> entity_reason("plan", {"kind": "categorical", "distinct": 3, "count": 1000}, 1000) is None
    True
    """
    distinct, count = column.get("distinct") or 0, column.get("count") or 0
    if _ID_NAMES.match(name) and distinct > 1:
        return (
            f"an entity's id by its name ({distinct:,} values over {rows:,} rows): numbers that "
            "name things, not amounts"
        )
    if column.get("kind") == "categorical" and distinct > 50 and distinct >= 0.9 * count:
        return (
            f"a value on nearly every row ({distinct:,} distinct in {count:,}): nothing to "
            "learn that carries over"
        )
    return None


def entity_columns(profile: Mapping[str, Any]) -> list[str]:
    """The columns of a profile whose name says they are an id but that repeat over rows: an
    entity's id (``customer_id`` over a customer's rows)."""
    rows = int(profile.get("rows") or 0)
    return [
        name
        for name, column in profile.get("columns", {}).items()
        if _ID_NAMES.match(name)
        and 1 < (column.get("distinct") or 0) < rows
        and not unique_per_row(column, rows)
    ]


def id_columns(profile: Mapping[str, Any]) -> dict[str, str]:
    """The columns of a profile (as :func:`profile_table` makes it) that are ids or row
    numbers, each with what it is and why (:func:`id_reason`).

    Examples
    --------
    >>> from mlplan.data import profile_table
    >>> import pyarrow as pa
    >>> id_columns(profile_table(pa.table({"user_id": [7, 3, 9], "x": [1, 1, 2]})))
    {'user_id': 'an id (unique per row)'}
    """
    rows = int(profile.get("rows") or 0)
    found = {}
    for name, column in profile.get("columns", {}).items():
        why = id_reason(name, column, rows)
        if why is not None:
            found[name] = why if why.startswith("row number") else f"an id ({why})"
    return found
