"""One training job — a family, its hyperparameters and a seed on prepared data — run the same
way in this process or on a Ray worker: fit, score every split, export, check parity."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlplan.core import LOWER_IS_BETTER
from mlplan.errors import DataError
from mlplan.features import FittedFeatures, prepend_features
from mlplan.modeling._families import FAMILIES, family_named
from mlplan.modeling._features import FeatureSet
from mlplan.modeling._inputs import TrainingData
from mlplan.modeling._networks import Device
from mlplan.modeling._package import Fitted, check_parity, parity_rows
from mlplan.modeling._tabular import fit_estimator, score_predictions

__all__ = ["TRAINING_THRESHOLD", "Job", "JobResult", "run_job", "validation_score"]

# A binary model's labels as trained: the positive class where its probability reaches this.
# It is the package's recorded threshold until an evaluation records another.
TRAINING_THRESHOLD = 0.5


@dataclass(frozen=True)
class Job:
    """A family to fit: its hyperparameters, seed, whether a pretrained backbone stays frozen,
    whether to export and check a package (tuning trials do not), and where a PyTorch family
    trains (``modeling.device``; the tabular families ignore it)."""

    family: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict)
    frozen: bool = False
    export: bool = True
    device: Device = "auto"


@dataclass
class JobResult:
    """What a job hands back to the driver, which registers it: ``device``, where it trained
    (``cpu``, ``cuda:0 (its name)``), and ``device_note``, why not where the plan asked."""

    job: Job
    params: dict[str, Any]
    scores: dict[str, dict[str, float]]
    graph: bytes | None
    native: dict[str, bytes]
    parity: dict[str, Any]
    seconds: float
    device: str = "cpu"
    device_note: str | None = None


def _fit(data: TrainingData, job: Job) -> Fitted:
    family = family_named(job.family)
    if family.network is not None:
        return family.network(
            data, job.seed, job.params, frozen=job.frozen, export=job.export, device=job.device
        )
    return fit_estimator(data, job.family, job.seed, job.params, export=job.export)


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
    derived = data.spec.get("derived")
    if fitted.graph is not None and derived:
        # The derived features' nodes in front: the package takes the raw columns, and
        # parity below feeds it those, against the model trained on DuckDB's features.
        order = FeatureSet.from_spec(data.spec).inputs.columns
        fitted.graph = prepend_features(
            fitted.graph, FittedFeatures.from_dict(derived), order=order
        )
    # The splits are scored, and the package's parity checked, on two threads: sorting
    # scores, counting and ONNX Runtime run mostly without the GIL.
    with ThreadPoolExecutor(max_workers=2) as pool:
        scoring = {
            split: pool.submit(
                score_predictions, data.kind, data.y[split], predicted, proba, data.classes
            )
            for split, (predicted, proba) in fitted.predictions.items()
            if len(data.y[split])
        }
        parity: dict[str, Any] = {}
        if fitted.graph is not None:
            check = "test" if len(data.y["test"]) else "train"
            parity = _parity(data, fitted, check, job.seed)
        scores = {
            split: done.result() | {"rows": len(data.y[split])} for split, done in scoring.items()
        }
    for split in scores:
        if len(data.classes) == 2:
            scores[split]["threshold"] = TRAINING_THRESHOLD
    if fitted.graph is not None and not parity["passed"]:
        raise DataError(_parity_failed(data, job, check, parity))
    return JobResult(
        job,
        fitted.params,
        scores,
        fitted.graph,
        fitted.native,
        parity,
        seconds,
        fitted.device,
        fitted.device_note,
    )


def _parity(data: TrainingData, fitted: Fitted, split: str, seed: int) -> dict[str, Any]:
    """Parity on the rows of ``split`` worth checking (:func:`parity_rows`): ``checked`` says
    how many and why; ``differing`` holds positions in the whole split."""
    assert fitted.graph is not None
    predicted, proba = fitted.predictions[split]
    x = data.x[split]
    values = (
        {name: x[name].to_numpy(dtype=np.float32) for name in fitted.thresholds}
        if fitted.thresholds
        else None
    )
    chosen = parity_rows(
        len(predicted), proba=proba, values=values, thresholds=fitted.thresholds, seed=seed
    )
    rows = chosen.rows
    every = len(rows) == len(predicted)
    parity = check_parity(
        fitted.graph,
        data.feeds(split, None if every else rows),
        data.kind,
        predicted if every else predicted[rows],
        None if proba is None else proba if every else proba[rows],
    )
    if "differing" in parity:
        parity["differing"] = [int(rows[i]) for i in parity["differing"]]
    return parity | {"checked": chosen.counts}


def _parity_failed(data: TrainingData, job: Job, split: str, parity: dict[str, Any]) -> str:
    """Why a package is not registered, which rows show it, and what to do instead (training
    the same family again gives the same package)."""
    rows = [int(data.rows[split][i]) for i in parity["differing"]]
    shown = ", ".join(map(str, rows[:5])) + (" …" if len(rows) > 5 else "")
    others = [
        name
        for name, family in FAMILIES.items()
        if name != job.family and (data.spec["kind"], data.kind) in family.fits
    ]
    instead = f"train another family (mlplan train --family {others[0]})" if others else ""
    if job.params:
        set_here = ", ".join(f"{k}: {v}" for k, v in sorted(job.params.items()))
        instead += (" or " if instead else "") + f"train without the hyperparameters ({set_here})"
    labels = f", {parity['label_mismatches']} labels" if "label_mismatches" in parity else ""
    counts = parity.get("checked", {})
    checked = (
        f" checked (a sample of {counts['sampled']:,} and the rows near a decision or split "
        f"threshold, of {counts['of']:,})"
        if counts.get("of", parity["rows"]) > parity["rows"]
        else ""
    )
    return (
        f"the ONNX package of this {job.family} model answers differently from the trained "
        f"model on {len(rows)} of {parity['rows']:,} {split} rows{checked} (rows {shown} of the "
        "dataset "
        f"version, counted from 0; max difference {parity['max_abs_diff']:.2e}{labels}), "
        f"so it is not registered: it would not "
        f"serve the model that was measured. Training it again gives the same package: "
        f"{instead + ', and ' if instead else ''}report it as a bug in mlplan with those rows"
    )


def validation_score(result: JobResult, metric: str) -> float:
    """A trial's score on the validation split (train when there is none), lower is better."""
    scores = result.scores.get("valid") or result.scores["train"]
    value = scores.get(metric, np.nan)
    return float(value) if metric in LOWER_IS_BETTER else -float(value)
