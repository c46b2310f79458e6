"""Deployments: named places where a model serves (``production`` unless named otherwise).

``mlplan deploy MODEL [--name NAME]`` puts one package version there (``logistic-1`` means its
newest, ``logistic-1@2`` names one), once it is cleared to ship (an evaluation of that exact
package passed its gates, or an approval names the version and the evaluation it overrides);
the deployment keeps that package until the next ``deploy``. ``mlplan serve --deployment
NAME`` serves whatever is there; evaluation compares a candidate with the model in
``production``. Each change is a ``deploy`` run (model → deployment), so the history and the
lineage live with the other runs.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlplan.errors import ParameterError, RolloutStateError
from mlplan.modeling import ModelInfo, get_model
from mlplan.plan import DeploymentSpec
from mlplan.serving._clearance import check_clearance
from mlplan.store import DeploymentRecord, ModelRecord, RolloutRecord, current_user, utcnow
from mlplan.workspace import PRODUCTION, DeploymentInfo, Workspace

__all__ = ["check_deployment_name", "deploy", "point_deployment"]

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,99}")


def deploy(
    ws: Workspace,
    model: str,
    *,
    name: str = PRODUCTION,
    by: str | None = None,
    note: str | None = None,
    allow_failed_gates: bool = False,
) -> DeploymentInfo:
    """Put ``model`` (a name: its newest package version; or ``name@version``) in the
    deployment ``name`` (made on first use), replacing what was there.

    The package version must be cleared to ship: an evaluation of that exact package passed
    the plan's gates, or an approval of the deploy gate names the version and the evaluation
    it overrides. ``allow_failed_gates`` skips that, for a staging deployment.

    Raises
    ------
    ParameterError
        A name that is not lowercase letters, digits, ``-`` and ``_``.
    ModelNotFoundError
        An unknown model.
    CheckFailedError
        The version was never evaluated, or failed its gates and nobody approved deploying
        it despite that evaluation.
    RolloutStateError
        The deployment has an active rollout (``mlplan rollout``): it ends first.
    """
    check_deployment_name(name)
    info = get_model(ws, model)
    check_clearance(ws, info.ref, allow_failed_gates=allow_failed_gates, require_evaluation=True)
    with ws.write() as session:
        existing, row_model, previous = point_deployment(
            ws,
            session,
            info,
            name,
            by=by or current_user(),
            note=note,
            parameters={"allow_failed_gates": allow_failed_gates},
        )
        return DeploymentInfo.from_record(existing, row_model, previous)


def check_deployment_name(name: str) -> None:
    """Refuse a deployment name that is not lowercase letters, digits, ``-`` and ``_``.

    Raises
    ------
    ParameterError
        Naming the name and what a name may hold.
    """
    if not _NAME.fullmatch(name):
        raise ParameterError(
            "name",
            f"deployment name {name!r}: use lowercase letters, digits, - and _, starting with "
            "a letter (e.g. production, staging)",
        )


def point_deployment(
    ws: Workspace,
    session: Session,
    model: ModelInfo,
    name: str,
    *,
    by: str,
    note: str | None,
    parameters: Mapping[str, Any] | None = None,
    within_rollout: bool = False,
) -> tuple[DeploymentRecord, ModelRecord, str | None]:
    """In ``session``, put ``model`` (cleared already) in the deployment ``name`` (made on
    first use) and record it as a ``deploy`` run (model → deployment) with ``parameters``
    added: the deployment's record, the model's, and the version it replaced.

    Only a rollout (``within_rollout``: its promotion, or a replace) may change a deployment
    that has an active rollout, so that nothing swaps the stable model under it.

    Raises
    ------
    RolloutStateError
        The deployment has an active rollout and this is not its promotion.
    """
    deployment = ws.plan.deployment
    project_id = ws.project_id(session)
    row_model, existing, previous = _current(session, project_id, model, name)
    if existing is not None and not within_rollout:
        active = session.scalars(
            select(RolloutRecord).where(
                RolloutRecord.deployment_id == existing.id, RolloutRecord.active.is_(True)
            )
        ).one_or_none()
        if active is not None:
            raise RolloutStateError(
                f"deployment {name!r} has an active {active.strategy} rollout "
                f"({active.state}); promote, abort or roll it back first, e.g. mlplan rollout "
                f"abort {name} --by WHO"
            )
    recorded: dict[str, Any] = {
        "deployment": name,
        "model": model.ref,
        "previous": previous,
        "mode": deployment.mode,
        "target": deployment.target,
        "by": by,
        "note": note,
        **(parameters or {}),
    }
    with ws.record("deploy", recorded, session=session) as run:
        run.input("model", model.ref, sha256=model.package_sha256)
        run.output("deployment", name, sha256=model.package_sha256)
    now = utcnow()
    if existing is None:
        existing = DeploymentRecord(project_id=project_id, name=name, created_at=now)
        session.add(existing)
    _point(existing, row_model, deployment, who=by, note=note, run_id=run.id, at=now)
    session.flush()
    return existing, row_model, previous


def _current(
    session: Session, project_id: int, model: ModelInfo, name: str
) -> tuple[ModelRecord, DeploymentRecord | None, str | None]:
    """The package version's record, the deployment's (None before its first use), and the
    version it holds now (``name@version``)."""
    row_model = session.scalars(
        select(ModelRecord).where(
            ModelRecord.project_id == project_id,
            ModelRecord.name == model.name,
            ModelRecord.version == model.version,
        )
    ).one()
    existing = session.scalars(
        select(DeploymentRecord).where(
            DeploymentRecord.project_id == project_id, DeploymentRecord.name == name
        )
    ).one_or_none()
    replaced = None if existing is None else session.get(ModelRecord, existing.model_id)
    return (
        row_model,
        existing,
        None if replaced is None else f"{replaced.name}@{replaced.version}",
    )


def _point(
    record: DeploymentRecord,
    model: ModelRecord,
    deployment: DeploymentSpec,
    *,
    who: str,
    note: str | None,
    run_id: str,
    at: dt.datetime,
) -> None:
    """Point the deployment's record at ``model``, by ``who``, with the plan's mode and
    target."""
    record.model_id = model.id
    record.mode = deployment.mode
    record.target = deployment.target
    record.deployed_by = who
    record.note = note
    record.run_id = run_id
    record.updated_at = at
