"""A deployment's (or a model's) prediction log read for monitoring, with DuckDB over every
writer's folder: the software figures of each window aggregated in the query (no record
reaches Python), and one window's answered records with every feedback sent about them.

Every query names its window on ``time`` as text (the writer's ISO 8601 in UTC), so that
DuckDB skips the Parquet row groups outside it and only the JSONL segments that can hold it
are parsed (``serving.query_log``); the exact bound on the parsed timestamp follows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplan.serving import log_folder, query_log, time_text
from mlplan.workspace import Workspace

__all__ = ["LogSubject", "answered_rows", "health_rows", "software_rows"]


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
) -> list[dict[str, Any]]:
    """Per package version and window of ``seconds`` (counted from the epoch) in
    ``[since, until)``: the requests, latency percentiles (``latency_ms``: p50, p90, p99),
    statuses, and the rows and bytes of the requests' inputs, aggregated by DuckDB.

    Raises
    ------
    DataError
        A log the query cannot read.
    """
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
               histogram(status) AS statuses,
               avg(json_array_length(inputs)) AS rows_per_request,
               sum(json_array_length(inputs)) AS input_rows,
               avg(strlen(inputs)) AS bytes_per_request
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


def answered_rows(
    ws: Workspace, subject: LogSubject, *, since: dt.datetime, until: dt.datetime
) -> Any:
    """The answered (2xx) ``prediction`` records in ``[since, until)``, oldest first, each
    with every feedback sent about its request since (``feedback``: their JSON, oldest
    first; labels arrive late, so the feedback is read past ``until``), as an Arrow table.

    Raises
    ------
    DataError
        A log the query cannot read.
    """
    sql = f"""
        WITH w AS (
            SELECT request_id, model, version, inputs, outputs, time
            FROM predictions
            WHERE kind = 'prediction' AND status >= 200 AND status < 300
              AND {subject.where()} AND {_window_filter(since, until)}
        ),
        f AS (
            SELECT request_id, list(outputs ORDER BY time) AS feedback
            FROM predictions
            WHERE kind = 'feedback' AND time >= {_literal(time_text(since))}
              AND request_id IN (SELECT request_id FROM w)
            GROUP BY request_id
        )
        SELECT w.*, f.feedback FROM w LEFT JOIN f USING (request_id)
        ORDER BY w.time, w.request_id
    """
    return query_log(subject.folder(ws), sql, since=since)
