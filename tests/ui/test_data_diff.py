"""A dataset version's diff page (``/data/REF/diff``): what ``mlplan data diff A B --json``
answers, in headless Chromium on a real ``mlplan ui`` process, reached from the Data page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient
from tests.conftest import customers_table, write_churn_project, write_csv
from tests.data.test_diff import _shifted
from tests.ui.conftest import SCREENSHOTS, Visit, axe_pages, cli_json, ui_process

from mlplan.data import register_dataset
from mlplan.ui import UiConfig, create_app
from mlplan.workspace import Workspace


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A churn project whose customers@2 moved from customers@1 as the data tests' shifted
    version does: charges up by 30, a new region, 'gender' gone, 'plan' new, 'age' text."""
    root = write_churn_project(tmp_path_factory.mktemp("ui-diff"))
    ws = Workspace(root)
    try:
        register_dataset(ws, "customers")
        shifted = _shifted(customers_table(), np.random.default_rng(0))
        write_csv(shifted, root / "data" / "customers.csv")
        register_dataset(ws, "customers")
    finally:
        ws.close()
    return root


@pytest.fixture(scope="module")
def base_url(two_versions: Path) -> Iterator[str]:
    with ui_process(two_versions) as url:
        yield url


@pytest.fixture
def client(two_versions: Path) -> Iterator[TestClient]:
    with TestClient(create_app(UiConfig(two_versions)), base_url="http://127.0.0.1") as client:
        yield client


@pytest.mark.slow
def test_the_diff_page_shows_what_data_diff_prints_reached_from_the_data_page(
    browser: Any, base_url: str, two_versions: Path
) -> None:
    printed = cli_json(two_versions, "data", "diff", "customers@1", "customers@2")
    visit = Visit(browser, base_url + "/data")
    try:
        visit.page.get_by_role("link", name="Diff of customers@2 against customers@1").click()
        visit.page.wait_for_url(f"{base_url}/data/customers%402/diff")
        title = visit.page.title()
        rows = visit.page.locator("[data-rows]").get_attribute("data-rows")
        flagged = visit.page.locator("#shifted").get_attribute("data-flagged")
        summary = visit.page.locator("#shifted").inner_text()
        schema = visit.page.evaluate(
            """() => [...document.querySelectorAll('table.schema tr[data-change]')].map(tr => [
                tr.dataset.change, tr.dataset.column, tr.querySelector('.change').innerText])"""
        )
        shifts = visit.page.evaluate(
            """() => [...document.querySelectorAll('table.shifts tr[data-column]')].map(tr => ({
                column: tr.dataset.column,
                flagged: tr.dataset.flagged === 'true',
                psi: tr.querySelector('.psi data') ? Number(tr.querySelector('.psi data').value)
                    : null,
                verdict: tr.querySelector('.verdict').innerText,
                missing: tr.querySelector('.missing').innerText,
            }))"""
        )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        visit.page.screenshot(path=str(SCREENSHOTS / "data-diff.png"), full_page=True)
    finally:
        visit.close()
    assert visit.problems == []
    assert visit.requests and all(u.startswith(base_url + "/") for u in visit.requests)
    assert title == "Data: customers@1 → customers@2 · mlplan"
    assert rows == " ".join(map(str, printed["rows"]))
    expected = [s["column"] for s in printed["shifts"] if s["flagged"]]
    assert flagged == ",".join(expected) and set(expected) == {"charges", "region"}
    assert summary.startswith("✘ 2 columns shifted")  # an icon and words
    assert schema == [
        *(["added", c["column"], "+ added"] for c in printed["added"]),
        *(["removed", c["column"], "− removed"] for c in printed["removed"]),
        *(["retyped", c["column"], "~ retyped"] for c in printed["type_changes"]),
    ]
    words = {True: "✘ shifted", False: "✔ stable"}
    assert shifts == [
        {
            "column": s["column"],
            "flagged": s["flagged"],
            "psi": s["psi"],
            "verdict": words[s["flagged"]] if s["psi"] is not None else "– not compared",
            "missing": " → ".join(f"{r:.1%}" for r in s["missing_ratio"]),
        }
        for s in printed["shifts"]
    ]


def test_the_diff_is_against_the_version_asked_for(client: TestClient, two_versions: Path) -> None:
    printed = cli_json(two_versions, "data", "diff", "customers@2", "customers@1")
    page = client.get("/data/customers@1/diff", params={"against": "customers@2"})
    assert page.status_code == 200
    assert "<h1>Diff: customers@2 → customers@1</h1>" in page.text
    region = next(s for s in printed["shifts"] if s["column"] == "region")
    assert f'<data class="value" value="{region["psi"]}">' in page.text


def test_a_first_version_or_an_unknown_one_has_no_diff_and_says_why(client: TestClient) -> None:
    first = client.get("/data/customers@1/diff")
    assert first.status_code == 404
    assert "customers@1 is the first version of customers" in first.text
    assert "?against=NAME@VERSION" in first.text
    unknown = client.get("/data/customers@2/diff", params={"against": "customers@9"})
    assert unknown.status_code == 404
    assert "known: customers@1, customers@2" in unknown.text


def test_each_later_version_links_to_its_diff_with_the_one_before(client: TestClient) -> None:
    sheet = client.get("/data/customers@1").text
    assert 'href="/data/customers%402/diff"' in sheet
    assert 'href="/data/customers%401/diff"' not in sheet  # nothing before the first


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_accessibility_violation_on_the_diff_page(
    browser: Any, base_url: str, axe_source: str, scheme: str
) -> None:
    assert axe_pages(browser, axe_source, scheme, base_url, ["/data/customers@2/diff"]) == {
        "/data/customers@2/diff": []
    }
