"""Each feature screened alone on the training rows before any model sees it.

Three things a careful engineer looks for before training, each vectorised over the rows:

- **constant and all-missing columns** teach a model nothing: they are left out, with a note;
- **duplicates** — a copy of another column, or a one-to-one recoding of it (``region`` and
  ``region_code``) — are left out, the later one, with a note naming the one it repeats;
- **leaks** — a feature that alone nearly determines the target (its logarithm, a field filled
  in after the outcome) — refuse training with the figure, unless ``modeling.allowed_features``
  lists it.

How much of the target one feature explains is measured on its bins (quantile bins of a number,
with missing values in a bin of their own; the categories of a category, rare ones merged): for
regression the R² of the bins' means fitted to the target's ranks (ranks, so that a heavy tail
does not hide a transform of the target), for classification the mutual information of bins and
classes over the target's entropy. Both are corrected for the bins' count, so that a feature of
many values is not credited with what it fits by chance. The figures are computed on a seeded
sample of at most ``SCREEN_SAMPLE_ROWS`` training rows; whatever leaves a column out is
confirmed on every training row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.errors import DataError
from mlplan.modeling._features import FeatureSet

__all__ = ["LEAK_THRESHOLD", "SCREEN_SAMPLE_ROWS", "FeatureScreen", "screen_features"]

LEAK_THRESHOLD = 0.98
"""A feature that alone explains this share of the target, or more, is refused."""
SCREEN_SAMPLE_ROWS = 50_000
"""The figures are computed on at most this many training rows (a seeded sample)."""
MAX_BINS = 256
MIN_BIN_ROWS = 20  # a bin of fewer rows fits noise; rare categories are merged into one bin

MEASURES = {
    "regression": "R² of a binned one-feature fit to the target's ranks",
    "classification": "mutual information with the target over the target's entropy",
}


@dataclass(frozen=True)
class FeatureScreen:
    """What the screen found: how much of the target each kept feature explains alone, the
    columns it left out and why, and the features the plan allows to explain it."""

    target: str
    kind: Literal["regression", "classification"]
    rows: int
    screened: int
    explains: dict[str, float]
    left_out: dict[str, str]
    allowed: tuple[str, ...] = ()
    threshold: float = LEAK_THRESHOLD
    measure: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "measure", MEASURES[self.kind])

    @property
    def leaky(self) -> dict[str, float]:
        """Features that alone explain at least ``threshold`` of the target and are not
        allowed, most telling first."""
        found = {
            name: score
            for name, score in self.explains.items()
            if score >= self.threshold and name not in self.allowed
        }
        return dict(sorted(found.items(), key=lambda item: -item[1]))

    @property
    def allowed_leaky(self) -> dict[str, float]:
        """Features over the threshold that the plan allows."""
        return {
            name: score
            for name, score in self.explains.items()
            if score >= self.threshold and name in self.allowed
        }

    def check(self, plan_file: str = "mlplan.yaml") -> None:
        """Refuse leaky features.

        Raises
        ------
        DataError
            Naming each leaky feature with its figure, and the plan field that allows it.
        """
        leaky = self.leaky
        if not leaky:
            return
        rows = (
            f"{self.rows:,} training rows"
            if self.screened == self.rows
            else f"a sample of {self.screened:,} of {self.rows:,} training rows"
        )
        found = "; ".join(
            f"feature {name!r} alone explains {_figure(score)} of target {self.target!r}"
            for name, score in leaky.items()
        )
        names = ", ".join(leaky)
        raise DataError(
            f"{found} ({self.measure}, on {rows}): "
            f"{'it is' if len(leaky) == 1 else 'they are'} likely derived from the target. "
            f"Remove {'it' if len(leaky) == 1 else 'them'} (modeling.exclude: [{names}]) or, "
            f"if known when predicting, list {'it' if len(leaky) == 1 else 'them'} under "
            f"modeling.allowed_features in {plan_file}"
        )

    def apply(self, spec: dict[str, Any]) -> dict[str, Any]:
        """A tabular input spec without the columns left out, which join its ``excluded``
        notes, and with this screen under ``screen``."""
        return {
            **spec,
            "numeric": [c for c in spec["numeric"] if c not in self.left_out],
            "categorical": [c for c in spec["categorical"] if c not in self.left_out],
            "excluded": {**spec["excluded"], **self.left_out},
            "screen": self.to_dict(),
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "target": self.target,
            "measure": self.measure,
            "threshold": self.threshold,
            "rows": self.rows,
            "screened": self.screened,
            "explains": self.explains,
            "left_out": self.left_out,
            "allowed": {name: score for name, score in self.allowed_leaky.items()},
        }


def _figure(score: float) -> str:
    """Two decimals, never rounded up to a whole 1.00 that was not."""
    return f"{np.floor(score * 100) / 100:.2f}"


def screen_features(
    table: pa.Table,
    features: FeatureSet,
    y: np.ndarray,
    *,
    kind: Literal["regression", "classification"],
    target: str,
    rows: np.ndarray | None = None,
    allowed: tuple[str, ...] | list[str] = (),
    seed: int = 0,
) -> FeatureScreen:
    """Screen each of ``features`` alone against the target ``y`` on the training ``rows`` of
    ``table`` (default: all of them; ``y`` holds one value per training row — floats for
    regression, labels for classification).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> price = rng.lognormal(3, 1, 2_000)
    >>> table = pa.table({
    ...     "size": price * rng.lognormal(0, 0.8, 2_000),
    ...     "log_price": np.log(price),
    ...     "country": ["nl"] * 2_000,
    ... })
    >>> found = screen_features(
    ...     table, FeatureSet(["size", "log_price"], ["country"], {}), price,
    ...     kind="regression", target="price",
    ... )
    >>> found.leaky, found.left_out
    ({'log_price': 0.9999}, {'country': 'constant in the training rows (always nl)'})
    >>> found.explains["size"] < 0.98
    True
    """
    rows = np.arange(table.num_rows) if rows is None else np.asarray(rows, dtype=np.int64)
    n = len(rows)
    if len(y) != n:
        raise ValueError(f"y has {len(y)} values for {n} training rows")
    wanted = set(features.columns)
    names = [c for c in table.column_names if c in wanted]
    numeric = set(features.numeric)
    if n > SCREEN_SAMPLE_ROWS:
        pick = np.sort(np.random.default_rng(seed).choice(n, SCREEN_SAMPLE_ROWS, replace=False))
        sample_rows, y_sample = rows[pick], y[pick]
    else:
        sample_rows, y_sample = rows, y
    sample = table.select(names).take(pa.array(sample_rows, pa.int64()))
    m = len(sample_rows)
    target_codes = _target(y_sample, kind)

    left_out: dict[str, str] = {}
    columns: dict[str, _Column] = {}
    for name in names:
        column = _Column.of(sample.column(name), numeric=name in numeric)
        note = column.constant_note()
        if note is not None and _confirm_constant(table.column(name), rows, name in numeric):
            left_out[name] = note
            continue
        columns[name] = column
    for later, (first, how) in _duplicates(columns, m).items():
        if _confirm_duplicate(table, rows, {first: first in numeric, later: later in numeric}):
            left_out[later] = f"{how} {first!r} in the training rows"
            del columns[later]
    explains = {
        name: round(_explained(column.bins, target_codes, kind), 4)
        for name, column in columns.items()
    }
    return FeatureScreen(
        target=target,
        kind=kind,
        rows=n,
        screened=m,
        explains=explains,
        left_out=left_out,
        allowed=tuple(allowed),
    )


def _target(y: np.ndarray, kind: str) -> np.ndarray:
    """The target as the screen measures it: average ranks (regression) or class codes."""
    if kind == "regression":
        values = np.asarray(y, dtype=np.float64)
        _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
        middle = np.cumsum(counts) - (counts - 1) / 2
        return np.asarray(middle[inverse], dtype=np.float64)
    _, codes = np.unique(np.asarray(y, dtype=str), return_inverse=True)
    return np.asarray(codes, dtype=np.int64)


@dataclass(frozen=True)
class _Column:
    """One feature on the sampled rows, as the screen compares it: a bin per row (0: missing),
    its distinct values (in order of first appearance where counted), and a key equal for
    columns that may repeat each other — the codes of their values in order of first
    appearance, or for a number of many values the values themselves."""

    bins: np.ndarray
    distinct: int
    key: bytes
    dictionary: np.ndarray | pa.Array | None
    missing: bool
    numeric: bool

    @classmethod
    def of(cls, column: pa.ChunkedArray, *, numeric: bool) -> _Column:
        array = _normalised(column, numeric=numeric)
        if numeric:
            values = np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)
            return cls._number(values)
        encoded = pc.dictionary_encode(array)
        codes = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False))
        codes = codes.astype(np.int64, copy=False)
        distinct = len(encoded.dictionary)
        return cls(
            bins=_category_bins(codes, distinct),
            distinct=distinct,
            key=b"c" + _digest(codes),
            dictionary=encoded.dictionary,
            missing=bool((codes < 0).any()),
            numeric=False,
        )

    @classmethod
    def _number(cls, values: np.ndarray) -> _Column:
        """One sort gives a number's quantile bins, its distinct values and their codes."""
        m = len(values)
        where = np.flatnonzero(~np.isnan(values))
        missing = len(where) < m
        if not len(where):
            return cls(np.zeros(m, dtype=np.int64), 0, b"", None, missing, True)
        order = where[np.argsort(values[where])]  # rows by value, the missing left out
        ordered = values[order]
        new = np.r_[True, ordered[1:] != ordered[:-1]]
        starts = np.flatnonzero(new)
        distinct = len(starts)
        count = min(MAX_BINS, max(2, m // MIN_BIN_ROWS))
        cuts = np.unique(ordered[(np.arange(1, count) * len(order)) // count])
        starts_at = np.searchsorted(ordered, cuts, side="left")  # ties share a bin
        ends_at = np.searchsorted(ordered, cuts, side="right")
        # A value that fills a bin or more (the zeros of an amount paid only on default) is a
        # bin of its own, so it does not swallow the values after it up to the next cut.
        heavy = ends_at[ends_at - starts_at >= len(order) // count]
        marks = np.zeros(len(order) + 1, dtype=np.int64)
        np.add.at(marks, np.unique(np.r_[starts_at, heavy]), 1)
        bins = np.zeros(m, dtype=np.int64)
        bins[order] = np.cumsum(marks[:-1]) + 1
        if distinct > m // 2:  # too many values for a recoding to mean anything: copies only
            canonical = np.where(np.isnan(values), np.nan, values)
            return cls(bins, distinct, b"v" + _digest(canonical), None, missing, True)
        # Codes in order of first appearance: equal for two columns that recode each other.
        appearance = np.argsort(np.minimum.reduceat(order, starts))
        rank = np.empty(distinct, dtype=np.int64)
        rank[appearance] = np.arange(distinct)
        codes = np.full(m, -1, dtype=np.int64)
        codes[order] = rank[np.cumsum(new) - 1]
        dictionary = ordered[starts][appearance]
        return cls(bins, distinct, b"c" + _digest(codes), dictionary, missing, True)

    def constant_note(self) -> str | None:
        """Why the column teaches nothing, when it does not (as far as the sample shows).

        A number with one value where present is constant once imputed; a category with one
        value and missing rows still says which rows are missing, so it stays."""
        if self.distinct == 0:
            return "all missing in the training rows"
        if self.distinct > 1:
            return None
        assert self.dictionary is not None
        first = self.dictionary[0]
        value = first.as_py() if isinstance(first, pa.Scalar) else f"{float(first):g}"
        if not self.missing:
            return f"constant in the training rows (always {value})"
        if self.numeric:
            return f"constant in the training rows ({value} where not missing)"
        return None

    def repeats(self, other: _Column) -> bool:
        """Equal values row by row, given equal keys."""
        if self.dictionary is None or other.dictionary is None:
            return self.dictionary is None and other.dictionary is None
        if isinstance(self.dictionary, np.ndarray) and isinstance(other.dictionary, np.ndarray):
            return bool(np.array_equal(self.dictionary, other.dictionary))
        if isinstance(self.dictionary, pa.Array) and isinstance(other.dictionary, pa.Array):
            return bool(self.dictionary.equals(other.dictionary))
        return False


def _digest(values: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(values).tobytes()).digest()


def _category_bins(codes: np.ndarray, distinct: int) -> np.ndarray:
    """A bin per row (0: missing): the frequent categories, the rare ones merged in bin 1."""
    count = min(MAX_BINS, max(2, len(codes) // MIN_BIN_ROWS))
    frequency = np.bincount(codes[codes >= 0], minlength=distinct)
    kept = np.argsort(-frequency, kind="stable")[: count - 1]
    kept = kept[frequency[kept] >= MIN_BIN_ROWS]
    lookup = np.ones(distinct + 1, dtype=np.int64)
    lookup[kept] = np.arange(2, len(kept) + 2)
    lookup[-1] = 0  # the code -1 of missing rows
    return np.asarray(lookup[codes])


def _normalised(column: pa.ChunkedArray, *, numeric: bool) -> pa.Array:
    """Numbers as float64 with NaN as missing; categories as strings."""
    array = column.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if numeric:
        array = pc.cast(array, pa.float64())
        return pc.if_else(pc.is_nan(array), pa.scalar(None, pa.float64()), array)
    return pc.cast(array, pa.string())


def _confirm_constant(column: pa.ChunkedArray, rows: np.ndarray, numeric: bool) -> bool:
    """The column is constant (or missing) on every training row, not only in the sample."""
    if len(rows) <= SCREEN_SAMPLE_ROWS:
        return True
    array = _normalised(column.take(pa.array(rows, pa.int64())), numeric=numeric)
    # Missing rows count as a value of a category (they stay apart), not of a number (imputed).
    distinct = pc.count_distinct(array, mode="only_valid" if numeric else "all").as_py()
    return bool(distinct <= 1)


def _duplicates(columns: dict[str, _Column], m: int) -> dict[str, tuple[str, str]]:
    """Later columns that repeat an earlier one on the sample -> (the earlier, how): equal
    values ("a copy of"), or values that map one-to-one ("a one-to-one recoding of") when
    they repeat enough for that to mean something (at most half as many values as rows)."""
    groups: dict[bytes, list[str]] = {}
    for name, column in columns.items():
        groups.setdefault(column.key, []).append(name)
    found: dict[str, tuple[str, str]] = {}
    for group in groups.values():
        kept: list[str] = []
        for name in group:
            column = columns[name]
            copied = next((k for k in kept if columns[k].repeats(column)), None)
            if copied is not None:
                found[name] = (copied, "a copy of")
            elif kept and column.distinct <= m // 2:
                found[name] = (kept[0], "a one-to-one recoding of")
            else:
                kept.append(name)
    return found


def _confirm_duplicate(table: pa.Table, rows: np.ndarray, pair: dict[str, bool]) -> bool:
    """The two columns of ``pair`` (name -> numeric) map one-to-one on every training row."""
    if len(rows) <= SCREEN_SAMPLE_ROWS:
        return True
    index = pa.array(rows, pa.int64())
    codes = []
    for name, numeric in pair.items():
        column = table.column(name).take(index)
        encoded = pc.dictionary_encode(_normalised(column, numeric=numeric))
        codes.append(pc.fill_null(encoded.indices, -1))
    return bool(codes[0].equals(codes[1]))


def _explained(bins: np.ndarray, target: np.ndarray, kind: str) -> float:
    """The share of the target the bins explain, corrected for their count, in [0, 1]."""
    m = len(bins)
    size = int(bins.max()) + 1
    counts = np.bincount(bins, minlength=size)
    used = int((counts > 0).sum())
    if kind == "regression":
        total = float(((target - target.mean()) ** 2).sum())
        if total == 0 or m <= used:
            return 0.0
        sums = np.bincount(bins, weights=target, minlength=size)
        squares = np.bincount(bins, weights=target * target, minlength=size)
        nonempty = counts > 0
        within = float((squares[nonempty] - sums[nonempty] ** 2 / counts[nonempty]).sum())
        adjusted = 1 - (within / (m - used)) / (total / (m - 1))
        return float(np.clip(adjusted, 0.0, 1.0))
    classes = int(target.max()) + 1
    joint = np.bincount(bins * classes + target, minlength=size * classes).reshape(size, classes)
    entropy = _entropy(np.bincount(target, minlength=classes))
    if entropy == 0:
        return 0.0
    per_bin = np.broadcast_to(counts[:, None], joint.shape)
    present = joint > 0
    conditional = -float((joint[present] * np.log(joint[present] / per_bin[present])).sum()) / m
    # Miller–Madow: each entropy estimated from k non-empty cells is short by (k - 1) / 2m, so
    # the bins are not credited with what they fit by chance; pure bins lose nothing.
    cells = int(present.sum())
    seen = int((np.bincount(target, minlength=classes) > 0).sum())
    correction = (seen - 1 + used - cells) / (2 * m)
    return float(np.clip((entropy - conditional + correction) / entropy, 0.0, 1.0))


def _entropy(counts: np.ndarray) -> float:
    """Entropy in nats of a count vector."""
    total = counts.sum()
    p = counts[counts > 0] / total
    return float(-(p * np.log(p)).sum())
