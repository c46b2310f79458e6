"""Behaviour asked for by a review of the Labels stage: relabel rounds that can come back,
opaque ids for batches that leave the company, the plan's positive class, stale evidence."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from tests.labels.conftest import TRUTH, EditPlan, Simulate, WriteRows

from mlplan.checklist import status
from mlplan.data import get_dataset, register_dataset
from mlplan.errors import DataError, UsageError
from mlplan.labels import (
    export_batch,
    export_relabel_batch,
    human_level_performance,
    import_annotations,
    list_batches,
    load_annotations,
    measure_agreement,
    measure_hlp,
    read_annotations,
    relabel_queue,
)
from mlplan.workspace import Workspace


def _rows(path: str | Path) -> list[dict[str, str]]:
    with Path(path).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _answer(rows: list[dict[str, str]], label: str | None = None) -> list[dict[str, str]]:
    return [r | {"label": label if label is not None else "1"} for r in rows]


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_relabel_round_goes_to_fresh_annotators_and_comes_back(
    registered: Workspace, simulate: Simulate, write_rows: WriteRows, tmp_path: Path
) -> None:
    # Two annotators who disagree a lot, so the queue fills up.
    import_annotations(
        registered, write_rows(simulate(range(60), {"ann": 0.9, "bob": 0.6}, seed=3))
    )
    measure_agreement(registered, n_boot=0)
    queued = {e.item_id for e in relabel_queue(registered)}
    assert queued

    batch = export_relabel_batch(registered, annotators=["ann", "bob", "cat", "dan"])
    assignments = _rows(batch.files[0])
    # Nobody relabels an item they labeled before: only cat and dan are fresh.
    assert {r["annotator"] for r in assignments} == {"cat", "dan"}
    assert {r["item_id"] for r in assignments} == queued
    assert all(
        e.status == "triaged" and e.note == f"sent for relabeling in batch {batch.number}"
        for e in relabel_queue(registered, status=None)
        if e.item_id in queued
    )

    result = import_annotations(
        registered, _write(tmp_path / "back.csv", _answer(assignments)), batch=batch.number
    )
    assert result.counts["imported"] == len(assignments)
    assert list_batches(registered)[-1]["labels_imported"] == len(assignments)


def test_external_batches_carry_opaque_ids_and_no_sensitive_columns(
    edit_plan: EditPlan, ws: Workspace, tmp_path: Path
) -> None:
    edit_plan("    id_column: null", "    id_column: customer_id")
    edit_plan("    sensitive_attributes: null", "    sensitive_attributes: [gender, age]")
    register_dataset(ws, "customers")
    batch = export_batch(ws, strategy="outsourced", n=20, overlap=0.0, seed=2)
    rows = _rows(batch.files[0])
    ids = {str(i) for i in range(1, 401)}
    assert all(r["item_id"].startswith("k") and r["item_id"] not in ids for r in rows)
    assert {"gender", "age", "email", "name", "churned"}.isdisjoint(rows[0])
    assert "region" in rows[0]

    answered = _write(tmp_path / "answers.csv", _answer(rows, "0"))
    with pytest.raises(DataError, match=r"pass --batch N"):
        import_annotations(ws, answered)  # the keys mean nothing without their batch
    result = import_annotations(ws, answered, batch=batch.number)
    assert result.counts["imported"] == 20
    annotations, _ = load_annotations(ws, get_dataset(ws, "customers@1"))
    assert set(annotations.items) <= ids  # stored under the real ids


def test_hlp_uses_the_plans_positive_class(
    edit_plan: EditPlan, sqlite_ws: Workspace, simulate: Simulate, write_rows: WriteRows
) -> None:
    edit_plan("positive_class: null", 'positive_class: "0"')
    register_dataset(sqlite_ws, "customers")
    import_annotations(sqlite_ws, write_rows(simulate(range(80), {"ann": 0.9, "bob": 0.8})))
    as_zero = measure_hlp(sqlite_ws, n_boot=0)
    annotations, _ = load_annotations(sqlite_ws, get_dataset(sqlite_ws, "customers@1"))

    as_one = human_level_performance(annotations, positive="1", n_boot=0)
    assert as_zero.metrics["recall"].value != as_one.metrics["recall"].value
    with pytest.raises(UsageError, match=r"positive_class 'yes' is not one of the classes"):
        human_level_performance(annotations, positive="yes", n_boot=0)


def test_evidence_goes_stale_when_labels_arrive(
    registered: Workspace, simulate: Simulate, write_rows: WriteRows
) -> None:
    import_annotations(
        registered, write_rows(simulate(range(40), {"ann": 0.95, "bob": 0.95}), "first.csv")
    )
    measure_agreement(registered, n_boot=0)
    measure_hlp(registered, n_boot=50)
    report = status(registered)
    assert report.get("labels.hlp").state == "done"
    import_annotations(registered, write_rows(simulate(range(40, 60), {"ann": 0.9}), "second.csv"))
    report = status(registered)
    assert report.get("labels.hlp").state == "missing"
    assert "measured on 80 labels, 100 now" in report.get("labels.hlp").evidence
    assert report.get("labels.agreement").state == "missing"
    assert report.get("labels.agreement").next_step == "mlplan labels agreement (measure it again)"


def test_bad_requests_are_refused(registered: Workspace, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--n must be at least 1. Got -3 instead."):
        export_batch(registered, n=-3)
    export = tmp_path / "ls.json"
    export.write_text(
        json.dumps(
            [
                {
                    "id": 5,
                    "data": {"item_id": "1"},
                    "annotations": [
                        {
                            "completed_by": 2,
                            "result": [{"type": "choices", "value": {"choices": ["0", "1"]}}],
                        }
                    ],
                }
            ]
        )
    )
    with pytest.raises(DataError, match=r"task 5 annotations\[0\]: several classes chosen"):
        read_annotations(export)
    export.write_text(json.dumps([{"id": 6, "data": {"item_id": "1"}, "annotations": ["x"]}]))
    with pytest.raises(DataError, match=r"task 6 annotations\[0\]: is not a JSON object"):
        read_annotations(export)


def test_labels_need_a_class_set(
    edit_plan: EditPlan, sqlite_ws: Workspace, write_rows: WriteRows
) -> None:
    text = sqlite_ws.plan_path.read_text().replace(
        "    labeling: {strategy: in-house}",
        "    labeling: {strategy: in-house}\n    role: unlabeled",
    )
    sqlite_ws.plan_path.write_text(text)
    table_path = sqlite_ws.root / "data" / "customers.csv"
    lines = table_path.read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, h in enumerate(header) if h.strip('"') != "churned"]
    table_path.write_text(
        "\n".join(",".join(line.split(",")[i] for i in keep) for line in lines) + "\n"
    )
    register_dataset(sqlite_ws, "customers")
    rows = [{"item_id": "1", "annotator": "ann", "label": str(TRUTH[1])}]
    with pytest.raises(UsageError, match=r"no class set to check labels against"):
        import_annotations(sqlite_ws, write_rows(rows))


def test_an_expert_can_give_a_regular_and_a_gold_label(
    registered: Workspace, write_rows: WriteRows
) -> None:
    rows = [{"item_id": str(i), "annotator": "expert", "label": str(TRUTH[i])} for i in range(5)]
    import_annotations(registered, write_rows(rows, "regular.csv"))
    import_annotations(registered, write_rows(rows, "gold.csv"), gold=True)
    gold, _ = load_annotations(registered, get_dataset(registered, "customers@1"), gold=True)
    assert len(gold.item) == 5
    with pytest.raises(DataError, match=r"5 \(item, annotator\) pairs already imported"):
        import_annotations(registered, write_rows(rows, "again.csv"), gold=True)


@pytest.mark.parametrize("offset", [0, 10**9], ids=["dense-ids", "sparse-ids"])
def test_integer_and_text_inputs_encode_alike(offset: int) -> None:
    import numpy as np

    from mlplan.labels import AnnotationSet

    rng = np.random.default_rng(5)
    items = rng.integers(0, 50, 400) + offset
    who = rng.integers(0, 7, 400)
    labels = rng.integers(0, 12, 400)
    as_ints = AnnotationSet.from_records(items, who, labels)
    as_text = AnnotationSet.from_records(
        [str(v) for v in items], [str(v) for v in who], [str(v) for v in labels]
    )
    assert (as_ints.items, as_ints.annotators, as_ints.classes) == (
        as_text.items,
        as_text.annotators,
        as_text.classes,
    )
    assert (as_ints.counts == as_text.counts).all()
