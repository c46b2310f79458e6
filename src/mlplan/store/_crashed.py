"""Runs whose process is gone: a server killed with ``kill -9`` never closes its ``serve`` run,
so the next server, ``mlplan status`` or ``mlplan gc`` closes it as ``crashed``, with the
reason.

A run left ``running`` records its process (:func:`process_identity`: pid, host, and on Linux
its PID namespace, the boot and the process's start in clock ticks since boot). Its process is
gone when no process has that pid on this host, when the process has exited (a zombie), when
the pid now belongs to a process that started at another tick (pid reuse), or when the machine
has restarted since. A run recorded on another host, in another PID namespace (another
container), or without its host is never touched: from here its process cannot be seen.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlplan.store._tables import RunRecord, utcnow

__all__ = [
    "CRASHED",
    "CrashedRun",
    "close_crashed_runs",
    "crashed_runs",
    "process_gone",
    "process_identity",
]

CRASHED = "crashed"


@dataclass(frozen=True)
class CrashedRun:
    """A run closed as crashed: which, whose process, and why."""

    run_id: str
    job: str
    pid: int
    hostname: str
    started_at: dt.datetime
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "run_id": self.run_id,
            "job": self.job,
            "pid": self.pid,
            "hostname": self.hostname,
            "started_at": self.started_at.isoformat(),
            "reason": self.reason,
        }


def process_identity() -> dict[str, Any]:
    """What a long-running run records so that a later command can tell whether its process
    is still there: ``pid`` and ``hostname``, and where Linux says, ``pid_namespace``,
    ``boot_id`` and ``process_start`` (clock ticks since boot: with the boot, it tells this
    process from a later one given the same pid, with no clock to trust)."""
    pid = os.getpid()
    identity: dict[str, Any] = {"pid": pid, "hostname": socket.gethostname()}
    found = _proc_stat(pid)
    for key, value in (
        ("pid_namespace", _pid_namespace()),
        ("boot_id", _boot_id()),
        ("process_start", None if found is None else found[1]),
    ):
        if value is not None:
            identity[key] = value
    return identity


def process_gone(parameters: dict[str, Any]) -> str | None:
    """Why the process a run recorded (:func:`process_identity`) is gone, or None while it may
    still be running — or cannot be seen from here (another host or container, no host
    recorded).

    Examples
    --------
    >>> here = process_identity()
    >>> process_gone(here) is None  # this process: alive
    True
    >>> process_gone({"pid": 1234}) is None  # no host: not ours to say
    True
    """
    pid, hostname = parameters.get("pid"), parameters.get("hostname")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    here = process_identity()
    if hostname != here["hostname"]:
        return None
    namespace = parameters.get("pid_namespace")
    if namespace is not None and namespace != here.get("pid_namespace"):
        return None
    where = f"process {pid} on {hostname}"
    boot = parameters.get("boot_id")
    if boot is not None and here.get("boot_id") is not None and boot != here["boot_id"]:
        return f"{where} is gone: the machine has restarted since"
    found = _proc_stat(pid)
    if found is None:  # not in /proc (or no /proc, or hidden from us): is the pid there at all?
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"{where} is gone"
        except OSError:  # it is there, another user's
            return None
        return None
    state, start = found
    if state in {"Z", "X"}:
        return f"{where} has exited"
    recorded = parameters.get("process_start")
    if isinstance(recorded, int) and start != recorded:
        return f"{where} is gone: that pid now belongs to another process, started later"
    return None


def crashed_runs(session: Session, project_id: int) -> list[CrashedRun]:
    """The runs of the project left ``running`` whose process is gone (:func:`process_gone`),
    oldest first; nothing is changed."""
    return [crashed for _run, crashed in _crashed(session, project_id)]


def close_crashed_runs(
    session: Session, project_id: int, *, found_by: str, now: dt.datetime | None = None
) -> list[CrashedRun]:
    """Close as ``crashed`` every run of the project left ``running`` whose process is gone
    (:func:`process_gone`), in ``session``: the reason, who found it and when go in its
    parameters (``crashed``), the time found as its end."""
    now = now or utcnow()
    found = _crashed(session, project_id)
    for run, crashed in found:
        run.status = CRASHED
        run.ended_at = now
        run.parameters = dict(run.parameters) | {
            "crashed": {"reason": crashed.reason, "found_by": found_by, "found_at": now.isoformat()}
        }
    session.flush()
    return [crashed for _run, crashed in found]


def _crashed(session: Session, project_id: int) -> list[tuple[RunRecord, CrashedRun]]:
    runs = session.scalars(
        select(RunRecord)
        .where(RunRecord.project_id == project_id, RunRecord.status == "running")
        .order_by(RunRecord.started_at)
    ).all()
    found = []
    for run in runs:
        parameters = dict(run.parameters or {})
        reason = process_gone(parameters)
        if reason is not None:
            crashed = CrashedRun(
                run.id, run.job, parameters["pid"], parameters["hostname"], run.started_at, reason
            )
            found.append((run, crashed))
    return found


def _pid_namespace() -> str | None:
    try:
        return str(Path("/proc/self/ns/pid").readlink())
    except OSError:
        return None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """The process's state letter and start (clock ticks since boot) from ``/proc``; None
    when there is no such process (or it cannot be read)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # pid (comm) state ...: comm may hold spaces and parentheses; the fields follow the last ")".
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])
