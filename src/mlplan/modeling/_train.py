"""Training tabular families on a split and packaging each model for serving.

A model is a scikit-learn pipeline — imputation, scaling and one-hot encoding derived from
the profile, then the family's estimator — exported to ONNX with its preprocessing inside.
The export is checked for parity on the test split; a package that fails is not registered.
"""

from __future__ import annotations

import io
import json
import pickle
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mlplan._optional import require
from mlplan.data import get_split, load_split, version_record
from mlplan.errors import DataError, NotFoundError, UsageError
from mlplan.modeling._compute import profile_package
from mlplan.modeling._features import FeatureSet, select_features
from mlplan.store import (
    ArtifactStore,
    Dataset,
    DatasetVersion,
    Model,
    Project,
    RunRecorder,
    Split,
)
from mlplan.workspace import Workspace

__all__ = [
    "BASELINE_FAMILY",
    "DEFAULT_FAMILIES",
    "Family",
    "ModelInfo",
    "build_pipeline",
    "export_onnx",
    "feature_frame",
    "get_model",
    "list_models",
    "onnx_feeds",
    "score_predictions",
    "train_model",
]

Family = Literal["linear", "logistic", "gbt", "cnn", "rnn"]
MISSING_CATEGORY = "(missing)"
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
PARITY_TOLERANCE = 1e-4


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


def _check_family(task: str, family: Family) -> None:
    fits = {
        "linear": {"regression"},
        "logistic": {"binary", "multiclass"},
        "gbt": {"regression", "binary", "multiclass"},
        "cnn": {"image_classification"},
        "rnn": {"sequence"},
    }
    if family in {"cnn", "rnn"}:
        raise UsageError(
            f"the {family} family is not built yet; tabular tasks train with "
            "--family linear, logistic or gbt"
        )
    if task not in fits[family]:
        usable = [f for f, tasks in fits.items() if task in tasks]
        raise UsageError(f"family {family!r} does not fit a {task} task; use {' or '.join(usable)}")


def feature_frame(table: pa.Table, features: FeatureSet, rows: np.ndarray) -> Any:
    """The feature columns of ``rows`` as the DataFrame the pipeline expects (missing strings
    as "")."""
    pd = require("pandas", extra="models", purpose="training models")
    subset = table.select(features.columns).take(pa.array(rows, pa.int64()))
    data = {}
    for name in features.numeric:
        data[name] = pc.cast(subset.column(name), pa.float64()).to_numpy(zero_copy_only=False)
    for name in features.categorical:
        values = subset.column(name)
        if pa.types.is_dictionary(values.type):
            values = pc.cast(values, values.type.value_type)
        data[name] = np.asarray(
            pc.fill_null(pc.cast(values, pa.string()), "").to_pylist(), dtype=object
        )
    return pd.DataFrame(data)


def _estimator(task: str, family: Family, seed: int, params: dict[str, Any]) -> Any:
    if family == "linear":
        linear = require("sklearn.linear_model", extra="models", purpose="linear models")
        return linear.Ridge(**({"alpha": 1.0} | params))
    if family == "logistic":
        linear = require("sklearn.linear_model", extra="models", purpose="logistic regression")
        return linear.LogisticRegression(**({"max_iter": 1000} | params))
    lightgbm = require("lightgbm", extra="models", purpose="gradient-boosted trees")
    defaults = {"n_estimators": 100, "random_state": seed, "n_jobs": 1, "verbose": -1}
    cls = lightgbm.LGBMRegressor if task == "regression" else lightgbm.LGBMClassifier
    return cls(**(defaults | params))


def build_pipeline(
    task: str, family: Family, features: FeatureSet, seed: int, params: dict[str, Any]
) -> Any:
    """The scikit-learn pipeline of a family: preprocessing for ``features``, then the
    estimator (unfitted)."""
    compose = require("sklearn.compose", extra="models", purpose="training models")
    impute = require("sklearn.impute", extra="models", purpose="training models")
    pipeline = require("sklearn.pipeline", extra="models", purpose="training models")
    prep = require("sklearn.preprocessing", extra="models", purpose="training models")
    parts = []
    if features.numeric:
        steps: list[tuple[str, Any]] = [("impute", impute.SimpleImputer(strategy="median"))]
        if family != "gbt":
            # Trees need no scaling, and scaled float32 inputs in ONNX Runtime would cross
            # split thresholds the float64 training data did not.
            steps.append(("scale", prep.StandardScaler()))
        parts.append(("num", pipeline.Pipeline(steps), features.numeric))
    if features.categorical:
        parts.append(
            (
                "cat",
                pipeline.Pipeline(
                    [
                        (
                            "impute",
                            impute.SimpleImputer(
                                missing_values="", strategy="constant", fill_value=MISSING_CATEGORY
                            ),
                        ),
                        (
                            "onehot",
                            # Unseen categories encode as all zeros, in sklearn and ONNX alike.
                            # (Rare-category bucketing, min_frequency, does not survive the ONNX
                            # export, so it is left out.)
                            prep.OneHotEncoder(handle_unknown="ignore"),
                        ),
                    ]
                ),
                features.categorical,
            )
        )
    return pipeline.Pipeline(
        [
            ("prepare", compose.ColumnTransformer(parts)),
            ("model", _estimator(task, family, seed, params)),
        ]
    )


def score_predictions(
    task: str, y: np.ndarray, predicted: np.ndarray, proba: np.ndarray | None, classes: list[str]
) -> dict[str, float]:
    """Metrics of predictions: MAE, RMSE, R² for regression; accuracy, macro F1, and with
    probabilities ROC AUC, PR AUC (binary) and log loss for classification."""
    metrics = require("sklearn.metrics", extra="models", purpose="scoring models")
    if task == "regression":
        return {
            "mae": float(metrics.mean_absolute_error(y, predicted)),
            "rmse": float(np.sqrt(metrics.mean_squared_error(y, predicted))),
            "r2": float(metrics.r2_score(y, predicted)) if len(y) > 1 else float("nan"),
        }
    out = {
        "accuracy": float(metrics.accuracy_score(y, predicted)),
        "macro_f1": float(metrics.f1_score(y, predicted, average="macro", zero_division=0)),
    }
    if proba is not None and len(set(y)) > 1:
        if len(classes) == 2:
            positive = (y == classes[1]).astype(int)
            out["roc_auc"] = float(metrics.roc_auc_score(positive, proba[:, 1]))
            out["pr_auc"] = float(metrics.average_precision_score(positive, proba[:, 1]))
        out["log_loss"] = float(metrics.log_loss(y, proba, labels=classes))
    return out


def export_onnx(pipe: Any, task: str, family: Family, features: FeatureSet) -> bytes:
    """A fitted pipeline as an ONNX graph with one [n, 1] input per feature."""
    skl2onnx = require("skl2onnx", extra="models", purpose="packaging models as ONNX")
    types = require("skl2onnx.common.data_types", extra="models", purpose="ONNX packages")
    if family == "gbt":
        lightgbm = require("lightgbm", extra="models", purpose="gradient-boosted trees")
        shapes = require(
            "skl2onnx.common.shape_calculator", extra="models", purpose="ONNX packages"
        )
        converters = require(
            "onnxmltools.convert.lightgbm.operator_converters.LightGbm",
            extra="models",
            purpose="packaging LightGBM as ONNX",
        )
        if task == "regression":
            skl2onnx.update_registered_converter(
                lightgbm.LGBMRegressor,
                "LightGbmLGBMRegressor",
                shapes.calculate_linear_regressor_output_shapes,
                converters.convert_lightgbm,
                options={"split": None},
            )
        else:
            skl2onnx.update_registered_converter(
                lightgbm.LGBMClassifier,
                "LightGbmLGBMClassifier",
                shapes.calculate_linear_classifier_output_shapes,
                converters.convert_lightgbm,
                options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
            )
    inputs = [(c, types.FloatTensorType([None, 1])) for c in features.numeric]
    inputs += [(c, types.StringTensorType([None, 1])) for c in features.categorical]
    options = {} if task == "regression" else {"zipmap": False}
    model = skl2onnx.convert_sklearn(
        pipe, initial_types=inputs, options=options, target_opset={"": 17, "ai.onnx.ml": 3}
    )
    return bytes(model.SerializeToString())


def onnx_feeds(frame: Any, features: FeatureSet) -> dict[str, np.ndarray]:
    """The ONNX inputs for a feature frame: one [n, 1] tensor per column."""
    feeds = {c: frame[c].to_numpy(dtype=np.float32).reshape(-1, 1) for c in features.numeric}
    feeds |= {
        c: frame[c].to_numpy(dtype=object).astype(str).reshape(-1, 1) for c in features.categorical
    }
    return feeds


def _parity(
    onnx_bytes: bytes, pipe: Any, frame: Any, features: FeatureSet, task: str
) -> dict[str, Any]:
    ort = require("onnxruntime", extra="models", purpose="checking ONNX packages")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    outputs = session.run(None, onnx_feeds(frame, features))
    if task == "regression":
        native = pipe.predict(frame)
        diff = float(np.max(np.abs(outputs[0].ravel() - native))) if len(native) else 0.0
        return {
            "rows": len(native),
            "max_abs_diff": diff,
            "passed": bool(diff <= PARITY_TOLERANCE * max(1.0, float(np.abs(native).max()))),
        }
    proba = pipe.predict_proba(frame)
    diff = float(np.max(np.abs(outputs[1] - proba))) if len(proba) else 0.0
    labels = np.asarray(outputs[0]).ravel().astype(str)
    native_labels = np.asarray(pipe.predict(frame)).astype(str)
    top = np.sort(proba, axis=1)
    ties = (
        (top[:, -1] - top[:, -2] <= PARITY_TOLERANCE)
        if proba.shape[1] > 1
        else np.zeros(len(proba), dtype=bool)
    )
    mismatched = int(((labels != native_labels) & ~ties).sum())
    return {
        "rows": len(proba),
        "max_abs_diff": diff,
        "label_mismatches": mismatched,
        "passed": bool(diff <= PARITY_TOLERANCE and mismatched == 0),
    }


def _signature(
    table: pa.Table, features: FeatureSet, train_rows: np.ndarray, info_profile: dict[str, Any]
) -> dict[str, Any]:
    train = table.take(pa.array(train_rows, pa.int64()))
    columns = []
    for name in features.numeric:
        values = pc.cast(train.column(name), pa.float64())
        extremes = pc.min_max(values)
        columns.append(
            {
                "name": name,
                "type": "number",
                "min": extremes["min"].as_py(),
                "max": extremes["max"].as_py(),
                "nullable": bool(train.column(name).null_count),
            }
        )
    for name in features.categorical:
        values = train.column(name)
        if pa.types.is_dictionary(values.type):
            values = pc.cast(values, values.type.value_type)
        seen = sorted(str(v) for v in pc.unique(pc.drop_null(values)).to_pylist())
        redacted = bool(info_profile.get(name, {}).get("redacted"))
        columns.append(
            {
                "name": name,
                "type": "string",
                "categories": [] if redacted else seen,
                "nullable": bool(values.null_count),
            }
        )
    # How a caller feeds the graph: one [n, 1] tensor per input; a missing number is NaN, a
    # missing string is "" (both imputed inside the graph); an unseen category is all zeros.
    return {
        "inputs": columns,
        "missing": {"number": "NaN", "string": ""},
        "unseen_categories": "ignored",
    }


def train_model(
    ws: Workspace,
    *,
    split: str | None = None,
    family: Family | None = None,
    baseline: bool = False,
    seed: int | None = None,
    params: dict[str, Any] | None = None,
) -> ModelInfo:
    """Train a family (``baseline``: the task's quick-and-dirty one) on a split, package it as
    ONNX with its preprocessing, check parity on the test split, and register it.

    Raises
    ------
    UsageError
        A family that does not fit the task, or is not built yet.
    DataError
        A missing or constant target, no usable feature, a package that fails parity.
    """
    plan = ws.plan
    task = plan.task
    if family is None:
        if not baseline:
            raise UsageError(
                "give --family linear|logistic|gbt, or --baseline for the task's "
                "quick-and-dirty family"
            )
        family = BASELINE_FAMILY[task]
    _check_family(task, family)
    seed = plan.modeling.seed if seed is None else seed
    params = {**plan.modeling.hyperparameters.get(family, {}), **(params or {})}
    split_info = get_split(ws, split)
    info, table, codes = load_split(ws, split_info)
    target = plan.target
    if target is None or target not in table.column_names:
        raise DataError(f"{info.ref} has no target column {target!r} to learn")
    features = select_features(ws, info)
    y_all = table.column(target)
    if y_all.null_count:
        keep = ~np.asarray(pc.is_null(y_all).to_numpy(zero_copy_only=False))
    else:
        keep = np.ones(table.num_rows, dtype=bool)
    if task == "regression":
        y = pc.cast(y_all, pa.float64()).to_numpy(zero_copy_only=False)
    else:
        y = np.asarray([str(v) for v in y_all.to_pylist()], dtype=object)
    rows = {
        name: np.flatnonzero((codes == code) & keep)
        for code, name in enumerate(("train", "valid", "test"))
    }
    classes = sorted({str(v) for v in y[rows["train"]]}) if task != "regression" else []
    if task != "regression" and len(classes) < 2:
        raise DataError(
            f"the target {target!r} has one class in the training split "
            f"({', '.join(classes)}); a classifier needs at least two"
        )
    if task == "regression" and np.nanstd(y[rows["train"]]) == 0:
        raise DataError(f"the target {target!r} is constant in the training split")
    pipe = build_pipeline(task, family, features, seed, params)
    started = time.perf_counter()
    pipe.fit(feature_frame(table, features, rows["train"]), y[rows["train"]])
    seconds = time.perf_counter() - started
    scores = {}
    for name, index in rows.items():
        if not index.size:
            continue
        frame = feature_frame(table, features, index)
        proba = pipe.predict_proba(frame) if task != "regression" else None
        scores[name] = score_predictions(task, y[index], pipe.predict(frame), proba, classes) | {
            "rows": int(index.size)
        }
    onnx_bytes = export_onnx(pipe, task, family, features)
    check_rows = rows["test"] if rows["test"].size else rows["train"]
    check_frame = feature_frame(table, features, check_rows)
    parity = _parity(onnx_bytes, pipe, check_frame, features, task)
    if not parity["passed"]:
        raise DataError(
            f"the ONNX package of this {family} model differs from the trained "
            f"model on the test split (max difference {parity['max_abs_diff']:.2e},"
            f" {parity.get('label_mismatches', 0)} labels); not registered"
        )
    signature = _signature(table, features, rows["train"], info.profile["columns"])
    batch = onnx_feeds(check_frame, features)
    compute = profile_package(onnx_bytes, {k: v[:1] for k, v in batch.items()}, batch)
    metadata = {
        "task": task,
        "family": family,
        "target": target,
        "classes": classes,
        "threshold": 0.5 if task == "binary" else None,
        "metrics": scores,
        "dataset": info.ref,
        "split": split_info.ref,
    }
    store = ws.store
    artifacts = store.artifacts

    def work(session: Session) -> ModelInfo:
        project_id, version = version_record(session, ws, info)
        count = (
            session.scalar(
                select(func.count())
                .select_from(Model)
                .where(Model.project_id == project_id, Model.family == family)
            )
            or 0
        )
        name = f"{family}-{count + 1}"
        run = RunRecorder.start(
            session,
            project_id=project_id,
            job="train",
            root=ws.root,
            parameters={
                "family": family,
                "baseline": baseline,
                "seed": seed,
                "params": params,
                "split": split_info.ref,
            },
        )
        run.input("split", split_info.ref, sha256=split_info.artifact_sha256)
        run.input("dataset_version", info.ref, sha256=info.content_hash)
        files = {
            "model.onnx": onnx_bytes,
            "signature.json": json.dumps(signature, indent=1).encode(),
            "metadata.json": json.dumps(
                metadata | {"name": name, "run_id": run.id}, indent=1, default=str
            ).encode(),
        }
        buffer = io.BytesIO()
        pickle.dump(pipe, buffer)  # for retraining only: never loaded on the serving path
        files["native.pkl"] = buffer.getvalue()
        package = {}
        for filename, data in files.items():
            ref = artifacts.put_bytes(data)
            ArtifactStore.register(
                session, ref, kind=f"model:{filename}", media_type="application/octet-stream"
            )
            package[filename] = ref.sha256
        run.output("model", name, sha256=package["model.onnx"])
        split_id = session.scalar(
            select(Split.id).where(
                Split.dataset_version_id == version.id, Split.number == split_info.number
            )
        )
        record = Model(
            project_id=project_id,
            name=name,
            family=family,
            task=task,
            baseline=baseline or family == BASELINE_FAMILY[task],
            split_id=split_id,
            parameters={"seed": seed, **params},
            features=features.to_dict(),
            metrics=scores,
            package=package,
            parity=parity,
            compute=compute,
            seconds=seconds,
            run_id=run.id,
        )
        session.add(record)
        run.finish()
        session.flush()
        return _info(record, split_info.ref)

    with artifacts.staged():
        return store.write(work)


def _info(record: Model, split: str) -> ModelInfo:
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
            select(Model, Dataset.name, DatasetVersion.version, Split.number)
            .join(Split, Model.split_id == Split.id)
            .join(DatasetVersion, Split.dataset_version_id == DatasetVersion.id)
            .join(Dataset, DatasetVersion.dataset_id == Dataset.id)
            .join(Project, Model.project_id == Project.id)
            .where(Project.key == ws.plan.project.store_key)
            .order_by(Model.created_at, Model.id)
        ).all()
        return [_info(m, f"{name}@{version}/s{number}") for m, name, version, number in rows]


def get_model(ws: Workspace, name: str) -> ModelInfo:
    """A registered model by name (e.g. ``gbt-1``).

    Raises
    ------
    NotFoundError
        Listing the registered models.
    """
    models = list_models(ws)
    for model in models:
        if model.name == name:
            return model
    raise NotFoundError(
        f"model {name!r} not found; known: "
        f"{', '.join(m.name for m in models) or 'none'}. Train one with: "
        "mlplan train --baseline"
    )
