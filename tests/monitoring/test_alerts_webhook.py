"""The alert webhook: a real HTTP receiver on 127.0.0.1 (allowed by the plan) gets the
documented payload with the secret header, retried on 503 with the backoff schedule (the sleep
injected), the delivery logged; loopback, private and cloud metadata addresses refused by
default, every address of a host checked."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tests.monitoring.conftest import traffic
from tests.monitoring.test_alerts import CHECKED, RULES, set_rules

from mlplan.errors import WebhookURLError
from mlplan.monitoring import (
    ATTEMPTS,
    backoff_schedule,
    check_alerts,
    check_webhook_url,
    post_alerts,
    webhook_deliveries,
)
from mlplan.plan import WebhookSpec
from mlplan.workspace import Workspace


class Receiver:
    """An HTTP server on 127.0.0.1 answering each POST with the next of ``statuses`` (then
    200), keeping what it received."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[dict[str, str], Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), json.loads(body)))
                code = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/mlplan"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([503])  # the first attempt fails: the second is delivered
    yield r
    r.close()


def test_fired_alerts_are_posted_to_the_webhook_retried_and_logged(
    watched: Workspace, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    webhook = (
        f"  webhook: {{url: '{receiver.url}', secret_env: ALERTS_TOKEN, "
        "secret_header: X-Alerts-Token, allow_private: true}\n"
    )
    set_rules(watched, RULES + webhook)
    monkeypatch.setenv("ALERTS_TOKEN", "s3cret-token")
    traffic(watched)
    waits: list[float] = []

    result = check_alerts(watched, now=CHECKED, sleep=waits.append)

    assert waits == [1.0]
    delivery = result.delivery
    assert delivery is not None
    assert (delivery.status, delivery.attempts, delivery.http_status) == ("delivered", 2, 200)
    assert len(receiver.received) == 2
    headers, payload = receiver.received[-1]
    assert headers["X-Alerts-Token"] == "s3cret-token"
    assert headers["Content-Type"] == "application/json"
    assert (payload["source"], payload["version"], payload["deployment"]) == (
        "mlplan",
        1,
        "production",
    )
    assert payload["project"] == watched.plan.project.name
    (alert,) = payload["alerts"]
    assert set(alert) == {
        "id",
        "rule",
        "state",
        "severity",
        "metric",
        "slice",
        "op",
        "threshold",
        "value",
        "window_start",
        "window_end",
        "first_fired_at",
        "last_fired_at",
        "resolved_at",
    }
    assert (alert["rule"], alert["state"], alert["value"], alert["threshold"]) == (
        "software.errors",
        "open",
        0.1,
        0.05,
    )
    assert alert["window_start"] == "2026-11-30T10:00:00+00:00"
    (logged,) = webhook_deliveries(watched)
    assert logged == delivery and logged.alert_ids == (alert["id"],)
    assert "s3cret" not in json.dumps(logged.to_dict())  # the secret is never stored

    again = check_alerts(watched, now=CHECKED, sleep=waits.append)
    assert again.delivery is None  # still firing, nothing new: no post
    assert len(receiver.received) == 2


def test_a_webhook_on_loopback_is_refused_unless_the_plan_allows_it(
    watched: Workspace, receiver: Receiver
) -> None:
    set_rules(watched, RULES + f"  webhook: {{url: '{receiver.url}'}}\n")
    traffic(watched)
    result = check_alerts(watched, now=CHECKED)
    assert result.fired and result.opened  # the alert is recorded all the same
    delivery = result.delivery
    assert delivery is not None and (delivery.status, delivery.attempts) == ("failed", 0)
    assert delivery.error is not None
    assert "resolves to 127.0.0.1, a loopback address" in delivery.error
    assert "allow_private: true" in delivery.error
    assert receiver.received == []


def test_every_retry_waits_twice_the_one_before_then_the_delivery_fails() -> None:
    failing = Receiver([500] * ATTEMPTS)
    try:
        waits: list[float] = []
        spec = WebhookSpec(url=failing.url, allow_private=True)
        delivery = post_alerts(spec, {"alerts": []}, sleep=waits.append)
    finally:
        failing.close()
    assert waits == backoff_schedule() == [1.0, 2.0, 4.0]
    assert (delivery.status, delivery.attempts, delivery.http_status, delivery.error) == (
        "failed",
        ATTEMPTS,
        500,
        "HTTP 500",
    )
    assert len(failing.received) == ATTEMPTS


def test_a_client_error_is_not_retried() -> None:
    refusing = Receiver([404])
    try:
        waits: list[float] = []
        spec = WebhookSpec(url=refusing.url, allow_private=True)
        delivery = post_alerts(spec, {"alerts": []}, sleep=waits.append)
    finally:
        refusing.close()
    assert (delivery.status, delivery.attempts, delivery.http_status) == ("failed", 1, 404)
    assert waits == []


def test_an_unset_secret_is_a_failed_delivery_naming_the_variable() -> None:
    spec = WebhookSpec(url="http://127.0.0.1:9/x", allow_private=True, secret_env="NOPE_TOKEN")
    delivery = post_alerts(spec, {}, environ={})
    assert (delivery.status, delivery.attempts) == ("failed", 0)
    assert delivery.error is not None and "NOPE_TOKEN" in delivery.error


@pytest.mark.parametrize(
    ("url", "addresses", "why"),
    [
        ("http://169.254.169.254/latest", ["169.254.169.254"], "a cloud metadata address"),
        ("http://[fd00:ec2::254]/", ["fd00:ec2::254"], "a cloud metadata address"),
        ("http://hooks.example.com/a", ["10.1.2.3"], "a private-range address"),
        ("http://hooks.example.com/a", ["93.184.216.34", "192.168.0.7"], "a private-range"),
        ("http://hooks.example.com/a", ["::1"], "a loopback address"),
        ("http://hooks.example.com/a", ["fe80::1"], "a link-local address"),
        ("http://hooks.example.com/a", ["::ffff:127.0.0.1"], "a loopback address"),
        ("http://hooks.example.com/a", ["0.0.0.0"], "an unspecified"),
    ],
)
def test_private_and_metadata_addresses_are_refused_by_default(
    url: str, addresses: list[str], why: str
) -> None:
    def resolve(host: str, port: int) -> list[str]:
        return addresses

    with pytest.raises(WebhookURLError, match=why):
        check_webhook_url(url, resolve=resolve)
    assert check_webhook_url(url, allow_private=True, resolve=resolve) == addresses


def test_a_metadata_host_name_and_a_public_address() -> None:
    def public(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    with pytest.raises(WebhookURLError, match=r"metadata\.google\.internal is a cloud metadata"):
        check_webhook_url("http://metadata.google.internal/computeMetadata", resolve=public)
    assert check_webhook_url("https://hooks.example.com/x", resolve=public) == ["93.184.216.34"]
    with pytest.raises(WebhookURLError, match="give an http:// or https:// URL"):
        check_webhook_url("ftp://hooks.example.com/x", resolve=public)

    def nowhere(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(WebhookURLError, match="does not resolve"):
        check_webhook_url("https://nowhere.invalid/x", resolve=nowhere)
