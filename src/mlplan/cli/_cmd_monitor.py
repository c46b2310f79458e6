"""``mlplan monitor``: a deployment's (or a model's) windows, measured and stored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from mlplan.cli._app import JsonOption, ProjectOption, app, workspace
from mlplan.cli._render import console, esc, print_json

if TYPE_CHECKING:
    from mlplan.monitoring import MonitorResult, MonitorWindow


@app.command("monitor")
def monitor(
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
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Measure a deployment's traffic window by window from the prediction log and the
    feedback — software (latency, throughput, errors by status), inputs (missing values,
    ranges, categories, drift against the training reference), outputs (classes, scores,
    product events, drift), ML metrics estimated before labels and realised once they
    arrive, business values — per slice of the plan, and store the windows."""
    from mlplan.monitoring import monitor as run_monitor

    ws = workspace(project)
    result = run_monitor(ws, name, window=window, since=since, until=until)
    if json:
        print_json(result.to_dict())
        return
    _print(result, [m.name for m in ws.plan.metrics.ml], ws.plan.metrics.primary)


def _print(result: MonitorResult, plan_metrics: Sequence[str], primary: str | None) -> None:
    console.print(
        f"[bold]{esc(result.subject)}[/]: windows of {esc(result.window)} from "
        f"{result.since:%Y-%m-%d %H:%M} to {result.until:%Y-%m-%d %H:%M} UTC",
        highlight=False,
    )
    metric = primary or (plan_metrics[0] if plan_metrics else None)
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
            "drifted (method statistic)",
            "labelled",
            f"{esc(metric or 'ML')} estimated {esc('[interval]')}",
            "realised",
            "value",
        )
        for (start, model, version, value), families in by_key.items():
            if value != "all":
                continue
            table.add_row(*_row(start, f"{model} ({version})", families, metric))
        console.print(table)
        newest = max(start for start, *_ in by_key)
        slices = Table(
            "slice value",
            "records",
            "null",
            "drifted",
            "labelled",
            f"{esc(metric or 'ML')} estimated",
            "realised",
            "value",
        )
        for (start, _, _, value), families in by_key.items():
            if start == newest and value != "all":
                cells = _row(start, "", families, metric)
                slices.add_row(esc(value), _int(families, "output", "records"), *cells[6:])
        if slices.row_count:
            console.print(f"slices, window from {newest:%Y-%m-%d %H:%M}:")
            console.print(slices)
    for note in result.notes:
        console.print(f"note: {esc(note)}", highlight=False)


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
    shown = _estimate(estimated, metric)
    if metric not in (estimated.get("metrics") or {}) and estimated.get("primary"):
        found = (ml.get("metrics") or {}).get(estimated["primary"])  # beside its estimate
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
        _drifted(families),
        str(ml.get("labelled", "")),
        shown,
        _number(found),
        _number(value.get("sum")),
    ]


def _drifted(families: Mapping[str, MonitorWindow]) -> str:
    """The features and outputs that drifted, each with its method and statistic ("none":
    measured, none drifted; "—": no training reference; too few rows: not tested)."""
    drifts = [
        found.metrics.get("drift")
        for family in ("input", "output")
        if (found := families.get(family)) is not None
    ]
    if not any(drifts):
        return "—"
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


def _estimate(estimated: Mapping[str, Any], metric: str | None) -> str:
    """The estimate of ``metric`` as ``value [low, high]``; when the plan's metric cannot be
    estimated (it needs the labels' ranking, as PR AUC does), the estimated family's first
    metric, named."""
    metrics = estimated.get("metrics") or {}
    name = metric if metric in metrics else estimated.get("primary")
    estimate = (metrics.get(name) or {}).get("estimated") if name else None
    if not estimate or estimate.get("value") is None:
        return "—"
    named = "" if name == metric else f"{esc(str(name))} "
    return (
        f"{named}{_number(estimate['value'])} "
        f"[{_number(estimate.get('low'))}, {_number(estimate.get('high'))}]"
    )


def _when(start: Any) -> str:
    """A window's start, to the second when it does not start on a minute."""
    return f"{start:%Y-%m-%d %H:%M}" + (f":{start:%S}" if start.second else "")


def _int(families: Mapping[str, MonitorWindow], family: str, key: str) -> str:
    found = families.get(family)
    return "" if found is None else str(found.metrics.get(key, ""))


def _number(value: Any) -> str:
    return "—" if value is None else f"{value:.3g}"


def _share(value: Any) -> str:
    return "—" if value is None else f"{value:.1%}"
