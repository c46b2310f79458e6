"""A split made ready for training, once for every family of the task: its target checked, its
inputs (features, windows or images) and targets per split, and for tables, the categories too
rare in training to score apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan._optional import require
from mlplan.core import expression_names
from mlplan.data import DatasetVersionInfo, SplitInfo, load_split, target_problem
from mlplan.errors import DataError
from mlplan.features import FeatureDefinitions, fit_features
from mlplan.modeling._backbones import backbone_input
from mlplan.modeling._categories import infrequent_categories
from mlplan.modeling._features import FeatureSet, feature_frames
from mlplan.modeling._inputs import (
    TrainingData,
    example_rows,
    input_kind,
    inputs_for,
    tabular_spec,
    target_column,
    target_kind,
    target_values,
    window_spec,
)
from mlplan.modeling._screen import screen_features
from mlplan.workspace import Workspace

__all__ = ["PreparedSplit", "prepare_split"]


@dataclass(frozen=True)
class PreparedSplit:
    """A split as every family trains on it: the split, its dataset version and table, and the
    prepared inputs and targets."""

    split: SplitInfo
    info: DatasetVersionInfo
    table: pa.Table
    data: TrainingData


def prepare_split(ws: Workspace, split_info: SplitInfo) -> PreparedSplit:
    """Load a split and prepare what every family of the task trains on.

    Raises
    ------
    DataError
        A missing or constant target, one class only, no usable input, too little history.
    """
    plan = ws.plan
    loaded = load_split(ws, split_info)
    info, table, codes = loaded.info, loaded.table, loaded.codes
    target = target_column(ws, info)
    column = _target(ws, info, table, target)
    kind = "classification" if info.format == "images" else target_kind(plan.task, column)
    known = ~np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False))
    y_all = target_values(column, kind)
    spec, backbone = _input_spec(ws, info, table, target, kind)
    rows = example_rows(spec, table, codes, known)
    if not rows["train"].size:
        raise DataError(f"{split_info.ref} has no training rows with a known {target!r}")
    classes = _classes(kind, y_all[rows["train"]], target)
    if plan.features and spec["kind"] != "tabular":
        raise DataError(
            f"{ws.plan_path.name} declares features:, which tables use; a {spec['kind']} "
            "model reads its own input. Remove the section for this task"
        )
    if spec["kind"] == "tabular":
        spec, table = _derived(ws, info, table, spec, rows["train"], target)
        spec = _screened(ws, info, table, spec, rows["train"], y_all[rows["train"]], kind)
    if spec["kind"] == "tabular":
        # Counted once on the training rows, for every family, and kept with each model.
        features = FeatureSet.from_spec(spec)
        x, counts = feature_frames(table, features, rows, counted="train")
        least = plan.modeling.min_frequency
        rare = infrequent_categories(counts, least)
        spec = spec | {"min_frequency": least, "infrequent": rare}
    else:
        x = {name: inputs_for(ws, info, table, spec, index) for name, index in rows.items()}
    data = TrainingData(
        task=plan.task,
        kind=kind,
        spec=spec,
        x=x,
        y={name: y_all[index] for name, index in rows.items()},
        rows=rows,
        classes=classes,
        backbone=backbone,
    )
    return PreparedSplit(split_info, info, table, data)


def _target(
    ws: Workspace, info: DatasetVersionInfo, table: pa.Table, target: str
) -> pa.ChunkedArray:
    """The target column, checked against the task (two values for binary, classes for a
    classification, numbers for regression)."""
    if target not in table.column_names:
        raise DataError(f"{info.ref} has no target column {target!r} to learn")
    column = table.column(target)
    profile = info.profile.get("columns", {}).get(target)
    problem = (
        target_problem(ws.plan.task, target, profile, positive_class=ws.plan.positive_class)
        if profile
        else None
    )
    if problem:
        raise DataError(f"{info.ref}: {problem} (in {ws.plan_path.name})")
    if ws.plan.task == "regression" and not (
        pa.types.is_floating(column.type) or pa.types.is_integer(column.type)
    ):
        raise DataError(
            f"a regression task needs a numeric target; {target!r} holds {column.type} values. "
            "Set task: binary or multiclass, or name a numeric target"
        )
    return column


def _derived(
    ws: Workspace,
    info: DatasetVersionInfo,
    table: pa.Table,
    spec: dict[str, Any],
    train: np.ndarray,
    target: str,
) -> tuple[dict[str, Any], pa.Table]:
    """The plan's derived features (``features:``) fitted on the training rows and computed
    by DuckDB on every row, joining the table and the spec's numeric inputs; the spec keeps
    them fitted (``derived``), for the package's graph and every later batch."""
    definitions = FeatureDefinitions.from_plan(ws.plan, source=ws.plan_path.name)
    if not definitions:
        return spec, table
    fitted = fit_features(definitions, table, rows=train, where=info.ref)
    if target in fitted.types:
        users = [f.name for f in definitions.features if target in expression_names(f.node)]
        raise DataError(
            f"{ws.plan_path.name}: feature {', '.join(map(repr, users))} reads the target "
            f"{target!r}, which a model is not given when it predicts"
        )
    computed = fitted.transform(table)
    for name in fitted.names:
        table = table.append_column(name, pa.array(computed[name], pa.float32()))
    numeric = [*spec["numeric"], *fitted.names]
    return spec | {"numeric": numeric, "derived": fitted.to_dict()}, table


def _screened(
    ws: Workspace,
    info: DatasetVersionInfo,
    table: pa.Table,
    spec: dict[str, Any],
    train: np.ndarray,
    y_train: np.ndarray,
    kind: Literal["regression", "classification"],
) -> dict[str, Any]:
    """The tabular spec once each feature is screened alone on the training rows: constant,
    all-missing and duplicate columns left out with a note; a feature that nearly determines
    the target refused unless the plan allows it."""
    allowed = ws.plan.modeling.allowed_features
    unknown = [c for c in allowed if c not in table.column_names]
    if unknown:
        raise DataError(
            f"modeling.allowed_features in {ws.plan_path.name} names "
            f"{', '.join(map(repr, unknown))}, which {'is' if len(unknown) == 1 else 'are'} "
            f"not a column of {info.ref}"
        )
    screen = screen_features(
        table,
        FeatureSet(spec["numeric"], spec["categorical"], {}),
        y_train,
        kind=kind,
        target=target_column(ws, info),
        rows=train,
        allowed=allowed,
        seed=ws.plan.modeling.seed,
    )
    screen.check(ws.plan_path.name)
    screened = screen.apply(spec)
    if not screened["numeric"] and not screened["categorical"]:
        raise DataError(
            f"no usable feature in {info.ref}: every column was left out "
            f"({', '.join(f'{k}: {v}' for k, v in screened['excluded'].items())})"
        )
    return screened


def _input_spec(
    ws: Workspace, info: DatasetVersionInfo, table: pa.Table, target: str, kind: str
) -> tuple[dict[str, Any], bytes | None]:
    """What the models read (stored with each model) and, for images, the backbone's bytes."""
    which = input_kind(ws, info)
    if which == "window":
        return window_spec(ws, info, table, target, kind), None
    if which == "tabular":
        return tabular_spec(ws, info), None
    modeling = ws.plan.modeling
    backbone_spec, backbone = backbone_input(
        modeling.backbone,
        ws.root,
        size=modeling.image_size,
        mean=modeling.image_mean,
        std=modeling.image_std,
    )
    spec = {
        "kind": "image",
        "channels": backbone_spec["channels"],
        "height": backbone_spec["height"],
        "width": backbone_spec["width"],
        "backbone": backbone_spec,
        "fine_tune": modeling.fine_tune,
        "numeric": [],
        "categorical": [],
        "excluded": {},
    }
    return spec, backbone


def _classes(
    kind: Literal["regression", "classification"], y_train: np.ndarray, target: str
) -> list[str]:
    """The classes seen in training (none for regression); a target with one class, or a
    constant value, cannot be learned."""
    if kind != "classification":
        if np.nanstd(y_train) == 0:
            raise DataError(f"the target {target!r} is constant in the training split")
        return []
    # The labels are few strings shared by many rows (target_values): hashed in C, not a
    # Python set over every row.
    pd = require("pandas", extra="models", purpose="training models")
    classes = sorted({str(v) for v in pd.unique(y_train)})
    if len(classes) < 2:
        raise DataError(
            f"the target {target!r} has one class in the training split "
            f"({', '.join(classes)}); a classifier needs at least two"
        )
    return classes
