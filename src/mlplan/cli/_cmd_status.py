"""``mlplan status``, ``mlplan approve``, ``mlplan lineage``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table
from rich.tree import Tree

from mlplan.cli._app import JsonOption, ProjectOption, app, workspace
from mlplan.cli._render import console, esc, print_json

if TYPE_CHECKING:
    from mlplan.checklist import ItemStatus
    from mlplan.lineage import LineageGraph

_STATE_STYLE = {
    "done": ("✔ done", "green"),
    "missing": ("○ missing", "yellow"),
    "failing": ("✘ failing", "red bold"),
    "not_applicable": ("– n/a", "dim"),
}


@app.command()
def status(
    strict: Annotated[bool, typer.Option(help="Exit 1 when any item is failing.")] = False,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Show every item of the lifecycle checklist: done, missing, failing or n/a."""
    from mlplan.checklist import status as compute_status

    ws = workspace(project)
    report = compute_status(ws)
    if json:
        print_json({"project": ws.plan.project.name, **report.to_dict()})
    else:
        console.print(f"[bold]{esc(ws.plan.project.name)}[/] — {esc(ws.plan_path)}")
        for stage, items in report.by_stage().items():
            console.print(_stage_table(stage, items))
        counts = report.counts()
        console.print(
            f"{counts['done']} done, {counts['missing']} missing, "
            f"{counts['failing']} failing, {counts['not_applicable']} n/a"
        )
    if strict and report.failing:
        if not json:
            console.print("[red]failing: " + ", ".join(s.item.id for s in report.failing) + "[/]")
        raise typer.Exit(1)


def _stage_table(stage: str, items: list[ItemStatus]) -> Table:
    """One stage's items: state, item (title and id), evidence and the next step."""
    table = Table(
        title=stage,
        title_justify="left",
        show_header=False,
        expand=True,
        title_style="bold",
    )
    table.add_column("state", no_wrap=True, width=11)
    table.add_column("item", ratio=2)
    table.add_column("evidence / next", ratio=5)
    for st in items:
        label, style = _STATE_STYLE[st.state]
        text = esc(st.evidence) + (f"\n[cyan]next:[/] {esc(st.next_step)}" if st.next_step else "")
        table.add_row(f"[{style}]{label}[/]", f"{st.item.title}\n[dim]{st.item.id}[/]", text)
    return table


@app.command()
def approve(
    gate: Annotated[
        str, typer.Argument(help="The gate, as in the plan's approvals (e.g. buy_in).")
    ],
    role: Annotated[str, typer.Option(help="The role you sign as; must match the plan.")],
    by: Annotated[str, typer.Option(help="Who signs.")],
    note: Annotated[str | None, typer.Option(help="Why, or on what conditions.")] = None,
    subject: Annotated[
        str | None,
        typer.Option(
            help="What is approved, e.g. a model version (logistic-1@2) or a dataset "
            "version (customers@2)."
        ),
    ] = None,
    evaluation: Annotated[
        str | None,
        typer.Option(
            help="With the deploy gate: the failed evaluation this approval overrides, by id "
            "(default: the subject's newest)."
        ),
    ] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Record a sign-off of a gate by the role the plan names. A deploy approval names one
    model version and the evaluation it overrides, and covers that evaluation only."""
    from mlplan.workspace import approve as record_approval

    record = record_approval(
        workspace(project),
        gate,
        role=role,
        by=by,
        note=note,
        subject=subject,
        evaluation=evaluation,
    )
    card = _refresh_card(project, record.gate, record.subject)
    if json:
        print_json(record.to_dict())
        return
    overrides = (
        f" of {esc(record.subject)} despite evaluation {esc(record.evaluation)}"
        if record.evaluation
        else ""
    )
    console.print(
        f"Approved [bold]{esc(record.gate)}[/]{overrides} by {esc(record.by)} "
        f"({esc(record.role)}) at "
        f"{record.created_at:%Y-%m-%d %H:%M UTC}; approval {record.id} (to withdraw it: "
        f"mlplan approvals revoke {record.id})"
    )
    if card is not None:
        console.print(f"Model card updated: {esc(card / 'model-card.md')}")


def _refresh_card(project: Path | None, gate: str, subject: str | None) -> Path | None:
    """After a deploy approval is given or revoked, the model card in reports/ is written
    again from the store (the one stored with the evaluation stays a snapshot)."""
    from mlplan.evaluation import refresh_model_card
    from mlplan.workspace import DEPLOY_GATE

    if gate != DEPLOY_GATE or not subject:
        return None
    return refresh_model_card(workspace(project), subject)


approvals_app = typer.Typer(help="Sign-offs on the record: list and revoke.", no_args_is_help=True)
app.add_typer(approvals_app, name="approvals")


@approvals_app.command("list")
def approvals_list(
    gate: Annotated[str | None, typer.Option(help="Only this gate.")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Revoked ones too (they stay on the record).")
    ] = False,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """The approvals that count (and, with --all, the revoked ones)."""
    from mlplan.workspace import list_approvals

    found = list_approvals(workspace(project), gate, include_revoked=all_)
    if json:
        print_json([a.to_dict() for a in found])
        return
    if not found:
        console.print(
            f"no approvals{f' of {esc(gate)}' if gate else ''}"
            f"{'' if all_ else ' that count (--all shows revoked ones)'}: "
            "mlplan approve GATE --role ROLE --by NAME"
        )
        return
    table = Table("id", "gate", "subject", "role", "by", "when", "note", "revoked")
    for a in found:
        table.add_row(
            str(a.id),
            esc(a.gate),
            esc(a.subject or "")
            + (f" (over evaluation {esc(a.evaluation[:8])})" if a.evaluation else ""),
            esc(a.role),
            esc(a.by),
            f"{a.created_at:%Y-%m-%d %H:%M}",
            esc(a.note or ""),
            ""
            if a.active
            else f"by {esc(a.revoked_by or '')} {a.revoked_at:%Y-%m-%d %H:%M}"
            + (f": {esc(a.revoke_note)}" if a.revoke_note else ""),
        )
    console.print(table)


@approvals_app.command("revoke")
def approvals_revoke(
    approval_id: Annotated[int, typer.Argument(metavar="ID", help="From mlplan approvals list.")],
    role: Annotated[str, typer.Option(help="The role that signs the gate, per the plan.")],
    by: Annotated[str, typer.Option(help="Who revokes.")],
    note: Annotated[str | None, typer.Option(help="Why.")] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Withdraw a sign-off: it stays on the record and no longer counts."""
    from mlplan.workspace import revoke_approval

    record = revoke_approval(workspace(project), approval_id, role=role, by=by, note=note)
    card = _refresh_card(project, record.gate, record.subject)
    if json:
        print_json(record.to_dict())
        return
    console.print(
        f"Revoked approval {record.id} of [bold]{esc(record.gate)}[/]"
        + (f" for {esc(record.subject)}" if record.subject else "")
        + f" (signed by {esc(record.by)})"
    )
    if card is not None:
        console.print(f"Model card updated: {esc(card / 'model-card.md')}")


@app.command()
def lineage(
    ref: Annotated[
        str,
        typer.Argument(
            help="A dataset version (customers@2), a split (customers@2/s1), a label set "
            "(customers@2:labels) or report (customers@2:hlp), a model or a file path."
        ),
    ],
    format: Annotated[
        Literal["tree", "json", "openlineage"],
        typer.Option(
            "--format",
            "-f",
            help="tree (terminal), json, or openlineage (RunEvents, one JSON object per line).",
        ),
    ] = "tree",
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Walk the lineage of something upstream (what made it) and downstream (what used it)."""
    from mlplan.lineage import lineage as walk
    from mlplan.lineage import to_openlineage

    ws = workspace(project)
    graph = walk(ws, ref)
    if format == "openlineage":
        import json as json_module

        for event in to_openlineage(ws, graph):
            typer.echo(json_module.dumps(event, default=str))
        return
    if json or format == "json":
        print_json(graph.to_dict())
        return
    tree = Tree(
        f"[bold]{esc(graph.subject.ref)}[/] ({graph.subject.kind}"
        + (f", sha256 {graph.subject.sha256[:12]}…" if graph.subject.sha256 else "")
        + ")"
    )
    up = tree.add("[cyan]upstream[/] — how it was made")
    _grow(up, graph, graph.subject.ref, "upstream", set())
    down = tree.add("[cyan]downstream[/] — what was made from it")
    _grow(down, graph, graph.subject.ref, "downstream", set())
    console.print(tree)


def _grow(branch: Tree, graph: LineageGraph, ref: str, way: str, seen: set[str]) -> None:
    producer = graph.producer_of(ref) if way == "upstream" else None
    runs = ([producer] if producer else []) if way == "upstream" else graph.consumers_of(ref)
    for run in runs:
        when = f"{run.started_at:%Y-%m-%d %H:%M}"
        code = f", code {run.code_version[:12]}" if run.code_version else ""
        above = graph.ancestry(run)
        under = (
            f" in {esc(above[0].job)}"
            + (f" of pipeline run {above[-1].id[:8]}" if len(above) > 1 else "")
            if above
            else ""
        )
        node = branch.add(
            f"[magenta]{esc(run.job)}[/] run {run.id[:8]} by {esc(run.user)} at {when}"
            f"{esc(code)}{under}"
        )
        if run.id in seen:
            continue
        seen.add(run.id)
        nodes = run.inputs if way == "upstream" else run.outputs
        for item in nodes:
            sha = f" sha256 {item.sha256[:12]}…" if item.sha256 else ""
            child = node.add(f"{esc(item.ref)} ({item.kind}){sha}")
            _grow(child, graph, item.ref, way, seen)
    if not runs and way == "upstream":
        branch.add("[dim](no run made it: an original input)[/]")
