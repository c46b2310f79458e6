"""Reading annotation files: CSV / JSONL (one label per row) and Label Studio JSON exports
(tasks annotated by several people), and checking them against the items and classes.

Nothing is dropped silently: unknown items, labels outside the class set and duplicate
(item, annotator) pairs are counted with examples; the caller refuses the file or, when asked,
imports the rest and records what was skipped.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplan.core import DELIMITERS
from mlplan.errors import DataError

__all__ = ["AnnotationFile", "AnnotationRow", "ImportCheck", "check_rows", "read_annotations"]

_ID_KEYS = ("item_id", "item", "id")
_TIME_KEYS = ("seconds", "time_spent", "lead_time", "duration")
_WHEN_KEYS = ("labeled_at", "timestamp", "created_at", "time")


@dataclass(frozen=True)
class AnnotationRow:
    """One label from a file, with where it came from (for messages)."""

    item_id: str
    annotator: str
    label: str
    where: str
    labeled_at: dt.datetime | None = None
    seconds: float | None = None


def _first(row: dict[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        if row.get(key) not in (None, ""):
            return row[key]
    return None


def _when(value: Any, where: str) -> dt.datetime | None:
    if value in (None, ""):
        return None
    try:
        stamp = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise DataError(
            f"{where}: timestamp {value!r} is not ISO 8601 (e.g. 2026-11-28T10:00:00Z)"
        ) from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def _seconds(value: Any, where: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: time spent {value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise DataError(f"{where}: time spent {value!r} must be a number of seconds >= 0")
    return seconds


def _from_record(row: dict[str, Any], where: str, *, blank_ok: bool = False) -> AnnotationRow:
    item = _first(row, _ID_KEYS)
    if blank_ok and row.get("label") in (None, "") and item not in (None, ""):
        return AnnotationRow(str(item), str(row.get("annotator") or ""), "", where)
    missing = [
        k
        for k, v in (
            ("item_id", item),
            ("annotator", row.get("annotator")),
            ("label", row.get("label")),
        )
        if v in (None, "")
    ]
    if missing:
        raise DataError(
            f"{where}: missing {', '.join(missing)}; each row needs item_id, annotator and label"
        )
    return AnnotationRow(
        str(item),
        str(row["annotator"]),
        str(row["label"]),
        where,
        _when(_first(row, _WHEN_KEYS), where),
        _seconds(_first(row, _TIME_KEYS), where),
    )


def _annotator(who: Any) -> str | None:
    """Label Studio's user as an annotator name: its id, never its e-mail address (personal
    data has no business in the agreement tables)."""
    if isinstance(who, dict):
        ident = next((who[k] for k in ("username", "id") if who.get(k) not in (None, "")), None)
        if ident is None and who.get("email"):
            ident = "user-" + hashlib.sha256(str(who["email"]).encode()).hexdigest()[:10]
        who = ident
    return None if who in (None, "") else str(who)


def _label_studio(tasks: Any, path: Path) -> list[AnnotationRow]:
    if not isinstance(tasks, list):
        raise DataError(
            f"{path}: a Label Studio export is a JSON list of tasks; got {type(tasks).__name__}"
        )
    return [row for position, task in enumerate(tasks) for row in _task(task, position, path)]


def _task(task: Any, position: int, path: Path) -> list[AnnotationRow]:
    """The labels of one Label Studio task (cancelled annotations left out)."""
    task_id = task.get("id", f"#{position}") if isinstance(task, dict) else f"#{position}"
    where = f"{path}: task {task_id}"
    if not isinstance(task, dict):
        raise DataError(f"{where}: is not a JSON object")
    data = task.get("data")
    if not isinstance(data, dict) or data.get("item_id") in (None, ""):
        raise DataError(
            f"{where}: missing field data.item_id (export the batch with "
            "mlplan labels export --format labelstudio, which sets it)"
        )
    annotations = task.get("annotations")
    if not isinstance(annotations, list):
        raise DataError(f"{where}: missing field annotations")
    rows = []
    for n, annotation in enumerate(annotations):
        spot = f"{where} annotations[{n}]"
        if not isinstance(annotation, dict):
            raise DataError(f"{spot}: is not a JSON object")
        if not annotation.get("was_cancelled"):
            rows.append(_annotation(annotation, str(data["item_id"]), spot))
    return rows


def _annotation(annotation: dict[str, Any], item_id: str, spot: str) -> AnnotationRow:
    """One Label Studio annotation: who chose which one class."""
    who = _annotator(annotation.get("completed_by"))
    if who is None:
        raise DataError(f"{spot}: missing field completed_by")
    results = annotation.get("result")
    if not isinstance(results, list):
        raise DataError(f"{spot}: missing field result")
    chosen: list[str] = []
    for result in results:
        value = result.get("value") if isinstance(result, dict) else None
        if isinstance(value, dict) and result.get("type") == "choices":
            chosen += [str(c) for c in value.get("choices") or []]
    if not chosen:
        raise DataError(f"{spot}: missing field result[].value.choices (no class was chosen)")
    if len(set(chosen)) > 1:
        raise DataError(
            f"{spot}: several classes chosen ({', '.join(chosen)}); each annotation must choose one"
        )
    return AnnotationRow(
        item_id,
        str(who),
        str(chosen[0]),
        spot,
        _when(annotation.get("created_at"), spot),
        _seconds(annotation.get("lead_time"), spot),
    )


@dataclass(frozen=True)
class AnnotationFile:
    """The labels read from a file, and its format (``csv``, ``jsonl`` or ``labelstudio``)."""

    format: str
    rows: list[AnnotationRow]


def read_annotations(path: str | Path) -> AnnotationFile:
    """Read an annotation file: its format and its rows.

    Raises
    ------
    DataError
        Unreadable file, or a row / task missing a field (named, with its line or task id).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            tasks = json.loads(path.read_text(encoding="utf-8-sig"))
            return AnnotationFile("labelstudio", _label_studio(tasks, path))
        if suffix in {".jsonl", ".ndjson"}:
            return AnnotationFile("jsonl", _read_jsonl(path))
        if suffix in {".csv", ".tsv"}:
            return AnnotationFile("csv", _read_csv(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    raise DataError(
        f"{path}: cannot tell the format from {suffix!r}; use .csv, .tsv, .jsonl "
        "or a Label Studio .json export"
    )


def _read_jsonl(path: Path) -> list[AnnotationRow]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{number}: each line must be a JSON object")
            rows.append(_from_record(record, f"{path}:{number}"))
    return rows


def _read_csv(path: Path) -> list[AnnotationRow]:
    """The rows of a CSV or TSV label file, split on the delimiter whose header holds the label
    columns. A row with too few or too many fields, or a quote never closed, is refused with
    its line; rows with nothing in them (a spreadsheet's trailing ones) are skipped."""
    # utf-8-sig: spreadsheets save "CSV UTF-8" with a byte-order mark
    with path.open(newline="", encoding="utf-8-sig") as fh:
        text = fh.read()
    delimiter = _label_delimiter(path, text)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    rows: list[AnnotationRow] = []
    start = 1
    try:
        header = next(reader, [])
        start = reader.line_num + 1
        for record in reader:
            if any(value.strip() for value in record):
                if len(record) != len(header):
                    raise DataError(
                        f"{path}:{start}: row has {len(record)} fields, the header has "
                        f"{len(header)}; fix the row (quote a value that holds {delimiter!r}) "
                        "and import the file again"
                    )
                # Rows left blank (a batch row nobody labeled) are kept, to be counted.
                record_map = dict(zip(header, record, strict=True))
                rows.append(_from_record(record_map, f"{path}:{start}", blank_ok=True))
            start = reader.line_num + 1
    except csv.Error as exc:
        if str(exc) == "unexpected end of data":
            raise DataError(
                f"{path}:{start}: a quote opened on this line is never closed, so every line "
                "after it would be read as one value; close it and import the file again"
            ) from None
        raise DataError(
            f"{path}:{reader.line_num}: not valid CSV ({exc}); a quote inside a quoted value "
            'is written twice ("")'
        ) from None
    return rows


def _label_delimiter(path: Path, text: str) -> str:
    """The delimiter that splits the header into the label columns (item_id, annotator and
    label), trying the file's own kind first."""
    first = text.split("\n", 1)[0].rstrip("\r")
    order = sorted(DELIMITERS, key=lambda d: d != ("\t" if path.suffix.lower() == ".tsv" else ","))
    for delimiter in order:
        header = next(csv.reader([first], delimiter=delimiter), [])
        if any(k in header for k in _ID_KEYS) and "annotator" in header and "label" in header:
            return delimiter
    got = next(csv.reader([first], delimiter=order[0]), [])
    raise DataError(
        f"{path}:1: the header needs item_id, annotator and label "
        f"columns; got {', '.join(got) or 'none'}"
    )


@dataclass
class ImportCheck:
    """What a file holds against the dataset: good rows, and every problem with examples."""

    good: list[AnnotationRow] = field(default_factory=list)
    unknown_items: list[AnnotationRow] = field(default_factory=list)
    bad_labels: list[AnnotationRow] = field(default_factory=list)
    duplicates: list[AnnotationRow] = field(default_factory=list)
    already_stored: list[AnnotationRow] = field(default_factory=list)
    blank: list[AnnotationRow] = field(default_factory=list)

    @property
    def problems(self) -> dict[str, list[AnnotationRow]]:
        """Problem kind → the rows with it."""
        return {
            k: v
            for k, v in (
                ("unknown item ids", self.unknown_items),
                ("labels outside the class set", self.bad_labels),
                ("duplicate (item, annotator) pairs in the file", self.duplicates),
                ("(item, annotator) pairs already imported", self.already_stored),
            )
            if v
        }

    def counts(self) -> dict[str, int]:
        """Row counts per outcome."""
        return {
            "imported": len(self.good),
            "unknown_items": len(self.unknown_items),
            "bad_labels": len(self.bad_labels),
            "duplicates": len(self.duplicates),
            "already_stored": len(self.already_stored),
            "blank": len(self.blank),
        }

    def describe(self) -> str:
        """One line per problem: its count and up to three examples."""
        lines = []
        for kind, rows in self.problems.items():
            examples = "; ".join(
                f"{r.where} (item {r.item_id!r}, annotator {r.annotator!r}, label {r.label!r})"
                for r in rows[:3]
            )
            lines.append(f"{len(rows):,} {kind}, e.g. {examples}")
        if self.blank:
            lines.append(
                f"{len(self.blank):,} rows left blank (not labeled yet), e.g. "
                + "; ".join(r.where for r in self.blank[:3])
            )
        return "\n".join(lines)


def check_rows(
    rows: list[AnnotationRow],
    *,
    items: set[str],
    classes: set[str] | None,
    stored: set[tuple[str, str]],
) -> ImportCheck:
    """Sort rows into good ones and problems (``classes`` None: any label is allowed)."""
    check = ImportCheck()
    seen = Counter((r.item_id, r.annotator) for r in rows if r.label != "")
    for row in rows:
        key = (row.item_id, row.annotator)
        if row.label == "":
            check.blank.append(row)
        elif row.item_id not in items:
            check.unknown_items.append(row)
        elif classes is not None and row.label not in classes:
            check.bad_labels.append(row)
        elif seen[key] > 1:
            check.duplicates.append(row)
        elif key in stored:
            check.already_stored.append(row)
        else:
            check.good.append(row)
    return check
