"""Scanning a data file to pre-fill a plan: columns, target candidates, likely sensitive
attributes and PII columns (by name and by what the values look like)."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from mlplan.data._columns import id_reason
from mlplan.data._privacy import pii_reason, sample_strings
from mlplan.data._profile import profile_table
from mlplan.data._read import detect_format, list_images, read_table
from mlplan.plan import ColumnSuggestion, DataSuggestions, Task
from mlplan.workspace import Workspace

__all__ = ["create_from_data", "scan_data"]

_SENSITIVE_NAMES = re.compile(
    r"^(gender|sex|ethnicity|ethnic_?group|race|religion|age|age_?group|age_?band|nationality|"
    r"national_?origin|citizenship|disability|disabled|marital_?status|sexual_?orientation|"
    r"pregnan.*|veteran.*|caste)$",
    re.IGNORECASE,
)
_TARGET_NAMES = re.compile(
    r"^(target|label|labels|y|class|outcome|churn.*|is_.*|has_.*|.*_flag|default(ed)?|fraud.*|"
    r"converted|conversion|purchased|clicked|survived|response|price|sales|revenue)$",
    re.IGNORECASE,
)
_TIME_NAMES = re.compile(r"(date|time|timestamp|_at$|_on$)", re.IGNORECASE)
Role = Literal["feature", "target", "id", "time", "pii", "sensitive"]


def _role(
    name: str, profile: dict[str, Any], column: pa.ChunkedArray | None, rows: int
) -> tuple[Role, str]:
    kind = profile["kind"]
    sample = (
        sample_strings(column) if kind in {"categorical", "text"} and column is not None else []
    )
    reason = pii_reason(name, sample)
    if reason is not None:
        return "pii", reason
    if _SENSITIVE_NAMES.match(name):
        return "sensitive", "name suggests a protected attribute"
    if (why := id_reason(name, profile, rows)) is not None:
        return "id", why
    if kind == "datetime" or (_TIME_NAMES.search(name) and kind != "numeric"):
        return "time", "dates or times"
    return "feature", ""


def _guess_task(profile: dict[str, Any]) -> Task:
    distinct = profile["distinct"] or 0
    if distinct == 2:
        return "binary"
    if profile["kind"] == "numeric" and distinct > 20:
        return "regression"
    return "multiclass"


def scan_data(
    path: str | Path, *, dataset: str | None = None, target: str | None = None
) -> DataSuggestions:
    """Scan a file or image folder and suggest the plan's dataset entry, task and target.

    Examples
    --------
    >>> import pyarrow as pa, pyarrow.csv as csv, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "customers.csv"
    >>> csv.write_csv(pa.table({"customer_id": [1, 2, 3, 4], "email": ["a@x.org", "b@y.com",
    ...     "c@z.net", "d@w.io"], "gender": ["f", "m", "f", "m"], "churned": [0, 1, 0, 0]}), p)
    >>> s = scan_data(p)
    >>> s.task, s.target_candidates[0], s.names("pii"), s.names("sensitive"), s.names("id")
    ('binary', 'churned', ['email'], ['gender'], ['customer_id'])
    """
    path = Path(path)
    fmt = detect_format(path)
    name = dataset or re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem).lstrip("0123456789_.-") or "data"
    if fmt == "images":
        images = list_images(path)
        labels = sorted({i.label for i in images})
        return DataSuggestions(
            name, str(path), fmt, len(images), [], ["label"], "image_classification", labels
        )
    table = read_table(path, fmt)
    profile = profile_table(table)
    columns = _columns(table, profile)
    candidates = _target_candidates(columns, target)
    chosen = candidates[0] if candidates else None
    columns = [
        ColumnSuggestion(c.name, c.type, c.distinct, c.missing_ratio, "target", "chosen target")
        if c.name == chosen
        else c
        for c in columns
    ]
    task: Task | None = None
    classes: list[str] = []
    if chosen is not None and chosen in profile["columns"]:
        target_profile = profile["columns"][chosen]
        task = _guess_task(target_profile)
        if task != "regression":
            classes = [str(t["value"]) for t in target_profile.get("top", [])]
    return DataSuggestions(name, str(path), fmt, table.num_rows, columns, candidates, task, classes)


def _columns(table: pa.Table, profile: dict[str, Any]) -> list[ColumnSuggestion]:
    """Each column with the role its name and values suggest."""
    out = []
    for name, column in profile["columns"].items():
        role, reason = _role(name, column, table.column(name), table.num_rows)
        bands = _bands(name, column) if role == "sensitive" else ()
        out.append(
            ColumnSuggestion(
                name,
                column["kind"],
                column["distinct"] or 0,
                column["missing_ratio"],
                role,
                reason,
                bands,
            )
        )
    return out


# Standard age bands (as in census and fairness reports); under 18 and 65+ are open-ended.
_AGE_BANDS = (18.0, 25.0, 35.0, 45.0, 55.0, 65.0)
_AGE_NAMES = re.compile(r"^(age|age_?years|age_?at_?.*)$", re.IGNORECASE)


def _bands(name: str, column: dict[str, Any]) -> tuple[float, ...]:
    """Band edges for a numeric attribute with many values: the standard age bands for an
    age, else its quartiles; none for a column with few values (a slice per value is fine)."""
    if column["kind"] != "numeric" or (column["distinct"] or 0) <= 10:
        return ()
    if _AGE_NAMES.match(name):
        return _AGE_BANDS
    quantiles = column.get("quantiles") or {}
    edges = [float(f"{quantiles[q]:.3g}") for q in ("0.25", "0.5", "0.75") if q in quantiles]
    return tuple(sorted(set(edges))) if len(set(edges)) >= 2 else ()


def _target_candidates(columns: list[ColumnSuggestion], target: str | None) -> list[str]:
    """Columns that could be the target, likeliest first: ``target`` when given, names that
    sound like one, then the columns with few values (the last columns first)."""
    eligible = [c for c in columns if c.role in {"feature", "sensitive"} and c.distinct >= 2]
    named = [c.name for c in eligible if _TARGET_NAMES.match(c.name)]
    low_cardinality = [
        c.name for c in reversed(eligible) if c.distinct <= 20 and c.name not in named
    ]
    candidates = named + low_cardinality
    if target is not None:
        candidates = [target] + [c for c in candidates if c != target]
    return candidates


def create_from_data(
    root: str | Path,
    name: str,
    data: str | Path,
    *,
    task: Task | None = None,
    target: str | None = None,
    problem: str | None = None,
    owner: str | None = None,
    force: bool = False,
) -> Workspace:
    """Write a complete, commented ``mlplan.yaml`` in ``root``, pre-filled from a scan of
    ``data`` (a file or image folder): its dataset entry, and the task and target it suggests
    unless given.

    Raises
    ------
    ParameterError
        A plan already exists (without ``force``), or no task or target can be settled.
    """
    root = Path(root).resolve()
    Workspace.check_creatable(root, force=force)  # before reading a large file for nothing
    data_path = Path(data).resolve()
    suggestions = scan_data(data_path, target=target)
    # Relative to the plan, so the project folder can move with its data.
    shown = Path(os.path.relpath(data_path, root)).as_posix()
    suggestions = dataclasses.replace(suggestions, path=shown)
    return Workspace.create(
        root,
        name,
        task=task,
        target=target,
        suggestions=suggestions,
        problem=problem,
        owner=owner,
        force=force,
    )
