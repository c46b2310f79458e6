"""The lifecycle checklist: every item of shared/CHECKLIST.md with its state, evidence and next
step, each reported by one small function registered for its id."""

from __future__ import annotations

from mlplan._deprecated import moved_names as _moved_names
from mlplan.checklist._items import ITEMS, STAGES, ChecklistItem, Stage, item
from mlplan.checklist._status import (
    ItemStatus,
    Provider,
    State,
    StatusContext,
    StatusReport,
    check,
    register_provider,
    status,
)

__all__ = [
    "ITEMS",
    "STAGES",
    "ChecklistItem",
    "ItemStatus",
    "Provider",
    "Stage",
    "State",
    "StatusContext",
    "StatusReport",
    "check",
    "item",
    "register_provider",
    "status",
]

__getattr__ = _moved_names(
    __name__,
    {
        "ApprovalRecord": "mlplan.workspace.ApprovalInfo",
        "approve": "mlplan.workspace.approve",
        "list_approvals": "mlplan.workspace.list_approvals",
        "revoke_approval": "mlplan.workspace.revoke_approval",
    },
)
