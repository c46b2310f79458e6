"""The Error-analysis items, read from the newest evaluation of the current candidate: the
best model of the newest comparison, else the newest model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlplan.checklist._candidate import candidate
from mlplan.checklist._status import ItemStatus, StatusContext, check
from mlplan.evaluation import EvaluationInfo, latest_evaluation
from mlplan.serving import clearance

__all__ = [
    "eval_error_types",
    "eval_gates",
    "eval_model_card",
    "eval_rare_classes",
    "eval_regressions",
    "eval_risks",
    "eval_slices",
]


@dataclass(frozen=True)
class Evaluated:
    """The candidate and its newest evaluation, as the items read them."""

    name: str
    found: EvaluationInfo

    @property
    def report(self) -> dict[str, Any]:
        """The evaluation report (``evaluation.json``)."""
        return self.found.report

    @property
    def where(self) -> str:
        """What was evaluated (the package version) on what, as the evidence starts."""
        return f"{self.ref} on {self.report['split']} ({self.report['part']})"

    @property
    def ref(self) -> str:
        """The package version evaluated (the model's name for an evaluation of none)."""
        package = self.found.package
        return str(package["ref"]) if package else self.name


EvaluatedCheck = Callable[[StatusContext, Evaluated], ItemStatus]


def _reads_evaluation(item_id: str) -> Callable[[EvaluatedCheck], EvaluatedCheck]:
    """Register ``fn(context, evaluated)`` as the check of ``item_id``: it runs on the
    candidate's newest evaluation; until there is one, the item is missing and says why."""

    def register(fn: EvaluatedCheck) -> EvaluatedCheck:
        @check(item_id)
        def checked(context: StatusContext) -> ItemStatus:
            name = candidate(context)
            if name is None:
                return context.status(
                    item_id, "missing", "no model trained yet", "mlplan train --baseline"
                )
            ws = context.ws
            found = context.memo(f"evaluation:{name}", lambda: latest_evaluation(ws, name))
            if found is None:
                return context.status(
                    item_id,
                    "missing",
                    f"the candidate {name} has not been evaluated",
                    f"mlplan evaluate {name}",
                )
            return fn(context, Evaluated(name, found))

        return fn

    return register


@_reads_evaluation("eval.slices")
def eval_slices(context: StatusContext, ev: Evaluated) -> ItemStatus:
    """Every plan slice is evaluated, with intervals."""
    r = ev.report
    evaluated = {x["name"] for x in r["slices"]}
    planned = context.ws.plan.slices
    if not planned:
        return context.status(
            "eval.slices",
            "missing",
            "the plan defines no slices",
            "edit mlplan.yaml: add slices (e.g. by gender or age bins)",
        )
    if missing := [x.name for x in planned if x.name not in evaluated]:
        return context.status(
            "eval.slices",
            "missing",
            f"{ev.where}: not evaluated on {', '.join(missing)} (added since)",
            f"mlplan evaluate {ev.name}",
        )
    groups = sum(len(x["groups"]) for x in r["slices"])
    return context.status(
        "eval.slices",
        "done",
        f"{ev.where}: {len(evaluated)} slices, {groups} values, {r['bootstrap']} bootstrap "
        "resamples",
    )


@_reads_evaluation("eval.error_types")
def eval_error_types(context: StatusContext, ev: Evaluated) -> ItemStatus:
    """FP and FN rates overall and per slice (per class for more than two classes)."""
    r = ev.report
    if r["kind"] == "regression":
        return context.status(
            "eval.error_types",
            "not_applicable",
            "regression: errors are residuals, reported as MAE and RMSE per slice",
        )
    if r["kind"] == "binary":
        overall = r["overall"]
        shown = ", ".join(
            f"{k.upper()} {overall[k]['value']:.3f}"
            for k in ("fpr", "fnr")
            if overall.get(k, {}).get("value") is not None
        )
        threshold = (r.get("threshold") or {}).get("value")
        at = f" at threshold {threshold:.4g}" if threshold is not None else ""
        return context.status(
            "eval.error_types", "done", f"{ev.where}: {shown}{at} overall and per slice"
        )
    top = r["confusion"]["top"][:1]
    return context.status(
        "eval.error_types",
        "done",
        f"{ev.where}: per-class FPR/FNR and the confusion matrix"
        + (
            f"; most frequent: {top[0]['true']} → {top[0]['predicted']} ({top[0]['count']})"
            if top
            else ""
        ),
    )


@_reads_evaluation("eval.rare_classes")
def eval_rare_classes(context: StatusContext, ev: Evaluated) -> ItemStatus:
    """Per-class metrics, naming the rare classes."""
    r = ev.report
    if r["kind"] == "regression":
        return context.status("eval.rare_classes", "not_applicable", "regression has no classes")
    share = r["rare_class_share"]
    rare = [c for c in r["per_class"] if c["rare"]]
    if not rare:
        return context.status(
            "eval.rare_classes",
            "done",
            f"no class below {share:.0%}; per-class metrics with intervals",
        )
    return context.status(
        "eval.rare_classes",
        "done",
        f"{len(rare)} rare class(es) below {share:.0%}: "
        + ", ".join(
            f"{c['class']} (recall {c['recall']['value']:.3f}, {c['support']} rows)" for c in rare
        ),
    )


@_reads_evaluation("eval.gates")
def eval_gates(context: StatusContext, ev: Evaluated) -> ItemStatus:
    """The plan's gates pass, or a recorded approval lets the model ship anyway."""
    gates = ev.report["gates"]
    if not gates:
        return context.status(
            "eval.gates",
            "missing",
            "the plan sets no gates or metric targets",
            "edit mlplan.yaml: set metric targets and gates (slice floors, max gaps)",
        )
    failed = [g["id"] for g in gates if g["state"] == "fail"]
    if not failed:
        return context.status("eval.gates", "done", f"{ev.where}: all {len(gates)} gates pass")
    cleared = clearance(context.ws, ev.ref, evaluation=ev.found)
    if cleared.allowed:
        return context.status("eval.gates", "done", f"{ev.where}: {cleared.reason}")
    return context.status(
        "eval.gates",
        "failing",
        f"{ev.where}: {len(failed)} of {len(gates)} failed: {', '.join(failed)}",
        cleared.reason.split("; to deploy it anyway: ")[-1],
    )


@_reads_evaluation("eval.regressions")
def eval_regressions(context: StatusContext, ev: Evaluated) -> ItemStatus:
    """No significant regression against the older system or production on any slice."""
    plan = context.ws.plan
    against = ev.report["regressions"]
    checks = [g for g in against.values() if g.get("rows") is not None]
    if not against or (
        not checks and plan.baselines.older_system is None and not plan.gates.no_regression
    ):
        return context.status(
            "eval.regressions",
            "not_applicable",
            "no older system or production model to compare with",
        )
    if not checks:
        return _regressions_unchecked(context, list(against.values()))
    worse = [f"{x['slice']} {x['value']}" for g in checks for x in g["rows"] if x["regression"]]
    rows = sum(len(g["rows"]) for g in checks)
    return context.status(
        "eval.regressions",
        "failing" if worse else "done",
        f"{ev.where}: significantly worse on {', '.join(worse)}"
        if worse
        else f"{ev.where}: no significant regression on {rows} slice values",
        "look at the regressions in the report" if worse else None,
    )


def _regressions_unchecked(context: StatusContext, unchecked: list[dict[str, Any]]) -> ItemStatus:
    """Missing: why no comparison could run, and what would let it."""
    reasons = "; ".join(g["reason"] for g in unchecked)
    hint = (
        "mlplan baseline older FILE"
        if any(g["against"] == "older_system" for g in unchecked)
        else "mlplan deploy MODEL"
        if any(g["reason"].startswith("no model is deployed") for g in unchecked)
        else None
    )
    return context.status("eval.regressions", "missing", reasons, hint)


@_reads_evaluation("eval.risks")
def eval_risks(context: StatusContext, ev: Evaluated) -> ItemStatus:
    """Every brainstormed risk's check ran and passes (those left to monitoring aside); a
    risk evaluate checks itself (a threshold no better than a constant answer) fails it too."""
    risks = ev.report["risks"]
    failing = [k["id"] for k in risks if k["state"] == "failing"]
    if not context.ws.plan.risks and not failing:
        return context.status(
            "eval.risks", "missing", "the plan lists no risks", "edit mlplan.yaml: add risks"
        )
    pending = [k["id"] for k in risks if k["state"] == "unchecked"]
    monitors = [
        k["id"] for k in risks if k["state"] == "unchecked" and k["check"].startswith("monitor")
    ]
    if failing:
        return context.status(
            "eval.risks",
            "failing",
            f"{ev.where}: failing: {', '.join(failing)}",
            "look at the risks in the report",
        )
    if set(pending) - set(monitors):
        return context.status(
            "eval.risks",
            "missing",
            f"not checked: {', '.join(sorted(set(pending) - set(monitors)))}",
            "tie each risk to a slice or metric mlplan computes, with a threshold",
        )
    return context.status(
        "eval.risks",
        "done",
        f"{ev.where}: {len(risks) - len(monitors)} checked and passing"
        + (f"; {len(monitors)} left to monitoring ({', '.join(monitors)})" if monitors else ""),
    )


@_reads_evaluation("eval.model_card")
def eval_model_card(context: StatusContext, ev: Evaluated) -> ItemStatus:
    """The report and the model card are stored for the candidate."""
    artifacts = ev.report.get("artifacts", {})
    if "model-card.md" in artifacts and "evaluation.html" in artifacts:
        return context.status(
            "eval.model_card",
            "done",
            f"report and model card for {ev.name} (stored as {artifacts['model-card.md'][:12]}…)",
        )
    return context.status(
        "eval.model_card", "missing", "no report stored", f"mlplan evaluate {ev.name}"
    )
