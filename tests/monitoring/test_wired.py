"""Drift and the estimate before labels in the windows ``monitor`` stores, against the
training reference of a model trained in the test: its inputs' drift (a column shifted in a
later hour), its outputs', and the estimated metric beside the realised one once delayed
labels arrive; a package without a reference gets a note, never an error."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from mlplan.modeling import get_model
from mlplan.monitoring import WHOLE, MonitorWindow, monitor, stored_windows
from mlplan.serving import PredictionLog, log_folder
from mlplan.store import ModelRecord
from mlplan.workspace import Workspace

DAY = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)


def _send(ws: Workspace, hour: int, n: int, shift: float, seed: int) -> dict[str, str]:
    """``n`` requests of one record each in ``hour`` of DAY, shaped like the training rows
    (``shift`` added to ``charges``), scored with calibrated probabilities; then a label
    (drawn from the score) on two of three and a business value on one of five, an hour
    later. Returns the request ids and labels sent."""
    rng = np.random.default_rng(seed)
    version = get_model(ws, "logistic-1").package_sha256[:12]
    times = iter(DAY + dt.timedelta(hours=hour, seconds=3 * i) for i in range(2 * n + 10))
    labels: dict[str, str] = {}
    with PredictionLog(log_folder(ws, "logistic-1"), clock=lambda: next(times)) as log:
        pending = []
        for i in range(n):
            score = float(rng.beta(1.2, 4.0))
            request_id = f"{hour:04x}{i:028x}"
            pending.append(
                log.record(
                    kind="prediction",
                    request_id=request_id,
                    model="logistic-1",
                    version=version,
                    route="/v1/predict",
                    status=200,
                    latency_ms=3.0,
                    inputs=[
                        {
                            "gender": ["female", "male"][i % 2],
                            "age": int(rng.integers(18, 90)),
                            "region": ["north", "south", "east"][i % 3],
                            "charges": round(float(rng.normal(60, 15)) + shift, 2),
                        }
                    ],
                    outputs=[
                        {
                            "label": "1" if score >= 0.5 else "0",
                            "probabilities": {"0": 1 - score, "1": score},
                        }
                    ],
                    deployment="production",
                )
            )
            if i % 3:
                labels[request_id] = "1" if rng.uniform() < score else "0"
        for done in pending:
            assert done is not None
            done.result(timeout=30)
    later = iter(DAY + dt.timedelta(hours=hour, minutes=50, seconds=i) for i in range(n + 10))
    with PredictionLog(log_folder(ws, "logistic-1"), clock=lambda: next(later)) as log:
        for k, (request_id, label) in enumerate(labels.items()):
            body: dict[str, Any] = {"label": label} | ({"value": 2.5} if k % 5 == 0 else {})
            done = log.record(
                kind="feedback",
                request_id=request_id,
                model="logistic-1",
                version="x",
                route="/v1/feedback",
                status=202,
                latency_ms=0.1,
                outputs=body,
                deployment="production",
            )
            assert done is not None
            done.result(timeout=30)
    return labels


def _one(windows: tuple[MonitorWindow, ...], hour: int, family: str, value: str = WHOLE) -> Any:
    (found,) = [
        w
        for w in windows
        if w.start == DAY + dt.timedelta(hours=hour) and w.family == family and w.slice == value
    ]
    return found


def test_drift_and_estimate_against_the_packages_own_reference(watched: Workspace) -> None:
    _send(watched, 10, 300, 0.0, seed=1)
    _send(watched, 11, 300, 40.0, seed=2)  # a price change
    result = monitor(
        watched, since=DAY + dt.timedelta(hours=10), until=DAY + dt.timedelta(hours=12)
    )

    steady = _one(result.windows, 10, "input").metrics["drift"]
    shifted = _one(result.windows, 11, "input").metrics["drift"]
    charges = shifted["features"]["charges"]
    assert charges["method"] == "ks" and charges["drifted"] is True
    assert charges["p_value"] < 1e-6 and charges["threshold"] == 0.05
    assert "charges" in shifted["drifted"] and "charges" not in steady["drifted"]
    assert steady["features"]["region"]["method"] == "chi2"
    assert {"reason", "statistic", "rows"} <= set(charges)
    output = _one(result.windows, 11, "output").metrics["drift"]["outputs"]
    assert {"predicted class", "score 1"} <= set(output)

    estimated = _one(result.windows, 11, "estimated")
    ml = _one(result.windows, 11, "ml")
    primary = estimated.metrics["primary"]
    assert primary == (watched.plan.metrics.primary_metric or watched.plan.metrics.ml[0]).name
    assert estimated.samples == 300 and estimated.metrics["labelled"] == ml.samples == 200
    for name, entry in estimated.metrics["metrics"].items():
        low, value, high = (entry["estimated"][k] for k in ("low", "value", "high"))
        assert low <= value <= high
        assert entry["realised"] == pytest.approx(ml.metrics["metrics"][name])
    assert "drift" not in _one(result.windows, 11, "input", "region=north").metrics
    north = _one(result.windows, 11, "estimated", "region=north")
    assert north.samples == 100 and set(north.metrics["metrics"]) == set(
        estimated.metrics["metrics"]
    )
    stored = stored_windows(watched, family="estimated")
    assert len(stored) == 2 * 4  # two hours: every record and three regions
    assert not any("no drift" in note for note in result.notes)


def test_a_package_without_a_reference_gets_a_note(watched: Workspace) -> None:
    with watched.store.transaction() as session:  # as packages trained before references
        for record in session.scalars(sa.select(ModelRecord)):
            record.package = {k: v for k, v in record.package.items() if k != "reference.json"}
    ref = get_model(watched, "logistic-1").ref
    _send(watched, 10, 40, 0.0, seed=3)
    result = monitor(
        watched, since=DAY + dt.timedelta(hours=10), until=DAY + dt.timedelta(hours=11)
    )
    assert {w.family for w in result.windows} == {"software", "input", "output", "ml", "business"}
    inputs = _one(result.windows, 10, "input").metrics
    assert "drift" not in inputs and "out_of_range" not in inputs["features"]["age"]
    (note,) = [n for n in result.notes if "no drift or estimate" in n]
    assert note.startswith(f"{ref}: no drift or estimate: model {ref} has no training reference")
    assert "Train it again (mlplan train --family logistic)" in note
