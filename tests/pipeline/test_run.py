"""``mlplan run``: the plan's steps in order, each reused while its inputs are unchanged, a
failed step stopping those after it and the rerun resuming there, every run in the store
under its step and pipeline."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.csv as pcsv
import pytest
from tests.conftest import customers_table, edit_plan, ok, strict_json
from tests.pipeline.conftest import approve_model as _approve
from tests.pipeline.conftest import quick_plan as _plan

from mlplan.errors import ParameterError, UsageError
from mlplan.pipeline import PIPELINE_JOB, run_pipeline, selected_steps, step_job
from mlplan.store import RunRecord
from mlplan.workspace import Workspace, deployment_route

STEPS = ["data", "split", "train", "labels", "compare", "evaluate", "gates", "deploy"]


@pytest.fixture(scope="module")
def _first_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose pipeline ran once to its end (its gates failed, then the evaluated
    version was approved and the run resumed): copied for each test that needs it."""
    root = _plan(tmp_path_factory.mktemp("pipeline"))
    ws = Workspace(root)
    first = run_pipeline(ws)
    if not first.ok:  # the small data's model may miss the plan's targets: approve it
        assert [s.state for s in first.steps][-2:] == ["failed", "blocked"]
        _approve(ws, first.steps[5].outputs["model"])  # type: ignore[index]
        assert run_pipeline(ws).ok
    ws.close()
    return root


@pytest.fixture
def ran(_first_run: Path, tmp_path: Path) -> Iterator[Workspace]:
    root = tmp_path / "project"
    shutil.copytree(_first_run, root)
    ws = Workspace(root)
    yield ws
    ws.close()


def _runs(ws: Workspace, job: str | None = None) -> list[RunRecord]:
    with ws.store.transaction() as session:
        query = ws.select(RunRecord).order_by(RunRecord.started_at, RunRecord.id)
        if job is not None:
            query = query.where(RunRecord.job == job)
        runs = list(session.scalars(query))
        session.expunge_all()
    return runs


def test_a_fresh_project_runs_every_step_in_order_and_records_each_under_the_pipeline(
    tmp_path: Path,
) -> None:
    ws = Workspace(_plan(tmp_path))
    result = run_pipeline(ws, ["train"])
    assert result.ok, result.to_dict()
    assert [(s.step, s.state, s.reason) for s in result.steps] == [
        ("data", "ran", "it never ran"),
        ("split", "ran", "it never ran"),
        ("train", "ran", "it never ran"),
    ]
    data, split, train = (s.outputs for s in result.steps)
    assert data == {"versions": {"customers": "customers@1"}, "created": ["customers@1"]}
    assert split is not None and split["split"] == "customers@1/s1" and split["passed"]
    assert train is not None and [m["ref"] for m in train["models"]] == ["logistic-1@1"]

    (pipeline,) = _runs(ws, PIPELINE_JOB)
    assert pipeline.id == result.run_id and pipeline.status == "completed"
    assert pipeline.parameters["trigger"] == "manual"
    steps = {r.job: r for r in _runs(ws) if r.parent_id == pipeline.id}
    assert sorted(steps) == sorted(step_job(s) for s in ("data", "split", "train"))
    assert all(r.status == "completed" and r.cache_key for r in steps.values())
    # The stages' own runs sit under their step: lineage walks from a model to the pipeline.
    under = {r.job: r.parent_id for r in _runs(ws) if r.job in {"data add", "data split", "train"}}
    assert under == {
        "data add": steps["pipeline data"].id,
        "data split": steps["pipeline split"].id,
        "train": steps["pipeline train"].id,
    }
    ws.close()


def test_a_rerun_with_nothing_changed_reuses_every_step_and_trains_nothing(
    ran: Workspace,
) -> None:
    trained = len(_runs(ran, "train"))
    before = {s: [r for r in _runs(ran, step_job(s)) if r.status == "completed"][-1] for s in STEPS}
    result = run_pipeline(ran)
    assert result.ok
    assert [s.state for s in result.steps] == ["cached"] * len(STEPS)
    for step in result.steps:
        reused = before[step.step]
        assert step.reused == reused.id and step.outputs == reused.parameters["outputs"]
        assert step.reason.startswith(f"same inputs as run {reused.id[:8]}")
    assert len(_runs(ran, "train")) == trained
    cached = [r for r in _runs(ran) if r.parent_id == result.run_id]
    assert {r.status for r in cached} == {"cached"} and len(cached) == len(STEPS)


def test_a_dry_run_says_what_would_run_and_why_and_records_nothing(
    ran: Workspace, tmp_path: Path
) -> None:
    fresh = Workspace(_plan(tmp_path / "fresh"))
    said = run_pipeline(fresh, dry_run=True)
    assert said.run_id is None and said.dry_run
    assert [(s.state, s.reason) for s in said.steps[:2]] == [
        ("would run", "it never ran"),
        ("would run", "after data, which would run: its inputs follow"),
    ]
    assert not fresh.has_store or _runs(fresh) == []
    fresh.close()

    counted = len(_runs(ran))
    assert {s.state for s in run_pipeline(ran, dry_run=True).steps} == {"would reuse"}
    # A new hyperparameter: the data and its split are reused, training would run again.
    edit_plan(ran, "  seed: 0\n", "  seed: 0\n  hyperparameters: {logistic: {C: 0.5}}\n")
    said = run_pipeline(ran, dry_run=True)
    states = {s.step: (s.state, s.reason) for s in said.steps}
    assert states["data"][0] == states["split"][0] == "would reuse"
    assert states["train"][0] == "would run"
    assert states["train"][1].startswith("changed since run ")
    assert states["train"][1].endswith(": modeling.hyperparameters.logistic")
    assert states["compare"] == ("would run", "after train, which would run: its inputs follow")
    assert len(_runs(ran)) == counted


def test_new_data_makes_a_new_version_and_everything_after_it_runs_again(
    ran: Workspace,
) -> None:
    pcsv.write_csv(customers_table(rows=420, seed=8), ran.root / "data" / "customers.csv")
    said = run_pipeline(ran, dry_run=True).steps[0]
    assert said.state == "would run" and said.reason.endswith(": datasets.customers.sha256")
    result = run_pipeline(ran, ["train"])
    assert [s.state for s in result.steps] == ["ran", "ran", "ran"]
    assert result.steps[0].outputs == {
        "versions": {"customers": "customers@2"},
        "created": ["customers@2"],
    }
    assert result.steps[1].outputs["split"] == "customers@2/s1"  # type: ignore[index]
    assert result.steps[2].outputs["models"][0]["ref"] == "logistic-2@1"  # type: ignore[index]


def test_a_failed_gate_stops_the_deploy_and_the_rerun_resumes_there_once_approved(
    tmp_path: Path, cli: Any
) -> None:
    root = _plan(tmp_path / "gated")  # the plan's roc_auc target of 0.85: out of reach
    out = cli("run", "--project", str(root))
    assert out.exit_code == 1
    assert "✗ gates:" in out.stdout and "mlplan approve deploy" in out.stdout
    assert "then mlplan run resumes here" in out.stdout
    said = strict_json(cli("run", "--dry-run", "--json", "--project", str(root)).stdout)
    states = {s["step"]: (s["state"], s["reason"]) for s in said["steps"]}
    assert states["evaluate"][0] == "would reuse"
    assert states["gates"][0] == "would run" and "failed" in states["gates"][1]

    ws = Workspace(root)
    evaluated = said["steps"][5]["outputs"]["model"]
    _approve(ws, evaluated)
    done = strict_json(ok(cli("run", "--json", "--project", str(root))).stdout)
    assert [s["state"] for s in done["steps"]] == ["cached"] * 6 + ["ran", "ran"]
    assert done["steps"][6]["reason"].startswith("changed since run ")
    assert done["steps"][6]["outputs"]["cleared_by"].startswith("approval ")
    assert deployment_route(ws, "production").model == evaluated  # the first: put in
    ws.close()


def test_a_better_model_later_enters_the_plans_rollout_and_never_replaces_production(
    ran: Workspace,
) -> None:
    stable = deployment_route(ran, "production").model
    edit_plan(ran, "  seed: 0\n", "  seed: 0\n  hyperparameters: {logistic: {C: 0.3}}\n")
    result = run_pipeline(ran, by="Priya")
    if result.steps[6].state == "failed":
        _approve(ran, result.steps[5].outputs["model"])  # type: ignore[index]
        result = run_pipeline(ran, by="Priya")
    deploy = result.steps[-1]
    assert deploy.state == "ran", result.to_dict()
    assert deploy.outputs is not None and deploy.outputs["strategy"] == ran.plan.rollout_strategy
    route = deployment_route(ran, "production")
    assert route.model == stable  # still serving the stable model
    assert route.candidate == deploy.outputs["model"] and route.state == "pending"
    # Run again while it rolls out: nothing new is started.
    assert run_pipeline(ran).steps[-1].state == "cached"
    # Promoted, it is what the candidate was held against: its evaluation still stands.
    from mlplan.rollout import move_rollout

    move_rollout(ran, "production", "promote", by="Priya", note="for the test")
    assert deployment_route(ran, "production").model == deploy.outputs["model"]
    assert {s.state for s in run_pipeline(ran).steps} == {"cached"}


def test_steps_are_chosen_with_what_they_need_and_bad_options_are_refused(
    ran: Workspace,
) -> None:
    assert [s.name for s in selected_steps(["compare"])] == [
        "data", "split", "train", "labels", "compare",
    ]  # fmt: skip
    assert [s.name for s in selected_steps(None)] == STEPS
    with pytest.raises(UsageError, match=r"no pipeline step 'fit'; the steps: data, split, "):
        run_pipeline(ran, ["fit"])
    with pytest.raises(ParameterError, match=r"'trigger' must be one of manual, schedule, alert"):
        run_pipeline(ran, trigger="cron")  # type: ignore[arg-type]


def test_a_missing_data_file_fails_the_first_step_naming_the_plans_path(
    tmp_path: Path,
) -> None:
    ws = Workspace(_plan(tmp_path))
    (tmp_path / "data" / "customers.csv").unlink()
    result = run_pipeline(ws)
    assert [s.state for s in result.steps] == ["failed"] + ["blocked"] * 7
    assert "datasets.customers.path of the plan is 'data/customers.csv'" in result.steps[0].reason
    (pipeline,) = _runs(ws, PIPELINE_JOB)
    assert pipeline.status == "failed"
    assert pipeline.parameters["states"]["data"] == "failed"
    ws.close()


def test_the_plan_refuses_an_unknown_pipeline_dataset_and_a_bad_schedule(tmp_path: Path) -> None:
    from mlplan.errors import PlanError
    from mlplan.plan import load_plan

    root = _plan(tmp_path)
    text = (root / "mlplan.yaml").read_text()
    (root / "mlplan.yaml").write_text(text.replace("  dataset: null", "  dataset: orders", 1))
    with pytest.raises(PlanError, match=r"pipeline.dataset names 'orders'.*datasets: customers"):
        load_plan(root / "mlplan.yaml")
    bad = re.sub(r"(?m)^  schedule: null  # cron.*$", "  schedule: 3am", text)
    (root / "mlplan.yaml").write_text(bad)
    with pytest.raises(PlanError, match=r"mlplan.yaml:\d+.*schedule '3am' must be a cron"):
        load_plan(root / "mlplan.yaml")


def test_a_schedulers_tasks_each_run_one_step_under_one_pipeline_run(ran: Workspace) -> None:
    pcsv.write_csv(customers_table(rows=420, seed=8), ran.root / "data" / "customers.csv")
    airflow = {"name": "airflow", "run_id": "churn/scheduled__2026-12-07T03:00:00+00:00"}
    # A task whose step comes before the ones that ran: blocked, naming what to run.
    early = run_pipeline(ran, ["train"], only=True, trigger="schedule", scheduler=airflow)
    assert [(s.step, s.state) for s in early.steps] == [("data", "blocked"), ("train", "blocked")]
    assert early.steps[0].reason == (
        "data has not run with its present inputs: run it first (mlplan run data)"
    )
    assert early.steps[1].reason == "split did not finish"
    ids = set()
    for step in STEPS:
        result = run_pipeline(ran, [step], only=True, trigger="schedule", scheduler=airflow)
        assert [s.step for s in result.steps] == [step], result.to_dict()
        if step == "gates" and result.steps[0].state == "failed":
            _approve(ran, result.steps[0].reason.split(" may not ship")[0])
            result = run_pipeline(ran, [step], only=True, trigger="schedule", scheduler=airflow)
        # No labeling round in the plan: its step's inputs never change.
        want = "cached" if step == "labels" else "ran"
        assert result.steps[0].state == want, result.to_dict()
        ids.add(result.run_id)
        (pipeline,) = [r for r in _runs(ran, PIPELINE_JOB) if r.id == result.run_id]
        assert pipeline.status == ("completed" if step == "deploy" else "running")
    (one,) = ids
    (pipeline,) = [r for r in _runs(ran, PIPELINE_JOB) if r.id == one]
    assert pipeline.parameters["scheduler"] == airflow
    assert pipeline.parameters["trigger"] == "schedule" and "pid" not in pipeline.parameters
    assert set(pipeline.parameters["states"]) == set(STEPS)
    assert len([r for r in _runs(ran) if r.parent_id == one and r.status == "completed"]) == 7


def test_a_models_lineage_names_the_step_and_pipeline_run_that_made_it(
    ran: Workspace, cli: Any
) -> None:
    from mlplan.lineage import lineage, to_openlineage

    graph = lineage(ran, "logistic-1@1")
    train = graph.producer_of("logistic-1@1")
    assert train is not None and train.job == "train"
    step, top = graph.ancestry(train)
    assert step.job == "pipeline train" and top.job == PIPELINE_JOB and top.parent_id is None
    assert top.id in {r.id for r in _runs(ran, PIPELINE_JOB)}
    (event,) = [e for e in to_openlineage(ran, graph) if e["run"]["runId"] == train.id]
    parent = event["run"]["facets"]["parent"]
    assert parent["run"] == {"runId": step.id} and parent["job"]["name"] == "pipeline.train"
    assert parent["root"]["run"] == {"runId": top.id}
    shown = ok(cli("lineage", "logistic-1@1", "--project", str(ran.root))).stdout
    assert f"in pipeline train of pipeline run {top.id[:8]}" in " ".join(shown.split())


def test_the_checklist_asks_for_a_scheduled_run_and_says_when_the_newest_one_failed(
    ran: Workspace,
) -> None:
    from mlplan.checklist import status

    def item() -> Any:
        (found,) = [i for i in status(ran).items if i.item.id == "deploy.pipeline"]
        return found

    by_hand = item()
    assert by_hand.state == "missing" and by_hand.evidence.startswith("ran by hand (run ")
    assert by_hand.next_step.startswith("set pipeline.schedule in the plan, then mlplan pipeline")
    edit_plan(ran, "  schedule: null  # cron", "  schedule: '0 3 * * *'  # cron")
    assert item().next_step.startswith("mlplan pipeline export --format airflow")

    airflow = {"name": "airflow", "run_id": "churn/scheduled__1"}
    assert run_pipeline(ran, trigger="schedule", scheduler=airflow).ok
    done = item()
    assert done.state == "done"
    assert done.evidence.startswith("scheduled by airflow (pipeline.schedule is '0 3 * * *'): run ")
    assert "(8 cached)" in done.evidence

    (ran.root / "data" / "customers.csv").write_text("customer_id,churned\n1,0\n")
    failed = run_pipeline(ran, trigger="schedule", scheduler={**airflow, "run_id": "churn/2"})
    assert not failed.ok
    failing = item()
    assert failing.state == "failing"
    assert f"the newest scheduled run {failed.run_id[:8]}" in failing.evidence  # type: ignore[index]
    assert " failed at step " in failing.evidence


def _fire(ws: Workspace, rule: str = "input.input-drift") -> int:
    """An open alert of ``rule`` on production, as ``mlplan monitor check`` leaves one."""
    from mlplan.store import AlertRecord, utcnow

    with ws.write() as session:
        now = utcnow()
        alert = AlertRecord(
            project_id=ws.project_id(session), rule=rule, deployment="production",
            slice="(all)", metric="drift.drifted", op=">", value=2.0, threshold=0.0,
            severity="warning", state="open", window_end=now, first_fired_at=now,
            last_fired_at=now,
        )  # fmt: skip
        session.add(alert)
        session.flush()
        return int(alert.id)


def test_an_alert_retrains_on_the_newest_data_and_the_candidate_enters_a_canary(
    ran: Workspace, cli: Any
) -> None:
    from mlplan.pipeline import retrain_if_alerted, retraining_alert

    assert retraining_alert(ran) == (None, "the plan names no rule under pipeline.retrain_on")
    edit_plan(ran, "  retry_delay: 5m", "  retry_delay: 5m\n  retrain_on: [input-drift]")
    edit_plan(ran, "  retry_delay: 5m", "  retry_delay: 5m\n  strategy: canary")
    assert retraining_alert(ran) == (None, "no open alert of input.input-drift")
    stable = deployment_route(ran, "production").model
    alert = _fire(ran)
    pcsv.write_csv(customers_table(rows=420, seed=8), ran.root / "data" / "customers.csv")

    found = strict_json(cli("run", "--if-alerted", "--json", "--project", str(ran.root)).stdout)
    assert found["alert"]["id"] == alert
    assert found["reason"] == f"alert {alert} (input.input-drift) has not been answered"
    steps = found["result"]["steps"]
    assert [s["state"] for s in steps[:6]] == ["ran"] * 3 + ["cached"] + ["ran"] * 2
    assert steps[0]["outputs"]["created"] == ["customers@2"]
    if steps[6]["state"] == "failed":  # the small data misses the plan's targets
        _approve(ran, steps[5]["outputs"]["model"])
        again = retrain_if_alerted(ran)
        assert again.reason == f"the run that answered alert {alert} (input.input-drift) failed"
        assert again.result is not None
        steps = [s.to_dict() for s in again.result.steps]
        assert [s["state"] for s in steps] == ["cached"] * 6 + ["ran", "ran"]
    deploy = steps[-1]["outputs"]
    assert deploy["strategy"] == "canary" and deploy["model"] == steps[5]["outputs"]["model"]
    route = deployment_route(ran, "production")
    assert route.model == stable and route.candidate == deploy["model"]  # not replaced
    assert route.strategy == "canary"

    (newest,) = [r for r in _runs(ran, PIPELINE_JOB)][-1:]
    assert newest.parameters["trigger"] == "alert"
    assert newest.parameters["alert"] == {"id": alert, "rule": "input.input-drift",
                                          "deployment": "production"}  # fmt: skip
    said = ok(cli("run", "--if-alerted", "--project", str(ran.root))).stdout
    assert said.startswith("Nothing to do: every open alert of the rules") and str(alert) in said


def test_a_candidate_worse_than_production_on_a_slice_stops_at_the_gates(ran: Workspace) -> None:
    from mlplan.errors import CheckFailedError
    from mlplan.pipeline import step_named

    model = [r for r in _runs(ran, step_job("evaluate")) if r.status == "completed"][-1]
    evaluated = dict(model.parameters["outputs"])
    worse = ["gender=female (roc_auc -0.120)"]
    gates = step_named("gates")
    revoked = {**evaluated, "production": {"compared": True, "model": "logistic-9@1",
                                           "worse": worse}}  # fmt: skip
    # Its approval covers the failed gates of its evaluation and, named, the regression.
    cleared = gates.run(ran, {"evaluate": revoked}, "local", "test")
    assert cleared["worse_than_production"] == worse
    assert cleared["cleared_by"].startswith("approval ")
    from mlplan.workspace import list_approvals, revoke_approval

    for approval in list_approvals(ran):
        revoke_approval(ran, approval.id, role="ml_lead", by="Priya", note="for the test")
    edit_plan(ran, "target: 0.85", "target: 0.01")  # its gates pass now
    assert run_pipeline(ran, ["evaluate"]).steps[-1].state == "ran"
    passed = [r for r in _runs(ran, step_job("evaluate")) if r.status == "completed"][-1]
    done = {**passed.parameters["outputs"], "production": revoked["production"]}
    with pytest.raises(CheckFailedError, match=r"is significantly worse than logistic-9@1 \(in "
                       r"production\) on gender=female \(roc_auc -0.120\): the pipeline never "
                       r"ships a regression. If it is acceptable: mlplan approve deploy --role "
                       r"ml_lead --by NAME --subject logistic-1@\d --evaluation "):  # fmt: skip
        gates.run(ran, {"evaluate": done}, "local", "test")


def test_pipeline_runs_and_show_list_what_started_each_run_and_its_steps(
    ran: Workspace, cli: Any
) -> None:
    runs = strict_json(ok(cli("pipeline", "runs", "--json", "--project", str(ran.root))).stdout)
    assert [r["state"] for r in runs] == ["completed", "failed"]  # newest first
    assert runs[1]["states"] == {s: "ran" for s in STEPS[:6]} | {"gates": "failed",
                                                                "deploy": "blocked"}  # fmt: skip
    shown = ok(cli("pipeline", "show", runs[1]["id"][:8], "--project", str(ran.root))).stdout
    assert f"Pipeline run {runs[1]['id']} (manual" in shown
    assert "may not ship" in shown and "blocked" in shown
    newest = strict_json(ok(cli("pipeline", "show", "--json", "--project", str(ran.root))).stdout)
    assert newest["id"] == runs[0]["id"]
    assert [(s["step"], s["state"]) for s in newest["steps"]] == [
        *((s, "cached") for s in STEPS[:6]), ("gates", "completed"), ("deploy", "completed"),
    ]  # fmt: skip
    missing = cli("pipeline", "show", "nope", "--project", str(ran.root))
    assert missing.exit_code == 1 and "no pipeline run 'nope'" in missing.output


def test_a_steps_key_holds_what_it_reads_and_not_the_datasets_provenance(ran: Workspace) -> None:
    # Provenance changes nothing the split or training makes: nothing is trained again.
    edit_plan(ran, "    owner: null", "    owner: crm-team")
    said = run_pipeline(ran, dry_run=True).steps  # the data's bytes are a version already
    assert [s.state for s in said[:3]] == ["would run", "would reuse", "would reuse"]
    result = run_pipeline(ran, ["train"])
    assert [s.state for s in result.steps] == ["ran", "cached", "cached"]
    assert result.steps[0].outputs["created"] == []  # type: ignore[index]
    # The columns the leakage checks and training read: the split runs again.
    edit_plan(ran, "    time_column: null", "    time_column: age")
    split = run_pipeline(ran, ["split"]).steps[1]
    assert split.state == "ran" and split.reason.endswith(": read.time_column")


def test_a_second_run_is_refused_while_one_runs_and_a_killed_task_is_closed_as_crashed(
    ran: Workspace,
) -> None:
    from mlplan.store import process_identity

    with ran.record(PIPELINE_JOB, {"trigger": "manual", **process_identity()}, running=True):
        pass  # a pipeline run of a live process (this one)
    with pytest.raises(UsageError, match=r"pipeline run \w{8} is running \(process \d+ on "):
        run_pipeline(ran)
    with ran.write() as session:
        for left in session.scalars(ran.select(RunRecord).where(RunRecord.status == "running")):
            left.status = "completed"

    airflow = {"name": "airflow", "run_id": "churn/manual__1"}
    first = run_pipeline(ran, ["data"], only=True, trigger="schedule", scheduler=airflow)
    (step,) = [r for r in _runs(ran) if r.parent_id == first.run_id]
    with ran.write() as session:  # as a task killed mid-step leaves its step
        session.get(RunRecord, step.id).status = "running"  # type: ignore[union-attr]
    second = run_pipeline(ran, ["split"], only=True, trigger="schedule", scheduler=airflow)
    assert second.run_id == first.run_id and second.steps[0].state == "cached"
    (closed,) = [r for r in _runs(ran) if r.id == step.id]
    assert closed.status == "crashed"
    assert closed.parameters["crashed"]["found_by"] == "the scheduler's next task"


def test_a_labeling_round_is_exported_for_new_data_and_its_labels_measured_when_back(
    ran: Workspace,
) -> None:
    import csv

    from mlplan.labels import import_annotations

    edit_plan(ran, "  labels: null  # e.g.", "  labels: {n: 40, overlap: 0.5}  # e.g.")
    first = {s.step: s for s in run_pipeline(ran, ["compare"]).steps}
    labels = first["labels"]
    assert labels.state == "ran" and labels.outputs is not None
    assert labels.outputs["exported"] == 1 and labels.outputs["measured"] is False
    assert first["compare"].state == "ran"  # its inputs hold the labels step's
    # Nothing came back yet: the round is not exported again.
    again = {s.step: s for s in run_pipeline(ran, ["compare"]).steps}
    assert again["labels"].outputs["exported"] is None  # type: ignore[index]

    (batch_file,) = [p for p in (ran.root / "labels").glob("batch-1*.csv")]
    with (ran.root / "data" / "customers.csv").open(newline="") as fh:
        truth = {row["customer_id"]: row["churned"] for row in csv.DictReader(fh)}
    with batch_file.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["label"], row["seconds"] = truth[row["item_id"]], "9"
    labeled = ran.root / "labels" / "labeled.csv"
    with labeled.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import_annotations(ran, labeled, batch=1)

    back = {s.step: s for s in run_pipeline(ran, ["compare"]).steps}
    assert back["labels"].state == "ran", back["labels"].reason
    assert back["labels"].reason.endswith(": labeled")
    assert back["labels"].outputs["measured"] and back["labels"].outputs["labeled"] == len(rows)  # type: ignore[index]
    assert back["labels"].outputs["hlp"].startswith("HLP needs at least 30 items labeled by two")  # type: ignore[index]
    assert back["compare"].state == "ran"  # the labels' step changed
    assert back["train"].state == "cached"
