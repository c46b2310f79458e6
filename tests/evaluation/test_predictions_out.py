"""``evaluate --predictions-out``: the predictions on the rows evaluated, written out so that
anyone can recompute the evaluation's figures with another library and get the same numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import accuracy_score, mean_absolute_error, recall_score, roc_auc_score
from tests.conftest import chdir, register_split_train, write_csv
from tests.evaluation.conftest import churn_table, plan_text
from typer.testing import CliRunner

from mlplan.cli import app
from mlplan.data import export_rows, get_split, load_split
from mlplan.errors import ParameterError
from mlplan.evaluation import evaluate, evaluate_predictions, list_evaluations
from mlplan.workspace import Workspace

_TEXT = {"label": pa.string(), "prediction": pa.string(), "item_id": pa.string()}


def _read(path: Path) -> pa.Table:
    if path.suffix == ".csv":
        options = pcsv.ConvertOptions(column_types=_TEXT, strings_can_be_null=True)
        return pcsv.read_csv(path, convert_options=options)
    return pq.read_table(path)


def _group(report: dict, slice_name: str, value: str) -> dict:
    s = next(s for s in report["slices"] if s["name"] == slice_name)
    return next(g for g in s["groups"] if g["value"] == value)["metrics"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_scikit_learn_recomputes_the_evaluations_numbers_from_the_exported_predictions(
    trained: Workspace, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / "exported" / f"predictions{suffix}"

    result = evaluate(trained, "logistic-1", threshold=0.35, predictions_out=out)

    report = result.report
    assert result.files["predictions"] == out
    table = _read(out)
    assert table.num_rows == report["rows"]
    assert table.column_names == [
        "mlplan_row",
        "item_id",
        "label",
        "prediction",
        "score_0",
        "score_1",
        "threshold",
        "slice_gender",
        "slice_region",
        "slice_age",
        "slice_seniors",
    ]
    label = np.asarray(table["label"].to_pylist())
    predicted = np.asarray(table["prediction"].to_pylist())
    score = np.asarray(table["score_1"].to_pylist())
    assert set(table["threshold"].to_pylist()) == {0.35}
    # The decision is the score at the threshold used.
    assert (predicted == np.where(score >= 0.35, "1", "0")).all()
    overall = report["overall"]
    assert accuracy_score(label, predicted) == pytest.approx(
        overall["accuracy"]["value"], abs=1e-12
    )
    assert recall_score(label, predicted, pos_label="1") == pytest.approx(
        overall["recall"]["value"], abs=1e-12
    )
    assert roc_auc_score(label == "1", score) == pytest.approx(
        overall["roc_auc"]["value"], abs=1e-9
    )
    # Per slice group too: every row is in one group of each slice.
    region = np.asarray(table["slice_region"].to_pylist())
    assert None not in set(region)
    west = region == "region=west"
    assert accuracy_score(label[west], predicted[west]) == pytest.approx(
        _group(report, "region", "region=west")["accuracy"]["value"], abs=1e-12
    )
    # The rows are the split's test rows, keyed by the dataset's id column.
    loaded = load_split(trained, get_split(trained))
    rows = np.asarray(table["mlplan_row"].to_pylist())
    assert (loaded.codes[rows] == 2).all()
    ids = loaded.table.column("customer_id").to_pylist()
    assert table["item_id"].to_pylist() == [str(ids[r]) for r in rows]
    assert not list(out.parent.glob(".*.tmp"))  # written through a temporary file


def test_the_exported_rows_and_predictions_join_on_the_row_number(
    trained: Workspace, tmp_path: Path
) -> None:
    evaluate(trained, "logistic-1", predictions_out=tmp_path / "p.parquet")
    split = get_split(trained)

    exported = export_rows(trained, split.ref, part="test", out=tmp_path / "test.parquet")

    rows = pq.read_table(tmp_path / "test.parquet")
    predictions = pq.read_table(tmp_path / "p.parquet")
    joined = rows.join(predictions, "mlplan_row")
    assert joined.num_rows == predictions.num_rows == exported.rows
    assert joined["churned"].to_pylist() == [int(v) for v in joined["label"].to_pylist()]


def test_regression_predictions_give_the_evaluations_error(tmp_path: Path) -> None:
    write_csv(churn_table(), tmp_path / "data" / "customers.csv")
    (tmp_path / "mlplan.yaml").write_text(
        plan_text(task="regression", target="charges")
        .replace(
            "slice: gender, metric: recall, max_gap: 0.5", "slice: gender, metric: mae, max_gap: 50"
        )
        .replace(
            "{slice: region, metric: accuracy, min: 0.7}", "{slice: region, metric: r2, min: -100}"
        )
        .replace("metric: recall}", "metric: mae}")
        .replace("slice: region, metric: accuracy,\n", "slice: region, metric: mae,\n")
    )
    ws = Workspace(tmp_path)
    try:
        register_split_train(ws, id_column=None, stratify=None, family="linear")
        out = tmp_path / "p.csv"
        report = evaluate(ws, "linear-1", n_boot=0, predictions_out=out).report
    finally:
        ws.close()
    table = pcsv.read_csv(out)
    assert table.column_names[:4] == ["mlplan_row", "item_id", "label", "prediction"]
    assert "threshold" not in table.column_names
    mae = mean_absolute_error(table["label"].to_numpy(), table["prediction"].to_numpy())
    assert mae == pytest.approx(report["overall"]["mae"]["value"], rel=1e-12)


def test_predictions_made_elsewhere_can_be_written_out_too(
    trained: Workspace, tmp_path: Path
) -> None:
    loaded = load_split(trained, get_split(trained))
    test_rows = np.flatnonzero(loaded.codes == 2)
    ids = loaded.table.column("customer_id").to_pylist()
    truth = loaded.table.column("churned").to_pylist()
    vendor = pa.table(
        {
            "item_id": [ids[r] for r in test_rows],
            "prediction": [truth[r] if r % 4 else 1 - truth[r] for r in test_rows],
        }
    )
    write_csv(vendor, trained.root / "vendor.csv")
    out = tmp_path / "vendor-out.csv"

    report = evaluate_predictions(trained, "vendor.csv", predictions_out=out).report

    table = _read(out)
    label, predicted = table["label"].to_pylist(), table["prediction"].to_pylist()
    assert accuracy_score(label, predicted) == pytest.approx(report["overall"]["accuracy"]["value"])


def test_a_predictions_file_that_is_not_csv_or_parquet_is_refused_before_anything_is_stored(
    trained: Workspace, tmp_path: Path
) -> None:
    with pytest.raises(
        ParameterError, match=r"^'predictions_out' .*p\.xlsx must end in \.csv or \.parquet"
    ):
        evaluate(trained, "logistic-1", predictions_out=tmp_path / "p.xlsx")
    assert list_evaluations(trained) == []
    with chdir(trained.root):
        result = CliRunner().invoke(
            app, ["evaluate", "logistic-1", "--predictions-out", str(tmp_path / "p.txt")]
        )
    assert result.exit_code == 2
    assert (
        "error: --predictions-out" in result.output
        and "must end in .csv or .parquet" in result.output
    )
    assert list_evaluations(trained) == []
    with chdir(trained.root):
        result = CliRunner().invoke(
            app, ["evaluate", "logistic-1", "--predictions-out", "p.csv", "--bootstrap", "0"]
        )
    assert result.exit_code == 0, result.output
    assert (trained.root / "p.csv").is_file() and "p.csv" in result.output
