"""Derived features as ONNX nodes: a graph from the raw input columns (numbers as float32
``[n, 1]``, categories as strings ``[n, 1]``, "" when missing) to one float32 ``[n, 1]`` output
per feature, to put in front of a model's graph so that a package takes the raw columns only.

Inside, every value is a double, as in the SQL (``_sql.py``): the same IEEE 754 operations on
the same float32 inputs, then one rounding to float32 at the end. Missing is NaN; each node
treats NaN as the SQL treats NULL (a comparison with a missing value is missing, ``fillna``
and ``is_null`` see it). Analyzer values are constants in the graph: scoring never computes
them again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlplan._optional import require
from mlplan.core import (
    Analyzer,
    Binary,
    Bucketize,
    Call,
    Expression,
    Name,
    Number,
    Unary,
    render_expression,
)
from mlplan.features._definitions import ColumnType, DerivedFeature
from mlplan.features._sql import float32_value

__all__ = ["FEATURE_OPSET", "features_graph"]

FEATURE_OPSET = {"": 17, "ai.onnx.ml": 3}
"""The opsets the packages' graphs use (``modeling``'s skl2onnx target), so the two merge."""

_ARITHMETIC = {"+": "Add", "-": "Sub", "*": "Mul", "/": "Div", "**": "Pow"}
_COMPARISONS = {
    "<": "Less",
    "<=": "LessOrEqual",
    ">": "Greater",
    ">=": "GreaterOrEqual",
    "==": "Equal",
}


class _Builder:
    def __init__(self, types: Mapping[str, ColumnType], constants: Mapping[str, Any]) -> None:
        self.onnx = require("onnx", extra="models", purpose="compiling features to ONNX")
        self.helper = self.onnx.helper
        self.types = types
        self.constants = constants
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.memo: dict[str, str] = {}
        self.fixed: set[str] = set()  # constants, which are never missing
        self.count = 0

    def name(self) -> str:
        self.count += 1
        return f"mlplan_feature_{self.count}"

    def node(self, op: str, inputs: Sequence[str], domain: str = "", **attrs: Any) -> str:
        # The same node on the same inputs is made once (IsNaN(age) for every test of age):
        # a graph scoring one row costs per node, not per value.
        key = f"node:{op}:{domain}:{','.join(inputs)}:{sorted(attrs.items())!r}"
        if key not in self.memo:
            out = self.name()
            self.nodes.append(
                self.helper.make_node(op, list(inputs), [out], domain=domain, **attrs)
            )
            self.memo[key] = out
        return self.memo[key]

    def const(self, value: float | Sequence[float], dtype: Any = np.float64) -> str:
        # A number is [1, 1], the rank of every value it meets: ONNX Runtime's same-rank
        # broadcast costs half what a scalar's does (0.28 against 0.59 us an Add, one row).
        array = np.asarray(value, dtype=dtype)
        if array.ndim == 0:
            array = array.reshape(1, 1)
        key = f"const:{array.tobytes().hex()}:{array.shape}"
        if key not in self.memo:
            name = self.name()
            self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
            self.memo[key] = name
            self.fixed.add(name)
        return self.memo[key]

    def double(self, x: str) -> str:
        return self.node("Cast", [x], to=self.onnx.TensorProto.DOUBLE)

    def mask(self, parts: Sequence[str]) -> str | None:
        """True where any of ``parts`` is NaN (None when none of them can be)."""
        varying = sorted({p for p in parts if p not in self.fixed})  # sorted: shared more
        if not varying:
            return None
        nan = self.node("IsNaN", [varying[0]])
        for part in varying[1:]:
            nan = self.node("Or", [nan, self.node("IsNaN", [part])])
        return nan

    def missing_or(self, parts: Sequence[str], value: str) -> str:
        """``value`` where no part is NaN, else NaN: ``value`` times 1 or NaN, the factor
        shared by every value of the same parts. Exact (x * 1 is x, -0 and inf too), and a
        Mul costs a quarter of a Where (1.0 us a node, one row)."""
        nan = self.mask(parts)
        if nan is None:
            return value
        one = self.node("Where", [nan, self.const(float("nan")), self.const(1.0)])
        return self.node("Mul", [value, one])

    def flag(self, test: str, parts: Sequence[str]) -> str:
        """A boolean as 1.0 or 0.0, NaN where a part is."""
        return self.missing_or(parts, self.double(test))

    def condition(self, part: Expression) -> tuple[str, tuple[str, ...]]:
        """``part`` as a boolean tensor, and the values whose NaN makes it missing. A
        comparison or a logical operator stays boolean (no double between them); any other
        value is true when non-zero (a NaN too: it is missing by its parts all the same)."""
        if isinstance(part, Binary) and (part.op in _COMPARISONS or part.op == "!="):
            a, b = self.expr(part.left), self.expr(part.right)
            if part.op == "!=":
                return self.node("Not", [self.node("Equal", [a, b])]), (a, b)
            return self.node(_COMPARISONS[part.op], [a, b]), (a, b)
        if isinstance(part, Binary) and part.op in ("and", "or"):
            left, left_parts = self.condition(part.left)
            right, right_parts = self.condition(part.right)
            op = "And" if part.op == "and" else "Or"
            return self.node(op, [left, right]), (*left_parts, *right_parts)
        if isinstance(part, Unary) and part.op == "not":
            inner, parts = self.condition(part.operand)
            return self.node("Not", [inner]), parts
        x = self.expr(part)
        return self.node("Cast", [x], to=self.onnx.TensorProto.BOOL), (x,)

    def lookup(self, column: str, table: Sequence[tuple[str, float]], default: float) -> str:
        keys = [k for k, _ in table] + [""]
        values = [float32_value(v) for _, v in table] + [float("nan")]
        found = self.node(
            "LabelEncoder",
            [column],
            domain="ai.onnx.ml",
            keys_strings=keys,
            values_floats=values,
            default_float=float32_value(default),
        )
        return self.double(found)

    def expr(self, part: Expression) -> str:
        key = render_expression(part)
        if key not in self.memo:
            self.memo[key] = self.build(part)
        return self.memo[key]

    def build(self, part: Expression) -> str:
        if isinstance(part, Number):
            return self.const(part.value)
        if isinstance(part, Name):
            return self.double(part.id)
        if isinstance(part, Unary) and part.op == "-":
            return self.node("Neg", [self.expr(part.operand)])
        if isinstance(part, Binary) and part.op in _ARITHMETIC:
            return self.node(_ARITHMETIC[part.op], [self.expr(part.left), self.expr(part.right)])
        if isinstance(part, Binary) and part.op == "%":  # Python's: the sign of the divisor
            a, b = self.expr(part.left), self.expr(part.right)
            floor = self.node("Floor", [self.node("Div", [a, b])])
            return self.node("Sub", [a, self.node("Mul", [b, floor])])
        if isinstance(part, Unary | Binary):  # a comparison, and, or, not
            return self.flag(*self.condition(part))
        if isinstance(part, Call):
            return self.call(part)
        if isinstance(part, Analyzer):
            value = self.constants[part.key]
            if part.func == "vocabulary":
                assert isinstance(part.arg, Name)
                table = [(str(v), float(i)) for i, v in enumerate(value)]
                return self.lookup(part.arg.id, table, -1.0)
            return self.const(float(value))
        if isinstance(part, Bucketize):
            edges = (
                self.constants[part.edges.key] if isinstance(part.edges, Analyzer) else part.edges
            )
            x = self.expr(part.x)
            if x in self.fixed:  # every value that varies is [n, 1] already
                x = self.node("Reshape", [x, self.const([-1, 1], np.int64)])
            above = self.double(self.node("GreaterOrEqual", [x, self.const(list(edges))]))
            count = self.node("ReduceSum", [above, self.const([1], np.int64)], keepdims=1)
            return self.missing_or([x], count)
        table = [(k, float(v)) for k, v in part.table]
        return self.lookup(
            part.column, table, float("nan") if part.default is None else part.default
        )

    def call(self, part: Call) -> str:
        f, args = part.func, part.args
        if f == "is_null":
            arg = args[0]
            if isinstance(arg, Name) and self.types.get(arg.id) == "string":
                return self._string_missing(arg.id)
            return self.double(self.node("IsNaN", [self.expr(arg)]))
        if f == "where":
            test, parts = self.condition(args[0])
            chosen = self.node("Where", [test, self.expr(args[1]), self.expr(args[2])])
            return self.missing_or(parts, chosen)
        x = self.expr(args[0])
        if f == "log1p":
            return self.node("Log", [self.node("Add", [self.const(1.0), x])])
        if f in ("log", "exp", "sqrt", "abs"):
            return self.node(f.capitalize(), [x])
        if f == "fillna":
            return self.node("Where", [self.node("IsNaN", [x]), self.expr(args[1]), x])
        if f == "clip":
            lo, hi = self.expr(args[1]), self.expr(args[2])
            high = self.node("Where", [self.node("Greater", [x, hi]), hi, x])
            return self.node("Where", [self.node("Less", [x, lo]), lo, high])
        assert f == "zscore"
        mean = float(self.constants[Analyzer("mean", args[0]).key])
        std = float(self.constants[Analyzer("std", args[0]).key])
        centred = self.node("Sub", [x, self.const(mean)])
        return self.node("Div", [centred, self.const(std)]) if std > 0 else centred

    def _string_missing(self, column: str) -> str:
        found = self.node(
            "LabelEncoder",
            [column],
            domain="ai.onnx.ml",
            keys_strings=[""],
            values_floats=[1.0],
            default_float=0.0,
        )
        return self.double(found)


def features_graph(
    features: Sequence[DerivedFeature],
    types: Mapping[str, ColumnType],
    constants: Mapping[str, Any],
) -> bytes:
    """The ONNX model computing ``features`` from the raw columns ``types`` names: one input
    per column (float32 or string, ``[n, 1]``), one float32 ``[n, 1]`` output per feature,
    named after it."""
    b = _Builder(types, constants)
    onnx, helper = b.onnx, b.helper
    values = [b.expr(feature.node) for feature in features]
    names = [feature.name for feature in features]
    to_float = onnx.TensorProto.FLOAT
    if len(values) == 1:
        b.nodes.append(helper.make_node("Cast", values, names, to=to_float))
    else:  # one rounding to float32 for every feature: a graph costs per node
        joined = b.node("Concat", values, axis=1)
        rounded = b.node("Cast", [joined], to=to_float)
        sizes = b.const([1] * len(values), np.int64)
        b.nodes.append(helper.make_node("Split", [rounded, sizes], names, axis=1))
    outputs = [helper.make_tensor_value_info(n, to_float, [None, 1]) for n in names]
    inputs = [
        helper.make_tensor_value_info(
            column,
            onnx.TensorProto.STRING if kind == "string" else onnx.TensorProto.FLOAT,
            [None, 1],
        )
        for column, kind in types.items()
    ]
    graph = helper.make_graph(b.nodes, "mlplan_features", inputs, outputs, b.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in FEATURE_OPSET.items()],
        producer_name="mlplan.features",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
