from __future__ import annotations

import json

import onnxruntime as ort
import pytest
from tests.serving.conftest import edit_plan

from mlplan.checklist import status
from mlplan.errors import UsageError
from mlplan.serving import export_model, latest_report
from mlplan.workspace import Workspace


def test_an_edge_build_is_quantized_measured_and_recorded(served: Workspace) -> None:
    edit_plan(served, "  target: cloud", "  target: edge")
    assert status(served).get("deploy.target").next_step == "mlplan export logistic-1 --target edge"
    report = export_model(served, "logistic-1", target="edge")
    folder = served.root / "exports" / "logistic-1-edge"
    assert sorted(p.name for p in folder.iterdir()) == [
        "metadata.json",
        "model.int8.onnx",
        "report.json",
        "signature.json",
    ]
    ort.InferenceSession(str(folder / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    assert report["rows"] > 0 and report["metric"] == "roc_auc"
    assert report["metric_drop"] <= report["max_metric_drop"] and report["passed"]
    assert report["latency_ms_after"] > 0 and report["size_mb_after"] > 0
    assert json.loads((folder / "report.json").read_text())["metric"] == "roc_auc"
    assert latest_report(served, "export_edge", "logistic-1") is not None
    item = status(served).get("deploy.target")
    assert item.state == "done" and item.evidence.startswith("edge: int8 build of logistic-1")


def test_a_build_over_the_size_limit_fails_and_browser_is_not_built_yet(
    served: Workspace,
) -> None:
    edit_plan(
        served,
        "compute: {cpus: 2, gpus: 0, memory_gb: 2}",
        "compute: {cpus: 2, max_model_mb: 0.000001}",
    )
    assert not export_model(served, "logistic-1")["passed"]
    with pytest.raises(UsageError, match=r"--target browser is not built yet"):
        export_model(served, "logistic-1", target="browser")
