from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ok
from typer.testing import CliRunner

from mlplan.cli import app

REPO = Path(__file__).resolve().parents[2]


def as_json(result: Any) -> Any:
    return json.loads(ok(result).stdout)


def test_version() -> None:
    from mlplan import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.stdout.strip() == f"mlplan {__version__}"


def test_init_writes_a_plan_that_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(
        app, ["init", "churn", "--task", "binary", "--target", "churned", "--yes", "--json"]
    )
    assert json.loads(ok(result).stdout)["task"] == "binary"
    again = runner.invoke(app, ["init", "churn", "--task", "binary", "--target", "y", "--yes"])
    assert again.exit_code == 2
    assert "exists already; edit it, or pass --force" in again.stderr
    validated = json.loads(ok(runner.invoke(app, ["plan", "validate", "--json"])).stdout)
    assert validated["valid"] is True
    assert not (tmp_path / ".mlplan").exists()  # validating does not create a store


def test_init_from_data_prefills_the_plan(cli: Any, project_dir: Path) -> None:
    out = as_json(
        cli(
            "init",
            "scan",
            "--from-data",
            "data/customers.csv",
            "--yes",
            "--json",
            "--project",
            "scanned",
        )
    )
    assert out["target"] == "churned" and out["task"] == "binary"
    text = (project_dir / "scanned" / "mlplan.yaml").read_text()
    assert 'path: "../data/customers.csv"' in text
    assert 'pii_columns: ["name", "email"]' in text
    assert 'id_column: "customer_id"' in text
    assert 'sensitive_attributes: ["gender", "age"]' in text


def test_init_without_task_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["init", "x", "--yes"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: give the task with --task regression|binary")


def test_invalid_plan_is_one_red_line_and_exit_2(cli: Any, project_dir: Path) -> None:
    plan = project_dir / "mlplan.yaml"
    plan.write_text(plan.read_text().replace("slices:", "slcies:"))
    result = cli("status")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert (
        "mlplan.yaml:" in result.stderr
        and "unknown key 'slcies' — did you mean 'slices'?" in result.stderr
    )
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(cli: Any, project_dir: Path) -> None:
    plan = project_dir / "mlplan.yaml"
    plan.write_text(plan.read_text().replace("slices:", "slcies:"))
    from mlplan.errors import PlanError

    with pytest.raises(PlanError):
        cli("--debug", "status")


def test_no_plan_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 2
    assert "no mlplan.yaml in" in result.stderr and "mlplan init NAME" in result.stderr


def test_data_lifecycle_through_the_cli(cli: Any, project_dir: Path) -> None:
    added = as_json(
        cli(
            "data",
            "add",
            "customers",
            "--source",
            "CRM",
            "--owner",
            "crm",
            "--license",
            "internal",
            "--collected",
            "2025-01-01:2025-12-31",
            "--json",
        )
    )
    assert added["created"] is True and added["ref"] == "customers@1"
    assert added["metadata"]["collected"] == {"start": "2025-01-01", "end": "2025-12-31"}
    same = as_json(cli("data", "add", "customers", "data/customers.csv", "--json"))
    assert same["created"] is False and same["ref"] == "customers@1"

    listed = as_json(cli("data", "list", "--json"))
    assert listed[0]["name"] == "customers" and listed[0]["versions"] == 1

    shown = as_json(cli("data", "show", "customers", "--format", "json"))
    assert shown["profile"]["columns"]["email"]["redacted"] is True
    assert "person1@example.com" not in json.dumps(shown)
    markdown = ok(cli("data", "show", "customers@1", "-f", "markdown")).stdout
    assert markdown.startswith("# Datasheet: customers@1")
    assert "| Source | CRM |" in markdown
    assert "Columns" in ok(cli("data", "show", "customers")).stdout

    csv = project_dir / "data" / "customers.csv"
    csv.write_text(csv.read_text().replace('"north"', '"northwest"'))
    assert as_json(cli("data", "add", "customers", "--json"))["ref"] == "customers@2"
    diff = as_json(cli("data", "diff", "customers@1", "customers@2", "--json"))
    region = next(s for s in diff["shifts"] if s["column"] == "region")
    assert region["flagged"] and region["new_categories"] == ["northwest"]
    assert "region" in ok(cli("data", "diff", "customers@1", "customers@2")).stdout

    split = as_json(
        cli(
            "data",
            "split",
            "customers",
            "--stratify",
            "churned",
            "--group",
            "customer_id",
            "--seed",
            "7",
            "--json",
        )
    )
    assert split["ref"] == "customers@2/s1" and split["passed"] is True
    assert [s["ref"] for s in as_json(cli("data", "splits", "--json"))] == ["customers@2/s1"]
    assert "pass" in ok(cli("data", "splits")).stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["data", "add", "customers", "nope.csv"], 1, r"nope.csv: no such file or folder"),
        (["data", "add", "customers", "bad.csv"], 1, r"bad.csv:3: row has 2 fields, the header"),
        (["data", "add", "customers", "empty.csv"], 1, r"has columns \(a, b\) but no rows"),
        (
            ["data", "add", "customers", "notarget.csv"],
            1,
            r"the plan's target 'churned' is not a column of the data \(did you mean 'churn'\?\)",
        ),
        (
            ["data", "add", "customers", "--collected", "last year"],
            2,
            r"--collected must be START\[:END\]",
        ),
        (
            ["data", "show", "custmers"],
            1,
            r"dataset 'custmers' not found \(did you mean 'customers'\?\)",
        ),
        (["data", "split", "customers", "--test", "1.5"], 2, r"--test must be in \[0, 1\)"),
        (
            ["data", "split", "customers", "--stratify", "churn"],
            1,
            r"stratify column 'churn' is not a column of the data \(did you mean 'churned'",
        ),
        (
            ["approve", "buy_in", "--role", "ml_lead", "--by", "x"],
            2,
            r"gate 'buy_in' is signed off by role 'business_owner'",
        ),
        (["lineage", "customers@9"], 1, r"no run made or read 'customers@9'"),
    ],
    ids=[
        "missing-file",
        "ragged-csv",
        "empty-csv",
        "target-not-column",
        "bad-period",
        "unknown-dataset",
        "bad-share",
        "bad-stratify",
        "wrong-role",
        "unknown-ref",
    ],
)
def test_bad_input_gets_one_clear_line(
    cli: Any, project_dir: Path, args: list[str], code: int, message: str
) -> None:
    data = project_dir
    (data / "bad.csv").write_text("a,b,churned\n1,2,0\n3,4\n")
    (data / "empty.csv").write_text("a,b\n")
    (data / "notarget.csv").write_text("a,churn\n1,0\n")
    if args[:2] != ["data", "add"]:
        ok(cli("data", "add", "customers"))
    result = cli(*args)
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    import re

    assert re.search(message, lines[0]), lines[0]


def test_failed_add_leaves_no_record(cli: Any, project_dir: Path) -> None:
    (project_dir / "notarget.csv").write_text("a,churn\n1,0\n")
    assert cli("data", "add", "customers", "notarget.csv").exit_code == 1
    assert as_json(cli("data", "list", "--json"))[0]["versions"] == 0


def _customers_twice(project_dir: Path) -> None:
    """Every customer in two rows, and the plan's id column set: a random split puts most of
    them in two splits."""
    csv = project_dir / "data" / "customers.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(lines + lines[1:]) + "\n")
    plan = project_dir / "mlplan.yaml"
    plan.write_text(plan.read_text().replace("id_column: null", "id_column: customer_id", 1))


def test_split_with_ids_in_two_splits_exits_1_unless_accepted(cli: Any, project_dir: Path) -> None:
    _customers_twice(project_dir)
    ok(cli("data", "add", "customers"))
    failed = cli("data", "split", "customers", "--seed", "3")
    assert failed.exit_code == 1
    assert "Leakage checks FAIL: ids across splits: " in failed.stdout
    warning, error = " ".join(failed.stderr.split()).split(" error: ")
    assert warning.startswith("warning: ") and "(gender, age, region, charges)" in warning
    assert re.fullmatch(
        r"customers@1/s1 failed its leakage checks: \d+ ids in more than one split "
        r"\(e\.g\. \d+, \d+, \d+\) \(recorded as failed; training refuses it\)\. Split with "
        r"--group on the entity column, or record why it is acceptable with "
        r'--accept-leakage "REASON"',
        error,
    ), failed.stderr
    again = cli("data", "split", "customers", "--seed", "3", "--json")
    assert again.exit_code == 1 and json.loads(again.stdout)["ref"] == "customers@1/s1"

    why = "the same customers are scored again in production"
    accepted = as_json(
        cli("data", "split", "customers", "--seed", "3", "--accept-leakage", why, "--json")
    )
    assert accepted["ref"] == "customers@1/s2" and accepted["leakage"]["accepted"] == {
        "reason": why
    }
    leakage = accepted["leakage"]
    examples = ", ".join(leakage["ids_examples"][:3])
    accepted_failure = (
        f"{leakage['ids_across_splits']} ids in more than one split (e.g. {examples})"
    )
    shown = ok(cli("data", "split", "customers", "--seed", "3", "--accept-leakage", why))
    assert "Unchanged: customers@1/s2" in shown.stdout
    assert f"Leakage checks FAIL, accepted ({why})" in shown.stdout
    listed = ok(cli("data", "splits")).stdout
    assert "FAIL" in listed and "accepted" in listed
    items = as_json(cli("status", "--json"))["items"]
    item = next(i for i in items if i["id"] == "data.splits")
    assert item["state"] == "done" and item["evidence"].startswith("customers@1/s2: train ")
    assert item["evidence"].endswith(f"{accepted_failure}, accepted on the record: {why}")
    trained = cli("train", "--baseline", "--split", "customers@1/s1")
    assert trained.exit_code == 1 and "--accept-leakage" in trained.stderr


def test_status_json_and_strict(cli: Any, project_dir: Path) -> None:
    report = as_json(cli("status", "--json"))
    assert report["project"] == "churn"
    assert len(report["items"]) == 48
    first = report["items"][0]
    assert set(first) == {"id", "stage", "title", "state", "evidence", "next", "plan"}
    ok(cli("status", "--strict"))  # missing items do not fail --strict; failing ones do
    _customers_twice(project_dir)
    ok(cli("data", "add", "customers"))
    assert cli("data", "split", "customers").exit_code == 1  # ids in two splits
    strict = cli("status", "--strict")
    assert strict.exit_code == 1
    assert "failing: data.splits" in strict.stdout
    human = ok(cli("status")).stdout
    assert "Data" in human and "failing" in human


def test_approve_and_lineage(cli: Any) -> None:
    approval = as_json(
        cli(
            "approve",
            "buy_in",
            "--role",
            "business_owner",
            "--by",
            "Dana",
            "--note",
            "ok",
            "--json",
        )
    )
    assert approval["by"] == "Dana"
    ok(cli("data", "add", "customers"))
    ok(cli("data", "split", "customers", "--seed", "1"))
    graph = as_json(cli("lineage", "customers", "--json"))
    assert graph["subject"]["ref"] == "customers@1"
    assert [r["job"] for r in graph["upstream"]] == ["data add"]
    assert [r["job"] for r in graph["downstream"]] == ["data split"]
    tree = ok(cli("lineage", "customers@1")).stdout
    assert "data/customers.csv (file)" in tree and "customers@1/s1 (split)" in tree
    events = [
        json.loads(line)
        for line in ok(cli("lineage", "customers@1/s1", "-f", "openlineage")).stdout.splitlines()
    ]
    assert [e["job"]["name"] for e in events] == ["data.add", "data.split"]


def test_a_command_closes_its_store_before_the_process_exits(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlplan` freezes what is alive as it exits (the collections Python makes then cost
    0.1-0.2 s a command) once it has closed the store the command opened: SQLite folds its
    write-ahead log in and leaves no -wal or -shm file behind."""
    monkeypatch.delenv("MLPLAN_STORE_URL", raising=False)
    for command in (["data", "add", "customers", "--json"], ["status", "--json"]):
        done = subprocess.run(
            [sys.executable, "-m", "mlplan", *command],
            cwd=project_dir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert [p.name for p in (project_dir / ".mlplan").glob("store.db*")] == ["store.db"]


@pytest.mark.slow
def test_real_subprocess_smoke(tmp_path: Path) -> None:
    env = {**os.environ, "MLPLAN_USER": "smoke"}
    env.pop("MLPLAN_STORE_URL", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mlplan", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert run("init", "smoke", "--task", "regression", "--target", "y", "--yes").returncode == 0
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "main.csv").write_text("x,y\n1,2.5\n2,3.5\n3,4.5\n4,5.5\n5,6.5\n")
    assert run("data", "add", "main").returncode == 0
    status = run("status", "--json")
    assert status.returncode == 0
    assert json.loads(status.stdout)["items"][6]["id"] == "data.datasets"
    failed = run("data", "add", "main", "missing.csv")
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: ") and "missing.csv" in failed.stderr


@pytest.mark.slow
def test_a_reader_that_leaves_early_is_not_an_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLPLAN_STORE_URL"}
    init = subprocess.run(
        [sys.executable, "-m", "mlplan", "init", "p", "--task", "binary", "--target", "y", "--yes"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    read, write = os.pipe()
    os.close(read)  # like `mlplan status --json | head -c 0`: nobody reads
    try:
        result = subprocess.run(
            [sys.executable, "-m", "mlplan", "status", "--json"],
            cwd=tmp_path,
            env=env,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)
    assert result.returncode == 141
    assert result.stderr == ""


def test_package_versions_and_the_gated_deploy_from_the_command_line(
    cli: Any, project_dir: Path
) -> None:
    plan = project_dir / "mlplan.yaml"  # a ROC AUC target no model meets: the gates fail
    plan.write_text(
        plan.read_text().replace(
            "roc_auc, direction: maximize, target: 0.85",
            "roc_auc, direction: maximize, target: 0.999",
        )
    )
    ok(cli("data", "add", "customers"))
    ok(cli("data", "split", "customers", "--seed", "1"))
    ok(cli("train", "--family", "logistic"))
    never = cli("deploy", "logistic-1")
    assert never.exit_code == 1
    assert "logistic-1@1 has not been evaluated: run mlplan evaluate logistic-1@1" in never.stderr
    shown = " ".join(ok(cli("evaluate", "logistic-1", "--bootstrap", "0")).stdout.split())
    assert "New package version logistic-1@2 (threshold" in shown
    assert "derived from logistic-1@1" in shown
    first = as_json(cli("evaluate", "logistic-1", "--bootstrap", "0", "--json"))
    assert (first["package"]["ref"], first["package"]["new"]) == ("logistic-1@2", False)
    refused = " ".join(cli("deploy", "logistic-1").stderr.split())
    assert f"--subject logistic-1@2 --evaluation {first['run_id']} --note WHY" in refused
    approved = as_json(
        cli(
            "approve", "deploy", "--role", "ml_lead", "--by", "Priya", "--subject", "logistic-1",
            "--evaluation", first["run_id"], "--json",
        )
    )  # fmt: skip
    assert (approved["subject"], approved["evaluation"]) == ("logistic-1@2", first["run_id"])
    listed = ok(cli("approvals", "list")).stdout
    assert f"logistic-1@2 (over evaluation {first['run_id'][:8]})" in " ".join(listed.split())
    assert as_json(cli("deploy", "logistic-1", "--json"))["model_ref"] == "logistic-1@2"
    # Another threshold: version 3; production keeps version 2 until the next deploy.
    strict = as_json(cli("evaluate", "logistic-1", "--threshold", "0.9", "--json"))
    assert (strict["package"]["ref"], strict["package"]["parent"]) == (
        "logistic-1@3",
        "logistic-1@2",
    )
    assert as_json(cli("deployments", "--json"))[0]["model_ref"] == "logistic-1@2"
    versions = as_json(cli("models", "list", "--versions", "--json"))
    assert [(m["ref"], m["parent"]) for m in versions] == [
        ("logistic-1@1", None),
        ("logistic-1@2", "logistic-1@1"),
        ("logistic-1@3", "logistic-1@2"),
    ]
    table = ok(cli("models", "list", "--versions")).stdout
    assert "logistic-1@2" in table and "production" in table
    assert [m["ref"] for m in as_json(cli("models", "list", "--json"))] == ["logistic-1@3"]
    assert "derived from logistic-1@2" in ok(cli("models", "show", "logistic-1")).stdout
    graph = as_json(cli("lineage", "logistic-1", "--json"))
    assert graph["subject"]["ref"] == "logistic-1@3"
    # The new version's evaluation failed too, and the approval named version 2's.
    again = " ".join(cli("deploy", "logistic-1").stderr.split())
    assert f"gates failed in evaluation {strict['run_id']}" in again
    # Version 2 exactly is cleared; its runs count for the model.
    scored = as_json(cli("score", "logistic-1@2", "data/customers.csv", "scored.csv", "--json"))
    assert (scored["model"], scored["version"]) == ("logistic-1", first["package"]["sha256"][:12])
