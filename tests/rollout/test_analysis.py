"""The rollout analysis on traffic written straight into the prediction log (no server): a
canary judged on its errors, on its outputs within a slice and on its ML metrics once labels
come, a shadow on its agreement with the stable model, and the rules that combine checks."""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import edit_plan
from tests.rollout.conftest import canary_at_first_step

from mlplan.modeling import Predictions, get_model, slice_metrics
from mlplan.rollout import (
    VERDICTS,
    analyse_rollout,
    combine_verdicts,
    move_rollout,
    start_rollout,
)
from mlplan.serving import PredictionLog
from mlplan.workspace import Workspace, get_deployment

REGIONS = ("north", "south", "east")

GUARDS = """  guards:
    - {metric: error_rate, op: '<=', threshold: 0.02}
    - {metric: positive_rate_ratio, op: '<=', threshold: 1.5}
    - {metric: positive_rate_ratio, op: '<=', threshold: 1.5, slice: region}
    - {metric: latency_p99_ms, op: '<=', threshold: 200}
    - {metric: prediction_psi, op: '<', threshold: 0.25}"""


def _plan(ws: Workspace, guards: str = GUARDS) -> None:
    edit_plan(ws, "slices: []", "slices: [{name: region, columns: [region]}]")
    edit_plan(ws, "  guards: []", guards)


def _traffic(
    log: PredictionLog,
    ws: Workspace,
    model: str,
    n: int,
    rng: np.random.Generator,
    *,
    errors: float = 0.005,
    positive: float = 0.2,
    north_positive: float | None = None,
    kind: str = "prediction",
    ids: list[str] | None = None,
    follow: list[tuple[str, str, float]] | None = None,
    tensors: bool = False,
) -> list[tuple[str, str, float]]:
    """``n`` logged answers of ``model`` for production: the request id, label and score."""
    info = get_model(ws, model)
    answered = []
    pending = []
    for i in range(n):
        region = REGIONS[i % 3]
        request_id = ids[i] if ids is not None else secrets.token_hex(16)
        rate = north_positive if region == "north" and north_positive is not None else positive
        label = "1" if rng.random() < rate else "0"
        if follow is not None:  # the other model's answer, every tenth the other way
            label = follow[i][1] if i % 10 else {"0": "1", "1": "0"}[follow[i][1]]
        score = float(rng.uniform(0.5, 1.0) if label == "1" else rng.uniform(0.0, 0.5))
        failed = rng.random() < errors
        outputs: Any = (
            None if failed else [{"label": label, "probabilities": {"0": 1 - score, "1": score}}]
        )
        if tensors and not failed:  # an Open Inference answer: probabilities in class order
            outputs = [
                {"name": "label", "datatype": "BYTES", "shape": [1], "data": [label]},
                {"name": "probabilities", "shape": [1, 2], "data": [1 - score, score]},
            ]
        pending.append(
            log.record(
                kind=kind,
                request_id=request_id,
                model=info.name,
                version=info.package_sha256[:12],
                route="/v2/models/{name}/infer" if tensors else "/v1/predict",
                status=503 if failed else 200,
                latency_ms=float(rng.gamma(2.0, 5.0)),
                inputs=None if kind == "shadow" else [{"region": region, "age": 40 + i % 30}],
                outputs=outputs,
                deployment="production",
            )
        )
        if not failed:
            answered.append((request_id, label, score))
    for done in pending:
        assert done is not None
        done.result(timeout=30)
    return answered


def _feedback(log: PredictionLog, labels: dict[str, str], field: str = "label") -> None:
    for request_id, label in labels.items():
        done = log.record(
            kind="feedback",
            request_id=request_id,
            model="logistic-1",
            version="x",
            route="/v1/feedback",
            status=202,
            latency_ms=0.1,
            outputs={field: label},
            deployment="production",
        )
        assert done is not None
        done.result(timeout=30)


def _check(analysis: Any, metric: str, slice: str | None = None) -> Any:
    (found,) = [c for c in analysis.checks if c.metric == metric and c.slice == slice]
    return found


def test_a_canary_with_five_percent_errors_fails_a_two_percent_guard(
    live: Workspace, logs: PredictionLog, rng: np.random.Generator
) -> None:
    _plan(live)
    canary_at_first_step(live)
    _traffic(logs, live, "logistic-1", 2000, rng, errors=0.01)
    _traffic(logs, live, "logistic-2", 600, rng, errors=0.05)
    analysis = analyse_rollout(live, "production")
    check = _check(analysis, "error_rate")
    assert check.verdict == "fail" and analysis.verdict == "fail"
    assert check.test == "one-sided binomial test vs threshold" and check.p_value < 0.05
    assert 0.03 < check.candidate < 0.07 and check.n_candidate == 600
    assert "violates <= 0.02, significantly" in check.reason
    assert analysis.requests == {"stable": 2000, "candidate": 600}
    assert analysis.to_dict()["pass"] == 0
    assert analysis.to_dict()["candidate_error_rate"] == pytest.approx(check.candidate)


def test_a_canary_whose_slice_positive_rate_doubled_fails_on_that_slice(
    live: Workspace, logs: PredictionLog, rng: np.random.Generator
) -> None:
    _plan(live)
    canary_at_first_step(live)
    _traffic(logs, live, "logistic-1", 3000, rng, positive=0.2)
    _traffic(logs, live, "logistic-2", 1500, rng, positive=0.2, north_positive=0.4)
    analysis = analyse_rollout(live, "production")
    # Same errors, same latency, and overall the shift hides under the threshold ...
    assert _check(analysis, "error_rate").verdict == "pass"
    assert _check(analysis, "latency_p99_ms").verdict == "pass"
    assert _check(analysis, "positive_rate_ratio").verdict == "pass"
    # ... but within the slice it does not.
    sliced = _check(analysis, "positive_rate_ratio", "region")
    assert (sliced.verdict, sliced.group) == ("fail", "region=north")
    assert sliced.candidate > 1.5 and sliced.p_value < 0.05
    assert sliced.test.startswith("two-proportion z-test")
    assert {g.group: g.verdict for g in sliced.groups} == {
        "region=east": "pass",
        "region=north": "fail",
        "region=south": "pass",
    }
    assert analysis.verdict == "fail"
    assert analysis.to_dict()["checks"][3]["groups"][1]["group"] == "region=north"


def test_a_healthy_canary_passes(
    live: Workspace, logs: PredictionLog, rng: np.random.Generator
) -> None:
    _plan(live)
    canary_at_first_step(live)
    _traffic(logs, live, "logistic-1", 2000, rng)
    _traffic(logs, live, "logistic-2", 450, rng)
    _traffic(logs, live, "logistic-2", 450, rng, tensors=True)
    analysis = analyse_rollout(live, "production")
    candidate = analysis.arms["candidate"]
    assert candidate["requests"] == 900 and candidate["records"] == 900 - candidate["errors"]
    assert candidate["null_rate"] == 0  # the Open Inference answers read as well
    assert [c.verdict for c in analysis.checks] == ["pass"] * 6, analysis.reason
    assert analysis.verdict == "pass" and analysis.to_dict()["pass"] == 1
    psi = _check(analysis, "prediction_psi")
    assert psi.test == "none: PSI is a distance" and psi.p_value is None and psi.candidate < 0.1
    shares = analysis.arms["candidate"]["class_shares"]
    assert set(shares) == {"0", "1"} and abs(shares["1"] - 0.2) < 0.05


def test_too_few_requests_is_inconclusive(
    live: Workspace, logs: PredictionLog, rng: np.random.Generator
) -> None:
    _plan(live)
    canary_at_first_step(live)
    _traffic(logs, live, "logistic-1", 500, rng)
    _traffic(logs, live, "logistic-2", 40, rng, errors=0.0)
    analysis = analyse_rollout(live, "production")
    assert analysis.verdict == "inconclusive" and analysis.min_requests == 100
    assert analysis.checks[0].metric == "requests"
    assert "the candidate has 40 of the 100 requests needed" in analysis.reason
    assert _check(analysis, "error_rate").verdict == "inconclusive"


def test_no_guards_and_enough_requests_pass_and_an_empty_window_is_inconclusive(
    live: Workspace, logs: PredictionLog, rng: np.random.Generator
) -> None:
    canary_at_first_step(live)
    empty = analyse_rollout(live, "production")
    assert empty.verdict == "inconclusive" and empty.requests == {"stable": 0, "candidate": 0}
    _traffic(logs, live, "logistic-1", 150, rng)
    _traffic(logs, live, "logistic-2", 150, rng)
    assert analyse_rollout(live, "production").verdict == "pass"


def test_a_metric_without_labels_fails_as_missing_then_equals_the_engine(
    live: Workspace, logs: PredictionLog, rng: np.random.Generator
) -> None:
    _plan(live, "  guards:\n    - {metric: roc_auc, op: '>=', threshold: 0.6}")
    canary_at_first_step(live)
    _traffic(logs, live, "logistic-1", 300, rng)
    answered = _traffic(logs, live, "logistic-2", 300, rng)
    missing = _check(analyse_rollout(live, "production"), "roc_auc")
    assert missing.verdict == "fail" and missing.candidate is None
    assert "no feedback label on the candidate's answers yet" in missing.reason
    assert "a missing metric counts as a failure" in missing.reason
    # Labels arrive for some of the candidate's answers: the engine's ROC AUC on those rows.
    truth = {rid: ("1" if rng.random() < score else "0") for rid, _, score in answered[:200]}
    _feedback(logs, truth)
    check = _check(analyse_rollout(live, "production"), "roc_auc")
    rows = answered[:200]
    scores = np.asarray([[1 - s, s] for _, _, s in rows])
    expected = slice_metrics(
        Predictions.from_arrays(
            np.asarray([truth[r] for r, _, _ in rows], dtype=object),
            np.asarray([label for _, label, _ in rows], dtype=object),
            kind="binary",
            proba=scores,
            classes=["0", "1"],
            positive="1",
        ),
        metrics=["roc_auc"],
    ).overall["roc_auc"]
    assert check.candidate == pytest.approx(expected.value, abs=1e-6)
    assert check.verdict == "pass" and check.test.startswith("one-sided bootstrap")


def test_a_shadow_agreement_and_psi(
    live: Workspace, logs: PredictionLog, rng: np.random.Generator
) -> None:
    _plan(
        live,
        "  guards:\n    - {metric: agreement, op: '>=', threshold: 0.8}\n"
        "    - {metric: prediction_psi, op: '<', threshold: 0.25}\n"
        "  shadow_min_requests: 100",
    )
    start_rollout(live, "logistic-2", strategy="shadow", by="Ana")
    move_rollout(live, "production", "start", actor_kind="controller", by="controller")
    stable = _traffic(logs, live, "logistic-1", 400, rng, errors=0.0)
    ids = [rid for rid, _, _ in stable]
    shadow = _traffic(
        logs, live, "logistic-2", 400, rng, errors=0.0, kind="shadow", ids=ids, follow=stable
    )
    same = np.mean([a[1] == b[1] for a, b in zip(stable, shadow, strict=True)])
    assert same == pytest.approx(0.9)
    analysis = analyse_rollout(live, "production")
    agreement = _check(analysis, "agreement")
    assert agreement.candidate == pytest.approx(same)
    assert analysis.shift["agreement"] == pytest.approx(same) and analysis.shift["paired"] == 400
    assert agreement.verdict == "pass" and analysis.verdict == "pass"
    assert analysis.to_dict()["prediction_psi"] == pytest.approx(
        _check(analysis, "prediction_psi").candidate
    )


def test_agreement_on_a_canary_is_missing_with_a_reason(
    live: Workspace, logs: PredictionLog, rng: np.random.Generator
) -> None:
    _plan(live, "  guards:\n    - {metric: agreement, op: '>=', threshold: 0.8}")
    canary_at_first_step(live)
    _traffic(logs, live, "logistic-1", 150, rng)
    _traffic(logs, live, "logistic-2", 150, rng)
    check = _check(analyse_rollout(live, "production"), "agreement")
    assert check.verdict == "fail" and "a canary's arms answer different ones" in check.reason


def test_human_agreement_in_assist_mode(
    live: Workspace, logs: PredictionLog, rng: np.random.Generator
) -> None:
    _plan(live, "  guards:\n    - {metric: human_agreement, op: '>=', threshold: 0.9}")
    canary_at_first_step(live)
    _traffic(logs, live, "logistic-1", 150, rng)
    answered = _traffic(logs, live, "logistic-2", 150, rng, errors=0.0)
    flipped = {"0": "1", "1": "0"}
    _feedback(
        logs,
        {rid: label if i % 2 else flipped[label] for i, (rid, label, _) in enumerate(answered)},
        field="decision",
    )
    check = _check(analyse_rollout(live, "production"), "human_agreement")
    assert check.candidate == pytest.approx(0.5, abs=0.01)
    assert check.verdict == "fail" and check.p_value < 0.05


def test_an_unknown_metric_fails_naming_the_known_ones(
    live: Workspace, logs: PredictionLog, rng: np.random.Generator
) -> None:
    _plan(live, "  guards:\n    - {metric: happiness, op: '>=', threshold: 0.8}")
    canary_at_first_step(live)
    _traffic(logs, live, "logistic-1", 150, rng)
    _traffic(logs, live, "logistic-2", 150, rng)
    check = _check(analyse_rollout(live, "production"), "happiness")
    assert check.verdict == "fail"
    assert "knows no guard metric 'happiness'" in check.reason and "error_rate" in check.reason


def test_the_window_must_end_after_it_starts(live: Workspace) -> None:
    from mlplan.errors import ParameterError

    canary_at_first_step(live)
    status = analyse_rollout(live, "production")
    with pytest.raises(ParameterError, match="the window must end after it starts"):
        analyse_rollout(live, "production", since=status.until, until=status.since)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(VERDICTS), max_size=8))
def test_the_verdict_combination_rule(verdicts: list[Any]) -> None:
    combined = combine_verdicts(verdicts)
    if "fail" in verdicts:
        assert combined == "fail"
    elif "inconclusive" in verdicts:
        assert combined == "inconclusive"
    else:
        assert combined == "pass"


def _arm(errors: int, requests: int, rng: np.random.Generator) -> Any:
    from mlplan.rollout._measures import ArmSample

    failed = np.zeros(requests, dtype=bool)
    failed[:errors] = True
    answered = int((~failed).sum())
    labels = rng.choice(["0", "1"], answered).astype(object)
    score = np.where(labels == "1", 0.8, 0.2)
    return ArmSample(
        "m@1",
        "0" * 12,
        np.asarray([str(i) for i in range(requests)], dtype=object),
        failed,
        rng.gamma(2.0, 5.0, requests),
        0,
        np.flatnonzero(~failed),
        labels,
        np.stack([1 - score, score], axis=1),
        None,
        np.full(answered, None, dtype=object),
        np.full(answered, None, dtype=object),
    )


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 300),
    st.integers(0, 60),
    st.integers(0, 60),
    st.lists(
        st.tuples(
            st.sampled_from(["error_rate", "null_rate", "class_share_shift", "f1"]),
            st.sampled_from(["<", "<=", ">", ">="]),
            st.floats(0, 1),
        ),
        max_size=4,
    ),
    st.integers(0, 2**32 - 1),
)
def test_an_analysis_combines_its_checks_by_the_rule(
    requests: int, stable_errors: int, errors: int, guards: list[Any], seed: int
) -> None:
    import datetime as dt

    from mlplan.plan import Guard
    from mlplan.rollout._analysis import analyse

    rng = np.random.default_rng(seed)
    candidate = _arm(min(errors, requests), requests, rng)
    stable = _arm(min(stable_errors, 300), 300, rng)
    now = dt.datetime.now(dt.UTC)
    analysis = analyse(
        stable,
        candidate,
        [Guard(metric=m, op=op, threshold=t) for m, op, t in guards],
        deployment="production",
        rollout_id=1,
        strategy="canary",
        state="progressing",
        since=now - dt.timedelta(minutes=5),
        until=now,
        min_requests=50,
        kind="binary",
        classes=["0", "1"],
        positive="1",
    )
    verdicts = [c.verdict for c in analysis.checks]
    assert analysis.verdict == combine_verdicts(verdicts)
    for check in analysis.checks[1:]:
        if requests < 50:
            assert check.verdict == "inconclusive"
        elif check.metric == "f1":  # no labels: missing, a failure
            assert check.verdict == "fail" and "missing" in check.reason
        elif check.candidate is not None:  # the point value satisfies the guard: a pass
            value, threshold = check.candidate, check.threshold
            satisfied = {
                "<": value < threshold,
                "<=": value <= threshold,
                ">": value > threshold,
                ">=": value >= threshold,
            }[check.op]
            assert (check.verdict == "pass") == satisfied, check
    strict_json = analysis.to_dict()
    assert strict_json["pass"] == int(analysis.verdict == "pass")


def test_a_slice_on_a_column_the_log_lacks_fails_as_missing(
    live: Workspace, logs: PredictionLog, rng: np.random.Generator
) -> None:
    edit_plan(live, "slices: []", "slices: [{name: sex, columns: [gender]}]")
    edit_plan(
        live,
        "  guards: []",
        "  guards: [{metric: error_rate, op: '<=', threshold: 0.1, slice: sex}]",
    )
    canary_at_first_step(live)
    _traffic(logs, live, "logistic-1", 150, rng)
    _traffic(logs, live, "logistic-2", 150, rng)
    check = _check(analyse_rollout(live, "production"), "error_rate", "sex")
    assert check.verdict == "fail" and "not among the logged inputs" in check.reason


def test_a_regression_is_judged_on_its_values_and_the_engine_mae(
    rng: np.random.Generator,
) -> None:
    import datetime as dt

    from mlplan.plan import Guard
    from mlplan.rollout._analysis import analyse
    from mlplan.rollout._measures import ArmSample

    def arm(n: int, shift: float, noise: float) -> tuple[ArmSample, np.ndarray, np.ndarray]:
        truth = rng.normal(50, 10, n)
        predicted = truth + shift + rng.normal(0, noise, n)
        predicted[0] = np.nan  # one null answer
        labelled = np.full(n, None, dtype=object)
        labelled[: n // 2] = truth[: n // 2]
        sample = ArmSample(
            "r@1",
            "0" * 12,
            np.asarray([str(i) for i in range(n)], dtype=object),
            np.zeros(n, dtype=bool),
            rng.gamma(2.0, 5.0, n),
            0,
            np.arange(n),
            np.full(n, None, dtype=object),
            None,
            predicted,
            labelled,
            np.full(n, None, dtype=object),
        )
        return sample, truth[1 : n // 2], predicted[1 : n // 2]

    stable, _, _ = arm(400, 0.0, 2.0)
    candidate, truth, predicted = arm(400, 8.0, 2.0)
    now = dt.datetime.now(dt.UTC)
    analysis = analyse(
        stable,
        candidate,
        [
            Guard(metric="mae", op="<=", threshold=20),
            Guard(metric="mae_drop", op="<=", threshold=1.0),
            Guard(metric="prediction_psi", op="<", threshold=0.25),
            Guard(metric="null_rate", op="<=", threshold=0.01),
            Guard(metric="class_share_shift", op="<=", threshold=0.1),
        ],
        deployment="production",
        rollout_id=1,
        strategy="canary",
        state="progressing",
        since=now - dt.timedelta(minutes=5),
        until=now,
        min_requests=100,
        kind="regression",
    )
    by_metric = {c.metric: c for c in analysis.checks}
    engine = slice_metrics(
        Predictions.from_arrays(truth, predicted, kind="regression"), metrics=["mae"]
    )
    assert by_metric["mae"].candidate == pytest.approx(engine.overall["mae"].value)
    assert by_metric["mae"].verdict == "pass"
    # Lower is better for MAE: its drop is how much the candidate's grew, here about 8.
    drop = by_metric["mae_drop"]
    assert drop.verdict == "fail" and 5 < drop.candidate < 10 and drop.p_value < 0.05
    assert by_metric["prediction_psi"].verdict == "fail"  # the values moved by 8
    assert by_metric["null_rate"].candidate == pytest.approx(1 / 400)
    shares = by_metric["class_share_shift"]
    assert shares.verdict == "fail" and "a regression has no classes" in shares.reason
    assert analysis.arms["candidate"]["mean_value"] == pytest.approx(np.nanmean(candidate.values))
    assert analysis.arms["candidate"]["metrics"]["mae"] == pytest.approx(
        engine.overall["mae"].value
    )


def test_after_a_blue_green_switch_the_candidate_alone_is_judged(
    live: Workspace, logs: PredictionLog, rng: np.random.Generator
) -> None:
    _plan(live, "  guards:\n    - {metric: error_rate, op: '<=', threshold: 0.02}")
    start_rollout(live, "logistic-2", strategy="blue-green", by="Ana")
    for action in ("start", "advance"):
        move_rollout(live, "production", action, actor_kind="controller", by="controller")
    _traffic(logs, live, "logistic-2", 150, rng, errors=0.0)
    analysis = analyse_rollout(live, "production")
    assert analysis.requests == {"stable": 0, "candidate": 150}
    assert analysis.verdict == "pass", analysis.reason


def test_at_full_traffic_the_candidate_is_compared_with_the_stables_answers_before(
    live: Workspace, logs: PredictionLog, rng: np.random.Generator
) -> None:
    _plan(live, "  guards:\n    - {metric: prediction_psi, op: '<=', threshold: 0.25}")
    stable = get_deployment(live).model_ref
    _traffic(logs, live, stable, 200, rng, errors=0.0)  # before the rollout began
    start_rollout(live, "logistic-2", strategy="blue-green", by="Ana")
    for action in ("start", "advance"):
        move_rollout(live, "production", action, actor_kind="controller", by="controller")
    _traffic(logs, live, "logistic-2", 150, rng, errors=0.0)
    analysis = analyse_rollout(live, "production")
    # The stable answers nobody after the switch: its answers before are the reference.
    assert analysis.requests == {"stable": 200, "candidate": 150}
    psi = _check(analysis, "prediction_psi")
    assert psi.verdict == "pass" and psi.candidate is not None and psi.candidate < 0.25
    assert analysis.verdict == "pass", analysis.reason


def test_a_log_older_than_deployments_holds_no_request_of_one(live: Workspace) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    old = live.root / ".mlplan" / "predictions" / "logistic-1" / "w-old"
    old.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "kind": ["prediction"],
                "request_id": ["r"],
                "time": ["2026-01-01T00:00:00+00:00"],
                "model": ["logistic-1"],
                "version": ["x"],
                "status": [200],
            }
        ),
        old / "seg-000000.parquet",
    )
    canary_at_first_step(live)
    analysis = analyse_rollout(live, "production")
    assert analysis.requests == {"stable": 0, "candidate": 0}
    assert analysis.verdict == "inconclusive"
