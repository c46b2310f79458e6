"""Routes another package adds to the server (``create_app(config, routes=...)``): each
declares its method, path and role as ``ROUTE_ROLES`` does, and a plain function that answers
it off the event loop. The server checks the caller's key against the role, reads the JSON
body and hands the function what it needs; it never imports the package that made them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from mlplan.errors import UsageError
from mlplan.serving._config import ROUTE_ROLES, Access
from mlplan.serving._keys import ApiKeyInfo
from mlplan.workspace import Workspace

__all__ = ["ExtraRoute", "RouteCall", "route_roles"]


@dataclass(frozen=True)
class RouteCall:
    """One call of an extra route, as its handler sees it: the server's workspace, the
    path's parameters, the JSON body (None for a GET or an empty body), and the caller's key
    (None on a server without keys, ``auth: none``)."""

    ws: Workspace
    params: dict[str, str]
    body: Any
    key: ApiKeyInfo | None


@dataclass(frozen=True)
class ExtraRoute:
    """A route another package serves: ``method path`` behind ``role``, answered by
    ``handler`` in a worker thread (it may use the store). The handler returns the status
    and, under 400, the JSON answer; from 400, the error's message (answered as the server
    answers its own errors, ``{"detail": message}``)."""

    method: Literal["GET", "POST"]
    path: str
    role: Access
    handler: Callable[[RouteCall], tuple[int, Any]]


def route_roles(routes: Iterable[ExtraRoute] = ()) -> dict[tuple[str, str], Access]:
    """Every route of a server with ``routes`` added, and the role it needs: ``ROUTE_ROLES``
    and theirs.

    Raises
    ------
    UsageError
        An extra route that is one of the server's own, or given twice.
    """
    roles = dict(ROUTE_ROLES)
    for route in routes:
        if (route.method, route.path) in roles:
            raise UsageError(
                f"{route.method} {route.path} is served already; an extra route needs a path "
                "of its own"
            )
        roles[(route.method, route.path)] = route.role
    return roles
