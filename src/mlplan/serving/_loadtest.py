"""``mlplan loadtest MODEL``: a real server process under load from real HTTP clients,
measured against the plan's latency, throughput and memory objectives, and kept as
evidence."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np

from mlplan._optional import require
from mlplan.data import get_split, load_split
from mlplan.errors import DataError, UsageError
from mlplan.modeling import get_model
from mlplan.serving._keys import create_key, revoke_key
from mlplan.serving._records import record_report
from mlplan.workspace import Workspace

__all__ = ["load_test"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _records(ws: Workspace, model: Any, limit: int = 1000) -> list[dict[str, Any]]:
    """Real rows to send: the test split's inputs (only the columns the model takes)."""

    _, table, codes = load_split(ws, get_split(ws, model.split))
    rows = np.flatnonzero(codes == 2)[:limit]
    if not rows.size:
        rows = np.arange(min(limit, table.num_rows))
    names = [*model.features.get("numeric", []), *model.features.get("categorical", [])]
    if not names:
        raise UsageError(f"{model.name} takes tensors; loadtest sends records to tabular models")
    subset = table.take(rows).select(names).to_pylist()
    numeric = set(model.features.get("numeric", []))
    out = []
    for record in subset:
        out.append(
            {
                k: (None if v is None else float(v) if k in numeric else str(v))
                for k, v in record.items()
            }
        )
    return out


def _metric(text: str, name: str) -> float | None:
    found = re.search(rf"^{name} (\S+)$", text, flags=re.M)
    return float(found.group(1)) if found else None


def load_test(
    ws: Workspace,
    model: str,
    *,
    concurrency: int = 8,
    seconds: float = 10.0,
    rows_per_request: int = 1,
) -> dict[str, Any]:
    """Serve ``model`` in a real process on 127.0.0.1 and send it requests from
    ``concurrency`` clients for ``seconds``; QPS, latency percentiles and the server's
    memory, checked against ``deployment.objectives`` and ``deployment.compute``.

    Raises
    ------
    UsageError
        A concurrency or duration that is not positive, or a model that takes tensors.
    DataError
        The server did not start (its output is included).
    """

    httpx = require("httpx", extra="serving", purpose="mlplan loadtest")
    if concurrency < 1 or seconds <= 0 or rows_per_request < 1:
        raise UsageError("--concurrency, --seconds and --rows must be positive")
    info = get_model(ws, model)
    records = _records(ws, info)
    key, token = create_key(ws, "loadtest", roles=["predict", "admin"], by="mlplan loadtest")
    port = _free_port()
    env = dict(os.environ)
    process = subprocess.Popen(
        # A load test measures; it deploys nothing, so failed gates do not stop it.
        [
            sys.executable,
            "-m",
            "mlplan",
            "serve",
            model,
            "--port",
            str(port),
            "--allow-failed-gates",
        ],
        cwd=ws.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            if f"{model} ready" in line:
                break
        else:
            raise DataError("the server did not start:\n" + "".join(seen[-20:]))
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.perf_counter() + seconds

        def client(worker: int) -> None:
            rng = np.random.default_rng(worker)
            mine: list[float] = []
            counts: dict[str, int] = {}
            with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
                while time.perf_counter() < deadline:
                    chosen = [records[i] for i in rng.integers(0, len(records), rows_per_request)]
                    start = time.perf_counter()
                    try:
                        answer = http.post("/v1/predict", json={"records": chosen})
                        status = str(answer.status_code)
                    except httpx.HTTPError:
                        status = "error"
                    mine.append(time.perf_counter() - start)
                    counts[status] = counts.get(status, 0) + 1
            with lock:
                latencies.extend(mine)
                for k, v in counts.items():
                    statuses[k] = statuses.get(k, 0) + v

        began = time.perf_counter()
        pool = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        elapsed = time.perf_counter() - began
        with httpx.Client(base_url=base, headers=headers) as http:
            scraped = http.get("/metrics").text
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        revoke_key(ws, key.key_id)
    ok = statuses.get("200", 0)
    ms = np.asarray(latencies) * 1000
    plan = ws.plan.deployment
    rss = _metric(scraped, "process_resident_memory_bytes")
    report: dict[str, Any] = {
        "model": model,
        "version": info.package["model.onnx"][:12],
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "rows_per_request": rows_per_request,
        "requests": int(ms.size),
        "statuses": statuses,
        "qps": ok / elapsed if elapsed else 0.0,
        "latency_p50_ms": float(np.percentile(ms, 50)) if ms.size else None,
        "latency_p99_ms": float(np.percentile(ms, 99)) if ms.size else None,
        "memory_mb": None if rss is None else rss / 2**20,
        "cpu_seconds": _metric(scraped, "process_cpu_seconds_total"),
        "client": "httpx, one thread per connection, on the same machine",
    }
    checks = []
    goals = plan.objectives
    for name, goal, better in (
        ("latency_p50_ms", goals.latency_p50_ms, "lower"),
        ("latency_p99_ms", goals.latency_p99_ms, "lower"),
        ("qps", goals.qps, "higher"),
    ):
        if goal is not None and report[name] is not None:
            met = report[name] <= goal if better == "lower" else report[name] >= goal
            checks.append({"objective": name, "goal": goal, "measured": report[name], "met": met})
    if plan.compute.memory_gb is not None and report["memory_mb"] is not None:
        goal_mb = plan.compute.memory_gb * 1024
        checks.append(
            {
                "objective": "memory_mb",
                "goal": goal_mb,
                "measured": report["memory_mb"],
                "met": report["memory_mb"] <= goal_mb,
            }
        )
    report["checks"] = checks
    report["passed"] = bool(checks) and all(c["met"] for c in checks) and ok > 0
    report["errors"] = sum(v for k, v in statuses.items() if k != "200")
    report["run_id"] = record_report(ws, "load_test", "loadtest", report, info)
    return report
