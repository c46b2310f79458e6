"""What serving leaves in the store: a ``serve`` run per server process (its model, when it
started and stopped, what it answered and logged), load tests against the plan's
objectives, and edge exports; read back by the Deployment checklist items."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mlplan.store import ModelReport, Project, Run, RunRecorder, utcnow
from mlplan.workspace import Workspace

__all__ = ["finish_serving", "latest_report", "record_report", "start_serving"]


def start_serving(ws: Workspace, model: Any, parameters: dict[str, Any]) -> str:
    """Record that a server started serving ``model`` (a run left ``running`` until it
    stops; one killed stays so)."""
    plan = ws.plan

    def work(session: Any) -> str:
        project_id = ws.store.project_id(session, plan.project.store_key, name=plan.project.name)
        run = RunRecorder.start(
            session,
            project_id=project_id,
            job="serve",
            root=ws.root,
            parameters={"model": model.name, **parameters},
        )
        run.input("model", model.name, sha256=model.package["model.onnx"])
        return run.id

    result: str = ws.store.write(work)
    return result


def finish_serving(ws: Workspace, run_id: str, report: dict[str, Any]) -> None:
    """Close the ``serve`` run with what the server did, and keep it as a report."""
    plan = ws.plan

    def work(session: Any) -> None:
        run = session.get(Run, run_id)
        if run is None:
            return
        run.status = "completed"
        run.ended_at = utcnow()
        run.parameters = dict(run.parameters) | {"served": report}
        session.add(
            ModelReport(
                project_id=ws.store.project_id(
                    session, plan.project.store_key, name=plan.project.name
                ),
                kind="serving",
                report=report | {"run_id": run_id},
                run_id=run_id,
            )
        )

    ws.store.write(work)


def record_report(ws: Workspace, kind: str, job: str, report: dict[str, Any], model: Any) -> str:
    """Store a serving-stage report (``load_test``, ``export``) with its run."""
    plan = ws.plan

    def work(session: Any) -> str:
        project_id = ws.store.project_id(session, plan.project.store_key, name=plan.project.name)
        run = RunRecorder.start(
            session, project_id=project_id, job=job, root=ws.root, parameters=report
        )
        run.input("model", model.name, sha256=model.package["model.onnx"])
        session.add(ModelReport(project_id=project_id, kind=kind, report=report, run_id=run.id))
        run.finish()
        return run.id

    result: str = ws.store.write(work)
    return result


def latest_report(ws: Workspace, kind: str, model: str | None = None) -> dict[str, Any] | None:
    """The newest report of ``kind`` (for ``model``), with its time."""
    with ws.store.transaction() as session:
        records = session.scalars(
            select(ModelReport)
            .join(Project, ModelReport.project_id == Project.id)
            .where(Project.key == ws.plan.project.store_key, ModelReport.kind == kind)
            .order_by(ModelReport.created_at.desc(), ModelReport.id.desc())
        ).all()
        for record in records:
            if model is None or record.report.get("model") == model:
                return dict(record.report) | {"created_at": record.created_at.isoformat()}
    return None
