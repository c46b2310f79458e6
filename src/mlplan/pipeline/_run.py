"""``mlplan run``: the plan's steps in order, each skipped when its inputs are unchanged.

A step's key is the sha256 of its inputs (content hashes of what it reads, the plan sections
it follows) and mlplan's version. A step that ran to the end is a run (job ``pipeline STEP``)
with that key; a later pipeline whose step has the same key reuses its outputs, recording a
``cached`` step run that names the run it reused. A failed step stops the steps that need it,
and is not reused: the next run starts again there, reusing what came before it.

Every run is in the store: the pipeline's (job ``pipeline``), each step's under it, and the
stage's own runs (``data add``, ``train``, ``evaluate`` ...) under their step, so the lineage of
a model walks back to the pipeline run that made it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from mlplan._version import __version__
from mlplan.errors import MlplanError, ParameterError, UsageError
from mlplan.pipeline._steps import STEPS, Engine, Outputs, Step, step_named
from mlplan.store import CRASHED, RunRecord, process_gone, process_identity, sha256_file, utcnow
from mlplan.workspace import Workspace, close_crashed_runs, runs_under

__all__ = [
    "PIPELINE_JOB",
    "PipelineResult",
    "StepResult",
    "Trigger",
    "pipeline_key",
    "run_pipeline",
    "selected_steps",
    "step_job",
]

PIPELINE_JOB = "pipeline"
Trigger = Literal["manual", "schedule", "alert"]
StepState = Literal["ran", "cached", "failed", "blocked", "would run", "would reuse"]


def step_job(step: str) -> str:
    """The job name of a step's runs: ``pipeline train``."""
    return f"{PIPELINE_JOB} {step}"


@dataclass(frozen=True)
class StepResult:
    """What became of one step: ``state``, why (``reason``), its outputs, its run, the run
    whose outputs it reused, and how long it took."""

    step: str
    state: StepState
    reason: str
    outputs: Outputs | None = None
    run_id: str | None = None
    reused: str | None = None
    seconds: float = 0.0
    key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "step": self.step,
            "state": self.state,
            "reason": self.reason,
            "outputs": self.outputs,
            "run_id": self.run_id,
            "reused": self.reused,
            "seconds": round(self.seconds, 3),
            "key": self.key,
        }


@dataclass(frozen=True)
class PipelineResult:
    """One ``mlplan run``: its run (None for a dry run), what started it and each step."""

    run_id: str | None
    trigger: Trigger
    dry_run: bool
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        """How many steps ended in each state, in the order states first came."""
        return dict(Counter(s.state for s in self.steps))

    @property
    def ok(self) -> bool:
        """Whether no step failed or was stopped by one that failed."""
        return not any(s.state in {"failed", "blocked"} for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "run_id": self.run_id,
            "trigger": self.trigger,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "steps": [s.to_dict() for s in self.steps],
        }


def pipeline_key(step: str, inputs: Mapping[str, Any]) -> str:
    """A step's key: the sha256 of its name, its inputs and mlplan's version, as canonical
    JSON (keys sorted), so that equal inputs give equal keys whatever their order.

    Examples
    --------
    >>> pipeline_key("split", {"b": 1, "a": [1, 2]}) == pipeline_key("split", {"a": [1, 2], "b": 1})
    True
    """
    text = json.dumps(
        {"step": step, "inputs": inputs, "mlplan": __version__},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def selected_steps(names: Sequence[str] | None) -> list[Step]:
    """The steps to run for ``names`` (None: all), each with the steps it needs, in order.

    Raises
    ------
    UsageError
        An unknown step.
    """
    if not names:
        return list(STEPS)
    wanted: set[str] = set()

    def add(step: Step) -> None:
        if step.name not in wanted:
            wanted.add(step.name)
            for need in step.needs:
                add(step_named(need))

    for name in names:
        add(step_named(name))
    return [s for s in STEPS if s.name in wanted]


def run_pipeline(
    ws: Workspace,
    steps: Sequence[str] | None = None,
    *,
    dry_run: bool = False,
    only: bool = False,
    trigger: Trigger = "manual",
    engine: Engine = "local",
    by: str | None = None,
    note: str | None = None,
    scheduler: Mapping[str, Any] | None = None,
    alert: Mapping[str, Any] | None = None,
) -> PipelineResult:
    """Run the plan's pipeline: ``steps`` (default: all) and the steps they need, in order.

    Each step whose key (its inputs' hashes, the plan sections it reads, mlplan's version)
    matches a step that ran to the end before reuses that step's outputs. ``dry_run``: say
    for each step whether it would run or reuse, and why, recording nothing (a step after one
    that would run cannot know its inputs yet: it would run). ``trigger``: what started it,
    recorded (a scheduler's run is what ``deploy.pipeline`` asks for). ``by``: who starts a
    rollout the pipeline begins (default: ``mlplan run``).

    ``alert``: the monitoring alert that started it (``trigger`` "alert"), recorded.

    ``only``: run just ``steps``; the steps they need must have run with their present
    inputs already (their outputs are reused, nothing else is recorded for them). A scheduler
    runs one step per task so: ``scheduler`` names its run (``{"name": "airflow", "run_id":
    ...}``), and every task of one scheduler run records its steps under one pipeline run,
    which ends ``completed`` with the plan's last step, or ``failed`` with any failed step.

    A step that fails stops the steps that need it; the result says so (``ok`` is False) and
    nothing is raised for it.

    Raises
    ------
    ParameterError
        An unknown ``trigger`` or ``engine``; ``only`` without ``steps``; ``scheduler``
        without its ``name`` and ``run_id``.
    UsageError
        An unknown step.
    """
    if trigger not in get_args(Trigger):
        raise ParameterError(
            "trigger", f"{{param}} must be one of {', '.join(get_args(Trigger))}; got {trigger!r}"
        )
    if engine not in get_args(Engine):
        raise ParameterError("engine", f"{{param}} must be local or ray; got {engine!r}")
    if alert is not None and trigger != "alert":
        raise ParameterError("alert", "{param} is what started a run of trigger 'alert'")
    if only and not steps:
        raise ParameterError("only", "{param} needs the steps to run, e.g. mlplan run train --only")
    if scheduler is not None and not (scheduler.get("name") and scheduler.get("run_id")):
        raise ParameterError("scheduler", "{param} needs its 'name' and its run's 'run_id'")
    started = time.perf_counter()
    chosen = selected_steps(steps)
    wanted = {step_named(n).name for n in steps or []} if only else {s.name for s in chosen}
    parameters: dict[str, Any] = {
        "steps": [s.name for s in chosen if s.name in wanted],
        "trigger": trigger,
        "engine": engine,
        "note": note,
    }
    if alert is not None:
        parameters["alert"] = dict(alert)
    run_id: str | None = None
    if not dry_run:
        close_crashed_runs(ws, found_by="mlplan run")
        run_id = _open(ws, parameters, scheduler)
    done: dict[str, Outputs] = {}
    states: dict[str, StepState] = {}
    results: list[StepResult] = []
    try:
        for step in chosen:
            if step.name not in wanted:  # only: a step before, to reuse
                reused = _reuse(ws, step, done, states)
                states[step.name] = reused.state
                if reused.outputs is not None:
                    done[step.name] = reused.outputs
                elif not any(states.get(n) == "blocked" for n in step.needs):
                    results.append(reused)  # the first that did not run, to say why
                continue
            result = _step(ws, step, done, states, run_id, engine, by or "mlplan run")
            states[step.name] = result.state
            if result.outputs is not None:
                done[step.name] = result.outputs
            results.append(result)
    finally:
        if run_id is not None:
            ok = all(s.state in {"ran", "cached"} for s in results) and all(
                states.get(n) in {"ran", "cached"} for n in wanted
            )
            # A scheduler's run goes on in its next task, until the plan's last step.
            last = scheduler is None or STEPS[-1].name in wanted
            _close(
                ws,
                run_id,
                ("completed" if last else "running") if ok else "failed",
                {"states": {r.step: r.state for r in results}},
                merge=scheduler is not None,
            )
    return PipelineResult(run_id, trigger, dry_run, results, time.perf_counter() - started)


def _open(ws: Workspace, parameters: dict[str, Any], scheduler: Mapping[str, Any] | None) -> str:
    """The pipeline run to record under: a new one, or the one of this scheduler run that an
    earlier task opened (running again while this task runs; a step an earlier task left
    running — its process killed, or timed out — is closed as crashed). A run a scheduler owns
    records no process: its tasks come and go, each on any worker.

    Raises
    ------
    UsageError
        Another ``mlplan run`` of the project is running (its process alive): two would
        train and roll out twice.
    """
    plan_file = ws.relative(ws.plan_path), sha256_file(ws.plan_path).sha256
    with ws.write() as session:
        if scheduler is None:
            _refuse_concurrent(ws, session)
            with ws.record(
                PIPELINE_JOB, parameters | process_identity(), session=session, running=True
            ) as run:
                run.input("file", plan_file[0], sha256=plan_file[1])
            return run.id
        given = dict(scheduler)
        for found in session.scalars(
            ws.select(RunRecord)
            .where(RunRecord.job == PIPELINE_JOB, RunRecord.parent_id.is_(None))
            .order_by(RunRecord.started_at.desc())
            .limit(200)
        ):
            if found.parameters.get("scheduler") == given:
                found.status, found.ended_at = "running", None
                for left in session.scalars(
                    ws.select(RunRecord).where(
                        RunRecord.parent_id == found.id, RunRecord.status == "running"
                    )
                ):
                    left.status, left.ended_at = CRASHED, utcnow()
                    left.parameters = dict(left.parameters) | {
                        "crashed": {
                            "reason": "its task ended without closing it (killed, or timed out)",
                            "found_by": "the scheduler's next task",
                        }
                    }
                return str(found.id)
        with ws.record(
            PIPELINE_JOB, parameters | {"scheduler": given}, session=session, running=True
        ) as run:
            run.input("file", plan_file[0], sha256=plan_file[1])
        return run.id


def _refuse_concurrent(ws: Workspace, session: Any) -> None:
    """Refuse while another pipeline run of the project runs in a live process."""
    for other in session.scalars(
        ws.select(RunRecord).where(
            RunRecord.job == PIPELINE_JOB,
            RunRecord.parent_id.is_(None),
            RunRecord.status == "running",
        )
    ):
        if "pid" in other.parameters and process_gone(other.parameters) is None:
            raise UsageError(
                f"pipeline run {other.id[:8]} is running (process {other.parameters['pid']} "
                f"on {other.parameters.get('hostname')}, since {other.started_at:%H:%M:%S}): "
                "wait for it to end; two runs would train and roll out twice"
            )


def _reuse(
    ws: Workspace, step: Step, done: Mapping[str, Outputs], states: Mapping[str, StepState]
) -> StepResult:
    """A step before the ones to run (``only``): its outputs, when it ran with its present
    inputs; else it blocks the steps after it."""
    if any(states.get(n) != "cached" for n in step.needs):
        return StepResult(step.name, "blocked", "a step before it did not run")
    try:
        key = pipeline_key(step.name, step.inputs(ws, done))
    except MlplanError as exc:
        return StepResult(step.name, "blocked", str(exc))
    hit = _cached(ws, step.name, key)
    if hit is None:
        return StepResult(
            step.name,
            "blocked",
            f"{step.name} has not run with its present inputs: run it first "
            f"(mlplan run {step.name})",
        )
    return StepResult(step.name, "cached", "reused", hit[1], None, hit[0], key=key)


def _step(
    ws: Workspace,
    step: Step,
    done: Mapping[str, Outputs],
    states: Mapping[str, StepState],
    parent: str | None,
    engine: Engine,
    by: str,
) -> StepResult:
    started = time.perf_counter()
    stopped = [n for n in step.needs if states.get(n) in {"failed", "blocked"}]
    if stopped:
        return StepResult(step.name, "blocked", f"{stopped[0]} did not finish")
    waiting = [n for n in step.needs if states.get(n) == "would run" and n not in done]
    if waiting:
        return StepResult(
            step.name, "would run", f"after {waiting[0]}, which would run: its inputs follow"
        )
    try:
        inputs = step.inputs(ws, done)
    except MlplanError as exc:
        return _failed(ws, step, parent, str(exc), None, started, inputs=None)
    key = pipeline_key(step.name, inputs)
    hit = _cached(ws, step.name, key)
    if hit is not None:
        reused_id, outputs, when = hit
        reason = f"same inputs as run {reused_id[:8]} ({when:%Y-%m-%d %H:%M})"
        if parent is None:
            return StepResult(step.name, "would reuse", reason, outputs, None, reused_id, key=key)
        with ws.record(
            step_job(step.name),
            {"step": step.name, "inputs": inputs, "outputs": outputs, "reused": reused_id},
            running=True,
            parent_id=parent,
            cache_key=key,
        ) as run:
            run.record.status, run.record.ended_at = "cached", utcnow()
        return StepResult(
            step.name, "cached", reason, outputs, run.id, reused_id,
            time.perf_counter() - started, key,
        )  # fmt: skip
    why = _why(ws, step.name, inputs)
    if parent is None:
        predicted = None if step.predict is None else step.predict(ws, inputs)
        return StepResult(step.name, "would run", why, predicted, key=key)
    recorded = {"step": step.name, "inputs": inputs, **process_identity()}
    with ws.record(
        step_job(step.name), recorded, running=True, parent_id=parent, cache_key=key
    ) as run:
        pass
    try:
        with runs_under(run.id):
            outputs = step.run(ws, done, engine, by)
    except MlplanError as exc:
        _close(ws, run.id, "failed", {"error": str(exc)})
        return StepResult(
            step.name, "failed", str(exc), None, run.id, None, time.perf_counter() - started, key
        )
    except BaseException as exc:  # a bug or an interrupt: recorded, then raised
        _close(ws, run.id, "failed", {"error": f"{type(exc).__name__}: {exc}"})
        raise
    _close(ws, run.id, "completed", {"outputs": outputs})
    return StepResult(
        step.name, "ran", why, outputs, run.id, None, time.perf_counter() - started, key
    )


def _failed(
    ws: Workspace,
    step: Step,
    parent: str | None,
    error: str,
    key: str | None,
    started: float,
    *,
    inputs: dict[str, Any] | None,
) -> StepResult:
    """A step that failed before its work began (its inputs could not be read)."""
    if parent is None:
        return StepResult(step.name, "failed", error, key=key)
    with ws.record(
        step_job(step.name),
        {"step": step.name, "inputs": inputs, "error": error},
        running=True,
        parent_id=parent,
        cache_key=key,
    ) as run:
        run.record.status, run.record.ended_at = "failed", utcnow()
    return StepResult(
        step.name, "failed", error, None, run.id, None, time.perf_counter() - started, key
    )


def _cached(ws: Workspace, step: str, key: str) -> tuple[str, Outputs, Any] | None:
    """The newest run of ``step`` with ``key`` that ran to the end: its id, outputs and time."""
    with ws.store.transaction() as session:
        found = session.scalars(
            ws.select(RunRecord)
            .where(
                RunRecord.cache_key == key,
                RunRecord.job == step_job(step),
                RunRecord.status == "completed",
            )
            .order_by(RunRecord.started_at.desc(), RunRecord.id.desc())
            .limit(1)
        ).first()
        if found is None or not isinstance(found.parameters.get("outputs"), dict):
            return None
        return found.id, dict(found.parameters["outputs"]), found.started_at


def _why(ws: Workspace, step: str, inputs: Mapping[str, Any]) -> str:
    """Why a step runs: it never ran, or which of its inputs differ from its last run's."""
    with ws.store.transaction() as session:
        last = session.scalars(
            ws.select(RunRecord)
            .where(RunRecord.job == step_job(step), RunRecord.status.in_(["completed", "failed"]))
            .order_by(RunRecord.started_at.desc(), RunRecord.id.desc())
            .limit(1)
        ).first()
        if last is None:
            return "it never ran"
        before = last.parameters.get("inputs")
        if last.status == "failed" and (before is None or before == inputs):
            return f"its last run {last.id[:8]} failed"
        changed = _changed(before if isinstance(before, dict) else {}, inputs)
    shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
    return f"changed since run {last.id[:8]}: {shown or 'mlplan version'}"


def _changed(before: Any, after: Any, path: str = "") -> list[str]:
    """The dotted paths where two JSON values differ (two levels deep, then the key)."""
    if isinstance(before, dict) and isinstance(after, dict) and path.count(".") < 2:
        found: list[str] = []
        for key in sorted(set(before) | set(after), key=str):
            where = f"{path}.{key}" if path else str(key)
            if before.get(key) != after.get(key):
                found.extend(_changed(before.get(key), after.get(key), where))
        return found
    return [] if before == after else [path or "inputs"]


def _close(
    ws: Workspace, run_id: str, status: str, extra: Mapping[str, Any], *, merge: bool = False
) -> None:
    """End a run left running (``status`` "running": not yet): its state, its end, what it
    adds to its parameters (``merge``: dictionaries merged with those it holds)."""
    with ws.write() as session:
        run = session.get(RunRecord, run_id)
        if run is None:
            return
        run.status = status
        run.ended_at = None if status == "running" else utcnow()
        added = dict(extra)
        if merge:
            for key, value in extra.items():
                held = run.parameters.get(key)
                if isinstance(held, dict) and isinstance(value, dict):
                    added[key] = held | value
        run.parameters = dict(run.parameters) | added
