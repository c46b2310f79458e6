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
from mlplan.monitoring._estimate import (
    Calibration,
    EstimateResult,
    estimable_metrics,
    estimate_performance,
    fit_calibration,
)
from mlplan.monitoring._records import (
    logged_json,
    logged_number,
    model_classes,
    model_failure,
    read_answers,
    records_slice_masks,
    records_table,
)
from mlplan.monitoring._windows import (
    FAMILIES,
    WHOLE,
    MonitorResult,
    MonitorWindow,
    monitor,
    stored_windows,
    window_bounds,
)

__all__: list[str] = [
    "FAMILIES",
    "LARGE_ROWS",
    "MIN_EXPECTED",
    "MIN_ROWS",
    "WHOLE",
    "Calibration",
    "DriftMethod",
    "DriftReport",
    "EstimateResult",
    "FeatureDrift",
    "MonitorResult",
    "MonitorWindow",
    "estimable_metrics",
    "estimate_performance",
    "feature_drift",
    "fit_calibration",
    "logged_json",
    "logged_number",
    "model_classes",
    "model_failure",
    "monitor",
    "output_drift",
    "read_answers",
    "records_slice_masks",
    "records_table",
    "stored_windows",
    "window_bounds",
]
