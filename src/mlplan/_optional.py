"""The one door through which optional dependencies are imported."""

from __future__ import annotations

import importlib
from types import ModuleType

from mlplan.errors import MissingExtraError

__all__ = ["require"]


def require(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra that provides it.

    Call it at first use, inside the function that needs the module, never at import time.

    Parameters
    ----------
    module
        The module to import, e.g. ``"PIL.Image"``.
    extra
        The ``mlplan`` extra that installs it, e.g. ``"images"``.
    purpose
        What needs it, phrased to follow "... requires": ``"profiling image folders"``.

    Examples
    --------
    >>> require("json", extra="images", purpose="reading JSON").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise MissingExtraError(
            f"{purpose} requires '{top}'. Install it with: pip install 'mlplan[{extra}]'"
        ) from exc
