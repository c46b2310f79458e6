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


def test_the_diff_reads_the_stored_profiles_not_the_data(sqlite_ws: Workspace) -> None:
    path = sqlite_ws.root / "data" / "customers.csv"
    register_dataset(sqlite_ws, "customers")
    write_csv(_shifted(customers_table(), np.random.default_rng(0)), path)
    register_dataset(sqlite_ws, "customers")
    with_data = diff_datasets(sqlite_ws, "customers@1", "customers@2")
    path.unlink()  # the source, and every snapshot in the store: nothing left to read
    for artifact in (sqlite_ws.root / ".mlplan" / "artifacts").rglob("*"):
        if artifact.is_file():
            artifact.unlink()
    diff = diff_datasets(sqlite_ws, "customers@1", "customers@2")
    assert diff == with_data
    assert [c["column"] for c in diff.added] == ["plan"]
    shifts = _by_column(diff)
    assert shifts["charges"].flagged and shifts["region"].flagged
    assert shifts["region"].new_categories == ["west"]


def _row_psi(a: np.ndarray, b: np.ndarray) -> float:
    """PSI from the rows, as the diff computed it before profiles: the first version's deciles,
    missing values (NaN) a bin of their own."""
    present_a, present_b = a[~np.isnan(a)], b[~np.isnan(b)]
    edges = np.unique(np.quantile(present_a, np.linspace(0.1, 0.9, 9)))

    def bins(values: np.ndarray, missing: int) -> np.ndarray:
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
        return np.append(counts, missing).astype(float)

    return psi(bins(present_a, int(np.isnan(a).sum())), bins(present_b, int(np.isnan(b).sum())))


@pytest.mark.parametrize(
    ("shift", "scale"),
    [(0.0, 1.0), (0.1, 1.0), (0.3, 1.0), (0.0, 1.5), (1.0, 1.0)],
    ids=["same", "small-shift", "shift", "wider", "large-shift"],
)
def test_psi_from_quantiles_is_close_to_the_psi_from_the_rows(
    sqlite_ws: Workspace, shift: float, scale: float
) -> None:
    rng = np.random.default_rng(3)
    a = rng.gamma(2.0, 6.0, 20_000).round(1)
    b = (rng.gamma(2.0, 6.0, 22_000) * scale + shift * 12).round(1)
    a[rng.random(a.size) < 0.04] = np.nan
    b[rng.random(b.size) < 0.04] = np.nan
    for values, name in ((a, "a"), (b, "b")):
        table = pa.table({"data_gb": values, "churned": np.arange(values.size) % 2})
        pq.write_table(table, sqlite_ws.root / f"{name}.parquet")
        register_dataset(sqlite_ws, "usage", sqlite_ws.root / f"{name}.parquet")
    column = _by_column(diff_datasets(sqlite_ws, "usage@1", "usage@2"))["data_gb"]
    expected = _row_psi(a, b)
    assert column.psi_from == "quantiles"
    assert column.psi == pytest.approx(expected, rel=0.2, abs=0.01)
    assert column.flagged is (expected > 0.2)


def test_categories_beyond_the_listed_top_values_are_compared(sqlite_ws: Workspace) -> None:
    # 30 cities: the profiles list the 10 most frequent, the others share what is left.
    cities = np.array([f"city-{i:02d}" for i in range(30)])
    weights = np.linspace(3, 1, 30) / np.linspace(3, 1, 30).sum()
    rng = np.random.default_rng(5)
    a = rng.choice(cities, 5_000, p=weights)
    b = rng.choice(cities, 5_000, p=weights[::-1])  # the rare cities are now the common ones
    for values, name in ((a, "a"), (b, "b")):
        table = pa.table({"city": values, "churned": np.arange(values.size) % 2})
        pq.write_table(table, sqlite_ws.root / f"{name}.parquet")
        register_dataset(sqlite_ws, "shops", sqlite_ws.root / f"{name}.parquet")
    city = _by_column(diff_datasets(sqlite_ws, "shops@1", "shops@2"))["city"]
    assert city.psi_from == "top values"
    assert city.flagged is True
    assert (city.new_categories, city.gone_categories) == ([], [])  # unknown, not absent


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
    # the empty share counts as 1e-4 (mlplan.core.PSI_FLOOR): 0.5 ln 2 + (0.5 - 1e-4) ln 5000
    assert value == pytest.approx(0.5 * np.log(2) + (0.5 - 1e-4) * np.log(5000))


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
