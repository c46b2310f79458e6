"""The rollout stage: how a cleared model reaches a deployment's traffic — a shadow, a canary,
a blue-green switch, or a replace — as a state machine whose every move is recorded in the
store with who made it, why and the figures that decided it."""

from __future__ import annotations

from mlplan.rollout._analysis import (
    RULE_TEST,
    VERDICTS,
    Analysis,
    Check,
    Verdict,
    combine_verdicts,
)
from mlplan.rollout._api import APP_FACTORY, MOVES, create_app_from_env, rollout_routes
from mlplan.rollout._controller import Analyser, AnalysisResult, Controller, Decision
from mlplan.rollout._export import EXPORT_FORMATS, ExportFormat, export_rollout
from mlplan.rollout._lease import LEASE_SECONDS, Lease, acquire_lease, release_lease
from mlplan.rollout._machine import (
    ACTIONS,
    ACTOR_KINDS,
    STATES,
    STRATEGIES,
    TERMINAL,
    Action,
    ActorKind,
    Position,
    State,
    Strategy,
    allowed_actions,
    apply,
    begin,
)
from mlplan.rollout._measures import GUARD_METRICS
from mlplan.rollout._observe import analyse_rollout
from mlplan.rollout._rollouts import (
    PROMOTE_GATE,
    RolloutEvent,
    RolloutInfo,
    move_rollout,
    rollout_history,
    rollout_status,
    start_rollout,
)

__all__ = [
    "ACTIONS",
    "ACTOR_KINDS",
    "APP_FACTORY",
    "EXPORT_FORMATS",
    "GUARD_METRICS",
    "LEASE_SECONDS",
    "MOVES",
    "PROMOTE_GATE",
    "RULE_TEST",
    "STATES",
    "STRATEGIES",
    "TERMINAL",
    "VERDICTS",
    "Action",
    "ActorKind",
    "Analyser",
    "Analysis",
    "AnalysisResult",
    "Check",
    "Controller",
    "Decision",
    "ExportFormat",
    "Lease",
    "Position",
    "RolloutEvent",
    "RolloutInfo",
    "State",
    "Strategy",
    "Verdict",
    "acquire_lease",
    "allowed_actions",
    "analyse_rollout",
    "apply",
    "begin",
    "combine_verdicts",
    "create_app_from_env",
    "export_rollout",
    "move_rollout",
    "release_lease",
    "rollout_history",
    "rollout_routes",
    "rollout_status",
    "start_rollout",
]
