"""A server's prediction log compacted in the background, never on the way to ready.

Once the server is ready, a low-priority thread compacts what stopped or killed writers left,
then the server's own segments as they close (the log wakes it after each rotation), and
every ``interval_seconds`` (retention, and segments another process's compaction missed).
Each pass takes the model's compaction lock without waiting: while another process holds it
(another worker, ``mlplan logs compact``), the pass is left to that one and tried again
after ``retry_seconds``. It streams a segment a chunk at a time and pauses between chunks,
so the requests' threads keep the interpreter; on shutdown it abandons the segment under
way (its temporary file deleted, the segment left whole for the next start).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlplan.serving._log import compact_segments

__all__ = ["CompactionStats", "LogCompactor"]


@dataclass
class CompactionStats:
    """What a server's compactor has done since it started (``passes``: those finished)."""

    passes: int = 0
    compacted: int = 0
    removed: int = 0
    busy: int = 0
    failures: int = 0


class LogCompactor:
    """Compacts the prediction log under ``folder`` in a background thread.

    Parameters
    ----------
    folder
        The model's log (every writer's folder under it).
    retention_days
        Parquet segments whose newest record is older are deleted.
    interval_seconds
        A pass runs at least this often, besides after each segment closed (:meth:`wake`).
    retry_seconds
        When another process holds the compaction lock, the pass is tried again after this.
    report
        Told of a pass that failed (the next one tries again); a server prints it.
    pause_seconds
        How long a pass pauses after each chunk of a segment: the requests' threads run.
    """

    def __init__(
        self,
        folder: Path,
        *,
        retention_days: int | None = None,
        interval_seconds: float = 600.0,
        retry_seconds: float = 1.0,
        report: Callable[[Exception], None] | None = None,
        pause_seconds: float = 0.0001,
    ) -> None:
        self.folder = folder
        self.retention_days = retention_days
        self.interval_seconds = interval_seconds
        self.retry_seconds = retry_seconds
        self.pause_seconds = pause_seconds
        self.stats = CompactionStats()
        self._report = report
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread; its first pass begins at once."""
        self._thread = threading.Thread(target=self._run, name="mlplan-compact", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Ask for a pass now (a segment has closed); cheap, from any thread."""
        self._wake.set()

    def stop(self) -> None:
        """Abandon the segment under way and wait for the thread to end (a pass stops between
        two chunks: 32 KB of a segment at most)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        if sys.platform == "linux":  # Linux sets a thread's niceness by its own id
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        while True:
            # Even when stopping, one pass clears the temporary files a killed compaction
            # left (it stops before the first segment), so a clean stop leaves none.
            delay = self._pass()
            if self._stopping.is_set():
                return
            self._wake.wait(timeout=delay)
            self._wake.clear()

    def _pass(self) -> float:
        """One compaction; the seconds until the next one unless woken."""
        try:
            done = compact_segments(
                self.folder,
                retention_days=self.retention_days,
                wait=False,
                stop=lambda: self._stopping.wait(self.pause_seconds),
            )
        except Exception as exc:  # a failed pass must not end the thread: the next one retries
            self.stats.passes += 1
            self.stats.failures += 1
            if self._report is not None:
                self._report(exc)
            return self.interval_seconds
        self.stats.compacted += done["compacted"]
        self.stats.removed += done["removed"]
        self.stats.passes += 1
        if done["busy"]:
            self.stats.busy += 1
            return self.retry_seconds
        return self.interval_seconds
