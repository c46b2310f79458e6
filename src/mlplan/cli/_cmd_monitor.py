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


def _int(families: Mapping[str, MonitorWindow], family: str, key: str) -> str:
    found = families.get(family)
    return "" if found is None else str(found.metrics.get(key, ""))


def _number(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _share(value: Any) -> str:
    return "—" if value is None else f"{value:.1%}"
