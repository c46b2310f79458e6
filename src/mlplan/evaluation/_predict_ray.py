"""A package run on a split's rows on Ray Data (``mlplan evaluate MODEL --engine ray``).

The rows to predict are cut into chunks; Ray actors, each holding the split's table (put in
the object store once, read there without a copy) and the package's graph, run each chunk
with the code the local engine runs on all of them at once (``inputs_for``, ``feeds_for``,
``run_graph``), and the driver puts the chunks' outputs back together in order. Everything
after the predictions — threshold, metrics, bootstrap, report — is the local engine's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mlplan.data import DatasetVersionInfo, ray_data_context, ray_session
from mlplan.modeling import feeds_for, inputs_for, run_graph
from mlplan.workspace import Workspace

__all__ = ["CHUNK_ROWS", "ray_runner"]

CHUNK_ROWS = 65_536
_Run = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]


def ray_runner(
    ws: Workspace,
    version: DatasetVersionInfo,
    table: pa.Table,
    spec: dict[str, Any],
    graph: bytes,
    kind: str,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> _Run:
    """What runs the package on table rows, on Ray Data: the same outputs, in the rows'
    order, as ``run_graph(graph, feeds_for(spec, inputs_for(ws, version, table, spec,
    rows)), kind)`` gives in this process.

    Raises
    ------
    MissingExtraError
        Ray is not installed.
    """
    ray = ray_session("evaluating on Ray (--engine ray)")
    ray_data_context(ray)
    shared = {
        "table": [ray.put(table)],  # in a list: handed on as a reference, read by each actor
        "graph": [ray.put(graph)],
        "spec": spec,
        "kind": kind,
        "version": version,
        "root": str(ws.root),
        "store_url": os.environ.get("MLPLAN_STORE_URL"),
    }
    actors = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def run(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        chunks = ray.data.from_arrow(pa.table({"row": pa.array(rows, pa.int64())}))
        predicted = chunks.map_batches(
            _Predictor,
            fn_constructor_kwargs=shared,
            batch_format="pyarrow",
            batch_size=chunk_rows,
            compute=ray.data.ActorPoolStrategy(
                min_size=1, max_size=min(actors, -(-rows.size // chunk_rows) or 1)
            ),
        )
        parts = list(predicted.iter_batches(batch_format="pyarrow", batch_size=None))
        return _joined(parts, kind)

    return run


class _Predictor:
    """A Ray actor: the split's table and the graph, read once; a chunk of rows at a time."""

    def __init__(
        self,
        *,
        table: list[Any],
        graph: list[Any],
        spec: dict[str, Any],
        kind: str,
        version: DatasetVersionInfo,
        root: str,
        store_url: str | None,
    ) -> None:
        import ray

        self.table = ray.get(table[0])
        self.graph = ray.get(graph[0])
        self.spec, self.kind, self.version = spec, kind, version
        self.root, self.store_url = root, store_url
        self._ws: Workspace | None = None

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.column("row").to_numpy()
        ws = self._workspace() if self.spec.get("kind") == "image" else None
        inputs = inputs_for(ws, self.version, self.table, self.spec, rows)  # type: ignore[arg-type]
        predicted, proba = run_graph(self.graph, feeds_for(self.spec, inputs), self.kind)
        columns: dict[str, Any] = {"predicted": predicted}
        if proba is not None:
            for j in range(proba.shape[1]):
                columns[f"proba_{j}"] = pa.array(proba[:, j])
        return pa.table(columns)

    def _workspace(self) -> Workspace:
        """The project, opened here for what only it can read (an image's file)."""
        if self._ws is None:
            self._ws = Workspace(Path(self.root), store_url=self.store_url)
        return self._ws


def _joined(parts: list[pa.Table], kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The chunks' outputs as ``run_graph`` returns them for all rows at once."""
    table = pa.concat_tables(parts) if parts else pa.table({"predicted": pa.array([], pa.string())})
    values = table.column("predicted").to_numpy(zero_copy_only=False)
    if kind == "regression":
        return np.asarray(values, dtype=np.float64), None
    predicted = np.asarray(values).astype(str).astype(object)
    names = [n for n in table.column_names if n.startswith("proba_")]
    proba = np.column_stack([table.column(n).to_numpy() for n in names]) if names else None
    return predicted, proba
