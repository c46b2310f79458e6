"""The dashboard in headless Chromium: a real ``mlplan ui`` process over a deployed,
monitored project, each page checked against what the CLI prints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.ui.conftest import (
    SCREENSHOTS,
    Visit,
    axe_run,
    cli_json,
    ui_process,
    with_long_comparison,
)

from mlplan.ui import PAGES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def compared(watched_project: Path) -> dict[str, Any]:
    """What ``mlplan models compare --json`` printed (and stored) for the project."""
    answer: dict[str, Any] = cli_json(watched_project, "models", "compare", "--bootstrap", "50")
    return answer


@pytest.fixture(scope="module")
def base_url(watched_project: Path, compared: dict[str, Any]) -> Iterator[str]:
    with ui_process(watched_project) as url:
        yield url


@pytest.mark.parametrize(("path", "name"), PAGES, ids=[name for _, name in PAGES])
def test_every_page_renders_offline_with_no_error(
    browser: Any, base_url: str, path: str, name: str
) -> None:
    visit = Visit(browser, base_url + path)
    try:
        assert visit.page.title() == f"{name} · mlplan"
        assert visit.page.evaluate("typeof window.htmx") == "object"  # served, and it ran
        current = visit.page.locator("header a[aria-current=page]").inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        visit.page.screenshot(path=str(SCREENSHOTS / f"{name.lower()}.png"), full_page=True)
    finally:
        visit.close()
    assert visit.problems == []
    assert current == name
    assert visit.requests and all(u.startswith(base_url + "/") for u in visit.requests)


def test_the_project_page_shows_the_states_mlplan_status_prints(
    browser: Any, base_url: str, watched_project: Path
) -> None:
    printed = cli_json(watched_project, "status")
    visit = Visit(browser, base_url + "/")
    try:
        shown = visit.page.evaluate(
            """() => [...document.querySelectorAll('tr[data-item]')].map(tr => ({
                id: tr.dataset.item,
                state: tr.dataset.state,
                word: tr.querySelector('.state').innerText.trim(),
                evidence: tr.querySelector('.evidence').innerText,
                next: tr.querySelector('.next').innerText || null,
                plan: [...tr.querySelectorAll('.reads code')].map(c => c.innerText),
                links: [...tr.querySelectorAll('.reads a')].map(a => a.hash.slice(1)),
            }))"""
        )
        anchors = visit.page.evaluate(
            "() => [...document.querySelectorAll('.plan pre[id]')].map(p => p.id)"
        )
        counts = visit.page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll('[data-count]')]
                .map(li => [li.dataset.count, Number(li.querySelector('strong').innerText)]))"""
        )
        alerts = visit.page.locator("#alerts tr[data-alert]").count()
    finally:
        visit.close()
    words = {"done": "✔ done", "missing": "○ missing", "failing": "✘ failing"}
    words["not_applicable"] = "– n/a"
    assert [s["id"] for s in shown] == [i["id"] for i in printed["items"]]
    for item, row in zip(printed["items"], shown, strict=True):
        assert row["state"] == item["state"], item["id"]
        assert row["word"] == words[item["state"]], item["id"]  # an icon and a word
        assert row["evidence"] == item["evidence"], item["id"]
        assert row["next"] == item["next"], item["id"]
        assert row["plan"] == item["plan"], item["id"]  # the parts of the plan it reads
        assert set(row["links"]) <= set(anchors), item["id"]  # each link reaches its section
    assert any(row["links"] for row in shown)
    assert counts == printed["counts"]
    assert alerts == 1  # the input drift check_alerts opened


def test_the_models_page_shows_the_numbers_of_models_compare(
    browser: Any, base_url: str, compared: dict[str, Any]
) -> None:
    visit = Visit(browser, base_url + "/models")
    try:
        shown = visit.page.evaluate(
            """() => [...document.querySelectorAll('tr[data-row]')].map(tr => ({
                name: tr.dataset.row,
                kind: tr.dataset.kind,
                metrics: Object.fromEntries([...tr.querySelectorAll('td[data-metric]')]
                    .filter(td => td.querySelector('data'))
                    .map(td => {
                        const value = td.querySelector('data');
                        const interval = td.querySelector('.interval[data-low]');
                        return [td.dataset.metric, {
                            value: Number(value.value), text: value.innerText,
                            low: interval ? Number(interval.dataset.low) : null,
                            high: interval ? Number(interval.dataset.high) : null,
                        }];
                    })),
            }))"""
        )
    finally:
        visit.close()
    assert [(r["name"], r["kind"]) for r in shown] == [
        (r["name"], r["kind"]) for r in compared["rows"]
    ]
    assert {"trivial", "model"} <= {r["kind"] for r in shown}
    for row, printed in zip(shown, compared["rows"], strict=True):
        measured = {m: v for m, v in printed["metrics"].items() if v.get("value") is not None}
        assert set(row["metrics"]) == set(measured), row["name"]
        for metric, value in measured.items():
            on_page = row["metrics"][metric]
            assert on_page["value"] == value["value"], (row["name"], metric)
            assert on_page["text"] == f"{value['value']:.4g}"
            assert (on_page["low"], on_page["high"]) == (value.get("low"), value.get("high"))


def test_the_monitoring_page_shows_each_familys_newest_window_and_the_alerts(
    browser: Any, base_url: str
) -> None:
    visit = Visit(browser, base_url + "/monitoring")
    try:
        families = visit.page.evaluate(
            "() => [...document.querySelectorAll('table[data-family]')].map(t => t.dataset.family)"
        )
        software = visit.page.locator("table[data-family=software] tr[data-slice=all]")
        software_text = software.inner_text()
        slices = visit.page.evaluate(
            "() => [...document.querySelectorAll('table[data-family=input] tr[data-slice]')]"
            ".map(tr => tr.dataset.slice)"
        )
        alert = visit.page.locator("tr[data-alert]").inner_text()
    finally:
        visit.close()
    assert families[:4] == ["software", "input", "output", "ml"]
    assert "requests" in software_text and "40" in software_text
    assert "error_rate" in software_text and "0.1" in software_text
    assert slices == ["all", "region=north", "region=south"]
    assert "input.input-drift" in alert and "warning" in alert


def test_the_data_pages_show_what_data_list_show_and_splits_print(
    browser: Any, base_url: str, watched_project: Path
) -> None:
    listed = cli_json(watched_project, "data", "list")
    sheet = cli_json(watched_project, "data", "show", "customers")
    splits = cli_json(watched_project, "data", "splits", "customers")
    visit = Visit(browser, base_url + "/data")
    try:
        datasets = visit.page.evaluate(
            """() => [...document.querySelectorAll('tr[data-dataset]')].map(tr => [
                tr.dataset.dataset, Number(tr.dataset.versions),
                tr.querySelector('a')?.innerText ?? null])"""
        )
        visit.page.get_by_role("link", name=sheet["ref"]).click()
        visit.page.wait_for_url(f"{base_url}/data/{sheet['ref'].replace('@', '%40')}")
        columns = visit.page.evaluate(
            """() => [...document.querySelectorAll('tr[data-column]')].map(tr => [
                tr.dataset.column, tr.querySelector('.missing').innerText,
                tr.querySelector('.distinct').innerText, tr.querySelectorAll('rect').length])"""
        )
        shown_splits = visit.page.evaluate(
            """() => [...document.querySelectorAll('tr[data-split]')].map(tr => [
                tr.dataset.split, tr.dataset.leakage,
                [...tr.querySelectorAll('td')].slice(0, 3).map(td => td.innerText)])"""
        )
        title = visit.page.title()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        visit.page.screenshot(path=str(SCREENSHOTS / "dataset.png"), full_page=True)
    finally:
        visit.close()
    assert visit.problems == []
    assert datasets == [
        [d["name"], d["versions"], d["latest"]["ref"] if d["latest"] else None] for d in listed
    ]
    assert title == f"Data: {sheet['ref']} · mlplan"
    profile = sheet["profile"]["columns"]
    assert [c[0] for c in columns] == list(profile)
    for name, missing, distinct, bars in columns:
        column = profile[name]
        assert missing == f"{column['missing']:,} ({column['missing_ratio']:.1%})", name
        assert distinct == f"{column['distinct']:,}", name
        assert (bars > 0) == (not column.get("redacted")), name  # a histogram unless redacted
    assert shown_splits == [
        [
            s["ref"],
            "pass" if s["passed"] else "fail",
            [f"{s['counts'][k]['rows']:,}" for k in ("train", "valid", "test")],
        ]
        for s in splits
    ]


def test_the_keyboard_reaches_the_content_first(browser: Any, base_url: str) -> None:
    visit = Visit(browser, base_url + "/models")
    try:
        visit.page.keyboard.press("Tab")
        first = visit.page.evaluate("document.activeElement.innerText")
        visit.page.keyboard.press("Enter")
        focused = visit.page.evaluate("document.activeElement.id")
        visit.page.keyboard.press("Tab")
        visit.page.keyboard.press("Tab")
        nav = visit.page.evaluate("document.activeElement.innerText")
    finally:
        visit.close()
    assert first == "Skip to content" and focused == "main"
    assert nav != "Project"  # after the skip, Tab goes on inside the content


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_accessibility_violation_on_any_page(
    browser: Any, base_url: str, axe_source: str, scheme: str
) -> None:
    # axe is injected by the test, past the pages' own policy (which allows only their files)
    context = browser.new_context(bypass_csp=True, color_scheme=scheme)
    found = {}
    try:
        for path, name in [*PAGES, ("/data/customers@1", "Dataset")]:
            page = context.new_page()
            page.goto(base_url + path)
            result = axe_run(page, axe_source)
            assert result["passes"] > 10, name  # axe ran its rules on the page
            found[name] = result["violations"]
            page.close()
    finally:
        context.close()
    assert found == {name: [] for _, name in [*PAGES, ("", "Dataset")]}


def test_the_next_page_of_a_table_is_swapped_in_place_by_htmx(browser: Any, tmp_path: Path) -> None:
    with ui_process(with_long_comparison(tmp_path)) as url:
        visit = Visit(browser, url + "/models")
        try:
            visit.page.evaluate("window.before = 'kept'")  # gone if the page reloads
            visit.page.get_by_role("link", name="next →").click()
            visit.page.wait_for_selector("tr[data-row=m-050]")
            first = visit.page.locator("tr[data-row]").first.get_attribute("data-row")
            kept = visit.page.evaluate("window.before")
            address = visit.page.url
            rows = visit.page.locator("tr[data-row]").count()
        finally:
            visit.close()
    assert (first, rows, kept) == ("m-050", 50, "kept")
    assert address == url + "/models?page=2"  # the address follows, for reload and back
    assert visit.problems == []
