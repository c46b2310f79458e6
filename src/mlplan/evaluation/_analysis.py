"""What the metrics say about where a model fails: error types and confusions, the decision
threshold, rare classes, where to focus, and regressions against the older system."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlplan.core import LOWER_IS_BETTER
from mlplan.modeling import (
    MetricEstimate,
    Predictions,
    SliceReport,
    aggregate,
    bootstrap,
    interval,
    per_class_from_confusion,
)
from mlplan.plan import recall_floor

__all__ = [
    "benjamini_hochberg",
    "choose_threshold",
    "confusions",
    "curves",
    "focus",
    "per_class",
    "regressions",
    "threshold_table",
    "versus_constant",
]


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if not m:
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def _oriented(metric: str, value: np.ndarray | float) -> Any:
    """Values turned so that larger is better."""
    return -value if metric in LOWER_IS_BETTER else value


# -- error types ---------------------------------------------------------------------------------


def confusions(data: Predictions, *, top: int = 10) -> dict[str, Any]:
    """The confusion matrix (rows: true class, columns: predicted) and the most frequent
    confusions, each with its share of the true class."""
    cm = aggregate(
        data, np.arange(data.n), np.zeros(data.n, np.int64), 1, ["count"], with_confusion=True
    )["_confusion"][0]
    pairs = []
    support = cm.sum(axis=1)
    for i, j in zip(*np.nonzero(cm), strict=True):
        if i != j:
            pairs.append(
                {
                    "true": data.classes[i],
                    "predicted": data.classes[j],
                    "count": int(cm[i, j]),
                    "share_of_true": float(cm[i, j] / support[i]),
                }
            )
    pairs.sort(key=lambda p: (-p["count"], p["true"], p["predicted"]))
    return {"labels": list(data.classes), "matrix": cm.tolist(), "top": pairs[:top]}


def per_class(
    data: Predictions,
    *,
    rare_share: float,
    min_support: int,
    level: float,
    overall: SliceReport,
    train_share: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Precision, recall, F1, FPR and FNR of every class with intervals; classes whose share
    (of the training rows when known, else of these rows) is below ``rare_share`` are rare.

    The intervals come from the resamples that gave ``overall`` (the slice report of every
    row) its intervals: one bootstrap serves every figure, so a binary task's positive-class
    recall has the overall recall's interval, not another one of the same number.
    """
    rows = np.arange(data.n)
    point_cm = aggregate(data, rows, np.zeros(data.n, np.int64), 1, ["count"], with_confusion=True)
    point = per_class_from_confusion(point_cm["_confusion"])
    confusion = overall.overall_draws.get("_confusion")
    drawn = per_class_from_confusion(confusion) if confusion is not None else {}
    out = []
    for j, name in enumerate(data.classes):
        support = int(point["support"][0, j])
        share = support / data.n if data.n else 0.0
        basis = (train_share or {}).get(name, share)
        entry: dict[str, Any] = {
            "class": name,
            "support": support,
            "share": share,
            "train_share": (train_share or {}).get(name),
            "rare": basis < rare_share,
        }
        for metric in ("precision", "recall", "f1", "fpr", "fnr"):
            low, high = interval(drawn[metric][:, j], level) if drawn else (None, None)
            value = float(point[metric][0, j])
            entry[metric] = {
                "value": value if np.isfinite(value) else None,
                "low": low,
                "high": high,
            }
        if support < min_support:
            entry["note"] = (
                f"only {support} example{'s' if support != 1 else ''} of {name!r} in these rows: "
                f"too few (below {min_support}) to conclude anything about this class"
            )
        out.append(entry)
    return out


# -- thresholds ----------------------------------------------------------------------------------

_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def _counts_at(score: np.ndarray, positive: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(tp, fp, fn, tn) at each threshold (predicted positive when score >= threshold)."""
    pos = np.sort(score[positive])
    neg = np.sort(score[~positive])
    tp = len(pos) - np.searchsorted(pos, thresholds, side="left")
    fp = len(neg) - np.searchsorted(neg, thresholds, side="left")
    fn = len(pos) - tp
    tn = len(neg) - fp
    return np.stack([tp, fp, fn, tn]).astype(np.float64)


def _rates(counts: np.ndarray) -> dict[str, np.ndarray]:
    tp, fp, fn, tn = counts
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        fpr = np.where(fp + tn > 0, fp / (fp + tn), np.nan)
        fnr = np.where(fn + tp > 0, fn / (fn + tp), np.nan)
        total = tp + fp + fn + tn
        accuracy = np.where(total > 0, (tp + tn) / total, np.nan)
        flagged = np.where(total > 0, (tp + fp) / total, np.nan)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "fpr": fpr,
        "fnr": fnr,
        "accuracy": accuracy,
        "flagged": flagged,
    }


def choose_threshold(
    score: np.ndarray, positive: np.ndarray, criterion: str
) -> tuple[float, float]:
    """The threshold that maximises ``criterion`` (``f1`` or ``youden``: TPR - FPR) over
    the distinct scores; returns (threshold, criterion value). A recall floor
    (``recall>=X``) gives the highest threshold whose recall is at least X, and that recall.
    """
    candidates = np.unique(score)
    floor = recall_floor(criterion)
    if floor is not None:
        return _recall_floor_threshold(score, positive, floor)
    if not candidates.size or positive.all() or not positive.any():
        return 0.5, float("nan")
    rates = _rates(_counts_at(score, positive, candidates))
    value = rates["f1"] if criterion == "f1" else (1 - rates["fnr"]) - rates["fpr"]
    best = int(np.nanargmax(value))
    return float(candidates[best]), float(value[best])


def _recall_floor_threshold(
    score: np.ndarray, positive: np.ndarray, floor: float
) -> tuple[float, float]:
    """The highest threshold whose recall is at least ``floor`` (recall only falls as the
    threshold rises, so precision is as high as the floor allows), and its recall; without
    a positive, (0.5, NaN): no threshold can be shown to reach the floor."""
    caught = np.sort(score[positive])[::-1]
    if not caught.size:
        return 0.5, float("nan")
    # The k-th highest positive score catches at least k positives (ties catch more).
    needed = max(int(np.ceil(floor * caught.size - 1e-9)), 1)
    chosen = float(caught[needed - 1])
    recall = float((caught >= chosen).sum() / caught.size)
    return chosen, recall


def versus_constant(score: np.ndarray, positive: np.ndarray, chosen: float) -> dict[str, Any]:
    """The decisions at ``chosen`` against the constant answers on the same rows: they do
    no better when always answering the positive class is as accurate (it misses nothing),
    or when they catch no positive at all (always answering the other class is as good).

    Examples
    --------
    >>> score = np.array([0.2, 0.3, 0.6, 0.7, 0.8, 0.9])
    >>> yes = np.array([True, True, True, True, True, False])
    >>> v = versus_constant(score, yes, 0.25)  # flags 5 of 6: 4 right, 2 wrong
    >>> v["no_better"], v["constant"], round(v["accuracy"], 3), round(v["constant_accuracy"], 3)
    (True, 'positive', 0.667, 0.833)
    """
    rates = {
        k: float(v[0]) for k, v in _rates(_counts_at(score, positive, np.array([chosen]))).items()
    }
    share = float(positive.mean()) if positive.size else float("nan")
    accuracy, recall = rates["accuracy"], rates["recall"]
    if accuracy <= share:  # always "positive" is as accurate and catches every positive
        constant, constant_accuracy, no_better = "positive", share, True
    elif positive.any() and recall == 0:  # catches none: always "negative" does as well
        constant, constant_accuracy, no_better = "negative", 1 - share, True
    else:
        majority = share >= 0.5
        constant = "positive" if majority else "negative"
        constant_accuracy, no_better = (share if majority else 1 - share), False
    return {
        "rows": int(positive.size),
        "accuracy": accuracy,
        "recall": recall,
        "flagged": rates["flagged"],
        "constant": constant,
        "constant_accuracy": constant_accuracy,
        "no_better": no_better,
    }


def threshold_table(
    score: np.ndarray, positive: np.ndarray, chosen: float
) -> list[dict[str, float | None]]:
    """Precision, recall, F1, FPR, FNR, accuracy and the share flagged at thresholds from
    0.05 to 0.95 and at the chosen one."""
    grid = np.unique(np.append(_GRID, chosen))
    rates = _rates(_counts_at(score, positive, grid))
    out: list[dict[str, float | None]] = []
    for i, t in enumerate(grid):
        row: dict[str, float | None] = {"threshold": float(t)}
        for k, v in rates.items():
            row[k] = float(v[i]) if np.isfinite(v[i]) else None
        out.append(row)
    return out


def curves(data: Predictions, *, points: int = 200) -> dict[str, Any]:
    """ROC and precision-recall curves (binary) and the calibration curve, thinned to about
    ``points`` points each for the report."""
    out: dict[str, Any] = {}
    proba = data.proba
    if proba is None:
        return out
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == data.y
    bins = np.minimum((confidence * 10).astype(int), 9)
    calibration = []
    for b in range(10):
        mask = bins == b
        if mask.any():
            calibration.append(
                {
                    "bin": [b / 10, (b + 1) / 10],
                    "confidence": float(confidence[mask].mean()),
                    "accuracy": float(correct[mask].mean()),
                    "count": int(mask.sum()),
                }
            )
    out["calibration"] = calibration
    if data.kind != "binary":
        return out
    score = proba[:, data.positive]
    positive = data.y == data.positive
    if positive.all() or not positive.any():
        return out
    thresholds = np.unique(score)[::-1]
    if len(thresholds) > points:
        thresholds = thresholds[np.linspace(0, len(thresholds) - 1, points).astype(int)]
    rates = _rates(_counts_at(score, positive, thresholds))
    tpr = 1 - rates["fnr"]
    out["roc"] = {"fpr": [0.0, *rates["fpr"].tolist(), 1.0], "tpr": [0.0, *tpr.tolist(), 1.0]}
    out["pr"] = {"recall": rates["recall"].tolist(), "precision": rates["precision"].tolist()}
    return out


# -- where to focus ------------------------------------------------------------------------------


def focus(
    reports: Sequence[SliceReport],
    draws: Mapping[tuple[str, str], Mapping[str, np.ndarray]],
    *,
    metric: str,
    total: int,
    min_support: Mapping[str, int],
    alpha: float,
    hlp: Mapping[tuple[str, str], float] | None = None,
    hlp_overall: float | None = None,
) -> list[dict[str, Any]]:
    """Slice values ranked by (gap to HLP, else to overall) x share of rows.

    The gap is oriented so that positive means the slice is worse. Whether a slice is
    significantly worse than overall is a one-sided z-test with the bootstrap standard
    error of the slice's value; p-values of all slice
    values are adjusted together (Benjamini-Hochberg). Values below their slice's minimum
    support are listed with a warning and not tested.
    """
    rows: list[dict[str, Any]] = []
    tested: list[int] = []
    p_values: list[float] = []
    for report in reports:
        overall = report.overall[metric].value
        for group, values in report.by_group.items():
            count = int(values["count"].value)
            if not np.isfinite(values[metric].value) or not count:
                continue
            reference, basis = _reference(report.name, group, overall, hlp, hlp_overall)
            row = _focus_row(report.name, group, values, metric, total, reference, basis)
            floor = min_support.get(report.name, 30)
            drawn = draws.get((report.name, group), {}).get(metric)
            if count < floor:
                row["warning"] = f"{count} rows, below the slice's min_support of {floor}"
            elif drawn is not None and np.isfinite(drawn).sum() >= 10 and np.isfinite(overall):
                p = _worse_than_overall(metric, row["score"], overall, drawn)
                row["p_value"] = p
                tested.append(len(rows))
                p_values.append(p)
            rows.append(row)
    for index, q in zip(tested, benjamini_hochberg(p_values), strict=True):
        rows[index]["q_value"] = float(q)
        # Significantly worse than overall (the test is one-sided), whatever the gap to HLP.
        rows[index]["significant"] = bool(q <= alpha)
    rows.sort(key=lambda r: (-r["priority"], r["slice"], r["value"]))
    return rows


def _reference(
    name: str,
    group: str,
    overall: float,
    hlp: Mapping[tuple[str, str], float] | None,
    hlp_overall: float | None,
) -> tuple[float, str]:
    """What a slice value is measured against: HLP of the slice, HLP overall, or the model's
    value over every row; and which of them."""
    reference = (hlp or {}).get((name, group))
    if reference is not None:
        return reference, "HLP of the slice"
    if hlp_overall is not None:
        return hlp_overall, "HLP overall"
    return overall, "overall"


def _focus_row(
    name: str,
    group: str,
    values: Mapping[str, MetricEstimate],
    metric: str,
    total: int,
    reference: float,
    basis: str,
) -> dict[str, Any]:
    count = int(values["count"].value)
    value = values[metric].value
    share = count / total if total else 0.0
    gap = float(_oriented(metric, reference) - _oriented(metric, value))
    return {
        "slice": name,
        "value": group,
        "count": count,
        "share": share,
        "metric": metric,
        "score": value,
        "low": values[metric].low,
        "high": values[metric].high,
        "reference": reference,
        "reference_kind": basis,
        "gap": gap,
        "priority": max(gap, 0.0) * share,
        "p_value": None,
        "q_value": None,
        "significant": False,
    }


def _worse_than_overall(metric: str, value: float, overall: float, drawn: np.ndarray) -> float:
    """One-sided z-test of the slice against overall, with the bootstrap's standard error
    (continuous p-values, unlike counting draws)."""
    from scipy.stats import norm

    finite = drawn[np.isfinite(drawn)]
    below = float(_oriented(metric, overall) - _oriented(metric, value))
    spread = float(np.std(finite, ddof=1))
    return float(norm.sf(below / spread)) if spread > 0 else (0.0 if below > 0 else 1.0)


# -- regressions ---------------------------------------------------------------------------------


def regressions(
    candidate: Predictions,
    other: Predictions,
    groups: Mapping[str, Mapping[str, np.ndarray]],
    *,
    metric: str,
    tolerance: float,
    min_support: Mapping[str, int],
    n_boot: int,
    seed: int,
    level: float,
) -> list[dict[str, Any]]:
    """Per slice value (and overall): the candidate minus the other system on ``metric``,
    with a paired bootstrap interval (the same resampled rows for both). A value is a
    regression when the whole interval lies below ``-tolerance`` (oriented: worse)."""
    every = {"overall": {"all rows": np.ones(candidate.n, dtype=bool)}} | dict(groups)
    out = []
    for name, values in every.items():
        floor = 1 if name == "overall" else min_support.get(name, 30)
        for group, mask in values.items():
            rows = np.flatnonzero(mask)
            if not rows.size:
                continue
            cells = np.zeros(rows.size, np.int64)
            mine = float(aggregate(candidate, rows, cells, 1, [metric])[metric][0])
            theirs = float(aggregate(other, rows, cells, 1, [metric])[metric][0])
            diff = _oriented(metric, mine) - _oriented(metric, theirs)
            entry: dict[str, Any] = {
                "slice": name,
                "value": group,
                "count": int(rows.size),
                "candidate": mine,
                "other": theirs,
                "difference": float(diff),
                "low": None,
                "high": None,
                "regression": False,
            }
            if rows.size < floor:
                entry["warning"] = f"{rows.size} rows, below the slice's min_support of {floor}"
            elif n_boot:
                key = f"regression:{name}:{group}"
                a = bootstrap(candidate, rows, [metric], n_boot=n_boot, seed=seed, key=key)
                b = bootstrap(other, rows, [metric], n_boot=n_boot, seed=seed, key=key)
                low, high = interval(
                    _oriented(metric, a[metric]) - _oriented(metric, b[metric]), level
                )
                entry["low"], entry["high"] = low, high
                entry["regression"] = bool(high is not None and high < -tolerance)
            out.append(entry)
    return out
