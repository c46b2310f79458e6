"""Training on a split and registering each model with its package.

The driver prepares the split once (features, windows or images), runs one job per family —
tuned first when asked — in this process or on Ray, then profiles and registers each package
in one transaction per model. A package whose outputs differ from the trained model's is not
registered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import func, select

from mlplan.data import DatasetVersionInfo, SplitInfo, get_split, load_split, version_record
from mlplan.errors import DataError, ModelNotFoundError, UsageError
from mlplan.modeling._compute import profile_package
from mlplan.modeling._deep import backbone_input
from mlplan.modeling._engine import Engine, run_jobs
from mlplan.modeling._features import FeatureSet
from mlplan.modeling._fit import Job, JobResult, check_family
from mlplan.modeling._inputs import (
    TrainingData,
    example_rows,
    input_kind,
    inputs_for,
    tabular_spec,
    target_column,
    target_kind,
    target_values,
    window_spec,
)
from mlplan.modeling._signature import PackageSignature, SignatureInput
from mlplan.modeling._tabular import tabular_signature, window_signature
from mlplan.modeling._tune import tune as tune_family
from mlplan.store import (
    ArtifactStore,
    DatasetRecord,
    DatasetVersionRecord,
    ModelRecord,
    SplitRecord,
)
from mlplan.workspace import Workspace

__all__ = [
    "BASELINE_FAMILY",
    "DEFAULT_FAMILIES",
    "Family",
    "ModelInfo",
    "get_model",
    "list_models",
    "train_model",
    "train_models",
]

Family = Literal["linear", "logistic", "gbt", "cnn", "rnn"]
# The quick-and-dirty family per task, and the families a task should try at least.
BASELINE_FAMILY: dict[str, Family] = {
    "regression": "linear",
    "binary": "logistic",
    "multiclass": "logistic",
    "image_classification": "cnn",
    "sequence": "gbt",
}
DEFAULT_FAMILIES: dict[str, list[Family]] = {
    "regression": ["linear", "gbt"],
    "binary": ["logistic", "gbt"],
    "multiclass": ["logistic", "gbt"],
    "image_classification": ["cnn"],
    "sequence": ["gbt", "rnn"],
}


@dataclass(frozen=True)
class ModelInfo:
    """A registered model."""

    name: str
    family: str
    task: str
    baseline: bool
    split: str
    parameters: dict[str, Any]
    features: dict[str, Any]
    metrics: dict[str, Any]
    package: dict[str, Any]
    parity: dict[str, Any]
    seconds: float
    run_id: str
    compute: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return dict(self.__dict__)


def _prepare(
    ws: Workspace, split_info: SplitInfo
) -> tuple[DatasetVersionInfo, pa.Table, TrainingData]:
    """Load a split and prepare what every family of the task trains on.

    Raises
    ------
    DataError
        A missing or constant target, one class only, no usable input, too little history.
    """
    plan = ws.plan
    info, table, codes = load_split(ws, split_info)
    target = target_column(ws, info)
    if target not in table.column_names:
        raise DataError(f"{info.ref} has no target column {target!r} to learn")
    column = table.column(target)
    kind = "classification" if info.format == "images" else target_kind(plan.task, column)
    if plan.task == "regression" and not (
        pa.types.is_floating(column.type) or pa.types.is_integer(column.type)
    ):
        raise DataError(
            f"a regression task needs a numeric target; {target!r} holds {column.type} values. "
            "Set task: binary or multiclass, or name a numeric target"
        )
    known = ~np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False))
    y_all = target_values(column, kind)
    backbone = None
    which = input_kind(ws, info)
    if which == "image":
        modeling = plan.modeling
        backbone_spec, backbone = backbone_input(
            modeling.backbone,
            ws.root,
            size=modeling.image_size,
            mean=modeling.image_mean,
            std=modeling.image_std,
        )
        spec: dict[str, Any] = {
            "kind": "image",
            "channels": backbone_spec["channels"],
            "height": backbone_spec["height"],
            "width": backbone_spec["width"],
            "backbone": backbone_spec,
            "fine_tune": modeling.fine_tune,
            "numeric": [],
            "categorical": [],
            "excluded": {},
        }
    elif which == "window":
        spec = window_spec(ws, info, table, target, kind)
    else:
        spec = tabular_spec(ws, info)
    rows = example_rows(spec, table, codes, known)
    if not rows["train"].size:
        raise DataError(f"{split_info.ref} has no training rows with a known {target!r}")
    classes: list[str] = []
    if kind == "classification":
        classes = sorted({str(v) for v in y_all[rows["train"]]})
        if len(classes) < 2:
            raise DataError(
                f"the target {target!r} has one class in the training split "
                f"({', '.join(classes)}); a classifier needs at least two"
            )
    elif np.nanstd(y_all[rows["train"]]) == 0:
        raise DataError(f"the target {target!r} is constant in the training split")
    data = TrainingData(
        task=plan.task,
        kind=kind,
        spec=spec,
        x={name: inputs_for(ws, info, table, spec, index) for name, index in rows.items()},
        y={name: y_all[index] for name, index in rows.items()},
        rows=rows,
        classes=classes,
        backbone=backbone,
    )
    return info, table, data


def _tuning_metric(ws: Workspace, kind: str) -> str:
    primary = ws.plan.metrics.primary_metric
    computed = (
        {"mae", "rmse", "r2"}
        if kind == "regression"
        else {"accuracy", "macro_f1", "roc_auc", "pr_auc", "log_loss"}
    )
    if primary is not None and primary.name in computed:
        return primary.name
    return "rmse" if kind == "regression" else "log_loss"


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
    UsageError
        A family that does not fit the task, or whose extra is missing.
    DataError
        A missing or constant target, no usable feature, a package that fails parity.
    """
    if family is None and not baseline:
        raise UsageError(
            "give --family linear|logistic|gbt|cnn|rnn, or --baseline for the task's "
            "quick-and-dirty family"
        )
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
    UsageError, DataError
        As :func:`train_model`; nothing is registered when any family fails.
    """
    plan = ws.plan
    task = plan.task
    if families is None:
        families = (
            [BASELINE_FAMILY[task]]
            if baseline
            else list(plan.modeling.families or DEFAULT_FAMILIES[task])
        )
    seed = plan.modeling.seed if seed is None else seed
    trials = plan.modeling.tune_trials if tune is None else tune
    split_info = get_split(ws, split)
    info, table, data = _prepare(ws, split_info)
    for family in families:
        check_family(family, data.spec["kind"], data.kind, task)
    metric = _tuning_metric(ws, data.kind)
    jobs: list[Job] = []
    tuning: dict[str, dict[str, Any]] = {}
    for family in families:
        frozen = baseline or (family == "cnn" and data.spec.get("fine_tune") == "head")
        fixed = {**plan.modeling.hyperparameters.get(family, {}), **(params or {})}
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
            )
        jobs.append(Job(family, seed, fixed, frozen=frozen))
    results = run_jobs(data, jobs, engine)
    return [
        _register(
            ws, split_info, info, table, data, result, baseline, tuning.get(result.job.family)
        )
        for result in results
    ]


def _signature(data: TrainingData, table: pa.Table, info: DatasetVersionInfo) -> PackageSignature:
    spec = data.spec
    if spec["kind"] == "image":
        image = SignatureInput(
            "image",
            "image",
            shape=(None, spec["channels"], spec["height"], spec["width"]),
            dtype="float32",
            range=(0, 255),
            mode="L" if spec["channels"] == 1 else "RGB",
        )
        return PackageSignature(
            (image,),
            preprocessing=(
                f"convert to {'grey' if spec['channels'] == 1 else 'RGB'}, resize to "
                f"{spec['width']}x{spec['height']} (bilinear), pixels 0-255 as float32, "
                "channels first; scaling and normalisation are in the graph"
            ),
        )
    if spec["kind"] == "window":
        return window_signature(spec, data.x["train"])
    features = FeatureSet(spec["numeric"], spec["categorical"], {})
    return tabular_signature(table, features, data.rows["train"], info.profile["columns"])


def _register(
    ws: Workspace,
    split_info: SplitInfo,
    info: DatasetVersionInfo,
    table: pa.Table,
    data: TrainingData,
    result: JobResult,
    baseline: bool,
    tuning: dict[str, Any] | None,
) -> ModelInfo:
    plan = ws.plan
    task = plan.task
    family = result.job.family
    assert result.graph is not None
    check = "test" if len(data.y["test"]) else "train"
    batch = data.feeds(check)
    compute = profile_package(result.graph, {k: v[:1] for k, v in batch.items()}, batch)
    signature = _signature(data, table, info)
    target = target_column(ws, info)
    seed = result.job.seed
    params = dict(result.params)
    # The quick-and-dirty family as it comes: untuned, and for images, a frozen backbone.
    is_baseline = baseline or (
        family == BASELINE_FAMILY[task] and not tuning and (family != "cnn" or result.job.frozen)
    )
    metadata = {
        "task": task,
        "kind": data.kind,
        "family": family,
        "target": target,
        "classes": data.classes,
        "threshold": 0.5 if len(data.classes) == 2 else None,
        "metrics": result.scores,
        "dataset": info.ref,
        "split": split_info.ref,
        "input": data.spec["kind"],
    }
    artifacts = ws.store.artifacts
    parameters = {
        "family": family,
        "baseline": is_baseline,
        "seed": seed,
        "params": params,
        "split": split_info.ref,
        "tuning": tuning,
    }
    with artifacts.staged(), ws.record("train", parameters) as run:
        session = run.session
        project_id, version = version_record(session, ws, info)
        count = (
            session.scalar(
                select(func.count())
                .select_from(ModelRecord)
                .where(ModelRecord.project_id == project_id, ModelRecord.family == family)
            )
            or 0
        )
        name = f"{family}-{count + 1}"
        run.input("split", split_info.ref, sha256=split_info.artifact_sha256)
        run.input("dataset_version", info.ref, sha256=info.content_hash)
        backbone = data.spec.get("backbone")
        if backbone and backbone.get("sha256"):
            run.input("file", backbone["name"], sha256=backbone["sha256"])
        files = {
            "model.onnx": result.graph,
            "signature.json": signature.to_json().encode(),
            "metadata.json": json.dumps(
                metadata | {"name": name, "run_id": run.id}, indent=1, default=str
            ).encode(),
            **result.native,
        }
        package = {}
        for filename, blob in files.items():
            assert blob is not None
            ref = artifacts.put_bytes(blob)
            ArtifactStore.register(
                session, ref, kind=f"model:{filename}", media_type="application/octet-stream"
            )
            package[filename] = ref.sha256
        run.output("model", name, sha256=package["model.onnx"])
        split_id = session.scalar(
            select(SplitRecord.id).where(
                SplitRecord.dataset_version_id == version.id,
                SplitRecord.number == split_info.number,
            )
        )
        record = ModelRecord(
            project_id=project_id,
            name=name,
            family=family,
            task=task,
            baseline=is_baseline,
            split_id=split_id,
            parameters={"seed": seed, **params} | ({"tuning": tuning} if tuning else {}),
            features=data.spec,
            metrics=result.scores,
            package=package,
            parity=result.parity,
            compute=compute,
            seconds=result.seconds,
            run_id=run.id,
        )
        session.add(record)
        session.flush()
        return _info(record, split_info.ref)


def _info(record: ModelRecord, split: str) -> ModelInfo:
    return ModelInfo(
        record.name,
        record.family,
        record.task,
        record.baseline,
        split,
        record.parameters,
        record.features,
        record.metrics,
        record.package,
        record.parity,
        record.seconds,
        record.run_id,
        record.compute,
    )


def list_models(ws: Workspace) -> list[ModelInfo]:
    """Every registered model, oldest first."""
    with ws.store.transaction() as session:
        rows = session.execute(
            ws.select(
                ModelRecord, DatasetRecord.name, DatasetVersionRecord.version, SplitRecord.number
            )
            .join(SplitRecord, ModelRecord.split_id == SplitRecord.id)
            .join(DatasetVersionRecord, SplitRecord.dataset_version_id == DatasetVersionRecord.id)
            .join(DatasetRecord, DatasetVersionRecord.dataset_id == DatasetRecord.id)
            .order_by(ModelRecord.created_at, ModelRecord.id)
        ).all()
        return [_info(m, f"{name}@{version}/s{number}") for m, name, version, number in rows]


def get_model(ws: Workspace, name: str) -> ModelInfo:
    """A registered model by name (e.g. ``gbt-1``).

    Raises
    ------
    ModelNotFoundError
        Listing the registered models.
    """
    models = list_models(ws)
    for model in models:
        if model.name == name:
            return model
    raise ModelNotFoundError(
        f"model {name!r} not found; known: "
        f"{', '.join(m.name for m in models) or 'none'}. Train one with: "
        "mlplan train --baseline"
    )
