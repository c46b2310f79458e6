"""The Models pages in headless Chromium on a real ``mlplan ui`` process: the comparison's
error bars on one axis per metric, and a model's page against ``mlplan models show --json``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from starlette.testclient import TestClient
from tests.conftest import edit_plan, evaluated, register_split_train, write_churn_project
from tests.ui.conftest import SCREENSHOTS, Visit, axe_pages, cli_json, ui_process

from mlplan.modeling import import_older_system, train_model
from mlplan.serving import deploy
from mlplan.ui import UiConfig, create_app
from mlplan.workspace import Workspace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A churn project with every kind of comparison row: the trivial baseline, HLP and a
    paper from the plan (reported figures, no interval), the older system's predictions,
    logistic-1 (evaluated and in production) and gbt-1; once per module."""
    root = write_churn_project(tmp_path_factory.mktemp("ui-models"))
    ws = Workspace(root)
    try:
        edit_plan(ws, "  hlp: {source: labels}", "  hlp: {source: value, value: 0.9}")
        edit_plan(
            ws,
            "  literature: null",
            "  literature: [{title: Churn survey, metric: roc_auc, score: 0.81}]",
        )
        edit_plan(ws, "  older_system: null", "  older_system: {name: rules-v1}")
        register_split_train(ws)
        train_model(ws, family="gbt")
        table = pa_csv.read_csv(root / "data" / "customers.csv")
        ids = table.column("customer_id").to_pylist()
        rules = root / "rules.csv"  # the rules say "stays" for all but every third customer
        pa_csv.write_csv(
            pa.table({"item_id": ids, "prediction": [int(i % 3 == 0) for i in range(len(ids))]}),
            rules,
        )
        import_older_system(ws, rules)
        deploy(ws, evaluated(ws), by="Priya")
    finally:
        ws.close()
    return root


@pytest.fixture(scope="module")
def compared(models_project: Path) -> dict[str, Any]:
    """What ``mlplan models compare --json`` printed (and stored)."""
    answer: dict[str, Any] = cli_json(models_project, "models", "compare", "--bootstrap", "50")
    return answer


@pytest.fixture(scope="module")
def base_url(models_project: Path, compared: dict[str, Any]) -> Iterator[str]:
    with ui_process(models_project) as url:
        yield url


def _screenshot(visit: Visit, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    visit.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_each_comparison_row_has_one_error_bar_per_metric_on_the_metrics_shared_axis(
    browser: Any, base_url: str, compared: dict[str, Any]
) -> None:
    visit = Visit(browser, base_url + "/models")
    try:
        axes = visit.page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll('th[data-axis-low]')]
                .map(th => [th.firstChild.textContent.trim(),
                            [Number(th.dataset.axisLow), Number(th.dataset.axisHigh)]]))"""
        )
        bars = visit.page.evaluate(
            """() => [...document.querySelectorAll('tr[data-row]')].map(tr => ({
                name: tr.dataset.row,
                cells: Object.fromEntries([...tr.querySelectorAll('td[data-metric]')]
                    .filter(td => td.querySelector('data'))
                    .map(td => [td.dataset.metric, {
                        svgs: td.querySelectorAll('svg.whisker').length,
                        paths: td.querySelectorAll('svg.whisker path').length,
                        x: Number(td.querySelector('svg.whisker circle').getAttribute('cx')),
                        reported: td.querySelector('circle.reported') !== null,
                        low: td.querySelector('path')
                            ? Number(td.querySelector('path').dataset.low) : null,
                        high: td.querySelector('path')
                            ? Number(td.querySelector('path').dataset.high) : null,
                        title: td.querySelector('svg title').textContent,
                    }])),
            }))"""
        )
        _screenshot(visit, "models-comparison")
    finally:
        visit.close()
    assert visit.problems == []
    rows = compared["rows"]
    assert {r["kind"] for r in rows} == {"trivial", "hlp", "literature", "older_system", "model"}
    assert [b["name"] for b in bars] == [r["name"] for r in rows]
    for metric, (low, high) in axes.items():  # the axis spans every row's value and interval
        ends = [
            v
            for r in rows
            for k in ("value", "low", "high")
            if (v := r["metrics"].get(metric, {}).get(k)) is not None
        ]
        assert (low, high) == (min(ends), max(ends)), metric

    def x(metric: str, value: float) -> float:
        low, high = axes[metric]
        return 50.0 if high == low else 4 + 92 * (value - low) / (high - low)

    for bar, row in zip(bars, rows, strict=True):
        measured = {m: v for m, v in row["metrics"].items() if v.get("value") is not None}
        assert set(bar["cells"]) == set(measured), row["name"]
        for metric, value in measured.items():
            cell = bar["cells"][metric]
            assert cell["svgs"] == 1, (row["name"], metric)
            assert cell["x"] == pytest.approx(x(metric, value["value"]), abs=0.01)
            assert cell["title"].startswith(f"{row['name']}: {metric} ")
            if value.get("low") is None:  # a reported figure: a hollow point, no whisker
                assert (cell["paths"], cell["reported"]) == (0, True), (row["name"], metric)
                continue
            assert (cell["paths"], cell["reported"]) == (1, False), (row["name"], metric)
            assert cell["low"] == pytest.approx(x(metric, value["low"]), abs=0.01)
            assert cell["high"] == pytest.approx(x(metric, value["high"]), abs=0.01)
            assert cell["low"] <= cell["high"]  # (a bootstrap interval may miss its point)
    for metric in axes:  # rows in the order of their lower bounds have their whiskers so too
        ranked = sorted(
            (r["metrics"][metric]["low"], b["cells"][metric]["low"])
            for r, b in zip(rows, bars, strict=True)
            if r["metrics"].get(metric, {}).get("low") is not None
        )
        assert [drawn for _, drawn in ranked] == sorted(drawn for _, drawn in ranked), metric


def test_a_model_row_links_to_a_page_with_what_models_show_prints(
    browser: Any, base_url: str, models_project: Path
) -> None:
    shown = cli_json(models_project, "models", "show", "logistic-1")
    ref = shown["ref"]
    visit = Visit(browser, base_url + "/models")
    try:
        visit.page.locator("tr[data-row=logistic-1] th a").click()
        visit.page.wait_for_url(f"{base_url}/models/logistic-1")
        title = visit.page.title()
        page = visit.page.evaluate(
            """() => ({
                facts: Object.fromEntries([...document.querySelectorAll('[data-field]')]
                    .map(d => [d.dataset.field, d.querySelector('dd').innerText])),
                features: [...document.querySelectorAll('tr[data-feature]')].map(tr => [
                    tr.dataset.feature, tr.dataset.featureKind,
                    tr.querySelector('data') ? Number(tr.querySelector('data').value) : null]),
                leftOut: [...document.querySelectorAll('tr[data-left-out]')].map(tr => [
                    tr.dataset.leftOut, tr.querySelector('td').innerText]),
                splits: Object.fromEntries([...document.querySelectorAll('tr[data-split]')]
                    .map(tr => [tr.dataset.split, Object.fromEntries([
                        ['rows', Number(tr.querySelector('[data-rows]').dataset.rows)],
                        ...[...tr.querySelectorAll('td[data-metric] data')].map(d =>
                            [d.parentElement.dataset.metric, Number(d.value)])])])),
                parity: {
                    passed: document.querySelector('.parity').dataset.passed,
                    word: document.querySelector('.parity .state').innerText.trim(),
                    max_abs_diff: Number(document.querySelector('.max-abs-diff').value),
                    rows: Number(document.querySelector('.parity-rows').value),
                    label_mismatches: Number(document.querySelector('.label-mismatches').value),
                },
                profile: Object.fromEntries([...document.querySelectorAll('[data-profile]')]
                    .map(d => [d.dataset.profile, d.querySelector('data').value])),
                objectives: [...document.querySelectorAll('tr[data-objective]')].map(tr => [
                    tr.dataset.objective, Number(tr.querySelectorAll('data')[0].value),
                    Number(tr.querySelectorAll('data')[1].value),
                    tr.querySelector('.state').innerText.trim()]),
                links: [...document.querySelectorAll('.model-links a')]
                    .map(a => a.getAttribute('href')),
                versions: [...document.querySelectorAll('.versions a')].map(a => a.innerText),
            })"""
        )
        _screenshot(visit, "model")
    finally:
        visit.close()
    assert visit.problems == []
    assert title == f"Model: {ref} · mlplan"
    facts = page["facts"]
    assert facts["ref"] == f"{ref} (version {shown['version']} of logistic-1)"
    assert (facts["family"], facts["task"], facts["split"]) == (
        shown["family"],
        shown["task"],
        shown["split"],
    )
    assert facts["package_sha256"] == shown["package_sha256"]
    assert facts["run_id"] == shown["run_id"]
    assert facts["deployments"] == "production"  # evaluated() may make a new version: this one
    spec = shown["features"]
    explains = spec["screen"]["explains"]
    assert page["features"] == [
        [c, kind, explains[c]] for kind in ("numeric", "categorical") for c in spec[kind]
    ]
    assert page["leftOut"] == [[c, why] for c, why in spec["excluded"].items()]
    assert page["splits"] == {
        split: {k: v for k, v in values.items() if k != "threshold"}
        for split, values in shown["metrics"].items()
    }
    parity = shown["parity"]
    assert page["parity"] == {
        "passed": "yes",
        "word": "✔ passed",
        "max_abs_diff": parity["max_abs_diff"],
        "rows": parity["rows"],
        "label_mismatches": parity["label_mismatches"],
    }
    compute = shown["compute"]
    assert page["profile"] == {k: str(v) for k, v in compute.items() if v is not None}
    # The churn plan's objectives: p50 10 ms, p99 50 ms, 100 QPS on 2 CPUs, 2 GB of memory.
    expected = [
        ("latency_p50_ms", 10.0, compute["latency_p50_ms"], True),
        ("latency_p99_ms", 50.0, compute["latency_p99_ms"], True),
        ("qps", 100.0, compute["single_thread_qps"] * 2, False),
        ("memory_mb", 2048.0, compute["memory_mb"], True),
    ]
    assert page["objectives"] == [
        [
            name,
            goal,
            pytest.approx(measured),
            "✔ met" if (measured <= goal if lower else measured >= goal) else "✘ not met",
        ]
        for name, goal, measured, lower in expected
    ]
    assert page["links"] == [
        f"/evaluation/{ref.replace('@', '%40')}",
        f"/lineage?ref={ref.replace('@', '%40')}",
    ]
    assert page["versions"] == (
        [] if shown["version"] == 1 else [f"logistic-1@{n}" for n in range(1, shown["version"] + 1)]
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violation_on_the_models_pages(
    browser: Any, base_url: str, axe_source: str, scheme: str
) -> None:
    found = axe_pages(
        browser, axe_source, scheme, base_url, ("/models", "/models/gbt-1", "/models/logistic-1")
    )
    assert found == {path: [] for path in found}


def test_every_request_of_the_model_page_stays_on_the_server(browser: Any, base_url: str) -> None:
    visit = Visit(browser, base_url + "/models/gbt-1@1")
    try:
        visit.page.keyboard.press("Tab")
        visit.page.keyboard.press("Enter")  # skip to the content
        visit.page.keyboard.press("Tab")
        focused = visit.page.evaluate("document.activeElement.innerText")
        _screenshot(visit, "model-gbt")
    finally:
        visit.close()
    assert visit.problems == []
    assert visit.requests and all(u.startswith(base_url + "/") for u in visit.requests)
    assert focused == "All models"  # the content's first link, reached by keyboard


def test_an_unknown_model_or_version_is_a_404_naming_those_there_are(
    models_project: Path, compared: dict[str, Any]
) -> None:
    with TestClient(create_app(UiConfig(models_project)), base_url="http://127.0.0.1") as client:
        unknown = client.get("/models/nope")
        version = client.get("/models/gbt-1@7")
    assert unknown.status_code == version.status_code == 404
    assert "known: logistic-1, gbt-1" in unknown.text
    assert "gbt-1 has versions: gbt-1@1" in version.text
    assert 'aria-current="page">Models' in unknown.text  # still under Models in the nav


def test_a_plan_without_objectives_says_where_to_set_them(tmp_path: Path) -> None:
    root = write_churn_project(tmp_path)
    ws = Workspace(root)
    try:
        edit_plan(ws, "  compute: {cpus: 2, gpus: 0, memory_gb: 2}", "  compute: {cpus: 2}")
        edit_plan(ws, "  objectives: {latency_p50_ms: 10, latency_p99_ms: 50, qps: 100}", "")
        register_split_train(ws)
    finally:
        ws.close()
    with TestClient(create_app(UiConfig(root)), base_url="http://127.0.0.1") as client:
        page = client.get("/models/logistic-1")
        models = client.get("/models")
    assert page.status_code == 200
    assert "data-profile=" in page.text and "data-objective=" not in page.text
    assert "The plan sets no objective this profile speaks to" in page.text
    assert "<code>deployment.objectives</code>" in page.text
    assert "not deployed (<code>mlplan deploy logistic-1@1</code>)" in page.text
    assert "No comparison is stored yet" in models.text  # trained, not yet compared
