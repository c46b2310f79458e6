"""Columns that a plan or a caller names, checked against the data: an error names the
column, where it was looked for, the close names and the columns there are."""

from __future__ import annotations

import difflib

from mlplan.errors import DataError

__all__ = ["check_columns", "close_hint"]


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
