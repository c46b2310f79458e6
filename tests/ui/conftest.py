from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import edit_plan, evaluated, ok, register_split_train, write_churn_project
from tests.monitoring.conftest import DAY, traffic
from typer.testing import CliRunner

from mlplan.cli import app
from mlplan.modeling import Comparison, train_model
from mlplan.monitoring import check_alerts, monitor
from mlplan.rollout import start_rollout
from mlplan.serving import create_key, deploy
from mlplan.serving._browser import CHROMIUM_FLAGS, chromium_path
from mlplan.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "ui-screenshots"


AXE_CORE = REPO / "build" / "npm" / "axe-core-4.14.1.tgz"
"""axe-core, packed from the npm registry by scripts/system-deps.sh (never fetched here)."""


def cli_json(root: Path, *args: str) -> Any:
    """``mlplan ARGS --json --project ROOT``'s answer."""
    result = ok(CliRunner().invoke(app, [*args, "--json", "--project", str(root)]))
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, for one test module: Playwright's sync API runs an event loop while it is
    open, and another sync Playwright in the same process (the browser build's check, which
    a test worker may run later) refuses to start inside it."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    assert executable, "make test installs chromium (scripts/system-deps.sh)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


class Visit:
    """A page opened in a fresh browser page, with every request, failure and console error
    it caused."""

    def __init__(self, browser: Any, url: str) -> None:
        self.requests: list[str] = []
        self.problems: list[str] = []
        self.page = browser.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on(
            "console",
            lambda m: self.problems.append(f"console: {m.text}") if m.type == "error" else None,
        )
        answer = self.page.goto(url)
        assert answer is not None and answer.status == 200, url
        self.page.wait_for_load_state("networkidle")

    def close(self) -> None:
        self.page.close()


@pytest.fixture(scope="module")
def axe_source() -> str:
    assert AXE_CORE.exists(), f"make test packs {AXE_CORE.name} (scripts/system-deps.sh)"
    with tarfile.open(AXE_CORE) as archive:
        member = archive.extractfile("package/axe.min.js")
        assert member is not None
        return member.read().decode()


def axe_run(page: Any, axe_source: str) -> dict[str, Any]:
    """axe-core run on ``page`` (injected by the test, past the page's own policy: its
    context must bypass the CSP): how many rules passed, and each serious or critical
    violation in a line."""
    page.add_script_tag(content=axe_source)
    result: dict[str, Any] = page.evaluate(
        """async () => {
            const r = await axe.run(document);
            return {passes: r.passes.length, violations: r.violations
                .filter(v => ['serious', 'critical'].includes(v.impact))
                .map(v => `${v.id}: ${v.help} (${v.nodes.length}: ${
                    v.nodes.slice(0, 3).map(n => n.target.join(' ')).join('; ')})`)};
        }"""
    )
    return result


def axe_pages(
    browser: Any,
    axe_source: str,
    scheme: str,
    base_url: str,
    paths: Iterable[str],
    *,
    ready: Callable[[Any, str], None] | None = None,
) -> dict[str, list[str]]:
    """axe-core's serious and critical violations on each page of ``paths`` in the colour
    ``scheme`` (each page opened, ``ready(page, path)`` awaited, then axe injected past the
    pages' own policy); it fails where axe did not run its rules."""
    context = browser.new_context(bypass_csp=True, color_scheme=scheme)
    found = {}
    try:
        for path in paths:
            page = context.new_page()
            page.goto(base_url + path)
            if ready is not None:
                ready(page, path)
            result = axe_run(page, axe_source)
            assert result["passes"] > 10, path  # axe ran its rules on the page
            found[path] = result["violations"]
            page.close()
    finally:
        context.close()
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def watched_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A churn project with a ``region`` slice, logistic-1 in production, a day of traffic
    measured in hourly windows and its alerts checked (once per module)."""
    root = write_churn_project(tmp_path_factory.mktemp("ui"))
    ws = Workspace(root)
    try:
        edit_plan(ws, "slices: []", "slices: [{name: region, columns: [region]}]")
        register_split_train(ws)
        deploy(ws, evaluated(ws), by="Priya")
        traffic(ws)
        end = DAY + dt.timedelta(days=1)
        monitor(ws, "production", since=DAY, until=end, now=end)
        check_alerts(ws, "production", at=end)
    finally:
        ws.close()
    return root


@pytest.fixture(scope="module")
def rolling_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A churn project whose production deployment serves logistic-1 and rolls logistic-2 out
    as a canary (started with the library, as ``mlplan deploy --strategy canary`` does; no
    server, no traffic), with an admin key ``Ana`` and a predict-only key ``bot`` (their
    tokens by name); once per module."""
    root = write_churn_project(tmp_path_factory.mktemp("ui-rollout"))
    ws = Workspace(root)
    try:
        register_split_train(ws)
        start_rollout(ws, evaluated(ws), by="Priya")  # the first model: a replace
        train_model(ws, family="logistic", seed=2)
        start_rollout(ws, evaluated(ws, "logistic-2"), strategy="canary", by="Priya")
        tokens = {
            "Ana": create_key(ws, "Ana", roles=["admin"]).token,
            "bot": create_key(ws, "bot", roles=["predict"]).token,
        }
    finally:
        ws.close()
    return root, tokens


def with_long_comparison(root: Path, rows: int = 120) -> Path:
    """A churn project in ``root`` whose stored comparison has ``rows`` model rows (as
    ``models compare`` would store for that many models, without training them)."""
    write_churn_project(root)
    comparison = Comparison(
        "customers@1/s1",
        "accuracy",
        [
            {
                "name": f"m-{i:03d}",
                "kind": "model",
                "measured": True,
                "note": "",
                "threshold": None,
                "metrics": {"accuracy": {"value": i / 1000, "low": 0.0, "high": 1.0}},
            }
            for i in range(rows)
        ],
        {"best_model": f"m-{rows - 1:03d}", "metric": "accuracy"},
        bootstrap=0,
        seed=0,
        confidence=0.95,
    )
    ws = Workspace(root)
    try:
        with ws.record("models compare", {"split": comparison.split}) as run:
            run.report("comparison", comparison.to_dict())
    finally:
        ws.close()
    return root


@contextlib.contextmanager
def ui_process(root: Path, *args: str) -> Iterator[str]:
    """``mlplan ui`` as a real process on a free 127.0.0.1 port, yielded with its base URL
    once it accepts connections; stopped at the end."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLPLAN_STORE_URL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlplan", "ui", "--port", str(port), "--project", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None:
                    assert process.stdout is not None
                    pytest.fail("mlplan ui exited:\n" + process.stdout.read())
                assert time.monotonic() < deadline, "mlplan ui never listened"
                threading.Event().wait(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
