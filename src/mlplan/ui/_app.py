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
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from mlplan._optional import require
from mlplan.errors import MlplanError, NotFoundError, RefError
from mlplan.monitoring import WHOLE
from mlplan.rollout import MOVES
from mlplan.serving import is_loopback
from mlplan.store import Store
from mlplan.ui._actions import MAX_FORM_BYTES, ActionOutcome, read_form, rollout_action
from mlplan.ui._assets import ELK, HTMX, LIBRARIES, UPLOT, UPLOT_CSS, load_library
from mlplan.ui._charts import parse_before
from mlplan.ui._data_diff import data_diff_view
from mlplan.ui._evaluation import (
    CHECK_LABELS,
    DOCUMENT_CSP,
    DOCUMENTS,
    evaluation_document,
    evaluations_view,
    model_evaluation_view,
)
from mlplan.ui._format import key_metrics, number, span, when
from mlplan.ui._labels import LABELS_PAGES, labels_view
from mlplan.ui._lineage import (
    KIND_LABELS,
    MAX_RUNS,
    MAX_THINGS,
    lineage_href,
    lineage_view,
    start_view,
)
from mlplan.ui._models import model_view, quantity
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
    ("/labels", "Labels"),
    ("/models", "Models"),
    ("/evaluation", "Evaluation"),
    ("/deployments", "Deployments"),
    ("/monitoring", "Monitoring"),
    ("/lineage", "Lineage"),
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
            Route("/data/{ref}/diff", pages.dataset_diff, methods=["GET"]),
            Route("/labels", pages.labels, methods=["GET"]),
            Route("/models", pages.models, methods=["GET"]),
            Route("/evaluation", pages.evaluations, methods=["GET"]),
            Route("/evaluation/{ref}", pages.model_evaluation, methods=["GET"]),
            Route("/evaluation/{ref}/{document}", pages.evaluation_document, methods=["GET"]),
            Route("/models/{ref}", pages.model, methods=["GET"]),
            Route("/deployments", pages.deployments, methods=["GET"]),
            Route("/deployments/{name}/{action}", pages.act, methods=["POST"]),
            Route("/monitoring", pages.monitoring, methods=["GET"]),
            Route("/lineage", pages.lineage, methods=["GET"]),
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
        self._store: Store | None = None
        self._store_file: tuple[int, int] | None = None
        self._store_lock = threading.Lock()
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
            quantity=quantity,
            htmx=vendored.get(HTMX.served_as) is not None,
            check_labels=CHECK_LABELS,
            uplot=all(vendored.get(lib.served_as) is not None for lib in (UPLOT, UPLOT_CSS)),
        )
        css = files("mlplan.ui").joinpath("static", "ui.css").read_bytes()
        self._elk = vendored.get(ELK.served_as) is not None
        self._static = {
            "ui.css": (css, "text/css"),
            "lineage.js": (
                files("mlplan.ui").joinpath("static", "lineage.js").read_bytes(),
                "text/javascript",
            ),
            "monitoring.js": (
                files("mlplan.ui").joinpath("static", "monitoring.js").read_bytes(),
                "text/javascript",
            ),
            **{
                name: (body, "text/css" if name.endswith(".css") else "text/javascript")
                for name, body in vendored.items()
                if body
            },
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

    def dataset_diff(self, request: Any) -> Any:
        """``mlplan data diff AGAINST REF`` (``?against=``, by default the version before);
        404 with the library's message for a version that does not exist, or a first
        version with nothing to compare it with."""
        ref = request.path_params["ref"]
        try:
            with self._opened() as ws:
                view = data_diff_view(
                    ws,
                    ref,
                    against=request.query_params.get("against") or None,
                    page=_page_number(request, "page"),
                )
        except (NotFoundError, RefError) as error:
            return self._render(
                request, "error.html", 404, title="Not found", message=str(error), path="/data"
            )
        title = f"Data: {view.diff.a} → {view.diff.b}"
        return self._render(request, "data_diff.html", view=view, title=title, path="/data")

    def labels(self, request: Any) -> Any:
        pages = {name: _page_number(request, name) for name in LABELS_PAGES}
        with self._opened() as ws:
            view = labels_view(ws, pages=pages)
        return self._render(request, "labels.html", view=view, title="Labels")

    def models(self, request: Any) -> Any:
        with self._opened() as ws:
            view = models_view(ws, page=_page_number(request, "page"))
        return self._render(request, "models.html", view=view, title="Models")

    def evaluations(self, request: Any) -> Any:
        with self._opened() as ws:
            view = evaluations_view(ws, page=_page_number(request, "page"))
        return self._render(request, "evaluation.html", view=view, title="Evaluation")

    def model_evaluation(self, request: Any) -> Any:
        """A model's newest evaluation, its report and card embedded (so its policy lets the
        page frame its own documents); 404 with the library's message for no such model."""
        ref = request.path_params["ref"]
        try:
            with self._opened() as ws:
                view = model_evaluation_view(ws, ref)
        except (NotFoundError, RefError) as error:
            return self._render(
                request,
                "error.html",
                404,
                title="Not found",
                message=str(error),
                path="/evaluation",
            )
        title = f"Evaluation: {view.model.ref}"
        page = self._render(
            request,
            "evaluation_model.html",
            view=view,
            documents=DOCUMENTS,
            title=title,
            path="/evaluation",
        )
        page.headers["content-security-policy"] = f"{_CSP}; frame-src 'self'"
        return page

    def evaluation_document(self, request: Any) -> Any:
        """A model's evaluation report or card, as stored, under a policy of its own: its
        inline styles, nothing else, framed only by the dashboard."""
        from starlette.responses import HTMLResponse, PlainTextResponse

        ref, document = request.path_params["ref"], request.path_params["document"]
        try:
            with self._opened() as ws:
                body = evaluation_document(ws, ref, document)
        except (NotFoundError, RefError) as error:
            return PlainTextResponse(str(error), status_code=404)
        return HTMLResponse(body, headers={"content-security-policy": DOCUMENT_CSP})

    def model(self, request: Any) -> Any:
        """One model's page (a package version's, the newest for a bare name); 404 with the
        library's message (naming the models or versions there are) for one that does not
        exist."""
        ref = request.path_params["ref"]
        try:
            with self._opened() as ws:
                view = model_view(ws, ref)
        except NotFoundError as error:
            return self._render(
                request, "error.html", 404, title="Not found", message=str(error), path="/models"
            )
        return self._render(
            request, "model.html", view=view, title=f"Model: {view.model.ref}", path="/models"
        )

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
        before = parse_before(request.query_params.get("before"))
        with self._opened() as ws:
            view = monitoring_view(
                ws, before=before, slice_value=request.query_params.get("slice") or WHOLE
            )
        return self._render(request, "monitoring.html", view=view, title="Monitoring")

    def lineage(self, request: Any) -> Any:
        """Where one can start, or with ``?ref=REF`` the graph ``mlplan lineage REF`` walks;
        404 with the library's message for a reference no run made or read."""
        ref = request.query_params.get("ref", "").strip()
        links: dict[str, Any] = {
            "lineage_href": lineage_href,
            "kind_labels": KIND_LABELS,
            "elk": self._elk,
            "max_runs": MAX_RUNS,
            "max_things": MAX_THINGS,
        }
        if not ref:
            with self._opened() as ws:
                start = start_view(ws, page=_page_number(request, "page"))
            return self._render(request, "lineage.html", view=start, title="Lineage", **links)
        try:
            with self._opened() as ws:
                view = lineage_view(ws, ref)
        except (NotFoundError, RefError) as error:
            return self._render(
                request, "error.html", 404, title="Not found", message=str(error), path="/lineage"
            )
        return self._render(
            request,
            "lineage.html",
            view=view,
            title=f"Lineage: {view.subject.ref}",
            run_icon=KIND_LABELS["run"][0],
            **links,
        )

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
        """The project as a command opens it, its plan read afresh and every query asked
        now; over one store the app opens once the project has one (its connections and
        compiled statements kept from request to request; reading never creates it)."""
        ws = Workspace(self._config.root, store_url=self._config.store_url, store=self._kept())
        try:
            yield ws
        finally:
            ws.close()

    def _kept(self) -> Store | None:
        """The store kept between requests: opened once the project has one, and opened
        again when its SQLite file was replaced (a restore, a rebuilt project), whose old
        connections would go on reading, and writing, the file that is gone."""
        with self._store_lock:
            if self._store is not None and _file_of(self._store) != self._store_file:
                self._store.close()
                self._store = None
            if self._store is None:
                probe = Workspace(self._config.root, store_url=self._config.store_url)
                if probe.has_store:
                    self._store = probe.store
                    self._store_file = _file_of(self._store)
            return self._store


def _file_of(store: Store) -> tuple[int, int] | None:
    """Which file a SQLite store's database is (device and inode; None when it is gone, or
    for a server database)."""
    if store.engine.dialect.name != "sqlite" or not store.engine.url.database:
        return None
    try:
        found = Path(store.engine.url.database).stat()
    except OSError:
        return None
    return (found.st_dev, found.st_ino)


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
    ``benchmarks/bench_ui.py``); a response that sets a policy of its own (an embedded
    document's) keeps it."""

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
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"content-security-policy" for name, _ in headers):
                    headers.append((b"content-security-policy", _CSP.encode()))  # else its own
                message["headers"] = [
                    *headers,
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
