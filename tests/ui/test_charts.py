"""The Monitoring page's charts in headless Chromium: a real ``mlplan ui`` process over a
monitored project, a chart per family and metric with a point per stored window, the plan's
thresholds and the alerts fired drawn where ``mlplan monitor --json`` and ``mlplan alerts
list --json`` put them; paging back over many stored windows; the uPlot the app serves is the
one the build script packs."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient
from tests.monitoring.conftest import DAY, traffic
from tests.ui.conftest import REPO, SCREENSHOTS, Visit, axe_run, cli_json, ui_process

from mlplan.monitoring import metric_value, monitor, stored_windows
from mlplan.store import MonitorWindowRecord
from mlplan.ui import UPLOT, UPLOT_CSS, UiConfig, create_app
from mlplan.ui._charts import CHART_WINDOWS
from mlplan.ui._views import monitoring_view
from mlplan.workspace import Workspace

END = DAY + dt.timedelta(days=1)
SPAN = ("--since", DAY.isoformat(), "--until", END.isoformat())


@pytest.fixture(scope="module")
def charted(watched_project: Path) -> Path:
    """The watched project with a second hour of traffic (14:00), measured again hourly: two
    hourly windows per family, and the day's window its input-drift alert fired on."""
    ws = Workspace(watched_project)
    try:
        traffic(ws, DAY + dt.timedelta(hours=14))
        monitor(ws, "production", since=DAY, until=END, now=END)
    finally:
        ws.close()
    return watched_project


@pytest.fixture(scope="module")
def base_url(charted: Path) -> Iterator[str]:
    with ui_process(charted) as url:
        yield url


def drawn(visit: Visit, *, length: str = "1h") -> dict[str, Any]:
    """Each family's charts as the page drew them for a window length: per metric, its
    points, thresholds and alert ids, whether a canvas is there, and its words."""
    page = visit.page
    page.locator("section.charts:not([hidden])").wait_for()
    page.select_option("select.chart-length", length)
    page.locator(f'section.charts[data-drawn$=" {length}"]').wait_for(state="attached")
    result: dict[str, Any] = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-family-charts]')]
            .map(box => [box.dataset.familyCharts, Object.fromEntries(
                [...box.querySelectorAll('figure.chart:not([hidden])')].map(f => [
                    f.dataset.metric, {points: Number(f.dataset.points),
                        thresholds: f.dataset.thresholds, alerts: f.dataset.alerts,
                        canvas: f.querySelectorAll('canvas').length,
                        label: f.querySelector('.plot').getAttribute('aria-label')}]))]))"""
    )
    return result


def test_each_familys_charts_have_a_point_per_stored_window_of_the_span(
    browser: Any, base_url: str, charted: Path
) -> None:
    ws = Workspace(charted)
    try:
        stored = stored_windows(ws, deployment="production")
    finally:
        ws.close()
    hourly = [w for w in stored if w.end - w.start == dt.timedelta(hours=1)]
    visit = Visit(browser, base_url + "/monitoring")
    try:
        every = drawn(visit)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        visit.page.screenshot(path=str(SCREENSHOTS / "monitoring-charts.png"), full_page=True)
        visit.page.select_option("select[name=slice]", "region=north")
        visit.page.get_by_role("button", name="Show").click()
        visit.page.wait_for_url(base_url + "/monitoring?slice=region%3Dnorth")
        north = drawn(visit)
        daily = drawn(visit, length="1d")
    finally:
        visit.close()
    assert visit.problems == []
    assert visit.requests and all(u.startswith(base_url + "/") for u in visit.requests)
    families = {w.family for w in hourly}
    assert families <= set(every) and {"software", "input", "output"} <= families
    for family in families:
        starts = {w.start for w in hourly if w.family == family and w.slice == "all"}
        assert every[family], family
        for metric, chart in every[family].items():
            assert (chart["points"], chart["canvas"]) == (len(starts), 1), (family, metric)
    assert len({w.start for w in hourly if w.family == "software"}) == 2
    assert "software" not in north  # software is measured over every record only
    north_starts = {w.start for w in hourly if w.family == "input" and w.slice == "region=north"}
    assert {c["points"] for c in north["input"].values()} == {len(north_starts)}
    assert {c["points"] for c in daily["input"].values()} == {1}


def test_a_rules_threshold_is_a_line_and_its_alert_a_marker_where_the_cli_says(
    browser: Any, base_url: str, charted: Path
) -> None:
    alerts = cli_json(charted, "alerts", "list")
    ws = Workspace(charted)
    try:
        (rule,) = ws.plan.monitoring.input
    finally:
        ws.close()
    (alert,) = [a for a in alerts if a["rule"] == f"input.{rule.name}"]
    visit = Visit(browser, base_url + "/monitoring")
    try:
        daily = drawn(visit, length="1d")
        legend = visit.page.locator(
            "[data-family-charts=input] figure[data-metric='drift.drifted'] .u-legend"
        ).inner_text()
    finally:
        visit.close()
    assert visit.problems == []
    drifted = daily["input"][alert["metric"]]
    assert drifted["thresholds"] == f"{rule.threshold:g}"
    assert drifted["alerts"] == str(alert["id"])
    assert f"input.{rule.name}: > 0" in legend and "alert fired" in legend
    assert f"alert {alert['id']} warning, open" in drifted["label"]
    # a chart no rule reads has neither
    assert daily["input"]["records"]["thresholds"] == daily["input"]["records"]["alerts"] == ""


def test_the_charts_data_equals_what_mlplan_monitor_json_measures(
    browser: Any, base_url: str, charted: Path
) -> None:
    printed = cli_json(charted, "monitor", "production", *SPAN)
    blocks = {}
    for value in sorted({w["slice"] for w in printed["windows"]}):
        visit = Visit(browser, f"{base_url}/monitoring?slice={value.replace('=', '%3D')}")
        try:
            (block,) = visit.page.evaluate(
                "() => [...document.querySelectorAll('script.charts-data')].map(s => s.textContent)"
            )
        finally:
            visit.close()
        assert visit.problems == []
        blocks[value] = json.loads(block)
    assert set(blocks) == {"all", "region=north", "region=south"}
    checked = 0
    for window in printed["windows"]:
        data = blocks[window["slice"]]
        assert (data["deployment"], data["slice"]) == ("production", window["slice"])
        family = next(f for f in data["families"] if f["family"] == window["family"])
        (series,) = [
            s for s in family["series"] if s["slice"] == window["slice"] and s["length"] == "1h"
        ]
        at = series["starts"].index(int(dt.datetime.fromisoformat(window["start"]).timestamp()))
        values = series["versions"][f"{window['model']} ({window['version']})"]
        for metric in family["metrics"]:
            assert values[metric][at] == metric_value(window["metrics"], metric), metric
            checked += 1
    assert checked > 50


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violation_on_the_drawn_charts(
    browser: Any, base_url: str, axe_source: str, scheme: str
) -> None:
    # axe is injected by the test, past the page's own policy (which allows only its files)
    context = browser.new_context(bypass_csp=True, color_scheme=scheme)
    try:
        page = context.new_page()
        page.goto(base_url + "/monitoring")
        page.select_option("select.chart-length", "1d")  # a threshold and an alert drawn
        page.locator('section.charts[data-drawn="all 1d"]').wait_for(state="attached")
        result = axe_run(page, axe_source)
        page.screenshot(path=str(SCREENSHOTS / f"monitoring-charts-{scheme}.png"), full_page=True)
    finally:
        context.close()
    assert result["passes"] > 10
    assert result["violations"] == []


def test_without_javascript_the_tables_show_and_the_charts_stay_hidden(charted: Path) -> None:
    with TestClient(create_app(UiConfig(charted)), base_url="http://127.0.0.1") as client:
        page = client.get("/monitoring").text
        north = client.get("/monitoring", params={"slice": "region=north"}).text
        css = client.get("/static/uPlot.min.css")
        script = client.get("/static/monitoring.js")
    assert re.search(r'<section class="charts"[^>]* hidden>', page)
    assert 'table class="family" data-family="software"' in page
    assert css.headers["content-type"].startswith("text/css") and ".uplot" in css.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert '<script type="application/json" class="charts-data">' in page
    assert "<style" not in page and "style=" not in page  # the policy allows no inline style
    assert '<option value="region=north" selected>' in north
    assert '"slice": "region=north"' in north
    # the tables show every slice value of the newest window, whichever is charted
    assert north.count('<tr data-slice="region=south">') == page.count(
        '<tr data-slice="region=south">'
    )


def test_many_stored_windows_are_charted_newest_first_a_span_at_a_time(charted: Path) -> None:
    """With more than CHART_WINDOWS hourly windows stored, the page charts the newest, says
    from when, and pages back to the rest (``before``)."""
    ws = Workspace(charted)
    try:
        _store_copies(ws, 250)
        newest = monitoring_view(ws)
        (charts,) = [d.charts for d in newest.deployments]
        assert charts is not None
        software = next(f for f in charts.families if f.family == "software")
        assert software.windows == CHART_WINDOWS and software.full
        assert charts.older == software.first
        back = monitoring_view(ws, before=charts.older)
        (older,) = [d.charts for d in back.deployments]
        assert older is not None
        software_back = next(f for f in older.families if f.family == "software")
        assert software_back.last < software.first
        total = len({w.start for w in stored_windows(ws, family="software")})
        assert software_back.windows == total - CHART_WINDOWS
    finally:
        _drop_copies(ws)
        ws.close()


COPIED = DAY - dt.timedelta(days=30)


def _store_copies(ws: Workspace, count: int) -> None:
    """``count`` hourly software windows before the project's, copies of its newest (as
    ``monitor`` would store for a long-served deployment, without the traffic)."""
    with ws.write() as session:
        (row,) = session.scalars(
            ws.select(MonitorWindowRecord)
            .where(MonitorWindowRecord.family == "software")
            .order_by(MonitorWindowRecord.window_start.desc())
            .limit(1)
        )
        for i in range(count):
            start = COPIED + dt.timedelta(hours=i)
            session.add(
                MonitorWindowRecord(
                    project_id=row.project_id,
                    deployment=row.deployment,
                    model=row.model,
                    version=row.version,
                    window_start=start,
                    window_end=start + dt.timedelta(hours=1),
                    slice=row.slice,
                    family=row.family,
                    metrics=dict(row.metrics),
                    samples=row.samples,
                    run_id=row.run_id,
                )
            )


def _drop_copies(ws: Workspace) -> None:
    with ws.write() as session:
        session.execute(
            sa.delete(MonitorWindowRecord).where(MonitorWindowRecord.window_start < DAY)
        )


def test_the_build_script_packs_the_uplot_the_app_serves() -> None:
    script = (REPO / "scripts" / "system-deps.sh").read_text()
    assert re.search(r"^UPLOT_VERSION=(\S+)", script, re.M)[1] == UPLOT.version  # type: ignore[index]
    assert re.search(r'^npm_pack uplot "\$UPLOT_VERSION"', script, re.M)
    assert UPLOT_CSS.tarball_name == UPLOT.tarball_name == f"uplot-{UPLOT.version}.tgz"
