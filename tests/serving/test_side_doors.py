"""Personal data through side doors: a string the client chose that is not the model's (an
unknown field's name, a model name in the URL, an Open Inference request id, feedback's ids,
labels and event names) is never echoed in an error nor kept verbatim in the prediction log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from tests.serving.conftest import RECORD, bearer, server_process, stop

from mlplan.serving import query_log
from mlplan.serving._ids import RequestIds, keyed_hash
from mlplan.serving._log import compact_segments, log_key
from mlplan.workspace import Workspace

EMAIL = "ada.lovelace@example.com"
PHONE = "+44 20 7946 0958"
PLANTED = (EMAIL, PHONE, "lovelace", "7946 0958")  # never in hex ids nor hashes

TENSORS = [
    {"name": "age", "shape": [1, 1], "datatype": "FP32", "data": [40]},
    {"name": "charges", "shape": [1, 1], "datatype": "FP32", "data": [61.5]},
    {"name": "gender", "shape": [1, 1], "datatype": "BYTES", "data": ["female"]},
    {"name": "region", "shape": [1, 1], "datatype": "BYTES", "data": ["north"]},
]


def _folder(ws: Workspace) -> Path:
    return ws.root / ".mlplan" / "predictions" / "logistic-1"


def _whole_log(folder: Path) -> str:
    """Every file of the log as text: segments, Parquet (raw, and its rows decoded), key."""
    parts = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            parts.append(path.read_bytes().decode("latin-1"))
            if path.suffix == ".parquet":
                parts.append(json.dumps(pq.read_table(path).to_pylist()))
    return "\n".join(parts)


def _leaks(text: str) -> list[str]:
    return [p for p in PLANTED if p in text]


def test_an_unknown_field_is_named_by_its_place_length_and_keyed_hash(
    client: TestClient, tokens: dict[str, str], served: Workspace
) -> None:
    answer = client.post(
        "/v1/predict",
        json={"records": [RECORD, RECORD | {EMAIL: 1, PHONE: 2}]},
        headers=bearer(tokens["predict"]),
    )
    assert answer.status_code == 422 and not _leaks(answer.text)
    first, second = answer.json()["detail"]
    key = log_key(_folder(served))
    assert first["loc"] == ["body", "records", 1, "<unknown field 4>"]
    assert first["type"] == "extra_forbidden"
    assert first["msg"] == (
        "unknown field (key 4 of the object, from 0: 24 characters, "
        f"keyed hash {keyed_hash(key, EMAIL)[5:13]}); "
        "the model takes: age, charges, gender, region"
    )
    assert second["loc"][-1] == "<unknown field 5>"
    logged = query_log(_folder(served), "SELECT status, error FROM predictions").to_pylist()
    assert [r["status"] for r in logged] == [422]  # the refusal is logged, its summary safe
    assert json.loads(logged[0]["error"])["first"] == [first, second]
    assert not _leaks(_whole_log(_folder(served)))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/v2/models/{EMAIL}"),
        ("GET", f"/v2/models/{EMAIL}/ready"),
        ("POST", f"/v2/models/{EMAIL}/infer"),
    ],
)
def test_a_model_name_from_the_url_is_not_echoed(
    client: TestClient, tokens: dict[str, str], method: str, path: str
) -> None:
    answer = client.request(
        method, path, json={"inputs": TENSORS}, headers=bearer(tokens["predict"])
    )
    assert answer.status_code == 404 and not _leaks(answer.text)
    assert "no model with that name is served here" in answer.text
    assert "this server serves 'logistic-1'" in answer.text


def test_an_open_inference_id_is_returned_to_its_caller_and_logged_as_its_keyed_hash(
    client: TestClient, tokens: dict[str, str], served: Workspace
) -> None:
    body: dict[str, Any] = {
        "id": EMAIL,
        "parameters": {"contact": PHONE},
        "inputs": TENSORS,
        "outputs": [{"name": "label", "parameters": {"note": EMAIL}}],
    }
    answer = client.post(
        "/v2/models/logistic-1/infer", json=body, headers=bearer(tokens["predict"])
    )
    assert answer.status_code == 200
    assert answer.json()["id"] == EMAIL  # the protocol returns the caller's id to the caller
    issued = answer.headers["X-Request-Id"]  # the server's own id, which feedback takes
    assert RequestIds(log_key(_folder(served))).issued(issued)
    logged = query_log(_folder(served), "SELECT request_id, client_id FROM predictions")
    assert logged.to_pylist() == [
        {"request_id": issued, "client_id": keyed_hash(log_key(_folder(served)), EMAIL)}
    ]
    assert not _leaks(_whole_log(_folder(served)))
    plain = client.post(
        "/v2/models/logistic-1/infer", json={"inputs": TENSORS}, headers=bearer(tokens["predict"])
    )
    assert plain.json()["id"] == plain.headers["X-Request-Id"]  # no id given: the server's


def _feedback(client: TestClient, tokens: dict[str, str], body: Any) -> httpx.Response:
    return client.post("/v1/feedback", json=body, headers=bearer(tokens["feedback"]))


REFUSED = [
    pytest.param({"request_id": EMAIL, "label": "1"}, "request_id", id="foreign-request-id"),
    pytest.param({"label": EMAIL}, "label", id="label-no-class"),
    pytest.param({"label": 1.0}, "label", id="label-float-for-a-class"),
    pytest.param({"events": [{"name": PHONE}]}, "events", id="event-name-phone"),
    pytest.param({"events": [{"name": EMAIL, "value": 3}]}, "events", id="event-name-email"),
    pytest.param({"label": "1", EMAIL: PHONE}, "<unknown field 2>", id="unknown-field"),
]


@pytest.mark.parametrize(("body", "where"), REFUSED)
def test_feedback_that_could_not_come_from_this_server_is_refused_without_an_echo(
    client: TestClient, tokens: dict[str, str], served: Workspace, body: Any, where: str
) -> None:
    issued = client.post(
        "/v1/predict", json={"records": [RECORD]}, headers=bearer(tokens["predict"])
    ).json()["request_id"]
    answer = _feedback(client, tokens, {"request_id": issued} | body)
    assert answer.status_code == 422 and not _leaks(answer.text)
    assert [problem["loc"][1] for problem in answer.json()["detail"]] == [where]
    kinds = query_log(_folder(served), "SELECT kind FROM predictions").column(0).to_pylist()
    assert kinds == ["prediction"]  # nothing of the feedback reached the log
    assert not _leaks(_whole_log(_folder(served)))


def test_feedback_names_the_problem_and_what_to_send(
    client: TestClient, tokens: dict[str, str]
) -> None:
    answer = _feedback(client, tokens, {"request_id": "r-17", "label": "maybe"})
    assert answer.json()["detail"] == [
        {
            "loc": ["body", "request_id"],
            "type": "unknown_request_id",
            "msg": "not a request id this server issued; send the request_id a prediction "
            "was answered with (or its X-Request-Id header: 36 hex digits)",
        },
        {
            "loc": ["body", "label"],
            "type": "label",
            "msg": "expected one of the model's classes: 0, 1",
        },
    ]


def test_feedback_takes_an_id_another_worker_issued_and_keeps_the_label_as_a_class(
    client: TestClient, tokens: dict[str, str], served: Workspace
) -> None:
    elsewhere = RequestIds(log_key(_folder(served))).issue()  # another worker, or an earlier run
    answer = _feedback(
        client,
        tokens,
        {"request_id": elsewhere, "label": 1, "value": 12.5, "events": [{"name": "renewed"}]},
    )
    assert answer.status_code == 202, answer.text
    logged = query_log(_folder(served), "SELECT request_id, outputs FROM predictions").to_pylist()
    assert logged[0]["request_id"] == elsewhere
    assert json.loads(logged[0]["outputs"]) == {
        "label": "1",
        "value": 12.5,
        "events": [{"name": "renewed"}],
    }


@pytest.mark.slow
def test_planted_personal_data_reaches_no_answer_and_no_log_file(
    served: Workspace, tokens: dict[str, str]
) -> None:
    """An e-mail and a phone number planted in every side door of real server processes,
    across a restart: no answer but the Open Inference one (which returns its own id to the
    caller) and no file of the log (segments and Parquet) holds either."""
    predict, feedback = bearer(tokens["predict"]), bearer(tokens["feedback"])
    answers: list[httpx.Response] = []
    with server_process(served.root, "logistic-1") as (process, base):
        with httpx.Client(base_url=base, timeout=30) as client:
            issued = client.post("/v1/predict", json={"records": [RECORD]}, headers=predict)
            refused = client.post(
                "/v1/predict", json={"records": [RECORD | {EMAIL: PHONE}]}, headers=predict
            )
            oip = client.post(
                "/v2/models/logistic-1/infer",
                json={"id": EMAIL, "parameters": {"contact": PHONE}, "inputs": TENSORS},
                headers=predict,
            )
            answers += [
                issued,
                refused,
                client.post(
                    "/v2/models/logistic-1/infer",
                    json={"inputs": [t | {"name": EMAIL} for t in TENSORS]},
                    headers=predict,
                ),
                client.get(f"/v2/models/{EMAIL}", headers=predict),
                client.post(f"/v2/models/{PHONE}/infer", json={"inputs": TENSORS}, headers=predict),
            ]
        stop(process)
    request_id = issued.json()["request_id"]
    compact_segments(_folder(served))  # what the first process wrote, now Parquet
    # The next start knows the ids the first one issued.
    with server_process(served.root, "logistic-1") as (process, base):
        with httpx.Client(base_url=base, timeout=30) as client:
            for body in (
                {"request_id": EMAIL, "label": "1"},
                {"request_id": request_id, "label": EMAIL},
                {"request_id": request_id, "events": [{"name": PHONE}]},
                {"request_id": request_id, "label": "1", EMAIL: 1},
                {"request_id": request_id, "label": "1", "events": [{"name": "renewed"}]},
            ):
                answers.append(client.post("/v1/feedback", json=body, headers=feedback))
        stop(process)
    statuses = [a.status_code for a in answers]
    assert statuses == [200, 422, 422, 404, 404, 422, 422, 422, 422, 202], statuses
    assert oip.status_code == 200 and oip.json()["id"] == EMAIL
    for answer in answers:
        assert not _leaks(answer.text + json.dumps(dict(answer.headers))), answer.text
    folder = _folder(served)
    assert list(folder.rglob("seg-*.parquet")) and list(folder.rglob("seg-*.jsonl"))
    assert not _leaks(_whole_log(folder))
    rows = query_log(folder, "SELECT kind, status, request_id, client_id FROM predictions")
    assert sorted((r["kind"], r["status"]) for r in rows.to_pylist()) == [
        ("feedback", 202),
        ("prediction", 200),
        ("prediction", 200),
        ("prediction", 422),
        ("prediction", 422),  # the Open Inference refusal, a summary as for records
    ]
    key = log_key(folder)
    assert keyed_hash(key, EMAIL) in rows.column("client_id").to_pylist()
    feedback_row = next(r for r in rows.to_pylist() if r["kind"] == "feedback")
    assert feedback_row["request_id"] == request_id
