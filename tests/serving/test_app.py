from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import edit_plan
from tests.serving.conftest import RECORD, bearer, started

from mlplan.errors import NotFoundError, UsageError
from mlplan.modeling import get_model
from mlplan.serving import (
    ROUTE_ROLES,
    ExtraRoute,
    RouteCall,
    ServeConfig,
    create_app,
    create_key,
    list_keys,
    revoke_key,
    route_roles,
)
from mlplan.serving._metrics import REFUSALS
from mlplan.store import ApiKeyRecord
from mlplan.workspace import Workspace

JSON = {"Content-Type": "application/json"}


def test_predict_returns_labels_probabilities_and_a_request_id(
    client: TestClient, tokens: dict[str, str], served: Workspace
) -> None:
    answer = client.post(
        "/v1/predict",
        json={"records": [RECORD, RECORD | {"age": 80}]},
        headers=bearer(tokens["predict"]),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    version = get_model(served, "logistic-1").package_sha256[:12]
    assert body["model"] == {"name": "logistic-1", "version": version}
    assert answer.headers["X-Request-Id"] == body["request_id"] and len(body["request_id"]) == 36
    first = body["predictions"][0]
    assert set(first["probabilities"]) == {"0", "1"}
    assert sum(first["probabilities"].values()) == pytest.approx(1, abs=1e-6)
    assert first["label"] == ("1" if first["probabilities"]["1"] >= 0.5 else "0")


def test_every_route_declares_its_role_and_the_matrix_holds(
    client: TestClient, tokens: dict[str, str], served: Workspace
) -> None:
    declared = {
        (method, route.path)
        for route in client.app.routes  # type: ignore[attr-defined]
        for method in getattr(route, "methods", set()) - {"HEAD"}
    }
    assert declared == set(ROUTE_ROLES)
    revoked = create_key(served, "gone", roles=["admin"])
    revoke_key(served, revoked.info.key_id)
    callers: dict[str, str | None] = {"anonymous": None, **tokens, "revoked": revoked.token}
    for (method, path), needed in ROUTE_ROLES.items():
        url = path.replace("{name}", "logistic-1").replace("{version}", "1")
        body = {"records": [RECORD]} if path == "/v1/predict" else {"inputs": []}
        for caller, token in callers.items():
            headers = bearer(token) if token else {}
            answer = client.request(
                method, url, headers=headers, json=body if method == "POST" else None
            )
            allowed = needed == "public" or caller in {needed, "admin"}
            if allowed:
                assert answer.status_code not in {401, 403}, (method, path, caller)
            elif token is None or caller == "revoked":
                assert answer.status_code == 401, (method, path, caller)
                assert answer.headers["WWW-Authenticate"] == "Bearer"
            else:
                assert answer.status_code == 403, (method, path, caller)
                message = f"this key lacks the {needed!r} role"
                shape = "error" if path.startswith("/v2") else "detail"  # each protocol's own
                assert answer.json() == {shape: message}


def test_a_repeated_key_header_counts_once_the_first(
    client: TestClient, tokens: dict[str, str]
) -> None:
    """Proxies read the first of repeated headers; the server agrees with them on every route."""
    for url in ("/metrics", "/v2/models/logistic-1"):  # dispatched at once, and by FastAPI
        first_valid = [
            ("Authorization", f"Bearer {tokens['admin']}"),
            ("Authorization", "Bearer junk"),
        ]
        assert client.get(url, headers=first_valid).status_code == 200, url
        first_junk = list(reversed(first_valid))
        assert client.get(url, headers=first_junk).status_code == 401, url
        keys = [("X-API-Key", tokens["feedback"]), ("X-API-Key", tokens["admin"])]
        assert client.get(url, headers=keys).status_code == 403, url


def test_bad_records_name_every_field_and_never_echo_values(
    client: TestClient, tokens: dict[str, str]
) -> None:
    secret = "SECRET-4242"
    records = [
        RECORD | {"age": "forty"},
        {"gender": "female", "region": secret, "charges": 61.5, "ssn": secret},
        RECORD | {"age": None},
    ]
    answer = client.post(
        "/v1/predict", json={"records": records}, headers=bearer(tokens["predict"])
    )
    assert answer.status_code == 422
    assert secret not in answer.text and "ssn" not in answer.text  # an unknown name neither
    errors = {(tuple(e["loc"][2:]), e["type"]) for e in answer.json()["detail"]}
    assert errors == {
        ((0, "age"), "float_type"),
        ((1, "<unknown field 3>"), "extra_forbidden"),
        ((1, "age"), "missing"),
        ((1, "region"), "unseen_category"),
        ((2, "age"), "null"),
    }
    region = next(e for e in answer.json()["detail"] if e["loc"][-1] == "region")
    assert region["msg"] == "expected one of: east, north, south"


def test_unseen_categories_and_out_of_range_follow_the_plan(
    served: Workspace, tokens: dict[str, str]
) -> None:
    edit_plan(served, "unseen_categories: reject", "unseen_categories: allow")
    edit_plan(served, "out_of_range: allow", "out_of_range: reject")
    app = create_app(ServeConfig(root=str(served.root), model="logistic-1", key_refresh_seconds=0))
    with started(app) as client:
        headers = bearer(tokens["predict"])
        unseen = client.post(
            "/v1/predict", json={"records": [RECORD | {"region": "mars"}]}, headers=headers
        )
        assert unseen.status_code == 200
        far = client.post("/v1/predict", json={"records": [RECORD | {"age": 500}]}, headers=headers)
        assert far.status_code == 422
        assert (
            far.json()["detail"][0]["msg"]
            == "expected a number from 18 to 88 (the range seen in training)"
        )
        metrics = client.get("/metrics", headers=bearer(tokens["admin"])).text
    assert 'mlplan_input_unseen_categories_total{feature="region"} 1.0' in metrics
    assert 'mlplan_input_out_of_range_values_total{feature="age"} 1.0' in metrics


def test_open_inference_protocol_metadata_and_infer_agree_with_predict(
    client: TestClient, tokens: dict[str, str]
) -> None:
    headers = bearer(tokens["predict"])
    meta = client.get("/v2/models/logistic-1", headers=headers).json()
    assert meta["platform"] == "onnxruntime_onnx"
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
        "age": "FP32",
        "charges": "FP32",
        "gender": "BYTES",
        "region": "BYTES",
    }
    tensors = [
        {"name": "age", "shape": [2, 1], "datatype": "FP32", "data": [40, 80]},
        {"name": "charges", "shape": [2, 1], "datatype": "FP32", "data": [61.5, 61.5]},
        {"name": "gender", "shape": [2, 1], "datatype": "BYTES", "data": ["female", "female"]},
        {"name": "region", "shape": [2, 1], "datatype": "BYTES", "data": ["north", "north"]},
    ]
    infer = client.post(
        "/v2/models/logistic-1/infer", json={"id": "r-1", "inputs": tensors}, headers=headers
    ).json()
    assert infer["id"] == "r-1" and infer["model_name"] == "logistic-1"
    proba = np.asarray(infer["outputs"][1]["data"]).reshape(infer["outputs"][1]["shape"])
    records = client.post(
        "/v1/predict", json={"records": [RECORD, RECORD | {"age": 80}]}, headers=headers
    ).json()["predictions"]
    assert proba[:, 1] == pytest.approx([r["probabilities"]["1"] for r in records], abs=1e-6)
    assert infer["outputs"][0]["data"] == [r["label"] for r in records]
    bad = client.post(
        "/v2/models/logistic-1/infer",
        json={"inputs": [t | {"shape": [3, 1]} if t["name"] == "age" else t for t in tensors]},
        headers=headers,
    )
    assert bad.status_code == 422
    assert bad.json() == {"error": "inputs[0].data: expected 3 values for shape [3, 1]"}
    assert client.get("/v2/models/other", headers=headers).status_code == 404


def test_big_bodies_and_broken_json_are_refused(client: TestClient, tokens: dict[str, str]) -> None:
    headers = bearer(tokens["predict"]) | {"Content-Type": "application/json"}
    huge = client.post("/v1/predict", content=b"x" * 1_100_000, headers=headers)
    assert huge.status_code == 413
    broken = client.post("/v1/predict", content=b'{"records": [', headers=headers)
    assert broken.status_code == 400 and broken.json()["detail"][0]["type"] == "json_invalid"


def test_a_corrupt_package_leaves_the_server_live_but_not_ready(served: Workspace) -> None:
    path = served.store.artifacts.path(get_model(served, "logistic-1").package["model.onnx"])
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:100])  # truncated
    app = create_app(ServeConfig(root=str(served.root), model="logistic-1"))
    with started(app) as client:
        assert client.get("/v2/health/live").status_code == 200
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 503
        assert ready.json()["error"].startswith("not ready: model.onnx is corrupt or truncated")


def test_metrics_use_prometheus_names_and_bounded_labels(
    client: TestClient, tokens: dict[str, str]
) -> None:
    for _ in range(3):
        client.post("/v1/predict", json={"records": [RECORD]}, headers=bearer(tokens["predict"]))
    client.get("/v2/models/whatever-1234", headers=bearer(tokens["predict"]))
    text = client.get("/metrics", headers=bearer(tokens["admin"])).text
    assert 'mlplan_http_requests_total{route="/v1/predict",status="200"} 3.0' in text
    assert 'route="/v2/models/{name}"' in text and "whatever-1234" not in text
    assert "mlplan_http_request_duration_seconds_bucket" in text
    assert "mlplan_input_rows_total 3.0" in text
    assert "mlplan_model_ready 1.0" in text and "process_resident_memory_bytes" in text


def test_refusals_are_counted_by_reason(client: TestClient, tokens: dict[str, str]) -> None:
    predict = bearer(tokens["predict"])
    refusals = [  # (what is sent, the reason it is refused for)
        (dict(content=b'{"records": [', headers=predict | JSON), "invalid_json"),
        (dict(json={"records": [RECORD | {"age": "old"}]}, headers=predict), "validation"),
        (dict(json={"rows": []}, headers=predict), "validation"),
        (dict(json={"records": [RECORD]}), "unauthorized"),
        (dict(json={"records": [RECORD]}, headers=bearer(tokens["feedback"])), "forbidden"),
    ]
    for request, reason in refusals:
        assert client.post("/v1/predict", **request).status_code >= 400, reason
    assert client.get("/v2/models/other", headers=predict).status_code == 404
    unknown_version = "/v2/models/logistic-1/versions/0/infer"
    assert client.post(unknown_version, json={}, headers=predict).status_code == 404
    text = client.get("/metrics", headers=bearer(tokens["admin"])).text
    counted = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mlplan_refusals_total{")
    }
    assert set(counted) == set(REFUSALS)  # a fixed vocabulary, every reason shown
    expected = dict.fromkeys(REFUSALS, 0.0) | {
        "invalid_json": 1.0,
        "validation": 2.0,
        "unauthorized": 1.0,
        "forbidden": 1.0,
        "unknown_model": 2.0,  # another model, and another version of this one
    }
    assert counted == expected


def test_keys_are_stored_hashed_listed_and_revoked(served: Workspace) -> None:
    key = create_key(served, "scoring job", roles=["predict", "feedback"], by="dana")
    info, token = key.info, key.token
    assert token.startswith(f"mlp_{info.key_id}_") and info.roles == ("predict", "feedback")
    with served.store.transaction() as session:
        stored = session.query(ApiKeyRecord).one()
        assert token.split("_", 2)[2] not in json.dumps(
            {c.name: str(getattr(stored, c.name)) for c in ApiKeyRecord.__table__.columns}
        )
    assert [k.key_id for k in list_keys(served)] == [info.key_id]
    revoke_key(served, info.key_id)
    assert list_keys(served) == [] and len(list_keys(served, include_revoked=True)) == 1
    with pytest.raises(NotFoundError, match=r"no API key 'nope'; active keys: none"):
        revoke_key(served, "nope")
    with pytest.raises(UsageError, match=r"unknown role 'root'; roles: predict, feedback, admin"):
        create_key(served, "x", roles=["root"])


def test_a_new_key_keeps_its_token_out_of_repr_and_unpacks_for_one_release(
    served: Workspace,
) -> None:
    key = create_key(served, "batch job", roles=["predict"])
    assert key.token not in repr(key) and key.info.key_id in repr(key)
    assert key.to_dict() == key.info.to_dict() | {"token": key.token}
    assert list(key.to_dict()) == [*key.info.to_dict(), "token"]  # the CLI's JSON, in order
    with pytest.warns(DeprecationWarning, match=r"use its \.info and \.token"):
        info, token = key
    assert (info, token) == (key.info, key.token)
    with pytest.warns(DeprecationWarning):
        assert key[1] == key.token


def test_no_auth_is_allowed_only_on_loopback(served: Workspace) -> None:
    edit_plan(served, "auth: api_key", "auth: none")
    local = create_app(ServeConfig(root=str(served.root), model="logistic-1"))
    with started(local) as client:
        assert client.post("/v1/predict", json={"records": [RECORD]}).status_code == 200
    exposed = create_app(ServeConfig(root=str(served.root), model="logistic-1", host="0.0.0.0"))
    with (
        pytest.raises(UsageError, match=r"allowed only on loopback; got --host 0.0.0.0"),
        TestClient(exposed),
    ):
        pass


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_records = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "age": _json,
            "charges": _json,
            "gender": _json,
            "region": _json,
        },
    ),
    max_size=4,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        _json,
        st.fixed_dictionaries({"records": _json}),
        st.fixed_dictionaries({"records": _records}),
    )
)
def test_malformed_payloads_get_a_4xx_naming_the_problem_never_a_5xx(
    client: TestClient, tokens: dict[str, str], body: Any
) -> None:
    # Sent as Python writes JSON, NaN and Infinity included.
    answer = client.post(
        "/v1/predict",
        content=json.dumps(body).encode(),
        headers=bearer(tokens["predict"]) | {"Content-Type": "application/json"},
    )
    assert answer.status_code in {200, 400, 422}, answer.text
    if answer.status_code == 422:
        detail = answer.json()["detail"]
        assert all(isinstance(e["loc"], list) and e["msg"] for e in detail)


def test_hostile_bodies_get_a_4xx_on_both_routes(served: Workspace, tokens: dict[str, str]) -> None:
    edit_plan(served, "out_of_range: allow", "out_of_range: reject")
    app = create_app(
        ServeConfig(
            root=str(served.root), model="logistic-1", key_refresh_seconds=0, max_queue_rows=50
        )
    )
    headers = bearer(tokens["predict"]) | {"Content-Type": "application/json"}

    def tensors(age: Any, region: Any = "north", rows: int = 1) -> dict[str, Any]:
        return {
            "inputs": [
                {"name": "age", "shape": [rows, 1], "datatype": "FP32", "data": [age] * rows},
                {"name": "charges", "shape": [rows, 1], "datatype": "FP32", "data": [50.0] * rows},
                {
                    "name": "gender",
                    "shape": [rows, 1],
                    "datatype": "BYTES",
                    "data": ["male"] * rows,
                },
                {
                    "name": "region",
                    "shape": [rows, 1],
                    "datatype": "BYTES",
                    "data": [region] * rows,
                },
            ]
        }

    with started(app) as client:
        deep = client.post("/v1/predict", content=b"[" * 50_000 + b"]" * 50_000, headers=headers)
        assert deep.status_code == 400
        huge = client.post(
            "/v1/predict", json={"records": [RECORD | {"charges": 1e39}]}, headers=headers
        )
        assert huge.status_code == 422 and "32-bit" in huge.json()["detail"][0]["msg"]
        surrogate = client.post(
            "/v1/predict",
            content=b'{"records": [{"gender": "\\ud800", "age": 40, "region": "north", '
            b'"charges": 1}]}',
            headers=headers,
        )
        assert surrogate.status_code == 400  # not valid Unicode: refused as JSON
        too_many = client.post("/v1/predict", json={"records": [RECORD] * 60}, headers=headers)
        assert too_many.status_code == 413 and "at most 50" in too_many.json()["detail"]
        url = "/v2/models/logistic-1/infer"
        for body, where in [
            (tensors(500), "age"),  # out of range, rejected by the plan as on /v1/predict
            (tensors(40, "mars"), "region"),  # unseen category
            (tensors("40"), "age"),  # a string for a number
            (tensors(True), "age"),
        ]:
            answer = client.post(url, json=body, headers=headers)
            assert answer.status_code == 422, (body, answer.text)
            assert answer.json()["error"].startswith(f"inputs.{where}.data[0]: ")
        beyond = client.post(url, json=tensors(10**400), headers=headers)  # beyond any number
        assert beyond.status_code == 400 and beyond.json() == {
            "error": "the body is not valid JSON"
        }
        twice = tensors(40)
        twice["inputs"].append(twice["inputs"][0])
        answer = client.post(url, json=twice, headers=headers)
        assert answer.json() == {"error": "inputs[4].name: input given twice"}
        assert client.post(url, json=tensors(40, rows=3), headers=headers).status_code == 200


def test_keys_and_planted_pii_never_reach_logs_metrics_or_error_bodies(
    served: Workspace, tokens: dict[str, str]
) -> None:
    edit_plan(served, "    pii_columns: [name, email]", "    pii_columns: [name, email, region]")
    app = create_app(ServeConfig(root=str(served.root), model="logistic-1", key_refresh_seconds=0))
    with started(app) as client:
        ok = client.post(
            "/v1/predict", json={"records": [RECORD]}, headers=bearer(tokens["predict"])
        )
        assert ok.status_code == 200
        bad = client.post(
            "/v1/predict",
            json={"records": [RECORD | {"email": "ada@example.com", "age": "ada@example.com"}]},
            headers=bearer(tokens["predict"]),
        )
        wrong_key = client.post(
            "/v1/predict", json={"records": [RECORD]}, headers=bearer(tokens["predict"] + "x")
        )
        metrics = client.get("/metrics", headers=bearer(tokens["admin"])).text
    written = "".join(
        p.read_text(errors="replace") for p in (served.root / ".mlplan").rglob("seg-*.jsonl")
    )
    secrets = [t.split("_", 2)[2] for t in tokens.values()]
    for text in (bad.text, wrong_key.text, metrics, written):
        assert "ada@example.com" not in text
        assert not any(secret in text for secret in secrets)
    logged = [json.loads(line) for line in written.splitlines()]
    inputs = [r for entry in logged for r in entry["inputs"] or []]
    assert inputs and all(r["region"].startswith("hmac:") for r in inputs)  # PII here


def test_an_extra_route_declares_its_role_and_cannot_take_a_servers_route(
    served: Workspace, tokens: dict[str, str]
) -> None:
    def whoami(call: RouteCall) -> tuple[int, Any]:
        assert call.key is not None and call.body is None
        return 200, {"key": call.key.name, "name": call.params["name"]}

    extra = ExtraRoute("GET", "/v1/whoami/{name}", "feedback", whoami)
    assert route_roles([extra])[("GET", "/v1/whoami/{name}")] == "feedback"
    config = ServeConfig(root=str(served.root), model="logistic-1", key_refresh_seconds=0)
    with started(create_app(config, [extra])) as client:
        url = "/v1/whoami/ana"
        assert client.get(url).status_code == 401
        assert client.get(url, headers=bearer(tokens["predict"])).status_code == 403
        answer = client.get(url, headers=bearer(tokens["feedback"]))
        assert answer.json() == {"key": "feedback-holder", "name": "ana"}
    with pytest.raises(UsageError, match="GET /metrics is served already"):
        route_roles([ExtraRoute("GET", "/metrics", "public", whoami)])
