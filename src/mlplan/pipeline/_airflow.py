"""``mlplan pipeline export --format airflow``: the plan's pipeline as an Apache Airflow DAG.

The DAG file has one task per step (:data:`~mlplan.pipeline.STEPS`), each a ``BashOperator``
that runs its step alone (``mlplan run STEP --only --trigger schedule --scheduler airflow
--scheduler-run DAG_ID/RUN_ID``), so every task of one DAG run records its step under one
pipeline run, which the ``deploy`` task completes. The plan's ``pipeline:`` section gives the
schedule, the retries and their delay.

The file is made from :data:`_TEMPLATE`, every value written as a Python literal (``repr``),
never pasted into code. It imports nothing of mlplan (Airflow's own interpreter parses it);
the shell command of a task is joined by ``shlex`` when Airflow parses the file and kept from
Jinja (``airflow.sdk.literal``), so a project folder holding quotes, spaces or braces runs as
it is; the scheduler's run id reaches the command through the environment, never through
the shell's parsing.

A store URL is written only when it is given or set in ``$MLPLAN_STORE_URL``; one that holds
a password is refused, as the DAGs folder is read by every Airflow component and often kept
in version control: give the URL without it and the password to the workers
(``PGPASSWORD``, ``~/.pgpass``), or no URL and ``MLPLAN_STORE_URL`` in the workers'
environment, which the tasks inherit.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, Literal, get_args

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from mlplan._version import __version__
from mlplan.errors import ParameterError, UsageError
from mlplan.pipeline._steps import STEPS
from mlplan.store import STORE_URL_ENV
from mlplan.workspace import Workspace, write_atomic

__all__ = ["PIPELINE_EXPORT_FORMATS", "PipelineExport", "PipelineExportFormat", "export_pipeline"]

PipelineExportFormat = Literal["airflow"]
PIPELINE_EXPORT_FORMATS: tuple[PipelineExportFormat, ...] = get_args(PipelineExportFormat)

_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_TEMPLATE = Template('''\
# Written by `mlplan pipeline export --format airflow` (mlplan $version) from the plan of the
# project below: export it again after the plan's pipeline section changes (edits are lost).
"""An mlplan project's pipeline as an Airflow DAG: one task per step of `mlplan run`.

Each task runs its step alone (`mlplan run STEP --only`), reusing what the steps before it
made, and records it under one pipeline run per DAG run of the project's store: the `deploy`
task completes it, a failed step marks it failed, a retried task opens it again. This file
imports nothing of mlplan: the tasks run the mlplan below, with its own Python.
"""

from __future__ import annotations

import shlex
from datetime import datetime, timedelta, timezone

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, literal

# -- configuration, as exported -----------------------------------------------------------
PROJECT = $project  # the project folder
MLPLAN = $mlplan  # the mlplan that exported this file
# None: the workers' own $$MLPLAN_STORE_URL when set, else the project's SQLite store.
STORE_URL = $store_url
DAG_ID = $dag_id
SCHEDULE = $schedule  # the plan's pipeline.schedule; None: only when triggered
RETRIES = $retries
RETRY_DELAY = timedelta(seconds=$retry_delay)
TAGS = $tags
STEPS = $steps  # each step and the steps it needs, in order
# -------------------------------------------------------------------------------------------


def _command(step: str) -> str:
    """A step's shell command: every word quoted; the scheduler's run id comes through the
    environment, so that no value passes through the shell's parsing nor through Jinja."""
    words = [*MLPLAN, "run", step, "--only", "--trigger", "schedule", "--scheduler", "airflow"]
    words += ["--project", PROJECT]
    return shlex.join(words) + ' --scheduler-run "$$MLPLAN_SCHEDULER_RUN"'


def _env() -> dict[str, object]:
    env: dict[str, object] = {"MLPLAN_SCHEDULER_RUN": "{{ dag.dag_id }}/{{ run_id }}"}
    if STORE_URL is not None:
        env["MLPLAN_STORE_URL"] = literal(STORE_URL)
    return env


with DAG(
    dag_id=DAG_ID,
    schedule=SCHEDULE,
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,  # one pipeline run at a time: two would train and roll out twice
    tags=TAGS,
    default_args={"retries": RETRIES, "retry_delay": RETRY_DELAY},
    doc_md=__doc__,
) as dag:
    tasks = {}
    for step, needs in STEPS.items():
        tasks[step] = BashOperator(
            task_id=step,
            bash_command=literal(_command(step)),
            env=_env(),
            append_env=True,  # and the worker's environment: PATH, MLPLAN_STORE_URL ...
            skip_on_exit_code=None,  # a failed step fails its task, never skips it
        )
        for need in needs:
            tasks[need] >> tasks[step]
''')


@dataclass(frozen=True)
class PipelineExport:
    """A pipeline exported for a scheduler: the file written, the DAG's id, the plan's
    schedule (None: runs only when triggered), whether a store URL was written, and notes
    for the person who exported it."""

    path: Path
    format: PipelineExportFormat
    dag_id: str
    schedule: str | None
    store_url: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "path": str(self.path),
            "format": self.format,
            "dag_id": self.dag_id,
            "schedule": self.schedule,
            "store_url": self.store_url,
            "notes": list(self.notes),
        }


def export_pipeline(
    ws: Workspace,
    format: PipelineExportFormat = "airflow",
    *,
    out: str | Path | None = None,
    store_url: str | None = None,
    mlplan: Sequence[str] | None = None,
) -> PipelineExport:
    """Write the plan's pipeline as a scheduler's DAG file (``format``: ``airflow``).

    One task per step, each after the steps it needs, runs ``mlplan run STEP --only`` for the
    project at ``ws.root``; the plan's ``pipeline.schedule`` (None: the DAG runs only when
    triggered), ``pipeline.retries`` and ``pipeline.retry_delay`` are the DAG's. The file is
    written atomically to ``out`` (default: ``dags/<project>_pipeline.py`` in the project);
    exporting the same plan again writes the same bytes.

    ``store_url``: the store the tasks record in (default: ``$MLPLAN_STORE_URL`` when set;
    else none is written, and the tasks use their environment's, or the project's SQLite
    store). ``mlplan``: the command that runs mlplan on Airflow's workers (default: this
    Python, ``-m mlplan``).

    Raises
    ------
    ParameterError
        An unknown ``format``; a ``store_url`` that is not a database URL or holds a password.
    UsageError
        ``$MLPLAN_STORE_URL`` holds a password.

    Examples
    --------
    >>> import tempfile
    >>> ws = Workspace.create(tempfile.mkdtemp(), "churn", task="binary", target="churned")
    >>> export = export_pipeline(ws, mlplan=["mlplan"])
    >>> export.path.relative_to(ws.root).as_posix(), export.dag_id, export.schedule
    ('dags/churn_pipeline.py', 'churn_pipeline', None)
    """
    if format not in PIPELINE_EXPORT_FORMATS:
        raise ParameterError(
            "format",
            f"{{param}} must be one of {', '.join(PIPELINE_EXPORT_FORMATS)}; got {format!r}",
        )
    url = _store_url(store_url)
    spec = ws.plan.pipeline
    dag_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", ws.plan.project.name).strip("_.-") or "mlplan"
    dag_id = f"{dag_id}_pipeline"
    command = list(mlplan) if mlplan is not None else [_python(), "-m", "mlplan"]
    if not command or not all(isinstance(word, str) and word for word in command):
        raise ParameterError("mlplan", f"{{param}} must be a command's words; got {mlplan!r}")
    text = _TEMPLATE.substitute(
        version=__version__,
        project=repr(str(ws.root)),
        mlplan=repr(command),
        store_url=repr(url),
        dag_id=repr(dag_id),
        schedule=repr(spec.schedule),
        retries=repr(spec.retries),
        retry_delay=repr(_seconds(spec.retry_delay)),
        tags=repr(["mlplan", ws.plan.project.name]),
        steps="{\n" + "".join(f"    {s.name!r}: {list(s.needs)!r},\n" for s in STEPS) + "}",
    )
    path = Path(out) if out is not None else ws.root / "dags" / f"{dag_id}.py"
    write_atomic(path, text)
    notes = []
    if spec.schedule is None:
        notes.append(
            "the plan has no pipeline.schedule: the DAG has schedule=None and runs only when "
            f"triggered (airflow dags trigger {dag_id}); set pipeline.schedule in the plan "
            "(e.g. '@daily' or '0 3 * * *') and export again to schedule it"
        )
    if url is None:
        notes.append(
            "no store URL written: the tasks use $MLPLAN_STORE_URL where Airflow runs them, "
            f"else the project's own store in {ws.root / '.mlplan'}"
        )
    return PipelineExport(path, format, dag_id, spec.schedule, url is not None, notes)


def _python() -> str:
    """This interpreter's absolute path, unresolved (a virtualenv's python is a link)."""
    return str(Path(sys.executable).absolute()) if sys.executable else "python3"


def _seconds(duration: str) -> int:
    """A plan's duration (``90s``, ``5m``, ``1h``, ``1d``) in seconds."""
    return int(duration[:-1]) * _SECONDS[duration[-1]]


def _store_url(given: str | None) -> str | None:
    """The store URL to write: ``given``, else ``$MLPLAN_STORE_URL``; never one with a
    password."""
    url = given or os.environ.get(STORE_URL_ENV) or None
    if url is None:
        return None
    where = "{param}" if given else f"${STORE_URL_ENV}"
    try:
        parsed = make_url(url)
    except ArgumentError:
        message = f"{where} is not a database URL (e.g. postgresql://mlplan@db:5432/mlplan)"
        if given:
            raise ParameterError("store_url", message) from None
        raise UsageError(message) from None
    if parsed.password is None and "password" not in parsed.query:
        return url
    message = (
        f"{where} holds a password, which the DAG file would keep in plain text for anyone "
        "who reads the DAGs folder: give the URL without it (e.g. "
        f"{_without_password(parsed)!r}) and the password to Airflow's workers in "
        "PGPASSWORD or ~/.pgpass, or export with no store URL"
        + ("" if given else f" (${STORE_URL_ENV} unset)")
        + f" and set ${STORE_URL_ENV} in the workers' environment: the tasks inherit it"
    )
    if given:
        raise ParameterError("store_url", message)
    raise UsageError(message)


def _without_password(url: URL) -> str:
    """``url`` as text, without its password (``URL.set(password=None)`` keeps it)."""
    query = {k: v for k, v in url.query.items() if k != "password"}
    plain = URL.create(url.drivername, url.username, None, url.host, url.port, url.database, query)
    return plain.render_as_string(hide_password=False)
