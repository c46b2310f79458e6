"""Real server processes on 127.0.0.1 under load: overload, kill -9, restart."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.conftest import edit_plan
from tests.serving.conftest import RECORD, bearer, server_process, write_old_log
from tests.serving.conftest import stop as stop_server

from mlplan.serving import query_log
from mlplan.serving._log import _compaction_lock
from mlplan.workspace import Workspace


def _hammer(base: str, token: str, threads: int, stop: threading.Event) -> list[tuple[int, str]]:
    """Requests from ``threads`` threads until ``stop``; (status, request id) of each answer."""
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def work() -> None:
        with httpx.Client(base_url=base, timeout=10, headers=bearer(token)) as client:
            while not stop.is_set():
                try:
                    answer = client.post("/v1/predict", json={"records": [RECORD] * 4})
                except httpx.HTTPError:
                    return  # the server is gone
                body = answer.json() if answer.status_code == 200 else {}
                with lock:
                    answers.append((answer.status_code, body.get("request_id", "")))

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return answers


def _load(
    base: str, token: str, threads: int
) -> tuple[threading.Event, list[tuple[int, str]], threading.Thread]:
    """Start hammering in the background: (stop, answers, the thread to join)."""
    stop = threading.Event()
    answers: list[tuple[int, str]] = []
    runner = threading.Thread(target=lambda: answers.extend(_hammer(base, token, threads, stop)))
    runner.start()
    return stop, answers, runner


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, flags=re.M)
    return float(found.group(1)) if found else 0.0


@pytest.mark.slow
def test_overload_gets_only_200_or_503(served: Workspace, tokens: dict[str, str]) -> None:
    with server_process(
        served.root, "logistic-1", "--max-queue-rows", "8", "--max-batch-rows", "8"
    ) as (_, base):
        stop, answers, runner = _load(base, tokens["predict"], 24)
        with httpx.Client(base_url=base, headers=bearer(tokens["admin"])) as admin:
            while _metric(admin.get("/metrics").text, "mlplan_saturated_requests_total") < 1:
                pass  # until the queue has refused someone
        stop.set()
        runner.join()
    statuses = Counter(status for status, _ in answers)
    assert set(statuses) <= {200, 503} and statuses[200] and statuses[503]


@pytest.mark.slow
def test_kill_9_under_load_loses_no_acknowledged_request(
    served: Workspace, tokens: dict[str, str]
) -> None:
    acknowledged: list[str] = []
    for _ in range(2):  # killed twice, restarted after each
        with server_process(served.root, "logistic-1") as (process, base):
            stop, answers, runner = _load(base, tokens["predict"], 8)
            with httpx.Client(base_url=base, headers=bearer(tokens["admin"])) as admin:
                while _metric(admin.get("/metrics").text, "mlplan_log_records_total") < 200:
                    pass  # until 200 records are on disk
            process.send_signal(signal.SIGKILL)
            process.wait()
            stop.set()
            runner.join()
            acknowledged += [rid for status, rid in answers if status == 200]
    with server_process(served.root, "logistic-1") as (process, _):  # the restart recovers the log
        process.send_signal(signal.SIGTERM)
        process.wait()
    logged = (
        query_log(
            served.root / ".mlplan" / "predictions",
            "SELECT request_id FROM predictions WHERE kind = 'prediction'",
        )
        .column(0)
        .to_pylist()
    )
    counts = Counter(logged)
    assert len(acknowledged) >= 200  # answered before the kills (some logged ones were not)
    assert not [rid for rid in acknowledged if rid not in counts]  # every acked one is there
    assert max(counts.values()) == 1  # and none twice


def _descendants(pid: int) -> list[int]:
    """The processes ``pid`` started, and theirs (from /proc: the server's workers)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


@pytest.mark.slow
def test_two_workers_killed_9_come_back_ready_every_time(
    served: Workspace, tokens: dict[str, str]
) -> None:
    close = {"Connection": "close"}  # a new connection each time: either worker answers
    acknowledged = 0
    for _ in range(5):  # each start compacts what the killed workers left, both at once
        with server_process(served.root, "logistic-1", workers=2) as (process, base):
            for _ in range(20):
                answer = httpx.post(
                    f"{base}/v1/predict",
                    json={"records": [RECORD]},
                    headers=bearer(tokens["predict"]) | close,
                    timeout=10,
                )
                assert answer.status_code == 200
                acknowledged += 1
            for pid in [*_descendants(process.pid), process.pid]:  # kill -9, workers too
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.wait()
    with server_process(served.root, "logistic-1", workers=2) as (process, base):
        # Both workers said they are ready (server_process waited for both); both answer so.
        for _ in range(6):
            ready = httpx.get(f"{base}/v2/health/ready", headers=close, timeout=10)
            assert ready.json() == {"ready": True}
        stop_server(process)
    folder = served.root / ".mlplan" / "predictions" / "logistic-1"
    assert not list(folder.rglob("*.tmp"))
    logged = query_log(folder, "SELECT count(*) FROM predictions WHERE kind = 'prediction'")
    assert logged.column(0)[0].as_py() == acknowledged  # none lost, none twice


def _until(condition: Callable[[], object], seconds: float = 120) -> None:
    """Poll ``condition`` until it holds (a short pause between tries leaves the CPU to the
    server); fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        threading.Event().wait(0.05)


def _predict(base: str, token: str, count: int) -> list[str]:
    """``count`` acknowledged predictions; their request ids."""
    with httpx.Client(base_url=base, headers=bearer(token), timeout=10) as client:
        answers = [client.post("/v1/predict", json={"records": [RECORD]}) for _ in range(count)]
    assert [a.status_code for a in answers] == [200] * count
    return [a.json()["request_id"] for a in answers]


def _logged(folder: Path) -> list[str]:
    return query_log(folder, "SELECT request_id FROM predictions").column(0).to_pylist()


@pytest.mark.slow
def test_a_restart_over_a_large_log_is_ready_first_and_compacts_it_afterwards(
    served: Workspace, tokens: dict[str, str]
) -> None:
    folder = served.root / ".mlplan" / "predictions" / "logistic-1"
    old = [
        *write_old_log(folder, 10_000, segment_bytes=2 << 20, seed=1),
        *write_old_log(folder, 10_000, segment_bytes=2 << 20, seed=2),
    ]  # two servers stopped, about 16 MB of segments left
    left = sorted(folder.rglob("seg-*.jsonl"))
    assert len(left) >= 6 and sum(p.stat().st_size for p in left) > 12 * 2**20
    # The compaction cannot start while the test holds its lock, as it could not finish
    # before ready over a log of any size: the server is ready all the same, ...
    with contextlib.ExitStack() as lock:
        lock.enter_context(_compaction_lock(folder, wait=True))
        with server_process(served.root, "logistic-1") as (process, base):
            assert httpx.get(f"{base}/v2/health/ready").json() == {"ready": True}
            assert all(p.exists() for p in left)
            acknowledged = _predict(base, tokens["predict"], 20)
            # ... and compacts the lot in the background once the lock is free.
            lock.close()
            _until(lambda: all(p.with_suffix(".parquet").exists() for p in left))
            assert not [p for p in left if p.exists()]
            acknowledged += _predict(base, tokens["predict"], 20)
            stop_server(process)
    assert not list(folder.rglob("*.tmp"))
    assert sorted(_logged(folder)) == sorted(old + acknowledged)  # none lost, none twice


@pytest.mark.slow
def test_a_live_server_compacts_the_segments_it_closes(
    served: Workspace, tokens: dict[str, str]
) -> None:
    edit_plan(served, "retention_days: 90,", "retention_days: 90, segment_mb: 0.01,")
    folder = served.root / ".mlplan" / "predictions" / "logistic-1"
    with server_process(served.root, "logistic-1") as (process, base):
        (writer,) = folder.glob("w-*")
        acknowledged: list[str] = []

        def compacted() -> bool:  # predictions go on until four closed segments are Parquet
            acknowledged.extend(_predict(base, tokens["predict"], 5))
            return len(list(writer.glob("seg-*.parquet"))) >= 4

        _until(compacted)
        assert len(list(writer.glob("seg-*.jsonl"))) <= 2  # the open one, one just closed
        stop_server(process)
    assert not list(folder.rglob("*.tmp"))
    assert sorted(_logged(folder)) == sorted(acknowledged)
