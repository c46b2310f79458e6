"""Training on a split and registering each model with its package.

The driver prepares the split once (features, windows or images, ``_prepare.py``), runs one job
per family — tuned first when asked — in this process or on Ray, then profiles and registers
each package in one transaction per model (``_register.py``). A package whose outputs differ
from the trained model's is not registered.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, get_args

from mlplan.data import get_split
from mlplan.errors import ParameterError
from mlplan.modeling._engine import Engine, run_jobs
from mlplan.modeling._families import (
    BASELINE_FAMILY,
    DEFAULT_FAMILIES,
    FAMILIES,
    Family,
    check_fits,
    family_named,
)
from mlplan.modeling._fit import Job
from mlplan.modeling._inputs import TrainingData
from mlplan.modeling._models import ModelInfo
from mlplan.modeling._prepare import prepare_split
from mlplan.modeling._reference import input_reference
from mlplan.modeling._register import package_signature, register_model
from mlplan.modeling._tune import tune as tune_family
from mlplan.workspace import Workspace

__all__ = ["train_model", "train_models"]


def train_model(
    ws: Workspace,
    *,
    split: str | None = None,
    family: Family | None = None,
    baseline: bool = False,
    seed: int | None = None,
    params: dict[str, Any] | None = None,
    tune: int | None = None,
    engine: Engine = "local",
) -> ModelInfo:
    """Train a family (``baseline``: the task's quick-and-dirty one) on a split, package it as
    ONNX with its preprocessing, check parity on the test split, and register it.

    Raises
    ------
    ParameterError
        Neither a family nor ``baseline``; an unknown family, engine, or a negative ``tune``.
    UsageError
        A family that does not fit the task, or whose extra is missing.
    DataError
        A missing or constant target, no usable feature, a package that fails parity.
    CheckFailedError
        A split whose leakage checks failed (ids or groups in two splits) and were not
        accepted (``mlplan data split --accept-leakage``).
    """
    if family is None and not baseline:
        raise ParameterError(
            "family",
            f"give {{param}} ({', '.join(FAMILIES)}), or baseline=True for the task's "
            "quick-and-dirty family",
        )
    if family is not None:
        family_named(family)
    (model,) = train_models(
        ws,
        split=split,
        families=[family] if family else None,
        baseline=baseline,
        seed=seed,
        params=params,
        tune=tune,
        engine=engine,
    )
    return model


def train_models(
    ws: Workspace,
    *,
    split: str | None = None,
    families: list[Family] | None = None,
    baseline: bool = False,
    seed: int | None = None,
    params: dict[str, Any] | None = None,
    tune: int | None = None,
    engine: Engine = "local",
) -> list[ModelInfo]:
    """Train several families on one split — the given ones, the task's baseline, or else
    the plan's ``modeling.families`` (the task's defaults) — in parallel on ``engine``, each
    tuned with ``tune`` trials (default ``modeling.tune_trials``), and register each.

    Raises
    ------
    ParameterError, UsageError, DataError, CheckFailedError
        As :func:`train_model`; nothing is registered when any family fails.
    """
    for name in families or []:
        family_named(name, param="families")
    if engine not in get_args(Engine):
        raise ParameterError("engine", f"{{param}} must be local or ray; got {engine!r}")
    if tune is not None and tune < 0:
        raise ParameterError("tune", f"{{param}} must be 0 or more trials; got {tune}")
    plan = ws.plan
    task = plan.task
    if families is None:
        families = (
            [BASELINE_FAMILY[task]]
            if baseline
            else list(plan.modeling.families or DEFAULT_FAMILIES[task])
        )
    seed = plan.modeling.seed if seed is None else seed
    chosen = get_split(ws, split)
    chosen.check_usable()  # before any work: ids or groups in two splits, not accepted
    prepared = prepare_split(ws, chosen)
    data = prepared.data
    for family in families:
        check_fits(family, data.spec["kind"], data.kind, task)
    jobs, tuning = _jobs(
        ws,
        data,
        families,
        seed=seed,
        params=params or {},
        trials=plan.modeling.tune_trials if tune is None else tune,
        baseline=baseline,
        engine=engine,
    )
    # What training saw of each input, the same for every family, and its reference profile:
    # made on a second thread while the jobs fit (Arrow and NumPy, mostly without the GIL).
    with ThreadPoolExecutor(max_workers=1) as pool:
        signature = pool.submit(package_signature, prepared)
        profiled = pool.submit(input_reference, prepared)
        results = run_jobs(data, jobs, engine)
        shape, inputs = signature.result(), profiled.result()
    return [
        register_model(
            ws,
            prepared,
            result,
            baseline=baseline,
            tuning=tuning.get(result.job.family),
            signature=shape,
            inputs=inputs,
        )
        for result in results
    ]


def _jobs(
    ws: Workspace,
    data: TrainingData,
    families: list[Family],
    *,
    seed: int,
    params: dict[str, Any],
    trials: int,
    baseline: bool,
    engine: Engine,
) -> tuple[list[Job], dict[str, dict[str, Any]]]:
    """One job per family, with the plan's hyperparameters under ``params`` — tuned first
    when ``trials`` — on the plan's device, and the record of each family's search."""
    hyperparameters, device = ws.plan.modeling.hyperparameters, ws.plan.modeling.device
    metric = _tuning_metric(ws, data.kind)
    jobs: list[Job] = []
    tuning: dict[str, dict[str, Any]] = {}
    for family in families:
        # The baseline, and a pretrained backbone the plan keeps frozen, train the head only.
        frozen = baseline or (
            family_named(family).pretrained and data.spec.get("fine_tune") == "head"
        )
        spec = family_named(family)
        planned = hyperparameters.get(family, {})
        spec.check_parameters(planned, data.kind, where=f"modeling.hyperparameters.{family}")
        spec.check_parameters(params, data.kind)
        fixed = {**planned, **params}
        if trials:
            fixed, tuning[family] = tune_family(
                data,
                family,
                seed=seed,
                params=fixed,
                trials=trials,
                metric=metric,
                frozen=frozen,
                engine=engine,
                device=device,
            )
        jobs.append(Job(family, seed, fixed, frozen=frozen, device=device))
    return jobs, tuning


def _tuning_metric(ws: Workspace, kind: str) -> str:
    """The plan's primary metric where training computes it, else RMSE or log loss."""
    primary = ws.plan.metrics.primary_metric
    computed = (
        {"mae", "rmse", "r2"}
        if kind == "regression"
        else {"accuracy", "macro_f1", "roc_auc", "pr_auc", "log_loss"}
    )
    if primary is not None and primary.name in computed:
        return primary.name
    return "rmse" if kind == "regression" else "log_loss"
