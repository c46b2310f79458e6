"""Alerts (``mlplan monitor check``, ``mlplan alerts``): the plan's monitoring rules evaluated
on a deployment's latest whole windows, the alerts they raise kept in the store, and posted to
the plan's webhook.

A rule (``monitoring.FAMILY[i]`` in ``mlplan.yaml``) names a ``metric`` of its family's windows
as ``mlplan monitor --json`` shows them, nested keys joined by dots (``latency_p99_ms``,
``error_rate``, ``features.age.missing``, ``metrics.accuracy``, ``metrics.value.sum``; for
``ml`` a plan metric's bare name, ``roc_auc``; for ``business`` a business metric's, its sum;
for ``estimated``, a classifier's ML metrics estimated before labels, ``roc_auc`` for the
estimate, ``roc_auc.low`` and ``roc_auc.high`` for its interval's bounds, ``roc_auc.realised``
for the value once labels arrived, and its windows' samples are their answered records), a
comparison ``op`` and ``threshold``, the ``window`` length, a ``slice`` (default: every
record; a plan slice's name: each of its values, one alert each; else one value as ``mlplan
monitor`` names it, ``region=north``), its ``severity`` and ``min_samples``. For each rule
its family's newest whole window (the one that ended last before now, one per distinct rule
window length) is measured
(``monitor``, stored) and each package version's window of the slice is compared: a window
resting on fewer than ``min_samples`` samples, or whose metric has no value, is *not
evaluated*, never a firing; the rule fires when any evaluated window crosses the threshold
(the value shown is the furthest past it).

A firing opens an alert for its rule, deployment and slice, or refreshes the one still open
(or acknowledged); an evaluated rule that no longer fires resolves it. A rule naming a metric
its family never computes is refused with the names that exist. The alerts opened and
resolved are posted to the plan's webhook (``_webhook.py``: its payload) after the store's
transaction, and the delivery logged.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from mlplan.errors import AlertNotFoundError, ParameterError, UsageError
from mlplan.monitoring._estimate import estimable_metrics
from mlplan.monitoring._webhook import Delivery, Resolver, post_alerts
from mlplan.monitoring._windows import FAMILIES, WHOLE, MonitorWindow, _moment, monitor
from mlplan.plan import MonitorRule
from mlplan.store import AlertRecord, WebhookDeliveryRecord, utcnow
from mlplan.workspace import Workspace, parse_duration

__all__ = [
    "ALERT_STATES",
    "RULE_FAMILIES",
    "Alert",
    "AlertCheck",
    "RuleOutcome",
    "WebhookDelivery",
    "ack_alert",
    "check_alerts",
    "list_alerts",
    "metric_names",
    "metric_value",
    "rule_outcomes",
    "webhook_deliveries",
]

ALERT_STATES = ("open", "acknowledged", "resolved")
"""An alert's states: open until someone acknowledges it, resolved once its rule no longer
fires."""
RULE_FAMILIES = (*FAMILIES, "estimated")
"""The sections of the plan's monitoring rules: a family each, ``estimated`` the ML metrics
a classifier's windows estimate before labels."""
_ACTIVE = ("open", "acknowledged")
_BOUNDS = ("value", "low", "high")
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
}


@dataclass(frozen=True)
class Alert:
    """One alert as the store keeps it (``AlertRecord``'s fields)."""

    id: int
    rule: str
    deployment: str
    slice: str
    metric: str
    op: str
    value: float
    threshold: float
    severity: str
    state: str
    window_end: dt.datetime
    first_fired_at: dt.datetime
    last_fired_at: dt.datetime
    resolved_at: dt.datetime | None
    acked_by: str | None
    acked_at: dt.datetime | None
    ack_note: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (times in ISO 8601)."""
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            out[name] = value.isoformat() if isinstance(value, dt.datetime) else value
        return out


@dataclass(frozen=True)
class RuleOutcome:
    """One rule on one slice value: ``fired``, ``ok`` or ``not evaluated`` (with why), the
    value compared (the furthest past the threshold when fired), the samples it rests on and
    the window's bounds."""

    rule: str
    metric: str
    slice: str
    op: str
    threshold: float
    severity: str
    min_samples: int
    outcome: str
    value: float | None
    samples: int
    window_start: dt.datetime
    window_end: dt.datetime
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        out = dict(self.__dict__)
        out["window_start"] = self.window_start.isoformat()
        out["window_end"] = self.window_end.isoformat()
        return out


@dataclass(frozen=True)
class WebhookDelivery:
    """One logged post to the webhook (``WebhookDeliveryRecord``'s fields)."""

    id: int
    url: str
    alert_ids: tuple[int, ...]
    status: str
    attempts: int
    http_status: int | None
    error: str | None
    at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        out = dict(self.__dict__)
        out["alert_ids"] = list(self.alert_ids)
        out["at"] = self.at.isoformat()
        return out


@dataclass(frozen=True)
class AlertCheck:
    """What ``mlplan monitor check`` found: every rule's outcome, the alerts it opened, those
    still firing and those it resolved, and the webhook's delivery (none when no webhook is
    planned or nothing changed)."""

    deployment: str
    checked_at: dt.datetime
    outcomes: tuple[RuleOutcome, ...]
    opened: tuple[Alert, ...]
    firing: tuple[Alert, ...]
    resolved: tuple[Alert, ...]
    delivery: WebhookDelivery | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fired(self) -> bool:
        """Whether any rule fired (``mlplan monitor check`` then exits 1)."""
        return any(o.outcome == "fired" for o in self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "deployment": self.deployment,
            "checked_at": self.checked_at.isoformat(),
            "fired": self.fired,
            "rules": [o.to_dict() for o in self.outcomes],
            "opened": [a.to_dict() for a in self.opened],
            "firing": [a.to_dict() for a in self.firing],
            "resolved": [a.to_dict() for a in self.resolved],
            "delivery": self.delivery.to_dict() if self.delivery else None,
            "notes": list(self.notes),
        }


def metric_names(metrics: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """The dotted names of the numbers in a window's ``metrics`` (what a rule may name; a
    number may be missing, ``None``, in a window with too few rows); a list counts as its
    length (``drift.drifted``: how many features drifted).

    Examples
    --------
    >>> sorted(metric_names({"error_rate": 0.1, "features": {"age": {"missing": 0.0}},
    ...                      "drift": {"drifted": ["age"]}, "note": "text"}))
    ['drift.drifted', 'error_rate', 'features.age.missing']
    """
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from metric_names(value, f"{name}.")
        elif (
            value is None
            or isinstance(value, list)
            or (isinstance(value, int | float) and not isinstance(value, bool))
        ):
            yield name


def metric_value(metrics: Mapping[str, Any], metric: str) -> float | None:
    """The number a rule reads as ``metric`` (a dotted name of :func:`metric_names`) in a
    window's ``metrics``: a list counts as its length; None when missing, not a number, or
    not finite.

    Examples
    --------
    >>> metric_value({"drift": {"drifted": ["age", "region"]}, "error_rate": 0.1}, "drift.drifted")
    2.0
    >>> metric_value({"latency_p99_ms": None}, "latency_p99_ms") is None
    True
    """
    found: Any = metrics
    for part in metric.split("."):
        if not isinstance(found, Mapping) or part not in found:
            return None
        found = found[part]
    if isinstance(found, list):
        return float(len(found))
    if isinstance(found, bool) or not isinstance(found, int | float):
        return None
    return float(found) if math.isfinite(found) else None


def _rules(ws: Workspace) -> list[tuple[str, int, MonitorRule]]:
    spec = ws.plan.monitoring
    return [
        (family, i, rule)
        for family in RULE_FAMILIES
        for i, rule in enumerate(getattr(spec, family))
    ]


def _known(ws: Workspace, family: str, windows: Sequence[MonitorWindow]) -> set[str]:
    names = {n for w in windows if w.family == family for n in metric_names(w.metrics)}
    if family == "ml":  # before labels, the plan's metrics are still what a rule may name
        names |= {f"metrics.{m.name}" for m in ws.plan.metrics.ml} | {"labelled"}
    if family in ("input", "output"):  # without a training reference, no drift yet
        names.add("drift.drifted")
    if family == "estimated":  # a window with no answer estimates nothing, yet may later
        estimable = {*estimable_metrics("binary"), *estimable_metrics("multiclass")}
        for m in ws.plan.metrics.ml:
            if m.name in estimable:
                names |= {f"metrics.{m.name}.estimated.{b}" for b in _BOUNDS}
                names.add(f"metrics.{m.name}.realised")
    return names


def _resolved(family: str, metric: str, known: set[str]) -> str | None:
    """The window metric a rule's ``metric`` names: itself, or for ml a plan metric's bare
    name (``roc_auc``: ``metrics.roc_auc``), for business a business metric's (its sum), for
    estimated a metric's estimate (``roc_auc``: ``metrics.roc_auc.estimated.value``), one of
    its interval's bounds (``roc_auc.low``, ``roc_auc.high``) or its realised value
    (``roc_auc.realised``).

    Examples
    --------
    >>> _resolved("estimated", "roc_auc.high", {"metrics.roc_auc.estimated.high"})
    'metrics.roc_auc.estimated.high'
    """
    shorthand = {"ml": f"metrics.{metric}", "business": f"metrics.{metric}.sum"}.get(family)
    if family == "estimated":
        name, _, part = metric.rpartition(".")
        if name and part in _BOUNDS:
            shorthand = f"metrics.{name}.estimated.{part}"
        elif part == "realised":
            shorthand = f"metrics.{name}.realised"
        else:
            shorthand = f"metrics.{metric}.estimated.value"
    for candidate in (metric, shorthand):
        if candidate is not None and candidate in known:
            return candidate
    return None


def _slice_values(ws: Workspace, wanted: str | None, windows: Sequence[MonitorWindow]) -> list[str]:
    """The slice values a rule's ``slice`` means: every record (none given), each value of
    the plan's slice of that name in the windows (``region``: ``region=north``, ...), else the
    value itself (``region=north``)."""
    if wanted is None:
        return [WHOLE]
    spec = next((s for s in ws.plan.slices if s.name == wanted), None)
    if spec is None:
        return [wanted]
    if spec.columns:
        first = spec.columns[0]
        found = {w.slice for w in windows if w.slice.startswith(f"{first}=")}
        if len(spec.columns) > 1:
            found = {v for v in found if v.count("=") == len(spec.columns)}
    elif spec.column is not None:
        found = {w.slice for w in windows if w.slice.startswith(f"{spec.column} ")}
        found |= {w.slice for w in windows if w.slice.startswith(f"{spec.column}=")}
    else:
        found = {spec.name} & {w.slice for w in windows}
    return sorted(found) or [wanted]


def _latest(seconds: float, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    end = math.floor(now.timestamp() / seconds) * seconds
    return (
        dt.datetime.fromtimestamp(end - seconds, dt.UTC),
        dt.datetime.fromtimestamp(end, dt.UTC),
    )


def _outcome(
    name: str,
    rule: MonitorRule,
    value_of_slice: str,
    windows: Sequence[MonitorWindow],
    start: dt.datetime,
    end: dt.datetime,
) -> RuleOutcome:
    def made(
        outcome: str, value: float | None, samples: int, reason: str | None = None
    ) -> RuleOutcome:
        return RuleOutcome(
            name,
            rule.metric,
            value_of_slice,
            rule.op,
            rule.threshold,
            rule.severity,
            rule.min_samples,
            outcome,
            value,
            samples,
            start,
            end,
            reason,
        )

    if not windows:
        return made("not evaluated", None, 0, "no window")
    samples = max(w.samples for w in windows)
    enough = [w for w in windows if w.samples >= rule.min_samples]
    if not enough:
        return made(
            "not evaluated",
            None,
            samples,
            f"{samples} samples, fewer than min_samples {rule.min_samples}",
        )
    valued = [(v, w) for w in enough if (v := metric_value(w.metrics, rule.metric)) is not None]
    if not valued:
        return made("not evaluated", None, samples, f"{rule.metric} has no value in the window")
    compare = _COMPARE[rule.op]
    fired = [(v, w) for v, w in valued if compare(v, rule.threshold)]
    pool = fired or valued
    value, window = (max if rule.op in (">", ">=") else min)(pool, key=lambda p: p[0])
    return made("fired" if fired else "ok", value, window.samples)


def rule_outcomes(
    ws: Workspace,
    family: str,
    rule: MonitorRule,
    windows: Sequence[MonitorWindow],
    start: dt.datetime,
    end: dt.datetime,
    *,
    where: str | None = None,
) -> list[RuleOutcome]:
    """The rule ``rule`` of the plan's ``family`` judged on ``windows`` (those of its family
    are read; ``start`` and ``end`` are their bounds, as the outcomes show them) as ``mlplan
    monitor check`` judges it: one :class:`RuleOutcome` per value of its slice — ``fired``,
    ``ok``, or ``not evaluated`` (no window, fewer samples than ``min_samples``, no value).
    The rollout judges a guard naming a rule with it, on :func:`measure_span`'s windows.

    Raises
    ------
    UsageError
        The rule names a metric its family does not compute (the message, led by ``where``,
        names the metrics that exist).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from mlplan.plan import render_plan
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "mlplan.yaml").write_text(render_plan("churn", task="binary", target="y"))
    >>> t0 = dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)
    >>> t1 = t0 + dt.timedelta(hours=1)
    >>> window = MonitorWindow(t0, t1, "m", "abc", WHOLE, "input",
    ...                        {"features": {"age": {"missing": 0.25}}}, 40)
    >>> rule = MonitorRule(name="gaps", metric="features.age.missing", threshold=0.2)
    >>> [(o.outcome, o.value, o.samples) for o in rule_outcomes(
    ...     Workspace(root, store_url="sqlite://"), "input", rule, [window], t0, t1)]
    [('fired', 0.25, 40)]
    """
    mine = [w for w in windows if w.family == family]
    known = _known(ws, family, mine)
    metric = _resolved(family, rule.metric, known)
    if mine and metric is None:
        raise UsageError(
            f"{where or f'monitoring rule {family}.{rule.name}'}: metric "
            f"{rule.metric!r} is not one the {family} family computes; known: "
            + ", ".join(sorted(known))
        )
    return [
        _outcome(
            f"{family}.{rule.name}",
            rule.model_copy(update={"metric": metric or rule.metric}),
            wanted,
            [w for w in mine if w.slice == wanted],
            start,
            end,
        )
        for wanted in _slice_values(ws, rule.slice, mine)
    ]


def check_alerts(
    ws: Workspace,
    deployment: str | None = None,
    *,
    at: dt.datetime | str | None = None,
    now: dt.datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
    resolve: Resolver | None = None,
) -> AlertCheck:
    """Evaluate every rule of the plan's ``monitoring`` section on the deployment's newest
    whole windows (measured and stored as ``mlplan monitor`` does), record the alerts opened
    and resolved (a ``monitor-check`` run), and post them to the plan's webhook, retried
    (``sleep`` waits between attempts; ``resolve`` looks host names up — tests pass their
    own). ``at`` checks as of another moment than now (a time, ISO 8601 text, or a duration
    before now): the windows that had ended by then, e.g. to see what a past incident fired.

    Raises
    ------
    UsageError
        The plan has no monitoring rule, or a rule names a metric its family does not compute
        (the message names the rule and the metrics that exist).
    ParameterError
        ``deployment`` names a model, not a deployment.
    DeploymentNotFoundError
        No such deployment.
    """
    now = _moment(at, "at", now or utcnow()) or now or utcnow()
    rules = _rules(ws)
    if not rules:
        raise UsageError(
            "the plan has no monitoring rule; add one under monitoring: in mlplan.yaml "
            "(e.g. software: [{name: slow, metric: latency_p99_ms, op: '>', threshold: 250}])"
        )
    by_length: dict[str, list[MonitorWindow]] = {}
    bounds: dict[str, tuple[dt.datetime, dt.datetime]] = {}
    name = deployment
    notes: list[str] = []
    for length in sorted({rule.window for _, _, rule in rules}):
        start, end = _latest(parse_duration(length, param="window").total_seconds(), now)
        result = monitor(ws, name, window=length, since=start, until=end)
        if result.deployment is None:
            raise ParameterError(
                "deployment", f"{{param}} {name!r} is a model; give a deployment to check"
            )
        name = result.deployment
        by_length[length] = [w for w in result.windows if w.start == start]
        bounds[length] = (start, end)
        notes += result.notes
    assert name is not None
    outcomes: list[RuleOutcome] = []
    for family, index, rule in rules:
        outcomes += rule_outcomes(
            ws,
            family,
            rule,
            by_length[rule.window],
            *bounds[rule.window],
            where=f"mlplan.yaml monitoring.{family}[{index}] ({rule.name})",
        )
    opened, firing, resolved = _record(ws, name, outcomes, now)
    delivery = None
    webhook = ws.plan.monitoring.webhook
    changed = opened + resolved
    if webhook is not None and changed:
        payload = {
            "source": "mlplan",
            "version": 1,
            "project": ws.plan.project.name,
            "deployment": name,
            "checked_at": now.isoformat(),
            "alerts": [_payload(a, outcomes) for a in changed],
        }
        delivery = _log_delivery(
            ws,
            webhook.url,
            [a.id for a in changed],
            post_alerts(webhook, payload, sleep=sleep, resolve=resolve),
        )
    return AlertCheck(name, now, tuple(outcomes), opened, firing, resolved, delivery, tuple(notes))


def _payload(alert: Alert, outcomes: Sequence[RuleOutcome]) -> dict[str, Any]:
    out = alert.to_dict()
    for drop in ("acked_by", "acked_at", "ack_note", "deployment"):
        out.pop(drop)
    match = next((o for o in outcomes if (o.rule, o.slice) == (alert.rule, alert.slice)), None)
    out["window_start"] = match.window_start.isoformat() if match else None
    return out


def _record(
    ws: Workspace, deployment: str, outcomes: Sequence[RuleOutcome], now: dt.datetime
) -> tuple[tuple[Alert, ...], tuple[Alert, ...], tuple[Alert, ...]]:
    """Open, refresh and resolve the alerts in one transaction with a ``monitor-check`` run."""
    opened: list[AlertRecord] = []
    firing: list[AlertRecord] = []
    resolved: list[AlertRecord] = []
    parameters = {"deployment": deployment, "now": now.isoformat()}
    with ws.write() as session, ws.record("monitor-check", parameters, session=session) as run:
        run.input("deployment", deployment)
        project = ws.project_id(session)
        active = {
            (a.rule, a.slice): a
            for a in session.scalars(
                ws.select(AlertRecord).where(
                    AlertRecord.deployment == deployment, AlertRecord.state.in_(_ACTIVE)
                )
            )
        }
        for o in outcomes:
            alert = active.get((o.rule, o.slice))
            if o.outcome == "fired":
                assert o.value is not None
                if alert is None:
                    alert = AlertRecord(
                        project_id=project,
                        rule=o.rule,
                        deployment=deployment,
                        slice=o.slice,
                        metric=o.metric,
                        op=o.op,
                        value=o.value,
                        threshold=o.threshold,
                        severity=o.severity,
                        state="open",
                        window_end=o.window_end,
                        first_fired_at=now,
                        last_fired_at=now,
                    )
                    session.add(alert)
                    opened.append(alert)
                else:
                    alert.value, alert.threshold, alert.severity = o.value, o.threshold, o.severity
                    alert.window_end, alert.last_fired_at = o.window_end, now
                    firing.append(alert)
            elif o.outcome == "ok" and alert is not None:
                alert.state, alert.resolved_at = "resolved", now
                resolved.append(alert)
        session.flush()
        return (
            tuple(_alert(a) for a in opened),
            tuple(_alert(a) for a in firing),
            tuple(_alert(a) for a in resolved),
        )


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _alert(r: AlertRecord) -> Alert:
    return Alert(
        r.id,
        r.rule,
        r.deployment,
        r.slice,
        r.metric,
        r.op,
        r.value,
        r.threshold,
        r.severity,
        r.state,
        _utc(r.window_end) or r.window_end,
        _utc(r.first_fired_at) or r.first_fired_at,
        _utc(r.last_fired_at) or r.last_fired_at,
        _utc(r.resolved_at),
        r.acked_by,
        _utc(r.acked_at),
        r.ack_note,
    )


def _log_delivery(
    ws: Workspace, url: str, alert_ids: Sequence[int], delivery: Delivery
) -> WebhookDelivery:
    with ws.write() as session:
        record = WebhookDeliveryRecord(
            project_id=ws.project_id(session),
            url=url,
            alert_ids=list(alert_ids),
            status=delivery.status,
            attempts=delivery.attempts,
            http_status=delivery.http_status,
            error=delivery.error,
        )
        session.add(record)
        session.flush()
        return _delivery(record)


def _delivery(r: WebhookDeliveryRecord) -> WebhookDelivery:
    return WebhookDelivery(
        r.id,
        r.url,
        tuple(r.alert_ids),
        r.status,
        r.attempts,
        r.http_status,
        r.error,
        _utc(r.at) or r.at,
    )


def webhook_deliveries(ws: Workspace) -> list[WebhookDelivery]:
    """The posts to the webhook, oldest first."""
    with ws.store.transaction() as session:
        query = ws.select(WebhookDeliveryRecord).order_by(WebhookDeliveryRecord.id)
        return [_delivery(r) for r in session.scalars(query)]


def list_alerts(
    ws: Workspace,
    *,
    state: str | None = None,
    deployment: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int | None = None,
) -> list[Alert]:
    """The alerts, newest first (``state``, ``deployment``: only those; ``since``, ``until``:
    those whose window ended at or after, at or before that moment; ``limit``: at most that
    many, the newest). The store filters and limits.

    Raises
    ------
    ParameterError
        A ``state`` that is not open, acknowledged or resolved, or a ``limit`` below 1.
    """
    if state is not None and state not in ALERT_STATES:
        raise ParameterError(
            "state", f"{{param}} {state!r} is not one of: {', '.join(ALERT_STATES)}"
        )
    if limit is not None and limit < 1:
        raise ParameterError("limit", f"{{param}} must be at least 1; got {limit}")
    query = ws.select(AlertRecord)
    if state is not None:
        query = query.where(AlertRecord.state == state)
    if deployment is not None:
        query = query.where(AlertRecord.deployment == deployment)
    if since is not None:
        query = query.where(AlertRecord.window_end >= _utc(since))
    if until is not None:
        query = query.where(AlertRecord.window_end <= _utc(until))
    query = query.order_by(sa.desc(AlertRecord.id))
    if limit is not None:
        query = query.limit(limit)
    with ws.store.transaction() as session:
        return [_alert(r) for r in session.scalars(query)]


def ack_alert(ws: Workspace, alert_id: int, *, by: str, note: str | None = None) -> Alert:
    """Acknowledge the alert ``alert_id`` as ``by`` (a person), with an optional ``note``; it
    stays acknowledged until its rule no longer fires.

    Raises
    ------
    AlertNotFoundError
        No alert with that id in this project.
    ParameterError
        An empty ``by``, or an alert already resolved.
    """
    if not by.strip():
        raise ParameterError("by", "{param} must name who acknowledges the alert")
    with ws.write() as session:
        record = session.scalars(ws.select(AlertRecord).where(AlertRecord.id == alert_id)).first()
        if record is None:
            raise AlertNotFoundError(
                f"no alert {alert_id}; list them with mlplan alerts list --state open"
            )
        if record.state == "resolved":
            raise ParameterError(
                "alert_id", f"alert {alert_id} ({record.rule}) is resolved; nothing to acknowledge"
            )
        record.state, record.acked_by, record.acked_at = "acknowledged", by.strip(), utcnow()
        record.ack_note = note
        session.flush()
        return _alert(record)
