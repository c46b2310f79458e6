"""The prediction log: every request and response appended to a durable, segmented log.

Layout, under ``.mlplan/predictions/``::

    seg-000001.jsonl      open segment: one JSON record per line, appended
    seg-000000.parquet    closed segments, compacted (temp file + atomic rename)

One writer thread drains a queue and commits in groups: it writes every record waiting,
calls ``fsync`` once, then acknowledges them all. In ``acked`` mode a request is answered
only after its record is on disk; in ``async`` mode it is answered at once and the queue is
bounded, so at most ``max_pending`` records can be lost in a crash, and records refused when
it is full are counted exactly. A torn last line (a crash mid-write) was never acknowledged
and is cut off when the log is opened again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import queue
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlplan.errors import UsageError

__all__ = [
    "LOG_DIR",
    "PiiPolicy",
    "PredictionLog",
    "compact_segments",
    "log_files",
    "query_log",
]

LOG_DIR = "predictions"
_SEGMENT = "seg-{:06d}"
_COLUMNS = (
    "kind",
    "request_id",
    "time",
    "model",
    "version",
    "route",
    "status",
    "latency_ms",
    "inputs",
    "outputs",
    "error",
)


@dataclass(frozen=True)
class PiiPolicy:
    """How personal data in a record's inputs is kept out of the log: by column name,
    ``redact`` (replaced) or ``hash`` (HMAC-SHA-256 with the log's own key, so equal values
    stay joinable without being readable)."""

    columns: frozenset[str]
    mode: Literal["redact", "hash"] = "hash"
    key: bytes = b""

    def apply(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``record`` with its PII values redacted or hashed."""
        out = {}
        for name, value in record.items():
            if name in self.columns and value is not None:
                if self.mode == "redact":
                    out[name] = "<redacted>"
                else:
                    digest = hmac.new(self.key, str(value).encode(), hashlib.sha256)
                    out[name] = "hmac:" + digest.hexdigest()[:32]
            else:
                out[name] = value
        return out


def _pii_key(folder: Path) -> bytes:
    path = folder / ".pii-key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def _segments(folder: Path, suffix: str) -> list[Path]:
    return sorted(folder.glob(f"seg-*.{suffix}"))


def _number(path: Path) -> int:
    return int(path.stem.split("-")[1])


def _recover(path: Path) -> int:
    """Cut a torn last line off an open segment; the number of complete records."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    complete = data[:end]
    records = complete.count(b"\n")
    if end != len(data):
        with path.open("r+b") as handle:
            handle.truncate(end)
            handle.flush()
            os.fsync(handle.fileno())
    return records


@dataclass
class _Pending:
    line: bytes
    done: Future[None] | None


@dataclass
class LogStats:
    """What the log has done since it was opened."""

    written: int = 0
    dropped: int = 0
    commits: int = 0
    segments_closed: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class PredictionLog:
    """An append-only, segmented, group-committed log of one server's records.

    Parameters
    ----------
    folder
        Where the segments live (created).
    mode
        ``acked``: :meth:`append` returns a future that completes once the record is on
        disk. ``async``: it returns at once; ``max_pending`` bounds what a crash can lose.
    segment_bytes, segment_seconds
        When the open segment is closed and a new one started.
    """

    def __init__(
        self,
        folder: Path,
        *,
        mode: Literal["acked", "async"] = "acked",
        max_pending: int = 10_000,
        segment_bytes: int = 64 * 1024 * 1024,
        segment_seconds: float = 3600.0,
        pii: PiiPolicy | None = None,
    ) -> None:
        if mode not in {"acked", "async"}:
            raise UsageError(f"deployment.logging.mode must be acked or async; got {mode!r}")
        self.folder = folder
        self.mode = mode
        self.segment_bytes = segment_bytes
        self.segment_seconds = segment_seconds
        folder.mkdir(parents=True, exist_ok=True)
        self.pii = pii or PiiPolicy(frozenset())
        if self.pii.columns and not self.pii.key:
            self.pii = PiiPolicy(self.pii.columns, self.pii.mode, _pii_key(folder))
        self.stats = LogStats()
        self._queue: queue.Queue[_Pending | None] = queue.Queue(
            maxsize=max_pending if mode == "async" else 0
        )
        self._lock = threading.Lock()
        opened = _segments(folder, "jsonl")
        closed = _segments(folder, "parquet")
        for extra in opened[:-1]:  # a crash between closing and compacting: keep as closed
            self.stats.extra["recovered_segments"] = (
                self.stats.extra.get("recovered_segments", 0) + 1
            )
            _recover(extra)
        if opened:
            self._path = opened[-1]
            _recover(self._path)
        else:
            last = max((_number(p) for p in [*opened, *closed]), default=-1)
            self._path = folder / (_SEGMENT.format(last + 1) + ".jsonl")
        self._handle = self._path.open("ab")
        self._opened_at = time.monotonic()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mlplan-log", daemon=True)
        self._thread.start()

    # -- appending ---------------------------------------------------------------------------

    def record(
        self,
        *,
        kind: str,
        request_id: str,
        model: str,
        version: str,
        route: str,
        status: int,
        latency_ms: float,
        inputs: Iterable[Mapping[str, Any]] | None = None,
        outputs: Any = None,
        error: Any = None,
    ) -> Future[None] | None:
        """Append one request's record (inputs with PII redacted or hashed)."""
        entry = {
            "kind": kind,
            "request_id": request_id,
            "time": dt.datetime.now(dt.UTC).isoformat(),
            "model": model,
            "version": version,
            "route": route,
            "status": status,
            "latency_ms": round(latency_ms, 3),
            "inputs": None
            if inputs is None
            else json.dumps([self.pii.apply(r) for r in inputs], default=str),
            "outputs": None if outputs is None else json.dumps(outputs, default=str),
            "error": None if error is None else json.dumps(error, default=str),
        }
        return self.append(json.dumps(entry, allow_nan=True).encode() + b"\n")

    def append(self, line: bytes) -> Future[None] | None:
        """Queue a line. ``acked``: a future done once it is on disk. ``async``: None, or
        the record is dropped (and counted) when the queue is full."""
        if self._closed:
            raise RuntimeError("the prediction log is closed")
        if self.mode == "acked":
            done: Future[None] = Future()
            self._queue.put(_Pending(line, done))
            return done
        try:
            self._queue.put_nowait(_Pending(line, None))
        except queue.Full:
            with self._lock:
                self.stats.dropped += 1
        return None

    # -- the writer --------------------------------------------------------------------------

    def _rotate(self) -> None:
        self._handle.close()
        self.stats.segments_closed += 1
        closed = self._path
        self._path = self.folder / (_SEGMENT.format(_number(closed) + 1) + ".jsonl")
        self._handle = self._path.open("ab")
        self._opened_at = time.monotonic()

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            batch = [first]
            while True:  # everything already waiting joins this commit
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            pending = [p for p in batch if p is not None]
            stop = any(p is None for p in batch)
            if pending:
                try:
                    self._handle.write(b"".join(p.line for p in pending))
                    self._handle.flush()
                    os.fsync(self._handle.fileno())
                except OSError as exc:
                    for p in pending:
                        if p.done is not None:
                            p.done.set_exception(exc)
                    continue
                with self._lock:
                    self.stats.written += len(pending)
                    self.stats.commits += 1
                for p in pending:
                    if p.done is not None:
                        p.done.set_result(None)
                if (
                    self._handle.tell() >= self.segment_bytes
                    or time.monotonic() - self._opened_at >= self.segment_seconds
                ):
                    self._rotate()

    def close(self) -> None:
        """Write everything queued, then stop (the server calls this on shutdown)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._handle.close()

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- reading, compaction, retention --------------------------------------------------------------


def log_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """Closed Parquet segments and JSONL segments, oldest first."""
    return _segments(folder, "parquet"), _segments(folder, "jsonl")


def _read_jsonl(path: Path) -> Any:
    import pyarrow as pa

    rows = []
    for line in path.read_bytes().splitlines():
        with contextlib.suppress(ValueError):  # a torn last line of an open segment
            rows.append(json.loads(line))
    columns = {name: [r.get(name) for r in rows] for name in _COLUMNS}
    schema = _schema()
    return pa.table({name: pa.array(columns[name], schema.field(name).type) for name in _COLUMNS})


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("kind", pa.string()),
            ("request_id", pa.string()),
            ("time", pa.string()),
            ("model", pa.string()),
            ("version", pa.string()),
            ("route", pa.string()),
            ("status", pa.int64()),
            ("latency_ms", pa.float64()),
            ("inputs", pa.string()),
            ("outputs", pa.string()),
            ("error", pa.string()),
        ]
    )


def compact_segments(folder: Path, *, retention_days: int | None = None) -> dict[str, int]:
    """Turn closed JSONL segments (every one but the newest) into Parquet, atomically, and
    delete Parquet segments whose newest record is older than ``retention_days``."""
    import pyarrow.parquet as pq

    closed_jsonl = _segments(folder, "jsonl")[:-1]
    compacted = 0
    for path in closed_jsonl:
        table = _read_jsonl(path)
        target = path.with_suffix(".parquet")
        temp = path.with_suffix(".parquet.tmp")
        pq.write_table(table, temp)
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())
        temp.replace(target)
        path.unlink()
        compacted += 1
    removed = 0
    if retention_days is not None:
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=retention_days)
        for path in _segments(folder, "parquet"):
            times = pq.read_table(path, columns=["time"]).column("time").to_pylist()
            newest = max((dt.datetime.fromisoformat(t) for t in times if t), default=None)
            if newest is None or newest < cutoff:
                path.unlink()
                removed += 1
    return {"compacted": compacted, "removed": removed}


def query_log(folder: Path, sql: str) -> Any:
    """Run ``sql`` over the log as the table ``predictions`` (DuckDB); an Arrow table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlplan.data._sql import sandboxed_duckdb
    from mlplan.errors import DataError

    # One model's folder, or the folder of every model's log.
    parquet = sorted(folder.rglob("seg-*.parquet"))
    jsonl = sorted(folder.rglob("seg-*.jsonl"))
    parts = [pq.read_table(p) for p in parquet] + [_read_jsonl(p) for p in jsonl]
    table = pa.concat_tables(parts) if parts else _schema().empty_table()
    con = sandboxed_duckdb()
    try:
        con.register("predictions", table)
        return con.sql(sql).to_arrow_table()
    except Exception as exc:  # duckdb raises many error types; all mean "this query fails"
        raise DataError(f"the query failed: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
