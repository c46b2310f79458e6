"""The training reference: a compact profile of what a model saw, kept in its package
(``reference.json``, covered by the package's hash) so that monitoring compares live traffic
with training without reading the training data again.

Inputs are profiled as a server receives them — raw column values of the training rows,
before the package's preprocessing:

- a number: rows, missing values (null or NaN), min, max, mean, standard deviation; its
  distribution exactly (each distinct value with its count) while it has at most
  :data:`EXACT_VALUES` distinct values, else as :data:`QUANTILE_POINTS` exact quantiles (the
  values at ranks 0, 1/256, ..., 1: a CDF read from them is within ``rank_error``, about
  0.4 %, of the training rows' own); and the counts of the training rows in :data:`BINS`
  bins cut at their exact deciles, for PSI;
- a string: missing values and the :data:`TOP_CATEGORIES` most frequent categories with their
  counts, the rest summed as one count (``other``: how many rows and categories); a column the
  dataset redacts as personal keeps its counts only, never its values;
- an image: its width, height, brightness and contrast (the columns the dataset's image
  profile computes), each as a number above.

The output is profiled on the validation split (the test split when it has none) as the
package scores it: predicted class counts and, per class, its probabilities' counts in
bins cut at their deciles (regression: the predicted values as a number above). For the
estimate before labels, a seeded sample of at most :data:`CALIBRATION_ROWS` validation rows
keeps its scores (float32, as the graph gives them) and true classes, base64-encoded; the
calibration is fitted from them by monitoring, which sits above modeling.

Why exact quantiles and not a KLL sketch, as dataset profiles keep: DataSketches' KLL
compacts at random and its Python binding takes no seed, so the same training would write
another ``reference.json`` — another package hash — each time, and its bound holds with 99 %
probability only. Training holds its rows in memory and sorts each column once anyway (for the
distinct values and the deciles), so exact quantiles cost nothing, are deterministic, and are
within 1/256 in rank for certain: tighter than KLL's 1.33 % at k = 200 in half the bytes.

Size: about 3 KB for a number with many values (its quantiles as base64 float64), 0.5 KB for
one with few, up to 3 KB for a string with many categories: 100 numeric features make about
330 KB; the validation sample adds at most 110 KB per class.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.errors import PackageError
from mlplan.modeling._features import FeatureSet
from mlplan.modeling._models import ModelInfo, get_model
from mlplan.modeling._package import run_graph
from mlplan.modeling._prepare import PreparedSplit
from mlplan.workspace import Workspace

__all__ = [
    "BINS",
    "CALIBRATION_ROWS",
    "EXACT_VALUES",
    "QUANTILE_POINTS",
    "REFERENCE_FILE",
    "TOP_CATEGORIES",
    "CategoricalReference",
    "InputReference",
    "NumericReference",
    "OutputReference",
    "TrainingReference",
    "categorical_reference",
    "input_reference",
    "numeric_reference",
    "output_reference",
    "training_reference",
    "training_reference_of",
]

REFERENCE_FILE = "reference.json"
FORMAT = 1
EXACT_VALUES = 256
"""A number with at most this many distinct values keeps each with its count."""
QUANTILE_POINTS = 257
"""A number with more distinct values keeps its quantiles at ranks 0, 1/256, ..., 1."""
BINS = 10
"""Numbers and scores are counted in this many bins cut at the reference's quantiles."""
TOP_CATEGORIES = 100
"""A string keeps this many categories by count; the rest are summed as one."""
CALIBRATION_ROWS = 20_000
"""At most this many validation rows keep their scores and labels for a calibration."""
OUTPUT_ROWS = 100_000
"""The output reference scores at most this many validation rows (a seeded sample)."""
IMAGE_OUTPUT_ROWS = 2_000
"""An image model scores at most this many."""
IMAGE_COLUMNS = ("width", "height", "brightness", "contrast")


@dataclass(frozen=True)
class NumericReference:
    """What training saw of a number: counts and moments, its distribution (exact values
    with their counts, or its quantiles), and its counts in bins at the training deciles
    (``edges``: the inner edges; ``bin_counts``: one more than the edges)."""

    name: str
    rows: int
    missing: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    edges: tuple[float, ...]
    bin_counts: tuple[int, ...]
    values: tuple[float, ...] = ()
    counts: tuple[int, ...] = ()
    quantiles: tuple[float, ...] = ()
    """Many distinct values: the values at :data:`QUANTILE_POINTS` evenly spaced ranks."""
    rank_error: float = 0.0
    """How far (in rank) a CDF read from the quantiles may be from the training rows'."""
    infinite: int = 0
    """Rows of plus or minus infinity: neither missing nor in the distribution."""

    type: Literal["number"] = "number"

    @property
    def present(self) -> int:
        """The rows with a finite value (those the distribution and the bins count)."""
        return self.rows - self.missing - self.infinite

    def distribution(self) -> tuple[np.ndarray, np.ndarray]:
        """The training values as sorted ``(values, weights)``: each distinct value with its
        count, or the quantiles with the rows each stands for (their CDF within
        :attr:`rank_error` of the training rows')."""
        if not self.quantiles:
            return np.asarray(self.values, np.float64), np.asarray(self.counts, np.float64)
        ranks = _ranks(self.present, len(self.quantiles))
        weights = np.diff(np.r_[-1, ranks]).astype(np.float64)
        return np.asarray(self.quantiles, np.float64), weights

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        out: dict[str, Any] = {
            "name": self.name,
            "type": "number",
            "rows": self.rows,
            "missing": self.missing,
            "infinite": self.infinite,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "std": self.std,
            "bins": {"edges": list(self.edges), "counts": list(self.bin_counts)},
        }
        if not self.quantiles:
            out["values"] = {"values": list(self.values), "counts": list(self.counts)}
        else:
            out["quantiles"] = {
                "points": len(self.quantiles),
                "rank_error": self.rank_error,
                "float64": _b64(np.asarray(self.quantiles, "<f8")),
            }
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericReference:
        """From the JSON form."""
        exact = data.get("values") or {}
        quantiles = data.get("quantiles")
        return cls(
            name=str(data["name"]),
            rows=int(data["rows"]),
            missing=int(data["missing"]),
            min=data.get("min"),
            max=data.get("max"),
            mean=data.get("mean"),
            std=data.get("std"),
            edges=tuple(float(v) for v in data["bins"]["edges"]),
            bin_counts=tuple(int(v) for v in data["bins"]["counts"]),
            values=tuple(float(v) for v in exact.get("values") or ()),
            counts=tuple(int(v) for v in exact.get("counts") or ()),
            quantiles=()
            if quantiles is None
            else tuple(np.frombuffer(base64.b64decode(quantiles["float64"]), "<f8").tolist()),
            rank_error=0.0 if quantiles is None else float(quantiles["rank_error"]),
            infinite=int(data.get("infinite", 0)),
        )


@dataclass(frozen=True)
class CategoricalReference:
    """What training saw of a string: its missing values, its most frequent categories with
    their counts, and the rest summed (``other_rows`` rows of ``other_categories``
    categories). A redacted column keeps no categories (``redacted``)."""

    name: str
    rows: int
    missing: int
    categories: dict[str, int]
    other_rows: int = 0
    other_categories: int = 0
    redacted: bool = False

    type: Literal["string"] = "string"

    @property
    def present(self) -> int:
        """The rows with a value."""
        return self.rows - self.missing

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "name": self.name,
            "type": "string",
            "rows": self.rows,
            "missing": self.missing,
            "categories": dict(self.categories),
            "other": {"rows": self.other_rows, "categories": self.other_categories},
            "top": TOP_CATEGORIES,
            "redacted": self.redacted,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalReference:
        """From the JSON form."""
        other = data.get("other") or {}
        return cls(
            name=str(data["name"]),
            rows=int(data["rows"]),
            missing=int(data["missing"]),
            categories={str(k): int(v) for k, v in (data.get("categories") or {}).items()},
            other_rows=int(other.get("rows", 0)),
            other_categories=int(other.get("categories", 0)),
            redacted=bool(data.get("redacted", False)),
        )


FeatureReference = NumericReference | CategoricalReference


def _feature_from_dict(data: Mapping[str, Any]) -> FeatureReference:
    if data.get("type") == "number":
        return NumericReference.from_dict(data)
    return CategoricalReference.from_dict(data)


@dataclass(frozen=True)
class OutputReference:
    """What the package answered on the validation split (``split``; ``rows`` of them scored):
    a classifier's predicted class counts and per class its probabilities in bins
    (``scores``), a regressor's values (``values``); and a seeded sample of the validation
    rows' scores and true classes for a calibration (``validation_scores``, rows by classes;
    ``validation_labels``), drawn from ``validation_rows`` rows."""

    split: str
    rows: int
    kind: Literal["classification", "regression"]
    classes: tuple[str, ...] = ()
    predicted: dict[str, int] = field(default_factory=dict)
    scores: dict[str, NumericReference] = field(default_factory=dict)
    values: NumericReference | None = None
    validation_rows: int = 0
    validation_scores: np.ndarray | None = None
    validation_labels: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the validation sample as base64 (little-endian float32 scores,
        int16 class positions)."""
        out: dict[str, Any] = {"split": self.split, "rows": self.rows, "kind": self.kind}
        if self.kind == "regression":
            assert self.values is not None
            return out | {"values": self.values.to_dict()}
        out |= {
            "classes": list(self.classes),
            "predicted": dict(self.predicted),
            "scores": {k: v.to_dict() for k, v in self.scores.items()},
        }
        if self.validation_scores is not None and self.validation_labels is not None:
            positions = {c: i for i, c in enumerate(self.classes)}
            labels = np.array([positions[str(y)] for y in self.validation_labels], "<i2")
            out["validation"] = {
                "rows": self.validation_rows,
                "kept": len(labels),
                "scores": _b64(self.validation_scores.astype("<f4")),
                "labels": _b64(labels),
            }
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputReference:
        """From the JSON form."""
        kind = data["kind"]
        if kind == "regression":
            return cls(
                str(data["split"]),
                int(data["rows"]),
                "regression",
                values=NumericReference.from_dict(data["values"]),
            )
        classes = tuple(str(c) for c in data.get("classes") or ())
        validation = data.get("validation")
        scores = labels = None
        if validation:
            kept = int(validation["kept"])
            raw = np.frombuffer(base64.b64decode(validation["scores"]), "<f4")
            scores = raw.reshape(kept, len(classes)).astype(np.float64)
            positions = np.frombuffer(base64.b64decode(validation["labels"]), "<i2")
            labels = np.asarray(classes, dtype=object)[positions]
        return cls(
            str(data["split"]),
            int(data["rows"]),
            "classification",
            classes=classes,
            predicted={str(k): int(v) for k, v in (data.get("predicted") or {}).items()},
            scores={str(k): NumericReference.from_dict(v) for k, v in data["scores"].items()},
            validation_rows=int(validation["rows"]) if validation else 0,
            validation_scores=scores,
            validation_labels=labels,
        )


@dataclass(frozen=True)
class TrainingReference:
    """A model's training reference (``reference.json`` in its package): its inputs on the
    training rows of ``split`` (``inputs``, by name; ``images``: an image model's sizes,
    brightness and contrast) and its output on the validation split (``output``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> age = numeric_reference("age", pa.chunked_array([rng.normal(40, 9, 5000)]))
    >>> plan = categorical_reference("plan", pa.chunked_array([["a", "b", None, "a"]]))
    >>> reference = TrainingReference("customers@1/s1", 5000, {"age": age, "plan": plan})
    >>> back = TrainingReference.from_json(reference.to_json())
    >>> back.inputs["plan"].categories, len(back.inputs["age"].quantiles)
    ({'a': 2, 'b': 1}, 257)
    """

    split: str
    rows: int
    inputs: dict[str, FeatureReference]
    images: dict[str, NumericReference] = field(default_factory=dict)
    output: OutputReference | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        out: dict[str, Any] = {
            "format": FORMAT,
            "split": self.split,
            "rows": self.rows,
            "inputs": [f.to_dict() for f in self.inputs.values()],
        }
        if self.images:
            out["images"] = [f.to_dict() for f in self.images.values()]
        if self.output is not None:
            out["output"] = self.output.to_dict()
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    def to_json(self) -> str:
        """``reference.json`` (compact: it can hold many features)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingReference:
        """From the JSON form.

        Raises
        ------
        PackageError
            A form this release cannot read (written by a later one, or damaged).
        """
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            got = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise PackageError(
                f"{REFERENCE_FILE} has format {got!r}; this mlplan reads format {FORMAT}. "
                "Upgrade mlplan, or train the model again"
            )
        try:
            inputs = [_feature_from_dict(f) for f in data.get("inputs") or ()]
            images = [NumericReference.from_dict(f) for f in data.get("images") or ()]
            output = data.get("output")
            return cls(
                split=str(data["split"]),
                rows=int(data["rows"]),
                inputs={f.name: f for f in inputs},
                images={f.name: f for f in images},
                output=None if output is None else OutputReference.from_dict(output),
                notes=tuple(str(n) for n in data.get("notes") or ()),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise PackageError(
                f"{REFERENCE_FILE} is malformed ({type(error).__name__}: {error}); "
                "train the model again"
            ) from None

    @classmethod
    def from_json(cls, text: str | bytes) -> TrainingReference:
        """From ``reference.json``.

        Raises
        ------
        PackageError
            Not JSON, or a form this release cannot read.
        """
        try:
            data = json.loads(text)
        except ValueError as error:
            raise PackageError(f"{REFERENCE_FILE} is not JSON ({error}); train again") from None
        return cls.from_dict(data)


# -- profiling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputReference:
    """The inputs' part of a reference, the same for every family trained on a split."""

    split: str
    rows: int
    inputs: dict[str, FeatureReference]
    images: dict[str, NumericReference]
    notes: tuple[str, ...] = ()


def input_reference(prepared: PreparedSplit) -> InputReference:
    """Profile the training rows of a prepared split's inputs as a server receives them: a
    table's feature columns, an image table's sizes, brightness and contrast. A window model's
    inputs are not profiled yet (a note says so)."""
    data, table = prepared.data, prepared.table
    rows = data.rows["train"]
    kind = data.spec["kind"]
    inputs: dict[str, FeatureReference] = {}
    images: dict[str, NumericReference] = {}
    notes: list[str] = []
    if kind == "tabular":
        features = FeatureSet.from_spec(data.spec).inputs  # as a server receives them
        profile = prepared.info.profile.get("columns", {})
        for name in features.numeric:
            inputs[name] = numeric_reference(name, table.column(name).take(rows))
        for name in features.categorical:
            redacted = bool(profile.get(name, {}).get("redacted"))
            column = table.column(name).take(rows)
            inputs[name] = categorical_reference(name, column, redacted=redacted)
    elif kind == "image":
        for name in IMAGE_COLUMNS:
            if name in table.column_names:
                images[name] = numeric_reference(name, table.column(name).take(rows))
    else:
        notes.append(f"{kind} inputs are not profiled: only the output is")
    return InputReference(prepared.split.ref, len(rows), inputs, images, tuple(notes))


def training_reference_of(
    prepared: PreparedSplit,
    graph: bytes,
    *,
    inputs: InputReference | None = None,
    seed: int = 0,
) -> TrainingReference:
    """The reference of a package (``graph``) trained on ``prepared``: its inputs (made
    already, or now) and its output scored on a seeded sample of at most
    :data:`OUTPUT_ROWS` validation rows (the test split's without any; none without either)."""
    data = prepared.data
    inputs = input_reference(prepared) if inputs is None else inputs
    notes = list(inputs.notes)
    split = next((s for s in ("valid", "test") if len(data.y[s])), None)
    output = None
    if split is None:
        notes.append("no validation or test rows: no output reference")
    else:
        total = len(data.y[split])
        cap = IMAGE_OUTPUT_ROWS if data.spec["kind"] == "image" else OUTPUT_ROWS
        chosen = np.arange(total)
        if total > cap:
            chosen = np.sort(np.random.default_rng(seed).choice(total, cap, replace=False))
            notes.append(f"output scored on {cap:,} of the {total:,} {split} rows")
        predicted, proba = run_graph(graph, data.feeds(split, chosen), data.kind)
        output = output_reference(
            split, data.kind, data.classes, predicted, proba, data.y[split][chosen], seed=seed
        )
    return TrainingReference(
        inputs.split, inputs.rows, inputs.inputs, inputs.images, output, tuple(notes)
    )


def numeric_reference(name: str, column: pa.ChunkedArray | pa.Array) -> NumericReference:
    """The reference of a numeric column (its rows are the training rows): nulls and NaN are
    missing values."""
    values = np.asarray(
        pc.fill_null(pc.cast(column, pa.float64()), math.nan).to_numpy(zero_copy_only=False),
        dtype=np.float64,
    )
    return numeric_reference_of(name, values)


def numeric_reference_of(name: str, values: np.ndarray) -> NumericReference:
    """The reference of numbers as float64, NaN for a missing one (plus or minus infinity
    counted apart: no JSON request can send one)."""
    values = np.asarray(values, np.float64)
    present = values[np.isfinite(values)]
    rows, n = len(values), len(present)
    missing = int(np.count_nonzero(np.isnan(values)))
    if n == 0:
        return NumericReference(
            name, rows, missing, None, None, None, None, (), (0,), infinite=rows - missing
        )
    # One sort gives the distinct values, the deciles and the bins' counts.
    ordered = np.sort(present)
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    distinct, counts = ordered[starts], np.diff(np.r_[starts, n])
    at = np.linspace(0, 1, BINS + 1)[1:-1] * (n - 1)  # np.quantile's linear positions
    low = np.floor(at).astype(np.int64)
    high = np.minimum(low + 1, n - 1)
    edges = np.unique(ordered[low] + (ordered[high] - ordered[low]) * (at - low))
    below = np.searchsorted(ordered, edges, side="left")  # a value on an edge goes above it
    common: dict[str, Any] = {
        "name": name,
        "rows": rows,
        "missing": missing,
        "infinite": rows - missing - n,
        "min": float(distinct[0]),
        "max": float(distinct[-1]),
        "mean": float(present.mean()),
        "std": float(present.std(ddof=1)) if n > 1 else None,
        "edges": tuple(float(e) for e in edges),
        "bin_counts": tuple(int(c) for c in np.diff(np.r_[0, below, n])),
    }
    if len(distinct) <= EXACT_VALUES:
        return NumericReference(
            **common,
            values=tuple(float(v) for v in distinct),
            counts=tuple(int(c) for c in counts),
        )
    ranks = _ranks(n, QUANTILE_POINTS)
    error = float(np.diff(np.r_[-1, ranks]).max()) / n
    return NumericReference(**common, quantiles=tuple(ordered[ranks].tolist()), rank_error=error)


def _ranks(n: int, points: int) -> np.ndarray:
    """The positions of ``points`` evenly spaced ranks among ``n`` sorted values (distinct
    for ``n >= points``, as every number that keeps quantiles has)."""
    return np.unique(np.round(np.linspace(0, n - 1, points)).astype(np.int64))


def categorical_reference(
    name: str, column: pa.ChunkedArray | pa.Array, *, redacted: bool = False
) -> CategoricalReference:
    """The reference of a string column (its rows are the training rows): the
    :data:`TOP_CATEGORIES` most frequent categories (ties by name) and the rest summed; a
    ``redacted`` column keeps its counts of rows and categories only."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    strings = pc.cast(column, pa.string())
    rows, missing = len(strings), strings.null_count
    counted = pc.value_counts(strings.drop_null())
    names = [str(v) for v in counted.field("values").to_pylist()]
    counts = [int(c) for c in counted.field("counts").to_pylist()]
    if redacted:
        return CategoricalReference(
            name, rows, missing, {}, rows - missing, len(names), redacted=True
        )
    ranked = sorted(zip(names, counts, strict=True), key=lambda item: (-item[1], item[0]))
    kept = dict(ranked[:TOP_CATEGORIES])
    rest = ranked[TOP_CATEGORIES:]
    return CategoricalReference(
        name, rows, missing, kept, sum(c for _, c in rest), len(rest), redacted=False
    )


def output_reference(
    split: str,
    kind: Literal["regression", "classification"],
    classes: list[str],
    predicted: np.ndarray,
    proba: np.ndarray | None,
    labels: np.ndarray,
    *,
    seed: int = 0,
) -> OutputReference:
    """The output reference from the package's answers on the validation rows scored
    (``predicted``: labels or values; ``proba``: a classifier's probabilities, one column per
    class) and their true ``labels``; a seeded sample of at most :data:`CALIBRATION_ROWS`
    keeps its scores and labels."""
    rows = len(predicted)
    if kind == "regression":
        values = numeric_reference_of("prediction", np.asarray(predicted, np.float64))
        return OutputReference(split, rows, "regression", values=values)
    assert proba is not None
    names = [str(c) for c in classes]
    shown = np.asarray(predicted).astype(str)
    counted = {c: int(np.count_nonzero(shown == c)) for c in names}
    scores = {c: numeric_reference_of(c, proba[:, i]) for i, c in enumerate(names)}
    keep = np.arange(rows)
    if rows > CALIBRATION_ROWS:
        keep = np.sort(np.random.default_rng(seed).choice(rows, CALIBRATION_ROWS, replace=False))
    truth = np.asarray(labels).astype(str)[keep]
    known = np.isin(truth, names)  # a class the model never learned cannot be calibrated
    return OutputReference(
        split,
        rows,
        "classification",
        classes=tuple(names),
        predicted=counted,
        scores=scores,
        validation_rows=rows,
        validation_scores=np.asarray(proba[keep][known], np.float32),
        validation_labels=truth[known].astype(object),
    )


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode()


def training_reference(ws: Workspace, model: ModelInfo | str) -> TrainingReference:
    """The training reference kept in a model's package (``model``: a registered model, or
    its name, ``NAME`` or ``NAME@VERSION``).

    Raises
    ------
    ModelNotFoundError
        No model of that name or version.
    PackageError
        A package trained before mlplan kept a reference (train the model again), or a
        reference file that is missing from the store, corrupt, or in an unknown form.
    """
    info = get_model(ws, model) if isinstance(model, str) else model
    sha256 = info.package.get(REFERENCE_FILE)
    if sha256 is None:
        raise PackageError(
            f"model {info.ref} has no training reference ({REFERENCE_FILE}): it was trained "
            "before mlplan kept one with each package, so its drift cannot be measured. "
            f"Train it again (mlplan train --family {info.family}) and deploy the new model"
        )
    path = ws.store.artifacts.path(sha256)
    try:
        blob = path.read_bytes()
    except OSError as error:
        raise PackageError(
            f"{REFERENCE_FILE} of {info.ref} cannot be read from the artifact store "
            f"({error.strerror}); restore it or train again"
        ) from None
    if hashlib.sha256(blob).hexdigest() != sha256:
        raise PackageError(
            f"{REFERENCE_FILE} of {info.ref} is corrupt: its bytes do not hash to what the "
            "store recorded; restore the artifact or train again"
        )
    return TrainingReference.from_json(blob)
