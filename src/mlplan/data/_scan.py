"""Scanning a data file to pre-fill a plan: columns, the target candidates ranked with their
reasons, the positive class, likely sensitive attributes and PII columns (by name and by what
the values look like)."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from mlplan.data._columns import id_reason, name_words
from mlplan.data._privacy import pii_reason, sample_strings
from mlplan.data._profile import profile_table
from mlplan.data._read import (
    detect_format,
    given_delimiter,
    list_images,
    read_table,
    sniff_decimal,
    sniff_delimiter,
)
from mlplan.data._sensitive import sensitive_reason
from mlplan.data._target import target_problem
from mlplan.errors import ParameterError
from mlplan.plan import ColumnSuggestion, DataSuggestions, ScanChoice, TargetCandidate, Task
from mlplan.workspace import Workspace

__all__ = ["check_target_choice", "create_from_data", "scan_data"]

# Names an outcome goes by; `is_*`, `has_*` and `*_flag` are weaker hints (features are
# named so too).
_TARGET_NAMES = re.compile(
    r"^(target|label|labels|y|class|outcome|(.+_)?(target|label|outcome)|churn.*|"
    r"default(ed)?|fraud.*|is_fraud|converted|conversion|purchased|clicked|survived|"
    r"response|price|sales|revenue|readmitted)$",
    re.IGNORECASE,
)
# The last word of a name that says it is the outcome: SalePrice, total_sales, loan_default.
_OUTCOME_WORDS = frozenset(
    [
        "target",
        "label",
        "outcome",
        "price",
        "sales",
        "revenue",
        "churn",
        "churned",
        "default",
        "defaulted",
        "fraud",
        "survived",
        "readmitted",
        "converted",
    ]
)
_FLAG_NAMES = re.compile(r"^(is_.+|has_.+|.+_flag)$", re.IGNORECASE)
_FEW_VALUES = 20
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
    few = (profile["distinct"] or 0) <= _FEW_VALUES and kind in {"categorical", "boolean"}
    reason = sensitive_reason(name, [t["value"] for t in profile.get("top", [])] if few else [])
    if reason is not None:
        return "sensitive", reason
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
    path: str | Path,
    *,
    dataset: str | None = None,
    target: str | None = None,
    delimiter: str | None = None,
) -> DataSuggestions:
    """Scan a file or image folder and suggest the plan's dataset entry, task and target.

    A CSV file is split on ``delimiter``, else on the one found in it (see ``delimiter``).

    The target candidates are ranked, each with its reasons (a name an outcome goes by, few
    values, the last column; never an id, time or PII column); the first is the scan's
    choice, ``sure`` only when ``target`` is given or its name alone says so. A binary
    target's positive class is its minority (the event), unsure when a class named like a
    positive (``1``, ``yes``, ``true``) is the majority or the classes are balanced.

    Examples
    --------
    >>> import pyarrow as pa, pyarrow.csv as csv, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "customers.csv"
    >>> csv.write_csv(pa.table({"customer_id": [1, 2, 3, 4], "email": ["a@x.org", "b@y.com",
    ...     "c@z.net", "d@w.io"], "gender": ["f", "m", "f", "m"], "churned": [0, 1, 0, 0]}), p)
    >>> s = scan_data(p)
    >>> s.task, s.target_candidates[0], s.names("pii"), s.names("sensitive"), s.names("id")
    ('binary', 'churned', ['email'], ['gender'], ['customer_id'])
    >>> s.target.sure, s.target.reason, s.positive.value, s.positive.reason
    (True, 'name suggests the outcome; 2 values; the last column', '1', 'the minority class (25.0% of the rows), named like a positive')
    """  # noqa: E501
    path = Path(path)
    fmt = detect_format(path)
    name = dataset or re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem).lstrip("0123456789_.-") or "data"
    if fmt == "images":
        images = list_images(path)
        labels = sorted({i.label for i in images})
        return DataSuggestions(
            name, str(path), fmt, len(images), [], ["label"], "image_classification", labels
        )
    delimiter = given_delimiter(delimiter, fmt) or (sniff_delimiter(path) if fmt == "csv" else None)
    decimal = sniff_decimal(path, delimiter) if delimiter is not None else "."
    table = read_table(path, fmt, delimiter=delimiter, decimal=decimal)
    profile = profile_table(table)
    columns = _columns(table, profile)
    ranking = _rank_targets(columns, target)
    chosen = _target_choice(ranking, target)
    columns = [
        ColumnSuggestion(c.name, c.type, c.distinct, c.missing_ratio, "target", "chosen target")
        if chosen is not None and c.name == chosen.value
        else c
        for c in columns
    ]
    task: Task | None = None
    classes: list[str] = []
    shares: dict[str, float] = {}
    positive = None
    if chosen is not None and chosen.value in profile["columns"]:
        target_profile = profile["columns"][chosen.value]
        task = _guess_task(target_profile)
        if task != "regression":
            top = target_profile.get("top", [])
            classes = [str(t["value"]) for t in top]
            total = sum(t["count"] for t in top)
            shares = {str(t["value"]): t["count"] / total for t in top} if total else {}
        if task == "binary" and len(shares) == 2:
            positive = _positive_choice(shares)
    return DataSuggestions(
        name,
        str(path),
        fmt,
        table.num_rows,
        columns,
        [c.name for c in ranking],
        task,
        classes,
        ranking=ranking,
        target=chosen,
        target_profile=(profile["columns"].get(chosen.value) if chosen is not None else None),
        class_shares=shares,
        positive=positive,
        delimiter=delimiter,
        decimal=decimal,
    )


def _columns(table: pa.Table, profile: dict[str, Any]) -> list[ColumnSuggestion]:
    """Each column with the role its name and values suggest."""
    out = []
    for name, column in profile["columns"].items():
        role, reason = _role(name, column, table.column(name), table.num_rows)
        bands = _bands(column, age=reason == "name suggests age") if role == "sensitive" else ()
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


def _bands(column: dict[str, Any], *, age: bool) -> tuple[float, ...]:
    """Band edges for a numeric attribute with many values: the standard age bands for an
    age, else its quartiles; none for a column with few values (a slice per value is fine)."""
    if column["kind"] != "numeric" or (column["distinct"] or 0) <= 10:
        return ()
    if age:
        return _AGE_BANDS
    quantiles = column.get("quantiles") or {}
    edges = [float(f"{quantiles[q]:.3g}") for q in ("0.25", "0.5", "0.75") if q in quantiles]
    return tuple(sorted(set(edges))) if len(set(edges)) >= 2 else ()


def _named_outcome(name: str) -> bool:
    """The name is one an outcome goes by, whole (``churned``) or as its last word
    (``SalePrice``, ``loan_default``)."""
    if _TARGET_NAMES.match(name):
        return True
    words = name_words(name)
    return len(words) > 1 and words[-1] in _OUTCOME_WORDS


def _rank_targets(columns: list[ColumnSuggestion], target: str | None) -> list[TargetCandidate]:
    """Columns that could be the target, likeliest first, each with its reasons: ``target``
    when given; then by name (one an outcome goes by), few values (two most), the last column
    (where exports put the outcome); sensitive attributes last (rarely the outcome)."""
    last = columns[-1].name if columns else None
    ranked: list[tuple[int, int, TargetCandidate]] = []
    for position, c in enumerate(columns):
        named, flag = _named_outcome(c.name), bool(_FLAG_NAMES.match(c.name))
        if c.role not in {"feature", "sensitive"} or (c.distinct < 2 and c.name != target):
            continue
        if c.name != target and not named and not flag and c.distinct > _FEW_VALUES:
            continue
        score, reasons = 0, []
        if c.name == target:
            score, reasons = 100, ["given"]
        if named and c.role != "sensitive":
            score, reasons = score + 10, [*reasons, "name suggests the outcome"]
        elif flag and c.role != "sensitive":
            score, reasons = score + 3, [*reasons, "name reads as a yes/no flag"]
        if c.distinct == 2:
            score, reasons = score + 3, [*reasons, "2 values"]
        elif c.distinct <= _FEW_VALUES:
            score, reasons = score + 1, [*reasons, f"{c.distinct} values"]
        else:
            reasons.append(f"{c.type}, {c.distinct:,} values")
        if c.name == last:
            score, reasons = score + 1, [*reasons, "the last column"]
        if c.role == "sensitive":
            score, reasons = score - 5, [*reasons, "a sensitive attribute, rarely the outcome"]
        ranked.append((-score, -position, TargetCandidate(c.name, score, tuple(reasons))))
    if target is not None and not any(r[2].name == target for r in ranked):
        ranked.append((-100, 0, TargetCandidate(target, 100, ("given",))))
    return [candidate for *_, candidate in sorted(ranked, key=lambda r: (r[0], r[1]))]


def _target_choice(ranking: list[TargetCandidate], target: str | None) -> ScanChoice | None:
    """The first candidate; sure when given, or when its name alone says so (and no other
    candidate's name does)."""
    if not ranking:
        return None
    first = ranking[0]
    named = [c for c in ranking if "name suggests the outcome" in c.reasons]
    if target is not None:
        return ScanChoice(target, "given", sure=True)
    sure = len(named) == 1 and named[0] is first
    return ScanChoice(first.name, first.reason, sure)


# Class names that conventionally mean the positive class (the event).
_POSITIVE_NAMES = frozenset({"1", "true", "yes", "y", "positive", "pos"})
_CLEAR_MINORITY = 0.4


def _positive_choice(shares: dict[str, float]) -> ScanChoice:
    """The binary target's positive class: the minority (the event the model is to find),
    unsure when a class named like a positive is the clear majority or the classes are
    balanced (then a class named like a positive, else the minority)."""
    (low, low_share), (high, high_share) = sorted(shares.items(), key=lambda kv: (kv[1], kv[0]))
    named = [c for c in (low, high) if c.strip().lower() in _POSITIVE_NAMES]
    if low_share < _CLEAR_MINORITY:
        if not named or named == [low]:
            return ScanChoice(
                low,
                f"the minority class ({low_share:.1%} of the rows)"
                + (", named like a positive" if named else ""),
                sure=True,
            )
        return ScanChoice(
            low,
            f"the minority class ({low_share:.1%} of the rows), taken as the event; "
            f"{high!r} is named like a positive but holds {high_share:.1%}",
            sure=False,
        )
    if len(named) == 1:
        return ScanChoice(
            named[0],
            f"named like a positive; the classes are balanced ({low_share:.1%} / {high_share:.1%})",
            sure=True,
        )
    return ScanChoice(
        low,
        f"the classes are balanced ({low_share:.1%} / {high_share:.1%}) and neither is "
        "named like a positive; the smaller is taken",
        sure=False,
    )


def create_from_data(
    root: str | Path,
    name: str,
    data: str | Path,
    *,
    task: Task | None = None,
    target: str | None = None,
    positive_class: str | None = None,
    problem: str | None = None,
    owner: str | None = None,
    force: bool = False,
    scanned: DataSuggestions | None = None,
    delimiter: str | None = None,
) -> Workspace:
    """Write a complete, commented ``mlplan.yaml`` in ``root``, pre-filled from a scan of
    ``data`` (a file or image folder): its dataset entry, and the task, target and positive
    class it suggests unless given.

    Without ``target``, the scan's first candidate is used only when it is sure (its name
    says it is the outcome); otherwise the candidates are listed in the error.

    Parameters
    ----------
    scanned
        A scan of ``data`` made already (``scan_data(data, target=target)``, which the CLI
        shows before asking), so the file is not read twice.

    Raises
    ------
    ParameterError
        A plan already exists (without ``force``), no column is clearly the target, or no
        task or target can be settled.
    """
    root = Path(root).resolve()
    Workspace.check_creatable(root, force=force)  # before reading a large file for nothing
    data_path = Path(data).resolve()
    suggestions = (
        scanned if scanned is not None else scan_data(data_path, target=target, delimiter=delimiter)
    )
    if target is None and task != "image_classification" and suggestions.format != "images":
        check_target_choice(suggestions)
    chosen_task = task or suggestions.task
    if chosen_task is not None and suggestions.target is not None and suggestions.target_profile:
        problem = target_problem(
            chosen_task,
            suggestions.target.value,
            suggestions.target_profile,
            positive_class=positive_class,
        )
        if problem:
            raise ParameterError(
                ("task", "target"),
                f"{data_path.name}: {problem} (choose with {{task}} and {{target}})",
            )
    # Relative to the plan, so the project folder can move with its data.
    shown = Path(os.path.relpath(data_path, root)).as_posix()
    suggestions = dataclasses.replace(suggestions, path=shown)
    return Workspace.create(
        root,
        name,
        task=task,
        target=target,
        positive_class=positive_class,
        suggestions=suggestions,
        problem=problem,
        owner=owner,
        force=force,
    )


def check_target_choice(suggestions: DataSuggestions) -> None:
    """Refuse to guess the target: unless the scan is sure of its choice, the candidates are
    listed, likeliest first, with their reasons.

    Raises
    ------
    ParameterError
        No candidate, or none the scan is sure of (about ``target``).
    """
    choice = suggestions.target
    if choice is not None and choice.sure:
        return
    if not suggestions.ranking:
        raise ParameterError(
            "target",
            f"no column of {suggestions.path} can be the target (every one is an id, a time, "
            "personal data, or has a single value); give it with {param} COLUMN",
        )
    listed = "; ".join(f"{c.name} ({c.reason})" for c in suggestions.ranking[:6])
    more = len(suggestions.ranking) - 6
    raise ParameterError(
        "target",
        f"no column of {suggestions.path} is clearly the target (no name says so); "
        f"candidates, likeliest first: {listed}"
        + (f"; and {more} more" if more > 0 else "")
        + "; give it with {param} COLUMN",
    )
