"""Start-up and shut-down of one server process.

Before the server listens: the plan, the auth rule and the keys (a plan that forbids the
address stops it here). Then it is live at once, and ready once the model is loaded, verified
and warmed up in a thread: the validators, the prediction log, the micro-batcher, the keys'
refresher and the ``serve`` run follow. Once ready, the log is compacted in the background
(never before: a restart is ready in seconds whatever the log's size). On shutdown it stops
being ready, abandons a compaction under way, lets in-flight requests get their answers,
closes the log with everything acknowledged on disk, and closes the run with what the
server did.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import os
import sys
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mlplan.errors import MlplanError, UsageError
from mlplan.modeling import get_model
from mlplan.serving._batcher import Deadlines, MicroBatcher
from mlplan.serving._compactor import LogCompactor
from mlplan.serving._config import is_loopback
from mlplan.serving._feedback import FeedbackValidator
from mlplan.serving._health import HEALTH_KIND, HealthSampler
from mlplan.serving._ids import RequestIds
from mlplan.serving._keys import KeyRing
from mlplan.serving._log import LOG_DIR, PiiPolicy, PredictionLog, log_key
from mlplan.serving._metrics import ServerMetrics
from mlplan.serving._model import ServedModel, load_served_model
from mlplan.serving._records import finish_serving, start_serving
from mlplan.serving._router import Arm, RouteFollower, Routing
from mlplan.serving._state import ServerState
from mlplan.serving._validate import RecordValidator, TensorValidator
from mlplan.workspace import DeploymentRoute, Workspace, deployment_route

__all__ = ["Lifespan"]


class Lifespan:
    """The app's lifespan (``FastAPI(lifespan=...)``): ``async with lifespan(app):`` serves."""

    def __init__(
        self, state: ServerState, metrics: ServerMetrics, log_deadlines: Deadlines
    ) -> None:
        self.state = state
        self.metrics = metrics
        self.config = state.config
        self._log_deadlines = log_deadlines
        self._publishing: list[asyncio.Task[None]] = []
        self._key = b""  # the log's key, once loading read it
        self._stable: tuple[str, ServedModel] | None = None  # loaded, not yet batched
        self._health = HealthSampler(self._queued)

    @contextlib.asynccontextmanager
    async def __call__(self, app: Any) -> AsyncIterator[None]:
        self._prepare()
        # Live at once; ready once the model is loaded and warmed up.
        loading = asyncio.create_task(self._bring_up())
        yield
        await loading
        await self._shut_down()

    # -- start-up ----------------------------------------------------------------------------

    def _prepare(self) -> None:
        """What must hold before the server listens: the plan, the auth rule, the keys."""
        state, config = self.state, self.config
        ws = Workspace(Path(config.root), store_url=config.store_url)
        state.ws = ws
        state.auth = ws.plan.deployment.security.auth
        if state.auth == "none" and not is_loopback(config.host):
            raise UsageError(
                f"deployment.security.auth is 'none', which is allowed only on loopback; "
                f"got --host {config.host}. Create keys (mlplan keys create) instead"
            )
        state.keys = KeyRing(ws, refresh_seconds=config.key_refresh_seconds)
        state.keys.reload()

    async def _bring_up(self) -> None:
        state, metrics = self.state, self.metrics
        try:
            await asyncio.to_thread(self._load_model)
            metrics.log_stats = None if state.log is None else state.log.stats
            if self._stable is not None:
                try:
                    await self._start_routing()
                except Exception as exc:
                    self._not_ready(exc)
            metrics.ready.set(1 if state.ready else 0)
            if metrics.multiprocess:
                self._publishing.append(asyncio.create_task(metrics.publish_every_second()))
            if state.ready:
                try:
                    await self._start_serving()
                except Exception as exc:  # e.g. the store: no serve run, so not ready
                    metrics.ready.set(0)
                    await self._stop_routing()
                    self._not_ready(exc)
            if state.ready and state.compactor is not None:
                state.compactor.start()  # what earlier servers left, then each closed segment
            if state.ready and state.log is not None and self.config.health_seconds > 0:
                self._publishing.append(asyncio.create_task(self._write_health()))
        finally:
            state.loaded.set()

    def _load_model(self) -> None:
        """Load, verify and warm up the package (in a thread, while live answers)."""
        try:
            self._load()
        except Exception as exc:  # any failure: not ready, and saying why, never "loading"
            self._stable = None
            self._not_ready(exc)

    def _not_ready(self, exc: Exception) -> None:
        """Whatever failed while coming up leaves the server live but not ready, with the
        reason on its ready routes and printed at once (an unexpected error with its
        traceback)."""
        expected = isinstance(exc, MlplanError)
        reason = str(exc) if expected else f"{type(exc).__name__}: {exc}"
        self.state.reason = reason
        print(f"mlplan serve: {self.config.model} is not ready: {reason}", flush=True)
        if not expected:
            traceback.print_exception(exc, file=sys.stdout)
            sys.stdout.flush()

    def _load(self) -> None:
        state, config = self.state, self.config
        ws = state.ws
        assert ws is not None
        model = load_served_model(ws, config.model)
        # The log's key signs request ids and hashes what a client chose: every worker, and
        # every restart, shares it (with the log off too, so feedback ids still verify).
        key = log_key(ws.root / ".mlplan" / LOG_DIR / model.name)
        self._key = key
        state.ids = RequestIds(key)
        state.feedback = FeedbackValidator(state.ids, classes=model.classes)
        policy = ws.plan.deployment.logging
        if policy.predictions:
            pii = frozenset(
                c for spec in ws.plan.datasets.values() for c in (spec.pii_columns or [])
            )
            folder = ws.root / ".mlplan" / LOG_DIR / model.name
            # Compacted in the background once ready, never here (see _bring_up).
            state.compactor = LogCompactor(
                folder, retention_days=policy.retention_days, report=self._compaction_failed
            )
            state.log = PredictionLog(
                folder,
                mode=policy.mode,
                pii=PiiPolicy(pii, policy.pii, key),
                segment_bytes=int(policy.segment_mb * 1024 * 1024),
                on_rotate=state.compactor.wake,
            )
        self._stable = (get_model(ws, config.model).ref, model)
        state.reason = None

    def _compaction_failed(self, exc: Exception) -> None:
        """A background compaction failed (the next pass tries again): said at once."""
        print(
            f"mlplan serve: compacting the prediction log of {self.config.model} failed "
            f"(tried again later): {type(exc).__name__}: {exc}",
            flush=True,
        )
        if not isinstance(exc, MlplanError):
            traceback.print_exception(exc, file=sys.stdout)
            sys.stdout.flush()

    async def _start_routing(self) -> None:
        """The stable model's arm, batcher started; serving a deployment, the candidate of
        its rollout too, loaded before the server is ready, and the follower that keeps the
        routing in step with the store from then on."""
        state, config = self.state, self.config
        assert self._stable is not None and state.ws is not None
        ref, model = self._stable
        rollout = state.ws.plan.rollout
        routing = Routing(
            await self._arm(ref, model, shadow=False),
            shadow_share=rollout.shadow_share,
            sticky=rollout.sticky,
        )
        self.metrics.queued = self._queued
        if config.deployment is None:
            state.routing = routing  # ready from here
            return
        ws, name = state.ws, config.deployment
        try:
            route = await asyncio.to_thread(deployment_route, ws, name)
        except Exception:
            await routing.stable.batcher.stop()  # not ready: nothing left running
            raise
        follower = RouteFollower(
            routing,
            DeploymentRoute(name, ref),
            read=lambda: deployment_route(ws, name),
            load=self._load_arm,
            publish=self._publish,
            report=self._report,
            refresh_seconds=config.route_refresh_seconds,
        )
        # Ready only once the routing is the store's: a server started mid-rollout answers
        # its first request as the rollout says, the candidate loaded.
        state.routing = (await follower.apply(route)) if state.routing is None else state.routing
        state.follower = follower
        follower.start()

    def _queued(self) -> int:
        """Rows waiting in every arm's batcher."""
        routing = self.state.routing
        return 0 if routing is None else sum(a.batcher.queued_rows for a in routing.arms)

    def _publish(self, routing: Routing) -> None:
        self.state.routing = routing
        print(
            f"mlplan serve: {self.config.deployment} routes {_describe(routing)}",
            flush=True,
        )

    def _report(self, line: str) -> None:
        print(f"mlplan serve: {self.config.deployment}: {line}", flush=True)

    async def _load_arm(self, ref: str, shadow: bool) -> Arm:
        """A package version of the deployment's rollout as an arm (loaded in a thread)."""
        assert self.state.ws is not None
        model = await asyncio.to_thread(load_served_model, self.state.ws, ref)
        return await self._arm(ref, model, shadow=shadow)

    async def _arm(self, ref: str, model: ServedModel, *, shadow: bool) -> Arm:
        """``model`` with its validators and a micro-batcher of its own, started. A shadow's
        batches always run in a thread, never in the event loop that answers clients."""
        config = self.config
        assert self.state.ws is not None
        security = self.state.ws.plan.deployment.security
        records = RecordValidator(
            model.signature,
            unseen_categories=security.unseen_categories,
            out_of_range=security.out_of_range,
            key=self._key,
        )
        batcher = MicroBatcher(
            model.run,
            max_batch_rows=config.max_batch_rows,
            max_wait_ms=config.max_wait_ms,
            max_queue_rows=config.max_queue_rows,
            inline_rows=0 if shadow else 64,
            timeout_seconds=config.request_timeout_seconds,
            observe=None if shadow else self._observe_batch,
        )
        await batcher.start()
        return Arm(ref, model, records, TensorValidator(model.signature, records), batcher)

    def _observe_batch(self, requests: int, rows: int) -> None:
        self.metrics.observe_batch(requests, rows)
        self._health.observe_batch(requests, rows)

    async def _write_health(self) -> None:
        """Every ``health_seconds``, this process's health as a record of its log."""
        state, config = self.state, self.config
        assert state.log is not None and state.model is not None
        while True:
            await asyncio.sleep(config.health_seconds)
            with contextlib.suppress(Exception):  # a full disk must not stop the server
                state.log.record(
                    kind=HEALTH_KIND,
                    request_id=f"{self._health.writer}-{self._health.samples}",
                    model=state.model.name,
                    version=state.model.version,
                    route="health",
                    status=200,
                    latency_ms=0.0,
                    outputs=self._health.sample(),
                    deployment=config.deployment,
                )

    async def _stop_routing(self) -> None:
        """Stop following the store, then every arm's batcher (in-flight requests get their
        answers)."""
        state = self.state
        if state.follower is not None:
            await state.follower.stop()
        if state.routing is not None:
            for arm in state.routing.arms:
                await arm.batcher.stop()

    async def _start_serving(self) -> None:
        """Once ready: the keys' refresher, the collector's freeze, and the ``serve`` run."""
        state, config = self.state, self.config
        assert state.ws is not None and state.model is not None and state.keys is not None
        if config.key_refresh_seconds > 0:
            state.keys.refresh_in_background()
        if config.freeze_gc:
            # What loading made lives as long as the server process: keep it out of the
            # collector's way, so collections stay short under load.
            gc.collect()
            gc.freeze()
        state.started_at = dt.datetime.now(dt.UTC).isoformat()
        info = get_model(state.ws, config.model)
        state.run_id = await asyncio.to_thread(
            start_serving,
            state.ws,
            info,
            {
                "version": state.model.version,
                "host": config.host,
                "auth": state.auth,
                "log": None if state.log is None else state.log.mode,
                "pid": os.getpid(),
                "deployment": config.deployment,
            },
        )
        print(f"mlplan serve: {info.name} ready ({info.ref})", flush=True)

    # -- shut-down ---------------------------------------------------------------------------

    async def _shut_down(self) -> None:
        state, metrics = self.state, self.metrics
        state.stopping = True
        metrics.ready.set(0)
        for task in self._publishing:
            task.cancel()
        if state.compactor is not None:  # a segment under way is abandoned, left whole
            await asyncio.to_thread(state.compactor.stop)
        if state.keys is not None:
            state.keys.stop()
        await self._stop_routing()  # in-flight requests get their answers
        if state.log is not None:
            state.log.close()  # everything acknowledged or queued is on disk
        self._log_deadlines.cancel()
        if state.run_id is not None and state.model is not None:
            self._finish_serving()
        metrics.leave()  # several workers: its live gauges leave the sums
        print(f"mlplan serve: {self.config.deployment or self.config.model} stopped", flush=True)

    def _finish_serving(self) -> None:
        """Close the ``serve`` run with what the server answered and logged."""
        state = self.state
        assert state.ws is not None and state.run_id is not None and state.model is not None
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


def _describe(routing: Routing) -> str:
    """A routing in a few words, for the server's output."""
    stable = routing.stable.ref
    candidate = routing.candidate
    if candidate is None:
        return f"every request to {stable}"
    if routing.mode == "shadow":
        return f"every request to {stable}, {routing.shadow_share:g}% mirrored to {candidate.ref}"
    if routing.mode == "split":
        return f"{100 - routing.weight:g}% to {stable}, {routing.weight:g}% to {candidate.ref}" + (
            f" (sticky by {routing.sticky})" if routing.sticky else ""
        )
    return f"every request to {stable} ({candidate.ref} loaded, {routing.state})"
