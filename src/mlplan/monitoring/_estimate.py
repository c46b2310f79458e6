"""A classifier's performance estimated before its labels arrive, from its own confidences.

Confidence-based performance estimation (CBPE, as NannyML names it): once a model's scores
are *calibrated* (a score of 0.8 is right 80 % of the time), each monitored row's true class
is a draw from its calibrated probabilities, so the confusion matrix of a window has an
expected value, the sum of those probabilities over the rows the model assigned to each
class. The estimate of a counting metric (accuracy, precision, recall, F1, FPR ...; macro and
weighted averages for multiclass) is that metric of the expected matrix, computed by the
metric engine ``evaluate`` uses; binary ROC AUC is the expected Mann-Whitney statistic over
the expected numbers of positives and negatives.

The interval says where the *realised* value will fall once the window's labels arrive, if
the calibration holds: the labels are drawn from the calibrated probabilities many times
(each row's a categorical draw: a Poisson-binomial count per cell of the matrix) and the
metric's percentiles taken. Small windows (rows x draws up to ``EXACT_CELLS``) draw every
row's label, exactly; larger ones draw the matrix's cells from the normal law with their
exact means and covariances (and, for ROC AUC, the count of positives with their rank sum),
where the central limit theorem is closer than the percentiles can tell. A binary window of
more than 65,536 rows is first grouped by score into 65,536 bins split at the threshold, so
that calibration and ranking cost one pass and no sort. Either way the work is a few passes
over the rows plus a few thousand small draws, all in numpy.

The calibration's own error counts too, cheaply. It was fitted on the validation split's
``Calibration.rows`` rows, and isotonic regression keeps each block's sum of labels: the
expected confusion matrix of the validation rows is their realised one, up to the block at
the threshold. So on rows like the validation split the calibration's error in a counting
metric is that metric's own sampling error over ``rows`` rows, and a window of ``n`` rows
has its draws' spread widened by sqrt(1 + n / rows): negligible for a small window, the
larger part for a window larger than the split (tests check the coverage both ways). ROC AUC
is the exception: isotonic steps fitted on few rows add contrast to the scores, and a window
much larger than the validation split can see its ROC AUC overestimated by a few thousandths,
beyond the interval; fit on more validation rows to shrink it.

The known failure, said plainly: the estimate is only as good as the calibration *on the
monitored data*. A model whose scores were calibrated on validation but are not on live data
(concept drift: the same inputs now have other outcomes; or a shift into a region the
validation split hardly covered) is estimated wrongly, usually too well, and the interval
does not warn. Covariate shift alone (new mixes of inputs the model scores correctly) is what
CBPE handles. So the monitor shows the realised value beside the estimate as soon as labels
arrive (``EstimateResult.to_dict(realised=...)``), and a gap between them is a finding.

The calibration is fitted at training time with scikit-learn's ``IsotonicRegression`` (or
Platt's sigmoid when the validation split has few rows) and kept as a small table in JSON
(``Calibration.to_dict`` / ``from_dict``), applied with numpy: monitoring never unpickles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

import numpy as np

from mlplan._optional import require
from mlplan.errors import DataError, ParameterError
from mlplan.modeling import (
    BINARY_METRICS,
    MULTICLASS_METRICS,
    NEEDS_PROBA,
    MetricEstimate,
    metrics_from_confusion,
)

__all__ = [
    "EXACT_CELLS",
    "ISOTONIC_MIN_ROWS",
    "Calibration",
    "EstimateResult",
    "estimable_metrics",
    "estimate_performance",
    "fit_calibration",
]

# scikit-learn's user guide: isotonic calibration overfits below about a thousand rows,
# where the two-parameter sigmoid is the safer fit.
ISOTONIC_MIN_ROWS = 1000
# Up to this many rows x draws every row's label is drawn (exact for small windows); above,
# the normal law with the exact moments (a few megabytes of uniforms at most).
EXACT_CELLS = 4_000_000
_FORMAT = 1
# ROC AUC's ranks: sorted up to this many rows, binned above (one pass; see _ranks).
# Binary windows above this many rows are summarised first (see _summary).
_SUMMARY_ROWS = 65_536
_SUMMARY_BINS = 1 << 16
_LOGIT_CLIP = 1e-7
_Method = Literal["isotonic", "platt", "identity"]


def estimable_metrics(kind: Literal["binary", "multiclass"]) -> tuple[str, ...]:
    """The metrics :func:`estimate_performance` estimates for a kind of classifier: every
    counting metric of the metric engine, and ROC AUC for binary.

    Examples
    --------
    >>> estimable_metrics("multiclass")[:3]
    ('accuracy', 'macro_precision', 'macro_recall')
    """
    names = BINARY_METRICS if kind == "binary" else MULTICLASS_METRICS
    counting = tuple(n for n in names if n not in NEEDS_PROBA and n != "count")
    return (*counting, "roc_auc") if kind == "binary" else counting


# -- calibration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Curve:
    """One class's calibration curve: an isotonic table (linear between its points, flat
    beyond them, as scikit-learn predicts), Platt's sigmoid of the score's logit, or none."""

    method: _Method
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    a: float = 1.0
    b: float = 0.0

    def apply(self, score: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            table: np.ndarray = np.interp(score, np.asarray(self.x), np.asarray(self.y))
            return table
        if self.method == "platt":
            z = self.a * _logit(score) + self.b
            return 1.0 / (1.0 + np.exp(-z))
        return np.asarray(score, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        if self.method == "isotonic":
            return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}
        if self.method == "platt":
            return {"method": "platt", "a": self.a, "b": self.b}
        return {"method": "identity"}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> _Curve:
        if not isinstance(data, Mapping):
            raise DataError(f"calibration {where} must be an object; got {data!r}")
        method = data.get("method")
        try:
            if method == "isotonic":
                x = tuple(float(v) for v in data["x"])
                y = tuple(float(v) for v in data["y"])
                if len(x) != len(y) or not x or any(b < a for a, b in pairwise(x)):
                    raise ValueError("'x' and 'y' must be as long, 'x' not decreasing")
                if not all(0.0 <= v <= 1.0 for v in y):
                    raise ValueError("'y' must lie in [0, 1]")
                return cls("isotonic", x, y)
            if method == "platt":
                a, b = float(data["a"]), float(data["b"])
                if not (math.isfinite(a) and math.isfinite(b)):
                    raise ValueError("'a' and 'b' must be finite")
                return cls("platt", a=a, b=b)
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"calibration {where} ({method}) is malformed: {error}") from None
        if method == "identity":
            return cls("identity")
        raise DataError(
            f"calibration {where} has method {method!r}; expected isotonic, platt or identity"
        )


def _logit(score: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(score, dtype=np.float64), _LOGIT_CLIP, 1 - _LOGIT_CLIP)
    out: np.ndarray = np.log(p) - np.log1p(-p)
    return out


@dataclass(frozen=True)
class Calibration:
    """A classifier's calibration, fitted on its validation split: one curve per class
    (binary: the positive class's only), each a small table or two numbers.

    Made by :func:`fit_calibration` at training time, kept in the training reference as
    :meth:`to_dict`, read back with :meth:`from_dict`; :meth:`transform` applies it.

    Examples
    --------
    >>> table = {"format": 1, "method": "isotonic", "rows": 5000, "classes": ["no", "yes"],
    ...          "positive": "yes",
    ...          "curves": [{"method": "isotonic", "x": [0.1, 0.9], "y": [0.0, 0.6]}]}
    >>> Calibration.from_dict(table).transform(np.array([[0.5, 0.5]])).tolist()
    [[0.7, 0.3]]
    """

    classes: tuple[str, ...]
    positive: int | None
    method: Literal["isotonic", "platt"]
    rows: int
    curves: tuple[_Curve, ...] = field(repr=False)

    @property
    def kind(self) -> Literal["binary", "multiclass"]:
        """binary (two classes) or multiclass."""
        return "binary" if len(self.classes) == 2 else "multiclass"

    def transform(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, one column per class of ``classes``, each row summing
        to 1 (multiclass: the one-vs-rest curves' outputs normalised, as NannyML does).

        Raises
        ------
        DataError
            Probabilities of the wrong shape, missing or outside [0, 1].
        """
        proba = _checked(proba, len(self.classes))
        if self.positive is not None:
            pos = self.positive
            c = np.clip(self.curves[0].apply(proba[:, pos]), 0.0, 1.0)
            out = np.empty_like(proba)
            out[:, pos] = c
            out[:, 1 - pos] = 1.0 - c
            return out
        out = np.column_stack([curve.apply(proba[:, k]) for k, curve in enumerate(self.curves)])
        out = np.clip(out, 0.0, 1.0)
        total = out.sum(axis=1, keepdims=True)
        # A row every curve calls impossible keeps the model's own probabilities.
        empty = total[:, 0] <= 0
        if empty.any():
            out[empty] = proba[empty]
            total[empty] = proba[empty].sum(axis=1, keepdims=True)
        result: np.ndarray = out / np.where(total > 0, total, 1.0)
        return result

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the training reference stores."""
        return {
            "format": _FORMAT,
            "method": self.method,
            "rows": self.rows,
            "classes": list(self.classes),
            "positive": None if self.positive is None else self.classes[self.positive],
            "curves": [curve.to_dict() for curve in self.curves],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """The calibration :meth:`to_dict` wrote.

        Raises
        ------
        DataError
            A form this version cannot read, naming the field at fault.
        """
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            got = data.get("format") if isinstance(data, Mapping) else data
            raise DataError(
                f"calibration 'format' must be {_FORMAT}; got {got!r} "
                "(a reference written by another mlplan version: train the model again)"
            )
        classes = data.get("classes")
        if not isinstance(classes, list) or len(classes) < 2:
            raise DataError(f"calibration 'classes' must list two or more; got {classes!r}")
        names = tuple(str(c) for c in classes)
        method = data.get("method")
        if method not in ("isotonic", "platt"):
            raise DataError(f"calibration 'method' must be isotonic or platt; got {method!r}")
        rows = data.get("rows")
        if not isinstance(rows, int) or rows < 1:
            raise DataError(f"calibration 'rows' must be a positive count; got {rows!r}")
        positive = data.get("positive")
        if (positive is None) != (len(names) > 2) or (
            positive is not None and str(positive) not in names
        ):
            raise DataError(
                f"calibration 'positive' must name one of two classes {list(names)} "
                f"(none for more); got {positive!r}"
            )
        raw = data.get("curves")
        wanted = 1 if positive is not None else len(names)
        if not isinstance(raw, list) or len(raw) != wanted:
            raise DataError(
                f"calibration 'curves' must hold {wanted} curve(s) for {len(names)} classes; "
                f"got {raw!r:.80}"
            )
        curves = tuple(_Curve.from_dict(c, f"curves[{i}]") for i, c in enumerate(raw))
        index = None if positive is None else names.index(str(positive))
        return cls(names, index, method, rows, curves)


def fit_calibration(
    scores: np.ndarray,
    labels: Sequence[Any] | np.ndarray,
    classes: Sequence[Any],
    *,
    positive: Any = None,
) -> Calibration:
    """Fit a classifier's calibration on its validation split's scores and labels.

    Isotonic regression per class (one-vs-rest; binary: the positive class's score) when
    the split has at least ``ISOTONIC_MIN_ROWS`` rows, else Platt's sigmoid of the score's
    logit. A class whose validation rows hold one outcome only keeps its scores as they are
    (``identity``): there is nothing to fit.

    Parameters
    ----------
    scores
        The model's probabilities on the validation rows, one column per class of
        ``classes``, in that order.
    labels
        The validation rows' true classes.
    classes
        The model's classes (the columns of ``scores``).
    positive
        Binary: the positive class; unset: the second of ``classes``.

    Raises
    ------
    DataError
        No rows, scores of the wrong shape, labels outside ``classes``, or a positive
        class that is not one of them.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(size=2000)
    >>> y = np.where(rng.uniform(size=2000) < p**2, "yes", "no")   # scores too high
    >>> cal = fit_calibration(np.column_stack([1 - p, p]), y, ["no", "yes"])
    >>> calibrated = cal.transform(np.array([[0.3, 0.7]]))[0, 1]   # truly 0.7**2 = 0.49
    >>> cal.method, bool(abs(calibrated - 0.49) < 0.1)
    ('isotonic', True)
    """
    names = tuple(str(c) for c in classes)
    if len(names) < 2:
        raise DataError(f"a calibration needs two or more classes; got {list(names)}")
    scores = _checked(scores, len(names))
    truth = np.asarray(labels)
    truth = truth.astype(str) if truth.dtype.kind != "U" else truth
    if truth.shape != (len(scores),):
        raise DataError(
            f"labels must be one per row of scores ({len(scores):,}); got shape {truth.shape}"
        )
    if not len(truth):
        raise DataError("no validation rows to fit the calibration on")
    unknown = sorted(set(truth.tolist()) - set(names))
    if unknown:
        raise DataError(
            f"labels {', '.join(map(repr, unknown[:5]))} are not among the model's classes "
            f"{', '.join(names)}"
        )
    index: int | None = None
    if len(names) == 2:
        if positive is not None and str(positive) not in names:
            raise DataError(f"positive class {positive!r} is not one of {', '.join(names)}")
        index = names.index(str(positive)) if positive is not None else 1
    method: Literal["isotonic", "platt"] = (
        "isotonic" if len(truth) >= ISOTONIC_MIN_ROWS else "platt"
    )
    columns = [index] if index is not None else range(len(names))
    curves = tuple(_fit_curve(scores[:, k], truth == names[k], method) for k in columns)
    return Calibration(names, index, method, len(truth), curves)


def _fit_curve(score: np.ndarray, outcome: np.ndarray, method: _Method) -> _Curve:
    if outcome.all() or not outcome.any():
        return _Curve("identity")
    if method == "isotonic":
        isotonic = require("sklearn.isotonic", extra="models", purpose="fitting a calibration")
        fitted = isotonic.IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
            score, outcome.astype(np.float64)
        )
        x = fitted.X_thresholds_.astype(np.float64)
        y = fitted.y_thresholds_.astype(np.float64)
        return _Curve("isotonic", tuple(x.tolist()), tuple(y.tolist()))
    linear = require("sklearn.linear_model", extra="models", purpose="fitting a calibration")
    # Unregularised: two parameters on hundreds of rows need no shrinking.
    model = linear.LogisticRegression(C=1e6).fit(_logit(score)[:, None], outcome)
    return _Curve("platt", a=float(model.coef_[0, 0]), b=float(model.intercept_[0]))


def _checked(proba: np.ndarray, width: int) -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != width:
        raise DataError(f"scores must have one column per class ({width}); got shape {proba.shape}")
    # Two reductions (NaN fails both comparisons); the rows at fault only when there are some.
    if proba.size and not (proba.min() >= 0.0 and proba.max() <= 1.0):
        bad = np.flatnonzero(~np.all(np.isfinite(proba) & (proba >= 0) & (proba <= 1), axis=1))
        raise DataError(
            f"{bad.size:,} rows have scores missing or outside [0, 1] "
            f"(e.g. row {bad[0]}: {proba[bad[0]].tolist()})"
        )
    return proba


# -- the estimate -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EstimateResult:
    """The estimated metrics of one window (or slice) of a classifier's predictions.

    ``estimates`` maps each metric to its :class:`~mlplan.modeling.MetricEstimate`: the
    value of the expected confusion matrix and the ``level`` interval of the realised value;
    ``draws`` says how the interval was drawn (``exact``: every row's label; ``normal``: the
    matrix's cells from their exact moments).
    """

    rows: int
    kind: Literal["binary", "multiclass"]
    level: float
    draws: Literal["exact", "normal"]
    estimates: dict[str, MetricEstimate]

    def to_dict(self, *, realised: Mapping[str, float | None] | None = None) -> dict[str, Any]:
        """A JSON-ready view; with ``realised`` (each metric's value once the window's labels
        arrived, as the metric engine gives it), each metric shows the two side by side and
        whether the realised value fell inside the interval.

        Examples
        --------
        >>> result = EstimateResult(500, "binary", 0.95, "exact",
        ...                         {"f1": MetricEstimate(0.71, 0.66, 0.76)})
        >>> result.to_dict(realised={"f1": 0.69})["metrics"]["f1"]
        {'estimated': {'value': 0.71, 'low': 0.66, 'high': 0.76}, 'realised': 0.69, 'within': True}
        """
        metrics: dict[str, Any] = {}
        for name, estimate in self.estimates.items():
            entry: dict[str, Any] = {"estimated": estimate.to_dict()}
            if realised is not None:
                value = realised.get(name)
                value = None if value is None or not math.isfinite(value) else float(value)
                entry["realised"] = value
                entry["within"] = (
                    None
                    if value is None or estimate.low is None or estimate.high is None
                    else bool(estimate.low <= value <= estimate.high)
                )
            metrics[name] = entry
        return {
            "rows": self.rows,
            "kind": self.kind,
            "level": self.level,
            "draws": self.draws,
            "metrics": metrics,
        }


def estimate_performance(
    proba: np.ndarray,
    *,
    calibration: Calibration,
    metrics: Sequence[str],
    threshold: float = 0.5,
    level: float = 0.95,
    draws: int = 1000,
    seed: int = 0,
) -> EstimateResult:
    """Estimate a classifier's metrics on rows whose labels are not known yet.

    Parameters
    ----------
    proba
        The model's probabilities on the monitored rows, one column per class of
        ``calibration.classes``, in that order (as the package answers them).
    calibration
        The model's calibration (its training reference's).
    metrics
        The metrics to estimate (:func:`estimable_metrics`), e.g. the plan's primary one.
    threshold
        Binary: the model's decision threshold (predicted positive when the positive
        class's score is at least this); multiclass predicts the most probable class.
    level
        The interval's coverage of the realised value, in (0, 1).
    draws
        How many label draws make the interval (at least 100).
    seed
        The draws' seed: the same rows and seed give the same interval.

    Raises
    ------
    ParameterError
        A metric that cannot be estimated for this kind of model (the message lists those
        that can), or a level, draws or threshold out of range.
    DataError
        Probabilities of the wrong shape, missing or outside [0, 1].

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> p = rng.beta(2, 2, size=4000)
    >>> y = np.where(rng.uniform(size=4000) < p, "yes", "no")
    >>> cal = fit_calibration(np.column_stack([1 - p, p]), y, ["no", "yes"])
    >>> live = rng.beta(2, 2, size=2000)
    >>> r = estimate_performance(np.column_stack([1 - live, live]), calibration=cal,
    ...                          metrics=["accuracy"])
    >>> e = r.estimates["accuracy"]
    >>> r.draws, round(e.value, 2), e.low < e.value < e.high
    ('exact', 0.68, True)
    """
    kind = calibration.kind
    known = estimable_metrics(kind)
    wrong = [m for m in metrics if m not in known]
    if wrong or not metrics:
        raise ParameterError(
            "metrics",
            f"{{param}} {', '.join(map(repr, wrong)) or '(none)'} cannot be estimated before "
            f"labels for a {kind} model; estimable: {', '.join(known)}",
        )
    if not 0 < level < 1:
        raise ParameterError("level", f"{{param}} must be in (0, 1); got {level}")
    if draws < 100:
        raise ParameterError("draws", f"{{param}} must be at least 100; got {draws}")
    if not 0 < threshold < 1:
        raise ParameterError("threshold", f"{{param}} must be in (0, 1); got {threshold}")
    k = len(calibration.classes)
    proba = _checked(proba, k)
    n = len(proba)
    weight: np.ndarray | None = None
    if calibration.positive is not None:
        pos = calibration.positive
        score = proba[:, pos]
        if n > _SUMMARY_ROWS:
            weight, score, decided = _summary(score, threshold)
        else:
            decided = score >= threshold
        calibrated = np.empty((len(score), 2))
        calibrated[:, pos] = np.clip(calibration.curves[0].apply(score), 0.0, 1.0)
        calibrated[:, 1 - pos] = 1.0 - calibrated[:, pos]
        predicted = np.where(decided, pos, 1 - pos)
    else:
        calibrated = calibration.transform(proba)
        predicted = proba.argmax(axis=1)
    exact = weight is None and n * draws <= EXACT_CELLS
    rng = np.random.default_rng(seed)
    widen = math.sqrt(1.0 + n / calibration.rows)
    counting = [m for m in metrics if m != "roc_auc"]
    estimates: dict[str, MetricEstimate] = {}
    if counting:
        positive = calibration.positive if calibration.positive is not None else 1
        means, squares = _moments(calibrated, predicted, k, weight)
        sampled = (
            _exact_confusions(calibrated, predicted, k, draws, rng)
            if exact
            else _normal_confusions(means, squares, draws, rng)
        )
        points = metrics_from_confusion(means.T[None], counting, positive=positive)
        spread = metrics_from_confusion(sampled, counting, positive=positive)
        for name in counting:
            estimates[name] = _estimate(float(points[name][0]), spread[name], level, widen)
    if "roc_auc" in metrics:
        assert calibration.positive is not None
        c = np.ascontiguousarray(calibrated[:, calibration.positive])
        w = np.ones(n) if weight is None else weight
        # The summary's groups are in score order, each its rows tied.
        rank = _ranks(score) if weight is None else np.cumsum(w) - (w - 1) / 2.0
        moments = _AucMoments.of(c, rank, w)
        sampled_auc = _exact_aucs(c, rank, draws, rng) if exact else moments.draws(draws, rng)
        estimates["roc_auc"] = _estimate(moments.expected(), sampled_auc, level, widen)
    ordered = {m: estimates[m] for m in metrics}
    return EstimateResult(n, kind, level, "exact" if exact else "normal", ordered)


def _estimate(value: float, draws: np.ndarray, level: float, widen: float) -> MetricEstimate:
    """The value with the percentile interval of the draws, their spread around their mean
    widened by ``widen`` for the calibration's own error."""
    finite = draws[np.isfinite(draws)]
    if not math.isfinite(value) or not finite.size:
        return MetricEstimate(value if math.isfinite(value) else math.nan)
    centre = finite.mean()
    finite = centre + (finite - centre) * widen
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    # The plug-in value may sit a hair outside a skewed draw's percentiles: the interval
    # holds it all the same.
    return MetricEstimate(value, float(min(low, value)), float(max(high, value)))


def _moments(
    calibrated: np.ndarray, predicted: np.ndarray, k: int, weight: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """For each predicted class j, the sum of the calibrated probabilities of its rows (K, K:
    row j; the expected column j of the confusion matrix) and the sum of their outer products
    (K, K, K), from one pass over the rows ordered by predicted class; ``weight``: how many
    rows each one stands for."""
    order = np.argsort(predicted.astype(np.int8 if k < 128 else np.int64), kind="stable")
    ordered = calibrated[order]
    weights = None if weight is None else weight[order]
    bounds = np.searchsorted(predicted[order], np.arange(k + 1))
    means = np.zeros((k, k))
    squares = np.zeros((k, k, k))
    for j in range(k):
        rows = ordered[bounds[j] : bounds[j + 1]]
        weighted = rows if weights is None else rows * weights[bounds[j] : bounds[j + 1], None]
        means[j] = weighted.sum(axis=0)
        squares[j] = weighted.T @ rows
    return means, squares


def _exact_confusions(
    calibrated: np.ndarray, predicted: np.ndarray, k: int, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """Confusion matrices (draws, K, K) of labels drawn row by row from the calibrated
    probabilities (inverse CDF of one uniform per row), a few hundred draws at a time; the
    rows ordered by predicted class once, so that each column of the matrix counts a slice."""
    n = len(predicted)
    order = np.argsort(predicted, kind="stable")
    cdf = np.cumsum(calibrated[order], axis=1)[:, :-1]
    bounds = np.searchsorted(predicted[order], np.arange(k + 1))
    out = np.empty((draws, k, k))
    step = max(1, min(draws, EXACT_CELLS // max(n * (k - 1), 1)))
    for start in range(0, draws, step):
        b = min(step, draws - start)
        u = rng.random((b, n))
        block = out[start : start + b]
        if k == 2:
            second = u >= cdf[None, :, 0]
            for j in range(k):
                lo, hi = bounds[j], bounds[j + 1]
                block[:, 1, j] = np.count_nonzero(second[:, lo:hi], axis=1)
                block[:, 0, j] = (hi - lo) - block[:, 1, j]
            continue
        truth = (u[:, :, None] >= cdf[None]).sum(axis=2, dtype=np.int8)
        for j in range(k):
            rows = truth[:, bounds[j] : bounds[j + 1]]
            for t in range(k):
                block[:, t, j] = np.count_nonzero(rows == t, axis=1)
    return out


def _normal_confusions(
    means: np.ndarray, squares: np.ndarray, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """Confusion matrices (draws, K, K) whose column j (the rows predicted j) is drawn from
    the normal law of a sum of independent categorical draws: mean sum(c), covariance
    sum(diag(c) - c c')."""
    k = len(means)
    out = np.empty((draws, k, k))
    for j in range(k):
        cov = np.diag(means[j]) - squares[j]
        drawn = means[j] + rng.standard_normal((draws, k)) @ _root(cov).T
        out[:, :, j] = np.clip(drawn, 0, None)
    return out


def _root(cov: np.ndarray) -> np.ndarray:
    """A square root L of a covariance (L L' = cov), singular ones included."""
    values, vectors = np.linalg.eigh(cov)
    root: np.ndarray = vectors * np.sqrt(np.clip(values, 0.0, None))
    return root


def _summary(score: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A large binary window in one pass: its rows grouped by score into ``_SUMMARY_BINS``
    equal bins of [0, 1], split at the threshold; each group's row count, mean score and
    decision, in score order. The groups' rows then share one calibrated probability and
    count as tied in ROC AUC: within a bin (1/65,536 wide) the calibration hardly moves, and
    ROC AUC changes by far less than its interval."""
    bins = np.minimum((score * _SUMMARY_BINS).astype(np.int64), _SUMMARY_BINS - 1)
    key = bins * 2 + (score >= threshold)
    count = np.bincount(key, minlength=2 * _SUMMARY_BINS)
    total = np.bincount(key, weights=score, minlength=2 * _SUMMARY_BINS)
    found = np.flatnonzero(count)
    rows = count[found].astype(np.float64)
    return rows, total[found] / rows, (found & 1).astype(bool)


def _ranks(score: np.ndarray) -> np.ndarray:
    """1-based ranks of the scores, ties sharing their mean rank."""
    n = len(score)
    order = np.argsort(score, kind="stable")
    ordered = score[order]
    new = np.ones(n, dtype=bool)
    new[1:] = ordered[1:] != ordered[:-1]
    group = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n)
    rank = np.empty(n)
    rank[order] = ((starts + ends + 1) / 2.0)[group]
    return rank


def _auc(positives: np.ndarray, rank_sum: np.ndarray, n: int) -> np.ndarray:
    """Mann-Whitney's ROC AUC from the count of positives and the sum of their ranks."""
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - positives * (positives + 1) / 2.0) / (positives * (n - positives))
    return np.where((positives > 0) & (positives < n), auc, np.nan)


@dataclass(frozen=True)
class _AucMoments:
    """Of P = sum(y_i) and S = sum(y_i * rank_i), y_i ~ Bernoulli(c_i) independent, each
    entry standing for ``weight`` tied rows: their means and covariance (sums of products,
    not BLAS: a dot product's thread start costs more than these few passes)."""

    rows: float
    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def of(cls, c: np.ndarray, rank: np.ndarray, weight: np.ndarray) -> _AucMoments:
        wc = weight * c
        v = wc * (1 - c)
        vr = v * rank
        mean = np.array([wc.sum(), (wc * rank).sum()])
        cov = np.array([[v.sum(), vr.sum()], [vr.sum(), (vr * rank).sum()]])
        return cls(float(weight.sum()), mean, cov)

    def expected(self) -> float:
        """E[U] / (E[P] E[N]): the expected Mann-Whitney count over the expected numbers of
        positives and negatives, as NannyML's CBPE estimates ROC AUC."""
        n, p = self.rows, float(self.mean[0])
        if not 0 < p < n:
            return math.nan
        # E[P(P+1)/2] = (E[P]^2 + Var P + E[P]) / 2.
        u = float(self.mean[1]) - (p * p + float(self.cov[0, 0]) + p) / 2.0
        return u / (p * (n - p))

    def draws(self, draws: int, rng: np.random.Generator) -> np.ndarray:
        """ROC AUC of (P, S) drawn from their bivariate normal law."""
        drawn = self.mean + rng.standard_normal((draws, 2)) @ _root(self.cov).T
        return _auc(drawn[:, 0], drawn[:, 1], round(self.rows))


def _exact_aucs(
    c: np.ndarray, rank: np.ndarray, draws: int, rng: np.random.Generator
) -> np.ndarray:
    n = len(c)
    out = np.empty(draws)
    step = max(1, min(draws, EXACT_CELLS // max(n, 1)))
    for start in range(0, draws, step):
        b = min(step, draws - start)
        y = (rng.random((b, n)) < c[None]).astype(np.float64)
        out[start : start + b] = _auc(y.sum(axis=1), y @ rank, n)
    return out
