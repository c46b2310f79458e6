"""Reading datasets into Arrow: CSV, Parquet, JSONL and image folders, with errors that name
the file, the line and what to do."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pj
import pyarrow.parquet as pq

from mlplan.errors import DataError
from mlplan.store import sha256_file

__all__ = [
    "IMAGE_SUFFIXES",
    "ContentHash",
    "DataFormat",
    "ImageFile",
    "content_hash",
    "detect_format",
    "list_images",
    "read_table",
]

DataFormat = Literal["csv", "parquet", "jsonl", "images"]
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
_SUFFIXES: dict[str, DataFormat] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def detect_format(path: Path, declared: DataFormat | None = None) -> DataFormat:
    """The format of ``path``: the declared one, a folder of images, or from the suffix."""
    if not path.exists():
        raise DataError(
            f"{path}: no such file or folder. Check the path (it is relative to the "
            "project folder when it comes from the plan)"
        )
    if path.is_dir():
        if declared not in (None, "images"):
            raise DataError(f"{path}: is a folder, but the plan says format {declared!r}")
        return "images"
    if declared is not None:
        return declared
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: cannot tell the format from the suffix {path.suffix!r}; expected one of "
            f"{', '.join(sorted(_SUFFIXES))}, a folder of images, or 'format:' in the plan"
        )
    return fmt


@dataclass(frozen=True)
class ImageFile:
    """One image of an image-folder dataset: ``root/label/name``."""

    path: Path
    relative: str
    label: str


def list_images(root: Path) -> list[ImageFile]:
    """Images in ``root``'s class subfolders, in a stable order."""
    images = [
        ImageFile(p, p.relative_to(root).as_posix(), p.relative_to(root).parts[0])
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and len(p.relative_to(root).parts) > 1
    ]
    if not images:
        raise DataError(
            f"{root}: no images found. An image dataset is a folder with one subfolder per class, "
            f"holding {', '.join(sorted(IMAGE_SUFFIXES))} files"
        )
    return images


@dataclass(frozen=True)
class ContentHash:
    """What identifies a dataset's content: a sha256, and the size in bytes it covers."""

    sha256: str
    size_bytes: int

    def to_dict(self) -> dict[str, str | int]:
        """A JSON-ready view."""
        return {"sha256": self.sha256, "size_bytes": self.size_bytes}


def content_hash(path: Path, fmt: DataFormat) -> ContentHash:
    """The sha256 identifying the data's content, and its size in bytes.

    For a file, the hash of its bytes; for an image folder, the hash of its manifest (each image's
    relative path and hash), so renaming a class folder makes a new version.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.csv"
    >>> _ = p.write_bytes(b"a\\n1\\n")
    >>> found = content_hash(p, "csv")
    >>> found.sha256[:12], found.size_bytes
    ('309b0e45a73d', 4)
    """

    if fmt != "images":
        try:
            ref = sha256_file(path)
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
        return ContentHash(ref.sha256, ref.size_bytes)
    manifest = hashlib.sha256()
    size = 0
    for image in list_images(path):
        ref = sha256_file(image.path)
        manifest.update(f"{image.relative}\t{ref.sha256}\n".encode())
        size += ref.size_bytes
    return ContentHash(manifest.hexdigest(), size)


def read_table(path: Path, fmt: DataFormat, *, delimiter: str | None = None) -> pa.Table:
    """Read a tabular dataset whole; image folders are read by :mod:`mlplan.data._images`.

    Raises
    ------
    DataError
        Unreadable file, ragged CSV rows (with the first bad line), malformed JSON lines,
        no columns or no rows.
    """
    if fmt == "images":
        raise DataError(f"{path}: is an image folder, not a table")
    try:
        if fmt == "csv":
            table = _read_csv(path, delimiter)
        elif fmt == "parquet":
            # Strings stay dictionary-encoded as Parquet stores them: less memory, faster counts.
            schema = pq.read_schema(path)
            strings = [
                f.name
                for f in schema
                if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            ]
            # pre_buffer helps remote storage; for local files it only raises peak memory.
            table = pq.read_table(path, read_dictionary=strings, pre_buffer=False, memory_map=True)
        else:
            table = pj.read_json(path)
    except DataError:
        raise
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        reason = str(exc).splitlines()[0]
        raise DataError(f"{path}: cannot be read as {fmt}: {reason}") from None
    if table.num_columns == 0:
        raise DataError(f"{path}: has no columns")
    if table.num_rows == 0:
        raise DataError(
            f"{path}: has columns ({', '.join(table.column_names[:5])}"
            f"{'…' if table.num_columns > 5 else ''}) but no rows; "
            "a dataset needs at least one row"
        )
    names = table.column_names
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"{path}: column names repeat: {', '.join(repeated)}; rename them")
    return table


def _read_csv(path: Path, delimiter: str | None = None) -> pa.Table:

    bad: list[tuple[int, int]] = []

    def on_invalid(row: pcsv.InvalidRow) -> str:
        bad.append((row.expected_columns, row.actual_columns))
        return "skip"

    delimiter = delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
    table = pcsv.read_csv(
        path,
        parse_options=pcsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid),
        convert_options=pcsv.ConvertOptions(strings_can_be_null=True),
    )
    if bad:
        expected, actual = bad[0]
        line = _first_ragged_line(path, delimiter)
        more = f" ({len(bad) - 1} more ragged rows)" if len(bad) > 1 else ""
        raise DataError(
            f"{path}{f':{line}' if line else ''}: row has {actual} fields, the header has "
            f"{expected}{more}. Fix the file (quote fields that contain the delimiter) and add "
            "it again"
        )
    return table


def _first_ragged_line(path: Path, delimiter: str) -> int | None:
    """The physical line of the first record whose field count differs from the header's
    (quoted fields may span lines, so records and lines differ). Only run on failure."""

    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return None
        for record in reader:
            if record and len(record) != len(header):
                return reader.line_num
    return None
