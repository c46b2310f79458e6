"""The few distributions the rollout analysis tests with, exact or by their classic series:
a rollout runs on a server with the serving extra, which has no SciPy (tests compare every
function here with SciPy's)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["binomial_cdf", "binomial_sf", "chi2_sf", "normal_sf"]


def _binomial_log_pmf(n: int, p: float) -> np.ndarray:
    """log P(X = k) for k = 0..n, X ~ Binomial(n, p), 0 < p < 1."""
    k = np.arange(1, n + 1, dtype=np.float64)
    log_choose = np.concatenate([[0.0], np.cumsum(np.log((n - k + 1) / k))])
    ks = np.arange(n + 1, dtype=np.float64)
    out: np.ndarray = log_choose + ks * math.log(p) + (n - ks) * math.log1p(-p)
    return out


def _log_sum(values: np.ndarray) -> float:
    if not values.size:
        return -math.inf
    top = float(values.max())
    return top + math.log(float(np.exp(values - top).sum()))


def binomial_sf(x: int, n: int, p: float) -> float:
    """P(X >= x) for X ~ Binomial(n, p).

    Examples
    --------
    >>> round(binomial_sf(5, 100, 0.02), 4)
    0.0508
    """
    if x <= 0:
        return 1.0
    if x > n:
        return 0.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    return min(1.0, math.exp(_log_sum(_binomial_log_pmf(n, p)[x:])))


def binomial_cdf(x: int, n: int, p: float) -> float:
    """P(X <= x) for X ~ Binomial(n, p)."""
    return 1.0 - binomial_sf(x + 1, n, p) if x < n else 1.0


def normal_sf(z: float) -> float:
    """P(Z >= z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for X ~ chi-square with ``df`` degrees of freedom: the regularized upper
    incomplete gamma function Q(df/2, x/2), by its series below a+1 and its continued
    fraction above (Numerical Recipes, 6.2).

    Examples
    --------
    >>> round(chi2_sf(3.841458820694124, 1), 6)
    0.05
    """
    a, z = df / 2.0, x / 2.0
    if z <= 0:  # x / 2 underflows for the smallest x too
        return 1.0
    log_front = -z + a * math.log(z) - math.lgamma(a)
    if z < a + 1:
        term = total = 1.0 / a
        denominator = a
        for _ in range(10_000):
            denominator += 1
            term *= z / denominator
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = z + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * h)
