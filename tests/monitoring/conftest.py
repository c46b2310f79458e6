from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import edit_plan, evaluated, register_split_train, write_churn_project

from mlplan.serving import deploy
from mlplan.workspace import Workspace


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
