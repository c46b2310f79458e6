"""Monitoring windows measured on Ray (``mlplan monitor --engine ray``): one Ray task per
window and package version, each reading that window's span of the log with DuckDB and
measuring its families with the local engine's own code; the driver keeps what is read
once per call (each version's training reference and calibration, put in the object store
once) and the order the local engine gives the windows, and stores them.

A task reads the log's files from the project folder: the cluster's workers must see it
(a local cluster, or one whose nodes share the folder).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlplan.data import ray_results, ray_session
from mlplan.workspace import Workspace

__all__ = ["measure_on_ray"]

# Each worker process's projects, opened once (a task after the first reuses it).
_OPENED: dict[tuple[str, str | None], Workspace] = {}


def measure_on_ray(
    ws: Workspace, measure: Callable[..., list[Any]], jobs: Sequence[tuple[Any, ...]]
) -> list[list[Any]]:
    """``measure(ws, *job)`` for every job, each a Ray task; the results in the jobs' order.
    Arguments that several jobs share (the same object) go to the object store once.

    Raises
    ------
    MlplanError
        The first job's error, as it was raised on the worker.
    MissingExtraError
        Ray is not installed.
    """
    ray = ray_session("monitoring on Ray (--engine ray)")
    remote = ray.remote(num_cpus=1, max_retries=0)(_measure_in_worker)
    root, store_url = str(ws.root), os.environ.get("MLPLAN_STORE_URL")
    stored: dict[int, Any] = {}

    def shared(value: Any) -> Any:
        if isinstance(value, (str, int, float, bool, type(None))):
            return value
        if id(value) not in stored:
            stored[id(value)] = ray.put(value)
        return stored[id(value)]

    refs = [remote.remote(root, store_url, measure, *[shared(a) for a in job]) for job in jobs]
    return ray_results(ray, refs)


def _measure_in_worker(
    root: str, store_url: str | None, measure: Callable[..., list[Any]], *job: Any
) -> list[Any]:
    """One job on a Ray worker, with the project opened in this process."""
    key = (root, store_url)
    if key not in _OPENED:
        _OPENED[key] = Workspace(Path(root), store_url=store_url)
    return measure(_OPENED[key], *job)
