"""The monitor_windows table on SQLite and PostgreSQL: migration 0010 up and down, and a
window written, then replaced when computed again, on each backend."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from tests.conftest import migrated, register_split_train

from mlplan.modeling import get_model
from mlplan.monitoring import FAMILIES, monitor, stored_windows
from mlplan.serving import PredictionLog, log_folder
from mlplan.store import MonitorWindowRecord, RunRecord, open_store
from mlplan.workspace import Workspace


def test_migration_0010_adds_the_monitor_windows_table_and_removes_it(
    store_url: str, tmp_path: Path
) -> None:
    with migrated(store_url, "0009") as connection:
        assert not sa.inspect(connection).has_table("monitor_windows")
    store = open_store(tmp_path, url=store_url)  # to head on open
    with store.engine.connect() as connection:
        inspector = sa.inspect(connection)
        assert inspector.has_table("monitor_windows")
        columns = {c["name"] for c in inspector.get_columns("monitor_windows")}
        assert {"deployment", "version", "window_start", "window_end", "slice", "family"} <= columns
        assert {"metrics", "samples"} <= columns
    store.close()
    with migrated(store_url, "0009", down=True) as connection:
        assert not sa.inspect(connection).has_table("monitor_windows")


def test_a_window_computed_again_replaces_its_rows_on_each_backend(ws: Workspace) -> None:
    register_split_train(ws)
    version = get_model(ws, "logistic-1").package_sha256[:12]
    start = dt.datetime(2026, 11, 30, 8, tzinfo=dt.UTC)
    times = iter(start + dt.timedelta(minutes=i) for i in range(100))
    with PredictionLog(log_folder(ws, "logistic-1"), clock=lambda: next(times)) as log:
        for i in range(12):
            done = log.record(
                kind="prediction",
                request_id=f"{i:032x}",
                model="logistic-1",
                version=version,
                route="/v1/predict",
                status=200,
                latency_ms=3.0,
                inputs=[{"region": "north", "age": 30 + i}],
                outputs=[{"label": "0", "probabilities": {"0": 0.8, "1": 0.2}}],
            )
            assert done is not None
            done.result(timeout=30)
    first = monitor(ws, "logistic-1", window="1h", since=start, until=start + dt.timedelta(hours=1))
    assert {w.family for w in first.windows} == {*FAMILIES, "estimated"}
    second = monitor(
        ws, "logistic-1", window="1h", since=start, until=start + dt.timedelta(hours=1)
    )
    stored = stored_windows(ws)
    assert len(stored) == len(second.windows) == len(first.windows)
    assert [w.to_dict() for w in stored] == [w.to_dict() for w in second.windows]
    with ws.store.transaction() as session:
        runs = session.scalars(
            ws.select(RunRecord).where(RunRecord.job == "monitor").order_by(RunRecord.started_at)
        ).all()
        assert len(runs) == 2
        assert {r.run_id for r in session.scalars(ws.select(MonitorWindowRecord))} == {runs[1].id}
        (read,) = [io for io in runs[1].ios if io.direction == "input"]
        assert (read.kind, read.ref) == ("model", "logistic-1@1")
