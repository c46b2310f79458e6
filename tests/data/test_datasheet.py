"""Datasheets: a registered version rendered as metadata rows, column rows and Markdown."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from tests.conftest import ok, write_csv

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


def test_describe_amends_the_datasheet_and_completes_lineage(cli: Any) -> None:
    ok(cli("data", "add", "customers"))
    before = json.loads(ok(cli("status", "--json")).stdout)
    lineage_item = next(i for i in before["items"] if i["id"] == "data.lineage")
    assert lineage_item["state"] == "missing"
    assert "mlplan data describe customers@1 --source TEXT" in lineage_item["next"]
    described = json.loads(
        ok(
            cli(
                "data",
                "describe",
                "customers",
                "--source",
                "CRM",
                "--license",
                "internal",
                "--json",
            )
        ).stdout
    )
    assert described["metadata"]["source"] == "CRM"
    after = json.loads(ok(cli("status", "--json")).stdout)
    assert next(i for i in after["items"] if i["id"] == "data.lineage")["state"] == "done"
    graph = json.loads(ok(cli("lineage", "customers@1", "--json")).stdout)
    assert [r["job"] for r in graph["downstream"]] == ["data describe"]
    nothing = cli("data", "describe", "customers")
    assert nothing.exit_code == 2 and "give at least one field" in nothing.stderr


def test_plan_changes_reach_registered_versions(cli: Any, project_dir: Path) -> None:
    ok(cli("data", "add", "customers"))
    plan = project_dir / "mlplan.yaml"
    plan.write_text(plan.read_text().replace("    license: null", "    license: CC-BY-4.0"))
    shown = json.loads(ok(cli("data", "show", "customers", "--json")).stdout)
    assert shown["datasheet"]["license"] == "CC-BY-4.0"
