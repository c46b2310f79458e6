"""Importing this registers every command on the app."""

from __future__ import annotations

from mlplan.cli import (
    _cmd_alerts,
    _cmd_data,
    _cmd_evaluate,
    _cmd_features,
    _cmd_gc,
    _cmd_labels,
    _cmd_models,
    _cmd_monitor,
    _cmd_pipeline,
    _cmd_pipeline_export,
    _cmd_plan,
    _cmd_rollout,
    _cmd_serve,
    _cmd_status,
    _cmd_ui,
)

__all__ = [
    "_cmd_alerts",
    "_cmd_data",
    "_cmd_evaluate",
    "_cmd_features",
    "_cmd_gc",
    "_cmd_labels",
    "_cmd_models",
    "_cmd_monitor",
    "_cmd_pipeline",
    "_cmd_pipeline_export",
    "_cmd_plan",
    "_cmd_rollout",
    "_cmd_serve",
    "_cmd_status",
    "_cmd_ui",
]
