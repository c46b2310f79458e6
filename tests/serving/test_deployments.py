"""Deployments: a named place where a model serves; deploy, list, serve --deployment, and the
record of every change."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select
from tests.conftest import chdir, edit_plan, evaluated
from tests.serving.conftest import RECORD, bearer, server_process, stop
from typer.testing import CliRunner

from mlplan.cli import app
from mlplan.errors import CheckFailedError, NotFoundError, ParameterError, UsageError
from mlplan.evaluation import evaluate
from mlplan.lineage import lineage
from mlplan.modeling import train_model
from mlplan.serving import deploy, serve
from mlplan.store import RunRecord
from mlplan.workspace import Workspace, approve, get_deployment, list_deployments


def test_a_deployment_holds_one_model_and_each_change_is_recorded(served: Workspace) -> None:
    assert list_deployments(served) == []
    with pytest.raises(NotFoundError, match=r"no deployment 'production'; deployments: none\. "):
        get_deployment(served)
    logistic = evaluated(served)
    first = deploy(served, "logistic-1", by="Priya", note="first release")
    assert (first.name, first.model_ref, first.previous, first.mode) == (
        "production",
        logistic,
        None,
        "realtime",
    )
    train_model(served, family="gbt")
    gbt = evaluated(served, "gbt-1")
    second = deploy(served, "gbt-1", by="Priya", note="better on the west")
    assert (second.model_ref, second.previous) == (gbt, logistic)
    staging = deploy(served, "logistic-1", name="staging")
    assert [d.name for d in list_deployments(served)] == ["production", "staging"]
    assert get_deployment(served).model == "gbt-1" and staging.model == "logistic-1"
    assert get_deployment(served).created_at == first.created_at  # the same deployment
    # Every change is a deploy run: the package version goes in, the deployment comes out.
    graph = lineage(served, "production")
    assert {(n.kind, n.ref) for r in graph.upstream for n in r.inputs} >= {
        ("model", logistic),
        ("model", gbt),
    }
    with served.store.transaction() as session:
        runs = session.scalars(
            select(RunRecord).where(RunRecord.job == "deploy").order_by(RunRecord.started_at)
        )
        assert [r.parameters["model"] for r in runs] == [logistic, gbt, logistic]
    with pytest.raises(ParameterError, match=r"deployment name 'Prod!': use lowercase"):
        deploy(served, "logistic-1", name="Prod!")
    with pytest.raises(NotFoundError, match=r"model 'nope' not found"):
        deploy(served, "nope")
    assert len(list_deployments(served)) == 2  # nothing half-made


def test_deploy_and_list_from_the_command_line(served: Workspace) -> None:
    evaluated(served)
    with chdir(served.root):
        result = CliRunner().invoke(
            app, ["deploy", "logistic-1", "--by", "Priya", "--note", "pilot", "--json"]
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["model"] == "logistic-1"
        listed = CliRunner().invoke(app, ["deployments", "--json"])
        assert [d["name"] for d in json.loads(listed.stdout)] == ["production"]
        table = CliRunner().invoke(app, ["deployments"])
        assert "production" in table.stdout and "pilot" in table.stdout


def test_serve_refuses_a_model_that_is_not_in_the_deployment(served: Workspace) -> None:
    deploy(served, evaluated(served))
    train_model(served, family="gbt")
    with pytest.raises(UsageError, match=r"deployment 'production' holds logistic-1@\d, not gbt-1"):
        serve(served, "gbt-1", deployment="production")
    with pytest.raises(NotFoundError, match=r"no deployment 'staging'"):
        serve(served, None, deployment="staging")
    with pytest.raises(ParameterError, match=r"give a model to serve, or 'deployment' NAME"):
        serve(served, None)


@pytest.mark.slow
def test_serve_deployment_serves_its_model_and_records_it(
    served: Workspace, tokens: dict[str, str]
) -> None:
    deploy(served, evaluated(served))
    with server_process(served.root, "--deployment", "production") as (process, base):
        answer = httpx.post(
            f"{base}/v1/predict",
            json={"records": [RECORD]},
            headers=bearer(tokens["predict"]),
            timeout=10,
        )
        assert answer.json()["model"]["name"] == "logistic-1"
        # Open Inference clients name the model; the deployment holds one version of it.
        for name in ("logistic-1", get_deployment(served).model_ref):
            assert httpx.get(f"{base}/v2/models/{name}/ready", timeout=10).status_code == 200
        assert httpx.get(f"{base}/v2/models/gbt-1/ready", timeout=10).status_code == 404
        stop(process)
    with served.store.transaction() as session:
        run = session.scalars(select(RunRecord).where(RunRecord.job == "serve")).one()
        assert run.parameters["deployment"] == "production"
        assert run.parameters["served"]["answers"] == {"2xx": 3, "4xx": 1}


def test_a_model_never_evaluated_is_not_deployed(served: Workspace) -> None:
    with pytest.raises(
        CheckFailedError,
        match=r"^logistic-1@1 may not be deployed: logistic-1@1 has not been evaluated: run "
        r"mlplan evaluate logistic-1@1; for a load test, staging or a trial, "
        r"'allow_failed_gates' runs it anyway$",
    ):
        deploy(served, "logistic-1")
    with chdir(served.root):
        refused = CliRunner().invoke(app, ["deploy", "logistic-1"])
    assert refused.exit_code == 1
    assert "has not been evaluated: run mlplan evaluate logistic-1@1" in refused.stderr
    assert refused.stderr.rstrip().endswith("--allow-failed-gates runs it anyway")
    assert list_deployments(served) == []  # nothing recorded
    staging = deploy(served, "logistic-1", name="staging", allow_failed_gates=True)
    assert staging.model_ref == "logistic-1@1"  # a trial, as before


def test_an_approval_clears_the_evaluation_it_names_and_no_later_one(served: Workspace) -> None:
    edit_plan(
        served,
        "{name: roc_auc, direction: maximize, target: 0.85}",
        "{name: roc_auc, direction: maximize, target: 0.999}",
    )
    failed = evaluate(served, "logistic-1", n_boot=0)
    assert not failed.passed and failed.package is not None
    ref = failed.package["ref"]
    with pytest.raises(CheckFailedError, match=rf"--subject {ref} --evaluation {failed.run_id} "):
        deploy(served, "logistic-1")
    with pytest.raises(
        ParameterError, match=r"has no evaluation 'nope' to override; its evaluations: "
    ):
        approve(served, "deploy", role="ml_lead", by="Priya", subject=ref, evaluation="nope")
    approval = approve(
        served,
        "deploy",
        role="ml_lead",
        by="Priya",
        subject="logistic-1",
        evaluation=failed.run_id[:8],
        note="pilot",
    )
    assert (approval.subject, approval.evaluation) == (ref, failed.run_id)
    assert deploy(served, "logistic-1").model_ref == ref
    # The same package evaluated again (the same gate failing): the approval
    # named the earlier evaluation, so it does not clear this one.
    later = evaluate(served, "logistic-1", n_boot=0)
    assert later.package is not None and later.package["ref"] == ref and not later.passed
    with pytest.raises(CheckFailedError, match=rf"gates failed in evaluation {later.run_id}"):
        deploy(served, "logistic-1", name="staging")
    assert [d.name for d in list_deployments(served)] == ["production"]
