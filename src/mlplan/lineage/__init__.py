"""Lineage: the graph of runs from the bytes of the data to everything made from them."""

from __future__ import annotations

from mlplan._deprecated import moved_names as _moved_names
from mlplan.lineage._graph import (
    LineageGraph,
    LineageNode,
    ParentRun,
    RunInfo,
    lineage,
    resolve_ref,
    to_openlineage,
)

__all__ = [
    "LineageGraph",
    "LineageNode",
    "ParentRun",
    "RunInfo",
    "lineage",
    "resolve_ref",
    "to_openlineage",
]

__getattr__ = _moved_names(__name__, {"RunRecord": "mlplan.lineage.RunInfo"})
