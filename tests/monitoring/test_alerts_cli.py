"""``mlplan monitor check`` (exit 1 when a rule fires, 0 otherwise), ``mlplan alerts
list|ack`` and ``mlplan monitor export --format prometheus-rules`` (the rules file's structure,
against the metric names the server exports)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from tests.conftest import ok
from tests.monitoring.conftest import traffic
from tests.monitoring.test_alerts import CHECKED, RULES, set_rules

import mlplan.monitoring._alerts as alerts_module
from mlplan.workspace import Workspace

SERVING_METRICS = Path(__file__).resolve().parents[2] / "src/mlplan/serving/_metrics.py"


def test_monitor_check_exits_1_on_a_firing_and_alerts_are_listed_and_acknowledged(
    cli: Any, watched: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_rules(watched)
    traffic(watched)
    monkeypatch.setattr(alerts_module, "utcnow", lambda: CHECKED)

    fired = cli("monitor", "check", "--json")
    assert fired.exit_code == 1, fired.output
    answer = json.loads(fired.stdout)
    assert answer["fired"] is True and answer["deployment"] == "production"
    (opened,) = answer["opened"]
    assert (opened["rule"], opened["state"]) == ("software.errors", "open")
    table = cli("monitor", "check")
    assert table.exit_code == 1
    assert "software.errors" in table.stdout and "fired" in table.stdout
    assert "not evaluated" in table.stdout and "fewer than min_samples 1000" in table.stdout

    listed = json.loads(ok(cli("alerts", "list", "--state", "open", "--json")).stdout)
    assert [a["id"] for a in listed] == [opened["id"]]
    acked = ok(cli("alerts", "ack", str(opened["id"]), "--by", "Priya", "--note", "on it"))
    assert f"alert {opened['id']} (software.errors) acknowledged by Priya" in acked.stdout
    assert json.loads(ok(cli("alerts", "list", "--state", "open", "--json")).stdout) == []
    assert "acknowledged" in ok(cli("alerts", "list")).stdout

    set_rules(watched, RULES.replace("threshold: 0.05", "threshold: 0.5"))
    calm = ok(cli("monitor", "check", "--json"))
    assert [a["id"] for a in json.loads(calm.stdout)["resolved"]] == [opened["id"]]

    wrong = cli("alerts", "list", "--state", "closed")
    assert wrong.exit_code == 2 and "--state 'closed' is not one of" in wrong.stderr
    missing = cli("alerts", "ack", "99", "--by", "Priya")
    assert missing.exit_code == 1 and "no alert 99" in missing.stderr


def test_monitor_check_at_a_past_moment_sees_the_windows_that_had_ended_then(
    cli: Any, watched: Workspace
) -> None:
    set_rules(watched)
    traffic(watched)
    fired = cli("monitor", "check", "--at", CHECKED.isoformat(), "--json")
    assert fired.exit_code == 1, fired.output
    answer = json.loads(fired.stdout)
    assert answer["checked_at"] == CHECKED.isoformat()
    assert [a["rule"] for a in answer["opened"]] == ["software.errors"]
    wrong = cli("monitor", "check", "--at", "last tuesday")
    assert wrong.exit_code == 2 and "--at takes a time" in wrong.stderr


def test_monitor_without_a_subcommand_still_measures(cli: Any, watched: Workspace) -> None:
    shown = ok(cli("monitor", "--since", "2026-11-30T00:00", "--until", "2026-11-30T01:00"))
    assert "deployment production" in shown.stdout


def test_prometheus_rules_for_the_software_rules(cli: Any, watched: Workspace) -> None:
    set_rules(
        watched,
        """monitoring:
  software:
    - {name: p99-latency, metric: latency_p99_ms, op: '>', threshold: 50, window: 5m,
       severity: critical}
    - {name: errors, metric: server_error_rate, op: '>', threshold: 0.01, window: 10m}
    - {name: cpu, metric: cpu_percent, op: '>', threshold: 90, window: 5m}
    - {name: north-errors, metric: error_rate, op: '>', threshold: 0.01, slice: region=north}
    - {name: bytes, metric: bytes_per_request, op: '>', threshold: 100000}
  output:
    - {name: nulls, metric: null_rate, op: '>', threshold: 0.1}
""",
    )
    result = ok(cli("monitor", "export", "--format", "prometheus-rules"))
    document = YAML(typ="safe").load(result.stdout)
    assert set(document) == {"groups"}
    (group,) = document["groups"]
    assert group["name"] == f"mlplan-{watched.plan.project.name}-software"
    rules = group["rules"]
    assert [r["alert"] for r in rules] == ["MlplanP99Latency", "MlplanErrors", "MlplanCpu"]
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
        assert re.fullmatch(r"\d+[smhd]", rule["for"])
        assert set(rule["annotations"]) == {"summary", "description"}
        assert rule["labels"]["severity"] in ("info", "warning", "critical")
    latency, errors, cpu = (r["expr"] for r in rules)
    assert latency == (
        "histogram_quantile(0.99, sum by (le) "
        '(rate(mlplan_http_request_duration_seconds_bucket{job="mlplan"}[5m]))) * 1000 > 50'
    )
    assert 'mlplan_http_requests_total{job="mlplan", status=~"5.."}[10m]' in errors
    assert errors.endswith("> 0.01")
    assert cpu.startswith('sum(rate(process_cpu_seconds_total{job="mlplan"}[5m])) * 100')
    assert rules[0]["labels"]["severity"] == "critical"
    # every series named is one the server exports (a counter with _total, a histogram _bucket)
    exported = set(re.findall(r'"((?:mlplan|process)_[a-z_]+)"', SERVING_METRICS.read_text()))
    for expr in (latency, errors, cpu):
        for series in re.findall(r"\b((?:mlplan|process)_[a-z_]+)\{", expr):
            base = re.sub(r"_(total|bucket)$", "", series)
            assert base in exported, series
    assert "skipped north-errors: slice region=north" in result.stderr
    assert "skipped bytes: bytes_per_request: the server exports no metric" in result.stderr
