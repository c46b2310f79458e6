"""One number, one interval: ``models compare`` and ``evaluate`` measure with the same engine
and the same bootstrap draws, and every label metric says the threshold it used."""

from __future__ import annotations

import json
import re

import pytest
from tests.conftest import chdir
from typer.testing import CliRunner

from mlplan.checklist import status
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


def test_every_label_metric_says_its_threshold(
    trained: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    with chdir(trained.root):
        trained_text = runner.invoke(app, ["train", "--baseline"])
        shown = runner.invoke(app, ["models", "show", "logistic-2", "--json"])
        listed = runner.invoke(app, ["models", "list"])
        on_valid = runner.invoke(
            app, ["evaluate", "logistic-2", "--bootstrap", "0", "--split", "valid"]
        )
        on_test = runner.invoke(app, ["evaluate", "logistic-2", "--bootstrap", "0"])
    for result in (trained_text, shown, listed, on_valid, on_test):
        assert result.exit_code == 0, result.output
    # Training decides labels at 0.5: its report, its output, the list and status say so.
    assert "Metrics (labels at threshold 0.5)" in trained_text.output
    metrics = json.loads(shown.stdout)["metrics"]
    assert {split: m["threshold"] for split, m in metrics.items()} == {
        "train": 0.5,
        "valid": 0.5,
        "test": 0.5,
    }
    assert "(labels at threshold 0.5)" in listed.output
    items = status(trained)
    assert "(labels at threshold 0.5)" in items.get("model.quick_and_dirty").evidence
    # evaluate decides them at the threshold it chose, says which, and whether it recorded it.
    valid_text = " ".join(on_valid.output.split())
    chosen = re.search(r"Overall \(labels at threshold (0\.\d+)\)", valid_text)
    assert chosen is not None and chosen.group(1) != "0.5"
    assert "not recorded: evaluated on the valid rows" in valid_text
    test_text = " ".join(on_test.output.split())
    assert re.search(
        r"Decision threshold 0\.\d+ \(f1, chosen on the valid split\), recorded", test_text
    )
    error_types = items.get("eval.error_types").evidence
    assert re.search(r"FPR \d\.\d+, FNR \d\.\d+ at threshold 0\.\d+ overall", error_types)
    card = (trained.root / "reports" / "logistic-2" / "model-card.md").read_text()
    assert re.search(r"Labels \(accuracy, precision, recall, F1 …\) at threshold 0\.\d+ \(f1", card)
