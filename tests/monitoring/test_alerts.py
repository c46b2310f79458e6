"""Alerts: the plan's rules evaluated on a deployment's newest window (fired, ok, not
evaluated for too few samples), alerts opened, acknowledged and resolved in the store, an
unknown metric refused with the names that exist, and the checklist item."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from tests.conftest import migrated
from tests.monitoring.conftest import DAY, traffic

from mlplan.checklist import status
from mlplan.errors import AlertNotFoundError, ParameterError, UsageError
from mlplan.monitoring import ack_alert, check_alerts, list_alerts
from mlplan.store import open_store
from mlplan.workspace import Workspace

CHECKED = DAY + dt.timedelta(hours=11, minutes=5)  # the newest whole 1h window: 10:00-11:00

RULES = """monitoring:
  software:
    - {name: errors, metric: error_rate, op: '>', threshold: 0.05, window: 1h,
       min_samples: 20, severity: critical}
    - {name: slow, metric: latency_p99_ms, op: '>', threshold: 1000, window: 1h, min_samples: 20}
    - {name: thin, metric: error_rate, op: '>', threshold: 0.0, window: 1h, min_samples: 1000}
  output:
    - {name: nulls-north, metric: null_rate, op: '>', threshold: 0.5, window: 1h,
       slice: region=north, min_samples: 5}
  input: []
  ml: []
  business: []
"""


def set_rules(ws: Workspace, rules: str = RULES) -> None:
    """Replace the plan's monitoring section by ``rules``."""
    text = ws.plan_path.read_text()
    text, found = re.subn(r"monitoring:\n(?:  .*\n)+", rules, text, count=1)
    assert found == 1
    ws.plan_path.write_text(text)
    ws.__dict__.pop("plan", None)


def test_a_rule_fires_opens_an_alert_and_resolves_once_it_no_longer_fires(
    watched: Workspace,
) -> None:
    set_rules(watched)
    traffic(watched)

    first = check_alerts(watched, now=CHECKED)

    assert first.deployment == "production" and first.fired
    outcome = {o.rule: o for o in first.outcomes}
    errors = outcome["software.errors"]
    assert (errors.outcome, errors.value, errors.samples) == ("fired", 4 / 40, 40)
    assert errors.window_start == DAY + dt.timedelta(hours=10)
    assert outcome["software.slow"].outcome == "ok"
    thin = outcome["software.thin"]  # fires on the value, but rests on too few samples
    assert (thin.outcome, thin.value) == ("not evaluated", None)
    assert thin.reason == "40 samples, fewer than min_samples 1000"
    north = outcome["output.nulls-north"]
    assert (north.slice, north.outcome, north.samples) == (
        "region=north",
        "ok",
        16,
    )  # answered records
    (opened,) = first.opened
    assert (opened.rule, opened.state, opened.severity, opened.value) == (
        "software.errors",
        "open",
        "critical",
        0.1,
    )
    watched.__dict__.pop("plan", None)
    item = status(watched).get("monitor.alerts")
    assert item.state == "failing"
    assert f"alert {opened.id} software.errors on production (all) open, critical" in (
        item.evidence
    )

    again = check_alerts(watched, now=CHECKED + dt.timedelta(minutes=10))
    assert not again.opened and [a.id for a in again.firing] == [opened.id]
    acked = ack_alert(watched, opened.id, by="Priya", note="a bad release, rolling back")
    assert (acked.state, acked.acked_by, acked.ack_note) == (
        "acknowledged",
        "Priya",
        "a bad release, rolling back",
    )
    assert status(watched).get("monitor.alerts").state == "done"  # acknowledged: not failing

    set_rules(watched, RULES.replace("threshold: 0.05", "threshold: 0.5"))
    calm = check_alerts(watched, now=CHECKED + dt.timedelta(minutes=20))
    assert not calm.fired and [a.id for a in calm.resolved] == [opened.id]
    (stored,) = list_alerts(watched)
    assert stored.state == "resolved" and stored.resolved_at is not None
    assert list_alerts(watched, state="open") == []
    assert status(watched).get("monitor.alerts").state == "done"


def test_too_few_samples_is_never_a_firing(watched: Workspace) -> None:
    set_rules(watched)
    traffic(watched)
    quiet = check_alerts(watched, now=CHECKED + dt.timedelta(hours=1))  # 11:00-12:00: empty
    assert not quiet.fired and not quiet.opened
    assert {o.outcome for o in quiet.outcomes} == {"not evaluated"}
    assert list_alerts(watched) == []
    item = status(watched).get("monitor.alerts")
    assert item.state == "missing" and "firing path not exercised" in item.evidence


def test_a_rule_naming_a_metric_no_family_computes_is_refused_with_the_names(
    watched: Workspace,
) -> None:
    set_rules(watched, RULES.replace("metric: latency_p99_ms", "metric: latency_p99"))
    traffic(watched)
    with pytest.raises(UsageError) as refused:
        check_alerts(watched, now=CHECKED)
    message = str(refused.value)
    assert message.startswith(
        "mlplan.yaml monitoring.software[1] (slow): metric 'latency_p99' is not one the "
        "software family computes; known: "
    )
    assert "latency_p99_ms" in message and "error_rate" in message
    assert list_alerts(watched) == []


def test_a_plan_metric_by_its_bare_name_and_a_plan_without_rules(watched: Workspace) -> None:
    set_rules(
        watched,
        "monitoring:\n  ml:\n    - {name: auc, metric: roc_auc, op: '<', threshold: 0.7}\n",
    )
    traffic(watched)
    (auc,) = check_alerts(watched, now=CHECKED).outcomes
    assert (auc.metric, auc.outcome) == ("metrics.roc_auc", "not evaluated")  # no labels yet
    set_rules(watched, "monitoring: {}\n")
    with pytest.raises(UsageError, match="the plan has no monitoring rule"):
        check_alerts(watched, now=CHECKED)


def test_a_rule_on_the_estimated_metric_fires_before_any_label(watched: Workspace) -> None:
    primary = watched.plan.metrics.primary
    set_rules(
        watched,
        "monitoring:\n  estimated:\n"
        f"    - {{name: auc, metric: {primary}, op: '<', threshold: 0.75, min_samples: 20,\n"
        "       severity: critical}\n"
        f"    - {{name: auc-high, metric: {primary}.high, op: '<', threshold: 0.75}}\n"
        f"    - {{name: thin, metric: {primary}, op: '<', threshold: 0.75, min_samples: 37}}\n",
    )
    traffic(watched)  # 36 answers, every one scored 0.7: they rank nothing apart

    check = check_alerts(watched, now=CHECKED)

    outcome = {o.rule: o for o in check.outcomes}
    auc = outcome["estimated.auc"]
    assert auc.metric == f"metrics.{primary}.estimated.value"
    assert (auc.outcome, auc.samples) == ("fired", 36)
    assert auc.value is not None and auc.value < 0.75
    high = outcome["estimated.auc-high"]
    assert high.metric == f"metrics.{primary}.estimated.high" and high.value is not None
    assert high.value >= auc.value
    thin = outcome["estimated.thin"]  # the estimate's samples are the window's answered rows
    assert (thin.outcome, thin.reason) == ("not evaluated", "36 samples, fewer than min_samples 37")
    assert "estimated.auc" in [a.rule for a in check.opened]
    (opened,) = [a for a in check.opened if a.rule == "estimated.auc"]
    assert (opened.severity, opened.metric) == ("critical", f"metrics.{primary}.estimated.value")


def test_a_rule_on_a_metric_the_estimate_cannot_give_is_refused(watched: Workspace) -> None:
    set_rules(
        watched, "monitoring:\n  estimated:\n    - {name: ll, metric: log_loss, threshold: 1}\n"
    )
    traffic(watched)
    with pytest.raises(UsageError) as refused:
        check_alerts(watched, now=CHECKED)
    message = str(refused.value)
    assert message.startswith(
        "mlplan.yaml monitoring.estimated[0] (ll): metric 'log_loss' is not one the "
        "estimated family computes; known: "
    )
    assert ".estimated.high" in message


def test_acknowledging_names_what_is_wrong(watched: Workspace) -> None:
    with pytest.raises(AlertNotFoundError, match="no alert 7; list them with mlplan alerts"):
        ack_alert(watched, 7, by="Priya")
    with pytest.raises(ParameterError) as empty:
        ack_alert(watched, 7, by=" ")
    assert empty.value.params == ("by",)
    with pytest.raises(ParameterError, match="'closed' is not one of: open, acknowledged"):
        list_alerts(watched, state="closed")


def test_migration_0011_adds_the_alert_tables_and_removes_them(store_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    with migrated(store_url, "0010") as connection:
        assert not sa.inspect(connection).has_table("alerts")
    store = open_store(tmp_path, url=store_url)
    with store.engine.connect() as connection:
        inspector = sa.inspect(connection)
        columns = {c["name"] for c in inspector.get_columns("alerts")}
        assert {"rule", "deployment", "slice", "value", "threshold", "severity", "state"} <= (
            columns
        )
        assert {"first_fired_at", "last_fired_at", "acked_by", "acked_at", "ack_note"} <= columns
        deliveries = {c["name"] for c in inspector.get_columns("webhook_deliveries")}
        assert {"url", "status", "attempts", "http_status", "error"} <= deliveries
    store.close()
    with migrated(store_url, "0010", down=True) as connection:
        inspector = sa.inspect(connection)
        assert not inspector.has_table("alerts")
        assert not inspector.has_table("webhook_deliveries")
        assert inspector.has_table("monitor_windows")


def test_alerts_on_each_backend(ws: Workspace) -> None:
    from tests.conftest import evaluated, register_split_train

    from mlplan.serving import deploy

    register_split_train(ws)
    deploy(ws, evaluated(ws), by="Priya")
    set_rules(ws)
    traffic(ws)
    (opened,) = check_alerts(ws, now=CHECKED).opened
    assert ack_alert(ws, opened.id, by="Priya").state == "acknowledged"
    assert [a.id for a in list_alerts(ws, state="acknowledged")] == [opened.id]


def test_two_rules_of_one_family_with_one_name_are_refused_where_the_plan_loads(
    watched: Workspace,
) -> None:
    from mlplan.errors import PlanError
    from mlplan.plan import load_plan

    set_rules(watched, RULES.replace("name: slow", "name: errors"))
    with pytest.raises(PlanError) as refused:
        load_plan(watched.plan_path)
    (problem,) = refused.value.problems
    assert "monitoring.software" in problem
    assert "rule name 'errors' appears twice; give each its own" in problem
    assert re.search(r"mlplan\.yaml:\d+", problem), problem


def test_a_rule_on_a_plan_slice_is_evaluated_on_each_of_its_values(watched: Workspace) -> None:
    set_rules(
        watched,
        """monitoring:
  software: []
  output:
    - {name: nulls, metric: null_rate, op: '>=', threshold: 0.0, slice: region, min_samples: 5}
""",
    )
    traffic(watched)
    result = check_alerts(watched, now=CHECKED)
    assert [(o.slice, o.outcome, o.samples) for o in result.outcomes] == [
        ("region=north", "fired", 16),
        ("region=south", "fired", 20),
    ]
    assert sorted(a.slice for a in result.opened) == ["region=north", "region=south"]


def test_the_template_rules_are_ones_the_families_compute(watched: Workspace) -> None:
    from mlplan.plan import render_plan

    template = render_plan("churn", task="binary", target="churned")
    section = re.search(r"monitoring:\n(?:  .*\n)+", template)
    assert section is not None
    set_rules(watched, section.group(0))
    traffic(watched)
    outcomes = {o.rule: o for o in check_alerts(watched, now=CHECKED).outcomes}
    assert set(outcomes) == {
        "software.p99-latency",
        "input.input-drift",
        "output.null-outputs",
        "ml.primary-metric",
    }
    assert outcomes["output.null-outputs"].metric == "null_rate"
