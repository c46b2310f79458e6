"""The controller's lease: exactly one controller drives a deployment's rollouts.

One row per deployment (``rollout_leases``). A controller takes it when it is free or expired
and renews it while it runs, each in one short transaction: an UPDATE that matches only a
lease expired or already the caller's (its row count says whether it did), else an INSERT that
the unique deployment constraint lets only one racer make. Two controllers racing, on SQLite
(one writer at a time) or PostgreSQL (the second UPDATE waits for the first's row lock and
then sees its new expiry), end with exactly one holder. Times are the controllers' clocks:
machines sharing a PostgreSQL store keep them in step (NTP) well within the lease's length.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from mlplan.errors import DeploymentNotFoundError, ParameterError
from mlplan.store import DeploymentRecord, RolloutLeaseRecord, utcnow
from mlplan.workspace import Workspace

__all__ = ["LEASE_SECONDS", "Lease", "acquire_lease", "new_holder", "release_lease"]

LEASE_SECONDS = 10.0
"""How long a lease lasts unless renewed; a controller renews it every third of that."""


@dataclass(frozen=True)
class Lease:
    """A deployment's controller lease as the store holds it after a try to take it:
    ``held`` when the caller holds it now, else ``holder`` is the controller that does (until
    ``expires_at``). ``acquired_at`` is when the holder took it, not when it last renewed it."""

    deployment: str
    holder: str
    held: bool
    acquired_at: dt.datetime
    renewed_at: dt.datetime
    expires_at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "deployment": self.deployment,
            "holder": self.holder,
            "held": self.held,
            "acquired_at": self.acquired_at.isoformat(),
            "renewed_at": self.renewed_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }


def new_holder() -> str:
    """A controller's name in the lease: a random id, the host and the process id (the id
    tells two controllers of one process apart, and a restarted process from its past)."""
    return f"controller-{uuid.uuid4().hex[:12]}@{socket.gethostname()}:{os.getpid()}"


def acquire_lease(
    ws: Workspace,
    name: str,
    holder: str,
    *,
    now: dt.datetime | None = None,
    seconds: float = LEASE_SECONDS,
) -> Lease:
    """Take the controller lease of the deployment ``name`` for ``holder``, or renew it when
    ``holder`` holds it still, until ``now`` + ``seconds``. The lease after: ``held`` says
    whether ``holder`` has it. A lease of ``holder`` that expired is taken afresh (its
    ``acquired_at`` is ``now``): another controller may have acted meanwhile.

    Raises
    ------
    ParameterError
        ``seconds`` not positive, or an empty ``holder``.
    DeploymentNotFoundError
        No deployment ``name``.
    """
    if seconds <= 0:
        raise ParameterError("seconds", f"{{param}} must be positive; got {seconds}")
    if not holder.strip():
        raise ParameterError("holder", "{param} must name the controller")
    now = now or utcnow()
    until = now + dt.timedelta(seconds=seconds)
    table = RolloutLeaseRecord
    with ws.store.transaction() as session:
        deployment_id = _deployment_id(ws, session, name)
        mine = (table.holder == holder) & (table.expires_at > now)
        taken = session.execute(
            update(table)
            .where(
                table.deployment_id == deployment_id,
                (table.expires_at <= now) | (table.holder == holder),
            )
            .values(
                holder=holder,
                acquired_at=case((mine, table.acquired_at), else_=now),
                renewed_at=now,
                expires_at=until,
            )
            .execution_options(synchronize_session=False)
        )
        if _rowcount(taken) == 0:
            session.execute(
                ws.store.insert(table)
                .values(
                    deployment_id=deployment_id,
                    holder=holder,
                    acquired_at=now,
                    renewed_at=now,
                    expires_at=until,
                )
                .on_conflict_do_nothing(index_elements=["deployment_id"])
            )
        row = session.scalars(select(table).where(table.deployment_id == deployment_id)).one()
        return Lease(
            name,
            row.holder,
            row.holder == holder,
            row.acquired_at,
            row.renewed_at,
            row.expires_at,
        )


def release_lease(ws: Workspace, name: str, holder: str, *, now: dt.datetime | None = None) -> bool:
    """Give the lease of the deployment ``name`` back, if ``holder`` holds it (it expires
    ``now``: the next controller takes it at once). Whether it did."""
    now = now or utcnow()
    table = RolloutLeaseRecord
    with ws.store.transaction() as session:
        project_id = ws.project_id(session)
        deployment_id = session.scalar(
            select(DeploymentRecord.id).where(
                DeploymentRecord.project_id == project_id, DeploymentRecord.name == name
            )
        )
        if deployment_id is None:
            return False
        released = session.execute(
            update(table)
            .where(
                table.deployment_id == deployment_id,
                table.holder == holder,
                table.expires_at > now,
            )
            .values(expires_at=now)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(released) == 1


def _deployment_id(ws: Workspace, session: Session, name: str) -> int:
    """The deployment's id, or an error naming the deployments there are."""
    project_id = ws.project_id(session)
    names = {
        row.name: row.id
        for row in session.execute(
            select(DeploymentRecord.name, DeploymentRecord.id)
            .where(DeploymentRecord.project_id == project_id)
            .order_by(DeploymentRecord.name)
        )
    }
    if name not in names:
        raise DeploymentNotFoundError(
            f"no deployment {name!r}; deployments: {', '.join(names) or 'none'}. Put a model "
            f"there with: mlplan deploy MODEL --name {name}"
        )
    return int(names[name])


def _rowcount(result: Any) -> int:
    """The rows an UPDATE or INSERT changed."""
    return int(result.rowcount)
