"""Packages answer as the trained model does on data nobody here generated: decimal ratios
whose values sit between float32 values around the trees' thresholds, and rare categories."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from tests.conftest import long_tail_table, table_project

from mlplan.data import get_dataset
from mlplan.errors import DataError
from mlplan.modeling import (
    FeatureSet,
    feature_frame,
    list_models,
    onnx_feeds,
    select_features,
    train_model,
)


def ratios_table(rows: int = 3000, seed: int = 5) -> pa.Table:
    """Credit ratios as a public dataset records them, with two or three decimals.

    ``utilisation`` has two decimals in [0, 1]; ``debt_ratio`` has three and, for applicants
    with next to no income, sits above 20,000, where neighbouring values 0.001 apart share
    one float32 (its spacing there is 0.002): the midpoints a tree splits at fall between
    float32 values, and so do many rows. ``tenure`` has a missing value in one row of ten.
    """
    rng = np.random.default_rng(seed)
    utilisation = np.round(rng.uniform(0, 1, rows), 2)
    debt_ratio = np.round(20000 + rng.uniform(0, 1, rows), 3)
    tenure = np.round(rng.uniform(0, 30, rows), 1)
    signal = (debt_ratio - 20000) + 0.3 * utilisation + rng.normal(0, 0.15, rows)
    return pa.table(
        {
            "utilisation": utilisation,
            "debt_ratio": debt_ratio,
            "tenure": pa.array(tenure, mask=rng.random(rows) < 0.1),
            "defaulted": (signal > 0.65).astype(np.int64),
        }
    )


def test_trees_on_decimal_ratios_are_packaged_with_parity(tmp_path: Path) -> None:
    ws = table_project(tmp_path, ratios_table(), target="defaulted")
    # Trained on float64, LightGBM split 20000.123 from 20000.124, which the graph reads as
    # one float32, and the package was refused; now every family learns from float32 values.
    gbt = train_model(ws, family="gbt")
    logistic = train_model(ws, family="logistic")
    assert gbt.parity["passed"] and gbt.parity["label_mismatches"] == 0
    assert gbt.parity["max_abs_diff"] <= 1e-5 and gbt.parity["rows"] == 600
    assert logistic.parity["passed"]
    assert gbt.metrics["test"]["roc_auc"] > 0.9
    table = pcsv.read_csv(tmp_path / "data" / "rows.csv")
    frame = feature_frame(table, select_features(ws, get_dataset(ws, "rows")), np.arange(5))
    assert {str(t) for t in frame.dtypes} == {"float32"}


def test_a_package_that_still_differs_says_what_to_do(tmp_path: Path) -> None:
    # LightGBM's linear trees have no ONNX form: the converter keeps the trees and drops the
    # linear models in their leaves.
    ws = table_project(
        tmp_path,
        ratios_table(rows=600),
        target="defaulted",
        modeling="  hyperparameters:\n    gbt: {linear_tree: true}\n",
    )
    with pytest.raises(DataError) as caught:
        train_model(ws, family="gbt")
    message = str(caught.value)
    assert message.startswith("the ONNX package of this gbt model answers differently from the")
    assert re.search(
        r"on \d+ of 120 test rows \(rows \d+(, \d+)*( …)? of the dataset version, counted from 0;",
        message,
    )
    assert "so it is not registered" in message
    assert (
        "Training it again gives the same package: train another family (mlplan train --family "
        "logistic) or train without the hyperparameters (linear_tree: True), and report it as "
        "a bug in mlplan with those rows"
    ) in message
    assert list_models(ws) == []


@pytest.mark.parametrize("family", ["logistic", "gbt"])
def test_rare_categories_share_one_input_inside_the_package(
    tmp_path: Path, cli: Any, family: str
) -> None:
    ws = table_project(tmp_path, long_tail_table(), target="fraud")  # replaces cli's project
    model = train_model(ws, family=family)  # type: ignore[arg-type]
    assert model.parity["passed"] and model.parity["label_mismatches"] == 0
    artifacts = ws.store.artifacts
    signature = json.loads(artifacts.path(model.package["signature.json"]).read_text())
    merchant = next(i for i in signature["inputs"] if i["name"] == "merchant")
    # Every tail merchant seen in training (fewer than the default 10 times) is bucketed;
    # the common ones, and channel, are not; tail merchants only in valid or test are unseen.
    seen_tail = [c for c in merchant["categories"] if c.startswith("shop-")]
    assert model.features["min_frequency"] == 10
    assert model.features["infrequent"] == {"merchant": seen_tail}
    assert merchant["infrequent"] == seen_tail and 30 < len(seen_tail) < 60
    channel = next(i for i in signature["inputs"] if i["name"] == "channel")
    assert "infrequent" not in channel

    # The graph scores two rare merchants and the bucket itself identically, a common merchant
    # differently, and an unseen one as unseen (all zeros), as the trained pipeline does.
    import pandas as pd

    first, second = seen_tail[:2]
    frame = pd.DataFrame(
        {
            "merchant": [first, second, "(infrequent)", "online", "never-seen"],
            "channel": ["card"] * 5,
            "amount": np.float32([40.0] * 5),
        }
    )
    features = FeatureSet.from_spec(model.features)
    session = ort.InferenceSession(
        artifacts.path(model.package["model.onnx"]).read_bytes(), providers=["CPUExecutionProvider"]
    )
    _, graph = session.run(None, onnx_feeds(frame[features.columns], features))
    assert np.array_equal(graph[0], graph[1]) and np.array_equal(graph[0], graph[2])
    assert not np.allclose(graph[0], graph[3])
    native = pickle.loads(artifacts.path(model.package["native.pkl"]).read_bytes())
    assert np.abs(native.predict_proba(frame[features.columns]) - graph).max() < 1e-5
    shown = cli("models", "show", model.name)
    assert shown.exit_code == 0, shown.output
    assert (
        f"merchant: seen in fewer than 10 training rows, scored as one (infrequent): "
        f"{', '.join(seen_tail[:8])} … ({len(seen_tail)} in all)"
    ) in " ".join(shown.stdout.split())


def test_min_frequency_one_keeps_every_category_apart(tmp_path: Path) -> None:
    ws = table_project(tmp_path, long_tail_table(), target="fraud", modeling="  min_frequency: 1\n")
    model = train_model(ws, family="logistic")
    assert model.features["infrequent"] == {} and model.parity["passed"]
    signature = json.loads(ws.store.artifacts.path(model.package["signature.json"]).read_text())
    assert all("infrequent" not in i for i in signature["inputs"])
