"""``mlplan pipeline export --format airflow``: a DAG file of plain Python that carries the
plan's schedule and retries, quotes what it holds, and runs the pipeline under a real
Apache Airflow 3 (``airflow dags test``, from ``build/airflow-venv``: scripts/airflow-venv.sh)."""

from __future__ import annotations

import ast
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import strict_json
from tests.pipeline.conftest import approve_model, quick_plan

import mlplan
from mlplan.checklist import status
from mlplan.errors import ParameterError, UsageError
from mlplan.pipeline import PIPELINE_JOB, STEPS, export_pipeline, run_pipeline, step_job
from mlplan.store import RunRecord
from mlplan.workspace import Workspace, deployment_route

AIRFLOW_VENV = Path(__file__).resolve().parents[2] / "build" / "airflow-venv"
ODD = 'it\'s a "project" {{ ds }} $HOME'  # quotes, spaces, Jinja and a shell variable


def _values(text: str) -> dict[str, Any]:
    """The DAG file's configuration: its module-level constants, read as literals."""
    found: dict[str, Any] = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if isinstance(node.value, ast.Call):  # RETRY_DELAY = timedelta(seconds=N)
                assert ast.unparse(node.value.func) == "timedelta", name
                found[name] = {k.arg: ast.literal_eval(k.value) for k in node.value.keywords}
            else:
                found[name] = ast.literal_eval(node.value)
    return found


def _command(text: str, step: str) -> list[str]:
    """The words of a step's shell command, as the DAG file builds it when Airflow parses it
    (its constants and ``_command``, run without Airflow)."""
    tree = ast.parse(text)
    kept = [
        n
        for n in tree.body
        if (isinstance(n, ast.Assign) and not isinstance(n.value, ast.Call))
        or (isinstance(n, ast.FunctionDef) and n.name == "_command")
    ]
    space: dict[str, Any] = {"shlex": shlex}
    exec(compile(ast.Module(body=kept, type_ignores=[]), "dag", "exec"), space)
    return shlex.split(space["_command"](step))


@pytest.fixture
def scheduled(tmp_path: Path) -> Workspace:
    """A project (with no data: the export reads only the plan) in a folder named oddly,
    whose plan runs the pipeline at 03:00 with 3 retries 90 s apart."""
    ws = Workspace.create(tmp_path / ODD, "churn", task="binary", target="churned")
    text = ws.plan_path.read_text()
    for old, new in [
        ("  schedule: null", "  schedule: '0 3 * * *'"),
        ("  retries: 1", "  retries: 3"),
        ("  retry_delay: 5m", "  retry_delay: 90s"),
    ]:
        assert old in text, old
        text = text.replace(old, new, 1)
    ws.plan_path.write_text(text)
    return Workspace(ws.root)


def test_the_dag_file_is_plain_python_with_the_plans_schedule_retries_and_steps(
    scheduled: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLPLAN_STORE_URL", raising=False)
    export = export_pipeline(scheduled)
    assert export.path == scheduled.root / "dags" / "churn_pipeline.py"
    assert (export.dag_id, export.schedule, export.store_url) == (
        "churn_pipeline",
        "0 3 * * *",
        False,
    )
    text = export.path.read_text()
    compile(text, str(export.path), "exec")
    imported = {
        (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]  # type: ignore[union-attr]
        for n in ast.walk(ast.parse(text))
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert imported == {"__future__", "shlex", "datetime", "airflow"}  # nothing of mlplan
    assert "from airflow.providers.standard.operators.bash import BashOperator" in text
    assert "catchup=False" in text
    values = _values(text)
    assert values["PROJECT"] == str(scheduled.root) and ODD in values["PROJECT"]
    assert values["MLPLAN"] == [str(Path(sys.executable).absolute()), "-m", "mlplan"]
    assert values["STORE_URL"] is None
    assert (values["DAG_ID"], values["SCHEDULE"], values["RETRIES"]) == (
        "churn_pipeline",
        "0 3 * * *",
        3,
    )
    assert values["RETRY_DELAY"] == {"seconds": 90}
    assert values["STEPS"] == {s.name: list(s.needs) for s in STEPS}
    # The project folder reaches mlplan as one word, whatever it holds.
    assert _command(text, "train") == [
        *values["MLPLAN"],
        "run", "train", "--only", "--trigger", "schedule", "--scheduler", "airflow",
        "--project", str(scheduled.root),
        "--scheduler-run", "$MLPLAN_SCHEDULER_RUN",
    ]  # fmt: skip
    # The same plan exports the same bytes.
    export_pipeline(scheduled)
    assert export.path.read_text() == text


def test_a_plan_without_a_schedule_exports_a_dag_run_by_hand_and_says_so(
    tmp_path: Path, cli: Any
) -> None:
    Workspace.create(tmp_path / "p", "churn", task="binary", target="churned")
    out = tmp_path / "airflow" / "dags" / "churn.py"
    said = strict_json(
        cli(
            "pipeline", "export", "--out", str(out), "--json", "--project", str(tmp_path / "p")
        ).stdout
    )
    assert said["path"] == str(out) and said["schedule"] is None
    assert said["notes"][0].startswith(
        "the plan has no pipeline.schedule: the DAG has schedule=None"
    )
    assert _values(out.read_text())["SCHEDULE"] is None
    shown = cli("pipeline", "export", "--project", str(tmp_path / "p"))
    assert shown.exit_code == 0, shown.stdout
    assert "Wrote DAG churn_pipeline to " in shown.stdout
    assert "schedule: none (runs when triggered)" in shown.stdout


def test_a_store_url_is_written_only_without_its_password(
    scheduled: Workspace, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    monkeypatch.delenv("MLPLAN_STORE_URL", raising=False)
    url = "postgresql+psycopg://mlplan@db.internal:5432/mlplan"
    export = export_pipeline(scheduled, store_url=url)
    assert export.store_url and _values(export.path.read_text())["STORE_URL"] == url
    monkeypatch.setenv("MLPLAN_STORE_URL", url.replace("mlplan@", "team@"))
    assert _values(export_pipeline(scheduled).path.read_text())["STORE_URL"].startswith(
        "postgresql+psycopg://team@"
    )

    written = export.path.read_bytes()
    secret = "postgresql+psycopg://mlplan:s3cret@db.internal:5432/mlplan"
    with pytest.raises(ParameterError, match=r"'store_url' holds a password, which the DAG") as e:
        export_pipeline(scheduled, store_url=secret)
    assert "s3cret" not in str(e.value) and f"'{url}'" in str(e.value)
    monkeypatch.setenv("MLPLAN_STORE_URL", url + "?password=s3cret")
    with pytest.raises(UsageError, match=r"\$MLPLAN_STORE_URL holds a password") as e:
        export_pipeline(scheduled)
    assert "s3cret" not in str(e.value) and "PGPASSWORD" in str(e.value)
    monkeypatch.delenv("MLPLAN_STORE_URL")
    with pytest.raises(ParameterError, match=r"'store_url' is not a database URL \(e\.g\. "):
        export_pipeline(scheduled, store_url="db.internal:5432")
    refused = cli("pipeline", "export", "--store-url", secret, "--project", str(scheduled.root))
    assert refused.exit_code == 2
    assert "--store-url holds a password" in refused.output and "s3cret" not in refused.output
    assert export.path.read_bytes() == written  # nothing written when refused


@pytest.mark.slow
def test_airflow_runs_the_exported_dag_as_one_scheduled_pipeline_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    airflow = AIRFLOW_VENV / "bin" / "airflow"
    migrated = AIRFLOW_VENV / "airflow-migrated.db"
    if not (airflow.exists() and migrated.exists()):
        pytest.fail(f"no Airflow in {AIRFLOW_VENV}: run scripts/airflow-venv.sh (make test does)")
    monkeypatch.delenv("MLPLAN_STORE_URL", raising=False)  # the project's SQLite store, for both
    # By hand first, up to its gates (approved where the small data misses the plan's
    # targets): the scheduled run reuses those steps and deploys.
    ws = Workspace(quick_plan(tmp_path / ODD))
    first = run_pipeline(ws, ["gates"])
    if not first.ok:
        approve_model(ws, first.steps[5].outputs["model"])  # type: ignore[index]
        assert run_pipeline(ws, ["gates"]).ok
    evaluated = first.steps[5].outputs["model"]  # type: ignore[index]
    # The DAGs folder named plainly: Airflow expands $VARS in its own settings.
    export = export_pipeline(ws, out=tmp_path / "dags" / "churn.py")
    (item,) = [i for i in status(ws).items if i.item.id == "deploy.pipeline"]
    assert item.state == "missing"  # run by hand only

    home = tmp_path / "airflow"
    home.mkdir()
    shutil.copyfile(migrated, home / "airflow.db")  # `airflow db migrate`, done at build time
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLPLAN_"))}
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(export.path.parent),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # The tasks' `python -m mlplan` imports this mlplan (a checkout's, not installed).
        "PYTHONPATH": str(Path(mlplan.__file__).parents[1]),
    }
    done = subprocess.run(
        [str(airflow), "dags", "test", export.dag_id],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "state=success" in done.stdout + done.stderr, done.stdout[-4000:]

    with ws.store.transaction() as session:
        runs = list(session.scalars(ws.select(RunRecord)))
        session.expunge_all()
    (pipeline,) = [r for r in runs if r.job == PIPELINE_JOB and "scheduler" in r.parameters]
    scheduler = pipeline.parameters["scheduler"]
    assert scheduler["name"] == "airflow"
    assert scheduler["run_id"].startswith(f"{export.dag_id}/manual__")
    assert pipeline.parameters["trigger"] == "schedule" and pipeline.status == "completed"
    steps = {r.job: r.status for r in runs if r.parent_id == pipeline.id}
    assert steps == {step_job(s.name): "cached" for s in STEPS[:-1]} | {
        step_job("deploy"): "completed"
    }
    assert deployment_route(ws, "production").model == evaluated  # the scheduled run's deploy
    # The checklist's deploy.pipeline asks for a scheduled run that completed: this one.
    (item,) = [i for i in status(ws).items if i.item.id == "deploy.pipeline"]
    assert item.state == "done" and item.evidence.startswith("scheduled by airflow ")
    assert f"run {pipeline.id[:8]} completed" in item.evidence
    ws.close()
