"""The Error-analysis items, read from the newest evaluation of the current candidate: the
best model of the newest comparison, else the newest model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mlplan.checklist._items import Stage
from mlplan.checklist._status import ItemStatus, StatusContext, register_provider
from mlplan.evaluation import latest_evaluation
from mlplan.modeling import latest_comparison, list_models
from mlplan.serving import clearance

__all__ = ["EvaluationProvider"]

_ITEMS = (
    "eval.slices",
    "eval.error_types",
    "eval.rare_classes",
    "eval.gates",
    "eval.regressions",
    "eval.risks",
    "eval.model_card",
)


def candidate(context: StatusContext) -> str | None:
    """The model the project would ship now."""
    ws = context.ws
    models = context.memo("models", lambda: list_models(ws))
    if not models:
        return None
    comparison = latest_comparison(ws)
    best = (comparison or {}).get("gaps", {}).get("best_model")
    names = {m.name for m in models}
    return str(best) if best in names else str(models[-1].name)


@register_provider
class EvaluationProvider:
    """Error analysis: slices, error types, rare classes, gates, regressions, risks, card."""

    stage: Stage = "Error analysis"

    def check(self, context: StatusContext) -> Iterator[ItemStatus]:
        ws = context.ws
        s = context.status
        name = candidate(context)
        if name is None:
            for item in _ITEMS:
                yield s(item, "missing", "no model trained yet", "mlplan train --baseline")
            return
        found = latest_evaluation(ws, name)
        if found is None:
            for item in _ITEMS:
                yield s(
                    item,
                    "missing",
                    f"the candidate {name} has not been evaluated",
                    f"mlplan evaluate {name}",
                )
            return
        yield from self._items(context, name, found.report, clearance(ws, name, evaluation=found))

    def _items(
        self, context: StatusContext, name: str, r: dict[str, Any], cleared: Any
    ) -> Iterator[ItemStatus]:
        plan = context.ws.plan
        s = context.status
        where = f"{name} on {r['split']} ({r['part']})"
        evaluated = {x["name"] for x in r["slices"]}
        if not plan.slices:
            yield s(
                "eval.slices",
                "missing",
                "the plan defines no slices",
                "edit mlplan.yaml: add slices (e.g. by gender or age bins)",
            )
        elif missing := [x.name for x in plan.slices if x.name not in evaluated]:
            yield s(
                "eval.slices",
                "missing",
                f"{where}: not evaluated on {', '.join(missing)} (added since)",
                f"mlplan evaluate {name}",
            )
        else:
            groups = sum(len(x["groups"]) for x in r["slices"])
            yield s(
                "eval.slices",
                "done",
                f"{where}: {len(evaluated)} slices, {groups} values, {r['bootstrap']} bootstrap "
                "resamples",
            )
        if r["kind"] == "regression":
            yield s(
                "eval.error_types",
                "not_applicable",
                "regression: errors are residuals, reported as MAE and RMSE per slice",
            )
            yield s("eval.rare_classes", "not_applicable", "regression has no classes")
        else:
            overall = r["overall"]
            if r["kind"] == "binary":
                shown = ", ".join(
                    f"{k.upper()} {overall[k]['value']:.3f}"
                    for k in ("fpr", "fnr")
                    if overall.get(k, {}).get("value") is not None
                )
                text = f"{where}: {shown} overall and per slice"
            else:
                top = r["confusion"]["top"][:1]
                text = f"{where}: per-class FPR/FNR and the confusion matrix" + (
                    f"; most frequent: {top[0]['true']} → {top[0]['predicted']} ({top[0]['count']})"
                    if top
                    else ""
                )
            yield s("eval.error_types", "done", text)
            rare = [c for c in r["per_class"] if c["rare"]]
            yield s(
                "eval.rare_classes",
                "done",
                (
                    f"{len(rare)} rare class(es) below {r['rare_class_share']:.0%}: "
                    + ", ".join(
                        f"{c['class']} (recall {c['recall']['value']:.3f}, {c['support']} rows)"
                        for c in rare
                    )
                )
                if rare
                else f"no class below {r['rare_class_share']:.0%}; per-class metrics with "
                "intervals",
            )
        gates = r["gates"]
        failed = [g["id"] for g in gates if g["state"] == "fail"]
        if not gates:
            yield s(
                "eval.gates",
                "missing",
                "the plan sets no gates or metric targets",
                "edit mlplan.yaml: set metric targets and gates (slice floors, max gaps)",
            )
        elif failed and cleared.allowed:
            yield s("eval.gates", "done", f"{where}: {cleared.reason}")
        elif failed:
            yield s(
                "eval.gates",
                "failing",
                f"{where}: {len(failed)} of {len(gates)} failed: {', '.join(failed)}",
                cleared.reason.split("; to deploy it anyway: ")[-1],
            )
        else:
            yield s("eval.gates", "done", f"{where}: all {len(gates)} gates pass")
        checks = [g for g in r["regressions"].values() if g.get("rows") is not None]
        if not r["regressions"] or (
            not checks and plan.baselines.older_system is None and not plan.gates.no_regression
        ):
            yield s(
                "eval.regressions",
                "not_applicable",
                "no older system or production model to compare with",
            )
        elif not checks:
            reasons = "; ".join(g["reason"] for g in r["regressions"].values())
            unchecked = list(r["regressions"].values())
            hint = (
                "mlplan baseline older FILE"
                if any(g["against"] == "older_system" for g in unchecked)
                else "mlplan deploy MODEL"
                if any(g["reason"].startswith("no model is deployed") for g in unchecked)
                else None
            )
            yield s("eval.regressions", "missing", reasons, hint)
        else:
            worse = [
                f"{x['slice']} {x['value']}" for g in checks for x in g["rows"] if x["regression"]
            ]
            rows = sum(len(g["rows"]) for g in checks)
            yield s(
                "eval.regressions",
                "failing" if worse else "done",
                f"{where}: significantly worse on {', '.join(worse)}"
                if worse
                else f"{where}: no significant regression on {rows} slice values",
                "look at the regressions in the report" if worse else None,
            )
        risks = r["risks"]
        if plan.risks is None or not plan.risks:
            yield s(
                "eval.risks", "missing", "the plan lists no risks", "edit mlplan.yaml: add risks"
            )
        else:
            failing = [k["id"] for k in risks if k["state"] == "failing"]
            pending = [k["id"] for k in risks if k["state"] == "unchecked"]
            monitors = [
                k["id"]
                for k in risks
                if k["state"] == "unchecked" and k["check"].startswith("monitor")
            ]
            if failing:
                yield s(
                    "eval.risks",
                    "failing",
                    f"{where}: failing: {', '.join(failing)}",
                    "look at the risks in the report",
                )
            elif set(pending) - set(monitors):
                yield s(
                    "eval.risks",
                    "missing",
                    f"not checked: {', '.join(sorted(set(pending) - set(monitors)))}",
                    "tie each risk to a slice or metric mlplan computes, with a threshold",
                )
            else:
                yield s(
                    "eval.risks",
                    "done",
                    f"{where}: {len(risks) - len(monitors)} checked and passing"
                    + (
                        f"; {len(monitors)} left to monitoring ({', '.join(monitors)})"
                        if monitors
                        else ""
                    ),
                )
        artifacts = r.get("artifacts", {})
        if "model-card.md" in artifacts and "evaluation.html" in artifacts:
            yield s(
                "eval.model_card",
                "done",
                f"report and model card for {name} (stored as {artifacts['model-card.md'][:12]}…)",
            )
        else:
            yield s("eval.model_card", "missing", "no report stored", f"mlplan evaluate {name}")
