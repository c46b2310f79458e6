"""Performance estimated before labels: the calibration as a JSON table, the estimate against
the metric engine, and the interval's coverage where the truth is known."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from mlplan.errors import DataError, ParameterError
from mlplan.modeling import MetricEstimate, Predictions, aggregate, metrics_from_confusion
from mlplan.monitoring import (
    Calibration,
    EstimateResult,
    estimable_metrics,
    estimate_performance,
    fit_calibration,
)
from mlplan.monitoring._estimate import EXACT_CELLS

BINARY = ["no", "yes"]
THREE = ["cat", "dog", "fox"]


def binary_rows(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated binary scores (about a quarter positive) and labels drawn from them."""
    p = 1.0 / (1.0 + np.exp(-rng.normal(-1.3, 1.6, size=n)))
    y = np.where(rng.random(n) < p, "yes", "no")
    return np.column_stack([1 - p, p]), y


def three_class_rows(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated softmax scores of three unequal classes and labels drawn from them."""
    logits = rng.normal(size=(n, 3)) * 1.4 + np.array([0.4, 0.0, -0.5])
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    codes = (rng.random(n)[:, None] >= np.cumsum(proba, axis=1)[:, :-1]).sum(axis=1)
    return proba, np.asarray(THREE)[codes]


def realised(
    proba: np.ndarray, y: np.ndarray, classes: list[str], names: list[str], threshold: float
) -> dict[str, float]:
    """The metrics the metric engine gives once the labels are known."""
    if len(classes) == 2:
        predicted = np.where(proba[:, 1] >= threshold, classes[1], classes[0])
    else:
        predicted = np.asarray(classes)[proba.argmax(axis=1)]
    data = Predictions.from_arrays(
        y, predicted, proba=proba, classes=classes, kind="binary", positive=classes[-1]
    )
    n = len(y)
    values = aggregate(data, np.arange(n), np.zeros(n, dtype=np.int64), 1, names)
    return {name: float(values[name][0]) for name in names}


IDENTITY = {
    "format": 1,
    "method": "isotonic",
    "rows": 1_000_000,
    "positive": "yes",
    "classes": BINARY,
    "curves": [{"method": "isotonic", "x": [0.0, 1.0], "y": [0.0, 1.0]}],
}


# -- calibration --------------------------------------------------------------------------------


def test_isotonic_table_predicts_as_scikit_learn(rng: np.random.Generator) -> None:
    proba, y = binary_rows(rng, 5000)
    calibration = fit_calibration(proba, y, BINARY)
    reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")
    reference.fit(proba[:, 1], y == "yes")
    live = np.concatenate([rng.random(2000), [0.0, 1.0]])
    ours = calibration.transform(np.column_stack([1 - live, live]))
    assert calibration.method == "isotonic"
    np.testing.assert_allclose(ours[:, 1], reference.predict(live), atol=1e-12)
    np.testing.assert_allclose(ours.sum(axis=1), 1.0)


def test_few_rows_take_platts_sigmoid(rng: np.random.Generator) -> None:
    proba, y = binary_rows(rng, 400)
    calibration = fit_calibration(proba, y, BINARY)
    logit = np.log(proba[:, 1] / proba[:, 0])[:, None]
    reference = LogisticRegression(C=1e6).fit(logit, y == "yes")
    assert calibration.method == "platt"
    np.testing.assert_allclose(
        calibration.transform(proba)[:, 1], reference.predict_proba(logit)[:, 1], atol=1e-6
    )


def test_calibration_survives_json_and_applies_without_scikit_learn_objects(
    rng: np.random.Generator,
) -> None:
    proba, y = three_class_rows(rng, 3000)
    calibration = fit_calibration(proba, y, THREE)
    stored = json.loads(json.dumps(calibration.to_dict()))
    again = Calibration.from_dict(stored)
    assert again == calibration
    assert [c["method"] for c in stored["curves"]] == ["isotonic"] * 3
    assert len(json.dumps(stored)) < 50_000
    live, _ = three_class_rows(rng, 500)
    np.testing.assert_array_equal(again.transform(live), calibration.transform(live))
    np.testing.assert_allclose(again.transform(live).sum(axis=1), 1.0)


def test_a_class_with_one_outcome_keeps_its_scores(rng: np.random.Generator) -> None:
    proba, _ = binary_rows(rng, 50)
    calibration = fit_calibration(proba, ["no"] * 50, BINARY)
    assert calibration.to_dict()["curves"] == [{"method": "identity"}]
    np.testing.assert_allclose(calibration.transform(proba), proba)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format": 7}, r"calibration 'format' must be 1; got 7"),
        ({"method": "beta"}, r"'method' must be isotonic or platt; got 'beta'"),
        ({"positive": "maybe"}, r"'positive' must name one of two classes"),
        ({"rows": 0}, r"'rows' must be a positive count"),
        ({"curves": []}, r"'curves' must hold 1 curve\(s\) for 2 classes"),
        (
            {"curves": [{"method": "isotonic", "x": [0.5, 0.1], "y": [0, 1]}]},
            r"curves\[0\] \(isotonic\) is malformed: 'x' and 'y' must be as long, 'x' not",
        ),
        (
            {"curves": [{"method": "platt", "a": 1.0}]},
            r"curves\[0\] \(platt\) is malformed: 'b'",
        ),
        ({"curves": [{"method": "pickle"}]}, r"curves\[0\] has method 'pickle'"),
    ],
    ids=["format", "method", "positive", "rows", "curves", "table", "platt", "unknown"],
)
def test_a_malformed_calibration_names_its_field(change: dict[str, Any], match: str) -> None:
    with pytest.raises(DataError, match=match):
        Calibration.from_dict({**IDENTITY, **change})


def test_fitting_refuses_labels_outside_the_classes_and_no_rows() -> None:
    with pytest.raises(DataError, match=r"labels 'maybe' are not among the model's classes"):
        fit_calibration(np.full((3, 2), 0.5), ["no", "yes", "maybe"], BINARY)
    with pytest.raises(DataError, match="no validation rows to fit the calibration on"):
        fit_calibration(np.zeros((0, 2)), [], BINARY)
    with pytest.raises(DataError, match=r"one column per class \(3\); got shape \(4, 2\)"):
        fit_calibration(np.full((4, 2), 0.5), ["cat"] * 4, THREE)


# -- the estimate -------------------------------------------------------------------------------


def test_estimable_metrics_are_the_engines_counting_ones_and_binary_roc_auc() -> None:
    assert estimable_metrics("binary") == (
        "accuracy", "precision", "recall", "f1", "macro_f1", "fpr", "fnr", "fdr", "for",
        "roc_auc",
    )  # fmt: skip
    assert "roc_auc" not in estimable_metrics("multiclass")


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_counts_give_the_engines_metrics(kind: str, rng: np.random.Generator) -> None:
    """The estimate reads the metric engine's definitions off a confusion matrix."""
    make, classes = (binary_rows, BINARY) if kind == "binary" else (three_class_rows, THREE)
    proba, y = make(rng, 500)
    names = [m for m in estimable_metrics(kind) if m != "roc_auc"]
    engine = realised(proba, y, classes, [*names, "count"], threshold=0.4)
    predicted = (proba[:, 1] >= 0.4).astype(int) if kind == "binary" else proba.argmax(1)
    truth = np.searchsorted(classes, y)
    cm = np.zeros((1, len(classes), len(classes)))
    np.add.at(cm, (0, truth, predicted), 1.0)
    counted = metrics_from_confusion(cm, names, positive=1)
    assert {n: float(counted[n][0]) for n in names} == pytest.approx({n: engine[n] for n in names})


def test_a_metric_that_cannot_be_estimated_is_refused_with_the_ones_that_can() -> None:
    calibration = Calibration.from_dict(IDENTITY)
    with pytest.raises(ParameterError, match=r"'metrics' 'log_loss' cannot be estimated") as e:
        estimate_performance(np.full((5, 2), 0.5), calibration=calibration, metrics=["log_loss"])
    assert "estimable: accuracy, precision" in str(e.value)
    with pytest.raises(ParameterError, match=r"'level' must be in \(0, 1\); got 95"):
        estimate_performance(
            np.full((5, 2), 0.5), calibration=calibration, metrics=["f1"], level=95
        )


def test_the_estimate_is_the_metric_of_the_expected_confusion_matrix(
    rng: np.random.Generator,
) -> None:
    proba, _ = binary_rows(rng, 3000)
    calibration = Calibration.from_dict(IDENTITY)
    result = estimate_performance(
        proba, calibration=calibration, metrics=["accuracy", "recall"], threshold=0.4
    )
    p = proba[:, 1]
    decided = p >= 0.4
    accuracy = (p[decided].sum() + (1 - p[~decided]).sum()) / len(p)
    assert result.estimates["accuracy"].value == pytest.approx(accuracy, rel=1e-12)
    assert result.estimates["recall"].value == pytest.approx(p[decided].sum() / p.sum())


def test_expected_roc_auc_is_the_weighted_pair_count(rng: np.random.Generator) -> None:
    proba, _ = binary_rows(rng, 300)
    proba = np.round(proba, 2)  # ties count one half
    c = proba[:, 1]
    result = estimate_performance(
        proba, calibration=Calibration.from_dict(IDENTITY), metrics=["roc_auc"]
    )
    above = (c[:, None] > c[None, :]) + 0.5 * (c[:, None] == c[None, :])
    np.fill_diagonal(above, 0.0)
    weighted = c[:, None] * (1 - c[None, :]) * above
    assert result.estimates["roc_auc"].value == pytest.approx(
        weighted.sum() / (c.sum() * (1 - c).sum()), rel=1e-12
    )


def counted(
    proba: np.ndarray, y: np.ndarray, classes: list[str], names: list[str], threshold: float
) -> dict[str, float]:
    """The realised metrics from the confusion matrix (the engine's definitions, as
    test_counts_give_the_engines_metrics shows) and scikit-learn's ROC AUC: fast enough for
    hundreds of seeds."""
    k = len(classes)
    truth = np.searchsorted(classes, y)
    predicted = (proba[:, 1] >= threshold).astype(int) if k == 2 else proba.argmax(axis=1)
    cm = np.bincount(truth * k + predicted, minlength=k * k).reshape(1, k, k).astype(float)
    values = metrics_from_confusion(cm, [n for n in names if n != "roc_auc"], positive=1)
    out = {name: float(value[0]) for name, value in values.items()}
    if "roc_auc" in names:
        out["roc_auc"] = float(roc_auc_score(truth == 1, proba[:, 1]))
    return out


def _coverage(
    kind: str, rows: int, seeds: int, names: list[str], *, validation: int | None
) -> dict[str, float]:
    """Over many seeds, how often the realised metric falls inside the 95 % interval; the
    calibration fitted on ``validation`` rows of the same law (None: the exact one)."""
    make, classes = (binary_rows, BINARY) if kind == "binary" else (three_class_rows, THREE)
    inside = dict.fromkeys(names, 0)
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        if validation:
            calibration = fit_calibration(*make(rng, validation), classes)
        else:
            calibration = Calibration.from_dict(IDENTITY)
        proba, y = make(rng, rows)
        result = estimate_performance(
            proba, calibration=calibration, metrics=names, threshold=0.4, draws=500, seed=seed
        )
        truth = counted(proba, y, classes, names, threshold=0.4)
        for name in names:
            estimate = result.estimates[name]
            assert estimate.low is not None and estimate.high is not None
            inside[name] += estimate.low <= truth[name] <= estimate.high
        assert result.draws == ("exact" if rows * 500 <= EXACT_CELLS else "normal")
    return {name: inside[name] / seeds for name in names}


# 300 seeds: a true 95 % coverage is seen within 0.95 +- 0.038 (three standard errors,
# sqrt(.95 * .05 / 300) = 0.0126); the fixed seeds make the check deterministic.
TOLERANCE = 0.038


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "names"),
    [("binary", ["accuracy", "f1", "roc_auc"]), ("multiclass", ["accuracy", "macro_f1"])],
    ids=["binary", "multiclass"],
)
def test_the_interval_covers_the_realised_metric_at_its_nominal_rate(
    kind: str, names: list[str]
) -> None:
    """Small windows (every label drawn) under a calibration fitted on validation rows."""
    coverage = _coverage(kind, 800, 300, names, validation=10_000)
    for name, rate in coverage.items():
        assert abs(rate - 0.95) <= TOLERANCE, (name, rate)


@pytest.mark.slow
def test_the_normal_draws_of_a_large_window_cover_at_the_nominal_rate() -> None:
    names = ["accuracy", "f1", "roc_auc"]
    coverage = _coverage("binary", 10_000, 300, names, validation=None)
    for name, rate in coverage.items():
        assert abs(rate - 0.95) <= TOLERANCE, (name, rate)


@pytest.mark.slow
def test_a_window_larger_than_the_validation_split_counts_the_calibrations_error() -> None:
    """66,000 rows (summarised in score bins) against a calibration fitted on 10,000: the
    calibration's own error is most of the gap between estimate and realised value, and the
    interval still holds the realised value at its nominal rate. (Not ROC AUC: isotonic
    steps fitted on 10,000 rows overestimate it slightly, as the module says.)"""
    names = ["accuracy", "f1"]
    coverage = _coverage("binary", 66_000, 300, names, validation=10_000)
    for name, rate in coverage.items():
        assert abs(rate - 0.95) <= TOLERANCE, (name, rate)


def test_a_summarised_window_estimates_as_row_by_row(rng: np.random.Generator) -> None:
    """Above 65,536 rows a binary window is grouped in score bins first: the same estimate as
    the row-by-row formulas, to far less than its interval."""
    calibration = fit_calibration(*binary_rows(rng, 20_000), BINARY)
    proba, _ = binary_rows(rng, 100_000)
    result = estimate_performance(
        proba, calibration=calibration, metrics=["accuracy", "roc_auc"], threshold=0.4
    )
    c = calibration.transform(proba)[:, 1]
    decided = proba[:, 1] >= 0.4
    accuracy = (c[decided].sum() + (1 - c[~decided]).sum()) / len(c)
    order = np.argsort(proba[:, 1])
    below = np.cumsum(1 - c[order]) - (1 - c[order])  # strictly lower scores (no ties here)
    auc = (c[order] @ below) / (c.sum() * (1 - c).sum())
    assert result.estimates["accuracy"].value == pytest.approx(accuracy, abs=1e-5)
    assert result.estimates["roc_auc"].value == pytest.approx(auc, abs=1e-4)
    estimate = result.estimates["roc_auc"]
    assert estimate.high is not None and estimate.low is not None
    assert estimate.high - estimate.low > 0.003


def test_scores_miscalibrated_on_live_data_mislead_the_estimate(
    rng: np.random.Generator,
) -> None:
    """CBPE's known failure: the live outcomes changed (labels now follow p squared), the
    scores did not, and the estimate keeps the old precision with a confident interval."""
    calibration = fit_calibration(*binary_rows(rng, 20_000), BINARY)
    proba, _ = binary_rows(rng, 5000)
    y = np.where(rng.random(5000) < proba[:, 1] ** 2, "yes", "no")
    result = estimate_performance(proba, calibration=calibration, metrics=["precision"])
    truth = realised(proba, y, BINARY, ["precision"], threshold=0.5)["precision"]
    shown = result.to_dict(realised={"precision": truth})["metrics"]["precision"]
    assert shown["within"] is False
    assert shown["estimated"]["low"] > truth + 0.1


def test_the_estimate_is_seeded_and_an_empty_window_has_no_value(
    rng: np.random.Generator,
) -> None:
    proba, _ = three_class_rows(rng, 200)
    calibration = fit_calibration(*three_class_rows(rng, 2000), THREE)
    first = estimate_performance(proba, calibration=calibration, metrics=["macro_f1"], seed=3)
    again = estimate_performance(proba, calibration=calibration, metrics=["macro_f1"], seed=3)
    assert first == again
    empty = estimate_performance(
        np.zeros((0, 3)), calibration=calibration, metrics=["accuracy"]
    ).to_dict(realised={"accuracy": None})
    assert empty["metrics"]["accuracy"] == {
        "estimated": {"value": None, "low": None, "high": None},
        "realised": None,
        "within": None,
    }


def test_the_result_shows_estimate_and_realised_side_by_side() -> None:
    result = EstimateResult(
        1200,
        "multiclass",
        0.95,
        "exact",
        {"accuracy": MetricEstimate(0.8, 0.77, 0.83)},
    )
    view = json.loads(json.dumps(result.to_dict(realised={"accuracy": 0.74})))
    assert view == {
        "rows": 1200,
        "kind": "multiclass",
        "level": 0.95,
        "draws": "exact",
        "metrics": {
            "accuracy": {
                "estimated": {"value": 0.8, "low": 0.77, "high": 0.83},
                "realised": 0.74,
                "within": False,
            }
        },
    }
    assert "realised" not in result.to_dict()["metrics"]["accuracy"]
