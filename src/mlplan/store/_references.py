"""What the store refers to in the artifact folder: every hash any record names, so that
``mlplan gc`` takes only files nothing names.

The net is wide on purpose: the artifacts table, every column that holds a hash, every hash
found anywhere in the JSON of models, reports and run parameters, and the images an image
dataset's snapshot lists (they are stored, but only its image table names them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlplan.store._artifacts import ArtifactStore
from mlplan.store._tables import (
    ArtifactRecord,
    DatasetRecord,
    DatasetVersionRecord,
    LabelBatchRecord,
    LabelImportRecord,
    LabelReportRecord,
    ModelRecord,
    ModelReportRecord,
    RunIORecord,
    RunRecord,
    SplitRecord,
)

__all__ = ["ArtifactReferences", "referenced_artifacts"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ArtifactReferences:
    """The hashes the store names, and why some could not be read (then every file is kept:
    a file could be one of those)."""

    hashes: frozenset[str]
    unreadable: tuple[str, ...] = ()


def referenced_artifacts(session: Session, artifacts: ArtifactStore) -> ArtifactReferences:
    """Every artifact hash that any record of any project in the store names.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from mlplan.store import open_store
    >>> store = open_store(pathlib.Path(tempfile.mkdtemp()), url="sqlite://")
    >>> with store.transaction() as session:
    ...     ref = ArtifactStore.register(session, store.artifacts.put_bytes(b"x"),
    ...                                  kind="note", media_type="text/plain")
    ...     found = referenced_artifacts(session, store.artifacts)
    >>> ref.sha256 in found.hashes, found.unreadable
    (True, ())
    """
    hashes: set[str] = set()
    for column in (
        ArtifactRecord.sha256,
        DatasetVersionRecord.snapshot_sha256,
        DatasetVersionRecord.content_hash,
        SplitRecord.artifact_sha256,
        LabelBatchRecord.artifact_sha256,
        LabelImportRecord.sha256,
        RunIORecord.sha256,
    ):
        hashes.update(h for h in session.scalars(select(column)) if h)
    for document in (
        ModelRecord.package,
        ModelRecord.parameters,
        ModelRecord.features,
        ModelRecord.parity,
        ModelReportRecord.report,
        LabelReportRecord.report,
        RunRecord.parameters,
        DatasetVersionRecord.meta,
    ):
        for value in session.scalars(select(document)):
            _collect(value, hashes)
    unreadable = tuple(_images(session, artifacts, hashes))
    return ArtifactReferences(frozenset(hashes), unreadable)


def _collect(value: Any, into: set[str]) -> None:
    """Every sha256-shaped string in a JSON value, keys included."""
    if isinstance(value, str):
        if len(value) == 64 and _SHA256.fullmatch(value):
            into.add(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _collect(key, into)
            _collect(item, into)
    elif isinstance(value, list):
        for item in value:
            _collect(item, into)


def _images(session: Session, artifacts: ArtifactStore, into: set[str]) -> Iterable[str]:
    """Add the images each image dataset's snapshot lists; yield what could not be read."""
    rows = session.execute(
        select(
            DatasetRecord.name, DatasetVersionRecord.version, DatasetVersionRecord.snapshot_sha256
        )
        .join(DatasetRecord, DatasetVersionRecord.dataset_id == DatasetRecord.id)
        .where(DatasetVersionRecord.format == "images")
        .order_by(DatasetRecord.name, DatasetVersionRecord.version)
    ).all()
    if not rows:
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name, version, snapshot in rows:
        if snapshot is None:  # added without a snapshot: its images were never copied in
            continue
        try:
            table = pq.read_table(artifacts.path(snapshot), columns=["sha256"])
        except (OSError, pa.ArrowException) as exc:
            yield f"the image table of {name}@{version} cannot be read ({exc})"
            continue
        into.update(h for h in table.column("sha256").to_pylist() if h)
