"""Training does each costly thing once: what fitting leaves behind is not computed again, and
the numbers are those the model's own predictions give."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
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


def snap_by_the_dataframe(model: Any, booster: Any) -> None:
    """The thresholds snapped as they were from Booster.trees_to_dataframe (first split of a
    feature and float32 value wins)."""
    import onnx

    from mlplan.modeling._estimators import tree_ensembles

    frame = booster.trees_to_dataframe()
    splits = frame[frame["decision_type"] == "<="]
    names = booster.feature_name()
    floors: dict[tuple[int, float], float] = {}
    for feature, threshold in zip(splits["split_feature"], splits["threshold"], strict=True):
        rounded = np.float32(threshold)
        floor = rounded if float(rounded) <= threshold else np.nextafter(rounded, np.float32(-1e38))
        floors.setdefault((names.index(feature), float(rounded)), float(floor))
    for attrs in tree_ensembles(model):
        values = [
            floors.get((int(f), float(np.float32(v))), v) if m == b"BRANCH_LEQ" else v
            for f, v, m in zip(
                attrs["nodes_featureids"].ints,
                attrs["nodes_values"].floats,
                attrs["nodes_modes"].strings,
                strict=True,
            )
        ]
        attrs["nodes_values"].CopyFrom(onnx.helper.make_attribute("nodes_values", values))


def test_gbt_thresholds_are_snapped_from_the_model_text_as_the_dataframe_did(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same graph as when the thresholds were read from trees_to_dataframe (a tenth of a
    second per 100 trees), on ratios above 20,000 with three decimals, where most thresholds
    round up to float32."""
    import lightgbm
    import onnx
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType

    from mlplan.modeling._estimators import register_lightgbm, snap_lightgbm_thresholds

    rng = np.random.default_rng(8)
    rows = 4000
    debt = np.round(20000 + rng.uniform(0, 1, rows), 3).astype(np.float32)
    utilisation = np.round(rng.uniform(0, 1, rows), 2).astype(np.float32)
    x = np.column_stack([debt, utilisation])
    y = (debt - 20000 + 0.3 * utilisation + rng.normal(0, 0.1, rows) > 0.65).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=40, random_state=0, n_jobs=1, verbose=-1)
    model.fit(x, y)
    register_lightgbm("classification")
    graph = skl2onnx.convert_sklearn(
        model,
        initial_types=[("x", FloatTensorType([None, 2]))],
        options={"zipmap": False},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    expected = onnx.load_from_string(graph.SerializeToString())
    snap_by_the_dataframe(expected, model.booster_)

    def refused(self: Any) -> Any:
        raise AssertionError("trees_to_dataframe was called")

    monkeypatch.setattr(lightgbm.Booster, "trees_to_dataframe", refused)
    snap_lightgbm_thresholds(graph, model)
    assert graph.SerializeToString() == expected.SerializeToString()


@pytest.mark.parametrize(
    "as_given",
    [
        lambda v: np.asarray(v, dtype=object),  # Python strings, as training has them
        lambda v: np.asarray([s.encode() for s in v], dtype=object),  # read decoded
        lambda v: np.asarray([{"no": 0, "yes": 1}[s] for s in v], dtype=object),
    ],
    ids=["strings", "bytes", "integers"],
)
def test_labels_are_scored_as_their_text_whatever_they_are(as_given: Any) -> None:
    """Labels are read as NumPy's text of them (strings as they are, without a NumPy string
    array in between), and the numbers are scikit-learn's on that text."""
    from sklearn import metrics

    from mlplan.modeling import score_predictions

    rng = np.random.default_rng(2)
    y = rng.choice(["no", "yes"], 5000, p=[0.85, 0.15])
    positive = np.clip(rng.beta(1, 5, 5000) + (y == "yes") * 0.3, 0, 1)
    proba = np.column_stack([1 - positive, positive])
    predicted = np.where(positive >= 0.5, "yes", "no")
    given_y, given_predicted = as_given(y), as_given(predicted)
    classes = sorted(set(given_y.astype(str)))
    scores = score_predictions("classification", given_y, given_predicted, proba, classes)
    text_y, text_predicted = given_y.astype(str), given_predicted.astype(str)
    assert scores == pytest.approx(
        {
            "accuracy": metrics.accuracy_score(text_y, text_predicted),
            "macro_f1": metrics.f1_score(text_y, text_predicted, average="macro"),
            "roc_auc": metrics.roc_auc_score(text_y == classes[1], positive),
            "pr_auc": metrics.average_precision_score(text_y == classes[1], positive),
            "log_loss": metrics.log_loss(text_y, proba, labels=classes),
        },
        rel=1e-12,
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("classes", [2, 4])
def test_training_scores_are_scikit_learns_on_ties_and_certain_rows(
    dtype: Any, classes: int
) -> None:
    """Scores as a boosted model gives them (few distinct values, so long runs of ties; rows
    scored 0 and 1 exactly, as float32 outputs round to) and classes the predictions miss:
    each metric is scikit-learn's, the log loss clipped at the probabilities' precision."""
    from sklearn import metrics

    from mlplan.modeling import score_predictions

    rng = np.random.default_rng(5)
    n = 20_000
    names = [f"c{i}" for i in range(classes)]
    y = rng.choice(names, n, p=[0.7] + [0.3 / (classes - 1)] * (classes - 1))
    raw = rng.integers(1, 12, (n, classes)).astype(np.float64)  # ties everywhere
    raw[np.arange(n), rng.integers(0, classes, n)] += 40 * (rng.random(n) < 0.05)
    raw[:200, 0], raw[:200, 1:] = 1e9, 0  # certain rows
    proba = (raw / raw.sum(axis=1, keepdims=True)).astype(dtype)
    predicted = np.asarray(names)[np.argmax(proba, axis=1)]
    predicted[predicted == names[-1]] = names[0]  # a class never predicted
    scores = score_predictions("classification", y.astype(object), predicted, proba, names)
    expected = {
        "accuracy": metrics.accuracy_score(y, predicted),
        "macro_f1": metrics.f1_score(y, predicted, average="macro"),
        "log_loss": metrics.log_loss(y, proba, labels=names),
    }
    if classes == 2:
        expected["roc_auc"] = metrics.roc_auc_score(y == names[1], proba[:, 1])
        expected["pr_auc"] = metrics.average_precision_score(y == names[1], proba[:, 1])
    assert scores == pytest.approx(expected, rel=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("family", ["logistic", "gbt"])
def test_classifiers_learn_string_classes_from_numpy_strings(family: str) -> None:
    """The estimator sees the labels as a NumPy string array (scikit-learn and LightGBM sort
    a target's Python strings one comparison at a time, several times per fit); the model
    is the one the Python strings train, to the bit."""
    from mlplan.modeling._features import FeatureSet
    from mlplan.modeling._tabular import build_pipeline

    data = tabular_data("classification", classes=3)
    assert data.y["train"].dtype == object
    params = {"n_estimators": 30} if family == "gbt" else {}
    fitted = fit_estimator(data, family, 0, params, export=False)
    model = pickle.loads(fitted.native["native.pkl"])
    assert model[-1].classes_.dtype.kind == "U" and list(model[-1].classes_) == data.classes

    plain = build_pipeline("classification", family, FeatureSet.from_spec(data.spec), 0, params)
    plain.fit(data.x["train"], data.y["train"])
    labels, proba = fitted.predictions["test"]
    assert np.array_equal(proba, plain.predict_proba(data.x["test"]))
    assert list(labels) == list(plain.predict(data.x["test"]))


@pytest.mark.parametrize(
    "column",
    [
        pa.chunked_array([[1, None, -3], [2**62, 1]]),
        pa.chunked_array([["yes", None], ["no", "yes"]]),
        pa.chunked_array([pa.array(["yes", None, "no", "yes"]).dictionary_encode()]),
        pa.chunked_array([pa.array([True, None, False, True])]),
        pa.chunked_array([pa.array([1.0, None, 2.5, 1.0])]),
        pa.chunked_array([], type=pa.int64()),
    ],
    ids=["integers", "strings", "dictionary", "booleans", "floats", "empty"],
)
def test_class_labels_are_the_text_of_each_value(column: pa.ChunkedArray) -> None:
    """A classification target is str() of each value (None where missing), and a class is
    one Python string shared by its rows, not one made per row."""
    from mlplan.modeling import target_values

    labels = target_values(column, "classification")
    assert labels.dtype == object
    assert labels.tolist() == [None if v is None else str(v) for v in column.to_pylist()]
    if len(labels) and pa.types.is_integer(column.type):
        assert labels[0] is labels[-1]  # both 1


def test_feature_frames_of_the_splits_equal_each_split_taken_alone() -> None:
    """Training converts each column once and picks every split's rows from it: the frames
    are the ones each split read alone gives (numbers as float32 with NaN, strings with
    (missing) for missing and "", a dictionary column and a table in several chunks alike),
    and the training split's category counts come from the same pass."""
    import pandas as pd

    from mlplan.modeling import FeatureSet, feature_frame
    from mlplan.modeling._features import feature_frames

    rng = np.random.default_rng(3)
    n = 3000
    amount = pa.array(
        np.round(rng.normal(20000, 50, n), 3), mask=rng.random(n) < 0.1, type=pa.float64()
    )
    count = pa.array(rng.integers(0, 9, n), mask=rng.random(n) < 0.05)
    plan = pa.array(rng.choice(["basic", "pro", "team"], n).tolist(), mask=rng.random(n) < 0.1)
    region = pa.array(rng.choice(["north", "south", ""], n)).dictionary_encode()
    whole = pa.table({"amount": amount, "count": count, "plan": plan, "region": region})
    table = pa.concat_tables([whole.slice(0, 1000), whole.slice(1000)])  # two chunks
    features = FeatureSet(["amount", "count"], ["plan", "region"], {})
    codes = rng.choice(3, n, p=[0.7, 0.1, 0.2])
    rows = {name: np.flatnonzero(codes == code) for code, name in enumerate(("a", "b", "c"))}
    frames, counts = feature_frames(table, features, rows, counted="a")
    for name, index in rows.items():
        pd.testing.assert_frame_equal(frames[name], feature_frame(table, features, index))
    # The counts are the counted split's categories, missing and "" as one: (missing).
    assert counts == {c: frames["a"][c].value_counts().to_dict() for c in ("plan", "region")}
    assert "" not in counts["region"] and counts["region"]["(missing)"] > 0


def test_the_signature_holds_what_the_training_rows_hold() -> None:
    """Each input's range, categories and whether it was ever missing, from the training
    rows only: as Arrow reads them from those rows taken alone (NaN skipped unless every
    value is NaN, nulls not a category, "" a category), on a table in chunks whose
    dictionaries differ."""
    import pyarrow.compute as pc

    from mlplan.modeling import FeatureSet
    from mlplan.modeling._tabular import tabular_signature

    rng = np.random.default_rng(4)

    def part(n: int, plans: list[str], codes: list[str]) -> pa.Table:
        amount = rng.normal(0, 1, n)
        amount[:20] = np.nan
        return pa.table(
            {
                "amount": pa.array(amount, mask=rng.random(n) < 0.05),
                "nan_only": pa.array(np.full(n, np.nan)),
                "empty": pa.array([None] * n, pa.float64()),
                "count": pa.array(rng.integers(0, 5, n)),
                "plan": pa.array(rng.choice(plans, n).tolist(), mask=rng.random(n) < 0.1),
                "code": pa.array(rng.choice(codes, n)).dictionary_encode(),
            }
        )

    table = pa.concat_tables(
        [
            part(1500, ["basic", "pro", ""], ["a", "late"]),
            part(2500, ["basic", "enterprise"], ["b", "a"]),
        ]
    )
    n = table.num_rows
    features = FeatureSet(["amount", "nan_only", "empty", "count"], ["plan", "code"], {})
    train = np.sort(rng.choice(n, 2500, replace=False))
    signature = tabular_signature(table, features, train, {})
    taken = table.take(pa.array(train))
    got = {i.name: i for i in signature.inputs}
    for name in features.numeric:
        extremes = pc.min_max(pc.cast(taken.column(name), pa.float64()))
        low, high = extremes["min"].as_py(), extremes["max"].as_py()
        assert (got[name].min, got[name].max) == pytest.approx((low, high), nan_ok=True), name
        assert got[name].nullable == bool(taken.column(name).null_count), name
    for name in features.categorical:
        values = pc.cast(taken.column(name), pa.string())
        seen = sorted(pc.unique(pc.drop_null(values)).to_pylist())
        assert list(got[name].categories) == seen, name
        assert got[name].nullable == bool(values.null_count), name
    assert got["empty"].min is None and got["nan_only"].nullable is False
    assert "" in got["plan"].categories and got["plan"].nullable


@pytest.mark.parametrize("family", ["logistic", "gbt"])
def test_a_pipeline_fitted_on_imputed_frames_is_the_one_fitted_on_missing_strings(
    family: str,
) -> None:
    """The feature frames hold a missing category as MISSING_CATEGORY, so training skips the
    category imputer: the model is the one the whole pipeline fits on "" (its predictions to
    the bit), the kept pipeline has its imputer back, and its graph answers "" as the
    missing category."""
    import onnxruntime as ort

    from mlplan.modeling._features import MISSING_CATEGORY, FeatureSet
    from mlplan.modeling._features import onnx_feeds as onnx_feeds_of
    from mlplan.modeling._tabular import build_pipeline

    data = tabular_data("classification")
    missing = np.random.default_rng(9).random(3000) < 0.1
    raw = {}
    for split, rows in data.rows.items():
        frame = data.x[split].copy()
        frame.loc[missing[rows], "plan"] = ""
        raw[split] = frame
        imputed = frame.copy()
        imputed.loc[missing[rows], "plan"] = MISSING_CATEGORY
        data.x[split] = imputed
    fitted = fit_estimator(data, family, 7, {}, export=True)
    whole = build_pipeline("classification", family, FeatureSet.from_spec(data.spec), 7, {})
    whole.fit(raw["train"], data.y["train"].astype(str))
    for split in ("valid", "test"):
        assert np.array_equal(fitted.predictions[split][1], whole.predict_proba(raw[split]))
    kept = pickle.loads(fitted.native["native.pkl"])
    assert np.array_equal(kept.predict_proba(raw["test"]), whole.predict_proba(raw["test"]))
    session = ort.InferenceSession(fitted.graph, providers=["CPUExecutionProvider"])
    features = FeatureSet.from_spec(data.spec)
    as_missing = session.run(None, onnx_feeds_of(raw["test"], features))[1]
    as_category = session.run(None, onnx_feeds_of(data.x["test"], features))[1]
    assert np.array_equal(as_missing, as_category)
    np.testing.assert_allclose(as_missing, fitted.predictions["test"][1], rtol=1e-5, atol=1e-6)


def test_rare_categories_are_bucketed_per_distinct_value() -> None:
    """A long tail (a zip code: a thousand categories seen once or twice) is bucketed by
    looking each distinct value up once; the values are the row-by-row lookup's."""
    from mlplan.modeling._categories import INFREQUENT_CATEGORY, rare_categories

    rng = np.random.default_rng(8)
    tail = [f"z{i:04d}" for i in range(1000)]
    head = ["oslo", "bergen", "(missing)"]
    column = rng.choice(
        np.asarray(head + tail, dtype=object), 60_000, p=[0.3, 0.3, 0.1] + [0.3 / 1000] * 1000
    )
    other = rng.choice(np.asarray(["a", "b"], dtype=object), 60_000)
    x = np.column_stack([column, other])
    x[:50, 0] = None  # a raw frame's missing value passes through as it came
    rare = sorted(set(tail[::2]))
    out = rare_categories([rare, []]).fit(x).transform(x)
    expected = x.copy()
    expected[np.isin(x[:, 0], rare), 0] = INFREQUENT_CATEGORY
    assert out.dtype == object and (out[50:] == expected[50:]).all()
    assert all(v is None for v in out[:50, 0])


def test_a_split_that_cannot_be_prepared_is_not_blamed_on_the_hyperparameters() -> None:
    """The other splits are prepared on a second thread while the model fits; their error is
    raised as it is, not as the family refusing its hyperparameters."""
    from mlplan.errors import ParameterError

    data = tabular_data("classification")
    data.x["test"] = data.x["test"].drop(columns=["plan"])
    with pytest.raises(Exception, match="plan") as raised:
        fit_estimator(data, "logistic", 7, {"C": 0.5}, export=False)
    assert not isinstance(raised.value, ParameterError)
