"""Columns that only identify rows: ids and the row numbers that R and pandas exports add are
found by the scan (role "id"), whatever their name when they are a gap-free run of integers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tests.conftest import exported_table, write_csv

from mlplan.data import id_columns, profile_table, scan_data


def _roles(tmp_path: Path, table: pa.Table) -> dict[str, tuple[str, str]]:
    suggestions = scan_data(write_csv(table, tmp_path / "export.csv"))
    return {c.name: (c.role, c.reason) for c in suggestions.columns}


@pytest.mark.parametrize(
    ("row_number", "start", "reason"),
    [
        ("rownames", 1, "row number (unique per row; the name an export gives it)"),
        ("Unnamed: 0", 0, "row number (unique per row; the name an export gives it)"),
        ("", 1, "row number (unique per row; the name an export gives it)"),
        ("...1", 1, "row number (unique per row; the name an export gives it)"),
        ("index", 0, "row number (unique per row; the name an export gives it)"),
        ("record", 1001, "row number (1001 to 1600, unique and without gaps)"),
    ],
    ids=["R-rownames", "pandas-index", "R-write.csv", "readr", "pandas-reset_index", "any-name"],
)
def test_an_exports_row_number_is_an_id_not_a_feature(
    tmp_path: Path, row_number: str, start: int, reason: str
) -> None:
    table = exported_table(row_number=row_number, start=start)
    roles = _roles(tmp_path, table)
    assert roles[row_number] == ("id", reason)
    assert {name for name, (role, _) in roles.items() if role == "id"} == {row_number}


def test_a_shuffled_row_number_is_still_one(tmp_path: Path) -> None:
    # An export of a shuffled frame: the row number still encodes the original order.
    table = exported_table(row_number="n")
    table = table.take(np.random.default_rng(2).permutation(table.num_rows))
    assert _roles(tmp_path, table)["n"] == (
        "id",
        "row number (1 to 600, unique and without gaps)",
    )


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("income", np.arange(0, 1200, 2)),  # unique integers with gaps
        ("ratio", np.arange(600) / 7),  # unique, but not integers
        ("visits", np.arange(600) % 40),  # integers that repeat
        ("rownames", np.arange(600) % 300),  # the name, but not one per row
    ],
    ids=["gaps", "floats", "repeats", "named-but-repeated"],
)
def test_columns_that_only_look_like_row_numbers_stay_features(
    tmp_path: Path, column: str, values: np.ndarray
) -> None:
    table = exported_table(row_number="customer_key").append_column(column, pa.array(values))
    assert _roles(tmp_path, table)[column] == ("feature", "")


def test_a_short_run_of_integers_needs_the_name_to_be_a_row_number() -> None:
    table = pa.table({"floor": np.arange(1, 11), "index": np.arange(10), "y": [0, 1] * 5})
    assert id_columns(profile_table(table)) == {
        "index": "row number (unique per row; the name an export gives it)"
    }


def test_the_plan_names_a_real_id_rather_than_the_exports_row_number(tmp_path: Path) -> None:
    from mlplan.plan import render_plan

    rows = 300
    table = pa.table(
        {
            "Unnamed: 0": np.arange(rows),
            "customer_id": [f"C{i:05d}" for i in np.random.default_rng(1).permutation(rows)],
            "spend": np.round(np.random.default_rng(2).gamma(2, 30, rows), 2),
            "churned": np.random.default_rng(3).random(rows) < 0.2,
        }
    )
    suggestions = scan_data(write_csv(table, tmp_path / "export.csv"), target="churned")
    assert {c.name for c in suggestions.columns if c.role == "id"} == {"Unnamed: 0", "customer_id"}
    plan = render_plan("p", task="binary", target="churned", data=suggestions)
    assert '    id_column: "customer_id"' in plan


def test_ids_are_found_in_columns_too_large_to_count_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sketched distinct count is an estimate: a shuffled id is still an id (its estimate
    is within the stated error of the rows), ids in order are counted exactly, and an entity
    id over two rows each is still an entity, not an id."""
    import mlplan.data._profile as profiling
    from mlplan.data import Profiler
    from mlplan.data._columns import entity_columns, id_columns

    monkeypatch.setattr(profiling, "EXACT_DISTINCT", 1_000)
    rng = np.random.default_rng(3)
    rows = 20_000
    table = pa.table(
        {
            "account_id": rng.permutation(rows) + 10_000,
            "row": np.arange(rows),
            "customer_id": np.repeat(rng.permutation(rows // 2), 2),
            # an entity's id repeated on a few rows in a thousand, in random order: its
            # sketched count is within the error of the rows, yet it is no per-row id
            "account_no_id": rng.permutation(np.concatenate([np.arange(rows - 20), np.arange(20)])),
        }
    )
    profiler = Profiler(table.schema)
    profiler.add_all(table.to_batches(max_chunksize=700))
    profile = profiler.finish()
    assert "distinct" in profile["columns"]["account_id"]["sketched"]
    assert "distinct" not in profile["columns"]["row"]["sketched"]  # increasing: each one new
    assert profile["columns"]["row"]["distinct"] == rows
    assert profile["columns"]["row"]["quantiles"]["0.5"] == pytest.approx(rows / 2, rel=0.01)
    assert set(id_columns(profile)) == {"account_id", "row"}
    assert entity_columns(profile) == ["customer_id", "account_no_id"]
    assert profile["columns"]["account_no_id"]["sketched"]["distinct"]["repeats_seen"]
