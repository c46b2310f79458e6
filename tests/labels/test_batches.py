"""Labeling batches without a store: assigning annotators, selecting items, estimating cost and
time, and rendering the batch files."""

from __future__ import annotations

import csv
import io
import itertools
import json
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pytest

from mlplan.errors import UsageError
from mlplan.labels import (
    Assignment,
    assign,
    compare_strategies,
    estimate,
    label_studio_config,
    render_csv,
    render_label_studio,
    select_items,
)
from mlplan.plan import LabelRate, Labels

IDS = [f"item-{i:03d}" for i in range(100)]


# -- assign --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "annotators", "overlap", "k", "crowd"),
    [
        (100, 3, 0.2, 2, False),
        (100, 4, 0.5, 2, False),
        (101, 5, 1.0, 3, False),
        (60, 2, 0.0, 2, False),
        (90, 6, 0.0, 3, True),
        (40, 3, 0.0, 3, True),
    ],
    ids=[
        "in-house-20pct",
        "half-overlap",
        "all-three-times",
        "no-overlap",
        "crowd-k3",
        "crowd-all",
    ],
)
def test_assign_overlap_gets_distinct_annotators_and_loads_stay_balanced(
    items: int, annotators: int, overlap: float, k: int, crowd: bool
) -> None:
    names = [f"a{i}" for i in range(annotators)]
    ids = [f"x{i}" for i in range(items)]

    out = assign(ids, names, overlap=overlap, labels_per_item=k, crowd=crowd, seed=1)

    multi = items if crowd else round(overlap * items)
    assert len(out) == items + multi * (k - 1)
    per_item = Counter(a.item_id for a in out)
    assert len(per_item) == items
    assert sorted(Counter(per_item.values()).items()) == sorted(
        {c: n for c, n in ((1, items - multi), (k, multi)) if n}.items()
    )
    assert len(set(out)) == len(out)  # never the same item twice to one annotator
    loads = Counter(a.annotator for a in out)
    assert set(loads) <= set(names)
    assert max(loads.values()) - min(loads.get(n, 0) for n in names) <= 1


def test_every_annotator_is_paired_with_every_other(rng: np.random.Generator) -> None:
    names = ["ann", "bob", "cat", "dan"]

    out = assign(IDS, names, overlap=0.3, seed=int(rng.integers(1000)))

    by_item: dict[str, list[str]] = {}
    for a in out:
        by_item.setdefault(a.item_id, []).append(a.annotator)
    paired = Counter(tuple(sorted(v)) for v in by_item.values() if len(v) == 2)
    assert set(paired) == set(itertools.combinations(names, 2))


def test_assign_is_reproducible_with_a_seed() -> None:
    names = ["ann", "bob", "cat"]

    first = assign(IDS, names, overlap=0.2, seed=7)

    assert first == assign(IDS, names, overlap=0.2, seed=7)
    assert first != assign(IDS, names, overlap=0.2, seed=8)
    assert first[0] == Assignment(first[0].item_id, first[0].annotator)


@pytest.mark.parametrize(
    ("annotators", "kwargs", "message"),
    [
        ([], {"overlap": 0.2}, r"^no annotators: pass 'annotators' NAME,NAME or set "),
        (["ann", "ann"], {"overlap": 0.2}, r"^annotator names must be unique; repeated: ann$"),
        (["ann"], {"overlap": 0.2}, r"^2 labels per item need at least 2 annotators; there are 1$"),
        (
            ["ann", "bob"],
            {"overlap": 0.0, "labels_per_item": 3, "crowd": True},
            r"^3 labels per item need at least 3 annotators; there are 2$",
        ),
    ],
    ids=["none", "duplicate-names", "overlap-with-one", "crowd-k-too-big"],
)
def test_assign_refuses_impossible_requests(
    annotators: list[str], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        assign(IDS, annotators, **kwargs)  # type: ignore[arg-type]


def test_one_annotator_without_overlap_gets_everything() -> None:
    out = assign(IDS[:5], ["solo"], overlap=0.0)

    assert sorted(a.item_id for a in out) == IDS[:5]


# -- select_items --------------------------------------------------------------------------------


def test_random_selection_is_seeded_and_skips_labeled_items() -> None:
    labeled = set(IDS[:50])

    first = select_items(IDS, 20, seed=3, exclude=labeled)

    assert first == select_items(IDS, 20, seed=3, exclude=labeled)
    assert first != select_items(IDS, 20, seed=4, exclude=labeled)
    assert len(set(first)) == 20
    assert not set(first) & labeled
    assert first == sorted(first)


class _CountedId(str):
    """An item id that counts how often it is compared with another."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        _CountedId.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_skipping_labeled_items_costs_one_lookup_per_item() -> None:
    # np.isin compared every item with every labeled one (Python objects: 8 s for 1M items
    # and 600 labels, and growing with both); a set lookup per item grows with the items.
    ids = [_CountedId(f"{100_000 + i}") for i in range(5_000)]
    labeled = {str(i) for i in ids[::8]}
    _CountedId.comparisons = 0
    chosen = select_items(ids, 100, seed=1, exclude=labeled)
    assert _CountedId.comparisons <= len(ids)
    assert len(chosen) == 100 and not set(chosen) & labeled


def test_stratified_selection_draws_every_stratum_equally() -> None:
    codes = np.arange(100)
    strata = {"big": codes < 80, "medium": (codes >= 80) & (codes < 95), "small": codes >= 95}

    chosen = select_items(IDS, 15, selection="stratified", strata=strata, seed=0)

    where = Counter(
        next(name for name, mask in strata.items() if mask[IDS.index(c)]) for c in chosen
    )
    assert where == {"big": 5, "medium": 5, "small": 5}


def test_stratified_selection_fills_up_at_random_past_a_small_stratum() -> None:
    codes = np.arange(100)
    strata = {"big": codes < 98, "tiny": codes >= 98}

    chosen = select_items(IDS, 20, selection="stratified", strata=strata, seed=0)

    assert len(set(chosen)) == 20
    assert {"item-098", "item-099"} <= set(chosen)


def test_uncertainty_selection_takes_the_least_certain_items() -> None:
    uncertainty = np.linspace(0, 0.5, 100)
    uncertainty[[3, 7]] = 0.9

    chosen = select_items(IDS, 4, selection="uncertainty", uncertainty=uncertainty)

    assert chosen == ["item-003", "item-007", "item-099", "item-098"]


def test_uncertainty_selection_never_returns_labeled_items() -> None:
    uncertainty = np.full(100, -np.inf)  # items missing from the scores file
    uncertainty[[50, 60, 70]] = [0.4, 0.3, 0.2]
    labeled = set(IDS[:10])

    chosen = select_items(IDS, 5, selection="uncertainty", uncertainty=uncertainty, exclude=labeled)

    assert not set(chosen) & labeled


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"n": 51, "exclude": set(IDS[:50])},
            r"^asked for 51 items but only 50 are not labeled yet; ask for fewer \('n'\)$",
        ),
        (
            {"n": 5, "selection": "stratified"},
            r"^stratified selection needs 'strata': a mask over the items per stratum$",
        ),
        (
            {"n": 5, "selection": "uncertainty"},
            r"^uncertainty selection needs model predictions: give 'uncertainty', one score "
            r"per item",
        ),
    ],
    ids=["too-many", "stratified-without-slice", "uncertainty-without-scores"],
)
def test_select_items_refuses_what_it_cannot_do(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        select_items(IDS, **kwargs)  # type: ignore[arg-type]


# -- estimates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "rate", "overlap", "k", "expected"),
    [
        # 1000 items, 20% twice: 1200 labels; 1200 × 0.5; 1200 / 100 h; / 2 annotators
        (
            "in-house",
            LabelRate(cost_per_label=0.5, labels_per_hour=100, annotators=2),
            0.2,
            None,
            (1200, 600.0, 12.0, 6.0),
        ),
        # 50% three times: 1000 + 500 × 2 = 2000 labels
        (
            "outsourced",
            LabelRate(cost_per_label=0.2, labels_per_hour=400, annotators=10),
            0.5,
            3,
            (2000, 400.0, 5.0, 0.5),
        ),
        # crowd: labels_per_item from the rate, overlap ignored
        (
            "crowdsourced",
            LabelRate(cost_per_label=0.05, labels_per_hour=2000, annotators=50, labels_per_item=3),
            0.2,
            None,
            (3000, 150.0, 1.5, 0.03),
        ),
        (
            "crowdsourced",
            LabelRate(cost_per_label=0.05, labels_per_hour=2000, annotators=50, labels_per_item=3),
            0.2,
            5,
            (5000, 250.0, 2.5, 0.05),
        ),
        (
            "in-house",
            LabelRate(cost_per_label=1.25, labels_per_hour=60, annotators=1, currency="EUR"),
            0.0,
            None,
            (1000, 1250.0, 16.67, 16.67),
        ),
    ],
    ids=["in-house", "outsourced-k3", "crowd-rate-k", "crowd-k-override", "no-overlap-eur"],
)
def test_estimate_arithmetic(
    strategy: str,
    rate: LabelRate,
    overlap: float,
    k: int | None,
    expected: tuple[int, float, float, float],
) -> None:
    e = estimate(strategy, rate, items=1000, overlap=overlap, k=k)

    assert (e.labels, e.cost, e.annotator_hours, e.calendar_hours) == expected
    assert (e.strategy, e.items, e.currency) == (strategy, 1000, rate.currency)
    assert e.to_dict()["cost"] == expected[1]


def test_compare_strategies_covers_every_rate_cheapest_first() -> None:
    plan = Labels(
        overlap=0.2,
        rates={
            "in-house": LabelRate(cost_per_label=0.5, labels_per_hour=120, annotators=3),
            "outsourced": LabelRate(cost_per_label=0.2, labels_per_hour=400, annotators=10),
            "crowdsourced": LabelRate(
                cost_per_label=0.05, labels_per_hour=2000, annotators=50, labels_per_item=3
            ),
        },
    )

    default = compare_strategies(plan, items=1000)
    more_overlap = compare_strategies(plan, items=1000, overlap=1.0)

    assert [(e.strategy, e.labels, e.cost) for e in default] == [
        ("crowdsourced", 3000, 150.0),
        ("outsourced", 1200, 240.0),
        ("in-house", 1200, 600.0),
    ]
    assert [(e.strategy, e.labels) for e in more_overlap] == [
        ("crowdsourced", 3000),
        ("outsourced", 2000),
        ("in-house", 2000),
    ]
    assert compare_strategies(Labels(), items=10) == []


# -- rendering -----------------------------------------------------------------------------------


def test_label_studio_config_is_well_formed_xml_with_instructions_and_definitions() -> None:
    plan = Labels(
        instructions='Did the customer leave? Read "notes" & <history> first.',
        classes={"stayed": "still a customer after 30 days", "left": None},
    )

    config = label_studio_config(plan, ["stayed", "left", "unsure"])

    root = ET.fromstring(config)
    assert root.tag == "View"
    assert root.find("Header").attrib["value"] == plan.instructions  # type: ignore[union-attr]
    choices = root.find("Choices")
    assert choices is not None
    assert (choices.attrib["name"], choices.attrib["toName"], choices.attrib["choice"]) == (
        "label",
        "features",
        "single",
    )
    assert [(c.attrib["value"], c.attrib["hint"]) for c in choices.findall("Choice")] == [
        ("stayed", "still a customer after 30 days"),
        ("left", ""),
        ("unsure", ""),
    ]
    assert root.find("Table").attrib["value"] == "$features"  # type: ignore[union-attr]


def test_label_studio_config_without_instructions_says_what_to_do() -> None:
    root = ET.fromstring(label_studio_config(Labels(), ["0", "1"]))

    assert root.find("Header").attrib["value"] == "Choose the class that fits the item."  # type: ignore[union-attr]


def test_render_csv_has_one_row_per_assignment_with_an_empty_label() -> None:
    assignments = [Assignment("7", "ann"), Assignment("7", "bob"), Assignment("9", "ann")]
    fields = {
        "7": {"age": 31, "region": "north, upper", "charges": None},
        "9": {"age": 55, "region": 'say "hi"', "charges": 12.5},
    }

    text = render_csv(assignments, fields, batch=4)

    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == "batch,item_id,annotator,label,seconds,age,charges,region"
    assert [(r["batch"], r["item_id"], r["annotator"], r["label"]) for r in rows] == [
        ("4", "7", "ann", ""),
        ("4", "7", "bob", ""),
        ("4", "9", "ann", ""),
    ]
    assert rows[0]["region"] == "north, upper" and rows[0]["charges"] == ""
    assert rows[2]["region"] == 'say "hi"' and rows[2]["charges"] == "12.5"


def test_render_label_studio_makes_one_task_per_item() -> None:
    assignments = [Assignment("7", "ann"), Assignment("7", "bob"), Assignment("9", "cat")]
    fields = {"7": {"age": 31, "charges": float("nan")}, "9": {"age": 55, "seen": True}}

    tasks = json.loads(render_label_studio(assignments, fields, batch=2))

    assert tasks == [
        {
            "id": 1,
            "data": {"item_id": "7", "features": {"age": 31, "charges": None}},
            "meta": {"batch": 2, "annotators": ["ann", "bob"]},
        },
        {
            "id": 2,
            "data": {"item_id": "9", "features": {"age": 55, "seen": True}},
            "meta": {"batch": 2, "annotators": ["cat"]},
        },
    ]
