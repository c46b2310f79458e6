"""Old import paths of public names that moved or were renamed: each keeps working for one
release (until mlplan 0.3), with a ``DeprecationWarning`` that names the new home.

A package lists its moved names once, as its module ``__getattr__``::

    __getattr__ = moved_names(__name__, {"Project": "mlplan.store.ProjectRecord"})

The new home is imported by name when an old one is used, so a name that moved to a higher
layer (clearance went from evaluation to serving) does not make the lower layer import the
higher one.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["REMOVED_IN", "moved_names"]

REMOVED_IN = "0.3"


def moved_names(module: str, moved: Mapping[str, str | tuple[str, str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that resolves ``moved`` (old name -> ``package.NewName``, or
    ``(where the old object lives now, what to use instead)`` for one that was replaced) with a
    warning, and raises AttributeError for anything else.

    Examples
    --------
    >>> import warnings
    >>> getattr_ = moved_names("mlplan.demo", {"Old": "mlplan.errors.MlplanError"})
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     getattr_("Old").__name__, str(seen[0].message)
    ('MlplanError', 'mlplan.demo.Old is deprecated: use mlplan.errors.MlplanError (the old name goes in mlplan 0.3)')
    """  # noqa: E501

    def __getattr__(name: str) -> Any:
        entry = moved.get(name)
        if entry is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        target, instead = entry if isinstance(entry, tuple) else (entry, entry)
        home, _, attribute = target.rpartition(".")
        warnings.warn(
            f"{module}.{name} is deprecated: use {instead} (the old name goes in mlplan "
            f"{REMOVED_IN})",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(home), attribute)

    return __getattr__
