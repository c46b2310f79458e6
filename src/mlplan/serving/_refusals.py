"""Refused requests kept small: an answer names at most :data:`MAX_ERRORS` problems and counts
the rest, the log keeps a summary (how many problems of each kind, and the first few), and
each caller (an API key, or a client address without keys) may write only so many refusals
to the log, in records and in bytes; beyond that they are counted in a metric instead.

A body of 10,000 empty records once got a 9.47 MB answer and wrote 9.47 MB to the log: a
refusal may no more cost the server than the request cost the client.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_ERRORS", "RefusalBudget", "capped", "summary"]

MAX_ERRORS = 100
"""The most problems one answer names; ``more_errors`` counts the rest."""

_LOGGED_ERRORS = 3
"""The problems a refusal's log record names (the rest are counted by kind)."""


def capped(problems: Sequence[Mapping[str, Any]], total: int | None = None) -> dict[str, Any]:
    """The body of a refusal: ``{"detail": [the first MAX_ERRORS problems]}``, and
    ``"more_errors": n`` when ``total`` (``len(problems)`` by default) is larger."""
    total = len(problems) if total is None else total
    body: dict[str, Any] = {"detail": list(problems[:MAX_ERRORS])}
    if total > MAX_ERRORS:
        body["more_errors"] = total - MAX_ERRORS
    return body


def summary(kinds: Sequence[str], first: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the log keeps of a refused request: how many problems (``errors``), how many of
    each kind (``by_type``, from ``kinds``, one per problem) and the first few (``first``)."""
    return {
        "errors": len(kinds),
        "by_type": dict(Counter(kinds).most_common()),
        "first": list(first[:_LOGGED_ERRORS]),
    }


@dataclass
class _Bucket:
    records: float
    bytes: float
    at: float


class RefusalBudget:
    """How many refusals each caller may write to the log: token buckets per caller, one in
    records and one in bytes, that fill at a steady rate up to a burst.

    Parameters
    ----------
    records_per_second, burst_records
        The refusals a caller may log: this many a second, after a first burst.
    bytes_per_second, burst_bytes
        The same, in bytes of log.
    max_callers
        The callers remembered (least recently refused forgotten first): a client that
        changes address cannot grow the server's memory.
    clock
        Seconds, monotonic (a test passes its own).
    """

    def __init__(
        self,
        *,
        records_per_second: float = 2.0,
        burst_records: float = 20.0,
        bytes_per_second: float = 2048.0,
        burst_bytes: float = 32768.0,
        max_callers: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.records_per_second = records_per_second
        self.burst_records = burst_records
        self.bytes_per_second = bytes_per_second
        self.burst_bytes = burst_bytes
        self.max_callers = max_callers
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, caller: str, size: int) -> bool:
        """Whether ``caller`` may log one more refusal of ``size`` bytes (taken from its
        budget if so; a refusal not allowed costs nothing)."""
        now = self._clock()
        bucket = self._buckets.pop(caller, None)
        if bucket is None:
            bucket = _Bucket(self.burst_records, self.burst_bytes, now)
            while len(self._buckets) >= self.max_callers:
                self._buckets.popitem(last=False)
        elapsed = max(0.0, now - bucket.at)
        bucket.records = min(self.burst_records, bucket.records + elapsed * self.records_per_second)
        bucket.bytes = min(self.burst_bytes, bucket.bytes + elapsed * self.bytes_per_second)
        bucket.at = now
        self._buckets[caller] = bucket
        if bucket.records < 1 or bucket.bytes < size:
            return False
        bucket.records -= 1
        bucket.bytes -= size
        return True
