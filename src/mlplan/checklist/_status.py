"""The status mechanism: providers report items, ``status`` puts every item in order.

Each stage contributes its items through one small interface, :class:`Provider`. Items no
provider reports appear as missing with a next step naming the stage that will provide them,
so every item of the checklist is always shown.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from mlplan.checklist._items import ITEMS, STAGES, ChecklistItem, Stage, item
from mlplan.errors import MlplanError
from mlplan.workspace import Workspace

__all__ = [
    "ItemStatus",
    "Provider",
    "State",
    "StatusContext",
    "StatusReport",
    "register_provider",
    "status",
]

State = Literal["done", "missing", "failing", "not_applicable"]

# Where each stage's items will come from, for the items of stages not built yet.
_STAGE_HOME: dict[Stage, str] = {
    "Scoping": "mlplan.plan",
    "Data": "mlplan.data",
    "Labels": "mlplan.labels",
    "Modeling": "mlplan.modeling",
    "Error analysis": "mlplan.evaluation",
    "Deployment": "mlplan.serving",
    "Rollout": "mlplan.rollout",
    "Monitoring": "mlplan.monitoring",
}


@dataclass(frozen=True)
class ItemStatus:
    """The state of one checklist item, with its evidence and the next command to run."""

    item: ChecklistItem
    state: State
    evidence: str
    next_step: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by ``status --json``."""
        return {
            "id": self.item.id,
            "stage": self.item.stage,
            "title": self.item.title,
            "state": self.state,
            "evidence": self.evidence,
            "next": self.next_step,
        }


@dataclass
class StatusContext:
    """What providers read: the workspace (plan and store), plus a per-call cache."""

    ws: Workspace
    cache: dict[str, Any] = field(default_factory=dict)

    def status(
        self, item_id: str, state: State, evidence: str, next_step: str | None = None
    ) -> ItemStatus:
        """Build an item's status (a shorthand for providers)."""
        return ItemStatus(item(item_id), state, evidence, next_step)

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """Compute ``key`` once per status call; providers share expensive reads."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]


class Provider(Protocol):
    """What a stage implements to report its checklist items."""

    stage: Stage

    def check(self, context: StatusContext) -> Iterable[ItemStatus]:
        """The status of (some of) the stage's items."""
        ...


_PROVIDERS: list[Callable[[], Provider]] = []


def register_provider(factory: Callable[[], Provider]) -> Callable[[], Provider]:
    """Add a provider (used as a decorator on the provider class)."""
    _PROVIDERS.append(factory)
    return factory


# Each stage's provider module; importing one registers its provider.
BUILTIN_PROVIDERS = (
    "mlplan.checklist._scoping",
    "mlplan.checklist._data",
    "mlplan.checklist._labels",
    "mlplan.checklist._modeling",
    "mlplan.checklist._evaluation",
    "mlplan.checklist._deployment",
)


@functools.cache
def _load_builtin_providers() -> None:
    for module in BUILTIN_PROVIDERS:
        importlib.import_module(module)


@dataclass(frozen=True)
class StatusReport:
    """Every checklist item with its state, in checklist order."""

    items: list[ItemStatus]

    def counts(self) -> dict[State, int]:
        """How many items are in each state."""
        out: dict[State, int] = {"done": 0, "missing": 0, "failing": 0, "not_applicable": 0}
        for status_ in self.items:
            out[status_.state] += 1
        return out

    def by_stage(self) -> dict[Stage, list[ItemStatus]]:
        """Items grouped by stage, stages in lifecycle order."""
        return {stage: [s for s in self.items if s.item.stage == stage] for stage in STAGES}

    @property
    def failing(self) -> list[ItemStatus]:
        """Items whose check ran and did not pass."""
        return [s for s in self.items if s.state == "failing"]

    def get(self, item_id: str) -> ItemStatus:
        """The status of one item."""
        for status_ in self.items:
            if status_.item.id == item_id:
                return status_
        raise KeyError(item_id)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by ``status --json``."""
        return {"counts": self.counts(), "items": [s.to_dict() for s in self.items]}


def status(ws: Workspace) -> StatusReport:
    """The state of every checklist item for the project in ``ws``.

    A provider that raises an mlplan error does not hide the others: its items show as failing
    with the error as evidence.
    """
    _load_builtin_providers()
    if not ws.has_store:
        # Reading the status must not create a store: look at an empty one instead.
        plan = ws.plan
        ws = Workspace(ws.root, store_url="sqlite://")
        ws.__dict__["plan"] = plan
    context = StatusContext(ws)
    reported: dict[str, ItemStatus] = {}
    for factory in _PROVIDERS:
        provider = factory()
        try:
            for result in provider.check(context):
                if result.item.stage != provider.stage:
                    raise RuntimeError(
                        f"the {provider.stage} provider reported "
                        f"{result.item.id}, an item of {result.item.stage}"
                    )
                reported[result.item.id] = result
        except Exception as exc:  # one broken provider must not hide the other stages
            reason = (
                str(exc)
                if isinstance(exc, MlplanError)
                else (
                    f"internal error in the {provider.stage} provider: {type(exc).__name__}: {exc}"
                )
            )
            for it in ITEMS:
                if it.stage == provider.stage and it.id not in reported:
                    reported[it.id] = ItemStatus(
                        it,
                        "failing",
                        f"could not be checked: {reason}",
                        "fix the error above and run mlplan status again",
                    )
    items = [
        reported.get(it.id)
        or ItemStatus(
            it,
            "missing",
            f"not built yet: the {it.stage} stage comes with {_STAGE_HOME[it.stage]}",
            None,
        )
        for it in ITEMS
    ]
    return StatusReport(items)
