from __future__ import annotations

import json

import pytest
from tests.conftest import chdir, edit_plan
from typer.testing import CliRunner

from mlplan.cli import app
from mlplan.errors import ParameterError
from mlplan.serving import CompactionReport, compact_logs
from mlplan.workspace import Workspace


def test_keys_create_list_and_revoke_from_the_command_line(served: Workspace) -> None:
    runner = CliRunner()
    with chdir(served.root):
        made = runner.invoke(app, ["keys", "create", "--name", "batch job", "--role", "predict"])
        assert made.exit_code == 0, made.output
        assert "it is not shown again" in made.output and "mlp_" in made.output
        listed = json.loads(runner.invoke(app, ["keys", "list", "--json"]).stdout)
        assert [(k["name"], k["roles"]) for k in listed] == [("batch job", ["predict"])]
        gone = runner.invoke(app, ["keys", "revoke", listed[0]["key_id"]])
        assert gone.exit_code == 0 and "Revoked key" in gone.output
        assert json.loads(runner.invoke(app, ["keys", "list", "--json"]).stdout) == []
        bad = runner.invoke(app, ["keys", "create", "--name", "x", "--role", "root"])
        assert bad.exit_code == 2 and "unknown role 'root'" in bad.output


def test_serve_refuses_an_open_server_without_auth_and_unknown_models(served: Workspace) -> None:
    runner = CliRunner()
    with chdir(served.root):
        missing = runner.invoke(app, ["serve", "nope-1"])
        assert missing.exit_code == 1 and "nope-1" in missing.output
        # No key may predict yet: said before anything is served.
        assert "no API key may predict yet" in " ".join(missing.output.split())
        edit_plan(served, "auth: api_key", "auth: none")
        exposed = runner.invoke(app, ["serve", "logistic-1", "--host", "0.0.0.0"])
    assert exposed.exit_code == 2
    assert "allowed only on loopback; got --host 0.0.0.0" in " ".join(exposed.output.split())


def test_logs_query_and_compact_from_the_command_line(
    served: Workspace, tokens: dict[str, str]
) -> None:
    from tests.serving.conftest import RECORD, bearer, started

    from mlplan.serving import ServeConfig, create_app

    server = create_app(
        ServeConfig(root=str(served.root), model="logistic-1", key_refresh_seconds=0)
    )
    with started(server) as client:
        for _ in range(3):
            client.post(
                "/v1/predict", json={"records": [RECORD]}, headers=bearer(tokens["predict"])
            )
    runner = CliRunner()
    with chdir(served.root):
        counted = runner.invoke(
            app,
            [
                "logs",
                "query",
                "SELECT status, count(*) AS n FROM predictions GROUP BY ALL",
                "--json",
            ],
        )
        assert counted.exit_code == 0, counted.output
        assert json.loads(counted.stdout) == [{"status": 200, "n": 3}]
        # The server has stopped: its last segment is compacted too, and nothing is lost.
        compacted = runner.invoke(app, ["logs", "compact", "--json"])
        assert json.loads(compacted.stdout) == {"compacted": 1, "removed": 0}
        assert compact_logs(served) == CompactionReport(compacted=0, removed=0)  # nothing left
        again = runner.invoke(
            app, ["logs", "query", "SELECT count(*) AS n FROM predictions", "--json"]
        )
        assert json.loads(again.stdout) == [{"n": 3}]
        bad = runner.invoke(app, ["logs", "query", "SELECT nope FROM predictions"])
        assert bad.exit_code == 1 and "the query failed" in bad.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve"], "give a model to serve, or --deployment NAME"),
        (["serve", "logistic-1", "--port", "0"], "--port must be from 1 to 65535; got 0"),
        (["serve", "logistic-1", "--timeout", "0"], "--timeout must be positive; got 0.0"),
        (["keys", "create", "--name", " ", "--role", "predict"], "--name must say who or what"),
        (
            ["loadtest", "logistic-1", "--seconds", "0"],
            "--concurrency, --seconds and --rows must be positive",
        ),
    ],
    ids=["no-model", "port", "timeout", "key-name", "loadtest-seconds"],
)
def test_a_bad_argument_is_named_by_its_option(
    served: Workspace, args: list[str], message: str
) -> None:
    with chdir(served.root):
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"error: {message}" in " ".join(result.output.split())


def test_serve_names_the_parameter_from_python(served: Workspace) -> None:
    from mlplan.serving import serve

    with pytest.raises(ParameterError, match=r"^'port' must be from 1 to 65535; got 0$") as port:
        serve(served, "logistic-1", port=0)
    assert port.value.param == "port"
    with pytest.raises(ParameterError, match=r"^'workers' must be 1 or more; got 0$"):
        serve(served, "logistic-1", workers=0)
    edit_plan(served, "auth: api_key", "auth: none")
    with pytest.raises(ParameterError, match=r"loopback; got 'host' 0\.0\.0\.0\. Create keys"):
        serve(served, "logistic-1", host="0.0.0.0")
