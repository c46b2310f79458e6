"""``mlplan evaluate``: error analysis of a model, its gates, the report and the model card."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from mlplan.cli._app import JsonOption, ProjectOption, app, workspace
from mlplan.cli._render import console, esc, print_json

_STATE_STYLE = {
    "pass": "green",
    "passing": "green",
    "fail": "red",
    "failing": "red",
    "unchecked": "yellow",
}


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _interval(m: dict[str, Any]) -> str:
    return f"[{_fmt(m.get('low'))}, {_fmt(m.get('high'))}]" if m.get("low") is not None else ""


def _state(state: str) -> str:
    return f"[{_STATE_STYLE.get(state, 'white')}]{state}[/]"


ModelArgument = Annotated[
    str | None,
    typer.Argument(help="The model to evaluate, e.g. gbt-1 (its newest version) or gbt-1@2."),
]
PredictionsOption = Annotated[
    str | None,
    typer.Option(
        help="Instead of a model: a file of predictions made elsewhere (item_id, "
        "prediction, optionally a probability column per class)."
    ),
]
NameOption = Annotated[
    str | None, typer.Option(help="With --predictions: their name (default: file stem).")
]
# The library's parameters: `split` is --on (the split of predictions), `part` is --split.
OnOption = Annotated[
    str | None,
    typer.Option(
        "--on", help="With --predictions: the split, e.g. customers@2/s1 (default: newest)."
    ),
]
PartOption = Annotated[
    Literal["test", "valid", "train"],
    typer.Option("--split", help="Which rows of the model's split to evaluate on."),
]
ThresholdOption = Annotated[
    str | None,
    typer.Option(
        help="Binary: a decision threshold in (0, 1), or f1 / youden / 'recall>=X' (the "
        "highest threshold whose recall is at least X; quote it for the shell) to choose it "
        "on the validation rows (default: the package's, else evaluation.threshold of the plan). "
        "Another threshold than the package's makes a new package version; what is "
        "deployed changes only with mlplan deploy."
    ),
]
BootstrapOption = Annotated[
    int | None,
    typer.Option("--bootstrap", help="Bootstrap resamples (default: evaluation.bootstrap).", min=0),
]
OutOption = Annotated[
    str | None,
    typer.Option(help="Folder for the report, model card and JSON (default: reports/MODEL)."),
]
GateOption = Annotated[bool, typer.Option("--gate", help="Exit 1 when a gate of the plan fails.")]
PredictionsOutOption = Annotated[
    str | None,
    typer.Option(
        help="Also write the predictions on the rows evaluated to this .csv or .parquet file "
        "(row, item id, label, scores, decision at the threshold, slice groups)."
    ),
]


@app.command()
def evaluate(
    model: ModelArgument = None,
    predictions: PredictionsOption = None,
    name: NameOption = None,
    split: OnOption = None,
    part: PartOption = "test",
    threshold: ThresholdOption = None,
    n_boot: BootstrapOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    out: OutOption = None,
    gate: GateOption = False,
    predictions_out: PredictionsOutOption = None,
    engine: Annotated[
        Literal["local", "ray"],
        typer.Option(help="Run the model on the rows in this process, or on Ray Data."),
    ] = "local",
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Metrics overall and per slice with intervals, error types, rare classes, where to
    focus, regressions, discovered slices, risks and gates; writes the HTML report, the
    model card and JSON, and stores them as evidence."""
    from mlplan.errors import UsageError
    from mlplan.evaluation import evaluate as run_evaluation
    from mlplan.evaluation import evaluate_predictions, raise_for_gates

    if (model is None) == (predictions is None):
        raise UsageError("name a MODEL to evaluate, or give --predictions FILE (not both)")
    ws = workspace(project)
    if predictions is not None:
        if threshold is not None:
            raise UsageError("--threshold applies to a model; predictions come with their labels")
        if engine != "local":
            raise UsageError("--engine applies to a model; predictions come already made")
        result = evaluate_predictions(
            ws,
            predictions,
            name=name,
            split=split,
            part=part,
            n_boot=n_boot,
            seed=seed,
            out=out,
            predictions_out=predictions_out,
        )
    else:
        if name is not None or split is not None:
            raise UsageError("--name and --on go with --predictions")
        assert model is not None
        result = run_evaluation(
            ws,
            model,
            part=part,
            threshold=threshold,
            n_boot=n_boot,
            seed=seed,
            out=out,
            predictions_out=predictions_out,
            engine=engine,
        )
    if json:
        print_json(result.to_dict())
    else:
        _render(result.report, result.files)
    if gate:
        raise_for_gates(result)


def _render(r: dict[str, Any], files: dict[str, Any]) -> None:
    console.print(
        f"[bold]{esc(r['model'])}[/] ({esc(r['family'])}) on the {r['part']} rows of "
        f"{esc(r['split'])}: {r['rows']:,} rows, {r['bootstrap']} bootstrap resamples"
    )
    _render_overall(r)
    _render_classes(r)
    _render_focus(r)
    _render_discovery(r)
    _render_regressions(r)
    _render_risks_and_gates(r)
    _render_package(r)
    console.print("Report: " + ", ".join(esc(str(path)) for path in files.values()))


def _render_package(r: dict[str, Any]) -> None:
    package = r.get("package")
    run = r.get("run_id", "")
    if package is None:
        if r.get("threshold") is not None:
            console.print(
                f"Evaluation {esc(run)}: decided at a threshold no package holds (on the "
                f"{r['part']} rows), so it clears no package for deployment",
                style="yellow",
            )
        return
    ref = esc(package["ref"])
    if package.get("new"):
        console.print(
            f"New package version [bold]{ref}[/] (threshold {r['threshold']['value']:.4g}, "
            f"derived from {esc(package['parent'])}, package {package['sha256'][:12]}); "
            f"deployments keep their package until: mlplan deploy {ref}"
        )
    console.print(f"Evaluation {esc(run)} of {ref}")


def _labels_at(r: dict[str, Any]) -> str:
    """How the label metrics (accuracy, F1 ...) of an evaluation were decided."""
    if r.get("threshold"):
        return f"labels at threshold {r['threshold']['value']:.4g}"
    if r["kind"] == "regression":
        return ""
    if "source" in r:
        return "labels as the predictions file gives them"
    return "labels: the most probable class"


def _render_overall(r: dict[str, Any]) -> None:
    labels = _labels_at(r)
    overall = Table(
        "metric", "value", "interval", title="Overall" + (f" ({labels})" if labels else "")
    )
    for name, m in r["overall"].items():
        if name != "count":
            overall.add_row(name, _fmt(m.get("value")), _interval(m))
    console.print(overall)
    if r.get("threshold"):
        t = r["threshold"]
        recorded = r["part"] == "test" and "source" not in r
        console.print(
            f"Decision threshold {t['value']:.4g} ({t['criterion']}"
            + (f", chosen on the {t['chosen_on']} split" if t.get("chosen_on") else "")
            + (
                "), recorded in the model package"
                if recorded
                else f"), not recorded: evaluated on the {r['part']} rows"
            )
        )
        if t.get("warning"):
            console.print(f"[yellow]warning:[/] {esc(t['warning'])}")


def _render_classes(r: dict[str, Any]) -> None:
    if r.get("confusion", {}).get("top"):
        console.print(
            "Most frequent confusions: "
            + "; ".join(
                f"{esc(c['true'])} → {esc(c['predicted'])} ({c['count']})"
                for c in r["confusion"]["top"][:5]
            )
        )
    classes = r.get("per_class") or []
    if r["kind"] == "multiclass" and classes:
        worst = sorted(classes, key=lambda c: c["recall"]["value"] or 0.0)[:3]
        console.print(
            "Lowest recall: "
            + "; ".join(
                f"{esc(c['class'])} {_fmt(c['recall']['value'])} {_interval(c['recall'])}"
                for c in worst
            )
        )
    for c in classes:
        if c["rare"]:
            console.print(
                f"Rare class {esc(c['class'])}: {c['support']} rows, recall "
                f"{_fmt(c['recall']['value'])} {_interval(c['recall'])}"
                + (f" — {esc(c['note'])}" if c.get("note") else "")
            )


def _render_focus(r: dict[str, Any]) -> None:
    if not r["focus"]:
        return
    metric = r["focus_metric"]
    focus = Table(
        "slice",
        "value",
        "rows",
        metric,
        "interval",
        "gap",
        "q",
        "",
        title=f"Where to focus (gap on {metric} x share of rows)",
    )
    for f in r["focus"][:10]:
        focus.add_row(
            esc(f["slice"]),
            esc(f["value"]),
            f"{f['count']:,}",
            _fmt(f["score"]),
            _interval({"low": f["low"], "high": f["high"]}),
            _fmt(f["gap"]),
            _fmt(f["q_value"]),
            "[red]significant[/]" if f["significant"] else esc(f.get("warning", "")),
        )
    console.print(focus)


def _render_discovery(r: dict[str, Any]) -> None:
    found = r["discovery"]["slices"]
    if r["discovery"].get("cut"):
        console.print(f"[yellow]note:[/] {esc(r['discovery']['cut'])}")
    if not found:
        return
    console.print(
        f"Discovered slices with more errors than the rest ({r['discovery']['tested']} tested):"
    )
    for d in found[:5]:
        console.print(
            f"  {esc(' and '.join(d['conditions']))}: {d['count']} rows, error "
            f"{_fmt(d['error'])} (overall {_fmt(r['discovery']['overall_error'])}), "
            f"effect {_fmt(d['effect_size'])}, q {_fmt(d['q_value'])}"
        )


def _render_regressions(r: dict[str, Any]) -> None:
    for g in r["regressions"].values():
        if g.get("rows") is None:
            console.print(
                f"Regression vs {g['against'].replace('_', ' ')} ({g['metric']}): "
                f"not checked — {esc(g['reason'])}"
            )
            continue
        worse = [x for x in g["rows"] if x["regression"]]
        console.print(
            f"Regression vs {esc(g.get('name', g['against']))} ({g['metric']}): "
            + (
                "[red]worse on "
                + esc(", ".join(f"{x['slice']} {x['value']}" for x in worse))
                + "[/]"
                if worse
                else f"[green]none[/] on {len(g['rows'])} slice values"
            )
        )
        if g.get("note"):
            console.print(f"  [dim]{esc(g['note'])}[/]")


def _render_risks_and_gates(r: dict[str, Any]) -> None:
    if r["risks"]:
        risks = Table("risk", "check", "state", "evidence", title="Risks")
        for k in r["risks"]:
            risks.add_row(
                esc(k["id"]), esc(k.get("check", "")), _state(k["state"]), esc(k["evidence"])
            )
        console.print(risks)
    if r["gates"]:
        gates = Table("gate", "state", "evidence", title="Gates")
        for g in r["gates"]:
            gates.add_row(esc(g["id"]), _state(g["state"]), esc(g["evidence"]))
        console.print(gates)
    for a in r.get("approvals", []):
        console.print(f"Approved for deployment by {esc(a['by'])} ({esc(a['role'])})")
