"""The HTTP/1.1 protocol ``mlplan serve`` runs uvicorn with: uvicorn's own (httptools), with
the request line and headers of each request bounded.

httptools gathers a header however long it grows, and uvicorn sets it no limit: one connection
sending a 100 MB header line, without ever finishing it, held 100 MB of the server's memory and
its event loop for 17 s, before any key was asked for. Past :data:`MAX_HEAD_BYTES` of request
line and headers, the request is answered 431 and its connection closed.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["MAX_HEAD_BYTES", "BoundedHttpToolsProtocol"]

MAX_HEAD_BYTES = 1 << 20
"""The most bytes a request's line and headers may take (1 MiB; clients send a few KB)."""

_MESSAGE = b'{"detail":"the request line and headers are larger than 1,048,576 bytes"}'
_REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"content-length: " + str(len(_MESSAGE)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _MESSAGE
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, counting the bytes received while a request's line and
    headers are incomplete (a read that also ends the previous request's body counts whole:
    at most one read, 256 KB, more than the headers took)."""

    _in_head = True  # from the connection's first byte until its request's headers end
    _head_bytes = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        transport: Any = self.transport
        if self._in_head and not transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                transport.write(_REFUSAL)
                transport.close()
