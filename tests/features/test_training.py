"""A plan with derived features: the models train on the raw columns and the derived ones
(computed by DuckDB), and the package takes the raw columns only — its graph computes the
features with the constants fitted on the training rows — so evaluation, batch scoring and
the server work on raw inputs unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from tests.conftest import customers_table, ok, register_split_train
from tests.features.test_check import _with_features
from tests.serving.conftest import started

from mlplan.errors import DataError
from mlplan.features import FEATURES_FILE, FittedFeatures, check_features
from mlplan.features._merge import JOINED_KEY
from mlplan.modeling import get_model
from mlplan.workspace import Workspace


def test_a_package_with_derived_features_takes_raw_columns_everywhere(
    sqlite_ws: Workspace, tmp_path: Path, cli: Any
) -> None:
    from mlplan.evaluation import evaluate
    from mlplan.serving import ServeConfig, create_app, create_key, score_file

    ws = register_split_train(_with_features(sqlite_ws), family="logistic")
    model = get_model(ws, "logistic-1")
    assert model.parity["passed"]  # the merged graph on raw feeds, against the trained model
    derived = model.features["derived"]
    assert "log_charges" in model.features["numeric"]
    # What a caller feeds: the raw columns, none of the derived ones.
    artifacts = ws.store.artifacts
    signature = json.loads(artifacts.path(model.package["signature.json"]).read_bytes())
    fitted = FittedFeatures.from_json(artifacts.path(model.package[FEATURES_FILE]).read_bytes())
    names = [i["name"] for i in signature["inputs"]]
    assert sorted(names) == ["age", "charges", "gender", "region"]
    assert fitted.to_dict() == derived
    assert fitted.constants["vocabulary(region)"][0] in {"north", "south", "east"}

    evaluation = evaluate(ws, "logistic-1", n_boot=0)
    assert evaluation.package is not None

    rows = customers_table(rows=30, seed=99).select(names)
    source = tmp_path / "raw.csv"
    pcsv.write_csv(rows, source)
    out = tmp_path / "scored.parquet"
    report = score_file(ws, "logistic-1", source, out, allow_failed_gates=True)
    scored = pq.read_table(out)
    assert report.rows == 30 and scored.num_rows == 30

    token = create_key(ws, "caller", roles=["predict"]).token
    app = create_app(ServeConfig(root=str(ws.root), model="logistic-1", key_refresh_seconds=0))
    record = {"gender": None, "age": 40, "region": "north", "charges": None}
    with started(app) as client:
        answer = client.post(
            "/v1/predict", json={"records": [record]}, headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 200, answer.text

    # The skew check on the package's own graph: the training rows and the logged request.
    checked = json.loads(ok(cli("features", "check", "logistic-1", "--json")).stdout)
    assert checked["passed"] and checked["rows"]["logged"] == 1
    assert "log_charges" in checked["features"]
    read = [name for name in fitted.names if name in model.features["numeric"]]
    assert sorted(checked["features"]) == sorted(read) and len(read) > 1

    # features.json out of step with the graph (another mean): the check names the feature.
    graph = artifacts.path(model.package["model.onnx"]).read_bytes()
    # The model's Concat of its numbers takes the features' joined tensor whole (no Split
    # of it into one tensor a feature): the package says where, for the check above.
    stored = {p.key: p.value for p in onnx.load_from_string(graph).metadata_props}
    tensor, order = json.loads(stored[JOINED_KEY])
    assert sorted(order) == sorted(read)
    nodes = onnx.load_from_string(graph).graph.node
    assert [n.op_type for n in nodes if tensor in n.input] == ["Concat"]
    assert not [n for n in nodes if n.op_type == "Split"]
    constants = dict(fitted.constants)
    constants["mean(charges)"] += 0.5
    drifted = FittedFeatures(fitted.definitions, fitted.types, constants)
    report = check_features(ws, fitted=drifted, graph=graph, split=model.split, rows=50)
    assert not report.passed and set(report.differing) == {"charges_per_year"}
    assert report.mismatches[0].source == "training"


def test_a_feature_reading_the_target_is_refused(sqlite_ws: Workspace) -> None:
    ws = _with_features(sqlite_ws, "\nfeatures:\n  leak: churned * 2\n")
    with pytest.raises(DataError, match=r"feature 'leak' reads the target 'churned'"):
        register_split_train(ws, family="logistic")


def test_a_packages_features_are_checked_on_the_columns_they_read_alone(
    sqlite_ws: Workspace, cli: Any
) -> None:
    # The package takes age, gender and region too; its feature reads charges alone.
    plan = sqlite_ws.plan_path
    plan.write_text(plan.read_text() + "\nfeatures:\n  half_charges: charges / 2\n")
    sqlite_ws.__dict__.pop("plan", None)
    register_split_train(sqlite_ws, family="logistic")
    checked = json.loads(ok(cli("features", "check", "logistic-1", "--json")).stdout)
    assert checked["passed"] and checked["features"] == ["half_charges"]
