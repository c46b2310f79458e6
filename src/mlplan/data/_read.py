"""Reading datasets into Arrow: CSV, Parquet, JSONL and image folders, with errors that name
the file, the line and what to do."""

from __future__ import annotations

import csv
import hashlib
import io
import queue
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pj
import pyarrow.parquet as pq

from mlplan.core import DELIMITERS, parse_delimiter
from mlplan.errors import DataError, ParameterError
from mlplan.store import sha256_file

__all__ = [
    "IMAGE_SUFFIXES",
    "BatchSink",
    "ByteSink",
    "ContentHash",
    "DataFormat",
    "ImageFile",
    "Scanned",
    "check_csv",
    "content_hash",
    "count_lines",
    "decimal_name",
    "delimiter_name",
    "detect_format",
    "given_decimal",
    "given_delimiter",
    "list_images",
    "read_table",
    "row_group_runs",
    "scan_table",
    "sniff_decimal",
    "sniff_delimiter",
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
_SNIFF_BYTES = 64 * 1024
# The share of sampled records a delimiter must split as it splits the header.
_SNIFF_SHARE = 0.9
_COMMA_DECIMAL = re.compile(r"[+-]?\d*,\d+")
_POINT_DECIMAL = re.compile(r"[+-]?\d*\.\d+")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+")
_INTEGER = re.compile(r"[+-]?\d+")


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


def read_table(
    path: Path, fmt: DataFormat, *, delimiter: str | None = None, decimal: str = "."
) -> pa.Table:
    """Read a tabular dataset whole; image folders are read by :mod:`mlplan.data._images`.

    A CSV file's fields are split on ``delimiter``; without one, on the delimiter
    :func:`sniff_delimiter` finds. Its numbers are read with ``decimal`` as the decimal mark
    (``","``: ``4,36`` is 4.36; see :func:`sniff_decimal`).

    Raises
    ------
    DataError
        Unreadable file, ragged CSV rows, a quote never closed or closed on a later line with
        text after it (with the line), malformed JSON
        lines, no columns or no rows; a delimiter that cannot be told.
    """
    if fmt == "images":
        raise DataError(f"{path}: is an image folder, not a table")
    try:
        if fmt == "csv":
            table = _read_csv(path, delimiter or sniff_delimiter(path), decimal)
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
    _checked(path, table.column_names, table.num_rows)
    return table


# What a stream of batches is handed to: told the schema when a read (re)starts, it gives
# back what takes each batch. A read that must start again (a CSV column whose type changes
# after the first block) calls it again: whatever it made before is to be forgotten.
BatchSink = Callable[[pa.Schema], Callable[[pa.RecordBatch], None]]
_HEAD_ROWS = 1_000
# A CSV file is parsed in blocks of this many bytes (Arrow's reader keeps a few per thread in
# flight: 16 MB blocks held 0.3-0.7 GB); its types come from the first _CSV_SAMPLE bytes.
_CSV_BLOCK = 1 << 20
_CSV_SAMPLE = 16 << 20
# Batches are handed on in groups of about this many rows: work per group (merging a
# column's distinct values) is paid per group, not per block.
_GROUP_ROWS = 1 << 17
# A column typed from the first block that fails on a later one is read again as the next
# wider type (the whole file, once per widening: rare, as the first block is large).
# A column empty in the sample takes the type of the first value it meets; then, as Arrow
# infers a whole file: integers widen to decimals, dates to times; anything else is text.
_WIDER: dict[str, pa.DataType] = {
    "int64": pa.float64(),
    "date32[day]": pa.timestamp("s"),
}
_CONVERSION = re.compile(
    r"In CSV column #(\d+): .*CSV conversion error to ([\w\[\], ]+?): invalid value '(.*)'",
    re.DOTALL,
)


def scan_table(
    path: Path,
    fmt: DataFormat,
    start: BatchSink,
    *,
    delimiter: str | None = None,
    decimal: str = ".",
    copy: ByteSink | None = None,
) -> Scanned:
    """Read a tabular dataset as a stream of record batches handed to ``start``'s sink, in
    memory bounded by a batch; the same checks and errors as :func:`read_table`. A CSV
    file's bytes are also handed to ``copy`` as they are read (the snapshot is written in
    the same pass); other formats never call it.

    Returns how many rows there are, and the first ones (up to 1,000) for what needs to look
    at values.

    Raises
    ------
    DataError
        As :func:`read_table`.
    """
    if fmt == "images":
        raise DataError(f"{path}: is an image folder, not a table")
    try:
        if fmt == "csv":
            scanned = _scan_csv(path, delimiter or sniff_delimiter(path), decimal, start, copy)
        else:
            scanned = _scan_batches(_batches(path, fmt), start)
    except DataError:
        raise
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        reason = str(exc).splitlines()[0]
        raise DataError(f"{path}: cannot be read as {fmt}: {reason}") from None
    _checked(path, scanned.head.column_names, scanned.rows)
    return scanned


def _batches(path: Path, fmt: DataFormat) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    if fmt == "parquet":
        schema = pq.read_schema(path)
        strings = [
            f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
        ]
        parquet = pq.ParquetFile(path, read_dictionary=strings, memory_map=True)
        return parquet.schema_arrow, _row_group_batches(parquet, 128 * 1024)
    # Read whole: Arrow's streaming JSON reader fixes each column's type from the first block
    # and cannot widen it (a field null in the first rows, numbers later, fails).
    table = pj.read_json(path)
    return table.schema, iter(table.to_batches())


def _row_group_batches(parquet: pq.ParquetFile, rows: int) -> Iterator[pa.RecordBatch]:
    """The file's batches of ``rows`` rows, each run of row groups read by a reader of its
    own: one reader over the whole file keeps every row group's dictionary pages until it
    ends (60 MB for an id column of 10,000,000 rows), memory that grew with the file."""
    for run in row_group_runs(parquet.metadata, rows):
        yield from parquet.iter_batches(batch_size=rows, row_groups=run)


def row_group_runs(meta: pq.FileMetaData, rows: int) -> list[list[int]]:
    """A Parquet file's row groups in order, cut into consecutive runs of at least ``rows``
    rows each (the last may hold fewer): small groups are read together, a large one alone.

    Examples
    --------
    >>> import io, pyarrow as pa
    >>> sink = io.BytesIO()
    >>> pq.write_table(pa.table({"x": range(10)}), sink, row_group_size=3)
    >>> row_group_runs(pq.read_metadata(io.BytesIO(sink.getvalue())), 5)
    [[0, 1], [2, 3]]
    """
    runs: list[list[int]] = []
    run: list[int] = []
    held = 0
    for index in range(meta.num_row_groups):
        run.append(index)
        held += meta.row_group(index).num_rows
        if held >= rows:
            runs.append(run)
            run, held = [], 0
    if run:
        runs.append(run)
    return runs


@dataclass(frozen=True)
class Scanned:
    """What :func:`scan_table` read: the row count, the first rows, the last row's last value."""

    rows: int
    head: pa.Table
    last: object = None


def _scan_batches(source: tuple[pa.Schema, Iterator[pa.RecordBatch]], start: BatchSink) -> Scanned:
    schema, batches = source
    add = start(schema)
    head: list[pa.Table] = []
    rows = kept = 0
    last: pa.Table | None = None
    for group in _read_ahead(_grouped(batches, schema)):
        add(group)
        rows += group.num_rows
        if group.num_rows:
            last = group
        if kept < _HEAD_ROWS:
            head.append(group.slice(0, _HEAD_ROWS - kept))
            kept += head[-1].num_rows
    final = None
    if last is not None and last.num_columns:
        final = last.column(last.num_columns - 1)[last.num_rows - 1].as_py()
    return Scanned(rows, pa.concat_tables(head) if head else schema.empty_table(), final)


def _grouped(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.Table]:
    """The batches as tables of about _GROUP_ROWS rows (a batch larger is one table)."""
    group: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        group.append(batch)
        rows += batch.num_rows
        if rows >= _GROUP_ROWS:
            yield pa.Table.from_batches(group, schema=schema)
            group, rows = [], 0
    if group:
        yield pa.Table.from_batches(group, schema=schema)


def _read_ahead(batches: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """The batches, the next one read in a thread while the caller works on this one (Arrow
    parses without the GIL): reading and profiling overlap. Two batches at most wait."""
    waiting: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        """Queue ``item`` unless the caller stopped (then False): never blocks for good."""
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches:
                if not put(("batch", batch)):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the caller, raised there
            put(("error", exc))

    reader = threading.Thread(target=read, name="mlplan-read", daemon=True)
    reader.start()
    try:
        while True:
            kind, item = waiting.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()  # the caller stopped early (an error): the reader ends at its next batch
        reader.join()


def _checked(path: Path, names: list[str], rows: int) -> None:
    """:func:`read_table`'s refusals: no columns, no rows, a column name twice."""
    if not names:
        raise DataError(f"{path}: has no columns")
    if rows == 0:
        raise DataError(
            f"{path}: has columns ({', '.join(names[:5])}"
            f"{'…' if len(names) > 5 else ''}) but no rows; "
            "a dataset needs at least one row"
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"{path}: column names repeat: {', '.join(repeated)}; rename them")


def _scan_csv(
    path: Path, delimiter: str, decimal: str, start: BatchSink, copy: ByteSink | None
) -> Scanned:
    """:func:`_read_csv`, streamed: the same checks, in one pass over the file unless a value
    spans lines or a column's type widens after the sample its types come from. The bytes
    read are handed to ``copy`` on the way, and their lines counted."""
    types = _sample_types(path, delimiter, decimal)
    newlines = False
    while True:
        bad: list[tuple[int, int]] = []
        if copy is not None:
            copy.restart()
        source = _Tee(path, copy)

        def on_invalid(row: pcsv.InvalidRow, bad: list[tuple[int, int]] = bad) -> str:
            bad.append((row.expected_columns, row.actual_columns))
            return "skip"

        reader = None
        try:
            reader = pcsv.open_csv(
                source,
                read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK),
                parse_options=pcsv.ParseOptions(
                    delimiter=delimiter,
                    newlines_in_values=newlines,
                    invalid_row_handler=on_invalid,
                ),
                convert_options=pcsv.ConvertOptions(
                    strings_can_be_null=True, decimal_point=decimal, column_types=types
                ),
            )
            scanned = _scan_batches((reader.schema, iter(reader)), start)
        except pa.ArrowInvalid as exc:
            if "newlines_in_values" in str(exc) and not newlines:
                strict = _quote_problem(path, delimiter)
                if strict is not None:
                    raise strict from None
                newlines = True
                continue
            if reader is not None and _widen(str(exc), reader.schema, types, decimal):
                continue
            raise
        finally:
            source.close()
        rows = scanned.rows
        # Blocks are cut at line breaks: a value spanning lines fails the read or loses rows
        # silently. One record per line proves there is none; otherwise the file is read
        # again, its blocks cut outside quotes.
        if not newlines and rows + len(bad) != source.lines.total() - 1:
            strict = _quote_problem(path, delimiter)
            if strict is not None:
                raise strict
            newlines = True
            continue
        break
    if bad:
        raise _ragged(path, delimiter, bad)
    # A quote never closed swallows the rest of the file into the last value.
    last = scanned.last
    open_quote = _open_quote_line(path, last) if isinstance(last, str) and last else None
    if open_quote is not None:
        raise _never_closed(path, open_quote)
    return scanned


def _sample_types(path: Path, delimiter: str, decimal: str) -> dict[str, pa.DataType]:
    """The column types Arrow infers from the file's first _CSV_SAMPLE bytes (whole lines);
    none where it cannot tell (no value yet) or the sample does not parse on its own."""
    with path.open("rb") as fh:
        sample = fh.read(_CSV_SAMPLE)
        if fh.read(1):  # more follows: the sample ends at its last whole line
            sample = sample[: sample.rfind(b"\n") + 1]
    try:
        table = pcsv.read_csv(
            io.BytesIO(sample),
            parse_options=pcsv.ParseOptions(
                delimiter=delimiter, invalid_row_handler=lambda _: "skip"
            ),
            convert_options=pcsv.ConvertOptions(strings_can_be_null=True, decimal_point=decimal),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return {}  # e.g. a quoted line break cut in two: the stream infers its own types
    return {f.name: f.type for f in table.schema if not pa.types.is_null(f.type)}


def _widen(message: str, schema: pa.Schema, types: dict[str, pa.DataType], decimal: str) -> bool:
    """Type the column a conversion error names as the next wider type; False when there is
    none (the error stands)."""
    found = _CONVERSION.search(message)
    if found is None:
        return False
    field = schema.field(int(found.group(1)))
    if pa.types.is_null(field.type):
        wider = _value_type(found.group(3), decimal)
    else:
        wider = _WIDER.get(str(field.type), pa.string())
    if wider == field.type:
        return False
    types[field.name] = wider
    return True


def _value_type(value: str, decimal: str) -> pa.DataType:
    """The type Arrow infers for one CSV value (text where it infers none)."""
    field = '"' + value.replace('"', '""') + '"'
    try:
        table = pcsv.read_csv(
            io.BytesIO(f"v\n{field}\n".encode()),
            convert_options=pcsv.ConvertOptions(decimal_point=decimal),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.string()
    kind = table.schema.field(0).type
    return pa.string() if pa.types.is_null(kind) else kind


def delimiter_name(delimiter: str) -> str:
    """A delimiter as messages and datasheets name it.

    Examples
    --------
    >>> delimiter_name(";"), delimiter_name("\\t"), delimiter_name("#")
    ("';' (semicolon)", "'\\\\t' (tab)", "'#'")
    """
    name = DELIMITERS.get(delimiter)
    return f"{delimiter!r} ({name})" if name else repr(delimiter)


def given_delimiter(delimiter: str | None, fmt: DataFormat) -> str | None:
    """The delimiter a ``delimiter`` parameter names (None: none given).

    Raises
    ------
    ParameterError
        About ``delimiter``: not a delimiter, or given for data that is not CSV.
    """
    if delimiter is None:
        return None
    if fmt != "csv":
        raise ParameterError("delimiter", f"{{param}} is for CSV files; the data is {fmt}")
    try:
        return parse_delimiter(delimiter)
    except ValueError as exc:
        message = "{param}" + str(exc).removeprefix("delimiter")
        raise ParameterError("delimiter", message) from None


def given_decimal(decimal: str | None, fmt: DataFormat) -> str | None:
    """The decimal mark a ``decimal`` parameter names (None: none given).

    Raises
    ------
    ParameterError
        About ``decimal``: not ``"."`` or ``","``, or given for data that is not CSV.
    """
    if decimal is None:
        return None
    if fmt != "csv":
        raise ParameterError("decimal", f"{{param}} is for CSV files; the data is {fmt}")
    if decimal not in (".", ","):
        raise ParameterError("decimal", f"{{param}} is '.' or ','; got {decimal!r}")
    return decimal


def sniff_delimiter(path: Path) -> str:
    """The delimiter of a CSV file: the one of comma, semicolon, tab and pipe that splits the
    header into two or more fields and the records after it (the first 64 KiB) into as many.

    A file that none of them splits is one column: comma-separated (tab-separated for
    ``.tsv``, which also settles a tie with tab). Not ``csv.Sniffer``: it names a delimiter
    even when two fit equally well, and fails on files of one or two lines.

    Raises
    ------
    DataError
        About ``delimiter``: two delimiters fit equally well; the message names them.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "prices.csv"
    >>> _ = p.write_text("item;price\\nbread;2,50\\nmilk;1,10\\n")
    >>> sniff_delimiter(p)
    ';'
    """
    try:
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    truncated = len(head) == _SNIFF_BYTES
    text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    fits: dict[str, float] = {}
    for delimiter in DELIMITERS:
        try:
            records = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if r]
        except csv.Error:  # a NUL byte or a huge field: not a table split this way
            continue
        if truncated and len(records) > 2:
            records.pop()  # cut off by the sample's end
        if not records or len(records[0]) < 2:
            continue
        rows = records[1:]
        share = sum(len(r) == len(records[0]) for r in rows) / len(rows) if rows else 1.0
        if share >= _SNIFF_SHARE:
            fits[delimiter] = share
    default = "\t" if path.suffix.lower() == ".tsv" else ","
    best = [d for d, share in fits.items() if share == max(fits.values(), default=0.0)]
    if len(best) == 1:
        return best[0]
    if not best or (default == "\t" and default in best):
        return default
    raise DataError.about(
        "delimiter",
        f"{path}: cannot tell which delimiter separates the fields: "
        f"{' and '.join(delimiter_name(d) for d in best)} each split the header and the "
        "lines after it into as many fields. Name it with {param}",
    )


def decimal_name(decimal: str) -> str:
    """A decimal mark as messages and datasheets name it.

    Examples
    --------
    >>> decimal_name(","), decimal_name(".")
    ('decimal comma (4,36 is 4.36)', 'decimal point')
    """
    return "decimal comma (4,36 is 4.36)" if decimal == "," else "decimal point"


def sniff_decimal(path: Path, delimiter: str) -> str:
    """The decimal mark of a CSV file's numbers: ``","`` when the file is not split on commas,
    some column holds only numbers written with a decimal comma (``4,36``, ``-0,5``; whole
    numbers beside them; not only values like ``1,000``, which may be thousands) in its first
    64 KiB, and no column holds numbers written with a decimal point; else ``"."``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "prices.csv"
    >>> _ = p.write_text("item;price\\nbread;2,50\\nmilk;1\\n")
    >>> sniff_decimal(p, ";"), sniff_decimal(p, ",")
    (',', '.')
    """
    if delimiter == ",":
        return "."
    try:
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    try:
        records = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if r]
    except csv.Error:
        return "."
    if len(head) == _SNIFF_BYTES and len(records) > 2:
        records.pop()  # cut off by the sample's end
    if len(records) < 2:
        return "."
    comma = point = False
    for values in zip(*records[1:], strict=False):
        filled = [v.strip() for v in values if v.strip()]
        if not filled or not all(
            _COMMA_DECIMAL.fullmatch(v) or _POINT_DECIMAL.fullmatch(v) or _INTEGER.fullmatch(v)
            for v in filled
        ):
            continue
        # 1,000 and 2,500 alone may be thousands: a decimal comma needs a value that is not.
        commas = any(_COMMA_DECIMAL.fullmatch(v) and not _THOUSANDS.fullmatch(v) for v in filled)
        points = any(_POINT_DECIMAL.fullmatch(v) for v in filled)
        comma, point = comma or (commas and not points), point or points
    return "," if comma and not point else "."


# Bump READ_VERSION with any change to how a whole file is parsed into a table (_read_csv's
# options or types, read_table's JSONL read): every version's columnar copy (a cache of what
# this reading gave, data/_columnar.py) is then made again from its snapshot.
READ_VERSION = 1


def _read_csv(path: Path, delimiter: str, decimal: str = ".") -> pa.Table:
    bad: list[tuple[int, int]] = []

    def on_invalid(row: pcsv.InvalidRow) -> str:
        bad.append((row.expected_columns, row.actual_columns))
        return "skip"

    def read(newlines_in_values: bool) -> pa.Table:
        return pcsv.read_csv(
            path,
            parse_options=pcsv.ParseOptions(
                delimiter=delimiter,
                newlines_in_values=newlines_in_values,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pcsv.ConvertOptions(strings_can_be_null=True, decimal_point=decimal),
        )

    table: pa.Table | None = None
    try:
        table = read(False)
    except pa.ArrowInvalid as exc:
        if "newlines_in_values" not in str(exc):
            raise
    # Read in parallel blocks cut at line breaks, a value spanning lines (a quoted line break,
    # or a quote never closed) fails the read or loses rows silently. One record per line
    # proves there is none; otherwise the file is read again, its blocks cut outside quotes.
    if table is None or table.num_rows + len(bad) != count_lines(path) - 1:
        # A quote left open on one line is closed by a quote on a later one, merging the
        # records between without an error; a strict scan (rare: values seldom span lines)
        # finds the closing quote followed by text instead of a delimiter.
        strict = _quote_problem(path, delimiter)
        if strict is not None:
            raise strict
        bad.clear()
        table = read(True)
    if bad:
        raise _ragged(path, delimiter, bad)
    if table.num_rows and table.num_columns:
        # A quote never closed swallows the rest of the file into the last value.
        last = table.column(table.num_columns - 1)[table.num_rows - 1].as_py()
        open_quote = _open_quote_line(path, last) if isinstance(last, str) and last else None
        if open_quote is not None:
            raise _never_closed(path, open_quote)
    return table


def _ragged(path: Path, delimiter: str, bad: list[tuple[int, int]]) -> DataError:
    """The error for rows with more or fewer fields than the header (``bad``: each one's
    expected and actual counts), naming the first one's line where it can be found."""
    expected, actual = bad[0]
    more = f" ({len(bad) - 1} more ragged rows)" if len(bad) > 1 else ""
    return _csv_problem(path, delimiter, more=more) or DataError(
        f"{path}: a row has {actual} fields, the header has {expected}{more}. Fix the file "
        "(quote fields that contain the delimiter) and add it again"
    )


def _quote_problem(path: Path, delimiter: str) -> DataError | None:
    """The record whose quote closes with text right after it, by the line it starts on (the
    quote opened there and closed on a later line, merging the records between); or the
    quote never closed. None when every quote closes before a delimiter or a line end."""
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh, delimiter=delimiter, strict=True)
        start = 1
        try:
            for _ in reader:
                start = reader.line_num + 1
        except csv.Error as exc:
            if "expected after" not in str(exc):  # the end of the file inside a quote
                return _never_closed(path, start)
            closes = reader.line_num
            where = f"on line {closes}" if closes != start else "on the same line"
            return DataError(
                f"{path}:{start}: a quote opened in the record on this line closes {where} "
                f"with text right after it, not {delimiter_name(delimiter)} or the line's end: "
                "a quote left open merges the lines between into one record. Close the quote "
                'on its line (a quote inside a quoted value is written twice: "") and add the '
                "file again"
            )
    return None


def _never_closed(path: Path, line: int) -> DataError:
    return DataError(
        f"{path}:{line}: a quote opened on this line is never closed, so every line after it "
        'would be read as one value. Close it (a quote inside a quoted value is written twice: "") '
        "and add the file again"
    )


class ByteSink(Protocol):
    """Where a read's bytes are copied (an artifact being written)."""

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``."""

    def restart(self) -> None:
        """Forget what was written: the read starts again."""


_NEWLINE = ord("\n")


class _Lines:
    """Lines counted chunk by chunk, blank ones at the end left out (as a CSV reader skips
    them)."""

    def __init__(self) -> None:
        self.lines = 0
        self.tail = b""

    def add(self, chunk: bytes) -> None:
        # numpy counts 3x as fast as bytes.count, and lets go of the GIL (the profile's
        # threads run meanwhile).
        self.lines += int(np.count_nonzero(np.frombuffer(chunk, np.uint8) == _NEWLINE))
        self.tail = (self.tail + chunk[-64:])[-64:]

    def total(self) -> int:
        tail = self.tail
        ending = tail[len(tail.rstrip(b"\r\n")) :].count(b"\n")  # the last line's and blank ones'
        return self.lines + (ending == 0 and tail != b"") - max(ending - 1, 0)


class _Tee:
    """A file read by Arrow, every chunk also copied to a sink and its lines counted: one
    pass over the bytes for the rows, the copy and the line count."""

    def __init__(self, path: Path, copy: ByteSink | None) -> None:
        self._file = path.open("rb")
        self._copy = copy
        self.lines = _Lines()
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self.lines.add(chunk)
        if self._copy is not None:
            self._copy.write(chunk)
        return chunk

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._file.close()
        self.closed = True


def count_lines(path: Path) -> int:
    """The lines of a file, blank ones at its end left out (as a CSV reader skips them): one
    pass at the speed of the disk, no rows made.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.csv"
    >>> texts = ("a\\n1\\n", "a\\n1", "a\\r\\n1\\r\\n\\r\\n\\n")  # the last: two blank lines
    >>> [count_lines(p) for text in texts if p.write_bytes(text.encode())]
    [2, 2, 2]
    """
    lines = _Lines()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            lines.add(chunk)
    return lines.total()


def check_csv(path: Path, delimiter: str) -> None:
    """Refuse a CSV file with a ragged row or a quote never closed, naming the line.

    It reads record by record with Python's ``csv``: for a file whose fast read failed, or
    gave fewer rows than it has lines (which a value spanning lines also explains).

    Raises
    ------
    DataError
        The first row whose field count differs from the header's, or a quote never closed.
    """
    problem = _csv_problem(path, delimiter)
    if problem is not None:
        raise problem


def _csv_problem(path: Path, delimiter: str, *, more: str = "") -> DataError | None:
    """The first ragged record (by the line it starts on: quoted values may span lines), or
    the quote never closed that swallowed the end of the file; None when neither."""
    split = f" (fields split on {delimiter_name(delimiter)})" if delimiter != "," else ""
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return None
        start = reader.line_num + 1
        last: list[str] = []
        try:
            for record in reader:
                if record and len(record) != len(header):
                    if next(reader, None) is None:  # the last: an open quote may have made it
                        line = _open_quote_line(path, record[-1])
                        if line is not None:
                            return _never_closed(path, line)
                    return DataError(
                        f"{path}:{start}: row has {len(record)} fields, the header has "
                        f"{len(header)}{more}{split}. Fix the file (quote fields that contain "
                        "the delimiter) and add it again"
                    )
                last = record or last
                start = reader.line_num + 1
        except csv.Error:  # a value past csv's field size limit: a quote ran on and on
            return _never_closed(path, start)
    line = _open_quote_line(path, last[-1]) if last and last[-1] else None
    return _never_closed(path, line) if line is not None else None


def _open_quote_line(path: Path, value: str) -> int | None:
    """The line of the quote that opens ``value`` (the file's last value) when it is never
    closed: the file then ends with the quote and the value, as CSV writes it."""
    tail = ('"' + value.replace('"', '""')).encode()
    size = path.stat().st_size
    if len(tail) > size:
        return None
    with path.open("rb") as fh:
        fh.seek(size - len(tail))
        if fh.read() != tail:
            return None
        fh.seek(0)
        lines, left = 1, size - len(tail)
        while left > 0:
            chunk = fh.read(min(left, 1 << 24))
            if not chunk:
                break
            lines += chunk.count(b"\n")
            left -= len(chunk)
    return lines
