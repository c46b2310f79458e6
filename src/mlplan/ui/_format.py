"""How the dashboard writes numbers, intervals, times and a window's metrics: presentation
only, on values the library computed."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "PAGE_SIZE",
    "Bar",
    "Pager",
    "column_bars",
    "key_metrics",
    "number",
    "page_of",
    "span",
    "when",
]

T = TypeVar("T")

PAGE_SIZE = 50
"""Rows of a long list per page."""

_MOST_METRICS = 10
"""Metrics shown per row of a monitoring table (the rest are one command away)."""


def number(value: Any) -> str:
    """A value as a person reads it: integers with separators, floats to 4 significant digits.

    Examples
    --------
    >>> number(12345), number(0.658761528), number(None), number(True), number(float("nan"))
    ('12,345', '0.6588', '–', 'yes', 'NaN')
    """
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def span(low: Any, high: Any) -> str:
    """An interval's text, or "" when it has no bounds.

    Examples
    --------
    >>> span(0.4327389, 0.8471181), span(None, None)
    ('[0.4327, 0.8471]', '')
    """
    if low is None or high is None:
        return ""
    return f"[{number(low)}, {number(high)}]"


def when(moment: dt.datetime | None) -> str:
    """A time in UTC, to the minute.

    Examples
    --------
    >>> when(dt.datetime(2026, 11, 30, 10, 5, 59, tzinfo=dt.UTC))
    '2026-11-30 10:05 UTC'
    """
    if moment is None:
        return "–"
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return f"{moment:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class Pager:
    """Where a page sits in a long list: page ``number`` (from 1) of ``size`` rows out of
    ``total``."""

    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        """How many pages the list has (at least 1)."""
        return max(1, math.ceil(self.total / self.size))

    @property
    def first(self) -> int:
        """The 1-based position of the page's first row (0 for an empty list)."""
        return 0 if self.total == 0 else (self.number - 1) * self.size + 1

    @property
    def last(self) -> int:
        """The 1-based position of the page's last row."""
        return min(self.total, self.number * self.size)


def page_of(items: Sequence[T], number: int, *, size: int = PAGE_SIZE) -> tuple[list[T], Pager]:
    """The rows of page ``number`` (clamped to the pages there are) and where it sits.

    Examples
    --------
    >>> rows, pager = page_of(range(120), 3)
    >>> rows[0], len(rows), pager.pages, pager.first, pager.last
    (100, 20, 3, 101, 120)
    >>> page_of(range(120), 9)[1].number
    3
    """
    pages = max(1, math.ceil(len(items) / size))
    number = min(max(1, number), pages)
    start = (number - 1) * size
    return list(items[start : start + size]), Pager(number, size, len(items))


def key_metrics(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A monitor window's metrics as (name, text) pairs, the nested ones summed up: an ML
    metric with its interval, an estimate marked so, the drifted columns, a count per status.

    Examples
    --------
    >>> key_metrics({"requests": 40, "error_rate": 0.1, "statuses": {"200": 36, "500": 4}})
    [('requests', '40'), ('error_rate', '0.1'), ('statuses', '200: 36, 500: 4')]
    >>> key_metrics({"drift": {"drifted": ["age"]}, "metrics": {"auc": {"estimated": {
    ...     "value": 0.71, "low": 0.6, "high": 0.8}}}})
    [('drifted', 'age'), ('auc (estimated)', '0.71 [0.6, 0.8]')]
    """
    shown: list[tuple[str, str]] = []
    for name, value in metrics.items():
        if name == "drift" and isinstance(value, Mapping):
            drifted = value.get("drifted") or []
            shown.append(("drifted", ", ".join(map(str, drifted)) or "none"))
        elif name == "metrics" and isinstance(value, Mapping):
            shown.extend(_named_metrics(value))
        elif isinstance(value, Mapping):
            if value and all(isinstance(v, int | float) for v in value.values()):
                parts = [f"{k}: {number(v)}" for k, v in list(value.items())[:5]]
                more = len(value) - 5
                shown.append((name, ", ".join(parts) + (f", … {more} more" if more > 0 else "")))
            elif value:
                shown.append((name, f"{len(value)} measured"))
        elif isinstance(value, list):
            shown.append((name, ", ".join(map(str, value[:5])) or "none"))
        else:
            shown.append((name, number(value)))
    return shown[:_MOST_METRICS]


def _named_metrics(found: Mapping[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, metric in found.items():
        if not isinstance(metric, Mapping):
            out.append((name, number(metric)))
        elif "value" in metric:
            out.append((name, _with_span(metric)))
        elif isinstance(metric.get("estimated"), Mapping):
            out.append((f"{name} (estimated)", _with_span(metric["estimated"])))
        elif "mean" in metric:
            out.append(
                (name, f"mean {number(metric.get('mean'))}, n {number(metric.get('count'))}")
            )
    return out


def _with_span(metric: Mapping[str, Any]) -> str:
    interval = span(metric.get("low"), metric.get("high"))
    return number(metric.get("value")) + (f" {interval}" if interval else "")


@dataclass(frozen=True)
class Bar:
    """One bar of a column's small histogram, in a 100 × 100 box: its left edge and width
    along x, its height (the tallest is 100), and what it stands for, in words."""

    x: float
    width: float
    height: float
    label: str


def column_bars(column: Mapping[str, Any]) -> list[Bar]:
    """A column's small histogram from its stored profile (no data read again): a bar per
    listed top value (a categorical column, or a numeric one with few distinct values),
    else, for a numeric column, a bar per span between its quantiles — min, the 1st … 99th
    percentiles, max — as tall as the share of rows it holds over its width. None for a
    column whose values are redacted or not listed, or whose quantiles span nothing.

    Examples
    --------
    >>> [(b.height, b.label) for b in column_bars({"kind": "categorical", "top": [
    ...     {"value": "east", "count": 10}, {"value": "west", "count": 5}]})]
    [(100.0, 'east: 10'), (50.0, 'west: 5')]
    >>> bars = column_bars({"kind": "numeric", "min": 0, "max": 10, "quantiles": {
    ...     "0.25": 1, "0.5": 2, "0.75": 5}})
    >>> [(b.x, b.width, b.height) for b in bars]
    [(0.0, 10.0, 100.0), (10.0, 10.0, 100.0), (20.0, 30.0, 33.33), (50.0, 50.0, 20.0)]
    """
    if column.get("redacted") or column.get("top_omitted"):
        return []
    top = column.get("top") or []
    if top:
        most = max(int(t["count"]) for t in top) or 1
        step = 100 / len(top)
        return [
            Bar(
                round(i * step, 2),
                round(step * 0.9, 2),
                round(100 * int(t["count"]) / most, 2),
                f"{t['value']}: {number(int(t['count']))}",
            )
            for i, t in enumerate(top)
        ]
    quantiles = column.get("quantiles") or {}
    low, high = column.get("min"), column.get("max")
    if column.get("kind") != "numeric" or not quantiles or low is None or high is None:
        return []
    edges = [(0.0, float(low))]
    edges += sorted((float(p), float(v)) for p, v in quantiles.items() if v is not None)
    edges.append((1.0, float(high)))
    whole = float(high) - float(low)
    if not whole > 0:
        return []
    spans = [(a, b) for a, b in itertools.pairwise(edges) if b[1] > a[1]]
    densities = [(b[0] - a[0]) / (b[1] - a[1]) for a, b in spans]
    tallest = max(densities, default=0.0) or 1.0
    return [
        Bar(
            round(100 * (a[1] - float(low)) / whole, 2),
            round(100 * (b[1] - a[1]) / whole, 2),
            round(100 * d / tallest, 2),
            f"{number(a[1])} to {number(b[1])}: {b[0] - a[0]:.0%} of rows",
        )
        for (a, b), d in zip(spans, densities, strict=True)
    ]
