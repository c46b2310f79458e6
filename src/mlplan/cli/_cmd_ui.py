"""``mlplan ui``: the dashboard."""

from __future__ import annotations

from typing import Annotated

import typer

from mlplan.cli._app import ProjectOption, app, workspace
from mlplan.cli._render import err_console, esc


@app.command()
def ui(
    host: Annotated[
        str,
        typer.Option(help="Address to listen on; beyond loopback only once API keys exist."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    project: ProjectOption = None,
) -> None:
    """Serve the dashboard: the checklist, the datasets, the models' comparison, the
    deployments with their rollouts and the monitoring, as web pages over what the other
    commands print (read-only but for the rollout moves, which need an admin API key typed in
    with each)."""
    from mlplan.ui import check_ui_host, serve_ui

    ws = workspace(project)
    check_ui_host(ws, host, port)
    shown = f"[{host}]" if ":" in host else host
    err_console.print(
        f"mlplan ui: {esc(ws.plan.project.name)} on http://{esc(shown)}:{port}/ (read-only "
        "but for rollout moves with an admin key; Ctrl+C stops it)",
        highlight=False,
    )
    serve_ui(ws.root, host=host, port=port)
