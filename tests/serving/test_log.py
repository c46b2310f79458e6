from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pyarrow as pa
import pytest
from tests.conftest import edit_plan
from tests.serving.conftest import RECORD, bearer, started

from mlplan.errors import DataError
from mlplan.serving._log import PiiPolicy, PredictionLog, compact_segments, log_files, query_log
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
