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
from mlplan.serving._ids import RequestIds
from mlplan.serving._keys import KeyRing
from mlplan.serving._log import LOG_DIR, PiiPolicy, PredictionLog, log_key
from mlplan.serving._metrics import ServerMetrics
from mlplan.serving._model import load_served_model
from mlplan.serving._records import finish_serving, start_serving
from mlplan.serving._state import ServerState
from mlplan.serving._validate import RecordValidator, TensorValidator
from mlplan.workspace import Workspace

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
            if state.model is not None:
                try:
                    await self._start_batcher()
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
                    if state.batcher is not None:
                        await state.batcher.stop()
                        state.batcher = None
                    self._not_ready(exc)
            if state.ready and state.compactor is not None:
                state.compactor.start()  # what earlier servers left, then each closed segment
        finally:
            state.loaded.set()

    def _load_model(self) -> None:
        """Load, verify and warm up the package (in a thread, while live answers)."""
        try:
            self._load()
        except Exception as exc:  # any failure: not ready, and saying why, never "loading"
            self.state.model = None
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
        security = ws.plan.deployment.security
        model = load_served_model(ws, config.model)
        # The log's key signs request ids and hashes what a client chose: every worker, and
        # every restart, shares it (with the log off too, so feedback ids still verify).
        key = log_key(ws.root / ".mlplan" / LOG_DIR / model.name)
        state.ids = RequestIds(key)
        state.records = RecordValidator(
            model.signature,
            unseen_categories=security.unseen_categories,
            out_of_range=security.out_of_range,
            key=key,
        )
        state.tensors = TensorValidator(model.signature, state.records)
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
        state.model = model
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

    async def _start_batcher(self) -> None:
        state, config = self.state, self.config
        assert state.model is not None
        batcher = MicroBatcher(
            state.model.run,
            max_batch_rows=config.max_batch_rows,
            max_wait_ms=config.max_wait_ms,
            max_queue_rows=config.max_queue_rows,
            timeout_seconds=config.request_timeout_seconds,
            observe=self.metrics.observe_batch,
        )
        await batcher.start()
        self.metrics.queued = lambda: batcher.queued_rows
        state.batcher = batcher

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
        if state.batcher is not None:
            await state.batcher.stop()  # in-flight requests get their answers
        if state.log is not None:
            state.log.close()  # everything acknowledged or queued is on disk
        self._log_deadlines.cancel()
        if state.run_id is not None and state.model is not None:
            self._finish_serving()
        metrics.leave()  # several workers: its live gauges leave the sums
        print(f"mlplan serve: {self.config.model} stopped", flush=True)

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
