"""The Lineage page: the graph ``mlplan lineage REF --json`` walks, laid out by elkjs and drawn
as SVG in headless Chromium on a real ``mlplan ui`` process, and the same graph as tables
without JavaScript."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient
from tests.conftest import evaluated, register_split_train, write_churn_project
from tests.ui.conftest import REPO, SCREENSHOTS, Visit, axe_pages, cli_json, ui_process
from typer.testing import CliRunner

from mlplan.cli import app
from mlplan.serving import deploy
from mlplan.ui import ELK, UiConfig, create_app
from mlplan.workspace import Workspace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def deployed_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A churn project: customers registered and split, logistic-1 trained, evaluated (a new
    package version, logistic-1@2) and deployed to production; once per module."""
    root = write_churn_project(tmp_path_factory.mktemp("ui-lineage"))
    ws = Workspace(root)
    try:
        register_split_train(ws)
        deploy(ws, evaluated(ws), by="Priya")
    finally:
        ws.close()
    return root


@pytest.fixture(scope="module")
def base_url(deployed_project: Path) -> Iterator[str]:
    with ui_process(deployed_project) as url:
        yield url


@pytest.fixture(scope="module")
def client(deployed_project: Path) -> Iterator[TestClient]:
    with TestClient(create_app(UiConfig(deployed_project)), base_url="http://127.0.0.1") as client:
        yield client


def printed_graph(root: Path, ref: str) -> tuple[dict[str, Any], set[str], set[tuple[str, str]]]:
    """``mlplan lineage REF --json``, with its nodes (each run, each thing a run read or made)
    and edges (thing → run that read it, run → thing it made), named as the page names them."""
    printed: dict[str, Any] = cli_json(root, "lineage", ref)
    runs = printed["upstream"] + printed["downstream"]
    nodes = {f"ref:{printed['subject']['ref']}"} | {f"run:{r['id']}" for r in runs}
    edges = set()
    for run in runs:
        nodes |= {f"ref:{n['ref']}" for n in run["inputs"] + run["outputs"]}
        edges |= {(f"ref:{n['ref']}", f"run:{run['id']}") for n in run["inputs"]}
        edges |= {(f"run:{run['id']}", f"ref:{n['ref']}") for n in run["outputs"]}
    return printed, nodes, edges


def drawn(visit: Visit) -> dict[str, Any]:
    """What the page drew, once elkjs laid it out."""
    visit.page.wait_for_selector("#lineage-graph[data-state=drawn]")
    result: dict[str, Any] = visit.page.evaluate(
        """() => ({
            nodes: [...document.querySelectorAll('#lineage-graph a[data-node]')].map(a => ({
                id: a.dataset.node, kind: a.dataset.kind, href: a.getAttribute('href'),
                name: a.getAttribute('aria-label'), subject: a.getAttribute('aria-current'),
                shape: a.querySelector('.shape').getAttribute('d'),
                box: (({x, y}) => ({x, y}))(a.getBoundingClientRect()),
            })),
            edges: [...document.querySelectorAll('#lineage-graph path.edge')].map(p => [
                p.dataset.source, p.dataset.target, p.getAttribute('marker-end'),
                p.getAttribute('d')]),
        })"""
    )
    return result


@pytest.mark.parametrize("ref", ["customers@1", "logistic-1", "production"])
def test_the_drawn_graph_has_a_node_per_node_and_an_edge_per_edge_of_mlplan_lineage(
    browser: Any, base_url: str, deployed_project: Path, ref: str
) -> None:
    printed, nodes, edges = printed_graph(deployed_project, ref)
    visit = Visit(browser, f"{base_url}/lineage?ref={quote(ref, safe='')}")
    try:
        shown = drawn(visit)
        title = visit.page.title()
        if ref == "customers@1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            visit.page.screenshot(path=str(SCREENSHOTS / "lineage-graph.png"), full_page=True)
    finally:
        visit.close()
    assert visit.problems == []
    assert visit.requests and all(u.startswith(base_url + "/") for u in visit.requests)
    assert title == f"Lineage: {printed['subject']['ref']} · mlplan"
    ids = [n["id"] for n in shown["nodes"]]
    assert sorted(ids) == sorted(nodes)  # each once
    assert sorted((s, t) for s, t, _, _ in shown["edges"]) == sorted(edges)
    assert all(marker == "url(#lineage-arrow)" and d for _, _, marker, d in shown["edges"])
    subject = [n for n in shown["nodes"] if n["subject"] == "true"]
    assert [n["id"] for n in subject] == [f"ref:{printed['subject']['ref']}"]
    assert subject[0]["name"].startswith(f"{subject[0]['kind'].replace('_', ' ')} · start ")
    # a shape and a word per kind: a run and a dataset version are told apart without colour
    kinds = {n["kind"]: n for n in shown["nodes"]}
    assert {"run", "dataset_version", "split", "model"} <= set(kinds)
    assert kinds["run"]["name"].startswith("run ")
    assert kinds["dataset_version"]["name"].startswith("dataset version ")
    assert kinds["run"]["shape"].split()[1] != kinds["dataset_version"]["shape"].split()[1]
    # the keyboard meets the nodes as one reads them: top to bottom, then left to right
    boxes = [(round(n["box"]["y"]), round(n["box"]["x"])) for n in shown["nodes"]]
    assert boxes == sorted(boxes)


def test_each_node_links_to_its_page_and_a_dataset_node_opens_its_datasheet(
    browser: Any, base_url: str
) -> None:
    visit = Visit(browser, f"{base_url}/lineage?ref=logistic-1%402")
    try:
        hrefs = {n["id"]: n["href"] for n in drawn(visit)["nodes"]}
        visit.page.locator('#lineage-graph a[data-node="ref:customers@1"]').click()
        visit.page.wait_for_url(f"{base_url}/data/customers%401")
        heading = visit.page.locator("h1").inner_text()
    finally:
        visit.close()
    assert visit.problems == []
    assert "customers@1" in heading
    assert hrefs["ref:customers@1/s1"] == "/data/customers%401"
    assert hrefs["ref:logistic-1@1"] == "/models/logistic-1%401"
    assert hrefs["ref:production"] == "/deployments#deployment-production"
    runs = [i for i in hrefs if i.startswith("run:")]
    assert runs and all(hrefs[r] == f"#run-{r[4:]}" for r in runs)  # its row in the table


def test_the_keyboard_reaches_every_node_in_reading_order(browser: Any, base_url: str) -> None:
    visit = Visit(browser, f"{base_url}/lineage?ref=customers%401")
    try:
        order = [n["id"] for n in drawn(visit)["nodes"]]
        visit.page.locator(f'#lineage-graph a[data-node="{order[0]}"]').focus()
        reached = [order[0]]
        for _ in order[1:]:
            visit.page.keyboard.press("Tab")
            reached.append(visit.page.evaluate("document.activeElement.dataset.node"))
    finally:
        visit.close()
    assert reached == order


def test_without_javascript_the_tables_list_the_same_runs_as_links(
    browser: Any, base_url: str, deployed_project: Path
) -> None:
    printed = printed_graph(deployed_project, "logistic-1@2")[0]
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{base_url}/lineage?ref=logistic-1%402")
        shown = page.evaluate(
            """() => Object.fromEntries(['upstream', 'downstream'].map(way => [way,
                [...document.querySelectorAll(`table[data-way=${way}] tr[data-run]`)].map(tr => [
                    tr.dataset.run,
                    [...tr.querySelectorAll('td:nth-child(2) a:not(.from-here)')]
                        .map(a => a.innerText),
                    [...tr.querySelectorAll('td:nth-child(3) a:not(.from-here)')]
                        .map(a => a.innerText),
                ])]))"""
        )
        graph_hidden = page.locator("#lineage-graph").is_hidden()
        page.locator("table[data-way=upstream] a", has_text="customers@1").first.click()
        page.wait_for_url(f"{base_url}/data/customers%401")
    finally:
        context.close()
    for way in ("upstream", "downstream"):
        assert shown[way] == [
            [r["id"], [n["ref"] for n in r["inputs"]], [n["ref"] for n in r["outputs"]]]
            for r in printed[way]
        ]
    assert graph_hidden


def test_the_start_list_offers_every_dataset_version_model_and_deployment(
    browser: Any, base_url: str, deployed_project: Path
) -> None:
    models = cli_json(deployed_project, "models", "list", "--versions")
    visit = Visit(browser, f"{base_url}/lineage")
    try:
        starts = visit.page.evaluate(
            """() => [...document.querySelectorAll('tr[data-start]')].map(tr => [
                tr.dataset.kind, tr.dataset.start])"""
        )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        visit.page.screenshot(path=str(SCREENSHOTS / "lineage-start.png"), full_page=True)
        visit.page.get_by_role("link", name="production", exact=True).click()
        visit.page.wait_for_url(f"{base_url}/lineage?ref=production")
        visit.page.wait_for_selector("#lineage-graph[data-state=drawn]")
        visit.page.screenshot(path=str(SCREENSHOTS / "lineage-deployment.png"), full_page=True)
    finally:
        visit.close()
    assert visit.problems == []
    assert starts == [
        ["dataset_version", "customers@1"],
        *[["model", f"{m['name']}@{m['version']}"] for m in models],
        ["deployment", "production"],
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violation_on_the_lineage_pages(
    browser: Any, base_url: str, axe_source: str, scheme: str
) -> None:
    def drawn(page: Any, path: str) -> None:
        if "ref=" in path:
            page.wait_for_selector("#lineage-graph[data-state=drawn]")

    paths = ["/lineage", "/lineage?ref=customers%401"]
    found = axe_pages(browser, axe_source, scheme, base_url, paths, ready=drawn)
    assert found == {"/lineage": [], "/lineage?ref=customers%401": []}


def test_an_unknown_reference_answers_404_with_the_message_of_mlplan_lineage(
    client: TestClient, deployed_project: Path
) -> None:
    said = CliRunner().invoke(app, ["lineage", "nothing@9", "--project", str(deployed_project)])
    answer = client.get("/lineage?ref=nothing@9")
    message = re.search(r'<p class="error" role="alert">([^<]*)</p>', answer.text)
    assert said.exit_code == 1 and answer.status_code == 404
    assert message is not None and "no run made or read" in message[1]
    assert said.stderr == f"error: {html.unescape(message[1])}\n"


def test_elkjs_is_served_from_its_tarball_and_the_build_script_packs_that_version(
    client: TestClient,
) -> None:
    script = (REPO / "scripts" / "system-deps.sh").read_text()
    assert re.search(r"^ELKJS_VERSION=(\S+)", script, re.M)[1] == ELK.version  # type: ignore[index]
    assert 'npm_pack elkjs "$ELKJS_VERSION"' in script
    served = client.get("/static/elk.bundled.js")
    assert served.status_code == 200 and served.headers["content-type"].startswith(
        "text/javascript"
    )
    assert b"ELK" in served.content[:2000]
    page = client.get("/lineage?ref=customers@1").text
    assert '<script src="/static/elk.bundled.js" defer></script>' in page
    assert client.get("/static/lineage.js").status_code == 200


def test_without_the_elkjs_tarball_the_page_lists_the_graph_and_says_why(
    deployed_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ELK.env, str(deployed_project / "missing" / ELK.tarball_name))
    with TestClient(create_app(UiConfig(deployed_project)), base_url="http://127.0.0.1") as bare:
        page = bare.get("/lineage?ref=customers@1")
        script = bare.get("/static/elk.bundled.js")
    assert page.status_code == 200 and script.status_code == 404
    assert "elk.bundled.js" not in page.text and "lineage.js" not in page.text
    assert "elkjs is not served here, so it is not drawn" in page.text
    assert page.text.count('<tr id="run-') == 5  # data add, then split, train, evaluate, deploy
