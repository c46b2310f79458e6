"""A decision threshold that meets a recall floor: ``recall>=X`` in the plan or on the
command line chooses the highest threshold whose recall on the validation rows is at least
X, which the template's rare-positive plan uses to meet its own recall target."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tests.conftest import chdir, register_split_train, write_csv
from tests.evaluation.conftest import churn_table, plan_text
from typer.testing import CliRunner

from mlplan.cli import app
from mlplan.evaluation import evaluate
from mlplan.evaluation._analysis import choose_threshold
from mlplan.evaluation._predict import decision_threshold
from mlplan.workspace import Workspace


def rare_positive_table(rows: int = 4000, seed: int = 7) -> pa.Table:
    """The customers, but churn is a rare event (about 5 %) that follows the charges."""
    table = churn_table(rows, seed)
    rng = np.random.default_rng(seed + 2000)
    charges = table.column("charges").to_numpy()
    churned = rng.random(rows) < 1 / (1 + np.exp(-(-3.6 + 0.06 * (charges - 60))))
    return table.set_column(
        table.column_names.index("churned"), "churned", pa.array(churned.astype(np.int64))
    )


@pytest.fixture
def rare(tmp_path: Path) -> Workspace:
    write_csv(rare_positive_table(), tmp_path / "data" / "customers.csv")
    plan = re.sub(r"\n  threshold: f1 .*\n", "\n  threshold: recall>=0.6\n", plan_text())
    recall = "{name: recall, direction: maximize, target: "
    assert recall + "null}" in plan
    plan = plan.replace(recall + "null}", recall + "0.6}")
    (tmp_path / "mlplan.yaml").write_text(plan)
    return register_split_train(Workspace(tmp_path), id_column=None)


@pytest.mark.parametrize("floor", [0.2, 0.6, 0.75, 1.0])
def test_the_floor_gives_the_highest_threshold_that_meets_it(floor: float) -> None:
    rng = np.random.default_rng(4)
    positive = rng.random(400) < 0.06
    # Rounded scores: ties among positives, and between positives and negatives.
    score = np.round(np.clip(0.3 * positive + 0.7 * rng.random(400), 0, 1), 2)
    chosen, recall = choose_threshold(score, positive, f"recall>={floor:g}")

    def recall_at(t: float) -> float:
        return float((score[positive] >= t).mean())

    meeting = [t for t in np.unique(score) if recall_at(t) >= floor]
    assert chosen == max(meeting)
    assert recall == recall_at(chosen) >= floor


def test_a_plan_floor_is_met_on_the_valid_rows_where_f1_misses_it(rare: Workspace) -> None:
    by_f1 = evaluate(rare, "logistic-1", part="valid", threshold="f1", n_boot=0).report
    report = evaluate(rare, "logistic-1", part="valid", n_boot=0).report
    threshold = report["threshold"]
    assert (threshold["criterion"], threshold["chosen_on"]) == ("recall>=0.6", "valid")
    # Evaluated on the valid rows themselves, recall at the chosen threshold is the floor's.
    assert report["overall"]["recall"]["value"] == threshold["criterion_value"] >= 0.6
    assert by_f1["overall"]["recall"]["value"] < 0.6
    assert threshold["value"] < by_f1["threshold"]["value"]
    states = [
        next(g["state"] for g in r["gates"] if g["id"] == "target:recall") for r in (by_f1, report)
    ]
    assert states == ["fail", "pass"]


def test_the_command_line_takes_a_floor_and_names_a_bad_one(
    rare: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    with chdir(rare.root):
        shown = runner.invoke(
            app, ["evaluate", "logistic-1", "--threshold", "recall>=0.8", "--bootstrap", "0"]
        )
        listed = runner.invoke(app, ["models", "compare", "--json"])
        bad = runner.invoke(app, ["evaluate", "logistic-1", "--threshold", "recall>=80"])
        typo = runner.invoke(app, ["evaluate", "logistic-1", "--threshold", "recal>=0.8"])
    assert shown.exit_code == 0, shown.output
    assert re.search(
        r"Decision threshold [\d.]+ \(recall>=0\.8, chosen on the valid split\)",
        " ".join(shown.output.split()),
    )
    # A threshold the package did not hold makes a new package version, as with f1.
    assert "New package version logistic-1@2" in " ".join(shown.output.split())
    assert listed.exit_code == 0, listed.output
    assert "recall>=0.8" in json.dumps(json.loads(listed.stdout))
    assert bad.exit_code == 2
    assert "the recall floor of --threshold 'recall>=80' must be in (0, 1]" in bad.output
    assert typo.exit_code == 2
    assert "--threshold must be a number in (0, 1), f1, youden or recall>=X" in typo.output


def test_a_floor_no_threshold_can_be_shown_to_meet_is_a_warning() -> None:
    rng = np.random.default_rng(2)
    score = rng.random(200)
    chosen = decision_threshold("recall>=0.6", None, (score, np.zeros(200, dtype=bool)))
    assert chosen["value"] == 0.5 and chosen["criterion"] == "recall>=0.6"
    assert chosen["warning"] == (
        "no threshold reaches recall>=0.6 on the 200 validation rows: none of them is "
        "positive; 0.5 is used, and the recall target is judged at it"
    )
