"""Traffic follows the rollout: a server of a deployment reads its rollout from the store and
splits, mirrors or switches requests as it moves, each answer naming the model that gave it."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.serving.conftest import RECORD, bearer, started

from mlplan.modeling import get_model
from mlplan.rollout import move_rollout, rollout_routes, start_rollout
from mlplan.serving import ServeConfig, create_app, create_key, log_folder, query_log
from mlplan.workspace import Workspace, get_deployment


def _until(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    """Poll ``condition`` until it holds (the server reads the store every 50 ms here)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def token(live: Workspace) -> str:
    return create_key(live, "app", roles=["predict", "admin"]).token


def _routing(client: TestClient) -> Any:
    return client.app.state.mlplan.routing  # type: ignore[attr-defined]


def _predict(client: TestClient, token: str, user: str | None = None) -> dict[str, Any]:
    headers = bearer(token) | ({"X-User-Id": user} if user else {})
    answer = client.post("/v1/predict", json={"records": [RECORD]}, headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _sticky(ws: Workspace) -> None:
    """Route the canary by the X-User-Id header (the plan's rollout.sticky)."""
    text = ws.plan_path.read_text()
    assert "  sticky: null" in text  # the template's
    ws.plan_path.write_text(text.replace("  sticky: null", "  sticky: header:X-User-Id", 1))


def test_a_canary_splits_by_a_sticky_key_and_each_answer_names_its_model(
    live: Workspace, token: str
) -> None:
    _sticky(live)
    live = Workspace(live.root)
    start_rollout(live, "logistic-2", strategy="canary", by="Ana")
    config = ServeConfig(
        root=str(live.root),
        model=get_deployment(live).model_ref,
        deployment="production",
        key_refresh_seconds=0,
        route_refresh_seconds=0.05,
    )
    candidate = get_model(live, "logistic-2").package_sha256[:12]
    with started(create_app(config, rollout_routes())) as client:
        # Pending: the candidate is loaded, warm, and answers nobody yet.
        assert _routing(client).candidate is not None
        users = [f"user-{i}" for i in range(160)]
        assert {_predict(client, token, u)["model"]["name"] for u in users[:50]} == {"logistic-1"}
        move_rollout(live, "production", "start", by="controller", actor_kind="controller")
        on_candidate: dict[float, set[str]] = {}
        for weight in (5.0, 25.0, 50.0):
            move_rollout(live, "production", "advance", by="controller", actor_kind="controller")
            _until(lambda w=weight: _routing(client).weight == w, f"weight {weight}")  # type: ignore[misc]
            answers = {u: _predict(client, token, u)["model"] for u in users}
            on_candidate[weight] = {u for u, m in answers.items() if m["name"] == "logistic-2"}
            # Every answer names the exact version that produced it.
            assert all(
                m["version"] == candidate for m in answers.values() if m["name"] == "logistic-2"
            )
            share = len(on_candidate[weight]) / len(users) * 100
            assert abs(share - weight) < 10, (weight, share)
            # Sticky: a user stays where they were routed.
            again = {
                u for u in users if _predict(client, token, u)["model"]["name"] == "logistic-2"
            }
            assert again == on_candidate[weight]
        # A caller on the candidate at 5 % stays there at 25 % and 50 %.
        assert on_candidate[5.0] <= on_candidate[25.0] <= on_candidate[50.0]
        move_rollout(live, "production", "rollback", by="Ana", note="seen enough")
        _until(lambda: _routing(client).candidate is None, "the candidate unloaded")
        assert {_predict(client, token, u)["model"]["name"] for u in users} == {"logistic-1"}
    # The log names the deployment and, per record, the model that answered.
    rows = query_log(
        log_folder(live),
        "SELECT model, version, count(*) AS n FROM predictions WHERE kind = 'prediction' "
        "AND deployment = 'production' GROUP BY ALL ORDER BY model",
    ).to_pylist()
    assert [r["model"] for r in rows] == ["logistic-1", "logistic-2"]
    assert rows[1]["version"] == candidate


def test_a_promotion_moves_every_request_and_the_old_model_is_let_go(
    live: Workspace, server: TestClient, token: str
) -> None:
    start_rollout(live, "logistic-2", strategy="blue-green", by="Ana")
    _until(lambda: _routing(server).candidate is not None, "the candidate loaded")
    blue = _routing(server).stable
    # The switch: every request to green at once; blue stays loaded for a rollback.
    move_rollout(live, "production", "start", by="controller", actor_kind="controller")
    move_rollout(live, "production", "advance", by="controller", actor_kind="controller")
    _until(lambda: _routing(server).weight == 100, "the switch")
    assert {_predict(server, token)["model"]["name"] for _ in range(20)} == {"logistic-2"}
    assert _routing(server).stable is blue
    move_rollout(live, "production", "promote", by="Ana")
    _until(lambda: _routing(server).candidate is None, "the promotion")
    assert _routing(server).stable.ref.startswith("logistic-2@")
    assert {_predict(server, token)["model"]["name"] for _ in range(20)} == {"logistic-2"}
    # The model the deployment held is let go; the server answers under either name.
    assert server.get("/v2/models/logistic-2/ready").status_code == 200
    assert server.get("/v2/models/production/ready").status_code == 200


def test_a_preview_answers_with_the_candidate_for_an_admin_only(
    live: Workspace, server: TestClient, token: str
) -> None:
    none = server.post("/v1/preview", json={"records": [RECORD]}, headers=bearer(token))
    assert none.status_code == 409 and "no candidate" in none.json()["detail"]
    start_rollout(live, "logistic-2", strategy="blue-green", by="Ana")
    _until(lambda: _routing(server).candidate is not None, "the candidate loaded")
    answer = server.post("/v1/preview", json={"records": [RECORD]}, headers=bearer(token))
    assert answer.status_code == 200 and answer.json()["model"]["name"] == "logistic-2"
    # Clients still get blue; a predict-only key may not preview.
    assert _predict(server, token)["model"]["name"] == "logistic-1"
    plain = create_key(live, "client", roles=["predict"]).token
    refused = server.post("/v1/preview", json={"records": [RECORD]}, headers=bearer(plain))
    assert refused.status_code == 403


def _shadow_rows(ws: Workspace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = query_log(
        log_folder(ws),
        "SELECT kind, request_id, model, status, error, outputs FROM predictions "
        "WHERE kind IN ('prediction', 'shadow') ORDER BY kind, request_id",
    ).to_pylist()
    return rows


def test_a_shadow_scores_every_request_off_the_path_and_pairs_its_outputs(
    live: Workspace, server: TestClient, token: str
) -> None:
    start_rollout(live, "logistic-2", strategy="shadow", by="Ana")
    move_rollout(live, "production", "start", by="controller", actor_kind="controller")
    _until(lambda: _routing(server).mode == "shadow", "the shadow")
    answered = [_predict(server, token) for _ in range(30)]
    assert {a["model"]["name"] for a in answered} == {"logistic-1"}  # clients see stable only
    ids = {a["request_id"] for a in answered}
    _until(
        lambda: len([r for r in _shadow_rows(live) if r["kind"] == "shadow"]) == 30,
        "30 shadow records",
    )
    rows = _shadow_rows(live)
    shadows = {r["request_id"]: r for r in rows if r["kind"] == "shadow"}
    assert set(shadows) == ids
    assert {r["model"] for r in shadows.values()} == {"logistic-2"}
    assert {r["status"] for r in shadows.values()} == {200}
    assert all(json.loads(r["outputs"])[0]["label"] in ("0", "1") for r in shadows.values())
    # Paused, it mirrors nothing more.
    move_rollout(live, "production", "pause", by="Ana")
    _until(lambda: _routing(server).mode == "single", "the pause")
    _predict(server, token)
    assert len([r for r in _shadow_rows(live) if r["kind"] == "shadow"]) == 30


def test_a_shadow_that_raises_or_hangs_never_reaches_the_clients(
    live: Workspace, server: TestClient, token: str
) -> None:
    start_rollout(live, "logistic-2", strategy="shadow", by="Ana")
    move_rollout(live, "production", "start", by="controller", actor_kind="controller")
    _until(lambda: _routing(server).mode == "shadow", "the shadow")
    shadow = _routing(server).candidate

    def raises(feeds: Any) -> Any:
        raise RuntimeError("the candidate broke")

    shadow.batcher._run = raises  # a fault injected into the real shadow's batcher
    assert all(_predict(server, token)["model"]["name"] == "logistic-1" for _ in range(20))
    _until(
        lambda: len([r for r in _shadow_rows(live) if r["kind"] == "shadow"]) == 20,
        "20 failed shadow records",
    )
    failed = [r for r in _shadow_rows(live) if r["kind"] == "shadow"]
    assert {r["status"] for r in failed} == {500}
    assert all("the candidate broke" in r["error"] for r in failed)
    # A shadow that never answers: clients are answered all the same, and mirrors past the
    # bound are dropped, not queued without end.
    release = threading.Event()

    def hangs(feeds: Any) -> Any:
        release.wait(30)
        raise RuntimeError("released")

    shadow.batcher._run = hangs
    try:
        statuses = Counter(
            server.post(
                "/v1/predict", json={"records": [RECORD]}, headers=bearer(token)
            ).status_code
            for _ in range(300)
        )
        assert statuses == Counter({200: 300})
        metrics = server.get("/metrics", headers=bearer(token)).text
        assert 'mlplan_shadow_requests_total{outcome="dropped"}' in metrics
        dropped = next(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith('mlplan_shadow_requests_total{outcome="dropped"}')
        )
        assert dropped > 0
    finally:
        release.set()


@pytest.mark.slow
def test_every_worker_of_a_real_server_follows_the_switch_and_the_rollback(
    live: Workspace, token: str
) -> None:
    import httpx
    from tests.serving.conftest import server_process

    start_rollout(live, "logistic-2", strategy="blue-green", by="Ana")
    move_rollout(live, "production", "start", by="controller", actor_kind="controller")
    with (
        server_process(
            live.root, "--deployment", "production", workers=2, ready_text="logistic-1 ready"
        ) as (_, url),
        httpx.Client(base_url=url, headers=bearer(token)) as http,
    ):

        def models(n: int = 40) -> set[str]:
            # A new connection each time: the kernel spreads them over both workers.
            return {
                httpx.post(
                    f"{url}/v1/predict", json={"records": [RECORD]}, headers=bearer(token)
                ).json()["model"]["name"]
                for _ in range(n)
            }

        assert models() == {"logistic-1"}
        move_rollout(live, "production", "advance", by="controller", actor_kind="controller")
        _until(lambda: models() == {"logistic-2"}, "every worker switched", seconds=20)
        move_rollout(live, "production", "rollback", by="Ana", note="instant")
        _until(lambda: models() == {"logistic-1"}, "every worker rolled back", seconds=20)
        assert http.get("/v2/health/ready").status_code == 200
