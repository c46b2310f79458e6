"""The Open Inference Protocol to the letter: Triton's own HTTP client (tritonclient), with its
defaults, against the server: binary tensors both ways, server metadata and model
configuration, and every error in the protocol's ``{"error": "..."}``, which the client
decodes, while ``/v1`` keeps FastAPI's ``{"detail": ...}``."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.serving.conftest import RECORD, bearer, server_process, stop
from tritonclient import http as oip
from tritonclient.utils import InferenceServerException

from mlplan.modeling import get_model
from mlplan.serving._open_inference import attach_binary_inputs
from mlplan.workspace import Workspace

INPUTS = [("age", "FP32"), ("charges", "FP32"), ("gender", "BYTES"), ("region", "BYTES")]
URL = "/v2/models/logistic-1/infer"


def _records(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` valid records, seeded."""
    rng = np.random.default_rng(seed)
    return [
        {
            "gender": str(rng.choice(["female", "male"])),
            "age": float(rng.integers(18, 89)),
            "region": str(rng.choice(["north", "south", "east"])),
            "charges": float(np.float32(rng.normal(60, 15))),
        }
        for _ in range(n)
    ]


def _inputs(records: list[dict[str, Any]], *, binary_data: bool = True) -> list[oip.InferInput]:
    """The records as the client's tensors (its default: binary data)."""
    tensors = []
    for name, datatype in INPUTS:
        kind = object if datatype == "BYTES" else np.float32
        values = np.array([[r[name]] for r in records], dtype=kind)
        tensor = oip.InferInput(name, list(values.shape), datatype)
        tensors.append(tensor.set_data_from_numpy(values, binary_data=binary_data))
    return tensors


def _binary_request(records: list[dict[str, Any]], **options: Any) -> tuple[bytes, dict[str, str]]:
    """The body and headers the client would send (its own encoder, public)."""
    body, json_size = oip.InferenceServerClient.generate_request_body(_inputs(records), **options)
    headers = {} if json_size is None else {"Inference-Header-Content-Length": str(json_size)}
    return body, headers


def _result(answer: httpx.Response) -> oip.InferResult:
    """An answer decoded by the client's own decoder (public)."""
    length = answer.headers.get("Inference-Header-Content-Length")
    return oip.InferenceServerClient.parse_response_body(
        answer.content, header_length=None if length is None else int(length)
    )


def _predicted(client: Any, records: list[dict[str, Any]], headers: dict[str, str]) -> Any:
    """/v1/predict's labels and probabilities of class "1" for ``records``."""
    predictions = client.post("/v1/predict", json={"records": records}, headers=headers).json()
    labels = [p["label"] for p in predictions["predictions"]]
    return labels, [p["probabilities"]["1"] for p in predictions["predictions"]]


def _labels(result: oip.InferResult) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in result.as_numpy("label")]


# -- in process: the binary tensor extension and the error shapes -----------------------------


def test_binary_tensors_in_and_out_answer_as_records_do(
    client: TestClient, tokens: dict[str, str]
) -> None:
    headers = bearer(tokens["predict"])
    records = _records(300)  # enough rows for numpy's checks
    labels, proba = _predicted(client, records, headers)
    for outputs in (
        None,
        [oip.InferRequestedOutput("label"), oip.InferRequestedOutput("probabilities")],
    ):
        body, extra = _binary_request(records, outputs=outputs)
        answer = client.post(URL, content=body, headers=headers | extra)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/octet-stream"
        result = _result(answer)
        assert _labels(result) == labels
        assert result.as_numpy("probabilities").dtype == np.float32
        assert result.as_numpy("probabilities")[:, 1].tolist() == pytest.approx(proba, abs=1e-6)
    # Binary inputs, JSON outputs; and one output only.
    only = [oip.InferRequestedOutput("probabilities", binary_data=False)]
    body, extra = _binary_request(records[:3], outputs=only)
    answer = client.post(URL, content=body, headers=headers | extra)
    assert "Inference-Header-Content-Length" not in answer.headers
    assert [o["name"] for o in answer.json()["outputs"]] == ["probabilities"]


def test_a_missing_value_in_a_binary_tensor_is_refused_as_null_is(
    client: TestClient, tokens: dict[str, str]
) -> None:
    records = _records(40)
    records[5]["age"] = float("nan")  # age was never missing in training
    body, extra = _binary_request(records)
    answer = client.post(URL, content=body, headers=bearer(tokens["predict"]) | extra)
    assert answer.status_code == 422
    assert answer.json() == {
        "error": "inputs.age.data[5]: may not be null: it was never missing in training"
    }


@pytest.mark.parametrize(
    ("datatype", "value"), [("INT64", 40.5), ("INT64", 2**70), ("INT32", 2**31), ("INT64", True)]
)
def test_an_integer_tensor_holds_integers_of_its_size(
    client: TestClient, tokens: dict[str, str], datatype: str, value: Any
) -> None:
    records = _records(2)

    def body(ages: list[Any]) -> dict[str, Any]:
        tensors = [
            {"name": name, "datatype": kind, "shape": [2, 1], "data": [r[name] for r in records]}
            for name, kind in INPUTS
        ]
        tensors[0] |= {"datatype": datatype, "data": ages}  # age
        return {"inputs": tensors}

    headers = bearer(tokens["predict"])
    assert client.post(URL, json=body([40, 41]), headers=headers).status_code == 200
    answer = client.post(URL, json=body([40, value]), headers=headers)
    assert answer.status_code == 422
    assert answer.json() == {"error": f"inputs[0].data[1]: expected {datatype} values"}


def _tamper(
    change: Callable[[dict[str, Any], bytes], tuple[dict[str, Any], bytes]],
    length: Callable[[int], str] = str,
) -> tuple[bytes, dict[str, str]]:
    """A client's binary request for two records, its JSON header and binary part changed."""
    body, headers = _binary_request(_records(2))
    size = int(headers["Inference-Header-Content-Length"])
    header, binary = change(json.loads(body[:size]), body[size:])
    encoded = json.dumps(header).encode()
    return encoded + binary, {"Inference-Header-Content-Length": length(len(encoded))}


def _size(header: dict[str, Any], i: int, size: Any) -> dict[str, Any]:
    header["inputs"][i]["parameters"]["binary_data_size"] = size
    return header


def _first(header: dict[str, Any], **fields: Any) -> dict[str, Any]:
    header["inputs"][0].update(fields)
    return header


@pytest.mark.parametrize(
    ("change", "length", "message"),
    [
        (lambda h, b: (h, b), lambda n: str(n + 10_000), "is 10,"),
        (lambda h, b: (h, b), lambda n: "0x20", "expected the JSON header's length in bytes"),
        (lambda h, b: (h, b), lambda n: "0", "must be within the body"),
        (lambda h, b: (h, b), lambda n: str(n - 1), "(Inference-Header-Content-Length) are not"),
        (lambda h, b: (h, b + b"\0" * 4), str, "add up to"),
        (lambda h, b: (h, b[:-3]), str, "only"),
        (lambda h, b: (_size(h, 0, 12), b), str, "takes 8 bytes; binary_data_size says 12"),
        (lambda h, b: (_size(h, 0, -8), b), str, "expected a number of bytes"),
        (lambda h, b: (_size(h, 0, True), b), str, "expected a number of bytes"),
        (lambda h, b: (_size(h, 0, 2**62), b), str, "only"),
        (
            lambda h, b: (_first(h, data=[1, 2]), b),
            str,
            "not both",
        ),
        (
            lambda h, b: (_first(h, datatype="FP8"), b),
            str,
            "expected one of the protocol's",
        ),
        (
            lambda h, b: (_first(h, shape=[2, -1]), b),
            str,
            "expected a list of sizes",
        ),
        # gender: two BYTES elements of 4 + 6 ("female"/"male") bytes
        (lambda h, b: (h, b[:16] + b"\xff\xff\xff\x7f" + b[20:]), str, "runs past"),
        (lambda h, b: (_size(h, 2, 3), b), str, "take at least 8 bytes"),
    ],
    ids=[
        "header-past-body", "header-not-decimal", "header-zero", "header-short", "bytes-left-over",
        "bytes-missing", "size-not-shape", "size-negative", "size-bool", "size-huge",
        "data-and-binary", "unknown-datatype", "bad-shape", "bytes-length-past-end",
        "bytes-too-few",
    ],
)  # fmt: skip
def test_binary_bodies_are_checked_before_a_byte_is_read(
    client: TestClient,
    tokens: dict[str, str],
    change: Callable[[dict[str, Any], bytes], tuple[dict[str, Any], bytes]],
    length: Callable[[int], str],
    message: str,
) -> None:
    body, extra = _tamper(change, length)
    answer = client.post(URL, content=body, headers=bearer(tokens["predict"]) | extra)
    assert answer.status_code == 400, answer.text
    assert set(answer.json()) == {"error"} and message in answer.json()["error"]


_sizes = st.one_of(st.integers(-2, 40), st.booleans(), st.none(), st.text(max_size=2))
_tensor = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["age", "gender", "x"]),
        "datatype": st.sampled_from(["FP32", "BYTES", "INT64", "BOOL", "FP8", 3]),
        "shape": st.lists(st.integers(-1, 5), max_size=3),
        "parameters": st.fixed_dictionaries({"binary_data_size": _sizes}),
    }
)


@settings(max_examples=400, deadline=None)
@given(inputs=st.lists(_tensor, max_size=4), binary=st.binary(max_size=64))
def test_any_binary_body_is_read_or_refused_never_past_its_end(
    inputs: list[dict[str, Any]], binary: bytes
) -> None:
    body = {"inputs": inputs}
    problem = attach_binary_inputs(body, binary)
    if problem is None:  # every byte belongs to exactly one input, as declared
        sizes = [t["parameters"]["binary_data_size"] for t in inputs]
        assert sum(sizes) == len(binary)
        for tensor in inputs:
            assert isinstance(tensor["data"], np.ndarray)
            assert tensor["data"].size == math.prod(tensor["shape"])
    else:
        assert isinstance(problem, str) and problem


def test_bytes_elements_must_be_utf8(client: TestClient, tokens: dict[str, str]) -> None:
    records = _records(2)
    records[1]["region"] = "north"
    body, extra = _binary_request(records)
    at = body.rindex(b"north")
    answer = client.post(
        URL,
        content=body[:at] + b"\xfforth" + body[at + 5 :],
        headers=bearer(tokens["predict"]) | extra,
    )
    assert answer.status_code == 400
    assert answer.json() == {"error": "inputs[3]: BYTES element 1 is not valid UTF-8"}


def test_v2_errors_are_the_protocols_and_v1_keeps_its_own(
    client: TestClient, tokens: dict[str, str]
) -> None:
    predict, feedback = bearer(tokens["predict"]), bearer(tokens["feedback"])
    record = {"records": [RECORD]}
    v2: list[tuple[httpx.Response, int, str]] = [
        (client.get("/v2"), 401, "a valid API key is required"),
        (client.get("/v2/models/logistic-1", headers=feedback), 403, "lacks the 'predict' role"),
        (
            client.get("/v2/models/other", headers=predict),
            404,
            "no model with that name is served here",
        ),
        (client.post(URL, content=b"x" * 1_100_000, headers=predict), 413, "larger than 1,000,000"),
        (client.post(URL, content=b"{", headers=predict), 400, "the body is not valid JSON"),
        (
            client.post(URL, json={"inputs": []}, headers=predict),
            422,
            "inputs: expected a non-empty list of tensors",
        ),
        (
            client.post(URL, content=b"{}", headers=predict | {"Content-Encoding": "gzip"}),
            415,
            "compressed bodies are not supported",
        ),
        (
            client.post(URL, content=b"{}", headers=predict | {"Content-Type": "text/plain"}),
            415,
            "send the body as JSON",
        ),
        (client.post("/v2/repository/index", headers=predict), 404, "not supported"),
        (client.get(URL, headers=predict), 405, "Method Not Allowed"),
        (
            client.get("/v2/models/logistic-1/versions/1", headers=predict),
            404,
            "no such version of logistic-1",
        ),
    ]
    for answer, status, message in v2:
        assert answer.status_code == status, answer.text
        assert set(answer.json()) == {"error"} and message in answer.json()["error"], answer.text
        assert int(answer.headers["content-length"]) == len(answer.content)
    unknown = client.post(URL, json={"inputs": [{"name": "ssn-1234"}]}, headers=predict).json()
    assert unknown["error"].startswith("inputs[0].name: unknown input; the model takes: ")
    v1 = [
        (client.post("/v1/predict", json=record), 401),
        (client.post("/v1/predict", json=record, headers=feedback), 403),
        (client.post("/v1/predict", content=b"x" * 1_100_000, headers=predict), 413),
        (client.post("/v1/predict", json={"records": [{}]}, headers=predict), 422),
        (client.get("/v1/nothing"), 404),
    ]
    for answer, status in v1:
        assert answer.status_code == status and "detail" in answer.json(), answer.text


def test_server_metadata_and_model_configuration(
    client: TestClient, tokens: dict[str, str], served: Workspace
) -> None:
    headers = bearer(tokens["predict"])
    assert client.get("/v2", headers=headers).json() == {
        "name": "mlplan",
        "version": __import__("mlplan").__version__,
        "extensions": ["binary_tensor_data", "model_configuration"],
    }
    version = get_model(served, "logistic-1").package_sha256[:12]
    for base in ("/v2/models/logistic-1", f"/v2/models/logistic-1/versions/{version}"):
        config = client.get(f"{base}/config", headers=headers).json()
        assert config["name"] == "logistic-1" and config["max_batch_size"] == 8192
        assert {t["name"]: (t["data_type"], t["dims"]) for t in config["input"]} == {
            "age": ("TYPE_FP32", [1]),
            "charges": ("TYPE_FP32", [1]),
            "gender": ("TYPE_STRING", [1]),
            "region": ("TYPE_STRING", [1]),
        }
        assert client.get(f"{base}/ready").json() == {"ready": True}
        assert client.get(base, headers=headers).json()["versions"] == [version]


# -- a real server, and the client unchanged ----------------------------------------------------


@pytest.mark.slow
def test_the_triton_client_works_unchanged_against_a_real_server(
    served: Workspace, tokens: dict[str, str]
) -> None:
    """Every call of Triton's HTTP client with its default arguments (keys through its
    ``headers=``): health, metadata, configuration, inference with binary and JSON tensors,
    asynchronous inference, and each error decoded as an InferenceServerException."""
    records = _records(64)
    key = bearer(tokens["predict"])

    def auth() -> dict[str, str]:  # a new dict each call: the client writes its own headers in
        return dict(key)

    with server_process(served.root, "logistic-1") as (process, base):
        client = oip.InferenceServerClient(url=base.removeprefix("http://"))
        try:
            assert client.is_server_live() and client.is_server_ready()
            assert client.is_model_ready("logistic-1")
            assert not client.is_model_ready("other")
            server = client.get_server_metadata(headers=auth())
            assert server["name"] == "mlplan" and "binary_tensor_data" in server["extensions"]
            metadata = client.get_model_metadata("logistic-1", headers=auth())
            assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == INPUTS
            version = metadata["versions"][0]
            assert client.is_model_ready("logistic-1", model_version=version)
            assert not client.is_model_ready("logistic-1", model_version="1")
            config = client.get_model_config("logistic-1", headers=auth())
            assert config["max_batch_size"] > 0
            results = [
                client.infer("logistic-1", _inputs(records), headers=auth()),  # all defaults
                client.infer(
                    "logistic-1",
                    _inputs(records),
                    outputs=[
                        oip.InferRequestedOutput("label"),
                        oip.InferRequestedOutput("probabilities"),
                    ],
                    headers=auth(),
                ),
                client.infer(
                    "logistic-1",
                    _inputs(records, binary_data=False),
                    outputs=[
                        oip.InferRequestedOutput(n, binary_data=False)
                        for n in ("label", "probabilities")
                    ],
                    headers=auth(),
                    request_id="r-1",
                ),
                client.async_infer("logistic-1", _inputs(records), headers=auth()).get_result(),
                client.infer("logistic-1", _inputs(records), model_version=version, headers=auth()),
            ]
            assert results[2].get_response()["id"] == "r-1"
            errors = {
                "no key": lambda: client.infer("logistic-1", _inputs(records)),
                "unknown model": lambda: client.infer("other", _inputs(records), headers=auth()),
                "bad shape": lambda: client.infer(
                    "logistic-1",
                    _inputs(records)[:1] + _inputs(records[:2])[1:],
                    headers=auth(),
                ),
                "bad dtype": lambda: client.infer(
                    "logistic-1",
                    [
                        oip.InferInput("age", [1, 1], "INT8").set_data_from_numpy(
                            np.array([[40]], dtype=np.int8)
                        ),
                        *_inputs(records[:1])[1:],
                    ],
                    headers=auth(),
                ),
                "oversize": lambda: client.infer(
                    "logistic-1",
                    _inputs(records * 700),
                    headers=auth(),
                ),
                "repository": lambda: client.get_model_repository_index(headers=auth()),
                "load": lambda: client.load_model("logistic-1", headers=auth()),
                "unload": lambda: client.unload_model("logistic-1", headers=auth()),
            }
            messages = {}
            for name, call in errors.items():
                with pytest.raises(InferenceServerException) as raised:
                    call()
                messages[name] = (raised.value.status(), raised.value.message())
        finally:
            client.close()
        with httpx.Client(base_url=base, timeout=10) as http:
            labels, proba = _predicted(http, records, key)
        stop(process)
    for result in results:
        assert _labels(result) == labels
        assert result.as_numpy("probabilities")[:, 1].tolist() == pytest.approx(proba, abs=1e-6)
    assert messages["no key"][0] == "401" and "API key" in messages["no key"][1]
    assert messages["unknown model"] == (
        "404",
        "no model with that name is served here; this server serves 'logistic-1'",
    )
    assert messages["bad shape"][0] == "422" and "same rows" in messages["bad shape"][1]
    assert messages["bad dtype"] == ("422", "inputs[0].datatype: expected FP32")
    assert messages["oversize"][0] == "413" and "larger than" in messages["oversize"][1]
    for name in ("repository", "load", "unload"):
        assert messages[name][0] == "404" and "not supported" in messages[name][1]


@pytest.mark.slow
def test_a_server_that_is_not_ready_says_why_to_the_client(
    served: Workspace, tokens: dict[str, str]
) -> None:
    path = served.store.artifacts.path(get_model(served, "logistic-1").package["model.onnx"])
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with server_process(served.root, "logistic-1", ready_text="logistic-1 is not ready") as (
        process,
        base,
    ):
        client = oip.InferenceServerClient(url=base.removeprefix("http://"))
        try:
            assert client.is_server_live()
            assert not client.is_server_ready() and not client.is_model_ready("logistic-1")
            with pytest.raises(InferenceServerException, match=r"not ready: model.onnx is corrupt"):
                client.infer("logistic-1", _inputs(_records(1)), headers=bearer(tokens["predict"]))
        finally:
            client.close()
        stop(process)


def test_a_bug_in_a_route_is_a_500_in_the_routes_error_shape(
    served: Workspace, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a route raises, an Open Inference client still reads the error (not a plain
    text body), and the exception's text is not sent."""
    from mlplan.serving import ServeConfig, create_app
    from mlplan.serving._routes import Routes

    async def broken(self: Routes, request: Any) -> Any:
        raise RuntimeError("secret detail")

    for name in ("server_metadata", "model_metadata", "predict"):
        monkeypatch.setattr(Routes, name, broken)
    app = create_app(ServeConfig(root=str(served.root), model="logistic-1", key_refresh_seconds=0))
    predict = bearer(tokens["predict"])
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        assert app.state.mlplan.loaded.wait(timeout=60)
        for path in ("/v2", "/v2/models/logistic-1"):  # the front's route, and FastAPI's
            answer = client.get(path, headers=predict)
            assert answer.status_code == 500 and set(answer.json()) == {"error"}, answer.text
            assert "a bug" in answer.json()["error"] and "secret" not in answer.text
        v1 = client.post("/v1/predict", json={"records": [RECORD]}, headers=predict)
        assert v1.status_code == 500 and "a bug" in v1.json()["detail"]
        assert "secret" not in v1.text
