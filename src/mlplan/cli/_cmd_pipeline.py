"""``mlplan run`` and ``mlplan pipeline``."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from mlplan.cli._app import JsonOption, ProjectOption, app, workspace
from mlplan.cli._cmd_pipeline_export import pipeline_app
from mlplan.cli._render import console, esc, print_json

if TYPE_CHECKING:
    from mlplan.pipeline import PipelineResult, StepResult
    from mlplan.workspace import Workspace

_ICONS = {
    "ran": "[green]✓ ran[/]",
    "cached": "[green]↺ cached[/]",
    "failed": "[red]✗ failed[/]",
    "blocked": "[yellow]⊘ blocked[/]",
    "would run": "▶ would run",
    "would reuse": "↺ would reuse",
}


@app.command("run")
def run(
    steps: Annotated[
        list[str] | None,
        typer.Argument(
            help="Steps to run, each with the steps it needs (default: all): data, split, "
            "train, labels, compare, evaluate, gates, deploy.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Say for each step whether it runs or is reused, and why."),
    ] = False,
    trigger: Annotated[
        str,
        typer.Option(help="What started this run, recorded: manual, schedule or alert."),
    ] = "manual",
    if_alerted: Annotated[
        bool,
        typer.Option(
            "--if-alerted",
            help="Run only when an open alert of a rule under pipeline.retrain_on asks for "
            "it, on the newest data (cron or a webhook can call this); else say why not.",
        ),
    ] = False,
    only: Annotated[
        bool,
        typer.Option(
            "--only",
            help="Run just the STEPS given; the steps before them must have run with their "
            "present inputs (a scheduler's task runs one step so).",
        ),
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(help="The scheduler running it (e.g. airflow): recorded, with its run."),
    ] = None,
    scheduler_run: Annotated[
        str | None,
        typer.Option(
            help="The scheduler's run: every task of one scheduler run records its steps "
            "under one pipeline run."
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="Where the heavy work runs: local, or ray (profiling CSV and Parquet data, "
            "training, evaluation's predictions)."
        ),
    ] = "local",
    by: Annotated[
        str | None, typer.Option(help="Who starts the rollout it begins (default: mlplan run).")
    ] = None,
    note: Annotated[str | None, typer.Option(help="Why it runs, for the record.")] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Run the plan from its data to a rollout: register new data versions, split, train the
    plan's families, compare, evaluate the best, check its gates, roll it out by the plan's
    strategy. A step whose inputs (content hashes, the plan sections it reads, mlplan's
    version) are unchanged reuses its stored result; a failed step stops the steps after it
    (exit 1), and the next run resumes there."""
    from mlplan.pipeline import run_pipeline

    _exit_on_sigterm()
    ws = workspace(project)
    if if_alerted:
        _if_alerted(ws, steps, dry_run=dry_run, engine=engine, by=by, json=json)
        return
    given = None
    if scheduler is not None or scheduler_run is not None:
        given = {"name": scheduler, "run_id": scheduler_run}
    result = run_pipeline(
        ws,
        steps,
        dry_run=dry_run,
        only=only,
        scheduler=given,
        trigger=trigger,  # type: ignore[arg-type]  # checked by run_pipeline
        engine=engine,  # type: ignore[arg-type]
        by=by,
        note=note,
    )
    if json:
        print_json(result.to_dict())
    else:
        _render(result)
    if not result.ok:
        raise typer.Exit(1)


def _exit_on_sigterm() -> None:
    """SIGTERM (a scheduler's timeout, a pod stopped) ends the run as an exception would: the
    step under way and the pipeline run are closed as failed, not left running."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def _if_alerted(
    ws: Workspace, steps: list[str] | None, *, dry_run: bool, engine: str, by: str | None,
    json: bool,
) -> None:  # fmt: skip
    from mlplan.errors import UsageError
    from mlplan.pipeline import retrain_if_alerted

    if steps:
        raise UsageError("--if-alerted runs the whole pipeline: give no STEPS with it")
    found = retrain_if_alerted(ws, dry_run=dry_run, engine=engine, by=by)  # type: ignore[arg-type]
    if json:
        print_json(found.to_dict())
    elif found.result is None:
        console.print(f"Nothing to do: {esc(found.reason)}.")
    else:
        console.print(f"Retraining: {esc(found.reason)}.")
        _render(found.result)
    if found.result is not None and not found.result.ok:
        raise typer.Exit(1)


def _render(result: PipelineResult) -> None:
    table = Table("step", "state", "why", "result", "s")
    for step in result.steps:
        table.add_row(
            step.step,
            _ICONS[step.state],
            "see below" if step.state == "failed" else esc(step.reason),
            esc(_summary(step)),
            "" if step.state.startswith("would") else f"{step.seconds:.1f}",
        )
    console.print(table)
    for step in result.steps:
        if step.state == "failed":
            console.print(f"[red]✗ {step.step}:[/] {esc(step.reason)}")
    said = ", ".join(f"{n} {state}" for state, n in result.counts.items())
    if result.dry_run:
        console.print(f"Dry run: {said}; nothing was recorded.")
    else:
        assert result.run_id is not None
        console.print(
            f"Pipeline run {result.run_id[:8]} ({result.trigger}): {said} "
            f"in {result.seconds:.1f} s."
        )


def _summary(step: StepResult) -> str:
    """The step's result in a few words."""
    out = step.outputs or {}
    match step.step:
        case "data":
            versions = ", ".join(out.get("versions", {}).values())
            created = (out.get("created") or []) if step.state == "ran" else []
            return versions + (f" (new: {', '.join(created)})" if created else "")
        case "split":
            return str(out.get("split", ""))
        case "labels":
            if not out.get("round"):
                return str(out.get("note", "no labeling round"))
            exported = out.get("exported")
            said = f"batch {exported} exported for {out['round']}; " if exported else ""
            labeled = int(out.get("labeled") or 0)
            if not out.get("measured"):
                return said + "waiting for the annotators"
            hlp = "HLP measured" if out.get("hlp") == "measured" else f"no HLP: {out.get('hlp')}"
            return said + f"{labeled} labels back, agreement measured; {hlp}"
        case "train":
            return ", ".join(m["ref"] for m in out.get("models", []))
        case "compare":
            if "best" not in out:
                return ""
            value = out.get("value")
            shown = "" if value is None else f" {out.get('metric')} {value:.3f}"
            return f"best: {out['best']}{shown}"
        case "evaluate":
            if "model" not in out:
                return ""
            failed = out.get("failed_gates") or []
            return str(out["model"]) + (f", gates failed: {', '.join(failed)}" if failed else "")
        case "gates":
            return f"cleared by {out['cleared_by']}" if "cleared_by" in out else ""
        case "deploy":
            return str(out.get("action", ""))
    return ""


@pipeline_app.command("runs")
def pipeline_runs(
    limit: Annotated[int, typer.Option(help="At most this many, the newest first.")] = 20,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """The pipeline runs, newest first: what started each (by hand, a scheduler, an alert),
    how it ended, and its steps' states."""
    from mlplan.pipeline import list_pipeline_runs

    runs = list_pipeline_runs(workspace(project), limit=limit)
    if json:
        print_json([r.to_dict() for r in runs])
        return
    if not runs:
        console.print("no pipeline run yet: mlplan run")
        return
    table = Table("run", "started", "trigger", "state", "steps", "why")
    for run in runs:
        trigger = run.trigger + (
            f" ({run.scheduler['name']})" if run.scheduler else
            f" (alert {run.alert['id']})" if run.alert else ""
        )  # fmt: skip
        table.add_row(
            run.id[:8],
            f"{run.started_at:%Y-%m-%d %H:%M}",
            esc(trigger),
            esc(run.state),
            ", ".join(f"{n} {s}" for s, n in run.counts.items()),
            esc(run.note or ""),
        )
    console.print(table)


@pipeline_app.command("show")
def pipeline_show(
    run_id: Annotated[
        str | None,
        typer.Argument(help="A pipeline run, or the start of its id (default: the newest)."),
    ] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """One pipeline run step by step: each step's state, the run whose result it reused, its
    error, its result."""
    from mlplan.pipeline import get_pipeline_run

    run = get_pipeline_run(workspace(project), run_id)
    if json:
        print_json(run.to_dict())
        return
    console.print(
        f"Pipeline run {run.id} ({run.trigger}, by {esc(run.user)}), {run.state}, started "
        f"{run.started_at:%Y-%m-%d %H:%M:%S}" + (f": {esc(run.note)}" if run.note else "")
    )
    table = Table("step", "state", "run", "reused", "result or error")
    for step in run.steps:
        result = step.error or _summary_of(step.step, step.state, step.outputs or {})
        table.add_row(
            step.step,
            esc(step.state),
            step.run_id[:8],
            (step.reused or "")[:8],
            esc(result),
        )
    recorded = {step.step for step in run.steps}
    for name, state in run.states.items():  # stopped by a step before: no run of its own
        if name not in recorded:
            table.add_row(name, esc(state), "", "", "")
    console.print(table)


def _summary_of(step: str, state: str, outputs: dict[str, Any]) -> str:
    from mlplan.pipeline import StepResult

    return _summary(StepResult(step, "ran" if state == "completed" else "cached", "", outputs))
