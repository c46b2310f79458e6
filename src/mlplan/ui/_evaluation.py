"""What the Evaluation pages show, from the calls ``mlplan evaluate`` makes and stores: each
evaluated package version with its newest evaluation (``list_evaluations``), and for one model
that evaluation's headline, where to focus, gates, risks, the approvals on record
(``mlplan approvals list --all``), and its report and model card as stored documents."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mlplan.errors import NotFoundError
from mlplan.evaluation import EvaluationInfo, latest_evaluation, list_evaluations, model_card
from mlplan.modeling import ModelInfo, get_model, parse_model_ref
from mlplan.ui._format import Pager, page_of
from mlplan.workspace import ApprovalInfo, list_approvals

if TYPE_CHECKING:
    from mlplan.workspace import Workspace

__all__ = [
    "CHECK_LABELS",
    "DOCUMENTS",
    "DOCUMENT_CSP",
    "Document",
    "EvaluationRow",
    "EvaluationsView",
    "ModelEvaluationView",
    "evaluation_document",
    "evaluations_view",
    "model_evaluation_view",
]

CHECK_LABELS: dict[str, tuple[str, str]] = {
    "pass": ("✔", "pass"),
    "passing": ("✔", "passing"),
    "fail": ("✘", "fail"),
    "failing": ("✘", "failing"),
    "unchecked": ("○", "unchecked"),
}
"""A gate's or risk's state, its icon and word, as ``mlplan evaluate`` prints it."""

Document = Literal["report", "card"]

DOCUMENTS: dict[Document, str] = {"report": "evaluation report", "card": "model card"}
"""The stored documents a model's Evaluation page embeds, by their address and name."""

DOCUMENT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'; sandbox"
)
"""A report or card as mlplan writes it: its own inline styles, and its charts' inline SVG
with their images as data: URLs (matplotlib's colour bars), nothing else — no script, no
request — shown only inside the dashboard's own pages."""


@dataclass(frozen=True)
class EvaluationRow:
    """One evaluated package version and its newest evaluation, in a line."""

    ref: str
    split: str
    part: str
    metric: str
    value: float | None
    low: float | None
    high: float | None
    passed: bool
    gates_passed: int
    gates_failed: int
    gates: int
    created_at: dt.datetime
    run_id: str

    @classmethod
    def of(cls, ref: str, found: EvaluationInfo) -> EvaluationRow:
        """The line of package version ``ref`` from its evaluation ``found``."""
        report = found.report
        metric = str(report["focus_metric"])
        headline = report["overall"].get(metric) or {}
        states = [g["state"] for g in found.gates]
        return cls(
            ref,
            str(report["split"]),
            str(report["part"]),
            metric,
            headline.get("value"),
            headline.get("low"),
            headline.get("high"),
            found.passed,
            states.count("pass"),
            states.count("fail"),
            len(states),
            found.created_at,
            found.run_id,
        )


@dataclass(frozen=True)
class EvaluationsView:
    """The Evaluation page: a page of the evaluated package versions, by model and version."""

    rows: list[EvaluationRow]
    pager: Pager


def evaluations_view(ws: Workspace, *, page: int = 1) -> EvaluationsView:
    """Each registered model's package version that has an evaluation, with its newest
    (``mlplan evaluate`` stores them; predictions made elsewhere, and decisions at a threshold
    no package holds, are of no package version and not listed)."""
    newest: dict[str, EvaluationInfo] = {}
    for found in list_evaluations(ws, external=False) if ws.has_store else []:
        if found.package is not None:
            newest[str(found.package["ref"])] = found  # oldest first: the last one stays
    rows = [EvaluationRow.of(ref, found) for ref, found in newest.items()]
    rows.sort(key=lambda r: (parse_model_ref(r.ref)[0], parse_model_ref(r.ref)[1] or 0))
    shown, pager = page_of(rows, page)
    return EvaluationsView(shown, pager)


@dataclass(frozen=True)
class ModelEvaluationView:
    """A model's Evaluation page: the package version (a bare name is the newest), its newest
    evaluation (None: not evaluated yet) with the headline metric, the other evaluated
    versions of the model, and the approvals that name any of its versions, revoked ones
    too (they stay on the record)."""

    model: ModelInfo
    evaluation: EvaluationInfo | None
    row: EvaluationRow | None
    versions: list[str]
    approvals: list[ApprovalInfo]

    @property
    def report(self) -> dict[str, Any]:
        """The stored report (``evaluation.json``), empty when not evaluated."""
        return {} if self.evaluation is None else self.evaluation.report


def model_evaluation_view(ws: Workspace, ref: str) -> ModelEvaluationView:
    """The newest evaluation of ``ref`` (``NAME``: its newest package version, or
    ``NAME@N``), as ``mlplan evaluate REF --json`` printed it, and the approvals naming the
    model.

    Raises
    ------
    ModelNotFoundError
        No such model or version (the message lists those there are).
    """
    model = _model(ws, ref)
    found = latest_evaluation(ws, model.ref)
    versions = sorted(
        {str(e.package["ref"]) for e in list_evaluations(ws, model.name) if e.package},
        key=lambda r: parse_model_ref(r)[1] or 0,
    )
    approvals = [
        a
        for a in list_approvals(ws, include_revoked=True)
        if (a.subject or "").partition("@")[0] == model.name
    ]
    row = None if found is None else EvaluationRow.of(model.ref, found)
    return ModelEvaluationView(model, found, row, versions, approvals)


def evaluation_document(ws: Workspace, ref: str, document: str) -> bytes:
    """The HTML of ``ref``'s newest evaluation report as it was stored with its run, or its
    model card as ``mlplan models card REF --out card.html`` writes it now (the approvals
    given or revoked since included).

    Raises
    ------
    NotFoundError
        No such model, document, or evaluation of the model.
    """
    if document not in DOCUMENTS:
        raise NotFoundError(f"no document {document!r}; known: {', '.join(DOCUMENTS)}")
    model = _model(ws, ref)
    found = latest_evaluation(ws, model.ref)
    if found is None:
        raise NotFoundError(
            f"{model.ref} has not been evaluated yet. Run: mlplan evaluate {model.ref}"
        )
    if document == "card":
        return model_card(ws, model.ref).html.encode()
    stored = (found.report.get("artifacts") or {}).get("evaluation.html")
    artifacts = ws.store.artifacts
    if stored is None or not artifacts.exists(stored):
        raise NotFoundError(
            f"the report of evaluation {found.run_id} of {model.ref} is not stored. "
            f"Run: mlplan evaluate {model.ref}"
        )
    return artifacts.path(stored).read_bytes()


def _model(ws: Workspace, ref: str) -> ModelInfo:
    """The package version ``ref`` names, as ``mlplan models show`` finds it."""
    if not ws.has_store:  # reading must not create a store
        raise NotFoundError(
            f"no model is registered yet, so no {ref}: mlplan train registers one and "
            "mlplan evaluate MODEL evaluates it"
        )
    return get_model(ws, ref)
