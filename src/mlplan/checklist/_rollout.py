"""The Rollout items that have code behind them: the strategy (from the plan, with the
rollouts it drove). Shadow, canary, blue-green and the sign-off report once the rollout stage
moves traffic; until then they say they are not built."""

from __future__ import annotations

from mlplan.checklist._status import ItemStatus, StatusContext, check
from mlplan.rollout import RolloutInfo, rollout_status

__all__ = ["rollout_strategy"]


@check("rollout.strategy")
def rollout_strategy(context: StatusContext) -> ItemStatus:
    """The plan chooses the rollout strategy (or its scenario does); the evidence names the
    newest rollout of each deployment."""
    plan = context.ws.plan
    if plan.rollout.strategy is None and plan.scenario is None:
        return context.status(
            "rollout.strategy",
            "missing",
            "the plan chooses no rollout strategy, nor a scenario to derive one from",
            "edit mlplan.yaml: set scenario: new | automate | assist | replace, or "
            "rollout.strategy: shadow | canary | blue_green",
        )
    chosen = plan.rollout_strategy + ("" if plan.rollout.strategy else " (the scenario's default)")
    found = context.memo("rollouts", lambda: rollout_status(context.ws))
    if not found:
        return context.status(
            "rollout.strategy",
            "done",
            f"rollout: {chosen}; no rollout yet",
            f"roll a cleared model out with: mlplan deploy MODEL --strategy "
            f"{plan.rollout_strategy.replace('_', '-')}",
        )
    return context.status(
        "rollout.strategy", "done", f"rollout: {chosen}; " + "; ".join(map(_said, found))
    )


def _said(rollout: RolloutInfo) -> str:
    """A deployment's newest rollout, in a few words."""
    return f"{rollout.deployment}: {rollout.strategy} of {rollout.candidate} {rollout.state}" + (
        f" at {rollout.weight:g}%" if rollout.active else ""
    )
