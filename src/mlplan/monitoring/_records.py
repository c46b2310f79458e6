"""What a prediction log record says, read the one way monitoring and the rollout analysis
both read it: a request's answers (``/v1/predict``'s predictions or an Open Inference
answer's tensors), whether a refusal was the model's failure, its input records as the
masks of the plan's slices, and a package's classes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from mlplan.data import slice_masks, slice_rows
from mlplan.errors import DataError
from mlplan.evaluation import package_metadata
from mlplan.modeling import ModelInfo
from mlplan.workspace import Workspace

__all__ = [
    "Answer",
    "logged_json",
    "logged_number",
    "model_classes",
    "model_failure",
    "read_answers",
    "records_slice_masks",
    "records_table",
]

Answer = tuple[Any, dict[str, float], float]
"""One record's answer: its label (None when null), probabilities by class, value (NaN when
none)."""


def model_failure(status: int, error: Any) -> bool:
    """Whether a refused request is the model's failure: a 5xx, or a 422 that is not the
    validator's summary of the client's mistakes (the model could not score inputs that
    validated).

    Examples
    --------
    >>> model_failure(503, None), model_failure(422, '{"by_type": {}}'), model_failure(404, None)
    (True, False, False)
    """
    if status >= 500:
        return True
    if status != 422:
        return False
    summary = logged_json(error)
    return not (isinstance(summary, dict) and "by_type" in summary)


def read_answers(outputs: Any, own_classes: Sequence[str]) -> list[Answer]:
    """Each record's label, probabilities by class and value, from ``/v1/predict``'s
    predictions or an Open Inference answer's tensors (probabilities in the answering
    model's class order, ``own_classes``).

    Examples
    --------
    >>> read_answers([{"label": "1", "probabilities": {"0": 0.2, "1": 0.8}}], ["0", "1"])
    [('1', {'0': 0.2, '1': 0.8}, nan)]
    """
    if not isinstance(outputs, list):
        return []
    if outputs and isinstance(outputs[0], dict) and "name" in outputs[0] and "data" in outputs[0]:
        return _tensor_answers(outputs, own_classes)
    out = []
    for item in outputs:
        item = item if isinstance(item, dict) else {}
        proba = item.get("probabilities")
        out.append(
            (
                None if item.get("label") is None else str(item["label"]),
                {str(k): logged_number(v) for k, v in proba.items()}
                if isinstance(proba, dict)
                else {},
                logged_number(item.get("value")),
            )
        )
    return out


def _tensor_answers(tensors: list[dict[str, Any]], own_classes: Sequence[str]) -> list[Answer]:
    named = {t.get("name"): t.get("data") or [] for t in tensors}
    if "value" in named:
        return [(None, {}, logged_number(v)) for v in named["value"]]
    labels = named.get("label", [])
    flat = named.get("probabilities", [])
    k = len(own_classes)
    out = []
    for i, label in enumerate(labels):
        row = flat[i * k : (i + 1) * k] if k else []
        proba = {c: logged_number(p) for c, p in zip(own_classes, row, strict=False)}
        out.append((None if label is None else str(label), proba, np.nan))
    return out


def logged_number(value: Any) -> float:
    """A logged number (null, NaN, or a non-number is NaN)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return float("nan")


def logged_json(text: Any) -> Any:
    """A logged column holding JSON text, parsed (None when it is not JSON; anything not
    text as it is)."""
    if text is None or not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return None


def records_table(records: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Logged input records as one table, a column per field any of them has (a column of
    mixed types as text)."""
    columns = sorted({k for r in records for k in r})
    try:
        return pa.table({c: pa.array([r.get(c) for r in records]) for c in columns})
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # one column of mixed types: as text
        return pa.table(
            {
                c: pa.array([None if r.get(c) is None else str(r.get(c)) for r in records])
                for c in columns
            }
        )


def records_slice_masks(
    records: Sequence[Mapping[str, Any]] | pa.Table, specs: Sequence[Any], *, rows: bool = False
) -> dict[str, dict[str, np.ndarray]]:
    """The masks of each slice over logged input records (``rows``: each value's records as
    ascending indices instead, ``data.slice_rows``); a slice whose columns the records lack
    (not a feature, or hashed as personal data: a hash matches no value) has none."""
    if not specs or not len(records):
        return {}
    table = records if isinstance(records, pa.Table) else records_table(records)
    measure = slice_rows if rows else slice_masks
    out: dict[str, dict[str, np.ndarray]] = {}
    for spec in specs:
        try:
            out[spec.name] = measure(table, spec)
        except DataError:
            out[spec.name] = {}
    return out


def model_classes(ws: Workspace, info: ModelInfo) -> list[str]:
    """A package's classes, from its ``metadata.json`` (none for a regression)."""
    return [str(c) for c in package_metadata(ws, info.package).get("classes") or []]
