"""The rollout routes of the server (``/v1/rollouts``): the commands' moves over HTTP,
behind the admin role, each recorded with the API key it came with."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.serving.conftest import bearer, server_process, started

from mlplan.rollout import rollout_history, rollout_routes, start_rollout
from mlplan.serving import ROLES, ServeConfig, create_app, create_key, route_roles
from mlplan.workspace import Workspace, get_deployment


@pytest.fixture
def canary(live: Workspace) -> Workspace:
    """``live`` with a pending canary of logistic-2 on production (logistic-1 serves)."""
    start_rollout(live, "logistic-2", strategy="canary", by="Ana")
    return live


@pytest.fixture
def tokens(canary: Workspace) -> dict[str, str]:
    """One key per role, each named after its role."""
    return {role: create_key(canary, f"{role}-bot", roles=[role]).token for role in ROLES}


@pytest.fixture
def admin(canary: Workspace) -> Iterator[TestClient]:
    """The server with the rollout routes, under a test client."""
    config = ServeConfig(root=str(canary.root), model="logistic-1", key_refresh_seconds=0)
    with started(create_app(config, rollout_routes())) as client:
        yield client


def test_every_rollout_route_needs_the_admin_role(
    admin: TestClient, canary: Workspace, tokens: dict[str, str]
) -> None:
    declared = {
        (method, route.path)
        for route in admin.app.routes  # type: ignore[attr-defined]
        for method in getattr(route, "methods", set()) - {"HEAD"}
    }
    roles = route_roles(rollout_routes())
    assert declared == set(roles)
    ours = {k: v for k, v in roles.items() if k[1].startswith("/v1/rollouts")}
    assert len(ours) == 10 and set(ours.values()) == {"admin"}
    for method, path in ours:
        url = path.replace("{name}", "production")
        assert admin.request(method, url, json={}).status_code == 401
        for role in ("predict", "feedback"):
            answer = admin.request(method, url, headers=bearer(tokens[role]), json={})
            assert answer.status_code == 403, (method, path, role)
            assert answer.json() == {"detail": "this key lacks the 'admin' role"}
    # Nothing moved.
    assert [e.action for e in rollout_history(canary, "production")[-1].events] == ["begin"]


def test_an_admin_promotes_a_canary_and_the_history_names_the_key(
    admin: TestClient, canary: Workspace, tokens: dict[str, str]
) -> None:
    key_id = tokens["admin"].split("_")[1]
    headers = bearer(tokens["admin"])
    (status,) = admin.get("/v1/rollouts/production", headers=headers).json()
    candidate = status["candidate"]
    assert (status["strategy"], status["state"]) == ("canary", "pending")
    assert candidate.startswith("logistic-2@") and status["serving"] != candidate
    answer = admin.post(
        "/v1/rollouts/production/promote", headers=headers, json={"note": "looks good"}
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["state"], answer.json()["serving"]) == ("promoted", candidate)
    assert get_deployment(canary).model_ref == candidate
    history = admin.get("/v1/rollouts/production/history", headers=headers).json()
    last = history[-1]["events"][-1]
    assert (last["action"], last["to_state"], last["reason"]) == (
        "promote",
        "promoted",
        "looks good",
    )
    assert last["actor"] == f"admin-bot (admin API, key {key_id})"  # by: the key's name
    assert tokens["admin"] not in str(history)


def test_an_illegal_move_is_409_and_an_unknown_deployment_404(
    admin: TestClient, tokens: dict[str, str]
) -> None:
    headers = bearer(tokens["admin"])
    illegal = admin.post("/v1/rollouts/production/resume", headers=headers, json={"by": "Ana"})
    assert illegal.status_code == 409
    assert "resume" in illegal.json()["detail"] and "pending" in illegal.json()["detail"]
    unknown = admin.post("/v1/rollouts/staging/pause", headers=headers, json={"by": "Ana"})
    assert unknown.status_code == 404
    assert unknown.json()["detail"].startswith("no deployment 'staging'; deployments: production")
    assert admin.get("/v1/rollouts/staging/history", headers=headers).status_code == 404
    bad = admin.post("/v1/rollouts/production/pause", headers=headers, json={"who": "Ana"})
    assert bad.status_code == 422 and "'who'" in bad.json()["detail"]
    # A move must say its body is JSON, as every POST (a web page cannot send that
    # unasked); the body may be empty.
    assert admin.post("/v1/rollouts/production/abort", headers=headers).status_code == 415
    as_json = {**headers, "Content-Type": "application/json"}
    aborted = admin.post("/v1/rollouts/production/abort", headers=as_json)
    assert aborted.status_code == 200 and aborted.json()["state"] == "aborted"
    none_active = admin.post("/v1/rollouts/production/pause", headers=headers, json={})
    assert none_active.status_code == 409
    assert "has no active rollout" in none_active.json()["detail"]


@pytest.mark.slow
def test_mlplan_serve_serves_the_rollout_routes_in_its_workers(
    canary: Workspace, tokens: dict[str, str]
) -> None:
    with server_process(canary.root, "logistic-1", workers=2) as (_, url):
        headers = bearer(tokens["admin"])
        paused = httpx.post(f"{url}/v1/rollouts/production/pause", headers=headers, json={})
        assert paused.status_code == 200 and paused.json()["state"] == "paused"
        for _ in range(4):  # whichever worker answers, it has the routes
            (status,) = httpx.get(f"{url}/v1/rollouts/production", headers=headers).json()
            assert status["state"] == "paused"
        refused = httpx.get(f"{url}/v1/rollouts", headers=bearer(tokens["predict"]))
        assert refused.status_code == 403


def test_the_analysis_route_is_a_web_metric(
    admin: TestClient, canary: Workspace, tokens: dict[str, str]
) -> None:
    answer = admin.get("/v1/rollouts/production/analysis", headers=bearer(tokens["admin"]))
    assert answer.status_code == 200
    found = answer.json()
    # No traffic yet: too few requests to judge, so not a pass.
    assert (found["verdict"], found["pass"], found["candidate_requests"]) == ("inconclusive", 0, 0)
    assert found["candidate_error_rate"] is None and found["checks"][0]["metric"] == "requests"
    assert found["candidate_model"].startswith("logistic-2@") and found["strategy"] == "canary"
    missing = admin.get("/v1/rollouts/staging/analysis", headers=bearer(tokens["admin"]))
    assert missing.status_code == 404 and "no deployment 'staging'" in missing.json()["detail"]


def test_an_admin_starts_a_rollout_as_mlplan_deploy_does(
    admin: TestClient, canary: Workspace, tokens: dict[str, str]
) -> None:
    headers = bearer(tokens["admin"])
    busy = admin.post("/v1/rollouts/production", headers=headers, json={"model": "logistic-2"})
    assert busy.status_code == 409 and "has an active canary rollout" in busy.json()["detail"]
    assert admin.post("/v1/rollouts/production/abort", headers=headers, json={}).status_code == 200
    for body, status, said in (
        ({}, 422, "naming the model"),
        ({"model": "logistic-2", "weight": 5}, 422, "unknown field 'weight'"),
        ({"model": "logistic-2", "strategy": "yolo"}, 422, "yolo"),
        ({"model": "nope-1"}, 404, "nope-1"),
        ({"model": "logistic-3"}, 409, "logistic-3"),  # trained, never evaluated: not cleared
    ):
        refused = admin.post("/v1/rollouts/production", headers=headers, json=body)
        assert (refused.status_code, said in refused.json()["detail"]) == (status, True), body
    started = admin.post(
        "/v1/rollouts/production",
        headers=headers,
        json={"model": "logistic-2", "strategy": "blue-green", "note": "from the pipeline"},
    )
    assert started.status_code == 201, started.text
    rollout = started.json()
    assert (rollout["strategy"], rollout["state"]) == ("blue_green", "pending")
    key_id = tokens["admin"].split("_")[1]
    (begin,) = rollout_history(canary, "production")[-1].events
    assert begin.actor == f"admin-bot (admin API, key {key_id})"
    assert begin.reason == "from the pipeline"
