"""The plan's alert webhook (``monitoring.webhook``): its URL checked, and alerts posted with
retries.

The URL's host is resolved once per delivery and every address it resolves to is checked:
loopback, link-local, private-range (RFC 1918, unique local ``fc00::/7``, carrier-grade NAT),
unspecified, multicast and reserved addresses and the cloud metadata endpoints
(``169.254.169.254``, ``fd00:ec2::254``, ``metadata.google.internal``, ``metadata.azure.com``,
…) are refused unless the plan sets ``allow_private: true``. The post then goes to the
addresses checked, never to the name again: a name that resolves to a public address when
checked and to ``127.0.0.1`` a moment later (DNS rebinding) cannot send it elsewhere. The
request keeps the URL's host in its ``Host`` header and, for https, as the TLS server name
that the certificate is verified against (httpx's ``sni_hostname`` request extension). Each
attempt tries the addresses in the order the resolver gave them until one connects (with an
HTTP proxy set in the environment, ``HTTPS_PROXY``, the proxy connects, to the address
checked). The secret (``secret_env``: the environment variable read at post time, sent
in ``secret_header``) is never logged nor stored.

The payload, one JSON object per post (``Content-Type: application/json``)::

    {
      "source": "mlplan",
      "version": 1,
      "project": "churn",
      "deployment": "production",
      "checked_at": "2026-12-01T10:00:00+00:00",
      "alerts": [
        {
          "id": 3,
          "rule": "software.slow",          # family.name of the plan's rule
          "state": "open",                  # open | acknowledged | resolved
          "severity": "critical",           # info | warning | critical
          "metric": "latency_p99_ms",
          "slice": "all",
          "op": ">",
          "threshold": 250.0,
          "value": 412.5,
          "window_start": "2026-12-01T09:00:00+00:00",
          "window_end": "2026-12-01T10:00:00+00:00",
          "first_fired_at": "2026-12-01T10:00:00+00:00",
          "last_fired_at": "2026-12-01T10:00:00+00:00",
          "resolved_at": null
        }
      ]
    }

A post is tried up to ``ATTEMPTS`` times: a connection error, a timeout, a 429 or a 5xx answer
is tried again after ``BACKOFF_S`` × 2^(attempt − 1) seconds (1, 2, 4 …), any other answer
ends it (2xx: delivered; else failed).
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mlplan._optional import require
from mlplan.errors import WebhookURLError
from mlplan.plan import WebhookSpec

__all__ = [
    "ATTEMPTS",
    "BACKOFF_S",
    "METADATA_HOSTS",
    "Delivery",
    "backoff_schedule",
    "check_webhook_url",
    "post_alerts",
]

ATTEMPTS = 4
"""How many times a post is tried at most."""
BACKOFF_S = 1.0
"""The wait before the second attempt; each later one waits twice the one before."""
TIMEOUT_S = 10.0
METADATA_HOSTS = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
"""Cloud metadata host names, refused whatever they resolve to (unless allowed)."""
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")

Resolver = Callable[[str, int], Sequence[str]]


@dataclass(frozen=True)
class Delivery:
    """What became of one post: ``delivered`` or ``failed``, after how many attempts, the last
    HTTP status (none when no answer came) and the last error."""

    status: str
    attempts: int
    http_status: int | None
    error: str | None


def backoff_schedule(attempts: int = ATTEMPTS, first: float = BACKOFF_S) -> list[float]:
    """The waits between ``attempts`` tries: ``first`` doubled each time.

    Examples
    --------
    >>> backoff_schedule(4, 1.0)
    [1.0, 2.0, 4.0]
    """
    return [first * 2**i for i in range(attempts - 1)]


def _resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host``, in the resolver's order of preference, each once."""
    found = (str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    return list(dict.fromkeys(found))


def _pinned(url: str, address: str) -> tuple[str, str, str]:
    """``url`` with its host replaced by ``address``, the ``Host`` header it had, and its host
    name (the TLS server name).

    Examples
    --------
    >>> _pinned("https://hooks.example.com:8443/a?b=1", "2001:db8::5")
    ('https://[2001:db8::5]:8443/a?b=1', 'hooks.example.com:8443', 'hooks.example.com')
    """
    parts = urlsplit(url)
    userinfo, _, host_header = parts.netloc.rpartition("@")
    literal = f"[{address.replace('%', '%25')}]" if ":" in address else address
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit(parts._replace(netloc=netloc)), host_header, parts.hostname or ""


def _refusal(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return "an unspecified, multicast or reserved address"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT):
        return "a private-range address"
    return None


def check_webhook_url(
    url: str, *, allow_private: bool = False, resolve: Resolver = _resolve
) -> list[str]:
    """Check the webhook ``url`` and return the addresses its host resolves to.

    Raises
    ------
    WebhookURLError
        Not http(s), no host, a host that does not resolve, or (without ``allow_private``) a
        cloud metadata host name or any address that is loopback, link-local, private-range,
        a cloud metadata endpoint, unspecified, multicast or reserved.

    Examples
    --------
    >>> check_webhook_url("http://127.0.0.1:9/hook")
    Traceback (most recent call last):
    ...
    mlplan.errors.WebhookURLError: monitoring.webhook.url http://127.0.0.1:9/hook: ...
    >>> check_webhook_url("http://127.0.0.1:9/hook", allow_private=True)
    ['127.0.0.1']
    """
    parts = urlsplit(url)
    where = f"monitoring.webhook.url {url}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookURLError(f"{where}: give an http:// or https:// URL with a host")
    host = parts.hostname.rstrip(".").lower()
    if not allow_private and host in METADATA_HOSTS:
        raise WebhookURLError(
            f"{where}: {host} is a cloud metadata host; mlplan does not post there "
            "(set monitoring.webhook.allow_private: true in mlplan.yaml to allow it)"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = list(resolve(host, port))
    except (OSError, ValueError) as error:
        raise WebhookURLError(f"{where}: the host {host} does not resolve ({error})") from error
    if not addresses:
        raise WebhookURLError(f"{where}: the host {host} resolves to no address")
    if not allow_private:
        for address in addresses:
            why = _refusal(address)
            if why is not None:
                raise WebhookURLError(
                    f"{where}: {host} resolves to {address}, {why}; mlplan does not post there "
                    "by default (set monitoring.webhook.allow_private: true in mlplan.yaml "
                    "to allow it)"
                )
    return addresses


def post_alerts(
    spec: WebhookSpec,
    payload: Mapping[str, Any],
    *,
    sleep: Callable[[float], None] = time.sleep,
    resolve: Resolver | None = None,
    environ: Mapping[str, str] | None = None,
) -> Delivery:
    """Post ``payload`` to the plan's webhook, retried with backoff (the module's notes);
    ``sleep`` waits between attempts (a test passes its own).

    The URL is checked first (``check_webhook_url``: its host resolved once, every address
    checked) and each attempt connects to the addresses checked, not to the name; a URL
    refused, or a secret whose environment variable is unset, is a failed delivery with no
    attempt, its reason the error.
    """
    try:
        addresses = check_webhook_url(
            spec.url, allow_private=spec.allow_private, resolve=resolve or _resolve
        )
    except WebhookURLError as error:
        return Delivery("failed", 0, None, str(error))
    headers = {"Content-Type": "application/json", "User-Agent": "mlplan-alerts"}
    if spec.secret_env is not None:
        secret = (os.environ if environ is None else environ).get(spec.secret_env)
        if not secret:
            return Delivery(
                "failed",
                0,
                None,
                f"the environment variable {spec.secret_env} (monitoring.webhook.secret_env) "
                "is not set; set it where mlplan monitor check runs",
            )
        headers[spec.secret_header] = secret
    httpx = require("httpx", extra="serving", purpose="posting alerts to a webhook")
    body = json.dumps(payload, sort_keys=True).encode()
    waits = backoff_schedule()
    status: int | None = None
    last: str | None = None
    targets = [(address, *_pinned(spec.url, address)) for address in addresses]
    with httpx.Client(timeout=TIMEOUT_S, follow_redirects=False) as client:
        for attempt in range(1, ATTEMPTS + 1):
            answer = None
            for address, url, host_header, server_name in targets:
                try:
                    answer = client.post(
                        url,
                        content=body,
                        headers={**headers, "Host": host_header},
                        extensions={"sni_hostname": server_name},
                    )
                except httpx.ConnectError as failure:  # this address is down: the next one
                    status, last = None, f"ConnectError: {failure} (to {address})"
                    continue
                except httpx.HTTPError as failure:
                    status, last = None, f"{type(failure).__name__}: {failure} (to {address})"
                break
            if answer is not None:
                status = answer.status_code
                if 200 <= status < 300:
                    return Delivery("delivered", attempt, status, None)
                last = f"HTTP {status}"
                if status != 429 and status < 500:
                    return Delivery("failed", attempt, status, last)
            if attempt < ATTEMPTS:
                sleep(waits[attempt - 1])
    return Delivery("failed", ATTEMPTS, status, last)
