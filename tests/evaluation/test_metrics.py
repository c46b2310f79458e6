from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as skm
from fairlearn.metrics import MetricFrame, count
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplan.errors import DataError, UsageError
from mlplan.evaluation import (
    BINARY_METRICS,
    MULTICLASS_METRICS,
    Predictions,
    metrics_for,
    slice_metrics,
)
from mlplan.evaluation._analysis import benjamini_hochberg
from mlplan.modeling import aggregate


def _binary(rng: np.random.Generator, n: int = 3000) -> dict[str, Any]:
    y = rng.integers(0, 2, n)
    # Rounded scores: many ties, which ROC AUC and average precision must handle as sklearn.
    score = np.round(np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1), 2)
    return {
        "y": y,
        "score": score,
        "pred": (score >= 0.5).astype(int),
        "proba": np.column_stack([1 - score, score]),
        "group": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]),
        "region": rng.choice(["north", "south"], n),
    }


SKLEARN_BINARY = {
    "accuracy": lambda d: skm.accuracy_score(d["y"], d["pred"]),
    "precision": lambda d: skm.precision_score(d["y"], d["pred"], zero_division=0),
    "recall": lambda d: skm.recall_score(d["y"], d["pred"], zero_division=0),
    "f1": lambda d: skm.f1_score(d["y"], d["pred"], zero_division=0),
    "macro_f1": lambda d: skm.f1_score(d["y"], d["pred"], average="macro", zero_division=0),
    "roc_auc": lambda d: skm.roc_auc_score(d["y"], d["score"]),
    "pr_auc": lambda d: skm.average_precision_score(d["y"], d["score"]),
    "log_loss": lambda d: skm.log_loss(d["y"], d["proba"], labels=[0, 1]),
    "brier": lambda d: skm.brier_score_loss(d["y"], d["score"]),
    "fpr": lambda d: skm.confusion_matrix(d["y"], d["pred"])[0, 1] / (d["y"] == 0).sum(),
    "fnr": lambda d: skm.confusion_matrix(d["y"], d["pred"])[1, 0] / (d["y"] == 1).sum(),
}


@pytest.mark.parametrize("metric", sorted(SKLEARN_BINARY))
def test_binary_metrics_per_slice_equal_scikit_learn(rng: np.random.Generator, metric: str) -> None:
    d = _binary(rng)
    data = Predictions.from_arrays(d["y"], d["pred"], proba=d["proba"], classes=[0, 1])
    report = slice_metrics(data, sensitive_features={"group": d["group"]}, metrics=[metric])
    assert report.overall[metric].value == pytest.approx(SKLEARN_BINARY[metric](d), abs=1e-12)
    for value in "abcd":
        mask = d["group"] == value
        sub = {k: v[mask] for k, v in d.items()}
        got = report.by_group[f"group={value}"][metric].value
        assert got == pytest.approx(SKLEARN_BINARY[metric](sub), abs=1e-12)


def test_expected_calibration_error_is_the_weighted_gap_of_ten_bins(
    rng: np.random.Generator,
) -> None:
    d = _binary(rng)
    data = Predictions.from_arrays(d["y"], d["pred"], proba=d["proba"], classes=[0, 1])
    confidence = d["proba"].max(axis=1)
    correct = d["proba"].argmax(axis=1) == d["y"]
    bins = np.minimum((confidence * 10).astype(int), 9)
    expected = sum(
        abs(correct[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).mean()
        for b in np.unique(bins)
    )
    assert slice_metrics(data, metrics=["ece"]).overall["ece"].value == pytest.approx(expected)


def test_multiclass_and_regression_metrics_equal_scikit_learn(rng: np.random.Generator) -> None:
    n, k = 2000, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    data = Predictions.from_arrays(y, pred, proba=proba, classes=list(range(k)))
    assert data.kind == "multiclass"
    overall = slice_metrics(data).overall
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "macro_precision": skm.precision_score(y, pred, average="macro"),
        "macro_recall": skm.recall_score(y, pred, average="macro"),
        "macro_f1": skm.f1_score(y, pred, average="macro"),
        "weighted_precision": skm.precision_score(y, pred, average="weighted"),
        "weighted_recall": skm.recall_score(y, pred, average="weighted"),
        "weighted_f1": skm.f1_score(y, pred, average="weighted"),
        "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr"),
        "log_loss": skm.log_loss(y, proba),
        "brier": skm.brier_score_loss(y, proba),
    }
    for name, value in expected.items():
        assert overall[name].value == pytest.approx(value, abs=1e-12), name

    truth = rng.normal(10, 3, n)
    predicted = truth + rng.normal(0, 1, n)
    overall = slice_metrics(Predictions.from_arrays(truth, predicted)).overall
    for name, value in {
        "mae": skm.mean_absolute_error(truth, predicted),
        "rmse": skm.root_mean_squared_error(truth, predicted),
        "r2": skm.r2_score(truth, predicted),
        "mape": skm.mean_absolute_percentage_error(truth, predicted),
    }.items():
        assert overall[name].value == pytest.approx(value, rel=1e-10), name


@pytest.mark.parametrize("n_boot", [0, 20], ids=["duckdb-group-by", "numpy-bincount"])
def test_per_slice_metrics_equal_fairlearn_metricframe(
    rng: np.random.Generator, n_boot: int
) -> None:
    d = _binary(rng)
    features = {"group": d["group"], "region": d["region"]}
    names = ["accuracy", "precision", "recall", "f1"]
    data = Predictions.from_arrays(d["y"], d["pred"], kind="binary")
    report = slice_metrics(data, sensitive_features=features, metrics=names, n_boot=n_boot)
    frame = MetricFrame(
        metrics={
            "accuracy": skm.accuracy_score,
            "precision": skm.precision_score,
            "recall": skm.recall_score,
            "f1": skm.f1_score,
            "count": count,
        },
        y_true=d["y"],
        y_pred=d["pred"],
        sensitive_features=pd.DataFrame(features),
    )
    by_group = frame.by_group
    assert len(report.by_group) == len(by_group) == 8
    for (group, region), row in by_group.iterrows():
        mine = report.by_group[f"group={group} & region={region}"]
        for name in [*names, "count"]:
            assert mine[name].value == pytest.approx(row[name], abs=1e-12)
    for name in names:
        assert report.overall[name].value == pytest.approx(frame.overall[name], abs=1e-12)
        assert report.difference(name) == pytest.approx(frame.difference()[name], abs=1e-12)


def test_intervals_are_reproducible_with_a_seed_and_independent_of_other_slices(
    rng: np.random.Generator,
) -> None:
    d = _binary(rng)
    data = Predictions.from_arrays(d["y"], d["pred"], proba=d["proba"], classes=[0, 1])
    masks = {v: d["group"] == v for v in "abc"}

    def run(groups: dict[str, np.ndarray], seed: int) -> Any:
        return slice_metrics(data, groups=groups, n_boot=50, seed=seed, name="g")

    first, again, other = run(masks, 1), run(masks, 1), run(masks, 2)
    fewer = run({"a": masks["a"]}, 1)
    assert first.to_dict() == again.to_dict()
    a = first.by_group["a"]["roc_auc"]
    assert (a.low, a.high) != (other.by_group["a"]["roc_auc"].low, None)
    assert a == fewer.by_group["a"]["roc_auc"]
    assert a.low is not None and a.high is not None and a.low <= a.value <= a.high


def test_a_slice_report_takes_the_overall_figures_of_the_report_over_every_row(
    rng: np.random.Generator,
) -> None:
    """evaluate's slices reuse the bootstrap of every row rather than each repeating it."""
    d = _binary(rng)
    data = Predictions.from_arrays(d["y"], d["pred"], proba=d["proba"], classes=[0, 1])
    masks = {v: d["group"] == v for v in "abc"}
    whole = slice_metrics(data, n_boot=40, seed=1)
    alone = slice_metrics(data, groups=masks, n_boot=40, seed=1, name="g")
    reused = slice_metrics(data, groups=masks, n_boot=40, seed=1, name="g", overall=whole)
    assert reused.overall == whole.overall
    assert reused.overall_draws is whole.overall_draws
    assert reused.by_group == alone.by_group
    with pytest.raises(UsageError, match=r"'overall' was made with .* 40 resamples"):
        slice_metrics(data, groups=masks, n_boot=30, seed=1, name="g", overall=whole)


def test_a_group_below_min_support_gets_no_interval_and_a_note(rng: np.random.Generator) -> None:
    d = _binary(rng, n=400)
    data = Predictions.from_arrays(d["y"], d["pred"], kind="binary")
    report = slice_metrics(
        data, groups={"small": np.arange(400) < 10}, n_boot=20, min_support=30, name="s"
    )
    small = report.by_group["small"]
    assert small["accuracy"].low is None
    assert report.notes["small"] == (
        "10 rows, below the minimum support of 30: too few to conclude anything"
    )


def test_labels_outside_the_models_classes_are_scored_as_errors() -> None:
    data = Predictions.from_arrays(
        ["cat", "dog", "emu"],
        ["cat", "dog", "dog"],
        proba=np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]),
        classes=["cat", "dog"],
    )
    assert data.classes == ["cat", "dog", "emu"] and data.kind == "multiclass"
    assert slice_metrics(data, metrics=["accuracy"]).overall["accuracy"].value == pytest.approx(
        2 / 3
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"metrics": ["rmse"]},
            UsageError,
            r"metric 'rmse' does not apply to a binary task; metrics: count, accuracy",
        ),
        (
            {"metrics": ["roc_auc"], "proba": False},
            UsageError,
            r"metric 'roc_auc' needs class probabilities",
        ),
    ],
    ids=["regression-metric", "no-probabilities"],
)
def test_metrics_that_do_not_apply_are_refused(
    rng: np.random.Generator, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    d = _binary(rng, n=100)
    proba = kwargs.pop("proba", True)
    data = Predictions.from_arrays(
        d["y"], d["pred"], proba=d["proba"] if proba else None, classes=[0, 1]
    )
    with pytest.raises(error, match=match):
        slice_metrics(data, **kwargs)


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(DataError, match=r"same length; got shapes \(3,\) and \(2,\)"):
        Predictions.from_arrays([1, 0, 1], [1, 0])
    with pytest.raises(DataError, match=r"positive class 'yes' is not one of the classes 0, 1"):
        Predictions.from_arrays([1, 0], [1, 0], classes=[0, 1], positive="yes")
    with pytest.raises(DataError, match=r"one column per class \(2 x 2\); got shape \(2, 3\)"):
        Predictions.from_arrays([1, 0], [1, 0], classes=[0, 1], proba=np.ones((2, 3)) / 3)
    data = Predictions.from_arrays([1, 0], [1, 0], kind="binary")
    with pytest.raises(DataError, match=r"sensitive feature 'g' has 3 values for 2 predictions"):
        slice_metrics(data, sensitive_features={"g": ["a", "b", "c"]}, metrics=["accuracy"])


def test_metric_lists_name_what_each_task_gets() -> None:
    assert metrics_for("binary") == BINARY_METRICS
    assert "roc_auc" not in metrics_for("multiclass", with_proba=False)
    assert set(MULTICLASS_METRICS) >= {"macro_f1", "weighted_f1", "log_loss"}


@pytest.mark.parametrize("order", ["ascending", "descending", "shuffled"])
def test_ranking_metrics_of_rows_in_any_order_equal_scikit_learn(
    rng: np.random.Generator, order: str
) -> None:
    """One group's rows already ranked (as slice reports pass them) are not sorted again."""
    n = 3000
    y = rng.integers(0, 2, n)
    score = np.round(np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1), 2)  # many ties
    proba = np.column_stack([1 - score, score])
    data = Predictions.from_arrays(y, (score >= 0.5).astype(int), proba=proba, classes=[0, 1])
    rows = {
        "ascending": np.argsort(score, kind="stable"),
        "descending": np.argsort(-score, kind="stable"),
        "shuffled": rng.permutation(n),
    }[order]
    got = aggregate(data, rows, np.zeros(n, np.int64), 1, ["roc_auc", "pr_auc"])
    assert got["roc_auc"][0] == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
    assert got["pr_auc"][0] == pytest.approx(skm.average_precision_score(y, score), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 4)), min_size=2, max_size=60).filter(
        lambda rows: len({r[0] for r in rows}) == 2
    )
)
def test_ranking_metrics_equal_scikit_learn_with_any_ties(rows: list[tuple[bool, int]]) -> None:
    y = np.array([int(r[0]) for r in rows])
    score = np.array([r[1] / 4 for r in rows])
    data = Predictions.from_arrays(
        y, (score >= 0.5).astype(int), proba=np.column_stack([1 - score, score]), classes=[0, 1]
    )
    overall = slice_metrics(data, metrics=["roc_auc", "pr_auc"]).overall
    assert overall["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, score))
    assert overall["pr_auc"].value == pytest.approx(skm.average_precision_score(y, score))


def test_benjamini_hochberg_equals_statsmodels(rng: np.random.Generator) -> None:
    from statsmodels.stats.multitest import multipletests

    p = rng.random(50) ** 3
    assert np.allclose(benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1])


@pytest.mark.parametrize("ordered", [False, True], ids=["rows-as-given", "rows-ordered"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_each_bootstrap_draw_equals_scikit_learn_on_the_resampled_rows(
    rng: np.random.Generator, kind: str, ordered: bool
) -> None:
    from mlplan.modeling._resample import _batches, bootstrap, ordered_for_resampling

    n, k = 400, (3 if kind == "multiclass" else 2)
    y = rng.integers(0, k, n)
    # Probabilities rounded to one decimal: many tied scores.
    raw = np.round(rng.random((n, k)) + np.eye(k)[y], 1)
    proba = raw / raw.sum(axis=1, keepdims=True)
    if kind == "regression":
        truth = rng.normal(3.0, 1.0, n)
        data = Predictions.from_arrays(truth, truth + rng.normal(0, 0.5, n), kind="regression")
        names = ["mae", "rmse", "r2", "mape"]
    else:
        data = Predictions.from_arrays(y, proba.argmax(1), proba=proba, classes=list(range(k)))
        names = ["roc_auc", "accuracy", "log_loss", "brier", "ece"]
        names += ["pr_auc", "f1"] if kind == "binary" else ["macro_f1"]
    rows = rng.permutation(n)  # any order: a draw is a weight per position of rows
    if ordered:  # the order slice reports use: ranked, or by cell and bin
        rows = ordered_for_resampling(data, rows, names)
    draws = bootstrap(data, rows, names, n_boot=5, seed=3, key="k")
    weights = np.vstack(list(_batches(n, 5, 3, "k")))
    for b in range(5):
        i = np.repeat(rows, weights[b])  # the rows of the resample, each as often as drawn
        if kind == "regression":
            truth_i, pred_i = data.values[i], data.predicted[i]
            expected = {
                "mae": skm.mean_absolute_error(truth_i, pred_i),
                "rmse": np.sqrt(skm.mean_squared_error(truth_i, pred_i)),
                "r2": skm.r2_score(truth_i, pred_i),
                "mape": skm.mean_absolute_percentage_error(truth_i, pred_i),
            }
        else:
            p_i, y_i, onehot = proba[i], y[i], np.eye(k)[y[i]]
            expected = {
                "accuracy": skm.accuracy_score(y_i, p_i.argmax(1)),
                "log_loss": skm.log_loss(y_i, p_i, labels=range(k)),
                "brier": np.mean(((p_i - onehot) ** 2).sum(1) / (2 if kind == "binary" else 1)),
                "ece": aggregate(data, i, np.zeros(len(i), np.int64), 1, ["ece"])["ece"][0],
            }
            if kind == "binary":
                expected["roc_auc"] = skm.roc_auc_score(y_i, p_i[:, 1])
                expected["pr_auc"] = skm.average_precision_score(y_i, p_i[:, 1])
                expected["f1"] = skm.f1_score(y_i, p_i.argmax(1))
            else:
                expected["roc_auc"] = skm.roc_auc_score(y_i, p_i, multi_class="ovr")
                expected["macro_f1"] = skm.f1_score(y_i, p_i.argmax(1), average="macro")
        for name in names:
            assert draws[name][b] == pytest.approx(expected[name], rel=1e-5, abs=1e-6), name


def test_regression_slices_by_features_and_single_class_samples(rng: np.random.Generator) -> None:
    truth = rng.normal(size=60)
    data = Predictions.from_arrays(truth, truth + 1.0, kind="regression")
    report = slice_metrics(data, sensitive_features={"g": ["a", "b"] * 30}, metrics=["mae"])
    assert report.by_group["g=a"]["mae"].value == pytest.approx(1.0)
    # A sample holding only 0s is still binary with 1 positive, as scikit-learn assumes.
    zeros = Predictions.from_arrays([0, 0, 0], [0, 0, 0])
    overall = slice_metrics(zeros, metrics=["recall", "precision"]).overall
    assert overall["recall"].value == skm.recall_score([0, 0, 0], [0, 0, 0], zero_division=0)
    assert overall["precision"].value == 0.0


def test_missing_labels_and_broken_probabilities_are_refused() -> None:
    with pytest.raises(DataError, match=r"1 labels are missing; every row needs one"):
        _ = Predictions.from_arrays(
            np.array(["a", None, "b"], dtype=object), np.array(["a", "b", "b"], dtype=object)
        ).y
    with pytest.raises(DataError, match=r"1 rows have probabilities that are missing or outside"):
        Predictions.from_arrays([0, 1], [0, 1], classes=[0, 1], proba=[[0.5, 0.5], [np.nan, 1]])


def test_group_codes_do_not_overflow_with_many_wide_features(rng: np.random.Generator) -> None:
    n = 3000
    features = {f"c{i}": rng.integers(0, 20_000, n).astype(str) for i in range(5)}
    data = Predictions.from_arrays(rng.integers(0, 2, n), rng.integers(0, 2, n), kind="binary")
    fast = slice_metrics(data, sensitive_features=features, metrics=["accuracy"])
    coded = slice_metrics(data, sensitive_features=features, metrics=["accuracy"], n_boot=1)
    assert set(fast.by_group) == set(coded.by_group)
    assert "(missing)" not in " ".join(coded.by_group)
