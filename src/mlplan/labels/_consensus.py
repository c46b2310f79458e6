"""Consensus labels: majority vote with explicit ties, and Dawid–Skene EM for crowds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from mlplan.labels._annotations import AnnotationSet

__all__ = ["Consensus", "dawid_skene", "majority_vote"]


@dataclass(frozen=True)
class Consensus:
    """One label per item (-1: unresolved), with a confidence in [0, 1].

    ``confusion`` holds Dawid–Skene's per-annotator confusion matrices (annotator × true ×
    given), ``None`` for majority vote.
    """

    method: str
    label: np.ndarray
    confidence: np.ndarray
    posterior: np.ndarray
    iterations: int = 0
    converged: bool = True
    confusion: np.ndarray | None = None

    @property
    def resolved(self) -> np.ndarray:
        """Mask of items with a consensus label."""
        return np.asarray(self.label >= 0)


def majority_vote(
    annotations: AnnotationSet,
    *,
    ties: Literal["unresolved", "random"] = "unresolved",
    seed: int = 0,
) -> Consensus:
    """The most frequent label per item.

    Ties are explicit: ``unresolved`` leaves the item without a label (-1, for the relabel
    queue); ``random`` picks one of the tied classes with a seeded generator.

    Examples
    --------
    >>> s = AnnotationSet.from_records([1, 1, 1, 2, 2], list("abcab"), list("xxyxy"))
    >>> majority_vote(s).label.tolist(), majority_vote(s).confidence.round(2).tolist()
    ([0, -1], [0.67, 0.5])
    """
    counts = annotations.counts.astype(float)
    totals = counts.sum(axis=1)
    best = counts.max(axis=1)
    unlabeled = totals == 0
    tied = ((counts == best[:, None]).sum(axis=1) > 1) & ~unlabeled
    label = counts.argmax(axis=1)
    if ties == "random":
        rng = np.random.default_rng(seed)
        noise = rng.random(counts.shape) * (counts == best[:, None])
        label = np.where(tied, noise.argmax(axis=1), label)
    else:
        label = np.where(tied, -1, label)
    label = np.where(unlabeled, -1, label)
    with np.errstate(invalid="ignore", divide="ignore"):
        posterior = counts / totals[:, None]
        confidence = np.where(totals > 0, best / totals, 0.0)
    return Consensus("majority", label.astype(np.int64), confidence, np.nan_to_num(posterior))


def dawid_skene(
    annotations: AnnotationSet, *, max_iter: int = 100, tol: float = 1e-6, smoothing: float = 0.01
) -> Consensus:
    """Dawid–Skene EM: each annotator's confusion matrix and each item's class posterior.

    Starts from the majority-vote shares; stops when the log-likelihood improves by less
    than ``tol`` per annotation. ``smoothing`` is a pseudo-count that keeps rare confusions
    from being impossible.
    """
    k = annotations.n_classes
    n_items = len(annotations.items)
    n_ann = len(annotations.annotators)
    item, ann, label = annotations.item, annotations.annotator, annotations.label
    counts = annotations.counts.astype(float)
    posterior = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    previous = -np.inf
    iterations = 0
    converged = False
    confusion = np.zeros((n_ann, k, k))
    for iterations in range(1, max_iter + 1):  # noqa: B007 (the count is reported)
        # M-step: class priors and every annotator's confusion (true class × given label).
        prior = posterior.mean(axis=0) + 1e-12
        prior /= prior.sum()
        for true in range(k):
            confusion[:, true, :] = np.bincount(
                ann * k + label, weights=posterior[item, true], minlength=n_ann * k
            ).reshape(n_ann, k)
        confusion += smoothing
        confusion /= confusion.sum(axis=2, keepdims=True)
        # E-step: item posteriors from the priors and the labels given.
        log_confusion = np.log(confusion)
        log_post = np.tile(np.log(prior), (n_items, 1))
        for true in range(k):
            log_post[:, true] += np.bincount(
                item, weights=log_confusion[ann, true, label], minlength=n_items
            )
        top = log_post.max(axis=1, keepdims=True)
        likelihood = np.exp(log_post - top)
        total = likelihood.sum(axis=1, keepdims=True)
        posterior = likelihood / total
        log_likelihood = float((np.log(total) + top).sum())
        # The change in either direction: smoothing can make the plain likelihood dip a little.
        if abs(log_likelihood - previous) < tol * max(len(item), 1):
            converged = True
            break
        previous = log_likelihood
    labelled = counts.sum(axis=1) > 0
    label_out = np.where(labelled, posterior.argmax(axis=1), -1)
    return Consensus(
        "dawid_skene",
        label_out.astype(np.int64),
        np.where(labelled, posterior.max(axis=1), 0.0),
        posterior,
        iterations,
        converged,
        confusion,
    )
