"""Human-level performance (HLP): how well people do the task, the bar for the model.

For classification each annotator is scored against the gold label where one exists, else
against the consensus of the *other* annotators on the item (leave-one-out). The pooled score
is the expected performance of a typical annotator on a typical item. For regression, the
mean absolute disagreement between annotators. Intervals are bootstrapped over items.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlplan.errors import UsageError
from mlplan.labels._agreement import Interval, leave_one_out_reference
from mlplan.labels._annotations import AnnotationSet, within_item_pairs

__all__ = [
    "HARD_LABEL_METRICS",
    "HumanLevelPerformance",
    "confusion_metrics",
    "human_level_performance",
    "positive_class",
]

# Metrics defined for hard labels; ranking and probability metrics (roc_auc, log_loss...) are not.
HARD_LABEL_METRICS = ("accuracy", "macro_f1", "weighted_f1", "f1", "precision", "recall")
_POSITIVE_NAMES = ("1", "true", "yes", "positive", "pos")


def positive_class(classes: list[str]) -> int:
    """Index of the positive class of a binary task: a conventional name, else the second.

    Examples
    --------
    >>> positive_class(["no", "yes"]), positive_class(["churned", "stayed"])
    (1, 1)
    """
    for i, name in enumerate(classes):
        if name.strip().lower() in _POSITIVE_NAMES:
            return i
    return len(classes) - 1


def confusion_metrics(confusion: np.ndarray, *, positive: int | None = None) -> dict[str, float]:
    """Hard-label metrics from a true × predicted confusion matrix.

    Examples
    --------
    >>> m = confusion_metrics(np.array([[8, 2], [1, 9]]), positive=1)
    >>> round(m["accuracy"], 3), round(m["recall"], 3), round(m["precision"], 3)
    (0.85, 0.9, 0.818)
    """
    total = confusion.sum()
    true_counts = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    hits = np.diag(confusion).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, hits / predicted, 0.0)
        recall = np.where(true_counts > 0, hits / true_counts, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (true_counts + predicted) > 0
    out = {
        "accuracy": float(hits.sum() / total) if total else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "weighted_f1": float((f1 * true_counts).sum() / true_counts.sum())
        if true_counts.sum()
        else float("nan"),
    }
    if positive is not None:
        out |= {
            "precision": float(precision[positive]),
            "recall": float(recall[positive]),
            "f1": float(f1[positive]),
        }
    return out


@dataclass(frozen=True)
class HumanLevelPerformance:
    """HLP overall, per annotator and per slice, with how it was measured."""

    task: str
    reference: str
    compared: int
    items: int
    metrics: dict[str, Interval]
    primary: str | None
    primary_note: str | None
    per_annotator: list[dict[str, Any]] = field(default_factory=list)
    per_slice: list[dict[str, Any]] = field(default_factory=list)
    unresolved: int = 0  # labels not scored: the other annotators tied

    @property
    def primary_value(self) -> Interval | None:
        """HLP in the plan's primary metric, when that metric applies to hard labels."""
        return self.metrics.get(self.primary) if self.primary else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "task": self.task,
            "reference": self.reference,
            "compared": self.compared,
            "items": self.items,
            "primary": self.primary,
            "primary_note": self.primary_note,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "per_annotator": self.per_annotator,
            "per_slice": self.per_slice,
            "unresolved": self.unresolved,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HumanLevelPerformance:
        """Back from :meth:`to_dict` (as the store keeps it)."""

        def interval(d: dict[str, Any]) -> Interval:
            def number(v: Any) -> float:
                return float("nan") if v is None else float(v)

            return Interval(
                number(d.get("value")),
                number(d.get("low")),
                number(d.get("high")),
                float(d.get("level") or 0.95),
            )

        return cls(
            data["task"],
            data["reference"],
            data["compared"],
            data["items"],
            {k: interval(v) for k, v in data["metrics"].items()},
            data.get("primary"),
            data.get("primary_note"),
            data.get("per_annotator", []),
            data.get("per_slice", []),
            data.get("unresolved", 0),
        )


def _intervals(
    per_item: np.ndarray, summarise: Any, *, n_boot: int, seed: int
) -> dict[str, Interval]:
    """Bootstrap over items: ``per_item`` holds each item's additive contribution."""
    point = summarise(per_item.sum(axis=0))
    if n_boot <= 0 or len(per_item) == 0:
        return {k: Interval(v, float("nan"), float("nan")) for k, v in point.items()}
    rng = np.random.default_rng(seed)
    flat = per_item.reshape(len(per_item), -1).astype(float)
    draws: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(n_boot):
        weights = np.bincount(rng.integers(0, len(flat), len(flat)), minlength=len(flat))
        totals = (weights @ flat).reshape(per_item.shape[1:])
        for key, value in summarise(totals).items():
            draws[key].append(value)
    out = {}
    for key, value in point.items():
        values = np.asarray(draws[key])
        values = values[np.isfinite(values)]
        low, high = (
            np.percentile(values, [2.5, 97.5]) if values.size else (float("nan"), float("nan"))
        )
        out[key] = Interval(value, float(low), float(high))
    return out


Slices = Mapping[str, Mapping[str, np.ndarray]]


def _per_slice(
    items: np.ndarray,
    per_item: np.ndarray,
    slices: Slices | None,
    summarise: Any,
    *,
    n_boot: int,
    seed: int,
    min_support: Mapping[str, int] | None,
) -> list[dict[str, Any]]:
    """Metrics for every slice value holding measured items; intervals only where the value
    has the slice's minimum support (below it a bootstrap interval means nothing)."""
    out = []
    for name, values in (slices or {}).items():
        floor = (min_support or {}).get(name, 30)
        for value, mask in values.items():
            chosen = items[mask[items]]
            if not chosen.size:  # slice values without a labeled item are left out
                continue
            enough = chosen.size >= floor
            metrics = _intervals(
                per_item[chosen], summarise, n_boot=n_boot if enough else 0, seed=seed
            )
            row: dict[str, Any] = {
                "slice": name,
                "value": value,
                "items": int(chosen.size),
                "metrics": {k: v.to_dict() for k, v in metrics.items()},
            }
            if not enough:
                row["note"] = (
                    f"{chosen.size} items, below the slice's min_support of {floor}: "
                    "too few to conclude anything"
                )
            out.append(row)
    return out


def human_level_performance(
    annotations: AnnotationSet,
    *,
    task: str = "classification",
    gold: Mapping[str, str] | None = None,
    primary: str | None = None,
    positive: str | None = None,
    slices: Slices | None = None,
    min_support: Mapping[str, int] | None = None,
    n_boot: int = 200,
    seed: int = 0,
    min_items: int = 30,
) -> HumanLevelPerformance:
    """Measure HLP from multiply-labeled items (or gold labels).

    Parameters
    ----------
    annotations
        The labels given; items with a single label count only where gold exists.
    task
        ``classification`` or ``regression`` (labels must then be numbers).
    gold
        Item id → the gold label, for items that have one.
    primary
        The plan's primary metric; reported when it is defined for hard labels.
    slices
        Slice name → boolean mask over ``annotations.items``.
    min_items
        Fewest items with a reference that make an HLP figure; below it, a ``UsageError``
        says how many there are and how many are needed.
    """
    if task == "regression":
        return _regression(
            annotations,
            slices=slices,
            min_support=min_support,
            n_boot=n_boot,
            seed=seed,
            min_items=min_items,
        )
    return _classification(
        annotations,
        gold=gold,
        primary=primary,
        positive=positive,
        slices=slices,
        min_support=min_support,
        n_boot=n_boot,
        seed=seed,
        min_items=min_items,
    )


def _classification(
    annotations: AnnotationSet,
    *,
    gold: Mapping[str, str] | None,
    primary: str | None,
    positive: str | None,
    slices: Slices | None,
    min_support: Mapping[str, int] | None,
    n_boot: int,
    seed: int,
    min_items: int,
) -> HumanLevelPerformance:
    reference, source = _reference(annotations, gold)
    compared = reference >= 0
    # Annotations whose other labels tie have no reference: counted, not hidden.
    others = annotations.labels_per_item[annotations.item] > 1
    tied = int((others & ~compared).sum())
    items_compared = np.unique(annotations.item[compared])
    if items_compared.size < min_items:
        doubly = int(annotations.multiply_labeled.sum())
        raise UsageError(
            f"HLP needs at least {min_items} items labeled by two annotators or more (or with "
            f"gold labels); there are {doubly} multiply-labeled items, {items_compared.size} of "
            f"them with a usable reference: {min_items - items_compared.size} more are needed. "
            "Export a batch with overlap: mlplan labels export DATASET --overlap 0.3"
        )
    positive_index = _positive_index(annotations, positive)
    k = annotations.n_classes
    per_item = np.zeros((len(annotations.items), k, k))
    np.add.at(
        per_item, (annotations.item[compared], reference[compared], annotations.label[compared]), 1
    )

    def summarise(confusion: np.ndarray) -> dict[str, float]:
        return confusion_metrics(confusion, positive=positive_index)

    metrics = _intervals(per_item[items_compared], summarise, n_boot=n_boot, seed=seed)
    note = None
    if primary is not None and primary not in metrics:
        note = f"{primary} is not defined for hard human labels; HLP is given in accuracy and F1"
    per_slice = _per_slice(
        items_compared,
        per_item,
        slices,
        summarise,
        n_boot=n_boot,
        seed=seed,
        min_support=min_support,
    )
    return HumanLevelPerformance(
        "classification",
        source,
        int(compared.sum()),
        int(items_compared.size),
        metrics,
        primary if primary in metrics else None,
        note,
        _per_annotator(annotations, reference, positive_index),
        per_slice,
        tied,
    )


def _reference(
    annotations: AnnotationSet, gold: Mapping[str, str] | None
) -> tuple[np.ndarray, str]:
    """What each label is scored against (a class code, -1: nothing), and what that is: the
    gold label where there is one, else the consensus of the other annotators."""
    reference = leave_one_out_reference(annotations)
    if not gold:
        return reference, "consensus of the other annotators"
    class_index = {c: i for i, c in enumerate(annotations.classes)}
    item_index = {it: i for i, it in enumerate(annotations.items)}
    gold_codes = np.full(len(annotations.items), -1)
    for item_id, value in gold.items():
        if item_id in item_index and value in class_index:
            gold_codes[item_index[item_id]] = class_index[value]
    has_gold = gold_codes[annotations.item] >= 0
    reference = np.where(has_gold, gold_codes[annotations.item], reference)
    source = "gold labels" if has_gold.all() else "gold labels where present, else consensus"
    return reference, source


def _positive_index(annotations: AnnotationSet, positive: str | None) -> int | None:
    """The positive class's code for a binary task (the plan's, else by convention)."""
    if positive is not None and positive not in annotations.classes:
        raise UsageError(
            f"positive_class {positive!r} is not one of the classes "
            f"{annotations.classes}; fix positive_class in the plan"
        )
    if annotations.n_classes != 2:
        return None
    if positive is not None:
        return annotations.classes.index(positive)
    return positive_class(annotations.classes)


def _per_annotator(
    annotations: AnnotationSet, reference: np.ndarray, positive: int | None
) -> list[dict[str, Any]]:
    """Each annotator's metrics on the labels that have a reference."""
    k = annotations.n_classes
    compared = reference >= 0
    out = []
    for code, name in enumerate(annotations.annotators):
        mine = compared & (annotations.annotator == code)
        confusion = np.bincount(
            reference[mine] * k + annotations.label[mine], minlength=k * k
        ).reshape(k, k)
        out.append(
            {
                "annotator": name,
                "compared": int(mine.sum()),
                **confusion_metrics(confusion, positive=positive),
            }
        )
    return out


def _regression(
    annotations: AnnotationSet,
    *,
    slices: Slices | None,
    min_support: Mapping[str, int] | None,
    n_boot: int,
    seed: int,
    min_items: int,
) -> HumanLevelPerformance:
    try:
        values = np.array([float(c) for c in annotations.classes])[annotations.label]
    except ValueError:
        raise UsageError("regression HLP needs numeric labels") from None
    first, second = within_item_pairs(annotations.item)
    items_with_pairs = np.unique(annotations.item[first])
    if items_with_pairs.size < min_items:
        raise UsageError(
            f"HLP needs at least {min_items} items labeled by two annotators or more; there are "
            f"{items_with_pairs.size}. Label more items with overlap"
        )
    per_item = np.zeros((len(annotations.items), 2))
    np.add.at(per_item, (annotations.item[first], 0), np.abs(values[first] - values[second]))
    np.add.at(per_item, (annotations.item[first], 1), 1)

    def summarise(totals: np.ndarray) -> dict[str, float]:
        return {
            "mean_absolute_disagreement": float(totals[0] / totals[1])
            if totals[1]
            else float("nan")
        }

    metrics = _intervals(per_item[items_with_pairs], summarise, n_boot=n_boot, seed=seed)
    per_slice = _per_slice(
        items_with_pairs,
        per_item,
        slices,
        summarise,
        n_boot=n_boot,
        seed=seed,
        min_support=min_support,
    )
    return HumanLevelPerformance(
        "regression",
        "the other annotators",
        int(first.size),
        int(items_with_pairs.size),
        metrics,
        None,
        "regression HLP is the mean absolute disagreement",
        [],
        per_slice,
    )
