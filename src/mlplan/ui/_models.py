"""The Models pages beyond the comparison's numbers: each comparison row's value and interval
drawn as an error bar on its metric's shared axis, and a model's own page — what ``mlplan
models show REF --json`` says, its compute profile held against the plan's objectives
(``feasibility``, as ``mlplan status`` holds it) and the deployments serving it. Geometry and
plain values only: every figure is the library's."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlplan.errors import ModelNotFoundError
from mlplan.modeling import FeasibilityCheck, ModelInfo, feasibility, get_model, list_models
from mlplan.ui._format import number, span
from mlplan.workspace import list_deployments

if TYPE_CHECKING:
    from mlplan.workspace import Workspace

__all__ = [
    "PROFILE_FIELDS",
    "MetricAxis",
    "ModelView",
    "Whisker",
    "comparison_axes",
    "model_view",
    "quantity",
    "row_whiskers",
]

_LEFT, _RIGHT = 4.0, 96.0
"""Where an axis's ends sit in a 100-wide box: a point at either end stays whole."""

_NOT_METRICS = {"rows", "threshold"}
"""The keys of a split's metrics that are not metrics."""

PROFILE_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("size_mb", "package size", "MB"),
    ("load_ms", "load time", "ms"),
    ("latency_p50_ms", "latency p50, one row", "ms"),
    ("latency_p99_ms", "latency p99, one row", "ms"),
    ("single_thread_qps", "requests per second, one thread", "/s"),
    ("batch_rows_per_second", "batch rows per second", "/s"),
    ("batch_rows", "batch measured on", "rows"),
    ("memory_mb", "memory the session adds", "MB"),
    ("threads", "threads", ""),
    ("training_device", "trained on", ""),
)
"""The compute profile's fields (``ComputeProfile``) in the order the page lists them, each
with its words and unit."""


def quantity(value: Any) -> str:
    """A measurement as a person reads it: from 1,000 up, whole with separators; below, as
    ``number`` writes it.

    Examples
    --------
    >>> quantity(37581.97), quantity(0.0266085), quantity("cpu")
    ('37,582', '0.02661', 'cpu')
    """
    if isinstance(value, float) and math.isfinite(value) and abs(value) >= 1000:
        return f"{value:,.0f}"
    return number(value)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class MetricAxis:
    """One metric's axis, shared by every row of a comparison: the values at its ends (the
    lowest and highest value or interval bound of any row)."""

    metric: str
    low: float
    high: float

    def x(self, value: float) -> float:
        """Where ``value`` sits in a 100-wide box (the middle when the axis spans nothing).

        Examples
        --------
        >>> axis = MetricAxis("auc", 0.5, 1.0)
        >>> axis.x(0.5), axis.x(0.75), axis.x(1.0), MetricAxis("f1", 0.0, 0.0).x(0.0)
        (4.0, 50.0, 96.0, 50.0)
        """
        if not self.high > self.low:
            return 50.0
        return round(_LEFT + (_RIGHT - _LEFT) * (value - self.low) / (self.high - self.low), 2)


@dataclass(frozen=True)
class Whisker:
    """A comparison row's value of one metric on the metric's axis, in a 100-wide box: the
    point's x and, for a value with an interval, the whisker's ends (None without one, as a
    reported figure has); ``label`` says it in words."""

    x: float
    low: float | None
    high: float | None
    label: str


def comparison_axes(
    rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]
) -> dict[str, MetricAxis]:
    """Each metric's axis over every row of a comparison (all its pages: a row sits at the
    same place on any page), for the metrics some row has a finite value of.

    Examples
    --------
    >>> rows = [{"metrics": {"auc": {"value": 0.5, "low": 0.5, "high": 0.5}}},
    ...         {"metrics": {"auc": {"value": 0.7, "low": 0.6, "high": 0.9},
    ...                      "f1": {"value": None}}}]
    >>> comparison_axes(rows, ["auc", "f1"])
    {'auc': MetricAxis(metric='auc', low=0.5, high=0.9)}
    """
    axes = {}
    for metric in metrics:
        ends = [
            found
            for row in rows
            for key in ("value", "low", "high")
            if (found := _finite((row["metrics"].get(metric) or {}).get(key))) is not None
        ]
        if ends:
            axes[metric] = MetricAxis(metric, min(ends), max(ends))
    return axes


def row_whiskers(
    row: Mapping[str, Any], axes: Mapping[str, MetricAxis], *, confidence: float | None
) -> dict[str, Whisker]:
    """A comparison row's error bar for each metric it has a finite value of: the point, and
    the interval's ends when it has both.

    Examples
    --------
    >>> axis = {"auc": MetricAxis("auc", 0.5, 1.0)}
    >>> row = {"name": "gbt-1", "metrics": {"auc": {"value": 0.75, "low": 0.5, "high": 1.0}}}
    >>> row_whiskers(row, axis, confidence=0.95)["auc"]
    Whisker(x=50.0, low=4.0, high=96.0, label='gbt-1: auc 0.75, 95% interval [0.5, 1]')
    >>> row_whiskers({"name": "paper", "metrics": {"auc": {"value": 0.8}}}, axis, confidence=0.95)
    {'auc': Whisker(x=59.2, low=None, high=None, label='paper: auc 0.8, reported')}
    """
    whiskers = {}
    level = f"{number((confidence or 0.95) * 100)}% interval"
    for metric, axis in axes.items():
        found = row["metrics"].get(metric) or {}
        value = _finite(found.get("value"))
        if value is None:
            continue
        low, high = _finite(found.get("low")), _finite(found.get("high"))
        label = f"{row['name']}: {metric} {number(value)}"
        if low is not None and high is not None:
            label += f", {level} {span(low, high)}"
            whiskers[metric] = Whisker(axis.x(value), axis.x(low), axis.x(high), label)
        else:
            whiskers[metric] = Whisker(axis.x(value), None, None, label + ", reported")
    return whiskers


@dataclass(frozen=True)
class ModelView:
    """A model's page: the package version ``mlplan models show REF --json`` prints
    (``model``), every version of the model, the metric names its splits were measured on,
    its compute profile as (field, words, value, unit), the profile held against the plan's
    objectives (``checks``; empty when the plan sets none the profile speaks to) and the
    deployments that serve this exact version."""

    model: ModelInfo
    versions: list[str]
    metric_names: list[str]
    profile: list[tuple[str, str, Any, str]]
    checks: list[FeasibilityCheck]
    deployments: list[str]

    @property
    def features(self) -> list[tuple[str, str, float | None]]:
        """A tabular model's features: name, kind (numeric or categorical) and how much of
        the target the feature screen found each explains alone (None: not screened)."""
        spec = self.model.features
        explains = (spec.get("screen") or {}).get("explains", {})
        return [
            (column, kind, explains.get(column))
            for kind in ("numeric", "categorical")
            for column in spec.get(kind, [])
        ]

    @property
    def left_out(self) -> list[tuple[str, str]]:
        """The columns that are not features, and why: the plan's and the data's exclusions,
        then what the feature screen left out."""
        spec = self.model.features
        screen = spec.get("screen") or {}
        return [*spec.get("excluded", {}).items(), *screen.get("left_out", {}).items()]


def model_view(ws: Workspace, ref: str) -> ModelView:
    """What ``mlplan models show REF`` shows of ``ref`` (``NAME``: its newest package
    version, or ``NAME@VERSION``), with its compute profile held against the plan's
    objectives.

    Raises
    ------
    ModelNotFoundError
        No such model or version (the message names those there are).
    """
    if not ws.has_store:  # reading must not create a store
        raise ModelNotFoundError(
            f"model {ref!r} not found: no model is registered yet. Train one with: "
            "mlplan train --baseline"
        )
    model = get_model(ws, ref)
    versions = [m.ref for m in list_models(ws, versions=True, name=model.name)]
    names: list[str] = []
    for values in model.metrics.values():
        names.extend(k for k in values if k not in _NOT_METRICS and k not in names)
    profile = [
        (key, words, model.compute[key], unit)
        for key, words, unit in PROFILE_FIELDS
        if model.compute.get(key) is not None
    ]
    checks = feasibility(model.compute, ws.plan.deployment) if model.compute else []
    serving = [d.name for d in list_deployments(ws) if d.model_ref == model.ref]
    return ModelView(model, versions, names, profile, checks, serving)
