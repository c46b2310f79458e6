"""Adaptive micro-batching: concurrent requests gathered into one ONNX Runtime call.

While one batch runs, the requests that arrive wait together and form the next one, so the
batch grows with the load and a lone request never waits for company (``max_wait_ms`` can
add a short wait for more). The queue is bounded in rows: past it, a request is refused at
once (the server answers 503 with Retry-After) instead of waiting longer and longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["MicroBatcher", "Saturated"]

Runner = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray | None]]


class Saturated(Exception):
    """The queue is full: refuse now, retry later."""


@dataclass
class _Job:
    feeds: dict[str, np.ndarray]
    rows: int
    done: asyncio.Future[tuple[np.ndarray, np.ndarray | None]]
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Batches requests for ``run`` (which takes feeds and returns labels/values and
    probabilities), one batch at a time, in a worker thread."""

    def __init__(
        self,
        run: Runner,
        *,
        max_batch_rows: int = 512,
        max_wait_ms: float = 0.0,
        max_queue_rows: int = 8192,
        inline_rows: int = 64,
        observe: Callable[[int, int], None] | None = None,
    ) -> None:
        self._run = run
        self.max_batch_rows = max_batch_rows
        self.max_wait = max_wait_ms / 1000
        self.max_queue_rows = max_queue_rows
        self.inline_rows = inline_rows
        self.queued_rows = 0
        self._observe = observe
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the batching loop (in the server's event loop)."""
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop(), name="mlplan-batcher")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._queue is not None:
            await self._queue.join()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(
        self, feeds: dict[str, np.ndarray], rows: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The outputs for these rows, computed in some batch.

        Raises
        ------
        Saturated
            The queue already holds ``max_queue_rows`` rows.
        """
        assert self._queue is not None, "start() the batcher first"
        if self.queued_rows + rows > self.max_queue_rows:
            raise Saturated
        self.queued_rows += rows
        done: asyncio.Future[tuple[np.ndarray, np.ndarray | None]] = (
            asyncio.get_running_loop().create_future()
        )
        await self._queue.put(_Job(feeds, rows, done))
        return await done

    async def _loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            jobs = [await queue.get()]
            rows = jobs[0].rows
            deadline = time.perf_counter() + self.max_wait
            while rows < self.max_batch_rows:
                try:
                    job = queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - time.perf_counter()
                    if left <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(queue.get(), left)
                    except TimeoutError:
                        break
                jobs.append(job)
                rows += job.rows
            try:
                await self._process(jobs, rows)
            finally:
                for _ in jobs:
                    queue.task_done()

    async def _process(self, jobs: list[_Job], rows: int) -> None:
        self.queued_rows -= rows
        if self._observe is not None:
            self._observe(len(jobs), rows)
        feeds = (
            jobs[0].feeds
            if len(jobs) == 1
            else {
                name: np.concatenate([job.feeds[name] for job in jobs], axis=0)
                for name in jobs[0].feeds
            }
        )
        try:
            if rows <= self.inline_rows:
                # A small batch costs less than a hop to a thread and back: run it here.
                labels, proba = self._run(feeds)
            else:
                labels, proba = await asyncio.to_thread(self._run, feeds)
        except Exception as exc:
            if len(jobs) == 1:
                if not jobs[0].done.done():
                    jobs[0].done.set_exception(exc)
                return
            # One request's inputs failed the batch: each runs alone, so only it fails.
            for job in jobs:
                try:
                    result = await asyncio.to_thread(self._run, job.feeds)
                except Exception as alone:
                    if not job.done.done():
                        job.done.set_exception(alone)
                else:
                    if not job.done.done():
                        job.done.set_result(result)
            return
        start = 0
        for job in jobs:
            end = start + job.rows
            if not job.done.done():  # a caller that timed out is gone
                job.done.set_result(
                    (labels[start:end], None if proba is None else proba[start:end])
                )
            start = end
