"""Pipelines: the plan's stages as one cached, reproducible DAG (``mlplan run``)."""

from __future__ import annotations

from mlplan.pipeline._airflow import (
    PIPELINE_EXPORT_FORMATS,
    PipelineExport,
    PipelineExportFormat,
    export_pipeline,
)
from mlplan.pipeline._history import (
    PipelineRunInfo,
    PipelineStepInfo,
    get_pipeline_run,
    list_pipeline_runs,
)
from mlplan.pipeline._retrain import Retraining, retrain_if_alerted, retraining_alert
from mlplan.pipeline._run import (
    PIPELINE_JOB,
    PipelineResult,
    StepResult,
    Trigger,
    pipeline_key,
    run_pipeline,
    selected_steps,
    step_job,
)
from mlplan.pipeline._steps import STEPS, Engine, Outputs, Step, step_named

__all__ = [
    "PIPELINE_EXPORT_FORMATS",
    "PIPELINE_JOB",
    "STEPS",
    "Engine",
    "Outputs",
    "PipelineExport",
    "PipelineExportFormat",
    "PipelineResult",
    "PipelineRunInfo",
    "PipelineStepInfo",
    "Retraining",
    "Step",
    "StepResult",
    "Trigger",
    "export_pipeline",
    "get_pipeline_run",
    "list_pipeline_runs",
    "pipeline_key",
    "retrain_if_alerted",
    "retraining_alert",
    "run_pipeline",
    "selected_steps",
    "step_job",
    "step_named",
]
