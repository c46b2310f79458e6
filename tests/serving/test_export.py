from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import pytest
from tests.conftest import edit_plan

from mlplan.checklist import status
from mlplan.errors import ParameterError
from mlplan.serving import BrowserExportReport, export_model
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
    assert report.rows > 0 and report.metric == "roc_auc"
    assert report.metric_drop <= report.max_metric_drop and report.passed
    assert report.latency_ms_after > 0 and report.size_mb_after > 0
    written = json.loads((folder / "report.json").read_text())
    assert written["metric"] == "roc_auc"
    stored = served.latest_report("export_edge", where=lambda r: r["model"] == "logistic-1")
    assert stored is not None and stored.report == written
    assert report.to_dict() == written | {"run_id": report.run_id}  # the CLI's JSON, in order
    assert list(report.to_dict()) == [*written, "run_id"]
    item = status(served).get("deploy.target")
    assert item.state == "done" and item.evidence.startswith("edge: int8 build of logistic-1")


def test_a_build_over_the_size_limit_fails(served: Workspace) -> None:
    edit_plan(
        served,
        "compute: {cpus: 2, gpus: 0, memory_gb: 2}",
        "compute: {cpus: 2, max_model_mb: 0.000001}",
    )
    assert not export_model(served, "logistic-1").passed
    with pytest.raises(ParameterError, match=r"'target' must be edge or browser; got 'tv'"):
        export_model(served, "logistic-1", target="tv")  # type: ignore[call-overload]


ORT_WEB = Path(__file__).resolve().parents[2] / "build" / "npm" / "onnxruntime-web-1.30.0.tgz"


@pytest.mark.slow
def test_the_browser_build_predicts_in_chromium_as_the_server_does(
    served: Workspace, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.serving.conftest import RECORD, bearer, started

    from mlplan.serving import ServeConfig, create_app
    from mlplan.serving._browser import check_in_chromium

    assert ORT_WEB.exists(), "make test fetches onnxruntime-web (scripts/system-deps.sh)"
    monkeypatch.setenv("MLPLAN_ORT_WEB", str(ORT_WEB))  # no download at test time
    edit_plan(served, "  target: cloud", "  target: browser")
    report = export_model(served, "logistic-1", target="browser")
    folder = served.root / "exports" / "logistic-1-browser"
    assert report.checked and report.passed, report
    assert {"index.html", "app.js", "model.onnx", "ort.wasm.min.js"} <= {
        p.name for p in folder.iterdir()
    }
    assert "https://" not in (folder / "index.html").read_text() + (folder / "app.js").read_text()
    records = [RECORD, RECORD | {"age": 80, "gender": None}, RECORD | {"region": "east"}]
    page = check_in_chromium(folder, records)
    app = create_app(ServeConfig(root=str(served.root), model="logistic-1", key_refresh_seconds=0))
    with started(app) as client:
        answer = client.post(
            "/v1/predict", json={"records": records}, headers=bearer(tokens["predict"])
        ).json()["predictions"]
    assert page["labels"] == [p["label"] for p in answer]
    for mine, theirs in zip(page["probabilities"], answer, strict=True):
        assert mine == pytest.approx([theirs["probabilities"][c] for c in ("0", "1")], abs=1e-6)
    item = status(served).get("deploy.target")
    assert item.state == "done" and "checked in headless Chromium" in item.evidence


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "not-checked"])
def test_a_browser_report_gives_the_json_of_what_was_checked(checked: bool) -> None:
    common = {"model": "m-1", "target": "browser", "folder": "exports/m-1-browser"}
    report = BrowserExportReport(
        **common,
        onnxruntime_web="1.30.0",
        rows=3,
        checked=checked,
        passed=checked,
        summary="browser: ...",
        run_id="r1",
        reason=None if checked else "no chromium",
        max_abs_diff=1e-7 if checked else None,
        labels_equal=True if checked else None,
    )
    found = {"max_abs_diff": 1e-7, "labels_equal": True} if checked else {"reason": "no chromium"}
    assert report.to_dict() == {
        **common,
        "onnxruntime_web": "1.30.0",
        "rows": 3,
        "checked": checked,
        "passed": checked,
        **found,
        "summary": "browser: ...",
        "run_id": "r1",
    }
    assert list(report.to_dict()) == [
        *common, "onnxruntime_web", "rows", "checked", "passed", *found, "summary", "run_id"
    ]  # fmt: skip
