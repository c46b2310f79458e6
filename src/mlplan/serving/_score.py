"""Batch scoring: ``mlplan score MODEL INPUT OUTPUT`` streams a Parquet or CSV file through a
model package in chunks (memory stays bounded), writes predictions with the model's version
and each row's id, and records the run's lineage. ``--engine ray`` computes on Ray Data and
writes in order from the driver."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from mlplan.data import (
    check_csv,
    count_lines,
    parquet_parts,
    ray_data_context,
    ray_worker_errors,
    row_group_runs,
    sniff_decimal,
    sniff_delimiter,
)
from mlplan.errors import DataError, ParameterError, UsageError
from mlplan.modeling import get_model, ray_session
from mlplan.serving._clearance import check_clearance
from mlplan.serving._model import ServedModel, load_served_model
from mlplan.store import sha256_file
from mlplan.workspace import Workspace

__all__ = ["ScoreReport", "score_file"]

Engine = Literal["local", "ray"]
ERROR_COLUMN = "error"


@dataclass(frozen=True)
class ScoreReport:
    """What a scoring run did."""

    model: str
    version: str
    input: str
    output: str
    rows: int
    scored: int
    refused: int
    seconds: float
    engine: str
    run_id: str

    @property
    def rows_per_second(self) -> float:
        """Throughput of the whole run, reading and writing included."""
        return self.rows / self.seconds if self.seconds else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return dict(self.__dict__) | {"rows_per_second": self.rows_per_second}


class _HashingSink:
    """The output file, hashed as it is written (its sha256 for the lineage without reading
    the file back)."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def tell(self) -> int:
        return self.size

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _format(path: Path) -> Literal["parquet", "csv"]:
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise UsageError(f"{path}: score reads and writes .parquet or .csv files; got {suffix!r}")


_CHUNKS_PER_TASK = 8
"""Chunks a Ray task scores from the Parquet file's row groups it reads itself."""


class _Chunker:
    """Feeds for one Arrow batch, checked against the signature column by column; rows that
    break it are refused with the reason (the rest are scored)."""

    def __init__(self, model: ServedModel, unseen: str, out_of_range: str) -> None:
        self.model = model
        self.unseen = unseen
        self.out_of_range = out_of_range

    def check_schema(self, schema: pa.Schema, path: Path) -> None:
        names = set(schema.names)
        missing = [name for name in self.model.input_names if name not in names]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {', '.join(missing)}; the model takes: "
                f"{', '.join(self.model.input_names)}"
            )
        for spec in self.model.signature.inputs:
            kind = schema.field(spec.name).type
            if spec.type == "number" and not (
                pa.types.is_integer(kind)
                or pa.types.is_floating(kind)
                or pa.types.is_null(kind)
                or pa.types.is_boolean(kind)
            ):
                raise DataError(
                    f"{path}: column {spec.name!r} holds {kind} values; the model expects numbers"
                )

    def feeds(self, batch: pa.RecordBatch) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """The feeds, and per row why it is refused (None when every row is fine)."""
        n = batch.num_rows
        reasons: list[tuple[str, np.ndarray]] = []
        feeds: dict[str, np.ndarray] = {}
        for spec in self.model.signature.inputs:
            name = spec.name
            column = batch.column(name)
            if pa.types.is_dictionary(column.type):
                column = pc.cast(column, column.type.value_type)
            missing = (
                np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
                if column.null_count
                else None
            )
            if spec.type == "number":
                values = pc.cast(column, pa.float32()).to_numpy(zero_copy_only=False)
                if missing is not None:
                    values = np.where(missing, np.float32(np.nan), values)
                low, high = spec.min, spec.max
                if low is not None and high is not None and self.out_of_range != "allow":
                    with np.errstate(invalid="ignore"):
                        outside = (values < low) | (values > high)
                    if outside.any():
                        if self.out_of_range == "clip":
                            values = np.where(outside, np.clip(values, low, high), values)
                        else:
                            reasons.append((f"{name}: outside [{low:g}, {high:g}]", outside))
                feeds[name] = np.ascontiguousarray(values, dtype=np.float32).reshape(-1, 1)
            else:
                strings = pc.cast(column, pa.string())
                allowed = list(spec.categories)
                if allowed and self.unseen == "reject":
                    known = pc.is_in(strings, value_set=pa.array(allowed, pa.string()))
                    unseen = ~np.asarray(
                        pc.fill_null(known, False).to_numpy(zero_copy_only=False), dtype=bool
                    )
                    if missing is not None:  # a missing value is not an unseen category
                        unseen &= ~missing
                    if unseen.any():
                        reasons.append((f"{name}: unseen category", unseen))
                filled = pc.fill_null(strings, "") if strings.null_count else strings
                feeds[name] = _strings(filled).reshape(-1, 1)
            if missing is not None and not spec.nullable and missing.any():
                reasons.append((f"{name}: missing", missing))
        if not reasons:
            return feeds, None
        # Rows share few combinations of reasons: one message per combination.
        code = np.zeros(n, dtype=np.int64)
        for bit, (_, mask) in enumerate(reasons):
            code |= mask.astype(np.int64) << bit
        messages = {
            int(c): "; ".join(text for bit, (text, _) in enumerate(reasons) if c >> bit & 1)
            for c in np.unique(code)
            if c
        }
        problems = np.full(n, None, dtype=object)
        for c, message in messages.items():
            problems[code == c] = message
        return feeds, problems


def _strings(values: pa.Array) -> np.ndarray:
    """``values`` as the object array ONNX Runtime takes, made of one Python string per
    distinct value rather than one per row (a chunk of a column of few categories made and
    freed 65,536 string objects: 30 MB more at peak when scoring 10,000,000 rows)."""
    encoded = pc.dictionary_encode(values)
    distinct: np.ndarray = encoded.dictionary.to_numpy(zero_copy_only=False)
    codes: np.ndarray = encoded.indices.to_numpy(zero_copy_only=False)
    strings: np.ndarray = distinct[codes]
    return strings


def _outputs(
    model: ServedModel,
    ids: pa.Array,
    labels: np.ndarray,
    proba: np.ndarray | None,
    problems: np.ndarray | None,
    id_name: str,
) -> pa.RecordBatch:
    n = len(ids)
    errors = pa.nulls(n, pa.string()) if problems is None else pa.array(problems, pa.string())
    refused = (
        None
        if problems is None
        else ~np.asarray(errors.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    )
    columns: dict[str, pa.Array] = {id_name: ids}
    if model.is_classifier:  # labels are indices into the classes (ServedModel.run_coded)
        codes = pa.array(labels.astype(np.int32), mask=refused, type=pa.int32())
        columns["prediction"] = pa.array(model.classes, pa.string()).take(codes)
        assert proba is not None
        for j, name in enumerate(model.classes):
            columns[f"p_{name}"] = pa.array(
                proba[:, j].astype(np.float64), mask=refused, type=pa.float64()
            )
    else:
        columns["prediction"] = pa.array(labels, mask=refused, type=pa.float64())
    columns["model"] = pa.repeat(model.name, n)
    columns["version"] = pa.repeat(model.version, n)
    columns[ERROR_COLUMN] = errors
    return pa.RecordBatch.from_pydict(columns)


def _score_batch(
    model: ServedModel, chunker: _Chunker, batch: pa.RecordBatch, id_column: str | None, start: int
) -> pa.RecordBatch:
    feeds, problems = chunker.feeds(batch)
    labels, proba = model.run_coded(feeds)
    ids = (
        pc.cast(batch.column(id_column), pa.string())
        if id_column is not None
        else pa.array(np.arange(start, start + batch.num_rows), pa.int64())
    )
    return _outputs(model, ids, labels, proba, problems, id_column or "row")


def _local_batches(
    model: ServedModel,
    chunker: _Chunker,
    read: Callable[[int], Iterator[pa.RecordBatch]],
    chunk_rows: int,
    id_column: str | None,
) -> Iterator[pa.RecordBatch]:
    """Score chunk by chunk, reading and checking the next chunk while ONNX Runtime runs the
    current one (both release the GIL), so the model rarely waits for input."""

    batches = (b for b in read(chunk_rows) if b.num_rows)

    def prepare() -> tuple[pa.RecordBatch, dict[str, np.ndarray], np.ndarray | None] | None:
        batch = next(batches, None)
        if batch is None:
            return None
        feeds, problems = chunker.feeds(batch)
        return batch, feeds, problems

    start = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlplan-score") as pool:
        ahead = pool.submit(prepare)
        while (ready := ahead.result()) is not None:
            ahead = pool.submit(prepare)
            batch, feeds, problems = ready
            labels, proba = model.run_coded(feeds)
            ids = (
                pc.cast(batch.column(id_column), pa.string())
                if id_column is not None
                else pa.array(np.arange(start, start + batch.num_rows), pa.int64())
            )
            start += batch.num_rows
            yield _outputs(model, ids, labels, proba, problems, id_column or "row")


def _ray_batches(
    ws: Workspace,
    model_name: str,
    path: Path,
    delimiter: str | None,
    id_column: str | None,
    chunk_rows: int,
    decimal: str = ".",
) -> Iterator[pa.RecordBatch]:

    ray = ray_session()
    data = ray.data
    ray_data_context(ray)  # blocks back in the order they were made
    root = str(ws.root)
    store_url = os.environ.get("MLPLAN_STORE_URL")
    security = ws.plan.deployment.security
    parquet = str(path) if delimiter is None else None

    class _Scorer:
        def __init__(self) -> None:
            local = Workspace(Path(root), store_url=store_url)
            self.model = load_served_model(local, model_name)
            self.chunker = _Chunker(self.model, security.unseen_categories, security.out_of_range)

        def __call__(self, table: pa.Table) -> Iterator[pa.Table]:
            # A table a chunk, as it is scored: a worker holds one chunk, not its whole run.
            for batch in self._batches(table):
                if batch.num_rows:
                    scored = _score_batch(self.model, self.chunker, batch, id_column, -1)
                    yield pa.Table.from_batches([scored])

        def _batches(self, table: pa.Table) -> Iterator[pa.RecordBatch]:
            if parquet is None:  # rows of the CSV file
                yield from table.to_batches()
                return
            with pq.ParquetFile(parquet) as file:  # runs of the file's row groups, read here
                for run in table.column("row_groups").to_pylist():
                    yield from _run_batches(parquet, file, run, chunk_rows)

    # Parquet by runs of row groups the workers read, in the file's order (Ray Data's own
    # reader hands row groups back out of it); a CSV file as Ray streams it, in order.
    dataset = (
        parquet_parts(ray, path, chunk_rows * _CHUNKS_PER_TASK)
        if parquet is not None
        else data.read_csv(str(path), **_csv_options(delimiter, decimal))  # type: ignore[arg-type]
    )
    # As many scorers as the cluster has CPUs (each loads the package once); the blocks
    # come back in order all the same.
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    scored = dataset.map_batches(
        _Scorer,
        batch_format="pyarrow",
        batch_size=1 if parquet is not None else chunk_rows,
        compute=data.ActorPoolStrategy(min_size=1, max_size=cpus),
    )
    start = 0
    with ray_worker_errors():  # a damaged row group, say, refused as the local engine does
        for table in scored.iter_batches(batch_format="pyarrow", batch_size=None):
            for batch in table.to_batches():
                if id_column is None:  # row numbers are the driver's: blocks lack them
                    numbers = pa.array(np.arange(start, start + batch.num_rows), pa.int64())
                    batch = batch.set_column(0, "row", numbers)
                start += batch.num_rows
                yield batch


def score_file(
    ws: Workspace,
    model: str,
    input_path: str | Path,
    output_path: str | Path,
    *,
    engine: Engine = "local",
    chunk_rows: int = 65_536,
    progress: Callable[[int], None] | None = None,
    allow_failed_gates: bool = False,
) -> ScoreReport:
    """Score ``input_path`` with ``model`` into ``output_path`` (Parquet or CSV by suffix).

    Rows that break the signature (a missing value the model never saw, an unseen category
    or an out-of-range value the plan rejects) get no prediction and say why in ``error``.

    Scoring a file for use is a deployment: a model whose newest evaluation failed a gate
    scores only with an approval of the plan's deploy gate naming it (or
    ``allow_failed_gates``, for trials), as ``mlplan serve`` asks.

    Raises
    ------
    DataError
        A missing input column, a numeric input holding text, an unreadable file.
    ParameterError
        An unknown engine, or fewer than one row per chunk.
    UsageError
        A file type other than Parquet or CSV, or a model that takes tensors.
    CheckFailedError
        The model failed its gates and nobody approved deploying it.
    """

    if engine not in {"local", "ray"}:
        raise ParameterError("engine", f"{{param}} must be local or ray; got {engine!r}")
    source = ws.resolve(input_path)
    target = ws.resolve(output_path)
    if not source.is_file():
        raise DataError(f"{source}: no such file to score")
    in_fmt, out_fmt = _format(source), _format(target)
    if chunk_rows < 1:
        raise ParameterError("chunk_rows", f"{{param}} must be 1 or more; got {chunk_rows}")
    info = get_model(ws, model)
    check_clearance(ws, info.ref, allow_failed_gates=allow_failed_gates, use="score")
    served = load_served_model(ws, info.ref)
    if served.kind != "tabular":
        raise UsageError(f"{model} takes {served.kind} tensors; score scores tabular models")
    security = ws.plan.deployment.security
    chunker = _Chunker(served, security.unseen_categories, security.out_of_range)
    delimiter = sniff_delimiter(source) if in_fmt == "csv" else None
    decimal = sniff_decimal(source, delimiter) if delimiter is not None else "."
    read, schema = _open_input(source, in_fmt, delimiter, decimal)
    chunker.check_schema(schema, source)
    id_column = _id_column(ws, schema)
    started = time.perf_counter()
    batches = (
        _local_batches(served, chunker, read, chunk_rows, id_column)
        if engine == "local"
        else _ray_batches(ws, info.ref, source, delimiter, id_column, chunk_rows, decimal)
    )
    rows, refused, digest_in, digest_out = _score_into(
        batches if delimiter is None else _whole_csv(batches, source, delimiter),
        source,
        _OutputFile(target, out_fmt),
        progress,
        empty=lambda: _empty_outputs(served, id_column),
    )
    report = ScoreReport(
        model=info.name,
        version=served.version,
        input=ws.relative(source),
        output=ws.relative(target),
        rows=rows,
        scored=rows - refused,
        refused=refused,
        seconds=time.perf_counter() - started,
        engine=engine,
        run_id="",
    )
    parameters = {
        "model": info.name,
        "package": info.ref,
        "engine": engine,
        "rows": rows,
        "refused": refused,
    }
    with ws.record("score", parameters) as run:
        run.input("model", info.ref, sha256=info.package_sha256)
        run.input("file", report.input, sha256=digest_in)
        run.output("file", report.output, sha256=digest_out)
    return dataclasses.replace(report, run_id=run.id)


def _csv_options(delimiter: str, decimal: str = ".") -> dict[str, Any]:
    """CSV read as mlplan reads data everywhere: split on the file's delimiter, numbers with
    its decimal mark (4,36 in a European export), an empty string is a missing value, and
    blocks are cut outside quoted values (a quoted line break, or a quote never closed, would
    lose rows silently otherwise)."""
    return {
        "parse_options": pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        "convert_options": pcsv.ConvertOptions(strings_can_be_null=True, decimal_point=decimal),
    }


def _whole_csv(
    batches: Iterator[pa.RecordBatch], source: Path, delimiter: str
) -> Iterator[pa.RecordBatch]:
    """The batches of a CSV input; a ragged row or a quote never closed is refused with its
    line (the scored rows are then not kept)."""
    rows = 0
    try:
        for batch in batches:
            rows += batch.num_rows
            yield batch
    except pa.ArrowInvalid as exc:
        check_csv(source, delimiter)
        raise DataError(f"{source}: cannot be read as csv: {str(exc).splitlines()[0]}") from None
    if rows != count_lines(source) - 1:  # values spanning lines, blank lines, or lost rows
        check_csv(source, delimiter)


def _open_input(
    source: Path, fmt: str, delimiter: str | None, decimal: str = "."
) -> tuple[Callable[[int], Iterator[pa.RecordBatch]], pa.Schema]:
    """A reader of the input's batches of at most so many rows, and its schema.

    Memory is bounded by the chunk, not the file. A Parquet file is read a few row groups at
    a time, each group read by a reader of its own: one reader over the whole file kept every
    row group's dictionary pages until it ended (about 0.75 MB a row group for an id column:
    60 MB at 10,000,000 rows), and Arrow's dataset scanner kept its pre-buffered byte ranges
    as well (apache/arrow#39808). A CSV file is streamed block by block: the dataset scanner
    read ahead of a slow consumer (scoring's peak grew 168 -> 511 MB from 2M to 10M rows)."""
    options = _csv_options(delimiter, decimal) if delimiter is not None else {}
    try:
        if delimiter is None:  # the schema now, the rows by a reader of their own
            with pq.ParquetFile(source) as parquet:
                schema = parquet.schema_arrow
            return partial(_parquet_batches, source), schema
        with pcsv.open_csv(source, **options) as reader:  # the types of the first block
            schema = reader.schema
    except (pa.ArrowInvalid, OSError) as exc:
        if delimiter is not None and isinstance(exc, pa.ArrowInvalid):
            check_csv(source, delimiter)  # a ragged row or an open quote, with its line
        raise DataError(f"{source}: cannot be read as {fmt}: {exc}") from None

    def csv_batches(chunk_rows: int) -> Iterator[pa.RecordBatch]:
        with pcsv.open_csv(source, **options) as reader:
            yield from _rechunked(reader, chunk_rows)

    return csv_batches, schema


def _rechunked(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """``batches`` (a CSV reader's blocks, of any size) joined into batches of ``rows`` rows
    (the last one fewer), holding at most one batch's worth."""
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        held.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(held).combine_chunks()
            yield table.slice(0, rows).to_batches()[0]
            rest = table.slice(rows)
            held, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(held).combine_chunks().to_batches()[0]


def _parquet_batches(source: Path, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """The file's batches, read by consecutive row groups of about ``chunk_rows`` rows in all
    (small row groups are read together, so that each batch still fills a chunk)."""
    with pq.ParquetFile(source) as parquet:
        for run in row_group_runs(parquet.metadata, chunk_rows):
            yield from _run_batches(source, parquet, run, chunk_rows)


def _run_batches(
    source: Path | str, parquet: pq.ParquetFile, run: list[int], chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    """The batches of one run of row groups; a damaged one is refused naming the file and
    the groups (a DataError, on a Ray worker too)."""
    try:
        yield from parquet.iter_batches(batch_size=chunk_rows, row_groups=run)
    except (pa.ArrowInvalid, OSError) as exc:
        groups = (
            f"row group {run[0] + 1}"
            if len(run) == 1
            else (f"row groups {run[0] + 1}-{run[-1] + 1}")
        )
        raise DataError(
            f"{source}: cannot be read as parquet: {groups} of "
            f"{parquet.metadata.num_row_groups} cannot be read ({exc}); write the file again"
        ) from None


def _id_column(ws: Workspace, schema: pa.Schema) -> str | None:
    """The plan's id column of a dataset, when the input has it (else rows are numbered)."""
    return next(
        (
            spec.id_column
            for spec in ws.plan.datasets.values()
            if spec.id_column and spec.id_column in schema.names
        ),
        None,
    )


def _empty_outputs(model: ServedModel, id_column: str | None) -> pa.RecordBatch:
    """No rows, with the columns: what an empty input gets."""
    return _outputs(
        model,
        pa.array([], pa.string()),
        np.zeros(0, dtype=np.int32),
        np.zeros((0, len(model.classes))),
        np.zeros(0, dtype=object),
        id_column or "row",
    )


def _score_into(
    batches: Iterator[pa.RecordBatch],
    source: Path,
    output: _OutputFile,
    progress: Callable[[int], None] | None,
    *,
    empty: Callable[[], pa.RecordBatch],
) -> tuple[int, int, str, str]:
    """Every scored batch into ``output``, while the input is hashed beside it: the rows,
    those refused, and the sha256 of the input and of the output. On any error, nothing is
    left behind."""
    digest = _InputDigest(source)
    rows = refused = 0
    try:
        for batch in batches:
            output.write(batch)
            rows += batch.num_rows
            refused += batch.num_rows - batch.column(ERROR_COLUMN).null_count
            if progress is not None:
                progress(batch.num_rows)
        digest_out = output.close(empty)
        digest_in = digest.result()
        output.commit()
    except BaseException:
        digest.stop()  # an error is reported now, not once the whole input is hashed
        output.abort()
        digest.join()
        raise
    return rows, refused, digest_in, digest_out


class _InputDigest:
    """The input's sha256, for the lineage, read beside scoring (hashlib releases the GIL)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._digests: list[str] = []
        self._failed: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._hash, name="mlplan-score-hash")
        self._thread.start()

    def _hash(self) -> None:
        try:
            self._digests.append(sha256_file(self._path, cancelled=self._stop.is_set).sha256)
        except BaseException as exc:  # reported by the scoring thread
            self._failed.append(exc)

    def result(self) -> str:
        """The digest, once the whole input is read."""
        self._thread.join()
        if not self._digests:
            raise DataError(
                f"{self._path}: could not be read to the end to hash it for the lineage: "
                f"{self._failed[0] if self._failed else 'unknown error'}"
            )
        return self._digests[0]

    def stop(self) -> None:
        """Stop reading (scoring failed)."""
        self._stop.set()

    def join(self) -> None:
        self._thread.join()


class _OutputFile:
    """The predictions, written to a temporary file in a thread of their own beside scoring
    (pyarrow releases the GIL) and hashed as they are written; renamed over the target once
    everything is done."""

    def __init__(self, target: Path, fmt: Literal["parquet", "csv"]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        self._target = target
        self._temp = target.with_name(f".{target.name}.tmp")
        self._fmt = fmt
        self._writer: Any = None
        self._sink: _HashingSink | None = None
        self._thread: threading.Thread | None = None
        self._outbox: queue.Queue[pa.RecordBatch | None] = queue.Queue(maxsize=4)
        self._failure: list[BaseException] = []

    def _open(self, schema: pa.Schema) -> None:
        self._sink = _HashingSink(self._temp)
        self._writer = (
            pq.ParquetWriter(self._sink, schema)
            if self._fmt == "parquet"
            else pcsv.CSVWriter(self._sink, schema)
        )

    def _write_queued(self) -> None:
        try:
            while (item := self._outbox.get()) is not None:
                self._writer.write_batch(item)
        except BaseException as exc:  # reported by the scoring thread
            self._failure.append(exc)
            while self._outbox.get() is not None:  # drain, so the producer never blocks
                pass

    def write(self, batch: pa.RecordBatch) -> None:
        """Queue ``batch`` for the writer (the first one opens the file)."""
        if self._failure:
            raise self._failure[0]
        if self._writer is None:
            self._open(batch.schema)
            self._thread = threading.Thread(target=self._write_queued, name="mlplan-score-writer")
            self._thread.start()
        self._outbox.put(batch)

    def close(self, empty: Callable[[], pa.RecordBatch]) -> str:
        """Write what is queued and close the file; its sha256. Without a batch, the file
        gets the columns of ``empty()``."""
        if self._thread is not None:
            self._outbox.put(None)
            self._thread.join()
            self._thread = None
            if self._failure:
                raise self._failure[0]
        if self._writer is None:  # an empty input still gets a file with the columns
            self._open(empty().schema)
        self._writer.close()
        self._writer = None
        assert self._sink is not None
        self._sink.close()
        return self._sink.hexdigest()

    def commit(self) -> None:
        """The file becomes the target."""
        self._temp.replace(self._target)

    def abort(self) -> None:
        """Stop the writer, close and remove the temporary file."""
        if self._thread is not None:
            self._outbox.put(None)
            self._thread.join()
        if self._writer is not None:
            self._writer.close()
        if self._sink is not None:
            self._sink.close()
        self._temp.unlink(missing_ok=True)
