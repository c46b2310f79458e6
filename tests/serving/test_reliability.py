"""Real server processes on 127.0.0.1 under load: overload, kill -9, restart."""

from __future__ import annotations

import re
import signal
import threading
from collections import Counter

import httpx
import pytest
from tests.serving.conftest import RECORD, bearer, server_process

from mlplan.serving import query_log
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
