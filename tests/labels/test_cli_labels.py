"""``mlplan labels ...`` end to end through Typer's CliRunner: estimate, export, import,
agreement, HLP, consensus, the queue and triage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ok
from tests.labels.conftest import fill_batch


def as_json(result: Any) -> Any:
    return json.loads(ok(result).stdout)


def test_labels_flow_through_the_cli(cli: Any, project_dir: Path) -> None:
    ok(cli("data", "add", "customers"))

    estimates = as_json(cli("labels", "estimate", "--n", "1000", "--json"))
    assert [(e["strategy"], e["labels"], e["cost"]) for e in estimates] == [
        ("crowdsourced", 3000, 150.0),
        ("outsourced", 1200, 240.0),
        ("in-house", 1200, 600.0),
    ]
    table = ok(cli("labels", "estimate", "--overlap", "0.5")).stdout
    assert "Cost and time by strategy" in table and "in-house ◀" in table

    batch = as_json(
        cli(
            "labels",
            "export",
            "--n",
            "50",
            "--overlap",
            "1",
            "--annotators",
            "ann,bob",
            "--seed",
            "3",
            "--json",
        )
    )
    assert (batch["number"], batch["items"], batch["assignments"]) == (1, 50, 100)
    assert batch["annotators"] == ["ann", "bob"]
    assert batch["files"][0].endswith("labels/batch-1.csv")
    fill_batch(Path(batch["files"][0]), project_dir / "filled.csv", bob_wrong_every=5)

    imported = as_json(cli("labels", "import", "filled.csv", "--batch", "1", "--json"))
    assert imported["counts"]["imported"] == 100 and imported["problems"] == []

    again = cli("labels", "import", "filled.csv")
    assert again.exit_code == 1
    assert again.stderr.startswith("error: ")
    assert "not imported" in again.stderr
    assert "100 (item, annotator) pairs already imported" in again.stderr

    agreement = as_json(cli("labels", "agreement", "--boot", "50", "--json"))
    assert agreement["dataset"] == "customers@1"
    assert agreement["multiply_labeled_items"] == 50
    assert agreement["metric"] == "krippendorff_alpha"
    assert agreement["value"] == agreement["krippendorff_alpha"]["value"]
    low, high = agreement["krippendorff_alpha"]["low"], agreement["krippendorff_alpha"]["high"]
    assert low <= agreement["value"] <= high
    assert {row["annotator"] for row in agreement["annotator_table"]} == {"ann", "bob"}
    assert agreement["queued"] == 10  # bob's ten mistakes
    text = ok(cli("labels", "agreement", "--boot", "0")).stdout
    assert "Krippendorff's alpha (nominal)" in text and "Annotators" in text

    hlp = as_json(cli("labels", "hlp", "--min-items", "10", "--boot", "50", "--json"))
    assert hlp["reference"] == "consensus of the other annotators"
    assert hlp["items"] == 50 and hlp["metrics"]["accuracy"]["value"] == 0.8
    # Each figure names the label set it came from, and the run that is its lineage.
    assert hlp["labels_sha256"] == agreement["labels_sha256"] and len(hlp["run_id"]) == 36
    text = ok(cli("labels", "hlp", "--min-items", "10", "--boot", "0")).stdout
    assert f"sha256 {hlp['labels_sha256'][:12]}" in text
    assert "mlplan lineage customers@1:hlp" in text
    tree = ok(cli("lineage", "customers@1:hlp")).stdout
    assert "labels hlp" in tree and "customers@1:labels (dataset_version) sha256 " in tree
    assert "labels import" in tree and "filled.csv" in tree
    too_few = cli("labels", "hlp", "--min-items", "60")
    assert too_few.exit_code == 2
    assert "there are 50 multiply-labeled items" in too_few.stderr

    queue = as_json(cli("labels", "queue", "--json"))
    assert len(queue) == 10 and {e["source"] for e in queue} == {"disagreement"}
    item = queue[0]["item_id"]
    changed = as_json(
        cli("labels", "triage", item, "--status", "resolved", "--note", "ann is right", "--json")
    )
    assert changed == {"item_id": item, "status": "resolved", "entries": 1}
    assert len(as_json(cli("labels", "queue", "--json"))) == 9
    resolved = as_json(cli("labels", "queue", "--status", "resolved", "--json"))
    assert [(e["item_id"], e["note"]) for e in resolved] == [(item, "ann is right")]
    missing = cli("labels", "triage", "9999", "--status", "resolved")
    assert missing.exit_code == 1 and "is not in the relabel queue" in missing.stderr

    consensus = as_json(cli("labels", "consensus", "--out", "consensus.csv", "--json"))
    assert (consensus["method"], consensus["items"], consensus["resolved"]) == ("majority", 50, 40)
    assert consensus["labels_sha256"] == hlp["labels_sha256"]
    made = ok(cli("lineage", "consensus.csv")).stdout
    assert "labels consensus" in made and consensus["sha256"][:12] in made
    assert (
        (project_dir / "consensus.csv").read_text().startswith("item_id,label,confidence,labels\n")
    )

    relabel = as_json(cli("labels", "queue", "--export", "--json"))
    assert (relabel["number"], relabel["selection"], relabel["items"]) == (2, "relabel", 9)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "0"], "error: --n must be at least 1. Got 0 instead."),
        (["--n", "5000"], "ask for fewer (--n)"),
        (["--overlap", "1.5"], "error: --overlap must be in [0, 1]. Got 1.5 instead."),
        (
            ["--select", "stratified", "--slice", "nope"],
            "error: --slice 'nope' is not a slice of the plan; slices: none",
        ),
        (
            ["--select", "uncertainty", "--n", "10"],
            "error: uncertainty selection needs model predictions: pass --scores FILE",
        ),
    ],
    ids=["n-below-1", "n-too-many", "overlap", "slice", "scores"],
)
def test_export_errors_name_the_option(cli: Any, args: list[str], message: str) -> None:
    ok(cli("data", "add", "customers"))
    result = cli("labels", "export", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_refused_import_names_the_options_that_help(cli: Any, project_dir: Path) -> None:
    ok(cli("data", "add", "customers"))
    bad = project_dir / "bad.csv"
    bad.write_text("item_id,annotator,label\n9999,ann,0\n1,ann,0\n")
    result = cli("labels", "import", "bad.csv")
    assert result.exit_code == 1
    assert "opaque keys: pass --batch N)" in result.stderr
    assert "import the rest with --skip-invalid (the skipped rows are recorded)" in result.stderr


def test_a_ragged_label_row_is_refused_and_nothing_imported(cli: Any, project_dir: Path) -> None:
    ok(cli("data", "add", "customers"))
    labels = project_dir / "labels.csv"
    # Row 3 lost its label: it was counted as "left blank", and the import went through.
    labels.write_text("item_id,annotator,label\n0,ann,0\n1,ann\n2,ann,1\n\n")
    result = cli("labels", "import", "labels.csv", "--skip-invalid")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {labels}:3: row has 2 fields, the header has 3;")
    labels.write_text("item_id,annotator,label\n0,ann,0\n1,ann,1\n2,ann,1\n\n")
    fixed = as_json(cli("labels", "import", "labels.csv", "--json"))
    assert fixed["counts"]["imported"] == 3  # none of them was stored by the refused import
