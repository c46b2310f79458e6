"""The guards in front of the routes: a web page must not drive the server through its
visitor's browser (a text/plain or form POST needs no preflight; a rebound DNS name makes a
foreign Host)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.conftest import edit_plan
from tests.serving.conftest import RECORD, bearer, sample, server_process, started, stop

from mlplan.serving import ServeConfig, create_app
from mlplan.workspace import Workspace

BODY = json.dumps({"records": [RECORD]}).encode()
JSON = {"Content-Type": "application/json"}
TENSORS = {
    "inputs": [
        {"name": "age", "shape": [1, 1], "datatype": "FP32", "data": [40]},
        {"name": "charges", "shape": [1, 1], "datatype": "FP32", "data": [61.5]},
        {"name": "gender", "shape": [1, 1], "datatype": "BYTES", "data": ["female"]},
        {"name": "region", "shape": [1, 1], "datatype": "BYTES", "data": ["north"]},
    ]
}


@pytest.fixture
def keyless(served: Workspace) -> Iterator[TestClient]:
    """A server without keys (auth: none), on loopback."""
    edit_plan(served, "auth: api_key", "auth: none")
    app = create_app(ServeConfig(root=str(served.root), model="logistic-1", key_refresh_seconds=0))
    with started(app) as client:
        yield client


CONTENT_TYPES = [  # (Content-Type, the status a POST to /v1 with it gets)
    ("application/json", 200),
    ("application/json; charset=utf-8", 200),
    ("Application/JSON", 200),
    ("text/plain", 415),  # what fetch() sends a string as, with no preflight
    ("text/plain;charset=UTF-8", 415),
    ("application/x-www-form-urlencoded", 415),  # an HTML form
    ("multipart/form-data; boundary=x", 415),
    ("application/jsonx", 415),
    (None, 415),
]

BINARY = {"Inference-Header-Content-Length": "9"}
OPEN_INFERENCE = [  # (headers, whether the Open Inference route refuses them with 415)
    (JSON, False),
    ({}, False),  # Triton's client sends no Content-Type
    ({"Content-Type": "application/octet-stream"} | BINARY, False),  # the binary extension
    ({"Content-Type": "application/octet-stream"}, True),
    ({"Content-Type": "text/plain"}, True),
    ({"Content-Type": "text/plain"} | BINARY, True),
]


def test_every_post_must_say_its_body_is_json(keyless: TestClient) -> None:
    # Tables in one test: one app for all of them.
    for content_type, status in CONTENT_TYPES:
        headers = {} if content_type is None else {"Content-Type": content_type}
        answer = keyless.post("/v1/predict", content=BODY, headers=headers)
        assert answer.status_code == status, (content_type, answer.text)
        if status == 415:
            assert answer.json() == {
                "detail": "send the body as JSON, with Content-Type: application/json"
            }
            assert answer.headers["Accept"] == "application/json"
    feedback = json.dumps({"request_id": "r-1", "label": "1"}).encode()
    plain = {"Content-Type": "text/plain"}
    assert keyless.post("/v1/feedback", content=feedback, headers=plain).status_code == 415
    for headers, refused in OPEN_INFERENCE:
        answer = keyless.post(
            "/v2/models/logistic-1/infer", content=json.dumps(TENSORS).encode(), headers=headers
        )
        assert (answer.status_code == 415) == refused, (headers, answer.text)
        if not refused and "Inference-Header-Content-Length" not in headers:
            assert answer.status_code == 200, (headers, answer.text)
    text = keyless.get("/metrics").text
    assert sample(text, "mlplan_refusals_total", reason="unsupported_media_type") == 10


ORIGINS = [  # (Origin, the status a keyless server answers)
    ("http://evil.example", 403),
    ("https://127.0.0.1.evil.example", 403),  # a DNS name that reads like loopback
    ("null", 403),  # a sandboxed frame or a file
    ("http://localhost:3000", 200),  # a page served on this machine
    ("http://127.0.0.1:8888", 200),
    ("http://[::1]:8000", 200),
]


def test_a_keyless_server_refuses_pages_of_other_sites(keyless: TestClient) -> None:
    for origin, status in ORIGINS:
        answer = keyless.post("/v1/predict", content=BODY, headers=JSON | {"Origin": origin})
        assert answer.status_code == status, (origin, answer.text)
        if status == 403:
            assert "a web page of another site may not call it" in answer.json()["detail"]
    text = keyless.get("/metrics").text
    assert sample(text, "mlplan_refusals_total", reason="foreign_origin") == 3


HOSTS = [  # (Host, the status a server bound to loopback answers)
    ("evil.example", 421),
    ("evil.example:8000", 421),
    ("127.0.0.1.nip.io", 421),  # resolves to 127.0.0.1, but a page can rebind such a name
    ("localhost.evil.example", 421),
    ("", 421),
    ("localhost", 200),
    ("LOCALHOST:8000", 200),
    ("127.0.0.1:8000", 200),
    ("127.0.0.2", 200),
    ("[::1]:8000", 200),
]


def test_a_loopback_server_answers_only_requests_for_this_machine(keyless: TestClient) -> None:
    for host, status in HOSTS:
        answer = keyless.post("/v1/predict", content=BODY, headers=JSON | {"Host": host})
        assert answer.status_code == status, (host, answer.text)
        if status == 421:
            detail = answer.json()["detail"]
            assert "answers only requests for localhost, 127.0.0.1 or [::1]" in detail
            # every route: a rebound page must not read the metrics or the model either
            assert keyless.get("/metrics", headers={"Host": host}).status_code == 421
    text = keyless.get("/metrics").text
    assert sample(text, "mlplan_refusals_total", reason="bad_host") == 10
    assert sample(text, "mlplan_http_requests_total", route="other", status="421") == 10


def test_a_second_host_or_origin_is_not_taken_in_place_of_the_first(
    keyless: TestClient,
) -> None:
    # HTTP allows one Host (and one Origin): with two, the checks once read only the last.
    for first, second in (("evil.example", "127.0.0.1"), ("127.0.0.1", "evil.example")):
        hosts = [("Host", first), ("Host", second), ("Content-Type", "application/json")]
        assert keyless.post("/v1/predict", content=BODY, headers=hosts).status_code == 421
    origins = [("Origin", "http://evil.example"), ("Origin", "http://localhost")]
    answer = keyless.post("/v1/predict", content=BODY, headers=[*origins, *JSON.items()])
    assert answer.status_code == 403
    assert keyless.post("/v1/predict", content=BODY, headers=JSON).status_code == 200


def test_with_keys_the_host_is_checked_but_not_the_origin(
    served: Workspace, client: TestClient, tokens: dict[str, str]
) -> None:
    # A page cannot send a key to another site without a preflight, which is never answered.
    page = bearer(tokens["predict"]) | JSON | {"Origin": "http://evil.example"}
    assert client.post("/v1/predict", content=BODY, headers=page).status_code == 200
    rebound = bearer(tokens["predict"]) | JSON | {"Host": "evil.example"}
    assert client.post("/v1/predict", content=BODY, headers=rebound).status_code == 421
    exposed = create_app(
        ServeConfig(
            root=str(served.root), model="logistic-1", host="0.0.0.0", key_refresh_seconds=0
        )
    )
    with started(exposed) as public:  # reached by any name off loopback; its keys guard it
        assert public.post("/v1/predict", content=BODY, headers=rebound).status_code == 200


@pytest.mark.slow
def test_a_browser_page_cannot_drive_a_keyless_server(served: Workspace) -> None:
    """A real server without keys: a page's text/plain POST (no preflight) with its foreign
    Origin, and a request under a rebound DNS name, are refused; a JSON client is served."""
    edit_plan(served, "auth: api_key", "auth: none")
    with server_process(served.root, "logistic-1") as (process, base):
        with httpx.Client(base_url=base, timeout=10) as client:
            page: dict[str, Any] = {
                "Content-Type": "text/plain;charset=UTF-8",
                "Origin": "http://evil.example",
            }
            assert client.post("/v1/predict", content=BODY, headers=page).status_code == 403
            del page["Origin"]  # the same request from the same origin, rebound
            rebound = page | {"Host": f"evil.example:{base.rsplit(':', 1)[1]}"}
            assert client.post("/v1/predict", content=BODY, headers=rebound).status_code == 421
            rebound["Content-Type"] = "application/json"
            assert client.post("/v1/predict", content=BODY, headers=rebound).status_code == 421
            assert client.post("/v1/predict", content=BODY, headers=page).status_code == 415
            answer = client.post("/v1/predict", json={"records": [RECORD]})
            assert answer.status_code == 200 and answer.json()["predictions"]
            text = client.get("/metrics").text
        stop(process)
    assert sample(text, "mlplan_refusals_total", reason="foreign_origin") == 1
    assert sample(text, "mlplan_refusals_total", reason="bad_host") == 2
    assert sample(text, "mlplan_refusals_total", reason="unsupported_media_type") == 1
