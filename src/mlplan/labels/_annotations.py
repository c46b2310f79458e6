"""Annotations as integer-coded arrays: the one shape every agreement, consensus and HLP
computation works on. One row per (item, annotator) label."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlplan.errors import UsageError

__all__ = ["AnnotationSet", "within_item_pairs"]


def _encode(
    values: Sequence[Any] | np.ndarray | pa.Array, order: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    if order is None and isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        # Integer codes (the usual item ids): numpy's unique beats a round trip through text.
        low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
        if low >= 0 and high < 4 * values.size + 1024:  # dense ids: count, no sort
            present = np.flatnonzero(np.bincount(values, minlength=high + 1))
            lookup = np.full(high + 1, -1, dtype=np.int64)
            lookup[present] = np.arange(present.size)
            unique, inverse = present, lookup[values]
        else:
            unique, inverse = np.unique(values, return_inverse=True)
        names = [str(v) for v in unique.tolist()]
        ranking = np.argsort(np.asarray(names, dtype=object), kind="stable")
        remap = np.empty(len(names), dtype=np.int64)
        remap[ranking] = np.arange(len(names))
        return remap[inverse.ravel()], [names[i] for i in ranking]
    array = pa.array(values) if not isinstance(values, pa.Array | pa.ChunkedArray) else values
    array = pc.cast(array, pa.string())
    if order is None:
        encoded = pc.dictionary_encode(array)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        names = encoded.dictionary.to_pylist()
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        ranking = np.argsort(np.asarray(names, dtype=object), kind="stable")
        remap = np.empty(len(names), dtype=np.int64)
        remap[ranking] = np.arange(len(names))
        return remap[codes], [names[i] for i in ranking]
    lookup = pc.index_in(array, value_set=pa.array(list(order), pa.string()))
    codes = pc.fill_null(lookup, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, list(order)


@dataclass(frozen=True)
class AnnotationSet:
    """Labels given by annotators to items, integer-coded.

    ``item``, ``annotator`` and ``label`` are parallel int arrays indexing ``items``,
    ``annotators`` and ``classes``. Build one with :meth:`from_records`.

    Examples
    --------
    >>> s = AnnotationSet.from_records(["a", "a", "b"], ["ann1", "ann2", "ann1"], ["x", "y", "x"])
    >>> s.classes, s.counts.tolist()
    (['x', 'y'], [[1, 1], [1, 0]])
    """

    item: np.ndarray
    annotator: np.ndarray
    label: np.ndarray
    items: list[str]
    annotators: list[str]
    classes: list[str]
    ordered: bool = False  # the class order means something (declared, for ordinal alpha)

    @classmethod
    def from_records(
        cls,
        items: Sequence[Any] | np.ndarray | pa.Array,
        annotators: Sequence[Any] | np.ndarray | pa.Array,
        labels: Sequence[Any] | np.ndarray | pa.Array,
        *,
        classes: Sequence[str] | None = None,
        ordered: bool = False,
    ) -> AnnotationSet:
        """Encode parallel sequences of item ids, annotator names and labels.

        ``classes`` fixes the class order (as the plan declares it); labels outside it raise.
        ``ordered`` says that order is meaningful (the plan's ``labels.scale: ordinal``).
        """
        item, item_names = _encode(items)
        annotator, annotator_names = _encode(annotators)
        label, class_names = _encode(labels, classes)
        if (label < 0).any():
            unknown = sorted(
                {str(v) for v in np.asarray(pa.array(labels).to_pylist(), dtype=object)[label < 0]}
            )
            raise UsageError(
                f"labels outside the class set {list(classes or [])}: {', '.join(unknown[:5])}"
            )
        if not (len(item) == len(annotator) == len(label)):
            raise UsageError("items, annotators and labels must have the same length")
        return cls(
            item,
            annotator,
            label,
            item_names,
            annotator_names,
            class_names,
            ordered and classes is not None,
        )

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @cached_property
    def counts(self) -> np.ndarray:
        """Items × classes: how many annotators gave each class to each item."""
        k = self.n_classes
        return np.bincount(self.item * k + self.label, minlength=len(self.items) * k).reshape(
            len(self.items), k
        )

    @cached_property
    def labels_per_item(self) -> np.ndarray:
        """How many labels each item has."""
        return np.asarray(self.counts.sum(axis=1))

    @property
    def multiply_labeled(self) -> np.ndarray:
        """Mask of items with two labels or more."""
        return self.labels_per_item >= 2

    def subset(self, mask: np.ndarray) -> AnnotationSet:
        """The annotations where ``mask`` is true (codes and names kept)."""
        return AnnotationSet(
            self.item[mask],
            self.annotator[mask],
            self.label[mask],
            self.items,
            self.annotators,
            self.classes,
            self.ordered,
        )


def within_item_pairs(item: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i < j, of annotations on the same item.

    Examples
    --------
    >>> first, second = within_item_pairs(np.array([0, 1, 0, 0]))
    >>> sorted(zip(first.tolist(), second.tolist()))
    [(0, 2), (0, 3), (2, 3)]
    """
    order = np.argsort(item, kind="stable")
    sorted_items = item[order]
    firsts: list[np.ndarray] = []
    seconds: list[np.ndarray] = []
    offset = 1
    while offset < len(order):
        same = sorted_items[offset:] == sorted_items[:-offset]
        if not same.any():
            break
        positions = np.flatnonzero(same)
        firsts.append(order[positions])
        seconds.append(order[positions + offset])
        offset += 1
    if not firsts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(firsts), np.concatenate(seconds)
