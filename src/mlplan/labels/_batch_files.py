"""Labeling batches out: selection, assignment, the files to send, and the batch record."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from sqlalchemy import func, select

from mlplan.data import (
    DatasetVersionInfo,
    all_slice_masks,
    effective_metadata,
)
from mlplan.errors import DataError, UsageError
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
from mlplan.labels._items import (
    classes_of,
    default_dataset,
    ids_of_version,
    item_table,
    read_probabilities,
)
from mlplan.store import (
    AnnotationRecord,
    ArtifactStore,
    DatasetRecord,
    DatasetVersionRecord,
    LabelBatchRecord,
    LabelImportRecord,
)
from mlplan.workspace import Workspace, write_atomic

__all__ = [
    "BatchInfo",
    "export_batch",
    "list_batches",
]


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
    ids, matrix = read_probabilities(path, classes, item_ids, ref)
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
    info = default_dataset(ws, dataset)
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
        _, version_id = ids_of_version(session, ws, info)
        labeled = set(
            session.scalars(
                select(AnnotationRecord.item_id)
                .where(AnnotationRecord.dataset_version_id == version_id)
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
                _uncertainty(Path(scores), item_ids, classes_of(ws, info, table) or [], info.ref)
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
    parameters = {
        "dataset": info.ref,
        "strategy": strategy,
        "n": len(chosen),
        "overlap": share,
        "selection": selection,
        "seed": seed,
        "format": fmt,
    }
    with ws.record("labels export", parameters) as run:
        session = run.session
        project_id, version_id = ids_of_version(session, ws, info)
        number = (
            session.scalar(
                select(func.max(LabelBatchRecord.number)).where(
                    LabelBatchRecord.project_id == project_id
                )
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
            label_studio_config(plan.labels, classes_of(ws, info, table) or [])
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
        run.input("dataset_version", info.ref, sha256=info.content_hash)
        run.output("artifact", f"labels/batch-{number}", sha256=artifact.sha256)
        session.add(
            LabelBatchRecord(
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
    classes = classes_of(ws, info, table) or []
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


def list_batches(ws: Workspace) -> list[dict[str, Any]]:
    """Every labeling batch, oldest first, with what came back for it."""
    with ws.store.transaction() as session:
        rows = session.execute(
            ws.select(LabelBatchRecord, DatasetRecord.name, DatasetVersionRecord.version)
            .join(
                DatasetVersionRecord,
                LabelBatchRecord.dataset_version_id == DatasetVersionRecord.id,
            )
            .join(DatasetRecord)
            .order_by(LabelBatchRecord.number)
        ).all()
        imported = dict(
            session.execute(
                select(LabelImportRecord.batch_id, func.count(AnnotationRecord.id))
                .join(AnnotationRecord, AnnotationRecord.import_id == LabelImportRecord.id)
                .where(LabelImportRecord.batch_id.is_not(None))
                .group_by(LabelImportRecord.batch_id)
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
