"""The Monitoring items from the windows ``mlplan monitor`` stored: the software, input,
output, ML and business families of each deployment's windows (every record's, not a
slice's). An item is done once each deployment has windows of its family that show what
the item asks for; the alerts come with #15's second part."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from mlplan.checklist._status import ItemStatus, StatusContext, check
from mlplan.monitoring import WHOLE, MonitorWindow
from mlplan.store import MonitorWindowRecord
from mlplan.workspace import Workspace, list_deployments

__all__ = [
    "monitor_business",
    "monitor_input",
    "monitor_ml",
    "monitor_output",
    "monitor_software",
]

_FEEDBACK = "POST /v1/feedback"


def _windows(context: StatusContext, family: str) -> dict[str, list[MonitorWindow]]:
    """Each deployment's stored windows of ``family`` over every record, oldest first (a
    deployment with none: an empty list)."""
    every = context.memo("monitor_windows", lambda: _whole_windows(context.ws))
    return {d: [w for w in found if w.family == family] for d, found in every.items()}


def _whole_windows(ws: Workspace) -> dict[str, list[MonitorWindow]]:
    """Each deployment's stored windows over every record (no slice's), oldest first, read
    in one query: a deployment watched hourly with 100 slice values stores a hundred times
    more slice windows than whole ones, and the items read none of them."""
    found: dict[str, list[MonitorWindow]] = {d.name: [] for d in list_deployments(ws)}
    query = (
        ws.select(MonitorWindowRecord)
        .where(
            MonitorWindowRecord.slice == WHOLE,
            MonitorWindowRecord.deployment.in_(sorted(found)),
        )
        .order_by(MonitorWindowRecord.window_start, MonitorWindowRecord.id)
    )
    with ws.store.transaction() as session:
        for r in session.scalars(query):
            found[str(r.deployment)].append(
                MonitorWindow(
                    _utc(r.window_start),
                    _utc(r.window_end),
                    r.model,
                    r.version,
                    r.slice,
                    r.family,
                    r.metrics,
                    r.samples,
                )
            )
    return found


def _utc(moment: dt.datetime) -> dt.datetime:
    """A time in UTC (a naive one is taken as UTC, as the store writes them)."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _family_status(
    context: StatusContext,
    item_id: str,
    family: str,
    shows: Callable[[MonitorWindow], bool],
    said: Callable[[MonitorWindow], str],
    lacking: str,
    next_step: str,
) -> ItemStatus:
    """Done when every deployment has a window of ``family`` that ``shows`` what the item
    asks (the newest such window ``said`` as evidence); else missing, naming what lacks."""
    found = _windows(context, family)
    if not found:
        return context.status(
            item_id,
            "missing",
            "no deployment yet: nothing live to monitor",
            "deploy a cleared model: mlplan deploy MODEL",
        )
    done, missing, first = [], [], None
    for deployment, windows in found.items():
        shown = [w for w in windows if shows(w)]
        if shown:
            done.append(f"{deployment}: {said(shown[-1])}")
            continue
        first = first or deployment
        if windows:
            plural = "" if len(windows) == 1 else "s"
            missing.append(f"{deployment}: {len(windows)} window{plural}, {lacking}")
        else:
            missing.append(f"{deployment}: no monitoring window stored")
    if missing:
        return context.status(
            item_id, "missing", "; ".join(missing + done), next_step.format(deployment=first)
        )
    return context.status(item_id, "done", "; ".join(done))


def _at(w: MonitorWindow) -> str:
    return f"window of {w.start:%Y-%m-%d %H:%M}"


def _number(value: object) -> str:
    return "—" if not isinstance(value, int | float) else f"{value:.3g}"


@check("monitor.software")
def monitor_software(context: StatusContext) -> ItemStatus:
    """Each deployment's latency, throughput and errors are measured in stored windows (and,
    where its servers log their health, CPU, memory and queue depth)."""
    return _family_status(
        context,
        "monitor.software",
        "software",
        lambda w: w.samples > 0,
        _software_said,
        "none with requests",
        "measure it: mlplan monitor {deployment} (its servers started with --health-every 10 "
        "log CPU, memory and queue depth too)",
    )


def _software_said(w: MonitorWindow) -> str:
    cpu = w.metrics.get("cpu_percent")
    return (
        f"{_at(w)}: {w.samples} requests, p99 {_number(w.metrics.get('latency_p99_ms'))} ms, "
        f"errors {_number(w.metrics.get('error_rate'))}, "
        + (
            f"CPU {_number(cpu)}%"
            if cpu is not None
            else "no CPU or memory (serve with --health-every)"
        )
    )


@check("monitor.input")
def monitor_input(context: StatusContext) -> ItemStatus:
    """Each deployment's inputs are collected and held against the model's training
    reference: a stored window with each feature's drift computed against it."""

    def referenced(w: MonitorWindow) -> bool:
        return bool((w.metrics.get("drift") or {}).get("features"))

    def said(w: MonitorWindow) -> str:
        drift = w.metrics["drift"]
        drifted = drift.get("drifted") or []
        return (
            f"{_at(w)}: {len(drift['features'])} features held against the training "
            "reference, " + (f"drifted: {', '.join(drifted)}" if drifted else "none drifted")
        )

    return _family_status(
        context,
        "monitor.input",
        "input",
        referenced,
        said,
        "their inputs measured without a training reference",
        "measure inputs with mlplan monitor {deployment}; drift needs the training reference "
        "each package keeps since #15: train the model again (mlplan train) and deploy it",
    )


@check("monitor.output")
def monitor_output(context: StatusContext) -> ItemStatus:
    """Each deployment's outputs are measured and product events are joined to them."""
    return _family_status(
        context,
        "monitor.output",
        "output",
        lambda w: bool(w.metrics.get("events")),
        lambda w: (
            f"{_at(w)}: null rate {_number(w.metrics.get('null_rate'))}, events "
            + ", ".join(
                f"{name} {_number(e.get('rate'))}"
                for name, e in sorted(w.metrics["events"].items())
            )
        ),
        "no product event joined to their answers",
        f"send product events with feedback ({_FEEDBACK} "
        '{{"request_id": ..., "events": [{{"name": "redo_search"}}]}}), then mlplan monitor '
        "{deployment}",
    )


@check("monitor.ml")
def monitor_ml(context: StatusContext) -> ItemStatus:
    """Each deployment's ML metrics are computed from feedback labels."""
    primary = context.ws.plan.metrics.primary_metric
    name = primary.name if primary is not None else None

    def said(w: MonitorWindow) -> str:
        metrics = w.metrics.get("metrics") or {}
        shown = name if name in metrics else next(iter(metrics), None)
        figure = f", {shown} {_number(metrics.get(shown))}" if shown else ""
        return f"{_at(w)}: {w.samples} labelled{figure}"

    return _family_status(
        context,
        "monitor.ml",
        "ml",
        lambda w: w.samples > 0,
        said,
        "no feedback label on their answers",
        f"send the true labels as they come ({_FEEDBACK} "
        '{{"request_id": ..., "label": ...}}), then mlplan monitor {deployment}',
    )


@check("monitor.business")
def monitor_business(context: StatusContext) -> ItemStatus:
    """Each deployment's business values (feedback ``value``, or events named as the plan's
    business metrics) are summed per window."""

    def counted(w: MonitorWindow) -> bool:
        metrics = w.metrics.get("metrics") or {}
        return any((m or {}).get("count") for m in metrics.values())

    def said(w: MonitorWindow) -> str:
        metrics = w.metrics.get("metrics") or {}
        return f"{_at(w)}: " + ", ".join(
            f"{name} {_number(m.get('sum'))} over {m.get('count')}"
            for name, m in metrics.items()
            if m.get("count")
        )

    return _family_status(
        context,
        "monitor.business",
        "business",
        counted,
        said,
        "no business value in their feedback",
        f"send business values with feedback ({_FEEDBACK} "
        '{{"request_id": ..., "value": 12.5}}, or events named as the plan\'s business '
        "metrics), then mlplan monitor {deployment}",
    )


@check("monitor.alerts")
def monitor_alerts(context: StatusContext) -> ItemStatus:
    """Alert rules are set in the plan and the firing path was exercised (a ``monitor
    check`` that recorded an alert, or a delivered webhook); failing while a critical alert
    is open (the evidence names the open alerts)."""
    from mlplan.monitoring import list_alerts, webhook_deliveries

    spec = context.ws.plan.monitoring
    rules = [
        f"{family}.{rule.name}"
        for family in ("software", "input", "output", "ml", "business", "estimated")
        for rule in getattr(spec, family)
    ]
    if not rules:
        return context.status(
            "monitor.alerts",
            "missing",
            "no alert rule in the plan",
            "add rules under monitoring: in mlplan.yaml (metric, op, threshold, window, "
            "severity, min_samples), then mlplan monitor check",
        )
    alerts = list_alerts(context.ws)
    active = [a for a in alerts if a.state in ("open", "acknowledged")]
    shown = "; ".join(
        f"alert {a.id} {a.rule} on {a.deployment} ({a.slice}) {a.state}, {a.severity}: "
        f"{a.metric} {a.value:.4g} {a.op} {a.threshold:g}"
        for a in active
    )
    critical = [a for a in active if a.state == "open" and a.severity == "critical"]
    if critical:
        return context.status(
            "monitor.alerts",
            "failing",
            f"{len(critical)} critical alert(s) open: {shown}",
            f"look into it, then mlplan alerts ack {critical[0].id} --by YOU --note WHY "
            "(mlplan monitor check resolves it once the rule no longer fires)",
        )
    delivered = [d for d in webhook_deliveries(context.ws) if d.status == "delivered"]
    if not alerts and not delivered:
        return context.status(
            "monitor.alerts",
            "missing",
            f"{len(rules)} rule(s) set ({', '.join(rules)}); the firing path not exercised yet: "
            "no alert recorded, no webhook delivered",
            "run mlplan monitor check DEPLOYMENT on a schedule (cron or CI; it exits 1 when a "
            "rule fires)",
        )
    said = [f"{len(rules)} rule(s) set", f"{len(alerts)} alert(s) recorded"]
    if delivered:
        said.append(f"{len(delivered)} webhook delivery(ies)")
    return context.status(
        "monitor.alerts", "done", ", ".join(said) + (f"; open: {shown}" if shown else "")
    )
