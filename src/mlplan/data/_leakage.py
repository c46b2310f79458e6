"""Leakage between splits: ids, groups or images found in two splits (failures), and feature
rows that repeat across splits, beside what the columns' values would repeat by chance (a
warning)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import duckdb

__all__ = ["Crossing", "LeakageReport", "check_leakage", "leakage_failures"]

_TRAIN, _TEST = 0, 2
# Shown in full up to this many; more are named by count.
_NAMED_COLUMNS = 8
# Shuffles averaged for the share of repeats that chance gives; one for large data, where a
# single shuffle's count varies little and each costs a pass over the rows.
_SHUFFLES, _LARGE = 3, 100_000


@dataclass(frozen=True)
class Crossing:
    """Values of a column (groups or ids) found in more than one split."""

    count: int
    examples: list[str] = field(default_factory=list)  # up to 5, in order


@dataclass(frozen=True)
class LeakageReport:
    """What :func:`check_leakage` found; ``groups``, ``ids`` and ``images`` are None when not
    checked.

    Only crossings fail: an id, group or image in two splits is the same entity seen in
    training and judged in test. Feature rows that repeat across splits are reported with the
    share that chance alone predicts, as a warning: data with few distinct values repeats.
    """

    compared_columns: list[str]
    duplicate_groups: int  # sets of identical rows spread over more than one split
    duplicate_rows: int  # the rows in those sets
    groups: Crossing | None = None
    ids: Crossing | None = None
    images: Crossing | None = None
    test_rows: int = 0
    test_duplicates: int = 0  # test rows identical to some training row
    expected_share: float | None = None  # of test rows, by chance (columns independent)

    @property
    def passed(self) -> bool:
        """No group, id or image in more than one split."""
        return not any(c.count for _, c in self._crossings())

    @property
    def test_share(self) -> float | None:
        """The share of test rows identical to some training row (None without test rows)."""
        return self.test_duplicates / self.test_rows if self.test_rows else None

    @property
    def warnings(self) -> list[str]:
        """Test rows that repeat a training row, beside the share chance predicts."""
        share = self.test_share
        if not self.test_duplicates or share is None or self.images is not None:
            return []
        columns = self.compared_columns
        named = ", ".join(columns[:_NAMED_COLUMNS]) + (
            f" and {len(columns) - _NAMED_COLUMNS} more" if len(columns) > _NAMED_COLUMNS else ""
        )
        expected = self.expected_share or 0.0
        text = (
            f"{self.test_duplicates:,} of {self.test_rows:,} test rows ({share:.1%}) equal a "
            f"training row on every compared column ({named}); by chance, from how often each "
            f"column's values occur, about {expected:.1%} would"
        )
        if share > max(2 * expected, expected + 0.01):
            return [
                f"{text}: far more, so likely copies of the same records; remove duplicates, "
                "or split with --group on the column that names the entity"
            ]
        return [f"{text}: what columns with few values give, not a leak by itself"]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (as a split records it)."""
        out: dict[str, Any] = {
            "compared_columns": self.compared_columns,
            "duplicate_groups_across_splits": self.duplicate_groups,
            "duplicate_rows_across_splits": self.duplicate_rows,
            "test_rows_matching_train": self.test_duplicates,
            "test_share_matching_train": self.test_share,
            "expected_share_by_chance": self.expected_share,
        }
        for label, crossing in self._crossings():
            out[f"{label}_across_splits"] = crossing.count
            out[f"{label}_examples"] = crossing.examples
        return out | {"passed": self.passed, "warnings": self.warnings}

    def _crossings(self) -> Iterator[tuple[str, Crossing]]:
        for label, crossing in (
            ("groups", self.groups),
            ("ids", self.ids),
            ("images", self.images),
        ):
            if crossing is not None:
                yield label, crossing


def leakage_failures(leakage: Mapping[str, Any]) -> list[str]:
    """What failed in a split's recorded leakage checks, one phrase each: groups, ids or
    images in more than one split. Identical feature rows are not among them (see
    :class:`LeakageReport`), also for splits recorded before they became a warning.

    Examples
    --------
    >>> leakage_failures({"ids_across_splits": 2, "ids_examples": ["7", "9"],
    ...     "duplicate_groups_across_splits": 4})
    ['2 ids in more than one split (e.g. 7, 9)']
    """
    found = []
    for label in ("groups", "ids", "images"):
        count = leakage.get(f"{label}_across_splits") or 0
        if count:
            examples = ", ".join(str(e) for e in (leakage.get(f"{label}_examples") or [])[:3])
            found.append(
                f"{count:,} {label} in more than one split"
                + (f" (e.g. {examples})" if examples else "")
            )
    return found


def check_leakage(
    table: pa.Table,
    codes: np.ndarray,
    *,
    group: str | None,
    id_column: str | None,
    ignore: list[str] | None = None,
) -> LeakageReport:
    """Leakage between splits: groups, ids or image bytes crossing splits, and identical rows.

    Rows are compared on every column except the id column and ``ignore``d ones (the caller
    sets aside the target, times, personal data and columns that only number the rows); image
    datasets compare the image bytes' hash, and the same image in two splits is a crossing.
    Counts, and up to 5 examples each.

    Examples
    --------
    >>> t = pa.table({"id": [1, 2, 2, 3], "x": [0, 1, 1, 0]})
    >>> report = check_leakage(t, np.array([0, 0, 2, 2]), group=None, id_column="id")
    >>> report.passed, report.ids
    (False, Crossing(count=1, examples=['2']))
    >>> report.test_duplicates, report.test_rows  # both test rows repeat a training row's x
    (2, 2)
    """
    ignore_set = set(ignore or [])
    if id_column is not None:
        ignore_set.add(id_column)
    images = "sha256" in table.column_names  # image dataset: the bytes decide
    compared = ["sha256"] if images else [c for c in table.column_names if c not in ignore_set]
    # SQL sees the columns by position: a name may be empty (a pandas or R export's row-number
    # column), which no quoting makes an identifier DuckDB accepts.
    sql = {name: f"c{i}" for i, name in enumerate(table.column_names)}
    renamed = table.rename_columns(list(sql.values()))
    frame = renamed.append_column("__split", pa.array(codes, pa.int8()))
    by_position = [sql[c] for c in compared]
    import duckdb  # on use: it is heavy to import, and a server never needs it

    con = duckdb.connect()
    try:
        con.register("t", frame)
        duplicates = _duplicates(con, by_position)
        return LeakageReport(
            compared,
            *duplicates[:2],
            groups=_crossing(con, sql[group]) if group is not None else None,
            ids=_crossing(con, sql[id_column]) if id_column is not None else None,
            images=_crossing(con, sql["sha256"]) if images else None,
            test_rows=int((codes == _TEST).sum()),
            test_duplicates=duplicates[2],
            expected_share=None if images else _expected_share(con, renamed, codes, by_position),
        )
    finally:
        con.close()


def _duplicates(
    con: duckdb.DuckDBPyConnection, compared: list[str], source: str = "t"
) -> tuple[int, int, int]:
    """Sets of identical rows over more than one split, their rows, and the test rows
    identical to some training row."""
    if not compared:
        return 0, 0, 0
    cols = ", ".join(compared)
    # More than one split: min < max, which costs a third of count(DISTINCT) per group.
    (found,) = con.execute(
        "SELECT count(*) FILTER (WHERE lo < hi), coalesce(sum(n) FILTER (WHERE lo < hi), 0), "
        "coalesce(sum(test) FILTER (WHERE train > 0), 0) FROM (SELECT count(*) AS n, "
        "min(__split) AS lo, max(__split) AS hi, "
        f"count(*) FILTER (WHERE __split = {_TRAIN}) AS train, "
        f"count(*) FILTER (WHERE __split = {_TEST}) AS test FROM {source} GROUP BY {cols})"
    ).fetchall()
    return int(found[0]), int(found[1]), int(found[2])


def _expected_share(
    con: duckdb.DuckDBPyConnection, table: pa.Table, codes: np.ndarray, compared: list[str]
) -> float | None:
    """The share of test rows that would equal some training row by chance: the same count
    once each column's values are shuffled on their own (seeded; averaged over a few shuffles
    unless the data is large), so that only how often each value occurs is left, not which
    rows repeat."""
    tests = int((codes == _TEST).sum())
    if not compared or not tests or not (codes == _TRAIN).any():
        return None
    rng = np.random.default_rng(0)
    found = []
    for _ in range(1 if table.num_rows >= _LARGE else _SHUFFLES):
        # One array per column first: a take from many chunks at random rows costs 3x more.
        shuffled = pa.table(
            {
                name: table.column(name)
                .combine_chunks()
                .take(pa.array(rng.permutation(table.num_rows)))
                for name in compared
            }
        ).append_column("__split", pa.array(codes, pa.int8()))
        con.register("shuffled", shuffled)
        found.append(_duplicates(con, compared, "shuffled")[2])
        con.unregister("shuffled")
    return float(np.mean(found)) / tests


def _crossing(con: duckdb.DuckDBPyConnection, column: str) -> Crossing:
    c = column  # a positional name (c0, c1, …): any column name would need quoting
    crossing = con.execute(
        f"SELECT {c} FROM t WHERE {c} IS NOT NULL GROUP BY {c} "
        f"HAVING min(__split) < max(__split) ORDER BY {c}"
    ).fetchall()
    return Crossing(len(crossing), [str(v[0]) for v in crossing[:5]])
