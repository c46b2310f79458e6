"""Human-level performance: each annotator against gold, else against the others; metrics
with bootstrap intervals, overall, per annotator and per slice; regression disagreement."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from mlplan.errors import UsageError
from mlplan.labels import (
    HARD_LABEL_METRICS,
    AnnotationSet,
    confusion_metrics,
    human_level_performance,
    positive_class,
)


def _pairs(rng: np.random.Generator, items: int, agree: float) -> AnnotationSet:
    """Two annotators ('ann', 'bob') on every item of a binary task; they agree on about an
    ``agree`` share of items."""
    first = rng.integers(0, 2, items)
    second = np.where(rng.random(items) < agree, first, 1 - first)
    ids = [f"i{i:03d}" for i in range(items)]
    return AnnotationSet.from_records(
        ids + ids,
        ["ann"] * items + ["bob"] * items,
        [str(v) for v in [*first, *second]],
        classes=["0", "1"],
    )


@pytest.mark.parametrize("classes", [2, 4], ids=["binary", "four-classes"])
def test_confusion_metrics_match_scikit_learn(rng: np.random.Generator, classes: int) -> None:
    truth = rng.integers(0, classes, 300)
    predicted = np.where(rng.random(300) < 0.7, truth, rng.integers(0, classes, 300))
    confusion = np.zeros((classes, classes), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    positive = 1 if classes == 2 else None

    metrics = confusion_metrics(confusion, positive=positive)

    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert metrics["weighted_f1"] == pytest.approx(f1_score(truth, predicted, average="weighted"))
    if positive is not None:
        assert metrics["f1"] == pytest.approx(f1_score(truth, predicted))
        assert metrics["precision"] == pytest.approx(precision_score(truth, predicted))
        assert metrics["recall"] == pytest.approx(recall_score(truth, predicted))
    else:
        assert set(metrics) == {"accuracy", "macro_f1", "weighted_f1"}


@pytest.mark.parametrize(
    ("classes", "expected"),
    [(["0", "1"], 1), (["yes", "no"], 0), (["True", "False"], 0), (["churned", "stayed"], 1)],
    ids=["digits", "yes-first", "true-first", "no-convention"],
)
def test_positive_class(classes: list[str], expected: int) -> None:
    assert positive_class(classes) == expected


def test_without_gold_each_label_is_scored_against_the_other_annotator(
    rng: np.random.Generator,
) -> None:
    s = _pairs(rng, 120, agree=0.8)
    agreeing = float(np.mean(s.counts.max(axis=1) == 2))

    hlp = human_level_performance(s, n_boot=100, seed=1)

    assert hlp.task == "classification"
    assert hlp.reference == "consensus of the other annotators"
    assert (hlp.items, hlp.compared) == (120, 240)
    assert hlp.metrics["accuracy"].value == pytest.approx(agreeing)
    assert set(hlp.metrics) == set(HARD_LABEL_METRICS)
    assert [a["annotator"] for a in hlp.per_annotator] == ["ann", "bob"]
    assert [a["compared"] for a in hlp.per_annotator] == [120, 120]
    assert all(a["accuracy"] == pytest.approx(agreeing) for a in hlp.per_annotator)


def test_gold_labels_are_the_reference_where_present(rng: np.random.Generator) -> None:
    truth = rng.integers(0, 2, 60)
    accuracy = {"ann": 0.95, "bob": 0.7}
    given = {name: np.where(rng.random(60) < p, truth, 1 - truth) for name, p in accuracy.items()}
    ids = [f"i{i:02d}" for i in range(60)]
    s = AnnotationSet.from_records(
        ids + ids[:20],  # bob labels only the first 20 items
        ["ann"] * 60 + ["bob"] * 20,
        [str(v) for v in [*given["ann"], *given["bob"][:20]]],
    )
    gold = {item: str(t) for item, t in zip(ids, truth, strict=True)}

    hlp = human_level_performance(s, gold=gold, n_boot=0, min_items=10)

    assert hlp.reference == "gold labels"
    assert (hlp.items, hlp.compared) == (60, 80)  # single-labeled items count with gold
    rows = {a["annotator"]: a for a in hlp.per_annotator}
    assert rows["ann"]["accuracy"] == pytest.approx(np.mean(given["ann"] == truth))
    assert rows["bob"]["accuracy"] == pytest.approx(np.mean(given["bob"][:20] == truth[:20]))
    assert rows["bob"]["recall"] == pytest.approx(
        recall_score(truth[:20], given["bob"][:20], zero_division=0)
    )


def test_partial_gold_falls_back_to_the_others_consensus(rng: np.random.Generator) -> None:
    s = _pairs(rng, 40, agree=0.9)

    hlp = human_level_performance(s, gold={"i000": "1", "i001": "0"}, n_boot=0)

    assert hlp.reference == "gold labels where present, else consensus"
    assert hlp.items == 40


def test_intervals_are_reproducible_and_hold_the_estimate(rng: np.random.Generator) -> None:
    s = _pairs(rng, 150, agree=0.75)

    first = human_level_performance(s, n_boot=200, seed=9)
    again = human_level_performance(s, n_boot=200, seed=9)

    assert first.metrics == again.metrics
    for name, interval in first.metrics.items():
        assert interval.low <= interval.value <= interval.high, name
    accuracy = first.metrics["accuracy"]
    assert 0 < accuracy.high - accuracy.low < 0.3


def test_per_slice_hlp_covers_only_slices_with_measured_items(rng: np.random.Generator) -> None:
    s = _pairs(rng, 90, agree=0.8)
    codes = np.arange(len(s.items))
    slices = {
        "region": {
            "north": codes < 30,
            "south": codes >= 30,
            "east": np.zeros(len(s.items), dtype=bool),
        }
    }

    hlp = human_level_performance(s, slices=slices, min_support={"region": 40}, n_boot=50, seed=0)

    assert [(row["slice"], row["value"], row["items"]) for row in hlp.per_slice] == [
        ("region", "north", 30),
        ("region", "south", 60),
    ]
    # Below the slice's min_support: the figure, no interval, and a plain statement.
    assert (
        hlp.per_slice[0]["metrics"]["accuracy"]["low"]
        != hlp.per_slice[0]["metrics"]["accuracy"]["low"]
    )
    assert hlp.per_slice[0]["note"].startswith("30 items, below the slice's min_support of 40")
    assert hlp.per_slice[1]["metrics"]["accuracy"]["low"] < 1
    north = human_level_performance(s.subset(s.item < 30), n_boot=0, min_items=10)
    assert hlp.per_slice[0]["metrics"]["accuracy"]["value"] == pytest.approx(
        north.metrics["accuracy"].value
    )


@pytest.mark.parametrize(
    ("primary", "reported", "note"),
    [
        ("accuracy", "accuracy", None),
        ("f1", "f1", None),
        (
            "roc_auc",
            None,
            "roc_auc is not defined for hard human labels; HLP is given in accuracy and F1",
        ),
    ],
    ids=["accuracy", "f1", "roc-auc-not-for-hard-labels"],
)
def test_primary_metric_is_reported_when_it_applies_to_hard_labels(
    rng: np.random.Generator, primary: str, reported: str | None, note: str | None
) -> None:
    hlp = human_level_performance(_pairs(rng, 40, agree=0.8), primary=primary, n_boot=0)

    assert (hlp.primary, hlp.primary_note) == (reported, note)
    assert (hlp.primary_value is None) == (reported is None)


def test_too_few_doubly_labeled_items_says_how_many_there_are_and_are_needed() -> None:
    doubly = [f"d{i}" for i in range(12)]
    single = [f"s{i}" for i in range(50)]
    s = AnnotationSet.from_records(
        doubly + doubly + single, ["ann"] * 12 + ["bob"] * 12 + ["ann"] * 50, ["1"] * 74
    )

    with pytest.raises(
        UsageError,
        match=r"HLP needs at least 30 items labeled by two annotators or more \(or with gold "
        r"labels\); there are 12 multiply-labeled items, 12 of them with a usable reference: "
        r"18 more are needed\.",
    ):
        human_level_performance(s)


def test_regression_hlp_is_the_mean_absolute_disagreement(rng: np.random.Generator) -> None:
    values = rng.integers(0, 10, (3, 40)).astype(float)  # three annotators, every item
    ids = [f"i{i:02d}" for i in range(40)]
    s = AnnotationSet.from_records(
        ids * 3, ["a"] * 40 + ["b"] * 40 + ["c"] * 40, [f"{v:g}" for v in values.ravel()]
    )
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = np.mean([np.abs(values[i] - values[j]) for i, j in pairs])

    hlp = human_level_performance(s, task="regression", n_boot=100, seed=3, min_items=10)

    assert hlp.task == "regression"
    assert (hlp.items, hlp.compared) == (40, 120)
    mad = hlp.metrics["mean_absolute_disagreement"]
    assert mad.value == pytest.approx(expected)
    assert mad.low <= mad.value <= mad.high
    assert hlp.primary is None
    assert hlp.primary_note == "regression HLP is the mean absolute disagreement"


def test_regression_hlp_refuses_text_labels() -> None:
    s = AnnotationSet.from_records([1, 1], ["a", "b"], ["low", "high"])

    with pytest.raises(UsageError, match=r"^regression HLP needs numeric labels$"):
        human_level_performance(s, task="regression")


def test_regression_hlp_needs_enough_doubly_labeled_items() -> None:
    s = AnnotationSet.from_records([1, 1, 2, 2, 3], list("ababa"), ["1", "2", "3", "3", "4"])

    with pytest.raises(
        UsageError,
        match=r"HLP needs at least 30 items labeled by two annotators or more; there are 2\.",
    ):
        human_level_performance(s, task="regression")
