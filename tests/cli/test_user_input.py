"""What the user types is taken as typed: text with markup is printed as text, a path in
any spelling names the same file; and reading the status creates nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import ok


def test_user_text_is_printed_as_typed_not_as_markup(cli: Any, project_dir: Path) -> None:
    csv = project_dir / "data" / "customers.csv"
    csv.write_text(csv.read_text().replace('"region"', '"note[/b]"', 1))
    ok(cli("data", "add", "customers"))
    shown = ok(cli("data", "show", "customers")).stdout
    assert "note[/b]" in shown
    approved = ok(cli("approve", "buy_in", "--role", "business_owner", "--by", "[bold]X[/]"))
    assert "[bold]X[/]" in approved.stdout


def test_lineage_takes_paths_as_typed(cli: Any, project_dir: Path) -> None:
    ok(cli("data", "add", "customers"))
    for ref in (
        "data/customers.csv",
        "./data/customers.csv",
        str(project_dir / "data" / "customers.csv"),
    ):
        graph = json.loads(ok(cli("lineage", ref, "--json")).stdout)
        assert graph["subject"]["ref"] == "data/customers.csv"


def test_status_reads_without_creating_a_store(cli: Any, project_dir: Path) -> None:
    report = json.loads(ok(cli("status", "--json")).stdout)
    assert len(report["items"]) == 48
    assert not (project_dir / ".mlplan").exists()
