"""Deployments: a named place where a model serves; deploy, list, serve --deployment, and the
record of every change."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select
from tests.conftest import chdir
from tests.serving.conftest import RECORD, bearer, server_process, stop
from typer.testing import CliRunner

from mlplan.cli import app
from mlplan.errors import NotFoundError, ParameterError, UsageError
from mlplan.lineage import lineage
from mlplan.modeling import train_model
from mlplan.serving import deploy, serve
from mlplan.store import RunRecord
from mlplan.workspace import Workspace, get_deployment, list_deployments


def test_a_deployment_holds_one_model_and_each_change_is_recorded(served: Workspace) -> None:
    assert list_deployments(served) == []
    with pytest.raises(NotFoundError, match=r"no deployment 'production'; deployments: none\. "):
        get_deployment(served)
    first = deploy(served, "logistic-1", by="Priya", note="first release")
    assert (first.name, first.model, first.previous, first.mode) == (
        "production",
        "logistic-1",
        None,
        "realtime",
    )
    train_model(served, family="gbt")
    second = deploy(served, "gbt-1", by="Priya", note="better on the west")
    assert (second.model, second.previous) == ("gbt-1", "logistic-1")
    staging = deploy(served, "logistic-1", name="staging")
    assert [d.name for d in list_deployments(served)] == ["production", "staging"]
    assert get_deployment(served).model == "gbt-1" and staging.model == "logistic-1"
    assert get_deployment(served).created_at == first.created_at  # the same deployment
    # Every change is a deploy run: the model goes in, the deployment comes out.
    graph = lineage(served, "production")
    assert {(n.kind, n.ref) for r in graph.upstream for n in r.inputs} >= {
        ("model", "logistic-1"),
        ("model", "gbt-1"),
    }
    with served.store.transaction() as session:
        runs = session.scalars(
            select(RunRecord).where(RunRecord.job == "deploy").order_by(RunRecord.started_at)
        )
        assert [r.parameters["model"] for r in runs] == ["logistic-1", "gbt-1", "logistic-1"]
    with pytest.raises(ParameterError, match=r"deployment name 'Prod!': use lowercase"):
        deploy(served, "logistic-1", name="Prod!")
    with pytest.raises(NotFoundError, match=r"model 'nope' not found"):
        deploy(served, "nope")
    assert len(list_deployments(served)) == 2  # nothing half-made


def test_deploy_and_list_from_the_command_line(served: Workspace) -> None:
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
    deploy(served, "logistic-1")
    train_model(served, family="gbt")
    with pytest.raises(UsageError, match=r"deployment 'production' holds logistic-1, not gbt-1"):
        serve(served, "gbt-1", deployment="production")
    with pytest.raises(NotFoundError, match=r"no deployment 'staging'"):
        serve(served, None, deployment="staging")
    with pytest.raises(ParameterError, match=r"give a model to serve, or 'deployment' NAME"):
        serve(served, None)


@pytest.mark.slow
def test_serve_deployment_serves_its_model_and_records_it(
    served: Workspace, tokens: dict[str, str]
) -> None:
    deploy(served, "logistic-1")
    with server_process(served.root, "--deployment", "production") as (process, base):
        answer = httpx.post(
            f"{base}/v1/predict",
            json={"records": [RECORD]},
            headers=bearer(tokens["predict"]),
            timeout=10,
        )
        assert answer.json()["model"]["name"] == "logistic-1"
        stop(process)
    with served.store.transaction() as session:
        run = session.scalars(select(RunRecord).where(RunRecord.job == "serve")).one()
        assert run.parameters["deployment"] == "production"
        assert run.parameters["served"]["answers"] == {"2xx": 1}
