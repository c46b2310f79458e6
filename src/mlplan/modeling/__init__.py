"""Modeling: tabular families trained on a split, each packaged as ONNX (preprocessing inside)
and checked for parity before it is registered."""

from __future__ import annotations

from mlplan.modeling._compare import Comparison, compare_models, latest_comparison
from mlplan.modeling._compute import feasibility, profile_package
from mlplan.modeling._features import FeatureSet, select_features
from mlplan.modeling._older import import_older_system, older_system_predictions
from mlplan.modeling._train import (
    BASELINE_FAMILY,
    DEFAULT_FAMILIES,
    Family,
    ModelInfo,
    build_pipeline,
    export_onnx,
    feature_frame,
    get_model,
    list_models,
    onnx_feeds,
    score_predictions,
    train_model,
)

__all__ = [
    "BASELINE_FAMILY",
    "DEFAULT_FAMILIES",
    "Comparison",
    "Family",
    "FeatureSet",
    "ModelInfo",
    "build_pipeline",
    "compare_models",
    "export_onnx",
    "feasibility",
    "feature_frame",
    "get_model",
    "import_older_system",
    "latest_comparison",
    "list_models",
    "older_system_predictions",
    "onnx_feeds",
    "profile_package",
    "score_predictions",
    "select_features",
    "train_model",
]
