"""The pipeline item: the plan's stages run as one pipeline (``mlplan run``), and a scheduler
runs it."""

from __future__ import annotations

from mlplan.checklist._status import ItemStatus, StatusContext, check
from mlplan.pipeline import PipelineRunInfo, list_pipeline_runs

__all__ = ["deploy_pipeline"]


def _when(run: PipelineRunInfo) -> str:
    return f"{run.started_at:%Y-%m-%d %H:%M}"


def _steps(run: PipelineRunInfo) -> str:
    return ", ".join(f"{n} {state}" for state, n in run.counts.items()) or "no steps"


def _transform(context: StatusContext) -> str:
    """How training and serving share their transform."""
    derived = len(context.ws.plan.features)
    if derived:
        return (
            f"{derived} derived feature(s) defined once in the plan, computed by DuckDB for "
            "training and inside each package's ONNX graph for serving (mlplan features "
            "check compares the two)"
        )
    return "preprocessing inside the ONNX graph (parity checked)"


@check("deploy.pipeline")
def deploy_pipeline(context: StatusContext) -> ItemStatus:
    """Done once a scheduler ran the pipeline to its end; failing when the newest scheduled
    run failed; missing while the pipeline only ran by hand, or never."""
    ws = context.ws
    schedule = ws.plan.pipeline.schedule
    wanted = f"pipeline.schedule is {schedule!r}" if schedule else "the plan has no schedule"
    export = "mlplan pipeline export --format airflow"
    scheduled = list_pipeline_runs(ws, limit=20, trigger="schedule")
    ended = [r for r in scheduled if r.state != "running"]
    if ended and ended[0].state != "completed":  # failed, crashed
        run = ended[0]
        failed = run.failed_step
        why = f" at step {failed.step}: {failed.error}" if failed and failed.error else ""
        return context.status(
            "deploy.pipeline",
            "failing",
            f"the newest scheduled run {run.id[:8]} ({_when(run)}) {run.state}{why}",
            "mlplan run --dry-run says why each step would run; fix it, and the next run "
            "resumes at the failed step",
        )
    if ended:
        run = ended[0]
        by = (run.scheduler or {}).get("name") or "a scheduler"
        return context.status(
            "deploy.pipeline",
            "done",
            f"scheduled by {by} ({wanted}): run {run.id[:8]} completed at {_when(run)} "
            f"({_steps(run)}); each step reused while its inputs are unchanged; "
            + _transform(context),
        )
    by_hand = list_pipeline_runs(ws, limit=1)
    if not by_hand:
        return context.status(
            "deploy.pipeline",
            "missing",
            f"no pipeline run yet: the stages were run by hand ({wanted})",
            "mlplan run (then schedule it: " + export + ")",
        )
    run = by_hand[0]
    return context.status(
        "deploy.pipeline",
        "missing",
        f"ran by hand (run {run.id[:8]}, {run.state}, {_when(run)}: {_steps(run)}); no "
        f"scheduler has run it yet ({wanted})",
        (f"{export}, and let Airflow run it" if schedule else
         f"set pipeline.schedule in the plan, then {export}"),
    )  # fmt: skip
