"""A decision threshold no better than a constant answer is said in ``evaluate`` (a warning
line) and recorded as a failing risk that ``status`` shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tests.conftest import chdir, register_split_train, write_csv
from tests.evaluation.conftest import churn_table, plan_text
from typer.testing import CliRunner

from mlplan.checklist import status
from mlplan.cli import app
from mlplan.evaluation import THRESHOLD_RISK, evaluate, versus_constant
from mlplan.workspace import Workspace


@pytest.mark.parametrize(
    ("share", "flagged_negatives", "caught", "no_better", "constant"),
    [
        # The positive class is the 83 % majority; the threshold flags nearly every row.
        (0.83, 0.98, 0.995, True, "positive"),
        # A rare event, caught in part: less accurate than always "no", yet not trivial.
        (0.03, 0.02, 0.4, False, "negative"),
        # A rare event, none caught: always "no" does as well.
        (0.03, 0.01, 0.0, True, "negative"),
        # Common positives, a useful threshold.
        (0.4, 0.1, 0.8, False, "negative"),
    ],
    ids=["majority-positive", "rare-caught", "rare-none-caught", "useful"],
)
def test_decisions_are_compared_with_a_constant_answer(
    share: float, flagged_negatives: float, caught: float, no_better: bool, constant: str
) -> None:
    rows = 10_000
    positives = round(share * rows)
    positive = np.arange(rows) < positives
    rng = np.random.default_rng(0)
    flag = np.where(positive, rng.random(rows) < caught, rng.random(rows) < flagged_negatives)
    score = np.where(flag, 0.9, 0.1)
    versus = versus_constant(score, positive, 0.5)
    assert (versus["no_better"], versus["constant"]) == (no_better, constant)
    assert versus["rows"] == rows


def majority_positive_table(rows: int = 1600, seed: int = 5) -> pa.Table:
    """The customers, but the "positive" class 1 is the 83 % majority and barely follows
    the features: an F1-chosen threshold then flags nearly every row."""
    table = churn_table(rows, seed)
    rng = np.random.default_rng(seed + 1000)  # not the stream the table was drawn from
    charges = table.column("charges").to_numpy()
    churned = rng.random(rows) < np.clip(0.83 + 0.002 * (charges - 60), 0, 1)
    return table.set_column(
        table.column_names.index("churned"), "churned", pa.array(churned.astype(np.int64))
    )


@pytest.fixture
def majority(tmp_path: Path) -> Workspace:
    write_csv(majority_positive_table(), tmp_path / "data" / "customers.csv")
    (tmp_path / "mlplan.yaml").write_text(plan_text())
    return register_split_train(Workspace(tmp_path), id_column=None)


def test_a_threshold_no_better_than_always_yes_is_a_warning_and_a_failing_risk(
    majority: Workspace,
) -> None:
    report = evaluate(majority, "logistic-1", n_boot=0).report
    threshold = report["threshold"]
    versus = threshold["versus_constant"]
    assert versus["no_better"] and versus["constant"] == "positive"
    assert versus["accuracy"] <= versus["constant_accuracy"] and versus["flagged"] > 0.95
    risk = next(k for k in report["risks"] if k["id"] == THRESHOLD_RISK)
    assert risk["state"] == "failing"
    assert risk["evidence"] == threshold["warning"]
    assert (
        "does no better than always answering '1' on the 160 validation rows" in (risk["evidence"])
    )
    assert risk["evidence"].endswith(
        "choose another threshold (evaluation.threshold, or --threshold), or check positive_class"
    )
    item = status(majority).get("eval.risks")
    assert item.state == "failing" and THRESHOLD_RISK in item.evidence
    with chdir(majority.root):
        shown = CliRunner().invoke(app, ["evaluate", "logistic-1", "--bootstrap", "0"])
    assert shown.exit_code == 0, shown.output
    said = " ".join(shown.output.split())
    assert "warning: the decision threshold" in said
    assert "does no better than always answering '1'" in said


def test_a_useful_threshold_adds_no_risk(trained: Workspace) -> None:
    report = evaluate(trained, "logistic-1", n_boot=0).report
    assert report["threshold"]["versus_constant"]["no_better"] is False
    assert "warning" not in report["threshold"]
    assert THRESHOLD_RISK not in {k["id"] for k in report["risks"]}
