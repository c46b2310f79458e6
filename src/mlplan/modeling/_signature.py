"""The package signature: how a caller feeds a model package, the contract between modeling
(which writes ``signature.json`` into every package) and everything that runs one — the
server's validators, batch scoring, evaluation and the browser page.

Each input is one ONNX feed:

- ``number`` / ``string``: a tabular column, one ``[n, 1]`` tensor, with the range or the
  categories seen in training (and ``infrequent``: those too rare in training to score apart,
  which the graph scores as one) and whether it may be missing;
- ``image``: ``[n, channels, height, width]`` pixels 0–255;
- ``window``: ``[n, length, channels]`` steps of a time-ordered series, with each channel's
  range.

The JSON form is stable: a package written by an earlier release reads back the same.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["InputKind", "PackageSignature", "SignatureInput"]

InputKind = Literal["number", "string", "image", "window"]

# The keys each kind of input writes, in order (the JSON form of earlier releases).
_KEYS: dict[str, tuple[str, ...]] = {
    "number": ("name", "type", "min", "max", "nullable"),
    "string": ("name", "type", "categories", "nullable"),
    "image": ("name", "type", "shape", "dtype", "range", "mode"),
    "window": ("name", "type", "shape", "dtype", "time_column", "horizon", "channels"),
}


@dataclass(frozen=True)
class SignatureInput:
    """One input of a package: its name, kind, and what training saw of it."""

    name: str
    type: InputKind
    nullable: bool = False
    min: float | None = None  # number: the training range
    max: float | None = None
    categories: tuple[str, ...] = ()  # string: the categories seen (none when redacted)
    shape: tuple[int | None, ...] | None = None  # image, window: the tensor's shape
    dtype: str | None = None
    range: tuple[float, float] | None = None  # image: the pixel range
    mode: str | None = None  # image: "L" or "RGB"
    time_column: str | None = None  # window: the series' order and how far ahead
    horizon: int | None = None
    channels: tuple[dict[str, Any], ...] = ()  # window: each channel's name, min and max
    infrequent: tuple[str, ...] = ()  # string: the categories seen that score as one (too rare)

    @property
    def tabular(self) -> bool:
        """A column of records (a number or a string), not a tensor."""
        return self.type in ("number", "string")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignatureInput:
        """From the JSON form."""
        shape = data.get("shape")
        pixel_range = data.get("range")
        return cls(
            name=str(data["name"]),
            type=data["type"],
            nullable=bool(data.get("nullable", False)),
            min=data.get("min"),
            max=data.get("max"),
            categories=tuple(str(c) for c in data.get("categories") or ()),
            infrequent=tuple(str(c) for c in data.get("infrequent") or ()),
            shape=None if shape is None else tuple(shape),
            dtype=data.get("dtype"),
            range=None if pixel_range is None else (pixel_range[0], pixel_range[1]),
            mode=data.get("mode"),
            time_column=data.get("time_column"),
            horizon=data.get("horizon"),
            channels=tuple(dict(c) for c in data.get("channels") or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        values = {
            "name": self.name,
            "type": self.type,
            "min": self.min,
            "max": self.max,
            "nullable": self.nullable,
            "categories": list(self.categories),
            "shape": None if self.shape is None else list(self.shape),
            "dtype": self.dtype,
            "range": None if self.range is None else list(self.range),
            "mode": self.mode,
            "time_column": self.time_column,
            "horizon": self.horizon,
            "channels": [dict(c) for c in self.channels],
        }
        out = {key: values[key] for key in _KEYS[self.type]}
        if self.infrequent:  # written only when some are, so older packages read the same
            out["infrequent"] = list(self.infrequent)
        return out


@dataclass(frozen=True)
class PackageSignature:
    """How a caller feeds a package: its inputs in graph order, how a missing value is
    written, and what happens to a category training never saw.

    Examples
    --------
    >>> signature = PackageSignature(
    ...     (SignatureInput("age", "number", min=18.0, max=90.0),
    ...      SignatureInput("plan", "string", categories=("basic", "pro"), nullable=True)),
    ...     missing={"number": "NaN", "string": ""}, unseen_categories="ignored")
    >>> PackageSignature.from_json(signature.to_json()) == signature
    True
    >>> [i.name for i in signature.inputs if i.nullable]
    ['plan']
    """

    inputs: tuple[SignatureInput, ...]
    missing: dict[str, str] | None = None
    unseen_categories: str | None = None
    preprocessing: str | None = None  # images: what to do to a picture before feeding it
    extra: dict[str, Any] = field(default_factory=dict)  # keys a later release may add

    @property
    def names(self) -> list[str]:
        """The inputs' names, in graph order."""
        return [i.name for i in self.inputs]

    @property
    def tabular(self) -> bool:
        """Every input is a column of records."""
        return all(i.tabular for i in self.inputs)

    def input(self, name: str) -> SignatureInput:
        """The input called ``name``."""
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PackageSignature:
        """From the JSON form."""
        known = {"inputs", "missing", "unseen_categories", "preprocessing"}
        return cls(
            inputs=tuple(SignatureInput.from_dict(i) for i in data.get("inputs") or ()),
            missing=None if data.get("missing") is None else dict(data["missing"]),
            unseen_categories=data.get("unseen_categories"),
            preprocessing=data.get("preprocessing"),
            extra={k: v for k, v in data.items() if k not in known},
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> PackageSignature:
        """From ``signature.json``."""
        return cls.from_dict(json.loads(text))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (keys that are unset are left out)."""
        out: dict[str, Any] = {"inputs": [i.to_dict() for i in self.inputs]}
        if self.preprocessing is not None:
            out["preprocessing"] = self.preprocessing
        if self.missing is not None:
            out["missing"] = dict(self.missing)
        if self.unseen_categories is not None:
            out["unseen_categories"] = self.unseen_categories
        return out | self.extra

    def to_json(self) -> str:
        """``signature.json``."""
        return json.dumps(self.to_dict(), indent=1)
