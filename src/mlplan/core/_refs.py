"""References to things in the store, as users type them: ``customers``, ``customers@2``,
``customers@latest``, ``customers@2/s1`` (split 1 of version 2)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlplan.errors import RefError

__all__ = ["DatasetRef", "SplitRef", "parse_dataset_ref", "parse_split_ref"]

_DATASET = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_.-]*)(?:@(?P<version>\d+|latest))?$")
_SPLIT = re.compile(r"^(?P<dataset>[^/]+)/s(?P<number>\d+)$")


@dataclass(frozen=True)
class DatasetRef:
    """A dataset, optionally at a version (``None``: the latest)."""

    name: str
    version: int | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


@dataclass(frozen=True)
class SplitRef:
    """Split ``number`` of a dataset version."""

    dataset: DatasetRef
    number: int

    def __str__(self) -> str:
        return f"{self.dataset}/s{self.number}"


def parse_dataset_ref(text: str) -> DatasetRef:
    """Parse ``name``, ``name@N`` or ``name@latest``.

    Examples
    --------
    >>> parse_dataset_ref("customers@2")
    DatasetRef(name='customers', version=2)
    >>> str(parse_dataset_ref("customers@latest"))
    'customers'
    """
    match = _DATASET.match(text.strip())
    if not match:
        raise RefError(
            f"{text!r} is not a dataset reference; expected NAME or NAME@VERSION, "
            "e.g. customers or customers@2"
        )
    version = match["version"]
    return DatasetRef(match["name"], None if version in (None, "latest") else int(version))


def parse_split_ref(text: str) -> SplitRef:
    """Parse ``name@N/sK``.

    Examples
    --------
    >>> parse_split_ref("customers@2/s1")
    SplitRef(dataset=DatasetRef(name='customers', version=2), number=1)
    """
    match = _SPLIT.match(text.strip())
    if not match:
        raise RefError(
            f"{text!r} is not a split reference; expected NAME@VERSION/sN, e.g. customers@2/s1"
        )
    return SplitRef(parse_dataset_ref(match["dataset"]), int(match["number"]))
