"""``mlplan monitor check``, ``mlplan monitor export`` and ``mlplan alerts list|ack``: the
plan's monitoring rules evaluated, exported for Prometheus, and the alerts they raised.

``check`` and ``export`` are subcommands of the ``monitor`` group, whose own callback
measures the windows (``_cmd_monitor.WindowsGroup``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from mlplan.cli._app import JsonOption, ProjectOption, app, workspace
from mlplan.cli._cmd_monitor import monitor_app
from mlplan.cli._render import console, err_console, esc, print_json

if TYPE_CHECKING:
    from mlplan.monitoring import Alert, AlertCheck

alerts_app = typer.Typer(
    help="Alerts the plan's monitoring rules raised (mlplan monitor check).", no_args_is_help=True
)
app.add_typer(alerts_app, name="alerts")


@monitor_app.command("check")
def monitor_check(
    deployment: Annotated[
        str | None, typer.Argument(help="The deployment (default: production).")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Check as of this moment, not now: a time (ISO 8601, UTC unless it says "
            "otherwise) or a duration before now (2h); the windows that had ended by then.",
        ),
    ] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Evaluate the plan's monitoring rules on the deployment's newest
    whole windows, record the alerts opened and resolved, post them to the plan's webhook;
    exit 1 when a rule fires (for cron or CI), 0 otherwise. Too few samples is "not
    evaluated", never a firing."""
    from mlplan.monitoring import check_alerts

    result = check_alerts(workspace(project), deployment, at=at)
    if json:
        print_json(result.to_dict())
    else:
        _print_check(result)
    if result.fired:
        raise typer.Exit(1)


def _print_check(result: AlertCheck) -> None:
    console.print(
        f"[bold]deployment {esc(result.deployment)}[/]: rules checked at "
        f"{result.checked_at:%Y-%m-%d %H:%M} UTC",
        highlight=False,
    )
    table = Table("rule", "slice", "metric", "value", "threshold", "samples", "window", "outcome")
    for o in result.outcomes:
        value = "—" if o.value is None else f"{o.value:.4g}"
        shown = {"fired": "[red]fired[/]", "ok": "[green]ok[/]"}.get(
            o.outcome, f"[yellow]not evaluated[/]: {esc(o.reason or '')}"
        )
        table.add_row(
            esc(o.rule),
            esc(o.slice),
            esc(o.metric),
            value,
            f"{o.op} {o.threshold:g} ({o.severity})",
            f"{o.samples} (min {o.min_samples})",
            f"{o.window_start:%m-%d %H:%M}–{o.window_end:%H:%M}",
            shown,
        )
    console.print(table)
    for what, alerts in (("opened", result.opened), ("resolved", result.resolved)):
        for a in alerts:
            console.print(f"alert {a.id} {what}: {esc(a.rule)} ({esc(a.slice)})", highlight=False)
    if result.delivery is not None:
        d = result.delivery
        line = f"webhook: {d.status} after {d.attempts} attempt(s)"
        if d.error:
            line += f": {d.error}"
        (console if d.status == "delivered" else err_console).print(
            esc(line), highlight=False, markup=False
        )
    for note in result.notes:
        console.print(f"[dim]{esc(note)}[/]")


@monitor_app.command("export")
def monitor_export(
    format: Annotated[
        Literal["prometheus-rules"],
        typer.Option("--format", help="prometheus-rules: alerting rules for Prometheus."),
    ] = "prometheus-rules",
    job: Annotated[
        str, typer.Option("--job", help="The Prometheus scrape job of the servers.")
    ] = "mlplan",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the rules here (default: stdout).")
    ] = None,
    project: ProjectOption = None,
) -> None:
    """The plan's software rules as Prometheus alerting rules, written
    against the metrics mlplan serve exports; rules they cannot express are listed on stderr as
    skipped, with why."""
    from mlplan.monitoring import prometheus_rules
    from mlplan.workspace import write_atomic

    rules = prometheus_rules(workspace(project).plan, job=job)
    text = rules.to_yaml()
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(out, text)
    for name, why in rules.skipped:
        err_console.print(f"skipped {name}: {why}", markup=False, highlight=False)


@alerts_app.command("list")
def alerts_list(
    state: Annotated[
        str | None, typer.Option("--state", help="Only these: open, acknowledged, resolved.")
    ] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """The alerts, newest first: rule, deployment, slice, value against threshold, severity,
    state, when first and last fired, who acknowledged it."""
    from mlplan.monitoring import list_alerts

    alerts = list_alerts(workspace(project), state=state)
    if json:
        print_json([a.to_dict() for a in alerts])
        return
    if not alerts:
        console.print("no alerts" + (f" {esc(state)}" if state else ""))
        return
    console.print(_table(alerts))


def _table(alerts: list[Alert]) -> Table:
    table = Table("id", "rule", "deployment", "slice", "value", "severity", "state", "fired", "ack")
    for a in alerts:
        table.add_row(
            str(a.id),
            esc(a.rule),
            esc(a.deployment),
            esc(a.slice),
            f"{esc(a.metric)} {a.value:.4g} {a.op} {a.threshold:g}",
            a.severity,
            a.state,
            f"{a.first_fired_at:%Y-%m-%d %H:%M} … {a.last_fired_at:%H:%M}",
            esc(f"{a.acked_by}: {a.ack_note or ''}") if a.acked_by else "",
        )
    return table


@alerts_app.command("ack")
def alerts_ack(
    alert_id: Annotated[int, typer.Argument(help="The alert's id (mlplan alerts list).")],
    by: Annotated[str, typer.Option("--by", help="Who acknowledges it (recorded).")],
    note: Annotated[str | None, typer.Option("--note", help="Why, for the record.")] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Acknowledge an open alert: it stays acknowledged until its rule no longer fires."""
    from mlplan.monitoring import ack_alert

    alert = ack_alert(workspace(project), alert_id, by=by, note=note)
    if json:
        print_json(alert.to_dict())
        return
    console.print(f"alert {alert.id} ({esc(alert.rule)}) acknowledged by {esc(by)}")
