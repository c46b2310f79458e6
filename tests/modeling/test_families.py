"""The family registry: one entry per family, and every other list of families derived from it
or kept equal to it by these tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest

from mlplan.errors import ParameterError
from mlplan.modeling import (
    BASELINE_FAMILY,
    DEFAULT_FAMILIES,
    FAMILIES,
    SEARCH_SPACES,
    Family,
    ModelFamily,
    train_model,
    train_models,
)
from mlplan.plan import Modeling, Task
from mlplan.workspace import Workspace


def test_the_plan_and_the_family_type_name_exactly_the_registered_families() -> None:
    # The plan sits below modeling and validates the names itself (file:line errors).
    listed, _none = get_args(Modeling.model_fields["families"].annotation)
    (literal,) = get_args(listed)
    assert get_args(literal) == tuple(FAMILIES)
    assert get_args(Family) == tuple(FAMILIES)
    assert all(name == family.name for name, family in FAMILIES.items())


def test_the_family_tables_are_derived_from_the_registry() -> None:
    assert BASELINE_FAMILY == {
        "regression": "linear",
        "binary": "logistic",
        "multiclass": "logistic",
        "image_classification": "cnn",
        "sequence": "gbt",
    }
    assert DEFAULT_FAMILIES == {
        "regression": ["linear", "gbt"],
        "binary": ["logistic", "gbt"],
        "multiclass": ["logistic", "gbt"],
        "image_classification": ["cnn"],
        "sequence": ["gbt", "rnn"],
    }
    assert {name: dict(f.search_space) for name, f in FAMILIES.items()} == SEARCH_SPACES
    assert list(SEARCH_SPACES["gbt"]) == [
        "n_estimators",
        "learning_rate",
        "num_leaves",
        "min_child_samples",
    ]


@pytest.mark.parametrize("task", get_args(Task))
def test_every_task_has_one_baseline_among_its_defaults(task: str) -> None:
    baselines = [f.name for f in FAMILIES.values() if task in f.baseline_for]
    assert baselines == [BASELINE_FAMILY[task]]
    assert BASELINE_FAMILY[task] in DEFAULT_FAMILIES[task]


def test_a_family_is_an_estimator_or_a_network() -> None:
    assert {n for n, f in FAMILIES.items() if f.network is not None} == {"cnn", "rnn"}
    assert {n for n, f in FAMILIES.items() if f.pretrained} == {"cnn"}
    with pytest.raises(ValueError, match="needs an estimator or a network, not both"):
        ModelFamily("linear", fits=frozenset(), search_space={})


def test_the_registry_imports_no_extra() -> None:
    code = (
        "import sys, mlplan.modeling; "
        "print([m for m in ('torch', 'ray', 'sklearn', 'lightgbm') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda ws: train_model(ws, family="xgb"),
            r"^'family' 'xgb': choose one of linear, logistic, gbt, cnn, rnn$",
        ),
        (
            lambda ws: train_models(ws, families=["gbt", "xgb"]),
            r"^'families' 'xgb': choose one of linear",
        ),
        (
            lambda ws: train_model(ws),
            r"^give 'family' \(linear, logistic, gbt, cnn, rnn\), or baseline=True",
        ),
        (
            lambda ws: train_model(ws, baseline=True, engine="spark"),
            r"^'engine' must be local or ray; got 'spark'$",
        ),
        (
            lambda ws: train_model(ws, baseline=True, tune=-1),
            r"^'tune' must be 0 or more trials; got -1$",
        ),
    ],
    ids=["family", "families", "no-family", "engine", "tune"],
)
def test_bad_arguments_name_the_parameter(sqlite_ws: Workspace, call: Any, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        call(sqlite_ws)


def test_the_cli_names_every_family_and_its_flag(cli: Any) -> None:
    import typer.main

    from mlplan.cli import app

    command = typer.main.get_command(app).get_command(None, "train")  # type: ignore[attr-defined]
    (option,) = [p for p in command.params if p.name == "families"]
    assert option.opts == ["--family"]
    assert all(name in option.help for name in FAMILIES)
    unknown = cli("train", "--family", "gbt", "--family", "xgb")
    assert unknown.exit_code == 2
    assert "error: --family 'xgb': choose one of linear, logistic, gbt, cnn, rnn" in unknown.stderr
    nothing = cli("train")
    assert nothing.exit_code == 2
    assert "give --family linear|logistic|gbt|cnn|rnn, --baseline" in nothing.stderr


def test_a_misspelt_hyperparameter_is_refused_with_the_closest_name(sqlite_ws: Workspace) -> None:
    from tests.conftest import edit_plan, register_split_train

    from mlplan.errors import PlanError

    register_split_train(sqlite_ws, family=None)
    with pytest.raises(ParameterError, match=r"gbt takes no hyperparameter 'num_leavs' \(did "
                       r"you mean 'num_leaves'\?\)"):  # fmt: skip
        train_model(sqlite_ws, family="gbt", params={"num_leavs": 5})
    edit_plan(sqlite_ws, "  seed: 0\n", "  seed: 0\n  hyperparameters: {logistic: {c: 0.5}}\n")
    with pytest.raises(
        PlanError,
        match=r"^modeling.hyperparameters.logistic: logistic takes no hyperparameter 'c' "
        r"\(did you mean 'C'\?\); fix it in the plan$",
    ):
        train_model(sqlite_ws, family="logistic")
    # LightGBM's own parameters and aliases pass, as its scikit-learn classes take them.
    model = train_model(sqlite_ws, family="gbt", params={"n_estimators": 20, "min_data_in_leaf": 5})
    assert model.parameters["min_data_in_leaf"] == 5


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_takes_the_parameters_its_search_tunes(name: str) -> None:
    family = FAMILIES[name]
    kinds = {target for _, target in family.fits}
    for kind in kinds:
        assert set(family.search_space) <= family.parameter_names(kind)


def test_hyperparameters_are_checked_by_plan_validate_and_a_bad_value_is_one_line(
    cli: Any, project_dir: Path
) -> None:
    """A misspelt name passed plan validate; num_leaves: -3 ended in an internal error."""
    plan = project_dir / "mlplan.yaml"
    text = plan.read_text()
    assert "\nmodeling:\n" in text
    plan.write_text(
        text.replace("\nmodeling:\n", "\nmodeling:\n  hyperparameters: {gbt: {num_leavs: 5}}\n")
    )
    validated = cli("plan", "validate")
    assert validated.exit_code == 2
    assert (
        "modeling.hyperparameters.gbt: gbt takes no hyperparameter 'num_leavs' (did you mean "
        "'num_leaves'?)" in " ".join(validated.output.split())
    )

    plan.write_text(
        text.replace("\nmodeling:\n", "\nmodeling:\n  hyperparameters: {gbt: {num_leaves: -3}}\n")
    )
    assert cli("plan", "validate").exit_code == 0
    assert cli("data", "add", "customers").exit_code == 0
    assert cli("data", "split", "customers").exit_code == 0
    trained = cli("train", "--family", "gbt")
    assert trained.exit_code == 2
    message = " ".join(trained.output.split())
    assert "gbt could not be trained with the hyperparameters num_leaves: -3:" in message
    assert "Fix them in modeling.hyperparameters.gbt of the plan" in message
    assert "internal error" not in message
