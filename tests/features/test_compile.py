"""Each function of the language computed both ways — DuckDB SQL and the ONNX nodes in ONNX
Runtime — on data shaped like real data, and the two agree; the analyzers read the training
rows only."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest

from mlplan.features import (
    FEATURES_FILE,
    FeatureDefinitions,
    FittedFeatures,
    check_skew,
    fit_features,
    onnx_inputs,
)


def _table(rows: int = 400, seed: int = 5) -> pa.Table:
    """Incomes with the values where the two ways could part: missing, NaN, zero, negative,
    exactly on an edge, decimals a float32 step from a threshold, huge; plans with missing,
    empty and unseen categories."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(8, 1.5, rows).round(2)
    income[:12] = [0.0, -1.0, -0.5, 10.0, 100.0, 0.1, 0.30000001, 1e6, 710.0, -2.0, 2.5, 1e-7]
    mask = np.zeros(rows, dtype=bool)
    mask[12:40] = True
    age = rng.integers(0, 90, rows).astype(np.float64)
    age[40:50] = 0.0
    age[50] = np.nan
    plans = rng.choice(
        ["basic", "pro", "team", "enterprise", "trial"], rows, p=[0.4, 0.3, 0.15, 0.1, 0.05]
    )
    plan = pa.array(plans, mask=rng.random(rows) < 0.05)
    plan = pa.array([("" if i in (60, 61) else v) for i, v in enumerate(plan.to_pylist())])
    return pa.table(
        {
            "income": pa.array(income, mask=mask),
            "age": age,
            "plan": plan,
            "active": rng.random(rows) < 0.5,
            "visits": rng.integers(0, 5, rows),
        }
    )


FEATURES = {
    "ratio": "income / age",
    "log_income": "log1p(income)",
    "ln_income": "log(income)",
    "growth": "exp(age / 10)",
    "blowup": "exp(income)",
    "root": "sqrt(income)",
    "size": "abs(income - 100)",
    "clipped": "clip(income, 0, 10000)",
    "z_income": "zscore(log_income)",
    "z_clipped": "clip(zscore(age), -2, 2)",
    "above": "income > 0.1",
    "at_least": "income >= 10",
    "is_ten": "income == 10 or age != 3",
    "both": "active and not visits < 2",
    "chosen": "where(age > 60, income, -income)",
    "edges": "bucketize(income, [0, 10, 100, 1000])",
    "quartile": "bucketize(income, quantiles(income, 4))",
    "plan_score": "map(plan, {'basic': 0.1, 'pro': 0.7, 'team': 1.3}, default=-1)",
    "plan_nullable": "map(plan, {'pro': 1})",
    "plan_index": "vocabulary(plan, top_k=3)",
    "plan_missing": "is_null(plan)",
    "income_missing": "is_null(income) + is_null(ratio)",
    "filled": "fillna(income, mean(income))",
    "power": "age ** 0.5 + income ** 2",
    "modulo": "visits % 3 - age % -7",
    "centred": "income - mean(income) + std(income) * 0 + max(age) - min(age)",
    # Conditions nested: comparisons, not, a feature and a number read as true when non-zero.
    "nested": "where(income > 5 and not (age < 30 or plan_missing), log_income, 0)",
    "not_income": "not income or income != age",
}


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return _table()


@pytest.fixture(scope="module")
def fitted(table: pa.Table) -> FittedFeatures:
    return fit_features(
        FeatureDefinitions.from_mapping(FEATURES), table, rows=np.arange(0, 300), where="rows"
    )


@pytest.fixture(scope="module")
def both(
    fitted: FittedFeatures, table: pa.Table
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    sql = fitted.transform(table)
    session = ort.InferenceSession(fitted.graph(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, onnx_inputs(table, fitted.types))
    return sql, {o.name: v.ravel() for o, v in zip(session.get_outputs(), outputs, strict=True)}


@pytest.mark.parametrize("name", list(FEATURES))
def test_each_feature_is_the_same_both_ways(
    name: str, both: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]
) -> None:
    sql, graph = both
    assert sql[name].dtype == np.float32 and graph[name].dtype == np.float32
    np.testing.assert_allclose(graph[name], sql[name], rtol=1e-6, atol=1e-6, equal_nan=True)


def test_the_edge_values_give_what_the_documentation_says(
    both: tuple[dict[str, np.ndarray], dict[str, np.ndarray]], table: pa.Table
) -> None:
    sql, graph = both
    for values in (sql, graph):
        # log1p(-1) is -inf, below -1 missing; log(0) is -inf; sqrt of a negative missing.
        assert values["log_income"][1] == -np.inf and np.isnan(values["log_income"][9])
        assert values["ln_income"][0] == -np.inf and np.isnan(values["root"][1])
        # Division by zero is IEEE's: x/0 is inf, 0/0 missing; exp past float32 is inf.
        assert values["ratio"][40] in (np.inf, -np.inf) or np.isnan(values["ratio"][40])
        assert values["blowup"][8] == np.inf
        # A value exactly on an edge goes to the bucket above it (numpy.digitize).
        assert values["edges"][3] == 2 and values["edges"][4] == 3 and values["edges"][0] == 1
        # A missing input is missing out, except where is_null and fillna read it.
        assert np.isnan(values["edges"][12]) and np.isnan(values["above"][12])
        assert values["income_missing"][12] == 2 and values["filled"][12] > 0
        # A missing or empty category maps to missing; one not listed to the default.
        assert np.isnan(values["plan_score"][60]) and values["plan_missing"][60] == 1
    plans = table.column("plan").to_pylist()
    enterprise = plans.index("enterprise")
    assert sql["plan_score"][enterprise] == -1 and np.isnan(sql["plan_nullable"][enterprise])
    # 0.30000001 is one float32 from 0.3; both read the float32 the graph gets.
    assert sql["above"][6] == graph["above"][6] == 1


def test_the_vocabulary_is_by_frequency_then_value_and_unseen_is_minus_one(
    fitted: FittedFeatures,
    both: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    table: pa.Table,
) -> None:
    vocabulary = fitted.constants["vocabulary(plan, top_k=3)"]
    assert vocabulary == ["basic", "pro", "team"]
    plans = table.column("plan").to_pylist()
    sql, graph = both
    for values in (sql, graph):
        assert values["plan_index"][plans.index("pro")] == 1
        assert values["plan_index"][plans.index("trial")] == -1


def test_analyzers_read_the_training_rows_only(table: pa.Table) -> None:
    defs = FeatureDefinitions.from_mapping({"z": "zscore(income)", "v": "vocabulary(plan)"})
    train = np.arange(300)
    before = fit_features(defs, table, rows=train)
    income = table.column("income").to_numpy(zero_copy_only=False).copy()
    income[350] = 1e9  # a test row far out
    plans = table.column("plan").to_pylist()
    plans[300:] = ["only-in-test"] * (len(plans) - 300)
    moved = table.set_column(0, "income", pa.array(income)).set_column(2, "plan", pa.array(plans))
    after = fit_features(defs, moved, rows=train)
    assert after.constants == before.constants
    assert "only-in-test" not in after.constants["vocabulary(plan)"]
    values = np.asarray(before.transform(table.take(pa.array(train)))["z"], dtype=np.float64)
    assert abs(np.nanmean(values)) < 1e-4  # centred on the training rows


def test_features_json_round_trips_and_scores_the_same(
    fitted: FittedFeatures, table: pa.Table
) -> None:
    again = FittedFeatures.from_json(fitted.to_json(), source=FEATURES_FILE)
    assert again == fitted
    assert again.graph() == fitted.graph()


def test_the_skew_check_passes_on_the_compiled_graph(
    fitted: FittedFeatures, table: pa.Table
) -> None:
    report = check_skew(fitted, table, source="training")
    assert report.passed, report.mismatches
    assert report.rows == {"training": table.num_rows}


def test_the_skew_check_fails_on_other_constants_naming_feature_row_and_values(
    fitted: FittedFeatures, table: pa.Table
) -> None:
    constants = dict(fitted.constants)
    constants["mean(income)"] = constants["mean(income)"] * (1 + 1e-5)
    broken = FittedFeatures(fitted.definitions, fitted.types, constants).graph()
    report = check_skew(fitted, table, graph=broken, source="training")
    assert not report.passed
    assert set(report.differing) == {"filled", "centred"}
    first = report.mismatches[0]
    assert first.feature == "filled" and first.row == 12
    assert str(first).startswith("feature 'filled', training row 12: SQL ")
    assert report.to_dict()["passed"] is False
