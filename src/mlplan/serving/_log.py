"""The prediction log: every request and response appended to a durable, segmented log.

Layout, under ``.mlplan/predictions/<model>/``, one folder per writer (a server process)::

    w-20261128T221500-4242-1a2b/
        .lock                 held (flock) while the writer lives
        seg-000001.jsonl      open segment: one JSON record per line, appended
        seg-000000.parquet    closed segments, compacted (temp file + atomic rename)
    .compact.lock             held (flock) by the one process compacting the model's log
    w-.../.seg-000000.*.tmp   a compaction's Parquet file until it is complete (renamed)

One writer thread drains a queue and commits in groups: it writes every record waiting,
calls ``fsync`` once, then acknowledges them all. In ``acked`` mode a request is answered
only after its record is on disk; in ``async`` mode it is answered at once and the queue is
bounded, so a crash loses at most ``max_pending`` queued records plus the group being
written, and records refused when it is full are counted exactly. A write or ``fsync`` that
fails is cut back off the file, so a retried request is never logged twice. A torn last line
(a crash mid-write) was never acknowledged; readers skip it and compaction drops it.

Compaction streams: a segment is parsed 32 KB at a time and written as Parquet row groups of
about 8 MB, so its memory is bounded by those, not by the segment's or the log's size. A
server compacts in the background (``_compactor.py``), never before it is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import hashlib
import hmac
import json
import os
import queue
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from mlplan.data import sandboxed_duckdb
from mlplan.errors import DataError, UsageError

__all__ = [
    "LOG_DIR",
    "WRITE_FAILURES",
    "PiiPolicy",
    "PredictionLog",
    "compact_segments",
    "log_files",
    "log_key",
    "query_log",
    "time_text",
    "window_segments",
    "write_failure",
]

_CHUNK_BYTES = 32 << 10
"""How much of a JSONL segment is parsed at a time: a compaction's memory is bounded by it,
and a server's compactor pauses after each (parsing holds the interpreter: small chunks keep
the requests' threads waiting for it a fraction of a millisecond, not the 5 ms switch)."""
_ROW_GROUP_BYTES = 8 << 20
"""About how much Arrow data makes one Parquet row group when a segment is compacted."""

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
    "client_id",
    "deployment",
)


@dataclass(frozen=True)
class PiiPolicy:
    """How personal data in a record's inputs is kept out of the log: by column name,
    ``redact`` (replaced) or ``hash`` (HMAC-SHA-256 with the log's own key, so equal values
    stay joinable without being readable)."""

    columns: frozenset[str]
    mode: Literal["redact", "hash"] = "hash"
    key: bytes = b""

    def apply(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        """``record`` with its PII values redacted or hashed (a copy; the record itself
        when it holds no PII column)."""
        if self.columns.isdisjoint(record):
            return record
        out = {}
        for name, value in record.items():
            if name in self.columns and value is not None:
                if isinstance(value, float) and value.is_integer():
                    value = int(value)  # 40 and 40.0 hash alike
                if self.mode == "redact":
                    out[name] = "<redacted>"
                else:
                    digest = hmac.new(self.key, str(value).encode(), hashlib.sha256)
                    out[name] = "hmac:" + digest.hexdigest()[:32]
            else:
                out[name] = value
        return out


def log_key(folder: Path) -> bytes:
    """The log's key, made once for the model's log (several workers may race): it hashes
    personal data and the strings a client chose, and signs the request ids the servers
    issue (so it outlives restarts; deleting it makes every earlier id unknown)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".pii-key"
    if not path.exists():
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".pii-key.")
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)  # atomic: the first writer's key wins, whole
        except FileExistsError:
            pass
        finally:
            Path(temp).unlink()
    key = bytes.fromhex(path.read_text().strip())
    if len(key) < 16:
        raise UsageError(f"{path} holds no usable key; delete it to make a new one")
    return key


def _hold_lock(folder: Path) -> Any:
    import fcntl

    handle = (folder / ".lock").open("w")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


def _writer_alive(folder: Path) -> bool:
    """Whether a live writer holds ``folder``'s lock."""
    import fcntl

    path = folder / ".lock"
    if not path.exists():
        return False
    with path.open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


def _segments(folder: Path, suffix: str) -> list[Path]:
    return sorted(folder.glob(f"seg-*.{suffix}"))


def _number(path: Path) -> int:
    return int(path.stem.split("-")[1])


@dataclass
class _Pending:
    line: bytes
    done: Future[None] | None
    waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None


def _settle(waiters: list[asyncio.Future[None]], exc: BaseException | None) -> None:
    """In the event loop: complete every waiter of one commit (a cancelled one is gone)."""
    for waiter in waiters:
        if not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)


def _wake(pending: list[_Pending], exc: BaseException | None) -> None:
    """Complete the waiters of a commit: thread futures one by one, and each event loop's
    waiters with one call into that loop (one wake-up per commit, not per request)."""
    loops: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for p in pending:
        _resolve(p.done, exc)
        if p.waiter is not None:
            loops.setdefault(p.waiter[0], []).append(p.waiter[1])
    for loop, waiters in loops.items():
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(_settle, waiters, exc)


def _resolve(done: Future[None] | None, exc: BaseException | None) -> None:
    """Complete a waiter's future, unless it was cancelled (its request is gone)."""
    if done is None or done.done():
        return
    with contextlib.suppress(Exception):  # cancelled meanwhile: nobody waits for it
        if exc is None:
            done.set_result(None)
        else:
            done.set_exception(exc)


def _sync(fd: int) -> None:
    """Make what was written to ``fd`` durable: its data and its size, not its timestamps
    (fdatasync where the system has it: about an eighth cheaper than fsync on ext4 here)."""
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


WRITE_FAILURES = (
    "no_space",
    "quota",
    "file_too_large",
    "io_error",
    "read_only",
    "permission",
    "other",
)
"""Why a write to the log failed: the disk is full (``ENOSPC``), a quota is used up
(``EDQUOT``), the file reached the process's size limit (``EFBIG``), the device failed
(``EIO``), the file system is read-only (``EROFS``), access was denied (``EACCES``,
``EPERM``), or anything else. A fixed vocabulary: metric labels stay bounded."""

_ERRNO_REASONS = {
    errno.ENOSPC: "no_space",
    errno.EDQUOT: "quota",
    errno.EFBIG: "file_too_large",
    errno.EIO: "io_error",
    errno.EROFS: "read_only",
    errno.EACCES: "permission",
    errno.EPERM: "permission",
}


def write_failure(exc: BaseException) -> str:
    """Why a write failed with ``exc``: one of :data:`WRITE_FAILURES`, by its ``errno``.

    Examples
    --------
    >>> write_failure(OSError(errno.ENOSPC, "No space left on device"))
    'no_space'
    >>> write_failure(ValueError("I/O operation on closed file"))
    'other'
    """
    code = exc.errno if isinstance(exc, OSError) else None
    return "other" if code is None else _ERRNO_REASONS.get(code, "other")


@dataclass
class LogStats:
    """What the log has done since it was opened: records written; records that failed
    (``failed``, and by reason in ``failures``: every reason of :data:`WRITE_FAILURES` is
    there from the start); records ``dropped``, answered without being logged (``async`` mode:
    the queue was full, or their write failed); group commits; segments closed."""

    written: int = 0
    dropped: int = 0
    failed: int = 0
    commits: int = 0
    segments_closed: int = 0
    failures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WRITE_FAILURES, 0))


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
    on_rotate
        Called (in the writer's thread; it must be quick) after each segment is closed: a
        server wakes its compactor with it.
    clock
        What stamps each record's ``time`` (default: now, in UTC); a test of windows hours
        apart sets it.
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
        on_rotate: Callable[[], None] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        if mode not in {"acked", "async"}:
            raise UsageError(f"deployment.logging.mode must be acked or async; got {mode!r}")
        self.mode = mode
        self.segment_bytes = segment_bytes
        self.segment_seconds = segment_seconds
        self._on_rotate = on_rotate
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        folder.mkdir(parents=True, exist_ok=True)
        self.pii = pii or PiiPolicy(frozenset())
        if self.pii.columns and not self.pii.key:
            self.pii = PiiPolicy(self.pii.columns, self.pii.mode, log_key(folder))
        # Each writer (server process) has its own folder, locked while it lives: workers
        # never share a segment, and compaction leaves a live writer's open segment alone.
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        self.folder = folder / f"w-{stamp}-{os.getpid()}-{secrets.token_hex(2)}"
        self.folder.mkdir()
        self._lock_file = _hold_lock(self.folder)
        folder = self.folder
        self.stats = LogStats()
        # A SimpleQueue (no lock and condition per put); async mode bounds it by its size.
        self._queue: queue.SimpleQueue[_Pending | list[_Pending] | None] = queue.SimpleQueue()
        self._gathered: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._path = folder / (_SEGMENT.format(0) + ".jsonl")  # a new writer's own folder
        self._handle = self._path.open("ab")
        self._opened_at = time.monotonic()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mlplan-log", daemon=True)
        self._thread.start()

    # -- appending ---------------------------------------------------------------------------

    def record(self, **fields: Any) -> Future[None] | None:
        """Append one request's record (the fields of :meth:`_line`; inputs with PII
        redacted or hashed)."""
        return self.append(self._line(**fields))

    def record_async(self, **fields: Any) -> asyncio.Future[None] | None:
        """:meth:`record` for a caller in an event loop: ``acked``, a future of that loop,
        done once the record is on disk; ``async``, None."""
        line = self._line(**fields)
        if self.mode != "acked":
            self.append(line)
            return None
        if self._closed:
            raise RuntimeError("the prediction log is closed")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        gathered = self._gathered.get(loop)
        if gathered is None:
            gathered = self._gathered[loop] = []
            loop.call_soon(self._hand_over, loop)
        gathered.append(_Pending(line, None, (loop, waiter)))
        return waiter

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """In the loop: the records of one turn of the loop go to the writer together (one
        hand-over between threads per turn, not per request)."""
        gathered = self._gathered.pop(loop, None)
        if not gathered:
            return
        if self._closed:
            _wake(gathered, RuntimeError("the prediction log is closed"))
        else:
            self._queue.put(gathered)

    def _line(
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
        client_id: str | None = None,
        deployment: str | None = None,
    ) -> bytes:
        entry = {
            "kind": kind,
            "request_id": request_id,
            "time": self._clock().astimezone(dt.UTC).isoformat(),
            "model": model,
            "version": version,
            "route": route,
            "status": status,
            "latency_ms": round(latency_ms, 3),
            # Nested as they are (one encoding per record); readers turn them into JSON text.
            "inputs": None if inputs is None else [self.pii.apply(r) for r in inputs],
            "outputs": outputs,
            "error": error,
            # A request id the client chose, as its keyed hash (see _ids.keyed_hash).
            "client_id": client_id,
            # The deployment a server of one answered for (mlplan serve --deployment).
            "deployment": deployment,
        }
        import orjson  # the serving extra's; imported here so mlplan.serving loads without it

        return orjson.dumps(entry, default=str) + b"\n"

    def append(self, line: bytes) -> Future[None] | None:
        """Queue a line. ``acked``: a future done once it is on disk. ``async``: None, or
        the record is dropped (and counted) when the queue is full."""
        if self._closed:
            raise RuntimeError("the prediction log is closed")
        if self.mode == "acked":
            done: Future[None] = Future()
            self._queue.put(_Pending(line, done))
            return done
        if self._queue.qsize() >= self._max_pending:
            with self._lock:
                self.stats.dropped += 1
        else:
            self._queue.put(_Pending(line, None))
        return None

    # -- the writer --------------------------------------------------------------------------

    def _rotate(self) -> None:
        following = self.folder / (_SEGMENT.format(_number(self._path) + 1) + ".jsonl")
        try:
            handle = following.open("ab")
        except OSError:
            return  # keep writing to this segment; rotation is tried again after the next commit
        self._handle.close()
        self.stats.segments_closed += 1
        self._path, self._handle = following, handle
        self._opened_at = time.monotonic()
        if self._on_rotate is not None:
            self._on_rotate()

    def _commit(self, pending: list[_Pending]) -> None:
        try:
            if self._handle.closed:  # a failed write could not reopen its segment: try again
                self._handle = self._path.open("ab")
            start = self._handle.tell()
        except OSError as exc:
            self._failed(pending, exc)
            return
        try:
            self._handle.write(b"".join(p.line for p in pending))
            self._handle.flush()
            _sync(self._handle.fileno())
        except OSError as exc:
            self._undo(start)
            self._failed(pending, exc)
            return
        with self._lock:
            self.stats.written += len(pending)
            self.stats.commits += 1
        # Rotate before acknowledging: once a record is acknowledged, the segments are as
        # they will stay until the next commit (what a compaction or a reader sees is settled).
        # The records are on disk already: a failed rotation must not fail them.
        if (
            self._handle.tell() >= self.segment_bytes
            or time.monotonic() - self._opened_at >= self.segment_seconds
        ):
            with contextlib.suppress(Exception):  # tried again after the next commit
                self._rotate()
        _wake(pending, None)

    def _failed(self, pending: list[_Pending], exc: BaseException) -> None:
        """A commit that failed: its records counted by reason (in ``async`` mode, dropped
        too: they were answered already), and their waiters told."""
        with self._lock:
            stats = self.stats
            stats.failed += len(pending)
            stats.failures[write_failure(exc)] += len(pending)
            if self.mode == "async":
                stats.dropped += len(pending)
        _wake(pending, exc)

    def _undo(self, size: int) -> None:
        """Cut a failed write back off the segment (a retry must not log it twice)."""
        with contextlib.suppress(OSError):
            self._handle.close()
        try:
            with self._path.open("r+b") as handle:
                handle.truncate(size)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            pass  # the tail stays torn; readers skip an incomplete last line
        with contextlib.suppress(OSError):  # else the next commit reopens it, or fails alike
            self._handle = self._path.open("ab")

    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while True:  # everything already waiting joins this commit
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            pending: list[_Pending] = []
            for item in batch:
                if item is None:
                    stop = True
                elif isinstance(item, list):
                    pending += item
                else:
                    pending.append(item)
            if pending:
                try:
                    self._commit(pending)
                except Exception as exc:  # never let the writer die with requests waiting
                    self._failed(pending, exc)

    def close(self) -> None:
        """Write everything queued, then stop (the server calls this on shutdown)."""
        if self._closed:
            return
        self._closed = True
        for gathered in list(self._gathered.values()):  # handed over before the stop
            self._queue.put(gathered)
        self._gathered.clear()
        self._queue.put(None)
        self._thread.join()
        self._handle.close()
        self._lock_file.close()  # releases the lock: compaction may take the last segment

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- reading, compaction, retention --------------------------------------------------------------


def log_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """Closed Parquet segments and JSONL segments, oldest first."""
    return _segments(folder, "parquet"), _segments(folder, "jsonl")


def _read_jsonl(path: Path) -> Any:
    """A JSONL segment as one Arrow table of the log's schema."""
    tables = list(_jsonl_tables(path))
    return pa.concat_tables(tables) if tables else _schema().empty_table()


def _jsonl_tables(path: Path) -> Iterator[Any]:
    """A JSONL segment as Arrow tables of the log's schema, one per ``_CHUNK_BYTES`` of lines;
    a line that is not JSON (a torn last line) is dropped."""
    loads = _json_loads()
    for lines in _jsonl_lines(path, _CHUNK_BYTES):
        rows = []
        for line in lines:
            try:
                rows.append(loads(line))
            except ValueError:  # orjson refuses NaN and integers past 64 bits; json takes them
                with contextlib.suppress(ValueError):  # a torn last line of a segment
                    rows.append(json.loads(line))
        yield _table(rows)


def _jsonl_lines(path: Path, chunk_bytes: int) -> Iterator[list[bytes]]:
    """The lines of a JSONL segment, about ``chunk_bytes`` at a time (the last, unended line
    too: it may be whole)."""
    with path.open("rb") as handle:
        rest = b""
        while block := handle.read(chunk_bytes):
            *lines, rest = (rest + block).split(b"\n")
            if lines:
                yield lines
        if rest:
            yield [rest]


def _json_loads() -> Callable[[bytes], Any]:
    """orjson's parser where the serving extra is installed (about twice as fast), else json's:
    they read the writer's lines alike (its encoder, orjson's, writes no NaN and no integer
    past 64 bits)."""
    try:
        import orjson
    except ImportError:
        return json.loads
    return orjson.loads


def _table(rows: list[Any]) -> Any:
    """Records as an Arrow table of the log's schema; nested values as JSON text."""
    columns = {name: [r.get(name) for r in rows] for name in _COLUMNS}
    for name in ("inputs", "outputs", "error"):
        columns[name] = [
            v if v is None or isinstance(v, str) else json.dumps(v) for v in columns[name]
        ]
    schema = _schema()
    return pa.table({name: pa.array(columns[name], schema.field(name).type) for name in _COLUMNS})


def _schema() -> Any:

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
            ("client_id", pa.string()),
            ("deployment", pa.string()),
        ]
    )


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _compaction_lock(folder: Path, *, wait: bool) -> Iterator[bool]:
    """Hold ``folder``'s compaction lock (``flock`` on ``.compact.lock``; one compaction of a
    model's log at a time, across processes). Yields False, holding nothing, when another
    process holds it and ``wait`` is False."""
    import fcntl

    with (folder / ".compact.lock").open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def compaction_leftovers(logs: Path) -> Iterator[list[Path]]:
    """The temporary files that killed compactions left in the prediction logs under
    ``logs`` (``.mlplan/predictions``: every model's), each model's compaction lock held
    until the block ends, so the caller may remove them; a model whose log is being
    compacted now is skipped (that compaction owns its temporary files)."""
    with contextlib.ExitStack() as stack:
        found: list[Path] = []
        models = sorted(p for p in logs.iterdir() if p.is_dir()) if logs.is_dir() else []
        for model in models:
            if not (model / ".compact.lock").exists() or not stack.enter_context(
                _compaction_lock(model, wait=False)
            ):
                continue  # never compacted (no leftovers), or a compaction is under way
            found += sorted(model.glob("w-*/.seg-*.tmp")) + sorted(model.glob(".seg-*.tmp"))
        yield found


def compact_segments(
    folder: Path,
    *,
    retention_days: int | None = None,
    wait: bool = True,
    stop: Callable[[], bool] | None = None,
) -> dict[str, int]:
    """Turn closed JSONL segments into Parquet, atomically, in every writer folder under
    ``folder`` (a live writer's open segment is left alone; a dead writer's last one is
    compacted too, its torn line dropped), and delete Parquet segments whose newest record
    is older than ``retention_days``.

    A segment is streamed, parsed 32 KB at a time and written in row groups of about
    8 MB of Arrow data: memory is bounded by those, whatever the segment's or the log's size.
    ``stop`` is asked after each chunk (a server's compactor pauses in it, and asks to stop
    on shutdown): once it answers True, the segment under way is abandoned, its temporary
    file deleted and the segment left as it was, and what was done so far is returned.

    One compaction of ``folder`` runs at a time, across processes: another one waits for
    it, or, with ``wait`` False, does nothing (``busy`` is 1 in what it returns)."""

    folder.mkdir(parents=True, exist_ok=True)
    with _compaction_lock(folder, wait=wait) as held:
        if not held:
            return {"compacted": 0, "removed": 0, "busy": 1}
        return {**_compact(folder, retention_days, stop or (lambda: False)), "busy": 0}


class _Stopped(Exception):
    """A compaction was asked to stop."""


def _compact(folder: Path, retention_days: int | None, stop: Callable[[], bool]) -> dict[str, int]:
    """:func:`compact_segments`, with the compaction lock held."""
    writers = sorted({p.parent for p in folder.rglob("seg-*.*")} | {folder})
    for writer in writers:  # first, even when asked to stop: a clean stop leaves no temp file
        for stale in writer.glob(".seg-*.tmp"):  # left by a compaction that was killed
            stale.unlink(missing_ok=True)
    done = {"compacted": 0, "removed": 0}
    try:
        for writer in writers:
            segments = _segments(writer, "jsonl")
            closed = segments[:-1] if _writer_alive(writer) else segments
            for path in closed:
                _compact_segment(path, stop)
                done["compacted"] += 1
            if retention_days is not None:
                done["removed"] += _expire(writer, retention_days, stop)
    except _Stopped:
        pass
    return done


def _compact_segment(path: Path, stop: Callable[[], bool]) -> None:
    """Write the JSONL segment ``path`` as Parquet beside it, a chunk at a time, to a
    temporary file renamed once complete; then delete the segment."""
    writer = path.parent
    fd, name = tempfile.mkstemp(dir=writer, prefix=f".{path.stem}.", suffix=".tmp")
    os.close(fd)
    temp = Path(name)
    try:
        # Arrow writes the file itself (no Python between it and the disk): row groups of
        # about _ROW_GROUP_BYTES, gathered from the chunks.
        with pq.ParquetWriter(name, _schema()) as out:
            group: list[Any] = []
            size = 0
            for table in _jsonl_tables(path):
                if stop():  # asked after each chunk (a server's compactor pauses in it)
                    raise _Stopped
                group.append(table)
                size += table.nbytes
                if size >= _ROW_GROUP_BYTES:
                    out.write_table(pa.concat_tables(group))
                    group, size = [], 0
            if group:
                out.write_table(pa.concat_tables(group))
        fd = os.open(name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        temp.replace(path.with_suffix(".parquet"))
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    path.unlink()
    _fsync_dir(writer)  # the rename and the unlink survive a crash together


def _expire(writer: Path, retention_days: int, stop: Callable[[], bool]) -> int:
    """Delete ``writer``'s Parquet segments whose newest record is past the retention."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=retention_days)
    removed = 0
    for path in _segments(writer, "parquet"):
        if stop():
            raise _Stopped
        newest = _newest_time(path)
        if newest is None or dt.datetime.fromisoformat(newest) < cutoff:
            path.unlink()
            removed += 1
    return removed


def _newest_time(path: Path) -> str | None:
    """The newest ``time`` in a Parquet segment: from the statistics of its row groups, else
    read a row group at a time. Times are ISO 8601 in UTC, as the writer stamps them, which
    sort as text as they do in time."""
    import pyarrow.compute as pc

    newest: str | None = None
    with pq.ParquetFile(path) as segment:
        column = segment.schema_arrow.get_field_index("time")
        for i in range(segment.metadata.num_row_groups):
            stats = segment.metadata.row_group(i).column(column).statistics
            if stats is not None and stats.has_min_max:
                top = stats.max
            else:
                top = pc.max(segment.read_row_group(i, columns=["time"]).column(0)).as_py()
            if top and (newest is None or top > newest):
                newest = top
    return newest


def query_log(
    folder: Path,
    sql: str,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Any:
    """Run ``sql`` over the log as the table ``predictions`` (DuckDB); an Arrow table.

    Without ``since`` and ``until`` every segment is loaded. With either, the query reads
    only records of ``[since, until)`` (its own ``WHERE`` must say so, on ``time`` as text,
    as :func:`time_text` writes a bound): DuckDB reads the Parquet segments itself, allowed
    those files and no other, the filter pushed into the scan (row groups whose time
    statistics miss it are skipped, only the columns the query names are read, streaming),
    and of the JSONL segments only those that can hold such a record are parsed
    (:func:`window_segments`). A log of millions of records is never loaded whole.

    Raises
    ------
    DataError
        The query fails.
    """

    if since is None and until is None:
        return _query_all(folder, sql)
    with open_log(folder, since=since, until=until) as con:
        try:
            return con.sql(sql).to_arrow_table()
        except Exception as exc:  # duckdb raises many error types; all mean "this query fails"
            raise DataError(f"the query failed: {str(exc).splitlines()[0]}") from None


@contextlib.contextmanager
def open_log(
    folder: Path, *, since: dt.datetime | None, until: dt.datetime | None = None
) -> Iterator[Any]:
    """A DuckDB connection whose view ``predictions`` holds the log's segments that can hold
    records of ``[since, until)`` (see :func:`query_log`), for several queries over them; its
    queries must bound ``time`` themselves, and raise DuckDB's errors.

    Raises
    ------
    DataError
        A JSONL segment that cannot be read.
    """
    parquet, jsonl = window_segments(folder, since=since, until=until)
    con = sandboxed_duckdb(parquet)
    try:
        parts = [_read_segment(p) for p in jsonl]
        # Always the log's whole schema: segments written before a column existed read it as
        # null through the union by name.
        con.register("_jsonl", pa.concat_tables(parts) if parts else _schema().empty_table())
        if parquet:
            listed = ", ".join(_sql_text(str(p)) for p in parquet)
            con.execute(
                f"CREATE TEMP VIEW predictions AS SELECT * FROM _jsonl UNION ALL BY NAME "
                f"SELECT * FROM read_parquet([{listed}], union_by_name = true)"
            )
        else:
            con.execute("CREATE TEMP VIEW predictions AS SELECT * FROM _jsonl")
        yield con
    finally:
        con.close()


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _read_segment(path: Path) -> Any:
    """A JSONL segment as an Arrow table; from its Parquet copy when a compaction took it
    since it was listed."""
    try:
        return _read_jsonl(path)
    except FileNotFoundError:
        return pq.read_table(path.with_suffix(".parquet"), schema=_schema())


def time_text(moment: dt.datetime) -> str:
    """``moment`` as the writer stamps a record's ``time`` (ISO 8601 in UTC), so that a
    bound compares with the records as text, which sorts as time does, and DuckDB can push it
    into the scan of the Parquet segments.

    Examples
    --------
    >>> time_text(dt.datetime(2026, 12, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=2))))
    '2026-12-01T08:00:00+00:00'
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat()


_STAMP_SLACK = dt.timedelta(minutes=10)
"""How far a segment's times may stray from what its first record and its modification time
say: a record is stamped when its request is answered and written by a later group commit,
and a shared file system stamps files with its own clock."""


def window_segments(
    folder: Path, *, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> tuple[list[Path], list[Path]]:
    """The segments under ``folder`` (every writer's) a query of ``[since, until)`` reads:
    every Parquet segment (DuckDB skips their row groups by their statistics), and the JSONL
    segments that can hold a record of the window. A segment last written before ``since``
    cannot (a record is stamped before it is written), nor one whose first record is past
    ``until``, each by more than ``_STAMP_SLACK`` (records of a segment are in time order
    only to within the writer's queue; a shared file system's clock may differ from the
    writers'). A segment whose Parquet copy is complete (a
    compaction in its last step) is read once, from the copy."""
    parquet = sorted(folder.rglob("seg-*.parquet"))
    jsonl = []
    for path in sorted(folder.rglob("seg-*.jsonl")):
        if path.with_suffix(".parquet").exists():
            continue
        try:
            if since is not None and _mtime(path) < since - _STAMP_SLACK:
                continue
            first = _first_time(path)
        except OSError:  # compacted and deleted meanwhile: its copy was listed, or is new
            continue
        if until is not None and first is not None and first - _STAMP_SLACK >= until:
            continue
        jsonl.append(path)
    return parquet, jsonl


def _mtime(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)


def _first_time(path: Path) -> dt.datetime | None:
    """The time of a JSONL segment's first record (None: empty, or not readable as one)."""
    with path.open("rb") as handle:
        line = handle.readline(1 << 20)
    try:
        stamp = json.loads(line)["time"]
        found = dt.datetime.fromisoformat(stamp)
    except (ValueError, KeyError, TypeError):
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=dt.UTC)


def _query_all(folder: Path, sql: str) -> Any:
    """:func:`query_log` over every segment, loaded."""

    # One model's folder, or the folder of every model's log.
    parquet = sorted(folder.rglob("seg-*.parquet"))
    # A segment whose Parquet copy is complete (renamed into place) but not yet deleted (a
    # compaction in its last step, or killed there) is read once, from the copy.
    jsonl = [
        p for p in sorted(folder.rglob("seg-*.jsonl")) if not p.with_suffix(".parquet").exists()
    ]
    parts = [pq.read_table(p) for p in parquet] + [_read_jsonl(p) for p in jsonl]
    # Segments written before a column existed read it as null.
    table = pa.concat_tables(parts, promote_options="default") if parts else _schema().empty_table()
    con = sandboxed_duckdb()
    try:
        con.register("predictions", table)
        return con.sql(sql).to_arrow_table()
    except Exception as exc:  # duckdb raises many error types; all mean "this query fails"
        raise DataError(f"the query failed: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
