"""``mlplan labels export|estimate|import|agreement|consensus|hlp|queue|triage|issues``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.table import Table

from mlplan.cli._app import JsonOption, ProjectOption, app, workspace
from mlplan.cli._render import console, esc, print_json

if TYPE_CHECKING:
    from mlplan.labels import AgreementReport, AgreementResult, BatchInfo, HumanLevelPerformance

labels_app = typer.Typer(
    help="Labeling batches, annotations, agreement, HLP and the relabel queue.",
    no_args_is_help=True,
)
app.add_typer(labels_app, name="labels")

DatasetOption = Annotated[
    str | None,
    typer.Option("--dataset", "-d", help="NAME[@VERSION] (default: the one labeled last)."),
]
Strategy = Literal["in-house", "outsourced", "crowdsourced"]


def _names(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _money(amount: float, currency: str) -> str:
    return f"{currency} {amount:,.2f}"


def _estimates_table(estimates: list[Any], chosen: str | None = None) -> Table:
    table = Table(
        "strategy",
        "items",
        "labels",
        "cost",
        "annotator-hours",
        "calendar hours",
        title="Cost and time by strategy",
    )
    for e in estimates:
        mark = " ◀" if e.strategy == chosen else ""
        table.add_row(
            e.strategy + mark,
            f"{e.items:,}",
            f"{e.labels:,}",
            _money(e.cost, e.currency),
            f"{e.annotator_hours:,.1f}",
            f"{e.calendar_hours:,.1f}",
        )
    return table


@labels_app.command("export")
def export(
    dataset: Annotated[str | None, typer.Argument(help="NAME[@VERSION] to label.")] = None,
    strategy: Annotated[
        Strategy | None, typer.Option(help="Who labels (default: the plan's labels.strategy).")
    ] = None,
    n: Annotated[int, typer.Option("--n", help="Items in the batch.")] = 500,
    overlap: Annotated[
        float | None,
        typer.Option(help="Share of items labeled by two annotators (default: the plan's)."),
    ] = None,
    k: Annotated[int | None, typer.Option(help="Labels per item for crowdsourcing.")] = None,
    select: Annotated[
        Literal["random", "stratified", "uncertainty"], typer.Option(help="How items are chosen.")
    ] = "random",
    slice_name: Annotated[
        str | None,
        typer.Option("--slice", help="With --select stratified: the plan slice to balance."),
    ] = None,
    scores: Annotated[
        Path | None,
        typer.Option(help="With --select uncertainty: item_id and class probabilities."),
    ] = None,
    annotators: Annotated[
        str | None,
        typer.Option(help="Annotator names, comma-separated (default: from the plan's rates)."),
    ] = None,
    format: Annotated[
        Literal["csv", "labelstudio"],
        typer.Option("--format", "-f", help="csv, or labelstudio (tasks JSON + labeling config)."),
    ] = "csv",
    out: Annotated[Path | None, typer.Option(help="Where to write the batch.")] = None,
    include_pii: Annotated[bool, typer.Option(help="In-house only: include PII columns.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Select items, assign annotators and write a labeling batch, with its cost."""
    from mlplan.labels import export_batch

    batch = export_batch(
        workspace(project),
        dataset,
        strategy=strategy,
        n=n,
        overlap=overlap,
        k=k,
        selection=select,
        slice_name=slice_name,
        scores=scores,
        annotators=_names(annotators),
        fmt=format,
        out=out,
        include_pii=include_pii,
        seed=seed,
    )
    if json:
        print_json(batch.to_dict())
        return
    _print_batch(batch)


def _print_batch(batch: BatchInfo) -> None:
    e = batch.estimate
    console.print(
        f"Batch [bold]{batch.number}[/] of {esc(batch.dataset)}: {batch.items:,} items "
        f"({batch.selection}), {batch.assignments:,} assignments to "
        f"{len(batch.annotators)} {esc(batch.strategy)} annotators; "
        f"estimate {_money(e.cost, e.currency)}, {e.calendar_hours:,.1f} h"
    )
    for path in batch.files:
        console.print(f"  wrote {esc(path)}")
    console.print(_estimates_table(batch.comparison, batch.strategy))
    console.print(f"Next: mlplan labels import FILE --batch {batch.number}")


@labels_app.command("batches")
def batches_cmd(project: ProjectOption = None, json: JsonOption = False) -> None:
    """List the labeling batches and how many labels came back for each."""
    from mlplan.labels import list_batches

    batches = list_batches(workspace(project))
    if json:
        print_json([b.to_dict() for b in batches])
        return
    table = Table(
        "batch",
        "dataset",
        "strategy",
        "selection",
        "items",
        "assignments",
        "labels back",
        "estimate",
        "created",
        title="Labeling batches",
    )
    for b in batches:
        table.add_row(
            str(b.number),
            esc(b.dataset),
            b.strategy + (" (opaque ids)" if b.external else ""),
            b.selection,
            f"{b.items:,}",
            f"{b.assignments:,}",
            f"{b.labels_imported:,}",
            _money(b.estimate.cost, b.estimate.currency),
            b.created_at.isoformat()[:16].replace("T", " "),
        )
    console.print(table)


@labels_app.command("estimate")
def estimate_cmd(
    n: Annotated[int, typer.Option("--n", help="Items to label.")] = 1000,
    overlap: Annotated[float | None, typer.Option(help="Share labeled twice.")] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Compare the cost and time of every labeling strategy the plan has rates for."""
    from mlplan.labels import compare_strategies

    ws = workspace(project)
    estimates = compare_strategies(ws.plan.labels, items=n, overlap=overlap)
    if json:
        print_json([e.to_dict() for e in estimates])
        return
    if not estimates:
        console.print("The plan has no labels.rates to estimate with.")
        return
    console.print(_estimates_table(estimates, ws.plan.labels.strategy))


@labels_app.command("import")
def import_cmd(
    file: Annotated[
        Path,
        typer.Argument(help="CSV/JSONL (item_id, annotator, label) or a Label Studio JSON export."),
    ],
    dataset: DatasetOption = None,
    batch: Annotated[int | None, typer.Option(help="The batch these labels answer.")] = None,
    gold: Annotated[bool, typer.Option(help="These are gold (expert) labels.")] = False,
    skip_invalid: Annotated[
        bool, typer.Option(help="Import the valid rows and record the rest as skipped.")
    ] = False,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Import annotations in one transaction; problems are counted with examples."""
    from mlplan.labels import import_annotations

    result = import_annotations(
        workspace(project),
        file.resolve(),
        dataset=dataset,
        batch=batch,
        gold=gold,
        skip_invalid=skip_invalid,
    )
    if json:
        print_json(result.to_dict())
        return
    skipped = sum(v for k, v in result.counts.items() if k != "imported")
    console.print(
        f"Imported {result.counts['imported']:,} {'gold ' if gold else ''}labels "
        f"({result.format}) for {esc(result.dataset)}"
        + (f"; skipped {skipped:,}:" if skipped else "")
    )
    for line in result.problems.splitlines():
        console.print(f"  {esc(line)}", style="yellow")
    console.print("Next: mlplan labels agreement  ·  mlplan labels hlp")


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@labels_app.command("agreement")
def agreement_cmd(
    dataset: DatasetOption = None,
    level: Annotated[
        Literal["nominal", "ordinal", "interval", "ratio"] | None,
        typer.Option(help="Krippendorff's level (default: from labels.scale)."),
    ] = None,
    boot: Annotated[int, typer.Option(help="Bootstrap resamples for the interval.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Agreement between annotators, the annotator table, and disagreements to relabel."""
    from mlplan.labels import measure_agreement

    result = measure_agreement(workspace(project), dataset, level=level, n_boot=boot, seed=seed)
    if json:
        print_json(result.to_dict())
        return
    _print_agreement(result)


def _print_agreement(result: AgreementResult) -> None:
    r = result.report
    style = "green" if result.passed else "red bold"
    console.print(
        f"[bold]{esc(result.dataset)}[/]: {r.annotations:,} labels on {r.items:,} items by "
        f"{r.annotators} annotators; {r.multiply_labeled_items:,} items labeled twice or more"
    )
    console.print(
        f"Krippendorff's alpha ({r.level}) {_fmt(r.alpha.value)} "
        f"[{_fmt(r.alpha.low)}, {_fmt(r.alpha.high)}] · Fleiss' kappa {_fmt(r.fleiss_kappa)} · "
        f"percent agreement {_fmt(r.percent_agreement)}"
    )
    console.print(
        f"[{style}]{result.metric} {_fmt(result.value)} "
        f"{'>=' if result.passed else '<'} {result.threshold} (labels.min_agreement)"
        "[/]"
    )
    console.print(_annotators_table(r))
    per_class = ", ".join(f"{esc(c)} {_fmt(v)}" for c, v in r.per_class.items())
    console.print(f"Per-class agreement: {per_class}")
    for pair in result.confused:
        console.print(f"finding: {esc(pair.finding)}", style="yellow")
    if result.queued:
        console.print(
            f"{result.queued:,} disagreement(s) added to the relabel queue: mlplan labels queue"
        )
    console.print(
        f"Measured on the label set sha256 {result.labels_sha256[:12]}…, run "
        f"{(result.run_id or '')[:8]}: mlplan lineage {esc(result.dataset)}:agreement"
    )


def _annotators_table(report: AgreementReport) -> Table:
    table = Table(
        "annotator",
        "labels",
        "agreement with others",
        "kappa",
        "compared",
        "s / label",
        title="Annotators",
    )
    for a in sorted(report.annotator_table, key=lambda a: a.kappa_with_consensus):
        table.add_row(
            esc(a.annotator),
            f"{a.labels:,}",
            _fmt(a.agreement_with_consensus),
            _fmt(a.kappa_with_consensus),
            f"{a.compared:,}",
            _fmt(a.seconds_per_label),
        )
    return table


@labels_app.command("consensus")
def consensus_cmd(
    dataset: DatasetOption = None,
    method: Annotated[
        Literal["majority", "dawid-skene"],
        typer.Option(help="Majority vote, or Dawid–Skene EM for crowds."),
    ] = "majority",
    ties: Annotated[
        Literal["unresolved", "random"],
        typer.Option(help="Majority ties: leave unresolved, or pick one (seeded)."),
    ] = "unresolved",
    out: Annotated[Path | None, typer.Option(help="Write item_id,label,confidence CSV.")] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """One label per item from the annotators' labels."""
    from mlplan.labels import consensus_labels

    result = consensus_labels(workspace(project), dataset, method=method, ties=ties, out=out)
    if json:
        print_json(result.to_dict())
        return
    consensus = result.consensus
    console.print(
        f"{consensus.method}: {result.resolved:,} of {len(result.annotations.items):,} items "
        f"resolved, mean confidence {result.mean_confidence:.3f}"
        + (f", {consensus.iterations} iterations" if consensus.method != "majority" else "")
    )
    console.print(f"  from the label set sha256 {result.labels_sha256[:12]}…")
    if result.path:
        console.print(
            f"  wrote {esc(result.path)} (sha256 {(result.sha256 or '')[:12]}…), recorded as "
            f"run {(result.run_id or '')[:8]}"
        )


@labels_app.command("hlp")
def hlp_cmd(
    dataset: DatasetOption = None,
    boot: Annotated[int, typer.Option(help="Bootstrap resamples for intervals.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    min_items: Annotated[int, typer.Option(help="Fewest items with a reference.")] = 30,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Human-level performance, overall, per annotator and per plan slice (stored)."""
    from mlplan.labels import latest_label_report, measure_hlp

    ws = workspace(project)
    result = measure_hlp(ws, dataset, n_boot=boot, seed=seed, min_items=min_items)
    stored = latest_label_report(ws, "hlp", dataset)  # the one just stored
    assert stored is not None
    measured_from = {
        "dataset": stored.dataset,
        "labels_sha256": stored.report.get("labels_sha256"),
        "gold_sha256": stored.report.get("gold_sha256"),
        "run_id": stored.run_id,
    }
    if json:
        print_json(result.to_dict() | measured_from)
        return
    console.print(
        f"HLP against {esc(result.reference)}, {result.items:,} items, "
        f"{result.compared:,} labels compared"
    )
    for name, interval in result.metrics.items():
        mark = " (primary)" if name == result.primary else ""
        console.print(
            f"  {name}{mark}: {_fmt(interval.value)} [{_fmt(interval.low)}, {_fmt(interval.high)}]"
        )
    if result.primary_note:
        console.print(f"  note: {esc(result.primary_note)}", style="yellow")
    if result.per_annotator:
        table = Table("annotator", "compared", "accuracy", "macro F1", title="Per annotator")
        for row in sorted(result.per_annotator, key=lambda r: r["accuracy"]):
            table.add_row(
                esc(row["annotator"]),
                f"{row['compared']:,}",
                _fmt(row["accuracy"]),
                _fmt(row["macro_f1"]),
            )
        console.print(table)
    if result.per_slice:
        _print_hlp_slices(result)
    gold = measured_from["gold_sha256"]
    console.print(
        f"Measured on the labels of {esc(stored.dataset)} (sha256 "
        f"{str(measured_from['labels_sha256'])[:12]}…"
        + (f", gold {str(gold)[:12]}…" if gold else "")
        + f"), run {stored.run_id[:8]}: mlplan lineage {esc(stored.dataset)}:hlp"
    )


def _print_hlp_slices(result: HumanLevelPerformance) -> None:
    table = Table(
        "slice",
        "value",
        "items",
        "accuracy" if result.task != "regression" else "MAD",
        title="Per slice",
    )
    key = "accuracy" if result.task != "regression" else "mean_absolute_disagreement"
    for row in result.per_slice:
        metric = row["metrics"][key]
        shown = (
            f"{_fmt(metric['value'])} [{_fmt(metric['low'])}, {_fmt(metric['high'])}]"
            if "note" not in row
            else f"{_fmt(metric['value'])} (too few items)"
        )
        table.add_row(esc(row["slice"]), esc(row["value"]), f"{row['items']:,}", shown)
    console.print(table)
    if result.unresolved:
        console.print(
            f"{result.unresolved:,} label(s) not scored: the other annotators of their item tied",
            style="yellow",
        )


@labels_app.command("queue")
def queue_cmd(
    dataset: DatasetOption = None,
    status: Annotated[
        Literal["open", "triaged", "resolved"] | None,
        typer.Option(help="Only entries in this state."),
    ] = "open",
    export: Annotated[bool, typer.Option(help="Write the open items as a relabel batch.")] = False,
    format: Annotated[Literal["csv", "labelstudio"], typer.Option("--format", "-f")] = "csv",
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """The relabel queue: items whose labels disagree or look wrong."""
    from mlplan.labels import export_relabel_batch, relabel_queue

    ws = workspace(project)
    if export:
        batch = export_relabel_batch(ws, dataset, fmt=format)
        if json:
            print_json(batch.to_dict())
        else:
            console.print(
                f"Relabel batch {batch.number}: {batch.items:,} items, each to "
                f"annotators who have not labeled it → {esc(batch.files[0])}"
            )
        return
    entries = relabel_queue(ws, dataset, status=status)
    if json:
        print_json([e.to_dict() for e in entries])
        return
    table = Table("item", "why", "score", "details", "status", title="Relabel queue")
    for e in entries:
        details = e.details
        shown = (
            ", ".join(f"{esc(k)}×{v}" for k, v in details.get("labels", {}).items())
            if e.source == "disagreement"
            else f"given {esc(details.get('given'))}, model says {esc(details.get('suggested'))}"
        )
        table.add_row(esc(e.item_id), e.source, f"{e.score:.2f}", shown, e.status)
    console.print(table)
    console.print(f"{len(entries):,} item(s)")


@labels_app.command("triage")
def triage_cmd(
    item: Annotated[str, typer.Argument(help="The item id.")],
    status: Annotated[Literal["open", "triaged", "resolved"], typer.Option(help="Its new state.")],
    note: Annotated[str | None, typer.Option(help="What was decided.")] = None,
    dataset: DatasetOption = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Mark a relabel-queue item as triaged or resolved (or open again)."""
    from mlplan.labels import triage

    changed = triage(workspace(project), item, status=status, note=note, dataset=dataset)
    if json:
        print_json({"item_id": item, "status": status, "entries": changed})
        return
    console.print(f"{esc(item)}: {status} ({changed} entr{'y' if changed == 1 else 'ies'})")


@labels_app.command("issues")
def issues_cmd(
    pred_probs: Annotated[
        Path,
        typer.Option(
            "--pred-probs", help="Out-of-fold probabilities: item_id and one column per class."
        ),
    ],
    dataset: DatasetOption = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Find likely mislabeled training items by confident learning; queue them."""
    from mlplan.labels import issues_from_predictions

    found = issues_from_predictions(workspace(project), pred_probs.resolve(), dataset)
    if json:
        print_json([i.to_dict() for i in found])
        return
    console.print(f"{len(found):,} likely label issue(s) added to the relabel queue")
    for issue in found[:10]:
        d = issue.details
        console.print(
            f"  {esc(issue.item_id)}: labeled {esc(d['given'])}, model says "
            f"{esc(d['suggested'])} ({d['suggested_probability']:.2f})"
        )
