"""``--tune N``: a seeded search on the validation split; ``--engine ray``: families and trials
in parallel on a real local Ray cluster, with the same results as in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.modeling.conftest import sequence_workspace

from mlplan.data import register_dataset, split_dataset
from mlplan.errors import ParameterError, UsageError
from mlplan.modeling import SEARCH_SPACES, list_models, train_model, train_models
from mlplan.workspace import Workspace


@pytest.fixture
def split_ws(sqlite_ws: Workspace) -> Workspace:
    register_dataset(sqlite_ws, "customers")
    split_dataset(sqlite_ws, "customers", stratify="churned", seed=1)
    return sqlite_ws


def test_tuning_is_seeded_and_recorded(split_ws: Workspace) -> None:
    model = train_model(split_ws, family="gbt", tune=6)
    tuning = model.parameters["tuning"]
    # The plan's primary metric (ROC AUC), higher is better.
    assert tuning["metric"] == "roc_auc" and tuning["split"] == "valid"
    assert len(tuning["trials"]) == 6
    assert set(tuning["trials"][0]["params"]) == set(SEARCH_SPACES["gbt"])
    best = tuning["trials"][tuning["best_trial"]]
    assert best["roc_auc"] == max(t["roc_auc"] for t in tuning["trials"])
    # The model is trained with the best trial's hyperparameters.
    assert {k: model.parameters[k] for k in best["params"]} == best["params"]
    again = train_model(split_ws, family="gbt", tune=6)
    assert again.parameters["tuning"]["trials"] == tuning["trials"]
    assert again.metrics == model.metrics


def test_fixed_hyperparameters_are_not_searched(split_ws: Workspace) -> None:
    model = train_model(split_ws, family="gbt", tune=2, params={"num_leaves": 7})
    for trial in model.parameters["tuning"]["trials"]:
        assert "num_leaves" not in trial["params"]
    assert model.parameters["num_leaves"] == 7


@pytest.mark.slow
def test_ray_runs_families_and_trials_like_the_local_engine(
    split_ws: Workspace, ray_cluster: Any
) -> None:
    on_ray = train_models(split_ws, families=["logistic", "gbt"], tune=4, engine="ray")
    local = train_models(split_ws, families=["logistic", "gbt"], tune=4, engine="local")
    assert [m.name for m in on_ray] == ["logistic-1", "gbt-1"]
    for a, b in zip(on_ray, local, strict=True):
        assert a.parameters["tuning"]["trials"] == b.parameters["tuning"]["trials"]
        assert a.metrics == b.metrics and a.parity["passed"]
    assert [m.name for m in list_models(split_ws)] == [
        "logistic-1",
        "gbt-1",
        "logistic-2",
        "gbt-2",
    ]


@pytest.mark.slow
def test_a_misspelt_hyperparameter_is_refused_before_any_worker_starts(
    split_ws: Workspace,
) -> None:
    with pytest.raises(ParameterError, match=r"logistic takes no hyperparameter 'Cee'"):
        train_models(split_ws, families=["logistic"], engine="ray", params={"Cee": 2.0})
    assert list_models(split_ws) == []


def test_an_error_on_a_ray_worker_is_the_users_error(tmp_path: Path, ray_cluster: Any) -> None:
    pytest.importorskip("torch", reason="the torch extra is part of make test")
    # A value only the network checks fails on the worker; the error comes back as it was
    # raised, and nothing is registered.
    ws = sequence_workspace(tmp_path, f"sqlite:///{tmp_path / 'store.db'}", target="load")
    try:
        with pytest.raises(UsageError, match=r"rnn cell 'xyz': use gru or lstm"):
            train_models(ws, families=["rnn"], engine="ray", params={"cell": "xyz"})
        assert list_models(ws) == []
    finally:
        ws.close()
