"""Deployment: the realtime server over ONNX model packages (records and the Open Inference
Protocol v2), checked against the package signature, with API keys by role and Prometheus
metrics."""

from __future__ import annotations

from mlplan.serving._config import ROUTE_ROLES, ServeConfig, is_loopback
from mlplan.serving._deployments import (
    PRODUCTION,
    DeploymentInfo,
    deploy,
    get_deployment,
    list_deployments,
)
from mlplan.serving._export import export_model
from mlplan.serving._keys import ROLES, ApiKeyInfo, KeyRing, create_key, list_keys, revoke_key
from mlplan.serving._loadtest import load_test
from mlplan.serving._log import PiiPolicy, PredictionLog, query_log
from mlplan.serving._model import PackageError, ServedModel, load_served_model
from mlplan.serving._records import latest_report
from mlplan.serving._score import ScoreReport, score_file
from mlplan.serving._serve import (
    check_clearance,
    compact_logs,
    create_app,
    log_folder,
    serve,
    serve_warnings,
    served_model,
)
from mlplan.serving._validate import FieldError, RecordValidator, TensorValidator

__all__ = [
    "PRODUCTION",
    "ROLES",
    "ROUTE_ROLES",
    "ApiKeyInfo",
    "DeploymentInfo",
    "FieldError",
    "KeyRing",
    "PackageError",
    "PiiPolicy",
    "PredictionLog",
    "RecordValidator",
    "ScoreReport",
    "ServeConfig",
    "ServedModel",
    "TensorValidator",
    "check_clearance",
    "compact_logs",
    "create_app",
    "create_key",
    "deploy",
    "export_model",
    "get_deployment",
    "is_loopback",
    "latest_report",
    "list_deployments",
    "list_keys",
    "load_served_model",
    "load_test",
    "log_folder",
    "query_log",
    "revoke_key",
    "score_file",
    "serve",
    "serve_warnings",
    "served_model",
]
