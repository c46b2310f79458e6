"""Clearance: may a model ship? Deployment asks before it serves, scores or deploys a model.
The answer is about one package version (``logistic-1@2``): the newest evaluation of that
exact package passed every gate, or an approval of the plan's deploy gate names the version
and the failed evaluation it overrides (an approval of an earlier evaluation does not cover
a later one)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mlplan.errors import CheckFailedError
from mlplan.evaluation import EvaluationInfo, list_evaluations
from mlplan.modeling import ModelInfo, get_model
from mlplan.workspace import DEPLOY_GATE, Workspace, list_approvals

__all__ = ["Clearance", "check_clearance", "clearance"]


@dataclass(frozen=True)
class Clearance:
    """Whether a package version (``model``, e.g. ``logistic-1@2``) may be deployed: its
    newest evaluation (``evaluation``, its id) passed every gate, or a recorded approval of
    that evaluation lets it ship anyway. ``evaluated``: the package has an evaluation."""

    model: str
    allowed: bool
    reason: str
    approval: dict[str, Any] | None = None
    evaluated: bool = True
    evaluation: str | None = None


def clearance(
    ws: Workspace,
    model: str,
    *,
    evaluation: EvaluationInfo | Mapping[str, Any] | None = None,
) -> Clearance:
    """May ``model`` (a name: its newest package version; or ``name@version``) be deployed?
    ``evaluation``: the evaluation to judge it by (and the package version it evaluated),
    when the caller has read it already (or its stored JSON, as earlier releases passed it);
    else the newest evaluation of the model's exact package.

    Raises
    ------
    ModelNotFoundError
        An unknown model or version.
    """
    if isinstance(evaluation, Mapping):
        report = dict(evaluation)
        evaluation = EvaluationInfo(
            model, report, str(report.get("run_id", "")), dt.datetime.now(dt.UTC)
        )
    if evaluation is not None:
        found = evaluation
        ref = str(evaluation.package["ref"]) if evaluation.package else model
    else:
        info = get_model(ws, model)
        ref, newest = info.ref, _newest_evaluation(ws, info)
        if newest is None:
            return Clearance(ref, False, _not_evaluated(ws, info), evaluated=False)
        found = newest
    failed = [g["id"] for g in found.failed_gates]
    if not failed:
        return Clearance(ref, True, "every gate passed", evaluation=found.run_id)
    approvals = [
        a
        for a in list_approvals(ws, DEPLOY_GATE)
        if a.subject == ref and a.evaluation is not None and a.evaluation == found.run_id
    ]
    if approvals:
        a = approvals[-1]
        return Clearance(
            ref,
            True,
            f"gates failed ({', '.join(failed)}) but {a.by} ({a.role}) approved it",
            a.to_dict(),
            evaluation=found.run_id,
        )
    rule = ws.plan.approval_for(DEPLOY_GATE)
    names = f"--subject {ref} --evaluation {found.run_id}"
    how = (
        f"mlplan approve {DEPLOY_GATE} --role {rule.role} --by NAME {names} --note WHY"
        if rule is not None
        else f"add '- {{gate: {DEPLOY_GATE}, role: ...}}' under approvals: in the plan, "
        f"then mlplan approve {DEPLOY_GATE} {names}"
    )
    return Clearance(
        ref,
        False,
        f"gates failed in evaluation {found.run_id}: {', '.join(failed)}; to deploy it "
        f"anyway: {how}",
        evaluation=found.run_id,
    )


def _newest_evaluation(ws: Workspace, info: ModelInfo) -> EvaluationInfo | None:
    """The newest evaluation of exactly ``info``'s package."""
    found = [e for e in list_evaluations(ws, info.name) if e.of_package(info.package_sha256)]
    return found[-1] if found else None


def _not_evaluated(ws: Workspace, info: ModelInfo) -> str:
    """Why a package without an evaluation may not ship, and what to run."""
    others = [e.package["ref"] for e in list_evaluations(ws, info.name) if e.package]
    seen = f" (evaluations exist of {', '.join(dict.fromkeys(others))} only)" if others else ""
    return f"{info.ref} has not been evaluated{seen}: run mlplan evaluate {info.ref}"


def check_clearance(
    ws: Workspace,
    model: str,
    *,
    allow_failed_gates: bool = False,
    require_evaluation: bool = False,
    use: Literal["deploy", "serve", "score"] = "deploy",
) -> None:
    """Refuse to deploy a package version whose newest evaluation failed a gate of the plan,
    unless an approval of that evaluation lets it ship (``allow_failed_gates``: load tests,
    staging and trials only). ``require_evaluation``: a package never evaluated is refused
    too (``deploy``); else it passes (``mlplan status`` says to evaluate it). ``use``: what
    the caller would do with it (deploy, serve, or score a file), which the refusal says.

    Raises
    ------
    CheckFailedError
        The gates failed and nobody approved deploying the version anyway, or (with
        ``require_evaluation``) it was never evaluated.
    """
    if allow_failed_gates:
        return
    cleared = clearance(ws, model)
    if not cleared.allowed and (cleared.evaluated or require_evaluation):
        done, doing = _USES[use]
        reason = cleared.reason.replace("; to deploy it anyway: ", f"; to {use} it anyway: ")
        raise CheckFailedError.about(
            "allow_failed_gates",
            f"{cleared.model} may not be {done}: {reason}; for a load test, staging "
            f"or a trial, {{param}} {doing} it anyway",
        )


# What a refusal says for each use: "may not be <done>", "<option> <doing> it anyway".
_USES = {
    "deploy": ("deployed", "runs"),
    "serve": ("served", "serves"),
    "score": ("used to score", "scores with"),
}
