"""The Ray session every ``--engine ray`` uses: the cluster at ``RAY_ADDRESS``, or a local
one started on first use (data is the lowest stage that runs on Ray; the stages above reach
it through here)."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pyarrow.parquet as pq

from mlplan._optional import require
from mlplan.data._read import row_group_runs
from mlplan.errors import MlplanError, ParameterError

__all__ = [
    "Engine",
    "check_engine",
    "parquet_parts",
    "ray_data_context",
    "ray_results",
    "ray_session",
    "ray_worker_errors",
]

Engine = Literal["local", "ray"]


def check_engine(engine: str) -> None:
    """Refuse an engine other than ``local`` or ``ray``.

    Examples
    --------
    >>> check_engine("spark")
    Traceback (most recent call last):
    ...
    mlplan.errors.ParameterError: 'engine' must be local or ray; got 'spark'
    """
    if engine not in {"local", "ray"}:
        raise ParameterError("engine", f"{{param}} must be local or ray; got {engine!r}")


def ray_session(purpose: str = "--engine ray") -> Any:
    """Ray, connected to ``RAY_ADDRESS`` or to a local cluster started on first use.

    Raises
    ------
    MissingExtraError
        Ray is not installed (the ``ray`` extra).
    """
    ray = require("ray", extra="ray", purpose=purpose)
    if not ray.is_initialized():
        ray.init(
            address=os.environ.get("RAY_ADDRESS") or None,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            configure_logging=False,
        )
    return ray


def ray_results(ray: Any, refs: list[Any]) -> list[Any]:
    """The results of Ray tasks, in order; a task's own error (an ``MlplanError`` raised on the
    worker, which names what to do) raised as it was, not wrapped in Ray's."""
    with ray_worker_errors():
        return list(ray.get(refs))


@contextlib.contextmanager
def ray_worker_errors() -> Iterator[None]:
    """Inside: a Ray worker's own error (an ``MlplanError``, which names what to do) raised as
    it was, not wrapped in Ray's (a task's result, or a Ray Data block's)."""
    try:
        yield
    except Exception as exc:  # Ray wraps it in a RayTaskError of its own, keeping it as cause
        cause = getattr(exc, "cause", None)
        if isinstance(cause, MlplanError):
            raise cause from None
        raise


def ray_data_context(ray: Any) -> Any:
    """Ray Data's current context, set to hand blocks back in the order they were read (a
    file's rows in its order, as the local engine sees them)."""
    with warnings.catch_warnings():
        # Ray 2.60's own DataContext sets an option it deprecates; not ours to act on.
        warnings.filterwarnings("ignore", ".* is deprecated", DeprecationWarning, "ray")
        context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    return context


def parquet_parts(ray: Any, path: Path, rows: int) -> Any:
    """A Ray dataset of the Parquet file's row-group runs of about ``rows`` rows, one block
    each and in the file's order: ``{"row_groups": [...]}``, for the workers to read by
    :func:`row_group_runs` order and hand back in that order.

    Ray Data's own ``read_parquet`` bin-packs row groups into read tasks by their size and
    hands the blocks back out of the file's order whatever ``preserve_order`` says (Ray
    2.60: of a 10,000,000-row file, the last million rows came first), so neither a
    profile's merge nor scored rows could follow the file."""
    runs = row_group_runs(pq.read_metadata(path), rows)
    ray_data_context(ray)
    return ray.data.from_items(
        [{"row_groups": run} for run in runs], override_num_blocks=max(1, len(runs))
    )
