"""The release, in one place (the root package and the lineage's producer read it)."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
