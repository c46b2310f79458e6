"""Diffs between dataset versions: schema changes and distribution shifts (PSI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import customers_table, write_csv

from mlplan.data import ColumnShift, DatasetDiff, diff_datasets, psi, register_dataset
from mlplan.errors import DatasetNotFoundError
from mlplan.workspace import Workspace


def _shifted(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """Version 2: charges up by 30, most customers now in the east or the new west region,
    'gender' gone, 'plan' new, 'age' now text; churned and customer_id as before."""
    n = table.num_rows
    charges = pa.compute.add(table.column("charges"), 30.0)
    region = pa.array(rng.choice(["east", "west", "north"], n, p=[0.6, 0.3, 0.1]))
    age = pa.array([f"{a}y" for a in table.column("age").to_pylist()])
    return (
        table.set_column(table.schema.get_field_index("charges"), "charges", charges)
        .set_column(table.schema.get_field_index("region"), "region", region)
        .set_column(table.schema.get_field_index("age"), "age", age)
        .drop_columns(["gender"])
        .append_column("plan", pa.array(rng.choice(["basic", "pro"], n)))
    )


def _by_column(diff: DatasetDiff) -> dict[str, ColumnShift]:
    return {s.column: s for s in diff.shifts}


@pytest.fixture
def shifted(ws: Workspace, rng: np.random.Generator) -> DatasetDiff:
    register_dataset(ws, "customers")
    write_csv(_shifted(customers_table(), rng), ws.root / "data" / "customers.csv")
    register_dataset(ws, "customers")
    return diff_datasets(ws, "customers@1", "customers@2")


def test_diff_lists_added_removed_and_retyped_columns(shifted: DatasetDiff) -> None:
    assert (shifted.a, shifted.b, shifted.rows) == ("customers@1", "customers@2", (400, 400))
    assert shifted.added == [{"column": "plan", "type": "string"}]
    assert shifted.removed == [{"column": "gender", "type": "string"}]
    assert shifted.type_changes == [{"column": "age", "from": "int64", "to": "string"}]
    assert shifted.from_data is True
    assert shifted.identical is False


def test_psi_flags_a_shifted_numeric_and_a_shifted_categorical_column(
    shifted: DatasetDiff,
) -> None:
    shifts = _by_column(shifted)
    assert shifted.threshold == 0.2

    charges = shifts["charges"]
    assert charges.flagged is True
    assert charges.psi is not None and charges.psi > 1.0
    assert charges.mean is not None
    assert charges.mean[1] == pytest.approx(charges.mean[0] + 30)  # type: ignore[operator]

    region = shifts["region"]
    assert region.flagged is True
    assert region.psi is not None and region.psi > 0.2
    assert region.new_categories == ["west"]
    assert region.gone_categories == ["south"]

    churned = shifts["churned"]  # the same values: no shift at all
    assert churned.psi == pytest.approx(0.0, abs=1e-12)
    assert churned.flagged is False


def test_ids_and_personal_data_are_not_compared(shifted: DatasetDiff) -> None:
    shifts = _by_column(shifted)
    assert shifts["customer_id"].note == "unique per row: not compared"
    for column in ("name", "email"):
        shift = shifts[column]
        assert shift.note == "personal data: values not compared"
        assert (shift.psi, shift.flagged, shift.new_categories) == (None, False, [])
    assert "@example.com" not in json.dumps(shifted.to_dict())


def test_diff_to_dict_is_json(shifted: DatasetDiff) -> None:
    data = json.loads(json.dumps(shifted.to_dict(), allow_nan=False))
    assert data["a"] == "customers@1"
    assert [s["column"] for s in data["shifts"]] == [
        "customer_id",
        "name",
        "email",
        "age",
        "region",
        "charges",
        "churned",
    ]


def test_a_version_does_not_differ_from_itself(sqlite_ws: Workspace) -> None:
    register_dataset(sqlite_ws, "customers")
    diff = diff_datasets(sqlite_ws, "customers@1", "customers")
    assert diff.identical is True
    compared = [s for s in diff.shifts if s.note is None]
    assert [s.column for s in compared] == ["gender", "age", "region", "charges", "churned"]
    assert all(s.psi == pytest.approx(0.0, abs=1e-12) for s in compared)


def test_dictionary_strings_and_plain_strings_are_the_same_type(sqlite_ws: Workspace) -> None:
    register_dataset(sqlite_ws, "customers")
    path = sqlite_ws.root / "data" / "customers.parquet"
    pq.write_table(customers_table(), path)  # strings come back dictionary-encoded
    register_dataset(sqlite_ws, "customers", path)
    diff = diff_datasets(sqlite_ws, "customers@1", "customers@2")
    assert diff.type_changes == []
    assert _by_column(diff)["region"].psi == pytest.approx(0.0, abs=1e-12)
    assert diff.identical is True


def test_new_missing_values_shift_a_column(sqlite_ws: Workspace) -> None:
    register_dataset(sqlite_ws, "customers")
    table = customers_table()
    region = pa.array(table.column("region").to_pylist(), mask=np.arange(400) % 2 == 0)
    write_csv(table.set_column(5, "region", region), sqlite_ws.root / "data" / "customers.csv")
    register_dataset(sqlite_ws, "customers")
    region_shift = _by_column(diff_datasets(sqlite_ws, "customers@1", "customers@2"))["region"]
    assert region_shift.missing_ratio == (0.0, 0.5)
    assert region_shift.flagged is True
    assert region_shift.new_categories == []


def test_numeric_column_that_goes_all_missing_has_a_finite_psi(sqlite_ws: Workspace) -> None:
    table = customers_table()
    pq.write_table(table, sqlite_ws.root / "a.parquet")
    gone = table.set_column(6, "charges", pa.nulls(400, pa.float64()))
    pq.write_table(gone, sqlite_ws.root / "b.parquet")
    register_dataset(sqlite_ws, "customers", sqlite_ws.root / "a.parquet")
    register_dataset(sqlite_ws, "customers", sqlite_ws.root / "b.parquet")
    diff = diff_datasets(sqlite_ws, "customers@1", "customers@2")
    charges = _by_column(diff)["charges"]
    assert charges.flagged is True
    assert charges.psi is not None and np.isfinite(charges.psi)
    json.dumps(diff.to_dict(), allow_nan=False)


def test_boolean_columns_are_compared_per_value(sqlite_ws: Workspace) -> None:
    a = pa.table({"churned": [0, 1] * 100, "active": [True] * 180 + [False] * 20})
    b = pa.table({"churned": [0, 1] * 100, "active": [True] * 100 + [False] * 100})
    pq.write_table(a, sqlite_ws.root / "a.parquet")
    pq.write_table(b, sqlite_ws.root / "b.parquet")
    register_dataset(sqlite_ws, "flags", sqlite_ws.root / "a.parquet")
    register_dataset(sqlite_ws, "flags", sqlite_ws.root / "b.parquet")
    active = _by_column(diff_datasets(sqlite_ws, "flags@1", "flags@2"))["active"]
    assert active.kind == "boolean"
    assert active.flagged is True
    assert active.mean == (0.9, 0.5)


def test_drift_threshold_comes_from_the_plan(project_dir: Path, sqlite_ws: Workspace) -> None:
    plan = project_dir / "mlplan.yaml"
    plan.write_text(
        plan.read_text().replace(
            "  business: []\n\n# ── Sign-offs",
            "  business: []\n  drift_threshold: 100\n\n# ── Sign-offs",
        )
    )
    register_dataset(sqlite_ws, "customers")
    write_csv(
        _shifted(customers_table(), np.random.default_rng(0)),
        project_dir / "data" / "customers.csv",
    )
    register_dataset(sqlite_ws, "customers")
    diff = diff_datasets(sqlite_ws, "customers@1", "customers@2")
    assert diff.threshold == 100
    assert not any(s.flagged for s in diff.shifts)


def test_without_the_data_only_the_schema_is_compared(sqlite_ws: Workspace) -> None:
    path = sqlite_ws.root / "data" / "customers.csv"
    register_dataset(sqlite_ws, "customers", snapshot=False)
    write_csv(_shifted(customers_table(), np.random.default_rng(0)), path)
    register_dataset(sqlite_ws, "customers", snapshot=False)
    path.unlink()
    diff = diff_datasets(sqlite_ws, "customers@1", "customers@2")
    assert diff.from_data is False
    assert [c["column"] for c in diff.added] == ["plan"]
    assert all(s.psi is None and not s.flagged for s in diff.shifts)


def test_diff_of_an_unknown_version_is_not_found(sqlite_ws: Workspace) -> None:
    register_dataset(sqlite_ws, "customers")
    with pytest.raises(DatasetNotFoundError, match=r"'customers@2' not found; known: customers@1"):
        diff_datasets(sqlite_ws, "customers@1", "customers@2")


# -- psi -------------------------------------------------------------------------------------


def test_psi_of_known_distributions() -> None:
    assert psi(np.array([50.0, 50.0]), np.array([50.0, 50.0])) == 0.0
    expected = 0.4 * np.log(0.5 / 0.9) * -1 + 0.4 * np.log(0.5 / 0.1)
    assert psi(np.array([90.0, 10.0]), np.array([50.0, 50.0])) == pytest.approx(expected)


def test_psi_of_an_empty_bin_is_large_but_finite() -> None:
    value = psi(np.array([100.0, 0.0]), np.array([50.0, 50.0]))
    assert np.isfinite(value)
    assert value > 5


_counts = st.lists(st.integers(0, 1_000), min_size=2, max_size=12)


@settings(max_examples=50, deadline=None)
@given(counts=_counts, scale=st.integers(1, 50))
def test_psi_is_zero_for_the_same_distribution(counts: list[int], scale: int) -> None:
    a = np.array(counts, float)
    assert psi(a, a) == 0.0
    assert psi(a, a * scale) == pytest.approx(0.0, abs=1e-9)  # proportions, not counts


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_psi_is_positive_and_symmetric_for_different_distributions(data: st.DataObject) -> None:
    a = np.array(data.draw(_counts), float)
    b = np.array(data.draw(st.lists(st.integers(0, 1_000), min_size=a.size, max_size=a.size)))
    value = psi(a, b)
    assert value >= 0.0
    assert value == pytest.approx(psi(b, a))
    pa_, pb = a / max(a.sum(), 1), b / max(b.sum(), 1)
    if not np.allclose(pa_, pb):
        assert value > 0.0
