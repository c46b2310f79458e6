"""Splits: seeded, stratified, grouped or by time; leakage checks; recorded and read back."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import customers_table, edit_plan, exported_workspace, ok, write_csv

from mlplan.data import (
    Crossing,
    assign_splits,
    check_leakage,
    get_split,
    leakage_failures,
    list_splits,
    load_split,
    load_table,
    register_dataset,
    split_dataset,
)
from mlplan.errors import CheckFailedError, DataError, NotFoundError, ParameterError, RefError
from mlplan.store import RunRecord
from mlplan.workspace import Workspace


def _shares(codes: np.ndarray) -> list[int]:
    return [int((codes == k).sum()) for k in range(3)]


# -- assign_splits ---------------------------------------------------------------------------


def test_same_seed_same_split_other_seed_other_split() -> None:
    table = customers_table(500)
    first = assign_splits(table, seed=3)
    assert np.array_equal(first, assign_splits(table, seed=3))
    assert not np.array_equal(first, assign_splits(table, seed=4))
    assert first.dtype == np.int8
    assert set(np.unique(first)) == {0, 1, 2}


@pytest.mark.parametrize(
    ("test", "valid"), [(0.2, 0.1), (0.25, 0.0), (0.1, 0.3), (0.5, 0.25)], ids=str
)
def test_shares_are_the_requested_fractions(test: float, valid: float) -> None:
    n = 1_000
    codes = assign_splits(pa.table({"x": np.arange(n)}), test=test, valid=valid, seed=1)
    train, got_valid, got_test = _shares(codes)
    assert abs(got_test - test * n) <= 1
    assert abs(got_valid - valid * n) <= 1
    assert train + got_valid + got_test == n


def test_rows_are_shuffled_not_cut_in_file_order() -> None:
    codes = assign_splits(pa.table({"x": np.arange(1_000)}), seed=0)
    # The test rows are spread over the whole file, not the first fifth.
    test_rows = np.flatnonzero(codes == 2)
    assert test_rows.min() < 100
    assert test_rows.max() > 900


def test_stratified_split_keeps_each_class_share(rng: np.random.Generator) -> None:
    labels = rng.choice(["a", "b", "c"], 997, p=[0.8, 0.15, 0.05])
    table = pa.table({"y": labels})
    codes = assign_splits(table, test=0.2, valid=0.1, stratify="y", seed=5)
    for label in ("a", "b", "c"):
        in_class = codes[labels == label]
        m = in_class.size
        assert abs((in_class == 2).sum() - 0.2 * m) <= 1, label
        assert abs((in_class == 1).sum() - 0.1 * m) <= 1, label


def test_stratified_split_treats_missing_labels_as_a_class() -> None:
    labels = pa.array([None] * 50 + ["x"] * 50, pa.string())
    codes = assign_splits(pa.table({"y": labels}), test=0.2, valid=0.0, stratify="y", seed=0)
    assert _shares(codes[:50]) == [40, 0, 10]
    assert _shares(codes[50:]) == [40, 0, 10]


@settings(max_examples=50, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5), min_size=60, max_size=100),
    seed=st.integers(0, 2**32 - 1),
)
def test_no_group_spans_two_splits(sizes: list[int], seed: int) -> None:
    groups = np.repeat(np.arange(len(sizes)), sizes)
    np.random.default_rng(seed).shuffle(groups)  # rows of a group are scattered in the file
    n = groups.size
    codes = assign_splits(
        pa.table({"g": [f"g{g}" for g in groups]}), test=0.2, valid=0.1, group="g", seed=seed
    )

    for g in np.unique(groups):
        assert np.unique(codes[groups == g]).size == 1, f"group g{g} spans splits"
    _, valid, test = _shares(codes)
    largest = max(sizes)
    assert abs(test - 0.2 * n) <= largest / 2
    assert abs(valid - 0.1 * n) <= largest


def test_grouped_and_stratified_split_keeps_groups_whole() -> None:
    table = pa.table({"y": [0, 1] * 200, "g": [i // 4 for i in range(400)]})
    codes = assign_splits(table, test=0.2, valid=0.1, stratify="y", group="g", seed=7)
    groups = np.asarray(table.column("g"))
    assert all(np.unique(codes[groups == g]).size == 1 for g in np.unique(groups))
    assert _shares(codes) == [280, 40, 80]


def test_time_split_trains_on_the_oldest_and_tests_on_the_newest(
    rng: np.random.Generator,
) -> None:
    start = dt.datetime(2025, 1, 1)
    stamps = [start + dt.timedelta(hours=int(h)) for h in rng.permutation(1_000)]
    codes = assign_splits(pa.table({"ts": stamps}), test=0.2, valid=0.1, time="ts", seed=0)
    times = np.array(stamps, dtype="datetime64[us]")
    train, valid, test = (times[codes == k] for k in range(3))

    assert train.max() < valid.min()
    assert valid.max() < test.min()
    assert _shares(codes) == [700, 100, 200]


def test_time_split_ignores_the_seed() -> None:
    table = pa.table({"t": np.arange(100)[::-1]})
    assert np.array_equal(
        assign_splits(table, time="t", seed=1), assign_splits(table, time="t", seed=2)
    )


def test_time_split_with_groups_orders_groups_by_their_first_row() -> None:
    # Customer c0 is seen first, c9 last; each customer's rows stay in one split.
    table = pa.table({"t": np.arange(100), "customer": [f"c{i % 10}" for i in range(100)]})
    codes = assign_splits(table, test=0.2, valid=0.1, time="t", group="customer", seed=0)
    by_customer = {f"c{i}": int(codes[i]) for i in range(10)}
    assert by_customer == {f"c{i}": 0 for i in range(7)} | {"c7": 1, "c8": 2, "c9": 2}
    customers = np.asarray(table.column("customer"))
    assert all(np.unique(codes[customers == c]).size == 1 for c in by_customer)


@pytest.mark.parametrize(
    ("kwargs", "param", "message"),
    [
        ({"test": 1.0}, "test", r"^'test' must be in \[0, 1\)\. Got 1\.0 instead\.$"),
        ({"test": -0.1}, "test", r"^'test' must be in \[0, 1\)\. Got -0\.1 instead\.$"),
        ({"valid": 1.5}, "valid", r"^'valid' must be in \[0, 1\)\. Got 1\.5 instead\.$"),
    ],
    ids=["test-1", "test-negative", "valid-1.5"],
)
def test_a_share_outside_0_1_is_a_parameter_error(
    kwargs: dict[str, float], param: str, message: str
) -> None:
    with pytest.raises(ParameterError, match=message) as raised:
        assign_splits(pa.table({"x": np.arange(100)}), **kwargs)  # type: ignore[arg-type]
    assert raised.value.param == param


def test_shares_must_leave_rows_to_train_on() -> None:
    with pytest.raises(
        ParameterError,
        match=r"^'test' \+ 'valid' must leave rows to train on; got 0\.6 \+ 0\.4$",
    ) as raised:
        assign_splits(pa.table({"x": np.arange(100)}), test=0.6, valid=0.4)
    assert raised.value.params == ("test", "valid")


def test_the_cli_names_the_option_of_a_bad_share(cli: Any) -> None:
    assert cli("data", "add", "customers").exit_code == 0
    result = cli("data", "split", "customers", "--valid", "1.5")
    assert result.exit_code == 2
    assert "error: --valid must be in [0, 1). Got 1.5 instead." in result.stderr
    both = cli("data", "split", "customers", "--test", "0.6", "--valid", "0.4")
    assert both.exit_code == 2
    assert "error: --test + --valid must leave rows to train on; got 0.6 + 0.4" in both.stderr
    crossed = cli("data", "split", "customers", "--stratify", "churned", "--time", "age")
    assert crossed.exit_code == 2
    assert crossed.stderr.startswith("error: --stratify and --time do not combine")


@pytest.mark.parametrize(
    ("table", "kwargs", "message"),
    [
        (
            pa.table({"x": [1, 2, 3]}),
            {},
            r"^the valid split is empty: 3 rows in 3 rows are too few for a 10% valid share; "
            r"add data or change the shares$",
        ),
        (
            pa.table({"x": [1]}),
            {"valid": 0.0},
            r"the test split is empty: 1 rows in 1 rows are too few for a 20% test share",
        ),
        (
            pa.table({"x": np.arange(40), "g": [i // 20 for i in range(40)]}),
            {"valid": 0.0, "group": "g"},
            r"the test split is empty: 40 rows in 2 groups are too few for a 20% test share",
        ),
    ],
    ids=["3-rows", "1-row", "2-groups"],
)
def test_too_few_units_for_a_share_is_a_data_error(
    table: pa.Table, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        assign_splits(table, **kwargs)  # type: ignore[arg-type]


def test_zero_shares_need_no_rows() -> None:
    codes = assign_splits(pa.table({"x": [1, 2]}), test=0.0, valid=0.0)
    assert _shares(codes) == [2, 0, 0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"group": "k"}, r"^group column 'k' has missing values; every row needs a group$"),
        ({"time": "k"}, r"^time column 'k' has missing values; every row needs a time$"),
    ],
    ids=["group", "time"],
)
def test_missing_group_or_time_values_are_data_errors(kwargs: dict[str, str], message: str) -> None:
    table = pa.table({"k": pa.array([1, None, *range(2, 100)], pa.int64())})
    with pytest.raises(DataError, match=message):
        assign_splits(table, **kwargs)  # type: ignore[arg-type]


# -- check_leakage ---------------------------------------------------------------------------


def test_identical_rows_in_two_splits_are_a_warning_beside_chance() -> None:
    table = pa.table({"a": [1, 2, 3, 1, 2, 4], "b": ["x", "y", "z", "x", "y", "w"]})
    codes = np.array([0, 0, 0, 2, 0, 2], np.int8)  # row 3 repeats row 0 across splits
    report = check_leakage(table, codes, group=None, id_column=None)
    leakage = report.to_dict()
    assert leakage == {
        "compared_columns": ["a", "b"],
        "duplicate_groups_across_splits": 1,
        "duplicate_rows_across_splits": 2,
        "test_rows_matching_train": 1,
        "test_share_matching_train": 0.5,
        "expected_share_by_chance": leakage["expected_share_by_chance"],
        "passed": True,
        "warnings": leakage["warnings"],
    }
    assert 0 <= leakage["expected_share_by_chance"] < 0.5
    (warning,) = leakage["warnings"]
    assert warning.startswith(
        "1 of 2 test rows (50.0%) equal a training row on every compared column (a, b); by "
        "chance, from how often each column's values occur, about "
    )
    assert leakage_failures(leakage) == []


def test_duplicates_within_one_split_are_not_leakage() -> None:
    table = pa.table({"a": [1, 1, 2, 2]})
    report = check_leakage(table, np.array([0, 0, 2, 2], np.int8), group=None, id_column=None)
    assert report.duplicate_groups == 0
    assert report.passed is True


def test_leakage_ignores_the_id_column_when_comparing_rows() -> None:
    # The same customer twice under two ids: a duplicate once the id is set aside.
    table = pa.table({"id": [1, 2, 3], "age": [30, 30, 41], "plan": ["a", "a", "b"]})
    codes = np.array([0, 2, 0], np.int8)
    report = check_leakage(table, codes, group=None, id_column="id")
    assert report.compared_columns == ["age", "plan"]
    assert report.duplicate_groups == 1
    assert report.ids == Crossing(0, [])
    assert report.passed is True  # a warning: no id crosses the splits
    assert report.test_duplicates == 1


def test_leakage_finds_ids_and_groups_in_two_splits() -> None:
    table = pa.table(
        {
            "id": [7, 7, 8, 9, 9, 10],
            "user": ["u1", "u2", "u2", "u3", "u3", "u4"],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    codes = np.array([0, 1, 2, 2, 2, 0], np.int8)
    report = check_leakage(table, codes, group="user", id_column="id")
    assert report.duplicate_groups == 0
    assert report.ids == Crossing(1, ["7"])
    assert report.groups == Crossing(1, ["u2"])
    assert report.passed is False
    assert leakage_failures(report.to_dict()) == [
        "1 groups in more than one split (e.g. u2)",
        "1 ids in more than one split (e.g. 7)",
    ]


def test_leakage_ignores_named_columns() -> None:
    table = pa.table({"path": ["a.png", "b.png"], "label": ["cat", "cat"]})
    codes = np.array([0, 2], np.int8)
    assert check_leakage(table, codes, group=None, id_column=None).passed is True
    report = check_leakage(table, codes, group=None, id_column=None, ignore=["path"])
    assert report.compared_columns == ["label"]
    assert report.duplicate_groups == 1


def test_leakage_examples_are_capped_at_five() -> None:
    ids = [i // 2 for i in range(20)]  # ten ids, each in two rows
    codes = np.array([0, 2] * 10, np.int8)
    report = check_leakage(pa.table({"id": ids, "x": range(20)}), codes, group=None, id_column="id")
    assert report.ids == Crossing(10, ["0", "1", "2", "3", "4"])


def test_leakage_handles_awkward_column_names() -> None:
    table = pa.table({'we"ird col': [1, 1], "select": [2, 2]})
    report = check_leakage(table, np.array([0, 1], np.int8), group=None, id_column=None)
    assert report.duplicate_rows == 2


def test_leakage_handles_an_empty_column_name_as_the_id() -> None:
    # A pandas to_csv() or R write.csv() row number has an empty header; registered as the id
    # column, it was "zero-length delimited identifier", an internal error at data split.
    table = pa.table({"": [1, 2, 2, 3], "x": [0, 1, 1, 0], '"q" col': [5, 5, 5, 5]})
    report = check_leakage(table, np.array([0, 0, 2, 2], np.int8), group="x", id_column="")
    assert report.ids is not None and report.ids.examples == ["2"]
    assert report.groups is not None and report.groups.count == 2
    assert report.compared_columns == ["x", '"q" col']


# -- split_dataset and the store -------------------------------------------------------------


def test_split_is_recorded_with_counts_and_leakage(ws: Workspace) -> None:
    register_dataset(ws, "customers")
    split = split_dataset(ws, "customers", stratify="churned", seed=11)

    assert split.ref == "customers@1/s1"
    assert split.parameters == {
        "test": 0.2,
        "valid": 0.1,
        "stratify": "churned",
        "group": None,
        "time": None,
        "seed": 11,
    }
    assert {k: v["rows"] for k, v in split.counts.items()} == {
        "train": 280,
        "valid": 40,
        "test": 80,
    }
    assert sum(v["target"].get("1", 0) for v in split.counts.values()) == sum(
        customers_table().column("churned").to_pylist()
    )
    assert split.leakage["passed"] is True
    assert split.passed is True
    assert split.to_dict()["dataset"] == "customers@1"


def test_split_round_trips_through_get_list_and_load(ws: Workspace) -> None:
    register_dataset(ws, "customers")
    first = split_dataset(ws, "customers@1", seed=1)
    second = split_dataset(ws, "customers", seed=2, valid=0.0)

    assert second.ref == "customers@1/s2"
    assert [s.ref for s in list_splits(ws)] == ["customers@1/s1", "customers@1/s2"]
    assert [s.ref for s in list_splits(ws, "customers@1")] == ["customers@1/s1", "customers@1/s2"]
    assert list_splits(ws, "customers@2") == []
    assert get_split(ws, "customers@1/s1") == first
    assert get_split(ws, "customers/s2") == second
    assert get_split(ws) == second  # newest

    loaded = load_split(ws, second)
    assert loaded.info.ref == "customers@1"
    assert loaded.table.num_rows == loaded.codes.size == 400
    assert np.array_equal(loaded.codes, assign_splits(loaded.table, seed=2, valid=0.0))
    assert _shares(loaded.codes) == [320, 0, 80]
    info, table, codes = loaded  # unpacks as it did when it was a tuple
    assert info is loaded.info and table is loaded.table and codes is loaded.codes


def test_unknown_split_lists_the_known_ones(ws: Workspace) -> None:
    with pytest.raises(NotFoundError, match=r"^no split yet\. Make one with: mlplan data split"):
        get_split(ws)
    register_dataset(ws, "customers")
    split_dataset(ws, "customers")
    with pytest.raises(
        NotFoundError, match=r"^split 'customers@1/s9' not found; known: customers@1/s1$"
    ):
        get_split(ws, "customers@1/s9")


def test_malformed_split_reference_is_a_ref_error(sqlite_ws: Workspace) -> None:
    with pytest.raises(RefError, match=r"expected NAME@VERSION/sN, e\.g\. customers@2/s1"):
        get_split(sqlite_ws, "customers@1")


def test_split_numbers_count_per_dataset_version(ws: Workspace) -> None:
    register_dataset(ws, "customers")
    split_dataset(ws, "customers")
    write_csv(customers_table(300, seed=9), ws.root / "data" / "customers.csv")
    register_dataset(ws, "customers")
    assert split_dataset(ws, "customers").ref == "customers@2/s1"


def test_planted_duplicates_are_a_warning_far_above_chance(ws: Workspace) -> None:
    table = customers_table(400)
    leaky = pa.concat_tables([table, table.slice(0, 40)])  # 40 rows copied verbatim
    write_csv(leaky, ws.root / "data" / "customers.csv")
    register_dataset(ws, "customers")
    split = split_dataset(ws, "customers", seed=0)

    leakage = split.leakage
    assert split.passed is True and split.failures == []  # no id or group crosses
    assert leakage["duplicate_groups_across_splits"] > 0
    assert leakage["test_rows_matching_train"] > 0
    assert leakage["expected_share_by_chance"] < leakage["test_share_matching_train"] / 4
    # Not compared: the target and the personal data (the plan names no id column).
    assert leakage["compared_columns"] == ["customer_id", "gender", "age", "region", "charges"]
    warning, entity = leakage["warnings"]
    assert entity.startswith("customer_id names an entity with several rows")  # the copies
    assert "(customer_id, gender, age, region, charges)" in warning
    assert warning.endswith(
        "far more, so likely copies of the same records; remove duplicates, or split with "
        "--group on the column that names the entity"
    )


@pytest.fixture
def heart(tmp_path: Path) -> Iterator[Workspace]:
    """A project on an R export: a row number, five columns with few values, a target."""
    workspace = exported_workspace(tmp_path)
    yield workspace
    workspace.close()


def test_rows_are_compared_without_the_row_number_and_repeat_as_chance_predicts(
    heart: Workspace,
) -> None:
    split = split_dataset(heart, "heart", seed=0)

    leakage = split.leakage
    # With the row number, no two rows were ever equal; without it, most test rows repeat a
    # training row, as five columns with few values each make them.
    assert leakage["compared_columns"] == ["sex", "chest_pain", "fbs", "exang", "slope"]
    assert leakage["test_share_matching_train"] > 0.5
    assert leakage["expected_share_by_chance"] == pytest.approx(
        leakage["test_share_matching_train"], abs=0.05
    )
    assert split.passed is True
    (warning,) = leakage["warnings"]
    assert "(sex, chest_pain, fbs, exang, slope)" in warning
    assert warning.endswith("what columns with few values give, not a leak by itself")


def test_time_group_and_id_columns_are_not_compared(heart: Workspace) -> None:
    edit_plan(heart, "    time_column: null", "    time_column: slope")
    edit_plan(heart, "    id_column: null", "    id_column: sex")
    split = split_dataset(heart, "heart", group="chest_pain", valid=0.0, test=0.3, seed=0)
    assert split.leakage["compared_columns"] == ["fbs", "exang"]


@pytest.fixture
def crossing(project_dir: Path, sqlite_ws: Workspace) -> Workspace:
    """Customers with the plan's id column, 40 of them twice with other charges: a random
    split puts some of them in two splits."""
    edit_plan(sqlite_ws, "id_column: null", "id_column: customer_id")
    table = customers_table(400)
    again = table.slice(0, 40).set_column(6, "charges", pa.array(np.full(40, 1.0)))
    write_csv(pa.concat_tables([table, again]), project_dir / "data" / "customers.csv")
    register_dataset(sqlite_ws, "customers")
    return sqlite_ws


def test_ids_in_two_splits_fail_and_an_acceptance_is_recorded_with_its_reason(
    crossing: Workspace,
) -> None:
    failed = split_dataset(crossing, "customers", seed=0)
    assert failed.passed is False and failed.accepted is None
    (failure,) = failed.failures
    assert re.fullmatch(r"\d+ ids in more than one split \(e\.g\. \d+, \d+, \d+\)", failure)
    with pytest.raises(CheckFailedError, match=r"--accept-leakage"):
        failed.check_usable()

    why = "repeat customers are scored again in production"
    accepted = split_dataset(crossing, "customers", seed=0, accept_leakage=why)
    assert accepted.ref == "customers@1/s2"  # the same rows, now accepted on the record
    assert (accepted.passed, accepted.failures, accepted.accepted) == (False, [failure], why)
    accepted.check_usable()
    assert get_split(crossing, "customers@1/s2").accepted == why
    with crossing.store.transaction() as session:
        run = session.get(RunRecord, accepted.run_id)
        assert run is not None and run.parameters["accept_leakage"] == why
    # The same call again finds it; without the reason, the failed one.
    assert split_dataset(crossing, "customers", seed=0, accept_leakage=why).created is False
    assert split_dataset(crossing, "customers", seed=0).ref == "customers@1/s1"


def test_a_split_that_passes_records_no_acceptance(crossing: Workspace) -> None:
    split = split_dataset(crossing, "customers", group="customer_id", accept_leakage="just in case")
    assert split.failures == [] and split.accepted is None


@pytest.mark.parametrize("reason", ["", "   "], ids=["empty", "blank"])
def test_an_acceptance_needs_a_reason(crossing: Workspace, reason: str) -> None:
    with pytest.raises(ParameterError, match=r"^'accept_leakage' needs the reason"):
        split_dataset(crossing, "customers", accept_leakage=reason)
    assert list_splits(crossing) == []


def test_splits_recorded_before_fail_only_on_crossings() -> None:
    # A split recorded when identical rows failed it: training may use it now.
    old = {"duplicate_groups_across_splits": 3, "duplicate_rows_across_splits": 6, "passed": False}
    assert leakage_failures(old) == []


def test_split_checks_the_plans_id_column(project_dir: Path, ws: Workspace) -> None:
    plan = project_dir / "mlplan.yaml"
    plan.write_text(plan.read_text().replace("id_column: null", "id_column: customer_id", 1))
    table = customers_table(400)
    # the same customers again under the same ids, with changed charges: not row duplicates
    again = table.slice(0, 40).set_column(6, "charges", pa.array(np.full(40, 1.0)))
    write_csv(pa.concat_tables([table, again]), project_dir / "data" / "customers.csv")
    register_dataset(ws, "customers")
    split = split_dataset(ws, "customers", seed=0)

    assert "customer_id" not in split.leakage["compared_columns"]
    assert split.leakage["ids_across_splits"] > 0
    assert split.passed is False


def test_grouped_split_by_customer_passes(ws: Workspace) -> None:
    table = customers_table(400)
    write_csv(pa.concat_tables([table, table.slice(0, 40)]), ws.root / "data" / "customers.csv")
    register_dataset(ws, "customers")
    split = split_dataset(ws, "customers", group="customer_id", seed=0)
    assert split.leakage["groups_across_splits"] == 0
    assert split.leakage["duplicate_groups_across_splits"] == 0
    assert split.passed is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"stratify": "chruned"},
            r"^customers@1: stratify column 'chruned' is not a column of "
            r"the data \(did you mean 'churned'",
        ),
        (
            {"group": "customer"},
            r"group column 'customer' is not a column of the data "
            r"\(did you mean 'customer_id'",
        ),
        ({"time": "signup"}, r"time column 'signup' is not a column of the data \(columns: "),
    ],
    ids=["stratify", "group", "time"],
)
def test_split_on_an_unknown_column_names_close_ones(
    sqlite_ws: Workspace, kwargs: dict[str, str], message: str
) -> None:
    register_dataset(sqlite_ws, "customers")
    with pytest.raises(DataError, match=message):
        split_dataset(sqlite_ws, "customers", **kwargs)  # type: ignore[arg-type]
    assert list_splits(sqlite_ws) == []


def test_split_of_a_deleted_file_uses_the_snapshot(sqlite_ws: Workspace) -> None:
    info = register_dataset(sqlite_ws, "customers").version
    expected = load_table(sqlite_ws, info)
    (sqlite_ws.root / "data" / "customers.csv").unlink()
    split = split_dataset(sqlite_ws, "customers")
    _, table, _ = load_split(sqlite_ws, split)
    assert table.equals(expected)


def test_stratify_and_time_do_not_combine() -> None:
    table = pa.table({"t": pa.array(range(100)), "y": [0, 1] * 50})
    with pytest.raises(ParameterError, match=r"'stratify' and 'time' do not combine"):
        assign_splits(table, stratify="y", time="t")


def test_stratifying_needs_classes(cli: Any) -> None:
    ok(cli("data", "add", "customers"))
    result = cli("data", "split", "customers", "--stratify", "charges")
    assert result.exit_code == 1
    assert "stratifying needs classes" in result.stderr


def test_splitting_the_same_version_the_same_way_again_changes_nothing(
    sqlite_ws: Workspace, cli: Any
) -> None:
    register_dataset(sqlite_ws, "customers")
    first = split_dataset(sqlite_ws, "customers", stratify="churned", seed=3)
    again = split_dataset(sqlite_ws, "customers", stratify="churned", seed=3)
    assert (first.created, again.created) == (True, False)
    assert again.ref == first.ref == "customers@1/s1" and again.run_id == first.run_id
    assert [s.ref for s in list_splits(sqlite_ws)] == ["customers@1/s1"]
    other = split_dataset(sqlite_ws, "customers", stratify="churned", seed=4)
    assert other.ref == "customers@1/s2" and other.created
    shown = cli("data", "split", "customers", "--stratify", "churned", "--seed", "3")
    assert shown.exit_code == 0
    assert shown.stdout.startswith("Unchanged: customers@1/s1 split this version the same way")


def test_an_entitys_rows_in_two_splits_are_a_warning_naming_group(project_dir: Path) -> None:
    """customer_id over a customer's several rows, split without --group on it."""
    rng = np.random.default_rng(6)
    rows = 900
    table = pa.table(
        {
            "customer_id": rng.integers(1000, 1300, rows),
            "spend": rng.gamma(2, 30, rows).round(2),
            "churned": (rng.random(rows) < 0.2).astype(np.int64),
        }
    )
    write_csv(table, project_dir / "data" / "customers.csv")
    ws = Workspace(project_dir)
    edit_plan(ws, "    pii_columns: [name, email]", "    pii_columns: []")
    register_dataset(ws, "customers")
    apart = split_dataset(ws, "customers", seed=1)
    (warning,) = [w for w in apart.leakage["warnings"] if "names an entity" in w]
    assert re.fullmatch(
        r"customer_id names an entity with several rows, and [\d,]+ of them have rows in more "
        r"than one split: a model is then judged on entities it has seen; split with --group "
        r"customer_id to keep each in one",
        warning,
    )
    grouped = split_dataset(ws, "customers", seed=1, group="customer_id")
    assert not [w for w in grouped.leakage["warnings"] if "names an entity" in w]
    ws.close()
