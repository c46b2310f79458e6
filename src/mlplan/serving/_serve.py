"""``mlplan serve``: the app under uvicorn, in this process or in worker processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplan._optional import require
from mlplan.errors import ParameterError, UsageError
from mlplan.modeling import get_model
from mlplan.serving._clearance import check_clearance
from mlplan.serving._config import CONFIG_ENV, MULTIPROC_ENV, ServeConfig, is_loopback
from mlplan.serving._extra import ExtraRoute
from mlplan.serving._keys import list_keys
from mlplan.serving._log import LOG_DIR, compact_segments
from mlplan.workspace import Workspace, get_deployment

__all__ = [
    "CompactionReport",
    "compact_logs",
    "create_app",
    "log_folder",
    "serve",
    "serve_warnings",
    "served_model",
]


def log_folder(ws: Workspace, model: str | None = None) -> Path:
    """Where the prediction log of ``model`` (or of every model) lives."""
    root = ws.root / ".mlplan" / LOG_DIR
    return root if model is None else root / model


@dataclass(frozen=True)
class CompactionReport:
    """What compacting the prediction log did."""

    compacted: int
    """Closed JSONL segments turned into Parquet."""
    removed: int
    """Parquet segments deleted: past the plan's retention."""

    def to_dict(self) -> dict[str, int]:
        """A JSON-ready view."""
        return {"compacted": self.compacted, "removed": self.removed}


def compact_logs(ws: Workspace, model: str | None = None) -> CompactionReport:
    """Compact closed segments and apply the plan's retention, for one model or all."""
    root = log_folder(ws, model)
    folders = [root] if model is not None else sorted(p for p in root.glob("*") if p.is_dir())
    compacted = removed = 0
    for folder in folders:
        if folder.is_dir():
            done = compact_segments(
                folder, retention_days=ws.plan.deployment.logging.retention_days
            )
            compacted += done["compacted"]
            removed += done["removed"]
    return CompactionReport(compacted=compacted, removed=removed)


PLAIN_APP = "mlplan.serving._app:create_app_from_env"
"""The app factory of a server without extra routes (``uvicorn --factory`` imports it)."""


def create_app(config: ServeConfig, routes: Iterable[ExtraRoute] = ()) -> Any:
    """The ASGI app serving ``config.model`` (FastAPI), and the ``routes`` another package
    adds, each behind its role; the model loads at startup."""
    require("fastapi", extra="serving", purpose="mlplan serve")
    from mlplan.serving._app import create_app as make

    return make(config, routes)


def served_model(ws: Workspace, model: str | None, deployment: str | None) -> str:
    """The model to serve: ``model``, or the exact package version in ``deployment``
    (``name@version``; a model given must be that one, or name it).

    Raises
    ------
    ParameterError
        Neither given.
    UsageError
        A model other than the deployment's.
    DeploymentNotFoundError
        No such deployment.
    """
    if deployment is not None:
        found = get_deployment(ws, deployment)
        there = found.model_ref
        if model is not None and model not in (there, found.model):
            raise UsageError(
                f"deployment {deployment!r} holds {there}, not {model}; give the model or the "
                f"deployment (mlplan deploy {model} --name {deployment} puts it there)"
            )
        return there
    if model is None:
        raise ParameterError("deployment", "give a model to serve, or {param} NAME")
    return model


def serve_warnings(ws: Workspace) -> list[str]:
    """What a server about to start should say first: a plan that refuses every caller."""
    if ws.plan.deployment.security.auth == "api_key" and not any(
        k.allows("predict") for k in list_keys(ws)
    ):
        return [
            "no API key may predict yet, so every prediction will be refused (401); create "
            "one: mlplan keys create --name NAME --role predict"
        ]
    return []


def serve(
    ws: Workspace,
    model: str | None,
    *,
    deployment: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    max_batch_rows: int = 512,
    max_queue_rows: int = 8192,
    timeout: float = 10.0,
    allow_failed_gates: bool = False,
    app_factory: str = PLAIN_APP,
    health_every: float = 0.0,
) -> None:
    """Serve ``model`` on ``host:port`` until stopped (SIGINT or SIGTERM drain in-flight
    requests first). Each worker writes a ``health`` record into its log every
    ``health_every`` seconds (0: never), for monitoring.

    Each worker process makes its app by calling ``app_factory`` (``module:function``, no
    arguments; it reads the configuration with ``ServeConfig.from_env()``): the plain
    server's by default; a package above serving names its own to add routes (``mlplan
    serve`` names ``mlplan.rollout:create_app_from_env``, which adds the rollout routes).

    Raises
    ------
    ParameterError
        A bad port, timeout, worker count or health interval, or a non-loopback host with
        no auth.
    UsageError
        A metrics folder holding an earlier run's metrics.
    """
    model = served_model(ws, model, deployment)
    if not 0 < port < 65536:
        raise ParameterError("port", f"{{param}} must be from 1 to 65535; got {port}")
    if timeout <= 0:
        raise ParameterError("timeout", f"{{param}} must be positive; got {timeout}")
    if workers < 1:
        raise ParameterError("workers", f"{{param}} must be 1 or more; got {workers}")
    if health_every < 0:
        raise ParameterError("health_every", f"{{param}} must not be negative; got {health_every}")
    if ws.plan.deployment.security.auth == "none" and not is_loopback(host):
        raise ParameterError(
            "host",
            f"deployment.security.auth is 'none', which is allowed only on loopback; got {{param}} "
            f"{host}. Create keys (mlplan keys create) and set auth: api_key",
        )
    get_model(ws, model)  # a name that does not exist fails here, listing the known ones
    check_clearance(ws, model, allow_failed_gates=allow_failed_gates, use="serve")
    uvicorn = require("uvicorn", extra="serving", purpose="mlplan serve")
    config = ServeConfig(
        root=str(Path(ws.root).resolve()),
        model=model,
        host=host,
        store_url=os.environ.get("MLPLAN_STORE_URL"),
        max_batch_rows=max_batch_rows,
        max_queue_rows=max_queue_rows,
        request_timeout_seconds=timeout,
        freeze_gc=True,
        deployment=deployment,
        health_seconds=health_every,
    )
    os.environ[CONFIG_ENV] = config.to_json()
    with _shared_metrics(workers):
        _run_uvicorn(uvicorn, app_factory, host, port, workers)


@contextlib.contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """Several workers share one view of the metrics through files (prometheus_client's
    multiprocess mode), in a folder of this server's own unless one is given."""
    given = os.environ.get(MULTIPROC_ENV)
    if given and any(Path(given).glob("*.db")):
        raise UsageError(
            f"${MULTIPROC_ENV} ({given}) holds the metrics of an earlier run, which would be "
            "added to this one's: empty the folder, or unset the variable and mlplan keeps "
            "its own for each server"
        )
    if workers <= 1 or given:
        yield
        return
    metrics_dir = tempfile.mkdtemp(prefix="mlplan-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_uvicorn(uvicorn: Any, app_factory: str, host: str, port: int, workers: int) -> None:
    uvicorn.run(
        app_factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=30,
        proxy_headers=False,  # X-Forwarded-* are not trusted; and it costs on every request
        http=_http_protocol(),
    )


def _http_protocol() -> Any:
    """uvicorn's httptools protocol with the request's headers bounded (``_http.py``), where
    httptools is installed; else uvicorn's h11 protocol, which bounds them itself."""
    try:
        from mlplan.serving._http import BoundedHttpToolsProtocol
    except ImportError:  # no httptools
        return "h11"
    return BoundedHttpToolsProtocol
