"""Where the server's settings live apart from the web framework: the routes and their roles,
and the process configuration."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from typing import Literal

from mlplan.errors import UsageError

__all__ = ["CONFIG_ENV", "MULTIPROC_ENV", "ROUTE_ROLES", "Access", "ServeConfig", "is_loopback"]

Access = Literal["public", "predict", "feedback", "admin"]

ROUTE_ROLES: dict[tuple[str, str], Access] = {
    ("GET", "/v2"): "predict",
    ("GET", "/v2/health/live"): "public",
    ("GET", "/v2/health/ready"): "public",
    ("GET", "/v2/models/{name}/ready"): "public",
    ("GET", "/v2/models/{name}/versions/{version}/ready"): "public",
    ("GET", "/v2/models/{name}"): "predict",
    ("GET", "/v2/models/{name}/versions/{version}"): "predict",
    ("GET", "/v2/models/{name}/config"): "predict",
    ("GET", "/v2/models/{name}/versions/{version}/config"): "predict",
    ("POST", "/v2/models/{name}/infer"): "predict",
    ("POST", "/v2/models/{name}/versions/{version}/infer"): "predict",
    ("POST", "/v1/predict"): "predict",
    ("POST", "/v1/preview"): "admin",
    ("POST", "/v1/feedback"): "feedback",
    ("GET", "/metrics"): "admin",
}
"""Every route and the role it needs: the one place that says who may call what."""

CONFIG_ENV = "MLPLAN_SERVE_CONFIG"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Where the workers of one server keep their metrics (prometheus_client's multiprocess mode)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    """What a server process serves and how."""

    root: str
    model: str
    host: str = "127.0.0.1"
    store_url: str | None = None
    max_body_bytes: int = 1_000_000
    key_refresh_seconds: float = 5.0
    max_batch_rows: int = 512
    max_wait_ms: float = 0.0
    max_queue_rows: int = 8192
    request_timeout_seconds: float = 10.0
    freeze_gc: bool = False  # a server process (mlplan serve) sets it; an app in tests not
    deployment: str | None = None  # the deployment served (mlplan serve --deployment NAME)
    route_refresh_seconds: float = 1.0  # how often a deployment's server reads its rollout
    health_seconds: float = 0.0  # how often a server logs its health (CPU, memory); 0: never

    def to_json(self) -> str:
        """For the environment of worker processes."""
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        """Back from :meth:`to_json`."""
        return cls(**json.loads(text))

    @classmethod
    def from_env(cls) -> ServeConfig:
        """The configuration ``mlplan serve`` put in the environment for its worker
        processes (``$MLPLAN_SERVE_CONFIG``).

        Raises
        ------
        UsageError
            It is not set: the process was not started by ``mlplan serve``.
        """
        text = os.environ.get(CONFIG_ENV)
        if not text:
            raise UsageError(f"${CONFIG_ENV} is not set; start the server with mlplan serve")
        return cls.from_json(text)
