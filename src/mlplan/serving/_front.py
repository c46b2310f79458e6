"""The ASGI app uvicorn calls, in front of FastAPI: the body limit by Content-Length, the
guards against browsers, the caller's key read from the raw headers, request counts and
latency; and the routes without path parameters dispatched at once by method and path,
before FastAPI's stack. Plain ASGI: no middleware, no per-request task.

The guards keep a web page from driving the server through its visitor's browser:

- a server bound to loopback answers only requests addressed to this machine (``Host:``
  ``localhost``, ``127.x.x.x`` or ``[::1]``, any port): a page on another site that rebinds
  its DNS name to 127.0.0.1 gets 421 Misdirected Request;
- a server without keys (``auth: none``, loopback only) refuses a request whose ``Origin`` is
  a page of another machine (403): browsers send it, programs do not;
- every POST must say its body is JSON (``Content-Type: application/json``; 415 otherwise):
  a page can send ``text/plain`` or a form to another site without asking, but not JSON. The
  Open Inference route also takes no Content-Type (Triton's client sends none; a browser that
  omits it still sends its Origin) and the binary tensor extension
  (``application/octet-stream`` with ``Inference-Header-Content-Length``).
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from mlplan.serving._config import is_loopback
from mlplan.serving._metrics import Refusal, ServerMetrics
from mlplan.serving._responses import error, internal_error
from mlplan.serving._state import ServerState

__all__ = ["TOKEN", "Endpoint", "Front"]

Endpoint = Callable[[Request], Awaitable[Response]]

TOKEN = "mlplan.token"
"""The scope key of the caller's token (None without one)."""

_FAMILIES = {200: "2xx", 202: "2xx", 401: "4xx", 403: "4xx", 422: "4xx", 503: "5xx"}


def _names_loopback(authority: bytes) -> bool:
    """Whether a Host header's value (or an Origin's host and port) names this machine:
    ``localhost``, an IPv4 loopback address or ``[::1]``, with or without a port."""
    text = authority.decode("latin-1").lower()
    host = text[1 : text.find("]")] if text.startswith("[") else text.partition(":")[0]
    return is_loopback(host)


def _json_media_type(value: bytes) -> bool:
    """Whether a Content-Type is JSON (``application/json``, parameters allowed)."""
    return value.partition(b";")[0].strip().lower() == b"application/json"


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
    server
        The server's state: its address (on loopback, the Host is checked) and its auth rule
        (without keys, the Origin is checked).
    """

    def __init__(
        self,
        app: FastAPI,
        *,
        metrics: ServerMetrics,
        answers: dict[str, int],
        max_body_bytes: int,
        server: ServerState,
    ) -> None:
        self.app = app
        self.state = app.state
        self.routes = app.routes
        self._limit = max_body_bytes
        self._answers = answers
        self._server = server
        self._loopback = is_loopback(server.config.host)
        self._metrics = metrics
        self._child = metrics.child
        self._requests = metrics.requests
        self._latency = metrics.latency
        self._local: dict[bytes, bool] = {}  # Host and Origin values seen: this machine?
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
        bearer = api_key = host = origin = content_type = binary = None
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self._limit:
                message = f"the body is larger than {self._limit:,} bytes"
                await self._refuse(scope, receive, send, start, "too_large", 413, message)
                return
            if key == b"authorization":
                bearer = value if bearer is None else bearer  # the first, as Starlette reads
            elif key == b"x-api-key":
                api_key = value if api_key is None else api_key
            elif key == b"host":  # a second Host or Origin names no one machine: refused
                host = value if host is None else b""
            elif key == b"content-type":
                content_type = value
            elif key == b"origin":
                origin = value if origin is None else b"null"
            elif key == b"inference-header-content-length":
                binary = value
        refused = self._guard(scope, host, origin, content_type, binary)
        if refused is not None:
            await self._refuse(scope, receive, send, start, *refused)
            return
        scope[TOKEN] = _token(bearer, api_key)
        found = self._exact.get((scope["method"], scope["path"]))
        if found is not None:
            endpoint, route = found
            try:
                try:
                    response = await endpoint(Request(scope, receive))
                except Exception:  # a bug: answered in the route's shape, the traceback printed
                    traceback.print_exc(file=sys.stdout)
                    sys.stdout.flush()
                    response = internal_error()
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

    def _local_name(self, authority: bytes) -> bool:
        """:func:`_names_loopback`, remembered for the few values a server sees."""
        local = self._local.get(authority)
        if local is None:
            local = _names_loopback(authority)
            if len(self._local) < 64:  # a client sending ever new names cannot grow it
                self._local[authority] = local
        return local

    def _guard(
        self,
        scope: Any,
        host: bytes | None,
        origin: bytes | None,
        content_type: bytes | None,
        binary: bytes | None,
    ) -> tuple[Refusal, int, str, dict[str, str] | None] | None:
        """None when a request may go on; else why not: the reason, status, message and
        headers of its refusal (see the module's docstring)."""
        if self._loopback and host is not None and not self._local_name(host):
            # 421: this server is not the one the request was meant for (403 would send a key
            # holder looking for a problem with the key).
            return (
                "bad_host",
                421,
                "this server listens on loopback and answers only requests for localhost, "
                "127.0.0.1 or [::1]; this one names another host (a web page's DNS name "
                "pointed here?). Call it by one of those names",
                None,
            )
        if origin is not None and self._server.auth == "none":
            _, sep, authority = origin.partition(b"://")
            if not sep or not self._local_name(authority):
                return (
                    "foreign_origin",
                    403,
                    "this server has no keys (auth: none), so a web page of another site may "
                    "not call it: browsers send such requests on their visitor's behalf. Call "
                    "it from a program or a page on localhost, or create keys (mlplan keys "
                    "create) and set auth: api_key",
                    None,
                )
        if scope["method"] == "POST" and not (
            content_type is not None and _json_media_type(content_type)
        ):
            if scope["path"].startswith("/v2/") and (
                content_type is None
                or (binary is not None and content_type.lower() == b"application/octet-stream")
            ):
                return None
            return (
                "unsupported_media_type",
                415,
                "send the body as JSON, with Content-Type: application/json",
                {"Accept": "application/json"},
            )
        return None

    async def _refuse(
        self,
        scope: Any,
        receive: Any,
        send: Any,
        start: float,
        reason: Refusal,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer a request refused before routing, and count it."""
        response: Response = error(status, message, headers)
        await response(scope, receive, send)
        self._metrics.refused(reason)
        self.count("other", status, start)

    def count(self, route: str, status: int, start: float) -> None:
        """One answer: its count by route and status, its family, its latency."""
        child = self._child
        child(self._requests, route, status).inc()
        family = _FAMILIES.get(status) or f"{status // 100}xx"
        answers = self._answers
        answers[family] = answers.get(family, 0) + 1
        child(self._latency, route).observe(time.perf_counter() - start)
