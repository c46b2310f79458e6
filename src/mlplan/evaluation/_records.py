"""An evaluation kept as evidence: the report, the model card and the JSON written beside
the project and stored with the run that made them; and the stored evaluations listed."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplan.core import json_safe
from mlplan.evaluation._card import CardEvidence, render_card
from mlplan.evaluation._input import EvaluationInput
from mlplan.evaluation._predict import package_metadata
from mlplan.evaluation._report import render_report
from mlplan.store import ArtifactStore, ModelRecord, RunRecorder
from mlplan.workspace import DEPLOY_GATE, ReportInfo, Workspace, list_approvals

__all__ = [
    "EvaluationInfo",
    "StoredEvaluation",
    "latest_evaluation",
    "list_evaluations",
    "store_evaluation",
]

_MEDIA = {".html": "text/html", ".md": "text/markdown", ".json": "application/json"}


@dataclass(frozen=True)
class StoredEvaluation:
    """The report as stored (JSON-ready, with the deploy approvals) and its files."""

    report: dict[str, Any]
    files: dict[str, Path]


def store_evaluation(
    ws: Workspace, inp: EvaluationInput, report: dict[str, Any]
) -> StoredEvaluation:
    """Write the report, the model card and the JSON for ``inp``'s subject and store them
    with the ``evaluate`` run (a threshold chosen on the test part goes into the model
    package). The files appear under their names only once the run is committed."""
    report = json_safe(report)
    subject = inp.subject
    report["approvals"] = [
        a.to_dict() for a in list_approvals(ws, DEPLOY_GATE) if a.subject == subject.name
    ]
    card_md, card_html = render_card(
        ws,
        CardEvidence(
            subject,
            inp.split.version,
            inp.split.info,
            report,
            report["approvals"],
            "this evaluation",
        ),
    )
    blobs = {
        "evaluation.html": render_report(report).encode(),
        "model-card.md": card_md.encode(),
        "model-card.html": card_html.encode(),
        "evaluation.json": json.dumps(report, indent=1, allow_nan=False).encode(),
    }
    folder = Path(inp.out) if inp.out is not None else ws.root / "reports" / subject.name
    if not folder.is_absolute():
        folder = ws.root / folder
    staged = _write_staged(folder, blobs)
    try:
        _record(ws, inp, report, blobs)
    except BaseException:
        for path in staged.values():
            path.unlink(missing_ok=True)
        raise
    files = {}
    for name, tmp in staged.items():
        final = folder / name
        tmp.replace(final)
        files[name] = final
    return StoredEvaluation(report, files)


def _write_staged(folder: Path, files: Mapping[str, bytes]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    staged = {}
    for name, blob in files.items():
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
        Path(tmp).chmod(0o644)  # mkstemp makes it private; a report is for sharing
        staged[name] = Path(tmp)
    return staged


def _record(
    ws: Workspace, inp: EvaluationInput, report: dict[str, Any], blobs: Mapping[str, bytes]
) -> None:
    """The ``evaluate`` run: what it read (model or file, split), the files it made, and the
    report as the store keeps it."""
    subject = inp.subject
    model = subject.model
    split = inp.split.info
    parameters = {
        "model": subject.name,
        "split": split.ref,
        "part": report["part"],
        "bootstrap": report["bootstrap"],
        "seed": report["seed"],
        "threshold": (report.get("threshold") or {}).get("value"),
    }
    artifacts = ws.store.artifacts
    with artifacts.staged(), ws.record("evaluate", parameters) as run:
        if model is not None:
            run.input("model", model.name, sha256=model.package["model.onnx"])
        if subject.source is not None:
            run.input("file", subject.source["path"], sha256=subject.source["sha256"])
        run.input("split", split.ref, sha256=split.artifact_sha256)
        stored = {}
        for name, blob in blobs.items():
            ref = artifacts.put_bytes(blob)
            ArtifactStore.register(
                run.session, ref, kind=f"evaluation:{name}", media_type=_MEDIA[Path(name).suffix]
            )
            stored[name] = ref.sha256
            run.output("report", f"{subject.name}/{name}", sha256=ref.sha256)
        threshold = report.get("threshold")
        if threshold is not None and model is not None and report["part"] == "test":
            _record_threshold(ws, run, model.name, threshold)
        run.report("evaluation", report | {"artifacts": stored, "run_id": run.id})


def _record_threshold(
    ws: Workspace, run: RunRecorder, model: str, threshold: dict[str, Any]
) -> None:
    """Write the chosen decision threshold into the model package's metadata."""
    session = run.session
    record = session.scalar(ws.select(ModelRecord).where(ModelRecord.name == model))
    assert record is not None
    metadata = package_metadata(ws, record.package)
    metadata["threshold"] = threshold["value"]
    metadata["threshold_choice"] = {
        k: threshold.get(k) for k in ("criterion", "chosen_on", "criterion_value")
    } | {"run_id": run.id}
    artifacts = ws.store.artifacts
    ref = artifacts.put_bytes(json.dumps(metadata, indent=1, default=str).encode())
    ArtifactStore.register(session, ref, kind="model:metadata.json", media_type="application/json")
    record.package = dict(record.package) | {"metadata.json": ref.sha256}
    run.output("model", model, sha256=record.package["model.onnx"])


@dataclass(frozen=True)
class EvaluationInfo:
    """A stored evaluation: ``evaluation.json`` as it was kept (``report``), with when and by
    which run."""

    model: str
    report: dict[str, Any]
    run_id: str
    created_at: dt.datetime

    @classmethod
    def from_report(cls, stored: ReportInfo) -> EvaluationInfo:
        """From the store's report."""
        return cls(stored.report["model"], stored.report, stored.run_id, stored.created_at)

    @property
    def external(self) -> bool:
        """Predictions made elsewhere (``evaluate_predictions``), not a registered model."""
        return "source" in self.report

    @property
    def passed(self) -> bool:
        """No gate failed."""
        return bool(self.report["passed"])

    @property
    def gates(self) -> list[dict[str, Any]]:
        """Every gate of the plan with its state (pass, fail or unchecked) and evidence."""
        return list(self.report["gates"])

    @property
    def failed_gates(self) -> list[dict[str, Any]]:
        """The gates that failed."""
        return [g for g in self.gates if g["state"] == "fail"]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: the report with its time."""
        return self.report | {"created_at": self.created_at.isoformat()}


def list_evaluations(
    ws: Workspace, model: str | None = None, *, external: bool | None = None
) -> list[EvaluationInfo]:
    """Stored evaluations, oldest first: of one model (or predictions name), and only of
    registered models (``external=False``) or of predictions made elsewhere (``True``)."""
    found = [EvaluationInfo.from_report(r) for r in ws.reports("evaluation")]
    return [
        e
        for e in found
        if (model is None or e.model == model) and (external is None or e.external == external)
    ]


def latest_evaluation(ws: Workspace, model: str | None = None) -> EvaluationInfo | None:
    """The newest stored evaluation of a registered model (``model``, else any), if any."""
    found = ws.latest_report(
        "evaluation",
        where=lambda r: "source" not in r and (model is None or r["model"] == model),
    )
    return None if found is None else EvaluationInfo.from_report(found)
