"""Behaviour a fresh-eyes review asked for: user text is text, reading creates nothing,
datasheets can be amended, plan expressions cannot escape, references resolve as typed."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlplan.data import profile_table


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return result


def test_user_text_is_printed_as_typed_not_as_markup(cli: Any, project_dir: Path) -> None:
    csv = project_dir / "data" / "customers.csv"
    csv.write_text(csv.read_text().replace('"region"', '"note[/b]"', 1))
    ok(cli("data", "add", "customers"))
    shown = ok(cli("data", "show", "customers")).stdout
    assert "note[/b]" in shown
    approved = ok(cli("approve", "buy_in", "--role", "business_owner", "--by", "[bold]X[/]"))
    assert "[bold]X[/]" in approved.stdout


def test_status_reads_without_creating_a_store(cli: Any, project_dir: Path) -> None:
    report = json.loads(ok(cli("status", "--json")).stdout)
    assert len(report["items"]) == 48
    assert not (project_dir / ".mlplan").exists()


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


def test_slice_filters_cannot_reach_files(cli: Any, project_dir: Path) -> None:
    ok(cli("data", "add", "customers"))
    plan = project_dir / "mlplan.yaml"
    probe = project_dir / "secret.csv"
    probe.write_text("x\n1\n")
    expression = f"age > (SELECT count(*) FROM read_csv('{probe}'))"
    plan.write_text(
        plan.read_text().replace(
            "slices: []", f'slices:\n  - {{name: sneaky, where: "{expression}"}}'
        )
    )
    result = cli("plan", "validate")
    assert result.exit_code == 2
    assert "slice 'sneaky'" in result.stderr and "Permission Error" in result.stderr


def test_lineage_takes_paths_as_typed(cli: Any, project_dir: Path) -> None:
    ok(cli("data", "add", "customers"))
    for ref in (
        "data/customers.csv",
        "./data/customers.csv",
        str(project_dir / "data" / "customers.csv"),
    ):
        graph = json.loads(ok(cli("lineage", ref, "--json")).stdout)
        assert graph["subject"]["ref"] == "data/customers.csv"


def test_stratifying_needs_classes(cli: Any) -> None:
    ok(cli("data", "add", "customers"))
    result = cli("data", "split", "customers", "--stratify", "charges")
    assert result.exit_code == 1
    assert "stratifying needs classes" in result.stderr


def test_approval_records_its_subject(cli: Any) -> None:
    record = json.loads(
        ok(
            cli(
                "approve",
                "deploy",
                "--role",
                "ml_lead",
                "--by",
                "P",
                "--subject",
                "customers@1",
                "--json",
            )
        ).stdout
    )
    assert record["subject"] == "customers@1"


def test_shared_artifact_folder(
    cli: Any, project_dir: Path, tmp_path_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path_factory.mktemp("team-artifacts")
    monkeypatch.setenv("MLPLAN_ARTIFACTS_DIR", str(shared))
    added = json.loads(ok(cli("data", "add", "customers", "--json")).stdout)
    snapshot = shared / added["snapshot_sha256"][:2] / added["snapshot_sha256"][2:]
    assert snapshot.is_file()
    assert snapshot.stat().st_mode & 0o044 == 0o044  # teammates can read it


def test_types_arrow_cannot_aggregate_are_counted(tmp_path: Path) -> None:
    table = pa.table(
        {
            "wait": pa.array([dt.timedelta(seconds=s) for s in (1, 2, 3)], pa.duration("s")),
            "tags": pa.array([["a"], ["b", "c"], None]),
            "x": [1, 2, 3],
        }
    )
    pq.write_table(table, tmp_path / "odd.parquet")
    profile = profile_table(pq.read_table(tmp_path / "odd.parquet"))
    assert profile["columns"]["wait"]["kind"] == "other"
    assert profile["columns"]["tags"] == {
        "type": "list<element: string>",
        "kind": "other",
        "count": 2,
        "missing": 1,
        "missing_ratio": 1 / 3,
        "distinct": None,
    }
    assert profile["columns"]["x"]["mean"] == 2.0
