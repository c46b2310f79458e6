"""Training does each costly thing once: what fitting leaves behind is not computed again, and
the numbers are those the model's own predictions give."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlplan.modeling._inputs import TrainingData
from mlplan.modeling._tabular import fit_estimator


def tabular_data(kind: str, classes: int = 2, rows: int = 3000, seed: int = 4) -> TrainingData:
    """Account activity with a plan tier and a missing value now and then, split 70/10/20."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "spend": np.round(rng.gamma(2.0, 30.0, rows), 2).astype(np.float32),
            "tenure": np.round(rng.uniform(0, 60, rows), 1).astype(np.float32),
            "plan": rng.choice(np.array(["basic", "plus", "pro"], dtype=object), rows),
        }
    )
    frame.loc[rng.random(rows) < 0.05, "tenure"] = np.nan
    signal = frame["spend"] / 60 - frame["tenure"].fillna(30) / 30 + rng.normal(0, 0.5, rows)
    signal += (frame["plan"] == "pro").to_numpy() * 0.8
    if kind == "regression":
        y = signal.to_numpy(dtype=np.float64)
        names: list[str] = []
    else:
        cuts = np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1])
        names = [f"c{i}" for i in range(classes)]
        y = np.asarray(names, dtype=object)[np.searchsorted(cuts, signal)]
    parts = {
        "train": np.arange(0, 2100),
        "valid": np.arange(2100, 2400),
        "test": np.arange(2400, rows),
    }
    return TrainingData(
        task="regression" if kind == "regression" else "binary" if classes == 2 else "multiclass",
        kind="regression" if kind == "regression" else "classification",
        spec={
            "kind": "tabular",
            "numeric": ["spend", "tenure"],
            "categorical": ["plan"],
            "infrequent": {},
        },
        x={name: frame.iloc[index].reset_index(drop=True) for name, index in parts.items()},
        y={name: y[index] for name, index in parts.items()},
        rows=parts,
        classes=names,
    )


@pytest.mark.parametrize(
    ("kind", "classes", "params", "boosted"),
    [
        ("classification", 2, {}, True),
        ("classification", 3, {}, True),
        ("regression", 0, {}, True),
        # Dart rescales trees after adding them to the training scores, which then differ
        # from a prediction in the last bit: the rows are predicted again.
        ("classification", 2, {"boosting_type": "dart"}, False),
    ],
    ids=["binary", "multiclass", "regression", "dart"],
)
def test_gbt_takes_its_training_outputs_from_boosting_as_predicting_gives_them(
    monkeypatch: pytest.MonkeyPatch, kind: str, classes: int, params: dict[str, Any], boosted: bool
) -> None:
    import lightgbm

    data = tabular_data(kind, classes)
    predicted: list[int] = []
    for cls, method in (
        (lightgbm.LGBMClassifier, "predict_proba"),
        (lightgbm.LGBMRegressor, "predict"),
    ):
        original = getattr(cls, method)

        def counted(self: Any, x: Any, *args: Any, _original: Any = original, **kw: Any) -> Any:
            predicted.append(x.shape[0])
            return _original(self, x, *args, **kw)

        monkeypatch.setattr(cls, method, counted)
    fitted = fit_estimator(data, "gbt", 0, {"n_estimators": 30} | params, export=False)
    monkeypatch.undo()

    train = len(data.y["train"])
    # Boosting kept each training row's score: they were checked on a sample, not predicted.
    assert (train in predicted) is not boosted
    pipeline = pickle.loads(fitted.native["native.pkl"])
    labels, proba = fitted.predictions["train"]
    if kind == "regression":
        assert np.array_equal(labels, pipeline.predict(data.x["train"]))
    else:
        expected = pipeline.predict_proba(data.x["train"])
        assert proba is not None and proba.shape == expected.shape
        assert np.array_equal(proba, expected)  # to the bit
        assert list(labels) == list(pipeline.predict(data.x["train"]))
