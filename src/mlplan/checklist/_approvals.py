"""Sign-offs: who, in which role, approved which gate. The plan says which role signs which."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from mlplan.errors import GateError, UsageError
from mlplan.store import Approval, Project
from mlplan.workspace import Workspace

__all__ = ["ApprovalRecord", "approve", "list_approvals"]


@dataclass(frozen=True)
class ApprovalRecord:
    """A recorded sign-off."""

    gate: str
    role: str
    by: str
    note: str | None
    subject: str | None
    created_at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "gate": self.gate,
            "role": self.role,
            "by": self.by,
            "note": self.note,
            "subject": self.subject,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_record(cls, record: Approval) -> ApprovalRecord:
        """From the store's row."""
        return cls(
            record.gate, record.role, record.by, record.note, record.subject, record.created_at
        )


def approve(
    ws: Workspace,
    gate: str,
    *,
    role: str,
    by: str,
    note: str | None = None,
    subject: str | None = None,
) -> ApprovalRecord:
    """Record that ``by``, acting as ``role``, signs off ``gate``.

    Raises
    ------
    GateError
        The plan has no such gate (the known gates are listed), or names another role for it.
    """
    if not by.strip():
        raise UsageError("--by must name who approves")
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
    store = ws.store
    with store.transaction() as session:
        record = Approval(
            project_id=store.project_id(session, plan.project.store_key, name=plan.project.name),
            gate=gate,
            role=role,
            by=by.strip(),
            note=note,
            subject=subject,
        )
        session.add(record)
        session.flush()
        return ApprovalRecord.from_record(record)


def list_approvals(ws: Workspace, gate: str | None = None) -> list[ApprovalRecord]:
    """Recorded approvals, oldest first, optionally for one gate."""
    with ws.store.transaction() as session:
        query = (
            select(Approval)
            .join(Project)
            .where(Project.key == ws.plan.project.store_key)
            .order_by(Approval.created_at, Approval.id)
        )
        if gate is not None:
            query = query.where(Approval.gate == gate)
        return [ApprovalRecord.from_record(a) for a in session.scalars(query)]
