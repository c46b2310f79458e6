from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest
from tests.conftest import (
    customers_table,
    edit_plan,
    exported_workspace,
    register_split_train,
    write_csv,
)

from mlplan.checklist import status
from mlplan.data import get_dataset, register_dataset, split_dataset
from mlplan.errors import CheckFailedError, DataError, NotFoundError, ParameterError, UsageError
from mlplan.modeling import get_model, list_models, onnx_feeds, select_features, train_model
from mlplan.workspace import Workspace


@pytest.fixture
def split_ws(ws: Workspace) -> Workspace:
    """Customers registered and split, on each store backend."""
    return register_split_train(ws, family=None)


@pytest.mark.parametrize("family", ["logistic", "gbt"])
def test_a_classifier_is_packaged_with_parity_and_registered(
    split_ws: Workspace, family: Any
) -> None:
    model = train_model(split_ws, family=family)
    assert model.name == f"{family}-1"
    assert model.parity["passed"] and model.parity["max_abs_diff"] <= 1e-4
    assert model.parity["rows"] == model.metrics["test"]["rows"] == 80
    assert set(model.metrics) == {"train", "valid", "test"}
    assert {"accuracy", "macro_f1", "roc_auc", "pr_auc", "log_loss"} <= set(model.metrics["test"])
    artifacts = split_ws.store.artifacts
    signature = json.loads(artifacts.path(model.package["signature.json"]).read_text())
    region = next(c for c in signature["inputs"] if c["name"] == "region")
    assert region == {
        "name": "region",
        "type": "string",
        "categories": ["east", "north", "south"],
        "nullable": False,
    }
    metadata = json.loads(artifacts.path(model.package["metadata.json"]).read_text())
    assert (metadata["classes"], metadata["threshold"], metadata["run_id"]) == (
        ["0", "1"],
        0.5,
        model.run_id,
    )
    # The stored graph runs on its own, with the preprocessing inside.
    session = ort.InferenceSession(
        artifacts.path(model.package["model.onnx"]).read_bytes(), providers=["CPUExecutionProvider"]
    )
    import pandas as pd

    frame = pd.DataFrame(
        {
            "gender": ["female", ""],
            "age": [30.0, np.nan],
            "region": ["north", "unseen-region"],
            "charges": [50.0, 80.0],
        }
    )
    features = select_features(split_ws, get_dataset(split_ws, "customers"))
    _, probabilities = session.run(None, onnx_feeds(frame[features.columns], features))
    assert probabilities.shape == (2, 2) and np.allclose(probabilities.sum(axis=1), 1)
    assert [m.name for m in list_models(split_ws)] == [model.name]


def test_features_leave_out_the_target_ids_and_personal_data(split_ws: Workspace) -> None:
    model = train_model(split_ws, baseline=True)
    assert model.family == "logistic" and model.baseline
    assert model.features["numeric"] == ["age", "charges"]
    assert model.features["categorical"] == ["gender", "region"]
    assert model.features["excluded"] == {
        "customer_id": "the id column",
        "name": "personal data (pii_columns)",
        "email": "personal data (pii_columns)",
        "churned": "the target",
    }


def test_an_exports_row_number_is_not_a_feature_unless_named(tmp_path: Path) -> None:
    ws = exported_workspace(tmp_path)
    features = select_features(ws, get_dataset(ws, "heart"))
    assert features.excluded == {
        "rownames": "row number (unique per row; the name an export gives it)",
        "disease": "the target",
    }
    assert features.columns == ["fbs", "exang", "slope", "sex", "chest_pain"]
    edit_plan(ws, "  features: null", "  features: [rownames, sex]")
    assert select_features(ws, get_dataset(ws, "heart")).columns == ["rownames", "sex"]
    ws.close()


def test_training_refuses_a_split_whose_ids_cross_until_it_is_accepted(
    sqlite_ws: Workspace, project_dir: Path
) -> None:
    edit_plan(sqlite_ws, "id_column: null", "id_column: customer_id")
    table = customers_table(400)
    again = table.slice(0, 40).set_column(6, "charges", pa.array(np.full(40, 1.0)))
    write_csv(pa.concat_tables([table, again]), project_dir / "data" / "customers.csv")
    register_dataset(sqlite_ws, "customers")
    split_dataset(sqlite_ws, "customers", seed=0)
    with pytest.raises(
        CheckFailedError,
        match=r"^split customers@1/s1 failed its leakage checks: \d+ ids in more than one split "
        r"\(e\.g\. [\d, ]+\)\. Split again so that they cannot cross \(--group on the entity "
        r"column\), or accept it on the record: mlplan data split customers@1 --test 0\.2 "
        r'--valid 0\.1 --seed 0 --accept-leakage "WHY"$',
    ):
        train_model(sqlite_ws, baseline=True)
    assert list_models(sqlite_ws) == []

    split_dataset(sqlite_ws, "customers", seed=0, accept_leakage="repeat customers by design")
    assert train_model(sqlite_ws, baseline=True).split == "customers@1/s2"


def test_regression_trains_linear_and_gbt(ws: Workspace) -> None:
    edit_plan(ws, "task: binary", "task: regression")
    edit_plan(ws, 'target: "churned"', 'target: "charges"')
    edit_plan(ws, "positive_class: null  # TODO: the class FP/FN and recall refer to\n", "")
    edit_plan(ws, "  primary: roc_auc", "  primary: mae")
    edit_plan(
        ws,
        "    - {name: roc_auc, direction: maximize, target: 0.85}",
        "    - {name: mae, direction: minimize, target: 5}",
    )
    edit_plan(ws, "    - {name: recall, direction: maximize, target: null}\n", "")
    edit_plan(ws, "    - {name: precision, direction: maximize, target: null}\n", "")
    register_dataset(ws, "customers")
    split_dataset(ws, "customers", seed=2)
    linear = train_model(ws, baseline=True)
    gbt = train_model(ws, family="gbt")
    assert (linear.family, gbt.family) == ("linear", "gbt")
    assert {"mae", "rmse", "r2"} <= set(linear.metrics["test"])
    assert linear.metrics["train"]["rows"] < 280  # rows without a target are left out
    assert linear.parity["passed"] and gbt.parity["passed"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"family": "linear"},
            UsageError,
            r"family 'linear' does not fit a binary task; use "
            r"logistic or gbt",
        ),
        ({"family": "rnn"}, UsageError, r"family 'rnn' does not fit a binary task"),
        ({}, ParameterError, r"give 'family' \(linear, logistic, gbt, cnn, rnn\), or baseline"),
        (
            {"baseline": True, "split": "customers@1/s9"},
            NotFoundError,
            r"split 'customers@1/s9' not found; known: customers@1/s1",
        ),
    ],
    ids=["wrong-family", "sequence-family", "no-family", "unknown-split"],
)
def test_bad_requests_are_refused_and_register_nothing(
    split_ws: Workspace, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        train_model(split_ws, **kwargs)
    assert list_models(split_ws) == []


def test_a_constant_target_cannot_be_learned(sqlite_ws: Workspace, project_dir: Path) -> None:
    csv = project_dir / "data" / "customers.csv"
    lines = csv.read_text().splitlines()
    csv.write_text(
        "\n".join([lines[0]] + [line.rsplit(",", 1)[0] + ",0" for line in lines[1:]]) + "\n"
    )
    register_dataset(sqlite_ws, "customers")
    split_dataset(sqlite_ws, "customers", seed=1)
    with pytest.raises(
        DataError,
        match=r"the target 'churned' has one class in the training "
        r"split \(0\); a classifier needs at least two",
    ):
        train_model(sqlite_ws, baseline=True)


def test_no_split_yet(sqlite_ws: Workspace) -> None:
    register_dataset(sqlite_ws, "customers")
    with pytest.raises(NotFoundError, match=r"no split yet. Make one with: mlplan data split"):
        train_model(sqlite_ws, baseline=True)


def test_unknown_model_lists_the_known_ones(split_ws: Workspace) -> None:
    train_model(split_ws, baseline=True)
    with pytest.raises(NotFoundError, match=r"model 'gbt-7' not found; known: logistic-1"):
        get_model(split_ws, "gbt-7")


def test_list_models_with_a_name_reads_that_models_versions_only(split_ws: Workspace) -> None:
    train_model(split_ws, baseline=True)
    train_model(split_ws, family="gbt")
    assert [m.ref for m in list_models(split_ws, versions=True, name="gbt-1")] == ["gbt-1@1"]
    assert list_models(split_ws, name="gbt-7") == []
    assert get_model(split_ws, "gbt-1").ref == "gbt-1@1"
    with pytest.raises(NotFoundError, match=r"'gbt-1@3' not found; gbt-1 has versions: gbt-1@1$"):
        get_model(split_ws, "gbt-1@3")


def test_modeling_items_follow_the_evidence(split_ws: Workspace) -> None:
    before = status(split_ws)
    assert before.get("model.quick_and_dirty").next_step == "mlplan train --baseline"
    train_model(split_ws, baseline=True)
    middle = status(split_ws)
    assert middle.get("model.quick_and_dirty").state == "done"
    assert middle.get("model.families").evidence == "trained: logistic; not yet: gbt"
    train_model(split_ws, family="gbt")
    after = status(split_ws)
    assert after.get("model.families").state == "done"
    assert after.get("model.packaged").state == "done"
    assert after.get("model.older_system").state == "missing"


def test_cli_train_and_show(cli: Any) -> None:
    assert cli("data", "add", "customers").exit_code == 0
    assert cli("data", "split", "customers", "--stratify", "churned").exit_code == 0
    trained = cli("train", "--baseline", "--json")
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["name"] == "logistic-1"
    listed = json.loads(cli("models", "list", "--json").stdout)
    assert [m["family"] for m in listed] == ["logistic"]
    shown = cli("models", "show", "logistic-1")
    assert shown.exit_code == 0 and "model.onnx" in shown.stdout
    wrong = cli("train", "--family", "linear")
    assert wrong.exit_code == 2 and "does not fit a binary task" in wrong.stderr
    unknown = cli("train", "--family", "xgb")
    assert unknown.exit_code == 2 and "--family 'xgb': choose one of linear" in unknown.stderr
    assert cli("train").exit_code == 2
    several = cli("train", "--all", "--tune", "2", "--json")
    assert several.exit_code == 0, several.output
    models = json.loads(several.stdout)
    assert [m["name"] for m in models] == ["logistic-2", "gbt-1"]
    assert all(len(m["parameters"]["tuning"]["trials"]) == 2 for m in models)
    shown = cli("models", "show", "gbt-1")
    assert "tuned: 2 trials by validation roc_auc" in shown.stdout


def test_identical_split_assignments_of_two_versions_stay_apart(
    sqlite_ws: Workspace, project_dir: Path
) -> None:
    register_dataset(sqlite_ws, "customers")
    first = split_dataset(sqlite_ws, "customers", seed=1)
    csv = project_dir / "data" / "customers.csv"
    csv.write_text(csv.read_text().replace('"north"', '"northwest"', 1))
    register_dataset(sqlite_ws, "customers")
    second = split_dataset(sqlite_ws, "customers", seed=1)
    assert first.artifact_sha256 == second.artifact_sha256  # same rows, same seed
    model = train_model(sqlite_ws, baseline=True, split=second.ref)
    assert model.split == "customers@2/s1"
    assert [m.split for m in list_models(sqlite_ws)] == ["customers@2/s1"]


def test_models_are_compared_with_the_bars_on_the_test_split(split_ws: Workspace) -> None:
    from mlplan.modeling import Comparison, compare_models, latest_comparison

    with pytest.raises(UsageError, match=r"no model trained on customers@1/s1 yet"):
        compare_models(split_ws)
    logistic = train_model(split_ws, baseline=True)
    result = compare_models(split_ws, n_boot=50, seed=3)
    assert [(r["name"], r["kind"]) for r in result.rows] == [
        ("trivial", "trivial"),
        ("logistic-1", "model"),
    ]
    assert result.primary == "roc_auc"
    trivial, model = result.rows
    assert trivial["metrics"]["roc_auc"]["value"] == 0.5  # constant scores rank nothing
    # The same numbers as the model's own test metrics, now with intervals.
    auc = model["metrics"]["roc_auc"]
    assert auc["value"] == pytest.approx(logistic.metrics["test"]["roc_auc"], abs=1e-6)
    assert auc["low"] <= auc["value"] <= auc["high"]
    assert result.gaps["to_trivial"] == pytest.approx(auc["value"] - 0.5)
    again = compare_models(split_ws, n_boot=50, seed=3)
    assert again.rows == result.rows  # reproducible with a seed
    latest = latest_comparison(split_ws)
    assert latest is not None and latest.best_model == "logistic-1"
    assert latest.to_dict() == again.to_dict()
    assert Comparison.from_dict(latest.to_dict()) == latest
    report = status(split_ws).get("model.compared")
    assert report.state == "done" and "best logistic-1 (roc_auc)" in report.evidence
    train_model(split_ws, family="gbt")
    assert status(split_ws).get("model.compared").state == "missing"  # gbt-1 not compared


def test_the_older_system_is_scored_on_the_same_test_rows(split_ws: Workspace) -> None:
    from mlplan.modeling import (
        OlderSystemPredictions,
        compare_models,
        import_older_system,
        older_system_predictions,
    )

    pa_csv = pytest.importorskip("pyarrow.csv")
    import pyarrow as pa

    rows = split_ws.root / "data" / "customers.csv"
    table = pa_csv.read_csv(rows)
    ids = [str(v) for v in table.column("customer_id").to_pylist()]
    truth = [str(v) for v in table.column("churned").to_pylist()]
    # A rules system that is right on even ids and guesses "0" elsewhere.
    guess = [t if int(i) % 2 == 0 else "0" for i, t in zip(ids, truth, strict=True)]
    predictions = split_ws.root / "rules.csv"
    pa_csv.write_csv(pa.table({"item_id": ids, "prediction": guess}), predictions)
    with pytest.raises(UsageError, match=r"the plan names no older system"):
        import_older_system(split_ws, predictions)
    edit_plan(split_ws, "  older_system: null", "  older_system: {name: rules-v2}")
    edit_plan(split_ws, "scenario: null", "scenario: replace")
    partial = split_ws.root / "partial.csv"
    pa_csv.write_csv(pa.table({"item_id": ids[:10], "prediction": guess[:10]}), partial)
    with pytest.raises(
        DataError,
        match=r"of the 80 test items of customers@1/s1 have no "
        r"prediction",
    ):
        import_older_system(split_ws, partial)
    report = import_older_system(split_ws, predictions)
    assert (report.name, report.test_rows) == ("rules-v2", 80)
    assert report.to_dict() == split_ws.latest_report("older_system").report  # type: ignore[union-attr]
    found = older_system_predictions(split_ws, report.split, ids[:3], ["0", "1"])
    assert isinstance(found, OlderSystemPredictions) and found.proba is None
    name, predicted, proba = found  # unpacks as the tuple it used to be
    assert (name, list(predicted), proba) == ("rules-v2", guess[:3], None)
    assert found.to_dict() == {"name": "rules-v2", "predicted": guess[:3], "proba": None}
    assert status(split_ws).get("model.older_system").next_step.startswith("mlplan baseline older")
    train_model(split_ws, baseline=True)
    result = compare_models(split_ws, n_boot=20)
    older = next(r for r in result.rows if r["kind"] == "older_system")
    assert older["name"] == "rules-v2"
    assert "labels only" in older["note"]
    assert "accuracy" in older["metrics"]
    assert "to_older_system" in result.gaps
    assert status(split_ws).get("model.older_system").state == "done"


def test_packages_are_profiled_and_held_against_the_plan(split_ws: Workspace) -> None:
    from mlplan.modeling import ComputeProfile, feasibility

    model = train_model(split_ws, baseline=True)
    compute = model.compute
    assert set(compute) >= {
        "size_mb",
        "load_ms",
        "latency_p50_ms",
        "latency_p99_ms",
        "single_thread_qps",
        "batch_rows_per_second",
        "memory_mb",
    }
    assert 0 < compute["latency_p50_ms"] <= compute["latency_p99_ms"]
    report = status(split_ws).get("model.feasibility")
    assert report.state == "done"  # the template's 50 ms p99 and 100 QPS are easy here
    assert "latency_p99_ms" in report.evidence and "headroom" in report.evidence
    checks = feasibility(compute | {"latency_p99_ms": 80.0}, split_ws.plan.deployment)
    p99 = next(c for c in checks if c.objective == "latency_p99_ms")
    assert (p99.met, p99.headroom) == (False, pytest.approx(50 / 80))
    profile = ComputeProfile.from_dict(compute | {"latency_p99_ms": 80.0})
    assert profile.to_dict() == compute | {"latency_p99_ms": 80.0}
    assert profile.held_against(split_ws.plan.deployment) == checks
    assert feasibility(profile, split_ws.plan.deployment) == checks
    edit_plan(split_ws, "latency_p99_ms: 50, qps: 100", "latency_p99_ms: 0.000001, qps: 100")
    failing = status(split_ws).get("model.feasibility")
    assert failing.state == "failing"
    assert failing.next_step == "a smaller model, or more compute in deployment.compute"


def test_cli_imports_the_older_systems_predictions(cli: Any, project_dir: Path) -> None:
    plan = project_dir / "mlplan.yaml"
    text = plan.read_text().replace("    id_column: null", "    id_column: customer_id", 1)
    text = text.replace("  older_system: null", "  older_system: {name: rules-v2}", 1)
    plan.write_text(text.replace("scenario: null", "scenario: replace", 1))
    assert cli("data", "add", "customers").exit_code == 0
    assert cli("data", "split", "customers", "--stratify", "churned", "--seed", "1").exit_code == 0
    ids = [str(i) for i in range(1, 401)]
    rules = project_dir / "rules.csv"
    rules.write_text("item_id,prediction\n" + "".join(f"{i},0\n" for i in ids))
    shown = cli("baseline", "older", "--predictions", "rules.csv")
    assert shown.exit_code == 0, shown.output
    assert " ".join(shown.stdout.split()) == (
        "Recorded rules-v2's predictions for 80 test rows of customers@1/s1. "
        "Next: mlplan models compare"
    )
    report = json.loads(cli("baseline", "older", "--predictions", "rules.csv", "--json").stdout)
    assert list(report) == ["name", "split", "predictions", "format", "rows", "test_rows"]
    assert (report["name"], report["format"], report["rows"]) == ("rules-v2", "csv", 400)


def test_older_system_labels_outside_the_class_set_are_refused(cli: Any, project_dir: Path) -> None:
    """Predictions 'yes'/'no' for classes 0/1 scored 0.0000 [0, 0]; and the plan's
    older_system.predictions was never read (#13 item 13)."""
    plan = project_dir / "mlplan.yaml"
    text = plan.read_text().replace("    id_column: null", "    id_column: customer_id", 1)
    text = text.replace(
        "  older_system: null",
        "  older_system: {name: rules-v2, predictions: exports/rules.csv}",
        1,
    )
    plan.write_text(text.replace("scenario: null", "scenario: replace", 1))
    assert cli("data", "add", "customers").exit_code == 0
    assert cli("data", "split", "customers", "--seed", "1").exit_code == 0
    assert "mlplan baseline older, then mlplan models compare" in cli("status", "--json").stdout
    missing = cli("baseline", "older")
    assert missing.exit_code != 0
    assert "exports/rules.csv" in missing.output or "rules.csv" in missing.output

    exports = project_dir / "exports"
    exports.mkdir()
    ids = range(1, 401)
    (exports / "rules.csv").write_text(
        "item_id,prediction\n" + "".join(f"{i},{'yes' if i % 3 else 'no'}\n" for i in ids)
    )
    refused = cli("baseline", "older")
    assert refused.exit_code == 1
    message = " ".join(refused.output.split())
    assert "predictions no, yes are not classes of the target 'churned' (0, 1)" in message

    (exports / "rules.csv").write_text(
        "item_id,prediction\n" + "".join(f"{i},{1.0 if i % 3 == 0 else 0.0}\n" for i in ids)
    )
    taken = cli("baseline", "older", "--json")  # the plan's file, read this time
    assert taken.exit_code == 0, taken.output
    assert json.loads(taken.stdout)["test_rows"] == 80

    (exports / "blank.csv").write_text("item_id,prediction\n" + "".join(f"{i},\n" for i in ids))
    blank = cli("baseline", "older", "--predictions", "exports/blank.csv")
    assert blank.exit_code == 1
    assert "have an empty prediction" in " ".join(blank.output.split())


def test_an_entity_id_and_a_per_row_text_are_not_features(cli: Any, project_dir: Path) -> None:
    """A customer_id repeated over a customer's rows became a numeric feature; a ticket code on
    every row a category that is all '(infrequent)'. Both are left out, saying why."""
    rng = np.random.default_rng(5)
    rows = 1200
    table = pa.table(
        {
            "customer_id": rng.integers(1000, 1400, rows),
            "ticket": [f"T-{i:06d}-{rng.integers(10)}" for i in rng.permutation(rows)],
            "plan": rng.choice(["basic", "pro"], rows),
            "tenure_years": rng.integers(0, 5, rows),
            "churned": rng.random(rows) < 0.3,
        }
    )
    write_csv(table, project_dir / "data" / "customers.csv")
    plan = project_dir / "mlplan.yaml"
    plan.write_text(
        plan.read_text().replace("    pii_columns: [name, email]", "    pii_columns: []")
    )
    assert cli("data", "add", "customers").exit_code == 0
    assert cli("data", "split", "customers").exit_code == 0
    trained = cli("train", "--baseline", "--json")
    assert trained.exit_code == 0, trained.output
    features = json.loads(trained.stdout)["features"]
    assert set(features["numeric"]) | set(features["categorical"]) == {"plan", "tenure_years"}
    assert features["excluded"]["customer_id"].startswith("an entity's id by its name")
    assert features["excluded"]["ticket"].startswith("a value on nearly every row")
