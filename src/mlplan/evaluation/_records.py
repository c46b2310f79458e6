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
from mlplan.modeling import PackageDraft, draft_version, parse_model_ref, register_version
from mlplan.store import ArtifactStore
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
    with the ``evaluate`` run (a threshold other than the package's, on the test part, makes
    a new package version). The files appear under their names only once the run is
    committed."""
    report = json_safe(report)
    subject = inp.subject
    draft = _package_version(ws, inp, report)
    # Approvals of the model's versions so far: each covers the evaluation it names only.
    report["approvals"] = [
        a.to_dict()
        for a in list_approvals(ws, DEPLOY_GATE)
        if (a.subject or "").partition("@")[0] == subject.name
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
        run_id = _record(ws, inp, report, blobs, draft)
    except BaseException:
        for path in staged.values():
            path.unlink(missing_ok=True)
        raise
    files = {}
    for name, tmp in staged.items():
        final = folder / name
        tmp.replace(final)
        files[name] = final
    return StoredEvaluation(report | {"run_id": run_id}, files)


def _package_version(
    ws: Workspace, inp: EvaluationInput, report: dict[str, Any]
) -> PackageDraft | None:
    """Which package version the evaluation is of, in ``report["package"]``: the model's own
    when its threshold was used (or none applies), a new version (drafted, returned) when a
    threshold other than the package's was used on the test rows, and none (the decisions
    are of no package) when it was used on other rows."""
    model = inp.subject.model
    if model is None:
        return None
    threshold = report.get("threshold")
    metadata = package_metadata(ws, model.package)
    if threshold is None or threshold["value"] == metadata.get("threshold"):
        report["package"] = _package(model.ref, model.version, model.package_sha256, model.parent)
        return None
    if report["part"] != "test":
        report["package"] = None
        return None
    choice = {k: threshold.get(k) for k in ("criterion", "chosen_on", "criterion_value")}
    draft = draft_version(
        ws, model, metadata=metadata | {"threshold": threshold["value"], "threshold_choice": choice}
    )
    report["package"] = _package(draft.ref, draft.version, draft.sha256, model.ref)
    report["package"]["new"] = not draft.existing
    return draft


def _package(ref: str, version: int, sha256: str, parent: str | None) -> dict[str, Any]:
    return {"ref": ref, "version": version, "sha256": sha256, "parent": parent, "new": False}


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
    ws: Workspace,
    inp: EvaluationInput,
    report: dict[str, Any],
    blobs: Mapping[str, bytes],
    draft: PackageDraft | None,
) -> str:
    """The ``evaluate`` run: what it read (model or file, split), the files and the package
    version it made, and the report as the store keeps it; its id."""
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
    if inp.engine != "local":  # runs on the local engine record what they always did
        parameters["engine"] = inp.engine
    artifacts = ws.store.artifacts
    with artifacts.staged(), ws.record("evaluate", parameters) as run:
        if model is not None:
            run.input("model", model.ref, sha256=model.package_sha256)
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
        if draft is not None:
            register_version(ws, run, draft)
        run.report("evaluation", report | {"artifacts": stored, "run_id": run.id})
    return run.id


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

    @property
    def package(self) -> dict[str, Any] | None:
        """The package version evaluated (``ref``, ``version``, ``sha256``, ``parent``), None
        for predictions made elsewhere, decisions at a threshold no package holds, or an
        evaluation stored before package versions."""
        found: dict[str, Any] | None = self.report.get("package")
        return found

    def of_package(self, sha256: str) -> bool:
        """Whether this evaluation is of the package whose hash is ``sha256``."""
        return self.package is not None and self.package.get("sha256") == sha256

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
    """The newest stored evaluation of a registered model (``model``: a name, or one package
    version, ``gbt-1@2``; else any), if any."""
    name, version = (None, None) if model is None else parse_model_ref(model)

    def wanted(report: Mapping[str, Any]) -> bool:
        if "source" in report or (name is not None and report["model"] != name):
            return False
        return version is None or (report.get("package") or {}).get("version") == version

    found = ws.latest_report("evaluation", where=wanted)
    return None if found is None else EvaluationInfo.from_report(found)
