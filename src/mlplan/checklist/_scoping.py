"""The Scoping items: read from the plan, plus the buy-in approval from the store."""

from __future__ import annotations

from mlplan.checklist._status import ItemStatus, StatusContext, check
from mlplan.workspace import list_approvals

__all__ = [
    "scope_buy_in",
    "scope_literature",
    "scope_metrics",
    "scope_problem",
    "scope_risks",
    "scope_scenario",
]

_EDIT = "edit mlplan.yaml: "


@check("scope.problem")
def scope_problem(context: StatusContext) -> ItemStatus:
    """The plan names the problem, its owner and the stakeholders."""
    project = context.ws.plan.project
    lacking = [
        f
        for f, v in (
            ("project.problem", project.problem),
            ("project.owner", project.owner),
            ("project.stakeholders", project.stakeholders),
        )
        if not v
    ]
    if lacking:
        return context.status(
            "scope.problem",
            "missing",
            f"the plan lacks {', '.join(lacking)}",
            _EDIT + "fill in " + ", ".join(lacking),
        )
    roles = ", ".join(f"{p.name} ({p.role})" for p in project.stakeholders)
    return context.status("scope.problem", "done", f"owner {project.owner}; stakeholders: {roles}")


@check("scope.scenario")
def scope_scenario(context: StatusContext) -> ItemStatus:
    """The plan says the deployment scenario."""
    plan = context.ws.plan
    if plan.scenario is None:
        return context.status(
            "scope.scenario",
            "missing",
            "the plan does not say the scenario",
            _EDIT + "set scenario: new | automate | assist | replace",
        )
    return context.status(
        "scope.scenario",
        "done",
        f"scenario: {plan.scenario}; rollout: {plan.rollout_strategy}"
        + ("" if plan.rollout.strategy else " (the scenario's default)"),
    )


@check("scope.metrics")
def scope_metrics(context: StatusContext) -> ItemStatus:
    """The plan has ML metrics with a target, software metrics and business metrics."""
    metrics = context.ws.plan.metrics
    primary = metrics.primary_metric
    gaps = []
    if primary is None:
        gaps.append("ML metrics")
    elif primary.target is None:
        gaps.append(f"a target for the primary metric {primary.name}")
    if not metrics.software:
        gaps.append("software metrics")
    if not metrics.business:
        gaps.append("business metrics")
    if gaps or primary is None:
        return context.status(
            "scope.metrics",
            "missing",
            f"the plan lacks {', '.join(gaps)}",
            _EDIT + "add them under metrics:",
        )
    return context.status(
        "scope.metrics",
        "done",
        f"primary {primary.name} → {primary.target}; {len(metrics.ml)} ML, "
        f"{len(metrics.software)} software, {len(metrics.business)} business metrics",
    )


@check("scope.literature")
def scope_literature(context: StatusContext) -> ItemStatus:
    """The plan lists references with their scores, or says why none apply."""
    baselines = context.ws.plan.baselines
    if baselines.literature:
        refs = "; ".join(f"{r.title}: {r.metric} {r.score:g}" for r in baselines.literature)
        return context.status(
            "scope.literature", "done", f"{len(baselines.literature)} references: {refs}"
        )
    if baselines.literature is not None and baselines.literature_note:
        return context.status(
            "scope.literature", "done", f"none apply: {baselines.literature_note}"
        )
    return context.status(
        "scope.literature",
        "missing",
        "no literature references in the plan",
        _EDIT + "list baselines.literature with reported scores, or literature: [] "
        "and a literature_note saying why none apply",
    )


@check("scope.risks")
def scope_risks(context: StatusContext) -> ItemStatus:
    """The plan lists risks, each tied to a slice, metric or monitor."""
    risks = context.ws.plan.risks
    if not risks:
        return context.status(
            "scope.risks",
            "missing",
            "no risks brainstormed in the plan",
            _EDIT + "list risks, each tied to a slice, metric or monitor",
        )
    untied = [r.id for r in risks if not (r.slice or r.metric or r.monitor)]
    if untied:
        return context.status(
            "scope.risks",
            "missing",
            f"{len(risks) - len(untied)} of {len(risks)} risks tied to a check; "
            f"untied: {', '.join(untied)}",
            _EDIT + "give each risk a slice, metric or monitor",
        )
    return context.status("scope.risks", "done", f"{len(risks)} risks, each tied to a check")


@check("scope.buy_in")
def scope_buy_in(context: StatusContext) -> ItemStatus:
    """The role the plan names approved the buy_in gate."""
    rule = context.ws.plan.approval_for("buy_in")
    if rule is None:
        return context.status(
            "scope.buy_in",
            "missing",
            "the plan names no role for the buy_in gate",
            _EDIT + "add approvals: - {gate: buy_in, role: business_owner}",
        )
    approvals = [a for a in list_approvals(context.ws, "buy_in") if a.role == rule.role]
    if not approvals:
        return context.status(
            "scope.buy_in",
            "missing",
            f"no buy_in approval by a {rule.role} yet",
            f"mlplan approve buy_in --role {rule.role} --by NAME",
        )
    last = approvals[-1]
    return context.status(
        "scope.buy_in",
        "done",
        f"approved by {last.by} ({last.role}) on {last.created_at:%Y-%m-%d %H:%M}"
        + (f": {last.note}" if last.note else ""),
    )
