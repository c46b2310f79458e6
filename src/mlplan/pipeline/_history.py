"""The pipeline runs on record: what started each (by hand, a scheduler, an alert), how it
ended, and its steps."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, get_args

from mlplan.errors import NotFoundError, ParameterError
from mlplan.pipeline._run import PIPELINE_JOB, Trigger
from mlplan.store import RunRecord
from mlplan.workspace import Workspace

__all__ = ["PipelineRunInfo", "PipelineStepInfo", "get_pipeline_run", "list_pipeline_runs"]


@dataclass(frozen=True)
class PipelineStepInfo:
    """One step of a recorded pipeline run: its run, state (completed, cached, failed,
    running), the run it reused, its error, its outputs."""

    step: str
    run_id: str
    state: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    reused: str | None = None
    error: str | None = None
    outputs: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "step": self.step,
            "run_id": self.run_id,
            "state": self.state,
            "started_at": self.started_at.isoformat(),
            "ended_at": None if self.ended_at is None else self.ended_at.isoformat(),
            "reused": self.reused,
            "error": self.error,
            "outputs": self.outputs,
        }


@dataclass(frozen=True)
class PipelineRunInfo:
    """A recorded pipeline run: what started it (``trigger``: manual, schedule or alert; the
    ``scheduler`` and its run, or the ``alert``, when one did), its state and its steps,
    oldest first."""

    id: str
    trigger: str
    state: str
    user: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    scheduler: dict[str, Any] | None = None
    alert: dict[str, Any] | None = None
    note: str | None = None
    states: dict[str, str] = field(default_factory=dict)
    steps: list[PipelineStepInfo] = field(default_factory=list)

    @property
    def scheduled(self) -> bool:
        """Whether a scheduler started it."""
        return self.trigger == "schedule"

    @property
    def counts(self) -> dict[str, int]:
        """How many of its recorded steps ended in each state, in the order states first
        came."""
        return dict(Counter(s.state for s in self.steps))

    @property
    def failed_step(self) -> PipelineStepInfo | None:
        """The step that failed, if one did."""
        return next((s for s in self.steps if s.state == "failed"), None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "id": self.id,
            "trigger": self.trigger,
            "state": self.state,
            "user": self.user,
            "started_at": self.started_at.isoformat(),
            "ended_at": None if self.ended_at is None else self.ended_at.isoformat(),
            "scheduler": self.scheduler,
            "alert": self.alert,
            "note": self.note,
            "states": self.states,
            "steps": [s.to_dict() for s in self.steps],
        }


def _info(run: RunRecord, steps: list[RunRecord]) -> PipelineRunInfo:
    parameters = run.parameters
    return PipelineRunInfo(
        id=run.id,
        trigger=str(parameters.get("trigger", "manual")),
        state=run.status,
        user=run.user,
        started_at=run.started_at,
        ended_at=run.ended_at,
        scheduler=parameters.get("scheduler"),
        alert=parameters.get("alert"),
        note=parameters.get("note"),
        states=dict(parameters.get("states") or {}),
        steps=[
            PipelineStepInfo(
                step=str(s.parameters.get("step", s.job.removeprefix(f"{PIPELINE_JOB} "))),
                run_id=s.id,
                state=s.status,
                started_at=s.started_at,
                ended_at=s.ended_at,
                reused=s.parameters.get("reused"),
                error=s.parameters.get("error"),
                outputs=s.parameters.get("outputs"),
            )
            for s in steps
        ],
    )


def list_pipeline_runs(
    ws: Workspace, *, limit: int | None = 20, trigger: Trigger | None = None
) -> list[PipelineRunInfo]:
    """The newest pipeline runs first (at most ``limit``; ``trigger``: only those it
    started), each with its steps.

    Raises
    ------
    ParameterError
        An unknown ``trigger``.
    """
    if trigger is not None and trigger not in get_args(Trigger):
        raise ParameterError(
            "trigger", f"{{param}} must be one of {', '.join(get_args(Trigger))}; got {trigger!r}"
        )
    with ws.store.transaction() as session:
        query = (
            ws.select(RunRecord)
            .where(RunRecord.job == PIPELINE_JOB, RunRecord.parent_id.is_(None))
            .order_by(RunRecord.started_at.desc(), RunRecord.id.desc())
        )
        runs = [
            r
            for r in session.scalars(query.limit(None if trigger else limit))
            if trigger is None or r.parameters.get("trigger", "manual") == trigger
        ][:limit]
        ids = [r.id for r in runs]
        steps: dict[str, list[RunRecord]] = {i: [] for i in ids}
        for at in range(0, len(ids), 500):
            for step in session.scalars(
                ws.select(RunRecord)
                .where(RunRecord.parent_id.in_(ids[at : at + 500]))
                .order_by(RunRecord.started_at, RunRecord.id)
            ):
                steps[step.parent_id or ""].append(step)
        return [_info(r, steps[r.id]) for r in runs]


def get_pipeline_run(ws: Workspace, run_id: str | None = None) -> PipelineRunInfo:
    """One pipeline run, by its id or the start of it (None: the newest).

    Raises
    ------
    NotFoundError
        No pipeline run with that id, or none at all; or the start of an id that several
        share.
    """
    with ws.store.transaction() as session:
        query = ws.select(RunRecord).where(
            RunRecord.job == PIPELINE_JOB, RunRecord.parent_id.is_(None)
        )
        if run_id is not None:
            query = query.where(RunRecord.id.startswith(run_id, autoescape=True))
        found = list(session.scalars(query.order_by(RunRecord.started_at.desc()).limit(2)))
        if not found:
            raise NotFoundError(
                "no pipeline run yet: mlplan run"
                if run_id is None
                else f"no pipeline run {run_id!r}; list them with: mlplan pipeline runs"
            )
        if run_id is not None and len(found) > 1:
            raise NotFoundError(f"several pipeline runs start with {run_id!r}: give more of the id")
        steps = list(
            session.scalars(
                ws.select(RunRecord)
                .where(RunRecord.parent_id == found[0].id)
                .order_by(RunRecord.started_at, RunRecord.id)
            )
        )
        return _info(found[0], steps)
