"""The older system: its predictions imported, kept as an artifact, and scored on the same
test split as the models, so the comparison says whether the new model is better."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.data import DataFormat, effective_metadata, get_split, load_split, read_table
from mlplan.errors import DataError, UsageError
from mlplan.modeling._inputs import target_column, target_kind
from mlplan.store import ArtifactStore, sha256_file
from mlplan.workspace import Workspace

__all__ = [
    "OlderSystemInfo",
    "OlderSystemPredictions",
    "import_older_system",
    "older_system_predictions",
    "read_predictions",
]


@dataclass(frozen=True)
class OlderSystemInfo:
    """An import of the older system's predictions: whose, for which split, the artifact
    that keeps the file (its sha256) and its format, its rows, and the test rows it covers."""

    name: str
    split: str
    predictions: str
    format: str
    rows: int
    test_rows: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the stored report)."""
        return asdict(self)


@dataclass(frozen=True, eq=False)
class OlderSystemPredictions:
    """The older system's predictions on given rows: its name, the predicted values or
    labels, and the class probabilities when its file has them.

    Unpacks as the ``(name, predicted, proba)`` tuple it used to be, for callers that have not
    moved to the attributes.
    """

    name: str
    predicted: np.ndarray
    proba: np.ndarray | None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.name, self.predicted, self.proba))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "name": self.name,
            "predicted": self.predicted.tolist(),
            "proba": None if self.proba is None else self.proba.tolist(),
        }


def _item_ids(ws: Workspace, info: Any, table: pa.Table) -> list[str]:

    id_column = effective_metadata(ws, info).get("id_column")
    if id_column:
        return [str(v) for v in pc.cast(table.column(id_column), pa.string()).to_pylist()]
    return [str(i) for i in range(table.num_rows)]


def _format(suffix: str) -> DataFormat:
    suffix = suffix.lower().lstrip(".")
    if suffix in {"parquet", "pq"}:
        return "parquet"
    return "jsonl" if suffix in {"jsonl", "ndjson"} else "csv"


def read_predictions(path: Path) -> pa.Table:
    """A file of predictions (CSV, Parquet or JSONL): ``item_id``, ``prediction`` and,
    optionally, one probability column per class.

    Raises
    ------
    DataError
        A file that cannot be read, or that lacks item_id or prediction.
    """
    table = read_table(path, _format(path.suffix))
    missing = [c for c in ("item_id", "prediction") if c not in table.column_names]
    if missing:
        raise DataError(
            f"{path}: missing columns {', '.join(missing)}; expected item_id, "
            "prediction and, optionally, one probability column per class"
        )
    return table


def import_older_system(
    ws: Workspace, predictions: str | Path | None = None, *, split: str | None = None
) -> OlderSystemInfo:
    """Record the older system's predictions for the test rows of a split.

    ``predictions`` defaults to the plan's ``baselines.older_system.predictions`` (relative to
    the project folder).

    Raises
    ------
    DataError
        A file without item_id / prediction, that leaves test rows without a prediction, or
        whose predictions are not classes of the target (or, for regression, not numbers).
    UsageError
        No older system in the plan, or no file given and none in the plan.
    """
    plan = ws.plan
    older = plan.baselines.older_system
    if older is None:
        raise UsageError(
            "the plan names no older system: add baselines.older_system "
            "{name: ..., description: ...} to mlplan.yaml first"
        )
    if predictions is None:
        if older.predictions is None:
            raise UsageError.about(
                "predictions",
                "no file of the older system's predictions: pass {param} FILE, or set "
                f"baselines.older_system.predictions in {ws.plan_path.name}",
            )
        predictions = ws.resolve(older.predictions)
    path = Path(predictions)
    table = read_predictions(path)
    split_info = get_split(ws, split)
    loaded = load_split(ws, split_info)
    info, data, codes = loaded.info, loaded.table, loaded.codes
    ids = _item_ids(ws, info, data)
    test_ids = {ids[i] for i in np.flatnonzero(codes == 2)}
    given = [str(v) for v in table.column("item_id").to_pylist()]
    uncovered = sorted(test_ids - set(given))
    if uncovered:
        raise DataError(
            f"{path}: {len(uncovered):,} of the {len(test_ids):,} test items of "
            f"{split_info.ref} have no prediction, e.g. {', '.join(uncovered[:3])}"
        )
    tested = pa.array([item in test_ids for item in given])
    _check_predicted_values(ws, path, table.filter(tested), data.column(target_column(ws, info)))
    digest = sha256_file(path).sha256
    name = older.name

    parameters = {"split": split_info.ref, "name": name}
    with ws.store.artifacts.staged(), ws.record("baseline older", parameters) as run:
        ref = ws.store.artifacts.put_file(path)
        ArtifactStore.register(
            run.session, ref, kind="older_system_predictions", media_type="application/octet-stream"
        )
        run.input("file", ws.relative(path), sha256=digest)
        run.input("split", split_info.ref, sha256=split_info.artifact_sha256)
        report = OlderSystemInfo(
            name=name,
            split=split_info.ref,
            predictions=ref.sha256,
            format=path.suffix.lower().lstrip("."),
            rows=table.num_rows,
            test_rows=len(test_ids),
        )
        run.report("older_system", report.to_dict())
        return report


def _as_class(value: Any) -> str:
    """A predicted label as the class it names: 1.0 read from a file is the class '1'."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _check_predicted_values(
    ws: Workspace, path: Path, table: pa.Table, target: pa.ChunkedArray
) -> None:
    """The predictions of the test items are there, and are classes of the target (numbers,
    for regression): predictions ``yes``/``no`` for classes ``0``/``1`` would all count as
    wrong, silently."""
    column = table.column("prediction")
    if column.null_count:
        raise DataError(
            f"{path}: {column.null_count:,} test item(s) have an empty prediction; the older "
            "system's answer for every test item is needed (write its default answer where it "
            "gave none)"
        )
    if target_kind(ws.plan.task, target) == "regression":
        try:
            pc.cast(column, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            shown = ", ".join(sorted({str(v) for v in column.to_pylist()})[:5])
            raise DataError(
                f"{path}: the prediction column holds {shown}, not numbers; a regression "
                "task's older system predicts amounts"
            ) from None
        return
    classes = {_as_class(v) for v in pc.drop_null(target).to_pylist()}
    predicted = {_as_class(v) for v in pc.drop_null(column).to_pylist()}
    unknown = sorted(predicted - classes)
    if unknown:
        shown = ", ".join(unknown[:5]) + (", …" if len(unknown) > 5 else "")
        raise DataError(
            f"{path}: predictions {shown} are not classes of the target "
            f"{ws.plan.target!r} ({', '.join(sorted(classes))}); write the predictions "
            "with the target's own labels"
        )


def older_system_predictions(
    ws: Workspace, split_ref: str, item_ids: list[str], classes: list[str] | None
) -> OlderSystemPredictions | None:
    """The older system's predictions (and probabilities, if the file has them) for
    ``item_ids`` of ``split_ref``, from the newest import; None when there is none."""
    found = ws.latest_report("older_system", where=lambda r: r["split"] == split_ref)
    if found is None:
        return None
    report = found.report
    path = ws.store.artifacts.path(report["predictions"])
    table = read_table(path, _format(report["format"]))
    row = {str(v): i for i, v in enumerate(table.column("item_id").to_pylist())}
    order = [row[i] for i in item_ids]
    values = table.column("prediction").to_pylist()
    if classes is None:
        predicted = np.asarray([float(values[i]) for i in order])
    else:
        predicted = np.asarray([_as_class(values[i]) for i in order], dtype=object)
    proba = None
    if classes and all(c in table.column_names for c in classes):
        matrix = np.column_stack(
            [pc.cast(table.column(c), pa.float64()).to_numpy(zero_copy_only=False) for c in classes]
        )
        proba = matrix[order]
    return OlderSystemPredictions(report["name"], predicted, proba)
