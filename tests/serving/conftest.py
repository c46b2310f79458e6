from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.conftest import _free_port, register_split_train

from mlplan.serving import ROLES, ServeConfig, create_app, create_key
from mlplan.serving._config import MULTIPROC_ENV
from mlplan.serving._log import PredictionLog
from mlplan.workspace import Workspace

RECORD = {"gender": "female", "age": 40, "region": "north", "charges": 61.5}


@pytest.fixture
def served(sqlite_ws: Workspace) -> Workspace:
    """A project with the customers split and a logistic model, logistic-1."""
    return register_split_train(sqlite_ws)


@pytest.fixture
def tokens(served: Workspace) -> dict[str, str]:
    """One key per role."""
    return {role: create_key(served, f"{role}-holder", roles=[role]).token for role in ROLES}


@pytest.fixture
def client(served: Workspace) -> Iterator[TestClient]:
    """The real ASGI app, started (model loaded) under a test client."""
    app = create_app(ServeConfig(root=str(served.root), model="logistic-1", key_refresh_seconds=0))
    with started(app) as test_client:
        yield test_client


@contextmanager
def started(app: Any) -> Iterator[TestClient]:
    """The app under a test client, once its model has loaded (ready or not); the client
    calls it as http://127.0.0.1 (a server on loopback answers only requests for this
    machine, not Starlette's default testserver)."""
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        assert app.state.mlplan.loaded.wait(timeout=60)
        yield test_client


_LIMITED = """
import os, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
os.execv(sys.executable, [sys.executable, "-m", "mlplan", *sys.argv[2:]])
"""
"""Run ``mlplan ARGS`` with no file growing past LIMIT bytes (``RLIMIT_FSIZE``, inherited
by the workers; Python ignores SIGXFSZ, so such a write fails with ``EFBIG``)."""


@contextmanager
def server_process(
    root: Path,
    *args: str,
    workers: int = 1,
    file_size_limit: int | None = None,
    ready_text: str = "logistic-1 ready",
    env: Mapping[str, str] | None = None,
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``mlplan serve ARGS`` (logistic-1, by name or deployment) as a real process on a free
    port, yielded with its base URL once every worker says it is ready (prints
    ``ready_text``); killed at the end if it still runs (a test that stops it itself sends
    SIGTERM first). With ``file_size_limit``, no file the server writes may grow past that
    many bytes. ``env`` adds to the environment the server inherits, which holds no
    ``MLPLAN_STORE_URL`` unless ``env`` sets one (a server on a PostgreSQL store)."""
    port = _free_port()
    inherited = {
        k: v for k, v in os.environ.items() if k not in {"MLPLAN_STORE_URL", MULTIPROC_ENV}
    }
    command = ["serve", *args, "--port", str(port), "--workers", str(workers)]
    if file_size_limit is None:
        command = [sys.executable, "-m", "mlplan", *command]
    else:
        command = [sys.executable, "-c", _LIMITED, str(file_size_limit), *command]
    # A session of its own, so that what the server started (uvicorn's worker processes)
    # goes with it: killing the parent alone leaves its workers running, orphaned.
    process = subprocess.Popen(
        command,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=inherited | dict(env or {}),
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        seen, ready = [], 0
        for line in process.stdout:  # blocks until each worker says it is ready
            seen.append(line)
            ready += ready_text in line
            if ready == workers:
                break
        else:
            pytest.fail("the server exited before it was ready:\n" + "".join(seen))
        _until_listening(port, process)
        yield process, f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the server and every worker it left
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _until_listening(port: int, process: subprocess.Popen[str]) -> None:
    """Wait until the server accepts connections: a server that is not ready says so while
    it loads, which may come before uvicorn listens."""
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server never listened"
            threading.Event().wait(0.01)


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM, then what the server printed until it exited (it drains and exits cleanly)."""
    assert process.stdout is not None
    process.send_signal(signal.SIGTERM)
    rest = process.stdout.read()  # until the process closes it
    # uvicorn finishes in-flight requests and the app's shutdown, then re-raises SIGTERM.
    assert process.wait(timeout=60) in {0, -signal.SIGTERM}
    return rest


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sample(text: str, name: str, **labels: str) -> float:
    """A sample's value from Prometheus exposition text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def write_old_log(folder: Path, records: int, *, segment_bytes: int, seed: int = 0) -> list[str]:
    """A log left by a server that has stopped, written by the real writer: ``records``
    predictions shaped like the server's (four records in, a label and probabilities for each
    out, seeded values), in JSONL segments of about ``segment_bytes``; their request ids."""
    rng = np.random.default_rng(seed)
    ids = [f"old-{seed}-{i}" for i in range(records)]
    group = max(1, min(2000, segment_bytes // 2000))  # committed at once: a segment's share
    with PredictionLog(folder, segment_bytes=segment_bytes) as log:
        for start in range(0, records, group):
            waiting = []
            for request_id in ids[start : start + group]:
                p = rng.uniform(size=4).round(6)
                waiting.append(
                    log.record(
                        kind="prediction",
                        request_id=request_id,
                        model="logistic-1",
                        version="1",
                        route="/v1/predict",
                        status=200,
                        latency_ms=float(rng.uniform(0.5, 5.0)),
                        inputs=[
                            RECORD | {"age": int(a), "charges": float(c)}
                            for a, c in zip(
                                rng.integers(18, 90, 4),
                                rng.uniform(0, 200, 4).round(2),
                                strict=True,
                            )
                        ],
                        outputs=[
                            {"label": str(int(q > 0.5)), "probabilities": {"0": 1 - q, "1": q}}
                            for q in p.tolist()
                        ],
                    )
                )
            for done in waiting:
                assert done is not None
                done.result(timeout=60)
    return ids


def log_bytes(root: Path, model: str = "logistic-1") -> int:
    """The bytes of a served model's prediction log: its segments, JSONL and Parquet."""
    folder = root / ".mlplan" / "predictions" / model
    return sum(p.stat().st_size for p in folder.rglob("seg-*") if p.is_file())
