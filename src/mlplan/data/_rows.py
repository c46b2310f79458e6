"""A split's rows written out (CSV or Parquet), so anyone can check a figure independently:
``mlplan data rows customers@1/s1 --part test --out test.csv``.

The file is recorded as the output of a ``data rows`` run that read the split (by hash), and
it appears under its name only once that run is committed. Personal data stays out unless
asked for, as in every other export.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from mlplan.core import SplitRef
from mlplan.data._metadata import effective_metadata
from mlplan.data._split import SPLITS, get_split, load_split
from mlplan.errors import ParameterError
from mlplan.store import sha256_file
from mlplan.workspace import Workspace, staged_file

__all__ = ["ROW_COLUMN", "ExportedRows", "export_rows", "table_format", "write_table"]

ROW_COLUMN = "mlplan_row"
"""The column that holds each row's position in its dataset version (from 0): the key that
joins a split's rows with an evaluation's predictions."""

TableFormat = Literal["csv", "parquet"]
_SUFFIXES: dict[str, TableFormat] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def table_format(path: str | Path, *, param: str = "out") -> TableFormat:
    """The format a file is written in, from its suffix (``.csv``, ``.parquet`` or ``.pq``).

    Raises
    ------
    ParameterError
        Another suffix, or a folder (naming the parameter ``param``).

    Examples
    --------
    >>> table_format("test.csv"), table_format("rows.Parquet")
    ('csv', 'parquet')
    """
    path = Path(path)
    if path.is_dir():
        raise ParameterError(param, f"{{param}} {path} is a folder; give the file to write")
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise ParameterError(
            param,
            f"{{param}} {path} must end in .csv or .parquet (the format follows the suffix); "
            f"got {path.suffix or 'no suffix'!r}",
        )
    return found


def write_table(table: pa.Table, path: Path, fmt: TableFormat) -> None:
    """Write ``table`` to ``path`` as CSV (with a header) or Parquet."""
    if fmt == "csv":
        pcsv.write_csv(table, path)
    else:
        pq.write_table(table, path)


@dataclass(frozen=True)
class ExportedRows:
    """A split's rows as written: which rows, which columns (and which were left out), the
    file with its sha256, and the ``data rows`` run that recorded it."""

    split: str
    part: str
    rows: int
    columns: list[str]
    left_out: list[str]
    path: Path
    sha256: str
    run_id: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "split": self.split,
            "part": self.part,
            "rows": self.rows,
            "columns": self.columns,
            "left_out": self.left_out,
            "file": str(self.path),
            "sha256": self.sha256,
            "run_id": self.run_id,
        }


def export_rows(
    ws: Workspace,
    ref: str | SplitRef,
    *,
    part: Literal["train", "valid", "test"] = "test",
    out: str | Path,
    include_pii: bool = False,
) -> ExportedRows:
    """Write the ``part`` rows of the split ``ref`` (e.g. ``customers@1/s1``) to ``out``, in
    the dataset's order, each with its position in the version (:data:`ROW_COLUMN`) first.

    Every row of the part is written, those with an unknown target included (an evaluation
    scores only the rows with a known target; its predictions file carries the same
    :data:`ROW_COLUMN` to join on).

    Parameters
    ----------
    out
        A ``.csv`` or ``.parquet`` file (relative to the working folder).
    include_pii
        Write the dataset's PII columns too (left out by default).

    Raises
    ------
    ParameterError
        A ``part`` that is not train, valid or test; an ``out`` that is not a CSV or Parquet
        file name.
    SplitNotFoundError
        Naming the recorded splits.
    DataError
        The data of the version is not at hand.
    """
    if part not in SPLITS:
        raise ParameterError("part", f"{{param}} must be train, valid or test; got {part!r}")
    path = Path(out)
    fmt = table_format(path)
    split = get_split(ws, ref)
    loaded = load_split(ws, split)
    info, table = loaded.info, loaded.table
    rows = np.flatnonzero(loaded.codes == SPLITS.index(part))
    pii = effective_metadata(ws, info).get("pii_columns") or []
    left_out = [] if include_pii else [c for c in table.column_names if c in set(pii)]
    kept = [c for c in table.column_names if c not in left_out]
    chosen = table.select(kept).take(pa.array(rows, pa.int64()))
    if ROW_COLUMN in chosen.column_names:  # written by an earlier export: ours wins
        chosen = chosen.drop_columns([ROW_COLUMN])
    chosen = chosen.add_column(0, ROW_COLUMN, pa.array(rows, pa.int64()))
    parameters = {"split": split.ref, "part": part, "include_pii": include_pii, "format": fmt}
    with staged_file(path) as tmp:
        write_table(chosen, tmp, fmt)
        digest = sha256_file(tmp).sha256
        with ws.record("data rows", parameters) as run:
            run.input("split", split.ref, sha256=split.artifact_sha256)
            run.input("dataset_version", info.ref, sha256=info.content_hash)
            run.output("file", ws.relative(path), sha256=digest)
            run_id = run.id
    return ExportedRows(
        split.ref, part, len(rows), chosen.column_names, left_out, path, digest, run_id
    )
