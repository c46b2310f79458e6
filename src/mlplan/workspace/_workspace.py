"""A workspace: the folder holding ``mlplan.yaml``, its plan, and its store — and the one
way every stage records in that store: runs (``record``), reports (``latest_report``) and
selects limited to the project (``select``).

Every stage takes a :class:`Workspace`; the CLI opens one per command from ``--project``.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import functools
import importlib
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from mlplan._deprecated import REMOVED_IN
from mlplan.errors import ParameterError, ProjectNotFoundError
from mlplan.plan import (
    PLAN_FILE,
    DataSuggestions,
    Plan,
    Task,
    load_plan,
    parse_plan,
    render_plan,
)
from mlplan.store import (
    STORE_DIR,
    STORE_URL_ENV,
    ModelReportRecord,
    ProjectRecord,
    RunRecorder,
    Store,
    open_store,
)

__all__ = ["ReportInfo", "Workspace", "find_root", "runs_under", "staged_file", "write_atomic"]


@dataclass(frozen=True)
class ReportInfo:
    """A stored report (an evaluation, a comparison, a load test ...): the JSON as it was
    kept, the run that made it, and when."""

    kind: str
    report: dict[str, Any]
    run_id: str
    created_at: dt.datetime
    id: int = 0

    @classmethod
    def from_record(cls, record: ModelReportRecord) -> ReportInfo:
        """From the store's row."""
        return cls(record.kind, dict(record.report), record.run_id, record.created_at, record.id)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # ".NAME.XXXXXXXX.tmp", as staged_file's: what a killed write leaves, gc recognises.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` for the block to write: renamed to ``path`` when the
    block ends, removed when it fails. A command writes the file, records the run that made
    it (with its hash), and the file appears under its name only once that run is committed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "rows.csv"
    >>> with staged_file(out) as tmp:
    ...     _ = tmp.write_text("a,b\\n1,2\\n")
    ...     out.exists()
    False
    >>> out.read_text()
    'a,b\\n1,2\\n'
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(0o644)  # mkstemp makes it private; an export is for sharing
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def find_root(start: str | Path | None = None) -> Path:
    """The nearest folder, from ``start`` (default: the working folder) upwards, holding the plan.

    Raises
    ------
    ProjectNotFoundError
        When no folder up to the filesystem root holds ``mlplan.yaml``.
    """
    here = Path(start or Path.cwd()).resolve()
    if here.is_file():
        here = here.parent
    for folder in (here, *here.parents):
        if (folder / PLAN_FILE).is_file():
            return folder
    raise ProjectNotFoundError(
        f"no {PLAN_FILE} in {here} or any folder above it. Run `mlplan init NAME` to create "
        "one, or pass --project DIR"
    )


_PARENT_RUN: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "mlplan_parent_run", default=None
)


@contextlib.contextmanager
def runs_under(run_id: str) -> Iterator[None]:
    """Record every run of this block (in this thread) under ``run_id``: a pipeline runs each
    step's stage calls so, and their runs (``train``, ``evaluate`` ...) name the step's run as
    their parent, without each stage knowing it runs in a pipeline."""
    token = _PARENT_RUN.set(run_id)
    try:
        yield
    finally:
        _PARENT_RUN.reset(token)


class Workspace:
    """A project folder: its plan (validated on first use) and its store (opened on first use).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from mlplan.plan import render_plan
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "mlplan.yaml").write_text(render_plan("churn", task="binary", target="y"))
    >>> Workspace(root).plan.project.name
    'churn'
    """

    def __init__(
        self, root: str | Path, *, store_url: str | None = None, store: Store | None = None
    ) -> None:
        self.root = Path(root).resolve()
        self._store_url = store_url
        self._given_store = store
        """A store opened by someone else, who closes it (a server that answers many
        requests over one engine keeps its connections and compiled statements)."""

    @classmethod
    def find(cls, start: str | Path | None = None, *, store_url: str | None = None) -> Workspace:
        """The workspace of the nearest folder upwards holding ``mlplan.yaml``."""
        return cls(find_root(start), store_url=store_url)

    @classmethod
    def create(
        cls,
        root: str | Path,
        name: str,
        *,
        task: Task | None = None,
        target: str | None = None,
        suggestions: DataSuggestions | None = None,
        problem: str | None = None,
        owner: str | None = None,
        force: bool = False,
        from_data: str | Path | None = None,
        positive_class: str | None = None,
    ) -> Workspace:
        """Write a complete, commented ``mlplan.yaml`` in ``root``, optionally pre-filled with
        what a scan of the data suggests (``mlplan.data.create_from_data`` scans a file and
        calls this); the task, target and (binary) positive class default to the
        suggestions'.

        Raises
        ------
        ParameterError
            A plan already exists (without ``force``), or no task or target can be settled.
        """
        if from_data is not None:  # the old way in: scanning data is the data stage's
            warnings.warn(
                f"Workspace.create(from_data=...) is deprecated: use "
                f"mlplan.data.create_from_data (the old way goes in mlplan {REMOVED_IN})",
                DeprecationWarning,
                stacklevel=2,
            )
            data: Any = importlib.import_module("mlplan.data")  # a higher layer, by name
            created: Workspace = data.create_from_data(
                root, name, from_data, task=task, target=target, problem=problem,
                owner=owner, force=force,
            )  # fmt: skip
            return created
        root = Path(root).resolve()
        plan_path = cls.check_creatable(root, force=force)
        if suggestions is not None:
            task = task or suggestions.task
            if target is None and task != "image_classification":
                target = suggestions.target_candidates[0] if suggestions.target_candidates else None
        if task is None:
            raise ParameterError(
                "task",
                "give the task with {param} regression|binary|multiclass|image_classification|"
                "sequence (or create the project with mlplan.data.create_from_data to guess "
                "it from the data)",
            )
        if target is None and task != "image_classification":
            raise ParameterError(
                "target", f"task {task!r} needs a target column: give {{param}} COLUMN"
            )
        text = render_plan(
            name,
            task=task,
            target=target,
            data=suggestions,
            problem=problem,
            owner=owner,
            positive_class=positive_class,
        )
        parse_plan(text, filename=str(plan_path))  # never write a plan that does not load
        write_atomic(plan_path, text)
        return cls(root)

    @staticmethod
    def check_creatable(root: str | Path, *, force: bool = False) -> Path:
        """Where a new plan in ``root`` would be written; refused when one is there already
        (unless ``force``), before anything is scanned or written.

        Raises
        ------
        ParameterError
            A plan exists already and ``force`` is not set.
        """
        plan_path = Path(root).resolve() / PLAN_FILE
        if plan_path.exists() and not force:
            raise ParameterError(
                "force", f"{plan_path} exists already; edit it, or pass {{param}} to replace it"
            )
        return plan_path

    @property
    def plan_path(self) -> Path:
        """Path of ``mlplan.yaml``."""
        return self.root / PLAN_FILE

    @functools.cached_property
    def plan(self) -> Plan:
        """The validated plan."""
        return load_plan(self.plan_path)

    @property
    def has_store(self) -> bool:
        """Whether a store exists already (opening one creates it)."""
        return (
            self._given_store is not None
            or bool(self._store_url or os.environ.get(STORE_URL_ENV))
            or (self.root / STORE_DIR / "store.db").exists()
        )

    @functools.cached_property
    def store(self) -> Store:
        """The store, opened (and migrated) on first use, or the one given."""
        if self._given_store is not None:
            return self._given_store
        return open_store(self.root, url=self._store_url)

    def resolve(self, path: str | Path) -> Path:
        """A path from the plan or the command line, relative to the project folder."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.root / path

    def relative(self, path: Path) -> str:
        """``path`` relative to the project folder when inside it, else absolute."""
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path.resolve())

    # -- recording in the store ----------------------------------------------------------------

    def project_id(self, session: Session) -> int:
        """This project's id in the store (created on first use, renamed with the plan)."""
        project = self.plan.project
        return self.store.project_id(session, project.store_key, name=project.name)

    def select(self, *entities: Any, owner: Any = None) -> Select[Any]:
        """A SELECT of ``entities`` limited to this project's rows, to refine further.

        ``owner`` is the table whose ``project_id`` decides (default: the first entity's), e.g.
        ``ws.select(DatasetVersionRecord, owner=DatasetRecord).join(DatasetRecord)``.
        """
        owner = owner if owner is not None else entities[0]
        owner = getattr(owner, "class_", owner)  # a column names its table
        project = (
            select(ProjectRecord.id)
            .where(ProjectRecord.key == self.plan.project.store_key)
            .scalar_subquery()
        )
        return select(*entities).where(owner.project_id == project)

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that holds this project's write lock: commands that number what they
        make (versions, splits, models, batches) run one after another, never racing."""
        with self.store.transaction(lock=f"mlplan:{self.plan.project.store_key}") as session:
            yield session

    @contextlib.contextmanager
    def record(
        self,
        job: str,
        parameters: Mapping[str, Any],
        *,
        session: Session | None = None,
        running: bool = False,
        parent_id: str | None = None,
        cache_key: str | None = None,
    ) -> Iterator[RunRecorder]:
        """Record a run of ``job``: what it read and made, with which code, by whom.

        The run starts in a transaction of its own that holds the project's write lock (or in
        ``session``), the body adds inputs, outputs and reports to it, and it is finished when
        the body ends (``running``: left running, as a server's is until it stops). An error
        in the body rolls everything back, the run included. The run is recorded under
        ``parent_id``, else under the run of the enclosing :func:`runs_under` block (a
        pipeline's step), if any; ``cache_key``: a pipeline step's key.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (root / "mlplan.yaml").write_text(render_plan("churn", task="binary", target="y"))
        >>> ws = Workspace(root, store_url="sqlite://")
        >>> with ws.record("data add", {"dataset": "customers"}) as run:
        ...     run.input("file", "data/customers.csv", sha256="0" * 64)
        ...     _ = run.report("note", {"rows": 3})
        >>> ws.latest_report("note").report
        {'rows': 3}
        """
        with contextlib.ExitStack() as stack:
            if session is None:
                session = stack.enter_context(self.write())
            run = RunRecorder.start(
                session,
                project_id=self.project_id(session),
                job=job,
                parameters=dict(parameters),
                root=self.root,
                parent_id=parent_id or _PARENT_RUN.get(),
                cache_key=cache_key,
            )
            yield run
            if not running:
                run.finish()

    def reports(
        self, kind: str, *, where: Callable[[Mapping[str, Any]], bool] | None = None
    ) -> list[ReportInfo]:
        """The project's reports of ``kind``, oldest first (``where``: those it accepts)."""
        with self.store.transaction() as session:
            records = session.scalars(
                self.select(ModelReportRecord)
                .where(ModelReportRecord.kind == kind)
                .order_by(ModelReportRecord.created_at, ModelReportRecord.id)
            ).all()
            found = [ReportInfo.from_record(r) for r in records]
        return [r for r in found if where is None or where(r.report)]

    def latest_report(
        self, kind: str, *, where: Callable[[Mapping[str, Any]], bool] | None = None
    ) -> ReportInfo | None:
        """The newest report of ``kind`` (``where``: the newest it accepts), if any."""
        with self.store.transaction() as session:
            records = session.scalars(
                self.select(ModelReportRecord)
                .where(ModelReportRecord.kind == kind)
                .order_by(ModelReportRecord.created_at.desc(), ModelReportRecord.id.desc())
            )
            for record in records:
                if where is None or where(record.report):
                    return ReportInfo.from_record(record)
        return None

    def close(self) -> None:
        """Release the store's connections if it opened it (a given store stays open)."""
        if "store" in self.__dict__ and self._given_store is None:
            self.store.close()
