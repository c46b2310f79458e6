"""The columnar copy of a version's table: what parsing its CSV or JSONL snapshot gave, kept as
an uncompressed Arrow IPC file in the artifact folder's ``tables/`` cache, and read back as a
memory map (no parse, no copy onto the heap) by :func:`mlplan.data.load_table`.

A copy is named by everything that decides the parsed table: the snapshot's sha256, the
format, the delimiter and decimal mark, and ``READ_VERSION`` (bumped with any change to the
reading). It is only a cache: the snapshot stays the evidence, so a copy is read only while
its snapshot is stored; one that cannot be opened or does not match the version's record is
removed and made again; one that cannot be written is skipped.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING

import pyarrow as pa

from mlplan.data._read import READ_VERSION

if TYPE_CHECKING:
    from pathlib import Path

    from mlplan.data._versions import DatasetVersionInfo
    from mlplan.store import ArtifactStore

__all__ = ["COPIED_FORMATS", "read_copy", "write_copy"]

# Parquet is memory-mapped as it is; an image folder's snapshot is Parquet already.
COPIED_FORMATS = frozenset({"csv", "jsonl"})
_READER = re.compile(r"r(\d+)")


def read_copy(artifacts: ArtifactStore, info: DatasetVersionInfo) -> pa.Table | None:
    """The table of ``info`` from its columnar copy, memory-mapped; None when there is no copy
    to trust (none yet; cut short, unreadable, or not the version's columns and rows: then it
    is removed, for the caller to parse the snapshot and write it again)."""
    path = _path(artifacts, info)
    if not path.is_file():
        return None
    try:
        with pa.memory_map(str(path)) as source:
            # The table's buffers point into the map, which stays open while they live.
            table = pa.ipc.open_file(source).read_all()
        # Not table.validate(): it reads the pages of every column (0.16 GB at 2M rows). A copy
        # cut short or overwritten has no footer; its footer's buffers are checked against the
        # file's size; a stranger's table has other columns or rows.
        if table.column_names != info.column_names or table.num_rows != info.rows:
            raise ValueError(f"{path}: not the table of {info.ref}")
    except (pa.ArrowException, OSError, ValueError):
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return table


def write_copy(artifacts: ArtifactStore, info: DatasetVersionInfo, table: pa.Table) -> None:
    """Keep ``table``, parsed from the snapshot of ``info``, as its columnar copy (and remove
    the copies older readers made of it). A copy that cannot be written (a read-only folder, a
    full disk) is skipped: the next read parses the snapshot again."""
    if table.column_names != info.column_names or table.num_rows != info.rows:
        return  # a copy read_copy would refuse: not worth the bytes
    target = _path(artifacts, info)
    try:
        with (
            artifacts.copy_writer(target) as tmp,
            pa.OSFile(str(tmp), "wb") as sink,
            pa.ipc.new_file(sink, table.schema) as writer,
        ):
            writer.write_table(table)
    except (pa.ArrowException, OSError):
        return
    # Older readers' copies are never read again; newer ones may be a teammate's.
    for old in target.parent.glob(target.name.replace(f".r{READ_VERSION}.", ".r*.")):
        reader = _READER.fullmatch(old.name.split(".")[-2])
        if reader is not None and int(reader.group(1)) < READ_VERSION:
            with contextlib.suppress(OSError):
                old.unlink()


def _path(artifacts: ArtifactStore, info: DatasetVersionInfo) -> Path:
    """Where the copy of ``info``'s snapshot lives: ``SHA256.csv-2c-2e-pa21-0.r1.arrow`` (the
    delimiter's and the decimal mark's code points in hex, ``auto`` for a delimiter sniffed
    at each read; the Arrow that parsed it, whose type inference a teammate's or a later
    version may not share) or ``SHA256.jsonl-pa21-0.r1.arrow``."""
    assert info.snapshot_sha256 is not None
    key = info.format
    if info.format == "csv":
        delimiter = f"{ord(info.delimiter):x}" if info.delimiter else "auto"
        key += f"-{delimiter}-{ord(info.decimal or '.'):x}"
    major, minor = pa.__version__.split(".")[:2]
    key += f"-pa{major}-{minor}"
    return artifacts.table_copy(info.snapshot_sha256, f"{key}.r{READ_VERSION}")
