"""``mlplan gc``: what killed commands leave is listed, then removed — and nothing any record
names is ever touched."""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from tests.conftest import edit_plan, evaluated, ok, register_split_train

from mlplan.store import RunRecord
from mlplan.workspace import Workspace, collect_garbage

HOURS_AGO = time.time() - 3 * 3600


def _contents(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by relative path, with the hash of its bytes."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _aged(path: Path, data: bytes = b"", *, when: float = HOURS_AGO) -> Path:
    """``path`` written (unless it exists) and dated ``when``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    os.utime(path, (when, when))
    return path


def _images(root: Path) -> Path:
    image = pytest.importorskip("PIL.Image")
    for label, levels in {"cat": [10, 20, 30], "dog": [200, 220]}.items():
        for i, level in enumerate(levels):
            path = root / label / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            image.fromarray(np.full((6, 8), level, np.uint8)).save(path)
    return root


def _whole_flow(ws: Workspace, tmp_path: Path) -> None:
    """Every command that stores artifacts: data add (a table, and an image folder whose images
    only its snapshot names), split, train, evaluate (a new package version), deploy, a label
    batch, annotations and their agreement, the older system's predictions."""
    from mlplan.data import register_dataset
    from mlplan.labels import export_batch, import_annotations, measure_agreement
    from mlplan.modeling import import_older_system
    from mlplan.serving import deploy

    register_split_train(ws)
    evaluated(ws)
    deploy(ws, "logistic-1", by="Priya")
    table = pa_csv.read_csv(ws.root / "data" / "customers.csv")
    ids = [str(v) for v in table.column("customer_id").to_pylist()]
    truth = [str(v) for v in table.column("churned").to_pylist()]
    export_batch(ws, n=40, overlap=0.25, seed=1)
    annotations = tmp_path / "annotations.csv"
    pa_csv.write_csv(
        pa.table(
            {
                "item_id": ids[:40] * 2,
                "annotator": ["ann"] * 40 + ["bob"] * 40,
                "label": truth[:40] + [t if i % 5 else "1" for i, t in enumerate(truth[:40])],
            }
        ),
        annotations,
    )
    import_annotations(ws, annotations)
    measure_agreement(ws, n_boot=0)
    edit_plan(ws, "  older_system: null", "  older_system: {name: rules-v2}")
    edit_plan(ws, "scenario: null", "scenario: replace")
    rules = tmp_path / "rules.csv"
    pa_csv.write_csv(pa.table({"item_id": ids, "prediction": truth}), rules)
    import_older_system(ws, rules)
    register_dataset(ws, "pets", _images(tmp_path / "pets"))


@pytest.mark.slow
def test_gc_after_the_whole_flow_removes_nothing_and_every_command_still_works(
    sqlite_ws: Workspace, cli: Any, tmp_path: Path
) -> None:
    from mlplan.data import get_dataset, load_table
    from mlplan.evaluation import evaluate
    from mlplan.serving import load_served_model

    ws = sqlite_ws
    _whole_flow(ws, tmp_path)
    artifacts = ws.store.artifacts.root
    before = _contents(artifacts)
    images = load_table(ws, get_dataset(ws, "pets")).column("sha256").to_pylist()
    assert all(f"{sha[:2]}/{sha[2:]}" in before for sha in images)  # stored, in no table

    report = ok(cli("gc", "--apply", "--older-than", "0s", "--json"))
    assert '"files": []' in report.stdout and '"run_id": null' in report.stdout
    assert _contents(artifacts) == before

    status = ok(cli("status", "--json")).stdout
    assert "could not be checked" not in status
    ok(cli("models", "show", "logistic-1"))
    ok(cli("lineage", "customers@1"))
    ok(cli("data", "rows", "customers@1/s1", "--part", "test", "--out", "test.csv"))
    for version in ("logistic-1@1", "logistic-1"):  # the first package, and the evaluated one
        assert load_served_model(ws, version).signature.inputs
    assert evaluate(ws, "logistic-1", n_boot=0).overall
    assert load_table(ws, get_dataset(ws, "pets")).num_rows == 5
    after = _contents(artifacts)  # evaluate stored more; everything before is there, unchanged
    assert {name: after.get(name) for name in before} == before


def test_leftovers_are_listed_by_a_dry_run_and_removed_by_apply(
    trained_ws: Workspace, cli: Any
) -> None:
    ws = trained_ws
    artifacts = ws.store.artifacts
    # What a killed `data add` leaves: a copy renamed into place, no record naming it ...
    orphan = artifacts.put_bytes(b"customer_id,churned\n" + b"1,0\n" * 50_000)
    _aged(artifacts.path(orphan.sha256))
    # ... or a copy cut short; and a report being written when evaluate was killed.
    incoming = _aged(artifacts.root / ".incoming-k1ll3d", b"\0" * 300_000)
    report_tmp = _aged(ws.root / "reports" / "logistic-1" / ".report.html.ab12cd34.tmp", b"<h")
    young = _aged(artifacts.root / ".incoming-wr1t1n", b"\0" * 10, when=time.time())
    notes = _aged(ws.root / "reports" / "notes.tmp", b"mine")  # not a name mlplan makes
    planted = {incoming, report_tmp, artifacts.path(orphan.sha256)}
    orphan_name = f"{orphan.sha256[:2]}/{orphan.sha256[2:]}"
    kept = set(_contents(artifacts.root)) - {".incoming-k1ll3d", orphan_name}

    dry = collect_garbage(ws)
    assert {f.path for f in dry.files} == planted
    assert dry.counts() == {"temporary": 2, "artifact": 1, "copy": 0}
    assert dry.size_bytes == 300_000 + 2 + orphan.size_bytes
    assert dry.applied is False and dry.run_id is None
    assert any("1 file(s) younger than 1h" in note for note in dry.kept)
    assert all(p.exists() for p in planted)
    shown = ok(cli("gc")).stdout
    assert "Would remove 2 temporary file(s) and 1 artifact(s)" in shown
    assert ".mlplan/artifacts/.incoming-k1ll3d" in shown

    applied = ok(cli("gc", "--apply", "--json")).stdout
    assert '"applied": true' in applied and '"bytes": ' + str(dry.size_bytes) in applied
    assert not any(p.exists() for p in planted)
    assert young.exists() and notes.exists()
    assert set(_contents(artifacts.root)) == kept  # the young file and every named artifact
    with ws.store.transaction() as session:
        run = session.scalars(ws.select(RunRecord).where(RunRecord.job == "gc")).one()
        assert run.parameters["removed"] == {
            "temporary": {"files": 2, "bytes": 300_002},
            "artifact": {"files": 1, "bytes": orphan.size_bytes},
            "copy": {"files": 0, "bytes": 0},
        }
    assert collect_garbage(ws).files == []


def test_a_temporary_file_a_live_command_is_writing_is_kept(trained_ws: Workspace) -> None:
    path = _aged(trained_ws.store.artifacts.root / ".incoming-s10w", b"\0" * 100)
    with path.open("rb") as writer:  # a data add copying a large file for hours
        fcntl.flock(writer.fileno(), fcntl.LOCK_EX)
        report = collect_garbage(trained_ws, apply=True, older_than="0s")
        assert report.files == [] and path.exists()
        assert report.kept == [
            ".mlplan/artifacts/.incoming-s10w: a running command is still writing it"
        ]
    assert [f.path for f in collect_garbage(trained_ws, apply=True).files] == [path]


def test_artifacts_no_record_names_yet_are_kept_while_a_command_stores_artifacts(
    trained_ws: Workspace,
) -> None:
    artifacts = trained_ws.store.artifacts
    with artifacts.staged():  # a command between storing its files and committing its run
        stored = artifacts.put_bytes(b"a split's assignment, its record not committed yet")
        report = collect_garbage(trained_ws, apply=True, older_than="0s")
        assert report.files == [] and artifacts.exists(stored.sha256)
        assert report.kept == [
            "1 artifact(s) no record names: kept, as a command is storing artifacts now; run "
            "gc again when it is done"
        ]


def test_images_of_a_snapshot_that_cannot_be_read_keep_every_unnamed_artifact(
    sqlite_ws: Workspace, tmp_path: Path
) -> None:
    from mlplan.data import get_dataset, register_dataset

    register_dataset(sqlite_ws, "pets", _images(tmp_path / "pets"))
    artifacts = sqlite_ws.store.artifacts
    snapshot = get_dataset(sqlite_ws, "pets").snapshot_sha256
    assert snapshot is not None
    artifacts.path(snapshot).unlink()
    before = _contents(artifacts.root)
    report = collect_garbage(sqlite_ws, apply=True, older_than="0s")
    assert report.files == [] and _contents(artifacts.root) == before
    assert len(report.kept) == 1
    assert report.kept[0].startswith(
        "5 artifact(s) no record names: kept, as the image table of pets@1 cannot be read"
    )


def test_a_shared_artifact_folder_beside_a_sqlite_store_keeps_unnamed_artifacts(
    project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPLAN_ARTIFACTS_DIR", str(tmp_path / "team-artifacts"))
    ws = Workspace(project_dir)
    try:
        stored = ws.store.artifacts.put_bytes(b"another project's, recorded in its own store")
        _aged(ws.store.artifacts.path(stored.sha256))
        report = collect_garbage(ws, apply=True)
        assert report.files == [] and ws.store.artifacts.exists(stored.sha256)
        assert "may be shared by stores this one cannot see" in report.kept[0]
    finally:
        ws.close()


def test_older_than_must_be_a_duration(cli: Any) -> None:
    result = cli("gc", "--older-than", "soon")
    assert result.exit_code == 2
    assert "--older-than takes a duration such as 90s, 30m, 1h or 2d; got 'soon'" in result.output


def test_only_the_unnamed_artifact_goes_on_each_store(ws: Workspace) -> None:
    from mlplan.data import register_dataset, split_dataset

    register_dataset(ws, "customers")
    split_dataset(ws, "customers", seed=1)
    artifacts = ws.store.artifacts
    named = _contents(artifacts.root)
    orphan = artifacts.put_bytes(b"a snapshot whose data add was killed")
    _aged(artifacts.path(orphan.sha256))
    report = collect_garbage(ws, apply=True, older_than="0s")
    assert [f.sha256 for f in report.files] == [orphan.sha256]
    assert _contents(artifacts.root) == named


def test_what_a_killed_log_compaction_left_is_removed_unless_a_compaction_runs_now(
    trained_ws: Workspace, cli: Any
) -> None:
    """`mlplan logs compact` killed mid-segment leaves its Parquet file half written; a
    model never served again would keep it for good."""
    log = trained_ws.root / ".mlplan" / "predictions" / "logistic-1"
    writer = log / "w-20261206T120000-4242-abcd"
    segment = _aged(writer / "seg-000000.jsonl", b'{"kind": "prediction"}\n')
    stale = _aged(writer / ".seg-000000.k1ll3d.tmp", b"PAR1" + b"\0" * 1000)
    lock = _aged(log / ".compact.lock")
    with lock.open("a") as compacting:  # a compaction under way owns its temporary files
        fcntl.flock(compacting.fileno(), fcntl.LOCK_EX)
        assert "k1ll3d" not in ok(cli("gc", "--older-than", "0s")).stdout
    shown = ok(cli("gc")).stdout
    assert "Would remove 1 temporary file(s)" in shown and ".seg-000000.k1ll3d.tmp" in shown
    ok(cli("gc", "--apply"))
    assert not stale.exists() and segment.exists() and lock.exists()


def test_the_copies_of_tables_whose_snapshot_is_gone_are_removed_the_live_one_kept(
    sqlite_ws: Workspace, cli: Any
) -> None:
    from mlplan.data import load_table, register_dataset

    ws = sqlite_ws
    artifacts = ws.store.artifacts
    info = register_dataset(ws, "customers").version
    load_table(ws, info)  # parsed, and its columnar copy kept
    (live,) = [f.path for f in artifacts.table_copies()]
    _aged(live)
    # The copy of a snapshot a killed data add stored (no record names it), and of one no
    # longer stored at all; a copy cut short by a kill, and one a live command is writing.
    orphan = artifacts.put_bytes(b"id,note\n1,a\n")
    _aged(artifacts.path(orphan.sha256))
    stale = {
        _aged(artifacts.table_copy(orphan.sha256, "csv-2c-2e.r1"), b"ARROW1" + b"\0" * 94),
        _aged(artifacts.table_copy("0" * 64, "csv-3b-2c.r1"), b"ARROW1" + b"\0" * 94),
    }
    cut = _aged(artifacts.tables / ".incoming-k1ll3d", b"ARROW1")
    writing = _aged(artifacts.tables / ".incoming-wr1t1ng", b"ARROW1")

    dry = collect_garbage(ws)
    assert dry.counts() == {"temporary": 2, "artifact": 1, "copy": 2}
    assert {f.path for f in dry.files if f.kind == "copy"} == stale
    assert "2 table copy(ies) whose snapshot is gone" in ok(cli("gc")).stdout
    with writing.open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        applied = collect_garbage(ws, apply=True)
    assert {f.path for f in applied.files} == {*stale, cut, artifacts.path(orphan.sha256)}
    assert [f.path for f in artifacts.table_copies()] == [writing, live]
    assert "a running command is still writing it" in applied.kept[0]
    with ws.store.transaction() as session:
        run = session.scalars(ws.select(RunRecord).where(RunRecord.job == "gc")).one()
        assert run.parameters["removed"]["copy"] == {"files": 2, "bytes": 200}
    assert load_table(ws, info).num_rows == info.rows
