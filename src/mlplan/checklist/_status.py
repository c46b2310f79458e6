"""The status mechanism: one small function per item, and ``status`` puts every item in order.

Each stage module registers one function per item id with :func:`check`; the function reads
what it needs through the :class:`StatusContext` and returns the item's :class:`ItemStatus`.
Reads that several items share go through ``StatusContext.memo``, so each runs once per status
call. A plug-in may instead register a :class:`Provider` that reports several items of a stage.
Items nothing reports appear as missing with a next step naming the stage that will provide
them, so every item of the checklist is always shown.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, cast

from mlplan.checklist._items import ITEMS, STAGES, ChecklistItem, Stage, item
from mlplan.errors import MlplanError, StoreError
from mlplan.workspace import Workspace, close_crashed_runs

__all__ = [
    "ItemCheck",
    "ItemStatus",
    "Provider",
    "State",
    "StatusContext",
    "StatusReport",
    "check",
    "register_provider",
    "status",
]

State = Literal["done", "missing", "failing", "not_applicable"]

T = TypeVar("T")

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

_FIX = "fix the error above and run mlplan status again"


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
            "plan": list(self.item.plan_keys),
        }


@dataclass(frozen=True)
class _Failed:
    """A shared read that raised: kept so that it is not tried again."""

    error: Exception


@dataclass
class StatusContext:
    """What checks read: the workspace (plan and store), plus a per-call cache."""

    ws: Workspace
    cache: dict[str, Any] = field(default_factory=dict)

    def status(
        self, item_id: str, state: State, evidence: str, next_step: str | None = None
    ) -> ItemStatus:
        """Build an item's status (a shorthand for checks)."""
        return ItemStatus(item(item_id), state, evidence, next_step)

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """Compute ``key`` once per status call; checks share expensive reads.

        A read that raises is not tried again: every check that needs it fails with the same
        error.
        """
        if key not in self.cache:
            try:
                self.cache[key] = compute()
            except Exception as exc:
                self.cache[key] = _Failed(exc)
        value = self.cache[key]
        if isinstance(value, _Failed):
            raise value.error
        return cast(T, value)


ItemCheck = Callable[[StatusContext], ItemStatus]
"""The function that reports one item."""

_CHECKS: dict[str, ItemCheck] = {}


def check(item_id: str) -> Callable[[ItemCheck], ItemCheck]:
    """Register the function that reports the item ``item_id`` (used as a decorator).

    The function takes the :class:`StatusContext` and returns the item's :class:`ItemStatus`.
    One function per item: registering an id again replaces the earlier function.
    """
    item(item_id)  # an unknown id fails at import, naming the known ones

    def register(fn: ItemCheck) -> ItemCheck:
        _CHECKS[item_id] = fn
        return fn

    return register


class Provider(Protocol):
    """What a plug-in implements to report several items of a stage at once."""

    stage: Stage

    def check(self, context: StatusContext) -> Iterable[ItemStatus]:
        """The status of (some of) the stage's items."""
        ...


_PROVIDERS: list[Callable[[], Provider]] = []


def register_provider(factory: Callable[[], Provider]) -> Callable[[], Provider]:
    """Add a provider (used as a decorator on the provider class). Its items replace those of
    the checks registered with :func:`check`."""
    _PROVIDERS.append(factory)
    return factory


# Each stage's module of checks; importing one registers its functions.
_BUILTIN_CHECKS = (
    "mlplan.checklist._scoping",
    "mlplan.checklist._data",
    "mlplan.checklist._labels",
    "mlplan.checklist._modeling",
    "mlplan.checklist._evaluation",
    "mlplan.checklist._deployment",
    "mlplan.checklist._pipeline",
    "mlplan.checklist._rollout",
    "mlplan.checklist._monitoring",
)


@functools.cache
def _load_builtin_checks() -> None:
    for module in _BUILTIN_CHECKS:
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

    A check that raises does not hide the others: its item shows as failing with the error as
    evidence (for a provider: the items of its stage it had not reported yet). Runs left
    ``running`` whose process is gone (a server killed) are closed as ``crashed`` first.

    Raises
    ------
    StoreError
        The store cannot be reached or opened: one error, not one per item.
    """
    _load_builtin_checks()
    readable = _readable(ws)
    readable.store  # noqa: B018 (opened first, so that a store that does not answer fails once)
    if readable is ws:  # a server killed leaves its run running: shown as crashed once it is gone
        with contextlib.suppress(StoreError):  # a store this user may only read: shown as is
            close_crashed_runs(ws, found_by="mlplan status")
    context = StatusContext(readable)
    reported = {it.id: _run_check(context, it, _CHECKS[it.id]) for it in ITEMS if it.id in _CHECKS}
    for factory in _PROVIDERS:
        _run_provider(context, factory(), reported)
    return StatusReport([reported.get(it.id) or _not_built(it) for it in ITEMS])


def _readable(ws: Workspace) -> Workspace:
    """``ws``, or, when it has no store yet, its plan over an empty one: reading the status
    must not create a store."""
    if ws.has_store:
        return ws
    plan = ws.plan
    empty = Workspace(ws.root, store_url="sqlite://")
    empty.__dict__["plan"] = plan
    return empty


def _run_check(context: StatusContext, it: ChecklistItem, fn: ItemCheck) -> ItemStatus:
    try:
        result = fn(context)
        if result.item != it:
            raise RuntimeError(f"the check of {it.id} reported {result.item.id}")
        return result
    except Exception as exc:  # one broken check must not hide the other items
        return _not_checked(it, exc, f"the check of {it.id}")


def _run_provider(
    context: StatusContext, provider: Provider, reported: dict[str, ItemStatus]
) -> None:
    """Add what ``provider`` reports to ``reported``; if it raises, the items of its stage not
    reported yet fail with the error."""
    try:
        for result in provider.check(context):
            if result.item.stage != provider.stage:
                raise RuntimeError(
                    f"the {provider.stage} provider reported "
                    f"{result.item.id}, an item of {result.item.stage}"
                )
            reported[result.item.id] = result
    except Exception as exc:  # one broken provider must not hide the other stages
        for it in ITEMS:
            if it.stage == provider.stage and it.id not in reported:
                reported[it.id] = _not_checked(it, exc, f"the {provider.stage} provider")


def _not_checked(it: ChecklistItem, exc: Exception, where: str) -> ItemStatus:
    reason = (
        str(exc)
        if isinstance(exc, MlplanError)
        else f"internal error in {where}: {type(exc).__name__}: {exc}"
    )
    return ItemStatus(it, "failing", f"could not be checked: {reason}", _FIX)


def _not_built(it: ChecklistItem) -> ItemStatus:
    section = _STAGE_HOME[it.stage].removeprefix("mlplan.")
    return ItemStatus(
        it,
        "missing",
        f"not built yet: the {it.stage} stage comes with {_STAGE_HOME[it.stage]}",
        f"plan it now under {section}: in mlplan.yaml; its checks come with the stage",
    )
