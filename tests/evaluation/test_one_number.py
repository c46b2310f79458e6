"""One number, one interval: ``models compare`` and ``evaluate`` measure with the same engine
and the same bootstrap draws, and every label metric says the threshold it used."""

from __future__ import annotations

import json

import pytest
from tests.conftest import chdir
from typer.testing import CliRunner

from mlplan.cli import app
from mlplan.workspace import Workspace


def test_few_resamples_on_the_valid_rows_draw_the_report(trained: Workspace) -> None:
    # With 5 resamples a percentile interval can miss its own point value; the slice plot
    # must still draw it (it used to end in "'xerr' must not contain negative values").
    runner = CliRunner()
    with chdir(trained.root):
        shown = runner.invoke(
            app, ["evaluate", "logistic-1", "--bootstrap", "5", "--split", "valid", "--json"]
        )
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    assert report["bootstrap"] == 5 and report["part"] == "valid"


def test_compare_and_evaluate_give_one_number_one_interval(
    trained: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    with chdir(trained.root):
        before = runner.invoke(app, ["models", "compare", "--json"])
        evaluated = runner.invoke(app, ["evaluate", "logistic-1", "--json"])
        after = runner.invoke(app, ["models", "compare", "--json"])
        shown = runner.invoke(app, ["models", "compare"])
    for result in (before, evaluated, after, shown):
        assert result.exit_code == 0, result.output
    report = json.loads(evaluated.stdout)
    model = {r["name"]: r for r in json.loads(after.stdout)["rows"]}["logistic-1"]
    # The same engine, seed, resamples and level: the same value and the same interval.
    assert json.loads(after.stdout)["bootstrap"] == report["bootstrap"] == 60
    for metric in ("roc_auc", "pr_auc", "log_loss", "brier"):
        assert model["metrics"][metric] == report["overall"][metric]
        assert model["metrics"][metric]["low"] < model["metrics"][metric]["high"]
    # Before the evaluation the package's threshold is training's 0.5; evaluate chose one on
    # the validation rows and recorded it, and compare now decides labels at it, as evaluate.
    first = {r["name"]: r for r in json.loads(before.stdout)["rows"]}["logistic-1"]
    assert first["threshold"] == {"value": 0.5, "set_by": "training"}
    chosen = report["threshold"]["value"]
    assert chosen != 0.5
    assert model["threshold"] == {"value": chosen, "set_by": "evaluate: f1 on the valid rows"}
    for metric in ("accuracy", "precision", "recall", "f1", "fpr"):
        assert model["metrics"][metric] == report["overall"][metric]
    assert first["metrics"]["accuracy"] != model["metrics"]["accuracy"]
    text = " ".join(shown.output.split())
    assert f"at threshold {chosen:.4g} (evaluate: f1 on the valid rows)" in text
