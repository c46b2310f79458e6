"""Deployments: named places where a model serves (``production`` unless named otherwise).

``mlplan deploy MODEL [--name NAME]`` puts a model there, once it is cleared to ship (its
gates passed, or an approval of the plan's deploy gate names it); ``mlplan serve --deployment
NAME`` serves whatever is there; evaluation compares a candidate with the model in
``production``. Each change is a ``deploy`` run (model → deployment), so the history and the
lineage live with the other runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from mlplan.errors import NotFoundError, UsageError
from mlplan.store import Deployment, Model, Project, RunRecorder, current_user, utcnow
from mlplan.workspace import Workspace

__all__ = ["PRODUCTION", "DeploymentInfo", "deploy", "get_deployment", "list_deployments"]

PRODUCTION = "production"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")


@dataclass(frozen=True)
class DeploymentInfo:
    """A deployment as the store holds it."""

    name: str
    model: str
    package_sha256: str
    mode: str
    target: str
    deployed_by: str
    note: str | None
    run_id: str
    created_at: datetime
    updated_at: datetime
    previous: str | None = None  # the model it replaced, when deploy() just changed it

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "name": self.name,
            "model": self.model,
            "package_sha256": self.package_sha256,
            "mode": self.mode,
            "target": self.target,
            "deployed_by": self.deployed_by,
            "note": self.note,
            "run_id": self.run_id,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "previous": self.previous,
        }


def _info(row: Deployment, model: Model, previous: str | None = None) -> DeploymentInfo:
    return DeploymentInfo(
        row.name,
        model.name,
        model.package["model.onnx"],
        row.mode,
        row.target,
        row.deployed_by,
        row.note,
        row.run_id,
        row.created_at,
        row.updated_at,
        previous,
    )


def _rows(session: Any, ws: Workspace) -> list[tuple[Deployment, Model]]:
    return [
        (row, model)
        for row, model in session.execute(
            select(Deployment, Model)
            .join(Model, Deployment.model_id == Model.id)
            .join(Project, Deployment.project_id == Project.id)
            .where(Project.key == ws.plan.project.store_key)
            .order_by(Deployment.name)
        ).all()
    ]


def list_deployments(ws: Workspace) -> list[DeploymentInfo]:
    """Every deployment of the project, by name."""
    with ws.store.transaction() as session:
        return [_info(row, model) for row, model in _rows(session, ws)]


def get_deployment(ws: Workspace, name: str = PRODUCTION) -> DeploymentInfo:
    """The deployment called ``name``.

    Raises
    ------
    NotFoundError
        Naming the deployments there are, and how to make one.
    """
    found = list_deployments(ws)
    for info in found:
        if info.name == name:
            return info
    raise NotFoundError(
        f"no deployment {name!r}; deployments: {', '.join(d.name for d in found) or 'none'}. "
        f"Put a model there with: mlplan deploy MODEL --name {name}"
    )


def deploy(
    ws: Workspace,
    model: str,
    *,
    name: str = PRODUCTION,
    by: str | None = None,
    note: str | None = None,
    allow_failed_gates: bool = False,
) -> DeploymentInfo:
    """Put ``model`` in the deployment ``name`` (made on first use), replacing what was there.

    The model must be cleared to ship, as for ``mlplan serve``: its newest evaluation passed
    the plan's gates, or an approval of the deploy gate names it. ``allow_failed_gates``
    skips that, for a staging deployment.

    Raises
    ------
    UsageError
        A name that is not lowercase letters, digits, ``-`` and ``_``.
    NotFoundError
        An unknown model.
    CheckFailedError
        The model failed its gates and nobody approved deploying it.
    """
    from mlplan.modeling import get_model
    from mlplan.serving._serve import check_clearance

    if not _NAME.match(name):
        raise UsageError(
            f"deployment name {name!r}: use lowercase letters, digits, - and _, starting with "
            "a letter (e.g. production, staging)"
        )
    info = get_model(ws, model)
    check_clearance(ws, model, allow_failed_gates=allow_failed_gates)
    plan = ws.plan
    who = by or current_user()

    def work(session: Any) -> DeploymentInfo:
        project_id = ws.store.project_id(session, plan.project.store_key, name=plan.project.name)
        row_model = session.scalars(
            select(Model).where(Model.project_id == project_id, Model.name == model)
        ).one()
        existing = session.scalars(
            select(Deployment).where(Deployment.project_id == project_id, Deployment.name == name)
        ).one_or_none()
        previous = None
        if existing is not None:
            previous = session.get(Model, existing.model_id).name
        run = RunRecorder.start(
            session,
            project_id=project_id,
            job="deploy",
            root=ws.root,
            parameters={
                "deployment": name,
                "model": model,
                "previous": previous,
                "mode": plan.deployment.mode,
                "target": plan.deployment.target,
                "by": who,
                "note": note,
                "allow_failed_gates": allow_failed_gates,
            },
        )
        run.input("model", model, sha256=info.package["model.onnx"])
        run.output("deployment", name, sha256=info.package["model.onnx"])
        run.finish()
        now = utcnow()
        if existing is None:
            existing = Deployment(
                project_id=project_id,
                name=name,
                created_at=now,
                model_id=row_model.id,
                mode=plan.deployment.mode,
                target=plan.deployment.target,
                deployed_by=who,
                note=note,
                run_id=run.id,
                updated_at=now,
            )
            session.add(existing)
        else:
            existing.model_id = row_model.id
            existing.mode = plan.deployment.mode
            existing.target = plan.deployment.target
            existing.deployed_by = who
            existing.note = note
            existing.run_id = run.id
            existing.updated_at = now
        session.flush()
        return _info(existing, row_model, previous)

    result: DeploymentInfo = ws.store.write(work)
    return result
