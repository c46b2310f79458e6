"""Comparing models with the bars they must clear, on the same test split: the trivial
baseline (majority class or mean), human-level performance, the literature (reported, not
measured here) and every trained model — with bootstrap intervals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.core import LOWER_IS_BETTER, json_safe
from mlplan.data import effective_metadata, get_dataset, get_split, load_split
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
from mlplan.modeling._older import older_system_predictions
from mlplan.modeling._package import run_graph
from mlplan.modeling._tabular import score_predictions
from mlplan.modeling._train import ModelInfo, list_models
from mlplan.workspace import Workspace

__all__ = ["Comparison", "compare_models", "latest_comparison"]


@dataclass(frozen=True)
class Comparison:
    """Rows of (name, kind, metrics with intervals), the primary metric, and the gaps."""

    split: str
    primary: str
    rows: list[dict[str, Any]]
    gaps: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"split": self.split, "primary": self.primary, "rows": self.rows, "gaps": self.gaps}


def _bootstrap(
    kind: str,
    y: np.ndarray,
    predicted: np.ndarray,
    proba: np.ndarray | None,
    classes: list[str],
    *,
    n_boot: int,
    seed: int,
) -> dict[str, dict[str, float]]:
    point = score_predictions(kind, y, predicted, proba, classes)
    draws: dict[str, list[float]] = {k: [] for k in point}
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        index = rng.integers(0, len(y), len(y))
        if kind != "regression" and len(set(y[index])) < 2:
            continue
        sample = score_predictions(
            kind, y[index], predicted[index], None if proba is None else proba[index], classes
        )
        for key, value in sample.items():
            draws.setdefault(key, []).append(value)
    out = {}
    for key, value in point.items():
        values = np.asarray([v for v in draws.get(key, []) if np.isfinite(v)])
        low, high = (
            np.percentile(values, [2.5, 97.5]) if values.size else (float("nan"), float("nan"))
        )
        out[key] = {"value": value, "low": float(low), "high": float(high)}
    return out


def _predict(
    ws: Workspace, model: ModelInfo, info: Any, table: pa.Table, rows: np.ndarray, kind: str
) -> tuple[np.ndarray, np.ndarray | None]:
    graph = ws.store.artifacts.path(model.package["model.onnx"]).read_bytes()
    spec = model.features
    return run_graph(graph, feeds_for(spec, inputs_for(ws, info, table, spec, rows)), kind)


def _test_ids(ws: Workspace, split_info: Any, table: pa.Table, rows: np.ndarray) -> list[str]:

    info = get_dataset(ws, f"{split_info.dataset}@{split_info.version}")
    id_column = effective_metadata(ws, info).get("id_column")
    if id_column:
        values = pc.cast(table.column(id_column), pa.string()).to_pylist()
        return [str(values[i]) for i in rows]
    return [str(i) for i in rows]


def compare_models(
    ws: Workspace, *, split: str | None = None, n_boot: int = 200, seed: int = 0
) -> Comparison:
    """Every model of the split and every bar, on its test rows; stored as a report.

    Raises
    ------
    UsageError
        No model trained on the split yet.
    """

    plan = ws.plan
    task = plan.task
    split_info = get_split(ws, split)
    models = [m for m in list_models(ws) if m.split == split_info.ref]
    if not models:
        raise UsageError(
            f"no model trained on {split_info.ref} yet: mlplan train --baseline "
            f"--split {split_info.ref}"
        )
    info, table, codes = load_split(ws, split_info)
    column = table.column(target_column(ws, info))
    kind = "classification" if info.format == "images" else target_kind(task, column)
    known = ~np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False))
    # The rows every model can predict (windows need history): the same rows for every bar.
    usable = [example_rows(m.features, table, codes, known) for m in models]
    train = usable[0]["train"]
    test = usable[0]["test"]
    for other in usable[1:]:
        test = np.intersect1d(test, other["test"])
    if not test.size:
        raise UsageError(f"{split_info.ref} has no test rows to compare on")
    y_all = target_values(column, kind)
    y = y_all[test]
    classes = sorted({str(v) for v in y_all[train]}) if kind != "regression" else []
    rows: list[dict[str, Any]] = []

    # The trivial baseline: what the training split says without looking at any feature.
    if kind == "regression":
        mean = float(np.mean(y_all[train]))
        trivial_pred, trivial_proba = np.full(len(y), mean), None
        note = f"always {mean:.4g}, the training mean"
    else:
        shares = np.array([np.mean(y_all[train] == c) for c in classes])
        majority = classes[int(np.argmax(shares))]
        trivial_pred = np.full(len(y), majority, dtype=object)
        trivial_proba = np.tile(shares, (len(y), 1))
        note = f"always {majority!r}, the majority class"
    rows.append(
        {
            "name": "trivial",
            "kind": "trivial",
            "measured": True,
            "note": note,
            "metrics": _bootstrap(
                kind, y, trivial_pred, trivial_proba, classes, n_boot=n_boot, seed=seed
            ),
        }
    )

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
    ids = _test_ids(ws, split_info, table, test)
    older = older_system_predictions(
        ws, split_info.ref, ids, classes if kind != "regression" else None
    )
    if older is not None:
        name, older_pred, older_proba = older
        rows.append(
            {
                "name": name,
                "kind": "older_system",
                "measured": True,
                "note": "its predictions on the same test rows"
                + (
                    ""
                    if older_proba is not None or kind == "regression"
                    else " (labels only: no probabilities)"
                ),
                "metrics": _bootstrap(
                    kind, y, older_pred, older_proba, classes, n_boot=n_boot, seed=seed
                ),
            }
        )
    for model in models:
        predicted, proba = _predict(ws, model, info, table, test, kind)
        rows.append(
            {
                "name": model.name,
                "kind": "model",
                "measured": True,
                "note": f"{model.family}" + (" (baseline)" if model.baseline else ""),
                "metrics": _bootstrap(kind, y, predicted, proba, classes, n_boot=n_boot, seed=seed),
            }
        )

    primary_metric = plan.metrics.primary_metric
    primary = (
        primary_metric.name
        if primary_metric
        and any(primary_metric.name in r["metrics"] for r in rows if r["kind"] == "model")
        else ("mae" if kind == "regression" else "accuracy")
    )
    lower_is_better = primary in LOWER_IS_BETTER
    measured = [r for r in rows if r["kind"] == "model"]
    best = (min if lower_is_better else max)(measured, key=lambda r: r["metrics"][primary]["value"])
    gaps: dict[str, Any] = {"best_model": best["name"], "metric": primary}
    for row in rows:
        if row["kind"] not in {"hlp", "trivial", "older_system"}:
            continue
        # HLP from hard labels has no ranking metric: then the gap is taken in accuracy.
        metric = (
            primary
            if primary in row["metrics"]
            else (
                "accuracy"
                if "accuracy" in row["metrics"] and "accuracy" in best["metrics"]
                else None
            )
        )
        if metric is not None and row["metrics"][metric].get("value") is not None:
            gaps[f"to_{row['kind']}"] = (
                best["metrics"][metric]["value"] - row["metrics"][metric]["value"]
            )
            gaps[f"to_{row['kind']}_metric"] = metric
    comparison = Comparison(split_info.ref, primary, rows, gaps)

    parameters = {"split": split_info.ref, "bootstrap": n_boot, "seed": seed}
    with ws.record("models compare", parameters) as run:
        run.input("split", split_info.ref, sha256=split_info.artifact_sha256)
        for model in models:
            run.input("model", model.name, sha256=model.package["model.onnx"])
        run.report("comparison", json_safe(comparison.to_dict()))
    return comparison


def latest_comparison(ws: Workspace) -> dict[str, Any] | None:
    """The newest stored comparison, if any."""
    found = ws.latest_report("comparison")
    return None if found is None else found.report
