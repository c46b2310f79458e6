"""API keys for the serving path: created once (the secret is shown once), stored as the
SHA-256 of the secret with their roles, revocable; the server checks them through a
:class:`KeyRing` that reads the store at most every few seconds."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from mlplan.errors import KeyNotFoundError, ParameterError
from mlplan.store import ApiKeyRecord, current_user, utcnow
from mlplan.workspace import Workspace

__all__ = [
    "ROLES",
    "ApiKeyInfo",
    "KeyRing",
    "NewApiKey",
    "Role",
    "create_key",
    "list_keys",
    "revoke_key",
]

Role = Literal["predict", "feedback", "admin"]
ROLES: tuple[Role, ...] = ("predict", "feedback", "admin")
_PREFIX = "mlp"


@dataclass(frozen=True)
class ApiKeyInfo:
    """A key as listed: never its secret."""

    key_id: str
    name: str
    roles: tuple[str, ...]
    created_by: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None

    def allows(self, role: str) -> bool:
        """Whether the key may call a route that needs ``role`` (admin may call every one)."""
        return self.active and (role in self.roles or "admin" in self.roles)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "key_id": self.key_id,
            "name": self.name,
            "roles": list(self.roles),
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }

    @classmethod
    def from_record(cls, record: ApiKeyRecord) -> ApiKeyInfo:
        """From the store's row."""
        return cls(
            record.key_id,
            record.name,
            tuple(record.roles),
            record.created_by,
            record.created_at,
            record.revoked_at,
        )


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: its record, and its token, which is shown only now (the store
    keeps a hash of its secret). The token stays out of ``repr``, so out of logs."""

    info: ApiKeyInfo
    token: str = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: the key as listed, and its token."""
        return self.info.to_dict() | {"token": self.token}

    # ``info, token = create_key(...)``, as when it returned a tuple: for one release.
    def _as_tuple(self) -> tuple[ApiKeyInfo, str]:
        warnings.warn(
            "create_key returns a NewApiKey: use its .info and .token (unpacking it as a "
            "tuple stops working in the next release)",
            DeprecationWarning,
            stacklevel=3,
        )
        return self.info, self.token

    def __iter__(self) -> Iterator[Any]:
        return iter(self._as_tuple())

    def __getitem__(self, index: int) -> Any:
        return self._as_tuple()[index]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_roles(roles: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(roles))
    if not chosen:
        raise ParameterError("roles", f"give at least one role with {{param}}: {', '.join(ROLES)}")
    bad = [r for r in chosen if r not in ROLES]
    if bad:
        raise ParameterError("roles", f"unknown role {bad[0]!r}; roles: {', '.join(ROLES)}")
    return chosen


def create_key(
    ws: Workspace, name: str, *, roles: Iterable[str], by: str | None = None
) -> NewApiKey:
    """A new key with ``roles``: its record and the token, which is shown only now.

    The token reads ``mlp_<key id>_<secret>``; the store keeps the key id and the SHA-256
    of the secret.
    """
    if not name.strip():
        raise ParameterError("name", "{param} must say who or what holds the key")
    chosen = _check_roles(roles)
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    with ws.store.transaction() as session:
        record = ApiKeyRecord(
            project_id=ws.project_id(session),
            key_id=key_id,
            name=name.strip(),
            roles=chosen,
            secret_sha256=_digest(secret),
            created_by=by or current_user(),
        )
        session.add(record)
        session.flush()
        info = ApiKeyInfo.from_record(record)
    return NewApiKey(info, f"{_PREFIX}_{key_id}_{secret}")


def _records(ws: Workspace) -> list[ApiKeyRecord]:
    with ws.store.transaction() as session:
        records = session.scalars(
            ws.select(ApiKeyRecord).order_by(ApiKeyRecord.created_at, ApiKeyRecord.id)
        ).all()
        session.expunge_all()
        return list(records)


def list_keys(ws: Workspace, *, include_revoked: bool = False) -> list[ApiKeyInfo]:
    """The project's keys, oldest first."""
    keys = [ApiKeyInfo.from_record(r) for r in _records(ws)]
    return [k for k in keys if include_revoked or k.active]


def revoke_key(ws: Workspace, key_id: str) -> ApiKeyInfo:
    """Revoke a key; servers stop accepting it within their refresh interval."""
    with ws.store.transaction() as session:
        record = session.scalar(ws.select(ApiKeyRecord).where(ApiKeyRecord.key_id == key_id))
        if record is not None:
            if record.revoked_at is None:
                record.revoked_at = utcnow()
            session.flush()
            return ApiKeyInfo.from_record(record)
    # Listed after the transaction: a second one inside it would wait on its own lock.
    known = ", ".join(k.key_id for k in list_keys(ws)) or "none"
    raise KeyNotFoundError(f"no API key {key_id!r}; active keys: {known}")


@dataclass(frozen=True)
class _Entry:
    info: ApiKeyInfo
    digest: str


class KeyRing:
    """The server's view of the keys: refreshed from the store every ``refresh_seconds``, so
    a revocation takes effect within that time without a query per request."""

    def __init__(self, ws: Workspace, *, refresh_seconds: float = 5.0) -> None:
        self._ws = ws
        self._refresh = refresh_seconds
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._loaded_at = -float("inf")
        self.refresh_failures = 0
        self._background = False
        self._stop = threading.Event()

    def _load(self) -> None:
        self._entries = {
            r.key_id: _Entry(ApiKeyInfo.from_record(r), r.secret_sha256)
            for r in _records(self._ws)
            if r.revoked_at is None
        }
        self._loaded_at = time.monotonic()

    def reload(self) -> None:
        """Read the keys now."""
        with self._lock:
            self._load()

    def refresh_in_background(self) -> None:
        """Re-read the keys every ``refresh_seconds`` in a thread, so that checking a request
        never waits for the store (a server calls this once it is up)."""

        def loop() -> None:
            while not self._stop.wait(self._refresh):
                try:
                    entries = {
                        r.key_id: _Entry(ApiKeyInfo.from_record(r), r.secret_sha256)
                        for r in _records(self._ws)
                        if r.revoked_at is None
                    }
                except Exception:  # the store is away: keep the keys we have
                    self.refresh_failures += 1
                    continue
                with self._lock:
                    self._entries = entries
                    self._loaded_at = time.monotonic()

        self._background = True
        threading.Thread(target=loop, name="mlplan-keys", daemon=True).start()

    def stop(self) -> None:
        """Stop the background refresh."""
        self._stop.set()

    def authenticate(self, token: str | None) -> ApiKeyInfo | None:
        """The key a token belongs to, if it is a valid, active one."""
        if not token:
            return None
        parts = token.strip().split("_", 2)
        if len(parts) != 3 or parts[0] != _PREFIX:
            return None
        with self._lock:
            if not self._background and time.monotonic() - self._loaded_at > self._refresh:
                try:
                    self._load()
                except Exception:  # the store is away: keep the keys we have, retry later
                    self._loaded_at = time.monotonic()
                    self.refresh_failures += 1
            entry = self._entries.get(parts[1])
        if entry is None:
            return None
        if not hmac.compare_digest(entry.digest, _digest(parts[2])):
            return None
        return entry.info
