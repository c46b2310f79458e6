"""The Deployments page: each deployment's rollout as ``mlplan rollout status --json`` prints
it, and its moves, made with an admin API key and refused without one — in process, and in
headless Chromium on a real ``mlplan ui``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from tests.ui.conftest import SCREENSHOTS, Visit, axe_run, cli_json, ui_process

from mlplan.rollout import MOVES, allowed_actions, move_rollout, rollout_history, rollout_status
from mlplan.ui import UiConfig, create_app
from mlplan.workspace import Workspace

Project = tuple[Path, dict[str, str]]


def rollout_now(root: Path) -> tuple[str, float, int]:
    """The production rollout's state, weight and number of events, read by the library."""
    ws = Workspace(root)
    try:
        (rollout,) = rollout_status(ws, "production")
        events = sum(len(r.events) for r in rollout_history(ws, "production"))
    finally:
        ws.close()
    return rollout.state, rollout.weight, events


@pytest.fixture(scope="module")
def client(rolling_project: Project) -> Iterator[TestClient]:
    root, _ = rolling_project
    with TestClient(create_app(UiConfig(root)), base_url="http://127.0.0.1") as client:
        yield client


def test_a_move_without_an_admin_key_is_refused_and_changes_nothing(
    client: TestClient, rolling_project: Project
) -> None:
    root, tokens = rolling_project
    before = rollout_now(root)
    unknown = tokens["Ana"][:-4] + "xxxx"  # its id, a wrong secret
    for form, status in [
        ({"note": "x"}, 401),
        ({"key": unknown}, 401),
        ({"key": tokens["bot"]}, 403),
    ]:
        answer = client.post("/deployments/production/pause", data=form)
        assert answer.status_code == status, form
        assert f'data-status="{status}"' in answer.text and "nothing was changed" in answer.text
        assert tokens["bot"] not in answer.text and unknown not in answer.text
    assert rollout_now(root) == before
    refused = client.post("/deployments/production/pause", headers={"Authorization": "Bearer x"})
    assert refused.status_code == 401
    assert client.post("/deployments/production/launch").status_code == 405  # not a move
    assert client.post("/deployments", data={"key": tokens["Ana"]}).status_code == 405
    assert client.get("/deployments/production/pause").status_code == 405
    big = client.post("/deployments/production/pause", data={"note": "x" * 20_000})
    assert big.status_code == 413
    chunked = client.post(
        "/deployments/production/pause", content=iter([b"note=", b"x" * 20_000])
    )  # no Content-Length: counted as it comes
    assert chunked.status_code == 413
    assert rollout_now(root) == before


def test_an_admin_key_in_the_authorization_header_moves_the_rollout(
    client: TestClient, rolling_project: Project
) -> None:
    root, tokens = rolling_project
    _, weight, events = rollout_now(root)
    bearer = {"Authorization": f"Bearer {tokens['Ana']}"}
    paused = client.post("/deployments/production/pause", headers=bearer, data={"note": "wait"})
    assert paused.status_code == 200 and "is paused" in paused.text
    assert rollout_now(root) == ("paused", weight, events + 1)
    resumed = client.post("/deployments/production/resume", headers=bearer)
    assert resumed.status_code == 200
    assert rollout_now(root)[0] == "progressing"  # resumed, it goes on (the controller moves it)
    again = client.post("/deployments/production/resume", headers=bearer)
    assert again.status_code == 409  # not paused: the rollout's own refusal, said on the page
    assert 'data-status="409"' in again.text
    missing = client.post("/deployments/staging/pause", headers=bearer)
    assert missing.status_code == 404


@pytest.fixture(scope="module")
def base_url(rolling_project: Project) -> Iterator[str]:
    with ui_process(rolling_project[0]) as url:
        yield url


def shown_rollout(page: Any) -> dict[str, Any]:
    """What the Deployments page shows of production's rollout."""
    found: dict[str, Any] = page.evaluate(
        """() => {
            const section = document.querySelector('section[data-deployment=production]');
            const r = section.querySelector('dl[data-rollout]').dataset;
            return {
                id: Number(r.rollout), state: r.state, strategy: r.strategy, stable: r.stable,
                candidate: r.candidate, weight: Number(r.weight),
                stable_weight: Number(r.stableWeight), step: Number(r.step),
                steps: Number(r.steps),
                verdict: section.querySelector('.analysis')?.dataset.verdict ?? null,
                checks: [...section.querySelectorAll('tr[data-check]')]
                    .map(tr => [tr.dataset.check, tr.dataset.verdict]),
                moves: [...section.querySelectorAll('button[data-move]')]
                    .map(b => b.dataset.move),
                events: [...section.querySelectorAll('tr[data-event]')]
                    .map(tr => [tr.dataset.event, tr.dataset.actor]),
            };
        }"""
    )
    return found


@pytest.mark.slow
def test_the_deployments_page_shows_what_rollout_status_prints(
    browser: Any, base_url: str, rolling_project: Project
) -> None:
    root, _ = rolling_project
    (printed,) = cli_json(root, "rollout", "status")
    visit = Visit(browser, base_url + "/deployments")
    try:
        shown = shown_rollout(visit.page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        visit.page.screenshot(path=str(SCREENSHOTS / "deployments-canary.png"), full_page=True)
    finally:
        visit.close()
    assert visit.problems == []
    assert all(u.startswith(base_url + "/") for u in visit.requests)
    for field in ("id", "state", "strategy", "stable", "candidate", "weight", "stable_weight"):
        assert shown[field] == printed[field], field
    assert (shown["step"], shown["steps"]) == (printed["step"], len(printed["steps"]))
    analysis = printed["analysis"]
    assert shown["verdict"] == analysis["verdict"]
    assert shown["checks"] == [[c["metric"], c["verdict"]] for c in analysis["checks"]]
    history = cli_json(root, "rollout", "history", "production")
    newest_first = [e for r in reversed(history) for e in reversed(r["events"])]
    assert shown["events"] == [[e["action"], e["actor"]] for e in newest_first][:50]
    # the moves a person may make from the state it is in (earlier tests of this module
    # may have moved it)
    allowed = allowed_actions(printed["state"], "person")
    assert shown["moves"] == [a for a in allowed if a in MOVES]
    assert "abort" in shown["moves"]


def submit(visit: Visit, key: str, move: str, note: str = "") -> int:
    """Type ``key`` (and ``note``) into production's form, press ``move``: the status of the
    answer, once the page it answered with has loaded."""
    section = visit.page.locator("section[data-deployment=production]")
    section.get_by_label("Admin API key").fill(key)
    section.get_by_label("Why (recorded)").fill(note)
    with visit.page.expect_response(lambda r: r.request.method == "POST") as answer:
        section.locator(f"button[data-move={move}]").click()
    visit.page.wait_for_load_state("networkidle")
    status: int = answer.value.status
    return status


@pytest.mark.slow
def test_a_move_from_the_page_needs_an_admin_key_and_is_recorded(
    browser: Any, base_url: str, rolling_project: Project
) -> None:
    root, tokens = rolling_project
    before = rollout_now(root)
    visit = Visit(browser, base_url + "/deployments")
    try:
        section = visit.page.locator("section[data-deployment=production]")
        key = section.get_by_label("Admin API key")
        key.fill(tokens["Ana"])
        key.press("Enter")  # no move is the default: Enter in the form makes none
        refused = submit(visit, "mlp_000000000000_nothing", "pause")
        said_401 = visit.page.locator("#outcome").inner_text()
        forbidden = submit(visit, tokens["bot"], "pause")
        after_refusals = rollout_now(root)
        made = submit(visit, tokens["Ana"], "pause", note="hold for the weekend")
        said = visit.page.locator("#outcome").inner_text()
        shown = shown_rollout(visit.page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        visit.page.screenshot(path=str(SCREENSHOTS / "deployments-paused.png"), full_page=True)
        (printed,) = cli_json(root, "rollout", "status")
        recorded = cli_json(root, "rollout", "history", "production")[-1]["events"]
        resumed = submit(visit, tokens["Ana"], "resume")
    finally:
        visit.close()
    assert (refused, forbidden, made, resumed) == (401, 403, 200, 200)
    assert "admin" in said_401 and "nothing was changed" in said_401
    assert after_refusals == before  # refused: nothing changed, nothing recorded
    assert printed["state"] == "paused" == shown["state"]
    newest = recorded[-1]
    assert newest["action"] == "pause" and newest["reason"] == "hold for the weekend"
    assert newest["actor"].startswith("Ana (dashboard, key ") and newest["actor_kind"] == "person"
    assert tokens["Ana"].split("_", 2)[2] not in newest["actor"]  # the key's id, never its secret
    assert shown["events"][0] == ["pause", newest["actor"]]
    assert "paused" in said and "Ana" in said
    assert rollout_now(root)[0] == "progressing"
    refusals = [
        f"console: Failed to load resource: the server responded with a status of {s}"
        for s in ("401 (Unauthorized)", "403 (Forbidden)")
    ]
    assert visit.problems == refusals  # Chromium's word on each refused answer, and nothing else
    assert all(u.startswith(base_url + "/") for u in visit.requests)
    assert all("mlp_" not in u for u in visit.requests)  # the key never in an address
    moves = [u.removeprefix(base_url) for u in visit.requests if "/deployments/" in u]
    assert moves == [f"/deployments/production/{m}" for m in ("pause",) * 3 + ("resume",)]


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violation_on_a_rollout_with_its_form(
    browser: Any, base_url: str, axe_source: str, scheme: str
) -> None:
    context = browser.new_context(bypass_csp=True, color_scheme=scheme)
    try:
        page = context.new_page()
        page.goto(base_url + "/deployments")
        assert page.locator("form.moves").count() == 1
        result = axe_run(page, axe_source)
    finally:
        context.close()
    assert result["passes"] > 10
    assert result["violations"] == []


def test_a_long_history_is_shown_fifty_events_a_page(
    client: TestClient, rolling_project: Project
) -> None:
    root, _ = rolling_project
    ws = Workspace(root)
    try:
        for _ in range(30):  # sixty moves more
            move_rollout(ws, "production", "pause", by="Priya")
            move_rollout(ws, "production", "resume", by="Priya")
    finally:
        ws.close()
    total = rollout_now(root)[2]
    first = client.get("/deployments").text
    last = client.get("/deployments?events-production=99").text
    assert first.count("data-event=") == 50 and f"1–50 of {total}" in first
    assert 'href="/deployments?events-production=2"' in first
    assert last.count("data-event=") == total - 50 and f"51–{total} of {total}" in last
    assert 'data-event="begin" data-actor="Priya"' in last  # the oldest, on the last page
