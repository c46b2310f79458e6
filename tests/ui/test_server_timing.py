"""Each answer of the dashboard says how long the server took (``Server-Timing``), which
benchmarks/bench_ui.py reads as a page's server time."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.testclient import TestClient
from tests.conftest import write_churn_project

from mlplan.ui import UiConfig, create_app


def test_every_answer_carries_the_servers_time_to_it(tmp_path: Path) -> None:
    app = create_app(UiConfig(write_churn_project(tmp_path)))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for path, status in (("/", 200), ("/static/ui.css", 200), ("/no-such-page", 404)):
            answer = client.get(path)
            assert answer.status_code == status
            found = re.fullmatch(r"app;dur=(\d+\.\d)", answer.headers["server-timing"])
            assert found is not None, answer.headers["server-timing"]
            assert 0 <= float(found.group(1)) < 60_000
