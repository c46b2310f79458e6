from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import edit_plan, evaluated, register_split_train, write_churn_project

from mlplan.modeling import get_model
from mlplan.serving import PredictionLog, deploy, log_folder
from mlplan.workspace import Workspace

DAY = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
"""The day the tests' logged traffic happens."""


@pytest.fixture(scope="session")
def _watched_made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``watched`` project, made once per test session (training and evaluating is most
    of a test's time, so each test gets a copy)."""
    root = write_churn_project(tmp_path_factory.mktemp("watched"))
    ws = Workspace(root)
    try:
        edit_plan(ws, "slices: []", "slices: [{name: region, columns: [region]}]")
        register_split_train(ws)
        deploy(ws, evaluated(ws), by="Priya")
    finally:
        ws.close()
    return root


@pytest.fixture
def watched(_watched_made: Path, project_dir: Path) -> Iterator[Workspace]:
    """A churn project (a copy, in ``project_dir``, where the ``cli`` fixture runs) with a
    ``region`` slice, whose production deployment serves logistic-1."""
    shutil.copytree(_watched_made, project_dir, dirs_exist_ok=True)
    ws = Workspace(project_dir)
    yield ws
    ws.close()


def traffic(ws: Workspace, start: dt.datetime = DAY + dt.timedelta(hours=10)) -> None:
    """40 answers for production from ``start`` a minute apart, a tenth failing (status 500,
    no output), every other one from the north region."""
    times = iter(start + dt.timedelta(minutes=i) for i in range(100))
    version = get_model(ws, "logistic-1").package_sha256[:12]
    with PredictionLog(log_folder(ws, "logistic-1"), clock=lambda: next(times)) as log:
        for i in range(40):
            done = log.record(
                kind="prediction",
                request_id=f"{i:032x}",
                model="logistic-1",
                version=version,
                route="/v1/predict",
                status=500 if i % 10 == 0 else 200,
                latency_ms=2.0 + i,
                inputs=[{"region": ("north", "south")[i % 2], "age": 30 + i}],
                outputs=None
                if i % 10 == 0
                else [{"label": "1", "probabilities": {"0": 0.3, "1": 0.7}}],
                deployment="production",
            )
            assert done is not None
            done.result(timeout=30)
