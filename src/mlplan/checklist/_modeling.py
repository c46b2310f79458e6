"""The Modeling items the tabular families report: the quick-and-dirty baseline, the task's
default families, and ONNX packages that passed parity. The rest of the stage (comparison,
the older system, feasibility) says what will provide it."""

from __future__ import annotations

from collections.abc import Iterator

from mlplan.checklist._items import Stage
from mlplan.checklist._status import ItemStatus, StatusContext, register_provider
from mlplan.modeling import (
    BASELINE_FAMILY,
    DEFAULT_FAMILIES,
    feasibility,
    latest_comparison,
    list_models,
)

__all__ = ["ModelingProvider"]


@register_provider
class ModelingProvider:
    """Modeling: baseline, families, packages."""

    stage: Stage = "Modeling"

    def check(self, context: StatusContext) -> Iterator[ItemStatus]:

        ws = context.ws
        task = ws.plan.task
        s = context.status
        models = list_models(ws)
        baseline = BASELINE_FAMILY[task]
        # The quick-and-dirty model as it was trained: untuned, and a frozen CNN for images.
        trained = [m for m in models if m.family == baseline and m.baseline]
        if trained:
            m = trained[-1]
            test = m.metrics.get("test", {})
            shown = ", ".join(f"{k} {v:.3f}" for k, v in test.items() if k != "rows")
            yield s(
                "model.quick_and_dirty", "done", f"{m.name} ({baseline}) on {m.split}: test {shown}"
            )
        else:
            yield s(
                "model.quick_and_dirty",
                "missing",
                f"no {baseline} baseline trained yet",
                "mlplan train --baseline",
            )

        wanted = list(ws.plan.modeling.families or DEFAULT_FAMILIES[task])
        have = {m.family for m in models}
        lacking = [f for f in wanted if f not in have]
        if lacking:
            yield s(
                "model.families",
                "missing",
                f"trained: {', '.join(sorted(have)) or 'none'}; not yet: {', '.join(lacking)}",
                f"mlplan train --family {lacking[0]}",
            )
        else:
            yield s("model.families", "done", f"trained: {', '.join(wanted)}")

        packaged = [m for m in models if m.parity.get("passed")]
        if packaged:
            worst = max(m.parity["max_abs_diff"] for m in packaged)
            yield s(
                "model.packaged",
                "done",
                f"{len(packaged)} ONNX package(s) passed parity on the test split (largest "
                f"probability difference {worst:.1e})",
            )
        else:
            yield s("model.packaged", "missing", "no model packaged yet", "mlplan train --baseline")

        comparison = latest_comparison(ws)
        newest = models[-1].name if models else None
        if comparison is None or newest is None:
            yield s(
                "model.compared",
                "missing",
                "no comparison yet",
                "mlplan models compare" if models else "mlplan train --baseline",
            )
        else:
            compared = [r["name"] for r in comparison["rows"] if r["kind"] == "model"]
            kinds = sorted({r["kind"] for r in comparison["rows"]} - {"model"})
            gaps = comparison.get("gaps", {})
            if newest not in compared:
                yield s(
                    "model.compared",
                    "missing",
                    f"the newest model, {newest}, is not in the latest comparison",
                    "mlplan models compare",
                )
            else:
                shown = ", ".join(
                    f"{k.removeprefix('to_')} {v:+.3f} {gaps.get(k + '_metric', '')}".rstrip()
                    for k, v in gaps.items()
                    if k.startswith("to_") and not k.endswith("_metric") and v is not None
                )
                yield s(
                    "model.compared",
                    "done",
                    f"{len(compared)} model(s) against {', '.join(kinds)} on "
                    f"{comparison['split']}; best {gaps.get('best_model')} "
                    f"({gaps.get('metric')}), gaps: {shown or 'none measured'}",
                )

        older = [r for r in (comparison or {}).get("rows", []) if r["kind"] == "older_system"]
        if ws.plan.scenario == "new":
            yield s("model.older_system", "not_applicable", "a new product has no older system")
        elif ws.plan.baselines.older_system is None:
            yield s(
                "model.older_system",
                "missing",
                "the plan names no older system",
                "edit mlplan.yaml: describe it under baselines.older_system",
            )
        elif older:
            metrics = older[0]["metrics"]
            key = (
                comparison["primary"]
                if comparison and comparison["primary"] in metrics
                else next(iter(metrics))
            )
            yield s(
                "model.older_system",
                "done",
                f"{older[0]['name']} scored on {comparison['split'] if comparison else '?'}"
                f": {key} {metrics[key]['value']:.3f}",
            )
        else:
            yield s(
                "model.older_system",
                "missing",
                "the older system is not scored yet",
                "mlplan baseline older --predictions FILE, then mlplan models compare",
            )

        profiled = [m for m in models if m.compute]
        if not profiled:
            yield s(
                "model.feasibility", "missing", "no package profiled yet", "mlplan train --baseline"
            )
        else:
            m = profiled[-1]
            checks = feasibility(m.compute, ws.plan.deployment)
            measured = (
                f"{m.name}: {m.compute['size_mb'] * 1024:,.0f} KB, p50 "
                f"{m.compute['latency_p50_ms']:.3f} ms, p99 "
                f"{m.compute['latency_p99_ms']:.3f} ms on one thread"
            )
            if not checks:
                yield s(
                    "model.feasibility",
                    "missing",
                    f"{measured}; the plan sets no latency, QPS or size objective",
                    "edit mlplan.yaml: set deployment.objectives",
                )
            else:
                failed = [c for c in checks if not c["met"]]
                shown = "; ".join(
                    f"{c['objective']} {c['measured']:.4g} vs {c['goal']:g} "
                    f"(headroom {c['headroom']:.1f}x)"
                    for c in checks
                )
                yield s(
                    "model.feasibility",
                    "failing" if failed else "done",
                    f"{measured}. {shown}",
                    None
                    if not failed
                    else "a smaller model, or more compute in deployment.compute",
                )
