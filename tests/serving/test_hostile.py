"""A thousand hostile requests against a real server: every answer is a refusal or a
prediction, never a 5xx, and neither the answers nor the log grow past the bytes sent
(issue 18, "How we will know")."""

from __future__ import annotations

import random
import socket
from collections import Counter
from collections.abc import Iterator

import httpx
import orjson
import pytest
from tests.serving.conftest import RECORD, bearer, log_bytes, server_process, stop

from mlplan.workspace import Workspace

EMAIL = "jane.doe.hostile@example.org"
PHONE = "+44 7700 900123"


def _corpus(seed: int, n: int) -> Iterator[tuple[str, str, bytes, str]]:
    """``n`` hostile requests: (method, path, body, content type), seeded."""
    rng = random.Random(seed)
    kinds = [
        lambda: ("/v1/predict", b'{"records": [{"age": 4'),  # truncated JSON
        lambda: ("/v1/predict", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))),
        lambda: ("/v1/predict", b"[" * 5_000 + b"]" * 5_000),  # deep nesting
        lambda: ("/v1/predict", b'{"records":[' + b",".join([b"{}"] * 3_000) + b"]}"),
        lambda: ("/v1/predict", orjson.dumps({"records": [RECORD | {"age": "old"}] * 500})),
        lambda: ("/v1/predict", orjson.dumps({"records": [RECORD | {EMAIL: PHONE}] * 50})),
        lambda: ("/v1/predict", orjson.dumps({"records": [{f"f{i}": i for i in range(2_000)}]})),
        lambda: ("/v1/predict", orjson.dumps({"records": [RECORD | {"region": "x" * 50_000}]})),
        lambda: ("/v1/predict", b'{"records": [{"age": NaN, "charges": Infinity}]}'),
        lambda: ("/v1/predict", b'{"records": [{"age": 1e400}]}'),
        lambda: ("/v1/predict", b'{"records": [{"region": "\\ud800"}], "records": 5}'),
        lambda: ("/v1/predict", b"x" * 1_100_000),  # past the body limit
        lambda: ("/v2/models/logistic-1/infer", orjson.dumps({"inputs": [7] * 3_000})),
        lambda: ("/v2/models/logistic-1/infer", orjson.dumps({"id": EMAIL, "inputs": []})),
        lambda: (f"/v2/models/{EMAIL}/infer", orjson.dumps({"inputs": []})),
        lambda: ("/v1/feedback", orjson.dumps({"request_id": EMAIL, "label": PHONE})),
        lambda: ("/v1/feedback", orjson.dumps({f"e{i}": 1 for i in range(2_000)})),
        lambda: ("/v1/feedback", orjson.dumps({"request_id": "r", "event": PHONE, "value": 1})),
    ]  # fmt: skip
    for i in range(n):
        path, body = kinds[i % len(kinds)]()
        # Every seventh as a web page would send it: text/plain, no preflight.
        yield "POST", path, body, "text/plain" if i % 7 == 6 else "application/json"


@pytest.mark.slow
def test_a_thousand_hostile_requests_get_small_answers_and_a_small_log(
    served: Workspace, tokens: dict[str, str]
) -> None:
    sent = answered = 0
    within = 0  # the bytes of the bodies under the limit (those past it are not read)
    statuses: Counter[int] = Counter()
    bodies = []
    with server_process(served.root, "logistic-1") as (process, base):
        keys = {"predict": bearer(tokens["predict"]), "feedback": bearer(tokens["feedback"])}
        with httpx.Client(base_url=base, timeout=30) as client:
            for method, path, body, content_type in _corpus(18, 1_000):
                headers = keys["feedback" if "feedback" in path else "predict"]
                answer = client.request(
                    method, path, content=body, headers=headers | {"Content-Type": content_type}
                )
                statuses[answer.status_code] += 1
                sent += len(body)
                within += len(body) if answer.status_code != 413 else 0
                answered += len(answer.content)
                bodies.append(answer.content)
        stop(process)
    assert not [s for s in statuses if s >= 500], statuses
    assert answered < 2 * sent and answered < within, (answered, sent, within)
    logged = log_bytes(served.root)
    assert logged < 2 * sent and logged < within / 100, (logged, sent, within)
    everything = b"".join(bodies) + b"".join(
        p.read_bytes() for p in (served.root / ".mlplan" / "predictions").rglob("*") if p.is_file()
    )
    assert EMAIL.encode() not in everything and PHONE.encode() not in everything


def _head_answer(base: str, header_bytes: int) -> bytes:
    """The status line answered to a GET whose one header holds ``header_bytes`` bytes, sent
    100 KB at a time (what the server reads before it answers; a refused request's connection
    may close before all is sent)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        try:
            connection.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
            for _ in range(header_bytes // 100_000):
                connection.sendall(b"a" * 100_000)
            connection.sendall(b"\r\nConnection: close\r\n\r\n")
        except OSError:  # refused and closed mid-way
            pass
        return connection.makefile("rb").readline()


@pytest.mark.slow
def test_a_request_head_is_bounded(served: Workspace) -> None:
    # uvicorn set no limit: a 100 MB header line, never finished, held 100 MB of memory and
    # the event loop for 17 s, before any key was asked for.
    with server_process(served.root, "logistic-1") as (process, base):
        assert _head_answer(base, 200_000).startswith(b"HTTP/1.1 200")
        assert _head_answer(base, 5_000_000).startswith(b"HTTP/1.1 431")
        with httpx.Client(base_url=base, timeout=30) as client:  # served as before
            assert client.get("/v2/health/live").status_code == 200
        stop(process)
