"""``mlplan init``, ``mlplan plan validate``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from mlplan.cli._app import JsonOption, ProjectOption, app, opened, workspace
from mlplan.cli._render import console, esc, print_json
from mlplan.errors import UsageError

if TYPE_CHECKING:
    from mlplan.plan import DataSuggestions
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
    positive_class: Annotated[
        str | None,
        typer.Option(
            "--positive-class",
            help="Binary: the class FP/FN and recall refer to (default with --from-data: the "
            "minority).",
        ),
    ] = None,
    from_data: Annotated[
        Path | None,
        typer.Option(
            "--from-data", exists=False, help="A CSV/Parquet/JSONL file or image folder to scan."
        ),
    ] = None,
    delimiter: Annotated[
        str | None,
        typer.Option(
            help="The --from-data CSV file's delimiter: one character, or comma, semicolon, tab, "
            "pipe (default: found from the file).",
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
    ask = not yes and sys.stdin.isatty()
    if ask:
        problem, owner = _ask(problem, owner)
    if from_data is not None:
        from mlplan.data import create_from_data, scan_data

        scanned = scan_data(from_data, target=target, delimiter=delimiter)
        if target is None and task != "image_classification" and scanned.format != "images":
            target = _settle_target(scanned, ask=ask)
            if scanned.target is None or target != scanned.target.value:
                scanned = scan_data(from_data, target=target, delimiter=delimiter)
        if (
            positive_class is None
            and scanned.positive is not None
            and (task or scanned.task) == "binary"
        ):
            positive_class = _settle_positive(scanned, ask=ask)
        ws = opened(
            create_from_data(
                root,
                name,
                from_data,
                task=task,
                target=target,
                positive_class=positive_class,
                problem=problem,
                owner=owner,
                force=force,
                scanned=scanned,
            )
        )
        # A positive class given or answered is not the scan's to explain.
        _print_created(ws, scanned=scanned, scanned_positive=positive_class is None, json=json)
        return
    ws = opened(
        Workspace.create(
            root,
            name,
            task=task,
            target=target,
            positive_class=positive_class,
            problem=problem,
            owner=owner,
            force=force,
        )
    )
    _print_created(ws, scanned=None, json=json)


def _settle_target(scanned: DataSuggestions, *, ask: bool) -> str:
    """The target column: the scan's choice when it is sure, else asked for (the candidates
    shown, likeliest first) or refused with the candidates listed."""
    from mlplan.data import check_target_choice

    choice = scanned.target
    if choice is not None and choice.sure:
        return choice.value
    if not ask or not scanned.ranking:
        check_target_choice(scanned)  # raises, listing the candidates
    console.print("No column is clearly the target. Candidates, likeliest first:")
    for i, c in enumerate(scanned.ranking[:10], 1):
        console.print(f"  {i}. {esc(c.name)} ({esc(c.reason)})")
    numbered = {str(i): c.name for i, c in enumerate(scanned.ranking[:10], 1)}
    return _choose(
        "Target column (name or number)",
        scanned.ranking[0].name,
        numbered,
        [c.name for c in scanned.columns],
    )


def _choose(question: str, default: str, numbered: dict[str, str], names: list[str]) -> str:
    """An answer among ``names`` (or a number of ``numbered``), asked until one is given."""
    while True:
        answer = str(typer.prompt(question, default=default)).strip()
        answer = numbered.get(answer, answer)
        if answer in names:
            return answer
        console.print(f"{esc(answer)!r} is not one of: {esc(', '.join(names))}")


def _settle_positive(scanned: DataSuggestions, *, ask: bool) -> str | None:
    """The positive class, asked for when the scan is unsure of its choice (None: the plan
    takes the scan's, the minority, and says why)."""
    choice = scanned.positive
    assert choice is not None
    if choice.sure or not ask:
        return None
    console.print(f"Positive class: not sure — {esc(choice.reason)}")
    classes = list(scanned.class_shares)
    return _choose(
        "Positive class (the event FP/FN and recall refer to)", choice.value, {}, classes
    )


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


def _print_created(
    ws: Workspace,
    *,
    scanned: DataSuggestions | None,
    json: bool,
    scanned_positive: bool = False,
) -> None:
    plan = ws.plan
    positive = plan.positive_class if scanned_positive else None
    found = _scan_findings(scanned, target=plan.target, positive=positive)
    if json:
        print_json(
            {
                "plan": str(ws.plan_path),
                "project": plan.project.name,
                "task": plan.task,
                "target": plan.target,
                "positive_class": plan.positive_class,
                "datasets": list(plan.datasets),
            }
            | found
        )
        return
    if found.get("target_reason"):
        console.print(f"Target {esc(plan.target)}: {esc(found['target_reason'])}")
    others = found.get("other_candidates") or []
    if others:
        console.print(
            "  other candidates: "
            + "; ".join(f"{esc(c['name'])} ({esc(c['reason'])})" for c in others[:5])
        )
    if found.get("positive_reason"):
        console.print(
            f"Positive class {esc(plan.positive_class)}: {esc(found['positive_reason'])}"
            + ("" if found["positive_sure"] else " — not sure: choose with --positive-class")
        )
    for column, reason in (found.get("sensitive") or {}).items():
        console.print(f"Sensitive attribute {esc(column)}: {esc(reason)}")
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


def _scan_findings(
    scanned: DataSuggestions | None, *, target: str | None, positive: str | None
) -> dict[str, Any]:
    """What the scan chose and why: the target and the other candidates, the positive
    class (``positive``: the plan's when the scan chose it), the sensitive attributes."""
    if scanned is None:
        return {}
    out: dict[str, Any] = {
        "sensitive": {c.name: c.reason for c in scanned.columns if c.role == "sensitive"}
    }
    choice = scanned.target
    if choice is not None and choice.value == target:
        if choice.reason != "given":
            out["target_reason"] = choice.reason
            out["other_candidates"] = [
                {"name": c.name, "reason": c.reason} for c in scanned.ranking if c.name != target
            ]
        pos = scanned.positive
        if pos is not None and pos.value == positive:
            out |= {"positive_reason": pos.reason, "positive_sure": pos.sure}
    return out


@plan_app.command("validate")
def validate(project: ProjectOption = None, json: JsonOption = False) -> None:
    """Validate mlplan.yaml, and check it against the registered data."""
    from mlplan.data import check_plan_against_data
    from mlplan.errors import PlanError
    from mlplan.modeling import hyperparameter_problems

    ws = workspace(project)
    plan = ws.plan  # raises PlanError naming file, line and field
    problems = hyperparameter_problems(plan)
    problems += check_plan_against_data(ws) if ws.has_store else []
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
