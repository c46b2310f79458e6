"""Feature expressions: the plan's ``features:`` strings parsed into a small tree of plain values.

An expression is read by Python's :mod:`ast` (``mode="eval"``) and walked with a whitelist of
node types; nothing is ever evaluated. The tree is what both compilers (DuckDB SQL and ONNX
nodes, :mod:`mlplan.features`) read, so the two cannot accept different languages. It lives in
the core because the plan checks the syntax when it loads, with the file and line.

The language
------------
numbers, strings (as ``map`` keys only), column names and earlier features;
``+ - * / ** %`` and unary minus; comparisons ``< <= > >= == !=`` (1.0 or 0.0); ``and``,
``or``, ``not`` (non-zero is true); the functions ``log1p log exp sqrt abs clip where bucketize
map is_null fillna``; the analyzers over the training rows ``mean std min max quantiles
vocabulary zscore``.
"""

from __future__ import annotations

import ast
import itertools
import math
from dataclasses import dataclass
from typing import Literal

from mlplan.errors import PlanError

__all__ = [
    "ANALYZERS",
    "FUNCTIONS",
    "Analyzer",
    "Binary",
    "Bucketize",
    "Call",
    "CategoryMap",
    "Expression",
    "Name",
    "Number",
    "Unary",
    "expression_names",
    "parse_expression",
    "render_expression",
]

FUNCTIONS: dict[str, int] = {
    "log1p": 1,
    "log": 1,
    "exp": 1,
    "sqrt": 1,
    "abs": 1,
    "is_null": 1,
    "fillna": 2,
    "clip": 3,
    "where": 3,
    "zscore": 1,
}
"""The plain functions and how many arguments each takes (``zscore`` reads two analyzers)."""

ANALYZERS = ("mean", "std", "min", "max", "quantiles", "vocabulary")
"""Full-pass statistics of the training rows, as TensorFlow Transform's analyzers."""

_BINARY = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "**",
    ast.Mod: "%",
}
_COMPARE = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
}
_SPECIAL = ("bucketize", "map")


@dataclass(frozen=True)
class Number:
    """A number literal."""

    value: float


@dataclass(frozen=True)
class Name:
    """A column of the data, or an earlier feature."""

    id: str


@dataclass(frozen=True)
class Unary:
    """``-x`` or ``not x``."""

    op: Literal["-", "not"]
    operand: Expression


@dataclass(frozen=True)
class Binary:
    """Arithmetic, a comparison, ``and`` or ``or``."""

    op: str
    left: Expression
    right: Expression


@dataclass(frozen=True)
class Call:
    """One of :data:`FUNCTIONS`."""

    func: str
    args: tuple[Expression, ...]


@dataclass(frozen=True)
class Analyzer:
    """A statistic of the training rows: ``mean``, ``std`` (population), ``min``, ``max`` (one
    number each), ``quantiles`` (``n - 1`` edges, for ``bucketize``) or ``vocabulary`` (a
    category column's values by frequency, then value; at most ``n`` when ``top_k`` is given).
    """

    func: str
    arg: Expression
    n: int | None = None

    @property
    def key(self) -> str:
        """How its value is named where it is stored (``features.json``)."""
        return render_expression(self)


@dataclass(frozen=True)
class Bucketize:
    """The bucket of ``x`` between sorted ``edges`` (numpy.digitize: ``edges[i-1] <= x <
    edges[i]`` is bucket ``i``), edges given or the training rows' ``quantiles``."""

    x: Expression
    edges: tuple[float, ...] | Analyzer


@dataclass(frozen=True)
class CategoryMap:
    """``map(column, {category: number}, default=number)``: a number per category; a missing
    category is missing, one not listed is ``default`` (missing when none is given)."""

    column: str
    table: tuple[tuple[str, float], ...]
    default: float | None


Expression = Number | Name | Unary | Binary | Call | Analyzer | Bucketize | CategoryMap


class _Invalid(Exception):
    def __init__(self, node: ast.AST | None, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


def parse_expression(text: str) -> Expression:
    """Parse one feature expression.

    Raises
    ------
    PlanError
        Not an expression of the language; the message names the offending token.

    Examples
    --------
    >>> parse_expression("log1p(income) / 2")
    Binary(op='/', left=Call(func='log1p', args=(Name(id='income'),)), right=Number(value=2.0))
    >>> render_expression(parse_expression("clip(zscore(age), -3, 3)"))
    'clip(zscore(age), -3, 3)'
    >>> parse_expression("__import__('os')")
    Traceback (most recent call last):
    ...
    mlplan.errors.PlanError: expression "__import__('os')": '__import__' is not a function; use one of: abs, bucketize, clip, exp, fillna, is_null, log, log1p, map, max, mean, min, quantiles, sqrt, std, vocabulary, where, zscore
    """  # noqa: E501
    if not isinstance(text, str) or not text.strip():
        raise PlanError("the expression is empty; write one, e.g. 'log1p(income)'")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        raise PlanError(f"expression {text!r} is not valid: {exc.msg}{where}") from None
    try:
        return _Parser(text.strip()).expr(tree.body)
    except _Invalid as exc:
        raise PlanError(f"expression {text!r}: {exc.message}") from None


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text

    def token(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or type(node).__name__

    def expr(self, node: ast.AST) -> Expression:
        if isinstance(node, ast.Constant):
            return Number(self.number(node))
        if isinstance(node, ast.Name):
            if node.id in FUNCTIONS or node.id in ANALYZERS or node.id in _SPECIAL:
                raise _Invalid(node, f"{node.id!r} is a function; call it: {node.id}(...)")
            return Name(node.id)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                operand = self.expr(node.operand)
                if isinstance(operand, Number):
                    return Number(-operand.value)
                return Unary("-", operand)
            if isinstance(node.op, ast.UAdd):
                return self.expr(node.operand)
            if isinstance(node.op, ast.Not):
                return Unary("not", self.expr(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return Binary(_BINARY[type(node.op)], self.expr(node.left), self.expr(node.right))
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1:
                raise _Invalid(
                    node,
                    f"chained comparison {self.token(node)!r}; write each with 'and', "
                    "e.g. 'a < b and b < c'",
                )
            kind = type(node.ops[0])
            if kind not in _COMPARE:
                raise _Invalid(node, f"{self.token(node)!r}: use < <= > >= == or !=")
            return Binary(_COMPARE[kind], self.expr(node.left), self.expr(node.comparators[0]))
        if isinstance(node, ast.BoolOp):
            op = "and" if isinstance(node.op, ast.And) else "or"
            values = [self.expr(v) for v in node.values]
            out = values[0]
            for value in values[1:]:
                out = Binary(op, out, value)
            return out
        if isinstance(node, ast.Call):
            return self.call(node)
        raise _Invalid(
            node,
            f"{self.token(node)!r} is not allowed; an expression holds numbers, column "
            "names, + - * / ** %, comparisons, and/or/not and the listed functions",
        )

    def number(self, node: ast.AST) -> float:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            return sign * self.number(node.operand)
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, int | float)
            and not isinstance(node.value, bool)
        ):
            value = float(node.value)
            if not math.isfinite(value):
                raise _Invalid(node, f"{self.token(node)!r} is not a finite number")
            return value
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            raise _Invalid(
                node,
                f"the string {self.token(node)!r} is only allowed as a key of map(column, "
                "{...}); compare categories with map",
            )
        raise _Invalid(node, f"{self.token(node)!r} must be a number")

    def call(self, node: ast.Call) -> Expression:
        known = sorted({*FUNCTIONS, *ANALYZERS, *_SPECIAL})
        if not isinstance(node.func, ast.Name) or node.func.id not in known:
            raise _Invalid(
                node,
                f"{self.token(node.func)!r} is not a function; use one of: {', '.join(known)}",
            )
        name = node.func.id
        allowed = {"map": {"default"}, "vocabulary": {"top_k"}}.get(name, set())
        for keyword in node.keywords:
            if keyword.arg not in allowed:
                hint = f"; it takes {', '.join(sorted(allowed))}=" if allowed else ""
                raise _Invalid(node, f"{name}() takes no keyword {keyword.arg or '**'!r}{hint}")
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        args = node.args
        if any(isinstance(a, ast.Starred) for a in args):
            raise _Invalid(node, f"{self.token(node)!r}: '*' arguments are not allowed")
        if name == "bucketize":
            self.arity(node, name, 2)
            edges_node = args[1]
            if isinstance(edges_node, ast.List | ast.Tuple):
                edges = tuple(self.number(e) for e in edges_node.elts)
                if not edges or any(b <= a for a, b in itertools.pairwise(edges)):
                    raise _Invalid(
                        node, f"bucketize edges {self.token(edges_node)} must strictly increase"
                    )
                return Bucketize(self.expr(args[0]), edges)
            quantiles = self.expr(edges_node)
            if not (isinstance(quantiles, Analyzer) and quantiles.func == "quantiles"):
                raise _Invalid(
                    node,
                    f"bucketize needs edges: a list of numbers or quantiles(x, n); got "
                    f"{self.token(edges_node)!r}",
                )
            return Bucketize(self.expr(args[0]), quantiles)
        if name == "map":
            self.arity(node, name, 2)
            column, table = args
            if not isinstance(column, ast.Name):
                raise _Invalid(node, f"map() reads a category column; got {self.token(column)!r}")
            if not isinstance(table, ast.Dict) or not table.keys:
                raise _Invalid(
                    node, "map() needs a mapping of categories to numbers, e.g. {'pro': 1}"
                )
            pairs: list[tuple[str, float]] = []
            for key, value in zip(table.keys, table.values, strict=True):
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                    shown = "**" if key is None else repr(self.token(key))
                    raise _Invalid(node, f"map() keys are categories (strings); got {shown}")
                if key.value == "":
                    raise _Invalid(
                        node, "map() cannot map '' (a missing category); use fillna(map(...), v)"
                    )
                pairs.append((key.value, self.number(value)))
            keys = [k for k, _ in pairs]
            if len(set(keys)) != len(keys):
                raise _Invalid(node, "map() names a category twice")
            default = self.number(keywords["default"]) if "default" in keywords else None
            return CategoryMap(column.id, tuple(pairs), default)
        if name in ANALYZERS:
            if name == "quantiles":
                self.arity(node, name, 2)
                n = self.count(args[1], name)
                if n < 2:
                    raise _Invalid(node, "quantiles(x, n) needs n >= 2 buckets")
                return Analyzer(name, self.expr(args[0]), n)
            self.arity(node, name, 1)
            if name == "vocabulary":
                if not isinstance(args[0], ast.Name):
                    raise _Invalid(
                        node, f"vocabulary() reads a category column; got {self.token(args[0])!r}"
                    )
                top_k = self.count(keywords["top_k"], "top_k") if "top_k" in keywords else None
                return Analyzer(name, Name(args[0].id), top_k)
            return Analyzer(name, self.expr(args[0]))
        self.arity(node, name, FUNCTIONS[name])
        return Call(name, tuple(self.expr(a) for a in args))

    def arity(self, node: ast.Call, name: str, n: int) -> None:
        if len(node.args) != n:
            raise _Invalid(
                node,
                f"{name}() takes {n} argument{'s' if n != 1 else ''}; got {len(node.args)} in "
                f"{self.token(node)!r}",
            )

    def count(self, node: ast.AST, what: str) -> int:
        value = self.number(node)
        if value != int(value) or value < 1:
            raise _Invalid(node, f"{what} must be a whole number of at least 1; got {value:g}")
        return int(value)


def expression_names(node: Expression) -> list[str]:
    """The names an expression reads (columns and earlier features), each once, in order.

    Examples
    --------
    >>> expression_names(parse_expression("where(a > mean(b), map(c, {'x': 1}), a)"))
    ['a', 'b', 'c']
    """
    found: dict[str, None] = {}

    def walk(part: Expression) -> None:
        if isinstance(part, Name):
            found[part.id] = None
        elif isinstance(part, CategoryMap):
            found[part.column] = None
        elif isinstance(part, Unary):
            walk(part.operand)
        elif isinstance(part, Binary):
            walk(part.left)
            walk(part.right)
        elif isinstance(part, Call):
            for arg in part.args:
                walk(arg)
        elif isinstance(part, Analyzer):
            walk(part.arg)
        elif isinstance(part, Bucketize):
            walk(part.x)
            if isinstance(part.edges, Analyzer):
                walk(part.edges)

    walk(node)
    return list(found)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)


_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "not": 3,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "==": 4,
    "!=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
    "neg": 7,
    "**": 8,
}


def render_expression(node: Expression) -> str:
    """An expression as text, in one canonical spelling (its parts in full parentheses where
    precedence needs them), which parses back to the same tree."""
    return _render(node, 0)


def _render(node: Expression, outer: int) -> str:
    if isinstance(node, Number):
        text = _number(node.value)
        return f"({text})" if node.value < 0 and outer >= _PRECEDENCE["neg"] else text
    if isinstance(node, Name):
        return node.id
    if isinstance(node, Unary):
        level = _PRECEDENCE["neg" if node.op == "-" else "not"]
        text = ("-" if node.op == "-" else "not ") + _render(node.operand, level)
    elif isinstance(node, Binary):
        level = _PRECEDENCE[node.op]
        right = level + (0 if node.op == "**" else 1)
        left = level + (1 if node.op == "**" or level == _PRECEDENCE["<"] else 0)
        text = f"{_render(node.left, left)} {node.op} {_render(node.right, right)}"
    elif isinstance(node, Call):
        return f"{node.func}({', '.join(_render(a, 0) for a in node.args)})"
    elif isinstance(node, Analyzer):
        extra = ""
        if node.n is not None:
            extra = f", top_k={node.n}" if node.func == "vocabulary" else f", {node.n}"
        return f"{node.func}({_render(node.arg, 0)}{extra})"
    elif isinstance(node, Bucketize):
        edges = (
            _render(node.edges, 0)
            if isinstance(node.edges, Analyzer)
            else "[" + ", ".join(_number(e) for e in node.edges) + "]"
        )
        return f"bucketize({_render(node.x, 0)}, {edges})"
    else:
        table = ", ".join(f"{k!r}: {_number(v)}" for k, v in node.table)
        default = "" if node.default is None else f", default={_number(node.default)}"
        return f"map({node.column}, {{{table}}}{default})"
    return f"({text})" if level < outer else text
