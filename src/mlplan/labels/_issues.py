"""Label issues: items whose annotators disagree, class pairs confused so often that their
definitions need clarifying, and (once a model exists) likely mislabeled items found by
confident learning on out-of-fold predicted probabilities.

Confident learning is implemented here (Northcutt, Jiang & Chuang, 2021); the cleanlab
package is AGPL-licensed and is not a dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlplan.errors import UsageError
from mlplan.labels._agreement import coincidence_matrix
from mlplan.labels._annotations import AnnotationSet
from mlplan.labels._consensus import Consensus

__all__ = ["ConfusedPair", "LabelIssue", "confused_pairs", "disagreements", "find_label_issues"]


@dataclass(frozen=True)
class LabelIssue:
    """An item that should be looked at again, and why."""

    item_id: str
    source: str  # "disagreement" | "confident_learning"
    score: float  # higher: more likely wrong
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "item_id": self.item_id,
            "source": self.source,
            "score": self.score,
            "details": self.details,
        }


@dataclass(frozen=True)
class ConfusedPair:
    """Two classes annotators mix up; ``share`` of the labels of either class on
    multiply-labeled items sit opposite the other."""

    a: str
    b: str
    count: float
    share: float

    @property
    def finding(self) -> str:
        """What to do about it."""
        return (
            f"annotators confuse '{self.a}' and '{self.b}' ({self.share:.0%} of their "
            f"labels): clarify the two definitions in labels.classes"
        )


def disagreements(
    annotations: AnnotationSet, consensus: Consensus, *, min_agreement: float = 1.0
) -> list[LabelIssue]:
    """Multiply-labeled items whose labels agree less than ``min_agreement`` (default: any
    disagreement), ranked by how split they are; each names the labels given."""
    counts = annotations.counts
    m = counts.sum(axis=1)
    share = np.where(m > 0, counts.max(axis=1) / np.maximum(m, 1), 1.0)
    chosen = np.flatnonzero((m >= 2) & (share < min_agreement))
    chosen = chosen[np.argsort(share[chosen], kind="stable")]
    out = []
    for i in chosen:
        given = {annotations.classes[c]: int(counts[i, c]) for c in np.flatnonzero(counts[i])}
        top_two = [annotations.classes[c] for c in np.argsort(-counts[i], kind="stable")[:2]]
        out.append(
            LabelIssue(
                annotations.items[i],
                "disagreement",
                float(1 - share[i]),
                {
                    "labels": given,
                    "pair": sorted(top_two),
                    "consensus": annotations.classes[consensus.label[i]]
                    if consensus.label[i] >= 0
                    else None,
                },
            )
        )
    return out


def confused_pairs(annotations: AnnotationSet, *, min_share: float = 0.1) -> list[ConfusedPair]:
    """Class pairs confused in at least ``min_share`` of their labels, most confused first."""
    coincidence = coincidence_matrix(annotations.counts)
    totals = coincidence.sum(axis=1)
    out = []
    k = annotations.n_classes
    for a in range(k):
        for b in range(a + 1, k):
            mixed = coincidence[a, b] + coincidence[b, a]
            base = totals[a] + totals[b]
            if base > 0 and mixed / base >= min_share:
                out.append(
                    ConfusedPair(
                        annotations.classes[a],
                        annotations.classes[b],
                        float(mixed / 2),
                        float(mixed / base),
                    )
                )
    return sorted(out, key=lambda p: -p.share)


def find_label_issues(
    labels: np.ndarray,
    pred_probs: np.ndarray,
    *,
    item_ids: list[str] | None = None,
    classes: list[str] | None = None,
) -> list[LabelIssue]:
    """Likely mislabeled items by confident learning.

    Per class j the threshold t_j is the mean predicted probability of j over items labeled j.
    An item labeled i is *confidently* of class j when p_j >= t_j (the largest such p when
    several are); items confidently of another class than their label are issues, ranked by
    the normalized margin p_j - p_i (largest first).

    Parameters
    ----------
    labels
        Given label per item (class indices).
    pred_probs
        Out-of-fold predicted probabilities, items × classes (rows sum to 1).

    Examples
    --------
    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9], [0.95, 0.05]])
    >>> [i.item_id for i in find_label_issues(np.array([0, 0, 1, 1, 1]), probs)]
    ['4']
    """
    labels = np.asarray(labels)
    probs = np.asarray(pred_probs, dtype=float)
    _check_inputs(labels, probs)
    k = probs.shape[1]
    confident, issue = _confidently_other(labels, probs)
    rows = np.arange(len(labels))
    margin = probs[rows, confident] - probs[rows, labels]
    names = classes or [str(j) for j in range(k)]
    ids = item_ids or [str(i) for i in rows]
    order = np.flatnonzero(issue)
    order = order[np.argsort(-margin[order], kind="stable")]
    return [
        LabelIssue(
            ids[i],
            "confident_learning",
            float(margin[i]),
            {
                "given": names[labels[i]],
                "suggested": names[confident[i]],
                "given_probability": float(probs[i, labels[i]]),
                "suggested_probability": float(probs[i, confident[i]]),
            },
        )
        for i in order
    ]


def _check_inputs(labels: np.ndarray, probs: np.ndarray) -> None:
    if probs.ndim != 2 or len(probs) != len(labels):
        raise UsageError(
            f"pred_probs must be items × classes with one row per label; got shape "
            f"{probs.shape} for {len(labels)} labels"
        )
    if not np.allclose(probs.sum(axis=1), 1, atol=1e-3):
        raise UsageError("each row of pred_probs must sum to 1 (out-of-fold probabilities)")
    k = probs.shape[1]
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= k:
        raise UsageError(f"labels must be class indices in [0, {k})")


def _confidently_other(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each item's confident class (the likeliest of those above their class threshold), and
    whether it is confidently of a class other than its label."""
    k = probs.shape[1]
    thresholds = np.array(
        [probs[labels == j, j].mean() if (labels == j).any() else 1.0 for j in range(k)]
    )
    above = probs >= thresholds[None, :] - 1e-12
    confident = np.where(above, probs, -1.0).argmax(axis=1)
    return confident, above.any(axis=1) & (confident != labels)
