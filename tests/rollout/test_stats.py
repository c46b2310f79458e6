"""The distributions the rollout analysis tests with, against SciPy's (a server has none)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplan.rollout._stats import binomial_cdf, binomial_sf, chi2_sf, normal_sf

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
