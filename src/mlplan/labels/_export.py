"""Exporting labeling batches: choose the items, assign annotators, write the files, record
the batch; and the batches listed with what came back for each."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sqlalchemy import func, select

from mlplan.data import DatasetVersionInfo, all_slice_masks
from mlplan.errors import DataError, ParameterError, UsageError
from mlplan.labels._batch_files import BatchFiles, outgoing_fields, render_batch
from mlplan.labels._batches import (
    Assignment,
    Estimate,
    Selection,
    Strategy,
    assign,
    compare_strategies,
    estimate,
    opaque_key,
    select_items,
)
from mlplan.labels._items import (
    ItemTable,
    classes_of,
    default_dataset,
    ids_of_version,
    item_table,
    read_probabilities,
)
from mlplan.plan import LabelRate
from mlplan.store import (
    AnnotationRecord,
    ArtifactStore,
    DatasetRecord,
    DatasetVersionRecord,
    LabelBatchRecord,
    LabelImportRecord,
)
from mlplan.workspace import Workspace, write_atomic

__all__ = ["BatchInfo", "BatchSummary", "export_batch", "list_batches"]


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


@dataclass(frozen=True)
class _Outgoing:
    """What a batch sends: the assignments and each item's fields, under opaque keys (and
    the salt that maps them back) when the batch leaves the company."""

    assignments: list[Assignment]
    fields: dict[str, dict[str, Any]]
    salt: str | None


@dataclass(frozen=True, kw_only=True)
class _Batch:
    """A batch made and ready to record: what was asked for and what goes out."""

    info: DatasetVersionInfo
    strategy: Strategy
    selection: Selection
    fmt: Literal["csv", "labelstudio"]
    seed: int
    overlap: float
    annotators: list[str]
    items: list[str]
    outgoing: _Outgoing
    estimate: Estimate

    def exported(self, number: int, files: list[Path], comparison: list[Estimate]) -> BatchInfo:
        """What the caller is told of the batch once it is recorded and written."""
        return BatchInfo(
            number,
            self.info.ref,
            self.strategy,
            self.selection,
            len(self.items),
            len(self.outgoing.assignments),
            self.annotators,
            self.estimate,
            comparison,
            [str(f) for f in files],
        )

    def parameters(self) -> dict[str, Any]:
        """The batch's run parameters."""
        return {
            "dataset": self.info.ref,
            "strategy": self.strategy,
            "n": len(self.items),
            "overlap": self.overlap,
            "selection": self.selection,
            "seed": self.seed,
            "format": self.fmt,
        }


def export_batch(
    ws: Workspace,
    dataset: str | None = None,
    *,
    strategy: Strategy | None = None,
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

    Raises
    ------
    ParameterError
        No strategy (here or in the plan); an overlap outside [0, 1]; a slice the plan lacks;
        uncertainty selection without ``scores``; ``n`` or ``annotators`` that cannot make
        the batch.
    UsageError
        No rates for the strategy in the plan; PII asked for an external batch.
    """
    info = default_dataset(ws, dataset)
    strategy, rate = _strategy(ws, strategy, include_pii=include_pii)
    share = _overlap(ws, overlap)
    crowd = strategy == "crowdsourced"
    names = (
        list(annotators) if annotators else [f"{strategy}-{i + 1}" for i in range(rate.annotators)]
    )
    table = item_table(ws, info)
    if items is not None:
        chosen, selection = _known(items, table, info), "relabel"
    else:
        chosen = _select(
            ws,
            info,
            table,
            n=n,
            selection=selection,
            slice_name=slice_name,
            scores=scores,
            seed=seed,
        )
    assignments = assign(
        chosen,
        names,
        overlap=share,
        labels_per_item=k or (rate.labels_per_item if crowd else 2),
        crowd=crowd,
        seed=seed,
        already=already,
    )
    external = strategy != "in-house"
    outgoing = _outgoing(
        ws, info, table, chosen=chosen, assignments=assignments, pii=include_pii, external=external
    )
    # The calendar time follows the people actually named for this batch.
    rate = rate.model_copy(update={"annotators": len(names)})
    cost = estimate(strategy, rate, items=len(chosen), overlap=share, k=k)
    batch = _Batch(
        info=info,
        strategy=strategy,
        selection=selection,
        fmt=fmt,
        seed=seed,
        overlap=share,
        annotators=names,
        items=chosen,
        outgoing=outgoing,
        estimate=cost,
    )
    number, files = _record(ws, table, batch, out)
    # After the commit: a batch file always has its record (and its bytes are in the store).
    write_atomic(files.main, files.body)
    write_atomic(files.sidecar, files.sidecar_text)
    return batch.exported(
        number,
        [files.main, files.sidecar],
        compare_strategies(ws.plan.labels, items=len(chosen), overlap=share),
    )


def _strategy(
    ws: Workspace, strategy: Strategy | None, *, include_pii: bool
) -> tuple[Strategy, LabelRate]:
    """The strategy (given, else the plan's) and its rate; PII only for in-house batches."""
    strategy = strategy or ws.plan.labels.strategy
    if strategy is None:
        raise ParameterError(
            "strategy",
            "no labeling strategy: pass {param} in-house|outsourced|crowdsourced "
            "or set labels.strategy in the plan",
        )
    rate = ws.plan.labels.rates.get(strategy)
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
    return strategy, rate


def _overlap(ws: Workspace, overlap: float | None) -> float:
    """The share of items labeled more than once: given, else the plan's."""
    if overlap is None:
        return ws.plan.labels.overlap
    if not 0 <= overlap <= 1:
        raise ParameterError("overlap", f"{{param}} must be in [0, 1]. Got {overlap} instead.")
    return overlap


def _known(items: Sequence[str], table: ItemTable, info: DatasetVersionInfo) -> list[str]:
    """The items of a relabel batch, each once; every one must be an item of the version."""
    chosen = list(dict.fromkeys(items))
    known = set(table.ids)
    strangers = [i for i in chosen if i not in known]
    if strangers:
        raise DataError(
            f"{len(strangers):,} item ids are not items of {info.ref}, e.g. "
            f"{', '.join(strangers[:3])}"
        )
    return chosen


def _select(
    ws: Workspace,
    info: DatasetVersionInfo,
    table: ItemTable,
    *,
    n: int,
    selection: Selection,
    slice_name: str | None,
    scores: str | Path | None,
    seed: int,
) -> list[str]:
    """``n`` items not labeled yet: at random, balanced over a plan slice, or those the
    model (``scores``) is least sure of."""
    with ws.store.transaction() as session:
        _, version_id = ids_of_version(session, ws, info)
        labeled = set(
            session.scalars(
                select(AnnotationRecord.item_id)
                .where(AnnotationRecord.dataset_version_id == version_id)
                .distinct()
            )
        )
    strata = None
    if selection == "stratified":
        spec = next((s for s in ws.plan.slices if s.name == slice_name), None)
        if spec is None:
            raise ParameterError(
                "slice_name",
                f"{{param}} {slice_name!r} is not a slice of the plan; slices: "
                f"{', '.join(ws.plan.slice_names) or 'none'}",
            )
        strata = all_slice_masks(table.table, [spec])[spec.name]
    uncertainty = (
        _uncertainty(Path(scores), table.ids, classes_of(ws, info, table.table) or [], info.ref)
        if scores
        else None
    )
    try:
        return select_items(
            table.ids,
            n,
            selection=selection,
            seed=seed,
            strata=strata,
            uncertainty=uncertainty,
            exclude=labeled,
        )
    except ParameterError as error:
        if error.param != "uncertainty":
            raise
        # Here the uncertainty comes from a file of predictions: name that parameter.
        raise ParameterError(
            "scores",
            "uncertainty selection needs model predictions: pass {param} FILE "
            "(item_id and one probability column per class)",
        ) from None


def _uncertainty(path: Path, item_ids: list[str], classes: list[str], ref: str) -> np.ndarray:
    """1 - the largest class probability per item (NaN where the file has no row)."""
    ids, matrix = read_probabilities(path, classes, item_ids, ref)
    row = {item: i for i, item in enumerate(ids)}
    best = matrix.max(axis=1)
    return np.array([1.0 - best[row[item]] if item in row else np.nan for item in item_ids])


def _outgoing(
    ws: Workspace,
    info: DatasetVersionInfo,
    table: ItemTable,
    *,
    chosen: list[str],
    assignments: list[Assignment],
    pii: bool,
    external: bool,
) -> _Outgoing:
    fields = outgoing_fields(ws, info, table, set(chosen), include_pii=pii, external=external)
    if not external:
        return _Outgoing(assignments, fields, None)
    # Files that leave the company carry opaque keys, not ids.
    salt = secrets.token_hex(16)
    return _Outgoing(
        [Assignment(opaque_key(salt, a.item_id), a.annotator) for a in assignments],
        {opaque_key(salt, item): row for item, row in fields.items()},
        salt,
    )


def _record(
    ws: Workspace, table: ItemTable, batch: _Batch, out: str | Path | None
) -> tuple[int, BatchFiles]:
    """Number the batch, render its files, and record it with their bytes (and the run)."""
    info, outgoing = batch.info, batch.outgoing
    # Staged: gc leaves the batch's file alone until its record is committed.
    with ws.store.artifacts.staged(), ws.record("labels export", batch.parameters()) as run:
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
        files = render_batch(
            ws,
            info,
            table.table,
            number=number,
            assignments=outgoing.assignments,
            fields=outgoing.fields,
            fmt=batch.fmt,
            out=out,
        )
        artifact = ws.store.artifacts.put_bytes(files.body.encode())
        ArtifactStore.register(
            session,
            artifact,
            kind="label_batch",
            media_type="text/csv" if batch.fmt == "csv" else "application/json",
        )
        run.input("dataset_version", info.ref, sha256=info.content_hash)
        run.output("artifact", f"labels/batch-{number}", sha256=artifact.sha256)
        session.add(
            LabelBatchRecord(
                project_id=project_id,
                dataset_version_id=version_id,
                number=number,
                strategy=batch.strategy,
                format=batch.fmt,
                selection=batch.selection,
                items=len(batch.items),
                assignments=len(outgoing.assignments),
                annotators=batch.annotators,
                estimate=batch.estimate.to_dict(),
                salt=outgoing.salt,
                artifact_sha256=artifact.sha256,
                run_id=run.id,
            )
        )
    return number, files


@dataclass(frozen=True)
class BatchSummary:
    """A recorded labeling batch, and how many labels came back for it."""

    number: int
    dataset: str
    strategy: str
    selection: str
    items: int
    assignments: int
    annotators: list[str]
    external: bool  # its files carry opaque keys, not item ids
    labels_imported: int
    estimate: Estimate
    created_at: dt.datetime

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
            "external": self.external,
            "labels_imported": self.labels_imported,
            "estimate": self.estimate.to_dict(),
            "created_at": self.created_at.isoformat(),
        }


def list_batches(ws: Workspace) -> list[BatchSummary]:
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
        BatchSummary(
            b.number,
            f"{name}@{version}",
            b.strategy,
            b.selection,
            b.items,
            b.assignments,
            b.annotators,
            b.salt is not None,
            int(imported.get(b.id, 0)),
            Estimate(**b.estimate),
            b.created_at,
        )
        for b, name, version in rows
    ]
