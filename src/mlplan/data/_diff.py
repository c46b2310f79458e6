"""Differences between two dataset versions: schema changes and distribution shifts.

Shifts are measured by the population stability index (PSI) of each common column: numeric
columns in the first version's deciles, categorical ones per category, missing values as a bin
of their own. PSI above the plan's ``monitoring.drift_threshold`` (default 0.2) is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.data._profile import column_kind
from mlplan.data._versions import DatasetVersionInfo, get_dataset, load_table
from mlplan.errors import DataError
from mlplan.workspace import Workspace

__all__ = ["ColumnShift", "DatasetDiff", "diff_datasets", "psi"]

_EPS = 1e-6


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins.

    Examples
    --------
    >>> round(psi(np.array([50, 50]), np.array([50, 50])), 6)
    0.0
    >>> round(psi(np.array([90, 10]), np.array([50, 50])), 3)
    0.879
    """
    p = expected / max(expected.sum(), 1)
    q = actual / max(actual.sum(), 1)
    p = np.clip(p, _EPS, None)
    q = np.clip(q, _EPS, None)
    return float(np.sum((q - p) * np.log(q / p)))


@dataclass(frozen=True)
class ColumnShift:
    """How one column moved between versions."""

    column: str
    kind: str
    psi: float | None
    missing_ratio: tuple[float, float]
    mean: tuple[float | None, float | None] | None = None
    distinct: tuple[int | None, int | None] = (None, None)
    new_categories: list[str] = field(default_factory=list)
    gone_categories: list[str] = field(default_factory=list)
    flagged: bool = False
    note: str | None = None


@dataclass(frozen=True)
class DatasetDiff:
    """The difference between versions ``a`` and ``b`` of datasets."""

    a: str
    b: str
    rows: tuple[int, int]
    added: list[dict[str, str]]
    removed: list[dict[str, str]]
    type_changes: list[dict[str, str]]
    shifts: list[ColumnShift]
    threshold: float
    from_data: bool

    @property
    def identical(self) -> bool:
        """Same schema, same row count, no shifted column."""
        return (
            not self.added
            and not self.removed
            and not self.type_changes
            and self.rows[0] == self.rows[1]
            and not any(s.flagged for s in self.shifts)
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "a": self.a,
            "b": self.b,
            "rows": list(self.rows),
            "added": self.added,
            "removed": self.removed,
            "type_changes": self.type_changes,
            "threshold": self.threshold,
            "from_data": self.from_data,
            "shifts": [
                s.__dict__
                | {
                    "missing_ratio": list(s.missing_ratio),
                    "mean": list(s.mean) if s.mean else None,
                    "distinct": list(s.distinct),
                }
                for s in self.shifts
            ],
        }


def diff_datasets(ws: Workspace, a: str, b: str) -> DatasetDiff:
    """Compare two dataset versions (``name@N``; they may be of different datasets)."""
    va, vb = get_dataset(ws, a), get_dataset(ws, b)
    threshold = ws.plan.monitoring.drift_threshold
    types_a = {c["name"]: c["type"] for c in va.columns}
    types_b = {c["name"]: c["type"] for c in vb.columns}
    added = [{"column": n, "type": t} for n, t in types_b.items() if n not in types_a]
    removed = [{"column": n, "type": t} for n, t in types_a.items() if n not in types_b]
    changed = [
        {"column": n, "from": types_a[n], "to": t}
        for n, t in types_b.items()
        if n in types_a and _base_type(types_a[n]) != _base_type(t)
    ]
    common = [n for n in types_a if n in types_b]
    try:
        ta, tb = load_table(ws, va), load_table(ws, vb)
        from_data = True
    except DataError:
        ta = tb = None
        from_data = False
    shifts = [_shift(n, va, vb, ta, tb, threshold) for n in common]
    return DatasetDiff(
        va.ref, vb.ref, (va.rows, vb.rows), added, removed, changed, shifts, threshold, from_data
    )


def _identifier_like(name: str, profile: dict[str, Any], info: DatasetVersionInfo) -> bool:
    """Ids and free text: columns whose values are (nearly) unique per row."""
    if name == info.metadata.get("id_column") or profile["kind"] == "text":
        return True
    count, distinct = profile["count"], profile.get("distinct") or 0
    if count <= 50:
        return False
    if profile["kind"] == "categorical":
        return bool(distinct > 0.5 * count)
    return bool(profile["type"].startswith(("int", "uint")) and distinct == count)


def _base_type(type_name: str) -> str:
    # dictionary<values=string, ...> and string are the same column to a user
    return "string" if "string" in type_name else type_name


def _shift(
    name: str,
    va: DatasetVersionInfo,
    vb: DatasetVersionInfo,
    ta: pa.Table | None,
    tb: pa.Table | None,
    threshold: float,
) -> ColumnShift:
    pa_, pb = va.profile["columns"][name], vb.profile["columns"][name]
    kind = pb["kind"]
    value: float | None = None
    new: list[str] = []
    gone: list[str] = []
    private = pa_.get("redacted") or pb.get("redacted")
    if _identifier_like(name, pa_, va) or _identifier_like(name, pb, vb) or private:
        # Ids, free text and personal data: a distribution over unique values says nothing,
        # and listing their values would leak them.
        note = "personal data: values not compared" if private else "unique per row: not compared"
        return ColumnShift(
            name,
            kind,
            None,
            (pa_["missing_ratio"], pb["missing_ratio"]),
            None,
            (pa_.get("distinct"), pb.get("distinct")),
            note=note,
        )
    if ta is not None and tb is not None:
        a_col, b_col = ta.column(name), tb.column(name)
        if column_kind(a_col.type) == "numeric" and column_kind(b_col.type) == "numeric":
            value = _numeric_psi(a_col, b_col)
        elif kind in {"categorical", "boolean", "text"} and column_kind(a_col.type) == column_kind(
            b_col.type
        ):
            value, new, gone = _categorical_psi(a_col, b_col)
    mean = (pa_.get("mean"), pb.get("mean")) if kind in {"numeric", "boolean"} else None
    flagged = value is not None and value > threshold
    return ColumnShift(
        name,
        kind,
        value,
        (pa_["missing_ratio"], pb["missing_ratio"]),
        mean,
        (pa_.get("distinct"), pb.get("distinct")),
        new[:10],
        gone[:10],
        flagged,
    )


def _float_values(column: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    array = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    missing = np.isnan(array)
    return array[~missing], int(missing.sum())


def _numeric_psi(a: pa.ChunkedArray, b: pa.ChunkedArray) -> float:
    va, missing_a = _float_values(a)
    vb, missing_b = _float_values(b)
    # No values in the first version: one bin, and the missing-value bin carries the change.
    edges = np.unique(np.quantile(va, np.linspace(0.1, 0.9, 9))) if va.size else np.empty(0)
    counts_a = np.bincount(np.searchsorted(edges, va, side="right"), minlength=edges.size + 1)
    counts_b = np.bincount(np.searchsorted(edges, vb, side="right"), minlength=edges.size + 1)
    return psi(
        np.append(counts_a, missing_a).astype(float), np.append(counts_b, missing_b).astype(float)
    )


def _categorical_psi(a: pa.ChunkedArray, b: pa.ChunkedArray) -> tuple[float, list[str], list[str]]:
    def counts(column: pa.ChunkedArray) -> dict[str, int]:
        result = {
            str(v["values"]): int(v["counts"])
            for v in pc.value_counts(column).to_pylist()
            if v["values"] is not None
        }
        result["\0missing"] = column.null_count
        return result

    ca, cb = counts(a), counts(b)
    keys = sorted(set(ca) | set(cb))
    value = psi(
        np.array([ca.get(k, 0) for k in keys], float), np.array([cb.get(k, 0) for k in keys], float)
    )
    new = sorted(k for k in cb if k not in ca and not k.startswith("\0"))
    gone = sorted(k for k in ca if k not in cb and not k.startswith("\0"))
    return value, new, gone
