"""Request ids that verify themselves, and the stand-ins for strings a client chose.

A request id is ``prefix + counter + tag``: a random prefix per process, a counter, and a
tag (keyed BLAKE2b) made with the prediction log's key (``.pii-key``, shared by every worker
and kept across restarts). Any worker of the project can tell an id it issued from one it
never issued without a lookup, and issuing one costs a hash, no system call.

Strings a client chose that are not the model's (an unknown field's name, an Open Inference
request id) may be personal data: errors never echo them and the log never keeps them
verbatim, only their keyed hash (HMAC-SHA-256, as the log hashes personal data).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets

__all__ = ["ID_LENGTH", "RequestIds", "keyed_hash", "unknown_field"]

_PREFIX = 12  # hex digits of the per-process prefix (48 random bits)
_COUNTER = 12  # hex digits of the counter (2.8e14 ids per process)
_TAG = 6  # bytes of tag: 48 bits, past any online guessing
ID_LENGTH = _PREFIX + _COUNTER + 2 * _TAG
"""Characters in a request id (hex digits)."""


class RequestIds:
    """The request ids of one server process, signed with ``key`` (the log's key).

    Examples
    --------
    >>> key = bytes(32)
    >>> ids = RequestIds(key)
    >>> first = ids.issue()
    >>> len(first), RequestIds(key).issued(first), RequestIds(bytes(32)).issued("ada@x.org")
    (36, True, False)
    """

    __slots__ = ("_counter", "_mac", "_prefix", "key")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._prefix = secrets.token_hex(_PREFIX // 2)
        self._counter = itertools.count()
        self._mac = hashlib.blake2b(key=key, digest_size=_TAG)  # keyed once, copied per id

    def _tag(self, body: str) -> str:
        mac = self._mac.copy()
        mac.update(body.encode())
        return mac.hexdigest()

    def issue(self) -> str:
        """A new id: unique in this process, and unlike any other process's (its prefix)."""
        body = f"{self._prefix}{next(self._counter):0{_COUNTER}x}"
        return body + self._tag(body)

    def issued(self, request_id: str) -> bool:
        """Whether ``request_id`` was issued by a server holding this key (any process)."""
        if len(request_id) != ID_LENGTH or not request_id.isascii():
            return False
        body, tag = request_id[: _PREFIX + _COUNTER], request_id[_PREFIX + _COUNTER :]
        return hmac.compare_digest(tag.encode(), self._tag(body).encode())


def keyed_hash(key: bytes, text: str) -> str:
    """``hmac:`` and 32 hex digits of HMAC-SHA-256 of ``text`` under ``key``: what the log
    keeps of a string it may not keep verbatim (the same form :class:`PiiPolicy` gives a
    personal value, so equal strings stay joinable without being readable)."""
    digest = hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return "hmac:" + digest.hexdigest()[:32]


def unknown_field(key: bytes, name: object, position: int) -> tuple[str, str]:
    """How an error names a field the server does not know, never by its name: the place
    in ``loc`` (``<unknown field 2>``: its position among the object's keys, from 0) and a
    description (that position, its length, and the start of its keyed hash, which whoever
    holds the log's key can match against a name they suspect)."""
    text = str(name)
    fingerprint = keyed_hash(key, text)[5:13]
    return (
        f"<unknown field {position}>",
        f"unknown field (key {position} of the object, from 0: {len(text)} characters, "
        f"keyed hash {fingerprint})",
    )
