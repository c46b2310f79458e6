"""The Labels stage against the store, on SQLite and on PostgreSQL: batches out, annotations
in (one transaction, problems counted with examples), agreement, HLP, consensus and the
relabel queue."""

from __future__ import annotations

import csv
import hashlib
import json
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
from tests.conftest import customers_table, write_csv
from tests.labels.conftest import TRUTH, EditPlan, Simulate, WriteRows

from mlplan.data import DatasetVersionInfo, get_dataset, register_dataset
from mlplan.errors import DataError, NotFoundError, ParameterError, UsageError
from mlplan.labels import (
    agreement,
    consensus_labels,
    disagreements,
    estimate,
    export_batch,
    export_relabel_batch,
    human_level_performance,
    import_annotations,
    issues_from_predictions,
    item_table,
    latest_label_report,
    list_batches,
    load_annotations,
    majority_vote,
    measure_agreement,
    measure_hlp,
    relabel_queue,
    triage,
)
from mlplan.store import Base, LabelBatchRecord, LabelImportRecord
from mlplan.workspace import Workspace

CUSTOMERS = customers_table()
INSTRUCTIONS = "Did the customer cancel? Read the account history first."
CLASSES = '{"0": "still a customer", "1": "cancelled within 30 days"}'


def _row_counts(ws: Workspace) -> dict[str, int]:
    with ws.store.engine.connect() as connection:
        return {
            table.name: connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
        }


def _read_csv(path: str | Path) -> list[dict[str, str]]:
    with Path(path).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _answer(rows: list[dict[str, str]], label: str = "1") -> list[dict[str, str]]:
    """The exported rows, every one answered with ``label``."""
    return [r | {"label": label} for r in rows]


def _fill(
    rows: list[dict[str, str]], seed: int = 0, accuracy: float = 0.85
) -> list[dict[str, str]]:
    """The exported rows with labels filled in as an annotator right with ``accuracy`` would."""
    rng = np.random.default_rng(seed)
    out = []
    for row in rows:
        truth = TRUTH[int(row["item_id"])]
        label = truth if rng.random() < accuracy else 1 - truth
        out.append(row | {"label": str(label), "seconds": str(int(rng.integers(5, 40)))})
    return out


def _info(ws: Workspace) -> DatasetVersionInfo:
    return get_dataset(ws, "customers@1")


def _stored(ws: Workspace) -> list[tuple[str, str, str]]:
    annotations = load_annotations(ws, _info(ws)).annotations
    return sorted(
        (annotations.items[i], annotations.annotators[a], annotations.classes[c])
        for i, a, c in zip(annotations.item, annotations.annotator, annotations.label, strict=True)
    )


def _configure(edit_plan: EditPlan, ws: Workspace, *edits: tuple[str, str]) -> Workspace:
    for old, new in edits:
        edit_plan(old, new)
    register_dataset(ws, "customers")
    return ws


WITH_INSTRUCTIONS = (
    ("  instructions: null", f"  instructions: {INSTRUCTIONS}"),
    ("  classes: {}", f"  classes: {CLASSES}"),
)
WITH_REGION_SLICE = (("slices: []", "slices: [{name: region, columns: [region]}]"),)


# -- export --------------------------------------------------------------------------------------


def test_export_writes_the_batch_without_target_or_pii_and_records_it(
    ws: Workspace, edit_plan: EditPlan
) -> None:
    _configure(edit_plan, ws, *WITH_INSTRUCTIONS)

    batch = export_batch(ws, n=50, seed=3)

    rate = ws.plan.labels.rates["in-house"]
    assert (batch.number, batch.dataset, batch.strategy, batch.selection) == (
        1,
        "customers@1",
        "in-house",
        "random",
    )
    assert (batch.items, batch.assignments) == (50, 60)  # the plan's 20% overlap, twice
    assert batch.annotators == ["in-house-1", "in-house-2", "in-house-3"]
    assert batch.estimate == estimate("in-house", rate, items=50, overlap=0.2)
    assert [e.strategy for e in batch.comparison] == ["crowdsourced", "outsourced", "in-house"]
    main, sidecar = (Path(f) for f in batch.files)
    assert (main, sidecar) == (
        ws.root / "labels" / "batch-1.csv",
        ws.root / "labels" / "batch-1.instructions.md",
    )

    rows = _read_csv(main)
    assert list(rows[0]) == [
        "batch",
        "item_id",
        "annotator",
        "label",
        "seconds",
        "age",
        "charges",
        "customer_id",
        "gender",
        "region",
    ]
    assert len(rows) == 60 and len({r["item_id"] for r in rows}) == 50
    assert {r["label"] for r in rows} == {""} and {r["batch"] for r in rows} == {"1"}
    for row in rows:
        source = CUSTOMERS.slice(int(row["item_id"]), 1).to_pylist()[0]
        assert row["customer_id"] == str(source["customer_id"])
        assert row["age"] == str(source["age"])
    text = main.read_text()
    assert "Person " not in text and "@example.com" not in text

    instructions = sidecar.read_text()
    assert INSTRUCTIONS in instructions
    assert "- **1**: cancelled within 30 days" in instructions
    assert "- **0**: still a customer" in instructions

    with ws.store.transaction() as session:
        record = session.scalars(sa.select(LabelBatchRecord)).one()
        assert (record.number, record.strategy, record.format, record.selection) == (
            1,
            "in-house",
            "csv",
            "random",
        )
        assert (record.items, record.assignments) == (50, 60)
        assert record.annotators == batch.annotators
        assert record.estimate == batch.estimate.to_dict()
        assert record.artifact_sha256 == hashlib.sha256(main.read_bytes()).hexdigest()


def test_a_second_batch_skips_labeled_items_and_takes_the_next_number(
    registered: Workspace, write_rows: WriteRows
) -> None:
    first = export_batch(registered, n=100, overlap=0.0, seed=1)
    import_annotations(registered, write_rows(_fill(_read_csv(first.files[0]))), batch=1)

    second = export_batch(registered, n=300, overlap=0.0, seed=1)

    first_items = {r["item_id"] for r in _read_csv(first.files[0])}
    second_items = {r["item_id"] for r in _read_csv(second.files[0])}
    assert second.number == 2
    assert len(second_items) == 300 and not first_items & second_items
    # batch 2 is not labeled yet, so its items are free again; batch 1's are not
    with pytest.raises(UsageError, match=r"asked for 301 items but only 300 are not labeled yet"):
        export_batch(registered, n=301, seed=1)


def test_the_plans_id_column_names_the_items(ws: Workspace, edit_plan: EditPlan) -> None:
    _configure(edit_plan, ws, ("    id_column: null", "    id_column: customer_id"))

    batch = export_batch(ws, n=400, overlap=0.0, seed=2)

    rows = _read_csv(batch.files[0])
    assert "customer_id" not in rows[0]
    assert {int(r["item_id"]) for r in rows} == set(range(1, 401))
    by_id = {r["item_id"]: r for r in rows}
    assert by_id["400"]["age"] == str(CUSTOMERS.column("age")[399].as_py())
    items = item_table(ws, _info(ws))
    assert items.ids == [str(i) for i in range(1, 401)]
    assert items.table.num_rows == 400


def test_without_an_id_column_the_items_are_row_numbers(registered: Workspace) -> None:
    items = item_table(registered, _info(registered))
    assert items.ids == [str(i) for i in range(400)]
    assert items.table.column_names[0] == "customer_id"


def test_pii_goes_only_to_in_house_annotators_who_ask_for_it(registered: Workspace) -> None:
    with_pii = export_batch(registered, n=10, include_pii=True, seed=0)
    before = _row_counts(registered)

    with pytest.raises(
        UsageError,
        match=r"^personal data goes only to in-house annotators; outsourced batches never "
        r"include PII columns$",
    ):
        export_batch(registered, strategy="outsourced", n=10, include_pii=True)

    rows = _read_csv(with_pii.files[0])
    assert {"name", "email"} <= set(rows[0]) and "churned" not in rows[0]
    assert rows[0]["email"].endswith("@example.com")
    assert _row_counts(registered) == before


def test_external_batches_carry_opaque_ids_and_no_sensitive_columns(
    edit_plan: EditPlan, ws: Workspace, tmp_path: Path
) -> None:
    edit_plan("    id_column: null", "    id_column: customer_id")
    edit_plan("    sensitive_attributes: null", "    sensitive_attributes: [gender, age]")
    register_dataset(ws, "customers")
    batch = export_batch(ws, strategy="outsourced", n=20, overlap=0.0, seed=2)
    rows = _read_csv(batch.files[0])
    ids = {str(i) for i in range(1, 401)}
    assert all(r["item_id"].startswith("k") and r["item_id"] not in ids for r in rows)
    assert {"gender", "age", "email", "name", "churned"}.isdisjoint(rows[0])
    assert "region" in rows[0]

    answered = _write_csv(tmp_path / "answers.csv", _answer(rows, "0"))
    with pytest.raises(DataError, match=r"pass 'batch' N"):
        import_annotations(ws, answered)  # the keys mean nothing without their batch
    result = import_annotations(ws, answered, batch=batch.number)
    assert result.counts["imported"] == 20
    annotations = load_annotations(ws, get_dataset(ws, "customers@1")).annotations
    assert set(annotations.items) <= ids  # stored under the real ids


def test_crowdsourced_batches_give_every_item_k_annotators(registered: Workspace) -> None:
    default = export_batch(registered, strategy="crowdsourced", n=20, seed=0)
    five = export_batch(registered, strategy="crowdsourced", n=20, k=5, seed=0)

    assert (default.assignments, default.estimate.labels) == (60, 60)
    assert len(default.annotators) == 50 and default.annotators[0] == "crowdsourced-1"
    per_item = Counter(r["item_id"] for r in _read_csv(five.files[0]))
    assert set(per_item.values()) == {5} and len(per_item) == 20
    assert five.estimate.labels == 100


def test_named_annotators_share_the_batch(registered: Workspace) -> None:
    batch = export_batch(registered, n=40, overlap=0.5, annotators=["ann", "bob"], seed=0)

    loads = Counter(r["annotator"] for r in _read_csv(batch.files[0]))
    assert loads == {"ann": 30, "bob": 30}


def test_stratified_export_balances_the_plan_slice(ws: Workspace, edit_plan: EditPlan) -> None:
    _configure(edit_plan, ws, *WITH_REGION_SLICE)

    batch = export_batch(ws, n=30, overlap=0.0, selection="stratified", slice_name="region")

    regions = Counter(r["region"] for r in _read_csv(batch.files[0]))
    assert regions == {"north": 10, "south": 10, "east": 10}
    assert batch.selection == "stratified"
    with pytest.raises(
        ParameterError, match=r"^'slice_name' 'nope' is not a slice of the plan; slices: region$"
    ):
        export_batch(ws, n=30, selection="stratified", slice_name="nope")


def test_uncertainty_export_takes_the_items_the_model_is_least_sure_of(
    registered: Workspace, rng: np.random.Generator
) -> None:
    positive = rng.uniform(0.0, 0.3, 400)
    positive[[11, 22, 33]] = [0.5, 0.45, 0.58]
    scores = write_csv(
        pa.table({"item_id": np.arange(400), "0": 1 - positive, "1": positive}),
        registered.root / "scores.csv",
    )

    batch = export_batch(registered, n=3, overlap=0.0, selection="uncertainty", scores=scores)

    assert {r["item_id"] for r in _read_csv(batch.files[0])} == {"11", "22", "33"}
    bad = write_csv(pa.table({"id": [1], "p": [0.5]}), registered.root / "bad.csv")
    with pytest.raises(
        DataError,
        match=r"bad\.csv: missing columns item_id, 0, 1; expected "
        r"item_id and one probability column per class",
    ):
        export_batch(registered, n=3, selection="uncertainty", scores=bad)
    loose = write_csv(
        pa.table({"item_id": [1, 2], "0": [0.5, 0.9], "1": [0.5, 0.9]}),
        registered.root / "loose.csv",
    )
    with pytest.raises(
        DataError,
        match=r"1 rows of probabilities do not sum to 1, e\.g\. item "
        r"2 sums to 1\.8000",
    ):
        export_batch(registered, n=3, selection="uncertainty", scores=loose)


@pytest.mark.parametrize(
    ("edit", "kwargs", "message"),
    [
        (
            ("  strategy: in-house  #", "  strategy: null  #"),
            {},
            r"^no labeling strategy: pass 'strategy' in-house\|outsourced\|crowdsourced or set "
            r"labels\.strategy in the plan$",
        ),
        (
            ("    crowdsourced: {cost_per_label", "    # crowdsourced: {cost_per_label"),
            {"strategy": "crowdsourced"},
            r"^the plan has no rates for 'crowdsourced': add labels\.rates\.crowdsourced ",
        ),
        (None, {"overlap": 1.5}, r"^'overlap' must be in \[0, 1\]\. Got 1\.5 instead\.$"),
        (None, {"n": -3}, r"^'n' must be at least 1\. Got -3 instead\.$"),
        (None, {"n": 401}, r"^asked for 401 items but only 400 are not labeled yet"),
        (None, {"selection": "uncertainty"}, r"^uncertainty selection needs model predictions"),
    ],
    ids=[
        "no-strategy",
        "no-rates",
        "bad-overlap",
        "n-below-1",
        "too-many-items",
        "uncertainty-without-scores",
    ],
)
def test_export_refusals_record_nothing(
    ws: Workspace,
    edit_plan: EditPlan,
    edit: tuple[str, str] | None,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    _configure(edit_plan, ws, *([edit] if edit else []))
    before = _row_counts(ws)

    with pytest.raises(UsageError, match=message):
        export_batch(ws, **({"n": 10} | kwargs))

    assert _row_counts(ws) == before
    assert not (ws.root / "labels").exists()


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"n": 0}, "n"),
        ({"n": 401}, "n"),
        ({"overlap": -0.5}, "overlap"),
        ({"selection": "stratified", "slice_name": "nope"}, "slice_name"),
        ({"selection": "uncertainty"}, "scores"),
        (
            {"annotators": ["ann"], "overlap": 0.0, "items": ["1"], "already": {"1": {"ann"}}},
            "annotators",
        ),
    ],
    ids=["n-below-1", "n-too-many", "overlap", "slice", "scores", "annotators"],
)
def test_export_errors_name_the_parameter(
    registered: Workspace, kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(ParameterError) as raised:
        export_batch(registered, **({"n": 10} | kwargs))
    assert raised.value.param == param
    assert f"'{param}'" in str(raised.value)


def test_a_relabel_batch_refuses_unknown_item_ids(registered: Workspace) -> None:
    with pytest.raises(DataError, match=r"nope"):
        export_batch(registered, items=["3", "nope"])


# -- import --------------------------------------------------------------------------------------


def test_import_round_trip_stores_every_label_of_the_batch(
    registered: Workspace, write_rows: WriteRows
) -> None:
    batch = export_batch(registered, n=40, overlap=1.0, seed=5)
    filled = _fill(_read_csv(batch.files[0]))
    path = write_rows(filled)

    result = import_annotations(registered, path, batch=batch.number)

    assert result.to_dict() == {
        "dataset": "customers@1",
        "format": "csv",
        "counts": {
            "imported": 80,
            "unknown_items": 0,
            "bad_labels": 0,
            "duplicates": 0,
            "already_stored": 0,
            "blank": 0,
        },
        "problems": [],
    }
    assert _stored(registered) == sorted((r["item_id"], r["annotator"], r["label"]) for r in filled)
    seconds = load_annotations(registered, _info(registered)).seconds
    assert sorted(seconds.tolist()) == sorted(float(r["seconds"]) for r in filled)
    with registered.store.transaction() as session:
        record = session.scalars(sa.select(LabelImportRecord)).one()
        batch_id = session.scalar(
            sa.select(LabelBatchRecord.id).where(LabelBatchRecord.number == 1)
        )
        assert (record.batch_id, record.format, record.source_path) == (
            batch_id,
            "csv",
            "labels.csv",
        )
        assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert record.counts["imported"] == 80


def _mixed_rows() -> list[dict[str, str]]:
    return [
        {"item_id": "0", "annotator": "ann", "label": "0"},  # line 2
        {"item_id": "1", "annotator": "ann", "label": "1"},
        {"item_id": "9999", "annotator": "ann", "label": "0"},  # line 4: unknown item
        {"item_id": "2", "annotator": "bob", "label": "maybe"},  # line 5: not a class
        {"item_id": "3", "annotator": "bob", "label": "0"},  # lines 6, 7: twice
        {"item_id": "3", "annotator": "bob", "label": "1"},
        {"item_id": "4", "annotator": "bob", "label": "1"},
    ]


def test_an_import_with_problems_is_refused_with_counts_and_examples_and_stores_nothing(
    registered: Workspace, write_rows: WriteRows
) -> None:
    path = write_rows(_mixed_rows())
    before = _row_counts(registered)

    with pytest.raises(DataError) as raised:
        import_annotations(registered, path)

    assert str(raised.value).splitlines() == [
        f"{path}: not imported —",
        f"1 unknown item ids, e.g. {path}:4 (item '9999', annotator 'ann', label '0')",
        f"1 labels outside the class set, e.g. {path}:5 (item '2', annotator 'bob', label 'maybe')",
        f"2 duplicate (item, annotator) pairs in the file, e.g. {path}:6 (item '3', annotator "
        f"'bob', label '0'); {path}:7 (item '3', annotator 'bob', label '1')",
        "(ids from an outsourced or crowdsourced batch are opaque keys: pass 'batch' N)",
        "Fix the file, or import the rest with 'skip_invalid' (the skipped rows are recorded)",
    ]
    # The command line names its options instead.
    assert raised.value.naming({"batch": "--batch", "skip_invalid": "--skip-invalid"}).endswith(
        "pass --batch N)\nFix the file, or import the rest with --skip-invalid (the skipped "
        "rows are recorded)"
    )
    assert _row_counts(registered) == before


def test_skip_invalid_imports_the_good_rows_and_records_the_rest(
    registered: Workspace, write_rows: WriteRows
) -> None:
    result = import_annotations(registered, write_rows(_mixed_rows()), skip_invalid=True)

    assert result.counts == {
        "imported": 3,
        "unknown_items": 1,
        "bad_labels": 1,
        "duplicates": 2,
        "already_stored": 0,
        "blank": 0,
    }
    assert len(result.to_dict()["problems"]) == 3
    assert _stored(registered) == [("0", "ann", "0"), ("1", "ann", "1"), ("4", "bob", "1")]
    with registered.store.transaction() as session:
        assert session.scalars(sa.select(LabelImportRecord.counts)).one() == result.counts


def test_pairs_already_stored_are_refused_or_skipped(
    registered: Workspace, write_rows: WriteRows
) -> None:
    first = [{"item_id": str(i), "annotator": "ann", "label": str(TRUTH[i])} for i in range(5)]
    import_annotations(registered, write_rows(first, "first.csv"))
    again = [*first[2:], {"item_id": "7", "annotator": "ann", "label": "0"}]
    path = write_rows(again, "again.csv")

    with pytest.raises(
        DataError,
        match=r"3 \(item, annotator\) pairs already imported, e\.g\. .*again\.csv:2 \(item '2'",
    ):
        import_annotations(registered, path)
    result = import_annotations(registered, path, skip_invalid=True)

    assert (result.counts["imported"], result.counts["already_stored"]) == (1, 3)
    assert len(_stored(registered)) == 6


@pytest.mark.parametrize(
    ("rows", "kwargs", "error", "message"),
    [
        (
            [{"item_id": "9999", "annotator": "ann", "label": "0"}],
            {"skip_invalid": True},
            DataError,
            r"labels\.csv: nothing left to import —\n1 unknown item ids",
        ),
        ([], {}, DataError, r"labels\.csv: no labels in the file$"),
        (
            [{"item_id": "1", "annotator": "ann", "label": "0"}],
            {"batch": 7},
            NotFoundError,
            r"^no labeling batch 7; see mlplan labels batches$",
        ),
    ],
    ids=["nothing-valid", "no-labels", "unknown-batch"],
)
def test_imports_that_cannot_store_anything(
    registered: Workspace,
    write_rows: WriteRows,
    rows: list[dict[str, str]],
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    path = write_rows(rows) if rows else registered.root / "labels.csv"
    if not rows:
        path.write_text("item_id,annotator,label\n")
    before = _row_counts(registered)

    with pytest.raises(error, match=message):
        import_annotations(registered, path, **kwargs)

    assert _row_counts(registered) == before


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
    gold = load_annotations(registered, get_dataset(registered, "customers@1"), gold=True)
    assert len(gold.annotations.item) == 5
    with pytest.raises(DataError, match=r"5 \(item, annotator\) pairs already imported"):
        import_annotations(registered, write_rows(rows, "again.csv"), gold=True)


def test_label_studio_round_trip(registered: Workspace) -> None:
    batch = export_batch(registered, n=12, overlap=1.0, fmt="labelstudio", seed=4)
    tasks_path, config_path = (Path(f) for f in batch.files)
    assert (tasks_path.name, config_path.name) == ("batch-1.json", "batch-1.config.xml")
    choices = ET.fromstring(config_path.read_text()).find("Choices")
    assert choices is not None
    assert [c.attrib["value"] for c in choices.findall("Choice")] == ["0", "1"]
    tasks = json.loads(tasks_path.read_text())
    assert len(tasks) == 12
    assert all("churned" not in t["data"]["features"] for t in tasks)
    assert all("email" not in t["data"]["features"] for t in tasks)

    # What Label Studio exports once the annotators are done.
    expected = []
    for task in tasks:
        task["annotations"] = []
        for n, who in enumerate(task["meta"]["annotators"]):
            label = str(TRUTH[int(task["data"]["item_id"])] if n == 0 else 1)
            task["annotations"].append(
                {
                    "id": 100 * task["id"] + n,
                    "completed_by": {
                        "id": n + 1,
                        "username": who,
                        "email": f"{who}@example.com",
                    },
                    "result": [
                        {
                            "from_name": "label",
                            "to_name": "features",
                            "type": "choices",
                            "value": {"choices": [label]},
                        }
                    ],
                    "was_cancelled": False,
                    "lead_time": 9.5,
                    "created_at": "2026-11-28T10:00:00.000000Z",
                }
            )
            expected.append((task["data"]["item_id"], who, label))
    export = registered.root / "project-1-at-2026-11-28.json"
    export.write_text(json.dumps(tasks))

    result = import_annotations(registered, export, batch=1)

    assert (result.format, result.counts["imported"]) == ("labelstudio", 24)
    assert _stored(registered) == sorted(expected)


# -- agreement, the relabel queue and triage -----------------------------------------------------


def test_agreement_is_stored_and_disagreements_are_queued(
    registered: Workspace, simulate: Simulate, write_rows: WriteRows
) -> None:
    rows = simulate(range(100), {"ann": 0.9, "bob": 0.85, "cat": 0.8}, per_item=2, seed=1)
    import_annotations(registered, write_rows(rows))

    result = measure_agreement(registered, n_boot=50, seed=3)

    stored = load_annotations(registered, _info(registered), classes=["0", "1"])
    annotations, seconds = stored.annotations, stored.seconds
    expected = agreement(annotations, n_boot=50, seed=3, seconds=seconds)
    assert result.report == expected
    assert (result.metric, result.threshold) == ("krippendorff_alpha", 0.6)
    assert result.value == expected.alpha.value
    assert result.passed == (expected.alpha.value >= 0.6)
    issues = disagreements(annotations, majority_vote(annotations))
    assert result.queued == len(issues) > 0

    found = latest_label_report(registered, "agreement")
    assert found is not None
    stored, passed, when = found.report, found.passed, found.created_at
    assert stored["dataset"] == "customers@1" and passed == result.passed
    assert stored["value"] == pytest.approx(result.value)
    assert stored["krippendorff_alpha"]["low"] == pytest.approx(expected.alpha.low)
    assert when.tzinfo is not None

    queue = relabel_queue(registered)
    assert sorted(e.item_id for e in queue) == sorted(i.item_id for i in issues)
    assert {(e.source, e.status, e.dataset) for e in queue} == {
        ("disagreement", "open", "customers@1")
    }
    assert [e.score for e in queue] == sorted((e.score for e in queue), reverse=True)
    assert queue[0].details["labels"] == {"0": 1, "1": 1}

    again = measure_agreement(registered, n_boot=0)
    assert again.queued == 0 and len(relabel_queue(registered)) == len(queue)
    found = latest_label_report(registered, "agreement")
    assert found is not None
    stored = found.report
    assert stored["krippendorff_alpha"]["low"] is None  # NaN is stored as null


def test_triage_moves_an_item_through_the_queue(
    registered: Workspace, simulate: Simulate, write_rows: WriteRows
) -> None:
    rows = simulate(range(60), {"ann": 0.8, "bob": 0.8}, seed=2)
    import_annotations(registered, write_rows(rows))
    measure_agreement(registered, n_boot=0)
    item = relabel_queue(registered)[0].item_id

    changed = triage(registered, item, status="resolved", note="bob misread the history")

    assert changed == 1
    assert item not in {e.item_id for e in relabel_queue(registered, status="open")}
    resolved = relabel_queue(registered, "customers@1", status="resolved")
    assert [(e.item_id, e.note) for e in resolved] == [(item, "bob misread the history")]
    triage(registered, item, status="open")
    assert relabel_queue(registered, status="resolved") == []
    assert [e.note for e in relabel_queue(registered) if e.item_id == item] == [
        "bob misread the history"
    ]
    with pytest.raises(
        NotFoundError,
        match=r"^item '9999' is not in the relabel queue of customers@1; see mlplan labels queue$",
    ):
        triage(registered, "9999", status="resolved")


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
    assignments = _read_csv(batch.files[0])
    # Nobody relabels an item they labeled before: only cat and dan are fresh.
    assert {r["annotator"] for r in assignments} == {"cat", "dan"}
    assert {r["item_id"] for r in assignments} == queued
    assert all(
        e.status == "triaged" and e.note == f"sent for relabeling in batch {batch.number}"
        for e in relabel_queue(registered, status=None)
        if e.item_id in queued
    )

    result = import_annotations(
        registered, _write_csv(tmp_path / "back.csv", _answer(assignments)), batch=batch.number
    )
    assert result.counts["imported"] == len(assignments)
    summary = list_batches(registered)[-1]
    assert (summary.number, summary.selection, summary.labels_imported) == (
        batch.number,
        "relabel",
        len(assignments),
    )
    assert summary.to_dict()["estimate"] == summary.estimate.to_dict()
    assert summary.to_dict()["created_at"] == summary.created_at.isoformat()


def test_a_relabel_batch_of_a_queue_over_two_versions_asks_which(
    sqlite_ws: Workspace, simulate: Simulate, write_rows: WriteRows
) -> None:
    register_dataset(sqlite_ws, "customers")
    write_csv(customers_table(rows=300, seed=8), sqlite_ws.root / "data" / "customers.csv")
    register_dataset(sqlite_ws, "customers")
    for ref in ("customers@1", "customers@2"):
        rows = simulate(range(40), {"ann": 0.9, "bob": 0.6}, seed=3)
        import_annotations(sqlite_ws, write_rows(rows, f"{ref}.csv"), dataset=ref)
        measure_agreement(sqlite_ws, ref, n_boot=0)

    with pytest.raises(
        ParameterError,
        match=r"^open items in several dataset versions \(customers@1, customers@2\); choose "
        r"one with 'dataset'$",
    ) as raised:
        export_relabel_batch(sqlite_ws)
    assert raised.value.param == "dataset"
    assert export_relabel_batch(sqlite_ws, "customers@2").dataset == "customers@2"


@pytest.mark.parametrize(
    ("edits", "level", "metric"),
    [
        ([], "nominal", "krippendorff_alpha"),
        (
            [("  min_agreement: 0.6", "  min_agreement: 0.6\n  scale: interval")],
            "interval",
            "krippendorff_alpha",
        ),
        (
            [("  agreement_metric: krippendorff_alpha", "  agreement_metric: fleiss_kappa")],
            "nominal",
            "fleiss_kappa",
        ),
        (
            [("  agreement_metric: krippendorff_alpha", "  agreement_metric: cohen_kappa")],
            "nominal",
            "cohen_kappa",
        ),
    ],
    ids=["default", "interval-scale", "fleiss-kappa", "cohen-kappa"],
)
def test_agreement_level_and_metric_come_from_the_plan(
    ws: Workspace,
    edit_plan: EditPlan,
    simulate: Simulate,
    write_rows: WriteRows,
    edits: list[tuple[str, str]],
    level: str,
    metric: str,
) -> None:
    _configure(edit_plan, ws, *edits)
    import_annotations(ws, write_rows(simulate(range(60), {"ann": 0.9, "bob": 0.8, "cat": 0.85})))

    result = measure_agreement(ws, n_boot=0)

    assert (result.report.level, result.metric) == (level, metric)
    assert result.value == result.report.metric(metric)
    found = latest_label_report(ws, "agreement")
    assert found is not None
    stored = found.report
    assert (stored["level"], stored["metric"]) == (level, metric)


def test_numeric_agreement_levels_on_text_classes_are_refused(
    ws: Workspace, edit_plan: EditPlan, write_rows: WriteRows
) -> None:
    _configure(edit_plan, ws, ("  classes: {}", "  classes: {stayed: still here, left: gone}"))
    rows = [
        {"item_id": str(i), "annotator": name, "label": "stayed" if i % 3 else "left"}
        for i in range(20)
        for name in ("ann", "bob")
    ]
    import_annotations(ws, write_rows(rows))
    before = _row_counts(ws)

    with pytest.raises(
        UsageError,
        match=r"^interval alpha needs ordered labels, and the plan says labels.scale: nominal",
    ):
        measure_agreement(ws, level="interval")

    assert _row_counts(ws) == before


def test_agreement_without_labels_says_how_to_import_some(registered: Workspace) -> None:
    with pytest.raises(
        UsageError,
        match=r"^customers@1 has no labels yet\. Import some with: mlplan labels import FILE$",
    ):
        measure_agreement(registered)


# -- HLP -----------------------------------------------------------------------------------------


def test_hlp_is_stored_overall_and_per_slice(
    ws: Workspace, edit_plan: EditPlan, simulate: Simulate, write_rows: WriteRows
) -> None:
    _configure(edit_plan, ws, *WITH_REGION_SLICE)
    rows = simulate(range(90), {"ann": 0.9, "bob": 0.8, "cat": 0.85}, per_item=2, seed=4)
    import_annotations(ws, write_rows(rows))

    hlp = measure_hlp(ws, n_boot=50, seed=1)

    annotations = load_annotations(ws, _info(ws), classes=["0", "1"]).annotations
    expected = human_level_performance(annotations, n_boot=50, seed=1)
    assert hlp.metrics == expected.metrics
    assert hlp.reference == "consensus of the other annotators"
    assert (hlp.primary, hlp.primary_note) == (
        None,
        "roc_auc is not defined for hard human labels; HLP is given in accuracy and F1",
    )
    region = CUSTOMERS.column("region").to_pylist()
    sizes = Counter(region[i] for i in range(90))
    assert {(row["slice"], row["value"]): row["items"] for row in hlp.per_slice} == {
        ("region", f"region={name}"): count for name, count in sizes.items()
    }
    found = latest_label_report(ws, "hlp", "customers@1")
    assert found is not None
    stored, passed = found.report, found.passed
    assert passed is None
    assert stored["dataset"] == "customers@1"
    assert stored["metrics"]["accuracy"]["value"] == pytest.approx(hlp.metrics["accuracy"].value)
    assert len(stored["per_slice"]) == 3


def test_hlp_against_imported_gold_labels(
    registered: Workspace, simulate: Simulate, write_rows: WriteRows
) -> None:
    rows = simulate(range(40), {"ann": 0.95, "bob": 0.6}, seed=6)
    import_annotations(registered, write_rows(rows, "crowd.csv"))
    gold = [{"item_id": str(i), "annotator": "expert", "label": str(TRUTH[i])} for i in range(40)]
    import_annotations(registered, write_rows(gold, "gold.csv"), gold=True)

    hlp = measure_hlp(registered, n_boot=0, min_items=10)

    assert hlp.reference == "gold labels"
    by_name = {row["annotator"]: row for row in hlp.per_annotator}
    assert set(by_name) == {"ann", "bob"}  # the gold labels are the reference, not an annotator
    for name in ("ann", "bob"):
        mine = [r for r in rows if r["annotator"] == name]
        right = np.mean([r["label"] == str(TRUTH[int(r["item_id"])]) for r in mine])
        assert by_name[name]["accuracy"] == pytest.approx(right)


def test_hlp_uses_the_plans_positive_class(
    edit_plan: EditPlan, sqlite_ws: Workspace, simulate: Simulate, write_rows: WriteRows
) -> None:
    edit_plan("positive_class: null", 'positive_class: "0"')
    register_dataset(sqlite_ws, "customers")
    import_annotations(sqlite_ws, write_rows(simulate(range(80), {"ann": 0.9, "bob": 0.8})))
    as_zero = measure_hlp(sqlite_ws, n_boot=0)
    annotations = load_annotations(sqlite_ws, get_dataset(sqlite_ws, "customers@1")).annotations

    as_one = human_level_performance(annotations, positive="1", n_boot=0)
    assert as_zero.metrics["recall"].value != as_one.metrics["recall"].value
    with pytest.raises(UsageError, match=r"positive_class 'yes' is not one of the classes"):
        human_level_performance(annotations, positive="yes", n_boot=0)


def test_hlp_with_too_few_doubly_labeled_items_says_how_many_exist_and_are_needed(
    registered: Workspace, simulate: Simulate, write_rows: WriteRows
) -> None:
    rows = simulate(range(12), {"ann": 1.0, "bob": 1.0}) + simulate(range(12, 60), {"ann": 1.0})
    import_annotations(registered, write_rows(rows))
    before = _row_counts(registered)

    with pytest.raises(
        UsageError,
        match=r"^HLP needs at least 30 items labeled by two annotators or more \(or with gold "
        r"labels\); there are 12 multiply-labeled items, 12 of them with a usable reference",
    ):
        measure_hlp(registered)

    assert _row_counts(registered) == before
    assert latest_label_report(registered, "hlp") is None


# -- consensus -----------------------------------------------------------------------------------


def test_consensus_csv_has_one_label_per_item_and_leaves_ties_empty(
    registered: Workspace, write_rows: WriteRows
) -> None:
    rows = [
        {"item_id": "5", "annotator": "ann", "label": "1"},
        {"item_id": "5", "annotator": "bob", "label": "1"},
        {"item_id": "5", "annotator": "cat", "label": "0"},
        {"item_id": "6", "annotator": "ann", "label": "0"},
        {"item_id": "6", "annotator": "bob", "label": "1"},
        {"item_id": "7", "annotator": "cat", "label": "0"},
    ]
    import_annotations(registered, write_rows(rows))
    out = registered.root / "out" / "consensus.csv"

    found = consensus_labels(registered, out=out)
    annotations, result = found.annotations, found.consensus

    assert found.path == out
    assert _read_csv(out) == [
        {"item_id": "5", "label": "1", "confidence": "0.6667", "labels": "3"},
        {"item_id": "6", "label": "", "confidence": "0.5000", "labels": "2"},
        {"item_id": "7", "label": "0", "confidence": "1.0000", "labels": "1"},
    ]
    assert result.method == "majority" and annotations.items == ["5", "6", "7"]
    assert found.to_dict() == {
        "method": "majority",
        "items": 3,
        "resolved": 2,
        "iterations": result.iterations,
        "converged": result.converged,
        "mean_confidence": pytest.approx((2 / 3 + 0.5 + 1) / 3),
        "file": str(out),
        "labels_sha256": found.labels_sha256,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "run_id": found.run_id,
    }
    em = consensus_labels(registered, method="dawid-skene")
    assert em.path is None and em.consensus.method == "dawid_skene" and em.consensus.resolved.all()
    assert em.to_dict()["file"] is None and em.resolved == 3
    assert consensus_labels(registered, ties="random").consensus.resolved.all()


# -- confident learning against the dataset's labels ---------------------------------------------


def _probabilities(flipped: set[int]) -> pa.Table:
    """Out-of-fold probabilities that back the target, except on ``flipped`` rows."""
    positive = np.array(
        [
            (0.05 if t == 1 else 0.95) if i in flipped else (0.9 if t == 1 else 0.1)
            for i, t in enumerate(TRUTH)
        ]
    )
    return pa.table({"item_id": np.arange(400), "0": 1 - positive, "1": positive})


def test_issues_from_predictions_queues_the_likely_mislabeled_items(
    registered: Workspace,
) -> None:
    flipped = {3, 50, 120, 201, 333}
    path = write_csv(_probabilities(flipped), registered.root / "oof.csv")

    found = issues_from_predictions(registered, path)

    assert {int(i.item_id) for i in found} == flipped
    queue = relabel_queue(registered)
    assert {(e.item_id, e.source) for e in queue} == {
        (str(i), "confident_learning") for i in flipped
    }
    entry = next(e for e in queue if e.item_id == "3")
    assert entry.details["given"] == str(TRUTH[3])
    assert entry.details["suggested"] == str(1 - TRUTH[3])
    stored = issues_from_predictions(registered, path)
    assert len(stored) == 5 and len(relabel_queue(registered)) == 5  # not queued twice


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            pa.table({"item_id": [1], "0": [0.5]}),
            r"oof\.csv: missing columns 1; expected item_id and one probability column per class "
            r"\(0, 1\)$",
        ),
        (
            pa.table({"item_id": [1, 9999, 4000], "0": [0.5] * 3, "1": [0.5] * 3}),
            r"oof\.csv: 2 item ids not in customers@1, e\.g\. 9999, 4000$",
        ),
    ],
    ids=["missing-class-column", "unknown-items"],
)
def test_issues_from_predictions_refuses_a_mismatched_file(
    registered: Workspace, table: pa.Table, message: str
) -> None:
    path = write_csv(table, registered.root / "oof.csv")

    with pytest.raises(DataError, match=message):
        issues_from_predictions(registered, path)

    assert relabel_queue(registered) == []


def test_issues_from_predictions_names_duplicate_item_ids(registered: Workspace) -> None:
    table = _probabilities({3})
    table = pa.concat_tables([table, table.slice(3, 1)])
    path = write_csv(table, registered.root / "oof.csv")

    with pytest.raises(DataError, match=r"oof\.csv: .*item ids .*more than once.*3"):
        issues_from_predictions(registered, path)


def test_an_unfilled_batch_is_counted_not_imported(registered: Workspace) -> None:
    batch = export_batch(registered, n=10, overlap=0.0)
    with pytest.raises(
        DataError,
        match=r"nothing left to import —\n10 rows left blank \(not "
        r"labeled yet\), e.g. ",
    ):
        import_annotations(registered, batch.files[0], batch=batch.number)
