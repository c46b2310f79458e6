"""Registering dataset versions: content-hashed, profiled, described, snapshotted, with lineage.

``register_dataset`` does all its reading and computing first and writes last, in one
transaction, so a failure leaves nothing behind in the store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mlplan.data._columns import check_columns, close_hint
from mlplan.data._images import image_table, profile_images
from mlplan.data._metadata import given_fields, version_metadata
from mlplan.data._privacy import redact_profile, suspected_pii
from mlplan.data._profile import Profiler
from mlplan.data._profile_ray import profile_on_ray
from mlplan.data._ray import Engine, check_engine
from mlplan.data._read import (
    ByteSink,
    ContentHash,
    DataFormat,
    content_hash,
    detect_format,
    given_decimal,
    given_delimiter,
    list_images,
    scan_table,
    sniff_decimal,
    sniff_delimiter,
)
from mlplan.data._sketch import prepare_hashing
from mlplan.data._target import target_problem
from mlplan.data._versions import DatasetVersionInfo, find_by_hash
from mlplan.errors import DataError, ParameterError, UsageError
from mlplan.plan import NAME_PATTERN, DatasetSpec
from mlplan.store import ArtifactRef, ArtifactStore, DatasetRecord, DatasetVersionRecord, utcnow
from mlplan.workspace import Workspace

__all__ = ["RegisterResult", "register_dataset"]

# The datasheet fields, in the order their flags are named when they are ignored.
_FLAGS = (
    ("source", "--source"),
    ("owner", "--owner"),
    ("license", "--license"),
    ("description", "--description"),
    ("collected", "--collected"),
    ("pii_columns", "--pii"),
    ("sensitive_attributes", "--sensitive"),
)
# A file this large may have a column with more distinct values than are counted exactly,
# whose profile hashes them (below it, hashing the file takes a few milliseconds).
_PREPARE_BYTES = 8 << 20
_MEDIA = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "jsonl": "application/x-ndjson",
    "images": "application/vnd.apache.parquet",
}


@dataclass(frozen=True)
class RegisterResult:
    """What ``register_dataset`` did: a new version, or the existing one with the same content."""

    version: DatasetVersionInfo
    created: bool
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: the version without its profile, whether it was created and why
        not, and the warnings."""
        version = {k: v for k, v in self.version.to_dict().items() if k != "profile"}
        return {"created": self.created, "warnings": self.warnings, **version}


@dataclass(frozen=True, kw_only=True)
class _NewVersion:
    """A version read, profiled and checked, ready to be stored."""

    name: str
    path: Path
    fmt: DataFormat
    digest: ContentHash
    rows: int
    profile: dict[str, Any]
    metadata: dict[str, Any]
    snapshot: bool
    engine: Engine = "local"


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
    delimiter: str | None = None,
    decimal: str | None = None,
    snapshot: bool = True,
    engine: Engine = "local",
) -> RegisterResult:
    """Register the data at ``path`` (default: the plan's path) as a version of dataset ``name``.

    Unchanged content returns the existing version (``created=False``); changed content makes
    the next version. Metadata comes from the plan's ``datasets.NAME`` and is overridden by the
    keyword arguments.

    A CSV file's fields are split on ``delimiter`` (one character, or comma, semicolon, tab or
    pipe), else on the plan's ``datasets.NAME.delimiter``, else on the one found in the file;
    the version's profile records which (``delimiter``), and the datasheet shows it. Its
    numbers are read with the decimal mark ``decimal`` (``"."`` or ``","``), else the plan's
    ``datasets.NAME.decimal``, else the one found in the file (:func:`sniff_decimal`); a
    decimal comma is recorded (``decimal``) and shown the same way.

    With ``engine="ray"`` a CSV or Parquet file is profiled on Ray Data (the cluster at
    ``RAY_ADDRESS``, else a local one): each block on a worker, the partial profiles merged
    here, into the profile the local engine makes (see :mod:`mlplan.data._profile_ray`); the
    hash and the snapshot are the file's bytes, as locally, and the run records the engine.

    Raises
    ------
    DataError
        Unreadable, ragged, empty data, a quote never closed (with the line); a delimiter that
        cannot be told; a target, PII or sensitive column that is not in the data.
    ParameterError
        A ``delimiter`` that is not one, a ``decimal`` other than ``"."`` or ``","``, or
        either given for data that is not CSV; an ``engine`` other than local or ray, or ray
        for data other than a CSV or Parquet file.
    MissingExtraError
        ``engine="ray"`` without Ray installed.
    UsageError
        No path given and none in the plan; an invalid dataset name.
    """
    _check_name(name)
    check_engine(engine)
    spec, warnings = _plan_entry(ws, name)
    path = _data_path(ws, name, spec, path)
    fmt = detect_format(path, spec.format)
    if engine == "ray" and fmt not in {"csv", "parquet"}:
        raise ParameterError(
            "engine",
            f"{{param}} ray profiles CSV and Parquet files; {path} is {fmt}: "
            "add it with the local engine",
        )
    delimiter = given_delimiter(delimiter, fmt)
    decimal = given_decimal(decimal, fmt)
    digest = _content_hash(path, fmt)
    given = given_fields(
        source=source,
        owner=owner,
        license=license,
        description=description,
        collected=collected,
        pii_columns=pii_columns,
        sensitive_attributes=sensitive_attributes,
    )
    existing = find_by_hash(ws, name, digest.sha256)
    if existing is not None:
        stated = {"delimiter": delimiter or spec.delimiter, "decimal": decimal or spec.decimal}
        ignored = _ignored(existing, given) + _read_otherwise(existing, stated)
        return RegisterResult(existing, False, warnings + ignored)

    if fmt == "csv":
        delimiter = delimiter or spec.delimiter or _sniff(ws, name, path)
        decimal = decimal or spec.decimal or sniff_decimal(path, delimiter)
    metadata = version_metadata(spec, given)
    artifacts = ws.store.artifacts
    # Snapshot files written for a command that then fails are removed again.
    with artifacts.staged():
        # A CSV file's snapshot is written as it is read, in the same pass.
        with contextlib.ExitStack() as copying:
            copy = (
                copying.enter_context(artifacts.writer())
                if snapshot and fmt == "csv" and engine == "local"
                else None
            )
            table, rows, profile = _read_and_profile(
                path, fmt, delimiter, decimal or ".", copy, metadata, engine=engine
            )
            _check_named_columns(
                ws, spec, table.column_names, fmt=fmt, metadata=metadata, where=str(path)
            )
            _check_target(ws, spec, profile, fmt=fmt, where=str(path))
        if copy is not None:
            assert copy.ref is not None
            snapshot_ref: ArtifactRef | None = copy.ref
        else:
            snapshot_ref = _snapshot(artifacts, path, fmt, table) if snapshot else None
        # The snapshot must be the bytes that were hashed (and profiled): a file another
        # program wrote meanwhile is refused, nothing stored.
        if snapshot_ref is not None and fmt != "images" and snapshot_ref.sha256 != digest.sha256:
            raise DataError(
                f"{path}: changed while it was read (another program is writing it?). "
                "Add it again once it is complete"
            )
        warnings += _keep_personal_data_out(
            ws, table, profile, name=name, fmt=fmt, metadata=metadata
        )
        new = _NewVersion(
            name=name,
            path=path,
            fmt=fmt,
            digest=digest,
            rows=rows,
            profile=profile,
            metadata=metadata,
            snapshot=snapshot,
            engine=engine,
        )
        with ws.write() as session:
            return _store_version(ws, session, new, snapshot=snapshot_ref, warnings=warnings)


def _content_hash(path: Path, fmt: DataFormat) -> ContentHash:
    """The data's content hash; a large table's profile will hash strings with DuckDB, which
    is loaded meanwhile (hashlib lets go of the GIL: the two share the cores)."""
    if fmt == "images" or path.stat().st_size < _PREPARE_BYTES:
        return content_hash(path, fmt)
    with ThreadPoolExecutor(1, thread_name_prefix="mlplan-hash") as pool:
        hashing = pool.submit(content_hash, path, fmt)
        prepare_hashing()
        return hashing.result()


def _check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise UsageError(
            f"dataset name {name!r} must start with a letter and hold only letters, "
            "digits, '_', '.' or '-'"
        )


def _plan_entry(ws: Workspace, name: str) -> tuple[DatasetSpec, list[str]]:
    """The plan's entry for the dataset (an empty one, with a warning, when there is none)."""
    spec = ws.plan.datasets.get(name)
    if spec is not None:
        return spec, []
    warning = (
        f"dataset {name!r} is not in the plan; add it under 'datasets:' in "
        f"{ws.plan_path.name} so its datasheet lives with the plan"
    )
    return DatasetSpec(), [warning]


def _data_path(ws: Workspace, name: str, spec: DatasetSpec, path: str | Path | None) -> Path:
    if path is not None:
        return Path(path)
    if spec.path is None:
        raise UsageError(
            f"no path for dataset {name!r}: give one (mlplan data add {name} "
            f"FILE) or set datasets.{name}.path in {ws.plan_path.name}"
        )
    return ws.resolve(spec.path)


def _ignored(existing: DatasetVersionInfo, given: dict[str, Any]) -> list[str]:
    """The warning that datasheet fields given for unchanged content are not applied."""
    flags = [flag for key, flag in _FLAGS if key in given]
    if not flags:
        return []
    return [
        f"{', '.join(flags)} ignored: the content is unchanged, so "
        f"{existing.ref} keeps the metadata it was registered with"
    ]


def _read_otherwise(existing: DatasetVersionInfo, stated: dict[str, str | None]) -> list[str]:
    """The warning that a delimiter or decimal mark stated now (flag or plan) is not how the
    unchanged content was read when registered, and is not applied to it."""
    recorded = {"delimiter": existing.delimiter, "decimal": existing.decimal}
    differ = [
        f"{key} {value!r} (it was read with {recorded[key]!r})"
        for key, value in stated.items()
        if value is not None and recorded[key] is not None and value != recorded[key]
    ]
    if not differ:
        return []
    return [
        f"{' and '.join(differ)} not applied: the content is unchanged, so {existing.ref} "
        "keeps the reading it was registered with; a version is read one way only"
    ]


def _sniff(ws: Workspace, name: str, path: Path) -> str:
    """The delimiter found in the file; when it cannot be told, the error says where to name
    it."""
    try:
        return sniff_delimiter(path)
    except DataError as exc:
        if exc.template is None:
            raise
        raise DataError.about(
            "delimiter",
            f"{exc.template} (or datasets.{name}.delimiter in {ws.plan_path.name})",
        ) from None


def _read_and_profile(
    path: Path,
    fmt: DataFormat,
    delimiter: str | None,
    decimal: str,
    copy: ByteSink | None,
    metadata: dict[str, Any],
    *,
    engine: Engine = "local",
) -> tuple[pa.Table, int, dict[str, Any]]:
    """The data's first rows (every image for a folder), its row count and its profile, made
    from one streamed pass (a CSV file's bytes copied to ``copy`` on the way): memory bounded
    by a batch, not by the data. Declared personal data is counted, its values never read
    out (nor made Python strings)."""
    if fmt == "images":
        table = image_table(path)
        return table, table.num_rows, profile_images(table)
    private = metadata["pii_columns"] or []
    if engine == "ray":
        table, rows, profile = profile_on_ray(
            path, fmt, delimiter=delimiter, decimal=decimal, private=private
        )
        if delimiter is not None:
            profile["delimiter"] = delimiter
        if decimal != ".":
            profile["decimal"] = decimal
        return table, rows, profile
    profilers: list[Profiler] = []

    def start(schema: pa.Schema) -> Callable[[pa.RecordBatch], None]:
        if profilers:
            profilers[-1].close()
        profilers.append(Profiler(schema, private=private))  # a read started again: afresh
        return profilers[-1].add

    scanned = scan_table(path, fmt, start, delimiter=delimiter, decimal=decimal, copy=copy)
    profile = profilers[-1].finish()
    if delimiter is not None:
        profile["delimiter"] = delimiter  # to read the snapshot back the same way
    if decimal != ".":
        profile["decimal"] = decimal
    return scanned.head, scanned.rows, profile


def _check_named_columns(
    ws: Workspace,
    spec: DatasetSpec,
    columns: list[str],
    *,
    fmt: DataFormat,
    metadata: dict[str, Any],
    where: str,
) -> None:
    """The plan's target (for training data) and the columns the datasheet names are columns
    of the data."""
    target = ws.plan.target
    needs_target = spec.role == "training" and fmt != "images" and target is not None
    if needs_target and target not in columns:
        raise DataError(
            f"{where}: the plan's target {target!r} is not a column of the data"
            f"{close_hint(str(target), columns)}. Fix 'target:' in {ws.plan_path.name}, or "
            f"mark the dataset role: unlabeled (or auxiliary) if it has no target"
        )
    for what, key in (
        ("PII column", "pii_columns"),
        ("sensitive attribute", "sensitive_attributes"),
    ):
        check_columns(what, metadata[key], columns, where)
    for what, key in (("id column", "id_column"), ("time column", "time_column")):
        check_columns(what, [metadata[key]] if metadata[key] else None, columns, where)


def _check_target(
    ws: Workspace, spec: DatasetSpec, profile: dict[str, Any], *, fmt: DataFormat, where: str
) -> None:
    """The target of training data fits the plan's task (two values for ``binary``, classes
    for a classification, numbers for ``regression``)."""
    target = ws.plan.target
    if spec.role != "training" or fmt == "images" or target is None:
        return
    problem = target_problem(
        ws.plan.task, target, profile["columns"][target], positive_class=ws.plan.positive_class
    )
    if problem:
        raise DataError(f"{where}: {problem} (in {ws.plan_path.name})")


def _keep_personal_data_out(
    ws: Workspace,
    table: pa.Table,
    profile: dict[str, Any],
    *,
    name: str,
    fmt: DataFormat,
    metadata: dict[str, Any],
) -> list[str]:
    """Redact the values of declared and suspected PII columns from the profile; a warning
    for each suspected one."""
    declared = metadata["pii_columns"] or []
    suspected = suspected_pii(table, profile, declared) if fmt != "images" else {}
    redact_profile(profile, {c: None for c in declared} | suspected)
    return [
        f"column {column!r} looks like personal data ({reason}) but is not in "
        f"datasets.{name}.pii_columns: its values are kept out of the store. Add it to "
        f"pii_columns in {ws.plan_path.name}, or rename it if it holds no personal data"
        for column, reason in suspected.items()
    ]


def _snapshot(
    artifacts: ArtifactStore, path: Path, fmt: DataFormat, table: pa.Table
) -> ArtifactRef:
    """Copy the bytes into the artifact store. Image folders: every image, plus the image table
    (which holds each image's hash) as Parquet: the version's snapshot."""
    if fmt != "images":
        return artifacts.put_file(path)

    for image in list_images(path):
        artifacts.put_file(image.path)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return artifacts.put_bytes(buffer.getvalue())


def _store_version(
    ws: Workspace,
    session: Session,
    new: _NewVersion,
    *,
    snapshot: ArtifactRef | None,
    warnings: list[str],
) -> RegisterResult:
    """Record the version (and the run that made it), numbered after the dataset's last."""
    dataset_id = _dataset_id(ws, session, new.name)
    # Again inside the transaction: a concurrent command may have added these bytes.
    same = session.scalar(
        select(DatasetVersionRecord).where(
            DatasetVersionRecord.dataset_id == dataset_id,
            DatasetVersionRecord.content_hash == new.digest.sha256,
        )
    )
    if same is not None:
        return RegisterResult(DatasetVersionInfo.from_record(same, new.name), False, warnings)
    number = (
        session.scalar(
            select(func.max(DatasetVersionRecord.version)).where(
                DatasetVersionRecord.dataset_id == dataset_id
            )
        )
        or 0
    ) + 1
    source = ws.relative(new.path)
    parameters = {"dataset": new.name, "path": source, "format": new.fmt, "snapshot": new.snapshot}
    if new.engine != "local":  # runs on the local engine record what they always did
        parameters["engine"] = new.engine
    with ws.record("data add", parameters, session=session) as run:
        run.input("file", source, sha256=new.digest.sha256)
        if snapshot is not None:
            ArtifactStore.register(
                session, snapshot, kind="dataset_snapshot", media_type=_MEDIA[new.fmt]
            )
        record = DatasetVersionRecord(
            dataset_id=dataset_id,
            version=number,
            content_hash=new.digest.sha256,
            format=new.fmt,
            source_path=source,
            size_bytes=new.digest.size_bytes,
            rows=new.rows,
            columns=[
                {"name": n, "type": c["type"], "kind": c["kind"]}
                for n, c in new.profile["columns"].items()
            ],
            profile=new.profile,
            meta=new.metadata,
            snapshot_sha256=snapshot.sha256 if snapshot else None,
            run_id=run.id,
        )
        session.add(record)
        session.flush()
        run.output("dataset_version", f"{new.name}@{number}", sha256=new.digest.sha256)
    return RegisterResult(DatasetVersionInfo.from_record(record, new.name), True, warnings)


def _dataset_id(ws: Workspace, session: Session, name: str) -> int:
    """The id of dataset ``name``, created on first use (safe when commands race)."""
    project_id = ws.project_id(session)
    session.execute(
        ws.store.insert(DatasetRecord)
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
