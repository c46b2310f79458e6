"""The Labels page: on a project with no labels it names the commands that fill it; over a
labeled project, in headless Chromium on a real ``mlplan ui`` process, it shows the numbers
``mlplan labels batches``, ``agreement``, ``hlp`` and ``queue`` print."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from tests.conftest import edit_plan, write_churn_project
from tests.labels.conftest import fill_batch
from tests.ui.conftest import SCREENSHOTS, Visit, axe_pages, cli_json, ui_process

from mlplan.data import register_dataset
from mlplan.labels import export_batch, import_annotations
from mlplan.ui import UiConfig, create_app
from mlplan.workspace import Workspace

ITEMS = 300
"""Items in the batch: 'bob' is wrong on every fourth he sees, so 75 disagreements are
queued, more than a page of the queue (50)."""


@pytest.fixture(scope="module")
def labeled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A churn project with a ``region`` slice whose batch of 300 items came back labeled
    twice, its agreement and HLP measured (and stored) by the CLI; with what ``mlplan labels
    batches``, ``agreement``, ``hlp`` and ``queue`` printed as JSON."""
    root = write_churn_project(tmp_path_factory.mktemp("ui-labels"))
    ws = Workspace(root)
    try:
        edit_plan(ws, "slices: []", "slices: [{name: region, columns: [region]}]")
        register_dataset(ws, "customers")
        batch = export_batch(ws, "customers", n=ITEMS, overlap=1.0, annotators=["ann", "bob"])
        filled = fill_batch(Path(batch.files[0]), root / "filled.csv", bob_wrong_every=4)
        import_annotations(ws, filled, batch=batch.number)
    finally:
        ws.close()
    printed = {
        "agreement": cli_json(root, "labels", "agreement", "--boot", "50"),
        "hlp": cli_json(root, "labels", "hlp", "--boot", "50"),
        "batches": cli_json(root, "labels", "batches"),
        "queue": cli_json(root, "labels", "queue"),
    }
    return root, printed


@pytest.fixture(scope="module")
def base_url(labeled: tuple[Path, dict[str, Any]]) -> Iterator[str]:
    with ui_process(labeled[0]) as url:
        yield url


def test_a_project_without_labels_says_what_will_appear_and_the_commands_that_fill_it(
    tmp_path: Path,
) -> None:
    root = write_churn_project(tmp_path)
    with TestClient(create_app(UiConfig(root)), base_url="http://127.0.0.1") as client:
        page = client.get("/labels")
    assert page.status_code == 200
    assert "No labels yet" in page.text
    for step in (
        "mlplan labels export --n 500",
        "mlplan labels import FILE --batch 1",
        "mlplan labels agreement",
        "mlplan labels hlp",
        "mlplan labels queue",
    ):
        assert f"<code>{step}</code>" in page.text
    assert '<a href="/labels" aria-current="page">Labels</a>' in page.text
    assert not (root / ".mlplan" / "store.db").exists()  # reading made no store


@pytest.mark.slow
def test_the_labels_page_shows_what_the_labels_commands_print(
    browser: Any, base_url: str, labeled: tuple[Path, dict[str, Any]]
) -> None:
    _, printed = labeled
    visit = Visit(browser, base_url + "/labels")
    try:
        batches = visit.page.evaluate(
            """() => [...document.querySelectorAll('tr[data-batch]')].map(tr => [
                Number(tr.dataset.batch), Number(tr.dataset.items),
                Number(tr.dataset.assignments), Number(tr.dataset.labels),
                tr.querySelector('.back').innerText])"""
        )
        figures = visit.page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll('#agreement [data-figure]')]
                .map(div => {
                    const interval = div.querySelector('.interval');
                    return [div.dataset.figure, {
                        value: Number(div.querySelector('data').value),
                        low: interval ? Number(interval.dataset.low) : null,
                        high: interval ? Number(interval.dataset.high) : null}];
                }))"""
        )
        verdict = visit.page.locator(".verdict").inner_text()
        annotators = visit.page.evaluate(
            """() => [...document.querySelectorAll('table.annotators tr[data-annotator]')]
                .map(tr => [tr.dataset.annotator, Object.fromEntries(
                    [...tr.querySelectorAll('td[data-key]')].map(td => [
                        td.dataset.key, Number(td.querySelector('data').value)]))])"""
        )
        overall = visit.page.evaluate(
            """() => Object.fromEntries(
                [...document.querySelectorAll('#hlp-overall tr[data-metric]')].map(tr => {
                    const interval = tr.querySelector('.interval');
                    return [tr.dataset.metric, [Number(tr.querySelector('data').value),
                        Number(interval.dataset.low), Number(interval.dataset.high)]];
                }))"""
        )
        slices = visit.page.evaluate(
            """() => [...document.querySelectorAll('table.hlp-slices tr[data-slice]')]
                .map(tr => [tr.dataset.slice, tr.dataset.value, Object.fromEntries(
                    [...tr.querySelectorAll('td[data-metric]')].map(td => [
                        td.dataset.metric, [Number(td.querySelector('data').value),
                        Number(td.querySelector('.interval').dataset.low),
                        Number(td.querySelector('.interval').dataset.high)]]))])"""
        )
        per_annotator = visit.page.evaluate(
            """() => Object.fromEntries(
                [...document.querySelectorAll('table.hlp-annotators tr[data-annotator]')]
                .map(tr => [tr.dataset.annotator, Object.fromEntries(
                    [...tr.querySelectorAll('td[data-key]')].map(td => [
                        td.dataset.key, Number(td.querySelector('data').value)]))]))"""
        )
        queued = visit.page.evaluate(
            "() => [...document.querySelectorAll('#queue tr[data-item]')]"
            ".map(tr => [tr.dataset.item, tr.dataset.source, Number(tr.dataset.score)])"
        )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        visit.page.screenshot(path=str(SCREENSHOTS / "labels.png"), full_page=True)
    finally:
        visit.close()
    assert visit.problems == []
    assert visit.requests and all(u.startswith(base_url + "/") for u in visit.requests)

    assert batches == [
        [b["number"], b["items"], b["assignments"], b["labels_imported"], "✔ all back: 600"]
        for b in printed["batches"]
    ]
    agreement = printed["agreement"]
    alpha = agreement["krippendorff_alpha"]
    assert figures == {
        "krippendorff_alpha": {"value": alpha["value"], "low": alpha["low"], "high": alpha["high"]},
        "fleiss_kappa": {"value": agreement["fleiss_kappa"], "low": None, "high": None},
        "percent_agreement": {"value": agreement["percent_agreement"], "low": None, "high": None},
    }
    assert agreement["passed"] is False
    assert verdict.startswith("✘ fail: krippendorff_alpha")  # an icon and a word
    keys = ("agreement_with_consensus", "kappa_with_consensus", "seconds_per_label")
    assert dict(annotators) == {
        a["annotator"]: {k: a[k] for k in keys} for a in agreement["annotator_table"]
    }

    hlp = printed["hlp"]
    assert overall == {k: [m["value"], m["low"], m["high"]] for k, m in hlp["metrics"].items()}
    assert slices == [
        [
            row["slice"],
            row["value"],
            {k: [m["value"], m["low"], m["high"]] for k, m in row["metrics"].items()},
        ]
        for row in hlp["per_slice"]
    ]
    assert [s[1] for s in slices] == ["region=east", "region=north", "region=south"]
    assert per_annotator == {
        row["annotator"]: {k: v for k, v in row.items() if k not in ("annotator", "compared")}
        for row in hlp["per_annotator"]
    }

    queue = printed["queue"]
    assert len(queue) == ITEMS // 4
    assert queued == [[e["item_id"], e["source"], e["score"]] for e in queue[:50]]


@pytest.mark.slow
def test_the_queues_next_page_is_swapped_in_place(
    browser: Any, base_url: str, labeled: tuple[Path, dict[str, Any]]
) -> None:
    queue = labeled[1]["queue"]
    visit = Visit(browser, base_url + "/labels")
    try:
        visit.page.evaluate("window.before = 'kept'")  # gone if the page reloads
        visit.page.locator("#queue").get_by_role("link", name="next →").click()
        visit.page.wait_for_selector(f"#queue tr[data-item='{queue[50]['item_id']}']")
        shown = visit.page.evaluate(
            "() => [...document.querySelectorAll('#queue tr[data-item]')]"
            ".map(tr => tr.dataset.item)"
        )
        kept = visit.page.evaluate("window.before")
        address = visit.page.url
        batches = visit.page.locator("tr[data-batch]").count()
    finally:
        visit.close()
    assert shown == [e["item_id"] for e in queue[50:]]
    assert (kept, address, batches) == ("kept", base_url + "/labels?queue=2", 1)
    assert visit.problems == []


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_accessibility_violation_on_the_labels_page(
    browser: Any, base_url: str, axe_source: str, scheme: str
) -> None:
    assert axe_pages(browser, axe_source, scheme, base_url, ["/labels"]) == {"/labels": []}
