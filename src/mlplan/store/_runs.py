"""Recording runs: what each creating command read, wrote, with which code, by whom."""

from __future__ import annotations

import functools
import getpass
import importlib.metadata
import os
import platform
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session

from mlplan.store._tables import ModelReportRecord, RunIORecord, RunRecord, utcnow

__all__ = ["RunRecorder", "code_version", "current_user", "package_versions"]

IOKind = Literal["file", "dataset_version", "split", "artifact", "model", "report", "deployment"]


def current_user() -> str:
    """Who is acting: ``$MLPLAN_USER``, else the login name."""
    user = os.environ.get("MLPLAN_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def code_version(root: Path) -> str | None:
    """The git commit of the project folder (``+dirty`` when it has uncommitted changes)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()
    return f"{commit}+dirty" if dirty.stdout.strip() else commit


_NAME = re.compile(r"^Name:[ \t]*(\S.*?)\s*$", re.MULTILINE)
_VERSION = re.compile(r"^Version:[ \t]*(\S.*?)\s*$", re.MULTILINE)


@functools.cache
def package_versions() -> dict[str, str]:
    """Python's version and every installed distribution's, for reproducing a run.

    Each distribution's name and version are read from the head of its metadata file:
    parsing every file whole as e-mail headers (``Distribution.metadata``) took 0.16 s of
    every command in a venv of 160 packages; this takes 0.01 s, with the same result.
    """
    versions = {"python": platform.python_version()}
    for dist in importlib.metadata.distributions():
        text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
        head = text.split("\n\n", 1)[0]  # the headers; the description follows
        name, version = _NAME.search(head), _VERSION.search(head)
        if name and version:
            versions[name.group(1).lower()] = version.group(1)
        elif dist.metadata["Name"]:  # an unusual file: the full parser
            versions[dist.metadata["Name"].lower()] = dist.version
    return dict(sorted(versions.items()))


class RunRecorder:
    """A run being recorded inside the command's transaction.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from mlplan.store import open_store
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> store = open_store(root, url="sqlite://")
    >>> with store.transaction() as session:
    ...     run = RunRecorder.start(session, project_id=store.project_id(session, "demo"),
    ...                             job="data add", parameters={"dataset": "c"}, root=root)
    ...     run.input("file", "data/c.csv", sha256="0" * 64)
    ...     run.output("dataset_version", "c@1")
    ...     run.finish()
    >>> run.record.status, len(run.id)
    ('completed', 36)

    A stage records through its workspace instead (``with ws.record(job, parameters) as
    run:``), which owns the project, the transaction and the finish.
    """

    def __init__(self, session: Session, run: RunRecord) -> None:
        self.session = session
        self.record = run

    @property
    def id(self) -> str:
        """The run's UUID."""
        return self.record.id

    @property
    def project_id(self) -> int:
        """The project the run belongs to."""
        return self.record.project_id

    @classmethod
    def start(
        cls,
        session: Session,
        *,
        project_id: int,
        job: str,
        parameters: dict[str, Any],
        root: Path,
        parent_id: str | None = None,
        cache_key: str | None = None,
    ) -> RunRecorder:
        """Begin recording a run of ``job`` (``parent_id``: the run it runs under;
        ``cache_key``: a pipeline step's key)."""
        run = RunRecord(
            id=str(uuid.uuid4()),
            project_id=project_id,
            job=job,
            status="running",
            parameters=parameters,
            code_version=code_version(root),
            packages=package_versions(),
            user=current_user(),
            started_at=utcnow(),
            parent_id=parent_id,
            cache_key=cache_key,
        )
        session.add(run)
        session.flush()
        return cls(session, run)

    def input(self, kind: IOKind, ref: str, *, sha256: str | None = None) -> None:
        """Record something the run read."""
        self._io("input", kind, ref, sha256)

    def output(self, kind: IOKind, ref: str, *, sha256: str | None = None) -> None:
        """Record something the run made."""
        self._io("output", kind, ref, sha256)

    def _io(self, direction: str, kind: str, ref: str, sha256: str | None) -> None:
        self.session.add(
            RunIORecord(run_id=self.id, direction=direction, kind=kind, ref=ref, sha256=sha256)
        )

    def report(self, kind: str, report: dict[str, Any]) -> ModelReportRecord:
        """Keep ``report`` (JSON) as the run's report of ``kind`` (``evaluation``,
        ``comparison``, ``load_test`` ...); read back by ``Workspace.latest_report``."""
        record = ModelReportRecord(
            project_id=self.project_id, kind=kind, report=report, run_id=self.id
        )
        self.session.add(record)
        return record

    def finish(self) -> None:
        """Mark the run completed; it commits with the command's transaction."""
        self.record.status = "completed"
        self.record.ended_at = utcnow()
        self.session.flush()
