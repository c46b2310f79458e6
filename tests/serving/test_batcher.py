from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from mlplan.serving._batcher import Deadlines, MicroBatcher, Saturated


def test_concurrent_requests_share_calls_and_each_gets_its_own_rows() -> None:
    calls: list[int] = []
    gate = threading.Event()

    def run(feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        gate.wait(timeout=10)  # the first call holds the line while the others queue
        calls.append(len(feeds["x"]))
        return feeds["x"].ravel() * 10, np.column_stack([feeds["x"].ravel()] * 2)

    async def main() -> list[tuple[np.ndarray, np.ndarray | None]]:
        batcher = MicroBatcher(run, max_batch_rows=64, inline_rows=0)
        await batcher.start()
        first = asyncio.create_task(batcher.submit({"x": np.array([[0.0]])}, 1))
        await asyncio.sleep(0)  # let it start running (holds the gate)
        rest = [
            asyncio.create_task(
                batcher.submit({"x": np.arange(i * 3, i * 3 + 3, dtype=float).reshape(-1, 1)}, 3)
            )
            for i in range(1, 11)
        ]
        while batcher.queued_rows < 30:  # every other request is queued behind the first
            await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(first, *rest)
        await batcher.stop()
        return results

    results = asyncio.run(main())
    for i, (values, proba) in enumerate(results[1:], start=1):
        expected = np.arange(i * 3, i * 3 + 3)
        assert values.tolist() == (expected * 10).tolist()
        assert proba is not None and proba[:, 0].tolist() == expected.tolist()
    assert calls[0] == 1 and sum(calls) == 31 and len(calls) < 11  # the ten shared calls


def test_a_full_queue_refuses_at_once() -> None:
    release = threading.Event()

    def run(feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        release.wait(timeout=10)
        return feeds["x"].ravel(), None

    async def main() -> None:
        batcher = MicroBatcher(run, max_queue_rows=4, inline_rows=0)
        await batcher.start()
        held = [asyncio.create_task(batcher.submit({"x": np.zeros((2, 1))}, 2)) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(Saturated):
            await batcher.submit({"x": np.zeros((1, 1))}, 1)
        release.set()
        await asyncio.gather(*held)
        assert (await batcher.submit({"x": np.zeros((1, 1))}, 1))[0].tolist() == [0.0]
        await batcher.stop()

    asyncio.run(main())


def test_a_failing_batch_tells_every_caller() -> None:
    def run(feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        raise RuntimeError("graph exploded")

    async def main() -> None:
        batcher = MicroBatcher(run)
        await batcher.start()
        with pytest.raises(RuntimeError, match="graph exploded"):
            await batcher.submit({"x": np.zeros((1, 1))}, 1)
        await batcher.stop()

    asyncio.run(main())


def test_one_bad_request_in_a_batch_fails_alone() -> None:
    calls: list[int] = []

    def run(feeds: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        calls.append(len(feeds["x"]))
        if (feeds["x"] < 0).any():
            raise ValueError("negative input")
        return feeds["x"].ravel() * 2, None

    async def main() -> list[Any]:
        batcher = MicroBatcher(run)
        await batcher.start()
        values = [1.0, -1.0, 3.0]
        results = await asyncio.gather(
            *(batcher.submit({"x": np.array([[v]])}, 1) for v in values), return_exceptions=True
        )
        await batcher.stop()
        return results

    first, second, third = asyncio.run(main())
    assert first[0].tolist() == [2.0] and third[0].tolist() == [6.0]
    assert isinstance(second, ValueError)
    assert calls == [3, 1, 1, 1]  # one batch, then each alone


class _CountingExecutor(ThreadPoolExecutor):
    """The event loop's default executor, counting the trips to its threads."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.trips = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.trips += 1
        return super().submit(fn, *args, **kwargs)


def test_a_batch_that_fails_is_retried_request_by_request_in_one_trip_to_a_thread() -> None:
    # A shadow whose model raises on every call (a shadow's batches always run in a thread):
    # each request still gets its own error, and the batch costs one trip to a thread, not one
    # per request; each trip contends for the GIL with the event loop answering the clients.
    calls: list[int] = []

    def run(feeds: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        calls.append(len(feeds["x"]))
        raise RuntimeError(f"broken on {len(feeds['x'])} rows")

    async def main() -> tuple[list[Any], int]:
        executor = _CountingExecutor()
        asyncio.get_running_loop().set_default_executor(executor)
        batcher = MicroBatcher(run, inline_rows=0)
        await batcher.start()
        results = await asyncio.gather(
            *(batcher.submit({"x": np.array([[float(i)]])}, 1) for i in range(8)),
            return_exceptions=True,
        )
        await batcher.stop()
        return results, executor.trips

    results, trips = asyncio.run(main())
    assert [str(r) for r in results] == ["broken on 1 rows"] * 8
    assert len({id(r) for r in results}) == 8  # each request's own error
    assert calls == [8] + [1] * 8  # one batch, then each alone
    assert trips == 1


def test_a_request_past_its_deadline_times_out_and_the_batcher_goes_on() -> None:
    release = threading.Event()

    def run(feeds: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        release.wait(timeout=10)
        return feeds["x"].ravel(), None

    async def main() -> None:
        batcher = MicroBatcher(run, inline_rows=0, timeout_seconds=0.05)
        await batcher.start()
        with pytest.raises(TimeoutError):
            await batcher.submit({"x": np.zeros((1, 1))}, 1)  # the model is stuck
        release.set()
        assert (await batcher.submit({"x": np.ones((1, 1))}, 1))[0].tolist() == [1.0]
        await batcher.stop()

    asyncio.run(main())


def test_deadlines_fail_only_what_is_not_done() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(0.02)
        answered, waiting = loop.create_future(), loop.create_future()
        deadlines.watch(answered)
        deadlines.watch(waiting)
        answered.set_result("on time")
        with pytest.raises(TimeoutError):
            await waiting
        assert answered.result() == "on time"
        later = loop.create_future()
        deadlines.watch(later)  # the timer is armed again for a new future
        with pytest.raises(TimeoutError):
            await later
        deadlines.cancel()

    asyncio.run(main())


def test_a_full_batch_does_not_wait_for_more_company() -> None:
    calls: list[int] = []

    def run(feeds: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        calls.append(len(feeds["x"]))
        return feeds["x"].ravel(), None

    async def main() -> None:
        # A long wait for company, which a full batch cuts short.
        batcher = MicroBatcher(run, max_batch_rows=4, max_wait_ms=60_000)
        await batcher.start()
        answers = asyncio.gather(
            *(batcher.submit({"x": np.array([[float(i)]])}, 1) for i in range(4))
        )
        results = await asyncio.wait_for(answers, timeout=30)
        assert [r[0].tolist() for r in results] == [[0.0], [1.0], [2.0], [3.0]]
        await batcher.stop()

    asyncio.run(main())
    assert calls == [4]


def test_large_batches_run_one_at_a_time_and_stop_waits_for_every_caller() -> None:
    running = {"now": 0, "most": 0}
    release = threading.Event()
    lock = threading.Lock()

    def run(feeds: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        release.wait(timeout=10)  # held until every request is queued
        with lock:
            running["now"] -= 1
        return feeds["x"].ravel(), None

    async def main() -> None:
        batcher = MicroBatcher(run, max_batch_rows=128, inline_rows=8, max_wait_ms=60_000)
        await batcher.start()

        def submit(rows: int) -> asyncio.Future[Any]:
            return asyncio.ensure_future(batcher.submit({"x": np.zeros((rows, 1))}, rows))

        first = submit(1)
        await asyncio.sleep(0)  # waiting for company
        full, more = submit(127), submit(100)  # a full batch, then more behind it
        await asyncio.sleep(0)
        release.set()
        stopping = asyncio.ensure_future(batcher.stop())
        await asyncio.wait_for(stopping, timeout=30)
        assert first.done() and full.done() and more.done()  # stop waited for each
        assert len((await more)[0]) == 100

    asyncio.run(main())
    assert running["most"] == 1
