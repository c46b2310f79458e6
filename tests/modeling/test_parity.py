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


def test_parity_on_a_large_split_checks_every_row_near_a_split_threshold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Parity checks a sample of a large test split, plus every row whose value sits within
    float32 rounding of a tree's split threshold: a graph that splits one such row the other
    way than LightGBM does is still refused, and the row named."""
    import pandas as pd

    import mlplan.modeling._tabular as tabular
    from mlplan.modeling._fit import Job, run_job
    from mlplan.modeling._inputs import TrainingData
    from mlplan.modeling._package import PARITY_SAMPLE

    rng = np.random.default_rng(3)

    def frame(n: int) -> pd.DataFrame:
        # Two-decimal ratios: every threshold is a midpoint, equal to no value but one.
        return pd.DataFrame(
            {
                "utilisation": np.round(rng.uniform(0, 1, n), 2).astype(np.float32),
                "tenure": np.round(rng.uniform(0, 30, n), 1).astype(np.float32),
            }
        )

    train, test = frame(4000), frame(10 * PARITY_SAMPLE)
    signal = train["utilisation"] + 0.02 * train["tenure"] + rng.normal(0, 0.2, len(train))
    planted = 123_457  # the test row moved onto a threshold
    data = TrainingData(
        task="binary",
        kind="classification",
        spec={"kind": "tabular", "numeric": ["utilisation", "tenure"], "categorical": []},
        x={"train": train, "valid": train.iloc[:0], "test": test},
        y={
            "train": np.where(signal > 0.8, "1", "0").astype(object),
            "valid": np.zeros(0, dtype=object),
            "test": np.where(test["utilisation"] > 0.5, "1", "0").astype(object),
        },
        rows={
            "train": np.arange(4000),
            "valid": np.zeros(0, int),
            "test": 10_000 + np.arange(len(test)),
        },
        classes=["0", "1"],
    )
    export = tabular.export_onnx

    def off_by_one_float(pipe: Any, kind: str, family: str, features: FeatureSet) -> bytes:
        """The package as it was before thresholds were snapped: its root split of
        utilisation sends a value equal to the threshold right, where LightGBM sends it left."""
        import onnx

        model = onnx.load_from_string(export(pipe, kind, family, features))
        (node,) = [n for n in model.graph.node if n.op_type.startswith("TreeEnsemble")]
        attrs = {a.name: a for a in node.attribute}
        at = float(np.float32(attrs["nodes_values"].floats[0]))
        assert attrs["nodes_featureids"].ints[0] == 0  # utilisation
        test.loc[planted, "utilisation"] = np.float32(at)
        values = [
            float(np.nextafter(np.float32(v), np.float32(-1))) if f == 0 and v == at else v
            for f, v in zip(
                attrs["nodes_featureids"].ints, attrs["nodes_values"].floats, strict=True
            )
        ]
        attrs["nodes_values"].CopyFrom(onnx.helper.make_attribute("nodes_values", values))
        return bytes(model.SerializeToString())

    monkeypatch.setattr(tabular, "export_onnx", off_by_one_float)
    with pytest.raises(DataError) as caught:
        run_job(data, Job("gbt", seed=0, params={"n_estimators": 20}))
    message = str(caught.value)
    assert re.search(
        r"on 1 of \d{2},\d{3} test rows checked \(a sample of 20,000 and the rows near a "
        r"decision or split threshold, of 200,000\) \(rows 133457 of the dataset version",
        message,
    ), message

    # The same package, honestly exported, passes on those rows; they are counted by reason.
    monkeypatch.setattr(tabular, "export_onnx", export)
    result = run_job(data, Job("gbt", seed=0, params={"n_estimators": 20}))
    checked = result.parity["checked"]
    assert checked["of"] == 200_000 and checked["sampled"] == PARITY_SAMPLE
    assert checked["near_threshold"] >= 1 and checked["near_boundary"] >= 1
    assert result.parity["rows"] < 100_000 and result.parity["passed"]


def test_feature_frames_hold_categories_as_python_strings() -> None:
    # pandas 3 stores strings in Arrow; scikit-learn converted the column back to Python
    # objects each time the pipeline read it (fit, then every split scored).
    table = pa.table({"amount": [1.5, None, 2.0], "channel": ["card", None, "web"]})
    frame = feature_frame(table, FeatureSet(["amount"], ["channel"], {}), np.arange(3))
    assert [str(t) for t in frame.dtypes] == ["float32", "object"]
    assert frame["channel"].tolist() == ["card", "(missing)", "web"]


def test_a_category_is_one_python_string_shared_by_its_rows() -> None:
    # A string per row cost its making (a third of the frame's time) and ~50 bytes a row.
    table = pa.table({"channel": pa.chunked_array([["card", "web"], [None, "card", "web"]])})
    frame = feature_frame(table, FeatureSet([], ["channel"], {}), np.array([0, 3, 2, 1, 4]))
    assert frame["channel"].tolist() == ["card", "card", "(missing)", "web", "web"]
    assert frame["channel"][0] is frame["channel"][1] and frame["channel"][3] is frame["channel"][4]
