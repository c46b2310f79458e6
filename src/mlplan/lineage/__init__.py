"""Lineage: the graph of runs from the bytes of the data to everything made from them."""

from __future__ import annotations

from mlplan.lineage._graph import (
    LineageGraph,
    LineageNode,
    RunInfo,
    lineage,
    resolve_ref,
    to_openlineage,
)

__all__ = ["LineageGraph", "LineageNode", "RunInfo", "lineage", "resolve_ref", "to_openlineage"]
