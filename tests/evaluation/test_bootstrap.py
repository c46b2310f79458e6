"""The vectorised bootstrap gives the intervals of explicit row resampling.

The reference is the algorithm mlplan used before: each draw takes ``m`` row indices with
``rng.integers`` and measures the resampled rows with the point-estimate engine (itself
equal to scikit-learn, see test_metrics.py). The new draws are Poisson(1) weights; the two
percentile intervals must agree within Monte Carlo error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlplan.evaluation import Predictions, slice_metrics
from mlplan.modeling import aggregate, interval

BOOT = 500


def _explicit(data: Predictions, rows: np.ndarray, names: list[str], seed: int) -> Any:
    """Draws by resampling the rows themselves, in one aggregation of every draw."""
    m = len(rows)
    picked = rows[np.random.default_rng(seed).integers(0, m, size=(BOOT, m))].ravel()
    cells = np.repeat(np.arange(BOOT), m)
    return aggregate(data, picked, cells, BOOT, names)


def _case(kind: str, rng: np.random.Generator) -> tuple[Predictions, np.ndarray]:
    n = 1800
    group = rng.choice(np.array(["a", "b", "c"]), n, p=[0.5, 0.3, 0.2])
    if kind == "regression":
        truth = rng.gamma(2.0, 2.0, n) + 1.0
        data = Predictions.from_arrays(truth, truth + rng.normal(0, 1.0, n), kind="regression")
        return data, group
    k = 2 if kind == "binary" else 3
    y = rng.integers(0, k, n)
    raw = rng.random((n, k)) + 1.2 * np.eye(k)[y] * rng.random((n, 1))
    # Two decimals: tied scores, as a tree model's.
    proba = np.round(raw / raw.sum(axis=1, keepdims=True), 2)
    proba[:, -1] = 1 - proba[:, :-1].sum(axis=1)
    proba = np.clip(proba, 0, 1)
    data = Predictions.from_arrays(y, proba.argmax(1), proba=proba, classes=list(range(k)))
    return data, group


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_intervals_equal_explicit_row_resampling_within_monte_carlo_error(
    rng: np.random.Generator, kind: str
) -> None:
    data, group = _case(kind, rng)
    masks = {v: group == v for v in "abc"}
    overall = slice_metrics(data, name="overall", n_boot=BOOT, seed=11)
    sliced = slice_metrics(data, groups=masks, name="g", n_boot=BOOT, seed=11)
    names = [n for n in overall.metrics if n != "count"]
    compared = [("overall", overall.overall, np.arange(data.n))]
    compared += [(v, sliced.by_group[v], np.flatnonzero(masks[v])) for v in "abc"]
    checked = 0
    for label, estimates, rows in compared:
        reference = _explicit(data, rows, names, seed=5)
        for name in names:
            drawn = reference[name][np.isfinite(reference[name])]
            low, high = interval(drawn, 0.95)
            new = estimates[name]
            assert new.low is not None and new.high is not None and low is not None
            assert high is not None
            # A 2.5% quantile of BOOT draws has a standard error of about 2.7 sd / sqrt(BOOT)
            # (normal draws); two independent estimates differ by sqrt(2) of that. Allow 4.
            tolerance = 4 * np.sqrt(2) * 2.7 * np.std(drawn) / np.sqrt(BOOT)
            assert abs(new.low - low) <= tolerance, (label, name, new.low, low, tolerance)
            assert abs(new.high - high) <= tolerance, (label, name, new.high, high, tolerance)
            checked += 1
    assert checked == 4 * len(names)


def test_two_models_on_the_same_rows_are_resampled_alike(rng: np.random.Generator) -> None:
    """The regressions against the older system pair the draws: the same key and rows give
    the same weights, whatever the predictions."""
    from mlplan.modeling import bootstrap

    n = 500
    y = rng.integers(0, 2, n)
    first = Predictions.from_arrays(y, y, kind="binary")
    second = Predictions.from_arrays(y, 1 - y, kind="binary")
    rows = np.arange(n)
    a = bootstrap(first, rows, ["count", "accuracy"], n_boot=50, seed=1, key="k")
    b = bootstrap(second, rows, ["count", "accuracy"], n_boot=50, seed=1, key="k")
    assert np.array_equal(a["count"], b["count"])
    assert np.all(a["accuracy"] == 1.0) and np.all(b["accuracy"] == 0.0)


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_ranked_draws_do_not_depend_on_the_blocks_they_are_swept_in(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """A batch is swept down the ranking a block of columns at a time (the running counts
    stay in the cache): blocks of 7 rows, which cut through runs of tied scores and
    through the predicted classes' runs, give the draws of one block of every row (which
    sums ROC AUC's products and ECE's gaps the other way); and a slice's groups read from
    the overall ranking are resampled as when sorted alone."""
    import mlplan.modeling._resample as resample

    data, group = _case(kind, rng)
    masks = {v: group == v for v in "abc"}

    def draws(columns: int) -> tuple[Any, Any]:
        monkeypatch.setattr(resample, "_CACHED", 1)
        monkeypatch.setattr(resample, "_MIN_COLUMNS", columns)
        # One block of every row also sums ROC AUC's products in int64 from the start, and
        # ECE gaps by bin with a weighted count, not a dot product a run.
        whole = columns > len(group)
        monkeypatch.setattr(resample, "_PRODUCTS", 0 if whole else 2**31 // 256)
        monkeypatch.setattr(resample, "_DOTS", 0 if whole else 64)
        overall = slice_metrics(data, name="overall", n_boot=40, seed=3)
        sliced = slice_metrics(data, groups=masks, name="g", n_boot=40, seed=3, overall=overall)
        return overall.overall_draws, sliced.draws

    (whole, groups), (blocked, blocked_groups) = draws(10**9), draws(7)
    alone = slice_metrics(data, groups=masks, name="g", n_boot=40, seed=3).draws
    for mine, theirs in [(whole, blocked)] + [(groups[v], blocked_groups[v]) for v in "abc"]:
        assert mine.keys() == theirs.keys()
        for name in mine:
            # Precisions and ECE gaps are summed in float32 a block at a time.
            np.testing.assert_allclose(theirs[name], mine[name], rtol=0, atol=1e-6)
    for v in "abc":
        for name in groups[v]:
            np.testing.assert_array_equal(alone[v][name], blocked_groups[v][name])
