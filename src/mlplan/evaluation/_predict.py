"""A registered model's package run on a split's rows, and the binary decision threshold:
fixed, or chosen on the validation rows."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.data import Engine, effective_metadata
from mlplan.errors import DataError, ParameterError
from mlplan.evaluation._analysis import choose_threshold, versus_constant
from mlplan.evaluation._input import LoadedSplit, Part, Prediction
from mlplan.evaluation._predict_ray import ray_runner
from mlplan.modeling import (
    ModelInfo,
    Predictions,
    example_rows,
    feeds_for,
    inputs_for,
    run_graph,
    target_values,
)
from mlplan.plan import parse_threshold, recall_floor
from mlplan.workspace import Workspace

__all__ = ["decision_threshold", "package_metadata", "positive_class", "predict_model", "row_ids"]

_Run = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]


def package_metadata(ws: Workspace, package: Mapping[str, Any]) -> dict[str, Any]:
    """A model package's ``metadata.json`` (classes, the recorded threshold ...)."""
    loaded: dict[str, Any] = json.loads(
        ws.store.artifacts.path(package["metadata.json"]).read_text()
    )
    return loaded


def row_ids(ws: Workspace, split: LoadedSplit, rows: np.ndarray) -> list[str]:
    """The item id of each of ``rows``: the dataset's id column, else the row number."""
    id_column = effective_metadata(ws, split.version).get("id_column")
    if id_column and id_column in split.table.column_names:
        values = pc.cast(split.table.column(id_column), pa.string()).to_pylist()
        return [str(values[i]) for i in rows]
    return [str(i) for i in rows]


def positive_class(positive: str | None, classes: list[str], where: str) -> str | None:
    """The plan's positive class, checked against the binary ``classes`` of ``where``."""
    if positive is None or len(classes) != 2:
        return None
    if positive not in classes:
        raise DataError(
            f"the plan's positive_class {positive!r} is not one of the classes of {where}: "
            f"{', '.join(classes)}; fix positive_class in the plan"
        )
    return positive


def decision_threshold(
    plan_choice: float | str,
    given: float | str | None,
    valid: tuple[np.ndarray, np.ndarray] | None,
) -> dict[str, Any]:
    """The threshold ``given`` (else the plan's): a number, or ``f1``/``youden``/``recall>=X``
    chosen on the validation scores and outcomes ``valid``; with how it was chosen (a
    ``warning`` when a recall floor cannot be reached) and, when there are validation rows,
    how its decisions compare with a constant answer on them."""
    chosen = _threshold(plan_choice, given, valid)
    if valid is not None and valid[1].size:
        chosen["versus_constant"] = versus_constant(valid[0], valid[1], chosen["value"])
    return chosen


def _threshold(
    plan_choice: float | str,
    given: float | str | None,
    valid: tuple[np.ndarray, np.ndarray] | None,
) -> dict[str, Any]:
    try:
        choice = parse_threshold(plan_choice if given is None else given, name="{param}")
    except ValueError as error:
        raise ParameterError("threshold", str(error)) from None
    if isinstance(choice, float):
        return {"value": choice, "criterion": "fixed", "chosen_on": None}
    floor = recall_floor(choice)
    if valid is None:
        chosen: dict[str, Any] = {
            "value": 0.5,
            "criterion": "default",
            "chosen_on": None,
            "note": f"no validation rows to choose a threshold by {choice}; 0.5 is used",
        }
        if floor is not None:
            chosen["warning"] = f"no validation rows to find a threshold of {choice}; 0.5 is used"
        return chosen
    value, score = choose_threshold(valid[0], valid[1], choice)
    chosen = {"value": value, "criterion": choice, "chosen_on": "valid", "criterion_value": score}
    if floor is not None and not np.isfinite(score):
        chosen["warning"] = (
            f"no threshold reaches {choice} on the {valid[1].size:,} validation rows: none of "
            "them is positive; 0.5 is used, and the recall target is judged at it"
        )
    return chosen


def predict_model(
    ws: Workspace,
    model: ModelInfo,
    split: LoadedSplit,
    *,
    part: Part,
    threshold: float | str | None,
    engine: Engine = "local",
) -> Prediction:
    """``model``'s predictions on the ``part`` rows of ``split`` that have a known target;
    a binary model's labels follow the decision threshold (``threshold``, else the plan's).
    With ``engine="ray"`` the package runs on Ray Data (:func:`ray_runner`), with the same
    outputs.
    """
    examples = example_rows(model.features, split.table, split.codes, split.known)
    rows = examples[part]
    if not rows.size:
        raise DataError.about(
            "part",
            f"the {part} split of {model.split} has no rows with a known target to evaluate "
            f"{model.name} on; choose another with {{param}}",
        )
    graph = ws.store.artifacts.path(model.package["model.onnx"]).read_bytes()
    spec = model.features

    def run_here(which: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        inputs = inputs_for(ws, split.version, split.table, spec, which)
        return run_graph(graph, feeds_for(spec, inputs), split.kind)

    run: _Run = run_here
    if engine == "ray":
        run = ray_runner(ws, split.version, split.table, spec, graph, split.kind)

    predicted, proba = run(rows)
    y_all = target_values(split.target, split.kind)
    y = y_all[rows]
    ids = row_ids(ws, split, rows)
    if split.kind == "regression":
        return Prediction(Predictions.from_arrays(y, predicted, kind="regression"), rows, ids)
    classes = [str(c) for c in package_metadata(ws, model.package)["classes"]]
    positive = positive_class(ws.plan.positive_class, classes, model.name)
    chosen = None
    if threshold is not None and (len(classes) != 2 or proba is None):
        raise ParameterError(
            "threshold",
            f"{{param}} applies to a binary model with probabilities; {model.name} has "
            f"{len(classes)} classes",
        )
    if len(classes) == 2 and proba is not None:
        pos = classes.index(positive) if positive is not None else 1
        valid = _validation_scores(run, examples["valid"], y_all, classes[pos], pos)
        chosen = decision_threshold(ws.plan.evaluation.threshold, threshold, valid)
        if part == "valid" and chosen.get("chosen_on") == "valid":
            chosen["note"] = "chosen on the rows it is evaluated on: these figures are optimistic"
        decided = proba[:, pos] >= chosen["value"]
        predicted = np.where(decided, classes[pos], classes[1 - pos]).astype(object)
        positive = classes[pos]
    data = Predictions.from_arrays(
        y, predicted, kind="binary", proba=proba, classes=classes, positive=positive
    )
    return Prediction(data, rows, ids, chosen)


def _validation_scores(
    run: _Run, valid_rows: np.ndarray, y_all: np.ndarray, positive: str, pos: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The positive class's score and outcome on the validation rows (None: there are none)."""
    if not valid_rows.size:
        return None
    _, valid_proba = run(valid_rows)
    assert valid_proba is not None
    return valid_proba[:, pos], y_all[valid_rows] == positive
