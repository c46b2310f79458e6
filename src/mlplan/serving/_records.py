"""What serving leaves in the store: a ``serve`` run per server process (its model, when it
started and stopped, what it answered and logged), load tests against the plan's
objectives, and edge and browser exports; read back by the Deployment checklist items."""

from __future__ import annotations

from typing import Any

from mlplan.modeling import ModelInfo
from mlplan.store import RunRecord, RunRecorder, process_identity, utcnow
from mlplan.workspace import Workspace, close_crashed_runs

__all__ = ["finish_serving", "latest_report", "record_report", "start_serving"]


def start_serving(ws: Workspace, model: ModelInfo, parameters: dict[str, Any]) -> str:
    """Record that a server started serving ``model``: a run left ``running`` until it stops,
    with its process (pid and host), so that once a killed server's process is gone the next
    server, ``mlplan status`` or ``mlplan gc`` closes its run as ``crashed``. This server
    closes those first."""
    close_crashed_runs(ws, found_by="mlplan serve")
    recorded = {"model": model.name, "package": model.ref, **parameters, **process_identity()}
    with ws.record("serve", recorded, running=True) as run:
        run.input("model", model.ref, sha256=model.package_sha256)
    return run.id


def finish_serving(ws: Workspace, run_id: str, report: dict[str, Any]) -> None:
    """Close the ``serve`` run with what the server did, and keep it as a report."""
    with ws.write() as session:
        run = session.get(RunRecord, run_id)
        if run is None:
            return
        run.status = "completed"
        run.ended_at = utcnow()
        run.parameters = dict(run.parameters) | {"served": report}
        RunRecorder(session, run).report("serving", report | {"run_id": run_id})


def record_report(
    ws: Workspace, kind: str, job: str, report: dict[str, Any], model: ModelInfo
) -> str:
    """Store a serving-stage report (``load_test``, ``export_edge`` ...) with its run."""
    with ws.record(job, report) as run:
        run.input("model", model.ref, sha256=model.package_sha256)
        run.report(kind, report)
    return run.id


def latest_report(ws: Workspace, kind: str, model: str | None = None) -> dict[str, Any] | None:
    """Deprecated (``mlplan.serving.latest_report``): use ``ws.latest_report(kind, where=...)``.
    The newest report of ``kind`` (for ``model``), with its time."""
    found = ws.latest_report(kind, where=lambda r: model is None or r.get("model") == model)
    return None if found is None else found.report | {"created_at": found.created_at.isoformat()}
