"""The Labels items: strategy with estimates, instructions, HLP, agreement, relabel queue."""

from __future__ import annotations

from collections.abc import Iterator

from mlplan.checklist._items import Stage
from mlplan.checklist._status import ItemStatus, StatusContext, register_provider
from mlplan.labels import (
    compare_strategies,
    estimate,
    get_hlp,
    label_count,
    latest_label_report,
    relabel_queue,
)

__all__ = ["LabelsProvider"]


@register_provider
class LabelsProvider:
    """Labels: how they are made, how good they are, and what is left to fix."""

    stage: Stage = "Labels"

    def check(self, context: StatusContext) -> Iterator[ItemStatus]:

        ws = context.ws
        labels = ws.plan.labels
        s = context.status

        if labels.strategy is None:
            yield s(
                "labels.strategy",
                "missing",
                "the plan chooses no labeling strategy",
                "edit mlplan.yaml: set labels.strategy and labels.rates for it",
            )
        elif labels.strategy not in labels.rates:
            yield s(
                "labels.strategy",
                "missing",
                f"strategy {labels.strategy}, but no rates to estimate it with",
                f"edit mlplan.yaml: add labels.rates.{labels.strategy}",
            )
        else:
            rate = labels.rates[labels.strategy]
            e = estimate(labels.strategy, rate, items=1000, overlap=labels.overlap)
            others = [
                o for o in compare_strategies(labels, items=1000) if o.strategy != labels.strategy
            ]
            compared = "; ".join(f"{o.strategy} {o.currency} {o.cost:,.0f}" for o in others)
            yield s(
                "labels.strategy",
                "done",
                f"{labels.strategy}: 1,000 items with {labels.overlap:.0%} overlap → "
                f"{e.labels:,} labels, {e.currency} {e.cost:,.0f}, {e.calendar_hours:,.1f} h "
                f"with {rate.annotators} annotator(s)" + (f" (vs {compared})" if compared else ""),
            )

        undefined = [c for c, d in labels.classes.items() if not d]
        if not labels.instructions:
            yield s(
                "labels.instructions",
                "missing",
                "the plan has no labeling instructions",
                "edit mlplan.yaml: write labels.instructions",
            )
        elif not labels.classes and ws.plan.task != "regression":
            yield s(
                "labels.instructions",
                "missing",
                "no class definitions in the plan",
                "edit mlplan.yaml: define each class under labels.classes",
            )
        elif undefined:
            yield s(
                "labels.instructions",
                "missing",
                f"classes without a definition: {', '.join(undefined)}",
                "edit mlplan.yaml: define them under labels.classes",
            )
        else:
            yield s(
                "labels.instructions",
                "done",
                f"instructions and {len(labels.classes)} class definitions in the plan",
            )

        hlp_source = ws.plan.baselines.hlp
        stored = get_hlp(ws)
        if stored is not None:
            hlp = stored.hlp
            key = hlp.primary or next(iter(hlp.metrics), None)
            shown = hlp.metrics.get(key) if key else None
            has_interval = shown is not None and shown.low == shown.low  # NaN: no bootstrap
            figure = (f"{key} {shown.value:.3f}" if shown is not None else "measured") + (
                f" [{shown.low:.3f}, {shown.high:.3f}]"
                if shown is not None and has_interval
                else ""
            )
            evidence = (
                f"HLP {figure} on {hlp.items:,} items of {stored.dataset} (against "
                f"{hlp.reference}), {stored.measured_at:%Y-%m-%d}"
            )
            if stored.stale:
                yield s(
                    "labels.hlp",
                    "missing",
                    f"{evidence}; measured on {stored.labels_then:,} labels, "
                    f"{stored.labels_now:,} now",
                    "mlplan labels hlp (measure it again)",
                )
            elif not has_interval:
                yield s(
                    "labels.hlp",
                    "missing",
                    f"{evidence}, without a confidence interval",
                    "mlplan labels hlp --boot 200",
                )
            else:
                yield s("labels.hlp", "done", evidence)
        elif hlp_source is not None and hlp_source.source == "value":
            yield s(
                "labels.hlp",
                "done",
                f"HLP {hlp_source.value} from the plan"
                + (f" ({hlp_source.note})" if hlp_source.note else "")
                + ", not measured here",
            )
        else:
            yield s(
                "labels.hlp",
                "missing",
                "HLP not measured yet",
                "mlplan labels import FILE (with items labeled twice), then mlplan labels hlp",
            )

        agreement = latest_label_report(ws, "agreement")
        if agreement is None:
            yield s(
                "labels.agreement",
                "missing",
                "agreement not measured yet",
                "mlplan labels import FILE, then mlplan labels agreement",
            )
        else:
            report = agreement.report
            value = report.get("value")
            # Held against today's threshold, not the one in force when it was measured.
            passed = value is not None and value >= labels.min_agreement
            shown_value = f"{value:.3f}" if value is not None else "undefined"
            evidence = (
                f"{report['metric']} {shown_value} {'>=' if passed else '<'} "
                f"{labels.min_agreement} on {report.get('multiply_labeled_items', 0):,} "
                f"multiply-labeled items of {report['dataset']}"
            )
            now = label_count(ws, report["dataset"])
            if now != report.get("annotations"):
                yield s(
                    "labels.agreement",
                    "missing",
                    f"{evidence}; measured on {report.get('annotations', 0):,} labels, {now:,} now",
                    "mlplan labels agreement (measure it again)",
                )
            else:
                yield s(
                    "labels.agreement",
                    "done" if passed else "failing",
                    evidence,
                    None
                    if passed
                    else "mlplan labels queue (relabel the disagreements), "
                    "clarify labels.classes, then mlplan labels agreement",
                )

        queue = relabel_queue(ws)
        open_items = [q for q in queue if q.status == "open"]
        if agreement is None and not queue:
            yield s(
                "labels.issues",
                "missing",
                "labels not checked for issues yet",
                "mlplan labels agreement",
            )
        elif open_items:
            yield s(
                "labels.issues",
                "missing",
                f"{len(open_items):,} item(s) open in the relabel queue "
                f"({len(queue) - len(open_items):,} triaged or resolved)",
                "mlplan labels queue; mlplan labels triage ITEM --status resolved",
            )
        else:
            yield s(
                "labels.issues",
                "done",
                f"relabel queue empty or triaged ({len(queue):,} item(s) handled)",
            )
