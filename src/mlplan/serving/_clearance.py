"""Clearance: may a model ship? Deployment asks before it serves, scores or deploys a model;
evaluation answers with the model's newest evaluation, and the sign-offs with an approval of
the plan's deploy gate that names the model."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlplan.errors import CheckFailedError
from mlplan.evaluation import EvaluationInfo, latest_evaluation
from mlplan.workspace import DEPLOY_GATE, Workspace, list_approvals

__all__ = ["Clearance", "check_clearance", "clearance"]


@dataclass(frozen=True)
class Clearance:
    """Whether a model may be deployed: its newest evaluation passed every gate, or a
    recorded approval lets it ship anyway."""

    model: str
    allowed: bool
    reason: str
    approval: dict[str, Any] | None = None
    evaluated: bool = True


def clearance(
    ws: Workspace,
    model: str,
    *,
    evaluation: EvaluationInfo | Mapping[str, Any] | None = None,
) -> Clearance:
    """May ``model`` be deployed? ``evaluation``: its newest evaluation, when the caller has
    read it already (or its stored JSON, as earlier releases passed it)."""
    if isinstance(evaluation, Mapping):
        evaluation = EvaluationInfo(model, dict(evaluation), "", dt.datetime.now(dt.UTC))
    found = evaluation if evaluation is not None else latest_evaluation(ws, model)
    if found is None:
        return Clearance(
            model,
            False,
            f"{model} has not been evaluated: mlplan evaluate {model}",
            evaluated=False,
        )
    failed = [g["id"] for g in found.failed_gates]
    if not failed:
        return Clearance(model, True, "every gate passed")
    approvals = [a for a in list_approvals(ws, DEPLOY_GATE) if a.subject == model]
    if approvals:
        a = approvals[-1]
        return Clearance(
            model,
            True,
            f"gates failed ({', '.join(failed)}) but {a.by} ({a.role}) approved it",
            a.to_dict(),
        )
    rule = ws.plan.approval_for(DEPLOY_GATE)
    how = (
        f"mlplan approve {DEPLOY_GATE} --role {rule.role} --by NAME --subject {model} --note WHY"
        if rule is not None
        else f"add '- {{gate: {DEPLOY_GATE}, role: ...}}' under approvals: in the plan, "
        f"then mlplan approve {DEPLOY_GATE} --subject {model}"
    )
    return Clearance(model, False, f"gates failed: {', '.join(failed)}; to deploy it anyway: {how}")


def check_clearance(ws: Workspace, model: str, *, allow_failed_gates: bool = False) -> None:
    """Refuse to deploy a model whose newest evaluation failed a gate of the plan, unless an
    approval lets it ship (``allow_failed_gates``: load tests and staging only).

    Raises
    ------
    CheckFailedError
        The gates failed and nobody approved deploying the model anyway.
    """
    if allow_failed_gates:
        return
    cleared = clearance(ws, model)
    # Never evaluated: nothing failed (mlplan status says to evaluate it).
    if not cleared.allowed and cleared.evaluated:
        raise CheckFailedError.about(
            "allow_failed_gates",
            f"{model} may not be deployed: {cleared.reason}; for a load test, staging or a "
            "trial, {param} runs it anyway",
        )
