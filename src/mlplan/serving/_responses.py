"""The server's answers: JSON encoded by orjson, and errors in FastAPI's ``{"detail": ...}``
shape."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse as _StarletteJSON

__all__ = ["JSONResponse", "error"]


class JSONResponse(_StarletteJSON):
    """JSON answers encoded by orjson (NaN and infinities become null)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer: ``{"detail": detail}`` with ``status`` (and ``headers``)."""
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)
