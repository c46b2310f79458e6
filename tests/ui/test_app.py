"""The dashboard's app in process (Starlette's test client) and its command's refusals."""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tests.conftest import write_churn_project
from tests.ui.conftest import REPO, free_port, with_long_comparison

from mlplan.errors import ParameterError
from mlplan.modeling import Comparison
from mlplan.serving import create_key
from mlplan.ui import HTMX, UiConfig, check_ui_host, create_app
from mlplan.workspace import Workspace


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    """A project with a plan and data, nothing registered: no store yet."""
    return write_churn_project(tmp_path)


@pytest.fixture
def client(fresh: Path) -> Iterator[TestClient]:
    with TestClient(create_app(UiConfig(fresh)), base_url="http://127.0.0.1") as client:
        yield client


def test_a_fresh_project_shows_its_checklist_and_what_the_empty_pages_will_show(
    client: TestClient, fresh: Path
) -> None:
    project = client.get("/")
    assert project.status_code == 200
    assert project.text.count("data-item=") == 48  # every checklist item
    assert 'id="plan-project"' in project.text  # the plan, each top-level key an anchor
    assert "No alert is open" in project.text
    models = client.get("/models").text
    assert "No comparison is stored yet" in models and "mlplan models compare" in models
    monitoring = client.get("/monitoring").text
    assert "No monitor windows yet" in monitoring
    for step in ("mlplan serve --deployment production", "mlplan monitor", "mlplan deploy"):
        assert step in monitoring
    assert not (fresh / ".mlplan" / "store.db").exists()  # reading made no store


def test_the_app_keeps_one_store_yet_shows_what_commands_record_after_it_opened(
    client: TestClient, fresh: Path
) -> None:
    """The app opens the store once the project has one and keeps it between requests;
    every page still shows what another process recorded since, as a command would, and a
    store file replaced (a project rebuilt) is opened again."""
    from mlplan.data import register_dataset

    assert 'data-versions="0"' in client.get("/data").text  # no store yet: none opened
    data = fresh / "data" / "customers.csv"
    for expected in (1, 2):
        if expected == 2:  # new bytes: a new version
            lines = data.read_text().splitlines(keepends=True)
            data.write_text("".join(lines[:-1]))
        ws = Workspace(fresh)
        try:
            register_dataset(ws, "customers")
        finally:
            ws.close()
        assert f'data-dataset="customers" data-versions="{expected}"' in client.get("/data").text
    # The project rebuilt from scratch (its store folder removed, a new store made): the app
    # reads the new file, not the one its connections had open.
    shutil.rmtree(fresh / ".mlplan")
    ws = Workspace(fresh)
    try:
        register_dataset(ws, "customers")
    finally:
        ws.close()
    assert 'data-dataset="customers" data-versions="1"' in client.get("/data").text


def test_a_fresh_projects_data_page_names_its_planned_datasets_and_how_to_register_them(
    client: TestClient, fresh: Path
) -> None:
    data = client.get("/data")
    assert data.status_code == 200
    assert 'data-dataset="customers" data-versions="0"' in data.text
    assert "mlplan data add customers FILE" in data.text
    version = client.get("/data/customers@1")
    assert version.status_code == 404 and "mlplan data add NAME FILE" in version.text
    deployments = client.get("/deployments").text
    assert "No deployment yet" in deployments and "mlplan deploy MODEL" in deployments
    assert not (fresh / ".mlplan" / "store.db").exists()  # reading made no store


def test_the_dashboard_is_read_only_and_keeps_to_its_own_files(client: TestClient) -> None:
    refused = client.post("/", content=b"x")
    assert (refused.status_code, refused.headers["allow"]) == (405, "GET, HEAD")
    assert "read-only" in refused.text
    page = client.get("/models")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert client.get("/no-such-page").status_code == 404


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:8000", 200),
        ("localhost", 200),
        ("[::1]:8000", 200),
        ("evil.example", 421),
        ("evil.example:8000", 421),
        ("127.0.0.1.evil.example", 421),
    ],
)
def test_on_loopback_only_a_loopback_host_is_answered(
    client: TestClient, host: str, status: int
) -> None:
    # a page elsewhere whose DNS name points at 127.0.0.1 sends its own name as Host
    assert client.get("/models", headers={"Host": host}).status_code == status


def test_without_the_htmx_tarball_the_pages_still_work_and_say_so_once(
    fresh: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(HTMX.env, str(fresh / "missing" / HTMX.tarball_name))
    with caplog.at_level(logging.WARNING, logger="mlplan.ui"):
        app = create_app(UiConfig(fresh))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        page = client.get("/")
        script = client.get("/static/htmx.min.js")
    assert page.status_code == 200 and "htmx.min.js" not in page.text
    assert "Served without htmx" in page.text
    assert script.status_code == 404
    warned = [r.getMessage() for r in caplog.records if r.name == "mlplan.ui"]
    assert len(warned) == 1 and "htmx.org@4.0.1 is not served" in warned[0]
    assert f"${HTMX.env}" in warned[0] and "scripts/system-deps.sh" in warned[0]


def test_the_build_script_packs_the_htmx_the_app_serves() -> None:
    script = (REPO / "scripts" / "system-deps.sh").read_text()
    assert re.search(r"^HTMX_VERSION=(\S+)", script, re.M)[1] == HTMX.version  # type: ignore[index]


def test_mlplan_ui_refuses_a_host_beyond_loopback_without_keys(fresh: Path) -> None:
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "mlplan", "ui", "--host", "0.0.0.0", "--port", str(port)],
        cwd=fresh,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "--host 0.0.0.0" in done.stderr and "mlplan keys create" in done.stderr
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass  # nothing listens


def test_with_an_api_key_the_dashboard_may_listen_beyond_loopback(fresh: Path) -> None:
    ws = Workspace(fresh)
    try:
        with pytest.raises(ParameterError, match="only once the project has API keys"):
            check_ui_host(ws, "0.0.0.0", 8000)
        create_key(ws, name="ops", roles=["admin"])
        check_ui_host(ws, "0.0.0.0", 8000)
        with pytest.raises(ParameterError, match=r"'port' must be from 1 to 65535; got 70000"):
            check_ui_host(ws, "127.0.0.1", 70000)
    finally:
        ws.close()


@pytest.mark.parametrize(
    ("asked", "first", "shown"),
    [
        ("", "m-000", "1–50 of 120"),
        ("?page=3", "m-100", "101–120 of 120"),
        ("?page=99", "m-100", "101–120 of 120"),
        ("?page=x", "m-000", "1–50 of 120"),
    ],
    ids=["first", "last", "past-the-end", "not-a-number"],
)
def test_a_long_comparison_is_shown_fifty_rows_a_page(
    tmp_path: Path, asked: str, first: str, shown: str
) -> None:
    root = with_long_comparison(tmp_path)
    with TestClient(create_app(UiConfig(root)), base_url="http://127.0.0.1") as client:
        page = client.get("/models" + asked).text
    rows = re.findall(r'data-row="([^"]+)"', page)
    assert rows[0] == first and len(rows) == (50 if first == "m-000" else 20)
    assert shown in page


def test_a_broken_plan_is_said_on_the_page_as_the_cli_says_it(fresh: Path) -> None:
    plan = fresh / "mlplan.yaml"
    plan.write_text(plan.read_text().replace("task:", "tsak:", 1))
    with TestClient(create_app(UiConfig(fresh)), base_url="http://127.0.0.1") as client:
        page = client.get("/")
    assert page.status_code == 500
    assert "Cannot show this page" in page.text and "tsak" in page.text


def test_hlp_and_literature_rows_show_as_the_comparison_stores_them(tmp_path: Path) -> None:
    """An HLP row has no threshold; a literature row neither, and its reported figure has no
    interval: the page shows both (it answered 500 on the demo's comparison before)."""
    root = with_long_comparison(tmp_path, rows=1)
    ws = Workspace(root)
    try:
        stored = Comparison(
            "customers@1/s1",
            "accuracy",
            [
                {"name": "HLP", "kind": "hlp", "measured": True, "note": "from 180 items",
                 "metrics": {"accuracy": {"value": 0.8, "low": 0.7, "high": 0.9, "level": 1}}},
                {"name": "Telco churn (Kaggle)", "kind": "literature", "measured": False,
                 "note": "reported, not measured here", "metrics": {"accuracy": {"value": 0.84}}},
            ],
            {"best_model": "HLP", "metric": "accuracy"},
            bootstrap=0,
            seed=0,
            confidence=0.95,
        )  # fmt: skip
        with ws.record("models compare", {"split": stored.split}) as run:
            run.report("comparison", stored.to_dict())
    finally:
        ws.close()
    with TestClient(create_app(UiConfig(root)), base_url="http://127.0.0.1") as client:
        page = client.get("/models")
    assert page.status_code == 200
    assert re.findall(r'data-row="([^"]+)"', page.text) == ["HLP", "Telco churn (Kaggle)"]
    assert "reported" in page.text and "0.84" in page.text


def test_a_big_lineage_shows_the_nearest_runs_and_what_each_run_read_in_part(
    tmp_path: Path,
) -> None:
    """A dataset version read by more runs than the page shows, and a run that read more
    than it lists (as a thousand trainings and their comparison): the page says there are
    more runs, draws one node for what a run read past the first ones, and its table says
    how many more; the CLI's JSON still lists them all."""
    from mlplan.data import register_dataset
    from mlplan.lineage import lineage
    from mlplan.ui._lineage import MAX_RUNS, MAX_THINGS

    root = write_churn_project(tmp_path)
    ws = Workspace(root)
    try:
        version = register_dataset(ws, "customers").version
        for i in range(MAX_RUNS + 2):
            with ws.record("train", {}) as run:
                run.input("dataset_version", version.ref)
                run.output("model", f"m-{i}@1")
        with ws.record("compare", {}) as run:
            for i in range(MAX_THINGS + 7):
                run.input("model", f"m-{i}@1")
            run.output("report", "comparison")
        assert len(lineage(ws, version.ref).downstream) == MAX_RUNS + 3
    finally:
        ws.close()
    with TestClient(create_app(UiConfig(root)), base_url="http://127.0.0.1") as client:
        big = client.get("/lineage", params={"ref": version.ref})
        wide = client.get("/lineage", params={"ref": "m-0@1"})
    assert big.status_code == 200 and wide.status_code == 200
    assert f"(the nearest {MAX_RUNS} a way: there are more)" in big.text
    assert big.text.count('<tr id="run-') == 1 + MAX_RUNS  # the data add, and 100 of 103
    assert "there are more" not in wide.text
    assert "… and 7 more (" in wide.text
    drawn = re.search(r'id="lineage-data">(.*?)</script>', wide.text, re.S)
    assert drawn is not None
    graph = json.loads(drawn.group(1))
    more = [n for n in graph["nodes"] if n["kind"] == "more"]
    assert [n["label"] for n in more] == ["7 more read"]
    assert sum(n["kind"] == "model" for n in graph["nodes"]) == MAX_THINGS  # m-0 among them
