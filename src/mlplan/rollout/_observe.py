"""A rollout's traffic read back from the prediction log: the records of the deployment in a
window, split into its two arms, each joined with the feedback sent about its requests, and
judged by ``_analysis.py``.

The window and the arms
-----------------------
The window is ``[since, until)``: by default from the current step's start (the newest move
of the rollout that changed its weight, started or resumed it; a pause does not start one)
to now; for a rollout that has ended,
its last step, up to the end. A *canary* (and a blue-green switch) has two arms told apart by
the answering package (``model``, ``version``: its hash's first 12 hex): the stable model's
``prediction`` records and the candidate's. A *shadow*'s candidate arm is its ``shadow``
records, each paired with the stable's ``prediction`` of the same request (its inputs are
there). Feedback joins by ``request_id``, the newest for a request winning, whenever it
came: labels arrive late. A label or a human decision names one answer, so it counts only
for a request of one record. At 100 % (a canary's last step, a blue-green switch) the stable
model answers nobody (bar a second's tail while the servers follow the switch), so the stable
arm is its answers of the hour before the rollout began and since: the reference the candidate
is compared with.

Only what the analysis reads is loaded: DuckDB selects the deployment's ``prediction`` and
``shadow`` records of the two packages in the window, and the feedback about those requests
(the input records only when a guard names a slice).

A guard naming a monitor rule is measured by the monitor (``measure_span``: the rule's
family over the candidate's answered ``prediction`` records of the window, every rule's
family in one read) and judged by it (``rule_outcomes``), as ``mlplan monitor check`` would;
a shadow's candidate answers no one, so such a guard is not judged in a shadow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlplan.errors import DataError, ParameterError, UsageError
from mlplan.modeling import ModelInfo, get_model
from mlplan.monitoring import (
    logged_json,
    measure_span,
    model_classes,
    model_failure,
    read_answers,
    records_slice_masks,
    rule_outcomes,
)
from mlplan.plan import CanaryStep, Plan
from mlplan.rollout._analysis import Analysis, RuleMeasured, analyse
from mlplan.rollout._measures import ArmSample
from mlplan.rollout._rollouts import RolloutInfo, rollout_history
from mlplan.serving import query_log
from mlplan.store import utcnow
from mlplan.workspace import Workspace

__all__ = ["analyse_rollout", "read_arms", "rollout_window"]


def analyse_rollout(
    ws: Workspace,
    name: str,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Analysis:
    """The analysis of the deployment ``name``'s active rollout (else its newest) over the
    log records of ``[since, until)`` (see the module's notes for the defaults), against the
    plan's ``rollout.guards``; the rules are ``_analysis.py``'s.

    Raises
    ------
    DeploymentNotFoundError
        No deployment ``name``.
    RolloutNotFoundError
        It never had a rollout.
    ParameterError
        ``until`` not after ``since``.
    DataError
        A log the analysis cannot read.
    """
    rollouts = rollout_history(ws, name)
    rollout = next((r for r in rollouts if r.active), rollouts[-1])
    start, end = rollout_window(rollout, since=since, until=until)
    plan = ws.plan
    stable, candidate = get_model(ws, rollout.stable), get_model(ws, rollout.candidate)
    classes = _classes(ws, stable, candidate)
    kind = "regression" if not classes else ("binary" if len(classes) == 2 else "multiclass")
    positive = plan.positive_class if plan.positive_class in classes else None
    if positive is None and kind == "binary":
        positive = classes[1]
    slices = [g.slice for g in plan.rollout.guards if g.slice is not None]
    shadow = rollout.strategy == "shadow"
    arms = read_arms(
        ws,
        name,
        stable=stable,
        candidate=candidate,
        shadow=shadow,
        since=start,
        until=end,
        classes=classes,
        slices=slices,
    )
    needed = _min_requests(plan, rollout)
    if not shadow and rollout.weight >= 100:
        # At 100 % (a canary's last step, a blue-green switch) the stable model answers
        # nobody: the candidate is compared with the stable's answers of the hour before
        # the rollout began and since, its reference.
        reference = read_arms(
            ws,
            name,
            stable=stable,
            candidate=candidate,
            shadow=False,
            since=_utc(rollout.created_at) - _REFERENCE,
            until=end,
            classes=classes,
            slices=slices,
        )
        arms = Arms(reference.stable, arms.candidate, arms.pairs)
    rules = _rule_guards(ws, name, candidate, shadow=shadow, since=start, until=end)
    return analyse(
        arms.stable,
        arms.candidate,
        plan.rollout.guards,
        deployment=name,
        rollout_id=rollout.id,
        strategy=rollout.strategy,
        state=rollout.state,
        since=start,
        until=end,
        min_requests=needed,
        kind=kind,
        classes=classes,
        positive=positive,
        pairs=arms.pairs,
        rules=rules,
    )


def _rule_guards(
    ws: Workspace,
    name: str,
    candidate: ModelInfo,
    *,
    shadow: bool,
    since: dt.datetime,
    until: dt.datetime,
) -> dict[int, RuleMeasured]:
    """The guards naming a monitor rule, by index, measured by the monitor on the
    candidate's records of ``[since, until)`` (see the module's notes)."""
    monitoring = ws.plan.monitoring
    named = {
        i: monitoring.rule(g.rule, where=f"rollout.guards[{i}].rule")
        for i, g in enumerate(ws.plan.rollout.guards)
        if g.rule is not None
    }
    if not named:
        return {}
    if shadow:
        why = (
            "a shadow's candidate answers no one, and a monitor rule reads a model's answered "
            "prediction records; it is judged once the candidate answers traffic (a canary, "
            "a blue-green switch)"
        )
        return {i: RuleMeasured(f, r, unjudged=why) for i, (f, r) in named.items()}
    windows = measure_span(
        ws,
        name,
        model=candidate.name,
        version=candidate.package_sha256[:12],
        since=since,
        until=until,
        families=sorted({f for f, _ in named.values()}),
    )
    out: dict[int, RuleMeasured] = {}
    for i, (family, rule) in named.items():
        try:
            outcomes = rule_outcomes(
                ws,
                family,
                rule,
                windows,
                since,
                until,
                where=f"rollout.guards[{i}].rule ({family}.{rule.name})",
            )
        except UsageError as error:  # a metric its family does not compute
            out[i] = RuleMeasured(family, rule, missing=str(error))
        else:
            out[i] = RuleMeasured(family, rule, tuple(outcomes))
    return out


_STEP_STARTS = frozenset({"start", "resume"})
_REFERENCE = dt.timedelta(hours=1)
"""How far before a rollout the stable's answers are read when, at 100 %, its window is too
thin to compare with."""


def rollout_window(
    rollout: RolloutInfo,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> tuple[dt.datetime, dt.datetime]:
    """The window an analysis of ``rollout`` reads, in UTC: ``since`` defaults to the start
    of the current step — the newest move that changed the weight, started or resumed it (not
    a pause: a paused rollout shows the step that led to the pause; for an ended rollout,
    the newest before its end) — and ``until`` to now (its end).

    Raises
    ------
    ParameterError
        ``until`` not after ``since``.
    """
    events = list(rollout.events)
    if not rollout.active and len(events) > 1:
        events = events[:-1]
    start = _utc(rollout.created_at)
    for before, event in zip([None, *events], events, strict=False):
        # A step begins where the weight moves, or where traffic starts or resumes flowing;
        # a pause does not begin one: a paused rollout shows the step that led to the pause.
        if before is None or event.weight != before.weight or event.action in _STEP_STARTS:
            start = _utc(event.at)
    end = utcnow() if rollout.ended_at is None else _utc(rollout.ended_at)
    start = _utc(since) if since is not None else start
    end = _utc(until) if until is not None else end
    if end <= start:
        raise ParameterError(
            "until" if until is not None else "since",
            f"the window must end after it starts: since {start.isoformat()}, until "
            f"{end.isoformat()}; give a later {{param}}"
            if until is not None
            else f"{{param}} {start.isoformat()} is not before the window's end {end.isoformat()}",
        )
    return start, end


@dataclass(frozen=True)
class Arms:
    """The two arms of a rollout in a window, and a shadow's records paired (indices of the
    stable's records and of the candidate's, one pair per record both answered)."""

    stable: ArmSample
    candidate: ArmSample
    pairs: tuple[np.ndarray, np.ndarray] | None


def read_arms(
    ws: Workspace,
    name: str,
    *,
    stable: ModelInfo,
    candidate: ModelInfo,
    shadow: bool,
    since: dt.datetime,
    until: dt.datetime,
    classes: Sequence[str],
    slices: Sequence[str] = (),
) -> Arms:
    """The deployment ``name``'s log records in ``[since, until)`` as the ``stable`` and
    ``candidate`` arms (a shadow's candidate from its ``shadow`` records), with the feedback
    about them and the masks of the plan's ``slices`` over their input records.

    Raises
    ------
    DataError
        A log the query cannot read.
    """
    versions = {stable.package_sha256[:12]: stable, candidate.package_sha256[:12]: candidate}
    try:
        table = query_log(
            ws.root / ".mlplan" / "predictions",
            _sql(name, list(versions), candidate.package_sha256[:12], since, until, bool(slices)),
        )
        rows = table.to_pylist()
    except DataError as error:
        # Segments all written before records named their deployment: none is of one.
        if '"deployment" not found' not in str(error):
            raise
        rows = []
    plan_slices = {s.name: s for s in ws.plan.slices}
    specs = [plan_slices[s] for s in dict.fromkeys(slices) if s in plan_slices]
    candidate_version = candidate.package_sha256[:12]
    stable_rows = [
        r for r in rows if r["kind"] == "prediction" and r["version"] != candidate_version
    ]
    if shadow:
        candidate_rows = [r for r in rows if r["kind"] == "shadow"]
        inputs = {r["request_id"]: r["inputs"] for r in stable_rows}
        for r in candidate_rows:
            r["inputs"] = inputs.get(r["request_id"])
    else:
        candidate_rows = [
            r for r in rows if r["kind"] == "prediction" and r["version"] == candidate_version
        ]
    stable_arm = _arm(stable, stable_rows, classes, model_classes(ws, stable), specs)
    candidate_arm = _arm(candidate, candidate_rows, classes, model_classes(ws, candidate), specs)
    pairs = _pairs(stable_rows, candidate_rows) if shadow else None
    return Arms(stable_arm, candidate_arm, pairs)


def _sql(
    name: str,
    versions: list[str],
    shadow_version: str,
    since: dt.datetime,
    until: dt.datetime,
    inputs: bool,
) -> str:
    """The query of a window's records and the newest feedback on each of their requests."""
    listed = ", ".join(_literal(v) for v in versions)
    stamp = "TRY_CAST(time AS TIMESTAMPTZ)"
    return f"""
        WITH w AS (
            SELECT kind, request_id, version, status, latency_ms,
                   {"inputs" if inputs else "NULL"} AS inputs, outputs, error, time
            FROM predictions
            WHERE deployment = {_literal(name)}
              AND ((kind = 'prediction' AND version IN ({listed}))
                   OR (kind = 'shadow' AND version = {_literal(shadow_version)}))
              AND {stamp} >= CAST({_literal(since.isoformat())} AS TIMESTAMPTZ)
              AND {stamp} < CAST({_literal(until.isoformat())} AS TIMESTAMPTZ)
        ),
        f AS (
            SELECT request_id, arg_max(outputs, {stamp}) AS feedback
            FROM predictions
            WHERE kind = 'feedback' AND request_id IN (SELECT request_id FROM w)
            GROUP BY request_id
        )
        SELECT w.*, f.feedback FROM w LEFT JOIN f USING (request_id)
        ORDER BY w.time, w.request_id
    """


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _arm(
    info: ModelInfo,
    rows: list[dict[str, Any]],
    classes: Sequence[str],
    own_classes: Sequence[str],
    specs: Sequence[Any],
) -> ArmSample:
    """One arm's requests and records (see :class:`ArmSample`)."""
    request_ids: list[str] = []
    errors: list[bool] = []
    latency: list[float] = []
    refused = 0
    row_request: list[int] = []
    labels: list[Any] = []
    scores: list[list[float]] = []
    values: list[float] = []
    truth: list[Any] = []
    decisions: list[Any] = []
    records: list[Mapping[str, Any]] = []
    regression = not classes
    for row in rows:
        status = int(row["status"] or 0)
        if not 200 <= status < 300 and not model_failure(status, row["error"]):
            refused += 1
            continue
        index = len(request_ids)
        request_ids.append(row["request_id"])
        errors.append(not 200 <= status < 300)
        latency.append(float(row["latency_ms"] or 0.0))
        if errors[-1]:
            continue
        answers = read_answers(logged_json(row["outputs"]), own_classes)
        given = logged_json(row["inputs"]) if row["inputs"] is not None else None
        feedback = logged_json(row.get("feedback")) or {}
        one = len(answers) == 1
        for position, (label, proba, value) in enumerate(answers):
            row_request.append(index)
            labels.append(label)
            values.append(value)
            scores.append([proba.get(k, np.nan) for k in classes])
            truth.append(feedback.get("label") if one else None)
            decisions.append(feedback.get("decision") if one else None)
            record = given[position] if isinstance(given, list) and position < len(given) else {}
            records.append(record if isinstance(record, dict) else {})
    n = len(row_request)
    return ArmSample(
        info.ref,
        info.package_sha256[:12],
        np.asarray(request_ids, dtype=object),
        np.asarray(errors, dtype=bool),
        np.asarray(latency, dtype=np.float64),
        refused,
        np.asarray(row_request, dtype=np.int64),
        np.asarray([None if regression else lb for lb in labels], dtype=object),
        None if regression else np.asarray(scores, dtype=np.float64).reshape(n, len(classes)),
        np.asarray(values, dtype=np.float64) if regression else None,
        _objects(truth, regression),
        _objects(decisions, regression),
        records_slice_masks(records, specs),
    )


def _objects(given: list[Any], regression: bool) -> np.ndarray:
    """Feedback values as the analysis compares them: class names, or numbers."""
    out = np.empty(len(given), dtype=object)
    for i, value in enumerate(given):
        out[i] = None if value is None else (float(value) if regression else str(value))
    return out


def _pairs(
    stable_rows: list[dict[str, Any]], candidate_rows: list[dict[str, Any]]
) -> tuple[np.ndarray, np.ndarray]:
    """A shadow's records paired with the stable's: the same request, the same position."""
    index: dict[tuple[str, int], int] = {}
    at = 0
    for row in stable_rows:
        n = _answered_records(row)
        for position in range(n):
            index[(row["request_id"], position)] = at + position
        at += n
    mine, theirs = [], []
    at = 0
    for row in candidate_rows:
        n = _answered_records(row)
        for position in range(n):
            found = index.get((row["request_id"], position))
            if found is not None:
                theirs.append(found)
                mine.append(at + position)
        at += n
    return np.asarray(theirs, dtype=np.int64), np.asarray(mine, dtype=np.int64)


def _answered_records(row: dict[str, Any]) -> int:
    """How many records of ``row`` the arm holds (as :func:`_arm` counts them)."""
    status = int(row["status"] or 0)
    if not 200 <= status < 300:
        return 0
    return len(read_answers(logged_json(row["outputs"]), ()))


def _classes(ws: Workspace, stable: ModelInfo, candidate: ModelInfo) -> list[str]:
    """The classes both models answer with: the stable's, then any other of the candidate's
    (none for a regression)."""
    mine = model_classes(ws, stable)
    return [*mine, *(c for c in model_classes(ws, candidate) if c not in mine)]


def _min_requests(plan: Plan, rollout: RolloutInfo) -> int:
    """The rollout's minimum of requests per arm: the current canary step's, a shadow's own,
    the step at full traffic for a blue-green switch."""
    steps = plan.rollout.steps
    if rollout.strategy == "shadow":
        return plan.rollout.shadow_min_requests
    if not steps:
        return CanaryStep(weight=100).min_requests
    if rollout.strategy == "canary":
        return steps[min(max(rollout.step - 1, 0), len(steps) - 1)].min_requests
    return steps[-1].min_requests


def _utc(moment: dt.datetime) -> dt.datetime:
    """A time in UTC (a naive one is taken as UTC, as the store writes them)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)
