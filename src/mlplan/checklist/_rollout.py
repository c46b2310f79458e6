"""The Rollout items: the strategy (from the plan, with the rollouts it drove); the shadow,
the canary and the blue-green switch, each from the rollouts of that strategy and the
analyses the controller recorded in their events (``figures["analysis"]``: pass, fail or
inconclusive); the sign-off before full traffic, from the plan's ``rollout.approval_above``
and the approvals of gate ``promote`` naming each candidate that went past it."""

from __future__ import annotations

from typing import Any

from mlplan.checklist._status import ItemStatus, StatusContext, check
from mlplan.rollout import RolloutInfo, rollout_history, rollout_status
from mlplan.workspace import list_approvals

__all__ = [
    "rollout_blue_green",
    "rollout_canary",
    "rollout_shadow",
    "rollout_signoff",
    "rollout_strategy",
]


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


def _every(context: StatusContext) -> list[RolloutInfo]:
    """Every rollout of every deployment, oldest first, each with its events (read once)."""

    def read() -> list[RolloutInfo]:
        newest = context.memo("rollouts", lambda: rollout_status(context.ws))
        found = [r for d in newest for r in rollout_history(context.ws, d.deployment)]
        return sorted(found, key=lambda r: r.created_at)

    return context.memo("rollout_history", read)


def _analyses(rollout: RolloutInfo) -> list[dict[str, Any]]:
    """The figures of each analysis recorded in ``rollout``'s events, oldest first."""
    return [e.figures for e in rollout.events if e.figures.get("analysis")]


def _judged(rollout: RolloutInfo) -> str:
    """What a rollout's analyses found, in a few words."""
    analyses = _analyses(rollout)
    if not analyses:
        return "no analysis yet"
    verdicts = [a["analysis"] for a in analyses]
    last = analyses[-1].get("report") or {}
    shown = [f"{len(verdicts)} analyses, the last {verdicts[-1]}"]
    requests = last.get("requests") or {}
    if requests:
        shown.append(
            "over " + ", ".join(f"{n:,} {arm}" for arm, n in sorted(requests.items())) + " requests"
        )
    if last.get("agreement") is not None:
        shown.append(f"agreement {last['agreement']:.1%}")
    if last.get("prediction_psi") is not None:
        shown.append(f"PSI {last['prediction_psi']:.3f}")
    failed = [c for c in last.get("checks") or [] if c.get("verdict") == "fail"]
    if failed:
        shown.append("failing: " + "; ".join(str(c.get("reason")) for c in failed[:2]))
    return ", ".join(shown)


def _said_fully(rollout: RolloutInfo) -> str:
    """A rollout and what its analyses found."""
    return f"{_said(rollout)} ({_judged(rollout)})"


def _of_strategy(
    context: StatusContext, item_id: str, strategy: str, label: str
) -> tuple[list[RolloutInfo], ItemStatus | None]:
    """The rollouts of ``strategy``, or the item's status when it does not apply (the plan
    rolls out otherwise and none ran) or none ran yet."""
    plan = context.ws.plan
    found = [r for r in _every(context) if r.strategy == strategy]
    spelled = strategy.replace("_", "-")
    if not found and plan.rollout_strategy != strategy:
        return found, context.status(
            item_id,
            "not_applicable",
            f"the plan rolls out by {plan.rollout_strategy.replace('_', '-')}; no {label} ran",
        )
    if not found:
        return found, context.status(
            item_id,
            "missing",
            f"no {label} yet",
            f"mlplan deploy MODEL --strategy {spelled}, then let the controller move it: "
            "mlplan rollout run production (or mlplan serve --deployment production "
            "--controller)",
        )
    return found, None


@check("rollout.shadow")
def rollout_shadow(context: StatusContext) -> ItemStatus:
    """Done once a shadow candidate was compared with the stable model by a passing
    analysis; failing when the newest shadow's newest analysis failed."""
    found, early = _of_strategy(context, "rollout.shadow", "shadow", "shadow")
    if early is not None:
        return early
    newest = found[-1]
    analyses = _analyses(newest)
    if analyses and analyses[-1]["analysis"] == "fail":
        return context.status(
            "rollout.shadow",
            "failing",
            _said_fully(newest),
            f"the candidate disagrees with the stable model: see mlplan rollout status "
            f"{newest.deployment}, then abort it (mlplan rollout abort {newest.deployment} "
            "--by WHO)",
        )
    compared = [r for r in found if any(a["analysis"] == "pass" for a in _analyses(r))]
    if compared:
        return context.status("rollout.shadow", "done", _said_fully(compared[-1]))
    return context.status(
        "rollout.shadow",
        "missing",
        _said_fully(newest),
        f"mirror traffic until the analysis passes: mlplan rollout run {newest.deployment}",
    )


@check("rollout.canary")
def rollout_canary(context: StatusContext) -> ItemStatus:
    """Done once a canary ran its steps under the plan's guards: promoted after a passing
    analysis of its last step, or rolled back by its analysis (the guards did their work)."""
    found, early = _of_strategy(context, "rollout.canary", "canary", "canary")
    if early is not None:
        return early
    plan = context.ws.plan
    if not plan.rollout.guards:
        return context.status(
            "rollout.canary",
            "missing",
            f"the plan has no guards: a canary is judged on its errors only; "
            f"{_said_fully(found[-1])}",
            "edit mlplan.yaml: rollout.guards, e.g. - {metric: error_rate, op: '<=', "
            "threshold: 0.01}",
        )
    ran = [
        r
        for r in found
        if _analyses(r) and (r.state in ("promoted", "rolled_back") or r.step == len(r.steps))
    ]
    if ran:
        guards = ", ".join(g.metric or f"rule {g.rule}" for g in plan.rollout.guards)
        return context.status("rollout.canary", "done", f"guards: {guards}; {_said_fully(ran[-1])}")
    newest = found[-1]
    return context.status(
        "rollout.canary",
        "missing",
        f"{_said_fully(newest)}; no canary has run its steps yet",
        f"let the controller move it: mlplan rollout run {newest.deployment}",
    )


@check("rollout.blue_green")
def rollout_blue_green(context: StatusContext) -> ItemStatus:
    """Done once a blue-green rollout switched and was then promoted after its analysis or
    rolled back (the way back tried)."""
    found, early = _of_strategy(context, "rollout.blue_green", "blue_green", "blue-green switch")
    if early is not None:
        return early
    switched = [
        r
        for r in found
        if any(e.action == "advance" for e in r.events) and r.state in ("promoted", "rolled_back")
    ]
    if switched:
        newest = switched[-1]
        back = [r for r in switched if r.state == "rolled_back"]
        tried = f"; a rollback tried: {_said(back[-1])}" if back else "; no rollback tried yet"
        return context.status(
            "rollout.blue_green", "done", f"switched: {_said_fully(newest)}{tried}"
        )
    newest = found[-1]
    return context.status(
        "rollout.blue_green",
        "missing",
        f"{_said_fully(newest)}; not switched and ended yet",
        f"let the controller switch it: mlplan rollout run {newest.deployment}",
    )


@check("rollout.signoff")
def rollout_signoff(context: StatusContext) -> ItemStatus:
    """Where the plan asks for a sign-off before full traffic (``rollout.approval_above``),
    every candidate that went past that share has an approval of gate ``promote`` naming
    it."""
    share = context.ws.plan.rollout.approval_above
    if share is None:
        return context.status(
            "rollout.signoff",
            "not_applicable",
            "the plan asks for no sign-off before full traffic",
            "to ask for one: rollout.approval_above: 50 and an approvals gate promote",
        )
    past = [r for r in _every(context) if r.strategy != "replace" and r.weight > share]
    past += [
        r
        for r in _every(context)
        if r.strategy != "replace" and r.state == "promoted" and r not in past
    ]
    if not past:
        return context.status(
            "rollout.signoff",
            "missing",
            f"no rollout has gone past {share:g}% yet",
            "mlplan approve promote --role ROLE --by WHO --subject MODEL before it does",
        )
    signed = {a.subject for a in list_approvals(context.ws, "promote") if a.active and a.subject}
    unsigned = [r for r in past if r.candidate not in signed]
    if unsigned:
        return context.status(
            "rollout.signoff",
            "failing",
            "past " + f"{share:g}% without a sign-off: " + "; ".join(map(_said, unsigned)),
            f"mlplan approve promote --role ROLE --by WHO --subject {unsigned[-1].candidate}",
        )
    return context.status(
        "rollout.signoff",
        "done",
        f"signed off past {share:g}%: " + "; ".join(r.candidate for r in past),
    )
