"""Error analysis: metrics overall and per slice with bootstrap intervals, error types,
rare classes, where to focus, regressions against the older system, slice discovery, the
plan's risks and gates, and the report and model card."""

from __future__ import annotations

from mlplan._deprecated import moved_names as _moved_names
from mlplan.evaluation._analysis import versus_constant
from mlplan.evaluation._card import ModelCard, model_card, refresh_model_card
from mlplan.evaluation._discovery import (
    Condition,
    DiscoveredSlice,
    DiscoveryResult,
    candidate_conditions,
    discover_slices,
)
from mlplan.evaluation._evaluate import (
    Evaluation,
    evaluate,
    evaluate_predictions,
    raise_for_gates,
)
from mlplan.evaluation._gates import THRESHOLD_RISK
from mlplan.evaluation._predict import package_metadata
from mlplan.evaluation._records import EvaluationInfo, latest_evaluation, list_evaluations
from mlplan.modeling import (
    BINARY_METRICS,
    MULTICLASS_METRICS,
    REGRESSION_METRICS,
    MetricEstimate,
    Predictions,
    SliceReport,
    metrics_for,
    slice_metrics,
)

__all__ = [
    "BINARY_METRICS",
    "MULTICLASS_METRICS",
    "REGRESSION_METRICS",
    "THRESHOLD_RISK",
    "Condition",
    "DiscoveredSlice",
    "DiscoveryResult",
    "Evaluation",
    "EvaluationInfo",
    "MetricEstimate",
    "ModelCard",
    "Predictions",
    "SliceReport",
    "candidate_conditions",
    "discover_slices",
    "evaluate",
    "evaluate_predictions",
    "latest_evaluation",
    "list_evaluations",
    "metrics_for",
    "model_card",
    "package_metadata",
    "raise_for_gates",
    "refresh_model_card",
    "slice_metrics",
    "versus_constant",
]

__getattr__ = _moved_names(
    __name__,
    {
        "Clearance": "mlplan.serving.Clearance",
        "LOWER_IS_BETTER": "mlplan.core.LOWER_IS_BETTER",
        "OVERRIDE_GATE": "mlplan.workspace.DEPLOY_GATE",
        "clearance": "mlplan.serving.clearance",
    },
)
