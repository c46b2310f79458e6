"""Opening the store: SQLite (WAL) under ``.mlplan/`` by default, PostgreSQL by URL.

One :meth:`Store.transaction` per command: everything a command records commits together or
not at all. Schema migrations (Alembic) are applied on open.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker

from mlplan._deprecated import REMOVED_IN
from mlplan.errors import StoreError
from mlplan.store._artifacts import ArtifactStore
from mlplan.store._tables import ProjectRecord, dialect_insert, utcnow

__all__ = ["HEAD_REVISION", "STORE_DIR", "STORE_URL_ENV", "Store", "open_store"]

T = TypeVar("T")

STORE_DIR = ".mlplan"
STORE_URL_ENV = "MLPLAN_STORE_URL"
ARTIFACTS_ENV = "MLPLAN_ARTIFACTS_DIR"  # a folder a team shares, beside a PostgreSQL store
# The newest migration; a test checks it against Alembic's head. Knowing it here lets a
# command skip importing Alembic when the schema is already current.
HEAD_REVISION = "0013"
_MIGRATIONS = Path(__file__).with_name("migrations")


def _json_loads() -> Callable[[str], Any]:
    """How the store's JSON columns are read: orjson where it is installed (the serving and
    ui extras), two to three times faster over a page that reads a thousand models' records,
    and the standard library for what orjson refuses (``NaN``, which ``json.dumps`` writes,
    or an integer past 64 bits)."""
    try:
        import orjson
    except ImportError:
        return json.loads

    def loads(text: str) -> Any:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return json.loads(text)

    return loads


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        # We issue BEGIN ourselves (below), so pysqlite must not.
        dbapi_connection.isolation_level = None


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front: concurrent commands queue (busy_timeout)
    # instead of failing when a read transaction later needs to write.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class Store:
    """The single record of what happened in a project, and its artifacts.

    Use :func:`open_store` rather than the constructor.
    """

    def __init__(self, engine: Engine, artifacts: ArtifactStore) -> None:
        self.engine = engine
        self.artifacts = artifacts
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextlib.contextmanager
    def transaction(self, *, lock: str | None = None) -> Iterator[Session]:
        """A session whose work commits on normal exit and rolls back on any exception.

        ``lock`` names a write lock held until the end of the transaction, so that commands
        which number what they make (versions, splits, models) never race: on PostgreSQL an
        advisory lock on the name; on SQLite every transaction takes the write lock already
        (``BEGIN IMMEDIATE``).
        """
        session = self._sessions()
        try:
            if lock is not None and self.engine.dialect.name == "postgresql":
                session.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(lock)}
                )
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            what = "could not be reached" if _unreached(exc) else "refused the write"
            raise StoreError(
                f"the store at {self.url} {what}: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}"
            ) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def project_id(self, session: Session, key: str, *, name: str | None = None) -> int:
        """The id of the project known by ``key``, created on first use (safe when commands
        race); its recorded name follows the plan's when the project was renamed."""
        found = session.execute(
            select(ProjectRecord.id, ProjectRecord.name).where(ProjectRecord.key == key)
        ).first()
        if found is not None:
            if name is not None and found.name != name:
                session.execute(
                    update(ProjectRecord).where(ProjectRecord.id == found.id).values(name=name)
                )
            return int(found.id)
        session.execute(
            self.insert(ProjectRecord)
            .values(key=key, name=name or key, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["key"])
        )
        return int(session.scalar(select(ProjectRecord.id).where(ProjectRecord.key == key)) or 0)

    def insert(self, table: Any) -> Any:
        """An INSERT that supports ``on_conflict_do_nothing`` on this store's dialect."""
        return dialect_insert(self.engine, table)

    def write(self, work: Callable[[Session], T], *, attempts: int = 5) -> T:
        """Deprecated: ``Workspace.write()`` and ``Workspace.record()`` hold the project's write
        lock instead. Runs ``work`` in a transaction, again from the start when a concurrent
        command took the same unique number first."""
        warnings.warn(
            f"Store.write is deprecated: use Workspace.write() or Workspace.record() (it goes "
            f"in mlplan {REMOVED_IN})",
            DeprecationWarning,
            stacklevel=2,
        )
        for attempt in range(attempts):
            try:
                with self.transaction() as session:
                    return work(session)
            except StoreError as exc:
                if not isinstance(exc.__cause__, IntegrityError) or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()


def _unreached(exc: SQLAlchemyError) -> bool:
    """Whether ``exc`` says the database never answered (a connection refused, dropped or
    lost), not that it refused what was asked: a server's own errors carry a SQLSTATE."""
    return isinstance(exc, OperationalError | InterfaceError) and (
        exc.connection_invalidated or getattr(exc.orig, "sqlstate", "") is None
    )


def _lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name`` (stable across processes)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def open_store(root: str | Path, *, url: str | None = None, migrate: bool = True) -> Store:
    """Open (and create or migrate) the store of the project at ``root``.

    The database is ``url``, else ``$MLPLAN_STORE_URL``, else SQLite at ``root/.mlplan/store.db``.
    Artifacts live under ``$MLPLAN_ARTIFACTS_DIR`` (for a team: a folder everyone reaches),
    else ``root/.mlplan/artifacts``.

    Raises
    ------
    StoreError
        When the URL is malformed, the database does not answer, or migrations fail.
    """
    root = Path(root)
    state_dir = root / STORE_DIR
    url = url or os.environ.get(STORE_URL_ENV) or None
    if url is None:
        state_dir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{state_dir / 'store.db'}"
    engine = _engine(url)
    artifacts = Path(os.environ.get(ARTIFACTS_ENV) or state_dir / "artifacts")
    store = Store(engine, ArtifactStore(artifacts))
    if migrate:
        _migrate(store)
    return store


def _engine(url: str) -> Engine:
    where = f"${STORE_URL_ENV}" if os.environ.get(STORE_URL_ENV) == url else "the store URL"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"{where} is not a database URL: expected e.g. sqlite:///path/store.db or "
            "postgresql+psycopg://user:password@host:5432/db"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() not in {"sqlite", "postgresql"}:
        raise StoreError(f"{where} {shown!r}: only sqlite and postgresql stores are supported")
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        engine = create_engine(parsed, pool_pre_ping=True, json_deserializer=_json_loads())
    except (NoSuchModuleError, ModuleNotFoundError):
        raise StoreError(
            "a PostgreSQL store requires 'psycopg'. Install it with: pip install 'mlplan[postgres]'"
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StoreError(
            f"cannot connect to the store at {shown}: {reason}. Check {where} "
            f"(unset ${STORE_URL_ENV} to use SQLite under {STORE_DIR}/)"
        ) from None
    return engine


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        revision = connection.scalar(text("SELECT version_num FROM alembic_version"))
        return None if revision is None else str(revision)


def _migrate(store: Store) -> None:
    if _current_revision(store.engine) == HEAD_REVISION:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    try:
        with store.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # One migration at a time; the others wait, then find the schema current.
                connection.execute(text("SELECT pg_advisory_xact_lock(4242424242)"))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"migrating the store at {store.url} failed: {exc}") from exc
