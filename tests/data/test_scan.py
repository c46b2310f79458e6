"""scan_data: what a data file suggests for the plan: roles, target and task."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tests.conftest import arrests_table, customers_table, write_csv

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
        ("gender", "sensitive", "name suggests sex or gender"),
        ("age", "sensitive", "name suggests age"),
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
    # Two values make a likelier outcome than three.
    assert suggestions.target_candidates == ["price", "color", "tier"]
    assert suggestions.task == "regression"
    assert suggestions.target is not None and suggestions.target.sure
    assert [c.reason for c in suggestions.ranking] == [
        "name suggests the outcome; numeric, 60 values; the last column",
        "2 values",
        "3 values",
    ]


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


def test_a_target_no_name_points_to_is_not_guessed(tmp_path: Path) -> None:
    from mlplan.data import create_from_data
    from mlplan.errors import ParameterError

    path = write_csv(arrests_table(), tmp_path / "arrests.csv")
    suggestions = scan_data(path)
    assert suggestions.target is not None and not suggestions.target.sure
    ranking = {c.name: c.reason for c in suggestions.ranking}
    assert ranking["employed"] == "2 values"
    assert ranking["checks"] == "7 values; the last column"
    assert ranking["sex"] == "2 values; a sensitive attribute, rarely the outcome"
    assert suggestions.target_candidates[-3:] == ["citizen", "sex", "colour"]
    with pytest.raises(
        ParameterError,
        match=r"arrests\.csv is clearly the target \(no name says so\); candidates, likeliest "
        r"first: employed \(2 values\); released \(2 values\); .*; give it with 'target' COLUMN",
    ):
        create_from_data(tmp_path / "project", "arrests", path)
    assert not (tmp_path / "project" / "mlplan.yaml").exists()
    given = create_from_data(tmp_path / "project", "arrests", path, target="released")
    assert given.plan.target == "released"


def test_one_column_named_like_an_outcome_is_used_and_says_why(tmp_path: Path) -> None:
    table = arrests_table().rename_columns(
        ["survived", "colour", "year", "age", "sex", "employed", "citizen", "checks"]
    )
    suggestions = scan_data(write_csv(table, tmp_path / "t.csv"))
    assert suggestions.target is not None
    assert (suggestions.target.value, suggestions.target.sure, suggestions.target.reason) == (
        "survived",
        True,
        "name suggests the outcome; 2 values",
    )


def test_two_columns_named_like_an_outcome_leave_the_choice_to_people(tmp_path: Path) -> None:
    prices = np.arange(40) * 1.5 + 0.25  # not a gap-free run of integers (a row number)
    table = pa.table({"x": np.arange(40) % 3, "price": prices, "sales": prices * 2})
    suggestions = scan_data(write_csv(table, tmp_path / "t.csv"))
    assert suggestions.target_candidates[:2] == ["sales", "price"]
    assert suggestions.target is not None and not suggestions.target.sure


@pytest.mark.parametrize(
    ("shares", "positive", "sure", "reason"),
    [
        ({"0": 0.85, "1": 0.15}, "1", True, "the minority class (15.0% of the rows), named "
         "like a positive"),
        ({"stayed": 0.8, "left": 0.2}, "left", True, "the minority class (20.0% of the rows)"),
        ({"Yes": 0.83, "No": 0.17}, "No", False, "the minority class (17.0% of the rows), "
         "taken as the event; 'Yes' is named like a positive but holds 83.0%"),
        ({"no": 0.52, "yes": 0.48}, "yes", True, "named like a positive; the classes are "
         "balanced (48.0% / 52.0%)"),
        ({"a": 0.45, "b": 0.55}, "a", False, "the classes are balanced (45.0% / 55.0%) and "
         "neither is named like a positive; the smaller is taken"),
    ],
    ids=["ones-minority", "unnamed-minority", "yes-majority", "balanced-named", "balanced"],
)  # fmt: skip
def test_the_positive_class_is_the_minority_and_unsure_when_names_disagree(
    tmp_path: Path, shares: dict[str, float], positive: str, sure: bool, reason: str
) -> None:
    rows = 200
    values = [v for v, share in shares.items() for _ in range(round(share * rows))]
    table = pa.table({"x": np.arange(rows) % 5, "label": values})
    choice = scan_data(write_csv(table, tmp_path / "t.csv")).positive
    assert choice is not None
    assert (choice.value, choice.sure, choice.reason) == (positive, sure, reason)


@pytest.mark.parametrize(
    ("name", "values", "reason"),
    [
        ("gndr", [], "name suggests sex or gender"),
        ("Sex", [], "name suggests sex or gender"),
        ("applicant_sex", [], "name suggests sex or gender"),
        ("is_female", [], "name suggests sex or gender"),
        ("black", [0, 1], "name suggests race or ethnicity"),
        ("is_hispanic", [], "name suggests race or ethnicity"),
        ("race_ethnicity", [], "name suggests race or ethnicity"),
        ("ethnicGroup", [], "name suggests race or ethnicity"),
        ("nationality", [], "name suggests nationality or origin"),
        ("citizen", ["Yes", "No"], "name suggests nationality or origin"),
        ("religion", [], "name suggests religion"),
        ("marital", [], "name suggests marital status"),
        ("marital_status", [], "name suggests marital status"),
        ("age_group", [], "name suggests age"),
        ("patient_age", [], "name suggests age"),
        ("disab", [], "name suggests disability"),
        ("disability_flag", [], "name suggests disability"),
        ("race_sex", [], "name suggests race or ethnicity, sex or gender"),
        ("hisp", [0, 1], "name suggests race or ethnicity"),
        ("eth_grp", [], "name suggests race or ethnicity"),
        ("dob_year", [], "name suggests age (a date or year of birth)"),
        ("year_of_birth", [], "name suggests age (a date or year of birth)"),
        ("eth_price", [], None),
        ("birthday_gift", [], None),
        ("colour", ["Black", "White"], "values are race or ethnicity categories (Black, White)"),
        ("who", ["M", "F", "M"], "values are sex or gender categories (F, M)"),
        ("person", ["male", "female", "unknown"], "values are sex or gender categories "
         "(female, male, unknown)"),
        ("grp", ["White", "Black", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other"],
         "values are race or ethnicity categories (Amer-Indian-Eskimo, Asian-Pac-Islander, "
         "Black, Other, ...)"),
        ("colour", ["red", "green", "black"], None),
        ("size", ["S", "M", "L"], None),
        ("account_age", [], None),
        ("vehicle_age", [], None),
        ("usage", [], None),
        ("message", [], None),
        ("region", ["north", "south"], None),
    ],
    ids=lambda v: str(v),
)  # fmt: skip
def test_sensitive_attributes_by_name_and_values(
    name: str, values: list[object], reason: str | None
) -> None:
    from mlplan.data import sensitive_reason

    assert sensitive_reason(name, values) == reason


def test_the_scan_says_why_each_sensitive_attribute_was_flagged(tmp_path: Path) -> None:
    from mlplan.data import create_from_data

    path = write_csv(arrests_table(), tmp_path / "arrests.csv")
    roles = {c.name: (c.role, c.reason) for c in scan_data(path).columns}
    assert roles["colour"] == (
        "sensitive",
        "values are race or ethnicity categories (Black, White)",
    )
    assert roles["sex"] == ("sensitive", "name suggests sex or gender")
    assert roles["citizen"] == ("sensitive", "name suggests nationality or origin")
    text = create_from_data(tmp_path / "p", "arrests", path, target="released").plan_path
    line = next(x for x in text.read_text().splitlines() if "sensitive_attributes:" in x)
    assert line == (
        '    sensitive_attributes: ["colour", "age", "sex", "citizen"]  # found by the scan '
        "(colour: values are race or ethnicity categories (Black, White); age: name suggests "
        "age; sex: name suggests sex or gender; citizen: name suggests nationality or "
        "origin); check"
    )


@pytest.mark.parametrize("column", ["age", "patient_age", "AgeYears", "age_at_admission"])
def test_an_age_by_any_of_its_names_gets_the_standard_bands(tmp_path: Path, column: str) -> None:
    rng = np.random.default_rng(2)
    table = pa.table({column: rng.integers(19, 90, 300), "readmitted": rng.integers(0, 2, 300)})
    found = next(c for c in scan_data(write_csv(table, tmp_path / "t.csv")).columns)
    assert (found.role, found.reason) == ("sensitive", "name suggests age")
    assert found.bands == (18.0, 25.0, 35.0, 45.0, 55.0, 65.0)


def test_a_semicolon_file_is_scanned_by_its_columns_and_the_plan_says_so(tmp_path: Path) -> None:
    from mlplan.data import create_from_data, register_dataset

    path = tmp_path / "prices.csv"
    # Before: one column 'item;price;sold' and "did you mean 'item;price;sold'?".
    path.write_text("item;price;sold\n" + "".join(f"i{k};{k},5;{k % 2}\n" for k in range(40)))
    scan = scan_data(path, target="sold")
    assert ([c.name for c in scan.columns], scan.delimiter) == (["item", "price", "sold"], ";")
    ws = create_from_data(tmp_path / "project", "prices", path, target="sold")
    assert ws.plan.datasets["prices"].delimiter == ";"
    assert '    delimiter: ";"  # between the fields\n' in ws.plan_path.read_text()
    assert register_dataset(ws, "prices").version.column_names == ["item", "price", "sold"]


def test_decimal_commas_are_numbers_to_the_scan_the_plan_and_data_add(tmp_path: Path) -> None:
    from mlplan.data import create_from_data, register_dataset

    # A European export: ';' between fields, decimal commas. Before, both measurements were
    # categories of hundreds of values each.
    rng = np.random.default_rng(7)
    a, b = rng.normal(5, 2, 300).round(2), rng.normal(1, 1, 300).round(3)
    path = tmp_path / "euro.csv"
    path.write_text(
        "messwert_a;messwert_b;ergebnis\n"
        + "".join(
            f"{x};{y};{'ja' if x + y > 6 else 'nein'}\n" for x, y in zip(a, b, strict=True)
        ).replace(".", ",")
    )
    scan = scan_data(path, target="ergebnis")
    assert scan.decimal == ","
    assert [c.type for c in scan.columns][:2] == ["numeric", "numeric"]
    ws = create_from_data(tmp_path / "project", "euro", path, target="ergebnis")
    assert ws.plan.datasets["euro"].decimal == ","
    assert '    decimal: ","  # 4,36 is 4.36\n' in ws.plan_path.read_text()
    info = register_dataset(ws, "euro").version
    assert info.decimal == ","
    assert info.profile["columns"]["messwert_a"]["kind"] == "numeric"


def test_two_delimiters_that_fit_alike_are_asked_for_and_the_answer_kept(tmp_path: Path) -> None:
    from mlplan.data import create_from_data, register_dataset

    path = tmp_path / "codes.csv"
    path.write_text("sold|code,note\n" + "".join(f"{k % 2}|{k},a\n" for k in range(40)))
    with pytest.raises(DataError, match=r"',' \(comma\) and '\|' \(pipe\) each split") as raised:
        scan_data(path)
    assert raised.value.params == ("delimiter",)
    ws = create_from_data(tmp_path / "project", "codes", path, target="sold", delimiter="pipe")
    assert ws.plan.datasets["codes"].delimiter == "|"
    assert register_dataset(ws, "codes").version.column_names == ["sold", "code,note"]


def test_an_outcome_named_in_two_words_is_a_candidate(tmp_path: Path) -> None:
    """House data: SalePrice was never suggested; only a few-valued Bedrooms was."""
    rng = np.random.default_rng(8)
    rows = 300
    area = rng.gamma(4, 400, rows).round(1)
    table = pa.table(
        {
            "LotArea": area,
            "Bedrooms": rng.integers(1, 6, rows),
            "SalePrice": (area * 90 + rng.normal(0, 20000, rows)).round(2),
        }
    )
    suggestions = scan_data(write_csv(table, tmp_path / "houses.csv"))
    assert suggestions.target_candidates[0] == "SalePrice"
    assert suggestions.target is not None and suggestions.target.sure
    assert suggestions.task == "regression"


def test_a_regression_plan_alerts_on_an_error_in_the_targets_units(tmp_path: Path) -> None:
    """The template alerted when MAE passed 1.0 on prices near 100,000: always."""
    from mlplan.data import create_from_data

    rng = np.random.default_rng(9)
    area = rng.gamma(4, 400, 300).round(1)
    price = (area * 90 + rng.normal(0, 20000, 300)).round(2)
    path = write_csv(pa.table({"LotArea": area, "SalePrice": price}), tmp_path / "h.csv")
    ws = create_from_data(tmp_path / "p", "houses", path)
    alert = ws.plan.monitoring.ml[0]
    assert alert.metric == "mae" and alert.op == ">"
    assert alert.threshold == pytest.approx(float(f"{np.std(price, ddof=1):.3g}"))
    ws.close()


@pytest.mark.parametrize("quote", ["", '""'], ids=["pandas", "R"])
def test_an_empty_header_row_number_is_never_the_plans_id_column(
    tmp_path: Path, quote: str
) -> None:
    from mlplan.data import create_from_data, split_dataset

    # pandas' to_csv() and R's write.csv() write the row number under an empty header.
    rng = np.random.default_rng(3)
    lines = [f"{quote},age,hours,income"] + [
        f"{i},{rng.integers(18, 90)},{rng.integers(1, 99)},{rng.choice(['>50K', '<=50K'])}"
        for i in range(300)
    ]
    path = tmp_path / "adult.csv"
    path.write_text("\n".join(lines) + "\n")
    ws = create_from_data(tmp_path / "project", "adult", path, target="income")
    assert ws.plan.datasets["adult"].id_column is None
    assert "    id_column: null\n" in ws.plan_path.read_text()
    from mlplan.data import register_dataset

    register_dataset(ws, "adult")
    assert split_dataset(ws, "adult").leakage["compared_columns"] == ["age", "hours"]
