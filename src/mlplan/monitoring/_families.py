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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.errors import MlplanError
from mlplan.modeling import PredictionKind, Predictions, metrics_for, slice_metrics
from mlplan.monitoring._read import FEATURE, WindowRecords, typed_inputs
from mlplan.monitoring._records import records_slice_masks

__all__ = [
    "QUANTILES",
    "TOP_CATEGORIES",
    "Model",
    "WindowSample",
    "business_family",
    "input_family",
    "ml_families",
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
    """One window's answered records of one package version, as typed columns.

    Per record: ``row_request``, the request it belongs to (0 .. ``requests`` - 1);
    ``labels``, its answer's label as an index into ``names`` (-1: none); ``proba``, its
    class probabilities, a column per class of the model (NaN where none; None for a
    regression); ``values``, a regression's answer (NaN: none); ``truth``, the feedback label
    (an index into ``names``, -1: none; a regression's a number, NaN: none). ``names``: the
    model's classes, then any other label seen, in order. Per request:
    ``feedback_values``, the sum of its feedback values (NaN: none). The product events,
    one per request and name: ``event_request``, ``event_name``, ``event_value`` (summed).
    ``inputs``: the input fields as one table; ``slices``: per slice of the plan, each
    value's records (ascending indices; none for a slice whose columns the records lack)."""

    row_request: np.ndarray
    names: tuple[str, ...]
    labels: np.ndarray
    proba: np.ndarray | None
    values: np.ndarray | None
    truth: np.ndarray
    feedback_values: np.ndarray
    event_request: np.ndarray
    event_name: np.ndarray
    event_value: np.ndarray
    inputs: pa.Table
    slices: Mapping[str, Mapping[str, np.ndarray]]

    @property
    def rows(self) -> int:
        """Records of answered requests."""
        return len(self.row_request)

    @property
    def requests(self) -> int:
        """Answered requests."""
        return len(self.feedback_values)

    def label_text(self, codes: np.ndarray) -> np.ndarray:
        """Label indices (none of them -1) as their names."""
        text: np.ndarray = np.asarray(self.names, dtype=str)[codes]
        return text


def read_sample(window: WindowRecords, model: Model, specs: Sequence[Any]) -> WindowSample:
    """A window's records of one package version (``_read.answered_records``) as a sample,
    read a part at a time into typed columns."""
    regression = model.kind == "regression"
    names = list(model.classes)
    k = len(model.classes)
    parts: dict[str, list[np.ndarray]] = {
        key: []
        for key in (
            "row_request", "labels", "truth", "proba", "values", "feedback_values",
            "event_request", "event_name", "event_value",
        )
    }  # fmt: skip
    inputs: list[pa.Table] = []
    requests = 0
    for records, events in window.parts:
        n = records.num_rows
        encoded = pc.dictionary_encode(records.column("request_id").combine_chunks())
        row_request = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        parts["row_request"].append(row_request + requests)
        if regression:
            parts["truth"].append(_floats(records.column("truth")))
            parts["values"].append(_floats(records.column("value")))
        else:
            labels, truth = np.full(n, -1, np.int32), np.full(n, -1, np.int32)
            _encode(records.column("label"), names, labels)
            _encode(records.column("truth"), names, truth)
            parts["labels"].append(labels)
            parts["truth"].append(truth)
            flat = pc.list_flatten(records.column("proba").combine_chunks())
            parts["proba"].append(_floats(flat).reshape(n, k) if k else np.zeros((n, 0)))
        values = np.full(len(encoded.dictionary), np.nan)
        first = records.column("pos").to_numpy(zero_copy_only=False) == 1
        values[row_request[first]] = _floats(records.column("feedback_value"))[first]
        parts["feedback_values"].append(values)
        found = pc.index_in(events.column("request_id"), value_set=encoded.dictionary)
        parts["event_request"].append(
            found.to_numpy(zero_copy_only=False).astype(np.int64) + requests
        )
        parts["event_name"].append(
            events.column("name").to_numpy(zero_copy_only=False).astype(object)
        )
        parts["event_value"].append(_floats(events.column("value")))
        features = records.select([c for c in records.column_names if c.startswith(FEATURE)])
        # Copied into one chunk of Arrow's own memory: a column of DuckDB's answer keeps its
        # whole answer alive (every column of every batch), and a slice's take over a few
        # chunks is a gather, over thousands a search per row.
        features = features.rename_columns([c[len(FEATURE) :] for c in features.column_names])
        inputs.append(features.combine_chunks())
        requests += len(encoded.dictionary)
        del records, events, encoded, features
    joined = {key: np.concatenate(found) if found else np.zeros(0) for key, found in parts.items()}
    n = len(joined["row_request"])
    table = typed_inputs(pa.concat_tables(inputs), window.fields) if inputs else pa.table({})
    return WindowSample(
        joined["row_request"].astype(np.int64),
        tuple(names),
        np.full(n, -1, np.int32) if regression else joined["labels"].astype(np.int32),
        None if regression else joined["proba"].reshape(n, k),
        joined["values"] if regression else None,
        joined["truth"],
        joined["feedback_values"],
        joined["event_request"].astype(np.int64),
        joined["event_name"].astype(object),
        joined["event_value"],
        table,
        records_slice_masks(table, specs, rows=True),
    )


def _floats(column: Any) -> np.ndarray:
    """A column of numbers as float64, NaN for null."""
    return np.asarray(
        pc.fill_null(pc.cast(column, pa.float64()), np.nan).to_numpy(zero_copy_only=False),
        dtype=np.float64,
    )


def _encode(column: Any, names: list[str], out: np.ndarray) -> None:
    """Text labels as indices into ``names`` (which takes the ones it lacks), into ``out``
    (-1 stays where there is none)."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    mapping = np.empty(len(encoded.dictionary), dtype=np.int32)
    for i, name in enumerate(encoded.dictionary.to_pylist()):
        if name not in names:
            names.append(name)
        mapping[i] = names.index(name)
    codes = encoded.indices
    present = pc.is_valid(codes).to_numpy(zero_copy_only=False)
    out[present] = mapping[codes.drop_null().to_numpy(zero_copy_only=False)]


def _quantiles(values: np.ndarray) -> dict[str, float] | None:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None
    found = np.quantile(finite, QUANTILES)
    return {f"p{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, found, strict=True)}


def _requests(sample: WindowSample, rows: np.ndarray) -> np.ndarray:
    """The requests the records ``rows`` belong to, in order (the records are read a request
    at a time, so their requests run in order and one pass finds each once)."""
    found: np.ndarray = sample.row_request[rows]
    if len(found) < 2:
        return found
    if (found[1:] < found[:-1]).any():  # not in order: sort
        ordered: np.ndarray = np.unique(found)
        return ordered
    first: np.ndarray = found[np.concatenate(([True], found[1:] != found[:-1]))]
    return first


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
        table = sample.inputs
        if len(rows) != sample.rows:  # a slice's records
            table = table.take(pa.array(rows, pa.int64()))
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
        codes = sample.labels[rows]
        given = codes[codes >= 0]
        out["null_rate"] = float(np.mean(codes < 0)) if len(rows) else None
        counts = np.bincount(given, minlength=len(sample.names))
        seen = [sample.names[i] for i in range(len(model.classes), len(counts)) if counts[i]]
        out["class_shares"] = {
            k: float(counts[sample.names.index(k)] / len(given)) if len(given) else None
            for k in [*model.classes, *sorted(seen)]
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
    out["events"] = {
        name: {"rate": found / len(requests), "requests": found, "total": total}
        for name, (found, total) in _events(sample, requests).items()
    }
    return out


def _events(sample: WindowSample, requests: np.ndarray) -> dict[str, tuple[int, float]]:
    """Per product event on the ``requests``: how many had it, and its summed value."""
    mine = np.isin(sample.event_request, requests)
    out: dict[str, tuple[int, float]] = {}
    for name in sorted(set(sample.event_name[mine])):
        chosen = mine & (sample.event_name == name)
        out[str(name)] = (int(chosen.sum()), float(sample.event_value[chosen].sum()))
    return out


# -- ML ------------------------------------------------------------------------------------------


def ml_families(
    sample: WindowSample, groups: Sequence[tuple[str, np.ndarray]], model: Model
) -> list[dict[str, Any]]:
    """For each group of records (its name and ``rows``): the plan's ML metrics (every one
    of the engine when it names none) on its records that have a feedback label and an
    answer, computed by the engine ``evaluate`` uses, every group in one pass of it;
    ``labelled``: how many."""
    found = _labelled(sample, model)
    if found is None:
        return [{"labelled": 0, "metrics": {}} for _ in groups]
    labelled, data = found
    members = []
    for _, rows in groups:
        member = np.zeros(sample.rows, dtype=bool)
        member[rows] = True
        members.append(member[labelled])
    known = metrics_for(model.kind, with_proba=data.proba is not None)
    wanted = [m for m in model.ml_metrics if m in known] or [m for m in known if m != "count"]
    try:
        report = slice_metrics(
            data, groups={str(i): m for i, m in enumerate(members)}, metrics=wanted
        )
    except MlplanError as error:  # labels the engine cannot take
        return [
            {"labelled": int(m.sum()), "metrics": {}, "note": str(error)} if m.any() else
            {"labelled": 0, "metrics": {}}
            for m in members
        ]  # fmt: skip
    out = []
    for i, member in enumerate(members):
        count = int(member.sum())
        metrics = report.by_group[str(i)] if count else {}
        out.append(
            {
                "labelled": count,
                "metrics": {
                    n: (float(e.value) if np.isfinite(e.value) else None)
                    for n, e in metrics.items()
                    if n != "count"
                },
            }
        )
    return out


def _labelled(sample: WindowSample, model: Model) -> tuple[np.ndarray, Predictions] | None:
    """The records with a feedback label and an answer (their indices), as the metric engine
    takes predictions (None when there are none)."""
    truth = sample.truth
    if sample.values is not None:
        labelled = np.flatnonzero(np.isfinite(truth) & np.isfinite(sample.values))
        if not len(labelled):
            return None
        return labelled, Predictions.from_arrays(
            truth[labelled], sample.values[labelled], kind="regression"
        )
    labelled = np.flatnonzero((truth >= 0) & (sample.labels >= 0))
    if not len(labelled):
        return None
    proba = None
    if sample.proba is not None:
        chosen = sample.proba[labelled]
        proba = None if np.isnan(chosen).any() else chosen
    return labelled, Predictions.from_arrays(
        sample.label_text(truth[labelled]),
        sample.label_text(sample.labels[labelled]),
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
    mine = np.isin(sample.event_request, requests)
    for name in model.business_metrics:
        metrics[name] = _totals(sample.event_value[mine & (sample.event_name == name)])
    out["metrics"] = metrics
    return out


def _totals(values: np.ndarray) -> dict[str, Any]:
    return {
        "sum": float(values.sum()) if values.size else None,
        "mean": float(values.mean()) if values.size else None,
        "count": int(values.size),
    }
