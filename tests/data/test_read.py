"""Reading data files: formats, and errors that name the file, the line and what to do."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from mlplan.data import (
    ContentHash,
    content_hash,
    detect_format,
    list_images,
    read_table,
    sniff_decimal,
    sniff_delimiter,
)
from mlplan.errors import DataError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.csv", "csv"),
        ("a.CSV", "csv"),
        ("a.tsv", "csv"),
        ("a.parquet", "parquet"),
        ("a.pq", "parquet"),
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
    ],
    ids=lambda v: str(v),
)
def test_detect_format_from_suffix(tmp_path: Path, name: str, fmt: str) -> None:
    assert detect_format(_write(tmp_path / name, "x\n1\n")) == fmt


def test_detect_format_prefers_the_declared_format(tmp_path: Path) -> None:
    assert detect_format(_write(tmp_path / "export.txt", "x\n1\n"), "csv") == "csv"


def test_detect_format_of_a_folder_is_images(tmp_path: Path) -> None:
    assert detect_format(tmp_path) == "images"
    assert detect_format(tmp_path, "images") == "images"


def test_folder_declared_as_a_table_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"is a folder, but the plan says format 'csv'"):
        detect_format(tmp_path, "csv")


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=rf"^{re.escape(str(missing))}: no such file or folder"):
        detect_format(missing)


def test_unknown_suffix_lists_the_known_ones(tmp_path: Path) -> None:
    path = _write(tmp_path / "data.xlsx", "x")
    with pytest.raises(
        DataError,
        match=r"cannot tell the format from the suffix '\.xlsx'; expected one of "
        r"\.csv, \.jsonl, \.ndjson, \.parquet, \.pq, \.tsv, a folder of images, or 'format:'",
    ):
        detect_format(path)


def test_csv_reads_types_and_empty_strings_as_missing(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.csv", "id,name,score\n1,ann,0.5\n2,,1.5\n3,cy,\n")
    table = read_table(path, "csv")
    assert table.column_names == ["id", "name", "score"]
    assert table.schema.types == [pa.int64(), pa.string(), pa.float64()]
    assert table.column("name").to_pylist() == ["ann", None, "cy"]
    assert table.column("score").null_count == 1


def test_tsv_is_split_on_tabs(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.tsv", "id\tnote\n1\tred, green\n2\tblue\n")
    table = read_table(path, "csv")
    assert table.to_pydict() == {"id": [1, 2], "note": ["red, green", "blue"]}


@pytest.mark.parametrize(
    ("text", "where", "detail"),
    [
        ("a,b\n1,2\n3\n4,5\n", ":3", r"row has 1 fields, the header has 2\. Fix the file"),
        ("a,b\n1,2\n3,4\n5,6,7\n8\n", ":4", r"row has 3 fields, the header has 2 \(1 more ragged"),
    ],
    ids=["short-row", "long-row-then-short"],
)
def test_ragged_csv_row_names_file_and_line(
    tmp_path: Path, text: str, where: str, detail: str
) -> None:
    path = _write(tmp_path / "customers.csv", text)
    with pytest.raises(DataError, match=rf"customers\.csv{where}: {detail}"):
        read_table(path, "csv")


def test_ragged_row_deep_in_a_large_csv_names_its_line(tmp_path: Path) -> None:
    # Large enough for the multi-threaded reader, which does not know line numbers.
    lines = ["a,b", *(f"{i},{i}" for i in range(200_000))]
    lines[150_001] = "oops"
    path = _write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"big\.csv:150002: row has 1 fields"):
        read_table(path, "csv")


def test_ragged_row_after_a_multiline_field_names_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "notes.csv", 'a,b\n"two\nlines",2\n3\n')  # line 4 is ragged
    with pytest.raises(DataError, match=r"notes\.csv:4: row has 1 fields"):
        read_table(path, "csv")


# -- quotes never closed --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        # The open quote is in the last field: the row count looked right and rows vanished.
        ('id,score,city\n1,2,Oslo\n2,3,"Bergen\n3,4,Rome\n4,5,Nice\n', 3),
        # In an earlier field: the swallowed row is short, and was blamed on the last line.
        ('id,city,score\n1,Oslo,2\n2,"Bergen,3\n3,Rome,4\n4,Nice,5\n', 3),
        ('id,score,city\n1,2,Oslo\n2,3,"Bergen', 3),  # no line break at the end
        ('id,score,city\r\n1,2,"two\r\nlines"\r\n2,3,"Bergen\r\n3,4,Rome\r\n', 4),
        ('id,score,city\n1,2,"say ""hi"" \n2,3,Oslo\n', 2),  # doubled quotes inside
    ],
    ids=["last-field", "middle-field", "no-final-newline", "crlf-after-multiline", "doubled"],
)
def test_a_quote_never_closed_is_refused_with_its_line(
    tmp_path: Path, text: str, line: int
) -> None:
    path = _write(tmp_path / "cities.csv", text)
    with pytest.raises(
        DataError,
        match=rf"cities\.csv:{line}: a quote opened on this line is never closed, so every line "
        r"after it would be read as one value\. Close it \(a quote inside a quoted value is "
        r'written twice: ""\)',
    ):
        read_table(path, "csv")


def test_a_quote_never_closed_early_in_a_large_file_names_its_line(tmp_path: Path) -> None:
    # Read in parallel blocks, this file gave 922 of its 50,000 rows, with no error.
    lines = ["id,city,n", *(f"{i},town {i},{i}" for i in range(50_000))]
    lines[100] = '99,"Bergen,3'
    path = _write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"big\.csv:101: a quote opened on this line is never"):
        read_table(path, "csv")


def test_a_quote_never_closed_at_the_end_of_a_large_file_names_its_line(tmp_path: Path) -> None:
    lines = ["id,city", *(f"{i},town {i}" for i in range(200_000)), '200000,"Bergen', "200001,x"]
    path = _write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"big\.csv:200002: a quote opened on this line"):
        read_table(path, "csv")


@pytest.mark.parametrize("rows", [300, 50_000], ids=["small", "large"])
def test_a_quote_left_open_that_a_later_line_closes_is_refused_with_its_line(
    tmp_path: Path, rows: int
) -> None:
    # The next line's quote closed it: two records became one, silently (300 -> 299 rows).
    rng = np.random.default_rng(1)
    lines = ["id,name,x,y"] + [
        f'{i},"n{i}",{rng.normal():.3f},{rng.choice(["a", "b"])}' for i in range(rows)
    ]
    lines[101] = '100,"broken name,0.5,a'
    path = _write(tmp_path / "quote.csv", "\n".join(lines) + "\n")
    with pytest.raises(
        DataError,
        match=r"quote\.csv:102: a quote opened in the record on this line closes on line 103 "
        r"with text right after it, not ',' \(comma\) or the line's end: a quote left open "
        r"merges the lines between into one record\. Close the quote on its line",
    ):
        read_table(path, "csv")


@pytest.mark.parametrize(
    ("text", "last"),
    [
        ('id,note\n1,a\n2,"two\nlines"\n', "two\nlines"),
        ('id,note\n1,"a\n""b"", c"\n2,"two\n\nlines"\n', "two\n\nlines"),
        ('id,note\n1,a\n2,"say ""hi"""\n', 'say "hi"'),
        ('id,note\n1,a\n2,5" screen\n', '5" screen'),  # a stray quote inside a value
        ('id,note\n1,a\n2,"closed"', "closed"),
    ],
    ids=["multiline", "multiline-doubled", "doubled-quotes", "stray-quote", "closed-at-eof"],
)
def test_quoted_values_that_are_closed_are_read(tmp_path: Path, text: str, last: str) -> None:
    table = read_table(_write(tmp_path / "notes.csv", text), "csv")
    assert (table.num_rows, table.column("note")[-1].as_py()) == (2, last)


def test_values_spanning_lines_in_a_large_file_are_all_read(tmp_path: Path) -> None:
    # Read in parallel blocks, such a file made the reader fail ("out of sync with chunker").
    lines = [
        "id,note",
        *(f'{i},"line one\nline two"' if i % 7 == 0 else f"{i},x" for i in range(60_000)),
    ]
    table = read_table(_write(tmp_path / "notes.csv", "\n".join(lines) + "\n"), "csv")
    assert table.num_rows == 60_000
    assert table.column("note")[7].as_py() == "line one\nline two"


@pytest.mark.parametrize(
    "text",
    ["a,b\n1,2\n3,4\n\n\n", "a,b\r\n1,2\r\n\r\n3,4\r\n", "a,b\n1,2\n3,4"],
    ids=["blank-lines-at-the-end", "blank-line-inside-crlf", "no-final-line-break"],
)
def test_blank_lines_are_no_rows(tmp_path: Path, text: str) -> None:
    table = read_table(_write(tmp_path / "a.csv", text), "csv")
    assert table.to_pydict() == {"a": [1, 3], "b": [2, 4]}


# -- delimiters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "delimiter"),
    [
        ("prices.csv", "item;price;category\nbread;2,50;food\nsoap;1,10;home\n", ";"),
        ("prices.csv", "item\tprice\tcategory\nbread\t2.50\tfood\nsoap\t1.10\thome\n", "\t"),
        ("prices.txt", "item|price|category\nbread|2.50|food\nsoap|1.10|home\n", "|"),
        ("prices.csv", 'item,price,category\nbread,2.50,"food; fresh"\nsoap,1.10,home\n', ","),
        ("prices.tsv", "item\tprice\tcategory\nbread\t2.50\tfood\nsoap\t1.10\thome\n", "\t"),
        ("prices.csv", "\ufeffitem;price;category\nbread;2,50;food\n", ";"),
    ],
    ids=[
        "semicolon-decimal-comma",
        "tab-in-csv",
        "pipe",
        "comma-with-semicolon-text",
        "tsv",
        "bom",
    ],
)
def test_the_delimiter_is_found_and_the_fields_split_on_it(
    tmp_path: Path, name: str, text: str, delimiter: str
) -> None:
    path = _write(tmp_path / name, text)
    assert sniff_delimiter(path) == delimiter
    table = read_table(path, "csv")
    assert table.column_names == ["item", "price", "category"]
    assert table.column("item").to_pylist()[0] == "bread"


def test_a_ragged_row_in_a_semicolon_file_is_still_split_on_semicolons(tmp_path: Path) -> None:
    rows = [f"{i};{i}.5;x" for i in range(30)]
    rows[20] = "20;20.5"
    path = _write(tmp_path / "m.csv", "a;b;c\n" + "\n".join(rows) + "\n")
    with pytest.raises(
        DataError,
        match=r"m\.csv:22: row has 2 fields, the header has 3 \(fields split on ';' "
        r"\(semicolon\)\)\. Fix the file",
    ):
        read_table(path, "csv")


def test_one_column_is_comma_separated(tmp_path: Path) -> None:
    path = _write(tmp_path / "one.csv", "score\n1\n2\n")
    assert sniff_delimiter(path) == ","
    assert read_table(path, "csv").column_names == ["score"]


def test_two_delimiters_that_fit_alike_are_named_and_the_parameter_too(tmp_path: Path) -> None:
    path = _write(tmp_path / "odd.csv", "a|b,c|d\n1|2,3|4\n5|6,7|8\n")
    with pytest.raises(
        DataError,
        match=r"odd\.csv: cannot tell which delimiter separates the fields: ',' \(comma\) and "
        r"'\|' \(pipe\) each split the header and the lines after it into as many fields\. "
        r"Name it with 'delimiter'",
    ) as raised:
        read_table(path, "csv")
    assert raised.value.params == ("delimiter",)
    assert read_table(path, "csv", delimiter="|").column_names == ["a", "b,c", "d"]


def test_csv_with_header_only_has_no_rows(tmp_path: Path) -> None:
    path = _write(tmp_path / "empty.csv", "id,name\n")
    with pytest.raises(
        DataError, match=r"empty\.csv: has columns \(id, name\) but no rows; a dataset needs"
    ):
        read_table(path, "csv")


def test_empty_csv_file_cannot_be_read(tmp_path: Path) -> None:
    path = _write(tmp_path / "blank.csv", "")
    with pytest.raises(DataError, match=r"blank\.csv: cannot be read as csv: Empty CSV file"):
        read_table(path, "csv")


def test_duplicate_column_names_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "dup.csv", "a,b,a,c,b\n1,2,3,4,5\n")
    with pytest.raises(DataError, match=r"dup\.csv: column names repeat: a, b; rename them"):
        read_table(path, "csv")


def test_parquet_reads_strings_dictionary_encoded(tmp_path: Path) -> None:
    table = pa.table({"x": [1.5, None, 3.0], "s": ["a", "b", "a"]})
    pq.write_table(table, tmp_path / "t.parquet")
    read = read_table(tmp_path / "t.parquet", "parquet")
    assert read.column_names == ["x", "s"]
    assert read.column("x").to_pylist() == [1.5, None, 3.0]
    assert pa.types.is_dictionary(read.schema.field("s").type)
    assert read.column("s").to_pylist() == ["a", "b", "a"]


def test_jsonl_reads_one_object_per_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", '{"a": 1, "b": "x"}\n{"a": 2, "b": null}\n')
    assert read_table(path, "jsonl").to_pydict() == {"a": [1, 2], "b": ["x", None]}


def test_malformed_jsonl_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", '{"a": 1}\n{"a": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl: cannot be read as jsonl: JSON parse error"):
        read_table(path, "jsonl")


def test_csv_content_read_as_parquet_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "fake.parquet", "a,b\n1,2\n")
    with pytest.raises(DataError, match=r"fake\.parquet: cannot be read as parquet: "):
        read_table(path, "parquet")


def test_image_folder_is_not_a_table(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"is an image folder, not a table"):
        read_table(tmp_path, "images")


def test_content_hash_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "a.csv"
    pcsv.write_csv(pa.table({"x": [1, 2]}), path)
    data = path.read_bytes()
    found = content_hash(path, "csv")
    assert found == ContentHash(hashlib.sha256(data).hexdigest(), len(data))
    assert found.to_dict() == {"sha256": found.sha256, "size_bytes": len(data)}


def test_list_images_wants_class_subfolders(tmp_path: Path) -> None:
    (tmp_path / "loose.png").write_bytes(b"x")  # not in a class folder: ignored
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"no images found\. An image dataset is a folder with one"):
        list_images(tmp_path)
    (tmp_path / "cat" / "b.PNG").write_bytes(b"x")
    (tmp_path / "cat" / "a.jpg").write_bytes(b"x")
    assert [(i.relative, i.label) for i in list_images(tmp_path)] == [
        ("cat/a.jpg", "cat"),
        ("cat/b.PNG", "cat"),
    ]


@pytest.mark.parametrize(
    ("text", "delimiter", "decimal"),
    [
        ("a;b;y\n4,36;1;ja\n-0,5;2;nein\n3;;ja\n", ";", ","),
        ("a;b;y\n4.36;1;ja\n-0.5;2;nein\n", ";", "."),
        ('a,b\n"4,36",1\n', ",", "."),  # a comma file keeps the decimal point
        ("a;b\n4,36;1.5\n", ";", "."),  # both marks: the columns disagree, nothing changes
        ("a;b\n4,36;x\n1;1,2,3\n", ";", ","),
        ("a\tb\n1,000\tx\n2,500\ty\n", "\t", "."),  # thousands, or decimals? left as text
    ],
    ids=["comma", "point", "comma-file", "both", "list-is-text", "thousands"],
)
def test_the_decimal_mark_is_found_from_the_numbers(
    tmp_path: Path, text: str, delimiter: str, decimal: str
) -> None:
    path = _write(tmp_path / "m.csv", text)
    assert sniff_decimal(path, delimiter) == decimal
    table = read_table(path, "csv", delimiter=delimiter, decimal=decimal)
    if decimal == ",":
        assert table.column("a").to_pylist()[:2] in ([4.36, -0.5], [4.36, 1.0])


def test_a_streamed_csv_whose_column_types_change_after_the_first_block_reads_as_a_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream takes its types from the first block; a column that turns float, text or
    non-empty later is read again as the wider type, so the types and every value agree with
    reading the file whole."""
    import mlplan.data._read as reading
    from mlplan.data import Profiler, scan_table

    monkeypatch.setattr(reading, "_CSV_BLOCK", 4096)
    monkeypatch.setattr(reading, "_CSV_SAMPLE", 4096)
    monkeypatch.setattr(reading, "_GROUP_ROWS", 500)
    lines = ["id,ratio,code,late,day,flag"] + [f"{i},{i},{i % 7},,," for i in range(3_000)]
    lines += ["3000,1.5,x7,,2024-02-01,true", "3001,2,8,4.25,2024-02-03,false"]
    path = tmp_path / "late.csv"
    path.write_text("\n".join(lines) + "\n")
    profilers: list[Profiler] = []

    def start(schema: pa.Schema) -> Any:
        profilers.append(Profiler(schema))
        return profilers[-1].add

    scanned = scan_table(path, "csv", start)
    whole = read_table(path, "csv")
    profile = profilers[-1].finish()
    assert scanned.rows == whole.num_rows == 3_002
    assert (
        [profile["columns"][c]["type"] for c in whole.column_names]
        == [str(t) for t in whole.schema.types]
        == ["int64", "double", "string", "double", "date32[day]", "bool"]
    )
    assert profile["columns"]["code"]["distinct"] == 9
    assert profile["columns"]["late"]["count"] == 1 and profile["columns"]["late"]["max"] == 4.25
    assert len(profilers) > 1  # read again after widening


def test_a_read_abandoned_while_batches_wait_stops_its_reader_thread() -> None:
    """A caller that stops (an error, Ctrl-C) while the read-ahead queue is full and the
    reader is about to say it is done must not wait for it forever."""
    import threading

    from mlplan.data._read import _read_ahead

    exhausted = threading.Event()

    def batches() -> Any:
        yield from range(3)
        exhausted.set()  # the reader now queues its end, the queue full of waiting batches

    ahead = _read_ahead(batches())
    assert next(ahead) == 0
    assert exhausted.wait(timeout=30)
    closing = threading.Thread(target=ahead.close)
    closing.start()
    closing.join(timeout=30)
    assert not closing.is_alive()


def test_a_jsonl_field_that_starts_late_or_turns_decimal_is_profiled_as_it_is_read(
    tmp_path: Path,
) -> None:
    from mlplan.data import Profiler, scan_table

    path = tmp_path / "late.jsonl"
    lines = [f'{{"id": {i}, "x": null, "n": {i}}}' for i in range(40_000)]
    lines += [f'{{"id": {i}, "x": {i}, "n": {i}.5}}' for i in range(40_000, 41_000)]
    path.write_text("\n".join(lines) + "\n")
    profilers: list[Profiler] = []

    def start(schema: pa.Schema) -> Any:
        profilers.append(Profiler(schema))
        return profilers[-1].add

    assert scan_table(path, "jsonl", start).rows == 41_000
    columns = profilers[-1].finish()["columns"]
    assert columns["x"]["count"] == 1_000 and columns["x"]["max"] == 40_999
    assert columns["n"]["type"] == "double" and columns["n"]["max"] == 40_999.5
