"""Tabular families — ridge, logistic regression, LightGBM — as scikit-learn pipelines with
their preprocessing (imputation, scaling, one-hot encoding derived from the profile), exported
to ONNX with that preprocessing inside; and the same estimators on window features. Which
estimator a family is, and what its export needs, is the family registry's (``_families.py``).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan._optional import require
from mlplan.errors import ParameterError
from mlplan.modeling._categories import rare_categories
from mlplan.modeling._categories import register_converter as register_rare_categories
from mlplan.modeling._estimators import tree_ensembles
from mlplan.modeling._families import tabular_estimator
from mlplan.modeling._features import MISSING_CATEGORY, FeatureSet
from mlplan.modeling._inputs import TrainingData
from mlplan.modeling._metrics import _from_confusion, ranking_scores
from mlplan.modeling._package import Fitted
from mlplan.modeling._signature import PackageSignature, SignatureInput

__all__ = [
    "MISSING_CATEGORY",
    "build_pipeline",
    "build_window_estimator",
    "export_onnx",
    "export_window_onnx",
    "fit_estimator",
    "score_predictions",
    "split_thresholds",
    "tabular_signature",
    "window_features",
    "window_signature",
]


def build_pipeline(
    kind: str, family: str, features: FeatureSet, seed: int, params: dict[str, Any]
) -> Any:
    """The scikit-learn pipeline of a family for a ``regression`` or ``classification`` target:
    preprocessing for ``features``, then the estimator (unfitted)."""
    compose = require("sklearn.compose", extra="models", purpose="training models")
    impute = require("sklearn.impute", extra="models", purpose="training models")
    pipeline = require("sklearn.pipeline", extra="models", purpose="training models")
    prep = require("sklearn.preprocessing", extra="models", purpose="training models")
    estimator = tabular_estimator(family)
    parts = []
    if features.numeric:
        steps: list[tuple[str, Any]] = [("impute", impute.SimpleImputer(strategy="median"))]
        if estimator.scaled:  # not trees: the gbt entry of _families.py says why
            steps.append(("scale", prep.StandardScaler()))
        parts.append(("num", pipeline.Pipeline(steps), features.numeric))
    if features.categorical:
        categorical: list[tuple[str, Any]] = [
            (
                "impute",
                impute.SimpleImputer(
                    missing_values="", strategy="constant", fill_value=MISSING_CATEGORY
                ),
            )
        ]
        if features.infrequent:
            # Rare categories share one input, in this pipeline and in its graph alike
            # (_categories.py says why scikit-learn's own min_frequency cannot).
            rare = [features.infrequent.get(c, []) for c in features.categorical]
            categorical.append(("rare", rare_categories(rare)))
        # Unseen categories encode as all zeros, in sklearn and ONNX alike.
        categorical.append(("onehot", prep.OneHotEncoder(handle_unknown="ignore")))
        parts.append(("cat", pipeline.Pipeline(categorical), features.categorical))
    return pipeline.Pipeline(
        [
            ("prepare", compose.ColumnTransformer(parts)),
            ("model", estimator.build(family, kind, seed, params)),
        ]
    )


def score_predictions(
    kind: str, y: np.ndarray, predicted: np.ndarray, proba: np.ndarray | None, classes: list[str]
) -> dict[str, float]:
    """Metrics of predictions: MAE, RMSE, R² for regression; accuracy, macro F1, and with
    probabilities ROC AUC, PR AUC (binary) and log loss for classification.

    The classification metrics are scikit-learn's, computed as the metric engine
    (``_metrics.py``) computes them: counts from one ``bincount`` of (true, predicted) codes,
    both AUCs from one sort of the scores, the log loss clipped as scikit-learn clips it (at
    the probabilities' own precision). At a million rows that is a tenth of the time."""
    metrics = require("sklearn.metrics", extra="models", purpose="scoring models")
    if kind == "regression":
        return {
            "mae": float(metrics.mean_absolute_error(y, predicted)),
            "rmse": float(np.sqrt(metrics.mean_squared_error(y, predicted))),
            "r2": float(metrics.r2_score(y, predicted)) if len(y) > 1 else float("nan"),
        }
    # Labels as integer codes (the classes first, in order, then any other value seen): the
    # same metrics as on the strings, without sorting a million of them per call.
    y_codes, predicted_codes, names = _codes(y, predicted, classes)
    k = len(names)
    confusion = np.bincount(y_codes * k + predicted_codes, minlength=k * k).reshape(1, k, k)
    out = {
        "accuracy": float(_from_confusion(confusion, "accuracy", 0)[0]),
        "macro_f1": float(_from_confusion(confusion, "macro_f1", 0)[0]),
    }
    if proba is not None and np.count_nonzero(np.bincount(y_codes, minlength=k)) > 1:
        if len(classes) == 2:
            out["roc_auc"], out["pr_auc"] = ranking_scores(proba[:, 1], y_codes == 1)
        if len(names) > len(classes) or names[: len(classes)] != sorted(classes):
            # A class the model never saw (scikit-learn says why there is no log loss), or
            # columns not in sorted order: scikit-learn's own reading of the labels.
            out["log_loss"] = float(metrics.log_loss(y, proba, labels=classes))
        else:
            out["log_loss"] = _log_loss(np.asarray(proba), y_codes)
    return out


def _log_loss(proba: np.ndarray, y_codes: np.ndarray) -> float:
    """scikit-learn's log loss of probabilities whose columns are the classes ``y_codes``
    index: each row's probability of its class clipped to [eps, 1 - eps] at the precision
    of the probabilities (float32 or float64), as ``log_loss`` clips it."""
    if proba.dtype not in (np.float32, np.float64):
        proba = proba.astype(np.float64)
    eps = np.finfo(proba.dtype).eps
    taken = np.clip(proba[np.arange(len(y_codes)), y_codes], eps, 1 - eps)
    return float(np.mean(-np.log(taken)))


def _codes(
    y: np.ndarray, predicted: np.ndarray, classes: list[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``y`` and ``predicted`` as codes into ``classes`` followed by any other value of
    either (sorted), and that list of names."""
    y_text, predicted_text = _text(y), _text(predicted)
    names = [str(c) for c in classes]
    seen = set(pc.unique(y_text).to_pylist()) | set(pc.unique(predicted_text).to_pylist())
    names += sorted(seen - set(names))
    vocabulary = pa.array(names, pa.string())
    return (
        pc.index_in(y_text, value_set=vocabulary).to_numpy(zero_copy_only=False),
        pc.index_in(predicted_text, value_set=vocabulary).to_numpy(zero_copy_only=False),
        names,
    )


def _text(values: np.ndarray) -> pa.Array:
    """Labels as Arrow strings, as NumPy reads them as text (``astype(str)``): Python strings
    (a target's classes, and the labels a model predicts from them) as they are, in one pass,
    without first making a NumPy string array of them."""
    pd = require("pandas", extra="models", purpose="scoring models")
    values = np.asarray(values, dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":  # every one a str
        return pa.array(values, pa.string())
    return pa.array(values.astype(str))


def export_onnx(pipe: Any, kind: str, family: str, features: FeatureSet) -> bytes:
    """A fitted pipeline as an ONNX graph with one [n, 1] input per feature."""
    skl2onnx = require("skl2onnx", extra="models", purpose="packaging models as ONNX")
    types = require("skl2onnx.common.data_types", extra="models", purpose="ONNX packages")
    spec = tabular_estimator(family)
    if spec.converter is not None:
        spec.converter(kind)
    if features.infrequent:
        register_rare_categories()
    inputs = [(c, types.FloatTensorType([None, 1])) for c in features.numeric]
    inputs += [(c, types.StringTensorType([None, 1])) for c in features.categorical]
    options = {} if kind == "regression" else {"zipmap": False}
    model = skl2onnx.convert_sklearn(
        pipe, initial_types=inputs, options=options, target_opset={"": 17, "ai.onnx.ml": 3}
    )
    # The pipeline trained on the float32 values the graph reads (feature_frame), so a tree's
    # thresholds can be made exact for them.
    if spec.snap_thresholds is not None:
        spec.snap_thresholds(model, pipe.named_steps["model"])
    return bytes(model.SerializeToString())


def tabular_signature(
    table: pa.Table, features: FeatureSet, train_rows: np.ndarray, info_profile: dict[str, Any]
) -> PackageSignature:
    """How a caller feeds a tabular model: each column with what training saw of it (each
    whole column read once, its training rows picked from it, not the table's rows taken)."""
    columns = []
    for name in features.numeric:
        column = table.column(name)
        missing = _missing(column)[train_rows]
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)[train_rows]
        low, high = _extremes(values[~missing])
        columns.append(
            SignatureInput(name, "number", min=low, max=high, nullable=bool(missing.any()))
        )
    for name in features.categorical:
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = pc.cast(column, column.type.value_type)
        codes = pc.dictionary_encode(column.combine_chunks())
        indices = pc.fill_null(codes.indices, -1).to_numpy(zero_copy_only=False)[train_rows]
        counts = np.bincount(indices + 1, minlength=len(codes.dictionary) + 1)  # null first
        dictionary = codes.dictionary.to_pylist()
        seen = sorted(str(dictionary[i]) for i in np.flatnonzero(counts[1:]))
        redacted = bool(info_profile.get(name, {}).get("redacted"))
        columns.append(
            SignatureInput(
                name,
                "string",
                categories=() if redacted else tuple(seen),
                infrequent=() if redacted else tuple(features.infrequent.get(name, ())),
                nullable=bool(counts[0]),
            )
        )
    # How a caller feeds the graph: one [n, 1] tensor per input; a missing number is NaN, a
    # missing string is "" (both imputed inside the graph); a rare category scores as the
    # others of its column listed as infrequent; an unseen category is all zeros.
    return PackageSignature(
        tuple(columns),
        missing={"number": "NaN", "string": ""},
        unseen_categories="ignored",
    )


def _missing(column: pa.ChunkedArray) -> np.ndarray:
    """Which values of a column are null, as a NumPy mask."""
    return np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False), dtype=bool)


def _extremes(values: np.ndarray) -> tuple[float | None, float | None]:
    """The least and greatest of values none of which is missing, as Arrow's ``min_max``
    gives them: NaN skipped unless every value is NaN; None for no values."""
    if not len(values):
        return None, None
    numbers = values[~np.isnan(values)]
    if not len(numbers):
        return float("nan"), float("nan")
    return float(numbers.min()), float(numbers.max())


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
    spec = tabular_estimator(family)
    estimator = spec.build(family, kind, seed, params)
    if not spec.scaled:
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


def export_window_onnx(estimator: Any, kind: str, family: str, length: int, channels: int) -> bytes:
    """A fitted window estimator as ONNX: a ``window`` input ``[n, length, channels]``, the
    features of :func:`window_features` computed in the graph, then the estimator."""
    onnx = require("onnx", extra="models", purpose="packaging models as ONNX")
    skl2onnx = require("skl2onnx", extra="models", purpose="packaging models as ONNX")
    types = require("skl2onnx.common.data_types", extra="models", purpose="ONNX packages")
    spec = tabular_estimator(family)
    if spec.converter is not None:
        spec.converter(kind)
    width = length * channels + 2 * channels
    options = {} if kind == "regression" else {"zipmap": False}
    model = skl2onnx.convert_sklearn(
        estimator,
        initial_types=[("features", types.FloatTensorType([None, width]))],
        options=options,
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    if spec.snap_thresholds is not None:
        spec.snap_thresholds(model, estimator)
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


# -- fitting -----------------------------------------------------------------------------------


def _fit(
    estimator: Any,
    x: Any,
    y: np.ndarray,
    family: str,
    params: dict[str, Any],
    others: Mapping[str, Any] | None = None,
) -> tuple[Any, np.ndarray | None, dict[str, Any]]:
    """Fit, and turn the estimator's refusal of a hyperparameter's value (``num_leaves: -3``)
    into an error that names the family and the values, instead of an internal one.

    Returns the training inputs as the estimator's last step saw them: a pipeline is fitted
    as ``Pipeline.fit`` does, step by step, and its preprocessing of the training rows kept,
    so that scoring them does not preprocess them again; that step's outputs on them where
    fitting it left them behind (``Estimator.fit``), so that they are not predicted again
    either (else None); and the ``others`` inputs (the other splits' rows, by name) as the
    last step reads them, prepared on a second thread while it fits (its fitting runs in C,
    mostly without the GIL: on a machine of two cores, preparing them costs no time)."""
    fit = tabular_estimator(family).fit
    y = _as_numpy_text(y)
    waiting = {name: rows for name, rows in (others or {}).items() if len(rows)}
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: dict[str, Future[Any]] = {}
        try:
            if hasattr(estimator, "steps"):
                prepare = estimator[:-1]
                prepared = prepare.fit_transform(x, y)
                last = estimator.steps[-1][1]
                pending = {name: pool.submit(prepare.transform, r) for name, r in waiting.items()}
            else:
                prepared, last = x, estimator
            outputs = None
            if fit is not None:
                outputs = fit(last, prepared, y)
            else:
                last.fit(prepared, y)
        except Exception as exc:
            error = _refused(exc, family, params)
            if error is exc:
                raise
            raise error from exc
        # Outside the fit's errors: a split that cannot be prepared is not a hyperparameter's.
        ready = {name: job.result() for name, job in pending.items()} if pending else waiting
    return prepared, outputs, ready


def _refused(exc: Exception, family: str, params: dict[str, Any]) -> Exception:
    """The estimator's refusal of a hyperparameter's value as an error that names the
    family and the values; any other error as it is."""
    source = type(exc).__module__.split(".")[0]
    refused = source in {"lightgbm", "sklearn"} or isinstance(exc, ValueError | TypeError)
    if not params or not refused:
        return exc
    given = ", ".join(f"{k}: {v!r}" for k, v in sorted(params.items()))
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(" .")
    return ParameterError(
        "params",
        f"{family} could not be trained with the hyperparameters {given}: {reason}. Fix "
        f"them in modeling.hyperparameters.{family} of the plan (or the params given)",
    )


def _as_numpy_text(y: np.ndarray) -> np.ndarray:
    """Class labels held as Python strings, as a NumPy string array; anything else as it is.

    scikit-learn and LightGBM find a target's classes with ``np.unique``, several times per
    fit, which sorts Python strings one comparison at a time (80 ms per 200,000 labels) and
    NumPy strings in C (3 ms). The classes, their order, the fitted model and its graph are
    the same; the estimator's ``classes_`` is a NumPy string array."""
    if y.dtype != object:
        return y
    pd = require("pandas", extra="models", purpose="training models")
    return y.astype(str) if pd.api.types.infer_dtype(y, skipna=False) == "string" else y


def fit_estimator(
    data: TrainingData, family: str, seed: int, params: dict[str, Any], *, export: bool
) -> Fitted:
    """Fit a tabular family on the features of a table, or on window features: its
    predictions on every split, its ONNX graph (when ``export``) and the pickled estimator."""
    kind, spec = data.kind, data.spec
    thresholds: dict[str, np.ndarray] = {}  # window features are computed in the graph
    if spec["kind"] == "window":
        estimator = build_window_estimator(kind, family, seed, params)
        x = {k: window_features(v) for k, v in data.x.items()}
        others = {name: rows for name, rows in x.items() if name != "train"}
        seen, fitted, ready = _fit(estimator, x["train"], data.y["train"], family, params, others)
        predictions = _predictions(estimator, kind, family, x, seen, fitted, ready)
        graph = (
            export_window_onnx(estimator, kind, family, spec["length"], len(spec["channels"]))
            if export
            else None
        )
    else:
        features = FeatureSet.from_spec(spec)
        estimator = build_pipeline(kind, family, features, seed, params)
        # The feature frames hold missing categories as MISSING_CATEGORY already (one value
        # of each column's dictionary replaced, not a pass over every row): the pipeline is
        # fitted and predicts without its category imputer, which is put back, fitted, before
        # the pipeline is exported and kept, so that its graph maps "" as it always has.
        imputer = _imputer_off(estimator)
        x, others = data.x, {name: rows for name, rows in data.x.items() if name != "train"}
        seen, fitted, ready = _fit(estimator, x["train"], data.y["train"], family, params, others)
        predictions = _predictions(estimator, kind, family, x, seen, fitted, ready)
        _imputer_on(estimator, imputer, features)
        graph = export_onnx(estimator, kind, family, features) if export else None
        if graph is not None:
            thresholds = split_thresholds(graph, features.numeric)
    buffer = io.BytesIO()
    pickle.dump(estimator, buffer)  # for retraining only: never loaded on the serving path
    return Fitted(predictions, graph, {"native.pkl": buffer.getvalue()}, dict(params), thresholds)


def _predictions(
    estimator: Any,
    kind: str,
    family: str,
    x: dict[str, Any],
    seen: Any,
    fitted: np.ndarray | None,
    ready: dict[str, Any],
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """The fitted estimator's labels (and probabilities) on every split: ``ready`` holds
    other splits' inputs as its last step reads them (:func:`_fit`)."""
    predictions = {}
    last = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    predict_params = tabular_estimator(family).predict_params
    for split, inputs in x.items():
        if not len(inputs):
            continue
        # The training rows as the last step saw them when it was fitted, and its outputs on
        # them where fitting left them behind (see _fit).
        if split == "train":
            model, rows = last, seen
        else:
            model, rows = (last, ready[split]) if split in ready else (estimator, inputs)
        outputs = fitted if split == "train" else None
        if kind == "classification":
            # The most probable class, as the estimators' own predict() and the graph take it:
            # one pass over the rows instead of two.
            proba = model.predict_proba(rows, **predict_params) if outputs is None else outputs
            predictions[split] = (model.classes_[np.argmax(proba, axis=1)], proba)
        else:
            predicted = model.predict(rows, **predict_params) if outputs is None else outputs
            predictions[split] = (predicted, None)
    return predictions


def _imputer_off(pipe: Any) -> Any:
    """Take the category imputer out of an unfitted pipeline, and hand it back (None without
    categories). In its place the columns become the object array the imputer hands on, so
    that the steps after it are fitted on what they will read once it is back."""
    preprocessing = require("sklearn.preprocessing", extra="models", purpose="training models")
    parts = dict((name, step) for name, step, _ in pipe.named_steps["prepare"].transformers)
    if "cat" not in parts:
        return None
    imputer = parts["cat"].named_steps["impute"]
    parts["cat"].set_params(impute=preprocessing.FunctionTransformer(_objects))
    return imputer


def _objects(frame: Any) -> np.ndarray:
    """A frame's columns as one object array (what a category imputer hands on)."""
    return np.asarray(frame, dtype=object)


def _imputer_on(pipe: Any, imputer: Any, features: FeatureSet) -> None:
    """Put the category imputer back into a pipeline fitted without it, fitted (a constant
    fill learns nothing from the rows: one row of the columns fits it)."""
    if imputer is None:
        return
    pd = require("pandas", extra="models", purpose="training models")
    columns = features.categorical
    imputer.fit(pd.DataFrame({c: np.asarray(["x"], dtype=object) for c in columns}))
    prepare = pipe.named_steps["prepare"]
    dict((name, step) for name, step, _ in prepare.transformers)["cat"].set_params(impute=imputer)
    fitted = dict((name, step) for name, step, _ in prepare.transformers_)["cat"]
    fitted.steps[0] = ("impute", imputer)


def split_thresholds(graph: bytes, numeric: list[str]) -> dict[str, np.ndarray]:
    """Per numeric input of a tabular graph, the sorted values its trees split it at (none for
    graphs without trees). The preprocessing puts the numeric inputs first, in order, and
    leaves their values as they are (trees are not scaled), so a tree's feature ``j`` below
    ``len(numeric)`` is input ``numeric[j]``."""
    onnx = require("onnx", extra="models", purpose="packaging models as ONNX")
    model = onnx.load_from_string(graph)
    found: dict[int, list[np.ndarray]] = {}
    for attrs in tree_ensembles(model):
        ids = np.asarray(attrs["nodes_featureids"].ints, dtype=np.int64)
        values = np.asarray(attrs["nodes_values"].floats, dtype=np.float64)
        branch = np.asarray(attrs["nodes_modes"].strings) != b"LEAF"
        for j in np.unique(ids[branch & (ids < len(numeric))]):
            found.setdefault(int(j), []).append(values[branch & (ids == j)])
    return {numeric[j]: np.unique(np.concatenate(parts)) for j, parts in found.items()}
