"""The target against the task (#13 item 7): a four-class target under ``task: binary``, an
amount under a classification, text under regression are told in one line at ``data add``, by
``plan validate`` and before training, not found by a crash inside the estimator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from tests.conftest import customers_table, edit_plan, write_csv

from mlplan.data import check_plan_against_data, profile_table, target_problem


def _column(values: Any) -> dict[str, Any]:
    return dict(profile_table(pa.table({"y": values}))["columns"]["y"])


@pytest.mark.parametrize(
    ("task", "values", "expected"),
    [
        ("binary", ["a", "b", "c", "d"] * 25, "task binary needs a target with two values"),
        ("binary", np.linspace(-3, 3, 100), "'y' looks continuous (100 distinct values"),
        ("multiclass", np.linspace(-3, 3, 100), "set task: regression"),
        ("regression", ["low", "high"] * 10, "task regression needs a numeric target"),
    ],
)
def test_a_target_that_does_not_fit_the_task_is_named(
    task: str, values: Any, expected: str
) -> None:
    problem = target_problem(task, "y", _column(values))
    assert problem is not None and expected in problem
    assert "\n" not in problem


@pytest.mark.parametrize(
    ("task", "values"),
    [
        ("binary", [0, 1] * 50),
        ("binary", [0.0, 1.0] * 50),  # a 0/1 target read as floats
        ("multiclass", list(range(80)) * 2),  # many integer classes are classes
        ("regression", np.linspace(0, 1, 100)),
        ("regression", [0, 1] * 50),
        ("sequence", np.linspace(0, 1, 100)),
        ("binary", ["yes"] * 10),  # one class: training refuses it, the data may be a batch
    ],
)
def test_a_target_that_fits_passes(task: str, values: Any) -> None:
    assert target_problem(task, "y", _column(values)) is None


def test_a_positive_class_that_is_not_a_value_is_named() -> None:
    problem = target_problem("binary", "y", _column(["no", "yes"] * 5), positive_class="1")
    assert problem is not None and "positive_class '1' is not a value of 'y' (no, yes)" in problem
    assert target_problem("binary", "y", _column(["no", "yes"] * 5), positive_class="yes") is None


def _four_classes(project_dir: Path) -> None:
    table = customers_table()
    churned = np.asarray(table.column("churned")) + 2 * (np.arange(table.num_rows) % 2)
    table = table.set_column(table.schema.get_field_index("churned"), "churned", pa.array(churned))
    write_csv(table, project_dir / "data" / "customers.csv")


def test_data_add_refuses_a_four_class_target_under_binary(project_dir: Path, cli: Any) -> None:
    _four_classes(project_dir)
    result = cli("data", "add", "customers")
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "task binary needs a target with two values; 'churned' has 4 (0, 1, 2, 3)" in message
    assert "Internal error" not in result.output and "internal error" not in result.output
    assert cli("data", "list", "--json").exit_code == 0
    assert "customers@1" not in cli("data", "list").output  # nothing half-registered


def test_a_task_changed_after_the_data_was_added_is_told_before_training(
    project_dir: Path, cli: Any
) -> None:
    """A continuous target under binary crashed inside scikit-learn, printing every value."""
    table = customers_table()
    rng = np.random.default_rng(3)
    amount = pa.array(rng.normal(50, 10, table.num_rows).round(3))
    table = table.set_column(table.schema.get_field_index("churned"), "churned", amount)
    write_csv(table, project_dir / "data" / "customers.csv")
    plan = project_dir / "mlplan.yaml"
    plan.write_text(plan.read_text().replace("task: binary", "task: regression"))
    assert cli("data", "add", "customers").exit_code == 0
    assert cli("data", "split", "customers").exit_code == 0
    plan.write_text(plan.read_text().replace("task: regression", "task: binary"))

    trained = cli("train", "--baseline")
    assert trained.exit_code == 1
    message = " ".join(trained.output.split())
    assert "'churned' looks continuous" in message and "set task: regression" in message
    assert "internal error" not in message
    assert len(trained.output) < 600  # one line, not two thousand labels

    validated = cli("plan", "validate")
    assert validated.exit_code != 0
    assert "'churned' looks continuous" in " ".join(validated.output.split())


def test_plan_check_names_a_target_that_does_not_fit(split_ws: Any) -> None:
    edit_plan(split_ws, "task: binary", "task: regression")
    assert check_plan_against_data(split_ws) == []
    edit_plan(split_ws, 'target: "churned"', 'target: "region"')
    problems = check_plan_against_data(split_ws)
    assert len(problems) == 1
    assert (
        "task regression needs a numeric target; 'region' holds categorical values" in (problems[0])
    )
