"""Continuous mode: a follower's windows, measured again only where the log grew, equal the
windows ``monitor`` computes from scratch over the same span, whatever the writers,
feedback and compactions in between (a property test over the real log writer and
compactor); a poll reads only the segments that changed, and only what is new in them."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import strict_json
from tests.monitoring.conftest import DAY, traffic
from typer.testing import CliRunner

from mlplan.core import json_safe
from mlplan.errors import DataError, ParameterError
from mlplan.modeling import get_model
from mlplan.monitoring import Follower, MonitorWindow, follow, monitor, stored_windows
from mlplan.serving import PredictionLog, compact_logs, log_folder
from mlplan.workspace import Workspace

NOW = DAY + dt.timedelta(hours=1)
"""The moment every poll and every from-scratch run is measured at: after all the records,
so that every window is whole."""
WINDOW = "60s"


@dataclass
class Clock:
    """A writer's clock, set by the test before each record."""

    now: dt.datetime = DAY

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Traffic:
    """The writers of logistic-1's log (each its own folder, as server processes) and
    what they logged."""

    ws: Workspace
    version: str
    segment_bytes: int = 1500
    clock: Clock = field(default_factory=Clock)
    writers: list[PredictionLog] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return log_folder(self.ws, "logistic-1")

    def writer(self, index: int) -> PredictionLog:
        while len(self.writers) <= index:
            self.writers.append(self._open())
        return self.writers[index]

    def _open(self) -> PredictionLog:
        return PredictionLog(self.folder, clock=self.clock, segment_bytes=self.segment_bytes)

    def restart(self, index: int) -> None:
        """A server process stopped (its last segment may be compacted) and another began."""
        self.writer(index).close()
        self.writers[index] = self._open()

    def close(self) -> None:
        for log in self.writers:
            log.close()

    def _write(self, index: int, at: dt.datetime, **fields: Any) -> None:
        self.clock.now = at
        done = self.writer(index).record(
            model="logistic-1", version=self.version, deployment="production", **fields
        )
        assert done is not None
        done.result(timeout=30)

    def predict(self, index: int, at: dt.datetime, n: int = 1) -> list[str]:
        """``n`` answered requests at ``at`` (every seventh one failing)."""
        sent = []
        for _ in range(n):
            k = len(self.ids)
            request_id = f"{k:032x}"
            score = (k * 37 % 100) / 100
            status = 503 if k % 7 == 6 else 200
            self._write(
                index,
                at,
                kind="prediction",
                request_id=request_id,
                route="/v1/predict",
                status=status,
                latency_ms=1.0 + k % 13,
                inputs=[{"region": ("north", "south")[k % 2], "age": 20 + k % 50}],
                outputs=[
                    {"label": str(int(score >= 0.5)), "probabilities": {"0": 1 - score, "1": score}}
                ]
                if status == 200
                else None,
            )
            self.ids.append(request_id)
            sent.append(request_id)
        return sent

    def feedback(self, index: int, at: dt.datetime, request_id: str, body: dict[str, Any]) -> None:
        self._write(
            index,
            at,
            kind="feedback",
            request_id=request_id,
            route="/v1/feedback",
            status=202,
            latency_ms=0.1,
            outputs=body,
        )

    def health(self, index: int, at: dt.datetime) -> None:
        self._write(
            index,
            at,
            kind="health",
            request_id=f"w{index}-{len(self.ids)}",
            route="",
            status=200,
            latency_ms=0.0,
            outputs={"cpu_percent": 12.5, "rss_bytes": 1e8, "queued_rows": 1, "batches": 3},
        )


@pytest.fixture
def log(watched: Workspace) -> Iterator[Traffic]:
    found = Traffic(watched, get_model(watched, "logistic-1").package_sha256[:12])
    yield found
    found.close()


def _canonical(windows: Any) -> list[str]:
    """Windows as comparable text: family, slice, model, version, bounds, samples, metrics."""
    return sorted(json.dumps(json_safe(w.to_dict()), sort_keys=True, default=str) for w in windows)


def _from_scratch(ws: Workspace) -> tuple[MonitorWindow, ...]:
    return monitor(
        ws, "production", window=WINDOW, since=DAY, until=NOW, now=NOW, store=False
    ).windows


def _at(minute: int, second: int = 0) -> dt.datetime:
    return DAY + dt.timedelta(minutes=minute, seconds=second)


# -- the property --------------------------------------------------------------------------------

_WRITER = st.integers(0, 2)
_WRITE = st.one_of(
    st.tuples(
        st.just("predict"), _WRITER, st.integers(0, 5), st.integers(0, 59), st.integers(1, 3)
    ),
    st.tuples(
        st.just("feedback"),
        _WRITER,
        st.integers(0, 10_000),
        st.sampled_from(["label", "value", "event"]),
    ),
    st.tuples(st.just("health"), _WRITER, st.integers(0, 5)),
    st.tuples(st.just("compact")),
    st.tuples(st.just("restart"), _WRITER),
)
_ROUNDS = st.lists(st.lists(_WRITE, min_size=1, max_size=5), min_size=2, max_size=4)
"""Rounds of writes, each followed by a poll."""

# The first 12 examples drawn (the same ones on every run) hold every kind of write, each
# kind of feedback, all three writers, compactions before and after restarts, and two to
# four rounds with up to 19 writes; the 13 more that 25 drew were variations of those (three
# of them feedback with no prediction to name, which writes nothing) at twice the time.


@settings(
    max_examples=12,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(rounds=_ROUNDS)
def test_followed_windows_equal_the_windows_computed_from_scratch(
    _watched_made: Path, rounds: list[list[tuple[Any, ...]]]
) -> None:
    with tempfile.TemporaryDirectory() as temp:
        root = Path(shutil.copytree(_watched_made, Path(temp) / "project"))
        ws = Workspace(root)
        sent = Traffic(ws, get_model(ws, "logistic-1").package_sha256[:12], segment_bytes=700)
        try:
            follower = Follower(ws, "production", window=WINDOW, since=DAY)
            late = 0
            for writes in rounds:
                for write in writes:
                    match write:
                        case ("predict", writer, minute, second, n):
                            sent.predict(writer, _at(minute, second), n)
                        case ("feedback", writer, pick, what) if sent.ids:
                            late += 1  # after every prediction it could name
                            body = {
                                "label": {"label": str(pick % 2)},
                                "value": {"value": float(pick % 5)},
                                "event": {"events": [{"name": "redo_search"}]},
                            }[what]
                            request_id = sent.ids[pick % len(sent.ids)]
                            sent.feedback(writer, _at(6, late), request_id, body)
                        case ("health", writer, minute):
                            sent.health(writer, _at(minute, 30))
                        case ("compact",):
                            compact_logs(ws, "logistic-1")
                        case ("restart", writer):
                            sent.restart(writer)
                follower.poll(now=NOW)
                stored = stored_windows(ws, deployment="production")
                assert _canonical(stored) == _canonical(_from_scratch(ws))
        finally:
            sent.close()
            ws.close()


# -- what a poll reads ---------------------------------------------------------------------------


def test_a_poll_with_nothing_new_reads_no_segment(log: Traffic) -> None:
    log.predict(0, _at(1), 3)
    follower = Follower(log.ws, "production", window=WINDOW, since=DAY)
    first = follower.poll(now=NOW)
    assert [w.start for w in first.windows if w.family == "software"] == [_at(1)]
    again = follower.poll(now=NOW)
    assert (again.read, again.looked_up, again.windows, again.records) == ((), (), (), 0)


def test_a_poll_reads_only_the_segments_that_changed_and_only_their_new_lines(
    log: Traffic,
) -> None:
    log.segment_bytes = 1 << 20  # one segment per writer
    log.predict(0, _at(1), 2)
    log.predict(1, _at(2), 2)
    follower = Follower(log.ws, "production", window=WINDOW, since=DAY)
    follower.poll(now=NOW)
    log.predict(1, _at(3), 1)
    update = follower.poll(now=NOW)
    (segment,) = update.read
    assert segment.parent == log.writer(1).folder  # writer 0's segment is not read again
    assert update.records == 1  # the line appended, not the segment again
    assert update.bounds == [(_at(3), _at(4))]
    software = [w for w in stored_windows(log.ws, family="software")]
    assert [(w.start, w.samples) for w in software] == [(_at(1), 2), (_at(2), 2), (_at(3), 1)]


def test_a_compacted_segment_read_before_brings_nothing_new(log: Traffic) -> None:
    log.segment_bytes = 1 << 20
    log.predict(0, _at(1), 2)
    follower = Follower(log.ws, "production", window=WINDOW, since=DAY)
    follower.poll(now=NOW)
    log.predict(0, _at(2), 1)  # written after the poll, compacted before the next
    log.restart(0)
    assert compact_logs(log.ws, "logistic-1").compacted == 1
    update = follower.poll(now=NOW)
    copy, empty = sorted(update.read, key=lambda p: p.suffix, reverse=True)
    assert copy.suffix == ".parquet" and copy.parent != log.writer(0).folder
    assert empty.parent == log.writer(0).folder  # the new writer's, empty so far
    assert update.records == 1  # the two read before are known by their digest
    assert update.bounds == [(_at(2), _at(3))]
    assert follower.poll(now=NOW).read == ()


def test_feedback_measures_again_the_window_of_the_prediction_it_names(log: Traffic) -> None:
    (early,) = log.predict(0, _at(1))
    log.predict(0, _at(2))
    follower = Follower(log.ws, "production", window=WINDOW, since=DAY)
    follower.poll(now=NOW)
    log.feedback(1, _at(30), early, {"label": "1"})
    update = follower.poll(now=NOW)
    assert update.bounds == [(_at(1), _at(2))]  # the prediction's window, not the feedback's
    assert update.looked_up == ()  # its id was kept from its JSONL segment
    (ml,) = [w for w in update.windows if w.family == "ml" and w.slice == "all"]
    assert ml.samples == 1


def test_feedback_on_a_compacted_prediction_searches_the_parquet_ids(log: Traffic) -> None:
    (early,) = log.predict(0, _at(1))
    log.restart(0)
    compact_logs(log.ws, "logistic-1")
    follower = Follower(log.ws, "production", window=WINDOW, since=DAY)
    follower.poll(now=NOW)
    log.feedback(0, _at(30), early, {"value": 4.0})
    update = follower.poll(now=NOW)
    assert [p.suffix for p in update.looked_up] == [".parquet"]
    assert update.bounds == [(_at(1), _at(2))]
    (business,) = [w for w in update.windows if w.family == "business" and w.slice == "all"]
    assert business.metrics["metrics"]["value"]["sum"] == 4.0


def test_the_window_under_way_is_measured_whole_once_it_ends(log: Traffic) -> None:
    log.predict(0, _at(1, 10), 3)
    follower = Follower(log.ws, "production", window=WINDOW, since=DAY)
    (software,) = [w for w in follower.poll(now=_at(1, 30)).windows if w.family == "software"]
    assert software.metrics["throughput_rps"] == pytest.approx(3 / 30)  # 30 s of 60 so far
    assert follower.poll(now=_at(1, 50)).windows == ()  # nothing new, still under way
    ended = follower.poll(now=_at(2, 5))
    assert ended.read == ()
    (software,) = [w for w in ended.windows if w.family == "software"]
    assert software.metrics["throughput_rps"] == pytest.approx(3 / 60)
    assert follower.poll(now=_at(3)).windows == ()


def test_a_poll_that_fails_leaves_its_records_new_for_the_next(log: Traffic) -> None:
    follower = Follower(log.ws, "production", window=WINDOW, since=DAY)
    follower.poll(now=NOW)
    log.predict(0, _at(1), 2)
    stray = log.writer(0).folder / "seg-000099.parquet"
    stray.write_text("not parquet")
    with pytest.raises(DataError, match=r"segment .*seg-000099.parquet cannot be read"):
        follower.poll(now=NOW)
    stray.unlink()
    update = follower.poll(now=NOW)
    assert (update.poll, update.records, update.bounds) == (2, 2, [(_at(1), _at(2))])


def test_records_before_the_span_are_left_alone(log: Traffic) -> None:
    follower = Follower(log.ws, "production", window=WINDOW, since=_at(5))
    follower.poll(now=NOW)
    log.predict(0, _at(1))
    update = follower.poll(now=NOW)
    assert (update.records, update.windows) == (1, ())


# -- follow --------------------------------------------------------------------------------------


def test_follow_polls_and_hands_each_update_over(log: Traffic) -> None:
    log.predict(0, _at(1), 2)
    updates: list[Any] = []
    summary = follow(  # on the clock: windows of an hour, so the span stays short
        log.ws, window="1h", since=DAY, every=0, polls=2, on_update=updates.append
    )
    assert [u.poll for u in updates] == [1, 2]
    assert updates[0].bounds == [(DAY, DAY + dt.timedelta(hours=1))]
    assert updates[1].windows == ()
    assert summary.line() == (
        "done after 2 polls: 1 window measured, 0 new records read after the first poll"
    )


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"polls": 0}, "'polls' must be at least 1 (or None: until interrupted); got 0"),
        ({"every": -1.0}, "'every' must not be negative; got -1.0"),
        ({"every": "soon"}, "'every' takes a duration such as 90s, 30m, 1h or 2d; got 'soon'"),
    ],
    ids=["polls", "every-negative", "every-text"],
)
def test_follow_refuses_bad_arguments(
    watched: Workspace, given: dict[str, Any], message: str
) -> None:
    with pytest.raises(ParameterError, match=re.escape(message)):
        follow(watched, **given)


def test_monitor_follow_prints_a_json_line_per_poll(
    watched: Workspace, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplan.cli import app

    traffic(watched)
    monkeypatch.chdir(project_dir)
    monkeypatch.delenv("MLPLAN_STORE_URL", raising=False)
    span = ("--since", "2026-11-30T10:00", "--window", "30m", "--every", "0s")
    result = CliRunner().invoke(
        app, ["monitor", "--follow", "--polls", "2", "--json", *span], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    first, second = (strict_json(line) for line in result.stdout.splitlines())
    software = [w for w in first["windows"] if w["family"] == "software"]
    assert [(w["start"][11:16], w["samples"]) for w in software] == [("10:00", 30), ("10:30", 10)]
    assert (second["poll"], second["windows"], second["read"]) == (2, [], [])
    assert "done after 2 polls: 2 windows measured, 0 new records" in result.stderr
    shown = CliRunner().invoke(app, ["monitor", "--follow", "--polls", "1", *span])
    assert shown.exit_code == 0, shown.output
    assert "poll 1" in shown.stdout and "2026-11-30 10:00" in shown.stdout
    assert "30 requests" in shown.stdout
