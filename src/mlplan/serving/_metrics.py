"""The server's Prometheus metrics: requests and latency by route, refusals by reason, what
came in (rows, missing, out-of-range and unseen values), what came out, micro-batches, the
prediction log (its failed writes by reason) and the process. Label values are bounded
(routes, statuses, classes, input names, fixed vocabularies of reasons).

With several workers (``mlplan serve --workers N``) every worker writes its metrics to files
in ``$PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` adds them up, whichever worker answers the
scrape. Collectors that read the process at scrape time cannot do that: there each worker
publishes its log and process figures once a second instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, get_args

from mlplan._optional import require
from mlplan.serving._config import MULTIPROC_ENV
from mlplan.serving._log import WRITE_FAILURES
from mlplan.serving._validate import ValidationResult

__all__ = ["LOG_WRITE_FAILURES", "REFUSALS", "Refusal", "ServerMetrics"]

_LOG_FIGURES = (
    ("mlplan_log_records", "Records written to the prediction log.", "written"),
    (
        "mlplan_log_dropped",
        "Records answered but never logged (async mode): the queue was full, or their write "
        "failed.",
        "dropped",
    ),
    ("mlplan_log_commits", "Group commits (one fsync each).", "commits"),
)
"""The prediction log's counters: metric name, help text, field of the log's stats."""

Refusal = Literal[
    "invalid_json",
    "client_gone",
    "validation",
    "model_error",
    "too_large",
    "unsupported_media_type",
    "unauthorized",
    "forbidden",
    "foreign_origin",
    "bad_host",
    "unknown_model",
    "not_ready",
    "overloaded",
    "timeout",
    "log_failed",
]
"""Why a request was refused (``mlplan_refusals_total{reason=...}``)."""

REFUSALS: tuple[Refusal, ...] = get_args(Refusal)

LOG_WRITE_FAILURES = (*WRITE_FAILURES, "timeout")
"""Why a record was not logged (``mlplan_log_write_failures_total{reason=...}``): the log's
reasons for a failed write, and ``timeout``: not on disk within the request timeout."""


class _LogCollector:
    """The log's counters, read from its stats at scrape time (one process)."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        stats = self._metrics.log_stats
        if stats is None:
            return
        core = require("prometheus_client.core", extra="serving", purpose="metrics")
        for name, help_text, field in _LOG_FIGURES:
            yield core.CounterMetricFamily(name, help_text, value=getattr(stats, field))


class ServerMetrics:
    """Prometheus metrics of one app, in a registry of its own."""

    def __init__(self) -> None:
        prom = require("prometheus_client", extra="serving", purpose="the /metrics route")
        self.registry = prom.CollectorRegistry()
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self._children: dict[tuple[Any, tuple[Any, ...]], Any] = {}
        self.log_stats: Any = None  # the prediction log's stats, once it is open
        self.queued: Callable[[], int] = lambda: 0  # rows waiting, once the batcher runs
        self._published: dict[str, float] = {}
        self._add_http(prom)
        self._add_inputs_and_outputs(prom)
        self._add_rollout(prom)
        self._add_readiness_and_queue(prom)
        if self.multiprocess:
            self._add_published(prom)
        else:
            self.queue_rows.set_function(lambda: self.queued())
            self.registry.register(_LogCollector(self))
            prom.ProcessCollector(registry=self.registry)
        self._add_batches(prom)

    def _add_http(self, prom: Any) -> None:
        r = self.registry
        self.requests = prom.Counter(
            "mlplan_http_requests", "Requests by route and status.", ["route", "status"], registry=r
        )
        self.latency = prom.Histogram(
            "mlplan_http_request_duration_seconds",
            "Time from request to response, by route.",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.refusals = prom.Counter(
            "mlplan_refusals",
            "Requests refused, by reason: invalid_json, client_gone, validation, model_error, "
            "too_large, unsupported_media_type, unauthorized, forbidden, foreign_origin, "
            "bad_host, unknown_model, not_ready, overloaded, timeout, log_failed.",
            ["reason"],
            registry=r,
        )
        self.log_failures = prom.Counter(
            "mlplan_log_write_failures",
            "Records the prediction log could not write, by reason: no_space, quota, "
            "file_too_large, io_error, read_only, permission, other (from the error's errno); "
            "timeout: not on disk within the request timeout.",
            ["reason"],
            registry=r,
        )
        for refusal in REFUSALS:  # every reason shown from the start, at 0
            self.child(self.refusals, refusal)
        for reason in LOG_WRITE_FAILURES:
            self.child(self.log_failures, reason)

    def answered(self, by_candidate: bool) -> None:
        """Count an answer during a rollout, by the model that gave it."""
        self.child(self.rollout_answers, "candidate" if by_candidate else "stable").inc()

    def shadowed(self, outcome: str) -> None:
        """Count a mirrored request by what became of it: scored, failed, dropped."""
        self.child(self.shadow_requests, outcome).inc()

    def _add_rollout(self, prom: Any) -> None:
        r = self.registry
        self.rollout_answers = prom.Counter(
            "mlplan_rollout_answers",
            "Answers during a rollout, by the model that gave them: stable or candidate.",
            ["model"],
            registry=r,
        )
        self.shadow_requests = prom.Counter(
            "mlplan_shadow_requests",
            "Requests mirrored to a shadow candidate, by outcome: scored, failed (it refused, "
            "raised or timed out; logged), dropped (too many in flight, or its queue full).",
            ["outcome"],
            registry=r,
        )
        for outcome in ("scored", "failed", "dropped"):
            self.child(self.shadow_requests, outcome)

    def _add_inputs_and_outputs(self, prom: Any) -> None:
        r = self.registry
        self.rows = prom.Counter("mlplan_input_rows", "Rows received for prediction.", registry=r)
        self.missing = prom.Counter(
            "mlplan_input_missing_values", "Null inputs, by feature.", ["feature"], registry=r
        )
        self.out_of_range = prom.Counter(
            "mlplan_input_out_of_range_values",
            "Inputs outside the trained range, by feature.",
            ["feature"],
            registry=r,
        )
        self.unseen = prom.Counter(
            "mlplan_input_unseen_categories",
            "Categories not seen in training, by feature.",
            ["feature"],
            registry=r,
        )
        self.predicted = prom.Counter(
            "mlplan_predicted_class", "Predictions by class.", ["label"], registry=r
        )
        self.null_outputs = prom.Counter(
            "mlplan_null_outputs", "Predictions that came out NaN.", registry=r
        )

    def _add_readiness_and_queue(self, prom: Any) -> None:
        r = self.registry
        self.ready = prom.Gauge(
            "mlplan_model_ready",
            "1 when the model is ready (in every worker).",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.queue_rows = prom.Gauge(
            "mlplan_queue_rows",
            "Rows waiting for the model.",
            registry=r,
            multiprocess_mode="livesum",
        )

    def _add_published(self, prom: Any) -> None:
        """What each worker publishes into the shared files (see :meth:`publish`)."""
        r = self.registry
        self._log_counters = [
            (prom.Counter(name, help_text, registry=r), field)
            for name, help_text, field in _LOG_FIGURES
        ]
        self._cpu = prom.Counter(
            "process_cpu_seconds", "CPU time of the workers, in seconds.", registry=r
        )
        self._memory = prom.Gauge(
            "process_resident_memory_bytes",
            "Resident memory of the workers, in bytes.",
            registry=r,
            multiprocess_mode="livesum",
        )

    def _add_batches(self, prom: Any) -> None:
        r = self.registry
        self.batch_rows = prom.Histogram(
            "mlplan_batch_rows",
            "Rows per ONNX Runtime call (micro-batches).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.batch_requests = prom.Histogram(
            "mlplan_batch_requests",
            "Requests per ONNX Runtime call (micro-batches).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.refusals_unlogged = prom.Counter(
            "mlplan_log_refusals_unlogged",
            "Refused requests not written to the prediction log: their caller was over its "
            "budget of refusals logged.",
            registry=r,
        )
        self.saturated = prom.Counter(
            "mlplan_saturated_requests",
            "Requests refused with 503: the queue was full.",
            registry=r,
        )

    def child(self, metric: Any, *labels: Any) -> Any:
        """``metric.labels(*labels)``, made once (label values are bounded)."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*(str(v) for v in labels))
        return found

    def inputs(self, result: ValidationResult) -> None:
        """What came in: rows, and missing, out-of-range and unseen values by input."""
        self.rows.inc(result.rows)
        for name, count in result.missing.items():
            self.child(self.missing, name).inc(count)
        for name, count in result.out_of_range.items():
            self.child(self.out_of_range, name).inc(count)
        for name, count in result.unseen.items():
            self.child(self.unseen, name).inc(count)

    def refused(self, reason: Refusal) -> None:
        """One request refused, for ``reason``."""
        self.child(self.refusals, reason).inc()

    def _count_log_failures(self) -> None:
        """The log's failed writes by reason, brought up to date from its stats (read by the
        scrape, or published once a second with several workers)."""
        stats = self.log_stats
        if stats is None:
            return
        published = self._published
        for reason, value in stats.failures.items():  # fixed keys: safe beside the writer
            key = "failures:" + reason
            delta = value - published.get(key, 0)
            if delta > 0:
                self.child(self.log_failures, reason).inc(delta)
                published[key] = value

    def observe_batch(self, requests: int, rows: int) -> None:
        """One ONNX Runtime call of the micro-batcher."""
        self.batch_requests.observe(requests)
        self.batch_rows.observe(rows)

    def publish(self) -> None:
        """With several workers: this worker's log counts, queue, CPU and memory, into the
        shared files (a worker calls this once a second, and before answering a scrape)."""
        if not self.multiprocess:
            return
        self._count_log_failures()
        if self.log_stats is not None:
            for counter, field in self._log_counters:
                value = getattr(self.log_stats, field)
                delta = value - self._published.get(field, 0)
                if delta > 0:
                    counter.inc(delta)
                    self._published[field] = value
        times = os.times()
        cpu = times.user + times.system
        if cpu > self._published.get("cpu", 0.0):
            self._cpu.inc(cpu - self._published.get("cpu", 0.0))
            self._published["cpu"] = cpu
        with contextlib.suppress(OSError, ValueError, IndexError):  # not Linux: no /proc
            pages = int(Path("/proc/self/statm").read_text().split()[1])
            self._memory.set(pages * os.sysconf("SC_PAGE_SIZE"))
        self.queue_rows.set(self.queued())

    async def publish_every_second(self) -> None:
        """:meth:`publish`, once a second until cancelled."""
        while True:
            self.publish()
            await asyncio.sleep(1.0)

    def leave(self) -> None:
        """With several workers: publish a last time, and take this worker's live gauges out
        of the sums (its counters stay)."""
        if not self.multiprocess:
            return
        self.publish()
        multiprocess = require("prometheus_client.multiprocess", extra="serving", purpose="metrics")
        multiprocess.mark_process_dead(os.getpid())

    def exposition(self) -> tuple[bytes, str]:
        """The text of /metrics: this process's registry, or every worker's files."""
        prom = require("prometheus_client", extra="serving", purpose="the /metrics route")
        if not self.multiprocess:
            self._count_log_failures()
            return prom.generate_latest(self.registry), prom.CONTENT_TYPE_LATEST
        self.publish()
        multiprocess = require("prometheus_client.multiprocess", extra="serving", purpose="metrics")
        # A worker that died without shutting down (killed, out of memory) leaves its live
        # gauges behind: they leave the sums once its process is gone. Its counters stay.
        for path in Path(os.environ[MULTIPROC_ENV]).glob("gauge_live*_*.db"):
            pid = path.stem.rsplit("_", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                multiprocess.mark_process_dead(int(pid))
        gathered = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(gathered)
        return prom.generate_latest(gathered), prom.CONTENT_TYPE_LATEST


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
