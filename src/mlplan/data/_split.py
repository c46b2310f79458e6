"""Train / validation / test splits: seeded, stratified, grouped or by time, checked for leakage.

A split is an artifact (Parquet: row number → split) recorded with its parameters, counts and
leakage checks, so a model trained on it can be walked back to the rows it saw.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mlplan.core import SplitRef, parse_dataset_ref, parse_split_ref
from mlplan.data._assign import assign_splits, rare_classes
from mlplan.data._columns import check_columns, entity_columns, id_columns
from mlplan.data._leakage import check_leakage, leakage_failures
from mlplan.data._metadata import effective_metadata
from mlplan.data._versions import DatasetVersionInfo, get_dataset, load_table, version_record
from mlplan.errors import CheckFailedError, DataError, ParameterError, SplitNotFoundError
from mlplan.store import (
    ArtifactRef,
    ArtifactStore,
    DatasetRecord,
    DatasetVersionRecord,
    SplitRecord,
)
from mlplan.workspace import Workspace

__all__ = [
    "SPLITS",
    "SplitData",
    "SplitInfo",
    "get_split",
    "list_splits",
    "load_split",
    "split_dataset",
]

SPLITS = ("train", "valid", "test")
SplitName = Literal["train", "valid", "test"]


@dataclass(frozen=True)
class SplitInfo:
    """A recorded split of one dataset version."""

    dataset: str
    version: int
    number: int
    parameters: dict[str, Any]
    counts: dict[str, Any]
    leakage: dict[str, Any]
    passed: bool
    artifact_sha256: str
    run_id: str
    created_at: dt.datetime
    created: bool = True
    """False when this call found the same split recorded already (same version, same
    parameters, same rows) and made none."""

    @property
    def ref(self) -> str:
        """``name@version/sN``."""
        return f"{self.dataset}@{self.version}/s{self.number}"

    @property
    def command(self) -> str:
        """The ``mlplan data split`` command that makes this split (its parameters)."""
        return f"mlplan data split {self.dataset}@{self.version}" + "".join(
            f" --{k} {v}" for k, v in self.parameters.items() if v is not None
        )

    @property
    def failures(self) -> list[str]:
        """What its leakage checks found that fails it: groups, ids or images in more than one
        split (identical feature rows are a warning, also in splits recorded before)."""
        return leakage_failures(self.leakage)

    @property
    def accepted(self) -> str | None:
        """Why its failing leakage checks were accepted on the record (``accept_leakage``)."""
        accepted = self.leakage.get("accepted")
        return str(accepted["reason"]) if isinstance(accepted, dict) else None

    def check_usable(self) -> None:
        """Refuse a split whose leakage checks fail, unless the failure was accepted.

        Raises
        ------
        CheckFailedError
            Naming what crosses the splits and the two ways on.
        """
        if not self.failures or self.accepted is not None:
            return
        raise CheckFailedError(
            f"split {self.ref} failed its leakage checks: {'; '.join(self.failures)}. Split "
            f"again so that they cannot cross (--group on the entity column), or accept it on "
            f'the record: {self.command} --accept-leakage "WHY"'
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "ref": self.ref,
            "dataset": f"{self.dataset}@{self.version}",
            "number": self.number,
            "parameters": self.parameters,
            "counts": self.counts,
            "leakage": self.leakage,
            "passed": self.passed,
            "artifact_sha256": self.artifact_sha256,
            "run_id": self.run_id,
            "created_at": self.created_at.isoformat(),
            "created": self.created,
        }

    @classmethod
    def from_record(
        cls, record: SplitRecord, name: str, version: int, *, created: bool = True
    ) -> SplitInfo:
        """From the store's row."""
        return cls(
            name,
            version,
            record.number,
            record.parameters,
            record.counts,
            record.leakage,
            record.passed,
            record.artifact_sha256,
            record.run_id,
            record.created_at,
            created,
        )


def _counts(table: pa.Table, codes: np.ndarray, target: str | None) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    n = len(codes)
    for code, name in enumerate(SPLITS):
        mask = codes == code
        entry: dict[str, Any] = {"rows": int(mask.sum()), "share": float(mask.sum() / n)}
        if target is not None and target in table.column_names:
            values = pc.filter(table.column(target), pa.array(mask))
            if (
                values.type == pa.string()
                or pa.types.is_integer(values.type)
                or pa.types.is_boolean(values.type)
                or pa.types.is_dictionary(values.type)
            ):
                vc = pc.value_counts(values)
                entry["target"] = {str(v["values"]): int(v["counts"]) for v in vc.to_pylist()}
        counts[name] = entry
    return counts


def split_dataset(
    ws: Workspace,
    ref: str,
    *,
    test: float = 0.2,
    valid: float = 0.1,
    stratify: str | None = None,
    group: str | None = None,
    time: str | None = None,
    seed: int = 0,
    accept_leakage: str | None = None,
) -> SplitInfo:
    """Split a dataset version, check the split for leakage, and record it.

    The dataset's id column, when the plan names one, is checked for ids crossing splits, and
    the group column for groups crossing them: either fails the split (``passed`` is False,
    and training refuses it) unless ``accept_leakage`` says why that is acceptable, which the
    split records. Rows are compared without the target, ids, row numbers, times, groups and
    personal data: test rows equal to a training row on the rest are a warning, with the
    share that chance predicts.

    Raises
    ------
    DataError
        A stratify, group or time column that is not in the data; too few rows for a share.
    ParameterError
        A share outside [0, 1); an empty ``accept_leakage``.
    """
    if accept_leakage is not None and not accept_leakage.strip():
        raise ParameterError(
            "accept_leakage",
            "{param} needs the reason, e.g. 'same patients "
            "by design: the test set measures recall of known cases'",
        )
    info = get_dataset(ws, ref)
    table = load_table(ws, info)
    for what, column in (
        ("stratify column", stratify),
        ("group column", group),
        ("time column", time),
    ):
        check_columns(what, [column] if column else None, table.column_names, info.ref)
    codes = assign_splits(
        table, test=test, valid=valid, stratify=stratify, group=group, time=time, seed=seed
    )
    meta = effective_metadata(ws, info)
    target = "label" if info.format == "images" else ws.plan.target
    # What identifies a row, or is not a feature, would hide rows that repeat on the rest.
    not_compared = [
        "path" if info.format == "images" else None,
        target,
        group,
        time,
        meta.get("time_column"),
        *id_columns(info.profile),
        *(meta.get("pii_columns") or []),
    ]
    leakage = check_leakage(
        table,
        codes,
        group=group,
        id_column=meta.get("id_column"),
        ignore=[c for c in not_compared if c is not None],
    ).to_dict()
    leakage["warnings"] = [
        *(rare_classes(table, stratify) if stratify else []),
        *leakage["warnings"],
        *(_entities_apart(info.profile, codes, table, group) if time is None else []),
    ]
    if accept_leakage is not None and not leakage["passed"]:
        leakage["accepted"] = {"reason": accept_leakage.strip()}
    parameters = {
        "test": test,
        "valid": valid,
        "stratify": stratify,
        "group": group,
        "time": time,
        "seed": seed,
    }
    artifacts = ws.store.artifacts
    with artifacts.staged():
        artifact = artifacts.put_bytes(_assignment_parquet(codes))
        counts = _counts(table, codes, stratify or target)
        return _record_split(
            ws, info, parameters=parameters, counts=counts, leakage=leakage, artifact=artifact
        )


def _assignment_parquet(codes: np.ndarray) -> bytes:
    """The split's artifact: row number → split, as Parquet."""
    assignment = pa.table(
        {
            "row": pa.array(np.arange(len(codes), dtype=np.int64)),
            "split": pa.DictionaryArray.from_arrays(pa.array(codes, pa.int8()), pa.array(SPLITS)),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(assignment, buffer)
    return buffer.getvalue()


def _record_split(
    ws: Workspace,
    info: DatasetVersionInfo,
    *,
    parameters: dict[str, Any],
    counts: dict[str, Any],
    leakage: dict[str, Any],
    artifact: ArtifactRef,
) -> SplitInfo:
    """Record the split (and the run that made it), numbered after the version's last; or,
    when the version was split the same way already (same parameters, same rows, the same
    acceptance of failing checks), that split, unchanged."""
    with ws.write() as session:
        _, version = version_record(session, ws, info)
        same = session.scalars(
            select(SplitRecord)
            .where(
                SplitRecord.dataset_version_id == version.id,
                SplitRecord.artifact_sha256 == artifact.sha256,
            )
            .order_by(SplitRecord.number)
        ).all()
        for record in same:
            if record.parameters == parameters and record.leakage.get("accepted") == leakage.get(
                "accepted"
            ):
                return SplitInfo.from_record(record, info.name, info.version, created=False)
        return _new_split(
            ws,
            session,
            info,
            version_id=version.id,
            parameters=parameters,
            counts=counts,
            leakage=leakage,
            artifact=artifact,
        )


def _new_split(
    ws: Workspace,
    session: Session,
    info: DatasetVersionInfo,
    *,
    version_id: int,
    parameters: dict[str, Any],
    counts: dict[str, Any],
    leakage: dict[str, Any],
    artifact: ArtifactRef,
) -> SplitInfo:
    accepted = leakage.get("accepted")
    recorded = {"dataset": info.ref, **parameters}
    if accepted is not None:
        recorded["accept_leakage"] = accepted["reason"]
    with ws.record("data split", recorded, session=session) as run:
        number = (
            session.scalar(
                select(func.max(SplitRecord.number)).where(
                    SplitRecord.dataset_version_id == version_id
                )
            )
            or 0
        ) + 1
        run.input("dataset_version", info.ref, sha256=info.content_hash)
        ArtifactStore.register(
            session, artifact, kind="split", media_type="application/vnd.apache.parquet"
        )
        record = SplitRecord(
            dataset_version_id=version_id,
            number=number,
            parameters=parameters,
            counts=counts,
            leakage=leakage,
            passed=bool(leakage["passed"]),
            artifact_sha256=artifact.sha256,
            run_id=run.id,
        )
        session.add(record)
        session.flush()
        run.output("split", f"{info.ref}/s{number}", sha256=artifact.sha256)
        return SplitInfo.from_record(record, info.name, info.version)


def list_splits(ws: Workspace, dataset: str | None = None) -> list[SplitInfo]:
    """Recorded splits, oldest first, optionally of one dataset (``name`` or ``name@N``)."""
    ref = parse_dataset_ref(dataset) if dataset else None
    with ws.store.transaction() as session:
        query = (
            ws.select(
                SplitRecord, DatasetRecord.name, DatasetVersionRecord.version, owner=DatasetRecord
            )
            .join(DatasetVersionRecord, SplitRecord.dataset_version_id == DatasetVersionRecord.id)
            .join(DatasetRecord)
            .order_by(SplitRecord.created_at, SplitRecord.id)
        )
        if ref is not None:
            query = query.where(DatasetRecord.name == ref.name)
            if ref.version is not None:
                query = query.where(DatasetVersionRecord.version == ref.version)
        return [
            SplitInfo.from_record(s, name, version) for s, name, version in session.execute(query)
        ]


def get_split(ws: Workspace, ref: str | SplitRef | None = None) -> SplitInfo:
    """A split by reference; ``None`` means the newest split of the project.

    Raises
    ------
    SplitNotFoundError
        Listing the known splits.
    """
    splits = list_splits(ws)
    if ref is None:
        if not splits:
            raise SplitNotFoundError("no split yet. Make one with: mlplan data split DATASET")
        return splits[-1]
    parsed = parse_split_ref(ref) if isinstance(ref, str) else ref
    matches = [
        s
        for s in splits
        if s.dataset == parsed.dataset.name
        and s.number == parsed.number
        and parsed.dataset.version in (None, s.version)
    ]
    if matches:
        return matches[-1]
    known = ", ".join(s.ref for s in splits) or "none"
    raise SplitNotFoundError(f"split {str(parsed)!r} not found; known: {known}")


@dataclass(frozen=True)
class SplitData:
    """A split's rows: the dataset version, its table and each row's split code (0 train,
    1 valid, 2 test). Unpacks as ``info, table, codes``."""

    info: DatasetVersionInfo
    table: pa.Table
    codes: np.ndarray

    def __iter__(self) -> Iterator[Any]:
        return iter((self.info, self.table, self.codes))


def _entities_apart(
    profile: dict[str, Any], codes: np.ndarray, table: pa.Table, group: str | None
) -> list[str]:
    """A column whose name says it is an entity's id (``customer_id`` over a customer's rows),
    split without ``--group`` on it: the entity's rows in more than one split."""
    out = []
    for column in entity_columns(profile):
        if column == group:
            continue
        encoded = pc.dictionary_encode(table.column(column)).combine_chunks()
        entity = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        known = entity >= 0
        # Each (entity, split) pair once; an entity in two or more splits crosses.
        pairs = np.unique(entity[known].astype(np.int64) * 4 + codes[known])
        crossing = int((np.bincount(pairs // 4) > 1).sum())
        if crossing:
            out.append(
                f"{column} names an entity with several rows, and {crossing:,} of them have "
                f"rows in more than one split: a model is then judged on entities it has seen; "
                f"split with --group {column} to keep each in one"
            )
    return out


def load_split(ws: Workspace, split: SplitInfo) -> SplitData:
    """The dataset version, its table and the per-row split codes (0 train, 1 valid, 2 test).

    Raises
    ------
    DataError
        The data is not at hand, or the split does not fit it (an inconsistent store).
    """
    info = get_dataset(ws, f"{split.dataset}@{split.version}")
    table = load_table(ws, info)
    assignment = pq.read_table(ws.store.artifacts.path(split.artifact_sha256))
    codes = assignment.column("split").combine_chunks().indices.to_numpy()
    if len(codes) != table.num_rows:
        raise DataError(
            f"split {split.ref} has {len(codes)} rows but {info.ref} has "
            f"{table.num_rows}; the store is inconsistent"
        )
    return SplitData(info, table, codes)
