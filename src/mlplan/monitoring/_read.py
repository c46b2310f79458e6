"""A deployment's (or a model's) prediction log read for monitoring, with DuckDB over every
writer's folder: the software figures of each window aggregated in the query (no record
reaches Python), and one window's answered records with every feedback sent about them,
parsed by DuckDB into typed columns (no record's JSON is parsed in Python: a window of ten
million records is a few hundred bytes a record, not a Python object each).

Every query names its window on ``time`` as text (the writer's ISO 8601 in UTC), so that
DuckDB skips the Parquet row groups outside it and only the JSONL segments that can hold it
are parsed (``serving.query_log``); the exact bound on the parsed timestamp follows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.errors import DataError
from mlplan.serving import log_folder, open_log, query_log, time_text
from mlplan.workspace import Workspace

__all__ = [
    "FEATURE",
    "PART_ROWS",
    "LogSubject",
    "WindowRecords",
    "answered_records",
    "health_rows",
    "software_rows",
    "typed_inputs",
]

FEATURE = "in:"
"""The prefix of the input fields' columns in :func:`answered_records`' records."""
PART_ROWS = 1_000_000
"""About how many requests of a window DuckDB parses at a time."""
_STRUCTURE_SAMPLE = 10_000
"""How many of a window's requests tell the types of its input fields."""


@dataclass(frozen=True)
class LogSubject:
    """Whose records are read: a deployment's (every model that answered for it), or a
    model's whole log (``deployment`` None)."""

    deployment: str | None
    model: str | None

    @property
    def name(self) -> str:
        """The deployment's or the model's name."""
        return str(self.deployment if self.deployment is not None else self.model)

    def folder(self, ws: Workspace) -> Path:
        """The log folder holding its records (every model's for a deployment)."""
        return log_folder(ws, None if self.deployment is not None else self.model)

    def where(self) -> str:
        """Its records, as SQL."""
        if self.deployment is not None:
            return f"deployment = {_literal(self.deployment)}"
        return f"model = {_literal(str(self.model))}"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _window_filter(since: dt.datetime, until: dt.datetime) -> str:
    """``[since, until)`` on ``time``: as text first (pushed into the Parquet scan), then
    exactly, on the timestamp."""
    stamp = "TRY_CAST(time AS TIMESTAMPTZ)"
    s, u = _literal(time_text(since)), _literal(time_text(until))
    return (
        f"time >= {s} AND time < {u} AND {stamp} >= CAST({s} AS TIMESTAMPTZ) "
        f"AND {stamp} < CAST({u} AS TIMESTAMPTZ)"
    )


def software_rows(
    ws: Workspace,
    subject: LogSubject,
    *,
    since: dt.datetime,
    until: dt.datetime,
    seconds: float,
    volume: bool = True,
) -> list[dict[str, Any]]:
    """Per package version and window of ``seconds`` (counted from the epoch) in
    ``[since, until)``: the requests, latency percentiles (``latency_ms``: p50, p90, p99),
    statuses, and (``volume``) the rows and bytes of the requests' inputs, aggregated by
    DuckDB (the rows of each request's inputs cost a parse of them).

    Raises
    ------
    DataError
        A log the query cannot read.
    """
    volumes = """,
               avg(json_array_length(inputs)) AS rows_per_request,
               sum(json_array_length(inputs)) AS input_rows,
               avg(strlen(inputs)) AS bytes_per_request"""
    sql = f"""
        WITH r AS (
            SELECT model, version, status, latency_ms, inputs,
                   TRY_CAST(time AS TIMESTAMPTZ) AS ts
            FROM predictions
            WHERE kind = 'prediction' AND {subject.where()} AND {_window_filter(since, until)}
        )
        SELECT model, version, CAST(floor(epoch(ts) / {seconds!r}) AS BIGINT) AS bucket,
               count(*) AS requests,
               quantile_cont(latency_ms, [0.5, 0.9, 0.99]) AS latency_ms,
               count(*) FILTER (WHERE status >= 400 AND status < 500) AS client_errors,
               count(*) FILTER (WHERE status >= 500) AS server_errors,
               count(*) FILTER (WHERE status < 200 OR status >= 300) AS errors,
               histogram(status) AS statuses{volumes if volume else ""}
        FROM r
        GROUP BY ALL
        ORDER BY bucket, model, version
    """
    rows: list[dict[str, Any]] = query_log(
        subject.folder(ws), sql, since=since, until=until
    ).to_pylist()
    return rows


def health_rows(
    ws: Workspace,
    subject: LogSubject,
    *,
    since: dt.datetime,
    until: dt.datetime,
    seconds: float,
) -> list[dict[str, Any]]:
    """Per package version and window, what the server processes' ``health`` records
    (``mlplan serve --health-every``) say: how many processes wrote one; CPU in percent of
    one core (each process's mean, summed, and the busiest's); resident memory (each
    process's peak, summed, and the largest); rows queued (each process's mean, summed, and
    the most any held); micro-batches run and their mean rows.

    Raises
    ------
    DataError
        A log the query cannot read.
    """

    def field(name: str) -> str:
        return f"TRY_CAST(json_extract_string(outputs, '$.{name}') AS DOUBLE)"

    sql = f"""
        WITH h AS (
            SELECT model, version, regexp_replace(request_id, '-[0-9]+$', '') AS writer,
                   CAST(floor(epoch(TRY_CAST(time AS TIMESTAMPTZ)) / {seconds!r}) AS BIGINT)
                       AS bucket,
                   {field("cpu_percent")} AS cpu, {field("rss_bytes")} AS rss,
                   {field("queued_rows")} AS queued, {field("batches")} AS batches,
                   {field("batch_rows_mean")} AS batch_rows
            FROM predictions
            WHERE kind = 'health' AND {subject.where()} AND {_window_filter(since, until)}
        ),
        p AS (
            SELECT model, version, bucket, writer, avg(cpu) AS cpu, max(rss) AS rss,
                   avg(queued) AS queued, max(queued) AS queued_max, sum(batches) AS batches,
                   sum(batches * batch_rows) AS batch_rows
            FROM h GROUP BY ALL
        )
        SELECT model, version, bucket, count(*) AS processes,
               sum(cpu) AS cpu_percent, max(cpu) AS cpu_percent_busiest,
               sum(rss) AS rss_bytes, max(rss) AS rss_bytes_largest,
               sum(queued) AS queued_rows_mean, max(queued_max) AS queued_rows_max,
               sum(batches) AS batches, sum(batch_rows) / nullif(sum(batches), 0)
                   AS batch_rows_mean
        FROM p GROUP BY ALL
        ORDER BY bucket, model, version
    """
    rows: list[dict[str, Any]] = query_log(
        subject.folder(ws), sql, since=since, until=until
    ).to_pylist()
    return rows


@dataclass(frozen=True)
class WindowRecords:
    """One package version's answered records of a window, read a part at a time (see
    :func:`answered_records`): ``fields``, each input field's type (for
    :func:`typed_inputs`); ``parts``, each part's records and events, once."""

    fields: Mapping[str, str]
    parts: Iterator[tuple[pa.Table, pa.Table]]


@contextlib.contextmanager
def answered_records(
    ws: Workspace,
    subject: LogSubject,
    *,
    since: dt.datetime,
    until: dt.datetime,
    model: str,
    version: str,
    classes: Sequence[str],
    known: Mapping[str, str] | None = None,
    only: Sequence[str] | None = None,
    part_rows: int = PART_ROWS,
) -> Iterator[WindowRecords]:
    """The records of the answered (2xx) ``prediction`` requests of one package version in
    ``[since, until)``, one row per answer, parsed by DuckDB, with the product events of
    their feedback; in parts of about ``part_rows`` requests each, cut by time (a request's
    records are in one part; oldest part first, each part oldest first), so that DuckDB's
    working memory is bounded by a part, not by the window.

    A record holds its ``request_id``, ``pos`` (its place in the request, from 1), the
    answer's ``label`` (null: none), ``proba`` (one probability per class of ``classes``,
    null where the answer has none) and ``value`` (a regression's), from ``/v1/predict``'s
    predictions or an Open Inference answer's tensors; ``truth``, the newest feedback label
    on its request when the request holds one record (a label names one answer; text, or a
    number for a regression); ``feedback_value``, the sum of the feedback values of its
    request, on its first record only; and each input field, as a column ``FEATURE + name``,
    a number or text (:func:`typed_inputs` makes whole numbers integers). The fields and
    their types are those of the window's first 10,000 requests and of ``known`` (name →
    ``number`` or ``category``, the training reference's); a field first seen past them is
    not read, and a value of another type than its field's reads as null. Nested values read
    as their JSON text. ``only``: read just those input fields.

    The events are one row per request and event name: ``request_id``, ``name``, ``value``
    (the sum of that event's values on the request, an event without a number counting 1).
    Feedback is read past ``until``: labels arrive late.

    Raises
    ------
    DataError
        A log the query cannot read (raised by the first read, or by a part's).
    """
    where = (
        f"kind = 'prediction' AND status >= 200 AND status < 300 AND {subject.where()} "
        f"AND model = {_literal(model)} AND version = {_literal(version)} "
        f"AND {_window_filter(since, until)}"
    )
    feedback = (
        f"kind = 'feedback' AND time >= {_literal(time_text(since))} "
        f"AND request_id IN (SELECT request_id FROM predictions WHERE {where})"
    )
    with open_log(subject.folder(ws), since=since) as con:
        try:
            fields = _input_fields(con, where, known or {})
            if only is not None:
                fields = {k: v for k, v in fields.items() if k in only}
            bounds = _part_bounds(con, where, part_rows)
            # The window's feedback, merged per request once (not read again for each part)
            con.execute(f"CREATE TEMP TABLE _feedback AS {_feedback_sql(feedback, classes)}")
            con.execute(f"CREATE TEMP TABLE _events AS {_events_sql(feedback)}")
        except Exception as exc:  # duckdb raises many error types; all mean "this query fails"
            raise DataError(f"the query failed: {str(exc).splitlines()[0]}") from None
        yield WindowRecords(fields, _parts(con, where, bounds, classes, fields))


def _part_bounds(con: Any, where: str, part_rows: int) -> list[str]:
    """Where the parts of the window's requests start after the first, as ``time`` text
    (approximate quantiles of their times, so parts are near ``part_rows`` requests)."""
    (count,) = con.sql(f"SELECT count(*) FROM predictions WHERE {where}").fetchall()[0]
    parts = math.ceil(count / part_rows) if count else 1
    if parts <= 1:
        return []
    levels = [i / parts for i in range(1, parts)]
    found = con.sql(
        f"SELECT approx_quantile(TRY_CAST(time AS TIMESTAMPTZ), {levels!r}) "
        f"FROM predictions WHERE {where}"
    ).fetchall()[0][0]
    return sorted({time_text(_utc(moment)) for moment in found or [] if moment is not None})


def _parts(
    con: Any,
    where: str,
    bounds: Sequence[str],
    classes: Sequence[str],
    fields: Mapping[str, str],
) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Each part's records and events; the parts are cut on ``time`` as text, so that every
    record is in exactly one. Cut by time, not by segment file: the records then come in one
    order, by time, request and place, however the log is laid out in files (a compaction
    moves records between files), and so do the sums that depend on it; ``--follow``'s
    windows must equal those computed from scratch."""
    edges: list[str | None] = [None, *bounds, None]
    for low, high in itertools.pairwise(edges):
        part = where
        if low is not None:
            part += f" AND time >= {_literal(low)}"
        if high is not None:
            part += f" AND time < {_literal(high)}"
        mine = f"request_id IN (SELECT request_id FROM predictions WHERE {part})"
        try:
            records = con.sql(_records_sql(part, classes, fields)).to_arrow_table()
            events = con.sql(
                f"SELECT * FROM _events WHERE {mine} ORDER BY request_id, name"
            ).to_arrow_table()
        except Exception as exc:  # duckdb raises many error types; all mean "this query fails"
            raise DataError(f"the query failed: {str(exc).splitlines()[0]}") from None
        yield records, events


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def _input_fields(con: Any, where: str, known: Mapping[str, str]) -> dict[str, str]:
    """Each input field of the window's first requests: ``integer``, ``number`` or ``text``;
    and the fields of ``known`` they lack, as ``number?`` or ``text?`` (kept only if some
    record has them)."""
    sample = f"""
        SELECT json_group_structure(CAST(inputs AS JSON))
        FROM (SELECT inputs FROM predictions WHERE {where} AND json_valid(inputs)
              LIMIT {_STRUCTURE_SAMPLE})
    """
    found = con.sql(sample).fetchall()
    structure = json.loads(found[0][0]) if found and found[0][0] else None
    record = structure[0] if isinstance(structure, list) and structure else None
    fields: dict[str, str] = {}
    for name, kind in record.items() if isinstance(record, dict) else []:
        if kind in ("UBIGINT", "BIGINT"):
            fields[name] = "integer"
        elif kind == "DOUBLE":
            fields[name] = "number"
        elif kind == "NULL":  # only nulls so far: as the reference says, else text
            fields[name] = "number" if known.get(name) == "number" else "text"
        else:
            fields[name] = "text"
    for name, kind in known.items():  # read if a later request has it
        fields.setdefault(name, "number?" if kind == "number" else "text?")
    return fields


def _records_sql(where: str, classes: Sequence[str], fields: Mapping[str, str]) -> str:
    k = len(classes)
    answer = {"label": "VARCHAR", "value": "DOUBLE"}
    if classes:
        answer["probabilities"] = {c: "DOUBLE" for c in classes}  # type: ignore[assignment]
    empty = "CAST([] AS DOUBLE[])"
    dict_p = "[" + ", ".join(f"x.probabilities.{_ident(c)}" for c in classes) + "]"
    tensor_p = "[" + ", ".join(f"f[i * {k} + {j + 1}]" for j in range(k)) + "]"
    inputs = {n: ("VARCHAR" if t.startswith("text") else "DOUBLE") for n, t in fields.items()}
    feature_columns = "".join(
        f", input.{_ident(n)} AS {_ident(FEATURE + n)}" for n in sorted(fields)
    )
    struct = "{'label': %s, 'p': %s, 'value': %s}"
    dict_answer = struct % ("x.label", dict_p if k else empty, "x.value")
    label_answer = struct % ("l[i + 1]", tensor_p if k else empty, "CAST(NULL AS DOUBLE)")
    value_answer = struct % ("CAST(NULL AS VARCHAR)", empty, "v[i + 1]")
    return f"""
        WITH w AS (
            SELECT request_id, time, inputs, outputs,
                   regexp_matches(outputs, '^\\s*\\[\\s*\\{{\\s*"name"\\s*:') AS tensor
            FROM predictions WHERE {where}
        ),
        t AS (
            SELECT *, CASE WHEN tensor THEN
                       try(json_transform(outputs, '[{{"name": "VARCHAR", "data": "JSON"}}]'))
                   END AS tensors
            FROM w
        ),
        d AS (
            SELECT request_id, time, inputs, outputs, tensor,
                   json_transform(list_filter(tensors, lambda e: e.name = 'label')[1].data,
                                  '["VARCHAR"]') AS l,
                   json_transform(list_filter(tensors, lambda e: e.name = 'probabilities')[1].data,
                                  '["DOUBLE"]') AS f,
                   json_transform(list_filter(tensors, lambda e: e.name = 'value')[1].data,
                                  '["DOUBLE"]') AS v
            FROM t
        ),
        a AS (
            SELECT request_id, time,
                   try(json_transform(inputs, {_literal(json.dumps([inputs]))})) AS ins,
                   CASE WHEN NOT tensor THEN
                       list_transform(
                           try(json_transform(outputs, {_literal(json.dumps([answer]))})),
                           lambda x: {dict_answer})
                   WHEN l IS NOT NULL THEN
                       list_transform(range(len(l)), lambda i:
                           {label_answer})
                   ELSE
                       list_transform(range(len(v)), lambda i:
                           {value_answer})
                   END AS answers
            FROM d
        ),
        r AS (
            SELECT request_id, time, len(answers) AS answered,
                   unnest(range(1, len(answers) + 1)) AS pos,
                   unnest(answers) AS answer, unnest(ins) AS input
            FROM a WHERE len(answers) > 0
        )
        SELECT r.request_id, r.pos, answer.label AS label, answer.p AS proba,
               answer.value AS value,
               CASE WHEN r.answered = 1 THEN f.label END AS truth,
               CASE WHEN r.pos = 1 THEN f.value END AS feedback_value
               {feature_columns}
        FROM r LEFT JOIN _feedback AS f USING (request_id)
        WHERE r.pos IS NOT NULL
        ORDER BY r.time, r.request_id, r.pos
    """


def _feedback_sql(feedback: str, classes: Sequence[str]) -> str:
    """Per request, its newest feedback label (a number for a regression) and the sum of its
    feedback values."""
    label = "arg_max(fb.label, time) FILTER (WHERE fb.label IS NOT NULL)"
    return f"""
        SELECT request_id, {label if classes else f"TRY_CAST({label} AS DOUBLE)"} AS label,
               sum(CAST(fb.value AS DOUBLE)) FILTER (
                   WHERE json_type(fb.value) IN ('UBIGINT', 'BIGINT', 'DOUBLE')) AS value
        FROM (
            SELECT request_id, time,
                   try(json_transform(outputs, '{{"label": "VARCHAR", "value": "JSON"}}'))
                       AS fb
            FROM predictions WHERE {feedback}
        )
        GROUP BY request_id
    """


def _events_sql(feedback: str) -> str:
    numeric = "('UBIGINT', 'BIGINT', 'DOUBLE')"
    return f"""
        SELECT request_id, e.name ->> '$' AS name,
               sum(CASE WHEN json_type(e.value) IN {numeric} THEN CAST(e.value AS DOUBLE)
                   ELSE 1 END) AS value
        FROM (
            SELECT request_id, unnest(try(json_transform(
                       outputs, '{{"events": [{{"name": "JSON", "value": "JSON"}}]}}')).events)
                       AS e
            FROM predictions WHERE {feedback} AND contains(outputs, '"events"')
        )
        WHERE json_type(e.name) = 'VARCHAR'
        GROUP BY ALL
    """


def typed_inputs(inputs: pa.Table, fields: Mapping[str, str]) -> pa.Table:
    """The input fields' columns (named by field, without ``FEATURE``) of a window's records
    read by :func:`answered_records`: the integer fields' as integers when every value read
    is a whole number; the known fields no record has, dropped."""
    for name, kind in fields.items():
        if name not in inputs.column_names:
            continue
        column = inputs.column(name)
        if kind.endswith("?") and column.null_count == len(column):
            inputs = inputs.drop_columns([name])
        if kind != "integer":
            continue
        numbers = column.to_numpy(zero_copy_only=False)
        finite = numbers[np.isfinite(numbers)]
        if finite.size and np.all(finite == np.round(finite)) and np.abs(finite).max() < 2**53:
            index = inputs.schema.get_field_index(name)
            inputs = inputs.set_column(index, name, pc.cast(column, pa.int64()))
    return inputs


def _ident(name: str) -> str:
    """A name as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
