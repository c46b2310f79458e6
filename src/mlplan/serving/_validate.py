"""Requests checked against the package signature before anything runs: every bad field of
every record is named with what was expected, and the value itself is never echoed (it may
be personal data); nor is the name of a field the model does not know (an error names it by
its position, its length and its keyed hash, see :func:`._ids.unknown_field`)."""

from __future__ import annotations

import itertools
import math
import operator
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mlplan.modeling import PackageSignature, SignatureInput
from mlplan.serving._ids import unknown_field

__all__ = [
    "Feeds",
    "FieldError",
    "RecordValidator",
    "TensorValidator",
    "ValidationResult",
    "merge_feeds",
]

_FEW_ROWS = 16
_REFUSED = object()  # a value that failed its check: nothing to feed
_NEVER_MISSING = "may not be null: it was never missing in training"
_REQUIRED = "field required; it " + _NEVER_MISSING
_NOT_A_NUMBER = "expected a finite number (32-bit float range)"
_NOT_A_STRING = "expected a string (valid UTF-8)"


class Feeds(Mapping[str, np.ndarray]):
    """One request's ONNX feeds, by input name. The numeric inputs are held as one float32
    block (inputs × rows), so a micro-batch joins requests with one concatenation instead of
    one per input; each feed is a ``(rows, 1)`` view of it."""

    __slots__ = ("_dict", "_names", "_numeric", "block", "other")

    def __init__(
        self,
        names: list[str],
        numeric: list[str],
        block: np.ndarray,
        other: dict[str, np.ndarray],
    ) -> None:
        self._names = names
        self._numeric = numeric
        self.block = block
        self.other = other
        self._dict: dict[str, np.ndarray] | None = None

    def as_dict(self) -> dict[str, np.ndarray]:
        """The feeds as ONNX Runtime takes them."""
        if self._dict is None:
            found = dict(zip(self._numeric, self.block[:, :, None], strict=True))
            found.update(self.other)
            self._dict = {name: found[name] for name in self._names}
        return self._dict

    def __getitem__(self, name: str) -> np.ndarray:
        return self.as_dict()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def merge_feeds(parts: Sequence[Mapping[str, np.ndarray]]) -> Mapping[str, np.ndarray]:
    """The feeds of several requests as one batch, in order."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    if isinstance(first, Feeds) and all(
        isinstance(p, Feeds) and p._names is first._names for p in parts
    ):
        joined = [p for p in parts if isinstance(p, Feeds)]
        return Feeds(
            first._names,
            first._numeric,
            np.concatenate([p.block for p in joined], axis=1),
            {name: np.concatenate([p.other[name] for p in joined]) for name in first.other},
        )
    return {name: np.concatenate([p[name] for p in parts], axis=0) for name in first}


def _getter(names: list[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """``record -> tuple of its values for names`` (itemgetter, always a tuple)."""
    if len(names) == 1:
        only = names[0]
        return lambda record: (record[only],)
    if not names:
        return lambda record: ()
    return operator.itemgetter(*names)


@dataclass(frozen=True)
class FieldError:
    """One problem: where (``loc``), what (``type``), and what was expected."""

    loc: tuple[str | int, ...]
    type: str
    msg: str

    def to_dict(self) -> dict[str, Any]:
        """FastAPI's error shape."""
        return {"loc": list(self.loc), "type": self.type, "msg": self.msg}


@dataclass
class ValidationResult:
    """The ONNX feeds of the valid request, or the errors; and per-input counts of missing
    and out-of-range values (for the input metrics)."""

    feeds: Mapping[str, np.ndarray] = field(default_factory=dict)
    errors: list[FieldError] = field(default_factory=list)
    missing: dict[str, int] = field(default_factory=dict)
    out_of_range: dict[str, int] = field(default_factory=dict)
    unseen: dict[str, int] = field(default_factory=dict)
    rows: int = 0


def _by_tensor(result: ValidationResult, base: tuple[str | int, ...]) -> ValidationResult:
    """``result`` of tensors checked as records, each problem placed in its tensor: row 5
    of age is ``inputs.age.data[5]``, not ``inputs[5].age``."""
    depth = len(base)
    result.errors = [
        FieldError((*base, e.loc[depth + 1], "data", e.loc[depth]), e.type, e.msg)
        if len(e.loc) == depth + 2 and isinstance(e.loc[depth], int)
        else e
        for e in result.errors
    ]
    return result


def _listed(data: list[Any] | np.ndarray) -> list[Any]:
    """A tensor's values as JSON gives them: a binary tensor's as Python values, NaN as
    None (missing)."""
    if not isinstance(data, np.ndarray):
        return data
    values: list[Any] = data.tolist()
    if data.dtype.kind == "f":
        return [None if v != v else v for v in values]
    return values


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT_LIMITS = {"INT32": 2**31, "INT64": 2**63}
"""An integer datatype's values lie in [-limit, limit)."""
_NUMBER_TYPES = frozenset({int, float})


def _finite(value: float) -> bool:
    """A number the graph can take: finite as a float32 (the graph's input type)."""
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return False
    return math.isfinite(number) and abs(number) <= _FLOAT32_MAX


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, from JSON escapes
        return False
    return True


class RecordValidator:
    """Checks JSON records against a tabular signature and builds the feeds.

    Parameters
    ----------
    signature
        The package's signature (or its JSON form, ``signature.json`` read).
    unseen_categories
        ``reject`` (422) or ``allow`` (the graph ignores them), from the plan's security.
    out_of_range
        ``reject``, ``allow`` or ``clip`` to the trained range, from the plan's security.
    key
        The prediction log's key, which hashes the names of unknown fields in errors (a
        random one by default).
    """

    def __init__(
        self,
        signature: PackageSignature | Mapping[str, Any],
        *,
        unseen_categories: Literal["reject", "allow"] = "reject",
        out_of_range: Literal["reject", "allow", "clip"] = "allow",
        max_records: int = 10_000,
        key: bytes | None = None,
    ) -> None:
        if not isinstance(signature, PackageSignature):
            signature = PackageSignature.from_dict(signature)
        self.key = secrets.token_bytes(32) if key is None else key
        self.inputs = list(signature.inputs)
        self.names = [c.name for c in self.inputs]
        self.unseen_categories = unseen_categories
        self.out_of_range = out_of_range
        self.max_records = max_records
        self._categories = {c.name: set(c.categories) for c in self.inputs if c.type == "string"}
        # What the fast path needs: every record has exactly the inputs, of the right types,
        # with nothing missing, out of range or unseen (anything else takes the checked path).
        self._keys = frozenset(self.names)
        self._numeric = [c.name for c in self.inputs if c.type == "number"]
        self._strings = [c.name for c in self.inputs if c.type == "string"]
        self._get_numbers = _getter(self._numeric)
        self._get_strings = _getter(self._strings)
        bounds: list[tuple[float, float]] = []
        for c in self.inputs:
            if c.type == "number":
                if c.min is not None and c.max is not None:
                    bounds.append((max(c.min, -_FLOAT32_MAX), min(c.max, _FLOAT32_MAX)))
                else:
                    bounds.append((-_FLOAT32_MAX, _FLOAT32_MAX))
        self._lows = [b[0] for b in bounds]
        self._highs = [b[1] for b in bounds]
        self._low_column = np.array(self._lows, dtype=np.float64).reshape(-1, 1)
        self._high_column = np.array(self._highs, dtype=np.float64).reshape(-1, 1)

    def validate(
        self, records: Any, *, loc: Sequence[str | int] = ("body", "records")
    ) -> ValidationResult:
        """Feeds for ``records`` (a list of objects), or every error found."""
        fast = self._fast(records)
        return fast if fast is not None else self.checked(records, loc=loc)

    def _fast(self, records: Any) -> ValidationResult | None:
        """The feeds of a clean request, checked a column at a time; None when anything
        needs a closer look (then :meth:`checked` decides, by the same rules)."""
        if type(records) is not list or not 0 < len(records) <= self.max_records:
            return None
        keys = self._keys
        for record in records:
            if type(record) is not dict or record.keys() != keys:
                return None
        block = np.empty((0, len(records)), dtype=np.float32)
        if self._numeric:
            rows = [self._get_numbers(r) for r in records]
            if not set(map(type, itertools.chain.from_iterable(rows))) <= _NUMBER_TYPES:
                return None
            if len(rows) <= _FEW_ROWS:  # a few rows: Python's comparisons beat numpy's calls
                lows, highs = self._lows, self._highs
                for row in rows:  # NaN fails both comparisons; a huge integer the second
                    if not (all(map(operator.le, lows, row)) and all(map(operator.le, row, highs))):
                        return None
                block = np.array(rows, dtype=np.float64).T.astype(np.float32, order="C")
            else:
                try:
                    wide = np.array(rows, dtype=np.float64).T
                except OverflowError:  # an integer beyond any float
                    return None
                if not ((wide >= self._low_column) & (wide <= self._high_column)).all():
                    return None
                block = wide.astype(np.float32, order="C")
        other: dict[str, np.ndarray] = {}
        if self._strings:
            get = self._get_strings
            columns = list(zip(*(get(r) for r in records), strict=True))
            for name, column in zip(self._strings, columns, strict=True):
                if set(map(type, column)) != {str}:
                    return None
                allowed = self._categories[name]
                if allowed and not allowed.issuperset(column):
                    return None
                if not all(map(str.isascii, column)) and not all(map(_utf8, column)):
                    return None
                other[name] = np.array(column, dtype=object).reshape(-1, 1)
        feeds = Feeds(self.names, self._numeric, block, other)
        return ValidationResult(feeds=feeds, rows=len(records))

    def validate_columns(
        self, columns: Mapping[str, np.ndarray], rows: int, *, loc: Sequence[str | int]
    ) -> ValidationResult:
        """:meth:`validate` for columns of ``rows`` values each (binary tensors, decoded):
        checked with numpy a column at a time when clean; else record by record by the same
        rules, a NaN being a missing value (as null is in JSON)."""
        fast = self._fast_columns(columns, rows)
        if fast is not None:
            return fast
        lists = {name: _listed(column) for name, column in columns.items()}
        records = [dict(zip(lists, row, strict=True)) for row in zip(*lists.values(), strict=True)]
        return self.checked(records, loc=loc)

    def _fast_columns(
        self, columns: Mapping[str, np.ndarray], rows: int
    ) -> ValidationResult | None:
        """The feeds of clean columns (:meth:`_fast`'s rules, with numpy); None when
        anything needs a closer look."""
        if columns.keys() != self._keys or not 0 < rows <= self.max_records:
            return None
        block = np.empty((0, rows), dtype=np.float32)
        if self._numeric:
            numbers = [columns[name] for name in self._numeric]
            if any(c.dtype.kind not in "fiu" or c.shape != (rows,) for c in numbers):
                return None
            wide = np.stack([c.astype(np.float64) for c in numbers])
            if not ((wide >= self._low_column) & (wide <= self._high_column)).all():
                return None  # NaN (missing), out of range, beyond float32
            block = wide.astype(np.float32, order="C")
        other: dict[str, np.ndarray] = {}
        for name in self._strings:
            column = columns[name]
            if column.dtype != object or column.shape != (rows,):
                return None
            values = column.tolist()
            if set(map(type, values)) != {str}:
                return None
            allowed = self._categories[name]
            if allowed and not allowed.issuperset(values):
                return None
            other[name] = column.reshape(-1, 1)
        return ValidationResult(feeds=Feeds(self.names, self._numeric, block, other), rows=rows)

    def checked(
        self, records: Any, *, loc: Sequence[str | int] = ("body", "records")
    ) -> ValidationResult:
        """:meth:`validate` field by field: every error of every record, the counts of
        missing, out-of-range and unseen values, and the plan's policies applied."""
        result = ValidationResult()
        base = tuple(loc)
        if not isinstance(records, list) or not records:
            result.errors.append(
                FieldError(base, "list_type", "expected a non-empty list of records (objects)")
            )
            return result
        if len(records) > self.max_records:
            result.errors.append(
                FieldError(base, "too_long", f"at most {self.max_records:,} records per request")
            )
            return result
        n = len(records)
        result.rows = n
        columns: dict[str, list[Any]] = {name: [None] * n for name in self.names}
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                result.errors.append(FieldError((*base, i), "dict_type", "expected an object"))
                continue
            self._check_record(record, i, (*base, i), columns, result)
        if result.errors:
            return result
        block = np.array(
            [[np.nan if v is None else v for v in columns[name]] for name in self._numeric],
            dtype=np.float32,
        ).reshape(len(self._numeric), n)
        other = {
            name: np.array(["" if v is None else v for v in columns[name]], dtype=object).reshape(
                -1, 1
            )
            for name in self._strings
        }
        result.feeds = Feeds(self.names, self._numeric, block, other)
        return result

    def _check_record(
        self,
        record: dict[Any, Any],
        i: int,
        here: tuple[str | int, ...],
        columns: dict[str, list[Any]],
        result: ValidationResult,
    ) -> None:
        """Check record ``i`` field by field; its values go to ``columns``, its problems and
        counts to ``result``. (A valid value takes no call: this runs for every field.)"""
        errors = result.errors
        for position, key in enumerate(record):
            if key not in self._keys:
                place, described = unknown_field(self.key, key, position)
                errors.append(
                    FieldError(
                        (*here, place),
                        "extra_forbidden",
                        f"{described}; the model takes: {', '.join(self.names)}",
                    )
                )
        for spec in self.inputs:
            name = spec.name
            if name not in record:
                errors.append(
                    FieldError((*here, name), "missing", "field required (send null when unknown)")
                    if spec.nullable
                    else FieldError((*here, name), "missing", _REQUIRED)
                )
                continue
            value = record[name]
            if value is None:
                if not spec.nullable:
                    errors.append(FieldError((*here, name), "null", _NEVER_MISSING))
                else:
                    result.missing[name] = result.missing.get(name, 0) + 1
                continue
            if spec.type == "number":
                if not _is_number(value) or not _finite(value):
                    errors.append(FieldError((*here, name), "float_type", _NOT_A_NUMBER))
                    continue
                value = float(value)
                low, high = spec.min, spec.max
                if low is not None and high is not None and not low <= value <= high:
                    value = self._out_of_range(spec, value, (*here, name), result)
            else:
                if not isinstance(value, str) or not _utf8(value):
                    errors.append(FieldError((*here, name), "string_type", _NOT_A_STRING))
                    continue
                allowed = self._categories.get(name)
                if allowed and value not in allowed:
                    value = self._unseen(spec, value, (*here, name), result)
            if value is not _REFUSED:
                columns[name][i] = value

    def _out_of_range(
        self,
        spec: SignatureInput,
        value: float,
        where: tuple[str | int, ...],
        result: ValidationResult,
    ) -> Any:
        """A number outside the trained range: counted, then refused (``_REFUSED``), clipped
        or allowed as the plan says."""
        low, high = spec.min, spec.max
        assert low is not None and high is not None
        result.out_of_range[spec.name] = result.out_of_range.get(spec.name, 0) + 1
        if self.out_of_range == "reject":
            result.errors.append(
                FieldError(
                    where,
                    "out_of_range",
                    f"expected a number from {low:g} to {high:g} (the range seen in training)",
                )
            )
            return _REFUSED
        if self.out_of_range == "clip":
            return min(max(value, low), high)
        return value

    def _unseen(
        self,
        spec: SignatureInput,
        value: str,
        where: tuple[str | int, ...],
        result: ValidationResult,
    ) -> Any:
        """A category not seen in training: counted, then refused (``_REFUSED``) or allowed
        as the plan says."""
        allowed = self._categories[spec.name]
        result.unseen[spec.name] = result.unseen.get(spec.name, 0) + 1
        if self.unseen_categories == "reject":
            shown = ", ".join(sorted(allowed)[:20])
            result.errors.append(
                FieldError(
                    where,
                    "unseen_category",
                    f"expected one of: {shown}" + (" …" if len(allowed) > 20 else ""),
                )
            )
            return _REFUSED
        return value


class TensorValidator:
    """Checks Open Inference Protocol tensors against the signature: shapes, datatypes and
    names here; the values of tabular inputs through the same checks and policies as records
    (so both routes accept and refuse the same things)."""

    def __init__(
        self,
        signature: PackageSignature | Mapping[str, Any],
        records: RecordValidator | None = None,
    ) -> None:
        if not isinstance(signature, PackageSignature):
            signature = PackageSignature.from_dict(signature)
        self.inputs = {c.name: c for c in signature.inputs}
        self.records = records

    def validate(self, tensors: Any) -> ValidationResult:
        """Feeds for a list of ``{"name", "shape", "datatype", "data"}`` tensors."""
        result = ValidationResult()
        base: tuple[str | int, ...] = ("body", "inputs")
        if not isinstance(tensors, list) or not tensors:
            result.errors.append(
                FieldError(base, "list_type", "expected a non-empty list of tensors")
            )
            return result
        given = self._named(tensors, base, result.errors)
        if result.errors:
            return result
        shaped: dict[str, tuple[list[int], list[Any] | np.ndarray]] = {}
        for name, (i, tensor) in given.items():
            problem = self._check_tensor(self.inputs[name], tensor, (*base, i))
            if problem is not None:
                result.errors.append(problem)
            else:
                shaped[name] = (tensor["shape"], tensor["data"])
        if result.errors:
            return result
        rows = {shape[0] for shape, _ in shaped.values()}
        if len(rows) != 1:
            result.errors.append(FieldError(base, "shape", "every input must have the same rows"))
            return result
        n = rows.pop()
        if self.records is not None and all(spec.tabular for spec in self.inputs.values()):
            if not n:
                return result
            arrays = {k: v for k, (_, v) in shaped.items() if isinstance(v, np.ndarray)}
            if len(arrays) == len(shaped):  # binary tensors: checked with numpy
                return _by_tensor(self.records.validate_columns(arrays, n, loc=base), base)
            lists = {name: _listed(data) for name, (_, data) in shaped.items()}
            records = [{name: data[r] for name, data in lists.items()} for r in range(n)]
            return _by_tensor(self.records.validate(records, loc=base), base)
        feeds: dict[str, np.ndarray] = {}
        for name, (shape, data) in shaped.items():
            bad = self._bad_value(self.inputs[name], data)
            if bad is not None:
                where = (*base, given[name][0], "data", bad)
                result.errors.append(FieldError(where, "float_type", "expected finite numbers"))
                continue
            if isinstance(data, np.ndarray):  # binary: already numbers
                feeds[name] = data.astype(np.float32).reshape(shape)
                continue
            feeds[name] = np.array(
                [np.nan if v is None else v for v in data], dtype=np.float32
            ).reshape(shape)
        result.feeds = feeds
        result.rows = n
        return result

    def _named(
        self, tensors: list[Any], base: tuple[str | int, ...], errors: list[FieldError]
    ) -> dict[str, tuple[int, dict[str, Any]]]:
        """The tensors by input name (with their place); every input given once, or errors."""
        given: dict[str, tuple[int, dict[str, Any]]] = {}
        for i, tensor in enumerate(tensors):
            if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
                errors.append(FieldError((*base, i), "dict_type", "expected a tensor with a name"))
                continue
            name = tensor["name"]
            if name not in self.inputs:
                errors.append(
                    FieldError(
                        (*base, i, "name"),
                        "extra_forbidden",
                        f"unknown input; the model takes: {', '.join(self.inputs)}",
                    )
                )
            elif name in given:
                errors.append(FieldError((*base, i, "name"), "duplicate", "input given twice"))
            else:
                given[name] = (i, tensor)
        for name in self.inputs:
            if name not in given:
                errors.append(FieldError((*base, name), "missing", "input required"))
        return given

    @staticmethod
    def _check_tensor(
        spec: SignatureInput, tensor: dict[str, Any], where: tuple[str | int, ...]
    ) -> FieldError | None:
        """The first problem of one tensor's shape, data or datatype against ``spec``."""
        shape, data = tensor.get("shape"), tensor.get("data")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape
        ):
            return FieldError((*where, "shape"), "shape", "expected a list of sizes")
        if not isinstance(data, list | np.ndarray):  # an array: a binary tensor, decoded
            return FieldError((*where, "data"), "list_type", "expected a flat list")
        string = spec.type == "string"
        expected = "BYTES" if string else "FP32"
        allowed = {"BYTES"} if string else {"FP32", "FP64", "INT64", "INT32"}
        if tensor.get("datatype") not in allowed:
            return FieldError((*where, "datatype"), "datatype", f"expected {expected}")
        size = math.prod(shape) if shape else 0
        if len(data) != size:
            return FieldError((*where, "data"), "size", f"expected {size} values for shape {shape}")
        datatype = tensor["datatype"]
        limit = _INT_LIMITS.get(datatype)
        if limit is not None and isinstance(data, list):  # JSON: the values must be its type's
            for k, v in enumerate(data):
                if v is not None and not (type(v) is int and -limit <= v < limit):
                    where = (*where, "data", k)
                    return FieldError(where, "int_type", f"expected {datatype} values")
        wanted = list(spec.shape or (None, 1))
        if len(shape) != len(wanted) or any(
            w is not None and w != d for w, d in zip(wanted, shape, strict=True)
        ):
            return FieldError(
                (*where, "shape"),
                "shape",
                f"expected shape {['n' if w is None else w for w in wanted]}",
            )
        return None

    @staticmethod
    def _bad_value(spec: SignatureInput, data: list[Any] | np.ndarray) -> int | None:
        """Where the first value the graph cannot take is (a tensor input, such as an image
        or a window, may hold missing values: NaN to the graph)."""
        if isinstance(data, np.ndarray):
            if data.dtype.kind not in "fiu":
                return 0 if data.size else None
            wide = data.astype(np.float64)
            good = np.isfinite(wide) & (np.abs(wide) <= _FLOAT32_MAX)
            if spec.nullable or not spec.tabular:
                good |= np.isnan(wide)
            bad = np.flatnonzero(~good)
            return int(bad[0]) if bad.size else None
        return next(
            (
                k
                for k, v in enumerate(data)
                if not (_is_number(v) and _finite(v))
                and not (v is None and (spec.nullable or not spec.tabular))
            ),
            None,
        )
