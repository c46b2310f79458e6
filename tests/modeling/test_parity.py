"""Packages answer as the trained model does on data nobody here generated: decimal ratios
whose values sit between float32 values around the trees' thresholds."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from tests.conftest import table_project

from mlplan.data import get_dataset
from mlplan.errors import DataError
from mlplan.modeling import (
    feature_frame,
    list_models,
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
