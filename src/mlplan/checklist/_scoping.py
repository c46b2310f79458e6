"""The Scoping items: read from the plan, plus the buy-in approval from the store."""

from __future__ import annotations

from collections.abc import Iterator

from mlplan.checklist._items import Stage
from mlplan.checklist._status import ItemStatus, StatusContext, register_provider
from mlplan.workspace import list_approvals

__all__ = ["ScopingProvider"]

_EDIT = "edit mlplan.yaml: "


@register_provider
class ScopingProvider:
    """Scoping: problem, scenario, metrics, literature, risks, buy-in."""

    stage: Stage = "Scoping"

    def check(self, context: StatusContext) -> Iterator[ItemStatus]:
        plan = context.ws.plan
        s = context.status

        project = plan.project
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
            yield s(
                "scope.problem",
                "missing",
                f"the plan lacks {', '.join(lacking)}",
                _EDIT + "fill in " + ", ".join(lacking),
            )
        else:
            roles = ", ".join(f"{p.name} ({p.role})" for p in project.stakeholders)
            yield s("scope.problem", "done", f"owner {project.owner}; stakeholders: {roles}")

        if plan.scenario is not None:
            yield s(
                "scope.scenario",
                "done",
                f"scenario: {plan.scenario}; rollout: {plan.rollout_strategy}"
                + ("" if plan.rollout.strategy else " (the scenario's default)"),
            )
        else:
            yield s(
                "scope.scenario",
                "missing",
                "the plan does not say the scenario",
                _EDIT + "set scenario: new | automate | assist | replace",
            )

        metrics = plan.metrics
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
        if gaps:
            yield s(
                "scope.metrics",
                "missing",
                f"the plan lacks {', '.join(gaps)}",
                _EDIT + "add them under metrics:",
            )
        else:
            assert primary is not None
            yield s(
                "scope.metrics",
                "done",
                f"primary {primary.name} → {primary.target}; {len(metrics.ml)} ML, "
                f"{len(metrics.software)} software, {len(metrics.business)} business metrics",
            )

        baselines = plan.baselines
        if baselines.literature:
            refs = "; ".join(f"{r.title}: {r.metric} {r.score:g}" for r in baselines.literature)
            yield s("scope.literature", "done", f"{len(baselines.literature)} references: {refs}")
        elif baselines.literature is not None and baselines.literature_note:
            yield s("scope.literature", "done", f"none apply: {baselines.literature_note}")
        else:
            yield s(
                "scope.literature",
                "missing",
                "no literature references in the plan",
                _EDIT + "list baselines.literature with reported scores, or literature: [] "
                "and a literature_note saying why none apply",
            )

        risks = plan.risks
        if not risks:
            yield s(
                "scope.risks",
                "missing",
                "no risks brainstormed in the plan",
                _EDIT + "list risks, each tied to a slice, metric or monitor",
            )
        else:
            untied = [r.id for r in risks if not (r.slice or r.metric or r.monitor)]
            if untied:
                yield s(
                    "scope.risks",
                    "missing",
                    f"{len(risks) - len(untied)} of {len(risks)} risks tied to a check; "
                    f"untied: {', '.join(untied)}",
                    _EDIT + "give each risk a slice, metric or monitor",
                )
            else:
                yield s("scope.risks", "done", f"{len(risks)} risks, each tied to a check")

        rule = plan.approval_for("buy_in")
        if rule is None:
            yield s(
                "scope.buy_in",
                "missing",
                "the plan names no role for the buy_in gate",
                _EDIT + "add approvals: - {gate: buy_in, role: business_owner}",
            )
        else:
            approvals = [a for a in list_approvals(context.ws, "buy_in") if a.role == rule.role]
            if approvals:
                last = approvals[-1]
                yield s(
                    "scope.buy_in",
                    "done",
                    f"approved by {last.by} ({last.role}) on {last.created_at:%Y-%m-%d %H:%M}"
                    + (f": {last.note}" if last.note else ""),
                )
            else:
                yield s(
                    "scope.buy_in",
                    "missing",
                    f"no buy_in approval by a {rule.role} yet",
                    f"mlplan approve buy_in --role {rule.role} --by NAME",
                )
