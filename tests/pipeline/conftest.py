"""Helpers the pipeline's tests share: the churn project made quick, and a sign-off."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import edit_plan, write_churn_project

from mlplan.workspace import Workspace


def quick_plan(root: Path) -> Path:
    """The churn project of the tests, made quick: one family, a short bootstrap, ids
    named."""
    write_churn_project(root)
    ws = Workspace(root)
    edit_plan(ws, "    id_column: null", "    id_column: customer_id")
    text = ws.plan_path.read_text()
    text = text.replace("  families: null", "  families: [logistic]")
    text = text.replace("  bootstrap: 200", "  bootstrap: 20")
    ws.plan_path.write_text(text)
    assert "families: [logistic]" in text and "bootstrap: 20" in text
    return root


def approve_model(ws: Workspace, model: str) -> None:
    """Approve deploying ``model`` (the small data's model may miss the plan's targets)."""
    from mlplan.workspace import DEPLOY_GATE, approve

    approve(ws, DEPLOY_GATE, role="ml_lead", by="Priya", subject=model, note="for the test")
