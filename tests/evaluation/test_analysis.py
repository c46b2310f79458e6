from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import sklearn.metrics as skm

from mlplan.evaluation import Condition, Predictions, candidate_conditions, discover_slices
from mlplan.evaluation._analysis import choose_threshold, confusions, threshold_table


def _table(rng: np.random.Generator, n: int = 3000) -> pa.Table:
    return pa.table(
        {
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "device": rng.choice(["ios", "android", "web"], n),
            "age": rng.integers(18, 90, n),
            "charges": pa.array(rng.normal(50, 10, n), mask=rng.random(n) < 0.05),
        }
    )


def test_discovery_finds_a_planted_two_condition_slice(rng: np.random.Generator) -> None:
    table = _table(rng)
    plan = np.asarray(table.column("plan").to_pylist())
    device = np.asarray(table.column("device").to_pylist())
    planted = (plan == "pro") & (device == "web")
    error = (rng.random(table.num_rows) < np.where(planted, 0.6, 0.1)).astype(float)
    conditions = candidate_conditions(table, table.column_names, min_support=30)
    texts = {c.text for c in conditions}
    assert {"plan = 'pro'", "charges is missing", "age < 36"} <= texts
    found = discover_slices(conditions, error, min_support=30, min_effect=0.3)
    top = found.slices[0]
    assert top.conditions == ("plan = 'pro'", "device = 'web'")
    assert top.columns == ("device", "plan")
    assert top.count == planted.sum()
    assert top.error == pytest.approx(error[planted].mean())
    assert top.effect_size is not None
    assert top.q_value <= top.alpha and top.effect_size > 1
    # Nothing more specific than a slice already found is reported.
    assert not any(set(top.conditions) < set(other.conditions) for other in found.slices)


def test_discovery_reports_nothing_on_errors_that_do_not_depend_on_the_data(
    rng: np.random.Generator,
) -> None:
    table = _table(rng)
    error = (rng.random(table.num_rows) < 0.2).astype(float)
    conditions = candidate_conditions(table, table.column_names, min_support=30)
    found = discover_slices(conditions, error, min_support=30, min_effect=0.3)
    assert found.slices == () and found.tested > 100


def test_the_chosen_threshold_maximises_f1_over_the_scores(rng: np.random.Generator) -> None:
    y = rng.random(500) < 0.3
    score = np.clip(0.4 * y + 0.6 * rng.random(500), 0, 1)
    threshold, best = choose_threshold(score, y, "f1")
    brute = max(skm.f1_score(y, score >= t) for t in np.unique(score))
    assert best == pytest.approx(brute) == pytest.approx(skm.f1_score(y, score >= threshold))
    youden, _ = choose_threshold(score, y, "youden")
    fpr, tpr, cuts = skm.roc_curve(y, score)
    assert youden == pytest.approx(cuts[np.argmax(tpr - fpr)])
    table = {row["threshold"]: row for row in threshold_table(score, y, threshold)}
    row = table[0.3]
    assert row["precision"] == pytest.approx(skm.precision_score(y, score >= 0.3))
    assert row["recall"] == pytest.approx(skm.recall_score(y, score >= 0.3))
    assert threshold in table


def test_confusions_list_the_most_frequent_mistakes_first() -> None:
    data = Predictions.from_arrays(
        ["cat", "cat", "cat", "dog", "dog", "emu"],
        ["dog", "dog", "cat", "cat", "dog", "dog"],
    )
    found = confusions(data)
    assert found["labels"] == ["cat", "dog", "emu"]
    assert found["matrix"] == [[1, 2, 0], [1, 1, 0], [0, 1, 0]]
    assert found["top"][0] == {
        "true": "cat",
        "predicted": "dog",
        "count": 2,
        "share_of_true": pytest.approx(2 / 3),
    }


def test_discovery_skips_conditions_that_hold_every_row_and_finds_a_clean_split(
    rng: np.random.Generator,
) -> None:
    n = 1000
    region = rng.choice(["north", "west"], n, p=[0.75, 0.25])
    table = pa.table({"country": ["US"] * n, "region": region})
    error = (region == "west").astype(float)  # the model errs on every western row, only there
    conditions = candidate_conditions(table, table.column_names, min_support=30)
    found = discover_slices(conditions, error, min_support=30)
    assert [d.conditions for d in found.slices] == [("region = 'west'",)]
    west = found.slices[0]
    assert west.effect_size is None and west.note is not None and "unbounded" in west.note
    assert west.to_dict()["note"] == west.note


def test_a_discovery_result_is_json_with_its_slices_in_order(rng: np.random.Generator) -> None:
    table = _table(rng)
    plan = np.asarray(table.column("plan").to_pylist())
    error = (rng.random(table.num_rows) < np.where(plan == "basic", 0.5, 0.1)).astype(float)
    conditions = candidate_conditions(table, table.column_names, min_support=30)
    found = discover_slices(conditions, error, min_support=30)
    as_json = json.loads(json.dumps(found.to_dict()))
    assert list(as_json) == [
        "overall_error",
        "tested",
        "conditions",
        "slices",
        "levels",
        "max_seconds",
        "cut",
    ]
    assert as_json["levels"]["planned"] == 3 and as_json["cut"] is None
    assert sum(as_json["levels"]["tested"]) == found.tested
    assert as_json["overall_error"] == pytest.approx(error.mean())
    assert as_json["tested"] == found.tested and as_json["conditions"] == len(conditions)
    first = as_json["slices"][0]
    assert list(first) == [
        "conditions",
        "columns",
        "count",
        "share",
        "error",
        "effect_size",
        "p_value",
        "q_value",
        "alpha",
    ]
    assert first["conditions"] == ["plan = 'basic'"] == list(found.slices[0].conditions)
    assert [s["count"] for s in as_json["slices"]] == [s.count for s in found.slices]


def _planted(rng: np.random.Generator) -> tuple[list[Condition], np.ndarray]:
    """Conditions over a table with a planted two-condition slice, and the per-row error."""
    table = _table(rng)
    plan = np.asarray(table.column("plan").to_pylist())
    device = np.asarray(table.column("device").to_pylist())
    planted = (plan == "pro") & (device == "web")
    error = (rng.random(table.num_rows) < np.where(planted, 0.6, 0.1)).astype(float)
    return candidate_conditions(table, table.column_names, min_support=30), error


def test_discovery_out_of_time_tests_single_conditions_only_and_says_so(
    rng: np.random.Generator,
) -> None:
    """A time limit of 0 (or one spent on single conditions) leaves levels 2 and 3 out:
    the report says so, and the correction counts the single conditions alone, as when
    the search goes on."""
    table = _table(rng)
    plan = np.asarray(table.column("plan").to_pylist())
    error = (rng.random(table.num_rows) < np.where(plan == "basic", 0.4, 0.1)).astype(float)
    conditions = candidate_conditions(table, table.column_names, min_support=30)
    whole = discover_slices(conditions, error, min_support=30, max_seconds=None)
    assert len(whole.tested_by_level) == 3 and whole.cut is None
    cut = discover_slices(conditions, error, min_support=30, max_seconds=0, clock=lambda: 5.0)
    assert cut.tested_by_level == whole.tested_by_level[:1] == (cut.tested,)
    assert cut.cut == (
        "slice discovery stopped after 0 s (evaluation.discovery.max_seconds: 0): "
        "1 of 3 condition levels searched (levels 2-3 not searched)"
    )
    assert cut.to_dict()["levels"] == {"planned": 3, "searched": 1, "tested": [cut.tested]}
    assert all(len(s.conditions) == 1 for s in cut.slices)
    # Benjamini-Hochberg over the same single conditions: the same q-values, the same rate.
    basic = [s for s in (*whole.slices, *cut.slices) if s.conditions == ("plan = 'basic'",)]
    assert len(basic) == 2 and basic[0].q_value == basic[1].q_value
    assert basic[0].alpha == basic[1].alpha == 0.025


def test_a_level_the_time_limit_interrupts_is_left_out_whole(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Time runs out while pairs of conditions are tested (the clock jumps after the
    first block of them): the pairs tested so far are dropped, so level 2's correction
    counts no partial level, and the report says how far it got."""
    import mlplan.evaluation._discovery as discovery

    monkeypatch.setattr(discovery, "_BLOCK", 4)
    conditions, error = _planted(rng)
    # Read at the start, after the single conditions, and before each later block.
    ticks = iter([0.0, 1.0])
    found = discover_slices(
        conditions, error, min_support=30, max_seconds=10, clock=lambda: next(ticks, 60.0)
    )
    whole = discover_slices(conditions, error, min_support=30, max_seconds=None)
    assert found.tested_by_level == whole.tested_by_level[:1]
    pairs = whole.tested_by_level[1]
    assert found.cut == (
        "slice discovery stopped after 60 s (evaluation.discovery.max_seconds: 10): "
        "1 of 3 condition levels searched (levels 2-3 not searched); level 2 was under way, "
        f"4 of {pairs:,} slices tested, and is left out whole (its false discovery rate "
        "counts no partial level)"
    )
    assert all(len(s.conditions) == 1 for s in found.slices)
