"""``mlplan evaluate MODEL --engine ray``: the package runs on the split's rows on Ray Data
(a real local cluster, one for the module) and the report is the local engine's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import register_split_train, write_csv
from tests.evaluation.conftest import churn_table, plan_text
from typer.testing import CliRunner

from mlplan.cli import app
from mlplan.errors import ParameterError
from mlplan.evaluation import evaluate
from mlplan.workspace import Workspace

# What differs between two evaluations of one model: the run, and whether it made the
# package version holding the threshold (the first one did).
_VOLATILE = {"run_id", "files"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("evaluate-ray")
    write_csv(churn_table(), root / "data" / "customers.csv")
    (root / "mlplan.yaml").write_text(plan_text())
    ws = register_split_train(Workspace(root), id_column=None)
    yield ws
    ws.close()


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in report.items() if k not in _VOLATILE}
    kept["package"] = {k: v for k, v in kept["package"].items() if k != "new"}
    return kept


def test_evaluating_on_ray_gives_the_local_report(trained: Workspace, ray_cluster: Any) -> None:
    local = evaluate(trained, "logistic-1", threshold=0.4, n_boot=20, seed=3)

    result = CliRunner().invoke(
        app,
        ["evaluate", "logistic-1", "--engine", "ray", "--threshold", "0.4", "--bootstrap", "20",
         "--seed", "3", "--json", "--project", str(trained.root)],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    on_ray = json.loads(result.stdout)
    assert on_ray["run_id"] != local.run_id
    assert _comparable(on_ray) == _comparable(json.loads(json.dumps(local.report)))
    assert on_ray["package"]["ref"] == local.report["package"]["ref"]  # the same version


def test_an_engine_is_for_a_model_and_one_of_two(trained: Workspace, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"'engine' must be local or ray; got 'dask'"):
        evaluate(trained, "logistic-1", engine="dask")  # type: ignore[arg-type]
    predictions = tmp_path / "older.csv"
    predictions.write_text("item_id,prediction\n1,0\n")
    result = CliRunner().invoke(
        app,
        ["evaluate", "--predictions", str(predictions), "--engine", "ray",
         "--project", str(trained.root)],
    )  # fmt: skip
    assert result.exit_code == 2  # a usage error
    assert "--engine applies to a model" in result.output
