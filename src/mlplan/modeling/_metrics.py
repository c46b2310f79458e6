"""Metrics for many groups of rows at once: the point estimates.

Every metric is an aggregate over *cells*: a cell is a group of rows (a slice value).
Counting metrics come from one ``np.bincount`` of (cell, true class, predicted class); means
from weighted bincounts; ROC AUC and average precision from one sort of (cell, score). So a
hundred slices cost one pass over the rows. The bootstrap draws (``_resample.py``) compute
the same metrics from resample weights, and the slice report (``_slice_report.py``) puts
the two together.

The values equal scikit-learn's functions on the same rows (tests compare them, and
fairlearn's ``MetricFrame``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.errors import DataError, UsageError

__all__ = [
    "BINARY_METRICS",
    "MULTICLASS_METRICS",
    "NEEDS_PROBA",
    "REGRESSION_METRICS",
    "MetricEstimate",
    "PredictionKind",
    "Predictions",
    "aggregate",
    "interval",
    "metrics_for",
    "metrics_from_confusion",
    "per_class_from_confusion",
    "ranking_scores",
]

PredictionKind = Literal["binary", "multiclass", "regression"]

BINARY_METRICS = (
    "count",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "macro_f1",
    "fpr",
    "fnr",
    "fdr",
    "for",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
)
MULTICLASS_METRICS = (
    "count",
    "accuracy",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "weighted_precision",
    "weighted_recall",
    "weighted_f1",
    "roc_auc",
    "log_loss",
    "brier",
    "ece",
)
REGRESSION_METRICS = ("count", "mae", "rmse", "r2", "mape")
NEEDS_PROBA = frozenset({"roc_auc", "pr_auc", "log_loss", "brier", "ece"})
_RANKING = frozenset({"roc_auc", "pr_auc"})
_COUNTING = frozenset(BINARY_METRICS + MULTICLASS_METRICS) - NEEDS_PROBA
ECE_BINS = 10
_EPS = float(np.finfo(np.float64).eps)


def metrics_for(kind: PredictionKind, *, with_proba: bool = True) -> tuple[str, ...]:
    """The metrics mlplan computes for a kind of task (without probabilities: the ones
    that need only labels)."""
    names = {
        "binary": BINARY_METRICS,
        "multiclass": MULTICLASS_METRICS,
        "regression": REGRESSION_METRICS,
    }[kind]
    return names if with_proba else tuple(n for n in names if n not in NEEDS_PROBA)


@dataclass(frozen=True)
class MetricEstimate:
    """A metric's value on some rows, with a bootstrap interval when one was drawn."""

    value: float
    low: float | None = None
    high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (NaN as None)."""

        def clean(v: float | None) -> float | None:
            return None if v is None or not np.isfinite(v) else float(v)

        return {"value": clean(self.value), "low": clean(self.low), "high": clean(self.high)}


class Predictions:
    """Per-row arrays that every metric reads, prepared once.

    Classification keeps class codes (``y``, ``p``) into ``classes`` and, when probabilities
    are given, the per-row pieces of the probability metrics; regression keeps values.
    Class codes are made on first use: a DuckDB aggregation reads the labels as they are.
    """

    def __init__(
        self,
        kind: PredictionKind,
        y_true: np.ndarray,
        y_pred: np.ndarray,
        *,
        proba: np.ndarray | None = None,
        classes: list[str] | None = None,
        positive: str | None = None,
    ) -> None:
        self._kind = kind
        self.n = len(y_true)
        self._true = y_true
        self._pred = y_pred
        self._given = classes
        self._positive = positive
        self._proba = proba
        self._classes: list[str] | None = None
        self._codes: tuple[np.ndarray, np.ndarray] | None = None
        self._rows: dict[str, np.ndarray] = {}
        if kind == "regression":
            self.values: np.ndarray | None = y_true.astype(np.float64)
            self.predicted: np.ndarray | None = y_pred.astype(np.float64)
        else:
            self.values = self.predicted = None

    @classmethod
    def from_arrays(
        cls,
        y_true: Sequence[Any] | np.ndarray,
        y_pred: Sequence[Any] | np.ndarray,
        *,
        kind: PredictionKind | None = None,
        proba: np.ndarray | None = None,
        classes: Sequence[Any] | None = None,
        positive: Any = None,
    ) -> Predictions:
        """Prepare predictions.

        Parameters
        ----------
        y_true, y_pred
            True and predicted labels (classification) or values (regression).
        kind
            ``binary``, ``multiclass`` or ``regression``; unset: regression for float
            targets without ``classes``, else binary or multiclass by the number of classes.
        proba
            Class probabilities, one column per class of ``classes``, in that order.
        classes
            The model's classes (column order of ``proba``); unset: the sorted labels seen.
            A label outside them (a class never seen in training) gets a column of zeros.
        positive
            Binary: the class counted as positive; unset: the second of the classes.

        Raises
        ------
        DataError
            Arrays of different lengths, probabilities of the wrong shape, or a positive
            class that is not one of the classes.
        """
        y_true = np.asarray(y_true)
        y_pred = np.asarray(y_pred)
        if y_true.shape != y_pred.shape or y_true.ndim != 1:
            raise DataError(
                f"y_true and y_pred must be 1-D and of the same length; "
                f"got shapes {y_true.shape} and {y_pred.shape}"
            )
        if kind is None:
            kind = "regression" if y_true.dtype.kind == "f" and classes is None else "binary"
        names = None if classes is None else [str(c) for c in classes]
        if proba is not None:
            proba = _checked_proba(proba, len(y_true), names)
        if positive is not None and names is not None and str(positive) not in names:
            raise DataError(
                f"positive class {positive!r} is not one of the classes {', '.join(names)}"
            )
        return cls(
            kind,
            y_true,
            y_pred,
            proba=proba,
            classes=names,
            positive=None if positive is None else str(positive),
        )

    # -- labels, resolved on first use --------------------------------------------------------

    def _resolve(self, seen: Iterable[str]) -> list[str]:
        seen = set(seen)
        given = list(self._given or [])
        if self._given is None:
            # 0/1 and False/True labels are binary even when a sample shows only one of them
            # (scikit-learn's default positive label is 1).
            for pair in (["0", "1"], ["False", "True"]):
                if seen <= set(pair):
                    given = pair
                    self._given = pair
        extra = sorted(seen - set(given))
        if self._given is None:
            given, extra = extra, []
        self._classes = given + extra
        if self._proba is not None and extra:
            self._proba = np.hstack([self._proba, np.zeros((self.n, len(extra)))])
        if self._positive is not None and self._positive not in self._classes:
            raise DataError(
                f"positive class {self._positive!r} is not one of the classes "
                f"{', '.join(self._classes)}"
            )
        return self._classes

    def resolve_from(self, seen: Iterable[str]) -> None:
        """Fix the classes from labels an aggregation has already seen (all of them)."""
        if self._classes is None:
            self._resolve(seen)

    @property
    def classes(self) -> list[str]:
        """The class names: the model's, then any other label seen, in code order."""
        if self._classes is None:
            if self._kind == "regression":
                return []
            self._encode_all()
        assert self._classes is not None
        return self._classes

    def _encode_all(self) -> None:
        true_values, true_codes = _encode(self._true)
        pred_values, pred_codes = _encode(self._pred)
        classes = (
            self._classes
            if self._classes is not None
            else self._resolve([*true_values, *pred_values])
        )
        lookup = {c: i for i, c in enumerate(classes)}
        missing = sorted({*true_values, *pred_values} - set(lookup))
        if missing:  # pragma: no cover - resolve_from is always given every label
            raise DataError(f"labels {', '.join(missing)} are not among the classes")
        y = np.asarray([lookup[v] for v in true_values], dtype=np.int64)[true_codes]
        p = np.asarray([lookup[v] for v in pred_values], dtype=np.int64)[pred_codes]
        self._codes = (y, p)

    @property
    def kind(self) -> PredictionKind:
        """binary, multiclass or regression (more than two classes make it multiclass)."""
        if self._kind == "regression":
            return "regression"
        return "multiclass" if len(self.classes) > 2 else self._kind

    @property
    def y(self) -> np.ndarray:
        """True class codes."""
        if self._codes is None:
            self._encode_all()
        assert self._codes is not None
        return self._codes[0]

    @property
    def p(self) -> np.ndarray:
        """Predicted class codes."""
        if self._codes is None:
            self._encode_all()
        assert self._codes is not None
        return self._codes[1]

    @property
    def proba(self) -> np.ndarray | None:
        """Probabilities, one column per class (zeros for labels outside the model's)."""
        if self._proba is not None:
            _ = self.classes
        return self._proba

    @property
    def positive(self) -> int:
        """Binary: the code of the positive class."""
        classes = self.classes
        if self._positive is not None:
            return classes.index(self._positive)
        return min(1, max(len(classes) - 1, 0))

    @property
    def k(self) -> int:
        """How many classes."""
        return max(len(self.classes), 1)

    @property
    def scored(self) -> int:
        """How many classes have a probability column of their own (the model's classes;
        labels outside them are not ranked)."""
        return len(self._given) if self._given is not None else self.k

    def row_array(self, name: str) -> np.ndarray:
        """Per-row pieces of the probability metrics, computed once."""
        if name in self._rows:
            return self._rows[name]
        proba = self.proba
        assert proba is not None
        n = self.n
        y = self.y
        if name == "log_loss":
            taken = proba[np.arange(n), y] if n else np.zeros(0)
            out = -np.log(np.clip(taken, _EPS, 1 - _EPS))
        elif name == "brier":
            if self.kind == "binary":
                out = (proba[:, self.positive] - (y == self.positive)) ** 2
            else:
                onehot = np.zeros_like(proba)
                onehot[np.arange(n), y] = 1.0
                out = ((proba - onehot) ** 2).sum(axis=1)
        elif name == "ece_gap":
            out = (proba.argmax(axis=1) == y).astype(np.float64) - proba.max(axis=1)
        elif name == "ece_bin":
            confidence = proba.max(axis=1)
            out = np.minimum((confidence * ECE_BINS).astype(np.int64), ECE_BINS - 1)
        else:  # pragma: no cover - internal names only
            raise KeyError(name)
        self._rows[name] = out
        return out


def _checked_proba(proba: np.ndarray, n: int, names: list[str] | None) -> np.ndarray:
    """Probabilities as floats, one row per prediction and one column per class, in [0, 1]."""
    proba = np.asarray(proba, dtype=np.float64)
    width = len(names) if names is not None else proba.shape[-1]
    if proba.ndim != 2 or proba.shape != (n, width):
        raise DataError(
            f"probabilities must have one row per prediction and one column per class "
            f"({n} x {width}); got shape {proba.shape}"
        )
    bad = np.flatnonzero(~np.all(np.isfinite(proba) & (proba >= 0) & (proba <= 1), 1))
    if bad.size:
        raise DataError(
            f"{bad.size:,} rows have probabilities that are missing or outside [0, 1] "
            f"(e.g. row {bad[0]}: {proba[bad[0]].tolist()})"
        )
    return proba


def _encode(labels: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Distinct labels as strings, and each row's index into them (a hash pass, no sort)."""

    if labels.dtype == object:
        missing = sum(v is None or (isinstance(v, float) and v != v) for v in labels)
        if missing:
            raise DataError(f"{missing:,} labels are missing; every row needs one")
        labels = labels.astype(str)
    array = pa.array(labels)
    if array.null_count:
        raise DataError(f"{array.null_count:,} labels are missing; every row needs one")
    encoded = pc.dictionary_encode(array)
    values = [str(v) for v in encoded.dictionary.to_pylist()]
    return values, encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def _divide(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), empty)


def _from_confusion(cm: np.ndarray, name: str, positive: int) -> np.ndarray:
    """A counting metric of every cell from its confusion matrices ``cm`` (cells, K, K);
    zero_division as scikit-learn's default (0) for precision/recall/F1, NaN for rates."""
    n = cm.sum(axis=(1, 2)).astype(np.float64)
    tp_k = np.diagonal(cm, axis1=1, axis2=2).astype(np.float64)
    support = cm.sum(axis=2).astype(np.float64)  # true counts per class
    predicted = cm.sum(axis=1).astype(np.float64)
    if name == "count":
        return np.asarray(n)
    if name == "accuracy":
        return _divide(tp_k.sum(axis=1), n, np.nan)
    if name in {"precision", "recall", "f1", "fpr", "fnr", "fdr", "for"}:
        tp = tp_k[:, positive]
        fp = predicted[:, positive] - tp
        fn = support[:, positive] - tp
        tn = n - tp - fp - fn
        rates: dict[str, Any] = {
            "precision": lambda: _divide(tp, tp + fp, 0.0),
            "recall": lambda: _divide(tp, tp + fn, 0.0),
            "f1": lambda: _divide(2 * tp, 2 * tp + fp + fn, 0.0),
            "fpr": lambda: _divide(fp, fp + tn, np.nan),
            "fnr": lambda: _divide(fn, fn + tp, np.nan),
            "fdr": lambda: _divide(fp, fp + tp, np.nan),
            "for": lambda: _divide(fn, fn + tn, np.nan),
        }
        return np.asarray(rates[name]())
    average, _, base = name.partition("_")
    per_class = {
        "precision": _divide(tp_k, predicted, 0.0),
        "recall": _divide(tp_k, support, 0.0),
        "f1": _divide(2 * tp_k, support + predicted, 0.0),
    }[base]
    if average == "macro":
        # scikit-learn averages over the labels present in y_true or y_pred.
        present = (support + predicted) > 0
        return _divide((per_class * present).sum(axis=1), present.sum(axis=1), 0.0)
    return _divide((per_class * support).sum(axis=1), support.sum(axis=1), 0.0)


def metrics_from_confusion(
    cm: np.ndarray, names: Iterable[str], *, positive: int = 1
) -> dict[str, np.ndarray]:
    """Counting metrics of every cell from its confusion matrices ``cm`` (cells, K, K; true
    class by row, predicted by column), by the same definitions as :func:`aggregate`. The
    counts may be fractional: expected counts (performance estimated before labels) give
    the metrics of the expected matrix.

    Raises
    ------
    UsageError
        A metric that is not a count of the matrix (``roc_auc``, ``log_loss`` ...).

    Examples
    --------
    >>> cm = np.array([[[50.0, 10.0], [5.0, 35.0]]])
    >>> values = metrics_from_confusion(cm, ["accuracy", "f1"])
    >>> {name: round(float(v[0]), 3) for name, v in values.items()}
    {'accuracy': 0.85, 'f1': 0.824}
    """
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name not in _COUNTING:
            raise UsageError(
                f"metric {name!r} is not a count of the confusion matrix; "
                f"known: {', '.join(sorted(_COUNTING))}"
            )
        out[name] = _from_confusion(cm, name, positive)
    return out


def per_class_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1, support, FPR and FNR (one-vs-rest) of every cell:
    each an array (cells, K)."""
    n = cm.sum(axis=(1, 2)).astype(np.float64)[:, None]
    tp = np.diagonal(cm, axis1=1, axis2=2).astype(np.float64)
    support = cm.sum(axis=2).astype(np.float64)
    predicted = cm.sum(axis=1).astype(np.float64)
    fp = predicted - tp
    fn = support - tp
    tn = n - tp - fp - fn
    return {
        "support": support,
        "precision": _divide(tp, predicted, 0.0),
        "recall": _divide(tp, support, 0.0),
        "f1": _divide(2 * tp, support + predicted, 0.0),
        "fpr": _divide(fp, fp + tn, np.nan),
        "fnr": _divide(fn, fn + tp, np.nan),
    }


def ranking_scores(score: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """ROC AUC and average precision of one group of rows, as scikit-learn's
    ``roc_auc_score`` and ``average_precision_score`` give them, from one sort of the scores
    (NaN where the rows hold one outcome only)."""
    cells = np.zeros(len(score), dtype=np.int64)
    # Scores in descending order are -score in ascending order, ties alike.
    order = np.argsort(score)
    roc = _ranking(cells, score, positive, 1, "roc_auc", sorted_by=order)
    ap = _ranking(cells, score, positive, 1, "pr_auc", sorted_by=order[::-1])
    return float(roc[0]), float(ap[0])


def _ranking(
    cells: np.ndarray,
    score: np.ndarray,
    positive: np.ndarray,
    n_cells: int,
    name: str,
    *,
    sorted_by: np.ndarray | None = None,
) -> np.ndarray:
    """ROC AUC (Mann-Whitney, average ranks for ties) or average precision of every cell,
    from one sort of (cell, score); ``sorted_by``, for one cell, is that sort already made."""
    m = len(cells)
    out = np.full(n_cells, np.nan)
    if not m:
        return out
    pos = positive.astype(np.float64)
    p_count = np.bincount(cells, weights=pos, minlength=n_cells)
    total = np.bincount(cells, minlength=n_cells).astype(np.float64)
    n_count = total - p_count
    key = score if name == "roc_auc" else -score
    # Within a run of tied scores the order does not count (each row takes the run's mean
    # rank, or the precision at its end): one cell's rows already ranked are not sorted.
    order: np.ndarray | slice
    if sorted_by is not None:
        order = sorted_by
    elif n_cells > 1:
        order = np.lexsort((key, cells))
    elif np.all(key[1:] >= key[:-1]):
        order = slice(None)
    elif np.all(key[1:] <= key[:-1]):
        order = slice(None, None, -1)
    else:
        order = np.argsort(key)
    c = cells[order]
    s = key[order]
    y = pos[order]
    index = np.arange(m)
    new_cell = np.ones(m, dtype=bool)
    new_cell[1:] = c[1:] != c[:-1]
    cell_start = np.maximum.accumulate(np.where(new_cell, index, 0))
    new_group = new_cell.copy()
    new_group[1:] |= s[1:] != s[:-1]
    group_start = np.maximum.accumulate(np.where(new_group, index, 0))
    last = np.empty(m, dtype=bool)
    last[:-1] = new_group[1:]
    last[-1] = True
    # The end of each entry's tie group: the next group end at or after it.
    ends = np.where(last, index, m)
    group_end = np.minimum.accumulate(ends[::-1])[::-1]
    if name == "roc_auc":
        rank = (group_start + group_end) / 2.0 - cell_start + 1.0
        rank_sum = np.bincount(c, weights=rank * y, minlength=n_cells)
        with np.errstate(divide="ignore", invalid="ignore"):
            auc = (rank_sum - p_count * (p_count + 1) / 2.0) / (p_count * n_count)
        return np.where((p_count > 0) & (n_count > 0), auc, np.nan)
    cum_pos = np.cumsum(y)
    before_cell = cum_pos[cell_start] - y[cell_start]
    tps_at_end = cum_pos[group_end] - before_cell
    rank_at_end = group_end - cell_start + 1.0
    precision = tps_at_end / rank_at_end
    summed = np.bincount(c, weights=y * precision, minlength=n_cells)
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = summed / p_count
    return np.where(p_count > 0, ap, np.nan)


def aggregate(
    data: Predictions,
    rows: np.ndarray,
    cells: np.ndarray,
    n_cells: int,
    names: Iterable[str],
    *,
    with_confusion: bool = False,
) -> dict[str, np.ndarray]:
    """Every metric in ``names`` for each cell; ``rows[i]`` belongs to cell ``cells[i]``.

    With ``with_confusion`` the confusion matrices come back too, as ``_confusion``.
    """
    names = list(names)
    count = np.bincount(cells, minlength=n_cells).astype(np.float64)
    if data.kind == "regression":
        return _regression_cells(data, rows, cells, n_cells, names, count)
    k = data.k
    y = data.y[rows]
    p = data.p[rows]
    cm = np.bincount(cells * (k * k) + y * k + p, minlength=n_cells * k * k).reshape(n_cells, k, k)
    out: dict[str, np.ndarray] = {}
    if with_confusion:
        out["_confusion"] = cm
    for name in names:
        if name in NEEDS_PROBA:
            out[name] = _probability_cells(data, rows, cells, n_cells, name, count, y)
        else:
            out[name] = _from_confusion(cm, name, data.positive)
    return out


def _regression_cells(
    data: Predictions,
    rows: np.ndarray,
    cells: np.ndarray,
    n_cells: int,
    names: list[str],
    count: np.ndarray,
) -> dict[str, np.ndarray]:
    """Regression metrics of every cell from weighted bincounts of the errors."""
    assert data.values is not None and data.predicted is not None
    y = data.values[rows]
    err = data.predicted[rows] - y
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name == "count":
            out[name] = count
        elif name == "mae":
            out[name] = _divide(np.bincount(cells, np.abs(err), n_cells), count, np.nan)
        elif name == "rmse":
            out[name] = np.sqrt(_divide(np.bincount(cells, err * err, n_cells), count, np.nan))
        elif name == "mape":
            ratio = np.abs(err) / np.maximum(np.abs(y), _EPS)
            out[name] = _divide(np.bincount(cells, ratio, n_cells), count, np.nan)
        elif name == "r2":
            # Each cell centred on its own mean, as scikit-learn computes it.
            mean = _divide(np.bincount(cells, y, n_cells), count, 0.0)
            centred = y - mean[cells]
            sst = np.bincount(cells, centred * centred, n_cells)
            sse = np.bincount(cells, err * err, n_cells)
            constant = sst == 0
            r2 = 1.0 - _divide(sse, np.where(constant, 1.0, sst), np.nan)
            # scikit-learn's force_finite: a constant target scores 1 if fit exactly, else 0.
            r2 = np.where(constant, np.where(sse == 0, 1.0, 0.0), r2)
            out[name] = np.where(count >= 2, r2, np.nan)
        else:
            raise UsageError(f"metric {name!r} does not apply to regression")
    return out


def _probability_cells(
    data: Predictions,
    rows: np.ndarray,
    cells: np.ndarray,
    n_cells: int,
    name: str,
    count: np.ndarray,
    y: np.ndarray,
) -> np.ndarray:
    """A metric that reads the probabilities (NaN without them), for every cell."""
    proba = data.proba
    if proba is None:
        return np.full(n_cells, np.nan)
    if name in {"log_loss", "brier"}:
        values = data.row_array(name)[rows]
        return _divide(np.bincount(cells, values, n_cells), count, np.nan)
    if name == "ece":
        gap = data.row_array("ece_gap")[rows]
        bins = data.row_array("ece_bin")[rows]
        sums = np.bincount(cells * ECE_BINS + bins, gap, n_cells * ECE_BINS)
        return _divide(np.abs(sums.reshape(n_cells, ECE_BINS)).sum(axis=1), count, np.nan)
    if data.kind == "binary":
        return _ranking(cells, proba[rows, data.positive], y == data.positive, n_cells, name)
    # One-vs-rest, macro-averaged over the classes that have both outcomes.
    per_class = np.stack(
        [_ranking(cells, proba[rows, j], y == j, n_cells, name) for j in range(data.scored)]
    )
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(per_class)
        total = np.where(valid, per_class, 0.0).sum(axis=0)
        return _divide(total, valid.sum(axis=0).astype(np.float64), np.nan)


def interval(draws: np.ndarray | None, level: float) -> tuple[float | None, float | None]:
    """The percentile interval of bootstrap draws (finite ones), or (None, None)."""
    if draws is None:
        return None, None
    finite = draws[np.isfinite(draws)]
    if not finite.size:
        return None, None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)
