"""The dashboard's ASGI app (Starlette): one GET route per page, rendered on the server from
Jinja2 templates, and the static files. Read-only but for the rollout actions: POST to
``/deployments/NAME/ACTION`` (promote, pause, resume, abort, rollback) with an admin API key
in the request itself (``_actions``); any other POST, and any other method, is refused.

Each request opens the project afresh (plan and store, as a CLI command does), so a page
shows what ``mlplan status`` would show at that moment, never a copy kept by the server.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from mlplan._optional import require
from mlplan.errors import MlplanError, NotFoundError, RefError
from mlplan.rollout import MOVES
from mlplan.serving import is_loopback
from mlplan.ui._actions import MAX_FORM_BYTES, ActionOutcome, read_form, rollout_action
from mlplan.ui._assets import HTMX, LIBRARIES, load_library
from mlplan.ui._format import key_metrics, number, span, when
from mlplan.ui._views import (
    STATE_LABELS,
    data_view,
    dataset_view,
    deployments_view,
    models_view,
    monitoring_view,
    project_view,
)
from mlplan.workspace import Workspace

__all__ = ["PAGES", "UiConfig", "create_app"]

log = logging.getLogger("mlplan.ui")

PAGES: tuple[tuple[str, str], ...] = (
    ("/", "Project"),
    ("/data", "Data"),
    ("/models", "Models"),
    ("/deployments", "Deployments"),
    ("/monitoring", "Monitoring"),
)
"""The pages in the nav bar: path and title."""

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""Every page loads only its own server's files: nothing from the internet, no inline code."""

_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "[::1]", "::1"}

_ACTION_PATH = re.compile(rf"/deployments/[^/]+/(?:{'|'.join(MOVES)})")
"""The only addresses that take a POST: a rollout action of a deployment."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class UiConfig:
    """Which project the dashboard shows (its folder and store) and where it listens."""

    root: Path
    store_url: str | None = None
    host: str = "127.0.0.1"


def create_app(config: UiConfig) -> Any:
    """The dashboard's ASGI app for the project at ``config.root``.

    Raises
    ------
    MissingExtraError
        Starlette or Jinja2 is not installed (the ``ui`` extra).
    """
    require("starlette", extra="ui", purpose="mlplan ui")
    require("jinja2", extra="ui", purpose="mlplan ui")
    from starlette.applications import Starlette
    from starlette.routing import Route

    pages = _Pages(config)
    app = Starlette(
        routes=[
            Route("/", pages.project, methods=["GET"]),
            Route("/data", pages.data, methods=["GET"]),
            Route("/data/{ref}", pages.dataset, methods=["GET"]),
            Route("/models", pages.models, methods=["GET"]),
            Route("/deployments", pages.deployments, methods=["GET"]),
            Route("/deployments/{name}/{action}", pages.act, methods=["POST"]),
            Route("/monitoring", pages.monitoring, methods=["GET"]),
            Route("/static/{name}", pages.static_file, methods=["GET"]),
        ],
        exception_handlers={404: pages.not_found, MlplanError: pages.failed},
    )
    return _Guard(app, loopback=is_loopback(config.host))


class _Pages:
    """The routes: each opens the project, asks ``_views`` for what its page shows, and
    renders its template; the static files, read once."""

    def __init__(self, config: UiConfig) -> None:
        import jinja2

        self._config = config
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("mlplan.ui", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        vendored = {lib.served_as: load_library(lib) for lib in LIBRARIES}
        self._env.globals.update(
            pages=PAGES,
            state_labels=STATE_LABELS,
            number=number,
            span=span,
            when=when,
            key_metrics=key_metrics,
            htmx=vendored.get(HTMX.served_as) is not None,
        )
        css = files("mlplan.ui").joinpath("static", "ui.css").read_bytes()
        self._static = {
            "ui.css": (css, "text/css"),
            **{name: (body, "text/javascript") for name, body in vendored.items() if body},
        }

    def project(self, request: Any) -> Any:
        with self._opened() as ws:
            view = project_view(ws, alerts_page=_page_number(request, "alerts"))
        return self._render(request, "project.html", view=view, title="Project")

    def data(self, request: Any) -> Any:
        with self._opened() as ws:
            view = data_view(ws, page=_page_number(request, "page"))
        return self._render(request, "data.html", view=view, title="Data")

    def dataset(self, request: Any) -> Any:
        """One dataset version's datasheet, profile and splits; 404 with the message of the
        library (naming the datasets or versions there are) for one that does not exist."""
        ref = request.path_params["ref"]
        try:
            with self._opened() as ws:
                view = dataset_view(ws, ref, page=_page_number(request, "page"))
        except (NotFoundError, RefError) as error:
            return self._render(
                request, "error.html", 404, title="Not found", message=str(error), path="/data"
            )
        return self._render(
            request, "dataset.html", view=view, title=f"Data: {view.info.ref}", path="/data"
        )

    def models(self, request: Any) -> Any:
        with self._opened() as ws:
            view = models_view(ws, page=_page_number(request, "page"))
        return self._render(request, "models.html", view=view, title="Models")

    def deployments(self, request: Any) -> Any:
        return self._deployments_page(request)

    async def act(self, request: Any) -> Any:
        """A rollout action (``POST /deployments/NAME/ACTION``): made as the key in the request
        allows (``rollout_action``), then the Deployments page with what it came to, under the
        outcome's status (401 without a valid key, 403 without the role: nothing changed)."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import PlainTextResponse

        too_large = PlainTextResponse(
            f"an action's form is at most {MAX_FORM_BYTES:,} bytes", status_code=413
        )
        declared = request.headers.get("content-length", "0")
        if not declared.isdecimal() or int(declared) > MAX_FORM_BYTES:
            return too_large
        body = b""
        async for chunk in request.stream():  # a chunked body gives no length: count it
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return too_large
        token, note = read_form(body, request.headers.get("authorization"))
        name, action = request.path_params["name"], request.path_params["action"]

        def acted() -> Any:
            with self._opened() as ws:
                outcome = rollout_action(ws, name, action, token=token, note=note)
            return self._deployments_page(request, outcome)

        return await run_in_threadpool(acted)

    def _deployments_page(self, request: Any, outcome: ActionOutcome | None = None) -> Any:
        pages = {
            k: int(v)
            for k, v in request.query_params.items()
            if k.startswith("events-") and v.isdecimal()
        }
        with self._opened() as ws:
            view = deployments_view(ws, pages=pages)
        status = 200 if outcome is None else outcome.status
        return self._render(
            request,
            "deployments.html",
            status,
            view=view,
            outcome=outcome,
            title="Deployments",
            path="/deployments",
        )

    def monitoring(self, request: Any) -> Any:
        with self._opened() as ws:
            view = monitoring_view(ws)
        return self._render(request, "monitoring.html", view=view, title="Monitoring")

    def static_file(self, request: Any) -> Any:
        from starlette.responses import Response

        found = self._static.get(request.path_params["name"])
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        body, media_type = found
        return Response(body, media_type=media_type, headers={"Cache-Control": "max-age=3600"})

    async def not_found(self, request: Any, exc: Exception) -> Any:
        message = f"There is no page at {request.url.path}."
        return self._render(request, "error.html", 404, title="Not found", message=message)

    async def failed(self, request: Any, exc: Exception) -> Any:
        # An error the library means (a store that cannot be opened, a broken plan): its
        # message says what to do, on the page instead of a traceback.
        title = "Cannot show this page"
        return self._render(request, "error.html", 500, title=title, message=str(exc))

    def _render(self, request: Any, template: str, status: int = 200, **values: Any) -> Any:
        from starlette.responses import HTMLResponse

        values.setdefault("path", request.url.path)
        body = self._env.get_template(template).render(**values)
        return HTMLResponse(body, status_code=status)

    @contextlib.contextmanager
    def _opened(self) -> Iterator[Workspace]:
        """The project as a command opens it: plan and store read afresh."""
        ws = Workspace(self._config.root, store_url=self._config.store_url)
        try:
            yield ws
        finally:
            ws.close()


def _page_number(request: Any, name: str) -> int:
    """The page a query parameter asks for (1 when absent or not a number)."""
    text = request.query_params.get(name, "1")
    return int(text) if text.isdecimal() else 1


class _Guard:
    """Before the app: only GET and HEAD, and POST to a rollout action's address (the
    dashboard reads, but for those, which need a key of their own); on loopback, only a
    Host naming loopback, so that a web page elsewhere cannot read it through a DNS name
    pointed at 127.0.0.1; and the headers that keep every page to its own files, with the
    server's time to the answer's start (``Server-Timing: app;dur=MS``, read by
    ``benchmarks/bench_ui.py``)."""

    def __init__(self, app: Any, *, loopback: bool) -> None:
        self._app = app
        self._loopback = loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        action = scope["method"] == "POST" and _ACTION_PATH.fullmatch(scope["path"])
        if scope["method"] not in ("GET", "HEAD") and not action:
            await _plain(
                send,
                405,
                "mlplan ui is read-only: only GET and HEAD, and POST to a rollout action "
                f"(/deployments/NAME/ACTION, ACTION one of {', '.join(MOVES)})",
                allow=True,
            )
            return
        if self._loopback and _host_name(scope) not in _LOOPBACK_NAMES:
            await _plain(send, 421, "mlplan ui on loopback answers only to localhost or 127.0.0.1")
            return

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"content-security-policy", _CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"server-timing", _server_timing(started)),
                ]
            await send(message)

        await self._app(scope, receive, with_headers)


def _server_timing(started: float) -> bytes:
    """The ``Server-Timing`` value of a request that started at ``started``: the time until
    its answer starts, the page rendered (its body is whole before its headers go)."""
    return f"app;dur={(time.perf_counter() - started) * 1000:.1f}".encode()


def _host_name(scope: Scope) -> str:
    """The Host header's name, without its port."""
    for name, value in scope.get("headers", []):
        if name == b"host":
            host = str(value.decode("latin-1")).strip().lower()
            if host.startswith("["):
                return host.split("]", 1)[0] + "]"
            return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return ""


async def _plain(send: Send, status: int, text: str, *, allow: bool = False) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    if allow:
        headers.append((b"allow", b"GET, HEAD"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text.encode()})
