"""Modeling: tabular families trained on a split, each packaged as ONNX (preprocessing inside)
and checked for parity before it is registered."""

from __future__ import annotations

from mlplan.modeling._features import FeatureSet, select_features
from mlplan.modeling._train import (
    BASELINE_FAMILY,
    DEFAULT_FAMILIES,
    Family,
    ModelInfo,
    build_pipeline,
    export_onnx,
    get_model,
    list_models,
    onnx_feeds,
    train_model,
)

__all__ = [
    "BASELINE_FAMILY",
    "DEFAULT_FAMILIES",
    "Family",
    "FeatureSet",
    "ModelInfo",
    "build_pipeline",
    "export_onnx",
    "get_model",
    "list_models",
    "onnx_feeds",
    "select_features",
    "train_model",
]
