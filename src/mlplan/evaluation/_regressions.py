"""Regressions: the candidate against the older system and the model in production, per
slice value, on the same rows (a paired bootstrap)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlplan.errors import DeploymentNotFoundError
from mlplan.evaluation._analysis import regressions
from mlplan.evaluation._input import EvaluationInput
from mlplan.evaluation._predict import package_metadata
from mlplan.modeling import (
    NEEDS_PROBA,
    ModelInfo,
    Predictions,
    feeds_for,
    get_model,
    inputs_for,
    older_system_predictions,
    run_graph,
)
from mlplan.modeling import PredictionKind as Kind
from mlplan.workspace import Workspace, get_deployment

__all__ = ["Reference", "production_reference", "regression_checks"]


@dataclass(frozen=True)
class Reference:
    """What a candidate is compared with: its name, its predictions on the candidate's rows
    and a caution about them (``note``), or why there is nothing to compare with
    (``reason``). For the model in production, ``deployed`` says that a model other than
    the candidate is in production, so the default check applies."""

    name: str | None = None
    predictions: Predictions | None = None
    note: str | None = None
    reason: str | None = None
    deployed: bool = False


def _on_same_rows(
    data: Predictions, predicted: np.ndarray, proba: np.ndarray | None, *, kind: Kind
) -> Predictions:
    """Another system's predictions on the candidate's rows, with the candidate's truth,
    classes and positive class."""
    if data.values is not None:
        return Predictions.from_arrays(data.values, predicted, kind="regression")
    return Predictions.from_arrays(
        np.asarray(data.classes, dtype=object)[data.y],
        predicted,
        kind=kind,
        proba=proba,
        classes=data.classes,
        positive=data.classes[data.positive] if data.kind == "binary" else None,
    )


def production_reference(ws: Workspace, inp: EvaluationInput) -> Reference:
    """The model in production on the candidate's rows (labels after its own recorded
    threshold)."""
    subject = inp.subject
    try:
        deployed = get_deployment(ws, inp.deployment)
    except DeploymentNotFoundError:
        return Reference(
            reason=f"no model is deployed to {inp.deployment} yet (mlplan deploy MODEL)"
        )
    model = get_model(ws, deployed.model_ref)
    if (
        subject.model is not None
        and subject.model.ref == model.ref
        and _same_threshold(ws, model, inp)
    ):
        return Reference(reason=f"{model.ref} is the model in production")
    note = (
        None
        if model.split == subject.split
        else f"{model.ref} learned from {model.split}, not {subject.split}: some of these "
        "rows may be ones it was trained on, which favours it"
    )
    try:
        predicted, proba = _run(ws, model, inp)
    except Exception as exc:  # a column gone or changed, another graph: the check waits
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return Reference(
            model.ref,
            reason=f"{model.ref} (in production) cannot score these rows: {reason}",
            deployed=True,
        )
    data = inp.prediction.data
    if data.values is not None:
        other = _on_same_rows(data, predicted, None, kind="regression")
        return Reference(model.ref, other, note, deployed=True)
    metadata = package_metadata(ws, model.package)
    classes = [str(c) for c in metadata["classes"]]
    if classes != list(data.classes):
        reason = f"{model.ref} (in production) has other classes: {', '.join(classes)}"
        return Reference(model.ref, reason=reason, deployed=True)
    if data.kind == "binary" and proba is not None and metadata.get("threshold") is not None:
        pos = data.positive
        decided = proba[:, pos] >= float(metadata["threshold"])
        predicted = np.where(decided, classes[pos], classes[1 - pos]).astype(object)
    other = _on_same_rows(data, predicted, proba, kind=data.kind)
    return Reference(model.ref, other, note, deployed=True)


def _same_threshold(ws: Workspace, model: ModelInfo, inp: EvaluationInput) -> bool:
    """Whether the candidate's decisions are those of ``model``'s package (its threshold)."""
    chosen = inp.prediction.threshold
    return chosen is None or chosen["value"] == package_metadata(ws, model.package).get("threshold")


def _run(
    ws: Workspace, model: ModelInfo, inp: EvaluationInput
) -> tuple[np.ndarray, np.ndarray | None]:
    split = inp.split
    spec = model.features
    graph = ws.store.artifacts.path(model.package["model.onnx"]).read_bytes()
    feeds = feeds_for(spec, inputs_for(ws, split.version, split.table, spec, inp.prediction.rows))
    return run_graph(graph, feeds, split.kind)


def _older_system(ws: Workspace, inp: EvaluationInput) -> Reference:
    """The older system's imported predictions on the candidate's rows (test rows only)."""
    plan = ws.plan
    data = inp.prediction.data
    older = None
    if inp.part == "test" and plan.baselines.older_system is not None:
        classes = data.classes if data.kind != "regression" else None
        older = older_system_predictions(ws, inp.split.ref, inp.prediction.ids, classes)
    if older is not None:
        name, predicted, proba = older
        return Reference(name, _on_same_rows(data, predicted, proba, kind="binary"))
    if plan.baselines.older_system is None:
        return Reference(reason="the plan names no older system")
    if inp.part != "test":
        return Reference(reason="only the test split can be compared with the older system")
    return Reference(
        reason="the older system's predictions are not imported: mlplan baseline older FILE"
    )


def regression_checks(
    ws: Workspace,
    inp: EvaluationInput,
    masks: Mapping[str, Mapping[str, np.ndarray]],
    *,
    focus_metric: str,
    production: Reference,
) -> dict[str, Any]:
    """Per rule of the plan (and by default on the focus metric): the candidate against the
    older system and the model in production (``production``)."""
    plan = ws.plan
    rules = [(r.against, r.metric, r.tolerance) for r in plan.gates.no_regression]
    if plan.baselines.older_system is not None and not any(r[0] == "older_system" for r in rules):
        rules.append(("older_system", focus_metric, 0.0))
    if production.deployed and not any(r[0] == "production" for r in rules):
        rules.append(("production", focus_metric, 0.0))  # never ship worse than production
    compared = {"production": production, "older_system": _older_system(ws, inp)}
    support = {s.name: s.min_support for s in plan.slices}
    out: dict[str, Any] = {}
    for against, metric, tolerance in rules:
        reference = compared[against]
        other = reference.predictions
        head = {"against": against, "metric": metric}
        if other is None:
            out[f"{against}:{metric}"] = head | {"reason": reference.reason}
            continue
        if other.proba is None and metric in NEEDS_PROBA:
            reason = f"{reference.name}'s predictions have no probabilities to compute {metric}"
            out[f"{against}:{metric}"] = head | {"reason": reason}
            continue
        rows = regressions(
            inp.prediction.data,
            other,
            masks,
            metric=metric,
            tolerance=tolerance,
            min_support=support,
            n_boot=inp.n_boot,
            seed=inp.seed,
            level=plan.evaluation.confidence,
        )
        out[f"{against}:{metric}"] = {
            "against": against,
            "name": reference.name,
            "metric": metric,
            "tolerance": tolerance,
            "note": reference.note,
            "rows": rows,
        }
    return out
