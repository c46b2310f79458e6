"""What every model package shares, whatever built it: the graph's outputs (``label`` and
``probabilities`` for classifiers, one value per row for regression), running it with ONNX
Runtime, and the parity check against the trained model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlplan._optional import require

__all__ = ["PARITY_TOLERANCE", "Fitted", "add_label_output", "check_parity", "run_graph"]

PARITY_TOLERANCE = 1e-4


@dataclass
class Fitted:
    """A trained model as a family hands it back: its own predictions on each split (values,
    or labels and probabilities), its ONNX graph (None when not exported), the files that
    keep the native model for retraining, and the hyperparameters it used."""

    predictions: dict[str, tuple[np.ndarray, np.ndarray | None]]
    graph: bytes | None
    native: dict[str, bytes]
    params: dict[str, Any]


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
