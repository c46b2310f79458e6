"""The monitoring stage: what a live model's deployment does, window by window — its software
(latency, throughput, errors), its inputs (missing values, ranges, drift against the training
reference), its outputs (classes, scores, product events), its ML metrics once labels arrive
(and an estimate before), and the business values feedback carries — and the alerts the
plan's rules raise on them.

It sits between serving (whose prediction log and feedback it reads) and rollout (whose
canary and shadow analyses use its statistics)."""

from __future__ import annotations

from mlplan.monitoring._drift import (
    LARGE_ROWS,
    MIN_EXPECTED,
    MIN_ROWS,
    DriftMethod,
    DriftReport,
    FeatureDrift,
    feature_drift,
    output_drift,
)

__all__: list[str] = [
    "LARGE_ROWS",
    "MIN_EXPECTED",
    "MIN_ROWS",
    "DriftMethod",
    "DriftReport",
    "FeatureDrift",
    "feature_drift",
    "output_drift",
]
