"""Metrics overall and per group of a slice, with bootstrap intervals: the slice report.

Point estimates come from one aggregation over every group (``_metrics.py``), intervals from
each group's own resamples (``_resample.py``), in the manner of fairlearn's MetricFrame.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.data import sandboxed_duckdb
from mlplan.errors import DataError, UsageError
from mlplan.modeling._metrics import (
    NEEDS_PROBA,
    MetricEstimate,
    Predictions,
    _from_confusion,
    aggregate,
    interval,
    metrics_for,
)
from mlplan.modeling._resample import bootstrap, ordered_for_resampling

__all__ = ["SliceReport", "slice_metrics"]


@dataclass(frozen=True)
class SliceReport:
    """Metrics overall and per group of one slice, in the manner of fairlearn's MetricFrame.

    ``overall`` and each entry of ``by_group`` map a metric name to its estimate (with an
    interval when bootstrapped); ``count`` is always present.
    """

    name: str
    metrics: tuple[str, ...]
    overall: dict[str, MetricEstimate]
    by_group: dict[str, dict[str, MetricEstimate]]
    n_boot: int = 0
    level: float = 0.95
    notes: dict[str, str] = field(default_factory=dict)
    draws: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    """Bootstrap draws per group and metric (not part of the JSON view)."""
    overall_draws: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """The bootstrap draws of every row together, per metric; for classification also
    ``_confusion`` (draws, K, K): the confusion matrix of each resample, from which per-class
    figures get the same draws, hence the same intervals, as the overall ones."""
    ordered: np.ndarray | None = field(default=None, repr=False)
    """Every row in the order the bootstrap takes them (the rows ranked once): a group's
    rows are these filtered, in the same order as sorting the group itself."""

    def value(self, group: str, metric: str) -> float:
        """The point value of ``metric`` for ``group``."""
        return self.by_group[group][metric].value

    def difference(self, metric: str, *, min_count: int = 1) -> float:
        """Largest minus smallest value of ``metric`` over groups with at least
        ``min_count`` rows (NaN when fewer than two such groups)."""
        values = [
            g[metric].value
            for g in self.by_group.values()
            if g["count"].value >= min_count and np.isfinite(g[metric].value)
        ]
        return float(max(values) - min(values)) if len(values) >= 2 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "name": self.name,
            "metrics": list(self.metrics),
            "bootstrap": self.n_boot,
            "level": self.level,
            "overall": {k: v.to_dict() for k, v in self.overall.items()},
            "groups": [
                {
                    "value": group,
                    "metrics": {k: v.to_dict() for k, v in values.items()},
                    **({"note": self.notes[group]} if group in self.notes else {}),
                }
                for group, values in self.by_group.items()
            ],
        }


def _estimates(
    point: Mapping[str, np.ndarray],
    index: int,
    draws: Mapping[str, np.ndarray],
    names: Sequence[str],
    level: float,
) -> dict[str, MetricEstimate]:
    out = {}
    for name in names:
        low, high = interval(draws.get(name), level) if name != "count" else (None, None)
        out[name] = MetricEstimate(float(point[name][index]), low, high)
    return out


def _check_metrics(data: Predictions, metrics: Sequence[str] | None) -> tuple[str, ...]:
    known = metrics_for(data.kind, with_proba=data.proba is not None)
    if metrics is None:
        return known
    every = metrics_for(data.kind)
    bad = [m for m in metrics if m not in every]
    if bad:
        raise UsageError(
            f"metric {bad[0]!r} does not apply to a {data.kind} task; metrics: {', '.join(every)}"
        )
    lacking = [m for m in metrics if m in NEEDS_PROBA and data.proba is None]
    if lacking:
        raise UsageError(f"metric {lacking[0]!r} needs class probabilities; none were given")
    names = list(dict.fromkeys(["count", *metrics]))
    return tuple(names)


def _group_codes(sensitive_features: Any, n: int) -> tuple[np.ndarray, list[str]]:
    """Group code per row and group names ``col=value & ...`` from feature arrays."""

    per_column: list[np.ndarray] = []
    parts: list[list[str]] = []
    for column, array in _feature_columns(sensitive_features, n).items():
        encoded = pc.dictionary_encode(array)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        names = [str(v) for v in encoded.dictionary.to_pylist()] + ["(missing)"]
        codes = pc.fill_null(encoded.indices, len(names) - 1).to_numpy(zero_copy_only=False)
        per_column.append(codes.astype(np.int64))
        parts.append([f"{column}={v}" for v in names])
    size_f = float(np.prod([len(names) for names in parts], dtype=np.float64)) if parts else 1.0
    if size_f > 2**62:
        # Too many combinations for one integer code: group the code columns themselves.
        uniques_2d, inverse = np.unique(np.stack(per_column), axis=1, return_inverse=True)
        labels = [
            " & ".join(parts[c][int(uniques_2d[c, j])] for c in range(len(parts)))
            for j in range(uniques_2d.shape[1])
        ]
        return inverse.ravel().astype(np.int64), labels
    combined = np.zeros(n, dtype=np.int64)
    for codes, names in zip(per_column, parts, strict=True):
        combined = combined * len(names) + codes
    size = int(size_f)
    if size <= 4 * max(n, 1):
        # Codes are dense enough to renumber by counting: no sort of the rows.
        uniques = np.flatnonzero(np.bincount(combined, minlength=size))
        renumber = np.zeros(size, dtype=np.int64)
        renumber[uniques] = np.arange(len(uniques))
        inverse = renumber[combined]
    else:
        uniques, inverse = np.unique(combined, return_inverse=True)
    labels = []
    for code in uniques:
        rest = int(code)
        pieces = []
        for names in reversed(parts):
            pieces.append(names[rest % len(names)])
            rest //= len(names)
        labels.append(" & ".join(reversed(pieces)))
    return inverse.astype(np.int64), labels


def slice_metrics(
    data: Predictions,
    *,
    groups: Mapping[str, np.ndarray] | None = None,
    sensitive_features: Any = None,
    metrics: Sequence[str] | None = None,
    name: str = "overall",
    n_boot: int = 0,
    seed: int = 0,
    level: float = 0.95,
    min_support: int = 1,
    overall: SliceReport | None = None,
) -> SliceReport:
    """Metrics overall and for every group, with percentile bootstrap intervals.

    Parameters
    ----------
    data
        The predictions (see :meth:`Predictions.from_arrays`).
    groups
        Group name → boolean mask over the rows (a plan slice, from
        :func:`mlplan.data.slice_masks`); groups may overlap.
    sensitive_features
        Instead of ``groups``: one array, or name → array, as fairlearn's MetricFrame takes;
        each combination of values is a group.
    metrics
        Which metrics; unset: every metric of the task that the inputs allow.
    n_boot
        Bootstrap resamples per group (0: point estimates only). Each group draws from its
        own seeded stream, so intervals are reproducible and independent of other groups.
    min_support
        Groups with fewer rows get no interval and a note saying so.
    overall
        A report of the same ``data`` and ``seed`` (say, the one over every row) whose
        overall figures and draws this one takes instead of measuring them again: the
        bootstrap of every row is the dearest part of a report, and each slice of an
        evaluation would repeat it. Its metrics, resamples and level must be these.

    Raises
    ------
    UsageError
        A metric that does not apply to the task, both ``groups`` and
        ``sensitive_features``, or an ``overall`` report made otherwise.

    Examples
    --------
    >>> data = Predictions.from_arrays([1, 0, 1, 1], [1, 0, 0, 1], kind="binary")
    >>> report = slice_metrics(data, sensitive_features={"g": ["a", "a", "b", "b"]},
    ...                        metrics=["accuracy"])
    >>> {g: v["accuracy"].value for g, v in report.by_group.items()}
    {'g=a': 1.0, 'g=b': 0.5}
    """
    if groups is not None and sensitive_features is not None:
        raise UsageError("give either groups (masks) or sensitive_features, not both")
    counting = (
        sensitive_features is not None
        and data._kind != "regression"
        and not n_boot
        and metrics is not None
        and not set(metrics) & NEEDS_PROBA
        and data.n > 0
    )
    found = _confusion_by_features(data, sensitive_features) if counting else None
    options = _Options(name, _check_metrics(data, metrics), n_boot, seed, level, min_support)
    if found is not None:
        return _counted(data, *found, options)
    names = options.names
    if overall is not None:
        _check_overall(overall, options, data.n)
        estimates, drawn, everything = overall.overall, overall.overall_draws, overall.ordered
    else:
        everything = options.ordered(data, np.arange(data.n))
        overall_point = aggregate(data, everything, np.zeros(data.n, np.int64), 1, names)
        drawn = options.draws(data, everything, "*", with_confusion=data._kind != "regression")
        estimates = _estimates(overall_point, 0, drawn, names, level)
    if sensitive_features is not None:
        by_group, notes, kept = _by_features(data, sensitive_features, options)
        by_group = dict(sorted(by_group.items()))
    else:
        by_group, notes, kept = _by_masks(data, groups or {}, options, everything)
    return SliceReport(
        name, names, estimates, by_group, n_boot, level, notes, kept, drawn, everything
    )


def _check_overall(report: SliceReport, options: _Options, n: int) -> None:
    """Refuse an ``overall`` report that this one would not have made."""
    made = (tuple(report.metrics), report.n_boot, report.level, report.overall["count"].value)
    wanted = (options.names, options.n_boot, options.level, float(n))
    if made != wanted:
        raise UsageError.about(
            "overall",
            f"{{param}} was made with metrics {list(made[0])}, {made[1]} resamples, level "
            f"{made[2]} over {made[3]:g} rows; this report has {list(wanted[0])}, "
            f"{wanted[1]}, {wanted[2]} and {wanted[3]:g}: give the report made from the "
            "same predictions and options, or none",
        )


@dataclass(frozen=True)
class _Options:
    """How one slice report is computed: its name (the bootstrap streams' key), the metrics,
    the resamples, the interval's level and the support below which a group has none."""

    name: str
    names: tuple[str, ...]
    n_boot: int
    seed: int
    level: float
    min_support: int

    def ordered(self, data: Predictions, rows: np.ndarray) -> np.ndarray:
        """``rows`` in the order the bootstrap takes them (as given without resamples):
        sorted once for the point values and the draws."""
        return ordered_for_resampling(data, rows, self.names) if self.n_boot else rows

    def draws(
        self, data: Predictions, rows: np.ndarray, label: str, *, with_confusion: bool = False
    ) -> dict[str, np.ndarray]:
        """The bootstrap draws of the group ``label`` (its own seeded stream), its ``rows``
        as :meth:`ordered` gives them; with ``with_confusion`` each draw's confusion matrix
        too, as ``_confusion``."""
        key = f"{self.name}:{label}"
        return bootstrap(
            data,
            rows,
            self.names,
            n_boot=self.n_boot,
            seed=self.seed,
            key=key,
            with_confusion=with_confusion,
        )


_Groups = tuple[
    dict[str, dict[str, MetricEstimate]], dict[str, str], dict[str, dict[str, np.ndarray]]
]


def _counted(
    data: Predictions, matrices: np.ndarray, labels: list[str], options: _Options
) -> SliceReport:
    """Counting metrics only: one GROUP BY in DuckDB (parallel hashing, no factorising);
    the overall confusion is the sum of the groups'."""
    names, level = options.names, options.level
    total = matrices.sum(axis=0, keepdims=True)
    overall = _estimates(
        {m: _from_confusion(total, m, data.positive) for m in names}, 0, {}, names, level
    )
    point = {m: _from_confusion(matrices, m, data.positive) for m in names}
    by_group: dict[str, dict[str, MetricEstimate]] = {}
    notes: dict[str, str] = {}
    for i, label in enumerate(labels):
        by_group[label] = _estimates(point, i, {}, names, level)
        if point["count"][i] < options.min_support:
            notes[label] = _too_few(int(point["count"][i]), options.min_support)
    return SliceReport(options.name, names, overall, by_group, options.n_boot, level, notes)


def _by_features(data: Predictions, sensitive_features: Any, options: _Options) -> _Groups:
    """Each combination of feature values is a group: one aggregation for all of them, and
    the bootstrap of each group with rows enough."""
    by_group: dict[str, dict[str, MetricEstimate]] = {}
    notes: dict[str, str] = {}
    kept: dict[str, dict[str, np.ndarray]] = {}
    codes, labels = _group_codes(sensitive_features, data.n)
    point = aggregate(data, np.arange(data.n), codes, len(labels), options.names)
    members: dict[str, np.ndarray] = {}
    if options.n_boot:
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(labels) + 1))
        members = {
            label: options.ordered(data, order[bounds[i] : bounds[i + 1]])
            for i, label in enumerate(labels)
        }
    for i, label in enumerate(labels):
        rows = members.get(label)
        enough = point["count"][i] >= options.min_support
        draws = options.draws(data, rows, label) if rows is not None and enough else {}
        by_group[label] = _estimates(point, i, draws, options.names, options.level)
        kept[label] = draws
        if not enough:
            notes[label] = _too_few(int(point["count"][i]), options.min_support)
    return by_group, notes, kept


def _by_masks(
    data: Predictions,
    groups: Mapping[str, np.ndarray],
    options: _Options,
    everything: np.ndarray | None,
) -> _Groups:
    """Each mask is a group (groups may overlap); ``everything``: every row in the
    bootstrap's order, when known, which each group's rows are read from (the order is
    a stable sort by a per-row key, so filtering it sorts the group without a sort)."""
    by_group: dict[str, dict[str, MetricEstimate]] = {}
    notes: dict[str, str] = {}
    kept: dict[str, dict[str, np.ndarray]] = {}
    for label, mask in groups.items():
        if everything is not None and options.n_boot:
            rows = everything[np.asarray(mask, dtype=bool)[everything]]
        else:
            rows = options.ordered(data, np.flatnonzero(mask))
        point = aggregate(data, rows, np.zeros(len(rows), np.int64), 1, options.names)
        enough = len(rows) >= options.min_support
        draws = options.draws(data, rows, label) if enough else {}
        by_group[label] = _estimates(point, 0, draws, options.names, options.level)
        kept[label] = draws
        if not enough:
            notes[label] = _too_few(len(rows), options.min_support)
    return by_group, notes, kept


def _feature_columns(sensitive_features: Any, n: int) -> dict[str, Any]:

    if hasattr(sensitive_features, "columns") and hasattr(sensitive_features, "__getitem__"):
        columns = {str(c): np.asarray(sensitive_features[c]) for c in sensitive_features.columns}
    elif isinstance(sensitive_features, Mapping):
        columns = {str(k): v for k, v in sensitive_features.items()}
    else:
        columns = {"group": sensitive_features}
    out = {}
    for column, values in columns.items():
        array = (
            values
            if isinstance(values, pa.Array | pa.ChunkedArray)
            else pa.array(np.asarray(values))
        )
        if len(array) != n:
            raise DataError(
                f"sensitive feature {column!r} has {len(array):,} values for {n:,} predictions"
            )
        out[column] = array
    return out


_LOCAL = threading.local()


def _cursor() -> Any:
    # Opening a DuckDB database costs ~15 ms; each thread keeps one and takes cursors of it.
    if getattr(_LOCAL, "con", None) is None:
        _LOCAL.con = sandboxed_duckdb()
    return _LOCAL.con.cursor()


def _confusion_by_features(
    data: Predictions, sensitive_features: Any
) -> tuple[np.ndarray, list[str]]:
    """Confusion matrices (groups, K, K) and group names from one DuckDB GROUP BY over the
    labels as they are; the classes are fixed from what it saw."""

    columns = _feature_columns(sensitive_features, data.n)
    names = list(columns)

    def labels(values: np.ndarray) -> Any:
        return pa.array(values if values.dtype != object else values.astype(str))

    table = pa.table(
        {f"f{i}": columns[c] for i, c in enumerate(names)}
        | {"y_": labels(data._true), "p_": labels(data._pred)}
    )
    keys = ", ".join(f"f{i}" for i in range(len(names)))
    cursor = _cursor()
    try:
        cursor.register("predictions", table)
        rows = cursor.execute(
            f"SELECT {keys}, y_, p_, count(*) FROM predictions GROUP BY ALL"
        ).fetchall()
    finally:
        cursor.close()
    if any(r[-3] is None or r[-2] is None for r in rows):
        raise DataError("some labels are missing; every row needs a true and a predicted label")
    data.resolve_from({str(r[-3]) for r in rows} | {str(r[-2]) for r in rows})
    lookup = {c: i for i, c in enumerate(data.classes)}
    k = data.k
    cells: dict[str, np.ndarray] = {}
    for row in rows:
        label = " & ".join(
            f"{c}={'(missing)' if v is None else v}"
            for c, v in zip(names, row[: len(names)], strict=True)
        )
        matrix = cells.setdefault(label, np.zeros((k, k), dtype=np.int64))
        matrix[lookup[str(row[-3])], lookup[str(row[-2])]] += row[-1]
    ordered = sorted(cells)
    stacked = np.stack([cells[g] for g in ordered]) if ordered else np.zeros((0, k, k))
    return stacked, ordered


def _too_few(count: int, min_support: int) -> str:
    return (
        f"{count:,} rows, below the minimum support of {min_support}: too few to conclude anything"
    )
