"""Content-addressed files: ``.mlplan/artifacts/ab/cdef…`` named by their sha256.

Files are written to a temporary name in the same folder (``.incoming-*``, locked with
``flock`` while it is written) and renamed into place, so a reader never sees half a file;
writing the same content twice only refreshes the file's time. A command stores its files
inside :meth:`ArtifactStore.staged`, which holds ``.gc.lock`` shared until the command's record
is committed: ``mlplan gc`` takes it exclusively before it looks for files no record refers
to, so it never takes a file whose record is still on its way.

Beside them, ``tables/`` holds a cache: a columnar copy of a CSV or JSONL snapshot as it was
parsed (``tables/<snapshot sha256>.<what decided the parse>.arrow``, an Arrow IPC file that
reading memory-maps). No record names a copy; it is rebuilt from its snapshot whenever it is
missing or cannot be trusted, and ``mlplan gc`` removes the copies whose snapshot is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from sqlalchemy.orm import Session

from mlplan.store._tables import ArtifactRecord, dialect_insert, utcnow

__all__ = [
    "ArtifactRef",
    "ArtifactStore",
    "ArtifactWriter",
    "StoredFile",
    "package_sha256",
    "sha256_file",
]

_CHUNK = 1 << 20
# ArtifactWriter puts what it wrote on the disk, in a thread, every so many bytes.
WRITEBACK_BYTES = 16 << 20
INCOMING_PREFIX = ".incoming-"
_GC_LOCK = ".gc.lock"
_HEX = frozenset("0123456789abcdef")
TABLES_DIR = "tables"
_TABLE_COPY = re.compile(r"([0-9a-f]{64})\.[^/]+\.arrow")


@dataclass(frozen=True)
class ArtifactRef:
    """The address of an artifact's bytes."""

    sha256: str
    size_bytes: int


def sha256_file(path: str | Path, *, cancelled: Callable[[], bool] | None = None) -> ArtifactRef:
    """Hash a file without keeping it in memory (``cancelled``, asked between chunks, stops
    it with :class:`InterruptedError`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"
    >>> _ = p.write_bytes(b"abc")
    >>> sha256_file(p).sha256[:12]
    'ba7816bf8f01'
    """
    digest = hashlib.sha256()
    size = 0
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            if cancelled is not None and cancelled():
                raise InterruptedError(f"hashing {path} was cancelled")
            digest.update(chunk)
            size += len(chunk)
    return ArtifactRef(digest.hexdigest(), size)


def package_sha256(files: Mapping[str, str]) -> str:
    """The hash of a package made of content-addressed files (file name -> sha256): the same
    files give the same hash; a file changed (a new ``metadata.json``) gives another.

    Examples
    --------
    >>> package_sha256({"model.onnx": "a" * 64, "metadata.json": "b" * 64})[:12]
    '72edcef7e8d4'
    """
    manifest = json.dumps(dict(sorted(files.items())), separators=(",", ":"))
    return hashlib.sha256(manifest.encode()).hexdigest()


@dataclass(frozen=True)
class StoredFile:
    """A file in the artifact folder: an artifact (named by its hash) or a temporary file
    left by a copy (``sha256`` None); among the columnar copies of tables, a copy (``sha256``:
    its snapshot's hash)."""

    path: Path
    sha256: str | None
    size_bytes: int
    mtime: float


class ArtifactStore:
    """The folder of content-addressed artifacts."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._created: list[Path] | None = None

    @contextlib.contextmanager
    def staged(self) -> Iterator[None]:
        """Files this block adds are removed again if the block fails (the command's
        transaction did not commit, so nothing refers to them). The block holds the folder's
        gc lock shared, so enter it before the command's transaction (never inside one:
        ``mlplan gc`` holds the lock while it reads the store)."""
        created: list[Path] = []
        with self._lock("shared"):
            self._created = created
            try:
                yield
            except BaseException:
                for path in created:
                    path.unlink(missing_ok=True)
                raise
            finally:
                self._created = None

    @contextlib.contextmanager
    def collecting(self) -> Iterator[bool]:
        """Hold the folder's gc lock exclusively, if no command is storing files now: yields
        whether it is held (False: a command is between storing its files and committing its
        record, so files no record names yet may be its own)."""
        with self._lock("exclusive") as held:
            yield held

    @contextlib.contextmanager
    def _lock(self, mode: Literal["shared", "exclusive"]) -> Iterator[bool]:
        """``flock`` on ``.gc.lock``: shared waits for gc; exclusive never waits. Where the
        folder cannot be locked (some network file systems), shared goes on unlocked and
        exclusive reports the lock as held, leaving gc to its age rule."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        try:
            # Read-only, created for everyone: teammates sharing the folder lock it too.
            fd = os.open(self.root / _GC_LOCK, os.O_RDONLY | os.O_CREAT, 0o666)
        except OSError:
            yield mode == "exclusive"
            return
        try:
            try:
                if mode == "shared":
                    fcntl.flock(fd, fcntl.LOCK_SH)
                else:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except BlockingIOError:
                held = False
            except OSError:  # no locks here: say held, and let the age rule decide
                held = True
            yield held
        finally:
            os.close(fd)  # releases the lock

    def files(self) -> Iterator[StoredFile]:
        """Every artifact in the folder, and every temporary file a copy left
        (``.incoming-*``); anything else in the folder is not listed."""
        if not self.root.is_dir():
            return
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(INCOMING_PREFIX):
                found = _stat(entry, None)
                if found is not None:
                    yield found
            elif len(entry.name) == 2 and set(entry.name) <= _HEX and entry.is_dir():
                for item in sorted(entry.iterdir()):
                    sha = entry.name + item.name
                    if len(sha) == 64 and set(item.name) <= _HEX:
                        found = _stat(item, sha)
                        if found is not None:
                            yield found

    @property
    def tables(self) -> Path:
        """The folder of columnar copies of snapshots (a cache, see the module's docstring)."""
        return self.root / TABLES_DIR

    def table_copy(self, sha256: str, key: str) -> Path:
        """Where the columnar copy of the snapshot ``sha256``, parsed as ``key`` says (one
        name of letters, digits, ``-`` and ``.``), lives (whether or not it exists)."""
        return self.tables / f"{sha256}.{key}.arrow"

    def table_copies(self) -> Iterator[StoredFile]:
        """Every columnar copy (``sha256``: its snapshot's hash), and every temporary file a
        copy being written left (``.incoming-*``, ``sha256`` None); nothing else."""
        if not self.tables.is_dir():
            return
        for entry in sorted(self.tables.iterdir()):
            copy = _TABLE_COPY.fullmatch(entry.name)
            if copy is not None or entry.name.startswith(INCOMING_PREFIX):
                found = _stat(entry, copy.group(1) if copy is not None else None)
                if found is not None:
                    yield found

    @contextlib.contextmanager
    def copy_writer(self, target: Path) -> Iterator[Path]:
        """A temporary file in ``target``'s folder to write in the block (locked meanwhile,
        so gc leaves it alone); once the block ends it is flushed to disk and renamed onto
        ``target`` (two writers of one target: the last rename wins, each file whole), or
        removed if the block failed.

        Raises
        ------
        OSError
            The folder cannot be made or written (read-only, disk full).
        """
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=INCOMING_PREFIX)
        tmp = Path(tmp_name)
        try:
            _hold(fd)
            yield tmp
            os.fsync(fd)  # renamed only once whole on disk: a crash leaves no file cut short
            tmp.chmod(0o644)
            tmp.replace(target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)

    @staticmethod
    def being_written(path: Path) -> bool:
        """Whether a live command holds the temporary file ``path`` (its copy is under way);
        False when it cannot be told (no lock on this file system, another user's file)."""
        import fcntl

        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(fd)
        return False

    def path(self, sha256: str) -> Path:
        """Where the artifact with this hash lives (whether or not it exists)."""
        return self.root / sha256[:2] / sha256[2:]

    def exists(self, sha256: str) -> bool:
        """Whether the artifact's bytes are present."""
        return self.path(sha256).is_file()

    def put_file(self, source: str | Path) -> ArtifactRef:
        """Copy a file in, hashing while copying."""
        with Path(source).open("rb") as fh:
            return self._put_stream(fh)

    def put_bytes(self, data: bytes) -> ArtifactRef:
        """Store bytes."""
        return self._put_stream(io.BytesIO(data))

    def _put_stream(self, source: BinaryIO) -> ArtifactRef:
        with self.writer() as out:
            while chunk := source.read(_CHUNK):
                out.write(chunk)
        assert out.ref is not None
        return out.ref

    @contextlib.contextmanager
    def writer(self) -> Iterator[ArtifactWriter]:
        """A file stored as it is written, hashed on the way: ``write`` its bytes in the
        block; once the block ends it is stored under its hash (the writer's ``ref``), or
        removed if the block failed.

        Examples
        --------
        >>> import tempfile
        >>> store = ArtifactStore(Path(tempfile.mkdtemp()))
        >>> with store.writer() as out:
        ...     out.write(b"ab")
        ...     out.write(b"c")
        >>> out.ref.sha256[:12], store.path(out.ref.sha256).read_bytes()
        ('ba7816bf8f01', b'abc')
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=INCOMING_PREFIX)
        tmp = Path(tmp_name)
        try:
            _hold(fd)  # while it is written: gc leaves a temporary file in use alone
            with os.fdopen(fd, "wb") as file:
                out = ArtifactWriter(file)
                try:
                    yield out
                    file.flush()
                finally:
                    out.close()
                os.fsync(file.fileno())
            sha = out.digest.hexdigest()
            target = self.path(sha)
            if target.exists():
                tmp.unlink()
                # Fresh again: gc's age rule leaves a file some command just stored alone.
                with contextlib.suppress(OSError):
                    os.utime(target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp.chmod(0o644)  # teammates sharing the folder read each other's artifacts
                tmp.replace(target)
                if self._created is not None:
                    self._created.append(target)
            out.ref = ArtifactRef(sha, out.size)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @staticmethod
    def register(session: Session, ref: ArtifactRef, *, kind: str, media_type: str) -> ArtifactRef:
        """Record the artifact in the store (idempotent). Projects share the table, so two
        commands of different projects (which do not share a write lock) may record the same
        bytes at once: the second insert does nothing instead of failing."""
        if session.get(ArtifactRecord, ref.sha256) is None:
            session.execute(
                dialect_insert(session, ArtifactRecord)
                .values(
                    sha256=ref.sha256,
                    kind=kind,
                    size_bytes=ref.size_bytes,
                    media_type=media_type,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["sha256"])
            )
        return ref


class ArtifactWriter:
    """What :meth:`ArtifactStore.writer` yields: bytes written are hashed and stored.

    Every :data:`WRITEBACK_BYTES` written are put on the disk by a thread of its own
    (``fdatasync``) while the caller goes on, so the ``fsync`` that ends the file waits for
    the last few only, not for the whole file (0.25-0.4 s at the end of a 275 MB snapshot).
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.digest = hashlib.sha256()
        self.size = 0
        self.handed = 0  # bytes handed to the syncing thread
        self.ref: ArtifactRef | None = None  # once stored
        self._syncer: _Syncer | None = None

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``."""
        self.digest.update(chunk)
        self.size += len(chunk)
        self._file.write(chunk)
        if self.size - self.handed >= WRITEBACK_BYTES:
            self._file.flush()
            if self._syncer is None:
                self._syncer = _Syncer(self._file.fileno())
            self._syncer.wake()
            self.handed = self.size

    def restart(self) -> None:
        """Forget what was written: the file starts again, empty."""
        self._file.seek(0)
        self._file.truncate()
        self.digest = hashlib.sha256()
        self.size = self.handed = 0

    def close(self) -> None:
        """Stop the syncing thread (before the file is closed).

        Raises
        ------
        OSError
            The first error the thread met putting bytes on the disk: Linux reports a lost
            write once per open file, so the final fsync would not see it again.
        """
        if self._syncer is not None:
            self._syncer.stop()
            if self._syncer.error is not None:
                raise self._syncer.error


class _Syncer:
    """A thread that puts a file's bytes written so far on the disk each time it is woken."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.error: OSError | None = None  # the first failed sync, raised by close()
        self._woken = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="mlplan-sync", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._woken.set()

    def stop(self) -> None:
        self._stopping = True
        self._woken.set()
        self._thread.join()

    def _run(self) -> None:
        sync = getattr(os, "fdatasync", os.fsync)
        while True:
            self._woken.wait()
            self._woken.clear()
            if self._stopping:
                return
            try:
                sync(self._fd)
            except OSError as exc:  # kept: the final fsync would not report it again
                self.error = self.error or exc
                return


def _hold(fd: int) -> None:
    """Lock the temporary file ``fd`` for this process (released when it is closed, or the
    process dies); where locks are not supported, go on without."""
    import fcntl

    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _stat(path: Path, sha256: str | None) -> StoredFile | None:
    try:
        info = path.stat()
    except OSError:  # removed meanwhile
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return StoredFile(path, sha256, info.st_size, info.st_mtime)
