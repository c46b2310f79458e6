from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ruamel.yaml import YAML
from tests.conftest import chdir, edit_plan, evaluated, register_split_train, write_csv
from tests.evaluation.conftest import churn_table, plan_text
from typer.testing import CliRunner

from mlplan.checklist import status
from mlplan.cli import app
from mlplan.data import get_split, load_split, register_dataset, split_dataset
from mlplan.errors import (
    CheckFailedError,
    DataError,
    GateError,
    NotFoundError,
    ParameterError,
    UsageError,
)
from mlplan.evaluation import evaluate, latest_evaluation, list_evaluations
from mlplan.evaluation import raise_for_gates as gate_check
from mlplan.lineage import lineage
from mlplan.modeling import get_model, import_older_system, train_model
from mlplan.serving import clearance
from mlplan.workspace import Workspace, approve, list_approvals, revoke_approval

Edit = Callable[[Workspace, str, str], None]


def test_evaluation_finds_the_planted_failure_in_slices_focus_and_discovery(
    trained: Workspace,
) -> None:
    result = evaluate(trained, "logistic-1")
    r = result.report
    assert (r["model"], r["part"], r["kind"], r["positive"]) == (
        "logistic-1",
        "test",
        "binary",
        "1",
    )
    region = next(s for s in r["slices"] if s["name"] == "region")
    accuracy = {g["value"]: g["metrics"]["accuracy"] for g in region["groups"]}
    assert min(accuracy, key=lambda v: accuracy[v]["value"]) == "region=west"
    west = accuracy["region=west"]
    assert west["low"] <= west["value"] <= west["high"]
    # Where to focus: the west first, significantly worse after the correction.
    top = r["focus"][0]
    assert (top["slice"], top["value"], top["significant"]) == ("region", "region=west", True)
    assert top["q_value"] <= 0.05 and top["priority"] == pytest.approx(top["gap"] * top["share"])
    # Discovery finds it without being told.
    found = [" and ".join(d["conditions"]) for d in r["discovery"]["slices"]]
    assert "region = 'west'" in found
    # Risks: the region risk fails on its gap, the monitor one waits for traffic.
    risks = {k["id"]: k for k in r["risks"]}
    assert risks["west-ignored"]["state"] == "failing"
    assert "region = 'west'" in risks["west-ignored"]["discovered"]
    assert risks["women-missed"]["state"] in {"passing", "failing"}
    assert risks["drift"]["state"] == "unchecked"
    gates = {g["id"]: g for g in r["gates"]}
    assert gates["floor:region:accuracy"]["state"] == "fail"
    assert "region=west" in gates["floor:region:accuracy"]["evidence"]
    assert not result.passed and r["passed"] is False


def test_the_threshold_is_chosen_on_validation_and_recorded_in_the_package(
    trained: Workspace,
) -> None:
    before = get_model(trained, "logistic-1").package
    r = evaluate(trained, "logistic-1").report
    threshold = r["threshold"]
    assert (threshold["criterion"], threshold["chosen_on"]) == ("f1", "valid")
    after = get_model(trained, "logistic-1").package
    assert after["model.onnx"] == before["model.onnx"]
    metadata = json.loads(trained.store.artifacts.path(after["metadata.json"]).read_text())
    assert metadata["threshold"] == threshold["value"] != 0.5
    assert metadata["threshold_choice"]["criterion"] == "f1"
    # The FP/FN rates are those of that threshold.
    row = next(t for t in threshold["table"] if t["threshold"] == threshold["value"])
    assert row["fpr"] == pytest.approx(r["overall"]["fpr"]["value"])
    assert row["recall"] == pytest.approx(r["overall"]["recall"]["value"])
    fixed = evaluate(trained, "logistic-1", threshold=0.5).report["threshold"]
    assert (fixed["value"], fixed["criterion"]) == (0.5, "fixed")
    with pytest.raises(
        ParameterError,
        match=r"'threshold' must be a number in \(0, 1\), f1, youden or recall>=X with X in "
        r"\(0, 1\]; got 'best'",
    ):
        evaluate(trained, "logistic-1", threshold="best")


def test_the_evaluation_exposes_its_slice_reports(trained: Workspace) -> None:
    result = evaluate(trained, "logistic-1", n_boot=20)
    r = result.report
    assert result.overall.name == "overall" and result.overall.by_group == {}
    for metric, estimate in result.overall.overall.items():
        assert estimate.to_dict() == r["overall"][metric]
    assert list(result.slices) == [s["name"] for s in r["slices"]]
    for stored in r["slices"]:
        report = result.slices[stored["name"]]
        assert report.to_dict() | {"min_support": stored["min_support"]} == stored
    region = result.slices["region"]
    west = region.by_group["region=west"]["accuracy"]
    assert west.low is not None and west.high is not None and west.low <= west.value <= west.high
    assert region.draws["region=west"]["accuracy"].shape == (20,)  # the run's draws, kept
    assert region.difference("accuracy", min_count=30) > 0


@pytest.mark.parametrize(
    ("given", "param", "message"),
    [
        ({"part": "holdout"}, "part", "{} must be train, valid or test; got 'holdout'"),
        ({"n_boot": -1}, "n_boot", "{} must be 0 or more; got -1"),
        ({"threshold": 1.5}, "threshold", "{} must be in (0, 1); got 1.5"),
    ],
    ids=["part", "n_boot", "threshold"],
)
def test_a_bad_argument_names_its_parameter(
    trained: Workspace, given: dict[str, Any], param: str, message: str
) -> None:
    with pytest.raises(ParameterError) as caught:
        evaluate(trained, "logistic-1", **given)
    assert caught.value.param == param
    assert str(caught.value) == message.format(repr(param))


def test_the_cli_names_the_option_where_the_library_names_the_parameter(
    trained: Workspace,
) -> None:

    from mlplan.evaluation import evaluate_predictions

    (trained.root / "vendor.csv").write_text("item_id,prediction\n1,0\n")
    with pytest.raises(ParameterError, match=r"^'name' '1st' must start with a letter"):
        evaluate_predictions(trained, "vendor.csv", name="1st")
    runner = CliRunner()
    with chdir(trained.root):
        named = runner.invoke(app, ["evaluate", "--predictions", "vendor.csv", "--name", "1st"])
        taken = runner.invoke(
            app, ["evaluate", "--predictions", "vendor.csv", "--name", "logistic-1"]
        )
        threshold = runner.invoke(app, ["evaluate", "logistic-1", "--threshold", "2"])
    assert named.exit_code == taken.exit_code == threshold.exit_code == 2
    assert "error: --name '1st' must start with a letter" in named.output
    assert (
        "error: 'logistic-1' is a registered model; give these predictions another --name"
        in taken.output
    )
    assert "error: --threshold must be in (0, 1); got 2.0" in threshold.output


def test_the_report_card_and_json_are_written_and_stored(trained: Workspace) -> None:
    result = evaluate(trained, "logistic-1")
    folder = trained.root / "reports" / "logistic-1"
    assert set(result.files) == {
        "evaluation.html",
        "model-card.md",
        "model-card.html",
        "evaluation.json",
    }
    assert all(p.parent == folder and p.stat().st_mode & 0o044 for p in result.files.values())
    html = (folder / "evaluation.html").read_text()
    # Self-contained: inline SVG plots, nothing loaded from anywhere when opened.
    assert html.count("<svg") >= 4 and not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    for heading in ("Gates", "Slices", "Where to focus", "Discovered slices", "Risks"):
        assert f"<h2>{heading}</h2>" in html
    card = (folder / "model-card.md").read_text()
    header = YAML(typ="safe").load(card.split("---\n")[1])
    index = header["model-index"][0]
    assert index["name"] == "logistic-1"
    assert index["results"][0]["dataset"] == {
        "name": "customers@1",
        "type": "customers",
        "split": "test",
    }
    metrics = {m["type"]: m["value"] for m in index["results"][0]["metrics"]}
    assert metrics["roc_auc"] == pytest.approx(result.report["overall"]["roc_auc"]["value"])
    for section in ("Intended use", "Data", "Metrics", "Slices", "Limitations", "Risks"):
        assert f"## {section}" in card
    assert "<table>" in (folder / "model-card.html").read_text()
    stored = latest_evaluation(trained, "logistic-1")
    assert stored is not None
    assert json.loads((folder / "evaluation.json").read_text()) == {
        k: v for k, v in stored.report.items() if k not in {"artifacts", "run_id"}
    }
    # Lineage: the evaluation run read the model and the split and wrote the report.
    graph = lineage(trained, "logistic-1/evaluation.html")
    inputs = {(n.kind, n.ref) for run in graph.upstream for n in run.inputs}
    assert ("model", "logistic-1@1") in inputs


def test_the_checklist_follows_the_candidates_evaluation_and_approval(
    trained: Workspace,
) -> None:
    def items() -> dict[str, Any]:
        report = status(trained)
        return {s.item.id: s for s in report.items if s.item.stage == "Error analysis"}

    before = items()
    assert {s.state for s in before.values()} == {"missing"}
    assert before["eval.slices"].next_step == "mlplan evaluate logistic-1"
    evaluate(trained, "logistic-1")
    after = items()
    states = {k: v.state for k, v in after.items()}
    assert states == {
        "eval.slices": "done",
        "eval.error_types": "done",
        "eval.rare_classes": "done",
        "eval.gates": "failing",
        "eval.regressions": "not_applicable",
        "eval.risks": "failing",
        "eval.model_card": "done",
    }
    assert "FPR" in after["eval.error_types"].evidence
    assert after["eval.slices"].evidence.startswith("logistic-1@2 on customers@1/s1 (test)")
    first = latest_evaluation(trained, "logistic-1")
    assert first is not None
    assert after["eval.gates"].next_step == (
        "mlplan approve deploy --role ml_lead --by NAME --subject logistic-1@2 "
        f"--evaluation {first.run_id} --note WHY"
    )
    assert not clearance(trained, "logistic-1").allowed
    approve(trained, "deploy", role="ml_lead", by="Priya", subject="logistic-1", note="pilot")
    assert items()["eval.gates"].state == "done"
    cleared = clearance(trained, "logistic-1")
    assert cleared.allowed and "Priya (ml_lead) approved it" in cleared.reason
    assert cleared.evaluation == first.run_id
    # A gate added later fails a later evaluation: the approval of the first does not cover it.
    floor = "    - {slice: region, metric: accuracy, min: 0.7}"
    edit_plan(trained, floor, floor + "\n    - {slice: gender, metric: accuracy, min: 0.99}")
    evaluate(trained, "logistic-1", n_boot=0)
    assert items()["eval.gates"].state == "failing"
    refused = clearance(trained, "logistic-1")
    assert not refused.allowed and refused.evaluation != first.run_id
    assert f"--evaluation {refused.evaluation}" in refused.reason


def test_cli_evaluate_gate_exits_one_naming_the_failed_gate(trained: Workspace) -> None:

    runner = CliRunner()
    with chdir(trained.root):
        shown = runner.invoke(app, ["evaluate", "logistic-1", "--bootstrap", "20"])
        assert shown.exit_code == 0, shown.output
        assert "Where to focus" in shown.output and "floor:region:accuracy" in shown.output
        as_json = runner.invoke(app, ["evaluate", "logistic-1", "--json", "--bootstrap", "0"])
        assert json.loads(as_json.stdout)["bootstrap"] == 0
        gated = runner.invoke(app, ["evaluate", "logistic-1", "--gate", "--bootstrap", "0"])
        neither = runner.invoke(app, ["evaluate"])
        assert neither.exit_code == 2
        assert "name a MODEL to evaluate, or give --predictions FILE" in neither.output
    assert gated.exit_code == 1
    said = " ".join(gated.output.split())
    assert re.search(r"\d gate\(s\) failed for logistic-1: .*floor:region:accuracy", said)
    assert "only with a recorded approval of 'deploy'" in said


def test_bad_slices_and_metrics_are_refused_and_nothing_is_stored(
    trained: Workspace, editor: Edit
) -> None:
    editor(trained, "{name: region, columns: [region]}", "{name: region, columns: [regoin]}")
    with pytest.raises(
        DataError, match=r"slice 'region' uses column 'regoin'.*did you mean 'region'"
    ):
        evaluate(trained, "logistic-1")
    editor(trained, "{name: region, columns: [regoin]}", "{name: region, columns: [region]}")
    editor(trained, 'where: "age >= 65"', 'where: "age >= 165"')
    with pytest.raises(DataError, match=r"slice 'seniors' selects no rows of the test split"):
        evaluate(trained, "logistic-1")
    editor(trained, 'where: "age >= 165"', 'where: "age >= 65"')
    editor(
        trained,
        "{slice: region, metric: accuracy, min: 0.7}",
        "{slice: region, metric: rmse, min: 1}",
    )
    with pytest.raises(
        UsageError,
        match=r"gates.slice_floors\[0\]: metric 'rmse' does not apply to a binary task; "
        r"metrics: count, accuracy",
    ):
        evaluate(trained, "logistic-1")
    assert list_evaluations(trained) == []
    assert not (trained.root / "reports" / "logistic-1").exists() or not any(
        (trained.root / "reports" / "logistic-1").iterdir()
    )


def test_a_slice_worse_than_the_older_system_is_a_blocking_regression(
    trained: Workspace, editor: Edit
) -> None:
    editor(trained, "  older_system: null", "  older_system: {name: rules-v1}")
    editor(
        trained,
        "  no_regression: []",
        "  no_regression:\n    - {metric: accuracy, against: older_system}",
    )
    split = get_split(trained)
    _, table, codes = load_split(trained, split)
    test = np.flatnonzero(codes == 2)
    ids = np.asarray(table.column("customer_id").to_pylist())[test]
    truth = np.asarray(table.column("churned").to_pylist())[test]
    west = np.asarray(table.column("region").to_pylist())[test] == "west"
    # The rules are right on every western customer and say "stays" elsewhere.
    older = np.where(west, truth, 0)
    path = write_csv(pa.table({"item_id": ids, "prediction": older}), trained.root / "older.csv")
    import_older_system(trained, path)
    r = evaluate(trained, "logistic-1").report
    check = r["regressions"]["older_system:accuracy"]
    flagged = {(x["slice"], x["value"]) for x in check["rows"] if x["regression"]}
    assert ("region", "region=west") in flagged
    west_row = next(x for x in check["rows"] if x["value"] == "region=west")
    assert west_row["other"] == 1.0 and west_row["high"] < 0
    gate = next(g for g in r["gates"] if g["id"] == "no_regression:older_system:accuracy")
    assert gate["state"] == "fail" and "region region=west" in gate["evidence"]
    item = status(trained).get("eval.regressions")
    assert item.state == "failing" and "region region=west" in item.evidence


def test_regression_and_multiclass_tasks(tmp_path: Path) -> None:
    write_csv(churn_table(), tmp_path / "data" / "customers.csv")
    text = plan_text(task="regression", target="charges").replace(
        "slice: gender, metric: recall, max_gap: 0.5", "slice: gender, metric: mae, max_gap: 50"
    )
    text = text.replace(
        "{slice: region, metric: accuracy, min: 0.7}", "{slice: region, metric: r2, min: -100}"
    )
    text = text.replace("metric: recall}", "metric: mae}").replace(
        "slice: region, metric: accuracy,\n", "slice: region, metric: mae,\n"
    )
    (tmp_path / "mlplan.yaml").write_text(text)
    ws = Workspace(tmp_path)
    try:
        register_split_train(ws, id_column=None, stratify=None, family="linear")
        r = evaluate(ws, "linear-1", n_boot=20).report
        assert r["kind"] == "regression" and "threshold" not in r and "confusion" not in r
        assert {"mae", "rmse", "r2", "mape"} <= set(r["overall"])
        assert r["discovery"]["error"] == "absolute error"
        assert status(ws).get("eval.error_types").state == "not_applicable"
    finally:
        ws.close()

    other = tmp_path / "multi"
    write_csv(churn_table(), other / "data" / "customers.csv")
    text = plan_text(task="multiclass", target="region")
    text = re.sub(
        r"  - \{name: region, columns: \[region\]\}\n",
        "  - {name: churned, columns: [churned]}\n",
        text,
    )
    text = text.replace("slice: region, metric: accuracy", "slice: churned, metric: accuracy")
    text = text.replace(
        "{slice: gender, metric: recall, max_gap: 0.5}",
        "{slice: gender, metric: macro_recall, max_gap: 1}",
    )
    text = text.replace(
        "slice: region, metric: accuracy, threshold", "slice: churned, metric: accuracy, threshold"
    )
    text = text.replace("metric: recall}", "metric: macro_recall}")
    text = text.replace("  rare_class_share: 0.05", "  rare_class_share: 0.2")
    (other / "mlplan.yaml").write_text(text)
    ws = Workspace(other)
    try:
        register_split_train(ws, id_column=None, stratify="region")
        r = evaluate(ws, "logistic-1", n_boot=20).report
        assert r["kind"] == "multiclass"
        rare = [c["class"] for c in r["per_class"] if c["rare"]]
        assert rare == ["west"]
        west = next(c for c in r["per_class"] if c["class"] == "west")
        assert west["recall"]["low"] is not None and west["train_share"] < 0.2
        assert len(r["confusion"]["matrix"]) == 4 and r["confusion"]["top"]
        assert "rare class" in status(ws).get("eval.rare_classes").evidence
    finally:
        ws.close()


def test_an_evaluation_is_stored_on_each_backend(eval_dir: Path, store_url: str) -> None:
    ws = Workspace(eval_dir, store_url=store_url)
    try:
        register_split_train(ws, id_column=None)
        evaluate(ws, "logistic-1", n_boot=10)
        stored = latest_evaluation(ws)
        assert stored is not None and stored.model == "logistic-1"
        assert set(stored.report["artifacts"]) == {
            "evaluation.html",
            "model-card.md",
            "model-card.html",
            "evaluation.json",
        }
        with pytest.raises(CheckFailedError, match=r"floor:region:accuracy"):
            gate_check(evaluate(ws, "logistic-1", n_boot=0))
        assert len(list_evaluations(ws, "logistic-1")) == 2
    finally:
        ws.close()


def test_predictions_made_elsewhere_are_evaluated_like_a_model(trained: Workspace) -> None:
    from mlplan.evaluation import evaluate_predictions

    split = get_split(trained)
    _, table, codes = load_split(trained, split)
    test = np.flatnonzero(codes == 2)
    ids = np.asarray(table.column("customer_id").to_pylist())[test]
    truth = np.asarray(table.column("churned").to_pylist())[test]
    rng = np.random.default_rng(0)
    guess = np.where(rng.random(len(test)) < 0.8, truth, 1 - truth)
    score = np.clip(0.6 * guess + 0.4 * rng.random(len(test)), 0, 1)
    path = write_csv(
        # Labels as floats (1.0) are the classes of the integer target.
        pa.table({"item_id": ids, "prediction": guess.astype(float), "0": 1 - score, "1": score}),
        trained.root / "vendor.csv",
    )
    r = evaluate_predictions(trained, "vendor.csv", n_boot=20).report
    assert (r["model"], r["family"], r["source"]["path"]) == ("vendor", "external", "vendor.csv")
    import sklearn.metrics as skm

    assert r["overall"]["accuracy"]["value"] == pytest.approx(skm.accuracy_score(truth, guess))
    assert r["overall"]["roc_auc"]["value"] == pytest.approx(skm.roc_auc_score(truth, score))
    assert (trained.root / "reports" / "vendor" / "model-card.md").read_text().count(
        "Predictions made elsewhere"
    ) == 1
    # Ids that do not match the split are named, and nothing is stored.
    before = len(list_evaluations(trained))
    write_csv(
        pa.table({"item_id": [*ids[1:], 99999, ids[2]], "prediction": [*guess[1:], 0, 0]}),
        path,
    )
    with pytest.raises(
        DataError,
        match=rf"vendor.csv: the item_ids do not match the split: 1 of the {len(ids)} test rows "
        rf"have no prediction \(e.g. {ids[0]}\); 1 item_ids are not test rows of "
        rf"customers@1/s1 \(e.g. 99999\); 1 item_ids repeat \(e.g. {ids[2]}\)",
    ):
        evaluate_predictions(trained, path)
    assert len(list_evaluations(trained)) == before
    with pytest.raises(UsageError, match=r"'logistic-1' is a registered model"):
        evaluate_predictions(trained, path, name="logistic-1")


def test_without_intervals_tests_that_need_them_are_unchecked_not_passed(
    trained: Workspace, editor: Edit
) -> None:
    editor(trained, "  older_system: null", "  older_system: {name: rules-v1}")
    editor(
        trained,
        "  no_regression: []",
        "  no_regression:\n    - {metric: accuracy, against: older_system}",
    )
    editor(
        trained,
        "    - {slice: region, metric: accuracy, min: 0.7}",
        "    - {slice: region, metric: accuracy, min: 0.7}\n"
        "    - {slice: gender, metric: fpr, min: 0.9}\n    - {slice: region, metric: auc, min: 1}",
    )
    editor(trained, "  - {id: drift,", "  - {id: vague, description: Something.}\n  - {id: drift,")
    _, table, codes = load_split(trained, get_split(trained))
    test = np.flatnonzero(codes == 2)
    truth = np.asarray(table.column("churned").to_pylist())[test]
    ids = np.asarray(table.column("customer_id").to_pylist())[test]
    older = write_csv(
        pa.table({"item_id": ids, "prediction": truth.astype(float)}), trained.root / "o.csv"
    )
    import_older_system(trained, older)  # 1.0 in the file is the class '1'
    r = evaluate(trained, "logistic-1", n_boot=0).report
    gates = {g["id"]: g for g in r["gates"]}
    assert gates["no_regression:older_system:accuracy"]["state"] == "unchecked"
    assert gates["floor:gender:fpr"]["description"] == "every gender value has fpr <= 0.9"
    assert gates["floor:region:auc"]["state"] == "unchecked"
    risks = {k["id"]: k for k in r["risks"]}
    assert risks["women-missed"]["state"] == "unchecked"
    assert risks["vague"]["state"] == "unchecked" and risks["vague"]["check"] == "none"
    older_rows = r["regressions"]["older_system:accuracy"]["rows"]
    assert older_rows[0]["other"] == 1.0  # the older system's labels matched the target's
    assert status(trained).get("eval.risks").state == "failing"  # west-ignored still fails


def test_a_model_that_failed_its_gates_is_not_served_without_an_approval(
    trained: Workspace,
) -> None:
    from mlplan.serving import check_clearance, score_file

    check_clearance(trained, "logistic-1")  # not evaluated yet: scoring is not deploying
    with pytest.raises(CheckFailedError, match=r"logistic-1@1 has not been evaluated: run "):
        check_clearance(trained, "logistic-1", require_evaluation=True)
    run_id = evaluate(trained, "logistic-1", n_boot=0).run_id
    with pytest.raises(
        CheckFailedError,
        match=rf"logistic-1@2 may not be deployed: gates failed in evaluation {run_id}: "
        r".*floor:region:accuracy.*mlplan approve deploy --role ml_lead --by NAME --subject "
        rf"logistic-1@2 --evaluation {run_id} --note WHY; "
        r"for a load test, staging or a trial, 'allow_failed_gates' runs it anyway$",
    ):
        check_clearance(trained, "logistic-1")
    # The command line names its own option for it, and says what was refused: scoring.
    with chdir(trained.root):
        refused = CliRunner().invoke(
            app, ["score", "logistic-1", "data/customers.csv", "scored.csv"]
        )
    assert refused.exit_code == 1
    said = " ".join(refused.stderr.split())
    assert "logistic-1@2 may not be used to score: gates failed in evaluation" in said
    assert "to score it anyway: mlplan approve deploy --role ml_lead --by NAME" in said
    assert said.endswith(
        "for a load test, staging or a trial, --allow-failed-gates scores with it anyway"
    )
    assert "deployed" not in said
    check_clearance(trained, "logistic-1", allow_failed_gates=True)  # a load test, staging
    # Scoring a file for use is a deployment too: refused, and nothing written.
    source = trained.root / "to_score.parquet"
    pq.write_table(churn_table(rows=50, seed=9).drop_columns(["churned"]), source)
    with pytest.raises(CheckFailedError, match="logistic-1@2 may not be used to score"):
        score_file(trained, "logistic-1", source, trained.root / "scored.parquet")
    assert not (trained.root / "scored.parquet").exists()
    trial = score_file(
        trained, "logistic-1", source, trained.root / "trial.parquet", allow_failed_gates=True
    )
    assert trial.rows == 50
    approval = approve(
        trained, "deploy", role="ml_lead", by="Priya", subject="logistic-1", note="pilot"
    )
    check_clearance(trained, "logistic-1")
    assert score_file(trained, "logistic-1", source, trained.root / "scored.parquet").rows == 50
    # The override withdrawn: the model is no longer cleared; the record keeps both.
    with pytest.raises(GateError, match=r"revoked by role 'ml_lead' per the plan; got 'analyst'"):
        revoke_approval(trained, approval.id, role="analyst", by="Sam")
    revoked = revoke_approval(trained, approval.id, role="ml_lead", by="Priya", note="pilot over")
    assert not revoked.active and revoked.revoke_note == "pilot over"
    with pytest.raises(CheckFailedError, match="logistic-1@2 may not be deployed"):
        check_clearance(trained, "logistic-1")
    with pytest.raises(UsageError, match=r"approval \d+ was revoked already, by Priya"):
        revoke_approval(trained, approval.id, role="ml_lead", by="Priya")
    with pytest.raises(NotFoundError, match=r"no approval 999; approvals that count: none"):
        revoke_approval(trained, 999, role="ml_lead", by="Priya")
    kept = list_approvals(trained, "deploy", include_revoked=True)
    assert [a.id for a in kept] == [approval.id] and list_approvals(trained, "deploy") == []

    with chdir(trained.root):
        listed = CliRunner().invoke(app, ["approvals", "list", "--all", "--json"])
    assert json.loads(listed.stdout)[0]["revoked_by"] == "Priya"


@pytest.mark.slow
def test_the_report_opens_offline_in_headless_chromium(trained: Workspace) -> None:
    from playwright.sync_api import sync_playwright

    from mlplan.serving._browser import CHROMIUM_FLAGS, chromium_path

    executable = chromium_path()
    assert executable, "make test installs chromium (scripts/system-deps.sh)"
    result = evaluate(trained, "logistic-1", n_boot=20)
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.goto(result.files["evaluation.html"].as_uri())
            figures = page.evaluate("document.querySelectorAll('figure svg').length")
            title = page.title()
            card = browser.new_page()
            card.on("request", lambda request: requested.append(request.url))
            card.goto(result.files["model-card.html"].as_uri())
            tables = card.evaluate("document.querySelectorAll('table').length")
        finally:
            browser.close()
    assert title == "Evaluation of logistic-1" and figures >= 4 and tables >= 2
    assert all(url.startswith("file://") for url in requested)  # nothing fetched


def test_a_candidate_is_compared_with_the_model_in_production(
    trained: Workspace, editor: Edit
) -> None:
    from mlplan.serving import deploy

    r = evaluate(trained, "logistic-1", n_boot=0).report
    assert "production:pr_auc" not in r["regressions"]  # nothing deployed: no default check
    editor(
        trained,
        "  no_regression: []",
        "  no_regression:\n    - {metric: accuracy, against: production}",
    )
    r = evaluate(trained, "logistic-1", n_boot=0).report
    assert r["regressions"]["production:accuracy"]["reason"] == (
        "no model is deployed to production yet (mlplan deploy MODEL)"
    )
    item = status(trained).get("eval.regressions")
    assert (item.state, item.next_step) == ("missing", "mlplan deploy MODEL")
    deploy(trained, "logistic-1", by="Priya", allow_failed_gates=True)
    r = evaluate(trained, "logistic-1", n_boot=0).report
    assert r["regressions"]["production:accuracy"]["reason"] == (
        "logistic-1@2 is the model in production"
    )
    assert status(trained).get("eval.regressions").next_step is None  # nothing to deploy
    train_model(trained, family="gbt")
    r = evaluate(trained, "gbt-1", n_boot=50).report
    check = r["regressions"]["production:accuracy"]
    assert check["name"] == "logistic-1@2" and check["rows"]
    overall = next(x for x in check["rows"] if x["slice"] == "overall")
    stored = latest_evaluation(trained, "logistic-1")
    assert stored is not None
    production = stored.report["overall"]["accuracy"]
    assert overall["other"] == pytest.approx(production["value"])  # its own figure, same rows
    assert overall["candidate"] == pytest.approx(r["overall"]["accuracy"]["value"])
    gate = next(g for g in r["gates"] if g["id"] == "no_regression:production:accuracy")
    assert gate["state"] in {"pass", "fail"}


def _against_production(report: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(
        v for k, v in report["regressions"].items() if k.startswith("production:")
    )
    return found


def test_production_from_an_older_dataset_version_is_compared_with_care(
    trained: Workspace,
) -> None:
    from mlplan.serving import deploy

    deploy(trained, evaluated(trained))
    path = trained.root / "data" / "customers.csv"
    # A new version of the data (more rows, same columns): production can score it, with a note.
    write_csv(churn_table(rows=2000, seed=3), path)
    register_dataset(trained, "customers")
    split_dataset(trained, "customers", stratify="churned", seed=1)
    train_model(trained, family="logistic")
    check = _against_production(evaluate(trained, "logistic-2", n_boot=0).report)
    assert check["rows"] and check["name"] == "logistic-1@2"
    assert "logistic-1@2 learned from customers@1/s1, not customers@2/s1" in check["note"]
    # A column renamed: production cannot score the new rows; the check waits, nothing fails.
    table = churn_table(rows=2000, seed=3).rename_columns(
        ["customer_id", "name", "gender", "region", "age", "monthly_charges", "churned"]
    )
    write_csv(table, path)
    register_dataset(trained, "customers")
    split_dataset(trained, "customers", stratify="churned", seed=1)
    train_model(trained, family="logistic")
    check = _against_production(evaluate(trained, "logistic-3", n_boot=0).report)
    assert check["reason"].startswith("logistic-1@2 (in production) cannot score these rows: ")
    assert "charges" in check["reason"]


def test_a_new_threshold_is_a_new_package_version_and_production_keeps_its_own(
    trained: Workspace,
) -> None:
    from mlplan.modeling import list_models
    from mlplan.serving import deploy, load_served_model
    from mlplan.workspace import get_deployment

    # The first evaluation chooses the plan's threshold (f1): version 2, derived from 1.
    first = evaluate(trained, "logistic-1", n_boot=0)
    assert first.package is not None
    assert (first.package["ref"], first.package["parent"], first.package["new"]) == (
        "logistic-1@2",
        "logistic-1@1",
        True,
    )
    deploy(trained, evaluated(trained), by="Priya")
    live = get_deployment(trained)
    assert (live.model_ref, live.package_sha256) == ("logistic-1@2", first.package["sha256"])
    v2 = get_model(trained, "logistic-1@2")
    stored = {n: trained.store.artifacts.path(h).read_bytes() for n, h in v2.package.items()}
    # Another threshold: a new version with a new hash; production and version 2 unchanged.
    strict = evaluate(trained, "logistic-1", threshold=0.9, n_boot=0)
    assert strict.package is not None and strict.package["new"]
    assert (strict.package["ref"], strict.package["parent"]) == ("logistic-1@3", "logistic-1@2")
    assert strict.package["sha256"] not in {live.package_sha256, v2.package_sha256}
    assert get_deployment(trained) == live
    assert get_model(trained, "logistic-1@2") == v2
    assert {
        n: trained.store.artifacts.path(h).read_bytes() for n, h in v2.package.items()
    } == stored
    served = load_served_model(trained, get_deployment(trained).model_ref)
    assert served.threshold == first.report["threshold"]["value"] != 0.9
    assert get_model(trained, "logistic-1").ref == "logistic-1@3"  # a bare name: the newest
    assert get_model(trained, "logistic-1@3").parent == "logistic-1@2"
    # Evaluating again at the package's own threshold, or making the same package from its
    # parent again, writes no new version.
    again = evaluate(trained, "logistic-1", n_boot=0).package
    assert again is not None and (again["ref"], again["new"]) == ("logistic-1@3", False)
    same = evaluate(trained, "logistic-1@2", threshold=0.9, n_boot=0).package
    assert same is not None and (same["ref"], same["new"]) == ("logistic-1@3", False)
    assert [m.ref for m in list_models(trained, versions=True)] == [
        "logistic-1@1",
        "logistic-1@2",
        "logistic-1@3",
    ]
    assert [m.ref for m in list_models(trained)] == ["logistic-1@3"]
    # Lineage: version 3 was made by an evaluation that read version 2.
    graph = lineage(trained, "logistic-1")
    assert graph.subject.ref == "logistic-1@3"
    made = graph.producer_of("logistic-1@3")
    assert made is not None and made.job == "evaluate"
    assert ("model", "logistic-1@2") in {(n.kind, n.ref) for n in made.inputs}
    with pytest.raises(NotFoundError, match=r"'logistic-1@7' not found; logistic-1 has versions: "):
        get_model(trained, "logistic-1@7")


def test_slice_discovery_out_of_time_says_what_was_cut_in_every_report(
    trained: Workspace, editor: Edit
) -> None:
    """evaluation.discovery.max_seconds: 0 tests the single conditions only; the JSON and
    HTML reports, the model card's limitations and the command's output say that levels 2-3
    were not searched."""
    editor(
        trained,
        "  discovery: {max_conditions: 3, min_support: 30, max_seconds: 60}",
        "  discovery: {max_seconds: 0}",
    )
    runner = CliRunner()
    with chdir(trained.root):
        shown = runner.invoke(app, ["evaluate", "logistic-1", "--bootstrap", "0"])
    assert shown.exit_code in (0, 1), shown.output
    said = " ".join(shown.output.split())
    assert "note: slice discovery stopped after" in said
    assert "1 of 3 condition levels searched (levels 2-3 not searched)" in said
    stored = latest_evaluation(trained, "logistic-1")
    assert stored is not None
    found = stored.report["discovery"]
    assert found["max_seconds"] == 0 and found["levels"]["searched"] == 1
    assert found["levels"]["tested"] == [found["tested"]]
    assert "1 of 3 condition levels searched" in found["cut"]
    assert all(len(d["conditions"]) == 1 for d in found["slices"])
    # Still found: the planted failure is one condition.
    assert "region = 'west'" in [" and ".join(d["conditions"]) for d in found["slices"]]
    html = (trained.root / "reports" / "logistic-1" / "evaluation.html").read_text()
    assert found["cut"] in html
    card = (trained.root / "reports" / "logistic-1" / "model-card.md").read_text()
    assert f"- Slice discovery was cut short: {found['cut'].rstrip('.')}." in card
