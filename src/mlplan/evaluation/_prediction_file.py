"""An evaluation's predictions written out (``evaluate MODEL --predictions-out FILE``), one row
per row evaluated, so anyone can recompute its figures with another library.

Columns: ``mlplan_row`` (the row's position in the dataset version, as ``data rows`` writes
it), ``item_id`` (the id column's value, else the row number), ``label`` (the truth),
``prediction`` (the decision: at ``threshold`` for a binary model with scores), one
``score_<class>`` per class the model scores, ``threshold`` (binary models with scores), and
one ``slice_<name>`` per plan slice holding the row's group, as the report names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mlplan.data import ROW_COLUMN, all_slice_masks, table_format, write_table
from mlplan.evaluation._input import EvaluationInput
from mlplan.store import sha256_file
from mlplan.workspace import Workspace, staged_file

__all__ = ["PredictionsFile", "check_predictions_out", "predictions_table", "write_predictions"]


@dataclass(frozen=True)
class PredictionsFile:
    """The predictions as written: the file, its sha256, and how many rows it holds."""

    path: Path
    sha256: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"file": str(self.path), "sha256": self.sha256, "rows": self.rows}


def check_predictions_out(path: str | Path | None) -> None:
    """Refuse a ``predictions_out`` that is not a ``.csv`` or ``.parquet`` file name before
    anything is computed.

    Raises
    ------
    ParameterError
        Naming ``predictions_out``.
    """
    if path is not None:
        table_format(path, param="predictions_out")


def predictions_table(ws: Workspace, inp: EvaluationInput) -> pa.Table:
    """One row per row evaluated: where it is, its truth, the scores, the decision and its
    slice groups (the module's docstring lists the columns)."""
    prediction = inp.prediction
    data = prediction.data
    columns: dict[str, Any] = {
        ROW_COLUMN: pa.array(prediction.rows, pa.int64()),
        "item_id": pa.array(prediction.ids, pa.string()),
    }
    if data.kind == "regression":
        assert data.values is not None and data.predicted is not None
        columns["label"] = pa.array(data.values, pa.float64())
        columns["prediction"] = pa.array(data.predicted, pa.float64())
    else:
        classes = np.asarray(data.classes, dtype=object)
        columns["label"] = pa.array(classes[data.y].tolist(), pa.string())
        columns["prediction"] = pa.array(classes[data.p].tolist(), pa.string())
        proba = data.proba
        if proba is not None:
            for i, name in enumerate(data.classes[: data.scored]):
                columns[f"score_{name}"] = pa.array(proba[:, i], pa.float64())
    if prediction.threshold is not None:
        value = float(prediction.threshold["value"])
        columns["threshold"] = pa.array(np.full(data.n, value), pa.float64())
    evaluated = inp.split.table.take(pa.array(prediction.rows, pa.int64()))
    for name, groups in all_slice_masks(evaluated, ws.plan.slices).items():
        columns[f"slice_{name}"] = pa.array(_groups_of(groups, data.n), pa.string())
    return pa.table(columns)


def _groups_of(groups: dict[str, np.ndarray], n: int) -> list[str | None]:
    """Each row's group of one slice (a row in none gets null; the plan's slices put every
    row in one group)."""
    found: list[list[str]] = [[] for _ in range(n)]
    for value, mask in groups.items():
        for i in np.flatnonzero(mask):
            found[i].append(value)
    return ["; ".join(names) if names else None for names in found]


def write_predictions(ws: Workspace, inp: EvaluationInput, out: str | Path) -> PredictionsFile:
    """Write :func:`predictions_table` to ``out`` (CSV or Parquet by suffix) through a
    temporary file and a rename: all or nothing."""
    path = Path(out)
    fmt = table_format(path, param="predictions_out")
    table = predictions_table(ws, inp)
    with staged_file(path) as tmp:
        write_table(table, tmp, fmt)
        digest = sha256_file(tmp).sha256
    return PredictionsFile(path, digest, table.num_rows)
