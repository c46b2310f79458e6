"""The Monitoring page's charts: per deployment and metric family, each charted metric over
the windows' start times, per window length, slice value and package version, with the
plan's rules as threshold lines and the alerts they fired as markers (``static/monitoring.js``
draws them with uPlot from the JSON this module gathers).

Only a bounded span is read: the newest ``CHART_WINDOWS`` windows of each family (before a
moment, to page back), as ``stored_windows`` filters and limits them in the store, and the
alerts whose window ended in that span. The values are the library's: ``metric_value`` reads
a metric as a rule does, ``rule_outcomes`` names the metric and slice values a rule judges."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlplan.errors import MlplanError
from mlplan.monitoring import (
    MEASURED,
    WHOLE,
    Alert,
    MonitorWindow,
    list_alerts,
    metric_value,
    rule_outcomes,
    stored_windows,
)
from mlplan.workspace import parse_duration

if TYPE_CHECKING:
    from mlplan.workspace import Workspace

__all__ = [
    "CHART_WINDOWS",
    "DeploymentCharts",
    "FamilyCharts",
    "charted_windows",
    "deployment_charts",
    "length_text",
    "newest_windows",
    "parse_before",
]

CHART_WINDOWS = 200
"""Windows charted per family: the newest, or the newest before the page's ``before``."""


def _charted(metrics: Mapping[str, Any]) -> Iterator[str]:
    """The metrics charted besides those a rule names (their dotted names, as
    ``metric_names`` gives them): a family's top-level numbers, how many features drifted,
    each ML metric (or its estimate) and each business value's sum.

    Examples
    --------
    >>> list(_charted({"requests": 4, "statuses": {"200": 4}, "drift": {"drifted": []},
    ...                "metrics": {"auc": {"estimated": {"value": 0.7}}, "v": {"sum": 2}}}))
    ['requests', 'drift.drifted', 'metrics.auc.estimated.value', 'metrics.v.sum']
    """
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            if key == "drift" and "drifted" in value:
                yield "drift.drifted"
            elif key == "metrics":
                for name, metric in value.items():
                    if not isinstance(metric, Mapping):
                        continue
                    found = metric.get("estimated") if "estimated" in metric else metric
                    part = "value" if "value" in (found or {}) else "sum"
                    if isinstance(found, Mapping) and part in found:
                        middle = ".estimated" if found is not metric else ""
                        yield f"metrics.{name}{middle}.{part}"
        elif value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            yield key


def length_text(seconds: float) -> str:
    """A window length as the plan writes one.

    Examples
    --------
    >>> length_text(300), length_text(3600), length_text(86400), length_text(90)
    ('5m', '1h', '1d', '90s')
    """
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_before(text: str | None) -> dt.datetime | None:
    """The page's ``before`` query parameter (ISO 8601, UTC unless it says otherwise), or
    None when absent or not a time.

    Examples
    --------
    >>> parse_before("2026-11-30T10:00:00+00:00"), parse_before("soon")
    (datetime.datetime(2026, 11, 30, 10, 0, tzinfo=datetime.timezone.utc), None)
    """
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def charted_windows(
    ws: Workspace,
    deployment: str,
    *,
    slice_value: str = WHOLE,
    before: dt.datetime | None = None,
) -> list[MonitorWindow]:
    """The deployment's windows the page charts: each family's newest ``CHART_WINDOWS`` of
    the slice value ``slice_value`` (starting before ``before``, when given), oldest first
    within a family. One slice value at a time: a plan with many slices costs no more."""
    return [
        w
        for family in MEASURED
        for w in stored_windows(
            ws,
            deployment=deployment,
            family=family,
            slice=slice_value,
            until=before,
            limit=CHART_WINDOWS,
        )
    ]


def newest_windows(ws: Workspace, deployment: str) -> list[MonitorWindow]:
    """Each family's newest window of the deployment, every slice value of it (the tables
    under the charts, and the slice values to chart)."""
    return [
        w
        for family in MEASURED
        for w in stored_windows(ws, deployment=deployment, family=family, limit=1)
    ]


@dataclass(frozen=True)
class FamilyCharts:
    """One family's charts: the metrics charted, how many windows (start times) its span
    holds, from when to when, and whether it is full (older windows may be stored)."""

    family: str
    metrics: list[str]
    windows: int
    first: dt.datetime
    last: dt.datetime

    @property
    def full(self) -> bool:
        """Whether the span holds ``CHART_WINDOWS`` windows: older ones may be stored."""
        return self.windows >= CHART_WINDOWS


@dataclass(frozen=True)
class DeploymentCharts:
    """A deployment's charts of one slice value: per family, its metrics; the window lengths
    (the default first) and the slice values to choose from; the moment to page back from
    (None: nothing older to show); and ``data``, everything the script draws, JSON-ready."""

    deployment: str
    slice: str
    families: list[FamilyCharts]
    lengths: list[str]
    slices: list[str]
    older: dt.datetime | None
    data: dict[str, Any]


def deployment_charts(
    ws: Workspace,
    deployment: str,
    windows: Sequence[MonitorWindow],
    *,
    slice_value: str = WHOLE,
    slices: Sequence[str] = (WHOLE,),
) -> DeploymentCharts:
    """The charts of ``deployment`` over ``windows`` (:func:`charted_windows` of the slice
    value ``slice_value``; ``slices``: those to choose from): per family and window length and
    package version, each charted metric's value at each window start (as a rule reads it);
    the plan's rules of that family as thresholds (the metric and slice values they judge);
    the alerts fired in the span as markers."""
    starts = [w.start for w in windows]
    alerts = (
        list_alerts(ws, deployment=deployment, since=min(starts), until=max(w.end for w in windows))
        if windows
        else []
    )
    families: list[FamilyCharts] = []
    data: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for family in dict.fromkeys(w.family for w in windows):
        mine = [w for w in windows if w.family == family]
        thresholds = _thresholds(ws, family, mine)
        ruled = {t["metric"] for t in thresholds}
        shapes: dict[tuple[Any, ...], list[str]] = {}  # windows alike chart the same names
        for w in mine:
            inner = w.metrics.get("metrics")
            shape = (tuple(w.metrics), tuple(inner) if isinstance(inner, Mapping) else ())
            if shape not in shapes:
                shapes[shape] = list(_charted(w.metrics))
        metrics = list(dict.fromkeys([*(n for ns in shapes.values() for n in ns), *sorted(ruled)]))
        if not metrics:
            continue
        distinct = sorted({w.start for w in mine})
        families.append(FamilyCharts(family, metrics, len(distinct), distinct[0], distinct[-1]))
        for w in mine:
            length = length_text((w.end - w.start).total_seconds())
            counts[length] = counts.get(length, 0) + 1
        data.append(
            {
                "family": family,
                "metrics": metrics,
                "series": _series(mine, metrics),
                "thresholds": thresholds,
                "alerts": [_marker(ws, a) for a in alerts if a.rule.partition(".")[0] == family],
            }
        )
    lengths = sorted(counts, key=lambda k: (-counts[k], parse_duration(k)))
    choices = sorted({slice_value, *slices}, key=lambda s: (s != WHOLE, s))
    # the page before: from the latest oldest window of a full family, so that no family
    # skips a window (one less full shows some again)
    older = max((f.first for f in families if f.full), default=None)
    return DeploymentCharts(
        deployment,
        slice_value,
        families,
        lengths,
        choices,
        older,
        {"deployment": deployment, "slice": slice_value, "families": data},
    )


def _series(windows: Sequence[MonitorWindow], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Per window length and slice value: the window starts (epoch seconds, ascending) and
    ends, and per package version each metric's value at each start (None where that version
    has no window or the metric no value)."""
    groups: dict[tuple[str, str], list[MonitorWindow]] = {}
    for w in windows:
        key = (length_text((w.end - w.start).total_seconds()), w.slice)
        groups.setdefault(key, []).append(w)
    out = []
    for (length, value), group in groups.items():
        starts = sorted({w.start for w in group})
        at = {start: i for i, start in enumerate(starts)}
        ends = [0] * len(starts)
        versions: dict[str, dict[str, list[float | None]]] = {}
        for w in group:
            ends[at[w.start]] = int(w.end.timestamp())
            name = f"{w.model} ({w.version})"
            values = versions.setdefault(name, {m: [None] * len(starts) for m in metrics})
            for m in metrics:
                values[m][at[w.start]] = metric_value(w.metrics, m)
        out.append(
            {
                "length": length,
                "slice": value,
                "starts": [int(s.timestamp()) for s in starts],
                "ends": ends,
                "versions": versions,
            }
        )
    return out


def _thresholds(
    ws: Workspace, family: str, windows: Sequence[MonitorWindow]
) -> list[dict[str, Any]]:
    """The plan's rules of ``family`` as ``mlplan monitor check`` judges them on windows of
    their length: the window metric and slice values each reads, its comparison and
    threshold (a rule whose metric the family does not compute is left out: the check
    says so)."""
    out = []
    for rule in getattr(ws.plan.monitoring, family, None) or []:
        seconds = parse_duration(rule.window, param="window").total_seconds()
        mine = [w for w in windows if (w.end - w.start).total_seconds() == seconds]
        if not mine:
            continue
        # the newest window of that length, every slice value: what the check judges
        mine = [w for w in mine if w.start == mine[-1].start]
        try:
            outcomes = rule_outcomes(ws, family, rule, mine, mine[0].start, mine[-1].end)
        except MlplanError:
            continue
        out.append(
            {
                "rule": f"{family}.{rule.name}",
                "metric": outcomes[0].metric,
                "op": rule.op,
                "threshold": rule.threshold,
                "length": length_text(seconds),
                "slices": [o.slice for o in outcomes],
                "severity": rule.severity,
            }
        )
    return out


def _marker(ws: Workspace, alert: Alert) -> dict[str, Any]:
    """An alert as a chart marks it: on its metric and slice, at the window that ended at
    its ``window_end``, of its rule's window length (None when the plan no longer has the
    rule)."""
    family, _, name = alert.rule.partition(".")
    rule = next(
        (r for r in getattr(ws.plan.monitoring, family, None) or [] if r.name == name), None
    )
    return {
        "id": alert.id,
        "rule": alert.rule,
        "metric": alert.metric,
        "slice": alert.slice,
        "value": alert.value,
        "end": int(alert.window_end.timestamp()),
        "length": None
        if rule is None
        else length_text(parse_duration(rule.window).total_seconds()),
        "severity": alert.severity,
        "state": alert.state,
    }
