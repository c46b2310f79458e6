"""One number, one interval: ``models compare`` and ``evaluate`` measure with the same engine
and the same bootstrap draws, and every label metric says the threshold it used."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from tests.conftest import chdir
from typer.testing import CliRunner

from mlplan.checklist import status
from mlplan.cli import app
from mlplan.evaluation._analysis import per_class
from mlplan.modeling import Predictions, interval, slice_metrics
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


def test_per_class_figures_share_the_overall_draws(trained: Workspace) -> None:
    # The positive class's recall and precision are the overall recall and precision: one
    # number, so one interval, on the per-class line (and the rare-class line) as overall.
    runner = CliRunner()
    with chdir(trained.root):
        shown = runner.invoke(app, ["evaluate", "logistic-1", "--json"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    positive = next(c for c in report["per_class"] if c["class"] == report["positive"])
    for metric in ("recall", "precision", "f1", "fpr", "fnr"):
        assert positive[metric] == report["overall"][metric], metric
        assert positive[metric]["low"] < positive[metric]["high"]


def test_multiclass_per_class_intervals_come_from_the_overall_resamples() -> None:
    rng = np.random.default_rng(5)
    y = rng.choice(["a", "b", "c"], 900, p=[0.6, 0.3, 0.1])
    p = np.where(rng.random(900) < 0.7, y, rng.choice(["a", "b", "c"], 900))
    data = Predictions.from_arrays(y, p, kind="multiclass")
    overall = slice_metrics(data, n_boot=80, seed=3, level=0.9)
    classes = per_class(data, rare_share=0.15, min_support=10, level=0.9, overall=overall)
    # Macro recall is the mean of the classes' recalls in every draw: the per-class draws
    # are the overall group's own resamples.
    drawn = {c["class"]: c["recall"] for c in classes}
    confusion = overall.overall_draws["_confusion"]
    per_draw = np.diagonal(confusion, axis1=1, axis2=2) / confusion.sum(axis=2)
    assert np.allclose(per_draw.mean(axis=1), overall.overall_draws["macro_recall"])
    for j, name in enumerate(data.classes):
        assert (drawn[name]["low"], drawn[name]["high"]) == interval(per_draw[:, j], 0.9)
    assert [c["class"] for c in classes if c["rare"]] == ["c"]
