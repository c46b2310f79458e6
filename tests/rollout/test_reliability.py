"""Rollouts under generated load, judged on what the models answer: a real server app (its
routes, router, micro-batchers and prediction log), the real controller with the real
analysis, and faults injected into the candidate's own batcher — errors, or outputs that
shift on one slice while errors and latency stay the same."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.conftest import customers_table, edit_plan
from tests.serving.conftest import bearer

from mlplan.rollout import Controller, rollout_history, start_rollout
from mlplan.serving import create_key, log_folder, query_log
from mlplan.workspace import Workspace, get_deployment

pytestmark = pytest.mark.slow

_STEPS = (
    "  steps:\n"
    "    - {weight: 5, duration: 30m, min_requests: 100}\n"
    "    - {weight: 25, duration: 1h, min_requests: 100}\n"
    "    - {weight: 50, duration: 1h, min_requests: 100}\n"
    "    - {weight: 100, duration: 1d, min_requests: 100}\n"
)


def _plan(ws: Workspace, steps: str, guards: str, failure_limit: int = 2) -> None:
    edit_plan(ws, _STEPS, steps)
    edit_plan(ws, "  guards: []", f"  guards: {guards}")
    edit_plan(ws, "  interval: 1m", "  interval: 1s")
    edit_plan(ws, "  failure_limit: 1", f"  failure_limit: {failure_limit}")
    edit_plan(ws, "slices: []", "slices: [{name: gender, columns: [gender]}]")


def _records() -> Iterator[dict[str, Any]]:
    """Customers as the app sends them (complete rows), over and over."""
    table = customers_table(rows=400, seed=21).to_pylist()
    rows = [
        {k: r[k] for k in ("gender", "age", "region", "charges")}
        for r in table
        if r["gender"] is not None and r["charges"] is not None
    ]
    return itertools.cycle(rows)


class _Traffic:
    """Requests to a server, the controller ticking between batches of them."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        token = create_key(ws, "load", roles=["predict", "admin"]).token
        self.headers = bearer(token)
        self.records = _records()
        self.statuses: Counter[int] = Counter()
        self.answered_by: Counter[str] = Counter()

    def run(self, client: TestClient, controller: Controller, seconds: float = 90) -> list[str]:
        """Send requests and tick until the rollout ends; the controller's moves."""
        import time

        moves = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for _ in range(40):
                answer = client.post(
                    "/v1/predict", json={"records": [next(self.records)]}, headers=self.headers
                )
                self.statuses[answer.status_code] += 1
                if answer.status_code == 200:
                    model = answer.json()["model"]
                    self.answered_by[f"{model['name']}:{model['version']}"] += 1
            decision = controller.tick()
            if decision.action:
                moves.append(decision.action)
            if decision.action in ("promote", "rollback", "pause"):
                return moves
        from mlplan.rollout import analyse_rollout

        checks = analyse_rollout(self.ws, "production").to_dict()["checks"]
        pytest.fail(f"the rollout did not end in {seconds}s: {moves}; {checks}")


def _candidate_run(client: TestClient, wrap: Callable[[Any], Callable[..., Any]]) -> None:
    """Put a fault into the candidate's batcher once the server has loaded it."""
    import time

    deadline = time.monotonic() + 30
    while client.app.state.mlplan.routing.candidate is None:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the candidate never loaded"
        time.sleep(0.01)
    batcher = client.app.state.mlplan.routing.candidate.batcher  # type: ignore[attr-defined]
    batcher._run = wrap(batcher._run)


def _stable_statuses(ws: Workspace) -> Counter[int]:
    stable = get_deployment(ws).model
    rows = query_log(
        log_folder(ws),
        f"SELECT status FROM predictions WHERE kind = 'prediction' AND model = '{stable}'",
    ).to_pylist()
    return Counter(r["status"] for r in rows)


def test_a_canary_failing_five_percent_against_a_two_percent_guard_is_rolled_back(
    live: Workspace, server: TestClient
) -> None:
    _plan(
        live,
        "  steps:\n    - {weight: 10, duration: 1h, min_requests: 150}\n"
        "    - {weight: 100, duration: 1h, min_requests: 150}\n",
        "[{metric: error_rate, op: '<=', threshold: 0.02}]",
    )
    live = Workspace(live.root)
    start_rollout(live, "logistic-2", strategy="canary", by="Ana")
    calls = itertools.count()

    def fails_one_in_twenty(run: Callable[..., Any]) -> Callable[..., Any]:
        def run_or_fail(feeds: Any) -> Any:
            if next(calls) % 20 == 19:
                raise RuntimeError("the candidate's graph failed")
            return run(feeds)

        return run_or_fail

    _candidate_run(server, fails_one_in_twenty)
    traffic = _Traffic(live)
    moves = traffic.run(server, Controller(live, "production"))
    assert moves[-1] == "rollback", moves
    rollout = rollout_history(live, "production")[-1]
    assert rollout.state == "rolled_back" and rollout.weight == 0
    judged = [e for e in rollout.events if e.figures.get("analysis")]
    # Rolled back at the failure limit (2): one failing analysis recorded, the second rolls
    # back; no step was passed on the way.
    assert [e.action for e in judged][-2:] == ["analysis", "rollback"]
    assert all(e.figures["analysis"] == "fail" for e in judged[-2:])
    assert "advance" not in [e.action for e in rollout.events if e.weight > 10]
    check = next(c for c in judged[-1].figures["report"]["checks"] if c["metric"] == "error_rate")
    assert check["verdict"] == "fail" and check["candidate"] > 0.02 and check["p_value"] < 0.05
    # Not one failed request on the stable path.
    assert set(_stable_statuses(live)) == {200}
    assert traffic.statuses[422] > 0  # the candidate's failures reached only its own callers


def test_a_canary_whose_slice_outputs_shift_is_rolled_back(
    live: Workspace, server: TestClient
) -> None:
    """The case controllers that watch only errors and latency promote: the same graph, no
    errors, the same latency, but women's positive rate halved (this model calls most
    customers positive, so halving is the shift it can show; the analysis tests double
    one)."""
    _plan(
        live,
        "  steps:\n    - {weight: 50, duration: 1h, min_requests: 150}\n"
        "    - {weight: 100, duration: 1h, min_requests: 150}\n",
        "[{metric: error_rate, op: '<=', threshold: 0.02}, "
        "{metric: positive_rate_ratio, op: '>=', threshold: 0.67, slice: gender}]",
    )
    live = Workspace(live.root)
    start_rollout(live, "logistic-2", strategy="canary", by="Ana")
    rng = np.random.default_rng(5)
    flipped: list[int] = []

    def halves_women_positives(run: Callable[..., Any]) -> Callable[..., Any]:
        def shifted(feeds: Any) -> Any:
            labels, proba = run(feeds)
            women = np.asarray(feeds["gender"]).ravel().astype(str) == "female"
            flip = women & (np.asarray(labels).astype(str) == "1")
            flip &= rng.random(len(labels)) < 0.5
            flipped.append(int(flip.sum()))
            return np.where(flip, "0", labels), proba

        return shifted

    _candidate_run(server, halves_women_positives)
    traffic = _Traffic(live)
    moves = traffic.run(server, Controller(live, "production"))
    assert sum(flipped) > 0
    assert moves[-1] == "rollback", moves
    last = rollout_history(live, "production")[-1].events[-1]
    checks = {c["metric"]: c for c in last.figures["report"]["checks"]}
    assert checks["error_rate"]["verdict"] == "pass"
    shifted = checks["positive_rate_ratio"]
    assert shifted["verdict"] == "fail" and shifted["group"] == "gender=female"
    assert set(_stable_statuses(live)) == {200} and set(traffic.statuses) == {200}


def test_a_healthy_canary_is_promoted_on_schedule(live: Workspace, server: TestClient) -> None:
    _plan(
        live,
        # 50 %: a step's 2 s hold enough candidate answers even on a loaded machine.
        "  steps:\n    - {weight: 50, duration: 2s, min_requests: 20}\n"
        "    - {weight: 100, duration: 2s, min_requests: 20}\n",
        "[{metric: error_rate, op: '<=', threshold: 0.02}]",
    )
    live = Workspace(live.root)
    candidate = start_rollout(live, "logistic-2", strategy="canary", by="Ana")[1].candidate
    traffic = _Traffic(live)
    moves = traffic.run(server, Controller(live, "production"))
    assert [m for m in moves if m != "analysis"] == ["advance", "advance", "promote"], moves
    assert get_deployment(live).model_ref == candidate
    events = rollout_history(live, "production")[-1].events
    assert [(e.action, e.weight) for e in events if e.action != "analysis"] == [
        ("begin", 0),
        ("start", 0),
        ("advance", 50),
        ("advance", 100),
        ("promote", 100),
    ]
    promoted = events[-1]
    assert promoted.figures["analysis"] == "pass" and promoted.actor_kind == "controller"
    assert set(traffic.statuses) == {200}
    # Every answer named exactly one of the two versions.
    assert len(traffic.answered_by) == 2


def test_a_blue_green_switch_and_rollback_under_load_fail_no_request(live: Workspace) -> None:
    import threading
    import time

    import httpx
    from tests.serving.conftest import RECORD, server_process

    from mlplan.modeling import get_model
    from mlplan.rollout import move_rollout

    token = create_key(live, "load", roles=["predict"]).token
    stable = get_model(live, get_deployment(live).model_ref)
    green = get_model(live, "logistic-2")
    versions = {
        (stable.name, stable.package_sha256[:12]),
        (green.name, green.package_sha256[:12]),
    }
    start_rollout(live, "logistic-2", strategy="blue-green", by="Ana")
    with server_process(live.root, "--deployment", "production", workers=2) as (_, url):
        stop = threading.Event()
        seen: list[tuple[int, tuple[str, str] | None]] = []
        lock = threading.Lock()

        def load() -> None:
            with httpx.Client(base_url=url, headers=bearer(token), timeout=30) as http:
                while not stop.is_set():
                    answer = http.post("/v1/predict", json={"records": [RECORD]})
                    model = answer.json().get("model") if answer.status_code == 200 else None
                    with lock:
                        seen.append(
                            (
                                answer.status_code,
                                (model["name"], model["version"]) if model else None,
                            )
                        )

        threads = [threading.Thread(target=load) for _ in range(6)]
        for thread in threads:
            thread.start()
        try:

            def answered_by(name: str) -> bool:
                with lock:
                    recent = [m for _, m in seen[-30:]]
                return len(recent) == 30 and all(m is not None and m[0] == name for m in recent)

            def until(condition: Callable[[], bool], what: str) -> None:
                deadline = time.monotonic() + 30
                while not condition():
                    assert time.monotonic() < deadline, what
                    stop.wait(0.05)

            until(lambda: answered_by(stable.name), "blue answers")
            move_rollout(live, "production", "start", by="ctl", actor_kind="controller")
            move_rollout(live, "production", "advance", by="ctl", actor_kind="controller")
            until(lambda: answered_by(green.name), "the switch to green")
            move_rollout(live, "production", "rollback", by="Ana", note="under load")
            until(lambda: answered_by(stable.name), "the rollback to blue")
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    statuses = Counter(status for status, _ in seen)
    assert set(statuses) == {200}, statuses
    # Every answer named exactly one of the two versions, and both answered.
    assert {m for _, m in seen} == versions
