"""Adaptive micro-batching: concurrent requests gathered into one ONNX Runtime call.

The requests that reach the batcher in one turn of the event loop form one batch, and while
a large batch runs in a thread the requests that arrive wait together and form the next one:
the batch grows with the load, and a lone request never waits for company (``max_wait_ms``
can add a short wait for more). The queue is bounded in rows: past it, a request is refused
at once (the server answers 503 with Retry-After) instead of waiting longer and longer.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlplan.serving._validate import merge_feeds

__all__ = ["Deadlines", "MicroBatcher", "Saturated"]

Outputs = tuple[np.ndarray, np.ndarray | None]
Runner = Callable[[Mapping[str, np.ndarray]], Outputs]


class Saturated(Exception):
    """The queue is full: refuse now, retry later."""


class Deadlines:
    """Futures that fail with :class:`TimeoutError` when not done within ``seconds``.

    One timer serves every watched future (instead of a timer per request): the futures are
    kept in the order they were watched, which is the order of their deadlines.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._watched: collections.deque[tuple[float, asyncio.Future[Any]]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, future: asyncio.Future[Any]) -> None:
        """Fail ``future`` with TimeoutError unless it is done within the deadline."""
        watched = self._watched
        while watched and watched[0][1].done():
            watched.popleft()
        loop = future.get_loop()
        watched.append((loop.time() + self.seconds, future))
        if self._timer is None:
            self._timer = loop.call_at(watched[0][0], self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        watched = self._watched
        now = loop.time()
        while watched:
            deadline, future = watched[0]
            if not future.done():
                if deadline > now:
                    self._timer = loop.call_at(deadline, self._expire, loop)
                    return
                future.set_exception(TimeoutError())
            watched.popleft()

    def cancel(self) -> None:
        """Stop the timer (the loop is shutting down)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


@dataclass(slots=True)
class _Job:
    feeds: Mapping[str, np.ndarray]
    rows: int
    done: asyncio.Future[Outputs]


class MicroBatcher:
    """Batches requests for ``run`` (which takes feeds and returns labels/values and
    probabilities): small batches run in the event loop, where a hop to a thread would cost
    more than the batch; large ones in a thread, one at a time."""

    def __init__(
        self,
        run: Runner,
        *,
        max_batch_rows: int = 512,
        max_wait_ms: float = 0.0,
        max_queue_rows: int = 8192,
        inline_rows: int = 64,
        timeout_seconds: float | None = None,
        observe: Callable[[int, int], None] | None = None,
    ) -> None:
        self._run = run
        self.max_batch_rows = max_batch_rows
        self.max_wait = max_wait_ms / 1000
        self.max_queue_rows = max_queue_rows
        self.inline_rows = inline_rows
        self.queued_rows = 0
        self._observe = observe
        self._deadlines = None if timeout_seconds is None else Deadlines(timeout_seconds)
        self._pending: collections.deque[_Job] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False  # a drain is due in the loop
        self._waiting: asyncio.TimerHandle | None = None  # ... after max_wait_ms
        self._busy = False  # a batch runs in a thread
        self._idle: asyncio.Event | None = None

    async def start(self) -> None:
        """Bind to the server's event loop."""
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._idle.set()

    async def stop(self) -> None:
        """Finish what is queued (every waiting caller gets its answer), then stop."""
        if self._idle is not None:
            await self._idle.wait()
        if self._deadlines is not None:
            self._deadlines.cancel()

    async def submit(self, feeds: Mapping[str, np.ndarray], rows: int) -> Outputs:
        """The outputs for these rows, computed in some batch.

        Raises
        ------
        Saturated
            The queue already holds ``max_queue_rows`` rows.
        TimeoutError
            No answer within ``timeout_seconds``.
        """
        loop = self._loop
        assert loop is not None and self._idle is not None, "start() the batcher first"
        if self.queued_rows + rows > self.max_queue_rows:
            raise Saturated
        self.queued_rows += rows
        done: asyncio.Future[Outputs] = loop.create_future()
        self._pending.append(_Job(feeds, rows, done))
        self._idle.clear()
        if self._deadlines is not None:
            self._deadlines.watch(done)
        if not self._busy:
            if not self._scheduled:
                self._scheduled = True
                if self.max_wait > 0 and self.queued_rows < self.max_batch_rows:
                    self._waiting = loop.call_later(self.max_wait, self._drain)
                else:
                    loop.call_soon(self._drain)
            elif self._waiting is not None and self.queued_rows >= self.max_batch_rows:
                self._waiting.cancel()  # a full batch does not wait for more company
                self._waiting = None
                loop.call_soon(self._drain)
        return await done

    def _take(self) -> tuple[list[_Job], int]:
        """The next batch: queued jobs up to ``max_batch_rows`` (at least one)."""
        pending = self._pending
        jobs = [pending.popleft()]
        rows = jobs[0].rows
        while pending and rows + pending[0].rows <= self.max_batch_rows:
            job = pending.popleft()
            jobs.append(job)
            rows += job.rows
        self.queued_rows -= rows
        return jobs, rows

    def _drain(self) -> None:
        """In the loop: run the queued jobs, batch by batch; a large batch goes to a thread
        and the drain resumes when it is done."""
        self._scheduled = False
        if self._waiting is not None:
            self._waiting.cancel()
            self._waiting = None
        if self._busy:  # a batch runs in a thread; it drains the rest when it is done
            return
        while self._pending:
            jobs, rows = self._take()
            live = [job for job in jobs if not job.done.done()]  # timed-out callers are gone
            if not live:
                continue
            if len(live) < len(jobs):
                rows = sum(job.rows for job in live)
            if self._observe is not None:
                self._observe(len(live), rows)
            if rows > self.inline_rows:
                self._busy = True
                assert self._loop is not None
                self._loop.create_task(self._in_thread(live))
                return
            for group, outcome in self._outcomes(live):
                _deliver(group, outcome)
        self._settled()

    def _settled(self) -> None:
        if not self._pending and not self._busy and not self._scheduled:
            assert self._idle is not None
            self._idle.set()

    def _attempt(self, jobs: list[_Job]) -> Outputs | BaseException:
        try:
            return self._run(merge_feeds([job.feeds for job in jobs]))
        except Exception as exc:
            return exc

    def _outcomes(self, jobs: list[_Job]) -> list[tuple[list[_Job], Outputs | BaseException]]:
        """The batch's outcome for its jobs; when the batch fails and holds several, each
        job's own, run alone (one request's inputs failed the batch: only it fails)."""
        outcome = self._attempt(jobs)
        if isinstance(outcome, BaseException) and len(jobs) > 1:
            return [([job], self._attempt([job])) for job in jobs]
        return [(jobs, outcome)]

    async def _in_thread(self, jobs: list[_Job]) -> None:
        try:
            # The batch and its retries in one trip to the thread: a model that fails every
            # call (a broken shadow) costs a trip per batch, not one per request, each
            # contending for the GIL with the event loop that answers clients.
            for group, outcome in await asyncio.to_thread(self._outcomes, jobs):
                _deliver(group, outcome)
        finally:
            self._busy = False
            if self._pending:
                self._scheduled = True
                assert self._loop is not None
                self._loop.call_soon(self._drain)
            else:
                self._settled()


def _deliver(jobs: list[_Job], outcome: Outputs | BaseException) -> None:
    """Each caller's rows of the batch's outputs (or the batch's error)."""
    if isinstance(outcome, BaseException):
        for job in jobs:
            if not job.done.done():
                job.done.set_exception(outcome)
        return
    labels, proba = outcome
    if len(jobs) == 1:
        if not jobs[0].done.done():
            jobs[0].done.set_result(outcome)
        return
    start = 0
    for job in jobs:
        end = start + job.rows
        if not job.done.done():  # a caller that timed out is gone
            job.done.set_result((labels[start:end], None if proba is None else proba[start:end]))
        start = end
