"""``mlplan features check``: the plan's features fitted on a split's training rows and
computed both ways on those rows and on logged requests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.conftest import ok

from mlplan.errors import DataError, PlanError
from mlplan.features import check_features
from mlplan.workspace import Workspace

FEATURES = """
features:
  log_charges: log1p(charges)
  z_age:
    expr: clip(zscore(age), -3, 3)
    description: age in training standard deviations
  age_band: bucketize(age, quantiles(age, 4))
  region_index: vocabulary(region)
  south: "map(region, {'south': 1}, default=0)"
  charges_per_year: fillna(charges, mean(charges)) / age
  gender_missing: is_null(gender)
"""


def _with_features(ws: Workspace, features: str = FEATURES) -> Workspace:
    ws.plan_path.write_text(ws.plan_path.read_text() + features)
    ws.__dict__.pop("plan", None)
    return ws


def test_the_plan_features_agree_on_the_training_rows_and_logged_requests(
    split_ws: Workspace,
) -> None:
    ws = _with_features(split_ws)
    logged = [
        json.dumps([{"age": 40, "charges": None, "region": "west", "gender": None}]),
        json.dumps([{"age": 0, "charges": -1.0, "region": "", "gender": "female"}, {}]),
    ]
    report = check_features(ws, rows=None, logged=logged)
    assert report.passed, report.mismatches
    assert report.rows["logged"] == 3
    assert report.rows["training"] > 200
    assert report.features[0] == "log_charges"


def test_a_column_the_data_lacks_is_named_with_the_nearest(split_ws: Workspace) -> None:
    ws = _with_features(split_ws, "\nfeatures:\n  r: charge / 2\n")
    with pytest.raises(DataError, match=r"reads 'charge', which is not a column of customers@1"):
        check_features(ws)


def test_a_plan_without_features_has_nothing_to_check(split_ws: Workspace) -> None:
    with pytest.raises(PlanError, match=r"has no 'features:' section"):
        check_features(split_ws)


def test_the_command_reports_in_json(split_ws: Workspace, cli: Any) -> None:
    _with_features(split_ws)
    result = ok(cli("features", "check", "--rows", "50", "--json"))
    answer = json.loads(result.stdout)
    assert answer["passed"] is True and answer["rows"] == {"training": 50}
    assert answer["rtol"] == 1e-6
    text = ok(cli("features", "check", "--logged", "0")).output
    assert "No skew: 7 feature(s) agree on" in text


def test_plan_validation_names_a_feature_column_the_data_lacks(split_ws: Workspace) -> None:
    from mlplan.data import check_plan_against_data

    ws = _with_features(split_ws, "\nfeatures:\n  r: charge / 2\n  s: r + age\n")
    problems = check_plan_against_data(ws)
    assert any(
        "feature 'r' ('charge / 2') reads 'charge', which is not a column (did you mean "
        "'charges'" in p
        for p in problems
    ), problems
    assert not any("feature 's'" in p for p in problems)  # r is the feature above it
