"""The Labels items of the checklist report their real state as evidence arrives: strategy,
instructions, HLP, agreement and the relabel queue."""

from __future__ import annotations

import pytest
from tests.labels.conftest import EditPlan, Simulate, WriteRows

from mlplan.checklist import status
from mlplan.checklist._status import ItemStatus
from mlplan.data import register_dataset
from mlplan.labels import import_annotations, measure_agreement, measure_hlp, relabel_queue, triage
from mlplan.workspace import Workspace

LABEL_ITEMS = (
    "labels.strategy",
    "labels.instructions",
    "labels.hlp",
    "labels.agreement",
    "labels.issues",
)


def _labels(ws: Workspace) -> dict[str, ItemStatus]:
    report = status(ws)
    return {i: report.get(i) for i in LABEL_ITEMS}


def _states(ws: Workspace) -> dict[str, str]:
    return {k: v.state for k, v in _labels(ws).items()}


def test_template_plan_compares_strategies_and_asks_for_the_rest(sqlite_ws: Workspace) -> None:
    items = _labels(sqlite_ws)

    assert {k: v.state for k, v in items.items()} == {
        "labels.strategy": "missing",  # chosen, but priced for no real batch yet
        "labels.instructions": "missing",
        "labels.hlp": "missing",
        "labels.agreement": "missing",
        "labels.issues": "missing",
    }
    assert items["labels.strategy"].evidence == (
        "in-house chosen; no batch priced yet (1,000 items would be 1,200 labels, USD 600, 3.3 h)"
    )
    assert items["labels.strategy"].next_step == (
        "mlplan labels estimate --n N, then mlplan labels export --n N"
    )

    assert items["labels.instructions"].evidence == "the plan has no labeling instructions"
    assert items["labels.hlp"].next_step == (
        "mlplan labels import FILE (with items labeled twice), then mlplan labels hlp"
    )
    assert items["labels.agreement"].next_step == (
        "mlplan labels import FILE, then mlplan labels agreement"
    )


def test_a_strategy_is_done_once_a_real_batch_is_priced(registered: Workspace) -> None:
    from mlplan.labels import export_batch

    export_batch(registered, n=40, overlap=0.25, seed=1)
    strategy = _labels(registered)["labels.strategy"]
    assert strategy.state == "done"
    assert strategy.evidence.startswith("in-house: batch 1, 40 items → 50 labels, USD")
    assert "(vs crowdsourced USD" in strategy.evidence


@pytest.mark.parametrize(
    ("edits", "item", "state", "evidence"),
    [
        (
            [("  strategy: in-house  #", "  strategy: null  #")],
            "labels.strategy",
            "missing",
            "the plan chooses no labeling strategy",
        ),
        (
            [
                ("  strategy: in-house  #", "  strategy: crowdsourced  #"),
                ("    crowdsourced: {cost_per_label", "    # crowdsourced: {cost_per_label"),
            ],
            "labels.strategy",
            "missing",
            "strategy crowdsourced, but no rates to estimate it with",
        ),
        (
            [("  instructions: null", "  instructions: Read the history.")],
            "labels.instructions",
            "missing",
            "no class definitions in the plan",
        ),
        (
            [
                ("  instructions: null", "  instructions: Read the history."),
                ("  classes: {}", '  classes: {"0": stayed, "1": null}'),
            ],
            "labels.instructions",
            "missing",
            "classes without a definition: 1",
        ),
        (
            [
                ("  instructions: null", "  instructions: Read the history."),
                ("  classes: {}", '  classes: {"0": stayed, "1": left within 30 days}'),
            ],
            "labels.instructions",
            "done",
            "instructions and 2 class definitions in the plan",
        ),
        (
            [("  hlp: {source: labels}", "  hlp: {source: value, value: 0.92, note: pilot study}")],
            "labels.hlp",
            "done",
            "HLP 0.92 from the plan (pilot study), not measured here",
        ),
    ],
    ids=[
        "no-strategy",
        "strategy-without-rates",
        "instructions-without-classes",
        "undefined-class",
        "instructions-done",
        "hlp-from-the-plan",
    ],
)
def test_plan_driven_items(
    sqlite_ws: Workspace,
    edit_plan: EditPlan,
    edits: list[tuple[str, str]],
    item: str,
    state: str,
    evidence: str,
) -> None:
    for old, new in edits:
        edit_plan(old, new)

    found = status(sqlite_ws).get(item)

    assert (found.state, found.evidence) == (state, evidence)


def test_items_follow_the_evidence_as_labels_arrive(
    ws: Workspace, simulate: Simulate, write_rows: WriteRows
) -> None:
    register_dataset(ws, "customers")
    assert _states(ws)["labels.agreement"] == "missing"

    # Careless annotators: agreement below labels.min_agreement, disagreements queued.
    rows = simulate(range(80), {"ann": 0.7, "bob": 0.7}, seed=8)
    import_annotations(ws, write_rows(rows))
    result = measure_agreement(ws, n_boot=20)
    items = _labels(ws)
    assert not result.passed
    assert items["labels.agreement"].state == "failing"
    assert items["labels.agreement"].evidence.startswith(
        f"krippendorff_alpha {result.value:.3f} < 0.6 on 80 multiply-labeled items of customers@1"
    )
    assert items["labels.agreement"].next_step is not None
    open_items = relabel_queue(ws, status="open")
    assert items["labels.issues"].state == "missing"
    assert items["labels.issues"].evidence == (
        f"{len(open_items):,} item(s) open in the relabel queue (0 triaged or resolved)"
    )
    assert items["labels.hlp"].state == "missing"

    # HLP measured: done, with its figure.
    hlp = measure_hlp(ws, n_boot=50)
    evidence = _labels(ws)["labels.hlp"]
    accuracy = hlp.metrics["accuracy"]
    assert evidence.state == "done"
    assert evidence.evidence.startswith(
        f"HLP accuracy {accuracy.value:.3f} [{accuracy.low:.3f}, {accuracy.high:.3f}] on 80 "
        "items of customers@1 (against consensus of the other annotators)"
    )

    # Every queued item handled: the issues item is done.
    for entry in open_items:
        triage(ws, entry.item_id, status="resolved")
    assert _labels(ws)["labels.issues"].state == "done"
    assert _labels(ws)["labels.issues"].evidence == (
        f"relabel queue empty or triaged ({len(open_items):,} item(s) handled)"
    )


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


def test_agreement_above_the_threshold_is_done(
    ws: Workspace, simulate: Simulate, write_rows: WriteRows
) -> None:
    register_dataset(ws, "customers")
    import_annotations(ws, write_rows(simulate(range(50), {"ann": 1.0, "bob": 1.0})))

    measure_agreement(ws, n_boot=0)

    states = _states(ws)
    assert (states["labels.agreement"], states["labels.issues"]) == ("done", "done")
    assert _labels(ws)["labels.agreement"].evidence == (
        "krippendorff_alpha 1.000 >= 0.6 on 50 multiply-labeled items of customers@1"
    )


def test_hlp_measured_without_bootstrap_reports_its_figure_and_asks_for_an_interval(
    sqlite_ws: Workspace, simulate: Simulate, write_rows: WriteRows
) -> None:
    register_dataset(sqlite_ws, "customers")
    import_annotations(sqlite_ws, write_rows(simulate(range(40), {"ann": 0.9, "bob": 0.9})))
    measure_hlp(sqlite_ws, n_boot=0)

    hlp = _labels(sqlite_ws)["labels.hlp"]

    assert hlp.state == "missing"  # CHECKLIST: "with a confidence interval"
    assert hlp.evidence.startswith("HLP accuracy ")
    assert hlp.evidence.endswith("without a confidence interval")
    assert hlp.next_step == "mlplan labels hlp --boot 200"
