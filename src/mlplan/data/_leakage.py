"""Leakage between splits: identical rows in two splits, and groups or ids that cross them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import duckdb

__all__ = ["Crossing", "LeakageReport", "check_leakage"]


@dataclass(frozen=True)
class Crossing:
    """Values of a column (groups or ids) found in more than one split."""

    count: int
    examples: list[str] = field(default_factory=list)  # up to 5, in order


@dataclass(frozen=True)
class LeakageReport:
    """What :func:`check_leakage` found; ``groups`` and ``ids`` are None when not checked."""

    compared_columns: list[str]
    duplicate_groups: int  # sets of identical rows spread over more than one split
    duplicate_rows: int  # the rows in those sets
    groups: Crossing | None = None
    ids: Crossing | None = None

    @property
    def passed(self) -> bool:
        """No identical rows, groups or ids across splits."""
        return self.duplicate_groups == 0 and not any(
            c.count for c in (self.groups, self.ids) if c is not None
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (as a split records it)."""
        out: dict[str, Any] = {
            "compared_columns": self.compared_columns,
            "duplicate_groups_across_splits": self.duplicate_groups,
            "duplicate_rows_across_splits": self.duplicate_rows,
        }
        for label, crossing in self._crossings():
            out[f"{label}_across_splits"] = crossing.count
            out[f"{label}_examples"] = crossing.examples
        return out | {"passed": self.passed}

    def _crossings(self) -> Iterator[tuple[str, Crossing]]:
        for label, crossing in (("groups", self.groups), ("ids", self.ids)):
            if crossing is not None:
                yield label, crossing


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_leakage(
    table: pa.Table,
    codes: np.ndarray,
    *,
    group: str | None,
    id_column: str | None,
    ignore: list[str] | None = None,
) -> LeakageReport:
    """Leakage between splits: identical rows in two splits, groups or ids crossing splits.

    Identical rows are compared on every column except the id column and ``ignore``d ones
    (image datasets compare the image bytes' hash). Counts, and up to 5 examples each.

    Examples
    --------
    >>> t = pa.table({"id": [1, 2, 2, 3], "x": [0, 1, 1, 0]})
    >>> report = check_leakage(t, np.array([0, 0, 2, 2]), group=None, id_column="id")
    >>> report.passed, report.ids
    (False, Crossing(count=1, examples=['2']))
    """
    ignore_set = set(ignore or [])
    if id_column:
        ignore_set.add(id_column)
    if "sha256" in table.column_names:  # image dataset: the bytes decide
        compared = ["sha256"]
    else:
        compared = [c for c in table.column_names if c not in ignore_set]
    frame = table.append_column("__split", pa.array(codes, pa.int8()))
    import duckdb  # on use: it is heavy to import, and a server never needs it

    con = duckdb.connect()
    try:
        con.register("t", frame)
        cols = ", ".join(_ident(c) for c in compared)
        duplicates = con.execute(
            f"SELECT count(*), coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM t "
            f"GROUP BY {cols} HAVING count(DISTINCT __split) > 1)"
        ).fetchone() or (0, 0)
        return LeakageReport(
            compared,
            int(duplicates[0]),
            int(duplicates[1]),
            _crossing(con, group) if group is not None else None,
            _crossing(con, id_column) if id_column is not None else None,
        )
    finally:
        con.close()


def _crossing(con: duckdb.DuckDBPyConnection, column: str) -> Crossing:
    c = _ident(column)
    crossing = con.execute(
        f"SELECT {c} FROM t WHERE {c} IS NOT NULL GROUP BY {c} "
        f"HAVING count(DISTINCT __split) > 1 ORDER BY {c}"
    ).fetchall()
    return Crossing(len(crossing), [str(v[0]) for v in crossing[:5]])
