"""The scikit-learn estimators of the tabular families — ridge, logistic regression, LightGBM —
and what exporting each to ONNX needs beyond skl2onnx's own converters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlplan._optional import require
from mlplan.errors import UsageError

__all__ = [
    "Estimator",
    "fit_lightgbm",
    "lightgbm_model",
    "lightgbm_parameters",
    "logistic_regression",
    "register_lightgbm",
    "ridge",
    "snap_lightgbm_thresholds",
    "tree_ensembles",
]


@dataclass(frozen=True)
class Estimator:
    """How a tabular family is built: its scikit-learn estimator, and what its ONNX export
    needs.

    ``make`` gives the estimator's class and its defaults for a target kind
    (``regression`` or ``classification``) and a seed. ``scaled``: numeric inputs are
    standardised first (and, on window features, imputed); trees take them raw. ``converter``
    registers with skl2onnx a converter it lacks for this estimator, for a target kind.
    ``snap_thresholds`` makes an exported graph split its float32 inputs (table columns or
    window features, which the model also trained on as float32) as the model did.
    """

    make: Callable[[str, int], tuple[Any, dict[str, Any]]]
    scaled: bool = True
    converter: Callable[[str], None] | None = None
    snap_thresholds: Callable[[Any, Any], None] | None = None
    more_parameters: Callable[[], frozenset[str]] | None = None
    """Names the estimator takes beyond its ``get_params()`` (LightGBM's own parameters and
    their aliases, which its scikit-learn classes pass through)."""
    fit: Callable[[Any, Any, np.ndarray], np.ndarray | None] | None = None
    """Fits the estimator on rows and targets and hands back what its ``predict_proba``
    (classifiers) or ``predict`` (regressors) would answer on those rows, where fitting left
    that behind; None where it did not. Without it, ``estimator.fit``."""
    predict_params: dict[str, Any] = field(default_factory=dict)
    """What its ``predict`` and ``predict_proba`` are given when training scores the other
    splits: LightGBM trains on one thread (the same trees on any machine, and trials side by
    side on Ray), but predicts each row alone, the same on any number of threads, so it
    predicts on OpenMP's default (every core, or ``OMP_NUM_THREADS``, which Ray sets to a
    task's CPUs)."""

    def parameter_names(self, kind: str) -> frozenset[str]:
        """Every hyperparameter the estimator takes for a target kind."""
        cls, _ = self.make(kind, 0)
        names = frozenset(cls().get_params())
        return names | (self.more_parameters() if self.more_parameters is not None else set())

    def build(self, family: str, kind: str, seed: int, params: dict[str, Any]) -> Any:
        """The unfitted estimator with ``params`` over its defaults.

        Raises
        ------
        UsageError
            A hyperparameter that the estimator does not take.
        """
        cls, defaults = self.make(kind, seed)
        try:
            return cls(**(defaults | params))
        except TypeError as exc:
            raise UsageError(
                f"hyperparameters of {family}: {exc}; fix modeling.hyperparameters.{family} "
                f"(they are {cls.__name__}'s parameters)"
            ) from None


def ridge(kind: str, seed: int) -> tuple[Any, dict[str, Any]]:
    """Ridge regression."""
    linear = require("sklearn.linear_model", extra="models", purpose="linear models")
    return linear.Ridge, {"alpha": 1.0}


def logistic_regression(kind: str, seed: int) -> tuple[Any, dict[str, Any]]:
    """Logistic regression (multinomial for several classes)."""
    linear = require("sklearn.linear_model", extra="models", purpose="logistic regression")
    return linear.LogisticRegression, {"max_iter": 1000}


def lightgbm_model(kind: str, seed: int) -> tuple[Any, dict[str, Any]]:
    """LightGBM's regressor or classifier, seeded, on one thread."""
    lightgbm = require("lightgbm", extra="models", purpose="gradient-boosted trees")
    cls = lightgbm.LGBMRegressor if kind == "regression" else lightgbm.LGBMClassifier
    return cls, {"n_estimators": 100, "random_state": seed, "n_jobs": 1, "verbose": -1}


def lightgbm_parameters() -> frozenset[str]:
    """LightGBM's own parameters and their aliases (``feature_fraction``, ``min_data_in_leaf``
    ...), which ``LGBMClassifier`` and ``LGBMRegressor`` accept beside their ``get_params()``;
    none when this LightGBM does not list them."""
    basic = require("lightgbm.basic", extra="models", purpose="gradient-boosted trees")
    table = getattr(getattr(basic, "_ConfigAliases", None), "_get_all_param_aliases", None)
    if table is None:
        return frozenset()
    aliases: dict[str, Any] = table()
    return frozenset(aliases) | frozenset(a for names in aliases.values() for a in names)


FIT_CHECK_ROWS = 1_000
"""The training outputs that fitting leaves behind are checked against the estimator's own
predictions on a seeded sample of this many rows before they are used (:func:`fit_lightgbm`)."""


def fit_lightgbm(estimator: Any, x: Any, y: np.ndarray) -> np.ndarray | None:
    """Fit a LightGBM estimator, and hand back its outputs on the training rows as boosting
    left them, equal to the bit to predicting them again, which costs about a third of the fit:
    LightGBM keeps each training row's score while it boosts, and the outputs are those
    scores after the last tree. They are kept where they equal the estimator's predictions on
    a seeded sample of ``FIT_CHECK_ROWS`` rows, as plain gradient boosting's do; dart and
    random forests rescale trees after adding them to the scores, which then differ from a
    prediction in the last bit, and None is handed back (the rows are predicted again)."""
    kept: list[np.ndarray] = []

    def keep_scores(preds: np.ndarray, _: Any) -> tuple[str, float, bool]:
        kept.append(np.array(preds))
        return "kept", 0.0, False

    def after_the_last_tree(env: Any) -> None:
        if env.iteration == env.end_iteration - 1:
            env.model.eval_train(feval=keep_scores)

    estimator.fit(x, y, callbacks=[after_the_last_tree])
    if not kept:
        return None
    scores = kept[-1]
    if hasattr(estimator, "predict_proba"):
        # As LGBMClassifier.predict_proba lays them out (a float sum may depend on it).
        outputs = (
            np.vstack((1.0 - scores, scores)).transpose()
            if scores.ndim == 1
            else np.ascontiguousarray(scores)
        )
        predict = estimator.predict_proba
    else:
        outputs, predict = scores, estimator.predict
    n = len(y)
    rows = np.sort(np.random.default_rng(0).choice(n, min(n, FIT_CHECK_ROWS), replace=False))
    expected = np.asarray(predict(x.iloc[rows] if hasattr(x, "iloc") else x[rows]))
    return outputs if np.array_equal(outputs[rows], expected) else None


def register_lightgbm(kind: str) -> None:
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


def tree_ensembles(model: Any) -> Iterator[dict[str, Any]]:
    """The attributes, by name, of each tree ensemble node of an ONNX ``model`` that holds
    its split values (``nodes_values``)."""
    for node in model.graph.node:
        if node.op_type.startswith("TreeEnsemble"):
            attrs = {a.name: a for a in node.attribute}
            if "nodes_values" in attrs:
                yield attrs


def snap_lightgbm_thresholds(model: Any, estimator: Any) -> None:
    """Make a LightGBM ensemble in ONNX (float32 thresholds), trained on float32 values, split
    float32 inputs as LightGBM does with its float64 thresholds.

    The converter rounds each threshold ``t`` to the nearest float32; when that rounds up, an
    input equal to the rounded value goes the wrong way — and with decimal data it often is
    such a value (the midpoint of 18.8 and 19.0 is 18.9). Each threshold becomes the largest
    float32 not above ``t``, under which ``x <= t`` holds for exactly the same float32 ``x``.
    Where two thresholds of a feature round to one float32, the first split of the first tree
    (taken root first, then left before right) decides.
    """
    onnx = require("onnx", extra="models", purpose="packaging models as ONNX")
    floors: dict[tuple[int, float], float] = {}
    for features, thresholds in _numeric_splits(estimator.booster_.model_to_string()):
        rounded = thresholds.astype(np.float32)
        floor = np.where(
            rounded.astype(np.float64) <= thresholds, rounded, np.nextafter(rounded, -np.inf)
        )
        for key, value in zip(
            zip(features.tolist(), rounded.astype(np.float64).tolist(), strict=True),
            floor.astype(np.float64).tolist(),
            strict=True,
        ):
            floors.setdefault(key, value)
    for attrs in tree_ensembles(model):
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


_TREE_KEYS = frozenset({"split_feature", "threshold", "decision_type", "left_child", "right_child"})


def _numeric_splits(text: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per tree of a LightGBM model in its text form (``Booster.model_to_string``), the
    feature index and threshold of each split on a number, root first, then the left subtree,
    then the right (``Booster.trees_to_dataframe``'s order, read ~20x faster: the text holds
    each threshold to the bit, as the JSON dump the ONNX converter reads does)."""
    tree: dict[str, np.ndarray] = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in _TREE_KEYS:
            kind = np.float64 if key == "threshold" else np.int64
            tree[key] = np.array(value.split(), dtype=kind)
        elif (key.startswith("Tree") or key == "end of trees") and tree:
            if len(tree["split_feature"]):
                yield _preorder(tree)
            tree = {}


def _preorder(tree: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A tree's numeric splits (decision type without its categorical bit), root first."""
    order, stack = [], [0]
    left, right = tree["left_child"], tree["right_child"]
    while stack:
        node = stack.pop()
        order.append(node)
        stack += [int(child) for child in (right[node], left[node]) if child >= 0]
    at = np.asarray(order)
    numeric = (tree["decision_type"][at] & 1) == 0
    return tree["split_feature"][at][numeric], tree["threshold"][at][numeric]
