"""Continuous mode (``mlplan monitor --follow``): the windows kept up to date as the
prediction log grows, without reading again what was read.

A :class:`Follower` remembers each segment of the log (every writer's folder under the
deployment's or the model's log: JSONL segments being written, Parquet segments compacted)
by its size and modification time. Its first poll measures the windows from ``since`` on
as ``monitor`` does, and stores them. Each later poll lists the segments again and reads
only what is new: the bytes appended to a JSONL segment since the last poll (a whole line
at a time), and a Parquet segment it has not seen. A segment that did not change is never
read again. A Parquet segment that replaced a JSONL segment read before (the compactor's
work) is known by the records read from it: only those past them count as new.

From the new records (only their ``kind``, ``request_id``, ``time``, ``model`` and
``deployment``), it finds which windows must be measured again: the window each new
``prediction`` or ``health`` record of the deployment (or model) falls in, and, for each
new ``feedback`` record (labels, values and events arrive late), the window of the
prediction it names. A prediction is found among the new records, among those of the JSONL
segments read so far (their request ids are kept, a segment's until it is compacted), or
else in the Parquet segments, of which only the ``request_id``, ``time``, ``kind`` and
subject columns are read, row groups older than the span skipped by their statistics
(:attr:`FollowUpdate.looked_up` names them). Then exactly those windows are measured again
and stored with ``monitor`` (one call per run of adjacent windows), each replacing its rows;
``monitor`` reads what its window's query reads (the Parquet row groups of that time, the
JSONL segments that can hold it): "never read again" is about finding what changed.

The span followed starts at the first poll's ``since`` (default: 24 windows before it) and
has no end: records before it are left alone, as are windows whose records retention
removed (stored, they stay as they were). The window under way is measured as far as it
has gone (its throughput over the time elapsed); once it has ended, the next poll measures
it once more, whole.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplan.errors import DataError, ParameterError
from mlplan.monitoring._read import LogSubject
from mlplan.monitoring._windows import (
    MonitorWindow,
    _moment,
    _subject,
    monitor,
    window_bounds,
)
from mlplan.serving import time_text
from mlplan.store import utcnow
from mlplan.workspace import Workspace, parse_duration

__all__ = ["FollowSummary", "FollowUpdate", "Follower", "follow"]

_CHUNK_BYTES = 1 << 20
"""How much of a JSONL segment is read at a time."""
_STAMP_SLACK = dt.timedelta(minutes=10)
"""How much older than ``since`` a JSONL segment's modification time may be and still hold
a record of the span (as ``serving.window_segments`` reckons it)."""
_COLUMNS = ("kind", "request_id", "time", "model", "deployment")
"""What a follower reads of a record."""

_Record = tuple[Any, Any, Any, Any, Any]
"""One record's ``_COLUMNS``."""


@dataclass(frozen=True)
class FollowUpdate:
    """One poll: when (``at``), the windows measured again and stored (every family and
    slice of each), how many new records it found and in which segments (``read``), the
    Parquet segments whose request ids it searched for the predictions new feedback names
    (``looked_up``), and ``monitor``'s notes."""

    poll: int
    at: dt.datetime
    windows: tuple[MonitorWindow, ...]
    records: int
    read: tuple[Path, ...]
    looked_up: tuple[Path, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def bounds(self) -> list[tuple[dt.datetime, dt.datetime]]:
        """The windows measured again, oldest first."""
        return sorted({(w.start, w.end) for w in self.windows})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "poll": self.poll,
            "at": self.at.isoformat(),
            "records": self.records,
            "read": [str(p) for p in self.read],
            "looked_up": [str(p) for p in self.looked_up],
            "bounds": [[s.isoformat(), e.isoformat()] for s, e in self.bounds],
            "windows": [w.to_dict() for w in self.windows],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class FollowSummary:
    """What a :func:`follow` did: its polls, the windows they measured (distinct bounds),
    the new records found after the first poll, and whether it was interrupted (Ctrl-C).

    Examples
    --------
    >>> FollowSummary(polls=3, windows=2, records=40, interrupted=True).line()
    'stopped after 3 polls: 2 windows measured, 40 new records read after the first poll'
    """

    polls: int
    windows: int
    records: int
    interrupted: bool = False

    def line(self) -> str:
        """One line saying so."""
        how = "stopped" if self.interrupted else "done"
        return (
            f"{how} after {self.polls} poll{'s' * (self.polls != 1)}: {self.windows} "
            f"window{'s' * (self.windows != 1)} measured, {self.records} new "
            f"record{'s' * (self.records != 1)} read after the first poll"
        )


@dataclass
class _Seen:
    """What a follower knows of one segment: its size and modification time when last
    listed and, for a JSONL segment, how far it was read (whole lines), how many records
    that held and their digest (to recognise them in its Parquet copy), and the window of
    each of the subject's predictions in it (to place the feedback on them)."""

    size: int
    mtime_ns: int
    offset: int = 0
    records: int = 0
    digest: Any = field(default_factory=hashlib.blake2b)
    predictions: dict[str, int] = field(default_factory=dict)
    read: bool = True


class Follower:
    """The windows of a deployment (or a model's whole log) kept up to date, one
    :meth:`poll` at a time (see the module's notes).

    Parameters
    ----------
    ws
        The project.
    name
        The deployment (default: ``production``, else the only one) or a model.
    window
        Each window's length (``90s``, ``30m``, ``1h``).
    since
        Where the span starts: a time, ISO 8601 text, or a duration before the first poll
        (default: 24 windows before it).

    Raises
    ------
    DeploymentNotFoundError
        ``name`` is neither a deployment nor a model.
    ParameterError
        A malformed window.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from mlplan.plan import render_plan
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "mlplan.yaml").write_text(render_plan("churn", task="binary", target="y"))
    >>> Follower(Workspace(root, store_url="sqlite://"), "production")
    Traceback (most recent call last):
    ...
    mlplan.errors.DeploymentNotFoundError: no deployment or model 'production'; ...
    """

    def __init__(
        self,
        ws: Workspace,
        name: str | None = None,
        *,
        window: str = "1h",
        since: dt.datetime | str | None = None,
    ) -> None:
        self.ws = ws
        self.subject: LogSubject = _subject(ws, name)
        self.window = window
        self.seconds = parse_duration(window, param="window").total_seconds()
        if self.seconds <= 0:
            raise ParameterError("window", f"{{param}} must be longer than 0; got {window!r}")
        self._since = since
        self.start: dt.datetime | None = None
        """Where the span starts (set by the first poll)."""
        self.polls = 0
        self._first = 0
        self._seen: dict[Path, _Seen] = {}
        self._under_way: set[int] = set()

    # -- polling -----------------------------------------------------------------------------

    def poll(self, *, now: dt.datetime | None = None) -> FollowUpdate:
        """Find what is new in the log and measure again, and store, the windows it falls in
        (the first poll: every window of the span); ``now`` (default: the clock's) is what
        the window under way is measured up to.

        A poll that fails (or is interrupted) leaves the follower as it was: the next one
        finds the same records new again.

        Raises
        ------
        ParameterError
            The first poll: ``since`` is not a time nor a duration, or not before ``now``.
        DataError
            A log the query cannot read.
        """
        now = _utc(now or utcnow())
        if self.start is None:
            return self._first_poll(now)
        listing = self._list()
        read: list[Path] = []
        records: list[_Record] = []
        seen: dict[Path, _Seen] = {}
        for path, (size, mtime_ns) in listing.items():
            old = self._seen.get(path)
            if old is not None and (old.size, old.mtime_ns) == (size, mtime_ns):
                seen[path] = old
                continue
            found = self._read_changed(path, size, mtime_ns, old)
            if found is None:  # gone meanwhile (compacted): its copy is listed next time
                if old is not None:
                    seen[path] = old
                continue
            seen[path], new = found
            read.append(path)
            records += new
        buckets, feedback = self._buckets(records)
        looked_up: list[Path] = []
        if feedback:
            buckets |= self._placed(feedback, records, seen, looked_up)
        due = {b for b in self._under_way if self._end(b) <= now}
        windows, notes = self._measure({b for b in buckets if b >= self._first} | due, now)
        self._seen = seen  # only now: a poll that failed leaves its records new
        self.polls += 1
        return FollowUpdate(
            self.polls, now, windows, len(records), tuple(read), tuple(looked_up), notes
        )

    def _first_poll(self, now: dt.datetime) -> FollowUpdate:
        """Remember every segment (reading the JSONL ones that can hold the span, for their
        predictions' request ids), then measure the span as ``monitor`` does."""
        _, start, _ = window_bounds(self.window, since=_moment(self._since, "since", now), now=now)
        seen: dict[Path, _Seen] = {}
        read = []
        for path, (size, mtime_ns) in self._list().items():
            recent = mtime_ns >= (start - _STAMP_SLACK).timestamp() * 1e9
            if path.suffix == ".jsonl" and recent:
                found = self._read_changed(path, size, mtime_ns, None)
                if found is not None:
                    seen[path] = found[0]
                    read.append(path)
                continue
            # A Parquet segment (its ids are searched only when feedback needs them), or a
            # JSONL one last written before the span: remembered, not read.
            seen[path] = _Seen(size, mtime_ns, offset=size, read=False)
        result = monitor(
            self.ws, self.subject.name, window=self.window, since=start, now=now, store=True
        )
        self._note_under_way(result.windows, now)
        self.start, self._first, self._seen = start, self._bucket_of(start), seen
        self.polls += 1
        return FollowUpdate(
            self.polls, now, result.windows, 0, tuple(read), (), tuple(result.notes)
        )

    # -- the segments ------------------------------------------------------------------------

    def _list(self) -> dict[Path, tuple[int, int]]:
        """Every segment of the subject's log, with its size and modification time; a JSONL
        segment whose Parquet copy is complete is listed as the copy only."""
        folder = self.subject.folder(self.ws)
        if not folder.is_dir():
            return {}
        found: dict[Path, tuple[int, int]] = {}
        parquet = set(folder.rglob("seg-*.parquet"))
        for path in sorted(parquet | set(folder.rglob("seg-*.jsonl"))):
            if path.suffix == ".jsonl" and path.with_suffix(".parquet") in parquet:
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # compacted and deleted meanwhile
                continue
            found[path] = (stat.st_size, stat.st_mtime_ns)
        return found

    def _read_changed(
        self, path: Path, size: int, mtime_ns: int, old: _Seen | None
    ) -> tuple[_Seen, list[_Record]] | None:
        """What is new in a segment that is new or changed: its state now, and the new
        records (None: it is gone)."""
        try:
            if path.suffix == ".jsonl":
                return self._read_jsonl(path, size, mtime_ns, old)
            return self._read_parquet(path, size, mtime_ns)
        except FileNotFoundError:
            return None

    def _read_jsonl(
        self, path: Path, size: int, mtime_ns: int, old: _Seen | None
    ) -> tuple[_Seen, list[_Record]]:
        """The whole lines appended to a JSONL segment since it was last read (all of it
        when it is new, or shorter than what was read: cut back after a failed write)."""
        if old is not None and old.read and size >= old.offset:  # a copy: the poll may fail
            state = _Seen(
                size, mtime_ns, old.offset, old.records, old.digest.copy(), dict(old.predictions)
            )
        else:
            state = _Seen(size, mtime_ns)
        new: list[_Record] = []
        for line in _lines(path, state.offset, state):
            record = _parsed(line)
            if record is None:
                continue
            new.append(record)
            state.records += 1
            state.digest.update(_key(record))
            bucket = self._own_prediction(record)
            if bucket is not None:
                state.predictions[str(record[1])] = bucket
        return state, new

    def _read_parquet(self, path: Path, size: int, mtime_ns: int) -> tuple[_Seen, list[_Record]]:
        """A Parquet segment's records (only :data:`_COLUMNS`); when it is the copy of a
        JSONL segment read before, only those past the ones read there."""
        rows = _parquet_records(path)
        was = self._seen.get(path.with_suffix(".jsonl"))
        if was is not None and was.read and 0 < was.records <= len(rows):
            digest = hashlib.blake2b()
            for record in rows[: was.records]:
                digest.update(_key(record))
            if digest.digest() == was.digest.digest():
                rows = rows[was.records :]
        return _Seen(size, mtime_ns, offset=size, read=False), rows

    # -- which windows -----------------------------------------------------------------------

    def _own(self, record: _Record) -> bool:
        """Whether a record is the subject's (its deployment's, or its model's)."""
        if self.subject.deployment is not None:
            return bool(record[4] == self.subject.deployment)
        return bool(record[3] == self.subject.model)

    def _own_prediction(self, record: _Record) -> int | None:
        """The window of the subject's prediction (None: not one)."""
        if record[0] != "prediction" or not self._own(record):
            return None
        return self._bucket(record[2])

    def _buckets(self, records: Iterable[_Record]) -> tuple[set[int], set[str]]:
        """The windows the new predictions and health records fall in, and the request ids
        the new feedback names."""
        buckets: set[int] = set()
        feedback: set[str] = set()
        for record in records:
            kind = record[0]
            if kind == "feedback" and record[1] is not None:
                feedback.add(str(record[1]))
            elif kind in ("prediction", "health") and self._own(record):
                bucket = self._bucket(record[2])
                if bucket is not None:
                    buckets.add(bucket)
        return buckets, feedback

    def _placed(
        self,
        feedback: set[str],
        records: list[_Record],
        seen: dict[Path, _Seen],
        looked_up: list[Path],
    ) -> set[int]:
        """The windows of the predictions the new feedback names: among the new records,
        the JSONL segments' kept ids, else the Parquet segments' id columns."""
        buckets: set[int] = set()
        left = set(feedback)
        for record in records:
            bucket = self._own_prediction(record)
            if bucket is not None and record[1] in left:
                buckets.add(bucket)
                left.discard(str(record[1]))
        for state in seen.values():
            if not left:
                break
            for request_id in [r for r in left if r in state.predictions]:
                buckets.add(state.predictions[request_id])
                left.discard(request_id)
        if not left:
            return buckets
        since = time_text(_at(self._first * self.seconds))
        for path in (p for p in seen if p.suffix == ".parquet"):
            looked_up.append(path)
            try:
                rows = _parquet_records(path, since=since)
            except FileNotFoundError:  # removed by retention meanwhile
                continue
            for record in rows:
                bucket = self._own_prediction(record)
                if bucket is not None and record[1] in left:
                    buckets.add(bucket)
                    left.discard(str(record[1]))
            if not left:
                break
        return buckets

    def _bucket(self, stamp: Any) -> int | None:
        """The window (counted from the epoch) a record's time falls in (None: no time)."""
        if not isinstance(stamp, str):
            return None
        try:
            moment = dt.datetime.fromisoformat(stamp)
        except ValueError:
            return None
        return self._bucket_of(_utc(moment))

    def _bucket_of(self, moment: dt.datetime) -> int:
        return math.floor(moment.timestamp() / self.seconds)

    def _end(self, bucket: int) -> dt.datetime:
        return _at((bucket + 1) * self.seconds)

    # -- measuring ---------------------------------------------------------------------------

    def _measure(
        self, buckets: set[int], now: dt.datetime
    ) -> tuple[tuple[MonitorWindow, ...], tuple[str, ...]]:
        """Measure and store the windows ``buckets``, one ``monitor`` call per run of
        adjacent ones."""
        windows: list[MonitorWindow] = []
        notes: list[str] = []
        for first, last in _runs(sorted(buckets)):
            result = monitor(
                self.ws,
                self.subject.name,
                window=self.window,
                since=_at(first * self.seconds),
                until=self._end(last),
                now=now,
                store=True,
            )
            windows += result.windows
            notes += [n for n in result.notes if n not in notes and not n.startswith("no pred")]
            self._under_way -= set(range(first, last + 1))
        self._note_under_way(windows, now)
        return tuple(windows), tuple(notes)

    def _note_under_way(self, windows: Iterable[MonitorWindow], now: dt.datetime) -> None:
        """Remember the windows measured before their end, to measure once more whole."""
        for w in windows:
            if w.end > now:
                self._under_way.add(self._bucket_of(w.start))


def follow(
    ws: Workspace,
    name: str | None = None,
    *,
    window: str = "1h",
    every: float | str = 10.0,
    polls: int | None = None,
    since: dt.datetime | str | None = None,
    on_update: Callable[[FollowUpdate], None] | None = None,
) -> FollowSummary:
    """Keep the deployment's ``name`` (or a model's) windows up to date as its prediction
    log grows: poll every ``every`` seconds (or a duration: ``30s``) with a
    :class:`Follower`, handing each poll's :class:`FollowUpdate` to ``on_update``, until
    ``polls`` polls (default: until interrupted; Ctrl-C stops cleanly, between polls or in
    one, whose store write is then rolled back whole).

    Raises
    ------
    DeploymentNotFoundError
        ``name`` is neither a deployment nor a model.
    ParameterError
        A malformed window or ``every``, ``polls`` under 1, a ``since`` not before now.
    DataError
        A log the query cannot read.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from mlplan.plan import render_plan
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "mlplan.yaml").write_text(render_plan("churn", task="binary", target="y"))
    >>> follow(Workspace(root, store_url="sqlite://"), polls=0)
    Traceback (most recent call last):
    ...
    mlplan.errors.ParameterError: 'polls' must be at least 1 (or None: until interrupted); got 0
    """
    pause = (
        parse_duration(every, param="every").total_seconds()
        if isinstance(every, str)
        else float(every)
    )
    if not pause >= 0:
        raise ParameterError("every", f"{{param}} must not be negative; got {every!r}")
    if polls is not None and polls < 1:
        raise ParameterError(
            "polls", f"{{param}} must be at least 1 (or None: until interrupted); got {polls}"
        )
    follower = Follower(ws, name, window=window, since=since)
    bounds: set[tuple[dt.datetime, dt.datetime]] = set()
    records = 0
    try:
        while True:
            update = follower.poll()
            bounds.update(update.bounds)
            records += update.records
            if on_update is not None:
                on_update(update)
            if polls is not None and follower.polls >= polls:
                break
            time.sleep(pause)
    except KeyboardInterrupt:
        return FollowSummary(follower.polls, len(bounds), records, interrupted=True)
    return FollowSummary(follower.polls, len(bounds), records)


# -- reading ---------------------------------------------------------------------------------


def _lines(path: Path, offset: int, state: _Seen) -> Iterator[bytes]:
    """The whole lines of ``path`` from ``offset`` on, a chunk at a time, moving
    ``state.offset`` past each (a last line without its newline is left for the next
    poll: it may be half written)."""
    with path.open("rb") as handle:
        handle.seek(offset)
        rest = b""
        while block := handle.read(_CHUNK_BYTES):
            *lines, rest = (rest + block).split(b"\n")
            for line in lines:
                state.offset += len(line) + 1
                yield line


def _loads() -> Callable[[bytes], Any]:
    try:
        import orjson
    except ImportError:  # the serving extra's; json reads the writer's lines alike
        return json.loads
    return orjson.loads


_LOADS = _loads()


def _parsed(line: bytes) -> _Record | None:
    """A JSONL line's :data:`_COLUMNS` (None: not a record, as the compactor drops it)."""
    try:
        entry = _LOADS(line)
    except ValueError:
        try:  # orjson refuses NaN and integers past 64 bits; json takes them
            entry = json.loads(line)
        except ValueError:
            return None
    if not isinstance(entry, dict):
        return None
    return (
        entry.get("kind"),
        entry.get("request_id"),
        entry.get("time"),
        entry.get("model"),
        entry.get("deployment"),
    )


def _key(record: _Record) -> bytes:
    """What identifies a record in a segment's digest."""
    return f"{record[0]}\x1f{record[1]}\x1f{record[2]}\x1e".encode()


def _parquet_records(path: Path, *, since: str | None = None) -> list[_Record]:
    """A Parquet segment's :data:`_COLUMNS` (one its writer did not have: null), in order;
    ``since``: only row groups that can hold a record from then on.

    Raises
    ------
    DataError
        The file is not a Parquet segment of the log.
    """
    try:
        return _parquet_rows(path, since)
    except (FileNotFoundError, DataError):
        raise
    except Exception as exc:  # pyarrow raises many types; all mean "not a readable segment"
        raise DataError(
            f"the prediction log's segment {path} cannot be read ({str(exc).splitlines()[0]}); "
            "move it out of the log folder if it is not one"
        ) from None


def _parquet_rows(path: Path, since: str | None) -> list[_Record]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as segment:
        names = set(segment.schema_arrow.names)
        columns = [c for c in _COLUMNS if c in names]
        if since is None or "time" not in names:
            table = segment.read(columns=columns)
        else:
            index = segment.schema_arrow.get_field_index("time")
            groups = []
            for i in range(segment.metadata.num_row_groups):
                stats = segment.metadata.row_group(i).column(index).statistics
                if stats is None or not stats.has_min_max or stats.max >= since:
                    groups.append(i)
            table = segment.read_row_groups(groups, columns=columns)
    values = [
        table.column(c).to_pylist() if c in names else [None] * table.num_rows for c in _COLUMNS
    ]
    return list(zip(*values, strict=True))


def _runs(buckets: list[int]) -> Iterator[tuple[int, int]]:
    """Sorted window numbers as runs of adjacent ones, ``(first, last)``."""
    start = previous = None
    for bucket in buckets:
        if previous is not None and bucket == previous + 1:
            previous = bucket
            continue
        if start is not None and previous is not None:
            yield start, previous
        start = previous = bucket
    if start is not None and previous is not None:
        yield start, previous


def _at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _utc(moment: dt.datetime) -> dt.datetime:
    """A time in UTC (a naive one taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)
