"""Runs left ``running`` by a process that is gone are closed as ``crashed`` by the next
``mlplan status`` or ``mlplan gc`` — never a run whose process lives, nor one from another
host."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from tests.conftest import ok

from mlplan.store import RunRecord, process_identity
from mlplan.workspace import Workspace, collect_garbage


def _running(ws: Workspace, **process: Any) -> str:
    """A ``serve`` run of logistic-1 left running, recording ``process``."""
    with ws.record("serve", {"model": "logistic-1", **process}, running=True) as run:
        pass
    return run.id


def _runs(ws: Workspace) -> dict[str, RunRecord]:
    with ws.store.transaction() as session:
        runs = session.scalars(ws.select(RunRecord).where(RunRecord.job == "serve")).all()
        session.expunge_all()
    return {r.id: r for r in runs}


def _exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_status_closes_runs_whose_process_is_gone_and_leaves_the_others(
    trained_ws: Workspace, cli: Any
) -> None:
    here = process_identity()
    gone = _exited_pid()
    killed = _running(trained_ws, **here | {"pid": gone})
    # The pid is this live test process's, but the run's process started at another tick.
    reused = _running(trained_ws, **here | {"process_start": here["process_start"] - 100})
    rebooted = _running(trained_ws, **here | {"boot_id": "0f6c4b1e-boot-before"})
    live = _running(trained_ws, **here)
    elsewhere = _running(trained_ws, **here | {"pid": gone, "hostname": "gpu-box-7"})
    other_container = _running(trained_ws, **here | {"pid": gone, "pid_namespace": "pid:[1]"})
    unknown_host = _running(trained_ws, pid=gone)  # recorded before servers named their host

    shown = ok(cli("status")).stdout
    runs = _runs(trained_ws)
    assert {i: r.status for i, r in runs.items()} == {
        killed: "crashed",
        reused: "crashed",
        rebooted: "crashed",
        live: "running",
        elsewhere: "running",
        other_container: "running",
        unknown_host: "running",
    }
    crashed = runs[killed].parameters["crashed"]
    assert crashed["reason"] == f"process {gone} on {here['hostname']} is gone"
    assert crashed["found_by"] == "mlplan status"
    assert runs[killed].ended_at is not None
    assert runs[reused].parameters["crashed"]["reason"] == (
        f"process {os.getpid()} on {here['hostname']} is gone: that pid now belongs to another "
        "process, started later"
    )
    assert runs[rebooted].parameters["crashed"]["reason"] == (
        f"process {os.getpid()} on {here['hostname']} is gone: the machine has restarted since"
    )
    assert "4 server(s) running now; 3 server(s) crashed (process gone)" in shown.replace("\n", "")


def test_a_killed_process_not_yet_reaped_has_exited(trained_ws: Workspace) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, left a zombie
    try:
        run = _running(trained_ws, **process_identity() | {"pid": child.pid})
        report = collect_garbage(trained_ws)
        assert [(r.run_id, r.reason) for r in report.crashed_runs] == [
            (run, f"process {child.pid} on {process_identity()['hostname']} has exited")
        ]
        assert report.crashed_runs[0].to_dict()["pid"] == child.pid
    finally:
        child.wait()
    assert collect_garbage(trained_ws).crashed_runs == []  # closed once


def test_gc_says_which_runs_it_closed(trained_ws: Workspace, cli: Any) -> None:
    gone = _exited_pid()
    run = _running(trained_ws, **process_identity() | {"pid": gone})
    shown = ok(cli("gc")).stdout
    assert f"Closed serve run {run[:8]} as crashed: process {gone} on " in shown
    assert _runs(trained_ws)[run].parameters["crashed"]["found_by"] == "mlplan gc"


def test_a_crashed_run_is_closed_on_each_store(ws: Workspace) -> None:
    from mlplan.workspace import close_crashed_runs

    gone = _exited_pid()
    run = _running(ws, **process_identity() | {"pid": gone})
    live = _running(ws, **process_identity())
    assert [r.run_id for r in close_crashed_runs(ws, found_by="mlplan status")] == [run]
    runs = _runs(ws)
    assert (runs[run].status, runs[live].status) == ("crashed", "running")
    assert runs[run].parameters["crashed"]["found_by"] == "mlplan status"
    assert close_crashed_runs(ws, found_by="mlplan status") == []
