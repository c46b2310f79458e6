"""``mlplan serve``, ``mlplan deploy`` (a rollout, or a replace), ``mlplan deployments``,
``mlplan keys create|list|revoke``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from mlplan.cli._app import JsonOption, ProjectOption, app, workspace
from mlplan.cli._render import console, err_console, esc, print_json

if TYPE_CHECKING:
    from mlplan.workspace import Workspace

keys_app = typer.Typer(help="API keys of the serving path, by role.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command()
def serve(
    model: Annotated[
        str | None, typer.Argument(help="The model to serve, e.g. gbt-1 (or --deployment).")
    ] = None,
    deployment: Annotated[
        str | None,
        typer.Option(help="Serve the model of this deployment (mlplan deploy), e.g. production."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
    max_batch_rows: Annotated[
        int, typer.Option(help="Most rows per ONNX Runtime call (micro-batching).", min=1)
    ] = 512,
    max_queue_rows: Annotated[
        int, typer.Option(help="Rows allowed to wait; past it, 503 with Retry-After.", min=1)
    ] = 8192,
    timeout: Annotated[
        float, typer.Option(help="Seconds a request may wait for the model (then 504).")
    ] = 10.0,
    allow_failed_gates: Annotated[
        bool,
        typer.Option(
            "--allow-failed-gates",
            help="Serve a model that failed its evaluation gates (load tests and staging; "
            "production needs an approval: mlplan approve deploy --subject MODEL).",
        ),
    ] = False,
    controller: Annotated[
        bool,
        typer.Option(
            "--controller",
            help="Also run the rollout controller of the deployment (as mlplan rollout run "
            "does) in this process; needs --deployment.",
        ),
    ] = False,
    health_every: Annotated[
        float,
        typer.Option(
            "--health-every",
            help="Seconds between the health records (CPU, memory, queue, batches) each "
            "worker writes into the prediction log for mlplan monitor; 0: none.",
            min=0,
        ),
    ] = 0.0,
    project: ProjectOption = None,
) -> None:
    """Serve a model over HTTP: /v1/predict, the Open Inference Protocol v2, /metrics, and
    the admin routes of rollouts (/v1/rollouts); with --controller, drive the deployment's
    rollouts too."""
    from mlplan.rollout import APP_FACTORY
    from mlplan.serving import serve as run_server
    from mlplan.serving import serve_warnings, served_model

    ws = workspace(project)
    if controller and deployment is None:
        from mlplan.errors import ParameterError

        raise ParameterError(
            "controller", "{param} drives a deployment's rollouts: add --deployment NAME"
        )
    shown = served_model(ws, model, deployment)
    if deployment is not None:
        shown = f"{shown} ({deployment})"
    for warning in serve_warnings(ws):
        err_console.print(f"[yellow]mlplan serve: {esc(warning)}[/]")
    err_console.print(
        f"mlplan serve: {esc(shown)} on http://{esc(host)}:{port} ({workers} worker"
        f"{'s' if workers > 1 else ''}); live at /v2/health/live, ready at /v2/health/ready",
        highlight=False,
    )
    with _controller_thread(ws, deployment if controller else None):
        run_server(
            ws,
            model,
            deployment=deployment,
            host=host,
            port=port,
            workers=workers,
            max_batch_rows=max_batch_rows,
            max_queue_rows=max_queue_rows,
            timeout=timeout,
            allow_failed_gates=allow_failed_gates,
            app_factory=APP_FACTORY,
            health_every=health_every,
        )


@contextlib.contextmanager
def _controller_thread(ws: Workspace, deployment: str | None) -> Iterator[None]:
    """Run the rollout controller of ``deployment`` (None: none) in a daemon thread of this
    process while the server runs; stop it, its lease given back, when the server stops."""
    if deployment is None:
        yield
        return
    import signal
    import threading

    from mlplan.rollout import Controller, Decision

    ctl = Controller(ws, deployment)
    stop = threading.Event()

    def report(decision: Decision) -> None:
        if decision.action or decision.analysed:
            err_console.print(f"mlplan serve: controller: {esc(decision.message)}", highlight=False)

    def drive() -> None:
        try:
            ctl.run(stop, report=report)
        except Exception as error:  # the server goes on; say why no controller drives
            err_console.print(f"[red]mlplan serve: the controller stopped: {esc(error)}[/]")

    def halt() -> None:
        stop.set()
        thread.join(timeout=10)

    # uvicorn stops on SIGTERM, then raises it again to end as the signal meant: stop the
    # controller (its lease given back) before that ends the process.
    before = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: object) -> None:
        halt()
        signal.signal(signum, before)
        signal.raise_signal(signum)

    thread = threading.Thread(target=drive, name="mlplan-controller", daemon=True)
    err_console.print(f"mlplan serve: the rollout controller of {esc(deployment)} runs here")
    thread.start()
    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        halt()
        signal.signal(signal.SIGTERM, before)


@app.command()
def deploy(
    model: Annotated[
        str,
        typer.Argument(
            help="The model to put there, e.g. gbt-1 (its newest package version) or gbt-1@2."
        ),
    ],
    name: Annotated[str, typer.Option(help="The deployment (made on first use).")] = "production",
    by: Annotated[str | None, typer.Option(help="Who deploys (default: this user).")] = None,
    note: Annotated[str | None, typer.Option(help="Why, for the record.")] = None,
    allow_failed_gates: Annotated[
        bool,
        typer.Option(
            "--allow-failed-gates",
            help="Deploy a model that failed its gates without an approval (staging only).",
        ),
    ] = False,
    strategy: Annotated[
        Literal["shadow", "canary", "blue-green", "replace"] | None,
        typer.Option(
            help="How it reaches traffic: a rollout (shadow, canary, blue-green) or replace "
            "(at once). Default: the plan's rollout.strategy, else its scenario's; a "
            "deployment's first model is a replace.",
        ),
    ] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Put a package version in a deployment (production unless named), once an evaluation
    of it passed its gates or an approval overrides the failed one. A shadow, canary or
    blue-green rollout starts pending, the deployment keeping its model until the rollout is
    promoted (mlplan rollout); replace puts it there at once. mlplan serve --deployment NAME
    serves the deployment's model, and evaluation compares candidates with production's."""
    from mlplan.rollout import start_rollout

    ws = workspace(project)
    info, rollout = start_rollout(
        ws,
        model,
        name=name,
        strategy=strategy,
        by=by,
        note=note,
        allow_failed_gates=allow_failed_gates,
    )
    if json:
        print_json({**info.to_dict(), "rollout": rollout.to_dict()})
        return
    if rollout.active:
        chosen = "" if strategy else " (the plan's strategy)"
        # The rollout waits for a controller: say how to run one, or move it by hand.
        console.print(
            f"{esc(info.name)}: {rollout.strategy} rollout{chosen} of {esc(rollout.candidate)} "
            f"started ({rollout.state}); {esc(rollout.stable)} keeps serving until a controller "
            f"moves it: mlplan rollout run {esc(info.name)} (or mlplan serve --deployment "
            f"{esc(info.name)} --controller). Promote it by hand with: mlplan rollout promote "
            f"{esc(info.name)} --by NAME; or swap at once with: mlplan deploy "
            f"{esc(rollout.candidate)} --name {esc(info.name)} --strategy replace (after "
            f"mlplan rollout abort {esc(info.name)} --by NAME)",
            highlight=False,
        )
        return
    was = (
        f" (was {esc(info.previous)})" if info.previous and info.previous != info.model_ref else ""
    )
    console.print(
        f"{esc(info.name)}: {esc(info.model_ref)}{was}, package {info.package_sha256[:12]}, "
        f"{info.mode} on {info.target}; "
        f"serve it with: mlplan serve --deployment {esc(info.name)}",
        highlight=False,
    )


@app.command()
def deployments(project: ProjectOption = None, json: JsonOption = False) -> None:
    """The deployments and the model in each."""
    from mlplan.workspace import list_deployments

    found = list_deployments(workspace(project))
    if json:
        print_json([d.to_dict() for d in found])
        return
    if not found:
        console.print("no deployments yet: mlplan deploy MODEL")
        return
    table = Table("deployment", "model", "mode", "target", "by", "since", "note")
    for d in found:
        table.add_row(
            esc(d.name),
            esc(d.model_ref),
            d.mode,
            d.target,
            esc(d.deployed_by),
            d.updated_at.strftime("%Y-%m-%d %H:%M"),
            esc(d.note or ""),
        )
    console.print(table)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what holds the key.")],
    roles: Annotated[
        list[str],
        typer.Option("--role", help="A role: predict, feedback or admin; repeat for several."),
    ],
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Create an API key. Its token is shown once; the store keeps only its hash."""
    from mlplan.serving import create_key

    key = create_key(workspace(project), name, roles=roles)
    if json:
        print_json(key.to_dict())
        return
    info = key.info
    console.print(f"Key {info.key_id} for {esc(info.name)}, roles {', '.join(info.roles)}")
    console.print(key.token, markup=False, highlight=False, soft_wrap=True)
    console.print("Keep it now: it is not shown again. Send it as: Authorization: Bearer TOKEN")


@keys_app.command("list")
def keys_list(
    all_: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """The project's API keys (never their secrets)."""
    from mlplan.serving import list_keys

    keys = list_keys(workspace(project), include_revoked=all_)
    if json:
        print_json([k.to_dict() for k in keys])
        return
    table = Table("key", "name", "roles", "created", "by", "revoked", title="API keys")
    for k in keys:
        table.add_row(
            k.key_id,
            esc(k.name),
            ", ".join(k.roles),
            k.created_at.strftime("%Y-%m-%d %H:%M"),
            esc(k.created_by),
            "" if k.revoked_at is None else k.revoked_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (mlplan keys list).")],
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Revoke an API key; servers refuse it within seconds."""
    from mlplan.serving import revoke_key

    info = revoke_key(workspace(project), key_id)
    if json:
        print_json(info.to_dict())
        return
    console.print(f"Revoked key {info.key_id} ({esc(info.name)})")


logs_app = typer.Typer(help="The prediction log.", no_args_is_help=True)
app.add_typer(logs_app, name="logs")


@logs_app.command("query")
def logs_query(
    sql: Annotated[str, typer.Argument(help='SQL over the table "predictions" (DuckDB).')],
    model: Annotated[str | None, typer.Option(help="Only this model's log.")] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Query the prediction log with SQL, e.g. "SELECT status, count(*) FROM predictions
    GROUP BY ALL"."""
    from mlplan.serving import log_folder, query_log

    ws = workspace(project)
    result = query_log(log_folder(ws, model), sql)
    rows = result.to_pylist()
    if json:
        print_json(rows)
        return
    table = Table(*result.column_names)
    for row in rows[:200]:
        table.add_row(*(esc("" if v is None else v) for v in row.values()))
    console.print(table)
    if len(rows) > 200:
        console.print(f"… {len(rows) - 200:,} more rows (use --json, or LIMIT)")


@logs_app.command("compact")
def logs_compact(
    model: Annotated[str | None, typer.Option(help="Only this model's log.")] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Turn closed log segments into Parquet and delete those past the plan's retention."""
    from mlplan.serving import compact_logs

    ws = workspace(project)
    done = compact_logs(ws, model)
    if json:
        print_json(done.to_dict())
        return
    console.print(
        f"{done.compacted} segment(s) compacted to Parquet, {done.removed} past "
        f"{ws.plan.deployment.logging.retention_days} days removed"
    )


@app.command()
def score(
    model: Annotated[
        str, typer.Argument(help="The model, e.g. gbt-1 (its newest version) or gbt-1@2.")
    ],
    input_path: Annotated[str, typer.Argument(metavar="INPUT", help="Parquet or CSV to score.")],
    output_path: Annotated[
        str, typer.Argument(metavar="OUTPUT", help="Where predictions go (.parquet or .csv).")
    ],
    engine: Annotated[
        Literal["local", "ray"], typer.Option(help="In this process, or on Ray Data.")
    ] = "local",
    chunk_rows: Annotated[
        int, typer.Option(help="Rows read and scored at a time.", min=1)
    ] = 65_536,
    allow_failed_gates: Annotated[
        bool,
        typer.Option(
            "--allow-failed-gates",
            help="Score a model whose gates failed without an approval (trials only).",
        ),
    ] = False,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Score a file in chunks: predictions with the model version and row ids, and lineage.
    A model that failed its gates needs an approval of the deploy gate, as for serve."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from mlplan.serving import score_file

    ws = workspace(project)
    with Progress(
        TextColumn("scoring"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=json,
    ) as bar:
        task = bar.add_task("score", total=None)
        report = score_file(
            ws,
            model,
            input_path,
            output_path,
            engine=engine,
            chunk_rows=chunk_rows,
            progress=lambda n: bar.advance(task, n),
            allow_failed_gates=allow_failed_gates,
        )
    if json:
        print_json(report.to_dict())
        return
    console.print(
        f"Scored {report.rows:,} rows of {esc(report.input)} with {esc(report.model)} "
        f"({report.version}) into {esc(report.output)} in {report.seconds:.2f} s "
        f"({report.rows_per_second:,.0f} rows/s)"
        + (f"; {report.refused:,} refused (see the error column)" if report.refused else "")
    )


@app.command()
def loadtest(
    model: Annotated[str, typer.Argument(help="The model, e.g. gbt-1.")],
    concurrency: Annotated[int, typer.Option(help="Concurrent clients.", min=1)] = 8,
    seconds: Annotated[float, typer.Option(help="How long to send requests.")] = 10.0,
    rows_per_request: Annotated[
        int, typer.Option("--rows", help="Records per request.", min=1)
    ] = 1,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Serve the model in a real process, load it from real clients, and measure QPS,
    latency and memory against the plan's objectives."""
    from mlplan.serving import load_test

    report = load_test(
        workspace(project),
        model,
        concurrency=concurrency,
        seconds=seconds,
        rows_per_request=rows_per_request,
    )
    if json:
        print_json(report.to_dict())
        return
    console.print(
        f"{esc(model)}: {report.requests:,} requests from {concurrency} clients in "
        f"{report.seconds:.1f} s — {report.qps:,.0f} QPS, p50 "
        f"{report.latency_p50_ms:.2f} ms, p99 {report.latency_p99_ms:.2f} ms, "
        f"{report.memory_mb:.0f} MB; answers {report.statuses}"
    )
    table = Table("objective", "goal", "measured", "met", title="Against the plan")
    for check in report.checks:
        table.add_row(
            check.objective,
            f"{check.goal:g}",
            f"{check.measured:.4g}",
            "[green]yes[/]" if check.met else "[red]no[/]",
        )
    if report.checks:
        console.print(table)
    else:
        console.print("The plan sets no latency, QPS or memory objective to check.")


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="The model, e.g. gbt-1.")],
    target: Annotated[
        Literal["edge", "browser"], typer.Option(help="edge: an int8-quantized ONNX model.")
    ] = "edge",
    out: Annotated[str | None, typer.Option(help="Folder (default: exports/MODEL-TARGET).")] = None,
    project: ProjectOption = None,
    json: JsonOption = False,
) -> None:
    """Build the model for the edge (int8), measured against the original on the test split."""
    from mlplan.serving import export_model

    report = export_model(workspace(project), model, target=target, out=out)
    if json:
        print_json(report.to_dict())
        return
    state = "[green]passes[/]" if report.passed else "[red]fails[/]"
    console.print(f"{esc(report.summary)}; {state} (written to {esc(report.folder)})")
