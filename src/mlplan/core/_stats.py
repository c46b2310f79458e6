"""The statistics every stage shares, pure numpy (no SciPy: a server has the serving extra
only; tests compare every function here with SciPy's on the same data).

- Distributions the tests need: binomial tails, normal and chi-square upper tails, and the
  two-sided Kolmogorov–Smirnov distribution (Simard & L'Ecuyer's choice of method, as SciPy's
  ``kstwo``).
- Drift between a reference and a current sample:

  - :func:`psi`, the population stability index of two count vectors over the same bins:
    sum of (a - e) ln(a / e) over the bins' shares, each share floored at :data:`PSI_FLOOR`
    (1e-4) so that an empty bin counts as large but finite. Numbers are binned at the
    reference's deciles (:func:`quantile_edges`, :func:`bin_counts`); callers add a bin for
    missing values where they count them.
  - :func:`ks_2samp`, the two-sample Kolmogorov–Smirnov test with SciPy's asymptotic p-value
    (``scipy.stats.ks_2samp(a, b, method="asymp")``), and :func:`ks_weighted`, the same test
    against a reference given as weighted values (exact counts, or quantiles with the rows
    each stands for, or a sketch's retained items): with a summary whose CDF is within ε of
    the reference's at every point (its rank error), the statistic is within ε of the exact
    one.
  - :func:`chi2_counts`, the chi-square test of homogeneity of two count vectors over the
    same categories (``scipy.stats.chi2_contingency`` on the 2×k table, without Yates'
    correction): both the reference and the window are samples, and a category the reference
    never saw has a finite expected count here, where a goodness-of-fit test (``chisquare``
    with the reference's shares as exact) would divide by zero.
  - :func:`jensenshannon`, the Jensen–Shannon distance in base 2 (0 to 1), as
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "PSI_FLOOR",
    "KSResult",
    "TestResult",
    "bin_counts",
    "binomial_cdf",
    "binomial_sf",
    "chi2_counts",
    "chi2_sf",
    "jensenshannon",
    "kolmogorov_sf",
    "ks_2samp",
    "ks_weighted",
    "normal_sf",
    "psi",
    "quantile_edges",
]


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


# -- drift -------------------------------------------------------------------------------------

PSI_FLOOR = 1e-4
"""The least share a bin counts with in :func:`psi` (an empty bin: large but finite)."""


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """The population stability index of ``actual`` against ``expected`` (counts of the same
    bins): sum of (a - e) ln(a / e) over their shares, each share floored at
    :data:`PSI_FLOOR`. Symmetric, 0 for the same shares.

    Examples
    --------
    >>> round(psi(np.array([50, 50]), np.array([50, 50])), 6)
    0.0
    >>> round(psi(np.array([90, 10]), np.array([50, 50])), 3)
    0.879
    """
    e = np.maximum(np.asarray(expected, np.float64) / max(float(np.sum(expected)), 1), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, np.float64) / max(float(np.sum(actual)), 1), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def quantile_edges(values: np.ndarray, bins: int = 10) -> np.ndarray:
    """The inner edges that cut ``values`` (finite numbers) into ``bins`` bins of equal
    shares: its quantiles at 1/bins, 2/bins, ... (linear interpolation, as ``np.quantile``),
    repeated edges merged; none for no values.

    Examples
    --------
    >>> quantile_edges(np.arange(101.0), bins=4).tolist()
    [25.0, 50.0, 75.0]
    >>> quantile_edges(np.ones(10)).tolist()
    [1.0]
    """
    if not len(values):
        return np.zeros(0)
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """How many ``values`` fall in each of the ``len(edges) + 1`` bins the sorted inner
    ``edges`` make; a value equal to an edge goes in the bin above it.

    Examples
    --------
    >>> bin_counts(np.array([0.0, 1.0, 1.5, 3.0]), np.array([1.0, 2.0])).tolist()
    [1, 2, 1]
    """
    values = np.asarray(values)
    edges = np.asarray(edges)
    if len(edges) <= _FEW_EDGES:  # a pass per edge: 6x faster than a search per value
        above = [np.count_nonzero(values >= edge) for edge in edges]
        counts: np.ndarray = -np.diff(np.r_[len(values), above, 0]).astype(np.int64)
        return counts
    at = np.searchsorted(edges, values, side="right")
    return np.bincount(at, minlength=len(edges) + 1).astype(np.int64)


_FEW_EDGES = 32


class TestResult:
    """A test's statistic and p-value (None where none applies), and the degrees of freedom
    of a chi-square test."""

    __test__ = False  # not a pytest class

    __slots__ = ("dof", "p_value", "statistic")

    def __init__(self, statistic: float, p_value: float | None, dof: int | None = None) -> None:
        self.statistic = statistic
        self.p_value = p_value
        self.dof = dof

    def __repr__(self) -> str:
        return f"TestResult(statistic={self.statistic!r}, p_value={self.p_value!r})"


class KSResult(TestResult):
    """A Kolmogorov–Smirnov test: the statistic (the largest gap between the two CDFs), its
    p-value, and where the gap is largest (``location``)."""

    __slots__ = ("location",)

    def __init__(self, statistic: float, p_value: float, location: float) -> None:
        super().__init__(statistic, p_value)
        self.location = location


def ks_2samp(a: np.ndarray, b: np.ndarray) -> KSResult:
    """The two-sample Kolmogorov–Smirnov test of ``a`` against ``b``, with the asymptotic
    p-value: ``scipy.stats.ks_2samp(a, b, method="asymp")`` on the values that are not NaN
    (missing values are counted apart). An empty sample gives NaN.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> result = ks_2samp(rng.normal(size=2000), rng.normal(0.2, size=1000))
    >>> round(result.statistic, 4), result.p_value < 0.001
    (0.0795, True)
    """
    a = np.asarray(a, np.float64)
    a = np.sort(a[~np.isnan(a)])
    return ks_weighted(b, a, np.ones(len(a)), rows=len(a))


def ks_weighted(
    sample: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray,
    *,
    rows: int | None = None,
) -> KSResult:
    """The Kolmogorov–Smirnov test of ``sample`` (NaN left out) against a reference given
    as sorted ``values`` with ``weights`` (how many reference rows each stands for: exact
    counts, or quantiles, or a sketch's retained items), drawn from ``rows`` reference rows
    (default: the weights' sum). With exact counts it equals :func:`ks_2samp` on the rows
    themselves; with a summary of rank error ε the statistic is within ε of that.

    The statistic is the largest gap between the two CDFs at any value of either; the p-value
    is SciPy's asymptotic one for samples of ``len(sample)`` and ``rows`` rows.
    """
    sample = np.asarray(sample, np.float64)
    sample = np.sort(sample[~np.isnan(sample)])
    values = np.asarray(values, np.float64)
    weights = np.asarray(weights, np.float64)
    n, total = len(sample), float(weights.sum())
    if not n or total <= 0:
        return KSResult(math.nan, math.nan, math.nan)
    points = np.concatenate([values, sample])
    reference_cdf = (
        np.concatenate([[0.0], np.cumsum(weights)])[np.searchsorted(values, points, side="right")]
        / total
    )
    sample_cdf = np.searchsorted(sample, points, side="right") / n
    gaps = reference_cdf - sample_cdf
    low, high = int(np.argmin(gaps)), int(np.argmax(gaps))
    # as SciPy picks it: the larger of the two one-sided gaps, the positive one on a tie
    below, above = max(-float(gaps[low]), 0.0), float(gaps[high])
    statistic, at = (below, low) if below > above else (above, high)
    m = float(rows if rows is not None else total)
    big, small = max(m, float(n)), min(m, float(n))
    en = round(big * small / (big + small))
    p_value = kolmogorov_sf(statistic, max(en, 1))
    return KSResult(statistic, p_value, float(points[at]))


def chi2_counts(expected: np.ndarray, actual: np.ndarray) -> TestResult:
    """The chi-square test of homogeneity of two count vectors over the same categories:
    ``scipy.stats.chi2_contingency([expected, actual], correction=False)``, categories that
    neither holds left out. Fewer than two categories: statistic 0, p-value 1; an empty
    vector: NaN.

    Examples
    --------
    >>> result = chi2_counts(np.array([50, 50]), np.array([30, 70]))
    >>> round(result.statistic, 3), round(result.p_value, 4), result.dof
    (8.333, 0.0039, 1)
    """
    table = np.vstack([np.asarray(expected, np.float64), np.asarray(actual, np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    rows = table.sum(axis=1)
    if not (rows > 0).all():
        return TestResult(math.nan, math.nan, None)
    dof = table.shape[1] - 1
    if dof < 1:
        return TestResult(0.0, 1.0, 0)
    fitted = np.outer(rows, table.sum(axis=0)) / rows.sum()
    statistic = float(np.sum((table - fitted) ** 2 / fitted))
    return TestResult(statistic, chi2_sf(statistic, dof), dof)


def jensenshannon(p: np.ndarray, q: np.ndarray) -> float:
    """The Jensen–Shannon distance of two count (or share) vectors over the same bins, base
    2 (0: the same shares; 1: no bin in common): ``scipy.spatial.distance.jensenshannon(p,
    q, base=2)``. An empty vector gives NaN.

    Examples
    --------
    >>> jensenshannon(np.array([1, 0]), np.array([0, 1]))
    1.0
    >>> jensenshannon(np.array([5, 5]), np.array([1, 1]))
    0.0
    """
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    p_total, q_total = float(p.sum()), float(q.sum())
    if p_total <= 0 or q_total <= 0:
        return math.nan
    p, q = p / p_total, q / q_total
    m = (p + q) / 2
    divergence = _relative_entropy(p, m) + _relative_entropy(q, m)
    return float(math.sqrt(max(divergence / math.log(2), 0.0) / 2))


def _relative_entropy(p: np.ndarray, m: np.ndarray) -> float:
    """sum of p ln(p / m) over the bins where p > 0 (there m > 0 too)."""
    held = p > 0
    return float(np.sum(p[held] * np.log(p[held] / m[held])))


# -- the Kolmogorov distribution -----------------------------------------------------------------
# P(D_n >= x) for the two-sided one-sample statistic D_n, as SciPy's ``kstwo.sf`` computes it
# (scipy/stats/_ksstats.py, BSD-3-Clause): Simard & L'Ecuyer (2011) choose, by n and n x²,
# among Ruben–Gambino's exact corners, twice the one-sided tail (Smirnov's exact sum, Birnbaum
# and Tingey 1951) where the two tails cannot meet or hardly matter, Durbin's matrix (as
# Marsaglia, Tsang and Wang 2003 compute it) and Pelz–Good's approximation. SciPy uses
# Pomeranz's recursion for small n where Durbin's matrix is as exact; it is left out here.

_SCALE = 2.0**128


def kolmogorov_sf(x: float, n: int) -> float:
    """P(D_n >= x) for the two-sided Kolmogorov–Smirnov statistic of ``n`` rows (SciPy's
    ``kstwo.sf(x, n)``); NaN for NaN.

    Examples
    --------
    >>> round(kolmogorov_sf(0.1, 100), 4)
    0.2527
    """
    if math.isnan(x):
        return math.nan
    if x >= 1.0:
        return 0.0
    if x <= 0.0:
        return 1.0
    t = n * x
    if t <= 1.0:  # Ruben-Gambino: 1/2n <= x <= 1/n
        if t <= 0.5:
            return 1.0
        log_p = _log_factorial_over_power(n) + n * math.log(2 * t - 1)
        return _clip(1.0 - math.exp(log_p))
    if t >= n - 1:  # Ruben-Gambino
        return _clip(2 * (1.0 - x) ** n)
    if x >= 0.5:  # the two tails cannot both be reached
        return _clip(2 * _smirnov(n, x))
    nxx = t * x
    if n <= 140:
        if nxx <= 4:
            return _clip(1.0 - _durbin(n, x))
        return _clip(2 * _smirnov(n, x))
    if nxx >= 370.0:
        return 0.0
    if nxx >= 2.2:
        return _clip(2 * _smirnov(n, x))
    if n <= 100_000 and n * x**1.5 <= 1.4:
        return _clip(1.0 - _durbin(n, x))
    return _clip(1.0 - _pelz_good(n, x))


def _clip(p: float) -> float:
    return min(max(p, 0.0), 1.0)


def _log_factorial_over_power(n: int) -> float:
    """log(n! / n**n)."""
    return math.lgamma(n + 1) - n * math.log(n)


def _smirnov(n: int, x: float) -> float:
    """P(D_n+ >= x), the one-sided tail, by Birnbaum and Tingey's exact sum:
    x sum_j C(n, j) (1 - x - j/n)^(n-j) (x + j/n)^(j-1), j = 0..floor(n(1-x)), in logs."""
    top = math.floor(n * (1 - x) + 1e-12)
    j = np.arange(top + 1, dtype=np.float64)
    log_choose = np.concatenate([[0.0], np.cumsum(np.log((n - j[1:] + 1) / j[1:]))])
    rest = 1 - x - j / n
    positive = rest > 0
    with np.errstate(divide="ignore"):
        log_rest = np.where(positive, np.log(np.where(positive, rest, 1.0)), -np.inf)
    terms = log_choose + (n - j) * log_rest + (j - 1) * np.log(x + j / n)
    if (~positive).any():  # rest == 0: 0**(n - j) is 1 only where j == n
        terms = np.where(~positive & (j == n), log_choose + (j - 1) * np.log(x + j / n), terms)
    finite = terms[np.isfinite(terms)]
    if not finite.size:
        return 0.0
    peak = float(finite.max())
    return x * math.exp(peak) * float(np.exp(finite - peak).sum())


def _durbin(n: int, d: float) -> float:
    """P(D_n < d) by Durbin's matrix, as Marsaglia, Tsang and Wang compute it."""
    k = math.ceil(n * d)
    h = k - n * d
    m = 2 * k - 1
    steps = np.arange(1, m + 1)
    factorials = np.concatenate([[1.0], np.cumprod(1.0 / steps)])  # 1/j!, j = 0..m
    v = (1.0 - h**steps) * factorials[1:]
    v[-1] = (1.0 + max(2 * h - 1.0, 0) ** m - 2 * h**m) * factorials[m]
    matrix = np.zeros((m, m))
    for i in range(1, m):
        matrix[i - 1 :, i] = factorials[: m - i + 1]
    matrix[:, 0] = v
    matrix[-1, :] = v[::-1]
    power = np.eye(m)
    exponent = power_exponent = 0
    left = n
    while left > 0:
        if left % 2:
            power = power @ matrix
            exponent += power_exponent
        matrix = matrix @ matrix
        power_exponent *= 2
        if abs(matrix[k - 1, k - 1]) > _SCALE:
            matrix /= _SCALE
            power_exponent += 128
        left //= 2
    p = float(power[k - 1, k - 1])
    for i in range(1, n + 1):  # times n! / n**n, kept in range
        p = i * p / n
        if abs(p) < 1 / _SCALE:
            p *= _SCALE
            exponent -= 128
    return math.ldexp(p, exponent)


def _pelz_good(n: int, x: float) -> float:
    """P(D_n <= x) by Pelz and Good's approximation (1976)."""
    z = math.sqrt(n) * x
    z2, z3, z4, z6 = z**2, z**3, z**4, z**6
    log_q = -(math.pi**2) / 8 / z2
    if log_q < -708:
        return 0.0
    q = math.exp(log_q)
    pi2, pi4, pi6 = math.pi**2, math.pi**4, math.pi**6
    k1a, k1b = -z2, pi2 / 4
    k2a, k2b, k2c = 6 * z6 + 2 * z4, (2 * z4 - 5 * z2) * pi2 / 4, pi4 * (1 - 2 * z2) / 16
    k3d = pi6 * (5 - 30 * z2) / 64
    k3c = pi4 * (-60 * z2 + 212 * z4) / 16
    k3b = pi2 * (135 * z4 - 96 * z6) / 4
    k3a = -30 * z6 - 90 * z**8
    sums = np.zeros(4)
    top = math.ceil(16 * z / math.pi)
    for k in range(top, 0, -1):  # Horner in q^(8k) over the odd integers
        m = 2 * k - 1
        m2, m4, m6 = m**2, m**4, m**6
        sums *= q ** (8 * k)
        sums += np.array(
            [
                1.0,
                k1a + k1b * m2,
                k2a + k2b * m2 + k2c * m4,
                k3a + k3b * m2 + k3c * m4 + k3d * m6,
            ]
        )
    sums *= q * math.sqrt(2 * math.pi)
    sums /= np.array([z, 6 * z4, 72 * z**7, 6480 * z**10])
    q = math.exp(-pi2 / 2 / z2)
    ks = np.arange(top, 0, -1, dtype=np.float64)
    powers = q ** (ks**2)
    sums[2] += float(np.sum(ks**2 * powers)) * pi2 * math.sqrt(2 * math.pi) / (-36 * z3)
    root3z = math.sqrt(3) * z
    spread = (root3z + math.pi * ks) * (root3z - math.pi * ks) * ks**2 * powers
    sums[3] += float(np.sum(spread)) * pi2 * math.sqrt(2 * math.pi) / (216 * z6)
    sums /= np.power(float(n), np.arange(4) / 2.0)
    return float(sums.sum())
