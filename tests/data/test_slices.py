"""Slices from the plan: every row of a column or bin slice lands in exactly one group (none
left out silently: missing values and values past the edges get groups of their own), and a
filter expression can only filter rows, never reach files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st
from tests.conftest import ok

from mlplan.data import MISSING, slice_masks, slice_rows
from mlplan.plan import SliceSpec


def test_slice_filters_cannot_reach_files(cli: Any, project_dir: Path) -> None:
    ok(cli("data", "add", "customers"))
    plan = project_dir / "mlplan.yaml"
    probe = project_dir / "secret.csv"
    probe.write_text("x\n1\n")
    expression = f"age > (SELECT count(*) FROM read_csv('{probe}'))"
    plan.write_text(
        plan.read_text().replace(
            "slices: []", f'slices:\n  - {{name: sneaky, where: "{expression}"}}'
        )
    )
    result = cli("plan", "validate")
    assert result.exit_code == 2
    assert "slice 'sneaky'" in result.stderr and "Permission Error" in result.stderr


@given(
    values=st.lists(
        st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False), st.integers(-200, 200)),
        min_size=1,
        max_size=60,
    ),
    edges=st.lists(st.integers(-100, 100), min_size=1, max_size=6, unique=True).map(sorted),
)
def test_every_row_falls_in_exactly_one_bin(values: list[float | None], edges: list[int]) -> None:
    table = pa.table({"x": pa.array(values, pa.float64())})
    masks = slice_masks(table, SliceSpec(name="x", column="x", bins=[float(e) for e in edges]))
    counts = np.sum(list(masks.values()), axis=0)
    assert counts.tolist() == [1] * len(values)


@given(st.lists(st.one_of(st.none(), st.sampled_from(["f", "m", "x"])), min_size=1, max_size=40))
def test_every_row_falls_in_exactly_one_value(values: list[str | None]) -> None:
    table = pa.table({"g": pa.array(values, pa.string())})
    masks = slice_masks(table, SliceSpec(name="g", columns=["g"]))
    assert np.sum(list(masks.values()), axis=0).tolist() == [1] * len(values)
    assert (f"g={MISSING}" in masks) == (None in values)


def test_ages_past_the_last_edge_and_missing_ones_are_groups_of_their_own() -> None:
    # Seen on a public dataset: 999 of 1,000 rows at or past the last edge fell in no group.
    ages = pa.array([70, 81, 65, 90, None, 30, 12], pa.int64())
    masks = slice_masks(pa.table({"age": ages}), SliceSpec(name="age", column="age",
                                                             bins=[18, 40, 65]))  # fmt: skip
    assert {k: int(v.sum()) for k, v in masks.items()} == {
        "age < 18": 1,
        "age in [18, 40)": 1,
        "age in [40, 65)": 0,
        "age >= 65": 4,
        "age=(missing)": 1,
    }


@given(
    st.lists(
        st.tuples(st.sampled_from(["f", "m", None]), st.integers(0, 4), st.floats(-5, 150)),
        min_size=1,
        max_size=60,
    )
)
def test_slice_rows_are_the_masks_rows(rows: list[tuple[Any, int, float]]) -> None:
    """For a combination, bins and a filter, each value's rows are its mask's, in order."""
    table = pa.table(
        {
            "g": [g for g, _, _ in rows],
            "r": [f"r{r}" for _, r, _ in rows],
            "age": [a for _, _, a in rows],
        }
    )
    specs = [
        SliceSpec(name="gr", columns=["g", "r"]),
        SliceSpec(name="a", column="age", bins=[18, 65, 120]),
        SliceSpec(name="old", where="age > 60"),
    ]
    for spec in specs:
        masks = slice_masks(table, spec)
        found = slice_rows(table, spec)
        assert list(found) == list(masks)
        for value, mask in masks.items():
            assert found[value].tolist() == np.flatnonzero(mask).tolist()
