"""A project on data shaped like a public export nobody here generated, end to end through the
CLI as a new user meets it (#13): a pandas row number and a shuffled loan id, a date, sensitive
attributes named by abbreviation and told by their values, an age, ratios with three decimals
and incomes past 20,000 with three decimals (where neighbouring values share one float32), an
employer with a long tail of rare values, a constant column, a field filled in only after the
outcome, and 3 % positives named "yes".

Each default a careful engineer would set is checked where the user sees it: the target and
the positive class the scan chose and why, ids kept out of features and of the leakage check,
PR AUC for rare positives, age in bands with every test row in one group, trees that split the
same way in ONNX, rare employers bucketed, the leak refused with its figure, the constant
column left out, every label metric
with its threshold, and strict JSON from every answer."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import yaml
from tests.conftest import strict_json, write_csv
from typer.testing import CliRunner


def loans_table(rows: int = 3000, seed: int = 13) -> pa.Table:
    """Loans as a bank's pandas export leaves them (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(19, 81, rows)
    debt = np.round(rng.gamma(2.0, 0.25, rows), 3)
    income = np.round(20000 + rng.gamma(2.0, 3000, rows), 3)
    employer = np.array([f"employer-{int(k)}" for k in rng.zipf(1.6, rows) % 400])
    group = rng.choice(["White", "Black", "Asian", "Hispanic"], rows, p=[0.6, 0.15, 0.15, 0.1])
    risk = -4.2 + 1.6 * debt - 0.00004 * (income - 20000)
    default = rng.random(rows) < 1 / (1 + np.exp(-risk))
    start = dt.date(2024, 1, 1)
    days = np.sort(rng.integers(0, 600, rows))
    return pa.table(
        {
            "Unnamed: 0": np.arange(rows),
            "loan_id": [f"L{i:06d}" for i in rng.permutation(rows) + 1],
            "applied": [str(start + dt.timedelta(days=int(d))) for d in days],
            "gndr": rng.choice(["M", "F"], rows),
            "grp": group,
            "age": age,
            "debt_ratio": debt,
            "income": income,
            "employer": employer,
            "country": ["NL"] * rows,
            # Filled in by collections after a default: known only after the outcome.
            "recovered": np.where(default, np.round(rng.gamma(2.0, 900, rows), 2), 0.0),
            "default": np.where(default, "yes", "no"),
        }
    )


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``mlplan ARGS`` in a fresh folder holding only the export; every --json answer is
    parsed strictly."""
    from mlplan.cli import app

    write_csv(loans_table(), tmp_path / "loans.csv")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLPLAN_STORE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def invoke(*args: str, exit_code: int = 0) -> Any:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == exit_code, f"mlplan {' '.join(args)}: {result.output}"
        if exit_code:
            return " ".join(result.output.split())
        return strict_json(result.stdout) if "--json" in args else result.stdout

    yield invoke


@pytest.mark.slow
def test_a_real_shaped_export_gets_the_defaults_a_careful_engineer_would_set(
    run: Any, tmp_path: Path
) -> None:
    scanned = run("init", "credit", "--from-data", "loans.csv", "--yes", "--json")
    assert scanned["target"] == "default"
    assert scanned["positive_class"] == "yes"  # the 3 % minority: the event
    assert set(scanned["sensitive"]) == {"gndr", "grp", "age"}
    assert "race or ethnicity" in scanned["sensitive"]["grp"]  # told by its values

    plan = yaml.safe_load((tmp_path / "mlplan.yaml").read_text())
    assert plan["datasets"]["loans"]["id_column"] == "loan_id"  # not the row number
    assert plan["metrics"]["primary"] == "pr_auc"  # rare positives
    age = next(s for s in plan["slices"] if s["name"] == "age")
    assert age["bins"] == [18, 25, 35, 45, 55, 65]

    run("data", "add", "loans")
    split = run("data", "split", "loans", "--json")
    compared = set(split["leakage"]["compared_columns"])
    assert not compared & {"Unnamed: 0", "loan_id", "applied", "default"}

    refused = run("train", "--baseline", exit_code=1)
    assert "feature 'recovered' alone explains" in refused  # a leak of the outcome, refused
    text = (tmp_path / "mlplan.yaml").read_text()
    (tmp_path / "mlplan.yaml").write_text(text.replace("  exclude: []", "  exclude: [recovered]"))

    baseline = run("train", "--baseline", "--json")
    features = baseline["features"]
    used = set(features["numeric"]) | set(features["categorical"])
    assert not used & {"Unnamed: 0", "loan_id", "country"}
    assert "country" in json.dumps(features["excluded"])  # left out, with a note
    assert features["infrequent"]["employer"]  # the long tail shares one bucket
    assert baseline["metrics"]["test"]["threshold"] == 0.5

    gbt = run("train", "--family", "gbt", "--json")  # incomes past 20,000: float32 parity
    assert gbt["parity"]["max_abs_diff"] < 1e-4

    evaluated = run("evaluate", baseline["name"], "--json")
    age_slice = next(s for s in evaluated["slices"] if s["name"] == "age")
    groups = {g["value"]: g["metrics"]["count"]["value"] for g in age_slice["groups"]}
    assert sum(groups.values()) == evaluated["rows"]  # every test row in exactly one group
    assert "age >= 65" in groups  # the open-ended band, not dropped
    assert evaluated["threshold"]["value"] != 0.5  # chosen on the valid rows, and said so

    status = run("status", "--json")
    assert status["items"]
