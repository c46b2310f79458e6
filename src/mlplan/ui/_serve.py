"""``mlplan ui``: the dashboard under uvicorn, on loopback unless API keys exist."""

from __future__ import annotations

from pathlib import Path

from mlplan._optional import require
from mlplan.errors import ParameterError
from mlplan.serving import is_loopback, list_keys
from mlplan.ui._app import UiConfig, create_app
from mlplan.workspace import Workspace

__all__ = ["check_ui_host", "serve_ui"]


def check_ui_host(ws: Workspace, host: str, port: int) -> None:
    """Refuse what ``serve_ui`` must not do: a port out of range, or a host beyond loopback
    while the project has no API key (as ``mlplan serve`` refuses one without auth).

    Raises
    ------
    ParameterError
        The port or the host, with what to do.

    Examples
    --------
    >>> import tempfile
    >>> from mlplan.workspace import Workspace
    >>> check_ui_host(Workspace(tempfile.mkdtemp()), "127.0.0.1", 0)
    Traceback (most recent call last):
    ...
    mlplan.errors.ParameterError: 'port' must be from 1 to 65535; got 0
    """
    if not 0 < port < 65536:
        raise ParameterError("port", f"{{param}} must be from 1 to 65535; got {port}")
    if not is_loopback(host) and not list_keys(ws):
        raise ParameterError(
            "host",
            "the dashboard listens beyond this machine only once the project has API keys; "
            f"got {{param}} {host}. Use 127.0.0.1, or create a key first: mlplan keys create "
            "--name NAME --role admin",
        )


def serve_ui(
    root: str | Path,
    *,
    store_url: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Serve the dashboard of the project in ``root`` (its store at ``store_url``, else where
    the project's own settings say) on ``host:port`` until stopped.

    Raises
    ------
    ParameterError
        A port out of range, or a non-loopback host with no API key.
    MissingExtraError
        The ``ui`` extra is not installed.
    """
    ws = Workspace(root, store_url=store_url)
    try:
        check_ui_host(ws, host, port)
    finally:
        ws.close()
    uvicorn = require("uvicorn", extra="ui", purpose="mlplan ui")
    app = create_app(UiConfig(Path(root).resolve(), store_url, host))
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
