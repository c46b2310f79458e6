"""The bars a model must clear, each a row of the comparison on the same test rows: the
trivial baseline (majority class or mean), human-level performance, the literature (reported,
not measured here), the older system — and the models themselves — with bootstrap
intervals."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.data import (
    DatasetVersionInfo,
    SplitInfo,
    effective_metadata,
    get_dataset,
    load_split,
)
from mlplan.errors import UsageError
from mlplan.labels import get_hlp
from mlplan.modeling._inputs import (
    example_rows,
    feeds_for,
    inputs_for,
    target_column,
    target_kind,
    target_values,
)
from mlplan.modeling._metrics import Predictions
from mlplan.modeling._models import ModelInfo
from mlplan.modeling._older import older_system_predictions
from mlplan.modeling._package import run_graph
from mlplan.modeling._slice_report import slice_metrics
from mlplan.workspace import Workspace

__all__ = [
    "ComparedRows",
    "Resampling",
    "compared_rows",
    "model_rows",
    "older_system_rows",
    "recorded_threshold",
    "reported_rows",
    "trivial_row",
]


@dataclass(frozen=True)
class Resampling:
    """How every interval of a comparison is drawn: as ``evaluate`` draws its overall
    intervals (the plan's ``evaluation.bootstrap`` resamples and ``confidence``, the same
    seed), so that a model's metric and interval are the same in both."""

    n_boot: int
    seed: int
    level: float


@dataclass(frozen=True)
class ComparedRows:
    """The test rows every model can predict (windows need history), the same for every
    bar, with their targets, and what the training rows say."""

    info: DatasetVersionInfo
    table: pa.Table
    kind: str
    rows: np.ndarray
    y: np.ndarray
    y_train: np.ndarray
    classes: list[str]

    def measure(
        self,
        predicted: np.ndarray,
        proba: np.ndarray | None,
        resampling: Resampling,
        *,
        classes: list[str] | None = None,
        positive: str | None = None,
    ) -> dict[str, dict[str, float | None]]:
        """Each metric of predictions on these rows (``proba``'s columns: ``classes``, else
        the training classes), with its bootstrap interval: the metric engine and the
        draws of ``evaluate``'s overall group."""
        if self.kind == "regression":
            data = Predictions.from_arrays(self.y, predicted, kind="regression")
        else:
            data = Predictions.from_arrays(
                self.y,
                predicted,
                kind="binary",
                proba=proba,
                classes=self.classes if classes is None else classes,
                positive=positive,
            )
        report = slice_metrics(
            data,
            name="overall",
            n_boot=resampling.n_boot,
            seed=resampling.seed,
            level=resampling.level,
        )
        return {k: v.to_dict() for k, v in report.overall.items() if k != "count"}


def compared_rows(ws: Workspace, split_info: SplitInfo, models: list[ModelInfo]) -> ComparedRows:
    """The test rows of a split that every one of ``models`` can predict."""
    loaded = load_split(ws, split_info)
    info, table, codes = loaded.info, loaded.table, loaded.codes
    column = table.column(target_column(ws, info))
    kind = "classification" if info.format == "images" else target_kind(ws.plan.task, column)
    known = ~np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False))
    usable = [example_rows(m.features, table, codes, known) for m in models]
    train = usable[0]["train"]
    test = usable[0]["test"]
    for other in usable[1:]:
        test = np.intersect1d(test, other["test"])
    if not test.size:
        raise UsageError(f"{split_info.ref} has no test rows to compare on")
    y_all = target_values(column, kind)
    classes = sorted({str(v) for v in y_all[train]}) if kind != "regression" else []
    return ComparedRows(info, table, kind, test, y_all[test], y_all[train], classes)


def _test_ids(ws: Workspace, split_info: SplitInfo, test: ComparedRows) -> list[str]:
    info = get_dataset(ws, f"{split_info.dataset}@{split_info.version}")
    id_column = effective_metadata(ws, info).get("id_column")
    if id_column:
        values = pc.cast(test.table.column(id_column), pa.string()).to_pylist()
        return [str(values[i]) for i in test.rows]
    return [str(i) for i in test.rows]


def _positive(ws: Workspace, classes: list[str]) -> str | None:
    """Binary: the plan's positive class where it is one of ``classes`` (else the second
    class counts as positive, as in ``evaluate``)."""
    positive = ws.plan.positive_class
    return positive if len(classes) == 2 and positive in classes else None


def trivial_row(ws: Workspace, test: ComparedRows, resampling: Resampling) -> dict[str, Any]:
    """What the training split says without looking at any feature."""
    n = len(test.y)
    if test.kind == "regression":
        # The best constant for absolute errors is the median; for squared ones, the mean.
        primary = ws.plan.metrics.primary_metric
        if primary is None or primary.name in {"mae", "mape"}:
            constant = float(np.median(test.y_train))
            note = f"always {constant:.4g}, the training median (the best constant for MAE)"
        else:
            constant = float(np.mean(test.y_train))
            note = f"always {constant:.4g}, the training mean"
        predicted, proba = np.full(n, constant), None
    else:
        shares = np.array([np.mean(test.y_train == c) for c in test.classes])
        majority = test.classes[int(np.argmax(shares))]
        predicted = np.full(n, majority, dtype=object)
        proba = np.tile(shares, (n, 1))
        note = f"always {majority!r}, the majority class"
    return {
        "name": "trivial",
        "kind": "trivial",
        "measured": True,
        "note": note,
        "threshold": None,
        "metrics": test.measure(predicted, proba, resampling, positive=_positive(ws, test.classes)),
    }


def reported_rows(ws: Workspace) -> list[dict[str, Any]]:
    """Human-level performance (measured from labels, or the plan's value) and the
    literature's results."""
    plan = ws.plan
    rows = []
    stored = get_hlp(ws)
    if stored is not None:
        rows.append(
            {
                "name": "HLP",
                "kind": "hlp",
                "measured": True,
                "note": f"from {stored.hlp.items:,} labeled items of {stored.dataset}"
                + (" (stale: labels arrived since)" if stored.stale else ""),
                "metrics": {k: v.to_dict() for k, v in stored.hlp.metrics.items()},
            }
        )
    elif plan.baselines.hlp is not None and plan.baselines.hlp.source == "value":
        rows.append(
            {
                "name": "HLP",
                "kind": "hlp",
                "measured": False,
                "note": "a value from the plan, not measured here",
                "metrics": {"reported": {"value": plan.baselines.hlp.value}},
            }
        )
    for ref in plan.baselines.literature or []:
        rows.append(
            {
                "name": ref.title,
                "kind": "literature",
                "measured": False,
                "note": "reported, not measured here"
                + (f" ({ref.dataset})" if ref.dataset else ""),
                "metrics": {ref.metric: {"value": ref.score}},
            }
        )
    return rows


def older_system_rows(
    ws: Workspace, split_info: SplitInfo, test: ComparedRows, resampling: Resampling
) -> list[dict[str, Any]]:
    """The older system on the same rows, when its predictions were imported (its labels as
    it gave them: no threshold of ours)."""
    regression = test.kind == "regression"
    older = older_system_predictions(
        ws, split_info.ref, _test_ids(ws, split_info, test), None if regression else test.classes
    )
    if older is None:
        return []
    labels_only = older.proba is None and not regression
    positive = _positive(ws, test.classes)
    return [
        {
            "name": older.name,
            "kind": "older_system",
            "measured": True,
            "note": "its predictions on the same test rows"
            + (" (labels only: no probabilities)" if labels_only else ""),
            "threshold": None,
            "metrics": test.measure(older.predicted, older.proba, resampling, positive=positive),
        }
    ]


def recorded_threshold(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """A binary model's decision threshold as its package's ``metadata.json`` records it:
    the training default, or the one an evaluation chose (``set_by`` says which); None for
    other models."""
    value = metadata.get("threshold")
    if value is None or len(metadata.get("classes") or []) != 2:
        return None
    choice = metadata.get("threshold_choice") or {}
    if choice.get("chosen_on"):
        set_by = f"evaluate: {choice.get('criterion')} on the {choice['chosen_on']} rows"
    elif choice:
        set_by = f"evaluate: {choice.get('criterion') or 'fixed'}"
    else:
        set_by = "training"
    return {"value": float(value), "set_by": set_by}


def model_rows(
    ws: Workspace, models: list[ModelInfo], test: ComparedRows, resampling: Resampling
) -> list[dict[str, Any]]:
    """Each model's package run on the test rows; a binary model's labels at the decision
    threshold its package records, as ``evaluate`` decides them."""
    rows = []
    for model in models:
        artifacts = ws.store.artifacts
        graph = artifacts.path(model.package["model.onnx"]).read_bytes()
        metadata = json.loads(artifacts.path(model.package["metadata.json"]).read_text())
        spec = model.features
        feeds = feeds_for(spec, inputs_for(ws, test.info, test.table, spec, test.rows))
        predicted, proba = run_graph(graph, feeds, test.kind)
        classes = positive = threshold = None
        if test.kind != "regression":
            classes = [str(c) for c in metadata["classes"]]
            positive = _positive(ws, classes)
            threshold = recorded_threshold(metadata) if proba is not None else None
        if threshold is not None and proba is not None and classes is not None:
            pos = classes.index(positive) if positive is not None else 1
            decided = proba[:, pos] >= threshold["value"]
            predicted = np.where(decided, classes[pos], classes[1 - pos]).astype(object)
        rows.append(
            {
                "name": model.name,
                "kind": "model",
                "measured": True,
                "note": f"{model.family}" + (" (baseline)" if model.baseline else ""),
                "threshold": threshold,
                "metrics": test.measure(
                    predicted, proba, resampling, classes=classes, positive=positive
                ),
            }
        )
    return rows
