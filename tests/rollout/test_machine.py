"""The rollout state machine, pure: the legal moves, who may make them, the weights."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mlplan.errors import ParameterError, RolloutStateError
from mlplan.rollout import (
    ACTIONS,
    ACTOR_KINDS,
    STATES,
    TERMINAL,
    Action,
    ActorKind,
    Position,
    allowed_actions,
    apply,
    begin,
)

CANARY = (5.0, 25.0, 50.0, 100.0)


def test_a_canary_advances_through_its_steps_and_is_promoted() -> None:
    at = begin("canary", CANARY)
    assert (at.state, at.weight, at.stable_weight, at.step) == ("pending", 0.0, 100.0, 0)
    at = apply(at, "start", "controller")
    assert (at.state, at.weight) == ("progressing", 0.0)
    weights = []
    for _ in CANARY:
        at = apply(at, "advance", "controller")
        weights.append(at.weight)
    assert weights == list(CANARY) and at.step == 4
    with pytest.raises(RolloutStateError, match=r"at step 4 of 4: no step left to advance"):
        apply(at, "advance", "controller")
    done = apply(at, "promote", "controller", figures={"analysis": "pass"})
    assert (done.state, done.weight, done.stable_weight, done.active) == (
        "promoted",
        100.0,
        0.0,
        False,
    )


def test_a_pause_holds_the_weight_and_an_abort_or_rollback_returns_it_to_stable() -> None:
    at = apply(apply(begin("canary", CANARY), "start", "controller"), "advance", "controller")
    paused = apply(at, "pause", "person")
    assert (paused.state, paused.weight) == ("paused", 5.0)
    assert apply(paused, "resume", "person").state == "progressing"
    assert apply(paused, "rollback", "controller").weight == 0.0
    aborted = apply(paused, "abort", "person")
    assert (aborted.state, aborted.weight, aborted.stable_weight) == ("aborted", 0.0, 100.0)


def test_an_illegal_move_names_the_rollout_its_state_and_what_is_allowed() -> None:
    pending = begin("shadow")
    with pytest.raises(
        RolloutStateError,
        match=r"^production's shadow is pending: cannot resume; a person may: pause, promote, "
        r"abort$",
    ):
        apply(pending, "resume", "person", name="production's shadow")
    with pytest.raises(RolloutStateError, match=r"cannot start; a person may: pause, promote"):
        apply(pending, "start", "person")  # only the controller starts
    ended = apply(pending, "abort", "person")
    with pytest.raises(RolloutStateError, match=r"is aborted: cannot promote; it has ended"):
        apply(ended, "promote", "person")
    running = apply(pending, "start", "controller")
    with pytest.raises(RolloutStateError, match=r"cannot abort; the controller may: advance, "):
        apply(running, "abort", "controller")


def test_the_controller_promotes_only_after_the_last_step_on_a_passing_analysis() -> None:
    at = apply(apply(begin("canary", CANARY), "start", "controller"), "advance", "controller")
    with pytest.raises(RolloutStateError, match=r"at step 1 of 4: the controller promotes only"):
        apply(at, "promote", "controller", figures={"analysis": "pass"})
    green = apply(apply(begin("blue_green"), "start", "controller"), "advance", "controller")
    assert (green.weight, green.steps) == (100.0, (100.0,))
    with pytest.raises(RolloutStateError, match=r"only on a passing analysis; figures say"):
        apply(green, "promote", "controller", figures={"analysis": "inconclusive"})
    assert apply(green, "promote", "person").state == "promoted"  # a person decides


def test_a_shadow_has_no_steps_and_a_replace_is_promoted_at_once() -> None:
    shadow = apply(begin("shadow", CANARY), "start", "controller")
    assert (shadow.steps, shadow.weight) == ((), 0.0)  # it mirrors; clients see stable
    with pytest.raises(RolloutStateError, match=r"no step left"):
        apply(shadow, "advance", "controller")
    replaced = apply(begin("replace"), "promote", "person")
    assert (replaced.state, replaced.weight) == ("promoted", 100.0)


def test_bad_strategies_and_steps_are_refused() -> None:
    with pytest.raises(ParameterError, match=r"'strategy' 'linear': use one of shadow, canary"):
        begin("linear")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match=r"rising weights in \(0, 100\], the last 100"):
        begin("canary", (50.0, 25.0, 100.0))
    with pytest.raises(ParameterError, match=r"the last 100"):
        begin("canary", ())


def test_every_state_lists_its_moves_and_the_ends_have_none() -> None:
    for state in TERMINAL:
        assert all(allowed_actions(state, actor) == [] for actor in ACTOR_KINDS)
    assert allowed_actions("paused", "person") == ["resume", "promote", "abort", "rollback"]
    assert allowed_actions("paused", "controller") == ["rollback"]


class RolloutWalk(RuleBasedStateMachine):
    """Any sequence of moves by anyone: the legal ones move the rollout, the others are
    refused and change nothing; weights always sum to 100, one model is stable, nothing is
    promoted except by promote (the controller's only on a passing analysis), every move
    that happened is in the history."""

    def __init__(self) -> None:
        super().__init__()
        self.position: Position = begin("canary", CANARY)
        self.history: list[tuple[Action, str, str]] = []

    @rule(
        action=st.sampled_from(ACTIONS),
        actor=st.sampled_from(ACTOR_KINDS),
        verdict=st.sampled_from(["pass", "fail", "inconclusive", None]),
    )
    def move(self, action: Action, actor: ActorKind, verdict: str | None) -> None:
        before = self.position
        figures = {} if verdict is None else {"analysis": verdict}
        try:
            after = apply(before, action, actor, figures=figures)
        except RolloutStateError:
            assert action not in allowed_actions(before.state, actor) or action in (
                "advance",
                "promote",
            )
            return
        assert action in allowed_actions(before.state, actor)
        if after.state == "promoted":
            assert action == "promote"
            assert actor == "person" or (verdict == "pass" and before.step == len(CANARY))
        if before.state in TERMINAL:
            raise AssertionError("an ended rollout moved")
        self.history.append((action, before.state, after.state))
        self.position = after

    @precondition(lambda self: self.position.active)
    @rule()
    def start_when_pending(self) -> None:
        if self.position.state == "pending":
            self.move("start", "controller", None)

    @invariant()
    def weights_sum_to_100(self) -> None:
        p = self.position
        assert 0.0 <= p.weight <= 100.0 and p.weight + p.stable_weight == 100.0
        if p.active:  # held at the step reached (0 before the first)
            assert p.weight == (CANARY[p.step - 1] if p.step else 0.0)
        if p.state in ("aborted", "rolled_back", "pending"):
            assert p.weight == 0.0
        if p.state == "promoted":
            assert p.weight == 100.0

    @invariant()
    def state_is_known_and_the_history_is_whole(self) -> None:
        assert self.position.state in STATES
        states = ["pending"] + [after for _, _, after in self.history]
        assert all(b == states[i] for i, (_, b, _) in enumerate(self.history))
        assert states[-1] == self.position.state
        assert [a for a, _, _ in self.history].count("promote") == (
            1 if self.position.state == "promoted" else 0
        )


RolloutWalk.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_any_walk_keeps_the_rollout_whole = RolloutWalk.TestCase
