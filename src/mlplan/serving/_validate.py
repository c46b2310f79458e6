"""Requests checked against the package signature before anything runs: every bad field of
every record is named with what was expected, and the value itself is never echoed (it may
be personal data)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = ["FieldError", "RecordValidator", "TensorValidator", "ValidationResult"]


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

    feeds: dict[str, np.ndarray] = field(default_factory=dict)
    errors: list[FieldError] = field(default_factory=list)
    missing: dict[str, int] = field(default_factory=dict)
    out_of_range: dict[str, int] = field(default_factory=dict)
    unseen: dict[str, int] = field(default_factory=dict)
    rows: int = 0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


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
        The package's ``signature.json``.
    unseen_categories
        ``reject`` (422) or ``allow`` (the graph ignores them), from the plan's security.
    out_of_range
        ``reject``, ``allow`` or ``clip`` to the trained range, from the plan's security.
    """

    def __init__(
        self,
        signature: Mapping[str, Any],
        *,
        unseen_categories: Literal["reject", "allow"] = "reject",
        out_of_range: Literal["reject", "allow", "clip"] = "allow",
        max_records: int = 10_000,
    ) -> None:
        self.inputs = list(signature["inputs"])
        self.names = [c["name"] for c in self.inputs]
        self.unseen_categories = unseen_categories
        self.out_of_range = out_of_range
        self.max_records = max_records
        self._categories = {
            c["name"]: set(c.get("categories") or []) for c in self.inputs if c["type"] == "string"
        }

    def validate(
        self, records: Any, *, loc: Sequence[str | int] = ("body", "records")
    ) -> ValidationResult:
        """Feeds for ``records`` (a list of objects), or every error found."""
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
        known = set(self.names)
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                result.errors.append(FieldError((*base, i), "dict_type", "expected an object"))
                continue
            for key in record:
                if key not in known:
                    result.errors.append(
                        FieldError(
                            (*base, i, str(key)),
                            "extra_forbidden",
                            f"unknown field; the model takes: {', '.join(self.names)}",
                        )
                    )
            for spec in self.inputs:
                name = spec["name"]
                where = (*base, i, name)
                if name not in record:
                    result.errors.append(
                        FieldError(where, "missing", "field required (send null when unknown)")
                        if not spec.get("nullable")
                        else FieldError(where, "missing", "field required; null is allowed")
                    )
                    continue
                value = record[name]
                if value is None:
                    if not spec.get("nullable"):
                        result.errors.append(
                            FieldError(
                                where, "null", "may not be null: it was never missing in training"
                            )
                        )
                    else:
                        result.missing[name] = result.missing.get(name, 0) + 1
                    continue
                if spec["type"] == "number":
                    if not _is_number(value) or not _finite(value):
                        result.errors.append(
                            FieldError(
                                where, "float_type", "expected a finite number (32-bit float range)"
                            )
                        )
                        continue
                    value = float(value)
                    low, high = spec.get("min"), spec.get("max")
                    if low is not None and high is not None and not low <= value <= high:
                        result.out_of_range[name] = result.out_of_range.get(name, 0) + 1
                        if self.out_of_range == "reject":
                            result.errors.append(
                                FieldError(
                                    where,
                                    "out_of_range",
                                    f"expected a number from {low:g} to {high:g} (the range "
                                    "seen in training)",
                                )
                            )
                            continue
                        if self.out_of_range == "clip":
                            value = min(max(value, low), high)
                    columns[name][i] = value
                else:
                    if not isinstance(value, str) or not _utf8(value):
                        result.errors.append(
                            FieldError(where, "string_type", "expected a string (valid UTF-8)")
                        )
                        continue
                    allowed = self._categories.get(name, set())
                    if allowed and value not in allowed:
                        result.unseen[name] = result.unseen.get(name, 0) + 1
                        if self.unseen_categories == "reject":
                            shown = ", ".join(sorted(allowed)[:20])
                            result.errors.append(
                                FieldError(
                                    where,
                                    "unseen_category",
                                    f"expected one of: {shown}"
                                    + (" …" if len(allowed) > 20 else ""),
                                )
                            )
                            continue
                    columns[name][i] = value
        if result.errors:
            return result
        for spec in self.inputs:
            name = spec["name"]
            if spec["type"] == "number":
                result.feeds[name] = np.array(
                    [np.nan if v is None else v for v in columns[name]], dtype=np.float32
                ).reshape(-1, 1)
            else:
                result.feeds[name] = np.array(
                    ["" if v is None else v for v in columns[name]], dtype=object
                ).reshape(-1, 1)
        return result


class TensorValidator:
    """Checks Open Inference Protocol tensors against the signature: shapes, datatypes and
    names here; the values of tabular inputs through the same checks and policies as records
    (so both routes accept and refuse the same things)."""

    def __init__(
        self, signature: Mapping[str, Any], records: RecordValidator | None = None
    ) -> None:
        self.inputs = {c["name"]: c for c in signature["inputs"]}
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
        given: dict[str, tuple[int, dict[str, Any]]] = {}
        for i, tensor in enumerate(tensors):
            if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
                result.errors.append(
                    FieldError((*base, i), "dict_type", "expected a tensor with a name")
                )
                continue
            name = tensor["name"]
            if name not in self.inputs:
                result.errors.append(
                    FieldError(
                        (*base, i, "name"),
                        "extra_forbidden",
                        f"unknown input; the model takes: {', '.join(self.inputs)}",
                    )
                )
            elif name in given:
                result.errors.append(
                    FieldError((*base, i, "name"), "duplicate", "input given twice")
                )
            else:
                given[name] = (i, tensor)
        for name in self.inputs:
            if name not in given:
                result.errors.append(FieldError((*base, name), "missing", "input required"))
        if result.errors:
            return result
        shaped: dict[str, tuple[list[int], list[Any]]] = {}
        for name, (i, tensor) in given.items():
            spec = self.inputs[name]
            where: tuple[str | int, ...] = (*base, i)
            shape, data = tensor.get("shape"), tensor.get("data")
            if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape
            ):
                result.errors.append(
                    FieldError((*where, "shape"), "shape", "expected a list of sizes")
                )
                continue
            if not isinstance(data, list):
                result.errors.append(
                    FieldError((*where, "data"), "list_type", "expected a flat list")
                )
                continue
            string = spec["type"] == "string"
            expected = "BYTES" if string else "FP32"
            allowed = {"BYTES"} if string else {"FP32", "FP64", "INT64", "INT32"}
            if tensor.get("datatype") not in allowed:
                result.errors.append(
                    FieldError((*where, "datatype"), "datatype", f"expected {expected}")
                )
                continue
            size = math.prod(shape) if shape else 0
            if len(data) != size:
                result.errors.append(
                    FieldError(
                        (*where, "data"), "size", f"expected {size} values for shape {shape}"
                    )
                )
                continue
            wanted = spec.get("shape") or [None, 1]
            if len(shape) != len(wanted) or any(
                w is not None and w != d for w, d in zip(wanted, shape, strict=True)
            ):
                result.errors.append(
                    FieldError(
                        (*where, "shape"),
                        "shape",
                        f"expected shape {['n' if w is None else w for w in wanted]}",
                    )
                )
                continue
            shaped[name] = (shape, data)
        if result.errors:
            return result
        rows = {shape[0] for shape, _ in shaped.values()}
        if len(rows) != 1:
            result.errors.append(FieldError(base, "shape", "every input must have the same rows"))
            return result
        n = rows.pop()
        if self.records is not None and all(
            spec["type"] in {"number", "string"} for spec in self.inputs.values()
        ):
            records = [{name: data[r] for name, (_, data) in shaped.items()} for r in range(n)]
            return self.records.validate(records, loc=base) if n else result
        for name, (shape, data) in shaped.items():
            i = given[name][0]
            bad = next(
                (
                    k
                    for k, v in enumerate(data)
                    if not (_is_number(v) and _finite(v))
                    and not (v is None and self.inputs[name].get("nullable", True))
                ),
                None,
            )
            if bad is not None:
                result.errors.append(
                    FieldError((*base, i, "data", bad), "float_type", "expected finite numbers")
                )
                continue
            result.feeds[name] = np.array(
                [np.nan if v is None else v for v in data], dtype=np.float32
            ).reshape(shape)
        result.rows = n
        return result
