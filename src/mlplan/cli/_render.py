"""Rendering results: Rich on a terminal, JSON for machines."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

__all__ = ["console", "err_console", "esc", "print_json"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def esc(value: object) -> str:
    """A value from the user or the data, made safe to put inside Rich markup."""
    return escape(str(value))


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (dates and paths as strings)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()
