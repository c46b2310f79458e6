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


def test_data_add_splits_on_the_delimiter_it_finds_and_says_which(
    cli: Any, project_dir: Path
) -> None:
    csv = project_dir / "data" / "customers.csv"
    csv.write_text(csv.read_text().replace(",", ";"))
    added = ok(cli("data", "add", "customers"))
    assert "400 rows × 8 columns, fields split on ';' (semicolon)" in added.stdout
    shown = json.loads(ok(cli("data", "show", "customers", "--json")).stdout)
    assert shown["delimiter"] == ";"


def test_data_add_reads_decimal_commas_as_numbers_and_says_so(cli: Any, project_dir: Path) -> None:
    csv = project_dir / "data" / "customers.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(line.replace(",", ";").replace(".", ",") for line in lines) + "\n")
    added = ok(cli("data", "add", "customers"))
    assert "fields split on ';' (semicolon), decimal comma (4,36 is 4.36)" in added.stdout
    shown = json.loads(ok(cli("data", "show", "customers", "--json")).stdout)
    assert (shown["decimal"], shown["profile"]["columns"]["charges"]["kind"]) == (",", "numeric")


def test_data_add_asks_for_the_delimiter_when_two_fit(cli: Any, project_dir: Path) -> None:
    odd = project_dir / "data" / "odd.csv"
    odd.write_text("churned|b,c|d\n1|2,3|4\n0|6,7|8\n")
    refused = cli("data", "add", "odd", str(odd))
    assert refused.exit_code == 1
    assert refused.stderr.strip().endswith(
        "Name it with --delimiter (or datasets.odd.delimiter in mlplan.yaml)"
    )
    added = ok(cli("data", "add", "odd", str(odd), "--delimiter", "|"))
    assert "2 rows × 3 columns, fields split on '|' (pipe)" in added.stdout


def test_data_add_refuses_a_quote_never_closed_and_records_nothing(
    cli: Any, project_dir: Path
) -> None:
    csv = project_dir / "data" / "customers.csv"
    lines = csv.read_text().replace('"', "").splitlines()  # as a hand-made export writes it
    lines[397] = lines[397].replace(",", ',"', 1)  # line 398 of 401 opens a quote: "Person 397
    csv.write_text("\n".join(lines) + "\n")
    refused = cli("data", "add", "customers")
    assert refused.exit_code == 1
    assert "data/customers.csv:398: a quote opened on this line is never closed" in refused.stderr
    assert json.loads(ok(cli("data", "list", "--json")).stdout)[0]["versions"] == 0


def test_init_from_data_names_the_delimiter_option_when_two_fit(
    cli: Any, project_dir: Path
) -> None:
    odd = project_dir / "data" / "codes.csv"
    odd.write_text("sold|code,note\n" + "".join(f"{k % 2}|{k},a\n" for k in range(40)))
    new = project_dir / "new"
    args = ["init", "codes", "--from-data", str(odd), "--target", "sold", "--yes", "-p", str(new)]
    refused = cli(*args)
    assert refused.exit_code == 1
    assert refused.stderr.strip().endswith("fields. Name it with --delimiter")
    ok(cli(*args, "--delimiter", "pipe"))
    assert '    delimiter: "|"  # between the fields\n' in (new / "mlplan.yaml").read_text()
