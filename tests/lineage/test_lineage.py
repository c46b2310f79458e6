from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from mlplan.data import register_dataset, split_dataset
from mlplan.errors import NotFoundError
from mlplan.lineage import lineage, to_openlineage
from mlplan.store import sha256_file
from mlplan.workspace import Workspace


def test_walks_from_the_bytes_of_the_file_to_the_split(ws: Workspace, project_dir: Path) -> None:
    version = register_dataset(ws, "customers").version
    split = split_dataset(ws, "customers", seed=2)

    graph = lineage(ws, split.ref)
    assert graph.subject.kind == "split"
    assert [r.job for r in graph.upstream] == ["data add", "data split"]
    add = graph.producer_of(version.ref)
    assert add is not None
    file_input = add.inputs[0]
    assert file_input.ref == "data/customers.csv"
    # Walked back to the bytes: the recorded hash is the file's.
    assert file_input.sha256 == sha256_file(project_dir / "data" / "customers.csv").sha256
    assert graph.downstream == []

    down = lineage(ws, "data/customers.csv")
    assert [r.job for r in down.downstream] == ["data add", "data split"]
    assert down.consumers_of(version.ref)[0].outputs[0].ref == split.ref


def test_unknown_reference_explains_what_to_give(ws: Workspace) -> None:
    with pytest.raises(NotFoundError, match=r"no run made or read 'nothing@1'. Give a dataset"):
        lineage(ws, "nothing@1")


def test_openlineage_events_follow_the_spec(ws: Workspace) -> None:
    register_dataset(ws, "customers")
    split = split_dataset(ws, "customers", seed=2)
    events = to_openlineage(ws, lineage(ws, split.ref))
    assert len(events) == 2
    for event in events:
        assert set(event) >= {
            "eventType",
            "eventTime",
            "run",
            "job",
            "inputs",
            "outputs",
            "producer",
            "schemaURL",
        }
        assert event["eventType"] in {"START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"}
        assert event["schemaURL"].startswith("https://openlineage.io/spec/2-0-2/OpenLineage.json")
        assert dt.datetime.fromisoformat(event["eventTime"]).tzinfo is not None
        uuid.UUID(event["run"]["runId"])
        assert event["job"]["namespace"] == "mlplan://churn"
        for facet in [*event["run"]["facets"].values(), *event["job"]["facets"].values()]:
            assert facet["_producer"] and facet["_schemaURL"]
        for dataset in event["inputs"] + event["outputs"]:
            assert dataset["namespace"] == "mlplan://churn" and dataset["name"]
    assert events[1]["inputs"][0]["name"] == "customers@1"
    assert events[1]["outputs"][0]["name"] == split.ref
    assert len(events[1]["outputs"][0]["facets"]["version"]["datasetVersion"]) == 64


def _reader(ws: Workspace, job: str, reads: str, makes: str) -> None:
    with ws.record(job, {}) as run:
        run.input("split", reads)
        run.output("report", makes)


def test_a_walk_with_max_runs_keeps_the_nearest_and_says_it_stopped(ws: Workspace) -> None:
    """Twelve runs read one split, and one run reads all they made (as a thousand trainings
    and their comparison): the whole walk finds all fourteen runs; a walk of at most five
    finds the split's run and the four oldest readers, says it is not complete, and every
    run it lists is one of the whole walk's."""
    register_dataset(ws, "customers")
    split = split_dataset(ws, "customers", seed=2)
    for i in range(12):
        _reader(ws, "train", split.ref, f"m-{i}")
    with ws.record("compare", {}) as run:
        for i in range(12):
            run.input("report", f"m-{i}")
        run.output("report", "comparison")

    whole = lineage(ws, "customers")
    assert whole.complete
    assert [r.job for r in whole.downstream] == ["data split", *["train"] * 12, "compare"]

    few = lineage(ws, "customers", max_runs=5)
    assert not few.complete and few.to_dict()["complete"] is False
    assert [r.id for r in few.downstream] == [r.id for r in whole.downstream[:5]]
    assert [r.job for r in few.upstream] == ["data add"]

    enough = lineage(ws, "customers", max_runs=14)
    assert enough.complete and [r.id for r in enough.downstream] == [r.id for r in whole.downstream]
