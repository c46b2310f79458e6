"""The ASGI app uvicorn calls, in front of FastAPI: the body limit by Content-Length, the
caller's key read from the raw headers, request counts and latency; and the routes without
path parameters dispatched at once by method and path, before FastAPI's stack. Plain ASGI:
no middleware, no per-request task."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from mlplan.serving._metrics import ServerMetrics
from mlplan.serving._responses import error

__all__ = ["TOKEN", "Endpoint", "Front"]

Endpoint = Callable[[Request], Awaitable[Response]]

TOKEN = "mlplan.token"
"""The scope key of the caller's token (None without one)."""

_FAMILIES = {200: "2xx", 202: "2xx", 401: "4xx", 403: "4xx", 422: "4xx", 503: "5xx"}


def _token(bearer: bytes | None, api_key: bytes | None) -> str | None:
    """The caller's token: from ``Authorization: Bearer …``, else from ``X-API-Key``
    (headers decoded as latin-1, as HTTP's are)."""
    if bearer is not None:
        text = bearer.decode("latin-1")
        if text[:7].lower() == "bearer ":
            return text[7:].strip()
    return None if api_key is None else api_key.decode("latin-1")


class Front:
    """The ASGI app of one server: FastAPI (``app``) behind the body limit, the key
    extraction and the request metrics.

    Parameters
    ----------
    app
        The FastAPI app: the lifespan, and the routes with path parameters.
    metrics
        Where requests are counted and timed, by route template and status.
    answers
        Answers by status family (``2xx`` ...), for the serve run's record.
    max_body_bytes
        Larger bodies (by Content-Length) get 413 before anything reads them.
    """

    def __init__(
        self,
        app: FastAPI,
        *,
        metrics: ServerMetrics,
        answers: dict[str, int],
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.state = app.state
        self.routes = app.routes
        self._limit = max_body_bytes
        self._answers = answers
        self._child = metrics.child
        self._requests = metrics.requests
        self._latency = metrics.latency
        self._templates: dict[Any, str] = {}  # endpoint -> its route's path, for bounded labels
        self._exact: dict[tuple[str, str], tuple[Endpoint, str]] = {}  # found at once

    def add_route(self, method: str, path: str, endpoint: Endpoint) -> None:
        """Serve ``endpoint`` at ``method path`` (a plain Starlette endpoint: no dependency
        injection on the hot path); without path parameters, it is dispatched here."""
        self._templates[endpoint] = path
        self.app.add_route(path, endpoint, methods=[method], include_in_schema=False)
        if "{" not in path:
            self._exact[(method, path)] = (endpoint, path)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        bearer = api_key = None
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self._limit:
                response: Response = error(413, f"the body is larger than {self._limit:,} bytes")
                await response(scope, receive, send)
                self.count("other", 413, start)
                return
            if key == b"authorization":
                bearer = value if bearer is None else bearer  # the first, as Starlette reads
            elif key == b"x-api-key":
                api_key = value if api_key is None else api_key
        scope[TOKEN] = _token(bearer, api_key)
        found = self._exact.get((scope["method"], scope["path"]))
        if found is not None:
            endpoint, route = found
            try:
                response = await endpoint(Request(scope, receive))
                status = response.status_code
                await response(scope, receive, send)
            finally:
                self.count(route, status, start)
            return

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.count(self._templates.get(scope.get("endpoint"), "other"), status, start)

    def count(self, route: str, status: int, start: float) -> None:
        """One answer: its count by route and status, its family, its latency."""
        child = self._child
        child(self._requests, route, status).inc()
        family = _FAMILIES.get(status) or f"{status // 100}xx"
        answers = self._answers
        answers[family] = answers.get(family, 0) + 1
        child(self._latency, route).observe(time.perf_counter() - start)
