"""Rendering results: Rich on a terminal, JSON for machines."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

from mlplan.core import json_safe

__all__ = ["console", "err_console", "esc", "print_json", "print_json_line"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def esc(value: object) -> str:
    """A value from the user or the data, made safe to put inside Rich markup."""
    return escape(str(value))


def print_json(data: Any) -> None:
    """Print ``data`` as strict, indented JSON on stdout: dates and paths as strings, and no
    bare NaN or Infinity (a missing or undefined number is null), which strict parsers
    refuse."""
    text = json.dumps(json_safe(data), indent=2, default=str, ensure_ascii=False, allow_nan=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def print_json_line(data: Any) -> None:
    """Print ``data`` as strict JSON on one line of stdout (JSON Lines: a stream of answers,
    one per line, each read as it comes)."""
    text = json.dumps(json_safe(data), default=str, ensure_ascii=False, allow_nan=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
