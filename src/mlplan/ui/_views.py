"""What each page shows, gathered from the library calls the CLI makes (``mlplan status``,
``mlplan data list``, ``show`` and ``splits``, ``mlplan models compare``, ``mlplan monitor``,
``mlplan alerts``, ``mlplan rollout status`` and ``history``): plain values for a template,
nothing computed here that the library does not already say."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from mlplan.checklist import STAGES, ItemStatus, State, status
from mlplan.data import (
    DatasetSummary,
    DatasetVersionInfo,
    SplitInfo,
    column_rows,
    effective_metadata,
    get_dataset,
    list_datasets,
    list_splits,
    metadata_rows,
)
from mlplan.errors import DatasetNotFoundError
from mlplan.modeling import Comparison, latest_comparison
from mlplan.monitoring import FAMILIES, WHOLE, Alert, MonitorWindow, list_alerts
from mlplan.rollout import (
    MOVES,
    Action,
    Analysis,
    RolloutEvent,
    RolloutInfo,
    allowed_actions,
    analyse_rollout,
    rollout_history,
    rollout_status,
)
from mlplan.rollout import State as RolloutState
from mlplan.ui._charts import (
    DeploymentCharts,
    charted_windows,
    deployment_charts,
    newest_windows,
)
from mlplan.ui._format import Bar, Pager, column_bars, key_metrics, page_of
from mlplan.ui._models import MetricAxis, Whisker, comparison_axes, row_whiskers
from mlplan.workspace import DeploymentInfo, list_deployments

if TYPE_CHECKING:
    from mlplan.workspace import Workspace

__all__ = [
    "STATE_LABELS",
    "DataView",
    "DatasetView",
    "DeploymentMonitoring",
    "DeploymentRollout",
    "DeploymentsView",
    "FamilyTable",
    "ModelsView",
    "MonitoringView",
    "PlanSection",
    "ProjectView",
    "data_view",
    "dataset_view",
    "deployments_view",
    "events_param",
    "models_view",
    "monitoring_view",
    "plan_sections",
    "project_view",
]

STATE_LABELS: dict[State, tuple[str, str]] = {
    "done": ("✔", "done"),
    "missing": ("○", "missing"),
    "failing": ("✘", "failing"),
    "not_applicable": ("–", "n/a"),
}
"""Each checklist state's icon and word, as ``mlplan status`` prints them: colour is never
the only sign."""

_ACTIVE_ALERTS = ("open", "acknowledged")


@dataclass(frozen=True)
class PlanSection:
    """One top-level key of ``mlplan.yaml`` and its text, comments above it included."""

    key: str
    text: str

    @property
    def anchor(self) -> str:
        """The id of its place on the Project page (``plan-KEY``)."""
        return f"plan-{self.key}"


def plan_sections(text: str) -> list[PlanSection]:
    """The plan's text cut at each top-level key, the comments right above a key going with
    it (text before any key: the section ``""``).

    Examples
    --------
    >>> [(s.key, s.text) for s in plan_sections("# churn\\nproject:\\n  name: c\\ndata: {}\\n")]
    [('project', '# churn\\nproject:\\n  name: c\\n'), ('data', 'data: {}\\n')]
    """
    sections: list[PlanSection] = []
    key, lines = "", list[str]()
    pending: list[str] = []  # comments and blank lines: they go with the next key
    for line in text.splitlines(keepends=True):
        found = re.match(r"([A-Za-z_][\w-]*)\s*:", line)
        if found:
            if key or lines:
                sections.append(PlanSection(key, "".join(lines)))
            key, lines, pending = found.group(1), [*pending, line], []
        elif not line.strip() or line.startswith("#"):
            pending.append(line)
        else:
            lines += [*pending, line]
            pending = []
    lines += pending
    if key or lines:
        sections.append(PlanSection(key, "".join(lines)))
    return sections


@dataclass(frozen=True)
class ProjectView:
    """The Project page: the checklist by stage with its counts, the active alerts, the plan."""

    name: str
    plan_path: str
    counts: dict[State, int]
    stages: list[tuple[str, list[ItemStatus]]]
    alerts: list[Alert]
    alerts_pager: Pager
    plan: list[PlanSection]

    def plan_links(self, st: ItemStatus) -> list[tuple[str, str | None]]:
        """Each part of the plan the item reads, with the anchor of its top-level section on
        this page, or None where the plan file does not write that section (its defaults
        apply)."""
        written = {s.key: s.anchor for s in self.plan if s.key}
        return [(key, written.get(key.split(".")[0])) for key in st.item.plan_keys]


def project_view(ws: Workspace, *, alerts_page: int = 1) -> ProjectView:
    """What ``mlplan status`` and ``mlplan alerts list`` show, and the plan's text."""
    report = status(ws)
    by_stage = report.by_stage()
    active = (
        sorted(
            (a for state in _ACTIVE_ALERTS for a in list_alerts(ws, state=state)),
            key=lambda a: a.id,
            reverse=True,
        )
        if ws.has_store
        else []
    )  # reading must not create a store (as status does not)
    shown, pager = page_of(active, alerts_page)
    return ProjectView(
        name=ws.plan.project.name,
        plan_path=str(ws.plan_path),
        counts=report.counts(),
        stages=[(stage, by_stage[stage]) for stage in STAGES if by_stage[stage]],
        alerts=shown,
        alerts_pager=pager,
        plan=plan_sections(ws.plan_path.read_text(encoding="utf-8")),
    )


@dataclass(frozen=True)
class ModelsView:
    """The Models page: the newest stored comparison (``mlplan models compare``), a page of
    its rows, and its metrics, the primary first; each metric's axis over every row and, per
    row shown, its error bars on them."""

    comparison: Comparison | None
    rows: list[dict[str, Any]]
    pager: Pager
    metrics: list[str]
    axes: dict[str, MetricAxis] = field(default_factory=dict)
    whiskers: list[dict[str, Whisker]] = field(default_factory=list)


def models_view(ws: Workspace, *, page: int = 1) -> ModelsView:
    """The comparison ``mlplan models compare`` stored last (the page never runs one: that
    is a run of its own, with its bootstrap)."""
    found = latest_comparison(ws) if ws.has_store else None
    rows = [] if found is None else found.rows
    shown, pager = page_of(rows, page)
    metrics: list[str] = [] if found is None else [found.primary]
    for row in rows:
        metrics.extend(m for m in row["metrics"] if m not in metrics)
    axes = comparison_axes(rows, metrics)
    confidence = None if found is None else found.confidence
    whiskers = [row_whiskers(row, axes, confidence=confidence) for row in shown]
    return ModelsView(found, shown, pager, metrics, axes, whiskers)


@dataclass(frozen=True)
class FamilyTable:
    """One family's newest window of a deployment: one row per slice value (the whole
    window first) with its samples and key metrics."""

    family: str
    window: MonitorWindow
    windows: int
    rows: list[tuple[str, int, list[tuple[str, str]]]]


@dataclass(frozen=True)
class DeploymentMonitoring:
    """A deployment's stored windows, a table per family, and its active alerts; the
    charts of its windows' span (``_charts``)."""

    deployment: DeploymentInfo
    families: list[FamilyTable]
    alerts: list[Alert]
    charts: DeploymentCharts | None = None


@dataclass(frozen=True)
class MonitoringView:
    """The Monitoring page: every deployment's monitoring, and whether anything is stored."""

    deployments: list[DeploymentMonitoring]
    any_windows: bool = field(default=False)
    before: dt.datetime | None = None
    slice: str = WHOLE


def monitoring_view(
    ws: Workspace, *, before: dt.datetime | None = None, slice_value: str = WHOLE
) -> MonitoringView:
    """What ``mlplan monitor`` stored and ``mlplan alerts list`` shows, per deployment: each
    family's newest window in a table, and its newest windows of the slice value
    ``slice_value`` (those starting before ``before``, to page back) charted."""
    shown = []
    for deployment in list_deployments(ws) if ws.has_store else []:
        newest = newest_windows(ws, deployment.name)
        alerts = [
            a
            for state in _ACTIVE_ALERTS
            for a in list_alerts(ws, state=state, deployment=deployment.name)
        ]
        charts = deployment_charts(
            ws,
            deployment.name,
            charted_windows(ws, deployment.name, slice_value=slice_value, before=before),
            slice_value=slice_value,
            slices=[w.slice for w in newest],
        )
        charted = {f.family: f.windows for f in charts.families}
        tables = [  # newest of the windows charted
            dataclasses.replace(t, windows=charted.get(t.family, t.windows))
            for t in _family_tables(newest)
        ]
        shown.append(DeploymentMonitoring(deployment, tables, alerts, charts))
    return MonitoringView(shown, any(d.families for d in shown), before, slice_value)


def _family_tables(windows: Sequence[MonitorWindow]) -> list[FamilyTable]:
    """Per family (in the plan's order of families, then any other), its newest window."""
    families = [*FAMILIES, "estimated"]
    families += sorted({w.family for w in windows} - set(families))
    tables = []
    for family in families:
        mine = [w for w in windows if w.family == family]
        if not mine:
            continue
        newest = max(w.start for w in mine)
        latest = sorted(
            (w for w in mine if w.start == newest), key=lambda w: (w.slice != WHOLE, w.slice)
        )
        tables.append(
            FamilyTable(
                family,
                latest[0],
                len({w.start for w in mine}),
                [(w.slice, w.samples, key_metrics(w.metrics)) for w in latest],
            )
        )
    return tables


@dataclass(frozen=True)
class DeploymentRollout:
    """One deployment on the Deployments page: what it serves, its newest rollout (None when
    it never had one) with the analysis of the current step when active (as ``mlplan rollout
    status --json`` shows it), the moves a person may make now, and a page of its rollouts'
    events, newest first, each with its rollout's id."""

    deployment: DeploymentInfo
    rollout: RolloutInfo | None
    analysis: Analysis | None
    moves: list[Action]
    events: list[tuple[int, RolloutEvent]]
    events_pager: Pager

    @property
    def events_param(self) -> str:
        """The query parameter of its history's page."""
        return events_param(self.deployment.name)


@dataclass(frozen=True)
class DeploymentsView:
    """The Deployments page: every deployment with its rollout."""

    deployments: list[DeploymentRollout]


def events_param(deployment: str) -> str:
    """The query parameter that names the page of ``deployment``'s event history.

    Examples
    --------
    >>> events_param("production")
    'events-production'
    """
    return f"events-{deployment}"


def deployments_view(ws: Workspace, *, pages: dict[str, int] | None = None) -> DeploymentsView:
    """What ``mlplan rollout status --json`` and ``mlplan rollout history`` show for each
    deployment; ``pages`` the page of each deployment's history (default the first)."""
    if not ws.has_store:  # reading must not create a store
        return DeploymentsView([])
    newest = {r.deployment: r for r in rollout_status(ws)}
    shown = []
    for deployment in list_deployments(ws):
        rollout = newest.get(deployment.name)
        analysis = (
            analyse_rollout(ws, deployment.name) if rollout is not None and rollout.active else None
        )
        moves: list[Action] = []
        if rollout is not None and rollout.active:
            allowed = allowed_actions(cast("RolloutState", rollout.state), "person")
            moves = [a for a in allowed if a in MOVES]
        events = (
            [
                (r.id, e)
                for r in reversed(rollout_history(ws, deployment.name))
                for e in reversed(r.events)
            ]
            if rollout is not None
            else []
        )
        page, pager = page_of(events, (pages or {}).get(events_param(deployment.name), 1))
        shown.append(DeploymentRollout(deployment, rollout, analysis, moves, page, pager))
    return DeploymentsView(shown)


@dataclass(frozen=True)
class DataView:
    """The Data page: a page of the datasets, planned or registered, each with its latest
    version (``mlplan data list``)."""

    datasets: list[DatasetSummary]
    pager: Pager


def data_view(ws: Workspace, *, page: int = 1) -> DataView:
    """What ``mlplan data list`` prints; with no store yet, the plan's datasets, none
    registered (reading must not create a store)."""
    if ws.has_store:
        found = list_datasets(ws)
    else:
        found = [DatasetSummary(name, 0, None, True) for name in ws.plan.datasets]
    shown, pager = page_of(found, page)
    return DataView(shown, pager)


@dataclass(frozen=True)
class DatasetView:
    """A dataset version's page: its datasheet (``mlplan data show``: the metadata, a page of
    its columns with their profile in words and a small histogram each), how many versions
    the dataset has, and the splits of this version with their leakage checks (``mlplan data
    splits``)."""

    info: DatasetVersionInfo
    versions: int
    metadata: list[tuple[str, str]]
    columns: list[tuple[dict[str, str], list[Bar]]]
    columns_pager: Pager
    splits: list[SplitInfo]


def dataset_view(ws: Workspace, ref: str, *, page: int = 1) -> DatasetView:
    """The datasheet, profile and splits of ``ref`` (``NAME`` for its latest version, or
    ``NAME@VERSION``).

    Raises
    ------
    DatasetNotFoundError
        No such dataset or version (the message names those there are).
    RefError
        ``ref`` is not a dataset reference.
    """
    if not ws.has_store:  # reading must not create a store
        raise DatasetNotFoundError(
            f"no dataset is registered yet, so no {ref}: mlplan data add NAME FILE registers one"
        )
    info = get_dataset(ws, ref)
    versions = next((d.versions for d in list_datasets(ws) if d.name == info.name), 1)
    profiles = info.profile.get("columns", {})
    rows = [(row, column_bars(profiles.get(row["column"], {}))) for row in column_rows(info)]
    shown, pager = page_of(rows, page)
    return DatasetView(
        info,
        versions,
        metadata_rows(info, effective_metadata(ws, info)),
        shown,
        pager,
        list_splits(ws, info.ref),
    )
