"""Datasheets: a registered version rendered as metadata rows, column rows and Markdown."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from tests.conftest import write_csv

from mlplan.data import (
    column_rows,
    datasheet_markdown,
    format_value,
    metadata_rows,
    register_dataset,
)
from mlplan.workspace import Workspace


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "—"),
        (True, "true"),
        (1234567, "1,234,567"),
        (2.0, "2"),
        (3.14159, "3.142"),
        (0.000012, "1.2e-05"),
        (105999.5, "105,999.5"),
        (0.0, "0"),
        ("text", "text"),
    ],
    ids=repr,
)
def test_format_value(value: object, shown: str) -> None:
    assert format_value(value) == shown


def test_metadata_rows_say_what_is_not_stated(sqlite_ws: Workspace) -> None:
    info = register_dataset(sqlite_ws, "customers", sensitive_attributes=[]).version
    rows = dict(metadata_rows(info))
    assert rows["Source"] == "— (not stated)"
    assert rows["Collected"] == "— (not stated)"
    assert rows["PII columns"] == "name, email"
    assert rows["Sensitive attributes"] == "none"  # [] states there are none
    assert rows["Labeling"] == "in-house"
    assert rows["Role"] == "training"
    assert rows["File"] == f"data/customers.csv (csv, {info.size_bytes:,} bytes)"
    assert rows["Content sha256"] == info.content_hash


def test_collection_period_without_an_end_is_ongoing(sqlite_ws: Workspace) -> None:
    info = register_dataset(sqlite_ws, "customers", collected=(dt.date(2025, 1, 1), None)).version
    assert dict(metadata_rows(info))["Collected"] == "2025-01-01 – ongoing"


def test_column_rows_summarise_each_kind(sqlite_ws: Workspace) -> None:
    info = register_dataset(sqlite_ws, "customers").version
    rows = {r["column"]: r for r in column_rows(info)}
    assert list(rows) == info.column_names
    assert rows["age"]["summary"].startswith("min 18, median ")
    assert rows["region"]["summary"].startswith(("east (", "north (", "south ("))
    assert rows["email"]["summary"].startswith("length ")  # text: length first
    assert "<pii> (1)" in rows["email"]["summary"]  # redacted values stay redacted
    assert rows["charges"]["missing"].endswith("%)")


def test_markdown_datasheet(sqlite_ws: Workspace, project_dir: Path) -> None:
    table = pa.table({"churned": [0, 1, 0], "note": ["a|b", "a|b", "c"]})
    path = write_csv(table, project_dir / "data" / "notes.csv")
    info = register_dataset(sqlite_ws, "notes", path).version
    text = datasheet_markdown(info)
    assert text.startswith("# Datasheet: notes@1\n\n3 rows × 2 columns.\n")
    assert "| PII columns | — (not stated) |" in text
    assert "| note | categorical | 0 (0.0%) | 2 | a\\|b (2), c (1) |" in text
    assert "## Images" not in text
    assert text.endswith("\n")
