"""The server's answers: JSON encoded by orjson, and errors in FastAPI's ``{"detail": ...}``
shape (a refusal's list of problems capped, see :mod:`._refusals`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi.responses import JSONResponse as _StarletteJSON

from mlplan.serving._refusals import capped

__all__ = ["JSONResponse", "error", "refusal"]


class JSONResponse(_StarletteJSON):
    """JSON answers encoded by orjson (NaN and infinities become null)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer: ``{"detail": detail}`` with ``status`` (and ``headers``)."""
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def refusal(
    status: int,
    problems: Sequence[Mapping[str, Any]],
    headers: dict[str, str] | None = None,
    *,
    total: int | None = None,
) -> JSONResponse:
    """An error answer naming ``problems``: ``{"detail": [...]}`` with at most the first
    100, and ``"more_errors"`` counting the rest of ``total`` (``len(problems)`` by
    default)."""
    return JSONResponse(capped(problems, total), status_code=status, headers=headers)
