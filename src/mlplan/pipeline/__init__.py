"""Pipelines: the plan's stages as one cached, reproducible DAG (``mlplan run``)."""

from __future__ import annotations

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
    "PIPELINE_JOB",
    "STEPS",
    "Engine",
    "Outputs",
    "PipelineResult",
    "Step",
    "StepResult",
    "Trigger",
    "pipeline_key",
    "run_pipeline",
    "selected_steps",
    "step_job",
    "step_named",
]
