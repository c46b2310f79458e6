"""``mlplan loadtest MODEL``: a real server process under load from real HTTP clients,
measured against the plan's latency, throughput and memory objectives, and kept as
evidence."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlplan._optional import require
from mlplan.data import get_split, load_split
from mlplan.errors import DataError, ParameterError, UsageError
from mlplan.modeling import ModelInfo, get_model
from mlplan.plan import DeploymentSpec
from mlplan.serving._keys import create_key, revoke_key
from mlplan.serving._records import record_report
from mlplan.workspace import Workspace

__all__ = ["LoadTestReport", "ObjectiveCheck", "load_test"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _records(ws: Workspace, model: ModelInfo, limit: int = 1000) -> list[dict[str, Any]]:
    """Real rows to send: the test split's inputs (only the columns the model takes)."""

    loaded = load_split(ws, get_split(ws, model.split))
    table, codes = loaded.table, loaded.codes
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


@dataclass(frozen=True)
class ObjectiveCheck:
    """One objective of the plan against what the load test measured."""

    objective: str
    goal: float
    measured: float
    met: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "objective": self.objective,
            "goal": self.goal,
            "measured": self.measured,
            "met": self.met,
        }


@dataclass(frozen=True)
class LoadTestReport:
    """What a load test measured, and the plan's objectives checked against it."""

    model: str
    version: str
    concurrency: int
    seconds: float
    rows_per_request: int
    requests: int
    statuses: dict[str, int]
    qps: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    memory_mb: float | None
    cpu_seconds: float | None
    client: str
    checks: tuple[ObjectiveCheck, ...]
    passed: bool
    errors: int
    run_id: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the report kept in the store, and its run)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return out | {"statuses": dict(self.statuses), "checks": [c.to_dict() for c in self.checks]}


def load_test(
    ws: Workspace,
    model: str,
    *,
    concurrency: int = 8,
    seconds: float = 10.0,
    rows_per_request: int = 1,
) -> LoadTestReport:
    """Serve ``model`` in a real process on 127.0.0.1 and send it requests from
    ``concurrency`` clients for ``seconds``; QPS, latency percentiles and the server's
    memory, checked against ``deployment.objectives`` and ``deployment.compute``.

    Raises
    ------
    ParameterError
        A concurrency, duration or number of rows per request that is not positive.
    UsageError
        A model that takes tensors.
    DataError
        The server did not start (its output is included).
    """

    httpx = require("httpx", extra="serving", purpose="mlplan loadtest")
    if min(concurrency, seconds, rows_per_request) <= 0:
        raise ParameterError(
            ("concurrency", "seconds", "rows_per_request"),
            "{concurrency}, {seconds} and {rows_per_request} must be positive",
        )
    info = get_model(ws, model)
    records = _records(ws, info)
    key = create_key(ws, "loadtest", roles=["predict", "admin"], by="mlplan loadtest")
    try:
        with _server(ws, model) as base:
            headers = {"Authorization": f"Bearer {key.token}"}
            load = _Load(httpx, base, headers, records, rows_per_request)
            load.run(concurrency, seconds)
            with httpx.Client(base_url=base, headers=headers) as http:
                scraped = http.get("/metrics").text
    finally:
        revoke_key(ws, key.info.key_id)
    return _report(ws, info, load, concurrency=concurrency, scraped=scraped)


@contextlib.contextmanager
def _server(ws: Workspace, model: str) -> Iterator[str]:
    """``mlplan serve MODEL`` in a process of its own, on a free port; its base URL once it
    is ready. Stopped with SIGTERM at the end (killed if it does not stop in a minute)."""
    port = _free_port()
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
        env=dict(os.environ),
    )
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            if f"{model} ready" in line:
                break
        else:
            raise DataError("the server did not start:\n" + "".join(seen[-20:]))
        yield f"http://127.0.0.1:{port}"
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


class _Load:
    """Clients sending ``/v1/predict`` requests of real rows, one thread per connection."""

    def __init__(
        self,
        httpx: Any,
        base: str,
        headers: dict[str, str],
        records: list[dict[str, Any]],
        rows_per_request: int,
    ) -> None:
        self._httpx = httpx
        self._base = base
        self._headers = headers
        self._records = records
        self.rows_per_request = rows_per_request
        self.latencies: list[float] = []  # seconds, of every request
        self.statuses: dict[str, int] = {}  # "200", ..., or "error"
        self.elapsed = 0.0
        self._lock = threading.Lock()

    def run(self, concurrency: int, seconds: float) -> None:
        """``concurrency`` clients, sending requests for ``seconds`` from the moment every
        client is set up (making an HTTP client can take longer than a short run)."""
        began: list[float] = []
        barrier = threading.Barrier(concurrency, action=lambda: began.append(time.perf_counter()))
        pool = [
            threading.Thread(target=self._client, args=(i, barrier, began, seconds))
            for i in range(concurrency)
        ]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        self.elapsed = time.perf_counter() - began[0]

    def _client(
        self, worker: int, barrier: threading.Barrier, began: list[float], seconds: float
    ) -> None:
        httpx, records = self._httpx, self._records
        rng = np.random.default_rng(worker)
        mine: list[float] = []
        counts: dict[str, int] = {}
        with httpx.Client(base_url=self._base, headers=self._headers, timeout=30) as http:
            barrier.wait()  # every client ready: the measured time starts
            deadline = began[0] + seconds
            while time.perf_counter() < deadline:
                chosen = [records[i] for i in rng.integers(0, len(records), self.rows_per_request)]
                start = time.perf_counter()
                try:
                    answer = http.post("/v1/predict", json={"records": chosen})
                    status = str(answer.status_code)
                except httpx.HTTPError:
                    status = "error"
                mine.append(time.perf_counter() - start)
                counts[status] = counts.get(status, 0) + 1
        with self._lock:
            self.latencies.extend(mine)
            for k, v in counts.items():
                self.statuses[k] = self.statuses.get(k, 0) + v


def _report(
    ws: Workspace, info: ModelInfo, load: _Load, *, concurrency: int, scraped: str
) -> LoadTestReport:
    """The measurements, checked against the plan, and recorded."""
    ok = load.statuses.get("200", 0)
    ms = np.asarray(load.latencies) * 1000
    rss = _metric(scraped, "process_resident_memory_bytes")
    p50 = float(np.percentile(ms, 50)) if ms.size else None
    p99 = float(np.percentile(ms, 99)) if ms.size else None
    qps = ok / load.elapsed if load.elapsed else 0.0
    memory_mb = None if rss is None else rss / 2**20
    checks = _checks(
        ws.plan.deployment,
        {"latency_p50_ms": p50, "latency_p99_ms": p99, "qps": qps, "memory_mb": memory_mb},
    )
    draft = LoadTestReport(
        model=info.name,
        version=info.package_sha256[:12],
        concurrency=concurrency,
        seconds=round(load.elapsed, 3),
        rows_per_request=load.rows_per_request,
        requests=int(ms.size),
        statuses=load.statuses,
        qps=qps,
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        memory_mb=memory_mb,
        cpu_seconds=_metric(scraped, "process_cpu_seconds_total"),
        client="httpx, one thread per connection, on the same machine",
        checks=checks,
        passed=bool(checks) and all(c.met for c in checks) and ok > 0,
        errors=sum(v for k, v in load.statuses.items() if k != "200"),
        run_id="",
    )
    kept = draft.to_dict()
    del kept["run_id"]
    run_id = record_report(ws, "load_test", "loadtest", kept, info)
    return dataclasses.replace(draft, run_id=run_id)


def _checks(plan: DeploymentSpec, measured: dict[str, float | None]) -> tuple[ObjectiveCheck, ...]:
    """The plan's latency, throughput and memory objectives against ``measured``."""
    checks = []
    goals = plan.objectives
    for name, goal, better in (
        ("latency_p50_ms", goals.latency_p50_ms, "lower"),
        ("latency_p99_ms", goals.latency_p99_ms, "lower"),
        ("qps", goals.qps, "higher"),
    ):
        value = measured[name]
        if goal is not None and value is not None:
            met = value <= goal if better == "lower" else value >= goal
            checks.append(ObjectiveCheck(name, goal, value, met))
    memory = measured["memory_mb"]
    if plan.compute.memory_gb is not None and memory is not None:
        goal_mb = plan.compute.memory_gb * 1024
        checks.append(ObjectiveCheck("memory_mb", goal_mb, memory, memory <= goal_mb))
    return tuple(checks)
