"""A server process's health, written into its own prediction log every interval (``mlplan
serve --health-every SECONDS``): its CPU use and resident memory, the rows waiting in its
micro-batchers and the batches they ran since the record before. Monitoring reads these
``health`` records beside the requests (the log is the one place every worker and replica
writes, on a shared file system too); Prometheus's ``/metrics`` shows the same live."""

from __future__ import annotations

import os
import resource
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["HEALTH_KIND", "HealthSampler"]

HEALTH_KIND = "health"
"""The ``kind`` of a health record in the prediction log."""


class HealthSampler:
    """What one server process writes in each ``health`` record.

    Parameters
    ----------
    queued
        The rows waiting in the process's micro-batchers now.
    """

    def __init__(self, queued: Callable[[], int]) -> None:
        self._queued = queued
        self._lock = threading.Lock()
        self._batches = self._batch_rows = self._batch_requests = 0
        self._cpu = _cpu_seconds()
        self._at = time.monotonic()
        self.writer = f"health-{os.getpid()}-{secrets.token_hex(4)}"
        self.samples = 0

    def observe_batch(self, requests: int, rows: int) -> None:
        """One micro-batch run (the batcher calls this, from any thread)."""
        with self._lock:
            self._batches += 1
            self._batch_rows += rows
            self._batch_requests += requests

    def sample(self) -> dict[str, Any]:
        """The process's health since the sample before (or since it started): CPU use in
        percent of one core, resident memory in bytes, rows queued now, batches run and their
        mean rows and requests."""
        cpu, at = _cpu_seconds(), time.monotonic()
        with self._lock:
            batches, rows, requests = self._batches, self._batch_rows, self._batch_requests
            self._batches = self._batch_rows = self._batch_requests = 0
        elapsed = max(at - self._at, 1e-9)
        out = {
            "cpu_percent": round(100.0 * (cpu - self._cpu) / elapsed, 3),
            "rss_bytes": _resident_bytes(),
            "queued_rows": int(self._queued()),
            "batches": batches,
            "batch_rows_mean": rows / batches if batches else None,
            "batch_requests_mean": requests / batches if batches else None,
            "seconds": round(elapsed, 3),
        }
        self._cpu, self._at = cpu, at
        self.samples += 1
        return out


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _resident_bytes() -> int:
    """Resident memory now (``/proc/self/statm``), else the peak the system reports."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
