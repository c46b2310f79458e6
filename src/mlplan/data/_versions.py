"""Registered dataset versions as the store holds them: looked up, listed, and read back.

Every stage reads data through here: :func:`get_dataset` by reference, :func:`load_table` for
the rows (from the snapshot — a CSV or JSONL one through its columnar copy — else from the
unchanged source file).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mlplan.core import DatasetRef, parse_dataset_ref
from mlplan.data._columnar import COPIED_FORMATS, read_copy, write_copy
from mlplan.data._columns import close_hint
from mlplan.data._images import image_table
from mlplan.data._read import DataFormat, content_hash, read_table
from mlplan.errors import DataError, DatasetNotFoundError
from mlplan.store import DatasetRecord, DatasetVersionRecord, sha256_file
from mlplan.workspace import Workspace

__all__ = [
    "DatasetSummary",
    "DatasetVersionInfo",
    "find_by_hash",
    "get_dataset",
    "list_datasets",
    "load_table",
    "version_record",
]


@dataclass(frozen=True)
class DatasetVersionInfo:
    """One registered version of a dataset, as the store holds it."""

    name: str
    version: int
    content_hash: str
    format: str
    source_path: str
    size_bytes: int
    rows: int
    columns: list[dict[str, Any]]
    profile: dict[str, Any]
    metadata: dict[str, Any]
    snapshot_sha256: str | None
    run_id: str
    created_at: dt.datetime

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def delimiter(self) -> str | None:
        """A CSV version's field delimiter, as it was read when registered."""
        if self.format != "csv":
            return None
        recorded = self.profile.get("delimiter")
        if isinstance(recorded, str):
            return recorded
        # Registered before delimiters were found and recorded: the suffix decided.
        return "\t" if self.source_path.lower().endswith(".tsv") else ","

    @property
    def decimal(self) -> str | None:
        """A CSV version's decimal mark, as its numbers were read when registered (``"."``
        for versions registered before decimal commas were found)."""
        if self.format != "csv":
            return None
        recorded = self.profile.get("decimal")
        return recorded if isinstance(recorded, str) else "."

    @property
    def column_names(self) -> list[str]:
        """Column names in file order."""
        return [c["name"] for c in self.columns]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "ref": self.ref,
            "name": self.name,
            "version": self.version,
            "content_hash": self.content_hash,
            "format": self.format,
            "delimiter": self.delimiter,
            "decimal": self.decimal,
            "source_path": self.source_path,
            "size_bytes": self.size_bytes,
            "rows": self.rows,
            "columns": self.columns,
            "metadata": self.metadata,
            "snapshot_sha256": self.snapshot_sha256,
            "run_id": self.run_id,
            "created_at": self.created_at.isoformat(),
            "profile": self.profile,
        }

    @classmethod
    def from_record(cls, record: DatasetVersionRecord, name: str) -> DatasetVersionInfo:
        """From the store's row."""
        return cls(
            name=name,
            version=record.version,
            content_hash=record.content_hash,
            format=record.format,
            source_path=record.source_path,
            size_bytes=record.size_bytes,
            rows=record.rows,
            columns=record.columns,
            profile=record.profile,
            metadata=record.meta,
            snapshot_sha256=record.snapshot_sha256,
            run_id=record.run_id,
            created_at=record.created_at,
        )


@dataclass(frozen=True)
class DatasetSummary:
    """A dataset and its latest version."""

    name: str
    versions: int
    latest: DatasetVersionInfo | None
    in_plan: bool


def version_record(
    session: Session, ws: Workspace, info: DatasetVersionInfo
) -> tuple[int, DatasetVersionRecord]:
    """The project id and the store's row of a version, inside the caller's transaction: the
    seam for stages that write rows pointing at a dataset version (splits, labels, models).

    Raises
    ------
    DatasetNotFoundError
        The version is not in the store (versions are never deleted: a corrupted store).
    """
    project_id = ws.project_id(session)
    record = session.scalar(
        select(DatasetVersionRecord)
        .join(DatasetRecord)
        .where(
            DatasetRecord.project_id == project_id,
            DatasetRecord.name == info.name,
            DatasetVersionRecord.version == info.version,
        )
    )
    if record is None:  # versions are never deleted; this guards a corrupted store
        raise DatasetNotFoundError(f"{info.ref} vanished from the store")
    return project_id, record


def find_by_hash(ws: Workspace, name: str, digest: str) -> DatasetVersionInfo | None:
    """The version of dataset ``name`` whose content has this hash, if one is registered."""
    with ws.store.transaction() as session:
        record = session.scalar(
            ws.select(DatasetVersionRecord, owner=DatasetRecord)
            .join(DatasetRecord)
            .where(DatasetRecord.name == name, DatasetVersionRecord.content_hash == digest)
        )
        return DatasetVersionInfo.from_record(record, name) if record is not None else None


def get_dataset(ws: Workspace, ref: str | DatasetRef) -> DatasetVersionInfo:
    """A dataset version by reference (``name`` means its latest version).

    Raises
    ------
    DatasetNotFoundError
        Naming the known datasets or versions.
    """
    if isinstance(ref, str):
        ref = parse_dataset_ref(ref)
    with ws.store.transaction() as session:
        dataset = session.scalar(ws.select(DatasetRecord).where(DatasetRecord.name == ref.name))
        if dataset is None or not dataset.versions:
            known = list(
                session.scalars(ws.select(DatasetRecord.name).order_by(DatasetRecord.name))
            )
            message = f"dataset {ref.name!r} not found{close_hint(ref.name, known)}."
            message += f" Known: {', '.join(known)}." if known else " No dataset is registered."
            raise DatasetNotFoundError(
                f"{message} Register it with: mlplan data add {ref.name} FILE"
            )
        versions = dataset.versions
        if ref.version is None:
            return DatasetVersionInfo.from_record(versions[-1], ref.name)
        for record in versions:
            if record.version == ref.version:
                return DatasetVersionInfo.from_record(record, ref.name)
        known_versions = ", ".join(f"{ref.name}@{v.version}" for v in versions)
        raise DatasetNotFoundError(f"{str(ref)!r} not found; known: {known_versions}")


def list_datasets(ws: Workspace) -> list[DatasetSummary]:
    """Every dataset registered or planned, with its latest version (plan order first)."""
    # Set-based: the datasets with their version counts, then each one's latest version, in
    # two queries whatever the number of datasets (not one query of versions per dataset).
    newest = (
        select(
            DatasetVersionRecord.dataset_id,
            func.count().label("versions"),
            func.max(DatasetVersionRecord.version).label("latest"),
        )
        .group_by(DatasetVersionRecord.dataset_id)
        .subquery()
    )
    with ws.store.transaction() as session:
        datasets = session.execute(
            ws.select(DatasetRecord.id, DatasetRecord.name, newest.c.versions)
            .outerjoin(newest, newest.c.dataset_id == DatasetRecord.id)
            .order_by(DatasetRecord.name)
        ).all()
        latest = {
            r.dataset_id: r
            for r in session.scalars(
                ws.select(DatasetVersionRecord, owner=DatasetRecord)
                .join(DatasetRecord)
                .join(
                    newest,
                    (newest.c.dataset_id == DatasetVersionRecord.dataset_id)
                    & (newest.c.latest == DatasetVersionRecord.version),
                )
            )
        }
        planned = ws.plan.datasets
        registered = {
            name: DatasetSummary(
                name,
                versions or 0,
                DatasetVersionInfo.from_record(latest[id_], name) if id_ in latest else None,
                name in planned,
            )
            for id_, name, versions in datasets
        }
    out = [registered.pop(name, DatasetSummary(name, 0, None, True)) for name in planned]
    return out + list(registered.values())


def load_table(ws: Workspace, info: DatasetVersionInfo) -> pa.Table:
    """The data of a version: from its snapshot, else from its source file if unchanged.

    A CSV or JSONL snapshot is parsed once: the table is kept as a columnar copy beside the
    artifacts, which later reads memory-map (the same table, no parse) while the snapshot is
    stored.

    Raises
    ------
    DataError
        When neither the snapshot nor an unchanged source file is at hand.
    """
    artifacts = ws.store.artifacts
    fmt: DataFormat = info.format  # type: ignore[assignment]
    if info.snapshot_sha256 and artifacts.exists(info.snapshot_sha256):
        snapshot = artifacts.path(info.snapshot_sha256)
        if fmt == "images":
            return pq.read_table(snapshot)
        if fmt not in COPIED_FORMATS:
            return read_table(snapshot, fmt)
        table = read_copy(artifacts, info)
        if table is None:
            table = read_table(snapshot, fmt, delimiter=info.delimiter, decimal=info.decimal or ".")
            write_copy(artifacts, info, table)
        return table
    source = ws.resolve(info.source_path)
    if fmt == "images":
        if source.is_dir() and content_hash(source, fmt).sha256 == info.content_hash:
            return image_table(source)
    elif source.is_file() and sha256_file(source).sha256 == info.content_hash:
        return read_table(source, fmt, delimiter=info.delimiter, decimal=info.decimal or ".")
    raise DataError(
        f"the data of {info.ref} is not at hand: no snapshot in the store and {info.source_path} "
        "is missing or has changed since it was registered. Restore the file, or register the "
        "current file as a new version with: mlplan data add " + info.name
    )
