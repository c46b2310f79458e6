"""The plan's derived features, resolved: each expression with the features it names put in
place (so it reads input columns only), checked against the data's columns and their types,
and the analyzers it needs listed in the order they can be computed."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

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
    expression_names,
    parse_expression,
)
from mlplan.errors import DataError, PlanError
from mlplan.plan import FeatureEntry, Plan

__all__ = [
    "ColumnType",
    "DerivedFeature",
    "FeatureDefinitions",
    "analyzers_of",
    "column_type",
]

ColumnType = Literal["number", "string"]
"""How a column reaches a graph: a float32 number, or a string ("" when missing)."""


@dataclass(frozen=True)
class DerivedFeature:
    """One derived feature: its name, its expression as written, and the expression with the
    earlier features it names put in place (``node``: input columns only)."""

    name: str
    expr: str
    node: Expression
    description: str | None = None


def column_type(field: pa.DataType) -> ColumnType:
    """``string`` for text and dictionary columns, else ``number`` (booleans too)."""
    if pa.types.is_dictionary(field):
        field = field.value_type
    return "string" if pa.types.is_string(field) or pa.types.is_large_string(field) else "number"


@dataclass(frozen=True)
class FeatureDefinitions:
    """The plan's ``features:`` section, parsed and resolved, in plan order.

    Examples
    --------
    >>> defs = FeatureDefinitions.from_mapping({"r": "a / b", "lr": "log1p(r)"})
    >>> defs.columns
    ['a', 'b']
    >>> from mlplan.core import render_expression
    >>> render_expression(defs.features[1].node)
    'log1p(a / b)'
    """

    features: tuple[DerivedFeature, ...]
    source: str = field(default="features", compare=False)
    """Where they were written, for messages (the plan file's name)."""

    @classmethod
    def from_plan(cls, plan: Plan, *, source: str = "mlplan.yaml") -> FeatureDefinitions:
        """The plan's ``features:`` (none: empty)."""
        return cls.from_mapping(plan.features, source=source)

    @classmethod
    def from_mapping(
        cls, features: Mapping[str, str | FeatureEntry], *, source: str = "features"
    ) -> FeatureDefinitions:
        """From ``name: expression`` (or ``name: FeatureEntry``) in order.

        Raises
        ------
        PlanError
            An expression that does not parse, or that names a feature defined after it.
        """
        resolved: dict[str, Expression] = {}
        out: list[DerivedFeature] = []
        for name, entry in features.items():
            spec = FeatureEntry(expr=entry) if isinstance(entry, str) else entry
            try:
                node = parse_expression(spec.expr)
            except PlanError as exc:
                raise PlanError(f"{source}: feature {name!r}: {exc}") from None
            later = [n for n in expression_names(node) if n in features and n not in resolved]
            if name in later:
                raise PlanError(
                    f"{source}: feature {name!r} ({spec.expr!r}) reads its own name; give "
                    "the feature a name of its own (not a column's)"
                )
            if later:
                raise PlanError(
                    f"{source}: feature {name!r} ({spec.expr!r}) uses "
                    f"{', '.join(map(repr, later))}, defined at or below it; a feature may use "
                    "only the features above it"
                )
            node = _substitute(node, resolved, name, spec.expr, source)
            resolved[name] = node
            out.append(DerivedFeature(name, spec.expr, node, spec.description))
        return cls(tuple(out), source)

    @property
    def names(self) -> list[str]:
        """The derived features' names, in order."""
        return [f.name for f in self.features]

    @property
    def columns(self) -> list[str]:
        """The input columns the features read, each once, in order of first use."""
        found: dict[str, None] = {}
        for feature in self.features:
            found |= dict.fromkeys(expression_names(feature.node))
        return list(found)

    def __bool__(self) -> bool:
        return bool(self.features)

    def column_types(self, schema: pa.Schema, *, where: str) -> dict[str, ColumnType]:
        """Each input column's type in ``schema``, once every feature is checked against it.

        Raises
        ------
        DataError
            A column that is not in the data (naming the nearest), a feature named as a
            column, a category column read as a number or the other way round; each message
            names the feature, its expression and the column.
        """
        names = list(schema.names)
        for feature in self.features:
            if feature.name in names:
                raise DataError(
                    f"{self.source}: feature {feature.name!r} has the name of a column of "
                    f"{where}; give it a name of its own"
                )
            for column in expression_names(feature.node):
                if column not in names:
                    close = difflib.get_close_matches(column, names, n=1, cutoff=0.5)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    raise DataError(
                        f"{self.source}: feature {feature.name!r} ({feature.expr!r}) reads "
                        f"{column!r}, which is not a column of {where}{hint}"
                    )
        types = {c: column_type(schema.field(c).type) for c in self.columns}
        for feature in self.features:
            _check_types(feature, feature.node, types, self.source, reads="number")
        return types

    def analyzers(self) -> list[Analyzer]:
        """Every analyzer the features need (``zscore`` needs a ``mean`` and a ``std``), each
        once, inner ones before the ones that read them."""
        found: dict[str, Analyzer] = {}
        for feature in self.features:
            for analyzer in analyzers_of(feature.node):
                found.setdefault(analyzer.key, analyzer)
        return list(found.values())


def analyzers_of(node: Expression) -> list[Analyzer]:
    """The analyzers of an expression, inner ones first (``mean(x - mean(x))``: the inner
    mean, then the outer)."""
    out: list[Analyzer] = []
    if isinstance(node, Analyzer):
        out += analyzers_of(node.arg)
        out.append(node)
    elif isinstance(node, Unary):
        out += analyzers_of(node.operand)
    elif isinstance(node, Binary):
        out += analyzers_of(node.left) + analyzers_of(node.right)
    elif isinstance(node, Call):
        for arg in node.args:
            out += analyzers_of(arg)
        if node.func == "zscore":
            out += [Analyzer("mean", node.args[0]), Analyzer("std", node.args[0])]
    elif isinstance(node, Bucketize):
        out += analyzers_of(node.x)
        if isinstance(node.edges, Analyzer):
            out += analyzers_of(node.edges)
    return out


def _substitute(
    node: Expression, resolved: Mapping[str, Expression], name: str, expr: str, source: str
) -> Expression:
    """``node`` with each earlier feature it names replaced by that feature's expression."""

    def sub(part: Expression) -> Expression:
        if isinstance(part, Name):
            return resolved.get(part.id, part)
        if isinstance(part, CategoryMap | Number):
            if isinstance(part, CategoryMap) and part.column in resolved:
                raise PlanError(
                    f"{source}: feature {name!r} ({expr!r}) maps {part.column!r}, a derived "
                    "(numeric) feature; map() reads a category column"
                )
            return part
        if isinstance(part, Unary):
            return Unary(part.op, sub(part.operand))
        if isinstance(part, Binary):
            return Binary(part.op, sub(part.left), sub(part.right))
        if isinstance(part, Call):
            return Call(part.func, tuple(sub(a) for a in part.args))
        if isinstance(part, Analyzer):
            if part.func == "vocabulary" and isinstance(part.arg, Name) and part.arg.id in resolved:
                raise PlanError(
                    f"{source}: feature {name!r} ({expr!r}) takes the vocabulary of "
                    f"{part.arg.id!r}, a derived (numeric) feature; vocabulary() reads a "
                    "category column"
                )
            return Analyzer(part.func, sub(part.arg), part.n)
        edges = part.edges if isinstance(part.edges, tuple) else sub(part.edges)
        assert isinstance(edges, tuple | Analyzer)
        return Bucketize(sub(part.x), edges)

    return sub(node)


def _per_row(node: Expression) -> bool:
    """Whether a value differs by row: it reads a column outside a full-pass statistic."""
    if isinstance(node, Name | CategoryMap):
        return True
    if isinstance(node, Analyzer):
        return node.func == "vocabulary"
    if isinstance(node, Unary):
        return _per_row(node.operand)
    if isinstance(node, Binary):
        return _per_row(node.left) or _per_row(node.right)
    if isinstance(node, Call):
        return any(_per_row(a) for a in node.args)
    if isinstance(node, Bucketize):
        return _per_row(node.x)
    return False


def _check_types(
    feature: DerivedFeature,
    node: Expression,
    types: Mapping[str, ColumnType],
    source: str,
    *,
    reads: ColumnType,
) -> None:
    where = f"{source}: feature {feature.name!r} ({feature.expr!r})"

    def check(part: Expression, wanted: ColumnType | None = "number") -> None:
        if isinstance(part, Name):
            kind = types[part.id]
            if wanted is not None and kind != wanted:
                if kind == "string":
                    raise DataError(
                        f"{where} reads {part.id!r} as a number, but it holds categories; use "
                        f"map({part.id}, {{...}}), vocabulary({part.id}) or is_null({part.id})"
                    )
                raise DataError(
                    f"{where} reads {part.id!r} as categories, but it holds numbers; use "
                    "where(...), bucketize(...) or the number itself"
                )
        elif isinstance(part, CategoryMap):
            check(Name(part.column), "string")
        elif isinstance(part, Unary):
            check(part.operand)
        elif isinstance(part, Binary):
            check(part.left)
            check(part.right)
        elif isinstance(part, Call):
            if part.func == "is_null":
                check(part.args[0], None)
                return
            for arg in part.args:
                check(arg)
            if part.func == "clip" and (_per_row(part.args[1]) or _per_row(part.args[2])):
                raise DataError(
                    f"{where}: clip(x, lo, hi) needs bounds known before the rows are read "
                    "(numbers or mean/std/min/max of the training rows)"
                )
        elif isinstance(part, Analyzer):
            if part.func == "quantiles":
                raise DataError(
                    f"{where}: quantiles(x, n) gives bucket edges; use it in bucketize(x, "
                    "quantiles(x, n))"
                )
            check(part.arg, "string" if part.func == "vocabulary" else "number")
        elif isinstance(part, Bucketize):
            check(part.x)
            if isinstance(part.edges, Analyzer):
                check(part.edges.arg)

    check(node, reads)
    if not _per_row(node):
        raise DataError(f"{where} reads no column; a feature is computed from its row")
