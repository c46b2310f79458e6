"""A blue-green candidate's smoke test: the plan's ``rollout.smoke`` requests answered by
green before the switch, each answer held to what the plan expects.

The candidate is scored here as every server scores it — its package loaded and verified
(``serving.load_served_model``), its records checked by the same validator, its graph run with
the same threshold — so a request green refuses or answers wrongly fails the test before any
client could meet it. (``POST /v1/preview`` on a server answers with the candidate too, for a
person or an external tool to try.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlplan.plan import SmokeRequest
from mlplan.serving import RecordValidator, load_served_model
from mlplan.workspace import Workspace

__all__ = ["SmokeResult", "smoke_test"]


@dataclass(frozen=True)
class SmokeResult:
    """What the smoke requests found: how many were sent and each failure, in words."""

    requests: int
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every request was answered as expected."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (an event's figures)."""
        return {
            "smoke": "pass" if self.passed else "fail",
            "requests": self.requests,
            "failures": list(self.failures),
        }


def smoke_test(ws: Workspace, candidate: str, requests: list[SmokeRequest]) -> SmokeResult:
    """Send each of ``requests`` to the package version ``candidate`` (``name@version``), as
    a server would answer it, and hold its answers to the request's expectations: a label
    per record, or values within ``min_value`` and ``max_value``.

    Raises
    ------
    PackageError
        The candidate's package does not load (a server could not serve it either).
    """
    model = load_served_model(ws, candidate)
    security = ws.plan.deployment.security
    validator = RecordValidator(
        model.signature,
        unseen_categories=security.unseen_categories,
        out_of_range=security.out_of_range,
    )
    failures: list[str] = []
    for number, request in enumerate(requests, start=1):
        where = f"rollout.smoke[{number - 1}]"
        validated = validator.validate(request.records)
        if validated.errors:
            first = validated.errors[0]
            failures.append(
                f"{where}: {candidate} refuses it: {'.'.join(map(str, first.loc[2:]))} {first.msg}"
            )
            continue
        try:
            labels, _ = model.run(validated.feeds)
        except Exception as exc:  # the graph failing on a valid request is the test failing
            failures.append(f"{where}: {candidate} raised: {str(exc).splitlines()[0][:200]}")
            continue
        failures += _held(where, request, labels)
    return SmokeResult(len(requests), failures)


def _held(where: str, request: SmokeRequest, labels: np.ndarray) -> list[str]:
    """The ways the answers miss what ``request`` expects."""
    missed = []
    if request.labels is not None:
        got = [str(label) for label in labels.tolist()]
        wrong = [
            f"record {i}: {g!r}, expected {e!r}"
            for i, (g, e) in enumerate(zip(got, request.labels, strict=True))
            if g != str(e)
        ]
        if wrong:
            missed.append(f"{where}: " + "; ".join(wrong[:3]))
    if request.min_value is not None or request.max_value is not None:
        values = np.asarray(labels, dtype=np.float64)
        low = -np.inf if request.min_value is None else request.min_value
        high = np.inf if request.max_value is None else request.max_value
        outside = [
            f"record {i}: {v:g}" for i, v in enumerate(values) if not low <= v <= high or v != v
        ]
        if outside:
            missed.append(f"{where}: outside [{low:g}, {high:g}]: " + "; ".join(outside[:3]))
    return missed
