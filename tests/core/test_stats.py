"""The shared statistics against SciPy's on the same data (a server has no SciPy)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplan.core import (
    bin_counts,
    binomial_cdf,
    binomial_sf,
    chi2_counts,
    chi2_sf,
    jensenshannon,
    kolmogorov_sf,
    ks_2samp,
    ks_weighted,
    normal_sf,
    psi,
    quantile_edges,
)

stats = pytest.importorskip("scipy.stats")


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 3000), st.floats(0.001, 0.999), st.floats(0, 1))
def test_binomial_tails_match_scipy(n: int, p: float, at: float) -> None:
    x = round(at * n)
    assert binomial_sf(x, n, p) == pytest.approx(stats.binom.sf(x - 1, n, p), abs=1e-10)
    assert binomial_cdf(x, n, p) == pytest.approx(stats.binom.cdf(x, n, p), abs=1e-10)


@settings(max_examples=150, deadline=None)
@given(st.floats(0, 120), st.integers(1, 40))
def test_chi_square_tail_matches_scipy(x: float, df: int) -> None:
    assert chi2_sf(x, df) == pytest.approx(stats.chi2.sf(x, df), abs=1e-10)


@pytest.mark.parametrize("z", [-3.0, -1.0, 0.0, 1.6448536269514722, 4.0])
def test_normal_tail_matches_scipy(z: float) -> None:
    assert normal_sf(z) == pytest.approx(stats.norm.sf(z), abs=1e-12)


# -- Kolmogorov–Smirnov ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 40, 140, 141, 1_000, 30_000, 150_000, 2_000_000])
def test_kolmogorov_tail_matches_scipys_kstwo_in_every_region(n: int) -> None:
    # Simard & L'Ecuyer's regions: the exact corners, Durbin's matrix, Smirnov's sum, Pelz-Good.
    # For millions of rows SciPy sums Smirnov's tail asymptotically, here exactly: 1e-5 apart.
    grid = np.concatenate([np.linspace(0.001, 0.999, 20), np.linspace(0.1, 4, 12) / np.sqrt(n)])
    for x in np.clip(grid, 1e-6, 0.9999):
        assert kolmogorov_sf(float(x), n) == pytest.approx(
            float(stats.kstwo.sf(x, n)), rel=1e-9 if n < 1_000_000 else 1e-5, abs=1e-12
        ), x


_SHAPES = {
    "same": lambda r, n: r.normal(size=n),
    "shifted": lambda r, n: r.normal(0.15, size=n),
    "wider": lambda r, n: r.normal(0, 1.3, size=n),
    "ties": lambda r, n: r.integers(0, 5, size=n).astype(float),
}


@pytest.mark.parametrize("shape", list(_SHAPES), ids=list(_SHAPES))
@pytest.mark.parametrize("sizes", [(8, 5), (300, 2_000), (50_000, 20_000)], ids=str)
def test_ks_2samp_equals_scipys_asymptotic_test(
    rng: np.random.Generator, shape: str, sizes: tuple[int, int]
) -> None:
    a = rng.normal(size=sizes[0])
    if shape == "ties":
        a = rng.integers(0, 5, size=sizes[0]).astype(float)
    b = _SHAPES[shape](rng, sizes[1])
    ours, theirs = ks_2samp(a, b), stats.ks_2samp(a, b, method="asymp")
    assert ours.statistic == theirs.statistic
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-15)
    assert ours.location == theirs.statistic_location


def test_ks_leaves_nan_out_and_an_empty_sample_has_no_test(rng: np.random.Generator) -> None:
    a, b = rng.normal(size=500), rng.normal(size=400)
    with_nan = np.concatenate([b, [np.nan] * 30])
    theirs = stats.ks_2samp(a, b, method="asymp")
    assert ks_2samp(a, with_nan).statistic == theirs.statistic
    assert ks_2samp(a, with_nan).p_value == pytest.approx(theirs.pvalue, rel=1e-9)
    assert np.isnan(ks_2samp(a, np.array([np.nan])).statistic)
    assert np.isnan(ks_2samp(np.zeros(0), b).p_value)


def test_ks_of_constant_samples(rng: np.random.Generator) -> None:
    same = ks_2samp(np.ones(50), np.ones(70))
    assert (same.statistic, same.p_value) == (0.0, 1.0)
    apart = ks_2samp(np.ones(50), np.full(70, 2.0))
    theirs = stats.ks_2samp(np.ones(50), np.full(70, 2.0), method="asymp")
    assert apart.statistic == theirs.statistic == 1.0
    assert apart.p_value == pytest.approx(theirs.pvalue, abs=1e-15)


def test_ks_against_exact_counts_equals_ks_of_the_rows(rng: np.random.Generator) -> None:
    reference = rng.integers(0, 30, size=5_000).astype(float)
    window = rng.integers(2, 32, size=3_000).astype(float)
    values, counts = np.unique(reference, return_counts=True)
    weighted = ks_weighted(window, values, counts)
    theirs = stats.ks_2samp(reference, window, method="asymp")
    assert weighted.statistic == theirs.statistic
    assert weighted.p_value == pytest.approx(theirs.pvalue, rel=1e-9)


def test_ks_against_weighted_quantiles_is_within_their_rank_error(
    rng: np.random.Generator,
) -> None:
    reference = np.sort(rng.lognormal(size=400_000))
    window = rng.lognormal(0.02, size=50_000)
    ranks = np.unique(np.round(np.linspace(0, len(reference) - 1, 257)).astype(np.int64))
    weights = np.diff(np.r_[-1, ranks]).astype(float)  # the rows each quantile stands for
    summarised = ks_weighted(window, reference[ranks], weights, rows=len(reference))
    exact = stats.ks_2samp(reference, window, method="asymp")
    assert abs(summarised.statistic - exact.statistic) <= weights.max() / len(reference)
    assert summarised.p_value == pytest.approx(
        float(stats.kstwo.sf(summarised.statistic, 44_444)), rel=1e-9
    )


# -- chi-square, Jensen–Shannon, PSI -------------------------------------------------------------


_COUNTS = {
    "same shares": ([100, 200, 300], [10, 20, 30]),
    "moved": ([100, 200, 300], [60, 20, 30]),
    "unseen category": ([100, 200, 0], [40, 50, 12]),
    "gone category": ([100, 200, 30], [40, 50, 0]),
    "two categories": ([510, 490], [420, 580]),
    "one small count": ([1, 1000, 1000], [0, 40, 60]),
}


@pytest.mark.parametrize("counts", list(_COUNTS.values()), ids=list(_COUNTS))
def test_chi_square_equals_scipys_contingency_test(counts: tuple[list[int], list[int]]) -> None:
    expected, actual = np.array(counts[0]), np.array(counts[1])
    ours = chi2_counts(expected, actual)
    theirs = stats.chi2_contingency(np.vstack([expected, actual]), correction=False)
    assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-15)
    assert ours.dof == theirs.dof


def test_chi_square_of_one_category_or_none() -> None:
    one = chi2_counts(np.array([50, 0]), np.array([7, 0]))
    theirs = stats.chi2_contingency([[50], [7]], correction=False)
    assert (one.statistic, one.p_value, one.dof) == (theirs.statistic, theirs.pvalue, 0)
    assert np.isnan(chi2_counts(np.array([5, 5]), np.zeros(2)).statistic)


@pytest.mark.parametrize("counts", list(_COUNTS.values()), ids=list(_COUNTS))
def test_jensen_shannon_equals_scipys(counts: tuple[list[int], list[int]]) -> None:
    distance = pytest.importorskip("scipy.spatial.distance")
    p, q = np.array(counts[0]), np.array(counts[1])
    assert jensenshannon(p, q) == pytest.approx(distance.jensenshannon(p, q, base=2), abs=1e-12)


def test_jensen_shannon_of_disjoint_and_empty_counts() -> None:
    assert jensenshannon(np.array([3, 0]), np.array([0, 9])) == 1.0
    assert np.isnan(jensenshannon(np.zeros(3), np.ones(3)))


def _reference_psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI as the textbook writes it, bin by bin."""
    total = 0.0
    for e, a in zip(expected / expected.sum(), actual / actual.sum(), strict=True):
        e, a = max(e, 1e-4), max(a, 1e-4)
        total += (a - e) * np.log(a / e)
    return float(total)


def test_psi_on_the_reference_deciles_equals_the_textbook_sum(rng: np.random.Generator) -> None:
    reference, window = rng.gamma(2, size=20_000), rng.gamma(2.3, size=5_000)
    edges = quantile_edges(reference)
    expected, actual = bin_counts(reference, edges), bin_counts(window, edges)
    assert len(edges) == 9 and expected.sum() == 20_000 and actual.sum() == 5_000
    assert np.all(np.abs(expected - 2_000) <= 1)  # deciles: equal shares of the reference
    assert psi(expected, actual) == pytest.approx(_reference_psi(expected, actual), rel=1e-12)
    assert psi(expected, np.r_[actual[:-1], 0]) > psi(expected, actual)  # an empty bin counts


@pytest.mark.parametrize("edges", [1, 9, 32, 33, 200])
def test_bin_counts_put_a_value_on_an_edge_above_it(rng: np.random.Generator, edges: int) -> None:
    values = rng.integers(0, 50, 10_000).astype(float)  # many values sit on an edge
    cuts = np.unique(rng.integers(0, 50, edges).astype(float))
    expected = np.bincount(np.digitize(values, cuts), minlength=len(cuts) + 1)
    assert bin_counts(values, cuts).tolist() == expected.tolist()
