from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest
from tests.conftest import _free_port
from tests.serving.conftest import RECORD, bearer

from mlplan.workspace import Workspace


@pytest.mark.slow
def test_a_real_server_process_is_live_then_ready_serves_and_stops_on_sigterm(
    served: Workspace, tokens: dict[str, str]
) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLPLAN_STORE_URL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlplan", "serve", "logistic-1", "--port", str(port)],
        cwd=served.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:  # blocks until the server says it is ready
            seen.append(line)
            if "logistic-1 ready" in line:
                break
        else:
            pytest.fail("the server exited before it was ready:\n" + "".join(seen))
        base = f"http://127.0.0.1:{port}"
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
        process.send_signal(signal.SIGTERM)
        rest = process.stdout.read()  # until the process closes it
        # uvicorn finishes in-flight requests and the app's shutdown, then re-raises SIGTERM.
        assert process.wait(timeout=30) in {0, -signal.SIGTERM}
        assert "logistic-1 stopped" in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
