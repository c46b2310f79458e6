"""Annotations in: importing files in one transaction, and reading labels back."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from sqlalchemy import func, select

from mlplan.data import (
    DatasetVersionInfo,
    get_dataset,
)
from mlplan.errors import DataError, NotFoundError, UsageError
from mlplan.labels._annotations import AnnotationSet
from mlplan.labels._batches import (
    opaque_key,
)
from mlplan.labels._import import ImportCheck, check_rows, read_annotations
from mlplan.labels._items import classes_of, default_dataset, ids_of_version, item_table
from mlplan.store import (
    AnnotationRecord,
    DatasetRecord,
    DatasetVersionRecord,
    LabelBatchRecord,
    LabelImportRecord,
    sha256_file,
)
from mlplan.workspace import Workspace

__all__ = [
    "ImportResult",
    "StoredAnnotations",
    "import_annotations",
    "label_count",
    "label_set_hash",
    "label_set_ref",
    "load_annotations",
]


@dataclass(frozen=True)
class ImportResult:
    """What an import stored and what it skipped."""

    dataset: str
    format: str
    counts: dict[str, int]
    problems: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "dataset": self.dataset,
            "format": self.format,
            "counts": self.counts,
            "problems": self.problems.splitlines(),
        }


def import_annotations(
    ws: Workspace,
    path: str | Path,
    *,
    dataset: str | None = None,
    batch: int | None = None,
    gold: bool = False,
    skip_invalid: bool = False,
) -> ImportResult:
    """Import a file of labels (CSV, JSONL or a Label Studio export) in one transaction.

    Raises
    ------
    DataError
        A malformed file; or problems (unknown items, labels outside the class set,
        duplicates) unless ``skip_invalid``, in which case they are skipped and counted.
    """
    path = Path(path)
    file = read_annotations(path)
    if not file.rows:
        raise DataError(f"{path}: no labels in the file")
    if batch is not None:
        info, salt = _batch_version(ws, batch)
    else:
        info, salt = default_dataset(ws, dataset), None
    items = item_table(ws, info)
    rows = file.rows
    if salt is not None:  # an external batch: its opaque keys back to item ids
        back = {opaque_key(salt, item): item for item in items.ids}
        rows = [dataclasses.replace(r, item_id=back.get(r.item_id, r.item_id)) for r in rows]
    classes = _class_set(ws, info, items.table)
    check = check_rows(
        rows,
        items=set(items.ids),
        classes=set(classes) if classes else None,
        stored=_stored_pairs(ws, info, gold=gold),
    )
    _refuse_problems(path, check, batch=batch, skip_invalid=skip_invalid)
    return _record_import(ws, info, path, fmt=file.format, check=check, batch=batch, gold=gold)


def _batch_version(ws: Workspace, batch: int) -> tuple[DatasetVersionInfo, str | None]:
    """The dataset version a batch was exported from, and its salt (external batches)."""
    with ws.store.transaction() as session:
        found = session.execute(
            ws.select(
                LabelBatchRecord.id,
                DatasetRecord.name,
                DatasetVersionRecord.version,
                LabelBatchRecord.salt,
            )
            .join(
                DatasetVersionRecord,
                LabelBatchRecord.dataset_version_id == DatasetVersionRecord.id,
            )
            .join(DatasetRecord)
            .where(LabelBatchRecord.number == batch)
        ).first()
    if found is None:
        raise NotFoundError(f"no labeling batch {batch}; see mlplan labels batches")
    return get_dataset(ws, f"{found[1]}@{found[2]}"), found[3]


def _class_set(ws: Workspace, info: DatasetVersionInfo, table: pa.Table) -> list[str] | None:
    """The classes labels are checked against (None: any label, for numeric tasks)."""
    classes = classes_of(ws, info, table)
    if classes is None and ws.plan.task not in {"regression", "sequence"}:
        raise UsageError(
            f"no class set to check labels against: {info.ref} has no target column and the "
            "plan lists no labels.classes. List the classes (and their definitions) under "
            "labels.classes, so a typo does not become a class"
        )
    return classes


def _stored_pairs(ws: Workspace, info: DatasetVersionInfo, *, gold: bool) -> set[tuple[str, str]]:
    """The (item, annotator) pairs already imported (as gold labels, or not)."""
    with ws.store.transaction() as session:
        _, version_id = ids_of_version(session, ws, info)
        stored = session.execute(
            select(AnnotationRecord.item_id, AnnotationRecord.annotator).where(
                AnnotationRecord.dataset_version_id == version_id,
                AnnotationRecord.gold.is_(gold),
            )
        ).all()
    return {(item, annotator) for item, annotator in stored}


def _refuse_problems(
    path: Path, check: ImportCheck, *, batch: int | None, skip_invalid: bool
) -> None:
    # Keys from an external batch look unknown without their batch: say so.
    hint = (
        "\n(ids from an outsourced or crowdsourced batch are opaque keys: pass {batch} N)"
        if check.unknown_items and batch is None
        else ""
    )
    if check.problems and not skip_invalid:
        raise DataError.about(
            ("skip_invalid", "batch"),
            f"{path}: not imported —\n{check.describe()}{hint}\nFix the file, or import "
            "the rest with {skip_invalid} (the skipped rows are recorded)",
        )
    if not check.good:
        raise DataError(f"{path}: nothing left to import —\n{check.describe()}")


def _record_import(
    ws: Workspace,
    info: DatasetVersionInfo,
    path: Path,
    *,
    fmt: str,
    check: ImportCheck,
    batch: int | None,
    gold: bool,
) -> ImportResult:
    """Store the good rows, and the import with its counts (and the run that made it)."""
    digest = sha256_file(path).sha256
    parameters = {"dataset": info.ref, "batch": batch, "gold": gold, "format": fmt}
    with ws.record("labels import", parameters) as run:
        session = run.session
        project_id, version_id = ids_of_version(session, ws, info)
        batch_id = None
        if batch is not None:
            batch_id = session.scalar(
                select(LabelBatchRecord.id).where(
                    LabelBatchRecord.project_id == project_id, LabelBatchRecord.number == batch
                )
            )
        run.input("file", ws.relative(path), sha256=digest)
        record = LabelImportRecord(
            project_id=project_id,
            dataset_version_id=version_id,
            batch_id=batch_id,
            source_path=ws.relative(path),
            sha256=digest,
            format=fmt,
            counts=check.counts(),
            run_id=run.id,
        )
        session.add(record)
        session.flush()
        session.add_all(
            AnnotationRecord(
                dataset_version_id=version_id,
                import_id=record.id,
                item_id=r.item_id,
                annotator=r.annotator,
                label=r.label,
                gold=gold,
                labeled_at=r.labeled_at,
                seconds=r.seconds,
            )
            for r in check.good
        )
        session.flush()
        # The import's output is the label set as it now stands: the hash a measure records
        # as its input while no other import came between.
        stored = session.execute(
            select(
                AnnotationRecord.item_id, AnnotationRecord.annotator, AnnotationRecord.label
            ).where(
                AnnotationRecord.dataset_version_id == version_id, AnnotationRecord.gold.is_(gold)
            )
        ).all()
        run.output(
            "dataset_version",
            label_set_ref(info, gold=gold),
            sha256=label_set_hash((i, a, label) for i, a, label in stored),
        )
        return ImportResult(info.ref, fmt, check.counts(), check.describe())


def label_set_ref(info: DatasetVersionInfo, *, gold: bool = False) -> str:
    """How runs name a version's labels (``customers@1:labels``) or its gold labels
    (``customers@1:gold``): imports make them, measures read them."""
    return f"{info.ref}:{'gold' if gold else 'labels'}"


def label_set_hash(rows: Iterable[tuple[str, str, str]]) -> str:
    """The content hash of a label set: sha256 over its (item, annotator, label) rows in
    sorted order, so the same labels hash alike whatever order they were imported in.

    Examples
    --------
    >>> a = label_set_hash([("1", "ann", "0"), ("2", "bob", "1")])
    >>> a == label_set_hash([("2", "bob", "1"), ("1", "ann", "0")])
    True
    >>> a == label_set_hash([("1", "ann", "1"), ("2", "bob", "1")])
    False
    """
    digest = hashlib.sha256()
    for row in sorted((str(i), str(a), str(label)) for i, a, label in rows):
        digest.update(json.dumps(row, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredAnnotations:
    """A version's labels as the store holds them, the seconds spent on each (NaN where
    the file did not say), and the label set's content hash (:func:`label_set_hash`), which
    every measure records as its input."""

    annotations: AnnotationSet
    seconds: np.ndarray
    sha256: str = ""


def load_annotations(
    ws: Workspace,
    info: DatasetVersionInfo,
    *,
    gold: bool = False,
    classes: Sequence[str] | None = None,
) -> StoredAnnotations:
    """The version's labels (``gold``: the gold ones) and the seconds spent on each.

    Raises
    ------
    UsageError
        The version has no such labels yet.
    """
    with ws.store.transaction() as session:
        _, version_id = ids_of_version(session, ws, info)
        rows = session.execute(
            select(
                AnnotationRecord.item_id,
                AnnotationRecord.annotator,
                AnnotationRecord.label,
                AnnotationRecord.seconds,
            )
            .where(
                AnnotationRecord.dataset_version_id == version_id, AnnotationRecord.gold.is_(gold)
            )
            .order_by(AnnotationRecord.id)
        ).all()
    if not rows:
        raise UsageError(
            f"{info.ref} has no {'gold ' if gold else ''}labels yet. Import some "
            "with: mlplan labels import FILE"
        )
    items, annotators, labels, seconds = zip(*rows, strict=True)
    known = list(classes) if classes else None
    if known is not None:
        known += sorted(set(labels) - set(known))
    # The order of the plan's classes counts only when the plan says the scale is ordered.
    ordered = bool(ws.plan.labels.classes) and ws.plan.labels.scale != "nominal"
    annotations = AnnotationSet.from_records(
        list(items), list(annotators), list(labels), classes=known, ordered=ordered
    )
    times = np.array([np.nan if s is None else s for s in seconds], dtype=float)
    digest = label_set_hash(zip(items, annotators, labels, strict=True))
    return StoredAnnotations(annotations, times, digest)


def label_count(ws: Workspace, dataset: str) -> int:
    """How many (non-gold) labels a dataset version holds now."""
    info = get_dataset(ws, dataset)
    with ws.store.transaction() as session:
        _, version_id = ids_of_version(session, ws, info)
        return int(
            session.scalar(
                select(func.count())
                .select_from(AnnotationRecord)
                .where(
                    AnnotationRecord.dataset_version_id == version_id,
                    AnnotationRecord.gold.is_(False),
                )
            )
            or 0
        )
