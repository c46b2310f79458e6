"""Label issues: the disagreement queue, confused class pairs, and confident learning on
out-of-fold probabilities with planted flipped labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from mlplan.errors import UsageError
from mlplan.labels import (
    AnnotationSet,
    confused_pairs,
    disagreements,
    find_label_issues,
    majority_vote,
)


def _split_votes() -> AnnotationSet:
    # i1: cat cat cat · i2: cat cat dog · i3: cat dog (tie) · i4: dog bird bird · i5: cat (alone)
    return AnnotationSet.from_records(
        ["i1"] * 3 + ["i2"] * 3 + ["i3"] * 2 + ["i4"] * 3 + ["i5"],
        list("abcabcababca"),
        ["cat", "cat", "cat", "cat", "cat", "dog", "cat", "dog", "dog", "bird", "bird", "cat"],
    )


def test_disagreements_rank_split_items_first_and_name_the_labels() -> None:
    s = _split_votes()

    issues = disagreements(s, majority_vote(s))

    assert [(i.item_id, round(i.score, 3)) for i in issues] == [
        ("i3", 0.5),
        ("i2", 0.333),
        ("i4", 0.333),
    ]
    assert issues[0].source == "disagreement"
    assert issues[0].details == {
        "labels": {"cat": 1, "dog": 1},
        "pair": ["cat", "dog"],
        "consensus": None,
    }
    assert issues[1].details == {
        "labels": {"cat": 2, "dog": 1},
        "pair": ["cat", "dog"],
        "consensus": "cat",
    }
    assert issues[2].details["pair"] == ["bird", "dog"]
    assert issues[2].to_dict()["item_id"] == "i4"


def test_disagreements_below_a_chosen_agreement_only() -> None:
    s = _split_votes()

    issues = disagreements(s, majority_vote(s), min_agreement=0.6)

    assert [i.item_id for i in issues] == ["i3"]


def test_confused_pairs_name_the_classes_to_clarify() -> None:
    # cat/dog mixed on 4 of 6 items; bird always agreed on.
    s = AnnotationSet.from_records(
        [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8],
        list("abababababababab"),
        ["cat", "dog"] * 4 + ["cat", "cat", "dog", "dog", "bird", "bird", "bird", "bird"],
    )

    pairs = confused_pairs(s)

    assert [(p.a, p.b) for p in pairs] == [("cat", "dog")]
    assert pairs[0].count == 4.0
    assert pairs[0].share == pytest.approx(8 / 12)
    assert pairs[0].finding == (
        "annotators confuse 'cat' and 'dog' (67% of their labels): clarify the two "
        "definitions in labels.classes"
    )
    assert confused_pairs(s, min_share=0.7) == []


def test_confident_learning_finds_most_planted_flips_and_few_clean_items() -> None:
    rng = np.random.default_rng(3)
    features, truth = make_classification(
        n_samples=600,
        n_features=6,
        n_informative=4,
        n_classes=3,
        n_clusters_per_class=1,
        class_sep=2.0,
        random_state=3,
    )
    flipped = rng.choice(600, 40, replace=False)
    given = truth.copy()
    given[flipped] = (given[flipped] + rng.integers(1, 3, 40)) % 3
    probs = cross_val_predict(
        LogisticRegression(max_iter=500), features, given, cv=5, method="predict_proba"
    )

    issues = find_label_issues(given, probs, classes=["a", "b", "c"])

    found = {int(i.item_id) for i in issues}
    planted = set(flipped.tolist())
    assert len(found & planted) >= 0.75 * len(planted)
    assert len(found - planted) <= 0.03 * (600 - len(planted))
    scores = [i.score for i in issues]
    assert scores == sorted(scores, reverse=True)
    first = issues[0]
    assert first.source == "confident_learning"
    assert first.details["given"] == "abc"[given[int(first.item_id)]]
    assert first.details["suggested"] != first.details["given"]
    assert first.score == pytest.approx(
        first.details["suggested_probability"] - first.details["given_probability"]
    )


def test_confident_learning_names_items_by_the_ids_given() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9], [0.95, 0.05]])

    issues = find_label_issues(
        np.array([0, 0, 1, 1, 1]), probs, item_ids=["a", "b", "c", "d", "e"], classes=["no", "yes"]
    )

    assert [(i.item_id, i.details["given"], i.details["suggested"]) for i in issues] == [
        ("e", "yes", "no")
    ]
    assert issues[0].score == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("labels", "probs", "message"),
    [
        (
            [0, 1, 1],
            [[0.5, 0.5], [0.5, 0.5]],
            r"pred_probs must be items × classes with one row per label; got shape \(2, 2\) "
            r"for 3 labels",
        ),
        ([0, 1], [0.5, 0.5], r"got shape \(2,\) for 2 labels"),
        ([0, 1], [[0.5, 0.4], [0.5, 0.5]], r"each row of pred_probs must sum to 1"),
        ([0, 2], [[0.5, 0.5], [0.5, 0.5]], r"labels must be class indices in \[0, 2\)"),
        ([0, -1], [[0.5, 0.5], [0.5, 0.5]], r"labels must be class indices in \[0, 2\)"),
    ],
    ids=["rows-vs-labels", "one-dimensional", "rows-not-summing-to-1", "label-too-big", "negative"],
)
def test_confident_learning_refuses_malformed_input(
    labels: list[int], probs: list[list[float]], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        find_label_issues(np.array(labels), np.array(probs))
