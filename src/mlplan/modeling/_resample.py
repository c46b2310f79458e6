"""The bootstrap: every metric of a group of rows over many resamples, in batches of weights.

A resample is a weight per row (how many times it is drawn), so a batch of ``b`` resamples is
one ``b x m`` weight matrix, and every metric comes from it without materialising a row:

- **Counts.** Confusion counts are sums of weights over (true, predicted) cells. The rows
  are ordered so that each cell (and each ECE bin) is a few runs, summed run by run
  (``np.add.reduceat``); for a binary model ranked by score with labels from a threshold,
  they are differences of the running counts the ranking makes anyway. Otherwise one
  weighted ``np.bincount`` a draw.
- **Means.** Log loss, Brier, MAE, RMSE, MAPE and R² read weighted sums of per-row values:
  one matrix-vector product per value for the whole batch.
- **Ranks.** ROC AUC and average precision come from rows sorted by score *once*: each
  draw's drawn positives and drawn rows counted down the ranking (integer ``np.cumsum``,
  exact), a block of columns at a time so that the counts stay in the cache; a run of
  tied scores counts as one step, read at the run's ends, as in scikit-learn.

Why Poisson(1) weights rather than a multinomial draw of ``m`` rows: the weights of
different rows are independent, so a batch is one table lookup on random bits (16 bits a
weight; the rare values that straddle a break of the Poisson CDF take 53 more bits), with no
``m`` random indices to draw and count per resample (the old algorithm spent most of its
time there, and gathered and measured the resampled rows again). This is the Poisson
bootstrap (Hanley & MacGibbon 2006; Chamandy et al. 2012): the resample size varies around
``m`` (by ``√m``), and every metric we report is a ratio or a mean, so its draws have the
multinomial bootstrap's spread up to terms of order ``1/m``; a test at a fixed seed compares
the intervals with explicit row resampling for every metric, overall and per slice.

Streams: the weights of a group depend only on the seed, the group's key, the number of its
rows and the batch; so a group's intervals do not change when another slice is added, and
two models scored on the same rows with the same key see the same resamples (a paired
bootstrap: ``evaluate``'s regressions against the older system). Batches hold at most
``_BATCH`` weights, so memory stays flat however many rows and resamples.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from math import exp, factorial
from typing import NamedTuple

import numpy as np

from mlplan.modeling._metrics import (
    _EPS,
    _RANKING,
    ECE_BINS,
    NEEDS_PROBA,
    Predictions,
    _divide,
    _from_confusion,
)

__all__ = ["bootstrap", "ordered_for_resampling"]

# Weights in one batch (draws x rows): 2 MB of uint8; the running counts are int32 (8 MB).
_BATCH = 2_000_000
# Weights of a batch swept down a ranking at a time: the running counts (int32) and the
# precisions (float32) of a block stay in the cache (1 MB each, not 8 MB), and a block is
# big enough that its two dozen calls cost little (65,536 were 10% slower, 2M twice).
_CACHED = 262144
_MIN_COLUMNS = 4096
# Counts below which a count times a weight (a byte) fits int32.
_PRODUCTS = 2**31 // 256
# Runs few enough to sum ECE gaps by one dot product a run.
_DOTS = 64
# Rows a float32 sum adds in order before the partial sums go to float64.
_BLOCK = 65536
# Labels that change at most this often along a group's rows are summed run by run.
_RUNS = 512


def _poisson_breaks() -> np.ndarray:
    """The Poisson(1) CDF at 0, 1, 2, ...: a uniform ``u`` draws the number of breaks <= u."""
    breaks, total, k = [], 0.0, 0
    while 1.0 - total > 2.0**-60 and k < 40:
        total += exp(-1.0) / factorial(k)
        breaks.append(total)
        k += 1
    return np.asarray(breaks)


_BREAKS = _poisson_breaks()


# A table entry for a prefix that a break of the CDF falls inside.
_STRADDLE = 255


def _lookup_table() -> np.ndarray:
    """The weight of every 16-bit prefix of a uniform, or ``_STRADDLE`` where a break falls
    inside it: 64 KB of uint8, which stays in the L1 cache while a batch is looked up."""
    low = np.arange(65536) / 65536.0
    first = np.searchsorted(_BREAKS, low, side="right")
    last = np.searchsorted(_BREAKS, low + 1 / 65536.0, side="left")
    return np.where(first == last, first, _STRADDLE).astype(np.uint8)


_TABLE = _lookup_table()


def _stream(seed: int, key: str, batch: int) -> np.random.Generator:
    # Each group (key) and batch draws from its own stream.
    return np.random.default_rng([seed, zlib.crc32(key.encode()), batch])


def _weights(rng: np.random.Generator, b: int, m: int) -> np.ndarray:
    """A ``b x m`` matrix of independent Poisson(1) weights (uint8: P(w > 40) < 2^-60)."""
    size = b * m
    bits = rng.bit_generator.random_raw((size + 3) // 4).view(np.uint16)[:size]
    weights = np.take(_TABLE, bits)  # faster than _TABLE[bits] (1.8 ns a weight, not 2.8)
    straddle = np.flatnonzero(weights == _STRADDLE)
    if straddle.size:
        fine = (bits[straddle] + rng.random(straddle.size)) / 65536.0
        weights[straddle] = np.searchsorted(_BREAKS, fine, side="right")
    return weights.reshape(b, m)


def _batch_sizes(m: int, n_boot: int) -> list[int]:
    """How many of ``n_boot`` resamples of ``m`` rows each batch holds."""
    per_batch = max(1, _BATCH // m)
    return [min(per_batch, n_boot - start) for start in range(0, n_boot, per_batch)]


def _batches(m: int, n_boot: int, seed: int, key: str) -> Iterator[np.ndarray]:
    """The weight matrices of ``n_boot`` resamples of ``m`` rows, batch by batch."""
    for batch, b in enumerate(_batch_sizes(m, n_boot)):
        yield _weights(_stream(seed, key, batch), b, m)


@dataclass(frozen=True)
class _Runs:
    """A per-row label (a confusion cell, an ECE bin) that changes seldom along the rows:
    where each run starts, and each run's label as a one-hot row."""

    starts: np.ndarray
    onehot: np.ndarray
    n: int

    @classmethod
    def of(cls, labels: np.ndarray, n_labels: int) -> _Runs | None:
        """The runs of ``labels``, or None when there are too many to sum run by run."""
        if not len(labels):
            return None
        starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
        if len(starts) > _RUNS:
            return None
        return cls(starts, np.eye(n_labels)[labels[starts]], len(labels))

    def sums(self, x: np.ndarray) -> np.ndarray:
        """Each label's sum of ``x`` per draw (draws x labels)."""
        dtype = np.int64 if x.dtype.kind in "iu" else None  # uint8 weights would wrap
        summed: np.ndarray = np.add.reduceat(x, self.starts, axis=1, dtype=dtype) @ self.onehot
        return summed

    def dots(self, x: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Each label's sum of ``x`` times ``values`` per draw (draws x labels): a dot
        product a run, float32 a block at a time (see :func:`_blockwise`)."""
        ends = self.ends + 1
        per_run = [
            _blockwise(x[:, s:e], values[s:e], e - s)
            for s, e in zip(self.starts.tolist(), ends.tolist(), strict=True)
        ]
        summed: np.ndarray = np.stack(per_run, axis=1) @ self.onehot
        return summed

    @property
    def ends(self) -> np.ndarray:
        """Where each run ends (its last position)."""
        ends: np.ndarray = np.r_[self.starts[1:], self.n] - 1
        return ends

    def from_running(self, at_ends: np.ndarray) -> np.ndarray:
        """The same sums from the running totals of ``x`` along the rows, read at
        :attr:`ends` (draws x runs)."""
        summed: np.ndarray = np.diff(at_ends, axis=1, prepend=0.0) @ self.onehot
        return summed


def _label_sums(x: np.ndarray, labels: np.ndarray, runs: _Runs | None, n_labels: int) -> np.ndarray:
    """Each label's sum of ``x`` per draw: run by run, else one weighted count a draw."""
    if runs is not None:
        return runs.sums(x)
    return np.stack([np.bincount(labels, weights=row, minlength=n_labels) for row in x])


@dataclass(frozen=True)
class _Ranking:
    """Rows of a group ranked by one score, highest first: ``order`` (positions in the
    group; None when they come in that order) and 1 for a positive row; where scores
    tie, 1 for the rows outside any tie (``alone``) and each run of ties' last position and
    the one before its first (``last``, ``before``: -1 at the top)."""

    order: np.ndarray | None
    positive: np.ndarray
    alone: np.ndarray | None = None
    last: np.ndarray | None = None
    before: np.ndarray | None = None
    readings: dict[bytes | None, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, compare=False, repr=False
    )
    """The positions each batch's sweep reads, per set of points asked for (made once)."""

    @classmethod
    def of(cls, score: np.ndarray, positive: np.ndarray) -> _Ranking:
        """Sort once; no order is kept when the rows are already ranked."""
        descending = bool(np.all(score[1:] <= score[:-1]))
        order = None if descending else np.argsort(-score, kind="stable")
        ranked = score if order is None else score[order]
        flags = (positive if order is None else positive[order]).astype(np.uint8)
        same = ranked[1:] == ranked[:-1]
        if not same.any():
            return cls(order, flags)
        m = len(ranked)
        starts = np.flatnonzero(np.r_[True, ~same])
        ends = np.r_[starts[1:], m] - 1
        runs = ends > starts
        alone = np.ones(m, dtype=np.uint8)
        alone[np.flatnonzero(np.r_[same, False] | np.r_[False, same])] = 0
        return cls(order, flags, alone, ends[runs], starts[runs] - 1)

    def draws(
        self, weights: np.ndarray, names: Sequence[str], points: np.ndarray | None = None
    ) -> tuple[dict[str, np.ndarray], _Sweep]:
        """ROC AUC and/or average precision of each row of ``weights``, and the sweep down
        the ranking that gave them (its running counts also read at ``points``: positions
        in the ranking, sorted).

        Down the ranking, ``above`` counts the drawn positives so far and ``seen`` every
        drawn row, in integers (exact). A run of tied scores counts as one step, as in
        scikit-learn: its negatives meet the positives above the run and half of those in
        it; its positives take the precision at its end.
        """
        w = weights if self.order is None else weights[:, self.order]
        ties = self.alone is not None
        wanted, where = self._reading(points)
        sweep = self.sweep(w, names, wanted)
        p_total = sweep.above.astype(np.float64)
        n_total = sweep.seen - p_total
        if ties:
            assert self.last is not None
            runs = len(self.last)
            at_last, at_before = where[-2 * runs : -runs], where[-runs:]
            end_above = sweep.above_at[:, at_last]
            end_seen = sweep.seen_at[:, at_last]
            run_above = end_above - sweep.above_at[:, at_before]
            run_seen = end_seen - sweep.seen_at[:, at_before]
        out = {}
        with np.errstate(divide="ignore", invalid="ignore"):
            if "roc_auc" in names:
                pairs = sweep.pairs.astype(np.float64)
                if ties:
                    run_neg = run_seen - run_above
                    pairs += np.sum(run_neg * (end_above - 0.5 * run_above), axis=1)
                auc = pairs / (p_total * n_total)
                out["roc_auc"] = np.where((p_total > 0) & (n_total > 0), auc, np.nan)
            if "pr_auc" in names:
                summed = sweep.precision.copy()
                if ties:
                    summed += np.sum(run_above * end_above / np.maximum(end_seen, 1.0), axis=1)
                out["pr_auc"] = np.where(p_total > 0, summed / p_total, np.nan)
        if points is not None:
            keep = where[: len(points)]
            sweep = sweep._replace(above_at=sweep.above_at[:, keep], seen_at=sweep.seen_at[:, keep])
        return out, sweep

    def _reading(self, points: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The positions a sweep reads, sorted: ``points``, and where scores tie each run's
        end and the position before it starts (-1 at the top: nothing above); and where
        each of those is among them."""
        key = None if points is None else points.tobytes()
        if key not in self.readings:
            extra = np.zeros(0, np.int64) if points is None else points
            if self.last is not None and self.before is not None:
                extra = np.concatenate([extra, self.last, self.before])
            self.readings[key] = np.unique(extra, return_inverse=True)
        return self.readings[key]

    def sweep(self, w: np.ndarray, names: Sequence[str], points: np.ndarray) -> _Sweep:
        """One pass down the ranking over ``w`` (the weights in the ranking's order), a
        block of columns at a time so that the running counts stay in the cache: the
        counts at ``points`` (sorted; -1 reads 0), each drawn negative (outside a tie)
        times the drawn positives above it, and each drawn positive (outside a tie) at
        the precision of its rank, summed."""
        b, m = w.shape
        above_at = np.zeros((b, len(points)))
        seen_at = np.zeros((b, len(points)))
        pairs = np.zeros(b, np.int64)
        precision = np.zeros(b)
        carry_above = np.zeros((b, 1), np.int32)
        carry_seen = np.zeros((b, 1), np.int32)
        width = max(_MIN_COLUMNS, _CACHED // b)
        bounds = np.searchsorted(points, np.arange(0, m + width, width))
        for block, s in enumerate(range(0, m, width)):
            e = min(s + width, m)
            drawn = w[:, s:e]
            pos = drawn * self.positive[s:e]
            opened = bool(carry_seen.min() > 0)
            alone = None if self.alone is None else self.alone[s:e]
            above = np.cumsum(pos, axis=1, dtype=np.int32)
            above += carry_above
            seen = np.cumsum(drawn, axis=1, dtype=np.int32)
            seen += carry_seen
            carry_above, carry_seen = above[:, -1:].copy(), seen[:, -1:].copy()
            here = slice(bounds[block], bounds[block + 1])
            local = points[here] - s
            above_at[:, here] = above[:, local]
            seen_at[:, here] = seen[:, local]
            if "roc_auc" in names:
                # Each drawn negative against the drawn positives above it.
                neg = drawn - pos
                if alone is not None:
                    neg *= alone
                if int(carry_above.max()) < _PRODUCTS:
                    # Products of a weight and a count fit int32: one pass, summed in int64.
                    pairs += np.multiply(neg, above).sum(axis=1, dtype=np.int64)
                else:
                    pairs += np.einsum("ij,ij->i", neg, above, dtype=np.int64)
            if "pr_auc" in names:
                ratio = above.astype(np.float32)
                scale = seen.astype(np.float32)
                if not opened:
                    # Nothing drawn yet at the top: no row there to weigh, but no 0 / 0.
                    np.maximum(scale, 1.0, out=scale)
                ratio /= scale
                # The positives' weights (bytes) as they are, or times ``alone``.
                ratio *= pos if alone is None else pos * alone
                precision += ratio.sum(axis=1)  # pairwise in float32, blocks in float64
        return _Sweep(carry_above[:, 0], carry_seen[:, 0], above_at, seen_at, pairs, precision)


class _Sweep(NamedTuple):
    """One pass of a batch down a ranking: the drawn positives and rows in all
    (``above``, ``seen``), the same counted down to chosen points (``above_at``,
    ``seen_at``), and the pair and precision sums of the rows outside a tie."""

    above: np.ndarray
    seen: np.ndarray
    above_at: np.ndarray
    seen_at: np.ndarray
    pairs: np.ndarray
    precision: np.ndarray


@dataclass(frozen=True)
class _Group:
    """A group's rows prepared once for every batch of resamples: the per-row values whose
    weighted sums give the metrics, the labels summed by run, and the rankings."""

    data: Predictions
    names: tuple[str, ...]
    dense: dict[str, np.ndarray]
    cells: np.ndarray | None = None
    cell_runs: _Runs | None = None
    predicted_runs: _Runs | None = None
    gap: np.ndarray | None = None
    bins: np.ndarray | None = None
    bin_runs: _Runs | None = None
    rankings: tuple[_Ranking, ...] = ()

    @classmethod
    def of(cls, data: Predictions, rows: np.ndarray, names: Sequence[str]) -> _Group:
        """Read the rows' values once."""
        names = tuple(names)
        if data.kind == "regression":
            return cls(data, names, _regression_values(data, rows))
        k = data.k
        y, p = data.y[rows], data.p[rows]
        cells = y * k + p
        probability = data.proba is not None
        dense: dict[str, np.ndarray] = {
            n: data.row_array(n)[rows].astype(np.float32)
            for n in ("log_loss", "brier")
            if n in names and probability
        }
        gap = bins = bin_runs = None
        if "ece" in names and probability:
            gap = data.row_array("ece_gap")[rows].astype(np.float32)
            bins = data.row_array("ece_bin")[rows]
            bin_runs = _Runs.of(bins, ECE_BINS)
        rankings: tuple[_Ranking, ...] = ()
        if probability and any(n in _RANKING for n in names):
            proba = data.proba
            assert proba is not None
            if data.kind == "binary":
                rankings = (_Ranking.of(proba[rows, data.positive], y == data.positive),)
            else:
                rankings = tuple(_Ranking.of(proba[rows, j], y == j) for j in range(data.scored))
        cell_runs = _Runs.of(cells, k * k)
        predicted_runs = None
        if cell_runs is None and k == 2 and rankings and rankings[0].order is None:
            # Ranked rows with labels from a threshold: the predicted class changes once,
            # and the true one is read from the ranking's positives.
            predicted_runs = _Runs.of(p, k)
        return cls(
            data,
            names,
            dense,
            cells,
            cell_runs,
            predicted_runs,
            gap,
            bins,
            bin_runs,
            rankings,
        )

    def draws(self, weights: np.ndarray, with_confusion: bool) -> dict[str, np.ndarray]:
        """Every metric of each row of ``weights`` (a batch of resamples)."""
        if self.data.kind == "regression":
            return _regression_draws(self._dense_sums(weights), self.names)
        data, names, b = self.data, self.names, len(weights)
        k = data.k
        out: dict[str, np.ndarray] = {}
        sweep = None
        if self.rankings:
            ranked = [n for n in names if n in _RANKING]
            per_class = []
            for i, ranking in enumerate(self.rankings):
                # Ranked rows with labels from a threshold: the confusion counts are read
                # off the first sweep at the ends of the predicted classes' runs.
                points = (
                    self.predicted_runs.ends if i == 0 and self.predicted_runs is not None else None
                )
                values, swept = ranking.draws(weights, ranked, points)
                per_class.append(values)
                sweep = swept if points is not None else sweep
            for name in ranked:
                stacked = np.stack([c[name] for c in per_class])
                # One-vs-rest: macro-averaged over the classes with both outcomes in the draw.
                valid = np.isfinite(stacked)
                total = np.where(valid, stacked, 0.0).sum(axis=0)
                out[name] = _divide(total, valid.sum(axis=0).astype(np.float64), np.nan)
        cm = self._confusion(weights, sweep).reshape(b, k, k)
        count = cm.sum(axis=(1, 2)).astype(np.float64)
        if with_confusion:
            out = {"_confusion": cm, **out}
        # The weights as float32 once, for the weighted sums of per-row values.
        few = self.bin_runs is not None and len(self.bin_runs.starts) <= _DOTS
        cast = weights.astype(np.float32) if self.dense or (few and self.gap is not None) else None
        sums = self._dense_sums(weights, cast)
        for name in names:
            if name in out:
                continue
            if name in sums:
                out[name] = _divide(sums[name], count, np.nan)
            elif name == "ece" and self.gap is not None and self.bins is not None:
                if few and cast is not None and self.bin_runs is not None:
                    binned = self.bin_runs.dots(cast, self.gap)
                else:
                    gaps = np.multiply(weights, self.gap, dtype=np.float32)
                    binned = _label_sums(gaps, self.bins, self.bin_runs, ECE_BINS)
                out[name] = _divide(np.abs(binned).sum(axis=1), count, np.nan)
            elif name in NEEDS_PROBA:
                out[name] = np.full(b, np.nan)
            else:
                out[name] = _from_confusion(cm, name, data.positive)
        return out

    def _confusion(self, weights: np.ndarray, sweep: _Sweep | None) -> np.ndarray:
        k = self.data.k
        if self.predicted_runs is not None and sweep is not None:
            # Each run's sums are differences of the counts down the ranking.
            hits = self.predicted_runs.from_running(sweep.above_at)
            every = self.predicted_runs.from_running(sweep.seen_at)
            positive = self.data.positive
            cm = np.empty((len(weights), k * k))
            cm[:, positive * k : positive * k + k] = hits
            cm[:, (1 - positive) * k : (1 - positive) * k + k] = every - hits
        else:
            assert self.cells is not None
            cm = _label_sums(weights, self.cells, self.cell_runs, k * k)
        return np.rint(cm).astype(np.int64)

    def _dense_sums(
        self, weights: np.ndarray, cast: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Each per-row value's weighted sum per draw (``cast``: the weights in the values'
        type, when already made)."""
        if not self.dense:
            return {}
        dtype = next(iter(self.dense.values())).dtype
        if cast is None or cast.dtype != dtype:
            cast = weights.astype(dtype)
        # einsum's own loop, not BLAS: a threaded matrix-vector product of a few draws
        # spins its threads for most of its time on a busy machine (10x slower here). It
        # adds in order, so float32 rows are summed a block at a time (error ~3e-7, not 4e-6
        # at a million rows), the blocks in float64.
        m = weights.shape[1]
        return {n: _blockwise(cast, v, m) for n, v in self.dense.items()}


def _blockwise(x: np.ndarray, v: np.ndarray, m: int) -> np.ndarray:
    """``x @ v`` (float64), ``_BLOCK`` columns at a time."""
    total = np.zeros(len(x))
    for s in range(0, m, _BLOCK):
        total += np.einsum("ij,j->i", x[:, s : s + _BLOCK], v[s : s + _BLOCK])
    return total


def _regression_values(data: Predictions, rows: np.ndarray) -> dict[str, np.ndarray]:
    assert data.values is not None and data.predicted is not None
    y = data.values[rows]
    err = data.predicted[rows] - y
    centred = y - y.mean() if len(y) else y
    return {
        "count": np.ones_like(y),
        "abs": np.abs(err),
        "sq": err * err,
        "ratio": np.abs(err) / np.maximum(np.abs(y), _EPS),
        # R² centres each draw on its own mean: the sums of y and y² give it; y is centred on
        # the group's mean first so that the difference loses no digits.
        "y": centred,
        "y2": centred * centred,
    }


def _regression_draws(sums: dict[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    count = sums["count"]
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name == "count":
            out[name] = count
        elif name == "mae":
            out[name] = _divide(sums["abs"], count, np.nan)
        elif name == "rmse":
            out[name] = np.sqrt(_divide(sums["sq"], count, np.nan))
        elif name == "mape":
            out[name] = _divide(sums["ratio"], count, np.nan)
        elif name == "r2":
            sy, sy2, sse = sums["y"], sums["y2"], sums["sq"]
            sst = sy2 - _divide(sy * sy, count, 0.0)
            # A draw of one repeated value: scikit-learn's force_finite (1 if fit exactly).
            constant = sst <= 1e-9 * sy2
            with np.errstate(divide="ignore", invalid="ignore"):
                r2 = np.where(constant, np.where(sse == 0, 1.0, 0.0), 1.0 - sse / sst)
            out[name] = np.where(count >= 2, r2, np.nan)
    return out


def ordered_for_resampling(data: Predictions, rows: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """``rows`` in the order their resamples are cheapest to measure: a binary model's rows
    highest score first (ranked once, and labels from a threshold change once), other
    classification rows by (true, predicted) cell and ECE bin (every count sums run by run).
    Any order is a valid bootstrap; the draws depend on it, so callers that pair two models
    keep the rows as they are."""
    if data.kind == "regression" or not len(rows):
        return rows
    if data.proba is not None and data.kind == "binary" and set(names) & _RANKING:
        return rows[np.argsort(-data.proba[rows, data.positive], kind="stable")]
    keys = [data.y[rows] * data.k + data.p[rows]]
    if data.proba is not None and "ece" in names:
        keys.insert(0, data.row_array("ece_bin")[rows])
    return rows[np.lexsort(keys)]


def bootstrap(
    data: Predictions,
    rows: np.ndarray,
    names: Sequence[str],
    *,
    n_boot: int,
    seed: int,
    key: str,
    with_confusion: bool = False,
) -> dict[str, np.ndarray]:
    """``n_boot`` resamples of ``rows`` (Poisson(1) weights, see the module's notes): each
    metric's value per draw.

    The draws depend only on ``seed``, ``key``, ``n_boot`` and the number of rows: two
    predictions on the same rows with the same key are resampled alike (paired), and the
    ``i``-th weight of a draw belongs to ``rows[i]``. With ``with_confusion`` each draw's
    confusion matrix comes back too, as ``_confusion`` (draws, K, K).
    """
    m = len(rows)
    if not m or not n_boot:
        return {}
    group = _Group.of(data, rows, names)
    sizes = _batch_sizes(m, n_boot)

    def run(batch: int) -> dict[str, np.ndarray]:
        return group.draws(_weights(_stream(seed, key, batch), sizes[batch], m), with_confusion)

    results = [run(batch) for batch in range(len(sizes))]
    return {name: np.concatenate([r[name] for r in results]) for name in results[0]}
