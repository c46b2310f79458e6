"""The rollout commands end to end: deploy starts a rollout, rollout status, history and
the moves, with --json parsed strictly, and bad input refused with a non-zero exit."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import ok

from mlplan.workspace import Workspace, get_deployment


def _json(result: Any) -> Any:
    return json.loads(ok(result).stdout)


def _said(result: Any) -> str:
    return " ".join(result.stderr.split())


def test_a_canary_from_deploy_to_promotion(live: Workspace, cli: Any) -> None:
    stable = get_deployment(live).model_ref
    started = _json(cli("deploy", "logistic-2", "--strategy", "canary", "--by", "Ana", "--json"))
    assert started["model_ref"] == stable  # the deployment keeps its model
    rollout = started["rollout"]
    assert (rollout["strategy"], rollout["state"], rollout["weight"]) == ("canary", "pending", 0)
    assert rollout["stable_weight"] == 100 and rollout["serving"] == stable
    (status,) = _json(cli("rollout", "status", "--json"))
    assert (status["deployment"], status["state"], status["events"]) == (
        "production",
        "pending",
        [],
    )
    table = " ".join(ok(cli("rollout", "status", "production")).stdout.split())
    assert "canary" in table and "pending" in table and "100% / 0%" in table
    paused = _json(cli("rollout", "pause", "production", "--by", "Ana", "--note", "wait", "--json"))
    assert paused["state"] == "paused"
    said = " ".join(ok(cli("rollout", "resume", "production", "--by", "Ana")).stdout.split())
    assert f"canary rollout of {rollout['candidate']} is progressing; {stable} serves" in said
    promoted = _json(cli("rollout", "promote", "production", "--by", "Priya", "--json"))
    assert (promoted["state"], promoted["weight"], promoted["serving"]) == (
        "promoted",
        100,
        rollout["candidate"],
    )
    assert _json(cli("deployments", "--json"))[0]["model_ref"] == rollout["candidate"]
    history = _json(cli("rollout", "history", "production", "--json"))
    assert [r["strategy"] for r in history] == ["replace", "canary"]
    assert [(e["action"], e["actor"], e["reason"]) for e in history[1]["events"]] == [
        ("begin", "Ana", None),
        ("pause", "Ana", "wait"),
        ("resume", "Ana", None),
        ("promote", "Priya", None),
    ]
    text = " ".join(ok(cli("rollout", "history", "production")).stdout.split())
    assert "pause" in text and "Ana (person)" in text and "wait" in text
    assert f"replace of {stable} (the first model): promoted" in text
    assert f"canary of {rollout['candidate']} over {stable}: promoted, started by Ana" in text


def test_abort_and_rollback_keep_the_stable_model(live: Workspace, cli: Any) -> None:
    stable = get_deployment(live).model_ref
    ok(cli("deploy", "logistic-2", "--strategy", "blue-green"))
    aborted = _json(cli("rollout", "abort", "production", "--by", "Ana", "--json"))
    assert (aborted["state"], aborted["strategy"], aborted["serving"]) == (
        "aborted",
        "blue_green",
        stable,
    )
    started = ok(cli("deploy", "logistic-2"))  # the plan's default for scenario new: canary
    # The rollout waits for a controller: the command says how to run one, or move it.
    said = " ".join(started.stdout.split())
    assert "canary rollout (the plan's strategy)" in said and f"{stable} keeps serving" in said
    assert "keeps serving until a controller moves it: mlplan rollout run production" in said
    assert "mlplan rollout promote production --by NAME" in said
    ok(cli("rollout", "pause", "production", "--by", "Ana"))
    back = _json(cli("rollout", "rollback", "production", "--by", "Ana", "--json"))
    assert (back["strategy"], back["state"], back["serving"]) == ("canary", "rolled_back", stable)
    assert _json(cli("deployments", "--json"))[0]["model_ref"] == stable
    replaced = _json(cli("deploy", "logistic-2", "--strategy", "replace", "--json"))
    assert replaced["rollout"]["state"] == "promoted"
    assert replaced["model_ref"] == replaced["rollout"]["candidate"] != stable


def test_bad_input_is_refused_with_a_clear_error(live: Workspace, cli: Any) -> None:
    unknown = cli("rollout", "pause", "staging", "--by", "Ana")
    assert unknown.exit_code == 1
    assert "no deployment 'staging'; deployments: production" in _said(unknown)
    assert cli("rollout", "history", "staging").exit_code == 1
    none = cli("rollout", "promote", "production", "--by", "Ana")
    assert none.exit_code == 1 and "'production' has no active rollout" in _said(none)
    uncleared = cli("deploy", "logistic-3", "--strategy", "canary")
    assert uncleared.exit_code == 1
    assert "logistic-3@1 has not been evaluated" in _said(uncleared)
    strategy = cli("deploy", "logistic-2", "--strategy", "linear")
    assert strategy.exit_code == 2 and "--strategy" in _said(strategy)
    first = cli("deploy", "logistic-2", "--name", "staging", "--strategy", "canary")
    assert first.exit_code == 1
    assert "--name staging --strategy replace" in _said(first)
    ok(cli("deploy", "logistic-2", "--strategy", "canary"))
    twice = cli("deploy", "logistic-2", "--strategy", "shadow")
    assert twice.exit_code == 1 and "has an active canary rollout" in _said(twice)
    illegal = cli("rollout", "resume", "production", "--by", "Ana")
    assert illegal.exit_code == 1
    assert "is pending: cannot resume; a person may: pause, promote, abort" in _said(illegal)
    no_by = cli("rollout", "abort", "production")
    assert no_by.exit_code == 2 and "--by" in _said(no_by)
    assert _json(cli("rollout", "status", "production", "--json"))[0]["state"] == "pending"


def test_rollout_status_shows_the_analysis_of_the_step(live: Workspace, cli: Any) -> None:
    from tests.conftest import edit_plan

    from mlplan.modeling import get_model
    from mlplan.rollout import move_rollout
    from mlplan.serving import PredictionLog

    edit_plan(live, "  guards: []", "  guards: [{metric: error_rate, op: '<=', threshold: 0.02}]")
    ok(cli("deploy", "logistic-2", "--strategy", "canary", "--by", "Ana"))
    for action in ("start", "advance"):
        move_rollout(live, "production", action, actor_kind="controller", by="controller")
    with PredictionLog(live.root / ".mlplan" / "predictions" / "logistic-1") as log:
        for model, n, failing in (("logistic-1", 300, 0), ("logistic-2", 200, 20)):
            info = get_model(live, model)
            for i in range(n):
                done = log.record(
                    kind="prediction",
                    request_id=f"{model}-{i}",
                    model=info.name,
                    version=info.package_sha256[:12],
                    route="/v1/predict",
                    status=500 if i < failing else 200,
                    latency_ms=5.0 + i % 7,
                    inputs=[{"region": "north"}],
                    outputs=None
                    if i < failing
                    else [{"label": "0", "probabilities": {"0": 0.9, "1": 0.1}}],
                    deployment="production",
                )
                assert done is not None
                done.result(timeout=30)
        for i in range(50, 150):  # labels arrive for 100 of the candidate's answers
            done = log.record(
                kind="feedback",
                request_id=f"logistic-2-{i}",
                model="logistic-1",
                version="x",
                route="/v1/feedback",
                status=202,
                latency_ms=0.1,
                outputs={"label": str(i % 2)},
                deployment="production",
            )
            assert done is not None
            done.result(timeout=30)
    (status,) = _json(cli("rollout", "status", "production", "--json"))
    assert status["state"] == "progressing" and status["weight"] == 5  # the fields kept
    analysis = status["analysis"]
    assert (analysis["verdict"], analysis["pass"]) == ("fail", 0)
    assert analysis["requests"] == {"stable": 300, "candidate": 200}
    assert analysis["candidate_error_rate"] == 0.1
    (guard,) = [c for c in analysis["checks"] if c["metric"] == "error_rate"]
    assert guard["verdict"] == "fail" and guard["test"] == "one-sided binomial test vs threshold"
    text = " ".join(ok(cli("rollout", "status", "production")).stdout.split())
    assert "analysis of" in text and "fail" in text and "10.00%" in text
    assert "error_rate" in text and "<= 0.02" in text
    candidate = analysis["arms"]["candidate"]
    assert candidate["labelled"] == 100 and candidate["metrics"]["accuracy"] == 0.5
    assert "100 labelled: roc_auc 0.500" in text  # the plan's metric, once labels arrive
