"""The Monitoring items from the stored windows: missing with the command to run before
any window, done once a window shows what each asks for."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from mlplan.checklist import status
from mlplan.modeling import get_model
from mlplan.monitoring import monitor
from mlplan.serving import PredictionLog, log_folder
from mlplan.store import ModelRecord
from mlplan.workspace import Workspace

DAY = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)


def test_monitoring_items_follow_the_stored_windows(watched: Workspace) -> None:
    before = status(watched)
    software = before.get("monitor.software")
    assert (software.state, software.evidence) == (
        "missing",
        "production: no monitoring window stored",
    )
    assert software.next_step is not None
    assert software.next_step.startswith("measure it: mlplan monitor production")

    times = iter(DAY + dt.timedelta(hours=10, seconds=i) for i in range(100))
    version = get_model(watched, "logistic-1").package_sha256[:12]
    with PredictionLog(log_folder(watched, "logistic-1"), clock=lambda: next(times)) as log:
        for i in range(30):
            log.record(
                kind="prediction",
                request_id=f"{i:032x}",
                model="logistic-1",
                version=version,
                route="/v1/predict",
                status=200,
                latency_ms=4.0,
                inputs=[{"region": "north", "age": 30 + i}],
                outputs=[{"label": str(i % 2), "probabilities": {"0": 0.4, "1": 0.6}}],
                deployment="production",
            )
        done = log.record(
            kind="feedback",
            request_id=f"{0:032x}",
            model="logistic-1",
            version="x",
            route="/v1/feedback",
            status=202,
            latency_ms=0.1,
            outputs={"label": "0", "value": 12.5, "events": [{"name": "redo_search"}]},
            deployment="production",
        )
        assert done is not None
        done.result(timeout=30)
    monitor(watched, since=DAY + dt.timedelta(hours=10), until=DAY + dt.timedelta(hours=11))

    after = status(watched)
    for item_id in ("monitor.software", "monitor.output", "monitor.ml", "monitor.business"):
        assert after.get(item_id).state == "done", after.get(item_id)
    assert after.get("monitor.ml").evidence.startswith(
        "production: window of 2026-11-30 10:00: 1 labelled, roc_auc"
    )
    assert after.get("monitor.business").evidence == (
        "production: window of 2026-11-30 10:00: value 12.5 over 1"
    )
    inputs = after.get("monitor.input")
    assert inputs.state == "done", inputs
    assert inputs.evidence.startswith(
        "production: window of 2026-11-30 10:00: 2 features held against the training reference, "
        "drifted: age, region"
    )


def test_inputs_without_a_training_reference_are_not_done(watched: Workspace) -> None:
    with watched.store.transaction() as session:  # as packages trained before references
        for record in session.scalars(sa.select(ModelRecord)):
            record.package = {k: v for k, v in record.package.items() if k != "reference.json"}
    times = iter(DAY + dt.timedelta(hours=10, seconds=i) for i in range(10))
    version = get_model(watched, "logistic-1").package_sha256[:12]
    with PredictionLog(log_folder(watched, "logistic-1"), clock=lambda: next(times)) as log:
        done = log.record(
            kind="prediction",
            request_id=f"{0:032x}",
            model="logistic-1",
            version=version,
            route="/v1/predict",
            status=200,
            latency_ms=4.0,
            inputs=[{"region": "north", "age": 30}],
            outputs=[{"label": "1", "probabilities": {"0": 0.4, "1": 0.6}}],
            deployment="production",
        )
        assert done is not None
        done.result(timeout=30)
    monitor(watched, since=DAY + dt.timedelta(hours=10), until=DAY + dt.timedelta(hours=11))
    inputs = status(watched).get("monitor.input")
    assert (inputs.state, inputs.evidence) == (
        "missing",
        "production: 1 window, their inputs measured without a training reference",
    )
    assert inputs.next_step is not None and "train the model again" in inputs.next_step
