"""Predictions made elsewhere (another team's model, the older system), read from a file and
matched to a split's rows by item id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.errors import DataError
from mlplan.evaluation._input import PARTS, LoadedSplit, Part, Prediction
from mlplan.evaluation._predict import positive_class, row_ids
from mlplan.modeling import Predictions, target_values
from mlplan.workspace import Workspace

__all__ = ["match_predictions"]


def _label(value: Any) -> str:
    """A label as the target column spells it: 1.0 read from a file is the class '1'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def match_predictions(
    ws: Workspace, path: Path, given: pa.Table, split: LoadedSplit, *, part: Part
) -> Prediction:
    """The predictions of ``given`` (read from ``path``) in the order of the ``part`` rows
    of ``split`` that have a known target: one per row, no other, none twice."""
    known = split.known
    rows = np.flatnonzero((split.codes == PARTS[part]) & known)
    if not rows.size:
        raise DataError(f"the {part} split of {split.ref} has no rows with a known target")
    ids = row_ids(ws, split, rows)
    order = _order(path, given, ids, part=part, split_ref=split.ref)
    y_all = target_values(split.target, split.kind)
    values = given.column("prediction").to_pylist()
    if split.kind == "regression":
        try:
            predicted = np.asarray([float(values[i]) for i in order])
        except (TypeError, ValueError):
            raise DataError(f"{path}: prediction must be numbers for a regression task") from None
        data = Predictions.from_arrays(y_all[rows], predicted, kind="regression")
        return Prediction(data, rows, ids)
    classes = sorted({str(v) for v in y_all[np.flatnonzero((split.codes == 0) & known)]})
    if any(values[i] is None for i in order):
        raise DataError(f"{path}: some predictions are empty; every row needs a label")
    predicted = np.asarray([_label(values[i]) for i in order], dtype=object)
    known_labels = set(classes) | {str(v) for v in y_all[rows]}
    foreign = sorted(set(predicted) - known_labels)
    if foreign:
        raise DataError(
            f"{path}: predicted labels {', '.join(map(repr, foreign[:5]))} are not classes "
            f"of {split.ref}; classes: {', '.join(sorted(known_labels))}"
        )
    proba = None
    if classes and all(c in given.column_names for c in classes):
        columns = [
            pc.cast(given.column(c), pa.float64()).to_numpy(zero_copy_only=False) for c in classes
        ]
        proba = np.column_stack(columns)[order]
    positive = positive_class(ws.plan.positive_class, classes, split.ref)
    data = Predictions.from_arrays(
        y_all[rows], predicted, kind="binary", proba=proba, classes=classes, positive=positive
    )
    return Prediction(data, rows, ids)


def _order(path: Path, given: pa.Table, ids: list[str], *, part: str, split_ref: str) -> np.ndarray:
    """For each of ``ids``, the row of ``given`` that predicts it; ids that are missing,
    unknown or repeated are named."""
    item_ids = [str(v) for v in given.column("item_id").to_pylist()]
    position: dict[str, int] = {}
    repeated = []
    for i, item in enumerate(item_ids):
        if item in position:
            repeated.append(item)
        position[item] = i
    wanted = set(ids)
    missing = [i for i in ids if i not in position]
    unknown = [i for i in item_ids if i not in wanted]
    if missing or unknown or repeated:
        problems = []
        if missing:
            problems.append(
                f"{len(missing):,} of the {len(ids):,} {part} rows have no prediction "
                f"(e.g. {', '.join(missing[:3])})"
            )
        if unknown:
            problems.append(
                f"{len(unknown):,} item_ids are not {part} rows of {split_ref} "
                f"(e.g. {', '.join(unknown[:3])})"
            )
        if repeated:
            problems.append(f"{len(repeated):,} item_ids repeat (e.g. {', '.join(repeated[:3])})")
        raise DataError(
            f"{path}: the item_ids do not match the split: {'; '.join(problems)}. "
            "Predict every row of the split once, keyed by the dataset's id column"
        )
    return np.asarray([position[i] for i in ids])
