"""A server killed with ``kill -9`` never closes its ``serve`` run: the next server closes it
as ``crashed``, and a live server's run stays ``running`` whatever runs beside it."""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import ok
from tests.serving.conftest import server_process, stop

from mlplan.store import RunRecord, process_identity
from mlplan.workspace import Workspace


def _serve_runs(ws: Workspace) -> list[RunRecord]:
    with ws.store.transaction() as session:
        runs = session.scalars(
            ws.select(RunRecord).where(RunRecord.job == "serve").order_by(RunRecord.started_at)
        ).all()
        session.expunge_all()
    return list(runs)


@pytest.mark.slow
def test_a_server_killed_with_kill_9_is_closed_as_crashed_by_the_next_one(
    served: Workspace, cli: Any
) -> None:
    with server_process(served.root, "logistic-1") as (first, _):
        first.kill()  # SIGKILL: no shutdown, the run stays running
        first.wait()
    [killed] = _serve_runs(served)
    assert (killed.status, killed.parameters["pid"]) == ("running", first.pid)
    assert killed.parameters["hostname"] == process_identity()["hostname"]

    with server_process(served.root, "logistic-1") as (second, _):
        killed, live = _serve_runs(served)
        assert (killed.status, live.status) == ("crashed", "running")
        assert killed.parameters["crashed"]["reason"] == (
            f"process {first.pid} on {process_identity()['hostname']} is gone"
        )
        assert killed.parameters["crashed"]["found_by"] == "mlplan serve"
        status = ok(cli("status", "--json")).stdout  # a live server's run is left running
        assert "1 server(s) running now; 1 server(s) crashed (process gone)" in status
        assert [r.status for r in _serve_runs(served)] == ["crashed", "running"]
        stop(second)
    assert [r.status for r in _serve_runs(served)] == ["crashed", "completed"]
