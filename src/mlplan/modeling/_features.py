"""Which columns a model may use, and how each is prepared — derived from the plan and the
data profile — and those columns as a tabular pipeline and its ONNX package read them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan._optional import require
from mlplan.data import DatasetVersionInfo, effective_metadata, entity_reason, id_columns
from mlplan.errors import DataError
from mlplan.workspace import Workspace

__all__ = [
    "MISSING_CATEGORY",
    "FeatureSet",
    "feature_frame",
    "feature_frames",
    "onnx_feeds",
    "select_features",
    "with_derived",
]

MISSING_CATEGORY = "(missing)"
"""The category of a missing string: a tabular pipeline's imputer and its graph put it in
place of "", and the feature frames hold it already."""


@dataclass(frozen=True)
class FeatureSet:
    """Numeric and categorical input columns, why others were left out, and the rare
    categories of each categorical column that share one input (``modeling.min_frequency``;
    counted on the training rows, so empty until a split is prepared)."""

    numeric: list[str]
    categorical: list[str]
    excluded: dict[str, str]
    infrequent: dict[str, list[str]] = field(default_factory=dict)
    derived: dict[str, Any] | None = None
    """The plan's derived features fitted on the training rows (``features.json``), when
    the model reads some: the columns of ``numeric`` it names are computed, not fed."""

    @property
    def columns(self) -> list[str]:
        """All inputs, numeric first."""
        return [*self.numeric, *self.categorical]

    @property
    def derived_names(self) -> list[str]:
        """The derived features among the inputs."""
        names = {f["name"] for f in (self.derived or {}).get("features", [])}
        return [c for c in self.numeric if c in names]

    @property
    def inputs(self) -> FeatureSet:
        """The columns a package takes, as its graph computes the derived features from
        them: the inputs that are not derived, then the raw columns only features read."""
        if not self.derived:
            return self
        derived = set(self.derived_names)
        kinds: dict[str, str] = self.derived.get("inputs", {})
        numeric = [c for c in self.numeric if c not in derived]
        categorical = list(self.categorical)
        for column, kind in kinds.items():
            if column not in numeric and column not in categorical:
                (categorical if kind == "string" else numeric).append(column)
        return FeatureSet(numeric, categorical, self.excluded, self.infrequent)

    @property
    def frame_columns(self) -> FeatureSet:
        """What a feature frame holds: the model's inputs and the raw columns only the
        derived features read (the graph's feeds)."""
        if not self.derived:
            return self
        inputs = self.inputs
        numeric = [*self.numeric, *(c for c in inputs.numeric if c not in self.numeric)]
        return FeatureSet(numeric, inputs.categorical, self.excluded, self.infrequent)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the rare categories join it in the model's input spec)."""
        return {"numeric": self.numeric, "categorical": self.categorical, "excluded": self.excluded}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> FeatureSet:
        """The inputs of a tabular model from its stored input spec (``Model.features``)."""
        return cls(
            spec["numeric"],
            spec["categorical"],
            {},
            dict(spec.get("infrequent") or {}),
            spec.get("derived") or None,
        )


def select_features(
    ws: Workspace, info: DatasetVersionInfo, *, required: bool = True
) -> FeatureSet:
    """The plan's ``modeling.features``, else every column but the target, ids, times, PII
    columns, free text and the plan's ``modeling.exclude``.

    Ids are the plan's ``id_column`` and every column that only numbers or names the rows
    (unique per row with an id's name, or a gap-free run of integers such as the row number an
    R or pandas export adds): a model would learn the order of the file. So are an entity's id
    (``customer_id`` over a customer's rows) and a text with a value on nearly every row.
    Listing one in ``modeling.features`` uses it all the same.

    Raises
    ------
    DataError
        A named feature that is not a column; no usable feature left (when ``required``).
    """
    plan = ws.plan
    meta = effective_metadata(ws, info)
    profile = info.profile["columns"]
    excluded: dict[str, str] = {}
    reasons = {
        plan.target: "the target",
        meta.get("id_column"): "the id column",
        meta.get("time_column"): "the time column",
    }
    for column in meta.get("pii_columns") or []:
        reasons.setdefault(column, "personal data (pii_columns)")
    for column in plan.modeling.exclude:
        reasons.setdefault(column, "modeling.exclude")
    wanted = plan.modeling.features
    for column, why in id_columns(info.profile).items():
        if wanted is None or column not in wanted:
            reasons.setdefault(column, why)
    if wanted is None:
        rows = int(info.profile.get("rows") or 0)
        for column, entry in profile.items():
            entity = entity_reason(column, entry, rows)
            if entity is not None:
                reasons.setdefault(column, f"{entity}; list it in modeling.features to use it")
    if wanted is not None:
        missing = [c for c in wanted if c not in profile]
        if missing:
            raise DataError(
                f"modeling.features names {', '.join(missing)}, which are not columns of {info.ref}"
            )
    numeric, categorical = [], []
    for name, column in profile.items():
        if wanted is not None and name not in wanted:
            continue
        if name in reasons and reasons[name] is not None and name is not None:
            excluded[name] = reasons[name]
        elif column.get("pii_suspected"):
            excluded[name] = f"looks like personal data ({column['pii_suspected']})"
        elif column.get("count") == 0:
            excluded[name] = "all missing: no value in the data"
        elif column["kind"] in {"numeric", "boolean"}:
            numeric.append(name)
        elif column["kind"] == "categorical":
            categorical.append(name)
        else:
            excluded[name] = f"{column['kind']} columns are not used by tabular families"
    if required and not numeric and not categorical:
        raise DataError(
            f"no usable feature in {info.ref}: every column was left out "
            f"({', '.join(f'{k}: {v}' for k, v in excluded.items())})"
        )
    return FeatureSet(numeric, categorical, excluded)


def feature_frame(table: pa.Table, features: FeatureSet, rows: np.ndarray) -> Any:
    """The feature columns of ``rows`` as the DataFrame the pipeline expects: numbers as the
    float32 values the ONNX graph reads (missing: NaN), strings with missing and empty ones as
    ``MISSING_CATEGORY``, the category the graph puts in place of a missing string ("")."""
    subset = table.select(_stored(table, features)).take(pa.array(rows, pa.int64()))
    return _frames(subset, features, {"rows": None})[0]["rows"]


def feature_frames(
    table: pa.Table, features: FeatureSet, rows: dict[str, np.ndarray], *, counted: str
) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    """:func:`feature_frame` of each set of rows (a split's) that together cover most of
    ``table``: each column converted once, its rows then picked per split; and how many of
    the ``counted`` rows hold each category of each categorical column (missing ones as
    ``MISSING_CATEGORY``), counted from the same conversion."""
    return _frames(table.select(_stored(table, features)), features, rows, counted)


def _stored(table: pa.Table, features: FeatureSet) -> list[str]:
    """The columns of a frame to read from ``table``: all but the derived features it lacks
    (computed from the others, :func:`with_derived`)."""
    derived = set(features.derived_names)
    columns = features.frame_columns.columns
    return [c for c in columns if c not in derived or c in table.column_names]


def with_derived(table: pa.Table, features: FeatureSet) -> pa.Table:
    """``table`` with the derived features it lacks computed by DuckDB from its raw columns
    (``mlplan.features``: the same definitions and constants the package's graph holds)."""
    missing = [c for c in features.derived_names if c not in table.column_names]
    if not missing or features.derived is None:
        return table
    from mlplan.features import FittedFeatures

    computed = FittedFeatures.from_dict(features.derived).transform(table)
    for name in missing:
        table = table.append_column(name, pa.array(computed[name], pa.float32()))
    return table


def _frames(
    table: pa.Table,
    features: FeatureSet,
    rows: Mapping[str, np.ndarray | None],
    counted: str | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    """The frames of ``rows`` of ``table`` (None: every row), and the category counts of the
    rows named ``counted``."""
    pd = require("pandas", extra="models", purpose="training models")
    data: dict[str, dict[str, Any]] = {split: {} for split in rows}
    counts: dict[str, dict[str, int]] = {}
    table = with_derived(table, features)
    counted_columns = set(features.categorical)
    features = features.frame_columns

    def pick(values: np.ndarray, index: np.ndarray | None) -> np.ndarray:
        return values if index is None else values[index]

    for name in features.numeric:
        # The model learns from the values its package will see. Trained on float64, a tree
        # splits 20000.123 from 20000.124, which are one float32: the package would answer
        # differently from the model that was measured.
        values = pc.cast(table.column(name), pa.float64()).to_numpy(zero_copy_only=False)
        values = values.astype(np.float32)
        for split, index in rows.items():
            data[split][name] = pick(values, index)
    for name in features.categorical:
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = pc.cast(column, column.type.value_type)
        # Kept as Python strings (object), not pandas' Arrow-backed str: scikit-learn converts
        # an Arrow column to objects again each time the pipeline reads it. One string per
        # category, shared by its rows: made once, hashed once, compared by identity.
        codes = pc.dictionary_encode(
            pc.fill_null(pc.cast(column, pa.string()), "").combine_chunks()
        )
        # Missing and "" as the pipeline's imputer and the graph's take them.
        dictionary = [MISSING_CATEGORY if v == "" else v for v in codes.dictionary.to_pylist()]
        categories = np.asarray(dictionary, dtype=object)
        indices = codes.indices.to_numpy(zero_copy_only=False)
        for split, index in rows.items():
            data[split][name] = pd.Series(categories[pick(indices, index)], dtype=object)
        if counted is not None and name in counted_columns:
            tally = np.bincount(pick(indices, rows[counted]), minlength=len(dictionary))
            counts[name] = {}
            for category, n in zip(dictionary, tally.tolist(), strict=True):
                if n:
                    counts[name][category] = counts[name].get(category, 0) + n
    return {split: pd.DataFrame(columns) for split, columns in data.items()}, counts


def onnx_feeds(frame: Any, features: FeatureSet) -> dict[str, np.ndarray]:
    """The ONNX inputs for a feature frame: one [n, 1] tensor per column (of a package with
    derived features, its raw columns only, a missing category as a server sends it: "")."""
    if features.derived:
        inputs = features.inputs
        feeds = {c: frame[c].to_numpy(dtype=np.float32).reshape(-1, 1) for c in inputs.numeric}
        for c in inputs.categorical:
            values = frame[c].to_numpy(dtype=object).astype(str)
            feeds[c] = np.where(values == MISSING_CATEGORY, "", values).reshape(-1, 1)
        return feeds
    feeds = {c: frame[c].to_numpy(dtype=np.float32).reshape(-1, 1) for c in features.numeric}
    feeds |= {
        c: frame[c].to_numpy(dtype=object).astype(str).reshape(-1, 1) for c in features.categorical
    }
    return feeds
