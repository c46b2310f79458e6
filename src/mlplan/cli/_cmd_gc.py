"""``mlplan gc``."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlplan.cli._app import JsonOption, ProjectOption, app, workspace
from mlplan.cli._render import console, esc, print_json

if TYPE_CHECKING:
    from mlplan.workspace import Workspace


@app.command()
def gc(
    apply: Annotated[
        bool, typer.Option("--apply", help="Remove what a dry run lists (default: only list).")
    ] = False,
    older_than: Annotated[
        str,
        typer.Option(
            help="Leave files younger than this alone (90s, 30m, 1h, 2d): a command may "
            "still be writing them."
        ),
    ] = "1h",
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Remove what killed commands left: temporary files, and artifacts no record of the
    store names; and the columnar copies of tables whose snapshot is gone. A dry run unless
    --apply. Runs whose process is gone (a server killed) are closed as crashed."""
    from mlplan.workspace import collect_garbage

    ws = workspace(project)
    with _log_leftovers(ws) as leftovers:
        report = collect_garbage(ws, apply=apply, older_than=older_than, also=leftovers)
    if json:
        print_json({"project": ws.plan.project.name, **report.to_dict(ws.root)})
        return
    for run in report.crashed_runs:
        console.print(f"Closed {esc(run.job)} run {run.run_id[:8]} as crashed: {esc(run.reason)}")
    counts = report.counts()
    kinds = [
        f"{counts['temporary']} temporary file(s)",
        f"{counts['artifact']} artifact(s) no record names",
    ]
    if counts["copy"]:
        kinds.append(f"{counts['copy']} table copy(ies) whose snapshot is gone")
    what = f"{', '.join(kinds[:-1])} and {kinds[-1]}, {_size(report.size_bytes)}"
    if not report.files:
        console.print("Nothing to remove.")
    elif apply:
        console.print(f"Removed {what}" + (f" (run {report.run_id[:8]})" if report.run_id else ""))
    else:
        console.print(f"Would remove {what} (a dry run: --apply removes them):")
    for found in report.files:
        shown = found.to_dict(ws.root)
        console.print(
            f"  {found.kind:<9} {esc(shown['path'])}  {_size(found.size_bytes)}, "
            f"{_age(found.age_seconds)} old"
        )
    for note in report.kept:
        console.print(f"[dim]kept: {esc(note)}[/]")


def _log_leftovers(ws: Workspace) -> AbstractContextManager[list[Path]]:
    """The temporary files killed compactions left in the prediction logs, their logs held
    while gc runs (none when the serving extra is not installed: then no log was written)."""
    try:
        from mlplan.serving import compaction_leftovers, log_folder
    except ImportError:
        return nullcontext([])
    return compaction_leftovers(log_folder(ws, None))


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"
