"""``mlplan init``, ``mlplan plan validate``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from mlplan.cli._app import JsonOption, ProjectOption, app, workspace
from mlplan.cli._render import console, esc, print_json
from mlplan.errors import UsageError

if TYPE_CHECKING:
    from mlplan.workspace import Workspace

plan_app = typer.Typer(help="Check the plan.", no_args_is_help=True)
app.add_typer(plan_app, name="plan")


@app.command()
def init(
    name: Annotated[str, typer.Argument(help="Project name, e.g. churn.")],
    task: Annotated[
        Literal["regression", "binary", "multiclass", "image_classification", "sequence"] | None,
        typer.Option("--task", "-t", help="The task (guessed with --from-data)."),
    ] = None,
    target: Annotated[str | None, typer.Option("--target", help="The target column.")] = None,
    from_data: Annotated[
        Path | None,
        typer.Option(
            "--from-data", exists=False, help="A CSV/Parquet/JSONL file or image folder to scan."
        ),
    ] = None,
    problem: Annotated[str | None, typer.Option(help="The problem statement.")] = None,
    owner: Annotated[str | None, typer.Option(help="The accountable owner.")] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Ask nothing; leave unknowns as TODO.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Replace an existing mlplan.yaml.")] = False,
    project: Annotated[
        Path | None,
        typer.Option(
            "--project", "-p", file_okay=False, help="Folder to create the plan in (default: here)."
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Write a complete, commented mlplan.yaml for the task (pre-filled from data if given)."""
    from mlplan.workspace import Workspace

    root = (project or Path.cwd()).resolve()
    Workspace.check_creatable(root, force=force)  # before asking anything
    if task is None and from_data is None:  # the command line can also guess it from data
        raise UsageError(
            "give the task with --task regression|binary|multiclass|image_classification|"
            "sequence (or --from-data FILE to guess it)"
        )
    if not yes and sys.stdin.isatty():
        problem, owner = _ask(problem, owner)
    if from_data is not None:
        from mlplan.data import create_from_data

        ws = create_from_data(
            root,
            name,
            from_data,
            task=task,
            target=target,
            problem=problem,
            owner=owner,
            force=force,
        )
    else:
        ws = Workspace.create(
            root, name, task=task, target=target, problem=problem, owner=owner, force=force
        )
    _print_created(ws, scanned=from_data is not None, json=json)


def _ask(problem: str | None, owner: str | None) -> tuple[str | None, str | None]:
    """The problem statement and owner, asked for when not given (enter leaves a TODO)."""
    problem = (
        problem
        or typer.prompt(
            "Problem statement (enter to leave as TODO)", default="", show_default=False
        )
        or None
    )
    owner = (
        owner
        or typer.prompt("Owner (enter to leave as TODO)", default="", show_default=False)
        or None
    )
    return problem, owner


def _print_created(ws: Workspace, *, scanned: bool, json: bool) -> None:
    plan = ws.plan
    if json:
        print_json(
            {
                "plan": str(ws.plan_path),
                "project": plan.project.name,
                "task": plan.task,
                "target": plan.target,
                "datasets": list(plan.datasets),
            }
        )
        return
    console.print(
        f"Wrote {esc(ws.plan_path)} — task {plan.task}"
        + (f", target {esc(plan.target)}" if plan.target else "")
    )
    first = next(iter(plan.datasets), "NAME")
    console.print(
        "Next: fill in the TODOs, then\n"
        "  mlplan plan validate\n"
        f"  mlplan data add {esc(first)}" + ("" if scanned else " FILE") + "\n"
        "  mlplan status"
    )


@plan_app.command("validate")
def validate(project: ProjectOption = None, json: JsonOption = False) -> None:
    """Validate mlplan.yaml, and check it against the registered data."""
    from mlplan.data import check_plan_against_data
    from mlplan.errors import PlanError

    ws = workspace(project)
    plan = ws.plan  # raises PlanError naming file, line and field
    problems = check_plan_against_data(ws) if ws.has_store else []
    if json:
        print_json(
            {
                "plan": str(ws.plan_path),
                "valid": not problems,
                "problems": problems,
                "project": plan.project.name,
                "task": plan.task,
                "target": plan.target,
                "datasets": list(plan.datasets),
                "slices": plan.slice_names,
            }
        )
        if problems:
            raise typer.Exit(PlanError.exit_code)
        return
    if problems:
        raise PlanError(
            f"{ws.plan_path.name}: {len(problems)} problem(s) against the data:\n  "
            + "\n  ".join(problems),
            problems,
        )
    console.print(
        f"{esc(ws.plan_path)} is valid: project {esc(plan.project.name)}, task {plan.task}, "
        f"{len(plan.datasets)} dataset(s), {len(plan.slices)} slice(s), "
        f"{len(plan.risks or [])} risk(s), rollout {plan.rollout_strategy}"
    )
