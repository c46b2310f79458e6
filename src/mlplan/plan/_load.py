"""Reading ``mlplan.yaml``: YAML with line numbers in, a validated :class:`Plan` out.

Every problem becomes one line ``FILE:LINE: field: what is wrong — what to do``, and an unknown
key names the nearest valid one, so the user can fix the file without reading the schema.
"""

from __future__ import annotations

import difflib
import functools
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from mlplan.errors import PlanError
from mlplan.plan._schema import Plan

__all__ = ["PLAN_FILE", "load_plan", "parse_plan"]

PLAN_FILE = "mlplan.yaml"


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file.

    Raises
    ------
    PlanError
        When the file is missing or unreadable, is not YAML, or does not validate. ``problems``
        lists every problem found, each as ``file:line: field: message``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(
            f"{path}: no plan file here. Create one with: mlplan init NAME --task TASK --target COL"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: cannot read the plan file ({exc})") from None
    return parse_plan(text, filename=str(path))


def parse_plan(text: str, *, filename: str = PLAN_FILE) -> Plan:
    """Validate plan text; ``filename`` is only used in messages.

    Examples
    --------
    >>> parse_plan("project: {name: churn}\\ntask: binary\\ntarget: churned\\n").task
    'binary'
    >>> parse_plan("project: {name: churn}\\ntask: binary\\ntarget: x\\nslcies: []\\n")
    Traceback (most recent call last):
    ...
    mlplan.errors.PlanError: mlplan.yaml:4: unknown key 'slcies' — did you mean 'slices'?
    """
    # Each command, and each page of ``mlplan ui``, reads the plan afresh; reading YAML with
    # its line numbers is what takes the time (a third of a second for a plan of 100
    # datasets), so the same text is validated once per process. Each caller gets its own
    # copy: a Plan is mutable.
    return _validated(text, filename).model_copy(deep=True)


@functools.lru_cache(maxsize=8)
def _validated(text: str, filename: str) -> Plan:
    """The plan ``text`` validated (a problem raises, and is not remembered)."""
    yaml = YAML(typ="rt")
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise PlanError(f"{filename}:{line}: not valid YAML: {problem}") from None
    except YAMLError as exc:  # e.g. a control character: no mark, but a position
        line = text.count("\n", 0, getattr(exc, "position", 0) or 0) + 1
        reason = str(exc).splitlines()[0]
        raise PlanError(f"{filename}:{line}: not valid YAML: {reason}") from None
    if data is None:
        raise PlanError(
            f"{filename}:1: the plan is empty; it needs at least 'project', 'task' and 'target'"
        )
    if not isinstance(data, dict):
        raise PlanError(
            f"{filename}:1: the plan must be a mapping of sections, got {type(data).__name__}"
        )
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(err, data, filename) for err in exc.errors(include_url=False)]
        problems = list(dict.fromkeys(problems))
        head = (
            problems[0]
            if len(problems) == 1
            else (f"{filename}: {len(problems)} problems in the plan:\n  " + "\n  ".join(problems))
        )
        raise PlanError(head, problems) from None


def _describe(err: ErrorDetails, data: Any, filename: str) -> str:
    loc = tuple(err["loc"])
    line = _line_of(data, loc)
    where = f"{filename}:{line}"
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        valid = _valid_keys(Plan, loc[:-1])
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(valid)}"
        return f"{where}: unknown key '{key}' — {hint}"
    field = ".".join(str(p) for p in loc) or "plan"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        return f"{where}: {field}: required field is missing — add it"
    given = err.get("input")
    if err["type"] not in {"value_error", "assertion_error"} and not isinstance(given, dict | list):
        message = f"{message}; got {given!r}"
    return f"{where}: {field}: {message}"


def _line_of(data: Any, loc: Sequence[int | str]) -> int:
    """1-based line of the deepest node of ``loc`` that exists in the YAML document."""
    line = 1
    node = data
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


def _valid_keys(model: type[BaseModel], path: Sequence[int | str]) -> list[str]:
    """Field names of the model found at ``path`` below ``model`` (empty if none)."""
    current: Any = model
    for part in path:
        current = _step(current, part)
        if current is None:
            return []
    models = list(_models_in(current))
    return sorted({name for m in models for name in m.model_fields}) if models else []


def _step(annotation: Any, part: int | str) -> Any:
    for model in _models_in(annotation):
        if isinstance(part, str) and part in model.model_fields:
            return model.model_fields[part].annotation
    for arg in _flatten(annotation):
        origin = typing.get_origin(arg)
        if origin is list and isinstance(part, int):
            return typing.get_args(arg)[0]
        if origin is dict and isinstance(part, str):
            return typing.get_args(arg)[1]
    return None


def _flatten(annotation: Any) -> Iterator[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        for arg in typing.get_args(annotation):
            yield from _flatten(arg)
    elif origin is typing.Annotated:
        yield from _flatten(typing.get_args(annotation)[0])
    else:
        yield annotation


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    for arg in _flatten(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            yield arg
