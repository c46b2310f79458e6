"""Retraining on an alert: a monitoring rule the plan names under ``pipeline.retrain_on``
fires, and the pipeline runs on the newest data. The candidate it trains faces the gates, and
no slice of it may be significantly worse than the model in production; a candidate that
passes enters the plan's rollout, never production directly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlplan.pipeline._history import list_pipeline_runs
from mlplan.pipeline._run import PipelineResult, run_pipeline
from mlplan.pipeline._steps import Engine
from mlplan.workspace import Workspace, close_crashed_runs

if TYPE_CHECKING:
    from mlplan.monitoring import Alert

__all__ = ["Retraining", "retrain_if_alerted", "retraining_alert"]


@dataclass(frozen=True)
class Retraining:
    """What ``--if-alerted`` found: the alert that starts the pipeline (None: none does, and
    ``reason`` says why) and the pipeline's result when it ran."""

    alert: Alert | None
    reason: str
    result: PipelineResult | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "alert": None if self.alert is None else self.alert.to_dict(),
            "reason": self.reason,
            "result": None if self.result is None else self.result.to_dict(),
        }


def retraining_alert(ws: Workspace) -> tuple[Alert | None, str]:
    """The alert that should start the pipeline now, with why; or None, with why not.

    An open or acknowledged alert of a rule under ``pipeline.retrain_on``, newest first, that
    no pipeline run answered yet; or whose newest run failed or crashed (the rerun resumes
    it). A run that answered it and still runs answers it (a second is refused anyway while
    the first runs).
    """
    from mlplan.monitoring import list_alerts  # heavy: only when asked about alerts

    plan = ws.plan
    close_crashed_runs(ws, found_by="mlplan run --if-alerted")  # a dead run answers nothing
    # An alert names its rule FAMILY.NAME; the plan may name it either way.
    names = {
        f"{family}.{rule.name}"
        for family, rule in (plan.monitoring.rule(n) for n in plan.pipeline.retrain_on)
    }
    if not names:
        return None, "the plan names no rule under pipeline.retrain_on"
    alerts = [
        a
        for state in ("open", "acknowledged")
        for a in list_alerts(ws, state=state)
        if a.rule in names
    ]
    if not alerts:
        return None, f"no open alert of {', '.join(sorted(names))}"
    answered: dict[int, str] = {}
    for run in reversed(list_pipeline_runs(ws, limit=200, trigger="alert")):  # oldest first
        if isinstance(run.alert, dict) and isinstance(run.alert.get("id"), int):
            answered[run.alert["id"]] = run.state
    for alert in sorted(alerts, key=lambda a: a.last_fired_at, reverse=True):
        state = answered.get(alert.id)
        if state is None:
            return alert, f"alert {alert.id} ({alert.rule}) has not been answered"
        if state not in {"completed", "running"}:  # failed, crashed: resumed
            return alert, f"the run that answered alert {alert.id} ({alert.rule}) {state}"
    shown = ", ".join(str(a.id) for a in alerts)
    return None, f"every open alert of the rules ({shown}) started a pipeline run already"


def retrain_if_alerted(
    ws: Workspace,
    *,
    dry_run: bool = False,
    engine: Engine = "local",
    by: str | None = None,
) -> Retraining:
    """Run the pipeline when an alert of a rule under ``pipeline.retrain_on`` asks for it
    (:func:`retraining_alert`), recording the alert as its trigger; else nothing."""
    alert, reason = retraining_alert(ws)
    if alert is None:
        return Retraining(None, reason)
    result = run_pipeline(
        ws,
        dry_run=dry_run,
        trigger="alert",
        engine=engine,
        by=by,
        note=f"alert {alert.id}: {alert.rule} ({alert.metric} {alert.value:g} {alert.op} "
        f"{alert.threshold:g} on {alert.slice})",
        alert={"id": alert.id, "rule": alert.rule, "deployment": alert.deployment},
    )
    return Retraining(alert, reason, result)
