"""``mlplan features check``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from mlplan.cli._app import JsonOption, ProjectOption, app, workspace
from mlplan.cli._render import console, esc, print_json

if TYPE_CHECKING:
    from mlplan.workspace import Workspace

features_app = typer.Typer(
    help="The plan's derived features (features:), computed alike in training and serving.",
    no_args_is_help=True,
)
app.add_typer(features_app, name="features")


@features_app.command("check")
def check(
    model: Annotated[
        str | None,
        typer.Argument(
            help="A model trained with derived features: its features.json and its package's "
            "graph, on its split (default: the plan's features, fitted on the split)."
        ),
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="The split whose training rows fit and check them.")
    ] = None,
    rows: Annotated[
        int, typer.Option(help="Training rows to check (a seeded sample; 0: all).")
    ] = 10_000,
    logged: Annotated[
        int, typer.Option(help="Logged requests to check too, the newest (0: none).")
    ] = 1_000,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Compute every derived feature both ways — DuckDB SQL, as training and batch scoring
    do, and the ONNX nodes a package runs (MODEL's own graph when given) — on the training
    rows and on logged requests, and fail (exit 1) on any difference beyond float32 rounding,
    naming feature, row and values."""
    from mlplan.features import FittedFeatures, check_features

    ws = workspace(project)
    fitted, graph = None, None
    if model is not None:
        from mlplan.errors import UsageError
        from mlplan.modeling import get_model

        info = get_model(ws, model)
        if not info.features.get("derived"):
            raise UsageError(
                f"{info.ref} was trained without derived features; check the plan's with: "
                "mlplan features check"
            )
        fitted = FittedFeatures.from_dict(info.features["derived"])
        graph = ws.store.artifacts.path(info.package["model.onnx"]).read_bytes()
        split = split or info.split
    requests = _logged_inputs(ws, logged) if logged > 0 else []
    report = check_features(
        ws, split=split, rows=rows or None, logged=requests, fitted=fitted, graph=graph
    )
    if json:
        print_json({"project": ws.plan.project.name, **report.to_dict()})
    else:
        counted = ", ".join(f"{n} {source} rows" for source, n in report.rows.items())
        if report.passed:
            console.print(
                f"[green]No skew[/]: {len(report.features)} feature(s) agree on {counted} "
                f"(rtol {report.rtol:g}, atol {report.atol:g})."
            )
        else:
            differing = ", ".join(f"{esc(k)} on {v} row(s)" for k, v in report.differing.items())
            console.print(f"[red]Skew[/]: {differing} of {counted}:")
            for mismatch in report.mismatches:
                console.print(f"  {esc(str(mismatch))}")
    if not report.passed:
        raise typer.Exit(1)


def _logged_inputs(ws: Workspace, limit: int) -> list[str | None]:
    """The ``inputs`` of the newest ``limit`` logged requests (none when nothing was logged,
    or the serving extra is not installed)."""
    try:
        from mlplan.serving import log_folder, query_log
    except ImportError:
        return []
    folder = log_folder(ws, None)
    if not folder.is_dir() or not any(folder.rglob("*.*")):
        return []
    table = query_log(
        folder,
        "SELECT inputs FROM predictions WHERE inputs IS NOT NULL "
        f"ORDER BY time DESC LIMIT {int(limit)}",
    )
    return [str(v) for v in table.column("inputs").to_pylist() if v is not None]
