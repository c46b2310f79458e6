"""The Labels stage against the store: batches out, annotations in, agreement, HLP, consensus
and the relabel queue — each command one transaction, recorded as a run."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mlplan.data import (
    DatasetVersionInfo,
    all_slice_masks,
    effective_metadata,
    get_dataset,
    list_datasets,
    load_table,
    version_record,
)
from mlplan.errors import DataError, NotFoundError, UsageError
from mlplan.labels._agreement import AgreementReport, Level, agreement
from mlplan.labels._annotations import AnnotationSet
from mlplan.labels._batches import (
    Assignment,
    Estimate,
    Selection,
    assign,
    compare_strategies,
    estimate,
    label_studio_config,
    opaque_key,
    render_csv,
    render_label_studio,
    select_items,
)
from mlplan.labels._consensus import Consensus, dawid_skene, majority_vote
from mlplan.labels._hlp import HumanLevelPerformance, human_level_performance
from mlplan.labels._import import check_rows, read_annotations
from mlplan.labels._issues import (
    ConfusedPair,
    LabelIssue,
    confused_pairs,
    disagreements,
    find_label_issues,
)
from mlplan.store import (
    Annotation,
    ArtifactStore,
    Dataset,
    DatasetVersion,
    LabelBatch,
    LabelImport,
    LabelIssueRecord,
    LabelReport,
    Project,
    RunRecorder,
    sha256_file,
    utcnow,
)
from mlplan.workspace import Workspace, write_atomic

__all__ = [
    "AgreementResult",
    "BatchInfo",
    "ImportResult",
    "QueueEntry",
    "StoredHLP",
    "consensus_labels",
    "export_batch",
    "export_relabel_batch",
    "get_hlp",
    "import_annotations",
    "issues_from_predictions",
    "item_table",
    "label_count",
    "latest_report",
    "list_batches",
    "load_annotations",
    "measure_agreement",
    "measure_hlp",
    "relabel_queue",
    "triage",
]


# -- items of a dataset version ------------------------------------------------------------------


def item_table(ws: Workspace, info: DatasetVersionInfo) -> tuple[list[str], pa.Table]:
    """The version's item ids (its id column as text, an image's path, else the row number)
    and its table."""
    table = load_table(ws, info)
    if info.format == "images":
        return [str(v) for v in table.column("path").to_pylist()], table
    id_column = effective_metadata(ws, info).get("id_column")
    if id_column:
        ids = pc.cast(table.column(id_column), pa.string()).to_pylist()
        if len(set(ids)) != len(ids):
            raise DataError(
                f"{info.ref}: id column {id_column!r} is not unique; labels need one id per item"
            )
        return [str(v) for v in ids], table
    return [str(i) for i in range(table.num_rows)], table


def _classes(ws: Workspace, info: DatasetVersionInfo, table: pa.Table) -> list[str] | None:
    """The class set: the plan's labels.classes, else the target column's values."""
    declared = list(ws.plan.labels.classes)
    if declared:
        return declared
    target = "label" if info.format == "images" else ws.plan.target
    if ws.plan.task in {"regression"} or target is None or target not in table.column_names:
        return None
    values = pc.drop_null(pc.unique(table.column(target))).to_pylist()
    return sorted(str(v) for v in values)


def _version_id(session: Session, ws: Workspace, info: DatasetVersionInfo) -> tuple[int, int]:
    project_id, record = version_record(session, ws, info)
    return project_id, record.id


def _default_dataset(ws: Workspace, ref: str | None) -> DatasetVersionInfo:
    """``ref``; else the version with the latest labels; else the plan's first dataset."""
    if ref is not None:
        return get_dataset(ws, ref)
    with ws.store.transaction() as session:
        latest = session.execute(
            select(Dataset.name, DatasetVersion.version)
            .select_from(LabelImport)
            .join(DatasetVersion, LabelImport.dataset_version_id == DatasetVersion.id)
            .join(Dataset)
            .join(Project)
            .where(Project.name == ws.plan.project.name)
            .order_by(LabelImport.created_at.desc(), LabelImport.id.desc())
            .limit(1)
        ).first()
    if latest is not None:
        return get_dataset(ws, f"{latest[0]}@{latest[1]}")
    for summary in list_datasets(ws):
        if summary.latest is not None:
            return summary.latest
    raise NotFoundError("no dataset registered yet. Register one with: mlplan data add NAME FILE")


# -- batches -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchInfo:
    """An exported labeling batch."""

    number: int
    dataset: str
    strategy: str
    selection: str
    items: int
    assignments: int
    annotators: list[str]
    estimate: Estimate
    comparison: list[Estimate]
    files: list[str]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "number": self.number,
            "dataset": self.dataset,
            "strategy": self.strategy,
            "selection": self.selection,
            "items": self.items,
            "assignments": self.assignments,
            "annotators": self.annotators,
            "estimate": self.estimate.to_dict(),
            "comparison": [e.to_dict() for e in self.comparison],
            "files": self.files,
        }


def _uncertainty(path: Path, item_ids: list[str], classes: list[str], ref: str) -> np.ndarray:
    """1 - the largest class probability per item (NaN where the file has no row)."""
    ids, matrix = _read_probabilities(path, classes, item_ids, ref)
    row = {item: i for i, item in enumerate(ids)}
    best = matrix.max(axis=1)
    return np.array([1.0 - best[row[item]] if item in row else np.nan for item in item_ids])


def export_batch(
    ws: Workspace,
    dataset: str | None = None,
    *,
    strategy: Literal["in-house", "outsourced", "crowdsourced"] | None = None,
    n: int = 500,
    overlap: float | None = None,
    k: int | None = None,
    selection: Selection = "random",
    slice_name: str | None = None,
    scores: str | Path | None = None,
    items: Sequence[str] | None = None,
    already: Mapping[str, set[str]] | None = None,
    annotators: Sequence[str] | None = None,
    fmt: Literal["csv", "labelstudio"] = "csv",
    out: str | Path | None = None,
    include_pii: bool = False,
    seed: int = 0,
) -> BatchInfo:
    """Select items, assign annotators, write the batch files, and record the batch.

    ``items`` (with ``already``: who labeled each before) makes a relabel batch of those
    items instead; see :func:`export_relabel_batch`.

    The files carry the plan's instructions and class definitions; the target column is never
    in them, and PII columns only go to in-house annotators who are asked for them.
    """
    info = _default_dataset(ws, dataset)
    plan = ws.plan
    strategy = strategy or plan.labels.strategy
    if strategy is None:
        raise UsageError(
            "no labeling strategy: pass --strategy in-house|outsourced|crowdsourced "
            "or set labels.strategy in the plan"
        )
    rate = plan.labels.rates.get(strategy)
    if rate is None:
        raise UsageError(
            f"the plan has no rates for {strategy!r}: add labels.rates.{strategy} "
            "{cost_per_label: ..., labels_per_hour: ..., annotators: ...}"
        )
    if include_pii and strategy != "in-house":
        raise UsageError(
            f"personal data goes only to in-house annotators; {strategy} batches "
            "never include PII columns"
        )
    if not 0 <= (overlap if overlap is not None else 0) <= 1:
        raise UsageError(f"--overlap must be in [0, 1]. Got {overlap} instead.")
    share = plan.labels.overlap if overlap is None else overlap
    crowd = strategy == "crowdsourced"
    per_item = k or (rate.labels_per_item if crowd else 2)
    names = (
        list(annotators) if annotators else [f"{strategy}-{i + 1}" for i in range(rate.annotators)]
    )
    item_ids, table = item_table(ws, info)
    with ws.store.transaction() as session:
        _, version_id = _version_id(session, ws, info)
        labeled = set(
            session.scalars(
                select(Annotation.item_id)
                .where(Annotation.dataset_version_id == version_id)
                .distinct()
            )
        )
    if items is not None:
        chosen = list(dict.fromkeys(items))
        known = set(item_ids)
        strangers = [i for i in chosen if i not in known]
        if strangers:
            raise DataError(
                f"{len(strangers):,} item ids are not items of {info.ref}, e.g. "
                f"{', '.join(strangers[:3])}"
            )
        selection = "relabel"
    else:
        strata = None
        if selection == "stratified":
            spec = next((s for s in plan.slices if s.name == slice_name), None)
            if spec is None:
                raise UsageError(
                    f"--slice {slice_name!r} is not a slice of the plan; slices: "
                    f"{', '.join(plan.slice_names) or 'none'}"
                )
            strata = all_slice_masks(table, [spec])[spec.name]
        chosen = select_items(
            item_ids,
            n,
            selection=selection,
            seed=seed,
            strata=strata,
            uncertainty=(
                _uncertainty(Path(scores), item_ids, _classes(ws, info, table) or [], info.ref)
                if scores
                else None
            ),
            exclude=labeled,
        )
    assignments = assign(
        chosen,
        names,
        overlap=share,
        labels_per_item=per_item,
        crowd=crowd,
        seed=seed,
        already=already,
    )
    external = strategy != "in-house"
    fields = _fields(
        ws, info, table, item_ids, set(chosen), include_pii=include_pii, external=external
    )
    salt = secrets.token_hex(16) if external else None
    if salt is not None:  # files that leave the company carry opaque keys, not ids
        assignments = [Assignment(opaque_key(salt, a.item_id), a.annotator) for a in assignments]
        fields = {opaque_key(salt, item): row for item, row in fields.items()}
    # The calendar time follows the people actually named for this batch.
    batch_estimate = estimate(
        strategy,
        rate.model_copy(update={"annotators": len(names)}),
        items=len(chosen),
        overlap=share,
        k=k,
    )
    comparison = compare_strategies(plan.labels, items=len(chosen), overlap=share)

    store = ws.store
    with store.transaction() as session:
        project_id, version_id = _version_id(session, ws, info)
        number = (
            session.scalar(
                select(func.max(LabelBatch.number)).where(LabelBatch.project_id == project_id)
            )
            or 0
        ) + 1
        folder = Path(out).parent if out else ws.root / "labels"
        main = Path(out) if out else folder / f"batch-{number}.{'json' if fmt != 'csv' else 'csv'}"
        body = (
            render_csv(assignments, fields, batch=number)
            if fmt == "csv"
            else render_label_studio(assignments, fields, batch=number)
        )
        sidecar = main.with_suffix(".config.xml" if fmt != "csv" else ".instructions.md")
        sidecar_text = (
            label_studio_config(plan.labels, _classes(ws, info, table) or [])
            if fmt != "csv"
            else _instructions_markdown(ws, info, table, number)
        )
        artifact = store.artifacts.put_bytes(body.encode())
        ArtifactStore.register(
            session,
            artifact,
            kind="label_batch",
            media_type="text/csv" if fmt == "csv" else "application/json",
        )
        run = RunRecorder.start(
            session,
            project_id=project_id,
            job="labels export",
            root=ws.root,
            parameters={
                "dataset": info.ref,
                "strategy": strategy,
                "n": len(chosen),
                "overlap": share,
                "selection": selection,
                "seed": seed,
                "format": fmt,
            },
        )
        run.input("dataset_version", info.ref, sha256=info.content_hash)
        run.output("artifact", f"labels/batch-{number}", sha256=artifact.sha256)
        session.add(
            LabelBatch(
                project_id=project_id,
                dataset_version_id=version_id,
                number=number,
                strategy=strategy,
                format=fmt,
                selection=selection,
                items=len(chosen),
                assignments=len(assignments),
                annotators=names,
                estimate=batch_estimate.to_dict(),
                salt=salt,
                artifact_sha256=artifact.sha256,
                run_id=run.id,
            )
        )
        run.finish()
    # After the commit: a batch file always has its record (and its bytes are in the store).
    write_atomic(main, body)
    write_atomic(sidecar, sidecar_text)
    return BatchInfo(
        number,
        info.ref,
        strategy,
        selection,
        len(chosen),
        len(assignments),
        names,
        batch_estimate,
        comparison,
        [str(main), str(sidecar)],
    )


def _fields(
    ws: Workspace,
    info: DatasetVersionInfo,
    table: pa.Table,
    item_ids: list[str],
    chosen: set[str],
    *,
    include_pii: bool,
    external: bool = False,
) -> dict[str, dict[str, Any]]:
    meta = effective_metadata(ws, info)
    hidden = {ws.plan.target, meta.get("id_column"), "sha256", "label"}
    if external:  # annotators outside the company need no gender, ethnicity, age...
        hidden |= set(meta.get("sensitive_attributes") or [])
    if not include_pii:
        hidden |= set(meta.get("pii_columns") or [])
        hidden |= {c for c, p in info.profile.get("columns", {}).items() if p.get("pii_suspected")}
    columns = [c for c in table.column_names if c not in hidden]
    rows = [i for i, item in enumerate(item_ids) if item in chosen]
    subset = table.select(columns).take(pa.array(rows, pa.int64()))
    return {item_ids[i]: record for i, record in zip(rows, subset.to_pylist(), strict=True)}


def _instructions_markdown(
    ws: Workspace, info: DatasetVersionInfo, table: pa.Table, number: int
) -> str:
    labels = ws.plan.labels
    classes = _classes(ws, info, table) or []
    lines = [
        f"# Labeling batch {number} — {info.ref}",
        "",
        labels.instructions or "(the plan has no instructions yet: labels.instructions)",
        "",
        "## Classes",
        "",
    ]
    lines += [f"- **{c}**: {labels.classes.get(c) or '(not defined yet)'}" for c in classes]
    lines += ["", "Fill the `label` column with one class per row; `seconds` is the time spent."]
    return "\n".join(lines) + "\n"


# -- import --------------------------------------------------------------------------------------


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
    fmt, rows = read_annotations(path)
    if not rows:
        raise DataError(f"{path}: no labels in the file")
    store = ws.store
    salt = None
    if batch is not None:
        with store.transaction() as session:
            found = session.execute(
                select(LabelBatch.id, Dataset.name, DatasetVersion.version, LabelBatch.salt)
                .join(DatasetVersion, LabelBatch.dataset_version_id == DatasetVersion.id)
                .join(Dataset)
                .join(Project, LabelBatch.project_id == Project.id)
                .where(Project.name == ws.plan.project.name, LabelBatch.number == batch)
            ).first()
        if found is None:
            raise NotFoundError(f"no labeling batch {batch}; see mlplan labels batches")
        info = get_dataset(ws, f"{found[1]}@{found[2]}")
        salt = found[3]
    else:
        info = _default_dataset(ws, dataset)
    item_ids, table = item_table(ws, info)
    if salt is not None:  # an external batch: its opaque keys back to item ids
        back = {opaque_key(salt, item): item for item in item_ids}
        rows = [dataclasses.replace(r, item_id=back.get(r.item_id, r.item_id)) for r in rows]
    classes = _classes(ws, info, table)
    if classes is None and ws.plan.task not in {"regression", "sequence"}:
        raise UsageError(
            f"no class set to check labels against: {info.ref} has no target column and the "
            "plan lists no labels.classes. List the classes (and their definitions) under "
            "labels.classes, so a typo does not become a class"
        )
    with store.transaction() as session:
        _, version_id = _version_id(session, ws, info)
        stored = set(
            session.execute(
                select(Annotation.item_id, Annotation.annotator).where(
                    Annotation.dataset_version_id == version_id
                )
            ).all()
        )
    check = check_rows(
        rows,
        items=set(item_ids),
        classes=set(classes) if classes else None,
        stored={(a, b) for a, b in stored},
    )
    # Keys from an external batch look unknown without their batch: say so.
    hint = (
        "\n(ids from an outsourced or crowdsourced batch are opaque keys: pass --batch N)"
        if check.unknown_items and batch is None
        else ""
    )
    if check.problems and not skip_invalid:
        raise DataError(
            f"{path}: not imported —\n{check.describe()}{hint}\nFix the file, or import "
            "the rest with --skip-invalid (the skipped rows are recorded)"
        )
    if not check.good:
        raise DataError(f"{path}: nothing left to import —\n{check.describe()}")
    digest = sha256_file(path).sha256

    def work(session: Session) -> ImportResult:
        project_id, version_id = _version_id(session, ws, info)
        batch_id = None
        if batch is not None:
            batch_id = session.scalar(
                select(LabelBatch.id).where(
                    LabelBatch.project_id == project_id, LabelBatch.number == batch
                )
            )
        run = RunRecorder.start(
            session,
            project_id=project_id,
            job="labels import",
            root=ws.root,
            parameters={"dataset": info.ref, "batch": batch, "gold": gold, "format": fmt},
        )
        run.input("file", ws.relative(path), sha256=digest)
        record = LabelImport(
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
            Annotation(
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
        run.output("dataset_version", f"{info.ref}:labels", sha256=digest)
        run.finish()
        return ImportResult(info.ref, fmt, check.counts(), check.describe())

    return store.write(work, attempts=1)


# -- measuring -----------------------------------------------------------------------------------


def load_annotations(
    ws: Workspace,
    info: DatasetVersionInfo,
    *,
    gold: bool = False,
    classes: Sequence[str] | None = None,
) -> tuple[AnnotationSet, np.ndarray]:
    """The version's labels (``gold``: the gold ones) and the seconds spent on each."""
    with ws.store.transaction() as session:
        _, version_id = _version_id(session, ws, info)
        rows = session.execute(
            select(Annotation.item_id, Annotation.annotator, Annotation.label, Annotation.seconds)
            .where(Annotation.dataset_version_id == version_id, Annotation.gold.is_(gold))
            .order_by(Annotation.id)
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
    return annotations, np.array([np.nan if s is None else s for s in seconds], dtype=float)


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
    info = _default_dataset(ws, dataset)
    _, table = item_table(ws, info)
    annotations, seconds = load_annotations(ws, info, classes=_classes(ws, info, table))
    report = agreement(
        annotations, level=_level(ws, level), n_boot=n_boot, seed=seed, seconds=seconds
    )
    labels_plan = ws.plan.labels
    metric = labels_plan.agreement_metric
    value = report.metric(metric)
    confused = confused_pairs(annotations)
    issues = disagreements(annotations, majority_vote(annotations))
    result = AgreementResult(info.ref, report, metric, value, labels_plan.min_agreement, confused)
    queued = _store_report(
        ws,
        info,
        "agreement",
        result.to_dict(),
        result.passed,
        job="labels agreement",
        issues=issues,
    )
    return AgreementResult(
        info.ref, report, metric, value, labels_plan.min_agreement, confused, queued
    )


def _store_report(
    ws: Workspace,
    info: DatasetVersionInfo,
    kind: str,
    report: dict[str, Any],
    passed: bool | None,
    *,
    job: str,
    issues: Sequence[LabelIssue] = (),
) -> int:
    """Store a report (and queue issues not queued before); returns how many were queued."""

    def work(session: Session) -> int:
        project_id, version_id = _version_id(session, ws, info)
        run = RunRecorder.start(
            session, project_id=project_id, job=job, root=ws.root, parameters={"dataset": info.ref}
        )
        run.input("dataset_version", f"{info.ref}:labels")
        session.add(
            LabelReport(
                project_id=project_id,
                dataset_version_id=version_id,
                kind=kind,
                report=_finite(report),
                passed=passed,
                run_id=run.id,
            )
        )
        queued = _queue(session, project_id, version_id, issues)
        run.finish()
        return queued

    return ws.store.write(work)


def _finite(value: Any) -> Any:
    """JSON has no NaN: undefined figures are stored as null."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


def _queue(session: Session, project_id: int, version_id: int, issues: Sequence[LabelIssue]) -> int:
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
            details=_finite(i.details),
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
    info = _default_dataset(ws, dataset)
    item_ids, table = item_table(ws, info)
    classes = _classes(ws, info, table)
    annotations, _ = load_annotations(ws, info, classes=classes)
    try:
        gold_set, _ = load_annotations(ws, info, gold=True, classes=classes)
        gold = {
            gold_set.items[i]: gold_set.classes[c]
            for i, c in zip(gold_set.item, gold_set.label, strict=True)
        }
    except UsageError:
        gold = {}
    row_of = {item: i for i, item in enumerate(item_ids)}
    rows = np.array([row_of[item] for item in annotations.items], dtype=np.int64)
    slices = {
        slice_name: {value: mask[rows] for value, mask in values.items()}
        for slice_name, values in all_slice_masks(
            table, ws.plan.slices, skip_missing_columns=True
        ).items()
    }
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
    }
    _store_report(ws, info, "hlp", result.to_dict() | stamp, None, job="labels hlp")
    return result


def latest_report(
    ws: Workspace, kind: Literal["agreement", "hlp"], dataset: str | None = None
) -> tuple[dict[str, Any], bool | None, dt.datetime] | None:
    """The newest stored report of ``kind`` (for a dataset, or any), with its verdict."""
    with ws.store.transaction() as session:
        query = (
            select(LabelReport, Dataset.name, DatasetVersion.version)
            .join(DatasetVersion, LabelReport.dataset_version_id == DatasetVersion.id)
            .join(Dataset)
            .join(Project, LabelReport.project_id == Project.id)
            .where(Project.name == ws.plan.project.name, LabelReport.kind == kind)
            .order_by(LabelReport.created_at.desc(), LabelReport.id.desc())
        )
        if dataset is not None:
            info = get_dataset(ws, dataset)
            query = query.where(Dataset.name == info.name, DatasetVersion.version == info.version)
        row = session.execute(query.limit(1)).first()
    if row is None:
        return None
    record = row[0]
    return record.report | {"dataset": f"{row[1]}@{row[2]}"}, record.passed, record.created_at


def label_count(ws: Workspace, dataset: str) -> int:
    """How many (non-gold) labels a dataset version holds now."""
    info = get_dataset(ws, dataset)
    with ws.store.transaction() as session:
        _, version_id = _version_id(session, ws, info)
        return int(
            session.scalar(
                select(func.count())
                .select_from(Annotation)
                .where(Annotation.dataset_version_id == version_id, Annotation.gold.is_(False))
            )
            or 0
        )


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
    found = latest_report(ws, "hlp", dataset)
    if found is None:
        return None
    report, _, when = found
    return StoredHLP(
        HumanLevelPerformance.from_dict(report),
        report["dataset"],
        when,
        int(report.get("annotations", 0)),
        label_count(ws, report["dataset"]),
    )


def consensus_labels(
    ws: Workspace,
    dataset: str | None = None,
    *,
    method: Literal["majority", "dawid-skene"] = "majority",
    ties: Literal["unresolved", "random"] = "unresolved",
    out: str | Path | None = None,
) -> tuple[AnnotationSet, Consensus, Path | None]:
    """One label per item from the annotators' labels; written as CSV when ``out`` is given."""
    info = _default_dataset(ws, dataset)
    _, table = item_table(ws, info)
    annotations, _ = load_annotations(ws, info, classes=_classes(ws, info, table))
    result = (
        dawid_skene(annotations)
        if method == "dawid-skene"
        else majority_vote(annotations, ties=ties)
    )
    path = None
    if out is not None:
        lines = ["item_id,label,confidence,labels"]
        counts = annotations.labels_per_item
        for i, item in enumerate(annotations.items):
            label = annotations.classes[result.label[i]] if result.label[i] >= 0 else ""
            lines.append(f"{_csv(item)},{_csv(label)},{result.confidence[i]:.4f},{counts[i]}")
        path = Path(out)
        write_atomic(path, "\n".join(lines) + "\n")
    return annotations, result, path


def _csv(value: str) -> str:
    return f'"{value.replace(chr(34), chr(34) * 2)}"' if any(c in value for c in ',"\n') else value


# -- the relabel queue ---------------------------------------------------------------------------


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
            select(LabelIssueRecord, Dataset.name, DatasetVersion.version)
            .join(DatasetVersion, LabelIssueRecord.dataset_version_id == DatasetVersion.id)
            .join(Dataset)
            .join(Project, LabelIssueRecord.project_id == Project.id)
            .where(Project.name == ws.plan.project.name)
            .order_by(LabelIssueRecord.score.desc(), LabelIssueRecord.id)
        )
        if status is not None:
            query = query.where(LabelIssueRecord.status == status)
        if dataset is not None:
            info = get_dataset(ws, dataset)
            query = query.where(Dataset.name == info.name, DatasetVersion.version == info.version)
        return [
            QueueEntry(
                f"{name}@{version}", r.item_id, r.source, r.score, r.details, r.status, r.note
            )
            for r, name, version in session.execute(query)
        ]


def list_batches(ws: Workspace) -> list[dict[str, Any]]:
    """Every labeling batch, oldest first, with what came back for it."""
    with ws.store.transaction() as session:
        rows = session.execute(
            select(LabelBatch, Dataset.name, DatasetVersion.version)
            .join(DatasetVersion, LabelBatch.dataset_version_id == DatasetVersion.id)
            .join(Dataset)
            .join(Project, LabelBatch.project_id == Project.id)
            .where(Project.name == ws.plan.project.name)
            .order_by(LabelBatch.number)
        ).all()
        imported = dict(
            session.execute(
                select(LabelImport.batch_id, func.count(Annotation.id))
                .join(Annotation, Annotation.import_id == LabelImport.id)
                .where(LabelImport.batch_id.is_not(None))
                .group_by(LabelImport.batch_id)
            ).all()
        )
    return [
        {
            "number": b.number,
            "dataset": f"{name}@{version}",
            "strategy": b.strategy,
            "selection": b.selection,
            "items": b.items,
            "assignments": b.assignments,
            "annotators": b.annotators,
            "external": b.salt is not None,
            "labels_imported": int(imported.get(b.id, 0)),
            "estimate": b.estimate,
            "created_at": b.created_at.isoformat(),
        }
        for b, name, version in rows
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
        raise UsageError(
            f"open items in several dataset versions ({', '.join(versions)}); "
            "choose one with --dataset"
        )
    info = get_dataset(ws, versions[0])
    items = sorted({e.item_id for e in entries})
    with ws.store.transaction() as session:
        _, version_id = _version_id(session, ws, info)
        already: dict[str, set[str]] = {}
        for item, who in session.execute(
            select(Annotation.item_id, Annotation.annotator).where(
                Annotation.dataset_version_id == version_id, Annotation.item_id.in_(items)
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
    info = _default_dataset(ws, dataset)

    def work(session: Session) -> int:
        _, version_id = _version_id(session, ws, info)
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

    return ws.store.write(work)


def _read_probabilities(
    path: Path, classes: list[str], item_ids: list[str], ref: str
) -> tuple[list[str], np.ndarray]:
    """A file of out-of-fold probabilities: item ids and an items × classes matrix, checked."""
    from collections import Counter

    from mlplan.data import read_table

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


def issues_from_predictions(
    ws: Workspace, pred_probs: str | Path, dataset: str | None = None
) -> list[LabelIssue]:
    """Confident learning on out-of-fold probabilities (a file: item_id and one column per
    class, named as the classes); issues go to the relabel queue.

    The labels checked are the dataset's target column, or — for data being labeled — the
    annotators' majority consensus.
    """
    info = _default_dataset(ws, dataset)
    item_ids, table = item_table(ws, info)
    path = Path(pred_probs)
    classes = _classes(ws, info, table)
    if not classes:
        raise UsageError(
            "confident learning needs classes: set labels.classes or a classification target"
        )
    prob_ids, matrix = _read_probabilities(path, classes, item_ids, info.ref)
    target = "label" if info.format == "images" else ws.plan.target
    if target is not None and target in table.column_names:
        row_of = {item: i for i, item in enumerate(item_ids)}
        values = table.column(target).to_pylist()
        given = {
            p: (None if values[row_of[p]] is None else str(values[row_of[p]])) for p in prob_ids
        }
    else:
        annotations, _ = load_annotations(ws, info, classes=classes)
        consensus = majority_vote(annotations)
        given = {
            item: annotations.classes[c]
            for item, c in zip(annotations.items, consensus.label, strict=True)
            if c >= 0
        }
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
    _store_report(
        ws,
        info,
        "issues",
        {"found": len(found), "checked": int(keep.sum()), "file": ws.relative(path)},
        None,
        job="labels issues",
        issues=found,
    )
    return found
