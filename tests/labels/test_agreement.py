"""Agreement figures against the reference implementations (scikit-learn's Cohen's kappa,
statsmodels' Fleiss' kappa, the krippendorff package) on the same seeded data, bootstrap
intervals, per-class agreement and the annotator table."""

from __future__ import annotations

import itertools

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

from mlplan.errors import UsageError
from mlplan.labels import (
    AnnotationSet,
    agreement,
    cohen_kappa_pairs,
    fleiss_kappa,
    krippendorff_alpha,
    leave_one_out_reference,
    per_class_agreement,
    percent_agreement,
    within_item_pairs,
)


def _ratings(
    rng: np.random.Generator,
    *,
    raters: int,
    units: int,
    values: list[float],
    accuracy: float = 0.7,
    missing: float = 0.0,
) -> np.ndarray:
    """Raters × units: each rater gives the unit's true value with ``accuracy``, else a random
    one; a ``missing`` share is NaN (not rated)."""
    truth = rng.integers(0, len(values), units)
    codes = np.where(
        rng.random((raters, units)) < accuracy, truth, rng.integers(0, len(values), (raters, units))
    )
    data = np.asarray(values, dtype=float)[codes]
    data[rng.random(data.shape) < missing] = np.nan
    return data


def _annotation_set(data: np.ndarray) -> AnnotationSet:
    """The AnnotationSet of a raters × units matrix (NaN: not rated); labels as text."""
    raters, units = np.nonzero(~np.isnan(data))
    return AnnotationSet.from_records(
        [f"u{u:03d}" for u in units],
        [f"r{r}" for r in raters],
        [f"{data[r, u]:g}" for r, u in zip(raters, units, strict=True)],
    )


# -- the annotation set --------------------------------------------------------------------------


def test_annotation_set_codes_items_annotators_and_classes() -> None:
    s = AnnotationSet.from_records(
        ["a", "a", "b", "c", "c", "c"], ["x", "y", "x", "x", "y", "z"], list("pqppqq")
    )

    assert (s.items, s.annotators, s.classes) == (["a", "b", "c"], ["x", "y", "z"], ["p", "q"])
    assert s.counts.tolist() == [[1, 1], [1, 0], [1, 2]]
    assert s.labels_per_item.tolist() == [2, 1, 3]
    assert s.multiply_labeled.tolist() == [True, False, True]
    assert s.subset(s.item == 2).counts.tolist() == [[0, 0], [0, 0], [1, 2]]


def test_declared_class_order_is_kept() -> None:
    s = AnnotationSet.from_records([1, 2], ["a", "a"], ["low", "high"], classes=["low", "high"])

    assert s.classes == ["low", "high"]
    assert s.label.tolist() == [0, 1]


def test_labels_outside_the_declared_classes_are_refused() -> None:
    with pytest.raises(UsageError, match=r"labels outside the class set \['0', '1'\]: 2, maybe"):
        AnnotationSet.from_records([1, 2, 3], ["a"] * 3, ["0", "2", "maybe"], classes=["0", "1"])


def test_within_item_pairs_lists_every_pair_on_an_item_once() -> None:
    first, second = within_item_pairs(np.array([3, 1, 3, 3, 1, 2]))

    pairs = sorted(tuple(sorted(p)) for p in zip(first.tolist(), second.tolist(), strict=True))
    assert pairs == [(0, 2), (0, 3), (1, 4), (2, 3)]


@pytest.mark.parametrize("offset", [0, 10**9], ids=["dense-ids", "sparse-ids"])
def test_integer_and_text_inputs_encode_alike(offset: int) -> None:
    rng = np.random.default_rng(5)
    items = rng.integers(0, 50, 400) + offset
    who = rng.integers(0, 7, 400)
    labels = rng.integers(0, 12, 400)
    as_ints = AnnotationSet.from_records(items, who, labels)
    as_text = AnnotationSet.from_records(
        [str(v) for v in items], [str(v) for v in who], [str(v) for v in labels]
    )
    assert (as_ints.items, as_ints.annotators, as_ints.classes) == (
        as_text.items,
        as_text.annotators,
        as_text.classes,
    )
    assert (as_ints.counts == as_text.counts).all()


# -- against the reference implementations -------------------------------------------------------


@pytest.mark.parametrize(
    ("raters", "units", "classes"),
    [(2, 50, 2), (3, 120, 3), (5, 80, 4), (7, 40, 6)],
    ids=["2-raters-binary", "3-raters-3-classes", "5-raters-4-classes", "7-raters-6-classes"],
)
def test_fleiss_kappa_matches_statsmodels_on_fully_crossed_data(
    rng: np.random.Generator, raters: int, units: int, classes: int
) -> None:
    data = _ratings(rng, raters=raters, units=units, values=list(range(classes)))
    table, _ = aggregate_raters(data.T.astype(int), n_cat=classes)

    expected = statsmodels_fleiss_kappa(table, method="fleiss")

    assert fleiss_kappa(_annotation_set(data)) == pytest.approx(expected, abs=1e-9)


def test_percent_agreement_is_the_mean_share_of_agreeing_pairs(rng: np.random.Generator) -> None:
    data = _ratings(rng, raters=4, units=60, values=[0, 1, 2], missing=0.3)
    shares = []
    for unit in data.T:
        given = unit[~np.isnan(unit)]
        if len(given) >= 2:
            pairs = list(itertools.combinations(given, 2))
            shares.append(np.mean([a == b for a, b in pairs]))

    assert percent_agreement(_annotation_set(data)) == pytest.approx(np.mean(shares), abs=1e-12)


def test_cohen_kappa_of_every_pair_matches_scikit_learn(rng: np.random.Generator) -> None:
    data = _ratings(rng, raters=4, units=150, values=[0, 1, 2], missing=0.35)

    pairs = cohen_kappa_pairs(_annotation_set(data))

    assert [(p["a"], p["b"]) for p in pairs] == list(
        itertools.combinations(["r0", "r1", "r2", "r3"], 2)
    )
    for pair in pairs:
        a, b = int(pair["a"][1:]), int(pair["b"][1:])
        shared = ~np.isnan(data[a]) & ~np.isnan(data[b])
        assert pair["shared_items"] == int(shared.sum())
        assert pair["kappa"] == pytest.approx(
            cohen_kappa_score(data[a, shared], data[b, shared]), abs=1e-9
        )
        assert pair["agreement"] == pytest.approx(np.mean(data[a, shared] == data[b, shared]))


def test_cohen_kappa_pairs_skip_pairs_with_too_few_shared_items(rng: np.random.Generator) -> None:
    data = _ratings(rng, raters=3, units=30, values=[0, 1])
    data[2, 3:] = np.nan  # r2 shares three items with each of the others

    pairs = cohen_kappa_pairs(_annotation_set(data), min_shared=4)

    assert [(p["a"], p["b"]) for p in pairs] == [("r0", "r1")]


@pytest.mark.parametrize(
    ("level", "values"),
    [
        ("nominal", [0, 1, 2]),
        ("nominal", [1, 2, 3, 4, 5, 6, 7]),
        ("ordinal", [1, 2, 3, 4, 5]),
        ("ordinal", [1, 2, 5, 10, 11, 12]),  # text order "1" < "10" < "2" must not matter
        ("interval", [1, 2, 3, 4, 5]),
        ("interval", [0.5, 2, 7.25, 10]),
        ("ratio", [1, 2, 4, 8]),
    ],
    ids=[
        "nominal-3",
        "nominal-7",
        "ordinal-5",
        "ordinal-uneven-multi-digit",
        "interval-5",
        "interval-uneven",
        "ratio",
    ],
)
def test_krippendorff_alpha_matches_the_krippendorff_package(
    rng: np.random.Generator, level: str, values: list[float]
) -> None:
    data = _ratings(rng, raters=5, units=90, values=values, accuracy=0.6, missing=0.3)

    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)

    assert krippendorff_alpha(_annotation_set(data), level=level).value == pytest.approx(  # type: ignore[arg-type]
        expected, abs=1e-9
    )


def test_krippendorff_alpha_is_one_when_everyone_agrees() -> None:
    s = AnnotationSet.from_records([1, 1, 2, 2, 3, 3], list("ababab"), list("xxyyxx"))

    assert krippendorff_alpha(s).value == 1.0
    assert fleiss_kappa(s) == pytest.approx(1.0)
    assert percent_agreement(s) == 1.0


def test_no_multiply_labeled_item_gives_undefined_figures() -> None:
    s = AnnotationSet.from_records([1, 2, 3], list("abc"), list("xyx"))

    assert np.isnan(krippendorff_alpha(s).value)
    assert np.isnan(fleiss_kappa(s))
    assert np.isnan(percent_agreement(s))
    assert cohen_kappa_pairs(s) == []


# -- bootstrap -----------------------------------------------------------------------------------


def test_alpha_bootstrap_is_reproducible_and_its_interval_holds_the_estimate(
    rng: np.random.Generator,
) -> None:
    s = _annotation_set(_ratings(rng, raters=3, units=80, values=[0, 1, 2], missing=0.2))

    first = krippendorff_alpha(s, n_boot=300, seed=5)
    again = krippendorff_alpha(s, n_boot=300, seed=5)
    other = krippendorff_alpha(s, n_boot=300, seed=6)

    assert first == again
    assert (other.low, other.high) != (first.low, first.high)
    assert other.value == first.value
    assert first.low < first.value < first.high
    assert first.level == 0.95
    assert first.high - first.low < 0.5


def test_alpha_without_bootstrap_has_no_interval(rng: np.random.Generator) -> None:
    s = _annotation_set(_ratings(rng, raters=2, units=30, values=[0, 1]))

    alpha = krippendorff_alpha(s, n_boot=0)

    assert np.isfinite(alpha.value) and np.isnan(alpha.low) and np.isnan(alpha.high)


# -- levels --------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["interval", "ratio"], ids=["interval", "ratio"])
def test_numeric_alpha_on_labels_without_numbers_is_refused_with_the_reason(level: str) -> None:
    s = AnnotationSet.from_records([1, 1, 2, 2], list("abab"), ["cat", "dog", "cat", "cat"])

    with pytest.raises(
        UsageError,
        match=rf"{level} alpha needs numeric labels, and the classes \['cat', 'dog'\] have no "
        r"numeric values\. Use level nominal, or ordinal if the plan orders the classes",
    ):
        krippendorff_alpha(s, level=level)  # type: ignore[arg-type]


def test_ordinal_alpha_follows_the_declared_class_order() -> None:
    # Ranks low < mid < high: one step apart counts less than two steps apart.
    items = [1, 1, 2, 2, 3, 3, 4, 4]
    near = ["low", "mid", "mid", "high", "low", "low", "high", "high"]
    far = ["low", "high", "mid", "high", "low", "low", "high", "high"]
    order = ["low", "mid", "high"]

    alpha_near = krippendorff_alpha(
        AnnotationSet.from_records(items, list("abababab"), near, classes=order, ordered=True),
        level="ordinal",
    )
    alpha_far = krippendorff_alpha(
        AnnotationSet.from_records(items, list("abababab"), far, classes=order, ordered=True),
        level="ordinal",
    )

    codes = {c: float(i) for i, c in enumerate(order)}
    expected = krippendorff.alpha(
        reliability_data=np.array([[codes[v] for v in near[0::2]], [codes[v] for v in near[1::2]]]),
        level_of_measurement="ordinal",
    )
    assert alpha_near.value == pytest.approx(expected, abs=1e-9)
    assert alpha_near.value > alpha_far.value


def test_ordinal_alpha_on_labels_with_no_order_is_refused() -> None:
    # No class order was declared, so 'cat' < 'dog' < 'fish' is only the alphabet.
    s = AnnotationSet.from_records(
        [1, 1, 2, 2, 3, 3], list("ababab"), ["cat", "fish", "dog", "dog", "cat", "dog"]
    )

    with pytest.raises(UsageError, match=r"ordinal alpha needs"):
        krippendorff_alpha(s, level="ordinal")


# -- per class and per annotator -----------------------------------------------------------------


def test_per_class_agreement_is_specific_agreement() -> None:
    # item 1: a a · item 2: a b · item 3: b b · item 4: b b · item 5: a (single, ignored)
    s = AnnotationSet.from_records(
        [1, 1, 2, 2, 3, 3, 4, 4, 5], list("xyxyxyxyx"), list("aababbbba")
    )

    shares = per_class_agreement(s)

    assert shares == pytest.approx({"a": 2 / 3, "b": 4 / 5})


def test_leave_one_out_reference_is_the_others_majority_or_none_on_ties() -> None:
    # item 1: x x y  · item 2: x y · item 3: x (alone)
    s = AnnotationSet.from_records([1, 1, 1, 2, 2, 3], list("abcabc"), list("xxyxyx"))

    reference = leave_one_out_reference(s)

    # item 1: for the x's the others are {x, y} (tie); for the y the others are {x, x}
    assert reference.tolist() == [-1, -1, 0, 1, 0, -1]


def test_annotator_table_singles_out_the_careless_annotator(rng: np.random.Generator) -> None:
    truth = rng.integers(0, 3, 200)
    items, annotators, labels, seconds = [], [], [], []
    for item, true in enumerate(truth):
        for name, accuracy, speed in (("ann", 0.95, 20.0), ("bob", 0.95, 30.0), ("cat", 0.4, 4.0)):
            right = rng.random() < accuracy
            items.append(item)
            annotators.append(name)
            labels.append(str(true if right else rng.integers(0, 3)))
            seconds.append(speed)
    seconds[0] = np.nan  # unknown time is left out of the mean
    s = AnnotationSet.from_records(items, annotators, labels)

    report = agreement(s, n_boot=50, seed=1, seconds=np.array(seconds))

    table = {row.annotator: row for row in report.annotator_table}
    assert [row.labels for row in report.annotator_table] == [200, 200, 200]
    assert min(table, key=lambda n: table[n].kappa_with_consensus) == "cat"
    assert table["cat"].agreement_with_consensus < 0.6 < table["ann"].agreement_with_consensus
    assert table["ann"].seconds_per_label == 20.0
    assert table["cat"].seconds_per_label == 4.0
    assert all(0 < row.compared <= 200 for row in report.annotator_table)


def test_agreement_report_gathers_every_figure_and_names_the_plan_metric(
    rng: np.random.Generator,
) -> None:
    data = _ratings(rng, raters=3, units=70, values=[0, 1, 2], missing=0.25)
    s = _annotation_set(data)

    report = agreement(s, n_boot=100, seed=2)

    assert report.items == len(s.items)
    assert report.annotations == len(s.item)
    assert report.annotators == 3
    assert report.multiply_labeled_items == int(s.multiply_labeled.sum())
    assert report.alpha == krippendorff_alpha(s, n_boot=100, seed=2)
    assert report.fleiss_kappa == fleiss_kappa(s)
    assert report.metric("krippendorff_alpha") == report.alpha.value
    assert report.metric("fleiss_kappa") == report.fleiss_kappa
    kappas = [p["kappa"] for p in report.pairs]
    weights = [p["shared_items"] for p in report.pairs]
    assert report.metric("cohen_kappa") == pytest.approx(np.average(kappas, weights=weights))
    as_dict = report.to_dict()
    assert as_dict["krippendorff_alpha"]["value"] == report.alpha.value
    assert len(as_dict["annotator_table"]) == 3
