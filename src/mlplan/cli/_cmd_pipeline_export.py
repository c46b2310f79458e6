"""``mlplan pipeline export``: the plan's pipeline as a scheduler's DAG file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from mlplan.cli._app import JsonOption, ProjectOption, app, workspace
from mlplan.cli._render import console, esc, print_json

pipeline_app = typer.Typer(
    help="The plan's pipeline for a scheduler (mlplan run runs it here).", no_args_is_help=True
)
app.add_typer(pipeline_app, name="pipeline")


@pipeline_app.command("export")
def pipeline_export(
    format: Annotated[
        Literal["airflow"],
        typer.Option("--format", help="airflow: an Apache Airflow 3 DAG file."),
    ] = "airflow",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Write the DAG here (default: dags/<project>_pipeline.py)."
        ),
    ] = None,
    store_url: Annotated[
        str | None,
        typer.Option(
            "--store-url",
            help="The store the tasks record in (default: $MLPLAN_STORE_URL when set); "
            "never one with a password.",
        ),
    ] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Write the plan's pipeline as a scheduler's DAG file.

    One task per step of mlplan run, each running its step alone (mlplan run STEP --only)
    under one pipeline run per DAG run, on the plan's pipeline.schedule with its retries.
    Point Airflow's dags_folder at the file's folder."""
    from mlplan.pipeline import export_pipeline

    export = export_pipeline(workspace(project), format, out=out, store_url=store_url)
    if json:
        print_json(export.to_dict())
        return
    schedule = export.schedule or "none (runs when triggered)"
    console.print(
        f"Wrote DAG [bold]{esc(export.dag_id)}[/] to {esc(str(export.path))} "
        f"(schedule: {esc(schedule)})."
    )
    for note in export.notes:
        console.print(f"[dim]{esc(note)}[/]")
