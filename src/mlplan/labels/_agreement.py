"""Inter-annotator agreement: percent agreement, Cohen's kappa per pair, Fleiss' kappa,
Krippendorff's alpha (nominal, ordinal, interval, ratio) with bootstrap intervals, per-class
agreement and the annotator table.

Everything is computed from the items × classes count matrix and the within-item pairs, so a
million annotations take seconds, not minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mlplan.errors import UsageError
from mlplan.labels._annotations import AnnotationSet, within_item_pairs

__all__ = [
    "AgreementReport",
    "AnnotatorStats",
    "Interval",
    "Level",
    "agreement",
    "cohen_kappa_pairs",
    "coincidence_matrix",
    "fleiss_kappa",
    "krippendorff_alpha",
    "leave_one_out_reference",
    "per_class_agreement",
    "percent_agreement",
]

Level = Literal["nominal", "ordinal", "interval", "ratio"]


@dataclass(frozen=True)
class Interval:
    """An estimate with its bootstrap confidence interval."""

    value: float
    low: float
    high: float
    level: float = 0.95

    def to_dict(self) -> dict[str, float]:
        """A JSON-ready view."""
        return {"value": self.value, "low": self.low, "high": self.high, "level": self.level}


def _numeric_classes(classes: list[str], level: Level, ordered: bool) -> np.ndarray:
    try:
        return np.array([float(c) for c in classes])
    except ValueError:
        if level == "ordinal" and ordered:
            return np.arange(len(classes), dtype=float)
        raise UsageError(
            f"{level} alpha needs numeric labels, and the classes {classes[:6]} have no "
            "numeric values. Use level nominal, or ordinal if the plan orders the classes "
            "(labels.scale: ordinal)"
        ) from None


def _distance(
    level: Level, classes: list[str], totals: np.ndarray, ordered: bool = False
) -> np.ndarray:
    """Krippendorff's squared distance δ² between every pair of classes."""
    k = len(classes)
    if level == "nominal":
        return 1.0 - np.eye(k)
    values = _numeric_classes(classes, level, ordered)
    if level == "interval":
        return np.asarray((values[:, None] - values[None, :]) ** 2)
    if level == "ratio":
        total = values[:, None] + values[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(total != 0, ((values[:, None] - values[None, :]) / total) ** 2, 0.0)
        return np.asarray(out)
    # ordinal: ranks by value; distance from the marginal counts between the two ranks
    order = np.argsort(values, kind="stable")
    ranked = totals[order]
    cumulative = np.concatenate(([0.0], np.cumsum(ranked)))
    delta = np.zeros((k, k))
    for a in range(k):
        for b in range(k):
            lo, hi = min(a, b), max(a, b)
            between = cumulative[hi + 1] - cumulative[lo]
            delta[order[a], order[b]] = (between - (ranked[a] + ranked[b]) / 2) ** 2
    return delta


def coincidence_matrix(counts: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Krippendorff's coincidence matrix of an items × classes count matrix: o_ck, the
    pairable values c and k on the same item, each item weighing 1 / (labels - 1), times its
    ``weights`` (bootstrap counts). Items with fewer than two labels take no part.

    Examples
    --------
    >>> coincidence_matrix(np.array([[2, 0], [1, 1]])).tolist()
    [[2.0, 1.0], [1.0, 0.0]]
    """
    m = counts.sum(axis=1)
    pairable = m >= 2
    n_uc = counts[pairable].astype(float)
    w = (np.ones(len(counts)) if weights is None else weights)[pairable] / (m[pairable] - 1)
    return np.asarray((n_uc * w[:, None]).T @ n_uc - np.diag((n_uc * w[:, None]).sum(axis=0)))


def _alpha_from_counts(
    counts: np.ndarray,
    weights: np.ndarray,
    level: Level,
    classes: list[str],
    ordered: bool = False,
) -> float:
    coincidence = coincidence_matrix(counts, weights)
    totals = coincidence.sum(axis=1)
    n = totals.sum()
    if n <= 1:
        return float("nan")
    delta = _distance(level, classes, totals, ordered)
    expected = (np.outer(totals, totals) * delta).sum()
    if expected == 0:
        return 1.0
    return float(1.0 - (n - 1) * (coincidence * delta).sum() / expected)


def _bootstrap(
    statistic: Any, n_items: int, *, n_boot: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    values = np.empty(n_boot)
    for b in range(n_boot):
        weights = np.bincount(rng.integers(0, n_items, n_items), minlength=n_items).astype(float)
        values[b] = statistic(weights)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def krippendorff_alpha(
    annotations: AnnotationSet,
    *,
    level: Level = "nominal",
    n_boot: int = 0,
    seed: int = 0,
) -> Interval:
    """Krippendorff's alpha, with a bootstrap interval over items when ``n_boot`` > 0.

    Ordinal and interval levels need labels with an order (numeric class names, or the plan's
    class order for ordinal); nominal labels are refused for them with the reason.

    Examples
    --------
    >>> s = AnnotationSet.from_records([1, 1, 2, 2, 3, 3], list("abababa")[:6], list("xxyyxy"))
    >>> round(krippendorff_alpha(s).value, 4)
    0.4444
    """
    counts = annotations.counts
    classes = annotations.classes
    if level != "nominal":
        _numeric_classes(classes, level, annotations.ordered)  # refuse early, before any work
    ones = np.ones(len(counts))
    value = _alpha_from_counts(counts, ones, level, classes, annotations.ordered)
    if n_boot <= 0:
        return Interval(value, float("nan"), float("nan"))
    low, high = _bootstrap(
        lambda w: _alpha_from_counts(counts, w, level, classes, annotations.ordered),
        len(counts),
        n_boot=n_boot,
        seed=seed,
    )
    return Interval(value, low, high)


def _pairable(annotations: AnnotationSet) -> tuple[np.ndarray, np.ndarray]:
    """Counts and label totals of the items with two labels or more."""
    counts = annotations.counts
    m = counts.sum(axis=1)
    keep = m >= 2
    return counts[keep].astype(float), m[keep].astype(float)


def percent_agreement(annotations: AnnotationSet) -> float:
    """Mean share of agreeing pairs per item, over items with two labels or more."""
    c, m = _pairable(annotations)
    if not len(m):
        return float("nan")
    return float(((c * (c - 1)).sum(axis=1) / (m * (m - 1))).mean())


def fleiss_kappa(annotations: AnnotationSet) -> float:
    """Fleiss' kappa over items with two labels or more (items may have different numbers of
    labels; with equal numbers it is Fleiss' original statistic)."""
    c, m = _pairable(annotations)
    if not len(m):
        return float("nan")
    observed = percent_agreement(annotations)
    shares = c.sum(axis=0) / m.sum()
    expected = float((shares**2).sum())
    return float((observed - expected) / (1 - expected)) if expected < 1 else 1.0


def per_class_agreement(annotations: AnnotationSet) -> dict[str, float]:
    """For each class: of the labels of that class on multiply-labeled items, the share whose
    other labels on the item agree (specific agreement, o_cc / n_c)."""
    coincidence = coincidence_matrix(annotations.counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.diag(coincidence) / coincidence.sum(axis=1)
    return {cls: float(v) for cls, v in zip(annotations.classes, share, strict=True)}


def _kappa(confusion: np.ndarray) -> float:
    total = confusion.sum()
    if total == 0:
        return float("nan")
    observed = np.trace(confusion) / total
    expected = float((confusion.sum(axis=0) * confusion.sum(axis=1)).sum() / total**2)
    if expected == 1:
        return 1.0 if observed == 1 else 0.0
    return float((observed - expected) / (1 - expected))


def cohen_kappa_pairs(annotations: AnnotationSet, *, min_shared: int = 1) -> list[dict[str, Any]]:
    """Cohen's kappa for every pair of annotators sharing at least ``min_shared`` items."""
    first, second = within_item_pairs(annotations.item)
    a1, a2 = annotations.annotator[first], annotations.annotator[second]
    l1, l2 = annotations.label[first], annotations.label[second]
    swap = a1 > a2  # order each pair (lower annotator code first)
    a1, a2 = np.where(swap, a2, a1), np.where(swap, a1, a2)
    l1, l2 = np.where(swap, l2, l1), np.where(swap, l1, l2)
    keep = a1 != a2
    a1, a2, l1, l2 = a1[keep], a2[keep], l1[keep], l2[keep]
    n_ann, k = len(annotations.annotators), annotations.n_classes
    pair = a1 * n_ann + a2
    used, pair_index = np.unique(pair, return_inverse=True)
    confusions = np.bincount(pair_index * k * k + l1 * k + l2, minlength=len(used) * k * k).reshape(
        len(used), k, k
    )
    out = []
    for code, confusion in zip(used, confusions, strict=True):
        shared = int(confusion.sum())
        if shared < min_shared:
            continue
        out.append(
            {
                "a": annotations.annotators[code // n_ann],
                "b": annotations.annotators[code % n_ann],
                "shared_items": shared,
                "kappa": _kappa(confusion),
                "agreement": float(np.trace(confusion) / shared),
            }
        )
    return out


def leave_one_out_reference(annotations: AnnotationSet) -> np.ndarray:
    """For each annotation, the majority label of the *other* annotators on its item, or -1
    when there are none or they tie."""
    others = annotations.counts[annotations.item].copy()
    others[np.arange(len(others)), annotations.label] -= 1
    best = others.max(axis=1)
    winners = (others == best[:, None]).sum(axis=1)
    reference = others.argmax(axis=1)
    reference[(best == 0) | (winners > 1)] = -1
    return np.asarray(reference)


@dataclass(frozen=True)
class AnnotatorStats:
    """One annotator's volume, speed and agreement with the others."""

    annotator: str
    labels: int
    agreement_with_consensus: float
    kappa_with_consensus: float
    compared: int
    seconds_per_label: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class AgreementReport:
    """Every agreement figure for one set of annotations."""

    items: int
    annotations: int
    annotators: int
    multiply_labeled_items: int
    percent_agreement: float
    fleiss_kappa: float
    alpha: Interval
    level: Level
    per_class: dict[str, float]
    pairs: list[dict[str, Any]]
    annotator_table: list[AnnotatorStats] = field(default_factory=list)

    def metric(self, name: Literal["krippendorff_alpha", "fleiss_kappa", "cohen_kappa"]) -> float:
        """The figure the plan's ``labels.agreement_metric`` names (Cohen's kappa: the pairs'
        mean weighted by shared items)."""
        if name == "krippendorff_alpha":
            return self.alpha.value
        if name == "fleiss_kappa":
            return self.fleiss_kappa
        if name != "cohen_kappa":
            raise UsageError(
                f"unknown agreement metric {name!r}; expected krippendorff_alpha, "
                "fleiss_kappa or cohen_kappa"
            )
        kappas = [p["kappa"] for p in self.pairs if np.isfinite(p["kappa"])]
        weights = [p["shared_items"] for p in self.pairs if np.isfinite(p["kappa"])]
        return float(np.average(kappas, weights=weights)) if kappas else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "items": self.items,
            "annotations": self.annotations,
            "annotators": self.annotators,
            "multiply_labeled_items": self.multiply_labeled_items,
            "percent_agreement": self.percent_agreement,
            "fleiss_kappa": self.fleiss_kappa,
            "krippendorff_alpha": self.alpha.to_dict(),
            "level": self.level,
            "per_class": self.per_class,
            "pairs": self.pairs,
            "annotator_table": [a.to_dict() for a in self.annotator_table],
        }


def agreement(
    annotations: AnnotationSet,
    *,
    level: Level = "nominal",
    n_boot: int = 200,
    seed: int = 0,
    seconds: np.ndarray | None = None,
) -> AgreementReport:
    """Every agreement figure, and the annotator table.

    ``seconds`` (time spent per annotation, NaN where unknown) adds speed to the table.
    """
    reference = leave_one_out_reference(annotations)
    k = annotations.n_classes
    table = []
    for code, name in enumerate(annotations.annotators):
        mine = annotations.annotator == code
        compared = mine & (reference >= 0)
        confusion = np.bincount(
            annotations.label[compared] * k + reference[compared], minlength=k * k
        ).reshape(k, k)
        n = int(compared.sum())
        speed = None
        if seconds is not None:
            spent = seconds[mine]
            spent = spent[np.isfinite(spent)]
            speed = float(spent.mean()) if spent.size else None
        table.append(
            AnnotatorStats(
                name,
                int(mine.sum()),
                float(np.trace(confusion) / n) if n else float("nan"),
                _kappa(confusion),
                n,
                speed,
            )
        )
    return AgreementReport(
        items=len(annotations.items),
        annotations=len(annotations.item),
        annotators=len(annotations.annotators),
        multiply_labeled_items=int(annotations.multiply_labeled.sum()),
        percent_agreement=percent_agreement(annotations),
        fleiss_kappa=fleiss_kappa(annotations),
        alpha=krippendorff_alpha(annotations, level=level, n_boot=n_boot, seed=seed),
        level=level,
        per_class=per_class_agreement(annotations),
        pairs=cohen_kappa_pairs(annotations),
        annotator_table=table,
    )
