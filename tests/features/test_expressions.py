"""The expression language: what parses, what the whitelist refuses and how the message
names the feature, the expression and the token, with the plan file's line."""

from __future__ import annotations

import pyarrow as pa
import pytest

from mlplan.core import parse_expression, render_expression
from mlplan.errors import DataError, PlanError
from mlplan.features import FeatureDefinitions, fit_features
from mlplan.plan import parse_plan

PLAN = "project: {name: churn}\ntask: binary\ntarget: churned\nfeatures:\n"


@pytest.mark.parametrize(
    "text",
    [
        "log1p(income) / (age + 1)",
        "-x ** 2",
        "(-x) ** 2",
        "a < b and not c or d",
        "clip(zscore(age), -3, 3)",
        "bucketize(x, [0, 1.5, 10])",
        "bucketize(x, quantiles(x, 4))",
        "map(plan, {'pro': 1, 'basic': 0.5}, default=0)",
        "vocabulary(city, top_k=10)",
        "x % 3 - -2",
        "where(is_null(a), fillna(b, 0), a != 2)",
        "(a < b) < c",
        "mean(x - mean(x)) + std(x) + min(x) + max(x)",
    ],
)
def test_every_construct_parses_and_renders_back_to_the_same_tree(text: str) -> None:
    tree = parse_expression(text)
    assert parse_expression(render_expression(tree)) == tree


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os').system('x')", r"\"__import__\('os'\).system\" is not a function"),
        ("os.system(1)", r"'os.system' is not a function"),
        ("open('f')", r"'open' is not a function; use one of: abs, bucketize"),
        ("x.real", r"'x.real' is not allowed"),
        ("x[0]", r"'x\[0\]' is not allowed"),
        ("lambda: 1", r"'lambda: 1' is not allowed"),
        ("[x for x in y]", r"is not allowed"),
        ("x if y else z", r"'x if y else z' is not allowed"),
        ("a < b < c", r"chained comparison 'a < b < c'; write each with 'and'"),
        ("a in b", r"'a in b': use < <= > >= == or !="),
        ("'pro'", r"the string \"'pro'\" is only allowed as a key of map"),
        ("log(x, 2)", r"log\(\) takes 1 argument; got 2"),
        ("clip(x, 0)", r"clip\(\) takes 3 arguments; got 2"),
        ("bucketize(x, [3, 1])", r"bucketize edges \[3, 1\] must strictly increase"),
        ("bucketize(x, y)", r"bucketize needs edges: a list of numbers or quantiles"),
        ("map(x, {1: 2})", r"map\(\) keys are categories \(strings\); got '1'"),
        ("map(x, {'': 2})", r"map\(\) cannot map '' \(a missing category\)"),
        ("quantiles(x, 1)", r"quantiles\(x, n\) needs n >= 2"),
        ("vocabulary(x, n=3)", r"vocabulary\(\) takes no keyword 'n'; it takes top_k="),
        ("log", r"'log' is a function; call it"),
        ("x +", r"is not valid: invalid syntax"),
        ("1e999", r"is not a finite number"),
    ],
)
def test_the_whitelist_refuses_with_the_offending_token(text: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        parse_expression(text)


def test_a_bad_expression_in_the_plan_names_file_line_and_feature() -> None:
    plan = PLAN + "  ratio: income / age\n  logged:\n    expr: log1p(income) +\n"
    with pytest.raises(PlanError, match=r"^mlplan.yaml:7: features.logged.expr: expression "):
        parse_plan(plan)
    plan = PLAN + "  ratio: os.system(1)\n"
    with pytest.raises(
        PlanError, match=r"^mlplan.yaml:5: features.ratio.expr: .*'os.system' is not a function"
    ):
        parse_plan(plan)


def test_a_feature_may_use_only_the_features_above_it() -> None:
    with pytest.raises(PlanError, match=r"feature 'a' \('b \+ 1'\) uses 'b', defined at or below"):
        parse_plan(PLAN + "  a: b + 1\n  b: x\n")
    with pytest.raises(PlanError, match=r"feature 'x' \('x \+ 1'\) reads its own name"):
        parse_plan(PLAN + "  x: x + 1\n")
    plan = parse_plan(PLAN + "  b: x * 2\n  a: b + 1\n")
    defs = FeatureDefinitions.from_plan(plan)
    assert render_expression(defs.features[1].node) == "x * 2 + 1"
    assert defs.columns == ["x"]


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (
            {"r": "incme / 2"},
            r"feature 'r' \('incme / 2'\) reads 'incme', which is not a column "
            r"of rows; did you mean 'income'\?",
        ),
        (
            {"r": "plan + 1"},
            r"feature 'r' \('plan \+ 1'\) reads 'plan' as a number, but it holds "
            r"categories; use map\(plan",
        ),
        ({"r": "map(income, {'a': 1})"}, r"reads 'income' as categories, but it holds numbers"),
        ({"income": "log1p(plan_x)"}, r"feature 'income' has the name of a column"),
        ({"r": "clip(income, 0, income)"}, r"clip\(x, lo, hi\) needs bounds known"),
        ({"r": "income + quantiles(income, 3)"}, r"quantiles\(x, n\) gives bucket edges"),
        ({"r": "mean(income) + 1"}, r"reads no column"),
    ],
)
def test_columns_and_kinds_are_checked_against_the_data(
    features: dict[str, str], message: str
) -> None:
    table = pa.table({"income": [1.0, 2.0], "plan": ["a", "b"]})
    with pytest.raises(DataError, match=message):
        fit_features(FeatureDefinitions.from_mapping(features), table, where="rows")


def test_an_analyzer_with_no_training_value_is_named() -> None:
    table = pa.table({"income": pa.array([None, None], pa.float64())})
    with pytest.raises(DataError, match=r"mean\(income\) \(feature 'z'\) has no value on the "):
        fit_features(FeatureDefinitions.from_mapping({"z": "zscore(income)"}), table)
