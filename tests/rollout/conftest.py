from __future__ import annotations

import pytest
from tests.conftest import evaluated, register_split_train

from mlplan.modeling import train_model
from mlplan.rollout import start_rollout
from mlplan.workspace import Workspace


@pytest.fixture
def live(sqlite_ws: Workspace) -> Workspace:
    """A churn project whose production deployment serves logistic-1 (its first model: a
    replace), with logistic-2 trained and cleared to ship, and logistic-3 trained only."""
    ws = register_split_train(sqlite_ws)
    start_rollout(ws, evaluated(ws), by="Priya")
    train_model(ws, family="logistic", seed=2)
    evaluated(ws, "logistic-2")
    train_model(ws, family="logistic", seed=3)
    return ws
