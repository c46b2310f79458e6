"""``mlplan init --from-data``: what the scan chose, and why, is shown; what it cannot tell
(the target, the positive class) is asked for or refused, never guessed silently."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tests.conftest import arrests_table, ok, write_csv

from mlplan.plan import parse_plan


def test_without_a_clear_target_init_lists_the_candidates_and_exits_2(
    cli: Any, project_dir: Path
) -> None:
    write_csv(arrests_table(), project_dir / "data" / "arrests.csv")
    result = cli("init", "arrests", "--from-data", "data/arrests.csv", "--yes", "-p", "new")
    assert result.exit_code == 2
    assert "is clearly the target (no name says so); candidates, likeliest first: " in (
        result.stderr
    )
    assert "employed (2 values); released (2 values);" in result.stderr
    assert result.stderr.rstrip().endswith("give it with --target COLUMN")
    assert not (project_dir / "new" / "mlplan.yaml").exists()


def test_a_clear_target_is_used_and_init_says_why(cli: Any, project_dir: Path) -> None:
    shown = ok(cli("init", "scan", "--from-data", "data/customers.csv", "--yes", "-p", "a"))
    lines = shown.stdout.splitlines()
    assert lines[0] == "Target churned: name suggests the outcome; 2 values; the last column"
    assert lines[1].startswith("  other candidates: region (3 values); gender (2 values; a ")
    assert lines[2] == (
        "Positive class 1: the minority class (13.2% of the rows), named like a positive"
    )
    assert "Sensitive attribute gender: name suggests sex or gender" in lines
    as_json = json.loads(
        ok(
            cli("init", "scan", "--from-data", "data/customers.csv", "-y", "--json", "-p", "b")
        ).stdout
    )
    assert as_json["target_reason"] == "name suggests the outcome; 2 values; the last column"
    assert as_json["positive_class"] == "1" and as_json["positive_sure"] is True
    assert as_json["sensitive"] == {
        "gender": "name suggests sex or gender",
        "age": "name suggests age",
    }
    text = (project_dir / "b" / "mlplan.yaml").read_text()
    assert 'target: "churned"  # chosen by the scan: name suggests the outcome' in text


def test_a_majority_named_yes_is_not_taken_as_positive_without_saying_so(
    cli: Any, project_dir: Path
) -> None:
    write_csv(arrests_table(), project_dir / "data" / "arrests.csv")
    args = ("init", "arrests", "--from-data", "data/arrests.csv", "--target", "released", "-y")
    shown = ok(cli(*args, "-p", "a")).stdout
    assert (
        "Positive class No: the minority class (14.8% of the rows), taken as the event; 'Yes' "
        "is named like a positive but holds 85.2% — not sure: choose with --positive-class"
    ) in shown
    text = (project_dir / "a" / "mlplan.yaml").read_text()
    assert 'positive_class: "No"' in text
    assert "# positive class from the scan: the minority class (14.8% of the rows)" in text
    chosen = json.loads(ok(cli(*args, "--positive-class", "Yes", "--json", "-p", "b")).stdout)
    assert chosen["positive_class"] == "Yes" and "positive_reason" not in chosen


def test_rare_positives_make_pr_auc_primary_with_a_recall_floor(
    cli: Any, project_dir: Path
) -> None:
    rng = np.random.default_rng(11)
    rows = 3000
    table = pa.table(
        {
            "amount": rng.gamma(2.0, 40.0, rows).round(2),
            "channel": rng.choice(["web", "store", "phone"], rows),
            "fraud": (rng.random(rows) < 0.03).astype(np.int64),
        }
    )
    write_csv(table, project_dir / "data" / "payments.csv")
    ok(cli("init", "payments", "--from-data", "data/payments.csv", "-y", "-p", "p"))
    text = (project_dir / "p" / "mlplan.yaml").read_text()
    metrics = text[text.index("\nmetrics:") : text.index("  software:")]
    assert metrics.splitlines()[2:] == [
        '  # Positives ("1") are rare (3.1% of the rows): ROC AUC stays high on rare',
        "  # events even when few are caught, so the primary metric is PR AUC (average precision;",
        "  # chance: 0.031), with a recall floor at the decision threshold. Set both to what",
        "  # the use needs.",
        "  primary: pr_auc",
        "  ml:",
        "    - {name: pr_auc, direction: maximize, target: 0.5}",
        "    - {name: recall, direction: maximize, target: 0.6}  # at the decision threshold",
        "    - {name: precision, direction: maximize, target: null}",
        "    - {name: roc_auc, direction: maximize, target: null}",
    ]
    assert "metric: pr_auc, op: '<', threshold: 0.4" in text
    # The threshold meets the recall target (the F1 one caught a third of the positives).
    evaluation = text[text.index("\nevaluation:") :]
    assert "  threshold: recall>=0.6  # or a number, f1, youden\n" in evaluation
    assert "the threshold of best F1 catches few of them and misses the" in evaluation
    validated = json.loads(ok(cli("plan", "validate", "--json", "-p", "p")).stdout)
    assert validated["valid"] is True
    assert parse_plan(text).evaluation.threshold == "recall>=0.6"


def test_common_positives_keep_roc_auc(cli: Any, project_dir: Path) -> None:
    ok(cli("init", "scan", "--from-data", "data/customers.csv", "-y", "-p", "c"))
    text = (project_dir / "c" / "mlplan.yaml").read_text()
    assert "  primary: roc_auc\n" in text and "# Positives (" not in text
    assert "\n  threshold: f1  # binary: a number, or f1 / youden / recall>=X" in text


def test_a_task_given_by_hand_is_held_against_the_target_at_init(
    cli: Any, project_dir: Path
) -> None:
    """``--task binary`` on a four-grade column wrote a plan that only ``data add`` refused."""
    rng = np.random.default_rng(4)
    table = pa.table({"x": rng.normal(size=200), "grade": rng.choice(list("ABCD"), 200)})
    write_csv(table, project_dir / "data" / "grades.csv")
    args = ("init", "g", "--from-data", "data/grades.csv", "--target", "grade", "-y", "-p", "g")
    refused = cli(*args, "--task", "binary")
    assert refused.exit_code == 2
    assert " ".join(refused.stderr.split()) == (
        "error: grades.csv: task binary needs a target with two values; 'grade' has 4 "
        "(A, B, C, D): set task: multiclass, or name a two-valued target (choose with --task "
        "and --target)"
    )
    assert not (project_dir / "g" / "mlplan.yaml").exists()
    assert ok(cli(*args, "--task", "multiclass"))
