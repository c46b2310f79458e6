"""The compute profile of a package on this machine — size, load time, single-row latency,
batch throughput, memory — held against the plan's deployment budget."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from mlplan._optional import require
from mlplan.plan import DeploymentSpec

__all__ = ["PROFILE_ROWS", "ComputeProfile", "FeasibilityCheck", "feasibility", "profile_package"]

PROFILE_ROWS = 10_000
"""A package's batch throughput is measured on at most this many rows of the split (its
first), so that profiling costs the same on any dataset."""


@dataclass(frozen=True)
class ComputeProfile:
    """A package measured with ONNX Runtime on one thread (what ``ModelInfo.compute`` holds
    as JSON)."""

    size_mb: float
    load_ms: float
    latency_p50_ms: float
    latency_p99_ms: float
    single_thread_qps: float
    batch_rows_per_second: float
    memory_mb: float
    threads: int = 1
    batch_rows: int = 0
    """How many rows the batch throughput was measured on (0: not recorded)."""
    training_device: str | None = None
    """Where the model was trained (``cpu``, or ``cuda:0 (its name)``), not where it was
    measured: a package is always measured on the CPU (None: not recorded)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComputeProfile:
        """From its JSON form (a model's ``compute``)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return asdict(self)

    def held_against(self, deployment: DeploymentSpec) -> list[FeasibilityCheck]:
        """Each objective of the plan that the profile can speak to, checked."""
        return _checks(self, deployment)


@dataclass(frozen=True)
class FeasibilityCheck:
    """An objective of the plan held against a measurement: whether it is met, and the
    headroom (objective / measurement, or its inverse, so that > 1 means room to spare)."""

    objective: str
    goal: float
    measured: float
    met: bool
    headroom: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return asdict(self)


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def profile_package(
    graph: bytes,
    feeds_one: dict[str, np.ndarray],
    feeds_batch: dict[str, np.ndarray],
    *,
    calls: int = 300,
) -> ComputeProfile:
    """Measure an ONNX graph with ONNX Runtime on one thread: load time, single-row latency
    p50/p99 over ``calls`` calls, batch throughput, and the memory the session adds."""
    ort = require("onnxruntime", extra="models", purpose="profiling packages")
    before = _rss_mb()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    start = time.perf_counter()
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - start) * 1e3
    for _ in range(20):  # warm up
        session.run(None, feeds_one)
    latencies = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        session.run(None, feeds_one)
        latencies[i] = time.perf_counter() - start
    rows = len(next(iter(feeds_batch.values())))
    start = time.perf_counter()
    session.run(None, feeds_batch)
    batch_s = time.perf_counter() - start
    return ComputeProfile(
        size_mb=len(graph) / 2**20,
        load_ms=load_ms,
        latency_p50_ms=float(np.percentile(latencies, 50) * 1e3),
        latency_p99_ms=float(np.percentile(latencies, 99) * 1e3),
        single_thread_qps=float(1.0 / np.percentile(latencies, 50)),
        batch_rows_per_second=float(rows / batch_s) if batch_s > 0 else float("nan"),
        memory_mb=max(0.0, _rss_mb() - before),
        threads=1,
        batch_rows=rows,
    )


def feasibility(
    compute: ComputeProfile | Mapping[str, Any], deployment: DeploymentSpec
) -> list[FeasibilityCheck]:
    """Each objective of the plan that the profile can speak to: the objective, the
    measurement, whether it is met, and the headroom (objective / measurement, or its
    inverse, so that > 1 means room to spare)."""
    profile = compute if isinstance(compute, ComputeProfile) else ComputeProfile.from_dict(compute)
    return profile.held_against(deployment)


def _checks(profile: ComputeProfile, deployment: DeploymentSpec) -> list[FeasibilityCheck]:
    checks = []
    objectives = deployment.objectives
    cpus = deployment.compute.cpus or 1.0

    def check(name: str, goal: float | None, measured: float, higher_is_better: bool) -> None:
        if goal is None or not np.isfinite(measured):
            return
        headroom = (
            measured / goal if higher_is_better else goal / measured if measured else float("inf")
        )
        checks.append(FeasibilityCheck(name, goal, measured, bool(headroom >= 1), headroom))

    check("latency_p50_ms", objectives.latency_p50_ms, profile.latency_p50_ms, False)
    check("latency_p99_ms", objectives.latency_p99_ms, profile.latency_p99_ms, False)
    # A rough ceiling: one single-threaded stream per budgeted core, no serving overhead.
    check("qps", objectives.qps, profile.single_thread_qps * cpus, True)
    check(
        "batch_rows_per_second",
        objectives.batch_rows_per_second,
        profile.batch_rows_per_second,
        True,
    )
    if deployment.target in {"edge", "browser"}:
        check("max_model_mb", deployment.compute.max_model_mb, profile.size_mb, False)
    if deployment.compute.memory_gb is not None:
        check("memory_mb", deployment.compute.memory_gb * 1024, profile.memory_mb, False)
    return checks
