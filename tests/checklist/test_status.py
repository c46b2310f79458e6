from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from tests.conftest import edit_plan

from mlplan.checklist import ITEMS, STAGES, item, status
from mlplan.data import register_dataset, split_dataset
from mlplan.errors import GateError
from mlplan.plan import Plan
from mlplan.workspace import Workspace, approve, list_approvals

REPO = Path(__file__).resolve().parents[2]
CHECKLIST = REPO.parent / "shared" / "CHECKLIST.md"


def test_items_match_the_shared_checklist() -> None:
    if not CHECKLIST.exists():
        pytest.skip("shared/CHECKLIST.md is not beside this checkout")
    rows = re.findall(
        r"^\| ([a-z_]+\.[a-z_]+) \| (.+?) \| (.+?) \|$", CHECKLIST.read_text(), re.MULTILINE
    )
    assert [(i.id, i.title, i.done_when) for i in ITEMS] == rows


def test_every_item_appears_once_in_stage_order(sqlite_ws: Workspace) -> None:
    report = status(sqlite_ws)
    assert [s.item.id for s in report.items] == [i.id for i in ITEMS]
    assert list(report.by_stage()) == list(STAGES)
    assert sum(report.counts().values()) == len(ITEMS) == 48


def _unbuilt(monkeypatch: pytest.MonkeyPatch, item_id: str) -> None:
    """Every item is built now: take ``item_id``'s check away to see an unbuilt item."""
    import mlplan.checklist._status as mechanism

    mechanism._load_builtin_checks()
    monkeypatch.delitem(mechanism._CHECKS, item_id)


def test_unbuilt_stages_are_missing_and_say_so(
    sqlite_ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    _unbuilt(monkeypatch, "monitor.alerts")
    watched = status(sqlite_ws).get("monitor.alerts")
    assert watched.state == "missing"
    assert watched.evidence == "not built yet: the Monitoring stage comes with mlplan.monitoring"


def test_fresh_template_plan_shows_what_people_must_fill_in(sqlite_ws: Workspace) -> None:
    report = status(sqlite_ws)
    assert report.get("scope.problem").state == "missing"
    assert "project.problem" in report.get("scope.problem").evidence
    assert report.get("scope.scenario").state == "missing"  # template leaves the default
    assert report.get("scope.metrics").evidence == "the plan lacks business metrics"
    assert report.get("scope.buy_in").next_step == (
        "mlplan approve buy_in --role business_owner --by NAME"
    )
    assert report.get("data.datasets").next_step == "mlplan data add customers"


def _complete_plan(ws: Workspace) -> None:
    text = (REPO / "examples" / "churn" / "mlplan.yaml").read_text()
    text = text.replace("pii_columns: [name, email, phone]", "pii_columns: [name, email]")
    text = text.replace(
        "sensitive_attributes: [gender, ethnicity, age]", "sensitive_attributes: [gender, age]"
    )
    text = text.replace(
        "id_column: customer_id\n    time_column: signup_date", "id_column: customer_id"
    )
    ws.plan_path.write_text(text)
    ws.__dict__.pop("plan", None)


def test_items_become_done_as_evidence_arrives(ws: Workspace) -> None:
    _complete_plan(ws)
    before = status(ws)
    for item_id in (
        "scope.problem",
        "scope.scenario",
        "scope.metrics",
        "scope.literature",
        "scope.risks",
    ):
        assert before.get(item_id).state == "done", before.get(item_id)
    assert before.get("scope.buy_in").state == "missing"
    assert before.get("data.splits").state == "missing"

    register_dataset(ws, "customers")
    split_dataset(ws, "customers", stratify="churned", seed=3)
    approve(ws, "buy_in", role="business_owner", by="Dana Lee", note="go")
    after = status(ws)
    for item_id in (
        "scope.buy_in",
        "data.datasets",
        "data.metadata",
        "data.profile",
        "data.lineage",
        "data.splits",
        "data.privacy",
    ):
        assert after.get(item_id).state == "done", after.get(item_id)
    assert "Dana Lee (business_owner)" in after.get("scope.buy_in").evidence
    assert after.get("data.splits").evidence.startswith("customers@1/s1: train ")


def test_leaky_split_is_failing_until_accepted(sqlite_ws: Workspace, project_dir: Path) -> None:
    csv = project_dir / "data" / "customers.csv"
    lines = csv.read_text().splitlines()
    # The same customers twice: their ids end up on both sides of a random split.
    csv.write_text("\n".join(lines + lines[1:]) + "\n")
    edit_plan(sqlite_ws, "id_column: null", "id_column: customer_id")
    register_dataset(sqlite_ws, "customers")
    split_dataset(sqlite_ws, "customers", seed=1)
    splits = status(sqlite_ws).get("data.splits")
    assert splits.state == "failing"
    assert re.fullmatch(
        r"customers@1/s1: \d+ ids in more than one split \(e\.g\. .+\)", splits.evidence
    )
    assert splits.next_step == (
        "split with --group on the entity column: mlplan data split customers --stratify "
        "churned --group COLUMN, or accept it on the record: mlplan data split customers@1 "
        "--test 0.2 --valid 0.1 --seed 1 --accept-leakage REASON"
    )
    split_dataset(sqlite_ws, "customers", seed=1, accept_leakage="scored again by design")
    accepted = status(sqlite_ws).get("data.splits")
    assert accepted.state == "done"
    assert accepted.evidence.endswith("accepted on the record: scored again by design")


def test_identical_rows_alone_do_not_fail_the_split(
    sqlite_ws: Workspace, project_dir: Path
) -> None:
    csv = project_dir / "data" / "customers.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(lines + lines[1:]) + "\n")  # no id column: a warning
    register_dataset(sqlite_ws, "customers")
    split_dataset(sqlite_ws, "customers", seed=1)
    assert status(sqlite_ws).get("data.splits").state == "done"


def test_unnamed_pii_is_failing(sqlite_ws: Workspace) -> None:
    text = sqlite_ws.plan_path.read_text().replace(
        "pii_columns: [name, email]", "pii_columns: [name]"
    )
    sqlite_ws.plan_path.write_text(text)
    register_dataset(sqlite_ws, "customers")
    privacy = status(sqlite_ws).get("data.privacy")
    assert privacy.state == "failing"
    assert "customers.email (name suggests personal data)" in privacy.evidence


def test_approval_needs_the_planned_gate_and_role(ws: Workspace) -> None:
    with pytest.raises(GateError, match=r"the plan has no gate 'launch'; gates: buy_in, deploy"):
        approve(ws, "launch", role="ml_lead", by="x")
    with pytest.raises(
        GateError,
        match=r"gate 'buy_in' is signed off by role 'business_owner' "
        r"per the plan; got 'ml_lead'",
    ):
        approve(ws, "buy_in", role="ml_lead", by="x")
    assert list_approvals(ws) == []
    record = approve(ws, "buy_in", role="business_owner", by="Priya", note="ok")
    assert [a.gate for a in list_approvals(ws)] == ["buy_in"]
    assert record.created_at.tzinfo is not None


def test_item_lookup_names_known_ids() -> None:
    assert item("scope.buy_in").stage == "Scoping"
    with pytest.raises(KeyError, match=r"no checklist item 'scope.nope'; known: scope.problem"):
        item("scope.nope")


def test_an_item_of_a_stage_not_built_yet_says_what_to_do_now(
    sqlite_ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    _unbuilt(monkeypatch, "monitor.alerts")
    report = status(sqlite_ws)
    watched = report.get("monitor.alerts")
    assert (watched.state, watched.evidence) == (
        "missing",
        "not built yet: the Monitoring stage comes with mlplan.monitoring",
    )
    assert (
        watched.next_step
        == "plan it now under monitoring: in mlplan.yaml; its checks come with the stage"
    )
    assert report.get("monitor.alerts").next_step.startswith("plan it now under monitoring:")


def test_the_alerts_item_of_a_fresh_plan_names_its_rules(sqlite_ws: Workspace) -> None:
    watched = status(sqlite_ws).get("monitor.alerts")
    assert watched.state == "missing"
    assert watched.evidence.startswith(
        "4 rule(s) set (software.p99-latency, input.input-drift, output.null-outputs, "
        "ml.primary-metric); the firing path not exercised yet"
    )
    assert watched.next_step.startswith("run mlplan monitor check DEPLOYMENT on a schedule")


def test_every_item_names_parts_of_the_plan_that_exist() -> None:
    """The Project page links each item to the plan sections it reads: each dotted path must
    be a field of the plan's schema, so that a renamed section cannot leave a dead link."""
    for checklist_item in ITEMS:
        for path in checklist_item.plan_keys:
            model: Any = Plan
            for part in path.split("."):
                assert part in model.model_fields, (checklist_item.id, path)
                annotation = model.model_fields[part].annotation
                found = [
                    t
                    for t in (annotation, *getattr(annotation, "__args__", ()))
                    if isinstance(t, type) and issubclass(t, BaseModel)
                ]
                model = found[0] if found else None
    assert all(i.plan_keys for i in ITEMS)
