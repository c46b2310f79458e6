"""What a package version's windows are held against, read once per ``monitor`` call: its
training reference (drift, out-of-range and unseen values) and the calibration fitted on the
reference's validation scores and labels (the estimated ML metrics before labels); and the two
measures on a window's records, column-wise.

A package trained before mlplan kept a reference gets a note naming what to do, never an
error for the whole run: its windows are measured without drift or estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from mlplan.errors import MlplanError
from mlplan.evaluation import package_metadata
from mlplan.modeling import (
    CategoricalReference,
    ModelInfo,
    NumericReference,
    TrainingReference,
    training_reference,
)
from mlplan.monitoring._drift import DriftReport, feature_drift
from mlplan.monitoring._estimate import (
    Calibration,
    estimable_metrics,
    estimate_performance,
    fit_calibration,
)
from mlplan.monitoring._families import Model, WindowSample
from mlplan.plan import MonitoringSpec
from mlplan.workspace import Workspace

__all__ = ["Watched", "drift_of", "estimated_of", "watched_of"]


@dataclass(frozen=True)
class Watched:
    """A package version's training ``reference`` (None: it has none, ``notes`` say why and
    what to do), its ``calibration`` (None: not a classifier, or no validation sample), the
    ``metrics`` it estimates (the plan's estimable ones, its primary first) and its decision
    ``threshold``; ``limits``: each input's training range or full category list, in the form
    ``_families.input_family`` takes."""

    reference: TrainingReference | None
    calibration: Calibration | None = None
    metrics: tuple[str, ...] = ()
    threshold: float = 0.5
    limits: Mapping[str, Any] | None = None
    notes: tuple[str, ...] = ()


def watched_of(
    ws: Workspace, info: ModelInfo | None, model: Model, name: str, version: str
) -> Watched:
    """What the package ``info`` (None: the logged version ``version`` of ``name`` is no
    longer stored) is held against; never raises for a missing or unreadable reference."""
    if info is None:
        return Watched(
            None,
            notes=(
                f"{name} ({version}): its package is not in the store, so no drift or "
                "estimate; monitor the model that answers now",
            ),
        )
    try:
        reference = training_reference(ws, info)
    except MlplanError as error:
        return Watched(None, notes=(f"{info.ref}: no drift or estimate: {error}",))
    notes: list[str] = []
    calibration: Calibration | None = None
    metrics: tuple[str, ...] = ()
    output = reference.output
    if model.kind == "regression":
        pass
    elif output is None or output.validation_scores is None or not output.validation_rows:
        notes.append(
            f"{info.ref}: no estimated ML metrics: its reference holds no validation scores "
            f"and labels to calibrate on; train it again with a validation split"
        )
    else:
        try:
            calibration = fit_calibration(
                output.validation_scores,
                np.asarray(output.validation_labels),
                output.classes,
                positive=model.positive,
            )
        except MlplanError as error:
            notes.append(f"{info.ref}: no estimated ML metrics: {error}")
        else:
            metrics = _estimable(model, calibration)
    return Watched(
        reference, calibration, metrics, _threshold(ws, info), _limits(reference), tuple(notes)
    )


def _estimable(model: Model, calibration: Calibration) -> tuple[str, ...]:
    """The plan's ML metrics this classifier's estimate can give (every estimable one when
    the plan names none), in the plan's order (its primary first)."""
    known = estimable_metrics(calibration.kind)
    return tuple(m for m in model.ml_metrics if m in known) or (() if model.ml_metrics else known)


def _threshold(ws: Workspace, info: ModelInfo) -> float:
    """A binary package's decision threshold (its ``metadata.json``; 0.5 without one)."""
    value = package_metadata(ws, info.package).get("threshold")
    return float(value) if isinstance(value, int | float) else 0.5


def _limits(reference: TrainingReference) -> dict[str, Any]:
    """Each input's training range, or its categories when the reference lists every one."""
    features: dict[str, Any] = {}
    for name, ref in reference.inputs.items():
        if isinstance(ref, NumericReference) and ref.min is not None:
            features[name] = {"min": ref.min, "max": ref.max}
        elif isinstance(ref, CategoricalReference) and not (ref.other_categories or ref.redacted):
            features[name] = {"categories": list(ref.categories)}
    return {"features": features}


def _answered_proba(
    sample: WindowSample, rows: np.ndarray, model: Model, classes: Sequence[str]
) -> np.ndarray | None:
    """The class probabilities of the records ``rows`` that have them, one column per class
    of ``classes`` (the reference's order); None when the package's classes differ."""
    if sample.proba is None or not set(classes) <= set(model.classes):
        return None
    proba: np.ndarray = sample.proba[rows][:, [model.classes.index(c) for c in classes]]
    answered: np.ndarray = proba[np.isfinite(proba).all(axis=1)]
    return answered


def drift_of(
    sample: WindowSample,
    rows: np.ndarray,
    model: Model,
    watched: Watched,
    monitoring: MonitoringSpec,
) -> DriftReport | str | None:
    """The drift of the records ``rows`` against the reference: inputs and outputs (None:
    no reference; text: why it could not be measured)."""
    reference = watched.reference
    if reference is None:
        return None
    inputs = sample.inputs.take(pa.array(rows, pa.int64()))
    predicted = proba = values = None
    if sample.values is not None:
        found = sample.values[rows]
        values = found[np.isfinite(found)]
    else:
        codes = sample.labels[rows]
        predicted = sample.label_text(codes[codes >= 0])
        if reference.output is not None:
            proba = _answered_proba(sample, rows, model, reference.output.classes)
    try:
        return feature_drift(
            reference,
            inputs,
            monitoring,
            predicted=predicted,
            proba=proba,
            values=values,
            positive=model.positive,
        )
    except MlplanError as error:
        return str(error)


def estimated_of(
    sample: WindowSample,
    rows: np.ndarray,
    model: Model,
    watched: Watched,
    realised: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """The estimated ML metrics of the records ``rows`` before labels, each with its interval
    and, given the ``realised`` ones (the ML family's, once labels arrived), beside them
    (None: no calibration; ``note``: why none could be estimated)."""
    calibration = watched.calibration
    if calibration is None or not watched.metrics:
        return None
    proba = _answered_proba(sample, rows, model, calibration.classes)
    if proba is None or not len(proba):
        return {"rows": 0, "primary": watched.metrics[0], "metrics": {}}
    try:
        result = estimate_performance(
            proba,
            calibration=calibration,
            metrics=watched.metrics,
            threshold=watched.threshold,
        )
    except MlplanError as error:  # scores the calibration cannot take
        return {
            "rows": len(proba),
            "primary": watched.metrics[0],
            "metrics": {},
            "note": str(error),
        }
    out = result.to_dict(realised=realised)
    out["primary"] = watched.metrics[0]
    return out
