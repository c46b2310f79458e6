"""The metric families of one window of one package version, on its answered records and
the feedback about them: inputs, outputs, ML metrics once labels arrive (with the metric
engine ``evaluate`` uses, so the numbers are the same on the same rows), business values.
Each is computed for every record and within each value of the plan's slices (the software
family is the query's, ``_read.py``: a request spans slices).

Feedback on a request is merged in the order it came: the newest label and decision win, a
value and events add up (a purchase's revenue may come in two parts). A label names one
answer, so it counts only for a request of one record.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.errors import MlplanError
from mlplan.modeling import PredictionKind, Predictions, metrics_for, slice_metrics
from mlplan.monitoring._records import (
    logged_json,
    read_answers,
    records_slice_masks,
    records_table,
)

__all__ = [
    "QUANTILES",
    "TOP_CATEGORIES",
    "Model",
    "WindowSample",
    "business_family",
    "input_family",
    "ml_family",
    "output_family",
    "read_sample",
]

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
"""The quantiles of each numeric feature, score and value."""
TOP_CATEGORIES = 20
"""How many of a categorical feature's values are counted by name (the rest as ``(other)``)."""


@dataclass(frozen=True)
class Model:
    """What the families need to know of the answering package and the plan: its kind of
    task, its classes (in order; none for a regression), the positive class of a binary
    one, the plan's ML metrics (empty: every metric of the engine) and business metrics."""

    kind: PredictionKind
    classes: tuple[str, ...]
    positive: str | None
    ml_metrics: tuple[str, ...] = ()
    business_metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class WindowSample:
    """One window's answered records of one package version: per record, the request it
    belongs to (an index into ``request_ids``), its label, class probabilities (NaN when
    none) or value, the feedback label; per request, its feedback value (NaN when none) and
    events (name → summed value); the inputs as one table; the masks of the plan's slices
    over the records."""

    request_ids: np.ndarray
    row_request: np.ndarray
    labels: np.ndarray
    proba: np.ndarray | None
    values: np.ndarray | None
    truth: np.ndarray
    feedback_values: np.ndarray
    events: tuple[Mapping[str, float], ...]
    inputs: pa.Table
    slices: Mapping[str, Mapping[str, np.ndarray]]

    @property
    def rows(self) -> int:
        """Records of answered requests."""
        return len(self.row_request)


def _merged(feedback: Any) -> dict[str, Any]:
    """Every feedback on a request, merged (see the module's notes)."""
    out: dict[str, Any] = {"events": {}}
    for text in feedback or []:
        item = logged_json(text)
        if not isinstance(item, dict):
            continue
        for name in ("label", "decision"):
            if item.get(name) is not None:
                out[name] = item[name]
        if isinstance(item.get("value"), int | float):
            out["value"] = out.get("value", 0.0) + float(item["value"])
        for event in item.get("events") or []:
            if isinstance(event, dict) and isinstance(event.get("name"), str):
                value = event.get("value", 1)
                value = float(value) if isinstance(value, int | float) else 1.0
                out["events"][event["name"]] = out["events"].get(event["name"], 0.0) + value
    return out


def read_sample(
    rows: Iterable[Mapping[str, Any]], model: Model, specs: Sequence[Any]
) -> WindowSample:
    """A window's records (``_read.answered_rows``, one package version's) as a sample."""
    request_ids: list[str] = []
    row_request: list[int] = []
    labels: list[Any] = []
    scores: list[list[float]] = []
    values: list[float] = []
    truth: list[Any] = []
    feedback_values: list[float] = []
    events: list[Mapping[str, float]] = []
    records: list[Mapping[str, Any]] = []
    regression = model.kind == "regression"
    for row in rows:
        index = len(request_ids)
        request_ids.append(row["request_id"])
        feedback = _merged(row.get("feedback"))
        feedback_values.append(float(feedback.get("value", math.nan)))
        events.append(feedback["events"])
        answers = read_answers(logged_json(row["outputs"]), model.classes)
        given = logged_json(row["inputs"])
        one = len(answers) == 1
        for position, (label, proba, value) in enumerate(answers):
            row_request.append(index)
            labels.append(label)
            values.append(value)
            scores.append([proba.get(k, np.nan) for k in model.classes])
            truth.append(feedback.get("label") if one else None)
            record = given[position] if isinstance(given, list) and position < len(given) else {}
            records.append(record if isinstance(record, dict) else {})
    n = len(row_request)
    inputs = records_table(records)
    return WindowSample(
        np.asarray(request_ids, dtype=object),
        np.asarray(row_request, dtype=np.int64),
        np.asarray([None if regression else x for x in labels], dtype=object),
        None if regression else np.asarray(scores, dtype=np.float64).reshape(n, len(model.classes)),
        np.asarray(values, dtype=np.float64) if regression else None,
        np.asarray(
            [None if t is None else (float(t) if regression else str(t)) for t in truth],
            dtype=object,
        ),
        np.asarray(feedback_values, dtype=np.float64),
        tuple(events),
        inputs,
        records_slice_masks(inputs, specs) if n else {},
    )


def _quantiles(values: np.ndarray) -> dict[str, float] | None:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None
    found = np.quantile(finite, QUANTILES)
    return {f"p{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, found, strict=True)}


def _requests(sample: WindowSample, rows: np.ndarray) -> np.ndarray:
    """The requests the records ``rows`` belong to."""
    return np.unique(sample.row_request[rows])


# -- input ---------------------------------------------------------------------------------------


def input_family(
    sample: WindowSample, rows: np.ndarray, reference: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Per feature of the records ``rows``: the missing share; for a number its mean,
    quantiles, least and greatest; for a category its counts (the commonest
    ``TOP_CATEGORIES`` by name); against the training ``reference`` (``{"features": {name:
    {"min": .., "max": ..} | {"categories": [...]}}}``), the share out of the training range
    and the values never seen in training. And the volume: records and requests."""
    known = (reference or {}).get("features", {})
    features: dict[str, Any] = {}
    if len(rows):
        table = sample.inputs.take(pa.array(rows, pa.int64()))
        for name in table.column_names:
            features[name] = _feature(table.column(name), known.get(name))
    return {
        "records": len(rows),
        "requests": len(_requests(sample, rows)),
        "features": features,
    }


def _feature(column: Any, known: Mapping[str, Any] | None) -> dict[str, Any]:
    n = len(column)
    missing = column.null_count
    out: dict[str, Any] = {"missing": missing / n if n else None}
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        numbers = column.to_numpy(zero_copy_only=False).astype(np.float64)
        finite = numbers[np.isfinite(numbers)]
        out["mean"] = float(finite.mean()) if finite.size else None
        out["quantiles"] = _quantiles(numbers)
        out["min"] = float(finite.min()) if finite.size else None
        out["max"] = float(finite.max()) if finite.size else None
        if known is not None and known.get("min") is not None and finite.size:
            outside = (finite < float(known["min"])) | (finite > float(known["max"]))
            out["out_of_range"] = float(outside.mean())
        return out
    try:
        text = column.drop_null().cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # nested values: as their text
        text = pa.array([str(v) for v in column.drop_null().to_pylist()], pa.string())
    counted = pc.value_counts(text).to_pylist()
    counted.sort(key=lambda c: (-c["counts"], c["values"]))
    counts = {c["values"]: int(c["counts"]) for c in counted[:TOP_CATEGORIES]}
    rest = sum(c["counts"] for c in counted[TOP_CATEGORIES:])
    out["counts"] = counts | ({"(other)": int(rest)} if rest else {})
    out["distinct"] = len(counted)
    if known is not None and known.get("categories") is not None:
        seen = {str(c) for c in known["categories"]}
        unseen = {c["values"]: int(c["counts"]) for c in counted if c["values"] not in seen}
        out["unseen"] = dict(sorted(unseen.items(), key=lambda kv: -kv[1])[:TOP_CATEGORIES])
        out["unseen_share"] = sum(unseen.values()) / n if n else None
    return out


# -- output --------------------------------------------------------------------------------------


def output_family(sample: WindowSample, rows: np.ndarray, model: Model) -> dict[str, Any]:
    """The answers of the records ``rows``: the share with no answer (null or abstaining),
    each class's share, the quantiles of the score (a binary model's positive class's
    probability, else the top class's) or of the value; and the product events feedback
    joined to their requests, each as a rate per request and a total."""
    requests = _requests(sample, rows)
    out: dict[str, Any] = {"records": len(rows), "requests": len(requests)}
    if sample.values is not None:
        values = sample.values[rows]
        out["null_rate"] = float(np.mean(~np.isfinite(values))) if len(rows) else None
        out["value_quantiles"] = _quantiles(values)
    else:
        labels = sample.labels[rows]
        answered = np.asarray([x is not None for x in labels], dtype=bool)
        out["null_rate"] = float(np.mean(~answered)) if len(rows) else None
        given = labels[answered]
        classes = [*model.classes, *sorted({str(x) for x in given} - set(model.classes))]
        out["class_shares"] = {
            k: float(np.mean(given == k)) if len(given) else None for k in classes
        }
        if sample.proba is not None and len(rows):
            proba = sample.proba[rows]
            if model.positive is not None and model.positive in model.classes:
                score = proba[:, model.classes.index(model.positive)]
            else:
                score = np.full(len(rows), np.nan)
                known = ~np.isnan(proba).all(axis=1) if proba.shape[1] else score > 0
                score[known] = np.nanmax(proba[known], axis=1)
            out["score_quantiles"] = _quantiles(score)
    totals: dict[str, list[float]] = {}
    for request in requests:
        for name, value in sample.events[request].items():
            totals.setdefault(name, []).append(value)
    out["events"] = {
        name: {
            "rate": len(found) / len(requests),
            "requests": len(found),
            "total": float(sum(found)),
        }
        for name, found in sorted(totals.items())
    }
    return out


# -- ML ------------------------------------------------------------------------------------------


def ml_family(sample: WindowSample, rows: np.ndarray, model: Model) -> dict[str, Any]:
    """The plan's ML metrics (every one of the engine when it names none) on the records of
    ``rows`` that have a feedback label and an answer, computed by the engine ``evaluate``
    uses; ``labelled``: how many."""
    data = _labelled(sample, rows, model)
    if data is None:
        return {"labelled": 0, "metrics": {}}
    known = metrics_for(model.kind, with_proba=data.proba is not None)
    wanted = [m for m in model.ml_metrics if m in known] or [m for m in known if m != "count"]
    try:
        report = slice_metrics(data, metrics=wanted)
    except MlplanError as error:  # labels the engine cannot take
        return {"labelled": data.n, "metrics": {}, "note": str(error)}
    return {
        "labelled": data.n,
        "metrics": {
            n: (float(e.value) if np.isfinite(e.value) else None)
            for n, e in report.overall.items()
            if n != "count"
        },
    }


def _labelled(sample: WindowSample, rows: np.ndarray, model: Model) -> Predictions | None:
    """The records of ``rows`` with a feedback label and an answer, as the metric engine
    takes predictions (None when there are none)."""
    truth = sample.truth[rows]
    labelled = np.asarray([t is not None for t in truth], dtype=bool)
    if sample.values is not None:
        predicted = sample.values[rows]
        labelled &= np.isfinite(predicted)
        if not labelled.any():
            return None
        return Predictions.from_arrays(
            truth[labelled].astype(np.float64), predicted[labelled], kind="regression"
        )
    labels = sample.labels[rows]
    labelled &= np.asarray([x is not None for x in labels], dtype=bool)
    if not labelled.any():
        return None
    proba = None
    if sample.proba is not None:
        chosen = sample.proba[rows][labelled]
        proba = None if np.isnan(chosen).any() else chosen
    return Predictions.from_arrays(
        np.asarray([str(t) for t in truth[labelled]], dtype=object),
        np.asarray([str(x) for x in labels[labelled]], dtype=object),
        kind="binary",  # as evaluate's: the engine tells multiclass by the classes
        proba=proba,
        classes=list(model.classes) or None,
        positive=model.positive,
    )


# -- business ------------------------------------------------------------------------------------


def business_family(sample: WindowSample, rows: np.ndarray, model: Model) -> dict[str, Any]:
    """The business values feedback carried for the requests of ``rows``: its ``value``, and
    each of the plan's business metrics from the events of that name, as sum, mean and
    count (the requests that had one)."""
    requests = _requests(sample, rows)
    out: dict[str, Any] = {"requests": len(requests)}
    values = sample.feedback_values[requests] if len(requests) else np.zeros(0)
    metrics = {"value": _totals(values[np.isfinite(values)])}
    for name in model.business_metrics:
        found = [sample.events[r][name] for r in requests if name in sample.events[r]]
        metrics[name] = _totals(np.asarray(found, dtype=np.float64))
    out["metrics"] = metrics
    return out


def _totals(values: np.ndarray) -> dict[str, Any]:
    return {
        "sum": float(values.sum()) if values.size else None,
        "mean": float(values.mean()) if values.size else None,
        "count": int(values.size),
    }
