"""One training job — a family, its hyperparameters and a seed on prepared data — run the same
way in this process or on a Ray worker: fit, score every split, export, check parity."""

from __future__ import annotations

import io
import pickle
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlplan.core import LOWER_IS_BETTER
from mlplan.errors import DataError, UsageError
from mlplan.modeling._features import FeatureSet
from mlplan.modeling._inputs import TrainingData
from mlplan.modeling._package import Fitted, check_parity
from mlplan.modeling._tabular import (
    build_pipeline,
    build_window_estimator,
    export_onnx,
    export_window_onnx,
    score_predictions,
    window_features,
)

__all__ = ["Job", "JobResult", "check_family", "run_job"]

# Which families fit which input and target.
_FITS: dict[str, set[tuple[str, str]]] = {
    "linear": {("tabular", "regression"), ("window", "regression")},
    "logistic": {("tabular", "classification"), ("window", "classification")},
    "gbt": {
        ("tabular", "regression"),
        ("tabular", "classification"),
        ("window", "regression"),
        ("window", "classification"),
    },
    "cnn": {("image", "classification")},
    "rnn": {("window", "regression"), ("window", "classification")},
}


def check_family(family: str, input_kind: str, kind: str, task: str) -> None:
    """Refuse a family that does not fit the data, naming those that do."""
    if (input_kind, kind) not in _FITS[family]:
        usable = [f for f, fits in _FITS.items() if (input_kind, kind) in fits]
        raise UsageError(f"family {family!r} does not fit a {task} task; use {' or '.join(usable)}")


@dataclass(frozen=True)
class Job:
    """A family to fit: its hyperparameters, seed, whether the CNN backbone stays frozen, and
    whether to export and check a package (tuning trials do not)."""

    family: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict)
    frozen: bool = False
    export: bool = True


@dataclass
class JobResult:
    """What a job hands back to the driver, which registers it."""

    job: Job
    params: dict[str, Any]
    scores: dict[str, dict[str, float]]
    graph: bytes | None
    native: dict[str, bytes]
    parity: dict[str, Any]
    seconds: float


def _fit(data: TrainingData, job: Job) -> Fitted:
    kind, family, spec = data.kind, job.family, data.spec
    if family in {"cnn", "rnn"}:
        from mlplan.modeling._deep import fit_cnn, fit_rnn

        if family == "cnn":
            return fit_cnn(data, job.seed, job.params, frozen=job.frozen, export=job.export)
        return fit_rnn(data, job.seed, job.params, export=job.export)
    if spec["kind"] == "window":
        estimator = build_window_estimator(kind, family, job.seed, job.params)
        x = {k: window_features(v) for k, v in data.x.items()}
        estimator.fit(x["train"], data.y["train"])
        graph = (
            export_window_onnx(estimator, kind, family, spec["length"], len(spec["channels"]))
            if job.export
            else None
        )
    else:
        features = FeatureSet(spec["numeric"], spec["categorical"], {})
        estimator = build_pipeline(kind, family, features, job.seed, job.params)
        x = data.x
        estimator.fit(x["train"], data.y["train"])
        graph = export_onnx(estimator, kind, family, features) if job.export else None
    predictions = {}
    for split, inputs in x.items():
        if not len(inputs):
            continue
        predicted = estimator.predict(inputs)
        proba = estimator.predict_proba(inputs) if kind == "classification" else None
        predictions[split] = (predicted, proba)
    buffer = io.BytesIO()
    pickle.dump(estimator, buffer)  # for retraining only: never loaded on the serving path
    return Fitted(predictions, graph, {"native.pkl": buffer.getvalue()}, dict(job.params))


def run_job(data: TrainingData, job: Job) -> JobResult:
    """Fit, score each split, and (when exporting) check the package's parity on the test
    split.

    Raises
    ------
    DataError
        A package whose outputs differ from the trained model's.
    """
    started = time.perf_counter()
    fitted = _fit(data, job)
    seconds = time.perf_counter() - started
    scores = {}
    for split, (predicted, proba) in fitted.predictions.items():
        if not len(data.y[split]):
            continue
        scores[split] = score_predictions(
            data.kind, data.y[split], predicted, proba, data.classes
        ) | {"rows": len(data.y[split])}
    parity: dict[str, Any] = {}
    if fitted.graph is not None:
        check = "test" if len(data.y["test"]) else "train"
        predicted, proba = fitted.predictions[check]
        parity = check_parity(fitted.graph, data.feeds(check), data.kind, predicted, proba)
        if not parity["passed"]:
            raise DataError(
                f"the ONNX package of this {job.family} model differs from the trained "
                f"model on the {check} split (max difference {parity['max_abs_diff']:.2e},"
                f" {parity.get('label_mismatches', 0)} labels); not registered"
            )
    return JobResult(job, fitted.params, scores, fitted.graph, fitted.native, parity, seconds)


def validation_score(result: JobResult, metric: str) -> float:
    """A trial's score on the validation split (train when there is none), lower is better."""
    scores = result.scores.get("valid") or result.scores["train"]
    value = scores.get(metric, np.nan)
    return float(value) if metric in LOWER_IS_BETTER else -float(value)
