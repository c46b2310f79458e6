"""Every label figure traces to the exact label set it came from: agreement, HLP and consensus
record their inputs by content hash and their outputs (the report, the consensus file), and
``lineage`` walks from them to the imports that made the label set."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from tests.labels.conftest import TRUTH, Simulate, WriteRows

from mlplan.errors import ParameterError
from mlplan.labels import (
    consensus_labels,
    import_annotations,
    label_set_hash,
    latest_label_report,
    measure_agreement,
    measure_hlp,
)
from mlplan.lineage import lineage
from mlplan.store import RunRecord
from mlplan.workspace import Workspace


def _hash_of(*files: list[dict[str, str]]) -> str:
    """The label set of these rows, computed here from the rows written, not read back."""
    return label_set_hash(
        (r["item_id"], r["annotator"], r["label"]) for rows in files for r in rows
    )


def _runs(ws: Workspace) -> int:
    with ws.store.transaction() as session:
        return len(session.scalars(ws.select(RunRecord)).all())


def test_agreement_and_hlp_record_the_label_set_and_the_report_by_hash(
    registered: Workspace, simulate: Simulate, write_rows: WriteRows
) -> None:
    crowd = simulate(range(60), {"ann": 0.9, "bob": 0.8, "cat": 0.85}, per_item=2, seed=5)
    gold = [{"item_id": str(i), "annotator": "expert", "label": str(TRUTH[i])} for i in range(40)]
    import_annotations(registered, write_rows(crowd, "crowd.csv"))
    import_annotations(registered, write_rows(gold, "gold.csv"), gold=True)
    labels, gold_hash = _hash_of(crowd), _hash_of(gold)

    agreement = measure_agreement(registered, n_boot=0)
    measure_hlp(registered, n_boot=0, min_items=10)

    assert agreement.labels_sha256 == labels
    for kind in ("agreement", "hlp"):
        graph = lineage(registered, f"customers@1:{kind}")
        run = graph.producer_of(f"customers@1:{kind}")
        assert run is not None and run.job == f"labels {kind}"
        read = {n.ref: n.sha256 for n in run.inputs}
        assert read["customers@1:labels"] == labels
        assert read["customers@1"] is not None  # the rows the slices and classes came from
        # The report is an artifact whose bytes hash as recorded, and it names its label set.
        stored = latest_label_report(registered, kind)  # type: ignore[arg-type]
        assert stored is not None and stored.run_id == run.id
        assert stored.report["labels_sha256"] == labels
        report_bytes = registered.store.artifacts.path(graph.subject.sha256 or "").read_bytes()
        assert hashlib.sha256(report_bytes).hexdigest() == graph.subject.sha256
        assert json.loads(report_bytes)["labels_sha256"] == labels
        # Walked back to the import that completed this label set, and to its file.
        made = graph.producer_of("customers@1:labels")
        assert made is not None and made.job == "labels import"
        assert {n.ref: n.sha256 for n in made.outputs} == {"customers@1:labels": labels}
        assert [n.ref for n in made.inputs] == ["crowd.csv"]
    hlp_run = lineage(registered, "customers@1:hlp").producer_of("customers@1:hlp")
    assert hlp_run is not None
    assert {n.ref: n.sha256 for n in hlp_run.inputs}["customers@1:gold"] == gold_hash
    hlp = latest_label_report(registered, "hlp")
    assert hlp is not None and hlp.report["gold_sha256"] == gold_hash


def test_a_new_import_changes_the_label_set_the_next_figure_names(
    registered: Workspace, simulate: Simulate, write_rows: WriteRows
) -> None:
    first = simulate(range(50), {"ann": 0.9, "bob": 0.8}, seed=1)
    import_annotations(registered, write_rows(list(reversed(first)), "first.csv"))
    before = measure_agreement(registered, n_boot=0)
    more = simulate(range(50, 80), {"ann": 0.9, "bob": 0.8}, seed=2)
    import_annotations(registered, write_rows(more, "more.csv"))

    after = measure_agreement(registered, n_boot=0)

    # The order rows were imported in does not matter; the rows do.
    assert before.labels_sha256 == _hash_of(first)
    assert after.labels_sha256 == _hash_of(first, more) != before.labels_sha256
    runs = lineage(registered, "customers@1:agreement").upstream
    measured = [r for r in runs if r.job == "labels agreement"]
    assert [{n.ref: n.sha256 for n in r.inputs}["customers@1:labels"] for r in measured] == [
        before.labels_sha256,
        after.labels_sha256,
    ]


def test_consensus_written_to_a_file_is_a_run_from_the_label_set_to_the_file(
    registered: Workspace, simulate: Simulate, write_rows: WriteRows
) -> None:
    rows = simulate(range(30), {"ann": 0.9, "bob": 0.7, "cat": 0.8}, seed=3)
    import_annotations(registered, write_rows(rows))
    out = registered.root / "out" / "consensus.csv"

    found = consensus_labels(registered, out=out)

    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert (found.sha256, found.labels_sha256) == (digest, _hash_of(rows))
    graph = lineage(registered, str(out))
    assert (graph.subject.ref, graph.subject.sha256) == ("out/consensus.csv", digest)
    run = graph.producer_of("out/consensus.csv")
    assert run is not None and (run.job, run.id) == ("labels consensus", found.run_id)
    assert run.parameters == {"dataset": "customers@1", "method": "majority", "ties": "unresolved"}
    assert {n.ref: n.sha256 for n in run.inputs}["customers@1:labels"] == _hash_of(rows)
    assert not list(out.parent.glob(".consensus.csv.*"))  # no temporary file left behind


def test_consensus_into_a_folder_is_refused_and_records_nothing(
    registered: Workspace, simulate: Simulate, write_rows: WriteRows, tmp_path: Path
) -> None:
    import_annotations(registered, write_rows(simulate(range(10), {"ann": 1.0, "bob": 1.0})))
    before = _runs(registered)

    with pytest.raises(ParameterError, match=r"is a folder; give the file to write"):
        consensus_labels(registered, out=tmp_path)

    assert _runs(registered) == before
    assert consensus_labels(registered).run_id is None  # without a file nothing is made
    assert _runs(registered) == before
