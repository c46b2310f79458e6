"""The Deployment items, read from what serving left in the store for the model in production
(else the current candidate): serve runs and their reports, batch scoring runs, load tests,
API keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlplan.checklist._candidate import candidate, in_production
from mlplan.checklist._status import ItemStatus, StatusContext, check
from mlplan.serving import list_keys
from mlplan.store import CRASHED, RunRecord

__all__ = [
    "deploy_compute",
    "deploy_logging",
    "deploy_mode",
    "deploy_security",
    "deploy_slo",
    "deploy_target",
]

ModelCheck = Callable[[StatusContext, str], ItemStatus]


def _follows_model(item_id: str) -> Callable[[ModelCheck], ModelCheck]:
    """Register ``fn(context, model)`` as the check of ``item_id``: it runs for the model in
    production, else the candidate; with no model trained, the item is missing and says so."""

    def register(fn: ModelCheck) -> ModelCheck:
        @check(item_id)
        def checked(context: StatusContext) -> ItemStatus:
            name = in_production(context) or candidate(context)
            if name is None:
                return context.status(
                    item_id, "missing", "no model trained yet", "mlplan train --baseline"
                )
            return fn(context, name)

        return fn

    return register


def _runs(context: StatusContext, job: str, model: str) -> list[RunRecord]:
    """The runs of ``job`` (serve, score) for ``model``, oldest first."""
    ws = context.ws

    def read() -> list[RunRecord]:
        with ws.store.transaction() as session:
            runs = session.scalars(
                ws.select(RunRecord).where(RunRecord.job == job).order_by(RunRecord.started_at)
            ).all()
            session.expunge_all()
        return [r for r in runs if r.parameters.get("model") == model]

    return context.memo(f"runs:{job}:{model}", read)


def _report(context: StatusContext, kind: str, model: str) -> dict[str, Any] | None:
    """The newest report of ``kind`` about ``model``."""
    ws = context.ws

    def read() -> dict[str, Any] | None:
        found = ws.latest_report(kind, where=lambda r: r.get("model") == model)
        return None if found is None else found.report

    return context.memo(f"report:{kind}:{model}", read)


def _serving_now(context: StatusContext, model: str) -> list[RunRecord]:
    return [r for r in _runs(context, "serve", model) if r.status == "running"]


def _crashed(context: StatusContext, model: str) -> list[RunRecord]:
    """Servers of ``model`` that were killed (their runs closed as crashed): they served,
    but left no report of what they answered."""
    return [r for r in _runs(context, "serve", model) if r.status == CRASHED]


def _answered(context: StatusContext, model: str) -> int:
    """How many requests the last server of ``model`` answered with success."""
    answered: int = (_report(context, "serving", model) or {}).get("answers", {}).get("2xx", 0)
    return answered


def _ran(context: StatusContext, model: str) -> bool:
    """Whether ``model`` was served or batch-scored."""
    return bool(
        _answered(context, model)
        or _serving_now(context, model)
        or _crashed(context, model)
        or _runs(context, "score", model)
    )


@_follows_model("deploy.mode")
def deploy_mode(context: StatusContext, name: str) -> ItemStatus:
    """The plan's mode (realtime or batch) ran for the model."""
    if context.ws.plan.deployment.mode == "realtime":
        return _served_in_realtime(context, name)
    scored = _runs(context, "score", name)
    if not scored:
        return context.status(
            "deploy.mode",
            "missing",
            f"{name} has not been batch-scored",
            f"mlplan score {name} INPUT OUTPUT",
        )
    last = scored[-1].parameters
    return context.status(
        "deploy.mode",
        "done",
        f"{name} scored in batch: {last.get('rows', 0):,} rows ({last.get('engine')})",
    )


def _served_in_realtime(context: StatusContext, name: str) -> ItemStatus:
    served = _report(context, "serving", name)
    serving_now = _serving_now(context, name)
    crashed = _crashed(context, name)
    answered = _answered(context, name)
    if not (answered or serving_now or crashed):
        return context.status(
            "deploy.mode", "missing", f"{name} has not been served", f"mlplan serve {name}"
        )
    return context.status(
        "deploy.mode",
        "done",
        f"{name} served in realtime"
        + (f": {answered:,} answers, last stopped {served['stopped_at'][:16]}" if served else "")
        + (f"; {len(serving_now)} server(s) running now" if serving_now else "")
        + (f"; {len(crashed)} server(s) crashed (process gone)" if crashed else ""),
    )


@_follows_model("deploy.target")
def deploy_target(context: StatusContext, name: str) -> ItemStatus:
    """The plan's target (cloud, edge or browser) is built and checked."""
    target = context.ws.plan.deployment.target
    if target == "cloud":
        ran = _ran(context, name)
        return context.status(
            "deploy.target",
            "done" if ran else "missing",
            f"cloud: the ONNX package of {name} was verified (sha256) and run"
            if ran
            else f"cloud: {name}'s package has not been served or scored yet",
            None if ran else f"mlplan serve {name}",
        )
    export = _report(context, f"export_{target}", name)
    if export is None:
        return context.status(
            "deploy.target",
            "missing",
            f"{target}: no {target} build of {name} yet",
            f"mlplan export {name} --target {target}",
        )
    return context.status(
        "deploy.target",
        "done" if export.get("passed") else "failing",
        export.get("summary", f"{target} build checked"),
    )


def _load_checks(load: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A load test's checks by objective."""
    return {c["objective"]: c for c in load.get("checks", [])}


@_follows_model("deploy.compute")
def deploy_compute(context: StatusContext, name: str) -> ItemStatus:
    """The plan budgets CPU and memory, and a load test measured them."""
    budget = context.ws.plan.deployment.compute
    if budget.cpus is None and budget.memory_gb is None:
        return context.status(
            "deploy.compute",
            "missing",
            "the plan budgets no CPU or memory",
            "edit mlplan.yaml: set deployment.compute (cpus, memory_gb)",
        )
    load = _report(context, "load_test", name)
    if load is None:
        return context.status(
            "deploy.compute",
            "missing",
            f"budget {budget.cpus} CPU, {budget.memory_gb} GB; not measured yet",
            f"mlplan loadtest {name}",
        )
    memory = _load_checks(load).get("memory_mb")
    failed = memory is not None and not memory["met"]
    return context.status(
        "deploy.compute",
        "failing" if failed else "done",
        f"budget {budget.cpus} CPU, {budget.memory_gb} GB; measured "
        f"{load['memory_mb']:.0f} MB resident and {load.get('cpu_seconds') or 0:.1f} CPU s "
        f"serving {load['requests']:,} requests",
        "a smaller model, or more memory in deployment.compute" if failed else None,
    )


@_follows_model("deploy.slo")
def deploy_slo(context: StatusContext, name: str) -> ItemStatus:
    """A load test met the plan's latency and QPS objectives."""
    goals = context.ws.plan.deployment.objectives
    if goals.latency_p50_ms is None and goals.latency_p99_ms is None and goals.qps is None:
        return context.status(
            "deploy.slo",
            "missing",
            "the plan sets no latency or QPS objective",
            "edit mlplan.yaml: set deployment.objectives",
        )
    load = _report(context, "load_test", name)
    if load is None:
        return context.status(
            "deploy.slo", "missing", "no load test yet", f"mlplan loadtest {name}"
        )
    slo = [c for k, c in _load_checks(load).items() if k != "memory_mb"]
    missed = [c for c in slo if not c["met"]]
    shown = "; ".join(f"{c['objective']} {c['measured']:.4g} vs {c['goal']:g}" for c in slo)
    return context.status(
        "deploy.slo",
        "failing" if missed else "done",
        f"load test at concurrency {load['concurrency']}: {shown}",
        "profile the model or add workers (mlplan serve --workers)" if missed else None,
    )


@_follows_model("deploy.logging")
def deploy_logging(context: StatusContext, name: str) -> ItemStatus:
    """The last server logged every prediction durably."""
    logging = context.ws.plan.deployment.logging
    if not logging.predictions:
        return context.status(
            "deploy.logging",
            "failing",
            "the plan turns prediction logging off",
            "edit mlplan.yaml: deployment.logging.predictions: true",
        )
    served = _report(context, "serving", name)
    if served is None:
        return context.status(
            "deploy.logging",
            "missing",
            f"{logging.mode} logging planned; no server has run yet",
            f"mlplan serve {name}",
        )
    dropped = served.get("log_dropped") or 0
    failed_writes = served.get("log_failed") or 0
    bad = dropped or failed_writes
    return context.status(
        "deploy.logging",
        "failing" if bad else "done",
        f"{served.get('logged') or 0:,} records logged ({served.get('log_mode')} mode), "
        f"{dropped} dropped, {failed_writes} failed writes; retention "
        f"{logging.retention_days} days",
        "use mode: acked, or give the log more room" if bad else None,
    )


@_follows_model("deploy.security")
def deploy_security(context: StatusContext, name: str) -> ItemStatus:
    """Auth is on, keys can predict, and PII is redacted in the logs."""
    ws = context.ws
    deployment = ws.plan.deployment
    if deployment.security.auth == "none":
        return context.status(
            "deploy.security",
            "failing",
            "auth is off (allowed on loopback only)",
            "edit mlplan.yaml: deployment.security.auth: api_key",
        )
    keys = [k for k in list_keys(ws) if k.allows("predict")]
    if not keys:
        return context.status(
            "deploy.security",
            "missing",
            "API keys required, but none can predict yet",
            "mlplan keys create --name NAME --role predict",
        )
    pii = sorted({c for spec in ws.plan.datasets.values() for c in (spec.pii_columns or [])})
    return context.status(
        "deploy.security",
        "done",
        f"API keys by role ({len(keys)} can predict), stored hashed; PII "
        + (
            f"({', '.join(pii)}) {deployment.logging.pii}ed in logs"
            if pii
            else "columns: none named"
        ),
    )
