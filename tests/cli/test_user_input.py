"""What the user types is taken as typed: text with markup is printed as text, a path in
any spelling names the same file; and reading the status creates nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
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


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["data", "split", "--bogus"],
            "error: No such option: --bogus (see mlplan data split --help)",
        ),
        (["nosuch"], "error: No such command 'nosuch'. (see mlplan --help)"),
        (["data", "add"], "error: Missing argument 'name'. (see mlplan data add --help)"),
    ],
    ids=["unknown option", "unknown command", "missing argument"],
)
def test_a_malformed_command_line_is_one_red_line(cli: Any, args: list[str], line: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr.strip() == line


def test_a_store_that_does_not_answer_is_one_error_not_one_per_item(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPLAN_STORE_URL", "postgresql://u:secret@127.0.0.1:1/nowhere")
    result = cli("status")
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot connect to the store at postgresql://u:***@127.0.0.1:1")
    assert "secret" not in result.stderr and result.stdout == ""
