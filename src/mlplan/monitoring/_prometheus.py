"""The plan's software rules as Prometheus alerting rules (``mlplan monitor export --format
prometheus-rules``), for teams that alert in Prometheus rather than with ``monitor check``.

Each rule is written against the metrics ``mlplan serve`` exports (``serving/_metrics.py``):
latency percentiles from the ``mlplan_http_request_duration_seconds`` histogram
(``histogram_quantile``, in milliseconds as the windows show them), error rates and
throughput from the ``mlplan_http_requests_total`` counter by status, CPU from
``process_cpu_seconds_total``, memory from ``process_resident_memory_bytes`` and the queue
from ``mlplan_queue_rows``; each over the rule's window, ``for`` the window too. A rule the
server's metrics cannot express (a slice, rows or bytes per request) is skipped, with why.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML

from mlplan.plan import MonitorRule, Plan

__all__ = ["PrometheusRules", "prometheus_rules"]

_REQUESTS = "mlplan_http_requests_total"
_LATENCY = "mlplan_http_request_duration_seconds_bucket"
_QUANTILES = {"latency_p50_ms": 0.5, "latency_p90_ms": 0.9, "latency_p99_ms": 0.99}
_STATUS = {"error_rate": "[45]..", "client_error_rate": "4..", "server_error_rate": "5.."}


@dataclass(frozen=True)
class PrometheusRules:
    """The rules file (``groups:`` → ``rules:``) and the software rules left out, each with
    why."""

    document: Mapping[str, Any]
    skipped: tuple[tuple[str, str], ...]

    def to_yaml(self) -> str:
        """The rules file as Prometheus reads it."""
        yaml = YAML(typ="rt")
        yaml.default_flow_style = False
        yaml.width = 4096  # each expression on one line
        yaml.representer.ignore_aliases = lambda _data: True
        buffer = io.StringIO()
        yaml.dump(_plain(self.document), buffer)
        return buffer.getvalue()


def _expression(rule: MonitorRule, job: str) -> str | None:
    w = rule.window
    requests = f'{_REQUESTS}{{job="{job}"}}'
    if rule.metric in _QUANTILES:
        return (
            f"histogram_quantile({_QUANTILES[rule.metric]}, sum by (le) "
            f'(rate({_LATENCY}{{job="{job}"}}[{w}]))) * 1000'
        )
    if rule.metric in _STATUS:
        pattern = _STATUS[rule.metric]
        return (
            f'sum(rate({_REQUESTS}{{job="{job}", status=~"{pattern}"}}[{w}])) '
            f"/ sum(rate({requests}[{w}]))"
        )
    if rule.metric == "throughput_rps":
        return f"sum(rate({requests}[{w}]))"
    if rule.metric == "requests":
        return f"sum(increase({requests}[{w}]))"
    if rule.metric == "cpu_percent":
        return f'sum(rate(process_cpu_seconds_total{{job="{job}"}}[{w}])) * 100'
    if rule.metric == "rss_bytes":
        return f'max_over_time(sum(process_resident_memory_bytes{{job="{job}"}})[{w}:])'
    if rule.metric == "queued_rows_max":
        return f'max_over_time(sum(mlplan_queue_rows{{job="{job}"}})[{w}:])'
    if rule.metric == "queued_rows_mean":
        return f'avg_over_time(sum(mlplan_queue_rows{{job="{job}"}})[{w}:])'
    return None


def prometheus_rules(plan: Plan, *, job: str = "mlplan") -> PrometheusRules:
    """The plan's ``monitoring.software`` rules as one Prometheus rule group named after the
    project, each series selected by ``job`` (the scrape job of the servers).

    Examples
    --------
    >>> from mlplan.plan import Plan
    >>> plan = Plan.model_validate({"project": {"name": "churn"}, "task": "binary",
    ...     "target": "churned", "monitoring": {"software": [
    ...     {"name": "slow", "metric": "latency_p99_ms", "threshold": 250, "window": "5m"}]}})
    >>> rule = prometheus_rules(plan).document["groups"][0]["rules"][0]
    >>> rule["alert"], rule["for"], rule["labels"]["severity"]
    ('MlplanSlow', '5m', 'warning')
    """
    rules: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    for rule in plan.monitoring.software:
        if rule.slice is not None:
            skipped.append((rule.name, f"slice {rule.slice}: the server's metrics have none"))
            continue
        expr = _expression(rule, job)
        if expr is None:
            skipped.append(
                (rule.name, f"{rule.metric}: the server exports no metric it can be read from")
            )
            continue
        rules.append(
            {
                "alert": "Mlplan" + "".join(p.capitalize() for p in _words(rule.name)),
                "expr": f"{expr} {rule.op} {rule.threshold:g}",
                "for": rule.window,
                "labels": {"severity": rule.severity, "project": plan.project.name},
                "annotations": {
                    "summary": f"{plan.project.name}: {rule.metric} {rule.op} "
                    f"{rule.threshold:g} over {rule.window}",
                    "description": f"mlplan.yaml monitoring.software rule {rule.name}: "
                    f"{rule.metric} is {{{{ $value }}}}",
                },
            }
        )
    name = f"mlplan-{plan.project.name}-software"
    return PrometheusRules({"groups": [{"name": name, "rules": rules}]}, tuple(skipped))


def _words(name: str) -> list[str]:
    return [p for p in "".join(c if c.isalnum() else " " for c in name).split() if p]


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
