"""A rollout's state machine, pure: where a rollout stands, and the moves a person or the
controller may make from there. No I/O; the store writes each move with its event
(``_rollouts.py``).

States::

    pending ──start──► progressing ──promote──► promoted
       │                 │  ▲  │ advance (next canary step)
       │               pause resume
       │                 ▼  │
       └───pause────►  paused ──rollback──► rolled_back
    abort (from pending, progressing, paused) ──► aborted

The candidate's share of traffic (``weight``, percent) is 0 until the controller advances it
through the strategy's steps (a canary's from the plan; blue-green's one switch to 100; a
shadow has none: it only mirrors), 100 once promoted, and 0 again when aborted or rolled back;
the stable model takes the rest, so the two always sum to 100. A pause holds the weight where
it is. Only ``promote`` promotes: a person at any time before the end, the controller only
once every step is reached and its analysis passed. ``replace`` is a rollout promoted at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from mlplan.errors import RolloutStateError

__all__ = [
    "ACTIONS",
    "ACTOR_KINDS",
    "STATES",
    "STRATEGIES",
    "TERMINAL",
    "Action",
    "ActorKind",
    "Position",
    "State",
    "Strategy",
    "allowed_actions",
    "apply",
    "begin",
]

State = Literal["pending", "progressing", "paused", "promoted", "aborted", "rolled_back"]
Action = Literal["start", "advance", "pause", "resume", "promote", "abort", "rollback"]
ActorKind = Literal["person", "controller"]
Strategy = Literal["shadow", "canary", "blue_green", "replace"]

STATES: tuple[State, ...] = get_args(State)
ACTIONS: tuple[Action, ...] = get_args(Action)
ACTOR_KINDS: tuple[ActorKind, ...] = get_args(ActorKind)
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
TERMINAL: frozenset[State] = frozenset({"promoted", "aborted", "rolled_back"})

_PERSON: frozenset[ActorKind] = frozenset({"person"})
_CONTROLLER: frozenset[ActorKind] = frozenset({"controller"})
_BOTH: frozenset[ActorKind] = _PERSON | _CONTROLLER

# (state, action) -> (the state after, who may make the move)
_MOVES: dict[tuple[State, Action], tuple[State, frozenset[ActorKind]]] = {
    ("pending", "start"): ("progressing", _CONTROLLER),
    ("pending", "pause"): ("paused", _BOTH),
    ("pending", "promote"): ("promoted", _PERSON),
    ("pending", "abort"): ("aborted", _PERSON),
    ("progressing", "advance"): ("progressing", _CONTROLLER),
    ("progressing", "pause"): ("paused", _BOTH),
    ("progressing", "promote"): ("promoted", _BOTH),
    ("progressing", "abort"): ("aborted", _PERSON),
    ("progressing", "rollback"): ("rolled_back", _BOTH),
    ("paused", "resume"): ("progressing", _PERSON),
    ("paused", "promote"): ("promoted", _PERSON),
    ("paused", "abort"): ("aborted", _PERSON),
    ("paused", "rollback"): ("rolled_back", _BOTH),
}


@dataclass(frozen=True)
class Position:
    """Where a rollout stands: its state, the candidate's share of traffic in percent
    (``weight``; the stable model has ``stable_weight``), and how many of its ``steps`` (the
    candidate's weight at each) it has reached."""

    strategy: Strategy
    state: State
    weight: float
    step: int
    steps: tuple[float, ...]

    @property
    def stable_weight(self) -> float:
        """The stable model's share of traffic: what the candidate does not take."""
        return 100.0 - self.weight

    @property
    def active(self) -> bool:
        """Whether the rollout can still move (it has not been promoted, aborted or rolled
        back)."""
        return self.state not in TERMINAL


def begin(strategy: Strategy, steps: tuple[float, ...] = ()) -> Position:
    """A new rollout, ``pending``: the candidate takes no traffic yet.

    ``steps`` are a canary's weights from the plan (rising, the last 100); blue-green has
    one, the switch (100); a shadow and a replace have none.

    Raises
    ------
    ParameterError
        A strategy mlplan does not know, or steps that are not rising percentages ending at
        100 (or any for a shadow or a replace).
    """
    from mlplan.errors import ParameterError

    if strategy not in STRATEGIES:
        raise ParameterError(
            "strategy", f"{{param}} {strategy!r}: use one of {', '.join(STRATEGIES)}"
        )
    if strategy == "blue_green":
        steps = (100.0,)
    elif strategy in ("shadow", "replace"):
        steps = ()
    steps = tuple(float(w) for w in steps)
    if strategy == "canary" and (
        not steps
        or list(steps) != sorted(steps)
        or steps[-1] != 100.0
        or any(not 0 < w <= 100 for w in steps)
    ):
        raise ParameterError(
            "steps",
            f"{{param}} {list(steps)}: a canary needs rising weights in (0, 100], the last 100",
        )
    return Position(strategy, "pending", 0.0, 0, steps)


def allowed_actions(state: State, actor: ActorKind) -> list[Action]:
    """The moves ``actor`` may make from ``state``, in the order of :data:`ACTIONS`."""
    return [a for a in ACTIONS if actor in _MOVES.get((state, a), ("pending", frozenset()))[1]]


def apply(
    position: Position,
    action: Action,
    actor: ActorKind,
    *,
    name: str = "rollout",
    figures: Mapping[str, Any] | None = None,
) -> Position:
    """The position after ``actor`` makes ``action``.

    ``name`` says which rollout in an error (e.g. ``production's canary of gbt-1@1``).
    ``figures`` are what decided the move; the controller promotes only with
    ``figures["analysis"] == "pass"``.

    Raises
    ------
    RolloutStateError
        The move is not one ``actor`` may make from the rollout's state (the message names
        the rollout, its state and the moves allowed), advancing past the last step, or the
        controller promoting before every step is reached or without a passing analysis.
    """
    state = position.state
    move = _MOVES.get((state, action))
    if move is None or actor not in move[1]:
        mine = allowed_actions(state, actor)
        if state in TERMINAL:
            hint = "it has ended; start another with: mlplan deploy MODEL"
        elif mine:
            hint = f"{'a ' if actor == 'person' else 'the '}{actor} may: {', '.join(mine)}"
        else:
            hint = f"a {actor} may make no move from there"
        raise RolloutStateError(f"{name} is {state}: cannot {action}; {hint}")
    after, _ = move
    if action == "advance":
        if position.step >= len(position.steps):
            raise RolloutStateError(
                f"{name} is {state} at step {position.step} of {len(position.steps)}: no step "
                "left to advance to; promote it"
            )
        return replace(position, weight=position.steps[position.step], step=position.step + 1)
    if action == "promote":
        if actor == "controller":
            if position.step < len(position.steps):
                raise RolloutStateError(
                    f"{name} is at step {position.step} of {len(position.steps)}: the "
                    "controller promotes only after the last step"
                )
            if (figures or {}).get("analysis") != "pass":
                raise RolloutStateError(
                    f"{name}: the controller promotes only on a passing analysis; figures "
                    f"say {dict(figures or {})!r}"
                )
        return replace(position, state=after, weight=100.0, step=len(position.steps))
    if after in ("aborted", "rolled_back"):
        return replace(position, state=after, weight=0.0)
    return replace(position, state=after)  # start, pause, resume: the weight held
