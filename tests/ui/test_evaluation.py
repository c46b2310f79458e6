"""The Evaluation pages: each evaluated package version with its newest evaluation, and a
model's report and card embedded beside where to focus, its gates, risks and approvals — the
figures ``mlplan evaluate --json`` printed, in process and in headless Chromium on a real
``mlplan ui``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from tests.conftest import edit_plan, evaluated, register_split_train, write_churn_project
from tests.ui.conftest import SCREENSHOTS, Visit, axe_pages, cli_json, ui_process

from mlplan.modeling import train_model
from mlplan.ui import UiConfig, create_app
from mlplan.ui._evaluation import DOCUMENT_CSP
from mlplan.workspace import Workspace

Evaluated = tuple[Path, dict[str, Any]]


@pytest.fixture(scope="module")
def evaluated_project(tmp_path_factory: pytest.TempPathFactory) -> Evaluated:
    """A churn project with a ``region`` slice: logistic-1 evaluated (its failed gate approved
    by Priya, as a deploy needs), evaluated again by ``mlplan evaluate --json`` with a
    bootstrap and approved by Ana on the command line; logistic-2 trained, never evaluated.
    The project and what that evaluation printed; once per module."""
    root = write_churn_project(tmp_path_factory.mktemp("ui-evaluation"))
    ws = Workspace(root)
    try:
        edit_plan(ws, "slices: []", "slices: [{name: region, columns: [region]}]")
        register_split_train(ws)
        evaluated(ws)
        train_model(ws, family="logistic", seed=2)
    finally:
        ws.close()
    printed = cli_json(root, "evaluate", "logistic-1", "--bootstrap", "50")
    ref = printed["package"]["ref"]
    cli_json(
        root,
        *("approve", "deploy", "--subject", ref, "--role", "ml_lead", "--by", "Ana"),
        *("--note", "the gap is known"),
    )
    return root, printed


@pytest.fixture(scope="module")
def client(evaluated_project: Evaluated) -> Iterator[TestClient]:
    with TestClient(
        create_app(UiConfig(evaluated_project[0])), base_url="http://127.0.0.1"
    ) as client:
        yield client


def test_a_model_never_evaluated_says_what_will_appear_and_the_command(
    client: TestClient,
) -> None:
    page = client.get("/evaluation/logistic-2")
    assert page.status_code == 200
    assert "logistic-2@1 has not been evaluated yet" in page.text
    assert "<code>mlplan evaluate logistic-2@1</code>" in page.text
    assert "<iframe" not in page.text
    missing = client.get("/evaluation/logistic-2/report")
    assert missing.status_code == 404 and "mlplan evaluate logistic-2@1" in missing.text
    unknown = client.get("/evaluation/gbt-9")
    assert unknown.status_code == 404 and "logistic-1" in unknown.text  # the models there are
    assert client.get("/evaluation/logistic-1/script.js").status_code == 404


def test_an_empty_project_says_what_will_appear_and_the_command(tmp_path: Path) -> None:
    root = write_churn_project(tmp_path)
    with TestClient(create_app(UiConfig(root)), base_url="http://127.0.0.1") as client:
        listed = client.get("/evaluation")
        model = client.get("/evaluation/logistic-1")
    assert listed.status_code == 200
    assert "No evaluation yet" in listed.text
    assert "<code>mlplan evaluate MODEL</code>" in listed.text
    assert model.status_code == 404 and "mlplan evaluate MODEL" in model.text
    assert not (root / ".mlplan" / "store.db").exists()  # reading made no store


def test_the_report_and_card_are_served_under_a_policy_of_their_own(
    client: TestClient, evaluated_project: Evaluated
) -> None:
    _, printed = evaluated_project
    page = client.get("/evaluation/logistic-1")
    report = client.get("/evaluation/logistic-1/report")
    card = client.get("/evaluation/logistic-1/card")
    assert page.headers["content-security-policy"].endswith("frame-src 'self'")
    for document in (report, card):
        assert document.status_code == 200
        assert document.headers["content-security-policy"] == DOCUMENT_CSP  # only its own
        assert "<script" not in document.text
    assert report.text == Path(printed["files"]["evaluation.html"]).read_text()
    assert "Ana" in card.text  # generated now: the approval given after the evaluation
    frames = re.findall(r"<iframe [^>]*>", page.text)
    assert len(frames) == 2 and all(re.search(r"\ssandbox[\s>]", f) for f in frames)  # no allow-*


@pytest.fixture(scope="module")
def base_url(evaluated_project: Evaluated) -> Iterator[str]:
    with ui_process(evaluated_project[0]) as url:
        yield url


@pytest.mark.slow
def test_the_evaluation_list_shows_the_headline_and_gates_evaluate_printed(
    browser: Any, base_url: str, evaluated_project: Evaluated
) -> None:
    _, printed = evaluated_project
    visit = Visit(browser, base_url + "/evaluation")
    try:
        rows = visit.page.evaluate(
            """() => [...document.querySelectorAll('tr[data-ref]')].map(tr => {
                const value = tr.querySelector('.headline data');
                const interval = tr.querySelector('.headline .interval');
                const gates = tr.querySelector('.gates-cell').dataset;
                return {
                    ref: tr.dataset.ref, run: tr.dataset.run, passed: tr.dataset.passed,
                    metric: tr.querySelector('.headline').dataset.metric,
                    value: Number(value.value), text: value.innerText,
                    low: Number(interval.dataset.low), high: Number(interval.dataset.high),
                    gates: [Number(gates.gatesPassed), Number(gates.gatesFailed),
                            Number(gates.gates)],
                    word: tr.querySelector('.gates-cell .state').innerText.trim(),
                };
            })"""
        )
        visit.page.get_by_role("link", name=printed["package"]["ref"]).click()
        visit.page.wait_for_load_state("networkidle")
        title = visit.page.title()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        visit.page.goto(base_url + "/evaluation")
        visit.page.screenshot(path=str(SCREENSHOTS / "evaluation.png"), full_page=True)
    finally:
        visit.close()
    assert visit.problems == []
    assert all(u.startswith(base_url + "/") for u in visit.requests)
    headline = printed["overall"][printed["focus_metric"]]
    states = [g["state"] for g in printed["gates"]]
    assert rows == [
        {
            "ref": printed["package"]["ref"],  # logistic-2 was never evaluated: not listed
            "run": printed["run_id"],
            "passed": "yes" if printed["passed"] else "no",
            "metric": printed["focus_metric"],
            "value": headline["value"],
            "text": f"{headline['value']:.4g}",
            "low": headline["low"],
            "high": headline["high"],
            "gates": [states.count("pass"), states.count("fail"), len(states)],
            "word": "✔ passed" if printed["passed"] else "✘ failed",
        }
    ]
    assert title == f"Evaluation: {printed['package']['ref']} · mlplan"


@pytest.mark.slow
def test_the_model_page_shows_focus_gates_risks_approvals_and_both_documents(
    browser: Any, base_url: str, evaluated_project: Evaluated
) -> None:
    root, printed = evaluated_project
    approvals = cli_json(root, "approvals", "list", "--all")
    # tall enough that the documents are in view as they load: Chromium does not paint a
    # frame of another origin (a sandboxed one) out of view, and the screenshot would be blank
    context = browser.new_context(viewport={"width": 1280, "height": 2400})
    visit = Visit(context, base_url + "/evaluation/logistic-1")
    try:
        shown = visit.page.evaluate(
            """() => ({
                focus: [...document.querySelectorAll('tr[data-focus]')].map(tr => [
                    tr.dataset.slice, tr.dataset.focus, Number(tr.dataset.count),
                    Number(tr.dataset.score), Number(tr.dataset.gap)]),
                gates: [...document.querySelectorAll('tr[data-gate]')].map(tr => [
                    tr.dataset.gate, tr.dataset.state,
                    tr.querySelector('.state').innerText.trim()]),
                risks: [...document.querySelectorAll('tr[data-risk]')].map(tr => [
                    tr.dataset.risk, tr.dataset.state,
                    tr.querySelector('.state').innerText.trim()]),
                approvals: [...document.querySelectorAll('tr[data-approval]')].map(tr => [
                    Number(tr.dataset.approval), tr.dataset.forGate, tr.dataset.subject,
                    tr.dataset.active]),
            })"""
        )
        report = visit.page.frame_locator("iframe[data-document=report]").locator("body")
        card = visit.page.frame_locator("iframe[data-document=card]").locator("body")
        report_text, card_text = report.inner_text(), card.inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        visit.page.screenshot(path=str(SCREENSHOTS / "evaluation-model.png"), full_page=True)
    finally:
        visit.close()
        context.close()
    assert visit.problems == []  # a style the documents' own policy refused would be here
    assert all(u.startswith(base_url + "/") for u in visit.requests)
    assert {base_url + "/evaluation/logistic-1%402/" + d for d in ("report", "card")} <= set(
        visit.requests
    )
    assert shown["focus"] == [
        [f["slice"], f["value"], f["count"], f["score"], f["gap"]] for f in printed["focus"]
    ]
    assert len(shown["focus"]) == 3  # north, south, east: the ranking, most to gain first
    words = {"pass": "✔ pass", "fail": "✘ fail", "unchecked": "○ unchecked"}
    words |= {"passing": "✔ passing", "failing": "✘ failing"}
    assert shown["gates"] == [[g["id"], g["state"], words[g["state"]]] for g in printed["gates"]]
    assert shown["risks"] == [[k["id"], k["state"], words[k["state"]]] for k in printed["risks"]]
    assert shown["gates"] and shown["risks"]
    assert shown["approvals"] == [
        [a["id"], a["gate"], a["subject"], "yes" if a["revoked_at"] is None else "no"]
        for a in approvals
    ]
    assert [a["by"] for a in approvals] == ["Priya", "Ana"]
    assert printed["split"] in report_text and printed["package"]["ref"] in card_text


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violation_on_the_evaluation_pages(
    browser: Any, base_url: str, axe_source: str, scheme: str
) -> None:
    # axe is injected by the test, past the pages' own policy; it does not enter the frames.
    # The list, /evaluation, is one of PAGES: test_browser checks it in both themes.
    found = axe_pages(
        browser, axe_source, scheme, base_url, ("/evaluation/logistic-1", "/evaluation/logistic-2")
    )
    assert found == {path: [] for path in found}


def test_the_list_keeps_each_versions_newest_evaluation_fifty_a_page(tmp_path: Path) -> None:
    root = write_churn_project(tmp_path)
    ws = Workspace(root)
    try:
        with ws.record("evaluate", {}) as run:  # as evaluate stores them, without evaluating
            # m-007@1 evaluated twice: its newest is listed
            for i, value in [*((i, i / 1000) for i in range(120)), (7, 0.99)]:
                run.report(
                    "evaluation",
                    {
                        "model": f"m-{i:03d}",
                        "package": {"ref": f"m-{i:03d}@1", "version": 1},
                        "split": "customers@1/s1",
                        "part": "test",
                        "focus_metric": "accuracy",
                        "overall": {"accuracy": {"value": value, "low": None, "high": None}},
                        "gates": [],
                        "passed": True,
                    },
                )
    finally:
        ws.close()
    with TestClient(create_app(UiConfig(root)), base_url="http://127.0.0.1") as client:
        pages = [client.get(f"/evaluation?page={n}").text for n in (1, 2, 3)]
    refs = [re.findall(r'<tr data-ref="([^"]+)"', page) for page in pages]
    assert [len(r) for r in refs] == [50, 50, 20]
    assert [ref for page in refs for ref in page] == [f"m-{i:03d}@1" for i in range(120)]
    assert "1–50 of 120" in pages[0] and 'href="/evaluation?page=2"' in pages[0]
    assert '<data class="value" value="0.99">' in pages[0]  # m-007's newest
    assert "(the plan sets no gate)" in pages[2]
