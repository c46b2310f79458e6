"""Derived features as DuckDB SQL: one select expression per feature, for batch work
(training, batch scoring, the skew check).

Every value is a DOUBLE computed from the float32 value of each input (what a package's graph
reads), so that SQL and the graph (``_onnx.py``) do the same IEEE 754 operations on the same
numbers. Missing is SQL NULL here and NaN in the graph; where DuckDB treats the two apart
(it orders NaN above every number, and NULL and NaN differ in ``IS NULL``), a NaN is made
NULL first (``nullif``), so that both read a NaN as missing.
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
    Expression,
    Name,
    Number,
    Unary,
)
from mlplan.features._definitions import ColumnType

__all__ = ["float32_value", "quote_identifier", "quote_string", "sql_expression"]

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


def _missing(x: str) -> str:
    """``x`` (a DOUBLE) with a NaN as NULL."""
    return f"nullif({x}, CAST('nan' AS DOUBLE))"


def _string(column: str) -> str:
    return f"CAST({quote_identifier(column)} AS VARCHAR)"


def _string_missing(column: str) -> str:
    s = _string(column)
    return f"({s} IS NULL OR {s} = '')"


def sql_expression(
    node: Expression,
    types: Mapping[str, ColumnType],
    constants: Mapping[str, Any],
) -> str:
    """One derived feature as a DuckDB DOUBLE expression over the input columns.

    ``types``: each input column's type; ``constants``: each analyzer's value, by its key.

    Examples
    --------
    >>> from mlplan.core import parse_expression
    >>> sql_expression(parse_expression("-x"), {"x": "number"}, {})
    '(-CAST(CAST(CAST("x" AS DOUBLE) AS FLOAT) AS DOUBLE))'
    """

    def sql(part: Expression) -> str:
        if isinstance(part, Number):
            return _literal(part.value)
        if isinstance(part, Name):
            # The number the graph reads: a float32, from the column read as float64 first,
            # as training reads it (no double rounding apart from the graph's own).
            return f"CAST(CAST(CAST({quote_identifier(part.id)} AS DOUBLE) AS FLOAT) AS DOUBLE)"
        if isinstance(part, Unary):
            x = sql(part.operand)
            if part.op == "-":
                return f"(-{x})"
            m = _missing(x)
            return f"(CASE WHEN {m} IS NULL THEN NULL WHEN {m} = 0 THEN 1.0 ELSE 0.0 END)"
        if isinstance(part, Binary):
            a, b = sql(part.left), sql(part.right)
            if part.op in ("+", "-", "*", "/"):
                return f"({a} {part.op} {b})"
            if part.op == "**":
                return f"pow({a}, {b})"
            if part.op == "%":  # Python's: the sign of the divisor
                return f"({a} - {b} * floor({a} / {b}))"
            ma, mb = _missing(a), _missing(b)
            if part.op in _COMPARISONS:
                test = f"{ma} {_COMPARISONS[part.op]} {mb}"
            else:
                test = f"({ma} <> 0) {part.op.upper()} ({mb} <> 0)"
            return (
                f"(CASE WHEN {ma} IS NULL OR {mb} IS NULL THEN NULL "
                f"WHEN {test} THEN 1.0 ELSE 0.0 END)"
            )
        if isinstance(part, Call):
            return call(part)
        if isinstance(part, Analyzer):
            value = constants[part.key]
            if part.func == "vocabulary":
                table = [(str(v), float(i)) for i, v in enumerate(value)]
                assert isinstance(part.arg, Name)
                return _lookup(part.arg.id, table, -1.0)
            return _literal(float(value))
        if isinstance(part, Bucketize):
            edges = constants[part.edges.key] if isinstance(part.edges, Analyzer) else part.edges
            x = _missing(sql(part.x))
            counts = (
                " + ".join(f"CAST({x} >= {_literal(float(e))} AS DOUBLE)" for e in edges) or "0.0"
            )
            return f"(CASE WHEN {x} IS NULL THEN NULL ELSE {counts} END)"
        table = [(k, float32_value(v)) for k, v in part.table]
        return _lookup(part.column, table, float32_value(part.default))

    def call(part: Call) -> str:
        f, args = part.func, part.args
        if f == "is_null":
            arg = args[0]
            if isinstance(arg, Name) and types.get(arg.id) == "string":
                test = _string_missing(arg.id)
            else:
                test = f"{_missing(sql(arg))} IS NULL"
            return f"(CASE WHEN {test} THEN 1.0 ELSE 0.0 END)"
        x = sql(args[0])
        if f == "log1p":
            return f"ln(1.0 + {x})"
        if f in ("log", "exp", "sqrt", "abs"):
            return f"{'ln' if f == 'log' else f}({x})"
        if f == "fillna":
            return f"coalesce({_missing(x)}, {sql(args[1])})"
        if f == "clip":
            m, lo, hi = _missing(x), sql(args[1]), sql(args[2])
            return (
                f"(CASE WHEN {m} IS NULL THEN NULL WHEN {m} < {lo} THEN {lo} "
                f"WHEN {m} > {hi} THEN {hi} ELSE {x} END)"
            )
        if f == "where":
            m = _missing(x)
            return (
                f"(CASE WHEN {m} IS NULL THEN NULL WHEN {m} <> 0 THEN {sql(args[1])} "
                f"ELSE {sql(args[2])} END)"
            )
        assert f == "zscore"
        mean = float(constants[Analyzer("mean", args[0]).key])
        std = float(constants[Analyzer("std", args[0]).key])
        centred = f"({x} - {_literal(mean)})"
        # As TensorFlow Transform's scale_to_z_score: a constant column is only centred.
        return f"({centred} / {_literal(std)})" if std > 0 else centred

    return sql(node)


def _lookup(column: str, table: Sequence[tuple[str, float]], default: float) -> str:
    """A category column looked up in ``table``: missing (NULL or "") is NULL, a category
    not in it ``default``."""
    s = _string(column)
    cases = " ".join(f"WHEN {quote_string(k)} THEN {_literal(v)}" for k, v in table)
    return (
        f"(CASE WHEN {_string_missing(column)} THEN NULL "
        f"ELSE (CASE {s} {cases} ELSE {_literal(default)} END) END)"
    )
