"""Registering dataset versions: content-hashed, profiled, described, snapshotted, with lineage.

``register_dataset`` does all its reading and computing first and writes last, in one
transaction, so a failure leaves nothing behind in the store.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mlplan.core import DatasetRef, parse_dataset_ref
from mlplan.data._images import image_table, profile_images
from mlplan.data._privacy import redact_profile, suspected_pii
from mlplan.data._profile import profile_table
from mlplan.data._read import DataFormat, content_hash, detect_format, list_images, read_table
from mlplan.errors import DataError, DatasetNotFoundError, UsageError
from mlplan.plan import NAME_PATTERN, DatasetSpec
from mlplan.store import (
    ArtifactStore,
    DatasetRecord,
    DatasetVersionRecord,
    sha256_file,
    utcnow,
)
from mlplan.workspace import Workspace

__all__ = [
    "METADATA_FIELDS",
    "DatasetSummary",
    "DatasetVersionInfo",
    "RegisterResult",
    "get_dataset",
    "list_datasets",
    "load_table",
    "register_dataset",
]

# The datasheet fields the checklist requires for every dataset (data.metadata).
METADATA_FIELDS = (
    "source",
    "owner",
    "license",
    "collected",
    "description",
    "pii_columns",
    "sensitive_attributes",
)


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
class RegisterResult:
    """What ``register_dataset`` did: a new version, or the existing one with the same content."""

    version: DatasetVersionInfo
    created: bool
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DatasetSummary:
    """A dataset and its latest version."""

    name: str
    versions: int
    latest: DatasetVersionInfo | None
    in_plan: bool


def _close(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _check_columns(what: str, names: list[str] | None, columns: list[str], where: str) -> None:
    for column in names or []:
        if column not in columns:
            raise DataError(
                f"{where}: {what} {column!r} is not a column of the data{_close(column, columns)} "
                f"(columns: {', '.join(columns[:12])}{'…' if len(columns) > 12 else ''})"
            )


def register_dataset(
    ws: Workspace,
    name: str,
    path: str | Path | None = None,
    *,
    source: str | None = None,
    owner: str | None = None,
    license: str | None = None,
    description: str | None = None,
    collected: tuple[dt.date, dt.date | None] | None = None,
    pii_columns: list[str] | None = None,
    sensitive_attributes: list[str] | None = None,
    snapshot: bool = True,
) -> RegisterResult:
    """Register the data at ``path`` (default: the plan's path) as a version of dataset ``name``.

    Unchanged content returns the existing version (``created=False``); changed content makes
    the next version. Metadata comes from the plan's ``datasets.NAME`` and is overridden by the
    keyword arguments.

    Raises
    ------
    DataError
        Unreadable, ragged, empty data; a target, PII or sensitive column that is not in the data.
    UsageError
        No path given and none in the plan; an invalid dataset name.
    """
    if not NAME_PATTERN.match(name):
        raise UsageError(
            f"dataset name {name!r} must start with a letter and hold only letters, "
            "digits, '_', '.' or '-'"
        )
    plan = ws.plan
    spec = plan.datasets.get(name)
    warnings: list[str] = []
    if spec is None:
        warnings.append(
            f"dataset {name!r} is not in the plan; add it under 'datasets:' in "
            f"{ws.plan_path.name} so its datasheet lives with the plan"
        )
        spec = DatasetSpec()
    if path is None:
        if spec.path is None:
            raise UsageError(
                f"no path for dataset {name!r}: give one (mlplan data add {name} "
                f"FILE) or set datasets.{name}.path in {ws.plan_path.name}"
            )
        path = ws.resolve(spec.path)
    path = Path(path)
    fmt = detect_format(path, spec.format)
    digest, size = content_hash(path, fmt)

    existing = _find_by_hash(ws, name, digest)
    if existing is not None:
        given = [
            flag
            for flag, value in (
                ("--source", source),
                ("--owner", owner),
                ("--license", license),
                ("--description", description),
                ("--collected", collected),
                ("--pii", pii_columns),
                ("--sensitive", sensitive_attributes),
            )
            if value is not None
        ]
        if given:
            warnings.append(
                f"{', '.join(given)} ignored: the content is unchanged, so "
                f"{existing.ref} keeps the metadata it was registered with"
            )
        return RegisterResult(existing, created=False, warnings=warnings)

    table, profile = _read_and_profile(path, fmt)
    columns = table.column_names
    where = str(path)
    needs_target = spec.role == "training" and fmt != "images" and plan.target is not None
    if needs_target and plan.target not in columns:
        raise DataError(
            f"{where}: the plan's target {plan.target!r} is not a column of the data"
            f"{_close(str(plan.target), columns)}. Fix 'target:' in {ws.plan_path.name}, or "
            f"mark the dataset role: unlabeled (or auxiliary) if it has no target"
        )
    metadata = _metadata(
        spec,
        source=source,
        owner=owner,
        license=license,
        description=description,
        collected=collected,
        pii_columns=pii_columns,
        sensitive_attributes=sensitive_attributes,
    )
    for what, key in (
        ("PII column", "pii_columns"),
        ("sensitive attribute", "sensitive_attributes"),
    ):
        _check_columns(what, metadata[key], columns, where)
    for what, key in (("id column", "id_column"), ("time column", "time_column")):
        _check_columns(what, [metadata[key]] if metadata[key] else None, columns, where)

    declared = metadata["pii_columns"] or []
    suspected = suspected_pii(table, profile, declared) if fmt != "images" else {}
    for column, reason in suspected.items():
        warnings.append(
            f"column {column!r} looks like personal data ({reason}) but is not in "
            f"datasets.{name}.pii_columns: its values are kept out of the store. Add it to "
            f"pii_columns in {ws.plan_path.name}, or rename it if it holds no personal data"
        )
    redact_profile(profile, {c: None for c in declared} | suspected)
    column_list = [
        {"name": n, "type": c["type"], "kind": c["kind"]} for n, c in profile["columns"].items()
    ]
    store = ws.store

    def work(session: Session) -> RegisterResult:
        project_id = ws.project_id(session)
        dataset_id = _dataset_id(store, session, project_id, name)
        # Again inside the transaction: a concurrent command may have added these bytes.
        same = session.scalar(
            select(DatasetVersionRecord).where(
                DatasetVersionRecord.dataset_id == dataset_id,
                DatasetVersionRecord.content_hash == digest,
            )
        )
        if same is not None:
            return RegisterResult(DatasetVersionInfo.from_record(same, name), False, warnings)
        number = (
            session.scalar(
                select(func.max(DatasetVersionRecord.version)).where(
                    DatasetVersionRecord.dataset_id == dataset_id
                )
            )
            or 0
        ) + 1
        parameters = {
            "dataset": name,
            "path": ws.relative(path),
            "format": fmt,
            "snapshot": snapshot,
        }
        with ws.record("data add", parameters, session=session) as run:
            run.input("file", ws.relative(path), sha256=digest)
            if snapshot_ref is not None:
                ArtifactStore.register(
                    session, snapshot_ref, kind="dataset_snapshot", media_type=_MEDIA[fmt]
                )
            record = DatasetVersionRecord(
                dataset_id=dataset_id,
                version=number,
                content_hash=digest,
                format=fmt,
                source_path=ws.relative(path),
                size_bytes=size,
                rows=table.num_rows,
                columns=column_list,
                profile=profile,
                meta=metadata,
                snapshot_sha256=snapshot_ref.sha256 if snapshot_ref else None,
                run_id=run.id,
            )
            session.add(record)
            session.flush()
            run.output("dataset_version", f"{name}@{number}", sha256=digest)
        return RegisterResult(DatasetVersionInfo.from_record(record, name), True, warnings)

    # Snapshot files written for a command that then fails are removed again.
    with store.artifacts.staged():
        snapshot_ref = _snapshot(store.artifacts, path, fmt, table) if snapshot else None
        with ws.write() as session:
            return work(session)


def _dataset_id(store: Any, session: Session, project_id: int, name: str) -> int:
    """The id of dataset ``name``, created on first use (safe when commands race)."""
    session.execute(
        store.insert(DatasetRecord)
        .values(project_id=project_id, name=name, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["project_id", "name"])
    )
    return int(
        session.scalar(
            select(DatasetRecord.id).where(
                DatasetRecord.project_id == project_id, DatasetRecord.name == name
            )
        )
        or 0
    )


_MEDIA = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "jsonl": "application/x-ndjson",
    "images": "application/vnd.apache.parquet",
}


def _read_and_profile(path: Path, fmt: DataFormat) -> tuple[pa.Table, dict[str, Any]]:
    if fmt == "images":
        table = image_table(path)
        return table, profile_images(table)
    table = read_table(path, fmt)
    return table, profile_table(table)


def _snapshot(artifacts: ArtifactStore, path: Path, fmt: DataFormat, table: pa.Table) -> Any:
    """Copy the bytes into the artifact store. Image folders: every image, plus the image table
    (which holds each image's hash) as Parquet: the version's snapshot."""
    if fmt != "images":
        return artifacts.put_file(path)

    for image in list_images(path):
        artifacts.put_file(image.path)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return artifacts.put_bytes(buffer.getvalue())


def _plan_metadata(spec: DatasetSpec) -> dict[str, Any]:
    return {
        "source": spec.source,
        "owner": spec.owner,
        "license": spec.license,
        "collected": (
            {
                "start": spec.collected.start.isoformat(),
                "end": spec.collected.end.isoformat() if spec.collected.end else None,
            }
            if spec.collected
            else None
        ),
        "description": spec.description,
        "pii_columns": spec.pii_columns,
        "sensitive_attributes": spec.sensitive_attributes,
        "id_column": spec.id_column,
        "time_column": spec.time_column,
        "role": spec.role,
        "labeling": spec.labeling.strategy if spec.labeling else None,
    }


GIVEN = "given_by_flags"  # metadata keys set for this version, which the plan does not override


def _overrides(**values: Any) -> dict[str, Any]:
    collected = values.pop("collected", None)
    out = {k: v for k, v in values.items() if v is not None}
    if collected is not None:
        start, end = collected
        out["collected"] = {"start": start.isoformat(), "end": end.isoformat() if end else None}
    return out


def _metadata(spec: DatasetSpec, **values: Any) -> dict[str, Any]:
    given = _overrides(**values)
    return _plan_metadata(spec) | given | {GIVEN: sorted(given)}


def effective_metadata(ws: Workspace, info: DatasetVersionInfo) -> dict[str, Any]:
    """What is known of a version now: values given for it (flags, ``data describe``) win; the
    plan's datasheet fills and updates the rest; PII columns named anywhere stay named."""
    recorded = {k: v for k, v in info.metadata.items() if k != GIVEN}
    given = set(info.metadata.get(GIVEN, []))
    spec = ws.plan.datasets.get(info.name)
    if spec is None:
        return recorded
    planned = _plan_metadata(spec)
    out = {}
    for key in recorded | planned:
        if key in given or planned.get(key) is None:
            out[key] = recorded.get(key)
        else:
            out[key] = planned[key]
    if recorded.get("pii_columns") is not None or planned.get("pii_columns") is not None:
        named = [*(planned.get("pii_columns") or []), *(recorded.get("pii_columns") or [])]
        out["pii_columns"] = list(dict.fromkeys(named))
    return out


def describe_dataset(
    ws: Workspace,
    ref: str | DatasetRef,
    *,
    source: str | None = None,
    owner: str | None = None,
    license: str | None = None,
    description: str | None = None,
    collected: tuple[dt.date, dt.date | None] | None = None,
    pii_columns: list[str] | None = None,
    sensitive_attributes: list[str] | None = None,
) -> DatasetVersionInfo:
    """Amend the datasheet of a registered version (no new version: the bytes are the same).

    Recorded as a run, so the lineage shows who changed the description and when.

    Raises
    ------
    UsageError
        When no field is given.
    DataError
        A PII or sensitive column that is not in the data.
    """
    info = get_dataset(ws, ref)
    given = _overrides(
        source=source,
        owner=owner,
        license=license,
        description=description,
        collected=collected,
        pii_columns=pii_columns,
        sensitive_attributes=sensitive_attributes,
    )
    if not given:
        raise UsageError(
            "give at least one field to describe: --source, --owner, --license, "
            "--description, --collected, --pii or --sensitive"
        )
    for what, key in (
        ("PII column", "pii_columns"),
        ("sensitive attribute", "sensitive_attributes"),
    ):
        _check_columns(what, given.get(key), info.column_names, info.ref)
    with ws.record("data describe", {"dataset": info.ref, **given}) as run:
        _, record = version_record(run.session, ws, info)
        run.input("dataset_version", info.ref, sha256=info.content_hash)
        meta = dict(record.meta)
        meta |= given
        meta[GIVEN] = sorted(set(meta.get(GIVEN, [])) | set(given))
        if "pii_columns" in given:
            profile = copy.deepcopy(record.profile)
            redact_profile(profile, {c: None for c in given["pii_columns"]})
            record.profile = profile
        record.meta = meta
        run.session.flush()
        return DatasetVersionInfo.from_record(record, info.name)


def version_record(
    session: Session, ws: Workspace, info: DatasetVersionInfo
) -> tuple[int, DatasetVersionRecord]:
    """The project id and the store's row of a version, inside the caller's transaction."""
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


def _delimiter(source_path: str) -> str | None:
    return "\t" if source_path.lower().endswith(".tsv") else None


def _find_by_hash(ws: Workspace, name: str, digest: str) -> DatasetVersionInfo | None:
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
            message = f"dataset {ref.name!r} not found{_close(ref.name, known)}."
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
    with ws.store.transaction() as session:
        datasets = session.scalars(ws.select(DatasetRecord).order_by(DatasetRecord.name)).all()
        registered = {
            d.name: DatasetSummary(
                d.name,
                len(d.versions),
                DatasetVersionInfo.from_record(d.versions[-1], d.name) if d.versions else None,
                d.name in ws.plan.datasets,
            )
            for d in datasets
        }
    out = [registered.pop(name, DatasetSummary(name, 0, None, True)) for name in ws.plan.datasets]
    return out + list(registered.values())


def load_table(ws: Workspace, info: DatasetVersionInfo) -> pa.Table:
    """The data of a version: from its snapshot, else from its source file if unchanged.

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
        # The snapshot has no suffix; the delimiter follows the registered file's.
        return read_table(snapshot, fmt, delimiter=_delimiter(info.source_path))
    source = ws.resolve(info.source_path)
    if fmt == "images":
        if source.is_dir() and content_hash(source, fmt)[0] == info.content_hash:
            return image_table(source)
    elif source.is_file() and sha256_file(source).sha256 == info.content_hash:
        return read_table(source, fmt)
    raise DataError(
        f"the data of {info.ref} is not at hand: no snapshot in the store and {info.source_path} "
        "is missing or has changed since it was registered. Restore the file, or register the "
        "current file as a new version with: mlplan data add " + info.name
    )
