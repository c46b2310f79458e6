"""Rollouts in the store: a deployment's move from its stable model to a candidate.

``mlplan deploy MODEL --strategy shadow|canary|blue-green|replace`` starts one (without a
strategy: the plan's, else its scenario's default); the candidate is cleared exactly as
``deploy`` clears it. ``replace`` swaps the model at once and is recorded as a rollout promoted
at once; so is a deployment's first model, which has nothing to roll out against. Each move
(``mlplan rollout promote|pause|resume|abort|rollback``, or the controller's) goes through the
state machine (``_machine.py``) and is written, with its event, in one transaction; a promotion
puts the candidate in the deployment (a ``deploy`` run) in that same transaction. When the
plan sets ``rollout.approval_above``, taking the candidate past that share of traffic (an
advance, a promotion) needs an approval of gate ``promote`` naming it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlplan.errors import (
    DeploymentNotFoundError,
    ParameterError,
    RolloutNotFoundError,
    RolloutStateError,
)
from mlplan.modeling import ModelInfo, get_model
from mlplan.rollout._machine import (
    ACTOR_KINDS,
    STRATEGIES,
    Action,
    ActorKind,
    Position,
    State,
    Strategy,
    apply,
    begin,
)
from mlplan.serving import check_clearance, check_deployment_name, point_deployment
from mlplan.store import (
    DeploymentRecord,
    ModelRecord,
    RolloutEventRecord,
    RolloutRecord,
    RunRecord,
    current_user,
    utcnow,
)
from mlplan.workspace import PRODUCTION, DeploymentInfo, Workspace, list_approvals

__all__ = [
    "PROMOTE_GATE",
    "RolloutEvent",
    "RolloutInfo",
    "active_rollout",
    "approval_needed",
    "move_rollout",
    "record_analysis",
    "rollout_history",
    "rollout_status",
    "start_rollout",
]

# The commands' spelling of each strategy (the plan writes blue_green).
_SPELLED = {"blue-green": "blue_green"}

PROMOTE_GATE = "promote"
"""The plan's approval gate that lets a candidate take more traffic than the plan's
``rollout.approval_above`` (an approval of this gate whose subject is the candidate,
``gbt-1@2``)."""

ANALYSIS = "analysis"
"""The action of an event that records an analysis without moving the rollout (the controller
records each failing one, so that failures are counted across its restarts)."""


@dataclass(frozen=True)
class RolloutEvent:
    """One transition of a rollout: the action, the states before (None when it began) and
    after, the candidate's weight and step after, who made it and why, and the figures that
    decided it."""

    action: str
    from_state: str | None
    to_state: str
    weight: float
    step: int
    actor: str
    actor_kind: str
    reason: str | None
    figures: dict[str, Any]
    at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "action": self.action,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "weight": self.weight,
            "step": self.step,
            "actor": self.actor,
            "actor_kind": self.actor_kind,
            "reason": self.reason,
            "figures": self.figures,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class RolloutInfo:
    """A rollout as the store holds it: the deployment, the stable model and the candidate
    (``name@version``), the strategy, the state, the candidate's share of traffic in percent
    and the stable model's (they sum to 100), the canary step reached of ``steps``, and its
    events, oldest first."""

    id: int
    deployment: str
    stable: str
    candidate: str
    strategy: str
    state: str
    weight: float
    step: int
    steps: tuple[float, ...]
    started_by: str
    note: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    ended_at: dt.datetime | None
    events: tuple[RolloutEvent, ...] = field(default=())

    @property
    def active(self) -> bool:
        """Whether it can still move (not promoted, aborted nor rolled back)."""
        return self.ended_at is None

    @property
    def stable_weight(self) -> float:
        """The stable model's share of traffic."""
        return 100.0 - self.weight

    @property
    def serving(self) -> str:
        """The model the deployment holds: the candidate once promoted, else the stable."""
        return self.candidate if self.state == "promoted" else self.stable

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "id": self.id,
            "deployment": self.deployment,
            "stable": self.stable,
            "candidate": self.candidate,
            "serving": self.serving,
            "strategy": self.strategy,
            "state": self.state,
            "active": self.active,
            "weight": self.weight,
            "stable_weight": self.stable_weight,
            "step": self.step,
            "steps": list(self.steps),
            "started_by": self.started_by,
            "note": self.note,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "ended_at": None if self.ended_at is None else self.ended_at.isoformat(),
            "events": [e.to_dict() for e in self.events],
        }


def start_rollout(
    ws: Workspace,
    model: str,
    *,
    name: str = PRODUCTION,
    strategy: str | None = None,
    by: str | None = None,
    note: str | None = None,
    allow_failed_gates: bool = False,
) -> tuple[DeploymentInfo, RolloutInfo]:
    """Start moving the deployment ``name`` to ``model`` (a name: its newest package
    version; or ``name@version``) by ``strategy``: ``shadow``, ``canary``, ``blue-green`` (or
    ``blue_green``) or ``replace``; None takes the plan's (``Plan.rollout_strategy``), or
    ``replace`` for a deployment's first model. The deployment as it is after, and the
    rollout.

    A progressive rollout starts ``pending``, the deployment keeping its stable model; the
    controller moves it. ``replace`` puts the model in at once, a rollout promoted at once.
    The model is cleared as ``deploy`` clears it (``allow_failed_gates`` for staging).

    Raises
    ------
    ParameterError
        An unknown strategy or a malformed deployment name.
    ModelNotFoundError
        An unknown model.
    CheckFailedError
        The version is not cleared to ship.
    RolloutStateError
        A progressive strategy for a deployment with no model yet; the candidate is the
        model the deployment holds already; the deployment has an active rollout.
    """
    check_deployment_name(name)
    chosen = _strategy(strategy)
    info = get_model(ws, model)
    check_clearance(ws, info.ref, allow_failed_gates=allow_failed_gates, require_evaluation=True)
    who = by or current_user()
    with ws.write() as session:
        project_id = ws.project_id(session)
        deployment = _deployment(session, project_id, name)
        if deployment is None:
            if chosen not in (None, "replace"):
                raise RolloutStateError(
                    f"deployment {name!r} holds no model yet: a {chosen} rollout needs a stable "
                    f"model to move from; put the first one there with: mlplan deploy "
                    f"{info.ref} --name {name} --strategy replace"
                )
            return _replace(ws, session, info, name, who, note, allow_failed_gates, first=True)
        _refuse_active(session, deployment)
        stable = session.get(ModelRecord, deployment.model_id)
        assert stable is not None
        if (stable.name, stable.version) == (info.name, info.version):
            raise RolloutStateError(
                f"deployment {name!r} serves {info.ref} already: nothing to roll out"
            )
        chosen = chosen or cast(Strategy, ws.plan.rollout_strategy)
        if chosen == "replace":
            return _replace(ws, session, info, name, who, note, allow_failed_gates, first=False)
        steps = tuple(s.weight for s in ws.plan.rollout.steps) if chosen == "canary" else ()
        position = begin(chosen, steps)
        candidate = _model_row(session, project_id, info)
        parameters = {
            "deployment": name,
            "model": info.ref,
            "stable": f"{stable.name}@{stable.version}",
            "strategy": chosen,
            "by": who,
            "note": note,
            "allow_failed_gates": allow_failed_gates,
        }
        with ws.record("rollout", parameters, session=session) as run:
            run.input("model", info.ref, sha256=info.package_sha256)
        row = _new_row(project_id, deployment, stable.id, candidate.id, position, who, note, run.id)
        _insert(session, row, name)
        _event(session, row, "begin", None, position, who, "person", note, {})
        info_after = DeploymentInfo.from_record(deployment, stable)
        return info_after, _info(session, row, name)


def move_rollout(
    ws: Workspace,
    name: str,
    action: Action,
    *,
    by: str | None = None,
    note: str | None = None,
    actor_kind: ActorKind = "person",
    figures: Mapping[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> RolloutInfo:
    """Make ``action`` (``promote``, ``pause``, ``resume``, ``abort``, ``rollback``; the
    controller's ``start`` and ``advance`` too) on the active rollout of the deployment
    ``name``, as ``by`` (a person, or the controller), with ``note`` as the reason and
    ``figures`` as what decided it, at ``at`` (default now; the controller gives its clock's).
    The rollout after.

    The state and its event are written in one transaction; a promotion puts the candidate
    in the deployment (a ``deploy`` run) in the same one; an abort or a rollback leaves the
    stable model serving. When the plan sets ``rollout.approval_above``, an advance past that
    share or a promotion needs an approval of gate ``promote`` naming the candidate.

    Raises
    ------
    DeploymentNotFoundError
        No deployment ``name``.
    RolloutNotFoundError
        The deployment has no active rollout.
    RolloutStateError
        The move is not allowed from the rollout's state for that actor (the message names
        what is), or it takes the candidate past the plan's ``approval_above`` without an
        approval of gate ``promote`` naming it (the message names the command to record one).
    CheckFailedError
        A promotion of a candidate no longer cleared to ship (its approval revoked, a newer
        evaluation failed).
    """
    if actor_kind not in ACTOR_KINDS:
        raise ParameterError(
            "actor_kind", f"{{param}} {actor_kind!r}: use one of {', '.join(ACTOR_KINDS)}"
        )
    who = by or current_user()
    # Read before the write transaction: SQLite lets one transaction at a time hold the file.
    # A promotion is cleared again: an approval revoked since the start no longer counts.
    expected = _active_candidate(ws, name) if action == "promote" else None
    promoted = None
    if expected is not None:
        ref, allow_failed_gates = expected
        promoted = get_model(ws, ref)
        check_clearance(ws, ref, allow_failed_gates=allow_failed_gates, require_evaluation=True)
    approved = _approved(ws) if action in ("advance", "promote") else None
    with ws.write() as session:
        project_id = ws.project_id(session)
        deployment = _deployment(session, project_id, name)
        if deployment is None:
            raise _no_deployment(session, project_id, name)
        row = session.scalars(
            select(RolloutRecord).where(
                RolloutRecord.deployment_id == deployment.id, RolloutRecord.active.is_(True)
            )
        ).one_or_none()
        if row is None:
            raise RolloutNotFoundError(
                f"deployment {name!r} has no active rollout; start one with: mlplan deploy "
                f"MODEL --name {name} --strategy canary (see mlplan rollout history {name})"
            )
        candidate = session.get(ModelRecord, row.candidate_id)
        assert candidate is not None
        label = f"{name}'s {row.strategy} rollout of {candidate.name}@{candidate.version}"
        before = _position(row)
        after = apply(before, action, actor_kind, name=label, figures=figures)
        if approved is not None:
            missing = _approval_missing(
                ws, f"{candidate.name}@{candidate.version}", after.weight, approved
            )
            if missing is not None:
                raise RolloutStateError(f"{label}: {missing}")
        if after.state == "promoted":
            if promoted is None or promoted.ref != f"{candidate.name}@{candidate.version}":
                raise RolloutStateError(f"{label} changed meanwhile; look and retry: {action}")
            point_deployment(
                ws,
                session,
                promoted,
                name,
                by=who,
                note=note,
                parameters={"strategy": row.strategy, "rollout": row.id},
                within_rollout=True,
            )
        _set(row, after, at=at)
        _event(session, row, action, before.state, after, who, actor_kind, note, figures or {}, at)
        return _info(session, row, name)


def record_analysis(
    ws: Workspace,
    name: str,
    figures: Mapping[str, Any],
    *,
    by: str,
    note: str | None = None,
    at: dt.datetime | None = None,
) -> RolloutInfo:
    """Record an analysis of the deployment ``name``'s progressing rollout as an event that
    moves nothing (action ``analysis``, the state, weight and step unchanged): ``figures``
    what it found, ``by`` the controller that ran it, at ``at`` (default now). The rollout
    after, with its events.

    Raises
    ------
    DeploymentNotFoundError
        No deployment ``name``.
    RolloutNotFoundError
        The deployment has no active rollout.
    RolloutStateError
        The rollout is not progressing (a person paused it meanwhile).
    """
    with ws.write() as session:
        project_id = ws.project_id(session)
        deployment = _deployment(session, project_id, name)
        if deployment is None:
            raise _no_deployment(session, project_id, name)
        row = _active_row(session, deployment)
        if row is None:
            raise RolloutNotFoundError(f"deployment {name!r} has no active rollout")
        if row.state != "progressing":
            raise RolloutStateError(
                f"{name}'s rollout is {row.state}: an analysis is recorded only while it progresses"
            )
        position = _position(row)
        _event(session, row, ANALYSIS, row.state, position, by, "controller", note, figures, at)
        return _info(session, row, name)


def active_rollout(ws: Workspace, name: str) -> RolloutInfo | None:
    """The deployment ``name``'s active rollout with its events, None when it has none.

    Raises
    ------
    DeploymentNotFoundError
        No deployment ``name``.
    """
    with ws.store.transaction() as session:
        project_id = ws.project_id(session)
        (deployment,) = _deployments(session, project_id, name)
        row = _active_row(session, deployment)
        return None if row is None else _info(session, row, name)


def approval_needed(ws: Workspace, candidate: str, weight: float) -> str | None:
    """Why taking ``candidate`` (``name@version``) to ``weight`` percent of traffic needs an
    approval not recorded yet, with the command that records it; None when it may go there
    (the plan sets no ``rollout.approval_above``, the weight is not past it, or an approval of
    gate ``promote`` names the candidate)."""
    if ws.plan.rollout.approval_above is None:
        return None
    return _approval_missing(ws, candidate, weight, _approved(ws))


def _approved(ws: Workspace) -> frozenset[str]:
    """The subjects of the active approvals of gate ``promote`` (read before a write
    transaction: SQLite lets one transaction at a time hold the file)."""
    if ws.plan.rollout.approval_above is None:
        return frozenset()
    return frozenset(a.subject for a in list_approvals(ws, PROMOTE_GATE) if a.subject)


def _approval_missing(
    ws: Workspace, candidate: str, weight: float, approved: frozenset[str]
) -> str | None:
    """The refusal of ``candidate`` at ``weight`` percent without an approval, or None."""
    above = ws.plan.rollout.approval_above
    if above is None or weight <= above or candidate in approved:
        return None
    rule = ws.plan.approval_for(PROMOTE_GATE)  # the plan requires it with approval_above
    role = rule.role if rule is not None else "ROLE"
    return (
        f"taking {candidate} to {weight:g}% of traffic, past the plan's approval_above "
        f"({above:g}%), needs an approval of gate {PROMOTE_GATE!r} naming it; record one "
        f"with: mlplan approve {PROMOTE_GATE} --role {role} --by WHO --subject {candidate}"
    )


def _active_row(session: Session, deployment: DeploymentRecord) -> RolloutRecord | None:
    """The deployment's active rollout's record, None when it has none."""
    return session.scalars(
        select(RolloutRecord).where(
            RolloutRecord.deployment_id == deployment.id, RolloutRecord.active.is_(True)
        )
    ).one_or_none()


def rollout_status(ws: Workspace, name: str | None = None) -> list[RolloutInfo]:
    """The newest rollout of each deployment (``name``: of that one only), active or not,
    by deployment name, without their events.

    Raises
    ------
    DeploymentNotFoundError
        No deployment ``name``.
    RolloutNotFoundError
        The deployment ``name`` never had a rollout.
    """
    with ws.store.transaction() as session:
        project_id = ws.project_id(session)
        deployments = _deployments(session, project_id, name)
        found = []
        for deployment in deployments:
            row = session.scalars(
                select(RolloutRecord)
                .where(RolloutRecord.deployment_id == deployment.id)
                .order_by(RolloutRecord.id.desc())
                .limit(1)
            ).one_or_none()
            if row is not None:
                found.append(_info(session, row, deployment.name, events=False))
        if name is not None and not found:
            raise _never(name)
        return found


def rollout_history(ws: Workspace, name: str) -> list[RolloutInfo]:
    """Every rollout of the deployment ``name``, oldest first, each with its events.

    Raises
    ------
    DeploymentNotFoundError
        No deployment ``name``.
    RolloutNotFoundError
        It never had a rollout.
    """
    with ws.store.transaction() as session:
        project_id = ws.project_id(session)
        (deployment,) = _deployments(session, project_id, name)
        rows = session.scalars(
            select(RolloutRecord)
            .where(RolloutRecord.deployment_id == deployment.id)
            .order_by(RolloutRecord.id)
        ).all()
        if not rows:
            raise _never(name)
        return [_info(session, row, name) for row in rows]


def _active_candidate(ws: Workspace, name: str) -> tuple[str, bool] | None:
    """The candidate (``name@version``) of the deployment's active rollout, if it has one,
    and whether it was started with ``allow_failed_gates``."""
    with ws.store.transaction() as session:
        row = session.execute(
            select(ModelRecord.name, ModelRecord.version, RunRecord.parameters)
            .join(RolloutRecord, RolloutRecord.candidate_id == ModelRecord.id)
            .join(RunRecord, RolloutRecord.run_id == RunRecord.id)
            .join(DeploymentRecord, RolloutRecord.deployment_id == DeploymentRecord.id)
            .where(
                DeploymentRecord.project_id == ws.project_id(session),
                DeploymentRecord.name == name,
                RolloutRecord.active.is_(True),
            )
        ).one_or_none()
        if row is None:
            return None
        return f"{row[0]}@{row[1]}", bool(row[2].get("allow_failed_gates"))


def _strategy(strategy: str | None) -> Strategy | None:
    """The strategy named on the command line, in the plan's spelling."""
    if strategy is None:
        return None
    spelled = _SPELLED.get(strategy, strategy)
    if spelled not in STRATEGIES:
        raise ParameterError(
            "strategy",
            f"{{param}} {strategy!r}: use shadow, canary, blue-green or replace",
        )
    return spelled


def _replace(
    ws: Workspace,
    session: Session,
    info: ModelInfo,
    name: str,
    who: str,
    note: str | None,
    allow_failed_gates: bool,
    *,
    first: bool,
) -> tuple[DeploymentInfo, RolloutInfo]:
    """Swap the deployment's model at once (its first, or ``--strategy replace``), recorded
    as a rollout promoted at once."""
    project_id = ws.project_id(session)
    deployment = _deployment(session, project_id, name)
    stable_id = None if deployment is None else deployment.model_id
    parameters = {"allow_failed_gates": allow_failed_gates, "strategy": "replace"}
    deployment, candidate, previous = point_deployment(
        ws, session, info, name, by=who, note=note, parameters=parameters, within_rollout=True
    )
    position = begin("replace")
    row = _new_row(
        project_id,
        deployment,
        candidate.id if stable_id is None else stable_id,
        candidate.id,
        position,
        who,
        note,
        deployment.run_id,
    )
    _insert(session, row, name)
    reason = "the deployment's first model: nothing to roll out against" if first else note
    _event(session, row, "begin", None, position, who, "person", reason, {})
    promoted = apply(position, "promote", "person", name=f"{name}'s replace")
    _set(row, promoted)
    _event(session, row, "promote", "pending", promoted, who, "person", reason, {})
    return DeploymentInfo.from_record(deployment, candidate, previous), _info(session, row, name)


def _deployment(session: Session, project_id: int, name: str) -> DeploymentRecord | None:
    """The deployment's record, None when there is none."""
    return session.scalars(
        select(DeploymentRecord).where(
            DeploymentRecord.project_id == project_id, DeploymentRecord.name == name
        )
    ).one_or_none()


def _deployments(session: Session, project_id: int, name: str | None) -> list[DeploymentRecord]:
    """The project's deployments by name (``name``: that one, or an error naming those
    there are)."""
    rows = list(
        session.scalars(
            select(DeploymentRecord)
            .where(DeploymentRecord.project_id == project_id)
            .order_by(DeploymentRecord.name)
        )
    )
    if name is None:
        return rows
    chosen = [r for r in rows if r.name == name]
    if not chosen:
        raise _no_deployment(session, project_id, name)
    return chosen


def _no_deployment(session: Session, project_id: int, name: str) -> DeploymentNotFoundError:
    """The error for a deployment that does not exist, naming those that do."""
    names = session.scalars(
        select(DeploymentRecord.name)
        .where(DeploymentRecord.project_id == project_id)
        .order_by(DeploymentRecord.name)
    ).all()
    return DeploymentNotFoundError(
        f"no deployment {name!r}; deployments: {', '.join(names) or 'none'}. Put a model "
        f"there with: mlplan deploy MODEL --name {name}"
    )


def _never(name: str) -> RolloutNotFoundError:
    """The error for a deployment that never had a rollout."""
    return RolloutNotFoundError(
        f"deployment {name!r} has had no rollout; start one with: mlplan deploy MODEL "
        f"--name {name} --strategy canary"
    )


def _refuse_active(session: Session, deployment: DeploymentRecord) -> None:
    """Refuse a second rollout while one is active, naming it and how to end it."""
    active = session.scalars(
        select(RolloutRecord).where(
            RolloutRecord.deployment_id == deployment.id, RolloutRecord.active.is_(True)
        )
    ).one_or_none()
    if active is not None:
        candidate = session.get(ModelRecord, active.candidate_id)
        assert candidate is not None
        raise RolloutStateError(
            f"deployment {deployment.name!r} has an active {active.strategy} rollout of "
            f"{candidate.name}@{candidate.version} ({active.state}); promote, abort or roll it "
            f"back first, e.g. mlplan rollout abort {deployment.name} --by WHO"
        )


def _model_row(session: Session, project_id: int, info: ModelInfo) -> ModelRecord:
    """The package version's record."""
    return session.scalars(
        select(ModelRecord).where(
            ModelRecord.project_id == project_id,
            ModelRecord.name == info.name,
            ModelRecord.version == info.version,
        )
    ).one()


def _new_row(
    project_id: int,
    deployment: DeploymentRecord,
    stable_id: int,
    candidate_id: int,
    position: Position,
    who: str,
    note: str | None,
    run_id: str,
) -> RolloutRecord:
    """A rollout's record at ``position``."""
    now = utcnow()
    row = RolloutRecord(
        project_id=project_id,
        deployment_id=deployment.id,
        stable_id=stable_id,
        candidate_id=candidate_id,
        strategy=position.strategy,
        started_by=who,
        note=note,
        run_id=run_id,
        created_at=now,
    )
    _set(row, position, at=now)
    return row


def _insert(session: Session, row: RolloutRecord, name: str) -> None:
    """Add the rollout; the database refuses a second active one of a deployment (a
    concurrent ``deploy`` that passed the check too)."""
    session.add(row)
    try:
        session.flush()
    except IntegrityError as error:
        raise RolloutStateError(
            f"deployment {name!r} has an active rollout already (started meanwhile); see "
            f"mlplan rollout status {name}"
        ) from error


def _set(row: RolloutRecord, position: Position, *, at: dt.datetime | None = None) -> None:
    """Write ``position`` into the rollout's record."""
    now = at or utcnow()
    row.state = position.state
    row.weight = position.weight
    row.step = position.step
    row.steps = list(position.steps)
    row.active = True if position.active else None
    row.updated_at = now
    if not position.active:
        row.ended_at = now


def _position(row: RolloutRecord) -> Position:
    """The rollout's record as the state machine sees it."""
    return Position(
        cast(Strategy, row.strategy),
        cast(State, row.state),
        row.weight,
        row.step,
        tuple(row.steps),
    )


def _event(
    session: Session,
    row: RolloutRecord,
    action: str,
    before: str | None,
    after: Position,
    who: str,
    actor_kind: str,
    reason: str | None,
    figures: Mapping[str, Any],
    at: dt.datetime | None = None,
) -> None:
    """Record one transition of ``row`` (flushed with it, in the same transaction), at
    ``at`` (default now)."""
    session.add(
        RolloutEventRecord(
            rollout_id=row.id,
            action=action,
            from_state=before,
            to_state=after.state,
            weight=after.weight,
            step=after.step,
            actor=who,
            actor_kind=actor_kind,
            reason=reason,
            figures=dict(figures),
            at=at or utcnow(),
        )
    )
    session.flush()


def _info(session: Session, row: RolloutRecord, name: str, *, events: bool = True) -> RolloutInfo:
    """The rollout's view, with its events unless ``events`` is false."""
    stable = session.get(ModelRecord, row.stable_id)
    candidate = session.get(ModelRecord, row.candidate_id)
    assert stable is not None and candidate is not None
    found: tuple[RolloutEvent, ...] = ()
    if events:
        found = tuple(
            RolloutEvent(
                e.action,
                e.from_state,
                e.to_state,
                e.weight,
                e.step,
                e.actor,
                e.actor_kind,
                e.reason,
                dict(e.figures),
                e.at,
            )
            for e in session.scalars(
                select(RolloutEventRecord)
                .where(RolloutEventRecord.rollout_id == row.id)
                .order_by(RolloutEventRecord.id)
            )
        )
    return RolloutInfo(
        row.id,
        name,
        f"{stable.name}@{stable.version}",
        f"{candidate.name}@{candidate.version}",
        row.strategy,
        row.state,
        row.weight,
        row.step,
        tuple(row.steps),
        row.started_by,
        row.note,
        row.created_at,
        row.updated_at,
        row.ended_at,
        found,
    )
