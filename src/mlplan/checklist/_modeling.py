"""The Modeling items: the quick-and-dirty baseline, the task's default families, ONNX packages
that passed parity, the comparison with the bars, the older system, and feasibility."""

from __future__ import annotations

from mlplan.checklist._candidate import comparison, models
from mlplan.checklist._status import ItemStatus, StatusContext, check
from mlplan.modeling import (
    BASELINE_FAMILY,
    DEFAULT_FAMILIES,
    FeasibilityCheck,
    ModelInfo,
    feasibility,
)

__all__ = [
    "model_compared",
    "model_families",
    "model_feasibility",
    "model_older_system",
    "model_packaged",
    "model_quick_and_dirty",
]


@check("model.quick_and_dirty")
def model_quick_and_dirty(context: StatusContext) -> ItemStatus:
    """A baseline of the task's default family is trained."""
    baseline = BASELINE_FAMILY[context.ws.plan.task]
    # The quick-and-dirty model as it was trained: untuned, and a frozen CNN for images.
    trained = [m for m in models(context) if m.family == baseline and m.baseline]
    if not trained:
        return context.status(
            "model.quick_and_dirty",
            "missing",
            f"no {baseline} baseline trained yet",
            "mlplan train --baseline",
        )
    m = trained[-1]
    test = m.metrics.get("test", {})
    shown = ", ".join(f"{k} {v:.3f}" for k, v in test.items() if k not in {"rows", "threshold"})
    if test.get("threshold") is not None:
        shown += f" (labels at threshold {test['threshold']:.4g})"
    elif "accuracy" in test:
        shown += " (labels: the most probable class)"
    return context.status(
        "model.quick_and_dirty", "done", f"{m.name} ({baseline}) on {m.split}: test {shown}"
    )


@check("model.families")
def model_families(context: StatusContext) -> ItemStatus:
    """The plan's families (else the task's default ones) are trained."""
    plan = context.ws.plan
    wanted = list(plan.modeling.families or DEFAULT_FAMILIES[plan.task])
    have = {m.family for m in models(context)}
    lacking = [f for f in wanted if f not in have]
    if lacking:
        return context.status(
            "model.families",
            "missing",
            f"trained: {', '.join(sorted(have)) or 'none'}; not yet: {', '.join(lacking)}",
            f"mlplan train --family {lacking[0]}",
        )
    return context.status("model.families", "done", f"trained: {', '.join(wanted)}")


@check("model.packaged")
def model_packaged(context: StatusContext) -> ItemStatus:
    """An ONNX package passed parity."""
    packaged = [m for m in models(context) if m.parity.get("passed")]
    if not packaged:
        return context.status(
            "model.packaged", "missing", "no model packaged yet", "mlplan train --baseline"
        )
    worst = max(m.parity["max_abs_diff"] for m in packaged)
    return context.status(
        "model.packaged",
        "done",
        f"{len(packaged)} ONNX package(s) passed parity on the test split (largest "
        f"probability difference {worst:.1e})",
    )


@check("model.compared")
def model_compared(context: StatusContext) -> ItemStatus:
    """The newest comparison holds the newest model."""
    trained = models(context)
    found = comparison(context)
    if found is None or not trained:
        return context.status(
            "model.compared",
            "missing",
            "no comparison yet",
            "mlplan models compare" if trained else "mlplan train --baseline",
        )
    newest = trained[-1].name
    compared = [r["name"] for r in found.rows if r["kind"] == "model"]
    if newest not in compared:
        return context.status(
            "model.compared",
            "missing",
            f"the newest model, {newest}, is not in the latest comparison",
            "mlplan models compare",
        )
    kinds = sorted({r["kind"] for r in found.rows} - {"model"})
    gaps = found.gaps
    shown = ", ".join(
        f"{k.removeprefix('to_')} {v:+.3f} {gaps.get(k + '_metric', '')}".rstrip()
        for k, v in gaps.items()
        if k.startswith("to_") and not k.endswith("_metric") and v is not None
    )
    return context.status(
        "model.compared",
        "done",
        f"{len(compared)} model(s) against {', '.join(kinds)} on "
        f"{found.split}; best {gaps.get('best_model')} "
        f"({gaps.get('metric')}), gaps: {shown or 'none measured'}",
    )


@check("model.older_system")
def model_older_system(context: StatusContext) -> ItemStatus:
    """The older system is scored on the same split (not applicable for a new product)."""
    plan = context.ws.plan
    if plan.scenario == "new":
        return context.status(
            "model.older_system", "not_applicable", "a new product has no older system"
        )
    if plan.baselines.older_system is None:
        return context.status(
            "model.older_system",
            "missing",
            "the plan names no older system",
            "edit mlplan.yaml: describe it under baselines.older_system",
        )
    found = comparison(context)
    older = [] if found is None else [r for r in found.rows if r["kind"] == "older_system"]
    if not older:
        return context.status(
            "model.older_system",
            "missing",
            "the older system is not scored yet",
            (
                "mlplan baseline older, then mlplan models compare"
                if plan.baselines.older_system.predictions
                else "mlplan baseline older --predictions FILE, then mlplan models compare"
            ),
        )
    metrics = older[0]["metrics"]
    key = found.primary if found and found.primary in metrics else next(iter(metrics))
    return context.status(
        "model.older_system",
        "done",
        f"{older[0]['name']} scored on {found.split if found else '?'}"
        f": {key} {metrics[key]['value']:.3f}",
    )


@check("model.feasibility")
def model_feasibility(context: StatusContext) -> ItemStatus:
    """The newest profiled package is within the plan's latency, QPS and size objectives."""
    profiled = [m for m in models(context) if m.compute]
    if not profiled:
        return context.status(
            "model.feasibility", "missing", "no package profiled yet", "mlplan train --baseline"
        )
    m = profiled[-1]
    checks = feasibility(m.compute, context.ws.plan.deployment)
    measured = _measured(m)
    if not checks:
        return context.status(
            "model.feasibility",
            "missing",
            f"{measured}; the plan sets no latency, QPS or size objective",
            "edit mlplan.yaml: set deployment.objectives",
        )
    failed = [c for c in checks if not c.met]
    return context.status(
        "model.feasibility",
        "failing" if failed else "done",
        f"{measured}. {_held_against(checks)}",
        None if not failed else "a smaller model, or more compute in deployment.compute",
    )


def _measured(model: ModelInfo) -> str:
    compute = model.compute
    return (
        f"{model.name}: {compute['size_mb'] * 1024:,.0f} KB, p50 "
        f"{compute['latency_p50_ms']:.3f} ms, p99 "
        f"{compute['latency_p99_ms']:.3f} ms on one thread"
    )


def _held_against(checks: list[FeasibilityCheck]) -> str:
    return "; ".join(
        f"{c.objective} {c.measured:.4g} vs {c.goal:g} (headroom {c.headroom:.1f}x)" for c in checks
    )
