"""The server's answers: JSON encoded by orjson, and errors in FastAPI's ``{"detail": ...}``
shape (a refusal's list of problems capped, see :mod:`._refusals`) — or, under ``/v2``, in
the Open Inference Protocol's ``{"error": "..."}``, the one string its clients decode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi.responses import JSONResponse as _StarletteJSON

from mlplan.serving._refusals import capped

__all__ = [
    "ErrorResponse",
    "JSONResponse",
    "error",
    "internal_error",
    "is_open_inference",
    "refusal",
]


class JSONResponse(_StarletteJSON):
    """JSON answers encoded by orjson (NaN and infinities become null)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def is_open_inference(path: str) -> bool:
    """Whether ``path`` is one of the Open Inference Protocol's (``/v2`` and below)."""
    return path == "/v2" or path.startswith("/v2/")


class ErrorResponse(JSONResponse):
    """An error answer: ``{"detail": ...}`` (FastAPI's shape, kept by ``/v1`` and the rest),
    and under ``/v2`` the Open Inference Protocol's ``{"error": "one message"}``.

    The shape is chosen when the answer is sent, by the request's path, so that every error
    takes its route's shape wherever it was raised: a route, the key check, the body limit,
    readiness, overload, or a route that does not exist.
    """

    def __init__(
        self, content: Mapping[str, Any], status_code: int, headers: Mapping[str, str] | None
    ) -> None:
        self.content = content
        super().__init__(content, status_code=status_code, headers=headers)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if is_open_inference(scope.get("path", "")):
            self.body = orjson.dumps({"error": protocol_message(self.content)})
            length = str(len(self.body)).encode("latin-1")
            self.raw_headers = [
                (k, length if k == b"content-length" else v) for k, v in self.raw_headers
            ]
        await super().__call__(scope, receive, send)


def protocol_message(content: Mapping[str, Any]) -> str:
    """The one message of an error body (``{"detail": ..., "more_errors": n}``): a string as
    it is; each problem as ``where: what`` (``inputs[0].shape: expected ...``), joined."""
    detail = content.get("detail")
    if isinstance(detail, str):
        return detail
    if not isinstance(detail, list):
        return orjson.dumps(detail).decode()
    parts = []
    for problem in detail:
        where = _where(problem.get("loc") or ())
        parts.append(f"{where}: {problem.get('msg')}" if where else str(problem.get("msg")))
    more = content.get("more_errors")
    if more:
        parts.append(f"and {more:,} more")
    return "; ".join(parts)


def _where(loc: Sequence[Any]) -> str:
    """``["body", "inputs", 0, "shape"]`` as ``inputs[0].shape``."""
    parts = list(loc)[1:] if loc and loc[0] == "body" else list(loc)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def error(status: int, detail: Any, headers: dict[str, str] | None = None) -> ErrorResponse:
    """An error answer: ``{"detail": detail}`` with ``status`` (and ``headers``); under
    ``/v2``, ``{"error": "..."}``."""
    return ErrorResponse({"detail": detail}, status, headers)


def refusal(
    status: int,
    problems: Sequence[Mapping[str, Any]],
    headers: dict[str, str] | None = None,
    *,
    total: int | None = None,
) -> ErrorResponse:
    """An error answer naming ``problems``: ``{"detail": [...]}`` with at most the first
    100, and ``"more_errors"`` counting the rest of ``total`` (``len(problems)`` by
    default); under ``/v2``, the same problems in one message."""
    return ErrorResponse(capped(problems, total), status, headers)


def internal_error() -> ErrorResponse:
    """The answer to a bug (500), in the route's error shape, never the exception's text
    (the traceback goes to the server's output)."""
    return error(500, "internal error in mlplan serve (a bug): the server's output has the details")
