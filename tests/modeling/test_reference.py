"""The training reference kept in every package: its inputs on the training rows, its output
on the validation split, and a clear message for a package trained before it was kept."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from tests.conftest import register_split_train

from mlplan.data import get_split, load_split
from mlplan.errors import PackageError
from mlplan.modeling import (
    CategoricalReference,
    NumericReference,
    TrainingReference,
    get_model,
    training_reference,
)
from mlplan.modeling._reference import (
    CALIBRATION_ROWS,
    EXACT_VALUES,
    TOP_CATEGORIES,
    categorical_reference,
    numeric_reference,
    output_reference,
)
from mlplan.workspace import Workspace


@pytest.fixture
def trained(sqlite_ws: Workspace) -> Workspace:
    """Customers split and a logistic model trained on them."""
    return register_split_train(sqlite_ws)


def _training_rows(ws: Workspace) -> pa.Table:
    loaded = load_split(ws, get_split(ws, None))
    return loaded.table.filter(pa.array(np.asarray(loaded.codes) == 0))


def test_a_package_keeps_its_inputs_as_the_server_receives_them(trained: Workspace) -> None:
    model = get_model(trained, "logistic-1")
    assert "reference.json" in model.package  # inside the package: its hash covers it
    reference = training_reference(trained, "logistic-1")
    train = _training_rows(trained)
    assert reference.rows == train.num_rows and reference.split == model.split
    assert set(reference.inputs) == {"gender", "age", "region", "charges"}

    charges = reference.inputs["charges"]
    assert isinstance(charges, NumericReference)
    values = pc.cast(train.column("charges"), pa.float64()).to_numpy(zero_copy_only=False)
    present = values[~np.isnan(values)]
    assert (charges.rows, charges.missing) == (train.num_rows, int(np.isnan(values).sum()))
    assert (charges.min, charges.max) == (present.min(), present.max())
    assert charges.mean == pytest.approx(present.mean())
    assert charges.std == pytest.approx(present.std(ddof=1))
    assert sum(charges.bin_counts) == len(present) and len(charges.bin_counts) == 10
    # few distinct values: kept exactly, so a KS test against them is the exact one
    assert charges.quantiles == () and sum(charges.counts) == len(present)

    region = reference.inputs["region"]
    assert isinstance(region, CategoricalReference)
    counted = pc.value_counts(train.column("region")).to_pylist()
    assert region.categories == {c["values"]: c["counts"] for c in counted}
    assert (region.missing, region.other_rows, region.other_categories) == (0, 0, 0)
    assert reference.inputs["gender"].missing == train.column("gender").null_count


def test_a_package_keeps_its_output_on_the_validation_split(trained: Workspace) -> None:
    model = get_model(trained, "logistic-1")
    output = training_reference(trained, model).output
    assert output is not None and output.split == "valid"
    assert output.rows == model.metrics["valid"]["rows"]
    assert output.classes == ("0", "1") and sum(output.predicted.values()) == output.rows
    assert set(output.scores) == {"0", "1"}
    assert all(sum(s.bin_counts) == output.rows for s in output.scores.values())
    # the scores and labels a calibration is fitted on: the package's own, exactly (float32)
    assert output.validation_scores is not None and output.validation_labels is not None
    assert output.validation_scores.shape == (output.rows, 2)
    assert set(output.validation_labels) <= {"0", "1"}
    assert np.allclose(output.validation_scores.sum(axis=1), 1, atol=1e-6)


def test_a_package_trained_before_the_reference_says_to_train_again(trained: Workspace) -> None:
    model = get_model(trained, "logistic-1")
    older = dataclasses.replace(
        model, package={k: v for k, v in model.package.items() if k != "reference.json"}
    )
    with pytest.raises(
        PackageError,
        match=r"logistic-1@1 has no training reference \(reference.json\).*"
        r"Train it again \(mlplan train --family logistic\)",
    ):
        training_reference(trained, older)


def test_a_damaged_reference_is_refused(trained: Workspace) -> None:
    model = get_model(trained, "logistic-1")
    path = trained.store.artifacts.path(model.package["reference.json"])
    path.chmod(0o644)
    path.write_text(json.dumps({"format": 99}))
    with pytest.raises(PackageError, match=r"reference\.json of logistic-1@1 is corrupt"):
        training_reference(trained, model)
    with pytest.raises(PackageError, match=r"reference\.json has format 99; this mlplan reads"):
        TrainingReference.from_json(path.read_text())


def test_a_new_threshold_version_keeps_the_reference(trained: Workspace) -> None:
    from mlplan.modeling import draft_version

    model = get_model(trained, "logistic-1")
    draft = draft_version(trained, model, metadata={"threshold": 0.3})
    assert draft.package["reference.json"] == model.package["reference.json"]


# -- profiles ----------------------------------------------------------------------------------


def test_many_distinct_numbers_keep_quantiles_within_the_stated_rank_error(
    rng: np.random.Generator,
) -> None:
    values = rng.lognormal(3, 1, 200_000)
    values[rng.random(values.size) < 0.02] = np.nan
    reference = numeric_reference("income", pa.chunked_array([values]))
    back = NumericReference.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert back == reference and len(back.quantiles) == 257 and back.values == ()
    points, weights = back.distribution()
    present = np.sort(values[~np.isnan(values)])
    assert weights.sum() == len(present) == back.present
    assert (points[0], points[-1]) == (present[0], present[-1])
    # the CDF the quantiles give, against the rows', everywhere between and at the points
    at = np.sort(np.r_[points, rng.choice(present, 5_000)])
    cdf = np.r_[0.0, np.cumsum(weights)][np.searchsorted(points, at, side="right")] / len(present)
    exact = np.searchsorted(present, at, side="right") / len(present)
    assert np.max(np.abs(cdf - exact)) <= back.rank_error <= 1 / 255
    assert len(json.dumps(back.to_dict())) < 3_500  # compact: 3 KB whatever the rows
    # the bins are cut at the exact deciles of the training rows: equal shares
    assert np.all(np.abs(np.asarray(back.bin_counts) - len(present) / 10) <= 1)
    # deterministic: the same rows give the same reference, byte for byte
    assert numeric_reference("income", pa.chunked_array([values])).to_dict() == back.to_dict()


def test_few_distinct_numbers_are_kept_exactly_and_infinity_apart() -> None:
    values = np.array([1.0, 2.0, 2.0, np.inf, np.nan, 3.0] * 10)
    reference = numeric_reference("n", pa.chunked_array([values]))
    assert (reference.values, reference.counts) == ((1.0, 2.0, 3.0), (10, 20, 10))
    assert (reference.missing, reference.infinite, reference.present) == (10, 10, 40)
    json.dumps(reference.to_dict(), allow_nan=False)  # no infinity reaches the JSON
    assert len(np.unique(np.arange(EXACT_VALUES + 1))) > EXACT_VALUES


def test_an_all_missing_number_has_no_distribution() -> None:
    reference = numeric_reference("n", pa.chunked_array([pa.array([None, None], pa.float64())]))
    assert (reference.rows, reference.missing, reference.min, reference.bin_counts) == (
        2,
        2,
        None,
        (0,),
    )


def test_categories_past_the_top_are_summed_and_said_so(rng: np.random.Generator) -> None:
    names = [f"city-{i:03d}" for i in rng.zipf(1.3, 50_000) % 400]
    column = pa.chunked_array([pa.array(names + [None] * 7)])
    reference = categorical_reference("city", column)
    assert len(reference.categories) == TOP_CATEGORIES
    assert sum(reference.categories.values()) + reference.other_rows == 50_000
    assert reference.other_categories == len(set(names)) - TOP_CATEGORIES
    assert reference.missing == 7
    top = min(reference.categories.values())
    assert all(names.count(n) <= top for n in set(names) - set(reference.categories))


def test_a_redacted_column_keeps_no_values() -> None:
    column = pa.chunked_array([["ann@x.org", "bo@y.org", "ann@x.org", None]])
    reference = categorical_reference("email", column, redacted=True)
    assert reference.categories == {} and reference.redacted
    assert (reference.other_rows, reference.other_categories, reference.missing) == (3, 2, 1)
    assert "ann" not in json.dumps(reference.to_dict())


def test_the_calibration_sample_is_capped_and_seeded(rng: np.random.Generator) -> None:
    rows = CALIBRATION_ROWS + 5_000
    p = rng.uniform(size=rows)
    proba = np.column_stack([1 - p, p]).astype(np.float32)
    labels = np.where(rng.uniform(size=rows) < p, "yes", "no")
    predicted = np.where(p > 0.5, "yes", "no")
    output = output_reference("valid", "classification", ["no", "yes"], predicted, proba, labels)
    assert output.validation_rows == rows
    assert output.validation_scores is not None and len(output.validation_scores) == 20_000
    back = type(output).from_dict(json.loads(json.dumps(output.to_dict())))
    assert np.array_equal(back.validation_scores, output.validation_scores)
    assert back.validation_labels is not None and output.validation_labels is not None
    assert list(back.validation_labels) == list(output.validation_labels)
    assert back.predicted == {"no": int((p <= 0.5).sum()), "yes": int((p > 0.5).sum())}


def test_a_regressor_keeps_its_predicted_values(rng: np.random.Generator) -> None:
    predicted = rng.normal(60, 15, 3_000)
    output = output_reference("valid", "regression", [], predicted, None, predicted)
    back = type(output).from_dict(json.loads(json.dumps(output.to_dict())))
    assert back.kind == "regression" and back.values is not None and back.scores == {}
    assert back.values.rows == 3_000 and len(back.values.quantiles) == 257
    assert back.values.mean == pytest.approx(predicted.mean())
