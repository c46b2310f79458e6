"""The feature screen before training: leaks refused with the figure, constant, all-missing and
duplicate columns left out with a note — on data shaped like the cases that went wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from tests.conftest import edit_plan, ok, write_csv

from mlplan.data import register_dataset, split_dataset
from mlplan.errors import DataError
from mlplan.modeling import (
    SCREEN_SAMPLE_ROWS,
    FeatureSet,
    get_model,
    list_models,
    screen_features,
    train_model,
)
from mlplan.plan import render_plan
from mlplan.workspace import Workspace


def houses(rows: int = 600, seed: int = 5) -> pa.Table:
    """House sales: the price, what a buyer sees (size, rooms, district), the price's logarithm
    left in by an export, a constant country, an empty column, a copy and a recoding."""
    rng = np.random.default_rng(seed)
    log_price = rng.normal(12, 0.5, rows)
    size = np.round(np.exp(0.6 * (log_price - 12) + rng.normal(4.5, 0.35, rows)), 1)
    district = rng.choice(["north", "south", "east", "west"], rows)
    size_known = pa.array(size, mask=rng.random(rows) < 0.05)
    return pa.table(
        {
            "size": size_known,
            "rooms": np.clip(np.round(size / 25 + rng.normal(0, 1, rows)), 1, 9).astype(int),
            "district": district,
            "log_price": np.round(log_price, 6),
            "country": ["nl"] * rows,
            "note": pa.nulls(rows, pa.string()),
            "size_m2": size_known,
            "district_code": np.searchsorted(["east", "north", "south", "west"], district) + 1,
            "price": np.round(np.exp(log_price), 0),
        }
    )


@pytest.fixture
def houses_ws(tmp_path: Path) -> Any:
    """A regression project on house prices, registered and split."""
    write_csv(houses(), tmp_path / "data" / "houses.csv")
    plan = render_plan("houses", task="regression", target="price")
    plan = plan.replace("  main:\n    path: data/main.csv", "  houses:\n    path: data/houses.csv")
    (tmp_path / "mlplan.yaml").write_text(plan)
    ws = Workspace(tmp_path)
    register_dataset(ws, "houses")
    split_dataset(ws, "houses", seed=1)
    yield ws
    ws.close()


def test_a_feature_derived_from_the_target_is_refused_with_its_figure(houses_ws: Workspace) -> None:
    with pytest.raises(
        DataError,
        match=r"feature 'log_price' alone explains (0\.99|1\.00) of target 'price' \(R² of a "
        r"binned one-feature fit to the target's ranks, on \d+ training rows\): it is likely "
        r"derived from the target\. Remove it \(modeling.exclude: \[log_price\]\) or, if known "
        r"when predicting, list it under modeling.allowed_features in mlplan.yaml",
    ):
        train_model(houses_ws, baseline=True)
    assert list_models(houses_ws) == []


def test_constant_missing_and_duplicate_columns_are_left_out_with_a_note(
    houses_ws: Workspace,
) -> None:
    edit_plan(houses_ws, "  exclude: []", "  exclude: [log_price]")
    model = train_model(houses_ws, baseline=True)
    features = model.features
    assert features["numeric"] == ["size", "rooms"]
    assert features["categorical"] == ["district"]
    left_out = {
        "country": "constant in the training rows (always nl)",
        "size_m2": "a copy of 'size' in the training rows",
        "district_code": "a one-to-one recoding of 'district' in the training rows",
    }
    assert features["screen"]["left_out"] == left_out
    assert left_out.items() <= features["excluded"].items()
    assert features["excluded"]["log_price"] == "modeling.exclude"
    assert features["excluded"]["note"] == "all missing: no value in the data"
    assert set(features["screen"]["explains"]) == {"size", "rooms", "district"}
    assert 0.3 < features["screen"]["explains"]["size"] < 0.9
    assert get_model(houses_ws, model.name).features == features


def test_a_feature_the_plan_allows_is_kept_and_recorded(houses_ws: Workspace) -> None:
    edit_plan(houses_ws, "  allowed_features: []", "  allowed_features: [log_price]")
    model = train_model(houses_ws, baseline=True)
    assert "log_price" in model.features["numeric"]
    assert model.features["screen"]["allowed"]["log_price"] >= 0.98
    assert model.metrics["test"]["r2"] > 0.8


def test_an_allowed_feature_that_is_no_column_is_refused(houses_ws: Workspace) -> None:
    edit_plan(houses_ws, "  allowed_features: []", "  allowed_features: [log_prize]")
    with pytest.raises(
        DataError,
        match=r"modeling.allowed_features in mlplan.yaml names 'log_prize', which is not a "
        r"column of houses@1",
    ):
        train_model(houses_ws, baseline=True)


def test_a_field_filled_after_the_outcome_is_refused_for_a_classifier(
    split_ws: Workspace,
) -> None:
    """Days to cancellation, known only for the customers who churned."""
    ws = split_ws
    data = ws.root / "data" / "customers.csv"
    customers = pcsv.read_csv(data)
    churned = customers.column("churned").to_numpy()
    days = np.where(churned == 1, np.arange(len(churned)) % 30 + 1, np.nan)
    write_csv(customers.append_column("days_to_cancel", pa.array(days)), data)
    register_dataset(ws, "customers")
    split_dataset(ws, "customers", stratify="churned", seed=1)
    with pytest.raises(
        DataError,
        match=r"feature 'days_to_cancel' alone explains (0\.9\d|1\.00) of target 'churned' "
        r"\(mutual information with the target over the target's entropy, on \d+ training "
        r"rows\)",
    ):
        train_model(ws, baseline=True)


# -- the screen alone --------------------------------------------------------------------------


def _screen(table: pa.Table, y: np.ndarray, kind: Any, **kwargs: Any) -> Any:
    numeric = [c for c in table.column_names if not pa.types.is_string(table.column(c).type)]
    categorical = [c for c in table.column_names if c not in numeric]
    return screen_features(
        table, FeatureSet(numeric, categorical, {}), y, kind=kind, target="y", **kwargs
    )


def test_features_of_many_values_on_few_rows_are_not_taken_for_leaks() -> None:
    """An id-like string, a continuous noise column and a strong real feature, 300 rows."""
    rng = np.random.default_rng(1)
    rows = 300
    y = rng.normal(size=rows)
    table = pa.table(
        {
            "code": [f"A{i:05d}" for i in rng.permutation(rows)],
            "noise": rng.normal(size=rows),
            "signal": y + rng.normal(0, 0.3, rows),
        }
    )
    found = _screen(table, y, "regression")
    assert found.leaky == {} and found.left_out == {}
    assert found.explains["code"] == 0 and found.explains["noise"] < 0.1
    assert 0.7 < found.explains["signal"] < 0.98
    labels = np.where(y > 0, "yes", "no").astype(object)
    found = _screen(table, labels, "classification")
    assert found.leaky == {} and found.explains["code"] == 0 and found.explains["noise"] < 0.1


def test_a_heavy_tailed_target_does_not_hide_its_logarithm() -> None:
    rng = np.random.default_rng(2)
    y = rng.lognormal(0, 2, 5_000)
    table = pa.table({"log_y": np.log(y), "half": np.where(y > np.median(y), "high", "low")})
    found = _screen(table, y, "regression")
    assert found.leaky == {"log_y": found.explains["log_y"]} and found.explains["log_y"] > 0.999
    assert 0.7 < found.explains["half"] < 0.8  # one bit of the ranks explains 3/4 of them


def test_missing_values_are_a_bin_of_their_own() -> None:
    """A value recorded only for the positives leaks through its missingness alone."""
    rng = np.random.default_rng(3)
    labels = rng.choice(np.array(["stay", "leave"], dtype=object), 2_000, p=[0.8, 0.2])
    flag = pa.array(np.where(labels == "leave", "sent", None), pa.string())
    found = _screen(pa.table({"letter": flag}), labels, "classification")
    assert found.left_out == {}  # one value and missing rows: a category still says something
    assert found.explains["letter"] > 0.99


def test_an_amount_paid_only_after_the_outcome_leaks_through_its_zeros() -> None:
    """Recovered after a default, 0 otherwise, 3 % positives: the zeros fill many quantile
    bins and must be a bin of their own, not share one with the smallest amounts."""
    rng = np.random.default_rng(4)
    labels = rng.choice(np.array(["no", "yes"], dtype=object), 2_100, p=[0.97, 0.03])
    recovered = np.where(labels == "yes", np.round(rng.gamma(2.0, 900, 2_100), 2), 0.0)
    found = _screen(pa.table({"recovered": recovered}), labels, "classification")
    assert found.leaky == {"recovered": 1.0}


def test_a_number_with_one_value_where_present_is_constant_once_imputed() -> None:
    table = pa.table({"fee": pa.array([5.0, None] * 200), "empty": pa.nulls(400, pa.float64())})
    found = _screen(table, np.arange(400.0), "regression")
    assert found.left_out == {
        "fee": "constant in the training rows (5 where not missing)",
        "empty": "all missing in the training rows",
    }


def test_on_many_rows_what_the_sample_suggests_is_confirmed_on_every_training_row() -> None:
    """A flag set on a single row, and a recoding broken on one row, both outside the sample,
    are not left out; a real copy is."""
    rows = SCREEN_SAMPLE_ROWS + 20_000
    rng = np.random.default_rng(4)
    y = rng.normal(size=rows)
    region = rng.choice(["a", "b", "c"], rows)
    code = (np.searchsorted(["a", "b", "c"], region) + 1).astype(float)
    flag = np.zeros(rows)
    found = _screen(
        pa.table({"flag": flag, "region": region, "code": code}), y, "regression", seed=0
    )
    assert found.screened == SCREEN_SAMPLE_ROWS and set(found.left_out) == {"flag", "code"}
    sampled = np.sort(np.random.default_rng(0).choice(rows, SCREEN_SAMPLE_ROWS, replace=False))
    outside = np.setdiff1d(np.arange(rows), sampled)[0]
    flag[outside], code[outside] = 1.0, 9.0
    found = _screen(
        pa.table({"flag": flag, "region": region, "code": code, "copy": region}),
        y,
        "regression",
        seed=0,
    )
    assert found.left_out == {"copy": "a copy of 'region' in the training rows"}


def test_train_says_what_it_left_out_and_refuses_a_leak_in_one_line(
    cli: Any, project_dir: Path
) -> None:
    data = project_dir / "data" / "customers.csv"
    customers = pcsv.read_csv(data)
    churned = customers.column("churned").to_numpy()
    customers = (
        customers.append_column("tier", pa.array(["basic"] * len(churned)))
        .append_column("area", customers.column("region"))
        .append_column("exit_survey", pa.array(np.where(churned == 1, "done", "none")))
    )
    write_csv(customers, data)
    ok(cli("data", "add", "customers"))
    ok(cli("data", "split", "customers", "--stratify", "churned", "--seed", "1"))
    refused = cli("train", "--baseline")
    assert refused.exit_code == 1
    assert refused.stderr.count("\n") == 1
    assert "feature 'exit_survey' alone explains 1.00 of target 'churned'" in refused.stderr
    assert "modeling.allowed_features in mlplan.yaml" in refused.stderr
    plan = project_dir / "mlplan.yaml"
    plan.write_text(
        plan.read_text().replace("  allowed_features: []", "  allowed_features: [exit_survey]")
    )
    trained = ok(cli("train", "--baseline")).stdout
    assert "left out tier: constant in the training rows (always basic)" in trained
    assert "left out area: a copy of 'region' in the training rows" in trained
    kept = (
        "kept exit_survey, which alone explains 1.00 of target churned: "
        "modeling.allowed_features lists it"
    )
    assert kept in trained
    shown = ok(cli("models", "show", "logistic-1")).stdout
    assert "  left out tier: constant in the training rows (always basic)" in shown
    assert f"  {kept}" in shown


def test_a_copy_is_found_among_columns_of_unique_values() -> None:
    """Unique values map one-to-one onto anything: only equal values make a copy there."""
    rng = np.random.default_rng(6)
    rows = 500
    invoice = [f"I{i}" for i in rng.permutation(rows)]
    amount = rng.normal(size=rows)
    table = pa.table(
        {
            "order_code": [f"O{i}" for i in rng.permutation(rows)],
            "invoice": invoice,
            "invoice_again": invoice,
            "amount": amount,
            "amount_eur": amount,
        }
    )
    found = _screen(table, rng.normal(size=rows), "regression")
    assert found.left_out == {
        "invoice_again": "a copy of 'invoice' in the training rows",
        "amount_eur": "a copy of 'amount' in the training rows",
    }
