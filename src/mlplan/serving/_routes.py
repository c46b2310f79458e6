"""The server's routes: one method of :class:`Routes` per route, each behind the role that
``ROUTE_ROLES`` declares for it (``public`` needs none).

================================================  ========  ==================================
``GET  /v2``                                      predict   server metadata and extensions
``GET  /v2/health/live``                          public    the process is up
``GET  /v2/health/ready``                         public    the model is loaded and warmed up
``GET  /v2/models/{name}[/versions/{v}]/ready``   public    the same, per model
``GET  /v2/models/{name}[/versions/{v}]``         predict   model metadata
``GET  /v2/models/{name}[/versions/{v}]/config``  predict   model configuration (Triton's form)
``POST /v2/models/{name}[/versions/{v}]/infer``   predict   tensors in and out, JSON or binary
``POST /v1/predict``                              predict   JSON records in, predictions out
``POST /v1/preview``                              admin     the same, from a rollout's candidate
``POST /v1/feedback``                             feedback  ground truth and product events
``GET  /metrics``                                 admin     Prometheus exposition
================================================  ========  ==================================

A package above serving adds its own routes (``create_app(config, routes)``, each an
:class:`~mlplan.serving._extra.ExtraRoute` with its role): ``mlplan serve`` adds the rollout
routes, ``/v1/rollouts...``, behind ``admin``.

``/v2`` is the Open Inference Protocol, to the letter: its errors are ``{"error": "..."}``
(whatever raised them: a route, the key check, the body limit, readiness, a route that does
not exist), and it supports the binary tensor data extension (:mod:`._open_inference`) and
the model configuration extension, the two that ``GET /v2`` lists. ``{v}`` is the package
version served (``model_version`` in every answer).

A server of a deployment (``mlplan serve --deployment NAME``) follows its rollout
(``_router.py``): during a canary or after a blue-green switch each request is answered by
the stable model or the candidate, and the answer names the one that did (``model`` in
``/v1``, ``model_name`` and ``model_version`` under ``/v2``; a version in the path pins that
model); a shadow candidate scores a share of requests off the request path, its outputs
logged beside the stable's under the same request id. The model repository, statistics,
shared-memory, trace and logging extensions are not supported: their routes answer 404 with
the protocol's error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mlplan.serving._batcher import Deadlines, Saturated
from mlplan.serving._extra import ExtraRoute, RouteCall, route_roles
from mlplan.serving._front import TOKEN, Endpoint, Front
from mlplan.serving._ids import keyed_hash
from mlplan.serving._keys import ApiKeyInfo
from mlplan.serving._metrics import ServerMetrics
from mlplan.serving._model import ServedModel
from mlplan.serving._open_inference import (
    HEADER_LENGTH,
    attach_binary_inputs,
    binary_tensor,
    header_length,
    requested_outputs,
    server_metadata,
)
from mlplan.serving._refusals import MAX_ERRORS, RefusalBudget, summary
from mlplan.serving._responses import JSONResponse, error, refusal
from mlplan.serving._router import Arm, Routing
from mlplan.serving._state import ServerState
from mlplan.serving._validate import ValidationResult

__all__ = ["Routes", "register_routes"]

_Method = TypeVar("_Method", bound=Callable[..., Any])

_ENDPOINTS: dict[tuple[str, str], str] = {}
"""(method, path) -> the name of the :class:`Routes` method that answers it."""


def _route(method: str, path: str) -> Callable[[_Method], _Method]:
    """Mark a method of :class:`Routes` as the endpoint of ``method path``."""

    def mark(endpoint: _Method) -> _Method:
        _ENDPOINTS[(method, path)] = endpoint.__name__
        return endpoint

    return mark


class Routes:
    """The endpoints of one server, over its state (model, validators, keys, log, batcher)
    and its metrics."""

    def __init__(
        self, state: ServerState, metrics: ServerMetrics, log_deadlines: Deadlines
    ) -> None:
        self.state = state
        self.metrics = metrics
        self.config = state.config
        self._max_body_bytes = state.config.max_body_bytes
        self._log_deadlines = log_deadlines
        self._refusals = RefusalBudget()  # refusals each caller may write to the log
        self._mirrors: set[asyncio.Task[None]] = set()  # shadow requests in flight

    # -- helpers -----------------------------------------------------------------------------

    def _next_id(self) -> str:
        """A new request id, signed (the routes that issue one run once the model loaded)."""
        ids = self.state.ids
        assert ids is not None
        return ids.issue()

    def authorize(self, request: Request, needed: str) -> Response | None:
        """None when the caller may use a route that needs ``needed``; else the error."""
        state = self.state
        if state.auth == "none":
            return None
        assert state.keys is not None
        key: ApiKeyInfo | None = state.keys.authenticate(request.scope.get(TOKEN))
        if key is None:
            self.metrics.refused("unauthorized")
            return error(
                401,
                "a valid API key is required: Authorization: Bearer mlp_… (mlplan keys create)",
                {"WWW-Authenticate": "Bearer"},
            )
        if not key.allows(needed):
            self.metrics.refused("forbidden")
            return error(403, f"this key lacks the {needed!r} role")
        return None

    def _caller(self, request: Request) -> str:
        """Who sent ``request``, for the refusal budget: its API key (the routes that log
        refusals are behind one), or its client address without keys."""
        if self.state.auth != "none":
            parts = str(request.scope.get(TOKEN) or "").split("_", 2)
            if len(parts) == 3:
                return "key:" + parts[1]
        client = request.scope.get("client")
        return "address:" + (str(client[0]) if client else "unknown")

    def _not_ready(self) -> Response:
        self.metrics.refused("not_ready")
        reason = self.state.reason or "shutting down"
        return error(503, f"not ready: {reason}", {"Retry-After": "1"})

    def _serves(self, name: str) -> bool:
        """Whether ``name`` is served here: the model as configured, or by name without its
        package version (a deployment serves ``logistic-1@2``; clients call it logistic-1),
        the deployment's name, or a model its rollout loaded (the candidate, or the model
        promoted since the server started)."""
        config = self.config
        if name in (config.model, config.model.partition("@")[0], config.deployment):
            return True
        routing = self.state.routing
        return routing is not None and any(a.model.name == name for a in routing.arms)

    def _unknown_model(self, name: str) -> Response:
        self.metrics.refused("unknown_model")
        # The name came from the client: never echoed (it may be personal data).
        return error(
            404,
            f"no model with that name is served here; this server serves {self.config.model!r}",
        )

    def _unserved(self, request: Request) -> Response | None:
        """The 404 when the route names another model, or another version of it (a
        version is known once the model is loaded: before, the route says not ready)."""
        name = request.path_params["name"]
        if not self._serves(name):
            return self._unknown_model(name)
        version = request.path_params.get("version")
        routing = self.state.routing
        if version is None:
            return None
        if routing is None:
            return self._not_ready()
        if all(version != arm.model.version for arm in routing.arms):
            self.metrics.refused("unknown_model")
            served = ", ".join(arm.model.version for arm in routing.arms)
            return error(
                404,
                f"no such version of {routing.stable.model.name}; this server serves "
                f"version {served}",
            )
        return None

    def _readiness(self) -> Response:
        if not self.state.ready:
            return self._not_ready()
        return JSONResponse({"ready": True})

    async def _body_json(self, request: Request) -> tuple[Any, Response | None]:
        """The body as JSON, or the error to answer (cut off at the body limit)."""
        raw, failed = await self._body(request)
        if failed is not None:
            return None, failed
        return self._json(raw)

    def _json(self, raw: bytes | memoryview) -> tuple[Any, Response | None]:
        """``raw`` as JSON, or the 400 to answer."""
        try:
            return orjson.loads(raw), None
        except (ValueError, UnicodeDecodeError, RecursionError):  # orjson's error is a ValueError
            self.metrics.refused("invalid_json")
            return None, error(
                400,
                [{"loc": ["body"], "type": "json_invalid", "msg": "the body is not valid JSON"}],
            )

    async def _body(self, request: Request) -> tuple[bytes, Response | None]:
        """The body's bytes, or the error to answer (cut off at the body limit)."""
        limit = self._max_body_bytes
        receive = request.receive
        message = await receive()
        raw = message.get("body", b"")
        if message.get("more_body"):  # a chunked body is cut off at the limit too
            parts = bytearray(raw)
            while message.get("more_body"):
                if len(parts) > limit:
                    break
                message = await receive()
                parts += message.get("body", b"")
            raw = bytes(parts)
        if message["type"] == "http.disconnect":
            self.metrics.refused("client_gone")
            return b"", error(400, "the client went away before sending the body")
        if len(raw) > limit:
            self.metrics.refused("too_large")
            return b"", error(413, f"the body is larger than {limit:,} bytes")
        return raw, None

    async def _logged(
        self,
        kind: str,
        request_id: str,
        route: str,
        status: int,
        started: float,
        inputs: Any = None,
        outputs: Any = None,
        problem: Any = None,
        client_id: str | None = None,
        served: ServedModel | None = None,
    ) -> bool:
        """Append the record (of the model ``served``, else the stable one); in acked mode,
        wait until it is on disk. False if it failed."""
        state = self.state
        served = served or state.model
        if state.log is None or served is None:
            return True
        try:
            done = state.log.record_async(
                kind=kind,
                request_id=request_id,
                model=served.name,
                version=served.version,
                route=route,
                status=status,
                latency_ms=(time.perf_counter() - started) * 1000,
                inputs=inputs,
                outputs=outputs,
                error=problem,
                client_id=client_id,
                deployment=self.config.deployment,
            )
        except RuntimeError:  # the log closed (the server is stopping): not logged, so 503
            self.metrics.child(self.metrics.log_failures, "other").inc()
            return False
        if done is None:
            return True
        self._log_deadlines.watch(done)
        try:
            # A client that leaves does not cancel the write it is owed: the record is queued
            # already, and the writer skips a waiter nobody waits for.
            await done
        except TimeoutError:
            self.metrics.child(self.metrics.log_failures, "timeout").inc()
            return False
        except OSError:  # the log counts its failed writes, by reason
            return False
        except Exception:  # e.g. the log closed under it at shutdown: not logged, so 503
            self.metrics.child(self.metrics.log_failures, "other").inc()
            return False
        return True

    async def _invalid(
        self,
        request: Request,
        validated: ValidationResult,
        request_id: str,
        route: str,
        started: float,
        served: ServedModel | None = None,
    ) -> Response:
        """A request whose records or tensors do not hold: 422 naming the first problems.
        Logged as a summary (how many problems of each kind, the first few by where and why,
        never their values), within the caller's budget."""
        self.metrics.refused("validation")
        errors = validated.errors
        shown = [e.to_dict() for e in errors[:MAX_ERRORS]]
        brief = summary([e.type for e in errors], shown)
        if self._refusals.allow(self._caller(request), _RECORD_BYTES + len(orjson.dumps(brief))):
            await self._logged(
                "prediction", request_id, route, 422, started, problem=brief, served=served
            )
        else:
            self.metrics.refusals_unlogged.inc()
        return refusal(422, shown, {"X-Request-Id": request_id}, total=len(errors))

    async def _failed(
        self,
        answer: Response,
        request_id: str,
        route: str,
        started: float,
        served: ServedModel,
        kind: str = "prediction",
    ) -> None:
        """Log a request the model did not answer (its status and why: a 422 the model
        raised, a 503 when saturated, a 504 too slow), so that a rollout's analysis counts a
        candidate's failures. Not held to the caller's refusal budget: the failure is the
        server's, not the caller's, and a budget would hide how often a candidate fails. The
        client is answered ``answer`` whether or not it could be logged."""
        try:
            said = orjson.loads(bytes(answer.body))
            problem = said.get("detail", said.get("error")) if isinstance(said, dict) else None
        except ValueError:
            problem = None
        problem = str(problem or answer.status_code)[:300]
        await self._logged(
            kind, request_id, route, answer.status_code, started, problem=problem, served=served
        )

    def _log_failed(self) -> Response:
        self.metrics.refused("log_failed")
        return error(503, "the prediction could not be logged; retry", {"Retry-After": "1"})

    async def _compute(
        self, arm: Arm, validated: ValidationResult
    ) -> tuple[np.ndarray, np.ndarray | None] | Response:
        """The outputs of ``arm``'s model through its micro-batcher, or the 413/503/504/422
        to answer."""
        metrics = self.metrics
        batcher = arm.batcher
        if validated.rows > batcher.max_queue_rows:
            metrics.refused("too_large")
            return error(
                413,
                f"{validated.rows:,} rows in one request; at most "
                f"{batcher.max_queue_rows:,} (split the request)",
            )
        try:
            labels, proba = await batcher.submit(validated.feeds, validated.rows)
        except Saturated:
            metrics.saturated.inc()
            metrics.refused("overloaded")
            return error(503, "the server is saturated; retry shortly", {"Retry-After": "1"})
        except TimeoutError:
            metrics.refused("timeout")
            return error(504, f"no answer within {self.config.request_timeout_seconds:g} s")
        except Exception as exc:  # ONNX Runtime refused these inputs
            metrics.refused("model_error")
            return error(
                422, f"the model could not score these inputs: {str(exc).splitlines()[0][:200]}"
            )
        if arm.model.is_classifier:
            for label in labels:
                metrics.child(metrics.predicted, label).inc()
        else:
            metrics.null_outputs.inc(int(np.isnan(labels).sum()))
        return labels, proba

    # -- the routes --------------------------------------------------------------------------

    @_route("GET", "/v2")
    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse(server_metadata())

    @_route("GET", "/v2/health/live")
    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    @_route("GET", "/v2/health/ready")
    async def ready(self, request: Request) -> Response:
        return self._readiness()

    @_route("GET", "/v2/models/{name}/ready")
    async def model_ready(self, request: Request) -> Response:
        return self._unserved(request) or self._readiness()

    @_route("GET", "/v2/models/{name}/versions/{version}/ready")
    async def version_ready(self, request: Request) -> Response:
        return await self.model_ready(request)

    @_route("GET", "/v2/models/{name}")
    async def model_metadata(self, request: Request) -> Response:
        unserved = self._unserved(request)
        if unserved is not None:
            return unserved
        if self.state.model is None:
            return self._not_ready()
        return JSONResponse(_metadata(self.state.model))

    @_route("GET", "/v2/models/{name}/versions/{version}")
    async def version_metadata(self, request: Request) -> Response:
        return await self.model_metadata(request)

    @_route("GET", "/v2/models/{name}/config")
    async def model_config(self, request: Request) -> Response:
        unserved = self._unserved(request)
        if unserved is not None:
            return unserved
        if self.state.model is None:
            return self._not_ready()
        return JSONResponse(_configuration(self.state.model, self.config.max_queue_rows))

    @_route("GET", "/v2/models/{name}/versions/{version}/config")
    async def version_config(self, request: Request) -> Response:
        return await self.model_config(request)

    @_route("POST", "/v2/models/{name}/versions/{version}/infer")
    async def version_infer(self, request: Request) -> Response:
        return await self.infer(request)

    @_route("POST", "/v2/models/{name}/infer")
    async def infer(self, request: Request) -> Response:
        unserved = self._unserved(request)
        if unserved is not None:
            return unserved
        state = self.state
        routing = state.routing
        if routing is None or not state.ready:
            return self._not_ready()
        if request.headers.get("content-encoding", "identity") != "identity":
            self.metrics.refused("unsupported_media_type")
            return error(415, "compressed bodies are not supported; send the body as is")
        raw, failed = await self._body(request)
        if failed is not None:
            return failed
        length = header_length(request.headers.get(HEADER_LENGTH), len(raw))
        if isinstance(length, str):
            self.metrics.refused("validation")
            return error(400, length)
        body, failed = self._json(raw if length is None else memoryview(raw)[:length])
        if failed is not None and length is not None:
            return error(400, f"the first {length:,} bytes ({HEADER_LENGTH}) are not valid JSON")
        if failed is not None:
            return failed
        if not isinstance(body, dict):
            self.metrics.refused("validation")
            return error(422, [{"loc": ["body"], "type": "dict_type", "msg": "expected an object"}])
        problem = attach_binary_inputs(body, memoryview(raw)[length or len(raw) :])
        inputs = body.get("inputs")
        version = request.path_params.get("version")
        # A version in the path pins that model (the candidate's too, during a rollout).
        arm = (
            routing.choose(self._sticky_key(routing, request, inputs, tensors=True))
            if version is None
            else next(a for a in routing.arms if a.model.version == version)
        )
        model = arm.model
        names = ["label", "probabilities"] if model.is_classifier else ["value"]
        wanted = requested_outputs(body, names) if problem is None else problem
        if isinstance(wanted, str):
            self.metrics.refused("validation")
            return error(400, wanted)
        validated = arm.tensors.validate(inputs)
        self.metrics.inputs(validated)  # what came in counts, served or refused
        started = time.perf_counter()
        route = "/v2/models/{name}/infer"
        if validated.errors:
            assert state.ids is not None
            issued = state.ids.issue()
            return await self._invalid(request, validated, issued, route, started, model)
        computed = await self._compute(arm, validated)
        if isinstance(computed, Response):
            assert state.ids is not None
            await self._failed(computed, state.ids.issue(), route, started, model)
            return computed
        labels, proba = computed
        # The protocol returns the client's id to the client; the log keeps its keyed hash
        # and the server's own id (in X-Request-Id: the one feedback takes).
        ids = state.ids
        assert ids is not None
        request_id = ids.issue()
        self._answered(routing, arm)
        shadow = routing.mirrors() if version is None else None
        if shadow is not None:
            self._mirror(shadow, inputs, request_id, route, tensors=True)
        given = body.get("id")
        echoed = str(given)[:100] if given else request_id
        outputs = _tensor_outputs(model, labels, proba)
        if not await self._logged(
            "prediction",
            request_id,
            route,
            200,
            started,
            inputs=_logged_inputs(model, validated),
            outputs=outputs,
            client_id=keyed_hash(ids.key, str(given)) if given else None,
            served=model,
        ):
            return self._log_failed()
        return _inference_answer(
            {"model_name": model.name, "model_version": model.version, "id": echoed},
            outputs,
            wanted,
            {"label": labels, "probabilities": proba, "value": labels},
            {"X-Request-Id": request_id},
        )

    @_route("POST", "/v1/predict")
    async def predict(self, request: Request) -> Response:
        return await self._records(request, preview=False)

    @_route("POST", "/v1/preview")
    async def preview(self, request: Request) -> Response:
        return await self._records(request, preview=True)

    async def _records(self, request: Request, *, preview: bool) -> Response:
        """``/v1/predict``: records in, the answer of the model the routing chooses; or
        ``/v1/preview``: the answer of the rollout's candidate, whatever its share of traffic
        (a blue-green's smoke test before the switch), logged as ``preview``."""
        state = self.state
        routing = state.routing
        if routing is None or not state.ready:
            return self._not_ready()
        if preview and routing.candidate is None:
            return error(
                409,
                "no candidate to preview: /v1/preview answers with the candidate of the "
                "deployment's active rollout (mlplan serve --deployment NAME, then mlplan "
                "deploy MODEL --name NAME --strategy blue-green)",
            )
        body, failed = await self._body_json(request)
        if failed is not None:
            return failed
        if not isinstance(body, dict) or "records" not in body:
            self.metrics.refused("validation")
            return error(422, _NO_RECORDS)
        records = body["records"]
        arm = (
            routing.candidate
            if preview and routing.candidate is not None
            else routing.choose(self._sticky_key(routing, request, records))
        )
        model = arm.model
        if model.kind != "tabular":
            self.metrics.refused("validation")
            return error(
                422,
                f"{model.name} takes {model.kind} tensors, not records: "
                f"POST /v2/models/{model.name}/infer",
            )
        route = "/v1/preview" if preview else "/v1/predict"
        kind = "preview" if preview else "prediction"
        started = time.perf_counter()
        request_id = self._next_id()
        validated = arm.records.validate(records)
        self.metrics.inputs(validated)  # what came in counts, served or refused
        if validated.errors:
            return await self._invalid(request, validated, request_id, route, started, model)
        computed = await self._compute(arm, validated)
        if isinstance(computed, Response):
            await self._failed(computed, request_id, route, started, model, kind)
            return computed
        labels, proba = computed
        if not preview:
            self._answered(routing, arm)
            shadow = routing.mirrors()
            if shadow is not None:
                self._mirror(shadow, records, request_id, route, tensors=False)
        predictions = _record_outputs(model, labels, proba)
        if not await self._logged(
            kind, request_id, route, 200, started, inputs=records, outputs=predictions, served=model
        ):
            return self._log_failed()
        return JSONResponse(
            {
                "request_id": request_id,
                "model": {"name": model.name, "version": model.version},
                "predictions": predictions,
            },
            headers={"X-Request-Id": request_id},
        )

    def _sticky_key(
        self, routing: Routing, request: Request, given: Any, *, tensors: bool = False
    ) -> str | None:
        """The request's sticky key (the plan's ``rollout.sticky``) while traffic is split:
        a header's value, or a field of the first record (of the first row of the input
        tensor of that name); None when there is none (the request is routed at random)."""
        if routing.mode != "split" or routing.sticky is None:
            return None
        kind, _, name = routing.sticky.partition(":")
        if kind == "header":
            return request.headers.get(name)
        value = None
        if not isinstance(given, list) or not given or not isinstance(given[0], dict):
            return None
        if not tensors:
            value = given[0].get(name)
        else:
            for tensor in given:
                data = tensor.get("data") if tensor.get("name") == name else None
                if isinstance(data, list) and data:
                    value = data[0]
                    while isinstance(value, list) and value:  # nested row-major data
                        value = value[0]
                    break
        return None if value is None or isinstance(value, dict | list) else str(value)

    def _answered(self, routing: Routing, arm: Arm) -> None:
        """Count an answer by the arm that gave it, during a rollout."""
        if routing.candidate is not None:
            self.metrics.answered(arm is routing.candidate)

    def _mirror(self, arm: Arm, given: Any, request_id: str, route: str, *, tensors: bool) -> None:
        """Score ``given`` (the request's records, or its input tensors) with the shadow
        ``arm`` off the request path: a task of its own, whose errors and slowness reach
        only its ``shadow`` log record, never the client. Past ``_MAX_MIRRORS`` mirrors in
        flight, the request is not mirrored (counted as dropped)."""
        if len(self._mirrors) >= _MAX_MIRRORS:
            self.metrics.shadowed("dropped")
            return
        task = asyncio.get_running_loop().create_task(
            self._shadow(arm, given, request_id, route, tensors=tensors)
        )
        self._mirrors.add(task)
        task.add_done_callback(self._mirrors.discard)

    async def _shadow(
        self, arm: Arm, given: Any, request_id: str, route: str, *, tensors: bool
    ) -> None:
        """The shadow's answer to one mirrored request, logged beside the stable's (the
        same request id, kind ``shadow``) with its own latency and status: 200, 422 (its
        validator or model refused the inputs), 500 (it raised), 504 (too slow)."""
        model = arm.model
        started = time.perf_counter()
        status, outputs = 200, None
        problem: Any = None
        try:
            validated = (arm.tensors if tensors else arm.records).validate(given)
            if validated.errors:
                status = 422
                problem = summary([e.type for e in validated.errors], [])
            else:
                labels, proba = await arm.batcher.submit(validated.feeds, validated.rows)
                outputs = (
                    _tensor_outputs(model, labels, proba)
                    if tensors
                    else _record_outputs(model, labels, proba)
                )
        except Saturated:
            self.metrics.shadowed("dropped")
            return
        except TimeoutError:
            status, problem = 504, f"no answer within {self.config.request_timeout_seconds:g} s"
        except Exception as exc:  # the shadow's failure is its own, and only logged
            status = 500
            problem = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        self.metrics.shadowed("scored" if status == 200 else "failed")
        await self._logged(
            "shadow",
            request_id,
            route,
            status,
            started,
            outputs=outputs,
            problem=problem,
            served=model,
        )

    @_route("POST", "/v1/feedback")
    async def feedback(self, request: Request) -> Response:
        if self.state.model is None or not self.state.ready:
            return self._not_ready()
        body, failed = await self._body_json(request)
        if failed is not None:
            return failed
        assert self.state.feedback is not None
        kept, problems = self.state.feedback.validate(body)
        if problems:
            self.metrics.refused("validation")
            return refusal(422, problems)
        started = time.perf_counter()
        if not await self._logged(
            "feedback", body["request_id"], "/v1/feedback", 202, started, outputs=kept
        ):
            return self._log_failed()
        return JSONResponse({"accepted": True, "request_id": body["request_id"]}, status_code=202)

    @_route("GET", "/metrics")
    async def prometheus(self, request: Request) -> Response:
        text, media_type = self.metrics.exposition()
        return Response(text, media_type=media_type)

    def extra(self, route: ExtraRoute) -> Endpoint:
        """The endpoint of a route another package adds (:mod:`._extra`): its body read as
        JSON, its handler run in a worker thread with the workspace and the caller's key."""
        handler = route.handler

        async def endpoint(request: Request) -> Response:
            ws = self.state.ws
            if ws is None:
                return self._not_ready()
            body = None
            if request.method == "POST":
                raw, failed = await self._body(request)
                if failed is not None:
                    return failed
                if raw.strip():
                    body, failed = self._json(raw)
                    if failed is not None:
                        return failed
            key = None
            if self.state.auth != "none":
                assert self.state.keys is not None
                key = self.state.keys.authenticate(request.scope.get(TOKEN))
            call = RouteCall(ws, dict(request.path_params), body, key)
            status, content = await run_in_threadpool(handler, call)
            if status >= 400:
                return error(status, content)
            return JSONResponse(content, status_code=status)

        return endpoint


def register_routes(front: Front, routes: Routes, extras: tuple[ExtraRoute, ...] = ()) -> None:
    """Serve every endpoint of ``routes``, and the ``extras`` another package adds, through
    ``front``, each behind the role that ``ROUTE_ROLES`` (or the extra route) declares for it
    (an endpoint without one fails here)."""
    roles = route_roles(extras)
    endpoints: dict[tuple[str, str], Endpoint] = {
        key: getattr(routes, name)  # a bound method, looked up once
        for key, name in _ENDPOINTS.items()
    }
    endpoints |= {(e.method, e.path): routes.extra(e) for e in extras}
    for (method, path), endpoint in endpoints.items():
        needed = roles[(method, path)]
        front.add_route(
            method, path, endpoint if needed == "public" else _guarded(endpoint, routes, needed)
        )


def _guarded(endpoint: Endpoint, routes: Routes, needed: str) -> Endpoint:
    authorize = routes.authorize

    async def guarded(request: Request) -> Response:
        denied = authorize(request, needed)
        return denied if denied is not None else await endpoint(request)

    return guarded


_MAX_MIRRORS = 256
"""Mirrored requests a shadow may have in flight; past it, requests are not mirrored (a slow
shadow never holds more than this in memory, and never slows the clients)."""

_RECORD_BYTES = 300
"""About what a log record takes beside its error (ids, time, model, route, status)."""

_NO_RECORDS = [
    {"loc": ["body", "records"], "type": "missing", "msg": "field required: a list of records"}
]


def _inference_answer(
    head: dict[str, Any],
    outputs: list[dict[str, Any]],
    wanted: dict[str, bool],
    arrays: dict[str, np.ndarray | None],
    headers: dict[str, str],
) -> Response:
    """The answer of an inference: the outputs asked for, in JSON, or as binary tensors
    after the JSON header (its length in ``Inference-Header-Content-Length``)."""
    answered: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for output in outputs:
        name = output["name"]
        if name not in wanted:
            continue
        values = arrays[name]
        if not wanted[name] or values is None:
            answered.append(output)
            continue
        raw = binary_tensor(output["datatype"], values)
        chunks.append(raw)
        answered.append(
            {k: output[k] for k in ("name", "datatype", "shape")}
            | {"parameters": {"binary_data_size": len(raw)}}
        )
    if not chunks:
        return JSONResponse(head | {"outputs": answered}, headers=headers)
    header = orjson.dumps(head | {"outputs": answered}, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(
        b"".join([header, *chunks]),
        media_type="application/octet-stream",
        headers=headers | {HEADER_LENGTH: str(len(header))},
    )


def _configuration(model: ServedModel, max_rows: int) -> dict[str, Any]:
    """The model's configuration as Triton's model configuration extension gives it (the
    batch dimension left out of ``dims``: ``max_batch_size`` rows at most per request)."""
    metadata = _metadata(model)

    def tensors(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "name": spec["name"],
                "data_type": "TYPE_STRING"
                if spec["datatype"] == "BYTES"
                else "TYPE_" + spec["datatype"],
                "dims": spec["shape"][1:],
            }
            for spec in specs
        ]

    return {
        "name": model.name,
        "platform": metadata["platform"],
        "backend": "onnxruntime",
        "max_batch_size": max_rows,
        "input": tensors(metadata["inputs"]),
        "output": tensors(metadata["outputs"]),
    }


def _metadata(model: ServedModel) -> dict[str, Any]:
    """The model's metadata in the Open Inference Protocol."""
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
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": "onnxruntime_onnx",
        "inputs": inputs,
        "outputs": outputs,
    }


def _record_outputs(
    model: ServedModel, labels: np.ndarray, proba: np.ndarray | None
) -> list[dict[str, Any]]:
    """The predictions of a ``/v1`` answer: each record's label and probabilities, or its
    value (NaN and infinities, which JSON cannot hold, are written as null by orjson)."""
    if not model.is_classifier:
        return [{"value": v} for v in labels.tolist()]
    assert proba is not None
    classes = model.classes
    return [
        {"label": label, "probabilities": dict(zip(classes, row, strict=True))}
        for label, row in zip(labels.tolist(), proba.tolist(), strict=True)
    ]


def _tensor_outputs(
    model: ServedModel, labels: np.ndarray, proba: np.ndarray | None
) -> list[dict[str, Any]]:
    """The outputs of an Open Inference answer: labels and probabilities, or values."""
    if not model.is_classifier:
        return [
            {"name": "value", "datatype": "FP64", "shape": [len(labels)], "data": labels.tolist()}
        ]
    assert proba is not None
    return [
        {"name": "label", "datatype": "BYTES", "shape": [len(labels)], "data": labels.tolist()},
        {
            "name": "probabilities",
            "datatype": "FP32",
            "shape": list(proba.shape),
            "data": proba.astype(np.float32).ravel().tolist(),
        },
    ]


def _logged_inputs(model: ServedModel, validated: ValidationResult) -> list[dict[str, Any]]:
    """What the log keeps of tensors: tabular rows as records, image and window tensors by
    their shapes."""
    feeds = validated.feeds
    if model.kind == "tabular":
        return [
            {name: array[i].ravel().tolist()[0] for name, array in feeds.items()}
            for i in range(validated.rows)
        ]
    return [{name: list(array.shape) for name, array in feeds.items()}]
