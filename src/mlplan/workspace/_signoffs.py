"""Sign-offs: who, in which role, approved which gate. The plan says which role signs which.

They sit below the stages because every stage may read them and they need only the store:
evaluation lists the deploy approvals in its report, serving's clearance counts them, the
checklist shows them.
"""

from __future__ import annotations

import datetime as dt
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
(an approval of this gate whose subject is the model)."""


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
        )


def approve(
    ws: Workspace,
    gate: str,
    *,
    role: str,
    by: str,
    note: str | None = None,
    subject: str | None = None,
) -> ApprovalInfo:
    """Record that ``by``, acting as ``role``, signs off ``gate``.

    Raises
    ------
    GateError
        The plan has no such gate (the known gates are listed), or names another role for it.
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
    with ws.store.transaction() as session:
        record = ApprovalRecord(
            project_id=ws.project_id(session),
            gate=gate,
            role=role,
            by=by.strip(),
            note=note,
            subject=subject,
        )
        session.add(record)
        session.flush()
        return ApprovalInfo.from_record(record)


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
