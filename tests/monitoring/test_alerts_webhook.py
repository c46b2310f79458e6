"""The alert webhook: a real HTTP receiver on 127.0.0.1 (allowed by the plan) gets the
documented payload with the secret header, retried on 503 with the backoff schedule (the sleep
injected), the delivery logged; loopback, private and cloud metadata addresses refused by
default, every address of a host checked."""

from __future__ import annotations

import datetime as dt
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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

    def __init__(self, statuses: list[int], tls: ssl.SSLContext | None = None) -> None:
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
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hooks/mlplan"
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


# -- the address checked is the address posted to (no DNS rebinding) -------------------------


def test_a_name_for_loopback_is_refused_unless_allowed_then_posted_with_its_host() -> None:
    local = Receiver([])
    try:
        url = f"http://localhost:{local.port}/hooks/mlplan"  # the system's resolver
        refused = post_alerts(WebhookSpec(url=url), {"alerts": []})
        allowed = post_alerts(WebhookSpec(url=url, allow_private=True), {"alerts": []})
    finally:
        local.close()
    assert (refused.status, refused.attempts) == ("failed", 0)
    assert refused.error is not None
    assert "localhost resolves to" in refused.error and "a loopback address" in refused.error
    assert (allowed.status, allowed.attempts) == ("delivered", 1)  # ::1 first, if so, is down
    ((headers, _),) = local.received
    assert headers["Host"] == f"localhost:{local.port}"


def test_the_post_goes_to_the_address_checked_not_to_the_name_resolved_again() -> None:
    local = Receiver([503])  # a retry too: it must not resolve the name again
    answers = iter([["127.0.0.1"], ["203.0.113.9"]])  # a rebinding resolver's two answers
    asked: list[tuple[str, int]] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return next(answers)

    try:
        spec = WebhookSpec(url=f"http://hooks.rebind.invalid:{local.port}/a", allow_private=True)
        delivery = post_alerts(spec, {"alerts": []}, sleep=lambda _: None, resolve=rebinding)
    finally:
        local.close()
    # a name no resolver knows reached the receiver: the request went to the address checked
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert asked == [("hooks.rebind.invalid", local.port)]
    assert [h["Host"] for h, _ in local.received] == [f"hooks.rebind.invalid:{local.port}"] * 2


def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for the DNS name ``name`` and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365 * 30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize(
    ("served", "delivered"), [("hooks.test", True), ("elsewhere.test", False)], ids=["own", "other"]
)
def test_https_to_the_address_checked_verifies_the_certificate_of_the_urls_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served: str, delivered: bool
) -> None:
    cert, key = _certificate(tmp_path, served)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # httpx trusts this one certificate
    local = Receiver([], tls=tls)

    def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    try:
        spec = WebhookSpec(url=f"https://hooks.test:{local.port}/a", allow_private=True)
        delivery = post_alerts(spec, {"alerts": []}, sleep=lambda _: None, resolve=resolve)
    finally:
        local.close()
    if delivered:  # the certificate names the URL's host, though the post went to 127.0.0.1
        assert (delivery.status, delivery.attempts) == ("delivered", 1)
        assert [h["Host"] for h, _ in local.received] == [f"hooks.test:{local.port}"]
    else:
        assert delivery.status == "failed" and local.received == []
        assert delivery.error is not None and "CERTIFICATE_VERIFY_FAILED" in delivery.error
