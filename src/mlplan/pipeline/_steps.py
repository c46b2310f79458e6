"""The plan's stages as pipeline steps: what each step reads (the inputs its key is made
from: content hashes, the plan sections it follows) and what it does, through the same library
calls the CLI makes (the heavy stages imported when their step runs: a cached rerun reads
only hashes and the store). A step's outputs are plain JSON, what the steps after it read."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mlplan.core import LOWER_IS_BETTER
from mlplan.data import (
    content_hash,
    detect_format,
    find_by_hash,
    get_dataset,
    register_dataset,
    split_dataset,
)
from mlplan.errors import CheckFailedError, DataError, DeploymentNotFoundError, UsageError
from mlplan.modeling import get_model
from mlplan.store import RunRecord
from mlplan.workspace import DEPLOY_GATE, Workspace, deployment_route, list_approvals

__all__ = ["STEPS", "Engine", "Outputs", "Step", "step_named"]

Engine = Literal["local", "ray"]
Outputs = dict[str, Any]
"""A step's result as JSON: what the steps after it read, and what a cached rerun reuses."""

PIPELINE_USER = "mlplan run"
"""Who the pipeline's rollouts are started by, when no one is named."""


@dataclass(frozen=True)
class Step:
    """One step of the pipeline: its name, the steps whose outputs it reads, what it does in
    words, the inputs its key is made from, and the work."""

    name: str
    needs: tuple[str, ...]
    does: str
    inputs: Callable[[Workspace, Mapping[str, Outputs]], dict[str, Any]]
    run: Callable[[Workspace, Mapping[str, Outputs], Engine, str], Outputs]
    predict: Callable[[Workspace, Mapping[str, Any]], Outputs | None] | None = None
    """For a dry run: the outputs the step would give from its inputs, when that is known
    without doing its work (data whose bytes a version holds already), so the steps after
    it can say whether they would be reused."""


def _dump(section: Any) -> Any:
    return section.model_dump(mode="json")


_READ_FIELDS = (
    "format", "delimiter", "decimal", "id_column", "time_column", "pii_columns",
    "sensitive_attributes", "role",
)  # fmt: skip
"""What a split and training read of a dataset's plan entry: how its file is read, the ids and
times never compared nor used, personal and sensitive columns. Its provenance (source, owner,
description ...) changes nothing they make."""


def _read_fields(ws: Workspace) -> dict[str, Any] | None:
    spec = ws.plan.datasets.get(_dataset_name(ws))
    if spec is None:
        return None
    dumped = _dump(spec)
    return {name: dumped.get(name) for name in _READ_FIELDS}


def _dataset_name(ws: Workspace) -> str:
    plan = ws.plan
    if plan.pipeline.dataset is not None:
        return plan.pipeline.dataset
    if not plan.datasets:
        raise UsageError(
            "the plan has no datasets for the pipeline to train on; add one under "
            "'datasets:' (with its path), or register one: mlplan data add NAME PATH"
        )
    return next(iter(plan.datasets))


# -- data: register what the plan's paths hold now ----------------------------------------------


def _data_inputs(ws: Workspace, done: Mapping[str, Outputs]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, spec in ws.plan.datasets.items():
        if spec.path is None:  # registered by hand only: the newest version is the input
            try:
                info = get_dataset(ws, name)
            except DataError:
                continue
            found[name] = {"version": info.ref, "sha256": info.content_hash}
            continue
        path = ws.resolve(spec.path)
        if not path.exists():
            raise DataError(
                f"datasets.{name}.path of the plan is {spec.path!r}, and {path} does not "
                "exist; put the data there or correct the path"
            )
        digest = content_hash(path, detect_format(path, spec.format))
        found[name] = {"path": spec.path, "sha256": digest.sha256, "spec": _dump(spec)}
    return {"datasets": found}


def _data_run(ws: Workspace, done: Mapping[str, Outputs], engine: Engine, by: str) -> Outputs:
    versions: dict[str, str] = {}
    created: list[str] = []
    for name, spec in ws.plan.datasets.items():
        if spec.path is None:
            try:
                versions[name] = get_dataset(ws, name).ref
            except DataError:
                continue
            continue
        path = ws.resolve(spec.path)
        fmt = detect_format(path, spec.format)
        # Ray profiles files it can read in parts; JSONL and image folders stay local.
        where = engine if fmt in {"csv", "parquet"} else "local"
        result = register_dataset(ws, name, engine=where)
        versions[name] = result.version.ref
        if result.created:
            created.append(result.version.ref)
    return {"versions": versions, "created": created}


def _data_predict(ws: Workspace, inputs: Mapping[str, Any]) -> Outputs | None:
    """The versions registering would give, when every file's bytes are a version already."""
    versions: dict[str, str] = {}
    for name, found in inputs["datasets"].items():
        if "version" in found:
            versions[name] = found["version"]
            continue
        existing = find_by_hash(ws, name, found["sha256"])
        if existing is None:
            return None
        versions[name] = existing.ref
    return {"versions": versions, "created": []}


# -- split ----------------------------------------------------------------------------------------


def _split_parameters(ws: Workspace) -> dict[str, Any]:
    plan = ws.plan
    chosen = plan.pipeline.split
    stratify = chosen.stratify
    if stratify is None and plan.task in {"binary", "multiclass"}:
        stratify = plan.target
    return {
        "test": chosen.test,
        "valid": chosen.valid,
        "stratify": stratify,
        "group": chosen.group,
        "time": chosen.time,
        "seed": plan.modeling.seed if chosen.seed is None else chosen.seed,
    }


def _split_inputs(ws: Workspace, done: Mapping[str, Outputs]) -> dict[str, Any]:
    name = _dataset_name(ws)
    ref = done["data"]["versions"].get(name)
    if ref is None:
        raise UsageError(
            f"dataset {name!r} has no version to split: give datasets.{name}.path in the "
            f"plan, or register one: mlplan data add {name} PATH"
        )
    info = get_dataset(ws, ref)
    return {
        "dataset": ref,
        "sha256": info.content_hash,
        "parameters": _split_parameters(ws),
        "target": ws.plan.target,
        "read": _read_fields(ws),  # the leakage checks read the ids, times and PII named
    }


def _split_run(ws: Workspace, done: Mapping[str, Outputs], engine: Engine, by: str) -> Outputs:
    ref = done["data"]["versions"][_dataset_name(ws)]
    info = split_dataset(ws, ref, **_split_parameters(ws))
    return {"split": info.ref, "sha256": info.artifact_sha256, "passed": info.passed}


# -- train and compare ----------------------------------------------------------------------------


def _train_inputs(ws: Workspace, done: Mapping[str, Outputs]) -> dict[str, Any]:
    plan = ws.plan
    split = done["split"]
    return {
        "split": split["split"],
        "sha256": split["sha256"],
        "task": plan.task,
        "target": plan.target,
        "positive_class": plan.positive_class,
        "modeling": _dump(plan.modeling),
        "dataset": _read_fields(ws),
        "primary": plan.metrics.primary,  # what tuning optimises
        # The derived features' expressions, in order (their description changes nothing).
        "features": [[name, entry.expr] for name, entry in plan.features.items()],
    }


def _train_run(ws: Workspace, done: Mapping[str, Outputs], engine: Engine, by: str) -> Outputs:
    from mlplan.modeling import train_models

    models = train_models(ws, split=done["split"]["split"], engine=engine)
    return {"models": [{"ref": m.ref, "sha256": m.package_sha256} for m in models]}


# -- labels ----------------------------------------------------------------------------------------


def _trained_on(ws: Workspace, done: Mapping[str, Outputs]) -> str | None:
    found = done["data"]["versions"].get(_dataset_name(ws))
    return None if found is None else str(found)


def _labels_inputs(ws: Workspace, done: Mapping[str, Outputs]) -> dict[str, Any]:
    from mlplan.labels import label_count, list_batches

    plan = ws.plan
    ref = _trained_on(ws, done)
    chosen = plan.pipeline.labels
    if chosen is None or ref is None:
        return {"round": None}
    return {
        "dataset": ref,
        "round": _dump(chosen),
        "labels": _dump(plan.labels),
        "batches": [b.number for b in list_batches(ws) if b.dataset == ref],
        "labeled": label_count(ws, ref),  # labels that came back: measured again
    }


def _labels_run(ws: Workspace, done: Mapping[str, Outputs], engine: Engine, by: str) -> Outputs:
    from mlplan.labels import (
        export_batch,
        label_count,
        list_batches,
        measure_agreement,
        measure_hlp,
    )

    plan = ws.plan
    ref = _trained_on(ws, done)
    chosen = plan.pipeline.labels
    if chosen is None or ref is None:
        return {"round": None, "note": "no labeling round (pipeline.labels)"}
    batches = [b.number for b in list_batches(ws) if b.dataset == ref]
    exported = None
    if not batches:
        seed = plan.modeling.seed if chosen.seed is None else chosen.seed
        batch = export_batch(ws, ref, n=chosen.n, overlap=chosen.overlap, seed=seed)
        exported = batch.number
        batches = [batch.number]
    labeled = label_count(ws, ref)
    measured, hlp = False, None
    if labeled:
        measure_agreement(ws, ref)
        measured = True
        try:
            measure_hlp(ws, ref)
            hlp = "measured"
        except UsageError as exc:  # too few items labeled twice yet: said, not failed
            hlp = str(exc)
    return {
        "round": ref,
        "batches": batches,
        "exported": exported,
        "labeled": labeled,
        "measured": measured,
        "hlp": hlp,
    }


def _compare_inputs(ws: Workspace, done: Mapping[str, Outputs]) -> dict[str, Any]:
    plan = ws.plan
    return {
        "split": done["split"]["split"],
        "models": done["train"]["models"],
        "labels": done["labels"],  # HLP measured on new labels: the bar moves
        "metrics": _dump(plan.metrics),
        "baselines": _dump(plan.baselines),
        "bootstrap": plan.evaluation.bootstrap,
    }


def _compare_run(ws: Workspace, done: Mapping[str, Outputs], engine: Engine, by: str) -> Outputs:
    from mlplan.modeling import compare_models

    comparison = compare_models(ws, split=done["split"]["split"])
    # The comparison measures each name's newest package version (one evaluate may have
    # derived, with its threshold): that version is the one reported and evaluated.
    names = [m["ref"].split("@")[0] for m in done["train"]["models"]]
    trained = {name: get_model(ws, name).ref for name in names}
    primary = comparison.primary
    rows = [r for r in comparison.rows if r["kind"] == "model" and r["name"] in trained]
    if not rows:
        raise UsageError(
            f"the comparison of {comparison.split} has none of the models just trained "
            f"({', '.join(trained)})"
        )
    pick = min if primary in LOWER_IS_BETTER else max
    worst = float("inf") if pick is min else float("-inf")

    def score(row: Mapping[str, Any]) -> float:
        value = row["metrics"].get(primary, {}).get("value")
        return worst if value is None else float(value)

    best = pick(rows, key=score)
    return {
        "best": trained[best["name"]],
        "metric": primary,
        "value": best["metrics"].get(primary, {}).get("value"),
        "ranked": [
            {"model": trained[r["name"]], "value": r["metrics"].get(primary, {}).get("value")}
            for r in sorted(rows, key=score, reverse=pick is max)
        ],
    }


# -- evaluate, gates, deploy ----------------------------------------------------------------------


def _evaluate_inputs(ws: Workspace, done: Mapping[str, Outputs]) -> dict[str, Any]:
    plan = ws.plan
    best = done["compare"]["best"]
    sha256 = get_model(ws, best).package_sha256
    return {
        "model": best,
        "sha256": sha256,
        "deployed": _held_against(ws, best, sha256),
        "metrics": _dump(plan.metrics),
        "slices": [_dump(s) for s in plan.slices],
        "risks": None if plan.risks is None else [_dump(r) for r in plan.risks],
        "gates": _dump(plan.gates),
        "evaluation": _dump(plan.evaluation),
    }


def _evaluate_run(ws: Workspace, done: Mapping[str, Outputs], engine: Engine, by: str) -> Outputs:
    from mlplan.evaluation import evaluate  # heavy: only when the step runs

    evaluation = evaluate(
        ws, done["compare"]["best"], engine=engine, deployment=ws.plan.pipeline.deployment
    )
    failed = [g["id"] for g in evaluation.report.get("gates", []) if g.get("state") == "fail"]
    package = evaluation.report.get("package") or {}
    return {
        "model": package.get("ref") or get_model(ws, evaluation.model).ref,
        "passed": evaluation.passed,
        "failed_gates": failed,
        "production": _against_production(evaluation.report),
    }


def _against_production(report: Mapping[str, Any]) -> dict[str, Any]:
    """The evaluation's comparison with the model in production, per slice value: whether
    there was one, with which model, and the slice values where the candidate is
    significantly worse."""
    compared = [
        found
        for found in (report.get("regressions") or {}).values()
        if found.get("against") == "production" and found.get("rows") is not None
    ]
    worse = [
        f"{row['slice']}={row['value']} ({found['metric']} {row['difference']:+.3f})"
        for found in compared
        for row in found["rows"]
        if row.get("regression")
    ]
    return {
        "compared": bool(compared),
        "model": compared[0].get("name") if compared else None,
        "worse": worse,
    }


def _held_against(ws: Workspace, candidate: str, sha256: str) -> str | None:
    """The model the candidate is held against, per slice value: the one the pipeline's
    deployment serves now. Once the candidate itself (a package version of it) is deployed,
    the model it was held against when it was evaluated, so that its own rollout does not
    make its evaluation stale."""
    try:
        deployed = deployment_route(ws, ws.plan.pipeline.deployment).model
    except DeploymentNotFoundError:
        return None
    if deployed.split("@")[0] != candidate.split("@")[0]:
        return deployed
    with ws.store.transaction() as session:
        for run in session.scalars(
            ws.select(RunRecord)
            .where(RunRecord.job == "pipeline evaluate", RunRecord.status == "completed")
            .order_by(RunRecord.started_at.desc())
        ):
            held = run.parameters.get("inputs") or {}
            if held.get("model") == candidate and held.get("sha256") == sha256:
                found = held.get("deployed")
                return None if found is None else str(found)
    return None


def _approvals_of(ws: Workspace, model: str) -> list[int]:
    """The deploy approvals that name ``model`` and still count."""
    return sorted(a.id for a in list_approvals(ws, DEPLOY_GATE) if a.subject == model)


def _gates_inputs(ws: Workspace, done: Mapping[str, Outputs]) -> dict[str, Any]:
    model = done["evaluate"]["model"]
    return {
        "model": model,
        "passed": done["evaluate"]["passed"],
        "production": done["evaluate"].get("production"),
        "approvals": _approvals_of(ws, model),
    }


def _gates_run(ws: Workspace, done: Mapping[str, Outputs], engine: Engine, by: str) -> Outputs:
    from mlplan.serving import clearance  # heavy: only when the step runs

    model = done["evaluate"]["model"]
    cleared = clearance(ws, model)
    if not cleared.allowed:
        raise CheckFailedError(
            f"{model} may not ship: {cleared.reason}; then mlplan run resumes here"
        )
    approval = cleared.approval
    production = done["evaluate"].get("production") or {}
    worse = production.get("worse") or []
    approvals = _approvals_of(ws, model)
    if worse and not approvals:
        rule = ws.plan.approval_for(DEPLOY_GATE)
        role = rule.role if rule is not None else "ROLE"
        evaluation = f" --evaluation {cleared.evaluation}" if cleared.evaluation else ""
        raise CheckFailedError(
            f"{model} is significantly worse than {production.get('model')} (in "
            f"{ws.plan.pipeline.deployment}) on {'; '.join(worse)}: the pipeline never ships "
            f"a regression. If it is acceptable: mlplan approve {DEPLOY_GATE} --role {role} "
            f"--by NAME --subject {model}{evaluation} --note WHY; then mlplan run resumes here"
        )
    if worse:
        approval = {"id": approvals[-1]}
    return {
        "model": model,
        "cleared_by": "gates" if approval is None else f"approval {approval.get('id')}",
        "production": production.get("model"),
        "worse_than_production": worse,
    }


def _deploy_inputs(ws: Workspace, done: Mapping[str, Outputs]) -> dict[str, Any]:
    plan = ws.plan
    model = done["gates"]["model"]
    return {
        "model": model,
        "sha256": get_model(ws, model).package_sha256,
        "deployment": plan.pipeline.deployment,
        "strategy": plan.pipeline.strategy or plan.rollout_strategy,
        "rollout": _dump(plan.rollout),
    }


def _deploy_run(ws: Workspace, done: Mapping[str, Outputs], engine: Engine, by: str) -> Outputs:
    model = done["gates"]["model"]
    name = ws.plan.pipeline.deployment
    try:
        route = deployment_route(ws, name)
    except DeploymentNotFoundError:
        route = None
    if route is not None and route.model == model:
        return {"deployment": name, "model": model, "action": f"{name} serves {model} already"}
    if route is not None and route.candidate == model:
        return {
            "deployment": name,
            "model": model,
            "action": f"{model} is rolling out to {name} already ({route.strategy})",
        }
    from mlplan.rollout import start_rollout  # heavy: only when the step runs

    # Never straight into production: a deployment with a model gets the pipeline's
    # strategy (else the plan's); only an empty one takes its first model at once.
    strategy = None if route is None else ws.plan.pipeline.strategy
    _deployment, rollout = start_rollout(
        ws,
        model,
        name=name,
        strategy=strategy,
        by=by,
        note="mlplan run: the pipeline's candidate passed its gates",
    )
    return {
        "deployment": name,
        "model": model,
        "rollout": rollout.id,
        "strategy": rollout.strategy,
        "state": rollout.state,
        "action": (
            f"{model} put in {name}"
            if rollout.strategy == "replace"
            else f"{rollout.strategy} rollout of {model} to {name} started"
        ),
    }


STEPS: tuple[Step, ...] = (
    Step(
        "data",
        (),
        "register new versions of the plan's datasets",
        _data_inputs,
        _data_run,
        _data_predict,
    ),
    Step("split", ("data",), "split the dataset it trains on", _split_inputs, _split_run),
    Step("train", ("split",), "train the plan's families", _train_inputs, _train_run),
    Step(
        "labels",
        ("data",),
        "a labeling round per new data version; measure what came back",
        _labels_inputs,
        _labels_run,
    ),
    Step(
        "compare",
        ("train", "labels"),
        "compare them (and HLP); pick the best",
        _compare_inputs,
        _compare_run,
    ),
    Step("evaluate", ("compare",), "evaluate the best", _evaluate_inputs, _evaluate_run),
    Step("gates", ("evaluate",), "its gates, or an approval", _gates_inputs, _gates_run),
    Step("deploy", ("gates",), "roll it out by the plan", _deploy_inputs, _deploy_run),
)
"""Every step, in an order that runs each after the steps it needs."""


def step_named(name: str) -> Step:
    """The step called ``name``.

    Raises
    ------
    UsageError
        No such step; the message lists them.
    """
    for step in STEPS:
        if step.name == name:
            return step
    raise UsageError(f"no pipeline step {name!r}; the steps: {', '.join(s.name for s in STEPS)}")
