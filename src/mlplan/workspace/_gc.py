"""What crashes leave behind, found and removed: ``mlplan gc``.

A command killed mid-way leaves temporary files (a ``data add`` copying a file into the
artifact folder, or a command writing a table's columnar copy into ``tables/``: ``.incoming-*``;
a report or export being written: ``.NAME.XXXXXXXX.tmp``) and artifacts its record never came
to name; a server killed leaves its ``serve`` run ``running``. The columnar copies of snapshots
that are gone are of no more use. :func:`collect_garbage` lists them (a dry run) or removes
them (``apply``), and closes the runs whose process is gone as ``crashed``.

What it takes, it takes with care: a temporary file only when older than ``older_than`` and
not locked by a live writer; an artifact only when no record of any project in the store names
it (:func:`mlplan.store.referenced_artifacts`), when it is older than ``older_than``, and while
no command is storing artifacts (the artifact folder's gc lock); a columnar copy when older than
``older_than`` and its snapshot is not stored (or is an artifact gc removes). Each file is
removed on its own, so a gc that is itself killed leaves nothing half-done.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlplan.errors import ParameterError
from mlplan.store import (
    ARTIFACTS_ENV,
    STORE_DIR,
    ArtifactStore,
    CrashedRun,
    StoredFile,
    referenced_artifacts,
)
from mlplan.workspace._crashed import close_crashed_runs
from mlplan.workspace._workspace import Workspace

__all__ = ["GarbageFile", "GarbageReport", "collect_garbage", "parse_duration"]

DEFAULT_AGE = "1h"
# Folders mlplan writes into by default (reports/MODEL, exports/MODEL-TARGET, labels/):
# beside the project root, the only places gc looks for temporary files. Files written where
# --out pointed elsewhere are left alone.
_OUTPUT_FOLDERS = ("reports", "exports", "labels")
# staged_file, write_atomic and the evaluation's report files: ".NAME." + mkstemp's 8 + ".tmp"
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)?")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_KINDS = ("temporary", "artifact", "copy")


@dataclass(frozen=True)
class GarbageFile:
    """A file gc removes (or, in a dry run, would): a temporary file a killed command left, an
    artifact no record names, or the columnar copy of a snapshot that is gone (``sha256``: the
    snapshot's)."""

    kind: Literal["temporary", "artifact", "copy"]
    path: Path
    size_bytes: int
    age_seconds: float
    sha256: str | None = None

    def to_dict(self, root: Path) -> dict[str, Any]:
        """A JSON-ready view, the path relative to ``root`` when inside it."""
        try:
            shown = self.path.relative_to(root).as_posix()
        except ValueError:
            shown = str(self.path)
        return {
            "kind": self.kind,
            "path": shown,
            "sha256": self.sha256,
            "bytes": self.size_bytes,
            "age_seconds": round(self.age_seconds),
        }


@dataclass(frozen=True)
class GarbageReport:
    """What :func:`collect_garbage` found: the files it removed (``applied``) or would remove,
    why it kept others, and the runs it closed as crashed."""

    applied: bool
    older_than: dt.timedelta
    files: list[GarbageFile]
    kept: list[str] = field(default_factory=list)
    crashed_runs: list[CrashedRun] = field(default_factory=list)
    run_id: str | None = None

    @property
    def size_bytes(self) -> int:
        """The bytes the files hold."""
        return sum(f.size_bytes for f in self.files)

    def counts(self) -> dict[str, int]:
        """How many files of each kind."""
        return {kind: sum(f.kind == kind for f in self.files) for kind in _KINDS}

    def to_dict(self, root: Path) -> dict[str, Any]:
        """The JSON form used by ``gc --json`` (paths relative to ``root``)."""
        return {
            "applied": self.applied,
            "older_than_seconds": self.older_than.total_seconds(),
            "files": [f.to_dict(root) for f in self.files],
            "counts": self.counts(),
            "bytes": self.size_bytes,
            "kept": self.kept,
            "crashed_runs": [r.to_dict() for r in self.crashed_runs],
            "run_id": self.run_id,
        }


def parse_duration(text: str | dt.timedelta, *, param: str = "older_than") -> dt.timedelta:
    """A duration written as a number and a unit: ``90s``, ``30m``, ``1h``, ``2d`` (a bare
    number is seconds).

    Raises
    ------
    ParameterError
        Anything else, naming ``param``.

    Examples
    --------
    >>> parse_duration("90m")
    datetime.timedelta(seconds=5400)
    >>> parse_duration("1.5h").total_seconds()
    5400.0
    """
    if isinstance(text, dt.timedelta):
        if text < dt.timedelta(0):
            raise ParameterError(param, f"{{param}} must not be negative; got {text}")
        return text
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        raise ParameterError(
            param, f"{{param}} takes a duration such as 90s, 30m, 1h or 2d; got {text!r}"
        )
    return dt.timedelta(seconds=float(found.group(1)) * _UNIT[found.group(2) or "s"])


def collect_garbage(
    ws: Workspace,
    *,
    apply: bool = False,
    older_than: str | dt.timedelta = DEFAULT_AGE,
    also: Iterable[Path] = (),
) -> GarbageReport:
    """Find what killed commands left (temporary files, artifacts no record names) and the
    columnar copies of snapshots that are gone and, with ``apply``, remove them; close the
    runs whose process is gone as ``crashed`` either way. ``also``: more temporary files that
    the caller knows no one writes now (e.g. those of a prediction log whose compaction lock
    it holds), under the same age rule.

    Removing something records a ``gc`` run with what was removed (files and bytes of each
    kind). A dry run records nothing but the crashed runs it closed.

    Raises
    ------
    ParameterError
        ``older_than`` is not a duration.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from mlplan.plan import render_plan
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "mlplan.yaml").write_text(render_plan("churn", task="binary", target="y"))
    >>> ws = Workspace(root, store_url="sqlite://")
    >>> stray = ws.store.artifacts.root / ".incoming-abc123"
    >>> stray.parent.mkdir(parents=True, exist_ok=True)
    >>> _ = stray.write_bytes(b"half a copy")
    >>> [f.path.name for f in collect_garbage(ws, older_than="0s").files]
    ['.incoming-abc123']
    >>> stray.exists()
    True
    """
    age = parse_duration(older_than)
    crashed = close_crashed_runs(ws, found_by="mlplan gc")
    now = time.time()
    artifacts = ws.store.artifacts
    kept: list[str] = []
    found: list[GarbageFile] = []
    young = 0
    for path, size, mtime in [*_temporary_files(ws), *_stat(also)]:
        if now - mtime < age.total_seconds():
            young += 1
        elif path.name.startswith(".incoming-") and ArtifactStore.being_written(path):
            kept.append(f"{_shown(ws, path)}: a running command is still writing it")
        else:
            found.append(GarbageFile("temporary", path, size, now - mtime))
    removed = _remove(found, age, apply=apply, kept=kept, ws=ws)
    with artifacts.collecting() as held:
        orphans, younger = _orphans(ws, now, age, held=held, kept=kept)
        young += younger
        gone = _remove(orphans, age, apply=apply, kept=kept, ws=ws)
    removed += gone
    copies, younger = _stale_copies(artifacts, {f.sha256 for f in gone}, now, age)
    young += younger
    removed += _remove(copies, age, apply=apply, kept=kept, ws=ws)
    if young:
        kept.append(
            f"{young} file(s) younger than {_age(age.total_seconds())}: a command may still "
            "be writing them (--older-than sets the age)"
        )
    run_id = _record(ws, removed, age) if apply and removed else None
    return GarbageReport(apply, age, removed, kept, crashed, run_id)


def _temporary_files(ws: Workspace) -> Iterator[tuple[Path, int, float]]:
    """Temporary files mlplan may have left: ``.incoming-*`` in the artifact folder and its
    ``tables/``, and ``.NAME.XXXXXXXX.tmp`` in the project folder and the folders it writes
    reports, exports and label batches into."""
    for stored in [*ws.store.artifacts.files(), *ws.store.artifacts.table_copies()]:
        if stored.sha256 is None:
            yield stored.path, stored.size_bytes, stored.mtime
    folders = [(ws.root, False), *((ws.root / name, True) for name in _OUTPUT_FOLDERS)]
    for folder, recurse in folders:
        if not folder.is_dir():
            continue
        top: list[tuple[str, list[str], list[str]]] = [
            (str(folder), [], [p.name for p in folder.iterdir()])
        ]
        walk = os.walk(folder) if recurse else top
        for where, _dirs, names in walk:
            named = (Path(where) / name for name in sorted(names) if _TEMPORARY.fullmatch(name))
            yield from _stat(named)


def _stat(paths: Iterable[Path]) -> Iterator[tuple[Path, int, float]]:
    """Each of ``paths`` that is a plain file (not a link), with its size and time."""
    for path in paths:
        try:
            info = path.lstat()
        except OSError:
            continue
        if path.is_file() and not path.is_symlink():
            yield path, info.st_size, info.st_mtime


def _orphans(
    ws: Workspace, now: float, age: dt.timedelta, *, held: bool, kept: list[str]
) -> tuple[list[GarbageFile], int]:
    """Artifacts no record names and older than ``age`` (and how many younger ones), unless
    that cannot be told safely — then none, with the reason in ``kept``."""
    artifacts = ws.store.artifacts
    stored = [s for s in artifacts.files() if s.sha256 is not None]
    if not stored:
        return [], 0
    with ws.store.transaction() as session:
        references = referenced_artifacts(session, artifacts)
    unnamed = [s for s in stored if s.sha256 not in references.hashes]
    if not unnamed:
        return [], 0
    why = _unsafe(ws, held=held, unreadable=references.unreadable)
    if why is not None:
        kept.append(f"{len(unnamed)} artifact(s) no record names: kept, {why}")
        return [], 0
    old = [s for s in unnamed if now - s.mtime >= age.total_seconds()]
    return [_artifact(s, now) for s in old], len(unnamed) - len(old)


def _stale_copies(
    artifacts: ArtifactStore, removed: set[str | None], now: float, age: dt.timedelta
) -> tuple[list[GarbageFile], int]:
    """The columnar copies older than ``age`` whose snapshot is not stored or among the
    artifacts ``removed`` (and how many younger ones). No lock is needed: a copy is written
    only once its snapshot is stored, and one removed is made again by the next read."""
    found, young = [], 0
    for copy in artifacts.table_copies():
        if copy.sha256 is None or (copy.sha256 not in removed and artifacts.exists(copy.sha256)):
            continue
        if now - copy.mtime < age.total_seconds():
            young += 1
        else:
            found.append(
                GarbageFile("copy", copy.path, copy.size_bytes, now - copy.mtime, copy.sha256)
            )
    return found, young


def _unsafe(ws: Workspace, *, held: bool, unreadable: tuple[str, ...]) -> str | None:
    """Why the artifacts no record names cannot be removed now, if they cannot."""
    if not held:
        return "as a command is storing artifacts now; run gc again when it is done"
    if unreadable:
        return f"as {'; '.join(unreadable)}"
    shared = ws.store.artifacts.root.resolve() != (ws.root / STORE_DIR / "artifacts").resolve()
    if shared and ws.store.engine.dialect.name == "sqlite":
        return (
            f"as the artifact folder (${ARTIFACTS_ENV}) may be shared by stores this one "
            "cannot see; use one PostgreSQL store for a shared folder"
        )
    return None


def _remove(
    files: list[GarbageFile], age: dt.timedelta, *, apply: bool, kept: list[str], ws: Workspace
) -> list[GarbageFile]:
    """Remove each file on its own (with ``apply``), looking at its age once more first: what
    could not be removed, or was touched since, is kept and said."""
    if not apply:
        return list(files)
    removed = []
    for found in files:
        try:
            if time.time() - found.path.lstat().st_mtime < age.total_seconds():
                continue  # stored again meanwhile
            found.path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            kept.append(f"{_shown(ws, found.path)}: could not be removed ({exc.strerror})")
            continue
        removed.append(found)
    return removed


def _record(ws: Workspace, removed: list[GarbageFile], age: dt.timedelta) -> str:
    """The ``gc`` run: what it removed, by kind, and the age it kept."""
    summary = {
        kind: {
            "files": sum(f.kind == kind for f in removed),
            "bytes": sum(f.size_bytes for f in removed if f.kind == kind),
        }
        for kind in _KINDS
    }
    # Counts only: a hash named in a run would count as referenced by the next gc.
    parameters = {"older_than_seconds": age.total_seconds(), "removed": summary}
    with ws.record("gc", parameters) as run:
        pass
    return run.id


def _artifact(stored: StoredFile, now: float) -> GarbageFile:
    return GarbageFile(
        "artifact", stored.path, stored.size_bytes, now - stored.mtime, sha256=stored.sha256
    )


def _shown(ws: Workspace, path: Path) -> str:
    try:
        return path.relative_to(ws.root).as_posix()
    except ValueError:
        return str(path)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
