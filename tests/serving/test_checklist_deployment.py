from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import edit_plan, evaluated
from tests.serving.conftest import RECORD, bearer, started

from mlplan.checklist import status
from mlplan.serving import ServeConfig, create_app, load_test
from mlplan.workspace import Workspace


def _items(ws: Workspace) -> dict[str, Any]:
    return {s.item.id: s for s in status(ws).items if s.item.stage == "Deployment"}


@pytest.mark.slow
def test_the_deployment_items_follow_serving_load_tests_and_keys(served: Workspace) -> None:
    before = _items(served)
    assert before["deploy.mode"].state == "missing"
    assert before["deploy.mode"].next_step == "mlplan serve logistic-1"
    assert before["deploy.security"].next_step == "mlplan keys create --name NAME --role predict"
    assert before["deploy.slo"].next_step == "mlplan loadtest logistic-1"

    from mlplan.serving import create_key

    token = create_key(served, "app", roles=["predict"]).token
    app = create_app(ServeConfig(root=str(served.root), model="logistic-1", key_refresh_seconds=0))
    with started(app) as client:
        for _ in range(4):
            client.post("/v1/predict", json={"records": [RECORD]}, headers=bearer(token))
        during = _items(served)
        assert (
            during["deploy.mode"].state == "done"
            and "running now" in during["deploy.mode"].evidence
        )
    found = served.latest_report("serving", where=lambda r: r["model"] == "logistic-1")
    assert found is not None
    served_report = found.report
    assert served_report["answers"] == {"2xx": 4}
    assert served_report["logged"] == 4 and served_report["log_dropped"] == 0

    report = load_test(served, "logistic-1", concurrency=2, seconds=1.0)
    assert report.statuses.get("200", 0) == report.requests > 0
    assert {c.objective for c in report.checks} == {
        "latency_p50_ms",
        "latency_p99_ms",
        "qps",
        "memory_mb",
    }
    after = _items(served)
    states = {k: v.state for k, v in after.items()}
    assert states["deploy.mode"] == states["deploy.target"] == "done"
    assert states["deploy.logging"] == states["deploy.security"] == "done"
    assert states["deploy.compute"] == "done"
    assert states["deploy.slo"] in {"done", "failing"}  # a 2-core CI box may miss p50 10 ms
    assert "load test at concurrency 2" in after["deploy.slo"].evidence
    # Served by hand: no pipeline ran, nothing schedules one.
    assert states["deploy.pipeline"] == "missing"
    assert after["deploy.pipeline"].evidence.startswith("no pipeline run yet")
    assert (after["deploy.pipeline"].next_step or "").startswith("mlplan run")

    edit_plan(served, "auth: api_key", "auth: none")
    assert _items(served)["deploy.security"].state == "failing"


def test_once_a_model_is_in_production_the_items_follow_it(served: Workspace) -> None:
    from mlplan.modeling import train_model
    from mlplan.serving import deploy

    train_model(served, family="gbt")
    assert _items(served)["deploy.mode"].next_step == "mlplan serve gbt-1"  # the newest
    deploy(served, evaluated(served))
    items = _items(served)
    assert items["deploy.mode"].next_step == "mlplan serve logistic-1"
    assert items["deploy.slo"].next_step == "mlplan loadtest logistic-1"
