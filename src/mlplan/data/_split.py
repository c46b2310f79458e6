"""Train / validation / test splits: seeded, stratified, grouped or by time, checked for leakage.

A split is an artifact (Parquet: row number → split) recorded with its parameters, counts and
leakage checks, so a model trained on it can be walked back to the rows it saw.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import func, select

from mlplan.core import SplitRef, parse_dataset_ref, parse_split_ref
from mlplan.data._registry import (
    DatasetVersionInfo,
    _check_columns,
    effective_metadata,
    get_dataset,
    load_table,
    version_record,
)
from mlplan.errors import DataError, SplitNotFoundError, UsageError
from mlplan.store import ArtifactStore, DatasetRecord, DatasetVersionRecord, SplitRecord
from mlplan.workspace import Workspace

__all__ = [
    "SPLITS",
    "SplitInfo",
    "assign_splits",
    "check_leakage",
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

    @property
    def ref(self) -> str:
        """``name@version/sN``."""
        return f"{self.dataset}@{self.version}/s{self.number}"

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
        }

    @classmethod
    def from_record(cls, record: SplitRecord, name: str, version: int) -> SplitInfo:
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
        )


def _check_fraction(name: str, value: float) -> None:
    if not 0 <= value < 1:
        raise UsageError(f"--{name} must be in [0, 1). Got {value} instead.")


def assign_splits(
    table: pa.Table,
    *,
    test: float = 0.2,
    valid: float = 0.1,
    stratify: str | None = None,
    group: str | None = None,
    time: str | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Assign each row to 0 (train), 1 (valid) or 2 (test).

    Units (rows, or groups when ``group`` is given) are shuffled with ``seed`` within each
    stratum and cut at the cumulative row fractions; with ``time`` the oldest units train and
    the newest test. A group never spans two splits.

    Examples
    --------
    >>> import pyarrow as pa
    >>> t = pa.table({"y": [0, 1] * 50, "g": [i // 4 for i in range(100)]})
    >>> codes = assign_splits(t, test=0.2, valid=0.1, stratify="y", group="g", seed=7)
    >>> [int((codes == k).sum()) for k in range(3)]
    [68, 12, 20]
    """
    _check_fraction("test", test)
    _check_fraction("valid", valid)
    if test + valid >= 1:
        raise UsageError(f"--test + --valid must leave rows to train on; got {test} + {valid}")
    if time is not None and stratify is not None:
        raise UsageError(
            "--stratify and --time do not combine: a time split keeps the order "
            "of time, whatever the classes; drop one of them"
        )
    n = table.num_rows
    rng = np.random.default_rng(seed)
    _check_split_columns(table, stratify=stratify, group=group, time=time)

    # Units: every row, or every group of rows.
    if group is not None:
        keys = table.column(group)
        encoded = pc.dictionary_encode(
            keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
        )
        unit_of_row = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        if (unit_of_row < 0).any():
            raise DataError(f"group column {group!r} has missing values; every row needs a group")
        n_units = len(encoded.dictionary)
    else:
        unit_of_row = np.arange(n)
        n_units = n
    sizes = np.bincount(unit_of_row, minlength=n_units)

    # Strata of units: the row's label, or a group's most frequent label.
    if stratify is not None:
        labels = pc.dictionary_encode(table.column(stratify).combine_chunks())
        label_codes = (
            pc.fill_null(labels.indices, len(labels.dictionary))
            .to_numpy(zero_copy_only=False)
            .astype(np.int64)
        )
        if group is None:
            stratum = label_codes
        else:
            width = len(labels.dictionary) + 1
            pair_counts = np.bincount(
                unit_of_row * width + label_codes, minlength=n_units * width
            ).reshape(n_units, width)
            stratum = pair_counts.argmax(axis=1)
    else:
        stratum = np.zeros(n_units, dtype=np.int64)

    # Order of units within each stratum: random, or by time.
    if time is not None:
        times = table.column(time).combine_chunks()
        if times.null_count:
            raise DataError(f"time column {time!r} has missing values; every row needs a time")
        order_key = pc.rank(times, sort_keys="ascending", tiebreaker="first").to_numpy()
        unit_time = np.full(n_units, np.iinfo(np.int64).max)
        np.minimum.at(unit_time, unit_of_row, order_key.astype(np.int64))
        priority = unit_time.astype(np.float64)
    else:
        priority = rng.random(n_units)

    unit_split = np.zeros(n_units, dtype=np.int8)
    for s in np.unique(stratum):
        members = np.flatnonzero(stratum == s)
        members = members[np.argsort(priority[members], kind="stable")]
        member_sizes = sizes[members]
        total = member_sizes.sum()
        middle = (np.cumsum(member_sizes) - member_sizes / 2) / total
        if time is not None:  # oldest train, then valid, newest test
            unit_split[members] = np.where(
                middle < 1 - test - valid, 0, np.where(middle < 1 - test, 1, 2)
            )
        else:
            unit_split[members] = np.where(middle < test, 2, np.where(middle < test + valid, 1, 0))
    codes = unit_split[unit_of_row]
    for code, (name, share) in enumerate(
        (("train", 1 - test - valid), ("valid", valid), ("test", test))
    ):
        if share > 0 and not (codes == code).any():
            raise DataError(
                f"the {name} split is empty: {n} rows in {n_units} "
                f"{'groups' if group else 'rows'} are too few for a {share:.0%} {name} share; "
                "add data or change the shares"
            )
    result: np.ndarray = codes
    return result


def _check_split_columns(
    table: pa.Table, *, stratify: str | None, group: str | None, time: str | None
) -> None:
    for role, name in (("stratify", stratify), ("group", group), ("time", time)):
        if name is None:
            continue
        dtype = table.schema.field(name).type
        if pa.types.is_nested(dtype):
            raise DataError(
                f"--{role} column {name!r} holds {dtype} values; it needs plain "
                "values (numbers, strings or dates)"
            )
    if stratify is not None:
        column = table.column(stratify)
        distinct = pc.count_distinct(column).as_py()
        if distinct > 20 and distinct > 0.5 * table.num_rows:
            raise DataError(
                f"--stratify column {stratify!r} has {distinct:,} distinct values in "
                f"{table.num_rows:,} rows: stratifying needs classes. Stratify by a class "
                "column, or bin this one into a new column first"
            )


def rare_classes(table: pa.Table, column: str, *, minimum: int = 3) -> list[str]:
    """Warnings for classes of ``column`` with fewer than ``minimum`` rows: they cannot
    appear in every split."""
    counts = pc.value_counts(table.column(column)).to_pylist()
    return [
        f"class {str(c['values'])!r} of {column!r} has {c['counts']} row(s): too few to "
        "appear in train, valid and test"
        for c in counts
        if c["values"] is not None and c["counts"] < minimum
    ]


def check_leakage(
    table: pa.Table,
    codes: np.ndarray,
    *,
    group: str | None,
    id_column: str | None,
    ignore: list[str] | None = None,
) -> dict[str, Any]:
    """Leakage between splits: identical rows in two splits, groups or ids crossing splits.

    Identical rows are compared on every column except the id column and ``ignore``d ones
    (image datasets compare the image bytes' hash). Returns counts and up to 5 examples each.
    """

    ignore_set = set(ignore or [])
    if id_column:
        ignore_set.add(id_column)
    if "sha256" in table.column_names:  # image dataset: the bytes decide
        compared = ["sha256"]
    else:
        compared = [c for c in table.column_names if c not in ignore_set]
    frame = table.append_column("__split", pa.array(codes, pa.int8()))
    con = duckdb.connect()
    try:
        con.register("t", frame)

        def ident(name: str) -> str:
            return '"' + name.replace('"', '""') + '"'

        cols = ", ".join(ident(c) for c in compared)
        duplicates = con.execute(
            f"SELECT count(*), coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM t "
            f"GROUP BY {cols} HAVING count(DISTINCT __split) > 1)"
        ).fetchone() or (0, 0)
        out: dict[str, Any] = {
            "compared_columns": compared,
            "duplicate_groups_across_splits": int(duplicates[0]),
            "duplicate_rows_across_splits": int(duplicates[1]),
        }
        for label, column in (("groups", group), ("ids", id_column)):
            if column is None:
                continue
            c = ident(column)
            crossing = con.execute(
                f"SELECT {c} FROM t WHERE {c} IS NOT NULL GROUP BY {c} "
                f"HAVING count(DISTINCT __split) > 1 ORDER BY {c}"
            ).fetchall()
            out[f"{label}_across_splits"] = len(crossing)
            out[f"{label}_examples"] = [str(v[0]) for v in crossing[:5]]
    finally:
        con.close()
    out["passed"] = (
        out["duplicate_groups_across_splits"] == 0
        and out.get("groups_across_splits", 0) == 0
        and out.get("ids_across_splits", 0) == 0
    )
    return out


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
) -> SplitInfo:
    """Split a dataset version, check the split for leakage, and record it.

    The dataset's id column, when the plan names one, is checked for ids crossing splits.

    Raises
    ------
    DataError
        A stratify, group or time column that is not in the data; too few rows for a share.
    """
    info = get_dataset(ws, ref)
    table = load_table(ws, info)
    columns = table.column_names
    for what, column in (
        ("stratify column", stratify),
        ("group column", group),
        ("time column", time),
    ):
        _check_columns(what, [column] if column else None, columns, info.ref)
    codes = assign_splits(
        table, test=test, valid=valid, stratify=stratify, group=group, time=time, seed=seed
    )
    id_column = effective_metadata(ws, info).get("id_column")
    leakage = check_leakage(
        table,
        codes,
        group=group,
        id_column=id_column,
        ignore=["path"] if info.format == "images" else None,
    )
    leakage["warnings"] = rare_classes(table, stratify) if stratify else []
    target = "label" if info.format == "images" else ws.plan.target
    counts = _counts(table, codes, stratify or target)
    parameters = {
        "test": test,
        "valid": valid,
        "stratify": stratify,
        "group": group,
        "time": time,
        "seed": seed,
    }

    assignment = pa.table(
        {
            "row": pa.array(np.arange(len(codes), dtype=np.int64)),
            "split": pa.DictionaryArray.from_arrays(pa.array(codes, pa.int8()), pa.array(SPLITS)),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(assignment, buffer)
    artifacts = ws.store.artifacts
    with artifacts.staged():
        artifact = artifacts.put_bytes(buffer.getvalue())
        with ws.record("data split", {"dataset": info.ref, **parameters}) as run:
            session = run.session
            _, version = version_record(session, ws, info)
            number = (
                session.scalar(
                    select(func.max(SplitRecord.number)).where(
                        SplitRecord.dataset_version_id == version.id
                    )
                )
                or 0
            ) + 1
            run.input("dataset_version", info.ref, sha256=info.content_hash)
            ArtifactStore.register(
                session, artifact, kind="split", media_type="application/vnd.apache.parquet"
            )
            record = SplitRecord(
                dataset_version_id=version.id,
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


def load_split(ws: Workspace, split: SplitInfo) -> tuple[DatasetVersionInfo, pa.Table, np.ndarray]:
    """The dataset version, its table and the per-row split codes (0 train, 1 valid, 2 test)."""

    info = get_dataset(ws, f"{split.dataset}@{split.version}")
    table = load_table(ws, info)
    assignment = pq.read_table(ws.store.artifacts.path(split.artifact_sha256))
    codes = assignment.column("split").combine_chunks().indices.to_numpy()
    if len(codes) != table.num_rows:
        raise DataError(
            f"split {split.ref} has {len(codes)} rows but {info.ref} has "
            f"{table.num_rows}; the store is inconsistent"
        )
    return info, table, codes
