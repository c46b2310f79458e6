"""The relabel queue: what is in it, sending it out again, triage, and confident learning."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sqlalchemy import select

from mlplan.data import DatasetVersionInfo, get_dataset
from mlplan.errors import DataError, NotFoundError, ParameterError, UsageError
from mlplan.labels._consensus import majority_vote
from mlplan.labels._export import BatchInfo, export_batch
from mlplan.labels._ingest import label_set_ref, load_annotations
from mlplan.labels._issues import (
    LabelIssue,
    find_label_issues,
)
from mlplan.labels._items import (
    ItemTable,
    classes_of,
    default_dataset,
    ids_of_version,
    item_table,
    read_probabilities,
)
from mlplan.labels._measure import MeasuredFrom, store_report
from mlplan.store import (
    AnnotationRecord,
    DatasetRecord,
    DatasetVersionRecord,
    LabelIssueRecord,
    sha256_file,
    utcnow,
)
from mlplan.workspace import Workspace

__all__ = [
    "QueueEntry",
    "export_relabel_batch",
    "issues_from_predictions",
    "relabel_queue",
    "triage",
]


@dataclass(frozen=True)
class QueueEntry:
    """An item in the relabel queue."""

    dataset: str
    item_id: str
    source: str
    score: float
    details: dict[str, Any]
    status: str
    note: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return dict(self.__dict__)


def relabel_queue(
    ws: Workspace,
    dataset: str | None = None,
    *,
    status: Literal["open", "triaged", "resolved"] | None = None,
) -> list[QueueEntry]:
    """Items to look at again, most suspicious first."""
    with ws.store.transaction() as session:
        query = (
            ws.select(LabelIssueRecord, DatasetRecord.name, DatasetVersionRecord.version)
            .join(
                DatasetVersionRecord,
                LabelIssueRecord.dataset_version_id == DatasetVersionRecord.id,
            )
            .join(DatasetRecord)
            .order_by(LabelIssueRecord.score.desc(), LabelIssueRecord.id)
        )
        if status is not None:
            query = query.where(LabelIssueRecord.status == status)
        if dataset is not None:
            info = get_dataset(ws, dataset)
            query = query.where(
                DatasetRecord.name == info.name, DatasetVersionRecord.version == info.version
            )
        return [
            QueueEntry(
                f"{name}@{version}", r.item_id, r.source, r.score, r.details, r.status, r.note
            )
            for r, name, version in session.execute(query)
        ]


def export_relabel_batch(
    ws: Workspace,
    dataset: str | None = None,
    *,
    annotators: Sequence[str] | None = None,
    labels_per_item: int = 2,
    fmt: Literal["csv", "labelstudio"] = "csv",
    out: str | Path | None = None,
    seed: int = 0,
) -> BatchInfo:
    """The open items of the relabel queue as a batch: each to ``labels_per_item`` annotators
    who have not labeled it yet; the queue entries are marked triaged, naming the batch."""
    entries = relabel_queue(ws, dataset, status="open")
    if not entries:
        raise UsageError("the relabel queue has no open items")
    versions = sorted({e.dataset for e in entries})
    if len(versions) > 1:
        raise ParameterError(
            "dataset",
            f"open items in several dataset versions ({', '.join(versions)}); "
            "choose one with {param}",
        )
    info = get_dataset(ws, versions[0])
    items = sorted({e.item_id for e in entries})
    with ws.store.transaction() as session:
        _, version_id = ids_of_version(session, ws, info)
        already: dict[str, set[str]] = {}
        for item, who in session.execute(
            select(AnnotationRecord.item_id, AnnotationRecord.annotator).where(
                AnnotationRecord.dataset_version_id == version_id,
                AnnotationRecord.item_id.in_(items),
            )
        ):
            already.setdefault(item, set()).add(who)
    batch = export_batch(
        ws,
        info.ref,
        items=items,
        already=already,
        overlap=1.0,
        k=labels_per_item,
        annotators=annotators,
        fmt=fmt,
        out=out,
        seed=seed,
    )
    for item in items:
        triage(
            ws,
            item,
            status="triaged",
            note=f"sent for relabeling in batch {batch.number}",
            dataset=info.ref,
        )
    return batch


def triage(
    ws: Workspace,
    item_id: str,
    *,
    status: Literal["open", "triaged", "resolved"],
    note: str | None = None,
    dataset: str | None = None,
) -> int:
    """Set the status of an item's queue entries; returns how many changed."""
    info = default_dataset(ws, dataset)

    with ws.write() as session:
        _, version_id = ids_of_version(session, ws, info)
        records = list(
            session.scalars(
                select(LabelIssueRecord).where(
                    LabelIssueRecord.dataset_version_id == version_id,
                    LabelIssueRecord.item_id == item_id,
                )
            )
        )
        if not records:
            raise NotFoundError(
                f"item {item_id!r} is not in the relabel queue of {info.ref}; "
                "see mlplan labels queue"
            )
        for record in records:
            record.status = status
            record.note = note if note is not None else record.note
            record.updated_at = utcnow()
        return len(records)


def issues_from_predictions(
    ws: Workspace, pred_probs: str | Path, dataset: str | None = None
) -> list[LabelIssue]:
    """Confident learning on out-of-fold probabilities (a file: item_id and one column per
    class, named as the classes); issues go to the relabel queue.

    The labels checked are the dataset's target column, or — for data being labeled — the
    annotators' majority consensus.
    """
    info = default_dataset(ws, dataset)
    items = item_table(ws, info)
    path = Path(pred_probs)
    classes = classes_of(ws, info, items.table)
    if not classes:
        raise UsageError(
            "confident learning needs classes: set labels.classes or a classification target"
        )
    prob_ids, matrix = read_probabilities(path, classes, items.ids, info.ref)
    given, labels_sha256 = _given_labels(ws, info, items, classes=classes, ids=prob_ids)
    class_index = {c: i for i, c in enumerate(classes)}
    labels = np.array([class_index.get(given.get(p) or "", -1) for p in prob_ids])
    foreign = [
        p for p, code in zip(prob_ids, labels, strict=True) if code < 0 and given.get(p) is not None
    ]
    if foreign:
        raise DataError(
            f"{len(foreign):,} items have a label outside the classes {classes}, "
            f"e.g. {foreign[0]}: {given[foreign[0]]!r}"
        )
    keep = labels >= 0  # items with no label (unlabeled, or a tie) have nothing to check
    found = find_label_issues(
        labels[keep],
        matrix[keep],
        item_ids=[p for p, k in zip(prob_ids, keep, strict=True) if k],
        classes=classes,
    )
    store_report(
        ws,
        info,
        "issues",
        {"found": len(found), "checked": int(keep.sum()), "file": ws.relative(path)},
        None,
        job="labels issues",
        measured_from=[
            MeasuredFrom("file", ws.relative(path), sha256_file(path).sha256),
            MeasuredFrom("dataset_version", info.ref, info.content_hash),
            *(
                [MeasuredFrom("dataset_version", label_set_ref(info), labels_sha256)]
                if labels_sha256
                else []
            ),
        ],
        issues=found,
    )
    return found


def _given_labels(
    ws: Workspace, info: DatasetVersionInfo, items: ItemTable, *, classes: list[str], ids: list[str]
) -> tuple[dict[str, str | None], str | None]:
    """The label each item carries now: its target value, else the annotators' majority
    (items without one are left out); with the label set's hash when labels were read."""
    target = "label" if info.format == "images" else ws.plan.target
    if target is not None and target in items.table.column_names:
        row_of = {item: i for i, item in enumerate(items.ids)}
        values = items.table.column(target).to_pylist()
        given = {p: (None if values[row_of[p]] is None else str(values[row_of[p]])) for p in ids}
        return given, None
    stored = load_annotations(ws, info, classes=classes)
    annotations = stored.annotations
    consensus = majority_vote(annotations)
    majority: dict[str, str | None] = {
        item: annotations.classes[c]
        for item, c in zip(annotations.items, consensus.label, strict=True)
        if c >= 0
    }
    return majority, stored.sha256
