"""check_plan_against_data: the plan's target, slices and named columns against the data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import edit_plan, exported_workspace

from mlplan.data import check_plan_against_data, register_dataset
from mlplan.workspace import Workspace


@pytest.fixture
def registered(project_dir: Path) -> Path:
    """The project with customers@1 registered under the original plan."""
    ws = Workspace(project_dir)
    register_dataset(ws, "customers")
    ws.close()
    return project_dir


def _edited(root: Path, old: str, new: str) -> Iterator[Workspace]:
    plan = root / "mlplan.yaml"
    text = plan.read_text()
    assert old in text, old
    plan.write_text(text.replace(old, new, 1))
    ws = Workspace(root)
    yield ws
    ws.close()


def test_a_plan_that_fits_the_data_has_no_problems(registered: Path) -> None:
    ws = Workspace(registered)
    assert check_plan_against_data(ws) == []
    ws.close()


def test_nothing_registered_means_nothing_to_check(sqlite_ws: Workspace) -> None:
    assert check_plan_against_data(sqlite_ws) == []


@pytest.mark.parametrize(
    ("old", "new", "problems"),
    [
        (
            'target: "churned"',
            'target: "churn"',
            [
                "mlplan.yaml: customers@1: target 'churn' is not a column (did you mean 'churned' "
                "or 'charges'?)"
            ],
        ),
        (
            "slices: []",
            "slices: [{name: by_region, columns: [regoin]}]",
            [
                "mlplan.yaml: customers@1: slice 'by_region' uses column 'regoin', which is not "
                "in the data (did you mean 'region'?)"
            ],
        ),
        (
            "slices: []",
            "slices: [{name: ages, column: agee, bins: [0, 30, 120]}]",
            [
                "mlplan.yaml: customers@1: slice 'ages' uses column 'agee', which is not in the "
                "data (did you mean 'age' or 'gender'?)"
            ],
        ),
        (
            "slices: []",
            "slices: [{name: seniors, where: \"age >= 65 AND region = 'north'\"}]",
            [],
        ),
        (
            "pii_columns: [name, email]",
            "pii_columns: [name, mail]",
            [
                "mlplan.yaml: customers@1: datasets.customers.pii_columns names 'mail', which is "
                "not a column (did you mean 'email'?)"
            ],
        ),
        (
            "id_column: null",
            "id_column: customer",
            [
                "mlplan.yaml: customers@1: datasets.customers.id_column names 'customer', which "
                "is not a column (did you mean 'customer_id'?)"
            ],
        ),
    ],
    ids=["target", "slice-columns", "slice-bins", "slice-where-ok", "pii-columns", "id-column"],
)
def test_plan_problems_name_the_field_the_version_and_close_columns(
    registered: Path, old: str, new: str, problems: list[str]
) -> None:
    for ws in _edited(registered, old, new):
        assert check_plan_against_data(ws) == problems


def test_a_where_filter_that_does_not_run_on_the_data_is_a_problem(registered: Path) -> None:
    for ws in _edited(registered, "slices: []", 'slices: [{name: old, where: "agee > 65"}]'):
        (problem,) = check_plan_against_data(ws)
        assert problem.startswith(
            "mlplan.yaml: customers@1: slice 'old': where 'agee > 65' does not run on the data: "
        )
        assert "agee" in problem.split("does not run on the data: ", 1)[1]


def test_image_and_unlabeled_datasets_are_not_checked_for_the_target(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    import numpy as np

    image = pytest.importorskip("PIL.Image")
    folder = tmp_path / "pets" / "cat"
    folder.mkdir(parents=True)
    image.fromarray(np.zeros((2, 2), np.uint8)).save(folder / "a.png")
    register_dataset(sqlite_ws, "pets", tmp_path / "pets")
    assert check_plan_against_data(sqlite_ws) == []


def test_a_row_number_named_as_a_feature_is_a_problem(tmp_path: Path) -> None:
    ws = exported_workspace(tmp_path)
    assert check_plan_against_data(ws) == []  # left out of the features without a word
    edit_plan(ws, "  features: null", "  features: [rownames, sex]")
    assert check_plan_against_data(ws) == [
        "mlplan.yaml: heart@1: modeling.features names 'rownames', row number (unique per "
        "row; the name an export gives it), which only identifies rows: a model would learn "
        "the order of the file; remove it"
    ]
    ws.close()
