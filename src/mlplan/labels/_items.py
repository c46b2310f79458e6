"""The items of a dataset version as the Labels stage sees them: ids, the class set, and
files of predicted probabilities about them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.orm import Session

from mlplan.data import (
    DatasetVersionInfo,
    effective_metadata,
    get_dataset,
    list_datasets,
    load_table,
    read_table,
    version_record,
)
from mlplan.errors import DataError, DatasetNotFoundError
from mlplan.store import (
    DatasetRecord,
    DatasetVersionRecord,
    LabelImportRecord,
)
from mlplan.workspace import Workspace

__all__ = [
    "ItemTable",
    "classes_of",
    "default_dataset",
    "ids_of_version",
    "item_table",
    "read_probabilities",
]


@dataclass(frozen=True)
class ItemTable:
    """A version's items: their ids (in row order) and the table they are the rows of."""

    ids: list[str]
    table: pa.Table


def item_table(ws: Workspace, info: DatasetVersionInfo) -> ItemTable:
    """The version's item ids (its id column as text, an image's path, else the row number)
    and its table.

    Raises
    ------
    DataError
        The id column holds an id twice.
    """
    table = load_table(ws, info)
    if info.format == "images":
        return ItemTable([str(v) for v in table.column("path").to_pylist()], table)
    id_column = effective_metadata(ws, info).get("id_column")
    if id_column:
        ids = pc.cast(table.column(id_column), pa.string()).to_pylist()
        if len(set(ids)) != len(ids):
            raise DataError(
                f"{info.ref}: id column {id_column!r} is not unique; labels need one id per item"
            )
        return ItemTable([str(v) for v in ids], table)
    return ItemTable([str(i) for i in range(table.num_rows)], table)


def classes_of(ws: Workspace, info: DatasetVersionInfo, table: pa.Table) -> list[str] | None:
    """The class set: the plan's labels.classes, else the target column's values."""
    declared = list(ws.plan.labels.classes)
    if declared:
        return declared
    target = "label" if info.format == "images" else ws.plan.target
    if ws.plan.task in {"regression"} or target is None or target not in table.column_names:
        return None
    values = pc.drop_null(pc.unique(table.column(target))).to_pylist()
    return sorted(str(v) for v in values)


def ids_of_version(session: Session, ws: Workspace, info: DatasetVersionInfo) -> tuple[int, int]:
    project_id, record = version_record(session, ws, info)
    return project_id, record.id


def default_dataset(ws: Workspace, ref: str | None) -> DatasetVersionInfo:
    """``ref``; else the version with the latest labels; else the plan's first dataset."""
    if ref is not None:
        return get_dataset(ws, ref)
    with ws.store.transaction() as session:
        latest = session.execute(
            ws.select(DatasetRecord.name, DatasetVersionRecord.version, owner=LabelImportRecord)
            .select_from(LabelImportRecord)
            .join(
                DatasetVersionRecord,
                LabelImportRecord.dataset_version_id == DatasetVersionRecord.id,
            )
            .join(DatasetRecord)
            .order_by(LabelImportRecord.created_at.desc(), LabelImportRecord.id.desc())
            .limit(1)
        ).first()
    if latest is not None:
        return get_dataset(ws, f"{latest[0]}@{latest[1]}")
    for summary in list_datasets(ws):
        if summary.latest is not None:
            return summary.latest
    raise DatasetNotFoundError(
        "no dataset registered yet. Register one with: mlplan data add NAME FILE"
    )


def read_probabilities(
    path: Path, classes: list[str], item_ids: list[str], ref: str
) -> tuple[list[str], np.ndarray]:
    """A file of out-of-fold probabilities: item ids and an items × classes matrix, checked."""

    probs = read_table(path, "csv" if path.suffix.lower() in {".csv", ".tsv"} else "parquet")
    missing = [c for c in ["item_id", *classes] if c not in probs.column_names]
    if missing:
        raise DataError(
            f"{path}: missing columns {', '.join(missing)}; expected item_id and one "
            f"probability column per class ({', '.join(classes)})"
        )
    ids = [str(v) for v in probs.column("item_id").to_pylist()]
    known = set(item_ids)
    unknown = [p for p in ids if p not in known]
    if unknown:
        raise DataError(
            f"{path}: {len(unknown):,} item ids not in {ref}, e.g. {', '.join(unknown[:3])}"
        )
    repeated = sorted(p for p, n in Counter(ids).items() if n > 1)
    if repeated:
        raise DataError(
            f"{path}: {len(repeated):,} item ids appear more than once, e.g. "
            f"{', '.join(repeated[:3])}; give one row of probabilities per item"
        )
    matrix = np.column_stack(
        [pc.cast(probs.column(c), pa.float64()).to_numpy(zero_copy_only=False) for c in classes]
    )
    sums = matrix.sum(axis=1)
    off = np.flatnonzero(~np.isclose(sums, 1.0, atol=1e-3))
    if off.size:
        raise DataError(
            f"{path}: {off.size:,} rows of probabilities do not sum to 1, e.g. item "
            f"{ids[off[0]]} sums to {sums[off[0]]:.4f}"
        )
    return ids, matrix
