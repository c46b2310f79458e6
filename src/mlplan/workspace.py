"""A workspace: the folder holding ``mlplan.yaml``, its plan, and its store.

Every stage takes a :class:`Workspace`; the CLI opens one per command from ``--project``.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

from mlplan.errors import ProjectNotFoundError, UsageError
from mlplan.plan import PLAN_FILE, Plan, Task, load_plan, parse_plan, render_plan
from mlplan.store import Store, open_store

__all__ = ["Workspace", "find_root", "write_atomic"]


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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

    def __init__(self, root: str | Path, *, store_url: str | None = None) -> None:
        self.root = Path(root).resolve()
        self._store_url = store_url

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
        from_data: str | Path | None = None,
        problem: str | None = None,
        owner: str | None = None,
        force: bool = False,
    ) -> Workspace:
        """Write a complete, commented ``mlplan.yaml`` in ``root``, optionally pre-filled from a
        scan of ``from_data``; the task and target default to what the scan suggests.

        Raises
        ------
        UsageError
            A plan already exists (without ``force``), or no task or target can be settled.
        """
        root = Path(root).resolve()
        plan_path = root / PLAN_FILE
        if plan_path.exists() and not force:
            raise UsageError(f"{plan_path} exists already; edit it, or pass --force to replace it")
        suggestions = None
        if from_data is not None:
            from mlplan.data import scan_data

            data_path = Path(from_data).resolve()
            suggestions = scan_data(data_path, target=target)
            # Relative to the plan, so the project folder can move with its data.
            shown = Path(os.path.relpath(data_path, root)).as_posix()
            suggestions = type(suggestions)(**{**suggestions.__dict__, "path": shown})
            task = task or suggestions.task
            if target is None and task != "image_classification":
                target = suggestions.target_candidates[0] if suggestions.target_candidates else None
        if task is None:
            raise UsageError(
                "give the task with --task regression|binary|multiclass|"
                "image_classification|sequence (or --from-data FILE to guess it)"
            )
        if target is None and task != "image_classification":
            raise UsageError(f"task {task!r} needs a target column: give --target COLUMN")
        text = render_plan(
            name, task=task, target=target, data=suggestions, problem=problem, owner=owner
        )
        parse_plan(text, filename=str(plan_path))  # never write a plan that does not load
        write_atomic(plan_path, text)
        return cls(root)

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
        from mlplan.store import STORE_DIR, STORE_URL_ENV

        return (
            bool(self._store_url or os.environ.get(STORE_URL_ENV))
            or (self.root / STORE_DIR / "store.db").exists()
        )

    @functools.cached_property
    def store(self) -> Store:
        """The store, opened (and migrated) on first use."""
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

    def close(self) -> None:
        """Release the store's connections if it was opened."""
        if "store" in self.__dict__:
            self.store.close()
