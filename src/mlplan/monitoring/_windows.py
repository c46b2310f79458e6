"""Monitoring windows (``mlplan monitor``): a deployment's traffic, or a model's whole log,
cut into tumbling windows and measured per package version, family and slice value, then
stored (a window computed again replaces its rows).

Windows are whole and aligned on the epoch: with ``--window 1h`` they start on the hour,
``since`` is taken back to the start of its window and ``until`` on to the end of its own,
so the same window always has the same bounds. ``until`` defaults to now (the window under
way is measured as far as it goes, its throughput over the time it has run), ``since`` to
24 windows before.

The families: ``software`` (requests, throughput, latency percentiles, error rates by status,
rows and bytes per request; with the servers' health records, CPU, memory, queue depth and
batch sizes; aggregated by DuckDB, for every record only), ``input``,
``output``, ``ml`` and ``business`` (``_families.py``, for every record and within each value
of the plan's slices). Each package version's training reference is read once per call
(``_watch.py``): the input family holds each feature's drift against it (method, reason,
statistic, p-value, threshold, drifted; over every record, not per slice: a slice is not
the training population) and its out-of-range and unseen values, the output family the
outputs' drift; a classifier's ``estimated`` family holds the plan's ML metrics
estimated before labels from its calibrated scores, each with its interval and, once
feedback labels arrive, the realised value (the ML family's) beside it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from mlplan.data import Engine, check_engine
from mlplan.errors import DeploymentNotFoundError, ParameterError
from mlplan.modeling import ModelInfo, NumericReference, list_models
from mlplan.monitoring._families import (
    Model,
    WindowSample,
    business_family,
    input_family,
    ml_families,
    output_family,
    read_sample,
)
from mlplan.monitoring._read import LogSubject, answered_records, health_rows, software_rows
from mlplan.monitoring._records import model_classes
from mlplan.monitoring._watch import Watched, drift_of, estimated_of, watched_of
from mlplan.monitoring._windows_ray import measure_on_ray
from mlplan.plan import MonitoringSpec
from mlplan.store import MonitorWindowRecord, utcnow
from mlplan.workspace import Workspace, list_deployments, parse_duration

__all__ = [
    "FAMILIES",
    "MEASURED",
    "WHOLE",
    "MonitorResult",
    "MonitorWindow",
    "measure_span",
    "monitor",
    "stored_windows",
    "window_bounds",
]

FAMILIES = ("software", "input", "output", "ml", "business")
"""The families measured per window, each a section of the plan's monitoring rules; a
classifier's windows, with a training reference, hold ``estimated`` too (the ML metrics
before labels)."""
MEASURED = ("software", "input", "output", "ml", "estimated", "business")
"""Every family ``monitor`` can measure (``estimated``: a classifier's, with a training
reference)."""
WHOLE = "all"
"""The slice value of every record of a window."""
_DEFAULT_WINDOWS = 24
_MAX_WINDOWS = 10_000


@dataclass(frozen=True)
class MonitorWindow:
    """One family of one window: the records of ``model`` at ``version`` (its package's
    hash's first 12 hex) in ``[start, end)`` within the slice value ``slice`` (``all``: every
    record), its metrics, and how many samples they rest on (requests for the software and
    business families, records for input and output, labelled records for ML)."""

    start: dt.datetime
    end: dt.datetime
    model: str
    version: str
    slice: str
    family: str
    metrics: Mapping[str, Any]
    samples: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "model": self.model,
            "version": self.version,
            "slice": self.slice,
            "family": self.family,
            "samples": self.samples,
            "metrics": dict(self.metrics),
        }


@dataclass(frozen=True)
class MonitorResult:
    """What ``mlplan monitor`` measured: whose records (a deployment's, or a model's whole
    log), the window length and bounds, every window's families, and notes on what could not
    be measured and what to do about it."""

    deployment: str | None
    model: str | None
    window: str
    since: dt.datetime
    until: dt.datetime
    windows: tuple[MonitorWindow, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def subject(self) -> str:
        """``deployment NAME`` or ``model NAME``."""
        if self.deployment is not None:
            return f"deployment {self.deployment}"
        return f"model {self.model}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "deployment": self.deployment,
            "model": self.model,
            "window": self.window,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "windows": [w.to_dict() for w in self.windows],
            "notes": list(self.notes),
        }


def window_bounds(
    window: str,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> tuple[float, dt.datetime, dt.datetime]:
    """The window's length in seconds and the whole windows' bounds (see the module's notes).

    Raises
    ------
    ParameterError
        A window that is not a duration (``90s``, ``30m``, ``1h``, ``1d``) or not positive;
        ``since`` not before ``until``; more than 10,000 windows.

    Examples
    --------
    >>> utc = dt.timezone.utc
    >>> seconds, start, end = window_bounds(
    ...     "1h", since=dt.datetime(2026, 12, 1, 10, 30, tzinfo=utc),
    ...     until=dt.datetime(2026, 12, 1, 12, 5, tzinfo=utc))
    >>> seconds, start.isoformat(), end.isoformat()
    (3600.0, '2026-12-01T10:00:00+00:00', '2026-12-01T13:00:00+00:00')
    """
    seconds = parse_duration(window, param="window").total_seconds()
    if seconds <= 0:
        raise ParameterError("window", f"{{param}} must be longer than 0; got {window!r}")
    end = _utc(until) if until is not None else _utc(now or utcnow())
    start = (
        _utc(since) if since is not None else end - _DEFAULT_WINDOWS * dt.timedelta(seconds=seconds)
    )
    if start >= end:
        raise ParameterError(
            "since",
            f"{{param}} {start.isoformat()} is not before until {end.isoformat()}; "
            "give an earlier {param} or a later until",
        )
    first = math.floor(start.timestamp() / seconds)
    last = math.ceil(end.timestamp() / seconds)
    if last - first > _MAX_WINDOWS:
        raise ParameterError(
            "window",
            f"{{param}} {window} cuts {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} into "
            f"{last - first} windows, more than {_MAX_WINDOWS}; give a longer {{param}} "
            "or a shorter span",
        )
    return seconds, _at(first * seconds), _at(last * seconds)


def monitor(
    ws: Workspace,
    name: str | None = None,
    *,
    window: str = "1h",
    since: dt.datetime | str | None = None,
    until: dt.datetime | str | None = None,
    store: bool = True,
    now: dt.datetime | None = None,
    families: Sequence[str] | None = None,
    engine: Engine = "local",
) -> MonitorResult:
    """Measure the deployment ``name`` (default: ``production``, else the only deployment)
    or the model ``name`` (every record of its log) window by window, and store the windows
    (``store``; a ``monitor`` run), replacing any computed before with the same bounds.

    ``since`` and ``until`` are times (text: ISO 8601, UTC unless it says otherwise) or, as
    text, durations before now (``2h``). Each package version that answered is held against
    its own training reference (read once per call; its calibration fitted once); one
    without gets a note saying what to do, and its windows are measured without drift or
    estimate. ``now`` (default: the clock's) is what durations count back from and what the
    window under way is measured up to (its throughput over the time it has run).

    ``families`` (default: every one, :data:`MEASURED`) measures only those: the ML metrics
    alone read of each record only its answer, its label and the fields the plan's slices
    use. Stored, they replace only the same families of the same windows.

    ``engine="ray"`` measures each window's row families (input, output, ML, estimated,
    business) in a Ray task of its own (:func:`measure_on_ray`), the windows in parallel,
    with the same results; the software family, one DuckDB query over the span, stays here.

    Raises
    ------
    DeploymentNotFoundError
        ``name`` is neither a deployment nor a model (listing both).
    ParameterError
        A malformed window, ``since`` not before ``until``, a family that is not one, or an
        engine other than local or ray.
    DataError
        A log the query cannot read.
    MissingExtraError
        ``engine="ray"`` without Ray installed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from mlplan.plan import render_plan
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "mlplan.yaml").write_text(render_plan("churn", task="binary", target="y"))
    >>> monitor(Workspace(root, store_url="sqlite://"), "production")
    Traceback (most recent call last):
    ...
    mlplan.errors.DeploymentNotFoundError: no deployment or model 'production'; ...
    """
    check_engine(engine)
    now = utcnow() if now is None else _utc(now)
    wanted = _wanted(families)
    subject = _subject(ws, name)
    seconds, start, end = window_bounds(
        window,
        since=_moment(since, "since", now),
        until=_moment(until, "until", now),
        now=now,
    )
    notes: list[str] = []
    software = software_rows(
        ws,
        subject,
        since=start,
        until=end,
        seconds=seconds,
        volume=bool(wanted & {"software", "input"}),
    )
    if not software:
        notes.append(
            f"no predictions in {ws.relative(subject.folder(ws))} for {_described(subject)} "
            f"from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC; "
            + (
                f"serve it (mlplan serve --deployment {subject.deployment}) and send requests, "
                if subject.deployment is not None
                else f"serve it (mlplan serve {subject.model}) and send requests, "
            )
            + "or give an earlier --since"
        )
        return MonitorResult(
            subject.deployment, subject.model, window, start, end, (), tuple(notes)
        )
    health = {
        (int(r["bucket"]), r["model"], r["version"]): r
        for r in health_rows(ws, subject, since=start, until=end, seconds=seconds)
    }
    if not health and "software" in wanted:
        notes.append(
            "software: no health records, so no CPU, memory, queue depth or batch sizes; "
            "serve with mlplan serve --health-every 10 to log them"
        )
    models = list_models(ws, versions=True)
    watching: dict[tuple[str, str], Watched] = {}
    parts: list[list[MonitorWindow]] = []  # in the order the windows are listed
    on_ray: list[tuple[int, tuple[Any, ...]]] = []  # (the part it fills, what it measures)
    for bucket in sorted({int(r["bucket"]) for r in software}):
        w_start, w_end = _at(bucket * seconds), _at((bucket + 1) * seconds)
        elapsed = (min(w_end, now) - w_start).total_seconds()
        for row in (r for r in software if int(r["bucket"]) == bucket):
            found = health.get((bucket, row["model"], row["version"]))
            if "software" in wanted:
                parts.append([_software(row, found, w_start, w_end, elapsed)])
            if not wanted - {"software"}:
                continue
            model = _model_of(ws, models, row["model"], row["version"])
            key = (row["model"], row["version"])
            if key not in watching:
                watching[key] = _watched(ws, models, model, *key, wanted)
                notes += watching[key].notes
            job = (subject, w_start, w_end, row, model, watching[key], wanted)
            if engine == "ray":
                on_ray.append((len(parts), job))
                parts.append([])
            else:
                parts.append(_row_families(ws, *job))
    if on_ray:
        measured = measure_on_ray(ws, _row_families, [job for _, job in on_ray])
        for (at, _), found_windows in zip(on_ray, measured, strict=True):
            parts[at] = found_windows
    windows = [w for part in parts for w in part]
    if store:
        parameters = {
            "deployment": subject.deployment,
            "model": subject.model,
            "window": window,
            "since": start.isoformat(),
            "until": end.isoformat(),
            "families": sorted(wanted),
            "references": sorted(
                f"{m} ({v})" for (m, v), w in watching.items() if w.reference is not None
            ),
        }
        answering = sorted({(w.model, w.version) for w in windows})
        packages = [(n, v, _package(models, n, v)) for n, v in answering]
        read = [
            (p.ref, p.package_sha256) if p is not None else (f"{n} ({v})", None)
            for n, v, p in packages
        ]
        _store(ws, subject, windows, parameters, read, wanted)
    return MonitorResult(
        subject.deployment, subject.model, window, start, end, tuple(windows), tuple(notes)
    )


def measure_span(
    ws: Workspace,
    deployment: str,
    *,
    model: str,
    version: str,
    since: dt.datetime,
    until: dt.datetime,
    families: Sequence[str] | None = None,
) -> list[MonitorWindow]:
    """The families (``families``, default every one) of one package version's records in
    the deployment's log over ``[since, until)``, measured as ``monitor`` measures a window,
    for every record and each slice value: one span, neither aligned on the epoch nor
    stored (the rollout analysis judges a step's window with it). ``version`` is the
    package's hash's first 12 hex, as the log names it. No record: no window.

    Raises
    ------
    ParameterError
        ``since`` not before ``until``, or a family that is not one.
    DataError
        A log the query cannot read.
    """
    wanted = _wanted(families)
    start, end = _utc(since), _utc(until)
    if start >= end:
        raise ParameterError(
            "since", f"{{param}} {start.isoformat()} is not before until {end.isoformat()}"
        )
    subject = LogSubject(deployment, None)
    # One bucket longer than the epoch's age at ``until``: the span is one window.
    seconds = float(math.floor(end.timestamp()) + 1)
    rows = software_rows(
        ws,
        subject,
        since=start,
        until=end,
        seconds=seconds,
        volume=bool(wanted & {"software", "input"}),
    )
    row = next((r for r in rows if (r["model"], r["version"]) == (model, version)), None)
    if row is None:
        return []
    windows: list[MonitorWindow] = []
    if "software" in wanted:
        health = next(
            (
                h
                for h in health_rows(ws, subject, since=start, until=end, seconds=seconds)
                if (h["model"], h["version"]) == (model, version)
            ),
            None,
        )
        windows.append(_software(row, health, start, end, (end - start).total_seconds()))
    if not wanted - {"software"}:
        return windows
    models = list_models(ws, versions=True)
    measured = _model_of(ws, models, model, version)
    watched = _watched(ws, models, measured, model, version, wanted)
    return windows + _row_families(ws, subject, start, end, row, measured, watched, wanted)


def _watched(
    ws: Workspace,
    models: Sequence[ModelInfo],
    model: Model,
    name: str,
    version: str,
    wanted: frozenset[str],
) -> Watched:
    """What a package version is held against, read only for the families that need its
    training reference (input, output, estimated)."""
    if not wanted & {"input", "output", "estimated"}:
        return Watched(None)
    return watched_of(ws, _package(models, name, version), model, name, version)


def _row_families(
    ws: Workspace,
    subject: LogSubject,
    start: dt.datetime,
    end: dt.datetime,
    software: Mapping[str, Any],
    model: Model,
    watched: Watched,
    wanted: frozenset[str],
) -> list[MonitorWindow]:
    """The row families ``wanted`` of the version ``software`` names, over its answered
    records of ``[start, end)``: read (only the slices' fields unless the input family is
    wanted), then measured."""
    specs = list(ws.plan.slices)
    with answered_records(
        ws,
        subject,
        since=start,
        until=end,
        model=software["model"],
        version=software["version"],
        classes=model.classes,
        known=_known(watched),
        only=None if "input" in wanted else _slice_columns(specs),
    ) as logged:
        sample = read_sample(logged, model, specs)
    return _families(sample, model, watched, ws.plan.monitoring, start, end, software, wanted)


def _wanted(families: Sequence[str] | None) -> frozenset[str]:
    """The families to measure (every one when none is named).

    Raises
    ------
    ParameterError
        A name that is not a family.
    """
    if not families:
        return frozenset(MEASURED)
    unknown = sorted(set(families) - set(MEASURED))
    if unknown:
        raise ParameterError(
            "family",
            f"{{param}} {', '.join(unknown)} is not a family; the families are "
            f"{', '.join(MEASURED)}",
        )
    return frozenset(families)


def _slice_columns(specs: Sequence[Any]) -> list[str]:
    """The input fields the plan's slices read."""
    return sorted({c for spec in specs for c in spec.referenced_columns})


def _known(watched: Watched) -> dict[str, str]:
    """The inputs the training reference knows: name → ``number`` or ``category``."""
    if watched.reference is None:
        return {}
    return {
        name: "number" if isinstance(ref, NumericReference) else "category"
        for name, ref in watched.reference.inputs.items()
    }


def _moment(given: dt.datetime | str | None, param: str, now: dt.datetime) -> dt.datetime | None:
    """A time given as a time, as ISO 8601 text, or as a duration before ``now``."""
    if given is None or isinstance(given, dt.datetime):
        return given
    try:
        return now - parse_duration(given, param=param)
    except ParameterError:
        pass
    try:
        return _utc(dt.datetime.fromisoformat(given.strip()))
    except ValueError:
        raise ParameterError(
            param,
            f"{{param}} takes a time (ISO 8601, e.g. 2026-12-01T10:00, UTC unless it says "
            f"otherwise) or a duration before now (e.g. 2h, 7d); got {given!r}",
        ) from None


def _described(subject: LogSubject) -> str:
    if subject.deployment is not None:
        return f"deployment {subject.deployment}"
    return f"model {subject.model}"


def _subject(ws: Workspace, name: str | None) -> LogSubject:
    """Whose records ``name`` means: a deployment's, else a model's (a model's ``@version``
    is ignored: the log names versions by hash and every one is measured)."""
    deployments = [d.name for d in list_deployments(ws)]
    if name is None:
        if "production" in deployments or len(deployments) != 1:
            name = "production"
        else:
            name = deployments[0]
    if name in deployments:
        return LogSubject(name, None)
    wanted = name.split("@", 1)[0]
    models = sorted({m.name for m in list_models(ws)})
    if wanted in models:
        return LogSubject(None, wanted)
    raise DeploymentNotFoundError(
        f"no deployment or model {name!r}; deployments: {', '.join(deployments) or 'none'}; "
        f"models: {', '.join(models) or 'none'} (deploy one with mlplan deploy MODEL)"
    )


def _package(models: Sequence[ModelInfo], name: str, version: str) -> ModelInfo | None:
    """The stored package version that answered (by its logged hash), if any."""
    for info in models:
        if info.name == name and info.package_sha256[:12] == version:
            return info
    return None


def _model_of(ws: Workspace, models: Sequence[ModelInfo], name: str, version: str) -> Model:
    """What the families need of the package that answered (by its logged hash)."""
    classes: list[str] = []
    found = _package(models, name, version)
    if found is not None:
        classes = model_classes(ws, found)
    else:
        for info in sorted(models, key=lambda m: -m.version):  # a package no longer stored
            if info.name == name:
                classes = model_classes(ws, info)
                break
    plan = ws.plan
    kind = "regression" if not classes else ("binary" if len(classes) == 2 else "multiclass")
    positive = plan.positive_class if plan.positive_class in classes else None
    if positive is None and kind == "binary":
        positive = classes[1]
    return Model(
        kind,  # type: ignore[arg-type]
        tuple(classes),
        positive,
        tuple(m.name for m in plan.metrics.ml),
        tuple(m.name for m in plan.metrics.business),
    )


def _software(
    row: Mapping[str, Any],
    health: Mapping[str, Any] | None,
    start: dt.datetime,
    end: dt.datetime,
    elapsed: float,
) -> MonitorWindow:
    requests = int(row["requests"])
    p50, p90, p99 = row["latency_ms"] or (None, None, None)
    statuses = {str(k): int(v) for k, v in sorted(_pairs(row["statuses"]))}
    metrics = {
        "requests": requests,
        "throughput_rps": requests / elapsed if elapsed > 0 else None,
        "latency_p50_ms": p50,
        "latency_p90_ms": p90,
        "latency_p99_ms": p99,
        "error_rate": int(row["errors"]) / requests,
        "client_error_rate": int(row["client_errors"]) / requests,
        "server_error_rate": int(row["server_errors"]) / requests,
        "statuses": statuses,
        "rows_per_request": row.get("rows_per_request"),
        "bytes_per_request": row.get("bytes_per_request"),
    }
    if health is not None:  # the servers' own records (mlplan serve --health-every)
        metrics |= {k: v for k, v in health.items() if k not in ("model", "version", "bucket")}
    return MonitorWindow(
        start, end, row["model"], row["version"], WHOLE, "software", metrics, requests
    )


def _pairs(value: Any) -> Iterator[tuple[Any, Any]]:
    """A DuckDB map as Arrow hands it over: pairs, or a dict."""
    if isinstance(value, dict):
        yield from value.items()
    else:
        yield from value or []


def _families(
    sample: WindowSample,
    model: Model,
    watched: Watched,
    monitoring: MonitoringSpec,
    start: dt.datetime,
    end: dt.datetime,
    software: Mapping[str, Any],
    wanted: frozenset[str] = frozenset(MEASURED),
) -> list[MonitorWindow]:
    """The row families of one window and version (those ``wanted``), for every record and
    each slice value."""
    groups: list[tuple[str, np.ndarray]] = [(WHOLE, np.arange(sample.rows))]
    for values in sample.slices.values():
        groups += list(values.items())
    out = []
    ml_by_group = (
        ml_families(sample, groups, model)
        if wanted & {"ml", "estimated"}
        else [{"labelled": 0, "metrics": {}} for _ in groups]
    )
    for (value, rows), ml in zip(groups, ml_by_group, strict=True):
        inputs = input_family(sample, rows, watched.limits) if "input" in wanted else {}
        if value == WHOLE and "input" in wanted:  # the request's own volume, from the query
            inputs["bytes_per_request"] = software["bytes_per_request"]
            inputs["rows_per_request"] = software["rows_per_request"]
        outputs = output_family(sample, rows, model) if "output" in wanted else {}
        business = business_family(sample, rows, model) if "business" in wanted else {}
        # Drift over every record only: a slice's values against the whole training
        # reference would show the slice, not a drift (gender=female "drifts" on gender).
        measure_drift = value == WHOLE and wanted & {"input", "output"}
        drift = drift_of(sample, rows, model, watched, monitoring) if measure_drift else None
        if isinstance(drift, str):
            inputs["drift_note"] = drift
        elif drift is not None:
            inputs["drift"] = {
                "drifted": [d.feature for d in drift.features if d.drifted],
                "features": {d.feature: d.to_dict() for d in drift.features},
                "absent": list(drift.absent),
            }
            outputs["drift"] = {
                "drifted": [d.feature for d in drift.outputs if d.drifted],
                "outputs": {d.feature: d.to_dict() for d in drift.outputs},
            }
        realised = ml["metrics"] if ml["labelled"] else None
        estimated = (
            estimated_of(sample, rows, model, watched, realised) if "estimated" in wanted else None
        )
        found = [
            ("input", inputs, len(rows)),
            ("output", outputs, len(rows)),
            ("ml", ml, int(ml["labelled"])),
            (
                "business",
                business,
                int(business.get("metrics", {}).get("value", {}).get("count", 0)),
            ),
        ]
        if estimated is not None:
            estimated["labelled"] = int(ml["labelled"])
            found.insert(3, ("estimated", estimated, int(estimated["rows"])))
        out += [
            MonitorWindow(start, end, software["model"], software["version"], value, f, m, n)
            for f, m, n in found
            if f in wanted
        ]
    return out


def _store(
    ws: Workspace,
    subject: LogSubject,
    windows: Sequence[MonitorWindow],
    parameters: Mapping[str, Any],
    models: Sequence[tuple[str, str | None]],
    wanted: frozenset[str],
) -> None:
    """Record a ``monitor`` run and write the windows, each replacing the rows of the same
    deployment (or model's whole log), model, version, bounds and family (of those
    ``wanted``), in one transaction."""
    with ws.write() as session, ws.record("monitor", parameters, session=session) as run:
        if subject.deployment is not None:
            run.input("deployment", subject.deployment)
        for ref, sha256 in models:
            run.input("model", ref, sha256=sha256)
        project = ws.project_id(session)
        same = sa.and_(
            MonitorWindowRecord.project_id == project,
            MonitorWindowRecord.deployment.is_(None)
            if subject.deployment is None
            else MonitorWindowRecord.deployment == subject.deployment,
        )
        for key in sorted({(w.model, w.version, w.start, w.end) for w in windows}):
            session.execute(
                sa.delete(MonitorWindowRecord).where(
                    same,
                    MonitorWindowRecord.family.in_(sorted(wanted)),
                    MonitorWindowRecord.model == key[0],
                    MonitorWindowRecord.version == key[1],
                    MonitorWindowRecord.window_start == key[2],
                    MonitorWindowRecord.window_end == key[3],
                )
            )
        session.add_all(
            MonitorWindowRecord(
                project_id=project,
                deployment=subject.deployment,
                model=w.model,
                version=w.version,
                window_start=w.start,
                window_end=w.end,
                slice=w.slice,
                family=w.family,
                metrics=dict(w.metrics),
                samples=w.samples,
                run_id=run.id,
            )
            for w in windows
        )


def stored_windows(
    ws: Workspace,
    *,
    deployment: str | None = None,
    family: str | None = None,
    slice: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int | None = None,
) -> list[MonitorWindow]:
    """The stored windows, oldest first (``deployment``, ``family``, ``slice``: only those
    of that deployment, family, slice value — ``all``: every record's; ``since``:
    those starting at or after it; ``until``: those starting before it; ``limit``: of
    those, only the newest ``limit`` windows, counted by start time, each with all its
    slice values asked for and versions). The store filters and limits, so a page of the newest
    windows costs the same however many are stored.

    Raises
    ------
    ParameterError
        A ``limit`` below 1.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from mlplan.plan import render_plan
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "mlplan.yaml").write_text(render_plan("churn", task="binary", target="y"))
    >>> stored_windows(Workspace(root, store_url="sqlite://"), family="software", limit=200)
    []
    """
    if limit is not None and limit < 1:
        raise ParameterError("limit", f"{{param}} must be at least 1; got {limit}")
    query = ws.select(MonitorWindowRecord)
    if deployment is not None:
        query = query.where(MonitorWindowRecord.deployment == deployment)
    if family is not None:
        query = query.where(MonitorWindowRecord.family == family)
    if slice is not None:
        query = query.where(MonitorWindowRecord.slice == slice)
    if since is not None:
        query = query.where(MonitorWindowRecord.window_start >= _utc(since))
    if until is not None:
        query = query.where(MonitorWindowRecord.window_start < _utc(until))
    if limit is not None:
        newest = (
            query.with_only_columns(MonitorWindowRecord.window_start)
            .distinct()
            .order_by(MonitorWindowRecord.window_start.desc())
            .limit(limit)
        )
        query = query.where(MonitorWindowRecord.window_start.in_(newest.scalar_subquery()))
    columns = (
        MonitorWindowRecord.window_start,
        MonitorWindowRecord.window_end,
        MonitorWindowRecord.model,
        MonitorWindowRecord.version,
        MonitorWindowRecord.slice,
        MonitorWindowRecord.family,
        MonitorWindowRecord.metrics,
        MonitorWindowRecord.samples,
    )  # rows, not ORM objects: a page of windows is read in half the time
    query = query.with_only_columns(*columns).order_by(
        MonitorWindowRecord.window_start, MonitorWindowRecord.id
    )
    with ws.store.transaction() as session:
        return [
            MonitorWindow(_utc(start), _utc(end), model, version, value, family, metrics, samples)
            for start, end, model, version, value, family, metrics, samples in session.execute(
                query
            )
        ]


def _at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _utc(moment: dt.datetime) -> dt.datetime:
    """A time in UTC (a naive one is taken as UTC, as the store writes them)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)
