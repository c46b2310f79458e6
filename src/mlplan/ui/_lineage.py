"""What the Lineage page shows: where one can start (``mlplan data list``'s versions, ``mlplan
models list``'s package versions, the deployments) and the graph ``mlplan lineage REF --json``
prints, as nodes and edges for the drawing and as runs with their inputs and outputs for the
table that stands in for it. Plain values for the template; the graph is the library's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mlplan.core import parse_dataset_ref, parse_split_ref
from mlplan.data import list_datasets
from mlplan.errors import NotFoundError, RefError
from mlplan.lineage import LineageGraph, LineageNode, RunInfo, lineage
from mlplan.modeling import list_models
from mlplan.ui._format import Pager, page_of
from mlplan.workspace import list_deployments

if TYPE_CHECKING:
    from mlplan.workspace import Workspace

__all__ = [
    "KIND_LABELS",
    "MAX_RUNS",
    "MAX_THINGS",
    "LineageStart",
    "LineageView",
    "StartView",
    "lineage_href",
    "lineage_view",
    "node_href",
    "run_anchor",
    "start_view",
]

KIND_LABELS: dict[str, tuple[str, str]] = {
    "run": ("⚙", "run"),
    "file": ("▭", "file"),
    "dataset_version": ("▤", "dataset version"),
    "label_set": ("✎", "label set"),
    "split": ("◫", "split"),
    "model": ("◆", "model"),
    "report": ("☰", "report"),
    "artifact": ("▣", "artifact"),
    "deployment": ("▶", "deployment"),
    "more": ("…", "more"),
}
"""Each kind of node's icon and word: the drawing gives each a shape of its own as well, so
colour is never the only sign."""


def lineage_href(ref: str) -> str:
    """The Lineage page's address for the graph from ``ref``.

    Examples
    --------
    >>> lineage_href("customers@1/s1")
    '/lineage?ref=customers%401%2Fs1'
    """
    return "/lineage?ref=" + quote(ref, safe="")


def node_href(kind: str, ref: str) -> str:
    """The dashboard's page of what a run read or made: a dataset version's or split's
    datasheet, a model's page, the deployment, the Labels page for a label set or report;
    anything else (a file, a report file) the graph from it.

    Examples
    --------
    >>> node_href("dataset_version", "customers@2"), node_href("split", "customers@2/s1")
    ('/data/customers%402', '/data/customers%402')
    >>> node_href("model", "logistic-1@2"), node_href("deployment", "production")
    ('/models/logistic-1%402', '/deployments#deployment-production')
    >>> node_href("dataset_version", "customers@2:labels"), node_href("file", "data/c.csv")
    ('/labels', '/lineage?ref=data%2Fc.csv')
    """
    if kind == "dataset_version" or kind == "split":
        try:
            parsed = (
                parse_dataset_ref(ref)
                if kind == "dataset_version"
                else parse_split_ref(ref).dataset
            )
        except RefError:
            return "/labels" if ":" in ref else lineage_href(ref)
        return "/data/" + quote(str(parsed), safe="")
    if kind == "model":
        return "/models/" + quote(ref, safe="")
    if kind == "deployment":
        return "/deployments#deployment-" + quote(ref, safe="")
    return lineage_href(ref)


def _kind(node: LineageNode) -> str:
    """A label set or report is recorded as a dataset version named ``VERSION:WHAT``."""
    return "label_set" if node.kind == "dataset_version" and ":" in node.ref else node.kind


def run_anchor(run: RunInfo) -> str:
    """The id of a run's row in the table (what a run's node links to)."""
    return f"run-{run.id}"


MAX_THINGS = 25
"""What one run read, or made, drawn and listed: a comparison of a thousand models is one
node saying so past these, not a thousand (``mlplan lineage REF --json`` lists them all)."""

MAX_RUNS = 100
"""Runs shown each way: a graph a person can read (a split a thousand training runs read
would draw thousands of nodes), and a page that answers in time; the nearest come first."""


@dataclass(frozen=True)
class LineageView:
    """The graph from one reference: the subject, the runs upstream and downstream (oldest
    first, as ``mlplan lineage --json`` lists them) and the same graph as nodes and edges
    (``graph``, embedded as JSON for the drawing)."""

    subject: LineageNode
    upstream: list[RunInfo]
    downstream: list[RunInfo]
    graph: dict[str, Any]
    complete: bool = True
    """False when there are more runs than ``MAX_RUNS`` a way: the nearest are shown."""

    @property
    def subject_kind(self) -> str:
        """The subject's kind, a label set told from a dataset version."""
        return _kind(self.subject)

    @property
    def things(self) -> dict[str, dict[str, Any]]:
        """Each node that is not a run, by its reference: its kind, icon, word and page."""
        return {n["ref"]: n for n in self.graph["nodes"] if n["kind"] != "run"}


def lineage_view(ws: Workspace, ref: str) -> LineageView:
    """What ``mlplan lineage REF --json`` prints, and its nodes and edges.

    Raises
    ------
    NotFoundError
        No run made or read ``ref`` (the library's message, which says what to give).
    """
    if not ws.has_store:  # reading must not create a store
        raise NotFoundError(
            f"no run is recorded yet, so none made or read {ref!r}: every mlplan command that "
            "makes something (mlplan data add NAME FILE first) records one"
        )
    graph = lineage(ws, ref, max_runs=MAX_RUNS)
    return LineageView(
        graph.subject, graph.upstream, graph.downstream, _drawn(graph), graph.complete
    )


def _drawn(graph: LineageGraph) -> dict[str, Any]:
    """Nodes (each run, and each thing a run read or made, once) and edges (a thing to the
    run that read it, a run to the thing it made), each node with its page."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[tuple[str, str], None] = {}

    def add(key: str, kind: str, ref: str, label: str, href: str, subject: bool = False) -> str:
        icon, word = KIND_LABELS.get(kind, ("•", kind.replace("_", " ")))
        node = {"id": key, "kind": kind, "icon": icon, "word": word, "ref": ref}
        nodes.setdefault(key, node | {"label": label, "href": href, "subject": subject})
        return key

    def thing(node: LineageNode) -> str:
        subject = node.ref == graph.subject.ref
        href = node_href(node.kind, node.ref)
        return add(f"ref:{node.ref}", _kind(node), node.ref, node.ref, href, subject)

    thing(graph.subject)
    for run in graph.runs:
        anchor = "#" + run_anchor(run)
        key = add(f"run:{run.id}", "run", run.id, f"{run.job} {run.id[:8]}", anchor)
        for node in run.inputs[:MAX_THINGS]:
            edges[(thing(node), key)] = None
        for node in run.outputs[:MAX_THINGS]:
            edges[(key, thing(node))] = None
        for side, listed in (("read", run.inputs), ("made", run.outputs)):
            if len(listed) > MAX_THINGS:
                more = f"more:{run.id}:{side}"
                add(more, "more", more, f"{len(listed) - MAX_THINGS} more {side}", anchor)
                edges[(more, key) if side == "read" else (key, more)] = None
    return {
        "subject": f"ref:{graph.subject.ref}",
        "nodes": list(nodes.values()),
        "edges": [{"source": s, "target": t} for s, t in edges],
    }


@dataclass(frozen=True)
class LineageStart:
    """Something the graph can start from: its kind, reference and own page, and a word on
    it (a version's rows, a model's family and split, what a deployment serves)."""

    kind: str
    ref: str
    detail: str

    @property
    def href(self) -> str:
        """Its own page."""
        return node_href(self.kind, self.ref)

    @property
    def lineage_href(self) -> str:
        """The graph from it."""
        return lineage_href(self.ref)


@dataclass(frozen=True)
class StartView:
    """The Lineage page without a reference: a page of what one can start from."""

    starts: list[LineageStart]
    pager: Pager


def start_view(ws: Workspace, *, page: int = 1) -> StartView:
    """Every dataset version (``mlplan data list``), every model's package version (``mlplan
    models list --versions``) and every deployment, in that order."""
    if not ws.has_store:  # reading must not create a store
        return StartView([], page_of([], 1)[1])
    starts = [
        LineageStart("dataset_version", f"{d.name}@{n}", f"version {n} of {d.versions}")
        for d in list_datasets(ws)
        for n in range(1, d.versions + 1)
    ]
    starts += [
        LineageStart(
            "model",
            m.ref,
            f"{m.family}, " + (f"a new version of {m.parent}" if m.parent else f"on {m.split}"),
        )
        for m in list_models(ws, versions=True)
    ]
    starts += [
        LineageStart("deployment", d.name, f"serves {d.model_ref}") for d in list_deployments(ws)
    ]
    shown, pager = page_of(starts, page)
    return StartView(shown, pager)
