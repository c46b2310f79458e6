"""A window's records as DuckDB parses them from the log (``_read.answered_records``) and as
the families take them (``_families.read_sample``): a regression's values, both answer
formats, late and repeated feedback, events, and inputs of awkward types."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.monitoring.conftest import DAY

from mlplan.monitoring._families import Model, business_family, ml_families, read_sample
from mlplan.monitoring._read import LogSubject, answered_records
from mlplan.serving import PredictionLog, log_folder
from mlplan.workspace import Workspace

HOUR = DAY + dt.timedelta(hours=9)


def _write(ws: Workspace, model: str, records: list[dict[str, Any]]) -> None:
    """``records`` into ``model``'s log, a second apart from ``HOUR``."""
    times = (HOUR + dt.timedelta(seconds=i) for i in itertools.count())
    with PredictionLog(log_folder(ws, model), clock=lambda: next(times)) as log:
        for i, fields in enumerate(records):
            done = log.record(
                **{
                    "kind": "prediction",
                    "request_id": f"r{i}",
                    "model": model,
                    "version": "v1",
                    "route": "/v1/predict",
                    "status": 200,
                    "latency_ms": 1.0,
                    **fields,
                }
            )
            assert done is not None
            done.result(timeout=30)


def _read(ws: Workspace, model: str, classes: list[str]) -> Any:
    return answered_records(
        ws,
        LogSubject(None, model),
        since=HOUR,
        until=HOUR + dt.timedelta(hours=1),
        model=model,
        version="v1",
        classes=classes,
    )


def test_a_regressions_values_and_numeric_labels(project_dir: Path) -> None:
    (project_dir / "mlplan.yaml").write_text("project: r\ntask: regression\n")
    ws = Workspace(project_dir, store_url="sqlite://")
    tensor = [{"name": "value", "datatype": "FP64", "shape": [2], "data": [1.0, 2.0]}]
    _write(
        ws,
        "reg",
        [
            {"inputs": [{"x": 1}], "outputs": [{"value": 3.5}]},
            {"inputs": [{"x": 2}, {"x": 3}], "outputs": tensor, "route": "/v2/models/reg/infer"},
            {"inputs": [{"x": 4}], "outputs": [{"value": None}]},
            {"kind": "feedback", "request_id": "r0", "outputs": {"label": 3}},
            {"kind": "feedback", "request_id": "r0", "outputs": {"label": 4.5, "value": 2}},
            {"kind": "feedback", "request_id": "r0", "outputs": {"value": 1.5}},
            {"kind": "feedback", "request_id": "r1", "outputs": {"label": "9"}},  # 2 records
            {"kind": "feedback", "request_id": "r2", "outputs": {"label": "n/a", "value": True}},
        ],
    )
    records, events = _read(ws, "reg", [])
    assert records.column("value").to_pylist() == [3.5, 1.0, 2.0, None]
    assert records.column("in:x").type == "int64"
    # the newest label wins; a label names one answer, so none for the request of two
    assert records.column("truth").to_pylist() == [4.5, None, None, None]
    assert records.column("feedback_value").to_pylist() == [3.5, None, None, None]
    assert events.num_rows == 0
    model = Model("regression", (), None, ("mae",))
    sample = read_sample(records, events, model, [])
    assert sample.requests == 3 and list(sample.row_request) == [0, 1, 1, 2]
    (ml,) = ml_families(sample, [("all", np.arange(sample.rows))], model)
    assert ml == {"labelled": 1, "metrics": {"mae": pytest.approx(1.0)}}
    business = business_family(sample, np.arange(sample.rows), model)
    assert business["metrics"]["value"] == {"sum": 3.5, "mean": 3.5, "count": 1}


def test_events_add_up_per_request_and_odd_inputs_read(project_dir: Path) -> None:
    (project_dir / "mlplan.yaml").write_text("project: c\ntask: binary\n")
    ws = Workspace(project_dir, store_url="sqlite://")
    answer = [{"label": "yes", "probabilities": {"no": 0.25, "yes": 0.75}}]
    _write(
        ws,
        "clf",
        [
            {"inputs": [{"n": 1, "s": "a", "odd": 1}], "outputs": answer},
            {"inputs": [{"n": 2.5, "s": None, "odd": "b"}], "outputs": answer},
            {"inputs": [{"n": None}], "outputs": [{"label": None}]},  # abstained
            {"status": 500, "inputs": [{"n": 9}], "outputs": None},
            {"kind": "feedback", "request_id": "r0",
             "outputs": {"events": [{"name": "redo"}, {"name": "buy", "value": 10}]}},
            {"kind": "feedback", "request_id": "r0",
             "outputs": {"events": [{"name": "buy", "value": 5}, {"name": 7}, "x"]}},
            {"kind": "feedback", "request_id": "r1", "outputs": {"label": "no"}},
        ],
    )  # fmt: skip
    records, events = _read(ws, "clf", ["no", "yes"])
    assert records.num_rows == 3  # the refused request is not an answer
    assert records.column("in:n").to_pylist() == [1.0, 2.5, None]
    assert records.column("in:odd").to_pylist() == ["1", "b", None]  # mixed: as text
    assert records.column("proba").to_pylist() == [[0.25, 0.75], [0.25, 0.75], [None, None]]
    assert sorted(zip(*events.to_pydict().values(), strict=True)) == [
        ("r0", "buy", 15.0),
        ("r0", "redo", 1.0),
    ]
    model = Model("binary", ("no", "yes"), "yes", (), ("buy",))
    sample = read_sample(records, events, model, [])
    assert list(sample.labels) == [1, 1, -1] and list(sample.truth) == [-1, 0, -1]
    business = business_family(sample, np.arange(sample.rows), model)
    assert business["metrics"]["buy"] == {"sum": 15.0, "mean": 15.0, "count": 1}
