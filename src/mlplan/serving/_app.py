"""The realtime server: an ASGI app (FastAPI) over one model package, wired from its parts.

- :class:`~mlplan.serving._front.Front` (``_front.py``), the ASGI app uvicorn calls: the body
  limit, the caller's key, request metrics, and the routes without path parameters;
- :class:`~mlplan.serving._routes.Routes` (``_routes.py``), one method per route, each behind
  the role that ``ROUTE_ROLES`` declares;
- :class:`~mlplan.serving._lifespan.Lifespan` (``_lifespan.py``), start-up and shut-down;
- :class:`~mlplan.serving._metrics.ServerMetrics` (``_metrics.py``), the Prometheus metrics;
- :class:`~mlplan.serving._state.ServerState` (``_state.py``), what they share.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from mlplan.serving._batcher import Deadlines
from mlplan.serving._config import ServeConfig
from mlplan.serving._extra import ExtraRoute
from mlplan.serving._front import Front
from mlplan.serving._lifespan import Lifespan
from mlplan.serving._metrics import ServerMetrics
from mlplan.serving._responses import error, internal_error, is_open_inference
from mlplan.serving._routes import Routes, register_routes
from mlplan.serving._state import ServerState

__all__ = ["create_app", "create_app_from_env"]


def create_app(config: ServeConfig, routes: Iterable[ExtraRoute] = ()) -> Front:
    """The ASGI app serving ``config.model``, and the ``routes`` another package adds (each
    behind its role); the model loads at startup."""
    state = ServerState(config)
    metrics = ServerMetrics()
    log_deadlines = Deadlines(config.request_timeout_seconds)
    app = FastAPI(
        title="mlplan",
        lifespan=Lifespan(state, metrics, log_deadlines),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        exception_handlers={HTTPException: _no_route, Exception: _internal_error},
    )
    app.state.mlplan = state
    front = Front(
        app,
        metrics=metrics,
        answers=state.answers,
        max_body_bytes=config.max_body_bytes,
        server=state,
    )
    register_routes(front, Routes(state, metrics, log_deadlines), tuple(routes))
    return front


_UNSUPPORTED = (
    "no such route: this server answers the Open Inference Protocol's health, metadata, "
    "model configuration and inference routes for the one model it serves; the model "
    "repository, statistics, shared-memory, trace and logging extensions are not supported "
    "(GET /v2 lists the extensions supported)"
)


async def _no_route(request: Request, exc: Exception) -> Response:
    """A route that does not exist (404) or a method it does not take (405), in the error
    shape of the path's protocol (the path itself is never echoed)."""
    assert isinstance(exc, HTTPException)
    detail: str = exc.detail
    if exc.status_code == 404 and is_open_inference(request.url.path):
        detail = _UNSUPPORTED
    return error(exc.status_code, detail, dict(exc.headers) if exc.headers else None)


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A bug: 500 in the path's error shape (``{"error"}`` under ``/v2``, so that an Open
    Inference client can read it), never the exception's text."""
    return internal_error()  # Starlette raises it again after: uvicorn prints the traceback


def create_app_from_env() -> Front:
    """The app for ``uvicorn --factory`` in worker processes (config in the environment),
    without extra routes (``serve(app_factory=...)`` names a factory that adds some)."""
    return create_app(ServeConfig.from_env())
