"""Drift of a window against the training reference: the method chosen per feature and why,
each statistic equal to SciPy's on the same rows, the plan's method and threshold, outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from mlplan.errors import DataError
from mlplan.modeling import TrainingReference
from mlplan.modeling._reference import (
    categorical_reference,
    numeric_reference_of,
    output_reference,
)
from mlplan.monitoring import DriftReport, FeatureDrift, feature_drift, output_drift
from mlplan.plan import MonitoringSpec

stats = pytest.importorskip("scipy.stats")


def _reference(**columns: Any) -> TrainingReference:
    """A reference of training columns: numpy arrays are numbers, lists are categories."""
    inputs: dict[str, Any] = {}
    for name, values in columns.items():
        if isinstance(values, np.ndarray):
            inputs[name] = numeric_reference_of(name, values)
        else:
            inputs[name] = categorical_reference(name, pa.chunked_array([pa.array(values)]))
    rows = len(next(iter(columns.values())))
    return TrainingReference("customers@1/s1", rows, inputs)


def _one(report: DriftReport) -> FeatureDrift:
    (drift,) = report.features
    return drift


@pytest.fixture
def train(rng: np.random.Generator) -> np.ndarray:
    """Charges of the training rows: many distinct values (kept as quantiles)."""
    return rng.gamma(4, 15, 40_000)


# -- which method, and why ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "method", "reason"),
    [
        (20, "none", "20 values: too few to test (30)"),
        (2_000, "ks", "a number, 2,000 values: Kolmogorov-Smirnov against the training values"),
        (50_000, "psi", "a number, 50,000 values: PSI on the training deciles"),
    ],
    ids=["few", "some", "many"],
)
def test_a_number_is_tested_by_its_rows(
    rng: np.random.Generator, train: np.ndarray, rows: int, method: str, reason: str
) -> None:
    window = pa.table({"charges": rng.gamma(4, 15, rows)})
    drift = _one(feature_drift(_reference(charges=train), window, MonitoringSpec()))
    assert drift.method == method and drift.reason.startswith(reason)
    assert drift.rows == rows and drift.kind == "number"
    assert drift.drifted is (None if method == "none" else False)


@pytest.mark.parametrize(
    ("rows", "shares", "method", "reason"),
    [
        (600, [0.5, 0.3, 0.2], "chi2", "a category, 600 values, each expected count >= 5"),
        (40, [0.45, 0.45, 0.1], "jensenshannon", "a category, an expected count of 4.1 < 5"),
        (5_000, [0.5, 0.3, 0.2], "jensenshannon", "a category, 5,000 values: Jensen-Shannon"),
        (30_000, [0.5, 0.3, 0.2], "jensenshannon", "a category, 30,000 values: Jensen-Shannon"),
    ],
    ids=["enough-counts", "small-counts", "some", "many"],
)
def test_a_category_is_tested_by_its_counts(
    rng: np.random.Generator, rows: int, shares: list[float], method: str, reason: str
) -> None:
    regions = ["north", "south", "east"]
    reference = _reference(region=list(rng.choice(regions, 5_000, p=shares)))
    window = pa.table({"region": rng.choice(regions, rows, p=shares)})
    drift = _one(feature_drift(reference, window, MonitoringSpec()))
    assert (drift.method, drift.kind) == (method, "string")
    assert drift.reason.startswith(reason)
    assert drift.drifted is False


# -- equal to SciPy on the same rows --------------------------------------------------------


def test_ks_against_exact_training_values_equals_scipy(rng: np.random.Generator) -> None:
    train = rng.integers(18, 90, 8_000).astype(float)  # ages: few distinct values, kept exactly
    window = rng.integers(25, 95, 3_000).astype(float)
    drift = _one(feature_drift(_reference(age=train), pa.table({"age": window}), MonitoringSpec()))
    theirs = stats.ks_2samp(train, window, method="asymp")
    assert drift.method == "ks" and drift.error_bound == 0.0
    assert drift.statistic == theirs.statistic
    assert drift.p_value == pytest.approx(theirs.pvalue, rel=1e-9)
    assert drift.drifted and drift.threshold == 0.05
    assert drift.out_of_range == int((window > 89).sum())


def test_ks_against_quantiles_is_within_their_stated_bound(
    rng: np.random.Generator, train: np.ndarray
) -> None:
    window = rng.gamma(4, 15.6, 5_000)
    drift = _one(feature_drift(_reference(c=train), pa.table({"c": window}), MonitoringSpec()))
    theirs = stats.ks_2samp(train, window, method="asymp")
    assert 0 < drift.error_bound < 0.005
    assert abs(drift.statistic - theirs.statistic) <= drift.error_bound
    assert drift.drifted == bool(theirs.pvalue < 0.05)


def test_the_quantiles_own_error_is_no_drift(rng: np.random.Generator) -> None:
    # a million rows from the training distribution: the quantiles' error alone makes the
    # statistic significant; judged at the statistic less its bound, nothing drifted
    reference = _reference(x=rng.normal(size=1_000_000))
    window = pa.table({"x": rng.normal(size=1_000_000)})
    drift = _one(feature_drift(reference, window, MonitoringSpec(drift_method="ks")))
    assert drift.p_value is not None and drift.p_value < 0.05
    assert drift.drifted is False and "judged at the statistic less that" in drift.reason


def test_psi_on_the_training_deciles(rng: np.random.Generator, train: np.ndarray) -> None:
    window = np.concatenate([rng.gamma(4, 19, 30_000), [np.nan] * 3_000])
    reference = _reference(c=train)
    drift = _one(feature_drift(reference, pa.table({"c": window}), MonitoringSpec()))
    edges = np.quantile(train, np.linspace(0, 1, 11)[1:-1])
    expected = np.histogram(train, np.r_[-np.inf, edges, np.inf])[0] / len(train)
    actual = np.histogram(window[:30_000], np.r_[-np.inf, edges, np.inf])[0] / 30_000
    textbook = np.sum((actual - expected) * np.log(actual / expected))
    assert drift.method == "psi" and drift.statistic == pytest.approx(textbook, rel=1e-6)
    assert drift.drifted and drift.threshold == 0.2 and drift.p_value is None
    assert drift.missing_rate == pytest.approx(3_000 / 33_000)
    assert drift.reference_missing_rate == 0.0


def test_chi_square_and_unseen_categories_equal_scipy(rng: np.random.Generator) -> None:
    train = list(rng.choice(["north", "south", "east"], 3_000, p=[0.5, 0.3, 0.2]))
    window = list(rng.choice(["north", "south", "east", "west"], 900, p=[0.4, 0.3, 0.2, 0.1]))
    drift = _one(
        feature_drift(_reference(region=train), pa.table({"region": window}), MonitoringSpec())
    )
    counts = [[train.count(r) for r in ("east", "north", "south")] + [0]]
    counts.append([window.count(r) for r in ("east", "north", "south", "west")])
    theirs = stats.chi2_contingency(counts, correction=False)
    assert drift.method == "chi2" and drift.unseen == window.count("west")
    assert drift.statistic == pytest.approx(theirs.statistic, rel=1e-12)
    assert drift.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)
    assert drift.drifted


def _regions(rows: int, shares: list[float]) -> list[str]:
    """``rows`` regions in exactly these ``shares`` (north, south, east)."""
    counts = [round(rows * share) for share in shares]
    return [r for r, k in zip(["north", "south", "east"], counts, strict=True) for _ in range(k)]


@pytest.mark.parametrize(
    ("rows", "moved", "drifted"),
    [(50_000, 0.005, False), (50_000, 0.15, True), (10_000, 0.02, False)],
    ids=["half-a-point", "fifteen-points", "two-points-chi-square-calls-significant"],
)
def test_a_large_window_drifts_by_the_size_of_the_shift_not_by_its_rows(
    rows: int, moved: float, drifted: bool
) -> None:
    reference = _reference(region=_regions(100_000, [0.5, 0.3, 0.2]))
    window = pa.table({"region": _regions(rows, [0.5 - moved, 0.3 + moved, 0.2])})
    drift = _one(feature_drift(reference, window, MonitoringSpec()))
    counts = [[50_000, 30_000, 20_000], [rows * (0.5 - moved), rows * (0.3 + moved), rows * 0.2]]
    if rows == 10_000:  # chi-square, used up to 10,000 rows before, called two points drift
        assert stats.chi2_contingency(counts, correction=False).pvalue < 1e-4
    distance = pytest.importorskip("scipy.spatial.distance")
    assert drift.method == "jensenshannon" and drift.rows == rows
    assert drift.reason.startswith(f"a category, {rows:,} values: Jensen-Shannon distance")
    assert drift.statistic == pytest.approx(distance.jensenshannon(*counts, base=2), abs=1e-12)
    assert (drift.threshold, drift.drifted) == (0.1, drifted)


def test_a_small_window_is_tested_by_chi_square_as_scipy(rng: np.random.Generator) -> None:
    train = list(rng.choice(["north", "south", "east"], 4_000, p=[0.5, 0.3, 0.2]))
    window = list(rng.choice(["north", "south", "east"], 300, p=[0.42, 0.33, 0.25]))
    drift = _one(
        feature_drift(_reference(region=train), pa.table({"region": window}), MonitoringSpec())
    )
    regions = ("east", "north", "south")
    counts = [[train.count(r) for r in regions], [window.count(r) for r in regions]]
    # a test of homogeneity: the training rows are a sample too, not the truth
    theirs = stats.chi2_contingency(counts, correction=False)
    assert drift.method == "chi2" and drift.rows == 300
    assert drift.reason == "a category, 300 values, each expected count >= 5: chi-square"
    assert drift.statistic == pytest.approx(theirs.statistic, rel=1e-12)
    assert drift.p_value == pytest.approx(theirs.pvalue, rel=1e-9)
    assert drift.drifted == bool(theirs.pvalue < 0.05)


def test_categories_past_the_reference_top_are_one_bin(rng: np.random.Generator) -> None:
    cities = [f"city-{i}" for i in rng.integers(0, 300, 20_000)]
    window = [f"city-{i}" for i in rng.integers(0, 300, 600)]  # expected counts near 2
    reference = _reference(city=cities)
    drift = _one(feature_drift(reference, pa.table({"city": window}), MonitoringSpec()))
    distance = pytest.importorskip("scipy.spatial.distance")
    listed = reference.inputs["city"].categories  # type: ignore[union-attr]
    ours = [window.count(c) for c in listed]
    expected = [*listed.values(), 20_000 - sum(listed.values())]
    js = distance.jensenshannon(expected, [*ours, 600 - sum(ours)], base=2)
    assert drift.unseen == 0  # the reference does not list every city: unseen is unknown
    assert drift.method == "jensenshannon" and drift.statistic == pytest.approx(js, abs=1e-12)


# -- the plan -------------------------------------------------------------------------------


def test_the_plans_method_and_threshold(rng: np.random.Generator, train: np.ndarray) -> None:
    window = pa.table({"c": rng.gamma(4, 15, 500), "r": rng.choice(["a", "b"], 500)})
    reference = _reference(c=train, r=list(rng.choice(["a", "b"], 1_000)))
    psi = feature_drift(reference, window, MonitoringSpec(drift_method="psi", drift_threshold=0.1))
    assert [(d.method, d.threshold) for d in psi.features] == [("psi", 0.1), ("psi", 0.1)]
    assert psi.features[0].reason == "the plan's drift_method: psi"
    ks = feature_drift(reference, window, MonitoringSpec(drift_method="ks", drift_threshold=0.01))
    assert [(d.method, d.threshold) for d in ks.features] == [("ks", 0.01), ("chi2", 0.01)]
    assert ks.features[1].reason == "the plan's drift_method: ks (categories: chi-square)"
    chi2 = feature_drift(reference, window, MonitoringSpec(drift_method="chi2"))
    assert [(d.method, d.threshold) for d in chi2.features] == [("chi2", 0.05), ("chi2", 0.05)]
    js = feature_drift(reference, window, MonitoringSpec(drift_method="jensenshannon"))
    assert [(d.method, d.threshold) for d in js.features] == [
        ("jensenshannon", 0.1),
        ("jensenshannon", 0.1),
    ]


def test_the_plan_still_takes_the_old_methods() -> None:
    assert MonitoringSpec().drift_method == "auto"
    for method in ("psi", "ks", "chi2"):
        assert MonitoringSpec(drift_method=method).drift_method == method


# -- edges ----------------------------------------------------------------------------------


def test_missing_columns_empty_windows_and_redacted_inputs(rng: np.random.Generator) -> None:
    reference = _reference(age=rng.normal(40, 9, 500), plan=list(rng.choice(["a", "b"], 500)))
    report = feature_drift(
        reference, pa.table({"plan": pa.array([], pa.string())}), MonitoringSpec()
    )
    assert report.absent == ("age",) and report.rows == 0
    (plan,) = report.features
    assert (plan.method, plan.drifted, plan.missing_rate) == ("none", None, None)
    hidden = TrainingReference(
        "s",
        3,
        {
            "email": categorical_reference(
                "email", pa.chunked_array([["a@x", "b@y", None]]), redacted=True
            )
        },
    )
    email = _one(feature_drift(hidden, pa.table({"email": ["c@z"] * 50}), MonitoringSpec()))
    assert email.method == "none" and email.reason.startswith("personal data")


def test_a_number_column_of_strings_is_refused(rng: np.random.Generator) -> None:
    reference = _reference(age=rng.normal(40, 9, 500))
    with pytest.raises(DataError, match=r"input 'age' of the window holds string values"):
        feature_drift(reference, pa.table({"age": ["forty"] * 40}), MonitoringSpec())


def test_nan_and_nulls_are_missing_values_not_drift(rng: np.random.Generator) -> None:
    train = rng.normal(0, 1, 5_000)
    values = np.r_[rng.normal(0, 1, 1_000), [np.nan] * 100]
    window = pa.table({"x": pa.array(list(values) + [None] * 100, pa.float64())})
    drift = _one(feature_drift(_reference(x=train), window, MonitoringSpec()))
    assert drift.rows == 1_000 and drift.missing_rate == pytest.approx(200 / 1_200)
    theirs = stats.ks_2samp(train, values[:1_000], method="asymp")
    assert drift.statistic == pytest.approx(theirs.statistic, abs=drift.error_bound)


# -- outputs --------------------------------------------------------------------------------


def _classifier(rng: np.random.Generator, rows: int, shift: float = 0.0) -> tuple[Any, Any]:
    p = np.clip(rng.beta(2, 5, rows) + shift, 0, 1)
    return np.where(p > 0.5, "1", "0"), np.column_stack([1 - p, p])


def test_output_drift_of_classes_and_positive_scores(rng: np.random.Generator) -> None:
    labels, proba = _classifier(rng, 4_000)
    truth = np.where(rng.uniform(size=4_000) < proba[:, 1], "1", "0")
    output = output_reference("valid", "classification", ["0", "1"], labels, proba, truth)
    reference = TrainingReference("s", 10, {}, output=output)
    same = output_drift(reference, MonitoringSpec(), predicted=labels[:2_000], proba=proba[:2_000])
    assert [(d.feature, d.kind, d.method) for d in same] == [
        ("predicted class", "class", "jensenshannon"),  # 2,000 classes: past chi-square's
        ("score 1", "score", "ks"),
    ]
    assert not any(d.drifted for d in same)
    moved_labels, moved = _classifier(rng, 3_000, shift=0.25)
    report = feature_drift(
        reference, pa.table({}), MonitoringSpec(), predicted=moved_labels, proba=moved
    )
    assert report.drifted == ["predicted class", "score 1"]
    assert report.to_dict()["outputs"][1]["p_value"] < 1e-10


def test_output_drift_of_a_regressor_and_without_an_output_reference(
    rng: np.random.Generator,
) -> None:
    predicted = rng.normal(60, 15, 3_000)
    output = output_reference("valid", "regression", [], predicted, None, predicted)
    reference = TrainingReference("s", 10, {}, output=output)
    (value,) = output_drift(reference, MonitoringSpec(), values=rng.normal(70, 15, 1_000))
    assert (value.feature, value.kind, value.method, value.drifted) == (
        "prediction",
        "value",
        "ks",
        True,
    )
    assert output_drift(TrainingReference("s", 1, {}), MonitoringSpec(), values=predicted) == ()
