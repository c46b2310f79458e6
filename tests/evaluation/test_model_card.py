"""The model card is generated from the store: the dataset version and split the model was
trained on (not the plan's datasheet of today), its inputs, its evaluation and the approvals
that name it now; its PII line says what the plan really does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from tests.conftest import chdir, edit_plan, write_csv
from tests.evaluation.conftest import churn_table
from typer.testing import CliRunner

from mlplan.cli import app
from mlplan.data import register_dataset, split_dataset
from mlplan.errors import NotFoundError
from mlplan.evaluation import evaluate, latest_evaluation, model_card
from mlplan.modeling import train_model
from mlplan.workspace import Workspace, approve, revoke_approval


@pytest.fixture
def two_exports(eval_dir: Path) -> Workspace:
    """Last month's export is in the plan (customers@1); the model learns from this month's
    (customers@2, registered with its own source), then the plan moves on again."""
    ws = Workspace(eval_dir)
    edit_plan(ws, "    source: null", '    source: "CRM export 2026-10"')
    register_dataset(ws, "customers")
    export = write_csv(churn_table(seed=11), eval_dir / "data" / "customers-2026-11.csv")
    register_dataset(ws, "customers", export, source="CRM export 2026-11")
    split_dataset(ws, "customers@2", stratify="churned", seed=1)
    train_model(ws, family="logistic")
    edit_plan(ws, '    source: "CRM export 2026-10"', '    source: "CRM export 2026-12"')
    return ws


def test_the_card_shows_the_version_the_model_was_trained_on_not_the_plans_datasheet(
    two_exports: Workspace,
) -> None:
    ws = two_exports
    written = evaluate(ws, "logistic-1", n_boot=0).files["model-card.md"].read_text()

    card = model_card(ws, "logistic-1")

    for text in (written, card.markdown):
        assert "- **Trained on:** customers@2 (sha256" in text
        assert "from `data/customers-2026-11.csv`)" in text
        assert "- **Source:** CRM export 2026-11" in text
        assert "export 2026-10" not in text and "export 2026-12" not in text
        assert "- **Split:** customers@2/s1 (train " in text and "stratify churned" in text
        header = YAML(typ="safe").load(text.split("---\n")[1])
        assert header["datasets"] == ["customers@2"]
    assert "## Inputs" in card.markdown and "- Left out: `churned` — the target" in card.markdown
    assert card.evidence["dataset"] == "customers@2"
    assert card.evidence["split"] == "customers@2/s1"
    assert len(card.evidence["training_run"]) == 36
    ws.close()


def _evaluation_run(ws: Workspace) -> str:
    found = latest_evaluation(ws, "logistic-1")
    assert found is not None
    return found.run_id


def test_the_card_follows_approvals_and_evaluations_after_the_file_was_written(
    trained: Workspace,
) -> None:
    first = evaluate(trained, "logistic-1", n_boot=0)
    written = first.files["model-card.md"].read_text()
    assert "- No deploy approval names this model (as of this evaluation)." in written
    assert "`mlplan models card logistic-1` generates it again" in written

    given = approve(
        trained, "deploy", role="ml_lead", by="Priya", subject="logistic-1", note="pilot"
    )

    card = model_card(trained, "logistic-1")
    assert (
        f"- Approved for deployment of logistic-1@2 despite evaluation {first.run_id[:8]} "
        "(that one only) by Priya (ml_lead) on "
    ) in card.markdown
    assert ": pilot" in card.markdown and card.evidence["approvals"] == [given.id]
    first_run = _evaluation_run(trained)
    assert card.evidence["evaluation_run"] == first_run
    assert "Priya" in card.html

    revoke_approval(trained, given.id, role="ml_lead", by="Priya", note="pilot over")
    evaluate(trained, "logistic-1", n_boot=0, threshold=0.4)
    card = model_card(trained, "logistic-1")
    assert "Priya" not in card.markdown and card.evidence["approvals"] == []
    assert card.evidence["evaluation_run"] == _evaluation_run(trained) != first_run
    assert "- **Decision threshold:** 0.4 (fixed)" in card.markdown


@pytest.mark.parametrize(
    ("policy", "said"),
    [
        ("pii: hash", "hashed in the prediction log with the log's own key"),
        ("pii: redact", "redacted in the prediction log (deployment.logging.pii: redact)"),
    ],
    ids=["hash", "redact"],
)
def test_the_pii_line_says_what_the_plan_does(trained: Workspace, policy: str, said: str) -> None:
    edit_plan(trained, "pii: hash", policy)
    written = evaluate(trained, "logistic-1", n_boot=0).files["model-card.md"].read_text()

    for text in (written, model_card(trained, "logistic-1").markdown):
        line = next(x for x in text.splitlines() if x.startswith("- **Personal data:**"))
        assert line.startswith("- **Personal data:** name — left out of the model's inputs; ")
        assert said in line
        assert ("hashed" in line) == (policy == "pii: hash")


def test_a_model_not_evaluated_yet_has_no_card_and_says_what_to_run(trained: Workspace) -> None:
    with pytest.raises(
        NotFoundError,
        match=r"^logistic-1@1 has not been evaluated yet.*Run: mlplan evaluate logistic-1@1$",
    ):
        model_card(trained, "logistic-1")


def test_cli_models_card(trained: Workspace, tmp_path: Path) -> None:
    evaluate(trained, "logistic-1", n_boot=0)
    runner = CliRunner()
    with chdir(trained.root):
        printed = runner.invoke(app, ["models", "card", "logistic-1"])
        written = runner.invoke(
            app, ["models", "card", "logistic-1", "--out", str(tmp_path / "c.html")]
        )
        answer = runner.invoke(app, ["models", "card", "logistic-1", "--json"])
        wrong = runner.invoke(app, ["models", "card", "logistic-1", "--out", "c.txt"])
    assert printed.exit_code == written.exit_code == answer.exit_code == 0, printed.output
    assert printed.stdout.startswith("---\n") and "# Model card: logistic-1" in printed.stdout
    assert (tmp_path / "c.html").read_text().startswith("<!doctype html>")
    assert json.loads(answer.stdout)["evidence"]["dataset"] == "customers@1"
    assert wrong.exit_code == 2 and "must end in .md or .html" in wrong.output


def test_approving_or_revoking_writes_the_card_in_reports_again(trained: Workspace) -> None:
    """The card evaluate wrote to reports/ went stale once an approval was given."""
    first = evaluate(trained, "logistic-1", n_boot=0)
    path = first.files["model-card.md"]
    assert "Priya" not in path.read_text()
    runner = CliRunner()
    with chdir(trained.root):
        given = runner.invoke(
            app,
            ["approve", "deploy", "--role", "ml_lead", "--by", "Priya", "--subject", "logistic-1"],
        )
        assert given.exit_code == 0, given.output
        assert "Model card updated: " in given.stdout
        assert "Approved for deployment of logistic-1@" in path.read_text()
        assert "Priya" in (path.parent / "model-card.html").read_text()
        revoked = runner.invoke(
            app, ["approvals", "revoke", "1", "--role", "ml_lead", "--by", "Priya"]
        )
        assert revoked.exit_code == 0, revoked.output
    assert "Priya" not in path.read_text()
