"""The monitoring stage: what a live model's deployment does, window by window — its software
(latency, throughput, errors), its inputs (missing values, ranges, drift against the training
reference), its outputs (classes, scores, product events), its ML metrics once labels arrive
(and an estimate before), and the business values feedback carries — and the alerts the
plan's rules raise on them.

It sits between serving (whose prediction log and feedback it reads) and rollout (whose
canary and shadow analyses use its statistics)."""

from __future__ import annotations

from mlplan.monitoring._alerts import (
    ALERT_STATES,
    RULE_FAMILIES,
    Alert,
    AlertCheck,
    RuleOutcome,
    WebhookDelivery,
    ack_alert,
    check_alerts,
    list_alerts,
    metric_names,
    metric_value,
    rule_outcomes,
    webhook_deliveries,
)
from mlplan.monitoring._drift import (
    CHI2_ROWS,
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
from mlplan.monitoring._follow import Follower, FollowSummary, FollowUpdate, follow
from mlplan.monitoring._prometheus import PrometheusRules, prometheus_rules
from mlplan.monitoring._records import (
    logged_json,
    logged_number,
    model_classes,
    model_failure,
    read_answers,
    records_slice_masks,
    records_table,
)
from mlplan.monitoring._webhook import (
    ATTEMPTS,
    BACKOFF_S,
    METADATA_HOSTS,
    Delivery,
    backoff_schedule,
    check_webhook_url,
    post_alerts,
)
from mlplan.monitoring._windows import (
    FAMILIES,
    MEASURED,
    WHOLE,
    MonitorResult,
    MonitorWindow,
    measure_span,
    monitor,
    stored_windows,
    window_bounds,
)

__all__: list[str] = [
    "ALERT_STATES",
    "ATTEMPTS",
    "BACKOFF_S",
    "CHI2_ROWS",
    "FAMILIES",
    "LARGE_ROWS",
    "MEASURED",
    "METADATA_HOSTS",
    "MIN_EXPECTED",
    "MIN_ROWS",
    "RULE_FAMILIES",
    "WHOLE",
    "Alert",
    "AlertCheck",
    "Calibration",
    "Delivery",
    "DriftMethod",
    "DriftReport",
    "EstimateResult",
    "FeatureDrift",
    "FollowSummary",
    "FollowUpdate",
    "Follower",
    "MonitorResult",
    "MonitorWindow",
    "PrometheusRules",
    "RuleOutcome",
    "WebhookDelivery",
    "ack_alert",
    "backoff_schedule",
    "check_alerts",
    "check_webhook_url",
    "estimable_metrics",
    "estimate_performance",
    "feature_drift",
    "fit_calibration",
    "follow",
    "list_alerts",
    "logged_json",
    "logged_number",
    "measure_span",
    "metric_names",
    "metric_value",
    "model_classes",
    "model_failure",
    "monitor",
    "output_drift",
    "post_alerts",
    "prometheus_rules",
    "read_answers",
    "records_slice_masks",
    "records_table",
    "rule_outcomes",
    "stored_windows",
    "webhook_deliveries",
    "window_bounds",
]
