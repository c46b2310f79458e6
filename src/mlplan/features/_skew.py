"""The skew check: every derived feature computed both ways — DuckDB SQL, as training and
batch work compute it, and the ONNX nodes in ONNX Runtime, as a package computes it — on the
same rows (the training split's, and logged requests), failing on any difference beyond
float32 rounding."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from mlplan._optional import require
from mlplan.data import get_split, load_split
from mlplan.errors import ParameterError, PlanError
from mlplan.features._definitions import ColumnType, FeatureDefinitions
from mlplan.features._fitted import FittedFeatures, fit_features, onnx_inputs
from mlplan.features._merge import JOINED_KEY
from mlplan.workspace import Workspace

__all__ = [
    "SKEW_ATOL",
    "SKEW_RTOL",
    "SkewMismatch",
    "SkewReport",
    "check_features",
    "check_skew",
    "logged_rows",
]

SKEW_RTOL = 1e-6
SKEW_ATOL = 1e-6
"""Two float32 values agree when ``|a - b| <= SKEW_ATOL + SKEW_RTOL * |b|`` (numpy's
``isclose``), both missing (NaN) or the same infinity. Both ways compute in double and round
once, so they differ by a float32 spacing at most (about 1.2e-7 relative) where a library
function (``ln``, ``exp``, ``pow``) rounds its last double bit apart; anything larger is skew."""

_SHOWN = 20


@dataclass(frozen=True)
class SkewMismatch:
    """One feature of one row computed apart: its SQL and its graph value."""

    feature: str
    row: int
    sql: float
    onnx: float
    source: str

    def __str__(self) -> str:
        return (
            f"feature {self.feature!r}, {self.source} row {self.row}: SQL {self.sql!r}, "
            f"ONNX {self.onnx!r}"
        )


@dataclass(frozen=True)
class SkewReport:
    """What the skew check compared (rows per source, the features) and where the two ways
    differed (the first few ``mismatches``; ``differing`` counts them all per feature)."""

    features: list[str]
    rows: dict[str, int]
    mismatches: list[SkewMismatch] = field(default_factory=list)
    differing: dict[str, int] = field(default_factory=dict)
    rtol: float = SKEW_RTOL
    atol: float = SKEW_ATOL

    @property
    def passed(self) -> bool:
        """No feature differs on any row."""
        return not self.differing

    def merged(self, other: SkewReport) -> SkewReport:
        """This report and ``other`` (the same features, other rows) as one."""
        differing = dict(self.differing)
        for name, n in other.differing.items():
            differing[name] = differing.get(name, 0) + n
        return SkewReport(
            self.features,
            self.rows | other.rows,
            (self.mismatches + other.mismatches)[:_SHOWN],
            differing,
            self.rtol,
            self.atol,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``--json``)."""
        return {
            "passed": self.passed,
            "features": self.features,
            "rows": self.rows,
            "rtol": self.rtol,
            "atol": self.atol,
            "differing": self.differing,
            "mismatches": [
                {
                    "feature": m.feature,
                    "source": m.source,
                    "row": m.row,
                    "sql": _json_float(m.sql),
                    "onnx": _json_float(m.onnx),
                }
                for m in self.mismatches
            ],
        }


def _json_float(value: float) -> float | str:
    return value if np.isfinite(value) else str(value)


def check_skew(
    fitted: FittedFeatures,
    table: pa.Table,
    *,
    graph: bytes | None = None,
    source: str = "rows",
    row_numbers: np.ndarray | None = None,
) -> SkewReport:
    """Compute every feature of ``fitted`` on every row of ``table`` with DuckDB and with its
    ONNX graph (``graph``: another graph to hold against the SQL, such as a package's, whose
    derived features are read where it computes them) and compare them.

    ``row_numbers``: what each row is called in a mismatch (default: its position).

    Examples
    --------
    >>> import pyarrow as pa
    >>> from mlplan.features import FeatureDefinitions, fit_features
    >>> rows = pa.table({"x": [1.0, -1.0, None], "c": ["a", None, "zz"]})
    >>> fitted = fit_features(FeatureDefinitions.from_mapping(
    ...     {"lx": "log1p(x)", "v": "vocabulary(c)", "z": "zscore(x)"}), rows)
    >>> check_skew(fitted, rows).passed
    True
    """
    ort = require("onnxruntime", extra="models", purpose="checking features for skew")
    by_sql = fitted.transform(table)
    graph = fitted.graph() if graph is None else _exposed(graph, fitted.names, fitted.types)
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    wanted = [o.name for o in session.get_outputs() if o.name in fitted.names]
    feeds = onnx_inputs(table, fitted.types)
    known = {i.name for i in session.get_inputs()}
    outputs = session.run(wanted, {k: v for k, v in feeds.items() if k in known})
    by_graph = dict(zip(wanted, outputs, strict=True))
    numbers = np.arange(table.num_rows) if row_numbers is None else np.asarray(row_numbers)
    mismatches: list[SkewMismatch] = []
    differing: dict[str, int] = {}
    for name in wanted:
        a = by_sql[name]
        b = np.asarray(by_graph[name], dtype=np.float32).reshape(-1)
        with np.errstate(invalid="ignore"):
            close = np.isclose(a, b, rtol=SKEW_RTOL, atol=SKEW_ATOL, equal_nan=True)
        bad = np.flatnonzero(~close)
        if len(bad):
            differing[name] = len(bad)
            mismatches += [
                SkewMismatch(name, int(numbers[i]), float(a[i]), float(b[i]), source)
                for i in bad[: max(0, _SHOWN - len(mismatches))]
            ]
    return SkewReport(wanted, {source: table.num_rows}, mismatches, differing)


def _exposed(graph: bytes, names: Sequence[str], columns: Mapping[str, ColumnType]) -> bytes:
    """The part of ``graph`` (a package's, say) that computes the derived features from the
    columns they read, with those features as its outputs: the package's other inputs are
    not needed to read them. A package leaves out the features its model does not read
    (screened out before training)."""
    onnx = require("onnx", extra="models", purpose="checking features for skew")
    model = onnx.load_from_string(graph)
    joined = {p.key: p.value for p in model.metadata_props}.get(JOINED_KEY)
    if joined is not None:  # the features side by side in one tensor: split it again
        tensor, order = json.loads(joined)
        sizes = f"{tensor}_sizes"
        model.graph.initializer.append(
            onnx.numpy_helper.from_array(np.ones(len(order), dtype=np.int64), sizes)
        )
        model.graph.node.append(onnx.helper.make_node("Split", [tensor, sizes], order, axis=1))
    made = {o for node in model.graph.node for o in node.output}
    outputs = [name for name in names if name in made]
    inputs = [i.name for i in model.graph.input if i.name in columns]
    typed = {v.name for v in [*model.graph.value_info, *model.graph.output]}
    for name in outputs:  # each derived feature: float32 [n, 1], as the features' graph made it
        if name not in typed:
            model.graph.value_info.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [None, 1])
            )
    part = onnx.utils.Extractor(model).extract_model(inputs, outputs)
    return bytes(part.SerializeToString())


def logged_rows(inputs: Sequence[str | None], types: Mapping[str, ColumnType]) -> pa.Table:
    """The columns ``types`` names of logged requests' inputs (each record's ``inputs``: a
    JSON list of ``{column: value}``): numbers as float64, categories as strings; a value a
    record lacks is missing."""
    records: list[Mapping[str, Any]] = []
    for text in inputs:
        if not text:
            continue
        value = json.loads(text)
        for record in value if isinstance(value, list) else [value]:
            if isinstance(record, Mapping):
                records.append(record)
    columns: dict[str, pa.Array] = {}
    for name, kind in types.items():
        values = [r.get(name) for r in records]
        if kind == "string":
            columns[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
        else:
            columns[name] = pa.array([_number(v) for v in values], pa.float64())
    return pa.table(columns)


def _number(value: Any) -> float | None:
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def check_features(
    ws: Workspace,
    *,
    split: str | None = None,
    rows: int | None = 10_000,
    logged: Sequence[str | None] = (),
    seed: int | None = None,
    fitted: FittedFeatures | None = None,
    graph: bytes | None = None,
) -> SkewReport:
    """The plan's ``features:`` fitted on the training rows of ``split`` (default: the
    newest), then computed both ways on a seeded sample of ``rows`` of those rows (None: all)
    and on the logged requests' ``inputs``.

    A model's features instead: its ``fitted`` ones (``features.json``) and its package's
    ``graph``, on its own split's training rows (``split``).

    Raises
    ------
    PlanError
        No ``features:`` in the plan.
    ParameterError
        ``rows`` below 1.
    DataError
        A feature reads a column the data does not hold, or holds of the other kind.
    """
    definitions = (
        FeatureDefinitions.from_plan(ws.plan, source=ws.plan_path.name)
        if fitted is None
        else fitted.definitions
    )
    if not definitions:
        raise PlanError(
            f"{ws.plan_path.name} has no 'features:' section: there is nothing to check. "
            "Declare derived features there, e.g. features: {log_income: log1p(income)}"
        )
    if rows is not None and rows < 1:
        raise ParameterError("rows", f"{{param}} must be 1 or more; got {rows}")
    chosen = get_split(ws, split)
    loaded = load_split(ws, chosen)
    train = np.flatnonzero(loaded.codes == 0)
    if fitted is None:
        fitted = fit_features(definitions, loaded.table, rows=train, where=chosen.ref)
    rng = np.random.default_rng(ws.plan.modeling.seed if seed is None else seed)
    sample = train
    if rows is not None and len(train) > rows:
        sample = np.sort(rng.choice(train, rows, replace=False))
    table = loaded.table.select(list(fitted.types)).take(pa.array(sample, pa.int64()))
    report = check_skew(fitted, table, graph=graph, source="training", row_numbers=sample)
    if logged:
        requests = logged_rows(logged, fitted.types)
        report = report.merged(check_skew(fitted, requests, graph=graph, source="logged"))
    return report
