"""What a model reads, per kind of data, and the examples each split gives it.

Three kinds of input, each with the ONNX feed its package takes:

- ``tabular``: one ``[n, 1]`` tensor per column (numbers as float32, categories as strings);
- ``image``: one ``image`` tensor ``[n, channels, height, width]`` of pixels 0–255;
- ``window``: one ``window`` tensor ``[n, length, channels]`` — the last ``length`` steps of a
  time-ordered series, ``horizon`` steps before the row whose target is predicted.

The spec of a model's input is stored with the model (``Model.features``), so that any later
stage can rebuild the feed for any rows of the data.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan._optional import require
from mlplan.data import DatasetVersionInfo, effective_metadata
from mlplan.errors import DataError
from mlplan.modeling._features import FeatureSet, feature_frame, onnx_feeds, select_features
from mlplan.workspace import Workspace

__all__ = [
    "SPLITS",
    "TrainingData",
    "example_rows",
    "feeds_for",
    "image_pixels",
    "input_kind",
    "inputs_for",
    "tabular_spec",
    "target_column",
    "target_kind",
    "target_values",
    "window_examples",
    "window_spec",
]

SPLITS = ("train", "valid", "test")
InputKind = Literal["tabular", "image", "window"]


def target_column(ws: Workspace, info: DatasetVersionInfo) -> str:
    """The column a model learns: an image folder's ``label``, else the plan's target."""
    target = "label" if info.format == "images" else ws.plan.target
    if target is None:
        raise DataError("the plan names no target column to learn; set 'target:'")
    return target


def input_kind(ws: Workspace, info: DatasetVersionInfo) -> InputKind:
    """``image`` for image folders, ``window`` for sequence tasks, else ``tabular``."""
    if info.format == "images":
        return "image"
    return "window" if ws.plan.task == "sequence" else "tabular"


def target_kind(task: str, target: pa.ChunkedArray) -> Literal["regression", "classification"]:
    """Regression for a regression task, or a sequence task with a numeric target."""
    if task == "regression":
        return "regression"
    if task == "sequence" and (
        pa.types.is_floating(target.type) or pa.types.is_integer(target.type)
    ):
        # Integer codes with few values read as classes, not amounts.
        distinct = len(pc.unique(pc.drop_null(target)))
        if pa.types.is_floating(target.type) or distinct > 20:
            return "regression"
    return "classification"


def target_values(target: pa.ChunkedArray, kind: str) -> np.ndarray:
    """Floats for regression, strings (as objects: ``str`` of each value, None where missing)
    for classification."""
    if kind == "regression":
        return np.asarray(pc.cast(target, pa.float64()).to_numpy(zero_copy_only=False))
    kind_of = target.type.value_type if pa.types.is_dictionary(target.type) else target.type
    if (
        pa.types.is_string(kind_of)
        or pa.types.is_large_string(kind_of)
        or (pa.types.is_integer(kind_of))
    ):
        # Arrow writes these as str() does: one Python string per class, shared by its rows.
        codes = pc.dictionary_encode(pc.cast(target, pa.string()).combine_chunks())
        classes = np.asarray([*codes.dictionary.to_pylist(), None], dtype=object)
        missing = len(codes.dictionary)
        return np.asarray(classes[pc.fill_null(codes.indices, missing).to_numpy()])
    return np.asarray([None if v is None else str(v) for v in target.to_pylist()], dtype=object)


@dataclass
class TrainingData:
    """Inputs and targets of each split, prepared in the driver and shipped to a worker."""

    task: str
    kind: Literal["regression", "classification"]
    spec: dict[str, Any]
    x: dict[str, Any]
    y: dict[str, np.ndarray]
    rows: dict[str, np.ndarray]
    classes: list[str]
    backbone: bytes | None = None
    notes: list[str] = field(default_factory=list)

    def feeds(self, split: str, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The ONNX inputs of a split, or of its examples at positions ``rows``."""
        x = self.x[split]
        if rows is not None:
            x = x.iloc[rows] if hasattr(x, "iloc") else x[rows]
        return feeds_for(self.spec, x)


def feeds_for(spec: dict[str, Any], x: Any) -> dict[str, np.ndarray]:
    """The ONNX inputs for prepared inputs ``x`` of a model with input ``spec``."""
    kind = spec.get("kind", "tabular")
    if kind == "image":
        return {"image": x}
    if kind == "window":
        return {"window": x}

    features = FeatureSet.from_spec(spec)
    return onnx_feeds(x, features)


def example_rows(
    spec: dict[str, Any], table: pa.Table, codes: np.ndarray, known: np.ndarray
) -> dict[str, np.ndarray]:
    """The table rows that are examples of each split: rows with a known target, and for
    windows, enough history before them."""
    usable = known.copy()
    if spec.get("kind") == "window":
        _, position = _time_order(table, spec["time_column"])
        usable &= position >= spec["length"] + spec["horizon"] - 1
    return {name: np.flatnonzero((codes == code) & usable) for code, name in enumerate(SPLITS)}


def inputs_for(
    ws: Workspace,
    info: DatasetVersionInfo,
    table: pa.Table,
    spec: dict[str, Any],
    rows: np.ndarray,
) -> Any:
    """The prepared inputs of ``rows`` for a model with input ``spec``: a DataFrame of
    features, windows, or images."""
    kind = spec.get("kind", "tabular")
    if kind == "image":
        return image_pixels(ws, info, table, rows, spec)
    if kind == "window":
        return window_examples(table, spec, rows)

    return feature_frame(table, FeatureSet.from_spec(spec), rows)


# -- tabular -----------------------------------------------------------------------------------


def tabular_spec(ws: Workspace, info: DatasetVersionInfo) -> dict[str, Any]:
    """The columns a tabular model reads, derived from the plan and the profile."""
    return {"kind": "tabular", **select_features(ws, info).to_dict()}


# -- images ------------------------------------------------------------------------------------


def image_pixels(
    ws: Workspace, info: DatasetVersionInfo, table: pa.Table, rows: np.ndarray, spec: dict[str, Any]
) -> np.ndarray:
    """The images of ``rows`` as float32 ``[n, channels, height, width]``, pixels 0–255:
    converted to grey or RGB and resized as the backbone expects.

    Raises
    ------
    DataError
        An image that is neither in the store nor unchanged in its folder.
    """
    image_module = require("PIL.Image", extra="images", purpose="reading images")
    channels, height, width = spec["channels"], spec["height"], spec["width"]
    mode = "L" if channels == 1 else "RGB"
    artifacts = ws.store.artifacts
    paths = table.column("path").to_pylist()
    hashes = table.column("sha256").to_pylist()
    root = ws.resolve(info.source_path)
    out = np.empty((len(rows), channels, height, width), dtype=np.float32)
    for i, row in enumerate(rows):
        sha = hashes[row]
        if artifacts.exists(sha):
            data = artifacts.path(sha).read_bytes()
        else:
            path = root / paths[row]
            data = path.read_bytes() if path.is_file() else b""
            if hashlib.sha256(data).hexdigest() != sha:
                raise DataError(
                    f"image {paths[row]} of {info.ref} is neither in the store nor unchanged "
                    f"in {info.source_path}; restore it or add the folder again"
                )
        with image_module.open(io.BytesIO(data)) as img:
            pixels = img.convert(mode).resize((width, height), image_module.Resampling.BILINEAR)
            array = np.asarray(pixels, dtype=np.float32)
        out[i] = array[None] if channels == 1 else array.transpose(2, 0, 1)
    return out


# -- windows over a time-ordered series --------------------------------------------------------


def window_spec(
    ws: Workspace, info: DatasetVersionInfo, table: pa.Table, target: str, kind: str
) -> dict[str, Any]:
    """Which columns feed each step of a window, its length and horizon.

    Forecasting (a numeric target) reads the target's own history and the numeric features,
    ``horizon`` (default 1) steps ahead; sequence classification reads the numeric features up
    to and including the row it labels (horizon 0).

    Raises
    ------
    DataError
        No time column for the dataset; no numeric input; a window longer than the data.
    """
    plan = ws.plan
    meta = effective_metadata(ws, info)
    time_column = meta.get("time_column")
    if not time_column or time_column not in table.column_names:
        raise DataError(
            f"a sequence task needs the order of the rows: set time_column for dataset "
            f"{info.name!r} in {ws.plan_path.name} (columns: {', '.join(table.column_names[:12])})"
        )
    features = select_features(ws, info, required=kind == "classification")
    channels = ([target] if kind == "regression" else []) + features.numeric
    if not channels:
        raise DataError(
            f"sequence classification of {target!r} needs numeric input columns; "
            f"{info.ref} has none ({', '.join(f'{k}: {v}' for k, v in features.excluded.items())})"
        )
    horizon = plan.modeling.horizon
    if horizon is None:
        horizon = 1 if kind == "regression" else 0
    if kind == "regression" and horizon < 1:
        raise DataError("forecasting needs modeling.horizon >= 1: the target is also an input")
    length = plan.modeling.window or min(24, max(2, table.num_rows // 10))
    if length + horizon >= table.num_rows:
        raise DataError(
            f"modeling.window {length} + horizon {horizon} is longer than the "
            f"{table.num_rows} rows of {info.ref}; use a shorter window"
        )
    excluded = dict(features.excluded)
    for name in features.categorical:
        excluded[name] = "categorical columns are not used by sequence families"
    return {
        "kind": "window",
        "time_column": time_column,
        "channels": channels,
        "length": length,
        "horizon": horizon,
        "numeric": channels,
        "categorical": [],
        "excluded": excluded,
    }


def _time_order(table: pa.Table, time_column: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows in time order (ties keep file order), and each row's position in it."""
    order = pc.sort_indices(table, sort_keys=[(time_column, "ascending")]).to_numpy()
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    return order, position


def window_examples(table: pa.Table, spec: dict[str, Any], rows: np.ndarray) -> np.ndarray:
    """The window before each of ``rows``: float32 ``[n, length, channels]``, NaN where a value
    is missing."""
    order, position = _time_order(table, spec["time_column"])
    series = np.column_stack(
        [
            pc.cast(table.column(c), pa.float64()).to_numpy(zero_copy_only=False)[order]
            for c in spec["channels"]
        ]
    ).astype(np.float32)
    length, horizon = spec["length"], spec["horizon"]
    views = np.lib.stride_tricks.sliding_window_view(series, length, axis=0)  # [k, C, L]
    start = position[rows] - horizon - length + 1
    if (start < 0).any():
        raise DataError("a row has too little history for the window")
    return np.ascontiguousarray(views[start].transpose(0, 2, 1))
