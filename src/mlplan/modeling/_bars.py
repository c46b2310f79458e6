"""The bars a model must clear, each a row of the comparison on the same test rows: the
trivial baseline (majority class or mean), human-level performance, the literature (reported,
not measured here), the older system — and the models themselves — with bootstrap
intervals."""

from __future__ import annotations

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
from mlplan.modeling._models import ModelInfo
from mlplan.modeling._older import older_system_predictions
from mlplan.modeling._package import run_graph
from mlplan.modeling._tabular import score_predictions
from mlplan.workspace import Workspace

__all__ = [
    "ComparedRows",
    "compared_rows",
    "model_rows",
    "older_system_rows",
    "reported_rows",
    "trivial_row",
]


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

    def bootstrap(
        self, predicted: np.ndarray, proba: np.ndarray | None, *, n_boot: int, seed: int
    ) -> dict[str, dict[str, float]]:
        """Each metric of predictions on these rows, with a 95% bootstrap interval."""
        return _bootstrap(
            self.kind, self.y, predicted, proba, self.classes, n_boot=n_boot, seed=seed
        )


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


def trivial_row(test: ComparedRows, *, n_boot: int, seed: int) -> dict[str, Any]:
    """What the training split says without looking at any feature."""
    n = len(test.y)
    if test.kind == "regression":
        mean = float(np.mean(test.y_train))
        predicted, proba = np.full(n, mean), None
        note = f"always {mean:.4g}, the training mean"
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
        "metrics": test.bootstrap(predicted, proba, n_boot=n_boot, seed=seed),
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
    ws: Workspace, split_info: SplitInfo, test: ComparedRows, *, n_boot: int, seed: int
) -> list[dict[str, Any]]:
    """The older system on the same rows, when its predictions were imported."""
    regression = test.kind == "regression"
    older = older_system_predictions(
        ws, split_info.ref, _test_ids(ws, split_info, test), None if regression else test.classes
    )
    if older is None:
        return []
    labels_only = older.proba is None and not regression
    return [
        {
            "name": older.name,
            "kind": "older_system",
            "measured": True,
            "note": "its predictions on the same test rows"
            + (" (labels only: no probabilities)" if labels_only else ""),
            "metrics": test.bootstrap(older.predicted, older.proba, n_boot=n_boot, seed=seed),
        }
    ]


def model_rows(
    ws: Workspace, models: list[ModelInfo], test: ComparedRows, *, n_boot: int, seed: int
) -> list[dict[str, Any]]:
    """Each model's package run on the test rows."""
    rows = []
    for model in models:
        graph = ws.store.artifacts.path(model.package["model.onnx"]).read_bytes()
        spec = model.features
        feeds = feeds_for(spec, inputs_for(ws, test.info, test.table, spec, test.rows))
        predicted, proba = run_graph(graph, feeds, test.kind)
        rows.append(
            {
                "name": model.name,
                "kind": "model",
                "measured": True,
                "note": f"{model.family}" + (" (baseline)" if model.baseline else ""),
                "metrics": test.bootstrap(predicted, proba, n_boot=n_boot, seed=seed),
            }
        )
    return rows
