"""What every model package shares, whatever built it: the graph's outputs (``label`` and
``probabilities`` for classifiers, one value per row for regression), running it with ONNX
Runtime, and the parity check against the trained model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlplan._optional import require

__all__ = [
    "PARITY_SAMPLE",
    "PARITY_TOLERANCE",
    "Fitted",
    "ParityRows",
    "add_label_output",
    "check_parity",
    "parity_rows",
    "run_graph",
]

PARITY_TOLERANCE = 1e-4
PARITY_SAMPLE = 20_000
"""Parity runs on a seeded sample of at most this many rows of the split, plus the rows where
a package is likeliest to differ (:func:`parity_rows`)."""
PARITY_NEAR_ROWS = 80_000
"""At most this many rows near a decision or split threshold join the sample (a seeded share of
them when more are)."""
BOUNDARY_MARGIN = 1e-3
"""A classifier's row is near its decision boundary when its top two probabilities are within
twice this of each other (a binary probability within this of 0.5)."""
THRESHOLD_ULPS = 2
"""A value is near a tree's split threshold within this many float32 spacings of it: where the
float32 graph and the float64 trained model can send it different ways."""


@dataclass
class Fitted:
    """A trained model as a family hands it back: its own predictions on each split (values,
    or labels and probabilities), its ONNX graph (None when not exported), the files that
    keep the native model for retraining, the hyperparameters it used, and the device it
    was trained on."""

    predictions: dict[str, tuple[np.ndarray, np.ndarray | None]]
    graph: bytes | None
    native: dict[str, bytes]
    params: dict[str, Any]
    thresholds: dict[str, np.ndarray] = field(default_factory=dict)
    """Per numeric input of a tree model, the values its trees split it at (sorted)."""
    device: str = "cpu"
    """Where it was trained: ``cpu``, or a GPU as ``cuda:0 (its name)``."""
    device_note: str | None = None
    """Why it was not trained where the plan asked (a GPU asked for, none there)."""


def _session(graph: bytes) -> Any:
    ort = require("onnxruntime", extra="models", purpose="running ONNX packages")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def run_graph(
    graph: bytes, feeds: dict[str, np.ndarray], kind: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions of a package: values (regression) or labels as strings and probabilities."""
    outputs = _session(graph).run(None, feeds)
    if kind == "regression":
        return np.asarray(outputs[0], dtype=np.float64).ravel(), None
    return np.asarray(outputs[0]).ravel().astype(str).astype(object), np.asarray(outputs[1])


def check_parity(
    graph: bytes,
    feeds: dict[str, np.ndarray],
    kind: str,
    native: np.ndarray,
    native_proba: np.ndarray | None,
) -> dict[str, Any]:
    """Compare a package's outputs with the trained model's: the maximum absolute difference
    (of probabilities, or of values relative to their scale) within ``PARITY_TOLERANCE``,
    and identical labels except where the top two probabilities tie. ``differing``: the
    positions of the rows that break either, when the check fails."""
    predicted, proba = run_graph(graph, feeds, kind)
    if kind == "regression":
        gaps = np.abs(predicted - native)
        diff = float(np.max(gaps)) if len(native) else 0.0
        scale = max(1.0, float(np.abs(native).max())) if len(native) else 1.0
        out: dict[str, Any] = {
            "rows": len(native),
            "max_abs_diff": diff,
            "passed": bool(diff <= PARITY_TOLERANCE * scale),
        }
        return out if out["passed"] else out | _differing(gaps > PARITY_TOLERANCE * scale)
    assert proba is not None and native_proba is not None
    gaps = np.max(np.abs(proba - native_proba), axis=1) if len(native_proba) else np.zeros(0)
    diff = float(np.max(gaps)) if len(native_proba) else 0.0
    top = np.sort(native_proba, axis=1)
    ties = (
        (top[:, -1] - top[:, -2] <= PARITY_TOLERANCE)
        if native_proba.shape[1] > 1
        else np.zeros(len(native_proba), dtype=bool)
    )
    wrong = (predicted != np.asarray(native).astype(str)) & ~ties
    out = {
        "rows": len(native_proba),
        "max_abs_diff": diff,
        "label_mismatches": int(wrong.sum()),
        "passed": bool(diff <= PARITY_TOLERANCE and not wrong.any()),
    }
    return out if out["passed"] else out | _differing((gaps > PARITY_TOLERANCE) | wrong)


@dataclass(frozen=True)
class ParityRows:
    """The rows of a split that parity checks, and why: ``counts`` holds the split's rows
    (``of``), and how many rows were drawn at random (``sampled``), lie near the decision
    boundary (``near_boundary``) or near a split threshold (``near_threshold``); a row may
    be counted under several reasons."""

    rows: np.ndarray
    counts: dict[str, int]


def parity_rows(
    n: int,
    *,
    proba: np.ndarray | None = None,
    values: dict[str, np.ndarray] | None = None,
    thresholds: dict[str, np.ndarray] | None = None,
    seed: int = 0,
    sample: int = PARITY_SAMPLE,
    near: int = PARITY_NEAR_ROWS,
) -> ParityRows:
    """The rows of a split of ``n`` rows worth checking: all of them when there are at most
    ``sample``; else a seeded sample of ``sample`` rows, plus (at most ``near``) every row
    whose probabilities (``proba``) sit near the decision boundary, or whose value of an input
    (``values``) sits within float32 rounding of one of that input's split ``thresholds``.
    These are the rows where a float32 graph and a float64 model can disagree."""
    if n <= sample:
        return ParityRows(np.arange(n), {"of": n, "sampled": n})
    rng = np.random.default_rng(seed)
    drawn = np.zeros(n, dtype=bool)
    drawn[rng.choice(n, sample, replace=False)] = True
    boundary = np.zeros(n, dtype=bool)
    if proba is not None and proba.ndim == 2 and proba.shape[1] > 1:
        top = np.partition(proba, proba.shape[1] - 2, axis=1)[:, -2:]
        boundary = top[:, 1] - top[:, 0] <= 2 * BOUNDARY_MARGIN
    close = np.zeros(n, dtype=bool)
    for name, cuts in (thresholds or {}).items():
        if values is not None and name in values and len(cuts):
            close |= near_threshold(values[name], cuts)
    extra = np.flatnonzero((boundary | close) & ~drawn)
    if len(extra) > near:
        extra = rng.choice(extra, near, replace=False)
    chosen = drawn.copy()
    chosen[extra] = True
    counts = {
        "of": n,
        "sampled": sample,
        "near_boundary": int((boundary & chosen).sum()),
        "near_threshold": int((close & chosen).sum()),
    }
    return ParityRows(np.flatnonzero(chosen), counts)


def near_threshold(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Which ``values`` lie within ``THRESHOLD_ULPS`` float32 spacings of one of the sorted
    ``cuts`` (missing values never do)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    cuts = np.asarray(cuts, dtype=np.float64)
    at = np.clip(np.searchsorted(cuts, x), 1, len(cuts) - 1) if len(cuts) > 1 else None
    if at is None:
        nearest = np.full(len(x), cuts[0])
    else:
        below, above = cuts[at - 1], cuts[at]
        nearest = np.where(np.abs(x - below) <= np.abs(above - x), below, above)
    spacing = np.spacing(np.abs(nearest).astype(np.float32)).astype(np.float64)
    with np.errstate(invalid="ignore"):
        return np.asarray(np.abs(x - nearest) <= THRESHOLD_ULPS * spacing)


def _differing(mask: np.ndarray) -> dict[str, list[int]]:
    """The positions of the rows where a package and its model disagree."""
    return {"differing": [int(i) for i in np.flatnonzero(mask)]}


def add_label_output(graph: bytes, classes: list[str]) -> bytes:
    """Give a graph whose one output holds class probabilities the outputs every classifier
    package has: ``label`` (the most probable class, as a string), then ``probabilities``."""
    onnx = require("onnx", extra="models", purpose="packaging models as ONNX")
    helper = onnx.helper
    model = onnx.load_from_string(graph)
    (proba,) = model.graph.output
    nodes = [
        helper.make_node("Identity", [proba.name], ["probabilities"]),
        helper.make_node("ArgMax", [proba.name], ["label_index"], axis=1, keepdims=0),
        helper.make_node(
            "LabelEncoder",
            ["label_index"],
            ["label"],
            domain="ai.onnx.ml",
            keys_int64s=list(range(len(classes))),
            values_strings=list(classes),
            default_string="",
        ),
    ]
    model.graph.node.extend(nodes)
    del model.graph.output[:]
    model.graph.output.extend(
        [
            helper.make_tensor_value_info("label", onnx.TensorProto.STRING, [None]),
            helper.make_tensor_value_info(
                "probabilities", onnx.TensorProto.FLOAT, [None, len(classes)]
            ),
        ]
    )
    if not any(o.domain == "ai.onnx.ml" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 2))
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
