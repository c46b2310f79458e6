"""Tabular families — ridge, logistic regression, LightGBM — as scikit-learn pipelines with
their preprocessing (imputation, scaling, one-hot encoding derived from the profile), exported
to ONNX with that preprocessing inside; and the same estimators on window features."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan._optional import require
from mlplan.errors import UsageError
from mlplan.modeling._features import FeatureSet
from mlplan.modeling._signature import PackageSignature, SignatureInput

__all__ = [
    "MISSING_CATEGORY",
    "build_pipeline",
    "export_onnx",
    "feature_frame",
    "onnx_feeds",
    "score_predictions",
    "tabular_signature",
]

MISSING_CATEGORY = "(missing)"
PARITY_TOLERANCE = 1e-4


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


def _estimator(kind: str, family: str, seed: int, params: dict[str, Any]) -> Any:
    if family == "linear":
        linear = require("sklearn.linear_model", extra="models", purpose="linear models")
        cls, defaults = linear.Ridge, {"alpha": 1.0}
    elif family == "logistic":
        linear = require("sklearn.linear_model", extra="models", purpose="logistic regression")
        cls, defaults = linear.LogisticRegression, {"max_iter": 1000}
    else:
        lightgbm = require("lightgbm", extra="models", purpose="gradient-boosted trees")
        cls = lightgbm.LGBMRegressor if kind == "regression" else lightgbm.LGBMClassifier
        defaults = {"n_estimators": 100, "random_state": seed, "n_jobs": 1, "verbose": -1}
    try:
        return cls(**(defaults | params))
    except TypeError as exc:
        raise UsageError(
            f"hyperparameters of {family}: {exc}; fix modeling.hyperparameters.{family} "
            f"(they are {cls.__name__}'s parameters)"
        ) from None


def build_pipeline(
    kind: str, family: str, features: FeatureSet, seed: int, params: dict[str, Any]
) -> Any:
    """The scikit-learn pipeline of a family for a ``regression`` or ``classification`` target:
    preprocessing for ``features``, then the estimator (unfitted)."""
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
            ("model", _estimator(kind, family, seed, params)),
        ]
    )


def score_predictions(
    kind: str, y: np.ndarray, predicted: np.ndarray, proba: np.ndarray | None, classes: list[str]
) -> dict[str, float]:
    """Metrics of predictions: MAE, RMSE, R² for regression; accuracy, macro F1, and with
    probabilities ROC AUC, PR AUC (binary) and log loss for classification."""
    metrics = require("sklearn.metrics", extra="models", purpose="scoring models")
    if kind == "regression":
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


def _register_lightgbm(kind: str) -> None:
    """Teach skl2onnx to convert LightGBM estimators (with onnxmltools' converter)."""
    skl2onnx = require("skl2onnx", extra="models", purpose="packaging models as ONNX")
    lightgbm = require("lightgbm", extra="models", purpose="gradient-boosted trees")
    shapes = require("skl2onnx.common.shape_calculator", extra="models", purpose="ONNX packages")
    converters = require(
        "onnxmltools.convert.lightgbm.operator_converters.LightGbm",
        extra="models",
        purpose="packaging LightGBM as ONNX",
    )
    if kind == "regression":
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


def export_onnx(pipe: Any, kind: str, family: str, features: FeatureSet) -> bytes:
    """A fitted pipeline as an ONNX graph with one [n, 1] input per feature."""
    skl2onnx = require("skl2onnx", extra="models", purpose="packaging models as ONNX")
    types = require("skl2onnx.common.data_types", extra="models", purpose="ONNX packages")
    if family == "gbt":
        _register_lightgbm(kind)
    inputs = [(c, types.FloatTensorType([None, 1])) for c in features.numeric]
    inputs += [(c, types.StringTensorType([None, 1])) for c in features.categorical]
    options = {} if kind == "regression" else {"zipmap": False}
    model = skl2onnx.convert_sklearn(
        pipe, initial_types=inputs, options=options, target_opset={"": 17, "ai.onnx.ml": 3}
    )
    # No threshold snapping here: the pipeline trains on float64 values that the graph sees
    # rounded to float32, and for those, rounding thresholds to nearest keeps more splits.
    return bytes(model.SerializeToString())


def onnx_feeds(frame: Any, features: FeatureSet) -> dict[str, np.ndarray]:
    """The ONNX inputs for a feature frame: one [n, 1] tensor per column."""
    feeds = {c: frame[c].to_numpy(dtype=np.float32).reshape(-1, 1) for c in features.numeric}
    feeds |= {
        c: frame[c].to_numpy(dtype=object).astype(str).reshape(-1, 1) for c in features.categorical
    }
    return feeds


def tabular_signature(
    table: pa.Table, features: FeatureSet, train_rows: np.ndarray, info_profile: dict[str, Any]
) -> PackageSignature:
    """How a caller feeds a tabular model: each column with what training saw of it."""
    train = table.take(pa.array(train_rows, pa.int64()))
    columns = []
    for name in features.numeric:
        values = pc.cast(train.column(name), pa.float64())
        extremes = pc.min_max(values)
        columns.append(
            SignatureInput(
                name,
                "number",
                min=extremes["min"].as_py(),
                max=extremes["max"].as_py(),
                nullable=bool(train.column(name).null_count),
            )
        )
    for name in features.categorical:
        values = train.column(name)
        if pa.types.is_dictionary(values.type):
            values = pc.cast(values, values.type.value_type)
        seen = sorted(str(v) for v in pc.unique(pc.drop_null(values)).to_pylist())
        redacted = bool(info_profile.get(name, {}).get("redacted"))
        columns.append(
            SignatureInput(
                name,
                "string",
                categories=() if redacted else tuple(seen),
                nullable=bool(values.null_count),
            )
        )
    # How a caller feeds the graph: one [n, 1] tensor per input; a missing number is NaN, a
    # missing string is "" (both imputed inside the graph); an unseen category is all zeros.
    return PackageSignature(
        tuple(columns),
        missing={"number": "NaN", "string": ""},
        unseen_categories="ignored",
    )


# -- the same estimators on window features ----------------------------------------------------


def window_features(x: np.ndarray) -> np.ndarray:
    """Features of windows ``[n, length, channels]``: every lag, each channel's mean over the
    window, and its change from the first step to the last (NaN propagates; trees take it as
    missing, the linear families impute it)."""
    n = len(x)
    return np.concatenate(
        # The mean is taken in float64 and rounded, here and in the graph, so that both agree
        # to the bit (float32 sums in a different order do not).
        [
            x.reshape(n, -1),
            x.astype(np.float64).mean(axis=1).astype(np.float32),
            x[:, -1] - x[:, 0],
        ],
        axis=1,
    ).astype(np.float32)


def build_window_estimator(kind: str, family: str, seed: int, params: dict[str, Any]) -> Any:
    """A family's estimator for window features (linear families impute and scale first)."""
    estimator = _estimator(kind, family, seed, params)
    if family == "gbt":
        return estimator
    impute = require("sklearn.impute", extra="models", purpose="training models")
    pipeline = require("sklearn.pipeline", extra="models", purpose="training models")
    prep = require("sklearn.preprocessing", extra="models", purpose="training models")
    return pipeline.Pipeline(
        [
            ("impute", impute.SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", prep.StandardScaler()),
            ("model", estimator),
        ]
    )


def _snap_thresholds(model: Any, booster: Any) -> None:
    """Make a LightGBM ensemble in ONNX (float32 thresholds), trained on float32 values, split
    float32 inputs as LightGBM does with its float64 thresholds.

    The converter rounds each threshold ``t`` to the nearest float32; when that rounds up, an
    input equal to the rounded value goes the wrong way — and with decimal data it often is
    such a value (the midpoint of 18.8 and 19.0 is 18.9). Each threshold becomes the largest
    float32 not above ``t``, under which ``x <= t`` holds for exactly the same float32 ``x``.
    """
    onnx = require("onnx", extra="models", purpose="packaging models as ONNX")
    frame = booster.trees_to_dataframe()
    splits = frame[frame["decision_type"] == "<="]
    names = booster.feature_name()
    floors: dict[tuple[int, float], float] = {}
    for feature, threshold in zip(splits["split_feature"], splits["threshold"], strict=True):
        rounded = np.float32(threshold)
        floor = rounded if float(rounded) <= threshold else np.nextafter(rounded, np.float32(-1e38))
        floors.setdefault((names.index(feature), float(rounded)), float(floor))
    for node in model.graph.node:
        if not node.op_type.startswith("TreeEnsemble"):
            continue
        attrs = {a.name: a for a in node.attribute}
        if "nodes_values" not in attrs:
            continue
        values = [
            floors.get((int(f), float(np.float32(v))), v) if m == b"BRANCH_LEQ" else v
            for f, v, m in zip(
                attrs["nodes_featureids"].ints,
                attrs["nodes_values"].floats,
                attrs["nodes_modes"].strings,
                strict=True,
            )
        ]
        attrs["nodes_values"].CopyFrom(onnx.helper.make_attribute("nodes_values", values))


def export_window_onnx(estimator: Any, kind: str, family: str, length: int, channels: int) -> bytes:
    """A fitted window estimator as ONNX: a ``window`` input ``[n, length, channels]``, the
    features of :func:`window_features` computed in the graph, then the estimator."""
    onnx = require("onnx", extra="models", purpose="packaging models as ONNX")
    skl2onnx = require("skl2onnx", extra="models", purpose="packaging models as ONNX")
    types = require("skl2onnx.common.data_types", extra="models", purpose="ONNX packages")
    if family == "gbt":
        _register_lightgbm(kind)
    width = length * channels + 2 * channels
    options = {} if kind == "regression" else {"zipmap": False}
    model = skl2onnx.convert_sklearn(
        estimator,
        initial_types=[("features", types.FloatTensorType([None, width]))],
        options=options,
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    if family == "gbt":
        _snap_thresholds(model, estimator.booster_)
    helper = onnx.helper
    graph = model.graph
    initial = [
        onnx.numpy_helper.from_array(np.array([-1, length * channels], np.int64), "wf_shape"),
        onnx.numpy_helper.from_array(np.array(0, np.int64), "wf_first"),
        onnx.numpy_helper.from_array(np.array(length - 1, np.int64), "wf_last"),
    ]
    nodes = [
        helper.make_node("Reshape", ["window", "wf_shape"], ["wf_lags"]),
        helper.make_node("Cast", ["window"], ["wf_double"], to=onnx.TensorProto.DOUBLE),
        helper.make_node("ReduceMean", ["wf_double"], ["wf_mean_double"], axes=[1], keepdims=0),
        helper.make_node("Cast", ["wf_mean_double"], ["wf_mean"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Gather", ["window", "wf_first"], ["wf_head"], axis=1),
        helper.make_node("Gather", ["window", "wf_last"], ["wf_tail"], axis=1),
        helper.make_node("Sub", ["wf_tail", "wf_head"], ["wf_change"]),
        helper.make_node("Concat", ["wf_lags", "wf_mean", "wf_change"], ["features"], axis=1),
    ]
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old)
    graph.initializer.extend(initial)
    del graph.input[:]
    graph.input.append(
        helper.make_tensor_value_info("window", onnx.TensorProto.FLOAT, [None, length, channels])
    )
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def window_signature(spec: dict[str, Any], x_train: np.ndarray) -> PackageSignature:
    """How a caller feeds a window model, with the ranges seen in training."""
    lows = np.nanmin(x_train, axis=(0, 1)) if x_train.size else []
    highs = np.nanmax(x_train, axis=(0, 1)) if x_train.size else []
    window = SignatureInput(
        "window",
        "window",
        shape=(None, spec["length"], len(spec["channels"])),
        dtype="float32",
        time_column=spec["time_column"],
        horizon=spec["horizon"],
        channels=tuple(
            {"name": c, "min": float(lo), "max": float(hi)}
            for c, lo, hi in zip(spec["channels"], lows, highs, strict=True)
        ),
    )
    return PackageSignature((window,), missing={"number": "NaN"})
