"""Slice discovery, in the spirit of SliceFinder (Chung et al., 2019): search conjunctions of
up to three feature conditions for slices whose error is significantly above the rest.

Conditions are a categorical value (``plan = 'basic'``), a quartile range of a numeric
column (``age in [18, 31)``) or a missing value. The search walks the lattice level by
level, crossing each slice with conditions on further columns while it has rows enough; a
narrower slice is reported instead of a general one only when its effect is at least twice
as large. Each test is Welch's
t-test of the per-row error inside the slice against outside it, one-sided; the effect size
is Cohen's d; p-values are adjusted (Benjamini-Hochberg) within each level, with the false
discovery rate split between levels.

The search is bounded in time (``evaluation.discovery.max_seconds``): single conditions are
always tested; a deeper level starts only while time is left, and a level under way when
the time runs out is dropped whole, so each level's correction counts exactly the slices
tested at that level, and a level not searched spends none of its share of the rate. The
result says which levels were searched and what was cut.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.evaluation._analysis import benjamini_hochberg

__all__ = [
    "Condition",
    "DiscoveredSlice",
    "DiscoveryResult",
    "candidate_conditions",
    "discover_slices",
]

_MAX_VALUES = 12  # categorical values per column tried as conditions
_MAX_PER_LEVEL = 4000  # slices tested per lattice level
_MAX_CELLS = 200_000_000  # slices x rows held at once in a level (bounded memory)
_BLOCK = 128  # slices per matrix product


@dataclass(frozen=True)
class Condition:
    """One condition on one column, with the rows it holds."""

    column: str
    text: str
    mask: np.ndarray


def _edge(value: float) -> str:
    return f"{value:.3g}"


def candidate_conditions(
    table: pa.Table, columns: Sequence[str], *, min_support: int
) -> list[Condition]:
    """Conditions worth testing on ``columns`` of ``table``: frequent categorical values,
    numeric quartile ranges, and missing values."""
    out: list[Condition] = []
    for name in columns:
        column = table.column(name).combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = pc.cast(column, column.type.value_type)
        missing = np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False), dtype=bool)
        if missing.sum() >= min_support:
            out.append(Condition(name, f"{name} is missing", missing))
        numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
        quote = not numeric
        values = None
        if numeric:
            values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
            distinct = np.unique(values[np.isfinite(values)])
            numeric = distinct.size > _MAX_VALUES
        if numeric and values is not None:
            finite = values[np.isfinite(values)]
            edges = np.unique(np.quantile(finite, [0.25, 0.5, 0.75]))
            bounds = [-np.inf, *edges, np.inf]
            for low, high in itertools.pairwise(bounds):
                with np.errstate(invalid="ignore"):
                    mask = (values >= low) & (values < high)
                if mask.sum() < min_support:
                    continue
                if low == -np.inf:
                    text = f"{name} < {_edge(high)}"
                elif high == np.inf:
                    text = f"{name} >= {_edge(low)}"
                else:
                    text = f"{name} in [{_edge(low)}, {_edge(high)})"
                out.append(Condition(name, text, mask))
            continue
        strings = pc.cast(column, pa.string()) if not pa.types.is_string(column.type) else column
        counts = pc.value_counts(strings)
        pairs = sorted(
            (
                (int(c), v)
                for v, c in zip(
                    counts.field("values").to_pylist(),
                    counts.field("counts").to_pylist(),
                    strict=True,
                )
                if v is not None
            ),
            key=lambda t: (-t[0], str(t[1])),
        )
        as_numpy = np.asarray(strings.to_pylist(), dtype=object)
        for count, value in pairs[:_MAX_VALUES]:
            if count < min_support:
                break
            shown = repr(value) if quote else value
            out.append(Condition(name, f"{name} = {shown}", as_numpy == value))
    return out


def _welch(
    masks: np.ndarray, error: np.ndarray, total: float, total_sq: float, n: int
) -> tuple[np.ndarray, ...]:
    from scipy import stats

    count = masks.sum(axis=1).astype(np.float64)
    inside = masks @ error
    inside_sq = masks @ (error * error)
    rest = n - count
    mean_in = inside / count
    mean_out = (total - inside) / np.maximum(rest, 1)
    var_in = np.maximum(inside_sq / count - mean_in**2, 0) * count / np.maximum(count - 1, 1)
    var_out = (
        np.maximum((total_sq - inside_sq) / np.maximum(rest, 1) - mean_out**2, 0)
        * rest
        / np.maximum(rest - 1, 1)
    )
    se2_in = var_in / count
    se2_out = var_out / np.maximum(rest, 1)
    se = np.sqrt(se2_in + se2_out)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (mean_in - mean_out) / se
        dof = (se2_in + se2_out) ** 2 / (
            se2_in**2 / np.maximum(count - 1, 1) + se2_out**2 / np.maximum(rest - 1, 1)
        )
        pooled = np.sqrt((var_in + var_out) / 2)
        # No spread at all (the slice errs on every row, the rest on none): an unbounded
        # effect, reported as such.
        effect = np.where(
            pooled > 0,
            (mean_in - mean_out) / np.where(pooled > 0, pooled, 1.0),
            np.where(mean_in > mean_out, np.inf, 0.0),
        )
    p = np.where(np.isfinite(t), stats.t.sf(t, np.where(np.isfinite(dof), dof, 1.0)), 1.0)
    # A slice that errs on every row against a rest that never does is as clear as it gets.
    p = np.where((se == 0) & (mean_in > mean_out), 0.0, p)
    return count, mean_in, effect, p


def _level_alpha(alpha: float, levels: int) -> list[float]:
    if levels == 1:
        return [alpha]
    return [alpha / 2] + [alpha / 2 / (levels - 1)] * (levels - 1)


@dataclass(frozen=True)
class DiscoveredSlice:
    """A slice whose error is significantly above the rest's: its conditions (joined by
    "and"), the columns they use, its rows, mean error and effect size (Cohen's d; None
    when unbounded, with a note), and the test (p, q, the level's share of alpha)."""

    conditions: tuple[str, ...]
    columns: tuple[str, ...]
    count: int
    share: float
    error: float
    effect_size: float | None
    p_value: float
    q_value: float
    alpha: float
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        out: dict[str, Any] = {
            "conditions": list(self.conditions),
            "columns": list(self.columns),
            "count": self.count,
            "share": self.share,
            "error": self.error,
            "effect_size": self.effect_size,
            "p_value": self.p_value,
            "q_value": self.q_value,
            "alpha": self.alpha,
        }
        if self.note is not None:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class DiscoveryResult:
    """What slice discovery found: the error over every row, how many slices were tested
    from how many conditions, and the slices reported, most telling first.

    ``tested_by_level`` counts the slices of 1, 2, ... conditions tested (each level's
    Benjamini-Hochberg correction counts those); ``levels`` is how many levels the search
    was to go down; ``max_seconds`` its time limit, and ``cut`` what the limit left out
    (None when the search went as deep as it could).
    """

    overall_error: float
    tested: int
    conditions: int
    slices: tuple[DiscoveredSlice, ...]
    tested_by_level: tuple[int, ...] = ()
    levels: int = 3
    max_seconds: float | None = None
    cut: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "overall_error": self.overall_error,
            "tested": self.tested,
            "conditions": self.conditions,
            "slices": [s.to_dict() for s in self.slices],
            "levels": {
                "planned": self.levels,
                "searched": len(self.tested_by_level),
                "tested": list(self.tested_by_level),
            },
            "max_seconds": self.max_seconds,
            "cut": self.cut,
        }


@dataclass
class _Tested:
    """A slice tested: the conditions it joins (their indices) and its test."""

    key: tuple[int, ...]
    count: int
    share: float
    error: float
    effect: float
    p_value: float
    q_value: float = float("nan")
    alpha: float = float("nan")


def discover_slices(
    conditions: Sequence[Condition],
    error: np.ndarray,
    *,
    max_conditions: int = 3,
    min_support: int = 30,
    min_effect: float = 0.3,
    alpha: float = 0.05,
    limit: int = 20,
    max_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> DiscoveryResult:
    """Slices whose per-row ``error`` (0/1 mistakes, or absolute errors) is significantly
    above the rest, ranked by effect size; each with its conditions, support and error.

    ``max_seconds`` bounds the search (None: unbounded): the single conditions are always
    tested, and the search goes a level deeper only while the time (read from ``clock``,
    in seconds) has not run out; a level that the limit interrupts is dropped whole. The
    result's ``cut`` says so.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> table = pa.table({"plan": rng.choice(["basic", "pro"], 400)})
    >>> error = np.where(np.asarray(table.column("plan")) == "pro", 0.5, 0.0)
    >>> found = discover_slices(candidate_conditions(table, ["plan"], min_support=30), error)
    >>> [s.conditions for s in found.slices]
    [("plan = 'pro'",)]
    """
    error = np.asarray(error, dtype=np.float64)
    n = error.size
    total = float(error.sum())
    budget = _Budget(clock, max_seconds)
    tested, cut = _walk(
        conditions,
        error,
        total=total,
        max_conditions=max_conditions,
        min_support=min_support,
        budget=budget,
    )
    found = _significant(tested, max_conditions=max_conditions, alpha=alpha, min_effect=min_effect)
    general = _most_telling(found)
    general.sort(key=lambda t: (-t.effect * np.sqrt(t.share), [conditions[i].text for i in t.key]))
    depths = [len(t.key) for t in tested]
    by_level = tuple(depths.count(d) for d in range(1, max(depths, default=0) + 1))
    return DiscoveryResult(
        total / n if n else float("nan"),
        len(tested),
        len(conditions),
        tuple(_reported(t, conditions) for t in general[:limit]),
        by_level,
        max_conditions,
        max_seconds,
        cut,
    )


class _Budget:
    """The search's time limit, read from ``clock`` (None: no limit)."""

    def __init__(self, clock: Callable[[], float], max_seconds: float | None) -> None:
        self.clock = clock
        self.max_seconds = max_seconds
        self.start = clock()

    def elapsed(self) -> float:
        """Seconds since the search started."""
        return self.clock() - self.start

    def spent(self) -> bool:
        """Whether the time has run out."""
        return self.max_seconds is not None and self.elapsed() >= self.max_seconds

    def cut(self, searched: int, levels: int, dropped: tuple[int, int, int] | None) -> str:
        """What the limit left out, for the report: ``searched`` levels of ``levels``, and
        the level under way when it ran out (its depth, slices tested, slices in it)."""
        missing = list(range(searched + 1, levels + 1))
        which = f"level {missing[0]}" if len(missing) == 1 else f"levels {missing[0]}-{missing[-1]}"
        elapsed = self.elapsed()
        shown = f"{elapsed:,.0f}" if elapsed >= 100 else f"{elapsed:.3g}"
        text = (
            f"slice discovery stopped after {shown} s (evaluation.discovery."
            f"max_seconds: {self.max_seconds:g}): {searched} of {levels} condition levels "
            f"searched ({which} not searched)"
        )
        if dropped is not None:
            depth, done, size = dropped
            text += (
                f"; level {depth} was under way, {done:,} of {size:,} slices tested, and is "
                "left out whole (its false discovery rate counts no partial level)"
            )
        return text


def _walk(
    conditions: Sequence[Condition],
    error: np.ndarray,
    *,
    total: float,
    max_conditions: int,
    min_support: int,
    budget: _Budget,
) -> tuple[list[_Tested], str | None]:
    """Test the lattice level by level: single conditions, then each slice with rows enough
    crossed with conditions on further columns, while the budget lasts. Returns the
    slices tested and what the budget cut (None: nothing)."""
    n = error.size
    total_sq = float((error * error).sum())
    tested: list[_Tested] = []
    level: list[tuple[tuple[int, ...], np.ndarray]] = [
        ((i,), c.mask) for i, c in enumerate(conditions)
    ]
    seen: set[tuple[int, ...]] = set()
    cap = max(1, min(_MAX_PER_LEVEL, _MAX_CELLS // max(n, 1)))
    for depth in range(1, max_conditions + 1):
        # A slice needs rows enough inside it and outside it to be compared with the rest.
        level = [
            (key, mask) for key, mask in level if min_support <= mask.sum() <= n - min_support
        ][:cap]
        if not level:
            break
        parts = []
        for start in range(0, len(level), _BLOCK):
            if depth > 1 and start and budget.spent():
                # Out of time inside a level: drop it whole, as if never started.
                cut = budget.cut(depth - 1, max_conditions, (depth, start, len(level)))
                return tested, cut
            block = np.stack([mask for _, mask in level[start : start + _BLOCK]])
            parts.append(_welch(block.astype(np.float64), error, total, total_sq, n))
        count, mean_in, effect, p = (np.concatenate(column) for column in zip(*parts, strict=True))
        expand = []
        for index, (key, mask) in enumerate(level):
            share = float(count[index] / n)
            tested.append(
                _Tested(
                    key,
                    int(count[index]),
                    share,
                    float(mean_in[index]),
                    float(effect[index]),
                    float(p[index]),
                )
            )
            # Refined further when there are rows enough for a narrower slice to stand out.
            if count[index] >= 2 * min_support:
                expand.append((key, mask))
        if depth == max_conditions or not expand:
            break
        if budget.spent():
            return tested, budget.cut(depth, max_conditions, None)
        level = _children(conditions, expand, seen, cap)
    return tested, None


def _children(
    conditions: Sequence[Condition],
    expand: list[tuple[tuple[int, ...], np.ndarray]],
    seen: set[tuple[int, ...]],
    cap: int,
) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """The next level: each slice of ``expand`` and one more condition on another column."""
    following: list[tuple[tuple[int, ...], np.ndarray]] = []
    for key, mask in expand:
        used = {conditions[i].column for i in key}
        for j, condition in enumerate(conditions):
            if j <= key[-1] or condition.column in used:
                continue
            child = (*key, j)
            if child in seen:
                continue
            seen.add(child)
            following.append((child, mask & condition.mask))
            if len(following) >= cap:
                break
        if len(following) >= cap:
            break
    return following


def _significant(
    tested: list[_Tested], *, max_conditions: int, alpha: float, min_effect: float
) -> list[_Tested]:
    """The slices significant at their level's rate with an effect of ``min_effect`` or more.

    The false discovery rate is spent by level, half on single conditions and the rest
    shared by the deeper levels (as alpha-investing favours simple slices); the levels'
    rates add up to alpha, which bounds the rate over everything reported.
    """
    budget = _level_alpha(alpha, max_conditions)
    found = []
    for depth in range(1, max_conditions + 1):
        members = [t for t in tested if len(t.key) == depth]
        if not members:
            continue
        q = benjamini_hochberg([t.p_value for t in members])
        for entry, q_value in zip(members, q, strict=True):
            entry.q_value = float(q_value)
            entry.alpha = budget[depth - 1]
            if q_value <= budget[depth - 1] and entry.effect >= min_effect:
                found.append(entry)
    return found


def _most_telling(found: list[_Tested]) -> list[_Tested]:
    """A narrower slice is kept only when it is much worse than a general one that holds it
    (effect at least twice as large); then the general one is dropped, as the narrow one
    explains it."""
    general = []
    for e in found:
        mine = set(e.key)
        parents = [o for o in found if set(o.key) < mine]
        children = [o for o in found if mine < set(o.key)]
        if any(o.effect * 2 > e.effect for o in parents):
            continue
        if any(o.effect >= 2 * e.effect for o in children):
            continue
        general.append(e)
    return general


def _reported(tested: _Tested, conditions: Sequence[Condition]) -> DiscoveredSlice:
    bounded = bool(np.isfinite(tested.effect))
    return DiscoveredSlice(
        conditions=tuple(conditions[i].text for i in tested.key),
        columns=tuple(sorted({conditions[i].column for i in tested.key})),
        count=tested.count,
        share=tested.share,
        error=tested.error,
        effect_size=tested.effect if bounded else None,
        p_value=tested.p_value,
        q_value=tested.q_value,
        alpha=tested.alpha,
        note=None
        if bounded
        else "the error does not vary inside or outside the slice: an unbounded effect",
    )
