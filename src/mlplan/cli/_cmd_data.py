"""``mlplan data add|list|show|diff|split|splits|rows``."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from mlplan.cli._app import JsonOption, ProjectOption, app, workspace
from mlplan.cli._render import console, err_console, esc, print_json
from mlplan.errors import CheckFailedError, UsageError

if TYPE_CHECKING:
    from mlplan.data import ColumnShift, DatasetDiff, RegisterResult, SplitInfo

data_app = typer.Typer(help="Register, describe, compare and split datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


# The datasheet fields, shared by `data add` and `data describe`.
SourceOption = Annotated[str | None, typer.Option(help="Where it comes from (provenance).")]
OwnerOption = Annotated[str | None, typer.Option(help="Who owns it.")]
LicenseOption = Annotated[str | None, typer.Option("--license", help="Its license.")]
DescriptionOption = Annotated[str | None, typer.Option(help="What it is.")]
CollectedOption = Annotated[
    str | None, typer.Option(help="Collection period START[:END], ISO dates.")
]
PiiOption = Annotated[str | None, typer.Option("--pii", help="PII columns, comma-separated.")]
SensitiveOption = Annotated[
    str | None, typer.Option("--sensitive", help="Sensitive attributes, comma-separated.")
]


def _columns(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [c.strip() for c in value.split(",") if c.strip()]


def _period(value: str | None) -> tuple[dt.date, dt.date | None] | None:
    if value is None:
        return None
    start, _, end = value.partition(":")
    try:
        return dt.date.fromisoformat(start), dt.date.fromisoformat(end) if end else None
    except ValueError:
        raise UsageError(
            f"--collected must be START[:END] as ISO dates, e.g. "
            f"2025-01-01:2025-12-31. Got {value!r} instead."
        ) from None


@data_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Dataset name, as in the plan.")],
    path: Annotated[
        Path | None,
        typer.Argument(help="File or image folder (default: the plan's datasets.NAME.path)."),
    ] = None,
    source: SourceOption = None,
    owner: OwnerOption = None,
    license: LicenseOption = None,
    description: DescriptionOption = None,
    collected: CollectedOption = None,
    pii_columns: PiiOption = None,
    sensitive_attributes: SensitiveOption = None,
    delimiter: Annotated[
        str | None,
        typer.Option(
            help="A CSV file's field delimiter: one character, or comma, semicolon, tab, pipe "
            "(default: the plan's, else found from the file).",
        ),
    ] = None,
    decimal: Annotated[
        str | None,
        typer.Option(
            help="A CSV file's decimal mark: '.' or ',' (4,36 is 4.36; default: the plan's, "
            "else found from the file).",
        ),
    ] = None,
    snapshot: Annotated[
        bool,
        typer.Option(
            help="Copy the bytes into the store (--no-snapshot keeps only the fingerprint)."
        ),
    ] = True,
    engine: Annotated[
        Literal["local", "ray"],
        typer.Option(help="Profile in this process, or on Ray Data (CSV and Parquet files)."),
    ] = "local",
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Register a version of a dataset: hashed, profiled, described, with lineage."""
    from mlplan.data import register_dataset

    ws = workspace(project)
    with (
        console.status(f"Reading and profiling {path or name}…")
        if console.is_terminal
        else contextlib.nullcontext()
    ):
        result = register_dataset(
            ws,
            name,
            path.resolve() if path else None,
            source=source,
            owner=owner,
            license=license,
            description=description,
            collected=_period(collected),
            pii_columns=_columns(pii_columns),
            sensitive_attributes=_columns(sensitive_attributes),
            delimiter=delimiter,
            decimal=decimal,
            snapshot=snapshot,
            engine=engine,
        )
    _print_registered(result, json=json)


def _print_registered(result: RegisterResult, *, json: bool) -> None:
    from mlplan.data import decimal_name, delimiter_name

    for warning in result.warnings:
        err_console.print(f"warning: {warning}", style="yellow", markup=False)
    info = result.version
    if json:
        print_json(result.to_dict())
        return
    if result.created:
        delimiter = info.delimiter
        split = (
            f", fields split on {esc(delimiter_name(delimiter))}"
            if delimiter not in (None, ",")
            else ""
        ) + (f", {decimal_name(',')}" if info.decimal == "," else "")
        console.print(
            f"Registered [bold]{esc(info.ref)}[/]: {info.rows:,} rows × "
            f"{len(info.columns)} columns{split}, sha256 {info.content_hash[:12]}…"
        )
    else:
        console.print(
            f"Unchanged: the content is already [bold]{esc(info.ref)}[/] "
            f"(sha256 {info.content_hash[:12]}…); no new version"
        )
    console.print(f"Next: mlplan data show {esc(info.ref)}  ·  mlplan data split {esc(info.name)}")


@data_app.command("describe")
def describe(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (default: the latest).")],
    source: SourceOption = None,
    owner: OwnerOption = None,
    license: LicenseOption = None,
    description: DescriptionOption = None,
    collected: CollectedOption = None,
    pii_columns: PiiOption = None,
    sensitive_attributes: SensitiveOption = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Amend the datasheet of a registered version (same bytes, no new version)."""
    from mlplan.data import describe_dataset

    info = describe_dataset(
        workspace(project),
        ref,
        source=source,
        owner=owner,
        license=license,
        description=description,
        collected=_period(collected),
        pii_columns=_columns(pii_columns),
        sensitive_attributes=_columns(sensitive_attributes),
    )
    if json:
        print_json({k: v for k, v in info.to_dict().items() if k != "profile"})
        return
    console.print(f"Described [bold]{esc(info.ref)}[/]; see: mlplan data show {esc(info.ref)}")


@data_app.command("list")
def list_(project: ProjectOption = None, json: JsonOption = False) -> None:
    """List the datasets of the plan and the store, with their latest versions."""
    from mlplan.data import list_datasets

    ws = workspace(project)
    summaries = list_datasets(ws)
    if json:
        print_json(
            [
                {
                    "name": s.name,
                    "versions": s.versions,
                    "in_plan": s.in_plan,
                    "latest": {k: v for k, v in s.latest.to_dict().items() if k != "profile"}
                    if s.latest
                    else None,
                }
                for s in summaries
            ]
        )
        return
    if not summaries:
        console.print("No datasets in the plan or the store. Add one: mlplan data add NAME FILE")
        return
    table = Table(
        "dataset", "latest", "versions", "rows", "columns", "registered", "source", title="Datasets"
    )
    for s in summaries:
        latest = s.latest
        table.add_row(
            esc(s.name) + ("" if s.in_plan else " (not in plan)"),
            esc(latest.ref) if latest else "— not registered",
            str(s.versions),
            f"{latest.rows:,}" if latest else "",
            str(len(latest.columns)) if latest else "",
            f"{latest.created_at:%Y-%m-%d %H:%M}" if latest else "",
            esc(latest.metadata.get("source") or "—") if latest else "",
        )
    console.print(table)


@data_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION.")],
    format: Annotated[
        Literal["table", "markdown", "json"],
        typer.Option("--format", "-f", help="table (terminal), markdown or json."),
    ] = "table",
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Show the datasheet of a dataset version: metadata, schema and profile."""
    from mlplan.data import (
        column_rows,
        datasheet_markdown,
        effective_metadata,
        format_value,
        get_dataset,
        metadata_rows,
    )

    ws = workspace(project)
    info = get_dataset(ws, ref)
    metadata = effective_metadata(ws, info)
    if json or format == "json":
        print_json(info.to_dict() | {"datasheet": metadata})
        return
    if format == "markdown":
        console.out(datasheet_markdown(info, metadata), highlight=False)
        return
    meta = Table.grid(padding=(0, 2))
    for key, value in metadata_rows(info, metadata):
        meta.add_row(f"[bold]{key}[/]", esc(value))
    console.print(
        f"[bold]Datasheet: {esc(info.ref)}[/] — {info.rows:,} rows × {len(info.columns)} columns"
    )
    console.print(meta)
    images = info.profile.get("images")
    if images:
        classes = ", ".join(f"{esc(k)} {v:,}" for k, v in images["classes"].items())
        console.print(f"Images per class: {classes}")
        for key in ("width", "height", "brightness", "contrast"):
            m = images[key]
            console.print(
                f"  {key}: min {format_value(m['min'])}, median "
                f"{format_value(m['median'])}, max {format_value(m['max'])}, mean "
                f"{format_value(m['mean'])}"
            )
    table = Table("column", "kind", "missing", "distinct", "distribution", title="Columns")
    for row in column_rows(info):
        table.add_row(*(esc(row[k]) for k in ("column", "kind", "missing", "distinct", "summary")))
    console.print(table)


@data_app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="First version, e.g. customers@1.")],
    b: Annotated[str, typer.Argument(help="Second version, e.g. customers@2.")],
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Show schema changes and distribution shifts between two versions."""
    from mlplan.data import diff_datasets

    result = diff_datasets(workspace(project), a, b)
    if json:
        print_json(result.to_dict())
        return
    console.print(
        f"[bold]{esc(result.a)} → {esc(result.b)}[/]: rows {result.rows[0]:,} → {result.rows[1]:,}"
    )
    for column in result.added:
        console.print(f"  [green]+ {esc(column['column'])}[/] ({esc(column['type'])})")
    for column in result.removed:
        console.print(f"  [red]- {esc(column['column'])}[/] ({esc(column['type'])})")
    for change in result.type_changes:
        console.print(
            f"  [yellow]~ {esc(change['column'])}[/]: {esc(change['from'])} → {esc(change['to'])}"
        )
    console.print(_shifts_table(result))
    estimated = [s.column for s in result.shifts if s.psi_from in {"quantiles", "top values"}]
    if estimated:
        console.print(
            "PSI from the stored profiles: exact where every value is counted; for "
            f"{esc(', '.join(estimated))} between the stored quantiles (numbers) or over the "
            "most frequent values (categories)."
        )
    flagged = [s.column for s in result.shifts if s.flagged]
    console.print(
        f"{len(flagged)} column(s) shifted: {esc(', '.join(flagged))}"
        if flagged
        else "No column shifted beyond the threshold."
    )


def _shifts_table(result: DatasetDiff) -> Table:
    from mlplan.data import format_value

    table = Table(
        "column",
        "kind",
        f"PSI (> {result.threshold:g} flagged)",
        "missing",
        "mean",
        "distinct",
        "categories",
        title="Distribution shifts",
    )
    for shift in result.shifts:
        flag = "[red bold]" if shift.flagged else ""
        table.add_row(
            esc(shift.column),
            shift.kind,
            f"{flag}{format_value(shift.psi)}" if shift.psi is not None else "—",
            f"{shift.missing_ratio[0]:.1%} → {shift.missing_ratio[1]:.1%}",
            f"{format_value(shift.mean[0])} → {format_value(shift.mean[1])}" if shift.mean else "",
            f"{format_value(shift.distinct[0])} → {format_value(shift.distinct[1])}",
            esc(shift.note or _categories(shift)),
        )
    return table


def _categories(shift: ColumnShift) -> str:
    new = "new: " + ", ".join(shift.new_categories) if shift.new_categories else ""
    gone = " gone: " + ", ".join(shift.gone_categories) if shift.gone_categories else ""
    return new + gone


@data_app.command("split")
def split(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION.")],
    test: Annotated[float, typer.Option(help="Share of rows for test.")] = 0.2,
    valid: Annotated[float, typer.Option(help="Share of rows for validation.")] = 0.1,
    stratify: Annotated[str | None, typer.Option(help="Column to stratify by.")] = None,
    group: Annotated[
        str | None,
        typer.Option(help="Column whose values never span two splits (e.g. customer_id)."),
    ] = None,
    time: Annotated[
        str | None, typer.Option(help="Split by time: oldest rows train, newest test.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    accept_leakage: Annotated[
        str | None,
        typer.Option(
            "--accept-leakage",
            metavar="REASON",
            help="Record the split although ids or groups cross splits, and why (exit 0).",
        ),
    ] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Split a dataset version into train / valid / test and check for leakage (exit 1 when
    ids or groups cross splits, unless --accept-leakage)."""
    from mlplan.data import split_dataset

    info = split_dataset(
        workspace(project),
        ref,
        test=test,
        valid=valid,
        stratify=stratify,
        group=group,
        time=time,
        seed=seed,
        accept_leakage=accept_leakage,
    )
    if json:
        print_json(info.to_dict())
    else:
        shares = ", ".join(
            f"{name} {c['rows']:,} ({c['share']:.1%})" for name, c in info.counts.items()
        )
        if info.created:
            console.print(f"Split [bold]{esc(info.ref)}[/]: {shares}")
        else:
            console.print(
                f"Unchanged: [bold]{esc(info.ref)}[/] split this version the same way already "
                f"({shares}); a new seed or other shares make another"
            )
        _print_leakage(info)
    if info.failures and info.accepted is None:
        raise CheckFailedError.about(
            "accept_leakage",
            f"{info.ref} failed its leakage checks: {'; '.join(info.failures)} (recorded as "
            "failed; training refuses it). Split with --group on the entity column, or record "
            'why it is acceptable with {param} "REASON"',
        )


def _print_leakage(info: SplitInfo) -> None:
    leakage = info.leakage
    lines = [
        f"{label} across splits: {leakage[f'{label}_across_splits']:,}"
        for label in ("groups", "ids", "images")
        if f"{label}_across_splits" in leakage
    ]
    if info.failures and info.accepted is not None:
        verdict = f"[yellow bold]FAIL, accepted[/] ({esc(info.accepted)})"
    elif info.failures:
        verdict = "[red bold]FAIL[/]"
    else:
        verdict = "[green]pass[/]"
    console.print(f"Leakage checks {verdict}" + (": " + "; ".join(lines) if lines else ""))
    for warning in leakage.get("warnings", []):
        err_console.print(f"warning: {warning}", style="yellow", markup=False)


@data_app.command("splits")
def splits(
    dataset: Annotated[str | None, typer.Argument(help="NAME or NAME@VERSION.")] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """List the recorded splits."""
    from mlplan.data import list_splits

    found = list_splits(workspace(project), dataset)
    if json:
        print_json([s.to_dict() for s in found])
        return
    table = Table(
        "split",
        "train",
        "valid",
        "test",
        "stratify",
        "group",
        "time",
        "seed",
        "leakage",
        "created",
        title="Splits",
    )
    for s in found:
        p = s.parameters
        table.add_row(
            esc(s.ref),
            *(f"{s.counts[k]['rows']:,}" for k in ("train", "valid", "test")),
            esc(p.get("stratify") or ""),
            esc(p.get("group") or ""),
            esc(p.get("time") or ""),
            str(p.get("seed")),
            ("[yellow]accepted[/]" if s.accepted else "[red]FAIL[/]") if s.failures else "pass",
            f"{s.created_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@data_app.command("rows")
def rows(
    ref: Annotated[str, typer.Argument(help="A split: NAME@VERSION/sN (or NAME/sN).")],
    out: Annotated[
        Path, typer.Option(help="The file to write: .csv or .parquet (format by suffix).")
    ],
    part: Annotated[
        Literal["train", "valid", "test"], typer.Option(help="Which rows of the split.")
    ] = "test",
    include_pii: Annotated[
        bool, typer.Option("--include-pii", help="Write the PII columns too (left out).")
    ] = False,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Write the rows of one part of a split, each with its row number in the version
    (mlplan_row), so anyone can check a figure independently."""
    from mlplan.data import export_rows

    found = export_rows(workspace(project), ref, part=part, out=out, include_pii=include_pii)
    if json:
        print_json(found.to_dict())
        return
    console.print(
        f"Wrote the {found.rows:,} {found.part} rows of [bold]{esc(found.split)}[/] to "
        f"{esc(found.path)} (sha256 {found.sha256[:12]}…), recorded as run {found.run_id[:8]}"
    )
    if found.left_out:
        console.print(
            f"Left out the PII columns {esc(', '.join(found.left_out))} (--include-pii writes them)"
        )
