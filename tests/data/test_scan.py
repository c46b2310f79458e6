"""scan_data: what a data file suggests for the plan: roles, target and task."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tests.conftest import customers_table, write_csv

from mlplan.data import pii_reason, scan_data
from mlplan.errors import DataError


@pytest.fixture
def scanned(tmp_path: Path, rng: np.random.Generator) -> dict[str, tuple[str, str]]:
    n = 80
    table = pa.table(
        {
            "user_id": np.arange(n),
            "order_id": rng.integers(0, 10, n),  # an id by name, but repeated: a feature
            "email": [f"u{i}@shop.org" for i in range(n)],
            "contact": [f"c{i}@mail.example.net" for i in range(n)],
            "mobile_no": [f"+49 30 {1000000 + i}" for i in range(n)],
            "gender": rng.choice(["f", "m", "x"], n),
            "age": rng.integers(18, 90, n),
            "signup_date": [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(n)],
            "created_at": [f"yesterday {i}" for i in range(n)],  # text, but named as a time
            "lifetime": rng.normal(10, 2, n),  # numeric: a 'time' in the name is not enough
            "plan": rng.choice(["basic", "pro"], n),
            "churned": rng.integers(0, 2, n),
        }
    )
    suggestions = scan_data(write_csv(table, tmp_path / "users.csv"))
    return {c.name: (c.role, c.reason) for c in suggestions.columns}


@pytest.mark.parametrize(
    ("column", "role", "reason"),
    [
        ("user_id", "id", "unique per row"),
        ("order_id", "feature", ""),
        ("email", "pii", "name suggests personal data"),
        ("contact", "pii", "values look like e-mail addresses"),
        ("mobile_no", "pii", "values look like phone numbers"),
        ("gender", "sensitive", "name suggests a protected attribute"),
        ("age", "sensitive", "name suggests a protected attribute"),
        ("signup_date", "time", "dates or times"),
        ("created_at", "time", "dates or times"),
        ("lifetime", "feature", ""),
        ("plan", "feature", ""),
        ("churned", "target", "chosen target"),
    ],
    ids=lambda v: str(v),
)
def test_scan_suggests_a_role_per_column(
    scanned: dict[str, tuple[str, str]], column: str, role: str, reason: str
) -> None:
    assert scanned[column] == (role, reason)


@pytest.mark.parametrize(
    ("name", "sample", "reason"),
    [
        ("Email", [], "name suggests personal data"),
        ("phone_number", [], "name suggests personal data"),
        ("date_of_birth", [], "name suggests personal data"),
        (
            "notes",
            ["a@b.org", "c@d.com", "e@f.net", "g@h.io", "oops"],
            "values look like e-mail addresses",
        ),
        ("notes", ["a@b.org", "plain", "text", "here", "x"], None),  # 1 in 5: not enough
        ("emailed", [], None),  # names are matched whole
        ("region", ["north", "south"], None),
    ],
    ids=[
        "name-email",
        "name-phone",
        "name-dob",
        "values-80pct",
        "values-20pct",
        "whole-name",
        "plain",
    ],
)
def test_pii_reason(name: str, sample: list[str], reason: str | None) -> None:
    assert pii_reason(name, sample) == reason


def test_ip_addresses_are_reported_as_ip_addresses() -> None:
    sample = ["10.0.0.1", "192.168.1.20", "8.8.8.8", "172.16.254.3"]
    assert pii_reason("source", sample) == "values look like IP addresses"


def test_dotted_dates_are_not_phone_numbers() -> None:
    assert pii_reason("closed", ["31.12.2024", "01.02.2025", "15.06.2025"]) is None


def test_scan_of_the_customer_file(tmp_path: Path) -> None:
    suggestions = scan_data(write_csv(customers_table(), tmp_path / "customers.csv"))
    assert (suggestions.dataset, suggestions.format, suggestions.rows) == ("customers", "csv", 400)
    assert suggestions.names("pii") == ["name", "email"]
    assert suggestions.names("sensitive") == ["gender", "age"]
    assert suggestions.names("id") == ["customer_id"]
    assert suggestions.target_candidates[0] == "churned"
    assert suggestions.task == "binary"
    assert sorted(suggestions.classes) == ["0", "1"]


@pytest.mark.parametrize(
    ("target_values", "task", "classes"),
    [
        (["yes", "no"] * 30, "binary", ["no", "yes"]),
        (["a", "b", "c", "d"] * 15, "multiclass", ["a", "b", "c", "d"]),
        (list(range(5)) * 12, "multiclass", ["0", "1", "2", "3", "4"]),
        ([float(i) * 1.5 for i in range(60)], "regression", []),
    ],
    ids=["binary", "multiclass-strings", "multiclass-ints", "regression"],
)
def test_task_is_guessed_from_the_target(
    tmp_path: Path, target_values: list[object], task: str, classes: list[str]
) -> None:
    table = pa.table({"x": np.arange(60) % 7, "label": target_values})
    suggestions = scan_data(write_csv(table, tmp_path / "t.csv"))
    assert suggestions.target_candidates[0] == "label"
    assert suggestions.task == task
    assert sorted(suggestions.classes) == classes


def test_named_targets_come_before_low_cardinality_columns(tmp_path: Path) -> None:
    table = pa.table(
        {"color": ["r", "g"] * 30, "tier": ["a", "b", "c"] * 20, "price": np.linspace(1, 100, 60)}
    )
    suggestions = scan_data(write_csv(table, tmp_path / "t.csv"))
    assert suggestions.target_candidates == ["price", "tier", "color"]
    assert suggestions.task == "regression"


def test_a_given_target_comes_first(tmp_path: Path) -> None:
    suggestions = scan_data(write_csv(customers_table(), tmp_path / "c.csv"), target="region")
    assert suggestions.target_candidates[0] == "region"
    assert suggestions.target_candidates.count("region") == 1
    assert suggestions.task == "multiclass"
    assert dict((c.name, c.role) for c in suggestions.columns)["region"] == "target"


def test_no_candidate_means_no_task(tmp_path: Path) -> None:
    table = pa.table({"id": np.arange(30), "constant": ["x"] * 30})
    suggestions = scan_data(write_csv(table, tmp_path / "t.csv"))
    assert (suggestions.target_candidates, suggestions.task, suggestions.classes) == ([], None, [])


@pytest.mark.parametrize(
    ("filename", "dataset"),
    [
        ("customers.csv", "customers"),
        ("2024-orders.csv", "orders"),
        ("my data.csv", "my_data"),
        ("123.csv", "data"),
    ],
    ids=str,
)
def test_dataset_name_comes_from_the_file_name(tmp_path: Path, filename: str, dataset: str) -> None:
    path = write_csv(pa.table({"x": [1, 2], "y": [0, 1]}), tmp_path / filename)
    assert scan_data(path).dataset == dataset
    assert scan_data(path, dataset="given").dataset == "given"


def test_scan_of_a_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: no such file or folder"):
        scan_data(tmp_path / "nope.csv")


def test_a_numeric_sensitive_attribute_is_sliced_in_bands_not_per_value(tmp_path: Path) -> None:
    from mlplan.data import create_from_data

    rng = np.random.default_rng(5)
    rows = 400
    path = tmp_path / "patients.csv"
    write_csv(
        pa.table(
            {
                "patient_id": np.arange(rows),
                "age": rng.integers(19, 90, rows),  # 71 distinct values
                "sex": rng.choice(["F", "M"], rows),
                "ethnicity": rng.choice(["a", "b", "c"], rows),
                "readmitted": rng.integers(0, 2, rows),
            }
        ),
        path,
    )
    age = next(c for c in scan_data(path).columns if c.name == "age")
    assert (age.role, age.bands) == ("sensitive", (18.0, 25.0, 35.0, 45.0, 55.0, 65.0))
    ws = create_from_data(tmp_path / "project", "readmission", path, target="readmitted")
    slices = {s.name: s for s in ws.plan.slices}
    assert slices["age"].bins == [18, 25, 35, 45, 55, 65] and slices["age"].column == "age"
    assert slices["sex"].columns == ["sex"]
    assert slices["sex_x_ethnicity"].columns == ["sex", "ethnicity"]  # not the banded age
