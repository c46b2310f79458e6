"""Monitoring windows over a prediction log written by the real writer: two writers' folders
read together, hours apart (the writer's clock set), delayed feedback joined by request id,
each family checked against the figures computed by hand on the same records, and the
windows stored, a recomputed window replacing its rows."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from mlplan.errors import DeploymentNotFoundError, ParameterError
from mlplan.modeling import NumericReference, get_model, training_reference
from mlplan.monitoring import WHOLE, MonitorWindow, monitor, stored_windows
from mlplan.serving import PredictionLog, log_folder
from mlplan.workspace import Workspace

DAY = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
REGIONS = ("north", "south", "east")


@dataclass
class Clock:
    """The writer's clock: each record is stamped ``step`` after the one before."""

    now: dt.datetime
    step: dt.timedelta = dt.timedelta(seconds=1)

    def __call__(self) -> dt.datetime:
        self.now += self.step
        return self.now


@dataclass
class Sent:
    """What a test wrote, to compute the expected figures from."""

    latency: dict[int, list[float]] = field(default_factory=dict)
    statuses: dict[int, list[int]] = field(default_factory=dict)
    labels: dict[int, list[str]] = field(default_factory=dict)
    answered: dict[int, list[tuple[str, str, float, str]]] = field(default_factory=dict)


def _traffic(
    log: PredictionLog,
    ws: Workspace,
    clock: Clock,
    hour: int,
    n: int,
    rng: np.random.Generator,
    sent: Sent,
) -> None:
    """``n`` requests of one record each, answered by logistic-1 for production in ``hour``
    of DAY; every 20th fails (503), every 25th is refused (422 by the validator)."""
    info = get_model(ws, "logistic-1")
    clock.now = DAY + dt.timedelta(hours=hour, minutes=int(rng.integers(0, 30)))
    pending = []
    for i in range(n):
        region = REGIONS[i % 3]
        score = float(rng.uniform())
        label = "1" if score >= 0.5 else "0"
        status = 503 if i % 20 == 7 else (422 if i % 25 == 3 else 200)
        latency = float(rng.gamma(2.0, 5.0))
        request_id = secrets.token_hex(16)
        pending.append(
            log.record(
                kind="prediction",
                request_id=request_id,
                model="logistic-1",
                version=info.package_sha256[:12],
                route="/v1/predict",
                status=status,
                latency_ms=latency,
                inputs=[{"region": region, "age": 20 + i % 50, "charges": 50.0 + i % 7}],
                outputs=[{"label": label, "probabilities": {"0": 1 - score, "1": score}}]
                if status == 200
                else None,
                error={"by_type": {"missing": 1}} if status == 422 else None,
                deployment="production",
            )
        )
        sent.latency.setdefault(hour, []).append(round(latency, 3))  # as the writer keeps it
        sent.statuses.setdefault(hour, []).append(status)
        if status == 200:
            sent.answered.setdefault(hour, []).append((request_id, label, score, region))
    for done in pending:
        assert done is not None
        done.result(timeout=30)


def _feedback(
    log: PredictionLog, clock: Clock, hour: int, bodies: dict[str, dict[str, Any]]
) -> None:
    """Feedback on requests, sent in ``hour`` of DAY (later than the requests: it comes late)."""
    clock.now = DAY + dt.timedelta(hours=hour)
    for request_id, body in bodies.items():
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


@pytest.fixture
def two_writers(watched: Workspace) -> Iterator[tuple[PredictionLog, PredictionLog, Clock, Clock]]:
    """Two writers of logistic-1's log (two workers, each its own folder), each with its clock."""
    first, second = Clock(DAY), Clock(DAY)
    folder = log_folder(watched, "logistic-1")
    with PredictionLog(folder, clock=first) as a, PredictionLog(folder, clock=second) as b:
        yield a, b, first, second


def _one(windows: tuple[MonitorWindow, ...], hour: int, family: str, value: str = WHOLE) -> Any:
    (found,) = [
        w
        for w in windows
        if w.start == DAY + dt.timedelta(hours=hour) and w.family == family and w.slice == value
    ]
    return found


def test_windows_read_both_writers_and_measure_each_family(
    watched: Workspace,
    two_writers: tuple[PredictionLog, PredictionLog, Clock, Clock],
    rng: np.random.Generator,
) -> None:
    a, b, clock_a, clock_b = two_writers
    sent = Sent()
    for hour, (n_a, n_b) in {10: (60, 40), 11: (30, 45), 12: (50, 0)}.items():
        _traffic(a, watched, clock_a, hour, n_a, rng, sent)
        if n_b:
            _traffic(b, watched, clock_b, hour, n_b, rng, sent)
    # Hour 10's labels and values come at 13:00, through the other writer.
    labelled = sent.answered[10][:80]
    truth = {rid: ("1" if (score > 0.3) else "0") for rid, _, score, _ in labelled}
    bodies: dict[str, dict[str, Any]] = {rid: {"label": t} for rid, t in truth.items()}
    for k, (rid, *_) in enumerate(labelled[:20]):
        bodies[rid] = bodies[rid] | {"value": 2.5, "events": [{"name": "redo_search"}]}
        if k < 5:  # a second feedback adds to the first
            bodies[rid]["value"] = 1.0
    _feedback(b, clock_b, 13, bodies)
    _feedback(b, clock_b, 14, {rid: {"value": 1.5} for rid, *_ in labelled[:5]})

    result = monitor(
        watched,
        "production",
        window="1h",
        since=DAY + dt.timedelta(hours=10, minutes=20),
        until=DAY + dt.timedelta(hours=12, minutes=10),
    )

    assert result.since == DAY + dt.timedelta(hours=10)  # whole windows
    assert result.until == DAY + dt.timedelta(hours=13)
    assert sorted({w.start.hour for w in result.windows}) == [10, 11, 12]
    for hour in (10, 11, 12):
        software = _one(result.windows, hour, "software")
        statuses = np.asarray(sent.statuses[hour])
        assert software.samples == len(statuses)
        assert software.metrics["latency_p99_ms"] == pytest.approx(
            np.quantile(sent.latency[hour], 0.99)
        )
        assert software.metrics["throughput_rps"] == pytest.approx(len(statuses) / 3600)
        assert software.metrics["server_error_rate"] == pytest.approx(np.mean(statuses >= 500))
        assert software.metrics["client_error_rate"] == pytest.approx(np.mean(statuses == 422))
        assert software.metrics["statuses"] == {
            str(s): int(np.sum(statuses == s)) for s in sorted(set(statuses.tolist()))
        }
        output = _one(result.windows, hour, "output")
        labels = np.asarray([label for _, label, _, _ in sent.answered[hour]])
        assert output.samples == len(labels)
        assert output.metrics["class_shares"]["1"] == pytest.approx(np.mean(labels == "1"))
        scores = [score for _, _, score, _ in sent.answered[hour]]
        assert output.metrics["score_quantiles"]["p50"] == pytest.approx(np.median(scores))
        inputs = _one(result.windows, hour, "input")
        assert inputs.metrics["features"]["region"]["counts"] == {
            r: sum(1 for *_, region in sent.answered[hour] if region == r)
            for r in sorted(
                REGIONS, key=lambda r: (-sum(1 for *_, g in sent.answered[hour] if g == r), r)
            )
        }
        assert inputs.metrics["features"]["age"]["missing"] == 0.0
        north = _one(result.windows, hour, "output", "region=north")
        assert north.samples == sum(1 for *_, region in sent.answered[hour] if region == "north")

    ml = _one(result.windows, 10, "ml")
    assert ml.samples == len(truth)
    predicted = {rid: label for rid, label, _, _ in labelled}
    positives = [rid for rid, t in truth.items() if t == "1"]
    assert sorted(ml.metrics["metrics"]) == ["precision", "recall", "roc_auc"]  # the plan's
    assert ml.metrics["metrics"]["recall"] == pytest.approx(
        np.mean([predicted[rid] == "1" for rid in positives])
    )
    assert _one(result.windows, 11, "ml").samples == 0
    business = _one(result.windows, 10, "business")
    assert business.metrics["metrics"]["value"] == {
        "sum": 15 * 2.5 + 5 * 2.5,
        "mean": 2.5,
        "count": 20,
    }
    events = _one(result.windows, 10, "output").metrics["events"]
    assert events["redo_search"]["requests"] == 20
    assert events["redo_search"]["rate"] == pytest.approx(20 / len(sent.answered[10]))

    stored = stored_windows(watched, deployment="production")
    assert len(stored) == len(result.windows)
    again = monitor(
        watched,
        "production",
        window="1h",
        since=DAY + dt.timedelta(hours=10),
        until=DAY + dt.timedelta(hours=13),
    )
    assert len(stored_windows(watched, deployment="production")) == len(again.windows)


def test_a_model_is_monitored_over_its_whole_log(
    watched: Workspace,
    two_writers: tuple[PredictionLog, PredictionLog, Clock, Clock],
    rng: np.random.Generator,
) -> None:
    a, _, clock_a, _ = two_writers
    sent = Sent()
    _traffic(a, watched, clock_a, 9, 30, rng, sent)
    result = monitor(
        watched, "logistic-1", window="30m", since=DAY, until=DAY + dt.timedelta(hours=10)
    )
    assert result.deployment is None and result.model == "logistic-1"
    assert sum(w.samples for w in result.windows if w.family == "software") == 30
    assert stored_windows(watched, family="software")[0].samples > 0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"name": "staging"},
            DeploymentNotFoundError,
            "no deployment or model 'staging'; deployments: production; models: logistic-1",
        ),
        (
            {"window": "5x"},
            ParameterError,
            "'window' takes a duration such as 90s, 30m, 1h or 2d; got '5x'",
        ),
        ({"window": "0s"}, ParameterError, "'window' must be longer than 0"),
        (
            {"since": DAY + dt.timedelta(hours=5), "until": DAY},
            ParameterError,
            r"'since' 2026-11-30T05:00:00\+00:00 is not before until",
        ),
    ],
    ids=["unknown", "malformed-window", "empty-window", "since-after-until"],
)
def test_bad_input_is_refused_with_what_to_do(
    watched: Workspace, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        monitor(watched, **kwargs)
    assert stored_windows(watched) == []


def test_an_empty_log_says_where_it_looked_and_what_to_do(watched: Workspace) -> None:
    result = monitor(watched, since=DAY, until=DAY + dt.timedelta(hours=2))
    assert result.windows == ()
    assert result.notes == (
        "no predictions in .mlplan/predictions for deployment production from 2026-11-30 "
        "00:00 to 2026-11-30 02:00 UTC; serve it (mlplan serve --deployment production) and "
        "send requests, or give an earlier --since",
    )


def test_inputs_are_held_against_the_training_reference(
    watched: Workspace,
    two_writers: tuple[PredictionLog, PredictionLog, Clock, Clock],
    rng: np.random.Generator,
) -> None:
    a, _, clock_a, _ = two_writers
    sent = Sent()
    _traffic(a, watched, clock_a, 10, 90, rng, sent)
    reference = training_reference(watched, "logistic-1")
    span = {"since": DAY + dt.timedelta(hours=10), "until": DAY + dt.timedelta(hours=11)}
    result = monitor(watched, window="1h", **span)
    features = _one(result.windows, 10, "input").metrics["features"]
    answered = [i for i, s in enumerate(sent.statuses[10]) if s == 200]
    ages = np.asarray([20 + i % 50 for i in answered])
    age = reference.inputs["age"]
    assert isinstance(age, NumericReference) and age.min is not None and age.max is not None
    outside = (ages < age.min) | (ages > age.max)
    assert features["age"]["out_of_range"] == pytest.approx(np.mean(outside))
    assert features["region"]["unseen"] == {}  # training saw north, south and east
    assert features["region"]["unseen_share"] == 0
    assert not any("no drift" in note for note in result.notes)


def test_a_nested_input_is_counted_by_its_text(
    watched: Workspace, two_writers: tuple[PredictionLog, PredictionLog, Clock, Clock]
) -> None:
    a, _, clock_a, _ = two_writers
    clock_a.now = DAY + dt.timedelta(hours=7)
    version = get_model(watched, "logistic-1").package_sha256[:12]
    for i, tags in enumerate([["a", "b"], ["a", "b"], ["c"]]):
        done = a.record(
            kind="prediction",
            request_id=f"{i:032x}",
            model="logistic-1",
            version=version,
            route="/v1/predict",
            status=200,
            latency_ms=1.0,
            inputs=[{"tags": tags, "age": 30}],
            outputs=[{"label": "0", "probabilities": {"0": 0.9, "1": 0.1}}],
            deployment="production",
        )
        assert done is not None
        done.result(timeout=30)
    result = monitor(watched, since=DAY + dt.timedelta(hours=7), until=DAY + dt.timedelta(hours=8))
    tags = _one(result.windows, 7, "input").metrics["features"]["tags"]
    assert tags["counts"] == {'["a","b"]': 2, '["c"]': 1}


def test_open_inference_answers_are_read_like_predict_answers(
    watched: Workspace, two_writers: tuple[PredictionLog, PredictionLog, Clock, Clock]
) -> None:
    """One request of two records through ``/v1/predict``, one through the Open Inference
    route (its answer as tensors, as the server logs them), and a label for a third request
    of one record each way: the same records, classes, scores and labels."""
    a, _, clock_a, _ = two_writers
    clock_a.now = DAY + dt.timedelta(hours=6)
    version = get_model(watched, "logistic-1").package_sha256[:12]
    rows = [{"region": "north", "age": 30}, {"region": "south", "age": 61}]
    predict = [
        {"label": "0", "probabilities": {"0": 0.8, "1": 0.2}},
        {"label": "1", "probabilities": {"0": 0.1, "1": 0.9}},
    ]
    tensors = [
        {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["0", "1"]},
        {"name": "probabilities", "datatype": "FP32", "shape": [2, 2],
         "data": [0.8, 0.2, 0.1, 0.9]},
    ]  # fmt: skip
    one = [
        {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["1"]},
        {"name": "probabilities", "datatype": "FP32", "shape": [1, 2], "data": [0.1, 0.9]},
    ]
    logged = [("/v1/predict", rows, predict), ("/v2/models/m/infer", rows, tensors),
              ("/v2/models/m/infer", rows[1:], one), ("/v1/predict", rows, "not json")]  # fmt: skip
    for i, (route, inputs, outputs) in enumerate(logged):
        done = a.record(
            kind="prediction",
            request_id=f"{i:032x}",
            model="logistic-1",
            version=version,
            route=route,
            status=200,
            latency_ms=1.0,
            inputs=inputs,
            outputs=outputs,
            deployment="production",
        )
        assert done is not None
        done.result(timeout=30)
    done = a.record(
        kind="feedback", request_id=f"{2:032x}", model="logistic-1", version=version,
        route="/v1/feedback", status=202, latency_ms=0.1, outputs={"label": "0"},
        deployment="production",
    )  # fmt: skip
    assert done is not None
    done.result(timeout=30)
    result = monitor(watched, since=DAY + dt.timedelta(hours=6), until=DAY + dt.timedelta(hours=7))
    outputs = _one(result.windows, 6, "output").metrics
    assert outputs["records"] == 5  # the text that is not JSON answers nothing
    assert outputs["class_shares"] == {"0": pytest.approx(0.4), "1": pytest.approx(0.6)}
    assert outputs["score_quantiles"]["p50"] == pytest.approx(0.9, abs=1e-6)
    inputs = _one(result.windows, 6, "input").metrics["features"]
    assert inputs["age"]["min"] == 30 and inputs["age"]["max"] == 61
    assert _one(result.windows, 6, "ml").samples == 1  # the one-record request's label
    south = _one(result.windows, 6, "output", "region=south").metrics
    assert south["records"] == 3 and south["class_shares"]["1"] == pytest.approx(1.0)


def test_families_named_are_the_only_ones_measured_and_replaced(
    watched: Workspace,
    two_writers: tuple[PredictionLog, PredictionLog, Clock, Clock],
    rng: np.random.Generator,
) -> None:
    """``families=["ml"]`` measures the same ML metrics per slice as every family does, and
    storing them keeps the other families stored before."""
    a, b, clock_a, clock_b = two_writers
    sent = Sent()
    _traffic(a, watched, clock_a, 10, 60, rng, sent)
    _traffic(b, watched, clock_b, 10, 40, rng, sent)
    truth = {rid: ("1" if score > 0.3 else "0") for rid, _, score, _ in sent.answered[10]}
    _feedback(b, clock_b, 11, {rid: {"label": t} for rid, t in truth.items()})
    span: dict[str, Any] = {
        "since": DAY + dt.timedelta(hours=10),
        "until": DAY + dt.timedelta(hours=11),
    }
    everything = monitor(watched, **span)
    alone = monitor(watched, **span, families=["ml"])
    assert {w.family for w in alone.windows} == {"ml"}
    ml = [w for w in everything.windows if w.family == "ml"]
    assert [w.to_dict() for w in alone.windows] == [w.to_dict() for w in ml]
    stored = stored_windows(watched, deployment="production")
    assert sorted({w.family for w in stored}) == sorted({w.family for w in everything.windows})
    assert len(stored) == len(everything.windows)
    with pytest.raises(ParameterError, match="lables is not a family; the families are"):
        monitor(watched, **span, families=["lables"])
