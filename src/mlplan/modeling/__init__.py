"""Modeling: families trained on a split — tabular (ridge, logistic regression, LightGBM),
images (a pretrained CNN), sequences (GRU/LSTM, or the tabular families on window features) —
each packaged as ONNX with its preprocessing inside and checked for parity before it is
registered; tuned with a seeded search and run in parallel on Ray when asked. ``FAMILIES`` is
the one registry of families."""

from __future__ import annotations

from mlplan.modeling._compare import Comparison, compare_models, latest_comparison
from mlplan.modeling._compute import (
    ComputeProfile,
    FeasibilityCheck,
    feasibility,
    profile_package,
)
from mlplan.modeling._engine import ray_session
from mlplan.modeling._families import (
    BASELINE_FAMILY,
    DEFAULT_FAMILIES,
    FAMILIES,
    SEARCH_SPACES,
    Family,
    ModelFamily,
    hyperparameter_problems,
)
from mlplan.modeling._features import FeatureSet, feature_frame, onnx_feeds, select_features
from mlplan.modeling._inputs import (
    example_rows,
    feeds_for,
    inputs_for,
    target_column,
    target_kind,
    target_values,
)
from mlplan.modeling._metrics import (
    BINARY_METRICS,
    MULTICLASS_METRICS,
    NEEDS_PROBA,
    REGRESSION_METRICS,
    MetricEstimate,
    PredictionKind,
    Predictions,
    aggregate,
    interval,
    metrics_for,
    metrics_from_confusion,
    per_class_from_confusion,
)
from mlplan.modeling._models import ModelInfo, get_model, list_models, parse_model_ref
from mlplan.modeling._older import (
    OlderSystemInfo,
    OlderSystemPredictions,
    import_older_system,
    older_system_predictions,
    read_predictions,
)
from mlplan.modeling._package import run_graph
from mlplan.modeling._reference import (
    CategoricalReference,
    NumericReference,
    OutputReference,
    TrainingReference,
    training_reference,
)
from mlplan.modeling._register import PackageDraft, draft_version, register_version
from mlplan.modeling._resample import bootstrap
from mlplan.modeling._screen import (
    LEAK_THRESHOLD,
    SCREEN_SAMPLE_ROWS,
    FeatureScreen,
    screen_features,
)
from mlplan.modeling._signature import InputKind, PackageSignature, SignatureInput
from mlplan.modeling._slice_report import SliceReport, slice_metrics
from mlplan.modeling._tabular import build_pipeline, export_onnx, score_predictions
from mlplan.modeling._train import train_model, train_models

__all__ = [
    "BASELINE_FAMILY",
    "BINARY_METRICS",
    "DEFAULT_FAMILIES",
    "FAMILIES",
    "LEAK_THRESHOLD",
    "MULTICLASS_METRICS",
    "NEEDS_PROBA",
    "REGRESSION_METRICS",
    "SCREEN_SAMPLE_ROWS",
    "SEARCH_SPACES",
    "CategoricalReference",
    "Comparison",
    "ComputeProfile",
    "Family",
    "FeasibilityCheck",
    "FeatureScreen",
    "FeatureSet",
    "InputKind",
    "MetricEstimate",
    "ModelFamily",
    "ModelInfo",
    "NumericReference",
    "OlderSystemInfo",
    "OlderSystemPredictions",
    "OutputReference",
    "PackageDraft",
    "PackageSignature",
    "PredictionKind",
    "Predictions",
    "SignatureInput",
    "SliceReport",
    "TrainingReference",
    "aggregate",
    "bootstrap",
    "build_pipeline",
    "compare_models",
    "draft_version",
    "example_rows",
    "export_onnx",
    "feasibility",
    "feature_frame",
    "feeds_for",
    "get_model",
    "hyperparameter_problems",
    "import_older_system",
    "inputs_for",
    "interval",
    "latest_comparison",
    "list_models",
    "metrics_for",
    "metrics_from_confusion",
    "older_system_predictions",
    "onnx_feeds",
    "parse_model_ref",
    "per_class_from_confusion",
    "profile_package",
    "ray_session",
    "read_predictions",
    "register_version",
    "run_graph",
    "score_predictions",
    "screen_features",
    "select_features",
    "slice_metrics",
    "target_column",
    "target_kind",
    "target_values",
    "train_model",
    "train_models",
    "training_reference",
]
