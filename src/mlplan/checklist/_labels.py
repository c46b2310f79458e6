"""The Labels items: strategy with estimates, instructions, HLP, agreement, relabel queue."""

from __future__ import annotations

from mlplan.checklist._status import ItemStatus, StatusContext, check
from mlplan.labels import (
    LabelReportInfo,
    StoredHLP,
    compare_strategies,
    estimate,
    get_hlp,
    label_count,
    latest_label_report,
    list_batches,
    relabel_queue,
)

__all__ = [
    "labels_agreement",
    "labels_hlp",
    "labels_instructions",
    "labels_issues",
    "labels_strategy",
]


def _agreement(context: StatusContext) -> LabelReportInfo | None:
    """The newest agreement report, if any."""
    ws = context.ws
    return context.memo("labels.agreement", lambda: latest_label_report(ws, "agreement"))


@check("labels.strategy")
def labels_strategy(context: StatusContext) -> ItemStatus:
    """The plan chooses a strategy, with the rates to estimate it (and the others) with."""
    labels = context.ws.plan.labels
    if labels.strategy is None:
        return context.status(
            "labels.strategy",
            "missing",
            "the plan chooses no labeling strategy",
            "edit mlplan.yaml: set labels.strategy and labels.rates for it",
        )
    if labels.strategy not in labels.rates:
        return context.status(
            "labels.strategy",
            "missing",
            f"strategy {labels.strategy}, but no rates to estimate it with",
            f"edit mlplan.yaml: add labels.rates.{labels.strategy}",
        )
    # Done when an estimate was made for real items: a batch exported, priced as it went.
    batches = list_batches(context.ws)
    if not batches:
        rate = labels.rates[labels.strategy]
        e = estimate(labels.strategy, rate, items=1000, overlap=labels.overlap)
        return context.status(
            "labels.strategy",
            "missing",
            f"{labels.strategy} chosen; no batch priced yet (1,000 items would be {e.labels:,} "
            f"labels, {e.currency} {e.cost:,.0f}, {e.calendar_hours:,.1f} h)",
            "mlplan labels estimate --n N, then mlplan labels export --n N",
        )
    last = batches[-1]
    e = last.estimate
    others = [
        o for o in compare_strategies(labels, items=last.items) if o.strategy != last.strategy
    ]
    compared = "; ".join(f"{o.strategy} {o.currency} {o.cost:,.0f}" for o in others)
    return context.status(
        "labels.strategy",
        "done",
        f"{last.strategy}: batch {last.number}, {last.items:,} items → {e.labels:,} labels, "
        f"{e.currency} {e.cost:,.0f}, {e.calendar_hours:,.1f} h"
        + (f" (vs {compared})" if compared else ""),
    )


@check("labels.instructions")
def labels_instructions(context: StatusContext) -> ItemStatus:
    """The plan has labeling instructions and a definition for every class."""
    plan = context.ws.plan
    labels = plan.labels
    undefined = [c for c, d in labels.classes.items() if not d]
    if not labels.instructions:
        return context.status(
            "labels.instructions",
            "missing",
            "the plan has no labeling instructions",
            "edit mlplan.yaml: write labels.instructions",
        )
    if not labels.classes and plan.task != "regression":
        return context.status(
            "labels.instructions",
            "missing",
            "no class definitions in the plan",
            "edit mlplan.yaml: define each class under labels.classes",
        )
    if undefined:
        return context.status(
            "labels.instructions",
            "missing",
            f"classes without a definition: {', '.join(undefined)}",
            "edit mlplan.yaml: define them under labels.classes",
        )
    return context.status(
        "labels.instructions",
        "done",
        f"instructions and {len(labels.classes)} class definitions in the plan",
    )


@check("labels.hlp")
def labels_hlp(context: StatusContext) -> ItemStatus:
    """HLP is measured on today's labels with an interval, or given in the plan."""
    stored = get_hlp(context.ws)
    if stored is not None:
        return _measured_hlp(context, stored)
    hlp_source = context.ws.plan.baselines.hlp
    if hlp_source is not None and hlp_source.source == "value":
        return context.status(
            "labels.hlp",
            "done",
            f"HLP {hlp_source.value} from the plan"
            + (f" ({hlp_source.note})" if hlp_source.note else "")
            + ", not measured here",
        )
    return context.status(
        "labels.hlp",
        "missing",
        "HLP not measured yet",
        "mlplan labels import FILE (with items labeled twice), then mlplan labels hlp",
    )


def _measured_hlp(context: StatusContext, stored: StoredHLP) -> ItemStatus:
    hlp = stored.hlp
    key = hlp.primary or next(iter(hlp.metrics), None)
    shown = hlp.metrics.get(key) if key else None
    has_interval = shown is not None and shown.low == shown.low  # NaN: no bootstrap
    figure = (f"{key} {shown.value:.3f}" if shown is not None else "measured") + (
        f" [{shown.low:.3f}, {shown.high:.3f}]" if shown is not None and has_interval else ""
    )
    evidence = (
        f"HLP {figure} on {hlp.items:,} items of {stored.dataset} (against "
        f"{hlp.reference}), {stored.measured_at:%Y-%m-%d}"
    )
    if stored.stale:
        return context.status(
            "labels.hlp",
            "missing",
            f"{evidence}; measured on {stored.labels_then:,} labels, {stored.labels_now:,} now",
            "mlplan labels hlp (measure it again)",
        )
    if not has_interval:
        return context.status(
            "labels.hlp",
            "missing",
            f"{evidence}, without a confidence interval",
            "mlplan labels hlp --boot 200",
        )
    return context.status("labels.hlp", "done", evidence)


@check("labels.agreement")
def labels_agreement(context: StatusContext) -> ItemStatus:
    """Agreement, measured on today's labels, is at least the plan's threshold."""
    agreement = _agreement(context)
    if agreement is None:
        return context.status(
            "labels.agreement",
            "missing",
            "agreement not measured yet",
            "mlplan labels import FILE, then mlplan labels agreement",
        )
    report = agreement.report
    threshold = context.ws.plan.labels.min_agreement
    value = report.get("value")
    # Held against today's threshold, not the one in force when it was measured.
    passed = value is not None and value >= threshold
    shown_value = f"{value:.3f}" if value is not None else "undefined"
    evidence = (
        f"{report['metric']} {shown_value} {'>=' if passed else '<'} "
        f"{threshold} on {report.get('multiply_labeled_items', 0):,} "
        f"multiply-labeled items of {report['dataset']}"
    )
    now = label_count(context.ws, report["dataset"])
    if now != report.get("annotations"):
        return context.status(
            "labels.agreement",
            "missing",
            f"{evidence}; measured on {report.get('annotations', 0):,} labels, {now:,} now",
            "mlplan labels agreement (measure it again)",
        )
    return context.status(
        "labels.agreement",
        "done" if passed else "failing",
        evidence,
        None
        if passed
        else "mlplan labels queue (relabel the disagreements), "
        "clarify labels.classes, then mlplan labels agreement",
    )


@check("labels.issues")
def labels_issues(context: StatusContext) -> ItemStatus:
    """The relabel queue is empty or triaged."""
    queue = relabel_queue(context.ws)
    open_items = [q for q in queue if q.status == "open"]
    agreement = _agreement(context)
    if agreement is None and not queue:
        return context.status(
            "labels.issues",
            "missing",
            "labels not checked for issues yet",
            "mlplan labels agreement",
        )
    twice = 0 if agreement is None else agreement.report.get("multiply_labeled_items", 0)
    if not queue and not twice:
        # Nothing labeled twice: no disagreement could show an issue, so none was looked for.
        return context.status(
            "labels.issues",
            "missing",
            "no item is labeled twice, so no disagreement can show a label issue",
            "mlplan labels export --overlap 0.2 (items labeled twice), or mlplan labels "
            "issues --pred-probs FILE (confident learning)",
        )
    if open_items:
        return context.status(
            "labels.issues",
            "missing",
            f"{len(open_items):,} item(s) open in the relabel queue "
            f"({len(queue) - len(open_items):,} triaged or resolved)",
            "mlplan labels queue; mlplan labels triage ITEM --status resolved",
        )
    return context.status(
        "labels.issues",
        "done",
        f"relabel queue empty or triaged ({len(queue):,} item(s) handled)",
    )
