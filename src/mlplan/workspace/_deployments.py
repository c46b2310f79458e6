"""Deployments as the store holds them: named places where a model serves (``production``
unless named otherwise), read by every stage that needs to know what is live — evaluation
compares a candidate with production, serving serves what a deployment holds, the checklist
follows the model in production. Putting a model there (``deploy``) is serving's, since it
needs the model cleared first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from mlplan.errors import DeploymentNotFoundError
from mlplan.store import DeploymentRecord, ModelRecord, RolloutRecord, package_sha256
from mlplan.workspace._workspace import Workspace

__all__ = [
    "PRODUCTION",
    "DeploymentInfo",
    "DeploymentRoute",
    "deployment_route",
    "get_deployment",
    "list_deployments",
]

PRODUCTION = "production"


@dataclass(frozen=True)
class DeploymentInfo:
    """A deployment as the store holds it: the exact package version it serves (``model``
    ``@`` ``model_version``, the package's hash), kept until the next ``deploy``."""

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
    previous: str | None = None  # the version it replaced, when deploy() just changed it
    model_version: int = 1

    @property
    def model_ref(self) -> str:
        """The exact package version deployed, ``name@version``."""
        return f"{self.model}@{self.model_version}"

    @classmethod
    def from_record(
        cls, row: DeploymentRecord, model: ModelRecord, previous: str | None = None
    ) -> DeploymentInfo:
        """From the store's rows: the deployment and the model it holds."""
        return cls(
            row.name,
            model.name,
            package_sha256(model.package),
            row.mode,
            row.target,
            row.deployed_by,
            row.note,
            row.run_id,
            row.created_at,
            row.updated_at,
            previous,
            model.version,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "name": self.name,
            "model": self.model,
            "model_version": self.model_version,
            "model_ref": self.model_ref,
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


def list_deployments(ws: Workspace) -> list[DeploymentInfo]:
    """Every deployment of the project, by name."""
    with ws.store.transaction() as session:
        rows = session.execute(
            ws.select(DeploymentRecord, ModelRecord)
            .join(ModelRecord, DeploymentRecord.model_id == ModelRecord.id)
            .order_by(DeploymentRecord.name)
        ).all()
        return [DeploymentInfo.from_record(row, model) for row, model in rows]


def get_deployment(ws: Workspace, name: str = PRODUCTION) -> DeploymentInfo:
    """The deployment called ``name``.

    Raises
    ------
    DeploymentNotFoundError
        Naming the deployments there are, and how to make one.
    """
    found = list_deployments(ws)
    for info in found:
        if info.name == name:
            return info
    raise DeploymentNotFoundError(
        f"no deployment {name!r}; deployments: {', '.join(d.name for d in found) or 'none'}. "
        f"Put a model there with: mlplan deploy MODEL --name {name}"
    )


@dataclass(frozen=True)
class DeploymentRoute:
    """Where a deployment's traffic goes now: its model (``name@version``, the stable one
    during a rollout) and, while a rollout is active, the candidate, the strategy, the
    rollout's state and the candidate's share of traffic in percent. A server of the
    deployment reads it every second and follows it."""

    deployment: str
    model: str
    candidate: str | None = None
    strategy: str | None = None
    state: str | None = None
    weight: float = 0.0
    rollout: int | None = None


def deployment_route(ws: Workspace, name: str = PRODUCTION) -> DeploymentRoute:
    """The deployment ``name``'s traffic now: one indexed read, cheap enough for every
    server process to make each second.

    Raises
    ------
    DeploymentNotFoundError
        No deployment ``name``.
    """
    with ws.store.transaction() as session:
        found = session.execute(
            ws.select(DeploymentRecord.id, ModelRecord.name, ModelRecord.version)
            .join(ModelRecord, DeploymentRecord.model_id == ModelRecord.id)
            .where(DeploymentRecord.name == name)
        ).one_or_none()
        if found is None:
            raise DeploymentNotFoundError(
                f"no deployment {name!r}; put a model there with: mlplan deploy MODEL --name {name}"
            )
        deployment_id, model, version = found
        active = session.execute(
            select(
                RolloutRecord.id,
                RolloutRecord.strategy,
                RolloutRecord.state,
                RolloutRecord.weight,
                ModelRecord.name,
                ModelRecord.version,
            )
            .join(ModelRecord, RolloutRecord.candidate_id == ModelRecord.id)
            .where(RolloutRecord.deployment_id == deployment_id, RolloutRecord.active.is_(True))
        ).one_or_none()
    if active is None:
        return DeploymentRoute(name, f"{model}@{version}")
    rollout, strategy, state, weight, candidate, candidate_version = active
    return DeploymentRoute(
        name,
        f"{model}@{version}",
        f"{candidate}@{candidate_version}",
        strategy,
        state,
        float(weight),
        rollout,
    )
