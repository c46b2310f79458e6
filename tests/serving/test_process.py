from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.serving.conftest import RECORD, bearer, server_process, stop

from mlplan.serving._config import MULTIPROC_ENV
from mlplan.workspace import Workspace


@pytest.mark.slow
def test_a_real_server_process_is_live_then_ready_serves_and_stops_on_sigterm(
    served: Workspace, tokens: dict[str, str]
) -> None:
    with server_process(served.root, "logistic-1") as (process, base):
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.get("/v2/health/live").json() == {"live": True}
            assert client.get("/v2/health/ready").json() == {"ready": True}
            answer = client.post(
                "/v1/predict", json={"records": [RECORD]}, headers=bearer(tokens["predict"])
            )
            assert answer.status_code == 200 and answer.json()["predictions"][0]["label"] in {
                "0",
                "1",
            }
        assert "logistic-1 stopped" in stop(process)


def _counter(text: str, name: str, **labels: str) -> float:
    """A sample's value from Prometheus exposition text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.slow
def test_workers_answer_with_one_view_of_the_metrics(
    served: Workspace, tokens: dict[str, str]
) -> None:
    with server_process(served.root, "logistic-1", workers=2) as (process, base):
        close = {"Connection": "close"}  # a new connection each time: either worker answers
        for _ in range(40):
            answer = httpx.post(
                f"{base}/v1/predict",
                json={"records": [RECORD]},
                headers=bearer(tokens["predict"]) | close,
                timeout=10,
            )
            assert answer.status_code == 200
        scrapes = [
            httpx.get(f"{base}/metrics", headers=bearer(tokens["admin"]) | close, timeout=10).text
            for _ in range(6)
        ]
        for text in scrapes:  # every scrape counts every worker's requests
            assert (
                _counter(text, "mlplan_http_requests_total", route="/v1/predict", status="200")
                == 40
            )
            assert _counter(text, "mlplan_input_rows_total") == 40
            assert _counter(text, "mlplan_model_ready") == 1
            assert _counter(text, "process_resident_memory_bytes") > 0
        # Both workers served: each has its own log writer folder with records in it.
        writers = list((served.root / ".mlplan" / "predictions" / "logistic-1").glob("w-*"))
        assert len(writers) == 2
        logged = [sum(len(f.read_bytes().splitlines()) for f in w.glob("*.jsonl")) for w in writers]
        assert sum(logged) == 40  # (the kernel spreads the connections: about 20 each here)
        stop(process)


DEAD_WORKER = """
import os, subprocess, sys
from mlplan.serving._metrics import ServerMetrics

if sys.argv[1:] == ["worker"]:
    metrics = ServerMetrics()
    metrics.queued = lambda: 37
    metrics.ready.set(0)  # died while loading
    metrics.publish()
    os._exit(1)  # killed: no shutdown, no mark_process_dead
subprocess.run([sys.executable, "-c", sys.argv[1], "worker"], check=False)
metrics = ServerMetrics()
metrics.ready.set(1)
print(metrics.exposition()[0].decode())
"""


def test_a_dead_workers_gauges_leave_the_sums(tmp_path: Path) -> None:
    env = os.environ | {MULTIPROC_ENV: str(tmp_path)}
    text = subprocess.run(
        [sys.executable, "-c", DEAD_WORKER, DEAD_WORKER],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert _counter(text, "mlplan_queue_rows") == 0  # not the dead worker's 37
    assert _counter(text, "mlplan_model_ready") == 1  # the live one is ready


def test_serve_refuses_a_metrics_folder_left_from_an_earlier_run(
    served: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplan.errors import UsageError
    from mlplan.serving import serve

    (tmp_path / "counter_123.db").write_bytes(b"")
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    with pytest.raises(UsageError, match=r"holds the metrics of an earlier run"):
        serve(served, "logistic-1", workers=2)
