"""Rollouts in the store: started by deploy, moved by people (and later the controller),
every move written with its event; at most one active per deployment."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from tests.conftest import edit_plan, evaluated, register_split_train

from mlplan.errors import (
    CheckFailedError,
    DeploymentNotFoundError,
    ParameterError,
    RolloutNotFoundError,
    RolloutStateError,
)
from mlplan.modeling import train_model
from mlplan.rollout import move_rollout, rollout_history, rollout_status, start_rollout
from mlplan.serving import deploy
from mlplan.store import RolloutEventRecord, RolloutRecord, RunRecord
from mlplan.workspace import Workspace, get_deployment, list_approvals, revoke_approval


def _rows(ws: Workspace) -> tuple[int, int]:
    with ws.store.transaction() as session:
        rollouts = session.scalar(sa.select(sa.func.count()).select_from(RolloutRecord))
        events = session.scalar(sa.select(sa.func.count()).select_from(RolloutEventRecord))
        return int(rollouts or 0), int(events or 0)


def test_a_first_model_is_a_replace_promoted_at_once(live: Workspace) -> None:
    (first,) = rollout_history(live, "production")
    assert (first.strategy, first.state, first.weight, first.active) == (
        "replace",
        "promoted",
        100.0,
        False,
    )
    assert first.stable == first.candidate == first.serving == get_deployment(live).model_ref
    assert [(e.action, e.from_state, e.to_state, e.actor) for e in first.events] == [
        ("begin", None, "pending", "Priya"),
        ("promote", "pending", "promoted", "Priya"),
    ]
    assert first.events[0].reason == "the deployment's first model: nothing to roll out against"


def test_a_canary_keeps_the_stable_model_until_promoted(live: Workspace) -> None:
    stable = get_deployment(live).model_ref
    deployment, rollout = start_rollout(live, "logistic-2", strategy="canary", by="Ana")
    assert deployment.model_ref == stable == rollout.stable == rollout.serving
    assert (rollout.strategy, rollout.state, rollout.weight, rollout.stable_weight) == (
        "canary",
        "pending",
        0.0,
        100.0,
    )
    assert rollout.steps == (5.0, 25.0, 50.0, 100.0)  # the plan's default steps
    paused = move_rollout(live, "production", "pause", by="Ana", note="wait for monday")
    assert paused.state == "paused" and get_deployment(live).model_ref == stable
    resumed = move_rollout(live, "production", "resume", by="Ana")
    advanced = move_rollout(
        live, "production", "advance", by="controller", actor_kind="controller",
        figures={"analysis": "pass", "requests": 120},
    )  # fmt: skip
    assert (resumed.state, advanced.weight, advanced.step) == ("progressing", 5.0, 1)
    promoted = move_rollout(live, "production", "promote", by="Ana", note="looks good")
    assert (promoted.state, promoted.weight, promoted.serving) == (
        "promoted",
        100.0,
        rollout.candidate,
    )
    assert get_deployment(live).model_ref == rollout.candidate
    history = rollout_history(live, "production")[-1]
    assert [(e.action, e.from_state, e.to_state, e.actor_kind) for e in history.events] == [
        ("begin", None, "pending", "person"),
        ("pause", "pending", "paused", "person"),
        ("resume", "paused", "progressing", "person"),
        ("advance", "progressing", "progressing", "controller"),
        ("promote", "progressing", "promoted", "person"),
    ]
    assert history.events[1].reason == "wait for monday"
    assert history.events[3].figures == {"analysis": "pass", "requests": 120}
    with live.store.transaction() as session:  # the promotion is a deploy run, as deploy's
        runs = session.scalars(select(RunRecord).where(RunRecord.job == "deploy")).all()
        assert runs[-1].parameters["model"] == rollout.candidate
        assert runs[-1].parameters["rollout"] == rollout.id


def test_abort_and_rollback_leave_the_stable_model_serving(live: Workspace) -> None:
    stable = get_deployment(live).model_ref
    start_rollout(live, "logistic-2", strategy="shadow")
    aborted = move_rollout(live, "production", "abort", by="Ana", note="wrong model")
    assert (aborted.state, aborted.weight, aborted.serving) == ("aborted", 0.0, stable)
    _, blue_green = start_rollout(live, "logistic-2", strategy="blue-green")
    assert blue_green.strategy == "blue_green" and blue_green.steps == (100.0,)
    move_rollout(live, "production", "start", by="ctl", actor_kind="controller")
    switched = move_rollout(live, "production", "advance", by="ctl", actor_kind="controller")
    assert switched.weight == 100.0 and get_deployment(live).model_ref == stable
    back = move_rollout(live, "production", "rollback", by="Ana", note="p99 doubled")
    assert (back.state, back.weight, back.stable_weight) == ("rolled_back", 0.0, 100.0)
    assert get_deployment(live).model_ref == stable
    assert [r.state for r in rollout_history(live, "production")] == [
        "promoted",
        "aborted",
        "rolled_back",
    ]
    (latest,) = rollout_status(live, "production")
    assert latest.id == back.id and latest.events == ()


def test_without_a_strategy_the_plans_scenario_decides(live: Workspace) -> None:
    _, rollout = start_rollout(live, "logistic-2")
    assert rollout.strategy == live.plan.rollout_strategy == "canary"  # scenario: new
    move_rollout(live, "production", "abort", by="Ana")
    deployment, replaced = start_rollout(live, "logistic-2", strategy="replace", by="Ana")
    assert (replaced.strategy, replaced.state) == ("replace", "promoted")
    assert deployment.model_ref == replaced.candidate == get_deployment(live).model_ref
    assert [e.action for e in replaced.events] == ["begin", "promote"]


def test_bad_moves_are_refused_and_write_nothing(live: Workspace) -> None:
    with pytest.raises(DeploymentNotFoundError, match=r"no deployment 'staging'; deployments: "):
        move_rollout(live, "staging", "pause", by="Ana")
    with pytest.raises(RolloutNotFoundError, match=r"'production' has no active rollout"):
        move_rollout(live, "production", "pause", by="Ana")
    with pytest.raises(CheckFailedError, match=r"logistic-3@1 has not been evaluated"):
        start_rollout(live, "logistic-3", strategy="canary")
    with pytest.raises(ParameterError, match=r"'strategy' 'linear': use shadow, canary"):
        start_rollout(live, "logistic-2", strategy="linear")
    with pytest.raises(RolloutStateError, match=r"serves logistic-1@\d already"):
        start_rollout(live, get_deployment(live).model_ref, strategy="canary")
    with pytest.raises(RolloutStateError, match=r"'staging' holds no model yet: a canary"):
        start_rollout(live, "logistic-2", name="staging", strategy="canary")
    before = _rows(live)
    start_rollout(live, "logistic-2", strategy="canary")
    with pytest.raises(RolloutStateError, match=r"has an active canary rollout of logistic-2@\d"):
        start_rollout(live, "logistic-2", strategy="shadow")
    with pytest.raises(RolloutStateError, match=r"has an active canary rollout \(pending\)"):
        deploy(live, "logistic-2")  # nothing swaps the stable model under a rollout
    with pytest.raises(
        RolloutStateError,
        match=r"production's canary rollout of logistic-2@\d is pending: cannot resume; a "
        r"person may: pause, promote, abort",
    ):
        move_rollout(live, "production", "resume", by="Ana")
    assert _rows(live) == (before[0] + 1, before[1] + 1)  # the start only


def test_the_database_holds_one_active_rollout_per_deployment(live: Workspace) -> None:
    _, rollout = start_rollout(live, "logistic-2", strategy="canary")
    with live.store.transaction() as session:  # as a racing deploy would
        row = session.get(RolloutRecord, rollout.id)
        assert row is not None
        twin = RolloutRecord(
            **{c: getattr(row, c) for c in row.__table__.columns.keys() if c != "id"}  # noqa: SIM118
        )
        session.add(twin)
        with pytest.raises(sa.exc.IntegrityError):
            session.flush()
        session.rollback()
    ended = move_rollout(live, "production", "abort", by="Ana")
    with live.store.transaction() as session:  # ended ones are not active: any number
        row = session.get(RolloutRecord, ended.id)
        assert row is not None and row.active is None
    start_rollout(live, "logistic-2", strategy="canary")


def test_the_checklist_names_the_strategy_and_each_deployments_newest_rollout(
    live: Workspace,
) -> None:
    from mlplan.checklist import status

    unset = status(live).get("rollout.strategy")  # the template leaves the scenario null
    assert (unset.state, unset.evidence) == (
        "missing",
        "the plan chooses no rollout strategy, nor a scenario to derive one from",
    )
    edit_plan(live, "scenario: null", "scenario: new")
    first = status(live).get("rollout.strategy")
    assert (first.state, first.next_step) == ("done", None)
    assert first.evidence.startswith("rollout: canary (the scenario's default); production: ")
    assert first.evidence.endswith(" promoted")  # the first model, a replace
    _, rollout = start_rollout(live, "logistic-2", strategy="shadow")
    later = status(live).get("rollout.strategy").evidence
    assert later.endswith(f"production: shadow of {rollout.candidate} pending at 0%")
    shadow = status(live).get("rollout.shadow")  # the plan's canary, but a shadow ran
    assert (shadow.state, shadow.evidence) == (
        "missing",
        f"production: shadow of {rollout.candidate} pending at 0% (no analysis yet)",
    )


def test_a_seeded_walk_of_moves_through_the_store_keeps_every_promise(live: Workspace) -> None:
    """Random moves by people and the controller, legal or not, over several rollouts: the
    deployment serves the stable model until a promote, the weights sum to 100, a refused
    move writes nothing, and every move that happened is an event."""
    import random

    from mlplan.rollout import ACTIONS, ACTOR_KINDS

    rng = random.Random(14)
    made = 0
    for _ in range(3):
        _, rollout = start_rollout(live, "logistic-2", strategy=rng.choice(["canary", "shadow"]))
        stable, moves = rollout.stable, 1
        while rollout.active:
            action, actor = rng.choice(ACTIONS), rng.choice(ACTOR_KINDS)
            figures = {"analysis": rng.choice(["pass", "fail"])}
            before = _rows(live)
            try:
                rollout = move_rollout(
                    live, "production", action, by=actor, actor_kind=actor, figures=figures
                )
            except RolloutStateError:
                assert _rows(live) == before
                continue
            moves += 1
            made += 1
            assert rollout.weight + rollout.stable_weight == 100.0
            assert 0.0 <= rollout.weight <= 100.0
            serving = get_deployment(live).model_ref
            assert serving == (rollout.candidate if rollout.state == "promoted" else stable)
            assert len(rollout_history(live, "production")[-1].events) == moves
        if rollout.state == "promoted":  # the candidate is stable now: back to the first
            back, _ = start_rollout(live, rollout.stable, strategy="replace")
            assert back.model_ref == rollout.stable
    assert made >= 3


def test_a_promotion_is_cleared_again(sqlite_ws: Workspace) -> None:
    ws = register_split_train(sqlite_ws)
    start_rollout(ws, evaluated(ws))
    edit_plan(ws, "target: 0.85", "target: 0.999")  # the gates fail from now on
    train_model(ws, family="logistic", seed=2)
    candidate = evaluated(ws, "logistic-2")  # so the deploy role approved it
    start_rollout(ws, "logistic-2", strategy="canary")
    (approval,) = [a for a in list_approvals(ws, "deploy") if a.subject == candidate]
    rule = ws.plan.approval_for("deploy")
    assert rule is not None
    revoke_approval(ws, approval.id, role=rule.role, by="Priya", note="second thoughts")
    before = _rows(ws)
    with pytest.raises(CheckFailedError, match=rf"{candidate} may not be deployed: gates failed"):
        move_rollout(ws, "production", "promote", by="Priya")
    assert _rows(ws) == before and rollout_status(ws)[0].state == "pending"
    assert get_deployment(ws).model_ref != candidate
