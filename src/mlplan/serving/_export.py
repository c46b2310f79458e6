"""``mlplan export MODEL --target edge``: the package with its weights quantized to int8
(ONNX Runtime's dynamic quantization), measured against the original on the test split:
the metric and latency deltas and the size, checked against the plan's size limit."""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import numpy as np
import pyarrow.compute as pc

from mlplan._optional import require
from mlplan.core import LOWER_IS_BETTER
from mlplan.data import DatasetVersionInfo, get_split, load_split
from mlplan.errors import MlplanError, ParameterError
from mlplan.modeling import (
    ModelInfo,
    example_rows,
    feeds_for,
    get_model,
    inputs_for,
    score_predictions,
    target_column,
    target_kind,
    target_values,
)
from mlplan.serving._browser import build_browser_site, check_in_chromium, compare
from mlplan.serving._model import load_served_model
from mlplan.serving._records import record_report
from mlplan.workspace import Workspace

__all__ = ["BrowserExportReport", "EdgeExportReport", "export_model"]

Target = Literal["edge", "browser"]
MAX_METRIC_DROP = 0.01
"""An edge build may lose at most this much of the primary metric (absolute)."""


def _latency_ms(session: Any, feeds: dict[str, np.ndarray], calls: int = 200) -> float:
    one = {k: v[:1] for k, v in feeds.items()}
    for _ in range(20):
        session.run(None, one)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        session.run(None, one)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


@dataclass(frozen=True)
class EdgeExportReport:
    """An edge build: the int8 model against the original on the test split."""

    model: str
    target: str  # "edge"
    folder: str
    rows: int
    metric: str
    before: dict[str, float]
    after: dict[str, float]
    metric_drop: float
    max_metric_drop: float
    size_mb_before: float
    size_mb_after: float
    max_model_mb: float | None
    latency_ms_before: float
    latency_ms_after: float
    passed: bool
    summary: str
    run_id: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (``report.json`` and the stored report, with the run)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return out | {"before": dict(self.before), "after": dict(self.after)}


@dataclass(frozen=True)
class BrowserExportReport:
    """A browser build: the static site, checked in headless Chromium against ONNX Runtime."""

    model: str
    target: str  # "browser"
    folder: str
    onnxruntime_web: str
    rows: int
    checked: bool
    passed: bool
    summary: str
    run_id: str
    reason: str | None = None  # why it was not checked
    max_abs_diff: float | None = None  # when checked: the largest difference, and
    labels_equal: bool | None = None  # whether every label agrees

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (``report.json`` and the stored report, with the run)."""
        out: dict[str, Any] = {
            "model": self.model,
            "target": self.target,
            "folder": self.folder,
            "onnxruntime_web": self.onnxruntime_web,
            "rows": self.rows,
            "checked": self.checked,
            "passed": self.passed,
        }
        if self.checked:
            out |= {"max_abs_diff": self.max_abs_diff, "labels_equal": self.labels_equal}
        else:
            out["reason"] = self.reason
        return out | {"summary": self.summary, "run_id": self.run_id}


@overload
def export_model(
    ws: Workspace,
    model: str,
    *,
    target: Literal["edge"] = "edge",
    out: str | Path | None = None,
) -> EdgeExportReport: ...


@overload
def export_model(
    ws: Workspace, model: str, *, target: Literal["browser"], out: str | Path | None = None
) -> BrowserExportReport: ...


def export_model(
    ws: Workspace, model: str, *, target: Target = "edge", out: str | Path | None = None
) -> EdgeExportReport | BrowserExportReport:
    """Build ``model`` for ``target`` into ``out`` (default ``exports/MODEL-TARGET``), check
    it on the test split, and record the result.

    Raises
    ------
    ParameterError
        An unknown target, or a browser build of a model that takes tensors.
    """

    if target not in {"edge", "browser"}:
        raise ParameterError("target", f"{{param}} must be edge or browser; got {target!r}")
    folder = ws.resolve(out) if out is not None else ws.root / "exports" / f"{model}-{target}"
    if target == "browser":
        return _export_browser(ws, model, folder)
    return _export_edge(ws, model, folder)


_Report = TypeVar("_Report", EdgeExportReport, BrowserExportReport)


def _recorded(ws: Workspace, report: _Report, info: ModelInfo, folder: Path) -> _Report:
    """``report`` with its run: written to ``folder/report.json`` and kept in the store."""
    kept = report.to_dict()
    del kept["run_id"]
    (folder / "report.json").write_text(json.dumps(kept, indent=1))
    run_id = record_report(ws, f"export_{report.target}", "export", kept, info)
    return dataclasses.replace(report, run_id=run_id)


class _TestRows:
    """The rows of the model's test split with a known target, as the model takes them."""

    def __init__(self, ws: Workspace, info: ModelInfo) -> None:
        loaded = load_split(ws, get_split(ws, info.split))
        data_info, table, codes = loaded.info, loaded.table, loaded.codes
        self.data_info: DatasetVersionInfo = data_info
        self.table = table
        self.column = table.column(target_column(ws, data_info))
        known = ~np.asarray(pc.is_null(self.column).to_numpy(zero_copy_only=False))
        self.rows: np.ndarray = example_rows(info.features, table, codes, known)["test"]

    def inputs(self, ws: Workspace, info: ModelInfo, rows: np.ndarray) -> Any:
        """The model's inputs for ``rows`` (a frame for tabular models)."""
        return inputs_for(ws, self.data_info, self.table, info.features, rows)


def _quantized(graph: bytes) -> bytes:
    """``graph`` with its weights quantized to int8 (ONNX Runtime's dynamic quantization)."""
    quantization = require("onnxruntime.quantization", extra="serving", purpose="int8 quantization")
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "model.onnx"
        source.write_bytes(graph)
        quantized_path = Path(scratch) / "model.int8.onnx"
        # The quantizer logs a suggestion on the root logger at every call; not for users.
        logging.disable(logging.WARNING)
        try:
            quantization.quantize_dynamic(
                source, quantized_path, weight_type=quantization.QuantType.QInt8
            )
        finally:
            logging.disable(logging.NOTSET)
        return quantized_path.read_bytes()


def _export_edge(ws: Workspace, model: str, folder: Path) -> EdgeExportReport:
    """The int8 build, measured against the original on the test split."""
    ort = require("onnxruntime", extra="serving", purpose="mlplan export")
    require("onnxruntime.quantization", extra="serving", purpose="int8 quantization")
    info = get_model(ws, model)
    graph = ws.store.artifacts.path(info.package["model.onnx"]).read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    quantized = _quantized(graph)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    original = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    small = ort.InferenceSession(quantized, options, providers=["CPUExecutionProvider"])

    test = _TestRows(ws, info)
    data_info = test.data_info
    kind = (
        "classification" if data_info.format == "images" else target_kind(ws.plan.task, test.column)
    )
    feeds = feeds_for(info.features, test.inputs(ws, info, test.rows))
    y = target_values(test.column, kind)[test.rows]
    metadata = json.loads(ws.store.artifacts.path(info.package["metadata.json"]).read_text())
    classes = [str(c) for c in metadata.get("classes") or []]

    def scores(session: Any) -> dict[str, float]:
        outputs = session.run(None, feeds)
        if kind == "regression":
            predicted = np.asarray(outputs[0], dtype=np.float64).ravel()
            return score_predictions(kind, y, predicted, None, [])
        labels = np.asarray(outputs[0]).ravel().astype(str).astype(object)
        return score_predictions(kind, y, labels, np.asarray(outputs[1]), classes)

    before, after = scores(original), scores(small)
    metric = _compared_metric(ws, kind, before)
    lower = metric in LOWER_IS_BETTER  # a drop is positive when the int8 model is worse
    drop = (after[metric] - before[metric]) if lower else (before[metric] - after[metric])
    size_mb = len(quantized) / 2**20
    limit = ws.plan.deployment.compute.max_model_mb
    latency_before = _latency_ms(original, feeds)
    latency_after = _latency_ms(small, feeds)
    (folder / "model.int8.onnx").write_bytes(quantized)
    for name in ("signature.json", "metadata.json"):
        (folder / name).write_bytes(ws.store.artifacts.path(info.package[name]).read_bytes())
    report = EdgeExportReport(
        model=info.name,
        target="edge",
        folder=ws.relative(folder),
        rows=len(test.rows),
        metric=metric,
        before=before,
        after=after,
        metric_drop=drop,
        max_metric_drop=MAX_METRIC_DROP,
        size_mb_before=len(graph) / 2**20,
        size_mb_after=size_mb,
        max_model_mb=limit,
        latency_ms_before=latency_before,
        latency_ms_after=latency_after,
        passed=drop <= MAX_METRIC_DROP and (limit is None or size_mb <= limit),
        summary=(
            f"edge: int8 build of {model}, {size_mb * 1024:,.0f} KB (was "
            f"{len(graph) / 1024:,.0f} KB), {metric} {after[metric]:.4f} (was "
            f"{before[metric]:.4f}), single-row {latency_after:.3f} ms (was "
            f"{latency_before:.3f} ms)"
        ),
        run_id="",
    )
    return _recorded(ws, report, info, folder)


def _compared_metric(ws: Workspace, kind: str, scores: dict[str, float]) -> str:
    """The plan's primary metric where it was scored, else MAE or accuracy."""
    primary = ws.plan.metrics.primary_metric
    if primary is not None and primary.name in scores:
        return primary.name
    return "mae" if kind == "regression" else "accuracy"


def _export_browser(ws: Workspace, model: str, folder: Path) -> BrowserExportReport:
    """The static site, checked in headless Chromium against ONNX Runtime on test rows."""

    info = get_model(ws, model)
    served = load_served_model(ws, model)
    graph = ws.store.artifacts.path(info.package["model.onnx"]).read_bytes()
    version = build_browser_site(folder, graph, served.signature, served.metadata, model)
    test = _TestRows(ws, info)
    frame = test.inputs(ws, info, test.rows[:200])
    records = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]
    labels, proba = served.run(feeds_for(info.features, frame))
    try:
        page = check_in_chromium(folder, records)
    except MlplanError as exc:
        reason: str | None = str(exc)
        summary = f"browser: built with onnxruntime-web {version}; not checked: {exc}"
        agreement: dict[str, Any] = {"max_abs_diff": None, "labels_equal": None}
    else:
        reason = None
        agreement = compare(page, labels, proba)
        summary = (
            f"browser: {model} with onnxruntime-web {version}, checked in headless Chromium on "
            f"{len(records)} test rows (largest difference {agreement['max_abs_diff']:.1e}, "
            f"labels {'equal' if agreement['labels_equal'] else 'differ'})"
        )
    report = BrowserExportReport(
        model=info.name,
        target="browser",
        folder=ws.relative(folder),
        onnxruntime_web=version,
        rows=len(records),
        checked=reason is None,
        passed=reason is None and agreement["labels_equal"] and agreement["max_abs_diff"] <= 1e-5,
        summary=summary,
        run_id="",
        reason=reason,
        max_abs_diff=agreement["max_abs_diff"],
        labels_equal=agreement["labels_equal"],
    )
    return _recorded(ws, report, info, folder)
