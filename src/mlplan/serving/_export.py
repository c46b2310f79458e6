"""``mlplan export MODEL --target edge``: the package with its weights quantized to int8
(ONNX Runtime's dynamic quantization), measured against the original on the test split:
the metric and latency deltas and the size, checked against the plan's size limit."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow.compute as pc

from mlplan._optional import require
from mlplan.data import get_split, load_split
from mlplan.errors import MlplanError, UsageError
from mlplan.modeling import (
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

__all__ = ["export_model"]

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


def export_model(
    ws: Workspace, model: str, *, target: Target = "edge", out: str | Path | None = None
) -> dict[str, Any]:
    """Build ``model`` for ``target`` into ``out`` (default ``exports/MODEL-TARGET``), check
    it on the test split, and record the result.

    Raises
    ------
    UsageError
        An unknown target, or a browser build of a model that takes tensors.
    """

    if target not in {"edge", "browser"}:
        raise UsageError(f"--target must be edge or browser; got {target!r}")
    if target == "browser":
        return _export_browser(ws, model, out)
    ort = require("onnxruntime", extra="serving", purpose="mlplan export")
    quantization = require("onnxruntime.quantization", extra="serving", purpose="int8 quantization")
    info = get_model(ws, model)
    graph = ws.store.artifacts.path(info.package["model.onnx"]).read_bytes()
    folder = ws.resolve(out) if out is not None else ws.root / "exports" / f"{model}-{target}"
    folder.mkdir(parents=True, exist_ok=True)
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
        quantized = quantized_path.read_bytes()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    original = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    small = ort.InferenceSession(quantized, options, providers=["CPUExecutionProvider"])

    split_info = get_split(ws, info.split)
    data_info, table, codes = load_split(ws, split_info)
    column = table.column(target_column(ws, data_info))
    kind = "classification" if data_info.format == "images" else target_kind(ws.plan.task, column)

    known = ~np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False))
    rows = example_rows(info.features, table, codes, known)["test"]
    feeds = feeds_for(info.features, inputs_for(ws, data_info, table, info.features, rows))
    y = target_values(column, kind)[rows]
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
    primary = ws.plan.metrics.primary_metric
    metric = (
        primary.name
        if primary is not None and primary.name in before
        else ("mae" if kind == "regression" else "accuracy")
    )
    lower = metric in {"mae", "rmse", "log_loss", "brier"}
    drop = (after[metric] - before[metric]) if lower else (before[metric] - after[metric])
    size_mb = len(quantized) / 2**20
    limit = ws.plan.deployment.compute.max_model_mb
    latency_before = _latency_ms(original, feeds)
    latency_after = _latency_ms(small, feeds)
    (folder / "model.int8.onnx").write_bytes(quantized)
    for name in ("signature.json", "metadata.json"):
        (folder / name).write_bytes(ws.store.artifacts.path(info.package[name]).read_bytes())
    passed = drop <= MAX_METRIC_DROP and (limit is None or size_mb <= limit)
    report: dict[str, Any] = {
        "model": model,
        "target": target,
        "folder": ws.relative(folder),
        "rows": len(rows),
        "metric": metric,
        "before": before,
        "after": after,
        "metric_drop": drop,
        "max_metric_drop": MAX_METRIC_DROP,
        "size_mb_before": len(graph) / 2**20,
        "size_mb_after": size_mb,
        "max_model_mb": limit,
        "latency_ms_before": latency_before,
        "latency_ms_after": latency_after,
        "passed": passed,
    }
    report["summary"] = (
        f"edge: int8 build of {model}, {size_mb * 1024:,.0f} KB (was "
        f"{len(graph) / 1024:,.0f} KB), {metric} {after[metric]:.4f} (was {before[metric]:.4f}), "
        f"single-row {latency_after:.3f} ms (was {latency_before:.3f} ms)"
    )
    (folder / "report.json").write_text(json.dumps(report, indent=1))
    report["run_id"] = record_report(ws, f"export_{target}", "export", report, info)
    return report


def _export_browser(ws: Workspace, model: str, out: str | Path | None) -> dict[str, Any]:
    """The static site, checked in headless Chromium against ONNX Runtime on test rows."""

    info = get_model(ws, model)
    served = load_served_model(ws, model)
    folder = ws.resolve(out) if out is not None else ws.root / "exports" / f"{model}-browser"
    graph = ws.store.artifacts.path(info.package["model.onnx"]).read_bytes()
    version = build_browser_site(folder, graph, served.signature, served.metadata, model)
    split_info = get_split(ws, info.split)
    data_info, table, codes = load_split(ws, split_info)
    column = table.column(target_column(ws, data_info))
    known = ~np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False))
    rows = example_rows(info.features, table, codes, known)["test"][:200]
    frame = inputs_for(ws, data_info, table, info.features, rows)
    records = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]
    labels, proba = served.run(feeds_for(info.features, frame))
    report: dict[str, Any] = {
        "model": model,
        "target": "browser",
        "folder": ws.relative(folder),
        "onnxruntime_web": version,
        "rows": len(records),
    }
    try:
        page = check_in_chromium(folder, records)
    except MlplanError as exc:
        report |= {"checked": False, "passed": False, "reason": str(exc)}
        report["summary"] = f"browser: built with onnxruntime-web {version}; not checked: {exc}"
    else:
        agreement = compare(page, labels, proba)
        passed = agreement["labels_equal"] and agreement["max_abs_diff"] <= 1e-5
        report |= {"checked": True, "passed": passed, **agreement}
        report["summary"] = (
            f"browser: {model} with onnxruntime-web {version}, checked in headless Chromium on "
            f"{len(records)} test rows (largest difference {agreement['max_abs_diff']:.1e}, labels "
            f"{'equal' if agreement['labels_equal'] else 'differ'})"
        )
    (folder / "report.json").write_text(json.dumps(report, indent=1))
    report["run_id"] = record_report(ws, "export_browser", "export", report, info)
    return report
