"""The Deployment items, read from what serving left in the store for the model in production
(else the current candidate): serve runs and their reports, batch scoring runs, load tests,
API keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mlplan.checklist._evaluation import candidate
from mlplan.checklist._items import Stage
from mlplan.checklist._status import ItemStatus, StatusContext, register_provider
from mlplan.errors import DeploymentNotFoundError
from mlplan.serving import list_keys
from mlplan.store import RunRecord
from mlplan.workspace import Workspace, get_deployment

__all__ = ["DeploymentProvider"]

_ITEMS = (
    "deploy.mode",
    "deploy.target",
    "deploy.compute",
    "deploy.slo",
    "deploy.logging",
    "deploy.security",
    "deploy.pipeline",
)


def _runs(context: StatusContext, job: str, model: str) -> list[RunRecord]:
    ws = context.ws
    with ws.store.transaction() as session:
        runs = session.scalars(
            ws.select(RunRecord).where(RunRecord.job == job).order_by(RunRecord.started_at)
        ).all()
        session.expunge_all()
    return [r for r in runs if r.parameters.get("model") == model]


def latest_report(ws: Workspace, kind: str, model: str) -> dict[str, Any] | None:
    """The newest report of ``kind`` about ``model``, with its time."""
    found = ws.latest_report(kind, where=lambda r: r.get("model") == model)
    return None if found is None else found.report | {"created_at": found.created_at.isoformat()}


def _in_production(context: StatusContext) -> str | None:
    """The model deployed to production, which the items follow once there is one."""
    try:
        return get_deployment(context.ws).model
    except DeploymentNotFoundError:
        return None


@register_provider
class DeploymentProvider:
    """Deployment: mode, target, compute, objectives, logging, security, pipeline."""

    stage: Stage = "Deployment"

    def check(self, context: StatusContext) -> Iterator[ItemStatus]:
        ws = context.ws
        plan = ws.plan
        deployment = plan.deployment
        s = context.status
        name = _in_production(context) or candidate(context)
        if name is None:
            for item in _ITEMS:
                yield s(item, "missing", "no model trained yet", "mlplan train --baseline")
            return
        served = latest_report(ws, "serving", name)
        serving_now = [r for r in _runs(context, "serve", name) if r.status == "running"]
        scored = _runs(context, "score", name)
        load = latest_report(ws, "load_test", name)
        answered = (served or {}).get("answers", {}).get("2xx", 0)

        # -- mode ------------------------------------------------------------------------
        if deployment.mode == "realtime":
            if answered or serving_now:
                yield s(
                    "deploy.mode",
                    "done",
                    f"{name} served in realtime"
                    + (
                        f": {answered:,} answers, last stopped {served['stopped_at'][:16]}"
                        if served
                        else ""
                    )
                    + (f"; {len(serving_now)} server(s) running now" if serving_now else ""),
                )
            else:
                yield s(
                    "deploy.mode", "missing", f"{name} has not been served", f"mlplan serve {name}"
                )
        elif scored:
            last = scored[-1].parameters
            yield s(
                "deploy.mode",
                "done",
                f"{name} scored in batch: {last.get('rows', 0):,} rows ({last.get('engine')})",
            )
        else:
            yield s(
                "deploy.mode",
                "missing",
                f"{name} has not been batch-scored",
                f"mlplan score {name} INPUT OUTPUT",
            )

        # -- target ----------------------------------------------------------------------
        ran = bool(answered or serving_now or scored)
        if deployment.target == "cloud":
            yield s(
                "deploy.target",
                "done" if ran else "missing",
                f"cloud: the ONNX package of {name} was verified (sha256) and run"
                if ran
                else f"cloud: {name}'s package has not been served or scored yet",
                None if ran else f"mlplan serve {name}",
            )
        else:
            export = latest_report(ws, f"export_{deployment.target}", name)
            if export is None:
                yield s(
                    "deploy.target",
                    "missing",
                    f"{deployment.target}: no {deployment.target} build of {name} yet",
                    f"mlplan export {name} --target {deployment.target}",
                )
            else:
                yield s(
                    "deploy.target",
                    "done" if export.get("passed") else "failing",
                    export.get("summary", f"{deployment.target} build checked"),
                )

        # -- compute and objectives ------------------------------------------------------
        budget = deployment.compute
        checks = {c["objective"]: c for c in (load or {}).get("checks", [])}
        if budget.cpus is None and budget.memory_gb is None:
            yield s(
                "deploy.compute",
                "missing",
                "the plan budgets no CPU or memory",
                "edit mlplan.yaml: set deployment.compute (cpus, memory_gb)",
            )
        elif load is None:
            yield s(
                "deploy.compute",
                "missing",
                f"budget {budget.cpus} CPU, {budget.memory_gb} GB; not measured yet",
                f"mlplan loadtest {name}",
            )
        else:
            memory = checks.get("memory_mb")
            failed = memory is not None and not memory["met"]
            yield s(
                "deploy.compute",
                "failing" if failed else "done",
                f"budget {budget.cpus} CPU, {budget.memory_gb} GB; measured "
                f"{load['memory_mb']:.0f} MB resident and {load.get('cpu_seconds') or 0:.1f} CPU s "
                f"serving {load['requests']:,} requests",
                "a smaller model, or more memory in deployment.compute" if failed else None,
            )
        goals = deployment.objectives
        if goals.latency_p50_ms is None and goals.latency_p99_ms is None and goals.qps is None:
            yield s(
                "deploy.slo",
                "missing",
                "the plan sets no latency or QPS objective",
                "edit mlplan.yaml: set deployment.objectives",
            )
        elif load is None:
            yield s("deploy.slo", "missing", "no load test yet", f"mlplan loadtest {name}")
        else:
            slo = [c for k, c in checks.items() if k != "memory_mb"]
            missed = [c for c in slo if not c["met"]]
            shown = "; ".join(f"{c['objective']} {c['measured']:.4g} vs {c['goal']:g}" for c in slo)
            yield s(
                "deploy.slo",
                "failing" if missed else "done",
                f"load test at concurrency {load['concurrency']}: {shown}",
                "profile the model or add workers (mlplan serve --workers)" if missed else None,
            )

        # -- logging ---------------------------------------------------------------------
        logging = deployment.logging
        if not logging.predictions:
            yield s(
                "deploy.logging",
                "failing",
                "the plan turns prediction logging off",
                "edit mlplan.yaml: deployment.logging.predictions: true",
            )
        elif served is None:
            yield s(
                "deploy.logging",
                "missing",
                f"{logging.mode} logging planned; no server has run yet",
                f"mlplan serve {name}",
            )
        else:
            dropped = served.get("log_dropped") or 0
            failed_writes = served.get("log_failed") or 0
            bad = dropped or failed_writes
            yield s(
                "deploy.logging",
                "failing" if bad else "done",
                f"{served.get('logged') or 0:,} records logged ({served.get('log_mode')} mode), "
                f"{dropped} dropped, {failed_writes} failed writes; retention "
                f"{logging.retention_days} days",
                "use mode: acked, or give the log more room" if bad else None,
            )

        # -- security --------------------------------------------------------------------
        security = deployment.security
        pii = sorted({c for spec in plan.datasets.values() for c in (spec.pii_columns or [])})
        keys = [k for k in list_keys(ws) if k.allows("predict")]
        if security.auth == "none":
            yield s(
                "deploy.security",
                "failing",
                "auth is off (allowed on loopback only)",
                "edit mlplan.yaml: deployment.security.auth: api_key",
            )
        elif not keys:
            yield s(
                "deploy.security",
                "missing",
                "API keys required, but none can predict yet",
                "mlplan keys create --name NAME --role predict",
            )
        else:
            yield s(
                "deploy.security",
                "done",
                f"API keys by role ({len(keys)} can predict), stored hashed; PII "
                + (f"({', '.join(pii)}) {logging.pii}ed in logs" if pii else "columns: none named"),
            )

        # -- pipeline --------------------------------------------------------------------
        if deployment.mode == "batch":
            if not deployment.schedule:
                yield s(
                    "deploy.pipeline",
                    "missing",
                    "batch scoring has no schedule",
                    "edit mlplan.yaml: deployment.schedule (cron)",
                )
            elif not scored:
                yield s(
                    "deploy.pipeline",
                    "missing",
                    f"scheduled {deployment.schedule!r}; no scoring run yet",
                    f"mlplan score {name} INPUT OUTPUT",
                )
            else:
                engines = sorted({r.parameters.get("engine", "local") for r in scored})
                yield s(
                    "deploy.pipeline",
                    "done",
                    f"scheduled {deployment.schedule!r}; {len(scored)} scoring run(s) "
                    f"({', '.join(engines)}); preprocessing inside the ONNX graph",
                )
        elif ran:
            yield s(
                "deploy.pipeline",
                "done",
                "the server is the pipeline: preprocessing inside the ONNX graph (parity "
                "checked), micro-batching, workers scale out",
            )
        else:
            yield s(
                "deploy.pipeline", "missing", f"{name} has not been served", f"mlplan serve {name}"
            )
