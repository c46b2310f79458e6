"""A model package as the server holds it: its bytes checked against the store's hashes,
its signature and metadata read, an ONNX Runtime session made and warmed up. No pickle:
only ``model.onnx`` and the two JSON files are read."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan._optional import require
from mlplan.errors import PackageError
from mlplan.modeling import PackageSignature, get_model
from mlplan.serving._validate import Feeds
from mlplan.workspace import Workspace

__all__ = ["ServedModel", "load_served_model"]


@dataclass
class ServedModel:
    """A loaded package: what the routes need to validate, run and describe it."""

    name: str
    version: str
    signature: PackageSignature
    metadata: dict[str, Any]
    session: Any
    kind: str  # "tabular" | "image" | "window"
    classes: list[str] = field(default_factory=list)
    threshold: float | None = None

    @property
    def is_classifier(self) -> bool:
        """Whether the graph outputs labels and probabilities."""
        return bool(self.classes)

    @property
    def input_names(self) -> list[str]:
        """The graph's inputs, in signature order."""
        return self.signature.names

    def run(self, feeds: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels (after the recorded threshold, for binary models) and probabilities, or
        values for regression."""
        outputs = self._outputs(feeds)
        if not self.is_classifier:
            return np.asarray(outputs[0], dtype=np.float64).ravel(), None
        proba = np.asarray(outputs[1], dtype=np.float64)
        decision = self._decision()
        if decision is None:
            return np.asarray(outputs[0]).ravel().astype(str), proba
        pos, threshold = decision
        decided = proba[:, pos] >= threshold
        return np.where(decided, self.classes[pos], self.classes[1 - pos]), proba

    def run_coded(self, feeds: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`run` with each row's class as its index in :attr:`classes` instead of its
        name (batch scoring: a million names cost more than the model); values and None for
        regression."""

        outputs = self._outputs(feeds)
        if not self.is_classifier:
            return np.asarray(outputs[0], dtype=np.float64).ravel(), None
        proba = np.asarray(outputs[1], dtype=np.float64)
        decision = self._decision()
        if decision is not None:
            pos, threshold = decision
            return np.where(proba[:, pos] >= threshold, pos, 1 - pos), proba
        raw = np.asarray(outputs[0]).ravel()
        names = pa.array(raw if raw.dtype.kind in "OU" else raw.astype(str), pa.string())
        codes = pc.index_in(names, value_set=pa.array(self.classes, pa.string()))
        if codes.null_count:
            raise PackageError(
                f"{self.name} answered a class its metadata does not list ({self.classes})"
            )
        return codes.to_numpy(zero_copy_only=False), proba

    def _outputs(self, feeds: Mapping[str, np.ndarray]) -> list[Any]:
        return list(
            self.session.run(None, feeds.as_dict() if isinstance(feeds, Feeds) else dict(feeds))
        )

    def _decision(self) -> tuple[int, float] | None:
        """The positive class's index and the threshold, when a threshold decides (binary
        models)."""
        if self.threshold is None or len(self.classes) != 2:
            return None
        positive = self.metadata.get("positive_class") or self.classes[1]
        return (self.classes.index(positive) if positive in self.classes else 1), self.threshold

    def example_feeds(self) -> dict[str, np.ndarray]:
        """One valid row, made from the signature (used to warm the session up)."""
        feeds: dict[str, np.ndarray] = {}
        for spec in self.signature.inputs:
            if spec.type == "number":
                low, high = spec.min, spec.max
                value = 0.0 if low is None or high is None else (low + high) / 2
                feeds[spec.name] = np.array([[value]], dtype=np.float32)
            elif spec.type == "string":
                categories = spec.categories or ("",)
                feeds[spec.name] = np.array([[categories[0]]], dtype=object)
            else:
                shape = [1 if d is None else int(d) for d in spec.shape or ()]
                feeds[spec.name] = np.zeros(shape, dtype=np.float32)
        return feeds


def _verified(ws: Workspace, sha256: str, filename: str) -> bytes:
    path = ws.store.artifacts.path(sha256)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        # The reason is public (the ready route): name the file, not where it lives.
        raise PackageError(
            f"{filename} of the package cannot be read from the artifact store "
            f"({exc.strerror}); restore it or retrain"
        ) from None
    digest = hashlib.sha256(blob).hexdigest()
    if digest != sha256:
        raise PackageError(
            f"{filename} is corrupt or truncated: {len(blob):,} bytes hash to {digest[:12]}…, "
            f"the store recorded {sha256[:12]}…; retrain or restore the artifact"
        )
    return blob


def load_served_model(ws: Workspace, name: str) -> ServedModel:
    """Load, verify and warm up the package of model ``name`` (its newest version, or one
    exactly: ``name@version``); the served version is the package's hash.

    Raises
    ------
    PackageError
        A file that is missing, or whose bytes do not hash to what the store recorded, or a
        graph that ONNX Runtime cannot load or run.
    """

    model = get_model(ws, name)
    package = model.package
    graph = _verified(ws, package["model.onnx"], "model.onnx")
    signature = PackageSignature.from_json(
        _verified(ws, package["signature.json"], "signature.json")
    )
    metadata = json.loads(_verified(ws, package["metadata.json"], "metadata.json"))
    ort = require("onnxruntime", extra="serving", purpose="serving models")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own types for a bad graph
        raise PackageError(f"model.onnx does not load: {str(exc).splitlines()[0]}") from None
    inputs = signature.inputs
    kind = "tabular" if inputs and inputs[0].tabular else "other"
    if inputs and inputs[0].type in ("image", "window"):
        kind = inputs[0].type
    classes = [str(c) for c in metadata.get("classes") or []]
    threshold = metadata.get("threshold") if len(classes) == 2 else None
    served = ServedModel(
        name=model.name,
        version=model.package_sha256[:12],
        signature=signature,
        metadata=metadata | {"positive_class": ws.plan.positive_class},
        session=session,
        kind=kind,
        classes=classes,
        threshold=None if threshold is None else float(threshold),
    )
    try:
        served.run(served.example_feeds())
    except Exception as exc:  # a graph that loads but cannot run one row is not ready
        raise PackageError(
            f"model.onnx fails on a warm-up row: {str(exc).splitlines()[0]}"
        ) from None
    return served
