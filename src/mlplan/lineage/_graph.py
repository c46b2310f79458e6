"""Lineage: the graph of runs, walked upstream and downstream from anything a run made or read,
and exported as OpenLineage RunEvents."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import selectinload

from mlplan._version import __version__
from mlplan.core import parse_dataset_ref
from mlplan.data import get_dataset
from mlplan.errors import NotFoundError, RefError
from mlplan.modeling import get_model
from mlplan.store import RunIORecord, RunRecord
from mlplan.workspace import Workspace

__all__ = [
    "LineageGraph",
    "LineageNode",
    "ParentRun",
    "RunInfo",
    "lineage",
    "resolve_ref",
    "to_openlineage",
]

OPENLINEAGE_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
PRODUCER = f"https://pypi.org/project/mlplan/{__version__}"
_FACET_SCHEMA = "https://openlineage.io/spec/facets/1-0-0/{}.json#/$defs/{}"


@dataclass(frozen=True)
class LineageNode:
    """Something a run read or made: a file, a dataset version, a split, later a model…"""

    kind: str
    ref: str
    sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"kind": self.kind, "ref": self.ref, "sha256": self.sha256}


@dataclass(frozen=True)
class RunInfo:
    """One recorded run with its inputs and outputs."""

    id: str
    job: str
    status: str
    parameters: dict[str, Any]
    code_version: str | None
    packages: dict[str, str]
    user: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    inputs: list[LineageNode]
    outputs: list[LineageNode]
    parent_id: str | None = None
    """The run it ran under: a pipeline step's pipeline run, a stage's run's step."""

    def to_dict(self, *, packages: bool = False) -> dict[str, Any]:
        """A JSON-ready view (package versions only on request: they are long)."""
        out = {
            "id": self.id,
            "job": self.job,
            "status": self.status,
            "parameters": self.parameters,
            "code_version": self.code_version,
            "user": self.user,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "inputs": [n.to_dict() for n in self.inputs],
            "outputs": [n.to_dict() for n in self.outputs],
            "parent_id": self.parent_id,
        }
        if packages:
            out["packages"] = self.packages
        return out

    @classmethod
    def from_record(cls, run: RunRecord) -> RunInfo:
        """From the store's row (its inputs and outputs loaded)."""

        def nodes(direction: str) -> list[LineageNode]:
            return [
                LineageNode(io.kind, io.ref, io.sha256)
                for io in run.ios
                if io.direction == direction
            ]

        return cls(
            run.id,
            run.job,
            run.status,
            run.parameters,
            run.code_version,
            run.packages,
            run.user,
            run.started_at,
            run.ended_at,
            nodes("input"),
            nodes("output"),
            run.parent_id,
        )


@dataclass(frozen=True)
class ParentRun:
    """A run others ran under: a pipeline run or one of its steps."""

    id: str
    job: str
    status: str
    parent_id: str | None
    started_at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "id": self.id,
            "job": self.job,
            "status": self.status,
            "parent_id": self.parent_id,
            "started_at": self.started_at.isoformat(),
        }


@dataclass(frozen=True)
class LineageGraph:
    """The runs upstream (that led to ``subject``) and downstream (that used it)."""

    subject: LineageNode
    upstream: list[RunInfo] = field(default_factory=list)
    downstream: list[RunInfo] = field(default_factory=list)
    complete: bool = True
    """False when the walk stopped at ``max_runs`` a way: there are runs beyond those listed."""
    parents: dict[str, ParentRun] = field(default_factory=dict)
    """The runs the graph's runs ran under (a pipeline's steps and the pipeline runs above
    them), by id."""

    def ancestry(self, run: RunInfo) -> list[ParentRun]:
        """The runs ``run`` ran under, nearest first (its step, then the pipeline run)."""
        found: list[ParentRun] = []
        parent = run.parent_id
        while parent is not None and parent in self.parents and len(found) < 10:
            found.append(self.parents[parent])
            parent = self.parents[parent].parent_id
        return found

    @property
    def runs(self) -> list[RunInfo]:
        """Every run in the graph, oldest first, each once."""
        seen: dict[str, RunInfo] = {}
        for run in [*self.upstream, *self.downstream]:
            seen.setdefault(run.id, run)
        return sorted(seen.values(), key=lambda r: r.started_at)

    def producer_of(self, ref: str) -> RunInfo | None:
        """The upstream run that made ``ref``."""
        return next((r for r in self.upstream if any(o.ref == ref for o in r.outputs)), None)

    def consumers_of(self, ref: str) -> list[RunInfo]:
        """The downstream runs that read ``ref``."""
        return [r for r in self.downstream if any(i.ref == ref for i in r.inputs)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "subject": self.subject.to_dict(),
            "upstream": [r.to_dict() for r in self.upstream],
            "downstream": [r.to_dict() for r in self.downstream],
            "complete": self.complete,
            "parents": {k: v.to_dict() for k, v in self.parents.items()},
        }


_REFS_PER_QUERY = 500
"""References asked for in one query (an ``IN`` list well under any database's limit)."""


def _runs_of(
    ws: Workspace,
    refs: Sequence[str],
    direction: str,
    *,
    limit: int | None = None,
    known: Collection[str] = (),
) -> list[RunInfo]:
    """The runs that read (``direction`` "input") or made ("output") any of ``refs``, each
    once, oldest first: one query per ``_REFS_PER_QUERY`` references; ``limit``: only the
    oldest ``limit`` of each query's (the store counts and cuts, so a thousand readers of
    one split cost what ``limit`` of them do), of the runs not ``known`` already."""
    found: dict[str, RunInfo] = {}
    with ws.store.transaction() as session:
        for at in range(0, len(refs), _REFS_PER_QUERY):
            ids = (
                ws.select(RunRecord.id)
                .join(RunIORecord)
                .where(
                    RunIORecord.ref.in_(refs[at : at + _REFS_PER_QUERY]),
                    RunIORecord.direction == direction,
                    RunRecord.id.not_in(known),
                )
                .group_by(RunRecord.id, RunRecord.started_at)
                .order_by(RunRecord.started_at, RunRecord.id)
                .limit(limit)
            )
            query = (
                ws.select(RunRecord)
                .where(RunRecord.id.in_(ids.scalar_subquery()))
                .options(selectinload(RunRecord.ios))
            )
            for record in session.scalars(query):
                found.setdefault(record.id, RunInfo.from_record(record))
    return sorted(found.values(), key=lambda r: (r.started_at, r.id))


def lineage(ws: Workspace, ref: str, *, max_runs: int | None = None) -> LineageGraph:
    """Walk the lineage of ``ref`` (e.g. ``customers@2``, ``customers@2/s1`` or a file path).

    ``max_runs``: at most that many runs each way, the nearest first (the dashboard draws a
    graph a person can read; ``complete`` then says whether any were left out). None walks
    everything, as ``mlplan lineage`` does.

    Raises
    ------
    NotFoundError
        When no run read or made ``ref``.
    """
    ref = resolve_ref(ws, ref)
    first = None if max_runs is None else max_runs + 1  # one more: are there more?
    made = _runs_of(ws, [ref], "output", limit=first)
    used = _runs_of(ws, [ref], "input", limit=first)
    if not made and not used:
        raise NotFoundError(
            f"no run made or read {ref!r}. Give a dataset version (customers@2), a split "
            "(customers@2/s1), a label set (customers@2:labels) or report (customers@2:hlp), a "
            "model (logistic-1, or a version: logistic-1@2) or a file path as recorded (see "
            "mlplan data list)"
        )
    subject = next((n for r in made for n in r.outputs if n.ref == ref), None) or next(
        n for r in used for n in r.inputs if n.ref == ref
    )
    upstream, whole_up = _walk(ws, made, "upstream", max_runs)
    downstream, whole_down = _walk(ws, used, "downstream", max_runs)
    parents = _parents(ws, {r.parent_id for r in [*upstream, *downstream] if r.parent_id})
    return LineageGraph(subject, upstream, downstream, whole_up and whole_down, parents)


def _parents(ws: Workspace, ids: set[str]) -> dict[str, ParentRun]:
    """The runs ``ids`` and the runs they ran under, up to the top (a few levels)."""
    found: dict[str, ParentRun] = {}
    wanted = set(ids)
    with ws.store.transaction() as session:
        while wanted:
            batch = sorted(wanted)[:_REFS_PER_QUERY]
            rows = session.execute(
                ws.select(
                    RunRecord.id,
                    RunRecord.job,
                    RunRecord.status,
                    RunRecord.parent_id,
                    RunRecord.started_at,
                ).where(RunRecord.id.in_(batch))
            ).all()
            for row in rows:
                found[row.id] = ParentRun(*row)
            wanted = (wanted - set(batch)) | {
                r.parent_id for r in rows if r.parent_id and r.parent_id not in found
            }
    return found


def resolve_ref(ws: Workspace, ref: str) -> str:
    """The reference as runs record it: a bare dataset name means its latest version, a bare
    model name its newest package version (``logistic-1@2``); a file path (relative to the
    working folder or the project, or absolute) becomes the path relative to the project."""

    try:
        parsed = parse_dataset_ref(ref)
    except RefError:
        parsed = None
    if parsed is not None and parsed.version is None:
        try:
            return get_dataset(ws, parsed).ref
        except NotFoundError:
            pass
        try:
            return get_model(ws, ref).ref
        except NotFoundError:
            return ref
    for candidate in (Path(ref), ws.root / ref):
        if candidate.exists():
            return ws.relative(candidate)
    return ref


def _walk(
    ws: Workspace, start: list[RunInfo], way: str, max_runs: int | None
) -> tuple[list[RunInfo], bool]:
    """Every run reached from ``start`` going ``way`` (at most ``max_runs``, the nearest
    first), breadth first: each level's references asked for together and each reference
    once (a split read by a thousand training runs whose models one comparison read is a few
    queries, not one per model, each loading the comparison again). With whether the walk
    reached every run."""
    found: dict[str, RunInfo] = {}
    asked: set[str] = set()
    direction = "output" if way == "upstream" else "input"
    frontier = start
    complete = True
    while frontier:
        fresh = [run for run in frontier if run.id not in found]
        if max_runs is not None and len(found) + len(fresh) > max_runs:
            fresh, complete = fresh[: max_runs - len(found)], False
        found.update((run.id, run) for run in fresh)
        if not complete:
            break
        refs = {
            node.ref for run in fresh for node in (run.inputs if way == "upstream" else run.outputs)
        } - asked
        asked |= refs
        room = None if max_runs is None else max_runs - len(found) + 1
        known = [] if max_runs is None else list(found)  # at most max_runs: a short list
        frontier = _runs_of(ws, sorted(refs), direction, limit=room, known=known) if refs else []
    return sorted(found.values(), key=lambda r: (r.started_at, r.id)), complete


def _facet(facet: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": _FACET_SCHEMA.format(facet, facet)} | fields


def _dataset(node: LineageNode, namespace: str) -> dict[str, Any]:
    facets: dict[str, Any] = {}
    if node.sha256:
        facets["version"] = _facet("DatasetVersionDatasetFacet", datasetVersion=node.sha256)
    return {"namespace": namespace, "name": node.ref, "facets": facets}


def _parent_facet(graph: LineageGraph, run: RunInfo, namespace: str) -> dict[str, Any]:
    """OpenLineage's ``parent`` facet: the run this one ran under (a pipeline step), and the
    pipeline run at the top as its root."""
    above = graph.ancestry(run)
    if not above:
        return {}

    def ref(parent: ParentRun) -> dict[str, Any]:
        return {
            "run": {"runId": parent.id},
            "job": {"namespace": namespace, "name": parent.job.replace(" ", ".")},
        }

    facet = {  # version 1-1-0 of the facet adds the root
        "_producer": PRODUCER,
        "_schemaURL": _FACET_SCHEMA.replace("1-0-0", "1-1-0").format(
            "ParentRunFacet", "ParentRunFacet"
        ),
        **ref(above[0]),
    }
    if len(above) > 1:
        facet["root"] = ref(above[-1])
    return {"parent": facet}


def to_openlineage(ws: Workspace, graph: LineageGraph) -> list[dict[str, Any]]:
    """One OpenLineage ``COMPLETE`` RunEvent per run in the graph, oldest first.

    Jobs live in the namespace ``mlplan://PROJECT``; datasets are named by their mlplan
    reference, versioned by the sha256 of their bytes.
    """
    namespace = f"mlplan://{ws.plan.project.name}"
    events = []
    for run in graph.runs:
        events.append(
            {
                "eventType": "COMPLETE" if run.status == "completed" else "FAIL",
                "eventTime": (run.ended_at or run.started_at).isoformat(),
                "run": {
                    "runId": run.id,
                    "facets": _parent_facet(graph, run, namespace)
                    | {
                        "processing_engine": _facet(
                            "ProcessingEngineRunFacet", version=__version__, name="mlplan"
                        ),
                        "mlplan": {
                            "_producer": PRODUCER,
                            "_schemaURL": f"{PRODUCER}#/facets/mlplan",
                            "parameters": run.parameters,
                            "code_version": run.code_version,
                            "user": run.user,
                            "started_at": run.started_at.isoformat(),
                        },
                    },
                },
                "job": {
                    "namespace": namespace,
                    "name": run.job.replace(" ", "."),
                    "facets": {
                        "jobType": _facet(
                            "JobTypeJobFacet",
                            processingType="BATCH",
                            integration="MLPLAN",
                            jobType="COMMAND",
                        ),
                    },
                },
                "inputs": [_dataset(n, namespace) for n in run.inputs],
                "outputs": [_dataset(n, namespace) for n in run.outputs],
                "producer": PRODUCER,
                "schemaURL": OPENLINEAGE_SCHEMA,
            }
        )
    return events
