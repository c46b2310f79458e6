"""Reading a window of the prediction log: DuckDB scans the Parquet segments with the time
filter pushed down, and only the JSONL segments that can hold a record of the window are
parsed; the answer is the same as loading every segment."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from mlplan.errors import DataError
from mlplan.serving import PredictionLog, query_log, time_text, window_segments
from mlplan.serving._log import compact_segments

DAY = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)


def _write(folder: Path, hours: range, per_hour: int, *, close: bool) -> PredictionLog:
    """A writer that closes a segment after each record, ``per_hour`` records in each of
    ``hours`` of DAY; each segment's modification time set to its record's (as a segment
    last written then has it)."""
    stamps = iter(
        DAY + dt.timedelta(hours=h, minutes=m * 60 // per_hour)
        for h in hours
        for m in range(per_hour)
    )
    current: list[dt.datetime] = []

    def clock() -> dt.datetime:
        current.append(next(stamps))
        return current[-1]

    log = PredictionLog(folder, segment_bytes=1, clock=clock)
    for i in range(len(hours) * per_hour):
        done = log.record(
            kind="prediction",
            request_id=f"{i:032x}",
            model="m",
            version="v",
            route="/v1/predict",
            status=200,
            latency_ms=1.0,
            inputs=[{"x": i}],
        )
        assert done is not None
        done.result(timeout=30)
        segment = sorted(log.folder.glob("seg-*.jsonl"))[-2]  # closed after its commit
        os.utime(segment, (current[-1].timestamp(), current[-1].timestamp()))
    if close:
        log.close()
    return log


def test_only_the_jsonl_segments_that_can_hold_the_window_are_read(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    log = _write(folder, range(8, 16), 2, close=False)
    try:
        since, until = DAY + dt.timedelta(hours=11), DAY + dt.timedelta(hours=12)
        parquet, jsonl = window_segments(folder, since=since, until=until)
        assert parquet == []
        first = [p.read_text().split('"time":"')[1][:13] for p in jsonl if p.stat().st_size]
        # Hour 8 to 10 were last written before the window; from hour 12:10 on (the writer's
        # queue slack past until) none can hold a record of it.
        assert sorted(set(first)) == ["2026-11-30T11", "2026-11-30T12"]
        assert len(jsonl) < len(list(folder.rglob("seg-*.jsonl")))
    finally:
        log.close()


def test_a_window_reads_the_same_records_as_the_whole_log(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    _write(folder, range(0, 6), 5, close=True)  # a writer gone: its segments compacted
    compact_segments(folder)
    live = _write(folder, range(3, 9), 5, close=False)  # a live writer's JSONL segments
    try:
        assert folder.rglob("seg-*.parquet") and live.folder.glob("seg-*.jsonl")
        since, until = DAY + dt.timedelta(hours=2, minutes=30), DAY + dt.timedelta(hours=7)
        where = f"time >= '{time_text(since)}' AND time < '{time_text(until)}'"
        sql = f"SELECT request_id, time FROM predictions WHERE {where} ORDER BY time, request_id"
        windowed = query_log(folder, sql, since=since, until=until)
        whole = query_log(folder, sql)
        assert windowed.to_pylist() == whole.to_pylist()
        assert windowed.num_rows == 2 + 5 * 3 + 5 * 4  # 02:36 to 05:48 of one, 03-06 of the other
    finally:
        live.close()


def test_a_window_query_may_read_the_segments_and_nothing_else(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    _write(folder, range(0, 2), 2, close=True)
    compact_segments(folder)
    key = folder / ".pii-key"  # what a log of personal data holds beside its segments
    key.write_text("00" * 32)
    since = DAY
    for sql in (
        f"SELECT * FROM read_text('{key}')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SET enable_external_access = true",
    ):
        with pytest.raises(DataError, match="the query failed"):
            query_log(folder, sql, since=since)
    assert (
        query_log(folder, "SELECT count(*) AS n FROM predictions", since=since)["n"][0].as_py() == 4
    )
