from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import edit_plan, evaluated, register_split_train, write_churn_project
from tests.monitoring.conftest import DAY, traffic

from mlplan.modeling import Comparison
from mlplan.monitoring import check_alerts, monitor
from mlplan.serving import deploy
from mlplan.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "ui-screenshots"


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
