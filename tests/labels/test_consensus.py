"""Consensus labels: majority vote with explicit ties, and Dawid–Skene EM."""

from __future__ import annotations

import numpy as np
import pytest

from mlplan.labels import AnnotationSet, dawid_skene, majority_vote


def _crowd(
    rng: np.random.Generator, accuracy: dict[str, float], *, items: int = 300, classes: int = 3
) -> tuple[AnnotationSet, np.ndarray]:
    """Every annotator labels every item: right with its accuracy, else a random class."""
    truth = rng.integers(0, classes, items)
    records: list[tuple[str, str, str]] = []
    for item, true in enumerate(truth):
        for name, p in accuracy.items():
            label = true if rng.random() < p else rng.integers(0, classes)
            records.append((f"i{item:03d}", name, str(label)))
    s = AnnotationSet.from_records(*zip(*records, strict=True))  # type: ignore[arg-type]
    truth_by_code = np.array([truth[int(name[1:])] for name in s.items])
    return s, truth_by_code


# -- majority vote -------------------------------------------------------------------------------


def test_majority_vote_takes_the_most_frequent_label_and_its_share() -> None:
    s = AnnotationSet.from_records([1, 1, 1, 2, 2, 2, 2, 3], list("abcabcda"), list("xxyyyyxz"))

    result = majority_vote(s)

    assert result.method == "majority"
    assert [s.classes[c] for c in result.label] == ["x", "y", "z"]
    assert result.confidence.tolist() == pytest.approx([2 / 3, 3 / 4, 1.0])
    assert result.posterior.sum(axis=1).tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert result.resolved.all()


def test_majority_vote_leaves_ties_unresolved_by_default() -> None:
    s = AnnotationSet.from_records([1, 1, 2, 2, 2], list("ababc"), list("xyxyx"))

    result = majority_vote(s)

    assert result.label.tolist() == [-1, 0]
    assert result.resolved.tolist() == [False, True]
    assert result.confidence.tolist() == pytest.approx([0.5, 2 / 3])


def test_random_tie_breaking_is_seeded_and_picks_only_tied_classes() -> None:
    # 200 items, each split evenly between x and z; y is never given.
    items = np.repeat(np.arange(200), 2)
    s = AnnotationSet.from_records(
        items, ["a", "b"] * 200, ["x", "z"] * 200, classes=["x", "y", "z"]
    )

    first = majority_vote(s, ties="random", seed=3)
    again = majority_vote(s, ties="random", seed=3)
    other = majority_vote(s, ties="random", seed=4)

    assert first.label.tolist() == again.label.tolist()
    assert first.label.tolist() != other.label.tolist()
    assert set(first.label.tolist()) == {0, 2}
    assert 60 < int((first.label == 0).sum()) < 140


def test_random_tie_breaking_leaves_items_without_labels_unresolved() -> None:
    s = AnnotationSet.from_records([1, 1, 2, 2], list("abab"), list("xyxx"))
    only_second = s.subset(s.item == 1)  # item 1 keeps its code but has no labels

    result = majority_vote(only_second, ties="random")

    assert result.label.tolist() == [-1, 0]


# -- Dawid–Skene ---------------------------------------------------------------------------------


def test_dawid_skene_beats_majority_when_one_annotator_is_careless(
    rng: np.random.Generator,
) -> None:
    s, truth = _crowd(rng, {"good1": 0.9, "good2": 0.9, "careless": 0.2})

    majority = majority_vote(s)
    em = dawid_skene(s)

    assert em.method == "dawid_skene" and em.converged and 1 < em.iterations < 100
    assert np.mean(em.label == truth) > np.mean(majority.label == truth)
    assert np.mean(em.label == truth) > 0.95
    assert em.confusion is not None
    diagonals = {
        name: float(np.diag(em.confusion[code]).mean()) for code, name in enumerate(s.annotators)
    }
    assert min(diagonals, key=diagonals.__getitem__) == "careless"
    assert diagonals["careless"] < 0.5 < min(diagonals["good1"], diagonals["good2"])


def test_dawid_skene_confidence_is_the_posterior_of_the_chosen_class(
    rng: np.random.Generator,
) -> None:
    s, _ = _crowd(rng, {"a": 0.8, "b": 0.7, "c": 0.6, "d": 0.75}, items=120, classes=2)

    em = dawid_skene(s)

    assert em.posterior.shape == (120, 2)
    assert em.posterior.sum(axis=1) == pytest.approx(np.ones(120))
    assert em.confidence == pytest.approx(em.posterior.max(axis=1))
    assert em.label.tolist() == em.posterior.argmax(axis=1).tolist()
    assert ((em.confidence >= 0.5) & (em.confidence <= 1)).all()
    assert em.confusion is not None
    assert em.confusion.sum(axis=2) == pytest.approx(np.ones((4, 2)))


def test_dawid_skene_agrees_with_unanimous_annotators() -> None:
    s = AnnotationSet.from_records([1, 1, 2, 2, 3, 3, 4, 4], list("abababab"), list("xxyyxxzz"))

    em = dawid_skene(s)

    assert [s.classes[c] for c in em.label] == ["x", "y", "x", "z"]
    assert (em.confidence > 0.9).all()


def test_dawid_skene_leaves_items_without_labels_unresolved() -> None:
    s = AnnotationSet.from_records([1, 1, 2, 2], list("abab"), list("xyxx"))

    em = dawid_skene(s.subset(s.item == 1))

    assert em.label.tolist() == [-1, 0]
    assert em.confidence[0] == 0.0


def test_dawid_skene_reports_when_it_stops_before_converging(rng: np.random.Generator) -> None:
    s, _ = _crowd(rng, {"a": 0.7, "b": 0.6, "c": 0.5}, items=100)

    em = dawid_skene(s, max_iter=1)

    assert (em.iterations, em.converged) == (1, False)
