"""Measuring labels: agreement, human-level performance (stored as the HLP baseline) and
consensus."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from mlplan.core import json_safe
from mlplan.data import (
    DatasetVersionInfo,
    all_slice_masks,
    get_dataset,
)
from mlplan.errors import ParameterError, UsageError
from mlplan.labels._agreement import AgreementReport, Level, agreement
from mlplan.labels._annotations import AnnotationSet
from mlplan.labels._consensus import Consensus, dawid_skene, majority_vote
from mlplan.labels._hlp import HumanLevelPerformance, human_level_performance
from mlplan.labels._ingest import (
    StoredAnnotations,
    label_count,
    label_set_ref,
    load_annotations,
)
from mlplan.labels._issues import (
    ConfusedPair,
    LabelIssue,
    confused_pairs,
    disagreements,
)
from mlplan.labels._items import (
    ItemTable,
    classes_of,
    default_dataset,
    ids_of_version,
    item_table,
)
from mlplan.store import (
    ArtifactStore,
    DatasetRecord,
    DatasetVersionRecord,
    LabelIssueRecord,
    LabelReportRecord,
)
from mlplan.workspace import Workspace, staged_file

__all__ = [
    "AgreementResult",
    "ConsensusResult",
    "LabelReportInfo",
    "MeasuredFrom",
    "StoredHLP",
    "StoredLabelReport",
    "consensus_labels",
    "get_hlp",
    "latest_label_report",
    "measure_agreement",
    "measure_hlp",
    "queue_issues",
    "store_report",
]


@dataclass(frozen=True)
class AgreementResult:
    """Agreement over a version's labels, held against the plan's threshold."""

    dataset: str
    report: AgreementReport
    metric: str
    value: float
    threshold: float
    confused: list[ConfusedPair] = field(default_factory=list)
    queued: int = 0
    labels_sha256: str = ""
    """The content hash of the label set measured (``mlplan.labels.label_set_hash``)."""
    run_id: str | None = None
    """The ``labels agreement`` run that stored it."""

    @property
    def passed(self) -> bool:
        """Whether agreement reaches the plan's ``labels.min_agreement``."""
        return bool(np.isfinite(self.value) and self.value >= self.threshold)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "dataset": self.dataset,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "passed": self.passed,
            "confused_pairs": [
                {"a": p.a, "b": p.b, "share": p.share, "finding": p.finding} for p in self.confused
            ],
            "queued": self.queued,
            "labels_sha256": self.labels_sha256,
            "run_id": self.run_id,
            **self.report.to_dict(),
        }


def _level(ws: Workspace, level: Level | None) -> Level:
    """The alpha level: asked for, else the plan's scale. An ordered level on a nominal plan
    is refused: class names that look like numbers would be read as amounts."""
    scale = ws.plan.labels.scale
    if level is None:
        return scale
    if level != "nominal" and scale == "nominal":
        raise UsageError(
            f"{level} alpha needs ordered labels, and the plan says labels.scale: nominal. "
            "Set labels.scale (ordinal or interval) in the plan if the classes are ordered"
        )
    return level


def measure_agreement(
    ws: Workspace,
    dataset: str | None = None,
    *,
    level: Level | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> AgreementResult:
    """Agreement figures and the annotator table; stored, and disagreements queued."""
    info = default_dataset(ws, dataset)
    table = item_table(ws, info).table
    stored = load_annotations(ws, info, classes=classes_of(ws, info, table))
    annotations = stored.annotations
    report = agreement(
        annotations, level=_level(ws, level), n_boot=n_boot, seed=seed, seconds=stored.seconds
    )
    labels_plan = ws.plan.labels
    metric = labels_plan.agreement_metric
    value = report.metric(metric)
    confused = confused_pairs(annotations)
    issues = disagreements(annotations, majority_vote(annotations))
    result = AgreementResult(
        info.ref,
        report,
        metric,
        value,
        labels_plan.min_agreement,
        confused,
        labels_sha256=stored.sha256,
    )
    kept = store_report(
        ws,
        info,
        "agreement",
        {k: v for k, v in result.to_dict().items() if k != "run_id"},
        result.passed,
        job="labels agreement",
        measured_from=_label_inputs(info, stored),
        issues=issues,
    )
    return dataclasses.replace(result, queued=kept.queued, run_id=kept.run_id)


@dataclass(frozen=True)
class MeasuredFrom:
    """Something a label report was measured from, as its run records it: a dataset version,
    a label set (``customers@1:labels``, with :func:`label_set_hash`) or a file."""

    kind: Literal["dataset_version", "file"]
    ref: str
    sha256: str | None


def _label_inputs(
    info: DatasetVersionInfo, labels: StoredAnnotations, gold: StoredAnnotations | None = None
) -> list[MeasuredFrom]:
    """The version's rows and the label sets a measure read."""
    found = [
        MeasuredFrom("dataset_version", info.ref, info.content_hash),
        MeasuredFrom("dataset_version", label_set_ref(info), labels.sha256),
    ]
    if gold is not None:
        found.append(MeasuredFrom("dataset_version", label_set_ref(info, gold=True), gold.sha256))
    return found


@dataclass(frozen=True)
class StoredLabelReport:
    """A label report as stored: its run, the sha256 of its JSON (an artifact, the run's
    output ``customers@1:agreement``), and how many issues it queued."""

    run_id: str
    sha256: str
    queued: int


def store_report(
    ws: Workspace,
    info: DatasetVersionInfo,
    kind: str,
    report: dict[str, Any],
    passed: bool | None,
    *,
    job: str,
    measured_from: Sequence[MeasuredFrom] = (),
    issues: Sequence[LabelIssue] = (),
) -> StoredLabelReport:
    """Store a report (and queue issues not queued before) with the run that measured it:
    its inputs by hash (``measured_from``), the report's JSON as its output."""
    report = json_safe(report)
    blob = json.dumps(report, indent=1, sort_keys=True, allow_nan=False).encode()
    artifacts = ws.store.artifacts
    with artifacts.staged(), ws.record(job, {"dataset": info.ref}) as run:
        project_id, version_id = ids_of_version(run.session, ws, info)
        for read in measured_from:
            run.input(read.kind, read.ref, sha256=read.sha256)
        stored = artifacts.put_bytes(blob)
        ArtifactStore.register(
            run.session, stored, kind=f"labels:{kind}.json", media_type="application/json"
        )
        run.output("report", f"{info.ref}:{kind}", sha256=stored.sha256)
        run.session.add(
            LabelReportRecord(
                project_id=project_id,
                dataset_version_id=version_id,
                kind=kind,
                report=report,
                passed=passed,
                run_id=run.id,
            )
        )
        queued = queue_issues(run.session, project_id, version_id, issues)
        return StoredLabelReport(run.id, stored.sha256, queued)


def queue_issues(
    session: Session, project_id: int, version_id: int, issues: Sequence[LabelIssue]
) -> int:
    existing = {
        (i, s)
        for i, s in session.execute(
            select(LabelIssueRecord.item_id, LabelIssueRecord.source).where(
                LabelIssueRecord.dataset_version_id == version_id
            )
        ).all()
    }
    added = [
        LabelIssueRecord(
            project_id=project_id,
            dataset_version_id=version_id,
            item_id=i.item_id,
            source=i.source,
            score=i.score,
            details=json_safe(i.details),
            status="open",
        )
        for i in issues
        if (i.item_id, i.source) not in existing
    ]
    session.add_all(added)
    return len(added)


def measure_hlp(
    ws: Workspace,
    dataset: str | None = None,
    *,
    n_boot: int = 200,
    seed: int = 0,
    min_items: int = 30,
) -> HumanLevelPerformance:
    """Human-level performance, overall and per plan slice; stored as the HLP baseline."""
    info = default_dataset(ws, dataset)
    items = item_table(ws, info)
    classes = classes_of(ws, info, items.table)
    stored = load_annotations(ws, info, classes=classes)
    annotations = stored.annotations
    stored_gold = _gold_labels(ws, info, classes)
    gold = _gold_map(stored_gold)
    slices = _slices_of_items(ws, items, annotations)
    min_support = {s.name: s.min_support for s in ws.plan.slices}
    metric = ws.plan.metrics.primary_metric
    task = (
        "regression"
        if ws.plan.task in {"regression", "sequence"} and classes is None
        else "classification"
    )
    result = human_level_performance(
        annotations,
        task=task,
        gold=gold,
        primary=metric.name if metric else None,
        positive=ws.plan.positive_class if ws.plan.task == "binary" else None,
        slices=slices,
        min_support=min_support,
        n_boot=n_boot,
        seed=seed,
        min_items=min_items,
    )
    stamp = {
        "dataset": info.ref,
        "annotations": len(annotations.item),
        "gold": len(gold),
        "bootstrap": n_boot,
        "labels_sha256": stored.sha256,
        "gold_sha256": stored_gold.sha256 if stored_gold else None,
    }
    store_report(
        ws,
        info,
        "hlp",
        result.to_dict() | stamp,
        None,
        job="labels hlp",
        measured_from=_label_inputs(info, stored, stored_gold),
    )
    return result


def _gold_labels(
    ws: Workspace, info: DatasetVersionInfo, classes: list[str] | None
) -> StoredAnnotations | None:
    """The version's gold labels, if it has any."""
    try:
        return load_annotations(ws, info, gold=True, classes=classes)
    except UsageError:  # no gold labels
        return None


def _gold_map(stored: StoredAnnotations | None) -> dict[str, str]:
    """Item id → its gold label, for the items that have one."""
    if stored is None:
        return {}
    gold = stored.annotations
    return {gold.items[i]: gold.classes[c] for i, c in zip(gold.item, gold.label, strict=True)}


def _slices_of_items(
    ws: Workspace, items: ItemTable, annotations: AnnotationSet
) -> dict[str, dict[str, np.ndarray]]:
    """The plan's slices as masks over the labeled items (``annotations.items``)."""
    row_of = {item: i for i, item in enumerate(items.ids)}
    rows = np.array([row_of[item] for item in annotations.items], dtype=np.int64)
    masks = all_slice_masks(items.table, ws.plan.slices, skip_missing_columns=True)
    return {
        name: {value: mask[rows] for value, mask in values.items()}
        for name, values in masks.items()
    }


@dataclass(frozen=True)
class LabelReportInfo:
    """A stored report about a version's labels (agreement or HLP), with its verdict."""

    kind: str
    dataset: str
    report: dict[str, Any]
    passed: bool | None
    created_at: dt.datetime
    run_id: str


def latest_label_report(
    ws: Workspace, kind: Literal["agreement", "hlp"], dataset: str | None = None
) -> LabelReportInfo | None:
    """The newest stored report of ``kind`` (for a dataset, or any), with its verdict; its
    ``report`` names the dataset version it was measured on."""
    with ws.store.transaction() as session:
        query = (
            ws.select(LabelReportRecord, DatasetRecord.name, DatasetVersionRecord.version)
            .join(
                DatasetVersionRecord,
                LabelReportRecord.dataset_version_id == DatasetVersionRecord.id,
            )
            .join(DatasetRecord)
            .where(LabelReportRecord.kind == kind)
            .order_by(LabelReportRecord.created_at.desc(), LabelReportRecord.id.desc())
        )
        if dataset is not None:
            info = get_dataset(ws, dataset)
            query = query.where(
                DatasetRecord.name == info.name, DatasetVersionRecord.version == info.version
            )
        row = session.execute(query.limit(1)).first()
    if row is None:
        return None
    record, name, version = row
    ref = f"{name}@{version}"
    return LabelReportInfo(
        kind, ref, record.report | {"dataset": ref}, record.passed, record.created_at, record.run_id
    )


def _latest_report_tuple(
    ws: Workspace, kind: Literal["agreement", "hlp"], dataset: str | None = None
) -> tuple[dict[str, Any], bool | None, dt.datetime] | None:
    """What the deprecated ``mlplan.labels.latest_report`` returned: (report, passed, when)."""
    found = latest_label_report(ws, kind, dataset)
    return None if found is None else (found.report, found.passed, found.created_at)


@dataclass(frozen=True)
class StoredHLP:
    """The HLP baseline as stored, and whether labels arrived since it was measured."""

    hlp: HumanLevelPerformance
    dataset: str
    measured_at: dt.datetime
    labels_then: int
    labels_now: int

    @property
    def stale(self) -> bool:
        """Labels were imported (or removed) since HLP was measured."""
        return self.labels_then != self.labels_now


def get_hlp(ws: Workspace, dataset: str | None = None) -> StoredHLP | None:
    """The newest HLP baseline (of ``dataset``, else of any version): what modeling and error
    analysis compare models with."""
    found = latest_label_report(ws, "hlp", dataset)
    if found is None:
        return None
    report = found.report
    return StoredHLP(
        HumanLevelPerformance.from_dict(report),
        found.dataset,
        found.created_at,
        int(report.get("annotations", 0)),
        label_count(ws, report["dataset"]),
    )


@dataclass(frozen=True)
class ConsensusResult:
    """One label per item: the labels it came from (and their content hash), the consensus,
    and the CSV written (its sha256 and the ``labels consensus`` run that recorded it)."""

    annotations: AnnotationSet
    consensus: Consensus
    path: Path | None = None
    labels_sha256: str = ""
    sha256: str | None = None
    run_id: str | None = None

    @property
    def resolved(self) -> int:
        """Items that got a label (a majority tie leaves an item unresolved)."""
        return int(self.consensus.resolved.sum())

    @property
    def mean_confidence(self) -> float:
        """The mean confidence over every item."""
        return float(np.mean(self.consensus.confidence))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (the labels themselves are in the CSV)."""
        return {
            "method": self.consensus.method,
            "items": len(self.annotations.items),
            "resolved": self.resolved,
            "iterations": self.consensus.iterations,
            "converged": self.consensus.converged,
            "mean_confidence": self.mean_confidence,
            "file": str(self.path) if self.path else None,
            "labels_sha256": self.labels_sha256,
            "sha256": self.sha256,
            "run_id": self.run_id,
        }


def consensus_labels(
    ws: Workspace,
    dataset: str | None = None,
    *,
    method: Literal["majority", "dawid-skene"] = "majority",
    ties: Literal["unresolved", "random"] = "unresolved",
    out: str | Path | None = None,
) -> ConsensusResult:
    """One label per item from the annotators' labels; written as CSV when ``out`` is given,
    with a ``labels consensus`` run that records the label set it came from (by hash) and the
    file it made (the file appears only once the run is recorded)."""
    info = default_dataset(ws, dataset)
    table = item_table(ws, info).table
    stored = load_annotations(ws, info, classes=classes_of(ws, info, table))
    annotations = stored.annotations
    result = (
        dawid_skene(annotations)
        if method == "dawid-skene"
        else majority_vote(annotations, ties=ties)
    )
    found = ConsensusResult(annotations, result, labels_sha256=stored.sha256)
    if out is None:
        return found
    path = Path(out)
    if path.is_dir():
        raise ParameterError("out", f"{{param}} {path} is a folder; give the file to write")
    blob = _consensus_csv(annotations, result).encode()
    digest = hashlib.sha256(blob).hexdigest()
    parameters = {"dataset": info.ref, "method": method, "ties": ties}
    with staged_file(path) as tmp:
        tmp.write_bytes(blob)
        with ws.record("labels consensus", parameters) as run:
            for read in _label_inputs(info, stored):
                run.input(read.kind, read.ref, sha256=read.sha256)
            run.output("file", ws.relative(path), sha256=digest)
            run_id = run.id
    return dataclasses.replace(found, path=path, sha256=digest, run_id=run_id)


def _consensus_csv(annotations: AnnotationSet, result: Consensus) -> str:
    lines = ["item_id,label,confidence,labels"]
    counts = annotations.labels_per_item
    for i, item in enumerate(annotations.items):
        label = annotations.classes[result.label[i]] if result.label[i] >= 0 else ""
        lines.append(f"{_csv(item)},{_csv(label)},{result.confidence[i]:.4f},{counts[i]}")
    return "\n".join(lines) + "\n"


def _csv(value: str) -> str:
    return f'"{value.replace(chr(34), chr(34) * 2)}"' if any(c in value for c in ',"\n') else value
