"""``mlplan monitor``: a deployment's (or a model's) windows, measured and stored; with
``--follow``, kept up to date as the log grows.

``monitor`` is a group whose own callback measures the windows (``mlplan monitor
[NAME]``), with the subcommands ``check`` and ``export`` (``_cmd_alerts.py``): a first word
that names a subcommand runs it, anything else is the group's own arguments
(:class:`WindowsGroup`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.table import Table
from typer.core import TyperGroup

from mlplan.cli._app import JsonOption, ProjectOption, app, workspace
from mlplan.cli._render import console, err_console, esc, print_json, print_json_line

if TYPE_CHECKING:
    from mlplan.monitoring import FollowUpdate, MonitorResult, MonitorWindow


class WindowsGroup(TyperGroup):
    """A group that is a command too: ``mlplan monitor check`` runs the subcommand
    ``check``; ``mlplan monitor``, ``mlplan monitor production --window 30m`` run the
    group's own callback, its arguments parsed as a command's (so a deployment named
    ``check`` or ``export`` cannot be named here)."""

    allow_interspersed_args = True  # mlplan monitor production --window 30m

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] in self.commands:  # a subcommand; the group's own take defaults
            super().parse_args(ctx, [])
            ctx._protected_args, ctx.args = args[:1], args[1:]
            rest: list[str] = ctx.args
            return rest
        return super().parse_args(ctx, args)

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)
        if ctx.command is not self:  # a subcommand's path: mlplan monitor check, no [name]
            return [p for p in params if p.param_type_name != "argument"]
        return params

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return ["[OPTIONS] [name] | COMMAND [ARGS]..."]


monitor_app = typer.Typer(
    cls=WindowsGroup,
    invoke_without_command=True,
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(monitor_app, name="monitor")


@monitor_app.callback()
def monitor(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(help="The deployment (default: production) or a model (its whole log)."),
    ] = None,
    window: Annotated[
        str, typer.Option("--window", help="Each window's length: 90s, 30m, 1h, 1d.")
    ] = "1h",
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="From when: a time (ISO 8601, UTC unless it says otherwise) or a duration "
            "before now (2h). Default: 24 windows before --until.",
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Until when, as --since (default: now).")
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            help="Keep polling the log and measure again only the windows its new records "
            "and late feedback fall in (Ctrl-C stops).",
        ),
    ] = False,
    every: Annotated[
        str, typer.Option("--every", help="With --follow: how often to poll (10s, 1m).")
    ] = "10s",
    polls: Annotated[int | None, typer.Option("--polls", hidden=True)] = None,
    family: Annotated[
        list[str] | None,
        typer.Option(
            "--family",
            help="Measure only this family (repeat for several): software, input, output, "
            "ml, estimated, business. Default: every one.",
        ),
    ] = None,
    engine: Annotated[
        Literal["local", "ray"],
        typer.Option(help="Measure the windows one after another here, or in parallel on Ray."),
    ] = "local",
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Measure a deployment's traffic window by window from the prediction log and the
    feedback — software (latency, throughput, errors by status), inputs (missing values,
    ranges, categories, drift against the training reference), outputs (classes, scores,
    product events, drift), ML metrics estimated before labels and realised once they
    arrive, business values — per slice of the plan, and store the windows. With --follow,
    keep them up to date as the log grows: one line per window measured again (with
    --json, one JSON object per poll and line). Subcommands: check (the plan's alert
    rules), export (them for Prometheus)."""
    if ctx.invoked_subcommand is not None:
        return
    from mlplan.monitoring import monitor as run_monitor

    ws = workspace(project)
    if follow and family:
        from mlplan.errors import ParameterError

        raise ParameterError(
            "family",
            "{param} cannot be used with --follow, which keeps every family up to date; "
            "drop {param}, or --follow",
        )
    if follow and engine != "local":
        from mlplan.errors import ParameterError

        raise ParameterError(
            "engine",
            "{param} ray measures the windows of a span once; --follow measures them here as "
            "the log grows: drop one",
        )
    if follow:
        _follow(
            ws, name, window=window, since=since, until=until, every=every, polls=polls, json=json
        )
        return
    result = run_monitor(
        ws, name, window=window, since=since, until=until, families=family, engine=engine
    )
    if json:
        print_json(result.to_dict())
        return
    _print(result, [m.name for m in ws.plan.metrics.ml], ws.plan.metrics.primary)


def _follow(
    ws: Any,
    name: str | None,
    *,
    window: str,
    since: str | None,
    until: str | None,
    every: str,
    polls: int | None,
    json: bool,
) -> None:
    """``--follow``: each poll as it comes, then one line of summary (on stderr with
    ``--json``, whose stdout is JSON Lines)."""
    from mlplan.errors import ParameterError
    from mlplan.monitoring import follow

    if until is not None:
        raise ParameterError(
            "until",
            "{param} cannot be used with --follow, which follows the log from --since on "
            "with no end; drop {param}, or --follow for a fixed span",
        )
    shown: set[str] = set()

    def update(found: FollowUpdate) -> None:
        if json:
            print_json_line(found.to_dict())
        else:
            _print_update(found, shown)

    summary = follow(
        ws, name, window=window, since=since, every=every, polls=polls, on_update=update
    )
    (err_console if json else console).print(summary.line(), highlight=False)


def _print_update(update: FollowUpdate, shown: set[str]) -> None:
    """One poll: a line saying what it did, one per window measured again (every record's
    figures, per package version), and each note the first time it comes."""
    windows = len(update.bounds)
    what = f"{windows} window{'s' * (windows != 1)}"
    if update.poll == 1:
        said = f"{what} measured"
    elif update.windows and not update.records:
        said = f"{what} measured again, whole now that {'they' if windows > 1 else 'it'} ended"
    elif update.windows:
        segments = len(update.read)
        said = (
            f"{what} measured again from {update.records} new record"
            f"{'s' * (update.records != 1)} in {segments} segment{'s' * (segments != 1)}"
        )
    elif update.records:
        said = f"{update.records} new records, none in a window of the span"
    else:
        said = "nothing new"
    console.print(
        f"[bold]poll {update.poll}[/] at {update.at:%Y-%m-%d %H:%M:%S} UTC: {said}",
        highlight=False,
    )
    by_key: dict[tuple[Any, ...], dict[str, MonitorWindow]] = {}
    for w in update.windows:
        if w.slice == "all":
            by_key.setdefault((w.start, w.end, w.model, w.version), {})[w.family] = w
    for (start, end, model, version), families in sorted(by_key.items()):
        software = families["software"].metrics if "software" in families else {}
        ml = families["ml"].metrics if "ml" in families else {}
        console.print(
            f"  {_when(start)}–{_clock(end)}"
            + f" {esc(model)} ({esc(version)}): {software.get('requests', 0)} requests, "
            f"{_share(software.get('error_rate'))} errors, p50 / p99 "
            f"{_number(software.get('latency_p50_ms'))} / "
            f"{_number(software.get('latency_p99_ms'))} ms, {ml.get('labelled', 0)} labelled; "
            f"drifted: {_drifted(families)}",
            highlight=False,
        )
    for note in update.notes:
        if note not in shown:
            shown.add(note)
            console.print(f"note: {esc(note)}", highlight=False)


def _print(result: MonitorResult, plan_metrics: Sequence[str], primary: str | None) -> None:
    console.print(
        f"[bold]{esc(result.subject)}[/]: windows of {esc(result.window)} from "
        f"{_when(result.since)} to {_when(result.until)} UTC",
        highlight=False,
    )
    metric = _shown_metric(result, primary or (plan_metrics[0] if plan_metrics else None))
    name = esc(metric or "ML")
    by_key: dict[tuple[Any, ...], dict[str, MonitorWindow]] = {}
    for w in result.windows:
        by_key.setdefault((w.start, w.model, w.version, w.slice), {})[w.family] = w
    if by_key:
        table = Table(
            "window",
            "model",
            "requests",
            "req/s",
            "p50 / p99 ms",
            "errors",
            "null",
            "labelled",
            f"{name} estimated {esc('[interval]')}",
            f"{name} realised",
            "value",
        )
        drifts = []
        for (start, model, version, value), families in by_key.items():
            if value != "all":
                continue
            table.add_row(*_row(start, f"{model} ({version})", families, metric))
            drifts.append(f"{_when(start)} {esc(model)}: {_drifted(families)}")
        console.print(table)
        console.print("drifted against the training reference (method statistic):")
        for line in drifts:
            console.print(f"  {line}", highlight=False)
        newest = max(start for start, *_ in by_key)
        slices = Table(
            "slice value",
            "records",
            "null",
            "labelled",
            f"{name} estimated",
            "realised",
            "value",
        )
        for (start, _, _, value), families in by_key.items():
            if start == newest and value != "all":
                cells = _row(start, "", families, metric)
                slices.add_row(esc(value), _int(families, "output", "records"), *cells[6:])
        if slices.row_count:
            console.print(f"slices, window from {_when(newest)}:")
            console.print(slices)
    for note in result.notes:
        console.print(f"note: {esc(note)}", highlight=False)


def _shown_metric(result: MonitorResult, metric: str | None) -> str | None:
    """The plan's primary metric, or — when it cannot be estimated (PR AUC needs the labels'
    ranking) — the first the estimate holds, so the estimate and the realised value show the
    same metric side by side."""
    estimated = [w.metrics for w in result.windows if w.family == "estimated"]
    if not estimated or any(metric in (m.get("metrics") or {}) for m in estimated):
        return metric
    return next((m["primary"] for m in estimated if m.get("primary")), metric)


def _row(
    start: Any, model: str, families: Mapping[str, MonitorWindow], metric: str | None
) -> list[str]:
    software = families["software"].metrics if "software" in families else {}
    output = families["output"].metrics if "output" in families else {}
    ml = families["ml"].metrics if "ml" in families else {}
    business = families["business"].metrics if "business" in families else {}
    value = (business.get("metrics") or {}).get("value") or {}
    found = (ml.get("metrics") or {}).get(metric) if metric else None
    estimated = families["estimated"].metrics if "estimated" in families else {}
    estimate = ((estimated.get("metrics") or {}).get(metric) or {}).get("estimated")
    return [
        _when(start),
        esc(model),
        str(software.get("requests", "")),
        _number(software.get("throughput_rps")),
        f"{_number(software.get('latency_p50_ms'))} / {_number(software.get('latency_p99_ms'))}"
        if software
        else "",
        _share(software.get("error_rate")),
        _share(output.get("null_rate")),
        str(ml.get("labelled", "")),
        _estimate(estimate),
        _number(found),
        _number(value.get("sum")),
    ]


def _drifted(families: Mapping[str, MonitorWindow]) -> str:
    """The features and outputs that drifted, each with its method and statistic ("none":
    measured, none drifted; no training reference or too few rows: said)."""
    drifts = [
        found.metrics.get("drift")
        for family in ("input", "output")
        if (found := families.get(family)) is not None
    ]
    if not any(drifts):
        return "not measured (no training reference)"
    measured = {
        name: d
        for drift in drifts
        if drift
        for name, d in {**drift.get("features", {}), **drift.get("outputs", {})}.items()
    }
    if all(d.get("drifted") is None for d in measured.values()):
        return "not tested (too few rows)"
    shown = [
        f"{esc(name)} ({d.get('method')} {_number(d.get('statistic'))})"
        for name, d in measured.items()
        if d.get("drifted")
    ]
    return ", ".join(shown) or "none"


def _estimate(estimate: Mapping[str, Any] | None) -> str:
    """An estimate as ``value [low, high]``."""
    if not estimate or estimate.get("value") is None:
        return "—"
    return (
        f"{_number(estimate['value'])} "
        f"[{_number(estimate.get('low'))}, {_number(estimate.get('high'))}]"
    )


def _when(start: Any) -> str:
    """A window's start, to the second when it does not start on a minute."""
    return f"{start:%Y-%m-%d %H:%M}" + (f":{start:%S}" if start.second else "")


def _clock(moment: Any) -> str:
    """A window's end, as the time of day (to the second when it is not on a minute)."""
    return f"{moment:%H:%M}" + (f":{moment:%S}" if moment.second else "")


def _int(families: Mapping[str, MonitorWindow], family: str, key: str) -> str:
    found = families.get(family)
    return "" if found is None else str(found.metrics.get(key, ""))


def _number(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _share(value: Any) -> str:
    return "—" if value is None else f"{value:.1%}"
