"""A workspace: the folder holding ``mlplan.yaml``, its plan, and its store.

Every stage takes a :class:`Workspace`; the CLI opens one per command from ``--project``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from mlplan.errors import ProjectNotFoundError
from mlplan.plan import PLAN_FILE, Plan, load_plan
from mlplan.store import Store, open_store

__all__ = ["Workspace", "find_root"]


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

    @property
    def plan_path(self) -> Path:
        """Path of ``mlplan.yaml``."""
        return self.root / PLAN_FILE

    @functools.cached_property
    def plan(self) -> Plan:
        """The validated plan."""
        return load_plan(self.plan_path)

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
