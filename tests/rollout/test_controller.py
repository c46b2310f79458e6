"""The controller, tick by tick on a fake clock with a fake analyser: it starts, watches,
advances, promotes, pauses and rolls back as the plan and the analyses say; killed and
started again it resumes from the store and never promotes on what it did not watch; a
promotion past the plan's approval_above waits for an approval."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
from tests.conftest import edit_plan, evaluated, register_split_train

from mlplan.errors import RolloutStateError
from mlplan.modeling import train_model
from mlplan.rollout import (
    Controller,
    Decision,
    acquire_lease,
    move_rollout,
    rollout_history,
    start_rollout,
)
from mlplan.workspace import (
    Workspace,
    approve,
    get_deployment,
    list_approvals,
    revoke_approval,
)

_STEPS = """  steps:
    - {weight: 5, duration: 30m, min_requests: 100}
    - {weight: 25, duration: 1h, min_requests: 100}
    - {weight: 50, duration: 1h, min_requests: 100}
    - {weight: 100, duration: 1d, min_requests: 100}
"""
_SHORT = """  steps:
    - {weight: 10, duration: 60s, min_requests: 0}
    - {weight: 100, duration: 60s, min_requests: 0}
"""


_APPROVAL = "  approval_above: null"


class Clock:
    """A clock the test moves: seconds since the epoch, from now."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Canned:
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "requests": 120}


class Analyser:
    """Answers ``verdict`` (the test changes it) and keeps each window asked for."""

    def __init__(self, verdict: str = "pass") -> None:
        self.verdict = verdict
        self.since: list[dt.datetime] = []

    def __call__(self, ws: Workspace, name: str, *, since: dt.datetime) -> Canned:
        self.since.append(since)
        return Canned(self.verdict)


@pytest.fixture
def short(live: Workspace) -> Workspace:
    """The live project with two 60s steps (10 % then 100 %) analysed every 20s."""
    edit_plan(live, _STEPS, _SHORT)
    edit_plan(live, "  interval: 1m", "  interval: 20s")
    return live


def _controller(ws: Workspace, clock: Clock, analyser: Analyser, who: str) -> Controller:
    return Controller(ws, "production", analyse=analyser, clock=clock, holder=who)


def _moves(ws: Workspace) -> list[tuple[str, str, str]]:
    """The newest rollout's events: (action, state after, actor kind)."""
    return [
        (e.action, e.to_state, e.actor_kind) for e in rollout_history(ws, "production")[-1].events
    ]


def _run(controller: Controller, clock: Clock, seconds: int, every: int = 5) -> list[Decision]:
    """Tick every ``every`` seconds of the clock for ``seconds``; the decisions that moved."""
    moved = []
    for _ in range(seconds // every):
        clock.advance(every)
        decision = controller.tick()
        if decision.action:
            moved.append(decision)
    return moved


def test_a_healthy_canary_is_walked_through_its_steps_and_promoted(short: Workspace) -> None:
    stable = get_deployment(short).model_ref
    candidate = start_rollout(short, "logistic-2", strategy="canary", by="Ana")[1].candidate
    clock, analyser = Clock(), Analyser("pass")
    controller = _controller(short, clock, analyser, "ctl-a")
    first = controller.tick()
    assert (first.action, first.state, first.weight, first.step) == (
        "advance",
        "progressing",
        10,
        1,
    )
    assert get_deployment(short).model_ref == stable
    # Analysed every 20s of the step; once it has been watched for 60s, it moves on.
    assert [d.action for d in _run(controller, clock, 55)] == []
    assert len(analyser.since) == 3
    clock.advance(5)
    assert controller.tick().action == "advance"
    last = _run(controller, clock, 60)
    assert [d.action for d in last] == ["promote"]
    assert get_deployment(short).model_ref == candidate
    assert _moves(short) == [
        ("begin", "pending", "person"),
        ("start", "progressing", "controller"),
        ("advance", "progressing", "controller"),
        ("advance", "progressing", "controller"),
        ("promote", "promoted", "controller"),
    ]
    promoted = rollout_history(short, "production")[-1].events[-1]
    assert promoted.actor == "ctl-a" and promoted.figures["analysis"] == "pass"
    assert promoted.figures["report"] == {"verdict": "pass", "requests": 120}
    assert controller.tick().message == "production has no active rollout; nothing to do"


def test_failures_count_across_a_restart_and_the_limit_rolls_back(short: Workspace) -> None:
    edit_plan(short, "  failure_limit: 1", "  failure_limit: 2")
    stable = get_deployment(short).model_ref
    start_rollout(short, "logistic-2", strategy="canary", by="Ana")
    clock, analyser = Clock(), Analyser("fail")
    first = _controller(short, clock, analyser, "ctl-a")
    first.tick()
    clock.advance(20)
    failed = first.tick()
    assert failed.action is None and failed.analysed
    assert "failed (1 of 2)" in failed.message
    # ctl-a dies without giving the lease back: ctl-b waits for it to expire, then the
    # failure recorded before counts: one more rolls the canary back.
    second = _controller(short, clock, analyser, "ctl-b")
    clock.advance(1)
    waiting = second.tick()
    assert not waiting.held and waiting.holder == "ctl-a" and waiting.action is None
    clock.advance(10)
    back = second.tick()
    assert (back.action, back.state, back.weight) == ("rollback", "rolled_back", 0)
    assert "failed (2 of 2)" in back.message
    assert get_deployment(short).model_ref == stable
    assert [m[0] for m in _moves(short)] == [
        "begin", "start", "advance", "analysis", "rollback"
    ]  # fmt: skip


def test_without_auto_rollback_a_failing_canary_is_paused(short: Workspace) -> None:
    edit_plan(short, _APPROVAL, f"{_APPROVAL}\n  auto_rollback: false")
    start_rollout(short, "logistic-2", strategy="canary", by="Ana")
    clock, analyser = Clock(), Analyser("fail")
    controller = _controller(short, clock, analyser, "ctl-a")
    controller.tick()
    paused = _run(controller, clock, 20)
    assert [(d.action, d.state) for d in paused] == [("pause", "paused")]
    assert "auto_rollback: false" in paused[0].message
    clock.advance(20)
    assert controller.tick().action is None  # paused: a person moves it


def test_an_inconclusive_step_is_paused_never_promoted(short: Workspace) -> None:
    candidate = start_rollout(short, "logistic-2", strategy="canary", by="Ana")[1].candidate
    clock, analyser = Clock(), Analyser("inconclusive")
    controller = _controller(short, clock, analyser, "ctl-a")
    controller.tick()
    assert [d.action for d in _run(controller, clock, 55)] == []  # still watching
    clock.advance(5)
    paused = controller.tick()
    assert (paused.action, paused.state, paused.weight) == ("pause", "paused", 10)
    assert "inconclusive" in paused.message and paused.figures["analysis"] == "inconclusive"
    assert get_deployment(short).model_ref != candidate


def test_a_restarted_controller_watches_a_fresh_step_before_it_promotes(
    short: Workspace,
) -> None:
    start_rollout(short, "logistic-2", strategy="canary", by="Ana")
    clock, analyser = Clock(), Analyser("pass")
    first = _controller(short, clock, analyser, "ctl-a")
    first.tick()
    _run(first, clock, 60)  # at the last step (100 %)
    entered = clock.now
    _run(first, clock, 55)  # 55s of its 60s watched; then ctl-a is killed
    second = _controller(short, clock, analyser, "ctl-b")
    _run(second, clock, 10)  # its lease expires
    acquired = clock.now
    # The step's 60s are long over, but ctl-b watched none of it: no promotion until it has
    # watched a full 60s itself, every analysis it asks for starting once it took over.
    assert [d.action for d in _run(second, clock, 55)] == []
    assert clock.now - entered > 60
    assert all(s.timestamp() >= acquired - 5 for s in analyser.since[-3:])
    moved = _run(second, clock, 10)
    assert [d.action for d in moved] == ["promote"]
    promoted = rollout_history(short, "production")[-1].events[-1]
    since = dt.datetime.fromisoformat(promoted.figures["since"])
    assert promoted.actor == "ctl-b" and promoted.at - since >= dt.timedelta(seconds=60)
    assert since.timestamp() >= acquired - 5


def test_a_controller_that_lost_its_lease_starts_its_window_again(short: Workspace) -> None:
    start_rollout(short, "logistic-2", strategy="canary", by="Ana")
    clock, analyser = Clock(), Analyser("pass")
    controller = _controller(short, clock, analyser, "ctl-a")
    controller.tick()
    clock.advance(50)
    controller.tick()
    clock.advance(30)  # stalled past its lease: it takes it afresh, and watches 60s again
    assert controller.tick().action is None
    assert [d.action for d in _run(controller, clock, 55)] == []
    assert [d.action for d in _run(controller, clock, 5)] == ["advance"]


def test_a_person_pausing_meanwhile_is_respected(short: Workspace) -> None:
    start_rollout(short, "logistic-2", strategy="canary", by="Ana")
    clock, analyser = Clock(), Analyser("pass")
    controller = _controller(short, clock, analyser, "ctl-a")
    controller.tick()
    move_rollout(short, "production", "pause", by="Ana", note="looking")
    clock.advance(60)
    decision = controller.tick()
    assert decision.action is None and "is paused; a person moves it" in decision.message
    move_rollout(short, "production", "resume", by="Ana")
    clock.advance(30)
    assert controller.tick().action is None  # the resume starts the step's window again


def test_a_shadow_that_passes_is_paused_for_a_person_to_promote(short: Workspace) -> None:
    candidate = start_rollout(short, "logistic-2", strategy="shadow", by="Ana")[1].candidate
    clock, analyser = Clock(), Analyser("pass")
    controller = _controller(short, clock, analyser, "ctl-a")
    started = controller.tick()
    assert (started.action, started.weight) == ("start", 0)
    moved = _run(controller, clock, 60)  # the first step's duration
    assert [(d.action, d.state, d.weight) for d in moved] == [("pause", "paused", 0)]
    assert "promoted by a person: mlplan rollout promote production" in moved[0].message
    assert moved[0].figures["analysis"] == "pass"
    assert get_deployment(short).model_ref != candidate
    move_rollout(short, "production", "promote", by="Ana")
    assert get_deployment(short).model_ref == candidate


@pytest.mark.parametrize(("verdict", "ended"), [("pass", "promoted"), ("fail", "rolled_back")])
def test_blue_green_switches_then_judges_the_rollback_window(
    short: Workspace, verdict: str, ended: str
) -> None:
    edit_plan(short, "  interval: 20s", "  interval: 20s\n  rollback_window: 2m")
    candidate = start_rollout(short, "logistic-2", strategy="blue-green", by="Ana")[1].candidate
    clock, analyser = Clock(), Analyser(verdict)
    controller = _controller(short, clock, analyser, "ctl-a")
    switched = controller.tick()
    assert (switched.action, switched.weight, switched.step) == ("advance", 100, 1)
    moved = _run(controller, clock, 120)
    assert [d.state for d in moved] == [ended]
    assert (get_deployment(short).model_ref == candidate) is (verdict == "pass")
    if verdict == "pass":  # after the whole window
        assert moved[0].at - switched.at >= dt.timedelta(seconds=120) - dt.timedelta(milliseconds=1)


def test_green_answers_the_plans_smoke_requests_before_the_switch(short: Workspace) -> None:
    from tests.serving.conftest import RECORD

    from mlplan.serving import RecordValidator, load_served_model

    candidate = start_rollout(short, "logistic-2", strategy="blue-green", by="Ana")[1].candidate
    green = load_served_model(short, candidate)
    (label,) = green.run(RecordValidator(green.signature).validate([RECORD]).feeds)[0].tolist()
    wrong = "0" if label == "1" else "1"
    records = "[{gender: female, age: 40, region: north, charges: 61.5}]"
    # Green must call this customer the other way: it does not, so no client ever meets it.
    edit_plan(
        short,
        "  interval: 20s",
        f"  interval: 20s\n  smoke:\n    - {{records: {records}, labels: ['{wrong}']}}",
    )
    clock, analyser = Clock(), Analyser("pass")
    refused = _controller(short, clock, analyser, "ctl-a").tick()
    assert (refused.action, refused.state, refused.weight) == ("rollback", "rolled_back", 0)
    event = rollout_history(short, "production")[-1].events[-1]
    assert event.figures["smoke"] == "fail"
    assert f"record 0: '{label}', expected '{wrong}'" in event.figures["failures"][0]
    assert get_deployment(short).model_ref != candidate
    # The right expectation: green passes, and the switch says so.
    edit_plan(short, f"labels: ['{wrong}']", f"labels: ['{label}']")
    start_rollout(short, "logistic-2", strategy="blue-green", by="Ana")
    switched = _controller(short, clock, analyser, "ctl-a").tick()
    assert (switched.action, switched.weight) == ("advance", 100)
    advance = rollout_history(short, "production")[-1].events[-1]
    assert advance.figures["smoke"] == {"smoke": "pass", "requests": 1, "failures": []}


def test_a_second_controller_does_nothing_while_the_first_holds_the_lease(
    short: Workspace,
) -> None:
    start_rollout(short, "logistic-2", strategy="canary", by="Ana")
    clock, analyser = Clock(), Analyser("pass")
    first = _controller(short, clock, analyser, "ctl-a")
    second = _controller(short, clock, analyser, "ctl-b")
    assert first.tick().action == "advance"
    for _ in range(30):
        clock.advance(3)
        assert first.tick().held
        waiting = second.tick()
        assert (waiting.held, waiting.holder, waiting.action) == (False, "ctl-a", None)
    assert first.release()
    assert second.tick().held


def test_run_ticks_until_stopped_and_gives_the_lease_back(short: Workspace) -> None:
    start_rollout(short, "logistic-2", strategy="canary", by="Ana")
    controller = Controller(short, "production", analyse=Analyser("pass"))
    stop = threading.Event()
    seen: list[Decision] = []

    def report(decision: Decision) -> None:
        seen.append(decision)
        if len(seen) == 3:
            stop.set()

    controller.run(stop, report=report, every=0.01)
    assert seen[0].action == "advance" and len(seen) == 3
    lease = acquire_lease(short, "production", "someone-else")
    assert lease.held  # given back on the way out


def test_promotion_past_approval_above_needs_an_approval(short: Workspace) -> None:
    edit_plan(short, _APPROVAL, "  approval_above: 50")  # the template has a gate promote
    candidate = start_rollout(short, "logistic-2", strategy="canary", by="Ana")[1].candidate
    with pytest.raises(
        RolloutStateError,
        match=r"past the plan's approval_above \(50%\), needs an approval of gate 'promote' "
        r"naming it; record one with: mlplan approve promote --role product_owner --by WHO "
        rf"--subject {candidate}",
    ):
        move_rollout(short, "production", "promote", by="Ana")
    # The controller takes it to 10 %, then pauses at the step past 50 %, saying why.
    clock, analyser = Clock(), Analyser("pass")
    controller = _controller(short, clock, analyser, "ctl-a")
    assert controller.tick().weight == 10
    moved = _run(controller, clock, 60)
    assert [(d.action, d.weight) for d in moved] == [("pause", 10)]
    assert f"mlplan approve promote --role product_owner --by WHO --subject {candidate}" in (
        moved[0].message
    )
    approve(short, "promote", role="product_owner", by="Olu", subject=candidate)
    move_rollout(short, "production", "resume", by="Ana")
    assert [d.action for d in _run(controller, clock, 120)] == ["advance", "promote"]
    assert get_deployment(short).model_ref == candidate


def test_a_person_promotes_only_with_an_approval_naming_the_candidate(
    short: Workspace,
) -> None:
    edit_plan(short, "{gate: promote, role: product_owner}", "{gate: promote, role: ml_lead}")
    edit_plan(short, _APPROVAL, "  approval_above: 0")
    candidate = start_rollout(short, "logistic-2", strategy="shadow", by="Ana")[1].candidate
    stable = get_deployment(short).model_ref
    approve(short, "promote", role="ml_lead", by="Olu", subject=stable)  # not the candidate
    with pytest.raises(RolloutStateError, match=f"--role ml_lead --by WHO --subject {candidate}"):
        move_rollout(short, "production", "promote", by="Ana")
    assert get_deployment(short).model_ref == stable
    approve(short, "promote", role="ml_lead", by="Olu", subject=candidate)
    assert move_rollout(short, "production", "promote", by="Ana").state == "promoted"


def test_a_candidate_no_longer_cleared_is_paused_not_promoted(sqlite_ws: Workspace) -> None:
    ws = register_split_train(sqlite_ws)
    start_rollout(ws, evaluated(ws))
    edit_plan(ws, "target: 0.85", "target: 0.999")  # the gates fail from now on
    edit_plan(ws, _STEPS, "  steps:\n    - {weight: 100, duration: 60s, min_requests: 0}\n")
    train_model(ws, family="logistic", seed=2)
    candidate = evaluated(ws, "logistic-2")  # so the deploy role approved it
    start_rollout(ws, "logistic-2", strategy="canary")
    clock, analyser = Clock(), Analyser("pass")
    controller = _controller(ws, clock, analyser, "ctl-a")
    assert controller.tick().weight == 100
    (approval,) = [a for a in list_approvals(ws, "deploy") if a.subject == candidate]
    revoke_approval(ws, approval.id, role="ml_lead", by="Priya", note="second thoughts")
    moved = _run(controller, clock, 60)
    assert [(d.action, d.state) for d in moved] == [("pause", "paused")]
    assert f"not promoted: {candidate} may not be deployed: gates failed" in moved[0].message
    assert get_deployment(ws).model_ref != candidate
