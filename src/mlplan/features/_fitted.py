"""Derived features fitted on the training rows: the analyzers' values computed once with
DuckDB, kept with the definitions (``features.json`` beside a package's other files), and
the two ways to compute the features from them — DuckDB SQL and the ONNX graph."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.core import Analyzer, Name
from mlplan.data import sandboxed_duckdb
from mlplan.errors import DataError
from mlplan.features._definitions import (
    ColumnType,
    DerivedFeature,
    FeatureDefinitions,
    analyzers_of,
)
from mlplan.features._onnx import features_graph
from mlplan.features._sql import quote_identifier, sql_query
from mlplan.plan import FeatureEntry

__all__ = ["FEATURES_FILE", "FittedFeatures", "fit_features", "onnx_inputs"]

FEATURES_FILE = "features.json"
"""The fitted features in a model package: definitions, input types, analyzer values."""

_TABLE = "rows"


def _connection(table: pa.Table) -> Any:
    con = sandboxed_duckdb()
    con.register(_TABLE, table)
    return con


def fit_features(
    definitions: FeatureDefinitions,
    table: pa.Table,
    *,
    rows: np.ndarray | None = None,
    where: str = "the data",
) -> FittedFeatures:
    """Compute every analyzer of ``definitions`` on ``rows`` of ``table`` (the training
    split's; None: every row) with DuckDB, inner analyzers first.

    ``mean``, ``std`` (the population's, as TensorFlow Transform's), ``min``, ``max`` and
    ``quantiles`` (``quantile_cont``, the distinct edges) read the finite values only
    (``log1p(-1)`` is ``-inf``: it would make every statistic infinite); ``vocabulary``
    lists the categories by frequency, then value, missing ones ("" included) left out.

    Raises
    ------
    DataError
        A column not in ``table``, or of the wrong kind; an analyzer with no value on the
        rows (every value missing).
    """
    types = definitions.column_types(table.schema, where=where)
    if rows is not None:
        table = table.take(pa.array(np.asarray(rows, dtype=np.int64)))
    table = table.select(definitions.columns)
    constants: dict[str, Any] = {}
    con = _connection(table)
    try:
        for analyzer in definitions.analyzers():
            constants[analyzer.key] = _analyze(con, analyzer, types, constants, definitions, where)
    finally:
        con.close()
    return FittedFeatures(definitions, types, constants)


def _analyze(
    con: Any,
    analyzer: Analyzer,
    types: Mapping[str, ColumnType],
    constants: Mapping[str, Any],
    definitions: FeatureDefinitions,
    where: str,
) -> Any:
    if analyzer.func == "vocabulary":
        assert isinstance(analyzer.arg, Name)
        s = f"CAST({quote_identifier(analyzer.arg.id)} AS VARCHAR)"
        limit = "" if analyzer.n is None else f" LIMIT {int(analyzer.n)}"
        found = con.execute(
            f"SELECT {s} AS v, count(*) AS n FROM {_TABLE} WHERE {s} IS NOT NULL AND {s} <> '' "
            f"GROUP BY v ORDER BY n DESC, v ASC{limit}"
        ).fetchall()
        return [str(v) for v, _ in found]
    rows = f"({sql_query([('v', analyzer.arg)], types, constants, source=_TABLE)})"
    x = "(CASE WHEN isfinite(v) THEN v END)"
    if analyzer.func == "quantiles":
        n = int(analyzer.n or 2)
        points = ", ".join(repr(i / n) for i in range(1, n))
        (value,) = con.execute(f"SELECT quantile_cont({x}, [{points}]) FROM {rows}").fetchone()
        value = None if value is None else sorted({float(v) for v in value})
    else:
        function = {"mean": "avg", "std": "stddev_pop", "min": "min", "max": "max"}
        (value,) = con.execute(
            f"SELECT CAST({function[analyzer.func]}({x}) AS DOUBLE) FROM {rows}"
        ).fetchone()
    if value is None:
        users = [f.name for f in definitions.features if analyzer.key in _keys(f)]
        raise DataError(
            f"{definitions.source}: {analyzer.key} (feature {', '.join(map(repr, users))}) has "
            f"no value on the training rows of {where}: every value is missing"
        )
    return value


def _keys(feature: DerivedFeature) -> set[str]:
    return {a.key for a in analyzers_of(feature.node)}


@dataclass(frozen=True)
class FittedFeatures:
    """Derived features with their analyzers' values: what a package keeps, and what both
    compilers read.

    Examples
    --------
    >>> import pyarrow as pa
    >>> defs = FeatureDefinitions.from_mapping({"z": "zscore(x)", "big": "x > mean(x)"})
    >>> fitted = fit_features(defs, pa.table({"x": [1.0, 2.0, 3.0, None]}))
    >>> fitted.constants["mean(x)"]
    2.0
    >>> fitted.transform(pa.table({"x": [3.0, None]}))["big"].tolist()
    [1.0, nan]
    """

    definitions: FeatureDefinitions
    types: dict[str, ColumnType]
    constants: dict[str, Any]

    @property
    def names(self) -> list[str]:
        """The derived features, in order."""
        return self.definitions.names

    def sql(self, source: str = _TABLE) -> str:
        """The DuckDB query computing every feature from the table ``source``: one DOUBLE
        column each, named after it (which :meth:`transform` rounds to float32)."""
        items = [(f.name, f.node) for f in self.definitions.features]
        return sql_query(items, self.types, self.constants, source=source)

    def transform(self, table: pa.Table) -> dict[str, np.ndarray]:
        """The features of every row of ``table`` computed by DuckDB: float32, NaN where
        missing.

        Raises
        ------
        DataError
            A column the features read is not in ``table``.
        """
        missing = [c for c in self.types if c not in table.column_names]
        if missing:
            raise DataError(
                f"the features read {', '.join(map(repr, missing))}, which the rows lack"
            )
        con = _connection(table.select(list(self.types)))
        try:
            result = con.sql(self.sql()).to_arrow_table()
        finally:
            con.close()
        out: dict[str, np.ndarray] = {}
        with np.errstate(over="ignore"):  # beyond float32: inf, as the graph's Cast
            for name in self.names:
                # Each chunk rounded straight into the column (a missing value reads as NaN):
                # no copy of the whole column in double first.
                column = np.empty(result.num_rows, dtype=np.float32)
                start = 0
                for chunk in result.column(name).chunks:
                    end = start + len(chunk)
                    column[start:end] = chunk.to_numpy(zero_copy_only=False)
                    start = end
                out[name] = column
        return out

    def graph(self) -> bytes:
        """The ONNX model computing the features from the raw columns (:mod:`._onnx`)."""
        return features_graph(self.definitions.features, self.types, self.constants)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``features.json``)."""
        return {
            "version": 1,
            "features": [
                {"name": f.name, "expr": f.expr}
                | ({"description": f.description} if f.description else {})
                for f in self.definitions.features
            ],
            "inputs": dict(self.types),
            "constants": self.constants,
        }

    def to_json(self) -> str:
        """``features.json``."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = FEATURES_FILE) -> FittedFeatures:
        """From the JSON form."""
        entries = {
            f["name"]: FeatureEntry(expr=f["expr"], description=f.get("description"))
            for f in data["features"]
        }
        definitions = FeatureDefinitions.from_mapping(entries, source=source)
        return cls(definitions, dict(data["inputs"]), dict(data["constants"]))

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = FEATURES_FILE) -> FittedFeatures:
        """From ``features.json``."""
        return cls.from_dict(json.loads(text), source=source)


def onnx_inputs(table: pa.Table, types: Mapping[str, ColumnType]) -> dict[str, np.ndarray]:
    """The feeds of the features' graph for every row of ``table``, as a server sends them:
    numbers as float32 (read as float64 first, as training reads them; missing: NaN),
    categories as strings ("" when missing)."""
    feeds: dict[str, np.ndarray] = {}
    for name, kind in types.items():
        column = table.column(name)
        if kind == "string":
            if pa.types.is_dictionary(column.type):
                column = pc.cast(column, column.type.value_type)
            values = pc.fill_null(pc.cast(column, pa.string()), "").to_numpy(zero_copy_only=False)
            feeds[name] = np.asarray(values, dtype=object).reshape(-1, 1)
        else:
            values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
            with np.errstate(over="ignore"):
                feeds[name] = np.asarray(values, dtype=np.float64).astype(np.float32).reshape(-1, 1)
    return feeds
