from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlplan.data import register_dataset, split_dataset
from mlplan.modeling import train_model
from mlplan.serving import ROLES, ServeConfig, create_app, create_key
from mlplan.workspace import Workspace

RECORD = {"gender": "female", "age": 40, "region": "north", "charges": 61.5}


def edit_plan(ws: Workspace, old: str, new: str) -> None:
    text = ws.plan_path.read_text()
    assert old in text, old
    ws.plan_path.write_text(text.replace(old, new, 1))
    ws.__dict__.pop("plan", None)


@pytest.fixture
def served(sqlite_ws: Workspace) -> Workspace:
    """A project with the customers split and a logistic model, logistic-1."""
    edit_plan(sqlite_ws, "    id_column: null", "    id_column: customer_id")
    register_dataset(sqlite_ws, "customers")
    split_dataset(sqlite_ws, "customers", stratify="churned", seed=1)
    train_model(sqlite_ws, family="logistic")
    return sqlite_ws


@pytest.fixture
def tokens(served: Workspace) -> dict[str, str]:
    """One key per role."""
    return {role: create_key(served, f"{role}-holder", roles=[role])[1] for role in ROLES}


@pytest.fixture
def client(served: Workspace) -> Iterator[TestClient]:
    """The real ASGI app, started (model loaded) under a test client."""
    app = create_app(ServeConfig(root=str(served.root), model="logistic-1", key_refresh_seconds=0))
    with started(app) as test_client:
        yield test_client


@contextmanager
def started(app: Any) -> Iterator[TestClient]:
    """The app under a test client, once its model has loaded (ready or not)."""
    with TestClient(app) as test_client:
        assert app.state.mlplan.loaded.wait(timeout=60)
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
