"""Profiling a file on Ray Data (``mlplan data add NAME FILE --engine ray``): Ray reads the
file as blocks, each block is profiled on a worker into a partial :class:`Profiler`, and the
driver merges the partial profiles in the file's order (:meth:`Profiler.merge`). The profile
is the one the local engine makes: what it counts exactly comes out equal (mean and standard
deviation up to float rounding), and a sketched column keeps the bound its profile states.

Each block's profile is sent back pickled, with its first rows: the driver holds one block's
profile at a time, never the rows. A CSV file is read with the types the local engine reads
it with (sampled from the file's start, a column widened when a later value does not fit),
and refused for the same faults (a ragged row, a quote never closed) with the same messages.
A Parquet file is read by runs of row groups, in parallel, and merged in the file's order
(Ray Data's own reader hands row groups back out of it); a CSV file as one stream (Ray Data splits
no CSV file), its blocks profiled in parallel. JSON lines are read whole by the local engine,
which types them from every line: they are not profiled on Ray.

Ray's workers read the file by its path: on a cluster of several machines (``RAY_ADDRESS``)
it must be where each of them can read it (shared storage).
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from mlplan.data._profile import Profiler
from mlplan.data._ray import parquet_parts, ray_data_context, ray_session
from mlplan.data._read import (
    _CSV_BLOCK,
    _GROUP_ROWS,
    _HEAD_ROWS,
    DataFormat,
    _checked,
    _sample_types,
    count_lines,
    scan_table,
    sniff_delimiter,
)
from mlplan.errors import DataError, ParameterError

__all__ = ["profile_on_ray"]


def profile_on_ray(
    path: Path,
    fmt: DataFormat,
    *,
    delimiter: str | None = None,
    decimal: str = ".",
    private: Iterable[str] = (),
    batch_rows: int = _GROUP_ROWS,
) -> tuple[pa.Table, int, dict[str, Any]]:
    """The file's first rows, its row count and its profile, computed on Ray Data; as
    :func:`~mlplan.data.scan_table` into a :class:`Profiler` gives them locally.

    Each task profiles ``batch_rows`` rows (the local engine's group of batches): a worker
    holds that many rows and one partial profile, the driver one partial profile at a time.

    Raises
    ------
    DataError
        As the local read: unreadable, ragged, a quote never closed, no rows.
    ParameterError
        A format Ray does not profile (JSON lines, image folders).
    MissingExtraError
        Ray is not installed.
    """
    if fmt not in {"csv", "parquet"}:
        raise ParameterError(
            "engine",
            f"{{param}} ray profiles CSV and Parquet files; {path} is {fmt}: "
            "add it with the local engine",
        )
    ray = ray_session("profiling on Ray (--engine ray)")
    ray_data_context(ray)
    hidden = tuple(private)
    if fmt == "parquet":
        strings = [
            f.name
            for f in pq.read_schema(path)
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
        ]
        # The local engine's schema: strings dictionary-encoded, as Parquet stores them.
        schema = pq.ParquetFile(path, read_dictionary=strings).schema_arrow
        try:
            read = functools.partial(
                _profile_row_groups,
                path=str(path),
                strings=strings,
                schema=schema,
                private=hidden,
                batch_rows=batch_rows,
            )
            parts = parquet_parts(ray, path, batch_rows)
            profiles = parts.map_batches(read, batch_format="pyarrow", batch_size=1)
            profiler, head = _collected(profiles, schema, hidden)
        except Exception as exc:
            raise DataError(f"{path}: cannot be read as parquet: {_reason(exc)}") from None
    else:
        delimiter = delimiter or sniff_delimiter(path)
        profiler, head = _profile_csv(ray, path, delimiter, decimal, hidden, batch_rows)
    profile = profiler.finish()
    _checked(path, head.column_names, profiler.rows)
    return head, profiler.rows, profile


def _profile_csv(
    ray: Any, path: Path, delimiter: str, decimal: str, private: tuple[str, ...], batch_rows: int
) -> tuple[Profiler, pa.Table]:
    """A CSV file profiled on Ray with the local engine's types. When Ray's read fails (its
    error keeps no word of Arrow's) or loses rows, the local read runs instead of it
    through the file, sinking the rows: it refuses the file as the local engine does (a ragged
    row, a quote never closed, by line), or widens a column that changed type past the
    sample, and Ray reads again with the types it settled on."""
    types = _sample_types(path, delimiter, decimal)
    for attempt in range(2):
        options = {
            "read_options": pcsv.ReadOptions(block_size=_CSV_BLOCK),
            "parse_options": pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            "convert_options": pcsv.ConvertOptions(
                strings_can_be_null=True, decimal_point=decimal, column_types=types
            ),
        }
        try:
            with pcsv.open_csv(path, **options) as reader:  # the first block's types
                schema = reader.schema
            dataset = ray.data.read_csv(str(path), **options)
            profiler, head = _merged(dataset, schema, private, batch_rows)
        except Exception as exc:  # Ray hands a worker's error on wrapped, in several types
            if attempt:
                raise DataError(f"{path}: cannot be read as csv: {_reason(exc)}") from None
            types = _local_types(path, delimiter, decimal)
            continue
        # One record a line proves no row was lost; else values span lines, or a fault did.
        if profiler.rows != count_lines(path) - 1:
            _local_types(path, delimiter, decimal)
        return profiler, head
    raise AssertionError("unreachable")


def _local_types(path: Path, delimiter: str, decimal: str) -> dict[str, pa.DataType]:
    """The column types the local engine reads the file with, found by reading it through
    (a column widened as often as it needs); its errors are the local engine's."""
    schemas: list[pa.Schema] = []

    def start(schema: pa.Schema) -> Callable[[pa.RecordBatch], None]:
        schemas.append(schema)
        return lambda batch: None

    scan_table(path, "csv", start, delimiter=delimiter, decimal=decimal)
    return {field.name: field.type for field in schemas[-1]}


def _merged(
    dataset: Any, schema: pa.Schema, private: tuple[str, ...], batch_rows: int
) -> tuple[Profiler, pa.Table]:
    """Every batch profiled on the cluster, the partial profiles merged here in order; the
    first rows kept from the first batches."""
    partial = functools.partial(_profile_block, schema=schema, private=private)
    profiles = dataset.map_batches(partial, batch_format="pyarrow", batch_size=batch_rows)
    return _collected(profiles, schema, private)


def _collected(
    profiles: Any, schema: pa.Schema, private: tuple[str, ...]
) -> tuple[Profiler, pa.Table]:
    """The partial profiles (a dataset of ``profile`` and ``head``) merged in their order."""
    profiler = Profiler(schema, threads=1, private=private)
    heads: list[pa.Table] = []
    kept = 0
    for table in profiles.iter_batches(batch_format="pyarrow", batch_size=None):
        for state, head in zip(
            table.column("profile").to_pylist(), table.column("head").to_pylist(), strict=True
        ):
            profiler.merge(pickle.loads(state))
            if kept < _HEAD_ROWS:
                rows = _from_ipc(head).slice(0, _HEAD_ROWS - kept)
                heads.append(rows)
                kept += rows.num_rows
    head = pa.concat_tables(heads) if heads else schema.empty_table()
    return profiler, head


def _profile_row_groups(
    parts: pa.Table,
    *,
    path: str,
    strings: list[str],
    schema: pa.Schema,
    private: tuple[str, ...],
    batch_rows: int,
) -> Iterator[pa.Table]:
    """Each run of row groups in ``parts`` read (strings dictionary-encoded, as the local
    engine reads them) and profiled a batch at a time, each batch's partial profile handed
    on as it is made (run on a Ray worker: it holds one batch, however large a row group)."""
    with pq.ParquetFile(path, read_dictionary=strings) as parquet:
        for run in parts.column("row_groups").to_pylist():
            for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=run):
                yield _profile_block(pa.Table.from_batches([batch]), schema=schema, private=private)


def _profile_block(table: pa.Table, *, schema: pa.Schema, private: tuple[str, ...]) -> pa.Table:
    """One block's partial profile and first rows, pickled (run on a Ray worker)."""
    profiler = Profiler(schema, threads=1, private=private)
    if table.num_rows:
        profiler.add(table.select(schema.names))
    profiler.close()
    return pa.table(
        {
            "profile": pa.array([pickle.dumps(profiler)], pa.binary()),
            "head": pa.array([_to_ipc(table.slice(0, _HEAD_ROWS))], pa.binary()),
        }
    )


def _to_ipc(table: pa.Table) -> bytes:
    """A table's rows as Arrow IPC: a slice's own rows only (pickling a slice pickles the
    whole buffers it views: a batch's, for its first thousand rows)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def _from_ipc(data: bytes) -> pa.Table:
    with pa.ipc.open_stream(data) as reader:
        return reader.read_all()


def _reason(exc: BaseException) -> str:
    """The first line of what went wrong, as Arrow said it (Ray wraps a worker's error)."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip() or type(cause).__name__
    lines = [line for line in text.splitlines() if line.strip()]
    arrow = [line for line in lines if "CSV" in line or "Parquet" in line or "Expected" in line]
    return (arrow or lines)[0].strip()
