"""The lifecycle checklist: every item of shared/CHECKLIST.md with its state, evidence and next
step, reported by one provider per stage; and the sign-offs it reads."""

from __future__ import annotations

from mlplan.checklist._approvals import (
    ApprovalRecord,
    approve,
    list_approvals,
    revoke_approval,
)
from mlplan.checklist._items import ITEMS, STAGES, ChecklistItem, Stage, item
from mlplan.checklist._status import (
    ItemStatus,
    Provider,
    State,
    StatusContext,
    StatusReport,
    register_provider,
    status,
)

__all__ = [
    "ITEMS",
    "STAGES",
    "ApprovalRecord",
    "ChecklistItem",
    "ItemStatus",
    "Provider",
    "Stage",
    "State",
    "StatusContext",
    "StatusReport",
    "approve",
    "item",
    "list_approvals",
    "register_provider",
    "revoke_approval",
    "status",
]
