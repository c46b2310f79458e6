"""Differences between two dataset versions: schema changes and distribution shifts.

Shifts are measured by the population stability index (PSI) of each common column: numeric
columns in the first version's deciles, categorical ones per category, missing values as a bin
of their own (:func:`mlplan.core.psi`: each share floored at 1e-4). PSI above the plan's
``monitoring.drift_threshold`` (default 0.2) is flagged.

Everything comes from the versions' stored profiles, never from their rows: a diff costs the
same at ten rows and ten million, and needs neither the files nor the snapshots. Each PSI says
what it was computed from (``psi_from``): ``value counts`` where each profile lists every value
with its count (exact); ``quantiles`` for numbers with many values (the share of each version
below the first one's deciles, read linearly between its stored quantiles); ``top values`` for
categories with more values than a profile lists (each category either version lists; one it
does not list counted as an equal share of its unlisted values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlplan.core import psi
from mlplan.data._versions import DatasetVersionInfo, get_dataset
from mlplan.workspace import Workspace

__all__ = ["ColumnShift", "DatasetDiff", "diff_datasets"]

_DECILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


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
    psi_from: str | None = None


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
    """Compare two dataset versions (``name@N``; they may be of different datasets).

    Only the store is read: shifts come from the versions' stored profiles, so a diff of two
    exports of ten million rows takes as long as one of ten, and works when the files and
    snapshots are gone.
    """
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
    shifts = [_shift(n, va, vb, threshold) for n in common]
    return DatasetDiff(
        va.ref, vb.ref, (va.rows, vb.rows), added, removed, changed, shifts, threshold
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
    name: str, va: DatasetVersionInfo, vb: DatasetVersionInfo, threshold: float
) -> ColumnShift:
    pa_, pb = va.profile["columns"].get(name), vb.profile["columns"].get(name)
    if pa_ is None or pb is None:  # a profile without the column (images, very old versions)
        return ColumnShift(name, "other", None, (0.0, 0.0), note="not profiled: not compared")
    kind = pb["kind"]
    value: float | None = None
    new: list[str] = []
    gone: list[str] = []
    basis: str | None = None
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
    if pa_["kind"] == pb["kind"] == "numeric":
        value, basis = _numeric_psi(pa_, pb)
    elif pa_["kind"] == pb["kind"] and kind in {"categorical", "boolean"}:
        value, new, gone, basis = _categorical_psi(pa_, pb)
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
        psi_from=basis,
    )


def _missing(profile: dict[str, Any]) -> float:
    return float(profile.get("missing") or 0)


def _value_counts(profile: dict[str, Any]) -> dict[Any, int] | None:
    """Every present value's count, when the profile's top values are all of them."""
    top = profile.get("top")
    if top is None:
        return None
    counts = {entry["value"]: int(entry["count"]) for entry in top}
    return counts if sum(counts.values()) == profile.get("count") else None


def _shares_below(profile: dict[str, Any], edges: np.ndarray) -> np.ndarray | None:
    """The share of a version's present values below each edge: exact from its value counts
    when they are all listed, else from its quantiles, linearly between them (the profile's
    minimum and maximum close the ends)."""
    counts = _value_counts(profile)
    if counts:
        values = np.array(list(counts), dtype=np.float64)
        weights = np.array(list(counts.values()), dtype=np.float64)
        order = np.argsort(values)
        cumulative = np.concatenate(([0.0], np.cumsum(weights[order])))
        below: np.ndarray = cumulative[np.searchsorted(values[order], edges, side="left")]
        shares: np.ndarray = below / weights.sum()
        return shares
    knots = _quantile_knots(profile)
    if knots is None:
        return None
    probabilities, points = knots
    # The first knot at or above each edge; the share below it rises linearly from the knot
    # before (ties among knots are a point mass: values equal to the edge are not below it).
    upper = np.searchsorted(points, edges, side="left")
    shares = np.ones(edges.size)
    shares[upper == 0] = 0.0
    inside = (upper > 0) & (upper < points.size)
    hi = upper[inside]
    lo = hi - 1
    fraction = (edges[inside] - points[lo]) / (points[hi] - points[lo])
    shares[inside] = probabilities[lo] + (probabilities[hi] - probabilities[lo]) * fraction
    return shares


def _deciles(profile: dict[str, Any]) -> np.ndarray | None:
    """A version's deciles: from its value counts when they are all listed (as ``np.quantile``
    computes them), else linearly between its stored quantiles, minimum and maximum."""
    counts = _value_counts(profile)
    if counts:
        values = np.array(sorted(counts), dtype=np.float64)
        cumulative = np.cumsum([counts[v] for v in sorted(counts)])
        positions = np.asarray(_DECILES) * (cumulative[-1] - 1)
        low, high = np.floor(positions), np.ceil(positions)
        at_low = values[np.searchsorted(cumulative, low, side="right")]
        at_high = values[np.searchsorted(cumulative, high, side="right")]
        return np.asarray(at_low + (at_high - at_low) * (positions - low))
    knots = _quantile_knots(profile)
    if knots is None:
        return None
    return np.asarray(np.interp(_DECILES, *knots), dtype=np.float64)


def _quantile_knots(profile: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """The stored quantiles as (probabilities, values), closed by the minimum and maximum."""
    quantiles = profile.get("quantiles") or {}
    low, high = profile.get("min"), profile.get("max")
    knots = sorted((float(q), float(v)) for q, v in quantiles.items() if v is not None)
    if low is None or high is None or not knots:
        return None
    probabilities = np.array([0.0, *(q for q, _ in knots), 1.0])
    # Sketched quantiles may be out of order by their error: kept monotone.
    points = np.maximum.accumulate(np.array([float(low), *(v for _, v in knots), float(high)]))
    return probabilities, points


def _numeric_psi(pa_: dict[str, Any], pb: dict[str, Any]) -> tuple[float | None, str | None]:
    """PSI over the first version's deciles, missing values a bin of their own."""
    # No values in the first version: one bin, and the missing-value bin carries the change.
    edges = _deciles(pa_) if pa_.get("count") else np.empty(0)
    if edges is None:
        return None, None  # a profile without quantiles
    edges = np.unique(edges)
    bins = []
    for profile in (pa_, pb):
        count = float(profile.get("count") or 0)
        below = _shares_below(profile, edges) if count and edges.size else np.empty(0)
        if below is None:
            return None, None
        present = np.diff(np.concatenate(([0.0], below, [1.0]))) * count
        bins.append(np.append(present if count else np.zeros(edges.size + 1), _missing(profile)))
    exact = all(_value_counts(p) is not None or not p.get("count") for p in (pa_, pb))
    return psi(bins[0], bins[1]), "value counts" if exact else "quantiles"


def _categorical_psi(
    pa_: dict[str, Any], pb: dict[str, Any]
) -> tuple[float, list[str], list[str], str]:
    """PSI per category from the profiles' top values. A category that a version does not list
    although it lists only its most frequent values is counted as an equal share of that
    version's unlisted values (its distinct count says how many there are)."""
    listed_a = {str(t["value"]): float(t["count"]) for t in pa_.get("top") or []}
    listed_b = {str(t["value"]): float(t["count"]) for t in pb.get("top") or []}
    complete_a, complete_b = _value_counts(pa_) is not None, _value_counts(pb) is not None
    keys = sorted(set(listed_a) | set(listed_b))

    def bins(profile: dict[str, Any], listed: dict[str, float], complete: bool) -> np.ndarray:
        unlisted = max(float(profile.get("count") or 0) - sum(listed.values()), 0.0)
        others = max(int(profile.get("distinct") or 0) - len(listed), 1)
        share = 0.0 if complete else unlisted / others
        counts = [listed.get(k, share) for k in keys]
        rest = max(unlisted - share * sum(1 for k in keys if k not in listed), 0.0)
        return np.array([*counts, rest, _missing(profile)], float)

    value = psi(bins(pa_, listed_a, complete_a), bins(pb, listed_b, complete_b))
    new = sorted(k for k in listed_b if complete_a and k not in listed_a)
    gone = sorted(k for k in listed_a if complete_b and k not in listed_b)
    exact = complete_a and complete_b
    return value, new, gone, "value counts" if exact else "top values"
