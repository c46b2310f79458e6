"""Does the target fit the task? A four-class target under ``task: binary``, or an amount under a
classification task, is told in one line when data is added or the plan checked, before any
training."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["target_problem"]

# A float target with more distinct values than this reads as an amount, not classes.
_CONTINUOUS = 50
_SHOWN = 5


def target_problem(
    task: str, target: str, column: Mapping[str, Any], *, positive_class: str | None = None
) -> str | None:
    """What is wrong with the target column for the task, in one sentence, or ``None``.

    ``column`` is the target's entry of a data profile (``kind``, ``type``, ``distinct``, and
    ``top``, ``min``, ``max`` where the profile has them). Values compare as text, as the
    classes of a model do.

    Examples
    --------
    >>> four = {"kind": "categorical", "type": "string", "distinct": 4,
    ...         "top": [{"value": v, "count": 1} for v in "abcd"]}
    >>> print(target_problem("binary", "y", four))
    task binary needs a target with two values; 'y' has 4 (a, b, c, d): set task: multiclass, \
or name a two-valued target
    >>> amount = {"kind": "numeric", "type": "double", "distinct": 390, "min": -4.0, "max": 5.1}
    >>> print(target_problem("multiclass", "y", amount))
    'y' looks continuous (390 distinct values from -4 to 5.1), not a set of classes: set \
task: regression, or name the class column
    >>> target_problem("binary", "y", four | {"distinct": 2, "top": four["top"][:2]}) is None
    True
    """
    if task not in ("binary", "multiclass", "regression"):
        return None  # images take their label from folders; sequences decide by the values
    kind = column.get("kind")
    distinct = column.get("distinct")
    values = sorted((str(v["value"]) for v in column.get("top") or []), key=_natural)
    if not distinct or distinct < 2:
        return None  # no values, or one, is for training to refuse: this data may be a batch
    shown = ", ".join(values[:_SHOWN]) + (", …" if distinct > _SHOWN else "")
    if task == "regression":
        if kind != "numeric":
            return (
                f"task regression needs a numeric target; {target!r} holds {kind} values "
                f"({shown}): set task: binary or multiclass, or name a numeric target"
            )
        return None
    if _continuous(column):
        return (
            f"{target!r} looks continuous ({distinct} distinct values from "
            f"{column.get('min'):g} to {column.get('max'):g}), not a set of classes: set task: "
            "regression, or name the class column"
        )
    if task == "binary" and distinct > 2:
        return (
            f"task binary needs a target with two values; {target!r} has {distinct} ({shown}): "
            "set task: multiclass, or name a two-valued target"
        )
    if task == "binary" and positive_class is not None and values and positive_class not in values:
        return (
            f"positive_class {positive_class!r} is not a value of {target!r} ({shown}): "
            "set positive_class to one of them"
        )
    return None


def _natural(value: str) -> tuple[int, float, str]:
    """Numbers in numeric order, before text."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _continuous(column: Mapping[str, Any]) -> bool:
    """A numeric column of floats with many distinct values."""
    if column.get("kind") != "numeric":
        return False
    type_name = str(column.get("type", ""))
    is_float = type_name.startswith(("double", "float", "halffloat", "decimal"))
    minimum, maximum = column.get("min"), column.get("max")
    return (
        is_float
        and column.get("distinct", 0) > _CONTINUOUS
        and isinstance(minimum, int | float)
        and isinstance(maximum, int | float)
    )
