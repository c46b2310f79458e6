"""Reading annotation files (CSV, TSV, JSONL, Label Studio JSON exports) and sorting their rows
into good ones and problems, each counted with examples."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from mlplan.errors import DataError
from mlplan.labels import AnnotationRow, check_rows, read_annotations


def _task(task_id: int, item: str, *annotations: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": task_id,
        "data": {"item_id": item, "features": {}},
        "annotations": list(annotations),
    }


def _annotation(who: Any, choice: str | None, **extra: Any) -> dict[str, Any]:
    result = [] if choice is None else [{"type": "choices", "value": {"choices": [choice]}}]
    return {"completed_by": who, "result": result, **extra}


# -- CSV, TSV, JSONL -----------------------------------------------------------------------------


def test_csv_rows_carry_item_annotator_label_time_and_where(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "batch,item_id,annotator,label,seconds,timestamp,age\n"
        "1,7,ann,1,12.5,2026-11-28T10:00:00Z,31\n"
        "1,7,bob,0,,2026-11-28 11:30:00,31\n"
        "1,8,ann,,,,40\n"  # not labeled yet: an unfilled batch row, kept to be counted
        "1,9,bob,0,3,,22\n",
        encoding="utf-8",
    )

    read = read_annotations(path)
    fmt, rows = read.format, read.rows

    assert fmt == "csv"
    assert [(r.item_id, r.annotator, r.label) for r in rows] == [
        ("7", "ann", "1"),
        ("7", "bob", "0"),
        ("8", "ann", ""),
        ("9", "bob", "0"),
    ]
    assert rows[0].where == f"{path}:2"
    assert rows[0].seconds == 12.5
    assert rows[0].labeled_at == dt.datetime(2026, 11, 28, 10, tzinfo=dt.UTC)
    assert rows[1].labeled_at == dt.datetime(2026, 11, 28, 11, 30, tzinfo=dt.UTC)  # naive: UTC
    assert rows[1].seconds is None
    assert rows[3].seconds == 3.0


def test_negative_time_spent_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("item_id,annotator,label,seconds\n1,ann,0,-3\n")
    with pytest.raises(
        DataError,
        match=r"labels\.csv:2: time spent '-3' must be a number of "
        r"seconds >= 0",
    ):
        read_annotations(path)


def test_tsv_and_the_item_column_alias(tmp_path: Path) -> None:
    path = tmp_path / "labels.tsv"
    path.write_text("item\tannotator\tlabel\ttime_spent\n3\tann\tyes\t4\n")

    read = read_annotations(path)
    fmt, rows = read.format, read.rows

    assert fmt == "csv"
    assert rows == [AnnotationRow("3", "ann", "yes", f"{path}:2", None, 4.0)]


def test_jsonl_rows(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(
        '{"item_id": 5, "annotator": "ann", "label": 1, "labeled_at": '
        '"2026-01-02T03:04:05+02:00"}\n'
        "\n"
        '{"item_id": "6", "annotator": "bob", "label": "0", "duration": 7}\n'
    )

    read = read_annotations(path)
    fmt, rows = read.format, read.rows

    assert fmt == "jsonl"
    assert [(r.item_id, r.annotator, r.label, r.where) for r in rows] == [
        ("5", "ann", "1", f"{path}:1"),
        ("6", "bob", "0", f"{path}:3"),
    ]
    assert rows[0].labeled_at == dt.datetime(
        2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))
    )
    assert rows[1].seconds == 7.0


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "labels.csv",
            "item_id,label\n1,0\n",
            r"labels\.csv:1: the header needs item_id, annotator and label columns; got "
            r"item_id, label$",
        ),
        (
            "labels.csv",
            "item_id,annotator,label\n1,ann,0\n2,,1\n",
            r"labels\.csv:3: missing annotator; each row needs item_id, annotator and label$",
        ),
        (
            "labels.csv",
            "item_id,annotator,label,timestamp\n1,ann,0,2026-11-28\n2,bob,1,yesterday\n",
            r"labels\.csv:3: timestamp 'yesterday' is not ISO 8601 "
            r"\(e\.g\. 2026-11-28T10:00:00Z\)$",
        ),
        (
            "labels.csv",
            "item_id,annotator,label,seconds\n1,ann,0,ten\n",
            r"labels\.csv:2: time spent 'ten' is not a number of seconds$",
        ),
        (
            "labels.jsonl",
            '{"item_id": 1, "annotator": "a", "label": 0}\n[1, 2]\n',
            r"labels\.jsonl:2: each line must be a JSON object$",
        ),
        (
            "labels.jsonl",
            '{"item_id": 1, "label": 0}\n',
            r"labels\.jsonl:1: missing annotator; each row needs",
        ),
        (
            "labels.json",
            '[{"id": 1,\n  "data": }]',
            r"labels\.json:2: not valid JSON: Expecting value",
        ),
        ("labels.xlsx", "whatever", r"cannot tell the format from '\.xlsx'; use \.csv, \.tsv"),
    ],
    ids=[
        "header-without-annotator",
        "row-without-annotator",
        "bad-timestamp",
        "bad-seconds",
        "jsonl-not-an-object",
        "jsonl-missing-field",
        "json-broken",
        "unknown-extension",
    ],
)
def test_malformed_files_name_the_line_and_the_problem(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)

    with pytest.raises(DataError, match=message):
        read_annotations(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Too few fields: was read as a row left blank (not labeled yet), and counted so.
        (
            "item_id,annotator,label,seconds\n1,ann,0,4\n2,ann\n3,ann,1,5\n",
            r"labels\.csv:3: row has 2 fields, the header has 4; fix the row \(quote a value "
            r"that holds ','\) and import the file again$",
        ),
        # Too many: the label "0" was read with the rest of the row dropped.
        (
            "item_id,annotator,label\n1,ann,0\n2,ann,0,1\n",
            r"labels\.csv:3: row has 4 fields, the header has 3",
        ),
        (
            'item_id,annotator,label,note\n1,ann,0,"two\nlines"\n2,ann,1\n',
            r"labels\.csv:4: row has 3 fields",  # the line the row starts on
        ),
        (
            'item_id,annotator,label,note\n1,ann,0,ok\n2,ann,1,"unclosed\n3,ann,0,x\n',
            r"labels\.csv:3: a quote opened on this line is never closed, so every line after "
            r"it would be read as one value; close it and import the file again$",
        ),
        (
            'item_id,annotator,label\n1,ann,"0"x\n',
            r"labels\.csv:2: not valid CSV \(',' expected after '\"'\); a quote inside a quoted "
            r'value is written twice \(""\)$',
        ),
    ],
    ids=["short-row", "long-row", "short-row-after-multiline", "quote-never-closed", "bad-quote"],
)
def test_a_malformed_csv_row_is_refused_with_its_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_annotations(path)


def test_empty_rows_at_the_end_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("item_id,annotator,label\n1,ann,0\n2,ann,\n,,\n\n\n")
    rows = read_annotations(path).rows
    assert [(r.item_id, r.label, r.where) for r in rows] == [
        ("1", "0", f"{path}:2"),
        ("2", "", f"{path}:3"),  # an unlabeled batch row is still counted
    ]


@pytest.mark.parametrize("delimiter", [";", "\t", "|"], ids=["semicolon", "tab", "pipe"])
def test_a_label_file_split_on_another_delimiter_is_read(tmp_path: Path, delimiter: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        delimiter.join(["item_id", "annotator", "label", "note"])
        + "\n"
        + delimiter.join(["1", "ann", "spam", "a, b"])
        + "\n"
    )
    [row] = read_annotations(path).rows
    assert (row.item_id, row.annotator, row.label) == ("1", "ann", "spam")


def test_a_broken_jsonl_line_is_named_by_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text('{"item_id": 1, "annotator": "a", "label": 0}\n{"item_id": 2,\n')

    with pytest.raises(DataError, match=r"labels\.jsonl:2: not valid JSON"):
        read_annotations(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: no such file$"):
        read_annotations(tmp_path / "nope.csv")


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes("item_id,annotator,label\n1,Zoë,0\n".encode("latin-1"))

    with pytest.raises(DataError, match=r"labels\.csv: not UTF-8 text$"):
        read_annotations(path)


def test_a_csv_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes(b"\xef\xbb\xbfitem_id,annotator,label\n1,ann,0\n")

    rows = read_annotations(path).rows

    assert [(r.item_id, r.annotator, r.label) for r in rows] == [("1", "ann", "0")]


# -- Label Studio --------------------------------------------------------------------------------


def test_label_studio_export_gives_one_row_per_annotation(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    tasks = [
        _task(
            1,
            "7",
            _annotation(
                {"id": 3, "email": "ann@example.com"},
                "1",
                lead_time=12.5,
                created_at="2026-11-28T10:00:00.123456Z",
            ),
            _annotation(4, "0"),
            _annotation(5, "1", was_cancelled=True),
        ),
        _task(2, "9", _annotation({"id": 6, "username": "bob"}, "0")),
        _task(3, "11"),  # not annotated yet
    ]
    path.write_text(json.dumps(tasks))

    read = read_annotations(path)
    fmt, rows = read.format, read.rows

    assert fmt == "labelstudio"
    assert [(r.item_id, r.annotator, r.label) for r in rows] == [
        ("7", "3", "1"),  # the user's id: an e-mail address never becomes a name
        ("7", "4", "0"),
        ("9", "bob", "0"),
    ]
    assert rows[0].seconds == 12.5
    assert rows[0].labeled_at == dt.datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=dt.UTC)
    assert rows[1].where == f"{path}: task 1 annotations[1]"


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        (
            [{"id": 17, "annotations": []}],
            r"task 17: missing field data\.item_id \(export the batch",
        ),
        (
            [{"id": 17, "data": {"item_id": ""}, "annotations": []}],
            r"task 17: missing field data\.item_id",
        ),
        ([{"id": 17, "data": {"item_id": "3"}}], r"task 17: missing field annotations$"),
        (
            [
                _task(1, "2", _annotation("ann", "0")),
                _task(17, "3", _annotation("ann", "0"), _annotation(None, "1")),
            ],
            r"task 17 annotations\[1\]: missing field completed_by$",
        ),
        (
            [_task(17, "3", _annotation("ann", None))],
            r"task 17 annotations\[0\]: missing field result\[\]\.value\.choices "
            r"\(no class was chosen\)$",
        ),
        (
            [{"data": {"item_id": "3"}}],
            r"task #0: missing field annotations$",
        ),
        (
            [_task(17, "3", _annotation("ann", "0", created_at="last week"))],
            r"task 17 annotations\[0\]: timestamp 'last week' is not ISO 8601",
        ),
        ([[1, 2]], r"task #0: is not a JSON object$"),
        ({"id": 1}, r"export\.json: a Label Studio export is a JSON list of tasks; got dict$"),
        (
            [
                {
                    "id": 5,
                    "data": {"item_id": "1"},
                    "annotations": [
                        {
                            "completed_by": 2,
                            "result": [{"type": "choices", "value": {"choices": ["0", "1"]}}],
                        }
                    ],
                }
            ],
            r"task 5 annotations\[0\]: several classes chosen",
        ),
        (
            [{"id": 6, "data": {"item_id": "1"}, "annotations": ["x"]}],
            r"task 6 annotations\[0\]: is not a JSON object",
        ),
    ],
    ids=[
        "no-data",
        "empty-item-id",
        "no-annotations",
        "no-completed-by",
        "no-choice",
        "task-without-id",
        "bad-created-at",
        "task-not-an-object",
        "not-a-list",
        "several-choices",
        "annotation-not-an-object",
    ],
)
def test_label_studio_missing_field_names_the_task_and_the_field(
    tmp_path: Path, tasks: Any, message: str
) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))

    with pytest.raises(DataError, match=message):
        read_annotations(path)


# -- checking rows against the items and classes -------------------------------------------------


def _row(item: str, annotator: str, label: str, line: int) -> AnnotationRow:
    return AnnotationRow(item, annotator, label, f"labels.csv:{line}")


def test_check_rows_sorts_every_row_into_good_or_one_problem() -> None:
    rows = [
        _row("1", "ann", "0", 2),
        _row("1", "bob", "1", 3),
        _row("999", "ann", "0", 4),
        _row("2", "ann", "maybe", 5),
        _row("3", "ann", "0", 6),
        _row("3", "ann", "1", 7),
        _row("4", "cat", "1", 8),
    ]

    check = check_rows(rows, items={"1", "2", "3", "4"}, classes={"0", "1"}, stored={("4", "cat")})

    assert check.counts() == {
        "imported": 2,
        "unknown_items": 1,
        "bad_labels": 1,
        "duplicates": 2,
        "already_stored": 1,
        "blank": 0,
    }
    assert [r.where for r in check.good] == ["labels.csv:2", "labels.csv:3"]
    assert check.describe().splitlines() == [
        "1 unknown item ids, e.g. labels.csv:4 (item '999', annotator 'ann', label '0')",
        "1 labels outside the class set, e.g. labels.csv:5 (item '2', annotator 'ann', "
        "label 'maybe')",
        "2 duplicate (item, annotator) pairs in the file, e.g. labels.csv:6 (item '3', "
        "annotator 'ann', label '0'); labels.csv:7 (item '3', annotator 'ann', label '1')",
        "1 (item, annotator) pairs already imported, e.g. labels.csv:8 (item '4', "
        "annotator 'cat', label '1')",
    ]


def test_check_rows_shows_three_examples_and_the_full_count() -> None:
    rows = [_row(f"x{i}", "ann", "0", i + 2) for i in range(1200)]

    check = check_rows(rows, items=set(), classes=None, stored=set())

    assert check.describe() == (
        "1,200 unknown item ids, e.g. labels.csv:2 (item 'x0', annotator 'ann', label '0'); "
        "labels.csv:3 (item 'x1', annotator 'ann', label '0'); "
        "labels.csv:4 (item 'x2', annotator 'ann', label '0')"
    )


def test_without_a_class_set_any_label_is_good() -> None:
    check = check_rows([_row("1", "ann", "3.75", 2)], items={"1"}, classes=None, stored=set())

    assert check.counts()["imported"] == 1
    assert check.problems == {}
    assert check.describe() == ""
