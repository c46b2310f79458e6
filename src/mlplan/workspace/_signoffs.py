"""Sign-offs: who, in which role, approved which gate. The plan says which role signs which.

They sit below the stages because every stage may read them and they need only the store:
evaluation lists the deploy approvals in its report, serving's clearance counts them, the
checklist shows them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import update

from mlplan.errors import ApprovalNotFoundError, GateError, ParameterError, UsageError
from mlplan.store import ApprovalRecord, utcnow
from mlplan.workspace._workspace import Workspace

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

__all__ = ["DEPLOY_GATE", "ApprovalInfo", "approve", "list_approvals", "revoke_approval"]

DEPLOY_GATE = "deploy"
"""The plan's approval gate that lets a model which failed an evaluation gate be deployed
(an approval of this gate whose subject is the package version, ``logistic-1@2``, and whose
``evaluation`` is the failed evaluation it overrides)."""


@dataclass(frozen=True)
class ApprovalInfo:
    """A recorded sign-off (``id`` addresses it, e.g. to revoke it)."""

    gate: str
    role: str
    by: str
    note: str | None
    subject: str | None
    created_at: dt.datetime
    id: int = 0
    revoked_at: dt.datetime | None = None
    revoked_by: str | None = None
    revoke_note: str | None = None
    evaluation: str | None = None
    """A deploy approval: the evaluation (its run's id) it overrides, and only that one."""

    @property
    def active(self) -> bool:
        """Whether it still counts (it was not revoked)."""
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "id": self.id,
            "gate": self.gate,
            "role": self.role,
            "by": self.by,
            "note": self.note,
            "subject": self.subject,
            "evaluation": self.evaluation,
            "created_at": self.created_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
            "revoked_by": self.revoked_by,
            "revoke_note": self.revoke_note,
        }

    @classmethod
    def from_record(cls, record: ApprovalRecord) -> ApprovalInfo:
        """From the store's row."""
        return cls(
            record.gate,
            record.role,
            record.by,
            record.note,
            record.subject,
            record.created_at,
            record.id,
            record.revoked_at,
            record.revoked_by,
            record.revoke_note,
            record.evaluation,
        )


def approve(
    ws: Workspace,
    gate: str,
    *,
    role: str,
    by: str,
    note: str | None = None,
    subject: str | None = None,
    evaluation: str | None = None,
) -> ApprovalInfo:
    """Record that ``by``, acting as ``role``, signs off ``gate``.

    An approval of the deploy gate lets one package version ship despite one failed
    evaluation: ``subject`` names the model (``logistic-1``, or a version, ``logistic-1@2``)
    and ``evaluation`` the evaluation it overrides (its id, or the start of it; default: the
    subject's newest evaluation). Both are recorded exactly: the evaluation's package version
    as the subject, its full id as the evaluation; a later evaluation is not covered.

    Raises
    ------
    GateError
        The plan has no such gate (the known gates are listed), or names another role for it.
    ParameterError
        A deploy approval without a subject, or whose evaluation is not one of the subject
        (its evaluations are listed), or none there is.
    """
    if not by.strip():
        raise ParameterError("by", "{param} must name who approves")
    plan = ws.plan
    rule = plan.approval_for(gate)
    if rule is None:
        gates = ", ".join(a.gate for a in plan.approvals) or "none"
        raise GateError(
            f"the plan has no gate {gate!r}; gates: {gates}. Add it under 'approvals:' in "
            f"{ws.plan_path.name}, e.g. - {{gate: {gate}, role: {role}}}"
        )
    if rule.role != role:
        raise GateError(
            f"gate {gate!r} is signed off by role {rule.role!r} per the plan; got {role!r}. "
            f"Ask a {rule.role} to approve, or change the role in {ws.plan_path.name}"
        )
    if gate == DEPLOY_GATE:
        subject, evaluation = _overridden(ws, subject, evaluation)
    elif evaluation is not None:
        raise ParameterError(
            "evaluation", f"{{param}} goes with the {DEPLOY_GATE!r} gate; got gate {gate!r}"
        )
    with ws.store.transaction() as session:
        record = ApprovalRecord(
            project_id=ws.project_id(session),
            gate=gate,
            role=role,
            by=by.strip(),
            note=note,
            subject=subject,
            evaluation=evaluation,
        )
        session.add(record)
        session.flush()
        return ApprovalInfo.from_record(record)


def _overridden(ws: Workspace, subject: str | None, evaluation: str | None) -> tuple[str, str]:
    """The package version and the evaluation a deploy approval names, checked: the
    evaluation's package version (``logistic-1@2``) and its full id."""
    if not subject:
        raise ParameterError(
            "subject",
            f"an approval of {DEPLOY_GATE!r} names the model it lets ship: give {{param}} "
            "MODEL (e.g. logistic-1@2)",
        )
    name, _, version = subject.partition("@")

    def of_subject(report: Mapping[str, Any]) -> bool:
        package = report.get("package") or {}
        return (
            "source" not in report
            and report.get("model") == name
            and (not version or str(package.get("version")) == version)
        )

    found = ws.reports("evaluation", where=of_subject)
    if evaluation is not None:
        found = [r for r in found if r.run_id.startswith(evaluation)]
    if not found or (evaluation is not None and len(found) > 1):
        known = ", ".join(
            f"{r.run_id} ({(r.report.get('package') or {}).get('ref', name)}, "
            f"{'passed' if r.report.get('passed') else 'failed'})"
            for r in ws.reports("evaluation", where=of_subject)
        )
        raise ParameterError(
            "evaluation",
            f"{subject} has no evaluation "
            + (f"{evaluation!r} " if evaluation is not None else "")
            + (
                f"to override; its evaluations: {known}. Name one with {{param}}"
                if known
                else f"to override; run mlplan evaluate {subject}, then approve its evaluation"
            ),
        )
    chosen = found[-1]
    package = chosen.report.get("package")
    if not package:
        raise ParameterError(
            "evaluation",
            f"evaluation {chosen.run_id} of {name} decided at a threshold no package version "
            f"holds (on the {chosen.report.get('part')} rows); approve an evaluation on the "
            "test rows",
        )
    return str(package["ref"]), chosen.run_id


def list_approvals(
    ws: Workspace, gate: str | None = None, *, include_revoked: bool = False
) -> list[ApprovalInfo]:
    """Recorded approvals that still count (and revoked ones with ``include_revoked``),
    oldest first, optionally for one gate."""
    with ws.store.transaction() as session:
        query = _query(ws, gate, include_revoked=include_revoked)
        return [ApprovalInfo.from_record(a) for a in session.scalars(query)]


def _query(ws: Workspace, gate: str | None, *, include_revoked: bool) -> Any:
    query = ws.select(ApprovalRecord).order_by(ApprovalRecord.created_at, ApprovalRecord.id)
    if gate is not None:
        query = query.where(ApprovalRecord.gate == gate)
    if not include_revoked:
        query = query.where(ApprovalRecord.revoked_at.is_(None))
    return query


def revoke_approval(
    ws: Workspace, approval_id: int, *, role: str, by: str, note: str | None = None
) -> ApprovalInfo:
    """Withdraw a sign-off: it stays on the record, with who revoked it, when and why, and no
    longer counts (a deploy override withdrawn stops the model being cleared to ship).

    Raises
    ------
    ApprovalNotFoundError
        No approval ``approval_id`` in this project (the active ones are listed).
    GateError
        ``role`` is not the role the plan names for the approval's gate.
    UsageError
        No ``by``, or the approval was revoked already.
    """
    if not by.strip():
        raise ParameterError("by", "{param} must name who revokes")
    plan = ws.plan
    with ws.store.transaction() as session:
        record = session.scalars(
            ws.select(ApprovalRecord).where(ApprovalRecord.id == approval_id)
        ).one_or_none()
        if record is None:
            active = ", ".join(
                f"{a.id} ({a.gate}{f' {a.subject}' if a.subject else ''})"
                for a in session.scalars(_query(ws, None, include_revoked=False))
            )
            raise ApprovalNotFoundError(
                f"no approval {approval_id}; approvals that count: {active or 'none'} "
                "(mlplan approvals list)"
            )
        rule = plan.approval_for(record.gate)
        expected = rule.role if rule is not None else record.role
        if role != expected:
            raise GateError(
                f"approval {approval_id} of gate {record.gate!r} is revoked by role "
                f"{expected!r} per the plan; got {role!r}"
            )
        # Only an approval that still counts is revoked (two revokes at once: one wins).
        result = session.execute(
            update(ApprovalRecord)
            .where(ApprovalRecord.id == record.id, ApprovalRecord.revoked_at.is_(None))
            .values(revoked_at=utcnow(), revoked_by=by.strip(), revoke_note=note)
            .execution_options(synchronize_session=False)
        )
        changed = cast("CursorResult[Any]", result).rowcount
        session.refresh(record)
        if not changed:
            raise UsageError(
                f"approval {approval_id} was revoked already, by {record.revoked_by} at "
                f"{record.revoked_at:%Y-%m-%d %H:%M UTC}"
            )
        return ApprovalInfo.from_record(record)
