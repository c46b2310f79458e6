"""Content-addressed files: ``.mlplan/artifacts/ab/cdef…`` named by their sha256.

Files are written to a temporary name in the same folder and renamed into place, so a reader
never sees half a file; writing the same content twice is a no-op.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from mlplan.store._tables import ArtifactRecord, dialect_insert, utcnow

__all__ = ["ArtifactRef", "ArtifactStore", "package_sha256", "sha256_file"]

_CHUNK = 1 << 20


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


class ArtifactStore:
    """The folder of content-addressed artifacts."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._created: list[Path] | None = None

    @contextlib.contextmanager
    def staged(self) -> Iterator[None]:
        """Files this block adds are removed again if the block fails (the command's
        transaction did not commit, so nothing refers to them)."""
        created: list[Path] = []
        self._created = created
        try:
            yield
        except BaseException:
            for path in created:
                path.unlink(missing_ok=True)
            raise
        finally:
            self._created = None

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
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            target = self.path(sha)
            if target.exists():
                tmp.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp.chmod(0o644)  # teammates sharing the folder read each other's artifacts
                tmp.replace(target)
                if self._created is not None:
                    self._created.append(target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return ArtifactRef(sha, size)

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
