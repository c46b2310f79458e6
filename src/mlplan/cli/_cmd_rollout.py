"""``mlplan rollout status|history|promote|pause|resume|abort|rollback|export``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.table import Table

from mlplan.cli._app import JsonOption, ProjectOption, app, workspace
from mlplan.cli._render import console, err_console, esc, print_json

if TYPE_CHECKING:
    from mlplan.rollout import Action, Analysis, Decision, RolloutInfo

rollout_app = typer.Typer(
    help="Rollouts: how a deployment moves from its stable model to a candidate "
    "(started by mlplan deploy).",
    no_args_is_help=True,
)
app.add_typer(rollout_app, name="rollout")

NameArgument = Annotated[str, typer.Argument(help="The deployment, e.g. production.")]
ByOption = Annotated[str, typer.Option(help="Who makes the move (recorded).")]
NoteOption = Annotated[str | None, typer.Option(help="Why, for the record.")]


@rollout_app.command("status")
def status(
    name: Annotated[
        str | None, typer.Argument(help="The deployment (default: every deployment).")
    ] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """The newest rollout of each deployment (or of NAME): strategy, state, the candidate's
    and the stable model's share of traffic, and the step reached; for an active one, the
    analysis of its current step beside: each arm's requests, errors, latency, outputs and
    ML metrics once labels arrive, and each guard's check with its verdict."""
    from mlplan.rollout import analyse_rollout, rollout_status

    ws = workspace(project)
    found = rollout_status(ws, name)
    analyses = {r.deployment: analyse_rollout(ws, r.deployment) for r in found if r.active}
    if json:
        print_json(
            [
                r.to_dict() | ({"analysis": analyses[r.deployment].to_dict()} if r.active else {})
                for r in found
            ]
        )
        return
    if not found:
        console.print("no rollouts yet: mlplan deploy MODEL --strategy canary")
        return
    table = Table("deployment", "strategy", "state", "stable", "candidate", "traffic", "step")
    for r in found:
        table.add_row(
            esc(r.deployment),
            r.strategy,
            r.state,
            esc(r.stable),
            esc(r.candidate),
            f"{r.stable_weight:g}% / {r.weight:g}%",
            f"{r.step} of {len(r.steps)}",
        )
    console.print(table)
    for analysis in analyses.values():
        _print_analysis(analysis, [m.name for m in ws.plan.metrics.ml])


def _print_analysis(a: Analysis, plan_metrics: list[str]) -> None:
    """The analysis of an active rollout's step: its verdict, the arms (with the plan's ML
    metrics once labels arrive; ``--json`` has every one), their shift, the checks."""
    console.print(
        f"\n[bold]{esc(a.deployment)}[/]: analysis of {a.since:%Y-%m-%d %H:%M:%S} to "
        f"{a.until:%H:%M:%S} UTC: [bold]{a.verdict}[/] ({esc(a.reason)})",
        highlight=False,
    )
    arms = Table("arm", "model", "requests", "errors", "p50 ms", "p99 ms", "nulls", "outputs")
    for arm in ("stable", "candidate"):
        d = a.arms[arm]
        shares = d.get("class_shares")
        outputs = (
            ", ".join(f"{esc(k)} {_figure(v, '.0%')}" for k, v in shares.items())
            if shares is not None
            else f"mean {_figure(d.get('mean_value'), '.4g')}"
        )
        named = [m for m in plan_metrics if m in d["metrics"]] or list(d["metrics"])[:3]
        if named:
            outputs += f"; {d['labelled']:,} labelled: " + ", ".join(
                f"{k} {_figure(d['metrics'][k], '.3f')}" for k in named
            )
        if d.get("human_agreement") is not None:
            outputs += f"; agrees with people {_figure(d['human_agreement'], '.1%')}"
        arms.add_row(
            arm,
            esc(d["model"]),
            f"{d['requests']:,}",
            _figure(d["error_rate"], ".2%"),
            _figure(d["latency_p50_ms"], ".1f"),
            _figure(d["latency_p99_ms"], ".1f"),
            _figure(d["null_rate"], ".2%"),
            outputs,
        )
    console.print(arms)
    shift = a.shift
    said = [f"PSI {_figure(shift.get('prediction_psi'), '.3f')}"]
    if "class_share_shift" in shift:
        said.append(f"class share shift {_figure(shift['class_share_shift'], '.1%')}")
    if "agreement" in shift:
        said.append(f"agreement {_figure(shift['agreement'], '.1%')} of {shift['paired']:,}")
    console.print("candidate vs stable: " + ", ".join(said), highlight=False)
    checks = Table("check", "guard", "candidate", "stable", "test", "p", "verdict", "why")
    for c in a.checks:
        where = f" ({esc(c.slice)}: {esc(c.group or '-')})" if c.slice else ""
        checks.add_row(
            (f"rule {esc(c.rule)}: " if c.rule else "") + f"{esc(c.metric)}{where}",
            f"{c.op} {c.threshold:g}",
            _figure(c.candidate, ".4g"),
            _figure(c.stable, ".4g"),
            esc(c.test),
            _figure(c.p_value, ".3g"),
            c.verdict,
            esc(c.reason),
        )
    console.print(checks)


def _figure(value: float | None, spec: str) -> str:
    """A number as ``spec`` formats it, or - when there is none."""
    return "-" if value is None else format(value, spec)


@rollout_app.command("history")
def history(name: NameArgument, project: ProjectOption = None, json: JsonOption = False) -> None:
    """Every rollout of the deployment NAME, oldest first, with each move: when, from and to
    which state, who (a person or the controller), why and the figures that decided it."""
    from mlplan.rollout import rollout_history

    found = rollout_history(workspace(project), name)
    if json:
        print_json([r.to_dict() for r in found])
        return
    for r in found:
        over = f" over {esc(r.stable)}" if r.stable != r.candidate else " (the first model)"
        console.print(
            f"[bold]#{r.id} {r.strategy}[/] of {esc(r.candidate)}{over}: "
            f"{r.state}, started by {esc(r.started_by)}"
        )
        table = Table("at", "move", "from", "to", "candidate", "by", "reason", "figures")
        for e in r.events:
            table.add_row(
                e.at.strftime("%Y-%m-%d %H:%M:%S"),
                e.action,
                e.from_state or "",
                e.to_state,
                f"{e.weight:g}%",
                f"{esc(e.actor)} ({e.actor_kind})",
                esc(e.reason or ""),
                esc(_figures(e.figures)),
            )
        console.print(table)


def _figures(figures: dict[str, Any]) -> str:
    """What decided a move, in a few words: the analysis's verdict, the requests of each
    arm and the checks that did not pass (the whole report is in --json)."""
    report = figures.get("report")
    if not isinstance(report, dict):
        return ", ".join(f"{k}={v}" for k, v in figures.items())
    said = [f"analysis {figures.get('analysis', report.get('verdict'))}"]
    requests = report.get("requests")
    if isinstance(requests, dict) and requests:
        said.append(", ".join(f"{n:,} {arm}" for arm, n in sorted(requests.items())))
    for check in report.get("checks") or []:
        if check.get("verdict") != "pass":
            said.append(f"{check.get('verdict')}: {check.get('reason')}")
    return "; ".join(said)


def _move(
    action: Action, name: str, by: str, note: str | None, project: Path | None, json: bool
) -> None:
    """Make ``action`` on the deployment's active rollout, and say where it stands."""
    from mlplan.rollout import move_rollout

    rollout = move_rollout(workspace(project), name, action, by=by, note=note)
    if json:
        print_json(rollout.to_dict())
        return
    console.print(_said(rollout), highlight=False)


def _said(r: RolloutInfo) -> str:
    """One line: where the rollout stands and what serves."""
    return (
        f"{esc(r.deployment)}: {r.strategy} rollout of {esc(r.candidate)} is {r.state}; "
        f"{esc(r.serving)} serves, the candidate takes {r.weight:g}% of traffic"
    )


_MOVES: dict[Action, str] = {
    "promote": "Promote the candidate: it becomes the deployment's model (a deploy run), now.",
    "pause": "Hold the rollout where it is (the candidate keeps its share) until resumed.",
    "resume": "Let a paused rollout progress again.",
    "abort": "End the rollout without the candidate: the stable model keeps serving.",
    "rollback": "Take the candidate's traffic back to the stable model and end the rollout.",
}


def _move_command(action: Action, help_text: str) -> None:
    """Register ``mlplan rollout ACTION NAME --by WHO``: one person's move of a rollout."""

    def command(
        name: NameArgument,
        by: ByOption,
        note: NoteOption = None,
        project: ProjectOption = None,
        json: JsonOption = False,
    ) -> None:
        _move(action, name, by, note, project, json)

    command.__doc__ = help_text
    rollout_app.command(action)(command)


for _action, _help in _MOVES.items():
    _move_command(_action, _help)


@rollout_app.command("export")
def export(
    name: NameArgument,
    format: Annotated[
        Literal["argo", "flagger", "kserve"],
        typer.Option(
            "--format",
            help="argo: an Argo Rollouts Rollout and AnalysisTemplates; flagger: a Flagger "
            "Canary and its Deployment; kserve: a KServe InferenceService.",
        ),
    ],
    out: Annotated[
        Path | None, typer.Option(help="Write the manifests to this file (default: print).")
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            help="The image the pods run: mlplan with its serving and postgres extras, and "
            "the project's folder at /project (default: mlplan:VERSION)."
        ),
    ] = None,
    namespace: Annotated[str, typer.Option(help="The Kubernetes namespace.")] = "default",
    analysis_url: Annotated[
        str | None,
        typer.Option(
            help="Where the controller reaches mlplan serve for the analysis, "
            "http(s)://HOST[:PORT] (default: the stable Service in the namespace)."
        ),
    ] = None,
    replicas: Annotated[int, typer.Option(help="Pods serving the model.", min=1)] = 2,
    project: ProjectOption = None,
) -> None:
    """Kubernetes manifests that roll the deployment NAME out with Argo Rollouts, Flagger or
    KServe: the candidate of its active rollout (else its model), the plan's steps, interval
    and failure limit, and mlplan's analysis (GET /v1/rollouts/NAME/analysis) as what the
    controller asks before each move. Secrets are referenced, never written."""
    from mlplan.rollout import export_rollout
    from mlplan.workspace import write_atomic

    text = export_rollout(
        workspace(project),
        name,
        format,
        image=image,
        namespace=namespace,
        analysis_url=analysis_url,
        replicas=replicas,
    )
    notes = [line[2:] for line in text.splitlines() if line.startswith("# ")]
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(out, text)
    # What the manifests need from the user, on stderr: the YAML on stdout stays clean.
    for note in notes:
        err_console.print(esc(note), highlight=False)
    if out is not None:
        kinds = [line[6:] for line in text.splitlines() if line.startswith("kind: ")]
        err_console.print(f"Wrote {', '.join(kinds)} to {esc(out)}", highlight=False)


@rollout_app.command("run")
def run(
    name: NameArgument,
    once: Annotated[
        bool, typer.Option("--once", help="Make one decision, give the lease back and exit.")
    ] = False,
    lease: Annotated[
        float,
        typer.Option(
            "--lease",
            min=1.0,
            help="Seconds the controller's lease lasts unless renewed (it renews every second "
            "or a third of this): a standby controller takes over this long after a crash.",
        ),
    ] = 10.0,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Run the controller of the deployment NAME in the foreground until Ctrl-C or SIGTERM:
    it starts the rollout, analyses each step every rollout.interval, advances, promotes,
    pauses or rolls back, and prints each decision (--json: one JSON object a line). One
    controller acts per deployment (a lease in the store); started again, it resumes from the
    store and watches a full step of fresh traffic before it advances or promotes."""
    import signal
    import threading

    from mlplan.rollout import Controller

    controller = Controller(workspace(project), name, lease_seconds=lease)
    if once:
        try:
            decision = controller.tick()
        finally:
            controller.release()
        _show(decision, json, line=False)
        return
    stop = threading.Event()
    shown: list[tuple[object, ...]] = []

    def report(decision: Decision) -> None:
        # Each move and analysis, and the rest only when where it stands changes.
        key = (decision.held, decision.holder, decision.state, decision.step)
        if decision.action or decision.analysed or not shown or shown[-1] != key:
            _show(decision, json, line=True)
        shown[:] = [key]

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    before = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        controller.run(stop, report=report)
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _show(decision: Decision, json: bool, *, line: bool) -> None:
    """One decision: JSON (``line``: on one line, as a stream of them), or a line of text."""
    if json and not line:
        print_json(decision.to_dict())
        return
    if json:
        import json as json_module
        import sys

        from mlplan.core import json_safe

        text = json_module.dumps(json_safe(decision.to_dict()), default=str, allow_nan=False)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    console.print(
        f"{decision.at:%H:%M:%S} {esc(decision.deployment)}: {esc(decision.message)}",
        highlight=False,
        soft_wrap=True,
    )
