"""Deployment: the realtime server over ONNX model packages (records and the Open Inference
Protocol v2), checked against the package signature, with API keys by role and Prometheus
metrics."""

from __future__ import annotations

from mlplan._deprecated import moved_names as _moved_names
from mlplan.serving._clearance import Clearance, check_clearance, clearance
from mlplan.serving._config import ROUTE_ROLES, ServeConfig, is_loopback
from mlplan.serving._deployments import check_deployment_name, deploy, point_deployment
from mlplan.serving._export import BrowserExportReport, EdgeExportReport, export_model
from mlplan.serving._extra import ExtraRoute, RouteCall, route_roles
from mlplan.serving._keys import (
    ROLES,
    ApiKeyInfo,
    KeyRing,
    NewApiKey,
    create_key,
    list_keys,
    revoke_key,
)
from mlplan.serving._loadtest import LoadTestReport, ObjectiveCheck, load_test
from mlplan.serving._log import (
    PiiPolicy,
    PredictionLog,
    compaction_leftovers,
    open_log,
    query_log,
    time_text,
    window_segments,
)
from mlplan.serving._model import ServedModel, load_served_model
from mlplan.serving._score import ScoreReport, score_file
from mlplan.serving._serve import (
    PLAIN_APP,
    CompactionReport,
    compact_logs,
    create_app,
    log_folder,
    serve,
    serve_warnings,
    served_model,
)
from mlplan.serving._validate import FieldError, RecordValidator, TensorValidator

__all__ = [
    "PLAIN_APP",
    "ROLES",
    "ROUTE_ROLES",
    "ApiKeyInfo",
    "BrowserExportReport",
    "Clearance",
    "CompactionReport",
    "EdgeExportReport",
    "ExtraRoute",
    "FieldError",
    "KeyRing",
    "LoadTestReport",
    "NewApiKey",
    "ObjectiveCheck",
    "PiiPolicy",
    "PredictionLog",
    "RecordValidator",
    "RouteCall",
    "ScoreReport",
    "ServeConfig",
    "ServedModel",
    "TensorValidator",
    "check_clearance",
    "check_deployment_name",
    "clearance",
    "compact_logs",
    "compaction_leftovers",
    "create_app",
    "create_key",
    "deploy",
    "export_model",
    "is_loopback",
    "list_keys",
    "load_served_model",
    "load_test",
    "log_folder",
    "open_log",
    "point_deployment",
    "query_log",
    "revoke_key",
    "route_roles",
    "score_file",
    "serve",
    "serve_warnings",
    "served_model",
    "time_text",
    "window_segments",
]

__getattr__ = _moved_names(
    __name__,
    {
        "PRODUCTION": "mlplan.workspace.PRODUCTION",
        "DeploymentInfo": "mlplan.workspace.DeploymentInfo",
        "PackageError": "mlplan.errors.PackageError",
        "get_deployment": "mlplan.workspace.get_deployment",
        "latest_report": (
            "mlplan.serving._records.latest_report",
            "Workspace.latest_report(kind, where=...)",
        ),
        "list_deployments": "mlplan.workspace.list_deployments",
    },
)
