"""Refusals stay small: answers cap the problems they name, the log keeps a summary, and each
caller may log only so many refusals (issue 18, item 3)."""

from __future__ import annotations

import json
import re

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from tests.serving.conftest import RECORD, bearer, log_bytes, server_process, stop

from mlplan.serving._log import query_log
from mlplan.serving._refusals import MAX_ERRORS, RefusalBudget, capped, summary
from mlplan.workspace import Workspace

EMPTY_RECORDS = b'{"records":[' + b",".join([b"{}"] * 10_000) + b"]}"
"""The body that once got a 9.47 MB answer: 30 KB of 10,000 empty records."""


def _problems(n: int) -> list[dict[str, object]]:
    return [{"loc": ["body", "records", i, "age"], "type": "missing", "msg": "x"} for i in range(n)]


def test_an_answer_names_the_first_problems_and_counts_the_rest() -> None:
    assert capped(_problems(3)) == {"detail": _problems(3)}
    assert capped(_problems(MAX_ERRORS)) == {"detail": _problems(MAX_ERRORS)}
    body = capped(_problems(40_000))
    assert body["detail"] == _problems(MAX_ERRORS) and body["more_errors"] == 40_000 - MAX_ERRORS
    # The caller may pass only the problems shown, with how many there were.
    assert capped(_problems(MAX_ERRORS), total=250)["more_errors"] == 150


def test_the_log_keeps_counts_by_kind_and_the_first_few() -> None:
    kinds = ["missing"] * 30_000 + ["float_type"] * 10_000
    kept = summary(kinds, _problems(MAX_ERRORS))
    assert kept == {
        "errors": 40_000,
        "by_type": {"missing": 30_000, "float_type": 10_000},
        "first": _problems(3),
    }
    assert len(orjson.dumps(kept)) < 400


def test_each_caller_has_its_own_budget_in_records_and_bytes() -> None:
    now = [0.0]
    budget = RefusalBudget(
        records_per_second=1, burst_records=3, bytes_per_second=100, burst_bytes=1000,
        clock=lambda: now[0],
    )  # fmt: skip
    assert [budget.allow("key:a", 100) for _ in range(4)] == [True, True, True, False]
    assert budget.allow("key:b", 100)  # another caller is not held back by the first
    now[0] = 1.0  # one second: one more record
    assert budget.allow("key:a", 100) and not budget.allow("key:a", 100)
    assert not budget.allow("key:c", 1001)  # bigger than the whole byte budget
    now[0] = 100.0
    spent = sum(budget.allow("key:d", 400) for _ in range(5))
    assert spent == 2  # 1000 bytes hold two records of 400, though three records are allowed


def test_the_callers_remembered_are_bounded() -> None:
    budget = RefusalBudget(burst_records=1, max_callers=2, clock=lambda: 0.0)
    assert budget.allow("a", 1) and not budget.allow("a", 1)
    assert budget.allow("b", 1) and budget.allow("c", 1)  # "a" is forgotten, the oldest
    assert len(budget._buckets) == 2 and budget.allow("a", 1)


@pytest.mark.slow
def test_hostile_bodies_get_small_answers_and_small_log_records(
    served: Workspace, tokens: dict[str, str]
) -> None:
    headers = bearer(tokens["predict"]) | {"Content-Type": "application/json"}
    sent = answered = 0
    with server_process(served.root, "logistic-1") as (process, base):
        with httpx.Client(base_url=base, timeout=30) as client:
            one = client.post("/v1/predict", content=EMPTY_RECORDS, headers=headers)
            assert one.status_code == 422
            body = one.json()
            assert len(body["detail"]) == MAX_ERRORS and body["more_errors"] >= 10_000
            assert body["detail"][0]["loc"][:3] == ["body", "records", 0]
            assert len(one.content) < 20_000  # 9.47 MB before
            # A loop of hostile bodies, each amplifying: empty records, wrong types, and
            # feedback with thousands of unknown fields.
            wrong = orjson.dumps({"records": [RECORD | {"age": "old"}] * 2_000})
            extra = orjson.dumps({"request_id": "r"} | {f"f{i}": 1 for i in range(3_000)})
            bodies = [("/v1/predict", EMPTY_RECORDS), ("/v1/predict", wrong)]
            bodies.append(("/v1/feedback", extra))
            feedback = bearer(tokens["feedback"]) | {"Content-Type": "application/json"}
            for i in range(60):
                route, content = bodies[i % 3]
                answer = client.post(
                    route, content=content, headers=feedback if "feedback" in route else headers
                )
                assert answer.status_code == 422 and "more_errors" in answer.json()
                sent += len(content)
                answered += len(answer.content)
            metrics = client.get("/metrics", headers=bearer(tokens["admin"])).text
        stop(process)
    assert answered < 2 * sent and answered < sent / 3
    assert log_bytes(served.root) < sent / 10
    assert "mlplan_log_refusals_unlogged_total" in metrics
    folder = served.root / ".mlplan" / "predictions" / "logistic-1"
    logged = query_log(folder, "SELECT error FROM predictions WHERE status = 422").to_pylist()
    first = json.loads(logged[0]["error"])
    assert first["errors"] == MAX_ERRORS + body["more_errors"]
    assert sum(first["by_type"].values()) == first["errors"] and len(first["first"]) == 3


@pytest.mark.slow
def test_a_caller_sending_many_small_refusals_is_held_to_its_log_budget(
    served: Workspace, tokens: dict[str, str]
) -> None:
    headers = bearer(tokens["predict"]) | {"Content-Type": "application/json"}
    with server_process(served.root, "logistic-1") as (process, base):
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(300):
                assert client.post("/v1/predict", content=b'{"records":[{}]}', headers=headers)
            metrics = client.get("/metrics", headers=bearer(tokens["admin"])).text
        stop(process)
    folder = served.root / ".mlplan" / "predictions" / "logistic-1"
    logged = query_log(folder, "SELECT count(*) AS n FROM predictions").to_pylist()[0]["n"]
    unlogged = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("mlplan_log_refusals_unlogged_total")
    )
    assert logged + unlogged == 300
    # The default budget: a burst of 20 refusals, then 2 a second (a few seconds here).
    assert 20 <= logged < 100
    assert log_bytes(served.root) < 40_000


def test_open_inference_and_feedback_refusals_are_capped_in_their_own_shape(
    client: TestClient, tokens: dict[str, str]
) -> None:
    infer = client.post(
        "/v2/models/logistic-1/infer",
        json={"inputs": [7] * 5_000},
        headers=bearer(tokens["predict"]),
    )
    assert infer.status_code == 422 and len(infer.content) < 10_000
    assert set(infer.json()) == {"error"}  # the Open Inference Protocol's: one message
    message = infer.json()["error"]
    assert message.startswith("inputs[0]: expected a tensor with a name; inputs[1]: ")
    assert message.count("expected a tensor with a name") == MAX_ERRORS
    more = re.fullmatch(r".*; and ([\d,]+) more", message)
    assert more is not None and MAX_ERRORS + int(more[1].replace(",", "")) >= 5_000
    feedback = client.post(
        "/v1/feedback",
        json={"request_id": "r"} | {f"f{i}": 1 for i in range(500)},
        headers=bearer(tokens["feedback"]),
    )
    # 500 unknown fields, no label, value nor events, and a request id never issued.
    assert feedback.status_code == 422 and feedback.json()["more_errors"] == 502 - MAX_ERRORS
    few = client.post("/v1/feedback", json={"request_id": 5}, headers=bearer(tokens["feedback"]))
    assert set(few.json()) == {"detail"}  # a short list is answered as before


def test_an_open_inference_refusal_is_logged_as_a_summary_as_a_records_one_is(
    client: TestClient, served: Workspace, tokens: dict[str, str]
) -> None:
    predict = bearer(tokens["predict"])
    infer = client.post("/v2/models/logistic-1/infer", json={"inputs": [7] * 500}, headers=predict)
    records = client.post("/v1/predict", json={"records": [{}] * 3}, headers=predict)
    assert infer.status_code == records.status_code == 422
    folder = served.root / ".mlplan" / "predictions" / "logistic-1"
    logged = query_log(
        folder, "SELECT request_id, route, error FROM predictions WHERE status = 422"
    ).to_pylist()
    by_route = {row["route"]: row for row in logged}
    assert set(by_route) == {"/v2/models/{name}/infer", "/v1/predict"}
    assert by_route["/v2/models/{name}/infer"]["request_id"] == infer.headers["X-Request-Id"]
    assert json.loads(by_route["/v2/models/{name}/infer"]["error"])["errors"] >= 500
