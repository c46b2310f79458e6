"""Sequence tasks: windows over a time-ordered column, GBT on window features and a GRU/LSTM,
forecasting and sequence classification, each packaged as ONNX with parity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest
from tests.modeling.conftest import WINDOW, sequence_series, sequence_workspace

from mlplan.errors import DataError, UsageError
from mlplan.modeling import compare_models, get_model, train_model
from mlplan.workspace import Workspace

torch = pytest.importorskip("torch", reason="the torch extra is part of make test")


@pytest.fixture
def forecast_ws(tmp_path: Path, store_url: str) -> Any:
    ws = sequence_workspace(tmp_path, store_url, target="load")
    yield ws
    ws.close()


def test_forecasting_trains_gbt_on_window_features_and_a_gru(forecast_ws: Workspace) -> None:
    baseline = train_model(forecast_ws, baseline=True)
    assert (baseline.family, baseline.baseline) == ("gbt", True)
    spec = baseline.features
    assert spec["kind"] == "window" and spec["channels"] == ["load", "temperature"]
    assert (spec["length"], spec["horizon"]) == (WINDOW, 1)
    assert "state" in spec["excluded"]
    # The first WINDOW rows in time order have no full history, and the row whose load is
    # missing (t = 7) has nothing to predict: they are no example.
    examples = sum(baseline.metrics[s]["rows"] for s in ("train", "valid", "test"))
    assert examples == 360 - WINDOW - 1
    assert baseline.parity["passed"]
    rnn = train_model(forecast_ws, family="rnn")
    assert rnn.parity["passed"] and rnn.parity["max_abs_diff"] <= 1e-3
    # modeling.device: auto, the default: the GPU where torch sees one, else the CPU.
    gpu = torch.cuda.is_available()
    assert rnn.parameters["device"].startswith("cuda:0 (" if gpu else "cpu")
    assert rnn.compute["training_device"] == rnn.parameters["device"]
    assert {"mae", "rmse", "r2"} <= set(rnn.metrics["test"])
    # The package takes a window tensor and NaN where a value is missing.
    artifacts = forecast_ws.store.artifacts
    signature = json.loads(artifacts.path(rnn.package["signature.json"]).read_text())
    (window,) = signature["inputs"]
    assert window["shape"] == [None, WINDOW, 2] and window["time_column"] == "t"
    session = ort.InferenceSession(artifacts.path(rnn.package["model.onnx"]).read_bytes())
    x = np.full((3, WINDOW, 2), 50.0, dtype=np.float32)
    x[0, 3, 1] = np.nan
    (out,) = session.run(None, {"window": x})
    assert out.shape == (3, 1) and np.isfinite(out).all()
    # Both are compared on the same test rows, with the trivial constant: for MAE, the
    # training median (the best constant for absolute errors; the mean overstated the gain).
    comparison = compare_models(forecast_ws, n_boot=20)
    names = [r["name"] for r in comparison.rows]
    assert names[:1] == ["trivial"] and {"gbt-1", "rnn-1"} <= set(names)
    assert comparison.primary == "mae"
    assert "the training median (the best constant for MAE)" in comparison.rows[0]["note"]
    shown = get_model(forecast_ws, "rnn-1")
    assert shown.parameters["cell"] == "gru" and shown.parameters["epochs"] == 15


def test_a_lstm_and_the_linear_family_on_windows(forecast_ws: Workspace) -> None:
    lstm = train_model(forecast_ws, family="rnn", params={"cell": "lstm", "epochs": 5})
    assert lstm.parameters["cell"] == "lstm" and lstm.parity["passed"]
    ridge = train_model(forecast_ws, family="linear")
    assert ridge.parity["passed"] and ridge.metrics["test"]["r2"] > 0.5


def test_training_is_reproducible_with_a_seed(forecast_ws: Workspace) -> None:
    a = train_model(forecast_ws, family="rnn", params={"epochs": 4})
    b = train_model(forecast_ws, family="rnn", params={"epochs": 4})
    assert a.metrics == b.metrics


def test_sequence_classification_reads_the_features_up_to_the_row(
    tmp_path: Path, store_url: str
) -> None:
    ws = sequence_workspace(tmp_path, store_url, target="state")
    try:
        gbt = train_model(ws, baseline=True)
        assert gbt.features["channels"] == ["temperature", "load"]
        assert gbt.features["horizon"] == 0
        assert {"accuracy", "roc_auc", "log_loss"} <= set(gbt.metrics["test"])
        rnn = train_model(ws, family="rnn")
        assert rnn.parity["passed"] and rnn.parity["label_mismatches"] == 0
        session = ort.InferenceSession(
            ws.store.artifacts.path(rnn.package["model.onnx"]).read_bytes()
        )
        labels, proba = session.run(None, {"window": np.zeros((2, WINDOW, 2), np.float32)})
        assert set(labels) <= {"day", "night"} and proba.shape == (2, 2)
        with pytest.raises(UsageError, match="family 'linear' does not fit a sequence task"):
            train_model(ws, family="linear")
    finally:
        ws.close()


def test_bad_sequence_plans_are_refused(tmp_path: Path) -> None:
    ws = sequence_workspace(tmp_path, f"sqlite:///{tmp_path}/store.db", target="load")
    try:
        text = ws.plan_path.read_text()
        window = f"  window: {WINDOW}"
        ws.plan_path.write_text(text.replace(window, "  window: 400"))
        ws.__dict__.pop("plan", None)
        with pytest.raises(DataError, match="window 400 \\+ horizon 1 is longer than the 360"):
            train_model(ws, baseline=True)
        ws.plan_path.write_text(text.replace(window, f"{window}\n  horizon: 0"))
        ws.__dict__.pop("plan", None)
        with pytest.raises(DataError, match=r"forecasting needs modeling\.horizon >= 1"):
            train_model(ws, baseline=True)
    finally:
        ws.close()
    unordered = sequence_workspace(
        tmp_path / "unordered", f"sqlite:///{tmp_path}/u.db", target="load", ordered=False
    )
    try:
        with pytest.raises(DataError, match="set time_column for dataset 'series'"):
            train_model(unordered, baseline=True)
    finally:
        unordered.close()


def test_trees_split_decimal_data_in_onnx_as_in_lightgbm(tmp_path: Path) -> None:
    # Midpoints of one-decimal values are one-decimal values (18.8 and 19.0 split at 18.9):
    # rounded to float32 naively, such thresholds send the value itself the wrong way.
    table = sequence_series()
    rounded = pa.array(np.round(table.column("load").to_numpy(zero_copy_only=False), 1))
    table = table.set_column(table.column_names.index("load"), "load", rounded)
    ws = sequence_workspace(tmp_path, f"sqlite:///{tmp_path}/s.db", target="load", table=table)
    try:
        for n_estimators in (50, 200):
            model = train_model(ws, family="gbt", params={"n_estimators": n_estimators})
            assert model.parity["passed"] and model.parity["max_abs_diff"] < 1e-3
    finally:
        ws.close()
