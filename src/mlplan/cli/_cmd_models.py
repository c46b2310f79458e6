"""``mlplan train``, ``mlplan models list|show|card|compare``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.table import Table

from mlplan.cli._app import JsonOption, ProjectOption, app, workspace
from mlplan.cli._render import console, esc, print_json

if TYPE_CHECKING:
    from mlplan.modeling import ModelInfo

models_app = typer.Typer(help="Trained models and their packages.", no_args_is_help=True)
app.add_typer(models_app, name="models")


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@app.command()
def train(
    families: Annotated[
        list[str] | None,
        typer.Option(
            "--family",
            help="A model family: linear, logistic, gbt, cnn or rnn; repeat to train several.",
        ),
    ] = None,
    baseline: Annotated[
        bool, typer.Option(help="Train the task's quick-and-dirty family.")
    ] = False,
    all_: Annotated[
        bool,
        typer.Option(
            "--all", help="Train every family of modeling.families (else the task's defaults)."
        ),
    ] = False,
    split: Annotated[
        str | None, typer.Option(help="The split, e.g. customers@2/s1 (default: the newest).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (default: modeling.seed).")] = None,
    tune: Annotated[
        int | None,
        typer.Option(
            help="Tuning trials per family on the validation split (default: "
            "modeling.tune_trials).",
            min=0,
        ),
    ] = None,
    engine: Annotated[
        Literal["local", "ray"],
        typer.Option(help="Run families and trials in this process, or in parallel on Ray."),
    ] = "local",
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Train families on a split, package each as ONNX, check parity, and register them."""
    from mlplan.errors import UsageError
    from mlplan.modeling import FAMILIES, train_models

    if not (families or baseline or all_):
        raise UsageError(
            f"give --family {'|'.join(FAMILIES)}, --baseline for the task's "
            "quick-and-dirty family, or --all"
        )
    models = train_models(
        workspace(project),
        split=split,
        families=list(families) if families else None,  # type: ignore[arg-type]
        baseline=baseline,
        seed=seed,
        tune=tune,
        engine=engine,
    )
    if json:
        print_json([m.to_dict() for m in models] if len(models) > 1 else models[0].to_dict())
        return
    _print_screen(models[0].features)
    for note in dict.fromkeys(
        m.parameters["device_note"] for m in models if m.parameters.get("device_note")
    ):
        console.print(f"note: {esc(note)}", style="yellow")
    for model in models:
        _print_trained(model)


def _print_screen(spec: dict[str, Any]) -> None:
    """What the feature screen left out, and the allowed features that nearly determine the
    target (the same for every model of one split)."""
    screen = spec.get("screen")
    if not screen:
        return
    for column, why in screen["left_out"].items():
        console.print(f"left out {esc(column)}: {esc(why)}", style="yellow")
    _print_allowed(spec, style="yellow")


def _print_allowed(spec: dict[str, Any], *, style: str, indent: str = "") -> None:
    """The features kept although each alone nearly determines the target."""
    screen = spec.get("screen") or {}
    for column, score in screen.get("allowed", {}).items():
        figure = math.floor(score * 100) / 100  # as the refusal shows it: never rounded up
        console.print(
            f"{indent}kept {esc(column)}, which alone explains {figure:.2f} of target "
            f"{esc(screen['target'])}: modeling.allowed_features lists it",
            style=style,
        )


def _print_trained(model: ModelInfo) -> None:
    tuning = model.parameters.get("tuning")
    checked = model.parity.get("checked", {})
    of = checked.get("of", model.parity["rows"])
    rows = (
        f"{model.parity['rows']:,} of {of:,} test rows (a sample of {checked['sampled']:,}, "
        f"{checked['near_boundary']:,} near the decision boundary, {checked['near_threshold']:,} "
        "near a split threshold)"
        if of > model.parity["rows"]
        else f"{model.parity['rows']:,} test rows"
    )
    console.print(
        f"Trained [bold]{esc(model.name)}[/] on {esc(model.split)} in "
        f"{model.seconds:.2f} s; ONNX parity {model.parity['max_abs_diff']:.1e} on {rows}"
        + (
            f"; best of {len(tuning['trials'])} trials by validation {tuning['metric']}"
            if tuning
            else ""
        )
    )
    _metrics_table(model.metrics)


def _labels_at(values: dict[str, float]) -> str:
    """How the label metrics (accuracy, F1 ...) of a model's scores were decided."""
    threshold = values.get("threshold")
    if threshold is not None:
        return f"labels at threshold {threshold:.4g}"
    return "labels: the most probable class" if "accuracy" in values else ""


def _metrics_table(metrics: dict[str, dict[str, float]]) -> None:
    first = next(iter(metrics.values()), {})
    names = [k for k in first if k not in {"rows", "threshold"}]
    labels = _labels_at(first)
    table = Table("split", "rows", *names, title="Metrics" + (f" ({labels})" if labels else ""))
    for split, values in metrics.items():
        table.add_row(split, f"{int(values['rows']):,}", *(_fmt(values.get(n)) for n in names))
    console.print(table)


@models_app.command("list")
def list_(
    versions: Annotated[
        bool, typer.Option("--versions", help="Every package version, not only the newest.")
    ] = False,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """List the registered models: the newest package version of each (a bare name means
    it; NAME@N names a version)."""
    from mlplan.modeling import list_models
    from mlplan.workspace import list_deployments

    ws = workspace(project)
    models = list_models(ws, versions=versions)
    if json:
        print_json([m.to_dict() for m in models])
        return
    deployed: dict[str, list[str]] = {}
    for d in list_deployments(ws):
        deployed.setdefault(d.model_ref, []).append(d.name)
    table = Table(
        "model", "family", "baseline", "split", "from", "deployed", "test metrics", title="Models"
    )
    for m in models:
        test = m.metrics.get("test", {})
        shown = ", ".join(
            f"{k} {_fmt(v)}" for k, v in test.items() if k not in {"rows", "threshold"}
        )
        labels = _labels_at(test)
        shown += f" ({labels})" if labels else ""
        table.add_row(
            esc(m.ref),
            m.family,
            "yes" if m.baseline else "",
            esc(m.split),
            esc(m.parent or ""),
            esc(", ".join(deployed.get(m.ref, []))),
            shown,
        )
    console.print(table)


@models_app.command("show")
def show(
    name: Annotated[
        str, typer.Argument(help="The model, e.g. gbt-1 (its newest version) or gbt-1@2.")
    ],
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Show a model: features, metrics per split, package and parity."""
    from mlplan.modeling import get_model

    model = get_model(workspace(project), name)
    if json:
        print_json(model.to_dict())
        return
    console.print(
        f"[bold]{esc(model.ref)}[/] — {model.family} on {esc(model.split)}, run "
        f"{model.run_id[:8]}"
        + (
            f" (trained on {esc(model.parameters['device'])})"
            if "device" in model.parameters
            else ""
        )
        + f", package {model.package_sha256[:12]}"
        + (f", derived from {esc(model.parent)}" if model.parent else "")
    )
    spec = model.features
    kind = spec.get("kind", "tabular")
    if kind == "image":
        backbone = spec["backbone"]
        console.print(
            f"images {spec['channels']}x{spec['height']}x{spec['width']} through backbone "
            f"{esc(backbone['name'])} ({backbone['format']}), fine-tuned: "
            f"{esc(str(model.parameters.get('fine_tuned', 'head only')))}"
        )
    elif kind == "window":
        console.print(
            f"windows of {spec['length']} steps of {esc(', '.join(spec['channels']))} by "
            f"{esc(spec['time_column'])}, {spec['horizon']} step(s) ahead"
        )
    else:
        console.print(f"numeric: {esc(', '.join(spec['numeric'])) or '(none)'}")
        console.print(f"categorical: {esc(', '.join(spec['categorical'])) or '(none)'}")
        for column, rare in spec.get("infrequent", {}).items():
            shown = ", ".join(rare[:8]) + (f" … ({len(rare)} in all)" if len(rare) > 8 else "")
            console.print(
                f"  {esc(column)}: seen in fewer than {spec['min_frequency']} training rows, "
                f"scored as one (infrequent): {esc(shown)}",
                style="dim",
            )
    tuning = model.parameters.get("tuning")
    if tuning:
        console.print(
            f"tuned: {len(tuning['trials'])} trials by validation {tuning['metric']}, "
            f"best trial {tuning['best_trial']}"
        )
    for column, why in spec.get("excluded", {}).items():
        console.print(f"  left out {esc(column)}: {esc(why)}", style="dim")
    _print_allowed(spec, style="dim", indent="  ")
    _metrics_table(model.metrics)
    for filename, sha in model.package.items():
        console.print(f"  {filename}: sha256 {sha[:12]}…")


@models_app.command("card")
def card(
    name: Annotated[str, typer.Argument(help="The model, e.g. gbt-1.")],
    out: Annotated[
        Path | None,
        typer.Option(help="Write the card to this file: .md (Markdown) or .html (default: print)."),
    ] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """The model card, generated now from the store: the dataset version and split the model
    was trained on, its inputs, its newest evaluation and the approvals that name it."""
    from mlplan.errors import UsageError
    from mlplan.evaluation import model_card
    from mlplan.workspace import write_atomic

    if out is not None and out.suffix.lower() not in {".md", ".html"}:
        raise UsageError(f"--out {out} must end in .md or .html (the format follows the suffix)")
    found = model_card(workspace(project), name)
    if out is not None:
        write_atomic(out, found.html if out.suffix.lower() == ".html" else found.markdown)
    if json:
        print_json(found.to_dict() | {"file": None if out is None else str(out)})
    elif out is not None:
        console.print(f"Wrote the card of [bold]{esc(name)}[/] to {esc(out)}")
    else:
        typer.echo(found.markdown, nl=False)


@models_app.command("compare")
def compare(
    split: Annotated[str | None, typer.Option(help="The split (default: the newest).")] = None,
    n_boot: Annotated[
        int | None,
        typer.Option(
            "--bootstrap",
            "--boot",
            help="Bootstrap resamples for intervals (default: evaluation.bootstrap, as evaluate).",
            min=0,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap (as evaluate's).")] = 0,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Compare the models with the trivial baseline, HLP and the literature, on the test
    split, with the bootstrap intervals evaluate draws."""
    from mlplan.modeling import compare_models

    result = compare_models(workspace(project), split=split, n_boot=n_boot, seed=seed)
    if json:
        print_json(result.to_dict())
        return
    primary = result.primary
    level = f"{round((result.confidence or 0.95) * 100)}% interval"
    table = Table(
        "",
        "kind",
        primary,
        level,
        "labels",
        "note",
        title=f"Comparison on the test rows of {result.split}"
        + (f" ({result.bootstrap} bootstrap resamples)" if result.bootstrap is not None else ""),
    )
    for row in result.rows:
        metric: dict[str, Any] = row["metrics"].get(primary) or next(
            iter(row["metrics"].values()), {}
        )
        shown_metric = primary if primary in row["metrics"] else next(iter(row["metrics"]), "")
        value = metric.get("value")
        interval = (
            f"[{_fmt(metric['low'])}, {_fmt(metric['high'])}]"
            if metric.get("low") is not None
            else ("reported" if not row["measured"] else "")
        )
        label = _fmt(value) + ("" if shown_metric == primary else f" ({shown_metric})")
        table.add_row(
            esc(row["name"]), row["kind"], label, interval, _labels(row), esc(row["note"])
        )
    console.print(table)
    gaps = result.gaps
    for key, name in (("to_hlp", "HLP"), ("to_trivial", "the trivial baseline")):
        if key in gaps:
            console.print(
                f"{esc(gaps['best_model'])} vs {name}: {gaps[key]:+.4f} "
                f"{esc(gaps.get(key + '_metric', gaps['metric']))}"
            )


def _labels(row: dict[str, Any]) -> str:
    """How a comparison row's labels were decided: at which threshold, set by whom."""
    threshold = row.get("threshold")
    if threshold:
        return esc(f"at threshold {threshold['value']:.4g} ({threshold['set_by']})")
    if row["kind"] == "model" and "accuracy" in row["metrics"]:
        return "most probable class"
    return ""


baseline_app = typer.Typer(help="Baselines the models must beat.", no_args_is_help=True)
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("older")
def older(
    predictions: Annotated[
        Path | None,
        typer.Option(
            help="The older system's predictions: item_id, prediction, and optionally one "
            "probability column per class (default: baselines.older_system.predictions)."
        ),
    ] = None,
    split: Annotated[str | None, typer.Option(help="The split (default: the newest).")] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Import the older system's predictions, to score it on the same test split."""
    from mlplan.modeling import import_older_system

    report = import_older_system(
        workspace(project), predictions.resolve() if predictions else None, split=split
    )
    if json:
        print_json(report.to_dict())
        return
    console.print(
        f"Recorded {esc(report.name)}'s predictions for {report.test_rows:,} "
        f"test rows of {esc(report.split)}. Next: mlplan models compare"
    )
