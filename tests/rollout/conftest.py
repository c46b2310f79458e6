from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import evaluated, register_split_train, write_churn_project
from tests.serving.conftest import started

from mlplan.modeling import train_model
from mlplan.rollout import move_rollout, rollout_routes, start_rollout
from mlplan.serving import PredictionLog, ServeConfig, create_app
from mlplan.workspace import Workspace, get_deployment


@pytest.fixture(scope="session")
def _live_made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``live`` project, made once per test session: training and evaluating three
    models is most of a rollout test's time, so each test gets a copy."""
    root = write_churn_project(tmp_path_factory.mktemp("live"))
    ws = Workspace(root)
    try:
        register_split_train(ws)
        start_rollout(ws, evaluated(ws), by="Priya")
        train_model(ws, family="logistic", seed=2)
        evaluated(ws, "logistic-2")
        train_model(ws, family="logistic", seed=3)
    finally:
        ws.close()
    return root


@pytest.fixture
def live(_live_made: Path, project_dir: Path) -> Iterator[Workspace]:
    """A churn project (a copy, in ``project_dir``, where the ``cli`` fixture runs) whose
    production deployment serves logistic-1 (its first model: a replace), with logistic-2
    trained and cleared to ship, and logistic-3 trained only."""
    shutil.copytree(_live_made, project_dir, dirs_exist_ok=True)
    ws = Workspace(project_dir)
    yield ws
    ws.close()


@pytest.fixture
def server(live: Workspace) -> Iterator[TestClient]:
    """The real app serving ``live``'s production deployment, with the rollout routes,
    reading its rollout every 50 ms, under a test client."""
    config = ServeConfig(
        root=str(live.root),
        model=get_deployment(live).model_ref,
        deployment="production",
        key_refresh_seconds=0,
        route_refresh_seconds=0.05,
    )
    with started(create_app(config, rollout_routes())) as client:
        assert client.app.state.mlplan.ready  # type: ignore[attr-defined]
        yield client


def canary_at_first_step(ws: Workspace) -> None:
    """logistic-2 as a canary of production, at its first step (5 %, 100 requests)."""
    start_rollout(ws, "logistic-2", strategy="canary", by="Ana")
    move_rollout(ws, "production", "start", actor_kind="controller", by="controller")
    move_rollout(ws, "production", "advance", actor_kind="controller", by="controller")


@pytest.fixture
def logs(live: Workspace) -> Iterator[PredictionLog]:
    """A writer of the live project's prediction log (logistic-1's folder)."""
    with PredictionLog(live.root / ".mlplan" / "predictions" / "logistic-1") as log:
        yield log
