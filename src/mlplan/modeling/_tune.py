"""Tuning: a seeded search (Optuna's TPE sampler) over a family's ``search_space``, scored on
the validation split. Trials are asked for in fixed batches and told in order, so the same
seed gives the same trials on one process or on a Ray cluster."""

from __future__ import annotations

from typing import Any

from mlplan._optional import require
from mlplan.core import LOWER_IS_BETTER
from mlplan.modeling._engine import Engine, run_jobs
from mlplan.modeling._families import family_named
from mlplan.modeling._fit import Job, validation_score
from mlplan.modeling._inputs import TrainingData
from mlplan.modeling._networks import Device

__all__ = ["tune"]

BATCH = 4


def _suggest(trial: Any, family: str, fixed: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, space in family_named(family).search_space.items():
        if name in fixed:
            continue
        if space[0] == "choice":
            out[name] = trial.suggest_categorical(name, space[1])
        elif space[0] == "int":
            out[name] = trial.suggest_int(name, space[1], space[2], log=space[3])
        else:
            out[name] = trial.suggest_float(name, space[1], space[2], log=space[3])
    return out


def tune(
    data: TrainingData,
    family: str,
    *,
    seed: int,
    params: dict[str, Any],
    trials: int,
    metric: str,
    frozen: bool = False,
    engine: Engine = "local",
    device: Device = "auto",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The best hyperparameters after ``trials`` trials (those in ``params`` stay fixed), each
    trained on ``device``, and the record of the search: metric, every trial's parameters and
    score, the best."""
    optuna = require("optuna", extra="models", purpose="--tune")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    record: list[dict[str, Any]] = []
    while len(record) < trials:
        asked = [study.ask() for _ in range(min(BATCH, trials - len(record)))]
        chosen = [_suggest(t, family, params) for t in asked]
        jobs = [
            Job(family, seed, params | c, frozen=frozen, export=False, device=device)
            for c in chosen
        ]
        for trial, choice, result in zip(asked, chosen, run_jobs(data, jobs, engine), strict=True):
            score = validation_score(result, metric)
            study.tell(trial, score)
            value = score if metric in LOWER_IS_BETTER else -score
            record.append({"trial": trial.number, "params": choice, metric: value})
    best = study.best_trial
    return params | dict(best.params), {
        "metric": metric,
        "split": "valid" if len(data.y.get("valid", [])) else "train",
        "trials": record,
        "best_trial": best.number,
        "seed": seed,
    }
