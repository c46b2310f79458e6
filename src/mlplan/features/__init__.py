"""Features defined once: the plan's derived features (``features:``), their analyzers
computed on the training rows, compiled to DuckDB SQL for batch work and to ONNX nodes for a
package's graph, and the skew check that computes them both ways on the same rows."""

from __future__ import annotations

from mlplan.features._definitions import (
    ColumnType,
    DerivedFeature,
    FeatureDefinitions,
    analyzers_of,
    column_type,
)
from mlplan.features._fitted import FEATURES_FILE, FittedFeatures, fit_features, onnx_inputs
from mlplan.features._merge import prepend_features
from mlplan.features._onnx import FEATURE_OPSET, features_graph
from mlplan.features._skew import (
    SKEW_ATOL,
    SKEW_RTOL,
    SkewMismatch,
    SkewReport,
    check_features,
    check_skew,
    logged_rows,
)
from mlplan.features._sql import sql_query

__all__ = [
    "FEATURES_FILE",
    "FEATURE_OPSET",
    "SKEW_ATOL",
    "SKEW_RTOL",
    "ColumnType",
    "DerivedFeature",
    "FeatureDefinitions",
    "FittedFeatures",
    "SkewMismatch",
    "SkewReport",
    "analyzers_of",
    "check_features",
    "check_skew",
    "column_type",
    "features_graph",
    "fit_features",
    "logged_rows",
    "onnx_inputs",
    "prepend_features",
    "sql_query",
]
