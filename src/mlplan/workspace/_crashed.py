"""Runs a killed process left ``running``, closed as ``crashed`` for the project: the next
server, ``mlplan status`` and ``mlplan gc`` call this."""

from __future__ import annotations

from mlplan.store import CrashedRun, crashed_runs
from mlplan.store import close_crashed_runs as close_crashed
from mlplan.workspace._workspace import Workspace

__all__ = ["close_crashed_runs"]


def close_crashed_runs(ws: Workspace, *, found_by: str) -> list[CrashedRun]:
    """Close as ``crashed`` the project's runs left ``running`` whose process is gone (a
    server killed with ``kill -9``), saying why and who found it (``found_by``: the command).
    Runs recorded on another host, or without their host, stay as they are.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from mlplan.plan import render_plan
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "mlplan.yaml").write_text(render_plan("churn", task="binary", target="y"))
    >>> close_crashed_runs(Workspace(root, store_url="sqlite://"), found_by="mlplan status")
    []
    """
    # Looked for first without the project's write lock (a read on PostgreSQL does not wait
    # for a command holding it), then closed under it, checked again.
    with ws.store.transaction() as session:
        if not crashed_runs(session, ws.project_id(session)):
            return []
    with ws.write() as session:
        return close_crashed(session, ws.project_id(session), found_by=found_by)
