from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.conftest import edit_plan
from tests.serving.conftest import (
    RECORD,
    bearer,
    sample,
    server_process,
    started,
    stop,
    write_old_log,
)

from mlplan.errors import DataError
from mlplan.serving._compactor import LogCompactor
from mlplan.serving._config import MULTIPROC_ENV
from mlplan.serving._log import (
    PiiPolicy,
    PredictionLog,
    _compaction_lock,
    _schema,
    _table,
    compact_segments,
    log_files,
    query_log,
)
from mlplan.workspace import Workspace


def _record(log: PredictionLog, request_id: str, **inputs: object) -> object:
    return log.record(
        kind="prediction",
        request_id=request_id,
        model="m-1",
        version="abc",
        route="/v1/predict",
        status=200,
        latency_ms=1.0,
        inputs=[inputs],
        outputs=[{"label": "1"}],
    )


def test_acked_records_are_on_disk_when_their_future_completes(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, mode="acked") as log:
        futures = [_record(log, f"r{i}", x=i) for i in range(50)]
        for future in futures:
            future.result(timeout=10)  # type: ignore[attr-defined]
        lines = (log.folder / "seg-000000.jsonl").read_bytes().splitlines()
        assert [json.loads(line)["request_id"] for line in lines] == [f"r{i}" for i in range(50)]
        assert log.stats.commits <= 50 and log.stats.written == 50


def test_many_threads_commit_in_groups_and_lose_nothing(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, mode="acked") as log:

        def work(t: int) -> None:
            for i in range(100):
                _record(log, f"t{t}-{i}").result(timeout=30)  # type: ignore[attr-defined]

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert log.stats.written == 800 and log.stats.commits < 800
    ids = query_log(tmp_path, "SELECT request_id FROM predictions").column(0).to_pylist()
    assert sorted(ids) == sorted(f"t{t}-{i}" for t in range(8) for i in range(100))


def _fields(request_id: str) -> dict[str, object]:
    return {
        "kind": "prediction",
        "request_id": request_id,
        "model": "m-1",
        "version": "abc",
        "route": "/v1/predict",
        "status": 200,
        "latency_ms": 1.0,
        "inputs": [{"x": 1}],
        "outputs": [{"label": "1"}],
    }


def test_an_event_loop_hands_its_records_over_together_and_close_keeps_them(
    tmp_path: Path,
) -> None:
    log = PredictionLog(tmp_path, mode="acked")

    async def main() -> None:
        # Records of one turn of the loop reach the writer as one group: one commit.
        waiters = [log.record_async(**_fields(f"e{i}")) for i in range(20)]
        await asyncio.gather(*waiters)  # type: ignore[arg-type]
        assert log.stats.written == 20 and log.stats.commits == 1
        # Records gathered but not yet handed over when the log closes are written too.
        late = [log.record_async(**_fields(f"late{i}")) for i in range(3)]
        log.close()
        await asyncio.gather(*late)  # type: ignore[arg-type]

    asyncio.run(main())
    ids = query_log(tmp_path, "SELECT request_id FROM predictions").column(0).to_pylist()
    assert sorted(ids) == sorted([f"e{i}" for i in range(20)] + [f"late{i}" for i in range(3)])


def test_async_mode_bounds_the_queue_and_counts_drops_exactly(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, mode="async", max_pending=5)
    for i in range(2000):
        assert _record(log, f"a{i}") is None
    log.close()
    assert log.stats.written + log.stats.dropped == 2000
    rows = query_log(tmp_path, "SELECT count(*) FROM predictions").column(0)[0].as_py()
    assert rows == log.stats.written


def test_segments_rotate_and_compact_and_a_torn_line_is_dropped(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, segment_bytes=2000) as log:
        for i in range(30):
            _record(log, f"r{i}").result(timeout=10)  # type: ignore[attr-defined]
        parquet, jsonl = log_files(log.folder)
        assert len(jsonl) > 2 and not parquet
        # While the writer lives, its open segment stays as it is.
        assert compact_segments(tmp_path)["compacted"] == len(jsonl) - 1
    with jsonl[-1].open("ab") as handle:
        handle.write(b'{"kind": "prediction", "request_id": "torn')  # a crash mid-write
    assert compact_segments(tmp_path)["compacted"] == 1  # the dead writer's last segment
    with PredictionLog(tmp_path) as log:  # a new process writes in a folder of its own
        _record(log, "after").result(timeout=10)  # type: ignore[attr-defined]
        assert log.folder != jsonl[0].parent
    ids = query_log(tmp_path, "SELECT request_id FROM predictions ORDER BY time").column(0)
    assert ids.to_pylist() == [*(f"r{i}" for i in range(30)), "after"]


def test_a_failed_write_is_cut_back_and_the_writer_lives_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplan.serving import _log

    with PredictionLog(tmp_path) as log:
        _record(log, "ok1").result(timeout=10)  # type: ignore[attr-defined]
        real_sync = _log._sync
        calls = {"n": 0}

        def failing(fd: int) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise OSError(5, "Input/output error")
            real_sync(fd)

        monkeypatch.setattr(_log, "_sync", failing)
        with pytest.raises(OSError, match="Input/output error"):
            _record(log, "retried").result(timeout=10)  # type: ignore[attr-defined]
        _record(log, "retried").result(timeout=10)  # type: ignore[attr-defined]
        assert log.stats.failed == 1
    ids = query_log(tmp_path, "SELECT request_id FROM predictions").column(0).to_pylist()
    assert ids == ["ok1", "retried"]  # the failed attempt left nothing behind


def test_pii_is_hashed_or_redacted_before_it_is_written(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, pii=PiiPolicy(frozenset({"email"}), "hash")) as log:
        _record(log, "h1", email="ada@example.com", age=3).result()  # type: ignore[attr-defined]
        _record(log, "h2", email="ada@example.com", age=4).result()  # type: ignore[attr-defined]
    text = next(tmp_path.rglob("seg-000000.jsonl")).read_text()
    assert "ada@example.com" not in text
    first, second = (json.loads(line)["inputs"][0] for line in text.splitlines())
    assert first["email"] == second["email"] and first["email"].startswith("hmac:")
    assert (tmp_path / ".pii-key").stat().st_mode & 0o077 == 0
    with PredictionLog(tmp_path / "r", pii=PiiPolicy(frozenset({"email"}), "redact")) as log:
        _record(log, "r1", email="ada@example.com").result()  # type: ignore[attr-defined]
    line = next((tmp_path / "r").rglob("seg-*.jsonl")).read_text()
    assert json.loads(line)["inputs"][0]["email"] == "<redacted>"
    with pytest.raises(DataError, match=r"the query failed"):
        query_log(tmp_path, "SELECT nope FROM predictions")


def test_segments_written_before_the_client_id_column_read_it_as_null(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    old = tmp_path / "w-old"
    old.mkdir()
    columns = ["kind", "request_id", "time", "model", "version", "route", "status"]
    pq.write_table(
        pa.table({c: ["x"] if c != "status" else [200] for c in columns}),
        old / "seg-000000.parquet",
    )
    with PredictionLog(tmp_path) as log:
        log.record(**_fields("new") | {"client_id": "hmac:00"}).result()  # type: ignore[union-attr]
    rows = query_log(tmp_path, "SELECT request_id, client_id FROM predictions ORDER BY 1")
    assert rows.to_pylist() == [
        {"request_id": "new", "client_id": "hmac:00"},
        {"request_id": "x", "client_id": None},
    ]


def test_the_server_logs_predictions_refusals_and_feedback(
    served: Workspace, tokens: dict[str, str]
) -> None:
    from mlplan.serving import ServeConfig, create_app

    edit_plan(served, "    pii_columns: [name, email]", "    pii_columns: [name, email, age]")
    app = create_app(ServeConfig(root=str(served.root), model="logistic-1", key_refresh_seconds=0))
    with started(app) as client:
        ok = client.post(
            "/v1/predict", json={"records": [RECORD]}, headers=bearer(tokens["predict"])
        )
        request_id = ok.json()["request_id"]
        refused = client.post(
            "/v1/predict",
            json={"records": [RECORD | {"region": "SECRET-77"}]},
            headers=bearer(tokens["predict"]),
        )
        assert refused.status_code == 422
        given = client.post(
            "/v1/feedback",
            json={"request_id": request_id, "label": "1", "events": [{"name": "called"}]},
            headers=bearer(tokens["feedback"]),
        )
        assert given.status_code == 202
        bad = client.post(
            "/v1/feedback", json={"request_id": 5}, headers=bearer(tokens["feedback"])
        )
        assert bad.status_code == 422
        assert {e["loc"][-1] for e in bad.json()["detail"]} == {"request_id", "body"}
        metrics = client.get("/metrics", headers=bearer(tokens["admin"])).text
    assert "mlplan_log_records_total 3.0" in metrics
    folder = served.root / ".mlplan" / "predictions" / "logistic-1"
    rows = query_log(folder, "SELECT kind, request_id, status, inputs, error FROM predictions")
    table = rows.to_pylist()
    assert [(r["kind"], r["status"]) for r in table] == [
        ("prediction", 200),
        ("prediction", 422),
        ("feedback", 202),
    ]
    assert table[2]["request_id"] == request_id
    logged = json.loads(table[0]["inputs"])[0]
    assert logged["age"].startswith("hmac:") and logged["region"] == "north"
    assert "SECRET-77" not in json.dumps(table) and table[1]["inputs"] is None
    summary = json.loads(table[1]["error"])
    assert summary["errors"] == 1 and summary["first"][0]["loc"][-1] == "region"
    assert isinstance(rows, pa.Table)


def _dead_writer(folder: Path, records: int, segment_bytes: int = 2000) -> list[Path]:
    """A writer folder left by a server that has stopped: its JSONL segments."""
    with PredictionLog(folder, segment_bytes=segment_bytes) as log:
        for i in range(records):
            _record(log, f"r{i}").result(timeout=10)  # type: ignore[attr-defined]
    return log_files(log.folder)[1]


def test_one_compaction_at_a_time_and_a_killed_ones_temp_file_is_cleared(tmp_path: Path) -> None:
    jsonl = _dead_writer(tmp_path, 30)
    stale = jsonl[0].parent / f".{jsonl[0].stem}.k1ll3d.tmp"  # a compaction killed mid-write
    stale.write_bytes(b"PAR1 half")
    with _compaction_lock(tmp_path, wait=True) as held:  # another process compacts
        assert held
        # A starting server does not wait for it (nor touch a file it may be writing) ...
        busy = compact_segments(tmp_path, wait=False)
        assert busy == {"compacted": 0, "removed": 0, "busy": 1}
        assert log_files(jsonl[0].parent) == ([], jsonl) and stale.exists()
    # ... and once it is done, the next compaction takes the lot, the leftover included.
    assert compact_segments(tmp_path, wait=False)["compacted"] == len(jsonl)
    assert not stale.exists()
    assert not [p for p in jsonl[0].parent.iterdir() if p.suffix == ".tmp"]
    ids = query_log(tmp_path, "SELECT request_id FROM predictions").column(0).to_pylist()
    assert sorted(ids) == sorted(f"r{i}" for i in range(30))


@pytest.mark.slow
def test_two_logs_compact_at_once_both_succeed(sqlite_ws: Workspace) -> None:
    folder = sqlite_ws.root / ".mlplan" / "predictions" / "m-1"
    jsonl = [p for _ in range(2) for p in _dead_writer(folder, 400, segment_bytes=600)]
    env = {k: v for k, v in os.environ.items() if k not in {"MLPLAN_STORE_URL", MULTIPROC_ENV}}
    command = [sys.executable, "-m", "mlplan", "logs", "compact", "--json"]
    runs = [
        subprocess.Popen(command, cwd=sqlite_ws.root, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    # The second waited for the first: every segment compacted once, none twice or lost.
    assert sum(json.loads(out)["compacted"] for out in outputs) == len(jsonl)
    ids = query_log(folder, "SELECT request_id FROM predictions").column(0).to_pylist()
    assert sorted(ids) == sorted(f"r{i}" for i in range(400) for _ in range(2))


def test_any_failure_while_loading_leaves_the_server_not_ready_saying_why(
    served: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def vanished(folder: Path, **_: object) -> PredictionLog:
        raise FileNotFoundError(2, "No such file or directory", "seg-000000.parquet.tmp")

    from mlplan.serving import ServeConfig, create_app

    monkeypatch.setattr("mlplan.serving._lifespan.PredictionLog", vanished)
    app = create_app(ServeConfig(root=str(served.root), model="logistic-1", key_refresh_seconds=0))
    with started(app) as client:
        # Said at once, while the server still runs, not at shutdown.
        printed = capsys.readouterr().out
        assert "logistic-1 is not ready: FileNotFoundError" in printed
        assert "Traceback" in printed
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 503
        reason = ready.json()["error"]
        assert (
            reason.startswith("not ready: FileNotFoundError") and "seg-000000.parquet.tmp" in reason
        )
        assert client.get("/v2/health/live").status_code == 200


def test_a_server_started_during_a_compaction_is_ready_without_waiting_for_it(
    served: Workspace,
) -> None:
    from mlplan.serving import ServeConfig, create_app

    folder = served.root / ".mlplan" / "predictions" / "logistic-1"
    jsonl = _dead_writer(folder, 30)
    app = create_app(ServeConfig(root=str(served.root), model="logistic-1", key_refresh_seconds=0))
    with _compaction_lock(folder, wait=True), started(app) as client:  # `logs compact` runs
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert log_files(jsonl[0].parent)[1] == jsonl  # left to the compaction under way


def _until(condition: Callable[[], object], seconds: float = 60) -> None:
    """Poll ``condition`` until it holds (a short pause between tries leaves the CPU to the
    thread under test); fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        threading.Event().wait(0.01)


def _expected_rows(segment: Path) -> list[dict[str, object]]:
    """A JSONL segment's rows as the log's readers promise them, read line by line with json
    (a line that is not JSON dropped; nested values as json.dumps writes them)."""
    rows = []
    for line in segment.read_bytes().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        for name in ("inputs", "outputs", "error"):
            value = record.get(name)
            record[name] = value if value is None or isinstance(value, str) else json.dumps(value)
        rows.append({name: record.get(name) for name in _schema().names})
    return rows


def test_a_segment_is_compacted_a_chunk_at_a_time_into_the_rows_it_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplan.serving import _log

    with PredictionLog(tmp_path, pii=PiiPolicy(frozenset({"email"}))) as log:
        waiting = [
            log.record(
                kind=("prediction", "feedback")[i % 2],
                request_id=f"r{i}",
                model="m-1",
                version="abc",
                route="/v1/predict",
                status=(200, 422, 202)[i % 3],
                latency_ms=i / 7,
                inputs=None if i % 5 == 0 else [{"email": f"p{i}@example.com", "city": "Zürich"}],
                outputs={"label": "é", "p": [0.25, i]},
                error=None if i % 3 else {"errors": i, "first": [{"loc": ["body", 0]}]},
            )
            for i in range(300)
        ]
        for done in waiting:
            done.result(timeout=10)  # type: ignore[union-attr]
    segment = log_files(log.folder)[1][0]
    with segment.open("ab") as handle:
        handle.write(b'{"kind": "prediction", "request_id": "torn')  # a crash mid-write
    expected = _expected_rows(segment)
    monkeypatch.setattr(_log, "_CHUNK_BYTES", 4096)  # many chunks ...
    monkeypatch.setattr(_log, "_ROW_GROUP_BYTES", 32 * 1024)  # ... and several row groups
    assert compact_segments(tmp_path)["compacted"] == 1
    parquet = pq.ParquetFile(segment.with_suffix(".parquet"))
    assert parquet.metadata.num_row_groups > 2
    assert parquet.schema_arrow == _schema()
    read = query_log(tmp_path, "SELECT * FROM predictions")
    assert read.to_pylist() == expected and len(expected) == 300
    assert not segment.exists() and not list(tmp_path.rglob("*.tmp"))


def test_a_compaction_asked_to_stop_leaves_its_segment_whole_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplan.serving import _log

    ids = write_old_log(tmp_path, 200, segment_bytes=40_000)
    segments = log_files(next(tmp_path.glob("w-*")))[1]
    before = {p: p.read_bytes() for p in segments}
    monkeypatch.setattr(_log, "_CHUNK_BYTES", 4096)
    asked: list[bool] = []

    def stop() -> bool:  # stop during the second segment, after a few of its chunks
        if segments[0].with_suffix(".parquet").exists():
            asked.append(True)
        return len(asked) > 3

    done = compact_segments(tmp_path, stop=stop)
    assert done == {"compacted": 1, "removed": 0, "busy": 0}
    assert not list(tmp_path.rglob("*.tmp"))
    assert {p: p.read_bytes() for p in segments[1:]} == {p: before[p] for p in segments[1:]}
    assert not segments[0].exists() and not segments[1].with_suffix(".parquet").exists()
    assert compact_segments(tmp_path)["compacted"] == len(segments) - 1  # the rest, later
    rows = query_log(tmp_path, "SELECT request_id FROM predictions").column(0).to_pylist()
    assert rows == ids  # none lost, none twice, in order


def test_a_segment_and_its_parquet_copy_are_read_once(tmp_path: Path) -> None:
    ids = write_old_log(tmp_path, 50, segment_bytes=1 << 20)
    segment = log_files(next(tmp_path.glob("w-*")))[1][0]
    kept = segment.read_bytes()
    compact_segments(tmp_path)
    segment.write_bytes(kept)  # killed between the Parquet copy's rename and the unlink
    rows = query_log(tmp_path, "SELECT request_id FROM predictions").column(0).to_pylist()
    assert rows == ids
    assert compact_segments(tmp_path)["compacted"] == 1 and not segment.exists()
    assert query_log(tmp_path, "SELECT request_id FROM predictions").column(0).to_pylist() == ids


def test_retention_deletes_segments_whose_newest_record_is_past_it(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    old, recent = (
        (now - dt.timedelta(days=40)).isoformat(),
        (now - dt.timedelta(days=1)).isoformat(),
    )
    writer = tmp_path / "w-20260101T000000-1-abcd"
    writer.mkdir()

    def segment(number: int, times: list[str], *, statistics: bool) -> None:
        rows = [
            {"kind": "prediction", "request_id": f"{number}-{i}", "time": t}
            for i, t in enumerate(times)
        ]
        pq.write_table(
            _table(rows),
            writer / f"seg-{number:06d}.parquet",
            row_group_size=2,
            write_statistics=statistics,
        )

    segment(0, [old] * 5, statistics=True)
    segment(1, [old] * 3 + [recent], statistics=True)  # the recent one in its last row group
    segment(2, [old] * 5, statistics=False)
    segment(3, [old, recent, old], statistics=False)
    assert compact_segments(tmp_path, retention_days=30) == {
        "compacted": 0,
        "removed": 2,
        "busy": 0,
    }
    assert [p.name for p in log_files(writer)[0]] == ["seg-000001.parquet", "seg-000003.parquet"]


def test_the_compactor_compacts_what_stopped_writers_left_and_each_closed_segment(
    tmp_path: Path,
) -> None:
    old = write_old_log(tmp_path, 300, segment_bytes=20_000)
    compactor = LogCompactor(tmp_path, retention_days=90)
    with PredictionLog(tmp_path, segment_bytes=2000, on_rotate=compactor.wake) as log:
        compactor.start()
        for i in range(60):
            _record(log, f"r{i}").result(timeout=10)  # type: ignore[attr-defined]
        # While the server writes on, every segment it closed is compacted: one stays open.
        _until(
            lambda: (
                [len(files) for files in log_files(log.folder)] == [log.stats.segments_closed, 1]
            )
        )
        assert log.stats.segments_closed > 3
        assert not [p for p in tmp_path.rglob("seg-*.jsonl") if p.parent != log.folder]
        compactor.stop()
    assert compactor.stats.failures == 0 and not list(tmp_path.rglob("*.tmp"))
    rows = query_log(tmp_path, "SELECT request_id FROM predictions").column(0).to_pylist()
    assert sorted(rows) == sorted([*old, *(f"r{i}" for i in range(60))])


def test_the_compactor_leaves_a_held_log_to_its_holder_then_tries_again(tmp_path: Path) -> None:
    ids = write_old_log(tmp_path, 100, segment_bytes=5000)
    segments = sorted(tmp_path.rglob("seg-*.jsonl"))
    compactor = LogCompactor(tmp_path, retry_seconds=0.01)
    with _compaction_lock(tmp_path, wait=True):  # `mlplan logs compact`, or another worker
        compactor.start()
        _until(lambda: compactor.stats.busy >= 2)  # left to the holder, tried again
        assert sorted(tmp_path.rglob("seg-*.jsonl")) == segments
    _until(lambda: not list(tmp_path.rglob("seg-*.jsonl")))
    compactor.stop()
    assert compactor.stats.compacted == len(segments)
    assert query_log(tmp_path, "SELECT request_id FROM predictions").column(0).to_pylist() == ids


def test_stopping_the_compactor_abandons_the_segment_under_way(tmp_path: Path) -> None:
    ids = write_old_log(tmp_path, 100, segment_bytes=1 << 20)
    segment = next(tmp_path.rglob("seg-*.jsonl"))
    kept = segment.read_bytes()
    compactor = LogCompactor(tmp_path, pause_seconds=600)  # pauses after each chunk ...
    compactor.start()
    _until(lambda: list(tmp_path.rglob(".seg-*.tmp")))  # ... its first one written
    compactor.stop()  # at once, not in ten minutes
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("*.parquet"))
    assert segment.read_bytes() == kept and compactor.stats.compacted == 0
    assert query_log(tmp_path, "SELECT request_id FROM predictions").column(0).to_pylist() == ids


@pytest.mark.slow
def test_compacting_a_large_segment_keeps_memory_bounded(tmp_path: Path) -> None:
    write_old_log(tmp_path / "small", 2000, segment_bytes=1 << 30)
    small_segment = next((tmp_path / "small").rglob("seg-*.jsonl"))
    large = tmp_path / "large" / "w-20260101T000000-1-abcd" / "seg-000000.jsonl"
    large.parent.mkdir(parents=True)
    large.write_bytes(small_segment.read_bytes() * 40)  # a dead writer's 50 MB segment
    assert large.stat().st_size > 40 * 2**20
    # A fresh process compacts the small segment (what any compaction costs), then the
    # large one: its peak resident memory may grow by a chunk and a row group, not by the
    # segment (which the whole-file compaction grew by six times its size).
    code = (
        "import resource, sys; from pathlib import Path; "
        "from mlplan.serving._log import compact_segments; "
        "peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024; "
        "compact_segments(Path(sys.argv[1])); small = peak(); "
        "compact_segments(Path(sys.argv[2])); print(small, peak())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "small"), str(tmp_path / "large")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    small, peak = map(int, out.split())
    assert peak - small < 32 * 2**20, f"grew by {(peak - small) / 2**20:.0f} MiB"
    assert not list(tmp_path.rglob("seg-*.jsonl"))


_DEV_FULL = Path("/dev/full")  # every write to it fails with ENOSPC, as on a full disk
needs_dev_full = pytest.mark.skipif(not _DEV_FULL.exists(), reason="needs /dev/full (Linux)")


def _fill_next_segment(log: PredictionLog) -> Path:
    """Make the log's next segment a full disk: it rotates into a link to /dev/full after
    its next commit. The link is returned: remove it before reading the log back (reading
    /dev/full never ends)."""
    link = log.folder / "seg-000001.jsonl"
    link.symlink_to(_DEV_FULL)
    log.segment_bytes = 1
    return link


@needs_dev_full
def test_failed_writes_are_counted_by_reason_and_async_ones_as_dropped(tmp_path: Path) -> None:
    from mlplan.serving._metrics import ServerMetrics

    log = PredictionLog(tmp_path, mode="async")
    full = _fill_next_segment(log)
    _record(log, "on-disk")
    _until(lambda: log.stats.written == 1)  # written; the log then rotates onto the full disk
    for i in range(5):
        _record(log, f"lost{i}")  # answered at once (async), then their write fails
    log.close()
    assert log.stats.failures["no_space"] == log.stats.failed == log.stats.dropped == 5
    metrics = ServerMetrics()
    metrics.log_stats = log.stats
    text = metrics.exposition()[0].decode()
    assert sample(text, "mlplan_log_write_failures_total", reason="no_space") == 5
    assert sample(text, "mlplan_log_write_failures_total", reason="io_error") == 0
    assert sample(text, "mlplan_log_dropped_total") == 5
    assert "Records answered but never logged (async mode)" in text
    full.unlink()
    ids = query_log(tmp_path, "SELECT request_id FROM predictions").column(0).to_pylist()
    assert ids == ["on-disk"]


@needs_dev_full
def test_on_a_full_disk_the_server_answers_503_and_counts_every_failed_write(
    served: Workspace, tokens: dict[str, str]
) -> None:
    from mlplan.serving import ServeConfig, create_app

    app = create_app(ServeConfig(root=str(served.root), model="logistic-1", key_refresh_seconds=0))
    headers = bearer(tokens["predict"])
    with started(app) as client:
        # The link stands for a segment the log has not opened yet: were the compactor's first
        # pass (what earlier servers left) to see it, the open segment would look closed.
        _until(lambda: app.state.mlplan.compactor.stats.passes >= 1)
        full = _fill_next_segment(app.state.mlplan.log)
        ok = client.post("/v1/predict", json={"records": [RECORD]}, headers=headers)
        assert ok.status_code == 200  # on disk; then the log rotates onto the full disk
        for _ in range(3):
            refused = client.post("/v1/predict", json={"records": [RECORD]}, headers=headers)
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
            assert "could not be logged" in refused.json()["detail"]
        text = client.get("/metrics", headers=bearer(tokens["admin"])).text
    assert sample(text, "mlplan_log_write_failures_total", reason="no_space") == 3
    assert sample(text, "mlplan_refusals_total", reason="log_failed") == 3
    assert sample(text, "mlplan_log_dropped_total") == 0  # refused, so nothing was dropped
    assert sample(text, "mlplan_log_records_total") == 1
    full.unlink()
    folder = served.root / ".mlplan" / "predictions" / "logistic-1"
    ids = query_log(folder, "SELECT request_id FROM predictions").column(0).to_pylist()
    assert ids == [ok.json()["request_id"]]


def test_a_request_that_meets_a_closed_log_is_answered_503_not_500(
    served: Workspace, tokens: dict[str, str]
) -> None:
    """At shutdown the log closes while requests may still arrive: they are not logged, so
    they are refused with Retry-After, never an internal error."""
    from mlplan.serving import ServeConfig, create_app

    app = create_app(ServeConfig(root=str(served.root), model="logistic-1", key_refresh_seconds=0))
    headers = bearer(tokens["predict"])
    with started(app) as client:
        app.state.mlplan.log.close()
        refused = client.post("/v1/predict", json={"records": [RECORD]}, headers=headers)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        text = client.get("/metrics", headers=bearer(tokens["admin"])).text
    assert sample(text, "mlplan_log_write_failures_total", reason="other") == 1


@pytest.mark.slow
def test_when_log_files_cannot_grow_two_workers_answer_503_and_count_every_failure(
    served: Workspace, tokens: dict[str, str]
) -> None:
    """A real failure, no privileges needed: no file of the server may grow past a limit
    (RLIMIT_FSIZE), so once a worker's segment reaches it, every write fails with EFBIG."""
    import httpx

    biggest = max(p.stat().st_size for p in served.root.rglob("*") if p.is_file())
    limit = max(biggest, 1 << 20) + (1 << 20)  # room for the store and the metrics' files
    body = {"records": [RECORD] * 2_000}  # about 250 KB of log a request
    predict = bearer(tokens["predict"]) | {"Connection": "close"}  # either worker answers
    answered: list[str] = []
    refused = 0
    with server_process(served.root, "logistic-1", workers=2, file_size_limit=limit) as (
        process,
        base,
    ):
        for _ in range(200):
            answer = httpx.post(f"{base}/v1/predict", json=body, headers=predict, timeout=30)
            assert answer.status_code in {200, 503}, answer.text
            if answer.status_code == 200:
                answered.append(answer.json()["request_id"])
            else:
                assert answer.headers["Retry-After"] == "1"
                refused += 1
            if refused == 8:
                break
        assert refused == 8

        def scrape() -> str:
            admin = bearer(tokens["admin"]) | {"Connection": "close"}
            return httpx.get(f"{base}/metrics", headers=admin, timeout=10).text

        # Each worker publishes its log's figures once a second: wait for both.
        text = scrape()
        deadline = time.monotonic() + 30
        while (
            sample(text, "mlplan_log_records_total") < len(answered)
            or sample(text, "mlplan_log_write_failures_total", reason="file_too_large") < refused
        ):
            assert time.monotonic() < deadline, text
            time.sleep(0.1)
            text = scrape()
        stop(process)
    assert sample(text, "mlplan_log_write_failures_total", reason="file_too_large") == refused
    assert sample(text, "mlplan_log_records_total") == len(answered)
    assert sample(text, "mlplan_refusals_total", reason="log_failed") == refused
    assert sample(text, "mlplan_log_dropped_total") == 0
    # Every acknowledged prediction is in the log, once; no failed one left a trace.
    folder = served.root / ".mlplan" / "predictions" / "logistic-1"
    ids = query_log(folder, "SELECT request_id FROM predictions").column(0).to_pylist()
    assert sorted(ids) == sorted(answered)
