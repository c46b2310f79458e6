"""Derived features as DuckDB SQL, for batch work (training, batch scoring, the skew check).

Every value is a DOUBLE computed from the float32 value of each input (what a package's graph
reads), so that SQL and the graph (``_onnx.py``) do the same IEEE 754 operations on the same
numbers. Missing is SQL NULL here and NaN in the graph; where DuckDB treats the two apart
(it orders NaN above every number, and NULL and NaN differ in ``IS NULL``), a NaN is made
NULL first (``nullif``), so that both read a NaN as missing.

Each node of the expressions becomes one column of a layer of nested selects (its inputs'
columns below it), made once however often it is used: the SQL grows with the expressions,
never by repeating one inside another, and DuckDB computes each value once per row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlplan.core import (
    Analyzer,
    Binary,
    Bucketize,
    Call,
    CategoryMap,
    Expression,
    Name,
    Number,
    Unary,
    render_expression,
)
from mlplan.features._definitions import ColumnType

__all__ = ["float32_value", "quote_identifier", "quote_string", "sql_query"]

_COMPARISONS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "=", "!=": "<>"}


def quote_identifier(name: str) -> str:
    """A column name as DuckDB reads it, whatever it holds."""
    return '"' + name.replace('"', '""') + '"'


def quote_string(value: str) -> str:
    """A string literal."""
    return "'" + value.replace("'", "''") + "'"


def float32_value(value: float | None) -> float:
    """``value`` as the float32 an ONNX LabelEncoder holds it (None: NaN)."""
    return float("nan") if value is None else float(np.float32(value))


def _literal(value: float) -> str:
    if value != value:
        return "CAST(NULL AS DOUBLE)"
    if value in (float("inf"), float("-inf")):
        return f"CAST('{'-' if value < 0 else ''}inf' AS DOUBLE)"
    return f"CAST({value!r} AS DOUBLE)"


_ONE, _ZERO = _literal(1.0), _literal(0.0)


class _Layers:
    """Columns in layers: a column of layer ``i`` reads only columns below it."""

    def __init__(self, types: Mapping[str, ColumnType], constants: Mapping[str, Any]) -> None:
        self.types = types
        self.constants = constants
        self.layers: list[list[str]] = []
        self.memo: dict[str, tuple[str, int]] = {}
        self.count = 0

    def bind(self, text: str, level: int) -> tuple[str, int]:
        """``text`` (reading columns of layers below ``level``) as a column of layer
        ``level``; it is read from layer ``level + 1`` on."""
        key = f"text:{text}"
        if key not in self.memo:
            self.count += 1
            alias = f"_f{self.count}"
            while len(self.layers) <= level:
                self.layers.append([])
            self.layers[level].append(f"{text} AS {alias}")
            self.memo[key] = (alias, level + 1)
        return self.memo[key]

    def value(self, node: Expression) -> tuple[str, int]:
        """A node as a column (a number: a literal, no column)."""
        if isinstance(node, Number):
            return _literal(node.value), 0
        key = render_expression(node)
        if key not in self.memo:
            self.memo[key] = self.build(node)
        return self.memo[key]

    def missing(self, node: Expression) -> tuple[str, int]:
        """A node as a column with a NaN made NULL."""
        x, level = self.value(node)
        if isinstance(node, Number):
            return x, level
        return self.bind(f"nullif({x}, CAST('nan' AS DOUBLE))", level)

    def string(self, column: str) -> tuple[str, int]:
        """A category column as text, NULL where missing ("" too)."""
        return self.bind(f"nullif(CAST({quote_identifier(column)} AS VARCHAR), '')", 0)

    def build(self, part: Expression) -> tuple[str, int]:
        if isinstance(part, Name):
            # The number the graph reads: a float32, from the column read as float64 first,
            # as training reads it (no double rounding apart from the graph's own).
            column = quote_identifier(part.id)
            return self.bind(f"CAST(CAST(CAST({column} AS DOUBLE) AS FLOAT) AS DOUBLE)", 0)
        if isinstance(part, Unary):
            if part.op == "-":
                x, level = self.value(part.operand)
                return self.bind(f"(-{x})", level)
            m, level = self.missing(part.operand)
            return self.bind(f"CAST(({m} = 0) AS DOUBLE)", level)
        if isinstance(part, Binary):
            return self.binary(part)
        if isinstance(part, Call):
            return self.call(part)
        if isinstance(part, Analyzer):
            value = self.constants[part.key]
            if part.func == "vocabulary":
                assert isinstance(part.arg, Name)
                table = [(str(v), float(i)) for i, v in enumerate(value)]
                return self.lookup(part.arg.id, table, -1.0)
            return _literal(float(value)), 0
        if isinstance(part, Bucketize):
            edges = (
                self.constants[part.edges.key] if isinstance(part.edges, Analyzer) else part.edges
            )
            m, level = self.missing(part.x)
            # NULL >= e is NULL, and so is a sum holding one: a missing value stays missing.
            counts = " + ".join(f"CAST(({m} >= {_literal(float(e))}) AS DOUBLE)" for e in edges)
            return self.bind(f"({counts or _ZERO})", level)
        assert isinstance(part, CategoryMap)
        table = [(k, float32_value(v)) for k, v in part.table]
        return self.lookup(part.column, table, float32_value(part.default))

    def binary(self, part: Binary) -> tuple[str, int]:
        if part.op in ("+", "-", "*", "/", "**", "%"):
            (a, la), (b, lb) = self.value(part.left), self.value(part.right)
            level = max(la, lb)
            if part.op == "**":
                return self.bind(f"pow({a}, {b})", level)
            if part.op == "%":  # Python's: the sign of the divisor
                return self.bind(f"({a} - {b} * floor({a} / {b}))", level)
            return self.bind(f"({a} {part.op} {b})", level)
        (a, la), (b, lb) = self.missing(part.left), self.missing(part.right)
        level = max(la, lb)
        if part.op in _COMPARISONS:  # NULL compared is NULL: missing stays missing
            return self.bind(f"CAST(({a} {_COMPARISONS[part.op]} {b}) AS DOUBLE)", level)
        # Not SQL's AND / OR, where NULL AND false is false: missing if either is.
        ta, tb = f"CAST(({a} <> 0) AS INTEGER)", f"CAST(({b} <> 0) AS INTEGER)"
        joined = f"{ta} * {tb}" if part.op == "and" else f"({ta} + {tb} > 0)"
        return self.bind(f"CAST(({joined}) AS DOUBLE)", level)

    def call(self, part: Call) -> tuple[str, int]:
        f, args = part.func, part.args
        if f == "is_null":
            arg = args[0]
            if isinstance(arg, Name) and self.types.get(arg.id) == "string":
                s, level = self.string(arg.id)
            else:
                s, level = self.missing(arg)
            return self.bind(f"CAST(({s} IS NULL) AS DOUBLE)", level)
        x, level = self.value(args[0])
        if f == "log1p":
            return self.bind(f"ln({_ONE} + {x})", level)
        if f in ("log", "exp", "sqrt", "abs"):
            return self.bind(f"{'ln' if f == 'log' else f}({x})", level)
        if f == "fillna":
            m, lm = self.missing(args[0])
            v, lv = self.value(args[1])
            return self.bind(f"coalesce({m}, {v})", max(lm, lv))
        if f == "clip":
            m, lm = self.missing(args[0])
            (lo, llo), (hi, lhi) = self.value(args[1]), self.value(args[2])
            return self.bind(
                f"(CASE WHEN {m} < {lo} THEN {lo} WHEN {m} > {hi} THEN {hi} ELSE {m} END)",
                max(lm, llo, lhi),
            )
        if f == "where":
            m, lm = self.missing(args[0])
            (a, la), (b, lb) = self.value(args[1]), self.value(args[2])
            return self.bind(
                f"(CASE ({m} <> 0) WHEN true THEN {a} WHEN false THEN {b} END)",
                max(lm, la, lb),
            )
        assert f == "zscore"
        mean = float(self.constants[Analyzer("mean", args[0]).key])
        std = float(self.constants[Analyzer("std", args[0]).key])
        centred = f"({x} - {_literal(mean)})"
        # As TensorFlow Transform's scale_to_z_score: a constant column is only centred.
        return self.bind(f"({centred} / {_literal(std)})" if std > 0 else centred, level)

    def lookup(
        self, column: str, table: Sequence[tuple[str, float]], default: float
    ) -> tuple[str, int]:
        """A category column looked up in ``table``: missing (NULL or "") is NULL, a category
        not in it ``default``."""
        s, level = self.string(column)
        cases = " ".join(f"WHEN {quote_string(k)} THEN {_literal(v)}" for k, v in table)
        otherwise = _literal(default)
        text = f"(CASE {s} {cases} ELSE {otherwise} END)" if cases else otherwise
        return self.bind(f"(CASE WHEN {s} IS NULL THEN NULL ELSE {text} END)", level)


def sql_query(
    items: Sequence[tuple[str, Expression]],
    types: Mapping[str, ColumnType],
    constants: Mapping[str, Any],
    *,
    source: str,
) -> str:
    """One DuckDB query computing each ``(name, expression)`` as a DOUBLE column ``name``
    from the table ``source``. ``types``: each input column's type; ``constants``: each
    analyzer's value, by its key.

    Examples
    --------
    >>> from mlplan.core import parse_expression
    >>> import duckdb
    >>> query = sql_query([("y", parse_expression("-x + x"))], {"x": "number"}, {}, source="t")
    >>> t = duckdb.sql("SELECT 1.5 AS x")
    >>> duckdb.sql(query).fetchall()
    [(0.0,)]
    """
    layers = _Layers(types, constants)
    outputs = [(layers.value(node), name) for name, node in items]
    sql = source
    for layer in layers.layers:
        sql = f"(SELECT *, {', '.join(layer)} FROM {sql})" if layer else sql
    selected = ", ".join(f"{text} AS {quote_identifier(name)}" for (text, _), name in outputs)
    return f"SELECT {selected} FROM {sql}"
