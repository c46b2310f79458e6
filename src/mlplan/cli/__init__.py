"""The command line: ``mlplan``. Parses, calls the library, renders; computes nothing itself."""

from __future__ import annotations

from mlplan.cli import _commands  # noqa: F401  (registers the commands on the app)
from mlplan.cli._app import app, main

__all__ = ["app", "main"]
