"""The realtime server: an ASGI app (FastAPI) over one model package.

Routes, each with the role it needs (``public`` needs none):

==========================================  ========  =======================================
``GET  /v2/health/live``                    public    the process is up
``GET  /v2/health/ready``                   public    the model is loaded and warmed up
``GET  /v2/models/{name}/ready``            public    the same, per model (Open Inference)
``GET  /v2/models/{name}``                  predict   model metadata (Open Inference)
``POST /v2/models/{name}/infer``            predict   tensors in and out (Open Inference)
``POST /v1/predict``                        predict   JSON records in, predictions out
``POST /v1/feedback``                       feedback  ground truth and product events
``GET  /metrics``                           admin     Prometheus exposition
==========================================  ========  =======================================
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import itertools
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse as _StarletteJSON
from fastapi.responses import Response

from mlplan._optional import require
from mlplan.errors import MlplanError, UsageError
from mlplan.modeling import get_model
from mlplan.serving._batcher import Deadlines, MicroBatcher, Saturated
from mlplan.serving._config import (
    CONFIG_ENV,
    MULTIPROC_ENV,
    ROUTE_ROLES,
    ServeConfig,
    is_loopback,
)
from mlplan.serving._keys import ApiKeyInfo, KeyRing
from mlplan.serving._log import LOG_DIR, PiiPolicy, PredictionLog, compact_segments
from mlplan.serving._model import ServedModel, load_served_model
from mlplan.serving._records import finish_serving, start_serving
from mlplan.serving._validate import RecordValidator, TensorValidator, ValidationResult
from mlplan.workspace import Workspace

__all__ = ["JSONResponse", "create_app", "create_app_from_env"]


class JSONResponse(_StarletteJSON):
    """JSON answers encoded by orjson (NaN and infinities become null)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class _State:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.model: ServedModel | None = None
        self.reason: str | None = "loading"
        self.stopping = False
        self.keys: KeyRing | None = None
        self.auth = "api_key"
        self.records: RecordValidator | None = None
        self.tensors: TensorValidator | None = None
        self.log: PredictionLog | None = None
        self.batcher: MicroBatcher | None = None
        self.loaded = threading.Event()  # set once loading ended, ready or not
        self.run_id: str | None = None
        self.started_at: str | None = None
        self.answers: dict[str, int] = {}
        self.retention_days = 90

    @property
    def ready(self) -> bool:
        return self.model is not None and self.batcher is not None and not self.stopping

    def prepare(self) -> None:
        """What must hold before the server listens: the plan, the auth rule, the keys."""
        ws = Workspace(Path(self.config.root), store_url=self.config.store_url)
        self.ws = ws
        security = ws.plan.deployment.security
        self.auth = security.auth
        if self.auth == "none" and not is_loopback(self.config.host):
            raise UsageError(
                f"deployment.security.auth is 'none', which is allowed only on loopback; "
                f"got --host {self.config.host}. Create keys (mlplan keys create) instead"
            )
        self.keys = KeyRing(ws, refresh_seconds=self.config.key_refresh_seconds)
        self.keys.reload()

    def load_model(self) -> None:
        """Load, verify and warm up the package (in a thread, while live answers)."""
        ws = self.ws
        security = ws.plan.deployment.security
        try:
            model = load_served_model(ws, self.config.model)
        except MlplanError as exc:
            self.reason = str(exc)
            print(f"mlplan serve: {self.config.model} is not ready: {exc}", flush=True)
            return
        self.records = RecordValidator(
            model.signature,
            unseen_categories=security.unseen_categories,
            out_of_range=security.out_of_range,
        )
        self.tensors = TensorValidator(model.signature, self.records)
        policy = ws.plan.deployment.logging
        self.retention_days = policy.retention_days
        if policy.predictions:
            pii = frozenset(
                c for spec in ws.plan.datasets.values() for c in (spec.pii_columns or [])
            )
            folder = ws.root / ".mlplan" / LOG_DIR / model.name
            self.log = PredictionLog(folder, mode=policy.mode, pii=PiiPolicy(pii, policy.pii))
            compact_segments(folder, retention_days=policy.retention_days)
        self.model = model
        self.reason = None


class _Metrics:
    """Prometheus metrics of one app; label values are bounded (routes, statuses, classes,
    input names)."""

    def __init__(self) -> None:
        prom = require("prometheus_client", extra="serving", purpose="the /metrics route")
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.requests = prom.Counter(
            "mlplan_http_requests", "Requests by route and status.", ["route", "status"], registry=r
        )
        self.latency = prom.Histogram(
            "mlplan_http_request_duration_seconds",
            "Time from request to response, by route.",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.rows = prom.Counter("mlplan_input_rows", "Rows received for prediction.", registry=r)
        self.missing = prom.Counter(
            "mlplan_input_missing_values", "Null inputs, by feature.", ["feature"], registry=r
        )
        self.out_of_range = prom.Counter(
            "mlplan_input_out_of_range_values",
            "Inputs outside the trained range, by feature.",
            ["feature"],
            registry=r,
        )
        self.unseen = prom.Counter(
            "mlplan_input_unseen_categories",
            "Categories not seen in training, by feature.",
            ["feature"],
            registry=r,
        )
        self.predicted = prom.Counter(
            "mlplan_predicted_class", "Predictions by class.", ["label"], registry=r
        )
        self.null_outputs = prom.Counter(
            "mlplan_null_outputs", "Predictions that came out NaN.", registry=r
        )
        # With several workers (mlplan serve --workers N) every worker writes its metrics to
        # files in $PROMETHEUS_MULTIPROC_DIR and /metrics adds them up, whichever worker
        # answers the scrape. Collectors that read the process at scrape time cannot do that:
        # there each worker publishes its log and process figures once a second instead.
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.ready = prom.Gauge(
            "mlplan_model_ready",
            "1 when the model is ready (in every worker).",
            registry=r,
            multiprocess_mode="livemin",
        )
        self._children: dict[tuple[Any, tuple[Any, ...]], Any] = {}
        self.log_stats: Any = None
        self.queued: Callable[[], int] = lambda: 0
        log_figures = (
            ("mlplan_log_records", "Records written to the prediction log.", "written"),
            ("mlplan_log_dropped", "Records dropped: the async log was full.", "dropped"),
            ("mlplan_log_commits", "Group commits (one fsync each).", "commits"),
        )
        self.queue_rows = prom.Gauge(
            "mlplan_queue_rows",
            "Rows waiting for the model.",
            registry=r,
            multiprocess_mode="livesum",
        )
        if not self.multiprocess:
            self.queue_rows.set_function(lambda: self.queued())

            class _LogCollector:
                def collect(inner) -> Any:
                    stats = self.log_stats
                    if stats is None:
                        return
                    core = require("prometheus_client.core", extra="serving", purpose="metrics")
                    for name, help_text, field in log_figures:
                        yield core.CounterMetricFamily(name, help_text, value=getattr(stats, field))

            r.register(_LogCollector())
            prom.ProcessCollector(registry=r)
        else:
            self._published: dict[str, float] = {}
            self._log_counters = [
                (prom.Counter(name, help_text, registry=r), field)
                for name, help_text, field in log_figures
            ]
            self._cpu = prom.Counter(
                "process_cpu_seconds", "CPU time of the workers, in seconds.", registry=r
            )
            self._memory = prom.Gauge(
                "process_resident_memory_bytes",
                "Resident memory of the workers, in bytes.",
                registry=r,
                multiprocess_mode="livesum",
            )
        self.batch_rows = prom.Histogram(
            "mlplan_batch_rows",
            "Rows per ONNX Runtime call (micro-batches).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.batch_requests = prom.Histogram(
            "mlplan_batch_requests",
            "Requests per ONNX Runtime call (micro-batches).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.saturated = prom.Counter(
            "mlplan_saturated_requests",
            "Requests refused with 503: the queue was full.",
            registry=r,
        )

    def child(self, metric: Any, *labels: Any) -> Any:
        """``metric.labels(*labels)``, made once (label values are bounded)."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*(str(v) for v in labels))
        return found

    def publish(self) -> None:
        """With several workers: this worker's log counts, queue, CPU and memory, into the
        shared files (a worker calls this once a second, and before answering a scrape)."""
        if not self.multiprocess:
            return
        if self.log_stats is not None:
            for counter, field in self._log_counters:
                value = getattr(self.log_stats, field)
                delta = value - self._published.get(field, 0)
                if delta > 0:
                    counter.inc(delta)
                    self._published[field] = value
        times = os.times()
        cpu = times.user + times.system
        if cpu > self._published.get("cpu", 0.0):
            self._cpu.inc(cpu - self._published.get("cpu", 0.0))
            self._published["cpu"] = cpu
        with contextlib.suppress(OSError, ValueError, IndexError):  # not Linux: no /proc
            pages = int(Path("/proc/self/statm").read_text().split()[1])
            self._memory.set(pages * os.sysconf("SC_PAGE_SIZE"))
        self.queue_rows.set(self.queued())

    def exposition(self) -> tuple[bytes, str]:
        """The text of /metrics: this process's registry, or every worker's files."""
        prom = require("prometheus_client", extra="serving", purpose="the /metrics route")
        if not self.multiprocess:
            return prom.generate_latest(self.registry), prom.CONTENT_TYPE_LATEST
        self.publish()
        multiprocess = require("prometheus_client.multiprocess", extra="serving", purpose="metrics")
        # A worker that died without shutting down (killed, out of memory) leaves its live
        # gauges behind: they leave the sums once its process is gone. Its counters stay.
        for path in Path(os.environ[MULTIPROC_ENV]).glob("gauge_live*_*.db"):
            pid = path.stem.rsplit("_", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                multiprocess.mark_process_dead(int(pid))
        gathered = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(gathered)
        return prom.generate_latest(gathered), prom.CONTENT_TYPE_LATEST

    def inputs(self, result: ValidationResult) -> None:
        self.rows.inc(result.rows)
        for name, count in result.missing.items():
            self.child(self.missing, name).inc(count)
        for name, count in result.out_of_range.items():
            self.child(self.out_of_range, name).inc(count)
        for name, count in result.unseen.items():
            self.child(self.unseen, name).inc(count)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


_FAMILIES = {200: "2xx", 202: "2xx", 401: "4xx", 403: "4xx", 422: "4xx", 503: "5xx"}


_TOKEN = "mlplan.token"  # the scope key of the caller's token


def _token(bearer: bytes | None, api_key: bytes | None) -> str | None:
    """The caller's token: from ``Authorization: Bearer …``, else from ``X-API-Key``
    (headers decoded as latin-1, as HTTP's are)."""
    if bearer is not None:
        text = bearer.decode("latin-1")
        if text[:7].lower() == "bearer ":
            return text[7:].strip()
    return None if api_key is None else api_key.decode("latin-1")


def create_app(config: ServeConfig) -> Any:
    """The ASGI app serving ``config.model``; the model loads at startup."""
    state = _State(config)
    # Request ids: a random per-process prefix and a counter (unique, and no syscall each).
    id_prefix = secrets.token_hex(8)
    id_counter = itertools.count()

    def next_id() -> str:
        return f"{id_prefix}{next(id_counter):016x}"

    metrics = _Metrics()
    log_deadlines = Deadlines(config.request_timeout_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        state.prepare()

        async def bring_up() -> None:
            try:
                await asyncio.to_thread(state.load_model)
                metrics.log_stats = None if state.log is None else state.log.stats
                if state.model is not None:

                    def observe(requests: int, rows: int) -> None:
                        metrics.batch_requests.observe(requests)
                        metrics.batch_rows.observe(rows)

                    batcher = MicroBatcher(
                        state.model.run,
                        max_batch_rows=config.max_batch_rows,
                        max_wait_ms=config.max_wait_ms,
                        max_queue_rows=config.max_queue_rows,
                        timeout_seconds=config.request_timeout_seconds,
                        observe=observe,
                    )
                    await batcher.start()
                    metrics.queued = lambda: batcher.queued_rows
                    state.batcher = batcher
                metrics.ready.set(1 if state.ready else 0)
                if metrics.multiprocess:
                    publishing.append(asyncio.create_task(publish_every_second()))
                if state.ready:
                    assert state.model is not None and state.keys is not None
                    if config.key_refresh_seconds > 0:
                        state.keys.refresh_in_background()
                    if config.freeze_gc:
                        # What loading made lives as long as the server process: keep it
                        # out of the collector's way, so collections stay short under load.
                        gc.collect()
                        gc.freeze()
                    state.started_at = dt.datetime.now(dt.UTC).isoformat()
                    state.run_id = await asyncio.to_thread(
                        start_serving,
                        state.ws,
                        get_model(state.ws, config.model),
                        {
                            "version": state.model.version,
                            "host": config.host,
                            "auth": state.auth,
                            "log": None if state.log is None else state.log.mode,
                            "pid": os.getpid(),
                            "deployment": config.deployment,
                        },
                    )
                    print(f"mlplan serve: {config.model} ready", flush=True)
            finally:
                state.loaded.set()

        publishing: list[asyncio.Task[None]] = []

        async def publish_every_second() -> None:
            while True:
                metrics.publish()
                await asyncio.sleep(1.0)

        # Live at once; ready once the model is loaded and warmed up.
        loading = asyncio.create_task(bring_up())
        yield
        await loading
        state.stopping = True
        metrics.ready.set(0)
        for task in publishing:
            task.cancel()
        if state.keys is not None:
            state.keys.stop()
        if state.batcher is not None:
            await state.batcher.stop()  # in-flight requests get their answers
        if state.log is not None:
            state.log.close()  # everything acknowledged or queued is on disk
        log_deadlines.cancel()
        if state.run_id is not None and state.model is not None:
            stats = state.log.stats if state.log is not None else None
            finish_serving(
                state.ws,
                state.run_id,
                {
                    "model": state.model.name,
                    "version": state.model.version,
                    "mode": "realtime",
                    "started_at": state.started_at,
                    "stopped_at": dt.datetime.now(dt.UTC).isoformat(),
                    "answers": dict(state.answers),
                    "logged": None if stats is None else stats.written,
                    "log_dropped": None if stats is None else stats.dropped,
                    "log_failed": None if stats is None else stats.failed,
                    "log_mode": None if state.log is None else state.log.mode,
                    "auth": state.auth,
                },
            )
        if metrics.multiprocess:
            metrics.publish()
            multiprocess = require(
                "prometheus_client.multiprocess", extra="serving", purpose="metrics"
            )
            multiprocess.mark_process_dead(os.getpid())  # its live gauges leave the sums
        print(f"mlplan serve: {config.model} stopped", flush=True)

    app = FastAPI(
        title="mlplan", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.mlplan = state

    def error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    templates: dict[Any, str] = {}  # endpoint -> its route's path, for bounded labels
    exact: dict[tuple[str, str], Any] = {}  # routes without path parameters, found at once

    limit = config.max_body_bytes

    class _Front:
        """The ASGI app uvicorn calls: body limit, request counts and latency, as plain
        ASGI (no per-request task). The routes without path parameters are dispatched here
        by method and path; the others, and the lifespan, go to FastAPI."""

        def __init__(self, app: Any) -> None:
            self.app = app
            self.state = app.state
            self.routes = app.routes

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            start = time.perf_counter()
            status = 500
            bearer = api_key = None
            for key, value in scope["headers"]:
                if key == b"content-length" and value.isdigit() and int(value) > limit:
                    response = error(413, f"the body is larger than {limit:,} bytes")
                    await response(scope, receive, send)
                    self.count("other", 413, start)
                    return
                if key == b"authorization":
                    bearer = value if bearer is None else bearer  # the first, as Starlette reads
                elif key == b"x-api-key":
                    api_key = value if api_key is None else api_key
            scope[_TOKEN] = _token(bearer, api_key)
            handler = exact.get((scope["method"], scope["path"]))
            if handler is not None:
                route = templates[handler]
                try:
                    response = await handler(Request(scope, receive))
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
                self.count(templates.get(scope.get("endpoint"), "other"), status, start)

        @staticmethod
        def count(route: str, status: int, start: float) -> None:
            metrics.child(metrics.requests, route, status).inc()
            family = _FAMILIES.get(status) or f"{status // 100}xx"
            state.answers[family] = state.answers.get(family, 0) + 1
            metrics.child(metrics.latency, route).observe(time.perf_counter() - start)

    def route(method: str, path: str) -> Callable[[Any], Any]:
        """Register a plain Starlette endpoint (no dependency injection on the hot path),
        behind the role that ROUTE_ROLES declares for it (a route without one fails here)."""
        needed = ROUTE_ROLES[(method, path)]

        def register(endpoint: Any) -> Any:
            async def guarded(request: Request) -> Any:
                denied = authorize(request, needed)
                return denied if denied is not None else await endpoint(request)

            handler = endpoint if needed == "public" else guarded
            templates[handler] = path
            app.add_route(path, handler, methods=[method], include_in_schema=False)
            if "{" not in path:
                exact[(method, path)] = handler  # dispatched before the router
            return endpoint

        return register

    def authorize(request: Any, needed: str) -> Any | None:
        """None when the caller may use a route that needs ``needed``; else the error."""
        if state.auth == "none":
            return None
        assert state.keys is not None
        key: ApiKeyInfo | None = state.keys.authenticate(request.scope.get(_TOKEN))
        if key is None:
            return error(
                401,
                "a valid API key is required: Authorization: Bearer mlp_… (mlplan keys create)",
                {"WWW-Authenticate": "Bearer"},
            )
        if not key.allows(needed):
            return error(403, f"this key lacks the {needed!r} role")
        return None

    def not_ready() -> Any:
        return error(503, f"not ready: {state.reason or 'shutting down'}", {"Retry-After": "1"})

    async def body_json(request: Any) -> tuple[Any, Any]:
        receive = request.receive
        message = await receive()
        raw = message.get("body", b"")
        if message.get("more_body"):  # a chunked body is cut off at the limit too
            parts = bytearray(raw)
            while message.get("more_body"):
                if len(parts) > config.max_body_bytes:
                    break
                message = await receive()
                parts += message.get("body", b"")
            raw = bytes(parts)
        if message["type"] == "http.disconnect":
            return None, error(400, "the client went away before sending the body")
        if len(raw) > config.max_body_bytes:
            return None, error(413, f"the body is larger than {config.max_body_bytes:,} bytes")
        try:
            return orjson.loads(raw), None
        except (ValueError, UnicodeDecodeError, RecursionError):  # orjson's error is a ValueError
            return None, error(
                400,
                [{"loc": ["body"], "type": "json_invalid", "msg": "the body is not valid JSON"}],
            )

    async def logged(
        kind: str,
        request_id: str,
        route: str,
        status: int,
        started: float,
        inputs: Any = None,
        outputs: Any = None,
        problem: Any = None,
    ) -> bool:
        """Append the record; in acked mode, wait until it is on disk. False if it failed."""
        if state.log is None or state.model is None:
            return True
        done = state.log.record_async(
            kind=kind,
            request_id=request_id,
            model=state.model.name,
            version=state.model.version,
            route=route,
            status=status,
            latency_ms=(time.perf_counter() - started) * 1000,
            inputs=inputs,
            outputs=outputs,
            error=problem,
        )
        if done is None:
            return True
        log_deadlines.watch(done)
        try:
            # A client that leaves does not cancel the write it is owed: the record is queued
            # already, and the writer skips a waiter nobody waits for.
            await done
        except (OSError, TimeoutError):
            return False
        return True

    def log_failed() -> JSONResponse:
        return error(503, "the prediction could not be logged; retry", {"Retry-After": "1"})

    @route("GET", "/v2/health/live")
    async def live(request: Request) -> JSONResponse:
        return JSONResponse({"live": True})

    def readiness() -> JSONResponse:
        if not state.ready:
            return error(503, {"ready": False, "reason": state.reason or "shutting down"})
        return JSONResponse({"ready": True})

    @route("GET", "/v2/health/ready")
    async def ready(request: Request) -> JSONResponse:
        return readiness()

    def unknown_model(name: str) -> JSONResponse:
        return error(404, f"no model {name!r} here; this server serves {config.model!r}")

    @route("GET", "/v2/models/{name}/ready")
    async def model_ready(request: Request) -> JSONResponse:
        if request.path_params["name"] != config.model:
            return unknown_model(request.path_params["name"])
        return readiness()

    @route("GET", "/v2/models/{name}")
    async def model_metadata(request: Request) -> Any:
        name = request.path_params["name"]
        if name != config.model:
            return unknown_model(name)
        if state.model is None:
            return not_ready()
        model = state.model
        inputs = []
        for spec in model.signature.inputs:
            shape = [-1 if d is None else d for d in spec.shape or (None, 1)]
            datatype = "BYTES" if spec.type == "string" else "FP32"
            inputs.append({"name": spec.name, "datatype": datatype, "shape": shape})
        outputs = (
            [
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(model.classes)]},
            ]
            if model.is_classifier
            else [{"name": "value", "datatype": "FP64", "shape": [-1]}]
        )
        return JSONResponse(
            {
                "name": model.name,
                "versions": [model.version],
                "platform": "onnxruntime_onnx",
                "inputs": inputs,
                "outputs": outputs,
            }
        )

    async def compute(
        validated: ValidationResult,
    ) -> tuple[np.ndarray, np.ndarray | None] | JSONResponse:
        """The model's outputs through the micro-batcher, or the 503/504 to answer."""
        assert state.model is not None and state.batcher is not None
        if validated.rows > state.batcher.max_queue_rows:
            return error(
                413,
                f"{validated.rows:,} rows in one request; at most "
                f"{state.batcher.max_queue_rows:,} (split the request)",
            )
        try:
            labels, proba = await state.batcher.submit(validated.feeds, validated.rows)
        except Saturated:
            metrics.saturated.inc()
            return error(503, "the server is saturated; retry shortly", {"Retry-After": "1"})
        except TimeoutError:
            return error(504, f"no answer within {config.request_timeout_seconds:g} s")
        except Exception as exc:  # ONNX Runtime refused these inputs
            return error(
                422, f"the model could not score these inputs: {str(exc).splitlines()[0][:200]}"
            )
        if state.model.is_classifier:
            for label in labels:
                metrics.child(metrics.predicted, label).inc()
        else:
            metrics.null_outputs.inc(int(np.isnan(labels).sum()))
        return labels, proba

    @route("POST", "/v2/models/{name}/infer")
    async def infer(request: Request) -> Any:
        name = request.path_params["name"]
        if name != config.model:
            return unknown_model(name)
        if state.model is None or not state.ready:
            return not_ready()
        body, failed = await body_json(request)
        if failed is not None:
            return failed
        if not isinstance(body, dict):
            return error(422, [{"loc": ["body"], "type": "dict_type", "msg": "expected an object"}])
        assert state.tensors is not None
        validated = state.tensors.validate(body.get("inputs"))
        metrics.inputs(validated)  # what came in counts, served or refused
        if validated.errors:
            return error(422, [e.to_dict() for e in validated.errors])
        started = time.perf_counter()
        computed = await compute(validated)
        if isinstance(computed, JSONResponse):
            return computed
        labels, proba = computed
        model = state.model
        request_id = str(body.get("id") or next_id())[:100]
        outputs: list[dict[str, Any]]
        if model.is_classifier:
            assert proba is not None
            outputs = [
                {
                    "name": "label",
                    "datatype": "BYTES",
                    "shape": [len(labels)],
                    "data": labels.tolist(),
                },
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": list(proba.shape),
                    "data": proba.astype(np.float32).ravel().tolist(),
                },
            ]
        else:
            outputs = [
                {
                    "name": "value",
                    "datatype": "FP64",
                    "shape": [len(labels)],
                    "data": labels.tolist(),
                }
            ]
        # Tabular rows are logged as records; image and window tensors by their shapes.
        rows = (
            [
                {name: array[i].ravel().tolist()[0] for name, array in validated.feeds.items()}
                for i in range(validated.rows)
            ]
            if model.kind == "tabular"
            else [{name: list(array.shape) for name, array in validated.feeds.items()}]
        )
        if not await logged(
            "prediction",
            request_id,
            "/v2/models/{name}/infer",
            200,
            started,
            inputs=rows,
            outputs=outputs,
        ):
            return log_failed()
        return JSONResponse(
            {
                "model_name": model.name,
                "model_version": model.version,
                "id": request_id,
                "outputs": outputs,
            }
        )

    @route("POST", "/v1/predict")
    async def predict(request: Request) -> Any:
        if state.model is None or not state.ready:
            return not_ready()
        model = state.model
        if model.kind != "tabular":
            return error(
                422,
                f"{model.name} takes {model.kind} tensors, not records: "
                f"POST /v2/models/{model.name}/infer",
            )
        body, failed = await body_json(request)
        if failed is not None:
            return failed
        if not isinstance(body, dict) or "records" not in body:
            return error(
                422,
                [
                    {
                        "loc": ["body", "records"],
                        "type": "missing",
                        "msg": "field required: a list of records",
                    }
                ],
            )
        assert state.records is not None
        started = time.perf_counter()
        request_id = next_id()
        validated = state.records.validate(body["records"])
        metrics.inputs(validated)  # what came in counts, served or refused
        if validated.errors:
            problems = [e.to_dict() for e in validated.errors]
            # Refused requests are logged by where and why, never with their values.
            await logged("prediction", request_id, "/v1/predict", 422, started, problem=problems)
            return error(422, problems, {"X-Request-Id": request_id})
        computed = await compute(validated)
        if isinstance(computed, JSONResponse):
            return computed
        labels, proba = computed
        # NaN and infinities (which JSON cannot hold) are written as null by orjson.
        if model.is_classifier:
            assert proba is not None
            classes = model.classes
            predictions: list[dict[str, Any]] = [
                {"label": label, "probabilities": dict(zip(classes, row, strict=True))}
                for label, row in zip(labels.tolist(), proba.tolist(), strict=True)
            ]
        else:
            predictions = [{"value": v} for v in labels.tolist()]
        if not await logged(
            "prediction",
            request_id,
            "/v1/predict",
            200,
            started,
            inputs=body["records"],
            outputs=predictions,
        ):
            return log_failed()
        return JSONResponse(
            {
                "request_id": request_id,
                "model": {"name": model.name, "version": model.version},
                "predictions": predictions,
            },
            headers={"X-Request-Id": request_id},
        )

    @route("POST", "/v1/feedback")
    async def feedback(request: Request) -> Any:
        if state.model is None or not state.ready:
            return not_ready()
        body, failed = await body_json(request)
        if failed is not None:
            return failed
        problems = _check_feedback(body)
        if problems:
            return error(422, problems)
        started = time.perf_counter()
        kept = {k: body[k] for k in ("label", "value", "events") if k in body}
        if not await logged(
            "feedback", body["request_id"], "/v1/feedback", 202, started, outputs=kept
        ):
            return log_failed()
        return JSONResponse({"accepted": True, "request_id": body["request_id"]}, status_code=202)

    @route("GET", "/metrics")
    async def prometheus(request: Request) -> Any:
        text, media_type = metrics.exposition()
        return Response(text, media_type=media_type)

    return _Front(app)


def _check_feedback(body: Any) -> list[dict[str, Any]]:
    """Problems of a feedback body: a request id, and at least one of a label, a value and
    events (each a name and a number)."""

    def problem(loc: list[Any], kind: str, msg: str) -> dict[str, Any]:
        return {"loc": ["body", *loc], "type": kind, "msg": msg}

    if not isinstance(body, dict):
        return [problem([], "dict_type", "expected an object")]
    out = []
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= 100:
        out.append(problem(["request_id"], "string_type", "the request id the server returned"))
    extra = sorted(set(body) - {"request_id", "label", "value", "events"})
    out += [
        problem([k], "extra_forbidden", "fields: request_id, label, value, events") for k in extra
    ]
    if not {"label", "value", "events"} & set(body):
        out.append(problem([], "missing", "give a label (ground truth), a value or events"))
    if "label" in body and not isinstance(body["label"], str | int | float | bool):
        out.append(problem(["label"], "label_type", "expected a class name or a number"))
    if "value" in body and (
        not isinstance(body["value"], int | float)
        or isinstance(body["value"], bool)
        or not np.isfinite(float(body["value"]))
    ):
        out.append(problem(["value"], "float_type", "expected a number (a business value)"))
    events = body.get("events", [])
    if not isinstance(events, list) or len(events) > 100:
        out.append(problem(["events"], "list_type", "expected a list of at most 100 events"))
    else:
        for i, event in enumerate(events):
            if (
                not isinstance(event, dict)
                or not isinstance(event.get("name"), str)
                or not 1 <= len(event["name"]) <= 100
                or set(event) - {"name", "value"}
                or not isinstance(event.get("value", 1), int | float)
                or isinstance(event.get("value", 1), bool)
                or not np.isfinite(float(event.get("value", 1)))
            ):
                out.append(
                    problem(["events", i], "event", 'expected {"name": "...", "value": number}')
                )
    return out


def create_app_from_env() -> Any:
    """The app for ``uvicorn --factory`` in worker processes (config in the environment)."""
    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise UsageError(f"${CONFIG_ENV} is not set; start the server with mlplan serve")
    return create_app(ServeConfig.from_json(text))
